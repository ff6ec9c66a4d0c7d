//! The stepping loop.

use std::time::{Duration, Instant};

use ringwire_netsim::Link;

use crate::clock::Clock;
use crate::logging::{self, ErrorGuard};
use crate::seed::{Seed, SeedGuard};

/// Anything that advances in virtual time: a sans-IO core, or a whole world of cores
/// and links that [`Sim`] drives.
///
/// A world's `poll_timeout` is the [`earliest`] of its nodes' timeouts and its links'
/// [`poll_timeout`](Link::poll_timeout)s; its `handle_timeout(now)` delivers the items
/// due on its links ([`deliver_due`]), calls `handle_timeout` on the nodes that are due
/// ([`is_due`]), and drains every node's outputs into the links (the drain rule), so that
/// nothing is left pending when it returns.
pub trait Node {
    /// When this node next needs [`handle_timeout`](Node::handle_timeout); `None` when
    /// it waits for nothing. `&mut self` because some cores compute it while draining
    /// (quinn's `Connection::poll_timeout`).
    fn poll_timeout(&mut self) -> Option<Instant>;

    /// Runs whatever is due at `now`. Calling it early must be harmless.
    fn handle_timeout(&mut self, now: Instant);
}

/// Drives a world in virtual time: each [`step`](Sim::step) jumps the clock to the
/// world's next timeout and runs it; nothing sleeps.
///
/// The `Sim` also carries the simulation's [`Seed`], which every panic it raises names
/// and which is printed if the test panics while the `Sim` is alive; and an
/// [`ErrorGuard`], so the test fails if an ERROR is logged on its thread and not taken
/// with [`expect_errors`](Sim::expect_errors) before the `Sim` is dropped.
#[derive(Debug)]
pub struct Sim<W> {
    world: W,
    clock: Clock,
    seed: Seed,
    steps: u64,
    step_budget: u64,
    _seed_guard: SeedGuard,
    errors: ErrorGuard,
}

/// Step budget of [`Sim::run_until`] and [`Sim::run_for`] unless changed with
/// [`Sim::with_step_budget`]: far more than any scenario needs, low enough to catch a
/// node that keeps asking for a timeout in the past.
pub const DEFAULT_STEP_BUDGET: u64 = 1_000_000;

impl<W: Node> Sim<W> {
    /// A simulation of `world` on a new [`Clock`] (use [`Sim::with_clock`] when the world
    /// needs the start time to be built).
    pub fn new(seed: Seed, world: W) -> Self {
        Self::with_clock(Clock::new(), seed, world)
    }

    /// A simulation of `world` starting at `clock`'s current time.
    ///
    /// Installs the test tracing subscriber ([`init_tracing`](crate::init_tracing)) and
    /// starts counting this thread's ERROR events afresh.
    pub fn with_clock(clock: Clock, seed: Seed, world: W) -> Self {
        Sim {
            world,
            clock,
            seed,
            steps: 0,
            step_budget: DEFAULT_STEP_BUDGET,
            _seed_guard: seed.guard(),
            errors: logging::deny_errors(),
        }
    }

