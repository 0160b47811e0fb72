//! The Pipedrive endpoints and what they check.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{ConnectInfo, Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jiff::civil::DateTime;
use serde_json::{Map, Value, json};

use super::{PipedriveCallLog, Shared, error};
use crate::common::serve::Conn;
use crate::common::shaped;

const FIELDS: [&str; 14] = [
    "subject",
    "duration",
    "outcome",
    "from_phone_number",
    "to_phone_number",
    "start_time",
    "end_time",
    "person_id",
    "org_id",
    "deal_id",
    "lead_id",
    "user_id",
    "activity_id",
    "note",
];

const OUTCOMES: [&str; 6] = [
    "connected",
    "no_answer",
    "left_message",
    "left_voicemail",
    "wrong_number",
    "busy",
];

/// `YYYY-MM-DD HH:MM:SS`, the only form the documentation gives.
fn time(fields: &Map<String, Value>, name: &str) -> Result<DateTime, String> {
    let text = fields.get(name).and_then(Value::as_str).unwrap_or_default();
    if !shaped(text, "9999-99-99 99:99:99") {
        return Err(format!("{name} must be in the format YYYY-MM-DD HH:MM:SS"));
    }
    text.replacen(' ', "T", 1)
        .parse()
        .map_err(|_| format!("{name} is not a valid date"))
}

/// Checks a call log body; the message of the first problem.
fn check(shared: &Shared, fields: &Map<String, Value>) -> Result<(), String> {
    if let Some(unknown) = fields.keys().find(|key| !FIELDS.contains(&key.as_str())) {
        return Err(format!("Unknown field: {unknown}"));
    }
    for required in ["outcome", "to_phone_number", "start_time", "end_time"] {
        if !fields.contains_key(required) {
            return Err(format!("{required} is required"));
        }
    }
    let outcome = fields["outcome"].as_str().unwrap_or_default();
    if !OUTCOMES.contains(&outcome) {
        return Err(format!("outcome must be one of {}", OUTCOMES.join(", ")));
    }
    for text in [
        "subject",
        "from_phone_number",
        "to_phone_number",
        "note",
        "lead_id",
    ] {
        if fields.get(text).is_some_and(|v| !v.is_string()) {
            return Err(format!("{text} must be a string"));
        }
    }
    if time(fields, "end_time")? < time(fields, "start_time")? {
        return Err("end_time must not be before start_time".into());
    }
    if let Some(duration) = fields.get("duration") {
        let digits = duration
            .as_str()
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
        if !digits {
            return Err("duration must be a string of digits (seconds)".into());
        }
    }
    if fields.contains_key("deal_id") && fields.contains_key("lead_id") {
        return Err("deal_id and lead_id cannot be set together".into());
    }
    let store = shared.store();
    let known = |name: &str, ids: &dyn Fn(i64) -> bool| match fields.get(name) {
        None => Ok(()),
        Some(Value::Number(n)) if n.as_i64().is_some_and(ids) => Ok(()),
        Some(Value::Number(_)) => Err(format!("{name} does not exist")),
        Some(_) => Err(format!("{name} must be an integer")),
    };
    known("user_id", &|id| store.users.iter().any(|u| u.id == id))?;
    known("person_id", &|id| store.persons.iter().any(|p| p.id == id))?;
    known("org_id", &|id| store.organizations.contains(&id))?;
    known("deal_id", &|id| store.deals.contains(&id))?;
    known("activity_id", &|_| true)?;
    Ok(())
}

/// `POST /v1/callLogs`: 200 (201 with [`crate::Faults::created_201`]).
pub(super) async fn create_call_log(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    body: Bytes,
) -> Response {
    let Ok(Value::Object(fields)) = serde_json::from_slice(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "The request body must be a JSON object",
        );
    };
    if let Err(message) = check(&shared, &fields) {
        return error(StatusCode::BAD_REQUEST, &message);
    }
    let id = format!("{:024x}", shared.ids.next());
    shared.store().call_logs.push(PipedriveCallLog {
        id: id.clone(),
        fields: fields.clone(),
        recording: None,
        deleted: false,
    });
    if shared.faults.take_drop_after_store() {
        conn.cut();
    }
    if shared.faults.take_fail_after_store() {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
    }
    let mut data = fields;
    data.insert("id".into(), id.into());
    data.insert("has_recording".into(), false.into());
    let status = if shared.faults.switches().created_201 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(json!({"success": true, "data": data}))).into_response()
}

/// `POST /v1/callLogs/{id}/recordings`: multipart with a `file` part.
pub(super) async fn upload_recording(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    {
        let store = shared.store();
        match store.call_logs.iter().find(|log| log.id == id) {
            None => return error(StatusCode::NOT_FOUND, "Call log not found"),
            Some(log) if log.deleted => return error(StatusCode::GONE, "Call log is deleted"),
            Some(log) if log.recording.is_some() => {
                return error(
                    StatusCode::CONFLICT,
                    "A recording for this call already exists",
                );
            }
            Some(_) => {}
        }
    }
    let Ok(mut multipart) = multipart else {
        return error(
            StatusCode::BAD_REQUEST,
            "The request must be multipart/form-data",
        );
    };
    let mut file = None;
    while let Ok(Some(field)) = multipart.next_field().await {
        if field.name() == Some("file") {
            let name = field.file_name().unwrap_or_default().to_owned();
            if let Ok(bytes) = field.bytes().await {
                file = Some((name, bytes.to_vec()));
            }
        }
    }
    let Some(file) = file else {
        return error(StatusCode::BAD_REQUEST, "The file part is missing");
    };
    let mut store = shared.store();
    if let Some(log) = store.call_logs.iter_mut().find(|log| log.id == id) {
        log.recording = Some(file);
    }
    Json(json!({"success": true})).into_response()
}

/// `GET /api/v2/persons/search?term=&fields=phone`: persons one of whose phones contains `term`.
pub(super) async fn search_persons(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let term = query.get("term").map(String::as_str).unwrap_or_default();
    if term.chars().count() < 2 {
        return error(
            StatusCode::BAD_REQUEST,
            "term must be at least 2 characters long",
        );
    }
    if query.get("fields").map(String::as_str) != Some("phone") {
        return error(
            StatusCode::BAD_REQUEST,
            "the stand-in searches fields=phone only",
        );
    }
    let store = shared.store();
    let items: Vec<Value> = store
        .persons
        .iter()
        .filter(|person| person.phones.iter().any(|phone| phone.contains(term)))
        .map(|person| {
            let phones: Vec<&str> = person.phones.iter().map(String::as_str).collect();
            json!({"result_score": 1.0, "item": {"id": person.id, "type": "person",
                "name": person.name, "phones": phones}})
        })
        .collect();
    Json(json!({"success": true, "data": {"items": items},
        "additional_data": {"next_cursor": null}}))
    .into_response()
}

/// `GET /v1/users/find?term=&search_by_email=1`: users whose e-mail contains `term`
/// (case-insensitive); `data` is null when none does.
pub(super) async fn find_users(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let term = query
        .get("term")
        .map(|t| t.to_lowercase())
        .unwrap_or_default();
    if term.is_empty() {
        return error(StatusCode::BAD_REQUEST, "term is required");
    }
    let store = shared.store();
    let found: Vec<Value> = store
        .users
        .iter()
        .filter(|user| user.email.to_lowercase().contains(&term))
        .map(|user| json!({"id": user.id, "email": user.email, "active_flag": true}))
        .collect();
    let data = if found.is_empty() {
        Value::Null
    } else {
        Value::Array(found)
    };
    Json(json!({"success": true, "data": data})).into_response()
}
