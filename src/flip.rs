//! Flip encode and decode for controllers written in C.

use std::cell::RefCell;
use std::ffi::c_char;

use super::{bytes, fill_sized, guard, hz_status, read_sized, size_problem, struct_size_of, LastError};
use super::{HZ_ERR_BUFFER_TOO_SMALL, HZ_ERR_INVALID, HZ_ERR_MALFORMED, HZ_ERR_NULL, HZ_ERR_PANIC, HZ_OK};
use harmonizer_core::flip::{Flip, FlipAction, FlipError, IdList, Selector, MAX_IDS};

/// Flip action: switch to `target`.
pub const HZ_FLIP_SWITCH: u32 = 1;
/// Flip action: a switch to `target` is expected in `expected_in_ns`.
pub const HZ_FLIP_ANNOUNCE: u32 = 2;
/// Flip action: withdraw an announce of `target`.
pub const HZ_FLIP_CANCEL: u32 = 3;
/// Flip action: return to the stream active before the last switch.
pub const HZ_FLIP_SWITCHBACK: u32 = 4;
/// Selector: every recipient.
pub const HZ_SELECTOR_ALL: u32 = 0;
/// Selector: the recipient ids listed in `ids` (1 to 32).
pub const HZ_SELECTOR_IDS: u32 = 1;
/// Selector: the cohort `basis_points` (0..=10000) of `salt`.
pub const HZ_SELECTOR_COHORT: u32 = 2;
/// Most ids an `HZ_SELECTOR_IDS` flip lists.
pub const HZ_FLIP_MAX_IDS: u32 = 32;
const _: () = assert!(HZ_FLIP_MAX_IDS as usize == MAX_IDS);

/// A flip, as C sees it. `ids` and `locator` are borrowed: by `hz_flip_encode` from the caller;
/// by `hz_flip_decode`, `locator` points into the decoded bytes and `ids` into the caller's
/// buffer. Set `struct_size` to `sizeof(hz_flip)` first, for either call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[allow(non_camel_case_types)]
pub struct hz_flip {
    /// `sizeof(hz_flip)`, set by the caller.
    pub struct_size: usize,
    /// `HZ_FLIP_*`.
    pub action: u32,
    /// The stream to switch to (or announced, or cancelled).
    pub target: u32,
    /// Unique id.
    pub flip_id: u64,
    /// Position up to which the current stream is still delivered; 0 = at the flip.
    pub cutover_pos: u64,
    /// Position in the target to read from; 0 = the tracker decides.
    pub resume_pos: u64,
    /// Switch at the first event with `ts_ns >=` this; 0 = no time condition.
    pub not_before_ns: u64,
    /// ANNOUNCE: when the switch is expected, ns after the flip's `ts_ns`.
    pub expected_in_ns: u64,
    /// `HZ_SELECTOR_*`.
    pub selector: u32,
    /// COHORT: 0..=10000.
    pub basis_points: u32,
    /// COHORT: the rollout's salt.
    pub salt: u64,
    /// IDS: the recipient ids.
    pub ids: *const u64,
    /// IDS: how many (1 to 32).
    pub ids_len: usize,
    /// Opaque locator bytes (up to 1024), may be NULL when `locator_len` is 0.
    pub locator: *const u8,
    /// Locator length.
    pub locator_len: usize,
}

/// Size of `hz_flip`'s first layout (fields are only ever appended).
const FLIP_V1: usize = std::mem::offset_of!(hz_flip, locator_len) + std::mem::size_of::<usize>();

/// The caller's flip, read by the size-tag rule (fields past `struct_size` count as 0).
///
/// # Safety
/// `flip` is NULL or a readable `hz_flip` of its `struct_size` bytes.
unsafe fn read_flip(flip: *const hz_flip) -> Result<hz_flip, hz_status> {
    if flip.is_null() {
        return Err(fail(HZ_ERR_NULL, "flip is NULL"));
    }
    // SAFETY: non-null and readable per contract.
    let given = unsafe { struct_size_of(flip.cast()) };
    if let Some(why) = size_problem("flip", "hz_flip", given, FLIP_V1, std::mem::align_of::<hz_flip>()) {
        return Err(fail(HZ_ERR_INVALID, why));
    }
    // SAFETY: `given` readable bytes per contract; `hz_flip` holds integers and raw pointers,
    // valid for any bytes and for zeros.
    unsafe { read_sized::<hz_flip>(flip.cast(), given, FLIP_V1) }
        .ok_or_else(|| fail(HZ_ERR_INVALID, "flip->struct_size"))
}

thread_local! {
    static LAST: RefCell<LastError> = RefCell::new(LastError::default());
}

/// Records a handle-less failure in the calling thread's last error.
pub(crate) fn fail(status: hz_status, message: impl Into<String>) -> hz_status {
    LAST.try_with(|l| l.borrow().set(status, message)).unwrap_or(status)
}

