//! The whole host against a PBX that behaves like a remote 3CX: the answer of a queue call
//! while 3CX repeats the ringing legs, and the gap an abnormal socket close leaves.
//!
//! Simulator → connector → engine → durable queue → generic-webhook plugin → local sink, all in
//! this process on 127.0.0.1, wired like `app::local`'s host (the engine's call state saved with
//! the events, no recordings, grace 2 s), but built here so the bench can read the connector's
//! counters and connection state. The simulator repeats every participant not yet `Connected`
//! every 750 ms (wall clock), as 3CX does, and answers each participant GET after 50 ms, as a
//! PBX a few network hops away would (snapshots and token requests are not delayed).
//!
//! 1. **Queue answer.** [`CALLS`] queue calls, one starting every [`STAGGER`]: the caller enters
//!    queue 800 and [`AGENTS`] agents ring on its behalf; one agent answers after 2.5–3.4 s of
//!    ringing, the call talks [`TALK`] and ends. Calls overlap (up to four ring at once, each
//!    with its own ten agents). The bench applies the timeline to the simulator itself and
//!    notes when it put the answering agent's `Connected` upsert on the simulator's event bus
//!    (from where the socket sends it); latency runs from there to the sink receiving that
//!    call's `incomingcall_started` webhook. The same again without repeats and GET delay, for
//!    comparison. The connector's counters show how many frames became how many GETs.
//! 2. **Abnormal close.** A fresh host; a queue call rings ten agents for 1 s; every socket is
//!    dropped without a close frame and the answer is applied right after, so only the
//!    reconnect's snapshot can show it; gap = from the drop to the sink receiving
//!    `incomingcall_started`. Then, on the same host 2 s later, the same with a second call: a
//!    second drop within 30 s of the first. [`DROP_RUNS`] hosts.
//!
//! Run: `cargo bench -p callhook --bench remote_pbx`. Figures go to `docs/benchmarks.md`.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callhook::app::local::{LocalHost, LocalSetup};
use callhook::pbx::{ConnectionState, ConnectorStats, StatsSnapshot};
use callhook_simulator::{ParticipantChange, Scenario, SimConfig, SimHandle, Simulator};

#[path = "support/sink.rs"]
mod sink;
use sink::{Received, call_and_event, sink};

/// Queue calls in part 1.
const CALLS: usize = 16;
/// Agents ringing per call.
const AGENTS: usize = 10;
/// Groups of [`AGENTS`] extensions used in turn, so that overlapping calls ring different agents.
const GROUPS: usize = 5;
/// One call starts this often (seconds).
const STAGGER: f64 = 1.0;
/// How long an answered call talks (seconds).
const TALK: f64 = 0.5;
/// 3CX's repeat period for legs not yet connected.
const REPEAT: Duration = Duration::from_millis(750);
/// The remote PBX's delay before answering a participant GET.
const GET_DELAY: Duration = Duration::from_millis(50);
/// Hosts started for part 2, each taking two drops.
const DROP_RUNS: u64 = 6;
/// How long the call rings before the drop.
const RING_BEFORE_DROP: Duration = Duration::from_secs(1);
/// The engine's grace period (its default).
const GRACE: Duration = Duration::from_secs(2);
/// How long any wait may take before the bench gives up.
const PATIENCE: Duration = Duration::from_secs(20);

