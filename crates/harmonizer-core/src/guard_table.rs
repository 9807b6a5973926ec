//! The SIGBUS guard's table of ring-file mappings (`shm::guard`): written by threads that map
//! and unmap ring files, read by a signal handler that may interrupt any thread at any moment,
//! including one that is writing the table. Public only for its loom model
//! (`tests/loom_guard.rs`).
//!
//! # Orderings
//!
//! Each slot is a small seqlock: `seq` is odd while the slot is being written, and every write
//! of `start`/`len` happens between an odd `seq` and the next even one.
//!
//! - **Writers** (claim, free; never in a signal handler) make `seq` odd with a
//!   compare-exchange (`Acquire`: the slot's previous writer's stores happen before ours),
//!   then a `Release` fence, then store `start` and `len` (`Relaxed`), then store the next even
//!   `seq` with `Release`. Two writers never both hold a slot: the exchange from an even value
//!   admits one.
//! - **The reader** (the handler) loads `seq` (`Acquire`), skips the slot if odd, loads `start`
//!   and `len` (`Relaxed`), issues an `Acquire` fence and loads `seq` again (`Relaxed`). If
//!   either data load read a value written after the writer's odd `seq`, the fence pair makes
//!   the second `seq` load see that odd value or later, so it differs from the first and the
//!   slot is skipped: a range the handler acts on is always one `(start, len)` pair as a
//!   writer registered it, never a start of one registration with the length of another.
//!   (Skipping is safe: a slot being written is being claimed or freed, whose mapping the
//!   handler must not touch half-registered.) The reader never waits, so a handler that
//!   interrupts a writer on its own thread cannot deadlock.
//! - `hit` is set by the handler (`Release`) after it replaced the pages and read by the
//!   mapping's owner (`Acquire`); a claim clears it inside the odd window.

use crate::sync::{fence, AtomicU64, Ordering};

struct Slot {
    seq: AtomicU64,
    start: AtomicU64,
    len: AtomicU64,
    hit: AtomicU64,
}

impl Slot {
    #[cfg(not(loom))]
    const fn new() -> Slot {
        Slot {
            seq: AtomicU64::new(0),
            start: AtomicU64::new(0),
            len: AtomicU64::new(0),
            hit: AtomicU64::new(0),
        }
    }
    #[cfg(loom)]
    fn new() -> Slot {
        Slot {
            seq: AtomicU64::new(0),
            start: AtomicU64::new(0),
            len: AtomicU64::new(0),
            hit: AtomicU64::new(0),
        }
    }

    /// Makes `seq` odd if it is even (this thread then owns the slot); returns the even value.
    fn lock(&self) -> Option<u64> {
        let s = self.seq.load(Ordering::Relaxed);
        if s & 1 == 1 {
            return None;
        }
        self.seq.compare_exchange(s, s + 1, Ordering::Acquire, Ordering::Relaxed).ok()?;
        // Release fence: the odd `seq` is ordered before the data stores that follow, for a
        // reader whose Acquire fence follows a load of one of them.
        fence(Ordering::Release);
        Some(s)
    }
}

/// A fixed table of `N` registered address ranges.
#[doc(hidden)]
pub struct GuardTable<const N: usize> {
    slots: [Slot; N],
}

impl<const N: usize> GuardTable<N> {
    /// An empty table.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        #[allow(clippy::declare_interior_mutable_const)] // only the array initialiser reads it
        const FREE: Slot = Slot::new();
        GuardTable { slots: [FREE; N] }
    }

    /// An empty table.
    #[cfg(loom)]
    pub fn new() -> Self {
        GuardTable { slots: core::array::from_fn(|_| Slot::new()) }
    }

    /// Registers `[start, start + len)` (`len > 0`); returns its slot, or `None` when every slot
    /// is taken. A slot another writer holds for the moment is looked at again (a few rounds),
    /// so a busy table is not mistaken for a full one.
    pub fn claim(&self, start: u64, len: u64) -> Option<usize> {
        debug_assert!(len > 0);
        for _round in 0..8 {
            let mut contended = false;
            for (i, s) in self.slots.iter().enumerate() {
                if s.len.load(Ordering::Relaxed) != 0 {
                    continue; // in use (checked again below, under the lock)
                }
                let Some(even) = s.lock() else {
                    contended = true;
                    continue;
                };
                let free = s.len.load(Ordering::Relaxed) == 0;
                if free {
                    s.start.store(start, Ordering::Relaxed);
                    s.len.store(len, Ordering::Relaxed);
                    s.hit.store(0, Ordering::Relaxed);
                }
                s.seq.store(even + 2, Ordering::Release);
                if free {
                    return Some(i);
                }
            }
            if !contended {
                break;
            }
            crate::sync::spin_hint();
        }
        None
    }

    /// Frees slot `i` (claimed by the caller).
    pub fn free(&self, i: usize) {
        let s = &self.slots[i];
        // A claimer may hold the lock for a moment to look at this slot; it never blocks.
        let even = loop {
            if let Some(even) = s.lock() {
                break even;
            }
            crate::sync::spin_hint();
        };
        s.len.store(0, Ordering::Relaxed);
        s.start.store(0, Ordering::Relaxed);
        s.seq.store(even + 2, Ordering::Release);
    }

    /// The registered range holding `addr`, as `(slot, start, len)`, if one does and no writer
    /// is changing it. Never waits (signal-handler safe).
    pub fn find(&self, addr: u64) -> Option<(usize, u64, u64)> {
        for (i, s) in self.slots.iter().enumerate() {
            let s1 = s.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                continue;
            }
            let start = s.start.load(Ordering::Relaxed);
            let len = s.len.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if s.seq.load(Ordering::Relaxed) != s1 {
                continue;
            }
            if len != 0 && addr >= start && addr - start < len {
                return Some((i, start, len));
            }
        }
        None
    }

    /// Marks slot `i` hit (its mapping was found truncated and patched).
    pub fn mark_hit(&self, i: usize) {
        self.slots[i].hit.store(1, Ordering::Release);
    }

    /// Whether slot `i` was marked hit since it was claimed.
    pub fn hit(&self, i: usize) -> bool {
        self.slots[i].hit.load(Ordering::Acquire) != 0
    }
}

impl<const N: usize> Default for GuardTable<N> {
    fn default() -> Self {
        Self::new()
    }
}
