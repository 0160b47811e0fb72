//! The typed REST client and Call Control snapshots and participants (`3cx-api.md`, section 2);
//! the XAPI requests over the same client are in [`super::xapi`].
//!
//! Every request goes through one path ([`RestClient::get`]): Bearer token from the shared
//! [`TokenManager`], one re-mint and retry on `401`, transport errors sorted into unreachable /
//! TLS / timeout, and the reply recorded into the capture when one is being written (binary
//! bodies as their size only). Status codes then mean:
//!
//! | status | meaning |
//! |---|---|
//! | `401` twice | [`RestError::Unauthorized`]: the fresh token was refused too |
//! | `403` on a participant | that leg is not visible to the client: [`ParticipantReply::Hidden`] |
//! | `403` elsewhere | [`RestError::Forbidden`] (Call Control) or [`RestError::XapiForbidden`] (`/xapi`) |
//! | `404` on a participant | it is gone: `Ok(None)` |
//! | other non-2xx | [`RestError::Status`] |
//! | 2xx, body not the expected JSON | [`RestError::Malformed`] |
//!
//! The reply types keep only what the host uses and ignore unknown fields, so a newer PBX that
//! adds fields does not break the connector. The body parsers ([`parse_snapshot`],
//! [`parse_participant`]) are public so that replaying a capture reads bodies exactly as the
//! live connector did.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use jiff::Timestamp;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::capture::{CaptureWriter, Record};
use super::config::ConnectorConfig;
use super::http::TransportError;
use super::stats::ConnectorStats;
use super::token::{TokenError, TokenManager, shorten};
use crate::callcontrol::lenient;
use crate::callcontrol::{DnType, Participant};

/// A REST request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RestError {
    /// No token could be had.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The PBX could not be talked to.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// `401` even with a freshly minted token.
    #[error("the PBX answered HTTP 401 for {path} even with a freshly minted token")]
    Unauthorized {
        /// The request path.
        path: String,
    },
    /// `403` on Call Control: the API client may not use it.
    #[error(
        "the PBX answered HTTP 403 for {path}: the API client has no Call Control access (the \
         licence, or the client's Call Control option in 3CX Admin > Integrations > API)"
    )]
    Forbidden {
        /// The request path.
        path: String,
    },
    /// `403` on XAPI: the API client lacks XAPI access or the role it needs. Call Control goes
    /// on; recordings and inbound rule names are unavailable until it is fixed.
    #[error(
        "the PBX answered HTTP 403 for {path}: the API client has no XAPI access (in 3CX Admin > \
         Integrations > API tick XAPI access for the client and give it a department role such \
         as System Owner; \"System Wide + User\" is not enough)"
    )]
    XapiForbidden {
        /// The request path.
        path: String,
    },
    /// Any other unexpected status.
    #[error("the PBX answered HTTP {status} for {path}: {body}")]
    Status {
        /// The request path.
        path: String,
        /// The HTTP status.
        status: u16,
        /// The start of the reply body.
        body: String,
    },
    /// The reply is not the JSON the spec describes.
    #[error("the PBX's reply to {path} is not the expected JSON: {detail}")]
    Malformed {
        /// The request path.
        path: String,
        /// What was wrong.
        detail: String,
    },
    /// `Pbx.DownloadRecording` for an id the PBX does not know.
    #[error("the PBX has no recording file for recording {id}")]
    RecordingNotFound {
        /// The recording's XAPI `Id`.
        id: u64,
    },
}

impl RestError {
    /// Whether retrying cannot help until someone changes a setting (credentials, licence, TLS).
    pub fn is_permanent(&self) -> bool {
        match self {
            RestError::Token(e) => e.is_permanent(),
            RestError::Transport(TransportError::Tls { .. })
            | RestError::Forbidden { .. }
            | RestError::XapiForbidden { .. } => true,
            _ => false,
        }
    }
}

/// A DN object of `GET /callcontrol`, read field by field ([`parse_snapshot`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnObject {
    /// The DN's number or name. A DN object without one is skipped.
    #[serde(deserialize_with = "lenient::string")]
    pub dn: String,
    /// Its type (`Wextension`, `Wqueue`, ...); `None` when absent or `null`.
    #[serde(rename = "type", default, deserialize_with = "lenient::or_default")]
    pub dn_type: DnType,
    /// Its registered devices (`null` on route points and queues reads as none).
    #[serde(default, skip_deserializing)]
    pub devices: Vec<Device>,
    /// Its participants: the call legs it is part of now.
    #[serde(default, skip_deserializing)]
    pub participants: Vec<Participant>,
}

