//! Deliveries over HTTPS to a local receiver (test CA through `ca_file`) with the default
//! plugin: with connection reuse (the plugin's pool) and without (the receiver closes every
//! connection), next to native `reqwest` with keep-alive on the same receiver. Prints
//! deliveries per second, p50 and p99 latency, TLS handshakes per 1000 deliveries, and the
//! host overhead per delivery: wasm with reuse − native with keep-alive, as the difference of
//! the two cases' means, and paired (a wasm delivery and a native request in each round, the
//! mean and median of the rounds' differences), which a VM's drift between cases does not
//! bias.
//!
//! Run: `CARGO_TARGET_DIR=target/bench cargo bench -p callhook --bench https`. Figures go to
//! `docs/benchmarks.md`. With the argument `reused` only the deliveries over kept-alive
//! connections run, wasm and native (so that a profile shows no handshakes). With `one-thread`
//! as well, those run on a current-thread runtime of their own, the receiver staying on the
//! multi-thread one: what a delivery costs when none of its tasks change threads. With
//! `task-each`, every delivery and every native request runs in a task of its own, awaited by
//! the bench, as the host's queue runs its attempts; by default they run in the bench's task.

#[path = "support/https_receiver.rs"]
mod https_receiver;

use callhook::calls::event::{CallEvent, CallId, Offered, UserType};
use callhook::queue::{DeliveryOutcome, DeliveryRequest};
use callhook::runtime::{GENERIC_WEBHOOK_WASM, Plugin, PluginLimits, PluginSpec, RuntimeConfig};
use https_receiver::HttpsReceiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Deliveries measured per case, after [`WARM_UP`] unmeasured ones.
const DELIVERIES: usize = 5000;
const WARM_UP: usize = 100;

fn event() -> CallEvent {
    CallEvent::Ringing(Offered {
        id: CallId {
            stamp: "210701165649".into(),
            pbx_call_id: 782,
            link: 0,
        },
        caller_id: "+425630434343".into(),
        did: "CompanyDID".into(),
        user: "120".into(),
        user_type: UserType::Queue,
        facts: Default::default(),
    })
}

/// Latencies of one case, and the receiver's handshakes during it.
struct Measured {
    latencies: Vec<Duration>,
    elapsed: Duration,
    handshakes: usize,
}

impl Measured {
    fn print(&self, name: &str) {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let at = |q: f64| sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)];
        println!(
            "{name:<40} {:>8.0} deliveries/s  p50 {:>7.1?}  p99 {:>7.1?}  mean {:>7.1?}  {:>6.1} handshakes/1000",
            sorted.len() as f64 / self.elapsed.as_secs_f64(),
            at(0.50),
            at(0.99),
            self.mean(),
            self.handshakes as f64 * 1000.0 / sorted.len() as f64,
        );
    }

    fn mean(&self) -> Duration {
        self.latencies.iter().sum::<Duration>() / self.latencies.len() as u32
    }
}

/// How the deliveries of a case are run.
#[derive(Clone, Copy)]
enum Run {
    /// One after the other in the bench's task.
    InLine,
    /// Each in a task of its own, awaited, as the host's queue runs its attempts.
    TaskEach,
}

/// Runs `one` [`WARM_UP`] + [`DELIVERIES`] times in a row, timing the last ones.
async fn measure<F: Future<Output = ()> + Send + 'static>(
    receiver: &HttpsReceiver,
    run: Run,
    mut one: impl FnMut() -> F,
) -> Measured {
    for _ in 0..WARM_UP {
        timed(run, &mut one).await;
    }
    let handshakes = receiver.handshakes();
    let mut latencies = Vec::with_capacity(DELIVERIES);
    let started = Instant::now();
    for _ in 0..DELIVERIES {
        latencies.push(timed(run, &mut one).await);
    }
    Measured {
        latencies,
        elapsed: started.elapsed(),
        handshakes: receiver.handshakes() - handshakes,
    }
}

