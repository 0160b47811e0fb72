//! The plugins' persistent key-value store, with per-plugin quotas.
//!
//! On disk: one redb database; table `plugin_kv` maps `(plugin, key)` to the value bytes, and
//! table `plugin_kv_usage` maps `plugin` to the bytes it uses (keys plus values), updated in the
//! same transaction, so a quota check never scans.
//!
//! **Durability.** Every write is its own redb transaction committed with redb's default
//! durability (`Immediate`: the commit fsyncs before it returns), so a `set` or `delete` that
//! returned survives a crash right after; the idempotency of CRM plugins rests on that.
//!
//! **Expiring entries** (contract 0.2's `set-expiring`): `plugin_kv_expires` maps
//! `(plugin, key)` to the Unix millisecond the entry expires at, and `plugin_kv_expiry` indexes
//! the same as `(plugin, at, key)`, so the expired entries of a plugin are one range. An expired
//! entry is invisible to `get` at once and removed (freeing its quota) by the plugin's next
//! write, up to [`SWEEP_PER_WRITE`] at a time, in that write's transaction: no background task.
//! `set` and `set-if` clear an entry's expiry; `delete` removes it with the entry.
//!
//! **Compare-and-set** (`set-if`) reads and writes in one write transaction; redb serialises
//! write transactions, so two deliveries racing on a key cannot both win.

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// The shared store; cheap to clone.
#[derive(Clone)]
pub struct KvStore {
    db: Arc<Database>,
    quota: KvQuota,
}

impl KvStore {
    /// A store in `db` with the given per-plugin quota.
    pub fn new(db: Arc<Database>, quota: KvQuota) -> Self {
        KvStore { db, quota }
    }

