//! Would lossless compression of staged records pay? (Issue 16, "optional lossless payload
//! compression of staged records if it pays"; the answer and its figures: docs/staging.md,
//! "Payload compression: measured, not shipped".)
//!
//! For three payload families, compresses each payload on its own with LZ4 (`lz4_flex`, the
//! block format, one reused buffer, with and without a dictionary of other payloads of the
//! same family), and reports, side by side in one run:
//! - the bytes a staged window would hold per record (ring frames of 8 + 32 + payload bytes,
//!   or of a 4-byte length prefix and the compressed payload, rounded up to 8), so how many
//!   more records the same ring would keep;
//! - the producer's cost per event to compress, and the consumer's to decompress, next to what
//!   the engine itself costs per event (a push and its share of a `poll(64)`, measured here);
//! - what decompressing a whole 100-record window would add to a staged switch's stall.
//!
//!     cargo run --release --example staging_compression
//!
//! Wall times are medians of 7 rounds; the machine's mode (fast or slow) moves every entry
//! alike, so read the ratios.

use std::hint::black_box;
use std::time::Instant;

use harmonizer_core::engine::{Engine, EngineConfig, Handler, Notice};
use harmonizer_core::event::{EventHeader, KIND_DATA};
use harmonizer_core::ring::Record;

const N: usize = 20_000;
const ROUNDS: usize = 7;

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// An order event as JSON, 150–250 bytes.
fn order_json(r: &mut u64) -> Vec<u8> {
    let syms = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "BRK.B"];
    let venues = ["XNAS", "XNYS", "ARCX", "BATS", "IEXG"];
    let v = splitmix(r);
    format!(
        r#"{{"order_id":{},"account":"ACC-{:05}","symbol":"{}","side":"{}","qty":{},"price":{}.{:02},"type":"{}","tif":"DAY","venue":"{}","ts":{},"client_tag":"t{:x}"}}"#,
        1_000_000 + (v % 9_000_000),
        v % 50_000,
        syms[(v >> 8) as usize % syms.len()],
        if v & 1 == 0 { "buy" } else { "sell" },
        1 + (v >> 16) % 5000,
        10 + (v >> 24) % 900,
        (v >> 40) % 100,
        if (v >> 3) & 1 == 0 { "limit" } else { "market" },
        venues[(v >> 48) as usize % venues.len()],
        1_733_300_000_000_000u64 + (v >> 20) % 1_000_000_000,
        splitmix(r) >> 20,
    )
    .into_bytes()
}

/// A market-data tick as a packed binary struct, 64 bytes (ids, prices and sizes as integers).
fn tick_binary(r: &mut u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(64);
    let v = splitmix(r);
    b.extend_from_slice(&(v % 4096).to_le_bytes()); // instrument
    b.extend_from_slice(&(1_733_300_000_000_000u64 + (v >> 12) % 1_000_000).to_le_bytes()); // ts
    for k in 0..4 {
        let w = splitmix(r);
        b.extend_from_slice(&(100_000 + w % 20_000).to_le_bytes()); // price
        b.extend_from_slice(&((w >> 32) % 10_000 + k).to_le_bytes()); // size
    }
    b.truncate(64);
    b
}

/// A larger nested JSON document, about 1 KiB (a user profile update).
fn profile_json(r: &mut u64) -> Vec<u8> {
    let v = splitmix(r);
    let mut s = format!(
        r#"{{"event":"profile.updated","user":{{"id":{},"name":"user{}","email":"user{}@example.com","locale":"en-GB","tz":"Europe/London"}},"changes":["#,
        v % 10_000_000,
        v % 100_000,
        v % 100_000
    );
    for k in 0..6 {
        let w = splitmix(r);
        if k > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            r#"{{"field":"pref_{}","old":{{"value":"{:x}","set_at":{}}},"new":{{"value":"{:x}","set_at":{}}},"source":"web"}}"#,
            w % 40,
            w >> 40,
            1_733_000_000 + w % 1_000_000,
            w >> 20,
            1_733_300_000 + (w >> 8) % 1_000_000
        ));
    }
    s.push_str(r#"],"request":{"ip":"10.0.0.1","agent":"Mozilla/5.0 (X11; Linux x86_64)","trace":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}"#);
    s.into_bytes()
}

/// Makes one payload of a family from the generator state.
type Maker = fn(&mut u64) -> Vec<u8>;

fn frame(payload: usize) -> usize {
    (8 + 32 + payload).next_multiple_of(8)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// ns per call of `f` over `items`, median of `ROUNDS`.
fn time_per<T>(items: &[T], mut f: impl FnMut(&T) -> usize) -> f64 {
    let mut rounds = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let mut acc = 0usize;
        for it in items {
            acc = acc.wrapping_add(f(it));
        }
        black_box(acc);
        rounds.push(t.elapsed().as_nanos() as f64 / items.len() as f64);
    }
    median(rounds)
}

