//! The event WebSocket `/callcontrol/ws`: the connection, and the frames it carries.
//!
//! The socket is opened with the Bearer token on the upgrade request; the PBX sends nothing on
//! connect, then one text frame per event (`3cx-api.md`, section 3):
//!
//! ```json
//! {"sequence":18,"event":{"event_type":0,"entity":"/callcontrol/150/participants/8106","attached_data":null}}
//! ```
//!
//! [`parse_frame`] is pure and turns such a text into a [`Frame`]. It is lenient where that
//! costs nothing (a numeric string for `event_type`, a missing `sequence`) and strict where a
//! mistake would mislead the engine: only an upsert or remove of an entity of the form
//! `/callcontrol/{dn}/participants/{id}` is about a participant. Upserts and removes of other
//! entities (a device `/callcontrol/{dn}/devices/{id}`, a DN `/callcontrol/{dn}`) parse as
//! [`Event::OtherEntity`] and unknown event types as [`Event::Unknown`]: both are ignored, but
//! their sequence numbers still count.
//!
//! [`EventSocket`] owns the connection. It pings every `ping_interval` (5 s by default) while
//! waiting for frames, and gives up on a connection that has been silent (no frame, no pong)
//! for three intervals, since a half-open TCP connection would otherwise wait forever. It
//! reports raw text with its arrival time, leaving parsing to the connector, so that captures
//! see exactly what the PBX sent.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector as TlsConnector, MaybeTlsStream, WebSocketStream};
use url::Url;

use super::http::TransportError;
use super::token::AccessToken;

/// One parsed frame of the event socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The frame's number on this socket, counting up by one; `None` if the PBX left it out.
    pub sequence: Option<u64>,
    /// What happened.
    pub event: Event,
}

/// The event of a frame, by `event_type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `0`: the participant appeared or changed; fetch it to learn its state.
    Upsert(Entity),
    /// `1`: the participant is gone.
    Remove(Entity),
    /// `2`: digits pressed on a leg the API client controls.
    Dtmf {
        /// The entity path as sent.
        entity: String,
        /// `attached_data.dtmf_input`, `""` if absent.
        input: String,
    },
    /// `3`: a prompt the API client played has finished.
    PromptPlaybackFinished {
        /// The entity path as sent.
        entity: String,
    },
    /// `0` or `1` about an entity that is not a participant (a device, a DN): ignored.
    OtherEntity {
        /// The `event_type` received.
        event_type: u64,
        /// The entity path as sent.
        entity: String,
    },
    /// Any other number: ignored, but counted.
    Unknown {
        /// The `event_type` received.
        event_type: u64,
        /// The entity path as sent.
        entity: String,
    },
}

/// A participant named by an event: `/callcontrol/{dn}/participants/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entity {
    /// The DN, verbatim from the path.
    pub dn: String,
    /// The participant id.
    pub participant_id: u64,
}

impl Entity {
    /// Parses `/callcontrol/{dn}/participants/{id}` (a trailing `/` tolerated).
    pub fn parse(path: &str) -> Option<Entity> {
        let rest = path.trim_end_matches('/').strip_prefix("/callcontrol/")?;
        let (dn, id) = rest.split_once("/participants/")?;
        if dn.is_empty() || dn.contains('/') {
            return None;
        }
        Some(Entity {
            dn: dn.to_owned(),
            participant_id: id.parse().ok()?,
        })
    }

    /// The REST path of this participant, `/callcontrol/{dn}/participants/{id}`.
    pub fn path(&self) -> String {
        format!(
            "/callcontrol/{}/participants/{}",
            self.dn, self.participant_id
        )
    }
}

/// Why a frame could not be understood. The connector logs it, counts it and skips the frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The text is not JSON of the frame's shape.
    #[error("the frame is not JSON of the expected shape: {0}")]
    NotJson(String),
    /// No `event` object, or no usable `event_type` in it.
    #[error("the frame has no `event` with a numeric `event_type`")]
    NoEvent,
}

#[derive(Deserialize)]
struct RawFrame {
    #[serde(default)]
    sequence: Option<u64>,
    #[serde(default)]
    event: Option<RawEvent>,
}

#[derive(Deserialize)]
struct RawEvent {
    #[serde(default)]
    event_type: Value,
    #[serde(default)]
    entity: Option<String>,
    #[serde(default)]
    attached_data: Value,
}

