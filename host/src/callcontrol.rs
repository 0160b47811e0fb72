//! The data of 3CX's Call Control API as callhook uses it: the participants (one leg of a call
//! as seen from one DN), the DNs, and the changes the connector reports.
//!
//! A leaf: no I/O, and no dependency on the connector that reads these from the PBX
//! ([`crate::pbx`]) or on the engine that derives call events from them ([`crate::calls`]);
//! both use it, so the data crossing that arrow has one type.

pub(crate) mod lenient;
pub mod participant;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub use participant::{DnType, Participant, ParticipantStatus};

/// A DN the API client can see, as listed by a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dn {
    /// The DN's number or name, e.g. `"101"` or the route point's client id.
    pub dn: String,
    /// What kind of DN it is; only `Wextension` legs produce events.
    pub dn_type: DnType,
}

/// One thing the connector learnt about the PBX, with the time it learnt it.
///
/// The engine applies them in order; the time is when the connector received the information
/// (the snapshot or participant reply, or the remove frame).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// The complete visible state: every monitored DN and every participant on them.
    /// Participants known before and missing here are gone.
    Snapshot {
        /// When the snapshot reply arrived.
        at: Timestamp,
        /// Every DN the API client sees (extensions, queues, its route point, ...).
        dns: Vec<Dn>,
        /// Every participant of every DN, in the PBX's order.
        participants: Vec<Participant>,
    },
    /// A participant appeared or changed; this is its full current state.
    Upsert {
        /// When the participant's reply arrived.
        at: Timestamp,
        /// The participant as the PBX reported it.
        participant: Participant,
    },
    /// A participant is gone (remove frame, or its fetch answered `404`).
    Remove {
        /// When the remove frame or the `404` arrived.
        at: Timestamp,
        /// The DN the participant belonged to.
        dn: String,
        /// The participant's id.
        participant_id: u64,
    },
}

impl Change {
    /// When the connector learnt this change.
    pub fn at(&self) -> Timestamp {
        match self {
            Change::Snapshot { at, .. } | Change::Upsert { at, .. } | Change::Remove { at, .. } => {
                *at
            }
        }
    }
}