/// A device registered to a DN.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Device {
    /// The DN it belongs to.
    #[serde(deserialize_with = "lenient::string")]
    pub dn: String,
    /// The SIP contact, e.g. `sip:101@10.0.0.5:5060`.
    #[serde(deserialize_with = "lenient::string")]
    pub device_id: String,
    /// The phone's user agent, e.g. `Yealink T46U`.
    #[serde(deserialize_with = "lenient::string")]
    pub user_agent: String,
}

/// `GET /callcontrol` parsed, with the time the reply arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// When the reply arrived.
    pub at: Timestamp,
    /// Every usable DN the API client sees.
    pub dns: Vec<DnObject>,
    /// The objects that could not be used, one line each (see [`ParsedSnapshot::skipped`]).
    pub skipped: Vec<String>,
}

/// The body of `GET /callcontrol`, read object by object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedSnapshot {
    /// Every usable DN object, with its usable devices and participants.
    pub dns: Vec<DnObject>,
    /// Why each unusable object was skipped, e.g. `participant of DN 150: unusable id null`:
    /// a DN object without `dn` (with everything in it: without the DN's type its legs mean
    /// nothing), a participant without `id` or `callid`, a device that is not an object.
    pub skipped: Vec<String>,
}

/// A reply as received.
#[derive(Clone)]
pub(super) struct Reply {
    pub(super) at: Timestamp,
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
}

/// A reply whose body is still to be read ([`RestClient::get_streamed`]).
pub(super) struct StreamedReply {
    pub(super) url: String,
    pub(super) timeout: Duration,
    pub(super) response: reqwest::Response,
}

impl StreamedReply {
    /// The next chunk of the body; `None` at its end.
    pub(super) async fn chunk(&mut self) -> Result<Option<Bytes>, RestError> {
        self.response
            .chunk()
            .await
            .map_err(|e| TransportError::classify(&self.url, &e, self.timeout).into())
    }
}

/// Whether a reply body goes into the capture.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum CaptureBody {
    /// The JSON body (redacted).
    Json,
    /// Only its length (audio).
    SizeOnly,
    /// Nothing: the caller records the reply itself, when it acts on it (a `401`, which the
    /// caller never sees, is recorded anyway).
    Deferred,
}

/// What a participant GET answered ([`RestClient::participant`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParticipantReply {
    /// `200` with a usable participant: its full current state.
    Found(Box<Participant>),
    /// `404`: the participant is gone (normal after a remove, and in races).
    Gone,
    /// `403`: this leg is not visible to the API client; skip it (`3cx-api.md`, section 2).
    Hidden,
    /// `200` with a body that is not a usable participant (no `id` or `callid`); skip it.
    Unusable(String),
    /// Any other status (`400`, `5xx`, ...): the leg's state is unknown; skip it, and let a
    /// snapshot heal what it missed.
    Failed(u16),
}

/// A participant GET's reply, with what the connector needs to record it.
#[derive(Debug, Clone)]
pub struct FetchedParticipant {
    /// The request path.
    pub path: String,
    /// When the reply arrived.
    pub at: Timestamp,
    /// The HTTP status.
    pub status: u16,
    /// The body as received.
    pub body: Bytes,
    /// What it means.
    pub outcome: ParticipantReply,
}

/// The client for the PBX's REST interfaces. Cheap to clone; clones share the token manager.
#[derive(Debug, Clone)]
pub struct RestClient {
    http: reqwest::Client,
    config: Arc<ConnectorConfig>,
    tokens: Arc<TokenManager>,
    capture: Option<CaptureWriter>,
    stats: Arc<ConnectorStats>,
}

impl RestClient {
    pub(crate) fn new(
        http: reqwest::Client,
        config: Arc<ConnectorConfig>,
        tokens: Arc<TokenManager>,
        capture: Option<CaptureWriter>,
        stats: Arc<ConnectorStats>,
    ) -> Self {
        RestClient {
            http,
            config,
            tokens,
            capture,
            stats,
        }
    }

    /// The token manager this client uses.
    pub fn tokens(&self) -> &Arc<TokenManager> {
        &self.tokens
    }

