//! End to end: 3CX simulator → connector → engine → generic-webhook → local sink, over real
//! HTTP and WebSocket on 127.0.0.1, compared with each scenario's expected webhooks.

use crate::scenarios::assert_matches;
use crate::support::*;
use callhook::app::Pipeline;
use callhook::calls::{Engine, EngineConfig};
use callhook::app::Plugins;
use callhook::queue::{Queue, QueueConfig};
use callhook::pbx::{Connector, ConnectorConfig};
use callhook::runtime::GENERIC_WEBHOOK_WASM;
use callhook_simulator::{Scenario, SimConfig, Simulator};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Scenario seconds per real second: 0.05 plays a 100 s call in 5 s.
const TIME_SCALE: f64 = 0.05;
/// The engine's grace period, scaled with the calls (2 s × 0.05 = 100 ms) and widened to
/// 300 ms so a loaded machine's scheduling delays cannot split a wave or a transfer. No
/// scenario has a pause between 2 s and 6 s (scenario time) that must count as "over".
const GRACE: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios_one_to_nine_reach_the_sink_as_expected() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let names = [
        "01-direct-inbound-answered",
        "02-direct-inbound-missed",
        "03-queue-answered",
        "04-queue-missed-two-waves",
        "05-blind-transfer",
        "06-attended-transfer",
        "07-blind-transfer-unanswered",
        "08-outbound-answered",
        "09-outbound-unanswered",
    ];
    let scenarios: Vec<Scenario> = names.iter().map(|n| Scenario::builtin(n).unwrap()).collect();
    let simulator = Simulator::start(SimConfig::default()).await.unwrap();
    for scenario in &scenarios {
        simulator.add_directory(&scenario.directory());
    }
    let sink = Sink::start().await;
    let (_dir, runtime) = runtime();
    let url = sink.url("/events");
    let plugin = runtime
        .load(spec("generic-webhook", GENERIC_WEBHOOK_WASM, &[&sink.origin()], &[("webhook_url", &url)]))
        .unwrap();
    let config = simulator.config();
    let connector = Connector::new(
        ConnectorConfig::new(
            simulator.base_url().parse().unwrap(),
            config.client_id.clone(),
            config.client_secret.clone(),
        ),
        None,
    )
    .unwrap();
    // The grace period is scaled with the calls, so waves and transfers keep their meaning.
    let engine = Engine::new(EngineConfig {
        grace: GRACE,
        ..EngineConfig::default()
    });
    let plugins = Plugins::new([plugin]);
    let queue_config = QueueConfig::new(Default::default(), plugins.names());
    let queue = Queue::open(database(&_dir, "queue.redb"), queue_config, plugins).unwrap();
    let pipeline = Pipeline::start(connector, engine, Arc::new(queue), None, None);
    simulator.wait_snapshots(1).await;

    let plays = scenarios.iter().map(|s| simulator.play(s, TIME_SCALE));
    for played in futures_util::future::join_all(plays).await {
        played.unwrap();
    }
    let expected: usize = scenarios.iter().map(|s| s.expected().len()).sum();
    let received = sink.wait_for(expected).await;
    // Nothing more arrives once the grace periods are over.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.received().len(), expected, "{:#?}", sink.received());
    pipeline.shutdown().await.unwrap();

    let events: Vec<(u64, u32, BTreeMap<String, String>)> = received.iter().map(parse).collect();
    for scenario in &scenarios {
        // Durations and titles are in scaled time here: durations are checked with a tolerance.
        let calls: Vec<u64> = scenario.expected().iter().map(|e| e.call).collect();
        let mine: Vec<_> = events.iter().filter(|(c, ..)| calls.contains(c)).cloned().collect();
        assert_matches(scenario, &mine, &["duration", "title"]);
        for want in scenario.expected() {
            let Some(seconds) = want.fields.get("duration") else {
                continue;
            };
            let got = events
                .iter()
                .find(|(call, link, f)| {
                    *call == want.call && *link == want.link && f["event"] == want.fields["event"]
                        && f.get("user") == want.fields.get("user")
                })
                .unwrap_or_else(|| panic!("{}: no event for {want:?}", scenario.name()));
            let scaled = seconds.parse::<f64>().unwrap() * TIME_SCALE;
            let actual: f64 = got.2["duration"].parse().unwrap();
            assert!(
                (actual - scaled).abs() <= 1.0,
                "{}: duration {actual} s, expected {scaled} s",
                scenario.name()
            );
        }
    }
}

/// The call, link and fields of one webhook GET.
fn parse(request: &Received) -> (u64, u32, BTreeMap<String, String>) {
    let fields: BTreeMap<String, String> = request
        .query()
        .split('&')
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap();
            (key.to_string(), percent_decode(value))
        })
        .collect();
    let id = fields["id"].clone();
    let (_, call_and_link) = id.split_once('_').unwrap();
    let (call, link) = call_and_link.split_once('-').unwrap();
    let mut fields = fields;
    fields.remove("id");
    (call.parse().unwrap(), link.parse().unwrap(), fields)
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&value[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}
