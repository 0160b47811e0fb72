//! The durable delivery queue: every derived event reaches every plugin that routing selects,
//! at least once, in order per call, across crashes, receiver outages and plugin failures.
//!
//! # Guarantees
//! - **Taken means stored.** [`Queue::enqueue`] (or [`Queue::take`], for a batch) routes the event and commits the event and one
//!   delivery row per selected plugin in one transaction; only when it returns `Ok` is the event
//!   taken. A crash before the commit loses nothing that was acknowledged.
//! - **Removed only on success.** A row is deleted in the same transaction that records the
//!   plugin's `delivered`; any other outcome updates it (attempt count, next time, history) or
//!   parks it. Delivery is therefore at least once: a crash between the plugin's success and
//!   the commit repeats the delivery, with the same idempotency key, [`CallEvent::key`], so the
//!   receiver can deduplicate. An attempt interrupted by a crash is not counted: its number is
//!   handed to the plugin again.
//! - **Order per (call, plugin).** The rows of one call for one plugin form a *lane*, ordered
//!   by id (ids grow in the order events were taken). Only a lane's head is attempted, one
//!   attempt at a time, so a later event waits while an earlier one is retried. Lanes of other
//!   calls and other plugins proceed independently. A *parked* row leaves its lane (it would
//!   otherwise block the call forever); replaying it later delivers it after its successors.
//!   The call is its id without the link, which changes on transfers.
//! - **Limits per plugin** ([`PluginPolicy`]): a concurrency cap, an optional rate limit, and a
//!   circuit breaker that pauses a failing plugin; deliveries waiting behind a limit or a
//!   paused breaker spend no attempts. A plugin whose receiver answered 410 is disabled,
//!   durably, until [`Queue::enable_plugin`].
//! - **Retries** follow [`RetryPolicy`]; `rejected` parks at once, `failed` (trap, time-out) is
//!   retried like `retry`. Parked rows are listed and replayed with [`replay`].
//! - **Parked rows expire.** A row parked longer than [`QueueConfig::parked_keep`] (30 days by
//!   default) is removed, with its event once no other row needs it, and counted per plugin.
//!   The scheduler looks when it starts and then every hour, removing at most a few hundred
//!   rows per transaction, so a large backlog never holds the database for long.
//! - **A damaged record costs only itself.** A delivery row or plugin record that does not read
//!   when the queue opens, or a call record that does not read when an event of its call is
//!   taken, is logged with its table and key and counted (`callhook_queue_records_unreadable`,
//!   [`QueueStats::unreadable_records`]); the row is left in place for inspection and not
//!   scheduled or listed, the call record is written afresh (the call's plugins are then
//!   chosen by routing alone). Everything else is delivered.
//! - **Restart.** [`Queue::open`] schedules every pending row again, lanes in id order, with the
//!   attempt counts and next times stored. [`Queue::shutdown`] stops taking events and lets
//!   running attempts finish within a grace period; those that do not are simply attempted
//!   again after the restart.
//!
//! # Why redb
//! The host already keeps the plugins' key-value store in redb, so the queue shares that one
//! file: pure Rust (no C toolchain, no bundled SQLite), ACID transactions with copy-on-write
//! B-trees whose commits are crash-safe (a torn write leaves the previous commit intact), and
//! no server to run. Transactions are synchronous and short; the queue runs them inline on its
//! tasks.
//!
//! # Commits and fsyncs
//! An fsync costs milliseconds on a real disk, so the queue spends them only where a guarantee
//! needs one:
//! - **Taking events is durable** (an fsync before [`Queue::take`] returns), and takes a whole
//!   batch at once: group commit. The derivation hands over every event of the changes that
//!   arrived meanwhile, together with the engine's call state, so under load one fsync covers
//!   many events instead of a backlog of one fsync per event building up.
//! - **An attempt's outcome is not fsynced** (except a 410 that disables a plugin); it reaches
//!   the disk with the next durable commit, at the latest after about a second. A crash before
//!   that repeats the attempt, which at-least-once delivery allows: same idempotency key, and
//!   the interrupted attempt is not counted.
//! - Operator actions (retry, enable, disable) are durable.
//!
//! # On-disk format (version 1)
//! Tables in the shared database, all prefixed `queue_`; values are JSON (serde) so that a
//! stuck delivery can be read with any redb viewer; times are Unix milliseconds.
//! - `queue_meta: &str → u64`: `format` = 1 (opening refuses another version), `next_id` =
//!   the next free id.
//! - `queue_events: u64 → json`: an event id → `{event, taken_at}`, the [`CallEvent`] as taken.
//! - `queue_deliveries: u64 → json`: a delivery id → `{event, plugin, call, call_id,
//!   event_name, key, taken_at, attempts, series_start, series_failures, next_at, parked:
//!   {at, reason}?, log: [{at, attempt, outcome, message?, duration_ms}]}`. An event with
//!   *k* rows takes the ids *e* (the event) and *e+1 ..= e+k* (its rows), so an event's rows are
//!   the delivery ids between its own id and the next event's, and the event is deleted with
//!   its last row. `log` keeps the last [`QueueConfig::attempt_log`] outcomes.
//! - `queue_calls: &str → json`: a call (id without link) → `{plugins, last_at}`, the plugins
//!   that were given the call's events, so its `recording`, which has no user to route by,
//!   reaches the same plugins. Forgotten after [`QueueConfig::call_memory`].
//! - `queue_plugins: &str → json`: a plugin → `{disabled: {at, reason}?}`.

