//! Worked example of the generic harness: two sans-IO nodes play ping-pong over lossy
//! links in virtual time. A signaling world (one controller, many client sessions, a
//! pair of reliable links per client) follows the same shape.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ringwire_testkit::netsim::{Link, LinkConfig, LinkStats};
use ringwire_testkit::{Clock, Node, Seed, Sim, deliver_due, earliest, for_each_seed, is_due};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Msg {
    Ping(u32),
    Pong(u32),
}

/// Sends `count` pings one at a time, retransmitting every `rto` until the pong comes.
struct Pinger {
    count: u32,
    rto: Duration,
    /// The ping waiting for its pong, and when it was first sent.
    outstanding: Option<(u32, Instant)>,
    retransmit_at: Option<Instant>,
    transmits: VecDeque<Msg>,
    retransmits: u32,
    rtts: Vec<Duration>,
}

impl Pinger {
    fn new(count: u32, rto: Duration) -> Self {
        Pinger {
            count,
            rto,
            outstanding: None,
            retransmit_at: None,
            transmits: VecDeque::new(),
            retransmits: 0,
            rtts: Vec::new(),
        }
    }

    /// Command: start pinging.
    fn start(&mut self, now: Instant) {
        self.send_ping(0, now);
    }

    fn handle_message(&mut self, msg: Msg, now: Instant) {
        match (msg, self.outstanding) {
            (Msg::Pong(n), Some((waiting, first_sent))) if n == waiting => {
                self.rtts.push(now - first_sent);
                self.outstanding = None;
                self.retransmit_at = None;
                if n + 1 < self.count {
                    self.send_ping(n + 1, now);
                }
            }
            // Stale or duplicated pong: a late answer to a retransmitted ping.
            (msg, _) => tracing::debug!(?msg, "ignoring stale message"),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if let Some((n, _)) = self.outstanding
            && is_due(self.retransmit_at, now)
        {
            self.retransmits += 1;
            self.transmits.push_back(Msg::Ping(n));
            self.retransmit_at = Some(now + self.rto);
        }
    }

    fn poll_transmit(&mut self) -> Option<Msg> {
        self.transmits.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.retransmit_at
    }

    fn is_done(&self) -> bool {
        self.rtts.len() as u32 == self.count
    }

    fn send_ping(&mut self, n: u32, now: Instant) {
        self.outstanding = Some((n, now));
        self.transmits.push_back(Msg::Ping(n));
        self.retransmit_at = Some(now + self.rto);
    }
}

/// Answers every ping; a pong sent to it is a protocol violation it logs at ERROR.
#[derive(Default)]
struct Ponger {
    transmits: VecDeque<Msg>,
}

impl Ponger {
    fn handle_message(&mut self, msg: Msg) {
        match msg {
            Msg::Ping(n) => self.transmits.push_back(Msg::Pong(n)),
            Msg::Pong(n) => tracing::error!(n, "ponger got a pong"),
        }
    }

    fn poll_transmit(&mut self) -> Option<Msg> {
        self.transmits.pop_front()
    }
}

struct World {
    pinger: Pinger,
    ponger: Ponger,
    to_ponger: Link<Msg>,
    to_pinger: Link<Msg>,
}

impl World {
    fn new(config: LinkConfig, seed: Seed) -> Self {
        let link = |label| Link::with_size_fn(config.clone(), seed.derive(label).value(), |_| 64);
        World {
            pinger: Pinger::new(50, Duration::from_millis(250)),
            ponger: Ponger::default(),
            to_ponger: link("pinger->ponger"),
            to_pinger: link("ponger->pinger"),
        }
    }
}

impl Node for World {
    fn poll_timeout(&mut self) -> Option<Instant> {
        earliest([
            self.pinger.poll_timeout(),
            self.to_ponger.poll_timeout(),
            self.to_pinger.poll_timeout(),
        ])
    }

