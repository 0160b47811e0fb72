//! The whole host under a steady load: simulator → connector → engine → durable queue →
//! generic-webhook plugin → local sink, all in this process on 127.0.0.1: `app::local`'s host,
//! which saves the engine's call state with the events like `callhook run` (no recordings).
//!
//! The load is `Scenario::load(1400, ..)` with the calls starting evenly over 20 s, ringing 1 s
//! and talking 6 s: about 200 events/s while starts, answers and ends overlap. Its timeline
//! is applied to the simulator in real time by this bench (the simulator's own player would
//! also publish recordings), noting when each change was applied. Latency is from there to the
//! sink receiving the webhook: for `ringing`/`dialing` from the call's first change, for
//! `*_started` from the change that connected it, for end events from the call's last change
//! plus the engine's 2 s grace period (which the engine waits on purpose). The process's RSS
//! (simulator and sink included) is sampled every 100 ms.
//!
//! Run: `cargo bench -p callhook --bench pipeline`. Figures go to `docs/benchmarks.md`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callhook::app::local::{LocalHost, LocalSetup};
use callhook_simulator::{LoadProfile, ParticipantChange, Scenario, SimConfig, Simulator};

#[path = "support/sink.rs"]
mod sink;
use sink::{call_and_event, sink};

/// Concurrent calls started over [`RAMP`].
const CALLS: usize = 1400;
/// The calls start evenly over this time.
const RAMP: Duration = Duration::from_secs(20);
/// The engine's grace period before end events (its default).
const GRACE: Duration = Duration::from_secs(2);
/// How long the bench waits for the last webhook after the last change.
const PATIENCE: Duration = Duration::from_secs(60);

/// When the simulator applied a call's changes.
#[derive(Default)]
struct Applied {
    first: Option<Instant>,
    connected: Option<Instant>,
    last: Option<Instant>,
}

/// The process's resident set size in KiB.
fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

async fn run() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let scenario = Scenario::load(
        CALLS,
        &LoadProfile {
            ramp: RAMP,
            ring: Duration::from_secs(1),
            talk: Duration::from_secs(6),
            ..LoadProfile::default()
        },
    );
    let simulator = Simulator::start(SimConfig {
        directory: scenario.directory(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let (origin, received) = sink().await;
    let setup = LocalSetup {
        grace: GRACE,
        ..LocalSetup::webhook(origin.clone(), format!("{origin}/events"))
    };
    let host = LocalHost::start(&simulator, setup).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let rss_before = vm_rss_kib();
    let peak = Arc::new(Mutex::new(rss_before));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let rss = vm_rss_kib();
                let mut peak = peak.lock().unwrap();
                *peak = (*peak).max(rss);
            }
        })
    };

    // Apply the timeline in real time, noting when each call's changes went out.
    let mut applied: HashMap<u64, Applied> = HashMap::new();
    let mut call_of: HashMap<u64, u64> = HashMap::new();
    let start = tokio::time::Instant::now();
    for step in scenario.timeline() {
        tokio::time::sleep_until(start + step.at).await;
        let now = Instant::now();
        let call = match &step.change {
            ParticipantChange::Upsert(json) => {
                let call = json["callid"].as_u64().unwrap();
                call_of.insert(json["id"].as_u64().unwrap(), call);
                let entry = applied.entry(call).or_default();
                entry.first.get_or_insert(now);
                if json["status"] == "Connected" {
                    entry.connected.get_or_insert(now);
                }
                call
            }
            ParticipantChange::Remove { participant_id, .. } => call_of[participant_id],
        };
        applied.get_mut(&call).unwrap().last = Some(now);
        simulator.apply(&step.change);
    }
    let expected = scenario.expected().len();
    let waiting = async {
        while received.lock().unwrap().len() < expected {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let complete = tokio::time::timeout(PATIENCE, waiting).await.is_ok();
    sampler.abort();
    let peak = *peak.lock().unwrap();
    host.stop().await.unwrap();
    simulator.shutdown().await;

    let received = received.lock().unwrap();
    let first = received.iter().map(|(at, _)| *at).min().unwrap();
    let last = received.iter().map(|(at, _)| *at).max().unwrap();
    // (second of the run it arrived in, whether an end event, latency)
    let latencies: Vec<(u64, bool, Duration)> = received
        .iter()
        .map(|(at, query)| {
            let (call, event) = call_and_event(query);
            let times = &applied[&call];
            let (end, from) = match event.as_str() {
                "ringing" | "dialing" => (false, times.first.unwrap()),
                "incomingcall_started" | "outgoingcall_started" => {
                    (false, times.connected.unwrap())
                }
                _ => (true, times.last.unwrap() + GRACE),
            };
            (
                (*at - first).as_secs(),
                end,
                at.saturating_duration_since(from),
            )
        })
        .collect();
    println!(
        "load-{CALLS}: {} of {expected} webhooks received{}, over {:.1} s: {:.0} events/s on average",
        received.len(),
        if complete { "" } else { " (gave up waiting)" },
        (last - first).as_secs_f64(),
        received.len() as f64 / (last - first).as_secs_f64(),
    );
    let table = |rows: Vec<(String, Vec<Duration>)>| {
        println!("|---|---|---|---|---|");
        for (what, mut list) in rows {
            list.sort();
            println!(
                "| {what} | {} | {:.1} ms | {:.1} ms | {:.1} ms |",
                list.len(),
                percentile(&list, 50).as_secs_f64() * 1e3,
                percentile(&list, 99).as_secs_f64() * 1e3,
                list.last().unwrap().as_secs_f64() * 1e3,
            );
        }
    };
    let select = |keep: &dyn Fn(u64, bool) -> bool| -> Vec<Duration> {
        latencies
            .iter()
            .filter(|(second, end, _)| keep(*second, *end))
            .map(|(_, _, latency)| *latency)
            .collect()
    };
    println!("\n| latency, change applied → webhook received | events | p50 | p99 | max |");
    table(vec![
        ("ringing, dialing, *_started".into(), select(&|_, end| !end)),
        (
            "end events, beyond the 2 s grace".into(),
            select(&|_, end| end),
        ),
    ]);
    println!("\n| received in seconds | events | p50 | p99 | max |");
    let seconds = (last - first).as_secs();
    table(
        (0..=seconds / 5)
            .map(|window| {
                let range = window * 5..window * 5 + 5;
                let what = format!("{}–{}", range.start, range.end);
                (what, select(&|second, _| range.contains(&second)))
            })
            .filter(|(_, list)| !list.is_empty())
            .collect(),
    );
    println!(
        "\nprocess RSS (simulator and sink included): {:.1} MiB before, {:.1} MiB at the peak",
        rss_before as f64 / 1024.0,
        peak as f64 / 1024.0
    );
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
