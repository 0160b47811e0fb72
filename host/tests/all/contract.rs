//! Contracts 0.2 and 0.3 through real deliveries in wasmtime: committed 0.1.0 and 0.2.0 builds
//! of `generic-webhook` next to 0.3 plugins in one host, every field 0.2 adds as the
//! `contract-probe` plugin receives it, the KV additions and the 0.1 and 0.2 key-value imports,
//! `recording-file`, and `unknown-outcome` through the queue with its replay; the user list
//! from the simulator's XAPI, and routing by queue through the whole pipeline.

use crate::support::*;
use callhook::app::Pipeline;
use callhook::calls::e164::E164;
use callhook::calls::event::*;
use callhook::calls::{Engine, EngineConfig};
use callhook::pbx::users::{self, UserDirectory, UserInfo};
use callhook::pbx::{Connector, ConnectorConfig};
use callhook::queue::DeliveryOutcome;
use callhook::queue::{DeliveryFilter, DeliveryStatus, Queue, QueueConfig};
use callhook::queue::{NumberPattern, Route, Routes};
use callhook::recordings::{Links, Store};
use callhook::runtime::{
    GENERIC_WEBHOOK_WASM, HostServices, KvQuota, KvStore, Plugin, PluginRuntime, RecordingFiles,
    RuntimeConfig,
};
use callhook_simulator::{Scenario, SimConfig, Simulator};
use callhook_test_plugins::{CONTRACT_PROBE_WASM, KV_PROBE_V0_1_WASM, KV_PROBE_V0_2_WASM};
use serde_json::{Value, json};
use sha2::Digest;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// `generic-webhook` as built by the SDK of contract 0.1.0, before 0.2 existed. Never rebuilt:
/// it stands for every plugin in the field built against 0.1.
const GENERIC_WEBHOOK_V0_1_0: &[u8] =
    include_bytes!("../../../tests/plugins/fixtures/generic-webhook-v0.1.0.wasm");

/// `generic-webhook` as built by the SDK of contract 0.2.0, before 0.3 existed. Never rebuilt.
const GENERIC_WEBHOOK_V0_2_0: &[u8] =
    include_bytes!("../../../tests/plugins/fixtures/generic-webhook-v0.2.0.wasm");

/// Every committed fixture, each used by a test below.
const FIXTURES: [&str; 2] = ["generic-webhook-v0.1.0.wasm", "generic-webhook-v0.2.0.wasm"];

/// 2021-07-01T16:56:49Z, the instant of the support events' stamp, in Unix milliseconds.
const T0_MS: u64 = 1_625_158_609_000;

/// A runtime whose host knows the country `DE`, the user 120 and (when given) the MP3s.
fn runtime_with(recordings: Option<RecordingFiles>) -> (tempfile::TempDir, PluginRuntime) {
    let (dir, runtime, _kv) = runtime_and_kv(recordings);
    (dir, runtime)
}

/// [`runtime_with`], and the key-value store its plugins write to.
fn runtime_and_kv(
    recordings: Option<RecordingFiles>,
) -> (tempfile::TempDir, PluginRuntime, KvStore) {
    let dir = tempfile::tempdir().unwrap();
    let db = redb::Database::create(dir.path().join("callhook.redb")).unwrap();
    let users = UserDirectory::default();
    users.replace(BTreeMap::from([(
        "120".to_owned(),
        UserInfo::from_names("Anna", "Mueller", "anna@example.com"),
    )]));
    let services = HostServices {
        e164: E164::new(Some("DE")).unwrap().into(),
        users,
        ..HostServices::default()
    };
    if let Some(files) = recordings {
        services.recordings.set(files).unwrap();
    }
    let config = RuntimeConfig {
        services,
        ..RuntimeConfig::default()
    };
    let kv = KvStore::new(Arc::new(db), KvQuota::default());
    (dir, PluginRuntime::new(config, kv.clone()).unwrap(), kv)
}

