//! What the CRM plugins' pipeline tests share: the 3CX simulator and a whole host running one
//! built-in CRM plugin against a stand-in, the shipped scenarios renumbered to play side by
//! side, and waiting for what the stand-in stores.

use callhook::app::local::{LocalHost, LocalPlugin, LocalSetup};
use callhook::queue::cli_format::render_deliveries;
use callhook::queue::{DeliveryFilter, DeliveryInfo};
use callhook_simulator::{Scenario, SimConfig, SimHandle, Simulator};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Scenario seconds per real second: 0.05 plays a 100 s call in 5 s.
pub const TIME_SCALE: f64 = 0.05;
/// The engine's grace period, scaled with the calls (see `pipeline.rs`).
const GRACE: Duration = Duration::from_millis(300);
/// How long a test waits for the stand-in before it fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// Scenarios 1 to 9 of `call-events.md` section 4: spec `crm-plugins.md` section 8's table.
pub const ONE_TO_NINE: [&str; 9] = [
    "01-direct-inbound-answered",
    "02-direct-inbound-missed",
    "03-queue-answered",
    "04-queue-missed-two-waves",
    "05-blind-transfer",
    "06-attended-transfer",
    "07-blind-transfer-unanswered",
    "08-outbound-answered",
    "09-outbound-unanswered",
];

/// The simulator and a host delivering every call to one built-in plugin.
pub struct CrmHost {
    pub simulator: SimHandle,
    pub host: LocalHost,
}

/// A built-in plugin's `[[plugin]]` table: its settings, secrets and other keys.
pub struct Plugin<'a> {
    pub name: &'a str,
    pub settings: Vec<(&'a str, String)>,
    pub secrets: Vec<(&'a str, &'a str)>,
    pub keys: Vec<(&'a str, &'a str)>,
}

impl CrmHost {
    /// Starts the simulator, knowing the DNs of `scenarios`, and a host running `plugin`,
    /// with recordings when `recordings` is set.
    pub async fn start(scenarios: &[Scenario], plugin: Plugin<'_>, recordings: bool) -> CrmHost {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let simulator = Simulator::start(SimConfig::default()).await.unwrap();
        for scenario in scenarios {
            simulator.add_directory(&scenario.directory());
        }
        let owned = |pairs: Vec<(&str, String)>| {
            pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
        };
        let setup = LocalSetup {
            plugin: LocalPlugin::Named {
                name: plugin.name.to_string(),
                settings: owned(plugin.settings),
                secrets: owned(
                    plugin
                        .secrets
                        .into_iter()
                        .map(|(k, v)| (k, v.to_string()))
                        .collect(),
                ),
                keys: owned(
                    plugin
                        .keys
                        .into_iter()
                        .map(|(k, v)| (k, v.to_string()))
                        .collect(),
                ),
            },
            recordings,
            grace: GRACE,
            admin_token: None,
            country: None,
        };
        let host = LocalHost::start(&simulator, setup).await.unwrap();
        CrmHost { simulator, host }
    }

    /// Plays `scenarios` at once and returns when their timelines are over.
    pub async fn play(&self, scenarios: &[Scenario]) {
        let plays = scenarios.iter().map(|s| self.simulator.play(s, TIME_SCALE));
        for played in futures_util::future::join_all(plays).await {
            played.unwrap();
        }
    }

    /// The deliveries not done yet: retrying, parked or waiting.
    pub fn unfinished(&self) -> Vec<DeliveryInfo> {
        self.host.queue().list(&DeliveryFilter::default()).unwrap()
    }

    /// Stops the host, as a service restart would, and starts it again.
    pub async fn restart(self) -> CrmHost {
        let CrmHost { simulator, host } = self;
        let host = host.restart(&simulator).await.unwrap();
        CrmHost { simulator, host }
    }

    pub async fn stop(self) {
        self.host.stop().await.unwrap();
    }
}

/// The shipped scenarios `names`, each renumbered by `offset` (calls from `offset * 1000` on),
/// so that the same scenario can be played again in one simulator.
pub fn scenarios(names: &[&str], offset: u64) -> Vec<Scenario> {
    names
        .iter()
        .map(|name| {
            let scenario = Scenario::builtin(name).unwrap();
            if offset == 0 {
                scenario
            } else {
                scenario.renumbered(offset * 1000, offset * 100_000)
            }
        })
        .collect()
}

/// The call number a scenario's call `callid` has after [`scenarios`] with `offset`.
pub fn call_number(callid: u64, offset: u64) -> u64 {
    callid + offset * 1000
}

/// A scenario's seconds of talk as the host measures them when played at [`TIME_SCALE`].
pub fn scaled(seconds: u64) -> f64 {
    seconds as f64 * TIME_SCALE
}

/// Asserts `actual` seconds are `seconds` of scenario time, played at [`TIME_SCALE`], within a
/// second (the host rounds, and a loaded machine stretches timelines a little).
pub fn assert_duration(actual: u64, seconds: u64, what: &str) {
    let expected = scaled(seconds);
    assert!(
        (actual as f64 - expected).abs() <= 1.0,
        "{what}: {actual} s, expected {expected} s"
    );
}

impl CrmHost {
    /// Waits until `done` holds, polling; panics with `what` and the deliveries still in the
    /// queue (with their last attempts) after [`PATIENCE`].
    pub async fn wait_until(&self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !done() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; deliveries left: {:#?}",
                self.unfinished()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `n` deliveries are parked, and returns the parked ones.
    pub async fn wait_parked(&self, n: usize) -> Vec<DeliveryInfo> {
        let parked = || -> Vec<_> {
            let left = self.unfinished().into_iter();
            left.filter(|d| d.parked.is_some()).collect()
        };
        self.wait_until(&format!("{n} parked deliveries"), || parked().len() >= n)
            .await;
        parked()
    }

    /// The table `callhook deliveries list --history` shows the operator: the deliveries
    /// left, with their reasons and attempts.
    pub fn deliveries_list(&self) -> String {
        render_deliveries(&self.unfinished(), true)
    }
}

/// What the host logs, at every level, from [`capture_logs`] on: what a log reader sees.
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// The lines logged so far, with the escapes of quoted field values removed.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).replace('\\', "")
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures the log lines of this test process from now on as the host writes them with
/// `RUST_LOG` at `trace` for the host and the WASI crates plugins send through, `debug` for
/// the rest (whose `trace` is wasmtime's type registry and the I/O driver: slow, and no
/// plugin data). Each test runs in a process of its own (nextest), so the capture is this
/// test's; call it before anything else logs.
pub fn capture_logs() -> CapturedLogs {
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter(callhook::telemetry::logs::filter(Some(
            "debug,callhook=trace,wasmtime_wasi_http=trace,wasmtime_wasi=trace",
        )))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init()
        .expect("no log subscriber is installed yet in this test process");
    logs
}

/// Asserts that none of `secrets` shows in `text`, what an operator or a log reader sees.
pub fn assert_no_secret(text: &str, secrets: &[&str]) {
    for secret in secrets {
        let showing: Vec<&str> = text.lines().filter(|line| line.contains(secret)).collect();
        assert!(
            showing.is_empty(),
            "{secret:?} shows in:\n{}",
            showing.join("\n")
        );
    }
}

/// Waits until the host has delivered everything: no delivery left in its queue.
pub async fn wait_delivered(crm: &CrmHost) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let left = crm.unfinished();
        if left.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "deliveries left: {left:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
