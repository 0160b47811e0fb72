//! The scenarios of `call-events.md`, section 4, fed as the socket shows them, plus edge cases.

use jiff::Timestamp;

use crate::callcontrol::Change;
use crate::callcontrol::ParticipantStatus::{self, *};
use crate::calls::event::{CallEvent, FinishType::*, TransferType::*, UserType};
use crate::calls::script::*;
use crate::calls::{CallPart, EngineConfig};

fn t(secs: i64) -> Timestamp {
    T0.parse::<Timestamp>().unwrap() + jiff::SignedDuration::from_secs(secs)
}

/// The title of an answered incoming part.
fn answered(user: &str, clock: &str) -> String {
    format!("CompanyDID: answered incoming call from 425630434343 to {user}, {clock}")
}

/// The title of an incoming part that ended by transfer.
fn passed_on(user: &str, clock: &str) -> String {
    format!(
        "CompanyDID: answered incoming call from 425630434343 to {user}, transferred after {clock}"
    )
}

#[test]
fn s01_direct_inbound_answered() {
    for from in DID_SOURCES {
        let c = Expect::call(782);
        let a = inbound(1, "120", 782);
        let mut s = Script::did_from(from);
        s.at(0.0).up(&a).at(5.0).up(&a.connected()).at(65.0).rm(&a);
        s.at(66.9);
        assert_eq!(s.events().len(), 2, "the end waits for the grace period");
        s.settle();
        let end = c.ended_in("120", Ok, false, 60, 1, &answered("120", "00:01:00"));
        assert_eq!(
            s.events(),
            vec![
                c.ringing("120", UserType::Ext, 0),
                c.started_in("120", NotDef, 1),
                end.clone(),
            ]
        );
        let CallEvent::Ended(end) = end else {
            unreachable!()
        };
        assert_eq!(s.finished().len(), 1);
        assert_eq!(s.finished()[0].pbx_call_id, 782);
        let last_end = s.finished()[0].last_end.clone().map(CallEvent::Ended);
        assert_eq!(
            without_facts(last_end.into_iter().collect()),
            [CallEvent::Ended(end)]
        );
        assert_eq!(
            s.finished()[0].parts,
            vec![CallPart {
                id: c.id(1),
                extension: "120".into(),
                other_number: X.into(),
                talk_start: t(5),
                talk_end: t(65),
            }]
        );
        assert_eq!(s.engine().active_calls(), 0);
        assert_eq!(s.engine().next_deadline(), None);
    }
}

#[test]
fn s02_direct_inbound_missed() {
    for from in DID_SOURCES {
        let c = Expect::call(782);
        let a = inbound(1, "120", 782).via_router();
        let mut s = Script::did_from(from);
        s.at(0.0).up(&a).at(20.0).rm(&a).settle();
        assert_eq!(
            s.events(),
            vec![
                c.ringing("120", UserType::Ext, 0),
                c.ended_in(
                    "120",
                    Missed,
                    false,
                    0,
                    0,
                    "CompanyDID: missed incoming call from 425630434343 to 120"
                ),
            ]
        );
        assert_eq!(s.finished()[0].parts, vec![]);
    }
}

#[test]
fn s03_queue_three_agents_one_answers() {
    for from in DID_SOURCES {
        let c = Expect::call(783);
        let q = queue_leg(10, "800", 783);
        let [a1, a2, a3] = [(11, "121"), (12, "122"), (13, "123")]
            .map(|(id, dn)| inbound(id, dn, 783).queue("800"));
        let mut s = Script::did_from(from);
        s.at(0.0).up(&q).up(&a1).up(&a2).up(&a3);
        s.at(8.0).up(&a2.connected()).rm(&a1).rm(&a3).rm(&q);
        s.at(38.0).rm(&a2).settle();
        assert_eq!(
            s.events(),
            vec![
                c.ringing("121", UserType::Queue, 0),
                c.ringing("122", UserType::Queue, 0),
                c.ringing("123", UserType::Queue, 0),
                c.started_in("122", NotDef, 1),
                c.ended_in("122", Ok, false, 30, 1, &answered("122", "00:00:30")),
            ]
        );
    }
}

/// Scenario 4 with the queue DN monitored: it shows the caller connected between the waves.
#[test]
fn s04_queue_nobody_answers_two_waves() {
    for from in DID_SOURCES {
        let c = Expect::call(784);
        let q = queue_leg(10, "800", 784);
        let wave1 = [(11, "121"), (12, "122")].map(|(id, dn)| inbound(id, dn, 784).queue("800"));
        let wave2 = [(21, "121"), (22, "122"), (23, "123")]
            .map(|(id, dn)| inbound(id, dn, 784).queue("800"));
        let mut s = Script::did_from(from);
        s.at(0.0).up(&q);
        wave1.iter().for_each(|a| _ = s.up(a));
        s.at(15.0);
        wave1.iter().for_each(|a| _ = s.rm(a));
        s.at(20.0);
        wave2.iter().for_each(|a| _ = s.up(a));
        s.at(40.0);
        wave2.iter().for_each(|a| _ = s.rm(a));
        s.rm(&q).settle();
        assert_eq!(
            s.events(),
            vec![
                c.ringing("121", UserType::Queue, 0),
                c.ringing("122", UserType::Queue, 0),
                c.ringing("123", UserType::Queue, 0),
                c.ended_in(
                    "800",
                    Missed,
                    false,
                    0,
                    0,
                    "CompanyDID: missed incoming call from 425630434343 in queue 800"
                ),
            ]
        );
    }
}

