//! The XAPI subset the host reads (`3cx-api.md`, section 5): recordings, their audio, and the
//! inbound rules, over the same [`RestClient`] (token, `401` handling, capture) as Call Control.
//!
//! # Rows, one by one
//!
//! Every field of an XAPI object except `Id` may be `null` or missing, and a live PBX sends
//! less than 3CX's reference promises. So a page (`{"value":[...]}`) is read as a list of JSON
//! values and each row is decoded alone ([`parse_page`]): every field but `Id` reads leniently
//! (`null`, a missing key or a value of the wrong shape is empty, an unknown enum string is
//! `Unknown`, extra keys are ignored), and only a row that is not an object or has no usable
//! `Id` is skipped and listed in [`Page::skipped`] for the caller to log and count. A row is
//! never the reason a page fails; only a body that is not an OData envelope does.
//!
//! What a row's values mean is left to the reader: a [`Recording`] whose times are unknown is
//! still returned, so that the recordings poller can move its cursor past its `Id` (one bad row
//! must never stall polling) while never matching it to a call.
//!
//! A `403` on any `/xapi` path is [`RestError::XapiForbidden`]: the API client lacks XAPI
//! access or a department role; Call Control is not affected.

use bytes::Bytes;
use jiff::Timestamp;
use reqwest::StatusCode;
use reqwest::header;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::rest::{
    CaptureBody, Reply, RestClient, RestError, StreamedReply, expect_success, malformed,
};
use crate::callcontrol::lenient;

/// One XAPI recording (the fields the host uses). Only `Id` is required; every other field
/// reads `null`, a missing key or an unusable value as empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Recording {
    /// The recording's id; ids only grow.
    #[serde(deserialize_with = "lenient::required_id")]
    pub id: u64,
    /// The file's path relative to the recordings folder, e.g. `150/[Mueller, Anna]_150-..wav`;
    /// `""` when unknown (the audio is downloaded by `Id` anyway).
    #[serde(default, deserialize_with = "lenient::string")]
    pub recording_url: String,
    /// When recording started; `None` when unknown ([`time`]).
    #[serde(default, deserialize_with = "time")]
    pub start_time: Option<Timestamp>,
    /// When recording ended; `None` when unknown ([`time`]).
    #[serde(default, deserialize_with = "time")]
    pub end_time: Option<Timestamp>,
    /// The calling DN.
    #[serde(default, deserialize_with = "lenient::string")]
    pub from_dn: String,
    /// The called DN.
    #[serde(default, deserialize_with = "lenient::string")]
    pub to_dn: String,
    /// The calling number; for an extension possibly `Ext.101`.
    #[serde(default, deserialize_with = "lenient::string")]
    pub from_caller_number: String,
    /// The called number; for an extension possibly `Ext.101`.
    #[serde(default, deserialize_with = "lenient::string")]
    pub to_caller_number: String,
    /// The calling DN's type as XAPI gives it: its number (`0` extension, `1` trunk) or a name.
    #[serde(default, deserialize_with = "lenient::string")]
    pub from_dn_type: String,
    /// The called DN's type as XAPI gives it: its number or a name.
    #[serde(default, deserialize_with = "lenient::string")]
    pub to_dn_type: String,
    /// `Local`, `InboundExternal` or `OutboundExternal`; `Unknown` when absent, `null` or new.
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub call_type: CallType,
}

impl Recording {
    /// The recording's `[start, end]` when both times are known, else `None`: such a recording
    /// is never matched to a call.
    pub fn times(&self) -> Option<(Timestamp, Timestamp)> {
        Some((self.start_time?, self.end_time?))
    }
}

/// The direction of a recorded call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum CallType {
    /// Between two DNs of the PBX.
    Local,
    /// From outside.
    InboundExternal,
    /// To outside.
    OutboundExternal,
    /// Absent or a value this version does not know.
    #[default]
    #[serde(other)]
    Unknown,
}