/// Parses one text frame of the event socket.
///
/// ```
/// # use callhook::pbx::socket::{parse_frame, Entity, Event};
/// let frame = parse_frame(
///     r#"{"sequence":18,"event":{"event_type":0,"entity":"/callcontrol/150/participants/8106","attached_data":null}}"#,
/// ).unwrap();
/// assert_eq!(frame.sequence, Some(18));
/// assert_eq!(frame.event, Event::Upsert(Entity { dn: "150".into(), participant_id: 8106 }));
/// ```
pub fn parse_frame(text: &str) -> Result<Frame, FrameError> {
    let raw: RawFrame =
        serde_json::from_str(text).map_err(|e| FrameError::NotJson(e.to_string()))?;
    let event = raw.event.ok_or(FrameError::NoEvent)?;
    let event_type = match &event.event_type {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or(FrameError::NoEvent)?;
    let entity = event.entity.unwrap_or_default();
    let event = match (event_type, Entity::parse(&entity)) {
        (0, Some(participant)) => Event::Upsert(participant),
        (1, Some(participant)) => Event::Remove(participant),
        (0 | 1, None) => Event::OtherEntity { event_type, entity },
        (2, _) => Event::Dtmf {
            entity,
            input: event.attached_data["dtmf_input"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        },
        (3, _) => Event::PromptPlaybackFinished { entity },
        (event_type, _) => Event::Unknown { event_type, entity },
    };
    Ok(Frame {
        sequence: raw.sequence,
        event,
    })
}

/// A text frame as received, with its arrival time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// When the frame arrived.
    pub at: Timestamp,
    /// The frame's text, unparsed.
    pub text: String,
}

/// The event socket could not be opened, or broke.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SocketError {
    /// `401` on the upgrade: the token was refused (expired, or superseded by another login).
    #[error(
        "the PBX refused the event socket upgrade with HTTP 401 (the access token was rejected)"
    )]
    Unauthorized,
    /// `403` on the upgrade: the API client may not use Call Control.
    #[error(
        "the PBX refused the event socket upgrade with HTTP 403: the API client has no Call Control \
         licence or is not allowed to use the Call Control API (3CX Admin > Integrations > API)"
    )]
    Forbidden,
    /// Any other status on the upgrade.
    #[error("the PBX answered the event socket upgrade at {url} with HTTP {status}")]
    Status {
        /// The socket URL.
        url: String,
        /// The HTTP status instead of `101`.
        status: u16,
    },
    /// The connection could not be made or broke.
    #[error("event socket: {0}")]
    Transport(#[from] TransportError),
    /// Nothing (no frame, no pong) arrived for too long: the connection is presumed dead.
    #[error("the event socket at {url} was silent for {silence:?} despite pings")]
    Silent {
        /// The socket URL.
        url: String,
        /// How long nothing arrived.
        silence: Duration,
    },
}

/// An open event socket.
pub struct EventSocket {
    url: String,
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    ping: Interval,
    last_heard: Instant,
    silence_limit: Duration,
}

