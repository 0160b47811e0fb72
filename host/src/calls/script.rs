//! A small test DSL: script participant sequences with times, collect what the engine sends.
//!
//! ```ignore
//! let mut s = Script::new();
//! let a = inbound(1, "120", 782);
//! s.at(0.0).up(&a).at(5.0).up(&a.connected()).at(65.0).rm(&a).settle();
//! assert_eq!(s.events(), vec![...]);
//! ```
//! `at` behaves like the host: it calls `tick` at every deadline on the way to the new time.

use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::callcontrol::{Change, Dn, DnType, Participant, ParticipantStatus};
use crate::calls::event::{
    CallEvent, CallId, Direction, Ended, FinishType, Offered, PartFacts, Started, TransferType,
    UserType,
};
use crate::calls::{Engine, EngineConfig, EngineState, FinishedCall, Output, StateChanges};

/// The external number of the scenarios.
pub(super) const X: &str = "425630434343";
/// The DID it dials, whose inbound rule is [`RULE`].
pub(super) const DID: &str = "4930123456";
/// The inbound rule's name.
pub(super) const RULE: &str = "CompanyDID";
/// The trunk external parties call on: its `[trunks]` entry is [`DID`], written with `+`.
pub(super) const TRUNK: &str = "10007";
/// Time 0 of every script; with the UTC zone its stamp is [`STAMP`].
pub(super) const T0: &str = "2021-07-01T16:56:49Z";
/// The stamp of calls first seen at [`T0`].
pub(super) const STAMP: &str = "210701165649";

/// The DNs the test PBX shows: extensions 120–123, 130, 140, queue 800, ring group 600, the API's
/// route point.
pub(super) fn dns() -> Vec<Dn> {
    let ext = ["120", "121", "122", "123", "130", "140"].map(|dn| (dn, DnType::Wextension));
    let others = [
        ("800", DnType::Wqueue),
        ("600", DnType::Wringgroup),
        ("ROUTER", DnType::Wroutepoint),
    ];
    ext.into_iter()
        .chain(others)
        .map(|(dn, dn_type)| Dn {
            dn: dn.to_owned(),
            dn_type,
        })
        .collect()
}

/// The configuration of the scripts: UTC, `CompanyDID` rule, [`TRUNK`] on `+`[`DID`], 2 s grace.
pub(super) fn config() -> EngineConfig {
    EngineConfig {
        time_zone: TimeZone::UTC,
        did_rules: BTreeMap::from([(DID.to_owned(), RULE.to_owned())]),
        trunk_dids: BTreeMap::from([(TRUNK.to_owned(), format!("+{DID}"))]),
        ..EngineConfig::default()
    }
}

/// Where an inbound call's DID comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DidFrom {
    /// The legs carry it in `party_did`.
    PartyDid,
    /// `party_did` is empty, as 3CX V20 sends it: the `[trunks]` entry of [`TRUNK`] gives it.
    Trunk,
}

/// Both DID sources: every inbound scenario must give the same events with either.
pub(super) const DID_SOURCES: [DidFrom; 2] = [DidFrom::PartyDid, DidFrom::Trunk];

/// One leg as the socket shows it; the builder methods return a changed copy.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Leg(pub Participant);

/// An incoming external call ringing on `dn`.
pub(super) fn inbound(id: u64, dn: &str, callid: u64) -> Leg {
    Leg(Participant {
        id,
        status: ParticipantStatus::Ringing,
        dn: dn.to_owned(),
        party_caller_name: X.to_owned(),
        party_dn: TRUNK.to_owned(),
        party_caller_id: X.to_owned(),
        party_did: DID.to_owned(),
        party_dn_type: DnType::Wexternalline,
        callid,
        legid: id,
        ..Participant::default()
    })
}

/// An outgoing external call dialled by `dn`.
pub(super) fn outbound(id: u64, dn: &str, callid: u64) -> Leg {
    let Leg(p) = inbound(id, dn, callid);
    Leg(Participant {
        status: ParticipantStatus::Dialing,
        party_did: String::new(),
        ..p
    })
}

/// An outgoing call dialled by `dn` as its first upsert may show it: no party yet
/// (`party_dn` `""`, `party_dn_type` `None`), only the dialled digits.
pub(super) fn outbound_partyless(id: u64, dn: &str, callid: u64) -> Leg {
    let Leg(p) = outbound(id, dn, callid);
    Leg(Participant {
        party_caller_name: String::new(),
        party_dn: String::new(),
        party_caller_id: format!("0{X}"),
        party_dn_type: DnType::None,
        ..p
    })
}

