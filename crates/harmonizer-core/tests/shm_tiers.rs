//! Issue 16 review, a ring file in the conflation tier: in a test binary of its own. It drops an
//! engine's file and attaches it again in this process, and tests/shm.rs forks children from
//! other threads: a child forked in between holds a copy of the dropped descriptor, and with it
//! the consumer's lock, until it execs (`ConsumerBusy` for a moment). Cargo runs test binaries
//! one at a time, so here nothing forks.

#![cfg(target_os = "linux")]

use std::path::PathBuf;

use harmonizer_core::clock::ManualClock;
use harmonizer_core::engine::{
    Engine, EngineConfig, FileOptions, Handler, ManualStage, Notice, StreamProducer,
};
use harmonizer_core::event::{EventHeader, KIND_DATA};
use harmonizer_core::ring::Record;
use harmonizer_core::shm::AttachMode;

fn temp_path(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("hz-shm-tiers-{}-{name}.ring", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

fn options(mode: AttachMode) -> FileOptions {
    FileOptions { mode, check_interval_ns: 0 }
}

/// Issue 16 review: the conflation tier's store kept a cursor (a ring position) and the ring's
/// epoch, and reset only when the epoch number changed. Attaching a ring file replaces the
/// stream's ring, whose epoch counts on its own: with equal numbers the heap ring's cursor was
/// used on the file's ring, landed mid-frame, and an honest file was reported corrupt. The
/// store now starts afresh whenever the ring is replaced.
#[test]
fn a_conflation_cursor_is_not_carried_onto_an_attached_ring_file() {
    struct Corrupt(Vec<String>);
    impl Handler for Corrupt {
        fn event(&mut self, _s: u32, _r: &Record<'_>) {}
        fn notice(&mut self, n: &Notice<'_>) {
            if let Notice::RingCorrupt { .. } = n {
                self.0.push(format!("{n:?}"));
            }
        }
    }
    let path = temp_path("conflation-cursor");
    let cfg = || {
        let mut c = EngineConfig::new(7, 2, 1 << 16, 64);
        c.identity_records = 8;
        c.conflation_keys = 4;
        c
    };
    let h = |seq: u64| EventHeader { pos: seq, seq, ts_ns: 0, origin: 0, kind: KIND_DATA, flags: 0 };
    let mut seen = Corrupt(Vec::new());
    // Session 1 makes the file with stream 1 staged (its epoch 1), and a producer writes 10
    // records of 64-byte frames into it.
    {
        let (mut e, _p) = Engine::with(cfg(), Box::new(ManualStage), Box::new(ManualClock::at(1))).unwrap();
        e.attach_file(1, &path, options(AttachMode::Create)).unwrap();
        assert!(e.arm(1));
        e.poll(64, &mut seen);
        let mut fp = StreamProducer::open_file(&path).unwrap();
        for seq in 1..=10 {
            fp.push(&h(seq), &[7u8; 24]).unwrap();
        }
    }
    // Session 2 stages stream 1 on its heap ring first (epoch 1 as well): 5 records of 56-byte
    // frames, looked at, leave the store's cursor at 280, inside the file's fifth frame.
    let (mut e, mut p) = Engine::with(cfg(), Box::new(ManualStage), Box::new(ManualClock::at(1))).unwrap();
    assert!(e.arm(1));
    e.poll(64, &mut seen);
    for seq in 1..=5 {
        p[1].push(&h(seq), &[7u8; 16]).unwrap();
    }
    e.poll(64, &mut seen);
    e.attach_file(1, &path, options(AttachMode::Resume)).unwrap();
    e.poll(64, &mut seen);
    e.poll(64, &mut seen);
    assert!(seen.0.is_empty(), "an honest ring file reported corrupt: {:?}", seen.0);
    let _ = std::fs::remove_file(&path);
}
