//! The folder source: new `.wav` files in the PBX's recordings folder, for a host on the PBX.
//!
//! The folder holds one sub-folder per extension, with files named
//! `[<display name>]_<from>-<to>_<yyyyMMddHHmmss>(<callid>).wav` (`3cx-api.md`, section 5). A
//! scan reads only the sub-folders of the extensions of the call being waited for, and only files
//! modified since shortly before that call's first talk, so it stays cheap however much history
//! the folder holds; each file is looked at once (the watcher remembers it), except that a
//! file whose WAV structure is still incomplete and which was modified in the last
//! [`SETTLING`] is looked at again later: the PBX may still be writing it.
//!
//! A `notify` watcher on the folder (inotify on Linux) wakes waiters as soon as anything changes
//! there; if it cannot be set up (no folder yet, watch limit reached) the waiters' backoff timer
//! polls alone. A recording's start is the file name's time stamp in the configured time zone,
//! its end that plus the WAV's duration (or the file's modification time if the WAV cannot be
//! read: the conversion will then report it).

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::watch;

use super::matching::{Origin, RecordingMeta};
use super::wav::{self, WavProblem};
use super::xapi::SourceError;
use crate::calls::FinishedCall;

/// How long an incomplete WAV may be still being written.
pub const SETTLING: Duration = Duration::from_secs(5);

/// How long before a call's first talk a file may have been modified and still be its recording.
const LOOKBACK: Duration = Duration::from_secs(60);

/// The parts of a recording file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName {
    /// The calling number.
    pub from: String,
    /// The called number.
    pub to: String,
    /// The time stamp: when recording started.
    pub start: Timestamp,
    /// The bracketed number, taken to be the PBX call id.
    pub call_id: Option<u64>,
}

/// Parses `[<name>]_<from>-<to>_<yyyyMMddHHmmss>(<callid>).wav` with the stamp in `tz`.
/// The bracketed call id is optional; the display name may hold any characters.
pub fn parse_file_name(name: &str, tz: &TimeZone) -> Option<FileName> {
    let stem = name
        .len()
        .checked_sub(4)
        .filter(|&at| name.is_char_boundary(at) && name[at..].eq_ignore_ascii_case(".wav"))
        .map(|at| &name[..at])?;
    let (rest, call_id) = match stem.strip_suffix(')').and_then(|s| s.rsplit_once('(')) {
        Some((rest, id)) => (rest, Some(id.parse().ok()?)),
        None => (stem, None),
    };
    let (head, stamp) = rest.rsplit_once('_')?;
    if stamp.len() != 14 || !stamp.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let start = DateTime::strptime("%Y%m%d%H%M%S", stamp)
        .ok()?
        .to_zoned(tz.clone())
        .ok()?
        .timestamp();
    let numbers = match head.rfind("]_") {
        Some(at) => &head[at + 2..],
        None => head.split_once('_').map_or(head, |(_, numbers)| numbers),
    };
    let (from, to) = numbers.split_once('-')?;
    Some(FileName {
        from: from.to_owned(),
        to: to.to_owned(),
        start,
        call_id,
    })
}

/// Scans the recordings folder for new files and tells waiters when it changed.
pub(crate) struct FolderWatcher {
    root: PathBuf,
    tz: TimeZone,
    seen: Arc<Mutex<HashSet<PathBuf>>>,
    changes: watch::Sender<u64>,
    _watcher: Option<RecommendedWatcher>,
}

