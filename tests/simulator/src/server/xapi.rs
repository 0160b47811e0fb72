//! The XAPI subset of `3cx-api.md` section 5, under `/xapi/v1`.
//!
//! `Recordings` understands the OData options clients use: `$filter` on `Id` with `gt`, `ge`,
//! `eq`, `lt` or `le`; `$orderby=Id asc|desc`; `$top` (at most 100, else `400`); `$skip`;
//! `$count=true`. `$select` and other options are accepted and ignored (every field is always
//! sent). Entity access by key, `Recordings({id})`, answers `404` as the real service does.
//! `InboundRules` lists [`crate::SimConfig::inbound_rules`] with their `Condition` (there is no
//! `RuleType`); `Users` pages [`crate::SimConfig::users`] like recordings and honours `$select`.
//! Errors use the OData envelope `{"error":{"code":"400","message":"..."}}`; with
//! [`crate::Faults::forbid_xapi`] every path answers `403` (checked with the token).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::state::Shared;

/// The largest `$top` the service accepts.
const MAX_TOP: usize = 100;

fn odata_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": status.as_u16().to_string(), "message": message}})),
    )
        .into_response()
}

/// A parsed `$filter=Id <op> <n>`.
fn id_filter(filter: &str) -> Option<impl Fn(u64) -> bool> {
    let mut words = filter.split_whitespace();
    let (field, op, value) = (words.next()?, words.next()?, words.next()?);
    if field != "Id" || words.next().is_some() {
        return None;
    }
    let n: u64 = value.parse().ok()?;
    let compare: fn(u64, u64) -> bool = match op {
        "gt" => |id, n| id > n,
        "ge" => |id, n| id >= n,
        "eq" => |id, n| id == n,
        "lt" => |id, n| id < n,
        "le" => |id, n| id <= n,
        _ => return None,
    };
    Some(move |id| compare(id, n))
}

/// `GET /xapi/v1/Recordings`.
pub(crate) async fn recordings(
    State(shared): State<Arc<Shared>>,
    Query(options): Query<HashMap<String, String>>,
) -> Response {
    let mut records = shared.recording_records();
    if let Some(filter) = options.get("$filter") {
        let Some(keep) = id_filter(filter) else {
            return odata_error(
                StatusCode::BAD_REQUEST,
                &format!("unsupported $filter `{filter}`: use `Id gt|ge|eq|lt|le <n>`"),
            );
        };
        records.retain(|r| keep(r["Id"].as_u64().unwrap_or_default()));
    }
    match options.get("$orderby").map(|o| o.trim()) {
        None | Some("Id") | Some("Id asc") => records.sort_by_key(|r| r["Id"].as_u64()),
        Some("Id desc") => records.sort_by_key(|r| std::cmp::Reverse(r["Id"].as_u64())),
        Some(other) => {
            return odata_error(
                StatusCode::BAD_REQUEST,
                &format!("unsupported $orderby `{other}`"),
            );
        }
    }
    match page(&options, records) {
        Ok(body) => Json(with_context(body, "Recordings")).into_response(),
        Err(why) => odata_error(StatusCode::BAD_REQUEST, &why),
    }
}

/// Applies `$skip`, `$top` (at most 100) and `$count=true` to `rows`: the page's body, or
/// why the options are refused (a `400`).
fn page(options: &HashMap<String, String>, rows: Vec<Value>) -> Result<Map<String, Value>, String> {
    let count = rows.len();
    let number = |key: &str| options.get(key).map(|v| v.parse::<usize>());
    let skip = match number("$skip") {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return Err("$skip must be a number".to_owned()),
    };
    let top = match number("$top") {
        None => usize::MAX,
        Some(Ok(n)) if n <= MAX_TOP => n,
        Some(Ok(n)) => {
            return Err(format!(
                "The limit of '{MAX_TOP}' for Top query has been exceeded. The value from the incoming request is '{n}'."
            ));
        }
        Some(Err(_)) => return Err("$top must be a number".to_owned()),
    };
    let page: Vec<Value> = rows.into_iter().skip(skip).take(top).collect();
    let mut body = Map::new();
    if options.get("$count").is_some_and(|c| c == "true") {
        body.insert("@odata.count".into(), json!(count));
    }
    body.insert("value".into(), Value::Array(page));
    Ok(body)
}

