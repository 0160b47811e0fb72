//! Shared test fixtures: a real local HTTP sink, a runtime on a temporary store, sample events.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use callhook::calls::event::*;
use callhook::queue::{DeliveryOutcome, DeliveryRequest};
use callhook::runtime::{
    KvQuota, KvStore, Plugin, PluginLimits, PluginRuntime, PluginSpec, RuntimeConfig,
};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// The `callhook` binary under test.
pub const CALLHOOK: &str = env!("CARGO_BIN_EXE_callhook");

/// A running `callhook`, killed when the test ends, however it ends.
pub struct Host(pub std::process::Child);

impl Host {
    /// `callhook run --config CONFIG`, its output discarded.
    pub fn start(config: &std::path::Path) -> Host {
        Self::start_with_output(config, Stdio::null())
    }

    /// `callhook run --config CONFIG`, its standard output going to `stdout`.
    pub fn start_with_output(config: &std::path::Path, stdout: Stdio) -> Host {
        Host(
            Command::new(CALLHOOK)
                .args(["run", "--config"])
                .arg(config)
                .stdout(stdout)
                .spawn()
                .unwrap(),
        )
    }

    /// `callhook run --config CONFIG`, everything it prints collected in [`Lines`].
    pub fn start_capturing(config: &std::path::Path) -> (Host, Lines) {
        let mut child = Command::new(CALLHOOK)
            .args(["run", "--config"])
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Lines::default();
        lines.follow(child.stdout.take().unwrap());
        lines.follow(child.stderr.take().unwrap());
        (Host(child), lines)
    }