pub mod cli_format;
pub mod config;
mod delivery;
pub mod metrics;
pub mod replay;
pub mod retry;
mod routing;
mod schedule;
mod store;
#[cfg(test)]
mod tests;

pub use config::{BreakerPolicy, PluginPolicy, QueueConfig};
pub use delivery::{DeliveryOutcome, DeliveryRequest};
pub use metrics::BreakerState;
pub use metrics::{PluginStats, QueueStats};
pub use replay::{Attempt, DeliveryFilter, DeliveryInfo, DeliveryStatus};
pub use retry::RetryPolicy;
pub use routing::{NumberPattern, Route, Routes};

use crate::calls::event::CallEvent;
use crate::telemetry::queue::{
    AttemptEnded, ParkedDeliveryExpired, ParkedExpired, PluginPaused, QueueRecordSkipped,
    StoreFailed,
};
use redb::Database;
use schedule::{Row, Start, State};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, SystemTime};
use store::{AttemptLog, Change, ParkRecord};

pub use store::AttachedWrite;
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

/// Runs one delivery attempt: the plugin boundary as the queue sees it. The host implements
/// it with the plugin runtime; tests use a fake.
pub trait Deliverer: Send + Sync + 'static {
    /// Delivers `request` with the plugin named `plugin`. A plugin the deliverer does not know
    /// should answer [`DeliveryOutcome::Failed`].
    fn deliver(
        &self,
        plugin: &str,
        request: DeliveryRequest<'_>,
    ) -> impl Future<Output = DeliveryOutcome> + Send;
}

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The database failed; nothing of the operation was committed.
    #[error("queue storage failed while {doing}: {message}")]
    Storage {
        /// What the queue was doing.
        doing: &'static str,
        /// The database's message.
        message: String,
    },
    /// A stored record could not be read.
    #[error("corrupt queue record {table}[{key}]: {message}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The record's key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The database was written by a queue of another format version.
    #[error("queue format {found} on disk, this build reads format {expected}")]
    Format {
        /// The version found.
        found: u64,
        /// The version this build reads.
        expected: u64,
    },
    /// [`Queue::shutdown`] was called: the event was not taken.
    #[error("the queue is shutting down; event not taken")]
    ShuttingDown,
    /// No delivery has this id (it was delivered, or never existed).
    #[error("no delivery {0} in the queue")]
    NoSuchDelivery(u64),
}

impl QueueError {
    /// Whether the database refuses every further transaction until it is closed and opened
    /// again: redb does so after its first failed write or fsync ("Previous I/O error
    /// occurred"). Only a new process helps then; what was committed before is intact.
    pub fn needs_reopen(&self) -> bool {
        matches!(self, QueueError::Storage { message, .. } if message.contains(REDB_PREVIOUS_IO))
    }
}

