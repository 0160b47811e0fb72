//! Inspecting and replaying deliveries: what `callhook deliveries list` and
//! `callhook deliveries retry` do.
//!
//! The [`Queue`] methods act on a running queue and reschedule at once. The free functions act
//! on the database alone, for a CLI run while the host is stopped (redb lets one process open
//! the file); the host schedules what they changed when it next starts.

use super::store::{self, DeliveryRecord};
use super::{Deliverer, Queue, QueueError, Row};
use jiff::Timestamp;
use redb::Database;
use std::time::Duration;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Not attempted yet.
    Pending,
    /// Attempted and failed; another attempt is scheduled.
    Retrying,
    /// Given up on (rejected, or out of retries); waits for an operator's retry.
    Parked,
    /// Parked because the plugin could not tell whether the receiver acted on it (contract
    /// 0.2's `unknown-outcome`): check the receiver before retrying.
    OutcomeUnknown,
}

impl DeliveryStatus {
    /// `pending`, `retrying`, `parked` or `outcome-unknown`.
    pub fn label(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Retrying => "retrying",
            DeliveryStatus::Parked => "parked",
            DeliveryStatus::OutcomeUnknown => "outcome-unknown",
        }
    }
}

/// One attempt's outcome, kept for inspection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// When the attempt ended.
    pub at: Timestamp,
    /// Its number, 1 for the first.
    pub attempt: u32,
    /// The outcome label: `delivered`, `retry`, `rejected`, `outcome-unknown` or `failed`.
    pub outcome: String,
    /// The plugin's message, if it did not succeed.
    pub message: Option<String>,
    /// How long the attempt ran.
    pub duration: Duration,
}

/// A delivery that has not succeeded yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryInfo {
    /// The id that `deliveries retry ID` takes.
    pub id: u64,
    /// The plugin.
    pub plugin: String,
    /// The event's call id.
    pub call_id: String,
    /// The event's name, e.g. `incoming`.
    pub event: String,
    /// The idempotency key handed to the plugin.
    pub idempotency_key: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Being attempted right now (only known to a running queue).
    pub in_flight: bool,
    /// Attempts made, over all replays.
    pub attempts: u32,
    /// When the event was taken.
    pub taken_at: Timestamp,
    /// When the next attempt is due; `None` while parked.
    pub next_attempt_at: Option<Timestamp>,
    /// When and why it was parked.
    pub parked: Option<(Timestamp, String)>,
    /// The latest attempts, oldest first.
    pub history: Vec<Attempt>,
}

/// Which deliveries to list or retry. By default all.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeliveryFilter {
    /// Only parked deliveries (`--failed`).
    pub parked_only: bool,
    /// Only this plugin's (`--plugin P`).
    pub plugin: Option<String>,
    /// Only those parked at or after this time, or for pending ones, taken at or after it
    /// (`--since TIME`).
    pub since: Option<Timestamp>,
}

impl DeliveryFilter {
    fn matches(&self, record: &DeliveryRecord) -> bool {
        if self.parked_only && record.parked.is_none() {
            return false;
        }
        if self.plugin.as_ref().is_some_and(|p| *p != record.plugin) {
            return false;
        }
        if let Some(since) = self.since {
            let at = record.parked.as_ref().map_or(record.taken_at, |p| p.at);
            if timestamp(at) < since {
                return false;
            }
        }
        true
    }
}

pub(crate) fn timestamp(unix_ms: u64) -> Timestamp {
    Timestamp::from_millisecond(unix_ms as i64).unwrap_or(Timestamp::MAX)
}

fn info(id: u64, record: DeliveryRecord, in_flight: bool) -> DeliveryInfo {
    let status = match (&record.parked, record.attempts) {
        (Some(park), _) if park.outcome_unknown => DeliveryStatus::OutcomeUnknown,
        (Some(_), _) => DeliveryStatus::Parked,
        (None, 0) => DeliveryStatus::Pending,
        (None, _) => DeliveryStatus::Retrying,
    };
    DeliveryInfo {
        id,
        status,
        in_flight,
        attempts: record.attempts,
        taken_at: timestamp(record.taken_at),
        next_attempt_at: record.parked.is_none().then(|| timestamp(record.next_at)),
        parked: record.parked.map(|p| (timestamp(p.at), p.reason)),
        history: record
            .log
            .into_iter()
            .map(|a| Attempt {
                at: timestamp(a.at),
                attempt: a.attempt,
                outcome: a.outcome,
                message: a.message,
                duration: Duration::from_millis(a.duration_ms),
            })
            .collect(),
        plugin: record.plugin,
        call_id: record.call_id,
        event: record.event_name,
        idempotency_key: record.key,
    }
}

