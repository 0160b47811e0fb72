//! Capture: everything the PBX said, as JSON lines.
//!
//! `callhook run --capture FILE` hands a [`CaptureWriter`] to the connector, which then records
//! every socket frame and every GET reply with the time it arrived; `callhook replay FILE`
//! reads such a file back with [`replay_file`](super::replay::replay_file) ([`super::replay`])
//! and gets the same [`Change`](super::Change) stream the live connector produced. That is
//! how a field problem becomes a test case. Writing is here, reading in `replay`, so that the
//! REST client and the socket, which write, do not depend on their own parsers' readers.
//!
//! # Format
//!
//! UTF-8, one JSON object per line, each with `at` (RFC 3339, UTC) and `kind`:
//!
//! ```text
//! {"kind":"start","at":"…","version":1,"base_url":"https://pbx.example.com:5001/","client_id":"callhook"}
//! {"kind":"token","at":"…","status":200,"expires_in":3600,"lifetime_s":3599.2,"error":null}
//! {"kind":"socket_opened","at":"…","url":"wss://pbx.example.com:5001/callcontrol/ws"}
//! {"kind":"get","at":"…","path":"/callcontrol","status":200,"body":{"json":[…]}}
//! {"kind":"frame","at":"…","text":"{\"sequence\":1,\"event\":{…}}"}
//! {"kind":"get","at":"…","path":"/callcontrol/150/participants/8106","status":200,"body":{"json":{…}}}
//! {"kind":"socket_closed","at":"…","reason":"closed by the PBX"}
//! ```
//!
//! A GET body is `{"json": …}` when it was JSON, `{"text": "…"}` when not, `{"size": N}` for
//! audio. Lines of unknown kinds are skipped on reading, so newer captures stay readable.
//!
//! **Secrets.** Tokens and the client secret are never written: the token record holds only
//! the status and lifetime, and every JSON body or frame passes [`redact`], which replaces the
//! string value of any key naming a token, secret, password or authorization.
//!
//! # Order, and why replay matches the live stream
//!
//! The connector fetches participants concurrently but hands changes on in the order of the
//! frames that caused them (see [`super::connector`]), and it writes each line that decides a
//! change at the moment it hands that change on: a snapshot reply, a participant reply (`200`
//! with a usable participant ⇒ upsert, `404` ⇒ remove; the line carries `frame_at`, the time of
//! the newest upsert frame the GET answers, which is the change's time) or a remove frame (with
//! the time it arrived). Upsert and ignored frames are written when they arrive; they decide
//! nothing by themselves. Replay maps exactly the deciding lines to changes
//! ([`change_of`](super::replay::change_of)) in
//! file order, so it reproduces the live stream one for one, including its times. Failed or
//! skipped replies (`401` before a re-mint, `403` on a hidden leg, `5xx`, unusable bodies) emit
//! nothing, live or replayed.
//!
//! Writes go through a mutex to a line-buffered file, so each line is complete on disk as soon
//! as it is written and a crash loses at most the line being written. A write failure is logged
//! once and capturing stops; the connector itself carries on.

use std::fs::File;
use std::io::{LineWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::rest::FetchedParticipant;

/// The capture format version written in the `start` line.
pub const FORMAT_VERSION: u32 = 1;

/// One line of a capture file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// The first line: which PBX this is about.
    Start {
        /// When the connector was created.
        at: Timestamp,
        /// [`FORMAT_VERSION`].
        version: u32,
        /// The PBX's base URL (without any password).
        base_url: String,
        /// The API client id.
        client_id: String,
    },
    /// A token was requested; the token itself is never recorded.
    Token {
        /// When the reply arrived.
        at: Timestamp,
        /// The HTTP status.
        status: u16,
        /// `expires_in` as the PBX sent it.
        expires_in: Option<u64>,
        /// The lifetime the connector computed from it, in seconds.
        lifetime_s: Option<f64>,
        /// Why the token was refused or unusable.
        error: Option<String>,
    },
    /// The event socket was opened.
    SocketOpened {
        /// When the upgrade completed.
        at: Timestamp,
        /// The socket URL.
        url: String,
    },
    /// The event socket ended or an attempt to open it failed.
    SocketClosed {
        /// When.
        at: Timestamp,
        /// Why, as the error message says it.
        reason: String,
    },
    /// A text frame of the event socket, as received (redacted).
    Frame {
        /// When it arrived.
        at: Timestamp,
        /// Its text.
        text: String,
    },
    /// A GET reply.
    Get {
        /// When the reply arrived.
        at: Timestamp,
        /// The request's path and query.
        path: String,
        /// The HTTP status.
        status: u16,
        /// The body.
        body: Body,
        /// For a participant GET: the time of the newest upsert frame it answers, which is the
        /// time of the change it decides (absent in captures of earlier versions, and for
        /// other GETs: then `at` is that time).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        frame_at: Option<Timestamp>,
    },
    /// A line of a kind this version does not know (skipped on reading).
    #[serde(other)]
    Other,
}

