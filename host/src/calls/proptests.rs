//! Property tests: random valid call histories, delivered with random duplicates, repeats, lost
//! frames healed by resnapshots, and restarts through JSON, must keep the event invariants.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

use crate::callcontrol::{Change, Participant};
use crate::calls::event::{CallEvent, Direction};
use crate::calls::script::{self, Leg, inbound, outbound, queue_leg};
use crate::calls::{Engine, EngineConfig};

const EXTS: [&str; 6] = ["120", "121", "122", "123", "130", "140"];

/// One call as the PBX would run it; times in seconds after the call starts.
#[derive(Debug, Clone)]
enum Plan {
    Direct {
        ext: usize,
        answer: Option<u8>,
        talk: u8,
        hold: bool,
    },
    Outbound {
        ext: usize,
        answer: Option<u8>,
        talk: u8,
    },
    Queue {
        agents: Vec<usize>,
        waves: u8,
        answer: Option<(usize, u8)>,
        talk: u8,
        queue_dn: bool,
    },
    Blind {
        from: usize,
        to: usize,
        target_first: bool,
        gap_ms: u16,
        answered: bool,
        talk: u8,
    },
    Attended {
        from: usize,
        to: usize,
        target_first: bool,
        talk: u8,
    },
}

/// How the host receives one step.
#[derive(Debug, Clone, Copy)]
enum Noise {
    Plain,
    Twice,
    RepeatAll,
    Resnapshot,
    Outage(usize),
    Restart,
}

#[derive(Debug, Clone)]
enum Step {
    Up(Box<Participant>),
    Rm(String, u64),
}

fn plan() -> impl Strategy<Value = Plan> {
    let ext = 0..EXTS.len();
    let secs = 1u8..60;
    prop_oneof![
        (
            ext.clone(),
            proptest::option::of(1u8..20),
            secs.clone(),
            any::<bool>()
        )
            .prop_map(|(ext, answer, talk, hold)| Plan::Direct {
                ext,
                answer,
                talk,
                hold
            }),
        (ext.clone(), proptest::option::of(1u8..20), secs.clone())
            .prop_map(|(ext, answer, talk)| Plan::Outbound { ext, answer, talk }),
        (
            proptest::sample::subsequence((0..EXTS.len()).collect::<Vec<_>>(), 1..=4),
            1u8..=3,
            proptest::option::of((0usize..4, 1u8..9)),
            secs.clone(),
            any::<bool>(),
        )
            .prop_map(|(agents, waves, answer, talk, queue_dn)| Plan::Queue {
                agents,
                waves,
                answer,
                talk,
                queue_dn
            }),
        (
            ext.clone(),
            1usize..EXTS.len(),
            any::<bool>(),
            0u16..1500,
            any::<bool>(),
            secs.clone()
        )
            .prop_map(
                |(from, shift, target_first, gap_ms, answered, talk)| Plan::Blind {
                    from,
                    to: (from + shift) % EXTS.len(),
                    target_first,
                    gap_ms,
                    answered,
                    talk,
                }
            ),
        (ext, 1usize..EXTS.len(), any::<bool>(), secs).prop_map(
            |(from, shift, target_first, talk)| {
                Plan::Attended {
                    from,
                    to: (from + shift) % EXTS.len(),
                    target_first,
                    talk,
                }
            }
        ),
    ]
}

fn noise() -> impl Strategy<Value = Noise> {
    prop_oneof![
        12 => Just(Noise::Plain),
        2 => Just(Noise::Twice),
        1 => Just(Noise::RepeatAll),
        1 => Just(Noise::Resnapshot),
        1 => (1usize..8).prop_map(Noise::Outage),
        2 => Just(Noise::Restart),
    ]
}

/// Builds the socket steps of one plan, as `(ms since the history began, step)`.
struct Builder {
    steps: Vec<(i64, Step)>,
    next_id: u64,
}

impl Builder {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn up(&mut self, ms: i64, leg: &Leg) {
        self.steps.push((ms, Step::Up(Box::new(leg.0.clone()))));
    }

    fn rm(&mut self, ms: i64, leg: &Leg) {
        self.steps.push((ms, Step::Rm(leg.0.dn.clone(), leg.0.id)));
    }

