//! HubSpot: calls, contacts, owners, validation, limits, faults.

use std::time::Duration;

use callhook_crm_standins::{HubSpot, HubSpotConfig, HubSpotHandle};
use serde_json::{Value, json};

use crate::client;

const TOKEN: &str = "pat-standin";

fn call_body(owner: &str, contact: &str) -> Value {
    json!({"properties": {
        "hs_timestamp": "2026-11-28T09:15:05.000Z",
        "hs_call_title": "CompanyDID: answered incoming call from 0301234567 to 120, 00:01:00",
        "hs_call_body": "title<br>Call: 261128101500_782-1.120",
        "hs_call_direction": "INBOUND", "hs_call_status": "COMPLETED", "hs_call_duration": "60000",
        "hs_call_disposition": "f240bbac-87c9-4f6e-bf70-924b57d47db7", "hubspot_owner_id": owner,
        "hs_call_from_number": "+49301234567", "hs_call_to_number": "120",
        "callhook_id": "261128101500_782-1.120"},
      "associations": [{"to": {"id": contact},
        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 194}]}]})
}

async fn start(config: HubSpotConfig) -> HubSpotHandle {
    HubSpot::start(HubSpotConfig {
        id_property: Some("callhook_id".into()),
        ..config
    })
    .await
    .expect("start")
}

