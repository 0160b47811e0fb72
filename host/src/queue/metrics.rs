//! The queue's telemetry as data: log events with `emit()`, counters, and the [`QueueStats`]
//! snapshot with its Prometheus text rendering.

use super::schedule::BreakerState;
use crate::runtime::DeliveryOutcome;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

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

/// Appends the stats in the Prometheus text format: metric families `callhook_queue_*` (all
/// plugins) and `callhook_plugin_*` (labelled by `plugin`), each family in one group.
pub fn render_prometheus(stats: &QueueStats, out: &mut String) {
    let mut family = |name: &str, kind: &str, help: &str, samples: &mut dyn FnMut(&mut String)| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        samples(out);
    };
    let plugins: Vec<(String, &PluginStats)> = stats
        .plugins
        .iter()
        .map(|(name, plugin)| (escape(name), plugin))
        .collect();
    let per_plugin = |metric: &'static str, value: fn(&PluginStats) -> f64| {
        let plugins = &plugins;
        move |out: &mut String| {
            for (name, plugin) in plugins {
                let _ = writeln!(out, "{metric}{{plugin=\"{name}\"}} {}", value(plugin));
            }
        }
    };
    family(
        "callhook_queue_events_taken_total",
        "counter",
        "Events committed to the queue.",
        &mut |out| {
            let _ = writeln!(
                out,
                "callhook_queue_events_taken_total {}",
                stats.events_taken
            );
        },
    );
    family(
        "callhook_queue_depth",
        "gauge",
        "Deliveries waiting or in flight, all plugins.",
        &mut |out| {
            let _ = writeln!(out, "callhook_queue_depth {}", stats.depth);
        },
    );
    family(
        "callhook_queue_parked",
        "gauge",
        "Parked deliveries, all plugins.",
        &mut |out| {
            let _ = writeln!(out, "callhook_queue_parked {}", stats.parked);
        },
    );
    family(
        "callhook_queue_oldest_pending_age_seconds",
        "gauge",
        "Age of the oldest pending delivery (0 when none).",
        &mut |out| {
            let age = stats.oldest_pending_age.unwrap_or_default().as_secs_f64();
            let _ = writeln!(out, "callhook_queue_oldest_pending_age_seconds {age}");
        },
    );
    family(
        "callhook_plugin_pending",
        "gauge",
        "Deliveries waiting or in flight, per plugin.",
        &mut per_plugin("callhook_plugin_pending", |p| p.pending as f64),
    );
    family(
        "callhook_plugin_parked",
        "gauge",
        "Parked deliveries, per plugin.",
        &mut per_plugin("callhook_plugin_parked", |p| p.parked as f64),
    );
    family(
        "callhook_plugin_parked_expired_total",
        "counter",
        "Parked deliveries removed after the time they are kept (`storage.parked_keep_days`).",
        &mut per_plugin("callhook_plugin_parked_expired_total", |p| {
            p.parked_expired as f64
        }),
    );
    family(
        "callhook_plugin_in_flight",
        "gauge",
        "Deliveries running now, per plugin.",
        &mut per_plugin("callhook_plugin_in_flight", |p| p.in_flight as f64),
    );
    family(
        "callhook_plugin_disabled",
        "gauge",
        "1 while the plugin is disabled (e.g. after HTTP 410).",
        &mut per_plugin("callhook_plugin_disabled", |p| {
            f64::from(u8::from(p.disabled))
        }),
    );
    family(
        "callhook_plugin_breaker_open",
        "gauge",
        "1 while the plugin's circuit breaker pauses it.",
        &mut per_plugin("callhook_plugin_breaker_open", |p| {
            f64::from(u8::from(matches!(p.breaker, BreakerState::Open { .. })))
        }),
    );
    family(
        "callhook_plugin_deliveries_total",
        "counter",
        "Delivery attempts by plugin and outcome.",
        &mut |out| {
            for (name, plugin) in &plugins {
                for (label, count) in plugin.outcomes.pairs() {
                    let _ = writeln!(
                        out,
                        "callhook_plugin_deliveries_total{{plugin=\"{name}\",outcome=\"{label}\"}} {count}"
                    );
                }
            }
        },
    );
    family(
        "callhook_plugin_duration_seconds",
        "histogram",
        "Duration of delivery attempts.",
        &mut |out| {
            for (name, plugin) in &plugins {
                let mut cumulative = 0;
                for (bound, count) in DURATION_BUCKETS.iter().zip(plugin.durations.counts) {
                    cumulative += count;
                    let _ = writeln!(
                        out,
                        "callhook_plugin_duration_seconds_bucket{{plugin=\"{name}\",le=\"{bound}\"}} {cumulative}"
                    );
                }
                let durations = &plugin.durations;
                let _ = writeln!(
                    out,
                    "callhook_plugin_duration_seconds_bucket{{plugin=\"{name}\",le=\"+Inf\"}} {}\n\
                     callhook_plugin_duration_seconds_sum{{plugin=\"{name}\"}} {}\n\
                     callhook_plugin_duration_seconds_count{{plugin=\"{name}\"}} {}",
                    durations.count, durations.sum, durations.count
                );
            }
        },
    );
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// An attempt ended.
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
    pub(crate) fn emit(&self) {
        let outcome = self.outcome.label();
        let message = self.outcome.message().unwrap_or("");
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
                plugin,
                call_id,
                key,
                delivery,
                attempt,
                outcome,
                elapsed_ms,
                "delivery attempt"
            ),
            _ => tracing::warn!(
                plugin,
                call_id,
                key,
                delivery,
                attempt,
                outcome,
                message,
                elapsed_ms,
                next,
                "delivery attempt"
            ),
        }
    }
}

