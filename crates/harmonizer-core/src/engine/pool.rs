//! One staging budget shared by many engines in a process (docs/design.md §5, "Staging that
//! costs less"; docs/staging.md).
//!
//! A gateway that hosts hundreds of recipients rarely has more than a few of them about to
//! switch at once. Per-engine budgets must each be sized for the worst case; a
//! [`StagingPool`] lets the engines that expect a switch use the bytes the others do not need.
//!
//! # What is accounted
//!
//! A grant is what an engine prices a staged window at (records × the mean frame it delivers,
//! as the per-engine budget does, docs/engine.md "Staging and the policy"). The pool hands out
//! grants and never more than its capacity in total; the engine stages a window only while it
//! holds its grant and gives it back when the window shrinks or the candidate is released
//! (and all of it when the engine is dropped). Rings stay allocated per engine at construction
//! (docs/design.md §2, guarantee 4): the pool bounds what the windows hold and how many
//! upstream subscriptions staging opens, not the rings' address space.
//!
//! # Who gets the bytes: expected benefit
//!
//! Every grant carries a **benefit**: the policy's probability that the recipient switches to
//! the candidate times what a cold switch costs that engine (`EngineConfig::cold_switch_cost_ns`).
//! The rules (docs/staging.md has the reasons):
//! 1. **Never exceeded.** A grant is taken by one compare-exchange on `used` only if it fits.
//! 2. **A refused request bids** when only room is missing (not when the request could never
//!    fit: above the capacity or the engine's cap). It posts its benefit to `pressure` (the
//!    highest wins) with an expiry of `bid_ttl_ns`; the bidder renews it at every poll while it
//!    stays refused and withdraws it once granted or no longer interested.
//! 3. **Lower benefit yields.** An engine whose smallest grant's benefit is below
//!    `pressure / YIELD_MARGIN` gives that grant back at its next poll (not the target of a
//!    switch waiting for its cut-over, and not while a hole waits on the staged streams or is
//!    recovered), and no request whose benefit is below that takes bytes while the bid
//!    stands: freed bytes wait for the bidder. The margin (2×) keeps near-equal bids from
//!    taking bytes from each other back and forth.
//! 4. **One engine's share is capped** at `per_engine_max_bytes` (default: the whole pool).
//! 5. Otherwise first come, first served.
//!
//! # Orderings
//!
//! The pool protects no memory: each engine's rings are its own, allocated at construction,
//! and a grant is only a number the engine respects. Every word is therefore `Relaxed`.
//! - `used`: every change is a read-modify-write of the one word (a compare-exchange that adds
//!   only if the sum stays within `capacity`, a `fetch_sub` that gives back). Read-modify-writes
//!   of one location are totally ordered and each reads the latest value in that order, so no
//!   interleaving can lift the sum above `capacity` whatever the ordering argument.
//! - `pressure`: a hint. Posting (a compare-exchange loop that keeps the higher benefit),
//!   withdrawing and clearing an expired bid are compare-exchanges of one word; a stale read
//!   only makes an engine yield a poll late or early, never exceed.
//! - Statistics words are counters read for reports.
//!
//! loom model: `tests/loom_pool.rs` (concurrent grants and give-backs never exceed the capacity
//! and leave `used` equal to what is held; a bid is withdrawn only by its bidder).

use crate::sync::{AtomicU64, Ordering};

/// How much more a refused bid must be worth than a grant for the grant to be given back
/// (rule 3).
pub const YIELD_MARGIN: f32 = 2.0;

/// The largest pool: 2^50 bytes (1 PiB). Anything larger is a configuration mistake.
pub const MAX_POOL_BYTES: u64 = 1 << 50;

/// The longest a bid may stand unrenewed: one hour (expiries are kept in ms modulo 2^32, so a
/// bid must be judged well within 24 days of its expiry).
pub const MAX_BID_TTL_NS: u64 = 3_600_000_000_000;

/// Why [`StagingPool::try_grant`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not enough bytes free now: a request worth bidding for.
    NoRoom,
    /// The request can never be granted: above the pool's capacity or the engine's cap with
    /// what it holds. Bidding for it would only keep others out.
    NeverFits,
    /// A standing bid is worth more than [`YIELD_MARGIN`] times this request.
    Outbid,
}

/// How to build a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Bytes of staged windows all member engines may hold together.
    pub capacity_bytes: u64,
    /// The most one engine may hold (default: `capacity_bytes`).
    pub per_engine_max_bytes: u64,
    /// How long a refused bid stands without being renewed, in the engines' clock ns
    /// (default 100 ms; at most [`MAX_BID_TTL_NS`], an hour). Engines sharing a pool must share a clock timebase (the default
    /// monotonic clock does; a simulation sets every manual clock alike).
    pub bid_ttl_ns: u64,
}