async fn post(hs: &HubSpotHandle, path: &str, body: &Value) -> (u16, Value) {
    let response = client()
        .post(format!("{}{path}", hs.base_url()))
        .bearer_auth(TOKEN)
        .json(body)
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn stores_a_correct_call_and_finds_it_again() {
    let hs = start(HubSpotConfig::default()).await;
    let owner = hs.add_owner("anna@example.com");
    let contact = hs.add_contact(&[("phone", "+49301234567")]);
    let (status, body) = post(&hs, "/crm/v3/objects/calls", &call_body(&owner, &contact)).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().expect("id");
    assert!(id.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(body["archived"], false);
    assert!(body["createdAt"].is_string() && body["updatedAt"].is_string());
    let calls = hs.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].properties["hs_call_duration"], "60000");
    assert_eq!(calls[0].contacts, [contact]);

    let search = json!({"filterGroups": [{"filters": [{"propertyName": "callhook_id",
        "operator": "EQ", "value": "261128101500_782-1.120"}]}], "limit": 1});
    let (status, found) = post(&hs, "/crm/v3/objects/calls/search", &search).await;
    assert_eq!(
        (status, found["results"][0]["id"].as_str()),
        (200, Some(id))
    );

    let contacts = json!({"filterGroups": [
        {"filters": [{"propertyName": "phone", "operator": "EQ", "value": "+49301234567"}]},
        {"filters": [{"propertyName": "mobilephone", "operator": "EQ", "value": "+49301234567"}]}],
        "limit": 1});
    let (_, found) = post(&hs, "/crm/v3/objects/contacts/search", &contacts).await;
    assert_eq!(found["results"][0]["id"], hs.contacts()[0].id.as_str());

    let owners = client()
        .get(format!(
            "{}/crm/v3/owners?email=ANNA@example.com",
            hs.base_url()
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("owners");
    let owners: Value = owners.json().await.expect("json");
    assert_eq!(owners["results"][0]["id"], owner.as_str());

    let patch = json!({"properties": {"hs_call_recording_url": "https://pbx.example.com/r.mp3"}});
    let patched = client()
        .patch(format!("{}/crm/v3/objects/calls/{id}", hs.base_url()))
        .bearer_auth(TOKEN)
        .json(&patch)
        .send()
        .await
        .expect("patch");
    assert_eq!(patched.status(), 200);
    let read = client()
        .get(format!(
            "{}/crm/v3/objects/calls/{id}?properties=hs_call_recording_url",
            hs.base_url()
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("get");
    let read: Value = read.json().await.expect("json");
    assert_eq!(
        read["properties"]["hs_call_recording_url"],
        "https://pbx.example.com/r.mp3"
    );
    let journal = hs.requests();
    assert_eq!(journal[0].header("authorization"), Some("Bearer ***"));
    assert_eq!(hs.request_count(), 6);
}

#[tokio::test]
async fn refuses_what_hubspot_refuses() {
    let hs = start(HubSpotConfig::default()).await;
    let owner = hs.add_owner("anna@example.com");
    let contact = hs.add_contact(&[("phone", "+49301234567")]);
    let cases: [(&str, Value, &str); 9] = [
        ("hs_call_direction", json!("IN"), "INVALID_OPTION"),
        ("hs_call_status", json!("DONE"), "INVALID_OPTION"),
        ("hs_call_disposition", json!("not-a-guid"), "INVALID_OPTION"),
        ("hs_call_duration", json!("60s"), "INVALID_INTEGER"),
        ("hs_call_duration", json!(60000), "INVALID_STRING"),
        ("hs_timestamp", json!("28.11.2026"), "INVALID_DATE"),
        (
            "hs_call_recording_url",
            json!("http://pbx/r.mp3"),
            "INVALID_URL",
        ),
        ("hubspot_owner_id", json!("999"), "INVALID_OWNER_ID"),
        ("hs_unknown", json!("x"), "PROPERTY_DOESNT_EXIST"),
    ];
    for (name, value, code) in cases {
        let mut body = call_body(&owner, &contact);
        body["properties"][name] = value;
        let (status, answer) = post(&hs, "/crm/v3/objects/calls", &body).await;
        assert_eq!(status, 400, "{name}");
        assert_eq!(answer["category"], "VALIDATION_ERROR", "{name}");
        assert_eq!(answer["errors"][0]["code"], code, "{name}");
        assert!(
            answer["message"]
                .as_str()
                .unwrap()
                .starts_with("Property values were not valid")
        );
    }
    let mut body = call_body(&owner, &contact);
    body["properties"]
        .as_object_mut()
        .unwrap()
        .remove("hs_timestamp");
    assert_eq!(post(&hs, "/crm/v3/objects/calls", &body).await.0, 400);
    let mut body = call_body(&owner, "404");
    body["associations"][0]["to"]["id"] = json!("404");
    assert_eq!(post(&hs, "/crm/v3/objects/calls", &body).await.0, 400);
    assert!(hs.calls().is_empty());

    let wrong = client()
        .post(format!("{}/crm/v3/objects/calls", hs.base_url()))
        .header("authorization", format!("Token {TOKEN}"))
        .json(&call_body(&owner, &contact))
        .send()
        .await
        .expect("send");
    assert_eq!(wrong.status(), 401);
    let wrong: Value = wrong.json().await.expect("json");
    assert_eq!(wrong["category"], "INVALID_AUTHENTICATION");
    assert_eq!(wrong["message"], "Authentication credentials not found.");
    let missing = client()
        .get(format!("{}/crm/v3/objects/calls/1", hs.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("send");
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn rate_limits_answer_429_without_retry_after() {
    let hs = start(HubSpotConfig {
        rate_limit: 3,
        ..HubSpotConfig::default()
    })
    .await;
    let url = format!("{}/crm/v3/owners", hs.base_url());
    let first = client()
        .get(&url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("send");
    assert_eq!(first.headers()["x-hubspot-ratelimit-max"], "3");
    assert_eq!(first.headers()["x-hubspot-ratelimit-remaining"], "2");
    assert_eq!(
        first.headers()["x-hubspot-ratelimit-interval-milliseconds"],
        "10000"
    );
    for _ in 0..2 {
        client()
            .get(&url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("send");
    }
    let limited = client()
        .get(&url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("send");
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().get("retry-after").is_none());
    let body: Value = limited.json().await.expect("json");
    assert_eq!(body["policyName"], "TEN_SECONDLY_ROLLING");
    assert_eq!(body["errorType"], "RATE_LIMIT");

    let hs = start(HubSpotConfig {
        searches_per_second: 2,
        ..HubSpotConfig::default()
    })
    .await;
    hs.faults().retry_after(Some(7));
    hs.faults().rate_limit_burst(2);
    let url = format!("{}/crm/v3/owners", hs.base_url());
    for _ in 0..2 {
        let limited = client()
            .get(&url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("send");
        assert_eq!(
            (limited.status().as_u16(), &limited.headers()["retry-after"]),
            (429, &"7".parse().unwrap())
        );
    }
    assert_eq!(
        client()
            .get(&url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("send")
            .status(),
        200
    );

    let search = json!({"filterGroups": [], "limit": 1});
    for _ in 0..2 {
        assert_eq!(
            post(&hs, "/crm/v3/objects/contacts/search", &search)
                .await
                .0,
            200
        );
    }
    let (status, body) = post(&hs, "/crm/v3/objects/contacts/search", &search).await;
    assert_eq!(
        (status, body["policyName"].as_str()),
        (429, Some("SECONDLY"))
    );
}

#[tokio::test]
async fn faults_store_then_fail_or_drop() {
    let hs = start(HubSpotConfig::default()).await;
    let owner = hs.add_owner("anna@example.com");
    let contact = hs.add_contact(&[("phone", "+49301234567")]);
    hs.faults().fail_after_store(1);
    let (status, _) = post(&hs, "/crm/v3/objects/calls", &call_body(&owner, &contact)).await;
    assert_eq!(status, 500);
    assert_eq!(hs.calls().len(), 1);

    hs.faults().drop_after_store(1);
    let dropped = client()
        .post(format!("{}/crm/v3/objects/calls", hs.base_url()))
        .bearer_auth(TOKEN)
        .json(&call_body(&owner, &contact))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    let error = dropped.expect_err("no answer");
    assert!(!error.is_timeout(), "{error}");
    assert_eq!(hs.calls().len(), 2);

    // Over HTTP: a token revoked, then a 502 burst.
    let control = |path: &str| {
        client()
            .post(format!("{}/_standin/{path}", hs.base_url()))
            .send()
    };
    assert_eq!(
        control("revoke_token?on=true")
            .await
            .expect("control")
            .status(),
        200
    );
    assert_eq!(
        post(&hs, "/crm/v3/objects/calls", &call_body(&owner, &contact))
            .await
            .0,
        401
    );
    control("reset").await.expect("control");
    assert_eq!(
        control("no_such_switch").await.expect("control").status(),
        404
    );
    assert_eq!(
        control("fail_after_store").await.expect("control").status(),
        400
    );
    control("status_burst?status=502&n=1")
        .await
        .expect("control");
    assert_eq!(
        post(&hs, "/crm/v3/objects/calls", &call_body(&owner, &contact))
            .await
            .0,
        502
    );
    assert_eq!(
        post(&hs, "/crm/v3/objects/calls", &call_body(&owner, &contact))
            .await
            .0,
        201
    );
    assert_eq!(hs.calls().len(), 3);
}

#[tokio::test]
async fn new_calls_show_in_search_after_the_delay() {
    let hs = start(HubSpotConfig {
        search_delay: Duration::from_millis(1000),
        ..HubSpotConfig::default()
    })
    .await;
    let owner = hs.add_owner("a@example.com");
    let contact = hs.add_contact(&[]);
    post(&hs, "/crm/v3/objects/calls", &call_body(&owner, &contact)).await;
    let search = json!({"filterGroups": [], "limit": 1});
    assert_eq!(
        post(&hs, "/crm/v3/objects/calls/search", &search).await.1["total"],
        0
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        post(&hs, "/crm/v3/objects/calls/search", &search).await.1["total"],
        1
    );
}
