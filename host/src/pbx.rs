//! The 3CX connector: token, REST, event socket, snapshot reconciliation, capture.
//!
//! The connector watches a 3CX V20 PBX through its Call Control API (`3cx-api.md`, sections 1–3
//! and 5) and turns what it sees into a stream of timestamped [`Change`]s: full snapshots,
//! participant upserts and participant removes. It holds **no call logic**: deciding what a
//! change means (ringing, answered, transferred, missed) is the job of the pure engine in
//! `calls`, which is idempotent, so the connector may repeat itself freely and prefers a
//! redundant snapshot to a missed change.
//!
//! # Layout
//!
//! | file | job |
//! |---|---|
//! | [`config`] | [`ConnectorConfig`]: where the PBX is, credentials, timings, with defaults |
//! | [`token`] | the one token manager shared by WebSocket, REST and XAPI |
//! | `http` | TLS setup (with an extra trusted CA) and transport error classification |
//! | [`rest`] | typed REST client (token, `401`, capture) and the Call Control requests |
//! | [`xapi`] | the XAPI requests: recordings, their audio, inbound rules |
//! | [`socket`] | the `/callcontrol/ws` event socket and its frame format |
//! | [`connector`] | the loop: socket, snapshot, upserts, gaps, resnapshots, reconnects |
//! | `fetches` | participant fetches: concurrent, repeats folded, results in frame order |
//! | `lenient` | field readers for the PBX's nulls and odd shapes |
//! | `backoff` | capped exponential backoff with jitter |
//! | [`stats`] | counters for metrics and health |
//! | [`capture`] | writing every frame and GET reply as JSON lines, and replaying them |
//! | [`participant`] | the participant record as the PBX sends it |
//! | [`probe`] | which of Call Control and XAPI the API client may use |
//!
//! # The stream
//!
//! After every (re)connect the connector opens the event socket first and then takes a
//! snapshot (`GET /callcontrol`), so no change can fall between the two: it emits
//! [`Change::Snapshot`], then a [`Change::Upsert`] per participant fetch that upsert frames
//! caused (repeats of one participant fold into one fetch) and one [`Change::Remove`] per
//! remove frame or per fetch answered `404`, in the order of the frames. A `sequence` gap, a
//! malformed frame, the planned token refresh and the periodic timer (60 s by default) each
//! cause another snapshot. Participants missing from a snapshot are gone: the engine
//! reconciles. Whatever the PBX sends is read under the tolerance rule of `3cx-api.md`: a
//! `null` or missing field reads as empty, and an object that cannot be used is skipped alone.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use callhook::pbx::{Connector, ConnectorConfig};
//! use tokio_util::sync::CancellationToken;
//!
//! let config = ConnectorConfig::new("https://pbx.example.com:5001".parse()?, "callhook", "s3cret");
//! let connector = Connector::new(config, None)?;
//! let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
//! let cancel = CancellationToken::new();
//! let task = tokio::spawn(connector.run(tx, cancel.clone()));
//! while let Some(change) = rx.recv().await {
//!     println!("{change:?}");
//! }
//! cancel.cancel();
//! task.await??;
//! # Ok(()) }
//! ```

mod backoff;
pub mod capture;
pub mod config;
pub mod connector;
mod fetches;
mod http;
mod lenient;
pub mod participant;
pub mod probe;
#[cfg(test)]
mod proptests;
pub mod replay;
pub mod rest;
pub mod socket;
pub mod stats;
pub mod token;
pub mod users;
pub mod xapi;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub use capture::{CaptureError, CaptureWriter};
pub use config::ConnectorConfig;
pub use connector::{ConnectionState, Connector, ConnectorError};
pub use http::TransportError;
pub use participant::{DnType, Participant, ParticipantStatus};
pub use replay::Replay;
pub use rest::{FetchedParticipant, ParticipantReply, RestClient, RestError};
pub use stats::{ConnectorStats, Moments, StatsSnapshot};
pub use token::{Secret, TokenError, TokenManager};

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
/// This mirrors the engine's `Input` one to one; the time is when the connector received the
/// information (the snapshot or participant reply, or the remove frame).
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
    /// The snapshot change for the DN objects of a `GET /callcontrol` reply.
    pub(crate) fn snapshot(at: Timestamp, dns: Vec<rest::DnObject>) -> Change {
        let mut list = Vec::with_capacity(dns.len());
        let mut participants = Vec::new();
        for dn in dns {
            list.push(Dn {
                dn: dn.dn,
                dn_type: dn.dn_type,
            });
            participants.extend(dn.participants);
        }
        Change::Snapshot {
            at,
            dns: list,
            participants,
        }
    }

    /// When the connector learnt this change.
    pub fn at(&self) -> Timestamp {
        match self {
            Change::Snapshot { at, .. } | Change::Upsert { at, .. } | Change::Remove { at, .. } => {
                *at
            }
        }
    }
}
