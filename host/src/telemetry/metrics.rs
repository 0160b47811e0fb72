//! The metric families `/metrics` serves, encoded by `prometheus-client`.
//!
//! One [`Collector`] reads, on each scrape, the counters the events counted into and the
//! states the components keep ([`Observed`]), and encodes them in the Prometheus text format
//! 0.0.4 ([`CONTENT_TYPE`]). Counters are declared without their `_total` suffix, which the
//! encoder appends to the sample and to the `# HELP`/`# TYPE` lines, so every exported name is
//! the one listed in `docs/telemetry.md`. Label values are escaped by the encoder.

use crate::app::DeliveryQueue;
use crate::app::storage::StorageHealth;
use crate::pbx::{ConnectionState, ConnectorStats};
use crate::queue::metrics::DURATION_BUCKETS;
use crate::queue::{BreakerState, PluginStats, QueueStats};
use crate::recordings::Recorder;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::watch;

/// The `Content-Type` of what [`encode`] writes: the Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Counts the events the engine derived, by wire name
/// (`callhook_events_derived_total{event=...}`).
#[derive(Debug, Default)]
pub struct EventCounter(Family<[(&'static str, &'static str); 1], Counter>);

impl EventCounter {
    /// Counts one event called `name`.
    pub fn count(&self, name: &'static str) {
        self.0.get_or_create(&[("event", name)]).inc();
    }
}

/// What the endpoints read: the counters and states of one pipeline.
#[derive(Clone)]
pub struct Observed {
    /// Events derived.
    pub events: Arc<EventCounter>,
    /// The connector's state.
    pub connection: watch::Receiver<ConnectionState>,
    /// The connector's counters.
    pub connector: Arc<ConnectorStats>,
    /// The delivery queue.
    pub queue: Arc<DeliveryQueue>,
    /// Saved call state records skipped at start because they did not read
    /// ([`EngineStore::unreadable_records`](crate::app::EngineStore::unreadable_records)).
    pub state_unreadable: Arc<AtomicU64>,
    /// The recorder, when recordings are on (for its skipped recordings).
    pub recorder: Option<Recorder>,
    /// Whether the database takes the host's writes, and the room left for it.
    pub storage: Arc<StorageHealth>,
}

/// Opaque: a [`Collector`] must be `Debug`, and the queue and the recorder are not.
impl fmt::Debug for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observed").finish_non_exhaustive()
    }
}

/// A registry holding the collector of `observed`'s metric families.
pub fn registry(observed: Observed) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(observed));
    registry
}

/// The registry's metrics now, in the Prometheus text format 0.0.4.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, registry)
        .expect("writing to a String does not fail");
    out
}

impl Collector for Observed {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        self.events.0.encode(encoder.encode_descriptor(
            "callhook_events_derived",
            "Call events derived, by event.",
            None,
            MetricType::Counter,
        )?)?;
        let connected = matches!(*self.connection.borrow(), ConnectionState::Connected { .. });
        gauge(
            &mut encoder,
            "callhook_pbx_connected",
            "1 while the PBX connection is up.",
            u64::from(connected),
        )?;
        connector(&mut encoder, &self.connector)?;
        counter(
            &mut encoder,
            "callhook_call_state_unreadable",
            "Saved call state records skipped at start because they did not read.",
            self.state_unreadable.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "callhook_recordings_skipped",
            "XAPI recordings skipped because they cannot be matched to a call \
             (no usable Id, or start or end time unknown).",
            self.recorder
                .as_ref()
                .map_or(0, Recorder::skipped_recordings),
        )?;
        storage(&mut encoder, &self.storage)?;
        queue(&mut encoder, &self.queue.stats())
    }
}

/// `callhook_storage_*`: whether writes fail, and the file system's free and total bytes.
fn storage(encoder: &mut DescriptorEncoder, health: &StorageHealth) -> fmt::Result {
    gauge(
        encoder,
        "callhook_storage_failing",
        "1 while the database refuses to store events (they are held and retried).",
        u64::from(health.failing().is_some()),
    )?;
    let (free, total) = health.space();
    gauge(
        encoder,
        "callhook_storage_free_bytes",
        "Free bytes of the storage directory's file system, looked at every minute.",
        free,
    )?;
    gauge(
        encoder,
        "callhook_storage_size_bytes",
        "Size of the storage directory's file system.",
        total,
    )
}

/// `callhook_pbx_total{what=...}`: the connector's counters, in a fixed order.
fn connector(encoder: &mut DescriptorEncoder, stats: &ConnectorStats) -> fmt::Result {
    let stats = stats.snapshot();
    let mut family = encoder.encode_descriptor(
        "callhook_pbx",
        "Connector counters, by what was counted.",
        None,
        MetricType::Counter,
    )?;
    for (what, value) in [
        ("frames", stats.frames),
        ("malformed_frames", stats.malformed_frames),
        ("unknown_events", stats.unknown_events),
        ("ignored_events", stats.ignored_events),
        ("ignored_entities", stats.ignored_entities),
        ("sequence_gaps", stats.sequence_gaps),
        ("snapshots", stats.snapshots),
        ("participant_fetches", stats.participant_fetches),
        ("fetches_folded", stats.fetches_folded),
        ("fetches_skipped", stats.fetches_skipped),
        ("not_found", stats.not_found),
        ("forbidden_participants", stats.forbidden_participants),
        ("failed_fetches", stats.failed_fetches),
        ("skipped_objects", stats.skipped_objects),
        ("connects", stats.connects),
        ("disconnects", stats.disconnects),
        ("tokens_minted", stats.tokens_minted),
        ("unauthorized", stats.unauthorized),
        ("changes", stats.changes),
    ] {
        ConstCounter::new(value).encode(family.encode_family(&[("what", what)])?)?;
    }
    Ok(())
}

