//! The plugins' own HTTP sender over real sockets: one name lookup per connection, checked
//! before use; kept-alive connections reused by fresh instances; HTTPS trust through
//! `ca_file`.

#[path = "../../benches/support/https_receiver.rs"]
mod https_receiver;

use crate::support::*;
use callhook::queue::DeliveryOutcome;
use callhook::runtime::{PluginRuntime, Resolution, Resolver, RuntimeConfig};
use https_receiver::HttpsReceiver;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A resolver that gives its answers in turn (repeating the last) and counts the lookups.
#[derive(Debug, Default)]
struct FakeResolver {
    answers: Mutex<VecDeque<Vec<IpAddr>>>,
    lookups: AtomicUsize,
}

impl FakeResolver {
    fn answering(answers: &[&str]) -> Arc<Self> {
        let answers = answers.iter().map(|a| vec![a.parse().unwrap()]).collect();
        Arc::new(FakeResolver {
            answers: Mutex::new(answers),
            lookups: AtomicUsize::new(0),
        })
    }

    fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }
}

impl Resolver for FakeResolver {
    fn resolve<'a>(&'a self, _host: &'a str, _port: u16) -> Resolution<'a> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let mut answers = self.answers.lock().unwrap();
        let answer = if answers.len() > 1 {
            answers.pop_front().unwrap()
        } else {
            answers.front().cloned().unwrap_or_default()
        };
        Box::pin(async move { Ok(answer) })
    }
}

/// A runtime whose plugins look names up through `resolver`.
fn runtime_with(resolver: Arc<FakeResolver>) -> (tempfile::TempDir, PluginRuntime) {
    let dir = tempfile::tempdir().unwrap();
    let kv = callhook::runtime::KvStore::new(database(&dir, "egress.redb"), Default::default());
    let config = RuntimeConfig {
        resolver,
        ..RuntimeConfig::default()
    };
    (dir, PluginRuntime::new(config, kv).unwrap())
}

fn port_of(origin: &str) -> u16 {
    origin.rsplit(':').next().unwrap().parse().unwrap()
}

fn rejected_with(outcome: &DeliveryOutcome, needle: &str) -> bool {
    matches!(outcome, DeliveryOutcome::Rejected { message, .. } if message.contains(needle))
}

/// The name is looked up once, its answer checked and used; a later answer that points at the
/// metadata endpoint is never connected to without being checked, and is refused.
#[tokio::test]
async fn a_name_is_resolved_once_and_a_later_metadata_answer_is_refused() {
    let sink = Sink::start().await;
    let port = port_of(&sink.origin());
    let resolver = FakeResolver::answering(&["127.0.0.1", "169.254.169.254"]);
    let (_dir, runtime) = runtime_with(resolver.clone());
    let origin = format!("http://crm.test:{port}");
    let url = format!("{origin}/ok/pinned");
    let load = || {
        runtime
            .load(spec(
                "pinned",
                &probe(),
                &[&origin],
                &[("mode", "fetch"), ("url", &url)],
            ))
            .unwrap()
    };

    let plugin = load();
    for _ in 0..3 {
        assert_eq!(
            deliver(&plugin, &ringing()).await,
            DeliveryOutcome::Delivered
        );
    }
    assert_eq!(sink.wait_for(3).await.len(), 3);
    assert_eq!(
        resolver.lookups(),
        1,
        "fresh instances reuse the kept-alive, checked connection"
    );

    // A reloaded plugin has a new, empty pool: it looks the name up again, and this time the
    // answer is the metadata endpoint.
    let reloaded = load();
    let outcome = deliver(&reloaded, &ringing()).await;
    assert!(
        rejected_with(
            &outcome,
            "resolves to 169.254.169.254, a cloud metadata endpoint"
        ),
        "{outcome:?}"
    );
    assert_eq!(resolver.lookups(), 2);
    assert_eq!(sink.received().len(), 3, "nothing more reached the sink");
}

/// A receiver behind a private CA is trusted with the plugin's `ca_file` and not without it;
/// with it, deliveries share one TLS connection.
#[tokio::test]
async fn https_to_a_private_ca_works_with_ca_file_and_fails_without() {
    let receiver = HttpsReceiver::start(&[b"http/1.1"], true).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &receiver.ca_pem).unwrap();
    let (_dir, runtime) = runtime_with(FakeResolver::answering(&["127.0.0.1"]));
    let origin = format!("https://localhost:{}", receiver.port);
    let url = format!("{origin}/hook");
    let load = |ca: Option<&std::path::Path>| {
        let mut spec = spec(
            "https",
            &probe(),
            &[&origin],
            &[("mode", "fetch"), ("url", &url)],
        );
        spec.ca_file = ca.map(|p| p.to_path_buf());
        runtime.load(spec).unwrap()
    };

    let untrusting = load(None);
    let outcome = deliver(&untrusting, &ringing()).await;
    assert_ne!(outcome, DeliveryOutcome::Delivered);
    assert_eq!(receiver.handshakes(), 0, "{outcome:?}");

    let trusting = load(Some(&ca_file));
    for _ in 0..5 {
        assert_eq!(
            deliver(&trusting, &ringing()).await,
            DeliveryOutcome::Delivered
        );
    }
    assert_eq!(
        receiver.handshakes(),
        1,
        "one TLS handshake for five deliveries"
    );
}

