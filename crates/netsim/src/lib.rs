//! A seeded, sans-IO network emulator for Ringwire's simulations.
//!
//! A [`Link`] is one direction of a path between two sans-IO peers. It delays items by
//! a latency plus jitter, and, for datagram links, loses them (independently or in
//! Gilbert–Elliott bursts), duplicates and reorders them; a rate limit with a bounded
//! queue models a bottleneck. A [`reliable`](LinkConfig::reliable) link models a TCP or
//! QUIC stream: everything arrives, in order, after latency, jitter and rate.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use ringwire_netsim::{Link, LinkConfig};
//!
//! let mut link: Link<Vec<u8>> = Link::new(LinkConfig::lossy(0.1), 42);
//! let t0 = Instant::now();
//! link.send(b"hello".to_vec(), t0);
//!
//! // Nothing arrives before the latency; then jump to the next delivery time.
//! assert_eq!(link.poll_receive(t0), None);
//! if let Some(at) = link.poll_timeout() {
//!     assert!(at >= t0 + Duration::from_millis(40));
//!     assert_eq!(link.poll_receive(at).as_deref(), Some(&b"hello"[..]));
//! } else {
//!     assert_eq!(link.stats().lost, 1); // this seed lost it
//! }
//! ```
//!
//! Rules:
//! - Time: no clock inside. Every call takes `now: Instant`; the caller (a test kit's
//!   virtual clock) decides how time moves, using [`Link::poll_timeout`] to jump to the
//!   next delivery.
//! - Determinism: all randomness comes from the seed given to the link ([`Rng`], a
//!   hand-written xoshiro256++ whose stream is pinned), so a seed and the same sequence of
//!   calls replay exactly. Give each link of a simulation its own seed.
//! - Drain: after moving time forward, call [`Link::poll_receive`] until it returns
//!   `None`.

mod config;
mod link;
mod rng;

pub use config::{GilbertElliott, Jitter, LinkConfig, Loss, RateLimit, Reorder};
pub use link::{Link, LinkStats, PacketSize};
pub use rng::Rng;
