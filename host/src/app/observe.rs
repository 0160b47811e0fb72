//! `/metrics` and `/healthz`, served beside the recordings.
//!
//! `/metrics` serves what [`crate::telemetry::metrics`] encodes from the pipeline's
//! [`Observed`] counters and states (the families are listed in `docs/telemetry.md`).
//! `/healthz` answers 200 while the PBX connection is up and the database takes writes, 503
//! otherwise, with a one-line JSON reason.

pub use crate::telemetry::{EventCounter, Observed};

use crate::pbx::ConnectionState;
use crate::telemetry::metrics;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// What the handlers share: the pipeline's state, and the registry that reads it.
#[derive(Clone)]
struct Endpoints {
    observed: Observed,
    registry: Arc<Registry>,
}

/// The router with `/metrics` and `/healthz`.
pub fn router(observed: Observed) -> Router {
    let registry = Arc::new(metrics::registry(observed.clone()));
    Router::new()
        .route("/metrics", get(serve_metrics))
        .route("/healthz", get(healthz))
        .with_state(Endpoints { observed, registry })
}

async fn serve_metrics(State(endpoints): State<Endpoints>) -> impl IntoResponse {
    let text = metrics::encode(&endpoints.registry);
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text)
}

async fn healthz(State(endpoints): State<Endpoints>) -> impl IntoResponse {
    let (status, reason) = match &*endpoints.observed.connection.borrow() {
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
    let storage = endpoints.observed.storage.failing();
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
