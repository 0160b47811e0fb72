//! The derivation loop: connector changes → engine → durable queue, with the engine's timers.
//!
//! The engine is pure; this loop is the only place that feeds it live. It applies each change
//! at the time the connector saw it, calls `tick` when the engine's next deadline passes (grace
//! periods), and hands the events to the queue in the order the engine produced them. When a
//! call is over and recordings are on, the call goes to the [`Recorder`] ([`super::record`]).
//! With an [`EngineStore`] it saves the engine's state after every input that changed it.
//!
//! Group commit: the loop applies every change that is already waiting (up to [`BATCH`])
//! before it hands the events to the queue, so one transaction, and one fsync, takes them all
//! together with the engine's state. When the disk is slow, changes wait a little longer and
//! the next batch is larger, instead of a backlog of one fsync per event building up.

use super::observe::EventCounter;
use super::record::{log_lost, record};
use super::storage::StorageHealth;
use super::{DeliveryQueue, EngineStore, StateRecords};
use crate::callcontrol::Change;
use crate::calls::{self, Engine, StateChanges};
use crate::console::LivePublisher;
use crate::pbx::RestClient;
use crate::pbx::xapi::InboundRule;
use crate::queue::{AttachedWrite, QueueError};
use crate::recordings::Recorder;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// At most this many changes are applied before their events are taken in one transaction.
const BATCH: usize = 256;
/// How many derived events the loop holds while storage refuses them before it stops taking
/// changes.
const HOLD_LIMIT: usize = 50_000;
/// How soon a failed store of events is tried again.
const STORE_RETRY: Duration = Duration::from_secs(1);
/// How often the PBX's inbound rules are read again.
const RULES_REFRESH: Duration = Duration::from_secs(600);
/// How long the derivation waits for the first read of the inbound rules.
const RULES_FIRST_WAIT: Duration = Duration::from_secs(10);
/// How soon a failed read of the inbound rules is tried again.
const RULES_RETRY: Duration = Duration::from_secs(5);

/// What the derivation loop listens to.
pub struct Inputs {
    /// The connector's changes.
    pub changes: mpsc::Receiver<Change>,
    /// The DID → inbound rule table, as it is refreshed.
    pub rules: watch::Receiver<BTreeMap<String, String>>,
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
    /// Whether the last write went through, for `/healthz`.
    pub health: Arc<StorageHealth>,
    /// The console's view of the calls and the latest events, when given.
    pub live: Option<LivePublisher>,
}

/// Reads the PBX's inbound rules now and every [`RULES_REFRESH`]; rules named in the
/// configuration's `[did]` table win over the PBX's. The first attempt always publishes a
/// table (the configured one when the PBX cannot be asked), which the derivation loop waits for.
pub(super) async fn refresh_did_rules(
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

/// The database refuses every write until it is opened again (redb after an I/O error, such
/// as a full disk): the loop stops, and the host with it.
#[derive(Debug, thiserror::Error)]
#[error(
    "storage failed ({0}); callhook stops so that its service manager starts it again with the \
     database opened afresh: what was stored is kept, and the calls in progress are read again \
     from the PBX"
)]
pub struct StorageLost(pub String);

/// Events derived but not stored yet (the database refused them), oldest first, with the
/// calls among them that are over.
#[derive(Default)]
struct Held {
    events: Vec<calls::event::CallEvent>,
    finished: Vec<calls::FinishedCall>,
}

impl Held {
    /// Logs every held event as lost, whole, for sending by hand.
    fn log_lost(&self, why: &QueueError) {
        for event in &self.events {
            log_lost(event, why);
        }
    }
}