impl PoolConfig {
    /// A pool of `capacity_bytes`, no per-engine cap, bids standing 100 ms.
    pub fn new(capacity_bytes: u64) -> Self {
        PoolConfig { capacity_bytes, per_engine_max_bytes: capacity_bytes, bid_ttl_ns: 100_000_000 }
    }
}

/// Why a pool could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolError {
    /// `capacity_bytes` is 0 or above [`MAX_POOL_BYTES`].
    Capacity(u64),
    /// `per_engine_max_bytes` is 0.
    PerEngine(u64),
    /// `bid_ttl_ns` is 0 or above [`MAX_BID_TTL_NS`].
    BidTtl(u64),
}

impl core::fmt::Display for PoolError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PoolError::Capacity(c) => write!(f, "pool capacity {c} bytes: must be 1 ..= {MAX_POOL_BYTES}"),
            PoolError::PerEngine(c) => write!(f, "per-engine maximum {c} bytes: must be at least 1"),
            PoolError::BidTtl(t) => {
                write!(f, "bid lifetime {t} ns: must be 1 ..= {MAX_BID_TTL_NS} (one hour)")
            }
        }
    }
}

impl std::error::Error for PoolError {}

/// A bid word: the benefit's `f32` bits in the high half (non-negative floats order as their
/// bits do, so comparing words compares benefits first), the expiry in the low half (ms of the
/// engines' clock, mod 2^32). 0: no bid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Bid(u64);

impl Bid {
    fn new(benefit: f32, expires_ns: u64) -> Bid {
        // A benefit of 0 or less (or NaN) never bids: 0 is "no bid".
        let bits = if benefit > 0.0 { benefit.to_bits() } else { 0 };
        Bid(((bits as u64) << 32) | (expires_ns / 1_000_000) as u32 as u64)
    }
    fn benefit(self) -> f32 {
        f32::from_bits((self.0 >> 32) as u32)
    }
    /// Still standing at `now_ns`: its expiry is at most `ttl_ms` ahead (wrapping ms
    /// arithmetic; an expired word never comes back to life when the ms count wraps, since
    /// "ahead by at most the lifetime" is a window of at most an hour in 49 days).
    fn live(self, now_ns: u64, ttl_ms: u32) -> bool {
        let now_ms = (now_ns / 1_000_000) as u32;
        self.0 != 0 && (self.0 as u32).wrapping_sub(now_ms) <= ttl_ms
    }
}

/// Counters of a pool, for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// `PoolConfig::capacity_bytes`.
    pub capacity_bytes: u64,
    /// Bytes granted now.
    pub used_bytes: u64,
    /// Largest `used_bytes` seen.
    pub peak_used_bytes: u64,
    /// Grants made.
    pub grants: u64,
    /// Requests refused (no room, over the per-engine cap, or a higher bid waiting).
    pub refusals: u64,
    /// Grants given back to a higher bid (rule 3).
    pub yields: u64,
}

/// A staging budget shared by engines (module docs). Build it with [`StagingPool::new`], put
/// the `Arc` into each `EngineConfig::staging_pool`.
#[derive(Debug)]
pub struct StagingPool {
    cfg: PoolConfig,
    used: AtomicU64,
    pressure: AtomicU64,
    peak: AtomicU64,
    grants: AtomicU64,
    refusals: AtomicU64,
    yields: AtomicU64,
}

impl StagingPool {
    /// A pool as `cfg` says, or why not.
    pub fn new(cfg: PoolConfig) -> Result<StagingPool, PoolError> {
        if cfg.capacity_bytes == 0 || cfg.capacity_bytes > MAX_POOL_BYTES {
            return Err(PoolError::Capacity(cfg.capacity_bytes));
        }
        if cfg.per_engine_max_bytes == 0 {
            return Err(PoolError::PerEngine(cfg.per_engine_max_bytes));
        }
        if cfg.bid_ttl_ns == 0 || cfg.bid_ttl_ns > MAX_BID_TTL_NS {
            return Err(PoolError::BidTtl(cfg.bid_ttl_ns));
        }
        Ok(StagingPool {
            cfg,
            used: AtomicU64::new(0),
            pressure: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            grants: AtomicU64::new(0),
            refusals: AtomicU64::new(0),
            yields: AtomicU64::new(0),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.cfg
    }

    /// Bytes granted now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// The counters.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            capacity_bytes: self.cfg.capacity_bytes,
            used_bytes: self.used.load(Ordering::Relaxed),
            peak_used_bytes: self.peak.load(Ordering::Relaxed),
            grants: self.grants.load(Ordering::Relaxed),
            refusals: self.refusals.load(Ordering::Relaxed),
            yields: self.yields.load(Ordering::Relaxed),
        }
    }

