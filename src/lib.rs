//! The C API (docs/design.md §7): `hz_*` functions over opaque handles, generated into
//! `include/harmonizer.h` by `build.rs` with cbindgen.
//!
//! Conventions, for every function:
//! - Fallible calls return a `uint32_t` status (`HZ_OK` = 0, the `HZ_ERR_*` values below);
//!   out-parameters are written only on success. The one exception is
//!   `hz_producer_push_batch`'s `*pushed`, which also reports partial progress when an event is
//!   refused. `hz_status_str` names a status; the handle's `*_last_error` (or, for calls
//!   without a handle, `hz_last_error`) says what went wrong in words, and its error counter
//!   counts it. A panic inside the library is `HZ_ERR_PANIC`: free the handle.
//! - Handles are opaque, made by `*_new` (or taken from an engine) and released by `*_free`,
//!   which accepts NULL. A NULL handle or pointer where one is required is `HZ_ERR_NULL`.
//! - Lengths are `size_t`; enum values cross as `uint32_t` and are validated
//!   (`HZ_ERR_INVALID` for an unknown one).
//! - Every exported body runs behind a panic boundary: a Rust panic becomes `HZ_ERR_PANIC` (or a
//!   NULL/zero result), never an unwind into C.
//! - Threads: an engine and everything reached through it (poll, stats, arm, model load) is
//!   used from one thread at a time, the poll thread. Each producer is used from one thread at
//!   a time, and producers of different streams may run on different threads at once. Handles
//!   may move between threads.

// These functions are for C: their pointer arguments are checked for NULL and otherwise
// trusted per the documented C contract (each doc says what must be valid), as any C library's.
// Rust code uses the safe Rust API, not these.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

mod config;
mod engine;
mod flip;
mod producer;

use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

pub use config::*;
pub use engine::*;
pub use flip::*;
pub use producer::*;

/// Success.
pub const HZ_OK: u32 = 0;
/// A required handle or pointer was NULL.
pub const HZ_ERR_NULL: u32 = 1;
/// An argument is out of range or an enum value is unknown.
pub const HZ_ERR_INVALID: u32 = 2;
/// The engine configuration was refused (the last error says why).
pub const HZ_ERR_CONFIG: u32 = 3;
/// The active stream's ring is full: retry after the engine polls (backpressure).
pub const HZ_ERR_FULL: u32 = 4;
/// The payload is larger than `max_payload`.
pub const HZ_ERR_TOO_LARGE: u32 = 5;
/// The stream is not subscribed (idle): the event was discarded. Informational.
pub const HZ_ERR_NOT_SUBSCRIBED: u32 = 6;
/// A staged ring shed the event (its window was held). Informational.
pub const HZ_ERR_SHED: u32 = 7;
/// The call is not valid in the handle's state (e.g. a producer taken twice, a model loaded
/// into an engine whose policy is not the predictor).
pub const HZ_ERR_STATE: u32 = 8;
/// A flip record is malformed (the last error gives the precise reason).
pub const HZ_ERR_MALFORMED: u32 = 9;
/// The output buffer is too small.
pub const HZ_ERR_BUFFER_TOO_SMALL: u32 = 10;
/// A predictor model was refused; the engine keeps its previous model.
pub const HZ_ERR_MODEL: u32 = 11;
/// A file could not be read.
pub const HZ_ERR_IO: u32 = 12;
/// A bug: Rust code panicked. The handle may be inconsistent; free it.
pub const HZ_ERR_PANIC: u32 = 13;
/// Nothing to deliver now (`hz_engine_next`). Informational.
pub const HZ_ERR_EMPTY: u32 = 14;
/// A ring file was refused: not a ring file, another layout version, a corrupt header or
/// positions, a wrong length, made for another configuration, or already there (the last
/// error says which).
pub const HZ_ERR_RING_FILE: u32 = 15;
/// A ring file is in use: another live process is its producer, or another live engine is
/// attached to it.
pub const HZ_ERR_BUSY: u32 = 16;

/// Event kind: an ordinary data event (`hz_event_header.kind`).
pub const HZ_KIND_DATA: u16 = 0;
/// Event kind: a flip; its payload is a flip record (`hz_flip_encode`).
pub const HZ_KIND_FLIP: u16 = 1;
/// Event kind: a heartbeat, no payload.
pub const HZ_KIND_HEARTBEAT: u16 = 2;
/// Event flag: the fanout path reported a retry or fault for this event.
pub const HZ_FLAG_UPSTREAM_ERROR: u16 = 1;
/// Largest encoded flip, bytes: a `max_payload` at least this holds every flip.
pub const HZ_MAX_FLIP_LEN: usize = 1335;

// Literals, so cbindgen can write them; pinned to the Rust names here.
const _: () = assert!(HZ_KIND_DATA == harmonizer_core::event::KIND_DATA);
const _: () = assert!(HZ_KIND_FLIP == harmonizer_core::event::KIND_FLIP);
const _: () = assert!(HZ_KIND_HEARTBEAT == harmonizer_core::event::KIND_HEARTBEAT);
const _: () = assert!(HZ_FLAG_UPSTREAM_ERROR == harmonizer_core::event::FLAG_UPSTREAM_ERROR);
const _: () = assert!(HZ_MAX_FLIP_LEN == harmonizer_core::flip::MAX_FLIP_LEN);

