//! Counters of what the connector saw, for metrics, health and tests.
//!
//! What is worth a log line is counted through its event in `telemetry::pbx` (which
//! logs and counts together); what is only counted, the connector counts here directly.
//!
//! Plain relaxed atomics: each counter only ever grows and is read on its own, so no ordering
//! between them is promised. [`ConnectorStats::snapshot`] copies them into a plain struct that
//! the telemetry module turns into metrics.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters of one connector; share it as `Arc<ConnectorStats>`.
#[derive(Debug, Default)]
pub struct ConnectorStats {
    frames: AtomicU64,
    malformed_frames: AtomicU64,
    unknown_events: AtomicU64,
    ignored_events: AtomicU64,
    sequence_gaps: AtomicU64,
    snapshots: AtomicU64,
    participant_fetches: AtomicU64,
    fetches_skipped: AtomicU64,
    not_found: AtomicU64,
    forbidden_participants: AtomicU64,
    skipped_objects: AtomicU64,
    fetches_folded: AtomicU64,
    failed_fetches: AtomicU64,
    ignored_entities: AtomicU64,
    connects: AtomicU64,
    disconnects: AtomicU64,
    tokens_minted: AtomicU64,
    unauthorized: AtomicU64,
    changes: AtomicU64,
    /// When the last frame arrived, unix milliseconds; 0 before the first.
    last_frame_ms: AtomicU64,
    /// When the current access token expires, unix milliseconds; 0 before the first.
    token_expires_ms: AtomicU64,
}

impl ConnectorStats {
    /// Notes that a frame arrived `at`.
    pub(crate) fn note_frame_at(&self, at: jiff::Timestamp) {
        let ms = u64::try_from(at.as_millisecond()).unwrap_or(0);
        self.last_frame_ms.store(ms, Ordering::Relaxed);
    }

    /// Notes that the access token just minted expires `at`.
    pub(crate) fn note_token_expiry(&self, at: jiff::Timestamp) {
        let ms = u64::try_from(at.as_millisecond()).unwrap_or(0);
        self.token_expires_ms.store(ms, Ordering::Relaxed);
    }

    /// When the last frame arrived and when the current access token expires, for the
    /// console; `None` before the first of each.
    pub fn moments(&self) -> Moments {
        let at = |cell: &AtomicU64| match cell.load(Ordering::Relaxed) {
            0 => None,
            ms => jiff::Timestamp::from_millisecond(ms as i64).ok(),
        };
        Moments {
            last_frame: at(&self.last_frame_ms),
            token_expires: at(&self.token_expires_ms),
        }
    }
}

/// Moments of the connection's life (see [`ConnectorStats::moments`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moments {
    /// When the last frame arrived.
    pub last_frame: Option<jiff::Timestamp>,
    /// When the current access token expires.
    pub token_expires: Option<jiff::Timestamp>,
}

/// A copy of the counters at one moment. Every count starts at 0 when the connector is made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Text frames received on the event socket, of any kind.
    pub frames: u64,
    /// Frames that were not JSON or lacked `event`/`event_type`/a valid `entity` (logged and
    /// skipped).
    pub malformed_frames: u64,
    /// Frames with an `event_type` this version does not know (logged and skipped).
    pub unknown_events: u64,
    /// DTMF and prompt-playback frames: valid, but carry no participant change.
    pub ignored_events: u64,
    /// `sequence` jumps (frames lost), each followed by a snapshot.
    pub sequence_gaps: u64,
    /// Snapshots taken (`GET /callcontrol`), for any reason.
    pub snapshots: u64,
    /// Participant fetches (`GET /callcontrol/{dn}/participants/{id}`).
    pub participant_fetches: u64,
    /// Upsert frames needing no fetch because a remove of the same participant followed before
    /// the fetch could start.
    pub fetches_skipped: u64,
    /// Participant fetches answered `404` (turned into removes).
    pub not_found: u64,
    /// Participant fetches answered `403`: legs not visible to the API client, skipped.
    pub forbidden_participants: u64,
    /// Objects of a snapshot or participant reply that could not be used (a participant without
    /// `id` or `callid`, a DN without `dn`), skipped alone.
    pub skipped_objects: u64,
    /// Upsert frames folded into a fetch of the same participant that had not started yet
    /// (repeats and duplicates).
    pub fetches_folded: u64,
    /// Frames about entities other than participants (devices, DNs): ignored.
    pub ignored_entities: u64,
    /// Participant fetches answered with another error status (`400`, `5xx`): skipped, healed
    /// by the snapshot that follows.
    pub failed_fetches: u64,
    /// Event socket connections established.
    pub connects: u64,
    /// Event socket connections lost or given up (including failed attempts).
    pub disconnects: u64,
    /// Access tokens minted.
    pub tokens_minted: u64,
    /// `401` answers seen (each causes at most one re-mint).
    pub unauthorized: u64,
    /// Changes handed to the output channel.
    pub changes: u64,
}

macro_rules! counters {
    ($($field:ident => $method:ident),* $(,)?) => {
        impl ConnectorStats {
            $(
                pub(crate) fn $method(&self) {
                    self.$field.fetch_add(1, Ordering::Relaxed);
                }
            )*

            /// The counters as they are now.
            pub fn snapshot(&self) -> StatsSnapshot {
                StatsSnapshot {
                    $($field: self.$field.load(Ordering::Relaxed),)*
                }
            }
        }
    };
}

counters! {
    frames => count_frame,
    malformed_frames => count_malformed_frame,
    unknown_events => count_unknown_event,
    ignored_events => count_ignored_event,
    sequence_gaps => count_sequence_gap,
    snapshots => count_snapshot,
    participant_fetches => count_participant_fetch,
    fetches_skipped => count_fetch_skipped,
    not_found => count_not_found,
    forbidden_participants => count_forbidden_participant,
    skipped_objects => count_skipped_object,
    fetches_folded => count_fetch_folded,
    failed_fetches => count_failed_fetch,
    ignored_entities => count_ignored_entity,
    connects => count_connect,
    disconnects => count_disconnect,
    tokens_minted => count_token_minted,
    unauthorized => count_unauthorized,
    changes => count_change,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up() {
        let stats = ConnectorStats::default();
        stats.count_frame();
        stats.count_frame();
        stats.count_sequence_gap();
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.frames, 2);
        assert_eq!(stats.moments(), Moments::default());
        let at: jiff::Timestamp = "2026-11-29T09:00:00.123Z".parse().unwrap();
        stats.note_frame_at(at);
        stats.note_token_expiry(at + jiff::SignedDuration::from_hours(1));
        let moments = stats.moments();
        assert_eq!(moments.last_frame, Some(at));
        assert_eq!(
            moments.token_expires,
            Some(at + jiff::SignedDuration::from_hours(1))
        );
        assert_eq!(snapshot.sequence_gaps, 1);
        assert_eq!(snapshot.snapshots, 0);
    }
}
