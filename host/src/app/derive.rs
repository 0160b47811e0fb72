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
use super::replay::to_input;
use super::{DeliveryQueue, EngineStore, StateRecords};
use crate::calls::{self, Engine};
use crate::pbx::xapi::InboundRule;
use crate::pbx::{Change, RestClient};
use crate::queue::AttachedWrite;
use crate::recordings::Recorder;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// At most this many changes are applied before their events are taken in one transaction.
const BATCH: usize = 256;
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
}