/// The start of redb's message for [`redb::StorageError::PreviousIo`]; a test in `app::derive`
/// produces the real error with a failing fsync, so a redb that words it differently fails there.
const REDB_PREVIOUS_IO: &str = "Previous I/O error";

/// Wall-clock time for the queue, advancing with tokio's clock.
///
/// It reads the system time once and then adds tokio's monotonic elapsed time, so stored
/// times and scheduling agree, and tests with `tokio::time::pause()` control both. Share one
/// clock between the queues of a test that reopens the database.
#[derive(Debug, Clone)]
pub struct Clock {
    anchor_ms: u64,
    anchor: tokio::time::Instant,
}

impl Clock {
    /// The system's time now.
    pub fn system() -> Clock {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        Clock::starting_at(now.as_millis() as u64)
    }

    /// A clock that reads `unix_ms` now.
    pub fn starting_at(unix_ms: u64) -> Clock {
        Clock {
            anchor_ms: unix_ms,
            anchor: tokio::time::Instant::now(),
        }
    }

    /// Unix milliseconds now.
    pub fn now_ms(&self) -> u64 {
        self.anchor_ms + self.anchor.elapsed().as_millis() as u64
    }
}

/// What [`Queue::enqueue`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// The event's id; `None` when routing selected no plugin and nothing was stored.
    pub event: Option<u64>,
    /// The delivery rows: id and plugin.
    pub deliveries: Vec<(u64, String)>,
}

/// What [`Queue::shutdown`] left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Attempts still running at the end of the grace period; they were abandoned and will be
    /// attempted again after the restart.
    pub interrupted: usize,
}

/// The durable queue and its scheduler. Dropping it without [`Queue::shutdown`] stops the
/// scheduler and abandons running attempts, like a crash.
pub struct Queue<D: Deliverer> {
    inner: Arc<Inner<D>>,
    scheduler: Mutex<Option<JoinHandle<JoinSet<()>>>>,
}

struct Inner<D> {
    db: Arc<Database>,
    /// Swapped by [`Queue::reconfigure`]; an attempt uses the one in force when it starts.
    config: RwLock<Arc<QueueConfig>>,
    clock: Clock,
    /// Swapped by [`Queue::reconfigure`]; an attempt keeps the one it started with.
    deliverer: RwLock<Arc<D>>,
    state: Mutex<State>,
    wake: Notify,
    /// Held while taking an event, so ids enter the scheduler in commit order and no event is
    /// taken after shutdown begins.
    taking: Mutex<()>,
    stopping: AtomicBool,
    /// Set by a commit that is not durable yet; cleared by [`store::flush`].
    unflushed: AtomicBool,
    /// How long parked rows are kept ([`QueueConfig::parked_keep`] as given to `open`).
    parked_keep: Option<Duration>,
    /// Stored records skipped because they did not read.
    unreadable: AtomicU64,
}

