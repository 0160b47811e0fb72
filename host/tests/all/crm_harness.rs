//! What the CRM pipeline tests share: the simulator and a local host running one built-in CRM
//! plugin against a stand-in, the table of `crm-plugins.md` section 8, and waiting for the
//! queue to settle.

use callhook::app::local::{LocalHost, LocalPlugin, LocalSetup};
use callhook::queue::{DeliveryFilter, DeliveryInfo, DeliveryStatus};
use callhook_simulator::{Scenario, SimConfig, SimHandle, Simulator};
use std::time::{Duration, Instant};

/// Scenario seconds per real second: 0.05 plays a 100 s call in 5 s.
pub const TIME_SCALE: f64 = 0.05;
/// The engine's grace period, scaled with the calls and widened as in `pipeline.rs`.
pub const GRACE: Duration = Duration::from_millis(300);
/// The external number of the shipped scenarios.
pub const CALLER: &str = "425630434343";
/// A number no contact has.
pub const STRANGER: &str = "4930999888";

/// One record the spec expects: the extension (or queue), whether it was answered, and its
/// talk time in scenario seconds.
pub type Part = (&'static str, bool, u32);

/// Section 8 of `crm-plugins.md`: the parts each of scenarios 1 to 9 leaves a record for,
/// and whether the call is outgoing. Nothing else may exist.
pub const TABLE: [(&str, bool, &[Part]); 9] = [
    ("01-direct-inbound-answered", false, &[("120", true, 60)]),
    ("02-direct-inbound-missed", false, &[("120", false, 0)]),
    ("03-queue-answered", false, &[("122", true, 30)]),
    ("04-queue-missed-two-waves", false, &[("800", false, 0)]),
    (
        "05-blind-transfer",
        false,
        &[("120", true, 30), ("130", true, 60)],
    ),
    (
        "06-attended-transfer",
        false,
        &[("120", true, 45), ("130", true, 50)],
    ),
    (
        "07-blind-transfer-unanswered",
        false,
        &[("120", true, 30), ("130", false, 0)],
    ),
    ("08-outbound-answered", true, &[("120", true, 60)]),
    ("09-outbound-unanswered", true, &[("120", false, 0)]),
];

/// A shipped scenario whose caller is `caller`, renumbered by `n` so that it plays beside the
/// others (`n` = 0 keeps its numbers).
pub fn scenario(name: &str, caller: &str, n: u64) -> Scenario {
    let path = Scenario::builtin_dir().join(format!("{name}.toml"));
    let text = std::fs::read_to_string(path)
        .unwrap()
        .replace(CALLER, caller);
    let scenario = Scenario::from_toml_str(&text).unwrap();
    if n == 0 {
        scenario
    } else {
        scenario.renumbered(n * 10_000, n * 100_000)
    }
}

/// The scenarios of [`TABLE`] from the known caller, then 1 and 8 again from [`STRANGER`], a
/// number no contact or person has: the scenarios of each CRM's table test, in this order.
pub fn table_scenarios() -> Vec<Scenario> {
    let mut scenarios: Vec<_> = TABLE
        .iter()
        .map(|(name, ..)| scenario(name, CALLER, 0))
        .collect();
    scenarios.push(scenario(TABLE[0].0, STRANGER, 1));
    scenarios.push(scenario(TABLE[7].0, STRANGER, 2));
    scenarios
}

/// One record a table test expects: call id, extension (or queue), answered, talk time in
/// scenario seconds, outgoing, and the caller's number.
pub type ExpectedPart = (u64, &'static str, bool, u32, bool, &'static str);

/// Every [`TABLE`] part of every scenario of [`table_scenarios`].
pub fn expected_parts(scenarios: &[Scenario]) -> Vec<ExpectedPart> {
    TABLE
        .iter()
        .zip(scenarios)
        .chain([(&TABLE[0], &scenarios[9]), (&TABLE[7], &scenarios[10])])
        .flat_map(|((_, outgoing, parts), scenario)| {
            let caller = if call_of(scenario) > 10_000 {
                STRANGER
            } else {
                CALLER
            };
            parts.iter().map(move |(user, answered, seconds)| {
                (
                    call_of(scenario),
                    *user,
                    *answered,
                    *seconds,
                    *outgoing,
                    caller,
                )
            })
        })
        .collect()
}

/// The PBX call id a scenario plays.
pub fn call_of(scenario: &Scenario) -> u64 {
    scenario.expected()[0].call
}

/// The call id, link and user of a record key `{yyMMddHHmmss}_{callid}-{link}.{user}`.
pub fn parse_key(key: &str) -> (u64, u32, String) {
    let (id, user) = key.rsplit_once('.').unwrap();
    let (_, call_and_link) = id.split_once('_').unwrap();
    let (call, link) = call_and_link.split_once('-').unwrap();
    (
        call.parse().unwrap(),
        link.parse().unwrap(),
        user.to_string(),
    )
}

/// Asserts that `actual` talk seconds are the scenario's `seconds` played at [`TIME_SCALE`],
/// within the second that rounding and scheduling may add or take.
pub fn assert_seconds(actual: u64, seconds: u32, what: &str) {
    let scaled = f64::from(seconds) * TIME_SCALE;
    assert!(
        (actual as f64 - scaled).abs() <= 1.0,
        "{what}: {actual} s, expected {scaled} s"
    );
}

/// The simulator with `scenarios`' extensions, and a host running the built-in plugin `name`.
pub async fn start(
    scenarios: &[Scenario],
    name: &str,
    settings: &[(&str, String)],
    secrets: &[(&str, &str)],
    recordings: bool,
) -> (SimHandle, LocalHost) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let simulator = Simulator::start(SimConfig::default()).await.unwrap();
    for scenario in scenarios {
        simulator.add_directory(&scenario.directory());
    }
    let pairs = |pairs: Vec<(&str, String)>| {
        pairs
            .into_iter()
            .map(|(key, value)| (key.to_string(), value))
            .collect()
    };
    let setup = LocalSetup {
        plugin: LocalPlugin::Named {
            name: name.to_string(),
            settings: pairs(settings.to_vec()),
            secrets: pairs(secrets.iter().map(|(k, v)| (*k, v.to_string())).collect()),
            keys: Vec::new(),
        },
        recordings,
        grace: GRACE,
        admin_token: None,
        country: None,
    };
    let host = LocalHost::start(&simulator, setup).await.unwrap();
    (simulator, host)
}

