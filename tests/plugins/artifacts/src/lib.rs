//! The paths of the plugins only callhook's tests use, built by this crate's build script.

/// `sandbox-probe`: misbehaves on request (loops, hoards memory, panics, sends where it may
/// not) so the tests can check the sandbox.
pub const SANDBOX_PROBE_WASM: &str = env!("CALLHOOK_SANDBOX_PROBE_WASM");

/// `contract-probe`: sends every field of contract 0.2 it receives to a URL.
pub const CONTRACT_PROBE_WASM: &str = env!("CALLHOOK_CONTRACT_PROBE_WASM");

/// `kv-probe-v0-1`: built against contract 0.1.0 without the SDK; counts its deliveries in its
/// key-value store and can be made to meet its quota.
pub const KV_PROBE_V0_1_WASM: &str = env!("CALLHOOK_KV_PROBE_V0_1_WASM");

/// `kv-probe-v0-2`: the same against contract 0.2.0, with `set-if` and `set-expiring`.
pub const KV_PROBE_V0_2_WASM: &str = env!("CALLHOOK_KV_PROBE_V0_2_WASM");