/// A time stamp of XAPI: ISO 8601 with an offset or `Z` and any number of fraction digits
/// (up to nanoseconds). Unknown (`None`): `null`, a missing key, .NET's empty date
/// (`0001-01-01T00:00:00Z`; any time before 1970 is taken as such), a time without an offset
/// (its zone would be a guess) and anything else that does not parse.
fn time<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Timestamp>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::String(text) => text
            .trim()
            .parse::<Timestamp>()
            .ok()
            .filter(|at| *at >= Timestamp::UNIX_EPOCH),
        _ => None,
    })
}

/// A recording's audio as downloaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingFile {
    /// The file name from `Content-Disposition`, if given.
    pub file_name: Option<String>,
    /// `Content-Type`, normally `audio/x-wav`.
    pub content_type: Option<String>,
    /// The bytes (a WAV file).
    pub bytes: Bytes,
}

/// A recording's audio being downloaded ([`RestClient::open_recording`]).
pub struct RecordingStream {
    /// The file name from `Content-Disposition`, if given.
    pub file_name: Option<String>,
    /// `Content-Type`, normally `audio/x-wav`.
    pub content_type: Option<String>,
    /// `Content-Length`, if given.
    pub content_length: Option<u64>,
    reply: StreamedReply,
}

impl RecordingStream {
    /// The next chunk of the WAV file; `None` at its end. A broken connection is
    /// [`RestError::Transport`].
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, RestError> {
        self.reply.chunk().await
    }
}

impl std::fmt::Debug for RecordingStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingStream")
            .field("file_name", &self.file_name)
            .field("content_type", &self.content_type)
            .field("content_length", &self.content_length)
            .finish_non_exhaustive()
    }
}

/// An XAPI inbound rule. Only the DID rules matter to the host ([`InboundRule::did_mapping`]);
/// every field may be `null` or missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InboundRule {
    /// The rule's id; `0` when absent.
    #[serde(default, deserialize_with = "lenient::number")]
    pub id: u64,
    /// Its name, e.g. `CompanyDID`; `""` when absent.
    #[serde(default, deserialize_with = "lenient::string")]
    pub rule_name: String,
    /// What it matches; for a DID rule the DID number, e.g. `4930123456`; `""` when absent.
    #[serde(default, deserialize_with = "lenient::string")]
    pub data: String,
    /// What the rule tests; `None` when absent or `null`, which 3CX treats as a DID rule.
    #[serde(default, deserialize_with = "condition")]
    pub condition: Option<Condition>,
}

/// One row of `GET /xapi/v1/Users` as selected for the user list (contract 0.2's
/// `user-info`); every field may be `null` or missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct XapiUser {
    /// The extension, e.g. `120`; `""` when absent.
    #[serde(default, deserialize_with = "lenient::string")]
    pub number: String,
    /// `""` when absent.
    #[serde(default, deserialize_with = "lenient::string")]
    pub first_name: String,
    /// `""` when absent.
    #[serde(default, deserialize_with = "lenient::string")]
    pub last_name: String,
    /// `""` when absent.
    #[serde(default, deserialize_with = "lenient::string")]
    pub email_address: String,
}

impl InboundRule {
    /// The DID number and rule name this rule maps, if it is a DID rule (`Condition`
    /// `BasedOnDID`, absent or `null`) with a non-empty `Data` and `RuleName` (both trimmed).
    ///
    /// ```
    /// use callhook::pbx::xapi::{Condition, InboundRule};
    ///
    /// let rule = InboundRule {
    ///     id: 1,
    ///     rule_name: "CompanyDID".to_owned(),
    ///     data: "4930123456".to_owned(),
    ///     condition: Some(Condition::BasedOnDid),
    /// };
    /// assert_eq!(rule.did_mapping(), Some(("4930123456", "CompanyDID")));
    /// ```
    pub fn did_mapping(&self) -> Option<(&str, &str)> {
        if !matches!(self.condition, None | Some(Condition::BasedOnDid)) {
            return None;
        }
        let (did, name) = (self.data.trim(), self.rule_name.trim());
        (!did.is_empty() && !name.is_empty()).then_some((did, name))
    }
}

