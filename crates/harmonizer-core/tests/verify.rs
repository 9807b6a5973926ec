//! Issue 17: verified switches and the exact position map (docs/verify.md).
//!
//! While stream 1 is staged against the active stream 0, the engine matches each event's two
//! copies by digest: equal copies are verified and their positions mapped; different ones are
//! a `Mismatch`, and under `MismatchPolicy::BlockSwitch` a switch to the stream that carried
//! them is refused.

#![cfg(not(loom))]

mod common;

use common::*;
use harmonizer_core::engine::{
    Engine, EngineConfig, ManualStage, MapRun, MismatchPolicy, PositionPair, StreamProducer,
};
use harmonizer_core::event::{EventHeader, KIND_DATA, KIND_HEARTBEAT};
use harmonizer_core::flip::FlipAction;

fn config(policy: MismatchPolicy, window: u64) -> EngineConfig {
    let mut c = EngineConfig::new(7, 2, 1 << 16, 64);
    c.verify_records = 256;
    c.mismatch_policy = policy;
    c.mismatch_window = window;
    c
}

/// Pushes seq on stream `p` with a payload that is not the event's own (a faulty pipeline).
fn push_corrupt(p: &mut harmonizer_core::engine::StreamProducer, seq: u64) {
    let s = p.stream();
    let mut bytes = payload(0, seq);
    bytes[0] ^= 0xFF;
    p.push(&data(s, 0, seq), &bytes).unwrap();
}

#[test]
fn copies_that_agree_are_verified_mapped_exactly_and_recorded_at_the_switch() {
    let (mut e, mut p, _clock) = engine(config(MismatchPolicy::Report, 16), Box::new(ManualStage));
    let mut r = Recorder::default();
    e.arm(1);
    e.poll(64, &mut r); // stages stream 1
                        // Stream 1 leads for 1..=20, then lags for 21..=40.
    for seq in 1..=20 {
        push_data(&mut p[1], 0, seq).unwrap();
    }
    for seq in 1..=40 {
        push_data(&mut p[0], 0, seq).unwrap();
    }
    poll_all(&mut e, &mut r);
    for seq in 21..=40 {
        push_data(&mut p[1], 0, seq).unwrap();
    }
    poll_all(&mut e, &mut r);
    let s = *e.stats();
    assert_eq!((s.verified, s.mismatches, s.unverified), (40, 0, 0));
    let c = e.verification(1);
    assert_eq!((c.verified, c.mismatched), (40, 0));
    // Ground truth: every event at pos_of(0, seq) on stream 0 is at pos_of(1, seq) on 1.
    for seq in 1..=40 {
        assert_eq!(e.translate(0, 1, pos_of(0, seq)), Some(pos_of(1, seq)), "seq {seq}");
        assert_eq!(e.translate(1, 0, pos_of(1, seq)), Some(pos_of(0, seq)), "seq {seq}");
    }
    // Between events, before the first, after the last, and an unknown pair: no answer.
    assert_eq!(e.translate(0, 1, pos_of(0, 3) + 1), None);
    assert_eq!(e.translate(0, 1, pos_of(0, 1) - 1), None);
    assert_eq!(e.translate(0, 1, pos_of(0, 41)), None);
    assert_eq!(e.translate(0, 2, pos_of(0, 3)), None);
    // Regular numbering on both streams: one run.
    let runs: Vec<MapRun> = e.position_map().copied().collect();
    assert_eq!(
        runs,
        [MapRun {
            from: 0,
            to: 1,
            origin: 0,
            first_seq: 1,
            from_pos: pos_of(0, 1),
            to_pos: pos_of(1, 1),
            from_stride: 2,
            to_stride: 3,
            len: 40
        }]
    );
    assert_eq!(s.map_runs, 1);
    // The switch's record: what was verified, the cut-over pair, where each stream was cut.
    let flip_pos = pos_of(0, 40) + 1;
    push_flip(&mut p[0], flip_pos, &flip(FlipAction::Switch, 9, 1));
    for seq in 41..=45 {
        push_data(&mut p[1], 0, seq).unwrap();
    }
    poll_all(&mut e, &mut r);
    assert_eq!(
        r.switch_records,
        [SwitchRecordSeen {
            from: 0,
            to: 1,
            verified: 40,
            mismatched: 0,
            matched: Some(PositionPair {
                origin: 0,
                seq: 40,
                from_pos: pos_of(0, 40),
                to_pos: pos_of(1, 40)
            }),
            cut_pos: flip_pos,
            first_pos: pos_of(1, 41),
        }]
    );
    assert_eq!(r.delivered(), (1..=45).map(|s| (0, s)).collect::<Vec<_>>());
    // The map outlives the switch.
    assert_eq!(e.translate(1, 0, pos_of(1, 7)), Some(pos_of(0, 7)));
}

