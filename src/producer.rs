//! `hz_producer`: the feed side of one stream.

use std::ffi::c_char;

use super::{bytes, guard, hz_status, LastError};
use super::{
    HZ_ERR_INVALID, HZ_ERR_NULL, HZ_ERR_PANIC, HZ_ERR_RING_CORRUPT, HZ_ERR_STATE, HZ_ERR_TOO_LARGE, HZ_FULL,
    HZ_NOT_SUBSCRIBED, HZ_OK, HZ_SHED,
};
use harmonizer_core::engine::StreamProducer;
use harmonizer_core::event::EventHeader;
use harmonizer_core::ring::{PushError, Reservation};

/// The producer of one stream. Opaque. Used by one thread at a time.
#[allow(non_camel_case_types)]
pub struct hz_producer {
    p: StreamProducer,
    err: LastError,
    /// The record `hz_producer_reserve` lent out, until committed or cancelled.
    reserved: Option<Reservation>,
}

impl hz_producer {
    pub(crate) fn new(p: StreamProducer) -> Self {
        hz_producer { p, err: LastError::default(), reserved: None }
    }

    /// Refuses a write while a reservation is lent out: it would take the reserved room under
    /// the caller's pointer.
    #[inline]
    fn check_no_reservation(&self) -> Result<(), hz_status> {
        if self.reserved.is_some() {
            return Err(self.reservation_open());
        }
        Ok(())
    }

    #[cold]
    fn reservation_open(&self) -> hz_status {
        self.err.set(HZ_ERR_STATE, "a reservation is open (hz_producer_reserve): commit or cancel it first")
    }
}

/// The Rust producer inside a C handle, for Rust code that holds an `hz_producer *` (the FFI
/// bench pushes through it to compare a C consumer with a Rust one on the same feed).
///
/// # Safety
/// `p` must be a live producer from `hz_engine_take_producer`, not used elsewhere while the
/// returned reference lives.
#[doc(hidden)]
pub unsafe fn producer_inner<'a>(p: *mut hz_producer) -> &'a mut StreamProducer {
    // SAFETY: per this function's contract.
    unsafe { &mut (*p).p }
}

/// A push's status: the informational results (backpressure, discards) are outcomes, not bad
/// input, and are not counted.
fn status(e: &LastError, r: Result<(), PushError>) -> hz_status {
    match r {
        Ok(()) => HZ_OK,
        Err(PushError::Full) => HZ_FULL,
        Err(PushError::NotSubscribed) => HZ_NOT_SUBSCRIBED,
        Err(PushError::Shed) => HZ_SHED,
        Err(err @ PushError::TooLarge { .. }) => e.set(HZ_ERR_TOO_LARGE, err.to_string()),
        Err(err @ PushError::Corrupt { .. }) => e.set(HZ_ERR_RING_CORRUPT, err.to_string()),
    }
}

/// [`status`], with what a ring file's consumer wrote wrong in the message of a corrupt one.
fn status_of(p: &hz_producer, r: Result<(), PushError>) -> hz_status {
    match (r, p.p.corruption()) {
        (Err(err @ PushError::Corrupt { .. }), Some((_, what))) => {
            p.err.set(HZ_ERR_RING_CORRUPT, format!("{err}: {what}"))
        }
        (r, _) => status(&p.err, r),
    }
}

/// Opens the producer side of a ring file that an engine made with `hz_engine_attach_file`
/// (typically in another process), for the stream the file was made for; push with the usual
/// `hz_producer_push*` calls. It goes on from the ring's published tail: a previous producer
/// killed mid-write never leaves a torn record. It holds the file's producer lock until
/// `hz_producer_free` or its process ends, which is how the engine tells a dead producer from a
/// slow one.
///
/// Ownership: on `HZ_OK`, `*out` is the caller's, freed with `hz_producer_free`. Errors (the
/// reason in `hz_last_error`): `HZ_ERR_NULL`; `HZ_ERR_IO`; `HZ_ERR_RING_FILE` (not a ring
/// file, another layout version, a corrupt header or positions, a wrong length);
/// `HZ_ERR_BUSY` (another live process produces on it); `HZ_ERR_STATE` where ring files are
/// not supported (Linux only). Any thread; the producer is then used by one thread at a time.
#[no_mangle]
pub unsafe extern "C" fn hz_producer_open_file(path: *const c_char, out: *mut *mut hz_producer) -> hz_status {
    guard(HZ_ERR_PANIC, || {
        if out.is_null() {
            return super::flip::fail(HZ_ERR_NULL, "out is NULL");
        }
        #[cfg(shm)]
        {
            // SAFETY: NULL or a NUL-terminated path, per contract.
            let Some(path) = (unsafe { super::c_path(path) }) else {
                return super::flip::fail(HZ_ERR_NULL, "path is NULL");
            };
            match StreamProducer::open_file(path) {
                Ok(p) => {
                    // SAFETY: `out` is non-null and writable per contract.
                    unsafe { *out = Box::into_raw(Box::new(hz_producer::new(p))) };
                    HZ_OK
                }
                Err(e) => super::flip::fail(super::shm_status(&e), format!("{}: {e}", path.display())),
            }
        }
        #[cfg(not(shm))]
        {
            let _ = path;
            super::flip::fail(super::HZ_ERR_STATE, "ring files are supported on Linux only")
        }
    })
}

