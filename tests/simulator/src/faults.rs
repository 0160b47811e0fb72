//! Fault injection: the misbehaviours of a real PBX that clients must survive.
//!
//! Each switch maps to a sentence of `3cx-api.md`: upserts may arrive twice and repeat for
//! connected participants; the server may close sockets at any time and refuse upgrades with
//! `401`; a sequence gap means frames were lost; unknown event types must be ignored; an entity
//! GET may answer `404` because the participant vanished in between; another login supersedes
//! the token. Switches act on every open socket at once and stay as set until changed
//! ([`Faults::reset`] turns them all off). They can be flipped from Rust, from a scenario's
//! `[[fault]]` tables, or over HTTP through the binary's `/_sim/` endpoints.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use crate::server::token::TokenStore;
use crate::state::{Frame, Shared};

/// The fault injection switches of one simulator; get them with [`crate::SimHandle::faults`].
pub struct Faults {
    bus: broadcast::Sender<Frame>,
    tokens: Arc<TokenStore>,
    duplicate: AtomicBool,
    vanish_next: AtomicBool,
    unlicensed: AtomicBool,
    repeat: watch::Sender<Option<Duration>>,
    refuse_until: Mutex<Option<Instant>>,
    corrupt: Mutex<BTreeSet<u64>>,
}

impl Faults {
    pub(crate) fn new(bus: broadcast::Sender<Frame>, tokens: Arc<TokenStore>) -> Faults {
        Faults {
            bus,
            tokens,
            duplicate: AtomicBool::new(false),
            vanish_next: AtomicBool::new(false),
            unlicensed: AtomicBool::new(false),
            repeat: watch::Sender::new(None),
            refuse_until: Mutex::new(None),
            corrupt: Mutex::new(BTreeSet::new()),
        }
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

    /// Every `period`, send an upsert for each Connected participant although nothing changed
    /// (the field sees about 750 ms). `None` stops it. By default off.
    pub fn repeat_connected(&self, period: Option<Duration>) {
        self.repeat.send_replace(period);
    }

    /// Closes every open WebSocket now (clients must reconnect and resnapshot).
    pub fn drop_sockets(&self) {
        self.broadcast(Frame::Close);
    }

    /// Answers WebSocket upgrades with `401` for the next `window`, whatever the token.
    pub fn refuse_upgrades_for(&self, window: Duration) {
        *self.refuse_until.lock().expect("fault lock") = Some(Instant::now() + window);
    }

    pub(crate) fn refusing_upgrades(&self) -> bool {
        let until = *self.refuse_until.lock().expect("fault lock");
        until.is_some_and(|until| Instant::now() < until)
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
        self.corrupt.lock().expect("fault lock").insert(id);
    }

    pub(crate) fn is_corrupt(&self, id: u64) -> bool {
        self.corrupt.lock().expect("fault lock").contains(&id)
    }

    /// Turns every switch off (sockets already dropped stay dropped).
    pub fn reset(&self) {
        self.duplicate_upserts(false);
        self.repeat_connected(None);
        self.vanish_next.store(false, Ordering::SeqCst);
        self.unlicensed.store(false, Ordering::SeqCst);
        *self.refuse_until.lock().expect("fault lock") = None;
        self.corrupt.lock().expect("fault lock").clear();
    }

    /// A JSON summary of the switches, for `GET /_sim/faults`.
    pub(crate) fn describe(&self) -> Value {
        json!({
            "duplicate_upserts": self.duplicating(),
            "repeat_connected_ms": self.repeat.borrow().map(|p| p.as_millis() as u64),
            "refusing_upgrades": self.refusing_upgrades(),
            "vanish_next_upsert": self.vanish_next.load(Ordering::SeqCst),
            "no_licence": self.unlicensed(),
            "corrupt_recordings": *self.corrupt.lock().expect("fault lock"),
        })
    }
}

/// Runs the repeat-connected switch: sleeps while it is off, ticks while it is on.
pub(crate) async fn run_repeater(shared: Arc<Shared>) {
    let mut period = shared.faults.repeat.subscribe();
    loop {
        let current = *period.borrow_and_update();
        match current {
            None => {
                if period.changed().await.is_err() {
                    return;
                }
            }
            Some(every) => {
                tokio::select! {
                    _ = tokio::time::sleep(every) => shared.repeat_connected(),
                    changed = period.changed() => if changed.is_err() { return },
                }
            }
        }
    }
}
