//! The C API call-sequence check the `c_api` fuzz target runs (`fuzz/`), here so the stable test
//! that replays its corpus (`tests/fuzz_corpus_c.rs`) runs the same code. Not API.
//!
//! Arbitrary bytes become a configuration (every setter, with values in and out of range, and
//! staging pools made with careless capacities, shared with the configuration and freed before
//! or after the engine) and then a sequence of calls on one engine, its producers and its pool,
//! as a careless C program would make them: NULL pointers, lengths that do not match, struct
//! sizes too small, too large and misaligned, calls in the wrong state (an open reservation, a
//! commit with none), unknown enum values and stream ids, flips encoded and decoded with short
//! buffers. Every pointer the sequence passes is NULL or valid for what it says, as the C
//! contract requires (the fuzzer attacks values, not memory safety the caller owns). Checks:
//! nothing panics (no call returns `HZ_ERR_PANIC`), every status is one the library defines,
//! every lent payload is readable in full, events of each origin come out in order, a pool's
//! `used_bytes` stays within its capacity, and a staging demand adds up.

use core::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::*;
use harmonizer_core::event::EventHeader as hz_event_header;

static NOW: AtomicU64 = AtomicU64::new(1);

extern "C" fn clock(_: *mut c_void) -> u64 {
    NOW.load(Ordering::Relaxed)
}

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes([self.u8()?, self.u8()?, self.u8()?, self.u8()?]))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from(self.u32()?) | u64::from(self.u32()?) << 32)
    }
    /// A size: small, at a boundary, or absurd.
    fn size(&mut self) -> Option<usize> {
        let b = self.u8()?;
        Some(match b % 8 {
            0..=3 => usize::from(self.u8()?),
            4 => usize::from(self.u8()?) << 8,
            5 => usize::MAX - usize::from(b),
            6 => 1 << (b % 48),
            _ => self.u64()? as usize,
        })
    }
    /// A `struct_size` to try on a struct whose real size is `real` and first layout `first`.
    fn struct_size(&mut self, real: usize, first: usize) -> Option<usize> {
        let b = self.u8()?;
        Some(match b % 8 {
            0..=3 => real,
            4 => first,
            5 => real + 8 * usize::from(b >> 3), // a newer caller's larger struct
            6 => usize::from(b) * 3,             // short or misaligned
            _ => 4096 + usize::from(b),          // over the 4 KiB bound
        })
    }
}

fn ok_status(s: hz_status) -> hz_status {
    assert_ne!(s, HZ_ERR_PANIC, "a call panicked inside the library");
    assert!(s <= HZ_GOT_NOTICE || (HZ_ERR_FIRST..=HZ_ERR_RING_CORRUPT).contains(&s), "unknown status {s}");
    s
}

/// Per-origin order check of what the engine hands out.
#[derive(Default)]
struct Order {
    last: std::collections::HashMap<u32, u64>,
}

impl Order {
    /// # Safety
    /// `header` valid, `payload` valid for `len` bytes (or NULL with 0).
    unsafe fn see(&mut self, header: *const hz_event_header, payload: *const u8, len: usize) {
        // SAFETY: per this function's contract (the library's, for what it lends).
        let h = unsafe { &*header };
        if len > 0 {
            // SAFETY: as above: every lent byte must be readable.
            let p = unsafe { core::slice::from_raw_parts(payload, len) };
            core::hint::black_box(p.iter().fold(0u8, |a, b| a.wrapping_add(*b)));
        }
        if h.kind == HZ_KIND_DATA {
            if let Some(prev) = self.last.insert(h.origin, h.seq) {
                assert!(h.seq > prev, "origin {}: seq {} after {prev}", h.origin, h.seq);
            }
        }
    }
}

unsafe extern "C" fn on_event(
    user: *mut c_void,
    _stream: u32,
    h: *const hz_event_header,
    p: *const u8,
    len: usize,
) {
    // SAFETY: `user` is the `Order` passed to the poll; the rest the library lends for the call.
    unsafe { (*user.cast::<Order>()).see(h, p, len) }
}

