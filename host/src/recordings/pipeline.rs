//! [`Recorder`]: from a finished call to its `recording` event (or its failure report).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::config::{RecordingsConfig, SourceKind};
use super::convert::{ConvertError, Converted, Converter};
use super::links::Links;
use super::matching::RecordingMeta;
use super::serve;
use super::sources::{Finder, TooLarge};
use super::store::Store;
use super::xapi::{RecordingSource, is_outage};
use crate::calls::FinishedCall;
use crate::calls::event::{CallId, RecordingPart, RecordingReady};

/// How often a recording's download is tried at once, before the job waits for its next try
/// (when the PBX could not be asked) or reports it as failed (when the PBX answered).
pub const DOWNLOAD_ATTEMPTS: u32 = 3;
/// The pause after the first failed download; it grows linearly.
const DOWNLOAD_RETRY_DELAY: Duration = Duration::from_secs(1);
/// The first pause of a recording job after the PBX could not be asked or a file could not be
/// stored; it doubles up to [`RETRY_MAX_DELAY`], for `RecordingsConfig::retry_for`.
pub const RETRY_FIRST_DELAY: Duration = Duration::from_secs(10);
/// The longest pause between two tries of a recording job.
pub const RETRY_MAX_DELAY: Duration = Duration::from_secs(600);

/// The recordings pipeline could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    /// The MP3 folder or its link key could not be created or read.
    #[error("cannot use the MP3 folder {dir}: {source}")]
    Store {
        /// The folder.
        dir: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `SOURCE=xapi` but no XAPI client was given.
    #[error("the recordings source is XAPI but no XAPI client was given")]
    NoXapiClient,
}

/// What became of one recording that could not be delivered.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// Its audio could not be fetched from the PBX.
    #[error("cannot download {recording}: {detail}")]
    Download {
        /// The recording's label.
        recording: String,
        /// The source's error.
        detail: String,
        /// Whether the PBX could not be asked (unreachable, HTTP 5xx, XAPI `403`, a local I/O
        /// error), so that a later try may work; `false` when the PBX answered (no such file).
        transient: bool,
    },
    /// Its WAV could not be converted (corrupt, unsupported, disk full, ...).
    #[error(transparent)]
    Convert(#[from] ConvertError),
    /// It failed for a reason that may pass (see [`RecordingError::is_transient`]) and kept
    /// failing until the job's retry time (`RecordingsConfig::retry_for`) ran out.
    #[error("gave up after retrying for {retried} since the call ended: {last}")]
    GaveUp {
        /// How long the job retried, for humans (`6 h`).
        retried: String,
        /// The last error.
        last: Box<RecordingError>,
    },
}

impl RecordingError {
    /// Whether a later try may succeed: the PBX could not be asked, or a file could not be
    /// read or written (disk full). A corrupt or unsupported WAV, or a recording the PBX says it
    /// has no file for, is final.
    pub fn is_transient(&self) -> bool {
        match self {
            RecordingError::Download { transient, .. } => *transient,
            RecordingError::Convert(ConvertError::Read { .. } | ConvertError::Write { .. }) => true,
            RecordingError::Convert(_) | RecordingError::GaveUp { .. } => false,
        }
    }
}

/// A recording of a call that is reported as failed rather than silently dropped.
#[derive(Debug)]
pub struct RecordingFailure {
    /// The part it belongs to.
    pub part: CallId,
    /// The MP3 name it would have had.
    pub file: String,
    /// Why it failed.
    pub error: RecordingError,
}

