//! The high-level call events of `call-events.md`, section 3, as the host passes them around.
//!
//! These are the host's own types; `runtime` converts them to the WIT records of the plugin
//! contract. Field names follow the spec's query-string keys where they exist.

use std::fmt;

/// A call id: `{yyMMddHHmmss}_{callid}-{link}`, e.g. `210701165649_782-1`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct CallId {
    /// When the call reached the PBX, `yyMMddHHmmss` in the PBX's time zone.
    pub stamp: String,
    /// The PBX's integer call id.
    pub pbx_call_id: u64,
    /// 0 while unanswered, 1 once answered, +1 per transfer.
    pub link: u32,
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}-{}", self.stamp, self.pbx_call_id, self.link)
    }
}

/// Which way the external party is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Direction {
    /// The external party called in.
    Incoming,
    /// A monitored extension dialled out.
    Outgoing,
}

/// `usertype`: how the call was addressed to the extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum UserType {
    /// Addressed to the extension itself (`ext`); also every outgoing call.
    Ext,
    /// The extension rings on behalf of a queue (`queue`).
    Queue,
    /// Ring groups, forwarding and everything else (`other`).
    Other,
}

/// `trtype`: how the extension came to hold the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum TransferType {
    /// An ordinary answer (`NotDef`).
    NotDef,
    /// Took the call over by a blind transfer (`Blind`).
    Blind,
    /// Joined the call already connected by an attended transfer (`Accomp`).
    Accomp,
}

/// `finishtype`: whether the extension talked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum FinishType {
    /// This extension talked (`Ok`).
    Ok,
    /// Nobody answered, or the called party never answered (`Missed`).
    Missed,
}

/// `ringing` or `dialing`: an extension is offered an incoming call or starts an outgoing one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Offered {
    /// The call id, with the link the extension works under.
    pub id: CallId,
    /// The external number (or the other extension for internal calls).
    pub caller_id: String,
    /// Inbound rule name, else dialled DID, else empty; empty for outgoing calls.
    pub did: String,
    /// The extension.
    pub user: String,
    /// How the call was addressed to the extension.
    pub user_type: UserType,
    /// Times, queue and `internal` (contract 0.2).
    #[serde(default)]
    pub facts: PartFacts,
}

/// `incomingcall_started` or `outgoingcall_started`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Started {
    /// The call id, with the link the extension works under.
    pub id: CallId,
    /// Incoming or outgoing.
    pub direction: Direction,
    /// The external number.
    pub caller_id: String,
    /// The extension.
    pub user: String,
    /// Inbound rule name, DID or empty.
    pub did: String,
    /// How the extension came to hold the call.
    pub transfer_type: TransferType,
    /// Times, queue and `internal` (contract 0.2).
    #[serde(default)]
    pub facts: PartFacts,
}

/// `incoming` or `outgoing`: an extension's part of the call ended, or the call ended unanswered.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ended {
    /// The call id, with the link the extension worked under.
    pub id: CallId,
    /// Incoming or outgoing.
    pub direction: Direction,
    /// The external number.
    pub caller_id: String,
    /// The extension (or the queue's DN for a call missed at queue level).
    pub user: String,
    /// Inbound rule name, DID or empty.
    pub did: String,
    /// Whether this extension talked.
    pub finish_type: FinishType,
    /// Whether this part ended because the extension passed the call on.
    pub transfer: bool,
    /// Talk time of this part in whole seconds (0 when missed).
    pub duration_secs: u32,
    /// One readable sentence describing the call.
    pub title: String,
    /// Times, queue and `internal` (contract 0.2).
    #[serde(default)]
    pub facts: PartFacts,
}

/// `recording`: the MP3s of a finished call are ready.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecordingReady {
    /// The call id with the link of the last part.
    pub id: CallId,
    /// Public links to the MP3 files, in order.
    pub files: Vec<String>,
    /// The call's last end event, for `RECORDING_FULL_INFO`.
    pub last_end: Option<Ended>,
    /// The files per talking part that has any (contract 0.2); `files` stays the list of all.
    #[serde(default)]
    pub parts: Vec<RecordingPart>,
}

