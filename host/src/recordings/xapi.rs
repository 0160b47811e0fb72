//! The XAPI source: polling `Recordings` for new entries and downloading their WAVs.
//!
//! The pipeline talks to the PBX only through [`RecordingSource`], which the host implements
//! over the connector's REST client (`pbx::xapi` `RestClient::recordings_after` and
//! `download_recording`, plus a newest-first listing), and tests implement over the simulator.
//!
//! Polling keeps a cursor, the highest `Id` seen: each poll asks
//! `Recordings?$filter=Id gt {cursor}&$orderby=Id asc&$top=100` and pages on while full pages
//! come back. The first poll after start has no cursor; it lists the 100 newest recordings
//! (`$orderby=Id desc`) instead of walking the whole history, and offers them all, so the
//! recordings of a call that ended just before a restart can still be matched. Waiters for
//! several calls share one poller: a poll is skipped when another finished less than
//! [`MIN_POLL_GAP`] ago, its results being already in the shared inbox.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::matching::{Origin, RecordingMeta};

/// A boxed future, for the object-safe [`RecordingSource`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Any error of a [`RecordingSource`]; shown to the operator as is.
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// The most recordings one XAPI request may ask for.
pub const PAGE: u32 = 100;

/// The shortest time between two polls.
pub const MIN_POLL_GAP: Duration = Duration::from_millis(100);

/// One recording as XAPI lists it: the connector's typed record.
pub use crate::pbx::xapi::Recording as XapiRecording;

/// The XAPI requests the recordings pipeline makes.
pub trait RecordingSource: Send + Sync {
    /// `GET /xapi/v1/Recordings?$filter=Id gt {after_id}&$orderby=Id asc&$top={top}`.
    fn recordings_after(
        &self,
        after_id: u64,
        top: u32,
    ) -> BoxFuture<'_, Result<Vec<XapiRecording>, SourceError>>;

    /// `GET /xapi/v1/Recordings?$orderby=Id desc&$top={top}`: the newest recordings.
    fn newest_recordings(&self, top: u32)
    -> BoxFuture<'_, Result<Vec<XapiRecording>, SourceError>>;

    /// `GET /xapi/v1/Recordings/Pbx.DownloadRecording(recId={id})`: the WAV file's bytes.
    fn download_recording(&self, id: u64) -> BoxFuture<'_, Result<Bytes, SourceError>>;
}

/// The connector's REST client is the real source: it shares the connector's one token.
impl RecordingSource for crate::pbx::RestClient {
    fn recordings_after(
        &self,
        after_id: u64,
        top: u32,
    ) -> BoxFuture<'_, Result<Vec<XapiRecording>, SourceError>> {
        Box::pin(
            async move { Ok(crate::pbx::RestClient::recordings_after(self, after_id, top).await?) },
        )
    }

    fn newest_recordings(
        &self,
        top: u32,
    ) -> BoxFuture<'_, Result<Vec<XapiRecording>, SourceError>> {
        Box::pin(async move { Ok(crate::pbx::RestClient::newest_recordings(self, top).await?) })
    }

    fn download_recording(&self, id: u64) -> BoxFuture<'_, Result<Bytes, SourceError>> {
        Box::pin(async move {
            Ok(crate::pbx::RestClient::download_recording(self, id)
                .await?
                .bytes)
        })
    }
}

/// The shared XAPI poller.
pub(crate) struct XapiPoller {
    client: Arc<dyn RecordingSource>,
    state: Mutex<PollState>,
}

struct PollState {
    cursor: Option<u64>,
    last_poll: Option<Instant>,
}

impl XapiPoller {
    pub fn new(client: Arc<dyn RecordingSource>) -> Self {
        XapiPoller {
            client,
            state: Mutex::new(PollState {
                cursor: None,
                last_poll: None,
            }),
        }
    }

    /// Recordings that appeared since the last poll (none if another poll just happened).
    pub async fn poll(&self) -> Result<Vec<RecordingMeta>, SourceError> {
        let mut state = self.state.lock().await;
        if state
            .last_poll
            .is_some_and(|at| at.elapsed() < MIN_POLL_GAP)
        {
            return Ok(Vec::new());
        }
        let mut found = Vec::new();
        let result = self.poll_into(&mut state, &mut found).await;
        state.last_poll = Some(Instant::now());
        // What was read before an error is kept: the cursor moved past it.
        match result {
            Err(error) if found.is_empty() => Err(error),
            _ => Ok(found.into_iter().map(meta).collect()),
        }
    }

    async fn poll_into(
        &self,
        state: &mut PollState,
        found: &mut Vec<XapiRecording>,
    ) -> Result<(), SourceError> {
        let mut cursor = match state.cursor {
            Some(cursor) => cursor,
            None => {
                let newest = self.client.newest_recordings(PAGE).await?;
                let cursor = newest.iter().map(|r| r.id).max().unwrap_or(0);
                state.cursor = Some(cursor);
                found.extend(newest);
                cursor
            }
        };
        loop {
            let page = self.client.recordings_after(cursor, PAGE).await?;
            let (full, before) = (page.len() >= PAGE as usize, cursor);
            for recording in page {
                if recording.id > cursor {
                    cursor = recording.id;
                    state.cursor = Some(cursor);
                    found.push(recording);
                }
            }
            // A full page that did not move the cursor would repeat for ever.
            if !full || cursor == before {
                return Ok(());
            }
        }
    }

    /// The WAV bytes of recording `id`.
    pub async fn download(&self, id: u64) -> Result<Bytes, SourceError> {
        self.client.download_recording(id).await
    }
}

fn meta(r: XapiRecording) -> RecordingMeta {
    RecordingMeta {
        origin: Origin::Xapi(r.id),
        name: r.recording_url,
        from_dn: r.from_dn,
        to_dn: r.to_dn,
        from_number: r.from_caller_number,
        to_number: r.to_caller_number,
        start: r.start_time,
        end: r.end_time,
        pbx_call_id: None,
    }
}
