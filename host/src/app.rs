//! Wiring: connector changes → engine → durable queue → plugins, with the engine's timers.
//!
//! The engine is pure; this loop is the only place that feeds it. It applies each change at the
//! time the connector saw it, calls `tick` when the engine's next deadline passes (grace periods),
//! and hands the events to the queue in the order the engine produced them. When a call is over
//! and recordings are on, the [`Recorder`] fetches, converts and links its recordings and the
//! `recording` event joins the same queue. With an [`EngineStore`] it saves the engine's state
//! after every input that changed it.
//!
//! Group commit: the loop applies every change that is already waiting (up to [`BATCH`]) before
//! it hands the events to the queue, so one transaction, and one fsync, takes them all together
//! with the engine's state. When the disk is slow, changes wait a little longer and the next
//! batch is larger, instead of a backlog of one fsync per event building up.

pub mod admin;
pub mod configured;
mod engine_store;
pub mod local;
pub mod observe;
pub mod reload;
pub mod supervise;

pub use engine_store::{EngineStore, EngineStoreError, StateRecords};
pub use observe::{EventCounter, Observed};
pub use supervise::TaskPanicked;

use crate::calls::{self, Engine};
use crate::pbx::participant::{DnType, Participant};
use crate::pbx::xapi::InboundRule;
use crate::pbx::{Change, Connector, ConnectorError, Dn, RestClient};
use crate::queue::{AttachedWrite, Deliverer, Queue};
use crate::recordings::{Outcome, Recorder, RecordingSource, RecordingsConfig, retention};
use crate::runtime::{DeliveryOutcome, DeliveryRequest, Plugin};
use callhook_simulator::{ParticipantChange, Scenario};
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How many connector changes may wait for the engine.
const CHANGE_BACKLOG: usize = 4096;
/// At most this many changes are applied before their events are taken in one transaction.
const BATCH: usize = 256;
/// How often the PBX's inbound rules are read again.
const RULES_REFRESH: Duration = Duration::from_secs(600);
/// How long the derivation waits for the first read of the inbound rules.
const RULES_FIRST_WAIT: Duration = Duration::from_secs(10);
/// How soon a failed read of the inbound rules is tried again.
const RULES_RETRY: Duration = Duration::from_secs(5);

/// The loaded plugins, by name: what the queue delivers with.
pub struct Plugins(HashMap<String, Arc<Plugin>>);

impl Plugins {
    /// The plugins, keyed by their names.
    pub fn new(plugins: impl IntoIterator<Item = Plugin>) -> Self {
        Plugins(
            plugins
                .into_iter()
                .map(|p| (p.name().to_string(), Arc::new(p)))
                .collect(),
        )
    }

    /// The plugins' names.
    pub fn names(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }
}

impl Deliverer for Plugins {
    fn deliver(
        &self,
        plugin: &str,
        request: DeliveryRequest<'_>,
    ) -> impl Future<Output = DeliveryOutcome> + Send {
        let found = self.0.get(plugin).cloned();
        let name = plugin.to_string();
        async move {
            match found {
                Some(plugin) => plugin.deliver(request).await,
                None => DeliveryOutcome::Failed {
                    message: format!("plugin {name} is not loaded"),
                },
            }
        }
    }
}

/// The durable queue over the loaded plugins.
pub type DeliveryQueue = Queue<Plugins>;

