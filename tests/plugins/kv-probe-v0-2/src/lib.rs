//! A test plugin built against contract 0.2.0 straight from `wit/since_v0.2.0`, without the
//! SDK (which speaks only the newest version), so the host's tests can check that a plugin of
//! that version still reaches its key-value store through the 0.2 imports, including the two
//! writes 0.2 added.
//!
//! Each delivery counts itself under `count` (`get`, then `set-if` with the value it read, or
//! with a value `count` never holds when the setting `stale` is set, as a delivery that lost a
//! race would), stores `soon` with a time to live of an hour (`set-expiring`) and deletes
//! `gone`; when the setting `big` is a number, it also stores that many bytes under `big`, to
//! meet a quota. A `kv-error` is the delivery's permanent error, its message the error's debug
//! form, so the test sees which variant, with which payload, the host's error became; a
//! `set-if` that did not store is a retryable error.

wit_bindgen::generate!({
    path: "../../../wit/since_v0.2.0",
    world: "callhook:plugin/plugin@0.2.0",
    generate_all,
});

use callhook::plugin::types::{PermanentError, RetryableError};
use callhook::plugin::{host, kv};

struct Probe;

impl Guest for Probe {
    fn deliver(_delivery: Delivery) -> Result<(), DeliveryError> {
        match run() {
            Ok(true) => Ok(()),
            Ok(false) => Err(DeliveryError::Retryable(RetryableError {
                message: "count changed under set-if".to_string(),
                retry_after_ms: None,
            })),
            Err(error) => Err(DeliveryError::Permanent(PermanentError {
                message: format!("{error:?}"),
                target_gone: false,
            })),
        }
    }
}

/// Whether `set-if` stored the new count.
fn run() -> Result<bool, kv::KvError> {
    let old = kv::get("count")?;
    let count = old
        .as_deref()
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
        .and_then(|text| text.parse::<u64>().ok())
        .unwrap_or(0);
    let expected = match host::setting("stale") {
        Some(_) => Some(&b"stale"[..]),
        None => old.as_deref(),
    };
    let stored = kv::set_if("count", expected, (count + 1).to_string().as_bytes())?;
    kv::set_expiring("soon", b"1", 3600)?;
    kv::delete("gone")?;
    if let Some(size) = host::setting("big").and_then(|size| size.parse().ok()) {
        kv::set("big", &vec![b'x'; size])?;
    }
    Ok(stored)
}

export!(Probe);

/// The contract version, where the host looks for it (the SDK's `register_plugin!` writes the
/// same section).
#[used]
#[cfg_attr(target_arch = "wasm32", unsafe(link_section = "callhook:api-version"))]
static API_VERSION: [u8; 5] = *b"0.2.0";