    /// Sends `signal` (e.g. `-HUP`) and returns at once.
    pub fn send(&self, signal: &str) {
        let pid = self.0.id().to_string();
        assert!(
            Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    /// Sends `signal` (e.g. `-TERM`) and waits for the process to end.
    pub fn signal(&mut self, signal: &str) -> std::process::ExitStatus {
        self.send(signal);
        self.0.wait().unwrap()
    }
}

/// What a host printed, standard output and error, line by line as it comes.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn follow(&self, stream: impl std::io::Read + Send + 'static) {
        use std::io::BufRead;
        let lines = self.0.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stream)
                .lines()
                .map_while(Result::ok)
            {
                lines.lock().unwrap().push(line);
            }
        });
    }

    /// Every line so far.
    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// How many lines so far `wanted` accepts.
    pub fn count(&self, wanted: impl Fn(&str) -> bool) -> usize {
        self.all().iter().filter(|line| wanted(line)).count()
    }

    /// Waits (at most 30 s) until `wanted` accepts more than `seen` lines; returns the last.
    pub async fn wait_for_more(&self, seen: usize, wanted: impl Fn(&str) -> bool) -> String {
        for _ in 0..3000 {
            let matching: Vec<String> = self.all().into_iter().filter(|l| wanted(l)).collect();
            if matching.len() > seen {
                return matching.last().unwrap().clone();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "no such line within 30 s; the host printed:\n{}",
            self.all().join("\n")
        );
    }

    /// Waits (at most 30 s) for a line that `wanted` accepts; returns it.
    pub async fn wait_for(&self, wanted: impl Fn(&str) -> bool) -> String {
        self.wait_for_more(0, wanted).await
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `callhook.toml` for `callhook run` against the simulator at `pbx`: engine grace 300 ms,
/// the HTTP server on a free port, storage in `dir/state`, and the built-in generic-webhook
/// sending to `{sink_origin}{webhook_path}`, and the simulator's trunk (`10007` on
/// `+4930123456`, [`callhook_simulator::SimConfig::default_trunks`]) in `[trunks]`. `[pbx] url`
/// is on line 2, `[engine] grace` on 7. `[admin] listen` is the one value in single quotes, so
/// that a test can replace it alone.
pub fn host_config(
    dir: &std::path::Path,
    pbx: &str,
    sink_origin: &str,
    webhook_path: &str,
) -> String {
    format!(
        r#"[pbx]
url = "{pbx}"
client_id = "callhook"
client_secret = "secret"

[engine]
grace = "300ms"

[admin]
listen = '127.0.0.1:0'

[server]
listen = "127.0.0.1:0"

[storage]
dir = "{state}"

[trunks]
"10007" = "+4930123456"

[[plugin]]
name = "generic-webhook"
allowed_hosts = ["{sink_origin}"]
[plugin.settings]
webhook_url = "{sink_origin}{webhook_path}"
"#,
        state = dir.join("state").display()
    )
}

/// Waits (at most 30 s) until a host has taken its first snapshot of `simulator`.
pub async fn connected(simulator: &callhook_simulator::SimHandle) {
    tokio::time::timeout(Duration::from_secs(30), simulator.wait_snapshots(1))
        .await
        .expect("callhook connects to the PBX");
}

/// The sandbox probe test plugin, built by `tests/plugins/artifacts`.
pub use callhook_test_plugins::SANDBOX_PROBE_WASM;

/// One request the sink received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    /// Path and query, exactly as sent.
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Whether the sink answered it with a 2xx.
    pub succeeded: bool,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn query(&self) -> &str {
        self.target.split_once('?').map(|(_, q)| q).unwrap_or("")
    }
}

struct SinkState {
    received: Mutex<Vec<Received>>,
    arrived: Notify,
    /// What `/switch/...` answers once its failures are used up.
    switch_status: AtomicU16,
    /// How many more requests to `/switch/...` answer 500 first.
    switch_failures: AtomicUsize,
}

impl Default for SinkState {
    fn default() -> Self {
        SinkState {
            received: Mutex::default(),
            arrived: Notify::new(),
            switch_status: AtomicU16::new(200),
            switch_failures: AtomicUsize::new(0),
        }
    }
}

/// A webhook receiver on 127.0.0.1. `/ok/...` answers 200, `/status/{code}` answers `code`
/// (with `Retry-After: 7` for 429 and 503), `/redirect` answers 302 to `/ok/redirected`,
/// `/slow` never answers within a test's patience, and `/switch/...` answers 500 for the next
/// [`Sink::fail_next`] requests, then what [`Sink::answer`] last set (200 by default).
pub struct Sink {
    pub base: String,
    state: Arc<SinkState>,
}

impl Sink {
    pub async fn start() -> Sink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener)
    }

    /// `/switch/...` answers 500 to the next `count` requests.
    pub fn fail_next(&self, count: usize) {
        self.state.switch_failures.store(count, Ordering::SeqCst);
    }

    /// `/switch/...` answers `status` from now on.
    pub fn answer(&self, status: u16) {
        self.state.switch_status.store(status, Ordering::SeqCst);
    }

    /// Requests received whose status was a success (recorded before answering, so this
    /// counts requests to `/ok` and to `/switch` while it answered 2xx).
    pub fn successes(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.succeeded)
            .collect()
    }

    /// Waits until `count` successful requests arrived (at most 20 s).
    pub async fn wait_for_successes(&self, count: usize) -> Vec<Received> {
        self.wait_until(|| self.successes().len() >= count, Duration::from_secs(20))
            .await;
        self.successes()
    }

    /// Waits (at most 20 s) until `count` requests went to `path`; returns every request.
    pub async fn wait_for_requests_to(&self, path: &str, count: usize) -> Vec<Received> {
        let to_path = || {
            self.received()
                .iter()
                .filter(|r| r.target.split('?').next() == Some(path))
                .count()
        };
        self.wait_until(|| to_path() >= count, Duration::from_secs(20))
            .await;
        self.received()
    }

    /// Waits until `done` holds, re-checking at every request, for at most `patience`.
    async fn wait_until(&self, done: impl Fn() -> bool, patience: Duration) {
        let wait = async {
            loop {
                let notified = self.state.arrived.notified();
                if done() {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(patience, wait)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the sink's requests were not as expected: {:#?}",
                    self.received()
                )
            });
    }

    fn serve(listener: tokio::net::TcpListener) -> Sink {
        let state = Arc::new(SinkState::default());
        let app = Router::new()
            .route("/status/{code}", any(status))
            .route("/redirect", any(redirect))
            .route("/slow", any(slow))
            .route("/switch/{*rest}", any(switch))
            .fallback(ok)
            .with_state(state.clone());
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Sink { base, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The allowed_hosts pattern that reaches this sink.
    pub fn origin(&self) -> String {
        self.base.clone()
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Waits until `count` requests arrived (at most 10 s).
    pub async fn wait_for(&self, count: usize) -> Vec<Received> {
        self.wait_until(|| self.received().len() >= count, Duration::from_secs(10))
            .await;
        self.received()
    }
}

fn record(state: &SinkState, method: Method, uri: &Uri, headers: HeaderMap, body: Bytes) {
    record_answered(state, method, uri, headers, body, true);
}

fn record_answered(
    state: &SinkState,
    method: Method,
    uri: &Uri,
    headers: HeaderMap,
    body: Bytes,
    succeeded: bool,
) {
    let target = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    state.received.lock().unwrap().push(Received {
        method,
        target,
        headers,
        body,
        succeeded,
    });
    state.arrived.notify_waiters();
}

async fn ok(
    State(state): State<Arc<SinkState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    record(&state, method, &uri, headers, body);
    StatusCode::OK
}

async fn status(
    State(state): State<Arc<SinkState>>,
    Path(code): Path<u16>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let code = StatusCode::from_u16(code).unwrap();
    record_answered(&state, method, &uri, headers, body, code.is_success());
    if code == StatusCode::TOO_MANY_REQUESTS || code == StatusCode::SERVICE_UNAVAILABLE {
        (code, [("retry-after", "7")], "busy").into_response()
    } else {
        (code, "sink says no").into_response()
    }
}

async fn switch(
    State(state): State<Arc<SinkState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let failing = state
        .switch_failures
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if failing {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::from_u16(state.switch_status.load(Ordering::SeqCst)).unwrap()
    };
    record_answered(&state, method, &uri, headers, body, status.is_success());
    status
}

async fn redirect(
    State(state): State<Arc<SinkState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(&state, method, &uri, headers, body);
    (StatusCode::FOUND, [("location", "/ok/redirected")]).into_response()
}

async fn slow(State(state): State<Arc<SinkState>>, method: Method, uri: Uri, headers: HeaderMap) {
    record(&state, method, &uri, headers, Bytes::new());
    tokio::time::sleep(Duration::from_secs(60)).await;
}

/// A runtime on a temporary store (kept alive by the returned directory).
pub fn runtime() -> (tempfile::TempDir, PluginRuntime) {
    let dir = tempfile::tempdir().unwrap();
    let db = redb::Database::create(dir.path().join("callhook.redb")).unwrap();
    let kv = KvStore::new(Arc::new(db), KvQuota::default());
    let runtime = PluginRuntime::new(RuntimeConfig::default(), kv).unwrap();
    (dir, runtime)
}

/// A fresh database file `name` in `dir`.
pub fn database(dir: &tempfile::TempDir, name: &str) -> Arc<redb::Database> {
    Arc::new(redb::Database::create(dir.path().join(name)).unwrap())
}

/// A plugin spec with the given settings and allowed hosts.
pub fn spec(
    name: &str,
    wasm: &[u8],
    allowed_hosts: &[&str],
    settings: &[(&str, &str)],
) -> PluginSpec {
    PluginSpec {
        name: name.to_string(),
        wasm: wasm.into(),
        allowed_hosts: allowed_hosts.iter().map(|s| s.to_string()).collect(),
        limits: PluginLimits::default(),
        settings: to_map(settings),
        secrets: BTreeMap::new(),
        ca_file: None,
    }
}

pub fn to_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn probe() -> Vec<u8> {
    std::fs::read(SANDBOX_PROBE_WASM).unwrap()
}

/// Delivers `event` as attempt 1 at the Standard Webhooks test timestamp.
pub async fn deliver(plugin: &Plugin, event: &CallEvent) -> DeliveryOutcome {
    let key = event.key();
    plugin
        .deliver(DeliveryRequest {
            event,
            idempotency_key: &key,
            attempt: 1,
            timestamp: 1_614_265_330,
            replayed: false,
        })
        .await
}

pub fn call_id(link: u32) -> CallId {
    CallId {
        stamp: "210701165649".into(),
        pbx_call_id: 782,
        link,
    }
}

pub const CALLER: &str = "+425630434343";

pub fn ringing() -> CallEvent {
    CallEvent::Ringing(Offered {
        id: call_id(0),
        caller_id: CALLER.into(),
        did: "CompanyDID".into(),
        user: "120".into(),
        user_type: UserType::Queue,
        facts: Default::default(),
    })
}

pub fn dialing() -> CallEvent {
    CallEvent::Dialing(Offered {
        id: call_id(0),
        caller_id: CALLER.into(),
        did: String::new(),
        user: "120".into(),
        user_type: UserType::Ext,
        facts: Default::default(),
    })
}

pub fn started(direction: Direction, transfer_type: TransferType) -> CallEvent {
    CallEvent::Started(Started {
        id: call_id(1),
        direction,
        caller_id: CALLER.into(),
        user: "120".into(),
        did: String::new(),
        transfer_type,
        facts: Default::default(),
    })
}

pub fn ended_fields() -> Ended {
    Ended {
        id: call_id(1),
        direction: Direction::Incoming,
        caller_id: CALLER.into(),
        user: "120".into(),
        did: "CompanyDID".into(),
        finish_type: FinishType::Ok,
        transfer: true,
        duration_secs: 133,
        title: "CompanyDID: answered incoming call from +425630434343 to 120, 00:02:13".into(),
        facts: Default::default(),
    }
}

pub fn ended() -> CallEvent {
    CallEvent::Ended(ended_fields())
}

pub fn recording() -> CallEvent {
    CallEvent::Recording(RecordingReady {
        id: call_id(1),
        files: vec![
            "https://pbx.example.com:5001/webapi/recording/210701165649_782-1-1.mp3".into(),
            "https://pbx.example.com:5001/webapi/recording/210701165649_782-1-2.mp3".into(),
        ],
        last_end: Some(ended_fields()),
        parts: Vec::new(),
    })
}
