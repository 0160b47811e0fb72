//! Cost of one delivery with the default plugin against a local sink, side by side with the
//! same formatting and request done natively in Rust, and with the same plugin built against
//! contract 0.1.0 (the committed fixture), which the host serves through its 0.1 bindings.
//!
//! Run: `cargo bench -p callhook --bench delivery`. Figures go to `docs/benchmarks.md`.

use axum::Router;
use axum::routing::any;
use callhook::calls::event::{CallEvent, CallId, Offered, UserType};
use callhook::queue::{DeliveryOutcome, DeliveryRequest};
use callhook::runtime::{GENERIC_WEBHOOK_WASM, PluginLimits, PluginSpec, RuntimeConfig};
use criterion::{Criterion, criterion_group, criterion_main};
use std::sync::Arc;

/// The default plugin as built against contract 0.1.0, kept for the compatibility tests.
const GENERIC_WEBHOOK_V0_1_0: &[u8] =
    include_bytes!("../../tests/plugins/fixtures/generic-webhook-v0.1.0.wasm");

fn event() -> CallEvent {
    CallEvent::Ringing(Offered {
        id: CallId {
            stamp: "210701165649".into(),
            pbx_call_id: 782,
            link: 0,
        },
        caller_id: "+425630434343".into(),
        did: "CompanyDID".into(),
        user: "120".into(),
        user_type: UserType::Queue,
        facts: Default::default(),
    })
}

fn sdk_event() -> callhook_plugin_sdk::Event {
    callhook_plugin_sdk::Event::Ringing(callhook_plugin_sdk::Offered {
        id: "210701165649_782-0".into(),
        callerid: "+425630434343".into(),
        did: "CompanyDID".into(),
        user: "120".into(),
        usertype: callhook_plugin_sdk::UserType::Queue,
        call_started_at: 1_625_158_609_000,
        offered_at: 1_625_158_609_000,
        callerid_e164: None,
        user_info: None,
        queue: None,
        internal: false,
    })
}

fn bench(c: &mut Criterion) {
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let sink = tokio.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app = Router::new().fallback(any(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{address}")
    });
    let dir = tempfile::tempdir().unwrap();
    let db = redb::Database::create(dir.path().join("bench.redb")).unwrap();
    let runtime = callhook::app::plugins::runtime(Arc::new(db), RuntimeConfig::default()).unwrap();
    let url = format!("{sink}/hook");
    let load = |name: &str, wasm: &[u8]| {
        runtime
            .load(PluginSpec {
                name: name.into(),
                wasm: wasm.into(),
                allowed_hosts: vec![sink.clone()],
                limits: PluginLimits::default(),
                settings: [("webhook_url".to_string(), url.clone())].into(),
                secrets: Default::default(),
                ca_file: None,
            })
            .unwrap()
    };
    let plugin = load("generic-webhook", GENERIC_WEBHOOK_WASM);
    let plugin_v0_1 = load("generic-webhook-v0.1.0", GENERIC_WEBHOOK_V0_1_0);
    let event = event();
    let key = event.key();

    let mut group = c.benchmark_group("delivery");
    for (name, plugin) in [
        ("wasm: instantiate + format + GET to local sink", &plugin),
        (
            "wasm, contract 0.1.0: instantiate + format + GET to local sink",
            &plugin_v0_1,
        ),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&tokio).iter(|| async {
                let outcome = plugin
                    .deliver(DeliveryRequest {
                        event: &event,
                        idempotency_key: &key,
                        attempt: 1,
                        timestamp: 1_614_265_330,
                        replayed: false,
                    })
                    .await;
                assert_eq!(outcome, DeliveryOutcome::Delivered);
            })
        });
    }

    let client = reqwest::Client::new();
    let options = generic_webhook::render::Options::default();
    let sdk_event = sdk_event();
    group.bench_function("native: format + GET to local sink (new connection)", |b| {
        b.to_async(&tokio).iter(|| async {
            let generic_webhook::render::Rendered::Get { url, .. } =
                generic_webhook::render::render(&sdk_event, &options, &url)
            else {
                unreachable!("call events are GETs by default")
            };
            // A fresh connection each time, as the plugin makes one per delivery.
            let response = client
                .get(url)
                .header("connection", "close")
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success());
        })
    });
    group.bench_function("native: format only", |b| {
        b.iter(|| generic_webhook::render::render(&sdk_event, &options, &url))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(200).measurement_time(std::time::Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
