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
    // The staging tiers too: windows evict into an identity log; marked events are conflated.
    cfg.default_window = 8;
    cfg.identity_records = 16;
    cfg.conflation_keys = 4;
    cfg.conflation_payload = 16;
    // Verification (copies differ whenever the input says so), refusals and rollbacks.
    cfg.verify_records = 32;
    cfg.map_runs = 8;
    cfg.mismatch_policy = crate::engine::MismatchPolicy::BlockSwitch;
    cfg.mismatch_window = 4;
    cfg.probation = crate::engine::Probation { duration_ns: 50_000_000, max_holes: 1, ..Default::default() };
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
                    // Marked conflatable (key `b % 4`) now and then.
                    flags: if c & 0x40 != 0 { crate::event::FLAG_CONFLATABLE } else { 0 },
                };
                let _ = producers[s].push(&h, &[b % 4, 0, 0, 0, 0, 0, 0, 0, c]);
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
            _ if c & 2 != 0 => {
                // A dry run, and a translation, change nothing the check could see.
                let action = if b & 1 == 0 { FlipAction::Switch } else { FlipAction::Switchback };
                let d = engine.evaluate_switch(action, u32::from(a % 4));
                assert!(!(d.seamless && d.first_gap.is_some()), "{d:?}");
                let _ = engine.translate(u32::from(a % 3), u32::from(b % 3), u64::from(c));
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

/// Ring files that another process scribbles on, read from arbitrary bytes (`ring_file`
/// target): an engine with two streams attaches a ring file to each, and producers in this
/// process fill them (stream 0 active; stream 1 idle, or staged while armed). The first byte's
/// low three bits say how many 4-byte mutations are written into the files *before* a second
/// engine re-attaches to them (files found that way); the ops that follow push, poll, arm and
/// disarm stream 1, write more mutations *while attached*, let time pass and restart a
/// producer. The mutations aim at the header, the ring's words and the records, with values
/// chosen to be frame words (pads of 0, lengths of 0 or 2^30 - 1, multiples of 8) or anything at
/// all. Never panics, never reads outside a mapping, every poll returns, and what is delivered
/// is in order.
#[cfg(shm)]
pub fn ring_file(data: &[u8]) {
    use std::os::unix::fs::FileExt;
    use std::sync::atomic::{AtomicU64, Ordering};

    use crate::clock::{Clock, ManualClock};
    use crate::engine::{Engine, EngineConfig, FileOptions, Handler, ManualStage, Notice, StreamProducer};
    use crate::event::{EventHeader, KIND_DATA};
    use crate::ring::Record;
    use crate::shm::AttachMode;

    const CAPACITY: usize = 4096;
    const FILE_LEN: u64 = 4096 + CAPACITY as u64;

    struct Check {
        last: Option<u64>,
    }
    impl Handler for Check {
        fn event(&mut self, _stream: u32, r: &Record<'_>) {
            // Every lent byte is read: a slice past the mapping faults (or ASan says so).
            let sum = r.payload.iter().fold(0u8, |a, b| a.wrapping_add(*b));
            core::hint::black_box(sum);
            if r.header.kind == KIND_DATA && r.header.origin == 0 {
                if let Some(prev) = self.last {
                    assert!(r.header.seq > prev, "seq {} delivered after {prev}", r.header.seq);
                }
                self.last = Some(r.header.seq);
            }
        }
        fn notice(&mut self, _n: &Notice<'_>) {}
    }

    /// Writes a mutation into one of the files: which and where from the kind byte and
    /// `a`/`b`, what from `c`.
    fn mutate(files: &[std::fs::File; 2], op: &[u8]) {
        let (k, a, b, c) = (op[0], op[1], op[2], op[3]);
        let spot = u64::from(a) << 8 | u64::from(b);
        let at = match k >> 6 {
            0 => 1024 + (spot % 512) / 8 * 8,             // the ring's words
            1 => spot % 4096,                             // anywhere in the header page
            _ => 4096 + (spot % CAPACITY as u64) / 8 * 8, // a frame word, or inside a record
        };
        let word: u64 = match c % 8 {
            0 => 0,
            1 => 0x8000_0000,
            2 => 0x8000_0000 | u64::from(b),
            3 => (1 << 30) - 1,
            4 => u64::from(a) * 8,
            5 => 40 + u64::from(b),
            6 => u64::from_ne_bytes([a, b, c, k, a, b, c, k]),
            _ => u64::MAX,
        };
        let file = &files[usize::from(k >> 3 & 1)];
        let _ = file.write_all_at(&word.to_ne_bytes(), at.min(FILE_LEN - 8));
    }

    static N: AtomicU64 = AtomicU64::new(0);
    let dir =
        if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm".into() } else { std::env::temp_dir() };
    let n = N.fetch_add(1, Ordering::Relaxed);
    let paths: [std::path::PathBuf; 2] =
        core::array::from_fn(|s| dir.join(format!("hz-fuzz-{}-{n}-{s}.ring", std::process::id())));
    let _remove = paths.clone().map(RemoveOnDrop);
    for p in &paths {
        let _ = std::fs::remove_file(p);
    }

    let clock = ManualClock::at(1);
    let attach = |mode| {
        let cfg = EngineConfig::new(7, 2, CAPACITY, 64);
        let (mut e, _) = Engine::with(cfg, Box::new(ManualStage), Box::new(clock.clone())).ok()?;
        for (s, path) in paths.iter().enumerate() {
            e.attach_file(s as u32, path, FileOptions { mode, check_interval_ns: 0 }).ok()?;
        }
        Some(e)
    };
    let Some(mut e) = attach(AttachMode::Create) else { return };
    let mut producers: [Option<StreamProducer>; 2] = [None, None];
    for (s, path) in paths.iter().enumerate() {
        let Ok(p) = StreamProducer::open_file(path) else { return };
        producers[s] = Some(p);
    }
    let files = paths.clone().map(|p| std::fs::OpenOptions::new().write(true).open(p));
    let [Ok(f0), Ok(f1)] = files else { return };
    let files = [f0, f1];
    let mut seq = [0u64; 2];
    let mut push = |p: &mut Option<StreamProducer>, s: usize, len: u8| {
        let Some(p) = p else { return };
        // The same events on both streams, each at its own pace.
        let h = EventHeader { pos: seq[s] + 1, seq: seq[s], ts_ns: 0, origin: 0, kind: KIND_DATA, flags: 0 };
        let _ = p.push(&h, &[len; 64][..usize::from(len % 64)]);
        seq[s] += 1;
    };
    let mut check = Check { last: None };
    let (pre, ops) = match data.split_first() {
        Some((&n, rest)) => (usize::from(n % 8), rest),
        None => return,
    };
    // Before attach: files filled, scribbled on, then found by a new engine.
    for i in 0..40 {
        push(&mut producers[0], 0, i);
    }
    let mut chunks = ops.chunks_exact(4);
    for op in chunks.by_ref().take(pre) {
        mutate(&files, op);
    }
    if pre > 0 {
        drop(e);
        match attach(AttachMode::Resume) {
            Some(again) => e = again,
            None => return, // refused with a reason: fine
        }
    }
    // While attached.
    for op in chunks {
        let s = usize::from(op[1] & 1);
        match op[0] % 8 {
            0 | 1 => push(&mut producers[s], s, op[2]),
            2 => {
                e.poll(usize::from(op[2]) + 1, &mut check);
            }
            3 => {
                if op[2] & 1 == 0 {
                    e.arm(1);
                } else {
                    e.disarm(1);
                }
            }
            4 | 5 => mutate(&files, op),
            6 => clock.set(clock.now_ns() + u64::from(op[2]) * 1_000_000),
            _ => {
                // A restarted producer: the old one lets go of the file first.
                producers[s] = None;
                producers[s] = StreamProducer::open_file(&paths[s]).ok();
            }
        }
    }
    for _ in 0..8 {
        e.poll(1024, &mut check);
    }
}

/// Removes a file when dropped (also when a check panics).
#[cfg(shm)]
struct RemoveOnDrop(std::path::PathBuf);

#[cfg(shm)]
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