/// The calling thread's last error from a call without a handle (`hz_flip_*`, `hz_config_new`
/// and `hz_pool_new`): `""` if none. Valid until the thread's next such call or its exit; do not
/// free. Any thread.
#[no_mangle]
pub extern "C" fn hz_last_error() -> *const c_char {
    guard(c"".as_ptr(), || LAST.try_with(|l| l.borrow().as_ptr()).unwrap_or(c"".as_ptr()))
}

/// Reads a C flip into a `Flip` borrowing its ids and locator.
///
/// # Safety
/// `f.ids`/`f.locator` must point to `ids_len`/`locator_len` readable elements (or be NULL with
/// length 0) for the lifetime `'a`.
unsafe fn from_c<'a>(f: &'a hz_flip) -> Result<Flip<'a>, hz_status> {
    let action = u8::try_from(f.action)
        .ok()
        .and_then(FlipAction::from_u8)
        .ok_or_else(|| fail(HZ_ERR_INVALID, format!("unknown flip action {}", f.action)))?;
    let selector = match f.selector {
        HZ_SELECTOR_ALL => Selector::All,
        HZ_SELECTOR_IDS => {
            if f.ids_len == 0 || f.ids_len > MAX_IDS {
                return Err(fail(
                    HZ_ERR_INVALID,
                    format!("{} ids: an IDS selector lists 1 to {MAX_IDS}", f.ids_len),
                ));
            }
            if f.ids.is_null() {
                return Err(fail(HZ_ERR_NULL, "ids is NULL"));
            }
            // SAFETY: `ids_len` readable u64s per contract.
            let ids = unsafe { std::slice::from_raw_parts(f.ids, f.ids_len) };
            Selector::Ids(IdList::new(ids).ok_or_else(|| fail(HZ_ERR_INVALID, "too many ids"))?)
        }
        HZ_SELECTOR_COHORT => {
            let bp = u16::try_from(f.basis_points).ok().filter(|&b| b <= 10_000).ok_or_else(|| {
                fail(HZ_ERR_INVALID, format!("basis points {} above 10000", f.basis_points))
            })?;
            Selector::Cohort { basis_points: bp, salt: f.salt }
        }
        v => return Err(fail(HZ_ERR_INVALID, format!("unknown selector {v}"))),
    };
    // SAFETY: `locator_len` readable bytes per contract.
    let locator = unsafe { bytes(f.locator, f.locator_len) }.map_err(|bad| {
        let (status, why) = bad.status("locator", f.locator_len);
        fail(status, why)
    })?;
    Ok(Flip {
        action,
        flip_id: f.flip_id,
        target: f.target,
        cutover_pos: f.cutover_pos,
        resume_pos: f.resume_pos,
        not_before_ns: f.not_before_ns,
        expected_in_ns: f.expected_in_ns,
        selector,
        locator,
    })
}

/// Writes the encoded length of `*flip` to `*len` (set `flip->struct_size` first). Errors:
/// `HZ_ERR_NULL`, `HZ_ERR_INVALID` (unknown action or selector, bad id count or basis points, a
/// `struct_size` below the first layout; the reason in `hz_last_error`).
/// Any thread.
#[no_mangle]
pub unsafe extern "C" fn hz_flip_encoded_len(flip: *const hz_flip, len: *mut usize) -> hz_status {
    guard(HZ_ERR_PANIC, || {
        // SAFETY: NULL or a readable flip.
        let f = match unsafe { read_flip(flip) } {
            Ok(f) => f,
            Err(s) => return s,
        };
        if len.is_null() {
            return fail(HZ_ERR_NULL, "len is NULL");
        }
        // SAFETY: the flip's pointers are valid per contract.
        match unsafe { from_c(&f) } {
            Ok(flip) => {
                // SAFETY: non-null and writable per contract.
                unsafe { *len = flip.encoded_len() };
                HZ_OK
            }
            Err(s) => s,
        }
    })
}

