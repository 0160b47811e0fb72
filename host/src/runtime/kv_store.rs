//! The plugins' persistent key-value store, with per-plugin quotas.
//!
//! On disk: one redb database; table `plugin_kv` maps `(plugin, key)` to the value bytes, and
//! table `plugin_kv_usage` maps `plugin` to the bytes it uses (keys plus values), updated in the
//! same transaction, so a quota check never scans.
//!
//! **Durability.** A `set`, `set-if` or `delete` that returned `Ok` is committed with redb's
//! default durability (`Immediate`: the commit fsyncs before it returns), so it survives a crash
//! right after; the idempotency of CRM plugins rests on that.
//!
//! **Group commit.** The database is the queue's, and redb has one writer at a time: with one
//! fsync'd transaction per write, a plugin writing a key on every delivery put one fsync (about
//! 2 ms on our disk) per delivery in line with the queue's own commits, and the pipeline's p99
//! went from about 100 ms to 3 s at 400 events/s (`docs/benchmarks.md`, `steady -- kv`). So
//! every write goes to one writer thread per store ([`writer`]), which applies all the writes
//! waiting, in arrival order, in one transaction with one commit, and answers each caller only
//! once that commit is durable: the fsync is paid per batch, not per write. The callers block
//! (the host API runs them on `spawn_blocking`); reads do not go through the writer.
//! - **Each write has its own result.** A write decides its own failure (key too long, value
//!   too large, quota exceeded) before it changes anything but the removal of its plugin's
//!   expired entries (invisible already), so a failed write leaves no trace and the others in
//!   the batch commit. Later writes in a batch see
//!   the earlier ones, as if each were its own transaction in that order: quotas add up, and of
//!   several `set-if` racing on a key exactly one wins.
//! - **Storage failures fail the batch.** When the database fails (it refuses transactions after
//!   an I/O error until it is opened again, see `docs/decisions.md`, "Storage that fails"),
//!   every write of the batch is answered [`KvError::Unavailable`] with the database's message
//!   (as before, such a write is not known to be durable: a failed fsync may or may not have
//!   reached the disk), and the writer goes on with the next batch; no caller waits for ever.
//! - **Bounded.** A batch holds at most [`writer::MAX_BATCH_WRITES`] writes or about
//!   [`writer::MAX_BATCH_BYTES`] of keys and values; at most [`writer::MAX_WAITING`] writes
//!   wait for the writer, and a caller beyond that blocks until there is room (each waiting
//!   write holds only its caller's own key and value).
//!
//! **Expiring entries** (contract 0.2's `set-expiring`): `plugin_kv_expires` maps
//! `(plugin, key)` to the Unix millisecond the entry expires at, and `plugin_kv_expiry` indexes
//! the same as `(plugin, at, key)`, so the expired entries of a plugin are one range. An expired
//! entry is invisible to `get` at once and removed (freeing its quota) by the plugin's next
//! write, up to [`SWEEP_PER_WRITE`] at a time, in that write's transaction: no background task.
//! `set` and `set-if` clear an entry's expiry; `delete` removes it with the entry.
//!
//! **Compare-and-set** (`set-if`) reads and writes in the writer's transaction, after the
//! writes that arrived before it; so two deliveries racing on a key cannot both win.

#[cfg(test)]
mod tests;
mod writer;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use writer::Writer;

const VALUES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("plugin_kv");
const USAGE: TableDefinition<&str, u64> = TableDefinition::new("plugin_kv_usage");
const EXPIRES: TableDefinition<(&str, &str), u64> = TableDefinition::new("plugin_kv_expires");
const EXPIRY: TableDefinition<(&str, u64, &str), ()> = TableDefinition::new("plugin_kv_expiry");

/// How many expired entries one write removes at most.
pub const SWEEP_PER_WRITE: usize = 64;

/// The limits of each plugin's store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvQuota {
    /// Longest key, in bytes. By default 256.
    pub max_key_bytes: u32,
    /// Largest value, in bytes. By default 64 KiB.
    pub max_value_bytes: u32,
    /// All keys and values of one plugin together, in bytes. By default 1 MiB.
    pub max_total_bytes: u64,
}

impl Default for KvQuota {
    fn default() -> Self {
        KvQuota {
            max_key_bytes: 256,
            max_value_bytes: 64 << 10,
            max_total_bytes: 1 << 20,
        }
    }
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The key is longer than [`KvQuota::max_key_bytes`].
    #[error("key longer than {0} bytes")]
    KeyTooLong(u32),
    /// The value is larger than [`KvQuota::max_value_bytes`].
    #[error("value larger than {0} bytes")]
    ValueTooLarge(u32),
    /// The plugin would use more than [`KvQuota::max_total_bytes`].
    #[error("quota of {0} bytes exceeded")]
    QuotaExceeded(u64),
    /// The database failed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

fn unavailable(error: impl std::fmt::Display) -> KvError {
    KvError::Unavailable(error.to_string())
}

/// The shared store; cheap to clone. Clones share one writer ([`writer`]), which stops when
/// the last clone is dropped (after the writes it has taken); from then on it no longer holds
/// the database.
#[derive(Clone)]
pub struct KvStore {
    db: Arc<Database>,
    writer: Arc<Writer>,
    quota: KvQuota,
}

impl KvStore {
    /// A store in `db` with the given per-plugin quota; starts its writer thread.
    pub fn new(db: Arc<Database>, quota: KvQuota) -> Self {
        KvStore {
            writer: Arc::new(Writer::start(db.clone())),
            db,
            quota,
        }
    }

