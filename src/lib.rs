//! The C API (docs/design.md §7): `hz_*` functions over opaque handles, generated into
//! `include/harmonizer.h` by `build.rs` with cbindgen.
//!
//! Conventions, for every function:
//! - Fallible calls return an `hz_status`: `HZ_OK` (0); an informational result below
//!   `HZ_ERR_FIRST` (`HZ_FULL`, `HZ_SHED`, `HZ_NOT_SUBSCRIBED`, `HZ_EMPTY`, `HZ_GOT_NOTICE`: an
//!   outcome, not counted); or an error `HZ_ERR_*`, which the handle's `*_last_error` (or, for
//!   calls without a handle, `hz_last_error`) explains in words and its error counter counts.
//!   Out-parameters are written only on success (`HZ_OK` or the informational result that
//!   says so). The one exception is `hz_producer_push_batch`'s `*pushed`, which also reports
//!   partial progress. `hz_status_str` names a status. A library bug is `HZ_ERR_PANIC`: free
//!   the handle.
//! - Structs that cross the boundary and may grow carry their size first (`struct_size`), so a
//!   program built against one header works with a later library (docs/design.md §7):
//!   - a struct the caller hands over to be filled (`hz_stats`, `hz_pool_counters`,
//!     `hz_staging_demand`, `hz_event_view`, `hz_notice` in the pull calls, `hz_flip` in
//!     `hz_flip_decode`) has `struct_size = sizeof` set by the caller; the library writes the
//!     fields that fit, zeroes the bytes it does not know and leaves `struct_size` as it is;
//!   - a struct the caller hands over to be read (`hz_flip` in `hz_flip_encode`) is read up to
//!     `struct_size`; fields past it count as 0;
//!   - a struct the library lends (`hz_notice` in a callback) has the library's `struct_size`:
//!     read a field newer than your header's oldest supported library only when
//!     `HZ_HAS_FIELD` says it is there.
//!
//!   A `struct_size` below the struct's first layout is `HZ_ERR_INVALID`. `hz_event_header` is
//!   the record format itself (also in ring files) and has a fixed layout.
//! - Handles are opaque, made by `*_new` (or taken from an engine) and released by `*_free`,
//!   which accepts NULL. A NULL handle or pointer where one is required is `HZ_ERR_NULL`.
//! - Lengths are `size_t`; enum values cross as `uint32_t` and are validated
//!   (`HZ_ERR_INVALID` for an unknown one).
//! - Every exported body runs behind a panic boundary: a Rust panic becomes `HZ_ERR_PANIC` (or a
//!   NULL/zero result), never an unwind into C.
//! - Threads: an engine and everything reached through it (poll, stats, arm, model load) is
//!   used from one thread at a time, the poll thread. Each producer is used from one thread at
//!   a time, and producers of different streams may run on different threads at once. A
//!   staging pool (`hz_pool`) is shared by engines on any threads; its handle is used by one
//!   thread at a time. Handles may move between threads.

//! # Safety
//!
//! Every function that takes a pointer is `unsafe` to call from Rust, as it is in C: its pointer
//! arguments are checked for NULL (and sizes for sanity) and otherwise trusted. The contract is
//! the C one, stated in each function's own documentation: a handle argument is NULL or a live
//! handle of that type, used by one thread at a time as the function says; any other pointer is
//! NULL where the function allows it, or valid for the reads or writes of the length or struct
//! it names, for the duration of the call (or, for lent memory, as long as the doc says). Rust
//! code uses `harmonizer-core`'s safe API, not these.
// The per-function `# Safety` sections clippy asks for would repeat that contract in every
// function of the generated C header; each function's text already says what it needs.
#![allow(clippy::missing_safety_doc)]

mod config;
mod engine;
mod flip;
#[doc(hidden)]
pub mod fuzzing;
mod learn;
mod pool;
mod producer;

use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

pub use config::*;
pub use engine::*;
pub use flip::*;
pub use learn::*;
pub use pool::*;
pub use producer::*;