    /// `GET /callcontrol`: every DN the API client sees, with its participants. Objects that
    /// cannot be used are left out and listed in [`Snapshot::skipped`].
    pub async fn snapshot(&self) -> Result<Snapshot, RestError> {
        let path = "/callcontrol";
        let reply = self.get(path, CaptureBody::Json).await?;
        self.stats.count_snapshot();
        let reply = expect_success(path, reply)?;
        let parsed = parse_snapshot(&reply.body).map_err(|detail| malformed(path, detail))?;
        Ok(Snapshot {
            at: reply.at,
            dns: parsed.dns,
            skipped: parsed.skipped,
        })
    }

    /// `GET /callcontrol/{dn}/participants/{id}`, **not** recorded into the capture: the
    /// connector records the reply when it hands on the change it decides (see
    /// [`super::capture`]), so that a replay meets the replies in the connector's order.
    pub async fn participant(&self, dn: &str, id: u64) -> Result<FetchedParticipant, RestError> {
        let path = format!("/callcontrol/{dn}/participants/{id}");
        let reply = self.get(&path, CaptureBody::Deferred).await?;
        self.stats.count_participant_fetch();
        let outcome = match reply.status {
            StatusCode::NOT_FOUND => {
                self.stats.count_not_found();
                ParticipantReply::Gone
            }
            StatusCode::FORBIDDEN => {
                self.stats.count_forbidden_participant();
                ParticipantReply::Hidden
            }
            status if status.is_success() => match parse_participant(&reply.body, dn) {
                Ok(participant) => ParticipantReply::Found(Box::new(participant)),
                Err(detail) => {
                    self.stats.count_skipped_object();
                    ParticipantReply::Unusable(detail)
                }
            },
            status => {
                self.stats.count_failed_fetch();
                ParticipantReply::Failed(status.as_u16())
            }
        };
        Ok(FetchedParticipant {
            path,
            at: reply.at,
            status: reply.status.as_u16(),
            body: reply.body,
            outcome,
        })
    }

    /// One GET with the shared token; re-mints once on `401`; records the reply.
    pub(super) async fn get(&self, path: &str, capture: CaptureBody) -> Result<Reply, RestError> {
        let url = self.config.endpoint(path);
        let reply = self.send(path, &url, true).await?;
        let status = reply.status();
        let headers = reply.headers().clone();
        let body = reply
            .bytes()
            .await
            .map_err(|e| TransportError::classify(url.as_str(), &e, self.config.request_timeout))?;
        let at = Timestamp::now();
        // A deferred reply is recorded by the caller when it acts on it.
        let recorded = match capture {
            CaptureBody::Json => Some(Record::body_of(&body)),
            CaptureBody::SizeOnly => Some(Record::size_of(&body)),
            CaptureBody::Deferred => None,
        };
        if let (Some(writer), Some(body)) = (&self.capture, recorded) {
            writer.record(&Record::Get {
                at,
                path: path.to_owned(),
                status: status.as_u16(),
                body,
                frame_at: None,
            });
        }
        Ok(Reply {
            at,
            status,
            headers,
            body,
        })
    }

    /// One GET like [`RestClient::get`], but a successful reply's body is left unread, for the
    /// caller to stream (recordings); the capture records its `Content-Length` as its size.
    pub(super) async fn get_streamed(&self, path: &str) -> Result<StreamedReply, RestError> {
        let url = self.config.endpoint(path);
        let reply = self.send(path, &url, false).await?;
        if let Some(writer) = &self.capture {
            writer.record(&Record::Get {
                at: Timestamp::now(),
                path: path.to_owned(),
                status: reply.status().as_u16(),
                body: super::capture::Body::Size(reply.content_length().unwrap_or(0) as usize),
                frame_at: None,
            });
        }
        Ok(StreamedReply {
            url: url.to_string(),
            timeout: self.config.request_timeout,
            response: reply,
        })
    }

    /// Sends a GET of `url` with the shared token and returns the reply with its body unread.
    /// A `401` is recorded into the capture (it never reaches the caller), the token re-minted
    /// once and the request repeated; a second `401` is [`RestError::Unauthorized`].
    async fn send(
        &self,
        path: &str,
        url: &url::Url,
        accept_json: bool,
    ) -> Result<reqwest::Response, RestError> {
        let mut token = self.tokens.token().await?;
        let mut retried = false;
        loop {
            let mut request = self
                .http
                .get(url.clone())
                .header(header::AUTHORIZATION, token.header_value());
            if accept_json {
                request = request.header(header::ACCEPT, "application/json");
            }
            let reply = request.send().await.map_err(|e| {
                TransportError::classify(url.as_str(), &e, self.config.request_timeout)
            })?;
            if reply.status() != StatusCode::UNAUTHORIZED {
                return Ok(reply);
            }
            let body = reply.bytes().await.unwrap_or_default();
            if let Some(writer) = &self.capture {
                writer.record(&Record::Get {
                    at: Timestamp::now(),
                    path: path.to_owned(),
                    status: StatusCode::UNAUTHORIZED.as_u16(),
                    body: Record::body_of(&body),
                    frame_at: None,
                });
            }
            if retried {
                return Err(RestError::Unauthorized {
                    path: path.to_owned(),
                });
            }
            retried = true;
            token = self.tokens.refresh_after_401(&token).await?;
        }
    }

