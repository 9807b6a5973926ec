//! The push by itself, for counting instructions (`scripts/push-cost.sh` runs it under
//! callgrind with `--toggle-collect=*push_one*`): `examples/push_cost.rs`'s one-at-a-time
//! workload (one thread pushes `N` 64-byte events into an engine's active stream and polls them
//! in batches of 64), with each push in `push_one`, which is never inlined, so the count is the
//! push and everything it calls, without the poll. A separate program, so `push_cost`'s own
//! figures are not moved by a second call site of the push.
//!
//! `cargo run --release --example push_alone -- [N]`

use std::hint::black_box;

use harmonizer_core::engine::{Engine, EngineConfig, Handler, Notice, StreamProducer};
use harmonizer_core::event::{EventHeader, KIND_DATA};
use harmonizer_core::ring::Record;

struct Sum(u64);

impl Handler for Sum {
    fn event(&mut self, _stream: u32, r: &Record<'_>) {
        self.0 = self.0.wrapping_add(r.header.seq ^ u64::from(r.payload[0]));
    }
    fn notice(&mut self, _: &Notice<'_>) {}
}

/// One push, out of line so its instructions can be counted apart from the poll's.
#[inline(never)]
fn push_one(p: &mut StreamProducer, h: &EventHeader, payload: &[u8]) {
    p.push(h, payload).unwrap();
}

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let (mut e, mut p) = Engine::new(EngineConfig::new(1, 2, 1 << 19, 64)).unwrap();
    let payload = [7u8; 32];
    let mut sum = Sum(0);
    let mut seq = 0u64;
    while seq < n {
        for _ in 0..64 {
            let h = EventHeader { pos: seq + 1, seq, ts_ns: 0, origin: 0, kind: KIND_DATA, flags: 0 };
            push_one(&mut p[0], black_box(&h), black_box(&payload));
            seq += 1;
        }
        while e.poll(64, &mut sum) > 0 {}
    }
    println!("{} events, checksum {}", n, sum.0);
}
