//! A one-way emulated link.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use crate::config::{Jitter, LinkConfig, Loss, RateLimit};
use crate::rng::Rng;

/// The size in bytes of an item, for the rate limiter.
///
/// Implemented for byte containers. For other payloads (e.g. a protocol message, which
/// this crate cannot know) pass a size function to [`Link::with_size_fn`].
pub trait PacketSize {
    /// Bytes this item occupies on the wire.
    fn packet_size(&self) -> usize;
}

/// A one-way, seeded, sans-IO emulated link carrying items of type `T`.
///
/// Feed it with [`send`](Link::send); take what has arrived with
/// [`poll_receive`](Link::poll_receive); ask [`poll_timeout`](Link::poll_timeout) when the
/// next item arrives. It owns no clock: every call takes `now`, and a `now` earlier
/// than a previous one is tolerated (treated as "no time passed" by the rate limiter).
/// Identical seeds, configurations and call sequences give identical results.
#[derive(Debug)]
pub struct Link<T> {
    config: LinkConfig,
    rng: Rng,
    size: fn(&T) -> usize,
    /// Gilbert–Elliott state: `true` while bad.
    ge_bad: bool,
    in_flight: BinaryHeap<Reverse<Scheduled<T>>>,
    /// Items in the rate limiter: when their transmission ends, and their size.
    serializer: VecDeque<(Instant, usize)>,
    serializer_bytes: usize,
    /// When the rate limiter finishes transmitting everything accepted so far.
    busy_until: Option<Instant>,
    /// Latest delivery time scheduled on a reliable link, to keep send order.
    last_scheduled: Option<Instant>,
    next_seq: u64,
    next_order: u64,
    highest_delivered_seq: Option<u64>,
    stats: LinkStats,
}

/// Counters of a [`Link`].
///
/// At any time `delivered + lost + queued == sent + duplicated`; once everything has
/// been received, `delivered + lost == sent + duplicated`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkStats {
    /// Items passed to [`Link::send`].
    pub sent: u64,
    /// Items returned by [`Link::poll_receive`] (duplicates included).
    pub delivered: u64,
    /// Items dropped: wire loss, full queue, or [`Link::drop_in_flight`].
    pub lost: u64,
    /// The part of `lost` dropped because the rate limiter's queue was full.
    pub queue_dropped: u64,
    /// Extra copies created by duplication.
    pub duplicated: u64,
    /// Items delivered after an item that was sent later than them.
    pub reordered: u64,
    /// Items (and copies) held by the link, not yet received.
    pub queued: u64,
}

#[derive(Debug)]
struct Scheduled<T> {
    at: Instant,
    /// Tie-breaker: items due at the same instant come out in scheduling order.
    order: u64,
    /// Send index, shared by an item and its duplicate, for the reordering count.
    seq: u64,
    item: T,
}

impl<T: PacketSize> Link<T> {
    /// A link with `config` whose randomness is drawn from `seed`.
    pub fn new(config: LinkConfig, seed: u64) -> Self {
        Self::with_size_fn(config, seed, T::packet_size)
    }
}

impl<T> Link<T> {
    /// A link for payloads that do not implement [`PacketSize`]; `size` gives each
    /// item's size in bytes for the rate limiter.
    pub fn with_size_fn(config: LinkConfig, seed: u64, size: fn(&T) -> usize) -> Self {
        Link {
            config,
            rng: Rng::new(seed),
            size,
            ge_bad: false,
            in_flight: BinaryHeap::new(),
            serializer: VecDeque::new(),
            serializer_bytes: 0,
            busy_until: None,
            last_scheduled: None,
            next_seq: 0,
            next_order: 0,
            highest_delivered_seq: None,
            stats: LinkStats::default(),
        }
    }