    /// The same store with `bytes` as the quota of all keys and values of a plugin (its
    /// `kv_quota_mb`).
    pub fn with_total_quota(&self, bytes: u64) -> Self {
        KvStore {
            db: self.db.clone(),
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
    pub fn set(&self, plugin: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.write(plugin, now_ms(), |tx| {
            self.put(tx, plugin, key, value, None)
        })
    }

    /// Stores `value` under `key` like [`KvStore::set`]; the entry expires `ttl` from now.
    pub fn set_expiring(
        &self,
        plugin: &str,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), KvError> {
        self.set_expiring_at(plugin, key, value, ttl, now_ms())
    }

    fn set_expiring_at(
        &self,
        plugin: &str,
        key: &str,
        value: &[u8],
        ttl: Duration,
        now: u64,
    ) -> Result<(), KvError> {
        let at = now.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        self.write(plugin, now, |tx| self.put(tx, plugin, key, value, Some(at)))
    }

    /// Stores `value` under `key` only when the current value is `expected` (`None`: absent, or
    /// expired); says whether it stored. Atomic: the comparison and the write are one
    /// transaction.
    pub fn set_if(
        &self,
        plugin: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, KvError> {
        self.write(plugin, now_ms(), |tx| {
            let current = {
                let values = tx.open_table(VALUES).map_err(unavailable)?;
                values
                    .get((plugin, key))
                    .map_err(unavailable)?
                    .map(|v| v.value().to_vec())
            };
            if current.as_deref() != expected {
                return Ok(false);
            }
            self.put(tx, plugin, key, value, None)?;
            Ok(true)
        })
    }

    /// Removes `key` from `plugin`'s store; durable on return.
    pub fn delete(&self, plugin: &str, key: &str) -> Result<(), KvError> {
        self.write(plugin, now_ms(), |tx| remove(tx, plugin, key))
    }

    /// Runs `change` in one write transaction after removing up to [`SWEEP_PER_WRITE`] of
    /// `plugin`'s expired entries, and commits (durably) unless `change` failed.
    fn write<T>(
        &self,
        plugin: &str,
        now: u64,
        change: impl FnOnce(&WriteTransaction) -> Result<T, KvError>,
    ) -> Result<T, KvError> {
        let tx = self.db.begin_write().map_err(unavailable)?;
        sweep(&tx, plugin, now)?;
        let result = change(&tx)?;
        tx.commit().map_err(unavailable)?;
        Ok(result)
    }

    /// Writes `key` within the quota, with its expiry (`None`: none).
    fn put(
        &self,
        tx: &WriteTransaction,
        plugin: &str,
        key: &str,
        value: &[u8],
        expires_at: Option<u64>,
    ) -> Result<(), KvError> {
        if key.len() > self.quota.max_key_bytes as usize {
            return Err(KvError::KeyTooLong(self.quota.max_key_bytes));
        }
        if value.len() > self.quota.max_value_bytes as usize {
            return Err(KvError::ValueTooLarge(self.quota.max_value_bytes));
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
        if new_total > self.quota.max_total_bytes {
            return Err(KvError::QuotaExceeded(self.quota.max_total_bytes));
        }
        values.insert((plugin, key), value).map_err(unavailable)?;
        usage.insert(plugin, new_total).map_err(unavailable)?;
        set_expiry(tx, plugin, key, expires_at)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn store(quota: KvQuota) -> (tempfile::TempDir, KvStore) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("kv.redb")).unwrap();
        (dir, KvStore::new(Arc::new(db), quota))
    }

    #[test]
    fn values_are_private_to_each_plugin() {
        let (_dir, kv) = store(KvQuota::default());
        assert_eq!(kv.get("a", "k").unwrap(), None);
        kv.set("a", "k", b"1").unwrap();
        kv.set("b", "k", b"2").unwrap();
        assert_eq!(kv.get("a", "k").unwrap(), Some(b"1".to_vec()));
        assert_eq!(kv.get("b", "k").unwrap(), Some(b"2".to_vec()));
        kv.delete("a", "k").unwrap();
        kv.delete("a", "missing").unwrap();
        assert_eq!(kv.get("a", "k").unwrap(), None);
        assert_eq!(kv.get("b", "k").unwrap(), Some(b"2".to_vec()));
    }

    #[test]
    fn rejects_keys_values_and_totals_over_the_quota() {
        let quota = KvQuota {
            max_key_bytes: 4,
            max_value_bytes: 8,
            max_total_bytes: 20,
        };
        let (_dir, kv) = store(quota);
        assert_eq!(kv.set("p", "12345", b""), Err(KvError::KeyTooLong(4)));
        assert_eq!(kv.set("p", "k", &[0; 9]), Err(KvError::ValueTooLarge(8)));
        kv.set("p", "k1", &[0; 8]).unwrap(); // 10 bytes
        kv.set("p", "k2", &[0; 8]).unwrap(); // 20 bytes
        assert_eq!(kv.set("p", "k3", b""), Err(KvError::QuotaExceeded(20)));
        // Replacing a value counts only the difference; deleting frees the space.
        kv.set("p", "k2", &[0; 2]).unwrap(); // 14 bytes
        kv.set("p", "k3", &[0; 4]).unwrap(); // 20 bytes
        kv.delete("p", "k1").unwrap(); // 10 bytes
        kv.set("p", "k4", &[0; 8]).unwrap(); // 20 bytes
        // Other plugins have their own quota.
        kv.set("q", "k1", &[0; 8]).unwrap();
        // A plugin's own quota replaces the store's.
        let small = kv.with_total_quota(6);
        assert_eq!(
            small.set("r", "k1", &[0; 5]),
            Err(KvError::QuotaExceeded(6))
        );
        small.set("r", "k1", &[0; 4]).unwrap();
    }

    #[test]
    fn expiring_entries_vanish_and_free_their_quota() {
        let quota = KvQuota {
            max_total_bytes: 20,
            ..KvQuota::default()
        };
        let (_dir, kv) = store(quota);
        let ttl = Duration::from_secs(60);
        kv.set_expiring_at("p", "rec:1", &[1; 8], ttl, 1_000)
            .unwrap(); // 13 bytes
        kv.set_expiring_at("p", "rec:2", &[2; 2], ttl, 2_000)
            .unwrap(); // 20 bytes
        assert_eq!(kv.get_at("p", "rec:1", 60_999).unwrap(), Some(vec![1; 8]));
        assert_eq!(kv.get_at("p", "rec:1", 61_000).unwrap(), None);
        assert_eq!(kv.get_at("p", "rec:2", 61_000).unwrap(), Some(vec![2; 2]));
        // Full until a write after the expiry sweeps rec:1 away.
        let write = |now| kv.write("p", now, |tx| kv.put(tx, "p", "k", &[0; 7], None));
        assert_eq!(write(60_000), Err(KvError::QuotaExceeded(20)));
        write(61_000).unwrap();
        assert_eq!(kv.get_at("p", "k", 61_000).unwrap(), Some(vec![0; 7]));
        // `set` makes an expiring entry permanent.
        kv.set("p", "rec:2", b"x").unwrap();
        assert_eq!(
            kv.get_at("p", "rec:2", u64::MAX).unwrap(),
            Some(b"x".to_vec())
        );
    }

    #[test]
    fn set_if_compares_and_sets() {
        let (_dir, kv) = store(KvQuota::default());
        assert!(kv.set_if("p", "oauth", None, b"v1").unwrap());
        assert!(!kv.set_if("p", "oauth", None, b"v2").unwrap());
        assert!(!kv.set_if("p", "oauth", Some(b"v0"), b"v2").unwrap());
        assert!(kv.set_if("p", "oauth", Some(b"v1"), b"v2").unwrap());
        assert_eq!(kv.get("p", "oauth").unwrap(), Some(b"v2".to_vec()));
        kv.delete("p", "oauth").unwrap();
        assert!(kv.set_if("p", "oauth", None, b"v3").unwrap());
    }

    #[test]
    fn set_if_lets_one_of_many_racing_writers_win() {
        let (_dir, kv) = store(KvQuota::default());
        kv.set("p", "token", b"old").unwrap();
        let winners: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let kv = kv.clone();
                    scope.spawn(move || {
                        kv.set_if("p", "token", Some(b"old"), format!("new{i}").as_bytes())
                            .unwrap()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| usize::from(h.join().unwrap()))
                .sum()
        });
        assert_eq!(winners, 1);
    }
}
