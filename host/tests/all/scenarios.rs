//! Every scenario the simulator ships, fed through the pure engine exactly as its timeline
//! would reach the connector, compared with the scenario's own `[[expect]]` list.
//!
//! The same files drive the simulator in the end-to-end tests, so the engine and the
//! whole pipeline are checked against one source of truth.

use callhook::app::{Replayer, scenario_changes};
use callhook::calls::event::{CallEvent, Direction, FinishType, TransferType, UserType};
use callhook::calls::{Engine, EngineConfig};
use callhook_simulator::Scenario;
use std::collections::BTreeMap;

/// The flat webhook fields of an event (`call-events.md` section 3), plus its call and link.
pub fn webhook_fields(event: &CallEvent) -> (u64, u32, BTreeMap<String, String>) {
    let mut fields = BTreeMap::new();
    let mut put = |key: &str, value: String| {
        fields.insert(key.to_string(), value);
    };
    put("event", event.name().to_string());
    match event {
        CallEvent::Ringing(o) | CallEvent::Dialing(o) => {
            put("callerid", o.caller_id.clone());
            put("did", o.did.clone());
            put("user", o.user.clone());
            put("usertype", user_type(o.user_type).into());
        }
        CallEvent::Started(s) => {
            put("callerid", s.caller_id.clone());
            put("user", s.user.clone());
            put("did", s.did.clone());
            put("trtype", transfer_type(s.transfer_type).into());
        }
        CallEvent::Ended(e) => {
            put("callerid", e.caller_id.clone());
            put("user", e.user.clone());
            put("did", e.did.clone());
            let finish = match e.finish_type {
                FinishType::Ok => "Ok",
                FinishType::Missed => "Missed",
            };
            put("finishtype", finish.into());
            put("transfer", e.transfer.to_string());
            put("duration", e.duration_secs.to_string());
            put("title", e.title.clone());
        }
        CallEvent::Recording(_) => {}
    }
    let id = event.call_id();
    (id.pbx_call_id, id.link, fields)
}

fn user_type(user_type: UserType) -> &'static str {
    match user_type {
        UserType::Ext => "ext",
        UserType::Queue => "queue",
        UserType::Other => "other",
    }
}

fn transfer_type(transfer_type: TransferType) -> &'static str {
    match transfer_type {
        TransferType::NotDef => "NotDef",
        TransferType::Blind => "Blind",
        TransferType::Accomp => "Accomp",
    }
}

/// Runs a scenario's timeline through a fresh engine and returns every event.
fn derive(scenario: &Scenario) -> Vec<CallEvent> {
    let config = EngineConfig {
        did_rules: [("4930123456".to_string(), "CompanyDID".to_string())].into(),
        trunk_dids: callhook_simulator::SimConfig::default_trunks(),
        ..EngineConfig::default()
    };
    let start: jiff::Timestamp = "2026-11-24T10:15:30Z".parse().unwrap();
    let mut replayer = Replayer::new(Engine::new(config));
    let mut events: Vec<CallEvent> = scenario_changes(scenario, start)
        .into_iter()
        .flat_map(|change| replayer.apply(change))
        .collect();
    let (settled, engine) = replayer.finish();
    events.extend(settled);
    assert_eq!(
        engine.active_calls(),
        0,
        "{}: calls left open",
        scenario.name()
    );
    events
}

/// Compares events with expectations call by call (calls may interleave), in order; fields
/// named in `ignored` are not compared.
pub fn assert_matches(
    scenario: &Scenario,
    events: &[(u64, u32, BTreeMap<String, String>)],
    ignored: &[&str],
) {
    let label = format!("{} ({})", scenario.name(), scenario.variant());
    let mut calls: Vec<u64> = scenario.expected().iter().map(|e| e.call).collect();
    calls.extend(events.iter().map(|(call, ..)| *call));
    calls.sort();
    calls.dedup();
    for call in calls {
        let expected: Vec<_> = scenario
            .expected()
            .iter()
            .filter(|e| e.call == call)
            .collect();
        let actual: Vec<_> = events.iter().filter(|(c, ..)| *c == call).collect();
        let describe = |list: &[&(u64, u32, BTreeMap<String, String>)]| {
            list.iter()
                .map(|(_, link, f)| {
                    format!(
                        "{}({}, -{link})",
                        f["event"],
                        f.get("user").map_or("", |u| u)
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            expected.len(),
            actual.len(),
            "{} call {call}: expected {} events, got {:?}",
            label,
            expected.len(),
            describe(&actual)
        );
        for (want, (_, link, got)) in expected.iter().zip(actual.iter().map(|a| &**a)) {
            assert_eq!(want.link, *link, "{} call {call}: link of {got:?}", label);
            for (key, value) in want
                .fields
                .iter()
                .filter(|(k, _)| !ignored.contains(&k.as_str()))
            {
                assert_eq!(
                    got.get(key),
                    Some(value),
                    "{} call {call}: field {key} of {got:?}",
                    label
                );
            }
        }
    }
}

#[test]
fn every_builtin_scenario_derives_its_expected_events() {
    let names = Scenario::builtin_names();
    assert!(
        names.len() >= 12,
        "the twelve scenarios of call-events.md ship: {names:?}"
    );
    let mut plays = 0;
    for name in names {
        // Every variant the PBX may show (DID in party_did or from the trunk, both transfer
        // orders, hold as statuses or staying Connected, the party-less first Dialing) must
        // give the same events.
        for variant in Scenario::builtin(name).unwrap().variants() {
            let scenario = Scenario::builtin(name).unwrap().with_variant(variant);
            let events: Vec<_> = derive(&scenario).iter().map(webhook_fields).collect();
            assert_matches(&scenario, &events, &[]);
            plays += 1;
        }
    }
    assert!(plays >= 35, "every scenario in every variant: {plays}");
}

#[test]
fn outgoing_events_never_carry_a_did() {
    for name in Scenario::builtin_names() {
        for event in derive(&Scenario::builtin(name).unwrap()) {
            if let CallEvent::Ended(e) = &event
                && e.direction == Direction::Outgoing
            {
                assert_eq!(e.did, "", "{name}");
            }
        }
    }
}