#[test]
fn a_stream_carrying_different_data_is_reported_and_a_switch_to_it_blocked() {
    let (mut e, mut p, _clock) = engine(config(MismatchPolicy::BlockSwitch, 10), Box::new(ManualStage));
    let mut r = Recorder::default();
    e.arm(1);
    e.poll(64, &mut r);
    for seq in 1..=30 {
        if (20..=24).contains(&seq) {
            push_corrupt(&mut p[1], seq);
        } else {
            push_data(&mut p[1], 0, seq).unwrap();
        }
        push_data(&mut p[0], 0, seq).unwrap();
    }
    poll_all(&mut e, &mut r);
    let mismatches: Vec<N> = r.notices().into_iter().filter(|n| matches!(n, N::Mismatch { .. })).collect();
    let want: Vec<N> = (20..=24)
        .map(|seq| N::Mismatch {
            stream: 1,
            active: 0,
            origin: 0,
            seq,
            active_pos: pos_of(0, seq),
            pos: pos_of(1, seq),
        })
        .collect();
    assert_eq!(mismatches, want);
    assert_eq!((e.stats().verified, e.stats().mismatches), (25, 5));
    // The corrupted pairs are not in the map.
    assert_eq!(e.translate(0, 1, pos_of(0, 22)), None);
    assert_eq!(e.translate(0, 1, pos_of(0, 25)), Some(pos_of(1, 25)));
    // 6 verified since the last mismatch, 10 needed: the switch is refused, delivery stays on 0.
    push_flip(&mut p[0], pos_of(0, 30) + 1, &flip(FlipAction::Switch, 9, 1));
    for seq in 31..=33 {
        push_data(&mut p[0], 0, seq).unwrap();
        push_data(&mut p[1], 0, seq).unwrap();
    }
    poll_all(&mut e, &mut r);
    assert_eq!(e.active_stream(), 0);
    assert!(r.notices().contains(&N::Blocked { from: 0, to: 1, flip_id: 9, verified: 25, mismatched: 5 }));
    assert_eq!(e.stats().switches_blocked, 1);
    // Once 10 have verified since, the next flip switches.
    for seq in 34..=40 {
        push_data(&mut p[0], 0, seq).unwrap();
        push_data(&mut p[1], 0, seq).unwrap();
    }
    poll_all(&mut e, &mut r);
    assert_eq!(e.verification(1).since_mismatch, 16);
    push_flip(&mut p[0], pos_of(0, 40) + 1, &flip(FlipAction::Switch, 10, 1));
    for seq in 41..=45 {
        push_data(&mut p[1], 0, seq).unwrap();
    }
    poll_all(&mut e, &mut r);
    assert_eq!(e.active_stream(), 1);
    assert_eq!(r.switch_records.len(), 1);
    assert_eq!((r.switch_records[0].verified, r.switch_records[0].mismatched), (35, 5));
    assert_eq!(r.delivered(), (1..=45).map(|s| (0, s)).collect::<Vec<_>>(), "exactly once, in order");
}

#[test]
fn under_report_the_switch_goes_ahead_with_the_mismatches_in_its_record() {
    let (mut e, mut p, _clock) = engine(config(MismatchPolicy::Report, 10), Box::new(ManualStage));
    let mut r = Recorder::default();
    e.arm(1);
    e.poll(64, &mut r);
    for seq in 1..=10 {
        if seq == 5 {
            push_corrupt(&mut p[1], seq);
        } else {
            push_data(&mut p[1], 0, seq).unwrap();
        }
        push_data(&mut p[0], 0, seq).unwrap();
    }
    poll_all(&mut e, &mut r);
    push_flip(&mut p[0], pos_of(0, 10) + 1, &flip(FlipAction::Switch, 9, 1));
    push_data(&mut p[1], 0, 11).unwrap();
    poll_all(&mut e, &mut r);
    assert_eq!(e.active_stream(), 1);
    assert_eq!((r.switch_records[0].verified, r.switch_records[0].mismatched), (9, 1));
    assert_eq!(e.stats().switches_blocked, 0);
}

