//! Waiting for a finished call's recordings, from XAPI or the recordings folder.
//!
//! Recordings appear only after a call is completely over, usually 0.1–2 s later, sometimes
//! more; and the host learns that a call is over only after its grace period, so a recording
//! may also be there *before* its call is handed to [`Finder::wait_for`]. Hence one shared
//! **inbox**: every recording a source reports goes there, and each waiter claims the ones that
//! match its call ([`best_part`]) unless another call being waited for fits them better (so a
//! recording goes to the call it overlaps most, and the folder's bracketed call id breaks a
//! tie); unclaimed ones stay for [`UNCLAIMED_TTL`] (at most [`UNCLAIMED_MAX`]) for calls that
//! are handed over later.
//!
//! A waiter looks at once, then again after 200 ms, doubling to at most 2 s between looks (the
//! folder source also looks as soon as its watcher reports a change), until:
//! - every talking part of the call has a recording (the usual end, a few hundred ms after the
//!   call is handed over); or
//! - [`SETTLE`] has passed since the first recording of the call turned up: the PBX publishes a
//!   call's recordings together, so parts still without one were not recorded (recording is
//!   configured per extension) and waiting the full limit would only delay the others; or
//! - the wait limit (`RecordingsConfig::wait_limit`, by default 120 s) is reached.
//!
//! [`Found::answered`] tells the two endings apart that matter to the recording job: every look
//! of the wait was answered (nothing appeared: the call was not recorded), or some look failed
//! (the PBX could not be asked, so nothing can be concluded and the job retries).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio::time::Instant;

use super::convert::WavInput;
use super::folder::FolderWatcher;
use super::matching::{Origin, RecordingMeta, best_part};
use super::xapi::{RecordingSource, SourceError, XapiPoller};
use crate::calls::FinishedCall;

/// The first pause between looks.
pub const FIRST_DELAY: Duration = Duration::from_millis(200);
/// The longest pause between looks.
pub const MAX_DELAY: Duration = Duration::from_secs(2);
/// How long after a call's first recording turned up the others may still come.
pub const SETTLE: Duration = Duration::from_secs(10);
/// How long an unclaimed recording waits for its call.
pub const UNCLAIMED_TTL: Duration = Duration::from_secs(600);
/// The most unclaimed recordings kept (the oldest go first).
pub const UNCLAIMED_MAX: usize = 10_000;

/// What waiting for a call's recordings gave.
#[derive(Debug, Clone)]
pub struct Found {
    /// The recordings with the index of the part each belongs to, in the order they were found.
    pub recordings: Vec<(usize, RecordingMeta)>,
    /// How long the wait took.
    pub waited: Duration,
    /// The last error of the source during the wait, if any.
    pub last_error: Option<String>,
    /// Whether every look of the wait was answered; `false` when some look failed (PBX
    /// unreachable, HTTP 5xx, XAPI `403`, folder unreadable).
    pub answered: bool,
}

/// A recording's audio, ready to convert; a downloaded file is deleted when this is dropped.
pub struct Audio {
    /// The WAV file.
    pub input: WavInput,
    _temp: Option<tempfile::TempPath>,
}

/// A download passed the size limit (`RecordingsConfig::max_download_bytes`); it was stopped
/// there and its partial file deleted.
#[derive(Debug, thiserror::Error)]
#[error(
    "{recording} is larger than the download limit of {} MiB ({limit} bytes); it was not \
     downloaded",
    limit / (1024 * 1024)
)]
pub struct TooLarge {
    /// The recording's label.
    pub recording: String,
    /// The limit in bytes.
    pub limit: u64,
}

enum Backend {
    Xapi(XapiPoller),
    Folder(FolderWatcher),
}

/// Finds the recordings of finished calls; shared by all waiters.
pub struct Finder {
    backend: Backend,
    inbox: Mutex<Vec<(RecordingMeta, Instant)>>,
    /// The calls being waited for, by ticket.
    waiting: Mutex<BTreeMap<u64, FinishedCall>>,
    tickets: AtomicU64,
}

/// A call's place among the calls being waited for; leaves when dropped (also when the
/// waiting future is dropped).
struct Waiting<'a> {
    finder: &'a Finder,
    ticket: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut waiting = self.finder.waiting.lock().expect("waiting lock");
        waiting.remove(&self.ticket);
    }
}

impl Finder {
    /// Finds recordings through XAPI.
    pub fn xapi(client: Arc<dyn RecordingSource>) -> Finder {
        Finder::with(Backend::Xapi(XapiPoller::new(client)))
    }

    /// Finds recordings in the PBX's recordings `folder`, whose file names carry time stamps in
    /// `tz`.
    pub fn folder(folder: std::path::PathBuf, tz: jiff::tz::TimeZone) -> Finder {
        Finder::with(Backend::Folder(FolderWatcher::new(folder, tz)))
    }