/// Where the receiver offers HTTP/2, deliveries use it, over one connection.
#[tokio::test]
async fn http2_is_used_where_the_server_offers_it() {
    let receiver = HttpsReceiver::start(&[b"h2", b"http/1.1"], true).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &receiver.ca_pem).unwrap();
    let (_dir, runtime) = runtime_with(FakeResolver::answering(&["127.0.0.1"]));
    let origin = format!("https://localhost:{}", receiver.port);
    let url = format!("{origin}/hook");
    let mut spec = spec(
        "h2",
        &probe(),
        &[&origin],
        &[("mode", "fetch"), ("url", &url)],
    );
    spec.ca_file = Some(ca_file);
    let plugin = runtime.load(spec).unwrap();
    for _ in 0..3 {
        assert_eq!(
            deliver(&plugin, &ringing()).await,
            DeliveryOutcome::Delivered
        );
    }
    assert_eq!(receiver.http2_requests(), 3);
    assert_eq!(receiver.handshakes(), 1);
}

/// A plugin's deliveries together keep at most `MAX_REQUESTS_PER_ORIGIN` requests, and so
/// connections, open to one origin; the others wait for one to end and are delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_to_one_origin_are_capped_across_deliveries() {
    use callhook::runtime::sender::MAX_REQUESTS_PER_ORIGIN;
    #[derive(Default)]
    struct InFlight {
        now: AtomicUsize,
        most: AtomicUsize,
        served: AtomicUsize,
    }
    let counts = Arc::new(InFlight::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let state = counts.clone();
    let app = axum::Router::new().fallback(move || {
        let counts = state.clone();
        async move {
            let now = counts.now.fetch_add(1, Ordering::SeqCst) + 1;
            counts.most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            counts.now.fetch_sub(1, Ordering::SeqCst);
            counts.served.fetch_add(1, Ordering::SeqCst);
            "ok"
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (_dir, runtime) = runtime_with(FakeResolver::answering(&["127.0.0.1"]));
    let url = format!("{origin}/hook");
    let plugin = runtime
        .load(spec(
            "busy",
            callhook::runtime::GENERIC_WEBHOOK_WASM,
            &[&origin],
            &[("webhook_url", &url)],
        ))
        .unwrap();
    let deliveries = MAX_REQUESTS_PER_ORIGIN + 8;
    let event = ringing();
    let outcomes =
        futures_util::future::join_all((0..deliveries).map(|_| deliver(&plugin, &event))).await;
    assert!(
        outcomes.iter().all(|o| *o == DeliveryOutcome::Delivered),
        "{outcomes:?}"
    );
    assert_eq!(counts.served.load(Ordering::SeqCst), deliveries);
    let most = counts.most.load(Ordering::SeqCst);
    assert!(
        most <= MAX_REQUESTS_PER_ORIGIN,
        "{most} requests at once to one origin"
    );
}

/// A header field that `http.send` must not carry (one the host sets itself, or a malformed
/// name or value) fails the delivery for good, naming the field, and nothing is sent; a
/// plain one goes through.
#[tokio::test]
async fn http_send_refuses_forbidden_and_malformed_header_fields_and_sends_nothing() {
    let sink = Sink::start().await;
    let (_dir, runtime) = runtime();
    let url = sink.url("/ok/header");
    let origin = url.split('/').take(3).collect::<Vec<_>>().join("/");
    let outcome = async |name: &str, value: &str| {
        let settings = [
            ("mode", "header"),
            ("url", url.as_str()),
            ("header_name", name),
            ("header_value", value),
        ];
        let plugin = runtime
            .load(spec("header", &probe(), &[&origin], &settings))
            .unwrap();
        deliver(&plugin, &ringing()).await
    };
    for (name, value) in [
        ("connection", "close"),
        ("host", "metadata.example"),
        ("transfer-encoding", "chunked"),
        ("bad name", "1"),
        ("x-split", "a\r\nx-injected: 1"),
    ] {
        let outcome = outcome(name, value).await;
        let expected = format!("the header field `{name}` is malformed or one the host sets");
        assert!(
            rejected_with(&outcome, &expected),
            "{name}: {value:?}: {outcome:?}"
        );
    }
    assert!(sink.received().is_empty(), "{:?}", sink.received());
    assert_eq!(outcome("x-plain", "1").await, DeliveryOutcome::Delivered);
    let received = sink.wait_for(1).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].header("x-plain"), Some("1"));
}
