//! Lookups cached in the plugin's store (spec `crm-plugins.md` section 3.3: "a lookup may be
//! cached in the KV store for up to an hour").
//!
//! A CRM's user lookup by e-mail answers the same for every call of an extension, so asking it
//! once an hour spares a request per call and the CRM's rate limit. The entry is written with
//! `set-expiring`, so the host drops it after the time to live and a change in the CRM shows
//! within that time. "Not found" is cached too (as an empty value: CRM ids are never empty).
//!
//! The cache is an optimisation only: a store that cannot be read or written makes the lookup
//! run as if nothing were cached, and never fails the delivery.

use super::KvStore;
use crate::DeliveryError;

/// How long a cached lookup lives by default: one hour, in seconds.
pub const LOOKUP_TTL_SECONDS: u64 = 60 * 60;

/// The answer of `lookup` for `key`, from the store when an earlier delivery cached it within
/// `ttl_seconds`; else `lookup` runs and a success (found or not) is cached. A failed lookup is
/// returned as it is and caches nothing.
///
/// ```
/// use callhook_plugin_sdk::crm::cache::{cached, LOOKUP_TTL_SECONDS};
/// use callhook_plugin_sdk::crm::MemoryKv;
///
/// let kv = MemoryKv::new();
/// let owner = cached(&kv, "owner:anna@example.com", LOOKUP_TTL_SECONDS, || Ok(Some("77".into())));
/// assert_eq!(owner.unwrap(), Some("77".to_string()));
/// // The next delivery asks the store, not the CRM.
/// let owner = cached(&kv, "owner:anna@example.com", LOOKUP_TTL_SECONDS, || unreachable!());
/// assert_eq!(owner.unwrap(), Some("77".to_string()));
/// ```
pub fn cached(
    kv: &impl KvStore,
    key: &str,
    ttl_seconds: u64,
    lookup: impl FnOnce() -> Result<Option<String>, DeliveryError>,
) -> Result<Option<String>, DeliveryError> {
    if let Ok(Some(value)) = kv.get(key) {
        let value = String::from_utf8_lossy(&value).into_owned();
        return Ok((!value.is_empty()).then_some(value));
    }
    let found = lookup()?;
    let value = found.as_deref().unwrap_or("");
    // A failed write costs one more lookup next time, nothing else.
    let _ = kv.set_expiring(key, value.as_bytes(), ttl_seconds);
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::MemoryKv;
    use crate::kv::KvError;
    use std::cell::Cell;

    #[test]
    fn caches_found_and_not_found_with_the_ttl() {
        let kv = MemoryKv::new();
        let asked = Cell::new(0);
        let lookup = |answer: Option<&str>| {
            asked.set(asked.get() + 1);
            Ok(answer.map(str::to_string))
        };
        assert_eq!(
            cached(&kv, "a", 60, || lookup(Some("7"))).unwrap(),
            Some("7".into())
        );
        assert_eq!(
            cached(&kv, "a", 60, || lookup(Some("8"))).unwrap(),
            Some("7".into())
        );
        assert_eq!(cached(&kv, "b", 60, || lookup(None)).unwrap(), None);
        assert_eq!(cached(&kv, "b", 60, || lookup(Some("9"))).unwrap(), None);
        assert_eq!(asked.get(), 2);
        assert_eq!(
            (kv.ttl_seconds("a"), kv.ttl_seconds("b")),
            (Some(60), Some(60))
        );
    }

    #[test]
    fn a_failed_lookup_caches_nothing() {
        let kv = MemoryKv::new();
        let failed = cached(&kv, "a", 60, || Err(DeliveryError::retryable("HTTP 502")));
        assert_eq!(failed.unwrap_err().message(), "HTTP 502");
        assert!(kv.keys().is_empty());
    }

    /// A store that fails every call.
    struct Broken;

    impl KvStore for Broken {
        fn get(&self, _: &str) -> Result<Option<Vec<u8>>, KvError> {
            Err(KvError::Unavailable("down".into()))
        }
        fn set(&self, _: &str, _: &[u8]) -> Result<(), KvError> {
            Err(KvError::Unavailable("down".into()))
        }
        fn set_expiring(&self, _: &str, _: &[u8], _: u64) -> Result<(), KvError> {
            Err(KvError::Unavailable("down".into()))
        }
        fn set_if(&self, _: &str, _: Option<&[u8]>, _: &[u8]) -> Result<bool, KvError> {
            Err(KvError::Unavailable("down".into()))
        }
        fn delete(&self, _: &str) -> Result<(), KvError> {
            Err(KvError::Unavailable("down".into()))
        }
    }

    #[test]
    fn a_broken_store_only_costs_the_lookup() {
        let found = cached(&Broken, "a", 60, || Ok(Some("7".into())));
        assert_eq!(found.unwrap(), Some("7".into()));
    }
}
