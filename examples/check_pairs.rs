//! What the ring-file checks cost in wall time, measured in interleaved pairs (issue 19: at most
//! 3% on the ring bench). A producer thread and the consumer (this thread) move `N` records of
//! 64 bytes through a ring file with the consumer's checks on, then through an identical ring
//! file with them off, and again, `ROUNDS` times; one record at a time (push; peek + release)
//! and in batches of 64 (batch push; `consume(64)`). Alternating round by round keeps the
//! machine's slow and fast spells (they last minutes) from landing on one side only; the
//! figure reported is the median of the per-round ratios unchecked/checked time.
//!
//! `cargo run --release --example check_pairs -- [ROUNDS] [N]`

use std::hint::spin_loop;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use harmonizer_core::engine::StreamStorage;
use harmonizer_core::event::EventHeader;
use harmonizer_core::ring::{Consumer, Producer, PushError, RingConfig};

struct Pair {
    go: mpsc::Sender<u64>,
    rx: Consumer<StreamStorage>,
}

fn pair(name: &str, checked: bool, batch: bool) -> Pair {
    let path =
        std::path::Path::new("/dev/shm").join(format!("hz-check-pairs-{}-{name}.ring", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let (tx, mut rx) =
        harmonizer_core::shm::file_ring(&path, RingConfig::for_records(4096, 32)).expect("ring file");
    let _ = std::fs::remove_file(&path);
    if !checked {
        // SAFETY: the producer is this crate's, in this process, and nothing else writes the
        // file (its name is gone).
        unsafe { rx.trust_producer() };
    }
    let (go, rounds) = mpsc::channel::<u64>();
    std::thread::spawn(move || produce(tx, rounds, batch));
    Pair { go, rx }
}

fn produce(mut tx: Producer<StreamStorage>, rounds: mpsc::Receiver<u64>, batch: bool) {
    let payload = [7u8; 32];
    let mut seq = 0u64;
    for n in rounds {
        let end = seq + n;
        while seq < end {
            let mut b = tx.batch();
            let want = if batch { 64.min(end - seq) } else { 1 };
            let mut done = 0;
            while done < want {
                let h = EventHeader { pos: seq + 1, seq, ts_ns: 0, origin: 0, kind: 0, flags: 0 };
                match b.push(&h, &payload) {
                    Ok(()) => {
                        seq += 1;
                        done += 1;
                    }
                    Err(PushError::Full) if done > 0 => break,
                    Err(PushError::Full) => spin_loop(),
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }
}

fn consume(p: &mut Pair, n: u64, batch: bool) -> Duration {
    let t0 = Instant::now();
    p.go.send(n).unwrap();
    let mut left = n;
    let mut sum = 0u64;
    while left > 0 {
        if batch {
            let got =
                p.rx.consume(64, |r| sum = sum.wrapping_add(r.header.seq ^ u64::from(r.payload[31])))
                    .unwrap();
            if got == 0 {
                spin_loop();
            }
            left -= got as u64;
        } else {
            match p.rx.peek().unwrap() {
                Some(r) => sum = sum.wrapping_add(r.header.seq ^ u64::from(r.payload[31])),
                None => {
                    spin_loop();
                    continue;
                }
            }
            p.rx.release().unwrap();
            left -= 1;
        }
    }
    std::hint::black_box(sum);
    t0.elapsed()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(15);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2_000_000);
    for batch in [false, true] {
        let mode = if batch { "batch64" } else { "one" };
        let mut checked = pair(&format!("{mode}-checked"), true, batch);
        let mut unchecked = pair(&format!("{mode}-unchecked"), false, batch);
        consume(&mut checked, n / 4, batch); // warm up both
        consume(&mut unchecked, n / 4, batch);
        let mut ratios = Vec::new();
        let (mut tc, mut tu) = (Vec::new(), Vec::new());
        for r in 0..rounds {
            // Which goes first alternates too.
            let (c, u) = if r % 2 == 0 {
                let c = consume(&mut checked, n, batch);
                (c, consume(&mut unchecked, n, batch))
            } else {
                let u = consume(&mut unchecked, n, batch);
                (consume(&mut checked, n, batch), u)
            };
            ratios.push(c.as_secs_f64() / u.as_secs_f64());
            tc.push(n as f64 / c.as_secs_f64() / 1e6);
            tu.push(n as f64 / u.as_secs_f64() / 1e6);
        }
        let med = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            v[v.len() / 2]
        };
        println!(
            "{mode:8} checked {:7.1} M rec/s, unchecked {:7.1} M rec/s (medians of {rounds}); checked/unchecked time: median {:.3}, range {:.3}..{:.3}",
            med(&mut tc),
            med(&mut tu),
            med(&mut ratios.clone()),
            ratios.iter().cloned().fold(f64::INFINITY, f64::min),
            ratios.iter().cloned().fold(0.0, f64::max),
        );
    }
}
