//! Waiting for a producer: the consumer sleeps until a record is published on an active ring
//! or a timeout passes, with no system call on the producer's path while the consumer is awake
//! (issue 12, defect 7).
//!
//! Two words on the ring's control line (`Control::wake`), which the producer already reads on
//! every push: `sleeping` (the consumer is about to sleep, or sleeps) and `bell` (a 32-bit futex
//! word). Producer, after publishing on an active ring: store `tail` (Release), **light
//! barrier**, load `sleeping`; only if it is set, bump `bell` and wake the futex (the slow path).
//! Consumer, to wait: load `bell`, store `sleeping`, **heavy barrier**, load `tail`; if empty,
//! sleep on `bell` expecting the value loaded, until woken or the timeout; then clear
//! `sleeping`.
//!
//! # Orderings
//!
//! This is Dekker's pattern: each side stores its own word, then loads the other's. The store
//! `tail` → load `sleeping` (producer) and store `sleeping` → load `tail` (consumer) need
//! StoreLoad ordering on both sides, which no acquire/release pair gives: with it, at least one
//! side sees the other's store. Either the consumer sees the record and does not sleep, or the
//! producer sees `sleeping` and rings. The consumer loaded `bell` before announcing itself, so
//! a ring that lands between that load and the sleep makes `FUTEX_WAIT` return at once (the
//! word no longer holds the expected value): no wakeup is lost. `bell` is bumped with Release
//! and loaded with Acquire only for tidiness; the record itself is ordered by `tail`
//! (Release/Acquire, as for every read of the ring).
//!
//! The StoreLoad barriers are **asymmetric** where the kernel allows it (the pattern of
//! folly's `asymmetricLightBarrier`/`asymmetricHeavyBarrier` and liburcu): the producer's
//! light barrier is a compiler fence only, and the consumer, before it sleeps (rarely, and off
//! the delivery path), issues `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`, which makes every
//! running thread of the process execute a full memory barrier. So the producer's fast path
//! costs one load on a line it already holds. Where membarrier is not available (registration
//! refused, not Linux, Miri), and always for a ring file (its producer is another process,
//! which a private membarrier does not reach), both sides use `fence(SeqCst)`. Which one is
//! decided once per process, before any producer exists (`init`, called by the engine), and
//! fixed in each producer when it is made (`FenceMode`).
//!
//! The producer tests both at once: it loads `sleeping` after the compiler fence and ors in
//! its mode (1: full fences), so while the consumer is awake an asymmetric producer pays two
//! loads (its mode, `sleeping`), an or and one branch not taken. A full-fence producer always
//! goes on to `ring_if_sleeping`, which issues the fence and loads `sleeping` again: that
//! second load is the one the Dekker argument above is about; the first, before the fence,
//! decides nothing.
//!
//! The loom model (`tests/loom_ring.rs`, `loom_wait_*`) runs the protocol with `fence(SeqCst)`
//! on both sides (loom cannot model membarrier) and a futex emulated by yielding until `bell`
//! changes: it shows no lost wakeup in any interleaving.

use crate::sync::{fence, AtomicU32, Ordering};

/// The consumer's doorbell. `repr(C)`: it lives in the ring file's shared words too.
#[repr(C)]
pub(crate) struct Wake {
    /// 1 while the consumer is about to sleep or sleeps.
    sleeping: AtomicU32,
    /// Bumped by a producer that found `sleeping` set; the futex word.
    bell: AtomicU32,
}

impl Wake {
    pub(crate) fn new() -> Self {
        Wake { sleeping: AtomicU32::new(0), bell: AtomicU32::new(0) }
    }

    /// Producer side, right after the Release store of `tail`: false when the consumer is
    /// awake and nothing more is to be done; true when [`ring_if_sleeping`](Self::ring_if_sleeping)
    /// must be called. With asymmetric barriers (`mode` not full) this is the whole check:
    /// the light barrier, then the load of `sleeping`. With full fences it is always true, and
    /// the load here decides nothing (`ring_if_sleeping` fences, then loads again): the fence
    /// mode is folded into the one branch, so the common case tests once, not twice.
    #[inline(always)]
    pub(crate) fn maybe_sleeping(&self, mode: FenceMode) -> bool {
        // The consumer's membarrier orders this thread's accesses for it; the compiler must
        // not move the load of `sleeping` above the store of `tail`.
        core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
        (self.sleeping.load(Ordering::Relaxed) | mode.0) != 0
    }