/// Major version of this library.
pub const HZ_VERSION_MAJOR: u32 = 0;
/// Minor version of this library.
pub const HZ_VERSION_MINOR: u32 = 1;
/// Patch version of this library.
pub const HZ_VERSION_PATCH: u32 = 0;
/// `MAJOR * 10000 + MINOR * 100 + PATCH`, comparable with `hz_version_number()`.
pub const HZ_VERSION_NUMBER: u32 = HZ_VERSION_MAJOR * 10_000 + HZ_VERSION_MINOR * 100 + HZ_VERSION_PATCH;

const _: () = assert!(HZ_VERSION_MAJOR < 100 && HZ_VERSION_MINOR < 100 && HZ_VERSION_PATCH < 100);

/// The library's version as text, e.g. `"0.1.0"`. Static storage: do not free. Any thread.
#[no_mangle]
pub extern "C" fn hz_version() -> *const c_char {
    static V: &CStr = match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(v) => v,
        Err(_) => panic!("the version has no NUL"),
    };
    V.as_ptr()
}

/// The library's version as `HZ_VERSION_NUMBER` computes it: compare with the header's macro
/// to detect a header/library mismatch. Any thread.
#[no_mangle]
pub extern "C" fn hz_version_number() -> u32 {
    HZ_VERSION_NUMBER
}

/// A short static description of `status` (`"ok"`, `"null pointer"`, ...; `"unknown status"`
/// for a value not listed). Static storage: do not free. Any thread.
#[no_mangle]
pub extern "C" fn hz_status_str(status: u32) -> *const c_char {
    let s: &'static CStr = match status {
        HZ_OK => c"ok",
        HZ_ERR_NULL => c"null pointer",
        HZ_ERR_INVALID => c"invalid argument",
        HZ_ERR_CONFIG => c"invalid configuration",
        HZ_ERR_FULL => c"ring full",
        HZ_ERR_TOO_LARGE => c"payload too large",
        HZ_ERR_NOT_SUBSCRIBED => c"stream not subscribed",
        HZ_ERR_SHED => c"event shed by a staged ring",
        HZ_ERR_STATE => c"wrong state",
        HZ_ERR_MALFORMED => c"malformed flip",
        HZ_ERR_BUFFER_TOO_SMALL => c"buffer too small",
        HZ_ERR_MODEL => c"invalid model",
        HZ_ERR_IO => c"i/o error",
        HZ_ERR_PANIC => c"internal error (panic)",
        HZ_ERR_EMPTY => c"nothing to deliver",
        HZ_ERR_RING_FILE => c"ring file refused",
        HZ_ERR_BUSY => c"ring file in use",
        _ => c"unknown status",
    };
    s.as_ptr()
}

/// The last error of a handle: a message and a count. Interior mutability so that calls on a
/// `const` handle (statistics, queries) can record bad input too; a handle is used by one
/// thread at a time, and the message pointer handed out is documented as valid until the next
/// call on the handle.
#[derive(Default)]
pub(crate) struct LastError {
    message: core::cell::RefCell<Option<CString>>,
    count: core::cell::Cell<u64>,
}

impl LastError {
    /// Records an error and returns its status.
    pub(crate) fn set(&self, status: u32, message: impl Into<String>) -> u32 {
        let mut m: String = message.into();
        m.retain(|c| c != '\0');
        *self.message.borrow_mut() = CString::new(m).ok();
        self.count.set(self.count.get() + 1);
        status
    }
    pub(crate) fn as_ptr(&self) -> *const c_char {
        self.message.borrow().as_deref().unwrap_or(c"").as_ptr()
    }
    pub(crate) fn count(&self) -> u64 {
        self.count.get()
    }
}

/// The status of a ring-file error.
#[cfg(shm)]
pub(crate) fn shm_status(e: &harmonizer_core::shm::ShmError) -> u32 {
    use harmonizer_core::shm::ShmError;
    match e {
        ShmError::Io { .. } => HZ_ERR_IO,
        ShmError::ProducerBusy { .. } | ShmError::ConsumerBusy { .. } => HZ_ERR_BUSY,
        ShmError::UnknownStream(_) => HZ_ERR_INVALID,
        ShmError::Config(_) => HZ_ERR_CONFIG,
        _ => HZ_ERR_RING_FILE,
    }
}

/// A C path as a Rust one (bytes as they are: Unix paths are bytes). `None` for NULL.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string valid for `'a`.
#[cfg(shm)]
pub(crate) unsafe fn c_path<'a>(path: *const c_char) -> Option<&'a std::path::Path> {
    use std::os::unix::ffi::OsStrExt;
    if path.is_null() {
        return None;
    }
    // SAFETY: non-null and NUL-terminated per the caller.
    let bytes = unsafe { CStr::from_ptr(path) }.to_bytes();
    Some(std::path::Path::new(std::ffi::OsStr::from_bytes(bytes)))
}

/// Runs `f`, turning a panic into `on_panic`.
pub(crate) fn guard<T>(on_panic: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(on_panic)
}

/// Borrows `len` bytes at `ptr` (NULL allowed when `len` is 0). `None` for NULL with a length,
/// or a length no object can have (above `isize::MAX`).
///
/// # Safety
/// `ptr` must be NULL or point to `len` readable bytes that stay valid and unmodified for the
/// returned lifetime.
pub(crate) unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> Option<&'a [u8]> {
    if len == 0 {
        return Some(&[]);
    }
    if ptr.is_null() || len > isize::MAX as usize {
        return None;
    }
    // SAFETY: non-null, and the caller promises `len` readable bytes for 'a.
    Some(unsafe { std::slice::from_raw_parts(ptr, len) })
}

#[cfg(test)]
mod tests;
