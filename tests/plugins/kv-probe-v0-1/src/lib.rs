//! A test plugin built against contract 0.1.0 straight from `wit/since_v0.1.0`, without the
//! SDK (which speaks only the newest version), so the host's tests can check that a plugin of
//! that version still reaches its key-value store through the 0.1 imports.
//!
//! Each delivery counts itself under `count` (`get`, then `set`) and deletes `gone`; when the
//! setting `big` is a number, it also stores that many bytes under `big`, to meet a quota. A
//! `kv-error` is the delivery's permanent error, its message the error's debug form, so the
//! test sees which variant, with which payload, the host's error became.

wit_bindgen::generate!({
    path: "../../../wit/since_v0.1.0",
    world: "callhook:plugin/plugin@0.1.0",
    generate_all,
});

use callhook::plugin::types::PermanentError;
use callhook::plugin::{host, kv};

struct Probe;

impl Guest for Probe {
    fn deliver(_delivery: Delivery) -> Result<(), DeliveryError> {
        run().map_err(|error| {
            DeliveryError::Permanent(PermanentError {
                message: format!("{error:?}"),
                target_gone: false,
            })
        })
    }
}

fn run() -> Result<(), kv::KvError> {
    let count = kv::get("count")?
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.parse::<u64>().ok())
        .unwrap_or(0);
    kv::set("count", (count + 1).to_string().as_bytes())?;
    kv::delete("gone")?;
    if let Some(size) = host::setting("big").and_then(|size| size.parse().ok()) {
        kv::set("big", &vec![b'x'; size])?;
    }
    Ok(())
}

export!(Probe);

/// The contract version, where the host looks for it (the SDK's `register_plugin!` writes the
/// same section).
#[used]
#[cfg_attr(target_arch = "wasm32", unsafe(link_section = "callhook:api-version"))]
static API_VERSION: [u8; 5] = *b"0.1.0";
