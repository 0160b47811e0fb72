//! Expansion: high-level steps into the participant changes of `3cx-api.md` section 4.
//!
//! The expander replays every step of every call in global time order (ties keep file order)
//! against a model of the PBX's legs. Each leg is one participant: it gets a fresh participant id
//! (counting up from `first_participant_id`, never reused within a scenario), a `legid` counting
//! up within its call, and only ever changes its `status` afterwards. A leg on a monitored DN
//! emits an upsert whenever it appears or changes and a remove when it goes; legs on unmonitored
//! DNs are modelled (they matter for validity and recordings) but never emitted. So by
//! construction every remove refers to a live participant and all legs of a call share its
//! `callid`.
//!
//! What each action does (the model the spec calls section 4):
//! - `ring`: a Ringing leg per DN, party = the external caller on its trunk (`party_dn` = the
//!   trunk, `Wexternalline`, `party_caller_name` the number with `+` unless named, `party_did`
//!   empty unless the variant fills it), `originated_by` = `via`, or the API client's route
//!   point ([`ROUTE_POINT`], `Wroutepoint`) without one; `on_behalf_of` = `via` when it is a
//!   queue or ring group.
//! - `enter`: the caller reaches a queue, IVR or route point: a Connected leg on that DN.
//! - `answer`: the DN's Ringing leg becomes Connected; every other Ringing leg of the call and
//!   every leg on a non-extension DN (queue, IVR, route point) is removed, in that order.
//! - `stop_ringing`: the given (default: all) Ringing legs are removed; the call goes on.
//! - `dial` / `remote_answer`: a Dialing leg (first without its party, depending on the
//!   variant), then Connected.
//! - `hold` / `resume`: Connected → Hold → Connected on the DN's leg (or an upsert that stays
//!   Connected, depending on the variant).
//! - `leave`: the DN's leg is removed; `hangup`: every remaining leg (consultation first).
//! - `blind_transfer`: the holder's leg is removed and a Ringing leg with `referred_by` = holder
//!   appears on the target (order selectable, and overridden by the variant).
//! - `consult` / `consult_answer` / `complete_transfer`: the holder goes on Hold and places a
//!   consultation call with its own callid (Dialing + Ringing legs, both extensions as parties);
//!   once answered, completing removes the holder's legs in both calls and the target's
//!   consultation leg, and the target appears in the original call directly as Connected with
//!   `referred_by` = holder.
//!
//! A recording part runs from a leg's first Connected to its removal, for extension legs of a
//! call with `record = true`; the consultation call is not recorded. Every call must end (no leg
//! left) by the end of the scenario.
//!
//! The [`Variant`] changes only what the upserts show and the order of the two halves of a
//! transfer, never the model's state, so a scenario valid in one variant is valid in all.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::format::{Action, CallDecl, DnDecl, External, Invalid, Parsed, Step};
use super::{ParticipantChange, TimelineStep, TransferOrder, Variant};

/// The route point that originates inbound legs without a `via`: the API client's own DN, named
/// after its client id. Timelines use the default client id; the player renames it to the
/// simulator's [`crate::SimConfig::client_id`].
pub(crate) const ROUTE_POINT: &str = "callhook";

/// How long after the party-less first `Dialing` upsert the party is filled in, at most.
const PARTY_FILL: Duration = Duration::from_millis(200);

/// The result of expanding a scenario.
pub(super) struct Expansion {
    pub timeline: Vec<TimelineStep>,
    pub recordings: Vec<RecordingPart>,
}

/// One recording the PBX makes: an extension's talking part of a call with an external party.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RecordingPart {
    /// The call's PBX call id.
    pub callid: u64,
    /// The extension whose part this is.
    pub dn: String,
    /// Its display name (the `[...]` of the file name).
    pub dn_name: String,
    /// The external party's number.
    pub external: String,
    /// The trunk DN the external party is on.
    pub trunk: String,
    /// Whether the external party called in.
    pub inbound: bool,
    /// Scenario time the extension started talking.
    pub talk_start: Duration,
    /// Scenario time its part ended.
    pub talk_end: Duration,
    /// Scenario time the whole call was over; the recording appears after that.
    pub call_end: Duration,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Dialing,
    Ringing,
    Connected,
    Hold,
}

impl Status {
    /// The status as the variant shows it: a held leg may stay `Connected`.
    fn shown(self, variant: Variant) -> &'static str {
        if self == Status::Hold && variant.hold_as_connected {
            "Connected"
        } else {
            self.as_str()
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Status::Dialing => "Dialing",
            Status::Ringing => "Ringing",
            Status::Connected => "Connected",
            Status::Hold => "Hold",
        }
    }
}

