//! Explicit seeds that are printed when a test fails.

use std::fmt;

use ringwire_netsim::Rng;

/// The environment variable [`seeds_from_env`] reads: seeds separated by commas or
/// whitespace, decimal or `0x` hex, e.g. `RINGWIRE_SEEDS=7,0x2a`.
pub const SEEDS_ENV: &str = "RINGWIRE_SEEDS";

/// Seeds a lossy scenario runs over when [`SEEDS_ENV`] is not set.
pub const DEFAULT_SEEDS: [u64; 8] = [
    1,
    2,
    3,
    42,
    0x5eed,
    0xdead_beef,
    0x0123_4567_89ab_cdef,
    u64::MAX,
];

/// The seed of a simulation; its `Display` (`seed 42`) goes into every failure message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seed(u64);

/// Prints its seed and how to replay it if the thread panics while it is alive.
///
/// Made by [`Seed::guard`]; keep it in a local (`let _seed = seed.guard();`).
#[derive(Debug)]
#[must_use = "the guard reports the seed only while it is alive"]
pub struct SeedGuard {
    seed: Seed,
}

impl Seed {
    /// A seed with this value.
    pub const fn new(value: u64) -> Self {
        Seed(value)
    }

    /// The raw value, e.g. for [`Link::new`](ringwire_netsim::Link::new).
    pub const fn value(self) -> u64 {
        self.0
    }

    /// An independent seed for the part of the simulation named `label` (a link, a
    /// node's id generator), so that adding a part does not change the others' streams.
    pub fn derive(self, label: &str) -> Seed {
        // FNV-1a over the label, mixed with the seed and scrambled by one xoshiro draw.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in label.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Seed(Rng::new(self.0 ^ hash).next_u64())
    }

    /// A generator seeded with this seed.
    pub fn rng(self) -> Rng {
        Rng::new(self.0)
    }

    /// A guard that prints this seed if the test panics before it is dropped.
    pub fn guard(self) -> SeedGuard {
        SeedGuard { seed: self }
    }
}

impl fmt::Display for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seed {}", self.0)
    }
}

impl From<u64> for Seed {
    fn from(value: u64) -> Self {
        Seed(value)
    }
}

impl From<Seed> for u64 {
    fn from(seed: Seed) -> Self {
        seed.0
    }
}

impl Drop for SeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Test harnesses capture stderr and show it with the failure.
            eprintln!(
                "test failed with {}; replay with {SEEDS_ENV}={}",
                self.seed, self.seed.0
            );
        }
    }
}

/// The seeds to run a scenario over: [`SEEDS_ENV`] when set, else [`DEFAULT_SEEDS`].
///
/// # Panics
///
/// When [`SEEDS_ENV`] is set but holds something that is not a list of integers.
pub fn seeds_from_env() -> Vec<Seed> {
    match std::env::var(SEEDS_ENV) {
        Ok(list) => parse_seeds(&list).unwrap_or_else(|bad| {
            panic!("{SEEDS_ENV}: {bad:?} is not a decimal or 0x-hex u64 (in {list:?})")
        }),
        Err(_) => DEFAULT_SEEDS.iter().copied().map(Seed).collect(),
    }
}

/// Runs `test` once per seed from [`seeds_from_env`], with a [`SeedGuard`] around each
/// run so that a failure names its seed.
pub fn for_each_seed(mut test: impl FnMut(Seed)) {
    for seed in seeds_from_env() {
        let _guard = seed.guard();
        test(seed);
    }
}

/// Parses a seed list; `Err` holds the first word that is not a seed.
fn parse_seeds(list: &str) -> Result<Vec<Seed>, String> {
    list.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|word| !word.is_empty())
        .map(|word| {
            let parsed = match word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")) {
                Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
                None => word.replace('_', "").parse(),
            };
            parsed.map(Seed).map_err(|_| word.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists() {
        assert_eq!(
            parse_seeds("1, 0x2a 3,,"),
            Ok(vec![Seed(1), Seed(42), Seed(3)])
        );
        assert_eq!(parse_seeds("1,x"), Err("x".to_owned()));
        assert_eq!(parse_seeds(""), Ok(vec![]));
    }

    #[test]
    fn derive_is_stable_and_label_dependent() {
        let seed = Seed::new(42);
        assert_eq!(seed.derive("a->b"), seed.derive("a->b"));
        assert_ne!(seed.derive("a->b"), seed.derive("b->a"));
        assert_ne!(seed.derive("a->b"), Seed::new(43).derive("a->b"));
    }

    #[test]
    fn display_names_the_seed() {
        assert_eq!(Seed::new(7).to_string(), "seed 7");
    }
}
