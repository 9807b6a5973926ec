//! The SIGBUS guard: a ring file truncated under its mapping cannot kill this process.
//!
//! Another process can shrink a ring file at any time (`ftruncate`; the file's owner can, and so
//! can anyone the file mode lets write). The pages past the new end are then gone, and the next
//! access to them, by the consumer reading a record, by the application reading a payload the
//! engine lent it, or by a producer writing, raises `SIGBUS`, whose default action ends the
//! process. Sealing (`F_SEAL_SHRINK`) would prevent the truncation, but seals exist only for
//! `memfd`s shared by descriptor, and ring files are named files that processes open by path.
//!
//! So this process guards its mappings instead, the way libwayland-server guards the shm pools
//! of its clients (`wl_shm_buffer_begin_access`): every ring-file mapping is registered in a
//! fixed table, and a `SIGBUS` handler, installed once at the first registration, checks the
//! faulting address against the table. If it lies in a ring-file mapping, the handler maps
//! anonymous zero pages over the rest of that mapping (`MAP_FIXED`), marks it truncated and
//! returns: the faulting access is retried and reads zeros. Zeros are never a valid frame or
//! position (a record is at least 40 bytes long, `ring::check`), so the reader stops with a
//! fault, the engine finds the file short at its next check and detaches the stream
//! (`Notice::RingFileTruncated`). A `SIGBUS` at any other address is passed to the handler that
//! was installed before this one (or the default action, which ends the process as it would
//! have), so the guard changes nothing for faults that are not ours.
//!
//! Limits, documented in docs/shm.md: payload bytes read through a record lent before the
//! truncation read as zeros (the notice follows); a handler installed *after* ours that does not
//! chain to it removes the guard; [`set_sigbus_guard`]`(false)` before a mapping is made leaves
//! that mapping unguarded (the documented limit for applications that own `SIGBUS`).
//!
//! # Orderings
//!
//! The table is written by threads that map and unmap ring files and read by the handler, which
//! may run on any thread at any time. The table is a seqlock per slot (`guard_table`, with its `# Orderings` and its loom model,
//! `tests/loom_guard.rs`): the handler acts only on a `(start, len)` pair exactly as it was
//! registered, and never waits. A slot is freed before its mapping is unmapped. The handler
//! does loads, one `mmap` and stores, all async-signal-safe in practice (libwayland, wlroots
//! and KWin make the same call).

use core::ffi::c_void;
use std::sync::OnceLock;

use super::ShmError;
use crate::guard_table::GuardTable;
use crate::sync::{AtomicU64, Ordering};

/// Ring-file mappings a process can guard at once. A mapping beyond this is refused
/// ([`ShmError::Guard`]) rather than left unguarded.
pub const GUARD_SLOTS: usize = 1024;

static TABLE: GuardTable<GUARD_SLOTS> = GuardTable::new();
/// Whether new mappings are guarded (`set_sigbus_guard`).
static ENABLED: AtomicU64 = AtomicU64::new(1);
/// The disposition this guard replaced, to chain to; set once, when the handler is installed.
static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();
static PAGE: AtomicU64 = AtomicU64::new(4096);

/// Guards (the default) or stops guarding ring-file mappings made from now on. An application
/// that handles `SIGBUS` itself and does not want a library handler in front of it turns the
/// guard off before it attaches or opens any ring file; a truncated file then ends the process
/// with `SIGBUS`, as it would without this library (docs/shm.md). Mappings already guarded
/// stay guarded; the handler, once installed, stays.
pub fn set_sigbus_guard(enabled: bool) {
    ENABLED.store(u64::from(enabled), Ordering::Relaxed);
}

/// A registered mapping; unregisters on drop. `None` inside when the guard was off.
pub(crate) struct Guarded(Option<usize>);

impl Guarded {
    /// True when the handler found this mapping truncated and mapped zeros over its lost part.
    pub(crate) fn hit(&self) -> bool {
        self.0.is_some_and(|i| TABLE.hit(i))
    }

    /// Whether the mapping is guarded (a truncated file cannot kill the process through it).
    pub(crate) fn is_guarded(&self) -> bool {
        self.0.is_some()
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Some(i) = self.0 {
            TABLE.free(i);
        }
    }
}