impl std::fmt::Debug for EventSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSocket")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl EventSocket {
    /// Opens the socket at `url` with `token`, within `timeout`.
    pub async fn connect(
        url: &Url,
        token: &AccessToken,
        tls: Arc<rustls::ClientConfig>,
        timeout: Duration,
        ping_interval: Duration,
    ) -> Result<EventSocket, SocketError> {
        let shown = url.as_str().to_owned();
        let mut request = url.as_str().into_client_request().map_err(|e| {
            SocketError::Transport(TransportError::classify_other(&shown, &e, true))
        })?;
        let bearer = HeaderValue::from_str(&token.header_value()).map_err(|_| {
            SocketError::Transport(TransportError::Broken {
                url: shown.clone(),
                detail: "the access token is not a valid header value".to_owned(),
            })
        })?;
        request.headers_mut().insert(header::AUTHORIZATION, bearer);
        let connector = if url.scheme() == "wss" {
            TlsConnector::Rustls(tls)
        } else {
            TlsConnector::Plain
        };
        let connecting =
            tokio_tungstenite::connect_async_tls_with_config(request, None, true, Some(connector));
        let (stream, _response) = match tokio::time::timeout(timeout, connecting).await {
            Err(_) => {
                return Err(SocketError::Transport(TransportError::Timeout {
                    url: shown,
                    timeout,
                }));
            }
            Ok(Err(error)) => return Err(upgrade_error(&shown, error)),
            Ok(Ok(connected)) => connected,
        };
        let mut ping = tokio::time::interval_at(Instant::now() + ping_interval, ping_interval);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Ok(EventSocket {
            url: shown,
            stream,
            ping,
            last_heard: Instant::now(),
            silence_limit: ping_interval * 3,
        })
    }

    /// The next text frame; `Ok(None)` once the PBX closed the socket. Pings while waiting.
    ///
    /// Silence is measured only while waiting here: time the caller spent processing between
    /// calls (when no pings went out, so no pongs could come back) is no sign of a dead socket.
    pub async fn next(&mut self) -> Result<Option<Received>, SocketError> {
        let listening_since = Instant::now();
        loop {
            tokio::select! {
                // Frames already waiting come first, so a busy caller never mistakes its own
                // absence for the PBX's silence.
                biased;
                message = self.stream.next() => {
                    if let Some(received) = self.take(message)? {
                        return Ok(received);
                    }
                }
                _ = self.ping.tick() => {
                    let silence = self.last_heard.max(listening_since).elapsed();
                    if silence >= self.silence_limit {
                        return Err(SocketError::Silent { url: self.url.clone(), silence });
                    }
                    self.stream
                        .send(Message::Ping(Default::default()))
                        .await
                        .map_err(|e| self.broken(e))?;
                }
            }
        }
    }

    /// The next text frame if one has already arrived, without waiting.
    pub fn try_next(&mut self) -> Option<Result<Option<Received>, SocketError>> {
        loop {
            let message = self.stream.next().now_or_never()?;
            match self.take(message) {
                Ok(Some(received)) => return Some(Ok(received)),
                Ok(None) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// Sends a close frame and waits briefly for the PBX to acknowledge it.
    pub async fn close(mut self) {
        let closing = async {
            let _ = self.stream.close(None).await;
            while let Some(Ok(_)) = self.stream.next().await {}
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), closing).await;
    }

    /// What one read from the stream means: `Some(Some(text))` a frame, `Some(None)` closed,
    /// `None` nothing for the caller (ping, pong).
    #[allow(clippy::option_option)]
    fn take(
        &mut self,
        message: Option<Result<Message, tungstenite::Error>>,
    ) -> Result<Option<Option<Received>>, SocketError> {
        let at = Timestamp::now();
        let message = match message {
            None
            | Some(Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed)) =>
            {
                return Ok(Some(None));
            }
            Some(Err(error)) => return Err(self.broken(error)),
            Some(Ok(message)) => message,
        };
        self.last_heard = Instant::now();
        Ok(match message {
            Message::Text(text) => Some(Some(Received {
                at,
                text: text.as_str().to_owned(),
            })),
            // The PBX sends text; a binary frame is passed on as text so it gets logged and
            // counted as malformed rather than silently lost.
            Message::Binary(bytes) => Some(Some(Received {
                at,
                text: String::from_utf8_lossy(&bytes).into_owned(),
            })),
            Message::Close(_) => Some(None),
            // tungstenite answers pings itself; pongs only prove the connection lives.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => None,
        })
    }

    fn broken(&self, error: tungstenite::Error) -> SocketError {
        SocketError::Transport(match error {
            tungstenite::Error::Tls(tls) => TransportError::Tls {
                url: self.url.clone(),
                detail: tls.to_string(),
            },
            other => TransportError::classify_other(&self.url, &other, false),
        })
    }
}