    /// Sets the step budget of [`run_until`](Sim::run_until) and [`run_for`](Sim::run_for).
    pub fn with_step_budget(mut self, steps: u64) -> Self {
        self.step_budget = steps;
        self
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.clock.elapsed()
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The simulation's seed.
    pub fn seed(&self) -> Seed {
        self.seed
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The world, to inspect.
    pub fn world(&self) -> &W {
        &self.world
    }

    /// The world, to change without draining; prefer [`act`](Sim::act) for commands.
    pub fn world_mut(&mut self) -> &mut W {
        &mut self.world
    }

    /// Ends the simulation and returns the world.
    ///
    /// # Panics
    ///
    /// When an unexpected ERROR was logged (see [`Sim`]).
    pub fn into_world(self) -> W {
        let Sim { world, errors, .. } = self;
        drop(errors);
        world
    }

    /// Runs `command` on the world at the current time, then `handle_timeout(now)` so the
    /// world drains what the command produced (drain rule) before anything else happens.
    pub fn act<R>(&mut self, command: impl FnOnce(&mut W, Instant) -> R) -> R {
        let now = self.clock.now();
        let result = command(&mut self.world, now);
        self.world.handle_timeout(now);
        result
    }

    /// Jumps to the world's next timeout (or stays, when it is overdue) and handles it.
    /// Returns `false`, without moving time, when the world waits for nothing.
    pub fn step(&mut self) -> bool {
        match self.world.poll_timeout() {
            Some(at) => {
                self.step_at(at);
                true
            }
            None => false,
        }
    }

    /// Steps through every timeout up to `deadline`, then moves the clock to `deadline`.
    /// Returns the number of steps.
    ///
    /// # Panics
    ///
    /// When the step budget runs out first (a node keeps asking for the past).
    pub fn run_until(&mut self, deadline: Instant) -> u64 {
        let start = self.steps;
        while let Some(at) = self.world.poll_timeout() {
            if at > deadline {
                break;
            }
            if self.steps - start >= self.step_budget {
                self.out_of_budget(&format!("run_until(+{:?})", deadline - self.clock.base()));
            }
            self.step_at(at);
        }
        self.clock.advance_to(deadline);
        self.steps - start
    }

    /// [`run_until`](Sim::run_until) `now + duration`.
    ///
    /// # Panics
    ///
    /// As [`run_until`](Sim::run_until).
    pub fn run_for(&mut self, duration: Duration) -> u64 {
        self.run_until(self.clock.now() + duration)
    }

    /// Steps until the world waits for nothing; returns the number of steps.
    ///
    /// # Panics
    ///
    /// When the world is still busy after `max_steps` (the message has the seed).
    pub fn run_until_idle(&mut self, max_steps: u64) -> u64 {
        let start = self.steps;
        while let Some(at) = self.world.poll_timeout() {
            if self.steps - start >= max_steps {
                self.out_of_budget(&format!("run_until_idle({max_steps})"));
            }
            self.step_at(at);
        }
        self.steps - start
    }

    /// Steps until `done(world)` holds (checked before each step); returns the number of
    /// steps.
    ///
    /// # Panics
    ///
    /// When `done` still fails after `max_steps`, or the world goes idle first.
    pub fn step_until(&mut self, max_steps: u64, mut done: impl FnMut(&W) -> bool) -> u64 {
        let start = self.steps;
        while !done(&self.world) {
            if self.steps - start >= max_steps {
                self.out_of_budget(&format!("step_until({max_steps})"));
            }
            if !self.step() {
                panic!(
                    "step_until: world went idle at +{:?} before the condition held ({}; replay with {}={})",
                    self.clock.elapsed(),
                    self.seed,
                    crate::SEEDS_ENV,
                    self.seed.value(),
                );
            }
        }
        self.steps - start
    }

    /// Takes the ERROR events logged so far, asserting there are exactly `count` (see
    /// [`expect_errors`](crate::expect_errors)).
    ///
    /// # Panics
    ///
    /// When the number differs.
    #[track_caller]
    pub fn expect_errors(&self, count: usize) -> Vec<String> {
        logging::expect_errors(count)
    }

    fn step_at(&mut self, at: Instant) {
        self.clock.advance_to(at);
        let now = self.clock.now();
        self.steps += 1;
        tracing::trace!(step = self.steps, elapsed = ?self.clock.elapsed(), "sim step");
        self.world.handle_timeout(now);
    }

    fn out_of_budget(&mut self, what: &str) -> ! {
        let next = self
            .world
            .poll_timeout()
            .map(|at| format!("{:?}", at.saturating_duration_since(self.clock.base())));
        panic!(
            "{what}: step budget exhausted after {} steps at +{:?}, next timeout at +{} ({}; replay with {}={})",
            self.steps,
            self.clock.elapsed(),
            next.as_deref().unwrap_or("none"),
            self.seed,
            crate::SEEDS_ENV,
            self.seed.value(),
        );
    }
}

/// The earliest of some timeouts (`None` when all are `None`), e.g. of a world's nodes
/// and links.
pub fn earliest(timeouts: impl IntoIterator<Item = Option<Instant>>) -> Option<Instant> {
    timeouts.into_iter().flatten().min()
}

/// Whether a timeout is due at `now`.
pub fn is_due(timeout: Option<Instant>, now: Instant) -> bool {
    timeout.is_some_and(|at| at <= now)
}

/// Hands every item due on `link` at `now` to `deliver`, in delivery order; returns how
/// many there were.
pub fn deliver_due<T>(link: &mut Link<T>, now: Instant, mut deliver: impl FnMut(T)) -> usize {
    let mut count = 0;
    while let Some(item) = link.poll_receive(now) {
        deliver(item);
        count += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fires every `period` until `left` reaches zero.
    struct Ticker {
        next: Option<Instant>,
        period: Duration,
        left: u32,
        fired_at: Vec<Instant>,
    }

    impl Node for Ticker {
        fn poll_timeout(&mut self) -> Option<Instant> {
            self.next
        }

        fn handle_timeout(&mut self, now: Instant) {
            let Some(next) = self.next else { return };
            if now < next {
                return;
            }
            self.fired_at.push(now);
            self.left -= 1;
            self.next = (self.left > 0).then(|| now + self.period);
        }
    }

    fn ticker(clock: &Clock, left: u32) -> Ticker {
        Ticker {
            next: Some(clock.now() + Duration::from_secs(1)),
            period: Duration::from_secs(1),
            left,
            fired_at: Vec::new(),
        }
    }

    #[test]
    fn step_jumps_to_the_next_timeout() {
        let clock = Clock::new();
        let mut sim = Sim::with_clock(clock, Seed::new(1), ticker(&clock, 3));
        assert!(sim.step());
        assert_eq!(sim.elapsed(), Duration::from_secs(1));
        assert_eq!(sim.run_until_idle(10), 2);
        assert_eq!(sim.elapsed(), Duration::from_secs(3));
        assert!(!sim.step());
        assert_eq!(sim.elapsed(), Duration::from_secs(3));
        assert_eq!(sim.into_world().fired_at.len(), 3);
    }

    #[test]
    fn run_until_stops_at_the_deadline() {
        let clock = Clock::new();
        let mut sim = Sim::with_clock(clock, Seed::new(1), ticker(&clock, 10));
        let steps = sim.run_for(Duration::from_millis(4_500));
        assert_eq!(steps, 4);
        assert_eq!(sim.elapsed(), Duration::from_millis(4_500));
        assert_eq!(sim.step_until(100, |t| t.left == 0), 6);
    }

    #[test]
    #[should_panic(
        expected = "run_until_idle(5): step budget exhausted after 5 steps at +5s, next timeout at +6s (seed 99; replay with RINGWIRE_SEEDS=99)"
    )]
    fn budget_panic_names_the_seed() {
        let clock = Clock::new();
        let mut sim = Sim::with_clock(clock, Seed::new(99), ticker(&clock, 100));
        sim.run_until_idle(5);
    }

    #[test]
    #[should_panic(expected = "world went idle")]
    fn step_until_panics_when_idle() {
        let clock = Clock::new();
        let mut sim = Sim::with_clock(clock, Seed::new(1), ticker(&clock, 1));
        sim.step_until(100, |_| false);
    }

    #[test]
    fn helpers() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(earliest([None, Some(t1), Some(t0)]), Some(t0));
        assert_eq!(earliest([None, None]), None);
        assert!(is_due(Some(t0), t0));
        assert!(!is_due(Some(t1), t0));
        assert!(!is_due(None, t1));
    }
}
