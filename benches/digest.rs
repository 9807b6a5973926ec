//! The digest content verification compares (docs/verify.md, "The digest"): XXH3-64 (what
//! `engine::event_digest` uses) beside the crate's table CRC-32C (the flip checksum), on
//! payloads of 8 to 1024 bytes. Group `digest`, throughput in bytes.

use std::hint::black_box;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use harmonizer_core::engine::event_digest;
use harmonizer_core::event::{EventHeader, KIND_DATA};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("digest");
    let h = EventHeader { pos: 1, seq: 1, ts_ns: 0, origin: 0, kind: KIND_DATA, flags: 0 };
    for n in [8usize, 32, 64, 256, 1024] {
        let payload: Vec<u8> = (0..n).map(|i| (i * 31 + 7) as u8).collect();
        g.throughput(Throughput::Bytes(n as u64));
        g.bench_with_input(BenchmarkId::new("xxh3_event_digest", n), &payload, |b, p| {
            b.iter(|| event_digest(black_box(&h), black_box(p)))
        });
        g.bench_with_input(BenchmarkId::new("crc32c_table", n), &payload, |b, p| {
            b.iter(|| harmonizer_core::crc32c::crc32c(black_box(p)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
