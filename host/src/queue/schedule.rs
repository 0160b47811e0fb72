//! The scheduler's in-memory state: lanes, timers, per-plugin limits and circuit breakers.
//!
//! Pure bookkeeping with an explicit `now` (unix milliseconds): no I/O, no tasks, no clock. The
//! disk is the truth; this state is rebuilt from it at every start.
//!
//! A *lane* is the ordered list of pending rows of one (plugin, call). Only a lane's head may be
//! attempted, and only one attempt per lane runs at a time: that is the per-call ordering. A lane
//! whose head waits for its retry time sits in `due`; once due it joins its plugin's `ready`
//! list, from which [`State::pump`] starts deliveries as the plugin's concurrency cap, rate
//! limit, circuit breaker and enabled state allow. Waiting in `ready` costs no attempt.

use super::config::{BreakerPolicy, PluginPolicy, QueueConfig};
use super::metrics::{BreakerState, DurationHistogram, OutcomeCounts};
use super::store::{DeliveryRecord, ParkRecord};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

/// One (plugin, call) lane.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct LaneKey {
    pub plugin: Arc<str>,
    pub call: Arc<str>,
}

/// The scheduling view of a pending row.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub event: u64,
    pub lane: LaneKey,
    pub attempts: u32,
    pub series_start: u64,
    pub series_failures: u32,
    pub next_at: u64,
    /// An operator retried it after it was parked.
    pub replayed: bool,
}

impl Row {
    pub(crate) fn from_record(record: &DeliveryRecord) -> Row {
        Row {
            event: record.event,
            lane: LaneKey {
                plugin: record.plugin.as_str().into(),
                call: record.call.as_str().into(),
            },
            attempts: record.attempts,
            series_start: record.series_start,
            series_failures: record.series_failures,
            next_at: record.next_at,
            replayed: record.replayed,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Armed {
    No,
    Due(u64),
    Ready,
}

#[derive(Debug)]
struct Lane {
    ids: BTreeSet<u64>,
    busy: bool,
    armed: Armed,
}

/// A delivery the scheduler decided to start.
#[derive(Debug, Clone)]
pub(crate) struct Start {
    pub id: u64,
    pub row: Row,
}

#[derive(Debug)]
struct Breaker {
    consecutive: u32,
    state: BreakerState,
    opened: u64,
}

impl Breaker {
    /// How many deliveries may run now, or when that changes.
    fn admit(&mut self, now: u64, cap: u32) -> Result<u32, u64> {
        if let BreakerState::Open { until } = self.state {
            if now < until {
                return Err(until);
            }
            self.state = BreakerState::HalfOpen;
        }
        Ok(match self.state {
            BreakerState::HalfOpen => 1,
            _ => cap,
        })
    }

    fn record(&mut self, working: bool, now: u64, policy: &BreakerPolicy) -> bool {
        if working {
            self.consecutive = 0;
            self.state = BreakerState::Closed;
            return false;
        }
        self.consecutive += 1;
        let trip = policy.failures > 0
            && (self.state == BreakerState::HalfOpen || self.consecutive >= policy.failures);
        if trip && !matches!(self.state, BreakerState::Open { .. }) {
            self.state = BreakerState::Open {
                until: now + policy.cool_down.as_millis() as u64,
            };
            self.opened += 1;
            return true;
        }
        false
    }
}

/// A token bucket: `rate` tokens a second, holding at most one second's worth (at least 1).
#[derive(Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
    at: u64,
}

impl Bucket {
    fn new(rate: f64, now: u64) -> Bucket {
        let rate = rate.max(0.001);
        Bucket {
            rate,
            tokens: rate.max(1.0),
            at: now,
        }
    }

    /// `Ok` if a token is there now, else the time one will be.
    fn check(&mut self, now: u64) -> Result<(), u64> {
        let elapsed = now.saturating_sub(self.at) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate.max(1.0));
        self.at = now;
        if self.tokens >= 1.0 {
            Ok(())
        } else {
            Err(now + ((1.0 - self.tokens) / self.rate * 1000.0).ceil() as u64)
        }
    }

    fn take(&mut self) {
        self.tokens -= 1.0;
    }
}

/// What the scheduler keeps per plugin.
#[derive(Debug)]
pub(crate) struct PluginRun {
    /// Configured; rows of unconfigured plugins wait.
    known: bool,
    policy: PluginPolicy,
    in_flight: u32,
    ready: VecDeque<LaneKey>,
    breaker: Breaker,
    bucket: Option<Bucket>,
    pub disabled: Option<ParkRecord>,
    pub parked: u64,
    /// Parked deliveries removed because they were kept for `parked_keep`, since start.
    pub parked_expired: u64,
    pub outcomes: OutcomeCounts,
    pub durations: DurationHistogram,
}

impl PluginRun {
    fn new(policy: Option<&PluginPolicy>, now: u64) -> PluginRun {
        PluginRun {
            known: policy.is_some(),
            bucket: policy
                .and_then(|p| p.rate_per_second)
                .map(|rate| Bucket::new(rate, now)),
            policy: policy.cloned().unwrap_or_default(),
            in_flight: 0,
            ready: VecDeque::new(),
            breaker: Breaker {
                consecutive: 0,
                state: BreakerState::Closed,
                opened: 0,
            },
            disabled: None,
            parked: 0,
            parked_expired: 0,
            outcomes: OutcomeCounts::default(),
            durations: DurationHistogram::default(),
        }
    }

