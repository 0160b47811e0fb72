//! End-to-end tests of the 3CX connector against the simulator, over real HTTP and WebSocket
//! on 127.0.0.1.
//!
//! Each test starts a simulator, runs the connector against it and folds the connector's
//! [`Change`] stream into a [`View`]: the participants the connector believes alive, and per
//! participant the history of statuses it saw (`"Gone"` once removed). Scenarios are played
//! 100x faster than real time; steps are then at least 50 ms apart, far more than a loopback
//! GET takes, so the connector sees every state and the history must equal the scenario's.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use callhook::callcontrol::{Change, ParticipantStatus};
use callhook::pbx::{
    ConnectionState, Connector, ConnectorConfig, ConnectorError, ConnectorStats, RestClient,
    RestError, TokenError, capture::CaptureWriter,
};
use callhook_simulator::{
    LoadProfile, ParticipantChange, Scenario, SimConfig, SimHandle, Simulator, SocketClose,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long any wait in these tests may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(20);
/// Scenario time scale: 100x faster than real time.
const FAST: f64 = 0.01;

fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A connector configuration for `sim` with quick reconnects.
fn fast_config(sim: &SimHandle) -> ConnectorConfig {
    let sim_config = sim.config();
    ConnectorConfig {
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        request_timeout: Duration::from_secs(5),
        ..ConnectorConfig::new(
            sim.base_url().parse().unwrap(),
            sim_config.client_id.clone(),
            sim_config.client_secret.clone(),
        )
    }
}

fn status_name(status: ParticipantStatus) -> String {
    format!("{status:?}")
}

/// What the connector's output says about the PBX.
#[derive(Debug, Default)]
struct View {
    live: HashMap<u64, ParticipantStatus>,
    history: BTreeMap<u64, Vec<String>>,
    /// Participants whose end the connector learnt from a snapshot, not a remove.
    gone_by_snapshot: BTreeSet<u64>,
    snapshots: usize,
    changes: Vec<Change>,
}

impl View {
    fn note(&mut self, id: u64, what: String) {
        let history = self.history.entry(id).or_default();
        if history.last() != Some(&what) {
            history.push(what);
        }
    }

    fn apply(&mut self, change: Change) {
        match &change {
            Change::Snapshot { participants, .. } => {
                self.snapshots += 1;
                let present: BTreeSet<u64> = participants.iter().map(|p| p.id).collect();
                let vanished: Vec<u64> = self
                    .live
                    .keys()
                    .copied()
                    .filter(|id| !present.contains(id))
                    .collect();
                for id in vanished {
                    self.live.remove(&id);
                    self.gone_by_snapshot.insert(id);
                    self.note(id, "Gone".into());
                }
                for p in participants {
                    self.live.insert(p.id, p.status);
                    self.note(p.id, status_name(p.status));
                }
            }
            Change::Upsert { participant: p, .. } => {
                self.live.insert(p.id, p.status);
                self.note(p.id, status_name(p.status));
            }
            Change::Remove { participant_id, .. } => {
                self.live.remove(participant_id);
                self.note(*participant_id, "Gone".into());
            }
        }
        self.changes.push(change);
    }
}

/// The status history each participant of `scenario` goes through.
fn expected_histories(scenario: &Scenario) -> BTreeMap<u64, Vec<String>> {
    let mut histories: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for step in scenario.timeline() {
        let (id, what) = match &step.change {
            ParticipantChange::Upsert(p) => (
                p["id"].as_u64().unwrap(),
                p["status"].as_str().unwrap().to_owned(),
            ),
            ParticipantChange::Remove { participant_id, .. } => {
                (*participant_id, "Gone".to_owned())
            }
        };
        let history = histories.entry(id).or_default();
        if history.last() != Some(&what) {
            history.push(what);
        }
    }
    histories
}

/// A simulator, a connector running against it, and what came out.
struct Harness {
    sim: SimHandle,
    rx: mpsc::Receiver<Change>,
    cancel: CancellationToken,
    task: Option<JoinHandle<Result<(), ConnectorError>>>,
    stats: Arc<ConnectorStats>,
    rest: RestClient,
    states: Arc<Mutex<Vec<ConnectionState>>>,
    view: View,
}

impl Harness {
    /// Starts a simulator knowing `scenario`'s DNs and a connector against it, and waits for the
    /// connector's first snapshot.
    async fn start(
        scenario: &Scenario,
        sim: SimConfig,
        tweak: impl FnOnce(&mut ConnectorConfig, &SimHandle),
    ) -> Harness {
        Self::start_with_capture(scenario, sim, tweak, None).await
    }

    async fn start_with_capture(
        scenario: &Scenario,
        sim: SimConfig,
        tweak: impl FnOnce(&mut ConnectorConfig, &SimHandle),
        capture: Option<CaptureWriter>,
    ) -> Harness {
        init();
        let sim = Simulator::start(SimConfig {
            directory: scenario.directory(),
            ..sim
        })
        .await
        .expect("the simulator starts");
        let mut config = fast_config(&sim);
        tweak(&mut config, &sim);
        let connector = Connector::new(config, capture).expect("the connector is set up");
        let stats = connector.stats();
        let rest = connector.rest();
        let states = Arc::new(Mutex::new(Vec::new()));
        let mut state = connector.state();
        let recorded = states.clone();
        tokio::spawn(async move {
            while state.changed().await.is_ok() {
                let now = state.borrow_and_update().clone();
                recorded.lock().unwrap().push(now);
            }
        });
        let (tx, rx) = mpsc::channel(16_384);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(connector.run(tx, cancel.clone()));
        let mut harness = Harness {
            sim,
            rx,
            cancel,
            task: Some(task),
            stats,
            rest,
            states,
            view: View::default(),
        };
        harness
            .wait_for("the first snapshot", |v| v.snapshots >= 1)
            .await;
        harness
    }

    /// Applies changes until `done` holds.
    async fn wait_for(&mut self, what: &str, done: impl Fn(&View) -> bool) {
        let waiting = async {
            while !done(&self.view) {
                match self.rx.recv().await {
                    Some(change) => self.view.apply(change),
                    None => panic!("the connector stopped while waiting for {what}"),
                }
            }
        };
        if tokio::time::timeout(PATIENCE, waiting).await.is_err() {
            panic!(
                "timed out waiting for {what}; view: {:#?}\nstats: {:#?}",
                self.view,
                self.stats.snapshot()
            );
        }
    }

    /// Applies whatever arrives within `quiet`.
    async fn drain(&mut self, quiet: Duration) {
        while let Ok(Some(change)) = tokio::time::timeout(quiet, self.rx.recv()).await {
            self.view.apply(change);
        }
    }

    /// Plays `scenario` at `scale`, then waits until the connector has seen every participant go.
    async fn play(&mut self, scenario: &Scenario, scale: f64) {
        self.sim
            .play(scenario, scale)
            .await
            .expect("the scenario plays");
        let ids: Vec<u64> = expected_histories(scenario).into_keys().collect();
        self.wait_for("every participant to be gone", |v| {
            ids.iter().all(|id| {
                v.history
                    .get(id)
                    .and_then(|h| h.last())
                    .is_some_and(|l| l == "Gone")
            }) && v.live.is_empty()
        })
        .await;
    }

    /// Stops the connector; it must end with `Ok` and leave the state `Stopped`.
    async fn stop(mut self) -> (View, SimHandle) {
        self.cancel.cancel();
        let result = tokio::time::timeout(PATIENCE, self.task.take().unwrap())
            .await
            .expect("the connector stops promptly")
            .expect("the connector task does not panic");
        assert!(result.is_ok(), "{result:?}");
        while let Some(change) = self.rx.recv().await {
            self.view.apply(change);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            self.states.lock().unwrap().last(),
            Some(&ConnectionState::Stopped)
        );
        (self.view, self.sim)
    }

    fn saw_state(&self, matches: impl Fn(&ConnectionState) -> bool) -> bool {
        self.states.lock().unwrap().iter().any(matches)
    }
}

fn scenario(toml: &str) -> Scenario {
    Scenario::from_toml_str(toml).expect("the test scenario is valid")
}

/// One inbound call on 120: rings at 0, answered at 5, hold 10–15, hang-up at 20; `faults`
/// are extra `[[fault]]` tables.
fn call_with_faults(faults: &str) -> Scenario {
    scenario(&format!(
        r#"
first_participant_id = 500
[[dn]]
dn = "120"
{faults}
[[call]]
callid = 77
external = "0123456789"
[[call.step]]
at = 0
action = "ring"
dn = "120"
[[call.step]]
at = 5
action = "answer"
dn = "120"
[[call.step]]
at = 10
action = "hold"
dn = "120"
[[call.step]]
at = 15
action = "resume"
dn = "120"
[[call.step]]
at = 20
action = "hangup"
"#
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_call_arrives_complete_and_in_order() {
    let scenario = Scenario::builtin("01-direct-inbound-answered").unwrap();
    let mut h = Harness::start(&scenario, SimConfig::default(), |_, _| {}).await;
    h.play(&scenario, FAST).await;
    let stats = h.stats.snapshot();
    let (view, sim) = h.stop().await;
    assert_eq!(view.history, expected_histories(&scenario));
    assert_eq!(
        view.history.values().next().unwrap(),
        &["Ringing", "Connected", "Gone"],
        "ringing, answered, hung up"
    );
    assert_eq!(
        stats.malformed_frames + stats.unknown_events + stats.sequence_gaps,
        0,
        "{stats:?}"
    );
    assert_eq!(
        (stats.connects, stats.disconnects, stats.tokens_minted),
        (1, 0, 1),
        "{stats:?}"
    );
    assert_eq!(sim.tokens_issued(), 1);
    let upsert = view.changes.iter().find_map(|c| match c {
        Change::Upsert { participant, .. } => Some(participant.clone()),
        _ => None,
    });
    let upsert = upsert.unwrap();
    assert_eq!((upsert.dn.as_str(), upsert.callid), ("120", 101));
    assert_eq!(upsert.party_caller_id, "425630434343");
    let times: Vec<_> = view.changes.iter().map(Change::at).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "times never go back: {times:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_builtin_scenario_is_seen_exactly() {
    for name in Scenario::builtin_names() {
        // The socket drop has its own test: histories there legitimately skip steps.
        if name.starts_with("11-") {
            continue;
        }
        let scenario = Scenario::builtin(name).unwrap();
        let mut h = Harness::start(&scenario, SimConfig::default(), |_, _| {}).await;
        h.play(&scenario, FAST).await;
        let (view, sim) = h.stop().await;
        assert_eq!(view.history, expected_histories(&scenario), "{name}");
        sim.faults().reset();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superseded_token_is_replaced_once_without_losing_anything() {
    let scenario = call_with_faults("[[fault]]\nat = 7\naction = \"supersede_token\"");
    let mut h = Harness::start(&scenario, SimConfig::default(), |_, _| {}).await;
    h.play(&scenario, FAST).await;
    let stats = h.stats.snapshot();
    let (view, sim) = h.stop().await;
    assert_eq!(view.history, expected_histories(&scenario));
    assert_eq!(
        stats.unauthorized, 1,
        "one 401, then a fresh token: {stats:?}"
    );
    assert_eq!(stats.tokens_minted, 2, "{stats:?}");
    assert_eq!(sim.tokens_issued(), 2);
    assert_eq!(
        (stats.connects, stats.disconnects),
        (2, 0),
        "a new socket for the new token, opened before the old one went: {stats:?}"
    );
}

/// Tokens living 2 s must be refreshed before they expire, whichever unit `expires_in` uses
/// (the JWT's `exp` is right either way; a connector that read `1` minute would get 401s).
async fn refreshes_before_expiry(expires_in_minutes: bool) {
    let scenario = call_with_faults("");
    let sim = SimConfig {
        token_lifetime: Duration::from_secs(2),
        expires_in_minutes,
        ..SimConfig::default()
    };
    let mut h = Harness::start(&scenario, sim, |c, _| {
        c.resnapshot_interval = Duration::from_millis(150)
    })
    .await;
    h.wait_for("5 s of resnapshots", |v| v.snapshots >= 30)
        .await;
    let stats = h.stats.snapshot();
    let (_, sim) = h.stop().await;
    assert_eq!(
        stats.unauthorized, 0,
        "no request ever used an expired token: {stats:?}"
    );
    assert!(
        stats.tokens_minted >= 3,
        "refreshed every ~1.6 s: {stats:?}"
    );
    assert_eq!(sim.tokens_issued(), stats.tokens_minted);
    assert_eq!(stats.disconnects, 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_refreshed_before_expiry_with_expires_in_in_seconds() {
    refreshes_before_expiry(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_refreshed_before_expiry_with_expires_in_in_minutes() {
    refreshes_before_expiry(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_socket_and_refused_upgrades_heal_and_close_the_call_that_ended_meanwhile() {
    // Sockets drop at t30 and upgrades answer 401 until t50; call 1101 hangs up at t40.
    let scenario = Scenario::builtin("11-socket-drop").unwrap();
    let mut h = Harness::start(&scenario, SimConfig::default(), |_, _| {}).await;
    h.play(&scenario, 0.02).await;
    let stats = h.stats.snapshot();
    let saw_backoff = h.saw_state(|s| matches!(s, ConnectionState::Backoff { .. }));
    let reconnected = h
        .states
        .lock()
        .unwrap()
        .iter()
        .filter(|s| matches!(s, ConnectionState::Connected { .. }))
        .count();
    let (view, _sim) = h.stop().await;
    assert!(stats.connects >= 2 && stats.disconnects >= 2, "{stats:?}");
    assert!(stats.unauthorized >= 1, "re-upgrades got 401: {stats:?}");
    assert!(
        stats.tokens_minted >= 2,
        "401 on upgrade re-mints: {stats:?}"
    );
    assert!(saw_backoff, "the state showed the backoff");
    assert!(reconnected >= 2, "the state showed the reconnection");
    // Call 1101's leg on 120 ended during the outage: only the snapshot after reconnecting
    // could tell, and it did.
    let expected = expected_histories(&scenario);
    let (&leg_1101, _) = expected.iter().next().unwrap();
    assert_eq!(view.history[&leg_1101], ["Ringing", "Connected", "Gone"]);
    assert!(view.gone_by_snapshot.contains(&leg_1101), "{view:#?}");
    // Call 1102 went on through the outage and ended normally.
    assert_eq!(view.history, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequence_gap_causes_a_snapshot() {
    let scenario = call_with_faults("[[fault]]\nat = 7\naction = \"skip_sequence\"");
    let mut h = Harness::start(&scenario, SimConfig::default(), |_, _| {}).await;
    h.play(&scenario, FAST).await;
    let stats = h.stats.snapshot();
    let (view, _) = h.stop().await;
    assert_eq!(stats.sequence_gaps, 1, "{stats:?}");
    assert_eq!(view.snapshots, 2, "the first, and one for the gap");
    assert_eq!(view.history, expected_histories(&scenario));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_and_repeats_change_nothing() {
    let scenario = call_with_faults(
        "[[fault]]\nat = 0\naction = \"duplicate_upserts\"\non = true\n\
         [[fault]]\nat = 0\naction = \"repeat_connected\"\nevery_ms = 750",
    );
    let mut h = Harness::start(&scenario, SimConfig::default(), |_, _| {}).await;
    h.play(&scenario, FAST).await;
    let stats = h.stats.snapshot();
    h.sim.faults().reset();
    let (view, _) = h.stop().await;
    assert_eq!(view.history, expected_histories(&scenario));
    let upserts_in_timeline = scenario
        .timeline()
        .iter()
        .filter(|s| matches!(s.change, ParticipantChange::Upsert(_)))
        .count() as u64;
    assert!(
        stats.frames > 2 * upserts_in_timeline,
        "duplicates and repeats arrived: {stats:?}"
    );
    assert!(
        stats.participant_fetches + stats.fetches_skipped >= 2 * upserts_in_timeline,
        "{stats:?}"
    );
    assert_eq!(stats.sequence_gaps, 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_vanishing_before_its_fetch_is_removed() {
    // The answer at t5 upserts the leg, whose fetch then answers 404.
    let scenario = call_with_faults("[[fault]]\nat = 3\naction = \"vanish_next_upsert\"");
    let mut h = Harness::start(&scenario, SimConfig::default(), |_, _| {}).await;
    h.play(&scenario, FAST).await;
    let stats = h.stats.snapshot();
    let (view, _) = h.stop().await;
    assert_eq!(stats.not_found, 1, "{stats:?}");
    let (_, history) = view.history.iter().next().unwrap();
    // Ringing; the 404 is a remove; the hold's upsert (the leg stays Connected) brings it
    // back; hang-up.
    assert_eq!(history, &["Ringing", "Gone", "Connected", "Gone"]);
    let removes = view
        .changes
        .iter()
        .filter(|c| matches!(c, Change::Remove { .. }))
        .count();
    assert_eq!(removes, 2, "the 404 and the hang-up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_unknown_frames_are_skipped_and_counted() {
    let scenario = call_with_faults(
        "[[fault]]\nat = 7\naction = \"malformed_frame\"\n\
         [[fault]]\nat = 12\naction = \"unknown_event_type\"",
    );
    let mut h = Harness::start(&scenario, SimConfig::default(), |_, _| {}).await;
    h.play(&scenario, FAST).await;
    let stats = h.stats.snapshot();
    let (view, _) = h.stop().await;
    assert_eq!(
        (stats.malformed_frames, stats.unknown_events),
        (1, 1),
        "{stats:?}"
    );
    // The malformed frame took a sequence number: the next one shows a gap, healed by a snapshot.
    assert_eq!(stats.sequence_gaps, 1, "{stats:?}");
    assert_eq!(
        (stats.connects, stats.disconnects),
        (1, 0),
        "the socket stays up: {stats:?}"
    );
    assert_eq!(view.history, expected_histories(&scenario));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_snapshots_are_taken() {
    let scenario = call_with_faults("");
    let mut h = Harness::start(&scenario, SimConfig::default(), |c, _| {
        c.resnapshot_interval = Duration::from_millis(100)
    })
    .await;
    h.wait_for("five snapshots", |v| v.snapshots >= 5).await;
    let stats = h.stats.snapshot();
    h.stop().await;
    assert!(stats.snapshots >= 5, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_replays_to_the_same_changes_and_holds_no_secret() {
    let scenario = call_with_faults(
        "[[fault]]\nat = 0\naction = \"duplicate_upserts\"\non = true\n\
         [[fault]]\nat = 7\naction = \"malformed_frame\"\n\
         [[fault]]\nat = 12\naction = \"supersede_token\"",
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capture.jsonl");
    let capture = CaptureWriter::create(&path).unwrap();
    let sim = SimConfig {
        client_secret: "Very-S3cret-Value".to_owned(),
        ..SimConfig::default()
    };
    let mut h = Harness::start_with_capture(&scenario, sim, |_, _| {}, Some(capture)).await;
    h.play(&scenario, FAST).await;
    let (view, _) = h.stop().await;
    let replayed: Vec<Change> = callhook::pbx::replay::replay_file(&path)
        .unwrap()
        .map(|c| c.expect("every line reads"))
        .collect();
    assert_eq!(
        replayed, view.changes,
        "replay reproduces the live stream exactly"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains("Very-S3cret-Value"),
        "the secret is not captured"
    );
    assert!(!text.contains("eyJ"), "no token is captured");
    assert!(
        text.contains("\"kind\":\"token\""),
        "token lifetimes are captured"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_fail_at_start_with_a_clear_error() {
    init();
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    for (client_id, secret, status) in [
        ("callhook", "Not-The-S3cret", 401),
        ("nobody", "secret", 400),
    ] {
        let config = ConnectorConfig {
            client_id: client_id.into(),
            client_secret: secret.into(),
            ..fast_config(&sim)
        };
        let connector = Connector::new(config, None).unwrap();
        let (tx, _rx) = mpsc::channel(8);
        let result = tokio::time::timeout(PATIENCE, connector.run(tx, CancellationToken::new()))
            .await
            .unwrap();
        let error = result.unwrap_err();
        match &error {
            ConnectorError::Token(TokenError::Credentials { status: s, .. }) => {
                assert_eq!(*s, status)
            }
            other => panic!("expected a credentials error, got {other:?}"),
        }
        let message = error.to_string();
        assert!(
            message.contains("credentials") && message.contains(client_id),
            "{message}"
        );
        assert!(!message.contains("Not-The-S3cret"), "{message}");
    }
}

/// Serves `router` on a fresh port of 127.0.0.1; its `http://` origin.
async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    origin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirected_token_request_is_not_followed_and_is_reported() {
    init();
    // Whatever reaches the redirect's target, as `METHOD path body`.
    let reached = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = reached.clone();
    let elsewhere = serve(axum::Router::new().fallback(
        move |method: axum::http::Method, uri: axum::http::Uri, body: String| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(format!("{method} {uri} {body}"));
                // A refusal, so that a client that follows the redirect stops at once.
                axum::http::StatusCode::UNAUTHORIZED
            }
        },
    ))
    .await;
    let target = format!("{elsewhere}/connect/token");
    let pbx = serve(axum::Router::new().route(
        "/connect/token",
        axum::routing::post(move || {
            let target = target.clone();
            async move {
                (
                    axum::http::StatusCode::TEMPORARY_REDIRECT,
                    [(axum::http::header::LOCATION, target)],
                )
            }
        }),
    ))
    .await;
    let config = ConnectorConfig {
        backoff_min: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        ..ConnectorConfig::new(pbx.parse().unwrap(), "callhook", "S3cret-Not-For-Elsewhere")
    };
    let connector = Connector::new(config, None).unwrap();
    let (tx, _rx) = mpsc::channel(8);
    let result = tokio::time::timeout(PATIENCE, connector.run(tx, CancellationToken::new()))
        .await
        .expect("a redirect is a permanent error at start");
    assert_eq!(
        *reached.lock().unwrap(),
        Vec::<String>::new(),
        "nothing, least of all the secret, reaches the redirect's target"
    );
    let error = result.unwrap_err();
    assert!(
        matches!(
            &error,
            ConnectorError::Token(TokenError::Redirected { status: 307, location, .. })
                if location.starts_with(&elsewhere)
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("redirect") && message.contains("pbx.url"),
        "{message}"
    );
    assert!(!message.contains("S3cret"), "{message}");
}

#[tokio::test]
async fn a_pbx_without_a_call_control_licence_fails_at_start_with_a_clear_error() {
    init();
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    sim.faults().no_licence(true);
    let connector = Connector::new(fast_config(&sim), None).unwrap();
    let (tx, _rx) = mpsc::channel(8);
    let result = tokio::time::timeout(PATIENCE, connector.run(tx, CancellationToken::new()))
        .await
        .unwrap();
    let error = result.unwrap_err();
    assert!(error.is_permanent(), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("licence"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_pbx_is_retried_and_reported() {
    init();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = ConnectorConfig {
        backoff_min: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        ..ConnectorConfig::new(
            format!("http://127.0.0.1:{port}").parse().unwrap(),
            "callhook",
            "secret",
        )
    };
    let connector = Connector::new(config, None).unwrap();
    let mut state = connector.state();
    let (tx, _rx) = mpsc::channel(8);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(connector.run(tx, cancel.clone()));
    let backoff = tokio::time::timeout(
        PATIENCE,
        state
            .wait_for(|s| matches!(s, ConnectionState::Backoff { failures, .. } if *failures >= 3)),
    )
    .await
    .unwrap()
    .unwrap()
    .clone();
    let ConnectionState::Backoff { error, .. } = backoff else {
        unreachable!()
    };
    assert!(error.contains("cannot reach the PBX"), "{error}");
    cancel.cancel();
    assert!(task.await.unwrap().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_needs_the_pbx_ca_and_works_with_it() {
    init();
    let scenario = Scenario::builtin("01-direct-inbound-answered").unwrap();
    let sim = Simulator::start(SimConfig {
        tls: true,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    // Without the CA: a permanent TLS error that says what to do.
    let connector = Connector::new(fast_config(&sim), None).unwrap();
    let mut state = connector.state();
    let (tx, _rx) = mpsc::channel(8);
    let run = tokio::spawn(connector.run(tx, CancellationToken::new()));
    let seen = tokio::time::timeout(
        Duration::from_secs(3),
        state.wait_for(|s| matches!(s, ConnectionState::Backoff { .. })),
    )
    .await
    .map(|s| s.map(|s| s.clone()));
    let error = tokio::time::timeout(PATIENCE, run)
        .await
        .unwrap_or_else(|_| panic!("still running: {seen:?}"))
        .unwrap()
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("TLS") && message.contains("ca_file"),
        "{message}"
    );
    sim.shutdown().await;

    // With the CA: a normal call over HTTPS and WSS.
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let mut h = Harness::start(
        &scenario,
        SimConfig {
            tls: true,
            ..SimConfig::default()
        },
        |c, sim| {
            std::fs::write(&ca, sim.ca_pem().unwrap()).unwrap();
            c.ca_file = Some(ca.clone());
        },
    )
    .await;
    assert!(h.sim.base_url().starts_with("https://"));
    h.play(&scenario, FAST).await;
    let (view, _) = h.stop().await;
    assert_eq!(view.history, expected_histories(&scenario));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rest_client_reads_recordings_and_inbound_rules() {
    let scenario = Scenario::builtin("01-direct-inbound-answered").unwrap();
    let mut h = Harness::start(&scenario, SimConfig::default(), |_, _| {}).await;
    h.play(&scenario, FAST).await;
    // The connector's own client: a second token manager would supersede the connector's token.
    let rest = h.rest.clone();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let recordings = loop {
        let recordings = rest.recordings_after(0, 500).await.unwrap().rows;
        if !recordings.is_empty() || tokio::time::Instant::now() > deadline {
            break recordings;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(recordings.len(), 1, "{recordings:?}");
    let recording = &recordings[0];
    assert!(
        recording.recording_url.ends_with("(101).wav"),
        "{recording:?}"
    );
    assert!(recording.start_time < recording.end_time);
    assert!(
        rest.recordings_after(recording.id, 10)
            .await
            .unwrap()
            .rows
            .is_empty()
    );
    let file = rest.download_recording(recording.id).await.unwrap();
    assert!(file.bytes.starts_with(b"RIFF"), "a WAV file");
    assert_eq!(file.content_type.as_deref(), Some("audio/x-wav"));
    assert!(file.file_name.is_some_and(|n| n.ends_with(".wav")));
    assert!(matches!(
        rest.download_recording(999_999).await,
        Err(RestError::RecordingNotFound { id: 999_999 })
    ));
    let rules = rest.inbound_rules().await.unwrap();
    assert_eq!(rules[0].rule_name, "CompanyDID");
    assert_eq!(rules[0].data, "4930123456");
    let stats = h.stats.snapshot();
    h.drain(Duration::from_millis(50)).await;
    h.stop().await;
    assert_eq!(
        stats.tokens_minted, 1,
        "XAPI shares the connector's token: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_the_socket() {
    let scenario = call_with_faults("");
    let h = Harness::start(&scenario, SimConfig::default(), |_, _| {}).await;
    h.sim.wait_sockets(1).await;
    let (_, sim) = h.stop().await;
    let closed = tokio::time::timeout(PATIENCE, async {
        while sim.sockets() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(closed.is_ok(), "the simulator saw the socket close");
}

/// Whether `seen` is `expected` with some entries left out (a busy connector may fetch a
/// participant only after it changed again, and so skip a state, but never invent one).
fn is_subsequence(seen: &[String], expected: &[String]) -> bool {
    let mut expected = expected.iter();
    seen.iter().all(|s| expected.any(|e| e == s))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_calls_lose_nothing() {
    let scenario = Scenario::load(500, &LoadProfile::default());
    let mut h = Harness::start(&scenario, SimConfig::default(), |_, _| {}).await;
    let started = std::time::Instant::now();
    h.play(&scenario, 0.1).await;
    let elapsed = started.elapsed();
    let stats = h.stats.snapshot();
    let (view, _) = h.stop().await;
    let expected = expected_histories(&scenario);
    assert_eq!(
        view.history.len(),
        expected.len(),
        "every participant was seen"
    );
    for (id, history) in &expected {
        let seen = &view.history[id];
        assert!(
            is_subsequence(seen, history),
            "participant {id}: saw {seen:?}, expected {history:?}"
        );
        assert_eq!(
            seen.last().map(String::as_str),
            Some("Gone"),
            "participant {id}"
        );
    }
    assert_eq!(stats.sequence_gaps + stats.malformed_frames, 0, "{stats:?}");
    println!(
        "500 calls: {} frames, {} fetches ({} skipped) in {elapsed:?}: {:.0} frames/s",
        stats.frames,
        stats.participant_fetches,
        stats.fetches_skipped,
        stats.frames as f64 / elapsed.as_secs_f64()
    );
}

/// A queue call: 121, 122 and 123 ring on behalf of 800 from t0, 122 answers at t8, hang-up at
/// t20; `faults` are extra `[[fault]]` tables.
fn queue_call_with_faults(faults: &str) -> Scenario {
    scenario(&format!(
        r#"
first_participant_id = 600
[[dn]]
dn = "800"
type = "Wqueue"
monitored = false
[[dn]]
dn = "121"
[[dn]]
dn = "122"
[[dn]]
dn = "123"
{faults}
[[call]]
callid = 88
external = "0123456789"
[[call.step]]
at = 0
action = "enter"
dn = "800"
[[call.step]]
at = 0
action = "ring"
dns = ["121", "122", "123"]
via = "800"
[[call.step]]
at = 8
action = "answer"
dn = "122"
[[call.step]]
at = 20
action = "hangup"
"#
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nulls_and_missing_keys_everywhere_still_bring_every_participant() {
    for (fault, nulls) in [("null", "nulls as null"), ("missing", "keys left out")] {
        let scenario = call_with_faults(&format!(
            "[[fault]]\nat = 0\naction = \"nulls\"\nmode = \"{fault}\"\n\
             [[fault]]\nat = 0\naction = \"unusable_participants\"\non = true"
        ));
        let mut h = Harness::start(&scenario, SimConfig::default(), |c, _| {
            c.resnapshot_interval = Duration::from_millis(40)
        })
        .await;
        h.play(&scenario, FAST).await;
        let stats = h.stats.snapshot();
        h.sim.faults().reset();
        let (view, _) = h.stop().await;
        assert_eq!(view.history, expected_histories(&scenario), "{nulls}");
        assert!(
            stats.skipped_objects >= 2,
            "{nulls}: the participants without id or callid were skipped and counted: {stats:?}"
        );
        assert_eq!(
            (stats.connects, stats.disconnects),
            (1, 0),
            "{nulls}: no snapshot failed: {stats:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_403_on_one_dns_legs_skips_those_legs_and_nothing_else() {
    let scenario = queue_call_with_faults("");
    let mut h = Harness::start(&scenario, SimConfig::default(), |_, _| {}).await;
    h.sim.faults().forbid_participants_of("121");
    h.sim.play(&scenario, FAST).await.unwrap();
    let expected = expected_histories(&scenario);
    let visible: Vec<u64> = scenario
        .timeline()
        .iter()
        .filter_map(|step| match &step.change {
            ParticipantChange::Upsert(p) if p["dn"] != "121" => p["id"].as_u64(),
            _ => None,
        })
        .collect();
    h.wait_for("the visible legs to be gone", |v| {
        visible.iter().all(|id| {
            v.history
                .get(id)
                .and_then(|h| h.last())
                .is_some_and(|l| l == "Gone")
        })
    })
    .await;
    let stats = h.stats.snapshot();
    h.sim.faults().reset();
    let (view, _) = h.stop().await;
    for id in &visible {
        assert_eq!(view.history[id], expected[id], "participant {id}");
    }
    assert!(stats.forbidden_participants >= 1, "{stats:?}");
    assert_eq!(
        (stats.connects, stats.disconnects),
        (1, 0),
        "a hidden leg is no reason to reconnect: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abnormal_close_reconnects_at_once_and_resnapshots() {
    // The socket is dropped without a close frame at t7, while the call is connected; the hold
    // at t10 and everything after arrive over the new socket.
    let scenario = call_with_faults("[[fault]]\nat = 7\naction = \"abnormal_close\"");
    let mut h = Harness::start(&scenario, SimConfig::default(), |c, _| {
        c.backoff_min = Duration::from_secs(30);
        c.backoff_max = Duration::from_secs(60);
    })
    .await;
    h.play(&scenario, FAST).await;
    let stats = h.stats.snapshot();
    let backed_off =
        h.saw_state(|s| matches!(s, ConnectionState::Backoff { delay, .. } if !delay.is_zero()));
    let (view, _) = h.stop().await;
    assert_eq!(view.history, expected_histories(&scenario));
    assert_eq!((stats.connects, stats.disconnects), (2, 1), "{stats:?}");
    assert_eq!(view.snapshots, 2, "one after each connect");
    assert!(
        !backed_off,
        "a 30 s minimum backoff would have outlasted the scenario: the reconnect was immediate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_still_back_off() {
    // Upgrades answer 401 for a while after the drop: the first reconnect is immediate, the
    // ones after it back off.
    let scenario = call_with_faults(
        "[[fault]]\nat = 7\naction = \"refuse_upgrades\"\nseconds = 400\n\
         [[fault]]\nat = 7\naction = \"abnormal_close\"",
    );
    let mut h = Harness::start(&scenario, SimConfig::default(), |_, _| {}).await;
    h.play(&scenario, FAST).await;
    let backed_off =
        h.saw_state(|s| matches!(s, ConnectionState::Backoff { delay, .. } if !delay.is_zero()));
    let (view, _) = h.stop().await;
    assert!(backed_off, "the refused upgrades were retried with a delay");
    assert_eq!(view.history, expected_histories(&scenario));
}

/// Tokens living 2 s: the connector refreshes each on schedule, opens a new socket with the
/// new token, snapshots, and drops the old socket, even when every mint closes the open
/// sockets (`close` set).
async fn moves_to_a_new_socket_on_each_planned_refresh(close: Option<SocketClose>) {
    let scenario = call_with_faults("");
    let sim = SimConfig {
        token_lifetime: Duration::from_secs(2),
        expires_in: Some(60),
        ..SimConfig::default()
    };
    let mut h = Harness::start(&scenario, sim, |_, _| {}).await;
    h.sim.faults().close_on_new_token(close);
    h.wait_for("three planned refreshes", |v| v.snapshots >= 4)
        .await;
    h.play(&scenario, FAST).await;
    let stats = h.stats.snapshot();
    h.sim.faults().reset();
    let (view, _) = h.stop().await;
    assert_eq!(view.history, expected_histories(&scenario));
    assert_eq!(
        stats.unauthorized, 0,
        "the JWT's 2 s beat `expires_in: 60`; no request used a stale token: {stats:?}"
    );
    assert!(stats.tokens_minted >= 4, "{stats:?}");
    assert_eq!(
        stats.connects, stats.tokens_minted,
        "a new socket for every token: {stats:?}"
    );
    assert_eq!(
        stats.disconnects, 0,
        "the old socket is dropped only after the new one works: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_token_refresh_moves_to_a_new_socket() {
    moves_to_a_new_socket_on_each_planned_refresh(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_token_refresh_survives_a_pbx_that_closes_sockets_on_every_mint() {
    moves_to_a_new_socket_on_each_planned_refresh(Some(SocketClose::Abnormal)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_about_devices_and_dns_are_ignored_but_counted() {
    let scenario =
        call_with_faults("[[fault]]\nat = 7\naction = \"non_participant_frames\"\ndn = \"120\"");
    let mut h = Harness::start(&scenario, SimConfig::default(), |_, _| {}).await;
    h.play(&scenario, FAST).await;
    let stats = h.stats.snapshot();
    let (view, _) = h.stop().await;
    assert_eq!(view.history, expected_histories(&scenario));
    assert_eq!(stats.ignored_entities, 2, "{stats:?}");
    assert_eq!(
        (stats.sequence_gaps, stats.malformed_frames, view.snapshots),
        (0, 0, 1),
        "their sequence numbers count: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gaps_in_quick_succession_share_one_snapshot() {
    // Each skip shows as a gap at the next frame: the device frames right after it.
    let faults: String = [6, 7, 8]
        .iter()
        .map(|at| {
            format!(
                "[[fault]]\nat = {at}\naction = \"skip_sequence\"\n\
                 [[fault]]\nat = {at}.5\naction = \"non_participant_frames\"\ndn = \"120\"\n"
            )
        })
        .collect();
    let scenario = call_with_faults(&faults);
    let mut h = Harness::start(&scenario, SimConfig::default(), |c, _| {
        c.gap_snapshot_every = Duration::from_millis(800);
    })
    .await;
    h.play(&scenario, FAST).await;
    h.wait_for("the deferred gap snapshot", |v| v.snapshots >= 3)
        .await;
    h.drain(Duration::from_millis(1200)).await;
    let stats = h.stats.snapshot();
    let (view, _) = h.stop().await;
    assert_eq!(stats.sequence_gaps, 3, "{stats:?}");
    assert_eq!(
        view.snapshots, 3,
        "the first, one at the first gap, one shared by the next two"
    );
    assert_eq!(view.history, expected_histories(&scenario));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeats_of_ringing_legs_fold_into_few_fetches_from_a_slow_pbx() {
    // Three agents ring for 0.8 s of real time, repeated every 20 ms, and every GET takes 60 ms.
    let scenario = queue_call_with_faults("");
    let sim = SimConfig {
        repeat_unconnected: Some(Duration::from_millis(20)),
        get_delay: Duration::from_millis(60),
        ..SimConfig::default()
    };
    let mut h = Harness::start(&scenario, sim, |_, _| {}).await;
    h.play(&scenario, 0.1).await;
    let stats = h.stats.snapshot();
    let (view, _) = h.stop().await;
    assert_eq!(view.history, expected_histories(&scenario));
    assert!(stats.fetches_folded > 0, "{stats:?}");
    let upserts = stats.frames
        - (view
            .changes
            .iter()
            .filter(|c| matches!(c, Change::Remove { .. }))
            .count() as u64);
    assert!(
        stats.participant_fetches < upserts,
        "repeats cost fewer GETs than frames: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leg_that_rings_behind_a_burst_of_repeats_is_fetched_before_the_burst() {
    // 30 agents ring; their repeats all go out at once, each GET takes 20 ms and two run at
    // a time, so the burst needs some 300 ms. A call to 199 that rings just after the burst is
    // fetched next, and its reply overtakes the replies of the burst still waiting.
    let agents: Vec<String> = (121..=150).map(|dn| dn.to_string()).collect();
    let dns: String = agents
        .iter()
        .map(|dn| format!("[[dn]]\ndn = \"{dn}\"\n"))
        .collect();
    let scenario = scenario(&format!(
        r#"
first_participant_id = 700
[[dn]]
dn = "800"
type = "Wqueue"
monitored = false
[[dn]]
dn = "199"
{dns}
[[call]]
callid = 88
external = "0123456789"
[[call.step]]
at = 0
action = "enter"
dn = "800"
[[call.step]]
at = 0
action = "ring"
dns = {agents:?}
via = "800"
[[call.step]]
at = 10
action = "hangup"
[[call]]
callid = 89
external = "0987654321"
[[call.step]]
at = 5
action = "ring"
dn = "199"
[[call.step]]
at = 10
action = "hangup"
"#
    ));
    let sim = SimConfig {
        repeat_unconnected: None,
        ..SimConfig::default()
    };
    let mut h = Harness::start(&scenario, sim, |c, _| c.fetch_concurrency = 2).await;
    let steps = scenario.timeline();
    let upserted = |at: u64| -> Vec<u64> {
        steps
            .iter()
            .filter(|step| step.at == Duration::from_secs(at))
            .filter_map(|step| match &step.change {
                ParticipantChange::Upsert(p) => p["id"].as_u64(),
                ParticipantChange::Remove { .. } => None,
            })
            .collect()
    };
    let (burst, late) = (upserted(0), upserted(5));
    assert_eq!((burst.len(), late.len()), (30, 1));
    let apply = |h: &Harness, at: u64| {
        for step in steps.iter().filter(|s| s.at == Duration::from_secs(at)) {
            h.sim.apply(&step.change);
        }
    };
    apply(&h, 0);
    h.wait_for("the agents to ring", |v| {
        burst
            .iter()
            .all(|id| v.history.get(id).is_some_and(|h| h.len() == 1))
    })
    .await;
    h.sim.faults().get_delay(Duration::from_millis(20));
    h.sim.repeat_unconnected_now();
    apply(&h, 5);
    let fetched = |h: &Harness| h.stats.snapshot().participant_fetches;
    let before = fetched(&h);
    h.wait_for("199 to ring", |v| v.history.contains_key(&late[0]))
        .await;
    let burst_fetched = async {
        while fetched(&h) < before + 31 {
            h.drain(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(PATIENCE, burst_fetched)
        .await
        .expect("the burst and 199 are fetched");
    h.sim.faults().reset();
    apply(&h, 10);
    h.wait_for("every leg to be gone", |v| v.live.is_empty())
        .await;
    let (view, _) = h.stop().await;
    assert_eq!(view.history, expected_histories(&scenario));
    let upserts: Vec<u64> = view
        .changes
        .iter()
        .filter_map(|change| match change {
            Change::Upsert { participant, .. } => Some(participant.id),
            _ => None,
        })
        .collect();
    let late_at = upserts
        .iter()
        .position(|&id| id == late[0])
        .expect("199's upsert");
    let overtaken = upserts[late_at..]
        .iter()
        .filter(|id| burst.contains(id))
        .count();
    assert!(
        overtaken >= 25,
        "199's reply comes before most of the burst's, not after all of them: {overtaken} of 30 \
         after it ({upserts:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xapi_403_names_xapi_not_the_call_control_licence() {
    let scenario = call_with_faults("");
    let mut h = Harness::start(&scenario, SimConfig::default(), |_, _| {}).await;
    h.sim.faults().forbid_xapi(true);
    let error = h.rest.inbound_rules().await.unwrap_err();
    assert!(
        matches!(error, RestError::XapiForbidden { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("XAPI") && !message.contains("licence"),
        "{message}"
    );
    // Call Control goes on.
    h.play(&scenario, FAST).await;
    h.sim.faults().reset();
    let (view, _) = h.stop().await;
    assert_eq!(view.history, expected_histories(&scenario));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_of_concurrent_folded_fetches_replays_to_the_same_changes() {
    let scenario = queue_call_with_faults("");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capture.jsonl");
    let capture = CaptureWriter::create(&path).unwrap();
    let sim = SimConfig {
        repeat_unconnected: Some(Duration::from_millis(15)),
        get_delay: Duration::from_millis(40),
        ..SimConfig::default()
    };
    let mut h = Harness::start_with_capture(&scenario, sim, |_, _| {}, Some(capture)).await;
    h.play(&scenario, 0.05).await;
    let stats = h.stats.snapshot();
    let (view, _) = h.stop().await;
    assert!(stats.fetches_folded > 0, "{stats:?}");
    let replayed: Vec<Change> = callhook::pbx::replay::replay_file(&path)
        .unwrap()
        .map(|c| c.expect("every line reads"))
        .collect();
    assert_eq!(
        replayed, view.changes,
        "replay reproduces the live stream exactly, times included"
    );
    assert!(
        view.changes.windows(2).all(|w| w[0].at() <= w[1].at()),
        "times never go backwards"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_participant_get_skips_the_leg_and_a_snapshot_heals_it() {
    // 121's GETs answer 500 while the queue call rings: the session stays up, and the
    // snapshot owed to each failure shows 121's leg after all.
    let scenario = queue_call_with_faults("");
    let mut h = Harness::start(&scenario, SimConfig::default(), |c, _| {
        c.gap_snapshot_every = Duration::from_millis(50);
    })
    .await;
    h.sim.faults().fail_participants_of("121");
    h.play(&scenario, FAST).await;
    let stats = h.stats.snapshot();
    h.sim.faults().reset();
    let (view, _) = h.stop().await;
    assert!(stats.failed_fetches >= 1, "{stats:?}");
    assert!(view.snapshots >= 2, "a snapshot followed the failure");
    assert_eq!(
        (stats.connects, stats.disconnects),
        (1, 0),
        "one failing leg does not cut the connection: {stats:?}"
    );
    let ringing_121 = scenario
        .timeline()
        .iter()
        .find_map(|step| match &step.change {
            ParticipantChange::Upsert(p) if p["dn"] == "121" => p["id"].as_u64(),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        view.history[&ringing_121].first().map(String::as_str),
        Some("Ringing")
    );
}
