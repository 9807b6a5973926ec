//! Time, supplied by the application or defaulting to the monotonic clock (docs/design.md §6).
//!
//! The engine reads its clock once per `poll` batch (and at a switch, to time the stall), never
//! per event. Simulations, replays and tests pass a [`ManualClock`] so that one trace always
//! yields the same decisions.
//!
//! These atomics are plain `core` ones on purpose: a clock is not a lock-free protocol between
//! the producer and the consumer, and it must work outside loom models too.

use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// A source of nanoseconds that never goes backwards.
pub trait Clock: Send {
    /// Nanoseconds since an arbitrary, fixed origin.
    fn now_ns(&self) -> u64;
}

/// The default: `std::time::Instant`, counted from the clock's creation.
pub struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    /// A clock starting at 0 now.
    pub fn new() -> Self {
        MonotonicClock { origin: Instant::now() }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }
}

/// Virtual time, set by whoever holds a clone. Clones share the same time.
#[derive(Clone, Default)]
pub struct ManualClock {
    ns: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock at `ns`.
    pub fn at(ns: u64) -> Self {
        ManualClock { ns: Arc::new(AtomicU64::new(ns)) }
    }
    /// Sets the time (never backwards: a smaller value is ignored).
    pub fn set(&self, ns: u64) {
        self.ns.fetch_max(ns, Ordering::Relaxed);
    }
    /// Moves time forward by `ns`.
    pub fn advance(&self, ns: u64) {
        self.ns.fetch_add(ns, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> u64 {
        self.ns.load(Ordering::Relaxed)
    }
}