/// Scenario 4 without the queue DN: the grace period keeps the waves together.
#[test]
fn s04_queue_waves_held_together_by_the_grace_period() {
    for from in DID_SOURCES {
        let c = Expect::call(784);
        let wave1 = [(11, "121"), (12, "122")].map(|(id, dn)| inbound(id, dn, 784).queue("800"));
        let wave2 = [(21, "122"), (22, "123")].map(|(id, dn)| inbound(id, dn, 784).queue("800"));
        let mut s = Script::did_from(from);
        s.at(0.0);
        wave1.iter().for_each(|a| _ = s.up(a));
        s.at(15.0);
        wave1.iter().for_each(|a| _ = s.rm(a));
        s.at(16.5);
        wave2.iter().for_each(|a| _ = s.up(a));
        s.at(40.0);
        wave2.iter().for_each(|a| _ = s.rm(a));
        s.settle();
        assert_eq!(
            s.events(),
            vec![
                c.ringing("121", UserType::Queue, 0),
                c.ringing("122", UserType::Queue, 0),
                c.ringing("123", UserType::Queue, 0),
                c.ended_in(
                    "800",
                    Missed,
                    false,
                    0,
                    0,
                    "CompanyDID: missed incoming call from 425630434343 in queue 800"
                ),
            ]
        );
    }
}

fn blind_transfer_events(c: &Expect) -> Vec<CallEvent> {
    vec![
        c.ringing("120", UserType::Ext, 0),
        c.started_in("120", NotDef, 1),
        c.ended_in("120", Ok, true, 30, 1, &passed_on("120", "00:00:30")),
        c.ringing("130", UserType::Ext, 2),
        c.started_in("130", Blind, 2),
        c.ended_in("130", Ok, false, 60, 2, &answered("130", "00:01:00")),
    ]
}

/// The order in which the PBX shows a transfer's hand-over.
#[derive(Debug, Clone, Copy)]
enum Order {
    /// The holder's leg is removed, then the target's leg appears.
    LeaveFirst,
    /// The target's leg appears while the holder is still there (the order 3CX uses).
    JoinFirst,
}

/// Every order and gap a transfer's hand-over may come in: the same events for each.
const HAND_OVERS: [(Order, f64); 4] = [
    (Order::LeaveFirst, 0.0),
    (Order::LeaveFirst, 0.4),
    (Order::JoinFirst, 0.0),
    (Order::JoinFirst, 0.4),
];

/// At `at`, `holder`'s leg goes and `target`'s appears, in `order`, `gap` seconds apart.
fn hand_over(s: &mut Script, at: f64, (order, gap): (Order, f64), holder: &Leg, target: &Leg) {
    match order {
        Order::LeaveFirst => s.at(at).rm(holder).at(at + gap).up(target),
        Order::JoinFirst => s.at(at).up(target).at(at + gap).rm(holder),
    };
}

/// Scenario 5 in every hand-over order, with either DID source.
#[test]
fn s05_blind_transfer() {
    for from in DID_SOURCES {
        for order in HAND_OVERS {
            let c = Expect::call(785);
            let a = inbound(1, "120", 785);
            let b = inbound(2, "130", 785).referred_by("120");
            let mut s = Script::did_from(from);
            s.at(0.0).up(&a).at(5.0).up(&a.connected());
            hand_over(&mut s, 35.0, order, &a, &b);
            s.at(40.0).up(&b.connected()).at(100.0).rm(&b).settle();
            assert_eq!(s.events(), blind_transfer_events(&c), "{from:?} {order:?}");
            let parts: Vec<_> = s.finished()[0]
                .parts
                .iter()
                .map(|p| (p.id.link, p.extension.as_str()))
                .collect();
            assert_eq!(parts, vec![(1, "120"), (2, "130")], "{from:?} {order:?}");
        }
    }
}

/// Scenario 6 in every hand-over order, with either DID source.
#[test]
fn s06_attended_transfer() {
    for from in DID_SOURCES {
        for order in HAND_OVERS {
            let c = Expect::call(786);
            let a = inbound(1, "120", 786);
            let consult_a = inbound(3, "120", 787).party_ext("130").dialing();
            let consult_b = inbound(4, "130", 787).party_ext("120");
            let b = inbound(5, "130", 786).referred_by("120").connected();
            let mut s = Script::did_from(from);
            s.at(0.0).up(&a).at(5.0).up(&a.connected());
            s.at(20.0).up(&a.hold()).up(&consult_a).up(&consult_b);
            s.at(25.0)
                .up(&consult_b.connected())
                .up(&consult_a.connected());
            // Completing removes the holder's legs in both calls and the target's consultation
            // leg; the target appears in the original call.
            let (at, gap) = (50.0, order.1);
            match order.0 {
                Order::LeaveFirst => s
                    .at(at)
                    .rm(&a)
                    .rm(&consult_a)
                    .rm(&consult_b)
                    .at(at + gap)
                    .up(&b),
                Order::JoinFirst => s
                    .at(at)
                    .up(&b)
                    .at(at + gap)
                    .rm(&a)
                    .rm(&consult_a)
                    .rm(&consult_b),
            };
            s.at(110.0).rm(&b).settle();
            assert_eq!(
                s.events(),
                vec![
                    c.ringing("120", UserType::Ext, 0),
                    c.started_in("120", NotDef, 1),
                    c.ended_in("120", Ok, true, 45, 1, &passed_on("120", "00:00:45")),
                    c.started_in("130", Accomp, 2),
                    c.ended_in("130", Ok, false, 60, 2, &answered("130", "00:01:00")),
                ],
                "{from:?} {order:?}"
            );
            assert_eq!(
                s.finished().len(),
                1,
                "the consultation call finishes without events"
            );
        }
    }
}

