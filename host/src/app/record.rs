//! Recording jobs: a finished call's recordings become a `recording` event in the same
//! durable queue; jobs a previous run left unfinished start again.

use super::{DeliveryQueue, EngineStore};
use crate::calls;
use crate::queue::AttachedWrite;
use crate::recordings::{Outcome, Recorder, RecordingSource, RecordingsConfig, retention};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Starts the recorder, which fetches recordings from `xapi` (or the folder, per
/// `config.source`), and the retention sweep, which runs until `cancel`.
pub fn start_recorder(
    config: &RecordingsConfig,
    xapi: Arc<dyn RecordingSource>,
    cancel: CancellationToken,
) -> anyhow::Result<Recorder> {
    let recorder = Recorder::new(config, Some(xapi))?;
    if let Some(keep) = config.keep() {
        let dir = recorder.store().dir().to_owned();
        let every = config.sweep_interval;
        tokio::spawn(async move { retention::run(&dir, keep, every, cancel).await });
    }
    Ok(recorder)
}

/// Starts the recording jobs a previous run left unfinished (stopped or killed while a call's
/// recordings were being fetched).
pub(super) fn resume_recording_jobs(
    store: Option<&EngineStore>,
    recorder: Option<&Recorder>,
    queue: &Arc<DeliveryQueue>,
) {
    let (Some(store), Some(recorder)) = (store, recorder) else {
        return;
    };
    let jobs = match store.recording_jobs() {
        Ok(jobs) => jobs,
        Err(error) => {
            tracing::error!(%error, "could not read the unfinished recording jobs");
            return;
        }
    };
    if !jobs.is_empty() {
        tracing::info!(jobs = jobs.len(), "resuming unfinished recording jobs");
    }
    for call in jobs {
        let (recorder, queue) = (recorder.clone(), queue.clone());
        tokio::spawn(async move { record(&recorder, &call, &queue, true).await });
    }
}

/// Logs an event the queue could not store, whole.
pub(super) fn log_lost(event: &crate::calls::event::CallEvent, error: &crate::queue::QueueError) {
    tracing::error!(
        call_id = %event.call_id(),
        %error,
        event = %serde_json::to_string(event).unwrap_or_default(),
        "could not store the event for delivery"
    );
}

/// Waits for a finished call's recordings and queues the `recording` event; failures are
/// reported, never dropped silently. With the recording job `kept` in the database, the job is
/// removed in the transaction that takes the event (or once the recorder gave up), so a host
/// stopped before that looks for the recordings again at its next start.
pub(super) async fn record(
    recorder: &Recorder,
    call: &calls::FinishedCall,
    queue: &DeliveryQueue,
    kept: bool,
) {
    let event = match recorder.handle(call).await {
        Outcome::Ready { event, failures } => {
            for failure in &failures {
                tracing::error!(call_id = %failure.part, file = failure.file, error = %failure.error, "recording failed");
            }
            Some(crate::calls::event::CallEvent::Recording(event))
        }
        Outcome::Failed { id, failures } => {
            for failure in &failures {
                tracing::error!(call_id = %id, file = failure.file, error = %failure.error, "recording failed");
            }
            None
        }
        Outcome::NotFound {
            id,
            waited,
            last_error,
        } => {
            tracing::warn!(
                call_id = %id,
                waited_s = waited.as_secs(),
                last_error = last_error.unwrap_or_default(),
                "no recording appeared"
            );
            None
        }
        Outcome::NothingToRecord => None,
    };
    let events: Vec<_> = event.into_iter().collect();
    let done =
        |write: &redb::WriteTransaction| EngineStore::recording_done_in(write, call.pbx_call_id);
    let attached = kept.then_some(&done as AttachedWrite<'_>);
    if (!events.is_empty() || attached.is_some())
        && let Err(error) = queue.take(&events, attached)
    {
        for event in &events {
            log_lost(event, &error);
        }
        if kept {
            tracing::warn!(
                pbx_call_id = call.pbx_call_id,
                "the recording job stays; it is done again at the next start"
            );
        }
    }
}
