//! The PBX's live state and its event bus.
//!
//! One [`Shared`] per simulator holds the directory, the live participants (by id, each with its
//! exact JSON), the published recordings and the token store, behind one mutex. Every change is
//! applied and announced under that lock, so the order of frames on the bus is the order of
//! changes in the state, and a client that fetches an entity after its event sees at least that
//! change. The bus is a broadcast channel of [`Frame`]s; every WebSocket holds a receiver and
//! numbers what it sends itself (a receiver that lags behind loses frames and shows a sequence
//! gap, exactly what a real client must cope with).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use crate::faults::{Faults, Repeat};
use crate::recordings::{RecordingInfo, StoredRecording};
use crate::scenario::RecordingPart;
use crate::server::token::TokenStore;
use crate::{DnEntry, ParticipantChange, SimConfig, wav};

/// Room on the bus: a client further behind than this loses frames (and sees a gap).
const BUS_CAPACITY: usize = 1 << 16;

/// What the bus carries to every WebSocket.
#[derive(Debug, Clone)]
pub(crate) enum Frame {
    /// An event frame; the socket adds the sequence number.
    Event {
        event_type: u32,
        entity: String,
        attached_data: Value,
    },
    /// A text frame sent verbatim (and numbered as a frame).
    Raw(String),
    /// Burn one sequence number without sending: the next frame shows a gap.
    SkipSequence,
    /// Close the socket now, with a close frame.
    Close,
    /// Drop the socket now, without a close frame (the client sees `1006`).
    Abort,
}

/// Everything the handlers, the player and the faults share.
pub(crate) struct Shared {
    pub config: SimConfig,
    pub tokens: Arc<TokenStore>,
    pub faults: Faults,
    pub bus: broadcast::Sender<Frame>,
    /// Open WebSockets.
    pub sockets: watch::Sender<usize>,
    /// `GET /callcontrol` snapshots served.
    pub snapshots: watch::Sender<u64>,
    /// The next recording's XAPI `Id`.
    next_recording: AtomicU64,
    pbx: Mutex<Pbx>,
}

#[derive(Default)]
struct Pbx {
    /// dn → type.
    directory: BTreeMap<String, String>,
    /// participant id → its JSON.
    participants: BTreeMap<u64, Value>,
    /// Participants whose entity (and snapshot entry) answers as if gone: the vanish fault.
    hidden: HashSet<u64>,
    /// participant id → when its last upsert went out (for [`crate::RepeatPhase::PerLeg`]).
    announced: HashMap<u64, tokio::time::Instant>,
    recordings: Vec<StoredRecording>,
}

/// The path of a participant as events name it.
pub(crate) fn entity(dn: &str, id: u64) -> String {
    format!("/callcontrol/{dn}/participants/{id}")
}

impl Shared {
    pub fn new(config: SimConfig) -> Arc<Shared> {
        let (bus, _) = broadcast::channel(BUS_CAPACITY);
        let tokens = Arc::new(TokenStore::new(
            &config.client_id,
            &config.client_secret,
            config.token_lifetime,
            config.expires_in_minutes,
            config.expires_in,
        ));
        let mut pbx = Pbx::default();
        pbx.directory
            .insert(config.client_id.clone(), "Wroutepoint".to_owned());
        for entry in &config.directory {
            pbx.directory
                .insert(entry.dn.clone(), entry.dn_type.clone());
        }
        Arc::new(Shared {
            faults: Faults::new(
                bus.clone(),
                tokens.clone(),
                config.repeat_unconnected,
                config.get_delay,
            ),
            tokens,
            bus,
            sockets: watch::Sender::new(0),
            snapshots: watch::Sender::new(0),
            next_recording: AtomicU64::new(1),
            pbx: Mutex::new(pbx),
            config,
        })
    }

