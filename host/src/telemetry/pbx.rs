//! What happens in the 3CX connector and is worth a log line: each event logs once and counts
//! into the connector's [`ConnectorStats`] (`callhook_pbx_total{what=...}`). What is only
//! counted (frames, fetches, `401`s ...) the connector counts on its `ConnectorStats` directly.

use crate::pbx::ConnectorStats;
use std::fmt::Display;
use std::time::Duration;

/// The log target: the connector's, so that `RUST_LOG` filters by component as before.
const TARGET: &str = "callhook::pbx::connector";

/// An event frame that is not JSON or lacks `event`/`event_type`/a valid `entity`: skipped.
/// Counted as `malformed_frames`.
pub(crate) struct FrameMalformed<'a> {
    pub error: &'a dyn Display,
    /// The frame, shortened.
    pub frame: &'a str,
}

impl FrameMalformed<'_> {
    pub(crate) fn emit(&self, stats: &ConnectorStats) {
        tracing::warn!(
            target: TARGET,
            error = %self.error,
            frame = self.frame,
            "skipped a malformed event frame"
        );
        stats.count_malformed_frame();
    }
}

/// An event frame with an `event_type` this version does not know: skipped. Counted as
/// `unknown_events`.
pub(crate) struct UnknownEventSkipped<'a> {
    pub event_type: u64,
    pub entity: &'a dyn Display,
}

impl UnknownEventSkipped<'_> {
    pub(crate) fn emit(&self, stats: &ConnectorStats) {
        tracing::warn!(
                target: TARGET,
            event_type = self.event_type,
            entity = %self.entity,
            "skipped an event of unknown type"
        );
        stats.count_unknown_event();
    }
}

/// The frames' `sequence` jumped: frames were lost, and a snapshot follows after
/// `snapshot_in`. Counted as `sequence_gaps`.
pub(crate) struct SequenceGap {
    pub expected: u64,
    pub got: u64,
    pub snapshot_in: Duration,
}

impl SequenceGap {
    pub(crate) fn emit(&self, stats: &ConnectorStats) {
        tracing::warn!(
                target: TARGET,
            expected = self.expected,
            got = self.got,
            snapshot_in_ms = self.snapshot_in.as_millis() as u64,
            "event sequence gap: frames were lost; a snapshot follows"
        );
        stats.count_sequence_gap();
    }
}

/// An object of a snapshot that cannot be used (a participant without `id` or `callid`, a DN
/// without `dn`): skipped alone. Counted each time as `skipped_objects`; logged only when
/// `first` (the connector remembers which objects it warned about, so a snapshot repeated
/// every few minutes does not repeat the warning).
pub(crate) struct SnapshotObjectSkipped<'a> {
    pub object: &'a dyn Display,
    pub first: bool,
}

impl SnapshotObjectSkipped<'_> {
    pub(crate) fn emit(&self, stats: &ConnectorStats) {
        if self.first {
            tracing::warn!(
                target: TARGET,
                object = %self.object,
                "skipped an object of the snapshot that cannot be used"
            );
        }
        stats.count_skipped_object();
    }
}

/// A participant fetch answered `403`: the DN's legs are not visible to this API client and
/// are skipped. Logged only when `first` for the DN; counted by the REST client as
/// `forbidden_participants` when the reply arrives.
pub(crate) struct ParticipantHidden<'a> {
    pub dn: &'a dyn Display,
    pub first: bool,
}

impl ParticipantHidden<'_> {
    pub(crate) fn emit(&self) {
        if self.first {
            tracing::warn!(
                target: TARGET,
                dn = %self.dn,
                "the PBX answers 403 for this DN's legs (not visible to this API client); \
                 skipping them"
            );
        }
    }
}

/// A participant reply that cannot be used: skipped. Logged only when `first` for the path;
/// counted by the REST client as `skipped_objects` when the reply arrives.
pub(crate) struct ParticipantUnusable<'a> {
    pub path: &'a str,
    pub detail: &'a dyn Display,
    pub first: bool,
}

impl ParticipantUnusable<'_> {
    pub(crate) fn emit(&self) {
        if self.first {
            tracing::warn!(
                target: TARGET,
                path = self.path,
                detail = %self.detail,
                "skipped a participant that cannot be used"
            );
        }
    }
}

/// A participant fetch answered another error status: skipped, and a snapshot follows. Logged
/// only when `first` for the DN; counted by the REST client as `failed_fetches` when the reply
/// arrives.
pub(crate) struct ParticipantFetchFailed<'a> {
    pub path: &'a str,
    pub status: u16,
    pub first: bool,
}

impl ParticipantFetchFailed<'_> {
    pub(crate) fn emit(&self) {
        if self.first {
            tracing::warn!(
                target: TARGET,
                path = self.path,
                status = self.status,
                "a participant fetch failed; a snapshot follows"
            );
        }
    }
}

/// The event socket connection was lost (or a connection attempt failed) and is tried again
/// after `delay`. Counted as `disconnects`.
pub(crate) struct ConnectionLost<'a> {
    pub error: &'a dyn Display,
    pub delay: Duration,
    /// Failures in a row so far.
    pub failures: u32,
}

impl ConnectionLost<'_> {
    pub(crate) fn emit(&self, stats: &ConnectorStats) {
        tracing::warn!(
            target: TARGET,
            error = %self.error,
            delay_ms = self.delay.as_millis() as u64,
            failures = self.failures,
            "lost the PBX connection; reconnecting"
        );
        stats.count_disconnect();
    }
}

/// A connection attempt failed before the first connection with an error retrying cannot fix
/// (wrong credentials, no licence, TLS): the connector gives up. Counted as `disconnects`.
pub(crate) struct ConnectionGivenUp<'a> {
    pub error: &'a dyn Display,
}

impl ConnectionGivenUp<'_> {
    pub(crate) fn emit(&self, stats: &ConnectorStats) {
        tracing::error!(
            target: TARGET,
            error = %self.error,
            "cannot connect to the PBX; giving up"
        );
        stats.count_disconnect();
    }
}

/// A 3CX access token was minted (never the token itself). Counted as `tokens_minted`.
pub(crate) struct TokenMinted<'a> {
    pub generation: u64,
    pub lifetime: Duration,
    /// Where the lifetime came from (the JWT or `expires_in`).
    pub source: &'a dyn std::fmt::Debug,
}

impl TokenMinted<'_> {
    pub(crate) fn emit(&self, stats: &ConnectorStats) {
        tracing::debug!(
            target: "callhook::pbx::token",
            generation = self.generation,
            lifetime_s = self.lifetime.as_secs(),
            source = ?self.source,
            "minted a 3CX access token"
        );
        stats.count_token_minted();
        let expires = jiff::SignedDuration::try_from(self.lifetime)
            .ok()
            .and_then(|lifetime| jiff::Timestamp::now().checked_add(lifetime).ok());
        if let Some(expires) = expires {
            stats.note_token_expiry(expires);
        }
    }
}
