//! The resource limits of one plugin, and the memory limiter that enforces them per store.
//!
//! `memory_mb` caps the plugin instance, not one linear memory: a component may define several
//! memories (one per core module that has its own), so the limiter adds up every memory of the
//! store. The number of core instances, memories and tables of one component is capped too
//! ([`PluginLimits::MAX_CORE_INSTANCES`], [`PluginLimits::MAX_MEMORIES`],
//! [`PluginLimits::MAX_TABLES`]), both by the engine's pool, which refuses such a component
//! when it is compiled (the plugin fails to load), and by the limiter, so no plugin can take
//! more than its share of the pool.
//! The pool keeps its default of one memory and one table per core module, so a plugin's
//! memories are those of its core instances. `limits/tests.rs` checks all of this with real
//! components.

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
    /// Core module instances one plugin may have. A Rust plugin for `wasm32-wasip2` has
    /// three (its module and the WASI adapter's two).
    pub const MAX_CORE_INSTANCES: u32 = 16;
    /// Linear memories one plugin may define. A Rust plugin has one.
    pub const MAX_MEMORIES: u32 = 2;
    /// Tables one plugin may define. A Rust plugin has two.
    pub const MAX_TABLES: u32 = 8;
    /// Elements one table may grow to.
    pub const MAX_TABLE_ELEMENTS: usize = 100_000;
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

/// Enforces the memory cap over all the memories of a store, and the counts of instances,
/// memories and tables, and remembers whether the plugin hit the memory cap, so the error can
/// say so.
#[derive(Debug)]
pub struct MemoryLimiter {
    cap: usize,
    used: usize,
    hit: bool,
}

impl MemoryLimiter {
    /// A limiter for `cap` bytes of linear memory in all.
    pub fn new(cap: usize) -> Self {
        MemoryLimiter {
            cap,
            used: 0,
            hit: false,
        }
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
    /// Called when a memory is created (from 0) and each time one grows: the store's total is
    /// what the memories had plus this growth.
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.used.saturating_sub(current).saturating_add(desired);
        if total > self.cap {
            self.hit = true;
            wasmtime::bail!(
                "the plugin tried to grow its memory to {} MiB, over its cap of {} MiB (memory_mb)",
                total >> 20,
                self.cap >> 20
            );
        }
        self.used = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= PluginLimits::MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        PluginLimits::MAX_CORE_INSTANCES as usize
    }

    fn memories(&self) -> usize {
        PluginLimits::MAX_MEMORIES as usize
    }

    fn tables(&self) -> usize {
        PluginLimits::MAX_TABLES as usize
    }
}

#[cfg(test)]
mod tests;