/// The queue DN's own leg: it shows the caller as connected while agents ring.
pub(super) fn queue_leg(id: u64, queue: &str, callid: u64) -> Leg {
    inbound(id, queue, callid).connected()
}

impl Leg {
    fn with(&self, f: impl FnOnce(&mut Participant)) -> Leg {
        let mut p = self.0.clone();
        f(&mut p);
        Leg(p)
    }

    /// Now `Connected`.
    pub(super) fn connected(&self) -> Leg {
        self.with(|p| p.status = ParticipantStatus::Connected)
    }

    /// Now `Hold` (this DN put the other side on hold).
    pub(super) fn hold(&self) -> Leg {
        self.with(|p| p.status = ParticipantStatus::Hold)
    }

    /// Now in `status`.
    pub(super) fn status(&self, status: ParticipantStatus) -> Leg {
        self.with(|p| p.status = status)
    }

    /// Now `Dialing` (this DN places the leg).
    pub(super) fn dialing(&self) -> Leg {
        self.with(|p| p.status = ParticipantStatus::Dialing)
    }

    /// Rings on behalf of queue `q`.
    pub(super) fn queue(&self, q: &str) -> Leg {
        self.with(|p| {
            p.on_behalf_of_dn = q.to_owned();
            p.on_behalf_of_type = DnType::Wqueue;
            p.originated_by_dn = q.to_owned();
            p.originated_by_type = DnType::Wqueue;
        })
    }

    /// Rings on behalf of ring group `g`.
    pub(super) fn ring_group(&self, g: &str) -> Leg {
        self.with(|p| {
            p.on_behalf_of_dn = g.to_owned();
            p.on_behalf_of_type = DnType::Wringgroup;
        })
    }

    /// Routed here by the route point `ROUTER`.
    pub(super) fn via_router(&self) -> Leg {
        self.with(|p| {
            p.originated_by_dn = "ROUTER".to_owned();
            p.originated_by_type = DnType::Wroutepoint;
        })
    }

    /// Transferred here by extension `dn`.
    pub(super) fn referred_by(&self, dn: &str) -> Leg {
        self.with(|p| {
            p.referred_by_dn = dn.to_owned();
            p.referred_by_type = DnType::Wextension;
        })
    }

    /// The other side is extension `dn` (an internal call).
    pub(super) fn party_ext(&self, dn: &str) -> Leg {
        self.with(|p| {
            p.party_dn = dn.to_owned();
            p.party_caller_id = dn.to_owned();
            p.party_caller_name = dn.to_owned();
            p.party_dn_type = DnType::Wextension;
            p.party_did = String::new();
        })
    }

    /// The external party calls on trunk `trunk`.
    pub(super) fn with_trunk(&self, trunk: &str) -> Leg {
        self.with(|p| p.party_dn = trunk.to_owned())
    }

    /// The dialled DID is `did`.
    pub(super) fn did(&self, did: &str) -> Leg {
        self.with(|p| p.party_did = did.to_owned())
    }
}

/// `events` with their contract-0.2 facts reset, to compare with the spec's event lists.
pub(super) fn without_facts(mut events: Vec<CallEvent>) -> Vec<CallEvent> {
    for event in &mut events {
        match event {
            CallEvent::Ringing(o) | CallEvent::Dialing(o) => o.facts = PartFacts::default(),
            CallEvent::Started(s) => s.facts = PartFacts::default(),
            CallEvent::Ended(e) => e.facts = PartFacts::default(),
            CallEvent::Recording(_) => {}
        }
    }
    events
}

/// An engine driven like the host drives it, recording everything it sends.
pub(super) struct Script {
    engine: Engine,
    did_from: DidFrom,
    saved: Saved,
    config: EngineConfig,
    t0: Timestamp,
    now: Timestamp,
    out: Output,
}

/// The saved state as the host keeps it: the records of every change taken so far.
#[derive(Default)]
pub(super) struct Saved {
    dns: Option<Vec<u8>>,
    calls: BTreeMap<u64, Vec<u8>>,
}

impl Saved {
    /// Writes `changes` over the records.
    pub(super) fn apply(&mut self, changes: &StateChanges) {
        if let Some(dns) = changes.dns_record() {
            self.dns = Some(dns);
        }
        for (id, record) in changes.call_records() {
            match record {
                Some(record) => self.calls.insert(id, record),
                None => self.calls.remove(&id),
            };
        }
    }