/// A recorded reply body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Body {
    /// A JSON body, redacted.
    Json(Value),
    /// A body that is not JSON, as (lossy UTF-8) text.
    Text(String),
    /// A binary body, by size only.
    Size(usize),
}

impl Record {
    /// The body of a reply that should be JSON: redacted JSON if it parses, else text.
    pub fn body_of(bytes: &[u8]) -> Body {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(mut value) => {
                redact(&mut value);
                Body::Json(value)
            }
            Err(_) => Body::Text(String::from_utf8_lossy(bytes).into_owned()),
        }
    }

    /// A participant GET's reply, recorded when the connector hands on the change it decides;
    /// `frame_at` is the time of the newest upsert frame the GET answers.
    pub fn participant_reply(fetched: &FetchedParticipant, frame_at: Timestamp) -> Record {
        Record::Get {
            at: fetched.at,
            path: fetched.path.clone(),
            status: fetched.status,
            body: Record::body_of(&fetched.body),
            frame_at: Some(frame_at),
        }
    }

    /// A binary body, recorded by size.
    pub fn size_of(bytes: &[u8]) -> Body {
        Body::Size(bytes.len())
    }

    /// A socket frame, redacted if it is JSON that names a secret (else verbatim).
    pub fn frame(at: Timestamp, text: &str) -> Record {
        let text = match serde_json::from_str::<Value>(text) {
            Ok(mut value) => {
                if redact(&mut value) {
                    value.to_string()
                } else {
                    text.to_owned()
                }
            }
            Err(_) => text.to_owned(),
        };
        Record::Frame { at, text }
    }
}

/// Replaces, in place, the string (or any) value of every key that names a secret (`token`,
/// `secret`, `password`, `authorization`, any case, anywhere in the key) with `"[redacted]"`.
/// Returns whether anything was replaced.
pub fn redact(value: &mut Value) -> bool {
    match value {
        Value::Object(map) => {
            let mut changed = false;
            for (key, value) in map.iter_mut() {
                let key = key.to_ascii_lowercase();
                if ["token", "secret", "password", "authorization"]
                    .iter()
                    .any(|word| key.contains(word))
                    && !value.is_null()
                {
                    *value = Value::String("[redacted]".to_owned());
                    changed = true;
                } else {
                    changed |= redact(value);
                }
            }
            changed
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, item| redact(item) | changed),
        _ => false,
    }
}

/// A capture file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file could not be created.
    #[error("cannot create the capture file {path}: {source}")]
    Create {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file could not be opened.
    #[error("cannot open the capture file {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Reading failed.
    #[error("cannot read line {line} of the capture: {source}")]
    Read {
        /// 1-based line number.
        line: usize,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not a capture record.
    #[error("line {line} of the capture is not a capture record: {detail}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        detail: String,
    },
}

struct Sink {
    out: Box<dyn Write + Send>,
    failed: bool,
}

/// Appends records to a capture. Cheap to clone; clones write to the same file.
#[derive(Clone)]
pub struct CaptureWriter {
    sink: Arc<Mutex<Sink>>,
    name: Arc<str>,
}

impl std::fmt::Debug for CaptureWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureWriter")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl CaptureWriter {
    /// Creates (or truncates) the capture file at `path`, owner-only (mode 0600): secrets are
    /// redacted, but callers' numbers and names are not. An existing regular file is tightened
    /// to 0600 too; anything else (`/dev/stdout`, a pipe) is written as it is.
    pub fn create(path: &Path) -> Result<CaptureWriter, CaptureError> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let create = || -> std::io::Result<File> {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(path)?;
            let meta = file.metadata()?;
            if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
                file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            }
            Ok(file)
        };
        let file = create().map_err(|source| CaptureError::Create {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self::new(
            LineWriter::new(file),
            &path.display().to_string(),
        ))
    }

    /// A capture into any writer (tests, or a pipe); `name` appears in error logs.
    pub fn new(out: impl Write + Send + 'static, name: &str) -> CaptureWriter {
        CaptureWriter {
            sink: Arc::new(Mutex::new(Sink {
                out: Box::new(out),
                failed: false,
            })),
            name: name.into(),
        }
    }

    /// Appends one record as one line. Failures are logged once; capturing then stops.
    pub fn record(&self, record: &Record) {
        let mut line = match serde_json::to_string(record) {
            Ok(line) => line,
            Err(error) => {
                tracing::warn!(%error, "cannot serialise a capture record");
                return;
            }
        };
        line.push('\n');
        let mut sink = self
            .sink
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if sink.failed {
            return;
        }
        if let Err(error) = sink
            .out
            .write_all(line.as_bytes())
            .and_then(|()| sink.out.flush())
        {
            sink.failed = true;
            tracing::error!(capture = %self.name, %error, "cannot write the capture; capturing stops");
        }
    }
}