/// What an inbound rule tests (`Condition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Condition {
    /// The DID the caller dialled: the rule maps `Data` (a DID) to `RuleName`.
    #[serde(rename = "BasedOnDID")]
    BasedOnDid,
    /// The caller's number.
    #[serde(rename = "BasedOnCallerID")]
    BasedOnCallerId,
    /// An unanswered call.
    NoAnswer,
    /// A busy phone.
    PhoneBusy,
    /// A phone that is not registered.
    PhoneNotRegistered,
    /// Forward everything.
    ForwardAll,
    /// A value this version does not know, or not a string.
    #[serde(other)]
    Unknown,
}

/// `Condition`: `null` or missing is `None`; any other value that is not a known name is
/// [`Condition::Unknown`], so that a rule of a new kind is never taken for a DID rule.
fn condition<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Condition>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Null => None,
        value => Some(Condition::deserialize(value).unwrap_or(Condition::Unknown)),
    })
}

/// A page of an OData collection, read row by row ([`parse_page`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The usable rows, in the order of the page.
    pub rows: Vec<T>,
    /// Why each unusable row was skipped, e.g. `row 3 (Id null): unusable id null`.
    pub skipped: Vec<String>,
}

/// Parses an OData collection body `{"value":[...]}` row by row: a row that cannot be decoded
/// into `T` (or is not a JSON object) is skipped and listed in [`Page::skipped`]; only a body
/// that is not such an envelope (not JSON, no `value` array) is an error.
pub fn parse_page<T: DeserializeOwned>(body: &[u8]) -> Result<Page<T>, String> {
    #[derive(Deserialize)]
    struct Envelope {
        value: Vec<Value>,
    }
    let envelope: Envelope = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut page = Page {
        rows: Vec::with_capacity(envelope.value.len()),
        skipped: Vec::new(),
    };
    for (i, row) in envelope.value.into_iter().enumerate() {
        // Objects only: serde would also read a struct from an array.
        if !row.is_object() {
            page.skipped
                .push(format!("row {i}: not an object but {row}"));
            continue;
        }
        let id = row
            .get("Id")
            .map_or_else(|| "missing".to_owned(), Value::to_string);
        match T::deserialize(row) {
            Ok(row) => page.rows.push(row),
            Err(error) => page.skipped.push(format!("row {i} (Id {id}): {error}")),
        }
    }
    Ok(page)
}

/// The biggest `$top` XAPI accepts.
pub const MAX_TOP: u32 = 100;

impl RestClient {
    /// XAPI recordings with an `Id` above `after_id`, in `Id` order, at most `top` (clamped to
    /// 1–100, the most XAPI allows), read row by row ([`parse_page`]).
    pub async fn recordings_after(
        &self,
        after_id: u64,
        top: u32,
    ) -> Result<Page<Recording>, RestError> {
        let top = top.clamp(1, MAX_TOP);
        // Spaces as %20: OData servers differ in whether they take `+` for a space.
        let path = format!(
            "/xapi/v1/Recordings?$filter=Id%20gt%20{after_id}&$orderby=Id%20asc&$top={top}"
        );
        self.odata_page(&path).await
    }

    /// `Recordings?$orderby=Id desc&$top=K`: the newest recordings, newest first (`top` is
    /// clamped to 1–100), read row by row ([`parse_page`]).
    pub async fn newest_recordings(&self, top: u32) -> Result<Page<Recording>, RestError> {
        let top = top.clamp(1, MAX_TOP);
        let path = format!("/xapi/v1/Recordings?$orderby=Id%20desc&$top={top}");
        self.odata_page(&path).await
    }

