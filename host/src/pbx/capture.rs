//! Capture and replay: everything the PBX said, as JSON lines, and the [`Change`]s it meant.
//!
//! `callhook run --capture FILE` hands a [`CaptureWriter`] to the connector, which then records
//! every socket frame and every GET reply with the time it arrived; `callhook replay FILE`
//! reads such a file back with [`replay_file`] and gets the same [`Change`] stream the live
//! connector produced. That is how a field problem becomes a test case.
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
//! nothing by themselves. Replay maps exactly the deciding lines to changes ([`change_of`]) in
//! file order, so it reproduces the live stream one for one, including its times. Failed or
//! skipped replies (`401` before a re-mint, `403` on a hidden leg, `5xx`, unusable bodies) emit
//! nothing, live or replayed.
//!
//! Writes go through a mutex to a line-buffered file, so each line is complete on disk as soon
//! as it is written and a crash loses at most the line being written. A write failure is logged
//! once and capturing stops; the connector itself carries on.

use std::fs::File;
use std::io::{BufRead, BufReader, LineWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::rest::{FetchedParticipant, parse_participant, parse_snapshot};
use super::socket::{Entity, Event, parse_frame};
use super::{Change, Dn};

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

/// The change a record means, if any (see the module docs).
pub fn change_of(record: &Record) -> Option<Change> {
    match record {
        Record::Frame { at, text } => match parse_frame(text).ok()?.event {
            Event::Remove(Entity { dn, participant_id }) => Some(Change::Remove {
                at: *at,
                dn,
                participant_id,
            }),
            _ => None,
        },
        Record::Get {
            at,
            path,
            status,
            body,
            frame_at,
        } => {
            let success = (200..300).contains(status);
            if path == "/callcontrol" {
                let Body::Json(value) = body else { return None };
                if !success {
                    return None;
                }
                let parsed = parse_snapshot(value.to_string().as_bytes()).ok()?;
                return Some(snapshot_change(*at, parsed.dns));
            }
            let entity = Entity::parse(path)?;
            let at = frame_at.as_ref().unwrap_or(at);
            if *status == 404 {
                return Some(Change::Remove {
                    at: *at,
                    dn: entity.dn,
                    participant_id: entity.participant_id,
                });
            }
            let Body::Json(value) = body else { return None };
            if !success {
                return None;
            }
            let participant = parse_participant(value.to_string().as_bytes(), &entity.dn).ok()?;
            Some(Change::Upsert {
                at: *at,
                participant,
            })
        }
        _ => None,
    }
}

/// The snapshot change for the DN objects of a `GET /callcontrol` reply.
pub(crate) fn snapshot_change(at: Timestamp, dns: Vec<super::rest::DnObject>) -> Change {
    let mut list = Vec::with_capacity(dns.len());
    let mut participants = Vec::new();
    for dn in dns {
        list.push(Dn {
            dn: dn.dn,
            dn_type: dn.dn_type,
        });
        participants.extend(dn.participants);
    }
    Change::Snapshot {
        at,
        dns: list,
        participants,
    }
}

/// Reads the records of a capture, one per line, skipping blank lines and unknown kinds.
pub struct Records<R> {
    lines: std::io::Lines<R>,
    line: usize,
}

impl<R: BufRead> Records<R> {
    /// Records of the capture read from `reader`.
    pub fn new(reader: R) -> Self {
        Records {
            lines: reader.lines(),
            line: 0,
        }
    }
}

impl<R: BufRead> Iterator for Records<R> {
    type Item = Result<Record, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let text = self.lines.next()?;
            self.line += 1;
            let line = self.line;
            let text = match text {
                Ok(text) => text,
                Err(source) => return Some(Err(CaptureError::Read { line, source })),
            };
            if text.trim().is_empty() {
                continue;
            }
            return match serde_json::from_str::<Record>(&text) {
                Ok(Record::Other) => continue,
                Ok(record) => Some(Ok(record)),
                Err(e) => Some(Err(CaptureError::BadLine {
                    line,
                    detail: e.to_string(),
                })),
            };
        }
    }
}

/// The [`Change`] stream of a capture. Unreadable lines come out as errors; the caller may
/// stop or carry on.
pub struct Replay<R> {
    records: Records<R>,
}

