//! When a failed delivery is tried again, and when the queue gives up on it (pure).
//!
//! A *series* of attempts starts when the event is taken, and again when an operator retries a
//! parked delivery; the count and age limits apply to the current series, so a replayed delivery
//! gets a full new ladder.

use std::time::Duration;

/// When to try a failed delivery again.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Delays before the 2nd, 3rd, ... attempt of a series; the last one repeats. By default
    /// 5 s, 30 s, 2 min, 10 min, 30 min, 1 h (then hourly).
    pub ladder: Vec<Duration>,
    /// Each ladder delay is scaled by a random factor in `1 ± jitter`, so deliveries that failed
    /// together do not all come back at once. Between 0 and 1; by default 0.2 (±20 %).
    pub jitter: f64,
    /// Park a delivery after this many failed attempts in a series. By default 50 (so the age
    /// limit normally decides).
    pub max_attempts: u32,
    /// Park a delivery once its series is this old. The last retry is moved forward to this
    /// age, so the receiver gets one try at the deadline. By default 24 h.
    pub max_age: Duration,
    /// The shortest delay honoured from a receiver's `Retry-After`. By default 1 s.
    pub min_retry_after: Duration,
    /// The longest delay honoured from a receiver's `Retry-After`. By default 1 h.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            ladder: [5, 30, 120, 600, 1800, 3600]
                .map(Duration::from_secs)
                .to_vec(),
            jitter: 0.2,
            max_attempts: 50,
            max_age: Duration::from_secs(24 * 3600),
            min_retry_after: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(3600),
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    /// Try again after this delay.
    RetryIn(Duration),
    /// Stop and park the delivery, for this reason.
    GiveUp(String),
}

impl RetryPolicy {
    /// The delay before the next attempt, after `failed` failed attempts in this series
    /// (`failed >= 1`), given the delay the receiver asked for and a random `unit` in [-1, 1].
    pub fn delay(&self, failed: u32, asked: Option<Duration>, unit: f64) -> Duration {
        if let Some(asked) = asked {
            return asked.clamp(
                self.min_retry_after,
                self.max_retry_after.max(self.min_retry_after),
            );
        }
        let step = (failed.saturating_sub(1) as usize).min(self.ladder.len().saturating_sub(1));
        let base = self
            .ladder
            .get(step)
            .copied()
            .unwrap_or(Duration::from_secs(5));
        let jitter = self.jitter.clamp(0.0, 1.0);
        base.mul_f64(1.0 + jitter * unit.clamp(-1.0, 1.0))
    }

    /// The next step after `failed` failed attempts in a series that is `age` old.
    pub fn next_step(
        &self,
        failed: u32,
        age: Duration,
        asked: Option<Duration>,
        unit: f64,
    ) -> NextStep {
        if failed >= self.max_attempts {
            return NextStep::GiveUp(format!("gave up after {failed} attempts"));
        }
        if age >= self.max_age {
            return NextStep::GiveUp(format!(
                "gave up after {failed} attempts in {}",
                human(self.max_age)
            ));
        }
        let delay = self.delay(failed, asked, unit);
        NextStep::RetryIn(delay.min(self.max_age - age))
    }
}

/// `90s` → `1m30s`, `86400s` → `24h`: durations for messages.
pub(crate) fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out += &format!("{h}h");
    }
    if m > 0 {
        out += &format!("{m}m");
    }
    if s > 0 || out.is_empty() {
        out += &format!("{s}s");
    }
    out
}

/// A random number in [-1, 1] for [`RetryPolicy::delay`].
pub(crate) fn random_unit() -> f64 {
    use rand::Rng;
    rand::rng().random_range(-1.0..=1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn delays_climb_the_ladder_with_bounded_jitter() {
        let policy = RetryPolicy::default();
        let secs = |failed, unit| policy.delay(failed, None, unit).as_secs_f64();
        #[rustfmt::skip]
        let cases: &[(u32, f64, f64)] = &[
            (1, 0.0, 5.0), (2, 0.0, 30.0), (3, 0.0, 120.0), (4, 0.0, 600.0),
            (5, 0.0, 1800.0), (6, 0.0, 3600.0), (60, 0.0, 3600.0), // the last step repeats
            (1, 1.0, 6.0), (1, -1.0, 4.0), (1, 7.0, 6.0),         // ±20 %, clamped
        ];
        for &(failed, unit, expected) in cases {
            assert_eq!(secs(failed, unit), expected, "failed {failed}, unit {unit}");
        }
    }

    #[test]
    fn retry_after_is_honoured_within_bounds() {
        let policy = RetryPolicy::default();
        #[rustfmt::skip]
        let cases: &[(u64, u64)] = &[(7, 7), (86_400, 3600), (0, 1)];
        for &(asked, expected) in cases {
            assert_eq!(
                policy.delay(1, Some(S(asked)), 0.5),
                S(expected),
                "asked {asked}"
            );
        }
    }

    #[test]
    fn gives_up_on_count_and_age() {
        let policy = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        #[rustfmt::skip]
        let cases: &[(u32, u64, NextStep)] = &[
            (1, 0, NextStep::RetryIn(S(5))),
            (2, 0, NextStep::RetryIn(S(30))),
            (3, 0, NextStep::GiveUp("gave up after 3 attempts".into())),
            (2, 86_390, NextStep::RetryIn(S(10))), // last try moved to the deadline
            (2, 86_400, NextStep::GiveUp("gave up after 2 attempts in 24h".into())),
        ];
        for (failed, age, expected) in cases {
            assert_eq!(
                &policy.next_step(*failed, S(*age), None, 0.0),
                expected,
                "{failed} {age}"
            );
        }
    }

    #[test]
    fn formats_durations() {
        for (secs, text) in [(0, "0s"), (90, "1m30s"), (3600, "1h"), (3661, "1h1m1s")] {
            assert_eq!(human(S(secs)), text);
        }
    }
}
