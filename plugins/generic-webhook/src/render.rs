//! The default plugin's wire format, as pure functions (no I/O), so it can be tested and
//! measured natively.

use callhook_plugin_sdk::query::QueryString;
use callhook_plugin_sdk::{Ended, Event};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// How `duration` is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DurationFormat {
    /// Whole seconds, e.g. `133`. The default.
    #[default]
    Seconds,
    /// `HH:MM:SS`, e.g. `00:02:13`.
    Clock,
}

/// The rendering settings.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Send call events as a JSON `POST` instead of a `GET` query string.
    pub post_json: bool,
    /// Add the last end event's fields to the recording body.
    pub recording_full_info: bool,
    /// How `duration` is written.
    pub duration_format: DurationFormat,
    /// Event name → name sent instead.
    pub aliases: BTreeMap<String, String>,
}

/// One request, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rendered {
    /// `GET url`; `query` is the raw query string already in `url` (what gets signed).
    Get {
        /// The full URL.
        url: String,
        /// The query string alone.
        query: String,
    },
    /// `POST url` with a JSON body.
    Post {
        /// The URL.
        url: String,
        /// The JSON body.
        body: String,
    },
}

/// Renders `event` for the receiver at `url`.
pub fn render(event: &Event, options: &Options, url: &str) -> Rendered {
    if let Event::Recording(recording) = event {
        let mut body = Map::new();
        body.insert(
            "FILES".into(),
            Value::Array(recording.files.iter().cloned().map(Value::String).collect()),
        );
        body.insert("id".into(), Value::String(recording.id.clone()));
        if options.recording_full_info
            && let Some(ended) = &recording.last_end
        {
            for (key, value) in ended_fields(ended, options) {
                if key != "id" {
                    body.insert(key.into(), Value::String(value));
                }
            }
        }
        return Rendered::Post {
            url: url.to_string(),
            body: Value::Object(body).to_string(),
        };
    }
    let fields = fields(event, options);
    if options.post_json {
        let body: Map<String, Value> = fields
            .into_iter()
            .map(|(key, value)| (key.to_string(), Value::String(value)))
            .collect();
        return Rendered::Post {
            url: url.to_string(),
            body: Value::Object(body).to_string(),
        };
    }
    let mut query = QueryString::new();
    for (key, value) in &fields {
        query.push(key, value);
    }
    Rendered::Get {
        url: query.append_to(url),
        query: query.as_str().to_string(),
    }
}

/// The fields of a call event in the order of `call-events.md`, section 3.
/// Recordings have no flat fields and give an empty list.
pub fn fields(event: &Event, options: &Options) -> Vec<(&'static str, String)> {
    let name = options
        .aliases
        .get(event.name())
        .cloned()
        .unwrap_or_else(|| event.name().to_string());
    match event {
        Event::Ringing(offered) | Event::Dialing(offered) => vec![
            ("event", name),
            ("callerid", offered.callerid.clone()),
            ("did", offered.did.clone()),
            ("user", offered.user.clone()),
            ("usertype", offered.usertype.as_str().to_string()),
            ("id", offered.id.clone()),
        ],
        Event::CallStarted(started) => vec![
            ("event", name),
            ("callerid", started.callerid.clone()),
            ("user", started.user.clone()),
            ("did", started.did.clone()),
            ("trtype", started.trtype.as_str().to_string()),
            ("id", started.id.clone()),
        ],
        Event::CallEnded(ended) => {
            let mut fields = ended_fields(ended, options);
            fields[0].1 = name;
            fields
        }
        Event::Recording(_) => Vec::new(),
    }
}

/// `event, callerid, user, did, finishtype, transfer, duration, title, id` of an end event.
fn ended_fields(ended: &Ended, options: &Options) -> Vec<(&'static str, String)> {
    let event = Event::CallEnded(ended.clone());
    let name = options
        .aliases
        .get(event.name())
        .cloned()
        .unwrap_or_else(|| event.name().to_string());
    vec![
        ("event", name),
        ("callerid", ended.callerid.clone()),
        ("user", ended.user.clone()),
        ("did", ended.did.clone()),
        ("finishtype", ended.finishtype.as_str().to_string()),
        ("transfer", ended.transfer.to_string()),
        (
            "duration",
            format_duration(ended.duration_seconds, options.duration_format),
        ),
        ("title", ended.title.clone()),
        ("id", ended.id.clone()),
    ]
}

