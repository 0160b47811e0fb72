//! [`Recorder`]: from a finished call to its `recording` event (or its failure report).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::task::JoinSet;

use super::config::{RecordingsConfig, SourceKind};
use super::convert::{ConvertError, Converted, Converter};
use super::links::Links;
use super::matching::RecordingMeta;
use super::serve;
use super::sources::Finder;
use super::store::Store;
use super::xapi::RecordingSource;
use crate::calls::FinishedCall;
use crate::calls::event::{CallId, RecordingReady};

/// How often a recording's download is tried before it is reported as failed.
pub const DOWNLOAD_ATTEMPTS: u32 = 3;
/// The pause after the first failed download; it grows linearly.
const DOWNLOAD_RETRY_DELAY: Duration = Duration::from_secs(1);

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
    },
    /// Its WAV could not be converted (corrupt, unsupported, disk full, ...).
    #[error(transparent)]
    Convert(#[from] ConvertError),
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
    /// No recording turned up within the wait limit (the extensions may not be recorded).
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
    /// converter's bound); a failed download is tried [`DOWNLOAD_ATTEMPTS`] times in all.
    pub async fn handle(&self, call: &FinishedCall) -> Outcome {
        let Some(last) = call.parts.last() else {
            return Outcome::NothingToRecord;
        };
        let found = self
            .inner
            .finder
            .wait_for(call, self.inner.wait_limit)
            .await;
        if found.recordings.is_empty() {
            return Outcome::NotFound {
                id: last.id.clone(),
                waited: found.waited,
                last_error: found.last_error,
            };
        }
        let mut recordings = found.recordings;
        recordings.sort_by_key(|(part, r)| (*part, r.start));
        let mut counters: BTreeMap<&CallId, usize> = BTreeMap::new();
        let mut tasks = JoinSet::new();
        let mut slots = Vec::new();
        for (i, (part, recording)) in recordings.into_iter().enumerate() {
            let id = &call.parts[part].id;
            let n = counters.entry(id).or_default();
            *n += 1;
            let file = Store::file_name(id, *n);
            slots.push((id.clone(), file.clone()));
            let inner = self.inner.clone();
            tasks.spawn(async move { (i, inner.fetch_and_convert(&recording, &file).await) });
        }
        let mut results: Vec<Option<Result<Converted, RecordingError>>> =
            slots.iter().map(|_| None).collect();
        while let Some(joined) = tasks.join_next().await {
            // A panicking task loses its slot; it is reported below as aborted.
            if let Ok((i, result)) = joined {
                results[i] = Some(result);
            }
        }
        let mut files = Vec::new();
        let mut failures = Vec::new();
        for ((part, file), result) in slots.into_iter().zip(results) {
            let result = result.unwrap_or_else(|| {
                Err(RecordingError::Convert(ConvertError::Aborted {
                    input: file.clone(),
                    detail: "the task panicked".to_owned(),
                }))
            });
            match result {
                Ok(_) => files.push(self.inner.links.url(&file)),
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
            },
            failures,
        }
    }
}

impl Inner {
    async fn fetch_and_convert(
        &self,
        recording: &RecordingMeta,
        file: &str,
    ) -> Result<Converted, RecordingError> {
        let mut attempt = 1;
        let input = loop {
            match self.finder.audio(recording).await {
                Ok(input) => break input,
                Err(error) if attempt < DOWNLOAD_ATTEMPTS => {
                    tracing::debug!(recording = %recording.label(), %error, attempt,
                        "downloading a recording failed; trying again");
                    tokio::time::sleep(DOWNLOAD_RETRY_DELAY * attempt).await;
                    attempt += 1;
                }
                Err(error) => {
                    return Err(RecordingError::Download {
                        recording: recording.label(),
                        detail: format!("{error} (after {attempt} attempts)"),
                    });
                }
            }
        };
        let output = self.store.dir().join(file);
        Ok(self.converter.convert(input, output).await?)
    }
}
