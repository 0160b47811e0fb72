//! The key-value store as the CRM helpers see it: a trait, the host's store behind it, and an
//! in-memory one for tests.
//!
//! The helpers take a [`KvStore`] instead of calling [`crate::kv`] directly so that they, and a
//! plugin's own tests, run natively with plain `cargo test`: [`MemoryKv`] stands in for the host.

use crate::kv::{self, KvError};
use std::cell::RefCell;
use std::collections::BTreeMap;

/// What the helpers need of a plugin's key-value store (contract 0.2.0, `callhook:plugin/kv`).
///
/// Methods take `&self`: a store is shared by the helpers of one delivery, and in tests by
/// several simulated deliveries at once.
pub trait KvStore {
    /// The value stored under `key`, if any.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError>;

    /// Stores `value` under `key` for good; returns once the write is durable.
    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError>;

    /// Stores `value` under `key`, removed by the host `ttl_seconds` later; returns once the
    /// write is durable.
    fn set_expiring(&self, key: &str, value: &[u8], ttl_seconds: u64) -> Result<(), KvError>;

    /// Stores `value` only when the current value equals `expected` (`None`: the key is absent),
    /// atomically with respect to the plugin's other deliveries; says whether it stored.
    fn set_if(&self, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool, KvError>;

    /// Removes `key`; removing a missing key is not an error. Returns once durable.
    fn delete(&self, key: &str) -> Result<(), KvError>;
}

/// The plugin's own store on the host, [`crate::kv`]: every method is one host call, durable
/// when it returns; `set_if` is atomic against the plugin's other deliveries (contract 0.2.0).
#[derive(Debug, Clone, Copy, Default)]
pub struct HostKv;

impl KvStore for HostKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        kv::get(key)
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        kv::set(key, value)
    }

    fn set_expiring(&self, key: &str, value: &[u8], ttl_seconds: u64) -> Result<(), KvError> {
        kv::set_expiring(key, value, ttl_seconds)
    }

    fn set_if(&self, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool, KvError> {
        kv::set_if(key, expected, value)
    }

    fn delete(&self, key: &str) -> Result<(), KvError> {
        kv::delete(key)
    }
}

/// An in-memory [`KvStore`] for tests: entries live as long as the value, and an expiring
/// entry only records its time to live (nothing expires), so a test can assert it.
///
/// ```
/// use callhook_plugin_sdk::crm::{KvStore, MemoryKv};
///
/// let kv = MemoryKv::new();
/// kv.set_expiring("rec:1.120", b"17", 86_400).unwrap();
/// assert_eq!(kv.get("rec:1.120").unwrap(), Some(b"17".to_vec()));
/// assert_eq!(kv.ttl_seconds("rec:1.120"), Some(86_400));
/// assert!(!kv.set_if("rec:1.120", None, b"18").unwrap());
/// ```
#[derive(Debug, Default)]
pub struct MemoryKv {
    entries: RefCell<BTreeMap<String, Entry>>,
}

#[derive(Debug, Clone)]
struct Entry {
    value: Vec<u8>,
    ttl_seconds: Option<u64>,
}

impl MemoryKv {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The time to live `key` was last stored with: `None` when it is absent or was stored
    /// with [`KvStore::set`] or [`KvStore::set_if`].
    pub fn ttl_seconds(&self, key: &str) -> Option<u64> {
        self.entries.borrow().get(key)?.ttl_seconds
    }

    /// The keys present, sorted.
    pub fn keys(&self) -> Vec<String> {
        self.entries.borrow().keys().cloned().collect()
    }

    fn put(&self, key: &str, value: &[u8], ttl_seconds: Option<u64>) {
        let entry = Entry {
            value: value.to_vec(),
            ttl_seconds,
        };
        self.entries.borrow_mut().insert(key.to_string(), entry);
    }
}

impl KvStore for MemoryKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.entries.borrow().get(key).map(|e| e.value.clone()))
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.put(key, value, None);
        Ok(())
    }

    fn set_expiring(&self, key: &str, value: &[u8], ttl_seconds: u64) -> Result<(), KvError> {
        self.put(key, value, Some(ttl_seconds));
        Ok(())
    }

    fn set_if(&self, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool, KvError> {
        if self.get(key)?.as_deref() != expected {
            return Ok(false);
        }
        self.put(key, value, None);
        Ok(true)
    }

    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.entries.borrow_mut().remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_kv_sets_gets_and_deletes() {
        let kv = MemoryKv::new();
        assert_eq!(kv.get("a").unwrap(), None);
        kv.set("a", b"1").unwrap();
        kv.set_expiring("b", b"2", 60).unwrap();
        assert_eq!(kv.get("a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(kv.keys(), ["a", "b"]);
        assert_eq!((kv.ttl_seconds("a"), kv.ttl_seconds("b")), (None, Some(60)));
        kv.delete("b").unwrap();
        kv.delete("missing").unwrap();
        assert_eq!(kv.keys(), ["a"]);
        assert_eq!(kv.ttl_seconds("b"), None);
    }

    #[test]
    fn memory_kv_compares_before_it_sets() {
        let kv = MemoryKv::new();
        assert!(kv.set_if("k", None, b"1").unwrap());
        assert!(!kv.set_if("k", None, b"2").unwrap());
        assert!(!kv.set_if("k", Some(b"2"), b"3").unwrap());
        assert_eq!(kv.get("k").unwrap(), Some(b"1".to_vec()));
        assert!(kv.set_if("k", Some(b"1"), b"4").unwrap());
        assert_eq!(kv.get("k").unwrap(), Some(b"4".to_vec()));
    }
}
