//! The engine: routes inputs to calls, reconciles snapshots, runs the grace timers, persists.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::callcontrol::{Change, DnType, Participant};
use crate::calls::call::{Call, Ctx, Departure};
use crate::calls::event::{CallEvent, CallId, Ended};
use crate::calls::fields;

/// The longest grace period honoured; longer settings are cut to this.
const MAX_GRACE: SignedDuration = SignedDuration::from_hours(24);

/// How the engine derives events.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How long to wait, after the extension holding a call left or after the last leg of a call
    /// went away, for a new leg that turns the departure into a transfer or the next queue wave.
    ///
    /// Every end event is sent this long after the PBX reported the departure. Values over 24 h
    /// are treated as 24 h. By default 2 s.
    pub grace: Duration,
    /// Whether calls with no external party (extension to extension, including the consultation
    /// call of an attended transfer) produce events; their `callerid` is the other extension.
    /// By default `false`.
    pub report_internal_calls: bool,
    /// The PBX's time zone, for the `yyMMddHHmmss` stamp of call ids. By default the host's.
    pub time_zone: TimeZone,
    /// DID number -> inbound rule name, for the `did` field. Numbers match exactly or digit for
    /// digit (ignoring `+` and separators). By default empty: `did` is the dialled number.
    pub did_rules: BTreeMap<String, String>,
    /// Trunk DN -> the DID number its inbound calls arrive on (`[trunks]`), e.g. `10007` ->
    /// `+4930123456`: the DID number of an inbound call whose legs leave `party_did` empty (as
    /// 3CX V20 does), looked up by the `party_dn` of its external party. Keys match exactly;
    /// the number is then resolved through `did_rules` like `party_did`. By default empty:
    /// without `party_did` an inbound call has no DID.
    pub trunk_dids: BTreeMap<String, String>,
}

impl EngineConfig {
    /// The default `grace`.
    pub const DEFAULT_GRACE: Duration = Duration::from_secs(2);
    /// The longest `grace` the configuration accepts (`engine.grace`).
    pub const MAX_CONFIGURED_GRACE: Duration = Duration::from_secs(3600);
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            grace: Self::DEFAULT_GRACE,
            report_internal_calls: false,
            time_zone: TimeZone::system(),
            did_rules: BTreeMap::new(),
            trunk_dids: BTreeMap::new(),
        }
    }
}

/// What one `apply` or `tick` produced, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Output {
    /// Events for the plugins, in the order they must be delivered.
    pub events: Vec<CallEvent>,
    /// Calls that are completely over and produced events, for recordings matching.
    pub finished: Vec<FinishedCall>,
}

/// A call that is completely over (section 5: now its recordings may appear).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishedCall {
    /// The PBX's call id (the bracketed number of recording file names).
    pub pbx_call_id: u64,
    /// Every part in which a monitored extension talked, in the order they ended.
    pub parts: Vec<CallPart>,
    /// The call's last end event, for `RECORDING_FULL_INFO`.
    pub last_end: Option<Ended>,
}

/// What the operator console shows of a call in progress (or waiting out its grace period):
/// a read-only view of each call a batch of changes touched ([`StateChanges::live_calls`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveCall {
    /// The PBX's call id.
    pub pbx_call_id: u64,
    /// The external number, `None` for an internal call.
    pub external: Option<String>,
    /// The DID it came in on, empty when unknown.
    pub did: String,
    /// Every monitored extension involved, with what it does: `undecided`, `offered`,
    /// `talking` or `leaving`.
    pub extensions: Vec<(String, &'static str)>,
}

/// One extension's talk within a finished call; a recording belongs to the part it overlaps most.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallPart {
    /// The call id with the link this part worked under.
    pub id: CallId,
    /// The extension that talked.
    pub extension: String,
    /// The other side's number (`callerid` of its events).
    pub other_number: String,
    /// When the extension answered (or joined).
    pub talk_start: Timestamp,
    /// When it left (for an approximate end: the snapshot time).
    pub talk_end: Timestamp,
}

