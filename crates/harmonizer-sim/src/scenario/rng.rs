//! A small seeded generator for the scenario: xoshiro256** (Blackman and Vigna, 2018), seeded by
//! SplitMix64 as its authors recommend. Deterministic on every platform; not cryptographic.

use harmonizer_core::flip::splitmix64;

/// xoshiro256** with the draws the scenario needs.
#[derive(Clone, Debug)]
pub(super) struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator whose state is the first four outputs of SplitMix64 seeded with `seed`.
    pub(super) fn new(seed: u64) -> Rng {
        let mut s = [0u64; 4];
        let mut x = seed;
        for v in &mut s {
            *v = splitmix64(x);
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        }
        Rng { s }
    }

    /// An independent generator for one part of the scenario: `seed` mixed with a fixed `tag`.
    pub(super) fn derived(seed: u64, tag: u64) -> Rng {
        Rng::new(splitmix64(seed ^ splitmix64(tag)))
    }

    /// The next 64 random bits.
    pub(super) fn next_u64(&mut self) -> u64 {
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

    /// Uniform in `[0, 1)`, 53 bits.
    pub(super) fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` (`n > 0`), by Lemire's multiply-high (bias below `n / 2^64`).
    pub(super) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform integer in `lo..=hi` (`lo <= hi`, `hi - lo < u64::MAX`).
    pub(super) fn range_u64(&mut self, (lo, hi): (u64, u64)) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// Uniform real in `[lo, hi)` (exactly `lo` when `lo == hi`).
    pub(super) fn uniform(&mut self, (lo, hi): (f64, f64)) -> f64 {
        lo + (hi - lo) * self.f64()
    }

    /// Exponential with mean 1.
    pub(super) fn exp1(&mut self) -> f64 {
        -(1.0 - self.f64()).ln()
    }

    /// Exponential with mean `mean_ns`, in whole nanoseconds (saturating far beyond any duration).
    pub(super) fn exp_ns(&mut self, mean_ns: u64) -> u64 {
        (self.exp1() * mean_ns as f64).min(1e18) as u64
    }

    /// True with probability `p`.
    pub(super) fn bernoulli(&mut self, p: f64) -> bool {
        self.f64() < p
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
}
