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

/// Stores `value` under `key`, replacing what was there.
pub fn set(key: &str, value: &[u8]) -> Result<(), KvError> {
    wit::set(key, value)
}

/// Removes `key`; removing a missing key is not an error.
pub fn delete(key: &str) -> Result<(), KvError> {
    wit::delete(key)
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
