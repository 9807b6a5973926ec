//! A fixed workload for counting instructions per record moved through a ring, harmonizer's and
//! its peer rtrb's, with callgrind (`scripts/ring-cost.sh` runs every entry): one thread moves
//! `N` 64-byte records (32-byte header + 32-byte payload) through a ring of about 4096 records,
//! 64 at a time: it writes 64 then reads 64. Single-threaded, so the count is the same on every
//! run; the work per record is the one `benches/ring.rs` times (stamp a `seq` into the header and
//! the first payload bytes, copy the record in; fold `seq` and the last payload byte into a
//! checksum).
//!
//! Entries:
//! - `harmonizer-one`: `Producer::push` and `Consumer::peek` + `release`, one record at a time;
//! - `harmonizer-batch`: `Producer::batch` of 64, `Consumer::consume(64)`;
//! - `rtrb-one`: `rtrb` `push` / `pop` of a 64-byte record type;
//! - `rtrb-chunk`: rtrb's chunk API, `write_chunk_uninit(64).fill_from_iter` /
//!   `read_chunk(64)` + `commit_all`.
//!
//! `cargo run --release --example ring_cost -- ENTRY [N]`

use harmonizer_core::ring::{ring, RingConfig};

#[path = "common/rec.rs"]
mod rec;
use rec::{fold, Rec, FILL, P};

const RECORDS: usize = 4096;
const CHUNK: u64 = 64;

fn harmonizer(batch: bool, n: u64) -> u64 {
    let (mut tx, mut rx) = ring(RingConfig::for_records(RECORDS, P)).expect("ring config");
    let mut rec = Rec::new();
    let (mut seq, mut sum) = (0u64, 0u64);
    while seq < n {
        let k = CHUNK.min(n - seq);
        if batch {
            let mut b = tx.batch();
            for _ in 0..k {
                rec.stamp(seq);
                b.push(&rec.header, &rec.payload).expect("room for a chunk");
                seq += 1;
            }
            b.publish();
            let got = rx.consume(CHUNK as usize, |r| sum = fold(sum, r.header.seq, r.payload[P - 1]));
            assert_eq!(got.expect("active ring"), k as usize);
        } else {
            for _ in 0..k {
                rec.stamp(seq);
                tx.push(&rec.header, &rec.payload).expect("room for a chunk");
                seq += 1;
            }
            for _ in 0..k {
                let r = rx.peek().expect("active ring").expect("a record");
                sum = fold(sum, r.header.seq, r.payload[P - 1]);
                rx.release().expect("peeked");
            }
        }
    }
    sum
}

fn rtrb_entry(chunk: bool, n: u64) -> u64 {
    let (mut tx, mut rx) = rtrb::RingBuffer::<Rec>::new(RECORDS);
    let mut rec = Rec::new();
    let (mut seq, mut sum) = (0u64, 0u64);
    while seq < n {
        let k = CHUNK.min(n - seq);
        if chunk {
            let w = tx.write_chunk_uninit(k as usize).expect("room for a chunk");
            let first = seq;
            let written = w.fill_from_iter((first..first + k).map(|s| {
                rec.stamp(s);
                rec
            }));
            assert_eq!(written as u64, k);
            seq += k;
            let r = rx.read_chunk(k as usize).expect("a chunk");
            let (a, b) = r.as_slices();
            for x in a.iter().chain(b) {
                sum = fold(sum, x.header.seq, x.payload[P - 1]);
            }
            r.commit_all();
        } else {
            for _ in 0..k {
                rec.stamp(seq);
                tx.push(rec).expect("room for a chunk");
                seq += 1;
            }
            for _ in 0..k {
                let x = rx.pop().expect("a record");
                sum = fold(sum, x.header.seq, x.payload[P - 1]);
            }
        }
    }
    sum
}

fn main() {
    let mut args = std::env::args().skip(1);
    let entry = args.next().unwrap_or_else(|| "harmonizer-one".into());
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let sum = match entry.as_str() {
        "harmonizer-one" => harmonizer(false, n),
        "harmonizer-batch" => harmonizer(true, n),
        "rtrb-one" => rtrb_entry(false, n),
        "rtrb-chunk" => rtrb_entry(true, n),
        other => {
            eprintln!("unknown entry {other:?}: harmonizer-one, harmonizer-batch, rtrb-one, rtrb-chunk");
            std::process::exit(2);
        }
    };
    let triangle = n * (n - 1) / 2;
    assert_eq!(sum, n * u64::from(FILL) + triangle, "checksum");
    println!("{entry}: {n} records, checksum {sum}");
}
