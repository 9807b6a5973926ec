//! A fixed workload for counting what the staging tiers cost the engine (docs/staging.md,
//! "Tiers"), under callgrind: an engine with stream 1 staged (armed) follows stream 0; each
//! round pushes 64 events into both and polls, so every poll trims stream 1's window of what
//! stream 0 delivered. With `conflation`, stream 1's records are marked conflatable (16 keys)
//! and the engine keeps each key's latest (its store, 64 keys); with `identity`, the window is
//! 16 records and stream 1 leads by 32, so the producer evicts into a 64-slot identity log;
//! `plain` is the same without either tier. `overlap` and `verify` keep a window of 128, so every
//! event of stream 1 is trimmed from it (nothing evicted), without and with content verification
//! (docs/verify.md): their difference is verification's cost per overlapping event (remembering
//! the delivered copy, matching the staged one, the position map). Single-threaded: the same
//! count on every run.
//!
//! `cargo run --release --example staged_cost -- [plain|identity|conflation|overlap|verify] [N]`

use harmonizer_core::engine::{Engine, EngineConfig, Handler, Notice};
use harmonizer_core::event::{EventHeader, FLAG_CONFLATABLE, KIND_DATA};
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
    let mode = args.next().unwrap_or_else(|| "plain".into());
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let mut cfg = EngineConfig::new(1, 2, 1 << 19, 64);
    cfg.default_window = 16;
    if mode == "identity" || mode == "conflation" {
        cfg.identity_records = 64;
    }
    if mode == "overlap" || mode == "verify" {
        cfg.default_window = 128;
    }
    if mode == "verify" {
        cfg.verify_records = 1024;
    }
    if mode == "conflation" {
        cfg.conflation_keys = 64;
        cfg.conflation_payload = 32;
    }
    let (mut e, mut p) = Engine::new(cfg).unwrap();
    e.arm(1);
    let mut sum = Sum(0);
    e.poll(64, &mut sum); // stages stream 1
    let flags = if mode == "conflation" { FLAG_CONFLATABLE } else { 0 };
    let event = |seq: u64, stream: u64| {
        let h = EventHeader { pos: seq + 1 + stream, seq, ts_ns: 0, origin: 0, kind: KIND_DATA, flags };
        let mut payload = [7u8; 32];
        payload[..8].copy_from_slice(&(seq % 16).to_le_bytes());
        (h, payload)
    };
    // Stream 1 leads by 32 events.
    for seq in 0..32 {
        let (h, pl) = event(seq, 1);
        p[1].push(&h, &pl).unwrap();
    }
    let mut seq = 0u64;
    while seq < n {
        for _ in 0..64 {
            let (h, pl) = event(seq, 0);
            p[0].push(&h, &pl).unwrap();
            let (h, pl) = event(seq + 32, 1);
            let _ = p[1].push(&h, &pl);
            seq += 1;
        }
        while e.poll(64, &mut sum) > 0 {}
    }
    let s = e.stats();
    println!(
        "{n} events, checksum {}, staged peak {} bytes, verified {}, unverified {}, map runs {}",
        sum.0, s.peak_staged_bytes, s.verified, s.unverified, s.map_runs
    );
}
