//! Rust-side checks of the C API's conventions (the C tests in ffi-tests/ drive it from C).

use super::*;
use harmonizer_core::event::{EventHeader, KIND_DATA, KIND_FLIP};
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

/// A view of this header's size, every other field zero or NULL.
fn blank_view() -> hz_event_view {
    hz_event_view {
        struct_size: std::mem::size_of::<hz_event_view>(),
        stream: 0,
        header: ptr::null(),
        payload: ptr::null(),
        payload_len: 0,
    }
}

/// A SWITCH to `target` for every recipient, this header's size, no ids, no locator.
fn switch_flip(target: u32, flip_id: u64) -> hz_flip {
    hz_flip {
        struct_size: std::mem::size_of::<hz_flip>(),
        action: HZ_FLIP_SWITCH,
        target,
        flip_id,
        cutover_pos: 0,
        resume_pos: 0,
        not_before_ns: 0,
        expected_in_ns: 0,
        selector: HZ_SELECTOR_ALL,
        basis_points: 0,
        salt: 0,
        ids: ptr::null(),
        ids_len: 0,
        locator: ptr::null(),
        locator_len: 0,
    }
}

#[test]
fn round_trip_through_the_c_api() {
    // SAFETY: the C contract (crate docs): every handle passed is live (or NULL where that
    // is the point), every other pointer a live local of the size named, and lent memory is
    // read only until the next call on its engine, as each read below notes.
    unsafe {
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
        let msg = CStr::from_ptr(hz_producer_last_error(p)).to_str().unwrap();
        assert!(msg.contains("exceeds"), "{msg}");
        let mut n = 0u64;
        let mut delivered = 0usize;
        assert_eq!(
            hz_engine_poll(e, 64, Some(count_event), None, (&mut n as *mut u64).cast(), &mut delivered),
            HZ_OK
        );
        assert_eq!((n, delivered), (10, 10));
        assert_eq!(hz_engine_poll(e, 64, None, None, ptr::null_mut(), ptr::null_mut()), HZ_ERR_NULL);
        let mut st = hz_stats { struct_size: std::mem::size_of::<hz_stats>(), ..hz_stats::default() };
        assert_eq!(hz_engine_stats(e, &mut st), HZ_OK);
        assert_eq!((st.delivered, st.api_errors), (10, 2));
        assert_eq!(hz_engine_load_model(e, b"{}".as_ptr(), 2), HZ_ERR_STATE, "manual policy has no model");
        hz_producer_free(p);
        hz_engine_free(e);
        hz_engine_free(ptr::null_mut());
        hz_producer_free(ptr::null_mut());
        hz_config_free(ptr::null_mut());
    }
}

#[test]
fn statuses_and_versions() {
    // SAFETY: the C contract (crate docs): every handle passed is live (or NULL where that
    // is the point), every other pointer a live local of the size named, and lent memory is
    // read only until the next call on its engine, as each read below notes.
    unsafe {
        // SAFETY: static NUL-terminated strings.
        let s = |v| CStr::from_ptr(hz_status_str(v)).to_str().unwrap();
        assert_eq!(s(HZ_OK), "ok");
        assert_eq!(s(999), "unknown status");
        for v in (HZ_OK..=HZ_GOT_NOTICE).chain(HZ_ERR_FIRST..=HZ_ERR_NO_MEMORY) {
            assert_ne!(s(v), "unknown status", "{v}");
        }
        // Informational results sit below the first error, errors at or above it.
        for v in [HZ_FULL, HZ_SHED, HZ_NOT_SUBSCRIBED, HZ_EMPTY, HZ_GOT_NOTICE] {
            assert!(v > HZ_OK && v < HZ_ERR_FIRST, "{v}");
        }
        for v in [HZ_ERR_NULL, HZ_ERR_INVALID, HZ_ERR_PANIC, HZ_ERR_BUSY, HZ_ERR_NO_MEMORY] {
            assert!(v >= HZ_ERR_FIRST, "{v}");
        }
        assert_eq!(s(HZ_ERR_FIRST - 1), "unknown status");
        // SAFETY: static NUL-terminated string.
        assert_eq!(CStr::from_ptr(hz_version()).to_str().unwrap(), env!("CARGO_PKG_VERSION"));
        let v: Vec<u32> = env!("CARGO_PKG_VERSION").split('.').map(|x| x.parse().unwrap()).collect();
        assert_eq!(hz_version_number(), v[0] * 10_000 + v[1] * 100 + v[2]);
    }
}