/// What every fallible call returns: `HZ_OK`, an informational result (below
/// `HZ_ERR_FIRST`: an outcome to act on, not an error, and not counted), or an error
/// (`HZ_ERR_*`, at or above `HZ_ERR_FIRST`: the handle's last error says why, and its error
/// count counts it). `hz_status_str` names each.
#[allow(non_camel_case_types)]
pub type hz_status = u32;

/// Success.
pub const HZ_OK: hz_status = 0;
/// Informational: the active stream's ring is full; retry after the engine polls
/// (backpressure). Nothing was written.
pub const HZ_FULL: hz_status = 1;
/// Informational: a staged ring shed the event, as its consumer held the front while no space
/// was left (counted in the ring, flagged to the engine). Nothing to do.
pub const HZ_SHED: hz_status = 2;
/// Informational: the stream is not subscribed (idle): the event was discarded. Nothing to do.
pub const HZ_NOT_SUBSCRIBED: hz_status = 3;
/// Informational: nothing to deliver now (the pull calls).
pub const HZ_EMPTY: hz_status = 4;
/// Informational: a notice was written to the caller's `hz_notice` (the pull calls); it comes
/// after the events handed out by the same call.
pub const HZ_GOT_NOTICE: hz_status = 5;
/// Every status at or above this is an error; every status below it is success or
/// informational.
pub const HZ_ERR_FIRST: hz_status = 32;
/// A required handle or pointer was NULL.
pub const HZ_ERR_NULL: hz_status = 32;
/// An argument is out of range, an enum value is unknown, or a `struct_size` is below the
/// struct's first layout.
pub const HZ_ERR_INVALID: hz_status = 33;
/// The engine configuration was refused (the last error says why).
pub const HZ_ERR_CONFIG: hz_status = 34;
/// The payload is larger than `max_payload`. Nothing was written.
pub const HZ_ERR_TOO_LARGE: hz_status = 35;
/// The call is not valid in the handle's state (e.g. a producer taken twice, a model loaded
/// into an engine whose policy is not the predictor, a push while a reservation is open).
pub const HZ_ERR_STATE: hz_status = 36;
/// A flip record is malformed (the last error gives the precise reason).
pub const HZ_ERR_MALFORMED: hz_status = 37;
/// The output buffer is too small.
pub const HZ_ERR_BUFFER_TOO_SMALL: hz_status = 38;
/// A predictor model was refused; the engine keeps its previous model.
pub const HZ_ERR_MODEL: hz_status = 39;
/// A file could not be read.
pub const HZ_ERR_IO: hz_status = 40;
/// A bug in the library (it failed an internal check). The handle may be inconsistent: free
/// it.
pub const HZ_ERR_PANIC: hz_status = 41;
/// A ring file was refused: not a ring file, another layout version, a corrupt header or
/// positions, a wrong length, made for another configuration, or already there (the last
/// error says which).
pub const HZ_ERR_RING_FILE: hz_status = 42;
/// A ring file is in use: another live process is its producer, or another live engine is
/// attached to it.
pub const HZ_ERR_BUSY: hz_status = 43;
/// Memory could not be allocated (a ring, the tracker's tables): nothing was made, the host
/// process goes on. The last error names the size.
pub const HZ_ERR_NO_MEMORY: hz_status = 44;
/// A ring file holds something no process following the protocol writes (another process
/// scribbled on it): nothing was written or read past it. The last error names the position
/// and what was wrong.
pub const HZ_ERR_RING_CORRUPT: hz_status = 45;

/// Event kind: an ordinary data event (`hz_event_header.kind`).
pub const HZ_KIND_DATA: u16 = 0;
/// Event kind: a flip; its payload is a flip record (`hz_flip_encode`).
pub const HZ_KIND_FLIP: u16 = 1;
/// Event kind: a heartbeat, no payload.
pub const HZ_KIND_HEARTBEAT: u16 = 2;
/// Event flag: the fanout path reported a retry or fault for this event.
pub const HZ_FLAG_UPSTREAM_ERROR: u16 = 1;
/// Event flag: the application marks this data event conflatable (the conflation tier,
/// `hz_config_set_conflation`); its conflation key is the first 8 bytes of its payload,
/// little-endian. An event with a shorter payload is not conflatable whatever its flag says.
pub const HZ_FLAG_CONFLATABLE: u16 = 2;
/// Largest encoded flip, bytes: a `max_payload` at least this holds every flip.
pub const HZ_MAX_FLIP_LEN: usize = 1335;

