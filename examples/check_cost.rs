//! A fixed workload for counting what the ring-file checks cost (issue 19) with callgrind: one
//! thread pushes `N` 64-byte records (32-byte header + 32-byte payload) into a ring and reads
//! them back, in batches of 64 or one at a time. `heap` is a ring in this process's memory;
//! `checked` and `unchecked` the same ring on a ring file under /dev/shm, read with and without
//! the checks on what another process wrote. Single-threaded, so the count is the same on every
//! run:
//!
//! `valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/check_cost [heap|checked|unchecked] [batch|one] [N]`

use std::hint::black_box;

use harmonizer_core::event::EventHeader;
use harmonizer_core::ring::{ring, Consumer, Producer, RingConfig, Storage};

fn run<S: Storage>(mut tx: Producer<S>, mut rx: Consumer<S>, batch: bool, n: u64) -> u64 {
    let payload = [7u8; 32];
    let mut sum = 0u64;
    let mut seq = 0u64;
    while seq < n {
        let k = 64.min(n - seq);
        let mut b = tx.batch();
        for i in 0..k {
            let h = EventHeader { pos: seq + i + 1, seq: seq + i, ts_ns: 0, origin: 0, kind: 0, flags: 0 };
            b.push(&h, &payload).expect("room for 64");
        }
        b.publish();
        if batch {
            rx.consume(64, |r| sum = sum.wrapping_add(r.header.seq ^ u64::from(r.payload[31])))
                .expect("active");
        } else {
            for _ in 0..k {
                let r = rx.peek().expect("active").expect("a record");
                sum = sum.wrapping_add(r.header.seq ^ u64::from(r.payload[31]));
                rx.release().expect("peeked");
            }
        }
        seq += k;
    }
    sum
}

fn main() {
    let mut args = std::env::args().skip(1);
    let storage = args.next().unwrap_or_else(|| "heap".into());
    let batch = args.next().as_deref() != Some("one");
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let config = RingConfig::for_records(4096, 32);
    let sum = if storage == "heap" {
        let (tx, rx) = ring(config).expect("ring");
        run(tx, rx, batch, n)
    } else {
        #[cfg(target_os = "linux")]
        {
            let path =
                std::path::Path::new("/dev/shm").join(format!("hz-check-cost-{}.ring", std::process::id()));
            let _ = std::fs::remove_file(&path);
            let (tx, mut rx) = harmonizer_core::shm::file_ring(&path, config).expect("ring file");
            let _ = std::fs::remove_file(&path);
            if storage == "unchecked" {
                // SAFETY: the producer is this crate's, in this process, and nothing else writes
                // the file (its name is gone).
                unsafe { rx.trust_producer() };
            }
            run(tx, rx, batch, n)
        }
        #[cfg(not(target_os = "linux"))]
        panic!("ring files need Linux")
    };
    black_box(sum);
}