#[test]
fn s06_attended_transfer_reporting_internal_calls() {
    let c = Expect::call(786);
    let from_130 = Expect {
        stamp: "210701165709",
        callid: 787,
        caller: "130",
        did: "",
    };
    let from_120 = Expect {
        caller: "120",
        ..from_130.clone()
    };
    let a = inbound(1, "120", 786);
    let consult_a = inbound(3, "120", 787).party_ext("130").dialing();
    let consult_b = inbound(4, "130", 787).party_ext("120");
    let b = inbound(5, "130", 786).referred_by("120").connected();
    let mut s = Script::with(EngineConfig {
        report_internal_calls: true,
        ..config()
    });
    s.at(0.0).up(&a).at(5.0).up(&a.connected());
    s.at(20.0).up(&a.hold()).up(&consult_a).up(&consult_b);
    s.at(25.0)
        .up(&consult_b.connected())
        .up(&consult_a.connected());
    s.at(50.0).rm(&a).rm(&consult_a).rm(&consult_b).up(&b);
    s.at(110.0).rm(&b).settle();
    assert_eq!(
        s.events(),
        vec![
            c.ringing("120", UserType::Ext, 0),
            c.started_in("120", NotDef, 1),
            from_130.dialing("120", 0),
            from_120.ringing("130", UserType::Ext, 0),
            from_120.started_in("130", NotDef, 1),
            from_130.started_out("120", NotDef, 1),
            c.ended_in("120", Ok, true, 45, 1, &passed_on("120", "00:00:45")),
            c.started_in("130", Accomp, 2),
            from_130.ended_out(
                "120",
                Ok,
                false,
                25,
                1,
                "answered outgoing call from 120 to 130, 00:00:25"
            ),
            from_120.ended_in(
                "130",
                Ok,
                false,
                25,
                1,
                "answered incoming call from 120 to 130, 00:00:25"
            ),
            c.ended_in("130", Ok, false, 60, 2, &answered("130", "00:01:00")),
        ]
    );
}

/// Scenario 7 in every hand-over order, with either DID source.
#[test]
fn s07_blind_transfer_not_answered() {
    for from in DID_SOURCES {
        for order in HAND_OVERS {
            let c = Expect::call(785);
            let a = inbound(1, "120", 785);
            let b = inbound(2, "130", 785).referred_by("120");
            let mut s = Script::did_from(from);
            s.at(0.0).up(&a).at(5.0).up(&a.connected());
            hand_over(&mut s, 35.0, order, &a, &b);
            s.at(60.0).rm(&b).settle();
            assert_eq!(
                s.events(),
                vec![
                    c.ringing("120", UserType::Ext, 0),
                    c.started_in("120", NotDef, 1),
                    c.ended_in("120", Ok, true, 30, 1, &passed_on("120", "00:00:30")),
                    c.ringing("130", UserType::Ext, 2),
                    c.ended_in(
                        "130",
                        Missed,
                        false,
                        0,
                        2,
                        "CompanyDID: missed incoming call from 425630434343 to 130"
                    ),
                ],
                "{from:?} {order:?}"
            );
        }
    }
}

/// An outbound call's first upserts: with or without the party-less `Dialing` upsert before
/// the one that shows the external party.
fn dial(s: &mut Script, partyless: bool, o: &Leg) {
    if partyless {
        s.up(&outbound_partyless(o.0.id, &o.0.dn, o.0.callid))
            .at(1.0);
    }
    s.up(o);
}

#[test]
fn s08_outbound_answered() {
    for partyless in [false, true] {
        let c = Expect::call(790);
        let o = outbound(1, "120", 790);
        let mut s = Script::new();
        s.at(0.0);
        dial(&mut s, partyless, &o);
        s.at(10.0).up(&o.connected()).at(70.0).rm(&o).settle();
        assert_eq!(
            s.events(),
            vec![
                c.dialing("120", 0),
                c.started_out("120", NotDef, 1),
                c.ended_out(
                    "120",
                    Ok,
                    false,
                    60,
                    1,
                    "answered outgoing call from 120 to 425630434343, 00:01:00"
                ),
            ],
            "party-less first: {partyless}"
        );
    }
}

#[test]
fn s09_outbound_not_answered() {
    for partyless in [false, true] {
        let c = Expect::call(790);
        let o = outbound(1, "120", 790);
        let mut s = Script::new();
        s.at(0.0);
        dial(&mut s, partyless, &o);
        s.at(30.0).rm(&o).settle();
        assert_eq!(
            s.events(),
            vec![
                c.dialing("120", 0),
                c.ended_out(
                    "120",
                    Missed,
                    false,
                    0,
                    0,
                    "missed outgoing call from 120 to 425630434343"
                ),
            ],
            "party-less first: {partyless}"
        );
    }
}