/// The producer's generation on its ring file: 1 for the file's first producer, one more for
/// each that opened it since; 0 for an in-process producer (or NULL). Its thread.
#[no_mangle]
pub unsafe extern "C" fn hz_producer_generation(producer: *const hz_producer) -> u64 {
    guard(0, || {
        // SAFETY: NULL or a live producer, per contract.
        unsafe { producer.as_ref() }.map_or(0, |p| p.p.generation())
    })
}

/// Frees a producer (an open reservation is cancelled). NULL is a no-op. Its thread.
#[no_mangle]
pub unsafe extern "C" fn hz_producer_free(producer: *mut hz_producer) {
    guard((), || {
        if !producer.is_null() {
            // SAFETY: made by `hz_engine_take_producer`, not freed before, per contract.
            drop(unsafe { Box::from_raw(producer) });
        }
    })
}

/// Pushes one event: `header` is copied, then `payload_len` bytes from `payload` (NULL allowed
/// when 0). The ring's role decides what happens: active, stored (or `HZ_FULL`: retry after the
/// engine polls); staged, stored, the oldest evicted if needed (`HZ_SHED` if it could not);
/// idle, discarded (`HZ_NOT_SUBSCRIBED`). Errors: `HZ_ERR_NULL`, `HZ_ERR_TOO_LARGE`
/// (`payload_len` above `max_payload`: nothing written), `HZ_ERR_STATE` (a reservation is
/// open). The producer's thread.
#[no_mangle]
pub unsafe extern "C" fn hz_producer_push(
    producer: *mut hz_producer,
    header: *const EventHeader,
    payload: *const u8,
    payload_len: usize,
) -> hz_status {
    guard(HZ_ERR_PANIC, || {
        // SAFETY: NULL or a live producer used by one thread at a time.
        let Some(p) = (unsafe { producer.as_mut() }) else { return HZ_ERR_NULL };
        if let Err(s) = p.check_no_reservation() {
            return s;
        }
        // SAFETY: NULL or a readable header.
        let Some(h) = (unsafe { header.as_ref() }) else { return p.err.set(HZ_ERR_NULL, "header is NULL") };
        // Checked before the payload is looked at: a huge length must not become a slice.
        let max = p.p.max_payload();
        if payload_len > max {
            return p
                .err
                .set(HZ_ERR_TOO_LARGE, format!("payload of {payload_len} bytes exceeds max_payload {max}"));
        }
        // SAFETY: `payload_len` readable bytes per contract.
        let b = match unsafe { bytes(payload, payload_len) } {
            Ok(b) => b,
            Err(bad) => {
                let (status, why) = bad.status("payload", payload_len);
                return p.err.set(status, why);
            }
        };
        let r = p.p.push(h, b);
        status_of(p, r)
    })
}