// Literals, so cbindgen can write them; pinned to the Rust names here.
const _: () = assert!(HZ_KIND_DATA == harmonizer_core::event::KIND_DATA);
const _: () = assert!(HZ_KIND_FLIP == harmonizer_core::event::KIND_FLIP);
const _: () = assert!(HZ_KIND_HEARTBEAT == harmonizer_core::event::KIND_HEARTBEAT);
const _: () = assert!(HZ_FLAG_UPSTREAM_ERROR == harmonizer_core::event::FLAG_UPSTREAM_ERROR);
const _: () = assert!(HZ_FLAG_CONFLATABLE == harmonizer_core::event::FLAG_CONFLATABLE);
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

/// A short static description of `status` (`"ok"`, `"ring full"`, `"null pointer"`, ...;
/// `"unknown status"` for a value not listed). Static storage: do not free. Any thread.
#[no_mangle]
pub extern "C" fn hz_status_str(status: hz_status) -> *const c_char {
    let s: &'static CStr = match status {
        HZ_OK => c"ok",
        HZ_FULL => c"ring full",
        HZ_SHED => c"event shed by a staged ring",
        HZ_NOT_SUBSCRIBED => c"stream not subscribed",
        HZ_EMPTY => c"nothing to deliver",
        HZ_GOT_NOTICE => c"notice",
        HZ_ERR_NULL => c"null pointer",
        HZ_ERR_INVALID => c"invalid argument",
        HZ_ERR_CONFIG => c"invalid configuration",
        HZ_ERR_TOO_LARGE => c"payload too large",
        HZ_ERR_STATE => c"wrong state",
        HZ_ERR_MALFORMED => c"malformed flip",
        HZ_ERR_BUFFER_TOO_SMALL => c"buffer too small",
        HZ_ERR_MODEL => c"invalid model",
        HZ_ERR_IO => c"i/o error",
        HZ_ERR_PANIC => c"internal error (panic)",
        HZ_ERR_RING_FILE => c"ring file refused",
        HZ_ERR_BUSY => c"ring file in use",
        HZ_ERR_NO_MEMORY => c"out of memory",
        HZ_ERR_RING_CORRUPT => c"ring file corrupt",
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
    pub(crate) fn set(&self, status: hz_status, message: impl Into<String>) -> hz_status {
        debug_assert!(status >= HZ_ERR_FIRST, "status {status} is not an error");
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
pub(crate) fn shm_status(e: &harmonizer_core::shm::ShmError) -> hz_status {
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

/// Why a pointer and a length are not a byte slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BadBytes {
    /// NULL with a non-zero length.
    Null,
    /// A length no object can have (above `isize::MAX`), whatever the pointer.
    TooLong,
}

impl BadBytes {
    /// The status and message for argument `what` of length `len`: each names the real problem
    /// (issue 19: a huge length was reported as a NULL pointer).
    pub(crate) fn status(self, what: &str, len: usize) -> (hz_status, String) {
        match self {
            BadBytes::Null => (HZ_ERR_NULL, format!("{what} is NULL with a length of {len}")),
            BadBytes::TooLong => (
                HZ_ERR_INVALID,
                format!("{what}: a length of {len} bytes is longer than any object can be (isize::MAX)"),
            ),
        }
    }
}

/// Borrows `len` bytes at `ptr` (NULL allowed when `len` is 0).
///
/// # Safety
/// `ptr` must be NULL or point to `len` readable bytes that stay valid and unmodified for the
/// returned lifetime.
pub(crate) unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], BadBytes> {
    if len == 0 {
        return Ok(&[]);
    }
    if len > isize::MAX as usize {
        return Err(BadBytes::TooLong);
    }
    if ptr.is_null() {
        return Err(BadBytes::Null);
    }
    // SAFETY: non-null, and the caller promises `len` readable bytes for 'a.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Largest `struct_size` taken: far above any layout, so that an uninitialised `struct_size`
/// is refused rather than trusted with a write that long.
pub(crate) const MAX_STRUCT_SIZE: usize = 4096;

/// Why a caller's `struct_size` of `given` bytes is refused for the struct `name` whose first
/// layout is `first` bytes (`None`: taken). `what` names the argument (`"out"`, ...).
pub(crate) fn size_problem(
    what: &str,
    name: &str,
    given: usize,
    first: usize,
    align: usize,
) -> Option<String> {
    if given < first {
        Some(format!(
            "{what}->struct_size {given} is below the first {name} layout ({first} bytes): set it to sizeof({name})"
        ))
    } else if given > MAX_STRUCT_SIZE {
        Some(format!(
            "{what}->struct_size {given} is above {MAX_STRUCT_SIZE} bytes (not initialised?): set it to sizeof({name})"
        ))
    } else if given % align != 0 {
        Some(format!("{what}->struct_size {given} is not a multiple of {name}'s alignment ({align}): set it to sizeof({name})"))
    } else {
        None
    }
}

/// A caller's struct of `given` bytes that the library fills with `value` (the size-tag rule
/// for caller-filled structs, module docs): `None` when `given` is below `first`, the size of
/// the struct's first layout, or above `MAX_STRUCT_SIZE`. Otherwise writes the first `min(given, size_of::<T>())` bytes of
/// `value` and zeroes the caller's bytes past `size_of::<T>()` (fields of a later header).
///
/// # Safety
/// `out` must be valid for writes of `given` bytes.
pub(crate) unsafe fn fill_sized<T: Copy>(out: *mut u8, given: usize, first: usize, value: &T) -> Option<()> {
    if given < first || given > MAX_STRUCT_SIZE {
        return None;
    }
    let own = std::mem::size_of::<T>();
    // SAFETY: `value` is readable for `own` bytes and `out` writable for `given` (caller), and
    // they do not overlap (`value` is the library's). Padding bytes copy as untyped bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(core::ptr::from_ref(value).cast::<u8>(), out, own.min(given));
        if given > own {
            std::ptr::write_bytes(out.add(own), 0, given - own);
        }
    }
    Some(())
}

/// Reads a caller's struct of `given` bytes into a `T` (the size-tag rule for structs the
/// library reads): bytes past `given` count as 0. `None` when `given` is below `first` or
/// above `MAX_STRUCT_SIZE`.
///
/// # Safety
/// `src` must be valid for reads of `min(given, size_of::<T>())` bytes, and `T` must be valid
/// for any bytes the caller writes and for all-zero bytes (plain integers and raw pointers).
pub(crate) unsafe fn read_sized<T: Copy>(src: *const u8, given: usize, first: usize) -> Option<T> {
    if given < first || given > MAX_STRUCT_SIZE {
        return None;
    }
    let mut v = std::mem::MaybeUninit::<T>::zeroed();
    // SAFETY: `src` readable for the bytes copied (caller); `v` is a local of `size_of::<T>()`
    // bytes; zeroed then overwritten bytes are a valid `T` (caller).
    unsafe {
        std::ptr::copy_nonoverlapping(src, v.as_mut_ptr().cast::<u8>(), given.min(std::mem::size_of::<T>()));
        Some(v.assume_init())
    }
}

/// The `struct_size` at the start of a caller's size-tagged struct.
///
/// # Safety
/// `p` must be non-null and point to a readable struct whose first field is a `size_t`.
pub(crate) unsafe fn struct_size_of(p: *const u8) -> usize {
    // SAFETY: per the caller; unaligned read in case the caller's buffer is packed oddly.
    unsafe { p.cast::<usize>().read_unaligned() }
}

#[cfg(test)]
mod tests;
