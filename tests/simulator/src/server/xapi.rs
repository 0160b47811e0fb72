//! The XAPI subset of `3cx-api.md` section 5, under `/xapi/v1`.
//!
//! `Recordings` understands the OData options clients use: `$filter` on `Id` with `gt`, `ge`,
//! `eq`, `lt` or `le`; `$orderby=Id asc|desc`; `$top` (at most 100, else `400`); `$skip`;
//! `$count=true`. `$select` and other options are accepted and ignored (every field is always
//! sent). Entity access by key, `Recordings({id})`, answers `404` as the real service does.
//! Errors use the OData envelope `{"error":{"code":"400","message":"..."}}`.

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
    let count = records.len();
    let number = |key: &str| options.get(key).map(|v| v.parse::<usize>());
    let skip = match number("$skip") {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return odata_error(StatusCode::BAD_REQUEST, "$skip must be a number"),
    };
    let top = match number("$top") {
        None => usize::MAX,
        Some(Ok(n)) if n <= MAX_TOP => n,
        Some(Ok(n)) => {
            return odata_error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "The limit of '{MAX_TOP}' for Top query has been exceeded. The value from the incoming request is '{n}'."
                ),
            );
        }
        Some(Err(_)) => return odata_error(StatusCode::BAD_REQUEST, "$top must be a number"),
    };
    let page: Vec<Value> = records.into_iter().skip(skip).take(top).collect();
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!("/xapi/v1/$metadata#Recordings"),
    );
    if options.get("$count").is_some_and(|c| c == "true") {
        body.insert("@odata.count".into(), json!(count));
    }
    body.insert("value".into(), Value::Array(page));
    Json(Value::Object(body)).into_response()
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

/// `GET /xapi/v1/InboundRules`.
pub(crate) async fn inbound_rules(State(shared): State<Arc<Shared>>) -> Response {
    let rules: Vec<Value> = shared
        .config
        .inbound_rules
        .iter()
        .enumerate()
        .map(|(i, rule)| json!({"Id": i + 1, "RuleName": rule.name, "Data": rule.did, "RuleType": "DID"}))
        .collect();
    Json(json!({"@odata.context": "/xapi/v1/$metadata#InboundRules", "value": rules}))
        .into_response()
}
