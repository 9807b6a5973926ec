//! The C API's cost next to the Rust API's (issue 5's goal: at least 0.8× the Rust API's
//! throughput), same run, same work.
//!
//! Group `ffi`, throughput in events, single-threaded: each iteration pushes 64 events of 32
//! payload bytes into stream 0 and polls them out in one batch, summing the seqs.
//! - `rust_api`: `StreamProducer::push` and `Engine::poll(64, &mut handler)`.
//! - `c_api_consumer`: the same pushes through the Rust producer, consumed by
//!   `hz_engine_poll(64, callback)`, the callback an `extern "C"` function: the calls a C
//!   consumer makes, through the same ABI (handle, status, the panic boundary, the callback's
//!   indirect call per event). This is issue 5's comparison: a C consumer polling in batches.
//! - `c_api_views`: the same feed, consumed by `hz_engine_poll_views(64)`: the events come
//!   back as an array of zero-copy views and the consumer's loop sums them, with no call per
//!   event (the batch form a C consumer uses when the callback's cost matters).
//! - `c_api`: pushes through `hz_producer_push` too: producer and consumer both in C.

use std::ffi::c_void;
use std::hint::black_box;
use std::ptr;

use criterion::{criterion_group, Criterion, Throughput};
use harmonizer::*;
use harmonizer_core::clock::MonotonicClock;
use harmonizer_core::engine::{Engine, EngineConfig, Handler, ManualStage, Notice};
use harmonizer_core::event::{EventHeader, KIND_DATA};
use harmonizer_core::ring::Record;

const N: u64 = 64;

fn header(seq: u64) -> EventHeader {
    EventHeader { pos: seq, seq, ts_ns: seq, origin: 0, kind: KIND_DATA, flags: 0 }
}

/// An engine and the producer of stream 0, made through the C API as in `rust_api`.
fn c_engine() -> (*mut hz_engine, *mut hz_producer) {
    let mut cfg = ptr::null_mut();
    let mut e = ptr::null_mut();
    let mut p = ptr::null_mut();
    // SAFETY: out-pointers to locals; each handle is used only after the call made it.
    unsafe {
        assert_eq!(hz_config_new(1, 2, 1 << 20, 64, &mut cfg), HZ_OK);
        assert_eq!(hz_engine_new(cfg, &mut e), HZ_OK);
        hz_config_free(cfg);
        assert_eq!(hz_engine_take_producer(e, 0, &mut p), HZ_OK);
    }
    (e, p)
}

struct Sum(u64);

impl Handler for Sum {
    fn event(&mut self, _stream: u32, r: &Record<'_>) {
        self.0 = self.0.wrapping_add(r.header.seq);
    }
    fn notice(&mut self, _: &Notice<'_>) {}
}

unsafe extern "C" fn sum(user: *mut c_void, _stream: u32, h: *const EventHeader, _p: *const u8, _n: usize) {
    // SAFETY: the bench passes a `*mut u64`, and the engine a valid header for the call.
    unsafe { *(user as *mut u64) = (*(user as *mut u64)).wrapping_add((*h).seq) };
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("ffi");
    g.throughput(Throughput::Elements(N));
    let payload = [7u8; 32];
    {
        let cfg = EngineConfig::new(1, 2, 1 << 20, 64);
        let (mut e, mut p) =
            Engine::with(cfg, Box::new(ManualStage), Box::new(MonotonicClock::new())).unwrap();
        let mut seq = 1;
        let mut s = Sum(0);
        g.bench_function("rust_api", |b| {
            b.iter(|| {
                for _ in 0..N {
                    let _ = p[0].push(&header(seq), &payload);
                    seq += 1;
                }
                black_box(e.poll(N as usize, &mut s));
            })
        });
        black_box(s.0);
    }
    {
        let (e, p) = c_engine();
        let empty = hz_event_view {
            struct_size: std::mem::size_of::<hz_event_view>(),
            stream: 0,
            header: ptr::null(),
            payload: ptr::null(),
            payload_len: 0,
        };
        let mut views = [empty; N as usize];
        let mut seq = 1;
        let mut total = 0u64;
        g.bench_function("c_api_views", |b| {
            b.iter(|| {
                for _ in 0..N {
                    // SAFETY: a live producer; pushed the same way as `rust_api`.
                    let _ = unsafe { harmonizer::producer_inner(p) }.push(&header(seq), &payload);
                    seq += 1;
                }
                let mut n = 0usize;
                // SAFETY: a live engine; `views` holds N views, the first with its struct_size.
                unsafe { hz_engine_poll_views(e, views.as_mut_ptr(), N as usize, &mut n, ptr::null_mut()) };
                for v in &views[..n] {
                    // SAFETY: lent until the next call on the engine.
                    total = total.wrapping_add(unsafe { (*v.header).seq });
                }
                black_box(n);
            })
        });
        black_box(total);
        // SAFETY: the handles `c_engine` made, freed once, after their last use.
        unsafe {
            hz_producer_free(p);
            hz_engine_free(e);
        }
    }
    for c_producer in [false, true] {
        let (e, p) = c_engine();
        let mut seq = 1;
        let mut total = 0u64;
        let name = if c_producer { "c_api" } else { "c_api_consumer" };
        g.bench_function(name, |b| {
            b.iter(|| {
                for _ in 0..N {
                    let h = header(seq);
                    if c_producer {
                        // SAFETY: a live producer; `payload` is `payload.len()` readable bytes.
                        let _ = unsafe { hz_producer_push(p, &h, payload.as_ptr(), payload.len()) };
                    } else {
                        // SAFETY: `p` is a live producer from `hz_engine_take_producer`; the bench
                        // reaches its Rust inside only to push the same way `rust_api` does.
                        let _ = unsafe { harmonizer::producer_inner(p) }.push(&h, &payload);
                    }
                    seq += 1;
                }
                let mut n = 0usize;
                let user = (&mut total as *mut u64).cast::<c_void>();
                // SAFETY: a live engine; `sum` reads `user` as the `u64` it is.
                unsafe { hz_engine_poll(e, N as usize, Some(sum), None, user, &mut n) };
                black_box(n);
            })
        });
        black_box(total);
        // SAFETY: the handles `c_engine` made, freed once, after their last use.
        unsafe {
            hz_producer_free(p);
            hz_engine_free(e);
        }
    }
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