#[test]
fn s10_hold_changes_nothing() {
    for from in DID_SOURCES {
        let c = Expect::call(782);
        let a = inbound(1, "120", 782);
        let held = crate::callcontrol::ParticipantStatus::Held;
        let mut s = Script::did_from(from);
        s.at(0.0)
            .up(&a)
            .at(5.0)
            .up(&a.connected())
            .at(20.0)
            .up(&a.hold())
            .at(40.0)
            .up(&a.connected());
        s.at(45.0).up(&Leg(crate::callcontrol::Participant {
            status: held,
            ..a.0.clone()
        }));
        s.at(50.0).up(&a.connected()).at(65.0).rm(&a).settle();
        assert_eq!(
            s.events(),
            vec![
                c.ringing("120", UserType::Ext, 0),
                c.started_in("120", NotDef, 1),
                c.ended_in("120", Ok, false, 60, 1, &answered("120", "00:01:00")),
            ]
        );
    }
}

#[test]
fn s11_restart_and_reconnect() {
    for from in DID_SOURCES {
        let call_a = Expect::call(791);
        let call_b = Expect {
            stamp: "210701165657",
            ..Expect::call(792)
        };
        let call_c = Expect {
            stamp: "210701165704",
            ..Expect::call(793)
        };
        let call_d = Expect {
            stamp: "210701165719",
            ..Expect::call(794)
        };
        let a = inbound(1, "120", 791);
        let b = inbound(2, "121", 792);
        let c = inbound(3, "122", 793);
        let d = inbound(4, "123", 794).connected();
        let mut s = Script::did_from(from);
        s.at(0.0).up(&a).at(5.0).up(&a.connected());
        s.at(8.0).up(&b).at(10.0).up(&b.connected());
        s.at(15.0).up(&c);
        // The host goes down at 20 s; meanwhile b hangs up, c stops ringing and d starts. It is back
        // at 30 s and reconciles with a snapshot.
        s.at(20.0).restart();
        s.at(30.0).snapshot(&[&a.connected(), &d]);
        s.at(70.0).rm(&a.connected()).at(80.0).rm(&d).settle();
        assert_eq!(
        s.events(),
        vec![
            call_a.ringing("120", UserType::Ext, 0),
            call_a.started_in("120", NotDef, 1),
            call_b.ringing("121", UserType::Ext, 0),
            call_b.started_in("121", NotDef, 1),
            call_c.ringing("122", UserType::Ext, 0),
            call_d.started_in("123", NotDef, 1),
            call_b.ended_in(
                "121",
                Ok,
                false,
                20,
                1,
                "CompanyDID: answered incoming call from 425630434343 to 121, 00:00:20 (end time approximate)"
            ),
            call_c.ended_in(
                "122",
                Missed,
                false,
                0,
                0,
                "CompanyDID: missed incoming call from 425630434343 to 122 (end time approximate)"
            ),
            call_a.ended_in("120", Ok, false, 65, 1, &answered("120", "00:01:05")),
            call_d.ended_in("123", Ok, false, 50, 1, &answered("123", "00:00:50")),
        ]
    );
    }
}

/// A transfer that completed while the host was away: the snapshot shows only the new holder.
#[test]
fn s11_transfer_while_away() {
    for from in DID_SOURCES {
        let c = Expect::call(785);
        let a = inbound(1, "120", 785);
        let b = inbound(2, "130", 785).referred_by("120").connected();
        let mut s = Script::did_from(from);
        s.at(0.0)
            .up(&a)
            .at(5.0)
            .up(&a.connected())
            .at(20.0)
            .restart();
        s.at(30.0).snapshot(&[&b]).at(90.0).rm(&b).settle();
        assert_eq!(
        s.events(),
        vec![
            c.ringing("120", UserType::Ext, 0),
            c.started_in("120", NotDef, 1),
            c.ended_in(
                "120",
                Ok,
                true,
                25,
                1,
                "CompanyDID: answered incoming call from 425630434343 to 120, transferred after 00:00:25 (end time approximate)"
            ),
            c.started_in("130", Accomp, 2),
            c.ended_in("130", Ok, false, 60, 2, &answered("130", "00:01:00")),
        ]
    );
    }
}

/// Scenario 5 with every upsert twice, the field's ~750 ms repeats, resnapshots and restarts.
#[test]
fn s12_duplicate_and_repeated_upserts() {
    for from in DID_SOURCES {
        let c = Expect::call(785);
        let a = inbound(1, "120", 785);
        let b = inbound(2, "130", 785).referred_by("120");
        let mut s = Script::did_from(from);
        s.at(0.0)
            .up(&a)
            .up(&a)
            .at(5.0)
            .up(&a.connected())
            .up(&a.connected());
        for i in 0..40 {
            s.at(5.5 + f64::from(i) * 0.75).up(&a.connected());
            if i % 10 == 0 {
                s.snapshot(&[&a.connected()]).restart();
            }
        }
        s.at(35.0)
            .rm(&a)
            .rm(&a)
            .at(35.2)
            .up(&b)
            .up(&b)
            .at(40.0)
            .up(&b.connected())
            .up(&b.connected());
        for i in 0..80 {
            s.at(40.5 + f64::from(i) * 0.75).up(&b.connected());
            if i % 20 == 0 {
                s.snapshot(&[&b.connected()]);
            }
        }
        s.at(100.0).rm(&b).rm(&b).settle();
        assert_eq!(s.events(), blind_transfer_events(&c));
    }
}

