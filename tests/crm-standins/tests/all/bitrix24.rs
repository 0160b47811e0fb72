//! Bitrix24: OAuth rotation, both URL forms, register/finish/attachRecord, limits, faults.

use std::time::Duration;

use callhook_crm_standins::{Bitrix24, Bitrix24Config, Bitrix24Handle};
use serde_json::{Value, json};

use crate::client;

const REFRESH: &str = "b24-refresh-standin";

async fn refresh(b24: &Bitrix24Handle, refresh_token: &str) -> (u16, Value) {
    let response = client()
        .get(format!("{}/oauth/token/", b24.base_url()))
        .query(&[
            ("grant_type", "refresh_token"),
            ("client_id", "local.standin"),
            ("client_secret", "b24-secret"),
            ("refresh_token", refresh_token),
        ])
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

async fn access_token(b24: &Bitrix24Handle) -> String {
    let (_, body) = refresh(b24, REFRESH).await;
    body["access_token"].as_str().expect("token").to_owned()
}

/// Calls `method` in application mode with `auth` in the body.
async fn app(b24: &Bitrix24Handle, token: &str, method: &str, mut params: Value) -> (u16, Value) {
    params["auth"] = json!(token);
    send(b24, &format!("/rest/{method}"), &params).await
}

async fn send(b24: &Bitrix24Handle, path: &str, params: &Value) -> (u16, Value) {
    let response = client()
        .post(format!("{}{path}", b24.base_url()))
        .json(params)
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn register_params() -> Value {
    json!({"USER_PHONE_INNER": "121", "PHONE_NUMBER": "+49301234567", "TYPE": 2,
        "CALL_START_DATE": "2026-11-28T09:15:00+00:00", "EXTERNAL_CALL_ID": "261128101500_782",
        "SHOW": 0, "CRM_CREATE": 0})
}

fn finish_params(call_id: &str) -> Value {
    json!({"CALL_ID": call_id, "USER_PHONE_INNER": "122", "DURATION": 30, "STATUS_CODE": "200"})
}

/// Serves `bytes` at `/r.mp3` on an ephemeral port; returns the URL.
async fn serve_recording(bytes: &'static [u8]) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/r.mp3", listener.local_addr().expect("addr"));
    let app = axum::Router::new().route("/r.mp3", axum::routing::get(move || async move { bytes }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn registers_finishes_and_attaches() {
    let b24 = Bitrix24::start(Bitrix24Config::default())
        .await
        .expect("start");
    let agent = b24.add_user("121");
    let answerer = b24.add_user("122");
    let contact = b24.add_contact("+49301234567");
    let token = access_token(&b24).await;
    let (status, body) = app(
        &b24,
        &token,
        "telephony.externalcall.register",
        register_params(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let call_id = body["result"]["CALL_ID"]
        .as_str()
        .expect("CALL_ID")
        .to_owned();
    let parts: Vec<&str> = call_id.split('.').collect();
    assert_eq!(
        (parts[0], parts[1].len(), parts.len()),
        ("externalCall", 32, 3)
    );
    assert!(parts[1].bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(body["result"]["CRM_ENTITY_ID"], contact);
    // The same register within 30 minutes: the same call; case and `.json` do not matter.
    let (_, again) = app(
        &b24,
        &token,
        "TELEPHONY.externalCall.REGISTER.json",
        register_params(),
    )
    .await;
    assert_eq!(again["result"]["CALL_ID"], call_id.as_str());
    assert_eq!(b24.calls().len(), 1);
    assert_eq!(b24.calls()[0].registered_user, agent);

    let (status, _) = app(
        &b24,
        &token,
        "telephony.externalcall.finish",
        finish_params(&call_id),
    )
    .await;
    assert_eq!(status, 200);
    let finished = b24.finished_calls();
    let row = finished[0].finished.clone().expect("statistics row");
    assert_eq!(
        (row.user, row.duration, row.status_code.as_str()),
        (answerer, 30, "200")
    );
    let (status, body) = app(
        &b24,
        &token,
        "telephony.externalcall.finish",
        finish_params(&call_id),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"error": "ERROR_CORE",
        "error_description": "Call is not found (call should be registered prior to finishing)"})
    );

    let url = serve_recording(b"ID3 first").await;
    let attach =
        json!({"CALL_ID": call_id, "FILENAME": "261128101500_782-1-1.mp3", "RECORD_URL": url});
    let (status, _) = app(
        &b24,
        &token,
        "telephony.externalcall.attachRecord",
        attach.clone(),
    )
    .await;
    assert_eq!(status, 200);
    let recording = b24.calls()[0].recording.clone().expect("recording");
    assert_eq!(
        recording,
        ("261128101500_782-1-1.mp3".into(), b"ID3 first".to_vec())
    );
    let url = serve_recording(b"ID3 second").await;
    let replace = json!({"CALL_ID": call_id, "FILENAME": "x.wav", "RECORD_URL": url});
    app(&b24, &token, "telephony.externalcall.attachrecord", replace).await;
    assert_eq!(b24.calls()[0].recording.clone().unwrap().1, b"ID3 second");
    assert_eq!(b24.requests()[1].json().unwrap()["auth"], "***");
}

/// `CRM_CREATE` = 1 makes a lead for a number no contact or lead has, once: a repeat of the
/// register and a later call from the number bind to that lead. Without it nothing is made.
#[tokio::test]
async fn crm_create_makes_one_lead_per_unknown_number() {
    let b24 = Bitrix24::start(Bitrix24Config::default())
        .await
        .expect("start");
    b24.add_user("121");
    let token = access_token(&b24).await;
    let register = |external_call_id: &str, crm_create: u8| {
        let mut params = register_params();
        params["EXTERNAL_CALL_ID"] = json!(external_call_id);
        params["CRM_CREATE"] = json!(crm_create);
        params
    };
    let method = "telephony.externalcall.register";

    let (status, body) = app(&b24, &token, method, register("c1", 0)).await;
    assert_eq!(status, 200, "{body}");
    let entity = |body: &Value| {
        let result = &body["result"];
        [
            "CRM_CREATED_LEAD",
            "CRM_ENTITY_TYPE",
            "CRM_ENTITY_ID",
            "CRM_CREATED_ENTITIES",
        ]
        .map(|key| result[key].clone())
    };
    assert_eq!(
        entity(&body),
        [Value::Null, Value::Null, Value::Null, json!([])]
    );
    assert!(b24.leads().is_empty());

    let (_, created) = app(&b24, &token, method, register("c2", 1)).await;
    let leads = b24.leads();
    assert_eq!(leads.len(), 1, "{leads:?}");
    let (lead, phone) = leads[0].clone();
    assert_eq!(phone, "+49301234567");
    let made = [
        json!(lead),
        json!("LEAD"),
        json!(lead),
        json!([{"ENTITY_TYPE": "LEAD", "ENTITY_ID": lead}]),
    ];
    assert_eq!(entity(&created), made);

    let bound = [Value::Null, json!("LEAD"), json!(lead), json!([])];
    let (_, repeated) = app(&b24, &token, method, register("c2", 1)).await;
    assert_eq!(repeated["result"]["CALL_ID"], created["result"]["CALL_ID"]);
    assert_eq!(entity(&repeated), bound, "a repeat makes no second lead");
    let (_, later) = app(&b24, &token, method, register("c3", 1)).await;
    assert_ne!(later["result"]["CALL_ID"], created["result"]["CALL_ID"]);
    assert_eq!(entity(&later), bound, "a later call binds to the lead");
    assert_eq!(b24.leads().len(), 1);
}

#[tokio::test]
async fn refuses_what_bitrix24_refuses() {
    let b24 = Bitrix24::start(Bitrix24Config::default())
        .await
        .expect("start");
    b24.add_user("121");
    b24.add_user("122");
    let token = access_token(&b24).await;
    let register = "telephony.externalcall.register";
    let cases: [(&str, Option<Value>, &str); 10] = [
        ("USER_PHONE_INNER", Some(json!("999")), "ERROR_ARGUMENT"),
        ("USER_PHONE_INNER", None, "ERROR_ARGUMENT"),
        ("PHONE_NUMBER", None, "ERROR_ARGUMENT"),
        ("TYPE", Some(json!(6)), "ERROR_ARGUMENT"),
        ("TYPE", Some(json!("2")), "ERROR_ARGUMENT"),
        (
            "CALL_START_DATE",
            Some(json!("2026-11-28T09:15:00Z")),
            "ERROR_CORE",
        ),
        (
            "CALL_START_DATE",
            Some(json!("2026-11-28 09:15:00")),
            "ERROR_CORE",
        ),
        ("SHOW", Some(json!(2)), "ERROR_ARGUMENT"),
        ("CRM_CREATE", Some(json!(true)), "ERROR_ARGUMENT"),
        ("USER", Some(json!(1)), "ERROR_ARGUMENT"),
    ];
    for (name, value, code) in cases {
        let mut params = register_params();
        match value {
            Some(value) => params[name] = value,
            None => {
                params.as_object_mut().unwrap().remove(name);
            }
        }
        let (status, body) = app(&b24, &token, register, params).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some(code)),
            "{name}"
        );
    }
    let (_, body) = app(&b24, &token, register, register_params()).await;
    let call_id = body["result"]["CALL_ID"].as_str().unwrap().to_owned();
    for (name, value) in [
        ("DURATION", json!(-1)),
        ("DURATION", json!("30")),
        ("STATUS_CODE", json!("201")),
    ] {
        let mut params = finish_params(&call_id);
        params[name] = value;
        let (status, body) = app(&b24, &token, "telephony.externalcall.finish", params).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("ERROR_ARGUMENT")),
            "{name}"
        );
    }
    let attach =
        json!({"CALL_ID": call_id, "FILENAME": "r.mp3", "RECORD_URL": "http://127.0.0.1:1/r.mp3"});
    let (_, body) = app(&b24, &token, "telephony.externalcall.attachRecord", attach).await;
    assert_eq!(
        body["error_description"],
        "Call is not found in the statistic table"
    );
    app(
        &b24,
        &token,
        "telephony.externalcall.finish",
        finish_params(&call_id),
    )
    .await;
    let attach =
        json!({"CALL_ID": call_id, "FILENAME": "r.ogg", "RECORD_URL": "http://127.0.0.1:1/r.ogg"});
    let (status, _) = app(&b24, &token, "telephony.externalcall.attachRecord", attach).await;
    assert_eq!(status, 400);

    // Authentication: unknown token, expired token, webhook restriction.
    let (status, body) = app(&b24, "nope", register, register_params()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("NO_AUTH_FOUND"))
    );
    let webhook = "/rest/1/standin-webhook-code/telephony.externalcall.register";
    let (status, body) = send(&b24, webhook, &register_params()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("WRONG_AUTH_TYPE"))
    );
    let (status, _) = send(
        &b24,
        "/rest/1/wrong/telephony.externalcall.register",
        &register_params(),
    )
    .await;
    assert_eq!(status, 401);
    let control = format!(
        "{}/_standin/allow_webhook_telephony?on=true",
        b24.base_url()
    );
    client().post(control).send().await.expect("control");
    assert_eq!(send(&b24, webhook, &register_params()).await.0, 200);
    b24.expire_access_tokens();
    let (status, body) = app(&b24, &token, register, register_params()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("expired_token"))
    );
}