/// Runs the derivation loop until the changes end or `cancel` fires.
///
/// **When storage fails**, no event is dropped: the loop holds the events it derived (and the
/// engine's unsaved state, [`Engine::retouch`]), marks `health` failing (`/healthz` answers
/// 503) and tries again every [`STORE_RETRY`], in order, with what comes next. Holding up to
/// [`HOLD_LIMIT`] events, it stops taking changes (the connector waits, and takes a fresh
/// snapshot once it can go on). When the database refuses every write until it is opened again
/// (redb after a failed write or fsync, [`QueueError::needs_reopen`]), the loop ends with
/// [`StorageLost`] so the host exits and its service manager starts it afresh: the engine then
/// restores the state stored with the last stored events, and the snapshot of the new
/// connection brings every call that changed meanwhile, so each still gets its end event.
pub async fn derive_events(
    mut engine: Engine,
    inputs: Inputs,
    outputs: Outputs,
    cancel: CancellationToken,
) -> Result<(), StorageLost> {
    let Inputs {
        mut changes,
        mut rules,
    } = inputs;
    // The store writes the calls that changed, and the console's view rebuilds them.
    if outputs.store.is_some() || outputs.live.is_some() {
        engine.track_changes();
    }
    if let Some(live) = &outputs.live {
        live.publish(StateChanges::from(&engine.state()).live_calls(), &[]);
    }
    // The first calls' `did` needs the rules: wait for the first read (changes queue up).
    if let Ok(Ok(())) = tokio::time::timeout(RULES_FIRST_WAIT, rules.changed()).await {
        engine.set_did_rules(rules.borrow_and_update().clone());
    }
    let mut held = Held::default();
    loop {
        let wait = engine.next_deadline().map(|deadline| {
            let now = jiff::Timestamp::now();
            let left = deadline.duration_since(now);
            std::time::Duration::try_from(left).unwrap_or_default()
        });
        let taking = held.events.len() < HOLD_LIMIT;
        let retry = (!held.events.is_empty() || !held.finished.is_empty()).then_some(STORE_RETRY);
        let mut output = tokio::select! {
            _ = cancel.cancelled() => {
                // A last try for what storage refused; the engine's state is read afresh from
                // the PBX at the next start.
                if let Err(error) = store(&held.events, &outputs, None) {
                    held.log_lost(&error);
                }
                return Ok(());
            }
            change = changes.recv(), if taking => match change {
                Some(change) => engine.apply(change),
                None => return Ok(()),
            },
            _ = sleep_or_forever(wait), if taking => engine.tick(jiff::Timestamp::now()),
            _ = sleep_or_forever(retry) => calls::Output::default(),
            Ok(()) = rules.changed() => {
                engine.set_did_rules(rules.borrow_and_update().clone());
                continue;
            }
        };
        let batch = if taking { BATCH } else { 1 };
        for _ in 1..batch {
            let Ok(change) = changes.try_recv() else {
                break;
            };
            let more = engine.apply(change);
            output.events.extend(more.events);
            output.finished.extend(more.finished);
        }
        announce(&output.events, &outputs.events);
        let changes = engine.take_changes();
        if let Some(live) = &outputs.live {
            live.publish(changes.live_calls(), &output.events);
        }
        held.events.extend(output.events);
        held.finished.extend(output.finished);
        // With a store, the calls that changed and, with recordings on, the finished calls'
        // recording jobs are written with the events.
        let state = match (&outputs.store, &outputs.recorder) {
            (Some(_), Some(_)) => StateRecords::of(&changes, &held.finished),
            (Some(_), None) => StateRecords::of(&changes, &[]),
            (None, _) => StateRecords::default(),
        };
        let state = (!state.is_empty()).then_some(state);
        match store(&held.events, &outputs, state.as_ref()) {
            Ok(()) => {
                outputs.health.stored();
                held.events.clear();
                start_recordings(std::mem::take(&mut held.finished), &outputs);
            }
            Err(error) => {
                // Not saved: the next attempt writes these calls again.
                engine.retouch(&changes);
                outputs.health.failed(&error.to_string());
                if error.needs_reopen() {
                    tracing::error!(%error, held = held.events.len(), "the database refuses every write until it is opened again");
                    held.log_lost(&error);
                    return Err(StorageLost(error.to_string()));
                }
                tracing::error!(
                    %error,
                    held = held.events.len(),
                    "could not store the events and the call state; holding them and retrying"
                );
            }
        }
    }
}

/// Logs and counts freshly derived events.
fn announce(events: &[calls::event::CallEvent], counter: &EventCounter) {
    for event in events {
        tracing::info!(
            call_id = %event.call_id(),
            event = event.name(),
            user = event.user().unwrap_or(""),
            "event"
        );
        counter.count(event.name());
    }
}