    /// The same store with `bytes` as the quota of all keys and values of a plugin (its
    /// `kv_quota_mb`).
    pub fn with_total_quota(&self, bytes: u64) -> Self {
        KvStore {
            db: self.db.clone(),
            writer: self.writer.clone(),
            quota: KvQuota {
                max_total_bytes: bytes,
                ..self.quota
            },
        }
    }

    /// The value of `key` in `plugin`'s store (`None` once it expired).
    pub fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.get_at(plugin, key, now_ms())
    }

    fn get_at(&self, plugin: &str, key: &str, now: u64) -> Result<Option<Vec<u8>>, KvError> {
        let read = self.db.begin_read().map_err(unavailable)?;
        let table = match read.open_table(VALUES) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(unavailable(e)),
        };
        let expired = match read.open_table(EXPIRES) {
            Ok(expires) => expires
                .get((plugin, key))
                .map_err(unavailable)?
                .is_some_and(|at| at.value() <= now),
            Err(redb::TableError::TableDoesNotExist(_)) => false,
            Err(e) => return Err(unavailable(e)),
        };
        if expired {
            return Ok(None);
        }
        Ok(table
            .get((plugin, key))
            .map_err(unavailable)?
            .map(|v| v.value().to_vec()))
    }

    /// Stores `value` under `key` in `plugin`'s store, within the quota; durable on return.
    /// Blocks until the writer's commit.
    pub fn set(&self, plugin: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.write(plugin, now_ms(), Change::put(key, value, None))
            .map(drop)
    }

    /// Stores `value` under `key` like [`KvStore::set`]; the entry expires `ttl` from now.
    pub fn set_expiring(
        &self,
        plugin: &str,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), KvError> {
        let now = now_ms();
        let at = now.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        self.write(plugin, now, Change::put(key, value, Some(at)))
            .map(drop)
    }

    /// Stores `value` under `key` only when the current value is `expected` (`None`: absent, or
    /// expired); says whether it stored. Atomic: the comparison and the write are applied
    /// together, after every write that reached the writer before.
    pub fn set_if(
        &self,
        plugin: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, KvError> {
        let change = Change::PutIf {
            key: key.to_owned(),
            expected: expected.map(<[u8]>::to_vec),
            value: value.to_vec(),
        };
        self.write(plugin, now_ms(), change)
    }

    /// Removes `key` from `plugin`'s store; durable on return.
    pub fn delete(&self, plugin: &str, key: &str) -> Result<(), KvError> {
        let change = Change::Delete {
            key: key.to_owned(),
        };
        self.write(plugin, now_ms(), change).map(drop)
    }

    /// Hands `change` to the writer, as of `now` and with this store's quota, and waits for
    /// its result, which is durable when `Ok`.
    fn write(&self, plugin: &str, now: u64, change: Change) -> Result<bool, KvError> {
        self.writer.submit(Write {
            plugin: plugin.to_owned(),
            quota: self.quota,
            now,
            change,
        })
    }
}

/// One write, as a caller hands it to the writer.
struct Write {
    plugin: String,
    /// The quota of the store it came through ([`KvStore::with_total_quota`]).
    quota: KvQuota,
    /// The time it was made at, for expiries.
    now: u64,
    change: Change,
}

/// What a [`Write`] changes.
enum Change {
    /// [`KvStore::set`] (no expiry) or [`KvStore::set_expiring`].
    Put {
        key: String,
        value: Vec<u8>,
        expires_at: Option<u64>,
    },
    /// [`KvStore::set_if`].
    PutIf {
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    },
    /// [`KvStore::delete`].
    Delete { key: String },
}

impl Change {
    fn put(key: &str, value: &[u8], expires_at: Option<u64>) -> Change {
        Change::Put {
            key: key.to_owned(),
            value: value.to_vec(),
            expires_at,
        }
    }
}

impl Write {
    /// The bytes of keys and values it carries, for bounding a batch.
    fn bytes(&self) -> usize {
        self.plugin.len()
            + match &self.change {
                Change::Put { key, value, .. } => key.len() + value.len(),
                Change::PutIf {
                    key,
                    expected,
                    value,
                } => key.len() + expected.as_ref().map_or(0, Vec::len) + value.len(),
                Change::Delete { key } => key.len(),
            }
    }