/// Writes a duration in seconds as the setting asks.
pub fn format_duration(seconds: u32, format: DurationFormat) -> String {
    match format {
        DurationFormat::Seconds => seconds.to_string(),
        DurationFormat::Clock => format!(
            "{:02}:{:02}:{:02}",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callhook_plugin_sdk::{
        Direction, FinishType, Offered, Recording, RecordingPart, Started, TransferType, UserInfo,
        UserType,
    };

    /// What contract 0.2 adds, filled in everywhere: the wire format must not show any of it.
    fn anna() -> Option<UserInfo> {
        Some(UserInfo {
            name: "Anna Mueller".into(),
            email: Some("anna@example.com".into()),
        })
    }

    fn ended() -> Ended {
        Ended {
            id: "210701165649_782-1".into(),
            direction: Direction::Incoming,
            callerid: "+425630434343".into(),
            user: "120".into(),
            did: "CompanyDID".into(),
            finishtype: FinishType::Ok,
            transfer: false,
            duration_seconds: 133,
            title: "CompanyDID: answered incoming call from +425630434343 to 120, 00:02:13".into(),
            call_started_at: 1_625_158_609_000,
            offered_at: 1_625_158_609_000,
            answered_at: Some(1_625_158_614_000),
            ended_at: 1_625_158_747_000,
            callerid_e164: Some("+425630434343".into()),
            user_info: anna(),
            queue: Some("800".into()),
            internal: false,
        }
    }

    fn get(event: &Event, options: &Options) -> String {
        match render(event, options, "http://crm/hook") {
            Rendered::Get { url, .. } => url,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ringing_is_a_get_in_spec_order_with_empty_values_kept() {
        let event = Event::Ringing(Offered {
            id: "210701165649_782-0".into(),
            callerid: "425630434343".into(),
            did: String::new(),
            user: "120".into(),
            usertype: UserType::Queue,
            call_started_at: 1_625_158_609_000,
            offered_at: 1_625_158_609_000,
            callerid_e164: Some("+425630434343".into()),
            user_info: anna(),
            queue: Some("800".into()),
            internal: false,
        });
        assert_eq!(
            get(&event, &Options::default()),
            "http://crm/hook?event=ringing&callerid=425630434343&did=&user=120&usertype=queue&id=210701165649_782-0"
        );
    }

    #[test]
    fn started_carries_trtype_after_did() {
        let event = Event::CallStarted(Started {
            id: "210701165649_782-2".into(),
            direction: Direction::Outgoing,
            callerid: "425630434343".into(),
            user: "130".into(),
            did: String::new(),
            trtype: TransferType::Blind,
            call_started_at: 1_625_158_609_000,
            offered_at: 1_625_158_609_000,
            answered_at: 1_625_158_614_000,
            callerid_e164: None,
            user_info: None,
            queue: None,
            internal: true,
        });
        assert_eq!(
            get(&event, &Options::default()),
            "http://crm/hook?event=outgoingcall_started&callerid=425630434343&user=130&did=&trtype=Blind&id=210701165649_782-2"
        );
    }

    #[test]
    fn ended_percent_encodes_title_and_plus() {
        assert_eq!(
            get(&Event::CallEnded(ended()), &Options::default()),
            "http://crm/hook?event=incoming&callerid=%2B425630434343&user=120&did=CompanyDID&finishtype=Ok&transfer=false&duration=133&title=CompanyDID%3A%20answered%20incoming%20call%20from%20%2B425630434343%20to%20120%2C%2000%3A02%3A13&id=210701165649_782-1"
        );
    }

    #[test]
    fn clock_format_and_aliases_apply() {
        let options = Options {
            duration_format: DurationFormat::Clock,
            aliases: [("incoming".to_string(), "hangupincoming".to_string())].into(),
            ..Options::default()
        };
        let fields = fields(&Event::CallEnded(ended()), &options);
        assert_eq!(fields[0], ("event", "hangupincoming".to_string()));
        assert_eq!(fields[6], ("duration", "00:02:13".to_string()));
    }

    #[test]
    fn post_mode_sends_one_flat_object_of_strings_in_order() {
        let options = Options {
            post_json: true,
            ..Options::default()
        };
        let Rendered::Post { body, .. } = render(&Event::CallEnded(ended()), &options, "u") else {
            panic!("expected a POST");
        };
        assert_eq!(
            body,
            r#"{"event":"incoming","callerid":"+425630434343","user":"120","did":"CompanyDID","finishtype":"Ok","transfer":"false","duration":"133","title":"CompanyDID: answered incoming call from +425630434343 to 120, 00:02:13","id":"210701165649_782-1"}"#
        );
    }

    #[test]
    fn recording_body_has_files_and_id_and_optionally_the_end_fields() {
        let recording = Event::Recording(Recording {
            id: "210701165649_782-2".into(),
            files: vec![
                "https://pbx/webapi/recording/a-1.mp3".into(),
                "https://pbx/webapi/recording/a-2.mp3".into(),
            ],
            last_end: Some(ended()),
            parts: vec![RecordingPart {
                id: "210701165649_782-2".into(),
                user: "130".into(),
                files: vec!["https://pbx/webapi/recording/a-1.mp3".into()],
            }],
        });
        let body = |options: &Options| match render(&recording, options, "u") {
            Rendered::Post { body, .. } => body,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            body(&Options::default()),
            r#"{"FILES":["https://pbx/webapi/recording/a-1.mp3","https://pbx/webapi/recording/a-2.mp3"],"id":"210701165649_782-2"}"#
        );
        let full = body(&Options {
            recording_full_info: true,
            ..Options::default()
        });
        assert_eq!(
            full,
            r#"{"FILES":["https://pbx/webapi/recording/a-1.mp3","https://pbx/webapi/recording/a-2.mp3"],"id":"210701165649_782-2","event":"incoming","callerid":"+425630434343","user":"120","did":"CompanyDID","finishtype":"Ok","transfer":"false","duration":"133","title":"CompanyDID: answered incoming call from +425630434343 to 120, 00:02:13"}"#
        );
    }

    #[test]
    fn durations_format_as_clock() {
        for (seconds, expected) in [
            (0, "00:00:00"),
            (59, "00:00:59"),
            (133, "00:02:13"),
            (86399, "23:59:59"),
            (90000, "25:00:00"),
        ] {
            assert_eq!(format_duration(seconds, DurationFormat::Clock), expected);
        }
    }
}
