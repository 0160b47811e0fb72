//! Zoho: the token endpoint, searches, users, Calls, validation, limits, faults.

use std::time::Duration;

use callhook_crm_standins::{Zoho, ZohoConfig, ZohoHandle};
use serde_json::{Value, json};

use crate::client;

async fn start(config: ZohoConfig) -> ZohoHandle {
    Zoho::start(ZohoConfig {
        id_field: Some("Callhook_Id".into()),
        ..config
    })
    .await
    .expect("start")
}

/// `POST /oauth/v2/token`; the status and body.
async fn refresh(zoho: &ZohoHandle, refresh_token: &str) -> (u16, Value) {
    let response = client()
        .post(format!("{}/oauth/v2/token", zoho.base_url()))
        .query(&[
            ("refresh_token", refresh_token),
            ("client_id", "1000.STANDIN"),
            ("client_secret", "zoho-secret"),
            ("grant_type", "refresh_token"),
        ])
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

async fn token(zoho: &ZohoHandle) -> String {
    let (_, body) = refresh(zoho, "1000.refresh.standin").await;
    body["access_token"].as_str().expect("token").to_owned()
}

fn call(contact: &str, owner: &str) -> Value {
    json!({"data": [{"Subject": "CompanyDID: answered incoming call from 0301234567 to 120, 00:01:00",
        "Call_Type": "Inbound", "Call_Start_Time": "2026-11-28T09:15:05+00:00", "Call_Duration": "01:00",
        "Description": "title\nCall: 261128101500_782-1.120", "Who_Id": {"id": contact},
        "Owner": {"id": owner}, "Callhook_Id": "261128101500_782-1.120"}]})
}

async fn send(request: reqwest::RequestBuilder, token: &str) -> (u16, Value) {
    let response = request
        .header("authorization", format!("Zoho-oauthtoken {token}"))
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn stores_a_call_and_reads_it_back() {
    let zoho = start(ZohoConfig::default()).await;
    let contact = zoho.add_contact("Max", "+49301234567");
    let lead = zoho.add_lead("Eva", "0301234567");
    let owner = zoho.add_user("anna@example.com");
    let token = token(&zoho).await;
    let url = |path: &str| format!("{}{path}", zoho.base_url());
    let (status, body) = send(
        client()
            .post(url("/crm/v8/Calls"))
            .json(&call(&contact, &owner)),
        &token,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"][0]["status"], "success");
    let id = body["data"][0]["details"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(zoho.calls()[0].fields["Call_Duration"], "01:00");

    let (status, found) = send(
        client().get(url("/crm/v8/Contacts/search?phone=%2B49301234567")),
        &token,
    )
    .await;
    assert_eq!(
        (status, found["data"][0]["id"].as_str()),
        (200, Some(contact.as_str()))
    );
    let (status, _) = send(
        client().get(url("/crm/v8/Contacts/search?phone=0301234567")),
        &token,
    )
    .await;
    assert_eq!(status, 204);
    let (_, found) = send(
        client().get(url("/crm/v8/Leads/search?phone=0301234567")),
        &token,
    )
    .await;
    assert_eq!(found["data"][0]["id"], lead.as_str());
    let criteria = "/crm/v8/Calls/search?criteria=(Callhook_Id:equals:261128101500_782-1.120)";
    let (_, found) = send(client().get(url(criteria)), &token).await;
    assert_eq!(found["data"][0]["id"], id.as_str());

    let (_, read) = send(
        client().get(url(&format!("/crm/v8/Calls/{id}?fields=Description"))),
        &token,
    )
    .await;
    let description = read["data"][0]["Description"]
        .as_str()
        .expect("description");
    let update =
        json!({"data": [{"Description": format!("{description}\nRecording: https://x/r.mp3")}]});
    let (status, _) = send(
        client()
            .put(url(&format!("/crm/v8/Calls/{id}")))
            .json(&update),
        &token,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        zoho.calls()[0].fields["Description"]
            .as_str()
            .unwrap()
            .ends_with("Recording: https://x/r.mp3")
    );
    zoho.delete_call(&id);
    let (status, _) = send(client().get(url(&format!("/crm/v8/Calls/{id}"))), &token).await;
    assert_eq!(status, 204);

    for n in 0..3 {
        zoho.add_user(&format!("u{n}@example.com"));
    }
    let (_, page) = send(
        client().get(url("/crm/v8/users?type=ActiveUsers&page=1&per_page=2")),
        &token,
    )
    .await;
    assert_eq!(
        (
            page["users"].as_array().unwrap().len(),
            &page["info"]["more_records"]
        ),
        (2, &json!(true))
    );
    let (_, page) = send(
        client().get(url("/crm/v8/users?type=ActiveUsers&page=2&per_page=2")),
        &token,
    )
    .await;
    assert_eq!(
        (
            page["users"][1]["email"].as_str(),
            &page["info"]["more_records"]
        ),
        (Some("u2@example.com"), &json!(false))
    );
}

#[tokio::test]
async fn refuses_what_zoho_refuses() {
    let zoho = start(ZohoConfig::default()).await;
    let contact = zoho.add_contact("Max", "+49301234567");
    let owner = zoho.add_user("anna@example.com");
    let token = token(&zoho).await;
    let cases: [(&str, Option<Value>, &str, &str); 11] = [
        (
            "Call_Start_Time",
            Some(json!("2026-11-28T09:15:05Z")),
            "INVALID_DATA",
            "Call_Start_Time",
        ),
        (
            "Call_Start_Time",
            Some(json!("2999-11-28T09:15:05+00:00")),
            "INVALID_DATA",
            "Call_Start_Time",
        ),
        (
            "Call_Start_Time",
            None,
            "MANDATORY_NOT_FOUND",
            "Call_Start_Time",
        ),
        (
            "Call_Type",
            Some(json!("Incoming")),
            "INVALID_DATA",
            "Call_Type",
        ),
        (
            "Call_Duration",
            Some(json!("1:00")),
            "INVALID_DATA",
            "Call_Duration",
        ),
        (
            "Call_Duration",
            Some(json!("01:60")),
            "INVALID_DATA",
            "Call_Duration",
        ),
        (
            "Call_Duration",
            None,
            "MANDATORY_NOT_FOUND",
            "Call_Duration",
        ),
        (
            "Outbound_Call_Status",
            Some(json!("Done")),
            "INVALID_DATA",
            "Outbound_Call_Status",
        ),
        ("Who_Id", Some(json!({"id": "1"})), "INVALID_DATA", "Who_Id"),
        ("Owner", Some(json!({"id": "1"})), "INVALID_DATA", "Owner"),
        ("Recording", Some(json!("x")), "INVALID_DATA", "Recording"),
    ];
    let url = format!("{}/crm/v8/Calls", zoho.base_url());
    for (field, value, code, api_name) in cases {
        let mut body = call(&contact, &owner);
        match value {
            Some(value) => body["data"][0][field] = value,
            None => {
                body["data"][0].as_object_mut().unwrap().remove(field);
            }
        }
        let (status, answer) = send(client().post(&url).json(&body), &token).await;
        assert_eq!(status, 400, "{field}");
        assert_eq!(answer["data"][0]["code"], code, "{field}");
        assert_eq!(
            answer["data"][0]["details"]["api_name"], api_name,
            "{field}"
        );
        assert_eq!(
            answer["data"][0]["details"]["json_path"],
            format!("$.data[0].{api_name}")
        );
    }
    // A missed call needs no duration, 62 minutes are `62:05`.
    let mut missed = call(&contact, &owner);
    missed["data"][0]["Call_Type"] = json!("Missed");
    missed["data"][0]
        .as_object_mut()
        .unwrap()
        .remove("Call_Duration");
    assert_eq!(send(client().post(&url).json(&missed), &token).await.0, 201);
    let mut long = call(&contact, &owner);
    long["data"][0]["Call_Duration"] = json!("62:05");
    assert_eq!(send(client().post(&url).json(&long), &token).await.0, 201);
    assert_eq!(
        send(client().post(&url).json(&json!({"data": []})), &token)
            .await
            .0,
        400
    );
    // A lead instead of a contact: What_Id with its module.
    let lead = zoho.add_lead("Eva", "0301234567");
    let mut with_lead = call(&contact, &owner);
    let record = with_lead["data"][0].as_object_mut().unwrap();
    record.remove("Who_Id");
    record.insert("What_Id".into(), json!({"id": lead}));
    record.insert("$se_module".into(), json!("Leads"));
    assert_eq!(
        send(client().post(&url).json(&with_lead), &token).await.0,
        201
    );
    with_lead["data"][0]["$se_module"] = json!("Deals");
    assert_eq!(
        send(client().post(&url).json(&with_lead), &token).await.0,
        400
    );

    let bearer = client()
        .post(&url)
        .bearer_auth(&token)
        .json(&call(&contact, &owner))
        .send()
        .await
        .expect("send");
    assert_eq!(bearer.status(), 401);
    let body: Value = bearer.json().await.expect("json");
    assert_eq!(
        body,
        json!({"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token", "status": "error"})
    );
    zoho.expire_access_tokens();
    assert_eq!(
        send(client().post(&url).json(&call(&contact, &owner)), &token)
            .await
            .0,
        401
    );
    assert_eq!(zoho.calls().len(), 3);
}

#[tokio::test]
async fn token_endpoint_refuses_with_200_and_limits_to_ten() {
    let zoho = start(ZohoConfig::default()).await;
    let (status, body) = refresh(&zoho, "wrong").await;
    assert_eq!((status, body), (200, json!({"error": "invalid_code"})));
    for _ in 0..10 {
        let (status, body) = refresh(&zoho, "1000.refresh.standin").await;
        assert_eq!((status, body["expires_in"].as_u64()), (200, Some(3600)));
        assert_eq!(body["token_type"], "Bearer");
    }
    let (status, body) = refresh(&zoho, "1000.refresh.standin").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("Access Denied"))
    );
    assert_eq!(zoho.tokens_issued(), 10);
    assert!(zoho.requests()[0].query.contains("refresh_token=***"));

    let zoho = start(ZohoConfig::default()).await;
    zoho.faults().revoke_refresh_tokens();
    assert_eq!(
        refresh(&zoho, "1000.refresh.standin").await,
        (200, json!({"error": "invalid_code"}))
    );
}

#[tokio::test]
async fn limits_and_faults() {
    let zoho = start(ZohoConfig {
        max_in_flight: 1,
        ..ZohoConfig::default()
    })
    .await;
    let contact = zoho.add_contact("Max", "+49301234567");
    let owner = zoho.add_user("anna@example.com");
    let token = token(&zoho).await;
    let url = format!("{}/crm/v8/Calls", zoho.base_url());
    zoho.faults().delay(Duration::from_millis(1000));
    let slow = {
        let (request, token) = (
            client().post(&url).json(&call(&contact, &owner)),
            token.clone(),
        );
        tokio::spawn(async move { send(request, &token).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, body) = send(client().post(&url).json(&call(&contact, &owner)), &token).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("TOO_MANY_REQUESTS"))
    );
    assert_eq!(slow.await.expect("join").0, 201);
    zoho.faults().reset();

    zoho.faults().fail_after_store(1);
    assert_eq!(
        send(client().post(&url).json(&call(&contact, &owner)), &token)
            .await
            .0,
        500
    );
    assert_eq!(zoho.calls().len(), 2);
    zoho.faults().drop_after_store(1);
    let dropped = client()
        .post(&url)
        .header("authorization", format!("Zoho-oauthtoken {token}"))
        .json(&call(&contact, &owner))
        .send()
        .await;
    assert!(dropped.is_err());
    assert_eq!(zoho.calls().len(), 3);
    zoho.faults().rate_limit_burst(1);
    assert_eq!(
        send(client().post(&url).json(&call(&contact, &owner)), &token)
            .await
            .0,
        429
    );
    zoho.faults().revoke_token(true);
    assert_eq!(
        send(client().post(&url).json(&call(&contact, &owner)), &token)
            .await
            .0,
        401
    );
    assert_eq!(zoho.calls().len(), 3);
}