    fn with(backend: Backend) -> Finder {
        Finder {
            backend,
            inbox: Mutex::new(Vec::new()),
            waiting: Mutex::new(BTreeMap::new()),
            tickets: AtomicU64::new(0),
        }
    }

    /// XAPI rows skipped so far because they cannot be matched to a call (no usable `Id`, or
    /// the start or end time unknown); always 0 for the folder source.
    pub fn skipped_recordings(&self) -> u64 {
        match &self.backend {
            Backend::Xapi(poller) => poller.skipped(),
            Backend::Folder(_) => 0,
        }
    }

    /// Waits up to `limit` for the recordings of `call`; see the module docs.
    pub async fn wait_for(&self, call: &FinishedCall, limit: Duration) -> Found {
        let started = Instant::now();
        let deadline = started + limit;
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        self.waiting
            .lock()
            .expect("waiting lock")
            .insert(ticket, call.clone());
        let _waiting = Waiting {
            finder: self,
            ticket,
        };
        let mut changes: Option<watch::Receiver<u64>> = match &self.backend {
            Backend::Xapi(_) => None,
            Backend::Folder(folder) => Some(folder.subscribe()),
        };
        let mut found: Vec<(usize, RecordingMeta)> = Vec::new();
        let mut last_error = None;
        let mut answered = true;
        let mut settle_until: Option<Instant> = None;
        let mut delay = FIRST_DELAY;
        loop {
            if let Some(changes) = &mut changes {
                changes.borrow_and_update();
            }
            let fresh = match &self.backend {
                Backend::Xapi(poller) => poller.poll().await,
                Backend::Folder(folder) => folder.scan(call).await,
            };
            match fresh {
                Ok(fresh) => self.offer(fresh),
                Err(error) => {
                    tracing::debug!(%error, "looking for recordings failed; trying again");
                    last_error = Some(error.to_string());
                    answered = false;
                }
            }
            found.extend(self.claim(ticket, call));
            let now = Instant::now();
            let covered = (0..call.parts.len()).all(|i| found.iter().any(|(p, _)| *p == i));
            if !found.is_empty() {
                settle_until.get_or_insert(now + SETTLE);
            }
            let until = settle_until.map_or(deadline, |settle| settle.min(deadline));
            if covered || now >= until {
                break;
            }
            let sleep = tokio::time::sleep_until((now + delay).min(until));
            match &mut changes {
                Some(rx) => tokio::select! {
                    _ = sleep => {}
                    changed = rx.changed() => if changed.is_err() { changes = None },
                },
                None => sleep.await,
            }
            delay = (delay * 2).min(MAX_DELAY);
        }
        Found {
            recordings: found,
            waited: started.elapsed(),
            last_error,
            answered,
        }
    }

    /// The audio of a recording found by this finder: the PBX's file (folder source), or the
    /// download streamed into a temporary file in `dir` (XAPI source), refused as soon as it
    /// passes `max_bytes` ([`TooLarge`]). A failed write (disk full) is an [`std::io::Error`].
    pub async fn audio(
        &self,
        recording: &RecordingMeta,
        dir: &Path,
        max_bytes: u64,
    ) -> Result<Audio, SourceError> {
        match (&recording.origin, &self.backend) {
            (Origin::File(path), _) => Ok(Audio {
                input: WavInput::File(path.clone()),
                _temp: None,
            }),
            (Origin::Xapi(id), Backend::Xapi(poller)) => {
                let mut chunks = poller.download(*id).await?;
                let temp = tempfile::Builder::new()
                    .prefix(".download-")
                    .suffix(".wav.partial")
                    .tempfile_in(dir)?;
                let mut file = tokio::fs::File::from_std(temp.reopen()?);
                let mut size: u64 = 0;
                while let Some(chunk) = chunks.next().await {
                    let chunk = chunk?;
                    size += chunk.len() as u64;
                    if size > max_bytes {
                        return Err(Box::new(TooLarge {
                            recording: recording.label(),
                            limit: max_bytes,
                        }));
                    }
                    file.write_all(&chunk).await?;
                }
                file.flush().await?;
                Ok(Audio {
                    input: WavInput::Downloaded {
                        name: recording.label(),
                        path: temp.path().to_owned(),
                    },
                    _temp: Some(temp.into_temp_path()),
                })
            }
            (Origin::Xapi(_), Backend::Folder(_)) => {
                Err("an XAPI recording cannot be fetched by the folder source".into())
            }
        }
    }

