//! Recordings: from the PBX's WAVs to signed MP3 links in the CRM (`call-events.md`, section 5;
//! `3cx-api.md`, section 5).
//!
//! When the engine reports a call completely over ([`FinishedCall`]), [`Recorder::handle`]:
//! 1. **waits** for the call's recordings ([`sources`]): polling XAPI (`Recordings?$filter=Id gt
//!    N`, [`xapi`]) or watching the PBX's recordings folder ([`folder`]), with backoff, up to the
//!    wait limit (by default 120 s); recordings that show up before their call is handed over
//!    wait in a shared inbox; a wait in which the PBX could not be asked (unreachable, 5xx,
//!    XAPI `403`) proves nothing, so the job tries again with backoff until `retry_for` (by
//!    default 6 h) after the call's end, and so does a download or conversion that failed for
//!    a reason that may pass (disk full) ([`Recorder::handle`]);
//! 2. **matches** each recording to the part of the call it belongs to ([`matching`]: extension
//!    is `FromDn`/`ToDn`, the other number matches, talk time overlaps most, 2 s tolerance;
//!    the folder's bracketed call id only breaks ties between calls); an XAPI row that cannot
//!    be matched (no usable `Id`, unknown times) is skipped, logged once and counted
//!    ([`Recorder::skipped_recordings`]), and a `403` from XAPI is reported once while Call
//!    Control goes on and XAPI is asked again later ([`xapi`]);
//! 3. **downloads** an XAPI recording by streaming it into a temporary file in the MP3 folder,
//!    stopped at `max_download_bytes` (by default 200 MiB), and **converts** each WAV to MP3
//!    ([`convert`], LAME via `mp3lame-encoder`; PCM 8/16-bit and G.711 A-law/µ-law, mono or
//!    stereo, read by `wav`) on a bounded blocking pool, into a
//!    temporary file renamed into place as `{part id}-{n}.mp3` ([`store`]);
//! 4. returns [`Outcome::Ready`] with the `recording` event ([`RecordingReady`]: every link of
//!    the call in order, and the last end event) for the durable queue, listing recordings that
//!    failed (a corrupt WAV is reported, never silently dropped); or [`Outcome::Failed`] /
//!    [`Outcome::NotFound`].
//!
//! The MP3s are served by [`Recorder::router`] ([`serve`]) at `/webapi/recording/{file}`, on the
//! host's public [`HttpServer`](crate::server::HttpServer), with range requests and links signed
//! with an expiring HMAC ([`Links`]);
//! [`retention::run`] deletes files older than `KEEP_DAYS`.
//!
//! # Wiring (what `app::Host` does)
//!
//! ```no_run
//! # async fn demo(
//! #     config: callhook::recordings::RecordingsConfig,
//! #     xapi: std::sync::Arc<dyn callhook::recordings::RecordingSource>,
//! #     mut finished: tokio::sync::mpsc::Receiver<callhook::calls::FinishedCall>,
//! #     cancel: tokio_util::sync::CancellationToken,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! use callhook::recordings::{Outcome, Recorder, retention};
//! use callhook::server::HttpServer;
//!
//! let recorder = Recorder::new(&config, Some(xapi))?;
//! let server = HttpServer::bind("127.0.0.1:5001".parse()?, None).await?;
//! let stop = cancel.clone();
//! tokio::spawn(server.run(recorder.router(), async move { stop.cancelled().await }));
//! if let Some(keep) = config.keep() {
//!     let dir = recorder.store().dir().to_owned();
//!     let every = config.sweep_interval;
//!     let stop = cancel.clone();
//!     tokio::spawn(async move { retention::run(&dir, keep, every, stop).await });
//! }
//! while let Some(call) = finished.recv().await {
//!     let recorder = recorder.clone();
//!     tokio::spawn(async move {
//!         match recorder.handle(&call).await {
//!             Outcome::Ready { event, failures } => { /* enqueue CallEvent::Recording(event) */ }
//!             Outcome::Failed { id, failures } => { /* report */ }
//!             Outcome::NotFound { .. } | Outcome::NothingToRecord => {}
//!         }
//!     });
//! }
//! # Ok(()) }
//! ```
//!
//! [`FinishedCall`]: crate::calls::FinishedCall
//! [`RecordingReady`]: crate::calls::event::RecordingReady

mod config;
pub mod convert;
pub mod folder;
mod links;
pub mod matching;
mod pipeline;
pub mod retention;
pub mod serve;
pub mod sources;
pub mod store;
mod wav;
pub mod xapi;

#[cfg(test)]
mod tests;

pub use config::{RecordingsConfig, SourceKind};
pub use convert::{ConvertError, Converted, Converter, WavInput};
pub use links::{LinkRefusal, Links, ROUTE_PREFIX};
pub use pipeline::{
    DOWNLOAD_ATTEMPTS, Outcome, RETRY_FIRST_DELAY, RETRY_MAX_DELAY, Recorder, RecorderError,
    RecordingError, RecordingFailure,
};
pub use store::Store;
pub use xapi::{
    AudioStream, BoxFuture, RecordingPage, RecordingSource, SourceError, XapiRecording,
};