#[test]
fn flips_encode_and_decode() {
    // SAFETY: the C contract (crate docs): every handle passed is live (or NULL where that
    // is the point), every other pointer a live local of the size named, and lent memory is
    // read only until the next call on its engine, as each read below notes.
    unsafe {
        let ids = [5u64, 6];
        let f = hz_flip {
            selector: HZ_SELECTOR_IDS,
            ids: ids.as_ptr(),
            ids_len: 2,
            locator: b"loc".as_ptr(),
            locator_len: 3,
            ..switch_flip(1, 9)
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
        let m = CStr::from_ptr(hz_last_error()).to_str().unwrap();
        assert!(m.contains("crc"), "{m}");
        let bad = hz_flip { action: 9, ..f };
        assert_eq!(hz_flip_encoded_len(&bad, &mut len), HZ_ERR_INVALID);
        // A struct_size below the first layout is refused, read or written.
        let short = hz_flip { struct_size: 8, ..f };
        assert_eq!(hz_flip_encoded_len(&short, &mut len), HZ_ERR_INVALID);
        buf[10] ^= 1;
        let mut small = hz_flip { struct_size: 16, ..f };
        assert_eq!(hz_flip_decode(buf.as_ptr(), written, &mut small, idb.as_mut_ptr(), 32), HZ_ERR_INVALID);
        assert_eq!(small.flip_id, 9, "untouched");
    }
}

/// A struct from a later header (larger, with fields this library does not know): the library
/// fills what it knows, zeroes the rest, and keeps the caller's `struct_size`. A flip from such
/// a header is read up to its known fields.
#[test]
fn size_tagged_structs_from_a_later_header() {
    // SAFETY: the C contract (crate docs): every handle passed is live (or NULL where that
    // is the point), every other pointer a live local of the size named, and lent memory is
    // read only until the next call on its engine, as each read below notes.
    unsafe {
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct Later<T> {
            known: T,
            added: [u64; 3],
        }
        let mut cfg = ptr::null_mut();
        assert_eq!(hz_config_new(7, 2, 4096, 64, &mut cfg), HZ_OK);
        let mut e = ptr::null_mut();
        assert_eq!(hz_engine_new(cfg, &mut e), HZ_OK);
        hz_config_free(cfg);
        let size = std::mem::size_of::<Later<hz_stats>>();
        let mut st = Later { known: hz_stats { struct_size: size, ..hz_stats::default() }, added: [7; 3] };
        assert_eq!(hz_engine_stats(e, ptr::from_mut(&mut st).cast()), HZ_OK);
        assert_eq!((st.known.struct_size, st.added), (size, [0; 3]));
        // Too small for the first layout: refused, nothing written.
        let mut tiny = hz_stats { struct_size: 8, delivered: 5, ..hz_stats::default() };
        assert_eq!(hz_engine_stats(e, &mut tiny), HZ_ERR_INVALID);
        assert_eq!(tiny.delivered, 5);
        // A view array whose stride is the later header's size.
        let mut p = ptr::null_mut();
        assert_eq!(hz_engine_take_producer(e, 0, &mut p), HZ_OK);
        for seq in 1..=3u64 {
            let h = EventHeader { pos: seq, seq, ts_ns: seq, origin: 0, kind: KIND_DATA, flags: 0 };
            assert_eq!(hz_producer_push(p, &h, seq.to_le_bytes().as_ptr(), 8), HZ_OK);
        }
        let empty = hz_event_view { struct_size: 0, stream: 9, ..blank_view() };
        let stride = std::mem::size_of::<Later<hz_event_view>>();
        let mut views = [Later { known: empty, added: [7; 3] }; 4];
        views[0].known.struct_size = stride;
        let mut n = 0;
        assert_eq!(hz_engine_poll_views(e, views.as_mut_ptr().cast(), 4, &mut n, ptr::null_mut()), HZ_OK);
        assert_eq!(n, 3);
        for (i, v) in views[..n].iter().enumerate() {
            // SAFETY: lent until the next call on the engine.
            assert_eq!((*v.known.header).seq, i as u64 + 1);
            assert_eq!((v.known.struct_size, v.added), (stride, [0; 3]));
        }
        assert_eq!(views[3].added, [7; 3], "not written past n");
        views[0].known.struct_size = std::mem::size_of::<hz_event_view>() + 1;
        assert_eq!(
            hz_engine_poll_views(e, views.as_mut_ptr().cast(), 4, &mut n, ptr::null_mut()),
            HZ_ERR_INVALID
        );
        // A flip from a later header: its extra bytes are not read as anything.
        let f = Later {
            known: hz_flip { struct_size: std::mem::size_of::<Later<hz_flip>>(), ..switch_flip(1, 3) },
            added: [u64::MAX; 3],
        };
        let mut len = 0;
        assert_eq!(hz_flip_encoded_len(ptr::from_ref(&f).cast(), &mut len), HZ_OK);
        hz_producer_free(p);
        hz_engine_free(e);
    }
}

/// The pull calls hand out notices in order with the events, without a callback: one item per
/// `hz_engine_next`, and a batch of views followed by the notice behind it for
/// `hz_engine_poll_views`. A notice's locator is a copy, valid until the next call.
#[test]
fn pull_calls_hand_out_notices_in_order() {
    // SAFETY: the C contract (crate docs): every handle passed is live (or NULL where that
    // is the point), every other pointer a live local of the size named, and lent memory is
    // read only until the next call on its engine, as each read below notes.
    unsafe {
        for batch in [true, false] {
            let mut cfg = ptr::null_mut();
            assert_eq!(hz_config_new(7, 2, 1 << 16, 2048, &mut cfg), HZ_OK);
            let mut e = ptr::null_mut();
            assert_eq!(hz_engine_new(cfg, &mut e), HZ_OK);
            hz_config_free(cfg);
            let (mut p0, mut p1) = (ptr::null_mut(), ptr::null_mut());
            assert_eq!(hz_engine_take_producer(e, 0, &mut p0), HZ_OK);
            assert_eq!(hz_engine_take_producer(e, 1, &mut p1), HZ_OK);
            let push = |p, pos: u64, seq: u64| {
                let h = EventHeader { pos, seq, ts_ns: seq, origin: 0, kind: KIND_DATA, flags: 0 };
                hz_producer_push(p, &h, seq.to_le_bytes().as_ptr(), 8)
            };
            for seq in 1..=3 {
                assert_eq!(push(p0, seq, seq), HZ_OK);
            }
            // A SWITCH to stream 1 with a locator, after event 3, then events 4 and 5 on stream 1.
            let flip = hz_flip { locator: b"region-b".as_ptr(), locator_len: 8, ..switch_flip(1, 77) };
            let mut rec = [0u8; 256];
            let mut w = 0;
            assert_eq!(hz_flip_encode(&flip, rec.as_mut_ptr(), rec.len(), &mut w), HZ_OK);
            let fh = EventHeader { pos: 4, seq: 4, ts_ns: 4, origin: 0, kind: KIND_FLIP, flags: 0 };
            assert_eq!(hz_producer_push(p0, &fh, rec.as_ptr(), w), HZ_OK);
            // Everything as it comes out: events as ("e", stream, seq), notices as ("n", kind, x).
            let mut got: Vec<(&str, u32, u64)> = Vec::new();
            let empty = blank_view();
            let mut views = [empty; 16];
            let mut nb = hz_notice::empty(0);
            let mut fed = false;
            for _ in 0..40 {
                let mut n = 0;
                nb.struct_size = std::mem::size_of::<hz_notice>();
                let status = if batch {
                    hz_engine_poll_views(e, views.as_mut_ptr(), 16, &mut n, &mut nb)
                } else {
                    match hz_engine_next(e, &mut views[0], &mut nb) {
                        HZ_OK => {
                            n = 1;
                            HZ_OK
                        }
                        HZ_EMPTY => HZ_OK,
                        s => s,
                    }
                };
                assert!(status == HZ_OK || status == HZ_GOT_NOTICE, "status {status}");
                for v in &views[..n] {
                    // SAFETY: lent until the next call.
                    got.push(("e", v.stream, (*v.header).seq));
                }
                if status == HZ_GOT_NOTICE {
                    assert!(n < 16);
                    let x = match nb.kind {
                        HZ_NOTICE_SUBSCRIBE => {
                            if nb.stream == 1 {
                                // SAFETY: the locator is valid until the next call on the engine.
                                let loc = std::slice::from_raw_parts(nb.locator, nb.locator_len);
                                assert_eq!(loc, b"region-b");
                            }
                            u64::from(nb.stream)
                        }
                        HZ_NOTICE_SWITCHED => {
                            assert_eq!((nb.stream, nb.to_stream, nb.cause), (0, 1, HZ_SWITCH_CAUSE_FLIP));
                            nb.flip_id
                        }
                        _ => u64::from(nb.stream),
                    };
                    got.push(("n", nb.kind, x));
                    // The subscription to stream 1 is answered after the call, as a feeder would.
                    if nb.kind == HZ_NOTICE_SUBSCRIBE && nb.stream == 1 && !fed {
                        fed = true;
                        for seq in 4..=5 {
                            assert_eq!(push(p1, 100 + seq, seq), HZ_OK);
                        }
                    }
                }
            }
            let kinds: Vec<_> = got.iter().map(|g| (g.0, g.1, g.2)).collect();
            let pos = |k: (&str, u32, u64)| {
                kinds.iter().position(|g| *g == k).unwrap_or_else(|| panic!("{k:?} in {kinds:?}"))
            };
            assert_eq!(kinds[0], ("n", HZ_NOTICE_SUBSCRIBE, 0), "batch {batch}: {kinds:?}");
            assert!(pos(("e", 0, 3)) < pos(("n", HZ_NOTICE_SUBSCRIBE, 1)), "{kinds:?}");
            assert!(pos(("n", HZ_NOTICE_SUBSCRIBE, 1)) < pos(("n", HZ_NOTICE_SWITCHED, 77)), "{kinds:?}");
            assert!(pos(("n", HZ_NOTICE_SWITCHED, 77)) < pos(("e", 1, 4)), "{kinds:?}");
            let seqs: Vec<u64> = kinds.iter().filter(|g| g.0 == "e").map(|g| g.2).collect();
            assert_eq!(seqs, [1, 2, 3, 4, 5], "batch {batch}: exactly once, in order");
            hz_producer_free(p0);
            hz_producer_free(p1);
            hz_engine_free(e);
        }
    }
}

/// Zero-copy produce: reserve, fill in place, commit; nothing else writes meanwhile.
#[test]
fn reserve_fill_commit_publishes_in_place() {
    // SAFETY: the C contract (crate docs): every handle passed is live (or NULL where that
    // is the point), every other pointer a live local of the size named, and lent memory is
    // read only until the next call on its engine, as each read below notes.
    unsafe {
        let mut cfg = ptr::null_mut();
        assert_eq!(hz_config_new(7, 2, 4096, 64, &mut cfg), HZ_OK);
        let mut e = ptr::null_mut();
        assert_eq!(hz_engine_new(cfg, &mut e), HZ_OK);
        hz_config_free(cfg);
        let mut p = ptr::null_mut();
        assert_eq!(hz_engine_take_producer(e, 0, &mut p), HZ_OK);
        let h = |seq: u64| EventHeader { pos: seq, seq, ts_ns: seq, origin: 0, kind: KIND_DATA, flags: 0 };
        let mut buf: *mut u8 = ptr::null_mut();
        assert_eq!(hz_producer_commit(p, &h(1)), HZ_ERR_STATE, "nothing reserved");
        assert_eq!(hz_producer_cancel(p), HZ_ERR_STATE);
        assert_eq!(hz_producer_reserve(p, 65, &mut buf), HZ_ERR_TOO_LARGE);
        assert_eq!(hz_producer_reserve(p, 8, ptr::null_mut()), HZ_ERR_NULL);
        assert_eq!(hz_producer_reserve(p, 8, &mut buf), HZ_OK);
        // SAFETY: 8 writable bytes, the caller's until commit.
        ptr::copy_nonoverlapping(1u64.to_le_bytes().as_ptr(), buf, 8);
        // Every other write is refused while the record is lent out.
        assert_eq!(hz_producer_push(p, &h(9), ptr::null(), 0), HZ_ERR_STATE);
        let mut other = ptr::null_mut();
        assert_eq!(hz_producer_reserve(p, 8, &mut other), HZ_ERR_STATE);
        assert_eq!(hz_producer_commit(p, ptr::null()), HZ_ERR_NULL, "stays open");
        assert_eq!(hz_producer_commit(p, &h(1)), HZ_OK);
        // A cancelled reservation publishes nothing.
        assert_eq!(hz_producer_reserve(p, 8, &mut buf), HZ_OK);
        // SAFETY: as above.
        ptr::write_bytes(buf, 0xee, 8);
        assert_eq!(hz_producer_cancel(p), HZ_OK);
        assert_eq!(hz_producer_reserve(p, 0, &mut buf), HZ_OK);
        assert!(buf.is_null(), "no payload");
        assert_eq!(hz_producer_commit(p, &h(2)), HZ_OK);
        let empty = blank_view();
        let mut views = [empty; 4];
        let mut n = 0;
        assert_eq!(hz_engine_poll_views(e, views.as_mut_ptr(), 4, &mut n, ptr::null_mut()), HZ_OK);
        assert_eq!(n, 2);
        // SAFETY: lent until the next call.
        let first =
            ((*views[0].header).seq, std::slice::from_raw_parts(views[0].payload, views[0].payload_len));
        assert_eq!(first, (1, &1u64.to_le_bytes()[..]));
        // SAFETY: as above.
        assert_eq!(((*views[1].header).seq, views[1].payload_len), (2, 0));
        assert_eq!(hz_producer_error_count(p), 7, "each refusal counted");
        // Freeing a producer with a reservation open cancels it.
        assert_eq!(hz_producer_reserve(p, 8, &mut buf), HZ_OK);
        hz_producer_free(p);
        hz_engine_free(e);
    }
}

#[test]
fn next_lends_events_without_copying_until_the_next_call() {
    // SAFETY: the C contract (crate docs): every handle passed is live (or NULL where that
    // is the point), every other pointer a live local of the size named, and lent memory is
    // read only until the next call on its engine, as each read below notes.
    unsafe {
        let mut cfg = ptr::null_mut();
        // A small ring: 4 KiB, so the producer fills it while a view is lent.
        assert_eq!(hz_config_new(7, 2, 4096, 64, &mut cfg), HZ_OK);
        let mut e = ptr::null_mut();
        assert_eq!(hz_engine_new(cfg, &mut e), HZ_OK);
        hz_config_free(cfg);
        let mut p = ptr::null_mut();
        assert_eq!(hz_engine_take_producer(e, 0, &mut p), HZ_OK);
        let mut view = hz_event_view { stream: 9, ..blank_view() };
        assert_eq!(hz_engine_next(e, &mut view, ptr::null_mut()), HZ_EMPTY);
        assert_eq!(view.stream, 9, "untouched on error");
        let push = |seq: u64| {
            let h = EventHeader { pos: seq, seq, ts_ns: seq, origin: 0, kind: KIND_DATA, flags: 0 };
            hz_producer_push(p, &h, seq.to_le_bytes().as_ptr(), 8)
        };
        assert_eq!(push(1), HZ_OK);
        assert_eq!(hz_engine_next(e, &mut view, ptr::null_mut()), HZ_OK);
        // SAFETY: the view is valid until the next call on the engine.
        let (seq, payload) = ((*view.header).seq, std::slice::from_raw_parts(view.payload, view.payload_len));
        assert_eq!((view.stream, seq, payload), (0, 1, &1u64.to_le_bytes()[..]));
        // Fill the ring: the lent record's space must not be reused while it is lent.
        let mut seq = 2;
        while push(seq) == HZ_OK {
            seq += 1;
        }
        assert!(seq > 20, "the ring took {seq} events");
        // SAFETY: still lent: no call on the engine since `hz_engine_next` returned it.
        let lent = std::slice::from_raw_parts(view.payload, view.payload_len);
        assert_eq!(lent, &1u64.to_le_bytes()[..]);
        // Each next call hands out the following event, and frees the one before.
        for want in 2..seq {
            assert_eq!(hz_engine_next(e, &mut view, ptr::null_mut()), HZ_OK);
            // SAFETY: valid until the next call.
            assert_eq!((*view.header).seq, want);
        }
        assert_eq!(push(seq), HZ_OK, "space came back");
        hz_producer_free(p);
        hz_engine_free(e);
    }
}

#[test]
fn poll_views_lends_a_batch_until_the_next_call() {
    // SAFETY: the C contract (crate docs): every handle passed is live (or NULL where that
    // is the point), every other pointer a live local of the size named, and lent memory is
    // read only until the next call on its engine, as each read below notes.
    unsafe {
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
        let empty = blank_view();
        let mut views = [empty; 16];
        let mut n = 99;
        assert_eq!(hz_engine_poll_views(e, views.as_mut_ptr(), 16, &mut n, ptr::null_mut()), HZ_OK);
        assert_eq!(n, 0);
        for seq in 1..=10 {
            assert_eq!(push(seq), HZ_OK);
        }
        assert_eq!(hz_engine_poll_views(e, views.as_mut_ptr(), 16, &mut n, ptr::null_mut()), HZ_OK);
        assert_eq!(n, 10);
        // The producer fills the ring; the ten lent records must not be overwritten.
        let mut seq = 11;
        while push(seq) == HZ_OK {
            seq += 1;
        }
        for (i, v) in views[..n].iter().enumerate() {
            // SAFETY: lent until the next call on the engine.
            let (h, payload) = (*v.header, std::slice::from_raw_parts(v.payload, v.payload_len));
            assert_eq!(h.seq, i as u64 + 1);
            assert_eq!(payload, &(i as u64 + 1).to_le_bytes()[..]);
        }
        // The next call frees them and lends the following batch.
        let mut want = 11;
        while want < seq {
            assert_eq!(hz_engine_poll_views(e, views.as_mut_ptr(), 16, &mut n, ptr::null_mut()), HZ_OK);
            assert!(n > 0);
            for v in &views[..n] {
                // SAFETY: lent until the next call.
                assert_eq!((*v.header).seq, want);
                want += 1;
            }
        }
        assert_eq!(push(seq), HZ_OK, "space came back");
        assert_eq!(hz_engine_poll_views(e, ptr::null_mut(), 4, &mut n, ptr::null_mut()), HZ_ERR_NULL);
        hz_producer_free(p);
        hz_engine_free(e);
    }
}

/// A gap filled from a staged window: those events are handed out from copies, in order with
/// the lent ones, by both pull forms.
#[test]
fn gap_fills_come_through_the_views_in_order() {
    // SAFETY: the C contract (crate docs): every handle passed is live (or NULL where that
    // is the point), every other pointer a live local of the size named, and lent memory is
    // read only until the next call on its engine, as each read below notes.
    unsafe {
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
            let empty = blank_view();
            let mut views = [empty; 16];
            let mut n = 0;
            // The first poll stages stream 1.
            assert_eq!(hz_engine_poll_views(e, views.as_mut_ptr(), 16, &mut n, ptr::null_mut()), HZ_OK);
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
                        hz_engine_poll_views(e, views.as_mut_ptr(), 16, &mut n, ptr::null_mut()),
                        HZ_OK
                    );
                } else {
                    n = usize::from(hz_engine_next(e, &mut views[0], ptr::null_mut()) == HZ_OK);
                }
                for v in &views[..n] {
                    // SAFETY: lent until the next call.
                    let (seq, payload) =
                        ((*v.header).seq, std::slice::from_raw_parts(v.payload, v.payload_len));
                    assert_eq!(payload, &seq.to_le_bytes()[..], "payload of {seq}");
                    got.push((seq, v.stream));
                }
            }
            assert_eq!(got, [(1, 0), (2, 0), (3, 1), (4, 1), (5, 0)], "batch {batch}");
            let mut st = hz_stats { struct_size: std::mem::size_of::<hz_stats>(), ..hz_stats::default() };
            assert_eq!(hz_engine_stats(e, &mut st), HZ_OK);
            assert_eq!((st.gap_filled, st.delivered), (2, 5));
            hz_producer_free(p0);
            hz_producer_free(p1);
            hz_engine_free(e);
        }
    }
}