/// Encodes `*flip` into `out` (`cap` bytes), writing the length to `*written`. Errors:
/// `HZ_ERR_NULL`, `HZ_ERR_INVALID` (as `hz_flip_encoded_len`, and a locator above 1024 bytes),
/// `HZ_ERR_BUFFER_TOO_SMALL` (ask `hz_flip_encoded_len`). `out` must not overlap the flip's
/// `ids` or `locator`. Any thread.
#[no_mangle]
pub unsafe extern "C" fn hz_flip_encode(
    flip: *const hz_flip,
    out: *mut u8,
    cap: usize,
    written: *mut usize,
) -> hz_status {
    guard(HZ_ERR_PANIC, || {
        // SAFETY: NULL or a readable flip.
        let f = match unsafe { read_flip(flip) } {
            Ok(f) => f,
            Err(s) => return s,
        };
        if out.is_null() || written.is_null() {
            return fail(HZ_ERR_NULL, "out or written is NULL");
        }
        // SAFETY: the flip's pointers are valid per contract.
        let flip = match unsafe { from_c(&f) } {
            Ok(x) => x,
            Err(s) => return s,
        };
        // SAFETY: `out` is non-null with `cap` writable bytes per contract, not overlapping the
        // flip's ids or locator (documented); no object is longer than isize::MAX.
        let buf = unsafe { std::slice::from_raw_parts_mut(out, cap.min(isize::MAX as usize)) };
        match flip.encode(buf) {
            Ok(n) => {
                // SAFETY: non-null and writable per contract.
                unsafe { *written = n };
                HZ_OK
            }
            Err(FlipError::BufferTooSmall { needed }) => {
                fail(HZ_ERR_BUFFER_TOO_SMALL, format!("the flip needs {needed} bytes, the buffer has {cap}"))
            }
            Err(e) => fail(HZ_ERR_INVALID, e.to_string()),
        }
    })
}

/// Decodes the flip record of `len` bytes at `bytes` into `*out` (set `out->struct_size`
/// first). `out->locator` points into `bytes` (valid while they are); the ids of an IDS
/// selector are copied to `ids_buf` (`ids_cap` entries; 32 always suffice) and `out->ids`
/// points there. Errors: `HZ_ERR_NULL`, `HZ_ERR_INVALID` (`struct_size` below the first
/// layout), `HZ_ERR_MALFORMED` (the precise reason in `hz_last_error`, e.g. a CRC mismatch),
/// `HZ_ERR_BUFFER_TOO_SMALL` (more ids than `ids_cap`). Any thread.
#[no_mangle]
pub unsafe extern "C" fn hz_flip_decode(
    bytes_ptr: *const u8,
    len: usize,
    out: *mut hz_flip,
    ids_buf: *mut u64,
    ids_cap: usize,
) -> hz_status {
    guard(HZ_ERR_PANIC, || {
        if out.is_null() {
            return fail(HZ_ERR_NULL, "out is NULL");
        }
        // SAFETY: non-null, the caller's flip per contract.
        let given = unsafe { struct_size_of(out.cast()) };
        if let Some(why) = size_problem("out", "hz_flip", given, FLIP_V1, std::mem::align_of::<hz_flip>()) {
            return fail(HZ_ERR_INVALID, why);
        }
        // SAFETY: `len` readable bytes per contract.
        let b = match unsafe { bytes(bytes_ptr, len) } {
            Ok(b) => b,
            Err(bad) => {
                let (status, why) = bad.status("bytes", len);
                return fail(status, why);
            }
        };
        let f = match Flip::decode(b) {
            Ok(f) => f,
            Err(e) => return fail(HZ_ERR_MALFORMED, format!("{} ({})", e, e.code())),
        };
        let (selector, basis_points, salt, ids, ids_len) = match f.selector {
            Selector::All => (HZ_SELECTOR_ALL, 0, 0, core::ptr::null(), 0),
            Selector::Cohort { basis_points, salt } => {
                (HZ_SELECTOR_COHORT, u32::from(basis_points), salt, core::ptr::null(), 0)
            }
            Selector::Ids(list) => {
                let ids = list.as_slice();
                if ids_buf.is_null() {
                    return fail(HZ_ERR_NULL, "ids_buf is NULL and the flip lists ids");
                }
                if ids_cap < ids.len() {
                    return fail(
                        HZ_ERR_BUFFER_TOO_SMALL,
                        format!("the flip lists {} ids, ids_cap is {ids_cap}", ids.len()),
                    );
                }
                // SAFETY: `ids_buf` has `ids_cap >= ids.len()` writable u64s per contract.
                unsafe { std::ptr::copy_nonoverlapping(ids.as_ptr(), ids_buf, ids.len()) };
                (HZ_SELECTOR_IDS, 0, 0, ids_buf.cast_const(), ids.len())
            }
        };
        let c = hz_flip {
            struct_size: given,
            action: f.action as u32,
            target: f.target,
            flip_id: f.flip_id,
            cutover_pos: f.cutover_pos,
            resume_pos: f.resume_pos,
            not_before_ns: f.not_before_ns,
            expected_in_ns: f.expected_in_ns,
            selector,
            basis_points,
            salt,
            ids,
            ids_len,
            locator: f.locator.as_ptr(),
            locator_len: f.locator.len(),
        };
        // SAFETY: non-null with `struct_size` writable bytes per contract; checked above.
        let ok = unsafe { fill_sized(out.cast(), given, FLIP_V1, &c) };
        debug_assert!(ok.is_some());
        HZ_OK
    })
}