/// A plugin was paused by its circuit breaker or disabled by its receiver.
pub(crate) struct PluginPaused<'a> {
    pub plugin: &'a str,
    pub why: &'a str,
}

impl PluginPaused<'_> {
    pub(crate) fn emit(&self) {
        tracing::warn!(plugin = self.plugin, why = self.why, "plugin paused");
    }
}

/// Parked deliveries of one plugin were removed because they were kept long enough.
pub(crate) struct ParkedExpired<'a> {
    pub plugin: &'a str,
    pub count: usize,
    /// How long parked deliveries are kept.
    pub keep: Duration,
}

impl ParkedExpired<'_> {
    pub(crate) fn emit(&self) {
        tracing::warn!(
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
            plugin = self.plugin,
            call_id = self.call_id,
            delivery = self.delivery,
            error = %self.error,
            "could not record a delivery attempt; it will be repeated"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let mut durations = DurationHistogram::default();
        durations.observe(Duration::from_millis(3));
        durations.observe(Duration::from_millis(40));
        durations.observe(Duration::from_secs(60));
        let stats = QueueStats {
            events_taken: 7,
            depth: 2,
            parked: 1,
            oldest_pending_age: Some(Duration::from_secs(5)),
            plugins: [(
                "hub\"spot".to_string(),
                PluginStats {
                    configured: true,
                    pending: 2,
                    parked: 1,
                    parked_expired: 3,
                    in_flight: 1,
                    oldest_pending_age: Some(Duration::from_secs(5)),
                    disabled: false,
                    breaker: BreakerState::Closed,
                    breaker_opened: 0,
                    outcomes: OutcomeCounts {
                        delivered: 4,
                        ..OutcomeCounts::default()
                    },
                    durations,
                },
            )]
            .into(),
        };
        let mut text = String::new();
        render_prometheus(&stats, &mut text);
        for line in [
            "callhook_queue_depth 2",
            "callhook_queue_oldest_pending_age_seconds 5",
            "callhook_plugin_pending{plugin=\"hub\\\"spot\"} 2",
            "callhook_plugin_deliveries_total{plugin=\"hub\\\"spot\",outcome=\"delivered\"} 4",
            "callhook_plugin_parked_expired_total{plugin=\"hub\\\"spot\"} 3",
            "callhook_plugin_duration_seconds_bucket{plugin=\"hub\\\"spot\",le=\"0.005\"} 1",
            "callhook_plugin_duration_seconds_bucket{plugin=\"hub\\\"spot\",le=\"0.05\"} 2",
            "callhook_plugin_duration_seconds_bucket{plugin=\"hub\\\"spot\",le=\"30\"} 2",
            "callhook_plugin_duration_seconds_bucket{plugin=\"hub\\\"spot\",le=\"+Inf\"} 3",
            "callhook_plugin_duration_seconds_count{plugin=\"hub\\\"spot\"} 3",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