#[test]
fn a_copy_arriving_after_the_memory_forgot_it_is_unverified_never_guessed() {
    let mut c = config(MismatchPolicy::Report, 10);
    c.verify_records = 8;
    let (mut e, mut p, _clock) = engine(c, Box::new(ManualStage));
    let mut r = Recorder::default();
    e.arm(1);
    e.poll(64, &mut r);
    for seq in 1..=40 {
        push_data(&mut p[0], 0, seq).unwrap();
    }
    poll_all(&mut e, &mut r);
    for seq in 1..=40 {
        push_data(&mut p[1], 0, seq).unwrap();
    }
    poll_all(&mut e, &mut r);
    let s = *e.stats();
    assert_eq!((s.verified, s.unverified, s.mismatches), (8, 32, 0));
    for seq in 1..=40 {
        let t = e.translate(0, 1, pos_of(0, seq));
        assert_eq!(t, (seq > 32).then(|| pos_of(1, seq)), "seq {seq}");
    }
}

/// A small deterministic generator (xorshift64*), so a failure names its seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Generated scenarios: three origins interleaved, each stream numbering its records its own
/// way (irregular steps, heartbeats between events), the staged stream now ahead, now behind.
/// Every pair the map answers for is checked against the ground truth: all exact, and the
/// events verified are all answered.
#[test]
fn on_generated_scenarios_every_pair_of_the_map_is_exact() {
    for seed in 1..=40u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut c = config(MismatchPolicy::Report, 10);
        c.max_origins = 3;
        c.map_runs = 4096;
        // A window that never evicts: every staged copy is trimmed, so matched.
        c.default_window = 1_000;
        let (mut e, mut p, _clock) = engine(c, Box::new(ManualStage));
        let mut r = Recorder::default();
        e.arm(1);
        e.poll(64, &mut r);
        // The logical events, in order: (origin, seq).
        let mut next_seq = [1u64; 3];
        let events: Vec<(u32, u64)> = (0..300)
            .map(|_| {
                let o = rng.below(3) as u32;
                next_seq[o as usize] += 1;
                (o, next_seq[o as usize] - 1)
            })
            .collect();
        // Ground truth positions per stream.
        let mut truth = [Vec::new(), Vec::new()];
        let mut pos = [10u64, 5_000];
        for _ in &events {
            for s in 0..2 {
                pos[s] += 1 + rng.below(if s == 0 { 2 } else { 4 });
                truth[s].push(pos[s]);
            }
        }
        let mut sent = [0usize; 2];
        let mut hb_pos = [0u64; 2];
        while sent[0] < events.len() || sent[1] < events.len() {
            let s = rng.below(2) as usize;
            let n = (1 + rng.below(12) as usize).min(events.len() - sent[s]);
            for k in sent[s]..sent[s] + n {
                let (origin, seq) = events[k];
                let h = EventHeader { pos: truth[s][k], seq, ts_ns: seq, origin, kind: KIND_DATA, flags: 0 };
                p[s].push(&h, &payload(origin, seq)).unwrap();
                if s == 1 && rng.below(8) == 0 && k + 1 < events.len() && truth[1][k + 1] > truth[1][k] + 1 {
                    // A heartbeat between two events on the staged stream.
                    hb_pos[1] = truth[1][k] + 1;
                    let hb = EventHeader {
                        pos: hb_pos[1],
                        seq: 0,
                        ts_ns: 0,
                        origin: 0,
                        kind: KIND_HEARTBEAT,
                        flags: 0,
                    };
                    p[1].push(&hb, &[]).unwrap();
                }
            }
            sent[s] += n;
            if rng.below(3) == 0 {
                poll_all(&mut e, &mut r);
            }
        }
        poll_all(&mut e, &mut r);
        let st = *e.stats();
        assert_eq!(st.mismatches, 0, "seed {seed}");
        assert_eq!(st.verified + st.unverified, events.len() as u64, "seed {seed}");
        let mut answered = 0;
        for (k, _) in events.iter().enumerate() {
            if let Some(t) = e.translate(0, 1, truth[0][k]) {
                assert_eq!(t, truth[1][k], "seed {seed}, event {k}");
                assert_eq!(e.translate(1, 0, t), Some(truth[0][k]), "seed {seed}, event {k}");
                answered += 1;
            }
        }
        assert_eq!(answered, st.verified, "seed {seed}: every verified event is answered");
        // Positions that are no event's: never answered.
        for (s, t) in truth.iter().enumerate() {
            for w in t.windows(2) {
                for q in w[0] + 1..w[1] {
                    assert_eq!(e.translate(s as u32, 1 - s as u32, q), None, "seed {seed}");
                }
            }
        }
        assert_eq!(r.delivered().len(), events.len(), "seed {seed}");
    }
}

