//! What callhook tells its operators: logs, and the metrics `/metrics` serves.
//!
//! **Typed events.** Everything worth telling that happens (a delivery attempt ended, a frame
//! was malformed, a saved record did not read ...) is one struct here with an `emit()` that
//! writes its log line and counts it, so a thing that happened is logged once, counted once,
//! and the two never drift apart (the model is Vector's `internal_events`). Events are grouped
//! by the component that emits them: `config`, `pbx`, `queue`, `recordings`, `state`. Components call
//! `SomethingHappened { .. }.emit(..)` and never `tracing::warn!` plus a counter side by side.
//!
//! **Where counts live.** A count belongs to the instance that produced it (a connector's
//! [`ConnectorStats`](crate::pbx::ConnectorStats), a queue's
//! [`QueueStats`](crate::queue::QueueStats), a pipeline's [`EventCounter`]), not to a process
//! global: tests and benches run several pipelines in one process, and the reload report and
//! the tests read the same numbers as data. An event's `emit` takes the counters it
//! counts into.
//!
//! **Metrics.** [`metrics`] owns the metric families: it reads those counters and states on each
//! scrape (a `prometheus-client` [`Collector`](prometheus_client::collector::Collector)) and
//! encodes them with `prometheus-client` in the Prometheus text format 0.0.4; names, label
//! sets and help texts are listed in `docs/telemetry.md`. Metric names never change.
//!
//! **Logs.** [`logs`] sets up the subscriber: human-readable text (colour only when stderr is
//! a terminal) or one JSON object per line for log shippers (`--log-format json`).

pub(crate) mod config;
pub mod logs;
pub mod metrics;
pub(crate) mod pbx;
pub(crate) mod queue;
pub(crate) mod recordings;
pub(crate) mod state;

pub use logs::LogFormat;
pub use metrics::{EventCounter, Observed};