/// The thread's `hz_last_error` as a Rust string.
fn last_error() -> String {
    // SAFETY: a thread-local NUL-terminated string, read before the next call.
    unsafe { CStr::from_ptr(hz_last_error()) }.to_str().unwrap().to_owned()
}

/// A C message (a handle's last error) as a Rust string.
///
/// # Safety
/// `m` is a NUL-terminated string valid for the call.
unsafe fn text(m: *const std::ffi::c_char) -> String {
    // SAFETY: per this function's contract.
    unsafe { CStr::from_ptr(m) }.to_str().unwrap().to_owned()
}

fn counters_blank() -> hz_pool_counters {
    hz_pool_counters { struct_size: std::mem::size_of::<hz_pool_counters>(), ..hz_pool_counters::default() }
}

fn demand_blank() -> hz_staging_demand {
    hz_staging_demand {
        struct_size: std::mem::size_of::<hz_staging_demand>(),
        ..hz_staging_demand::default()
    }
}

#[test]
fn pool_new_checks_its_arguments_and_settles_the_defaults() {
    // SAFETY: the C contract (crate docs): every handle passed is live (or NULL where that
    // is the point), every other pointer a live local of the size named.
    unsafe {
        let sentinel = ptr::without_provenance_mut::<hz_pool>(0x5EA1_F00D); // never dereferenced
        let mut p = sentinel;
        assert_eq!(hz_pool_new(1 << 20, 0, 0, ptr::null_mut()), HZ_ERR_NULL);
        assert!(last_error().contains("out is NULL"), "{}", last_error());
        // Capacity 0 and above the limit: the configuration error, naming the argument and the
        // limit; nothing written.
        assert_eq!(hz_pool_new(0, 0, 0, &mut p), HZ_ERR_CONFIG);
        assert!(last_error().contains("capacity_bytes 0 outside 1..=1125899906842624"), "{}", last_error());
        assert_eq!(hz_pool_new(HZ_MAX_POOL_BYTES + 1, 0, 0, &mut p), HZ_ERR_CONFIG);
        assert!(last_error().contains("HZ_MAX_POOL_BYTES"), "{}", last_error());
        assert_eq!(hz_pool_new(u64::MAX, 5, 5, &mut p), HZ_ERR_CONFIG);
        assert_eq!(p, sentinel, "out-parameters are written only on success");
        // The limit itself is a pool (a number, nothing allocated).
        assert_eq!(hz_pool_new(HZ_MAX_POOL_BYTES, 0, 0, &mut p), HZ_OK);
        let mut s = counters_blank();
        assert_eq!(hz_pool_stats(p, &mut s), HZ_OK);
        assert_eq!(s.capacity_bytes, HZ_MAX_POOL_BYTES);
        hz_pool_free(p);
        // 0 per engine: the capacity; 0 ttl: 100 ms; above the capacity: the capacity.
        for (per_engine, ttl, want) in
            [(0, 0, (1000, 100_000_000)), (5000, 7, (1000, 7)), (300, 0, (300, 100_000_000))]
        {
            let mut p = ptr::null_mut();
            assert_eq!(hz_pool_new(1000, per_engine, ttl, &mut p), HZ_OK);
            let mut s = counters_blank();
            assert_eq!(hz_pool_stats(p, &mut s), HZ_OK);
            assert_eq!((s.per_engine_max_bytes, s.bid_ttl_ns), want, "{per_engine} {ttl}");
            let stats = (s.struct_size, s.capacity_bytes, s.used_bytes, s.peak_used_bytes, s.grants);
            assert_eq!(stats, (std::mem::size_of::<hz_pool_counters>(), 1000, 0, 0, 0));
            assert_eq!((s.refusals, s.yields), (0, 0));
            // NULL pool: HZ_ERR_NULL; NULL out: HZ_ERR_NULL with the argument named.
            assert_eq!(hz_pool_stats(ptr::null(), &mut s), HZ_ERR_NULL);
            assert_eq!(text(hz_pool_last_error(p)), "");
            assert_eq!(hz_pool_stats(p, ptr::null_mut()), HZ_ERR_NULL);
            assert_eq!(text(hz_pool_last_error(p)), "out is NULL");
            hz_pool_free(p);
        }
        hz_pool_free(ptr::null_mut());
        assert_eq!(text(hz_pool_last_error(ptr::null())), "");
    }
}