    /// The bid lifetime in ms, rounded up.
    fn ttl_ms(&self) -> u32 {
        self.cfg.bid_ttl_ns.div_ceil(1_000_000) as u32
    }

    /// The benefit of the standing bid at `now_ns`, if one stands. An expired word is cleared.
    pub fn pressure(&self, now_ns: u64) -> Option<f32> {
        let b = Bid(self.pressure.load(Ordering::Relaxed));
        if b.live(now_ns, self.ttl_ms()) {
            return Some(b.benefit());
        }
        if b.0 != 0 {
            let _ = self.pressure.compare_exchange(b.0, 0, Ordering::Relaxed, Ordering::Relaxed);
        }
        None
    }

    /// Takes `bytes` more for an engine that holds `held` now, for a window worth `benefit`;
    /// refused (and nothing taken) when they do not fit now ([`Refusal::NoRoom`]), could never
    /// fit ([`Refusal::NeverFits`]: more than the capacity, or the engine's cap with what it
    /// holds), or a standing bid is worth more than [`YIELD_MARGIN`] times `benefit`
    /// ([`Refusal::Outbid`], rule 3). A refused request does not bid by itself: see
    /// [`bid`](Self::bid).
    pub fn try_grant(&self, bytes: u64, held: u64, benefit: f32, now_ns: u64) -> Result<(), Refusal> {
        if bytes == 0 {
            return Ok(());
        }
        let refuse = |r| {
            self.refusals.fetch_add(1, Ordering::Relaxed);
            Err(r)
        };
        if held.saturating_add(bytes) > self.cfg.per_engine_max_bytes || bytes > self.cfg.capacity_bytes {
            return refuse(Refusal::NeverFits);
        }
        if self.outbid(benefit, now_ns) {
            return refuse(Refusal::Outbid);
        }
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let Some(next) = used.checked_add(bytes).filter(|&n| n <= self.cfg.capacity_bytes) else {
                return refuse(Refusal::NoRoom);
            };
            // Relaxed: module docs, `# Orderings` (one word; the RMW order alone keeps the sum
            // within the capacity).
            match self.used.compare_exchange_weak(used, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => {
                    self.grants.fetch_add(1, Ordering::Relaxed);
                    self.peak.fetch_max(next, Ordering::Relaxed);
                    return Ok(());
                }
                Err(now) => used = now,
            }
        }
    }

    /// Gives back `bytes` of what an engine holds (it must hold them).
    pub fn give_back(&self, bytes: u64) {
        if bytes != 0 {
            let before = self.used.fetch_sub(bytes, Ordering::Relaxed);
            debug_assert!(before >= bytes, "gave back {bytes} of {before}");
        }
    }

    /// Gives back `bytes` to a higher bid (rule 3): as [`give_back`](Self::give_back), counted.
    pub fn yield_to_bid(&self, bytes: u64) {
        self.give_back(bytes);
        self.yields.fetch_add(1, Ordering::Relaxed);
    }

    /// A standing bid is worth more than [`YIELD_MARGIN`] times `benefit`.
    pub fn outbid(&self, benefit: f32, now_ns: u64) -> bool {
        self.pressure(now_ns).is_some_and(|p| p > benefit * YIELD_MARGIN)
    }

    /// Posts a refused request's bid of `benefit`, standing until `now_ns + bid_ttl_ns`.
    /// Returns the word to withdraw it with ([`withdraw`](Self::withdraw)), or 0 when a bid at
    /// least as high stands (then nothing was posted and there is nothing to withdraw). An
    /// expired bid is replaced. An engine withdraws its previous word before it bids again, so
    /// it never leaves a word of its own behind.
    pub fn bid(&self, benefit: f32, now_ns: u64) -> u64 {
        let mine = Bid::new(benefit, now_ns.saturating_add(self.cfg.bid_ttl_ns));
        if mine.0 == 0 {
            return 0;
        }
        let ttl = self.ttl_ms();
        let mut cur = self.pressure.load(Ordering::Relaxed);
        loop {
            let c = Bid(cur);
            if c.live(now_ns, ttl) && c.0 >= mine.0 {
                return 0;
            }
            match self.pressure.compare_exchange_weak(cur, mine.0, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return mine.0,
                Err(now) => cur = now,
            }
        }
    }

    /// Withdraws the bid `word` (from [`bid`](Self::bid)) if it still stands as posted;
    /// anyone else's bid stays.
    pub fn withdraw(&self, word: u64) {
        if word != 0 {
            let _ = self.pressure.compare_exchange(word, 0, Ordering::Relaxed, Ordering::Relaxed);
        }
    }
}