impl FolderWatcher {
    /// Watches `root`, whose file names carry time stamps in `tz`.
    pub fn new(root: PathBuf, tz: TimeZone) -> Self {
        let changes = watch::Sender::new(0u64);
        let watcher = {
            let changes = changes.clone();
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if event.is_ok() {
                    changes.send_modify(|n| *n = n.wrapping_add(1));
                }
            })
            .and_then(|mut watcher| {
                watcher.watch(&root, RecursiveMode::Recursive)?;
                Ok(watcher)
            })
        };
        let watcher = match watcher {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                tracing::warn!(folder = %root.display(), %error,
                    "cannot watch the recordings folder; polling it instead");
                None
            }
        };
        FolderWatcher {
            root,
            tz,
            seen: Arc::new(Mutex::new(HashSet::new())),
            changes,
            _watcher: watcher,
        }
    }

    /// A receiver that changes whenever something in the folder did.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// New recording files in the sub-folders of `call`'s extensions.
    pub async fn scan(&self, call: &FinishedCall) -> Result<Vec<RecordingMeta>, SourceError> {
        let mut extensions: Vec<String> = call.parts.iter().map(|p| p.extension.clone()).collect();
        extensions.sort();
        extensions.dedup();
        let since = call
            .parts
            .iter()
            .map(|p| p.talk_start)
            .min()
            .map_or(SystemTime::UNIX_EPOCH, SystemTime::from)
            .checked_sub(LOOKBACK)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let (root, tz, seen) = (self.root.clone(), self.tz.clone(), self.seen.clone());
        tokio::task::spawn_blocking(move || {
            let mut found = Vec::new();
            for extension in extensions {
                let dir = root.join(&extension);
                let entries = match std::fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(format!("cannot list {}: {e}", dir.display()).into()),
                };
                for entry in entries.flatten() {
                    let path = entry.path();
                    let modified = entry.metadata().and_then(|m| m.modified());
                    let Ok(modified) = modified else { continue };
                    // Taken at once, so that two waiters scanning together never both get it.
                    if modified < since || !seen.lock().expect("seen lock").insert(path.clone()) {
                        continue;
                    }
                    match look_at(&path, modified, &tz) {
                        Look::Later => {
                            seen.lock().expect("seen lock").remove(&path);
                        }
                        Look::Ignore => {}
                        Look::Recording(meta) => found.push(*meta),
                    }
                }
            }
            Ok(found)
        })
        .await
        .map_err(|e| SourceError::from(e.to_string()))?
    }
}

enum Look {
    /// Not a recording file (name or extension).
    Ignore,
    /// Possibly still being written.
    Later,
    /// A recording.
    Recording(Box<RecordingMeta>),
}

fn look_at(path: &Path, modified: SystemTime, tz: &TimeZone) -> Look {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Look::Ignore;
    };
    let Some(parsed) = parse_file_name(name, tz) else {
        return Look::Ignore;
    };
    let young = modified.elapsed().unwrap_or_default() < SETTLING;
    let probed = File::open(path)
        .map_err(WavProblem::Io)
        .and_then(|mut file| {
            let len = file.metadata().map_err(WavProblem::Io)?.len();
            wav::probe(&mut file, len)
        });
    let end = match probed {
        Ok(format) => {
            parsed.start + jiff::SignedDuration::try_from(format.duration()).unwrap_or_default()
        }
        Err(_) if young => return Look::Later,
        Err(_) => Timestamp::try_from(modified).unwrap_or(parsed.start),
    };
    Look::Recording(Box::new(RecordingMeta {
        origin: Origin::File(path.to_owned()),
        name: path.display().to_string(),
        from_dn: parsed.from.clone(),
        to_dn: parsed.to.clone(),
        from_number: parsed.from,
        to_number: parsed.to,
        start: parsed.start,
        end: end.max(parsed.start),
        pbx_call_id: parsed.call_id,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_recording_file_names() {
        let utc = TimeZone::UTC;
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        let cases = [
            (
                "[Mueller, Anna]_150-0123456789_20261124101530(1264).wav",
                Some(("150", "0123456789", at("2026-11-24T10:15:30Z"), Some(1264))),
            ),
            (
                "[A_b]_c-d]_+4930123-120_20261124101530.WAV",
                Some(("+4930123", "120", at("2026-11-24T10:15:30Z"), None)),
            ),
            ("[x]_1-2_2026112410153(5).wav", None),
            ("[x]_1-2_20261124101530(x).wav", None),
            ("[x]_12_20261124101530(5).wav", None),
            ("[x]_1-2_20261124101530(5).mp3", None),
        ];
        for (name, expected) in cases {
            let got = parse_file_name(name, &utc).map(|f| (f.from, f.to, f.start, f.call_id));
            let expected = expected.map(|(f, t, s, c)| (f.to_owned(), t.to_owned(), s, c));
            assert_eq!(got, expected, "{name}");
        }
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        assert_eq!(
            parse_file_name("[x]_1-2_20261124101530(5).wav", &berlin)
                .unwrap()
                .start,
            at("2026-11-24T09:15:30Z")
        );
    }
}