    fn pbx(&self) -> std::sync::MutexGuard<'_, Pbx> {
        self.pbx.lock().expect("PBX state lock")
    }

    /// Makes DNs visible in the snapshot (idempotent).
    pub fn add_directory(&self, entries: &[DnEntry]) {
        let mut pbx = self.pbx();
        for entry in entries {
            pbx.directory
                .insert(entry.dn.clone(), entry.dn_type.clone());
        }
    }

    /// Applies one participant change and announces it.
    pub fn apply(&self, change: &ParticipantChange) {
        let mut pbx = self.pbx();
        match change {
            ParticipantChange::Upsert(participant) => {
                let id = participant["id"]
                    .as_u64()
                    .expect("expanded participants have ids");
                let dn = participant["dn"]
                    .as_str()
                    .expect("expanded participants have DNs");
                let path = entity(dn, id);
                pbx.participants.insert(id, participant.clone());
                pbx.announced.insert(id, tokio::time::Instant::now());
                if self.faults.take_vanish_next() {
                    pbx.hidden.insert(id);
                } else {
                    pbx.hidden.remove(&id);
                }
                let copies = if self.faults.duplicating() { 2 } else { 1 };
                for _ in 0..copies {
                    self.send(0, path.clone());
                }
            }
            ParticipantChange::Remove { dn, participant_id } => {
                pbx.participants.remove(participant_id);
                pbx.hidden.remove(participant_id);
                pbx.announced.remove(participant_id);
                self.send(1, entity(dn, *participant_id));
            }
        }
    }

    fn send(&self, event_type: u32, entity: String) {
        // No receiver (no socket open) is not an error: events are fire and forget.
        let _ = self.bus.send(Frame::Event {
            event_type,
            entity,
            attached_data: Value::Null,
        });
    }

    /// Repeats an upsert of every participant that is `Connected` or, for
    /// [`Repeat::Unconnected`], `Ringing` or `Dialing` (what 3CX repeats about every 750 ms).
    /// Only legs whose last upsert went out at least `due_after` ago are repeated (zero: all).
    pub fn repeat(&self, which: Repeat, due_after: std::time::Duration) {
        let now = tokio::time::Instant::now();
        let mut guard = self.pbx();
        let pbx = &mut *guard;
        for (id, participant) in &pbx.participants {
            let repeated = match which {
                Repeat::Connected => participant["status"] == "Connected",
                Repeat::Unconnected => {
                    participant["status"] == "Ringing" || participant["status"] == "Dialing"
                }
            };
            let due = pbx
                .announced
                .get(id)
                .is_none_or(|at| now.saturating_duration_since(*at) >= due_after);
            if repeated && due && !pbx.hidden.contains(id) {
                let dn = participant["dn"].as_str().unwrap_or_default();
                self.send(0, entity(dn, *id));
                pbx.announced.insert(*id, now);
            }
        }
    }

    /// DN `dn`'s object with `participants`, its visible participants.
    fn dn_json(dn: &str, dn_type: &str, participants: Vec<Value>) -> Value {
        let device = crate::scenario::device_id(dn, dn_type);
        let devices = if device.is_empty() {
            json!([])
        } else {
            json!([{"dn": dn, "device_id": device, "user_agent": "Yealink T46U"}])
        };
        json!({
            "dn": dn,
            "type": dn_type,
            "devices": devices,
            "participants": participants,
        })
    }

    fn participants_json(pbx: &Pbx, dn: &str) -> Vec<Value> {
        Self::visible(pbx)
            .filter(|(of, _)| *of == dn)
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// The participants the API client sees (not hidden, with a DN), by id, with their DN.
    fn visible(pbx: &Pbx) -> impl Iterator<Item = (&str, &Value)> {
        pbx.participants
            .iter()
            .filter(|(id, _)| !pbx.hidden.contains(id))
            .filter_map(|(_, p)| Some((p["dn"].as_str()?, p)))
    }

    /// `GET /callcontrol`: every visible DN with its participants.
    pub fn snapshot(&self) -> Vec<Value> {
        let pbx = self.pbx();
        let mut by_dn: HashMap<&str, Vec<Value>> = HashMap::new();
        for (dn, participant) in Self::visible(&pbx) {
            by_dn.entry(dn).or_default().push(participant.clone());
        }
        let all = pbx
            .directory
            .iter()
            .map(|(dn, t)| {
                let participants = by_dn.remove(dn.as_str()).unwrap_or_default();
                Self::dn_json(dn, t, participants)
            })
            .collect();
        drop(pbx);
        self.snapshots.send_modify(|n| *n += 1);
        all
    }

    /// `GET /callcontrol/{dn}`.
    pub fn dn(&self, dn: &str) -> Option<Value> {
        let pbx = self.pbx();
        let dn_type = pbx.directory.get(dn)?;
        Some(Self::dn_json(
            dn,
            dn_type,
            Self::participants_json(&pbx, dn),
        ))
    }

    /// `GET /callcontrol/{dn}/participants`.
    pub fn participants(&self, dn: &str) -> Option<Vec<Value>> {
        let pbx = self.pbx();
        pbx.directory
            .contains_key(dn)
            .then(|| Self::participants_json(&pbx, dn))
    }

    /// `GET /callcontrol/{dn}/participants/{id}`.
    pub fn participant(&self, dn: &str, id: u64) -> Option<Value> {
        let pbx = self.pbx();
        let participant = pbx.participants.get(&id)?;
        (participant["dn"] == dn && !pbx.hidden.contains(&id)).then(|| participant.clone())
    }

    /// Publishes the recording of `part`, talked from `start` to `end`: renders the WAV, writes
    /// it into the recordings folder when configured, then makes it visible to XAPI.
    pub fn publish_recording(
        &self,
        part: &RecordingPart,
        start: SystemTime,
        end: SystemTime,
    ) -> anyhow::Result<()> {
        let id = self.next_recording.fetch_add(1, Ordering::Relaxed);
        let length = end.duration_since(start).unwrap_or_default();
        let mut recording = StoredRecording::new(
            id,
            part,
            start,
            end,
            wav::tone(self.config.wav_format, length),
        );
        if let Some(field) = self.faults.switches().null_recording_field {
            recording.json[field.as_str()] = Value::Null;
        }
        if let Some(folder) = &self.config.recordings_folder {
            let bytes = self.recording_bytes(&recording);
            recording.write_into(folder, &bytes)?;
        }
        self.pbx().recordings.push(recording);
        Ok(())
    }

    /// The bytes served for a recording: its WAV, or garbage when the corrupt fault names it.
    fn recording_bytes(&self, recording: &StoredRecording) -> Vec<u8> {
        if self.faults.is_corrupt(recording.info.id) {
            wav::corrupt()
        } else {
            recording.wav.to_vec()
        }
    }

    /// Every published recording.
    pub fn recordings(&self) -> Vec<RecordingInfo> {
        self.pbx()
            .recordings
            .iter()
            .map(|r| r.info.clone())
            .collect()
    }

    /// The XAPI records of the published recordings.
    pub fn recording_records(&self) -> Vec<Value> {
        self.pbx()
            .recordings
            .iter()
            .map(|r| r.json.clone())
            .collect()
    }

    /// A recording's file name and bytes, for the download endpoint.
    pub fn recording_file(&self, id: u64) -> Option<(String, Vec<u8>)> {
        let pbx = self.pbx();
        let recording = pbx.recordings.iter().find(|r| r.info.id == id)?;
        Some((
            recording.file_name().to_owned(),
            self.recording_bytes(recording),
        ))
    }
}
