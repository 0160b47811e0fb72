//! The queue's counts and states as data (what the scheduler only writes): the [`QueueStats`]
//! snapshot, with each plugin's [`BreakerState`], that `/metrics`, the console, the reload report
//! and the tests read. Its log events are in `telemetry::queue`, its metric families in
//! [`crate::telemetry::metrics`].

use crate::queue::DeliveryOutcome;
use std::collections::BTreeMap;
use std::time::Duration;

/// The state of a plugin's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Deliveries flow.
    Closed,
    /// Paused until this time (unix milliseconds).
    Open {
        /// End of the cool-down, unix milliseconds.
        until: u64,
    },
    /// The cool-down is over; one probe delivery is let through.
    HalfOpen,
}

/// Upper bounds of the plugin duration histogram's buckets, in seconds.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Attempts per outcome label since the queue started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutcomeCounts {
    /// `delivered`.
    pub delivered: u64,
    /// `retry`.
    pub retry: u64,
    /// `rejected`.
    pub rejected: u64,
    /// `failed`.
    pub failed: u64,
    /// `outcome-unknown` (contract 0.2's `unknown-outcome`).
    pub outcome_unknown: u64,
}

impl OutcomeCounts {
    pub(crate) fn count(&mut self, outcome: &DeliveryOutcome) {
        match outcome {
            DeliveryOutcome::Delivered => self.delivered += 1,
            DeliveryOutcome::Retry { .. } => self.retry += 1,
            DeliveryOutcome::Rejected { .. } => self.rejected += 1,
            DeliveryOutcome::Failed { .. } => self.failed += 1,
            DeliveryOutcome::UnknownOutcome { .. } => self.outcome_unknown += 1,
        }
    }

    /// `(label, count)` pairs.
    pub fn pairs(&self) -> [(&'static str, u64); 5] {
        [
            ("delivered", self.delivered),
            ("retry", self.retry),
            ("rejected", self.rejected),
            ("failed", self.failed),
            ("outcome-unknown", self.outcome_unknown),
        ]
    }
}

/// A histogram of attempt durations, buckets as in [`DURATION_BUCKETS`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DurationHistogram {
    /// Non-cumulative counts per bucket; the last entry counts what exceeds every bound.
    pub counts: [u64; DURATION_BUCKETS.len() + 1],
    /// Sum of all durations, in seconds.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

impl DurationHistogram {
    pub(crate) fn observe(&mut self, duration: Duration) {
        let secs = duration.as_secs_f64();
        let bucket = DURATION_BUCKETS
            .iter()
            .position(|bound| secs <= *bound)
            .unwrap_or(DURATION_BUCKETS.len());
        self.counts[bucket] += 1;
        self.sum += secs;
        self.count += 1;
    }
}

/// The queue at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueStats {
    /// Events taken since the queue started.
    pub events_taken: u64,
    /// Stored records skipped since the queue started because they did not read (delivery
    /// rows and plugin records when it opened, call records when taking events).
    pub unreadable_records: u64,
    /// Deliveries waiting or in flight (not parked), all plugins.
    pub depth: u64,
    /// Parked deliveries, all plugins.
    pub parked: u64,
    /// Age of the oldest pending delivery's current series (since taken, or since an operator
    /// retried it); `None` when nothing is pending.
    pub oldest_pending_age: Option<Duration>,
    /// Per plugin, by name.
    pub plugins: BTreeMap<String, PluginStats>,
}

/// One plugin's part of [`QueueStats`].
#[derive(Debug, Clone, PartialEq)]
pub struct PluginStats {
    /// Whether the plugin is configured.
    pub configured: bool,
    /// Deliveries waiting or in flight.
    pub pending: u64,
    /// Parked deliveries.
    pub parked: u64,
    /// Parked deliveries removed since start because they were kept for
    /// [`QueueConfig::parked_keep`](super::QueueConfig::parked_keep).
    pub parked_expired: u64,
    /// Deliveries running now.
    pub in_flight: u32,
    /// Age of this plugin's oldest pending delivery.
    pub oldest_pending_age: Option<Duration>,
    /// Disabled (e.g. after HTTP 410) until an operator re-enables it.
    pub disabled: bool,
    /// The circuit breaker.
    pub breaker: BreakerState,
    /// How often the breaker opened since start.
    pub breaker_opened: u64,
    /// Attempts by outcome since start.
    pub outcomes: OutcomeCounts,
    /// Attempt durations since start.
    pub durations: DurationHistogram,
}
