//! loom model of the engine's switch between two streams' rings (docs/design.md §4).
//!
//! Stream 0 is active, stream 1 staged with a one-event window. Two producer threads feed the
//! same events 0..3 to both streams (stream 0 carries a SWITCH flip after event 1); the engine
//! polls until it has delivered all three. In every interleaving loom explores: each event is
//! delivered exactly once and in order, whichever stream it comes from; nothing is torn (the
//! rings report their byte accesses to loom); the switch happens once.
//!
//! Run with: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_engine`.

#![cfg(loom)]

use harmonizer_core::clock::ManualClock;
use harmonizer_core::engine::{AlwaysStage, Engine, EngineConfig, Handler, Notice, StreamProducer};
use harmonizer_core::event::{EventHeader, KIND_DATA, KIND_FLIP};
use harmonizer_core::flip::{Flip, FlipAction};
use harmonizer_core::ring::{PushError, Record};
use loom::thread;

struct Seen {
    seqs: Vec<u64>,
    switched: usize,
}

impl Handler for Seen {
    fn event(&mut self, _stream: u32, r: &Record<'_>) {
        assert_eq!(r.payload, &[r.header.seq as u8; 4], "torn payload");
        self.seqs.push(r.header.seq);
    }
    fn notice(&mut self, n: &Notice<'_>) {
        if matches!(n, Notice::Switched { .. }) {
            self.switched += 1;
        }
    }
}

fn push(p: &mut StreamProducer, h: EventHeader, payload: &[u8]) {
    loop {
        match p.push(&h, payload) {
            Ok(()) | Err(PushError::Shed) => return,
            Err(PushError::Full) => thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    }
}

fn data(stream: u32, seq: u64) -> EventHeader {
    EventHeader {
        pos: 10 * (u64::from(stream) + 1) + seq,
        seq,
        ts_ns: 0,
        origin: 0,
        kind: KIND_DATA,
        flags: 0,
    }
}

#[test]
fn loom_switch_between_two_streams_is_exactly_once() {
    let flip = Flip::new(FlipAction::Switch, 1, 1).to_vec().unwrap();
    // The engine does many atomic operations per poll; a preemption bound of 2 and a bounded
    // concurrent section keep the model to minutes.
    let mut model = loom::model::Builder::new();
    model.preemption_bound =
        Some(std::env::var("LOOM_MAX_PREEMPTIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(2).min(2));
    model.check(move || {
        // The smallest ring holds two of the largest flip records: 4 KiB.
        let mut cfg = EngineConfig::new(1, 2, 4096, 64);
        cfg.default_window = 1;
        let (mut e, mut producers) =
            Engine::with(cfg, Box::new(AlwaysStage), Box::new(ManualClock::at(1))).unwrap();
        let mut seen = Seen { seqs: vec![], switched: 0 };
        e.poll(1, &mut seen); // stages stream 1
        let mut p1 = producers.pop().unwrap();
        let mut p0 = producers.pop().unwrap();
        let flip = flip.clone();
        // Stream 0: event 0, the SWITCH, event 1. Stream 1 (staged, window 1): events 0 and 1.
        let a = thread::spawn(move || {
            push(&mut p0, data(0, 0), &[0; 4]);
            let h = EventHeader { pos: 11, seq: 0, ts_ns: 0, origin: 0, kind: KIND_FLIP, flags: 0 };
            push(&mut p0, h, &flip);
            push(&mut p0, data(0, 1), &[1; 4]);
        });
        let b = thread::spawn(move || {
            push(&mut p1, data(1, 0), &[0; 4]);
            push(&mut p1, data(1, 1), &[1; 4]);
        });
        // Polls racing the producers and the epoch changes they cause.
        e.poll(8, &mut seen);
        e.poll(8, &mut seen);
        a.join().unwrap();
        b.join().unwrap();
        for _ in 0..4 {
            e.poll(8, &mut seen);
        }
        assert_eq!(seen.seqs, vec![0, 1], "exactly once, in order");
        assert_eq!(e.active_stream(), 1);
        assert_eq!(seen.switched, 1);
    });
}
