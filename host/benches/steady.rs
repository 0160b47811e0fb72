//! The whole host under a steady load for a long time (`soak`) or at rising rates
//! (`capacity`): simulator → connector → engine → durable queue on disk → generic-webhook →
//! local sink, all in this process on 127.0.0.1, as `app::local`'s host runs it (the engine's
//! state saved with the events, like `callhook run`).
//!
//! The load is the simulator's generated calls (`Scenario::load`: inbound answered, outbound,
//! missed, held; about 2.75 events per call), applied in real time by this bench in rounds of
//! one minute (soak) or one step (capacity), the extensions reused from round to round.
//! Latency is from the change applied to the sink receiving the webhook: for `ringing` from
//! the call's first change, for `*_started` from the change that connected it. End events wait
//! the engine's grace on purpose, and `dialing` waits for the PBX's second `Dialing` upsert
//! (3CX's first one names no party, so the call's direction is not known yet): neither is in
//! the figure.
//!
//! - `cargo bench -p callhook --bench steady -- soak [MINUTES] [EVENTS_PER_S]` (default 30 and
//!   50): per minute, the webhooks received, their p50/p99, the process's RSS and the size of
//!   the database file. Goal: RSS and database size flat after warm-up.
//! - `cargo bench -p callhook --bench steady -- capacity [REPEATS] [EVENTS_PER_S...]`: 20 s at
//!   each of several rates (100 to 1400 unless given), the p50/p99 of each; the highest rate
//!   whose p99 stays under 10 ms is the capacity. `REPEATS` is how the simulator repeats the
//!   upserts of legs not yet connected, every 750 ms: `together` (the default: all legs at
//!   once, a burst of upserts, each a participant GET), `per-leg` (each leg on its own timer)
//!   or `none`.
//! - `cargo bench -p callhook --bench steady -- kv [EVENTS_PER_S] [SECONDS]` (default 200 and
//!   20): the same load with three plugins in turn, each on a fresh host: generic-webhook, the
//!   test plugin `sandbox-probe` sending a GET with the event's name and id (mode `webhook`),
//!   and `sandbox-probe` writing one key of its key-value store before that GET (mode
//!   `kv-webhook`), a durable write on the queue's database per delivery (fsync'd in the KV
//!   store's group commit with the writes waiting beside it). The p99 of the last
//!   next to the others' is the cost of plugin KV writes to the pipeline.
//!   `EVENTS_PER_S × SECONDS` up to about 33 000: the rig has extensions for
//!   [`MAX_CALLS_PER_ROUND`] calls.
//!
//! Figures go to `docs/benchmarks.md`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callhook::app::local::{LocalHost, LocalPlugin, LocalSetup};
use callhook_simulator::{
    LoadProfile, ParticipantChange, RepeatPhase, Scenario, SimConfig, SimHandle, Simulator,
};

#[path = "support/sink.rs"]
mod sink;
use sink::{Received, call_and_event, sink};

/// Events per generated call, on average (see the module docs).
const EVENTS_PER_CALL: f64 = 2.75;
/// Extensions of the generated calls start here; every round reuses them.
const FIRST_EXTENSION: u64 = 2000;
/// The most calls one round (a soak minute, a capacity step) may have: the PBX's directory has
/// an extension for each. Capacity's fastest step, 1400 events/s for 20 s, needs about 10 200.
const MAX_CALLS_PER_ROUND: usize = 12_000;

/// When the bench applied a call's changes.
#[derive(Default, Clone, Copy)]
struct Applied {
    first: Option<Instant>,
    connected: Option<Instant>,
}

type AppliedMap = Arc<Mutex<HashMap<u64, Applied>>>;

/// The process's resident set size in KiB.
fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// The calls of round `round`: `calls` of them starting evenly over `ramp`.
fn round_scenario(round: u64, calls: usize, ramp: Duration) -> Scenario {
    Scenario::load(
        calls,
        &LoadProfile {
            first_callid: 100_000 + round * calls as u64,
            first_extension: FIRST_EXTENSION,
            first_participant_id: 1_000_000 + round * calls as u64 * 4,
            ramp,
            ring: Duration::from_secs(1),
            talk: Duration::from_secs(6),
            ..LoadProfile::default()
        },
    )
}

