//! The queue's families as `/metrics` encodes them.

use super::*;
use crate::queue::metrics::{DurationHistogram, OutcomeCounts};
use std::time::Duration;

#[test]
fn encodes_the_queue_families() {
    let mut durations = DurationHistogram::default();
    durations.observe(Duration::from_millis(3));
    durations.observe(Duration::from_millis(40));
    durations.observe(Duration::from_secs(60));
    let stats = QueueStats {
        events_taken: 7,
        unreadable_records: 2,
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
                breaker_opened: 2,
                outcomes: OutcomeCounts {
                    delivered: 4,
                    ..OutcomeCounts::default()
                },
                durations,
            },
        )]
        .into(),
    };
    let text = render_queue(&stats);
    for line in [
        "# HELP callhook_queue_events_taken_total Events committed to the queue.",
        "# TYPE callhook_queue_events_taken_total counter",
        "callhook_queue_events_taken_total 7",
        "# HELP callhook_queue_records_unreadable_total Stored queue records skipped because they did not read.",
        "# TYPE callhook_queue_records_unreadable_total counter",
        "callhook_queue_records_unreadable_total 2",
        "callhook_queue_depth 2",
        "callhook_queue_oldest_pending_age_seconds 5.0",
        "callhook_plugin_pending{plugin=\"hub\\\"spot\"} 2",
        "callhook_plugin_deliveries_total{plugin=\"hub\\\"spot\",outcome=\"delivered\"} 4",
        "callhook_plugin_parked_expired_total{plugin=\"hub\\\"spot\"} 3",
        "callhook_plugin_breaker_opened_total{plugin=\"hub\\\"spot\"} 2",
        "# TYPE callhook_plugin_duration_seconds histogram",
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

#[test]
fn counts_events_by_name() {
    let events = EventCounter::default();
    events.count("ringing");
    events.count("ringing");
    events.count("missed");
    let mut registry = Registry::default();
    registry.register(
        "callhook_events_derived",
        "Call events derived, by event",
        events.0.clone(),
    );
    let text = encode(&registry);
    assert!(
        text.contains("callhook_events_derived_total{event=\"ringing\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("callhook_events_derived_total{event=\"missed\"} 1\n"),
        "{text}"
    );
}