impl<D> Inner<D> {
    /// Logs and counts a stored record that did not read; the caller skips it.
    fn skip_unreadable(&self, record: store::QueueRecordUnreadable) {
        QueueRecordSkipped {
            table: record.table,
            key: &record.key,
            error: &record.error,
        }
        .emit(&self.unreadable);
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn config(&self) -> Arc<QueueConfig> {
        self.config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn deliverer(&self) -> Arc<D> {
        self.deliverer
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Makes every commit so far durable, if one is not.
    fn flush(&self) {
        if self.unflushed.swap(false, Ordering::SeqCst)
            && let Err(error) = store::flush(&self.db)
        {
            self.unflushed.store(true, Ordering::SeqCst);
            tracing::error!(%error, "could not flush the delivery queue to disk");
        }
    }

    /// Removes up to [`EXPIRE_BATCH`] rows parked longer than `parked_keep`, in one
    /// transaction, and counts them per plugin. Returns whether more may be left. Holds the
    /// scheduler's state across the write, like [`Queue::retry_all`], so an operator's retry
    /// and the expiry never both count the same row.
    fn expire_parked(&self) -> bool {
        let Some(keep) = self.parked_keep else {
            return false;
        };
        let now = self.clock.now_ms();
        let before = now.saturating_sub(keep.as_millis() as u64);
        let mut state = self.state();
        let expired = match store::expire_parked(&self.db, before, EXPIRE_BATCH) {
            Ok(expired) => expired,
            Err(error) => {
                tracing::error!(%error, "could not expire parked deliveries");
                return false;
            }
        };
        if expired.is_empty() {
            return false;
        }
        self.unflushed.store(true, Ordering::SeqCst);
        let mut by_plugin: std::collections::BTreeMap<&str, usize> = Default::default();
        for row in &expired {
            let run = state.plugin(&row.plugin, now);
            ParkedDeliveryExpired {
                plugin: &row.plugin,
                delivery: row.id,
                key: &row.key,
                parked_at: &replay::timestamp(row.parked_at),
            }
            .emit(&mut run.parked_expired);
            run.parked = run.parked.saturating_sub(1);
            *by_plugin.entry(&row.plugin).or_default() += 1;
        }
        drop(state);
        for (plugin, count) in by_plugin {
            ParkedExpired {
                plugin,
                count,
                keep,
            }
            .emit();
        }
        expired.len() == EXPIRE_BATCH
    }
}

/// How long a row waits after its outcome could not be recorded.
const STORE_RETRY_MS: u64 = 5_000;
/// Call memory is pruned every this many events taken.
const PRUNE_EVERY: u64 = 4096;
/// How long a commit that is not durable (an attempt's outcome, the engine's state alone) may
/// wait for a durable one before the scheduler makes one.
const FLUSH_WITHIN: Duration = Duration::from_secs(1);
/// How often the scheduler looks for parked rows to expire (and once when it starts).
const EXPIRE_EVERY: Duration = Duration::from_secs(3600);
/// At most this many parked rows are expired per transaction; more wait for the next one,
/// which follows at once.
const EXPIRE_BATCH: usize = 500;

impl<D: Deliverer> Queue<D> {
    /// Opens the queue in `db` (creating its tables), schedules every pending row and starts
    /// the scheduler. Must be called within a tokio runtime.
    pub fn open(db: Arc<Database>, config: QueueConfig, deliverer: D) -> Result<Self, QueueError> {
        Queue::open_with_clock(db, config, deliverer, Clock::system())
    }

    /// [`Queue::open`] with a given clock (for tests).
    pub fn open_with_clock(
        db: Arc<Database>,
        config: QueueConfig,
        deliverer: D,
        clock: Clock,
    ) -> Result<Self, QueueError> {
        let now = clock.now_ms();
        let loaded = store::open(&db)?;
        let before = now.saturating_sub(config.call_memory().as_millis() as u64);
        store::prune_calls(&db, before)?;
        let mut state = State::new(&config, now);
        for (plugin, why) in loaded.disabled {
            state.set_disabled(&plugin, Some(why), now);
        }
        let (mut pending, mut parked) = (0, 0);
        for (id, record) in &loaded.deliveries {
            if record.parked.is_some() {
                state.plugin(&record.plugin, now).parked += 1;
                parked += 1;
            } else {
                state.insert(*id, Row::from_record(record), now);
                pending += 1;
            }
        }
        tracing::info!(pending, parked, "delivery queue opened");
        let parked_keep = config.parked_keep;
        let unreadable = loaded.unreadable;
        let inner = Arc::new(Inner {
            db,
            config: RwLock::new(Arc::new(config)),
            clock,
            deliverer: RwLock::new(Arc::new(deliverer)),
            state: Mutex::new(state),
            wake: Notify::new(),
            taking: Mutex::new(()),
            stopping: AtomicBool::new(false),
            unflushed: AtomicBool::new(false),
            parked_keep,
            unreadable: AtomicU64::new(0),
        });
        for record in unreadable {
            inner.skip_unreadable(record);
        }
        let scheduler = tokio::spawn(run_scheduler(inner.clone()));
        Ok(Queue {
            inner,
            scheduler: Mutex::new(Some(scheduler)),
        })
    }

    /// Takes `event`: routes it and commits it with one delivery row per selected plugin. The
    /// event is taken only when this returns `Ok`. Synchronous (one short write transaction
    /// with an fsync).
    pub fn enqueue(&self, event: &CallEvent) -> Result<Enqueued, QueueError> {
        let mut taken = self.take(std::slice::from_ref(event), None)?;
        Ok(taken.pop().expect("one result per event"))
    }

    /// Takes a batch of events in one transaction (one fsync for all: group commit), in order,
    /// together with `attached`, the caller's own write (the engine's call state). Either all
    /// of it is stored or none: the events are taken only when this returns `Ok`. Returns what
    /// was stored per event. A batch that stores no event (routing selected no plugin, or
    /// `events` is empty) commits `attached` without an fsync; it becomes durable within
    /// about a second.
    pub fn take(
        &self,
        events: &[CallEvent],
        attached: Option<AttachedWrite<'_>>,
    ) -> Result<Vec<Enqueued>, QueueError> {
        let inner = &self.inner;
        let _taking = inner.taking.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.stopping.load(Ordering::SeqCst) {
            return Err(QueueError::ShuttingDown);
        }
        let now = inner.clock.now_ms();
        let config = inner.config();
        let skip = |record| inner.skip_unreadable(record);
        let taken = store::take(&inner.db, events, &config.routing, now, attached, &skip)?;
        if attached.is_some() && taken.iter().all(|(id, _)| id.is_none()) {
            inner.unflushed.store(true, Ordering::SeqCst);
        }
        let count = {
            let mut state = inner.state();
            for (id, record) in taken.iter().flat_map(|(_, rows)| rows) {
                state.insert(*id, Row::from_record(record), now);
            }
            let before = state.taken;
            state.taken += taken.iter().filter(|(id, _)| id.is_some()).count() as u64;
            (before, state.taken)
        };
        inner.wake.notify_one();
        if count.0 / PRUNE_EVERY != count.1 / PRUNE_EVERY {
            let before = now.saturating_sub(config.call_memory().as_millis() as u64);
            if let Err(error) = store::prune_calls(&inner.db, before) {
                tracing::warn!(%error, "could not prune the queue's call memory");
            }
        }
        Ok(events
            .iter()
            .zip(taken)
            .map(|(event, (event_id, rows))| {
                tracing::debug!(
                    call_id = %event.call_id(),
                    event = event.name(),
                    deliveries = rows.len(),
                    "event taken"
                );
                Enqueued {
                    event: event_id,
                    deliveries: rows
                        .into_iter()
                        .map(|(id, record)| (id, record.plugin))
                        .collect(),
                }
            })
            .collect())
    }

    /// Puts a new configuration and deliverer in force (hot reload), without losing or
    /// repeating anything: events are taken with the new routing from now on; attempts that
    /// have started finish with the old deliverer, every later attempt uses the new one.
    /// Deliveries queued for a plugin that `config` no longer lists are kept and wait; they
    /// resume if the plugin is configured again (or can be listed with `deliveries list`).
    /// [`QueueConfig::parked_keep`] stays the one given to [`Queue::open`].
    pub fn reconfigure(&self, config: QueueConfig, deliverer: D) {
        let inner = &self.inner;
        let _taking = inner.taking.lock().unwrap_or_else(PoisonError::into_inner);
        let now = inner.clock.now_ms();
        let policies = config.plugins.clone();
        // Configuration and deliverer first: what the new policies let start must find both
        // in force.
        *inner.config.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
        *inner
            .deliverer
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(deliverer);
        inner.state().set_policies(&policies, now);
        inner.wake.notify_one();
    }

    /// The database the queue keeps its tables in.
    pub fn database(&self) -> &Arc<Database> {
        &self.inner.db
    }

    /// A snapshot of depths, ages and counters, for `/metrics`.
    pub fn stats(&self) -> QueueStats {
        let now = self.inner.clock.now_ms();
        let state = self.inner.state();
        let pending = state.pending_by_plugin();
        let age = |start: Option<u64>| start.map(|s| Duration::from_millis(now.saturating_sub(s)));
        let mut stats = QueueStats {
            events_taken: state.taken,
            unreadable_records: self.inner.unreadable.load(Ordering::Relaxed),
            ..QueueStats::default()
        };
        let mut oldest: Option<u64> = None;
        for (name, run) in state.plugins() {
            let (count, start) = pending.get(name).copied().unwrap_or_default();
            stats.depth += count;
            stats.parked += run.parked;
            if let Some(start) = start {
                oldest = Some(oldest.map_or(start, |o| o.min(start)));
            }
            stats.plugins.insert(
                name.to_string(),
                PluginStats {
                    configured: run.known(),
                    pending: count,
                    parked: run.parked,
                    parked_expired: run.parked_expired,
                    in_flight: run.in_flight(),
                    oldest_pending_age: age(start),
                    disabled: run.disabled.is_some(),
                    breaker: run.breaker(),
                    breaker_opened: run.breaker_opened(),
                    outcomes: run.outcomes.clone(),
                    durations: run.durations.clone(),
                },
            );
        }
        stats.oldest_pending_age = age(oldest);
        stats
    }

    /// Disables `plugin` until [`Queue::enable_plugin`]: its deliveries wait. Durable.
    pub fn disable_plugin(&self, plugin: &str, reason: &str) -> Result<(), QueueError> {
        let now = self.inner.clock.now_ms();
        let why = ParkRecord {
            at: now,
            reason: reason.to_string(),
            outcome_unknown: false,
        };
        store::set_plugin_disabled(&self.inner.db, plugin, Some(why.clone()))?;
        self.inner.state().set_disabled(plugin, Some(why), now);
        Ok(())
    }

    /// Re-enables `plugin` (after a 410, or [`Queue::disable_plugin`]); its waiting deliveries
    /// resume. The delivery parked by the 410 stays parked until retried. Returns whether the
    /// plugin was disabled.
    pub fn enable_plugin(&self, plugin: &str) -> Result<bool, QueueError> {
        let now = self.inner.clock.now_ms();
        let was = self
            .inner
            .state()
            .plugins()
            .get(plugin)
            .is_some_and(|run| run.disabled.is_some());
        store::set_plugin_disabled(&self.inner.db, plugin, None)?;
        self.inner.state().set_disabled(plugin, None, now);
        self.inner.wake.notify_one();
        Ok(was)
    }

    /// The disabled plugins: name, since when, and why.
    pub fn disabled_plugins(&self) -> Vec<(String, jiff::Timestamp, String)> {
        self.inner
            .state()
            .plugins()
            .iter()
            .filter_map(|(name, run)| {
                let why = run.disabled.as_ref()?;
                Some((
                    name.to_string(),
                    replay::timestamp(why.at),
                    why.reason.clone(),
                ))
            })
            .collect()
    }

    /// Stops taking events, lets running attempts finish for up to `grace`, then abandons the
    /// rest (they stay pending on disk) and stops the scheduler. Calling it again does nothing.
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        {
            let _taking = self
                .inner
                .taking
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            self.inner.stopping.store(true, Ordering::SeqCst);
            self.inner.state().stopping = true;
        }
        self.inner.wake.notify_one();
        let handle = self
            .scheduler
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(handle) = handle else {
            return ShutdownReport::default();
        };
        let Ok(mut tasks) = handle.await else {
            return ShutdownReport::default();
        };
        let drained = async { while tasks.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(grace, drained).await;
        let interrupted = tasks.len();
        tasks.shutdown().await;
        self.inner.flush();
        tracing::info!(interrupted, "delivery queue stopped");
        ShutdownReport { interrupted }
    }
}

impl<D: Deliverer> Drop for Queue<D> {
    fn drop(&mut self) {
        let handle = self
            .scheduler
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            handle.abort();
        }
    }
}

/// Starts what may start, then sleeps until the next due time, a change, or a finished
/// attempt. Returns the running attempts when shutdown begins.
async fn run_scheduler<D: Deliverer>(inner: Arc<Inner<D>>) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    let mut flush_at: Option<tokio::time::Instant> = None;
    let mut expire_at = tokio::time::Instant::now();
    loop {
        if expire_at <= tokio::time::Instant::now() {
            let more = inner.expire_parked();
            expire_at =
                tokio::time::Instant::now() + if more { Duration::ZERO } else { EXPIRE_EVERY };
        }
        if inner.unflushed.load(Ordering::SeqCst) {
            let at = *flush_at.get_or_insert_with(|| tokio::time::Instant::now() + FLUSH_WITHIN);
            if at <= tokio::time::Instant::now() {
                inner.flush();
                flush_at = None;
            }
        } else {
            flush_at = None;
        }
        let now = inner.clock.now_ms();
        let (starts, wake) = {
            let mut state = inner.state();
            if state.stopping {
                return tasks;
            }
            state.pump(now)
        };
        for start in starts {
            tasks.spawn(attempt(inner.clone(), start));
        }
        let sleep = async {
            match wake {
                Some(at) => tokio::time::sleep(Duration::from_millis(at.saturating_sub(now))).await,
                None => std::future::pending().await,
            }
        };
        let flush = async {
            match flush_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = inner.wake.notified() => {}
            _ = sleep => {}
            _ = flush => {}
            _ = tokio::time::sleep_until(expire_at) => {}
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(error) = joined {
                    tracing::error!(%error, "a delivery task ended abnormally");
                }
            }
        }
    }
}

