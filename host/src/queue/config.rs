//! The queue's settings: routing, and per plugin the retry policy, limits and circuit breaker.

use super::retry::RetryPolicy;
use super::routing::Routes;
use std::collections::BTreeMap;
use std::time::Duration;

/// Everything the queue needs to know from the configuration.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Which plugins receive which events (`[[route]]`, `default_plugins`).
    pub routing: Routes,
    /// Every configured plugin with its delivery policy. Deliveries to a plugin missing here
    /// (one removed from the configuration while events for it were queued) are kept but not
    /// attempted, so putting the plugin back resumes them. By default none.
    pub plugins: BTreeMap<String, PluginPolicy>,
    /// Outcomes kept per delivery for inspection, newest last; 0 means the default. By
    /// default 20.
    pub attempt_log: usize,
    /// How long the queue remembers which plugins received a call's events, to route the
    /// call's `recording` to them; zero means the default. By default 2 days.
    pub call_memory: Duration,
    /// How long a parked delivery is kept for inspection and replay before it is removed;
    /// `None` keeps parked deliveries for ever. Read by [`Queue::open`](super::Queue::open):
    /// [`Queue::reconfigure`](super::Queue::reconfigure) keeps the one in force, like the
    /// rest of `[storage]`. By default 30 days.
    pub parked_keep: Option<Duration>,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            routing: Routes::default(),
            plugins: BTreeMap::new(),
            attempt_log: DEFAULT_ATTEMPT_LOG,
            call_memory: DEFAULT_CALL_MEMORY,
            parked_keep: Some(DEFAULT_PARKED_KEEP),
        }
    }
}

impl QueueConfig {
    /// A configuration with `routing` and the default policy for each of `plugins`.
    pub fn new<I, S>(routing: Routes, plugins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        QueueConfig {
            routing,
            plugins: plugins
                .into_iter()
                .map(|name| (name.into(), PluginPolicy::default()))
                .collect(),
            ..QueueConfig::default()
        }
    }

    pub(crate) fn attempt_log(&self) -> usize {
        if self.attempt_log == 0 {
            DEFAULT_ATTEMPT_LOG
        } else {
            self.attempt_log
        }
    }

    pub(crate) fn call_memory(&self) -> Duration {
        if self.call_memory.is_zero() {
            DEFAULT_CALL_MEMORY
        } else {
            self.call_memory
        }
    }
}

const DEFAULT_ATTEMPT_LOG: usize = 20;
const DEFAULT_CALL_MEMORY: Duration = Duration::from_secs(2 * 24 * 3600);
/// How long parked deliveries are kept by default: 30 days.
pub const DEFAULT_PARKED_KEEP: Duration = Duration::from_secs(30 * 24 * 3600);

/// How the queue treats one plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginPolicy {
    /// When to retry and when to give up (the plugin's `retry` overrides).
    pub retry: RetryPolicy,
    /// Deliveries to this plugin running at once. At least 1; by default 8.
    pub concurrency: u32,
    /// Deliveries started per second at most, with bursts of up to one second's worth. By
    /// default none (no limit).
    pub rate_per_second: Option<f64>,
    /// When to pause the plugin after consecutive failures.
    pub breaker: BreakerPolicy,
}

impl PluginPolicy {
    /// The default `concurrency`.
    pub const DEFAULT_CONCURRENCY: u32 = 8;
    /// The most `concurrency` may set: the instances of the runtime's pool, as a plugin cannot
    /// run more deliveries at once than there are instances.
    pub const MAX_CONCURRENCY: u32 = crate::runtime::RuntimeConfig::INSTANCES;
}

impl Default for PluginPolicy {
    fn default() -> Self {
        PluginPolicy {
            retry: RetryPolicy::default(),
            concurrency: Self::DEFAULT_CONCURRENCY,
            rate_per_second: None,
            breaker: BreakerPolicy::default(),
        }
    }
}

/// The circuit breaker of one plugin.
///
/// After `failures` consecutive failed attempts (`retry` or `failed` outcomes; a `rejected`
/// answer counts as the receiver working) the plugin is paused for `cool_down`: its deliveries
/// wait without using up attempts. Then one delivery is let through as a probe; its success
/// closes the breaker, its failure pauses the plugin again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failures that open the breaker. 0 turns the breaker off; by default 5.
    pub failures: u32,
    /// How long the plugin is paused. By default 60 s.
    pub cool_down: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            failures: 5,
            cool_down: Duration::from_secs(60),
        }
    }
}
