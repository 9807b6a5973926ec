//! The one place lock-free code gets its synchronisation primitives from.
//!
//! Under `--cfg loom` these are loom's model-checked types; otherwise the real ones from
//! `core`/`std`. Protocol code never imports `std::sync` directly, so every protocol in the
//! crate can be run under the loom model checker unchanged (the pattern tokio uses).
//!
//! Loom cannot see accesses made through raw pointers, and the ring's storage is raw bytes
//! (it may be a memory-mapped file). [`AccessTracker`] closes that gap: under loom it keeps a
//! shadow `loom::cell::UnsafeCell<()>` per 8-byte word of the ring, and the ring touches the
//! shadow of every word it reads or writes, so loom reports any unsynchronised pair of
//! accesses to the same word exactly as it would for real cells. Outside loom it is empty and
//! every call compiles to nothing.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::Arc;

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::Arc;

/// A busy-wait step: a CPU hint, or under loom a yield so the model explores the other threads.
#[inline(always)]
#[allow(dead_code)] // only the guard table's writers spin
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    core::hint::spin_loop();
}

/// Shadow cells that let loom check the ring's raw-byte accesses for data races.
#[cfg(loom)]
pub(crate) struct AccessTracker {
    words: Box<[loom::cell::UnsafeCell<()>]>,
}

#[cfg(loom)]
impl AccessTracker {
    pub(crate) fn new(len_bytes: usize) -> Self {
        let words = (0..len_bytes.div_ceil(8)).map(|_| loom::cell::UnsafeCell::new(())).collect();
        AccessTracker { words }
    }

    #[track_caller]
    fn words(&self, offset: usize, len: usize) -> &[loom::cell::UnsafeCell<()>] {
        &self.words[offset / 8..(offset + len).div_ceil(8)]
    }

    /// Records a write of `len` bytes at byte `offset` (no wrap: callers split at the end).
    #[track_caller]
    pub(crate) fn write(&self, offset: usize, len: usize) {
        for w in self.words(offset, len) {
            w.with_mut(|_| ());
        }
    }

    /// Records a read of `len` bytes at byte `offset`.
    #[track_caller]
    pub(crate) fn read(&self, offset: usize, len: usize) {
        for w in self.words(offset, len) {
            w.with(|_| ());
        }
    }
}

/// Outside loom: no shadow, no cost.
#[cfg(not(loom))]
pub(crate) struct AccessTracker;

#[cfg(not(loom))]
impl AccessTracker {
    #[inline(always)]
    pub(crate) fn new(_len_bytes: usize) -> Self {
        AccessTracker
    }
    #[inline(always)]
    pub(crate) fn write(&self, _offset: usize, _len: usize) {}
    #[inline(always)]
    pub(crate) fn read(&self, _offset: usize, _len: usize) {}
}
