//! The queue's tables in redb and every transaction on them (synchronous; see the module
//! documentation of [`crate::queue`] for the format).

use super::QueueError;
use super::routing::Routes;
use crate::calls::event::CallEvent;
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};

pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("queue_meta");
pub(crate) const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("queue_events");
pub(crate) const DELIVERIES: TableDefinition<u64, &[u8]> = TableDefinition::new("queue_deliveries");
pub(crate) const CALLS: TableDefinition<&str, &[u8]> = TableDefinition::new("queue_calls");
pub(crate) const PLUGINS: TableDefinition<&str, &[u8]> = TableDefinition::new("queue_plugins");

/// The version of the format below; [`open`] refuses any other.
pub(crate) const FORMAT_VERSION: u64 = 1;
const FORMAT_KEY: &str = "format";
const NEXT_ID_KEY: &str = "next_id";

/// `queue_events` value: the event as taken.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct EventRecord {
    pub event: CallEvent,
    /// Unix milliseconds.
    pub taken_at: u64,
}

/// `queue_deliveries` value: one (event, plugin) delivery that has not succeeded yet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DeliveryRecord {
    /// The `queue_events` key.
    pub event: u64,
    pub plugin: String,
    /// The ordering key: the call id without its link.
    pub call: String,
    /// The call id as the event carries it.
    pub call_id: String,
    pub event_name: String,
    /// `CallEvent::key()`, the idempotency key.
    pub key: String,
    pub taken_at: u64,
    /// Attempts whose outcome was recorded, over all series.
    pub attempts: u32,
    /// When the current series began: `taken_at`, or the operator's retry.
    pub series_start: u64,
    /// Failed attempts in the current series.
    pub series_failures: u32,
    /// When to attempt next (meaningless while parked).
    pub next_at: u64,
    pub parked: Option<ParkRecord>,
    /// The latest outcomes, oldest first.
    pub log: Vec<AttemptLog>,
    /// Set when an operator retried the row after it was parked; handed to plugins as
    /// `replayed` (contract 0.2). Absent in rows of earlier versions: false.
    #[serde(default)]
    pub replayed: bool,
}

/// Why and when a delivery was parked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct ParkRecord {
    pub at: u64,
    pub reason: String,
    /// Parked because the plugin could not tell whether the receiver acted on it
    /// (`unknown-outcome`): listed as `outcome-unknown`. Absent in earlier versions: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub outcome_unknown: bool,
}

/// One attempt's outcome.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct AttemptLog {
    pub at: u64,
    pub attempt: u32,
    pub outcome: String,
    pub message: Option<String>,
    pub duration_ms: u64,
}

/// `queue_calls` value: the plugins that were given this call's events.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct CallRecord {
    pub plugins: Vec<String>,
    pub last_at: u64,
    /// The queues and ring groups the call rang through so far (the events' `queue`), so that
    /// a route's `queues` select every later event of the call too, e.g. a transfer target's.
    /// Absent in records of earlier versions: none.
    #[serde(default)]
    pub queues: Vec<String>,
}

/// `queue_plugins` value: an operator-visible plugin state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct PluginRecord {
    /// Set while the plugin is disabled: when and why.
    pub disabled: Option<ParkRecord>,
}

/// Delivery rows with their ids.
pub(crate) type Rows = Vec<(u64, DeliveryRecord)>;

/// What [`open`] finds on disk.
pub(crate) struct Loaded {
    /// Every delivery row that reads, pending and parked, by id.
    pub deliveries: Vec<(u64, DeliveryRecord)>,
    /// Disabled plugins.
    pub disabled: Vec<(String, ParkRecord)>,
    /// Delivery rows and plugin records that do not read: skipped, left in place.
    pub unreadable: Vec<QueueRecordUnreadable>,
}

/// How an attempt changes its row.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// Remove the row (and the event once it has no rows left).
    Delivered,
    /// Try again at `next_at`.
    Reschedule { next_at: u64 },
    /// Park the row; `outcome_unknown` when the plugin could not tell whether it took effect.
    Park {
        reason: String,
        outcome_unknown: bool,
    },
}