    /// A new engine from the records, after checking they hold exactly `engine`'s state.
    pub(super) fn restore(&self, engine: &Engine, config: &EngineConfig) -> Engine {
        let state =
            EngineState::from_records(self.dns.as_deref(), self.calls.values().map(Vec::as_slice))
                .expect("records read back");
        assert_eq!(state, engine.state(), "the records hold the whole state");
        let mut engine = Engine::restore(config.clone(), state);
        engine.track_changes();
        engine
    }
}

impl Script {
    /// The standard script: [`config`], then a snapshot of [`dns`] with no calls at time 0.
    pub(super) fn new() -> Self {
        Self::with(config())
    }

    /// The standard script, with the DID of inbound calls coming `from` there: with
    /// [`DidFrom::Trunk`] every leg reaches the engine with `party_did` empty.
    pub(super) fn did_from(from: DidFrom) -> Self {
        Self {
            did_from: from,
            ..Self::new()
        }
    }

    /// A script with another configuration.
    pub(super) fn with(config: EngineConfig) -> Self {
        let t0: Timestamp = T0.parse().expect("T0 parses");
        let mut engine = Engine::new(config.clone());
        engine.track_changes();
        let out = engine.apply(Change::Snapshot {
            at: t0,
            dns: dns(),
            participants: Vec::new(),
        });
        Self {
            engine,
            did_from: DidFrom::PartyDid,
            saved: Saved::default(),
            config,
            t0,
            now: t0,
            out,
        }
    }

    /// Moves the clock to `secs` after time 0, ticking at every deadline on the way.
    pub(super) fn at(&mut self, secs: f64) -> &mut Self {
        let to = self.t0 + SignedDuration::from_secs_f64(secs);
        assert!(to >= self.now, "scripts run forward");
        while let Some(deadline) = self.engine.next_deadline().filter(|d| *d <= to) {
            let out = self.engine.tick(deadline);
            self.take(out);
        }
        self.now = to;
        self
    }

    /// The upsert of `leg`.
    pub(super) fn up(&mut self, leg: &Leg) -> &mut Self {
        let participant = self.as_sent(leg);
        self.apply(Change::Upsert {
            at: self.now,
            participant,
        })
    }

    /// The remove of `leg`.
    pub(super) fn rm(&mut self, leg: &Leg) -> &mut Self {
        self.apply(Change::Remove {
            at: self.now,
            dn: leg.0.dn.clone(),
            participant_id: leg.0.id,
        })
    }

    /// A snapshot (after a reconnect) showing exactly `legs`.
    pub(super) fn snapshot(&mut self, legs: &[&Leg]) -> &mut Self {
        let participants = legs.iter().map(|l| self.as_sent(l)).collect();
        self.apply(Change::Snapshot {
            at: self.now,
            dns: dns(),
            participants,
        })
    }

    /// A host restart: the state is saved as the host saves it, as records of what changed,
    /// and a new engine continues from those records.
    pub(super) fn restart(&mut self) -> &mut Self {
        self.saved.apply(&self.engine.take_changes());
        self.engine = self.saved.restore(&self.engine, &self.config);
        self
    }

    /// Lets a minute pass, so every grace period runs out.
    pub(super) fn settle(&mut self) -> &mut Self {
        let secs = self.now.duration_since(self.t0).as_secs_f64() + 60.0;
        self.at(secs)
    }

    /// Every event sent so far.
    ///
    /// Without their contract-0.2 facts (times, queue, `internal`), which
    /// [`Script::facts`] shows, so that the scenarios read as the spec's event lists.
    pub(super) fn events(&self) -> Vec<CallEvent> {
        without_facts(self.out.events.clone())
    }

    /// `(event name, user, facts)` of every event so far, times in seconds from the script's
    /// start (`call_started_at` and `offered_at` included; 0 stands for the start).
    pub(super) fn facts(&self) -> Vec<(&'static str, String, PartFacts)> {
        let start = crate::calls::event::unix_ms(T0.parse().expect("T0 parses"));
        let secs = |ms: u64| (ms - start) / 1000;
        self.out
            .events
            .iter()
            .filter_map(|event| {
                let facts = event.facts()?;
                Some((
                    event.name(),
                    event.user()?.to_owned(),
                    PartFacts {
                        call_started_at: secs(facts.call_started_at),
                        offered_at: secs(facts.offered_at),
                        answered_at: facts.answered_at.map(secs),
                        ended_at: facts.ended_at.map(secs),
                        ..facts.clone()
                    },
                ))
            })
            .collect()
    }

    /// Every finished call so far.
    pub(super) fn finished(&self) -> &[FinishedCall] {
        &self.out.finished
    }

