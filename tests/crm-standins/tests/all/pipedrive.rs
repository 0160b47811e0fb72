//! Pipedrive: call logs, recordings, persons, users, validation, limits, faults.

use std::time::Duration;

use callhook_crm_standins::{Pipedrive, PipedriveConfig, PipedriveHandle};
use serde_json::{Value, json};

use crate::client;

const TOKEN: &str = "pd-standin";

fn call_log(user: i64, person: i64) -> Value {
    json!({"subject": "CompanyDID: answered incoming call from 0301234567 to 120, 00:01:00",
        "outcome": "connected", "from_phone_number": "+49301234567", "to_phone_number": "120",
        "start_time": "2026-11-28 09:15:05", "end_time": "2026-11-28 09:16:05", "duration": "60",
        "note": "title<br>Call: 261128101500_782-1.120", "user_id": user, "person_id": person})
}

async fn create(pd: &PipedriveHandle, body: &Value) -> (u16, Value) {
    let response = client()
        .post(format!("{}/v1/callLogs", pd.base_url()))
        .header("x-api-token", TOKEN)
        .json(body)
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn upload(pd: &PipedriveHandle, id: &str, bytes: &[u8]) -> (u16, Value) {
    let part = reqwest::multipart::Part::bytes(bytes.to_vec())
        .file_name("261128101500_782-1-1.mp3")
        .mime_str("audio/mpeg")
        .expect("mime");
    let response = client()
        .post(format!("{}/v1/callLogs/{id}/recordings", pd.base_url()))
        .header("x-api-token", TOKEN)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(pd: &PipedriveHandle, path: &str) -> Value {
    let response = client()
        .get(format!("{}{path}", pd.base_url()))
        .header("x-api-token", TOKEN)
        .send()
        .await
        .expect("send");
    response.json().await.expect("json")
}

#[tokio::test]
async fn stores_a_call_log_and_its_recording() {
    let pd = Pipedrive::start(PipedriveConfig::default())
        .await
        .expect("start");
    let user = pd.add_user("anna@example.com");
    let person = pd.add_person("Max", &["+49 30 1234567", "+49301234567"]);
    let (status, body) = create(&pd, &call_log(user, person)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["data"]["has_recording"], false);
    let id = body["data"]["id"].as_str().expect("a string id").to_owned();
    assert_eq!(pd.call_logs()[0].fields["duration"], "60");
    let recorded = &pd.requests()[0];
    assert_eq!(
        (recorded.method.as_str(), recorded.path.as_str()),
        ("POST", "/v1/callLogs")
    );
    assert_eq!(recorded.header("x-api-token"), Some("***"));
    assert_eq!(recorded.json().expect("json body")["outcome"], "connected");

    assert_eq!(
        upload(&pd, &id, b"ID3 mp3").await,
        (200, json!({"success": true}))
    );
    let (name, bytes) = pd.call_logs()[0].recording.clone().expect("recording");
    assert_eq!(
        (name.as_str(), bytes.as_slice()),
        ("261128101500_782-1-1.mp3", &b"ID3 mp3"[..])
    );
    let (status, body) = upload(&pd, &id, b"again").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("A recording for this call already exists"))
    );
    assert_eq!(upload(&pd, "nope", b"x").await.0, 404);
    pd.delete_call_log(&id);
    assert_eq!(upload(&pd, &id, b"x").await.0, 410);

    let found = get(
        &pd,
        "/api/v2/persons/search?term=%2B49301234567&fields=phone",
    )
    .await;
    assert_eq!(found["data"]["items"][0]["item"]["id"], person);
    let none = get(&pd, "/api/v2/persons/search?term=%2B4940&fields=phone").await;
    assert_eq!(none["data"]["items"], json!([]));
    let users = get(
        &pd,
        "/v1/users/find?term=ANNA%40example.com&search_by_email=1",
    )
    .await;
    assert_eq!(users["data"][0]["id"], user);
    let nobody = get(
        &pd,
        "/v1/users/find?term=bob%40example.com&search_by_email=1",
    )
    .await;
    assert_eq!(nobody["data"], Value::Null);

    pd.faults().created_201(true);
    assert_eq!(create(&pd, &call_log(user, person)).await.0, 201);
}