/// Registers the mapping `[start, start + len)`, installing the handler first if this is the
/// first. Errors ([`ShmError::Guard`]): the table is full (`errno` 0), or `sigaction` failed.
pub(crate) fn register(start: *mut u8, len: usize) -> Result<Guarded, ShmError> {
    if ENABLED.load(Ordering::Relaxed) == 0 {
        return Ok(Guarded(None));
    }
    install().map_err(|errno| ShmError::Guard { errno })?;
    TABLE.claim(start as u64, len as u64).map(|i| Guarded(Some(i))).ok_or(ShmError::Guard { errno: 0 })
}

/// Installs the handler once; the error of the one attempt is kept.
fn install() -> Result<(), i32> {
    static INSTALLED: OnceLock<Result<(), i32>> = OnceLock::new();
    *INSTALLED.get_or_init(|| {
        // SAFETY: sysconf is always safe to call.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if page > 0 {
            PAGE.store(page as u64, Ordering::Relaxed);
        }
        // SAFETY: all-zero is a valid `sigaction` (no handler, empty mask), filled in below.
        let mut new: libc::sigaction = unsafe { core::mem::zeroed() };
        new.sa_sigaction = on_sigbus as *const () as usize;
        new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
        // SAFETY: a valid pointer to the mask to empty.
        unsafe { libc::sigemptyset(&mut new.sa_mask) };
        // SAFETY: as above; the current disposition is written into `old`.
        let mut old: libc::sigaction = unsafe { core::mem::zeroed() };
        let errno = || std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        // The disposition to chain to is known before the handler can run. (One installed by
        // another thread between these two calls would be replaced unchained: applications
        // set their handlers at start-up, before they attach ring files.)
        // SAFETY: a valid pointer for the old disposition; no new one.
        if unsafe { libc::sigaction(libc::SIGBUS, core::ptr::null(), &mut old) } != 0 {
            return Err(errno());
        }
        let _ = PREVIOUS.set(old);
        // SAFETY: a valid pointer to an initialised `sigaction` for the call's duration.
        if unsafe { libc::sigaction(libc::SIGBUS, &new, core::ptr::null_mut()) } != 0 {
            return Err(errno());
        }
        Ok(())
    })
}

/// The handler. Async-signal-safe: atomics, `mmap`, `sigaction`, `raise`.
extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    let page = PAGE.load(Ordering::Relaxed) as usize;
    if let Some((i, start, len)) = TABLE.find(addr as u64) {
        let from = addr & !(page - 1);
        let end = (start + len).div_ceil(page as u64) as usize * page;
        // SAFETY: `[from, end)` lies inside a live ring-file mapping this process made (its
        // slot is freed before the mapping is unmapped, and `find` returns only a range as it
        // was registered); replacing those pages with private zero pages changes what the ring
        // reads (zeros, which the ring's checks refuse), not the validity of any pointer.
        let p = unsafe {
            libc::mmap(
                from as *mut c_void,
                end - from,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p != libc::MAP_FAILED {
            TABLE.mark_hit(i);
            return;
        }
    }
    chain(sig, info, ctx);
}

/// Not ours: what would have happened without this guard.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    let Some(old) = PREVIOUS.get() else {
        // SAFETY: restores the default action and re-raises: the process ends by SIGBUS.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
        return;
    };
    let handler = old.sa_sigaction;
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // Put the old disposition back and raise again: the signal is blocked while this
        // handler runs, so it is delivered when it returns, under the old disposition (for a
        // fault, the kernel forces the default action if it is ignored).
        // SAFETY: a valid `sigaction` for the call; `raise` is async-signal-safe.
        unsafe {
            libc::sigaction(sig, old, core::ptr::null_mut());
            libc::raise(sig);
        }
    } else if old.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: an SA_SIGINFO handler has this signature; we pass it what we were given.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut c_void) =
            unsafe { core::mem::transmute(handler) };
        f(sig, info, ctx);
    } else {
        // SAFETY: a plain handler has this signature.
        let f: extern "C" fn(libc::c_int) = unsafe { core::mem::transmute(handler) };
        f(sig);
    }
}
