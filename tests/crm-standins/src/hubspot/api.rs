//! The HubSpot endpoints and what they check.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::{HubSpotObject, Shared, error};
use crate::common::serve::Conn;

/// The call properties the plugin may send, beside the configured `id_property`.
const CALL_PROPERTIES: [&str; 11] = [
    "hs_timestamp",
    "hs_call_title",
    "hs_call_body",
    "hs_call_direction",
    "hs_call_status",
    "hs_call_duration",
    "hs_call_disposition",
    "hubspot_owner_id",
    "hs_call_from_number",
    "hs_call_to_number",
    "hs_call_recording_url",
];

/// The contact properties the stand-in knows.
const CONTACT_PROPERTIES: [&str; 5] = ["phone", "mobilephone", "email", "firstname", "lastname"];

const STATUSES: [&str; 10] = [
    "BUSY",
    "CALLING_CRM_USER",
    "CANCELED",
    "COMPLETED",
    "CONNECTING",
    "FAILED",
    "IN_PROGRESS",
    "NO_ANSWER",
    "QUEUED",
    "RINGING",
];

/// The association type of a call to a contact.
const CALL_TO_CONTACT: i64 = 194;

/// One refused property, as HubSpot lists it.
struct Invalid {
    name: String,
    code: &'static str,
    message: String,
}

fn invalid(name: &str, code: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        name: name.to_owned(),
        code,
        message: message.into(),
    }
}

/// 400 `VALIDATION_ERROR` "Property values were not valid: [...]".
fn validation_error(problems: &[Invalid]) -> Response {
    let listed: Vec<Value> = problems
        .iter()
        .map(|p| json!({"isValid": false, "message": p.message, "error": p.code, "name": p.name}))
        .collect();
    let errors: Vec<Value> = problems
        .iter()
        .map(|p| json!({"message": p.message, "code": p.code, "context": {"propertyName": [p.name]}}))
        .collect();
    error(
        StatusCode::BAD_REQUEST,
        &format!("Property values were not valid: {}", Value::Array(listed)),
        json!({"category": "VALIDATION_ERROR", "errors": errors}),
    )
}

/// 400 for a body that is not what the endpoint takes.
fn bad_input(message: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        &format!("Invalid input JSON on line 1: {message}"),
        json!({"category": "VALIDATION_ERROR"}),
    )
}

fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "Object not found.  objectId are usually numeric.",
        json!({"category": "OBJECT_NOT_FOUND"}),
    )
}

/// The body as a JSON object whose keys are all in `allowed`.
fn object(body: &Bytes, allowed: &[&str]) -> Result<Map<String, Value>, Response> {
    let Ok(Value::Object(object)) = serde_json::from_slice(body) else {
        return Err(bad_input("the body is not a JSON object"));
    };
    match object.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(key) => Err(bad_input(&format!("Unrecognized field \"{key}\""))),
        None => Ok(object),
    }
}

/// `properties`: an object of strings, each known to the object type.
fn properties(
    value: Option<&Value>,
    known: &dyn Fn(&str) -> bool,
) -> Result<BTreeMap<String, String>, Response> {
    let Some(Value::Object(raw)) = value else {
        return Err(bad_input("`properties` must be an object"));
    };
    let mut properties = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, value) in raw {
        if !known(name) {
            let message = format!("Property \"{name}\" does not exist");
            problems.push(invalid(name, "PROPERTY_DOESNT_EXIST", message));
        } else if let Value::String(text) = value {
            properties.insert(name.clone(), text.clone());
        } else {
            // HubSpot's examples send strings only; numbers reportedly work too (unverified),
            // so the stand-in holds the plugins to strings.
            let message = format!("{value} is not a string");
            problems.push(invalid(name, "INVALID_STRING", message));
        }
    }
    if problems.is_empty() {
        Ok(properties)
    } else {
        Err(validation_error(&problems))
    }
}

/// Checks the values of call properties; `create` also requires `hs_timestamp`.
fn check_call(
    shared: &Shared,
    properties: &BTreeMap<String, String>,
    create: bool,
) -> Vec<Invalid> {
    let store = shared.store();
    let mut problems = Vec::new();
    if create && !properties.contains_key("hs_timestamp") {
        problems.push(invalid(
            "hs_timestamp",
            "REQUIRED_FIELD",
            "Property \"hs_timestamp\" is required",
        ));
    }
    for (name, value) in properties {
        let option = |options: &[&str]| {
            (!options.contains(&value.as_str())).then(|| {
                let message = format!("{value} was not one of the allowed options: {options:?}");
                invalid(name, "INVALID_OPTION", message)
            })
        };
        let problem = match name.as_str() {
            "hs_timestamp" => {
                let epoch = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
                (!epoch && value.parse::<Timestamp>().is_err())
                    .then(|| invalid(name, "INVALID_DATE", format!("{value} is not a valid date")))
            }
            "hs_call_direction" => option(&["INBOUND", "OUTBOUND"]),
            "hs_call_status" => option(&STATUSES),
            "hs_call_disposition" => {
                let known: Vec<&str> = store.dispositions.iter().map(String::as_str).collect();
                option(&known)
            }
            "hs_call_duration" => (value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()))
                .then(|| {
                    invalid(
                        name,
                        "INVALID_INTEGER",
                        format!("{value} is not a valid integer"),
                    )
                }),
            "hs_call_recording_url" => (!value.starts_with("https://")).then(|| {
                invalid(
                    name,
                    "INVALID_URL",
                    format!("{value} is not an https:// URL"),
                )
            }),
            "hubspot_owner_id" => (!store.owners.iter().any(|o| &o.id == value)).then(|| {
                invalid(
                    name,
                    "INVALID_OWNER_ID",
                    format!("{value} is not a valid owner id"),
                )
            }),
            _ => None,
        };
        problems.extend(problem);
    }
    problems
}