    /// The request timeout, for callers that wrap several requests.
    pub fn timeout(&self) -> Duration {
        self.config.request_timeout
    }
}

/// The reply if it is a success; `403` as the error of the API it belongs to.
pub(super) fn expect_success(path: &str, reply: Reply) -> Result<Reply, RestError> {
    if reply.status.is_success() {
        Ok(reply)
    } else if reply.status == StatusCode::FORBIDDEN && path.starts_with("/xapi/") {
        Err(RestError::XapiForbidden {
            path: path.to_owned(),
        })
    } else if reply.status == StatusCode::FORBIDDEN {
        Err(RestError::Forbidden {
            path: path.to_owned(),
        })
    } else {
        Err(RestError::Status {
            path: path.to_owned(),
            status: reply.status.as_u16(),
            body: shorten(&String::from_utf8_lossy(&reply.body)),
        })
    }
}

pub(super) fn malformed(path: &str, detail: String) -> RestError {
    RestError::Malformed {
        path: path.to_owned(),
        detail,
    }
}

/// Parses the body of `GET /callcontrol` under the tolerance rule of `3cx-api.md`: only a
/// body that is not a JSON array fails; an object inside that cannot be used is skipped alone
/// and listed in [`ParsedSnapshot::skipped`]. A participant without a `dn` takes its DN
/// object's.
pub fn parse_snapshot(body: &[u8]) -> Result<ParsedSnapshot, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let Value::Array(items) = value else {
        return Err("not a JSON array of DN objects".to_owned());
    };
    let mut parsed = ParsedSnapshot::default();
    for item in items {
        let mut dn = match DnObject::deserialize(&item) {
            Ok(dn) if !dn.dn.is_empty() => dn,
            Ok(_) => {
                parsed.skipped.push(format!(
                    "DN object without `dn`: {}",
                    shorten(&item.to_string())
                ));
                continue;
            }
            Err(error) => {
                parsed.skipped.push(format!("DN object: {error}"));
                continue;
            }
        };
        for device in array(&item["devices"]) {
            match Device::deserialize(device) {
                Ok(device) => dn.devices.push(device),
                Err(error) => parsed
                    .skipped
                    .push(format!("device of DN {}: {error}", dn.dn)),
            }
        }
        for participant in array(&item["participants"]) {
            match Participant::deserialize(participant) {
                Ok(mut participant) => {
                    if participant.dn.is_empty() {
                        participant.dn = dn.dn.clone();
                    }
                    dn.participants.push(participant);
                }
                Err(error) => parsed
                    .skipped
                    .push(format!("participant of DN {}: {error}", dn.dn)),
            }
        }
        parsed.dns.push(dn);
    }
    Ok(parsed)
}

/// The items of a JSON array; `null`, a missing key or any other shape has none.
fn array(value: &Value) -> &[Value] {
    value.as_array().map_or(&[], Vec::as_slice)
}