/// Stream 1, staged with a window of 4, leads stream 0 by 25: stream 0 delivered 1..=5, and
/// stream 1's window evicted 6..=26 (with `EngineConfig::dry_run_switches` as given).
fn short_window_lead(
    dry_run_switches: bool,
) -> (Engine, Vec<StreamProducer>, harmonizer_core::clock::ManualClock, Recorder) {
    let mut c = config(MismatchPolicy::Report, 10);
    c.default_window = 4;
    c.dry_run_switches = dry_run_switches;
    let (mut e, mut p, clock) = engine(c, Box::new(ManualStage));
    let mut r = Recorder::default();
    e.arm(1);
    e.poll(64, &mut r);
    for seq in 1..=30 {
        push_data(&mut p[1], 0, seq).unwrap();
    }
    for seq in 1..=5 {
        push_data(&mut p[0], 0, seq).unwrap();
    }
    poll_all(&mut e, &mut r);
    (e, p, clock, r)
}

/// The dry run (`Engine::evaluate_switch`) predicts what the switch made right after it does:
/// seamless or not, the hole it meets, the start of a cold switch, a block.
#[test]
fn the_dry_run_predicts_the_switch_that_follows() {
    use harmonizer_core::engine::{DryRunRefusal, Purpose, RejectReason, StartAt};
    // 1. Staged, its window reaching back: seamless, nothing missing.
    let (mut e, mut p, _clock) = engine(config(MismatchPolicy::Report, 10), Box::new(ManualStage));
    let mut r = Recorder::default();
    e.arm(1);
    e.poll(64, &mut r);
    for seq in 1..=10 {
        push_data(&mut p[0], 0, seq).unwrap();
    }
    for seq in 8..=14 {
        push_data(&mut p[1], 0, seq).unwrap();
    }
    e.poll(64, &mut r); // delivers 1..=10 from stream 0; stream 1's window still holds 8..=14
    let d = e.evaluate_switch(FlipAction::Switch, 1);
    assert_eq!((d.refusal, d.staged, d.seamless, d.first_gap), (None, true, true, None));
    assert_eq!((d.duplicates, d.ahead, d.missing, d.stall_estimate_ns, d.start), (3, 4, 0, 0, None));
    let before = r.seen.len();
    push_flip(&mut p[0], pos_of(0, 10) + 1, &flip(FlipAction::Switch, 9, 1));
    poll_all(&mut e, &mut r);
    assert_eq!(r.switch_records.len(), 1);
    assert!(r.seen[before..].iter().any(|s| matches!(s, Seen::Notice(N::Switched { seamless: true, .. }))));
    assert_eq!(r.delivered(), (1..=14).map(|s| (0, s)).collect::<Vec<_>>());
    // The active stream, an unknown one, a switchback target: as a flip would be treated.
    let d = e.evaluate_switch(FlipAction::Switch, 1);
    assert_eq!(d.refusal, Some(DryRunRefusal::Rejected(RejectReason::AlreadyActive(1))));
    let d = e.evaluate_switch(FlipAction::Switch, 5);
    assert_eq!(d.refusal, Some(DryRunRefusal::Rejected(RejectReason::UnknownStream(5))));
    let d = e.evaluate_switch(FlipAction::Switchback, 0);
    assert_eq!((d.to, d.refusal, d.staged), (0, None, true));

    // 2. Staged, but its window of 4 evicted 6..=26 (it leads by 25): the hole is named exactly,
    // and the switch meets the same one.
    let (mut e, mut p, clock, mut r) = short_window_lead(false);
    let d = e.evaluate_switch(FlipAction::Switch, 1);
    assert_eq!((d.staged, d.seamless, d.first_gap, d.missing), (true, false, Some((0, 6, 26)), 21));
    assert_eq!((d.duplicates, d.ahead, d.stall_estimate_ns), (0, 4, 100_000_000));
    push_flip(&mut p[0], pos_of(0, 5) + 1, &flip(FlipAction::Switch, 9, 1));
    poll_all(&mut e, &mut r);
    clock.advance(100_000_000); // past the gap wait
    poll_all(&mut e, &mut r);
    assert!(r.notices().contains(&N::Gap { stream: 1, origin: 0, from: 6, to: 26 }));

    // 3. Not staged: the start a cold switch subscribes from.
    let (mut e, mut p, _clock) = engine(config(MismatchPolicy::Report, 10), Box::new(ManualStage));
    let mut r = Recorder::default();
    for seq in 1..=5 {
        push_data(&mut p[0], 0, seq).unwrap();
    }
    poll_all(&mut e, &mut r);
    let d = e.evaluate_switch(FlipAction::Switch, 1);
    assert_eq!(
        (d.staged, d.seamless, d.start),
        (false, false, Some(StartAt::AfterSeq { origin: 0, seq: 5 }))
    );
    push_flip(&mut p[0], pos_of(0, 5) + 1, &flip(FlipAction::Switch, 9, 1));
    poll_all(&mut e, &mut r);
    assert!(r.subscribes().contains(&(1, d.start.unwrap(), Purpose::Switch)));

    // 4. Blocked by a mismatch: the dry run says so, and the switch is refused.
    let (mut e, mut p, _clock) = engine(config(MismatchPolicy::BlockSwitch, 10), Box::new(ManualStage));
    let mut r = Recorder::default();
    e.arm(1);
    e.poll(64, &mut r);
    push_corrupt(&mut p[1], 1);
    push_data(&mut p[0], 0, 1).unwrap();
    poll_all(&mut e, &mut r);
    let d = e.evaluate_switch(FlipAction::Switch, 1);
    assert_eq!((d.refusal, d.mismatched, d.seamless), (Some(DryRunRefusal::Blocked), 1, false));
    push_flip(&mut p[0], pos_of(0, 1) + 1, &flip(FlipAction::Switch, 9, 1));
    poll_all(&mut e, &mut r);
    assert!(r.notices().iter().any(|n| matches!(n, N::Blocked { to: 1, .. })));
    assert_eq!(e.active_stream(), 0);
}