#[test]
fn missed_ring_group_call_is_reported_for_the_group() {
    let c = Expect::call(795);
    let legs = [(1, "121"), (2, "122")].map(|(id, dn)| inbound(id, dn, 795).ring_group("600"));
    let mut s = Script::new();
    s.at(0.0)
        .up(&legs[0])
        .up(&legs[1])
        .at(30.0)
        .rm(&legs[0])
        .rm(&legs[1])
        .settle();
    assert_eq!(
        s.events(),
        vec![
            c.ringing("121", UserType::Other, 0),
            c.ringing("122", UserType::Other, 0),
            c.ended_in(
                "600",
                Missed,
                false,
                0,
                0,
                "CompanyDID: missed incoming call from 425630434343 in ring group 600"
            ),
        ]
    );
}

#[test]
fn internal_calls_are_silent_by_default() {
    let x = inbound(1, "120", 796).party_ext("121").dialing();
    let y = inbound(2, "121", 796).party_ext("120");
    let mut s = Script::new();
    s.at(0.0)
        .up(&x)
        .up(&y)
        .at(3.0)
        .up(&y.connected())
        .up(&x.connected())
        .at(9.0)
        .rm(&x)
        .rm(&y)
        .settle();
    assert_eq!(s.events(), vec![]);
    assert_eq!(s.finished(), &[]);
    assert_eq!(s.engine().active_calls(), 0);
}

#[test]
fn unmonitored_dns_produce_nothing() {
    let a = inbound(1, "555", 797);
    let mut s = Script::new();
    s.at(0.0)
        .up(&a)
        .at(2.0)
        .up(&a.connected())
        .at(9.0)
        .rm(&a)
        .settle();
    assert_eq!(s.events(), vec![]);
}

#[test]
fn a_leg_after_the_grace_period_is_a_new_call_not_a_transfer() {
    let first = Expect::call(785);
    let second = Expect {
        stamp: "210701165727",
        ..Expect::call(785)
    };
    let a = inbound(1, "120", 785);
    let b = inbound(2, "130", 785);
    let mut s = Script::new();
    s.at(0.0).up(&a).at(5.0).up(&a.connected()).at(35.0).rm(&a);
    // No tick in between: `apply` settles the expired grace period first.
    let out = s.engine().clone().apply(Change::Upsert {
        at: t(38),
        participant: b.0.clone(),
    });
    assert_eq!(
        without_facts(out.events),
        vec![
            first.ended_in("120", Ok, false, 30, 1, &answered("120", "00:00:30")),
            second.ringing("130", UserType::Ext, 0),
        ]
    );
    assert_eq!(out.finished.len(), 1);
}

#[test]
fn a_transfer_target_that_vanishes_before_the_holder_leaves_is_silent() {
    let c = Expect::call(785);
    let a = inbound(1, "120", 785);
    let b = inbound(2, "130", 785).referred_by("120");
    let mut s = Script::new();
    s.at(0.0)
        .up(&a)
        .at(5.0)
        .up(&a.connected())
        .at(20.0)
        .up(&b)
        .at(25.0)
        .rm(&b);
    s.at(65.0).rm(&a).settle();
    assert_eq!(
        s.events(),
        vec![
            c.ringing("120", UserType::Ext, 0),
            c.started_in("120", NotDef, 1),
            c.ended_in("120", Ok, false, 60, 1, &answered("120", "00:01:00")),
        ]
    );
}

#[test]
fn did_rules_can_change_at_runtime() {
    let c = Expect {
        did: "Berlin",
        ..Expect::call(782)
    };
    let a = inbound(1, "120", 782);
    let mut s = Script::new();
    s.at(0.0).up(&a);
    let mut engine = s.engine().clone();
    engine.set_did_rules([(DID.to_owned(), "Berlin".to_owned())].into());
    let out = engine.apply(Change::Upsert {
        at: t(5),
        participant: a.connected().0,
    });
    assert_eq!(
        without_facts(out.events),
        vec![c.started_in("120", NotDef, 1)]
    );
}

#[test]
fn a_reconnecting_device_keeps_its_part() {
    let c = Expect::call(782);
    let a = inbound(1, "120", 782);
    let again = inbound(9, "120", 782).connected();
    let mut s = Script::new();
    s.at(0.0)
        .up(&a)
        .at(5.0)
        .up(&a.connected())
        .at(30.0)
        .rm(&a)
        .at(31.0)
        .up(&again);
    s.at(65.0).rm(&again).settle();
    assert_eq!(
        s.events(),
        vec![
            c.ringing("120", UserType::Ext, 0),
            c.started_in("120", NotDef, 1),
            c.ended_in("120", Ok, false, 60, 1, &answered("120", "00:01:00")),
        ]
    );
}