/// Makes and runs one future of `make` as `run` says; how long both took.
async fn timed<F: Future<Output = ()> + Send + 'static>(
    run: Run,
    make: impl FnOnce() -> F,
) -> Duration {
    let at = Instant::now();
    match run {
        Run::InLine => make().await,
        Run::TaskEach => tokio::spawn(make()).await.unwrap(),
    }
    at.elapsed()
}

/// The rounds of [`paired`]: each one's wasm latency minus its native one, and the receiver's
/// handshakes meanwhile.
struct Paired {
    differences_us: Vec<f64>,
    handshakes: usize,
}

impl Paired {
    fn print(&self) {
        let mut sorted = self.differences_us.clone();
        sorted.sort_by(f64::total_cmp);
        let mean = sorted.iter().sum::<f64>() / sorted.len() as f64;
        println!(
            "host overhead per delivery, paired (wasm - native in each round): mean {mean:.1}µs  median {:.1}µs  {:.1} handshakes/1000",
            sorted[sorted.len() / 2],
            self.handshakes as f64 * 1000.0 / sorted.len() as f64,
        );
    }
}

/// The default plugin loaded for `receiver`, and the event it delivers.
struct WasmCase {
    plugin: Arc<Plugin>,
    event: Arc<CallEvent>,
    /// The event's idempotency key, made once, so that only the delivery is timed.
    key: Arc<str>,
    _kv_dir: tempfile::TempDir,
}

impl WasmCase {
    fn new(receiver: &HttpsReceiver, ca_file: &std::path::Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("bench.redb")).unwrap();
        let runtime =
            callhook::app::plugins::runtime(Arc::new(db), RuntimeConfig::default()).unwrap();
        let origin = format!("https://localhost:{}", receiver.port);
        let plugin = runtime
            .load(PluginSpec {
                name: "generic-webhook".into(),
                wasm: GENERIC_WEBHOOK_WASM.into(),
                allowed_hosts: vec![origin.clone()],
                limits: PluginLimits::default(),
                settings: [("webhook_url".to_string(), format!("{origin}/hook"))].into(),
                secrets: Default::default(),
                ca_file: Some(ca_file.to_path_buf()),
            })
            .unwrap();
        let event = event();
        WasmCase {
            plugin: Arc::new(plugin),
            key: event.key().into(),
            event: Arc::new(event),
            _kv_dir: dir,
        }
    }

    /// One delivery in a fresh instance.
    fn delivery(&self) -> impl Future<Output = ()> + Send + 'static {
        let (plugin, event, key) = (self.plugin.clone(), self.event.clone(), self.key.clone());
        async move {
            let outcome = plugin
                .deliver(DeliveryRequest {
                    event: &event,
                    idempotency_key: &key,
                    attempt: 1,
                    timestamp: 1_614_265_330,
                    replayed: false,
                })
                .await;
            assert_eq!(outcome, DeliveryOutcome::Delivered);
        }
    }
}

/// The same GET with `reqwest`, keep-alive on.
struct NativeCase {
    client: reqwest::Client,
    url: Arc<str>,
}

impl NativeCase {
    fn new(receiver: &HttpsReceiver) -> Self {
        let ca = reqwest::Certificate::from_pem(receiver.ca_pem.as_bytes()).unwrap();
        let client = reqwest::Client::builder()
            .add_root_certificate(ca)
            .resolve(
                "localhost",
                std::net::SocketAddr::from(([127, 0, 0, 1], receiver.port)),
            )
            .tcp_nodelay(true)
            .build()
            .unwrap();
        let url = format!(
            "https://localhost:{}/hook?event=ringing&callid=210701165649_782-0",
            receiver.port
        );
        NativeCase {
            client,
            url: url.into(),
        }
    }

    /// One request, its answer read whole.
    fn request(&self) -> impl Future<Output = ()> + Send + 'static {
        let (client, url) = (self.client.clone(), self.url.clone());
        async move {
            let response = client.get(&*url).send().await.unwrap();
            assert!(response.status().is_success());
            response.bytes().await.unwrap();
        }
    }
}