/// `associations`: absent, or a list of `{"to":{"id"},"types":[{HUBSPOT_DEFINED, 194}]}` to
/// existing contacts. Returns the contact ids.
fn associations(shared: &Shared, value: Option<&Value>) -> Result<Vec<String>, Response> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let Some(list) = value.as_array() else {
        return Err(bad_input("`associations` must be a list"));
    };
    let mut contacts = Vec::new();
    for association in list {
        let id = association["to"]["id"].as_str().unwrap_or_default();
        let types = association["types"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let typed = !types.is_empty()
            && types.iter().all(|t| {
                t["associationCategory"] == "HUBSPOT_DEFINED"
                    && t["associationTypeId"].as_i64() == Some(CALL_TO_CONTACT)
            });
        if !typed {
            return Err(bad_input("associations need type 194 HUBSPOT_DEFINED"));
        }
        if !shared.store().contacts.iter().any(|c| c.id == id) {
            return Err(error(
                StatusCode::BAD_REQUEST,
                &format!("One or more associations are invalid: contact {id} does not exist"),
                json!({"category": "VALIDATION_ERROR"}),
            ));
        }
        contacts.push(id.to_owned());
    }
    Ok(contacts)
}

fn object_json(object: &HubSpotObject, only: Option<&[&str]>) -> Value {
    let mut properties: Map<String, Value> = object
        .properties
        .iter()
        .filter(|(name, _)| only.is_none_or(|only| only.contains(&name.as_str())))
        .map(|(name, value)| (name.clone(), Value::String(value.clone())))
        .collect();
    properties.insert("hs_object_id".into(), object.id.clone().into());
    properties.insert("hs_createdate".into(), object.created_at.to_string().into());
    properties.insert(
        "hs_lastmodifieddate".into(),
        object.updated_at.to_string().into(),
    );
    json!({
        "id": object.id,
        "properties": properties,
        "createdAt": object.created_at.to_string(),
        "updatedAt": object.updated_at.to_string(),
        "archived": false,
    })
}

/// Stores a new object, then answers 201 unless a fault says otherwise.
fn created(shared: &Shared, conn: &Conn, object: &HubSpotObject) -> Response {
    if shared.faults.take_drop_after_store() {
        conn.cut();
    }
    if shared.faults.take_fail_after_store() {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error",
            json!({"category": "INTERNAL_ERROR"}),
        );
    }
    (StatusCode::CREATED, Json(object_json(object, None))).into_response()
}

fn new_object(
    shared: &Shared,
    properties: BTreeMap<String, String>,
    contacts: Vec<String>,
) -> HubSpotObject {
    let now = Timestamp::now();
    HubSpotObject {
        id: shared.ids.next().to_string(),
        properties,
        contacts,
        created_at: now,
        updated_at: now,
    }
}

fn is_call_property(shared: &Shared, name: &str) -> bool {
    CALL_PROPERTIES.contains(&name) || shared.config.id_property.as_deref() == Some(name)
}

/// `POST /crm/v3/objects/calls`.
pub(super) async fn create_call(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    body: Bytes,
) -> Response {
    let result = (|| {
        let body = object(&body, &["properties", "associations"])?;
        let properties = properties(body.get("properties"), &|name| {
            is_call_property(&shared, name)
        })?;
        let problems = check_call(&shared, &properties, true);
        if !problems.is_empty() {
            return Err(validation_error(&problems));
        }
        let contacts = associations(&shared, body.get("associations"))?;
        Ok(new_object(&shared, properties, contacts))
    })();
    match result {
        Ok(call) => {
            shared.store().calls.push(call.clone());
            created(&shared, &conn, &call)
        }
        Err(response) => response,
    }
}

/// `POST /crm/v3/objects/contacts`.
pub(super) async fn create_contact(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    body: Bytes,
) -> Response {
    let result = object(&body, &["properties", "associations"]).and_then(|body| {
        properties(body.get("properties"), &|name| {
            CONTACT_PROPERTIES.contains(&name)
        })
    });
    match result {
        Ok(properties) => {
            let contact = new_object(&shared, properties, Vec::new());
            shared.store().contacts.push(contact.clone());
            created(&shared, &conn, &contact)
        }
        Err(response) => response,
    }
}