/// Pushes `n` events as one batch, published together: event `i` is `headers[i]` with
/// `lens[i]` bytes at `payloads[i]`. Stops at the first event that is not stored. `*pushed`
/// (if not NULL) is written with how many were stored, on `HZ_OK` (all `n`) and also on
/// `HZ_FULL`, `HZ_SHED`, `HZ_NOT_SUBSCRIBED`, `HZ_ERR_TOO_LARGE` and `HZ_ERR_NULL` for a NULL
/// payload with a length (the events before the one refused are published). Errors: as
/// `hz_producer_push`, and `HZ_ERR_NULL` for a NULL array with `n > 0` (nothing pushed,
/// `*pushed` not written). The producer's thread.
#[no_mangle]
pub unsafe extern "C" fn hz_producer_push_batch(
    producer: *mut hz_producer,
    headers: *const EventHeader,
    payloads: *const *const u8,
    lens: *const usize,
    n: usize,
    pushed: *mut usize,
) -> hz_status {
    guard(HZ_ERR_PANIC, || {
        // SAFETY: NULL or a live producer used by one thread at a time.
        let Some(p) = (unsafe { producer.as_mut() }) else { return HZ_ERR_NULL };
        if let Err(s) = p.check_no_reservation() {
            return s;
        }
        if n > 0 && (headers.is_null() || payloads.is_null() || lens.is_null()) {
            return p.err.set(HZ_ERR_NULL, "headers, payloads or lens is NULL");
        }
        if n > isize::MAX as usize / std::mem::size_of::<EventHeader>() {
            return p.err.set(HZ_ERR_INVALID, format!("{n} events: no array is that long"));
        }
        let (headers, payloads, lens) = if n == 0 {
            (&[][..], &[][..], &[][..])
        } else {
            // SAFETY: non-null arrays of `n` elements per contract.
            unsafe {
                (
                    std::slice::from_raw_parts(headers, n),
                    std::slice::from_raw_parts(payloads, n),
                    std::slice::from_raw_parts(lens, n),
                )
            }
        };
        // Stops at the first event not stored; what came before is published when the batch
        // drops, and `*pushed` says how many.
        let max = p.p.max_payload();
        let mut done = 0;
        let mut refused: Option<(u32, String)> = None;
        {
            let mut batch = p.p.batch();
            for i in 0..n {
                if lens[i] > max {
                    refused = Some((
                        HZ_ERR_TOO_LARGE,
                        format!("event {i}: payload of {} bytes exceeds max_payload {max}", lens[i]),
                    ));
                    break;
                }
                // SAFETY: `lens[i]` readable bytes at `payloads[i]` per contract.
                let b = match unsafe { bytes(payloads[i], lens[i]) } {
                    Ok(b) => b,
                    Err(bad) => {
                        refused = Some(bad.status(&format!("payloads[{i}]"), lens[i]));
                        break;
                    }
                };
                match batch.push(&headers[i], b) {
                    Ok(()) => done += 1,
                    Err(e) => {
                        let status = match e {
                            PushError::Full => HZ_FULL,
                            PushError::NotSubscribed => HZ_NOT_SUBSCRIBED,
                            PushError::Shed => HZ_SHED,
                            PushError::TooLarge { .. } => HZ_ERR_TOO_LARGE,
                            PushError::Corrupt { .. } => HZ_ERR_RING_CORRUPT,
                        };
                        refused = Some((status, format!("event {i}: {e}")));
                        break;
                    }
                }
            }
        } // the batch publishes here
        if !pushed.is_null() {
            // SAFETY: non-null and writable per contract.
            unsafe { *pushed = done };
        }
        match refused {
            None => HZ_OK,
            // Backpressure and discards are outcomes, not bad input: not counted.
            Some((status @ (HZ_FULL | HZ_NOT_SUBSCRIBED | HZ_SHED), _)) => status,
            Some((status, message)) => p.err.set(status, message),
        }
    })
}

/// Reserves the producer's next record, `payload_len` bytes, in ring memory, and lends it out:
/// on `HZ_OK`, `*payload` points to `payload_len` writable bytes (NULL when 0) for the caller
/// to fill in place (serialise into it, receive into it), then `hz_producer_commit` publishes
/// the record with its header, or `hz_producer_cancel` drops it. No copy is made.
///
/// While a reservation is open the producer refuses every other write with `HZ_ERR_STATE`
/// (the record would take the reserved room); `*payload` is valid until commit, cancel or
/// `hz_producer_free`. The role decides as in `hz_producer_push`: `HZ_FULL`, `HZ_SHED`,
/// `HZ_NOT_SUBSCRIBED` reserve nothing (`*payload` untouched); a staged ring may evict its
/// oldest records to make room. The limit is `max_payload` for every kind (a flip record
/// longer than that goes through `hz_producer_push`). Errors: `HZ_ERR_NULL` (`producer`,
/// `payload`), `HZ_ERR_TOO_LARGE`, `HZ_ERR_STATE` (a reservation is already open). The
/// producer's thread.
#[no_mangle]
pub unsafe extern "C" fn hz_producer_reserve(
    producer: *mut hz_producer,
    payload_len: usize,
    payload: *mut *mut u8,
) -> hz_status {
    guard(HZ_ERR_PANIC, || {
        // SAFETY: NULL or a live producer used by one thread at a time.
        let Some(p) = (unsafe { producer.as_mut() }) else { return HZ_ERR_NULL };
        if payload.is_null() {
            return p.err.set(HZ_ERR_NULL, "payload is NULL");
        }
        if let Err(s) = p.check_no_reservation() {
            return s;
        }
        match p.p.reserve_detached(payload_len) {
            Ok(r) => {
                let at = if payload_len == 0 { core::ptr::null_mut() } else { p.p.reserved_payload(&r) };
                p.reserved = Some(r);
                // SAFETY: non-null and writable per contract.
                unsafe { *payload = at };
                HZ_OK
            }
            Err(e) => status_of(p, Err(e)),
        }
    })
}