/// Applies `scenario`'s timeline to the simulator in real time from `start`, noting when each
/// call's changes went out.
async fn apply(
    simulator: Arc<SimHandle>,
    scenario: Scenario,
    start: tokio::time::Instant,
    applied: AppliedMap,
) {
    let mut call_of: HashMap<u64, u64> = HashMap::new();
    for step in scenario.timeline() {
        tokio::time::sleep_until(start + step.at).await;
        let now = Instant::now();
        if let ParticipantChange::Upsert(json) = &step.change {
            let call = json["callid"].as_u64().unwrap();
            call_of.insert(json["id"].as_u64().unwrap(), call);
            let mut applied = applied.lock().unwrap();
            let entry = applied.entry(call).or_default();
            entry.first.get_or_insert(now);
            if json["status"] == "Connected" {
                entry.connected.get_or_insert(now);
            }
        }
        simulator.apply(&step.change);
    }
}

/// The latencies of the `ringing` and `*_started` webhooks among `received`, sorted.
fn latencies(received: &[(Instant, String)], applied: &HashMap<u64, Applied>) -> Vec<Duration> {
    let mut list: Vec<Duration> = received
        .iter()
        .filter_map(|(at, query)| {
            let (call, event) = call_and_event(query);
            let times = applied.get(&call)?;
            let from = match event.as_str() {
                "ringing" => times.first?,
                "incomingcall_started" | "outgoingcall_started" => times.connected?,
                _ => return None,
            };
            Some(at.saturating_duration_since(from))
        })
        .collect();
    list.sort();
    list
}

/// The one plugin of a rig; each sends its webhooks to the sink.
#[derive(Clone, Copy)]
enum RigPlugin {
    /// The built-in generic-webhook.
    GenericWebhook,
    /// `sandbox-probe` in this mode (`webhook` or `kv-webhook`, see its docs).
    Probe(&'static str),
}

impl RigPlugin {
    /// The local host's setup with this plugin sending to the sink at `origin`.
    fn setup(self, origin: &str) -> LocalSetup {
        let webhook = LocalSetup::webhook(origin, format!("{origin}/events"));
        let RigPlugin::Probe(mode) = self else {
            return webhook;
        };
        let quoted = |text: &str| toml::Value::String(text.to_owned()).to_string();
        LocalSetup {
            // A plugin of a file: `path` among its keys.
            plugin: LocalPlugin::Named {
                name: "probe".into(),
                settings: vec![
                    ("mode".into(), mode.into()),
                    ("url".into(), format!("{origin}/events")),
                ],
                secrets: vec![],
                keys: vec![
                    (
                        "path".into(),
                        quoted(callhook_test_plugins::SANDBOX_PROBE_WASM),
                    ),
                    ("allowed_hosts".into(), format!("[{}]", quoted(origin))),
                ],
            },
            ..webhook
        }
    }
}

/// How the rig's simulator repeats the upserts of legs not yet connected (every 750 ms, as 3CX).
#[derive(Clone, Copy)]
enum Repeats {
    /// All such legs at once, at each tick ([`RepeatPhase::Together`], the simulator's default).
    Together,
    /// Each leg on its own timer ([`RepeatPhase::PerLeg`]).
    PerLeg,
    /// No repeats.
    Off,
}

impl Repeats {
    fn parse(word: &str) -> Option<Repeats> {
        match word {
            "together" => Some(Repeats::Together),
            "per-leg" => Some(Repeats::PerLeg),
            "none" => Some(Repeats::Off),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Repeats::Together => "together",
            Repeats::PerLeg => "per-leg",
            Repeats::Off => "none",
        }
    }

    /// The simulator's settings for these repeats.
    fn apply(self, config: SimConfig) -> SimConfig {
        let (phase, period) = match self {
            Repeats::Together => (RepeatPhase::Together, config.repeat_unconnected),
            Repeats::PerLeg => (RepeatPhase::PerLeg, config.repeat_unconnected),
            Repeats::Off => (RepeatPhase::Together, None),
        };
        SimConfig {
            repeat_phase: phase,
            repeat_unconnected: period,
            ..config
        }
    }
}

/// A running host against a simulator, with its sink.
struct Rig {
    simulator: Arc<SimHandle>,
    host: LocalHost,
    received: Received,
    applied: AppliedMap,
}

impl Rig {
    async fn start(plugin: RigPlugin, repeats: Repeats) -> Rig {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let directory = round_scenario(0, MAX_CALLS_PER_ROUND, Duration::from_secs(60)).directory();
        let simulator = Simulator::start(repeats.apply(SimConfig {
            directory,
            ..SimConfig::default()
        }))
        .await
        .unwrap();
        let (origin, received) = sink().await;
        let host = LocalHost::start(&simulator, plugin.setup(&origin))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        Rig {
            simulator: Arc::new(simulator),
            host,
            received,
            applied: AppliedMap::default(),
        }
    }

