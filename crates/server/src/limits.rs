//! Per-connection rate limiting, sans IO: a token bucket that is told the time.

use std::time::Instant;

/// A token bucket: `rate` tokens a second, at most `burst` stored, full at the start.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub(crate) fn new(rate: u32, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate: f64::from(rate),
            burst,
            tokens: burst,
            at: now,
        }
    }

    /// Takes a token if there is one at `now`; `now` earlier than the last call counts
    /// as no time passed.
    pub(crate) fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = self.at.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What a connection task does with a message, given the bucket's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Pass it on.
    Pass,
    /// Drop it and tell the client `rate_limited` (first refusal in a row).
    Refuse,
    /// Drop it silently (the client was told).
    Drop,
    /// Close the connection: it kept flooding after it was told.
    Close,
}

/// A token bucket plus the flood policy: the first refused message gets an error,
/// later ones are dropped, and `3 × burst` refusals in a row close the connection.
#[derive(Debug, Clone)]
pub(crate) struct RateLimiter {
    bucket: TokenBucket,
    refused: u64,
    close_after: u64,
}

impl RateLimiter {
    /// A limiter allowing `rate` messages a second with bursts of `burst`.
    pub(crate) fn new(rate: u32, burst: u32, now: Instant) -> Self {
        RateLimiter {
            bucket: TokenBucket::new(rate, burst, now),
            refused: 0,
            close_after: 3 * u64::from(burst.max(1)),
        }
    }

    /// Judges one message arriving at `now`.
    pub(crate) fn check(&mut self, now: Instant) -> Verdict {
        if self.bucket.allow(now) {
            self.refused = 0;
            return Verdict::Pass;
        }
        self.refused += 1;
        match self.refused {
            1 => Verdict::Refuse,
            n if n >= self.close_after => Verdict::Close,
            _ => Verdict::Drop,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn burst_then_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10, 3, t0);
        assert!((0..3).all(|_| bucket.allow(t0)));
        assert!(!bucket.allow(t0));
        // 100 ms at 10/s is one token.
        assert!(bucket.allow(t0 + Duration::from_millis(100)));
        assert!(!bucket.allow(t0 + Duration::from_millis(100)));
        // 50 ms is half a token: not enough; another 50 ms completes it.
        assert!(!bucket.allow(t0 + Duration::from_millis(150)));
        assert!(bucket.allow(t0 + Duration::from_millis(200)));
    }

    #[test]
    fn idle_time_refills_up_to_the_burst_only() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10, 3, t0);
        assert!((0..3).all(|_| bucket.allow(t0)));
        let later = t0 + Duration::from_secs(3600);
        assert!((0..3).all(|_| bucket.allow(later)));
        assert!(!bucket.allow(later));
    }

    #[test]
    fn time_going_backwards_adds_nothing() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        let mut bucket = TokenBucket::new(1, 1, t1);
        assert!(bucket.allow(t1));
        assert!(!bucket.allow(t0));
        assert!(!bucket.allow(t1));
        assert!(bucket.allow(t1 + Duration::from_secs(1)));
    }

    #[test]
    fn flood_is_refused_once_then_dropped_then_closed() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(1, 2, t0);
        assert_eq!(limiter.check(t0), Verdict::Pass);
        assert_eq!(limiter.check(t0), Verdict::Pass);
        assert_eq!(limiter.check(t0), Verdict::Refuse);
        for _ in 0..4 {
            assert_eq!(limiter.check(t0), Verdict::Drop);
        }
        assert_eq!(limiter.check(t0), Verdict::Close);
    }

    #[test]
    fn slowing_down_forgives() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(1, 1, t0);
        assert_eq!(limiter.check(t0), Verdict::Pass);
        assert_eq!(limiter.check(t0), Verdict::Refuse);
        assert_eq!(limiter.check(t0), Verdict::Drop);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(limiter.check(t1), Verdict::Pass);
        // A new flood gets a new error.
        assert_eq!(limiter.check(t1), Verdict::Refuse);
    }
}