    pub(crate) fn known(&self) -> bool {
        self.known
    }

    pub(crate) fn in_flight(&self) -> u32 {
        self.in_flight
    }

    pub(crate) fn breaker(&self) -> BreakerState {
        self.breaker.state
    }

    pub(crate) fn breaker_opened(&self) -> u64 {
        self.breaker.opened
    }
}

/// The scheduler's whole state.
pub(crate) struct State {
    rows: BTreeMap<u64, Row>,
    lanes: HashMap<LaneKey, Lane>,
    due: BTreeSet<(u64, LaneKey)>,
    plugins: BTreeMap<Arc<str>, PluginRun>,
    policies: BTreeMap<String, PluginPolicy>,
    /// Events taken since start.
    pub taken: u64,
    /// No new deliveries start.
    pub stopping: bool,
}

impl State {
    /// A state with the configured plugins and nothing queued.
    pub(crate) fn new(config: &QueueConfig, now: u64) -> State {
        let mut state = State {
            rows: BTreeMap::new(),
            lanes: HashMap::new(),
            due: BTreeSet::new(),
            plugins: BTreeMap::new(),
            policies: config.plugins.clone(),
            taken: 0,
            stopping: false,
        };
        for name in config.plugins.keys() {
            state.plugin(name, now);
        }
        state
    }

    /// The plugin's run state, created on first use.
    pub(crate) fn plugin(&mut self, name: &str, now: u64) -> &mut PluginRun {
        if !self.plugins.contains_key(name) {
            let run = PluginRun::new(self.policies.get(name), now);
            self.plugins.insert(name.into(), run);
        }
        self.plugins.get_mut(name).expect("just inserted")
    }

    /// Puts new per-plugin policies in force (hot reload). A plugin keeps its counters, breaker
    /// and disabled state; one no longer listed becomes unknown, so its rows wait; a new one
    /// starts. The rate limit starts afresh only when it changed.
    pub(crate) fn set_policies(&mut self, policies: &BTreeMap<String, PluginPolicy>, now: u64) {
        self.policies = policies.clone();
        for (name, run) in &mut self.plugins {
            let policy = policies.get(&**name);
            run.known = policy.is_some();
            let policy = policy.cloned().unwrap_or_default();
            if policy.rate_per_second != run.policy.rate_per_second {
                run.bucket = policy.rate_per_second.map(|rate| Bucket::new(rate, now));
            }
            run.policy = policy;
        }
        for name in policies.keys() {
            self.plugin(name, now);
        }
    }