unsafe extern "C" fn on_notice(_user: *mut c_void, n: *const hz_notice) {
    // SAFETY: the library lends a valid notice for the call.
    core::hint::black_box(unsafe { (*n).kind });
}

/// The check (see the module docs).
pub fn c_api(data: &[u8]) {
    let mut inp = Input(data);
    run(&mut inp);
}

// Every unsafe call below passes pointers that are NULL, a live handle made here, or a local
// buffer at least as large as the length passed with it ("see `c_api`").
fn run(inp: &mut Input<'_>) -> Option<()> {
    NOW.store(1, Ordering::Relaxed);
    let streams = u32::from(inp.u8()? % 4);
    let capacity = if inp.u8()? & 1 == 0 { 1 << 14 } else { inp.size()? };
    let max_payload = if inp.u8()? & 1 == 0 { 64 } else { inp.size()? };
    let mut cfg: *mut hz_config = core::ptr::null_mut();
    // SAFETY: see `c_api`.
    if ok_status(unsafe { hz_config_new(7, streams, capacity, max_payload, &mut cfg) }) != HZ_OK {
        return None;
    }
    // Freed on every way out, the early ones (`?` at the input's end) included.
    struct FreeConfig(*mut hz_config);
    impl Drop for FreeConfig {
        fn drop(&mut self) {
            // SAFETY: the config made above, freed once.
            unsafe { hz_config_free(self.0) };
        }
    }
    let _free = FreeConfig(cfg);
    // Pool handles made by the setters, freed on every way out (after the engine, or at once
    // when the setter said so: the configuration and the engine keep the pool alive).
    struct FreePools(Vec<*mut hz_pool>);
    impl Drop for FreePools {
        fn drop(&mut self) {
            for &p in &self.0 {
                // SAFETY: pools made by `hz_pool_new` here, each freed once.
                unsafe { hz_pool_free(p) };
            }
        }
    }
    let mut pools = FreePools(Vec::new());
    // Setters, then the engine.
    for _ in 0..inp.u8()? % 8 {
        let (a, b) = (inp.u32()?, inp.u64()?);
        // SAFETY: see `c_api`.
        let s = unsafe {
            match inp.u8()? % 16 {
                0 => hz_config_set_initial_stream(cfg, a % 5),
                1 => hz_config_set_max_origins(cfg, a),
                2 => hz_config_set_gap_policy(cfg, a % 4),
                3 => hz_config_set_recovery(cfg, a % 8, b, a & 1, a % 3),
                4 => hz_config_set_silence(cfg, b, a % 3),
                5 => hz_config_set_seq_mode(cfg, a % 3),
                6 => hz_config_set_staging_budget(cfg, b as usize),
                7 => hz_config_set_default_window(cfg, b as usize),
                8 => hz_config_set_keep_previous(cfg, a % 3),
                9 => hz_config_set_policy(cfg, a % 5),
                10 => hz_config_set_preset(cfg, a % 5),
                12 => {
                    // A pool of a capacity around a window (or 0, or beyond the limit), a
                    // per-engine cap and a bid lifetime from `a`, shared with the configuration.
                    let capacity = match a % 4 {
                        0 => b % (1 << 16),
                        1 => 0,
                        2 => HZ_MAX_POOL_BYTES + (b % 2),
                        _ => b,
                    };
                    let mut pool = core::ptr::null_mut();
                    let made = ok_status(hz_pool_new(
                        capacity,
                        u64::from(a >> 8) * 64,
                        u64::from(a >> 20),
                        &mut pool,
                    ));
                    if made == HZ_OK {
                        let s = hz_config_set_pool(cfg, pool);
                        if a & 4 == 0 {
                            pools.0.push(pool);
                        } else {
                            hz_pool_free(pool);
                        }
                        s
                    } else {
                        made
                    }
                }
                // Verification (small memories and maps; refused sizes and policies too) or a
                // probation.
                11 => match a % 6 {
                    // Learning: small rings, online settings of any value and size.
                    4 | 5 => {
                        let mut o = hz_online_config {
                            struct_size: size_of::<hz_online_config>(),
                            ..Default::default()
                        };
                        hz_online_config_default(&mut o);
                        if a & 64 != 0 {
                            o.learning_rate = f64::from_bits(b);
                            o.max_drift = f64::from(a >> 8);
                        }
                        if a & 128 != 0 {
                            o.struct_size = (b % 80) as usize;
                        }
                        let online =
                            if a % 6 == 4 { core::ptr::null() } else { &o as *const hz_online_config };
                        hz_config_set_learning(cfg, b % (1 << 30), ((b >> 32) % 300) as usize, online)
                    }
                    0 => hz_config_set_verify(
                        cfg,
                        (b % 600) as usize,
                        ((b >> 16) % 70) as usize,
                        (a >> 2) % 4,
                        b >> 32,
                    ),
                    1 => hz_config_set_verify(
                        cfg,
                        HZ_MAX_VERIFY_RECORDS + (b % 2) as usize,
                        HZ_MAX_MAP_RUNS + 1,
                        1,
                        0,
                    ),
                    3 => hz_config_set_dry_run_switches(cfg, a >> 2),
                    _ => hz_config_set_probation(
                        cfg,
                        b % (1 << 34),
                        u64::from(a >> 4) % 3,
                        u64::from(a >> 6) % 4,
                        b % 3,
                        b % 5,
                        a & 8,
                    ),
                },
                13 => hz_config_set_spread(cfg, b % (1 << 32), a % 1200),
                14 => hz_config_set_cold_switch_cost(cfg, b),
                15 => match a % 8 {
                    0 => hz_config_set_pool(cfg, core::ptr::null()),
                    1 => hz_pool_new(b, 0, 0, core::ptr::null_mut()),
                    2 => hz_config_set_spread(core::ptr::null_mut(), b, a),
                    3 => hz_pool_stats(core::ptr::null(), core::ptr::null_mut()),
                    // Small logs (the fuzzer counts a large allocation as a crash), and the
                    // refused size.
                    4 => hz_config_set_identity_records(cfg, (b % 300) as usize),
                    5 => hz_config_set_identity_records(cfg, HZ_MAX_IDENTITIES + 1 + (b % 2) as usize),
                    // Small stores; the refused sizes.
                    6 => hz_config_set_conflation(cfg, (b % 64) as usize, ((b >> 8) % 128) as usize),
                    _ => hz_config_set_conflation(
                        cfg,
                        HZ_MAX_CONFLATION_KEYS + (b % 2) as usize,
                        HZ_MAX_CONFLATION_PAYLOAD + 1,
                    ),
                },
                _ => hz_config_set_initial_stream(core::ptr::null_mut(), a),
            }
        };
        ok_status(s);
    }
    let pool = pools.0.last().copied().unwrap_or(core::ptr::null_mut());
    // SAFETY: see `c_api`.
    ok_status(unsafe { hz_config_set_clock(cfg, Some(clock), core::ptr::null_mut()) });
    if capacity > 1 << 20 {
        // Large rings are refused or allocated fallibly (ffi-tests/api.c, `test_hostile_sizes`,
        // checks that path). Under the fuzzer a huge allocation is reported as a crash whatever
        // the library does with its failure, and rings of megabytes per input grew a 2-minute
        // run to 1.2 GB resident (ASan keeps freed memory a while): call sequences are the
        // point here, so stop at 1 MiB.
        return None;
    }
    let mut e: *mut hz_engine = core::ptr::null_mut();
    // SAFETY: see `c_api`.
    let made = ok_status(unsafe { hz_engine_new(cfg, &mut e) });
    if made != HZ_OK {
        return None;
    }
    let mut producers: Vec<*mut hz_producer> = Vec::new();
    for s in 0..streams + 1 {
        let mut p = core::ptr::null_mut();
        // SAFETY: see `c_api`. (Stream `streams` does not exist: refused.)
        if ok_status(unsafe { hz_engine_take_producer(e, s, &mut p) }) == HZ_OK {
            producers.push(p);
        }
    }
    let result = ops(inp, e, &producers, pool);
    for p in producers {
        // SAFETY: a producer taken above, freed once.
        unsafe { hz_producer_free(p) };
    }
    // SAFETY: the engine made above, freed once, after its producers.
    unsafe { hz_engine_free(e) };
    result
}

