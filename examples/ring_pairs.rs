//! harmonizer's ring against rtrb in wall time, measured in interleaved pairs (issue 15). A
//! producer thread and the consumer (this thread) move `N` records of 64 bytes (32-byte header +
//! 32-byte payload) through harmonizer's ring, then through rtrb's, and again, `ROUNDS` times:
//! one record at a time (`push`; `peek` + `release` against rtrb's `push`/`pop`), and 64 at a
//! time (`batch` + `consume(64)` against rtrb's chunk API). Alternating round by round (and which
//! goes first) keeps the machine's slow and fast spells, which last minutes, from landing on one
//! side only. Reported: each side's median throughput and the median of the per-round ratios
//! rtrb time / harmonizer time (above 1: harmonizer is faster). rtrb's throughput also tells the
//! machine's mode: on the project's 2-core VM, about 250 M records/s in the fast mode, 15 to 30 in
//! the slow one.
//!
//! A third pair puts the engine beside its own ring (issue 15's "engine end-to-end at least
//! 0.85x the raw ring"): the same batches of 64 pushed into an engine's active stream and read
//! with `Engine::poll(64, handler)`, the handler folding the same fields, against the ring's
//! batches read with `consume(64)`; reported as ring time / engine time.
//!
//! `cargo run --release --example ring_pairs -- [ROUNDS] [N]`

use std::hint::spin_loop;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use harmonizer_core::engine::{Engine, EngineConfig, Handler, Notice};
use harmonizer_core::ring::{ring, PushError, Record, RingConfig, Storage, WriteBatch};

#[path = "common/rec.rs"]
mod rec;
use rec::{fold, Rec, P};

const RECORDS: usize = 4096;
const BATCH: usize = 64;

/// Pushes the records from `*seq` up to `end`, at most a batch of them, through `b`, which
/// publishes them when dropped; a full ring publishes what is pending (so the consumer can make
/// room) and ends the batch early.
fn fill<S: Storage>(mut b: WriteBatch<'_, S>, rec: &mut Rec, seq: &mut u64, end: u64) {
    let want = (BATCH as u64).min(end - *seq);
    let mut done = 0;
    while done < want {
        rec.stamp(*seq);
        match b.push(&rec.header, &rec.payload) {
            Ok(()) => {
                *seq += 1;
                done += 1;
            }
            Err(PushError::Full) if done > 0 => break,
            Err(PushError::Full) => spin_loop(),
            Err(e) => panic!("{e}"),
        }
    }
}

/// One side of a pair: tells its producer thread to move `n` records, consumes them, and
/// returns the time from the start signal to the last read.
type Side = Box<dyn FnMut(u64) -> Duration>;

/// A side from a producer body (`produce(n)` pushes the next `n` records) and a consumer body
/// (`consume(n)` reads `n` records and returns their checksum).
fn side(
    mut produce: impl FnMut(u64) + Send + 'static,
    mut consume: impl FnMut(u64) -> u64 + 'static,
) -> Side {
    let (go, rounds) = mpsc::channel::<u64>();
    std::thread::spawn(move || {
        for n in rounds {
            produce(n);
        }
    });
    Box::new(move |n| {
        let t0 = Instant::now();
        go.send(n).expect("producer thread alive");
        std::hint::black_box(consume(n));
        t0.elapsed()
    })
}

fn harmonizer(batch: bool) -> Side {
    let (mut tx, mut rx) = ring(RingConfig::for_records(RECORDS, P)).expect("ring config");
    let mut rec = Rec::new();
    let mut seq = 0u64;
    let produce = move |n: u64| {
        let end = seq + n;
        while seq < end {
            if batch {
                fill(tx.batch(), &mut rec, &mut seq, end);
            } else {
                rec.stamp(seq);
                match tx.push(&rec.header, &rec.payload) {
                    Ok(()) => seq += 1,
                    Err(PushError::Full) => spin_loop(),
                    Err(e) => panic!("{e}"),
                }
            }
        }
    };
    let consume = move |n: u64| {
        let mut left = n;
        let mut sum = 0u64;
        while left > 0 {
            if batch {
                let got = rx.consume(BATCH, |r| sum = fold(sum, r.header.seq, r.payload[P - 1])).unwrap();
                if got == 0 {
                    spin_loop();
                }
                left -= got as u64;
            } else {
                match rx.peek().unwrap() {
                    Some(r) => sum = fold(sum, r.header.seq, r.payload[P - 1]),
                    None => {
                        spin_loop();
                        continue;
                    }
                }
                rx.release().unwrap();
                left -= 1;
            }
        }
        sum
    };
    side(produce, consume)
}

