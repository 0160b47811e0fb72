//! Fault injection: the misbehaviours of a real PBX that clients must survive.
//!
//! Each switch maps to a sentence of `3cx-api.md`: upserts may arrive twice, and repeat about
//! every 750 ms for legs not yet connected; the server may close sockets at any time, cleanly or
//! without a close frame, and refuse upgrades with `401`; a sequence gap means frames were lost;
//! unknown event types and frames about other entities must be ignored; an entity GET may answer
//! `404` because the participant vanished in between, or `403` because the leg is not visible to
//! the client; another login supersedes the token; every field may be `null` or missing; XAPI may
//! answer `403`. Switches act on every open socket at once and stay as set until changed.
//! [`Faults::reset`] turns them all off, except that the two with a [`crate::SimConfig`] default
//! ([`Faults::repeat_unconnected`], [`Faults::get_delay`]) go back to that default. They can be
//! flipped from Rust, from a scenario's `[[fault]]` tables, or over HTTP through the `/_sim/`
//! endpoints.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use crate::config::RepeatPhase;
use crate::server::token::TokenStore;
use crate::state::{Frame, Shared};

/// How Call Control replies write absent values; see [`Faults::nulls`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Nulls {
    /// `""` for absent strings, `"None"` for absent types, `[]` for no devices: what every live
    /// sample shows. The default.
    #[default]
    Off,
    /// JSON `null` instead of each `""` and `"None"` of DNs, devices and participants, and
    /// `"devices": null` on DNs without devices (route points, queues, IVRs).
    Null,
    /// Those keys left out entirely.
    Missing,
}

/// How the simulator ends a socket; see [`Faults::close_on_new_token`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketClose {
    /// A close frame, then the TCP close.
    Clean,
    /// The TCP connection is closed without a close frame: the client sees `1006`.
    Abnormal,
}

/// A field of an XAPI recording row that can be published as `null`; see
/// [`Faults::null_recording_field`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingField {
    /// `RecordingUrl`: the row names no file.
    RecordingUrl,
    /// `CallType`: the direction is unknown.
    CallType,
    /// `EndTime`: the row has no end (clients never match it).
    EndTime,
}

impl RecordingField {
    /// The XAPI field name.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingField::RecordingUrl => "RecordingUrl",
            RecordingField::CallType => "CallType",
            RecordingField::EndTime => "EndTime",
        }
    }
}

/// The switches that are plain settings, read by the handlers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Switches {
    pub nulls: Nulls,
    pub unusable_participants: bool,
    pub forbidden_participants_of: BTreeSet<String>,
    pub failing_participants_of: BTreeSet<String>,
    pub forbid_xapi: bool,
    pub close_on_new_token: Option<SocketClose>,
    pub null_recording_field: Option<RecordingField>,
    pub get_delay: Duration,
    refuse_until: Option<Instant>,
    corrupt: BTreeSet<u64>,
}

/// Which legs a repeater re-announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repeat {
    /// Legs that are `Connected` (the older, stronger stress test).
    Connected,
    /// Legs not yet `Connected` (`Ringing`, `Dialing`): what 3CX does.
    Unconnected,
}

/// The fault injection switches of one simulator; get them with [`crate::SimHandle::faults`].
pub struct Faults {
    bus: broadcast::Sender<Frame>,
    tokens: Arc<TokenStore>,
    duplicate: AtomicBool,
    vanish_next: AtomicBool,
    unlicensed: AtomicBool,
    repeat_connected: watch::Sender<Option<Duration>>,
    repeat_unconnected: watch::Sender<Option<Duration>>,
    /// The configured defaults [`Faults::reset`] returns to: (repeat unconnected, GET delay).
    defaults: (Option<Duration>, Duration),
    switches: Mutex<Switches>,
}

