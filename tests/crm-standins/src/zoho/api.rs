//! The Zoho CRM v8 endpoints and what they check.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::{Shared, ZohoRecord, error};
use crate::common::offset_time;
use crate::common::serve::Conn;

/// The Calls fields the plugin may send, beside the configured `id_field`.
const CALL_FIELDS: [&str; 10] = [
    "Subject",
    "Call_Type",
    "Call_Start_Time",
    "Call_Duration",
    "Description",
    "Who_Id",
    "What_Id",
    "$se_module",
    "Owner",
    "Outbound_Call_Status",
];

/// One refused record: code, the field's API name, message.
type Refusal = (&'static str, String, &'static str);

fn mandatory(field: &str) -> Refusal {
    (
        "MANDATORY_NOT_FOUND",
        field.to_owned(),
        "required field not found",
    )
}

fn invalid(field: &str) -> Refusal {
    ("INVALID_DATA", field.to_owned(), "invalid data")
}

/// `mm:ss` with two digits or more of minutes.
fn duration_ok(text: &str) -> bool {
    let Some((minutes, seconds)) = text.split_once(':') else {
        return false;
    };
    minutes.len() >= 2
        && minutes.bytes().all(|b| b.is_ascii_digit())
        && seconds.len() == 2
        && seconds.as_bytes()[0].is_ascii_digit()
        && seconds.as_bytes()[0] <= b'5'
        && seconds.as_bytes()[1].is_ascii_digit()
}

/// Whether `value` is `{"id": id}` of a record in `records`.
fn refers(value: &Value, records: &[ZohoRecord]) -> bool {
    let id = value["id"].as_str();
    value.as_object().is_some_and(|o| o.len() == 1)
        && records.iter().any(|r| Some(r.id.as_str()) == id)
}

/// Checks one Calls record; `create` requires the mandatory fields.
fn check_call(shared: &Shared, record: &Map<String, Value>, create: bool) -> Result<(), Refusal> {
    let id_field = shared.config.id_field.as_deref();
    if let Some(unknown) = record
        .keys()
        .find(|key| !CALL_FIELDS.contains(&key.as_str()) && Some(key.as_str()) != id_field)
    {
        return Err(invalid(unknown));
    }
    let text = |name: &str| record.get(name).and_then(Value::as_str);
    for name in [
        "Subject",
        "Description",
        "Call_Type",
        "Call_Duration",
        "Outbound_Call_Status",
    ] {
        if record.get(name).is_some_and(|v| !v.is_string()) {
            return Err(invalid(name));
        }
    }
    let call_type = text("Call_Type");
    if create && call_type.is_none() {
        return Err(mandatory("Call_Type"));
    }
    if call_type.is_some_and(|t| !["Inbound", "Outbound", "Missed"].contains(&t)) {
        return Err(invalid("Call_Type"));
    }
    let status = text("Outbound_Call_Status");
    if status.is_some_and(|s| !["Scheduled", "Completed"].contains(&s)) {
        return Err(invalid("Outbound_Call_Status"));
    }
    let done = matches!(call_type, Some("Inbound" | "Missed"))
        || (call_type == Some("Outbound") && status == Some("Completed"));
    match (record.get("Call_Start_Time"), create) {
        (None, true) => return Err(mandatory("Call_Start_Time")),
        (None, false) => {}
        (Some(value), _) => match value.as_str().and_then(offset_time) {
            Some(start) if !(done && start > Timestamp::now()) => {}
            _ => return Err(invalid("Call_Start_Time")),
        },
    }
    let needs_duration = matches!(call_type, Some("Inbound"))
        || (call_type == Some("Outbound") && status == Some("Completed"));
    match text("Call_Duration") {
        None if create && needs_duration => return Err(mandatory("Call_Duration")),
        Some(duration) if !duration_ok(duration) => return Err(invalid("Call_Duration")),
        _ => {}
    }
    let store = shared.store();
    if record
        .get("Who_Id")
        .is_some_and(|who| !refers(who, &store.contacts))
    {
        return Err(invalid("Who_Id"));
    }
    if let Some(what) = record.get("What_Id") {
        let records = match text("$se_module") {
            Some("Leads") => &store.leads,
            Some("Contacts") => &store.contacts,
            _ => return Err(invalid("$se_module")),
        };
        if !refers(what, records) {
            return Err(invalid("What_Id"));
        }
    }
    if record
        .get("Owner")
        .is_some_and(|owner| !refers(owner, &store.users))
    {
        return Err(invalid("Owner"));
    }
    Ok(())
}