    /// `Pbx.DownloadRecording(recId=N)`, read as it arrives: the recordings pipeline streams it
    /// to disk ([`RecordingStream::chunk`]) instead of holding the WAV in memory. Errors as
    /// [`RestClient::download_recording`].
    pub async fn open_recording(&self, id: u64) -> Result<RecordingStream, RestError> {
        let path = format!("/xapi/v1/Recordings/Pbx.DownloadRecording(recId={id})");
        let mut reply = self.get_streamed(&path).await?;
        let status = reply.response.status();
        if status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND {
            return Err(RestError::RecordingNotFound { id });
        }
        if !status.is_success() {
            // Only the start of an error's body is kept for the message.
            let headers = reply.response.headers().clone();
            let body = reply.chunk().await.ok().flatten().unwrap_or_default();
            let reply = Reply {
                at: Timestamp::now(),
                status,
                headers,
                body,
            };
            return Err(expect_success(&path, reply)
                .err()
                .unwrap_or_else(|| malformed(&path, format!("unexpected HTTP {status}"))));
        }
        let header = |name: header::HeaderName| {
            reply
                .response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Ok(RecordingStream {
            file_name: header(header::CONTENT_DISPOSITION).and_then(|d| disposition_file_name(&d)),
            content_type: header(header::CONTENT_TYPE),
            content_length: reply.response.content_length(),
            reply,
        })
    }

    /// `Pbx.DownloadRecording(recId=N)`: the recording's WAV file, whole in memory.
    pub async fn download_recording(&self, id: u64) -> Result<RecordingFile, RestError> {
        let path = format!("/xapi/v1/Recordings/Pbx.DownloadRecording(recId={id})");
        let reply = self.get(&path, CaptureBody::SizeOnly).await?;
        if reply.status == StatusCode::BAD_REQUEST || reply.status == StatusCode::NOT_FOUND {
            return Err(RestError::RecordingNotFound { id });
        }
        let reply = expect_success(&path, reply)?;
        let header = |name: header::HeaderName| {
            reply
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Ok(RecordingFile {
            file_name: header(header::CONTENT_DISPOSITION).and_then(|d| disposition_file_name(&d)),
            content_type: header(header::CONTENT_TYPE),
            bytes: reply.body,
        })
    }

    /// `GET /xapi/v1/InboundRules`: every inbound rule; [`InboundRule::did_mapping`] tells
    /// which map a DID to a rule name. A row that is not an object is logged and left out.
    pub async fn inbound_rules(&self) -> Result<Vec<InboundRule>, RestError> {
        let path = "/xapi/v1/InboundRules";
        let page = self.odata_page::<InboundRule>(path).await?;
        for reason in &page.skipped {
            tracing::warn!(path, reason, "skipped an unusable inbound rule");
        }
        Ok(page.rows)
    }

    /// `GET /xapi/v1/Users?$select=Number,FirstName,LastName,EmailAddress&$top=100&$skip=N`
    /// page by page until a shorter page: every user. A row that is not an object is logged
    /// and left out.
    pub async fn users(&self) -> Result<Vec<XapiUser>, RestError> {
        const PAGE: usize = 100;
        let mut users = Vec::new();
        for skip in (0..).step_by(PAGE) {
            let path = format!(
                "/xapi/v1/Users?$select=Number,FirstName,LastName,EmailAddress&$top={PAGE}&$skip={skip}"
            );
            let page = self.odata_page::<XapiUser>(&path).await?;
            for reason in &page.skipped {
                tracing::warn!(path, reason, "skipped an unusable user");
            }
            let rows = page.rows.len() + page.skipped.len();
            users.extend(page.rows);
            if rows < PAGE {
                break;
            }
        }
        Ok(users)
    }

    async fn odata_page<T: DeserializeOwned>(&self, path: &str) -> Result<Page<T>, RestError> {
        let reply = expect_success(path, self.get(path, CaptureBody::Json).await?)?;
        parse_page(&reply.body).map_err(|detail| malformed(path, detail))
    }
}

/// `filename="..."` (or `filename=...`) of a `Content-Disposition` header.
fn disposition_file_name(disposition: &str) -> Option<String> {
    disposition.split(';').find_map(|part| {
        let value = part.trim().strip_prefix("filename=")?;
        let value = value.trim().trim_matches('"');
        (!value.is_empty()).then(|| value.to_owned())
    })
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn parses_a_full_recording() {
        let body = br#"{"@odata.count":1,"value":[{"Id":7,
            "RecordingUrl":"150/[Mueller, Anna]_150-0123456789_20261124101530(1264).wav",
            "StartTime":"2026-11-24T10:15:30+01:00","EndTime":"2026-11-24T10:16:30.5+01:00",
            "FromDn":"150","ToDn":10007,"FromCallerNumber":"150","ToCallerNumber":"0123456789",
            "FromDnType":"Extension","ToDnType":1,"CallType":"OutboundExternal","Extra":null}]}"#;
        let page = parse_page::<Recording>(body).unwrap();
        assert_eq!(page.skipped, Vec::<String>::new());
        assert_eq!(
            page.rows,
            [Recording {
                id: 7,
                recording_url: "150/[Mueller, Anna]_150-0123456789_20261124101530(1264).wav"
                    .to_owned(),
                start_time: Some(at("2026-11-24T09:15:30Z")),
                end_time: Some(at("2026-11-24T09:16:30.5Z")),
                from_dn: "150".to_owned(),
                to_dn: "10007".to_owned(),
                from_caller_number: "150".to_owned(),
                to_caller_number: "0123456789".to_owned(),
                from_dn_type: "Extension".to_owned(),
                to_dn_type: "1".to_owned(),
                call_type: CallType::OutboundExternal,
            }]
        );
    }

    #[test]
    fn reads_a_recording_of_nulls_as_empty() {
        let body = br#"{"value":[{"Id":8,"RecordingUrl":null,"StartTime":null,"EndTime":null,
            "FromDn":null,"ToDn":null,"FromCallerNumber":null,"ToCallerNumber":null,
            "FromDnType":null,"ToDnType":null,"CallType":null},
            {"Id":"9","CallType":"SomethingNew"}]}"#;
        let page = parse_page::<Recording>(body).unwrap();
        let empty = |id| Recording {
            id,
            recording_url: String::new(),
            start_time: None,
            end_time: None,
            from_dn: String::new(),
            to_dn: String::new(),
            from_caller_number: String::new(),
            to_caller_number: String::new(),
            from_dn_type: String::new(),
            to_dn_type: String::new(),
            call_type: CallType::Unknown,
        };
        assert_eq!(page.rows, [empty(8), empty(9)]);
        assert_eq!(page.rows[0].times(), None);
    }

    #[test]
    fn reads_xapi_times() {
        #[rustfmt::skip]
        let cases = [
            (r#""2026-08-04T22:49:33.865288Z""#, Some("2026-08-04T22:49:33.865288Z")),
            (r#""2026-08-04T22:49:33Z""#, Some("2026-08-04T22:49:33Z")),
            (r#""2026-08-05T00:49:33.8652881+02:00""#, Some("2026-08-04T22:49:33.8652881Z")),
            (r#""2026-08-04T22:49:33.1-00:30""#, Some("2026-08-04T23:19:33.1Z")),
            (r#""0001-01-01T00:00:00Z""#, None),
            (r#""0001-01-01T00:00:00+00:00""#, None),
            (r#""2026-08-04T22:49:33""#, None),
            (r#""yesterday""#, None),
            ("1785883773", None),
            ("null", None),
        ];
        for (json, expected) in cases {
            let body = format!(r#"{{"value":[{{"Id":1,"StartTime":{json}}}]}}"#);
            let page = parse_page::<Recording>(body.as_bytes()).unwrap();
            assert_eq!(page.rows[0].start_time, expected.map(at), "{json}");
        }
    }

    #[test]
    fn skips_only_rows_without_a_usable_id() {
        let body = br#"{"value":[{"Id":1},{"Id":null},{"StartTime":"x"},7,{"Id":"z"},{"Id":2}]}"#;
        let page = parse_page::<Recording>(body).unwrap();
        assert_eq!(page.rows.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(
            page.skipped,
            [
                "row 1 (Id null): unusable id null",
                "row 2 (Id missing): missing field `Id`",
                "row 3: not an object but 7",
                r#"row 4 (Id "z"): unusable id "z""#,
            ]
        );
    }

    #[test]
    fn rejects_bodies_that_are_not_a_collection() {
        for body in [&b"[]"[..], b"{}", br#"{"value":null}"#, b"not json"] {
            assert!(
                parse_page::<Recording>(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn maps_only_did_rules_with_a_number_and_a_name() {
        #[rustfmt::skip]
        let cases = [
            (r#"{"Id":1,"RuleName":"CompanyDID","Data":"4930123456","Condition":"BasedOnDID"}"#, Some(("4930123456", "CompanyDID"))),
            (r#"{"RuleName":"CompanyDID","Data":"4930123456"}"#, Some(("4930123456", "CompanyDID"))),
            (r#"{"RuleName":"Sales","Data":4930123457,"Condition":null,"Hours":{}}"#, Some(("4930123457", "Sales"))),
            (r#"{"RuleName":" Sales ","Data":" 4930123457 "}"#, Some(("4930123457", "Sales"))),
            (r#"{"RuleName":"VIP","Data":"0171555","Condition":"BasedOnCallerID"}"#, None),
            (r#"{"RuleName":"Busy","Data":"4930123456","Condition":"PhoneBusy"}"#, None),
            (r#"{"RuleName":"New","Data":"4930123456","Condition":"BasedOnSomethingNew"}"#, None),
            (r#"{"RuleName":"Odd","Data":"4930123456","Condition":3}"#, None),
            (r#"{"RuleName":null,"Data":"4930123456","Condition":"BasedOnDID"}"#, None),
            (r#"{"RuleName":"CompanyDID","Data":null}"#, None),
            (r#"{"RuleName":"CompanyDID","Data":""}"#, None),
            (r#"{"RuleName":"","Data":"4930123456"}"#, None),
            (r#"{"Id":null,"RuleName":null,"Data":null,"Condition":null}"#, None),
        ];
        for (json, expected) in cases {
            let body = format!(r#"{{"value":[{json}]}}"#);
            let page = parse_page::<InboundRule>(body.as_bytes()).unwrap();
            assert_eq!(page.skipped, Vec::<String>::new(), "{json}");
            assert_eq!(page.rows[0].did_mapping(), expected, "{json}");
        }
    }

    #[test]
    fn reads_rule_conditions() {
        #[rustfmt::skip]
        let cases = [
            (r#""BasedOnDID""#, Some(Condition::BasedOnDid)),
            (r#""BasedOnCallerID""#, Some(Condition::BasedOnCallerId)),
            (r#""NoAnswer""#, Some(Condition::NoAnswer)),
            (r#""PhoneNotRegistered""#, Some(Condition::PhoneNotRegistered)),
            (r#""ForwardAll""#, Some(Condition::ForwardAll)),
            (r#""basedondid""#, Some(Condition::Unknown)),
            ("[]", Some(Condition::Unknown)),
            ("null", None),
        ];
        for (json, expected) in cases {
            let body = format!(r#"{{"value":[{{"Condition":{json}}}]}}"#);
            let page = parse_page::<InboundRule>(body.as_bytes()).unwrap();
            assert_eq!(page.rows[0].condition, expected, "{json}");
        }
    }

    #[test]
    fn reads_the_file_name_of_a_disposition() {
        for (header, expected) in [
            (r#"attachment; filename="a b.wav""#, Some("a b.wav")),
            ("attachment; filename=x.wav", Some("x.wav")),
            ("attachment", None),
        ] {
            assert_eq!(
                disposition_file_name(header).as_deref(),
                expected,
                "{header}"
            );
        }
    }
}
