//! The Call Control REST endpoints of `3cx-api.md` section 2.
//!
//! All read from [`Shared`]; an unknown DN or a participant that is gone (or hidden by the
//! vanish fault) answers `404` with an empty body.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::state::Shared;

fn found<T: serde::Serialize>(value: Option<T>) -> Response {
    match value {
        Some(value) => Json(value).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `GET /callcontrol`.
pub(crate) async fn snapshot(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.snapshot()).into_response()
}

/// `GET /callcontrol/{dn}`.
pub(crate) async fn dn(State(shared): State<Arc<Shared>>, Path(dn): Path<String>) -> Response {
    found(shared.dn(&dn))
}

/// `GET /callcontrol/{dn}/participants`.
pub(crate) async fn participants(
    State(shared): State<Arc<Shared>>,
    Path(dn): Path<String>,
) -> Response {
    found(shared.participants(&dn))
}

/// `GET /callcontrol/{dn}/participants/{id}`.
pub(crate) async fn participant(
    State(shared): State<Arc<Shared>>,
    Path((dn, id)): Path<(String, String)>,
) -> Response {
    found(id.parse().ok().and_then(|id| shared.participant(&dn, id)))
}
