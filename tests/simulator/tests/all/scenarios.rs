//! Scenario files: the shipped ones parse and expand consistently; bad ones are refused with
//! file, line and key.

use std::collections::{BTreeMap, BTreeSet};

use std::time::Duration;

use callhook_simulator::{
    FaultAction, Nulls, ParticipantChange, RecordingField, Scenario, ScenarioError, SocketClose,
    Variant,
};
use serde_json::Value;

/// Checks the invariants of a timeline and returns the most calls live at once.
pub fn check_timeline(scenario: &Scenario) -> usize {
    let name = scenario.name();
    let mut live: BTreeMap<u64, Value> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut calls: BTreeMap<u64, usize> = BTreeMap::new();
    let mut most = 0;
    let mut last = std::time::Duration::ZERO;
    for step in scenario.timeline() {
        assert!(step.at >= last, "{name}: timeline out of order");
        last = step.at;
        match step.change {
            ParticipantChange::Upsert(p) => {
                let id = p["id"].as_u64().unwrap();
                let callid = p["callid"].as_u64().unwrap();
                match live.get(&id) {
                    Some(before) => {
                        for key in ["dn", "callid", "legid", "party_caller_id"] {
                            assert_eq!(
                                before[key], p[key],
                                "{name}: participant {id} changed {key}"
                            );
                        }
                    }
                    None => {
                        assert!(seen.insert(id), "{name}: participant id {id} reused");
                        *calls.entry(callid).or_default() += 1;
                    }
                }
                live.insert(id, p);
            }
            ParticipantChange::Remove { dn, participant_id } => {
                let gone = live.remove(&participant_id).unwrap_or_else(|| {
                    panic!("{name}: remove of dead participant {participant_id}")
                });
                assert_eq!(gone["dn"], dn.as_str(), "{name}: remove names the wrong DN");
                let callid = gone["callid"].as_u64().unwrap();
                let count = calls.get_mut(&callid).unwrap();
                *count -= 1;
                if *count == 0 {
                    calls.remove(&callid);
                }
            }
        }
        most = most.max(calls.len());
    }
    assert!(
        live.is_empty(),
        "{name}: participants left at the end: {:?}",
        live.keys()
    );
    most
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

#[test]
fn the_folder_and_the_embedded_list_agree() {
    let mut on_disk: Vec<String> = std::fs::read_dir(Scenario::builtin_dir())
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".toml").map(str::to_owned)
        })
        .collect();
    on_disk.sort();
    assert_eq!(on_disk, Scenario::builtin_names());
    for name in on_disk {
        let from_file =
            Scenario::from_file(&Scenario::builtin_dir().join(format!("{name}.toml"))).unwrap();
        assert_eq!(
            from_file.timeline(),
            Scenario::builtin(&name).unwrap().timeline(),
            "{name}"
        );
    }
}

#[test]
fn every_builtin_expands_consistently() {
    for name in Scenario::builtin_names() {
        let scenario = Scenario::builtin(name).unwrap();
        assert_eq!(scenario.name(), name);
        assert!(!scenario.description().is_empty(), "{name}");
        assert!(check_timeline(&scenario) >= 1, "{name}");
        let callids: BTreeSet<u64> = upserts(&scenario)
            .iter()
            .map(|p| p["callid"].as_u64().unwrap())
            .collect();
        assert!(!scenario.expected().is_empty(), "{name}");
        for expectation in scenario.expected() {
            assert!(
                callids.contains(&expectation.call),
                "{name}: expectation for unknown call"
            );
            assert!(expectation.fields.contains_key("event"));
        }
        let directory: BTreeSet<String> = scenario.directory().into_iter().map(|d| d.dn).collect();
        for participant in upserts(&scenario) {
            assert!(
                directory.contains(participant["dn"].as_str().unwrap()),
                "{name}: unmonitored DN emitted"
            );
        }
    }
}

