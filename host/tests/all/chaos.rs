//! Nothing is lost: receivers that fail for a while, a host killed with SIGKILL, permanent
//! rejections replayed by an operator, and a receiver that is gone for good. Real plugins, a
//! real sink, the real `callhook` binary where a process must die.

use crate::support::*;
use callhook::app::Plugins;
use callhook::calls::event::{
    CallEvent, CallId, Direction, Offered, Started, TransferType, UserType,
};
use callhook::queue::{Queue, QueueConfig};
use callhook::runtime::GENERIC_WEBHOOK_WASM;
use callhook_simulator::{Scenario, SimConfig, SimHandle, Simulator};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

fn id(call: u64, link: u32) -> CallId {
    CallId {
        stamp: "261124101530".into(),
        pbx_call_id: call,
        link,
    }
}

/// Ringing, started and ended of one call.
fn call_events(call: u64) -> [CallEvent; 3] {
    let mut end = ended_fields();
    end.id = id(call, 1);
    [
        CallEvent::Ringing(Offered {
            id: id(call, 0),
            caller_id: CALLER.into(),
            did: String::new(),
            user: "120".into(),
            user_type: UserType::Ext,
            facts: Default::default(),
        }),
        CallEvent::Started(Started {
            id: id(call, 1),
            direction: Direction::Incoming,
            caller_id: CALLER.into(),
            user: "120".into(),
            did: String::new(),
            transfer_type: TransferType::NotDef,
            facts: Default::default(),
        }),
        CallEvent::Ended(end),
    ]
}

/// A queue over the real generic-webhook plugin posting to `url`, retrying every 50 ms.
fn queue_to(sink: &Sink, url: &str, dir: &tempfile::TempDir) -> Queue<Plugins> {
    let (_, runtime) = runtime();
    let plugin = runtime
        .load(spec(
            "generic-webhook",
            GENERIC_WEBHOOK_WASM,
            &[&sink.origin()],
            &[("webhook_url", url)],
        ))
        .unwrap();
    let plugins = Plugins::new([plugin]);
    let mut config = QueueConfig::new(Default::default(), plugins.names());
    for policy in config.plugins.values_mut() {
        policy.retry.ladder = vec![Duration::from_millis(50)];
        policy.breaker.failures = 0;
    }
    Queue::open(database(dir, "queue.redb"), config, plugins).unwrap()
}

