//! Each fault switch, observed from a client.

use std::time::Duration;

use callhook_simulator::{
    ParticipantChange, RepeatPhase, Scenario, SimConfig, SimHandle, SocketClose,
};
use serde_json::Value;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::support::{Events, get, http, start, token, upgrade_status};

/// A simulator knowing scenario 01's DN, a token and an open socket.
async fn setup(config: SimConfig) -> (SimHandle, String, Events, Vec<ParticipantChange>) {
    let scenario = Scenario::builtin("01-direct-inbound-answered").unwrap();
    let sim = start(SimConfig {
        directory: scenario.directory(),
        ..config
    })
    .await;
    let token = token(&sim).await;
    let events = Events::open(&sim, &token).await;
    let changes = scenario.timeline().into_iter().map(|s| s.change).collect();
    (sim, token, events, changes)
}

fn entity(frame: &Value) -> String {
    frame["event"]["entity"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn duplicate_upserts_sends_each_upsert_twice() {
    let (sim, _, mut events, changes) = setup(SimConfig::default()).await;
    sim.faults().duplicate_upserts(true);
    sim.apply(&changes[0]); // ringing
    sim.apply(&changes[2]); // remove: never duplicated
    let frames = events.take(3).await;
    assert_eq!(entity(&frames[0]), entity(&frames[1]));
    assert_eq!(
        (frames[0]["sequence"].clone(), frames[1]["sequence"].clone()),
        (1.into(), 2.into())
    );
    assert_eq!(frames[2]["event"]["event_type"], 1);
    sim.faults().duplicate_upserts(false);
    sim.apply(&changes[0]);
    sim.apply(&changes[2]);
    let frames = events.take(2).await;
    assert_eq!(
        (
            frames[0]["event"]["event_type"].clone(),
            frames[1]["event"]["event_type"].clone()
        ),
        (0.into(), 1.into())
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn repeat_connected_reannounces_connected_participants() {
    let (sim, _, mut events, changes) = setup(SimConfig::default()).await;
    sim.apply(&changes[0]);
    sim.apply(&changes[1]); // connected
    let announced = events.take(2).await;
    sim.faults()
        .repeat_connected(Some(Duration::from_millis(20)));
    let repeats = events.take(3).await;
    for repeat in &repeats {
        assert_eq!(entity(repeat), entity(&announced[1]));
        assert_eq!(repeat["event"]["event_type"], 0);
    }
    sim.faults().repeat_connected(None);
    sim.apply(&changes[2]);
    // After switching off, the remove arrives (possibly after one in-flight repeat).
    loop {
        let frame = events.next_json().await;
        if frame["event"]["event_type"] == 1 {
            break;
        }
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn drop_sockets_closes_every_socket() {
    let (sim, token, mut first, _) = setup(SimConfig::default()).await;
    let mut second = Events::open(&sim, &token).await;
    sim.faults().drop_sockets();
    first.closed().await;
    second.closed().await;
    Events::open(&sim, &token).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn refused_upgrades_get_401_for_the_window() {
    let (sim, token, _, _) = setup(SimConfig::default()).await;
    sim.faults().refuse_upgrades_for(Duration::from_secs(60));
    let refused = Events::connect(&sim, &token).await.err().expect("refused");
    assert_eq!(upgrade_status(&refused), Some(401));
    sim.faults().reset();
    Events::connect(&sim, &token)
        .await
        .expect("accepted after reset");
    sim.shutdown().await;
}

#[tokio::test]
async fn skip_sequence_leaves_a_gap() {
    let (sim, _, mut events, changes) = setup(SimConfig::default()).await;
    sim.apply(&changes[0]);
    sim.faults().skip_sequence();
    sim.apply(&changes[1]);
    let frames = events.take(2).await;
    assert_eq!(
        (frames[0]["sequence"].clone(), frames[1]["sequence"].clone()),
        (1.into(), 3.into())
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn malformed_and_unknown_frames_take_sequence_numbers() {
    let (sim, _, mut events, changes) = setup(SimConfig::default()).await;
    sim.faults().malformed_frame();
    sim.faults().unknown_event_type();
    sim.faults().send_event(
        2,
        "/callcontrol/120/participants/1",
        serde_json::json!({"dtmf_input": "1"}),
    );
    sim.apply(&changes[0]);
    let garbage = events.next_text().await;
    assert!(
        serde_json::from_str::<Value>(&garbage).is_err(),
        "{garbage}"
    );
    let unknown = events.next_json().await;
    assert_eq!(
        (
            unknown["sequence"].clone(),
            unknown["event"]["event_type"].clone()
        ),
        (2.into(), 7.into())
    );
    let dtmf = events.next_json().await;
    assert_eq!(dtmf["event"]["attached_data"]["dtmf_input"], "1");
    assert_eq!(events.next_json().await["sequence"], 4);
    sim.shutdown().await;
}

#[tokio::test]
async fn vanish_next_upsert_answers_404_until_the_next_change() {
    let (sim, token, mut events, changes) = setup(SimConfig::default()).await;
    sim.faults().vanish_next_upsert();
    sim.apply(&changes[0]);
    let path = entity(&events.next_json().await);
    assert_eq!(get(&sim, &token, &path).await.status(), 404);
    let snapshot: Value = get(&sim, &token, "/callcontrol/120")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(snapshot["participants"], serde_json::json!([]));
    sim.apply(&changes[1]);
    assert_eq!(entity(&events.next_json().await), path);
    assert_eq!(get(&sim, &token, &path).await.status(), 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn control_endpoint_flips_faults_over_http() {
    let (sim, _, mut events, changes) = setup(SimConfig {
        control_endpoint: true,
        ..SimConfig::default()
    })
    .await;
    let post = |path: &str| {
        http()
            .post(format!("{}/_sim/{path}", sim.base_url()))
            .send()
    };
    assert_eq!(
        post("duplicate_upserts?on=true").await.unwrap().status(),
        200
    );
    assert_eq!(post("duplicate_upserts").await.unwrap().status(), 400);
    assert_eq!(post("no_such_fault").await.unwrap().status(), 404);
    sim.apply(&changes[0]);
    let frames = events.take(2).await;
    assert_eq!(entity(&frames[0]), entity(&frames[1]));
    let state: Value = http()
        .get(format!("{}/_sim/faults", sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["duplicate_upserts"], true);
    assert_eq!(post("drop_sockets").await.unwrap().status(), 200);
    events.closed().await;
    for path in [
        "nulls?mode=null",
        "forbid_participants_of?dn=120",
        "forbid_xapi?on=true",
        "repeat_unconnected?every_ms=750",
        "close_on_new_token?mode=abnormal",
        "null_recording_field?mode=call_type",
        "get_delay?ms=50",
        "unusable_participants?on=true",
        "non_participant_frames?dn=120",
        "abnormal_close",
    ] {
        assert_eq!(post(path).await.unwrap().status(), 200, "{path}");
    }
    assert_eq!(post("nulls?mode=maybe").await.unwrap().status(), 400);
    let state: Value = post("get_delay?ms=50").await.unwrap().json().await.unwrap();
    let pick = |keys: &[&str]| -> Value {
        keys.iter()
            .map(|k| (k.to_string(), state[*k].clone()))
            .collect()
    };
    assert_eq!(
        pick(&[
            "nulls",
            "forbidden_participants_of",
            "forbid_xapi",
            "repeat_unconnected_ms",
            "close_on_new_token",
            "null_recording_field",
            "get_delay_ms",
            "unusable_participants"
        ]),
        serde_json::json!({
            "nulls": "null", "forbidden_participants_of": ["120"], "forbid_xapi": true,
            "repeat_unconnected_ms": 750, "close_on_new_token": "abnormal",
            "null_recording_field": "CallType", "get_delay_ms": 50, "unusable_participants": true,
        })
    );
    let reset: Value = post("reset").await.unwrap().json().await.unwrap();
    assert_eq!(
        (
            reset["duplicate_upserts"].clone(),
            reset["nulls"].clone(),
            reset["repeat_unconnected_ms"].clone()
        ),
        (false.into(), "off".into(), 750.into()),
        "reset goes back to the configured repeats, 750 ms by default"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn control_endpoint_is_off_by_default() {
    let (sim, _, mut events, _) = setup(SimConfig::default()).await;
    let reply = http()
        .post(format!("{}/_sim/drop_sockets", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 404);
    events.send(Message::Ping(Vec::new().into())).await;
    assert!(matches!(
        events.next_message().await,
        Some(Message::Pong(_))
    ));
    sim.shutdown().await;
}

#[tokio::test]
async fn scenario_faults_drop_and_refuse_at_their_time() {
    let scenario = Scenario::builtin("11-socket-drop").unwrap();
    let sim = start(SimConfig {
        directory: scenario.directory(),
        ..SimConfig::default()
    })
    .await;
    let token = token(&sim).await;
    let mut events = Events::open(&sim, &token).await;
    // At scale 0.05 the drop comes at 1.5 s and upgrades are refused for 1 s.
    let (played, ()) = tokio::join!(sim.play(&scenario, 0.05), async {
        let before_drop = events.take(4).await;
        assert!(
            before_drop.iter().all(|f| f["event"]["event_type"] == 0),
            "two rings, two answers"
        );
        events.closed().await;
        let refused = Events::connect(&sim, &token)
            .await
            .err()
            .expect("refused in the window");
        assert_eq!(upgrade_status(&refused), Some(401));
    });
    played.unwrap();
    Events::connect(&sim, &token)
        .await
        .expect("accepted after the window");
    sim.shutdown().await;
}

#[tokio::test]
async fn scenario_faults_duplicate_and_repeat_upserts() {
    let scenario = Scenario::builtin("12-duplicate-upserts").unwrap();
    let sim = start(SimConfig {
        directory: scenario.directory(),
        ..SimConfig::default()
    })
    .await;
    let token = token(&sim).await;
    let mut events = Events::open(&sim, &token).await;
    let (played, upserts) = tokio::join!(sim.play(&scenario, 0.01), async {
        let mut upserts = 0;
        loop {
            let frame = events.next_json().await;
            if frame["event"]["event_type"] == 1 {
                return upserts;
            }
            upserts += 1;
        }
    });
    played.unwrap();
    // Ringing and Connected twice each, plus repeats every 7.5 ms over 0.6 s of talk.
    assert!(upserts > 10, "{upserts} upserts");
    sim.shutdown().await;
}

#[tokio::test]
async fn abnormal_close_ends_sockets_without_a_close_frame() {
    let (sim, token, mut events, _) = setup(SimConfig::default()).await;
    sim.faults().abnormal_close();
    let ended = events.next_raw().await;
    assert!(
        matches!(
            ended,
            Some(Err(tungstenite::Error::Protocol(
                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake
            )))
        ),
        "want a reset without closing handshake (1006), got {ended:?}"
    );
    Events::open(&sim, &token).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn close_on_new_token_ends_the_sockets_open_at_the_mint() {
    for (close, clean) in [(SocketClose::Clean, true), (SocketClose::Abnormal, false)] {
        let (sim, _, mut old, _) = setup(SimConfig::default()).await;
        sim.faults().close_on_new_token(Some(close));
        let fresh = token(&sim).await;
        match old.next_raw().await {
            Some(Ok(Message::Close(_))) => assert!(clean, "{close:?}"),
            Some(Err(_)) => assert!(!clean, "{close:?}"),
            other => panic!("{close:?}: the old socket must end, got {other:?}"),
        }
        let mut new = Events::open(&sim, &fresh).await;
        new.send(Message::Ping(Vec::new().into())).await;
        assert!(matches!(new.next_message().await, Some(Message::Pong(_))));
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn non_participant_frames_take_sequence_numbers() {
    let (sim, _, mut events, changes) = setup(SimConfig::default()).await;
    sim.faults().non_participant_frames("120");
    sim.apply(&changes[0]);
    let frames = events.take(3).await;
    let seen: Vec<(Value, Value, String)> = frames
        .iter()
        .map(|f| {
            (
                f["sequence"].clone(),
                f["event"]["event_type"].clone(),
                entity(f),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                1.into(),
                0.into(),
                "/callcontrol/120/devices/sip:120@127.0.0.1:5060".to_owned()
            ),
            (2.into(), 0.into(), "/callcontrol/120".to_owned()),
            (
                3.into(),
                0.into(),
                "/callcontrol/120/participants/8100".to_owned()
            ),
        ]
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn repeat_unconnected_repeats_ringing_legs_until_they_connect() {
    let (sim, _, mut events, changes) = setup(SimConfig {
        repeat_unconnected: Some(Duration::from_millis(20)),
        ..SimConfig::default()
    })
    .await;
    sim.apply(&changes[0]); // ringing
    let frames = events.take(4).await; // the upsert and three repeats
    assert!(
        frames
            .iter()
            .all(|f| entity(f) == "/callcontrol/120/participants/8100")
    );
    sim.apply(&changes[1]); // connected: no more repeats after this
    sim.faults().non_participant_frames("120"); // a marker after the change
    loop {
        if entity(&events.next_json().await) == "/callcontrol/120" {
            break;
        }
    }
    // Nothing to await here: give the 20 ms repeater five periods to (wrongly) repeat.
    let quiet = tokio::time::timeout(Duration::from_millis(100), events.next_message()).await;
    assert!(quiet.is_err(), "a Connected leg was repeated: {quiet:?}");
    sim.shutdown().await;
}

/// Two ringing legs announced 150 ms apart, with 300 ms repeats: each leg's repeat comes a
/// period after its own last upsert. (Together, the second leg would be repeated at the first
/// tick, 150 ms after its upsert.) The gaps are measured where the frames are read, so a frame
/// read late makes the next gap shorter: the bound allows a quarter period for that.
#[tokio::test]
async fn per_leg_repeats_keep_each_legs_own_period() {
    const PERIOD: Duration = Duration::from_millis(300);
    let (sim, _, mut events, changes) = setup(SimConfig {
        repeat_unconnected: Some(PERIOD),
        repeat_phase: RepeatPhase::PerLeg,
        ..SimConfig::default()
    })
    .await;
    let ParticipantChange::Upsert(first) = &changes[0] else {
        panic!("the scenario starts with an upsert")
    };
    let mut second = first.clone();
    second["id"] = 8199.into();
    second["dn"] = "121".into();
    let started = std::time::Instant::now();
    sim.apply(&changes[0]);
    let second_leg = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        sim.apply(&ParticipantChange::Upsert(second));
    };
    // Frames with when they were read, until each leg has its upsert and two repeats.
    let read = async {
        let mut seen: Vec<(String, Duration)> = Vec::new();
        let count = |seen: &[(String, Duration)], leg: &str| {
            seen.iter().filter(|(path, _)| path.ends_with(leg)).count()
        };
        while count(&seen, "/8100") < 3 || count(&seen, "/8199") < 3 {
            let frame = events.next_json().await;
            seen.push((entity(&frame), started.elapsed()));
        }
        seen
    };
    let ((), seen) = tokio::join!(second_leg, read);
    for leg in [
        "/callcontrol/120/participants/8100",
        "/callcontrol/121/participants/8199",
    ] {
        let times: Vec<Duration> = seen
            .iter()
            .filter(|(path, _)| path == leg)
            .map(|(_, at)| *at)
            .collect();
        for pair in times.windows(2) {
            assert!(
                pair[1] - pair[0] >= PERIOD * 3 / 4,
                "{leg} repeated before its own period was up: {seen:?}"
            );
        }
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn get_delay_holds_each_participant_get() {
    let (sim, token, mut events, changes) = setup(SimConfig::default()).await;
    sim.faults().get_delay(Duration::from_millis(300));
    sim.apply(&changes[0]);
    let path = entity(&events.next_json().await);
    let started = std::time::Instant::now();
    assert_eq!(get(&sim, &token, &path).await.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    sim.shutdown().await;
}