/// The queue's families: `callhook_queue_*` (all plugins) and `callhook_plugin_*` (labelled by
/// `plugin`).
fn queue(encoder: &mut DescriptorEncoder, stats: &QueueStats) -> fmt::Result {
    counter(
        encoder,
        "callhook_queue_events_taken",
        "Events committed to the queue.",
        stats.events_taken,
    )?;
    counter(
        encoder,
        "callhook_queue_records_unreadable",
        "Stored queue records skipped because they did not read.",
        stats.unreadable_records,
    )?;
    gauge(
        encoder,
        "callhook_queue_depth",
        "Deliveries waiting or in flight, all plugins.",
        stats.depth,
    )?;
    gauge(
        encoder,
        "callhook_queue_parked",
        "Parked deliveries, all plugins.",
        stats.parked,
    )?;
    gauge(
        encoder,
        "callhook_queue_oldest_pending_age_seconds",
        "Age of the oldest pending delivery (0 when none).",
        stats.oldest_pending_age.unwrap_or_default().as_secs_f64(),
    )?;
    let per_plugin = PerPlugin(stats);
    per_plugin.gauge(
        encoder,
        "callhook_plugin_pending",
        "Deliveries waiting or in flight, per plugin.",
        |p| p.pending,
    )?;
    per_plugin.gauge(
        encoder,
        "callhook_plugin_parked",
        "Parked deliveries, per plugin.",
        |p| p.parked,
    )?;
    per_plugin.counter(
        encoder,
        "callhook_plugin_parked_expired",
        "Parked deliveries removed after the time they are kept (`storage.parked_keep_days`).",
        |p| p.parked_expired,
    )?;
    per_plugin.gauge(
        encoder,
        "callhook_plugin_in_flight",
        "Deliveries running now, per plugin.",
        |p| u64::from(p.in_flight),
    )?;
    per_plugin.gauge(
        encoder,
        "callhook_plugin_disabled",
        "1 while the plugin is disabled (e.g. after HTTP 410).",
        |p| u64::from(p.disabled),
    )?;
    per_plugin.gauge(
        encoder,
        "callhook_plugin_breaker_open",
        "1 while the plugin's circuit breaker pauses it.",
        |p| u64::from(matches!(p.breaker, BreakerState::Open { .. })),
    )?;
    per_plugin.counter(
        encoder,
        "callhook_plugin_breaker_opened",
        "How often the plugin's circuit breaker opened.",
        |p| p.breaker_opened,
    )?;
    let mut deliveries = encoder.encode_descriptor(
        "callhook_plugin_deliveries",
        "Delivery attempts by plugin and outcome.",
        None,
        MetricType::Counter,
    )?;
    for (name, plugin) in &stats.plugins {
        for (outcome, count) in plugin.outcomes.pairs() {
            let labels = [("plugin", name.as_str()), ("outcome", outcome)];
            ConstCounter::new(count).encode(deliveries.encode_family(&labels)?)?;
        }
    }
    let mut durations = encoder.encode_descriptor(
        "callhook_plugin_duration_seconds",
        "Duration of delivery attempts.",
        None,
        MetricType::Histogram,
    )?;
    for (name, plugin) in &stats.plugins {
        let histogram = &plugin.durations;
        // Non-cumulative counts per bound; the encoder sums them and adds `+Inf` (= count).
        let buckets: Vec<(f64, u64)> = DURATION_BUCKETS
            .iter()
            .copied()
            .zip(histogram.counts)
            .collect();
        durations
            .encode_family(&[("plugin", name.as_str())])?
            .encode_histogram::<NoLabelSet>(histogram.sum, histogram.count, &buckets, None)?;
    }
    Ok(())
}

/// The queue's families alone, in the text format, as `/metrics` shows them: for tests that
/// drive a queue of their own.
pub fn render_queue(stats: &QueueStats) -> String {
    #[derive(Debug)]
    struct Queue(QueueStats);
    impl Collector for Queue {
        fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
            queue(&mut encoder, &self.0)
        }
    }
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Queue(stats.clone())));
    encode(&registry)
}

/// The families with one sample per plugin.
struct PerPlugin<'a>(&'a QueueStats);

impl PerPlugin<'_> {
    fn gauge(
        &self,
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        value: fn(&PluginStats) -> u64,
    ) -> fmt::Result {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        self.samples(&mut family, |plugin| ConstGauge::new(value(plugin)))
    }

    fn counter(
        &self,
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        value: fn(&PluginStats) -> u64,
    ) -> fmt::Result {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        self.samples(&mut family, |plugin| ConstCounter::new(value(plugin)))
    }

    fn samples<M: EncodeMetric>(
        &self,
        family: &mut MetricEncoder,
        metric: impl Fn(&PluginStats) -> M,
    ) -> fmt::Result {
        for (name, plugin) in &self.0.plugins {
            metric(plugin).encode(family.encode_family(&[("plugin", name.as_str())])?)?;
        }
        Ok(())
    }
}

/// A family of one unlabelled counter; `name` without `_total`.
fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// A family of one unlabelled gauge.
fn gauge<N>(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: N) -> fmt::Result
where
    ConstGauge<N>: EncodeMetric,
{
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

#[cfg(test)]
mod tests;
