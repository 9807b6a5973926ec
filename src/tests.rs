//! Rust-side checks of the C API's conventions (the C tests in ffi-tests/ drive it from C).

use super::*;
use harmonizer_core::event::{EventHeader, KIND_DATA};
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

#[test]
fn poll_views_lends_a_batch_until_the_next_call() {
    let mut cfg = ptr::null_mut();
    assert_eq!(hz_config_new(7, 2, 4096, 64, &mut cfg), HZ_OK);
    let mut e = ptr::null_mut();
    assert_eq!(hz_engine_new(cfg, &mut e), HZ_OK);
    hz_config_free(cfg);
    let mut p = ptr::null_mut();
    assert_eq!(hz_engine_take_producer(e, 0, &mut p), HZ_OK);
    let push = |seq: u64| {
        let h = EventHeader { pos: seq, seq, ts_ns: seq, origin: 0, kind: KIND_DATA, flags: 0 };
        hz_producer_push(p, &h, seq.to_le_bytes().as_ptr(), 8)
    };
    let empty = hz_event_view { stream: 0, header: ptr::null(), payload: ptr::null(), payload_len: 0 };
    let mut views = [empty; 16];
    let mut n = 99;
    assert_eq!(hz_engine_poll_views(e, views.as_mut_ptr(), 16, &mut n, None, ptr::null_mut()), HZ_OK);
    assert_eq!(n, 0);
    for seq in 1..=10 {
        assert_eq!(push(seq), HZ_OK);
    }
    assert_eq!(hz_engine_poll_views(e, views.as_mut_ptr(), 16, &mut n, None, ptr::null_mut()), HZ_OK);
    assert_eq!(n, 10);
    // The producer fills the ring; the ten lent records must not be overwritten.
    let mut seq = 11;
    while push(seq) == HZ_OK {
        seq += 1;
    }
    for (i, v) in views[..n].iter().enumerate() {
        // SAFETY: lent until the next call on the engine.
        let (h, payload) = unsafe { (*v.header, std::slice::from_raw_parts(v.payload, v.payload_len)) };
        assert_eq!(h.seq, i as u64 + 1);
        assert_eq!(payload, &(i as u64 + 1).to_le_bytes()[..]);
    }
    // The next call frees them and lends the following batch.
    let mut want = 11;
    while want < seq {
        assert_eq!(hz_engine_poll_views(e, views.as_mut_ptr(), 16, &mut n, None, ptr::null_mut()), HZ_OK);
        assert!(n > 0);
        for v in &views[..n] {
            // SAFETY: lent until the next call.
            assert_eq!(unsafe { (*v.header).seq }, want);
            want += 1;
        }
    }
    assert_eq!(push(seq), HZ_OK, "space came back");
    assert_eq!(hz_engine_poll_views(e, ptr::null_mut(), 4, &mut n, None, ptr::null_mut()), HZ_ERR_NULL);
    hz_producer_free(p);
    hz_engine_free(e);
}

/// A gap filled from a staged window: those events are handed out from copies, in order with
/// the lent ones, by both pull forms.
#[test]
fn gap_fills_come_through_the_views_in_order() {
    for batch in [true, false] {
        let mut cfg = ptr::null_mut();
        assert_eq!(hz_config_new(7, 2, 1 << 16, 64, &mut cfg), HZ_OK);
        assert_eq!(hz_config_set_policy(cfg, HZ_POLICY_ALWAYS), HZ_OK);
        let mut e = ptr::null_mut();
        assert_eq!(hz_engine_new(cfg, &mut e), HZ_OK);
        hz_config_free(cfg);
        let (mut p0, mut p1) = (ptr::null_mut(), ptr::null_mut());
        assert_eq!(hz_engine_take_producer(e, 0, &mut p0), HZ_OK);
        assert_eq!(hz_engine_take_producer(e, 1, &mut p1), HZ_OK);
        let empty = hz_event_view { stream: 0, header: ptr::null(), payload: ptr::null(), payload_len: 0 };
        let mut views = [empty; 16];
        let mut n = 0;
        // The first poll stages stream 1.
        assert_eq!(hz_engine_poll_views(e, views.as_mut_ptr(), 16, &mut n, None, ptr::null_mut()), HZ_OK);
        let push = |p, pos: u64, seq: u64| {
            let h = EventHeader { pos, seq, ts_ns: seq, origin: 0, kind: KIND_DATA, flags: 0 };
            hz_producer_push(p, &h, seq.to_le_bytes().as_ptr(), 8)
        };
        for seq in 1..=5 {
            assert_eq!(push(p1, 100 + seq, seq), HZ_OK);
        }
        for (pos, seq) in [(1, 1), (2, 2), (3, 5)] {
            assert_eq!(push(p0, pos, seq), HZ_OK);
        }
        let mut got = Vec::new();
        for _ in 0..8 {
            if batch {
                assert_eq!(
                    hz_engine_poll_views(e, views.as_mut_ptr(), 16, &mut n, None, ptr::null_mut()),
                    HZ_OK
                );
            } else {
                n = usize::from(hz_engine_next(e, &mut views[0], None, ptr::null_mut()) == HZ_OK);
            }
            for v in &views[..n] {
                // SAFETY: lent until the next call.
                let (seq, payload) =
                    unsafe { ((*v.header).seq, std::slice::from_raw_parts(v.payload, v.payload_len)) };
                assert_eq!(payload, &seq.to_le_bytes()[..], "payload of {seq}");
                got.push((seq, v.stream));
            }
        }
        assert_eq!(got, [(1, 0), (2, 0), (3, 1), (4, 1), (5, 0)], "batch {batch}");
        let mut st = hz_stats::default();
        assert_eq!(hz_engine_stats(e, &mut st), HZ_OK);
        assert_eq!((st.gap_filled, st.delivered), (2, 5));
        hz_producer_free(p0);
        hz_producer_free(p1);
        hz_engine_free(e);
    }
}