/// Everything the engine knows, for the host to persist durably after each `apply`/`tick` and
/// hand back to [`Engine::restore`] after a restart (scenario 11: ids and links survive).
///
/// Its serde form is private to the engine: store it, never edit it. It holds no configuration,
/// so settings changed across a restart apply at once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineState {
    dns: BTreeMap<String, DnType>,
    calls: Vec<Call>,
}

impl EngineState {
    /// Reassembles a state saved as records: the DN table record and one record per call, as
    /// [`StateChanges::dns_record`] and [`StateChanges::call_records`] wrote them.
    pub fn from_records<'a>(
        dns: Option<&[u8]>,
        calls: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<EngineState, serde_json::Error> {
        Ok(EngineState {
            dns: dns
                .map(serde_json::from_slice)
                .transpose()?
                .unwrap_or_default(),
            calls: calls
                .into_iter()
                .map(serde_json::from_slice)
                .collect::<Result<_, _>>()?,
        })
    }
}

/// A saved record [`EngineState::read_records`] could not read, and skipped.
#[derive(Debug)]
pub struct UnreadableRecord {
    /// The PBX call id of the call's record; `None` for the DN table's record.
    pub pbx_call_id: Option<u64>,
    /// Why it does not read.
    pub error: serde_json::Error,
}

impl EngineState {
    /// Reassembles a state like [`EngineState::from_records`], from call records keyed by PBX
    /// call id, but skips each record that does not read, alone, and returns it with its key:
    /// one damaged call must not cost the calls saved beside it. An unreadable DN table reads
    /// as empty (the next snapshot brings it again).
    pub fn read_records<'a>(
        dns: Option<&[u8]>,
        calls: impl IntoIterator<Item = (u64, &'a [u8])>,
    ) -> (EngineState, Vec<UnreadableRecord>) {
        let mut unreadable = Vec::new();
        let dns = match dns.map(serde_json::from_slice).transpose() {
            Ok(dns) => dns.unwrap_or_default(),
            Err(error) => {
                unreadable.push(UnreadableRecord {
                    pbx_call_id: None,
                    error,
                });
                BTreeMap::new()
            }
        };
        let mut read = Vec::new();
        for (pbx_call_id, record) in calls {
            match serde_json::from_slice(record) {
                Ok(call) => read.push(call),
                Err(error) => unreadable.push(UnreadableRecord {
                    pbx_call_id: Some(pbx_call_id),
                    error,
                }),
            }
        }
        (EngineState { dns, calls: read }, unreadable)
    }
}

impl From<&EngineState> for StateChanges {
    /// The whole state as changes: everything, to write over an empty store.
    fn from(state: &EngineState) -> Self {
        StateChanges {
            dns: Some(state.dns.clone()),
            calls: state
                .calls
                .iter()
                .map(|call| (call.pbx_call_id(), Some(call.clone())))
                .collect(),
        }
    }
}

/// The parts of the engine's state that changed ([`Engine::take_changes`]), as records to
/// write over a saved state: records are private to the engine, store them, never edit them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateChanges {
    dns: Option<BTreeMap<String, DnType>>,
    calls: BTreeMap<u64, Option<Call>>,
}

impl StateChanges {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.dns.is_none() && self.calls.is_empty()
    }

    /// The new DN table record, if it changed.
    pub fn dns_record(&self) -> Option<Vec<u8>> {
        self.dns.as_ref().map(encode)
    }

    /// Each changed call by its PBX call id with what the console shows of it now, `None` when
    /// the call is over.
    pub fn live_calls(&self) -> impl Iterator<Item = (u64, Option<LiveCall>)> + '_ {
        self.calls
            .iter()
            .map(|(id, call)| (*id, call.as_ref().map(Call::live)))
    }

    /// Each changed call by its PBX call id: its new record, or `None` when the call is over
    /// and its record is to be deleted.
    pub fn call_records(&self) -> Vec<(u64, Option<Vec<u8>>)> {
        self.calls
            .iter()
            .map(|(id, call)| (*id, call.as_ref().map(encode)))
            .collect()
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("the engine state always serializes")
}

