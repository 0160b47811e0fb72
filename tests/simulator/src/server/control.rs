//! The `/_sim/` control endpoints: the fault switches over HTTP, for the binary.
//!
//! Only mounted with [`crate::SimConfig::control_endpoint`]; no authentication (the simulator
//! listens on loopback). `POST /_sim/{fault}` with query parameters where the fault takes one:
//!
//! | path | parameters | effect |
//! |---|---|---|
//! | `duplicate_upserts` | `on=true\|false` | [`crate::Faults::duplicate_upserts`] |
//! | `repeat_connected` | `every_ms=N` (0 stops) | [`crate::Faults::repeat_connected`] |
//! | `drop_sockets` | | [`crate::Faults::drop_sockets`] |
//! | `refuse_upgrades` | `ms=N` | [`crate::Faults::refuse_upgrades_for`] |
//! | `skip_sequence` | | [`crate::Faults::skip_sequence`] |
//! | `malformed_frame` | | [`crate::Faults::malformed_frame`] |
//! | `unknown_event_type` | | [`crate::Faults::unknown_event_type`] |
//! | `vanish_next_upsert` | | [`crate::Faults::vanish_next_upsert`] |
//! | `supersede_token` | | [`crate::Faults::supersede_token`] |
//! | `corrupt_recording` | `id=N` | [`crate::Faults::corrupt_recording`] |
//! | `reset` | | [`crate::Faults::reset`] |
//!
//! `GET /_sim/faults` shows the switches as JSON.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::state::Shared;

/// `POST /_sim/{fault}`.
pub(crate) async fn fault(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let faults = &shared.faults;
    let number = |key: &str| params.get(key).and_then(|v| v.parse::<u64>().ok());
    let missing =
        |key: &str| (StatusCode::BAD_REQUEST, format!("`{name}` needs `{key}=`")).into_response();
    match name.as_str() {
        "duplicate_upserts" => match params.get("on").and_then(|v| v.parse().ok()) {
            Some(on) => faults.duplicate_upserts(on),
            None => return missing("on"),
        },
        "repeat_connected" => match number("every_ms") {
            Some(ms) => faults.repeat_connected((ms > 0).then(|| Duration::from_millis(ms))),
            None => return missing("every_ms"),
        },
        "drop_sockets" => faults.drop_sockets(),
        "refuse_upgrades" => match number("ms") {
            Some(ms) => faults.refuse_upgrades_for(Duration::from_millis(ms)),
            None => return missing("ms"),
        },
        "skip_sequence" => faults.skip_sequence(),
        "malformed_frame" => faults.malformed_frame(),
        "unknown_event_type" => faults.unknown_event_type(),
        "vanish_next_upsert" => faults.vanish_next_upsert(),
        "supersede_token" => faults.supersede_token(),
        "corrupt_recording" => match number("id") {
            Some(id) => faults.corrupt_recording(id),
            None => return missing("id"),
        },
        "reset" => faults.reset(),
        _ => return (StatusCode::NOT_FOUND, format!("no fault `{name}`")).into_response(),
    }
    Json(faults.describe()).into_response()
}

/// `GET /_sim/faults`.
pub(crate) async fn describe(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.faults.describe()).into_response()
}
