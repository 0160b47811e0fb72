//! The three kinds of rate limit the CRMs document: a rolling window (HubSpot, Pipedrive, Zoho's
//! token endpoint), a leaky bucket (Bitrix24) and a cap on requests in flight (Zoho).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// At most `limit` hits per key in any `window`.
#[derive(Debug)]
pub(crate) struct RollingWindow {
    limit: usize,
    window: Duration,
    hits: Mutex<HashMap<String, VecDeque<Instant>>>,
}

/// What a rolling window said about one hit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WindowState {
    /// The hit was counted (false: over the limit, not counted).
    pub allowed: bool,
    /// Hits left in the window after this one.
    pub remaining: usize,
    /// Until the oldest hit in the window leaves it.
    pub reset: Duration,
}

impl RollingWindow {
    pub(crate) fn new(limit: usize, window: Duration) -> Self {
        RollingWindow {
            limit,
            window,
            hits: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    pub(crate) fn window(&self) -> Duration {
        self.window
    }

    /// Counts a hit for `key` if the window has room.
    pub(crate) fn hit(&self, key: &str) -> WindowState {
        let now = Instant::now();
        let mut hits = self.hits.lock().expect("window poisoned");
        let hits = hits.entry(key.to_owned()).or_default();
        while hits
            .front()
            .is_some_and(|&at| now.duration_since(at) >= self.window)
        {
            hits.pop_front();
        }
        let allowed = hits.len() < self.limit;
        if allowed {
            hits.push_back(now);
        }
        let reset = hits
            .front()
            .map_or(Duration::ZERO, |&at| self.window.saturating_sub(now - at));
        WindowState {
            allowed,
            remaining: self.limit - hits.len(),
            reset,
        }
    }
}

/// A bucket of `capacity` requests that drains `per_second`; a request finding it full is refused.
#[derive(Debug)]
pub(crate) struct LeakyBucket {
    capacity: f64,
    per_second: f64,
    state: Mutex<(f64, Instant)>,
}

impl LeakyBucket {
    pub(crate) fn new(capacity: u32, per_second: f64) -> Self {
        LeakyBucket {
            capacity: f64::from(capacity),
            per_second,
            state: Mutex::new((0.0, Instant::now())),
        }
    }

    /// Adds one request if there is room.
    pub(crate) fn admit(&self) -> bool {
        let mut state = self.state.lock().expect("bucket poisoned");
        let now = Instant::now();
        let (level, last) = *state;
        let level = (level - now.duration_since(last).as_secs_f64() * self.per_second).max(0.0);
        let admitted = level + 1.0 <= self.capacity;
        *state = (if admitted { level + 1.0 } else { level }, now);
        admitted
    }
}

/// Counts requests in flight; [`InFlight::enter`] refuses past the cap.
#[derive(Debug)]
pub(crate) struct InFlight {
    cap: usize,
    now: Arc<AtomicUsize>,
}

/// Holds one place in an [`InFlight`] until dropped.
#[derive(Debug)]
pub(crate) struct InFlightGuard(Arc<AtomicUsize>);

impl InFlight {
    pub(crate) fn new(cap: usize) -> Self {
        InFlight {
            cap,
            now: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub(crate) fn enter(&self) -> Option<InFlightGuard> {
        let before = self.now.fetch_add(1, Ordering::SeqCst);
        let guard = InFlightGuard(self.now.clone());
        (before < self.cap).then_some(guard)
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolling_window_refuses_past_its_limit_per_key() {
        let window = RollingWindow::new(2, Duration::from_secs(60));
        assert!(window.hit("a").allowed);
        assert_eq!(window.hit("a").remaining, 0);
        assert!(!window.hit("a").allowed);
        assert!(window.hit("b").allowed);
    }

    #[test]
    fn leaky_bucket_refuses_when_full() {
        let bucket = LeakyBucket::new(3, 0.001);
        assert!((0..3).all(|_| bucket.admit()));
        assert!(!bucket.admit());
    }

    #[test]
    fn in_flight_caps_and_releases() {
        let cap = InFlight::new(1);
        let first = cap.enter();
        assert!(first.is_some());
        assert!(cap.enter().is_none());
        drop(first);
        assert!(cap.enter().is_some());
    }
}