/// The size-tag rule for the two new caller-filled structs, with a message that names the real
/// problem: a size below the first layout, an uninitialised one, one off the alignment.
#[test]
fn pool_stats_and_demand_sizes_name_the_real_problem() {
    // SAFETY: the C contract (crate docs): every handle passed is live, every other pointer a
    // live local at least as large as the `struct_size` it carries.
    unsafe {
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct Later<T> {
            known: T,
            added: [u64; 3],
        }
        let mut pool = ptr::null_mut();
        assert_eq!(hz_pool_new(4096, 0, 0, &mut pool), HZ_OK);
        let mut cfg = ptr::null_mut();
        assert_eq!(hz_config_new(7, 2, 1 << 16, 64, &mut cfg), HZ_OK);
        let mut e = ptr::null_mut();
        assert_eq!(hz_engine_new(cfg, &mut e), HZ_OK);
        hz_config_free(cfg);
        let ps = std::mem::size_of::<hz_pool_counters>();
        let ds = std::mem::size_of::<hz_staging_demand>();
        // (struct_size, what the message must say), for each struct.
        let cases = |name: &str, size: usize| {
            [
                (8, format!("out->struct_size 8 is below the first {name} layout ({size} bytes)")),
                (size - 8, format!("below the first {name} layout")),
                (5000, "above 4096 bytes (not initialised?)".to_owned()),
                (size + 4, format!("not a multiple of {name}'s alignment (8)")),
            ]
        };
        for (given, want) in cases("hz_pool_counters", ps) {
            let mut s = Later {
                known: hz_pool_counters { struct_size: given, grants: 5, ..counters_blank() },
                added: [7; 3],
            };
            assert_eq!(hz_pool_stats(pool, ptr::from_mut(&mut s).cast()), HZ_ERR_INVALID, "{given}");
            let m = text(hz_pool_last_error(pool));
            assert!(m.contains(&want) && m.contains("sizeof(hz_pool_counters)"), "{given}: {m}");
            assert_eq!((s.known.grants, s.added), (5, [7; 3]), "nothing written");
        }
        for (given, want) in cases("hz_staging_demand", ds) {
            let mut d = Later {
                known: hz_staging_demand { struct_size: given, wanted_streams: 5, ..demand_blank() },
                added: [7; 3],
            };
            assert_eq!(hz_engine_staging_demand(e, ptr::from_mut(&mut d).cast()), HZ_ERR_INVALID, "{given}");
            let m = text(hz_engine_last_error(e));
            assert!(m.contains(&want) && m.contains("sizeof(hz_staging_demand)"), "{given}: {m}");
            assert_eq!((d.known.wanted_streams, d.added), (5, [7; 3]), "nothing written");
        }
        // A later header's larger struct: filled, the rest zeroed, struct_size kept.
        let later = std::mem::size_of::<Later<hz_pool_counters>>();
        let mut s =
            Later { known: hz_pool_counters { struct_size: later, ..counters_blank() }, added: [7; 3] };
        assert_eq!(hz_pool_stats(pool, ptr::from_mut(&mut s).cast()), HZ_OK);
        assert_eq!((s.known.struct_size, s.known.capacity_bytes, s.added), (later, 4096, [0; 3]));
        let later = std::mem::size_of::<Later<hz_staging_demand>>();
        let mut d = Later {
            known: hz_staging_demand { struct_size: later, wanted_streams: 5, ..demand_blank() },
            added: [7; 3],
        };
        assert_eq!(hz_engine_staging_demand(e, ptr::from_mut(&mut d).cast()), HZ_OK);
        assert_eq!((d.known.struct_size, d.known.wanted_streams, d.added), (later, 0, [0; 3]));
        // NULL engine, NULL out.
        let mut d = demand_blank();
        assert_eq!(hz_engine_staging_demand(ptr::null(), &mut d), HZ_ERR_NULL);
        assert_eq!(hz_engine_staging_demand(e, ptr::null_mut()), HZ_ERR_NULL);
        assert_eq!(text(hz_engine_last_error(e)), "out is NULL");
        hz_engine_free(e);
        hz_pool_free(pool);
    }
}

