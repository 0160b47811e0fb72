//! Replay: a capture ([`super::capture`]) read back as the [`Change`]s it meant, the same
//! stream the live connector produced (see the capture format's documentation for why).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use super::capture::{Body, CaptureError, Record};
use super::rest::{parse_participant, parse_snapshot};
use super::socket::{Entity, Event, parse_frame};
use crate::callcontrol::Change;

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
                return Some(Change::snapshot(*at, parsed.dns));
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
    use crate::callcontrol::Dn;
    use crate::callcontrol::{DnType, Participant, ParticipantStatus};
    use crate::pbx::capture::{CaptureWriter, FORMAT_VERSION, redact};
    use jiff::Timestamp;
    use serde_json::Value;
    use serde_json::json;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

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