#[test]
fn a_second_device_of_the_talking_extension_joins_its_part() {
    let c = Expect::call(782);
    let desk = inbound(1, "120", 782);
    let mobile = inbound(9, "120", 782).connected();
    let mut s = Script::new();
    s.at(0.0)
        .up(&desk)
        .at(5.0)
        .up(&desk.connected())
        .at(20.0)
        .up(&mobile);
    s.at(30.0).rm(&desk).at(65.0).rm(&mobile).settle();
    assert_eq!(
        s.events(),
        vec![
            c.ringing("120", UserType::Ext, 0),
            c.started_in("120", NotDef, 1),
            c.ended_in("120", Ok, false, 60, 1, &answered("120", "00:01:00")),
        ]
    );
}

#[test]
fn changes_not_saved_are_taken_again() {
    use crate::calls::Engine;
    let mut engine = Engine::new(config());
    engine.track_changes();
    engine.apply(Change::Snapshot {
        at: T0.parse().unwrap(),
        dns: dns(),
        participants: vec![inbound(1, "120", 782).0],
    });
    let changes = engine.take_changes();
    assert_eq!(changes.call_records().len(), 1);
    assert!(changes.dns_record().is_some());
    assert!(engine.take_changes().is_empty(), "taken once");
    engine.retouch(&changes);
    let again = engine.take_changes();
    assert_eq!(again, changes, "the same parts, in their state now");
}

/// Item by item, a leg's statuses (at seconds from the first upsert; `None` = removed) and the
/// events they give. Statuses 3CX does not document (`Unknown`) change nothing: a talking leg
/// goes on talking, any other leg waits for a known status. Hold (`Hold`/`Held`) or a leg that
/// stays `Connected` give the same events.
#[test]
fn unknown_and_hold_statuses() {
    let c = Expect::call(782);
    let ringing = c.ringing("120", UserType::Ext, 0);
    let started = c.started_in("120", NotDef, 1);
    let talked = c.ended_in("120", Ok, false, 60, 1, &answered("120", "00:01:00"));
    let missed = c.ended_in(
        "120",
        Missed,
        false,
        0,
        0,
        "CompanyDID: missed incoming call from 425630434343 to 120",
    );
    let talk = || vec![ringing.clone(), started.clone(), talked.clone()];
    type Steps = &'static [(f64, Option<ParticipantStatus>)];
    #[rustfmt::skip]
    let cases: [(Steps, Vec<CallEvent>); 10] = [
        (&[(0.0, Some(Ringing)), (5.0, Some(Connected)), (65.0, None)], talk()),
        (&[(0.0, Some(Ringing)), (5.0, Some(Connected)), (20.0, Some(Hold)), (40.0, Some(Connected)), (65.0, None)], talk()),
        (&[(0.0, Some(Ringing)), (5.0, Some(Connected)), (20.0, Some(Held)), (40.0, Some(Connected)), (65.0, None)], talk()),
        (&[(0.0, Some(Ringing)), (5.0, Some(Connected)), (20.0, Some(Hold)), (65.0, None)], talk()),
        (&[(0.0, Some(Ringing)), (5.0, Some(Connected)), (20.0, Some(Unknown)), (40.0, Some(Connected)), (65.0, None)], talk()),
        (&[(0.0, Some(Ringing)), (5.0, Some(Connected)), (20.0, Some(Unknown)), (65.0, None)], talk()),
        (&[(0.0, Some(Unknown)), (1.0, Some(Ringing)), (5.0, Some(Connected)), (65.0, None)], talk()),
        (&[(0.0, Some(Ringing)), (3.0, Some(Unknown)), (20.0, None)], vec![ringing.clone(), missed.clone()]),
        (&[(0.0, Some(Unknown)), (5.0, Some(Connected)), (65.0, None)], vec![started.clone(), talked.clone()]),
        (&[(0.0, Some(Unknown)), (20.0, None)], vec![]),
    ];
    for (steps, expected) in cases {
        let a = inbound(1, "120", 782);
        let mut s = Script::new();
        for &(at, status) in steps {
            match status {
                Some(status) => s.at(at).up(&a.status(status)),
                None => s.at(at).rm(&a),
            };
        }
        s.settle();
        assert_eq!(s.events(), expected, "{steps:?}");
    }
}

