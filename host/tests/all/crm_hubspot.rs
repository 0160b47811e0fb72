//! The `hubspot` plugin end to end: simulator → host → plugin in wasmtime → HubSpot stand-in
//! over HTTP on 127.0.0.1, checked against `crm-plugins.md` sections 3, 4 and 8 by the calls
//! the stand-in holds.

use crate::crm::{assert_no_secret, capture_logs};
use crate::crm_harness::*;
use callhook::app::local::LocalHost;
use callhook::queue::DeliveryStatus;
use callhook_crm_standins::{HubSpot, HubSpotConfig, HubSpotHandle, HubSpotObject};
use callhook_simulator::{Scenario, SimHandle};
use std::collections::BTreeMap;
use std::time::Duration;

const TOKEN: &str = "pat-standin";
const ID_PROPERTY: &str = "callhook_id";
const CONNECTED: &str = "f240bbac-87c9-4f6e-bf70-924b57d47db7";
const NO_ANSWER: &str = "73a0d17f-1163-4015-bdd5-ec830791da20";

/// A stand-in that knows the `callhook_id` call property.
async fn hubspot() -> HubSpotHandle {
    HubSpot::start(HubSpotConfig {
        id_property: Some(ID_PROPERTY.into()),
        ..HubSpotConfig::default()
    })
    .await
    .unwrap()
}