    pub(crate) fn plugins(&self) -> &BTreeMap<Arc<str>, PluginRun> {
        &self.plugins
    }

    pub(crate) fn rows(&self) -> &BTreeMap<u64, Row> {
        &self.rows
    }

    /// Whether a row is being attempted right now.
    pub(crate) fn is_busy(&self, id: u64) -> bool {
        self.rows.get(&id).is_some_and(|row| {
            self.lanes
                .get(&row.lane)
                .is_some_and(|lane| lane.busy && lane.ids.first() == Some(&id))
        })
    }

    /// Adds (or replaces) a pending row and arms its lane.
    pub(crate) fn insert(&mut self, id: u64, row: Row, now: u64) {
        let key = row.lane.clone();
        self.plugin(&key.plugin, now);
        self.rows.insert(id, row);
        self.lanes
            .entry(key.clone())
            .or_insert_with(|| Lane {
                ids: BTreeSet::new(),
                busy: false,
                armed: Armed::No,
            })
            .ids
            .insert(id);
        self.arm(&key, now);
    }

    /// Puts the lane where its head belongs: `due` for later, `ready` for now, nowhere while busy
    /// or empty (then it is dropped).
    fn arm(&mut self, key: &LaneKey, now: u64) {
        let Some(lane) = self.lanes.get_mut(key) else {
            return;
        };
        if lane.ids.is_empty() && !lane.busy {
            if let Armed::Due(at) = lane.armed {
                self.due.remove(&(at, key.clone()));
            }
            self.lanes.remove(key);
            return;
        }
        if lane.busy {
            return;
        }
        let head = lane.ids.first().expect("not empty");
        let next_at = self.rows[head].next_at;
        match lane.armed {
            Armed::Ready => return,
            Armed::Due(at) if at == next_at => return,
            Armed::Due(at) => {
                self.due.remove(&(at, key.clone()));
            }
            Armed::No => {}
        }
        if next_at <= now {
            lane.armed = Armed::Ready;
            let plugin = self.plugins.get_mut(&key.plugin).expect("plugin of a lane");
            plugin.ready.push_back(key.clone());
        } else {
            lane.armed = Armed::Due(next_at);
            self.due.insert((next_at, key.clone()));
        }
    }

    /// Starts what may start now. Returns the deliveries to run and the time to look again
    /// (`None`: only an outside change can make more work runnable).
    pub(crate) fn pump(&mut self, now: u64) -> (Vec<Start>, Option<u64>) {
        while let Some((at, key)) = self.due.first().cloned() {
            if at > now {
                break;
            }
            self.due.pop_first();
            if let Some(lane) = self.lanes.get_mut(&key)
                && lane.armed == Armed::Due(at)
            {
                lane.armed = Armed::Ready;
                let plugin = self.plugins.get_mut(&key.plugin).expect("plugin of a lane");
                plugin.ready.push_back(key);
            }
        }
        let mut starts = Vec::new();
        let mut wake = self.due.first().map(|(at, _)| *at);
        let mut later = |at: u64| wake = Some(wake.map_or(at, |w| w.min(at)));
        let mut rearm = Vec::new();
        for plugin in self.plugins.values_mut() {
            if self.stopping
                || plugin.ready.is_empty()
                || !plugin.known
                || plugin.disabled.is_some()
            {
                continue;
            }
            let cap = match plugin.breaker.admit(now, plugin.policy.concurrency.max(1)) {
                Ok(cap) => cap,
                Err(until) => {
                    later(until);
                    continue;
                }
            };
            while plugin.in_flight < cap && !plugin.ready.is_empty() {
                if let Some(bucket) = &mut plugin.bucket
                    && let Err(at) = bucket.check(now)
                {
                    later(at);
                    break;
                }
                let key = plugin.ready.pop_front().expect("not empty");
                let Some(lane) = self.lanes.get_mut(&key) else {
                    continue;
                };
                if lane.armed != Armed::Ready || lane.busy {
                    continue;
                }
                lane.armed = Armed::No;
                let Some(&id) = lane.ids.first() else {
                    rearm.push(key);
                    continue;
                };
                let row = &self.rows[&id];
                if row.next_at > now {
                    rearm.push(key);
                    continue;
                }
                lane.busy = true;
                plugin.in_flight += 1;
                if let Some(bucket) = &mut plugin.bucket {
                    bucket.take();
                }
                starts.push(Start {
                    id,
                    row: row.clone(),
                });
            }
        }
        for key in rearm {
            self.arm(&key, now);
        }
        let wake = match self.due.first() {
            Some((at, _)) => Some(wake.map_or(*at, |w| w.min(*at))),
            None => wake,
        };
        (starts, wake)
    }

