//! Hands call events to the plugins: in order per call and plugin, with retries.
//!
//! Routing: an event goes to the plugins the configured routes select for its extension
//! (`default_plugins` when none matches); a recording goes where its call's last end event went.
//! Without routes every plugin receives every event.
//!
//! Each (plugin, call) pair gets its own chain: a task that delivers that call's events to
//! that plugin one after the other, so a later event waits while an earlier one is retried,
//! and different calls and plugins proceed in parallel. A chain ends when its call is over
//! and its last event is delivered.
//!
//! Retries follow [`RetryPolicy`]: an exponential ladder with ±20 % jitter, the receiver's
//! `Retry-After` honoured within bounds, and an age limit. A permanent rejection is not
//! retried. This dispatcher keeps its chains in memory; events still waiting when the host
//! stops are lost, which the durable queue (a separate module to come) is there to prevent.

use crate::calls::event::CallEvent;
use crate::config::Routes;
use crate::runtime::{DeliveryOutcome, DeliveryRequest, Plugin};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;

/// When to try a failed delivery again.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Delays before the 2nd, 3rd, ... attempt; the last one repeats. By default 5 s, 30 s,
    /// 2 min, 10 min, 30 min, 1 h.
    pub ladder: Vec<Duration>,
    /// Give up once the first attempt is this old. By default 24 h.
    pub max_age: Duration,
    /// The longest `Retry-After` honoured. By default 1 h.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            ladder: [5, 30, 120, 600, 1800, 3600].map(Duration::from_secs).to_vec(),
            max_age: Duration::from_secs(24 * 3600),
            max_retry_after: Duration::from_secs(3600),
        }
    }
}

impl RetryPolicy {
    /// The delay before attempt `attempt + 1`, given what the receiver asked for.
    pub fn delay(&self, attempt: u32, asked: Option<Duration>, jitter: f64) -> Duration {
        if let Some(asked) = asked {
            return asked.min(self.max_retry_after);
        }
        let step = (attempt.saturating_sub(1) as usize).min(self.ladder.len().saturating_sub(1));
        let base = self.ladder.get(step).copied().unwrap_or(Duration::from_secs(5));
        base.mul_f64(1.0 + 0.2 * jitter.clamp(-1.0, 1.0))
    }
}

/// Fans events out to plugins, one ordered chain per (plugin, call).
pub struct Dispatcher {
    plugins: Vec<Arc<Plugin>>,
    routes: Option<Routes>,
    retry: RetryPolicy,
    chains: Mutex<HashMap<(usize, String), mpsc::UnboundedSender<CallEvent>>>,
}

impl Dispatcher {
    /// A dispatcher to `plugins`, selected per event by `routes` (every plugin when `None`),
    /// with the given retry policy.
    pub fn new(plugins: Vec<Arc<Plugin>>, routes: Option<Routes>, retry: RetryPolicy) -> Self {
        Dispatcher {
            plugins,
            routes,
            retry,
            chains: Mutex::default(),
        }
    }

    /// The plugins `event` goes to, as indices into `plugins`.
    fn targets(&self, event: &CallEvent) -> Vec<usize> {
        let Some(routes) = &self.routes else {
            return (0..self.plugins.len()).collect();
        };
        let user = match event {
            CallEvent::Recording(recording) => recording.last_end.as_ref().map(|e| e.user.as_str()),
            other => other.user(),
        };
        let names = routes.plugins_for(user.unwrap_or(""), None);
        (0..self.plugins.len())
            .filter(|&i| names.contains(&self.plugins[i].name()))
            .collect()
    }

    /// Queues `event` for its plugins, behind the same call's earlier events.
    pub fn dispatch(&self, event: CallEvent) {
        let call = call_key(&event);
        let targets = self.targets(&event);
        let mut chains = self.chains.lock().expect("chain map poisoned");
        for index in targets {
            let plugin = &self.plugins[index];
            let key = (index, call.clone());
            let sender = chains
                .entry(key)
                .or_insert_with(|| spawn_chain(plugin.clone(), self.retry.clone()));
            if let Err(mpsc::error::SendError(event)) = sender.send(event.clone()) {
                // The chain ended (its call was closed earlier): start a new one.
                let sender = spawn_chain(plugin.clone(), self.retry.clone());
                sender.send(event).expect("a new chain is listening");
                chains.insert((index, call.clone()), sender);
            }
        }
    }

    /// Lets the chains of a finished call end once they have delivered what they hold.
    pub fn close_call(&self, stamp: &str, pbx_call_id: u64) {
        let call = format!("{stamp}_{pbx_call_id}");
        let mut chains = self.chains.lock().expect("chain map poisoned");
        chains.retain(|(_, key), _| *key != call);
    }
}

/// Events of one call share this key: the call id without its link.
fn call_key(event: &CallEvent) -> String {
    let id = event.call_id();
    format!("{}_{}", id.stamp, id.pbx_call_id)
}

fn spawn_chain(plugin: Arc<Plugin>, retry: RetryPolicy) -> mpsc::UnboundedSender<CallEvent> {
    let (sender, mut receiver) = mpsc::unbounded_channel::<CallEvent>();
    tokio::spawn(async move {
        while let Some(event) = receiver.recv().await {
            deliver_with_retries(&plugin, &event, &retry).await;
        }
    });
    sender
}

async fn deliver_with_retries(plugin: &Plugin, event: &CallEvent, retry: &RetryPolicy) {
    let key = event.key();
    let first = Instant::now();
    let mut attempt = 1;
    loop {
        let timestamp = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let outcome = plugin
            .deliver(DeliveryRequest {
                event,
                idempotency_key: &key,
                attempt,
                timestamp,
            })
            .await;
        let asked = match outcome {
            DeliveryOutcome::Delivered => return,
            DeliveryOutcome::Rejected { message, .. } => {
                tracing::error!(plugin = plugin.name(), key, message, "delivery rejected; not retried");
                return;
            }
            DeliveryOutcome::Retry { after, .. } => after,
            DeliveryOutcome::Failed { .. } => None,
        };
        let delay = retry.delay(attempt, asked, jitter());
        if first.elapsed() + delay > retry.max_age {
            tracing::error!(plugin = plugin.name(), key, attempt, "delivery given up: too old");
            return;
        }
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}

/// A value in [-1, 1] from the clock's low bits: enough to spread retries apart.
fn jitter() -> f64 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    (nanos % 2001) as f64 / 1000.0 - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_climb_the_ladder_with_bounded_jitter() {
        let policy = RetryPolicy::default();
        let secs = |attempt, jitter| policy.delay(attempt, None, jitter).as_secs_f64();
        assert_eq!(secs(1, 0.0), 5.0);
        assert_eq!(secs(2, 0.0), 30.0);
        assert_eq!(secs(6, 0.0), 3600.0);
        assert_eq!(secs(60, 0.0), 3600.0, "the last step repeats");
        assert_eq!(secs(1, 1.0), 6.0);
        assert_eq!(secs(1, -1.0), 4.0);
        assert_eq!(secs(1, 7.0), 6.0, "jitter is clamped to ±20 %");
    }

    #[test]
    fn retry_after_is_honoured_up_to_its_bound() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay(1, Some(Duration::from_secs(7)), 0.5), Duration::from_secs(7));
        assert_eq!(policy.delay(1, Some(Duration::from_secs(86_400)), 0.0), Duration::from_secs(3600));
    }
}