fn refusal_json(index: usize, (code, field, message): &Refusal) -> Value {
    json!({"code": code, "details": {"api_name": field, "json_path": format!("$.data[{index}].{field}")},
        "message": message, "status": "error"})
}

/// The `data` list of a Calls body: 1 to 100 objects.
fn records(body: &Bytes) -> Result<Vec<Map<String, Value>>, Response> {
    let data = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|body| body.get("data").cloned());
    let records: Option<Vec<Map<String, Value>>> = data
        .as_ref()
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(|v| v.as_object().cloned()).collect());
    match records {
        Some(records)
            if (1..=100).contains(&records.len())
                && data.as_ref().and_then(Value::as_array).map(Vec::len) == Some(records.len()) =>
        {
            Ok(records)
        }
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            "INVALID_DATA",
            "data must be a list of 1 to 100 records",
            json!({"api_name": "data", "json_path": "$.data"}),
        )),
    }
}

/// `POST /crm/v8/Calls`: every record is checked first; if one is refused nothing is stored
/// and the answer is 400 with one entry per refused record.
pub(super) async fn create_calls(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    body: Bytes,
) -> Response {
    let records = match records(&body) {
        Ok(records) => records,
        Err(response) => return response,
    };
    let refusals: Vec<Value> = records
        .iter()
        .enumerate()
        .filter_map(|(index, record)| {
            check_call(&shared, record, true)
                .err()
                .map(|refusal| refusal_json(index, &refusal))
        })
        .collect();
    if !refusals.is_empty() {
        return (StatusCode::BAD_REQUEST, Json(json!({"data": refusals}))).into_response();
    }
    let now = Timestamp::now().to_string();
    let answers: Vec<Value> = records
        .into_iter()
        .map(|fields| {
            let id = shared.next_id();
            shared.store().calls.push(ZohoRecord { id: id.clone(), fields });
            json!({"code": "SUCCESS", "details": {"Modified_Time": now, "Created_Time": now, "id": id},
                "message": "record added", "status": "success"})
        })
        .collect();
    if shared.faults.take_drop_after_store() {
        conn.cut();
    }
    if shared.faults.take_fail_after_store() {
        let message = "an internal error occurred";
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            message,
            json!({}),
        );
    }
    (StatusCode::CREATED, Json(json!({"data": answers}))).into_response()
}

/// `GET /crm/v8/Calls/{id}?fields=a,b`: 204 for an unknown or deleted call *(unverified)*.
pub(super) async fn get_call(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let store = shared.store();
    let Some(call) = store.calls.iter().find(|call| call.id == id) else {
        return StatusCode::NO_CONTENT.into_response();
    };
    let wanted: Vec<&str> = query
        .get("fields")
        .map(|f| f.split(',').collect())
        .unwrap_or_default();
    let mut record: Map<String, Value> = call
        .fields
        .iter()
        .filter(|(name, _)| wanted.is_empty() || wanted.contains(&name.as_str()))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    record.insert("id".into(), id.into());
    Json(json!({"data": [record]})).into_response()
}