    /// The database file's size in bytes.
    fn database_bytes(&self) -> u64 {
        std::fs::metadata(self.host.storage_dir().join("callhook.redb"))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    fn received_since(&self, since: usize) -> Vec<(Instant, String)> {
        self.received.lock().unwrap()[since..].to_vec()
    }

    async fn stop(self) {
        self.host.stop().await.unwrap();
        if let Ok(simulator) = Arc::try_unwrap(self.simulator) {
            simulator.shutdown().await;
        }
    }
}

async fn soak(minutes: u64, rate: f64) {
    let rig = Rig::start(RigPlugin::GenericWebhook, Repeats::Together).await;
    let calls = (rate * 60.0 / EVENTS_PER_CALL).round() as usize;
    println!(
        "soak: {minutes} min at {rate} events/s ({calls} calls a minute), RSS and database \
         size at the end of each minute\n"
    );
    println!("| minute | webhooks | p50 | p99 | RSS | database |");
    println!("|---|---|---|---|---|---|");
    let start = tokio::time::Instant::now() + Duration::from_secs(3);
    // Each round is generated just before it starts, so that the bench's own memory stays
    // small next to the host's.
    let (simulator, applied) = (rig.simulator.clone(), rig.applied.clone());
    tokio::spawn(async move {
        for round in 0..minutes {
            let round_start = start + Duration::from_secs(60 * round);
            tokio::time::sleep_until(round_start - Duration::from_secs(2)).await;
            let scenario = round_scenario(round, calls, Duration::from_secs(60));
            tokio::spawn(apply(
                simulator.clone(),
                scenario,
                round_start,
                applied.clone(),
            ));
        }
    });
    for minute in 1..=minutes + 1 {
        tokio::time::sleep_until(start + Duration::from_secs(60 * minute)).await;
        // Taken, not copied: what the sink keeps does not grow with the run.
        let received = std::mem::take(&mut *rig.received.lock().unwrap());
        let list = latencies(&received, &rig.applied.lock().unwrap());
        println!(
            "| {minute} | {} | {:.1} ms | {:.1} ms | {} MiB | {:.1} MiB |",
            received.len(),
            ms(percentile(&list, 50)),
            ms(percentile(&list, 99)),
            vm_rss_kib() / 1024,
            rig.database_bytes() as f64 / (1 << 20) as f64,
        );
    }
    rig.stop().await;
}

/// What one step of load gave.
struct Step {
    /// Webhooks the step's calls should bring.
    expected: usize,
    /// Webhooks the sink received for them.
    received: usize,
    /// Events the host's queue took during the step (the events it derived).
    taken: u64,
    /// Deliveries still in the queue when the step's wait ended.
    queued: u64,
    /// Received webhooks per second, from the step's start to the last one.
    received_rate: f64,
    /// Latencies of `ringing` and `*_started`, sorted.
    latencies: Vec<Duration>,
}

impl Step {
    /// `| webhooks | taken | queued | received events/s | p50 | p99 | max |` of a table row.
    fn cells(&self) -> String {
        format!(
            "{} of {} | {} | {} | {:.0} | {:.1} ms | {:.1} ms | {:.1} ms |",
            self.received,
            self.expected,
            self.taken,
            self.queued,
            self.received_rate,
            ms(percentile(&self.latencies, 50)),
            ms(percentile(&self.latencies, 99)),
            ms(self.latencies.last().copied().unwrap_or_default()),
        )
    }
}

/// Applies `duration` of calls at `rate` events/s (round `round` of [`round_scenario`]) and
/// waits for every webhook of the step, the end events after their grace, for a minute at most.
async fn step(rig: &Rig, round: u64, rate: f64, duration: Duration) -> Step {
    let calls = (rate * duration.as_secs_f64() / EVENTS_PER_CALL).round() as usize;
    let scenario = round_scenario(round, calls, duration);
    let expected = scenario.expected().len();
    let seen = rig.received.lock().unwrap().len();
    let taken_before = rig.host.queue().stats().events_taken;
    let started = Instant::now();
    apply(
        rig.simulator.clone(),
        scenario,
        tokio::time::Instant::now(),
        rig.applied.clone(),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while rig.received.lock().unwrap().len() < seen + expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let received = rig.received_since(seen);
    let last = received.iter().map(|(at, _)| *at).max().unwrap_or(started);
    let stats = rig.host.queue().stats();
    Step {
        expected,
        received: received.len(),
        taken: stats.events_taken - taken_before,
        queued: stats.depth,
        received_rate: received.len() as f64 / (last - started).as_secs_f64(),
        latencies: latencies(&received, &rig.applied.lock().unwrap()),
    }
}

async fn capacity(repeats: Repeats, rates: Vec<f64>) {
    const STEP: Duration = Duration::from_secs(20);
    let rig = Rig::start(RigPlugin::GenericWebhook, repeats).await;
    println!(
        "capacity: {} s at each rate, repeats {}; latency of ringing and *_started, change \
         applied → webhook received\n",
        STEP.as_secs(),
        repeats.name()
    );
    println!(
        "| offered events/s | webhooks | taken | queued | received events/s | p50 | p99 | max |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut capacity = None;
    for (round, rate) in rates.into_iter().enumerate() {
        let step = step(&rig, round as u64 * 10, rate, STEP).await;
        println!("| {rate:.0} | {}", step.cells());
        if percentile(&step.latencies, 99) < Duration::from_millis(10)
            && step.received == step.expected
        {
            capacity = Some(capacity.map_or(rate, |best: f64| best.max(rate)));
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    match capacity {
        Some(rate) => println!("\ncapacity (p99 under 10 ms, nothing lost): {rate:.0} events/s"),
        None => println!("\ncapacity: p99 was 10 ms or more at every rate"),
    }
    rig.stop().await;
}

async fn kv(rate: f64, seconds: u64) {
    println!(
        "kv: {seconds} s at {rate} events/s with each plugin on a fresh host; latency of \
         ringing and *_started, change applied → webhook received\n"
    );
    println!("| plugin | webhooks | taken | queued | received events/s | p50 | p99 | max |");
    println!("|---|---|---|---|---|---|---|---|");
    for (what, plugin) in [
        ("generic-webhook", RigPlugin::GenericWebhook),
        ("sandbox-probe `webhook`", RigPlugin::Probe("webhook")),
        (
            "sandbox-probe `kv-webhook` (a KV write each)",
            RigPlugin::Probe("kv-webhook"),
        ),
    ] {
        let rig = Rig::start(plugin, Repeats::Together).await;
        let step = step(&rig, 0, rate, Duration::from_secs(seconds)).await;
        println!("| {what} | {}", step.cells());
        rig.stop().await;
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    match args.first().map(String::as_str) {
        Some("capacity") => {
            let repeats = args.get(1).and_then(|word| Repeats::parse(word));
            let skip = 1 + usize::from(repeats.is_some());
            let mut rates: Vec<f64> = args[skip..]
                .iter()
                .map(|word| {
                    word.parse().unwrap_or_else(|_| {
                        panic!("capacity [together|per-leg|none] [EVENTS_PER_S...]: not {word}")
                    })
                })
                .collect();
            if rates.is_empty() {
                rates = vec![100.0, 200.0, 400.0, 700.0, 1000.0, 1400.0];
            }
            runtime.block_on(capacity(repeats.unwrap_or(Repeats::Together), rates))
        }
        Some("kv") => {
            let rate = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(200.0);
            let seconds = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20);
            runtime.block_on(kv(rate, seconds))
        }
        Some("soak") | None => {
            let minutes = args.get(1).and_then(|m| m.parse().ok()).unwrap_or(30);
            let rate = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(50.0);
            runtime.block_on(soak(minutes, rate))
        }
        Some(other) => panic!(
            "unknown mode {other}: soak [MINUTES] [EVENTS_PER_S], capacity \
             [together|per-leg|none] [EVENTS_PER_S...] or kv [EVENTS_PER_S] [SECONDS]"
        ),
    }
}
