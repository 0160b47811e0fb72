//! The Call Control REST snapshot and entity paths: exact shapes, 404s.

use std::collections::BTreeSet;

use callhook_simulator::{DnEntry, Nulls, ParticipantChange, Scenario, SimConfig};
use serde_json::Value;

use crate::support::{get, get_json, start, token};

/// The participant keys of `3cx-api.md` section 2, all always present.
const PARTICIPANT_KEYS: &[&str] = &[
    "id",
    "status",
    "dn",
    "party_caller_name",
    "party_dn",
    "party_caller_id",
    "party_did",
    "device_id",
    "party_dn_type",
    "direct_control",
    "originated_by_dn",
    "originated_by_type",
    "referred_by_dn",
    "referred_by_type",
    "on_behalf_of_dn",
    "on_behalf_of_type",
    "callid",
    "legid",
];

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect()
}

fn assert_no_nulls(value: &Value) {
    match value {
        Value::Null => panic!("null in a Call Control reply"),
        Value::Array(items) => items.iter().for_each(assert_no_nulls),
        Value::Object(map) => map.values().for_each(assert_no_nulls),
        _ => {}
    }
}

fn upserts(scenario: &Scenario) -> Vec<Value> {
    scenario
        .timeline()
        .into_iter()
        .filter_map(|s| match s.change {
            ParticipantChange::Upsert(v) => Some(v),
            ParticipantChange::Remove { .. } => None,
        })
        .collect()
}