/// One attempt of one row: load the event, call the deliverer, record the outcome, update
/// the schedule.
async fn attempt<D: Deliverer>(inner: Arc<Inner<D>>, start: Start) {
    let Start { id, row } = start;
    let plugin: &str = &row.lane.plugin;
    let config = inner.config();
    let policy = config.plugins.get(plugin).cloned().unwrap_or_default();
    let event = match store::load_event(&inner.db, row.event) {
        Ok(event) => event,
        Err(error) => {
            StoreFailed {
                plugin,
                call_id: &row.lane.call,
                delivery: id,
                error: &error,
            }
            .emit();
            let retry = Row {
                next_at: inner.clock.now_ms() + STORE_RETRY_MS,
                ..row.clone()
            };
            let now = inner.clock.now_ms();
            inner.state().finish(id, &row.lane, Some(retry), None, now);
            inner.wake.notify_one();
            return;
        }
    };
    let attempt_no = row.attempts + 1;
    let started = tokio::time::Instant::now();
    let outcome = match &event {
        Some(event) => {
            let key = event.key();
            let request = DeliveryRequest {
                event,
                idempotency_key: &key,
                attempt: attempt_no,
                timestamp: inner.clock.now_ms() / 1000,
                replayed: row.replayed,
            };
            let deliverer = inner.deliverer();
            let delivery = AssertUnwindSafe(deliverer.deliver(plugin, request));
            catch_unwind(delivery)
                .await
                .unwrap_or_else(|| DeliveryOutcome::Failed {
                    message: "the delivery panicked".to_string(),
                })
        }
        // The row outlived its event: nothing can be delivered; park it for inspection.
        None => DeliveryOutcome::Rejected {
            message: format!("event {} of this delivery is missing", row.event),
            target_gone: false,
        },
    };
    let duration = started.elapsed();
    let now = inner.clock.now_ms();
    let (change, disable) = decide(&outcome, &row, now, &policy.retry);
    let log = AttemptLog {
        at: now,
        attempt: attempt_no,
        outcome: outcome.label().to_string(),
        message: outcome.message().map(str::to_string),
        duration_ms: duration.as_millis() as u64,
    };
    let limit = config.attempt_log();
    let recorded = store::record_attempt(&inner.db, id, log, &change, limit, disable.as_ref());
    if disable.is_none() && recorded.is_ok() {
        inner.unflushed.store(true, Ordering::SeqCst);
    }
    let call_id = event
        .as_ref()
        .map(|e| e.call_id().to_string())
        .unwrap_or_else(|| row.lane.call.to_string());
    let key = event.as_ref().map(|e| e.key()).unwrap_or_default();
    let (next_row, parked, next) = match &recorded {
        Ok(Some(record)) if record.parked.is_some() => {
            (None, true, format!("parked: {}", describe(&change)))
        }
        Ok(Some(record)) => (Some(Row::from_record(record)), false, describe(&change)),
        Ok(None) => (None, false, "removed".to_string()),
        Err(error) => {
            StoreFailed {
                plugin,
                call_id: &call_id,
                delivery: id,
                error,
            }
            .emit();
            let retry = Row {
                next_at: now + STORE_RETRY_MS,
                ..row.clone()
            };
            (
                Some(retry),
                false,
                "repeated after a storage failure".to_string(),
            )
        }
    };
    let working = match outcome {
        // The plugin ran and decided; an unknown outcome is parked like a rejection.
        DeliveryOutcome::Delivered
        | DeliveryOutcome::Rejected { .. }
        | DeliveryOutcome::UnknownOutcome { .. } => true,
        DeliveryOutcome::Retry { .. } | DeliveryOutcome::Failed { .. } => false,
    };
    let opened = {
        let mut state = inner.state();
        let run = state.plugin(plugin, now);
        AttemptEnded {
            plugin,
            call_id: &call_id,
            key: &key,
            delivery: id,
            attempt: attempt_no,
            outcome: &outcome,
            duration,
            next: &next,
        }
        .emit(&mut run.outcomes, &mut run.durations);
        run.parked += u64::from(parked);
        if recorded.is_ok()
            && let Some(why) = disable
        {
            PluginPaused {
                plugin,
                why: &why.reason,
            }
            .emit();
            state.set_disabled(plugin, Some(why), now);
        }
        state.finish(id, &row.lane, next_row, Some(working), now)
    };
    if opened {
        PluginPaused {
            plugin,
            why: "circuit breaker: consecutive failures",
        }
        .emit();
    }
    inner.wake.notify_one();
}