/// Review: the corrupt copies and the flip are read in one poll: the switch is judged on counts
/// that do not include them yet (the staged copies are matched at the next poll's trim), so
/// BlockSwitch lets the recipient onto the corrupt stream; the copies are then dropped as
/// duplicates and never compared at all.
#[test]
fn block_switch_judges_copies_delivered_in_the_same_poll_as_the_flip() {
    let (mut e, mut p, _clock) = engine(config(MismatchPolicy::BlockSwitch, 10), Box::new(ManualStage));
    let mut r = Recorder::default();
    e.arm(1);
    e.poll(64, &mut r);
    for seq in 1..=10 {
        push_corrupt(&mut p[1], seq);
        push_data(&mut p[0], 0, seq).unwrap();
    }
    push_flip(&mut p[0], pos_of(0, 10) + 1, &flip(FlipAction::Switch, 9, 1));
    poll_all(&mut e, &mut r);
    let s = *e.stats();
    assert_eq!(s.mismatches + s.verified + s.unverified, 10, "every copy judged: {s:?}");
    assert_eq!(e.active_stream(), 0, "switched onto a stream whose 10 copies all differed");
}

/// Review: the dry run's own arithmetic on a staged record of seq u64::MAX.
#[test]
fn the_dry_run_does_not_overflow_on_the_last_seq() {
    let (mut e, mut p, _clock) = engine(config(MismatchPolicy::Report, 10), Box::new(ManualStage));
    let mut r = Recorder::default();
    e.arm(1);
    e.poll(64, &mut r);
    let h = EventHeader { pos: 5, seq: u64::MAX, ts_ns: 0, origin: 0, kind: KIND_DATA, flags: 0 };
    p[1].push(&h, &payload(0, u64::MAX)).unwrap();
    e.poll(64, &mut r);
    let d = e.evaluate_switch(FlipAction::Switch, 1); // panics: `h.seq + 1` (dry_run.rs:150)
    assert_eq!(d.ahead, 1);
}