#[test]
fn pool_cold_cost_and_spread_setters_round_trip() {
    // SAFETY: the C contract (crate docs): every handle passed is live (or NULL where that
    // is the point); the configuration is read back through its Rust inside.
    unsafe {
        assert_eq!(hz_config_set_pool(ptr::null_mut(), ptr::null()), HZ_ERR_NULL);
        assert_eq!(hz_config_set_cold_switch_cost(ptr::null_mut(), 5), HZ_ERR_NULL);
        assert_eq!(hz_config_set_spread(ptr::null_mut(), 5, 500), HZ_ERR_NULL);
        let mut cfg = ptr::null_mut();
        assert_eq!(hz_config_new(7, 2, 1 << 16, 64, &mut cfg), HZ_OK);
        let c = &*cfg;
        assert!(c.cfg.staging_pool.is_none());
        assert_eq!(
            (c.cfg.cold_switch_cost_ns, c.cfg.spread),
            (100_000_000, harmonizer_core::engine::Spread { max_ns: 0, fraction: 0.5 })
        );
        // Spread: permille 0 ..= 1000; anything above refused with the value named, the previous
        // setting kept.
        assert_eq!(hz_config_set_spread(cfg, 2_000_000, 250), HZ_OK);
        assert_eq!((*cfg).cfg.spread, harmonizer_core::engine::Spread { max_ns: 2_000_000, fraction: 0.25 });
        for bad in [1001, u32::MAX] {
            assert_eq!(hz_config_set_spread(cfg, 9, bad), HZ_ERR_INVALID);
            let m = text(hz_config_last_error(cfg));
            assert!(m.contains(&format!("fraction_permille {bad}")) && m.contains("0 ..= 1000"), "{m}");
            assert_eq!(
                (*cfg).cfg.spread,
                harmonizer_core::engine::Spread { max_ns: 2_000_000, fraction: 0.25 }
            );
        }
        assert_eq!(hz_config_set_spread(cfg, 0, 1000), HZ_OK);
        assert_eq!((*cfg).cfg.spread, harmonizer_core::engine::Spread { max_ns: 0, fraction: 1.0 });
        assert_eq!(hz_config_set_cold_switch_cost(cfg, 0), HZ_OK);
        assert_eq!(hz_config_set_cold_switch_cost(cfg, u64::MAX), HZ_OK);
        assert_eq!((*cfg).cfg.cold_switch_cost_ns, u64::MAX);
        // The pool: the configuration and each engine hold their own reference.
        let mut pool = ptr::null_mut();
        assert_eq!(hz_pool_new(10_000, 0, 0, &mut pool), HZ_OK);
        let inner = std::sync::Arc::clone(&(*pool).pool);
        assert_eq!(hz_config_set_pool(cfg, pool), HZ_OK);
        assert!((*cfg).cfg.staging_pool.as_ref().is_some_and(|p| std::sync::Arc::ptr_eq(p, &inner)));
        hz_pool_free(pool);
        assert_eq!(std::sync::Arc::strong_count(&inner), 2, "the configuration's and this test's");
        let mut e = ptr::null_mut();
        assert_eq!(hz_engine_new(cfg, &mut e), HZ_OK);
        assert_eq!(std::sync::Arc::strong_count(&inner), 3);
        assert_eq!(hz_config_set_pool(cfg, ptr::null()), HZ_OK, "NULL: no pool");
        assert!((*cfg).cfg.staging_pool.is_none());
        hz_config_free(cfg);
        assert_eq!(std::sync::Arc::strong_count(&inner), 2, "the engine keeps it");
        hz_engine_free(e);
        assert_eq!(std::sync::Arc::strong_count(&inner), 1);
    }
}