    /// Producer side, when `maybe_sleeping`: with full fences, the StoreLoad barrier and the
    /// load of `sleeping` that counts; then, if the consumer sleeps or is about to, wakes it.
    #[inline]
    pub(crate) fn ring_if_sleeping(&self, mode: FenceMode, cross_process: bool) {
        if mode.full() {
            fence(Ordering::SeqCst);
            if self.sleeping.load(Ordering::Relaxed) == 0 {
                return;
            }
        }
        self.ring(cross_process);
    }

    /// Wakes the consumer.
    #[cold]
    #[inline(never)]
    fn ring(&self, cross_process: bool) {
        self.bell.fetch_add(1, Ordering::Release);
        futex_wake(&self.bell, cross_process);
    }

    /// Consumer side: sleeps until `empty()` is false, a producer rings, or `timeout_ns`
    /// passes. Returns `!empty()` as last seen. `empty` loads the ring's tail (Acquire).
    pub(crate) fn wait(&self, cross_process: bool, timeout_ns: u64, mut empty: impl FnMut() -> bool) -> bool {
        if !empty() {
            return true;
        }
        let deadline = Deadline::after(timeout_ns);
        loop {
            let seen = self.bell.load(Ordering::Acquire);
            self.sleeping.store(1, Ordering::Relaxed);
            heavy_barrier(cross_process);
            if !empty() {
                self.sleeping.store(0, Ordering::Relaxed);
                return true;
            }
            let Some(left) = deadline.left() else {
                self.sleeping.store(0, Ordering::Relaxed);
                return false;
            };
            futex_wait(&self.bell, seen, left, cross_process);
            self.sleeping.store(0, Ordering::Relaxed);
            if !empty() {
                return true;
            }
            // Woken by a ring of a record already taken, a spurious wake, or a timeout slice:
            // go round again, within the deadline.
            if deadline.left().is_none() {
                return false;
            }
        }
    }
}

/// Asymmetric barriers in use (1), full fences (2), or not decided yet (0). Process-wide and
/// written once, before producers exist; not a protocol loom models (under loom both sides
/// fence), hence core's atomic rather than the shim's.
#[cfg(not(loom))]
static MODE: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);

/// Decides the barrier mode for this process: registers for private expedited membarrier where
/// the kernel offers it. Idempotent; called by `Engine::with` before any producer is handed out.
pub(crate) fn init() {
    #[cfg(not(loom))]
    if MODE.load(core::sync::atomic::Ordering::Acquire) == 0 {
        let mode = if sys::register_membarrier() { 1 } else { 2 };
        MODE.store(mode, core::sync::atomic::Ordering::Release);
    }
}

#[inline(always)]
fn asymmetric() -> bool {
    #[cfg(not(loom))]
    {
        MODE.load(core::sync::atomic::Ordering::Relaxed) == 1
    }
    #[cfg(loom)]
    {
        false
    }
}

/// A producer's barrier after its publishes, fixed when the producer is made (`init` ran
/// before): a full fence on a ring file (the consumer's membarrier does not reach another
/// process) or when this process has no membarrier, else the compiler fence of the asymmetric
/// pair. A word, 1 or 0, so [`Wake::maybe_sleeping`] folds it into the loaded `sleeping` with
/// one `or`.
#[derive(Clone, Copy)]
pub(crate) struct FenceMode(u32);

impl FenceMode {
    pub(crate) fn for_ring(cross_process: bool) -> Self {
        FenceMode(u32::from(cross_process || !asymmetric()))
    }

    #[inline(always)]
    fn full(self) -> bool {
        self.0 != 0
    }
}

fn heavy_barrier(cross_process: bool) {
    if cross_process || !asymmetric() || !sys::membarrier() {
        fence(Ordering::SeqCst);
    }
}

/// A deadline on the monotonic clock (the wait is real time, whatever the engine's clock).
struct Deadline(Option<std::time::Instant>);

