//! Virtual time.

use std::time::{Duration, Instant};

/// A virtual monotonic clock: starts at a base `Instant` taken once, then moves only
/// when told to and only forward.
///
/// ```
/// use std::time::Duration;
/// use ringwire_testkit::Clock;
///
/// let mut clock = Clock::new();
/// clock.advance(Duration::from_secs(30));
/// assert_eq!(clock.elapsed(), Duration::from_secs(30));
/// clock.advance_to(clock.base()); // the past: ignored
/// assert_eq!(clock.elapsed(), Duration::from_secs(30));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    base: Instant,
    now: Instant,
}

impl Clock {
    /// A clock whose base is `Instant::now()`, the only wall-clock read a test needs
    /// (an `Instant` cannot be made any other way).
    pub fn new() -> Self {
        Self::starting_at(Instant::now())
    }

    /// A clock starting at `base`.
    pub fn starting_at(base: Instant) -> Self {
        Clock { base, now: base }
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Where the clock started.
    pub fn base(&self) -> Instant {
        self.base
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.base
    }

    /// Moves to `to` when that is later than now; an earlier `to` leaves the clock
    /// where it is (an overdue timeout runs "now").
    pub fn advance_to(&mut self, to: Instant) {
        self.now = self.now.max(to);
    }

    /// Moves forward by `by`.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
    }
}

impl Default for Clock {
    /// [`Clock::new`].
    fn default() -> Self {
        Self::new()
    }
}