    /// Ends the attempt of row `id`: `row` is its new state (`None`: delivered or parked, so it
    /// leaves its lane), `working` whether the receiver answered (for the breaker). Returns
    /// whether the breaker opened.
    pub(crate) fn finish(
        &mut self,
        id: u64,
        lane: &LaneKey,
        row: Option<Row>,
        working: Option<bool>,
        now: u64,
    ) -> bool {
        match row {
            Some(row) => {
                self.rows.insert(id, row);
            }
            None => {
                self.rows.remove(&id);
                if let Some(lane) = self.lanes.get_mut(lane) {
                    lane.ids.remove(&id);
                }
            }
        }
        if let Some(lane) = self.lanes.get_mut(lane) {
            lane.busy = false;
        }
        let plugin = self.plugin(&lane.plugin, now);
        plugin.in_flight = plugin.in_flight.saturating_sub(1);
        let opened = match working {
            Some(working) => {
                let policy = plugin.policy.breaker.clone();
                plugin.breaker.record(working, now, &policy)
            }
            None => false,
        };
        self.arm(lane, now);
        opened
    }

    /// Re-enables a plugin; its waiting lanes become ready again.
    pub(crate) fn set_disabled(&mut self, plugin: &str, disabled: Option<ParkRecord>, now: u64) {
        self.plugin(plugin, now).disabled = disabled;
    }

