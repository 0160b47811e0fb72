//! The JSON body of a call log and the readings of Pipedrive's answers, without I/O (spec
//! `crm-plugins.md` section 5.2).

use callhook_plugin_sdk::crm::format::{self, Markup};
use callhook_plugin_sdk::crm::part::Part;
use serde_json::{Value, json};

/// The body of `POST /v1/callLogs` for `part`: times in UTC as `YYYY-MM-DD HH:MM:SS`, the
/// duration in seconds as a string, `user_id` and `person_id` integers only when known.
pub fn create_body(part: &Part, user: Option<u64>, person: Option<u64>) -> Value {
    let mut body = json!({
        "subject": part.ended.title,
        "outcome": if part.answered() { "connected" } else { "no_answer" },
        "from_phone_number": part.from(),
        "to_phone_number": part.to(),
        "start_time": format::date_time(part.start_ms()),
        "end_time": format::date_time(part.end_ms()),
        "duration": part.duration_seconds().to_string(),
        "note": part.notes(Markup::Html),
    });
    if let Some(user) = user {
        body["user_id"] = user.into();
    }
    if let Some(person) = person {
        body["person_id"] = person.into();
    }
    body
}

/// The person of a `/api/v2/persons/search` answer: the first item one of whose phones has
/// the digits of `number` (Pipedrive matches substrings, so `120` could find `+49 30 120 55`).
pub fn matching_person(answer: &Value, number: &str) -> Option<u64> {
    let wanted = digits(number);
    let items = answer["data"]["items"].as_array()?;
    items.iter().map(|entry| &entry["item"]).find_map(|item| {
        let phones = item["phones"].as_array()?;
        let matches = phones
            .iter()
            .filter_map(Value::as_str)
            .any(|phone| digits(phone) == wanted);
        if matches { item["id"].as_u64() } else { None }
    })
}

/// The user of a `/v1/users/find` answer whose e-mail is `email` (case-insensitive).
pub fn matching_user(answer: &Value, email: &str) -> Option<u64> {
    answer["data"].as_array()?.iter().find_map(|user| {
        let found = user["email"].as_str()?;
        if found.eq_ignore_ascii_case(email) {
            user["id"].as_u64()
        } else {
            None
        }
    })
}

/// The digits of a phone number: `+49 (30) 123-4567` is `49301234567`.
fn digits(number: &str) -> String {
    number.chars().filter(char::is_ascii_digit).collect()
}

/// A recording file's name: the last path segment of its link, without the query
/// (`{part id}-{n}.mp3`).
pub fn file_name(link: &str) -> &str {
    let path = link.split(['?', '#']).next().unwrap_or(link);
    path.rsplit('/').next().unwrap_or(path)
}

#[cfg(test)]
mod tests;
