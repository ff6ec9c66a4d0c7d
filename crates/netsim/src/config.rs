//! What a [`Link`](crate::Link) does to the items sent over it.

use std::time::Duration;

/// How a one-way link delays, loses, duplicates and reorders items.
///
/// Start from a preset and adjust fields or use the `with_` builders:
///
/// ```
/// use std::time::Duration;
/// use ringwire_netsim::{LinkConfig, Loss};
///
/// let config = LinkConfig::lan()
///     .with_latency(Duration::from_millis(30))
///     .with_loss(Loss::Random { probability: 0.05 });
/// assert_eq!(config.latency, Duration::from_millis(30));
/// ```
///
/// Order of effects for each sent item: the rate limiter's queue (drop when full), then
/// loss on the wire, then duplication, then delay (`latency` + jitter + reorder delay).
/// A [`reliable`](LinkConfig::reliable) link skips loss, duplication and reordering and
/// delivers in send order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LinkConfig {
    /// Fixed one-way delay every item gets; the earliest possible delivery is
    /// `sent + latency` (later when the rate limiter queues the item).
    pub latency: Duration,
    /// Random extra delay on top of `latency`. Items may overtake each other when the
    /// jitter exceeds their spacing (datagram links only).
    pub jitter: Jitter,
    /// Random loss on the wire (datagram links only).
    pub loss: Loss,
    /// Probability that an item is delivered twice; the copy gets its own jitter
    /// (datagram links only).
    pub duplicate: f64,
    /// Explicit reordering: some items are held back for extra time (datagram links only).
    pub reorder: Option<Reorder>,
    /// Bandwidth limit with a bounded queue in front of it.
    pub rate: Option<RateLimit>,
    /// Reliable, ordered stream semantics (a TCP or QUIC stream, e.g. signaling): no loss,
    /// duplication or reordering, no queue drops, delivery strictly in send order (jitter
    /// then only causes head-of-line delay).
    pub reliable: bool,
}

/// Random extra delay added to a link's latency; never negative and always bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Jitter {
    /// No jitter.
    #[default]
    None,
    /// Uniform in `[0, max]`.
    Uniform {
        /// Largest extra delay.
        max: Duration,
    },
    /// Half-normal: `|N(0, std_dev)|`, cut off at `max` (heavier near zero, with a tail).
    Normal {
        /// Standard deviation of the underlying normal distribution.
        std_dev: Duration,
        /// Largest extra delay.
        max: Duration,
    },
}

/// Random loss model of a datagram link.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub enum Loss {
    /// Nothing is lost.
    #[default]
    None,
    /// Each item is lost independently with `probability`.
    Random {
        /// Probability in `[0, 1]`.
        probability: f64,
    },
    /// Bursty loss from a two-state Markov chain.
    GilbertElliott(GilbertElliott),
}

/// Gilbert–Elliott bursty loss: a good and a bad state with their own loss probability.
///
/// The chain moves once per sent item, before that item's loss is decided. The mean
/// time spent in the bad state is `1 / p_bad_to_good` items, which is what makes losses
/// come in bursts.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct GilbertElliott {
    /// Probability of moving from the good to the bad state, per item.
    pub p_good_to_bad: f64,
    /// Probability of moving from the bad to the good state, per item.
    pub p_bad_to_good: f64,
    /// Loss probability while good.
    pub loss_good: f64,
    /// Loss probability while bad.
    pub loss_bad: f64,
}

/// Explicit reordering: with `probability`, an item is delayed by an extra `delay`, so
/// items sent after it within that time overtake it.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Reorder {
    /// Probability in `[0, 1]` that an item is held back.
    pub probability: f64,
    /// Extra delay of a held-back item.
    pub delay: Duration,
}

/// A bottleneck: items are serialized at `bytes_per_second` behind a queue of at most
/// `queue_limit` bytes (including the item being transmitted).
///
/// An item that does not fit in the queue is dropped (counted as lost and as
/// `queue_dropped`), except on reliable links, whose queue is unbounded (a stream
/// transport pushes back instead of dropping). A rate of `0` is treated as 1 byte/s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimit {
    /// Link capacity.
    pub bytes_per_second: u64,
    /// Queue capacity in bytes.
    pub queue_limit: usize,
}

impl LinkConfig {
    /// No delay, no loss: items sent at `now` are receivable at `now`.
    pub fn perfect() -> Self {
        LinkConfig {
            latency: Duration::ZERO,
            jitter: Jitter::None,
            loss: Loss::None,
            duplicate: 0.0,
            reorder: None,
            rate: None,
            reliable: false,
        }
    }

    /// A wired LAN: 0.5 ms latency, up to 0.2 ms uniform jitter, no loss.
    pub fn lan() -> Self {
        LinkConfig {
            latency: Duration::from_micros(500),
            jitter: Jitter::Uniform {
                max: Duration::from_micros(200),
            },
            ..Self::perfect()
        }
    }

