//! Recordings as XAPI lists them and the recordings folder holds them.
//!
//! A recording is made per talking part of an extension (see `scenario::expand`) and published
//! when the whole call is over plus [`crate::SimConfig::recording_delay`]. Its XAPI record
//! follows `3cx-api.md` section 5; the `*DnType` fields are integers as field captures of V20
//! show them (`0` extension, `1` external line); the fields 3CX fills from what the simulator
//! does not model (DID numbers, participant ids, transcription, ...) are there as `null`, and
//! [`crate::Faults::null_recording_field`] nulls one that clients read. The file name follows
//! the spec's folder
//! model: `<dn>/[<display name>]_<from>-<to>_<yyyyMMddHHmmss>(<callid>).wav`, times in UTC.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::clock;
use crate::scenario::RecordingPart;

/// A recording the simulator has published.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingInfo {
    /// XAPI `Id`, counting from 1 per simulator.
    pub id: u64,
    /// The PBX call id of the call it belongs to.
    pub callid: u64,
    /// The extension whose part it is.
    pub dn: String,
    /// XAPI `RecordingUrl`: the path relative to the recordings folder.
    pub recording_url: String,
    /// When the extension started talking (wall clock, as played).
    pub start: SystemTime,
    /// When its part ended.
    pub end: SystemTime,
    /// Where the WAV was written, when [`crate::SimConfig::recordings_folder`] is set.
    pub file: Option<PathBuf>,
}

/// A published recording with its XAPI record and audio.
pub(crate) struct StoredRecording {
    pub info: RecordingInfo,
    pub json: Value,
    pub wav: Arc<Vec<u8>>,
}

impl StoredRecording {
    /// Describes the recording of `part`, talked from `start` to `end`.
    pub fn new(
        id: u64,
        part: &RecordingPart,
        start: SystemTime,
        end: SystemTime,
        wav: Vec<u8>,
    ) -> Self {
        let (from_number, to_number) = if part.inbound {
            (part.external.as_str(), part.dn.as_str())
        } else {
            (part.dn.as_str(), part.external.as_str())
        };
        let recording_url = format!(
            "{}/[{}]_{from_number}-{to_number}_{}({}).wav",
            part.dn,
            part.dn_name,
            clock::compact(start),
            part.callid
        );
        let external =
            json!({"Dn": part.trunk, "DnType": 1, "Number": part.external, "Name": part.external});
        let extension =
            json!({"Dn": part.dn, "DnType": 0, "Number": part.dn, "Name": part.dn_name});
        let (from, to, call_type) = if part.inbound {
            (external, extension, "InboundExternal")
        } else {
            (extension, external, "OutboundExternal")
        };
        let json = json!({
            "Id": id,
            "RecordingUrl": recording_url,
            "StartTime": clock::iso8601(start),
            "EndTime": clock::iso8601(end),
            "FromDn": from["Dn"],
            "FromDnType": from["DnType"],
            "FromCallerNumber": from["Number"],
            "FromDisplayName": from["Name"],
            "ToDn": to["Dn"],
            "ToDnType": to["DnType"],
            "ToCallerNumber": to["Number"],
            "ToDisplayName": to["Name"],
            "CallType": call_type,
            "IsArchived": false,
            "ArchivedUrl": null,
            "FromDidNumber": null,
            "ToDidNumber": null,
            "FromIdParticipant": null,
            "ToIdParticipant": null,
            "RefParticipantId": null,
            "IsTranscribed": false,
            "Transcription": null,
            "Summary": null,
            "Sentiment": null,
            "CreationMethod": null,
            "CreationType": null,
        });
        StoredRecording {
            info: RecordingInfo {
                id,
                callid: part.callid,
                dn: part.dn.clone(),
                recording_url,
                start,
                end,
                file: None,
            },
            json,
            wav: Arc::new(wav),
        }
    }

    /// The file name alone, for `Content-Disposition`.
    pub fn file_name(&self) -> &str {
        self.info
            .recording_url
            .rsplit('/')
            .next()
            .unwrap_or_default()
    }

    /// Writes the WAV under `folder` (write to a temporary name, then rename, so a watcher never
    /// sees a half-written file) and remembers where.
    pub fn write_into(&mut self, folder: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let path = folder.join(&self.info.recording_url);
        let dir = path.parent().unwrap_or(folder);
        std::fs::create_dir_all(dir)?;
        let partial = dir.join(format!(".{}.partial", self.info.id));
        std::fs::write(&partial, bytes)?;
        std::fs::rename(&partial, &path)?;
        self.info.file = Some(path);
        Ok(())
    }
}