unsafe extern "C" fn read_clock(user: *mut c_void) -> u64 {
    // SAFETY: the test passes the pointer of a `Cell<u64>` that outlives the engine, set only
    // between calls on the same thread.
    unsafe { *(user as *const u64) }
}

/// Two engines built with one pool sized for one window (100 records of 8 + 32 + 64 bytes
/// before any delivery): the first to ask stages, the second is refused and says so in its
/// demand; the pool handle freed first, the engines go on, and the bytes move when the holder
/// goes. docs/staging.md; the Rust version is crates/harmonizer-core/tests/staging_pool.rs.
#[test]
fn engines_share_a_pool_and_report_their_demand() {
    const WINDOW: u64 = 100 * 104;
    // SAFETY: the C contract (crate docs): every handle passed is live (or NULL where that
    // is the point), every other pointer a live local of the size named; `now` outlives the
    // engines that read it.
    unsafe {
        let now = std::cell::Cell::new(1_000u64);
        let mut pool = ptr::null_mut();
        assert_eq!(hz_pool_new(WINDOW, 0, 0, &mut pool), HZ_OK);
        let engine = |recipient, cost_ns| {
            let mut cfg = ptr::null_mut();
            assert_eq!(hz_config_new(recipient, 2, 1 << 16, 64, &mut cfg), HZ_OK);
            assert_eq!(hz_config_set_pool(cfg, pool), HZ_OK);
            assert_eq!(hz_config_set_cold_switch_cost(cfg, cost_ns), HZ_OK);
            assert_eq!(hz_config_set_clock(cfg, Some(read_clock), now.as_ptr().cast()), HZ_OK);
            let mut e = ptr::null_mut();
            assert_eq!(hz_engine_new(cfg, &mut e), HZ_OK);
            hz_config_free(cfg);
            e
        };
        let (a, b) = (engine(1, 200_000_000), engine(2, 100_000_000));
        let demand = |e| {
            let mut d = demand_blank();
            assert_eq!(hz_engine_staging_demand(e, &mut d), HZ_OK);
            d
        };
        let poll = |e| {
            let mut n = 0usize;
            let mut delivered = 0u64;
            assert_eq!(
                hz_engine_poll(e, 64, Some(count_event), None, ptr::from_mut(&mut delivered).cast(), &mut n),
                HZ_OK
            );
            delivered
        };
        let d = demand(a);
        assert_eq!(
            (d.wanted_streams, d.wanted_bytes, d.urgency, d.struct_size),
            (0, 0, 0.0, std::mem::size_of::<hz_staging_demand>())
        );
        // A asks for stream 1 and gets the whole pool.
        assert_eq!(hz_engine_arm(a, 1), HZ_OK);
        poll(a);
        let d = demand(a);
        assert_eq!((d.wanted_streams, d.staged_streams, d.refused_streams, d.deferred_streams), (1, 1, 0, 0));
        assert_eq!(
            (d.wanted_bytes, d.granted_bytes, d.pool_bytes, d.next_start_ns),
            (WINDOW, WINDOW, WINDOW, 0)
        );
        assert_eq!(d.urgency, 2e8, "probability 1 × its cold switch cost");
        // B asks too: no room; refused, and it says so.
        assert_eq!(hz_engine_arm(b, 1), HZ_OK);
        poll(b);
        let d = demand(b);
        assert_eq!((d.wanted_streams, d.staged_streams, d.refused_streams, d.pool_bytes), (1, 0, 1, 0));
        assert_eq!((d.wanted_bytes, d.urgency), (WINDOW, 1e8));
        let mut s = counters_blank();
        assert_eq!(hz_pool_stats(pool, &mut s), HZ_OK);
        assert_eq!(
            (s.used_bytes, s.peak_used_bytes, s.grants, s.refusals, s.yields),
            (WINDOW, WINDOW, 1, 1, 0)
        );
        // B's bid (1e8) is not worth twice A's grant (2e8): A keeps it.
        now.set(now.get() + 1_000_000);
        poll(a);
        assert_eq!(demand(a).pool_bytes, WINDOW);
        // The handle goes first; the engines keep the pool and go on delivering.
        hz_pool_free(pool);
        let mut p = ptr::null_mut();
        assert_eq!(hz_engine_take_producer(b, 0, &mut p), HZ_OK);
        for seq in 1..=3u64 {
            let h = EventHeader { pos: seq, seq, ts_ns: seq, origin: 0, kind: KIND_DATA, flags: 0 };
            assert_eq!(hz_producer_push(p, &h, b"abcd".as_ptr(), 4), HZ_OK);
        }
        assert_eq!(poll(b), 3);
        assert_eq!(demand(b).refused_streams, 1);
        // A goes: its bytes come back to the pool, and B's next plan takes them.
        hz_engine_free(a);
        now.set(now.get() + 1_000_000);
        poll(b);
        let d = demand(b);
        assert_eq!((d.staged_streams, d.refused_streams), (1, 0));
        // Priced at the mean frame delivered now: 8 + 32 + 4 → 48 bytes a record.
        assert_eq!((d.pool_bytes, d.granted_bytes), (100 * 48, 100 * 48));
        hz_producer_free(p);
        hz_engine_free(b);
    }
}

