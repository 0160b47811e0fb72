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
//! | `403` | [`RestError::Forbidden`]: no Call Control licence, or the DN is not selected for the client |
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
use super::participant::{DnType, Participant};
use super::stats::ConnectorStats;
use super::token::{TokenError, TokenManager, shorten};

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
    /// `403`: the API client may not do this.
    #[error(
        "the PBX answered HTTP 403 for {path}: the API client has no Call Control licence, or the \
         DN is not selected for it (3CX Admin > Integrations > API)"
    )]
    Forbidden {
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
            RestError::Transport(TransportError::Tls { .. }) | RestError::Forbidden { .. } => true,
            _ => false,
        }
    }
}

/// A DN object of `GET /callcontrol`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnObject {
    /// The DN's number or name.
    pub dn: String,
    /// Its type (`Wextension`, `Wqueue`, ...).
    #[serde(rename = "type", default = "dn_type_none")]
    pub dn_type: DnType,
    /// Its registered devices.
    #[serde(default)]
    pub devices: Vec<Device>,
    /// Its participants: the call legs it is part of now.
    #[serde(default)]
    pub participants: Vec<Participant>,
}

fn dn_type_none() -> DnType {
    DnType::None
}

/// A device registered to a DN.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Device {
    /// The DN it belongs to.
    pub dn: String,
    /// The SIP contact, e.g. `sip:101@10.0.0.5:5060`.
    pub device_id: String,
    /// The phone's user agent, e.g. `Yealink T46U`.
    pub user_agent: String,
}

/// `GET /callcontrol` parsed, with the time the reply arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// When the reply arrived.
    pub at: Timestamp,
    /// Every DN the API client sees.
    pub dns: Vec<DnObject>,
}


/// A reply as received.
pub(super) struct Reply {
    pub(super) at: Timestamp,
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
}

/// Whether a reply body goes into the capture.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum CaptureBody {
    /// The JSON body (redacted).
    Json,
    /// Only its length (audio).
    SizeOnly,
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

    /// `GET /callcontrol`: every DN the API client sees, with its participants.
    pub async fn snapshot(&self) -> Result<Snapshot, RestError> {
        let path = "/callcontrol";
        let reply = self.get(path, CaptureBody::Json).await?;
        self.stats.count_snapshot();
        let reply = expect_success(path, reply)?;
        let dns = parse_snapshot(&reply.body).map_err(|detail| malformed(path, detail))?;
        Ok(Snapshot { at: reply.at, dns })
    }

    /// `GET /callcontrol/{dn}/participants/{id}`: the participant with the time its reply
    /// arrived, or `None` (with the time of the `404`) once it is gone.
    pub async fn participant(
        &self,
        dn: &str,
        id: u64,
    ) -> Result<(Timestamp, Option<Participant>), RestError> {
        let path = format!("/callcontrol/{dn}/participants/{id}");
        let reply = self.get(&path, CaptureBody::Json).await?;
        self.stats.count_participant_fetch();
        if reply.status == StatusCode::NOT_FOUND {
            self.stats.count_not_found();
            return Ok((reply.at, None));
        }
        let reply = expect_success(&path, reply)?;
        let participant =
            parse_participant(&reply.body).map_err(|detail| malformed(&path, detail))?;
        Ok((reply.at, Some(participant)))
    }

    /// XAPI recordings with an `Id` above `after_id`, in `Id` order, at most `top` (clamped to

    /// One GET with the shared token; re-mints once on `401`; records the reply.
    pub(super) async fn get(&self, path: &str, capture: CaptureBody) -> Result<Reply, RestError> {
        let url = self.config.endpoint(path);
        let mut token = self.tokens.token().await?;
        let mut retried = false;
        loop {
            let reply = self
                .http
                .get(url.clone())
                .header(header::AUTHORIZATION, token.header_value())
                .header(header::ACCEPT, "application/json")
                .send()
                .await
                .map_err(|e| {
                    TransportError::classify(url.as_str(), &e, self.config.request_timeout)
                })?;
            let status = reply.status();
            let headers = reply.headers().clone();
            let body = reply.bytes().await.map_err(|e| {
                TransportError::classify(url.as_str(), &e, self.config.request_timeout)
            })?;
            let at = Timestamp::now();
            if let Some(writer) = &self.capture {
                let body = match capture {
                    CaptureBody::Json => Record::body_of(&body),
                    CaptureBody::SizeOnly => Record::size_of(&body),
                };
                writer.record(&Record::Get {
                    at,
                    path: path.to_owned(),
                    status: status.as_u16(),
                    body,
                });
            }
            if status == StatusCode::UNAUTHORIZED {
                if retried {
                    return Err(RestError::Unauthorized {
                        path: path.to_owned(),
                    });
                }
                retried = true;
                token = self.tokens.refresh_after_401(&token).await?;
                continue;
            }
            if status == StatusCode::FORBIDDEN {
                return Err(RestError::Forbidden {
                    path: path.to_owned(),
                });
            }
            return Ok(Reply {
                at,
                status,
                headers,
                body,
            });
        }
    }

    /// The request timeout, for callers that wrap several requests.
    pub fn timeout(&self) -> Duration {
        self.config.request_timeout
    }
}

pub(super) fn expect_success(path: &str, reply: Reply) -> Result<Reply, RestError> {
    if reply.status.is_success() {
        Ok(reply)
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

/// Parses the body of `GET /callcontrol`. A participant without a `dn` takes its DN object's.
pub fn parse_snapshot(body: &[u8]) -> Result<Vec<DnObject>, String> {
    let mut dns: Vec<DnObject> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    for dn in &mut dns {
        for participant in &mut dn.participants {
            if participant.dn.is_empty() {
                participant.dn = dn.dn.clone();
            }
        }
    }
    Ok(dns)
}

/// Parses the body of `GET /callcontrol/{dn}/participants/{id}`.
pub fn parse_participant(body: &[u8]) -> Result<Participant, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if !value.is_object() {
        return Err("not a JSON object".to_owned());
    }
    if value.get("id").is_none() {
        return Err("no `id`".to_owned());
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::pbx::participant::ParticipantStatus;

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
        let dns = parse_snapshot(body).unwrap();
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
        assert!(parse_participant(b"[]").is_err());
        assert!(parse_participant(br#"{"status":"Ringing"}"#).is_err());
        assert!(parse_participant(br#"{"id":"x"}"#).is_err());
    }

    #[test]
    fn parses_a_participant_with_unknown_fields() {
        let p =
            parse_participant(br#"{"id":5,"status":"Held","dn":"150","callid":3,"new_field":1}"#)
                .unwrap();
        assert_eq!(
            (p.id, p.status, p.dn.as_str(), p.callid),
            (5, ParticipantStatus::Held, "150", 3)
        );
    }

    }
}
