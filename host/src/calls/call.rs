//! One call's state machine: participant legs in, events out (the rules are in `calls.rs`).

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::callcontrol::{DnType, Participant, ParticipantStatus};
use crate::calls::event::{
    CallEvent, CallId, Direction, Ended, FinishType, Offered, PartFacts, Started, TransferType,
    UserType, unix_ms,
};
use crate::calls::fields::{self, GroupKind};
use crate::calls::title::{self, Facts};
use crate::calls::{CallPart, FinishedCall, LiveCall};

/// What a call reads from the engine while it changes.
pub(super) struct Ctx<'a> {
    /// The grace period of `EngineConfig`.
    pub grace: SignedDuration,
    /// `EngineConfig::report_internal_calls`.
    pub report_internal_calls: bool,
    /// DID number -> inbound rule name.
    pub did_rules: &'a BTreeMap<String, String>,
    /// Trunk DN -> DID number, for calls without `party_did`.
    pub trunk_dids: &'a BTreeMap<String, String>,
    /// DN -> type, from the last snapshot.
    pub dns: &'a BTreeMap<String, DnType>,
}

/// When and how a leg or a whole call went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Departure {
    /// When the remove was seen (or the snapshot that no longer showed it was taken).
    pub at: Timestamp,
    /// True when a snapshot, not a remove, told us: the real end was earlier.
    pub approximate: bool,
}

/// One participant of the call, on any DN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Leg {
    /// Its latest state.
    participant: Participant,
    /// Order of appearance within the call; tells legs that came after an answer (successors).
    seq: u64,
    /// Whether its DN is a monitored extension.
    monitored: bool,
    /// `Some` while the leg is held back because it appeared while another extension still holds
    /// the call: the steps to replay once that extension leaves.
    held: Option<Vec<(Participant, Timestamp)>>,
}

/// One extension's involvement in the call under one link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Part {
    ext: String,
    /// The link of its events so far.
    link: u32,
    direction: Direction,
    caller_id: String,
    state: PartState,
    /// When it began ringing or dialing under its link (its answer, when it joined connected).
    /// `None` in state saved before contract 0.2: the call's first sighting stands in.
    #[serde(default)]
    offered_at: Option<Timestamp>,
    /// The queue or ring group it rings on behalf of.
    #[serde(default)]
    queue: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum PartState {
    /// Ringing or dialing while neither its party is known nor the call known external
    /// ([`fields::party_known`]): nothing reported yet. Its first upsert with a known status that
    /// shows the party, or connects, makes the offer (and then the answer); it ends silently if
    /// its legs go first.
    Undecided,
    /// Ringing or dialing; ends silently unless it is the call's last offer when the call ends.
    Offered,
    /// Talking since `start`; `after` is the leg counter at the answer.
    Talking { start: Timestamp, after: u64 },
    /// Its legs are gone; hang-up or transfer is decided within the grace period.
    Leaving { start: Timestamp, left: Departure },
}

/// The extension or group that was offered the call last, for the one `Missed` end event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LastOffer {
    link: u32,
    ext: String,
    direction: Direction,
    caller_id: String,
    group: Option<(GroupKind, String)>,
    /// When that offer began (`None` in state saved before contract 0.2).
    #[serde(default)]
    offered_at: Option<Timestamp>,
}

/// All participants with one `callid`, and what has been reported about them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Call {
    pbx_call_id: u64,
    stamp: String,
    /// When the host first saw the call (the instant `stamp` names). `None` in state saved
    /// before contract 0.2: set at the call's next change.
    #[serde(default)]
    first_seen: Option<Timestamp>,
    link: u32,
    /// Whether a transfer moved the link on at least once.
    transferred: bool,
    /// The last link under which an extension answered.
    answered_link: Option<u32>,
    /// Direction of the first extension part, for parts that join already connected.
    direction: Option<Direction>,
    /// The first external number seen on any leg; `None` for an internal call.
    external: Option<String>,
    /// The first non-empty `party_did` seen on any leg.
    did_number: String,
    /// The trunk DN (`party_dn`) of the first leg that showed an external party, for the
    /// `[trunks]` DID of calls without `party_did`.
    #[serde(default)]
    trunk: String,
    next_seq: u64,
    legs: Vec<Leg>,
    parts: Vec<Part>,
    /// `(extension, link)` pairs that got `ringing`/`dialing`.
    offered: BTreeSet<(String, u32)>,
    last_offer: Option<LastOffer>,
    /// Set while no leg is present.
    empty_since: Option<Departure>,
    talks: Vec<CallPart>,
    last_end: Option<Ended>,
    emitted: bool,
}

