//! A fixed workload for counting instructions (`scripts/push-cost.sh` runs it under callgrind):
//! one thread pushes `N` 64-byte events (32-byte header + 32-byte payload) into an engine's
//! active stream one at a time and polls them in batches of 64, or, with `batch`, pushes them
//! in batches of 64. Single-threaded, so the count is the same on every run.
//!
//! `cargo run --release --example push_cost -- [one|batch] [N]`

use std::hint::black_box;

use harmonizer_core::engine::{Engine, EngineConfig, Handler, Notice};
use harmonizer_core::event::{EventHeader, KIND_DATA};
use harmonizer_core::ring::Record;

struct Sum(u64);

impl Handler for Sum {
    fn event(&mut self, _stream: u32, r: &Record<'_>) {
        self.0 = self.0.wrapping_add(r.header.seq ^ u64::from(r.payload[0]));
    }
    fn notice(&mut self, _: &Notice<'_>) {}
}

fn main() {
    let mut args = std::env::args().skip(1);
    let batch = args.next().as_deref() == Some("batch");
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let (mut e, mut p) = Engine::new(EngineConfig::new(1, 2, 1 << 19, 64)).unwrap();
    let payload = [7u8; 32];
    let mut sum = Sum(0);
    let mut seq = 0u64;
    while seq < n {
        if batch {
            let mut b = p[0].batch();
            for _ in 0..64 {
                let h = EventHeader { pos: seq + 1, seq, ts_ns: 0, origin: 0, kind: KIND_DATA, flags: 0 };
                b.push(&h, &payload).unwrap();
                seq += 1;
            }
        } else {
            for _ in 0..64 {
                let h = EventHeader { pos: seq + 1, seq, ts_ns: 0, origin: 0, kind: KIND_DATA, flags: 0 };
                p[0].push(black_box(&h), black_box(&payload)).unwrap();
                seq += 1;
            }
        }
        while e.poll(64, &mut sum) > 0 {}
    }
    println!("{} events, checksum {}", n, sum.0);
}
