//! The paths of the plugins only callhook's tests use, built by this crate's build script.

/// `sandbox-probe`: misbehaves on request (loops, hoards memory, panics, sends where it may
/// not) so the tests can check the sandbox.
pub const SANDBOX_PROBE_WASM: &str = env!("CALLHOOK_SANDBOX_PROBE_WASM");

/// `contract-probe`: sends every field of contract 0.2 it receives to a URL.
pub const CONTRACT_PROBE_WASM: &str = env!("CALLHOOK_CONTRACT_PROBE_WASM");
