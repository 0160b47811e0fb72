//! The compiled `generic-webhook` plugin in the real runtime, against a real local sink:
//! the exact wire format of `call-events.md`, section 6.

use crate::support::*;
use base64::Engine as _;
use callhook::calls::event::{Direction, TransferType};
use callhook::queue::DeliveryOutcome;
use callhook::runtime::{GENERIC_WEBHOOK_WASM, Plugin};
use hmac::Mac;
use std::time::Duration;

async fn generic_webhook(
    sink: &Sink,
    settings: &[(&str, &str)],
    secrets: &[(&str, &str)],
) -> (tempfile::TempDir, Plugin) {
    let (dir, runtime) = runtime();
    let mut spec = spec(
        "generic-webhook",
        GENERIC_WEBHOOK_WASM,
        &[&sink.origin()],
        settings,
    );
    spec.secrets = to_map(secrets);
    (dir, runtime.load(spec).unwrap())
}

#[tokio::test]
async fn every_call_event_is_a_get_with_fields_in_spec_order() {
    let sink = Sink::start().await;
    let url = sink.url("/3cx/events");
    let (_dir, plugin) = generic_webhook(&sink, &[("webhook_url", &url)], &[]).await;
    let events = [
        ringing(),
        dialing(),
        started(Direction::Incoming, TransferType::NotDef),
        started(Direction::Outgoing, TransferType::Blind),
        ended(),
    ];
    for event in &events {
        assert_eq!(deliver(&plugin, event).await, DeliveryOutcome::Delivered);
    }
    let received = sink.wait_for(events.len()).await;
    let targets: Vec<&str> = received.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(
        targets,
        [
            "/3cx/events?event=ringing&callerid=%2B425630434343&did=CompanyDID&user=120&usertype=queue&id=210701165649_782-0",
            "/3cx/events?event=dialing&callerid=%2B425630434343&did=&user=120&usertype=ext&id=210701165649_782-0",
            "/3cx/events?event=incomingcall_started&callerid=%2B425630434343&user=120&did=&trtype=NotDef&id=210701165649_782-1",
            "/3cx/events?event=outgoingcall_started&callerid=%2B425630434343&user=120&did=&trtype=Blind&id=210701165649_782-1",
            "/3cx/events?event=incoming&callerid=%2B425630434343&user=120&did=CompanyDID&finishtype=Ok&transfer=true&duration=133&title=CompanyDID%3A%20answered%20incoming%20call%20from%20%2B425630434343%20to%20120%2C%2000%3A02%3A13&id=210701165649_782-1",
        ]
    );
    for request in &received {
        assert_eq!(request.method, "GET");
        assert!(request.body.is_empty());
        assert_eq!(
            request.header("webhook-signature"),
            None,
            "unsigned without a secret"
        );
    }
}

#[tokio::test]
async fn post_mode_sends_flat_json_and_aliases_rename_events() {
    let sink = Sink::start().await;
    let url = sink.url("/events");
    let settings = [
        ("webhook_url", url.as_str()),
        ("post", "1"),
        ("duration_format", "clock"),
        ("event_alias.incoming", "hangupincoming"),
    ];
    let (_dir, plugin) = generic_webhook(&sink, &settings, &[]).await;
    assert_eq!(deliver(&plugin, &ended()).await, DeliveryOutcome::Delivered);
    let request = &sink.wait_for(1).await[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/events");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        std::str::from_utf8(&request.body).unwrap(),
        r#"{"event":"hangupincoming","callerid":"+425630434343","user":"120","did":"CompanyDID","finishtype":"Ok","transfer":"true","duration":"00:02:13","title":"CompanyDID: answered incoming call from +425630434343 to 120, 00:02:13","id":"210701165649_782-1"}"#
    );
}

#[tokio::test]
async fn recordings_post_files_and_optionally_the_end_fields() {
    let sink = Sink::start().await;
    let url = sink.url("/recordings");
    let (_dir, plain) = generic_webhook(&sink, &[("webhook_post_url", &url)], &[]).await;
    let settings = [
        ("webhook_post_url", url.as_str()),
        ("recording_full_info", "1"),
    ];
    let (_dir2, full) = generic_webhook(&sink, &settings, &[]).await;
    assert_eq!(
        deliver(&plain, &recording()).await,
        DeliveryOutcome::Delivered
    );
    assert_eq!(
        deliver(&full, &recording()).await,
        DeliveryOutcome::Delivered
    );
    let received = sink.wait_for(2).await;
    let files = r#""FILES":["https://pbx.example.com:5001/webapi/recording/210701165649_782-1-1.mp3","https://pbx.example.com:5001/webapi/recording/210701165649_782-1-2.mp3"],"id":"210701165649_782-1""#;
    assert_eq!(received[0].method, "POST");
    assert_eq!(received[0].target, "/recordings");
    assert_eq!(
        std::str::from_utf8(&received[0].body).unwrap(),
        format!("{{{files}}}")
    );
    assert_eq!(
        std::str::from_utf8(&received[1].body).unwrap(),
        format!(
            r#"{{{files},"event":"incoming","callerid":"+425630434343","user":"120","did":"CompanyDID","finishtype":"Ok","transfer":"true","duration":"133","title":"CompanyDID: answered incoming call from +425630434343 to 120, 00:02:13"}}"#
        )
    );
}