    /// The engine, for its counters.
    pub(super) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// `leg` as the PBX of this script sends it.
    fn as_sent(&self, leg: &Leg) -> Participant {
        let mut p = leg.0.clone();
        if self.did_from == DidFrom::Trunk {
            p.party_did.clear();
        }
        p
    }

    fn apply(&mut self, change: Change) -> &mut Self {
        let out = self.engine.apply(change);
        self.take(out);
        self
    }

    fn take(&mut self, out: Output) {
        self.out.events.extend(out.events);
        self.out.finished.extend(out.finished);
    }
}

/// Builds the expected events of one call.
#[derive(Debug, Clone)]
pub(super) struct Expect {
    /// The stamp of the call id.
    pub stamp: &'static str,
    /// The PBX's call id.
    pub callid: u64,
    /// `callerid` of every event.
    pub caller: &'static str,
    /// `did` of incoming events.
    pub did: &'static str,
}

impl Expect {
    /// An external call first seen at time 0, from [`X`] through [`RULE`].
    pub(super) fn call(callid: u64) -> Self {
        Self {
            stamp: STAMP,
            callid,
            caller: X,
            did: RULE,
        }
    }

    /// The call id under `link`.
    pub(super) fn id(&self, link: u32) -> CallId {
        CallId {
            stamp: self.stamp.to_owned(),
            pbx_call_id: self.callid,
            link,
        }
    }

    /// `ringing`.
    pub(super) fn ringing(&self, user: &str, user_type: UserType, link: u32) -> CallEvent {
        CallEvent::Ringing(self.offered(user, user_type, self.did, link))
    }

    /// `dialing`.
    pub(super) fn dialing(&self, user: &str, link: u32) -> CallEvent {
        CallEvent::Dialing(self.offered(user, UserType::Ext, "", link))
    }

    /// `incomingcall_started`.
    pub(super) fn started_in(
        &self,
        user: &str,
        transfer_type: TransferType,
        link: u32,
    ) -> CallEvent {
        self.started(Direction::Incoming, user, transfer_type, link)
    }

    /// `outgoingcall_started`.
    pub(super) fn started_out(
        &self,
        user: &str,
        transfer_type: TransferType,
        link: u32,
    ) -> CallEvent {
        self.started(Direction::Outgoing, user, transfer_type, link)
    }

    /// `incoming`: `(user, finishtype, transfer, duration, link, title)`.
    pub(super) fn ended_in(
        &self,
        user: &str,
        finish_type: FinishType,
        transfer: bool,
        duration_secs: u32,
        link: u32,
        title: &str,
    ) -> CallEvent {
        self.ended(
            Direction::Incoming,
            user,
            (finish_type, transfer, duration_secs),
            link,
            title,
        )
    }

    /// `outgoing`: `(user, finishtype, transfer, duration, link, title)`.
    pub(super) fn ended_out(
        &self,
        user: &str,
        finish_type: FinishType,
        transfer: bool,
        duration_secs: u32,
        link: u32,
        title: &str,
    ) -> CallEvent {
        self.ended(
            Direction::Outgoing,
            user,
            (finish_type, transfer, duration_secs),
            link,
            title,
        )
    }

    fn offered(&self, user: &str, user_type: UserType, did: &str, link: u32) -> Offered {
        Offered {
            id: self.id(link),
            caller_id: self.caller.to_owned(),
            did: did.to_owned(),
            user: user.to_owned(),
            user_type,
            facts: PartFacts::default(),
        }
    }

    fn started(
        &self,
        direction: Direction,
        user: &str,
        transfer_type: TransferType,
        link: u32,
    ) -> CallEvent {
        CallEvent::Started(Started {
            id: self.id(link),
            direction,
            caller_id: self.caller.to_owned(),
            user: user.to_owned(),
            did: self.did_for(direction),
            transfer_type,
            facts: PartFacts::default(),
        })
    }

    fn ended(
        &self,
        direction: Direction,
        user: &str,
        (finish_type, transfer, duration_secs): (FinishType, bool, u32),
        link: u32,
        title: &str,
    ) -> CallEvent {
        CallEvent::Ended(Ended {
            id: self.id(link),
            direction,
            caller_id: self.caller.to_owned(),
            user: user.to_owned(),
            did: self.did_for(direction),
            finish_type,
            transfer,
            duration_secs,
            title: title.to_owned(),
            facts: PartFacts::default(),
        })
    }

    fn did_for(&self, direction: Direction) -> String {
        match direction {
            Direction::Incoming => self.did.to_owned(),
            Direction::Outgoing => String::new(),
        }
    }
}