fn probe(runtime: &PluginRuntime, sink: &Sink, settings: &[(&str, &str)]) -> Plugin {
    let url = sink.url("/probe");
    let mut all = vec![("url", url.as_str())];
    all.extend_from_slice(settings);
    let wasm = std::fs::read(CONTRACT_PROBE_WASM).unwrap();
    runtime
        .load(spec("probe", &wasm, &[&sink.origin()], &all))
        .unwrap()
}

/// The support events with their 0.2 facts: a queue call first seen at T0, 120 rang at +2 s,
/// answered at +5 s, and its part ended at +138 s; the caller's number in national form.
fn events_with_facts() -> [CallEvent; 3] {
    let facts = |answered: Option<u64>, ended: Option<u64>| PartFacts {
        call_started_at: T0_MS,
        offered_at: T0_MS + 2_000,
        answered_at: answered,
        ended_at: ended,
        queue: Some("800".into()),
        internal: false,
    };
    let mut events = [
        ringing(),
        started(Direction::Incoming, TransferType::NotDef),
        ended(),
    ];
    for event in &mut events {
        match event {
            CallEvent::Ringing(o) => {
                o.caller_id = "030 1234567".into();
                o.facts = facts(None, None);
            }
            CallEvent::Started(s) => {
                s.caller_id = "0049301234567".into();
                s.facts = facts(Some(T0_MS + 5_000), None);
            }
            CallEvent::Ended(e) => {
                e.caller_id = "+49301234567".into();
                e.facts = facts(Some(T0_MS + 5_000), Some(T0_MS + 138_000));
            }
            _ => unreachable!(),
        }
    }
    events
}

fn reports(received: &[Received]) -> Vec<Value> {
    received
        .iter()
        .filter(|r| r.target == "/probe")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

#[test]
fn every_fixture_has_a_test() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/plugins/fixtures");
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    found.sort();
    assert_eq!(found, FIXTURES);
}