/// The running pipeline: connector and derivation tasks in front of the queue, each
/// [supervised](supervise): a panic in either stops the host ([`Pipeline::task_failed`]).
pub struct Pipeline {
    cancel: CancellationToken,
    /// Cancelled when a task panicked.
    failed: CancellationToken,
    connector: JoinHandle<Result<Result<(), ConnectorError>, TaskPanicked>>,
    derive: JoinHandle<Result<(), TaskPanicked>>,
    queue: Arc<DeliveryQueue>,
    observed: Observed,
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
        let observed = Observed {
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
            let task = tokio::spawn(async move {
                let inputs = Inputs { changes, rules };
                let outputs = Outputs {
                    queue,
                    store,
                    recorder,
                    events,
                };
                derive_events(engine, inputs, outputs, cancel).await
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
        }
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
    /// is delivered after the next start) and reports the connector's error, if it failed, or
    /// a task's panic.
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
        derived??;
        Ok(())
    }
}

/// What the derivation loop listens to.
pub struct Inputs {
    /// The connector's changes.
    pub changes: mpsc::Receiver<Change>,
    /// The DID → inbound rule table, as it is refreshed.
    pub rules: watch::Receiver<BTreeMap<String, String>>,
}

/// Starts the recorder, which fetches recordings from `xapi` (or the folder, per
/// `config.source`), and the retention sweep, which runs until `cancel`.
pub fn start_recorder(
    config: &RecordingsConfig,
    xapi: Arc<dyn RecordingSource>,
    cancel: CancellationToken,
) -> anyhow::Result<Recorder> {
    config
        .check()
        .map_err(|error| anyhow::anyhow!("recordings: {error}"))?;
    let recorder = Recorder::new(config, Some(xapi))?;
    if let Some(keep) = config.keep() {
        let dir = recorder.store().dir().to_owned();
        let every = config.sweep_interval;
        tokio::spawn(async move { retention::run(&dir, keep, every, cancel).await });
    }
    Ok(recorder)
}

/// Where the derivation loop's results go.
pub struct Outputs {
    /// The events, for delivery.
    pub queue: Arc<DeliveryQueue>,
    /// The engine's state, after every change, when given.
    pub store: Option<EngineStore>,
    /// Finished calls, for their recordings, when given.
    pub recorder: Option<Recorder>,
    /// Counts the events, for `/metrics`.
    pub events: Arc<EventCounter>,
}

/// Starts the recording jobs a previous run left unfinished (stopped or killed while a call's
/// recordings were being fetched).
fn resume_recording_jobs(
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

/// Reads the PBX's inbound rules now and every [`RULES_REFRESH`]; rules named in the
/// configuration's `[did]` table win over the PBX's. The first attempt always publishes a
/// table (the configured one when the PBX cannot be asked), which the derivation loop waits for.
async fn refresh_did_rules(
    rest: RestClient,
    configured: BTreeMap<String, String>,
    rules: watch::Sender<BTreeMap<String, String>>,
    cancel: CancellationToken,
) {
    let mut first = true;
    loop {
        let wait = match rest.inbound_rules().await {
            Ok(found) => {
                rules.send_replace(did_table(&found, &configured));
                RULES_REFRESH
            }
            Err(error) => {
                tracing::warn!(%error, "could not read the inbound rules; `did` falls back to numbers");
                if first {
                    rules.send_replace(configured.clone());
                }
                RULES_RETRY
            }
        };
        first = false;
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// The DID -> rule name table the engine uses: the PBX's DID rules
/// ([`InboundRule::did_mapping`]: `Condition` `BasedOnDID` or absent, with `Data` and
/// `RuleName`), overridden by the configuration's `[did]` table for every number with the same
/// digits, so `"+4930123456"` in `[did]` wins over XAPI's `4930123456`.
fn did_table(
    found: &[InboundRule],
    configured: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let overridden: Vec<String> = configured.keys().map(|n| calls::did_digits(n)).collect();
    let mut table: BTreeMap<String, String> = found
        .iter()
        .filter_map(InboundRule::did_mapping)
        .filter(|(did, _)| !overridden.contains(&calls::did_digits(did)))
        .map(|(did, name)| (did.to_owned(), name.to_owned()))
        .collect();
    table.extend(configured.clone());
    table
}

/// Runs the derivation loop until the changes end or `cancel` fires.
pub async fn derive_events(
    mut engine: Engine,
    inputs: Inputs,
    outputs: Outputs,
    cancel: CancellationToken,
) {
    let Inputs {
        mut changes,
        mut rules,
    } = inputs;
    if outputs.store.is_some() {
        engine.track_changes();
    }
    // The first calls' `did` needs the rules: wait for the first read (changes queue up).
    if let Ok(Ok(())) = tokio::time::timeout(RULES_FIRST_WAIT, rules.changed()).await {
        engine.set_did_rules(rules.borrow_and_update().clone());
    }
    loop {
        let wait = engine.next_deadline().map(|deadline| {
            let now = jiff::Timestamp::now();
            let left = deadline.duration_since(now);
            std::time::Duration::try_from(left).unwrap_or_default()
        });
        let mut output = tokio::select! {
            _ = cancel.cancelled() => return,
            change = changes.recv() => match change {
                Some(change) => {
                    let at = change.at();
                    engine.apply(to_input(change), at)
                }
                None => return,
            },
            _ = sleep_or_forever(wait) => engine.tick(jiff::Timestamp::now()),
            Ok(()) = rules.changed() => {
                engine.set_did_rules(rules.borrow_and_update().clone());
                continue;
            }
        };
        for _ in 1..BATCH {
            let Ok(change) = changes.try_recv() else {
                break;
            };
            let at = change.at();
            let more = engine.apply(to_input(change), at);
            output.events.extend(more.events);
            output.finished.extend(more.finished);
        }
        let changes = engine.take_changes();
        let jobs = match (&outputs.store, &outputs.recorder) {
            (Some(_), Some(_)) => output.finished.as_slice(),
            _ => &[],
        };
        let state = StateRecords::of(&changes, jobs);
        let state = (!state.is_empty()).then_some(state);
        if !publish(output, &outputs, state.as_ref()) {
            // Not saved: the next batch writes these calls again.
            engine.retouch(&changes);
        }
    }
}

/// Hands the events to the queue in order, in one transaction with the engine's `state` when
/// given. Events the queue cannot store are logged with everything needed to send them by
/// hand: there is nowhere else to keep them. Returns whether the transaction was stored.
fn publish(output: calls::Output, outputs: &Outputs, state: Option<&StateRecords>) -> bool {
    for event in &output.events {
        tracing::info!(
            call_id = %event.call_id(),
            event = event.name(),
            user = event.user().unwrap_or(""),
            "event"
        );
        outputs.events.count(event.name());
    }
    let save = state
        .map(|state| move |write: &redb::WriteTransaction| EngineStore::write_in(write, state));
    let attached = save.as_ref().map(|save| save as AttachedWrite<'_>);
    let mut stored = true;
    if (!output.events.is_empty() || attached.is_some())
        && let Err(error) = outputs.queue.take(&output.events, attached)
    {
        tracing::error!(%error, "could not store the events and the call state");
        for event in &output.events {
            log_lost(event, &error);
        }
        stored = false;
    }
    if let Some(recorder) = &outputs.recorder {
        for call in output.finished {
            let recorder = recorder.clone();
            let queue = outputs.queue.clone();
            let kept = outputs.store.is_some();
            tokio::spawn(async move { record(&recorder, &call, &queue, kept).await });
        }
    }
    stored
}

/// Logs an event the queue could not store, whole.
fn log_lost(event: &crate::calls::event::CallEvent, error: &crate::queue::QueueError) {
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
async fn record(
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

async fn sleep_or_forever(wait: Option<std::time::Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}

/// A simulator scenario's participant changes as the connector would report them, the
/// scenario starting at `start`: a snapshot of its directory, then each upsert and remove.
pub fn scenario_changes(scenario: &Scenario, start: jiff::Timestamp) -> Vec<Change> {
    let dns = scenario
        .directory()
        .into_iter()
        .map(|entry| Dn {
            dn: entry.dn,
            dn_type: serde_json::from_value(serde_json::Value::String(entry.dn_type))
                .unwrap_or(DnType::Unknown),
        })
        .collect();
    let mut changes = vec![Change::Snapshot {
        at: start,
        dns,
        participants: Vec::new(),
    }];
    for step in scenario.timeline() {
        let at = start + jiff::SignedDuration::try_from(step.at).unwrap_or_default();
        changes.push(match step.change {
            ParticipantChange::Upsert(json) => Change::Upsert {
                at,
                participant: serde_json::from_value::<Participant>(json).unwrap_or_default(),
            },
            ParticipantChange::Remove { dn, participant_id } => Change::Remove {
                at,
                dn,
                participant_id,
            },
        });
    }
    changes
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pbx::xapi::Condition;

    fn rule(data: &str, name: &str, condition: Option<Condition>) -> InboundRule {
        InboundRule {
            id: 1,
            rule_name: name.to_owned(),
            data: data.to_owned(),
            condition,
        }
    }

    #[test]
    fn did_table_takes_did_rules_and_lets_the_configuration_win_by_digits() {
        let found = [
            rule("4930123456", "FromPbx", Some(Condition::BasedOnDid)),
            rule("4940999", "Hamburg", None),
            rule("4950111", "ByCaller", Some(Condition::BasedOnCallerId)),
            rule("", "NoNumber", None),
            rule("4960222", "", None),
        ];
        let configured = BTreeMap::from([("+49 30 123456".to_owned(), "CompanyDID".to_owned())]);
        let table = did_table(&found, &configured);
        assert_eq!(
            table,
            BTreeMap::from([
                ("+49 30 123456".to_owned(), "CompanyDID".to_owned()),
                ("4940999".to_owned(), "Hamburg".to_owned()),
            ])
        );
    }
}