/// Hands `events` to the queue in order, in one transaction with the engine's `state` when
/// given.
fn store(
    events: &[calls::event::CallEvent],
    outputs: &Outputs,
    state: Option<&StateRecords>,
) -> Result<(), QueueError> {
    let save = state
        .map(|state| move |write: &redb::WriteTransaction| EngineStore::write_in(write, state));
    let attached = save.as_ref().map(|save| save as AttachedWrite<'_>);
    if events.is_empty() && attached.is_none() {
        return Ok(());
    }
    outputs.queue.take(events, attached).map(drop)
}

/// Starts the recording jobs of calls that are over, once their events are stored.
fn start_recordings(finished: Vec<calls::FinishedCall>, outputs: &Outputs) {
    let Some(recorder) = &outputs.recorder else {
        return;
    };
    for call in finished {
        let recorder = recorder.clone();
        let queue = outputs.queue.clone();
        let kept = outputs.store.is_some();
        tokio::spawn(async move { record(&recorder, &call, &queue, kept).await });
    }
}

async fn sleep_or_forever(wait: Option<std::time::Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
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

    fn events_stored(db: &redb::Database) -> Vec<String> {
        let filter = crate::queue::replay::DeliveryFilter {
            parked_only: false,
            plugin: None,
            since: None,
        };
        crate::queue::replay::list_deliveries(db, &filter)
            .unwrap()
            .into_iter()
            .map(|delivery| delivery.event)
            .collect()
    }

    /// issue 17 item 1: one failed fsync makes redb refuse every later write. The loop holds
    /// the events, says so on `/healthz`, and ends with `StorageLost` so the host restarts;
    /// what was committed stays, and after the restart the call still gets its end event.
    #[tokio::test]
    async fn a_failed_fsync_stops_the_loop_and_a_restart_still_ends_the_call() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("callhook.redb");
        let (db, disk) = crate::test_disk::open(&path);
        let queue = Arc::new(
            crate::queue::Queue::open(
                db.clone(),
                crate::queue::QueueConfig::default(),
                super::super::Plugins::new([]),
            )
            .unwrap(),
        );
        let config = calls::EngineConfig {
            trunk_dids: callhook_simulator::SimConfig::default_trunks(),
            ..calls::EngineConfig::default()
        };
        let health = Arc::new(StorageHealth::default());
        let (changes_tx, changes) = mpsc::channel(64);
        let (rules_tx, rules) = watch::channel(BTreeMap::new());
        rules_tx.send_replace(BTreeMap::new()); // the PBX's inbound rules were read
        let outputs = Outputs {
            queue: queue.clone(),
            store: Some(EngineStore::of(&queue)),
            recorder: None,
            events: Arc::new(EventCounter::default()),
            health: health.clone(),
            live: None,
        };
        let cancel = CancellationToken::new();
        let looping = tokio::spawn(derive_events(
            Engine::new(config.clone()),
            Inputs { changes, rules },
            outputs,
            cancel.clone(),
        ));

        // Scenario 1 an hour ago: every grace period has run out when its change arrives.
        let scenario = callhook_simulator::Scenario::builtin("01-direct-inbound-answered").unwrap();
        let start = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
        let changes = crate::app::scenario_changes(&scenario, start);
        let hang_up = changes
            .iter()
            .position(|change| matches!(change, Change::Remove { .. }))
            .unwrap();
        let directory = match &changes[0] {
            Change::Snapshot { dns, .. } => dns.clone(),
            _ => unreachable!("the directory comes first"),
        };
        let (talk, end) = changes.split_at(hang_up);
        for change in talk {
            changes_tx.send(change.clone()).await.unwrap();
        }
        let stored = |want: usize| {
            let queue = queue.clone();
            async move {
                for _ in 0..500 {
                    if queue.stats().events_taken >= want as u64 {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                panic!("{want} events were not stored");
            }
        };
        stored(2).await;

        disk.fail_next_sync();
        for change in end {
            changes_tx.send(change.clone()).await.unwrap();
        }
        let ended = tokio::time::timeout(Duration::from_secs(10), looping)
            .await
            .expect("the loop stops once the database refuses writes")
            .unwrap();
        let lost = ended.expect_err("storage is lost");
        assert!(lost.0.contains("Previous I/O error"), "{lost}");
        assert!(health.failing().is_some(), "/healthz says storage fails");

        // The service manager starts callhook again: the database opens as it was committed.
        drop(queue);
        drop(db);
        let db = Arc::new(redb::Database::create(&path).unwrap());
        assert_eq!(events_stored(&db), ["ringing", "incomingcall_started"]);
        let queue = crate::queue::Queue::open(
            db.clone(),
            crate::queue::QueueConfig::default(),
            super::super::Plugins::new([]),
        )
        .unwrap();
        let state = EngineStore::of(&queue)
            .load()
            .unwrap()
            .expect("the call state was stored");
        let mut engine = Engine::restore(config, state);
        assert_eq!(engine.active_calls(), 1, "the call is still in progress");
        // The new connection's snapshot no longer shows the call: it is over.
        let now = jiff::Timestamp::now();
        let mut events = engine
            .apply(Change::Snapshot {
                at: now,
                dns: directory,
                participants: Vec::new(),
            })
            .events;
        events.extend(
            engine
                .tick(now + jiff::SignedDuration::from_hours(1))
                .events,
        );
        let names: Vec<&str> = events.iter().map(|event| event.name()).collect();
        assert_eq!(names, ["incoming"]);
    }
}
