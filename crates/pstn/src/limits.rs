//! Per-identity call caps, sans-IO: how many phone calls one identity may have at
//! once and start per minute (issue 9's security defaults: a stolen or buggy client
//! cannot run up a trunk bill; a trunk or a calling number cannot flood the gateway
//! with inbound calls, see [`crate::inbound`]).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// The window calls per minute are counted over.
const MINUTE: Duration = Duration::from_secs(60);

/// Which cap refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitExceeded {
    /// The identity already has the most phone calls it may have at once.
    #[error("too many phone calls at once")]
    Concurrent,
    /// The identity started the most phone calls it may start in a minute.
    #[error("too many phone calls started in the last minute")]
    Rate,
}

/// Counts phone calls per identity `K`. Every [`DialLimiter::try_start`] that
/// succeeds must be matched by one [`DialLimiter::finished`].
#[derive(Debug)]
pub struct DialLimiter<K> {
    max_concurrent: usize,
    per_minute: usize,
    active: BTreeMap<K, usize>,
    /// When each identity's calls in the last minute started, oldest first.
    started: BTreeMap<K, VecDeque<Instant>>,
}

impl<K: Ord + Clone> DialLimiter<K> {
    /// At most `max_concurrent` calls at once and `per_minute` started in any minute.
    #[must_use]
    pub fn new(max_concurrent: usize, per_minute: usize) -> Self {
        DialLimiter {
            max_concurrent,
            per_minute,
            active: BTreeMap::new(),
            started: BTreeMap::new(),
        }
    }

    /// Counts a call `who` starts at `now`, unless a cap refuses it.
    ///
    /// # Errors
    /// [`LimitExceeded`] naming the cap; nothing is counted then.
    pub fn try_start(&mut self, who: &K, now: Instant) -> Result<(), LimitExceeded> {
        self.check(who, now)?;
        self.started.entry(who.clone()).or_default().push_back(now);
        *self.active.entry(who.clone()).or_default() += 1;
        Ok(())
    }

    /// Whether a call `who` starts at `now` would pass both caps, without counting
    /// it (to check several limiters before counting in any).
    ///
    /// # Errors
    /// [`LimitExceeded`] naming the cap.
    pub fn check(&mut self, who: &K, now: Instant) -> Result<(), LimitExceeded> {
        if self.active.get(who).copied().unwrap_or(0) >= self.max_concurrent {
            return Err(LimitExceeded::Concurrent);
        }
        let Some(recent) = self.started.get_mut(who) else {
            return if self.per_minute == 0 {
                Err(LimitExceeded::Rate)
            } else {
                Ok(())
            };
        };
        while recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= MINUTE)
        {
            recent.pop_front();
        }
        if recent.len() >= self.per_minute {
            return Err(LimitExceeded::Rate);
        }
        Ok(())
    }

    /// How long after `now` the rate cap lets `who` start a call again (zero when
    /// it does now): for a Retry-After.
    #[must_use]
    pub fn rate_retry_after(&self, who: &K, now: Instant) -> Duration {
        let Some(recent) = self.started.get(who) else {
            return Duration::ZERO;
        };
        if recent.len() < self.per_minute {
            return Duration::ZERO;
        }
        // The start that has to leave the window before one more fits.
        let index = recent.len() - self.per_minute;
        recent.get(index).map_or(Duration::ZERO, |t| {
            (*t + MINUTE).saturating_duration_since(now)
        })
    }

    /// A call `who` started is over.
    pub fn finished(&mut self, who: &K) {
        if let Some(n) = self.active.get_mut(who) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.active.remove(who);
            }
        }
    }

    /// Forgets identities with no call running and none started in the last minute,
    /// so the tables stay as small as the set of recent callers.
    pub fn prune(&mut self, now: Instant) {
        let active = &self.active;
        self.started.retain(|who, recent| {
            recent
                .back()
                .is_some_and(|t| now.saturating_duration_since(*t) < MINUTE)
                || active.contains_key(who)
        });
    }

    /// Calls `who` has running.
    #[must_use]
    pub fn active(&self, who: &K) -> usize {
        self.active.get(who).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_cap_frees_up_when_calls_end() {
        let now = Instant::now();
        let mut limits = DialLimiter::new(2, 100);
        assert_eq!(limits.try_start(&"alice", now), Ok(()));
        assert_eq!(limits.try_start(&"alice", now), Ok(()));
        assert_eq!(
            limits.try_start(&"alice", now),
            Err(LimitExceeded::Concurrent)
        );
        // Someone else is not affected.
        assert_eq!(limits.try_start(&"bob", now), Ok(()));
        limits.finished(&"alice");
        assert_eq!(limits.active(&"alice"), 1);
        assert_eq!(limits.try_start(&"alice", now), Ok(()));
    }

    #[test]
    fn rate_cap_counts_the_last_minute() {
        let t0 = Instant::now();
        let mut limits = DialLimiter::new(100, 3);
        for i in 0..3 {
            limits
                .try_start(&"alice", t0 + Duration::from_secs(i))
                .unwrap();
            limits.finished(&"alice");
        }
        let t = t0 + Duration::from_secs(59);
        assert_eq!(limits.try_start(&"alice", t), Err(LimitExceeded::Rate));
        // A minute after the first, one slot is free again.
        let t = t0 + MINUTE;
        assert_eq!(limits.try_start(&"alice", t), Ok(()));
        assert_eq!(limits.try_start(&"alice", t), Err(LimitExceeded::Rate));
    }

    #[test]
    fn check_counts_nothing_and_retry_after_says_when_a_slot_frees() {
        let t0 = Instant::now();
        let mut limits = DialLimiter::new(usize::MAX, 2);
        assert_eq!(limits.check(&"alice", t0), Ok(()));
        assert_eq!(limits.check(&"alice", t0), Ok(()));
        assert_eq!(limits.rate_retry_after(&"alice", t0), Duration::ZERO);
        limits.try_start(&"alice", t0).unwrap();
        limits
            .try_start(&"alice", t0 + Duration::from_secs(10))
            .unwrap();
        let t = t0 + Duration::from_secs(20);
        assert_eq!(limits.check(&"alice", t), Err(LimitExceeded::Rate));
        assert_eq!(
            limits.rate_retry_after(&"alice", t),
            Duration::from_secs(40),
            "the first start leaves the window at t0 + 60 s"
        );
        assert_eq!(limits.check(&"alice", t0 + MINUTE), Ok(()));
    }

    #[test]
    fn prune_keeps_only_recent_or_active_callers() {
        let t0 = Instant::now();
        let mut limits = DialLimiter::new(5, 5);
        limits.try_start(&"alice", t0).unwrap();
        limits.try_start(&"bob", t0).unwrap();
        limits.finished(&"bob");
        limits.prune(t0 + MINUTE);
        assert_eq!(
            limits.started.len(),
            1,
            "bob is forgotten, alice still calls"
        );
        assert_eq!(limits.active(&"alice"), 1);
    }
}