#[tokio::test]
async fn plugins_of_every_contract_version_side_by_side_in_one_host() {
    let sink = Sink::start().await;
    let (_dir, runtime) = runtime_with(None);
    let webhook = |name: &str, wasm: &[u8], path: &str| {
        let url = sink.url(path);
        let post_url = sink.url(&format!("{path}-recordings"));
        let settings = [
            ("webhook_url", url.as_str()),
            ("webhook_post_url", post_url.as_str()),
            ("recording_full_info", "1"),
        ];
        runtime
            .load(spec(name, wasm, &[&sink.origin()], &settings))
            .unwrap()
    };
    let old = webhook("old", GENERIC_WEBHOOK_V0_1_0, "/old");
    let mid = webhook("mid", GENERIC_WEBHOOK_V0_2_0, "/mid");
    let new = webhook("new", GENERIC_WEBHOOK_WASM, "/new");
    let probe = probe(&runtime, &sink, &[]);
    assert_eq!(old.api_version(), "0.1.0");
    assert_eq!(mid.api_version(), "0.2.0");
    assert_eq!(new.api_version(), "0.3.0");
    assert_eq!(probe.api_version(), "0.3.0");
    let events = events_with_facts();
    for event in &events {
        for plugin in [&old, &mid, &new, &probe] {
            assert_eq!(deliver(plugin, event).await, DeliveryOutcome::Delivered);
        }
    }
    for plugin in [&old, &mid, &new] {
        assert_eq!(
            deliver(plugin, &recording()).await,
            DeliveryOutcome::Delivered
        );
    }
    let received = sink.wait_for(4 * events.len() + 3).await;
    let targets = |path: &str| -> Vec<String> {
        received
            .iter()
            .filter(|r| r.target.starts_with(path) && !r.target.contains("-recordings"))
            .map(|r| r.target.replacen(path, "", 1))
            .collect()
    };
    let recording_body = |path: &str| -> Vec<u8> {
        let post = received.iter().find(|r| r.target == path).unwrap();
        post.body.to_vec()
    };
    assert_eq!(
        String::from_utf8(recording_body("/old-recordings")).unwrap(),
        r#"{"FILES":["https://pbx.example.com:5001/webapi/recording/210701165649_782-1-1.mp3","https://pbx.example.com:5001/webapi/recording/210701165649_782-1-2.mp3"],"id":"210701165649_782-1","event":"incoming","callerid":"+425630434343","user":"120","did":"CompanyDID","finishtype":"Ok","transfer":"true","duration":"133","title":"CompanyDID: answered incoming call from +425630434343 to 120, 00:02:13"}"#
    );
    for path in ["/mid-recordings", "/new-recordings"] {
        assert_eq!(recording_body(path), recording_body("/old-recordings"));
    }
    // `http.send` sends a body with its length; `wasi:http` streamed it (chunked).
    let framing = |path: &str| {
        let post = received.iter().find(|r| r.target == path).unwrap();
        let header = |name: &str| {
            post.headers
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        (header("content-length"), header("transfer-encoding"))
    };
    let length = recording_body("/new-recordings").len().to_string();
    assert_eq!(framing("/new-recordings"), (Some(length), None));
    assert_eq!(
        framing("/mid-recordings"),
        (None, Some("chunked".to_owned()))
    );
    // The 0.1 build receives exactly what it did, and the 0.2 and 0.3 builds send the same
    // (0.3's over `http.send`, the others' over `wasi:http`).
    assert_eq!(
        targets("/old"),
        [
            "?event=ringing&callerid=030%201234567&did=CompanyDID&user=120&usertype=queue&id=210701165649_782-0",
            "?event=incomingcall_started&callerid=0049301234567&user=120&did=&trtype=NotDef&id=210701165649_782-1",
            "?event=incoming&callerid=%2B49301234567&user=120&did=CompanyDID&finishtype=Ok&transfer=true&duration=133&title=CompanyDID%3A%20answered%20incoming%20call%20from%20%2B425630434343%20to%20120%2C%2000%3A02%3A13&id=210701165649_782-1",
        ]
    );
    assert_eq!(targets("/mid"), targets("/old"));
    assert_eq!(targets("/new"), targets("/old"));
    // The probe sees every field 0.2 added.
    let anna = json!({ "name": "Anna Mueller", "email": "anna@example.com" });
    let e164 = "+49301234567";
    assert_eq!(
        reports(&received)
            .iter()
            .map(|r| r["record"].clone())
            .collect::<Vec<_>>(),
        [
            json!({
                "id": "210701165649_782-0", "callerid": "030 1234567", "did": "CompanyDID",
                "user": "120", "usertype": "queue",
                "call_started_at": T0_MS, "offered_at": T0_MS + 2_000,
                "callerid_e164": e164, "user_info": anna, "queue": "800", "internal": false,
            }),
            json!({
                "id": "210701165649_782-1", "callerid": "0049301234567", "did": "",
                "user": "120", "trtype": "NotDef",
                "call_started_at": T0_MS, "offered_at": T0_MS + 2_000,
                "answered_at": T0_MS + 5_000,
                "callerid_e164": e164, "user_info": anna, "queue": "800", "internal": false,
            }),
            json!({
                "id": "210701165649_782-1", "callerid": "+49301234567", "did": "CompanyDID",
                "user": "120", "finishtype": "Ok", "transfer": true, "duration_seconds": 133,
                "title": "CompanyDID: answered incoming call from +425630434343 to 120, 00:02:13",
                "call_started_at": T0_MS, "offered_at": T0_MS + 2_000,
                "answered_at": T0_MS + 5_000, "ended_at": T0_MS + 138_000,
                "callerid_e164": e164, "user_info": anna, "queue": "800", "internal": false,
            }),
        ]
    );
}

#[tokio::test]
async fn plugins_of_every_contract_version_report_retries_and_gone_receivers_alike() {
    let sink = Sink::start().await;
    let (_dir, runtime) = runtime_with(None);
    let builds = [
        ("v0-1", GENERIC_WEBHOOK_V0_1_0),
        ("v0-2", GENERIC_WEBHOOK_V0_2_0),
        ("v0-3", GENERIC_WEBHOOK_WASM),
    ];
    for (name, wasm) in builds {
        for status in [503, 410, 404] {
            let url = sink.url(&format!("/status/{status}"));
            let settings = [("webhook_url", url.as_str())];
            let plugin = runtime
                .load(spec(name, wasm, &[&sink.origin()], &settings))
                .unwrap();
            let outcome = deliver(&plugin, &ringing()).await;
            let expected = match status {
                503 => {
                    matches!(outcome, DeliveryOutcome::Retry { after: Some(d), .. } if d == Duration::from_secs(7))
                }
                410 => matches!(
                    outcome,
                    DeliveryOutcome::Rejected {
                        target_gone: true,
                        ..
                    }
                ),
                _ => matches!(
                    outcome,
                    DeliveryOutcome::Rejected {
                        target_gone: false,
                        ..
                    }
                ),
            };
            assert!(expected, "{name}, HTTP {status}: {outcome:?}");
        }
    }
}

#[tokio::test]
async fn unknown_numbers_and_users_give_none() {
    let sink = Sink::start().await;
    let (_dir, runtime) = runtime_with(None);
    let probe = probe(&runtime, &sink, &[]);
    for (caller, user) in [("120", "121"), ("anonymous", "800"), ("", "120")] {
        let mut event = ringing();
        if let CallEvent::Ringing(o) = &mut event {
            o.caller_id = caller.into();
            o.user = user.into();
        }
        assert_eq!(deliver(&probe, &event).await, DeliveryOutcome::Delivered);
    }
    let reports = reports(&sink.wait_for(3).await);
    let got: Vec<(Value, Value)> = reports
        .iter()
        .map(|r| {
            (
                r["record"]["callerid_e164"].clone(),
                r["record"]["user_info"].clone(),
            )
        })
        .collect();
    let anna = json!({ "name": "Anna Mueller", "email": "anna@example.com" });
    assert_eq!(
        got,
        [
            (Value::Null, Value::Null),
            (Value::Null, Value::Null),
            (Value::Null, anna)
        ]
    );
}

#[tokio::test]
async fn recording_parts_and_bytes_reach_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("mp3")).unwrap();
    let links = Links::new(
        "https://pbx.example.com:5001",
        Some(b"0123456789abcdef".to_vec()),
        Duration::from_secs(3600),
    );
    let mp3 = b"ID3\x03\0\0\0\0\0\0 not really an mp3, but bytes".to_vec();
    std::fs::write(dir.path().join("mp3/210701165649_782-1-1.mp3"), &mp3).unwrap();
    let served = links.url("210701165649_782-1-1.mp3");
    let removed = links.url("210701165649_782-1-2.mp3");
    let forged = "https://pbx.example.com:5001/webapi/recording/210701165649_782-1-1.mp3?expires=9999999999&sig=00";
    let (_kv_dir, runtime) = runtime_with(Some(RecordingFiles::new(store, links)));
    let sink = Sink::start().await;
    let probe = probe(&runtime, &sink, &[]);
    let event = CallEvent::Recording(RecordingReady {
        id: call_id(1),
        files: vec![served.clone(), removed.clone(), forged.into()],
        last_end: Some(ended_fields()),
        parts: vec![RecordingPart {
            id: call_id(1),
            user: "120".into(),
            files: vec![served.clone(), removed.clone()],
        }],
    });
    assert_eq!(deliver(&probe, &event).await, DeliveryOutcome::Delivered);
    let report = reports(&sink.wait_for(1).await).remove(0);
    assert_eq!(
        report["record"]["parts"],
        json!([{ "id": "210701165649_782-1", "user": "120", "files": [served, removed] }])
    );
    assert_eq!(
        report["record"]["file_bytes"],
        json!([
            { "len": mp3.len(), "sha256": hex::encode(sha2::Sha256::digest(&mp3)) },
            { "error": "recording 210701165649_782-1-2.mp3: no such file (unknown, or removed by retention)" },
            { "error": "recording 210701165649_782-1-1.mp3: the link's signature does not match" },
        ])
    );
}