/// What became of a finished call's recordings.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "one outcome per finished call, moved once: boxing the event would buy nothing"
)]
pub enum Outcome {
    /// At least one MP3 is ready: deliver `event`. `failures` lists the call's recordings that
    /// could not be converted (the event carries the others).
    Ready {
        /// The `recording` event for the plugins.
        event: RecordingReady,
        /// Recordings of the call that failed.
        failures: Vec<RecordingFailure>,
    },
    /// Recordings were found but none could be converted.
    Failed {
        /// The call id with the link of the last part.
        id: CallId,
        /// Every recording, each with its error.
        failures: Vec<RecordingFailure>,
    },
    /// No recording turned up within the wait limit although the PBX answered every look (the
    /// extensions may not be recorded); or the PBX could not be asked until the job's retry
    /// time ran out (then `last_error` starts with `gave up after retrying`).
    NotFound {
        /// The call id with the link of the last part.
        id: CallId,
        /// How long was waited.
        waited: Duration,
        /// The source's last error, if looking failed.
        last_error: Option<String>,
    },
    /// The call has no talking part, so there is nothing to wait for.
    NothingToRecord,
}

/// Turns finished calls into `recording` events; see the module docs. Cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

struct Inner {
    finder: Finder,
    converter: Converter,
    store: Store,
    links: Links,
    wait_limit: Duration,
    retry_for: Duration,
    max_download_bytes: u64,
}

impl Recorder {
    /// Sets up the pipeline for `config`: opens (creates) the MP3 folder, loads or makes the
    /// link key, and starts watching the recordings folder (`SOURCE=folder`) or uses `xapi`
    /// (`SOURCE=xapi`, where it is required).
    pub fn new(
        config: &RecordingsConfig,
        xapi: Option<Arc<dyn RecordingSource>>,
    ) -> Result<Recorder, RecorderError> {
        let store_error = |source| RecorderError::Store {
            dir: config.mp3_dir.clone(),
            source,
        };
        let store = Store::open(&config.mp3_dir).map_err(store_error)?;
        let key = match (&config.signing_key, config.sign_links) {
            (_, false) => None,
            (Some(key), true) => Some(key.as_bytes().to_vec()),
            (None, true) => Some(store.link_key().map_err(store_error)?),
        };
        let finder = match config.source {
            SourceKind::Xapi => Finder::xapi(xapi.ok_or(RecorderError::NoXapiClient)?),
            SourceKind::Folder => {
                Finder::folder(config.folder.clone(), config.folder_time_zone.clone())
            }
        };
        Ok(Recorder {
            inner: Arc::new(Inner {
                finder,
                converter: Converter::new(config.bitrate_kbps, config.parallel_conversions),
                store,
                links: Links::new(&config.public_url, key, config.link_lifetime),
                wait_limit: config.wait_limit,
                retry_for: config.retry_for,
                max_download_bytes: config.max_download_bytes,
            }),
        })
    }

    /// The router serving this recorder's MP3s at `/webapi/recording/{file}`.
    pub fn router(&self) -> Router {
        serve::router(self.inner.store.clone(), self.inner.links.clone())
    }

    /// The MP3 folder.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The link maker.
    pub fn links(&self) -> &Links {
        &self.inner.links
    }

    /// XAPI recordings skipped so far because they cannot be matched to a call (a row without
    /// a usable `Id`, or with its start or end time unknown), for `/metrics`; each is logged
    /// once. Always 0 with the folder source.
    pub fn skipped_recordings(&self) -> u64 {
        self.inner.finder.skipped_recordings()
    }