/// Review: docs/verify.md says a staged stream's counts are "reset when the stream is staged
/// anew or either side becomes active". Stream 2 mismatches against stream 0; the recipient
/// goes to stream 1 and back to 0; stream 2's old counts against 0 come back.
#[test]
fn counts_reset_when_the_active_side_becomes_active_again() {
    let mut c = config(MismatchPolicy::Report, 10);
    c.streams.push(c.streams[1]);
    c.streams[2].id = 2;
    let (mut e, mut p, _clock) = engine(c, Box::new(ManualStage));
    let mut r = Recorder::default();
    e.arm(1);
    e.arm(2);
    e.poll(64, &mut r);
    for seq in 1..=5 {
        push_data(&mut p[0], 0, seq).unwrap();
        push_data(&mut p[1], 0, seq).unwrap();
        if seq == 3 {
            push_corrupt(&mut p[2], seq)
        } else {
            push_data(&mut p[2], 0, seq).unwrap()
        }
    }
    poll_all(&mut e, &mut r);
    assert_eq!(e.verification(2).mismatched, 1);
    push_flip(&mut p[0], pos_of(0, 5) + 1, &flip(FlipAction::Switch, 9, 1));
    push_data(&mut p[1], 0, 6).unwrap();
    poll_all(&mut e, &mut r);
    assert_eq!(e.active_stream(), 1);
    push_flip(&mut p[1], pos_of(1, 6) + 1, &flip(FlipAction::Switch, 10, 0));
    push_data(&mut p[0], 0, 6).unwrap();
    push_data(&mut p[0], 0, 7).unwrap();
    poll_all(&mut e, &mut r);
    assert_eq!(e.active_stream(), 0, "{:?}", r.notices());
    assert_eq!(e.verification(2).mismatched, 0, "stream 0 became active again");
}

/// `EngineConfig::dry_run_switches`: each switch is preceded by its dry run, which says what
/// the switch then does (here: not seamless, the hole 6..=26 its window left).
#[test]
fn a_dry_run_comes_before_each_switch_and_predicts_it() {
    let (mut e, mut p, clock, mut r) = short_window_lead(true);
    push_flip(&mut p[0], pos_of(0, 5) + 1, &flip(FlipAction::Switch, 9, 1));
    poll_all(&mut e, &mut r);
    clock.advance(100_000_000);
    poll_all(&mut e, &mut r);
    let n = r.notices();
    let at = n.iter().position(|x| matches!(x, N::DryRun(_))).expect("a dry run");
    let N::DryRun(d) = &n[at] else { unreachable!() };
    assert_eq!((d.to, d.seamless, d.first_gap, d.missing), (1, false, Some((0, 6, 26)), 21));
    // The switch made right after it met that hole (its Switched comes once a re-read brings
    // the events: not seamless).
    let gap =
        n.iter().position(|x| *x == N::Gap { stream: 1, origin: 0, from: 6, to: 26 }).expect("the hole");
    assert!(at < gap, "{n:?}");
    assert_eq!(e.active_stream(), 1);
    for seq in 6..=35 {
        push_data(&mut p[1], 0, seq).unwrap();
    }
    poll_all(&mut e, &mut r);
    assert!(r.notices().contains(&N::Switched { from: 0, to: 1, flip_id: 9, seamless: false }));
    assert_eq!(r.delivered(), (1..=35).map(|s| (0, s)).collect::<Vec<_>>());
}