#[tokio::test]
async fn snapshot_lists_monitored_dns_and_the_route_point() {
    let scenario = Scenario::builtin("03-queue-answered").unwrap();
    let sim = start(SimConfig {
        directory: scenario.directory(),
        ..SimConfig::default()
    })
    .await;
    let token = token(&sim).await;
    let snapshot = get_json(&sim, &token, "/callcontrol").await;
    assert_no_nulls(&snapshot);
    let listed: Vec<(String, String)> = snapshot
        .as_array()
        .unwrap()
        .iter()
        .map(|dn| {
            assert_eq!(
                keys(dn),
                BTreeSet::from(["dn", "type", "devices", "participants"])
            );
            (
                dn["dn"].as_str().unwrap().to_owned(),
                dn["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("121", "Wextension"),
        ("122", "Wextension"),
        ("123", "Wextension"),
        ("800", "Wqueue"),
        ("callhook", "Wroutepoint"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(listed, expected);
    let ext = get_json(&sim, &token, "/callcontrol/121").await;
    assert_eq!(ext["devices"][0]["dn"], "121");
    assert_eq!(
        keys(&ext["devices"][0]),
        BTreeSet::from(["dn", "device_id", "user_agent"])
    );
    assert_eq!(
        get_json(&sim, &token, "/callcontrol/800").await["devices"],
        serde_json::json!([])
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn participants_have_every_key_and_no_null() {
    for name in Scenario::builtin_names() {
        let scenario = Scenario::builtin(name).unwrap();
        for participant in upserts(&scenario) {
            assert_eq!(
                keys(&participant),
                PARTICIPANT_KEYS.iter().copied().collect(),
                "{name}"
            );
            assert_no_nulls(&participant);
            for key in ["originated_by", "referred_by", "on_behalf_of"] {
                let (dn, ty) = (
                    &participant[format!("{key}_dn")],
                    &participant[format!("{key}_type")],
                );
                assert_eq!(dn == "", ty == "None", "{name}: {key} {dn} {ty}");
            }
        }
    }
}

#[tokio::test]
async fn entity_paths_answer_until_the_participant_is_removed() {
    let scenario = Scenario::builtin("01-direct-inbound-answered").unwrap();
    let sim = start(SimConfig::default()).await;
    sim.add_directory(&[DnEntry {
        dn: "120".into(),
        dn_type: "Wextension".into(),
    }]);
    let token = token(&sim).await;
    let ringing = upserts(&scenario).remove(0);
    let id = ringing["id"].as_u64().unwrap();
    sim.apply(&ParticipantChange::Upsert(ringing.clone()));
    let path = format!("/callcontrol/120/participants/{id}");
    assert_eq!(get_json(&sim, &token, &path).await, ringing);
    assert_eq!(
        get_json(&sim, &token, "/callcontrol/120/participants").await,
        serde_json::json!([ringing])
    );
    assert_eq!(
        get_json(&sim, &token, "/callcontrol/120").await["participants"][0],
        ringing
    );
    assert_eq!(
        get(&sim, &token, &format!("/callcontrol/121/participants/{id}"))
            .await
            .status(),
        404
    );
    sim.apply(&ParticipantChange::Remove {
        dn: "120".into(),
        participant_id: id,
    });
    assert_eq!(get(&sim, &token, &path).await.status(), 404);
    assert_eq!(
        get_json(&sim, &token, "/callcontrol/120/participants").await,
        serde_json::json!([])
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_dns_answer_404() {
    let sim = start(SimConfig::default()).await;
    let token = token(&sim).await;
    for path in [
        "/callcontrol/999",
        "/callcontrol/999/participants",
        "/callcontrol/999/participants/1",
    ] {
        assert_eq!(get(&sim, &token, path).await.status(), 404, "{path}");
    }
    sim.shutdown().await;
}

/// A simulator with scenario 03's legs up to the ringing agents, and a token.
async fn queue_ringing(config: SimConfig) -> (callhook_simulator::SimHandle, String) {
    let scenario = Scenario::builtin("03-queue-answered").unwrap();
    let sim = start(SimConfig {
        directory: scenario.directory(),
        ..config
    })
    .await;
    for change in scenario.timeline().iter().take(4) {
        sim.apply(&change.change); // the queue leg and three ringing agents
    }
    let token = token(&sim).await;
    (sim, token)
}

#[tokio::test]
async fn nulls_replace_absent_values() {
    let (sim, token) = queue_ringing(SimConfig::default()).await;
    sim.faults().nulls(Nulls::Null);
    let snapshot = get_json(&sim, &token, "/callcontrol").await;
    let queue = snapshot
        .as_array()
        .unwrap()
        .iter()
        .find(|dn| dn["dn"] == "800")
        .unwrap();
    assert_eq!(queue["devices"], Value::Null);
    let route_point = get_json(&sim, &token, "/callcontrol/callhook").await;
    assert_eq!(route_point["devices"], Value::Null);
    let agent = get_json(&sim, &token, "/callcontrol/121").await;
    assert_eq!(agent["devices"][0]["dn"], "121", "devices that exist stay");
    let leg = &agent["participants"][0];
    assert_eq!(keys(leg), PARTICIPANT_KEYS.iter().copied().collect());
    for key in ["party_did", "referred_by_dn", "referred_by_type"] {
        assert_eq!(leg[key], Value::Null, "{key}");
    }
    assert_eq!(leg["party_dn"], "10007");
    let path = format!("/callcontrol/121/participants/{}", leg["id"]);
    assert_eq!(
        get_json(&sim, &token, &path).await["party_did"],
        Value::Null
    );

    sim.faults().nulls(Nulls::Missing);
    let agent = get_json(&sim, &token, "/callcontrol/121").await;
    let leg = &agent["participants"][0];
    for key in ["party_did", "referred_by_dn", "referred_by_type"] {
        assert!(leg.get(key).is_none(), "{key}");
    }
    let queue = get_json(&sim, &token, "/callcontrol/800").await;
    assert!(queue.get("devices").is_none());
    sim.shutdown().await;
}

#[tokio::test]
async fn unusable_participants_lack_id_or_callid() {
    let (sim, token) = queue_ringing(SimConfig::default()).await;
    sim.faults().unusable_participants(true);
    let agent = get_json(&sim, &token, "/callcontrol/121").await;
    let legs = agent["participants"].as_array().unwrap();
    assert_eq!(legs.len(), 3);
    assert!(legs[1].get("id").is_none() && legs[1]["callid"] == 1);
    assert!(legs[2].get("callid").is_none() && legs[2]["id"] == 1);
    let queue = get_json(&sim, &token, "/callcontrol/800").await;
    assert_eq!(queue["participants"].as_array().unwrap().len(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn one_dns_participant_gets_are_forbidden() {
    let (sim, token) = queue_ringing(SimConfig::default()).await;
    sim.faults().forbid_participants_of("121");
    let snapshot = get_json(&sim, &token, "/callcontrol").await;
    let ids: Vec<(String, Value)> = snapshot
        .as_array()
        .unwrap()
        .iter()
        .filter(|dn| dn["dn"] == "121" || dn["dn"] == "122")
        .map(|dn| {
            (
                dn["dn"].as_str().unwrap().to_owned(),
                dn["participants"][0]["id"].clone(),
            )
        })
        .collect();
    assert_eq!(ids.len(), 2, "the snapshot still lists both legs");
    let (sim, token) = (&sim, token.as_str());
    let status = |dn: &str, id: &Value| {
        let path = format!("/callcontrol/{dn}/participants/{id}");
        async move { get(sim, token, &path).await.status() }
    };
    assert_eq!(status(&ids[0].0, &ids[0].1).await, 403);
    assert_eq!(status(&ids[1].0, &ids[1].1).await, 200);
    sim.faults().reset();
    assert_eq!(status(&ids[0].0, &ids[0].1).await, 200);
}