/// What an outcome does to its row, and whether it disables the plugin.
fn decide(
    outcome: &DeliveryOutcome,
    row: &Row,
    now: u64,
    policy: &RetryPolicy,
) -> (Change, Option<ParkRecord>) {
    let asked = match outcome {
        DeliveryOutcome::Delivered => return (Change::Delivered, None),
        DeliveryOutcome::Rejected {
            message,
            target_gone: true,
        } => {
            let reason = format!("target gone: {message}");
            let disable = ParkRecord {
                at: now,
                reason: reason.clone(),
                outcome_unknown: false,
            };
            let park = Change::Park {
                reason,
                outcome_unknown: false,
            };
            return (park, Some(disable));
        }
        DeliveryOutcome::Rejected { message, .. } => {
            let reason = format!("rejected: {message}");
            let park = Change::Park {
                reason,
                outcome_unknown: false,
            };
            return (park, None);
        }
        DeliveryOutcome::UnknownOutcome { message } => {
            let reason = format!("outcome unknown: {message}");
            let park = Change::Park {
                reason,
                outcome_unknown: true,
            };
            return (park, None);
        }
        DeliveryOutcome::Retry { after, .. } => *after,
        DeliveryOutcome::Failed { .. } => None,
    };
    let age = Duration::from_millis(now.saturating_sub(row.series_start));
    let failed = row.series_failures + 1;
    match policy.next_step(failed, age, asked, retry::random_unit()) {
        retry::NextStep::RetryIn(delay) => (
            Change::Reschedule {
                next_at: now + delay.as_millis() as u64,
            },
            None,
        ),
        retry::NextStep::GiveUp(reason) => {
            let last = outcome.message().unwrap_or_default();
            let reason = format!("{reason}; last: {last}");
            let park = Change::Park {
                reason,
                outcome_unknown: false,
            };
            (park, None)
        }
    }
}

fn describe(change: &Change) -> String {
    match change {
        Change::Delivered => "removed".to_string(),
        Change::Reschedule { next_at } => format!("retry at {}", replay::timestamp(*next_at)),
        Change::Park { reason, .. } => reason.clone(),
    }
}

/// Runs `future`, turning a panic into `None`, so a panicking deliverer cannot leave its lane
/// busy forever.
async fn catch_unwind<F: Future>(future: AssertUnwindSafe<F>) -> Option<F::Output> {
    use std::pin::pin;
    use std::task::Poll;
    let mut future = pin!(future.0);
    std::future::poll_fn(move |cx| {
        match std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Some(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(None),
        }
    })
    .await
}
