//! Events derived per second by the call engine, and its memory per active call.
//!
//! The input is the simulator's load scenario (`Scenario::load(n, &LoadProfile::default())`):
//! every call rings, most are answered and talk for 30 s, all are up at once. Its timeline is
//! turned into engine inputs once, outside the measurement (JSON → `Participant`), exactly as
//! `callhook plugin test` and `host/tests/all/scenarios.rs` do (`app::scenario_changes`); each iteration feeds them to a fresh engine, from the
//! directory snapshot to a final `tick` after the last hang-up.
//!
//! Memory per active call is taken at the moment most calls are up, in two ways: the heap
//! growth seen by a counting global allocator while the engine took the calls in, and the size
//! of the engine's `state()` as JSON (what the host persists).
//!
//! Run: `cargo bench -p callhook --bench engine`. Figures go to `docs/benchmarks.md`.

use callhook::app::scenario_changes;
use callhook::callcontrol::Change;
use callhook::calls::{Engine, EngineConfig};
use callhook_simulator::{LoadProfile, Scenario};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use jiff::{SignedDuration, Timestamp};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

/// Call counts to measure.
const SIZES: [usize; 3] = [100, 500, 2000];

/// A load scenario as the connector's changes: the directory snapshot, the timeline, and when
/// it is over.
struct Prepared {
    snapshot: Change,
    steps: Vec<Change>,
    end: Timestamp,
}

fn start() -> Timestamp {
    "2026-11-24T10:15:30Z".parse().unwrap()
}

fn config() -> EngineConfig {
    EngineConfig {
        did_rules: [("4930123456".to_string(), "CompanyDID".to_string())].into(),
        ..EngineConfig::default()
    }
}

fn prepare(n_calls: usize) -> Prepared {
    let scenario = Scenario::load(n_calls, &LoadProfile::default());
    let mut changes = scenario_changes(&scenario, start()).into_iter();
    let snapshot = changes.next().expect("the directory snapshot comes first");
    let steps = changes.collect();
    Prepared {
        snapshot,
        steps,
        end: start()
            + SignedDuration::try_from(scenario.duration()).unwrap()
            + SignedDuration::from_hours(1),
    }
}

/// Runs the whole scenario through a fresh engine; returns how many events came out.
fn derive(prepared: &Prepared, steps: Vec<Change>) -> usize {
    let mut engine = Engine::new(config());
    let mut events = engine.apply(prepared.snapshot.clone()).events.len();
    for change in steps {
        events += engine.apply(change).events.len();
    }
    events += engine.tick(prepared.end).events.len();
    assert_eq!(engine.active_calls(), 0, "calls left open");
    events
}

/// Memory once every call is up (each step before the first hang-up applied):
/// `(active calls, heap growth, state JSON bytes)`, both sizes beyond the directory snapshot's.
fn memory_at_peak(prepared: &Prepared) -> (usize, usize, usize) {
    let mut engine = Engine::new(config());
    engine.apply(prepared.snapshot.clone());
    let base_json = serde_json::to_vec(&engine.state()).unwrap().len();
    let base = counting_alloc::live_bytes();
    // Changes are cloned inside the measurement: what the engine keeps of them counts.
    for change in prepared
        .steps
        .iter()
        .take_while(|change| !matches!(change, Change::Remove { .. }))
    {
        drop(engine.apply(change.clone()));
    }
    let growth = counting_alloc::live_bytes().saturating_sub(base);
    let json = serde_json::to_vec(&engine.state()).unwrap().len() - base_json;
    (engine.active_calls(), growth, json)
}

fn bench(c: &mut Criterion) {
    let prepared: Vec<(usize, Prepared)> = SIZES.iter().map(|&n| (n, prepare(n))).collect();

    println!("engine memory with every call of the load scenario up:");
    println!("| calls | active | heap growth | per active call | state JSON per call |");
    println!("|---|---|---|---|---|");
    for (n, p) in &prepared {
        let (active, growth, json) = memory_at_peak(p);
        println!(
            "| {n} | {active} | {:.1} KiB | {} B | {} B |",
            growth as f64 / 1024.0,
            growth / active,
            json / active,
        );
    }

    let mut group = c.benchmark_group("engine");
    for (n, p) in &prepared {
        let events = derive(p, p.steps.clone());
        println!(
            "load-{n}: {} inputs → {events} events ({:.1} per call)",
            p.steps.len(),
            events as f64 / *n as f64
        );
        group.throughput(Throughput::Elements(events as u64));
        group.bench_function(format!("load-{n}: derive every event"), |b| {
            b.iter_batched(
                || p.steps.clone(),
                |steps| derive(p, steps),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
