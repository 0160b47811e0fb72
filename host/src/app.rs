//! Wiring: connector changes → engine → dispatcher, with the engine's timers.
//!
//! The engine is pure; this loop is the only place that feeds it. It applies each change at the
//! time the connector saw it, calls `tick` when the engine's next deadline passes (grace periods),
//! hands the events to the dispatcher in the order the engine produced them, and closes the
//! delivery chains of calls that are over.

use crate::calls::{self, Engine};
use crate::delivery::Dispatcher;
use crate::pbx::{Change, Connector, ConnectorError};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How many connector changes may wait for the engine.
const CHANGE_BACKLOG: usize = 4096;

/// The running pipeline: connector and derivation tasks.
pub struct Pipeline {
    cancel: CancellationToken,
    connector: JoinHandle<Result<(), ConnectorError>>,
    derive: JoinHandle<()>,
}

impl Pipeline {
    /// Starts the connector and the derivation loop feeding `dispatcher`.
    pub fn start(connector: Connector, engine: Engine, dispatcher: Arc<Dispatcher>) -> Pipeline {
        let cancel = CancellationToken::new();
        let (changes_tx, changes) = mpsc::channel(CHANGE_BACKLOG);
        let connector = tokio::spawn(connector.run(changes_tx, cancel.clone()));
        let derive = {
            let cancel = cancel.clone();
            tokio::spawn(async move { derive_events(engine, changes, &dispatcher, cancel).await })
        };
        Pipeline {
            cancel,
            connector,
            derive,
        }
    }

    /// Stops both tasks and reports the connector's error, if it failed.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.cancel.cancel();
        self.derive.await?;
        self.connector.await??;
        Ok(())
    }
}

/// Runs the derivation loop until `changes` closes or `cancel` fires.
pub async fn derive_events(
    mut engine: Engine,
    mut changes: mpsc::Receiver<Change>,
    dispatcher: &Dispatcher,
    cancel: CancellationToken,
) {
    loop {
        let wait = engine.next_deadline().map(|deadline| {
            let now = jiff::Timestamp::now();
            let left = deadline.duration_since(now);
            std::time::Duration::try_from(left).unwrap_or_default()
        });
        let output = tokio::select! {
            _ = cancel.cancelled() => return,
            change = changes.recv() => match change {
                Some(change) => {
                    let at = change.at();
                    engine.apply(to_input(change), at)
                }
                None => return,
            },
            _ = sleep_or_forever(wait) => engine.tick(jiff::Timestamp::now()),
        };
        publish(output, dispatcher);
    }
}

fn publish(output: calls::Output, dispatcher: &Dispatcher) {
    for event in output.events {
        tracing::info!(call_id = %event.call_id(), event = event.name(), user = event.user().unwrap_or(""), "event");
        dispatcher.dispatch(event);
    }
    for finished in output.finished {
        if let Some(part) = finished.parts.first() {
            dispatcher.close_call(&part.id.stamp, finished.pbx_call_id);
        } else if let Some(end) = &finished.last_end {
            dispatcher.close_call(&end.id.stamp, finished.pbx_call_id);
        }
    }
}

async fn sleep_or_forever(wait: Option<std::time::Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}

/// Maps the connector's change to the engine's input.
pub fn to_input(change: Change) -> calls::Input {
    match change {
        Change::Snapshot {
            dns, participants, ..
        } => calls::Input::Snapshot {
            dns: dns
                .into_iter()
                .map(|dn| calls::Dn {
                    dn: dn.dn,
                    dn_type: dn.dn_type,
                })
                .collect(),
            participants,
        },
        Change::Upsert { participant, .. } => calls::Input::Upsert(participant),
        Change::Remove {
            dn, participant_id, ..
        } => calls::Input::Remove { dn, participant_id },
    }
}