/// An outbound leg whose first upserts show no party is undecided until the party is known or
/// it connects: then `dialing` comes first, with the party's number, whether internal calls
/// are reported or not. Decided internal, it has sent nothing.
#[test]
fn an_outbound_leg_without_a_party_waits_for_it() {
    let c = Expect::call(790);
    let o = outbound(1, "120", 790);
    let partyless = outbound_partyless(1, "120", 790);
    let answered_out = c.ended_out(
        "120",
        Ok,
        false,
        60,
        1,
        "answered outgoing call from 120 to 425630434343, 00:01:00",
    );
    let external = vec![
        c.dialing("120", 0),
        c.started_out("120", NotDef, 1),
        answered_out,
    ];
    let to_121 = Expect {
        caller: "121",
        did: "",
        ..c.clone()
    };
    let internal = vec![
        to_121.dialing("120", 0),
        to_121.started_out("120", NotDef, 1),
        to_121.ended_out(
            "120",
            Ok,
            false,
            60,
            1,
            "answered outgoing call from 120 to 121, 00:01:00",
        ),
    ];
    let partyless_2 = || {
        Leg(crate::callcontrol::Participant {
            party_caller_id: "0121".into(),
            ..partyless.0.clone()
        })
    };
    // (report internal calls, the upserts after time 0, up to the answer at 10 s, expected)
    #[rustfmt::skip]
    let cases: [(bool, Vec<Leg>, Vec<CallEvent>); 8] = [
        // The party appears while dialing, or only once connected.
        (false, vec![partyless.clone(), o.clone(), o.connected()], external.clone()),
        (false, vec![partyless.clone(), partyless.clone(), o.connected()], external.clone()),
        (true, vec![partyless.clone(), o.clone(), o.connected()], external.clone()),
        (true, vec![partyless.clone(), o.connected()], external.clone()),
        // The party is another extension.
        (false, vec![partyless_2(), o.party_ext("121"), o.party_ext("121").connected()], vec![]),
        (false, vec![partyless_2(), o.party_ext("121").connected()], vec![]),
        (true, vec![partyless_2(), o.party_ext("121"), o.party_ext("121").connected()], internal.clone()),
        (true, vec![partyless_2(), o.party_ext("121").connected()], internal.clone()),
    ];
    for (report_internal_calls, upserts, expected) in cases {
        let mut s = Script::with(EngineConfig {
            report_internal_calls,
            ..config()
        });
        let last = upserts.len() - 1;
        for (i, leg) in upserts.iter().enumerate() {
            let at = if i == last { 10.0 } else { i as f64 };
            s.at(at).up(leg);
        }
        s.at(70.0).rm(&o).settle();
        assert_eq!(
            s.events(),
            expected,
            "report internal calls: {report_internal_calls}, {upserts:?}"
        );
    }
}

/// A leg that never shows its party and never connects was neither an external nor an internal
/// call: nothing is reported (`docs/decisions.md`).
#[test]
fn an_outbound_leg_that_never_shows_a_party_is_silent() {
    for report_internal_calls in [false, true] {
        let mut s = Script::with(EngineConfig {
            report_internal_calls,
            ..config()
        });
        let partyless = outbound_partyless(1, "120", 790);
        s.at(0.0).up(&partyless).at(20.0).rm(&partyless).settle();
        assert_eq!(s.events(), vec![], "{report_internal_calls}");
        assert_eq!(s.engine().active_calls(), 0);
    }
}

/// `did` by source: `party_did` wins over the trunk's entry; a trunk without one gives no DID;
/// an entry that is no rule's number is reported as the number.
#[test]
fn did_comes_from_party_did_else_the_trunk() {
    let on_trunk =
        |trunk: &str, did: &str, callid: u64| inbound(1, "120", callid).with_trunk(trunk).did(did);
    #[rustfmt::skip]
    let cases = [
        (on_trunk(TRUNK, DID, 801),       RULE),
        (on_trunk(TRUNK, "", 802),        RULE),
        (on_trunk(TRUNK, "4940999", 803), "4940999"),
        (on_trunk("10008", "", 804),      ""),
        (on_trunk("10009", "", 805),      "+4930555"),
    ];
    for (leg, did) in cases {
        let mut config = config();
        config.trunk_dids.insert("10009".into(), "+4930555".into());
        let mut s = Script::with(config);
        s.at(0.0).up(&leg);
        let c = Expect {
            did,
            ..Expect::call(leg.0.callid)
        };
        assert_eq!(
            s.events(),
            vec![c.ringing("120", UserType::Ext, 0)],
            "{leg:?}"
        );
    }
}

#[test]
fn outgoing_calls_have_no_did_even_on_a_trunk_with_one() {
    let c = Expect::call(790);
    let mut s = Script::new();
    s.at(0.0).up(&outbound(1, "120", 790).did(DID));
    assert_eq!(s.events(), vec![c.dialing("120", 0)]);
}

/// The facts of an event (contract 0.2), times in seconds from the script's start.
fn facts(
    (offered, answered, ended): (u64, Option<u64>, Option<u64>),
    queue: Option<&str>,
) -> crate::calls::event::PartFacts {
    crate::calls::event::PartFacts {
        call_started_at: 0,
        offered_at: offered,
        answered_at: answered,
        ended_at: ended,
        queue: queue.map(str::to_owned),
        internal: false,
    }
}

#[test]
fn queue_agents_get_the_queue_and_the_times_of_their_part() {
    let q = queue_leg(10, "800", 783);
    let [a1, a2, a3] =
        [(11, "121"), (12, "122"), (13, "123")].map(|(id, dn)| inbound(id, dn, 783).queue("800"));
    let mut s = Script::new();
    s.at(0.0).up(&q).up(&a1).up(&a2);
    s.at(3.0).up(&a3);
    s.at(8.0).up(&a2.connected()).rm(&a1).rm(&a3).rm(&q);
    s.at(38.0).rm(&a2).settle();
    let q800 = Some("800");
    assert_eq!(
        s.facts(),
        vec![
            ("ringing", "121".into(), facts((0, None, None), q800)),
            ("ringing", "122".into(), facts((0, None, None), q800)),
            ("ringing", "123".into(), facts((3, None, None), q800)),
            (
                "incomingcall_started",
                "122".into(),
                facts((0, Some(8), None), q800)
            ),
            (
                "incoming",
                "122".into(),
                facts((0, Some(8), Some(38)), q800)
            ),
        ]
    );
}

