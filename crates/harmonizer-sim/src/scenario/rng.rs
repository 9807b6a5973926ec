//! The simulator's seeded generators and the draws made from them. Deterministic on every
//! platform; not cryptographic.
//!
//! - [`Rng`]: xoshiro256** (Blackman and Vigna, 2018), seeded by SplitMix64 as its authors
//!   recommend: the generated scenarios ([`crate::scenario`]).
//! - [`SplitMix64`]: the SplitMix64 generator itself (Steele, Lea and Flood, 2014): the scripted
//!   scenarios' world ([`crate::scripted`]), and [`Rng`]'s seeding.
//!
//! Both draw through [`Draws`], so a uniform, an exponential or a coin flip is computed the same
//! way whichever generator supplies the bits.

use harmonizer_core::flip::splitmix64;

/// Draws from 64 random bits at a time. Every draw consumes exactly one `next_u64`.
pub(crate) trait Draws {
    /// The next 64 random bits.
    fn next_u64(&mut self) -> u64;

    /// Uniform in `[0, 1)`, 53 bits.
    fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` (`n > 0`), by Lemire's multiply-high (bias below `n / 2^64`).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform integer in `lo..=hi` (`lo <= hi`, `hi - lo < u64::MAX`).
    fn range_u64(&mut self, (lo, hi): (u64, u64)) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// Uniform real in `[lo, hi)` (exactly `lo` when `lo == hi`).
    fn uniform(&mut self, (lo, hi): (f64, f64)) -> f64 {
        lo + (hi - lo) * self.f64()
    }

    /// Exponential with mean 1.
    fn exp1(&mut self) -> f64 {
        -(1.0 - self.f64()).ln()
    }

    /// Exponential with mean `mean_ns`, in whole nanoseconds (saturating far beyond any duration).
    fn exp_ns(&mut self, mean_ns: u64) -> u64 {
        (self.exp1() * mean_ns as f64).min(1e18) as u64
    }

    /// True with probability `p` (one draw, whatever `p`).
    fn bernoulli(&mut self, p: f64) -> bool {
        self.f64() < p
    }
}

/// The SplitMix64 generator: output `i` is [`splitmix64`] of `state + i × golden ratio`.
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator whose first output is `splitmix64(state)`.
    pub(crate) fn new(state: u64) -> SplitMix64 {
        SplitMix64(state)
    }

    /// One of several independent generators for `seed`, by `lane`: the scripted world's
    /// arrivals, bursts and so on each draw from their own lane.
    pub(crate) fn lane(seed: u64, lane: u64) -> SplitMix64 {
        SplitMix64(splitmix64(seed ^ lane.wrapping_mul(0xA24B_AED4_963E_E407)))
    }
}

impl Draws for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        let x = splitmix64(self.0);
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        x
    }
}

/// xoshiro256**.
#[derive(Clone, Debug)]
pub(crate) struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator whose state is the first four outputs of SplitMix64 seeded with `seed`.
    pub(crate) fn new(seed: u64) -> Rng {
        let mut seeder = SplitMix64::new(seed);
        Rng { s: std::array::from_fn(|_| seeder.next_u64()) }
    }

    /// An independent generator for one part of the scenario: `seed` mixed with a fixed `tag`.
    pub(crate) fn derived(seed: u64, tag: u64) -> Rng {
        Rng::new(splitmix64(seed ^ splitmix64(tag)))
    }
}

impl Draws for Rng {
    fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_in_range_and_reproducible() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut r = Rng::derived(1, 2);
        let (mut sum, n) = (0.0, 20_000);
        for _ in 0..n {
            let u = r.f64();
            assert!((0.0..1.0).contains(&u));
            assert!(r.below(3) < 3);
            assert!((5..=9).contains(&r.range_u64((5, 9))));
            sum += r.exp1();
        }
        // Mean of 20k exponentials: standard error 0.007.
        assert!((sum / f64::from(n) - 1.0).abs() < 0.05, "{}", sum / f64::from(n));
        assert_ne!(Rng::derived(1, 2).next_u64(), Rng::derived(1, 3).next_u64());
    }

    #[test]
    fn splitmix64_is_the_standard_generator_and_seeds_xoshiro() {
        // SplitMix64 seeded with 0: its first outputs (the reference implementation's).
        let mut g = SplitMix64::new(0);
        assert_eq!(g.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(g.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        // xoshiro256**'s state is SplitMix64's first four outputs for the same seed.
        let mut seeder = SplitMix64::new(42);
        let s: [u64; 4] = std::array::from_fn(|_| seeder.next_u64());
        assert_eq!(Rng::new(42).s, s);
        assert_eq!(s[0], splitmix64(42));
        // A lane is a generator started at a mixed seed.
        let mut lane = SplitMix64::lane(1, 0x4E4D);
        assert_eq!(
            lane.next_u64(),
            splitmix64(splitmix64(1 ^ 0x4E4D_u64.wrapping_mul(0xA24B_AED4_963E_E407)))
        );
    }
}
