//! A small persistent key-value store, private to the plugin.
//!
//! Use it for what must outlive one delivery: ids the CRM assigned, OAuth tokens, a cursor.
//! The host enforces limits on key length, value size and the plugin's total; a write past them
//! fails with a [`KvError`] that names the limit.
//!
//! ```no_run
//! use callhook_plugin_sdk::kv;
//!
//! # fn run() -> Result<(), kv::KvError> {
//! kv::set("contact:425630434343", b"crm-id-17")?;
//! assert_eq!(kv::get("contact:425630434343")?, Some(b"crm-id-17".to_vec()));
//! kv::delete("contact:425630434343")?;
//! # Ok(())
//! # }
//! ```

use crate::wit::callhook::plugin::kv as wit;

pub use wit::KvError;

/// The value stored under `key`, if any.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, KvError> {
    wit::get(key)
}

/// Stores `value` under `key`, replacing what was there (and its expiry). Returns once the
/// change is durable: it survives a crash of the host right after.
pub fn set(key: &str, value: &[u8]) -> Result<(), KvError> {
    wit::set(key, value)
}

/// Removes `key`; removing a missing key is not an error. Durable on return.
pub fn delete(key: &str) -> Result<(), KvError> {
    wit::delete(key)
}

/// Stores `value` under `key` like [`set`]; the host removes the entry `ttl_seconds` later
/// (e.g. 30 days for a call's record id).
pub fn set_expiring(key: &str, value: &[u8], ttl_seconds: u64) -> Result<(), KvError> {
    wit::set_expiring(key, value, ttl_seconds)
}

/// Stores `value` under `key` only if the current value is `expected` (`None`: the key is
/// absent), atomically with respect to the plugin's other deliveries; says whether it stored.
///
/// ```no_run
/// use callhook_plugin_sdk::kv;
///
/// # fn run() -> Result<(), kv::KvError> {
/// let old = kv::get("oauth")?;
/// if !kv::set_if("oauth", old.as_deref(), b"{\"access_token\":\"new\"}")? {
///     // Another delivery refreshed first: use its state.
///     let _winner = kv::get("oauth")?;
/// }
/// # Ok(())
/// # }
/// ```
pub fn set_if(key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool, KvError> {
    wit::set_if(key, expected, value)
}

impl From<KvError> for crate::DeliveryError {
    /// An unavailable store is worth a retry; a limit is not.
    fn from(error: KvError) -> Self {
        match error {
            KvError::Unavailable(why) => {
                crate::DeliveryError::retryable(format!("plugin store unavailable: {why}"))
            }
            KvError::KeyTooLong(limit) => crate::DeliveryError::permanent(format!(
                "plugin store: key longer than {limit} bytes"
            )),
            KvError::ValueTooLarge(limit) => crate::DeliveryError::permanent(format!(
                "plugin store: value larger than {limit} bytes"
            )),
            KvError::QuotaExceeded(quota) => crate::DeliveryError::permanent(format!(
                "plugin store: quota of {quota} bytes exceeded"
            )),
        }
    }
}
