//! `/metrics` (Prometheus text) and `/healthz`, served beside the recordings.
//!
//! Metrics: events derived by kind, the PBX connection state and the connector's counters
//! (frames, malformed frames, gaps, snapshots, reconnects, tokens), saved call state records
//! skipped because they did not read, and the queue's own
//! families (deliveries by plugin and outcome, queue depth, oldest pending age, plugin duration
//! histogram; see `queue::metrics`). `/healthz` answers 200 while the PBX connection is up and
//! the database takes writes, 503 otherwise, with a one-line JSON reason.

use super::DeliveryQueue;
use crate::pbx::{ConnectionState, ConnectorStats};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Counts the events the engine derived, by wire name.
#[derive(Debug, Default)]
pub struct EventCounter(Mutex<BTreeMap<&'static str, u64>>);

impl EventCounter {
    /// Counts one event called `name`.
    pub fn count(&self, name: &'static str) {
        *self
            .0
            .lock()
            .expect("counter poisoned")
            .entry(name)
            .or_default() += 1;
    }

    fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        self.0.lock().expect("counter poisoned").clone()
    }
}

/// What the endpoints read.
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
    /// Whether the database takes the host's writes, and the room left for it.
    pub storage: Arc<super::storage::StorageHealth>,
    /// Saved call state records skipped at start because they did not read
    /// ([`EngineStore::unreadable_records`](super::EngineStore::unreadable_records)).
    pub state_unreadable: Arc<AtomicU64>,
}

/// The router with `/metrics` and `/healthz`.
pub fn router(observed: Observed) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(observed)
}

async fn metrics(State(observed): State<Observed>) -> impl IntoResponse {
    let mut out = String::new();
    let family = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    family(
        &mut out,
        "callhook_events_derived_total",
        "counter",
        "Call events derived, by event.",
    );
    for (event, count) in observed.events.snapshot() {
        let _ = writeln!(
            out,
            "callhook_events_derived_total{{event=\"{event}\"}} {count}"
        );
    }
    family(
        &mut out,
        "callhook_pbx_connected",
        "gauge",
        "1 while the PBX connection is up.",
    );
    let connected = matches!(
        *observed.connection.borrow(),
        ConnectionState::Connected { .. }
    );
    let _ = writeln!(out, "callhook_pbx_connected {}", u8::from(connected));
    let stats = observed.connector.snapshot();
    family(
        &mut out,
        "callhook_pbx_total",
        "counter",
        "Connector counters, by what was counted.",
    );
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
        let _ = writeln!(out, "callhook_pbx_total{{what=\"{what}\"}} {value}");
    }
    family(
        &mut out,
        "callhook_call_state_unreadable_total",
        "counter",
        "Saved call state records skipped at start because they did not read.",
    );
    let _ = writeln!(
        out,
        "callhook_call_state_unreadable_total {}",
        observed.state_unreadable.load(Ordering::Relaxed)
    );
    crate::queue::metrics::render_prometheus(&observed.queue.stats(), &mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

async fn healthz(State(observed): State<Observed>) -> impl IntoResponse {
    let (status, reason) = match &*observed.connection.borrow() {
        ConnectionState::Connected { since } => {
            (StatusCode::OK, format!("connected since {since}"))
        }
        ConnectionState::Connecting { attempt } => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("connecting (attempt {attempt})"),
        ),
        ConnectionState::Backoff { error, .. } => (StatusCode::SERVICE_UNAVAILABLE, error.clone()),
        ConnectionState::Stopped => (StatusCode::SERVICE_UNAVAILABLE, "stopped".to_string()),
    };
    let storage = observed.storage.failing();
    let status = if storage.is_some() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        status
    };
    let body = serde_json::json!({
        "pbx": reason,
        "storage": storage.map_or_else(|| "ok".to_string(), |error| format!("failing: {error}")),
        "ok": status == StatusCode::OK,
    });
    (status, axum::Json(body))
}