/// `GET /crm/v3/objects/calls/{id}?properties=a,b`.
pub(super) async fn get_call(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let store = shared.store();
    let Some(call) = store.calls.iter().find(|call| call.id == id) else {
        return not_found();
    };
    let wanted: Vec<&str> = query
        .get("properties")
        .map(|list| list.split(',').collect())
        .unwrap_or_default();
    Json(object_json(call, Some(&wanted))).into_response()
}

/// `PATCH /crm/v3/objects/calls/{id}`.
pub(super) async fn patch_call(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if !shared.store().calls.iter().any(|call| call.id == id) {
        return not_found();
    }
    let changes = match object(&body, &["properties"]).and_then(|body| {
        properties(body.get("properties"), &|name| {
            is_call_property(&shared, name)
        })
    }) {
        Ok(changes) => changes,
        Err(response) => return response,
    };
    let problems = check_call(&shared, &changes, false);
    if !problems.is_empty() {
        return validation_error(&problems);
    }
    let mut store = shared.store();
    let Some(call) = store.calls.iter_mut().find(|call| call.id == id) else {
        return not_found();
    };
    call.properties.extend(changes);
    call.updated_at = Timestamp::now();
    Json(object_json(call, None)).into_response()
}

/// A search body, checked against HubSpot's limits.
struct Search {
    /// The `EQ` filters, by group: (property, value).
    groups: Vec<Vec<(String, String)>>,
    /// At most this many results (`limit`, by default 10).
    limit: usize,
    /// The properties to return.
    wanted: Vec<String>,
}

impl Search {
    fn parse(body: &Bytes) -> Result<Search, Response> {
        let allowed = [
            "filterGroups",
            "limit",
            "properties",
            "sorts",
            "after",
            "query",
        ];
        let body = object(body, &allowed)?;
        let raw_groups = body
            .get("filterGroups")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let limit = body
            .get("limit")
            .map_or(Some(10), Value::as_u64)
            .unwrap_or(u64::MAX);
        if raw_groups.len() > 5 {
            return Err(bad_input("at most 5 filterGroups"));
        }
        if limit > 200 {
            return Err(bad_input("limit must be 200 or less"));
        }
        let mut groups = Vec::new();
        for group in &raw_groups {
            let filters = group["filters"].as_array().cloned().unwrap_or_default();
            if filters.len() > 6 {
                return Err(bad_input("at most 6 filters in a filterGroup"));
            }
            let mut list = Vec::new();
            for filter in &filters {
                let (Some(name), Some("EQ"), Some(value)) = (
                    filter["propertyName"].as_str(),
                    filter["operator"].as_str(),
                    filter["value"].as_str(),
                ) else {
                    return Err(bad_input(
                        "the stand-in takes EQ filters with string values",
                    ));
                };
                list.push((name.to_owned(), value.to_owned()));
            }
            groups.push(list);
        }
        let wanted = body
            .get("properties")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Search {
            groups,
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            wanted,
        })
    }

    /// A match satisfies every filter of one group (exact string equality); no groups matches
    /// everything.
    fn matches(&self, object: &HubSpotObject) -> bool {
        self.groups.is_empty()
            || self.groups.iter().any(|group| {
                group
                    .iter()
                    .all(|(name, value)| object.properties.get(name) == Some(value))
            })
    }
}

/// Runs a search over the `visible` ones of `objects`.
fn search(
    body: &Bytes,
    objects: &[HubSpotObject],
    visible: &dyn Fn(&HubSpotObject) -> bool,
) -> Response {
    let search = match Search::parse(body) {
        Ok(search) => search,
        Err(response) => return response,
    };
    let wanted: Vec<&str> = search.wanted.iter().map(String::as_str).collect();
    let matches: Vec<&HubSpotObject> = objects
        .iter()
        .filter(|object| visible(object) && search.matches(object))
        .collect();
    let results: Vec<Value> = matches
        .iter()
        .take(search.limit)
        .map(|object| object_json(object, Some(&wanted)))
        .collect();
    Json(json!({"total": matches.len(), "results": results})).into_response()
}

/// `POST /crm/v3/objects/contacts/search`.
pub(super) async fn search_contacts(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let contacts = shared.store().contacts.clone();
    search(&body, &contacts, &|_| true)
}

/// `POST /crm/v3/objects/calls/search`: calls show up [`super::HubSpotConfig::search_delay`]
/// after their creation.
pub(super) async fn search_calls(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let calls = shared.store().calls.clone();
    let delay = jiff::SignedDuration::try_from(shared.config.search_delay).unwrap_or_default();
    let now = Timestamp::now();
    search(&body, &calls, &|call| call.created_at + delay <= now)
}

/// `GET /crm/v3/owners?email=`: the seeded owners, those with that e-mail when given.
pub(super) async fn owners(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let store = shared.store();
    let results: Vec<Value> = store
        .owners
        .iter()
        .filter(|owner| query.get("email").is_none_or(|email| owner.email.eq_ignore_ascii_case(email)))
        .map(|owner| json!({"id": owner.id, "email": owner.email, "type": "PERSON", "archived": false}))
        .collect();
    Json(json!({"results": results})).into_response()
}