/// The pure event-derivation engine; see the `calls` module docs for its rules.
#[derive(Debug, Clone)]
pub struct Engine {
    config: EngineConfig,
    dns: BTreeMap<String, DnType>,
    calls: BTreeMap<u64, Call>,
    /// `(dn, participant id)` -> `callid` of every leg present (derived from `calls`).
    legs: BTreeMap<(String, u64), u64>,
    /// Every call's next deadline ([`Call::next_deadline`]), kept up to date after each change
    /// to the call (derived from `calls`), so that [`Engine::tick`] and
    /// [`Engine::next_deadline`] cost the calls that are due, not every call held.
    deadlines: Deadlines,
    /// What changed since [`Engine::take_changes`], once [`Engine::track_changes`] was called.
    touched: Option<Touched>,
}

/// The calls' next deadlines, ordered by time: an index over `Engine::calls`.
#[derive(Debug, Clone, Default)]
struct Deadlines {
    by_time: BTreeSet<(Timestamp, u64)>,
    by_call: BTreeMap<u64, Timestamp>,
}

impl Deadlines {
    /// Notes `deadline` as call `id`'s next one, replacing the one noted before.
    fn set(&mut self, id: u64, deadline: Option<Timestamp>) {
        let old = match deadline {
            Some(at) => self.by_call.insert(id, at),
            None => self.by_call.remove(&id),
        };
        if old == deadline {
            return;
        }
        if let Some(old) = old {
            self.by_time.remove(&(old, id));
        }
        if let Some(at) = deadline {
            self.by_time.insert((at, id));
        }
    }

    /// The earliest deadline of all calls.
    fn first(&self) -> Option<Timestamp> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// The calls whose deadline is `now` or earlier, earliest first.
    fn due(&self, now: Timestamp) -> Vec<u64> {
        self.by_time
            .range(..=(now, u64::MAX))
            .map(|(_, id)| *id)
            .collect()
    }
}

/// The parts of the state changed since they were last taken.
#[derive(Debug, Clone, Default)]
struct Touched {
    dns: bool,
    calls: BTreeSet<u64>,
}

impl Engine {
    /// An engine that knows no DNs and no calls yet; the first input should be a snapshot.
    pub fn new(config: EngineConfig) -> Self {
        Self::restore(config, EngineState::default())
    }

    /// An engine that continues from `state` (from [`Engine::state`] before a restart).
    pub fn restore(config: EngineConfig, state: EngineState) -> Self {
        let calls: BTreeMap<u64, Call> = state
            .calls
            .into_iter()
            .map(|c| (c.pbx_call_id(), c))
            .collect();
        let legs = calls
            .iter()
            .flat_map(|(&id, call)| call.leg_keys().map(move |key| (key, id)))
            .collect();
        let mut engine = Self {
            config,
            dns: state.dns,
            calls,
            legs,
            deadlines: Deadlines::default(),
            touched: None,
        };
        let ids: Vec<u64> = engine.calls.keys().copied().collect();
        for id in ids {
            engine.refresh_deadline(id);
        }
        engine
    }