/// The body with its `@odata.context` first, as the service sends it.
fn with_context(body: Map<String, Value>, entity: &str) -> Value {
    let mut out = Map::new();
    out.insert(
        "@odata.context".into(),
        json!(format!("/xapi/v1/$metadata#{entity}")),
    );
    out.extend(body);
    Value::Object(out)
}

/// `GET /xapi/v1/{entity}`, e.g. `Recordings(5)`: key access is not offered.
pub(crate) async fn entity(Path(entity): Path<String>) -> Response {
    odata_error(
        StatusCode::NOT_FOUND,
        &format!("no resource `{entity}`; filter with `Id eq` instead"),
    )
}

/// `GET /xapi/v1/Recordings/Pbx.DownloadRecording(recId={id})`.
pub(crate) async fn download(
    State(shared): State<Arc<Shared>>,
    Path(action): Path<String>,
) -> Response {
    let id = action
        .strip_prefix("Pbx.DownloadRecording(recId=")
        .and_then(|rest| rest.strip_suffix(')'))
        .and_then(|id| id.parse().ok());
    match id.and_then(|id| shared.recording_file(id)) {
        Some((name, bytes)) => {
            // Header values must be visible ASCII; display names need not be.
            let name: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii_graphic() || c == ' ' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            (
                [
                    (header::CONTENT_TYPE, "audio/x-wav".to_owned()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{name}\""),
                    ),
                ],
                bytes,
            )
                .into_response()
        }
        None => odata_error(StatusCode::BAD_REQUEST, "WARNINGS.XAPI.FILE_NOT_FOUND"),
    }
}

/// `GET /xapi/v1/InboundRules`: every rule with the fields clients read and a few they ignore,
/// `null` where the rule has no value.
pub(crate) async fn inbound_rules(State(shared): State<Arc<Shared>>) -> Response {
    let rules: Vec<Value> = shared
        .config
        .inbound_rules
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            json!({
                "Id": i + 1,
                "RuleName": rule.name,
                "Data": rule.did,
                "Condition": rule.condition,
                "CallType": "AllCalls",
                "CustomData": null,
                "TrunkDN": null,
                "Hours": null,
            })
        })
        .collect();
    Json(json!({"@odata.context": "/xapi/v1/$metadata#InboundRules", "value": rules}))
        .into_response()
}

/// `GET /xapi/v1/Users`: paged like recordings (`$top` at most 100), in `Id` order; `$select`
/// keeps only the named fields.
pub(crate) async fn users(
    State(shared): State<Arc<Shared>>,
    Query(options): Query<HashMap<String, String>>,
) -> Response {
    let rows: Vec<Value> = shared
        .config
        .users
        .iter()
        .enumerate()
        .map(|(i, user)| {
            json!({
                "Id": i + 1,
                "Number": user.number,
                "FirstName": user.first_name,
                "LastName": user.last_name,
                "EmailAddress": user.email,
            })
        })
        .collect();
    let rows = match options.get("$select") {
        Some(select) => {
            let wanted: Vec<&str> = select.split(',').map(str::trim).collect();
            rows.into_iter()
                .map(|mut row| {
                    if let Value::Object(fields) = &mut row {
                        fields.retain(|key, _| wanted.contains(&key.as_str()));
                    }
                    row
                })
                .collect()
        }
        None => rows,
    };
    match page(&options, rows) {
        Ok(body) => Json(with_context(body, "Users")).into_response(),
        Err(why) => odata_error(StatusCode::BAD_REQUEST, &why),
    }
}