    fn handle_timeout(&mut self, now: Instant) {
        // Deliver what is due, run due timers, then drain every node into the links.
        let ponger = &mut self.ponger;
        deliver_due(&mut self.to_ponger, now, |msg| ponger.handle_message(msg));
        let pinger = &mut self.pinger;
        deliver_due(&mut self.to_pinger, now, |msg| {
            pinger.handle_message(msg, now)
        });
        if is_due(self.pinger.poll_timeout(), now) {
            self.pinger.handle_timeout(now);
        }
        while let Some(msg) = self.pinger.poll_transmit() {
            self.to_ponger.send(msg, now);
        }
        while let Some(msg) = self.ponger.poll_transmit() {
            self.to_pinger.send(msg, now);
        }
    }
}

/// What a run produced, to compare runs.
#[derive(Debug, PartialEq)]
struct Outcome {
    elapsed: Duration,
    steps: u64,
    retransmits: u32,
    rtts: Vec<Duration>,
    stats: (LinkStats, LinkStats),
}

fn play(config: LinkConfig, seed: Seed) -> Outcome {
    let clock = Clock::new();
    let mut sim = Sim::with_clock(clock, seed, World::new(config, seed));
    sim.act(|world, now| world.pinger.start(now));
    sim.step_until(100_000, |world| world.pinger.is_done());
    // Late duplicates may still be in flight; nothing re-arms after the last pong.
    sim.run_until_idle(10_000);
    let (elapsed, steps) = (sim.elapsed(), sim.steps());
    let world = sim.into_world();
    Outcome {
        elapsed,
        steps,
        retransmits: world.pinger.retransmits,
        rtts: world.pinger.rtts,
        stats: (world.to_ponger.stats(), world.to_pinger.stats()),
    }
}

#[test]
fn ping_pong_completes_over_lossy_links_for_every_seed() {
    for_each_seed(|seed| {
        let outcome = play(LinkConfig::lossy(0.3), seed);
        assert_eq!(outcome.rtts.len(), 50, "{seed}");
        // Every round trip takes at least twice the 40 ms latency; losses cost an RTO.
        assert!(
            outcome
                .rtts
                .iter()
                .all(|rtt| *rtt >= Duration::from_millis(80)),
            "{seed}"
        );
        assert!(
            outcome.retransmits > 0,
            "{seed}: 30 % loss but no retransmit"
        );
        for stats in [outcome.stats.0, outcome.stats.1] {
            assert!(stats.lost > 0, "{seed}: {stats:?}");
            assert_eq!(stats.queued, 0, "{seed}");
            assert_eq!(
                stats.delivered + stats.lost,
                stats.sent + stats.duplicated,
                "{seed}"
            );
        }
        // Virtual time: the run covers seconds of simulated time without sleeping.
        assert!(
            outcome.elapsed >= Duration::from_secs(4),
            "{seed}: {:?}",
            outcome.elapsed
        );
    });
}

#[test]
fn ping_pong_survives_duplication_and_reordering() {
    let config = LinkConfig::wifi()
        .with_duplicate(0.2)
        .with_reorder(0.2, Duration::from_millis(300));
    for_each_seed(|seed| {
        let outcome = play(config.clone(), seed);
        assert_eq!(outcome.rtts.len(), 50, "{seed}");
        assert!(
            outcome.stats.1.duplicated > 0,
            "{seed}: {:?}",
            outcome.stats.1
        );
    });
}

#[test]
fn same_seed_replays_exactly() {
    let seed = Seed::new(7);
    let first = play(LinkConfig::lossy(0.3), seed);
    assert_eq!(first, play(LinkConfig::lossy(0.3), seed));
    assert_ne!(first, play(LinkConfig::lossy(0.3), Seed::new(8)));
}

#[test]
fn an_expected_error_is_taken_explicitly() {
    let mut sim = Sim::new(
        Seed::new(1),
        World::new(LinkConfig::perfect(), Seed::new(1)),
    );
    sim.act(|world, now| world.to_ponger.send(Msg::Pong(9), now));
    sim.run_until_idle(10);
    let errors = sim.expect_errors(1);
    assert!(errors[0].contains("ponger got a pong n=9"), "{errors:?}");
}

#[test]
#[should_panic(expected = "unexpected ERROR events")]
fn an_unexpected_error_fails_the_test() {
    let mut sim = Sim::new(
        Seed::new(1),
        World::new(LinkConfig::perfect(), Seed::new(1)),
    );
    sim.act(|world, now| world.to_ponger.send(Msg::Pong(9), now));
    sim.run_until_idle(10);
    // Dropping the simulation checks for errors.
}
