//! Frames per second the 3CX connector turns into `Change`s, against the simulator with 500
//! concurrent calls, and the memory per active call.
//!
//! The simulator runs in this process, on 127.0.0.1, plain HTTP and WebSocket; the connector
//! runs against it as in `host/tests/all/pbx.rs`. Two phases:
//!
//! 1. **Memory.** The steps of `Scenario::load(500, ..)` before its first hang-up (every call
//!    up) are applied at once; once the connector has reported every participant, the growth
//!    of the process's RSS (`VmRSS`) and of the live heap (a counting global allocator) is
//!    divided by the calls. Both include the simulator's own state for those calls: the
//!    connector keeps no per-call state (only a per-batch map of the frames being processed).
//! 2. **Throughput.** The whole load scenario (43 s of scenario time) is played at time scale
//!    0.001, i.e. in 43 ms, which offers far more frames than the connector can take; from the
//!    start of the play to the `Change` reporting the last participant gone, frames (the
//!    connector's own count) and `Change`s per second are reported. Five runs, with fresh call
//!    and participant ids each.
//!
//! Run: `cargo bench -p callhook --bench connector`. Figures go to `docs/benchmarks.md`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use callhook::callcontrol::Change;
use callhook::pbx::{Connector, ConnectorConfig};
use callhook_simulator::{LoadProfile, ParticipantChange, Scenario, SimConfig, Simulator};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

/// Concurrent calls.
const CALLS: usize = 500;
/// Scenario seconds per real second.
const TIME_SCALE: f64 = 0.001;
/// Throughput runs.
const RUNS: u64 = 5;
/// How long any wait may take before the bench gives up.
const PATIENCE: Duration = Duration::from_secs(60);

/// The load profile of run `run`: the same extensions, fresh call and participant ids.
fn profile(run: u64) -> LoadProfile {
    let defaults = LoadProfile::default();
    LoadProfile {
        first_callid: defaults.first_callid + run * 10_000,
        first_participant_id: defaults.first_participant_id + run * 100_000,
        ..defaults
    }
}

/// The process's resident set size in KiB.
fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn upserted_id(change: &ParticipantChange) -> Option<u64> {
    match change {
        ParticipantChange::Upsert(json) => json["id"].as_u64(),
        ParticipantChange::Remove { .. } => None,
    }
}

/// Receives `Change`s until `pending` is empty, `settle` taking each change's participant out;
/// returns how many changes came and when the last one needed arrived.
async fn consume(
    rx: &mut mpsc::Receiver<Change>,
    mut pending: HashSet<u64>,
    settle: impl Fn(&Change) -> Option<u64>,
) -> (u64, Instant) {
    let mut changes = 0;
    let wait = async {
        while !pending.is_empty() {
            let change = rx.recv().await.expect("the connector runs");
            changes += 1;
            if let Some(id) = settle(&change) {
                pending.remove(&id);
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .expect("the connector reports every participant in time");
    (changes, Instant::now())
}

fn upserted(change: &Change) -> Option<u64> {
    match change {
        Change::Upsert { participant, .. } => Some(participant.id),
        _ => None,
    }
}

fn removed(change: &Change) -> Option<u64> {
    match change {
        Change::Remove { participant_id, .. } => Some(*participant_id),
        _ => None,
    }
}

async fn run() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let first = Scenario::load(CALLS, &profile(0));
    let sim = Simulator::start(SimConfig {
        directory: first.directory(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let config = sim.config();
    let connector = Connector::new(
        ConnectorConfig::new(
            sim.base_url().parse().unwrap(),
            config.client_id.clone(),
            config.client_secret.clone(),
        ),
        None,
    )
    .unwrap();
    let stats = connector.stats();
    let (tx, mut rx) = mpsc::channel(16_384);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(connector.run(tx, cancel.clone()));
    let snapshot = rx.recv().await.expect("the first snapshot");
    assert!(matches!(snapshot, Change::Snapshot { .. }));
    drop(snapshot);

    // Memory: every call up at once.
    let timeline = first.timeline();
    let split = timeline
        .iter()
        .position(|s| matches!(s.change, ParticipantChange::Remove { .. }))
        .unwrap();
    let (up, rest) = timeline.split_at(split);
    let ids: HashSet<u64> = up.iter().filter_map(|s| upserted_id(&s.change)).collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (rss, live) = (vm_rss_kib(), counting_alloc::live_bytes());
    for step in up {
        sim.apply(&step.change);
    }
    consume(&mut rx, ids.clone(), upserted).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (rss_up, live_up) = (vm_rss_kib(), counting_alloc::live_bytes());
    println!(
        "memory with {CALLS} calls up ({} participants, simulator included):",
        ids.len()
    );
    println!("| | before | with every call up | per call |");
    println!("|---|---|---|---|");
    println!(
        "| RSS (VmRSS) | {:.1} MiB | {:.1} MiB | {:.1} KiB |",
        rss as f64 / 1024.0,
        rss_up as f64 / 1024.0,
        rss_up.saturating_sub(rss) as f64 / CALLS as f64
    );
    println!(
        "| live heap | {:.1} MiB | {:.1} MiB | {:.1} KiB |",
        live as f64 / 1048576.0,
        live_up as f64 / 1048576.0,
        live_up.saturating_sub(live) as f64 / 1024.0 / CALLS as f64
    );
    let gone: HashSet<u64> = rest
        .iter()
        .filter_map(|s| match &s.change {
            ParticipantChange::Remove { participant_id, .. } => Some(*participant_id),
            ParticipantChange::Upsert(_) => None,
        })
        .collect();
    for step in rest {
        sim.apply(&step.change);
    }
    consume(&mut rx, gone, removed).await;

    // Throughput: the whole scenario, played as fast as the scale says.
    println!(
        "\nload-{CALLS} ({:.0} s of scenario time) played at time scale {TIME_SCALE}:",
        first.duration().as_secs_f64()
    );
    println!(
        "| run | frames | changes | participant GETs | time to last remove | frames/s | changes/s |"
    );
    println!("|---|---|---|---|---|---|---|");
    for run in 1..=RUNS {
        let scenario = Scenario::load(CALLS, &profile(run));
        let gone: HashSet<u64> = scenario
            .timeline()
            .iter()
            .filter_map(|s| match &s.change {
                ParticipantChange::Remove { participant_id, .. } => Some(*participant_id),
                ParticipantChange::Upsert(_) => None,
            })
            .collect();
        let before = stats.snapshot();
        let start = Instant::now();
        let (played, (changes, done)) = tokio::join!(
            sim.play(&scenario, TIME_SCALE),
            consume(&mut rx, gone, removed)
        );
        played.unwrap();
        let after = stats.snapshot();
        let frames = after.frames - before.frames;
        let took = (done - start).as_secs_f64();
        println!(
            "| {run} | {frames} | {changes} | {} | {:.3} s | {:.0} | {:.0} |",
            after.participant_fetches - before.participant_fetches,
            took,
            frames as f64 / took,
            changes as f64 / took,
        );
    }
    let stats = stats.snapshot();
    println!(
        "\nconnector: {} sequence gaps, {} snapshots, {} fetches skipped, {} malformed frames",
        stats.sequence_gaps, stats.snapshots, stats.fetches_skipped, stats.malformed_frames
    );
    cancel.cancel();
    task.await.unwrap().unwrap();
    sim.shutdown().await;
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