/// Parses the body of `GET /callcontrol/{dn}/participants/{id}` under the tolerance rule; fails
/// only when it is not an object or has no usable `id` or `callid`. A participant without a
/// `dn` takes `dn`, the one of its path.
pub fn parse_participant(body: &[u8], dn: &str) -> Result<Participant, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if !value.is_object() {
        return Err("not a JSON object".to_owned());
    }
    let mut participant = Participant::deserialize(&value).map_err(|e| e.to_string())?;
    if participant.dn.is_empty() {
        participant.dn = dn.to_owned();
    }
    Ok(participant)
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callcontrol::ParticipantStatus;

    #[test]
    fn parses_a_snapshot() {
        let body = br#"[
          {"dn":"101","type":"Wextension",
           "devices":[{"dn":"101","device_id":"sip:101@10.0.0.5:5060","user_agent":"Yealink T46U"}],
           "participants":[{"id":8106,"status":"Ringing","dn":"101","party_caller_id":"0123456789",
             "party_dn_type":"Wexternalline","callid":1264,"legid":4}]},
          {"dn":"callhook","type":"Wroutepoint","devices":[],"participants":[{"id":9,"status":"Connected","callid":7}]},
          {"dn":"800","type":"Wsomethingnew"}
        ]"#;
        let parsed = parse_snapshot(body).unwrap();
        assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
        let dns = parsed.dns;
        assert_eq!(dns.len(), 3);
        assert_eq!(dns[0].dn_type, DnType::Wextension);
        assert_eq!(dns[0].devices[0].user_agent, "Yealink T46U");
        assert_eq!(dns[0].participants[0].status, ParticipantStatus::Ringing);
        assert_eq!(dns[0].participants[0].callid, 1264);
        assert_eq!(
            dns[1].participants[0].dn, "callhook",
            "a missing dn is the DN object's"
        );
        assert_eq!(dns[2].dn_type, DnType::Unknown);
        assert!(dns[2].participants.is_empty());
    }

    #[test]
    fn rejects_malformed_bodies() {
        assert!(parse_snapshot(b"{}").is_err());
        assert!(parse_snapshot(b"not json").is_err());
        assert!(parse_participant(b"[]", "150").is_err());
        assert!(parse_participant(br#"{"status":"Ringing"}"#, "150").is_err());
        assert!(parse_participant(br#"{"id":"x"}"#, "150").is_err());
    }

    #[test]
    fn parses_a_participant_with_unknown_fields() {
        let p = parse_participant(
            br#"{"id":5,"status":"Held","dn":"150","callid":3,"new_field":1}"#,
            "9",
        )
        .unwrap();
        assert_eq!(
            (p.id, p.status, p.dn.as_str(), p.callid),
            (5, ParticipantStatus::Held, "150", 3)
        );
        let without_dn = parse_participant(br#"{"id":5,"dn":null,"callid":3}"#, "150").unwrap();
        assert_eq!(without_dn.dn, "150", "a leg without dn takes its path's");
    }

    #[test]
    fn reads_nulls_and_missing_keys_as_empty_and_skips_only_unusable_objects() {
        let body = br#"[
          {"dn":"150","type":"Wextension","devices":null,
           "participants":[
             {"id":1,"status":null,"dn":null,"party_caller_name":null,"party_dn":null,
              "party_caller_id":null,"party_did":null,"device_id":null,"party_dn_type":null,
              "direct_control":null,"originated_by_dn":null,"originated_by_type":null,
              "referred_by_dn":null,"referred_by_type":null,"on_behalf_of_dn":null,
              "on_behalf_of_type":null,"callid":5,"legid":null},
             {"status":"Ringing","callid":5},
             {"id":3,"status":"Ringing","callid":null},
             {"id":"4","callid":"6","status":"Connected","party_dn":10007}
           ]},
          {"dn":null,"type":"Wextension","participants":[{"id":9,"callid":9}]},
          {"type":null,"participants":null},
          {"dn":"ROUTER","type":null,"devices":[7,{"dn":null}],"participants":null},
          {"dn":"800","type":"Wqueue","devices":null,"participants":[]}
        ]"#;
        let parsed = parse_snapshot(body).unwrap();
        let dns: Vec<(&str, DnType)> = parsed
            .dns
            .iter()
            .map(|d| (d.dn.as_str(), d.dn_type))
            .collect();
        assert_eq!(
            dns,
            [
                ("150", DnType::Wextension),
                ("ROUTER", DnType::None),
                ("800", DnType::Wqueue)
            ]
        );
        let ids: Vec<u64> = parsed.dns[0].participants.iter().map(|p| p.id).collect();
        assert_eq!(
            ids,
            [1, 4],
            "the participants without id or callid are skipped alone"
        );
        let first = &parsed.dns[0].participants[0];
        assert_eq!(
            (
                first.dn.as_str(),
                first.status,
                first.party_dn_type,
                first.legid
            ),
            ("150", ParticipantStatus::Unknown, DnType::None, 0),
            "nulls read as empty; the DN object names the leg's DN"
        );
        assert_eq!(parsed.dns[0].participants[1].party_dn, "10007");
        assert_eq!(
            parsed.dns[1].devices,
            [Device::default()],
            "a device that is not an object is skipped"
        );
        assert_eq!(parsed.skipped.len(), 5, "{:#?}", parsed.skipped);
    }
}
