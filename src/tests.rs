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
