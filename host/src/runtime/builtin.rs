//! Plugins built into the `callhook` binary, so a fresh installation needs no `.wasm` files.

/// The default `generic-webhook` plugin, built from `plugins/generic-webhook` by `build.rs`.
pub const GENERIC_WEBHOOK_WASM: &[u8] = include_bytes!(env!("CALLHOOK_GENERIC_WEBHOOK_WASM"));