    /// Waits for the recordings of `call`, converts them and makes the `recording` event.
    ///
    /// Files are named per part (`{part id}-{n}.mp3`, `n` in order of recording start) and
    /// listed part by part in the order the parts ended; the event's id is the last part's.
    /// Downloads and conversions of one call run concurrently (conversions within the
    /// converter's bound); a failed download is tried [`DOWNLOAD_ATTEMPTS`] times at once.
    ///
    /// **Outages.** A wait in which some look failed (the PBX unreachable, HTTP 5xx, XAPI
    /// `403`) proves nothing, so it is not the end of the job: the job waits again after a
    /// pause ([`RETRY_FIRST_DELAY`], doubling to [`RETRY_MAX_DELAY`]) until
    /// `RecordingsConfig::retry_for` (by default 6 h) after the call's end. Likewise a
    /// recording whose download or conversion failed for a reason that may pass
    /// ([`RecordingError::is_transient`]: PBX unreachable, disk full) is tried again. The first
    /// failure of a job is logged as a warning, the give-up as an error. The deadline is
    /// counted from the call's end, so a job resumed after a restart keeps it.
    pub async fn handle(&self, call: &FinishedCall) -> Outcome {
        let Some(last) = call.parts.last() else {
            return Outcome::NothingToRecord;
        };
        let mut retry = Retry::new(call, self.inner.retry_for);
        let found = loop {
            let found = self
                .inner
                .finder
                .wait_for(call, self.inner.wait_limit)
                .await;
            if !found.recordings.is_empty() || found.answered {
                break found;
            }
            let error = found.last_error.unwrap_or_default();
            if !retry
                .pause("cannot ask the PBX for the call's recordings", &error)
                .await
            {
                return Outcome::NotFound {
                    id: last.id.clone(),
                    waited: retry.started.elapsed(),
                    last_error: Some(format!(
                        "gave up after retrying for {} since the call ended: {error}",
                        for_humans(retry.retry_for)
                    )),
                };
            }
        };
        if found.recordings.is_empty() {
            return Outcome::NotFound {
                id: last.id.clone(),
                waited: retry.started.elapsed(),
                last_error: found.last_error,
            };
        }
        let mut recordings = found.recordings;
        recordings.sort_by_key(|(part, r)| (*part, r.start));
        let mut counters: BTreeMap<&CallId, usize> = BTreeMap::new();
        let mut slots = Vec::new();
        for (part, _) in &recordings {
            let id = &call.parts[*part].id;
            let n = counters.entry(id).or_default();
            *n += 1;
            slots.push((id.clone(), Store::file_name(id, *n)));
        }
        let mut results: Vec<Option<Result<Converted, RecordingError>>> =
            slots.iter().map(|_| None).collect();
        let mut pending: Vec<usize> = (0..slots.len()).collect();
        loop {
            let mut tasks = JoinSet::new();
            for &i in &pending {
                let inner = self.inner.clone();
                let recording = recordings[i].1.clone();
                let file = slots[i].1.clone();
                tasks.spawn(async move { (i, inner.fetch_and_convert(&recording, &file).await) });
            }
            for &i in &pending {
                results[i] = None;
            }
            while let Some(joined) = tasks.join_next().await {
                // A panicking task loses its slot; it is reported below as aborted.
                if let Ok((i, result)) = joined {
                    results[i] = Some(result);
                }
            }
            pending.retain(|&i| matches!(&results[i], Some(Err(e)) if e.is_transient()));
            let Some(&first) = pending.first() else {
                break;
            };
            let error = match &results[first] {
                Some(Err(error)) => error.to_string(),
                _ => String::new(),
            };
            if !retry
                .pause("cannot fetch or store the call's recordings", &error)
                .await
            {
                let retried = for_humans(retry.retry_for);
                for &i in &pending {
                    if let Some(Err(error)) = results[i].take() {
                        results[i] = Some(Err(RecordingError::GaveUp {
                            retried: retried.clone(),
                            last: Box::new(error),
                        }));
                    }
                }
                break;
            }
        }
        let mut files = Vec::new();
        let mut parts: Vec<RecordingPart> = Vec::new();
        let mut failures = Vec::new();
        for ((part, file), result) in slots.into_iter().zip(results) {
            let result = result.unwrap_or_else(|| {
                Err(RecordingError::Convert(ConvertError::Aborted {
                    input: file.clone(),
                    detail: "the task panicked".to_owned(),
                }))
            });
            match result {
                Ok(_) => {
                    let link = self.inner.links.url(&file);
                    files.push(link.clone());
                    match parts.iter_mut().find(|p| p.id == part) {
                        Some(entry) => entry.files.push(link),
                        None => parts.push(RecordingPart {
                            user: call
                                .parts
                                .iter()
                                .find(|p| p.id == part)
                                .map(|p| p.extension.clone())
                                .unwrap_or_default(),
                            id: part,
                            files: vec![link],
                        }),
                    }
                }
                Err(error) => {
                    tracing::warn!(%part, %file, %error, "a recording could not be converted");
                    failures.push(RecordingFailure { part, file, error });
                }
            }
        }
        if files.is_empty() {
            return Outcome::Failed {
                id: last.id.clone(),
                failures,
            };
        }
        Outcome::Ready {
            event: RecordingReady {
                id: last.id.clone(),
                files,
                last_end: call.last_end.clone(),
                parts,
            },
            failures,
        }
    }
}

