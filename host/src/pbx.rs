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
//! | `fetches` | participant fetches: concurrent, repeats folded, newest frame first, results in the order the GETs went out |
//! | `backoff` | capped exponential backoff with jitter |
//! | [`stats`] | counters for metrics and health |
//! | [`capture`] | writing every frame and GET reply as JSON lines |
//! | [`replay`] | a capture read back as the changes it meant |
//! | [`users`] | the PBX's user list, read from XAPI |
//! | [`probe`] | which of Call Control and XAPI the API client may use |
//!
//! The participant record as the PBX sends it, and the readers for its nulls and odd shapes,
//! are in [`crate::callcontrol`], shared with the engine.
//!
//! # The stream
//!
//! After every (re)connect the connector opens the event socket first and then takes a
//! snapshot (`GET /callcontrol`), so no change can fall between the two: it emits
//! [`Change::Snapshot`], then a [`Change::Upsert`] per participant fetch that upsert frames
//! caused (repeats of one participant fold into one fetch) and one [`Change::Remove`] per
//! remove frame or per fetch answered `404`, in the order the fetches went out (a remove where
//! its frame came). A `sequence` gap, a
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

use crate::callcontrol::{Change, Dn};
use jiff::Timestamp;

pub use capture::{CaptureError, CaptureWriter};
pub use config::ConnectorConfig;
pub use connector::{ConnectionState, Connector, ConnectorError};
pub use http::TransportError;
pub use replay::Replay;
pub use rest::{FetchedParticipant, ParticipantReply, RestClient, RestError};
pub use stats::{ConnectorStats, Moments, StatsSnapshot};
pub use token::{Secret, TokenError, TokenManager};

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
}
