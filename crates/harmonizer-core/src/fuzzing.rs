//! The checks the fuzz targets run (`fuzz/`, cargo-fuzz), here so that the stable test that
//! replays the checked-in corpus (`tests/fuzz_corpus.rs`) runs exactly the same code. Not API:
//! hidden from the docs, and free to change.

use crate::flip::Flip;
use crate::predict::Model;

/// Flip decoding of arbitrary bytes: never panics; what decodes encodes back to bytes that
/// decode to the same flip (a flip's encoding is canonical).
pub fn flip_decode(data: &[u8]) {
    if let Ok(f) = Flip::decode(data) {
        let again = f.to_vec().expect("a decoded flip encodes");
        assert_eq!(Flip::decode(&again).expect("its encoding decodes"), f);
    }
}

/// Model reading of arbitrary bytes: never panics, and what is accepted is a valid model.
pub fn model_json(data: &[u8]) {
    if let Ok(m) = Model::from_json_bytes(data) {
        assert!(m.validate().is_ok());
    }
}

/// A sequence of engine operations read from arbitrary bytes: three streams on a manual clock,
/// pushes of data events (the same seqs at positions that grow per stream, with holes and
/// repeats), of flips (well formed or not), polls, arming, time passing, and the stuck-gap
/// calls. Never panics, and what is delivered is exactly once and in order per origin: no seq
/// twice, none going back.
pub fn engine_ops(data: &[u8]) {
    use crate::clock::ManualClock;
    use crate::engine::{Engine, EngineConfig, Handler, ManualStage, Notice};
    use crate::event::{EventHeader, KIND_DATA, KIND_FLIP};
    use crate::flip::{FlipAction, Selector};
    use crate::ring::Record;

    struct Check {
        last: [Option<u64>; 4],
    }
    impl Handler for Check {
        fn event(&mut self, _stream: u32, r: &Record<'_>) {
            let h = r.header;
            if h.kind == KIND_DATA {
                let o = h.origin as usize;
                if let Some(prev) = self.last[o] {
                    assert!(h.seq > prev, "origin {o}: seq {} delivered after {prev}", h.seq);
                }
                self.last[o] = Some(h.seq);
            }
        }
        fn notice(&mut self, _n: &Notice<'_>) {}
    }

    let clock = ManualClock::at(1);
    let mut cfg = EngineConfig::new(7, 3, 4096, 64);
    cfg.max_origins = 4;
    let Ok((mut engine, mut producers)) = Engine::with(cfg, Box::new(ManualStage), Box::new(clock.clone()))
    else {
        return;
    };
    let mut check = Check { last: [None; 4] };
    let mut pos = [0u64; 3];
    let mut now = 1u64;
    let mut bytes = data.chunks_exact(4);
    for op in bytes.by_ref() {
        let (kind, a, b, c) = (op[0] % 8, op[1], op[2], op[3]);
        let s = usize::from(a % 3);
        match kind {
            // A data event: seq from `b`, origin from `c`, at the stream's next position (or a
            // repeat of the last one, to try the ring's order checks).
            0..=2 => {
                pos[s] += u64::from(c >> 7 == 0);
                let h = EventHeader {
                    pos: pos[s].max(1),
                    seq: u64::from(b),
                    ts_ns: now,
                    origin: u32::from(c & 3),
                    kind: KIND_DATA,
                    flags: 0,
                };
                let _ = producers[s].push(&h, &[b, c]);
            }
            // A flip for this recipient (or for everyone, or a cohort), or bytes that may not be
            // one at all.
            3 => {
                pos[s] += 1;
                let action = match b % 4 {
                    0 => FlipAction::Switch,
                    1 => FlipAction::Announce,
                    2 => FlipAction::Cancel,
                    _ => FlipAction::Switchback,
                };
                let selector = if c & 1 == 0 {
                    Selector::All
                } else {
                    Selector::Cohort { basis_points: u16::from(c) * 39, salt: 1 }
                };
                let flip = Flip { selector, ..Flip::new(action, u64::from(b / 4), u32::from(c % 4)) };
                let mut rec = flip.to_vec().expect("a flip of range-checked fields encodes");
                if c & 0x80 != 0 {
                    let i = usize::from(b) % rec.len();
                    rec[i] ^= c; // corrupt it
                }
                let h = EventHeader { pos: pos[s], seq: 0, ts_ns: now, origin: 0, kind: KIND_FLIP, flags: 0 };
                let _ = producers[s].push(&h, &rec);
            }
            4 => {
                engine.poll(usize::from(b) + 1, &mut check);
            }
            5 => {
                if c & 1 == 0 {
                    engine.arm(u32::from(a % 4));
                } else {
                    engine.disarm(u32::from(a % 4));
                }
            }
            6 => {
                now += u64::from(b) * 10_000_000;
                clock.set(now);
            }
            _ => {
                if c & 1 == 0 {
                    engine.retry_gap();
                } else {
                    engine.give_up_gap();
                }
            }
        }
    }
    // Drain what is left.
    for _ in 0..16 {
        engine.poll(1024, &mut check);
    }
}
