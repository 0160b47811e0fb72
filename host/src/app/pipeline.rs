//! The running pipeline: the connector and the derivation loop in front of the durable queue,
//! each [supervised](super::supervise), with the inbound-rule refresh and the recording jobs
//! beside them.

use super::derive::{Inputs, Outputs, StorageLost, derive_events, refresh_did_rules};
use super::observe::{EventCounter, Observed};
use super::record::resume_recording_jobs;
use super::storage::StorageHealth;
use super::supervise::{self, TaskPanicked};
use super::{DeliveryQueue, EngineStore};
use crate::calls::Engine;
use crate::console::{LivePublisher, LiveState};
use crate::pbx::{Connector, ConnectorError};
use crate::recordings::Recorder;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How many connector changes may wait for the engine.
const CHANGE_BACKLOG: usize = 4096;

/// The running pipeline: connector and derivation tasks in front of the queue, each
/// [supervised](supervise): a panic in either stops the host ([`Pipeline::task_failed`]).
pub struct Pipeline {
    cancel: CancellationToken,
    /// Cancelled when a task panicked.
    failed: CancellationToken,
    connector: JoinHandle<Result<Result<(), ConnectorError>, TaskPanicked>>,
    derive: JoinHandle<Result<Result<(), StorageLost>, TaskPanicked>>,
    queue: Arc<DeliveryQueue>,
    observed: Observed,
    live: watch::Receiver<LiveState>,
}

/// How long shutdown waits for deliveries in progress.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

impl Pipeline {
    /// Starts the connector and the derivation loop feeding `queue`, saving the engine's state
    /// into `store` and handing finished calls to `recorder` when given.
    pub fn start(
        connector: Connector,
        engine: Engine,
        queue: Arc<DeliveryQueue>,
        store: Option<EngineStore>,
        recorder: Option<Recorder>,
    ) -> Pipeline {
        let events = Arc::new(EventCounter::default());
        let health = Arc::new(StorageHealth::default());
        let observed = Observed {
            storage: health.clone(),
            events: events.clone(),
            connection: connector.state(),
            connector: connector.stats(),
            queue: queue.clone(),
            state_unreadable: store
                .as_ref()
                .map(EngineStore::unreadable_counter)
                .unwrap_or_default(),
            recorder: recorder.clone(),
        };
        let cancel = CancellationToken::new();
        let failed = CancellationToken::new();
        let (publisher, live) = LivePublisher::new();
        let (changes_tx, changes) = mpsc::channel(CHANGE_BACKLOG);
        let (rules_tx, rules) = watch::channel(engine.did_rules().clone());
        tokio::spawn(refresh_did_rules(
            connector.rest(),
            engine.did_rules().clone(),
            rules_tx,
            cancel.clone(),
        ));
        resume_recording_jobs(store.as_ref(), recorder.as_ref(), &queue);
        let connector = tokio::spawn(supervise::supervise(
            "connector",
            tokio::spawn(connector.run(changes_tx, cancel.clone())),
            failed.clone(),
        ));
        let derive = {
            let cancel = cancel.clone();
            let queue = queue.clone();
            let stop_host = failed.clone();
            let task = tokio::spawn(async move {
                let inputs = Inputs { changes, rules };
                let outputs = Outputs {
                    queue,
                    store,
                    recorder,
                    events,
                    health,
                    live: Some(publisher),
                };
                let ended = derive_events(engine, inputs, outputs, cancel).await;
                if ended.is_err() {
                    // Storage is lost for this process: stop the host (see `derive_events`).
                    stop_host.cancel();
                }
                ended
            });
            tokio::spawn(supervise::supervise("derivation", task, failed.clone()))
        };
        Pipeline {
            cancel,
            failed,
            connector,
            derive,
            queue,
            observed,
            live,
        }
    }

    /// The calls in the engine and the latest events, as the console shows them.
    pub fn live(&self) -> watch::Receiver<LiveState> {
        self.live.clone()
    }

    /// What `/metrics` and `/healthz` read.
    pub fn observed(&self) -> Observed {
        self.observed.clone()
    }

    /// Resolves when the connector or the derivation task panicked (logged already); the
    /// host then shuts the pipeline down, and [`Pipeline::shutdown`] reports the panic.
    pub fn task_failed(&self) -> impl Future<Output = ()> + Send + 'static {
        self.failed.clone().cancelled_owned()
    }

    /// Stops taking changes, lets deliveries in progress finish (what does not finish in time
    /// is delivered after the next start) and reports the connector's error, if it failed, the
    /// loss of storage ([`StorageLost`]) or a task's panic.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.cancel.cancel();
        let derived = self.derive.await;
        let report = self.queue.shutdown(SHUTDOWN_GRACE).await;
        if report.interrupted > 0 {
            tracing::warn!(
                interrupted = report.interrupted,
                "deliveries resume at the next start"
            );
        }
        self.connector.await???;
        derived???;
        Ok(())
    }
}