/// Plays `scenarios` at once.
pub async fn play(simulator: &SimHandle, scenarios: &[Scenario]) {
    let plays = scenarios.iter().map(|s| simulator.play(s, TIME_SCALE));
    for played in futures_util::future::join_all(plays).await {
        played.unwrap();
    }
}

/// The deliveries that have not succeeded.
pub fn outstanding(host: &LocalHost) -> Vec<DeliveryInfo> {
    host.queue().list(&DeliveryFilter::default()).unwrap()
}

/// Polls `ready` every 50 ms until it returns a value, failing after `limit` with `what` and
/// the deliveries still outstanding.
pub async fn eventually<T>(
    host: &LocalHost,
    limit: Duration,
    what: &str,
    mut ready: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = ready() {
            return value;
        }
        assert!(
            start.elapsed() < limit,
            "{what}: not within {limit:?}; outstanding: {:#?}\nqueue: {:#?}",
            outstanding(host),
            host.queue().stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until every delivery succeeded (none outstanding) and `ready` holds.
pub async fn settled(host: &LocalHost, limit: Duration, what: &str, ready: impl Fn() -> bool) {
    eventually(host, limit, what, || {
        (ready() && outstanding(host).is_empty()).then_some(())
    })
    .await;
}

/// Waits until a delivery is parked with `status`, and returns it.
pub async fn parked(host: &LocalHost, status: DeliveryStatus, limit: Duration) -> DeliveryInfo {
    eventually(host, limit, "a parked delivery", || {
        outstanding(host)
            .into_iter()
            .find(|delivery| delivery.status == status)
    })
    .await
}

/// Scenarios 10 to 12 of `call-events.md`: hold, a dropped socket, duplicate upserts.
pub const TEN_TO_TWELVE: [&str; 3] = ["10-hold", "11-socket-drop", "12-duplicate-upserts"];

/// The parts the end events of `scenarios` close, as `(call, link, user)`, sorted: one record
/// each is what the CRM must hold.
pub fn end_parts(scenarios: &[Scenario]) -> Vec<(u64, u32, String)> {
    let mut parts: Vec<_> = scenarios
        .iter()
        .flat_map(Scenario::expected)
        .filter(|e| matches!(e.fields["event"].as_str(), "incoming" | "outgoing"))
        .map(|e| (e.call, e.link, e.fields["user"].clone()))
        .collect();
    parts.sort();
    parts
}