#[tokio::test]
async fn refuses_what_pipedrive_refuses() {
    let pd = Pipedrive::start(PipedriveConfig::default())
        .await
        .expect("start");
    let user = pd.add_user("anna@example.com");
    let person = pd.add_person("Max", &["+49301234567"]);
    let cases: [(&str, Option<Value>); 13] = [
        ("outcome", Some(json!("answered"))),
        ("outcome", None),
        ("to_phone_number", None),
        ("start_time", Some(json!("2026-11-28T09:15:05Z"))),
        ("end_time", Some(json!("2026-11-28 09:15:04"))),
        ("end_time", None),
        ("duration", Some(json!(60))),
        ("duration", Some(json!("1m"))),
        ("user_id", Some(json!(999))),
        ("user_id", Some(json!("12"))),
        ("person_id", Some(json!(999))),
        ("lead_id", Some(json!("l-1"))),
        ("callhook", Some(json!("x"))),
    ];
    for (name, value) in cases {
        let mut body = call_log(user, person);
        match value {
            Some(value) => body[name] = value,
            None => {
                body.as_object_mut().unwrap().remove(name);
            }
        }
        if name == "lead_id" {
            body["deal_id"] = json!(pd.add_deal());
        }
        let (status, answer) = create(&pd, &body).await;
        assert_eq!((status, &answer["success"]), (400, &json!(false)), "{name}");
        assert!(answer["error"].is_string(), "{name}");
    }
    assert!(pd.call_logs().is_empty());

    let wrong = client()
        .post(format!("{}/v1/callLogs?api_token={TOKEN}", pd.base_url()))
        .json(&call_log(user, person))
        .send()
        .await
        .expect("send");
    assert_eq!(wrong.status(), 401);
    let wrong: Value = wrong.json().await.expect("json");
    assert_eq!(
        wrong,
        json!({"success": false, "error": "unauthorized access", "errorCode": 401,
        "error_info": "Please check developers.pipedrive.com"})
    );
    assert_eq!(pd.requests().last().unwrap().query, "api_token=***");
    let short = get(&pd, "/api/v2/persons/search?term=4&fields=phone").await;
    assert_eq!(short["success"], false);
    let no_file = client()
        .post(format!("{}/v1/callLogs/x/recordings", pd.base_url()))
        .header("x-api-token", TOKEN)
        .send()
        .await
        .expect("send");
    assert_eq!(no_file.status(), 404);
}

#[tokio::test]
async fn rate_limit_answers_429_with_reset() {
    let pd = Pipedrive::start(PipedriveConfig {
        rate_limit: 2,
        ..PipedriveConfig::default()
    })
    .await
    .expect("start");
    let url = format!("{}/v1/users/find?term=a", pd.base_url());
    let first = client()
        .get(&url)
        .header("x-api-token", TOKEN)
        .send()
        .await
        .expect("send");
    assert_eq!(first.headers()["x-ratelimit-limit"], "2");
    assert_eq!(first.headers()["x-ratelimit-remaining"], "1");
    assert_eq!(first.headers()["x-ratelimit-reset"], "2");
    client()
        .get(&url)
        .header("x-api-token", TOKEN)
        .send()
        .await
        .expect("send");
    let limited = client()
        .get(&url)
        .header("x-api-token", TOKEN)
        .send()
        .await
        .expect("send");
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("x-ratelimit-reset"));
    let body: Value = limited.json().await.expect("json");
    assert_eq!(
        (&body["success"], &body["errorCode"]),
        (&json!(false), &json!(429))
    );

    pd.faults().daily_budget_exhausted(true);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let budget = client()
        .get(&url)
        .header("x-api-token", TOKEN)
        .send()
        .await
        .expect("send");
    assert_eq!(budget.status(), 429);
    assert!(budget.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn faults_store_then_fail_drop_or_burst() {
    let pd = Pipedrive::start(PipedriveConfig::default())
        .await
        .expect("start");
    let user = pd.add_user("anna@example.com");
    let person = pd.add_person("Max", &["+49301234567"]);
    pd.faults().fail_after_store(1);
    assert_eq!(create(&pd, &call_log(user, person)).await.0, 500);
    assert_eq!(pd.call_logs().len(), 1);
    pd.faults().drop_after_store(1);
    let dropped = client()
        .post(format!("{}/v1/callLogs", pd.base_url()))
        .header("x-api-token", TOKEN)
        .json(&call_log(user, person))
        .send()
        .await;
    assert!(dropped.is_err());
    assert_eq!(pd.call_logs().len(), 2);
    pd.faults().rate_limit_burst(3);
    for _ in 0..3 {
        assert_eq!(create(&pd, &call_log(user, person)).await.0, 429);
    }
    assert_eq!(create(&pd, &call_log(user, person)).await.0, 200);
    pd.faults().revoke_token(true);
    assert_eq!(create(&pd, &call_log(user, person)).await.0, 401);
    assert_eq!(pd.call_logs().len(), 3);
}