/// The retry state of one recording job: its deadline (`retry_for` after the call's end) and
/// its next pause.
struct Retry {
    pbx_call_id: u64,
    started: Instant,
    deadline: Instant,
    retry_for: Duration,
    delay: Duration,
    failures: u32,
}

impl Retry {
    fn new(call: &FinishedCall, retry_for: Duration) -> Retry {
        let now = Instant::now();
        // Counted from the call's end (never from the future, whatever the clocks say), so a
        // job resumed after a restart keeps its deadline.
        let since_end = call
            .parts
            .iter()
            .map(|part| part.talk_end)
            .max()
            .and_then(|end| Duration::try_from(jiff::Timestamp::now().duration_since(end)).ok())
            .unwrap_or(Duration::ZERO);
        Retry {
            pbx_call_id: call.pbx_call_id,
            started: now,
            deadline: now
                .checked_add(retry_for.saturating_sub(since_end))
                .unwrap_or(now + RETRY_MAX_DELAY * 1000),
            retry_for,
            delay: RETRY_FIRST_DELAY,
            failures: 0,
        }
    }

    /// After a failure (`what`, `error`): sleeps until the next try and returns `true`, or
    /// returns `false` when the deadline has passed. Logs the job's first failure and the
    /// give-up.
    async fn pause(&mut self, what: &str, error: &str) -> bool {
        self.failures += 1;
        let now = Instant::now();
        let retry_for = for_humans(self.retry_for);
        if now >= self.deadline {
            tracing::error!(
                pbx_call_id = self.pbx_call_id,
                error,
                tries = self.failures,
                "{what}; gave up after retrying for {retry_for} since the call ended \
                 (recordings.retry_hours)"
            );
            return false;
        }
        if self.failures == 1 {
            tracing::warn!(
                pbx_call_id = self.pbx_call_id,
                error,
                "{what}; the recording job is kept and tried again with backoff for up to \
                 {retry_for} after the call ended"
            );
        } else {
            tracing::debug!(
                pbx_call_id = self.pbx_call_id,
                error,
                tries = self.failures,
                "{what}; trying again"
            );
        }
        tokio::time::sleep_until((now + self.delay).min(self.deadline)).await;
        self.delay = (self.delay * 2).min(RETRY_MAX_DELAY);
        true
    }
}

/// `6 h`, `90 min`, `45 s`.
fn for_humans(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0..120 => format!("{secs} s"),
        120..7200 => format!("{} min", secs / 60),
        _ if secs.is_multiple_of(3600) => format!("{} h", secs / 3600),
        _ => format!("{:.1} h", duration.as_secs_f64() / 3600.0),
    }
}

impl Inner {
    async fn fetch_and_convert(
        &self,
        recording: &RecordingMeta,
        file: &str,
    ) -> Result<Converted, RecordingError> {
        let mut attempt = 1;
        let audio = loop {
            let dir = self.store.dir();
            match self
                .finder
                .audio(recording, dir, self.max_download_bytes)
                .await
            {
                Ok(audio) => break audio,
                Err(error) if attempt < DOWNLOAD_ATTEMPTS && !error.is::<TooLarge>() => {
                    tracing::debug!(recording = %recording.label(), %error, attempt,
                        "downloading a recording failed; trying again");
                    tokio::time::sleep(DOWNLOAD_RETRY_DELAY * attempt).await;
                    attempt += 1;
                }
                Err(error) => {
                    return Err(RecordingError::Download {
                        recording: recording.label(),
                        detail: format!("{error} (after {attempt} attempts)"),
                        transient: is_outage(error.as_ref()),
                    });
                }
            }
        };
        let output = self.store.dir().join(file);
        // The downloaded file lives until the conversion is over.
        Ok(self.converter.convert(audio.input.clone(), output).await?)
    }
}