#[tokio::test]
async fn refresh_rotates_and_invalidates_the_old_token() {
    let b24 = Bitrix24::start(Bitrix24Config::default())
        .await
        .expect("start");
    let (status, first) = refresh(&b24, REFRESH).await;
    assert_eq!((status, first["expires_in"].as_u64()), (200, Some(3600)));
    let next = first["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    assert_ne!(next, REFRESH);
    let (status, body) = refresh(&b24, REFRESH).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, second) = refresh(&b24, &next).await;
    assert_eq!(status, 200);
    assert_eq!(
        b24.valid_refresh_tokens(),
        [second["refresh_token"].as_str().unwrap()]
    );
    assert_eq!(b24.refreshes(), 2);
    assert!(b24.requests()[0].query.contains("refresh_token=***"));
    b24.faults().revoke_refresh_tokens();
    let latest = second["refresh_token"].as_str().unwrap();
    assert_eq!(refresh(&b24, latest).await.1["error"], "invalid_grant");

    let short = Bitrix24::start(Bitrix24Config {
        access_token_ttl: Duration::from_millis(200),
        ..Bitrix24Config::default()
    })
    .await
    .expect("start");
    short.add_user("121");
    let token = access_token(&short).await;
    let register = "telephony.externalcall.register";
    assert_eq!(
        app(&short, &token, register, register_params()).await.0,
        200
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        app(&short, &token, register, register_params()).await.1["error"],
        "expired_token"
    );
}

