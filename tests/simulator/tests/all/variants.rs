//! Scenario variants: the realistic default shape, which variants each scenario has, and what
//! each one changes (never the expectations).

use callhook_simulator::{ParticipantChange, Scenario, SimConfig, TransferOrder, Variant};
use serde_json::{Value, json};

use crate::scenarios::check_timeline;
use crate::support::{Events, get_json, start, token};

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

fn with(scenario: &Scenario, change: impl FnOnce(&mut Variant)) -> Scenario {
    let mut variant = Variant::default();
    change(&mut variant);
    scenario.with_variant(variant)
}

#[test]
fn the_default_variant_is_the_realistic_one() {
    assert_eq!(
        Variant::default(),
        Variant {
            did_in_party_did: false,
            transfer_order: None,
            hold_as_connected: true,
            partyless_first_dialing: true,
        }
    );
    assert_eq!(
        Variant::default().to_string(),
        "party_did=empty order=as_written hold=connected first_dialing=partyless"
    );
}

#[test]
fn each_scenario_has_the_variants_that_make_a_difference() {
    let cases: &[(&str, usize)] = &[
        ("01-direct-inbound-answered", 2),   // party_did
        ("02-direct-inbound-missed", 1),     // no DID on its trunk: nothing to vary
        ("03-queue-answered", 2),            // party_did
        ("04-queue-missed-two-waves", 2),    // party_did
        ("05-blind-transfer", 4),            // party_did × order
        ("06-attended-transfer", 8),         // party_did × order × hold (the consultation)
        ("07-blind-transfer-unanswered", 4), // party_did × order
        ("08-outbound-answered", 2),         // party-less first Dialing
        ("09-outbound-unanswered", 2),       // party-less first Dialing
        ("10-hold", 4),                      // party_did × hold
        ("11-socket-drop", 2),               // party_did
        ("12-duplicate-upserts", 2),         // party_did
    ];
    assert_eq!(
        cases.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
        Scenario::builtin_names()
    );
    for (name, count) in cases {
        let scenario = Scenario::builtin(name).unwrap();
        let variants = scenario.variants();
        assert_eq!(variants.len(), *count, "{name}: {variants:?}");
        assert_eq!(variants[0], Variant::default(), "{name}");
        for variant in variants {
            let played = scenario.with_variant(variant);
            assert_eq!(played.variant(), variant);
            assert_eq!(played.expected(), scenario.expected(), "{name} {variant}");
            assert_eq!(played.duration(), scenario.duration(), "{name} {variant}");
            check_timeline(&played);
        }
    }
}

#[test]
fn inbound_legs_come_from_the_trunk_through_the_route_point() {
    let scenario = Scenario::builtin("01-direct-inbound-answered").unwrap();
    let ringing = &upserts(&scenario)[0];
    let pick = |p: &Value| -> Value {
        let keys = [
            "party_dn",
            "party_dn_type",
            "party_caller_id",
            "party_caller_name",
            "party_did",
            "originated_by_dn",
            "originated_by_type",
        ];
        keys.iter()
            .map(|k| (k.to_string(), p[*k].clone()))
            .collect()
    };
    assert_eq!(
        pick(ringing),
        json!({
            "party_dn": "10007", "party_dn_type": "Wexternalline",
            "party_caller_id": "425630434343", "party_caller_name": "+425630434343",
            "party_did": "", "originated_by_dn": "callhook", "originated_by_type": "Wroutepoint",
        })
    );
    let filled = with(&scenario, |v| v.did_in_party_did = true);
    assert!(
        upserts(&filled)
            .iter()
            .all(|p| p["party_did"] == "4930123456")
    );
    // A queue, ring group or IVR stays the origin when there is one.
    let queued = upserts(&Scenario::builtin("03-queue-answered").unwrap());
    assert_eq!(
        (
            queued[1]["originated_by_dn"].clone(),
            queued[1]["originated_by_type"].clone()
        ),
        (json!("800"), json!("Wqueue"))
    );
}

#[test]
fn a_blind_transfer_shows_the_new_leg_first_unless_told_to_leave_first() {
    let scenario = Scenario::builtin("05-blind-transfer").unwrap();
    let at_35 = |scenario: &Scenario| -> Vec<(String, &'static str)> {
        scenario
            .timeline()
            .into_iter()
            .filter(|s| s.at.as_secs() == 35)
            .map(|s| match s.change {
                ParticipantChange::Upsert(p) => (p["dn"].as_str().unwrap().to_owned(), "upsert"),
                ParticipantChange::Remove { dn, .. } => (dn, "remove"),
            })
            .collect()
    };
    let pair = |a: &str, b: &'static str, c: &str, d: &'static str| {
        vec![(a.to_owned(), b), (c.to_owned(), d)]
    };
    // 3CX's order: the target rings before the holder's leg goes.
    assert_eq!(at_35(&scenario), pair("130", "upsert", "120", "remove"));
    let left = with(&scenario, |v| {
        v.transfer_order = Some(TransferOrder::LeaveFirst)
    });
    assert_eq!(at_35(&left), pair("120", "remove", "130", "upsert"));
    let attended = Scenario::builtin("06-attended-transfer").unwrap();
    let joined = with(&attended, |v| {
        v.transfer_order = Some(TransferOrder::JoinFirst)
    });
    let first_at_50 = joined
        .timeline()
        .into_iter()
        .find(|s| s.at.as_secs() == 50)
        .unwrap();
    assert!(
        matches!(&first_at_50.change, ParticipantChange::Upsert(p) if p["dn"] == "130" && p["status"] == "Connected")
    );
}

#[test]
fn hold_stays_connected_by_default() {
    let scenario = Scenario::builtin("10-hold").unwrap();
    let statuses = |scenario: &Scenario| -> Vec<String> {
        upserts(scenario)
            .iter()
            .map(|p| p["status"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        statuses(&scenario),
        ["Ringing", "Connected", "Connected", "Connected"]
    );
    let modelled = with(&scenario, |v| v.hold_as_connected = false);
    assert_eq!(
        statuses(&modelled),
        ["Ringing", "Connected", "Hold", "Connected"]
    );
}

#[test]
fn variants_keep_the_renumbering() {
    let scenario = Scenario::builtin("05-blind-transfer")
        .unwrap()
        .renumbered(1000, 50_000);
    let joined = with(&scenario, |v| {
        v.transfer_order = Some(TransferOrder::JoinFirst)
    });
    assert!(joined.expected().iter().all(|e| e.call == 1501));
    assert!(upserts(&joined).iter().all(|p| p["callid"] == 1501));
    assert_eq!(upserts(&joined)[0]["id"], 58_500);
}

#[tokio::test]
async fn the_route_point_is_named_after_the_simulators_client() {
    let scenario = Scenario::builtin("01-direct-inbound-answered").unwrap();
    let sim = start(SimConfig {
        client_id: "3cxapi".into(),
        directory: scenario.directory(),
        ..SimConfig::default()
    })
    .await;
    let token = token(&sim).await;
    let mut events = Events::open(&sim, &token).await;
    let (played, participant) = tokio::join!(sim.play(&scenario, 0.02), async {
        let frame = events.next_json().await;
        let path = frame["event"]["entity"].as_str().unwrap().to_owned();
        // The leg lives for 65 scenario seconds (1.3 s here): long enough to fetch it.
        get_json(&sim, &token, &path).await
    });
    played.unwrap();
    assert_eq!(
        (
            participant["originated_by_dn"].clone(),
            participant["originated_by_type"].clone()
        ),
        (json!("3cxapi"), json!("Wroutepoint"))
    );
    sim.shutdown().await;
}