/// `(call, event)` of each successful webhook GET, in arrival order.
fn delivered(sink: &Sink) -> Vec<(String, String)> {
    sink.successes()
        .iter()
        .filter(|r| r.method == "GET")
        .map(|r| {
            let field = |key: &str| {
                r.query()
                    .split('&')
                    .find_map(|pair| pair.strip_prefix(&format!("{key}=")))
                    .unwrap()
                    .to_string()
            };
            let id = field("id");
            let call = id.split('-').next().unwrap().to_string();
            (call, field("event"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_a_while_gets_everything_in_order_once_it_recovers() {
    let sink = Sink::start().await;
    sink.fail_next(12);
    let dir = tempfile::tempdir().unwrap();
    let queue = queue_to(&sink, &sink.url("/switch/events"), &dir);
    for round in 0..3 {
        for call in 1..=3u64 {
            queue.enqueue(&call_events(call)[round]).unwrap();
        }
    }
    sink.wait_for_successes(9).await;
    let delivered = delivered(&sink);
    assert_eq!(delivered.len(), 9, "each event once: {delivered:?}");
    for call in 1..=3 {
        let order: Vec<&str> = delivered
            .iter()
            .filter(|(c, _)| c.ends_with(&format!("_{call}")))
            .map(|(_, event)| event.as_str())
            .collect();
        assert_eq!(
            order,
            ["ringing", "incomingcall_started", "incoming"],
            "call {call}"
        );
    }
    assert!(sink.received().len() >= 9 + 12, "the failures were retried");
    queue.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_gone_disables_its_plugin() {
    let sink = Sink::start().await;
    sink.answer(410);
    let dir = tempfile::tempdir().unwrap();
    let queue = queue_to(&sink, &sink.url("/switch/events"), &dir);
    queue.enqueue(&call_events(1)[0]).unwrap();
    sink.wait_for(1).await;
    let wait_disabled = async {
        while queue.disabled_plugins().is_empty() {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait_disabled)
        .await
        .unwrap();
    assert_eq!(queue.disabled_plugins()[0].0, "generic-webhook");
    // Events taken while disabled wait, unattempted, until an operator re-enables the plugin.
    queue.enqueue(&call_events(2)[0]).unwrap();
    sink.answer(200);
    assert!(queue.enable_plugin("generic-webhook").unwrap());
    let successes = sink.wait_for_successes(1).await;
    assert!(successes[0].query().contains("_2-0"), "{successes:?}");
    queue.shutdown(Duration::from_secs(1)).await;
}

/// A `callhook.toml` for the simulator and a sink at `sink_origin`, retrying every second.
fn config(dir: &std::path::Path, pbx: &str, sink_origin: &str) -> std::path::PathBuf {
    let file = dir.join("callhook.toml");
    let text = host_config(dir, pbx, sink_origin, "/switch/events")
        + "[plugin.retry]\nladder = [\"1s\"]\n";
    std::fs::write(&file, text).unwrap();
    file
}

/// Scenario 01 played against a running host whose receiver answers `status`.
struct OneCall {
    _simulator: SimHandle,
    sink: Sink,
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    host: Host,
}

impl OneCall {
    async fn play(status: u16) -> OneCall {
        let simulator = Simulator::start(SimConfig::default()).await.unwrap();
        let scenario = Scenario::builtin("01-direct-inbound-answered").unwrap();
        simulator.add_directory(&scenario.directory());
        let sink = Sink::start().await;
        sink.answer(status);
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), &simulator.base_url(), &sink.origin());
        let host = Host::start(&config);
        connected(&simulator).await;
        simulator.play(&scenario, 0.02).await.unwrap();
        OneCall {
            _simulator: simulator,
            sink,
            dir,
            config,
            host,
        }
    }
}

fn callhook(args: &[&str], config: &std::path::Path) -> String {
    let output = Command::new(CALLHOOK)
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_killed_while_the_receiver_fails_delivers_everything_after_restart() {
    let mut call = OneCall::play(503).await;
    // Attempts every second: three more failures span well past the end event's grace period.
    let already = call.sink.received().len();
    call.sink.wait_for(already + 3).await;
    call.host.signal("-KILL");

    call.sink.answer(200);
    let _host = Host::start(&call.config);
    call.sink.wait_for_successes(3).await;
    let events: BTreeSet<(String, String)> = delivered(&call.sink).into_iter().collect();
    let names: BTreeSet<&str> = events.iter().map(|(_, e)| e.as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from(["ringing", "incomingcall_started", "incoming"])
    );
    assert_eq!(
        events.len(),
        3,
        "one call, three events, none missing: {events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_still_awaited_when_the_host_is_killed_is_posted_after_restart() {
    let simulator = Simulator::start(SimConfig {
        recording_delay: Duration::from_secs(4),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let scenario = Scenario::builtin("01-direct-inbound-answered").unwrap();
    simulator.add_directory(&scenario.directory());
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &simulator.base_url(), &sink.origin());
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = text.replace(
        "[server]\n",
        "[recordings]\nenabled = true\n\n[server]\npublic_url = \"http://127.0.0.1:9\"\n",
    );
    text = text.replace(
        "[plugin.retry]",
        &format!(
            "webhook_post_url = \"{}\"\n[plugin.retry]",
            sink.url("/ok/recordings")
        ),
    );
    std::fs::write(&config, text).unwrap();

    let mut host = Host::start(&config);
    connected(&simulator).await;
    simulator.play(&scenario, 0.02).await.unwrap();
    // The call's events, the last of them taken with the recording job; the recording itself
    // appears 4 s after the call.
    sink.wait_for(3).await;
    host.signal("-KILL");
    assert_eq!(
        sink.received().len(),
        3,
        "killed before the recording was posted"
    );

    let _host = Host::start(&config);
    sink.wait_for_requests_to("/ok/recordings", 1).await;
    // At least once: the last event's outcome may not have reached the disk before the kill,
    // so it may come again; the recording is posted exactly once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = sink.received();
    let posts: Vec<_> = received
        .iter()
        .filter(|r| r.target == "/ok/recordings")
        .collect();
    assert_eq!(posts.len(), 1, "{received:#?}");
    let body: serde_json::Value = serde_json::from_slice(&posts[0].body).unwrap();
    assert_eq!(body["FILES"].as_array().map(Vec::len), Some(1), "{body}");
    let events: BTreeSet<(String, String)> = delivered(&sink).into_iter().collect();
    assert_eq!(
        events.len(),
        3,
        "the call's events, none missing: {events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_deliveries_are_parked_and_replayed_by_the_operator() {
    let mut call = OneCall::play(404).await;
    call.sink.wait_for(3).await;
    call.host.signal("-TERM");

    let listed = callhook(&["deliveries", "list", "--failed"], &call.config);
    let parked: BTreeMap<&str, &str> = listed
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next().map(|id| (id, line)))
        .collect();
    assert_eq!(parked.len(), 3, "{listed}");
    assert!(listed.contains("HTTP 404"), "{listed}");

    call.sink.answer(200);
    let retried = callhook(&["deliveries", "retry", "--failed"], &call.config);
    assert!(retried.starts_with("3 deliveries"), "{retried}");
    let _host = Host::start(&call.config);
    call.sink.wait_for_successes(3).await;
    let events: Vec<String> = delivered(&call.sink).into_iter().map(|(_, e)| e).collect();
    assert_eq!(events.len(), 3, "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_lists_and_replays_deliveries_while_the_host_runs() {
    let mut call = OneCall::play(404).await;
    call.sink.wait_for(3).await;
    let parked = async {
        loop {
            let listed = callhook(&["deliveries", "list", "--failed"], &call.config);
            if listed.lines().skip(1).count() == 3 {
                return listed;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let listed = tokio::time::timeout(Duration::from_secs(30), parked)
        .await
        .expect("the running host lists its three parked deliveries");
    assert!(listed.contains("HTTP 404"), "{listed}");

    call.sink.answer(200);
    let retried = callhook(&["deliveries", "retry", "--failed"], &call.config);
    assert_eq!(retried, "3 deliveries will be attempted again now\n");
    call.sink.wait_for_successes(3).await;
    let events: Vec<String> = delivered(&call.sink).into_iter().map(|(_, e)| e).collect();
    assert_eq!(events, ["ringing", "incomingcall_started", "incoming"]);
    let listed = callhook(&["deliveries", "list"], &call.config);
    assert_eq!(listed.lines().skip(1).count(), 0, "{listed}");

    assert!(call.host.signal("-TERM").success());
    assert!(
        !call.dir.path().join("state/admin/socket").exists(),
        "the socket goes with the host"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_re_enables_a_plugin_whose_receiver_was_gone() {
    let mut call = OneCall::play(410).await;
    // The first event meets the 410 and disables the plugin: the others are not attempted.
    call.sink.wait_for(1).await;
    call.host.signal("-TERM");
    assert_eq!(call.sink.received().len(), 1, "{:#?}", call.sink.received());

    call.sink.answer(200);
    let enabled = callhook(
        &["deliveries", "enable-plugin", "generic-webhook"],
        &call.config,
    );
    assert!(enabled.contains("receives deliveries again"), "{enabled}");
    callhook(&["deliveries", "retry", "--failed"], &call.config);
    let _host = Host::start(&call.config);
    call.sink.wait_for_successes(3).await;
    let events: Vec<String> = delivered(&call.sink).into_iter().map(|(_, e)| e).collect();
    assert_eq!(events, ["ringing", "incomingcall_started", "incoming"]);
}