#[test]
fn a_call_missed_at_queue_level_began_with_the_call() {
    let q = queue_leg(10, "800", 784);
    let a = inbound(11, "121", 784).queue("800");
    let mut s = Script::new();
    s.at(0.0).up(&q).at(2.0).up(&a);
    s.at(40.0).rm(&a).rm(&q).settle();
    assert_eq!(
        s.facts(),
        vec![
            ("ringing", "121".into(), facts((2, None, None), Some("800"))),
            (
                "incoming",
                "800".into(),
                facts((0, None, Some(40)), Some("800"))
            ),
        ]
    );
}

#[test]
fn an_attended_transfer_target_is_offered_when_it_joins() {
    let a = inbound(1, "120", 786);
    let b = inbound(5, "130", 786).referred_by("120").connected();
    let mut s = Script::new();
    s.at(0.0).up(&a).at(5.0).up(&a.connected());
    s.at(50.0).up(&b).rm(&a);
    s.at(110.0).rm(&b).settle();
    assert_eq!(
        s.facts(),
        vec![
            ("ringing", "120".into(), facts((0, None, None), None)),
            (
                "incomingcall_started",
                "120".into(),
                facts((0, Some(5), None), None)
            ),
            (
                "incoming",
                "120".into(),
                facts((0, Some(5), Some(50)), None)
            ),
            (
                "incomingcall_started",
                "130".into(),
                facts((50, Some(50), None), None)
            ),
            (
                "incoming",
                "130".into(),
                facts((50, Some(50), Some(110)), None)
            ),
        ]
    );
}

#[test]
fn the_times_survive_a_restart() {
    let a = inbound(1, "120", 791);
    let mut s = Script::new();
    s.at(0.0).up(&a).at(5.0).up(&a.connected());
    s.at(20.0).restart();
    s.at(70.0).rm(&a).settle();
    let ended = s.facts().pop().unwrap();
    assert_eq!(
        ended,
        (
            "incoming",
            "120".into(),
            facts((0, Some(5), Some(70)), None)
        )
    );
}

#[test]
fn internal_calls_say_so() {
    let config = EngineConfig {
        report_internal_calls: true,
        ..config()
    };
    let a = inbound(1, "120", 800).party_ext("121");
    let mut s = Script::with(config);
    s.at(0.0).up(&a).at(30.0).rm(&a).settle();
    assert!(
        s.facts().iter().all(|(_, _, f)| f.internal),
        "{:?}",
        s.facts()
    );
    assert_eq!(s.facts().len(), 2);
}

#[test]
fn call_state_saved_before_contract_0_2_reads_back() {
    let a = inbound(1, "120", 791);
    let mut s = Script::new();
    s.at(0.0).up(&a).at(5.0).up(&a.connected());
    let state = s.engine().state();
    let mut json = serde_json::to_value(&state).unwrap();
    let text = json.to_string();
    assert!(
        text.contains("first_seen") && text.contains("offered_at"),
        "{text}"
    );
    strip(&mut json, &["first_seen", "offered_at", "queue"]);
    let old: crate::calls::EngineState = serde_json::from_value(json).unwrap();
    let mut engine = crate::calls::Engine::restore(config(), old);
    let remove = Change::Remove {
        at: t(65),
        dn: "120".into(),
        participant_id: 1,
    };
    assert!(engine.apply(remove).events.is_empty());
    let events = engine.tick(t(70)).events;
    let [CallEvent::Ended(ended)] = events.as_slice() else {
        panic!("{events:?}")
    };
    // The call's first sighting is unknown: the change after the restart stands in.
    let ms = |secs| crate::calls::event::unix_ms(t(secs));
    let expected = crate::calls::event::PartFacts {
        call_started_at: ms(65),
        offered_at: ms(65),
        answered_at: Some(ms(5)),
        ended_at: Some(ms(65)),
        queue: None,
        internal: false,
    };
    assert_eq!(ended.facts, expected);
    assert_eq!(ended.duration_secs, 60);
}

/// Removes `keys` from every object in `value`.
fn strip(value: &mut serde_json::Value, keys: &[&str]) {
    match value {
        serde_json::Value::Object(map) => {
            keys.iter().for_each(|k| _ = map.remove(*k));
            map.values_mut().for_each(|v| strip(v, keys));
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| strip(v, keys)),
        _ => {}
    }
}

#[test]
fn a_repeated_upsert_touches_nothing() {
    let a = inbound(1, "120", 782);
    let mut s = Script::new();
    s.at(0.0).up(&a);
    let mut engine = s.engine().clone();
    engine.track_changes();
    engine.take_changes();
    let repeat = engine.apply(Change::Upsert {
        at: t(1),
        participant: a.0.clone(),
    });
    assert_eq!(repeat, crate::calls::Output::default());
    assert!(
        engine.take_changes().is_empty(),
        "a repeat is not saved again"
    );
    let answer = engine.apply(Change::Upsert {
        at: t(2),
        participant: a.connected().0,
    });
    assert_eq!(answer.events.len(), 1);
    assert!(!engine.take_changes().is_empty(), "a real change is saved");
}
