//! The load generator: 500 concurrent calls, expanded and played through a real socket.

use std::collections::BTreeMap;

use callhook_simulator::{LoadProfile, Scenario, SimConfig};

use crate::scenarios::check_timeline;
use crate::support::{Events, start, token};

#[test]
fn load_scenarios_are_concurrent_and_consistent() {
    let scenario = Scenario::load(500, &LoadProfile::default());
    assert_eq!(scenario.directory().len(), 500);
    assert_eq!(check_timeline(&scenario), 500, "all calls are up at once");
    let mut per_call: BTreeMap<u64, usize> = BTreeMap::new();
    for expectation in scenario.expected() {
        *per_call.entry(expectation.call).or_default() += 1;
    }
    assert_eq!(per_call.len(), 500);
    // Missed calls (every fourth) expect two webhooks, the others three.
    assert_eq!(scenario.expected().len(), 125 * 2 + 375 * 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plays_500_concurrent_calls_without_losing_a_frame() {
    let scenario = Scenario::load(500, &LoadProfile::default());
    let sim = start(SimConfig {
        directory: scenario.directory(),
        ..SimConfig::default()
    })
    .await;
    let token = token(&sim).await;
    let mut events = Events::open(&sim, &token).await;
    let expected = scenario.timeline().len();
    let reader = tokio::spawn(async move {
        let frames = events.take(expected).await;
        for (n, frame) in frames.iter().enumerate() {
            assert_eq!(frame["sequence"], n as u64 + 1, "no gap under load");
        }
    });
    // 43 s of scenario time in about 0.4 s.
    sim.play(&scenario, 0.01).await.unwrap();
    reader.await.unwrap();
    assert_eq!(
        sim.recordings().len(),
        375,
        "one recording per answered call"
    );
    let snapshot: serde_json::Value = crate::support::get_json(&sim, &token, "/callcontrol").await;
    let left: usize = snapshot
        .as_array()
        .unwrap()
        .iter()
        .map(|dn| dn["participants"].as_array().unwrap().len())
        .sum();
    assert_eq!(left, 0);
    sim.shutdown().await;
}
