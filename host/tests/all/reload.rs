//! Hot reload of the running binary: the plugin swapped by a change of the configuration file
//! and by SIGHUP while calls flow, nothing lost or repeated; a broken configuration rejected
//! with its place while the one in force keeps delivering.

use crate::support::{Host, Sink, connected, host_config};
use callhook_simulator::{LoadProfile, Scenario, SimConfig, Simulator};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A `callhook.toml` whose generic-webhook posts to `{sink}/ok/{path}`, written the way editors
/// save: a new file renamed over the old one.
fn write_config(dir: &Path, pbx: &str, sink: &str, path: &str) -> PathBuf {
    let file = dir.join("callhook.toml");
    let new = dir.join("callhook.toml.new");
    std::fs::write(&new, host_config(dir, pbx, sink, &format!("/ok/{path}"))).unwrap();
    std::fs::rename(&new, &file).unwrap();
    file
}

/// Event names per call as the sink received them, and which path each call's events went to.
fn received_by_call(sink: &Sink) -> BTreeMap<u64, Vec<(String, String)>> {
    let mut calls: BTreeMap<u64, Vec<(String, String)>> = BTreeMap::new();
    for request in sink.received().iter().filter(|r| r.method == "GET") {
        let field = |key: &str| {
            request
                .query()
                .split('&')
                .find_map(|pair| pair.strip_prefix(&format!("{key}=")))
                .unwrap()
                .to_string()
        };
        let id = field("id");
        let call = id.split_once('_').unwrap().1.split_once('-').unwrap().0;
        let path = request.target.split('?').next().unwrap().to_string();
        calls
            .entry(call.parse().unwrap())
            .or_default()
            .push((field("event"), path));
    }
    calls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_the_plugin_while_calls_flow_loses_nothing() {
    let scenario = Scenario::load(
        24,
        &LoadProfile {
            ramp: Duration::from_secs(6),
            ring: Duration::from_millis(500),
            talk: Duration::from_secs(1),
            ..LoadProfile::default()
        },
    );
    let simulator = Simulator::start(SimConfig {
        directory: scenario.directory(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (pbx, origin) = (simulator.base_url(), sink.origin());
    let config = write_config(dir.path(), &pbx, &origin, "a");
    let (host, lines) = Host::start_capturing(&config);
    connected(&simulator).await;

    let reloads = async {
        let swapped = |line: &str| line.contains("plugins changed: generic-webhook");
        tokio::time::sleep(Duration::from_secs(2)).await;
        write_config(dir.path(), &pbx, &origin, "b");
        lines
            .wait_for(|line| line.contains("reloaded (file changed): plugins changed"))
            .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        // The file watch and the signal both reload; whichever comes first swaps.
        let before = lines.count(swapped);
        write_config(dir.path(), &pbx, &origin, "c");
        host.send("-HUP");
        lines.wait_for_more(before, swapped).await;
        lines
            .wait_for(|line| line.contains("reloaded (SIGHUP)"))
            .await;
    };
    let (played, ()) = tokio::join!(simulator.play(&scenario, 1.0), reloads);
    played.unwrap();
    let expected = scenario.expected().len();
    sink.wait_for(expected).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let received = received_by_call(&sink);
    let mut paths: BTreeMap<String, usize> = BTreeMap::new();
    for want in scenario.expected() {
        assert!(
            received.contains_key(&want.call),
            "call {} missing",
            want.call
        );
    }
    for (call, events) in &received {
        let wanted: Vec<&str> = scenario
            .expected()
            .iter()
            .filter(|e| e.call == *call)
            .map(|e| e.fields["event"].as_str())
            .collect();
        let got: Vec<&str> = events.iter().map(|(event, _)| event.as_str()).collect();
        assert_eq!(got, wanted, "call {call}: every event once, in order");
        for (_, path) in events {
            *paths.entry(path.clone()).or_default() += 1;
        }
    }
    assert_eq!(paths.values().sum::<usize>(), expected);
    for path in ["/ok/a", "/ok/b", "/ok/c"] {
        assert!(
            paths.get(path).is_some_and(|n| *n > 0),
            "each configuration in force received events: {paths:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_configuration_is_rejected_and_the_old_one_stays_in_force() {
    let simulator = Simulator::start(SimConfig::default()).await.unwrap();
    let scenario = Scenario::builtin("01-direct-inbound-answered").unwrap();
    simulator.add_directory(&scenario.directory());
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &simulator.base_url(), &sink.origin(), "a");
    let (host, lines) = Host::start_capturing(&config);
    connected(&simulator).await;

    // A new receiver, and a typo on line 7: `grace` misspelt. Nothing of it may apply.
    let good = std::fs::read_to_string(&config).unwrap();
    let broken = good
        .replace("grace = ", "grase = ")
        .replace("/ok/a", "/ok/b");
    std::fs::write(&config, &broken).unwrap();
    let rejected = |why: &'static str| {
        move |line: &str| line.contains(&format!("rejected ({why}); the previous one stays"))
    };
    lines.wait_for(rejected("file changed")).await;
    let place = format!("{}:7:1: engine.grase", config.display());
    lines.wait_for(|line| line.contains(&place)).await;
    host.send("-HUP");
    lines.wait_for(rejected("SIGHUP")).await;

    simulator.play(&scenario, 0.05).await.unwrap();
    let received = sink.wait_for(3).await;
    assert!(
        received.iter().all(|r| r.target.starts_with("/ok/a?")),
        "{received:#?}"
    );
    assert_eq!(
        lines.count(|line| line.contains("reloaded")),
        0,
        "{:#?}",
        lines.all()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_pbx_is_reported_with_its_place_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let pbx = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let config = write_config(dir.path(), &pbx, "http://127.0.0.1:9", "a");
    let (mut host, lines) = Host::start_capturing(&config);
    let line = lines
        .wait_for(|line| line.starts_with("cannot reach the PBX"))
        .await;
    let place = format!("(configured at {}:2:7: pbx.url)", config.display());
    assert!(line.contains(&pbx), "{line}");
    assert!(line.contains(&place), "{line}");
    assert!(line.contains("retrying in"), "{line}");
    // http:// is accepted, with a warning at start naming the same place.
    let warning = format!("{}:2:7: pbx.url is http://", config.display());
    lines
        .wait_for(|line| line.contains(" WARN ") && line.contains(&warning))
        .await;
    let exit = host.signal("-TERM");
    assert!(exit.success(), "a stop while retrying is clean: {exit:?}");
    assert_eq!(
        lines.count(|line| line.contains("is http://")),
        1,
        "warned once: {:#?}",
        lines.all()
    );
}
