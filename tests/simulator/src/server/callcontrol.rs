//! The Call Control REST endpoints of `3cx-api.md` section 2.
//!
//! All read from [`Shared`]; an unknown DN or a participant that is gone (or hidden by the
//! vanish fault) answers `404` with an empty body. The replies are then shaped by the fault
//! switches ([`crate::Faults`]): absent values written as `null` or left out
//! ([`Nulls`]), unusable participants (no `id`, no `callid`) added to extension DNs, `403` on the
//! participant GETs of a forbidden DN, and a delay before each participant GET. The shaping is
//! applied on the way out, so the state and the timeline keep the shape of the live samples.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::faults::{Nulls, Switches};
use crate::state::Shared;

fn found(value: Option<Value>, switches: &Switches) -> Response {
    match value {
        Some(mut value) => {
            shape(&mut value, switches);
            Json(value).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Applies the reply-shaping switches to a DN, a list of DNs or participants, or a participant.
fn shape(value: &mut Value, switches: &Switches) {
    if switches.unusable_participants {
        add_unusable(value);
    }
    if switches.nulls != Nulls::Off {
        absent(value, switches.nulls);
    }
}

/// Adds a participant without `id` and one without `callid` to every extension DN object.
fn add_unusable(value: &mut Value) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(add_unusable),
        Value::Object(dn) if dn.get("type").is_some_and(|t| t == "Wextension") => {
            let number = dn["dn"].clone();
            if let Some(Value::Array(participants)) = dn.get_mut("participants") {
                participants.push(json!({"status": "Ringing", "dn": number, "callid": 1}));
                participants.push(json!({"id": 1, "status": "Ringing", "dn": number}));
            }
        }
        _ => {}
    }
}

/// Writes every `""`, `"None"` and empty `devices` list as `null`, or leaves the key out.
fn absent(value: &mut Value, nulls: Nulls) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(|item| absent(item, nulls)),
        Value::Object(map) => {
            let empty: Vec<String> = map
                .iter()
                .filter(|(key, v)| {
                    *v == "" || *v == "None" || (key.as_str() == "devices" && *v == &json!([]))
                })
                .map(|(key, _)| key.clone())
                .collect();
            for key in empty {
                match nulls {
                    Nulls::Missing => {
                        map.remove(&key);
                    }
                    Nulls::Null | Nulls::Off => {
                        map.insert(key, Value::Null);
                    }
                }
            }
            map.values_mut().for_each(|v| absent(v, nulls));
        }
        _ => {}
    }
}

/// `GET /callcontrol`.
pub(crate) async fn snapshot(State(shared): State<Arc<Shared>>) -> Response {
    let switches = shared.faults.switches();
    found(Some(Value::Array(shared.snapshot())), &switches)
}

/// `GET /callcontrol/{dn}`.
pub(crate) async fn dn(State(shared): State<Arc<Shared>>, Path(dn): Path<String>) -> Response {
    found(shared.dn(&dn), &shared.faults.switches())
}

/// `GET /callcontrol/{dn}/participants`.
pub(crate) async fn participants(
    State(shared): State<Arc<Shared>>,
    Path(dn): Path<String>,
) -> Response {
    found(
        shared.participants(&dn).map(Value::Array),
        &shared.faults.switches(),
    )
}

/// `GET /callcontrol/{dn}/participants/{id}`: after the configured delay, `403` for a forbidden
/// DN, `500` for a failing one, else the participant as it is at that moment.
pub(crate) async fn participant(
    State(shared): State<Arc<Shared>>,
    Path((dn, id)): Path<(String, String)>,
) -> Response {
    let delay = shared.faults.switches().get_delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let switches = shared.faults.switches();
    if switches.forbidden_participants_of.contains(&dn) {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"error": "participant not visible to this client"})),
        )
            .into_response();
    }
    if switches.failing_participants_of.contains(&dn) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": "internal error"})),
        )
            .into_response();
    }
    found(
        id.parse().ok().and_then(|id| shared.participant(&dn, id)),
        &switches,
    )
}