impl<R: BufRead> Replay<R> {
    /// Replays the capture read from `reader`.
    pub fn new(reader: R) -> Self {
        Replay {
            records: Records::new(reader),
        }
    }
}

impl<R: BufRead> Iterator for Replay<R> {
    type Item = Result<Change, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.records.next()? {
                Err(e) => return Some(Err(e)),
                Ok(record) => {
                    if let Some(change) = change_of(&record) {
                        return Some(Ok(change));
                    }
                }
            }
        }
    }
}

/// Opens a capture file for replay.
pub fn replay_file(path: &Path) -> Result<Replay<BufReader<File>>, CaptureError> {
    let file = File::open(path).map_err(|source| CaptureError::Open {
        path: path.to_owned(),
        source,
    })?;
    Ok(Replay::new(BufReader::new(file)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pbx::participant::{DnType, Participant, ParticipantStatus};
    use serde_json::json;

    /// A `Write` into shared memory, to read back what a writer wrote.
    #[derive(Clone, Default)]
    struct Memory(Arc<Mutex<Vec<u8>>>);

    impl Write for Memory {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + second).unwrap()
    }

    fn participant(id: u64, status: &str) -> Value {
        json!({"id": id, "status": status, "dn": "150", "party_caller_id": "0123456789",
               "party_dn_type": "Wexternalline", "callid": 1264, "legid": 1})
    }

    #[test]
    fn round_trip_reproduces_the_changes() {
        let memory = Memory::default();
        let writer = CaptureWriter::new(memory.clone(), "memory");
        let frame = |seq: u64, event_type: u8, id: u64| {
            format!(
                r#"{{"sequence":{seq},"event":{{"event_type":{event_type},"entity":"/callcontrol/150/participants/{id}","attached_data":null}}}}"#
            )
        };
        let snapshot = json!([
            {"dn": "150", "type": "Wextension", "devices": [], "participants": [participant(1, "Connected")]},
            {"dn": "callhook", "type": "Wroutepoint", "devices": [], "participants": []},
        ]);
        let records = vec![
            Record::Start {
                at: at(0),
                version: FORMAT_VERSION,
                base_url: "http://pbx/".into(),
                client_id: "callhook".into(),
            },
            Record::Token {
                at: at(0),
                status: 200,
                expires_in: Some(60),
                lifetime_s: Some(3600.0),
                error: None,
            },
            Record::SocketOpened {
                at: at(0),
                url: "ws://pbx/callcontrol/ws".into(),
            },
            Record::Get {
                at: at(1),
                path: "/callcontrol".into(),
                status: 200,
                body: Body::Json(snapshot),
                frame_at: None,
            },
            Record::frame(at(2), &frame(1, 0, 8)),
            Record::Get {
                at: at(2),
                path: "/callcontrol/150/participants/8".into(),
                status: 401,
                body: Body::Json(json!({"error":"invalid_token"})),
                frame_at: None,
            },
            Record::Get {
                at: at(3),
                path: "/callcontrol/150/participants/8".into(),
                status: 200,
                body: Body::Json(participant(8, "Ringing")),
                frame_at: None,
            },
            Record::frame(at(4), &frame(2, 0, 9)),
            Record::Get {
                at: at(4),
                path: "/callcontrol/150/participants/9".into(),
                status: 404,
                body: Body::Text(String::new()),
                frame_at: None,
            },
            Record::frame(at(5), &frame(3, 1, 8)),
            Record::frame(at(6), "{\"sequence\": this is not json"),
            Record::frame(at(7), &frame(5, 7, 0)),
            Record::Get {
                at: at(8),
                path: "/xapi/v1/Recordings?$top=5".into(),
                status: 200,
                body: Body::Json(json!({"value": []})),
                frame_at: None,
            },
            Record::Get {
                at: at(8),
                path: "/xapi/v1/Recordings/Pbx.DownloadRecording(recId=1)".into(),
                status: 200,
                body: Body::Size(44),
                frame_at: None,
            },
            Record::SocketClosed {
                at: at(9),
                reason: "closed by the PBX".into(),
            },
        ];
        for record in &records {
            writer.record(record);
        }
        let bytes = memory.0.lock().unwrap().clone();
        let read: Vec<Record> = Records::new(&bytes[..]).map(Result::unwrap).collect();
        assert_eq!(read, records, "records survive the round trip");

        let changes: Vec<Change> = Replay::new(&bytes[..]).map(Result::unwrap).collect();
        let p = |id: u64, status: ParticipantStatus| Participant {
            id,
            status,
            dn: "150".into(),
            party_caller_id: "0123456789".into(),
            party_dn_type: DnType::Wexternalline,
            callid: 1264,
            legid: 1,
            ..Participant::default()
        };
        assert_eq!(
            changes,
            vec![
                Change::Snapshot {
                    at: at(1),
                    dns: vec![
                        Dn {
                            dn: "150".into(),
                            dn_type: DnType::Wextension
                        },
                        Dn {
                            dn: "callhook".into(),
                            dn_type: DnType::Wroutepoint
                        },
                    ],
                    participants: vec![p(1, ParticipantStatus::Connected)],
                },
                Change::Upsert {
                    at: at(3),
                    participant: p(8, ParticipantStatus::Ringing)
                },
                Change::Remove {
                    at: at(4),
                    dn: "150".into(),
                    participant_id: 9
                },
                Change::Remove {
                    at: at(5),
                    dn: "150".into(),
                    participant_id: 8
                },
            ]
        );
    }

    #[test]
    fn skips_blank_lines_and_unknown_kinds_and_reports_bad_lines() {
        let text = "\n{\"kind\":\"from_the_future\",\"at\":\"2027-01-01T00:00:00Z\"}\nnot json\n\
                    {\"kind\":\"frame\",\"at\":\"2027-01-01T00:00:00Z\",\"text\":\"{\\\"sequence\\\":1,\\\"event\\\":{\\\"event_type\\\":1,\\\"entity\\\":\\\"/callcontrol/1/participants/2\\\"}}\"}\n";
        let items: Vec<_> = Replay::new(text.as_bytes()).collect();
        assert_eq!(items.len(), 2);
        assert!(
            matches!(items[0], Err(CaptureError::BadLine { line: 3, .. })),
            "{:?}",
            items[0]
        );
        assert!(matches!(
            &items[1],
            Ok(Change::Remove {
                participant_id: 2,
                ..
            })
        ));
    }

    #[test]
    fn redacts_secrets() {
        let mut value = json!({"access_token": "eyJ", "nested": [{"client_secret": "s", "Authorization": "Bearer x"}],
                               "refresh_token": null, "dn": "150"});
        assert!(redact(&mut value));
        assert_eq!(
            value,
            json!({"access_token": "[redacted]", "nested": [{"client_secret": "[redacted]", "Authorization": "[redacted]"}],
                   "refresh_token": null, "dn": "150"})
        );
        let mut clean = json!({"sequence": 1, "event": {"event_type": 0}});
        assert!(!redact(&mut clean));
    }

    #[test]
    fn frames_are_kept_verbatim_unless_redacted() {
        let text = r#"{"sequence":1,  "event":{"event_type":0}}"#;
        assert_eq!(
            Record::frame(at(0), text),
            Record::Frame {
                at: at(0),
                text: text.into()
            }
        );
        let Record::Frame { text: redacted, .. } = Record::frame(at(0), r#"{"token":"abc"}"#)
        else {
            unreachable!()
        };
        assert_eq!(redacted, r#"{"token":"[redacted]"}"#);
    }

    #[test]
    fn writes_to_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("capture.jsonl");
        let writer = CaptureWriter::create(&path).unwrap();
        writer.record(&Record::frame(
            at(0),
            r#"{"sequence":1,"event":{"event_type":1,"entity":"/callcontrol/1/participants/2"}}"#,
        ));
        let changes: Vec<_> = replay_file(&path).unwrap().map(Result::unwrap).collect();
        assert_eq!(
            changes,
            vec![Change::Remove {
                at: at(0),
                dn: "1".into(),
                participant_id: 2
            }]
        );
        assert!(matches!(
            replay_file(&dir.path().join("missing")),
            Err(CaptureError::Open { .. })
        ));
    }

    #[test]
    fn capture_files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new.jsonl");
        drop(CaptureWriter::create(&new).unwrap());
        assert_eq!(mode(&new), 0o600);
        let existing = dir.path().join("existing.jsonl");
        std::fs::write(&existing, "old capture\n").unwrap();
        std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(CaptureWriter::create(&existing).unwrap());
        assert_eq!(mode(&existing), 0o600);
        assert_eq!(std::fs::read(&existing).unwrap(), b"", "truncated");
    }
}
