//! Rust-side checks of the C API's conventions (the C tests in ffi-tests/ drive it from C).

use super::*;
use crate::event::{EventHeader, KIND_DATA};
use std::ffi::{c_void, CStr};
use std::ptr;

unsafe extern "C" fn count_event(
    user: *mut c_void,
    _s: u32,
    _h: *const EventHeader,
    _p: *const u8,
    _n: usize,
) {
    // SAFETY: the test passes a `*mut u64`.
    unsafe { *(user as *mut u64) += 1 };
}

#[test]
fn round_trip_through_the_c_api() {
    let mut cfg = ptr::null_mut();
    assert_eq!(hz_config_new(7, 2, 1 << 16, 256, &mut cfg), HZ_OK);
    let mut e = ptr::null_mut();
    assert_eq!(hz_engine_new(cfg, &mut e), HZ_OK);
    hz_config_free(cfg);
    let mut p = ptr::null_mut();
    assert_eq!(hz_engine_take_producer(e, 0, &mut p), HZ_OK);
    let mut again = ptr::null_mut();
    assert_eq!(hz_engine_take_producer(e, 0, &mut again), HZ_ERR_STATE);
    assert!(again.is_null(), "out-parameters are written only on success");
    for seq in 1..=10u64 {
        let h = EventHeader { pos: seq, seq, ts_ns: seq, origin: 0, kind: KIND_DATA, flags: 0 };
        assert_eq!(hz_producer_push(p, &h, b"abc".as_ptr(), 3), HZ_OK);
    }
    let big = [0u8; 300];
    let h = EventHeader { pos: 11, seq: 11, ts_ns: 11, origin: 0, kind: KIND_DATA, flags: 0 };
    assert_eq!(hz_producer_push(p, &h, big.as_ptr(), big.len()), HZ_ERR_TOO_LARGE);
    assert_eq!(hz_producer_error_count(p), 1);
    // SAFETY: a NUL-terminated static or handle-owned string.
    let msg = unsafe { CStr::from_ptr(hz_producer_last_error(p)) }.to_str().unwrap();
    assert!(msg.contains("exceeds"), "{msg}");
    let mut n = 0u64;
    let mut delivered = 0usize;
    assert_eq!(
        hz_engine_poll(e, 64, Some(count_event), None, (&mut n as *mut u64).cast(), &mut delivered),
        HZ_OK
    );
    assert_eq!((n, delivered), (10, 10));
    assert_eq!(hz_engine_poll(e, 64, None, None, ptr::null_mut(), ptr::null_mut()), HZ_ERR_NULL);
    let mut st = hz_stats::default();
    assert_eq!(hz_engine_stats(e, &mut st), HZ_OK);
    assert_eq!((st.delivered, st.api_errors), (10, 2));
    assert_eq!(hz_engine_load_model(e, b"{}".as_ptr(), 2), HZ_ERR_STATE, "manual policy has no model");
    hz_producer_free(p);
    hz_engine_free(e);
    hz_engine_free(ptr::null_mut());
    hz_producer_free(ptr::null_mut());
    hz_config_free(ptr::null_mut());
}