    /// Puts newly seen recordings into the inbox.
    fn offer(&self, fresh: Vec<RecordingMeta>) {
        if fresh.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut inbox = self.inbox.lock().expect("inbox lock");
        inbox.extend(fresh.into_iter().map(|r| (r, now)));
    }

    /// Takes the inbox's recordings that belong to `call` (waiting under `ticket`) and that no
    /// other call being waited for fits better, dropping stale ones.
    fn claim(&self, ticket: u64, call: &FinishedCall) -> Vec<(usize, RecordingMeta)> {
        let mut inbox = self.inbox.lock().expect("inbox lock");
        inbox.retain(|(_, seen)| seen.elapsed() < UNCLAIMED_TTL);
        if inbox.len() > UNCLAIMED_MAX {
            let excess = inbox.len() - UNCLAIMED_MAX;
            inbox.drain(..excess);
        }
        let waiting = self.waiting.lock().expect("waiting lock");
        let fits_better = |recording: &RecordingMeta, fit| {
            waiting.iter().any(|(other, other_call)| {
                *other != ticket
                    && best_part(&other_call.parts, other_call.pbx_call_id, recording)
                        .is_some_and(|(_, other_fit)| other_fit > fit)
            })
        };
        let mut claimed = Vec::new();
        inbox.retain(
            |(recording, _)| match best_part(&call.parts, call.pbx_call_id, recording) {
                Some((part, fit)) if !fits_better(recording, fit) => {
                    claimed.push((part, recording.clone()));
                    false
                }
                _ => true,
            },
        );
        claimed
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use jiff::tz::TimeZone;

    use super::*;
    use crate::calls::CallPart;
    use crate::calls::event::CallId;

    /// One second of 8 kHz 16-bit mono silence as a WAV file.
    fn second_of_silence() -> Vec<u8> {
        let data = vec![0u8; 16_000];
        let mut wav = b"RIFF".to_vec();
        wav.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        wav.extend_from_slice(b"WAVEfmt \x10\0\0\0\x01\0\x01\0");
        wav.extend_from_slice(&8000u32.to_le_bytes());
        wav.extend_from_slice(&16_000u32.to_le_bytes());
        wav.extend_from_slice(b"\x02\0\x10\0data");
        wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
        wav.extend_from_slice(&data);
        wav
    }

    /// A folder with one recording of extension 120 talking to 0301234567 for the second
    /// starting at `start`, whose bracketed number is `bracketed`.
    fn folder_with_recording(start: Timestamp, bracketed: u64) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("120")).unwrap();
        let stamp = start.strftime("%Y%m%d%H%M%S");
        let name = format!("[Mueller, Anna]_0301234567-120_{stamp}({bracketed}).wav");
        std::fs::write(root.path().join("120").join(name), second_of_silence()).unwrap();
        root
    }

    /// A call in which 120 talked to 0301234567 for the second starting at `start`.
    fn call(pbx_call_id: u64, start: Timestamp) -> FinishedCall {
        FinishedCall {
            pbx_call_id,
            parts: vec![CallPart {
                id: CallId {
                    stamp: "270115080000".to_owned(),
                    pbx_call_id,
                    link: 1,
                },
                extension: "120".to_owned(),
                other_number: "0301234567".to_owned(),
                talk_start: start,
                talk_end: start + jiff::SignedDuration::from_secs(1),
            }],
            last_end: None,
        }
    }

    fn now() -> Timestamp {
        Timestamp::from_second(Timestamp::now().as_second()).unwrap()
    }

    #[tokio::test]
    async fn a_file_naming_another_call_id_still_matches() {
        let start = now();
        let root = folder_with_recording(start, 999);
        let finder = Finder::folder(root.path().to_owned(), TimeZone::UTC);
        let found = finder
            .wait_for(&call(501, start), Duration::from_secs(2))
            .await;
        let claimed: Vec<(usize, Option<u64>)> = found
            .recordings
            .iter()
            .map(|(part, r)| (*part, r.pbx_call_id))
            .collect();
        assert_eq!(claimed, [(0, Some(999))]);
    }

    #[tokio::test]
    async fn the_call_id_breaks_a_tie_between_waiting_calls() {
        let start = now();
        let root = folder_with_recording(start, 502);
        let finder = Finder::folder(root.path().to_owned(), TimeZone::UTC);
        let limit = Duration::from_secs(1);
        let (call_a, call_b) = (call(501, start), call(502, start));
        let (a, b) = tokio::join!(
            finder.wait_for(&call_a, limit),
            finder.wait_for(&call_b, limit)
        );
        assert_eq!(a.recordings.len(), 0, "{a:?}");
        assert_eq!(b.recordings.len(), 1, "{b:?}");
        assert!(finder.waiting.lock().unwrap().is_empty(), "both left");
    }
}