#[tokio::test]
async fn events_without_a_configured_url_are_skipped_successfully() {
    let sink = Sink::start().await;
    let (_dir, plugin) = generic_webhook(&sink, &[], &[]).await;
    assert_eq!(
        deliver(&plugin, &ringing()).await,
        DeliveryOutcome::Delivered
    );
    assert_eq!(
        deliver(&plugin, &recording()).await,
        DeliveryOutcome::Delivered
    );
    assert!(sink.received().is_empty());
}

/// HMAC-SHA256 of `{id}.{timestamp}.{body}`, computed here independently of the SDK.
fn expected_signature(secret_b64: &str, id: &str, timestamp: u64, body: &[u8]) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret_b64)
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

#[tokio::test]
async fn a_signing_secret_adds_standard_webhooks_headers() {
    const KEY: &str = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let secret = format!("whsec_{KEY}");
    let sink = Sink::start().await;
    let get_url = sink.url("/get");
    let post_url = sink.url("/post");
    let (_dir, get) = generic_webhook(
        &sink,
        &[("webhook_url", &get_url)],
        &[("signing_secret", &secret)],
    )
    .await;
    let settings = [("webhook_url", post_url.as_str()), ("post", "1")];
    let (_dir2, post) = generic_webhook(&sink, &settings, &[("signing_secret", &secret)]).await;
    assert_eq!(deliver(&get, &ringing()).await, DeliveryOutcome::Delivered);
    assert_eq!(deliver(&post, &ended()).await, DeliveryOutcome::Delivered);
    let received = sink.wait_for(2).await;

    let (get_request, post_request) = (&received[0], &received[1]);
    let get_id = "210701165649_782-0.ringing.120";
    assert_eq!(get_request.header("webhook-id"), Some(get_id));
    assert_eq!(get_request.header("idempotency-key"), Some(get_id));
    assert_eq!(get_request.header("webhook-timestamp"), Some("1614265330"));
    assert_eq!(
        get_request.header("webhook-signature").unwrap(),
        expected_signature(KEY, get_id, 1_614_265_330, get_request.query().as_bytes())
    );
    let post_id = "210701165649_782-1.incoming.120";
    assert_eq!(post_request.header("webhook-id"), Some(post_id));
    assert_eq!(
        post_request.header("webhook-signature").unwrap(),
        expected_signature(KEY, post_id, 1_614_265_330, &post_request.body)
    );
}

/// A check of one delivery outcome.
type Expectation = fn(&DeliveryOutcome) -> bool;

#[tokio::test]
async fn receiver_statuses_become_delivery_outcomes() {
    let sink = Sink::start().await;
    let cases: &[(&str, Expectation)] = &[
        ("/status/500", |o| {
            matches!(o, DeliveryOutcome::Retry { after: None, .. })
        }),
        (
            "/status/429",
            |o| matches!(o, DeliveryOutcome::Retry { after: Some(d), .. } if *d == Duration::from_secs(7)),
        ),
        (
            "/status/503",
            |o| matches!(o, DeliveryOutcome::Retry { after: Some(d), .. } if *d == Duration::from_secs(7)),
        ),
        ("/status/408", |o| {
            matches!(o, DeliveryOutcome::Retry { .. })
        }),
        ("/status/404", |o| {
            matches!(
                o,
                DeliveryOutcome::Rejected {
                    target_gone: false,
                    ..
                }
            )
        }),
        ("/status/410", |o| {
            matches!(
                o,
                DeliveryOutcome::Rejected {
                    target_gone: true,
                    ..
                }
            )
        }),
        (
            "/redirect",
            |o| matches!(o, DeliveryOutcome::Rejected { message, .. } if message.contains("HTTP 302")),
        ),
    ];
    for (path, expected) in cases {
        let url = sink.url(path);
        let (_dir, plugin) = generic_webhook(&sink, &[("webhook_url", &url)], &[]).await;
        let outcome = deliver(&plugin, &ringing()).await;
        assert!(expected(&outcome), "{path}: {outcome:?}");
    }
    // The redirect was not followed.
    assert!(
        sink.received()
            .iter()
            .all(|r| !r.target.starts_with("/ok/redirected"))
    );
}

#[tokio::test]
async fn a_down_receiver_is_retryable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let (_dir, runtime) = runtime();
    let url = format!("http://{address}/hook");
    let spec = spec(
        "generic-webhook",
        GENERIC_WEBHOOK_WASM,
        &[&format!("http://{address}")],
        &[("webhook_url", &url)],
    );
    let plugin = runtime.load(spec).unwrap();
    let outcome = deliver(&plugin, &ringing()).await;
    assert!(
        matches!(outcome, DeliveryOutcome::Retry { .. }),
        "{outcome:?}"
    );
}
