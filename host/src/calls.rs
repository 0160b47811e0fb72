//! Turns the 3CX participant stream into high-level call events (`call-events.md`, sections 2–4).
//!
//! This module is **pure**: no I/O, no async, no clock. Time comes in as data, so the whole
//! behaviour is reproducible in tests and after a restart.
//!
//! # Using the engine
//!
//! ```ignore
//! let mut engine = Engine::new(EngineConfig::default());
//! let out = engine.apply(Change::Snapshot { at, dns, participants });    // after every (re)connect
//! let out = engine.apply(Change::Upsert { at, participant });            // per upsert frame + GET
//! let out = engine.apply(Change::Remove { at, dn, participant_id });     // per remove frame / 404
//! let out = engine.tick(now);                // whenever `engine.next_deadline()` has passed
//! store(engine.state());                     // after each call; `Engine::restore` on start
//! ```
//! Each [`Output`] lists the events to deliver in order, and the [`FinishedCall`]s whose
//! recordings may now be looked for. `apply` settles expired grace periods before the input, so a
//! late `tick` cannot turn a hang-up into a transfer. [`EngineState`] (serde) holds calls and DN
//! types but no settings; persisting it after every `apply`/`tick` keeps ids, links and "already
//! sent" across restarts (scenario 11).
//!
//! # Model
//!
//! A **call** is every participant (leg) with one `callid`, on any DN. Legs on DNs of type
//! `Wextension` in the last snapshot are *monitored*; only they produce events. A DN not in the
//! snapshot counts as unmonitored until the next snapshot names it. Per call the engine keeps:
//! - the **stamp**: when the first leg was seen, `yyMMddHHmmss` in `EngineConfig::time_zone`,
//!   fixed for the call's life (changing the time zone later does not rename calls in progress);
//! - the **link**: 0 until the first answer, then 1; +1 per transfer; it never decreases;
//! - per monitored extension one **part**: *offered* (ringing/dialing), *talking*, or *leaving*
//!   (its legs are gone and the grace period decides between hang-up and transfer). A part
//!   keeps the link of its events; ringing under link 0 and answering makes the call link 1;
//! - the set of `(extension, link)` pairs that got `ringing`/`dialing`, so a queue agent rings
//!   once per link however many waves offer it the call;
//! - the **last offer** (the extension, or its queue/ring group), for the one `Missed` event.
//!
//! Events fire only on part transitions, and an unchanged upsert is ignored outright, so repeated
//! and duplicate upserts never repeat an event.
//!
//! # Rules
//!
//! - **Offer.** A monitored leg first seen `Ringing` (incoming) or `Dialing` (outgoing) creates an
//!   offered part and sends `ringing`/`dialing` unless that extension already had one under this
//!   link. An offered part whose legs all go away ends silently: the call moved past it.
//! - **Undecided.** A leg whose party is not known yet (`party_dn_type` `None`: the party-less
//!   first `Dialing` upsert of an outbound call) in a call not yet known external is neither
//!   internal nor external: its part is *undecided* and sends nothing. The leg's first later
//!   upsert that shows its party, or connects, decides: the offer is made then (`dialing` with
//!   the party's number, if the call is reported), followed at once by the answer if the leg
//!   connected. Decided internal, it has sent nothing (unless `report_internal_calls`); an
//!   undecided part whose legs go away ends silently.
//! - **Statuses.** `Dialing`, `Ringing` and `Connected` are 3CX's; `Hold`/`Held` (the model's)
//!   count as connected. Any other status (`Unknown`) changes nothing: a talking part goes on
//!   talking, any other leg is kept (it counts as present) but waits for a known status.
//! - **Answer.** A leg becoming `Connected` (or `Hold`/`Held`) starts the part: link 0 becomes 1,
//!   `started` is sent. `trtype` is `Blind` if the part rang and the call came by transfer
//!   (the link was moved on by a transfer, or `referred_by` names a person), `Accomp` if the part
//!   appeared already connected after a transfer, else `NotDef`.
//! - **Leave.** When the last leg of a talking extension goes away: if a leg appeared in the call
//!   after that extension answered and is still there, the call was passed on: the end event goes
//!   out at once with `transfer=true` and the link moves on. Otherwise the part is *leaving*: a new
//!   leg within the grace period makes it a transfer (its end event is sent first, then the link
//!   moves on and the new leg's events follow under the new link); when the grace period runs out
//!   it ended by hang-up (`transfer=false`). A new leg on the leaving extension itself (a device
//!   reconnecting) resumes the same part.
//! - **Transfer in progress.** A monitored leg that appears while another extension is talking is
//!   held back: its steps are recorded, not reported, until the talker leaves (then they replay
//!   under the new link, so the old holder's end event always comes first, whichever order the PBX
//!   used). If the held leg goes away before that, the transfer was abandoned and nothing is sent.
//! - **End of call.** When the last leg of the call goes away the call waits the grace period (a
//!   queue's next wave or a transfer target may still appear), then closes. If its current link
//!   was never answered and some monitored extension was offered the call under that link, one
//!   `Missed` end event is sent: for the queue or ring group the last offered extension rang for
//!   ("ended at queue level"), else for that extension, with the direction of its offer.
//! - **Duration** is talk time from answer to leaving, hold included, rounded to the nearest whole
//!   second; 0 for missed.
//! - **Reconnect.** A snapshot removes every known leg it no longer shows as of the snapshot time
//!   (durations are measured to it and the titles say ` (end time approximate)`), then upserts
//!   every leg it shows. Calls still present keep their ids, links and parts.
//!
//! # Field decisions where the spec is silent
//!
//! - `direction` is per part: `Dialing` first is outgoing, `Ringing` first incoming; a part that
//!   joins already connected takes the direction of the call's first part (incoming if none).
//!   So a transfer target of an outgoing call gets `incomingcall_started` only if it rang.
//! - `usertype`: `queue` for `on_behalf_of`/`originated_by` = `Wqueue`; `ext` when nothing, a route
//!   point or an IVR routed the leg, and for transfer targets; `other` otherwise (ring groups,
//!   forwarding); always `ext` for outgoing.
//! - `callerid`: the leg's external party; else the call's first external number (an agent leg
//!   may show the queue as its party); for internal calls the other extension.
//! - `did`: computed for each event from the current rules and the call's DID number: the first
//!   non-empty `party_did` seen on any leg, else `EngineConfig::trunk_dids` for the trunk
//!   (`party_dn`) of the first leg that showed an external party, else none. Rule lookup is
//!   exact, then digits-only ([`did_digits`]). Empty for outgoing.
//! - A call is external as soon as any leg shows a `Wexternalline` party; legs seen before that,
//!   in a call not yet known external, produce nothing unless `report_internal_calls` is on.
//! - Ring groups are treated like queues for the missed-at-group-level event (`in ring group N`),
//!   so a missed ring-group call is reported once, for the group.
//! - No `Missed` event when no monitored extension was offered the call under its final link
//!   (e.g. it only reached an IVR, or a queue whose agents are not monitored): every end event
//!   follows an offer or a start with the same id.
//! - The Call Control API does not report callback requests, so titles never say
//!   `callback requested`.
//! - Queue waves further apart than the grace period, with the queue DN itself not monitored,
//!   look like two calls (the second gets a new stamp); raise `grace` if a PBX waits longer.
//!
//! # Titles
//!
//! `{D}` is `"{did}: "` when the event's `did` is non-empty (incoming only), `{T}` the duration as
//! `HH:MM:SS`, `{A}` is ` (end time approximate)` after a reconnect inferred the end, else empty:
//! - `{D}answered incoming call from {callerid} to {user}, {T}{A}`
//! - `{D}answered incoming call from {callerid} to {user}, transferred after {T}{A}`
//! - `{D}missed incoming call from {callerid} to {user}{A}`
//! - `{D}missed incoming call from {callerid} in queue {queue}{A}`
//! - `{D}missed incoming call from {callerid} in ring group {group}{A}`
//! - `answered outgoing call from {user} to {callerid}, {T}{A}`
//! - `answered outgoing call from {user} to {callerid}, transferred after {T}{A}`
//! - `missed outgoing call from {user} to {callerid}{A}`

pub mod e164;
pub mod event;

mod call;
mod engine;
mod fields;
mod title;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod script;
#[cfg(test)]
mod tests;

pub use engine::{
    CallPart, Engine, EngineConfig, EngineState, FinishedCall, LiveCall, Output, StateChanges,
    UnreadableRecord,
};
pub use fields::did_digits;
