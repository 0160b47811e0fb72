//! Waiting for a finished call's recordings, from XAPI or the recordings folder.
//!
//! Recordings appear only after a call is completely over, usually 0.1–2 s later, sometimes
//! more; and the host learns that a call is over only after its grace period, so a recording
//! may also be there *before* its call is handed to [`Finder::wait_for`]. Hence one shared
//! **inbox**: every recording a source reports goes there, and each waiter claims the ones that
//! match its call ([`best_part`]); unclaimed ones stay for [`UNCLAIMED_TTL`] (at most
//! [`UNCLAIMED_MAX`]) for calls that are handed over later.
//!
//! A waiter looks at once, then again after 200 ms, doubling to at most 2 s between looks (the
//! folder source also looks as soon as its watcher reports a change), until:
//! - every talking part of the call has a recording (the usual end, a few hundred ms after the
//!   call is handed over); or
//! - [`SETTLE`] has passed since the first recording of the call turned up: the PBX publishes a
//!   call's recordings together, so parts still without one were not recorded (recording is
//!   configured per extension) and waiting the full limit would only delay the others; or
//! - the wait limit (`RecordingsConfig::wait_limit`, by default 120 s) is reached.

use std::sync::{Arc, Mutex};
use std::time::Duration;

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
}

enum Backend {
    Xapi(XapiPoller),
    Folder(FolderWatcher),
}

/// Finds the recordings of finished calls; shared by all waiters.
pub struct Finder {
    backend: Backend,
    inbox: Mutex<Vec<(RecordingMeta, Instant)>>,
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
        }
    }

    /// Waits up to `limit` for the recordings of `call`; see the module docs.
    pub async fn wait_for(&self, call: &FinishedCall, limit: Duration) -> Found {
        let started = Instant::now();
        let deadline = started + limit;
        let mut changes: Option<watch::Receiver<u64>> = match &self.backend {
            Backend::Xapi(_) => None,
            Backend::Folder(folder) => Some(folder.subscribe()),
        };
        let mut found: Vec<(usize, RecordingMeta)> = Vec::new();
        let mut last_error = None;
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
                }
            }
            found.extend(self.claim(call));
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
        }
    }

    /// The audio of a recording found by this finder.
    pub async fn audio(&self, recording: &RecordingMeta) -> Result<WavInput, SourceError> {
        match (&recording.origin, &self.backend) {
            (Origin::File(path), _) => Ok(WavInput::File(path.clone())),
            (Origin::Xapi(id), Backend::Xapi(poller)) => Ok(WavInput::Memory {
                name: recording.label(),
                bytes: poller.download(*id).await?,
            }),
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

    /// Takes the inbox's recordings that belong to `call`, dropping stale ones.
    fn claim(&self, call: &FinishedCall) -> Vec<(usize, RecordingMeta)> {
        let mut inbox = self.inbox.lock().expect("inbox lock");
        inbox.retain(|(_, seen)| seen.elapsed() < UNCLAIMED_TTL);
        if inbox.len() > UNCLAIMED_MAX {
            let excess = inbox.len() - UNCLAIMED_MAX;
            inbox.drain(..excess);
        }
        let mut claimed = Vec::new();
        inbox.retain(
            |(recording, _)| match best_part(&call.parts, call.pbx_call_id, recording) {
                Some(part) => {
                    claimed.push((part, recording.clone()));
                    false
                }
                None => true,
            },
        );
        claimed
    }
}