impl Call {
    /// A call first seen `at`, stamped `stamp` (`at` in the PBX's time zone).
    pub(super) fn new(pbx_call_id: u64, stamp: String, at: Timestamp) -> Self {
        Self {
            pbx_call_id,
            stamp,
            first_seen: Some(at),
            link: 0,
            transferred: false,
            answered_link: None,
            direction: None,
            external: None,
            did_number: String::new(),
            trunk: String::new(),
            next_seq: 0,
            legs: Vec::new(),
            parts: Vec::new(),
            offered: BTreeSet::new(),
            last_offer: None,
            empty_since: None,
            talks: Vec::new(),
            last_end: None,
            emitted: false,
        }
    }

    /// What the console shows of it.
    pub(super) fn live(&self) -> LiveCall {
        LiveCall {
            pbx_call_id: self.pbx_call_id,
            external: self.external.clone(),
            did: self.did_number.clone(),
            extensions: self
                .parts
                .iter()
                .map(|part| {
                    let state = match part.state {
                        PartState::Undecided => "undecided",
                        PartState::Offered => "offered",
                        PartState::Talking { .. } => "talking",
                        PartState::Leaving { .. } => "leaving",
                    };
                    (part.ext.clone(), state)
                })
                .collect(),
        }
    }

    /// The PBX's call id.
    pub(super) fn pbx_call_id(&self) -> u64 {
        self.pbx_call_id
    }