/// Spreading staging starts across a fleet (docs/staging.md): a candidate the policy asks for
/// starts staging after a delay fixed per recipient and stream, uniform over the fleet, within
/// `min(max_ns, fraction × expected time to the switch)`. Off when `max_ns` is 0 (the
/// default: an engine alone has nothing to spread against).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    /// The longest delay, ns; 0: no spreading.
    pub max_ns: u64,
    /// Share of the expected time to the switch that spreading may use, `0.0 ..= 1.0`
    /// (default 0.5: the last starts leave half the warning for the subscription and the
    /// window to fill).
    pub fraction: f32,
}

impl Default for Spread {
    fn default() -> Self {
        Spread { max_ns: 0, fraction: 0.5 }
    }
}

impl Spread {
    /// The delay for `recipient_id`'s start of `stream`, given the switch's probability and
    /// expected time (`eta_ns`, 0 unknown: then the bound is `max_ns × (1 − probability)`, so
    /// a likely switch starts sooner). The place in the spread is
    /// `splitmix64(recipient_id ^ stream · φ) / 2^64`, the cohort rule's hash: deterministic
    /// per recipient, uniform over a fleet, and different per stream.
    pub fn delay_ns(&self, recipient_id: u64, stream: u32, probability: f32, eta_ns: u64) -> u64 {
        if self.max_ns == 0 {
            return 0;
        }
        let fraction = if self.fraction.is_nan() { 0.0 } else { self.fraction.clamp(0.0, 1.0) as f64 };
        let bound = if eta_ns > 0 {
            (self.max_ns as f64).min(fraction * eta_ns as f64)
        } else {
            self.max_ns as f64 * (1.0 - probability.clamp(0.0, 1.0) as f64)
        };
        let h = crate::flip::splitmix64(recipient_id ^ (stream as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let u = (h >> 11) as f64 / (1u64 << 53) as f64;
        (u * bound) as u64
    }
}

/// An engine's staging demand, for a controller or a load balancer
/// (`Engine::staging_demand`; C: `hz_engine_staging_demand`). Updated at every plan.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StagingDemand {
    /// Bytes the policy's plan asks for (windows × the mean frame), deferred starts included.
    pub wanted_bytes: u64,
    /// Bytes of the windows staged now, as priced against the engine's own budget (a gap's
    /// fill stream included).
    pub granted_bytes: u64,
    /// Bytes this engine holds of the shared pool (0 without one).
    pub pool_bytes: u64,
    /// Candidates the plan asks for.
    pub wanted_streams: u32,
    /// Candidates staged now (a stream staged to fill a gap included).
    pub staged_streams: u32,
    /// Candidates waiting for their spread start ([`Spread`]).
    pub deferred_streams: u32,
    /// Candidates refused by the budget or the pool at the last plan, or whose window was given
    /// back to a higher bid.
    pub refused_streams: u32,
    /// The largest benefit asked for: probability × `cold_switch_cost_ns` (ns of cold stall
    /// the staging would save, in expectation).
    pub urgency: f32,
    /// Clock ns of the earliest deferred start, 0 if none.
    pub next_start_ns: u64,
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn pool(cap: u64) -> StagingPool {
        StagingPool::new(PoolConfig::new(cap)).unwrap()
    }

    #[test]
    fn grants_never_exceed_the_capacity() {
        let p = pool(100);
        assert_eq!(p.try_grant(60, 0, 1.0, 0), Ok(()));
        assert_eq!(p.try_grant(41, 0, 1.0, 0), Err(Refusal::NoRoom));
        assert_eq!(p.try_grant(40, 0, 1.0, 0), Ok(()));
        assert_eq!(p.used(), 100);
        p.give_back(60);
        assert_eq!(p.try_grant(60, 40, 1.0, 0), Ok(()));
        assert_eq!(p.try_grant(1, 0, 1.0, 0), Err(Refusal::NoRoom));
        let s = p.stats();
        assert_eq!((s.used_bytes, s.peak_used_bytes, s.grants, s.refusals), (100, 100, 3, 2));
    }

    #[test]
    fn the_per_engine_cap_holds() {
        let p = StagingPool::new(PoolConfig { per_engine_max_bytes: 50, ..PoolConfig::new(100) }).unwrap();
        assert_eq!(p.try_grant(50, 0, 1.0, 0), Ok(()));
        assert_eq!(p.try_grant(1, 50, 1.0, 0), Err(Refusal::NeverFits));
        assert_eq!(p.try_grant(50, 0, 1.0, 0), Ok(()), "another engine");
        assert_eq!(p.try_grant(101, 0, 1.0, 0), Err(Refusal::NeverFits), "above the capacity");
    }

    #[test]
    fn a_higher_bid_keeps_lower_requests_out_until_it_expires_or_is_withdrawn() {
        let p = pool(100);
        let w = p.bid(10.0, 0);
        assert_eq!(p.pressure(0), Some(10.0));
        assert_eq!(p.try_grant(10, 0, 4.9, 1_000_000), Err(Refusal::Outbid), "below 10 / 2");
        assert_eq!(p.try_grant(10, 0, 5.0, 1_000_000), Ok(()), "within the margin");
        // A lower bid does not replace it (and posts nothing to withdraw).
        assert_eq!(p.bid(3.0, 0), 0);
        assert_eq!(p.pressure(0), Some(10.0));
        // Expired after 100 ms, and cleared.
        assert_eq!(p.pressure(101_000_000), None);
        assert_eq!(p.try_grant(10, 0, 1.0, 101_000_000), Ok(()));
        // An expired word is cleared when read, so it cannot look live again when the ms count
        // wraps (2^32 ms later its expiry would read as 50 ms ahead).
        assert_ne!(p.bid(10.0, 200_000_000), 0);
        assert_eq!(p.pressure(400_000_000), None);
        assert_eq!(p.pressure((1u64 << 32) * 1_000_000 + 250_000_000), None);
        // Withdrawn by its bidder only.
        let w2 = p.bid(10.0, 200_000_000);
        p.withdraw(w);
        assert_eq!(p.pressure(200_000_000), Some(10.0), "an old word withdraws nothing");
        p.withdraw(w2);
        assert_eq!(p.pressure(200_000_000), None);
    }

    #[test]
    fn spread_delays_are_bounded_deterministic_and_spread() {
        let s = Spread { max_ns: 1_000_000_000, fraction: 0.5 };
        assert_eq!(Spread::default().delay_ns(7, 1, 0.5, 0), 0, "off by default");
        // Bound: min(1 s, 0.5 × 4 s) = 1 s; min(1 s, 0.5 × 1 s) = 0.5 s; unknown eta: 1 s × (1 - p).
        let mut hist = [0u32; 10];
        for r in 0..10_000u64 {
            let d = s.delay_ns(r, 1, 0.9, 4_000_000_000);
            assert!(d < 1_000_000_000);
            assert_eq!(d, s.delay_ns(r, 1, 0.9, 4_000_000_000), "deterministic");
            assert!(s.delay_ns(r, 1, 0.9, 1_000_000_000) < 500_000_000);
            assert!(s.delay_ns(r, 1, 0.75, 0) < 250_000_000);
            assert_eq!(s.delay_ns(r, 1, 1.0, 0), 0);
            hist[(d / 100_000_000) as usize] += 1;
        }
        // Uniform: each tenth of the bound gets 1,000 ± 15%.
        assert!(hist.iter().all(|&n| (850..1150).contains(&n)), "{hist:?}");
        assert_ne!(s.delay_ns(5, 1, 0.9, 4_000_000_000), s.delay_ns(5, 2, 0.9, 4_000_000_000));
    }

    #[test]
    fn bad_configurations_are_refused() {
        assert_eq!(StagingPool::new(PoolConfig::new(0)).unwrap_err(), PoolError::Capacity(0));
        assert!(StagingPool::new(PoolConfig::new(MAX_POOL_BYTES + 1)).is_err());
        assert!(StagingPool::new(PoolConfig { per_engine_max_bytes: 0, ..PoolConfig::new(1) }).is_err());
        assert_eq!(
            StagingPool::new(PoolConfig { bid_ttl_ns: 0, ..PoolConfig::new(1) }).unwrap_err(),
            PoolError::BidTtl(0)
        );
        assert!(
            StagingPool::new(PoolConfig { bid_ttl_ns: MAX_BID_TTL_NS + 1, ..PoolConfig::new(1) }).is_err()
        );
        assert!(StagingPool::new(PoolConfig { bid_ttl_ns: MAX_BID_TTL_NS, ..PoolConfig::new(1) }).is_ok());
        assert_eq!(Bid::new(0.0, 5).0, 0);
        assert_eq!(Bid::new(f32::NAN, 5).0, 0);
    }
}