impl Faults {
    pub(crate) fn new(
        bus: broadcast::Sender<Frame>,
        tokens: Arc<TokenStore>,
        repeat_unconnected: Option<Duration>,
        get_delay: Duration,
    ) -> Faults {
        Faults {
            bus,
            tokens,
            duplicate: AtomicBool::new(false),
            vanish_next: AtomicBool::new(false),
            unlicensed: AtomicBool::new(false),
            repeat_connected: watch::Sender::new(None),
            repeat_unconnected: watch::Sender::new(repeat_unconnected),
            defaults: (repeat_unconnected, get_delay),
            switches: Mutex::new(Switches {
                get_delay,
                ..Switches::default()
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Switches> {
        self.switches.lock().expect("fault lock")
    }

    /// A copy of the plain switches, for the handlers.
    pub(crate) fn switches(&self) -> Switches {
        self.lock().clone()
    }

    fn broadcast(&self, frame: Frame) {
        // With no socket open there is nobody to disturb.
        let _ = self.bus.send(frame);
    }

    /// While on, every upsert event is sent twice in a row. By default off.
    pub fn duplicate_upserts(&self, on: bool) {
        self.duplicate.store(on, Ordering::SeqCst);
    }

    pub(crate) fn duplicating(&self) -> bool {
        self.duplicate.load(Ordering::SeqCst)
    }

    /// Every `period`, send an upsert for each `Connected` participant although nothing
    /// changed: a stress test beyond what 3CX does (see [`Faults::repeat_unconnected`]). `None`
    /// stops it. By default off.
    pub fn repeat_connected(&self, period: Option<Duration>) {
        self.repeat_connected.send_replace(period);
    }

    /// Every `period` (wall-clock time; 3CX: about 750 ms), send an upsert for each participant
    /// that is not yet `Connected` (`Ringing`, `Dialing`), as 3CX does until the leg is
    /// connected. `None` stops it. By default [`crate::SimConfig::repeat_unconnected`] (750 ms).
    pub fn repeat_unconnected(&self, period: Option<Duration>) {
        self.repeat_unconnected.send_replace(period);
    }

    /// Waits `delay` before answering each `GET /callcontrol/{dn}/participants/{id}`, as a
    /// remote PBX does (e.g. 50 ms). By default [`crate::SimConfig::get_delay`] (none).
    pub fn get_delay(&self, delay: Duration) {
        self.lock().get_delay = delay;
    }

    /// Closes every open WebSocket now with a close frame (clients must reconnect and
    /// resnapshot).
    pub fn drop_sockets(&self) {
        self.broadcast(Frame::Close);
    }

    /// Drops every open WebSocket now without a close frame: the TCP connection just ends, and
    /// the client sees an abnormal closure (`1006`).
    pub fn abnormal_close(&self) {
        self.broadcast(Frame::Abort);
    }

    /// When `Some`, each token minted through `POST /connect/token` ends every socket open at
    /// that moment, that way (sockets opened afterwards with the new token live on). `None`
    /// stops it. By default off: a new token leaves open sockets running.
    pub fn close_on_new_token(&self, close: Option<SocketClose>) {
        self.lock().close_on_new_token = close;
    }

    /// Called after each token minted through the endpoint.
    pub(crate) fn token_minted(&self) {
        match self.lock().close_on_new_token {
            Some(SocketClose::Clean) => self.drop_sockets(),
            Some(SocketClose::Abnormal) => self.abnormal_close(),
            None => {}
        }
    }

    /// Answers WebSocket upgrades with `401` for the next `window`, whatever the token.
    pub fn refuse_upgrades_for(&self, window: Duration) {
        self.lock().refuse_until = Some(Instant::now() + window);
    }

    pub(crate) fn refusing_upgrades(&self) -> bool {
        let until = self.lock().refuse_until;
        until.is_some_and(|until| Instant::now() < until)
    }

    /// How DN, device and participant objects write absent values (in the snapshot, DN and
    /// participant replies alike). By default [`Nulls::Off`].
    pub fn nulls(&self, nulls: Nulls) {
        self.lock().nulls = nulls;
    }

    /// While on, every extension DN in Call Control replies lists two more participants that
    /// clients must skip: one without `id`, one without `callid`. By default off.
    pub fn unusable_participants(&self, on: bool) {
        self.lock().unusable_participants = on;
    }

    /// Answers `403` to every `GET /callcontrol/{dn}/participants/{id}` of `dn` from now on (a
    /// leg not visible to this client), while snapshots keep listing its participants. Cleared
    /// by [`Faults::reset`].
    pub fn forbid_participants_of(&self, dn: &str) {
        self.lock().forbidden_participants_of.insert(dn.to_owned());
    }

    /// Answers `500` to every `GET /callcontrol/{dn}/participants/{id}` of `dn` from now on (a
    /// PBX failing on one leg), while snapshots keep listing its participants. Cleared by
    /// [`Faults::reset`].
    pub fn fail_participants_of(&self, dn: &str) {
        self.lock().failing_participants_of.insert(dn.to_owned());
    }

    /// While on, every `/xapi` request with a valid token gets `403`, as for an API client
    /// without XAPI access or role. Tokens and Call Control keep working. By default off.
    pub fn forbid_xapi(&self, on: bool) {
        self.lock().forbid_xapi = on;
    }

    /// While `Some`, recordings published from now on carry `null` in that field of their
    /// XAPI row. `None` stops it (rows already published keep their `null`). By default off.
    pub fn null_recording_field(&self, field: Option<RecordingField>) {
        self.lock().null_recording_field = field;
    }

    /// Sends two upsert frames about entities that are not participants, which clients must
    /// ignore while counting their sequence numbers: `/callcontrol/{dn}/devices/{device}` (the
    /// DN's first device, `sip:{dn}@127.0.0.1:5060`) and `/callcontrol/{dn}`.
    pub fn non_participant_frames(&self, dn: &str) {
        let device = crate::scenario::device_id(dn, "Wextension");
        self.send_event(
            0,
            &format!("/callcontrol/{dn}/devices/{device}"),
            Value::Null,
        );
        self.send_event(0, &format!("/callcontrol/{dn}"), Value::Null);
    }

    /// Every open socket skips one sequence number: its next frame shows a gap.
    pub fn skip_sequence(&self) {
        self.broadcast(Frame::SkipSequence);
    }

    /// Sends a text frame that is not JSON to every open socket (it takes a sequence number).
    pub fn malformed_frame(&self) {
        self.broadcast(Frame::Raw("{\"sequence\": this is not json".to_owned()));
    }

    /// Sends a well-formed event with `event_type` 7, which clients must ignore.
    pub fn unknown_event_type(&self) {
        self.send_event(7, "/callcontrol/000/participants/0", Value::Null);
    }

    /// Sends any event frame, e.g. DTMF: `send_event(2, entity, json!({"dtmf_input": "1"}))`.
    pub fn send_event(&self, event_type: u32, entity: &str, attached_data: Value) {
        self.broadcast(Frame::Event {
            event_type,
            entity: entity.to_owned(),
            attached_data,
        });
    }

    /// The participant of the next upsert answers `404` to its entity GET (and is missing from
    /// snapshots) until it changes again, as if it vanished between event and GET.
    pub fn vanish_next_upsert(&self) {
        self.vanish_next.store(true, Ordering::SeqCst);
    }

    pub(crate) fn take_vanish_next(&self) -> bool {
        self.vanish_next.swap(false, Ordering::SeqCst)
    }

    /// Mints a token nobody holds, as if another client logged in with the same credentials:
    /// the client's token gets `401` from now on. Not counted in
    /// [`crate::SimHandle::tokens_issued`].
    pub fn supersede_token(&self) {
        self.tokens.supersede();
    }

    /// While on, the Call Control endpoints (REST and the WebSocket upgrade) answer `403`, as a
    /// PBX without a Call Control licence does; tokens and XAPI keep working. By default off.
    pub fn no_licence(&self, on: bool) {
        self.unlicensed.store(on, Ordering::SeqCst);
    }

    pub(crate) fn unlicensed(&self) -> bool {
        self.unlicensed.load(Ordering::SeqCst)
    }

    /// Serves (and writes into the recordings folder) broken bytes instead of the WAV of the
    /// recording with XAPI `Id` `id`. May be set before the recording exists.
    pub fn corrupt_recording(&self, id: u64) {
        self.lock().corrupt.insert(id);
    }

    pub(crate) fn is_corrupt(&self, id: u64) -> bool {
        self.lock().corrupt.contains(&id)
    }

    /// Turns every switch off, or back to its [`crate::SimConfig`] default (sockets already
    /// dropped stay dropped).
    pub fn reset(&self) {
        let (repeat_unconnected, get_delay) = self.defaults;
        self.duplicate_upserts(false);
        self.repeat_connected(None);
        self.repeat_unconnected(repeat_unconnected);
        self.vanish_next.store(false, Ordering::SeqCst);
        self.unlicensed.store(false, Ordering::SeqCst);
        *self.lock() = Switches {
            get_delay,
            ..Switches::default()
        };
    }

    /// A JSON summary of the switches, for `GET /_sim/faults`.
    pub(crate) fn describe(&self) -> Value {
        let millis = |period: Option<Duration>| period.map(|p| p.as_millis() as u64);
        let switches = self.switches();
        json!({
            "duplicate_upserts": self.duplicating(),
            "repeat_connected_ms": millis(*self.repeat_connected.borrow()),
            "repeat_unconnected_ms": millis(*self.repeat_unconnected.borrow()),
            "get_delay_ms": switches.get_delay.as_millis() as u64,
            "refusing_upgrades": self.refusing_upgrades(),
            "vanish_next_upsert": self.vanish_next.load(Ordering::SeqCst),
            "no_licence": self.unlicensed(),
            "corrupt_recordings": switches.corrupt,
            "nulls": format!("{:?}", switches.nulls).to_lowercase(),
            "unusable_participants": switches.unusable_participants,
            "forbidden_participants_of": switches.forbidden_participants_of,
            "failing_participants_of": switches.failing_participants_of,
            "forbid_xapi": switches.forbid_xapi,
            "close_on_new_token": switches.close_on_new_token.map(|c| format!("{c:?}").to_lowercase()),
            "null_recording_field": switches.null_recording_field.map(RecordingField::as_str),
        })
    }
}

/// How often a repeater with [`RepeatPhase::PerLeg`] looks for legs whose period is up: each
/// leg's repeat is at most this late.
const PER_LEG_TICK: Duration = Duration::from_millis(10);

/// Runs one repeat switch: sleeps while it is off, ticks while it is on (at the period with
/// [`RepeatPhase::Together`], every [`PER_LEG_TICK`] with [`RepeatPhase::PerLeg`]).
pub(crate) async fn run_repeater(shared: Arc<Shared>, which: Repeat) {
    let mut period = match which {
        Repeat::Connected => shared.faults.repeat_connected.subscribe(),
        Repeat::Unconnected => shared.faults.repeat_unconnected.subscribe(),
    };
    loop {
        let current = *period.borrow_and_update();
        match current {
            None => {
                if period.changed().await.is_err() {
                    return;
                }
            }
            Some(every) => {
                let (tick, due_after) = match shared.config.repeat_phase {
                    RepeatPhase::Together => (every, Duration::ZERO),
                    RepeatPhase::PerLeg => (every.min(PER_LEG_TICK), every),
                };
                tokio::select! {
                    _ = tokio::time::sleep(tick) => shared.repeat(which, due_after),
                    changed = period.changed() => if changed.is_err() { return },
                }
            }
        }
    }
}