    fn add(&mut self, plan: &Plan, callid: u64, t: i64) {
        let s = |secs: u8| i64::from(secs) * 1000;
        match plan {
            Plan::Direct {
                ext,
                answer,
                talk,
                hold,
            } => {
                let a = inbound(self.id(), EXTS[*ext], callid);
                self.up(t, &a);
                match answer {
                    Some(after) => {
                        let t = t + s(*after);
                        self.up(t, &a.connected());
                        if *hold {
                            self.up(t + 500, &a.hold());
                            self.up(t + 900, &a.connected());
                        }
                        self.rm(t + 1000 + s(*talk), &a);
                    }
                    None => self.rm(t + s(*talk), &a),
                }
            }
            Plan::Outbound { ext, answer, talk } => {
                let o = outbound(self.id(), EXTS[*ext], callid);
                self.up(t, &o);
                match answer {
                    Some(after) => {
                        self.up(t + s(*after), &o.connected());
                        self.rm(t + s(*after) + s(*talk), &o);
                    }
                    None => self.rm(t + s(*talk), &o),
                }
            }
            Plan::Queue {
                agents,
                waves,
                answer,
                talk,
                queue_dn,
            } => {
                let q = queue_leg(self.id(), "800", callid);
                if *queue_dn {
                    self.up(t, &q);
                }
                let mut end = t;
                for wave in 0..*waves {
                    let start = t + i64::from(wave) * 11_000;
                    let legs: Vec<Leg> = agents
                        .iter()
                        .map(|&i| inbound(self.id(), EXTS[i], callid).queue("800"))
                        .collect();
                    legs.iter().for_each(|l| self.up(start, l));
                    let last = wave + 1 == *waves;
                    match answer.filter(|_| last) {
                        Some((who, after)) => {
                            let who = who % legs.len();
                            let at = start + s(after);
                            self.up(at, &legs[who].connected());
                            for (i, l) in legs.iter().enumerate() {
                                self.rm(if i == who { at + s(*talk) } else { at }, l);
                            }
                            end = at;
                        }
                        None => {
                            legs.iter().for_each(|l| self.rm(start + 10_000, l));
                            end = start + 10_000;
                        }
                    }
                }
                if *queue_dn {
                    self.rm(end, &q);
                }
            }
            Plan::Blind {
                from,
                to,
                target_first,
                gap_ms,
                answered,
                talk,
            } => {
                let a = inbound(self.id(), EXTS[*from], callid);
                let b = inbound(self.id(), EXTS[*to], callid).referred_by(EXTS[*from]);
                self.up(t, &a);
                self.up(t + 2000, &a.connected());
                let at = t + 2000 + s(*talk);
                let (first, second) = (at, at + i64::from(*gap_ms));
                if *target_first {
                    self.up(first, &b);
                    self.rm(second, &a);
                } else {
                    self.rm(first, &a);
                    self.up(second, &b);
                }
                if *answered {
                    self.up(second + 3000, &b.connected());
                    self.rm(second + 3000 + s(*talk), &b);
                } else {
                    self.rm(second + 20_000, &b);
                }
            }
            Plan::Attended {
                from,
                to,
                target_first,
                talk,
            } => {
                let (x, y) = (EXTS[*from], EXTS[*to]);
                let a = inbound(self.id(), x, callid);
                let ca = inbound(self.id(), x, callid + 5000).party_ext(y).dialing();
                let cb = inbound(self.id(), y, callid + 5000).party_ext(x);
                let b = inbound(self.id(), y, callid).referred_by(x).connected();
                self.up(t, &a);
                self.up(t + 2000, &a.connected());
                self.up(t + 5000, &a.hold());
                self.up(t + 5000, &ca);
                self.up(t + 5000, &cb);
                self.up(t + 7000, &cb.connected());
                self.up(t + 7000, &ca.connected());
                let at = t + 7000 + s(*talk);
                if *target_first {
                    self.up(at, &b);
                }
                self.rm(at, &a);
                self.rm(at, &ca);
                self.rm(at, &cb);
                if !*target_first {
                    self.up(at, &b);
                }
                self.rm(at + s(*talk), &b);
            }
        }
    }
}

fn history(plans: &[(Plan, u32)]) -> Vec<(i64, Step)> {
    let mut b = Builder {
        steps: Vec::new(),
        next_id: 0,
    };
    for (i, (plan, start)) in plans.iter().enumerate() {
        b.add(plan, 1000 + i as u64, i64::from(*start) * 100);
    }
    b.steps.sort_by_key(|(ms, _)| *ms);
    b.steps
}