    /// A reliable, ordered link with a fixed `latency` and nothing random in it, as for a
    /// signaling stream. Its items count as zero bytes: use [`Link::with_size_fn`] with
    /// [`LinkConfig::reliable`] to rate-limit one.
    pub fn reliable(latency: Duration) -> Self {
        Self::with_size_fn(LinkConfig::reliable(latency), 0, |_| 0)
    }

    /// The next item due at or before `now`, in delivery order (earliest first; items
    /// due at the same instant in the order they were scheduled).
    #[must_use]
    pub fn poll_receive(&mut self, now: Instant) -> Option<T> {
        let Reverse(next) = self.in_flight.peek()?;
        if next.at > now {
            return None;
        }
        let Reverse(next) = self.in_flight.pop()?;
        self.stats.delivered += 1;
        match self.highest_delivered_seq {
            Some(highest) if next.seq < highest => self.stats.reordered += 1,
            Some(highest) if next.seq == highest => {}
            _ => self.highest_delivered_seq = Some(next.seq),
        }
        Some(next.item)
    }

    /// When the next item arrives, if any is in flight.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.in_flight.peek().map(|Reverse(next)| next.at)
    }

    /// The counters so far.
    pub fn stats(&self) -> LinkStats {
        LinkStats {
            queued: self.in_flight.len() as u64,
            ..self.stats
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// Changes the configuration for items sent from now on (items in flight keep their
    /// schedule), e.g. to make the network worse in the middle of a call.
    pub fn set_config(&mut self, config: LinkConfig) {
        self.config = config;
    }

    /// Drops everything in flight (counted as lost), as when the transport under a
    /// stream breaks; returns how many items were dropped.
    pub fn drop_in_flight(&mut self) -> usize {
        let dropped = self.in_flight.len();
        self.in_flight.clear();
        self.serializer.clear();
        self.serializer_bytes = 0;
        self.busy_until = None;
        self.last_scheduled = None;
        self.stats.lost += dropped as u64;
        dropped
    }

    /// Runs the item through the rate limiter: `Some(when it is on the wire)`, or
    /// `None` when the queue is full.
    fn enqueue(&mut self, size: usize, now: Instant) -> Option<Instant> {
        let Some(RateLimit {
            bytes_per_second,
            queue_limit,
        }) = self.config.rate
        else {
            return Some(now);
        };
        while let Some(&(end, bytes)) = self.serializer.front() {
            if end > now {
                break;
            }
            self.serializer.pop_front();
            self.serializer_bytes -= bytes;
        }
        if !self.config.reliable && self.serializer_bytes + size > queue_limit {
            return None;
        }
        let start = self.busy_until.map_or(now, |busy| busy.max(now));
        let end = start + transmission_time(size, bytes_per_second);
        self.busy_until = Some(end);
        self.serializer.push_back((end, size));
        self.serializer_bytes += size;
        Some(end)
    }

    fn lose(&mut self) -> bool {
        match self.config.loss {
            Loss::None => false,
            Loss::Random { probability } => self.rng.chance(probability),
            Loss::GilbertElliott(ge) => {
                let flip = if self.ge_bad {
                    ge.p_bad_to_good
                } else {
                    ge.p_good_to_bad
                };
                if self.rng.chance(flip) {
                    self.ge_bad = !self.ge_bad;
                }
                let p = if self.ge_bad {
                    ge.loss_bad
                } else {
                    ge.loss_good
                };
                self.rng.chance(p)
            }
        }
    }

    /// Latency plus jitter, plus the reorder delay when this item is held back.
    fn delay(&mut self) -> Duration {
        let jitter = match self.config.jitter {
            Jitter::None => Duration::ZERO,
            Jitter::Uniform { max } => {
                let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
                Duration::from_nanos(self.rng.below(nanos.saturating_add(1)))
            }
            Jitter::Normal { std_dev, max } => std_dev.mul_f64(self.rng.normal().abs()).min(max),
        };
        let held_back = match self.config.reorder {
            Some(reorder) if !self.config.reliable && self.rng.chance(reorder.probability) => {
                reorder.delay
            }
            _ => Duration::ZERO,
        };
        self.config.latency + jitter + held_back
    }

    fn schedule(&mut self, at: Instant, seq: u64, item: T) {
        let order = self.next_order;
        self.next_order += 1;
        self.in_flight.push(Reverse(Scheduled {
            at,
            order,
            seq,
            item,
        }));
    }
}

impl<T: Clone> Link<T> {
    /// Sends `item` at `now`. It may be queued, lost, duplicated, delayed or held back
    /// as the configuration says; receive it with [`poll_receive`](Link::poll_receive).
    pub fn send(&mut self, item: T, now: Instant) {
        self.stats.sent += 1;
        let seq = self.next_seq;
        self.next_seq += 1;
        let size = (self.size)(&item);

        let Some(on_wire) = self.enqueue(size, now) else {
            self.stats.lost += 1;
            self.stats.queue_dropped += 1;
            return;
        };

        if self.config.reliable {
            // A stream delivers in order: a late item holds back everything behind it.
            let at = on_wire + self.delay();
            let at = self.last_scheduled.map_or(at, |last| last.max(at));
            self.last_scheduled = Some(at);
            self.schedule(at, seq, item);
            return;
        }

        if self.lose() {
            self.stats.lost += 1;
            return;
        }
        if self.rng.chance(self.config.duplicate) {
            self.stats.duplicated += 1;
            let at = on_wire + self.delay();
            self.schedule(at, seq, item.clone());
        }
        let at = on_wire + self.delay();
        self.schedule(at, seq, item);
    }
}

impl<T> PartialEq for Scheduled<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<T> Eq for Scheduled<T> {}

impl<T> PartialOrd for Scheduled<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Scheduled<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

impl PacketSize for Vec<u8> {
    fn packet_size(&self) -> usize {
        self.len()
    }
}

impl PacketSize for Box<[u8]> {
    fn packet_size(&self) -> usize {
        self.len()
    }
}

impl PacketSize for String {
    fn packet_size(&self) -> usize {
        self.len()
    }
}

impl<const N: usize> PacketSize for [u8; N] {
    fn packet_size(&self) -> usize {
        N
    }
}

fn transmission_time(size: usize, bytes_per_second: u64) -> Duration {
    let nanos = size as u128 * 1_000_000_000 / u128::from(bytes_per_second.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{GilbertElliott, Loss};

    /// A numbered test packet of a given size.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Pkt {
        seq: u64,
        sent: Instant,
        size: usize,
    }

    impl PacketSize for Pkt {
        fn packet_size(&self) -> usize {
            self.size
        }
    }

    const MS: Duration = Duration::from_millis(1);

    /// Sends `n` packets every `gap`, then drains the link by jumping to each
    /// `poll_timeout`. Returns `(delivery time, packet)` in delivery order.
    fn run(link: &mut Link<Pkt>, n: u64, gap: Duration, size: usize) -> Vec<(Instant, Pkt)> {
        let base = Instant::now();
        let mut out = Vec::new();
        let mut now = base;
        for seq in 0..n {
            now = base + gap * seq as u32;
            drain(link, now, &mut out);
            link.send(
                Pkt {
                    seq,
                    sent: now,
                    size,
                },
                now,
            );
        }
        while let Some(t) = link.poll_timeout() {
            assert!(t >= now, "poll_timeout went back in time");
            now = t;
            drain(link, now, &mut out);
        }
        out
    }

    fn drain(link: &mut Link<Pkt>, now: Instant, out: &mut Vec<(Instant, Pkt)>) {
        while let Some(p) = link.poll_receive(now) {
            out.push((now, p));
        }
    }

    fn lost_seqs(n: u64, delivered: &[(Instant, Pkt)]) -> Vec<u64> {
        let mut got = vec![false; n as usize];
        for (_, p) in delivered {
            got[p.seq as usize] = true;
        }
        (0..n).filter(|s| !got[*s as usize]).collect()
    }

    /// Mean length of runs of consecutive lost sequence numbers.
    fn mean_burst(lost: &[u64]) -> f64 {
        if lost.is_empty() {
            return 0.0;
        }
        let bursts = 1 + lost.windows(2).filter(|w| w[1] != w[0] + 1).count();
        lost.len() as f64 / bursts as f64
    }

    fn seqs(delivered: &[(Instant, Pkt)]) -> Vec<u64> {
        delivered.iter().map(|(_, p)| p.seq).collect()
    }

    fn messy() -> LinkConfig {
        LinkConfig::wifi()
            .with_loss(Loss::Random { probability: 0.2 })
            .with_duplicate(0.1)
            .with_reorder(0.1, 30 * MS)
    }

    #[test]
    fn same_seed_same_output() {
        let a = run(&mut Link::new(messy(), 7), 500, MS, 100);
        let b = run(&mut Link::new(messy(), 7), 500, MS, 100);
        let c = run(&mut Link::new(messy(), 8), 500, MS, 100);
        // Instants come from different bases, so compare the sequence and offsets.
        let offsets = |v: &[(Instant, Pkt)]| -> Vec<(u64, Duration)> {
            v.iter().map(|(t, p)| (p.seq, *t - p.sent)).collect()
        };
        assert_eq!(offsets(&a), offsets(&b));
        assert_ne!(offsets(&a), offsets(&c));
    }

    #[test]
    fn random_loss_rate_is_near_config() {
        for seed in 0..4 {
            let mut link = Link::new(LinkConfig::lossy(0.1), seed);
            let delivered = run(&mut link, 20_000, MS, 100);
            let stats = link.stats();
            let rate = stats.lost as f64 / stats.sent as f64;
            assert!(
                (0.09..0.11).contains(&rate),
                "seed {seed}: loss rate {rate}"
            );
            assert_eq!(delivered.len() as u64 + stats.lost, stats.sent);
        }
    }

    #[test]
    fn gilbert_elliott_loss_is_bursty() {
        let ge = GilbertElliott::new(0.02, 0.25);
        let mean = ge.mean_loss();
        let n = 50_000;
        let mut bursty = Link::new(LinkConfig::perfect().with_loss(Loss::GilbertElliott(ge)), 3);
        let mut random = Link::new(
            LinkConfig::perfect().with_loss(Loss::Random { probability: mean }),
            3,
        );
        let ge_lost = lost_seqs(n, &run(&mut bursty, n, MS, 10));
        let rnd_lost = lost_seqs(n, &run(&mut random, n, MS, 10));

        // Same long-run loss rate...
        let ge_rate = ge_lost.len() as f64 / n as f64;
        let rnd_rate = rnd_lost.len() as f64 / n as f64;
        assert!(
            (ge_rate - mean).abs() < 0.015,
            "ge rate {ge_rate}, want {mean}"
        );
        assert!((rnd_rate - mean).abs() < 0.01, "random rate {rnd_rate}");
        // ...but in bursts: mean bad sojourn is 1 / 0.25 = 4 packets, versus
        // 1 / (1 - p) ≈ 1.08 for independent loss.
        let (ge_burst, rnd_burst) = (mean_burst(&ge_lost), mean_burst(&rnd_lost));
        assert!(ge_burst > 3.0, "ge mean burst {ge_burst}");
        assert!(rnd_burst < 1.2, "random mean burst {rnd_burst}");
    }

    #[test]
    fn reliable_links_preserve_order_and_lose_nothing() {
        let config = messy()
            .with_jitter(Jitter::Uniform { max: 50 * MS })
            .with_rate(10_000, 100);
        let config = LinkConfig {
            reliable: true,
            ..config
        };
        let mut link = Link::new(config, 11);
        let delivered = run(&mut link, 1_000, MS, 200);
        assert_eq!(seqs(&delivered), (0..1_000).collect::<Vec<_>>());
        let stats = link.stats();
        assert_eq!((stats.lost, stats.duplicated, stats.reordered), (0, 0, 0));
        // The queue limit does not apply to streams, but the rate does: 1000 * 200 B at
        // 10 kB/s takes 20 s.
        let (last_at, last) = delivered[delivered.len() - 1];
        assert!(last_at - last.sent >= Duration::from_secs(18));
    }

    #[test]
    fn reliable_constructor_is_plain_latency() {
        let mut link: Link<&str> = Link::reliable(20 * MS);
        let t0 = Instant::now();
        link.send("a", t0);
        link.send("b", t0 + MS);
        assert_eq!(link.poll_timeout(), Some(t0 + 20 * MS));
        assert_eq!(link.poll_receive(t0 + 20 * MS), Some("a"));
        assert_eq!(link.poll_receive(t0 + 20 * MS), None);
        assert_eq!(link.poll_receive(t0 + 21 * MS), Some("b"));
    }

    #[test]
    fn jitter_reorders_datagrams() {
        let config = LinkConfig::perfect()
            .with_latency(10 * MS)
            .with_jitter(Jitter::Uniform { max: 20 * MS });
        let mut link = Link::new(config, 5);
        let delivered = run(&mut link, 1_000, MS, 100);
        assert_eq!(delivered.len(), 1_000);
        assert!(link.stats().reordered > 100, "{:?}", link.stats());
    }

    #[test]
    fn explicit_reorder_holds_items_back() {
        let config = LinkConfig::perfect()
            .with_latency(10 * MS)
            .with_reorder(0.1, 50 * MS);
        let mut link = Link::new(config, 5);
        let delivered = run(&mut link, 1_000, MS, 100);
        let stats = link.stats();
        assert!((70..130).contains(&stats.reordered), "{stats:?}");
        for (at, p) in &delivered {
            let delay = *at - p.sent;
            assert!(delay == 10 * MS || delay == 60 * MS, "{delay:?}");
        }
    }

    #[test]
    fn duplication_makes_copies() {
        let mut link = Link::new(LinkConfig::lan().with_duplicate(0.25), 9);
        let delivered = run(&mut link, 4_000, MS, 100);
        let stats = link.stats();
        assert!((900..1_100).contains(&stats.duplicated), "{stats:?}");
        assert_eq!(delivered.len() as u64, stats.sent + stats.duplicated);
    }

    #[test]
    fn rate_limit_spreads_delivery_and_drops_when_full() {
        // 1000-byte items at 10 kB/s take 100 ms each; the queue holds 5 of them.
        let config = LinkConfig::perfect()
            .with_latency(10 * MS)
            .with_rate(10_000, 5_000);
        let mut link = Link::new(config, 1);
        let delivered = run(&mut link, 10, Duration::ZERO, 1_000);
        assert_eq!(seqs(&delivered), vec![0, 1, 2, 3, 4]);
        let t0 = delivered[0].1.sent;
        for (i, (at, _)) in delivered.iter().enumerate() {
            assert_eq!(*at - t0, 10 * MS + 100 * MS * (i as u32 + 1));
        }
        let stats = link.stats();
        assert_eq!((stats.lost, stats.queue_dropped), (5, 5));

        // Once the queue has drained, items are accepted again.
        let later = t0 + Duration::from_secs(1);
        link.send(
            Pkt {
                seq: 10,
                sent: later,
                size: 1_000,
            },
            later,
        );
        assert_eq!(link.poll_timeout(), Some(later + 110 * MS));
    }

    #[test]
    fn nothing_arrives_before_its_latency() {
        let mut link = Link::new(messy().with_latency(25 * MS), 2);
        for (at, p) in run(&mut link, 2_000, MS, 100) {
            assert!(at >= p.sent + 25 * MS);
        }
    }

    #[test]
    fn drop_in_flight_counts_as_loss() {
        let mut link: Link<u8> = Link::reliable(10 * MS);
        let t0 = Instant::now();
        link.send(1, t0);
        link.send(2, t0);
        assert_eq!(link.drop_in_flight(), 2);
        let stats = link.stats();
        assert_eq!((stats.sent, stats.lost, stats.queued), (2, 2, 0));
        assert_eq!(link.poll_timeout(), None);
    }

    #[test]
    fn set_config_applies_to_later_items() {
        let mut link: Link<u8> = Link::reliable(10 * MS);
        let t0 = Instant::now();
        link.send(1, t0);
        link.set_config(LinkConfig::reliable(MS));
        link.send(2, t0);
        // Still in order: the stream cannot deliver 2 before 1.
        assert_eq!(link.poll_receive(t0 + 10 * MS), Some(1));
        assert_eq!(link.poll_receive(t0 + 10 * MS), Some(2));
    }

    mod props {
        use proptest::prelude::*;

        use super::*;

        fn config() -> impl Strategy<Value = LinkConfig> {
            (
                0u32..50,
                0u32..30,
                0.0f64..0.5,
                prop_oneof![Just(None), (0.0f64..0.3, 0.05f64..1.0).prop_map(Some),],
                0.0f64..0.3,
                prop_oneof![Just(None), (0.0f64..0.3, 1u32..100).prop_map(Some)],
                prop_oneof![
                    Just(None),
                    (1_000u64..100_000, 0usize..5_000).prop_map(Some)
                ],
                any::<bool>(),
            )
                .prop_map(|(lat, jit, loss, ge, dup, reorder, rate, reliable)| {
                    let loss = match ge {
                        Some((gb, bg)) => Loss::GilbertElliott(GilbertElliott::new(gb, bg)),
                        None => Loss::Random { probability: loss },
                    };
                    let mut c = LinkConfig::perfect()
                        .with_latency(lat * MS)
                        .with_jitter(Jitter::Normal {
                            std_dev: jit * MS,
                            max: 3 * jit * MS,
                        })
                        .with_loss(loss)
                        .with_duplicate(dup);
                    if let Some((p, d)) = reorder {
                        c = c.with_reorder(p, d * MS);
                    }
                    if let Some((bps, limit)) = rate {
                        c = c.with_rate(bps, limit);
                    }
                    c.reliable = reliable;
                    c
                })
        }

        proptest! {
            #[test]
            fn conservation_and_earliest_delivery(
                config in config(),
                seed in any::<u64>(),
                sends in proptest::collection::vec((0u32..20, 0usize..1_500), 0..200),
            ) {
                let min_latency = config.latency;
                let reliable = config.reliable;
                let mut link = Link::new(config, seed);
                let base = Instant::now();
                let mut now = base;
                let mut out = Vec::new();
                for (i, (gap_ms, size)) in sends.iter().enumerate() {
                    now += *gap_ms * MS;
                    drain(&mut link, now, &mut out);
                    link.send(Pkt { seq: i as u64, sent: now, size: *size }, now);
                    let s = link.stats();
                    prop_assert_eq!(s.delivered + s.lost + s.queued, s.sent + s.duplicated);
                }
                while let Some(t) = link.poll_timeout() {
                    prop_assert!(t >= now);
                    now = t;
                    drain(&mut link, now, &mut out);
                }
                let s = link.stats();
                prop_assert_eq!(s.queued, 0);
                prop_assert_eq!(s.delivered + s.lost, s.sent + s.duplicated);
                prop_assert_eq!(s.delivered, out.len() as u64);
                for (at, p) in &out {
                    prop_assert!(*at >= p.sent + min_latency);
                }
                if reliable {
                    prop_assert_eq!(seqs(&out), (0..sends.len() as u64).collect::<Vec<_>>());
                }
            }
        }
    }
}