impl Deadline {
    fn after(ns: u64) -> Self {
        Deadline(std::time::Instant::now().checked_add(std::time::Duration::from_nanos(ns)))
    }
    /// Nanoseconds left, or None once passed. A deadline past the clock's range never passes.
    fn left(&self) -> Option<u64> {
        match self.0 {
            None => Some(u64::MAX),
            Some(d) => {
                let left = d.saturating_duration_since(std::time::Instant::now());
                (!left.is_zero()).then(|| u64::try_from(left.as_nanos()).unwrap_or(u64::MAX))
            }
        }
    }
}

#[cfg(loom)]
fn futex_wait(bell: &AtomicU32, seen: u32, _left_ns: u64, _cross_process: bool) {
    // Sleep until the bell changes: yield so the producer runs. A lost wakeup would spin here
    // forever, which loom reports.
    while bell.load(Ordering::Acquire) == seen {
        loom::thread::yield_now();
    }
}

#[cfg(loom)]
fn futex_wake(_bell: &AtomicU32, _cross_process: bool) {}

#[cfg(not(loom))]
fn futex_wait(bell: &AtomicU32, seen: u32, left_ns: u64, cross_process: bool) {
    sys::futex_wait(bell, seen, left_ns, cross_process);
}

#[cfg(not(loom))]
fn futex_wake(bell: &AtomicU32, cross_process: bool) {
    sys::futex_wake(bell, cross_process);
}

#[cfg(all(target_os = "linux", not(loom), not(miri)))]
mod sys {
    use crate::sync::AtomicU32;

    const MEMBARRIER_CMD_QUERY: libc::c_int = 0;
    const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
    const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

    pub(super) fn register_membarrier() -> bool {
        // SAFETY: membarrier takes two integers and touches no memory of ours.
        let cmds = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_QUERY, 0) };
        if cmds < 0 || cmds & libc::c_long::from(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0 {
            return false;
        }
        // SAFETY: as above.
        unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0) == 0 }
    }

    /// Issues the heavy barrier; false if the kernel refused (then the caller fences).
    pub(super) fn membarrier() -> bool {
        // SAFETY: as above; the process registered in `register_membarrier`.
        unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0) == 0 }
    }

    fn op(base: libc::c_int, cross_process: bool) -> libc::c_int {
        if cross_process {
            base // a shared mapping: the futex is keyed by the page, across processes
        } else {
            base | libc::FUTEX_PRIVATE_FLAG
        }
    }

    pub(super) fn futex_wait(bell: &AtomicU32, seen: u32, left_ns: u64, cross_process: bool) {
        // At most a second per call: the caller loops until its deadline.
        let ns = left_ns.min(1_000_000_000);
        let ts = libc::timespec {
            tv_sec: (ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (ns % 1_000_000_000) as _,
        };
        // SAFETY: `bell` is a live, aligned 32-bit atomic for the duration of the call; the
        // kernel only reads it (FUTEX_WAIT) and the timespec. EINTR, EAGAIN and ETIMEDOUT are
        // all answered by the caller's re-check.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                bell.as_ptr(),
                op(libc::FUTEX_WAIT, cross_process),
                seen,
                &ts as *const libc::timespec,
                core::ptr::null::<u32>(),
                0,
            );
        }
    }

    pub(super) fn futex_wake(bell: &AtomicU32, cross_process: bool) {
        // SAFETY: as for `futex_wait`; FUTEX_WAKE reads nothing but the address.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                bell.as_ptr(),
                op(libc::FUTEX_WAKE, cross_process),
                i32::MAX,
                0,
                0,
                0,
            );
        }
    }
}

/// Elsewhere (and under Miri): no membarrier, and no futex: the consumer sleeps in slices of
/// 100 µs and re-checks, so a wake costs up to a slice of latency, never correctness.
#[cfg(all(any(not(target_os = "linux"), miri), not(loom)))]
mod sys {
    use crate::sync::AtomicU32;

    pub(super) fn register_membarrier() -> bool {
        false
    }
    pub(super) fn membarrier() -> bool {
        false
    }
    pub(super) fn futex_wait(bell: &AtomicU32, seen: u32, left_ns: u64, _cross_process: bool) {
        if bell.load(crate::sync::Ordering::Acquire) == seen {
            std::thread::sleep(std::time::Duration::from_nanos(left_ns.min(100_000)));
        }
    }
    pub(super) fn futex_wake(_bell: &AtomicU32, _cross_process: bool) {}
}

#[cfg(loom)]
mod sys {
    pub(super) fn membarrier() -> bool {
        false
    }
}