    /// Pending rows and the oldest series start, per plugin.
    pub(crate) fn pending_by_plugin(&self) -> BTreeMap<Arc<str>, (u64, Option<u64>)> {
        let mut out: BTreeMap<Arc<str>, (u64, Option<u64>)> = BTreeMap::new();
        for row in self.rows.values() {
            let entry = out.entry(row.lane.plugin.clone()).or_default();
            entry.0 += 1;
            entry.1 = Some(
                entry
                    .1
                    .map_or(row.series_start, |s| s.min(row.series_start)),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn config(concurrency: u32, rate: Option<f64>) -> QueueConfig {
        let mut config = QueueConfig::new(Default::default(), ["p"]);
        let policy = config.plugins.get_mut("p").unwrap();
        policy.concurrency = concurrency;
        policy.rate_per_second = rate;
        policy.breaker = BreakerPolicy {
            failures: 2,
            cool_down: Duration::from_secs(10),
        };
        config
    }

    fn row(call: &str, next_at: u64) -> Row {
        Row {
            event: 0,
            lane: LaneKey {
                plugin: "p".into(),
                call: call.into(),
            },
            attempts: 0,
            series_start: 0,
            series_failures: 0,
            next_at,
            replayed: false,
        }
    }

    fn ids(starts: &[Start]) -> Vec<u64> {
        starts.iter().map(|s| s.id).collect()
    }

    #[test]
    fn one_attempt_per_lane_in_id_order() {
        let mut state = State::new(&config(8, None), 0);
        state.insert(3, row("a", 0), 0);
        state.insert(1, row("a", 0), 0);
        state.insert(2, row("b", 0), 0);
        let (starts, _) = state.pump(0);
        assert_eq!(ids(&starts), [1, 2]);
        assert_eq!(ids(&state.pump(0).0), Vec::<u64>::new());
        state.finish(1, &row("a", 0).lane, None, Some(true), 0);
        assert_eq!(ids(&state.pump(0).0), [3]);
    }

    #[test]
    fn a_later_row_waits_for_the_retrying_head() {
        let mut state = State::new(&config(8, None), 0);
        state.insert(1, row("a", 0), 0);
        state.insert(2, row("a", 0), 0);
        assert_eq!(ids(&state.pump(0).0), [1]);
        state.finish(1, &row("a", 0).lane, Some(row("a", 5000)), Some(false), 0);
        let (starts, wake) = state.pump(10);
        assert!(starts.is_empty());
        assert_eq!(wake, Some(5000));
        assert_eq!(ids(&state.pump(5000).0), [1]);
    }

    #[test]
    fn caps_concurrency_and_rate() {
        let mut state = State::new(&config(2, None), 0);
        for id in 1..=3 {
            state.insert(id, row(&format!("c{id}"), 0), 0);
        }
        assert_eq!(ids(&state.pump(0).0), [1, 2]);

        let mut state = State::new(&config(8, Some(2.0)), 0);
        for id in 1..=5 {
            state.insert(id, row(&format!("c{id}"), 0), 0);
        }
        let (starts, wake) = state.pump(0);
        assert_eq!(ids(&starts), [1, 2], "a burst of one second's worth");
        assert_eq!(wake, Some(500));
        assert_eq!(ids(&state.pump(500).0), [3]);
    }

    #[test]
    fn breaker_opens_then_probes() {
        let mut state = State::new(&config(8, None), 0);
        for id in 1..=4 {
            state.insert(id, row(&format!("c{id}"), 0), 0);
        }
        assert_eq!(ids(&state.pump(0).0), [1, 2, 3, 4]);
        let lane = |id: u64| row(&format!("c{id}"), 0).lane;
        assert!(!state.finish(1, &lane(1), Some(row("c1", 100)), Some(false), 0));
        assert!(state.finish(2, &lane(2), Some(row("c2", 100)), Some(false), 0));
        state.finish(3, &lane(3), Some(row("c3", 100)), Some(false), 0);
        state.finish(4, &lane(4), Some(row("c4", 100)), Some(false), 0);
        let (starts, wake) = state.pump(200);
        assert!(starts.is_empty(), "paused");
        assert_eq!(wake, Some(10_000));
        assert_eq!(state.rows()[&1].attempts, 0, "waiting burns nothing");
        let (starts, _) = state.pump(10_000);
        assert_eq!(ids(&starts), [1], "one probe");
        state.finish(1, &lane(1), None, Some(true), 10_000);
        assert_eq!(ids(&state.pump(10_000).0), [2, 3, 4]);
    }

    #[test]
    fn new_policies_resume_and_hold_plugins() {
        let mut state = State::new(&config(8, None), 0);
        let mut other = row("a", 0);
        other.lane.plugin = "q".into();
        state.insert(1, other, 0);
        assert!(state.pump(0).0.is_empty(), "q is not configured");
        let mut policies = config(8, None).plugins;
        policies.insert("q".into(), PluginPolicy::default());
        policies.remove("p");
        state.set_policies(&policies, 0);
        assert_eq!(ids(&state.pump(0).0), [1], "q now is");
        state.insert(2, row("b", 0), 0);
        assert!(state.pump(0).0.is_empty(), "p no longer is");
        assert!(!state.plugins()["p"].known());
    }

    #[test]
    fn disabled_and_unknown_plugins_wait() {
        let mut state = State::new(&config(8, None), 0);
        state.set_disabled(
            "p",
            Some(ParkRecord {
                at: 0,
                reason: "410".into(),
                outcome_unknown: false,
            }),
            0,
        );
        state.insert(1, row("a", 0), 0);
        let mut other = row("a", 0);
        other.lane.plugin = "gone".into();
        state.insert(2, other, 0);
        assert!(state.pump(0).0.is_empty());
        state.set_disabled("p", None, 0);
        assert_eq!(ids(&state.pump(0).0), [1]);
    }
}