/// The engine's handler: the same fold as every other consumer here.
struct Fold(u64);

impl Handler for Fold {
    #[inline]
    fn event(&mut self, _stream: u32, r: &Record<'_>) {
        self.0 = fold(self.0, r.header.seq, r.payload[P - 1]);
    }
    fn notice(&mut self, _: &Notice<'_>) {}
}

/// Batches of 64 into an engine's active stream (a ring of the same size as `harmonizer`'s),
/// read with `Engine::poll(64, ..)`.
fn engine() -> Side {
    let capacity = RingConfig::for_records(RECORDS, P).validate().expect("ring config");
    let (mut e, mut producers) = Engine::new(EngineConfig::new(1, 2, capacity, P)).expect("engine config");
    let mut tx = producers.swap_remove(0);
    let mut rec = Rec::new();
    let mut seq = 0u64;
    let produce = move |n: u64| {
        let end = seq + n;
        while seq < end {
            fill(tx.batch(), &mut rec, &mut seq, end);
        }
    };
    let consume = move |n: u64| {
        let mut left = n;
        let mut h = Fold(0);
        while left > 0 {
            let got = e.poll(BATCH, &mut h);
            if got == 0 {
                spin_loop();
            }
            left -= got as u64;
        }
        assert_eq!(e.stats().duplicates_dropped, 0);
        h.0
    };
    side(produce, consume)
}

fn rtrb_side(chunk: bool) -> Side {
    let (mut tx, mut rx) = rtrb::RingBuffer::<Rec>::new(RECORDS);
    let mut rec = Rec::new();
    let mut seq = 0u64;
    let produce = move |n: u64| {
        let end = seq + n;
        while seq < end {
            if chunk {
                let want = (BATCH as u64).min(end - seq).min(tx.slots() as u64) as usize;
                if want == 0 {
                    spin_loop();
                    continue;
                }
                let c = tx.write_chunk_uninit(want).expect("slots were free");
                let first = seq;
                seq += c.fill_from_iter((first..first + want as u64).map(|s| {
                    rec.stamp(s);
                    rec
                })) as u64;
            } else {
                rec.stamp(seq);
                match tx.push(rec) {
                    Ok(()) => seq += 1,
                    Err(_) => spin_loop(),
                }
            }
        }
    };
    let consume = move |n: u64| {
        let mut left = n;
        let mut sum = 0u64;
        while left > 0 {
            if chunk {
                let have = (left as usize).min(BATCH).min(rx.slots());
                if have == 0 {
                    spin_loop();
                    continue;
                }
                let c = rx.read_chunk(have).expect("slots were filled");
                let (a, b) = c.as_slices();
                for r in a.iter().chain(b) {
                    sum = fold(sum, r.header.seq, r.payload[P - 1]);
                }
                c.commit_all();
                left -= have as u64;
            } else {
                match rx.pop() {
                    Ok(r) => {
                        sum = fold(sum, r.header.seq, r.payload[P - 1]);
                        left -= 1;
                    }
                    Err(_) => spin_loop(),
                }
            }
        }
        sum
    };
    side(produce, consume)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(15);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(4_000_000);
    for mode in ["one", "batch64", "engine"] {
        let (name, peer, mut h, mut r) = match mode {
            "one" => ("harmonizer", "rtrb", harmonizer(false), rtrb_side(false)),
            "batch64" => ("harmonizer", "rtrb chunk64", harmonizer(true), rtrb_side(true)),
            _ => ("engine", "ring batch64", engine(), harmonizer(true)),
        };
        h(n / 4); // warm up both
        r(n / 4);
        let (mut th, mut tr, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            let (dh, dr) = if round % 2 == 0 {
                let dh = h(n);
                (dh, r(n))
            } else {
                let dr = r(n);
                (h(n), dr)
            };
            ratios.push(dr.as_secs_f64() / dh.as_secs_f64());
            th.push(n as f64 / dh.as_secs_f64() / 1e6);
            tr.push(n as f64 / dr.as_secs_f64() / 1e6);
        }
        let (lo, hi) = ratios.iter().fold((f64::INFINITY, 0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        println!(
            "{mode:8} {name} {:7.1} M rec/s, {peer} {:7.1} M rec/s (medians of {rounds}); \
             {peer} time / {name} time: median {:.3}, range {lo:.3}..{hi:.3}",
            median(&mut th),
            median(&mut tr),
            median(&mut ratios),
        );
    }
}