/// Publishes the record `hz_producer_reserve` lent out, with `*header` (copied): its payload
/// is what the caller wrote. The payload pointer is no longer the caller's. Errors:
/// `HZ_ERR_NULL` (`producer`, `header`: the reservation stays open), `HZ_ERR_STATE` (no
/// reservation is open). The producer's thread.
#[no_mangle]
pub unsafe extern "C" fn hz_producer_commit(
    producer: *mut hz_producer,
    header: *const EventHeader,
) -> hz_status {
    guard(HZ_ERR_PANIC, || {
        // SAFETY: NULL or a live producer used by one thread at a time.
        let Some(p) = (unsafe { producer.as_mut() }) else { return HZ_ERR_NULL };
        // SAFETY: NULL or a readable header.
        let Some(h) = (unsafe { header.as_ref() }) else { return p.err.set(HZ_ERR_NULL, "header is NULL") };
        let Some(r) = p.reserved.take() else {
            return p.err.set(HZ_ERR_STATE, "no reservation is open (hz_producer_reserve)");
        };
        match p.p.commit_detached(r, h) {
            Ok(()) => HZ_OK,
            // Cannot happen: every other write is refused while the reservation is open.
            Err(e) => p.err.set(HZ_ERR_PANIC, e.to_string()),
        }
    })
}

/// Drops the record `hz_producer_reserve` lent out: nothing is published (a staged ring may
/// have evicted records to make room for it). The payload pointer is no longer the caller's.
/// Errors: `HZ_ERR_NULL`, `HZ_ERR_STATE` (no reservation is open). The producer's thread.
#[no_mangle]
pub unsafe extern "C" fn hz_producer_cancel(producer: *mut hz_producer) -> hz_status {
    guard(HZ_ERR_PANIC, || {
        // SAFETY: NULL or a live producer used by one thread at a time.
        let Some(p) = (unsafe { producer.as_mut() }) else { return HZ_ERR_NULL };
        match p.reserved.take() {
            Some(_) => HZ_OK,
            None => p.err.set(HZ_ERR_STATE, "no reservation is open (hz_producer_reserve)"),
        }
    })
}

/// The stream this producer feeds (0 for NULL). The producer's thread (one at a time, like
/// push).
#[no_mangle]
pub unsafe extern "C" fn hz_producer_stream(producer: *const hz_producer) -> u32 {
    guard(0, || {
        // SAFETY: NULL or a live producer.
        unsafe { producer.as_ref() }.map_or(0, |p| p.p.stream())
    })
}

/// How many calls on this producer returned a bad-input error (NULL pointers, oversize
/// payloads). Backpressure and discards are not counted. NULL gives 0. The producer's thread.
#[no_mangle]
pub unsafe extern "C" fn hz_producer_error_count(producer: *const hz_producer) -> u64 {
    guard(0, || {
        // SAFETY: NULL or a live producer.
        unsafe { producer.as_ref() }.map_or(0, |p| p.err.count())
    })
}

/// The producer's last error message (`""` if none). Valid until the next call on this
/// producer; do not free. NULL gives `""`. The producer's thread.
#[no_mangle]
pub unsafe extern "C" fn hz_producer_last_error(producer: *const hz_producer) -> *const c_char {
    guard(c"".as_ptr(), || {
        // SAFETY: NULL or a live producer.
        unsafe { producer.as_ref() }.map_or(c"".as_ptr(), |p| p.err.as_ptr())
    })
}