/// `PUT /crm/v8/Calls/{id}` with `{"data":[{changes}]}`.
pub(super) async fn update_call(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let records = match records(&body) {
        Ok(records) if records.len() == 1 => records,
        Ok(_) => {
            let message = "one record per update";
            return error(StatusCode::BAD_REQUEST, "INVALID_DATA", message, json!({}));
        }
        Err(response) => return response,
    };
    if let Err(refusal) = check_call(&shared, &records[0], false) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"data": [refusal_json(0, &refusal)]})),
        )
            .into_response();
    }
    let mut store = shared.store();
    let Some(call) = store.calls.iter_mut().find(|call| call.id == id) else {
        let message = "the related id given seems to be invalid";
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_DATA",
            message,
            json!({"id": id}),
        );
    };
    call.fields.extend(records[0].clone());
    let now = Timestamp::now().to_string();
    Json(
        json!({"data": [{"code": "SUCCESS", "details": {"Modified_Time": now, "id": id},
        "message": "record updated", "status": "success"}]}),
    )
    .into_response()
}

/// 200 `{"data","info"}`, or 204 with an empty body when nothing matched.
fn found(records: Vec<Value>) -> Response {
    if records.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let info = json!({"per_page": 200, "count": records.len(), "page": 1, "more_records": false});
    Json(json!({"data": records, "info": info})).into_response()
}

fn record_json(record: &ZohoRecord) -> Value {
    let mut fields = record.fields.clone();
    fields.insert("id".into(), record.id.clone().into());
    Value::Object(fields)
}

/// `GET /crm/v8/{Contacts|Leads}/search?phone=` (exact equality with `Phone` or `Mobile`) and
/// `GET /crm/v8/Calls/search?criteria=({field}:equals:{value})`.
pub(super) async fn search(
    State(shared): State<Arc<Shared>>,
    Path(module): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    search_in(&shared, &module, &query)
}

/// `GET /crm/v8/Calls/search`, routed apart from `GET /crm/v8/Calls/{id}`.
pub(super) async fn search_calls(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    search_in(&shared, "Calls", &query)
}

fn search_in(shared: &Shared, module: &str, query: &HashMap<String, String>) -> Response {
    let store = shared.store();
    let bad = |message: &str| error(StatusCode::BAD_REQUEST, "INVALID_QUERY", message, json!({}));
    let matches: Vec<Value> = match module {
        "Contacts" | "Leads" => {
            let Some(phone) = query.get("phone") else {
                return bad("the stand-in searches by phone");
            };
            let records = if module == "Contacts" {
                &store.contacts
            } else {
                &store.leads
            };
            records
                .iter()
                .filter(|r| {
                    ["Phone", "Mobile"]
                        .iter()
                        .any(|f| r.fields.get(*f).and_then(Value::as_str) == Some(phone))
                })
                .map(record_json)
                .collect()
        }
        "Calls" => {
            let criterion = query
                .get("criteria")
                .and_then(|c| c.strip_prefix('(')?.strip_suffix(')'))
                .and_then(|c| c.split_once(":equals:"));
            let Some((field, value)) = criterion else {
                return bad("the stand-in takes criteria=(field:equals:value)");
            };
            store
                .calls
                .iter()
                .filter(|call| call.fields.get(field).and_then(Value::as_str) == Some(value))
                .map(record_json)
                .collect()
        }
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "INVALID_MODULE",
                "the module name given seems to be invalid",
                json!({}),
            );
        }
    };
    found(matches)
}

/// `GET /crm/v8/users?type=ActiveUsers&page=N&per_page=M` over the seeded users.
pub(super) async fn users(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let number = |key: &str, default: usize| {
        query
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (page, per_page) = (number("page", 1).max(1), number("per_page", 200));
    if !(1..=200).contains(&per_page) {
        let message = "per_page must be 1 to 200";
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_DATA",
            message,
            json!({"param": "per_page"}),
        );
    }
    let store = shared.store();
    let users: Vec<Value> = store
        .users
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(record_json)
        .collect();
    let more = store.users.len() > page * per_page;
    if users.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let info =
        json!({"per_page": per_page, "count": users.len(), "page": page, "more_records": more});
    Json(json!({"users": users, "info": info})).into_response()
}
