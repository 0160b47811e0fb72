//! The event WebSocket: frame shape, numbering, pings, the Bearer rule.

use callhook_simulator::{ParticipantChange, Scenario, SimConfig};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Events, start, token, upgrade_status};

/// The entity path and event type a timeline step must produce.
fn expected_frame(change: &ParticipantChange) -> (String, u64) {
    match change {
        ParticipantChange::Upsert(p) => (
            format!(
                "/callcontrol/{}/participants/{}",
                p["dn"].as_str().unwrap(),
                p["id"]
            ),
            0,
        ),
        ParticipantChange::Remove { dn, participant_id } => (
            format!("/callcontrol/{dn}/participants/{participant_id}"),
            1,
        ),
    }
}

#[tokio::test]
async fn frames_follow_the_timeline_numbered_from_one() {
    let scenario = Scenario::builtin("06-attended-transfer").unwrap();
    let sim = start(SimConfig {
        directory: scenario.directory(),
        ..SimConfig::default()
    })
    .await;
    let token = token(&sim).await;
    let mut events = Events::open(&sim, &token).await;
    sim.play(&scenario, 0.0005).await.unwrap();
    let timeline = scenario.timeline();
    // The first frame has sequence 1 and is the first change: nothing was sent on connect.
    let frames = events.take(timeline.len()).await;
    for (n, (frame, step)) in frames.iter().zip(&timeline).enumerate() {
        let (entity, event_type) = expected_frame(&step.change);
        assert_eq!(
            frame,
            &json!({"sequence": n + 1, "event": {"event_type": event_type, "entity": entity, "attached_data": null}})
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn every_socket_numbers_its_own_frames() {
    let scenario = Scenario::builtin("01-direct-inbound-answered").unwrap();
    let sim = start(SimConfig::default()).await;
    let token = token(&sim).await;
    let mut first = Events::open(&sim, &token).await;
    let ring = scenario.timeline()[0].change.clone();
    sim.apply(&ring);
    assert_eq!(first.next_json().await["sequence"], 1);
    let mut second = Events::open(&sim, &token).await;
    sim.apply(&ring);
    assert_eq!(first.next_json().await["sequence"], 2);
    assert_eq!(second.next_json().await["sequence"], 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn answers_pings() {
    let sim = start(SimConfig::default()).await;
    let token = token(&sim).await;
    let mut events = Events::open(&sim, &token).await;
    events
        .send(Message::Ping(b"keepalive".to_vec().into()))
        .await;
    match events.next_message().await {
        Some(Message::Pong(payload)) => assert_eq!(&payload[..], b"keepalive"),
        other => panic!("expected a pong, got {other:?}"),
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn upgrades_need_the_live_bearer() {
    let sim = start(SimConfig::default()).await;
    let refused = Events::connect(&sim, "forged")
        .await
        .err()
        .expect("refused");
    assert_eq!(upgrade_status(&refused), Some(401));
    assert_eq!(sim.sockets(), 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_sockets() {
    let sim = start(SimConfig::default()).await;
    let token = token(&sim).await;
    let mut events = Events::open(&sim, &token).await;
    sim.shutdown().await;
    events.closed().await;
}