#[test]
fn queue_agents_ring_on_behalf_of_the_queue() {
    let scenario = Scenario::builtin("03-queue-answered").unwrap();
    let legs = upserts(&scenario);
    assert_eq!(
        (legs[0]["dn"].clone(), legs[0]["status"].clone()),
        ("800".into(), "Connected".into())
    );
    for agent in &legs[1..4] {
        assert_eq!(agent["status"], "Ringing");
        assert_eq!(
            (
                agent["on_behalf_of_dn"].clone(),
                agent["on_behalf_of_type"].clone()
            ),
            ("800".into(), "Wqueue".into())
        );
        assert_eq!(agent["callid"], 301);
    }
    assert_eq!(
        (legs[4]["dn"].clone(), legs[4]["status"].clone()),
        ("122".into(), "Connected".into())
    );
    let expected: Vec<&str> = scenario
        .expected()
        .iter()
        .map(|e| e.fields["event"].as_str())
        .collect();
    assert_eq!(
        expected,
        [
            "ringing",
            "ringing",
            "ringing",
            "incomingcall_started",
            "incoming"
        ]
    );
}

#[test]
fn an_unmonitored_queue_never_shows_but_keeps_the_call_alive() {
    let scenario = Scenario::builtin("04-queue-missed-two-waves").unwrap();
    assert!(scenario.directory().iter().all(|d| d.dn != "800"));
    let ringing_122: Vec<u64> = upserts(&scenario)
        .iter()
        .filter(|p| p["dn"] == "122")
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ringing_122.len(),
        2,
        "122 rings in both waves, as two participants"
    );
    assert_ne!(ringing_122[0], ringing_122[1]);
}

#[test]
fn blind_transfer_rings_the_target_referred_by_the_holder() {
    let scenario = Scenario::builtin("05-blind-transfer").unwrap();
    let timeline = scenario.timeline();
    let at = |secs| {
        timeline
            .iter()
            .filter(|s| s.at.as_secs() == secs)
            .map(|s| s.change.clone())
            .collect::<Vec<_>>()
    };
    // The new leg first, then the holder's remove: the order 3CX uses.
    let transfer = at(35);
    assert!(matches!(&transfer[1], ParticipantChange::Remove { dn, .. } if dn == "120"));
    let ParticipantChange::Upsert(ringing) = &transfer[0] else {
        panic!("130 must ring")
    };
    assert_eq!(
        (ringing["dn"].clone(), ringing["status"].clone()),
        ("130".into(), "Ringing".into())
    );
    assert_eq!(
        (
            ringing["referred_by_dn"].clone(),
            ringing["referred_by_type"].clone()
        ),
        ("120".into(), "Wextension".into())
    );
    assert_eq!(ringing["callid"], 501);
}