/// The files of one talking part of a recorded call.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecordingPart {
    /// The part's call id, with its link (the `id` of its end event).
    pub id: CallId,
    /// The extension that talked.
    pub user: String,
    /// Links to the part's MP3 files, in order.
    pub files: Vec<String>,
}

/// What contract 0.2 adds to the events of a call's parts: when things happened, the group the
/// extension rang for, and whether the call is internal.
///
/// Times are UTC milliseconds since the Unix epoch, taken by the engine when it saw the
/// participant change (so they survive restarts with the engine's state). Events stored by a
/// host older than 0.2 have no facts: they read back as [`PartFacts::default`] (all zero and
/// none), which the runtime hands on as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartFacts {
    /// When the host first saw the call (the instant the id's stamp names, with milliseconds).
    pub call_started_at: u64,
    /// When this part began: its extension started ringing or dialing under this link; for a
    /// call missed at queue level, `call_started_at`; for an attended-transfer target, its
    /// answer time.
    pub offered_at: u64,
    /// When this part began talking (`started`, `ended`); none when missed.
    pub answered_at: Option<u64>,
    /// When this part ended, hang-up or hand-over (`ended` only).
    pub ended_at: Option<u64>,
    /// The queue or ring group the extension rang on behalf of; for a call missed at queue
    /// level, that queue.
    pub queue: Option<String>,
    /// True for a call without an external party (reported only with `report_internal_calls`).
    pub internal: bool,
}

/// `at` as UTC milliseconds since the Unix epoch (0 before it).
pub fn unix_ms(at: jiff::Timestamp) -> u64 {
    u64::try_from(at.as_millisecond()).unwrap_or(0)
}

/// One event for the plugins.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CallEvent {
    /// `ringing`.
    Ringing(Offered),
    /// `dialing`.
    Dialing(Offered),
    /// `incomingcall_started` / `outgoingcall_started`.
    Started(Started),
    /// `incoming` / `outgoing`.
    Ended(Ended),
    /// `recording`.
    Recording(RecordingReady),
}

impl CallEvent {
    /// The event's name on the wire of the default plugin (`event=` value).
    pub fn name(&self) -> &'static str {
        match self {
            CallEvent::Ringing(_) => "ringing",
            CallEvent::Dialing(_) => "dialing",
            CallEvent::Started(s) => match s.direction {
                Direction::Incoming => "incomingcall_started",
                Direction::Outgoing => "outgoingcall_started",
            },
            CallEvent::Ended(e) => match e.direction {
                Direction::Incoming => "incoming",
                Direction::Outgoing => "outgoing",
            },
            CallEvent::Recording(_) => "recording",
        }
    }

    /// The call id the event carries.
    pub fn call_id(&self) -> &CallId {
        match self {
            CallEvent::Ringing(o) | CallEvent::Dialing(o) => &o.id,
            CallEvent::Started(s) => &s.id,
            CallEvent::Ended(e) => &e.id,
            CallEvent::Recording(r) => &r.id,
        }
    }

    /// The times, queue and `internal` of the event's part; `None` for recordings.
    pub fn facts(&self) -> Option<&PartFacts> {
        match self {
            CallEvent::Ringing(o) | CallEvent::Dialing(o) => Some(&o.facts),
            CallEvent::Started(s) => Some(&s.facts),
            CallEvent::Ended(e) => Some(&e.facts),
            CallEvent::Recording(_) => None,
        }
    }

    /// The extension (or queue) the event is about; `None` for recordings.
    pub fn user(&self) -> Option<&str> {
        match self {
            CallEvent::Ringing(o) | CallEvent::Dialing(o) => Some(&o.user),
            CallEvent::Started(s) => Some(&s.user),
            CallEvent::Ended(e) => Some(&e.user),
            CallEvent::Recording(_) => None,
        }
    }

    /// A key that names this event uniquely and stays the same across retries and restarts:
    /// `{call id}.{event}.{user}` (`{call id}.recording` for recordings).
    ///
    /// The spec's "call id + event + link" alone would give every agent of a queue wave the same
    /// key for `ringing`; the extension is added so receivers can deduplicate safely.
    pub fn key(&self) -> String {
        match self.user() {
            Some(user) => format!("{}.{}.{}", self.call_id(), self.name(), user),
            None => format!("{}.{}", self.call_id(), self.name()),
        }
    }
}
