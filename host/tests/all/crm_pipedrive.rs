//! The `pipedrive` plugin end to end: simulator → host → plugin in wasmtime → Pipedrive
//! stand-in over HTTP on 127.0.0.1, checked against `crm-plugins.md` sections 3, 5 and 8 by
//! the call logs the stand-in holds.

use crate::crm::{assert_no_secret, capture_logs};
use crate::crm_harness::*;
use callhook::app::local::LocalHost;
use callhook::queue::DeliveryStatus;
use callhook_crm_standins::{Pipedrive, PipedriveCallLog, PipedriveConfig, PipedriveHandle};
use callhook_simulator::{Scenario, SimHandle};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

const TOKEN: &str = "pd-standin";

async fn pipedrive(config: PipedriveConfig) -> PipedriveHandle {
    Pipedrive::start(config).await.unwrap()
}

/// The plugin's settings for `pipedrive`, with `extra` ones.
fn settings(
    pipedrive: &PipedriveHandle,
    extra: &[(&'static str, String)],
) -> Vec<(&'static str, String)> {
    let mut settings = vec![("api_base", pipedrive.base_url())];
    settings.extend_from_slice(extra);
    settings
}

/// A host with the plugin on `pipedrive` and API token `token`, recordings off, for `scenarios`.
async fn start_with(
    pipedrive: &PipedriveHandle,
    scenarios: &[Scenario],
    token: &str,
) -> (SimHandle, LocalHost) {
    let settings = settings(pipedrive, &[]);
    start(
        scenarios,
        "pipedrive",
        &settings,
        &[("api_token", token)],
        false,
    )
    .await
}

/// A call log's key: the last line of its note, `Call: {key}`.
fn key_of(log: &PipedriveCallLog) -> String {
    let note = log.fields["note"].as_str().unwrap();
    note.rsplit_once("<br>Call: ").unwrap().1.to_string()
}

/// The live call logs by their key.
fn by_key(logs: &[PipedriveCallLog]) -> BTreeMap<String, PipedriveCallLog> {
    logs.iter()
        .filter(|log| !log.deleted)
        .map(|log| (key_of(log), log.clone()))
        .collect()
}

/// Seconds since the epoch of a `YYYY-MM-DD HH:MM:SS` UTC time.
fn seconds(text: &Value) -> i64 {
    let text = text.as_str().unwrap();
    assert!(
        text.len() == 19 && &text[10..11] == " ",
        "{text} is not YYYY-MM-DD HH:MM:SS"
    );
    let civil: jiff::civil::DateTime = text.replacen(' ', "T", 1).parse().unwrap();
    civil
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp()
        .as_second()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipedrive_logs_the_calls_of_the_scenario_table() {
    let started = jiff::Timestamp::now().as_second();
    let pipedrive = pipedrive(PipedriveConfig::default()).await;
    let person = pipedrive.add_person("Known Caller", &["+425630434343"]);
    // A person whose number merely contains the stranger's is not theirs.
    pipedrive.add_person("Other", &["+14930999888123"]);
    let anna = pipedrive.add_user("anna.mueller@example.com");
    let eva = pipedrive.add_user("Eva.Wagner@example.com");
    let lead = pipedrive.add_user("sales.lead@example.com");

    let scenarios = table_scenarios();
    let plugin_settings = settings(&pipedrive, &[("users.122", lead.to_string())]);
    let (simulator, host) = start(
        &scenarios,
        "pipedrive",
        &plugin_settings,
        &[("api_token", TOKEN)],
        true,
    )
    .await;
    play(&simulator, &scenarios).await;

    let expected = expected_parts(&scenarios);
    let recorded = |logs: &[PipedriveCallLog]| {
        logs.iter()
            .all(|log| log.fields["outcome"] != "connected" || log.recording.is_some())
    };
    settled(
        &host,
        Duration::from_secs(90),
        "every call log with its recording",
        || {
            let logs = pipedrive.call_logs();
            logs.len() >= expected.len() && recorded(&logs)
        },
    )
    .await;

    let logs = by_key(&pipedrive.call_logs());
    assert_eq!(pipedrive.call_logs().len(), expected.len(), "{logs:#?}");
    assert_eq!(logs.len(), expected.len(), "one call log per key");
    let mp3_dir = host.storage_dir().parent().unwrap().join("recordings");
    for (call, user, answered, talk, outgoing, caller) in expected {
        let (key, log) = logs
            .iter()
            .find(|(key, _)| {
                let (c, _, u) = parse_key(key);
                c == call && u == user
            })
            .unwrap_or_else(|| panic!("no call log for {call}.{user}: {logs:#?}"));
        let f = &log.fields;
        let what = format!("{key}: {f:#?}");
        let (from, to) = match outgoing {
            false => (caller, user),
            true => ("120", caller),
        };
        let outcome = if answered { "connected" } else { "no_answer" };
        assert_eq!(f["outcome"], outcome, "{what}");
        assert_eq!(
            (
                f["from_phone_number"].as_str(),
                f["to_phone_number"].as_str()
            ),
            (Some(from), Some(to)),
            "{what}"
        );

        // Seconds as a string; start and end in UTC, whole seconds, spanning the talk time.
        let duration: u64 = f["duration"].as_str().unwrap().parse().unwrap();
        let (start, end) = (seconds(&f["start_time"]), seconds(&f["end_time"]));
        assert!(started - 1 <= start && start <= end, "{what}");
        if answered {
            assert_seconds(duration, talk, &what);
            assert!((end - start - duration as i64).abs() <= 1, "{what}");
        } else {
            assert_eq!(duration, 0, "{what}");
        }

        let user_id = match user {
            "120" => Some(json!(anna)),
            "130" => Some(json!(eva)),
            "122" => Some(json!(lead)),
            _ => None,
        };
        assert_eq!(f.get("user_id"), user_id.as_ref(), "{what}");
        let person_id = (caller == CALLER).then(|| json!(person));
        assert_eq!(f.get("person_id"), person_id.as_ref(), "{what}");

        let subject = f["subject"].as_str().unwrap();
        let name = match user {
            "120" => " Anna Mueller",
            "122" => " Clara Weber",
            "130" => " Eva Wagner",
            _ => "",
        };
        let queue = if user == "122" || user == "800" {
            "<br>Queue: 800"
        } else {
            ""
        };
        assert_eq!(
            f["note"],
            format!("{subject}<br>Extension: {user}{name}{queue}<br>Call: {key}"),
            "{what}"
        );

        // The answered part's own first MP3, byte for byte as the host serves it.
        let id = key.rsplit_once('.').unwrap().0;
        match (&log.recording, answered) {
            (Some((name, bytes)), true) => {
                assert_eq!(name, &format!("{id}-1.mp3"), "{what}");
                let served = std::fs::read(mp3_dir.join(name)).unwrap();
                assert!(
                    bytes == &served,
                    "{key}: the uploaded bytes differ from the MP3"
                );
            }
            (None, false) => {}
            (recording, _) => panic!("{what}: recording {:?}", recording.as_ref().map(|r| &r.0)),
        }
    }
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipedrive_logs_a_withheld_number_without_searching_a_person() {
    // A junk person whose phone is `anonymous` (no digits, like the withheld caller id) would
    // match every withheld call if the plugin searched for it.
    let pipedrive = pipedrive(PipedriveConfig::default()).await;
    pipedrive.add_person("Junk", &["anonymous"]);
    let scenarios = [scenario("01-direct-inbound-answered", "anonymous", 0)];
    let (simulator, host) = start_with(&pipedrive, &scenarios, TOKEN).await;
    play(&simulator, &scenarios).await;
    settled(&host, Duration::from_secs(30), "the call log", || {
        !pipedrive.call_logs().is_empty()
    })
    .await;

    let logs = pipedrive.call_logs();
    assert_eq!(logs.len(), 1, "{logs:#?}");
    let f = &logs[0].fields;
    assert_eq!(
        (&f["from_phone_number"], &f["to_phone_number"]),
        (&json!("anonymous"), &json!("120")),
        "the raw caller id is still shown: {f:#?}"
    );
    assert_eq!(f.get("person_id"), None, "{f:#?}");
    let searches = pipedrive.requests_to(|path| path.contains("/persons"));
    assert!(searches.is_empty(), "{searches:?}");
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipedrive_parks_a_lost_create_as_outcome_unknown_and_a_replay_creates_it() {
    let pipedrive = pipedrive(PipedriveConfig::default()).await;
    // The create is stored, and its answer never comes.
    pipedrive.faults().drop_after_store(1);
    let scenarios = [scenario("01-direct-inbound-answered", CALLER, 0)];
    let (simulator, host) = start_with(&pipedrive, &scenarios, TOKEN).await;
    play(&simulator, &scenarios).await;

    // The retry cannot tell whether the call log exists: parked, never created twice.
    let parked = parked(
        &host,
        DeliveryStatus::OutcomeUnknown,
        Duration::from_secs(30),
    )
    .await;
    let key = key_of(&pipedrive.call_logs()[0]);
    let (_, reason) = parked.parked.clone().unwrap();
    assert_eq!(
        reason,
        format!(
            "outcome unknown: Pipedrive: outcome of creating the record for {key} unknown; \
             check Pipedrive and replay this delivery if the record is missing"
        )
    );
    assert_eq!(pipedrive.call_logs().len(), 1);

    // The operator finds it missing (deleted here) and replays: it is created once more.
    let lost = pipedrive.call_logs()[0].clone();
    pipedrive.delete_call_log(&lost.id);
    host.queue().retry(parked.id).unwrap();
    settled(&host, Duration::from_secs(20), "the replay", || {
        pipedrive.call_logs().len() >= 2
    })
    .await;
    let logs = by_key(&pipedrive.call_logs());
    assert_eq!(logs.len(), 1, "{logs:#?}");
    assert_eq!(logs[&key].fields, lost.fields);
    assert_eq!(pipedrive.call_logs().len(), 2);
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipedrive_a_rejected_token_parks_the_delivery_with_pipedrives_message() {
    let logs = capture_logs();
    let pipedrive = pipedrive(PipedriveConfig::default()).await;
    let scenarios = [scenario("08-outbound-answered", CALLER, 0)];
    let (simulator, host) = start_with(&pipedrive, &scenarios, "pd-revoked").await;
    play(&simulator, &scenarios).await;
    let parked = parked(&host, DeliveryStatus::Parked, Duration::from_secs(20)).await;
    assert_eq!((parked.event.as_str(), parked.attempts), ("outgoing", 1));
    let (_, reason) = parked.parked.unwrap();
    assert!(
        reason.contains(
            "Pipedrive rejected the token: unauthorized access (Please check developers.pipedrive.com)"
        ),
        "{reason}"
    );
    assert!(!reason.contains("pd-revoked"), "{reason}");
    assert!(pipedrive.call_logs().is_empty());
    // The token travels in its header, never in a URL.
    assert!(
        pipedrive
            .requests()
            .iter()
            .all(|r| !r.query.contains("pd-revoked"))
    );
    host.stop().await.unwrap();
    let logged = logs.text();
    assert!(logged.contains(&reason), "the attempt is logged:\n{logged}");
    assert_no_secret(&logged, &["pd-revoked"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipedrive_a_429_burst_is_retried_without_losing_or_doubling_a_call_log() {
    // A small window as well as a burst: the plugin waits the `x-ratelimit-reset` seconds.
    let pipedrive = pipedrive(PipedriveConfig {
        rate_limit: 4,
        rate_window: Duration::from_secs(1),
        ..PipedriveConfig::default()
    })
    .await;
    pipedrive.faults().rate_limit_burst(3);
    let scenarios = [scenario("05-blind-transfer", CALLER, 0)];
    let (simulator, host) = start_with(&pipedrive, &scenarios, TOKEN).await;
    play(&simulator, &scenarios).await;
    settled(&host, Duration::from_secs(40), "both parts", || {
        pipedrive.call_logs().len() >= 2
    })
    .await;
    let logs = by_key(&pipedrive.call_logs());
    assert_eq!(pipedrive.call_logs().len(), 2, "{logs:#?}");
    let users: Vec<String> = logs.keys().map(|key| parse_key(key).2).collect();
    assert_eq!(users, ["120", "130"]);
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipedrive_hold_a_dropped_socket_and_duplicate_upserts_leave_one_call_log_per_part() {
    let pipedrive = pipedrive(PipedriveConfig::default()).await;
    let scenarios: Vec<_> = TEN_TO_TWELVE
        .iter()
        .map(|name| scenario(name, CALLER, 0))
        .collect();
    let parts = end_parts(&scenarios);
    assert_eq!(
        parts.len(),
        4,
        "one part in 10 and 12, two calls in 11: {parts:?}"
    );
    let (simulator, host) = start_with(&pipedrive, &scenarios, TOKEN).await;
    play(&simulator, &scenarios).await;
    settled(&host, Duration::from_secs(40), "every part", || {
        pipedrive.call_logs().len() >= parts.len()
    })
    .await;
    let logs = pipedrive.call_logs();
    let mut keys: Vec<_> = logs.iter().map(|log| parse_key(&key_of(log))).collect();
    keys.sort();
    assert_eq!(keys, parts, "{logs:#?}");
    host.stop().await.unwrap();
}
