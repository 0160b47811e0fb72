//! `POST /connect/token` and the Bearer rule.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use callhook_simulator::{SimConfig, SimHandle};
use serde_json::Value;

use crate::support::{Events, get, http, start, token, upgrade_status};

/// The simulator's answer to a token request with the default client's credentials.
async fn token_reply(sim: &SimHandle) -> Value {
    http()
        .post(format!("{}/connect/token", sim.base_url()))
        .form(&[
            ("client_id", "callhook"),
            ("client_secret", "secret"),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `exp − iat` of the reply's access token, in seconds.
fn jwt_lifetime_s(reply: &Value) -> u64 {
    let claims = claims(reply["access_token"].as_str().unwrap());
    claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap()
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("three JWT parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url"))
        .expect("claims JSON")
}

#[tokio::test]
async fn issues_a_bearer_jwt_with_exp_and_seconds() {
    let sim = start(SimConfig::default()).await;
    let reply = token_reply(&sim).await;
    assert_eq!(reply["token_type"], "Bearer");
    assert_eq!(reply["expires_in"], 3600);
    assert_eq!(jwt_lifetime_s(&reply), 3600);
    assert_eq!(sim.tokens_issued(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn reports_minutes_when_asked() {
    let sim = start(SimConfig {
        expires_in_minutes: true,
        ..SimConfig::default()
    })
    .await;
    let reply = token_reply(&sim).await;
    assert_eq!(reply["expires_in"], 60);
    assert_eq!(jwt_lifetime_s(&reply), 3600);
    sim.shutdown().await;
}

#[tokio::test]
async fn reports_a_fixed_expires_in_with_an_hour_long_jwt() {
    let sim = start(SimConfig {
        expires_in: Some(60),
        ..SimConfig::default()
    })
    .await;
    let reply = token_reply(&sim).await;
    assert_eq!(reply["expires_in"], 60);
    assert_eq!(jwt_lifetime_s(&reply), 3600);
    sim.shutdown().await;
}

#[tokio::test]
async fn accepts_multipart_bodies() {
    let sim = start(SimConfig::default()).await;
    let form = reqwest::multipart::Form::new()
        .text("client_id", "callhook")
        .text("client_secret", "secret")
        .text("grant_type", "client_credentials");
    let reply = http()
        .post(format!("{}/connect/token", sim.base_url()))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let body: Value = reply.json().await.unwrap();
    assert!(body["access_token"].as_str().unwrap().split('.').count() == 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn rejects_wrong_credentials_with_json_errors() {
    let sim = start(SimConfig::default()).await;
    let cases = [
        (
            "callhook",
            "wrong",
            "client_credentials",
            401,
            "invalid_client",
        ),
        (
            "stranger",
            "secret",
            "client_credentials",
            400,
            "invalid_client",
        ),
        (
            "callhook",
            "secret",
            "password",
            400,
            "unsupported_grant_type",
        ),
    ];
    for (id, secret, grant, status, error) in cases {
        let reply = http()
            .post(format!("{}/connect/token", sim.base_url()))
            .form(&[
                ("client_id", id),
                ("client_secret", secret),
                ("grant_type", grant),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), status, "{id}/{secret}/{grant}");
        let body: Value = reply.json().await.unwrap();
        assert_eq!(body["error"], error, "{id}/{secret}/{grant}");
    }
    assert_eq!(sim.tokens_issued(), 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_new_token_supersedes_the_old_at_once() {
    let sim = start(SimConfig::default()).await;
    let old = token(&sim).await;
    assert_eq!(get(&sim, &old, "/callcontrol").await.status(), 200);
    let new = token(&sim).await;
    assert_ne!(old, new);
    assert_eq!(get(&sim, &old, "/callcontrol").await.status(), 401);
    assert_eq!(get(&sim, &old, "/xapi/v1/Recordings").await.status(), 401);
    let refused = Events::connect(&sim, &old)
        .await
        .err()
        .expect("old token refused");
    assert_eq!(upgrade_status(&refused), Some(401));
    assert_eq!(get(&sim, &new, "/callcontrol").await.status(), 200);
    Events::connect(&sim, &new)
        .await
        .expect("new token upgrades");
    assert_eq!(sim.tokens_issued(), 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn supersede_fault_invalidates_without_counting() {
    let sim = start(SimConfig::default()).await;
    let held = token(&sim).await;
    sim.faults().supersede_token();
    assert_eq!(get(&sim, &held, "/callcontrol").await.status(), 401);
    assert_eq!(sim.tokens_issued(), 1);
    let fresh = token(&sim).await;
    assert_eq!(get(&sim, &fresh, "/callcontrol").await.status(), 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn requests_without_the_bearer_get_401() {
    let sim = start(SimConfig::default()).await;
    let reply = http()
        .get(format!("{}/callcontrol", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 401);
    assert_eq!(get(&sim, "not-a-token", "/callcontrol").await.status(), 401);
    sim.shutdown().await;
}

#[tokio::test]
async fn short_lived_tokens_expire() {
    let lifetime = Duration::from_millis(300);
    let sim = start(SimConfig {
        token_lifetime: lifetime,
        ..SimConfig::default()
    })
    .await;
    let short = token(&sim).await;
    assert_eq!(get(&sim, &short, "/callcontrol").await.status(), 200);
    // The condition is the clock itself: wait out the lifetime.
    tokio::time::sleep(lifetime).await;
    assert_eq!(get(&sim, &short, "/callcontrol").await.status(), 401);
    sim.shutdown().await;
}
