//! A small seeded generator for ids and resume tokens.
//!
//! The cores need unpredictable-enough ids in production and reproducible ones in
//! tests, so the seed comes in through configuration (the driver seeds it from the OS).
//! SplitMix64 is enough for that: it is not a CSPRNG, so nothing secret is derived from
//! it alone — resume tokens mix it with the driver's seed, which production drivers take
//! from the OS random source.

/// SplitMix64 (Steele, Lea, Flood 2014), as used to seed xoshiro.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// 128 random bits as 32 lower-case hex digits.
    pub(crate) fn hex128(&mut self) -> String {
        format!("{:016x}{:016x}", self.next_u64(), self.next_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_for_a_seed() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        assert_eq!(a.hex128(), b.hex128());
        assert_ne!(a.hex128(), Rng::new(8).hex128());
        assert_eq!(a.hex128().len(), 32);
    }
}