/// The other side of a leg as the participant JSON shows it.
#[derive(Clone)]
struct Party {
    name: String,
    dn: String,
    caller_id: String,
    did: String,
    dn_type: String,
}

#[derive(Clone)]
struct Leg {
    id: u64,
    dn: String,
    legid: u32,
    status: Status,
    party: Party,
    originated_by: Option<String>,
    on_behalf_of: Option<String>,
    referred_by: Option<String>,
    talk_start: Option<Duration>,
}

/// The legs of one PBX call (the scenario's call, or its consultation call).
struct Legs {
    callid: u64,
    legs: Vec<Leg>,
    next_legid: u32,
}

impl Legs {
    fn new(callid: u64) -> Legs {
        Legs {
            callid,
            legs: Vec::new(),
            next_legid: 1,
        }
    }

    fn position(&self, dn: &str) -> Option<usize> {
        self.legs.iter().position(|l| l.dn == dn)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Inbound,
    Outbound,
}

struct Consultation {
    legs: Legs,
    from: String,
    to: String,
    answered: bool,
}

struct CallState<'a> {
    decl: &'a CallDecl,
    main: Legs,
    consult: Option<Consultation>,
    direction: Option<Direction>,
    /// Parts whose talk ended, waiting for the call's end.
    parts: Vec<RecordingPart>,
    ended_at: Option<Duration>,
}

struct Expander<'a> {
    variant: Variant,
    dns: BTreeMap<&'a str, &'a DnDecl>,
    next_participant: u64,
    used_callids: Vec<u64>,
    timeline: Vec<TimelineStep>,
    recordings: Vec<RecordingPart>,
    now: Duration,
    line: usize,
}

/// Expands a parsed scenario; errors carry the step's line.
pub(super) fn expand(parsed: &Parsed, variant: Variant) -> Result<Expansion, Invalid> {
    let mut ex = Expander {
        variant,
        dns: parsed.dns.iter().map(|d| (d.dn.as_str(), d)).collect(),
        next_participant: parsed.first_participant_id,
        used_callids: parsed.calls.iter().map(|c| c.callid).collect(),
        timeline: Vec::new(),
        recordings: Vec::new(),
        now: Duration::ZERO,
        line: 0,
    };
    let mut calls: Vec<CallState> = parsed
        .calls
        .iter()
        .map(|decl| CallState {
            decl,
            main: Legs::new(decl.callid),
            consult: None,
            direction: None,
            parts: Vec::new(),
            ended_at: None,
        })
        .collect();
    let mut order: Vec<(Duration, usize, usize)> = Vec::new();
    for (c, call) in parsed.calls.iter().enumerate() {
        for (s, step) in call.steps.iter().enumerate() {
            order.push((step.at, c, s));
        }
    }
    order.sort();
    for (_, c, s) in order {
        let call = &mut calls[c];
        let decl = call.decl;
        let step = &decl.steps[s];
        ex.now = step.at;
        ex.line = step.line;
        if call.ended_at.is_some() {
            return Err(ex.err(
                "action",
                format!("call {} is already over", call.decl.callid),
            ));
        }
        ex.apply(call, step)?;
        if call.main.legs.is_empty() && call.consult.as_ref().is_none_or(|c| c.legs.legs.is_empty())
        {
            call.ended_at = Some(step.at);
            for mut part in call.parts.drain(..) {
                part.call_end = step.at;
                ex.recordings.push(part);
            }
        }
    }
    if let Some(open) = calls.iter().find(|c| c.ended_at.is_none()) {
        let dns: Vec<&str> = open.main.legs.iter().map(|l| l.dn.as_str()).collect();
        return Err(Invalid::new(
            open.decl.line,
            "step",
            format!(
                "call {} never ends: legs on {} are left; end it with `hangup`",
                open.decl.callid,
                dns.join(", ")
            ),
        ));
    }
    ex.recordings.sort_by_key(|p| (p.call_end, p.talk_start));
    // Delayed upserts (the party filled in after a party-less `Dialing`) were pushed at their
    // step; a stable sort puts them at their time and keeps the order of everything else.
    ex.timeline.sort_by_key(|s| s.at);
    Ok(Expansion {
        timeline: ex.timeline,
        recordings: ex.recordings,
    })
}