/// The deliveries in `db` that match `filter`, by id.
pub fn list_deliveries(
    db: &Database,
    filter: &DeliveryFilter,
) -> Result<Vec<DeliveryInfo>, QueueError> {
    Ok(store::all_deliveries(db)?
        .into_iter()
        .filter(|(_, record)| filter.matches(record))
        .map(|(id, record)| info(id, record, false))
        .collect())
}

/// Marks deliveries in `db` for another attempt at `now`: parked ones start a new series of
/// retries, pending ones are moved forward. Returns the ids changed (unknown ids are skipped).
pub fn retry_deliveries(
    db: &Database,
    ids: &[u64],
    now: Timestamp,
) -> Result<Vec<u64>, QueueError> {
    let now = now.as_millisecond().max(0) as u64;
    Ok(store::retry_now(db, ids, now)?
        .into_iter()
        .map(|(id, _)| id)
        .collect())
}

/// Re-enables `plugin` in `db` (after a receiver answered 410), for a CLI run while the host
/// is stopped; the host attempts its deliveries again from its next start.
pub fn enable_plugin(db: &Database, plugin: &str) -> Result<(), QueueError> {
    store::set_plugin_disabled(db, plugin, None)
}

impl<D: Deliverer> Queue<D> {
    /// The deliveries that match `filter`, by id.
    pub fn list(&self, filter: &DeliveryFilter) -> Result<Vec<DeliveryInfo>, QueueError> {
        let records = store::all_deliveries(&self.inner.db)?;
        let state = self.inner.state();
        Ok(records
            .into_iter()
            .filter(|(_, record)| filter.matches(record))
            .map(|(id, record)| info(id, record, state.is_busy(id)))
            .collect())
    }

    /// Attempts delivery `id` again now: a parked one gets a fresh series of retries, a
    /// waiting one is moved forward, one being attempted is left alone.
    pub fn retry(&self, id: u64) -> Result<(), QueueError> {
        if self.retry_all(&[id])?.is_empty() && !self.inner.state().is_busy(id) {
            return Err(QueueError::NoSuchDelivery(id));
        }
        Ok(())
    }

    /// Retries every parked delivery that matches `filter` (`deliveries retry --failed --since
    /// TIME`); `filter.parked_only` is implied. Returns the ids retried.
    pub fn retry_parked(&self, filter: &DeliveryFilter) -> Result<Vec<u64>, QueueError> {
        let filter = DeliveryFilter {
            parked_only: true,
            ..filter.clone()
        };
        let ids: Vec<u64> = store::all_deliveries(&self.inner.db)?
            .into_iter()
            .filter(|(_, record)| filter.matches(record))
            .map(|(id, _)| id)
            .collect();
        self.retry_all(&ids)
    }

    /// Attempts the deliveries `ids` again now, like [`Queue::retry`]; unknown ids and those
    /// being attempted are skipped. Returns the ids retried. Holds the scheduler's state across
    /// the write, so no row starts or ends in between.
    pub fn retry_all(&self, ids: &[u64]) -> Result<Vec<u64>, QueueError> {
        let inner = &self.inner;
        let now = inner.clock.now_ms();
        let mut state = inner.state();
        let ids: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|id| !state.is_busy(*id))
            .collect();
        let was_parked: Vec<bool> = ids
            .iter()
            .map(|id| !state.rows().contains_key(id))
            .collect();
        let changed = store::retry_now(&inner.db, &ids, now)?;
        for (id, record) in &changed {
            let index = ids.iter().position(|i| i == id).expect("asked for");
            if was_parked[index] {
                let run = state.plugin(&record.plugin, now);
                run.parked = run.parked.saturating_sub(1);
            }
            state.insert(*id, Row::from_record(record), now);
        }
        drop(state);
        inner.wake.notify_one();
        Ok(changed.into_iter().map(|(id, _)| id).collect())
    }
}