#[tokio::test]
async fn leaky_bucket_and_faults() {
    let b24 = Bitrix24::start(Bitrix24Config {
        bucket_capacity: 3,
        drain_per_second: 1.0,
        ..Bitrix24Config::default()
    })
    .await
    .expect("start");
    b24.add_user("121");
    b24.add_user("122");
    let token = access_token(&b24).await;
    let register = "telephony.externalcall.register";
    for _ in 0..3 {
        assert_eq!(app(&b24, &token, register, register_params()).await.0, 200);
    }
    let (status, body) = app(&b24, &token, register, register_params()).await;
    assert_eq!(status, 503);
    assert_eq!(
        body,
        json!({"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"})
    );
    tokio::time::sleep(Duration::from_millis(1100)).await; // drains one at 1 a second
    let (_, body) = app(&b24, &token, register, register_params()).await;
    assert!(body["result"]["CALL_ID"].is_string(), "drained: {body}");

    let b24 = Bitrix24::start(Bitrix24Config::default())
        .await
        .expect("start");
    b24.add_user("121");
    b24.add_user("122");
    let token = access_token(&b24).await;
    let (_, body) = app(&b24, &token, register, register_params()).await;
    let first = body["result"]["CALL_ID"].as_str().unwrap().to_owned();
    b24.faults().fail_after_store(1);
    let (status, _) = app(
        &b24,
        &token,
        "telephony.externalcall.finish",
        finish_params(&first),
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(b24.finished_calls().len(), 1);
    let (_, again) = app(
        &b24,
        &token,
        "telephony.externalcall.finish",
        finish_params(&first),
    )
    .await;
    assert_eq!(again["error"], "ERROR_CORE");

    let mut other = register_params();
    other["EXTERNAL_CALL_ID"] = json!("261128101500_782-2");
    let (_, body) = app(&b24, &token, register, other).await;
    let second = body["result"]["CALL_ID"].as_str().unwrap().to_owned();
    b24.faults().drop_after_store(1);
    let mut params = finish_params(&second);
    params["auth"] = json!(token);
    let dropped = client()
        .post(format!(
            "{}/rest/telephony.externalcall.finish",
            b24.base_url()
        ))
        .json(&params)
        .send()
        .await;
    assert!(dropped.is_err());
    assert_eq!(b24.finished_calls().len(), 2);

    b24.faults().rate_limit_burst(1);
    assert_eq!(app(&b24, &token, register, register_params()).await.0, 503);
    b24.faults().revoke_token(true);
    assert_eq!(
        app(&b24, &token, register, register_params()).await.1["error"],
        "invalid_token"
    );
}