impl<'a> Expander<'a> {
    fn err(&self, key: &str, message: impl Into<String>) -> Invalid {
        Invalid::new(self.line, key, message)
    }

    fn dn(&self, key: &str, dn: &str) -> Result<&'a DnDecl, Invalid> {
        self.dns
            .get(dn)
            .copied()
            .ok_or_else(|| self.err(key, format!("DN {dn} is not declared in a `[[dn]]` table")))
    }

    fn extension(&self, key: &str, dn: &str) -> Result<&'a DnDecl, Invalid> {
        let decl = self.dn(key, dn)?;
        if decl.dn_type != "Wextension" {
            return Err(self.err(
                key,
                format!("DN {dn} is a {}, not a Wextension", decl.dn_type),
            ));
        }
        Ok(decl)
    }

    fn new_leg(&mut self, legs: &mut Legs, dn: &str, status: Status, party: Party) -> Leg {
        let leg = Leg {
            id: self.next_participant,
            dn: dn.to_owned(),
            legid: legs.next_legid,
            status,
            party,
            originated_by: None,
            on_behalf_of: None,
            referred_by: None,
            talk_start: (status == Status::Connected).then_some(self.now),
        };
        self.next_participant += 1;
        legs.next_legid += 1;
        leg
    }

    fn emit_upsert(&mut self, callid: u64, leg: &Leg) {
        self.emit_upsert_at(self.now, callid, leg);
    }

    fn emit_upsert_at(&mut self, at: Duration, callid: u64, leg: &Leg) {
        if self.dns[leg.dn.as_str()].monitored {
            let json = self.participant_json(callid, leg);
            self.timeline.push(TimelineStep {
                at,
                change: ParticipantChange::Upsert(json),
            });
        }
    }

    fn emit_remove(&mut self, leg: &Leg) {
        if self.dns[leg.dn.as_str()].monitored {
            self.timeline.push(TimelineStep {
                at: self.now,
                change: ParticipantChange::Remove {
                    dn: leg.dn.clone(),
                    participant_id: leg.id,
                },
            });
        }
    }

    fn typed(&self, dn: &Option<String>) -> (String, String) {
        match dn {
            Some(dn) => match self.dns.get(dn.as_str()) {
                Some(decl) => (dn.clone(), decl.dn_type.clone()),
                None => (dn.clone(), "Wroutepoint".to_owned()),
            },
            None => (String::new(), "None".to_owned()),
        }
    }

    fn participant_json(&self, callid: u64, leg: &Leg) -> Value {
        let (originated_by_dn, originated_by_type) = self.typed(&leg.originated_by);
        let (referred_by_dn, referred_by_type) = self.typed(&leg.referred_by);
        let (on_behalf_of_dn, on_behalf_of_type) = self.typed(&leg.on_behalf_of);
        json!({
            "id": leg.id,
            "status": leg.status.shown(self.variant),
            "dn": leg.dn,
            "party_caller_name": leg.party.name,
            "party_dn": leg.party.dn,
            "party_caller_id": leg.party.caller_id,
            "party_did": leg.party.did,
            "device_id": device_id(&leg.dn, &self.dns[leg.dn.as_str()].dn_type),
            "party_dn_type": leg.party.dn_type,
            "direct_control": false,
            "originated_by_dn": originated_by_dn,
            "originated_by_type": originated_by_type,
            "referred_by_dn": referred_by_dn,
            "referred_by_type": referred_by_type,
            "on_behalf_of_dn": on_behalf_of_dn,
            "on_behalf_of_type": on_behalf_of_type,
            "callid": callid,
            "legid": leg.legid,
        })
    }

    fn external_party(&self, external: &External, inbound: bool) -> Party {
        Party {
            name: external.name.clone(),
            dn: external.trunk.clone(),
            caller_id: external.number.clone(),
            did: if inbound && self.variant.did_in_party_did {
                external.did.clone()
            } else {
                String::new()
            },
            dn_type: "Wexternalline".to_owned(),
        }
    }

    /// The order of a transfer step, unless the variant overrides it.
    fn order(&self, written: TransferOrder) -> TransferOrder {
        self.variant.transfer_order.unwrap_or(written)
    }

    fn internal_party(decl: &DnDecl) -> Party {
        Party {
            name: decl.name.clone(),
            dn: decl.dn.clone(),
            caller_id: decl.dn.clone(),
            did: String::new(),
            dn_type: decl.dn_type.clone(),
        }
    }

    /// Removes the leg at `index` of the call's main legs, closing its recording part.
    fn remove_main(&mut self, call: &mut CallState, index: usize) {
        let leg = call.main.legs.remove(index);
        self.emit_remove(&leg);
        let decl = self.dns[leg.dn.as_str()];
        if let Some(start) = leg.talk_start
            && call.decl.record
            && decl.dn_type == "Wextension"
        {
            call.parts.push(RecordingPart {
                callid: call.main.callid,
                dn: leg.dn.clone(),
                dn_name: decl.name.clone(),
                external: call.decl.external.number.clone(),
                trunk: call.decl.external.trunk.clone(),
                inbound: call.direction == Some(Direction::Inbound),
                talk_start: start,
                talk_end: self.now,
                call_end: Duration::ZERO,
            });
        }
    }

    fn set_status(&mut self, legs: &mut Legs, index: usize, status: Status) {
        let leg = &mut legs.legs[index];
        leg.status = status;
        if status == Status::Connected && leg.talk_start.is_none() {
            leg.talk_start = Some(self.now);
        }
        let leg = &legs.legs[index];
        self.emit_upsert(legs.callid, leg);
    }

    fn main_leg(&self, call: &CallState, dn: &str, wanted: &[Status]) -> Result<usize, Invalid> {
        let index = call.main.position(dn).ok_or_else(|| {
            self.err(
                "dn",
                format!("DN {dn} has no leg in call {}", call.main.callid),
            )
        })?;
        let status = call.main.legs[index].status;
        if !wanted.contains(&status) {
            let wanted: Vec<&str> = wanted.iter().map(|s| s.as_str()).collect();
            return Err(self.err(
                "dn",
                format!(
                    "the leg of {dn} is {}, expected {}",
                    status.as_str(),
                    wanted.join(" or ")
                ),
            ));
        }
        Ok(index)
    }

    fn direction(&self, call: &mut CallState, wanted: Direction) -> Result<(), Invalid> {
        match call.direction {
            Some(d) if d != wanted => Err(self.err(
                "action",
                "inbound actions (ring, enter) and outbound ones (dial) cannot mix in one call",
            )),
            _ => {
                call.direction = Some(wanted);
                Ok(())
            }
        }
    }

    fn apply(&mut self, call: &mut CallState, step: &Step) -> Result<(), Invalid> {
        match &step.action {
            Action::Ring { dns, via } => self.ring(call, dns, via.as_deref()),
            Action::Enter { dn } => self.enter(call, dn),
            Action::Answer { dn } => self.answer(call, dn),
            Action::StopRinging { dns } => self.stop_ringing(call, dns.as_deref()),
            Action::Dial { dn } => self.dial(call, dn),
            Action::RemoteAnswer => {
                if call.direction != Some(Direction::Outbound) {
                    return Err(self.err("action", "`remote_answer` needs a `dial` first"));
                }
                let index = call
                    .main
                    .legs
                    .iter()
                    .position(|l| l.status == Status::Dialing)
                    .ok_or_else(|| self.err("action", "no Dialing leg to answer"))?;
                self.set_status(&mut call.main, index, Status::Connected);
                Ok(())
            }
            Action::Hold { dn } => {
                let index = self.main_leg(call, dn, &[Status::Connected])?;
                self.set_status(&mut call.main, index, Status::Hold);
                Ok(())
            }
            Action::Resume { dn } => {
                let index = self.main_leg(call, dn, &[Status::Hold])?;
                self.set_status(&mut call.main, index, Status::Connected);
                Ok(())
            }
            Action::Leave { dn } => {
                let index = call.main.position(dn).ok_or_else(|| {
                    self.err(
                        "dn",
                        format!("DN {dn} has no leg in call {}", call.main.callid),
                    )
                })?;
                self.remove_main(call, index);
                Ok(())
            }
            Action::Hangup => {
                if let Some(consult) = call.consult.take() {
                    for leg in &consult.legs.legs {
                        self.emit_remove(leg);
                    }
                }
                while !call.main.legs.is_empty() {
                    self.remove_main(call, 0);
                }
                Ok(())
            }
            Action::BlindTransfer { dn, to, order } => self.blind_transfer(call, dn, to, *order),
            Action::Consult { dn, to, callid } => self.consult(call, dn, to, *callid),
            Action::ConsultAnswer => self.consult_answer(call),
            Action::CompleteTransfer { dn, order } => self.complete_transfer(call, dn, *order),
        }
    }

    fn ring(
        &mut self,
        call: &mut CallState,
        dns: &[String],
        via: Option<&str>,
    ) -> Result<(), Invalid> {
        self.direction(call, Direction::Inbound)?;
        let via = match via {
            Some(via) => {
                let decl = self.dn("via", via)?;
                if decl.dn_type == "Wextension" {
                    return Err(self.err("via", format!("DN {via} is an extension, not a group")));
                }
                Some(decl)
            }
            None => None,
        };
        for dn in dns {
            self.extension("dn", dn)?;
            if call.main.position(dn).is_some() {
                return Err(self.err("dn", format!("DN {dn} already has a leg in this call")));
            }
            let party = self.external_party(&call.decl.external, true);
            let mut leg = self.new_leg(&mut call.main, dn, Status::Ringing, party);
            leg.originated_by = Some(via.map_or(ROUTE_POINT, |v| v.dn.as_str()).to_owned());
            leg.on_behalf_of = via
                .filter(|v| v.dn_type == "Wqueue" || v.dn_type == "Wringgroup")
                .map(|v| v.dn.clone());
            self.emit_upsert(call.main.callid, &leg);
            call.main.legs.push(leg);
        }
        Ok(())
    }

    fn enter(&mut self, call: &mut CallState, dn: &str) -> Result<(), Invalid> {
        self.direction(call, Direction::Inbound)?;
        let decl = self.dn("dn", dn)?;
        if decl.dn_type == "Wextension" {
            return Err(self.err("dn", format!("DN {dn} is an extension; use `ring`")));
        }
        if call.main.position(dn).is_some() {
            return Err(self.err("dn", format!("DN {dn} already has a leg in this call")));
        }
        let party = self.external_party(&call.decl.external, true);
        let leg = self.new_leg(&mut call.main, dn, Status::Connected, party);
        self.emit_upsert(call.main.callid, &leg);
        call.main.legs.push(leg);
        Ok(())
    }

    fn answer(&mut self, call: &mut CallState, dn: &str) -> Result<(), Invalid> {
        let index = self.main_leg(call, dn, &[Status::Ringing])?;
        self.set_status(&mut call.main, index, Status::Connected);
        while let Some(other) = call
            .main
            .legs
            .iter()
            .position(|l| l.status == Status::Ringing)
        {
            self.remove_main(call, other);
        }
        while let Some(group) = call
            .main
            .legs
            .iter()
            .position(|l| self.dns[l.dn.as_str()].dn_type != "Wextension")
        {
            self.remove_main(call, group);
        }
        Ok(())
    }

    fn stop_ringing(
        &mut self,
        call: &mut CallState,
        dns: Option<&[String]>,
    ) -> Result<(), Invalid> {
        match dns {
            Some(dns) => {
                for dn in dns {
                    let index = self.main_leg(call, dn, &[Status::Ringing])?;
                    self.remove_main(call, index);
                }
            }
            None => {
                let mut any = false;
                while let Some(index) = call
                    .main
                    .legs
                    .iter()
                    .position(|l| l.status == Status::Ringing)
                {
                    self.remove_main(call, index);
                    any = true;
                }
                if !any {
                    return Err(self.err("action", "no leg is ringing"));
                }
            }
        }
        Ok(())
    }

    fn dial(&mut self, call: &mut CallState, dn: &str) -> Result<(), Invalid> {
        if call.direction.is_some() {
            return Err(self.err("action", "`dial` must be the first step of its call"));
        }
        self.direction(call, Direction::Outbound)?;
        self.extension("dn", dn)?;
        let party = self.external_party(&call.decl.external, false);
        let leg = self.new_leg(&mut call.main, dn, Status::Dialing, party);
        if self.variant.partyless_first_dialing {
            let partyless = Leg {
                party: Party {
                    name: String::new(),
                    dn: String::new(),
                    caller_id: leg.party.caller_id.clone(),
                    did: String::new(),
                    dn_type: "None".to_owned(),
                },
                ..leg.clone()
            };
            self.emit_upsert(call.main.callid, &partyless);
            // Filled in before the call's next step, so the order of its upserts stays right.
            let next = call
                .decl
                .steps
                .iter()
                .map(|s| s.at)
                .find(|&at| at > self.now);
            let fill = next.map_or(PARTY_FILL, |next| PARTY_FILL.min((next - self.now) / 2));
            self.emit_upsert_at(self.now + fill, call.main.callid, &leg);
        } else {
            self.emit_upsert(call.main.callid, &leg);
        }
        call.main.legs.push(leg);
        Ok(())
    }

    fn blind_transfer(
        &mut self,
        call: &mut CallState,
        dn: &str,
        to: &str,
        order: TransferOrder,
    ) -> Result<(), Invalid> {
        let order = self.order(order);
        let index = self.main_leg(call, dn, &[Status::Connected, Status::Hold])?;
        self.extension("to", to)?;
        if call.main.position(to).is_some() {
            return Err(self.err("to", format!("DN {to} already has a leg in this call")));
        }
        let inbound = call.direction == Some(Direction::Inbound);
        let party = self.external_party(&call.decl.external, inbound);
        let mut leg = self.new_leg(&mut call.main, to, Status::Ringing, party);
        leg.referred_by = Some(dn.to_owned());
        if order == TransferOrder::LeaveFirst {
            self.remove_main(call, index);
        }
        self.emit_upsert(call.main.callid, &leg);
        call.main.legs.push(leg);
        if order == TransferOrder::JoinFirst {
            self.remove_main(call, index);
        }
        Ok(())
    }

    fn consult(
        &mut self,
        call: &mut CallState,
        dn: &str,
        to: &str,
        callid: u64,
    ) -> Result<(), Invalid> {
        let index = self.main_leg(call, dn, &[Status::Connected])?;
        let from_decl = self.extension("dn", dn)?;
        let to_decl = self.extension("to", to)?;
        if call.consult.is_some() {
            return Err(self.err("action", "a consultation call is already running"));
        }
        if self.used_callids.contains(&callid) {
            return Err(self.err("callid", format!("callid {callid} is already used")));
        }
        self.used_callids.push(callid);
        self.set_status(&mut call.main, index, Status::Hold);
        let mut legs = Legs::new(callid);
        let dialing = self.new_leg(
            &mut legs,
            dn,
            Status::Dialing,
            Self::internal_party(to_decl),
        );
        let ringing = self.new_leg(
            &mut legs,
            to,
            Status::Ringing,
            Self::internal_party(from_decl),
        );
        self.emit_upsert(callid, &dialing);
        self.emit_upsert(callid, &ringing);
        legs.legs = vec![dialing, ringing];
        call.consult = Some(Consultation {
            legs,
            from: dn.to_owned(),
            to: to.to_owned(),
            answered: false,
        });
        Ok(())
    }

    fn consult_answer(&mut self, call: &mut CallState) -> Result<(), Invalid> {
        let Some(mut consult) = call.consult.take() else {
            return Err(self.err(
                "action",
                "no consultation call is running; use `consult` first",
            ));
        };
        if consult.answered {
            return Err(self.err("action", "the consultation call is already answered"));
        }
        consult.answered = true;
        self.set_status(&mut consult.legs, 1, Status::Connected);
        self.set_status(&mut consult.legs, 0, Status::Connected);
        call.consult = Some(consult);
        Ok(())
    }

    fn complete_transfer(
        &mut self,
        call: &mut CallState,
        dn: &str,
        order: TransferOrder,
    ) -> Result<(), Invalid> {
        let order = self.order(order);
        let consult = match call.consult.take() {
            Some(c) if c.answered && c.from == dn => c,
            Some(c) => {
                let problem = if c.answered {
                    format!("the consultation call was placed by {}, not {dn}", c.from)
                } else {
                    "the consultation call is not answered yet; use `consult_answer`".to_owned()
                };
                call.consult = Some(c);
                return Err(self.err("dn", problem));
            }
            None => return Err(self.err("action", "no consultation call is running")),
        };
        let index = self.main_leg(call, dn, &[Status::Hold, Status::Connected])?;
        let inbound = call.direction == Some(Direction::Inbound);
        let party = self.external_party(&call.decl.external, inbound);
        let mut joined = self.new_leg(&mut call.main, &consult.to, Status::Connected, party);
        joined.referred_by = Some(dn.to_owned());
        if order == TransferOrder::JoinFirst {
            self.emit_upsert(call.main.callid, &joined);
        }
        self.remove_main(call, index);
        for leg in &consult.legs.legs {
            self.emit_remove(leg);
        }
        if order == TransferOrder::LeaveFirst {
            self.emit_upsert(call.main.callid, &joined);
        }
        call.main.legs.push(joined);
        Ok(())
    }
}

/// The SIP device of a DN; only extensions have phones.
pub(crate) fn device_id(dn: &str, dn_type: &str) -> String {
    if dn_type == "Wextension" {
        format!("sip:{dn}@127.0.0.1:5060")
    } else {
        String::new()
    }
}
