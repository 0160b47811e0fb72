//! Events to Zoho CRM records, without I/O (spec `crm-plugins.md` 3.2 and 7.2): the Calls
//! record of an end event, the numbers a contact is searched by, and reading the answers of
//! the searches and the user list.

use callhook_plugin_sdk::crm::format::{self, Markup, Notes};
use callhook_plugin_sdk::{Direction, Ended, FinishType};
use serde_json::{Map, Value, json};

/// What the external number matched in the CRM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Party {
    /// A Contact: the record's `Who_Id`.
    Contact(String),
    /// A Lead, when no Contact matched: the record's `What_Id` with `$se_module` `Leads`.
    Lead(String),
}

/// The record key of an end event or a recording part, `{id}.{user}`.
pub fn record_key(id: &str, user: &str) -> String {
    format!("{id}.{user}")
}

/// The Calls record of `ended` (the body's `data[0]`):
///
/// | field | value |
/// |---|---|
/// | `Subject`, `Description` | the title; the notes, lines joined with `\n` |
/// | `Call_Type` | `Inbound` incoming answered, `Missed` incoming missed, `Outbound` outgoing |
/// | `Outbound_Call_Status` | `Completed` on every outgoing record |
/// | `Call_Start_Time` | `answered-at`, else `offered-at`, as `YYYY-MM-DDTHH:MM:SS+00:00` |
/// | `Call_Duration` | `mm:ss`; omitted for `Missed` |
/// | `Who_Id` / `What_Id` + `$se_module` | the Contact / the Lead, when one matched |
/// | `Owner`, `{id_field}` | the owner; the key, each only when known or set |
pub fn call_record(
    ended: &Ended,
    party: Option<&Party>,
    owner: Option<&str>,
    id_field: Option<&str>,
) -> Map<String, Value> {
    let key = record_key(&ended.id, &ended.user);
    let answered = ended.finishtype == FinishType::Ok;
    let call_type = match (ended.direction, answered) {
        (Direction::Outgoing, _) => "Outbound",
        (Direction::Incoming, true) => "Inbound",
        (Direction::Incoming, false) => "Missed",
    };
    let start = match (answered, ended.answered_at) {
        (true, Some(answered_at)) => answered_at,
        _ => ended.offered_at,
    };
    let notes = Notes {
        title: &ended.title,
        user: &ended.user,
        name: ended.user_info.as_ref().map(|info| info.name.as_str()),
        queue: ended.queue.as_deref(),
        key: &key,
    };
    let mut record = Map::new();
    record.insert("Subject".into(), json!(ended.title));
    record.insert("Call_Type".into(), json!(call_type));
    if ended.direction == Direction::Outgoing {
        record.insert("Outbound_Call_Status".into(), json!("Completed"));
    }
    record.insert(
        "Call_Start_Time".into(),
        json!(format::iso8601_utc_offset(start)),
    );
    if call_type != "Missed" {
        record.insert(
            "Call_Duration".into(),
            json!(format::mm_ss(u64::from(ended.duration_seconds))),
        );
    }
    record.insert("Description".into(), json!(notes.render(Markup::Text)));
    match party {
        Some(Party::Contact(id)) => {
            record.insert("Who_Id".into(), json!({"id": id}));
        }
        Some(Party::Lead(id)) => {
            record.insert("What_Id".into(), json!({"id": id}));
            record.insert("$se_module".into(), json!("Leads"));
        }
        None => {}
    }
    if let Some(owner) = owner {
        record.insert("Owner".into(), json!({"id": owner}));
    }
    if let Some(field) = id_field {
        record.insert(field.into(), json!(key));
    }
    record
}

/// `data[0].id` of a search or read answer.
pub fn first_id(body: &Value) -> Option<String> {
    match &body["data"][0]["id"] {
        Value::String(id) => Some(id.clone()),
        Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

/// `data[0].details.id` of a create answer.
pub fn created_id(body: &Value) -> Option<String> {
    match &body["data"][0]["details"]["id"] {
        Value::String(id) => Some(id.clone()),
        Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

/// One page of `GET /crm/v8/users`: the id of the user whose `email` equals `email`
/// (case-insensitive), and whether more pages follow (`info.more_records`).
pub fn user_in_page(body: &Value, email: &str) -> (Option<String>, bool) {
    let found = body["users"].as_array().and_then(|users| {
        users.iter().find_map(|user| {
            let matches = user["email"]
                .as_str()
                .is_some_and(|e| e.trim().eq_ignore_ascii_case(email.trim()));
            matches.then(|| first_id(&json!({"data": [user]})))?
        })
    });
    let more = body["info"]["more_records"].as_bool().unwrap_or(false);
    (found, more)
}

/// The `Description` of a read Calls record (`data[0].Description`), empty when it has none.
pub fn description(body: &Value) -> String {
    body["data"][0]["Description"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests;