#[tokio::test]
async fn an_unknown_outcome_is_parked_counted_apart_and_replayed_as_such() {
    let sink = Sink::start().await;
    let (dir, runtime) = runtime_with(None);
    let plugin = probe(&runtime, &sink, &[("unknown_outcome", "1")]);
    let routing = Routes {
        routes: vec![Route {
            extensions: vec![NumberPattern::Any],
            queues: None,
            plugins: vec!["probe".into()],
        }],
        default_plugins: vec![],
    };
    let mut config = QueueConfig::new(routing, ["probe"]);
    config.plugins.get_mut("probe").unwrap().retry.jitter = 0.0;
    let db = database(&dir, "queue.redb");
    let queue = Queue::open(db, config, callhook::app::Plugins::new([plugin])).unwrap();
    queue.enqueue(&ended()).unwrap();
    let parked = wait_for_parked(&queue).await;
    assert_eq!(parked.status, DeliveryStatus::OutcomeUnknown);
    assert_eq!(parked.status.label(), "outcome-unknown");
    assert_eq!(
        parked.parked.as_ref().unwrap().1,
        "outcome unknown: probe: did the create take effect?"
    );
    assert_eq!(parked.history[0].outcome, "outcome-unknown");
    let outcomes = &queue.stats().plugins["probe"].outcomes;
    assert_eq!((outcomes.outcome_unknown, outcomes.rejected), (1, 0));
    let metrics = callhook::telemetry::metrics::render_queue(&queue.stats());
    assert!(
        metrics.contains(r#"plugin="probe",outcome="outcome-unknown"} 1"#),
        "{metrics}"
    );
    queue.retry(parked.id).unwrap();
    let received = sink.wait_for(2).await;
    let replayed: Vec<bool> = reports(&received)
        .iter()
        .map(|r| r["replayed"].as_bool().unwrap())
        .collect();
    assert_eq!(replayed, [false, true]);
    wait_until_empty(&queue).await;
}

async fn wait_for_parked<D: callhook::queue::Deliverer>(
    queue: &Queue<D>,
) -> callhook::queue::DeliveryInfo {
    for _ in 0..200 {
        let list = queue.list(&DeliveryFilter::default()).unwrap();
        if let Some(info) = list.into_iter().find(|d| d.parked.is_some()) {
            return info;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("nothing was parked");
}

async fn wait_until_empty<D: callhook::queue::Deliverer>(queue: &Queue<D>) {
    for _ in 0..200 {
        if queue.list(&DeliveryFilter::default()).unwrap().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "the replay did not succeed: {:?}",
        queue.list(&DeliveryFilter::default())
    );
}

#[tokio::test]
async fn kv_quota_per_plugin_comes_from_its_limits() {
    let sink = Sink::start().await;
    let (_dir, runtime) = runtime_with(None);
    let wasm = std::fs::read(CONTRACT_PROBE_WASM).unwrap();
    let url = sink.url("/probe");
    let value = "x".repeat(100);
    let pair = format!("k={value}");
    let mut small = spec(
        "small",
        &wasm,
        &[&sink.origin()],
        &[("url", &url), ("kv_set", &pair)],
    );
    small.limits.kv_quota_bytes = Some(64);
    let small = runtime.load(small).unwrap();
    match deliver(&small, &ended()).await {
        DeliveryOutcome::Rejected { message, .. } => {
            assert_eq!(message, "plugin store: quota of 64 bytes exceeded")
        }
        other => panic!("{other:?}"),
    }
    let mut roomy = spec(
        "roomy",
        &wasm,
        &[&sink.origin()],
        &[("url", &url), ("kv_set", &pair)],
    );
    roomy.limits.kv_quota_bytes = Some(1 << 20);
    let roomy = runtime.load(roomy).unwrap();
    assert_eq!(deliver(&roomy, &ended()).await, DeliveryOutcome::Delivered);
}

/// Plugins built against contracts 0.1.0 and 0.2.0 (without the SDK, straight from their WIT)
/// keep their key-value store: their reads and writes reach the host's store under the plugin's
/// name, 0.2's `set-if` (storing, and refusing a stale expected value) and `set-expiring` work,
/// and a write over the quota comes back as that version's own `quota-exceeded`, carrying the
/// quota.
#[tokio::test]
async fn plugins_of_contracts_0_1_and_0_2_keep_their_key_value_store() {
    let (_dir, runtime, kv) = runtime_and_kv(None);
    let probes = [
        ("kv-0-1", "0.1.0", KV_PROBE_V0_1_WASM),
        ("kv-0-2", "0.2.0", KV_PROBE_V0_2_WASM),
    ];
    for (name, version, wasm) in probes {
        let wasm = std::fs::read(wasm).unwrap();
        kv.set(name, "gone", b"x").unwrap();
        let plugin = runtime.load(spec(name, &wasm, &[], &[])).unwrap();
        assert_eq!(plugin.api_version(), version);
        for _ in 0..2 {
            assert_eq!(
                deliver(&plugin, &ended()).await,
                DeliveryOutcome::Delivered,
                "{name}"
            );
        }
        assert_eq!(
            kv.get(name, "count").unwrap(),
            Some(b"2".to_vec()),
            "{name}"
        );
        assert_eq!(kv.get(name, "gone").unwrap(), None, "{name}");

        let small_name = format!("{name}-small");
        let mut small = spec(&small_name, &wasm, &[], &[("big", "100")]);
        small.limits.kv_quota_bytes = Some(64);
        let small = runtime.load(small).unwrap();
        assert_eq!(
            deliver(&small, &ended()).await,
            DeliveryOutcome::Rejected {
                message: "KvError::QuotaExceeded(64)".into(),
                target_gone: false
            },
            "{name}"
        );
        assert_eq!(kv.get(&small_name, "big").unwrap(), None, "{name}");
    }
    assert_eq!(kv.get("kv-0-1", "soon").unwrap(), None);
    assert_eq!(kv.get("kv-0-2", "soon").unwrap(), Some(b"1".to_vec()));

    // 0.2's `set-if` with an expected value the store does not hold stores nothing and says so.
    let wasm = std::fs::read(KV_PROBE_V0_2_WASM).unwrap();
    let stale = runtime
        .load(spec("kv-0-2", &wasm, &[], &[("stale", "1")]))
        .unwrap();
    assert_eq!(
        deliver(&stale, &ended()).await,
        DeliveryOutcome::Retry {
            message: "count changed under set-if".into(),
            after: None
        }
    );
    assert_eq!(kv.get("kv-0-2", "count").unwrap(), Some(b"2".to_vec()));
}

/// The PBX's user list as the simulator serves it, read page by page (100 a page).
#[tokio::test]
async fn the_user_list_is_read_from_xapi_in_pages() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = SimConfig::default();
    config.users.extend(
        (1000..1250).map(|n| {
            callhook_simulator::User::new(&n.to_string(), "First", &format!("Last{n}"), "")
        }),
    );
    let simulator = Simulator::start(config).await.unwrap();
    let connector = connector(&simulator);
    let directory = UserDirectory::default();
    let cancel = CancellationToken::new();
    tokio::spawn(users::refresh(
        connector.rest(),
        directory.clone(),
        cancel.clone(),
    ));
    wait_for_users(&directory).await;
    cancel.cancel();
    assert_eq!(directory.len(), 6 + 250);
    assert_eq!(
        directory.get("120"),
        Some(UserInfo::from_names(
            "Anna",
            "Mueller",
            "anna.mueller@example.com"
        ))
    );
    assert_eq!(directory.get("150").unwrap().email, None);
    assert_eq!(directory.get("1249").unwrap().name, "First Last1249");
    assert_eq!(directory.get("800"), None, "a queue is no user");
}

fn connector(simulator: &callhook_simulator::SimHandle) -> Connector {
    let pbx = simulator.config();
    Connector::new(
        ConnectorConfig::new(
            simulator.base_url().parse().unwrap(),
            pbx.client_id.clone(),
            pbx.client_secret.clone(),
        ),
        None,
    )
    .unwrap()
}

async fn wait_for_users(directory: &UserDirectory) {
    for _ in 0..400 {
        if !directory.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the user list was never read");
}

/// Simulator → connector → engine → queue → two contract-0.2 probes: a route with
/// `queues = ["800"]` gets every event of the queue call (the agents' too), the default plugin
/// the direct call's; each event carries its queue, the user's name from the simulator's user
/// list, and times that fit the durations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_by_queue_gets_every_event_of_calls_through_that_queue() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let simulator = Simulator::start(SimConfig::default()).await.unwrap();
    let queued = Scenario::builtin("03-queue-answered").unwrap();
    let direct = Scenario::builtin("01-direct-inbound-answered").unwrap();
    for scenario in [&queued, &direct] {
        simulator.add_directory(&scenario.directory());
    }
    let connector = connector(&simulator);
    let users = UserDirectory::default();
    let cancel = CancellationToken::new();
    tokio::spawn(users::refresh(
        connector.rest(),
        users.clone(),
        cancel.clone(),
    ));
    wait_for_users(&users).await;

    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = database(&dir, "callhook.redb");
    let services = HostServices {
        users,
        ..HostServices::default()
    };
    let runtime = PluginRuntime::new(
        RuntimeConfig {
            services,
            ..RuntimeConfig::default()
        },
        KvStore::new(db.clone(), KvQuota::default()),
    )
    .unwrap();
    let wasm = std::fs::read(CONTRACT_PROBE_WASM).unwrap();
    let load = |name: &str| {
        let url = sink.url(&format!("/{name}"));
        runtime
            .load(spec(name, &wasm, &[&sink.origin()], &[("url", &url)]))
            .unwrap()
    };
    let plugins = callhook::app::Plugins::new([load("support"), load("everyone")]);
    let routes = Routes {
        routes: vec![Route {
            extensions: vec![NumberPattern::Any],
            queues: Some(vec![NumberPattern::Exact("800".into())]),
            plugins: vec!["support".into()],
        }],
        default_plugins: vec!["everyone".into()],
    };
    let queue = Queue::open(db, QueueConfig::new(routes, plugins.names()), plugins).unwrap();
    let engine = Engine::new(EngineConfig {
        grace: Duration::from_millis(300),
        trunk_dids: simulator.config().trunks.clone(),
        ..EngineConfig::default()
    });
    let pipeline = Pipeline::start(connector, engine, Arc::new(queue), None, None);
    simulator.wait_snapshots(1).await;
    let plays = [&queued, &direct].map(|s| simulator.play(s, 0.05));
    for played in futures_util::future::join_all(plays).await {
        played.unwrap();
    }
    let expected = queued.expected().len() + direct.expected().len();
    let received = sink.wait_for(expected).await;
    pipeline.shutdown().await.unwrap();
    cancel.cancel();

    let to = |path: &str| -> Vec<Value> {
        received
            .iter()
            .filter(|r| r.target == path)
            .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
            .collect()
    };
    let names = |scenario: &Scenario| -> Vec<(String, String)> {
        scenario
            .expected()
            .iter()
            .map(|e| (e.fields["event"].clone(), e.fields["user"].clone()))
            .collect()
    };
    let got = |reports: &[Value]| -> Vec<(String, String)> {
        reports
            .iter()
            .map(|r| {
                let user = r["record"]["user"].as_str().unwrap().to_owned();
                (r["event"].as_str().unwrap().to_owned(), user)
            })
            .collect()
    };
    let (support, everyone) = (to("/support"), to("/everyone"));
    assert_eq!(got(&support), names(&queued));
    assert_eq!(got(&everyone), names(&direct));
    for report in &support {
        assert_eq!(report["record"]["queue"], "800", "{report}");
    }
    for report in &everyone {
        assert_eq!(report["record"]["queue"], Value::Null, "{report}");
    }
    for report in support.iter().chain(&everyone) {
        let record = &report["record"];
        let user = record["user"].as_str().unwrap();
        let name = UserInfo::from_names(
            match user {
                "120" => "Anna",
                "121" => "Ben",
                "122" => "Clara",
                _ => "David",
            },
            match user {
                "120" => "Mueller",
                "121" => "Schmidt",
                "122" => "Weber",
                _ => "Fischer",
            },
            "",
        )
        .name;
        assert_eq!(record["user_info"]["name"], name, "{report}");
        assert_eq!(record["internal"], false);
        let at = |key: &str| record[key].as_u64();
        let started = at("call_started_at").unwrap();
        let offered = at("offered_at").unwrap();
        assert!(started <= offered, "{report}");
        if let Some(answered) = at("answered_at") {
            assert!(offered <= answered, "{report}");
            if let Some(ended) = at("ended_at") {
                let seconds = ((ended - answered) as f64 / 1000.0).round() as u64;
                assert_eq!(
                    record["duration_seconds"].as_u64(),
                    Some(seconds),
                    "{report}"
                );
            }
        }
    }
}

/// Where [`kv_write_child`] keeps its store, and where its probe posts after `set` returned.
const CHILD_DB: &str = "CALLHOOK_TEST_KV_CHILD_DB";
const CHILD_URL: &str = "CALLHOOK_TEST_KV_CHILD_URL";

/// A KV write survives a SIGKILL right after `set` returned: a child process (this test binary
/// running [`kv_write_child`]) delivers to the probe, which stores `k=v` and then posts to a
/// sink path that never answers; the moment the post arrives, the child is killed with SIGKILL,
/// and the store, opened again, holds the value.
#[tokio::test]
async fn a_kv_write_survives_a_sigkill_right_after_set_returned() {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("callhook.redb");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["contract::kv_write_child", "--exact", "--nocapture"])
        .env(CHILD_DB, &db)
        .env(CHILD_URL, sink.url("/slow"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    sink.wait_for_requests_to("/slow", 1).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let db = redb::Database::create(&db).unwrap();
    let kv = KvStore::new(Arc::new(db), KvQuota::default());
    assert_eq!(kv.get("probe", "k").unwrap(), Some(b"v".to_vec()));
}

/// The child of [`a_kv_write_survives_a_sigkill_right_after_set_returned`]; does nothing
/// unless started by it.
#[tokio::test]
async fn kv_write_child() {
    let (Ok(db), Ok(url)) = (std::env::var(CHILD_DB), std::env::var(CHILD_URL)) else {
        return;
    };
    let db = redb::Database::create(db).unwrap();
    let runtime = PluginRuntime::new(
        RuntimeConfig::default(),
        KvStore::new(Arc::new(db), KvQuota::default()),
    )
    .unwrap();
    let origin = url.trim_end_matches("/slow").to_owned();
    let wasm = std::fs::read(CONTRACT_PROBE_WASM).unwrap();
    let plugin = runtime
        .load(spec(
            "probe",
            &wasm,
            &[&origin],
            &[("url", &url), ("kv_set", "k=v")],
        ))
        .unwrap();
    deliver(&plugin, &ended()).await;
    unreachable!("killed while the post waits");
}