/// When the sink received `call`'s `incomingcall_started`, waiting for it up to [`PATIENCE`].
async fn started_at(received: &Received, call: u64) -> Option<Instant> {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        let found = received.lock().unwrap().iter().find_map(|(at, query)| {
            let (id, event) = call_and_event(query);
            (id == call && event == "incomingcall_started").then_some(*at)
        });
        if found.is_some() {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    None
}

/// A [`LocalHost`] (as `callhook demo` runs it, without recordings), with a grip on the
/// connector's counters and states.
struct Host {
    host: LocalHost,
    stats: Arc<ConnectorStats>,
    /// The connector's states, with when each was published.
    states: Arc<Mutex<Vec<(Instant, ConnectionState)>>>,
}

impl Host {
    /// Starts a host against `simulator` and waits for its first snapshot.
    async fn start(simulator: &SimHandle, origin: &str) -> Host {
        let setup = LocalSetup {
            grace: GRACE,
            ..LocalSetup::webhook(origin, format!("{origin}/events"))
        };
        let host = LocalHost::start(simulator, setup).await.unwrap();
        let observed = host.observed();
        let states = Arc::new(Mutex::new(Vec::new()));
        {
            let states = states.clone();
            let mut connection = observed.connection;
            tokio::spawn(async move {
                while connection.changed().await.is_ok() {
                    let state = connection.borrow_and_update().clone();
                    states.lock().unwrap().push((Instant::now(), state));
                }
            });
        }
        Host {
            host,
            stats: observed.connector,
            states,
        }
    }

    async fn stop(self) {
        self.host.stop().await.unwrap();
    }
}

/// A scenario of queue calls: call `k` (id `first_call + k`) starts at `starts[k]`, rings
/// agents of group `k % GROUPS` on behalf of queue 800, is answered by one of them after
/// `rings[k]` and ends [`TALK`] later.
fn queue_calls(first_call: u64, first_participant: u64, starts: &[f64], rings: &[f64]) -> Scenario {
    let mut text = format!("first_participant_id = {first_participant}\n");
    text.push_str("[[dn]]\ndn = \"800\"\ntype = \"Wqueue\"\nname = \"Sales\"\n");
    for agent in 0..GROUPS * AGENTS {
        writeln!(text, "[[dn]]\ndn = \"{}\"", 201 + agent).unwrap();
    }
    for (k, (start, ring)) in starts.iter().zip(rings).enumerate() {
        let group = k % GROUPS;
        let agents: Vec<String> = (0..AGENTS)
            .map(|a| format!("\"{}\"", 201 + group * AGENTS + a))
            .collect();
        let answerer = 201 + group * AGENTS + (k * 3) % AGENTS;
        let callid = first_call + k as u64;
        write!(
            text,
            "[[call]]\ncallid = {callid}\nexternal = \"4256304343{k:02}\"\ndid = \"4930123456\"\n\
             [[call.step]]\nat = {start:.3}\naction = \"enter\"\ndn = \"800\"\n\
             [[call.step]]\nat = {start:.3}\naction = \"ring\"\ndns = [{}]\nvia = \"800\"\n\
             [[call.step]]\nat = {:.3}\naction = \"answer\"\ndn = \"{answerer}\"\n\
             [[call.step]]\nat = {:.3}\naction = \"hangup\"\n",
            agents.join(", "),
            start + ring,
            start + ring + TALK,
        )
        .unwrap();
    }
    Scenario::from_toml_str(&text).unwrap()
}

/// The call of an upsert whose agent leg (not the queue's) is `Connected`.
fn agent_connected(change: &ParticipantChange) -> Option<u64> {
    match change {
        ParticipantChange::Upsert(json) if json["status"] == "Connected" && json["dn"] != "800" => {
            json["callid"].as_u64()
        }
        _ => None,
    }
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn delta(after: StatsSnapshot, before: StatsSnapshot) -> StatsSnapshot {
    StatsSnapshot {
        frames: after.frames - before.frames,
        participant_fetches: after.participant_fetches - before.participant_fetches,
        fetches_folded: after.fetches_folded - before.fetches_folded,
        fetches_skipped: after.fetches_skipped - before.fetches_skipped,
        snapshots: after.snapshots - before.snapshots,
        changes: after.changes - before.changes,
        ..StatsSnapshot::default()
    }
}

/// Part 1 on a fresh simulator: prints a table row.
async fn queue_answers(repeat: Option<Duration>, get_delay: Duration, label: &str) {
    let starts: Vec<f64> = (0..CALLS).map(|k| k as f64 * STAGGER).collect();
    // Ring 2.5–3.4 s, in a scrambled order, so answers fall at every phase of the repeats.
    let rings: Vec<f64> = (0..CALLS)
        .map(|k| 2.5 + 0.9 * ((k * 7) % CALLS) as f64 / (CALLS - 1) as f64)
        .collect();
    let scenario = queue_calls(9000, 500_000, &starts, &rings);
    let simulator = Simulator::start(SimConfig {
        directory: scenario.directory(),
        repeat_unconnected: repeat,
        get_delay,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let (origin, received) = sink().await;
    let host = Host::start(&simulator, &origin).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let before = host.stats.snapshot();
    let mut connected: HashMap<u64, Instant> = HashMap::new();
    let start = tokio::time::Instant::now();
    for step in scenario.timeline() {
        tokio::time::sleep_until(start + step.at).await;
        if let Some(call) = agent_connected(&step.change) {
            connected.insert(call, Instant::now());
        }
        simulator.apply(&step.change);
    }
    let mut latencies = Vec::new();
    for (call, sent) in &connected {
        match started_at(&received, *call).await {
            Some(at) => latencies.push(at.saturating_duration_since(*sent)),
            None => println!("call {call}: no incomingcall_started"),
        }
    }
    let stats = delta(host.stats.snapshot(), before);
    host.stop().await;
    simulator.shutdown().await;

    latencies.sort();
    println!(
        "| {label} | {} | {} | {} | {} | {} | {} | {} | {} |",
        latencies.len(),
        millis(latencies[0]),
        millis(percentile(&latencies, 50)),
        millis(percentile(&latencies, 99)),
        millis(*latencies.last().unwrap()),
        stats.frames,
        stats.participant_fetches,
        stats.fetches_folded,
    );
    println!(
        "|   (all, ms: {}; {} upserts needed no GET (a remove followed), {} changes) |",
        latencies
            .iter()
            .map(|l| format!("{:.0}", l.as_secs_f64() * 1e3))
            .collect::<Vec<_>>()
            .join(" "),
        stats.fetches_skipped,
        stats.changes,
    );
}

/// One drop on `host`: a queue call (id `call`) rings for [`RING_BEFORE_DROP`], the sockets
/// are dropped, the answer is applied. Returns (drop → webhook, drop → connected again,
/// the backoff delay the connector chose).
async fn one_drop(
    simulator: &SimHandle,
    host: &Host,
    received: &Received,
    call: u64,
) -> Option<(Duration, Duration, Duration)> {
    let scenario = queue_calls(call, call * 100, &[0.0], &[2.0]);
    let timeline = scenario.timeline();
    let answer_at = Duration::from_secs(2);
    for step in timeline.iter().filter(|s| s.at < answer_at) {
        simulator.apply(&step.change);
    }
    tokio::time::sleep(RING_BEFORE_DROP).await;
    let states_before = host.states.lock().unwrap().len();
    let dropped = Instant::now();
    simulator.faults().abnormal_close();
    for step in timeline.iter().filter(|s| s.at == answer_at) {
        simulator.apply(&step.change);
    }
    let arrived = started_at(received, call).await;
    let states: Vec<_> = host.states.lock().unwrap()[states_before..].to_vec();
    let reconnected = states
        .iter()
        .find(|(_, s)| matches!(s, ConnectionState::Connected { .. }))
        .map(|(at, _)| at.saturating_duration_since(dropped));
    let backoff = states.iter().find_map(|(_, s)| match s {
        ConnectionState::Backoff { delay, .. } => Some(*delay),
        _ => None,
    });
    for step in timeline.iter().filter(|s| s.at > answer_at) {
        simulator.apply(&step.change);
    }
    Some((
        arrived?.saturating_duration_since(dropped),
        reconnected?,
        backoff.unwrap_or_default(),
    ))
}

/// Part 2: [`DROP_RUNS`] fresh hosts, two drops each.
async fn abnormal_closes() {
    let simulator = Simulator::start(SimConfig {
        directory: queue_calls(1, 1, &[0.0], &[2.0]).directory(),
        repeat_unconnected: Some(REPEAT),
        get_delay: GET_DELAY,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let (origin, received) = sink().await;
    let mut first = Vec::new();
    let mut second = Vec::new();
    for run in 0..DROP_RUNS {
        let host = Host::start(&simulator, &origin).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let calls = (20_000 + run * 10, 20_001 + run * 10);
        for (call, into) in [(calls.0, &mut first), (calls.1, &mut second)] {
            if call == calls.1 {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            match one_drop(&simulator, &host, &received, call).await {
                Some(figures) => into.push(figures),
                None => println!("call {call}: no incomingcall_started or no reconnect"),
            }
        }
        let stats = host.stats.snapshot();
        println!(
            "host {run}: {} connects, {} disconnects, {} snapshots",
            stats.connects, stats.disconnects, stats.snapshots
        );
        host.stop().await;
    }
    simulator.shutdown().await;

    println!(
        "\n| abnormal close → incomingcall_started | runs | min | median | max | drop → connected again (median) | backoff chosen |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (what, mut list) in [
        ("first drop of a host", first),
        ("second drop, about 3 s after the first", second),
    ] {
        if list.is_empty() {
            println!("| {what} | 0 | | | | | |");
            continue;
        }
        list.sort_by_key(|(gap, _, _)| *gap);
        let mut reconnects: Vec<Duration> = list.iter().map(|(_, r, _)| *r).collect();
        reconnects.sort();
        let backoffs: Vec<String> = list
            .iter()
            .map(|(_, _, b)| format!("{:.0}", b.as_secs_f64() * 1e3))
            .collect();
        println!(
            "| {what} | {} | {} | {} | {} | {} | {} ms |",
            list.len(),
            millis(list[0].0),
            millis(list[list.len() / 2].0),
            millis(list.last().unwrap().0),
            millis(reconnects[reconnects.len() / 2]),
            backoffs.join(", "),
        );
    }
}

async fn run() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let began = Instant::now();
    println!(
        "queue calls: {CALLS}, {AGENTS} agents ring each, one starts every {STAGGER} s, \
         answered after 2.5–3.4 s\n"
    );
    println!(
        "| PBX | calls | min | p50 | p99 | max | frames | participant GETs | upserts folded |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    queue_answers(
        Some(REPEAT),
        GET_DELAY,
        "repeats every 750 ms, GET answered after 50 ms",
    )
    .await;
    queue_answers(None, Duration::ZERO, "no repeats, no GET delay").await;
    abnormal_closes().await;
    println!("\nwhole bench: {:.1} s", began.elapsed().as_secs_f64());
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // cargo test --benches asks for a list; there is nothing to list.
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}