fn ops(
    inp: &mut Input<'_>,
    e: *mut hz_engine,
    producers: &[*mut hz_producer],
    pool: *mut hz_pool,
) -> Option<()> {
    let mut order = Order::default();
    let mut payload = [0u8; 512];
    // Large enough for any struct size the library accepts (4 KiB), eight times over, aligned.
    let mut scratch = vec![0u64; 8 * 4096 / 8 + 64];
    let mut notice_buf = vec![0u64; 4096 / 8 + 64];
    let mut seq = [0u64; 4];
    let mut reserved: Option<(usize, *mut u8, usize)> = None;
    while let Some(op) = inp.u8() {
        let p = producers
            .get(usize::from(op >> 5) % producers.len().max(1))
            .copied()
            .unwrap_or(core::ptr::null_mut());
        let pi = usize::from(op >> 5) % 4;
        // SAFETY: see `c_api` (every arm).
        let s = unsafe {
            match op % 16 {
                0..=3 => {
                    let origin = u32::from(inp.u8()? % 4);
                    let len = inp.size()?;
                    let step = u64::from(inp.u8()? % 3);
                    seq[pi] += step;
                    let h = hz_event_header {
                        pos: seq[pi] + 1,
                        seq: seq[pi],
                        ts_ns: NOW.load(Ordering::Relaxed),
                        origin,
                        kind: if op & 16 == 0 { HZ_KIND_DATA } else { u16::from(op) },
                        flags: 0,
                    };
                    // A length the buffer holds, or a NULL with any length.
                    if len <= payload.len() {
                        hz_producer_push(p, &h, payload.as_ptr(), len)
                    } else {
                        hz_producer_push(p, &h, core::ptr::null(), len)
                    }
                }
                4 => {
                    let n = usize::from(inp.u8()? % 8);
                    let headers: Vec<hz_event_header> = (0..n as u64)
                        .map(|i| hz_event_header {
                            pos: seq[pi] + i + 1,
                            seq: seq[pi] + i,
                            ts_ns: 0,
                            origin: 0,
                            kind: 0,
                            flags: 0,
                        })
                        .collect();
                    seq[pi] += n as u64;
                    let ptrs: Vec<*const u8> = (0..n).map(|_| payload.as_ptr()).collect();
                    let lens: Vec<usize> = (0..n).map(|i| (i * 37) % payload.len()).collect();
                    let mut pushed = 0;
                    hz_producer_push_batch(p, headers.as_ptr(), ptrs.as_ptr(), lens.as_ptr(), n, &mut pushed)
                }
                5 => {
                    let mut delivered = 0;
                    let max = usize::from(inp.u8()?);
                    let user = (&mut order as *mut Order).cast();
                    hz_engine_poll(e, max, Some(on_event), Some(on_notice), user, &mut delivered)
                }
                6 => {
                    let view_size =
                        inp.struct_size(size_of::<hz_event_view>(), size_of::<hz_event_view>())?;
                    let notice_size = inp.struct_size(size_of::<hz_notice>(), 8)?;
                    let view = scratch.as_mut_ptr().cast::<hz_event_view>();
                    (*view).struct_size = view_size;
                    let notice = notice_buf.as_mut_ptr().cast::<hz_notice>();
                    (*notice).struct_size = notice_size;
                    let s = hz_engine_next(e, view, notice);
                    if s == HZ_OK {
                        order.see((*view).header, (*view).payload, (*view).payload_len);
                    }
                    s
                }
                7 => {
                    let stride = inp.struct_size(size_of::<hz_event_view>(), size_of::<hz_event_view>())?;
                    let cap = usize::from(inp.u8()? % 9);
                    let stride_ok = stride.min(4096);
                    let views = scratch.as_mut_ptr().cast::<u8>();
                    for i in 0..cap {
                        views.add(i * stride_ok).cast::<usize>().write_unaligned(stride);
                    }
                    let notice = notice_buf.as_mut_ptr().cast::<hz_notice>();
                    (*notice).struct_size = size_of::<hz_notice>();
                    let mut n = 0;
                    let s = hz_engine_poll_views(e, views.cast(), cap, &mut n, notice);
                    if s == HZ_OK || s == HZ_GOT_NOTICE {
                        for i in 0..n {
                            let v = views.add(i * stride).cast::<hz_event_view>();
                            order.see((*v).header, (*v).payload, (*v).payload_len);
                        }
                    }
                    s
                }
                8 if op & 16 == 0 => {
                    let size = inp.struct_size(size_of::<hz_stats>(), 8)?;
                    let stats = scratch.as_mut_ptr().cast::<hz_stats>();
                    (*stats).struct_size = size;
                    hz_engine_stats(e, stats)
                }
                8 if op & 32 == 0 => {
                    let size = inp.struct_size(size_of::<hz_staging_demand>(), 8)?;
                    let demand = scratch.as_mut_ptr().cast::<hz_staging_demand>();
                    (*demand).struct_size = size;
                    let s = hz_engine_staging_demand(e, demand);
                    if s == HZ_OK {
                        let d = *demand;
                        assert!(d.staged_streams <= d.wanted_streams + 1, "{d:?}"); // + a gap's fill
                        assert!(d.deferred_streams + d.refused_streams <= d.wanted_streams, "{d:?}");
                        assert!(d.urgency >= 0.0, "{d:?}");
                    }
                    s
                }
                8 => {
                    // The last pool handle the setters kept (NULL when none: refused). The
                    // engine may share it, or a pool whose handle is gone, or none.
                    let size = inp.struct_size(size_of::<hz_pool_counters>(), 8)?;
                    let counters = scratch.as_mut_ptr().cast::<hz_pool_counters>();
                    (*counters).struct_size = size;
                    let s = hz_pool_stats(pool, counters);
                    if s == HZ_OK {
                        let c = *counters;
                        assert!(
                            c.used_bytes <= c.capacity_bytes && c.peak_used_bytes <= c.capacity_bytes,
                            "{c:?}"
                        );
                    }
                    s
                }
                9 => {
                    let stream = u32::from(inp.u8()?);
                    if op & 16 == 0 {
                        hz_engine_arm(e, stream % 5)
                    } else {
                        hz_engine_disarm(e, stream)
                    }
                }
                10 => {
                    let len = inp.size()?;
                    let mut out = core::ptr::null_mut();
                    let s = hz_producer_reserve(p, len, &mut out);
                    if s == HZ_OK {
                        reserved = Some((pi, out, len.min(1 << 16)));
                        if !out.is_null() {
                            core::ptr::write_bytes(out, 0xa5, len);
                        }
                    }
                    s
                }
                11 => {
                    seq[pi] += 1;
                    let h = hz_event_header {
                        pos: seq[pi] + 1,
                        seq: seq[pi],
                        ts_ns: 0,
                        origin: 0,
                        kind: 0,
                        flags: 0,
                    };
                    let s = if op & 16 == 0 { hz_producer_commit(p, &h) } else { hz_producer_cancel(p) };
                    if s == HZ_OK {
                        reserved = None;
                    }
                    s
                }
                12 => {
                    // Flip bytes: encoded from fuzz-chosen fields into a buffer of a chosen
                    // size, then decoded with a chosen length and id buffer.
                    let mut f = hz_flip { struct_size: size_of::<hz_flip>(), ..core::mem::zeroed() };
                    f.action = inp.u32()? % 6;
                    f.target = inp.u32()? % 5;
                    f.flip_id = inp.u64()?;
                    f.selector = inp.u32()? % 4;
                    f.basis_points = inp.u32()? % 12_000;
                    let ids = [1u64, 2, 3];
                    if op & 16 != 0 {
                        f.ids = ids.as_ptr();
                        f.ids_len = ids.len();
                    }
                    let cap = usize::from(inp.u8()?) * 2;
                    let mut written = 0;
                    let s = ok_status(hz_flip_encode(
                        &f,
                        payload.as_mut_ptr(),
                        cap.min(payload.len()),
                        &mut written,
                    ));
                    let len = if s == HZ_OK { written } else { usize::from(inp.u8()?) };
                    let mut out = hz_flip { struct_size: size_of::<hz_flip>(), ..core::mem::zeroed() };
                    let mut ids_out = [0u64; 4];
                    let ids_cap = usize::from(inp.u8()? % 5);
                    hz_flip_decode(
                        payload.as_ptr(),
                        len.min(payload.len()),
                        &mut out,
                        ids_out.as_mut_ptr(),
                        ids_cap,
                    )
                }
                13 => {
                    NOW.fetch_add(u64::from(inp.u8()?) * 1_000_000, Ordering::Relaxed);
                    let mut ready = 0;
                    hz_engine_wait(e, 0, &mut ready)
                }
                14 => {
                    if op & 16 == 0 {
                        hz_engine_retry_gap(e)
                    } else {
                        hz_engine_give_up_gap(e)
                    }
                }
                _ if op & 16 == 0 => {
                    let mut out = 0;
                    let origin = u32::from(inp.u8()?);
                    hz_engine_frontier(e, origin, &mut out)
                }
                // Verification's calls: the dry run, translation, the map, the audit line.
                _ => {
                    let (which, a, b) = (inp.u8()?, inp.u32()?, inp.u64()?);
                    match which % 8 {
                        5 => {
                            let mut rows = [hz_history_row {
                                t_ns: 0,
                                stream: 0,
                                label: 0,
                                n_features: 0,
                                reserved: 0,
                                features: [0.0; HZ_HISTORY_MAX_FEATURES],
                            }; 4];
                            let mut n = 0;
                            let cap = (a % 6) as usize;
                            let out = if cap == 5 { core::ptr::null_mut() } else { rows.as_mut_ptr() };
                            hz_engine_drain_history(e, out, cap.min(4), &mut n)
                        }
                        6 => {
                            let size =
                                inp.struct_size(size_of::<hz_learn_stats>(), size_of::<hz_learn_stats>())?;
                            let d = scratch.as_mut_ptr().cast::<hz_learn_stats>();
                            d.cast::<usize>().write(size);
                            hz_engine_learn_stats(e, d)
                        }
                        7 => {
                            let mut text = [0 as c_char; 4096];
                            let mut len = 0;
                            let cap = (b % 4097) as usize;
                            hz_engine_model_json(e, text.as_mut_ptr(), cap, &mut len)
                        }
                        0 => {
                            // In the scratch buffer, which holds any size the library accepts.
                            let size = inp.struct_size(size_of::<hz_dry_run>(), size_of::<hz_dry_run>())?;
                            let d = scratch.as_mut_ptr().cast::<hz_dry_run>();
                            d.cast::<usize>().write(size);
                            hz_engine_evaluate_switch(e, a % 6, (a >> 8) % 5, d)
                        }
                        1 => {
                            let (mut out, mut found) = (0u64, 0u32);
                            hz_engine_translate(e, a % 5, (a >> 8) % 5, b, &mut out, &mut found)
                        }
                        2 => {
                            let mut runs = [hz_map_run::default(); 8];
                            let mut n = 0;
                            let cap = (a % 10) as usize;
                            let out = if cap == 9 { core::ptr::null_mut() } else { runs.as_mut_ptr() };
                            hz_engine_position_map(e, out, cap.min(8), &mut n)
                        }
                        3 => hz_engine_position_map(e, core::ptr::null_mut(), 0, core::ptr::null_mut()),
                        _ => {
                            // A notice as a caller may hand it back: any kind, cause and size.
                            let mut n =
                                hz_notice::empty(if a & 1 == 0 { HZ_NOTICE_SWITCHED } else { a % 20 });
                            n.cause = (a >> 1) % 5;
                            n.has_matched = (a >> 4) & 1;
                            n.verified = b;
                            if which & 8 != 0 {
                                // (At most its own size: the library reads that much.)
                                n.struct_size = (usize::from(inp.u8()?) * 2).min(size_of::<hz_notice>());
                            }
                            let mut line = [0 as c_char; 300];
                            let mut len = 0;
                            let cap = (b % 301) as usize;
                            hz_switch_record_json(&n, b, line.as_mut_ptr(), cap, &mut len)
                        }
                    }
                }
            }
        };
        ok_status(s);
    }
    let _ = reserved;
    Some(())
}
