//! The XAPI subset the host reads (`3cx-api.md`, section 5): recordings, their audio, and the
//! inbound rules, over the same [`RestClient`] (token, `401` handling, capture) as Call Control.

use bytes::Bytes;
use jiff::Timestamp;
use reqwest::StatusCode;
use reqwest::header;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::rest::{CaptureBody, RestClient, RestError, expect_success, malformed};

/// One XAPI recording (the fields the host uses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Recording {
    /// The recording's id; ids only grow.
    pub id: u64,
    /// The file's path relative to the recordings folder, e.g. `150/[Mueller, Anna]_150-..wav`.
    #[serde(default)]
    pub recording_url: String,
    /// When recording started.
    pub start_time: Timestamp,
    /// When recording ended.
    pub end_time: Timestamp,
    /// The calling DN.
    #[serde(default, deserialize_with = "string_or_number")]
    pub from_dn: String,
    /// The called DN.
    #[serde(default, deserialize_with = "string_or_number")]
    pub to_dn: String,
    /// The calling number.
    #[serde(default, deserialize_with = "string_or_number")]
    pub from_caller_number: String,
    /// The called number.
    #[serde(default, deserialize_with = "string_or_number")]
    pub to_caller_number: String,
    /// The calling DN's type as XAPI gives it: a name (`Extension`) or its number (`0`).
    #[serde(default, deserialize_with = "string_or_number")]
    pub from_dn_type: String,
    /// The called DN's type as XAPI gives it: a name or its number.
    #[serde(default, deserialize_with = "string_or_number")]
    pub to_dn_type: String,
    /// `Local`, `InboundExternal` or `OutboundExternal`.
    #[serde(default)]
    pub call_type: CallType,
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

/// A string field that some PBX versions send as a number (DN types, numeric DNs); `null` is
/// `""`.
fn string_or_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        Value::Null => Ok(String::new()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string or number, got {other}"
        ))),
    }
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

/// An XAPI inbound rule: maps a DID to a rule name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InboundRule {
    /// The rule's id.
    #[serde(default)]
    pub id: u64,
    /// Its name, e.g. `CompanyDID`.
    #[serde(default)]
    pub rule_name: String,
    /// The DID number it matches, e.g. `4930123456`.
    #[serde(default)]
    pub data: String,
}

/// The OData envelope `{"value":[...]}`.
#[derive(Deserialize)]
struct ODataList<T> {
    value: Vec<T>,
}

/// The biggest `$top` XAPI accepts.
pub const MAX_TOP: u32 = 100;

impl RestClient {
    /// 1..=100, the most XAPI allows).
    pub async fn recordings_after(
        &self,
        after_id: u64,
        top: u32,
    ) -> Result<Vec<Recording>, RestError> {
        let top = top.clamp(1, MAX_TOP);
        // Spaces as %20: OData servers differ in whether they take `+` for a space.
        let path = format!(
            "/xapi/v1/Recordings?$filter=Id%20gt%20{after_id}&$orderby=Id%20asc&$top={top}"
        );
        self.odata_list(&path).await
    }

    /// `Recordings?$orderby=Id desc&$top=K`: the newest recordings, newest first (`top` is
    /// clamped to 1–100).
    pub async fn newest_recordings(&self, top: u32) -> Result<Vec<Recording>, RestError> {
        let top = top.clamp(1, MAX_TOP);
        let path = format!("/xapi/v1/Recordings?$orderby=Id%20desc&$top={top}");
        self.odata_list(&path).await
    }

    /// `Pbx.DownloadRecording(recId=N)`: the recording's WAV file.
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

    /// `GET /xapi/v1/InboundRules`: every inbound rule (DID to rule name).
    pub async fn inbound_rules(&self) -> Result<Vec<InboundRule>, RestError> {
        self.odata_list("/xapi/v1/InboundRules").await
    }

    async fn odata_list<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
    ) -> Result<Vec<T>, RestError> {
        let reply = expect_success(path, self.get(path, CaptureBody::Json).await?)?;
        serde_json::from_slice::<ODataList<T>>(&reply.body)
            .map(|list| list.value)
            .map_err(|e| malformed(path, e.to_string()))
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
mod tests {
    use super::*;

    #[test]
    fn parses_recordings_and_rules() {
        let body = br#"{"@odata.count":1,"value":[{"Id":7,
            "RecordingUrl":"150/[Mueller, Anna]_150-0123456789_20261124101530(1264).wav",
            "StartTime":"2026-11-24T10:15:30+01:00","EndTime":"2026-11-24T10:16:30.5+01:00",
            "FromDn":"150","ToDn":10007,"FromCallerNumber":"150","ToCallerNumber":"0123456789",
            "FromDnType":"Extension","ToDnType":1,"CallType":"OutboundExternal","Extra":null}]}"#;
        let list: ODataList<Recording> = serde_json::from_slice(body).unwrap();
        let r = &list.value[0];
        assert_eq!(r.id, 7);
        assert_eq!(r.call_type, CallType::OutboundExternal);
        assert_eq!(
            (r.to_dn.as_str(), r.to_dn_type.as_str()),
            ("10007", "1"),
            "numbers become strings"
        );
        assert_eq!(r.start_time, "2026-11-24T09:15:30Z".parse().unwrap());
        let rules: ODataList<InboundRule> = serde_json::from_slice(
            br#"{"value":[{"Id":1,"RuleName":"CompanyDID","Data":"4930123456","X":2}]}"#,
        )
        .unwrap();
        assert_eq!(rules.value[0].data, "4930123456");
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