/// A host with the plugin configured by `settings` and access token `token`, recordings off,
/// for `scenarios`.
async fn start_with(
    scenarios: &[Scenario],
    settings: &[(&'static str, String)],
    token: &str,
) -> (SimHandle, LocalHost) {
    start(
        scenarios,
        "hubspot",
        settings,
        &[("access_token", token)],
        false,
    )
    .await
}

/// The plugin's settings for `hubspot`, with `extra` ones.
fn settings(
    hubspot: &HubSpotHandle,
    extra: &[(&'static str, String)],
) -> Vec<(&'static str, String)> {
    let mut settings = vec![
        ("api_base", hubspot.base_url()),
        ("id_property", ID_PROPERTY.to_string()),
    ];
    settings.extend_from_slice(extra);
    settings
}

/// The calls by their `callhook_id`.
fn by_key(calls: &[HubSpotObject]) -> BTreeMap<String, HubSpotObject> {
    calls
        .iter()
        .map(|call| (call.properties[ID_PROPERTY].clone(), call.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_logs_the_calls_of_the_scenario_table() {
    let started = jiff::Timestamp::now();
    let hubspot = hubspot().await;
    let contact = hubspot.add_contact(&[("phone", CALLER)]);
    let anna = hubspot.add_owner("Anna.Mueller@example.com");
    let eva = hubspot.add_owner("eva.wagner@example.com");
    let lead = hubspot.add_owner("sales.lead@example.com");

    let scenarios = table_scenarios();
    let plugin_settings = settings(&hubspot, &[("users.122", lead.clone())]);
    let (simulator, host) = start(
        &scenarios,
        "hubspot",
        &plugin_settings,
        &[("access_token", TOKEN)],
        true,
    )
    .await;
    play(&simulator, &scenarios).await;

    // Every table row of every scenario, and each answered call with its recording line.
    let expected = expected_parts(&scenarios);
    let recorded = |calls: &[HubSpotObject]| {
        calls.iter().all(|call| {
            call.properties["hs_call_status"] != "COMPLETED"
                || call.properties["hs_call_body"].contains("Recording: ")
        })
    };
    settled(
        &host,
        Duration::from_secs(90),
        "every call with its recording",
        || {
            let calls = hubspot.calls();
            calls.len() >= expected.len() && recorded(&calls)
        },
    )
    .await;

    let calls = by_key(&hubspot.calls());
    assert_eq!(calls.len(), expected.len(), "{:#?}", hubspot.calls());
    assert_eq!(hubspot.calls().len(), expected.len(), "one call per key");
    let recordings = host.recordings_base().unwrap().to_string();
    for (call, user, answered, seconds, outgoing, caller) in expected {
        let (key, record) = calls
            .iter()
            .find(|(key, _)| {
                let (c, _, u) = parse_key(key);
                c == call && u == user
            })
            .unwrap_or_else(|| panic!("no call for {call}.{user}: {calls:#?}"));
        let p = &record.properties;
        let what = format!("{key}: {p:#?}");
        let (status, disposition) = match answered {
            true => ("COMPLETED", CONNECTED),
            false => ("NO_ANSWER", NO_ANSWER),
        };
        assert_eq!(p["hs_call_status"], status, "{what}");
        assert_eq!(p["hs_call_disposition"], disposition, "{what}");
        let (direction, from, to) = match outgoing {
            false => ("INBOUND", caller, user),
            true => ("OUTBOUND", "120", caller),
        };
        assert_eq!(p["hs_call_direction"], direction, "{what}");
        assert_eq!(
            (
                p["hs_call_from_number"].as_str(),
                p["hs_call_to_number"].as_str()
            ),
            (from, to),
            "{what}"
        );

        // Milliseconds, whole seconds of talk time.
        let ms: u64 = p["hs_call_duration"].parse().unwrap();
        assert_eq!(ms % 1000, 0, "{what}");
        if answered {
            assert_seconds(ms / 1000, seconds, &what);
        } else {
            assert_eq!(ms, 0, "{what}");
        }

        // The part's start, ISO-8601 in UTC with milliseconds.
        let timestamp = &p["hs_timestamp"];
        assert!(
            timestamp.len() == 24 && timestamp.ends_with('Z') && &timestamp[19..20] == ".",
            "{what}"
        );
        let at: jiff::Timestamp = timestamp.parse().unwrap();
        assert!(started <= at && at <= jiff::Timestamp::now(), "{what}");

        let owner = match user {
            "120" => Some(&anna),
            "130" => Some(&eva),
            "122" => Some(&lead),
            _ => None,
        };
        assert_eq!(p.get("hubspot_owner_id"), owner, "{what}");
        let associated = (caller == CALLER).then(|| contact.clone());
        assert_eq!(record.contacts, Vec::from_iter(associated), "{what}");

        let title = &p["hs_call_title"];
        let body = &p["hs_call_body"];
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
        let notes = format!("{title}<br>Extension: {user}{name}{queue}<br>Call: {key}");
        assert!(
            body.starts_with(&notes),
            "{what}\nexpected to start with {notes}"
        );
        let id = key.rsplit_once('.').unwrap().0;
        if answered {
            let line = format!("<br>Recording: {recordings}/webapi/recording/{id}-1.mp3?");
            assert!(body.contains(&line), "{what}\nexpected {line}");
        } else {
            assert_eq!(body, &notes, "{what}: a missed call carries no recording");
        }
        // The host serves plain http here, which HubSpot does not take as a recording URL.
        assert!(!p.contains_key("hs_call_recording_url"), "{what}");
    }
    assert_eq!(
        hubspot.contacts().len(),
        1,
        "no contact is created without create_contacts"
    );
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_creates_a_contact_once_with_create_contacts() {
    let hubspot = hubspot().await;
    let scenarios = [scenario("05-blind-transfer", STRANGER, 0)];
    let settings = settings(&hubspot, &[("create_contacts", "true".into())]);
    let (simulator, host) = start_with(&scenarios, &settings, TOKEN).await;
    play(&simulator, &scenarios).await;
    settled(&host, Duration::from_secs(30), "both calls", || {
        hubspot.calls().len() >= 2
    })
    .await;

    // The first part made the contact; the second found it by its phone.
    let contacts = hubspot.contacts();
    assert_eq!(contacts.len(), 1, "{contacts:#?}");
    assert_eq!(
        contacts[0].properties,
        BTreeMap::from([("phone".into(), STRANGER.into())])
    );
    let calls = hubspot.calls();
    assert_eq!(calls.len(), 2);
    for call in &calls {
        assert_eq!(call.contacts, [contacts[0].id.clone()], "{call:#?}");
    }
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_logs_a_withheld_number_without_searching_or_creating_a_contact() {
    // 3CX reports a withheld number as `anonymous`: no contact has it, so the call is logged
    // without one, even with `create_contacts`.
    let hubspot = hubspot().await;
    let scenarios = [scenario("01-direct-inbound-answered", "anonymous", 0)];
    let settings = settings(&hubspot, &[("create_contacts", "true".into())]);
    let (simulator, host) = start_with(&scenarios, &settings, TOKEN).await;
    play(&simulator, &scenarios).await;
    settled(&host, Duration::from_secs(30), "the call", || {
        !hubspot.calls().is_empty()
    })
    .await;

    let calls = hubspot.calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    let p = &calls[0].properties;
    assert_eq!(
        (
            p["hs_call_from_number"].as_str(),
            p["hs_call_to_number"].as_str()
        ),
        ("anonymous", "120"),
        "the raw caller id is still shown: {p:#?}"
    );
    assert!(calls[0].contacts.is_empty(), "{calls:#?}");
    assert!(hubspot.contacts().is_empty(), "{:#?}", hubspot.contacts());
    let contact_requests = hubspot.requests_to(|path| path.starts_with("/crm/v3/objects/contacts"));
    assert!(contact_requests.is_empty(), "{contact_requests:?}");
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_finds_a_call_whose_answer_was_lost_by_its_id_property() {
    let hubspot = hubspot().await;
    // The first create of each part is stored, and its answer never comes.
    hubspot.faults().drop_after_store(2);
    let scenarios = [scenario("05-blind-transfer", CALLER, 0)];
    let (simulator, host) = start_with(&scenarios, &settings(&hubspot, &[]), TOKEN).await;
    play(&simulator, &scenarios).await;
    settled(&host, Duration::from_secs(40), "both parts", || {
        hubspot.calls().len() >= 2
    })
    .await;

    let calls = by_key(&hubspot.calls());
    assert_eq!(hubspot.calls().len(), 2, "{calls:#?}");
    let users: Vec<String> = calls.keys().map(|key| parse_key(key).2).collect();
    assert_eq!(users, ["120", "130"]);
    let searches = hubspot
        .requests()
        .iter()
        .filter(|r| r.path == "/crm/v3/objects/calls/search")
        .count();
    assert_eq!(searches, 2, "one search per lost create");
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_a_500_after_store_is_found_by_its_id_property_and_not_created_twice() {
    // With `id_property`, a 5xx to a create leaves its outcome unknown (HubSpot may have
    // stored the call, as here): the retry searches first and finds it.
    let hubspot = hubspot().await;
    hubspot.faults().fail_after_store(1);
    let scenarios = [scenario("01-direct-inbound-answered", CALLER, 0)];
    let (simulator, host) = start_with(&scenarios, &settings(&hubspot, &[]), TOKEN).await;
    play(&simulator, &scenarios).await;
    settled(&host, Duration::from_secs(30), "the retry", || {
        hubspot
            .requests()
            .iter()
            .any(|r| r.path == "/crm/v3/objects/calls/search")
    })
    .await;
    let calls = hubspot.calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    let creates = hubspot
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/crm/v3/objects/calls")
        .count();
    assert_eq!(creates, 1, "found by the search, not created again");
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_a_rejected_token_parks_the_delivery_with_hubspots_message() {
    let logs = capture_logs();
    let hubspot = hubspot().await;
    let scenarios = [scenario("01-direct-inbound-answered", CALLER, 0)];
    let (simulator, host) = start_with(&scenarios, &settings(&hubspot, &[]), "pat-revoked").await;
    play(&simulator, &scenarios).await;
    let parked = parked(&host, DeliveryStatus::Parked, Duration::from_secs(20)).await;
    assert_eq!(parked.event, "incoming");
    assert_eq!(parked.attempts, 1, "a 401 is not retried");
    let (_, reason) = parked.parked.unwrap();
    assert!(
        reason.contains("HubSpot rejected the token: Authentication credentials not found."),
        "{reason}"
    );
    assert!(
        !reason.contains("pat-revoked"),
        "the token is never shown: {reason}"
    );
    assert!(hubspot.calls().is_empty());
    host.stop().await.unwrap();
    let logged = logs.text();
    assert!(logged.contains(&reason), "the attempt is logged:\n{logged}");
    assert_no_secret(&logged, &["pat-revoked"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_a_429_burst_is_retried_without_losing_or_doubling_a_call() {
    let hubspot = hubspot().await;
    hubspot.faults().retry_after(Some(1));
    hubspot.faults().rate_limit_burst(3);
    let scenarios = [scenario("05-blind-transfer", CALLER, 0)];
    let (simulator, host) = start_with(&scenarios, &settings(&hubspot, &[]), TOKEN).await;
    play(&simulator, &scenarios).await;
    settled(&host, Duration::from_secs(40), "both parts", || {
        hubspot.calls().len() >= 2
    })
    .await;
    let calls = by_key(&hubspot.calls());
    assert_eq!(hubspot.calls().len(), 2, "{calls:#?}");
    let users: Vec<String> = calls.keys().map(|key| parse_key(key).2).collect();
    assert_eq!(users, ["120", "130"]);
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_hold_a_dropped_socket_and_duplicate_upserts_leave_one_call_per_part() {
    let hubspot = hubspot().await;
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
    let (simulator, host) = start_with(&scenarios, &settings(&hubspot, &[]), TOKEN).await;
    play(&simulator, &scenarios).await;
    settled(&host, Duration::from_secs(40), "every part", || {
        hubspot.calls().len() >= parts.len()
    })
    .await;
    let calls = hubspot.calls();
    let mut keys: Vec<_> = calls
        .iter()
        .map(|call| parse_key(&call.properties[ID_PROPERTY]))
        .collect();
    keys.sort();
    assert_eq!(keys, parts, "{calls:#?}");
    host.stop().await.unwrap();
}