/// A spread start through the C API: an ANNOUNCE (switch expected in 4 s) on a recipient with
/// `hz_config_set_spread(1 s, 500‰)` waits for its place, reported in the demand, then starts.
#[test]
fn spread_starts_wait_for_their_place() {
    // SAFETY: the C contract (crate docs): every handle passed is live, every other pointer a
    // live local of the size named; `now` outlives the engine that reads it.
    unsafe {
        let now = std::cell::Cell::new(1_000u64);
        let mut cfg = ptr::null_mut();
        assert_eq!(hz_config_new(0x5EED, 2, 1 << 16, 64, &mut cfg), HZ_OK);
        assert_eq!(hz_config_set_spread(cfg, 1_000_000_000, 500), HZ_OK);
        assert_eq!(hz_config_set_clock(cfg, Some(read_clock), now.as_ptr().cast()), HZ_OK);
        let mut e = ptr::null_mut();
        assert_eq!(hz_engine_new(cfg, &mut e), HZ_OK);
        hz_config_free(cfg);
        let mut p = ptr::null_mut();
        assert_eq!(hz_engine_take_producer(e, 0, &mut p), HZ_OK);
        let f = hz_flip { action: HZ_FLIP_ANNOUNCE, expected_in_ns: 4_000_000_000, ..switch_flip(1, 5) };
        let mut rec = [0u8; 256];
        let mut w = 0;
        assert_eq!(hz_flip_encode(&f, rec.as_mut_ptr(), rec.len(), &mut w), HZ_OK);
        let fh = EventHeader { pos: 1, seq: 0, ts_ns: 1, origin: 0, kind: KIND_FLIP, flags: 0 };
        assert_eq!(hz_producer_push(p, &fh, rec.as_ptr(), w), HZ_OK);
        let poll = || {
            let mut n = 0usize;
            let mut count = 0u64;
            assert_eq!(
                hz_engine_poll(e, 64, Some(count_event), None, ptr::from_mut(&mut count).cast(), &mut n),
                HZ_OK
            );
            let mut d = demand_blank();
            assert_eq!(hz_engine_staging_demand(e, &mut d), HZ_OK);
            d
        };
        let d = poll();
        assert_eq!((d.wanted_streams, d.deferred_streams, d.staged_streams, d.refused_streams), (1, 1, 0, 0));
        assert!(d.next_start_ns > 1_000 && d.next_start_ns <= 1_000 + 1_000_000_000, "{d:?}");
        let start = d.next_start_ns;
        now.set(start - 1);
        assert_eq!(poll().deferred_streams, 1, "not before its place");
        now.set(start);
        let d = poll();
        assert_eq!((d.wanted_streams, d.deferred_streams, d.staged_streams, d.next_start_ns), (1, 0, 1, 0));
        hz_producer_free(p);
        hz_engine_free(e);
    }
}
