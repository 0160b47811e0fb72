//! Every bound on what a plugin makes the host hold fails the delivery with a message naming
//! it, probed with the sandbox probe over real sockets.

use crate::support::*;
use callhook::queue::DeliveryOutcome;
use callhook::runtime::PluginLimits;
use callhook::runtime::bounds::{MAX_CONCURRENT_REQUESTS, MAX_MESSAGE, MAX_TABLE_ENTRIES};

fn failed_with(outcome: &DeliveryOutcome, needle: &str) -> bool {
    matches!(outcome, DeliveryOutcome::Failed { message } if message.contains(needle))
}

/// Runs the probe against `url` with `settings` and reports the outcome.
async fn probe_outcome(url: &str, settings: &[(&str, &str)]) -> DeliveryOutcome {
    probe_outcome_within(PluginLimits::default(), url, settings).await
}

/// Like [`probe_outcome`], with `limits`.
async fn probe_outcome_within(
    limits: PluginLimits,
    url: &str,
    settings: &[(&str, &str)],
) -> DeliveryOutcome {
    let (_dir, runtime) = runtime();
    let origin = url.split('/').take(3).collect::<Vec<_>>().join("/");
    let mut all = vec![("url", url)];
    all.extend_from_slice(settings);
    let mut spec = spec("bounded", &probe(), &[&origin], &all);
    spec.limits = limits;
    let plugin = runtime.load(spec).unwrap();
    deliver(&plugin, &ringing()).await
}

#[tokio::test]
async fn too_many_requests_at_once_fail_the_delivery() {
    let sink = Sink::start().await;
    let url = sink.url("/ok/parallel");
    let within = MAX_CONCURRENT_REQUESTS.to_string();
    let outcome = probe_outcome(&url, &[("mode", "parallel"), ("count", &within)]).await;
    assert_eq!(outcome, DeliveryOutcome::Delivered);
    let over = (MAX_CONCURRENT_REQUESTS + 1).to_string();
    let outcome = probe_outcome(&url, &[("mode", "parallel"), ("count", &over)]).await;
    assert!(
        failed_with(
            &outcome,
            &format!("(concurrent outgoing requests per delivery: {MAX_CONCURRENT_REQUESTS})")
        ),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn too_many_or_too_large_headers_fail_the_delivery() {
    let sink = Sink::start().await;
    let url = sink.url("/ok/headers");
    let outcome = probe_outcome(
        &url,
        &[("mode", "headers"), ("count", "100"), ("size", "1")],
    )
    .await;
    assert!(
        failed_with(&outcome, "(header fields per request: 64)"),
        "{outcome:?}"
    );
    let outcome = probe_outcome(
        &url,
        &[("mode", "headers"), ("count", "2"), ("size", "10000")],
    )
    .await;
    assert!(
        failed_with(&outcome, "(header bytes per request: 16384)"),
        "{outcome:?}"
    );
    let outcome = probe_outcome(
        &url,
        &[("mode", "headers"), ("count", "10"), ("size", "100")],
    )
    .await;
    assert_eq!(outcome, DeliveryOutcome::Delivered);
}

#[tokio::test]
async fn a_response_body_over_max_response_kb_fails_the_delivery() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/big", axum::routing::get(|| async { vec![b'x'; 8 << 10] }))
        .route(
            "/small",
            axum::routing::get(|| async { vec![b'x'; 4 << 10] }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let limits = PluginLimits {
        max_response_bytes: 4 << 10,
        ..PluginLimits::default()
    };
    let big = format!("http://{address}/big");
    let outcome = probe_outcome_within(limits, &big, &[("mode", "fetch")]).await;
    assert!(failed_with(&outcome, "(max_response_kb: 4)"), "{outcome:?}");
    let small = format!("http://{address}/small");
    let outcome = probe_outcome_within(limits, &small, &[("mode", "fetch")]).await;
    assert_eq!(outcome, DeliveryOutcome::Delivered);
    // The default bound lets the larger body through.
    assert_eq!(
        probe_outcome(&big, &[("mode", "fetch")]).await,
        DeliveryOutcome::Delivered
    );
}

#[tokio::test]
async fn too_many_host_resources_stop_the_plugin() {
    let over = (MAX_TABLE_ENTRIES + 1).to_string();
    let outcome = probe_outcome(
        "http://127.0.0.1:9/",
        &[("mode", "resources"), ("count", &over)],
    )
    .await;
    assert!(
        failed_with(
            &outcome,
            &format!("(resource table entries per instance: {MAX_TABLE_ENTRIES})")
        ),
        "{outcome:?}"
    );
    let outcome = probe_outcome(
        "http://127.0.0.1:9/",
        &[("mode", "resources"), ("count", "100")],
    )
    .await;
    assert_eq!(outcome, DeliveryOutcome::Delivered);
}

#[tokio::test]
async fn a_long_plugin_error_message_is_cut() {
    let outcome = probe_outcome("http://127.0.0.1:9/", &[("mode", &"m".repeat(100_000))]).await;
    let message = outcome.message().unwrap();
    assert!(message.len() < MAX_MESSAGE + 100, "{} bytes", message.len());
    assert!(message.contains("bytes in all]"), "{message}");
}
