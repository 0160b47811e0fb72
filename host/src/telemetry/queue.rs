//! What happens in the delivery queue: each event logs once and counts into the plugin's
//! [`QueueStats`](crate::queue::QueueStats) counters, which `/metrics` exports.

use crate::queue::DeliveryOutcome;
use crate::queue::metrics::{DurationHistogram, OutcomeCounts};
use std::time::Duration;

/// The log target: the queue's, so that `RUST_LOG` filters by component as before.
const TARGET: &str = "callhook::queue";

/// A delivery attempt ended, whatever its outcome. Counted by outcome and duration
/// (`callhook_plugin_deliveries_total`, `callhook_plugin_duration_seconds`); logged at debug
/// when delivered, else as a warning with what happens next. This is the one line a failed
/// attempt writes: the plugin runtime logs its side at debug only.
pub(crate) struct AttemptEnded<'a> {
    pub plugin: &'a str,
    pub call_id: &'a str,
    pub key: &'a str,
    pub delivery: u64,
    pub attempt: u32,
    pub outcome: &'a DeliveryOutcome,
    pub duration: Duration,
    /// What happens next, e.g. `retry in 30s`, `parked: ...`, `removed`.
    pub next: &'a str,
}

impl AttemptEnded<'_> {
    pub(crate) fn emit(&self, outcomes: &mut OutcomeCounts, durations: &mut DurationHistogram) {
        let outcome = self.outcome.label();
        let elapsed_ms = self.duration.as_secs_f64() * 1000.0;
        let (plugin, call_id, key, delivery, attempt, next) = (
            self.plugin,
            self.call_id,
            self.key,
            self.delivery,
            self.attempt,
            self.next,
        );
        match self.outcome {
            DeliveryOutcome::Delivered => tracing::debug!(
                target: TARGET,
                plugin,
                call_id,
                key,
                delivery,
                attempt,
                outcome,
                elapsed_ms,
                "delivery attempt"
            ),
            other => tracing::warn!(
                target: TARGET,
                plugin,
                call_id,
                key,
                delivery,
                attempt,
                outcome,
                detail = other.message().unwrap_or_default(),
                elapsed_ms,
                next,
                "delivery attempt"
            ),
        }
        outcomes.count(self.outcome);
        durations.observe(self.duration);
    }
}

/// A plugin was paused by its circuit breaker or disabled by its receiver. Logged; the breaker's
/// openings are counted by the breaker (`callhook_plugin_breaker_opened_total`).
pub(crate) struct PluginPaused<'a> {
    pub plugin: &'a str,
    pub why: &'a str,
}

impl PluginPaused<'_> {
    pub(crate) fn emit(&self) {
        tracing::warn!(target: TARGET, plugin = self.plugin, why = self.why, "plugin paused");
    }
}

/// One parked delivery was removed because it was kept for `storage.parked_keep_days`: logged
/// at info and counted (`callhook_plugin_parked_expired_total`). [`ParkedExpired`] sums them up
/// per plugin.
pub(crate) struct ParkedDeliveryExpired<'a> {
    pub plugin: &'a str,
    pub delivery: u64,
    pub key: &'a str,
    pub parked_at: &'a dyn std::fmt::Display,
}

impl ParkedDeliveryExpired<'_> {
    pub(crate) fn emit(&self, parked_expired: &mut u64) {
        tracing::info!(
                target: TARGET,
            plugin = self.plugin,
            delivery = self.delivery,
            key = self.key,
            parked_at = %self.parked_at,
            "parked delivery expired"
        );
        *parked_expired += 1;
    }
}

/// Parked deliveries of one plugin were removed because they were kept long enough: the
/// warning an operator sees, once per plugin and sweep (each was counted by
/// [`ParkedDeliveryExpired`]).
pub(crate) struct ParkedExpired<'a> {
    pub plugin: &'a str,
    pub count: usize,
    /// How long parked deliveries are kept.
    pub keep: Duration,
}

impl ParkedExpired<'_> {
    pub(crate) fn emit(&self) {
        tracing::warn!(
                target: TARGET,
            plugin = self.plugin,
            count = self.count,
            keep_days = self.keep.as_secs() / 86_400,
            "parked deliveries expired and removed"
        );
    }
}

/// Recording an outcome on disk failed; the delivery is tried again later.
pub(crate) struct StoreFailed<'a> {
    pub plugin: &'a str,
    pub call_id: &'a str,
    pub delivery: u64,
    pub error: &'a dyn std::fmt::Display,
}

impl StoreFailed<'_> {
    pub(crate) fn emit(&self) {
        tracing::error!(
                target: TARGET,
            plugin = self.plugin,
            call_id = self.call_id,
            delivery = self.delivery,
            error = %self.error,
            "could not record a delivery attempt; it will be repeated"
        );
    }
}

/// A stored queue record (a delivery row, a plugin's or a call's record) did not read: skipped
/// alone and left in place for inspection (a call's record is written afresh). Logged as an
/// error with its table and key, and counted (`callhook_queue_records_unreadable_total`).
pub(crate) struct QueueRecordSkipped<'a> {
    pub table: &'a str,
    pub key: &'a str,
    pub error: &'a str,
}

impl QueueRecordSkipped<'_> {
    pub(crate) fn emit(&self, unreadable: &std::sync::atomic::AtomicU64) {
        tracing::error!(
            target: TARGET,
            table = self.table,
            key = self.key,
            error = self.error,
            "a stored queue record is unreadable; skipped, the others go on"
        );
        unreadable.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}