/// Drives an engine like the host does, returning every event and the calls left at the end.
fn run(
    steps: &[(i64, Step)],
    noise: &[Noise],
    config: &EngineConfig,
    restarts: bool,
) -> (Vec<CallEvent>, usize) {
    let t0: Timestamp = script::T0.parse().unwrap();
    let mut engine = Engine::new(config.clone());
    engine.track_changes();
    let mut saved = script::Saved::default();
    let mut events = Vec::new();
    let mut truth: BTreeMap<(String, u64), Participant> = BTreeMap::new();
    let snapshot = |truth: &BTreeMap<_, Participant>, at| Change::Snapshot {
        at,
        dns: script::dns(),
        participants: truth.values().cloned().collect(),
    };
    events.extend(engine.apply(snapshot(&truth, t0)).events);
    let mut outage_until = None;
    let mut at = t0;
    for (i, (ms, step)) in steps.iter().enumerate() {
        at = t0 + SignedDuration::from_millis(*ms);
        while let Some(deadline) = engine.next_deadline().filter(|d| *d <= at) {
            events.extend(engine.tick(deadline).events);
        }
        let change = match step {
            Step::Up(p) => {
                truth.insert((p.dn.clone(), p.id), (**p).clone());
                Change::Upsert {
                    at,
                    participant: (**p).clone(),
                }
            }
            Step::Rm(dn, id) => {
                truth.remove(&(dn.clone(), *id));
                Change::Remove {
                    at,
                    dn: dn.clone(),
                    participant_id: *id,
                }
            }
        };
        if let Some(until) = outage_until {
            if i >= until {
                outage_until = None;
                events.extend(engine.apply(snapshot(&truth, at)).events);
                engine.assert_indexes_match_calls();
            }
            continue;
        }
        let noise = noise
            .get(i % noise.len().max(1))
            .copied()
            .unwrap_or(Noise::Plain);
        if let Noise::Outage(n) = noise {
            outage_until = Some(i + n);
            continue;
        }
        events.extend(engine.apply(change.clone()).events);
        match noise {
            Noise::Twice => events.extend(engine.apply(change).events),
            Noise::RepeatAll => {
                for p in truth.values() {
                    let participant = p.clone();
                    events.extend(engine.apply(Change::Upsert { at, participant }).events);
                }
            }
            Noise::Resnapshot => events.extend(engine.apply(snapshot(&truth, at)).events),
            Noise::Restart if restarts => {
                saved.apply(&engine.take_changes());
                engine = saved.restore(&engine, config);
            }
            _ => {}
        }
        engine.assert_indexes_match_calls();
    }
    if outage_until.is_some() {
        events.extend(engine.apply(snapshot(&truth, at)).events);
    }
    events.extend(engine.tick(at + SignedDuration::from_secs(60)).events);
    engine.assert_indexes_match_calls();
    (events, engine.active_calls())
}

type CallKey = (String, u64);

fn call_of(e: &CallEvent) -> CallKey {
    (e.call_id().stamp.clone(), e.call_id().pbx_call_id)
}

fn check(events: &[CallEvent], active: usize) -> Result<(), TestCaseError> {
    // (a) no event twice.
    let mut keys = BTreeSet::new();
    for e in events {
        prop_assert!(keys.insert(e.key()), "sent twice: {:?}", e);
    }
    // (b) every started has an end with the same id and user, after it.
    for (i, e) in events.iter().enumerate() {
        if let CallEvent::Started(s) = e {
            let ended = events[i..]
                .iter()
                .any(|x| matches!(x, CallEvent::Ended(x) if x.id == s.id && x.user == s.user));
            prop_assert!(ended, "started without end: {:?}", s);
        }
    }
    // (c) every call is over once all legs are gone and the grace ran out, with an end event.
    prop_assert_eq!(active, 0);
    let with_events: BTreeSet<CallKey> = events.iter().map(call_of).collect();
    let with_end: BTreeSet<CallKey> = events
        .iter()
        .filter(|e| matches!(e, CallEvent::Ended(_)))
        .map(call_of)
        .collect();
    prop_assert_eq!(&with_events, &with_end);
    // (d) links never decrease within a call.
    let mut link: BTreeMap<CallKey, u32> = BTreeMap::new();
    for e in events {
        let last = link.entry(call_of(e)).or_default();
        prop_assert!(e.call_id().link >= *last, "link went back: {:?}", e);
        *last = e.call_id().link;
    }
    // Outgoing events never carry a did.
    for e in events {
        if let CallEvent::Ended(x) = e {
            prop_assert!(x.direction == Direction::Incoming || x.did.is_empty());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_histories_keep_the_invariants(
        plans in proptest::collection::vec((plan(), 0u32..1200), 1..8),
        noise in proptest::collection::vec(noise(), 1..64),
        report_internal_calls in any::<bool>(),
    ) {
        let config = EngineConfig { report_internal_calls, ..script::config() };
        let steps = history(&plans);
        let (events, active) = run(&steps, &noise, &config, true);
        check(&events, active)?;
        // (e) a restart through JSON changes nothing at all.
        let (without_restarts, _) = run(&steps, &noise, &config, false);
        prop_assert_eq!(events, without_restarts);
    }

    #[test]
    fn clean_delivery_reports_every_plan(plans in proptest::collection::vec((plan(), 0u32..1200), 1..8)) {
        let config = script::config();
        let (events, active) = run(&history(&plans), &[Noise::Plain], &config, false);
        check(&events, active)?;
        // Every external call produced events, and each ended exactly as often as it was held.
        let calls: BTreeSet<u64> = events.iter().map(|e| e.call_id().pbx_call_id).collect();
        prop_assert_eq!(calls.len(), plans.len());
        let starts = events.iter().filter(|e| matches!(e, CallEvent::Started(_))).count();
        let talks = events
            .iter()
            .filter(|e| matches!(e, CallEvent::Ended(x) if x.finish_type == crate::calls::event::FinishType::Ok))
            .count();
        prop_assert_eq!(starts, talks);
    }
}
