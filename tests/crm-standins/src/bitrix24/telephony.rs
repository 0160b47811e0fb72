//! `telephony.externalcall.register`, `…finish` and `…attachRecord`.

use std::time::Instant;

use axum::http::StatusCode;
use axum::response::Response;
use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::{Bitrix24Call, Bitrix24Finish, Shared, error, result};
use crate::common::offset_time;
use crate::common::serve::Conn;

const REGISTER_PARAMS: [&str; 12] = [
    "USER_ID",
    "USER_PHONE_INNER",
    "PHONE_NUMBER",
    "TYPE",
    "CALL_START_DATE",
    "EXTERNAL_CALL_ID",
    "SHOW",
    "CRM_CREATE",
    "LINE_NUMBER",
    "CRM_SOURCE",
    "CRM_ENTITY_TYPE",
    "CRM_ENTITY_ID",
];

const FINISH_PARAMS: [&str; 11] = [
    "CALL_ID",
    "USER_ID",
    "USER_PHONE_INNER",
    "DURATION",
    "COST",
    "COST_CURRENCY",
    "STATUS_CODE",
    "FAILED_REASON",
    "RECORD_URL",
    "VOTE",
    "ADD_TO_CHAT",
];

const ATTACH_PARAMS: [&str; 4] = ["CALL_ID", "FILENAME", "RECORD_URL", "FILE_CONTENT"];

const STATUS_CODES: [&str; 13] = [
    "200", "304", "603", "603-S", "403", "404", "486", "484", "503", "480", "402", "423", "OTHER",
];

fn argument(description: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "ERROR_ARGUMENT", description)
}

fn only(params: &Map<String, Value>, allowed: &[&str]) -> Result<(), Response> {
    match params.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(key) => Err(argument(&format!("Unknown parameter {key}"))),
        None => Ok(()),
    }
}

/// An optional integer parameter (a JSON integer).
fn int(params: &Map<String, Value>, name: &str) -> Result<Option<i64>, Response> {
    match params.get(name) {
        None => Ok(None),
        Some(value) => value
            .as_i64()
            .map(Some)
            .ok_or_else(|| argument(&format!("{name} must be an integer"))),
    }
}

fn text<'a>(params: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, Response> {
    match params.get(name) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(argument(&format!("{name} must be a string"))),
    }
}

/// The seeded user `USER_ID` or `USER_PHONE_INNER` names.
fn user(shared: &Shared, params: &Map<String, Value>) -> Result<i64, Response> {
    let store = shared.store();
    let found = match (int(params, "USER_ID")?, text(params, "USER_PHONE_INNER")?) {
        (Some(id), _) => store.users.iter().find(|user| user.id == id),
        (None, Some(inner)) => store.users.iter().find(|user| user.inner_number == inner),
        (None, None) => return Err(argument("USER_ID or USER_PHONE_INNER is required")),
    };
    found
        .map(|user| user.id)
        .ok_or_else(|| argument("User is not found"))
}

/// An optional 0/1 parameter, absent being 0.
fn flag(params: &Map<String, Value>, name: &str) -> Result<bool, Response> {
    match int(params, name)? {
        None | Some(0) => Ok(false),
        Some(1) => Ok(true),
        Some(_) => Err(argument(&format!("{name} must be 0 or 1"))),
    }
}

pub(super) fn register(shared: &Shared, params: &Map<String, Value>) -> Response {
    match try_register(shared, params) {
        Ok(response) | Err(response) => response,
    }
}

fn try_register(shared: &Shared, params: &Map<String, Value>) -> Result<Response, Response> {
    only(params, &REGISTER_PARAMS)?;
    let user = user(shared, params)?;
    let phone = text(params, "PHONE_NUMBER")?
        .filter(|phone| !phone.is_empty())
        .ok_or_else(|| argument("PHONE_NUMBER is required"))?;
    match int(params, "TYPE")? {
        Some(1..=5) => {}
        _ => return Err(argument("TYPE must be 1 to 5")),
    }
    if let Some(start) = params.get("CALL_START_DATE")
        && start.as_str().and_then(offset_time).is_none()
    {
        let description = "CALL_START_DATE should be in the ISO-8601 format";
        return Err(error(StatusCode::BAD_REQUEST, "ERROR_CORE", description));
    }
    flag(params, "SHOW")?;
    let crm_create = flag(params, "CRM_CREATE")?;
    text(params, "EXTERNAL_CALL_ID")?;
    let mut store = shared.store();
    let window = shared.config.reregister_window;
    let same = |call: &Bitrix24Call| {
        ["PHONE_NUMBER", "TYPE", "EXTERNAL_CALL_ID"]
            .iter()
            .all(|key| call.register.get(*key) == params.get(*key))
            && call.registered_user == user
    };
    let existing = store
        .calls
        .iter()
        .find(|(call, at)| at.elapsed() < window && same(call))
        .map(|(call, _)| call.call_id.clone());
    let new_call = existing.is_none();
    let call_id = match existing {
        Some(call_id) => call_id,
        None => {
            let n = u128::from(shared.ids.next());
            let hex = n.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
            let call_id = format!("externalCall.{hex:032x}.{}", Timestamp::now().as_second());
            let call = Bitrix24Call {
                call_id: call_id.clone(),
                registered_user: user,
                register: params.clone(),
                finished: None,
                recording: None,
            };
            store.calls.push((call, Instant::now()));
            call_id
        }
    };
    let with_phone = |entities: &[(i64, String)]| {
        entities
            .iter()
            .find(|(_, number)| number == phone)
            .map(|(id, _)| *id)
    };
    let found = with_phone(&store.contacts)
        .map(|contact| ("CONTACT", contact))
        .or_else(|| with_phone(&store.leads).map(|lead| ("LEAD", lead)));
    // Bitrix24 finds no entity with the number and makes a lead; a repeat of this register and
    // later calls from the number find that lead.
    let created_lead = (found.is_none() && crm_create && new_call).then(|| {
        let lead = i64::try_from(shared.ids.next()).unwrap_or(i64::MAX);
        store.leads.push((lead, phone.to_owned()));
        lead
    });
    let bound = found.or(created_lead.map(|lead| ("LEAD", lead)));
    let created: Vec<Value> = created_lead
        .map(|lead| json!({"ENTITY_TYPE": "LEAD", "ENTITY_ID": lead}))
        .into_iter()
        .collect();
    let (entity_type, entity_id) = (bound.map(|(kind, _)| kind), bound.map(|(_, id)| id));
    Ok(result(json!({
        "CALL_ID": call_id,
        "CRM_CREATED_LEAD": created_lead,
        "CRM_ENTITY_TYPE": entity_type,
        "CRM_ENTITY_ID": entity_id,
        "CRM_CREATED_ENTITIES": created,
    })))
}

