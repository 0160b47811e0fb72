//! The JSON bodies, built from an end event without I/O (spec `crm-plugins.md` section 4.2):
//! the call create, the contact search and create, and the search of a call by its key.

use crate::settings::Settings;
use callhook_plugin_sdk::crm::format::{self, Markup};
use callhook_plugin_sdk::crm::part::Part;
use serde_json::{Map, Value, json};

/// HubSpot's association type of a call to a contact.
pub const CALL_TO_CONTACT: u32 = 194;

/// The body of `POST /crm/v3/objects/calls` for `part`: every property a string, the owner
/// and `{id_property}` only when known or set, the association only with a contact.
pub fn create_body(
    part: &Part,
    settings: &Settings,
    owner: Option<&str>,
    contact: Option<&str>,
) -> Value {
    let answered = part.answered();
    let (status, disposition) = if answered {
        ("COMPLETED", &settings.disposition_connected)
    } else {
        ("NO_ANSWER", &settings.disposition_no_answer)
    };
    let duration_ms = u64::from(part.duration_seconds()) * 1000;
    let mut properties = Map::new();
    let mut put = |name: &str, value: &str| {
        properties.insert(name.to_string(), Value::String(value.to_string()));
    };
    put("hs_timestamp", &format::iso8601_millis(part.start_ms()));
    put("hs_call_title", &part.ended.title);
    put("hs_call_body", &part.notes(Markup::Html));
    put(
        "hs_call_direction",
        if part.incoming() {
            "INBOUND"
        } else {
            "OUTBOUND"
        },
    );
    put("hs_call_status", status);
    put("hs_call_duration", &duration_ms.to_string());
    if let Some(disposition) = disposition {
        put("hs_call_disposition", disposition);
    }
    if let Some(owner) = owner {
        put("hubspot_owner_id", owner);
    }
    put("hs_call_from_number", part.from());
    put("hs_call_to_number", part.to());
    if let Some(id_property) = &settings.id_property {
        put(id_property, &part.key);
    }
    let mut body = json!({ "properties": properties });
    if let Some(contact) = contact {
        body["associations"] = json!([{
            "to": { "id": contact },
            "types": [{
                "associationCategory": "HUBSPOT_DEFINED",
                "associationTypeId": CALL_TO_CONTACT,
            }],
        }]);
    }
    body
}

/// The body of `POST /crm/v3/objects/contacts/search`: one filter group of one `EQ` filter for
/// `phone` and one for `mobilephone` per number form, so that one search asks for all; the
/// first result wins.
pub fn contact_search(numbers: &[&str]) -> Value {
    let groups: Vec<Value> = numbers
        .iter()
        .flat_map(|number| {
            ["phone", "mobilephone"].map(|property| {
                json!({"filters": [{"propertyName": property, "operator": "EQ", "value": number}]})
            })
        })
        .collect();
    json!({ "filterGroups": groups, "limit": 1 })
}

/// The body of `POST /crm/v3/objects/contacts` for a contact with only a phone number.
pub fn contact_create(number: &str) -> Value {
    json!({ "properties": { "phone": number } })
}

/// The body of `POST /crm/v3/objects/calls/search` for the call whose `{id_property}` is `key`.
pub fn call_search(id_property: &str, key: &str) -> Value {
    json!({
        "filterGroups": [{"filters": [{"propertyName": id_property, "operator": "EQ", "value": key}]}],
        "limit": 1,
    })
}

/// The body of the `PATCH` that attaches a recording: `hs_call_body` with the part's links
/// added (`None` when every link is in it already, so nothing is sent), and
/// `hs_call_recording_url` when the first link is `https://`, the only kind HubSpot takes.
pub fn recording_patch(current_body: &str, links: &[String]) -> Option<Value> {
    let body = format::with_recording_links(current_body, links, Markup::Html)?;
    let mut properties = Map::new();
    if let Some(first) = links.first().filter(|link| link.starts_with("https://")) {
        properties.insert("hs_call_recording_url".into(), first.clone().into());
    }
    properties.insert("hs_call_body".into(), body.into());
    Some(json!({ "properties": properties }))
}

#[cfg(test)]
mod tests;