struct Sum(u64);
impl Handler for Sum {
    fn event(&mut self, _: u32, r: &Record<'_>) {
        self.0 = self.0.wrapping_add(r.header.seq ^ r.payload.len() as u64);
    }
    fn notice(&mut self, _: &Notice<'_>) {}
}

/// ns per event of the engine itself: a push of `payloads[i]` and its share of `poll(64)`.
fn engine_per_event(payloads: &[Vec<u8>]) -> f64 {
    let max = payloads.iter().map(Vec::len).max().unwrap_or(0);
    let (mut e, mut p) = Engine::new(EngineConfig::new(1, 2, 1 << 20, max)).expect("engine");
    let mut sum = Sum(0);
    let mut seq = 0u64;
    let mut rounds = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        for chunk in payloads.chunks(64) {
            for pl in chunk {
                let h = EventHeader { pos: seq + 1, seq, ts_ns: 0, origin: 0, kind: KIND_DATA, flags: 0 };
                p[0].push(&h, pl).expect("push");
                seq += 1;
            }
            while e.poll(64, &mut sum) > 0 {}
        }
        rounds.push(t.elapsed().as_nanos() as f64 / payloads.len() as f64);
    }
    black_box(sum.0);
    median(rounds)
}

fn main() {
    let families: [(&str, Maker); 3] =
        [("order JSON", order_json), ("binary tick", tick_binary), ("profile JSON", profile_json)];
    println!("staging_compression: {N} payloads per family, LZ4 block format (lz4_flex), medians of {ROUNDS} rounds");
    println!(
        "{:<13} {:>6} {:>9} {:>9} {:>8} {:>10} {:>10} {:>10} {:>11}",
        "family", "bytes", "dict", "ratio", "frames", "compress", "decompr.", "engine", "window+"
    );
    for (name, make) in families {
        let mut r = 0x5EED ^ name.len() as u64;
        let payloads: Vec<Vec<u8>> = (0..N).map(|_| make(&mut r)).collect();
        let mut dr = 0xD1C7 ^ name.len() as u64;
        let mut dict = Vec::new();
        while dict.len() < 4096 {
            dict.extend_from_slice(&make(&mut dr));
        }
        let raw: usize = payloads.iter().map(Vec::len).sum();
        let raw_frames: usize = payloads.iter().map(|p| frame(p.len())).sum();
        let engine_ns = engine_per_event(&payloads);
        for with_dict in [false, true] {
            let max =
                payloads.iter().map(|p| lz4_flex::block::get_maximum_output_size(p.len())).max().unwrap_or(0);
            let mut out = vec![0u8; max];
            let compressed: Vec<Vec<u8>> = payloads
                .iter()
                .map(|p| {
                    let n = if with_dict {
                        lz4_flex::block::compress_into_with_dict(p, &mut out, &dict)
                    } else {
                        lz4_flex::block::compress_into(p, &mut out)
                    }
                    .expect("room for the worst case");
                    out[..n].to_vec()
                })
                .collect();
            // A staged record would carry a 4-byte uncompressed length before the block.
            let comp: usize = compressed.iter().map(|c| 4 + c.len()).sum();
            let comp_frames: usize = compressed.iter().map(|c| frame(4 + c.len())).sum();
            let c_ns = time_per(&payloads, |p| {
                if with_dict {
                    lz4_flex::block::compress_into_with_dict(p, &mut out, &dict).unwrap_or(0)
                } else {
                    lz4_flex::block::compress_into(p, &mut out).unwrap_or(0)
                }
            });
            let mut back = vec![0u8; payloads.iter().map(Vec::len).max().unwrap_or(0)];
            let d_ns = time_per(&compressed, |c| {
                if with_dict {
                    lz4_flex::block::decompress_into_with_dict(c, &mut back, &dict).unwrap_or(0)
                } else {
                    lz4_flex::block::decompress_into(c, &mut back).unwrap_or(0)
                }
            });
            // Check the round trip once.
            for (p, c) in payloads.iter().zip(&compressed).take(100) {
                let n = if with_dict {
                    lz4_flex::block::decompress_into_with_dict(c, &mut back, &dict)
                } else {
                    lz4_flex::block::decompress_into(c, &mut back)
                }
                .expect("decompresses");
                assert_eq!(&back[..n], &p[..]);
            }
            println!(
                "{:<13} {:>6.0} {:>9} {:>8.2}x {:>7.2}x {:>8.0} ns {:>7.0} ns {:>7.0} ns {:>8.1} us",
                name,
                raw as f64 / N as f64,
                if with_dict { "4 KiB" } else { "none" },
                raw as f64 / comp as f64,
                raw_frames as f64 / comp_frames as f64,
                c_ns,
                d_ns,
                engine_ns,
                100.0 * d_ns / 1000.0,
            );
        }
    }
    println!(
        "bytes: mean payload; ratio: payload bytes over compressed (with the 4-byte length); frames: ring\n\
         bytes per record before over after (8 + 32 + payload, rounded to 8): how many more records\n\
         the same window would hold; compress/decompr.: per event; engine: the engine's own push and\n\
         share of poll(64) per event, this run; window+: decompressing a 100-record window at a switch."
    );
}
