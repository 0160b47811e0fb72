//! Property tests of the Call Control parsers under the tolerance rule of `3cx-api.md`: JSON
//! with random `null`s, missing keys and unknown extra keys in DNs, devices and participants
//! must still bring every usable participant, and only the unusable objects are skipped.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::rest::{parse_participant, parse_snapshot};

/// The string fields of a participant, which may be `null` or missing.
const STRING_FIELDS: [&str; 15] = [
    "status",
    "dn",
    "party_caller_name",
    "party_dn",
    "party_caller_id",
    "party_did",
    "device_id",
    "party_dn_type",
    "originated_by_dn",
    "originated_by_type",
    "referred_by_dn",
    "referred_by_type",
    "on_behalf_of_dn",
    "on_behalf_of_type",
    "direct_control",
];

/// What happens to one field.
#[derive(Debug, Clone, Copy)]
enum Damage {
    Keep,
    Null,
    Missing,
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        2 => Just(Damage::Keep),
        1 => Just(Damage::Null),
        1 => Just(Damage::Missing),
    ]
}

/// A participant as a live PBX writes it, then damaged field by field.
#[derive(Debug, Clone)]
struct ParticipantPlan {
    id: u64,
    fields: Vec<Damage>,
    /// `id` and `callid`: without either the participant is unusable.
    id_damage: Damage,
    callid_damage: Damage,
    extra_key: bool,
}

impl ParticipantPlan {
    fn usable(&self) -> bool {
        matches!(self.id_damage, Damage::Keep) && matches!(self.callid_damage, Damage::Keep)
    }

    fn json(&self) -> Value {
        let full = json!({
            "id": self.id, "status": "Ringing", "dn": "150",
            "party_caller_name": "+49123456789", "party_dn": "10007",
            "party_caller_id": "0123456789", "party_did": "",
            "device_id": "sip:150@127.0.0.1:5483", "party_dn_type": "Wexternalline",
            "direct_control": false, "originated_by_dn": "ROUTER",
            "originated_by_type": "Wroutepoint", "referred_by_dn": "",
            "referred_by_type": "None", "on_behalf_of_dn": "", "on_behalf_of_type": "None",
            "callid": 1264, "legid": 4
        });
        let mut object = full.as_object().cloned().unwrap_or_default();
        for (field, damage) in STRING_FIELDS.iter().zip(&self.fields) {
            apply(&mut object, field, *damage);
        }
        apply(&mut object, "id", self.id_damage);
        apply(&mut object, "callid", self.callid_damage);
        if self.extra_key {
            object.insert(
                "transcription_language".into(),
                json!({"nested": [1, null]}),
            );
        }
        Value::Object(object)
    }
}

fn apply(object: &mut Map<String, Value>, field: &str, damage: Damage) {
    match damage {
        Damage::Keep => {}
        Damage::Null => {
            object.insert(field.to_owned(), Value::Null);
        }
        Damage::Missing => {
            object.remove(field);
        }
    }
}

fn participant(id: u64) -> impl Strategy<Value = ParticipantPlan> {
    (
        prop::collection::vec(damage(), STRING_FIELDS.len()),
        prop_oneof![6 => Just(Damage::Keep), 1 => damage()],
        prop_oneof![6 => Just(Damage::Keep), 1 => damage()],
        any::<bool>(),
    )
        .prop_map(
            move |(fields, id_damage, callid_damage, extra_key)| ParticipantPlan {
                id,
                fields,
                id_damage,
                callid_damage,
                extra_key,
            },
        )
}

/// A DN object whose `type`, `devices` and `participants` may be `null` or missing.
#[derive(Debug, Clone)]
struct DnPlan {
    dn: String,
    type_damage: Damage,
    devices_damage: Damage,
    participants: Vec<ParticipantPlan>,
    participants_null: bool,
}

impl DnPlan {
    fn json(&self) -> Value {
        let mut object = json!({
            "dn": self.dn, "type": "Wextension",
            "devices": [{"dn": self.dn, "device_id": null, "user_agent": "Yealink T46U"}],
            "participants": self.participants.iter().map(ParticipantPlan::json).collect::<Vec<_>>(),
            "unknown": true
        })
        .as_object()
        .cloned()
        .unwrap_or_default();
        apply(&mut object, "type", self.type_damage);
        apply(&mut object, "devices", self.devices_damage);
        if self.participants_null {
            object.insert("participants".into(), Value::Null);
        }
        Value::Object(object)
    }

    fn usable_ids(&self) -> Vec<u64> {
        if self.participants_null {
            return Vec::new();
        }
        self.participants
            .iter()
            .filter(|p| p.usable())
            .map(|p| p.id)
            .collect()
    }
}

fn snapshot() -> impl Strategy<Value = Vec<DnPlan>> {
    prop::collection::vec((damage(), damage(), 0usize..4, any::<bool>()), 1..5).prop_flat_map(
        |dns| {
            let mut next_id = 0;
            let plans: Vec<_> = dns
                .into_iter()
                .enumerate()
                .map(
                    |(index, (type_damage, devices_damage, count, participants_null))| {
                        let ids: Vec<u64> = (next_id..next_id + count as u64).collect();
                        next_id += count as u64;
                        let participants: Vec<_> = ids.into_iter().map(participant).collect();
                        (participants, Just(participants_null)).prop_map(
                            move |(participants, participants_null)| DnPlan {
                                dn: format!("1{index:02}"),
                                type_damage,
                                devices_damage,
                                participants,
                                participants_null,
                            },
                        )
                    },
                )
                .collect();
            plans
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_usable_participant_of_a_damaged_snapshot_comes_through(plans in snapshot()) {
        let body = Value::Array(plans.iter().map(DnPlan::json).collect()).to_string();
        let parsed = parse_snapshot(body.as_bytes()).expect("a JSON array never fails whole");
        prop_assert_eq!(parsed.dns.len(), plans.len());
        let mut skipped_participants = 0;
        for (dn, plan) in parsed.dns.iter().zip(&plans) {
            let ids: Vec<u64> = dn.participants.iter().map(|p| p.id).collect();
            prop_assert_eq!(&ids, &plan.usable_ids(), "DN {}", plan.dn);
            for (participant, planned) in dn.participants.iter().zip(plan.participants.iter().filter(|p| p.usable())) {
                let own_dn = matches!(planned.fields[1], Damage::Keep);
                let expected = if own_dn { "150" } else { plan.dn.as_str() };
                prop_assert_eq!(&participant.dn, expected, "a missing dn is the DN object's");
            }
            if !plan.participants_null {
                skipped_participants += plan.participants.len() - ids.len();
            }
        }
        prop_assert_eq!(parsed.skipped.len(), skipped_participants, "{:?}", parsed.skipped);
    }

    #[test]
    fn a_damaged_participant_reply_parses_exactly_when_it_is_usable(plan in participant(8106)) {
        let body = plan.json().to_string();
        let parsed = parse_participant(body.as_bytes(), "150");
        prop_assert_eq!(parsed.is_ok(), plan.usable(), "{}", body);
        if let Ok(participant) = parsed {
            prop_assert_eq!((participant.id, participant.callid, participant.legid), (8106, 1264, 4));
        }
    }
}