    /// Panics unless `legs` and `deadlines` hold exactly what `calls` says: for tests that
    /// drive the engine through random histories.
    #[cfg(test)]
    pub(super) fn assert_indexes_match_calls(&self) {
        let legs: BTreeMap<(String, u64), u64> = self
            .calls
            .iter()
            .flat_map(|(&id, call)| call.leg_keys().map(move |key| (key, id)))
            .collect();
        assert_eq!(self.legs, legs, "the legs index");
        let held: usize = self
            .calls
            .values()
            .map(|call| call.leg_keys().count())
            .sum();
        assert_eq!(held, legs.len(), "a leg held by two calls");
        let grace = self.grace();
        let deadlines: BTreeMap<u64, Timestamp> = self
            .calls
            .iter()
            .filter_map(|(&id, call)| Some((id, call.next_deadline(grace)?)))
            .collect();
        assert_eq!(self.deadlines.by_call, deadlines, "the deadline index");
        let by_time: BTreeSet<(Timestamp, u64)> =
            deadlines.iter().map(|(&id, &at)| (at, id)).collect();
        assert_eq!(
            self.deadlines.by_time, by_time,
            "the deadline index by time"
        );
    }

    /// Notes call `id`'s next deadline after a change to it (none once the call is gone).
    fn refresh_deadline(&mut self, id: u64) {
        let grace = self.grace();
        let deadline = self.calls.get(&id).and_then(|c| c.next_deadline(grace));
        self.deadlines.set(id, deadline);
    }

    /// From now on, notes which parts of the state change, for [`Engine::take_changes`]: a host
    /// that persists the state writes only those, and the console's view rebuilds only those.
    pub fn track_changes(&mut self) {
        self.touched.get_or_insert_with(Touched::default);
    }

    /// The parts of the state changed since the last call (since [`Engine::track_changes`] the
    /// first time): the DN table if a snapshot replaced it, and every call that changed, with
    /// `None` for a call that is over. Empty while changes are not tracked.
    pub fn take_changes(&mut self) -> StateChanges {
        let Some(touched) = self.touched.as_mut().map(std::mem::take) else {
            return StateChanges::default();
        };
        StateChanges {
            dns: touched.dns.then(|| self.dns.clone()),
            calls: touched
                .calls
                .into_iter()
                .map(|id| (id, self.calls.get(&id).cloned()))
                .collect(),
        }
    }

    /// Notes the parts of `changes` as changed again, so the next [`Engine::take_changes`]
    /// returns them (with their state then): for a host that could not save them.
    pub fn retouch(&mut self, changes: &StateChanges) {
        if let Some(touched) = &mut self.touched {
            touched.dns |= changes.dns.is_some();
            touched.calls.extend(changes.calls.keys());
        }
    }

    fn touch(&mut self, callid: u64) {
        if let Some(touched) = &mut self.touched {
            touched.calls.insert(callid);
        }
    }

    /// Everything to persist so that [`Engine::restore`] carries on exactly where this left off.
    pub fn state(&self) -> EngineState {
        EngineState {
            dns: self.dns.clone(),
            calls: self.calls.values().cloned().collect(),
        }
    }

    /// Feeds one change, at the time the connector learnt it. Grace periods that ran out by
    /// then are settled first, so a late `tick` never turns a hang-up into a transfer.
    ///
    /// A snapshot (after every (re)connect) replaces the DN table, and participants known but
    /// absent from it are removed as of its time, with an approximate end time.
    pub fn apply(&mut self, change: Change) -> Output {
        let at = change.at();
        let mut out = self.tick(at);
        match change {
            Change::Snapshot {
                dns, participants, ..
            } => {
                self.dns = dns.into_iter().map(|d| (d.dn, d.dn_type)).collect();
                if let Some(touched) = &mut self.touched {
                    touched.dns = true;
                }
                let present: BTreeSet<(String, u64)> =
                    participants.iter().map(|p| (p.dn.clone(), p.id)).collect();
                let gone: Vec<(String, u64)> = self
                    .legs
                    .keys()
                    .filter(|key| !present.contains(*key))
                    .cloned()
                    .collect();
                for key in gone {
                    self.remove(
                        &key,
                        Departure {
                            at,
                            approximate: true,
                        },
                        &mut out,
                    );
                }
                for p in participants {
                    self.upsert(p, at, &mut out);
                }
            }
            Change::Upsert { participant, .. } => self.upsert(participant, at, &mut out),
            Change::Remove {
                dn, participant_id, ..
            } => {
                self.remove(
                    &(dn, participant_id),
                    Departure {
                        at,
                        approximate: false,
                    },
                    &mut out,
                );
            }
        }
        out
    }