    /// Applies the write in `tx` after removing up to [`SWEEP_PER_WRITE`] of the plugin's
    /// expired entries; `Ok(true)` unless a `set-if` found another value. An error other than
    /// [`KvError::Unavailable`] is decided before the write changes anything but the sweep.
    fn apply(&self, tx: &WriteTransaction) -> Result<bool, KvError> {
        let plugin = self.plugin.as_str();
        sweep(tx, plugin, self.now)?;
        match &self.change {
            Change::Put {
                key,
                value,
                expires_at,
            } => put(tx, &self.quota, plugin, key, value, *expires_at).map(|()| true),
            Change::PutIf {
                key,
                expected,
                value,
            } => {
                let current = {
                    let values = tx.open_table(VALUES).map_err(unavailable)?;
                    values
                        .get((plugin, key.as_str()))
                        .map_err(unavailable)?
                        .map(|v| v.value().to_vec())
                };
                if current != *expected {
                    return Ok(false);
                }
                put(tx, &self.quota, plugin, key, value, None)?;
                Ok(true)
            }
            Change::Delete { key } => remove(tx, plugin, key).map(|()| true),
        }
    }
}

/// Writes `key` within `quota`, with its expiry (`None`: none). Checks everything before it
/// writes anything.
fn put(
    tx: &WriteTransaction,
    quota: &KvQuota,
    plugin: &str,
    key: &str,
    value: &[u8],
    expires_at: Option<u64>,
) -> Result<(), KvError> {
    if key.len() > quota.max_key_bytes as usize {
        return Err(KvError::KeyTooLong(quota.max_key_bytes));
    }
    if value.len() > quota.max_value_bytes as usize {
        return Err(KvError::ValueTooLarge(quota.max_value_bytes));
    }
    let mut values = tx.open_table(VALUES).map_err(unavailable)?;
    let mut usage = tx.open_table(USAGE).map_err(unavailable)?;
    let old = values
        .get((plugin, key))
        .map_err(unavailable)?
        .map(|v| (key.len() + v.value().len()) as u64)
        .unwrap_or(0);
    let used = usage
        .get(plugin)
        .map_err(unavailable)?
        .map(|v| v.value())
        .unwrap_or(0);
    let new_total = used.saturating_sub(old) + (key.len() + value.len()) as u64;
    if new_total > quota.max_total_bytes {
        return Err(KvError::QuotaExceeded(quota.max_total_bytes));
    }
    values.insert((plugin, key), value).map_err(unavailable)?;
    usage.insert(plugin, new_total).map_err(unavailable)?;
    set_expiry(tx, plugin, key, expires_at)
}

/// Removes `key` and its expiry, freeing its bytes.
fn remove(tx: &WriteTransaction, plugin: &str, key: &str) -> Result<(), KvError> {
    let mut values = tx.open_table(VALUES).map_err(unavailable)?;
    let removed = values.remove((plugin, key)).map_err(unavailable)?;
    if let Some(removed) = removed {
        let freed = (key.len() + removed.value().len()) as u64;
        drop(removed);
        let mut usage = tx.open_table(USAGE).map_err(unavailable)?;
        let used = usage
            .get(plugin)
            .map_err(unavailable)?
            .map(|v| v.value())
            .unwrap_or(0);
        usage
            .insert(plugin, used.saturating_sub(freed))
            .map_err(unavailable)?;
    }
    set_expiry(tx, plugin, key, None)
}

/// Replaces the expiry of `key` (`None`: it never expires).
fn set_expiry(
    tx: &WriteTransaction,
    plugin: &str,
    key: &str,
    at: Option<u64>,
) -> Result<(), KvError> {
    let mut expires = tx.open_table(EXPIRES).map_err(unavailable)?;
    let mut index = tx.open_table(EXPIRY).map_err(unavailable)?;
    let old = expires
        .remove((plugin, key))
        .map_err(unavailable)?
        .map(|at| at.value());
    if let Some(old) = old {
        index.remove((plugin, old, key)).map_err(unavailable)?;
    }
    if let Some(at) = at {
        expires.insert((plugin, key), at).map_err(unavailable)?;
        index.insert((plugin, at, key), ()).map_err(unavailable)?;
    }
    Ok(())
}

/// Removes up to [`SWEEP_PER_WRITE`] of `plugin`'s entries that expired by `now`.
fn sweep(tx: &WriteTransaction, plugin: &str, now: u64) -> Result<(), KvError> {
    let due: Vec<String> = {
        let index = tx.open_table(EXPIRY).map_err(unavailable)?;
        index
            .range((plugin, 0, "")..=(plugin, now, "\u{10FFFF}"))
            .map_err(unavailable)?
            .take(SWEEP_PER_WRITE)
            .map(|entry| entry.map(|(key, _)| key.value().2.to_owned()))
            .collect::<Result<_, _>>()
            .map_err(unavailable)?
    };
    for key in due {
        remove(tx, plugin, &key)?;
    }
    Ok(())
}

/// The current time in Unix milliseconds.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
