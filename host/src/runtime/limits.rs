//! The resource limits of one plugin, and the memory limiter that enforces them per store.

use std::time::Duration;

/// How much a plugin may use per delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginLimits {
    /// Linear memory cap in bytes. By default 64 MiB.
    pub memory_bytes: usize,
    /// Wall-clock time for one delivery, including the HTTP requests the plugin makes.
    /// By default 10 s.
    pub timeout: Duration,
    /// Time to connect to a receiver. By default 5 s.
    pub connect_timeout: Duration,
    /// Time from sending a request to the first byte of the answer, and between bytes.
    /// By default 10 s. The whole delivery is still bounded by `timeout`.
    pub response_timeout: Duration,
    /// The plugin's key-value quota (`kv_quota_mb`): all its keys and values together, in
    /// bytes. By default `None`: the store's own quota ([`KvQuota::max_total_bytes`], 1 MiB).
    ///
    /// [`KvQuota::max_total_bytes`]: super::KvQuota::max_total_bytes
    pub kv_quota_bytes: Option<u64>,
    /// Bytes of one response body the host passes to the plugin; a longer body fails the
    /// delivery. By default [`PluginLimits::DEFAULT_MAX_RESPONSE_KB`] KiB.
    pub max_response_bytes: u64,
}

impl PluginLimits {
    /// The default memory cap (`memory_mb`), in MiB.
    pub const DEFAULT_MEMORY_MB: u32 = 64;
    /// The default time for one delivery (`timeout_ms`).
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    /// The longest time for one delivery `timeout_ms` may set: 10 minutes.
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(600);
    /// The default key-value quota (`kv_quota_mb`) of a plugin loaded from a file, in MiB.
    pub const DEFAULT_KV_QUOTA_MB: u64 = 1;
    /// The largest key-value quota `kv_quota_mb` may set, in MiB.
    pub const MAX_KV_QUOTA_MB: u64 = 1024;
    /// The default bound on one response body (`max_response_kb`), in KiB.
    pub const DEFAULT_MAX_RESPONSE_KB: u32 = 4096;
    /// The largest bound on one response body `max_response_kb` may set, in KiB: 64 MiB.
    pub const MAX_MAX_RESPONSE_KB: u32 = 64 << 10;
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            memory_bytes: (Self::DEFAULT_MEMORY_MB as usize) << 20,
            timeout: Self::DEFAULT_TIMEOUT,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(10),
            kv_quota_bytes: None,
            max_response_bytes: u64::from(Self::DEFAULT_MAX_RESPONSE_KB) << 10,
        }
    }
}

/// Enforces the memory cap and remembers whether the plugin hit it, so the error can say so.
#[derive(Debug)]
pub struct MemoryLimiter {
    cap: usize,
    hit: bool,
}

impl MemoryLimiter {
    /// A limiter for `cap` bytes of linear memory.
    pub fn new(cap: usize) -> Self {
        MemoryLimiter { cap, hit: false }
    }

    /// Whether a growth past the cap was refused.
    pub fn hit(&self) -> bool {
        self.hit
    }

    /// The cap in bytes.
    pub fn cap(&self) -> usize {
        self.cap
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.hit = true;
            wasmtime::bail!(
                "the plugin tried to grow its memory to {} MiB, over its cap of {} MiB (memory_mb)",
                desired >> 20,
                self.cap >> 20
            );
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        const MAX_TABLE_ELEMENTS: usize = 100_000;
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