/// The ordering key of an event: its call id without the link, which changes on transfers.
pub(crate) fn call_key(event: &CallEvent) -> String {
    let id = event.call_id();
    format!("{}_{}", id.stamp, id.pbx_call_id)
}

fn storage<E: std::fmt::Display>(doing: &'static str) -> impl Fn(E) -> QueueError {
    move |error| QueueError::Storage {
        doing,
        message: error.to_string(),
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("queue records always serialize")
}

/// A stored record that does not read.
#[derive(Debug)]
pub(crate) struct QueueRecordUnreadable {
    pub table: &'static str,
    pub key: String,
    pub error: String,
}

impl From<QueueRecordUnreadable> for QueueError {
    fn from(record: QueueRecordUnreadable) -> Self {
        QueueError::Corrupt {
            table: record.table,
            key: record.key,
            message: record.error,
        }
    }
}

/// Reads a JSON record of `table`; where it does not read, says which.
fn read_record<T: for<'de> Deserialize<'de>>(
    table: &'static str,
    key: impl std::fmt::Display,
    bytes: &[u8],
) -> Result<T, QueueRecordUnreadable> {
    serde_json::from_slice(bytes).map_err(|e| QueueRecordUnreadable {
        table,
        key: key.to_string(),
        error: e.to_string(),
    })
}

/// [`read_record`] where a record that does not read fails the operation.
fn decode<T: for<'de> Deserialize<'de>>(
    table: &'static str,
    key: impl std::fmt::Display,
    bytes: &[u8],
) -> Result<T, QueueError> {
    Ok(read_record(table, key, bytes)?)
}

/// Creates the tables if needed, checks the format version, and reads every delivery row.
pub(crate) fn open(db: &Database) -> Result<Loaded, QueueError> {
    let write = db.begin_write().map_err(storage("opening the queue"))?;
    {
        let mut meta = write
            .open_table(META)
            .map_err(storage("opening queue_meta"))?;
        let found = meta
            .get(FORMAT_KEY)
            .map_err(storage("reading the queue format"))?
            .map(|v| v.value());
        match found {
            None => {
                meta.insert(FORMAT_KEY, FORMAT_VERSION)
                    .map_err(storage("writing the queue format"))?;
            }
            Some(FORMAT_VERSION) => {}
            Some(found) => {
                return Err(QueueError::Format {
                    found,
                    expected: FORMAT_VERSION,
                });
            }
        }
        for table in [EVENTS, DELIVERIES] {
            write
                .open_table(table)
                .map_err(storage("creating the queue tables"))?;
        }
        for table in [CALLS, PLUGINS] {
            write
                .open_table(table)
                .map_err(storage("creating the queue tables"))?;
        }
    }
    write
        .commit()
        .map_err(storage("creating the queue tables"))?;

    let read = db.begin_read().map_err(storage("loading the queue"))?;
    let (deliveries, mut unreadable) = delivery_rows(db, "loading the queue")?;
    let table = read
        .open_table(PLUGINS)
        .map_err(storage("loading plugin states"))?;
    let mut disabled = Vec::new();
    for entry in table.iter().map_err(storage("loading plugin states"))? {
        let (name, bytes) = entry.map_err(storage("loading plugin states"))?;
        match read_record::<PluginRecord>("queue_plugins", name.value(), bytes.value()) {
            Ok(record) => {
                if let Some(why) = record.disabled {
                    disabled.push((name.value().to_string(), why));
                }
            }
            Err(record) => unreadable.push(record),
        }
    }
    Ok(Loaded {
        deliveries,
        disabled,
        unreadable,
    })
}

/// Every delivery row that reads, and the rows that do not (skipped alone: one damaged row
/// must not cost the others).
fn delivery_rows(
    db: &Database,
    doing: &'static str,
) -> Result<(Rows, Vec<QueueRecordUnreadable>), QueueError> {
    let read = db.begin_read().map_err(storage(doing))?;
    let table = read.open_table(DELIVERIES).map_err(storage(doing))?;
    let (mut rows, mut unreadable) = (Vec::new(), Vec::new());
    for entry in table.iter().map_err(storage(doing))? {
        let (id, bytes) = entry.map_err(storage(doing))?;
        let id = id.value();
        match read_record("queue_deliveries", id, bytes.value()) {
            Ok(record) => rows.push((id, record)),
            Err(record) => unreadable.push(record),
        }
    }
    Ok((rows, unreadable))
}

/// A write joined to the transaction that takes a batch of events (the engine's call state),
/// so that both are stored or neither.
pub type AttachedWrite<'a> = &'a (dyn Fn(&WriteTransaction) -> Result<(), String> + 'a);

/// Takes `events` in one transaction: routes each and stores it, one row per selected plugin
/// and the call's plugin set, then runs `attached`. Returns, per event, its id and new rows
/// (none, and nothing stored, when routing selects no plugin). The commit is durable (an
/// fsync) when it stored an event; a batch that stored only the attached write is not, and
/// becomes durable with the next durable commit.
///
/// A call record that does not read is written afresh, so one damaged record cannot stop
/// events from being taken; it is reported through `unreadable` once the batch is committed
/// (a batch that fails reports nothing, and its retry meets the record again).
pub(crate) fn take(
    db: &Database,
    events: &[CallEvent],
    routing: &Routes,
    now: u64,
    attached: Option<AttachedWrite<'_>>,
    unreadable: &dyn Fn(QueueRecordUnreadable),
) -> Result<Vec<(Option<u64>, Rows)>, QueueError> {
    let doing = "taking events";
    let mut write = db.begin_write().map_err(storage(doing))?;
    let mut taken = Vec::with_capacity(events.len());
    let mut damaged = Vec::new();
    for event in events {
        taken.push(take_one(&write, event, routing, now, &mut damaged)?);
    }
    if let Some(attached) = attached {
        attached(&write).map_err(|message| QueueError::Storage { doing, message })?;
    }
    let stored_any = taken.iter().any(|(id, _)| id.is_some());
    set_durable(&mut write, stored_any)?;
    write.commit().map_err(storage(doing))?;
    damaged.into_iter().for_each(unreadable);
    Ok(taken)
}

/// Sets the commit's durability: `durable` is an fsync before `commit` returns; otherwise the
/// commit is visible at once and reaches the disk with the next durable commit.
fn set_durable(write: &mut WriteTransaction, durable: bool) -> Result<(), QueueError> {
    let durability = if durable {
        Durability::Immediate
    } else {
        Durability::None
    };
    write
        .set_durability(durability)
        .map_err(storage("choosing a commit's durability"))
}

/// Routes and stores one event within `write`.
fn take_one(
    write: &WriteTransaction,
    event: &CallEvent,
    routing: &Routes,
    now: u64,
    damaged: &mut Vec<QueueRecordUnreadable>,
) -> Result<(Option<u64>, Rows), QueueError> {
    let doing = "taking an event";
    let call = call_key(event);
    let mut calls = write.open_table(CALLS).map_err(storage(doing))?;
    let mut known: CallRecord = match calls.get(call.as_str()).map_err(storage(doing))? {
        Some(bytes) => read_record("queue_calls", &call, bytes.value()).unwrap_or_else(|record| {
            damaged.push(record);
            CallRecord::default()
        }),
        None => CallRecord::default(),
    };
    let learned = event
        .facts()
        .and_then(|facts| facts.queue.as_ref())
        .filter(|queue| !known.queues.contains(queue));
    if let Some(queue) = learned {
        known.queues.push(queue.clone());
    }
    let plugins: Vec<String> = match (event, event.user()) {
        (_, Some(user)) => routing
            .plugins_for_call(user, &known.queues)
            .into_iter()
            .map(str::to_string)
            .collect(),
        _ if !known.plugins.is_empty() => known.plugins.clone(),
        (CallEvent::Recording(recording), None) => match &recording.last_end {
            Some(end) => routing
                .plugins_for_call(&end.user, &known.queues)
                .into_iter()
                .map(str::to_string)
                .collect(),
            None => routing.default_plugins.clone(),
        },
        _ => routing.default_plugins.clone(),
    };
    if plugins.is_empty() {
        if learned.is_some() {
            calls
                .insert(call.as_str(), encode(&known).as_slice())
                .map_err(storage(doing))?;
        }
        return Ok((None, Vec::new()));
    }
    let mut meta = write.open_table(META).map_err(storage(doing))?;
    let event_id = meta
        .get(NEXT_ID_KEY)
        .map_err(storage(doing))?
        .map(|v| v.value())
        .unwrap_or(1);
    meta.insert(NEXT_ID_KEY, event_id + plugins.len() as u64 + 1)
        .map_err(storage(doing))?;
    let mut events = write.open_table(EVENTS).map_err(storage(doing))?;
    let record = EventRecord {
        event: event.clone(),
        taken_at: now,
    };
    events
        .insert(event_id, encode(&record).as_slice())
        .map_err(storage(doing))?;
    let mut deliveries = write.open_table(DELIVERIES).map_err(storage(doing))?;
    let mut rows = Vec::with_capacity(plugins.len());
    for (offset, plugin) in plugins.into_iter().enumerate() {
        let id = event_id + 1 + offset as u64;
        let row = DeliveryRecord {
            event: event_id,
            plugin,
            call: call.clone(),
            call_id: event.call_id().to_string(),
            event_name: event.name().to_string(),
            key: event.key(),
            taken_at: now,
            attempts: 0,
            series_start: now,
            series_failures: 0,
            next_at: now,
            parked: None,
            log: Vec::new(),
            replayed: false,
        };
        deliveries
            .insert(id, encode(&row).as_slice())
            .map_err(storage(doing))?;
        if !known.plugins.contains(&row.plugin) {
            known.plugins.push(row.plugin.clone());
        }
        rows.push((id, row));
    }
    known.last_at = now;
    calls
        .insert(call.as_str(), encode(&known).as_slice())
        .map_err(storage(doing))?;
    Ok((Some(event_id), rows))
}

/// The event of a delivery.
pub(crate) fn load_event(db: &Database, event_id: u64) -> Result<Option<CallEvent>, QueueError> {
    let doing = "reading an event";
    let read = db.begin_read().map_err(storage(doing))?;
    let events = read.open_table(EVENTS).map_err(storage(doing))?;
    let Some(bytes) = events.get(event_id).map_err(storage(doing))? else {
        return Ok(None);
    };
    let record: EventRecord = decode("queue_events", event_id, bytes.value())?;
    Ok(Some(record.event))
}

/// Records one attempt of delivery `id`, applies `change` and, for a receiver that is gone,
/// disables the plugin, all in one transaction. Returns the row as stored (`None` when it was
/// delivered, or no longer exists).
///
/// The commit is durable only when it disables the plugin. Otherwise it reaches the disk with
/// the next durable commit ([`flush`], or the next event taken): a crash before that repeats
/// the attempt, which at-least-once delivery allows (same idempotency key, and an interrupted
/// attempt is not counted).
pub(crate) fn record_attempt(
    db: &Database,
    id: u64,
    attempt: AttemptLog,
    change: &Change,
    log_limit: usize,
    disable: Option<&ParkRecord>,
) -> Result<Option<DeliveryRecord>, QueueError> {
    let doing = "recording a delivery attempt";
    let mut write = db.begin_write().map_err(storage(doing))?;
    let stored = {
        let mut deliveries = write.open_table(DELIVERIES).map_err(storage(doing))?;
        let row: Option<DeliveryRecord> = match deliveries.get(id).map_err(storage(doing))? {
            Some(bytes) => Some(decode("queue_deliveries", id, bytes.value())?),
            None => None,
        };
        let stored = match (row, change) {
            (None, _) => None,
            (Some(row), Change::Delivered) => {
                deliveries.remove(id).map_err(storage(doing))?;
                remove_event_if_done(&write, &deliveries, row.event)?;
                None
            }
            (Some(mut row), change) => {
                row.attempts = row.attempts.max(attempt.attempt);
                row.series_failures += 1;
                match change {
                    Change::Reschedule { next_at } => row.next_at = *next_at,
                    Change::Park {
                        reason,
                        outcome_unknown,
                    } => {
                        row.parked = Some(ParkRecord {
                            at: attempt.at,
                            reason: reason.clone(),
                            outcome_unknown: *outcome_unknown,
                        })
                    }
                    Change::Delivered => unreachable!("handled above"),
                }
                row.log.push(attempt);
                let excess = row.log.len().saturating_sub(log_limit.max(1));
                row.log.drain(..excess);
                deliveries
                    .insert(id, encode(&row).as_slice())
                    .map_err(storage(doing))?;
                Some(row)
            }
        };
        if let (Some(why), Some(row)) = (disable, &stored) {
            set_plugin(&write, &row.plugin, Some(why.clone()))?;
        }
        stored
    };
    set_durable(&mut write, disable.is_some())?;
    write.commit().map_err(storage(doing))?;
    Ok(stored)
}

/// Makes every earlier commit durable: an empty durable commit.
pub(crate) fn flush(db: &Database) -> Result<(), QueueError> {
    let doing = "flushing the queue to disk";
    let mut write = db.begin_write().map_err(storage(doing))?;
    set_durable(&mut write, true)?;
    write.commit().map_err(storage(doing))
}

/// Removes the event once none of its rows (the ids right after its own, up to the next
/// event's) is left.
fn remove_event_if_done(
    write: &WriteTransaction,
    deliveries: &redb::Table<u64, &[u8]>,
    event_id: u64,
) -> Result<(), QueueError> {
    let doing = "removing a delivered event";
    let mut events = write.open_table(EVENTS).map_err(storage(doing))?;
    let next_event = match events.range(event_id + 1..).map_err(storage(doing))?.next() {
        Some(entry) => entry.map_err(storage(doing))?.0.value(),
        None => u64::MAX,
    };
    let left = deliveries
        .range(event_id + 1..next_event)
        .map_err(storage(doing))?
        .next()
        .is_some();
    if !left {
        events.remove(event_id).map_err(storage(doing))?;
    }
    Ok(())
}

fn set_plugin(
    write: &WriteTransaction,
    plugin: &str,
    disabled: Option<ParkRecord>,
) -> Result<(), QueueError> {
    let doing = "writing a plugin state";
    let mut plugins = write.open_table(PLUGINS).map_err(storage(doing))?;
    match disabled {
        Some(why) => {
            let record = PluginRecord {
                disabled: Some(why),
            };
            plugins
                .insert(plugin, encode(&record).as_slice())
                .map_err(storage(doing))?;
        }
        None => {
            plugins.remove(plugin).map_err(storage(doing))?;
        }
    }
    Ok(())
}

/// Disables (`Some`) or re-enables (`None`) a plugin.
pub(crate) fn set_plugin_disabled(
    db: &Database,
    plugin: &str,
    disabled: Option<ParkRecord>,
) -> Result<(), QueueError> {
    let write = db
        .begin_write()
        .map_err(storage("writing a plugin state"))?;
    set_plugin(&write, plugin, disabled)?;
    write.commit().map_err(storage("writing a plugin state"))
}

/// Every delivery row that reads, for listing (those that do not were reported when the
/// queue opened).
pub(crate) fn all_deliveries(db: &Database) -> Result<Rows, QueueError> {
    delivery_rows(db, "listing deliveries").map(|(rows, _)| rows)
}

/// Moves the given rows back to pending with a new series starting `now`, or, for rows that
/// are pending already, moves their next attempt to `now`. Rows in `skip` (in flight) and
/// unknown ids are left alone. Returns the rows as stored.
pub(crate) fn retry_now(db: &Database, ids: &[u64], now: u64) -> Result<Rows, QueueError> {
    let doing = "retrying deliveries";
    let write = db.begin_write().map_err(storage(doing))?;
    let mut changed = Vec::new();
    {
        let mut deliveries = write.open_table(DELIVERIES).map_err(storage(doing))?;
        for &id in ids {
            let mut row: DeliveryRecord = match deliveries.get(id).map_err(storage(doing))? {
                Some(bytes) => decode("queue_deliveries", id, bytes.value())?,
                None => continue,
            };
            if row.parked.take().is_some() {
                row.series_start = now;
                row.series_failures = 0;
                row.replayed = true;
            }
            row.next_at = now;
            deliveries
                .insert(id, encode(&row).as_slice())
                .map_err(storage(doing))?;
            changed.push((id, row));
        }
    }
    write.commit().map_err(storage(doing))?;
    Ok(changed)
}

/// What [`expire_parked`] reads of a row: enough to judge it, without its log.
#[derive(Deserialize)]
struct ParkedProbe {
    event: u64,
    plugin: String,
    key: String,
    parked: Option<ParkRecord>,
}

/// A parked delivery [`expire_parked`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expired {
    pub id: u64,
    pub plugin: String,
    pub key: String,
    /// When it was parked, Unix milliseconds.
    pub parked_at: u64,
}

/// Removes at most `limit` deliveries parked before `before` (Unix milliseconds), with their
/// events once no other row needs them, in one transaction: bounded, so a large backlog is
/// worked off in several short ones. A row that does not read is left for the operator. The
/// commit is not durable; it reaches the disk with the next durable one (a crash before that
/// only expires the rows again).
pub(crate) fn expire_parked(
    db: &Database,
    before: u64,
    limit: usize,
) -> Result<Vec<Expired>, QueueError> {
    let doing = "expiring parked deliveries";
    let mut write = db.begin_write().map_err(storage(doing))?;
    let expired = {
        let mut deliveries = write.open_table(DELIVERIES).map_err(storage(doing))?;
        let mut found = Vec::new();
        for entry in deliveries.iter().map_err(storage(doing))? {
            if found.len() >= limit {
                break;
            }
            let (id, bytes) = entry.map_err(storage(doing))?;
            let Ok(row) = serde_json::from_slice::<ParkedProbe>(bytes.value()) else {
                continue;
            };
            if let Some(parked) = row.parked.filter(|parked| parked.at < before) {
                let expired = Expired {
                    id: id.value(),
                    plugin: row.plugin,
                    key: row.key,
                    parked_at: parked.at,
                };
                found.push((expired, row.event));
            }
        }
        for (expired, event) in &found {
            deliveries.remove(expired.id).map_err(storage(doing))?;
            remove_event_if_done(&write, &deliveries, *event)?;
        }
        found.into_iter().map(|(expired, _)| expired).collect()
    };
    set_durable(&mut write, false)?;
    write.commit().map_err(storage(doing))?;
    Ok(expired)
}

/// Forgets the plugin sets of calls not seen since `before`.
pub(crate) fn prune_calls(db: &Database, before: u64) -> Result<usize, QueueError> {
    let doing = "pruning call memory";
    let write = db.begin_write().map_err(storage(doing))?;
    let removed = {
        let mut calls = write.open_table(CALLS).map_err(storage(doing))?;
        let mut removed = 0;
        calls
            .retain(|_, bytes| {
                let keep = serde_json::from_slice::<CallRecord>(bytes)
                    .map(|record| record.last_at >= before)
                    .unwrap_or(false);
                removed += usize::from(!keep);
                keep
            })
            .map_err(storage(doing))?;
        removed
    };
    write.commit().map_err(storage(doing))?;
    Ok(removed)
}

/// How many events are stored.
#[cfg(test)]
pub(crate) fn event_count(db: &Database) -> Result<u64, QueueError> {
    use redb::ReadableTableMetadata;
    let read = db.begin_read().map_err(storage("counting events"))?;
    let events = read
        .open_table(EVENTS)
        .map_err(storage("counting events"))?;
    events.len().map_err(storage("counting events"))
}