    /// Home Wi-Fi: 5 ms latency, half-normal jitter (σ 3 ms, max 40 ms), Gilbert–Elliott
    /// loss averaging about 1.2 % (bad periods of about 3 items losing 40 %), rare
    /// duplicates.
    pub fn wifi() -> Self {
        LinkConfig {
            latency: Duration::from_millis(5),
            jitter: Jitter::Normal {
                std_dev: Duration::from_millis(3),
                max: Duration::from_millis(40),
            },
            loss: Loss::GilbertElliott(GilbertElliott {
                p_good_to_bad: 0.01,
                p_bad_to_good: 0.35,
                loss_good: 0.001,
                loss_bad: 0.4,
            }),
            duplicate: 0.001,
            ..Self::perfect()
        }
    }

    /// A poor internet path: 40 ms latency, up to 20 ms uniform jitter, independent
    /// random loss with probability `p`.
    pub fn lossy(p: f64) -> Self {
        LinkConfig {
            latency: Duration::from_millis(40),
            jitter: Jitter::Uniform {
                max: Duration::from_millis(20),
            },
            loss: Loss::Random { probability: p },
            ..Self::perfect()
        }
    }

    /// A reliable, ordered stream (signaling over TCP or QUIC) with a fixed `latency`.
    pub fn reliable(latency: Duration) -> Self {
        LinkConfig {
            latency,
            reliable: true,
            ..Self::perfect()
        }
    }

    /// Sets [`latency`](LinkConfig::latency).
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Sets [`jitter`](LinkConfig::jitter).
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets [`loss`](LinkConfig::loss).
    pub fn with_loss(mut self, loss: Loss) -> Self {
        self.loss = loss;
        self
    }

    /// Sets [`duplicate`](LinkConfig::duplicate).
    pub fn with_duplicate(mut self, probability: f64) -> Self {
        self.duplicate = probability;
        self
    }

    /// Sets [`reorder`](LinkConfig::reorder).
    pub fn with_reorder(mut self, probability: f64, delay: Duration) -> Self {
        self.reorder = Some(Reorder { probability, delay });
        self
    }

    /// Sets [`rate`](LinkConfig::rate).
    pub fn with_rate(mut self, bytes_per_second: u64, queue_limit: usize) -> Self {
        self.rate = Some(RateLimit {
            bytes_per_second,
            queue_limit,
        });
        self
    }
}

impl GilbertElliott {
    /// The classic Gilbert model: nothing lost while good, everything while bad.
    pub fn new(p_good_to_bad: f64, p_bad_to_good: f64) -> Self {
        GilbertElliott {
            p_good_to_bad,
            p_bad_to_good,
            loss_good: 0.0,
            loss_bad: 1.0,
        }
    }

    /// Sets the loss probability of each state.
    pub fn with_loss(mut self, loss_good: f64, loss_bad: f64) -> Self {
        self.loss_good = loss_good;
        self.loss_bad = loss_bad;
        self
    }

    /// Long-run loss rate: the stationary share of the bad state weighs the two losses.
    pub fn mean_loss(&self) -> f64 {
        let total = self.p_good_to_bad + self.p_bad_to_good;
        if total <= 0.0 {
            return self.loss_good;
        }
        let bad = self.p_good_to_bad / total;
        bad * self.loss_bad + (1.0 - bad) * self.loss_good
    }
}

impl Reorder {
    /// Holds back an item with `probability` for an extra `delay`.
    pub fn new(probability: f64, delay: Duration) -> Self {
        Reorder { probability, delay }
    }
}

impl RateLimit {
    /// A bottleneck of `bytes_per_second` behind a queue of `queue_limit` bytes.
    pub fn new(bytes_per_second: u64, queue_limit: usize) -> Self {
        RateLimit {
            bytes_per_second,
            queue_limit,
        }
    }
}

impl Default for LinkConfig {
    /// [`LinkConfig::perfect`].
    fn default() -> Self {
        Self::perfect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gilbert_elliott_mean_loss() {
        let ge = GilbertElliott::new(0.1, 0.4);
        assert!((ge.mean_loss() - 0.2).abs() < 1e-12);
        let ge = GilbertElliott::new(0.0, 0.0).with_loss(0.3, 1.0);
        assert!((ge.mean_loss() - 0.3).abs() < 1e-12);
    }

    #[test]
    fn presets() {
        assert!(LinkConfig::reliable(Duration::from_millis(10)).reliable);
        assert!(!LinkConfig::wifi().reliable);
        assert_eq!(LinkConfig::default(), LinkConfig::perfect());
        assert_eq!(
            LinkConfig::lossy(0.25).loss,
            Loss::Random { probability: 0.25 }
        );
    }
}