pub(super) fn finish(shared: &Shared, conn: &Conn, params: &Map<String, Value>) -> Response {
    match try_finish(shared, conn, params) {
        Ok(response) | Err(response) => response,
    }
}

fn try_finish(
    shared: &Shared,
    conn: &Conn,
    params: &Map<String, Value>,
) -> Result<Response, Response> {
    only(params, &FINISH_PARAMS)?;
    let call_id = text(params, "CALL_ID")?.unwrap_or_default().to_owned();
    let not_found = || {
        let description = "Call is not found (call should be registered prior to finishing)";
        error(StatusCode::BAD_REQUEST, "ERROR_CORE", description)
    };
    let open = shared
        .store()
        .calls
        .iter()
        .any(|(call, _)| call.call_id == call_id && call.finished.is_none());
    if !open {
        return Err(not_found());
    }
    let user = user(shared, params)?;
    let duration = match int(params, "DURATION")? {
        Some(duration) => {
            u64::try_from(duration).map_err(|_| argument("DURATION must be 0 or more"))?
        }
        None => return Err(argument("DURATION is required")),
    };
    let status_code = text(params, "STATUS_CODE")?.unwrap_or("200");
    if !STATUS_CODES.contains(&status_code) {
        return Err(argument(&format!(
            "STATUS_CODE must be one of {}",
            STATUS_CODES.join(", ")
        )));
    }
    let activity_id = shared.ids.next();
    let mut store = shared.store();
    let Some((call, _)) = store
        .calls
        .iter_mut()
        .find(|(call, _)| call.call_id == call_id && call.finished.is_none())
    else {
        return Err(not_found());
    };
    call.finished = Some(Bitrix24Finish {
        user,
        duration,
        status_code: status_code.to_owned(),
        activity_id,
    });
    let answer = json!({"CALL_ID": call_id, "EXTERNAL_CALL_ID": call.register.get("EXTERNAL_CALL_ID"),
        "PORTAL_USER_ID": user, "PHONE_NUMBER": call.register.get("PHONE_NUMBER"),
        "CALL_DURATION": duration, "CALL_FAILED_CODE": status_code, "CRM_ACTIVITY_ID": activity_id});
    drop(store);
    if shared.faults.take_drop_after_store() {
        conn.cut();
    }
    if shared.faults.take_fail_after_store() {
        return Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_SERVER_ERROR",
            "Internal server error",
        ));
    }
    Ok(result(answer))
}

pub(super) async fn attach_record(shared: &Shared, params: &Map<String, Value>) -> Response {
    match try_attach(shared, params).await {
        Ok(response) | Err(response) => response,
    }
}

/// Downloads `RECORD_URL` (the stand-in does not take `FILE_CONTENT`) and keeps the bytes; a
/// repeat replaces them.
async fn try_attach(shared: &Shared, params: &Map<String, Value>) -> Result<Response, Response> {
    only(params, &ATTACH_PARAMS)?;
    let call_id = text(params, "CALL_ID")?.unwrap_or_default();
    let finished = shared
        .store()
        .calls
        .iter()
        .any(|(call, _)| call.call_id == call_id && call.finished.is_some());
    if !finished {
        let description = "Call is not found in the statistic table";
        return Err(error(StatusCode::BAD_REQUEST, "ERROR_CORE", description));
    }
    let filename = text(params, "FILENAME")?.unwrap_or_default().to_owned();
    let lower = filename.to_ascii_lowercase();
    if !(lower.ends_with(".mp3") || lower.ends_with(".wav")) {
        return Err(argument("FILENAME must end in .mp3 or .wav"));
    }
    let url = text(params, "RECORD_URL")?.ok_or_else(|| argument("RECORD_URL is required"))?;
    let download = async {
        let response = reqwest::get(url).await?.error_for_status()?;
        response.bytes().await
    };
    let bytes = download.await.map_err(|failure| {
        let description = format!("Could not download the record: {failure}");
        error(StatusCode::BAD_REQUEST, "ERROR_CORE", &description)
    })?;
    let file_id = shared.ids.next();
    let mut store = shared.store();
    if let Some((call, _)) = store
        .calls
        .iter_mut()
        .find(|(call, _)| call.call_id == call_id)
    {
        call.recording = Some((filename, bytes.to_vec()));
    }
    Ok(result(json!({"FILE_ID": file_id})))
}