#[test]
fn attended_transfer_consults_in_its_own_call_then_joins_connected() {
    let scenario = Scenario::builtin("06-attended-transfer").unwrap();
    let legs = upserts(&scenario);
    let consult: Vec<&Value> = legs.iter().filter(|p| p["callid"] == 651).collect();
    assert!(
        consult
            .iter()
            .any(|p| p["dn"] == "120" && p["status"] == "Dialing" && p["party_dn"] == "130")
    );
    assert!(consult.iter().any(|p| p["dn"] == "130"
        && p["status"] == "Ringing"
        && p["party_dn_type"] == "Wextension"));
    let in_original: Vec<&Value> = legs
        .iter()
        .filter(|p| p["callid"] == 601 && p["dn"] == "130")
        .collect();
    assert_eq!(
        in_original.len(),
        1,
        "130 appears once in 601, directly Connected"
    );
    assert_eq!(
        (
            in_original[0]["status"].clone(),
            in_original[0]["referred_by_dn"].clone()
        ),
        ("Connected".into(), "120".into())
    );
    // By default the held holder stays Connected; the modelled variant shows Hold.
    let holder = |scenario: &Scenario| -> Vec<String> {
        upserts(scenario)
            .iter()
            .filter(|p| p["callid"] == 601 && p["dn"] == "120")
            .map(|p| p["status"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(holder(&scenario), ["Ringing", "Connected", "Connected"]);
    let modelled = scenario.with_variant(Variant {
        hold_as_connected: false,
        ..Variant::default()
    });
    assert_eq!(holder(&modelled), ["Ringing", "Connected", "Hold"]);
}

#[test]
fn outbound_calls_dial_first_without_the_party() {
    let scenario = Scenario::builtin("08-outbound-answered").unwrap();
    let timeline = scenario.timeline();
    let legs = upserts(&scenario);
    let shape = |p: &Value| {
        (
            p["status"].as_str().unwrap().to_owned(),
            p["party_dn"].as_str().unwrap().to_owned(),
            p["party_dn_type"].as_str().unwrap().to_owned(),
            p["party_caller_id"].as_str().unwrap().to_owned(),
        )
    };
    let s = |a: &str, b: &str, c: &str, d: &str| (a.into(), b.into(), c.into(), d.into());
    assert_eq!(
        legs.iter().map(shape).collect::<Vec<_>>(),
        [
            s("Dialing", "", "None", "425630434343"),
            s("Dialing", "10007", "Wexternalline", "425630434343"),
            s("Connected", "10007", "Wexternalline", "425630434343"),
        ]
    );
    assert_eq!(
        (
            legs[0]["party_caller_name"].clone(),
            legs[1]["party_caller_name"].clone()
        ),
        ("".into(), "+425630434343".into())
    );
    assert!(legs.iter().all(|p| p["party_did"] == ""));
    assert_eq!(
        (timeline[0].at.as_millis(), timeline[1].at.as_millis()),
        (0, 200),
        "the party is filled in 0.2 s later"
    );
    let with_party = scenario.with_variant(Variant {
        partyless_first_dialing: false,
        ..Variant::default()
    });
    let legs = upserts(&with_party);
    assert_eq!(
        legs.iter().map(shape).collect::<Vec<_>>(),
        [
            s("Dialing", "10007", "Wexternalline", "425630434343"),
            s("Connected", "10007", "Wexternalline", "425630434343"),
        ]
    );
}

#[test]
fn the_party_is_filled_in_before_the_next_step() {
    let text = format!(
        "{HEAD}\n[[call.step]]\nat = 0\naction = \"dial\"\ndn = \"120\"\n[[call.step]]\nat = 0.1\naction = \"hangup\"\n"
    );
    let timeline = Scenario::from_toml_str(&text).unwrap().timeline();
    let times: Vec<u128> = timeline.iter().map(|s| s.at.as_millis()).collect();
    assert_eq!(times, [0, 50, 100]);
    assert!(matches!(
        timeline[2].change,
        ParticipantChange::Remove { .. }
    ));
}

#[test]
fn the_ivr_originates_the_extension_leg() {
    let scenario = Scenario::builtin("02-direct-inbound-missed").unwrap();
    let legs = upserts(&scenario);
    assert_eq!(
        (legs[0]["dn"].clone(), legs[0]["party_did"].clone()),
        ("700".into(), "".into())
    );
    assert_eq!(
        (
            legs[1]["originated_by_dn"].clone(),
            legs[1]["originated_by_type"].clone()
        ),
        ("700".into(), "Wivr".into())
    );
    assert_eq!(legs[1]["on_behalf_of_type"], "None");
}

#[test]
fn renumbering_shifts_calls_and_participants() {
    let scenario = Scenario::builtin("06-attended-transfer").unwrap();
    let shifted = scenario.renumbered(1000, 50_000);
    for (a, b) in scenario.timeline().iter().zip(shifted.timeline()) {
        match (&a.change, &b.change) {
            (ParticipantChange::Upsert(a), ParticipantChange::Upsert(b)) => {
                assert_eq!(
                    b["callid"].as_u64().unwrap(),
                    a["callid"].as_u64().unwrap() + 1000
                );
                assert_eq!(
                    b["id"].as_u64().unwrap(),
                    a["id"].as_u64().unwrap() + 50_000
                );
            }
            (
                ParticipantChange::Remove {
                    participant_id: a, ..
                },
                ParticipantChange::Remove {
                    participant_id: b, ..
                },
            ) => {
                assert_eq!(*b, a + 50_000);
            }
            _ => panic!("renumbering changed the kind of a step"),
        }
    }
    assert!(shifted.expected().iter().all(|e| e.call == 1601));
    assert_eq!(scenario.duration(), shifted.duration());
    assert_eq!(scenario.duration().as_secs(), 110);
}

const HEAD: &str = "[[dn]]\ndn = \"120\"\n\n[[call]]\ncallid = 1\nexternal = \"49\"\n";

#[test]
fn rejects_bad_scenarios_naming_line_and_key() {
    // (text after HEAD, line, key or message fragment)
    let cases: &[(&str, usize, &str)] = &[
        (
            "[[call.step]]\nat = 0\naction = \"ring\"\ndn = \"999\"\n",
            8,
            "DN 999 is not declared",
        ),
        (
            "[[call.step]]\nat = 0\naction = \"answer\"\ndn = \"120\"\n",
            8,
            "has no leg",
        ),
        (
            "[[call.step]]\nat = 0\naction = \"ring\"\ndn = \"120\"\n",
            4,
            "never ends",
        ),
        (
            "[[call.step]]\nat = 0\naction = \"hangup\"\nto = \"130\"\n",
            11,
            "`to`: does not apply to action `hangup`",
        ),
        (
            "[[call.step]]\nat = 0\naction = \"dance\"\n",
            10,
            "unknown variant `dance`",
        ),
        (
            "[[call.step]]\nat = 0\naction = \"ring\"\ndn = \"120\"\ncolour = 1\n",
            12,
            "unknown field `colour`",
        ),
        (
            "[[call.step]]\nat = 5\naction = \"ring\"\ndn = \"120\"\n[[call.step]]\nat = 1\naction = \"hangup\"\n",
            12,
            "time order",
        ),
        (
            "[[call.step]]\nat = 0\naction = \"blind_transfer\"\ndn = \"120\"\n",
            8,
            "`to`: missing",
        ),
        (
            "[[call.step]]\nat = 0\naction = \"ring\"\ndn = \"120\"\n[[call.step]]\nat = 1\naction = \"hangup\"\n[[expect]]\ncall = 1\nlink = 0\nevent = \"ringing\"\ncolor = \"x\"\n",
            19,
            "`color`: unknown key",
        ),
        (
            "[[call.step]]\nat = 0\naction = \"ring\"\ndn = \"120\"\n[[call.step]]\nat = 1\naction = \"hangup\"\n[[expect]]\ncall = 2\nlink = 0\nevent = \"ringing\"\n",
            15,
            "no `[[call]]` has callid 2",
        ),
        ("[[call.step]]\nat = -1\naction = \"hangup\"\n", 9, "`at`"),
        (
            "[[call.step]]\nat = 0\naction = \"ring\"\ndn = \"120\"\n[[call.step]]\nat = 1\naction = \"hangup\"\n[[fault]]\nat = 0\naction = \"drop_sockets\"\non = true\n",
            15,
            "`on`: does not apply",
        ),
        (
            "[[call.step]]\nat = 0\naction = \"ring\"\ndn = \"120\"\n[[call.step]]\nat = 1\naction = \"hangup\"\n[[fault]]\nat = 0\naction = \"nulls\"\nmode = \"sometimes\"\n",
            15,
            "`mode`: unknown mode `sometimes` (one of off, null, missing)",
        ),
        (
            "[[call.step]]\nat = 0\naction = \"ring\"\ndn = \"120\"\n[[call.step]]\nat = 1\naction = \"hangup\"\n[[fault]]\nat = 0\naction = \"forbid_participants_of\"\n",
            15,
            "`dn`: missing",
        ),
    ];
    for (tail, line, fragment) in cases {
        let text = format!("{HEAD}\n{tail}");
        let error = Scenario::from_toml_str(&text)
            .err()
            .unwrap_or_else(|| panic!("accepted:\n{text}"));
        let message = error.to_string();
        assert!(
            message.starts_with(&format!("<string>:{line}:")),
            "want line {line}: {message}\n{text}"
        );
        assert!(message.contains(fragment), "want `{fragment}`: {message}");
    }
}

#[test]
fn errors_name_the_file() {
    let dir = std::env::temp_dir().join(format!("callhook-sim-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(&file, "name = \"bad\"\nnonsense = 1\n").unwrap();
    let error = Scenario::from_file(&file).err().unwrap();
    assert!(
        matches!(error, ScenarioError::Syntax { line: 2, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("bad.toml:2"), "{error}");
    assert!(matches!(
        Scenario::from_file(&dir.join("missing.toml")),
        Err(ScenarioError::Io { .. })
    ));
    assert!(matches!(
        Scenario::builtin("99-nope"),
        Err(ScenarioError::UnknownBuiltin { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn accepts_a_minimal_scenario() {
    let text = format!(
        "{HEAD}\n[[call.step]]\nat = 0\naction = \"ring\"\ndn = \"120\"\n[[call.step]]\nat = 2.5\naction = \"hangup\"\n"
    );
    let scenario = Scenario::from_toml_str(&text).unwrap();
    assert_eq!(scenario.name(), "unnamed");
    assert_eq!(scenario.timeline().len(), 2);
    assert_eq!(scenario.duration().as_millis(), 2500);
    assert_eq!(upserts(&scenario)[0]["id"], 8000);
}

#[test]
fn reads_every_fault_action() {
    let faults = "[[fault]]\nat = 0\naction = \"repeat_unconnected\"\nevery_ms = 750\n\
        [[fault]]\nat = 0\naction = \"get_delay\"\nms = 50\n\
        [[fault]]\nat = 0\naction = \"abnormal_close\"\n\
        [[fault]]\nat = 0\naction = \"close_on_new_token\"\nmode = \"clean\"\n\
        [[fault]]\nat = 0\naction = \"nulls\"\nmode = \"missing\"\n\
        [[fault]]\nat = 0\naction = \"unusable_participants\"\non = true\n\
        [[fault]]\nat = 0\naction = \"forbid_participants_of\"\ndn = \"120\"\n\
        [[fault]]\nat = 0\naction = \"forbid_xapi\"\non = true\n\
        [[fault]]\nat = 0\naction = \"null_recording_field\"\nmode = \"end_time\"\n\
        [[fault]]\nat = 0\naction = \"non_participant_frames\"\ndn = \"120\"\n";
    let text = format!(
        "{HEAD}\n[[call.step]]\nat = 0\naction = \"ring\"\ndn = \"120\"\n[[call.step]]\nat = 1\naction = \"hangup\"\n{faults}"
    );
    let scenario = Scenario::from_toml_str(&text).unwrap();
    let actions: Vec<FaultAction> = scenario
        .fault_schedule()
        .iter()
        .map(|f| f.action.clone())
        .collect();
    assert_eq!(
        actions,
        [
            FaultAction::RepeatUnconnected(Some(Duration::from_millis(750))),
            FaultAction::GetDelay(Duration::from_millis(50)),
            FaultAction::AbnormalClose,
            FaultAction::CloseOnNewToken(Some(SocketClose::Clean)),
            FaultAction::Nulls(Nulls::Missing),
            FaultAction::UnusableParticipants(true),
            FaultAction::ForbidParticipantsOf("120".into()),
            FaultAction::ForbidXapi(true),
            FaultAction::NullRecordingField(Some(RecordingField::EndTime)),
            FaultAction::NonParticipantFrames("120".into()),
        ]
    );
}
