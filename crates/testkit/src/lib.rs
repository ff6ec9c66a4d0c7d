//! Runs Ringwire's sans-IO cores in virtual time, for tests.
//!
//! A test builds a *world* — its cores plus the [`Link`](ringwire_netsim::Link)s between
//! them — implements [`Node`] for it, and hands it to a [`Sim`]. [`Sim::step`] jumps a
//! virtual [`Clock`] straight to the world's next timeout or delivery and runs it
//! (quinn's `Pair::step`, str0m's `progress`), so a thirty-second ring timeout takes
//! microseconds and no test sleeps.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use ringwire_testkit::netsim::{Link, LinkConfig};
//! use ringwire_testkit::{Node, Seed, Sim, deliver_due, earliest, is_due};
//!
//! /// Sends a beacon every 100 ms over a lossy link; counts what arrives.
//! struct World {
//!     next_beacon: Instant,
//!     link: Link<Vec<u8>>,
//!     received: usize,
//! }
//!
//! impl Node for World {
//!     fn poll_timeout(&mut self) -> Option<Instant> {
//!         earliest([Some(self.next_beacon), self.link.poll_timeout()])
//!     }
//!
//!     fn handle_timeout(&mut self, now: Instant) {
//!         self.received += deliver_due(&mut self.link, now, |_| {});
//!         if is_due(Some(self.next_beacon), now) {
//!             self.link.send(b"beacon".to_vec(), now);
//!             self.next_beacon = now + Duration::from_millis(100);
//!         }
//!     }
//! }
//!
//! let seed = Seed::new(42);
//! let clock = ringwire_testkit::Clock::new();
//! let world = World {
//!     next_beacon: clock.now(),
//!     link: Link::new(LinkConfig::lossy(0.2), seed.derive("beacon").value()),
//!     received: 0,
//! };
//! let mut sim = Sim::with_clock(clock, seed, world);
//! sim.run_for(Duration::from_secs(10));
//! let stats = sim.world().link.stats();
//! assert_eq!(sim.world().received as u64, stats.delivered);
//! assert!(stats.lost > 0, "{seed}: {stats:?}");
//! ```
//!
//! Rules:
//! - Time: the clock takes `Instant::now()` once, as its base; after that only
//!   [`Sim`] moves it, forward, to the next timeout. Cores get `now` passed in.
//! - Drain: a world's `handle_timeout` delivers due items, runs due nodes and drains
//!   every node's outputs into the links before returning; a test issues commands
//!   through [`Sim::act`], which drains afterwards.
//! - Seeds: every simulation has an explicit [`Seed`], named in the `Sim`'s panics and
//!   printed when the test fails; lossy scenarios loop over [`for_each_seed`]
//!   (`RINGWIRE_SEEDS=7,8` replays chosen seeds). Give each link its own
//!   [`Seed::derive`]d seed.
//! - Errors: a test fails if it logs at ERROR while a [`Sim`] (or a [`deny_errors`]
//!   guard) is alive, unless it takes the errors with [`expect_errors`].

mod clock;
mod logging;
mod seed;
pub mod signaling;
mod sim;

/// The network emulator the worlds are built from.
pub use ringwire_netsim as netsim;

pub use clock::Clock;
pub use logging::{
    ErrorGuard, assert_no_errors, deny_errors, error_count, expect_errors, init_tracing,
};
pub use seed::{DEFAULT_SEEDS, SEEDS_ENV, Seed, SeedGuard, for_each_seed, seeds_from_env};
pub use sim::{DEFAULT_STEP_BUDGET, Node, Sim, deliver_due, earliest, is_due};