/// Sorts a failed upgrade.
fn upgrade_error(url: &str, error: tungstenite::Error) -> SocketError {
    match error {
        tungstenite::Error::Http(response) => match response.status() {
            StatusCode::UNAUTHORIZED => SocketError::Unauthorized,
            StatusCode::FORBIDDEN => SocketError::Forbidden,
            status => SocketError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
            },
        },
        tungstenite::Error::Tls(tls) => SocketError::Transport(TransportError::Tls {
            url: url.to_owned(),
            detail: tls.to_string(),
        }),
        other => SocketError::Transport(TransportError::classify_other(url, &other, true)),
    }
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(dn: &str, participant_id: u64) -> Entity {
        Entity {
            dn: dn.into(),
            participant_id,
        }
    }

    fn frame(sequence: u64, event_type: &str, entity: &str, data: &str) -> String {
        format!(
            r#"{{"sequence":{sequence},"event":{{"event_type":{event_type},"entity":"{entity}","attached_data":{data}}}}}"#
        )
    }

    #[test]
    fn parses_frames() {
        let p = "/callcontrol/150/participants/8106";
        #[rustfmt::skip]
        let cases: Vec<(String, Frame)> = vec![
            (frame(18, "0", p, "null"), Frame { sequence: Some(18), event: Event::Upsert(entity("150", 8106)) }),
            (frame(19, "1", p, "null"), Frame { sequence: Some(19), event: Event::Remove(entity("150", 8106)) }),
            (frame(20, "\"0\"", p, "null"), Frame { sequence: Some(20), event: Event::Upsert(entity("150", 8106)) }),
            (frame(21, "2", p, r#"{"dtmf_input":"1"}"#), Frame { sequence: Some(21), event: Event::Dtmf { entity: p.into(), input: "1".into() } }),
            (frame(22, "3", p, "null"), Frame { sequence: Some(22), event: Event::PromptPlaybackFinished { entity: p.into() } }),
            (frame(23, "7", "/callcontrol/000/participants/0", "null"), Frame { sequence: Some(23), event: Event::Unknown { event_type: 7, entity: "/callcontrol/000/participants/0".into() } }),
            (frame(24, "7", "whatever", "null"), Frame { sequence: Some(24), event: Event::Unknown { event_type: 7, entity: "whatever".into() } }),
            (r#"{"event":{"event_type":0,"entity":"/callcontrol/callhook/participants/5/"}}"#.into(), Frame { sequence: None, event: Event::Upsert(entity("callhook", 5)) }),
            (r#"{"sequence":1,"event":{"event_type":1,"entity":"/callcontrol/101/participants/2","extra":true},"more":1}"#.into(), Frame { sequence: Some(1), event: Event::Remove(entity("101", 2)) }),
            (frame(25, "0", "/callcontrol/3cxapi/participants/9", "null"), Frame { sequence: Some(25), event: Event::Upsert(entity("3cxapi", 9)) }),
            (frame(26, "0", "/callcontrol/150/devices/sip:150@10.0.0.5", "null"), Frame { sequence: Some(26), event: Event::OtherEntity { event_type: 0, entity: "/callcontrol/150/devices/sip:150@10.0.0.5".into() } }),
            (frame(27, "0", "/callcontrol/150", "null"), Frame { sequence: Some(27), event: Event::OtherEntity { event_type: 0, entity: "/callcontrol/150".into() } }),
            (frame(28, "1", "/callcontrol/150/participants/x", "null"), Frame { sequence: Some(28), event: Event::OtherEntity { event_type: 1, entity: "/callcontrol/150/participants/x".into() } }),
            (r#"{"sequence":29,"event":{"event_type":0}}"#.into(), Frame { sequence: Some(29), event: Event::OtherEntity { event_type: 0, entity: String::new() } }),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_frame(&text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn rejects_malformed_frames() {
        type Check = fn(&FrameError) -> bool;
        #[rustfmt::skip]
        let cases: &[(&str, Check)] = &[
            ("{\"sequence\": this is not json", |e| matches!(e, FrameError::NotJson(_))),
            ("\"text\"", |e| matches!(e, FrameError::NotJson(_))),
            ("[]", |e| *e == FrameError::NoEvent),
            (r#"{"sequence":"x","event":{"event_type":0}}"#, |e| matches!(e, FrameError::NotJson(_))),
            (r#"{"sequence":1}"#, |e| *e == FrameError::NoEvent),
            (r#"{"sequence":1,"event":{"entity":"/callcontrol/1/participants/2"}}"#, |e| *e == FrameError::NoEvent),
            (r#"{"sequence":1,"event":{"event_type":-1,"entity":"/callcontrol/1/participants/2"}}"#, |e| *e == FrameError::NoEvent),
        ];
        for (text, check) in cases {
            let error = parse_frame(text).unwrap_err();
            assert!(check(&error), "{text}: {error:?}");
        }
    }

    #[test]
    fn entity_path_round_trips() {
        let e = entity("150", 8106);
        assert_eq!(Entity::parse(&e.path()), Some(e));
    }
}