#[test]
fn statuses_and_versions() {
    // SAFETY: static NUL-terminated strings.
    let s = |v| unsafe { CStr::from_ptr(hz_status_str(v)) }.to_str().unwrap();
    assert_eq!(s(HZ_OK), "ok");
    assert_eq!(s(999), "unknown status");
    for v in 0..=HZ_ERR_EMPTY {
        assert_ne!(s(v), "unknown status", "{v}");
    }
    // SAFETY: static NUL-terminated string.
    assert_eq!(unsafe { CStr::from_ptr(hz_version()) }.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    let v: Vec<u32> = env!("CARGO_PKG_VERSION").split('.').map(|x| x.parse().unwrap()).collect();
    assert_eq!(hz_version_number(), v[0] * 10_000 + v[1] * 100 + v[2]);
}

#[test]
fn flips_encode_and_decode() {
    let ids = [5u64, 6];
    let f = hz_flip {
        action: HZ_FLIP_SWITCH,
        target: 1,
        flip_id: 9,
        cutover_pos: 0,
        resume_pos: 0,
        not_before_ns: 0,
        expected_in_ns: 0,
        selector: HZ_SELECTOR_IDS,
        basis_points: 0,
        salt: 0,
        ids: ids.as_ptr(),
        ids_len: 2,
        locator: b"loc".as_ptr(),
        locator_len: 3,
    };
    let mut len = 0;
    assert_eq!(hz_flip_encoded_len(&f, &mut len), HZ_OK);
    let mut buf = vec![0u8; len];
    let mut written = 0;
    assert_eq!(hz_flip_encode(&f, buf.as_mut_ptr(), 4, &mut written), HZ_ERR_BUFFER_TOO_SMALL);
    assert_eq!(hz_flip_encode(&f, buf.as_mut_ptr(), len, &mut written), HZ_OK);
    let mut out = f;
    let mut idb = [0u64; 32];
    assert_eq!(hz_flip_decode(buf.as_ptr(), written, &mut out, idb.as_mut_ptr(), 32), HZ_OK);
    assert_eq!((out.flip_id, out.ids_len, idb[1]), (9, 2, 6));
    buf[10] ^= 1;
    assert_eq!(hz_flip_decode(buf.as_ptr(), written, &mut out, idb.as_mut_ptr(), 32), HZ_ERR_MALFORMED);
    // SAFETY: thread-local NUL-terminated string.
    let m = unsafe { CStr::from_ptr(hz_last_error()) }.to_str().unwrap();
    assert!(m.contains("crc"), "{m}");
    let bad = hz_flip { action: 9, ..f };
    assert_eq!(hz_flip_encoded_len(&bad, &mut len), HZ_ERR_INVALID);
}

#[test]
fn next_lends_events_without_copying_until_the_next_call() {
    let mut cfg = ptr::null_mut();
    // A small ring: 4 KiB, so the producer fills it while a view is lent.
    assert_eq!(hz_config_new(7, 2, 4096, 64, &mut cfg), HZ_OK);
    let mut e = ptr::null_mut();
    assert_eq!(hz_engine_new(cfg, &mut e), HZ_OK);
    hz_config_free(cfg);
    let mut p = ptr::null_mut();
    assert_eq!(hz_engine_take_producer(e, 0, &mut p), HZ_OK);
    let mut view = hz_event_view { stream: 9, header: ptr::null(), payload: ptr::null(), payload_len: 0 };
    assert_eq!(hz_engine_next(e, &mut view, None, ptr::null_mut()), HZ_ERR_EMPTY);
    assert_eq!(view.stream, 9, "untouched on error");
    let push = |seq: u64| {
        let h = EventHeader { pos: seq, seq, ts_ns: seq, origin: 0, kind: KIND_DATA, flags: 0 };
        hz_producer_push(p, &h, seq.to_le_bytes().as_ptr(), 8)
    };
    assert_eq!(push(1), HZ_OK);
    assert_eq!(hz_engine_next(e, &mut view, None, ptr::null_mut()), HZ_OK);
    // SAFETY: the view is valid until the next call on the engine.
    let (seq, payload) =
        unsafe { ((*view.header).seq, std::slice::from_raw_parts(view.payload, view.payload_len)) };
    assert_eq!((view.stream, seq, payload), (0, 1, &1u64.to_le_bytes()[..]));
    // Fill the ring: the lent record's space must not be reused while it is lent.
    let mut seq = 2;
    while push(seq) == HZ_OK {
        seq += 1;
    }
    assert!(seq > 20, "the ring took {seq} events");
    // SAFETY: still lent: no call on the engine since `hz_engine_next` returned it.
    let lent = unsafe { std::slice::from_raw_parts(view.payload, view.payload_len) };
    assert_eq!(lent, &1u64.to_le_bytes()[..]);
    // Each next call hands out the following event, and frees the one before.
    for want in 2..seq {
        assert_eq!(hz_engine_next(e, &mut view, None, ptr::null_mut()), HZ_OK);
        // SAFETY: valid until the next call.
        assert_eq!(unsafe { (*view.header).seq }, want);
    }
    assert_eq!(push(seq), HZ_OK, "space came back");
    hz_producer_free(p);
    hz_engine_free(e);
}
