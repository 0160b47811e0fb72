//! The plugins' persistent key-value store, with per-plugin quotas.
//!
//! On disk: one redb database; table `plugin_kv` maps `(plugin, key)` to the value bytes, and
//! table `plugin_kv_usage` maps `plugin` to the bytes it uses (keys plus values), updated in the
//! same transaction, so a quota check never scans.

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::sync::Arc;

const VALUES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("plugin_kv");
const USAGE: TableDefinition<&str, u64> = TableDefinition::new("plugin_kv_usage");

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

    /// The value of `key` in `plugin`'s store.
    pub fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let read = self.db.begin_read().map_err(unavailable)?;
        let table = match read.open_table(VALUES) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(unavailable(e)),
        };
        Ok(table
            .get((plugin, key))
            .map_err(unavailable)?
            .map(|v| v.value().to_vec()))
    }

    /// Stores `value` under `key` in `plugin`'s store, within the quota.
    pub fn set(&self, plugin: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        if key.len() > self.quota.max_key_bytes as usize {
            return Err(KvError::KeyTooLong(self.quota.max_key_bytes));
        }
        if value.len() > self.quota.max_value_bytes as usize {
            return Err(KvError::ValueTooLarge(self.quota.max_value_bytes));
        }
        let write = self.db.begin_write().map_err(unavailable)?;
        {
            let mut values = write.open_table(VALUES).map_err(unavailable)?;
            let mut usage = write.open_table(USAGE).map_err(unavailable)?;
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
            let new_total = used - old + (key.len() + value.len()) as u64;
            if new_total > self.quota.max_total_bytes {
                return Err(KvError::QuotaExceeded(self.quota.max_total_bytes));
            }
            values.insert((plugin, key), value).map_err(unavailable)?;
            usage.insert(plugin, new_total).map_err(unavailable)?;
        }
        write.commit().map_err(unavailable)
    }

    /// Removes `key` from `plugin`'s store.
    pub fn delete(&self, plugin: &str, key: &str) -> Result<(), KvError> {
        let write = self.db.begin_write().map_err(unavailable)?;
        {
            let mut values = write.open_table(VALUES).map_err(unavailable)?;
            let removed = values.remove((plugin, key)).map_err(unavailable)?;
            if let Some(removed) = removed {
                let freed = (key.len() + removed.value().len()) as u64;
                drop(removed);
                let mut usage = write.open_table(USAGE).map_err(unavailable)?;
                let used = usage
                    .get(plugin)
                    .map_err(unavailable)?
                    .map(|v| v.value())
                    .unwrap_or(0);
                usage
                    .insert(plugin, used.saturating_sub(freed))
                    .map_err(unavailable)?;
            }
        }
        write.commit().map_err(unavailable)
    }
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
    }
}