    /// Settles every grace period that ran out by `now`: end events of hang-ups, missed calls,
    /// finished calls. Call it at [`Engine::next_deadline`].
    pub fn tick(&mut self, now: Timestamp) -> Output {
        let mut out = Output::default();
        let grace = self.grace();
        let ctx = ctx(&self.config, &self.dns, grace);
        for id in self.deadlines.due(now) {
            let Some(call) = self.calls.get_mut(&id) else {
                continue;
            };
            if let Some(touched) = &mut self.touched {
                touched.calls.insert(id);
            }
            if call.expire(&ctx, now, &mut out.events)
                && let Some(call) = self.calls.remove(&id)
            {
                // A call is over only once its last leg left, so no leg of it is indexed.
                debug_assert!(call.leg_keys().next().is_none());
                out.finished.extend(call.finish());
            }
            let deadline = self.calls.get(&id).and_then(|c| c.next_deadline(grace));
            self.deadlines.set(id, deadline);
        }
        out
    }

    /// When [`Engine::tick`] must be called next; `None` while nothing waits.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.deadlines.first()
    }

    /// Replaces the DID -> inbound rule table (e.g. after reading XAPI `InboundRules`); applies
    /// to every event from now on, including those of calls in progress.
    pub fn set_did_rules(&mut self, rules: BTreeMap<String, String>) {
        self.config.did_rules = rules;
    }

    /// The DID -> inbound rule table in use.
    pub fn did_rules(&self) -> &BTreeMap<String, String> {
        &self.config.did_rules
    }

    /// How many calls are in progress or waiting out their grace period.
    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    fn grace(&self) -> SignedDuration {
        SignedDuration::try_from(self.config.grace).map_or(MAX_GRACE, |g| g.min(MAX_GRACE))
    }

    fn upsert(&mut self, p: Participant, at: Timestamp, out: &mut Output) {
        if self
            .calls
            .get(&p.callid)
            .is_some_and(|call| call.has_leg_as(&p))
        {
            // A repeat (3CX re-announces every leg not yet connected): nothing changes, so
            // nothing is touched and nothing is saved again.
            return;
        }
        let key = (p.dn.clone(), p.id);
        if self
            .legs
            .get(&key)
            .is_some_and(|&callid| callid != p.callid)
        {
            // The same participant now belongs to another call: it left the old one.
            self.remove(
                &key,
                Departure {
                    at,
                    approximate: false,
                },
                out,
            );
        }
        let grace = self.grace();
        let ctx = ctx(&self.config, &self.dns, grace);
        let call = self
            .calls
            .entry(p.callid)
            .or_insert_with(|| Call::new(p.callid, fields::stamp(at, &self.config.time_zone), at));
        self.legs.insert(key, p.callid);
        let callid = p.callid;
        call.upsert(&ctx, p, at, &mut out.events);
        self.touch(callid);
        self.refresh_deadline(callid);
    }

    fn remove(&mut self, key: &(String, u64), left: Departure, out: &mut Output) {
        let Some(callid) = self.legs.remove(key) else {
            return;
        };
        let grace = self.grace();
        let ctx = ctx(&self.config, &self.dns, grace);
        if let Some(call) = self.calls.get_mut(&callid) {
            call.remove(&ctx, &key.0, key.1, left, &mut out.events);
        }
        self.touch(callid);
        self.refresh_deadline(callid);
    }
}

fn ctx<'a>(
    config: &'a EngineConfig,
    dns: &'a BTreeMap<String, DnType>,
    grace: SignedDuration,
) -> Ctx<'a> {
    Ctx {
        grace,
        report_internal_calls: config.report_internal_calls,
        did_rules: &config.did_rules,
        trunk_dids: &config.trunk_dids,
        dns,
    }
}