/// Wasm deliveries with the default plugin to `receiver`.
async fn wasm(receiver: &HttpsReceiver, ca_file: &std::path::Path, run: Run) -> Measured {
    let case = WasmCase::new(receiver, ca_file);
    measure(receiver, run, || case.delivery()).await
}

/// Native requests to `receiver`.
async fn native(receiver: &HttpsReceiver, run: Run) -> Measured {
    let case = NativeCase::new(receiver);
    measure(receiver, run, || case.request()).await
}

/// A wasm delivery and a native request in each of [`DELIVERIES`] rounds (after [`WARM_UP`]),
/// which of the two goes first alternating, so that both meet the machine in the same state:
/// on a shared VM the speed drifts by tens of microseconds between the phases of the other
/// cases.
async fn paired(receiver: &HttpsReceiver, ca_file: &std::path::Path, run: Run) -> Paired {
    let wasm_case = WasmCase::new(receiver, ca_file);
    let native_case = NativeCase::new(receiver);
    let round = async |wasm_first: bool| {
        let (wasm, native) = if wasm_first {
            let wasm = timed(run, || wasm_case.delivery()).await;
            (wasm, timed(run, || native_case.request()).await)
        } else {
            let native = timed(run, || native_case.request()).await;
            (timed(run, || wasm_case.delivery()).await, native)
        };
        (wasm.as_secs_f64() - native.as_secs_f64()) * 1e6
    };
    for warm_up in 0..WARM_UP {
        round(warm_up % 2 == 0).await;
    }
    let handshakes = receiver.handshakes();
    let mut differences_us = Vec::with_capacity(DELIVERIES);
    for measured in 0..DELIVERIES {
        differences_us.push(round(measured % 2 == 0).await);
    }
    Paired {
        differences_us,
        handshakes: receiver.handshakes() - handshakes,
    }
}

/// Runs `case` to its end: in this task, or with `one_thread` on a current-thread runtime on
/// this thread, which leaves the multi-thread runtime meanwhile, so that every task `case`
/// spawns (the connection pool's) runs on this thread too.
async fn run_case<F: Future>(one_thread: bool, case: F) -> F::Output {
    if !one_thread {
        return case.await;
    }
    tokio::task::block_in_place(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(case)
    })
}

fn main() {
    let tokio = tokio::runtime::Runtime::new().unwrap();
    // On a worker thread, as the host's queue runs its deliveries: `block_on`'s thread is not
    // one, and every wake-up between it and the workers would cost a futex call.
    let bench = tokio.spawn(async {
        let ca = tempfile::tempdir().unwrap();
        let reusing = HttpsReceiver::start(&[b"http/1.1"], true).await;
        let reusing_ca = ca.path().join("reusing.pem");
        std::fs::write(&reusing_ca, &reusing.ca_pem).unwrap();

        let argument = |name: &str| std::env::args().any(|arg| arg == name);
        let one_thread = argument("one-thread");
        let run = if argument("task-each") {
            Run::TaskEach
        } else {
            Run::InLine
        };
        let with_reuse = run_case(one_thread, wasm(&reusing, &reusing_ca, run)).await;
        let without_reuse = if argument("reused") {
            None
        } else {
            let closing = HttpsReceiver::start(&[b"http/1.1"], false).await;
            let closing_ca = ca.path().join("closing.pem");
            std::fs::write(&closing_ca, &closing.ca_pem).unwrap();
            Some(wasm(&closing, &closing_ca, run).await)
        };
        let keep_alive = run_case(one_thread, native(&reusing, run)).await;
        with_reuse.print("wasm, connections reused");
        if let Some(without_reuse) = without_reuse {
            without_reuse.print("wasm, a new connection each");
        }
        keep_alive.print("native reqwest, keep-alive");
        let overhead = with_reuse.mean().saturating_sub(keep_alive.mean());
        println!("host overhead per delivery (mean, wasm reused - native): {overhead:.1?}");
        run_case(one_thread, paired(&reusing, &reusing_ca, run))
            .await
            .print();
    });
    tokio.block_on(bench).unwrap();
}