    /// `(dn, participant id)` of every leg present.
    pub(super) fn leg_keys(&self) -> impl Iterator<Item = (String, u64)> + '_ {
        self.legs
            .iter()
            .map(|l| (l.participant.dn.clone(), l.participant.id))
    }

    /// Whether a leg of this call is exactly `p`: an upsert of `p` would change nothing (beyond
    /// `first_seen` of a call saved by a version that did not keep it, which the call's next
    /// real change sets).
    pub(super) fn has_leg_as(&self, p: &Participant) -> bool {
        self.legs.iter().any(|leg| leg.participant == *p)
    }

    /// When `expire` has something to do next.
    pub(super) fn next_deadline(&self, grace: SignedDuration) -> Option<Timestamp> {
        let leaving = self.parts.iter().filter_map(|p| match p.state {
            PartState::Leaving { left, .. } => Some(left.at),
            _ => None,
        });
        leaving
            .chain(self.empty_since.map(|d| d.at))
            .min()
            .map(|at| at + grace)
    }

    /// A participant of this call appeared or changed.
    pub(super) fn upsert(
        &mut self,
        ctx: &Ctx<'_>,
        p: Participant,
        at: Timestamp,
        out: &mut Vec<CallEvent>,
    ) {
        self.first_seen.get_or_insert(at);
        self.learn(&p);
        if let Some(leg) = self.legs.iter_mut().find(|l| same_leg(&l.participant, &p)) {
            if leg.participant == p {
                return;
            }
            leg.participant = p.clone();
            match &mut leg.held {
                Some(steps) => steps.push((p, at)),
                None if leg.monitored => self.on_status(ctx, &p, at, out),
                None => {}
            }
            return;
        }
        let monitored = ctx.dns.get(&p.dn) == Some(&DnType::Wextension);
        self.empty_since = None;
        let seq = self.next_seq;
        self.next_seq += 1;
        let resumed = monitored && self.resume(&p.dn);
        let transferred_now = !resumed && self.leavers_transferred(ctx, out);
        // Another extension still talks: a transfer in progress. (A second device of the talking
        // extension itself just joins its part.)
        let hold_back = monitored
            && !resumed
            && !transferred_now
            && self
                .parts
                .iter()
                .any(|pt| pt.ext != p.dn && matches!(pt.state, PartState::Talking { .. }));
        self.legs.push(Leg {
            participant: p.clone(),
            seq,
            monitored,
            held: hold_back.then(|| vec![(p.clone(), at)]),
        });
        if monitored && !hold_back {
            self.on_status(ctx, &p, at, out);
        }
    }

    /// A participant of this call went away (unknown ones are ignored).
    pub(super) fn remove(
        &mut self,
        ctx: &Ctx<'_>,
        dn: &str,
        id: u64,
        left: Departure,
        out: &mut Vec<CallEvent>,
    ) {
        self.first_seen.get_or_insert(left.at);
        let Some(i) = self
            .legs
            .iter()
            .position(|l| l.participant.dn == dn && l.participant.id == id)
        else {
            return;
        };
        let leg = self.legs.remove(i);
        let still_there = self
            .legs
            .iter()
            .any(|l| l.participant.dn == dn && l.held.is_none());
        if leg.monitored && leg.held.is_none() && !still_there {
            self.part_left(ctx, dn, left, out);
        }
        if self.legs.is_empty() {
            self.empty_since = Some(left);
        }
    }

    /// Settles what the grace period decided by `now`; true when the call is over.
    pub(super) fn expire(
        &mut self,
        ctx: &Ctx<'_>,
        now: Timestamp,
        out: &mut Vec<CallEvent>,
    ) -> bool {
        self.first_seen.get_or_insert(now);
        let mut due: Vec<(Timestamp, String)> = self
            .parts
            .iter()
            .filter_map(|p| match p.state {
                PartState::Leaving { left, .. } if left.at + ctx.grace <= now => {
                    Some((left.at, p.ext.clone()))
                }
                _ => None,
            })
            .collect();
        due.sort();
        for (_, ext) in due {
            self.end_talk(ctx, &ext, false, out);
        }
        let Some(empty) = self.empty_since.filter(|e| e.at + ctx.grace <= now) else {
            return false;
        };
        // Parts leave no later than the last leg, so this only guards the invariant.
        let rest: Vec<String> = self.parts.iter().map(|p| p.ext.clone()).collect();
        for ext in rest {
            self.end_talk(ctx, &ext, false, out);
        }
        if self.answered_link != Some(self.link)
            && let Some(offer) = self.last_offer.clone().filter(|o| o.link == self.link)
        {
            self.end_missed(ctx, &offer, empty.approximate, out);
        }
        true
    }

    /// What the recordings matcher needs; `None` when the call produced no events.
    pub(super) fn finish(self) -> Option<FinishedCall> {
        self.emitted.then_some(FinishedCall {
            pbx_call_id: self.pbx_call_id,
            parts: self.talks,
            last_end: self.last_end,
        })
    }

    /// Takes the external number, its trunk and the DID from the first leg that shows them.
    fn learn(&mut self, p: &Participant) {
        if self.external.is_none() && p.party_dn_type == DnType::Wexternalline {
            self.external = Some(p.party_caller_id.clone());
            self.trunk.clone_from(&p.party_dn);
        }
        if self.did_number.is_empty() {
            self.did_number.clone_from(&p.party_did);
        }
    }

    /// A new leg on the DN of a leaving part: the same part goes on (e.g. a device reconnected).
    fn resume(&mut self, dn: &str) -> bool {
        let Some(part) = self.parts.iter_mut().find(|pt| pt.ext == dn) else {
            return false;
        };
        let PartState::Leaving { start, .. } = part.state else {
            return false;
        };
        part.state = PartState::Talking {
            start,
            after: self.next_seq,
        };
        true
    }

    /// A new leg while parts are leaving: they left by transfer. True when that happened.
    fn leavers_transferred(&mut self, ctx: &Ctx<'_>, out: &mut Vec<CallEvent>) -> bool {
        let mut leavers: Vec<(Timestamp, String)> = self
            .parts
            .iter()
            .filter_map(|p| match p.state {
                PartState::Leaving { left, .. } => Some((left.at, p.ext.clone())),
                _ => None,
            })
            .collect();
        if leavers.is_empty() {
            return false;
        }
        leavers.sort();
        for (_, ext) in leavers {
            self.end_talk(ctx, &ext, true, out);
        }
        self.next_link(ctx, out);
        true
    }

    /// The last leg of a monitored extension is gone.
    fn part_left(&mut self, ctx: &Ctx<'_>, dn: &str, left: Departure, out: &mut Vec<CallEvent>) {
        let Some(i) = self.parts.iter().position(|pt| pt.ext == dn) else {
            return;
        };
        match self.parts[i].state {
            PartState::Undecided | PartState::Offered => {
                self.parts.remove(i);
            }
            PartState::Talking { start, after } => {
                self.parts[i].state = PartState::Leaving { start, left };
                if self
                    .legs
                    .iter()
                    .any(|l| l.seq >= after && l.participant.dn != dn)
                {
                    self.end_talk(ctx, dn, true, out);
                    self.next_link(ctx, out);
                }
            }
            PartState::Leaving { .. } => {}
        }
    }

    /// A transfer happened: the link moves on and held-back legs are replayed under it.
    fn next_link(&mut self, ctx: &Ctx<'_>, out: &mut Vec<CallEvent>) {
        self.link += 1;
        self.transferred = true;
        let mut replay = Vec::new();
        for leg in &mut self.legs {
            replay.extend(leg.held.take().unwrap_or_default());
        }
        for (p, at) in replay {
            self.on_status(ctx, &p, at, out);
        }
    }

    /// A monitored, not held-back leg shows `p.status`. Statuses other than the known ones
    /// change nothing: a talking part goes on talking, any other leg waits for a known status.
    fn on_status(
        &mut self,
        ctx: &Ctx<'_>,
        p: &Participant,
        at: Timestamp,
        out: &mut Vec<CallEvent>,
    ) {
        let part = self.parts.iter().position(|pt| pt.ext == p.dn);
        let state = part.map(|i| self.parts[i].state);
        match p.status {
            ParticipantStatus::Unknown => {}
            _ if state == Some(PartState::Undecided) && (connected(p) || self.decidable(p)) => {
                self.decide(ctx, p, at, out);
            }
            ParticipantStatus::Ringing | ParticipantStatus::Dialing if part.is_none() => {
                let direction = match p.status {
                    ParticipantStatus::Dialing => Direction::Outgoing,
                    _ => Direction::Incoming,
                };
                if self.decidable(p) {
                    self.offer(ctx, p, direction, at, out);
                } else {
                    self.parts.push(Part {
                        ext: p.dn.clone(),
                        link: self.link,
                        direction,
                        caller_id: String::new(),
                        state: PartState::Undecided,
                        offered_at: Some(at),
                        queue: None,
                    });
                }
            }
            _ if connected(p) && matches!(state, Some(PartState::Offered) | None) => {
                self.answer(ctx, p, part, at, out);
            }
            _ => {}
        }
    }

    /// Whether `p`'s call can be told external or internal now: the call is known external, or
    /// the leg shows its party.
    fn decidable(&self, p: &Participant) -> bool {
        self.external.is_some() || fields::party_known(p)
    }

    /// The undecided part of `p`'s extension is decided: the offer in its first direction
    /// (reported only if the call is), then, if the leg connected, the answer.
    fn decide(&mut self, ctx: &Ctx<'_>, p: &Participant, at: Timestamp, out: &mut Vec<CallEvent>) {
        let Some(i) = self.parts.iter().position(|pt| pt.ext == p.dn) else {
            return;
        };
        let undecided = self.parts.remove(i);
        let offered_at = undecided.offered_at.unwrap_or(at);
        self.offer(ctx, p, undecided.direction, offered_at, out);
        if connected(p) {
            let part = self.parts.iter().position(|pt| pt.ext == p.dn);
            self.answer(ctx, p, part, at, out);
        }
    }

    /// Whether this call produces events at all.
    fn reportable(&self, ctx: &Ctx<'_>) -> bool {
        self.external.is_some() || ctx.report_internal_calls
    }

    fn offer(
        &mut self,
        ctx: &Ctx<'_>,
        p: &Participant,
        direction: Direction,
        at: Timestamp,
        out: &mut Vec<CallEvent>,
    ) {
        if !self.reportable(ctx) {
            return;
        }
        self.direction.get_or_insert(direction);
        let group = fields::group_of(p).filter(|_| direction == Direction::Incoming);
        let part = Part {
            ext: p.dn.clone(),
            link: self.link,
            direction,
            caller_id: fields::caller_id(p, self.external.as_deref()),
            state: PartState::Offered,
            offered_at: Some(at),
            queue: group.as_ref().map(|(_, dn)| dn.clone()),
        };
        self.last_offer = Some(LastOffer {
            link: self.link,
            ext: part.ext.clone(),
            direction,
            caller_id: part.caller_id.clone(),
            group,
            offered_at: Some(at),
        });
        if self.offered.insert((part.ext.clone(), self.link)) {
            let offered = Offered {
                id: self.id(self.link),
                caller_id: part.caller_id.clone(),
                did: self.did(ctx, direction),
                user: part.ext.clone(),
                user_type: match direction {
                    Direction::Incoming => fields::user_type(p),
                    Direction::Outgoing => UserType::Ext,
                },
                facts: self.facts(&part, None, None),
            };
            self.emit(
                match direction {
                    Direction::Incoming => CallEvent::Ringing(offered),
                    Direction::Outgoing => CallEvent::Dialing(offered),
                },
                out,
            );
        }
        self.parts.push(part);
    }

    fn answer(
        &mut self,
        ctx: &Ctx<'_>,
        p: &Participant,
        part: Option<usize>,
        at: Timestamp,
        out: &mut Vec<CallEvent>,
    ) {
        if part.is_none() && !self.reportable(ctx) {
            return;
        }
        let transferred_in = self.transferred || fields::referred_by_person(p);
        let transfer_type = match (part.is_some(), transferred_in) {
            (_, false) => TransferType::NotDef,
            (true, true) => TransferType::Blind,
            (false, true) => TransferType::Accomp,
        };
        self.link = self.link.max(1);
        self.answered_link = Some(self.link);
        let state = PartState::Talking {
            start: at,
            after: self.next_seq,
        };
        let i = match part {
            Some(i) => i,
            None => {
                let direction = *self.direction.get_or_insert(Direction::Incoming);
                self.parts.push(Part {
                    ext: p.dn.clone(),
                    link: self.link,
                    direction,
                    caller_id: fields::caller_id(p, self.external.as_deref()),
                    state,
                    offered_at: Some(at),
                    queue: fields::group_of(p).map(|(_, dn)| dn),
                });
                self.parts.len() - 1
            }
        };
        self.parts[i].link = self.link;
        self.parts[i].state = state;
        let part = &self.parts[i];
        let started = Started {
            id: self.id(self.link),
            direction: part.direction,
            caller_id: part.caller_id.clone(),
            user: part.ext.clone(),
            did: self.did(ctx, part.direction),
            transfer_type,
            facts: self.facts(part, Some(at), None),
        };
        self.emit(CallEvent::Started(started), out);
    }

    /// Ends a leaving part with `finishtype=Ok`.
    fn end_talk(&mut self, ctx: &Ctx<'_>, ext: &str, transfer: bool, out: &mut Vec<CallEvent>) {
        let Some(i) = self.parts.iter().position(|pt| pt.ext == ext) else {
            return;
        };
        let part = self.parts.remove(i);
        let PartState::Leaving { start, left } = part.state else {
            self.parts.insert(i, part);
            return;
        };
        let duration_secs = fields::duration_secs(start, left.at);
        let did = self.did(ctx, part.direction);
        let facts = Facts {
            direction: part.direction,
            did: &did,
            caller_id: &part.caller_id,
            user: &part.ext,
            finish: FinishType::Ok,
            transfer,
            duration_secs,
            group: None,
            approximate: left.approximate,
        };
        let ended = Ended {
            id: self.id(part.link),
            direction: part.direction,
            caller_id: part.caller_id.clone(),
            user: part.ext.clone(),
            did: did.clone(),
            finish_type: FinishType::Ok,
            transfer,
            duration_secs,
            title: title::ended(&facts),
            facts: self.facts(&part, Some(start), Some(left.at)),
        };
        self.talks.push(CallPart {
            id: ended.id.clone(),
            extension: part.ext,
            other_number: part.caller_id,
            talk_start: start,
            talk_end: left.at,
        });
        self.emit(CallEvent::Ended(ended), out);
    }

    /// The one `Missed` end event of a call that ended with its current link unanswered.
    fn end_missed(
        &mut self,
        ctx: &Ctx<'_>,
        offer: &LastOffer,
        approximate: bool,
        out: &mut Vec<CallEvent>,
    ) {
        let did = self.did(ctx, offer.direction);
        let (group, user) = match &offer.group {
            Some((kind, dn)) => (Some(*kind), dn.as_str()),
            None => (None, offer.ext.as_str()),
        };
        let call_started_at = self.call_started_at();
        let part_facts = PartFacts {
            call_started_at,
            // Missed at queue level: the queue's part began with the call.
            offered_at: match &offer.group {
                Some(_) => call_started_at,
                None => offer.offered_at.map_or(call_started_at, unix_ms),
            },
            answered_at: None,
            ended_at: Some(
                self.empty_since
                    .map_or(call_started_at, |left| unix_ms(left.at)),
            ),
            queue: offer.group.as_ref().map(|(_, dn)| dn.clone()),
            internal: self.external.is_none(),
        };
        let facts = Facts {
            direction: offer.direction,
            did: &did,
            caller_id: &offer.caller_id,
            user,
            finish: FinishType::Missed,
            transfer: false,
            duration_secs: 0,
            group,
            approximate,
        };
        let ended = Ended {
            id: self.id(offer.link),
            direction: offer.direction,
            caller_id: offer.caller_id.clone(),
            user: user.to_owned(),
            did: did.clone(),
            finish_type: FinishType::Missed,
            transfer: false,
            duration_secs: 0,
            title: title::ended(&facts),
            facts: part_facts,
        };
        self.emit(CallEvent::Ended(ended), out);
    }

    fn emit(&mut self, event: CallEvent, out: &mut Vec<CallEvent>) {
        if let CallEvent::Ended(ended) = &event {
            self.last_end = Some(ended.clone());
        }
        self.emitted = true;
        out.push(event);
    }

    /// [`Call::first_seen`] in Unix milliseconds (0 only for state that never saw a change
    /// since it was restored from a host older than contract 0.2).
    fn call_started_at(&self) -> u64 {
        self.first_seen.map_or(0, unix_ms)
    }

    /// The contract-0.2 facts of an event of `part`.
    fn facts(
        &self,
        part: &Part,
        answered: Option<Timestamp>,
        ended: Option<Timestamp>,
    ) -> PartFacts {
        let call_started_at = self.call_started_at();
        PartFacts {
            call_started_at,
            offered_at: part.offered_at.map_or(call_started_at, unix_ms),
            answered_at: answered.map(unix_ms),
            ended_at: ended.map(unix_ms),
            queue: part.queue.clone(),
            internal: self.external.is_none(),
        }
    }

    fn id(&self, link: u32) -> CallId {
        CallId {
            stamp: self.stamp.clone(),
            pbx_call_id: self.pbx_call_id,
            link,
        }
    }

    fn did(&self, ctx: &Ctx<'_>, direction: Direction) -> String {
        match direction {
            Direction::Incoming => fields::did(
                ctx.did_rules,
                fields::did_number(&self.did_number, &self.trunk, ctx.trunk_dids),
            ),
            Direction::Outgoing => String::new(),
        }
    }
}

/// Whether the leg talks: `Connected`, or on hold either way (`Hold`/`Held`).
fn connected(p: &Participant) -> bool {
    matches!(
        p.status,
        ParticipantStatus::Connected | ParticipantStatus::Hold | ParticipantStatus::Held
    )
}

/// Whether two participants are the same leg (participant ids are unique per DN while they live).
fn same_leg(a: &Participant, b: &Participant) -> bool {
    a.id == b.id && a.dn == b.dn
}
