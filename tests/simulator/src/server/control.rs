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
//! | `repeat_unconnected` | `every_ms=N` (0 stops) | [`crate::Faults::repeat_unconnected`] |
//! | `get_delay` | `ms=N` | [`crate::Faults::get_delay`] |
//! | `abnormal_close` | | [`crate::Faults::abnormal_close`] |
//! | `close_on_new_token` | `mode=off\|clean\|abnormal` | [`crate::Faults::close_on_new_token`] |
//! | `nulls` | `mode=off\|null\|missing` | [`crate::Faults::nulls`] |
//! | `unusable_participants` | `on=true\|false` | [`crate::Faults::unusable_participants`] |
//! | `forbid_participants_of` | `dn=DN` | [`crate::Faults::forbid_participants_of`] |
//! | `forbid_xapi` | `on=true\|false` | [`crate::Faults::forbid_xapi`] |
//! | `null_recording_field` | `mode=off\|recording_url\|call_type\|end_time` | [`crate::Faults::null_recording_field`] |
//! | `non_participant_frames` | `dn=DN` | [`crate::Faults::non_participant_frames`] |
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

use crate::faults::{Nulls, RecordingField, SocketClose};
use crate::state::Shared;

/// `POST /_sim/{fault}`.
pub(crate) async fn fault(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let faults = &shared.faults;
    let number = |key: &str| params.get(key).and_then(|v| v.parse::<u64>().ok());
    let flag = |key: &str| params.get(key).and_then(|v| v.parse::<bool>().ok());
    let text = |key: &str| params.get(key).cloned();
    let mode = params.get("mode").map(String::as_str);
    let missing =
        |key: &str| (StatusCode::BAD_REQUEST, format!("`{name}` needs `{key}=`")).into_response();
    match name.as_str() {
        "duplicate_upserts" => match flag("on") {
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
        "repeat_unconnected" => match number("every_ms") {
            Some(ms) => faults.repeat_unconnected((ms > 0).then(|| Duration::from_millis(ms))),
            None => return missing("every_ms"),
        },
        "get_delay" => match number("ms") {
            Some(ms) => faults.get_delay(Duration::from_millis(ms)),
            None => return missing("ms"),
        },
        "abnormal_close" => faults.abnormal_close(),
        "close_on_new_token" => match mode {
            Some("off") => faults.close_on_new_token(None),
            Some("clean") => faults.close_on_new_token(Some(SocketClose::Clean)),
            Some("abnormal") => faults.close_on_new_token(Some(SocketClose::Abnormal)),
            _ => return missing("mode"),
        },
        "nulls" => match mode {
            Some("off") => faults.nulls(Nulls::Off),
            Some("null") => faults.nulls(Nulls::Null),
            Some("missing") => faults.nulls(Nulls::Missing),
            _ => return missing("mode"),
        },
        "unusable_participants" => match flag("on") {
            Some(on) => faults.unusable_participants(on),
            None => return missing("on"),
        },
        "forbid_participants_of" => match text("dn") {
            Some(dn) => faults.forbid_participants_of(&dn),
            None => return missing("dn"),
        },
        "forbid_xapi" => match flag("on") {
            Some(on) => faults.forbid_xapi(on),
            None => return missing("on"),
        },
        "null_recording_field" => match mode {
            Some("off") => faults.null_recording_field(None),
            Some("recording_url") => {
                faults.null_recording_field(Some(RecordingField::RecordingUrl))
            }
            Some("call_type") => faults.null_recording_field(Some(RecordingField::CallType)),
            Some("end_time") => faults.null_recording_field(Some(RecordingField::EndTime)),
            _ => return missing("mode"),
        },
        "non_participant_frames" => match text("dn") {
            Some(dn) => faults.non_participant_frames(&dn),
            None => return missing("dn"),
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
