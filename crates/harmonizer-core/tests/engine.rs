//! Integration tests of the engine: one per guarantee of docs/design.md §2 and per flip action.

#![cfg(not(loom))]

mod common;

use common::*;
use harmonizer_core::engine::{
    AlwaysStage, Engine, EngineConfig, EngineError, GapPolicy, ManualStage, NeverStage, Purpose, StartAt,
    StreamConfig,
};
use harmonizer_core::flip::{Flip, FlipAction, IdList, Selector};
use harmonizer_core::ring::PushError;
use harmonizer_core::tracker::SeqMode;

/// Payloads up to 2 KiB: a flip record (up to 1,338 bytes) must fit in one.
const MAX_PAYLOAD: usize = 2048;

fn cfg() -> EngineConfig {
    EngineConfig::new(7, 2, 1 << 16, MAX_PAYLOAD)
}

fn seqs(r: &Recorder, origin: u32) -> Vec<u64> {
    r.delivered().into_iter().filter(|(o, _)| *o == origin).map(|(_, s)| s).collect()
}

/// Feeds seqs `range` of origin 0 to both producers (as a fanout does).
fn feed_both(p: &mut [harmonizer_core::engine::StreamProducer], range: std::ops::Range<u64>) {
    for s in range {
        for pr in p.iter_mut() {
            let _ = push_data(pr, 0, s);
        }
    }
}

#[test]
fn delivers_the_active_stream_in_order() {
    let (mut e, mut p, _) = engine(cfg(), Box::new(ManualStage));
    for s in 0..10 {
        push_data(&mut p[0], 0, s).unwrap();
    }
    assert_eq!(push_data(&mut p[1], 0, 0), Err(PushError::NotSubscribed), "idle stream discards");
    let mut r = Recorder::default();
    assert_eq!(poll_all(&mut e, &mut r), 10);
    assert_eq!(seqs(&r, 0), (0..10).collect::<Vec<_>>());
    assert_eq!(e.stats().delivered, 10);
}

#[test]
fn announced_switch_is_seamless_and_exactly_once() {
    let (mut e, mut p, _) = engine(cfg(), Box::new(ManualStage));
    let mut r = Recorder::default();
    feed_both(&mut p, 0..10);
    push_flip(&mut p[0], pos_of(0, 10) - 1, &flip(FlipAction::Announce, 1, 1));
    poll_all(&mut e, &mut r);
    assert!(r.notices().contains(&N::Subscribe {
        stream: 1,
        locator: b"loc".to_vec(),
        from: StartAt::Live,
        purpose: Purpose::Stage
    }));
    assert_eq!(e.staged_streams().collect::<Vec<_>>(), vec![1]);
    feed_both(&mut p, 10..30);
    push_flip(&mut p[0], pos_of(0, 30) - 1, &flip(FlipAction::Switch, 2, 1));
    feed_both(&mut p, 30..50);
    poll_all(&mut e, &mut r);
    assert_eq!(seqs(&r, 0), (0..50).collect::<Vec<_>>(), "exactly once, in order");
    assert!(r.notices().contains(&N::Switched { from: 0, to: 1, flip_id: 2, seamless: true }));
    assert_eq!(e.active_stream(), 1);
    assert_eq!(e.stats().switches_seamless, 1);
    assert_eq!(e.stats().lost, 0);
    // Events after the switch came from stream 1, and the Switched notice preceded them.
    let i_switch = r.seen.iter().position(|s| matches!(s, Seen::Notice(N::Switched { .. }))).unwrap();
    assert!(r.seen[i_switch + 1..].iter().all(|s| !matches!(s, Seen::Event { stream: 0, .. })));
}

#[test]
fn cold_switch_subscribes_and_drops_duplicates_until_caught_up() {
    let (mut e, mut p, _) = engine(cfg(), Box::new(ManualStage));
    let mut r = Recorder::default();
    for s in 0..20 {
        push_data(&mut p[0], 0, s).unwrap();
    }
    let mut f = flip(FlipAction::Switch, 9, 1);
    f.resume_pos = pos_of(1, 15);
    push_flip(&mut p[0], pos_of(0, 20) - 1, &f);
    poll_all(&mut e, &mut r);
    assert!(r.notices().contains(&N::Subscribe {
        stream: 1,
        locator: b"loc".to_vec(),
        from: StartAt::Pos(pos_of(1, 15)),
        purpose: Purpose::Switch
    }));
    // The application subscribes stream 1 from an earlier point: duplicates first.
    for s in 15..30 {
        push_data(&mut p[1], 0, s).unwrap();
    }
    poll_all(&mut e, &mut r);
    assert_eq!(seqs(&r, 0), (0..30).collect::<Vec<_>>());
    assert_eq!(e.stats().duplicates_dropped, 5);
    assert!(r.notices().contains(&N::Switched { from: 0, to: 1, flip_id: 9, seamless: false }));
    assert_eq!(e.stats().switches_cold, 1);
}

#[test]
fn switchback_returns_to_the_previous_stream_exactly_once() {
    let mut c = cfg();
    c.keep_previous = true;
    let (mut e, mut p, _) = engine(c, Box::new(AlwaysStage));
    let mut r = Recorder::default();
    poll_all(&mut e, &mut r); // stages stream 1
    feed_both(&mut p, 0..10);
    push_flip(&mut p[0], pos_of(0, 10) - 1, &flip(FlipAction::Switch, 1, 1));
    feed_both(&mut p, 10..20);
    poll_all(&mut e, &mut r);
    assert_eq!(e.active_stream(), 1);
    assert_eq!(e.staged_streams().collect::<Vec<_>>(), vec![0], "the old stream is the switchback candidate");
    push_flip(&mut p[1], pos_of(1, 20) - 1, &flip(FlipAction::Switchback, 2, 0));
    feed_both(&mut p, 20..40);
    poll_all(&mut e, &mut r);
    assert_eq!(e.active_stream(), 0);
    assert_eq!(seqs(&r, 0), (0..40).collect::<Vec<_>>());
    assert!(r.notices().contains(&N::Switched { from: 1, to: 0, flip_id: 2, seamless: true }));
    assert_eq!(e.stats().switches_seamless, 2);
}

#[test]
fn switchback_without_a_previous_stream_is_rejected() {
    let (mut e, mut p, _) = engine(cfg(), Box::new(ManualStage));
    let mut r = Recorder::default();
    push_flip(&mut p[0], 5, &flip(FlipAction::Switchback, 1, 0));
    push_data(&mut p[0], 0, 0).unwrap();
    poll_all(&mut e, &mut r);
    assert!(matches!(&r.notices()[0], N::Rejected { reason, .. } if reason.contains("no previous")));
    assert_eq!(seqs(&r, 0), vec![0]);
}

#[test]
fn cancel_clears_staging_and_delivery_goes_on() {
    let (mut e, mut p, _) = engine(cfg(), Box::new(ManualStage));
    let mut r = Recorder::default();
    push_flip(&mut p[0], 1, &flip(FlipAction::Announce, 1, 1));
    poll_all(&mut e, &mut r);
    assert_eq!(e.staged_streams().count(), 1);
    push_flip(&mut p[0], 2, &flip(FlipAction::Cancel, 2, 1));
    for s in 0..5 {
        push_data(&mut p[0], 0, s).unwrap();
    }
    poll_all(&mut e, &mut r);
    assert_eq!(e.staged_streams().count(), 0);
    assert!(r.notices().contains(&N::Unsubscribe { stream: 1 }));
    assert_eq!(seqs(&r, 0), (0..5).collect::<Vec<_>>());
    assert_eq!(e.active_stream(), 0);
}

#[test]
fn switch_drains_to_cutover_pos() {
    let (mut e, mut p, _) = engine(cfg(), Box::new(AlwaysStage));
    let mut r = Recorder::default();
    poll_all(&mut e, &mut r);
    let mut f = flip(FlipAction::Switch, 3, 1);
    f.cutover_pos = pos_of(0, 25);
    feed_both(&mut p, 0..10);
    push_flip(&mut p[0], pos_of(0, 10) - 1, &f);
    feed_both(&mut p, 10..40);
    poll_all(&mut e, &mut r);
    assert_eq!(seqs(&r, 0), (0..40).collect::<Vec<_>>());
    let streams = r.streams();
    assert!(streams[..26].iter().all(|s| *s == 0), "drained stream 0 through seq 25");
    assert!(streams[26..].iter().all(|s| *s == 1));
}

#[test]
fn switch_waits_for_not_before_ns() {
    let (mut e, mut p, _) = engine(cfg(), Box::new(AlwaysStage));
    let mut r = Recorder::default();
    poll_all(&mut e, &mut r);
    let mut f = flip(FlipAction::Switch, 3, 1);
    f.not_before_ns = 20_000; // ts_ns of seq 20
    push_flip(&mut p[0], 1, &f);
    feed_both(&mut p, 0..30);
    poll_all(&mut e, &mut r);
    assert_eq!(seqs(&r, 0), (0..30).collect::<Vec<_>>());
    let streams = r.streams();
    assert!(streams[..20].iter().all(|s| *s == 0) && streams[20..].iter().all(|s| *s == 1));
}

#[test]
fn resume_pos_drops_earlier_target_events() {
    let (mut e, mut p, _) = engine(cfg(), Box::new(ManualStage));
    let mut r = Recorder::default();
    for s in 0..5 {
        push_data(&mut p[0], 0, s).unwrap();
    }
    let mut f = flip(FlipAction::Switch, 1, 1);
    f.resume_pos = pos_of(1, 5);
    push_flip(&mut p[0], pos_of(0, 5) - 1, &f);
    poll_all(&mut e, &mut r);
    // Stream 1 replays from 0, but positions before resume_pos are skipped unread.
    for s in 0..10 {
        push_data(&mut p[1], 0, s).unwrap();
    }
    poll_all(&mut e, &mut r);
    assert_eq!(seqs(&r, 0), (0..10).collect::<Vec<_>>());
    assert_eq!(e.stats().before_resume_pos, 5);
    assert_eq!(e.stats().duplicates_dropped, 0);
}

#[test]
fn a_flip_on_both_streams_is_applied_once() {
    let (mut e, mut p, _) = engine(cfg(), Box::new(AlwaysStage));
    let mut r = Recorder::default();
    poll_all(&mut e, &mut r);
    feed_both(&mut p, 0..5);
    for (i, pr) in p.iter_mut().enumerate() {
        push_flip(pr, pos_of(i as u32, 5) - 1, &flip(FlipAction::Switch, 77, 1));
    }
    feed_both(&mut p, 5..10);
    poll_all(&mut e, &mut r);
    assert_eq!(e.active_stream(), 1);
    assert_eq!(e.stats().flips_applied, 1);
    assert_eq!(e.stats().flips_repeated, 1);
    assert_eq!(seqs(&r, 0), (0..10).collect::<Vec<_>>());
}

#[test]
fn flips_for_other_recipients_are_counted_not_applied() {
    let (mut e, mut p, _) = engine(cfg(), Box::new(ManualStage));
    let mut r = Recorder::default();
    let mut f = flip(FlipAction::Switch, 1, 1);
    f.selector = Selector::Ids(IdList::new(&[1, 2, 3]).unwrap()); // not 7
    push_flip(&mut p[0], 1, &f);
    let mut g = flip(FlipAction::Switch, 2, 1);
    g.selector = Selector::Cohort { basis_points: 0, salt: 5 }; // nobody
    push_flip(&mut p[0], 2, &g);
    push_data(&mut p[0], 0, 0).unwrap();
    poll_all(&mut e, &mut r);
    assert_eq!(e.active_stream(), 0);
    assert_eq!(e.stats().flips_ignored, 2);
    assert_eq!(seqs(&r, 0), vec![0]);
}

#[test]
fn cohort_flip_for_this_recipient_applies() {
    let (mut e, mut p, _) = engine(cfg(), Box::new(ManualStage));
    let mut r = Recorder::default();
    let mut f = flip(FlipAction::Switch, 1, 1);
    f.selector = Selector::Cohort { basis_points: 10_000, salt: 5 };
    push_flip(&mut p[0], 1, &f);
    poll_all(&mut e, &mut r);
    assert_eq!(e.active_stream(), 1);
}

#[test]
fn malformed_flips_are_rejected_with_a_reason_and_lose_nothing() {
    let (mut e, mut p, _) = engine(cfg(), Box::new(ManualStage));
    let mut r = Recorder::default();
    let good = flip(FlipAction::Switch, 1, 1).to_vec().unwrap();
    let mut bad_crc = good.clone();
    bad_crc[9] ^= 0xFF;
    push_data(&mut p[0], 0, 0).unwrap();
    push_raw_flip(&mut p[0], 100, &bad_crc);
    push_data(&mut p[0], 0, 1).unwrap();
    push_raw_flip(&mut p[0], 101, &good[..10]);
    push_raw_flip(&mut p[0], 102, &[]);
    push_flip(&mut p[0], 103, &flip(FlipAction::Switch, 2, 99)); // unknown stream
    push_flip(&mut p[0], 104, &flip(FlipAction::Switch, 3, 0)); // already active
    push_data(&mut p[0], 0, 2).unwrap();
    poll_all(&mut e, &mut r);
    assert_eq!(seqs(&r, 0), vec![0, 1, 2]);
    assert_eq!(e.stats().flips_rejected, 5);
    let reasons: Vec<String> = r
        .notices()
        .into_iter()
        .filter_map(|n| match n {
            N::Rejected { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    assert!(reasons[0].contains("CRC"), "{reasons:?}");
    assert!(reasons[1].contains("truncated"));
    assert!(reasons[2].contains("truncated"));
    assert!(reasons[3].contains("unknown stream 99"));
    assert!(reasons[4].contains("already active"));
    assert_eq!(e.active_stream(), 0);
}

#[test]
fn a_gap_is_filled_from_a_staged_candidate() {
    let (mut e, mut p, _) = engine(cfg(), Box::new(AlwaysStage));
    let mut r = Recorder::default();
    poll_all(&mut e, &mut r);
    for s in 0..20 {
        if s != 7 && s != 8 {
            push_data(&mut p[0], 0, s).unwrap(); // stream 0 lost 7 and 8 upstream
        }
        push_data(&mut p[1], 0, s).unwrap();
    }
    poll_all(&mut e, &mut r);
    assert_eq!(seqs(&r, 0), (0..20).collect::<Vec<_>>());
    assert_eq!(e.stats().gap_filled, 2);
    assert_eq!(e.stats().gaps, 0);
    let from: Vec<u32> = r.streams();
    assert_eq!((from[7], from[8]), (1, 1), "filled from the staged stream");
}

/// Two origins interleaved on one stream, one event of origin 0 lost upstream, and origin 1's
/// events after it delivered: the re-read must start after origin 0's last event, not after
/// the stream's last delivered one (which lies past the missing event: re-reading from there
/// would bring the same gap back forever).
#[test]
fn a_reread_starts_before_the_missing_event_when_other_origins_moved_on() {
    let (mut e, mut p, _) = engine(cfg(), Box::new(NeverStage));
    let mut r = Recorder::default();
    // Stream order (position = 10 + index): o0/0, o0/1 (lost), o1/0, o1/1, o0/2, o0/3.
    let log: [(u32, u64); 6] = [(0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (0, 3)];
    let at = |i: usize| harmonizer_core::event::EventHeader {
        pos: 10 + i as u64,
        seq: log[i].1,
        ts_ns: 1,
        origin: log[i].0,
        kind: harmonizer_core::event::KIND_DATA,
        flags: 0,
    };
    for i in [0, 2, 3, 4, 5] {
        p[0].push(&at(i), &payload(log[i].0, log[i].1)).unwrap();
    }
    poll_all(&mut e, &mut r);
    assert_eq!((seqs(&r, 0), seqs(&r, 1)), (vec![0], vec![0, 1]));
    assert_eq!(
        r.notices(),
        vec![
            N::Gap { stream: 0, origin: 0, from: 1, to: 1 },
            N::Subscribe {
                stream: 0,
                locator: vec![],
                from: StartAt::Pos(11),
                purpose: Purpose::ReRead { origin: 0, from_seq: 1, to_seq: 1 }
            }
        ],
        "from just after origin 0's last event (position 10), not after position 13"
    );
    // The application re-reads from position 11: everything arrives once, in order.
    for (i, &(origin, seq)) in log.iter().enumerate().skip(1) {
        p[0].push(&at(i), &payload(origin, seq)).unwrap();
    }
    poll_all(&mut e, &mut r);
    assert_eq!((seqs(&r, 0), seqs(&r, 1)), (vec![0, 1, 2, 3], vec![0, 1]));
    assert_eq!(e.stats().gaps, 1);
    assert_eq!(e.stats().duplicates_dropped, 2, "origin 1's events came again and were dropped");
}

#[test]
fn an_unfillable_gap_is_reported_lost_when_policy_allows() {
    let mut c = cfg();
    c.gap_policy = GapPolicy::ReportLost;
    let (mut e, mut p, _) = engine(c, Box::new(NeverStage));
    let mut r = Recorder::default();
    for s in [0, 1, 2, 5, 6] {
        push_data(&mut p[0], 0, s).unwrap();
    }
    poll_all(&mut e, &mut r);
    assert_eq!(seqs(&r, 0), vec![0, 1, 2, 5, 6]);
    assert_eq!(
        r.notices(),
        vec![N::Gap { stream: 0, origin: 0, from: 3, to: 4 }, N::Lost { origin: 0, from: 3, to: 4 }]
    );
    // The notices sit between seq 2 and seq 5.
    let i = r.seen.iter().position(|s| matches!(s, Seen::Notice(N::Gap { .. }))).unwrap();
    assert!(matches!(r.seen[i - 1], Seen::Event { seq: 2, .. }));
    assert!(matches!(r.seen[i + 2], Seen::Event { seq: 5, .. }));
    assert_eq!(e.stats().lost, 2);
}

#[test]
fn an_unfillable_gap_asks_for_a_reread_and_never_skips() {
    let (mut e, mut p, _) = engine(cfg(), Box::new(NeverStage));
    let mut r = Recorder::default();
    for s in [0, 1, 2, 5, 6, 7] {
        push_data(&mut p[0], 0, s).unwrap();
    }
    poll_all(&mut e, &mut r);
    assert_eq!(seqs(&r, 0), vec![0, 1, 2]);
    let last_pos = pos_of(0, 2);
    assert_eq!(
        r.notices(),
        vec![
            N::Gap { stream: 0, origin: 0, from: 3, to: 4 },
            N::Subscribe {
                stream: 0,
                locator: vec![],
                from: StartAt::Pos(last_pos + 1),
                purpose: Purpose::ReRead { origin: 0, from_seq: 3, to_seq: 4 }
            }
        ]
    );
    // The application re-reads stream 0 from there: positions go back; delivery resumes.
    for s in 3..10 {
        push_data(&mut p[0], 0, s).unwrap();
    }
    poll_all(&mut e, &mut r);
    assert_eq!(seqs(&r, 0), (0..10).collect::<Vec<_>>());
    assert_eq!(e.stats().skipped_for_reread, 3);
    assert_eq!(e.stats().lost, 0);
}

#[test]
fn staging_respects_the_memory_budget() {
    let mut c = EngineConfig::new(7, 4, 1 << 20, MAX_PAYLOAD);
    // Before any delivery a window is priced at the largest data frame (8 + 32 + 2048 = 2088
    // bytes): room for one window of 100.
    c.staging_budget_bytes = 100 * 2088 + 5;
    let (mut e, mut p, _) = engine(c, Box::new(AlwaysStage));
    let mut r = Recorder::default();
    e.poll(1, &mut r);
    assert_eq!(e.staged_streams().count(), 1);
    // `staged_bytes` is what the windows hold, not what they might: nothing yet.
    assert_eq!(e.stats().staged_bytes, 0);
    let staged = e.staged_streams().next().unwrap() as usize;
    for s in 0..10 {
        push_data(&mut p[staged], 0, s).unwrap();
    }
    e.poll(1, &mut r);
    // Ten frames of 8 + 32 + 12 payload bytes, rounded up to 8: 56 bytes each.
    assert_eq!(e.stats().staged_bytes, 10 * 56);
}

#[test]
fn several_candidates_are_staged_at_once() {
    let (mut e, _p, _) = engine(EngineConfig::new(7, 4, 1 << 20, MAX_PAYLOAD), Box::new(AlwaysStage));
    let mut r = Recorder::default();
    e.poll(1, &mut r);
    assert_eq!(e.staged_streams().collect::<Vec<_>>(), vec![1, 2, 3]);
}

#[test]
fn never_stage_ignores_announces_but_switches_cold() {
    let (mut e, mut p, _) = engine(cfg(), Box::new(NeverStage));
    let mut r = Recorder::default();
    push_flip(&mut p[0], 1, &flip(FlipAction::Announce, 1, 1));
    poll_all(&mut e, &mut r);
    assert_eq!(e.staged_streams().count(), 0);
}

#[test]
fn unknown_origins_are_reported() {
    let (mut e, mut p, _) = engine(cfg(), Box::new(ManualStage));
    let mut r = Recorder::default();
    push_data(&mut p[0], 64, 0).unwrap(); // max_origins is 64
    push_data(&mut p[0], 1, 0).unwrap();
    poll_all(&mut e, &mut r);
    assert_eq!(r.notices(), vec![N::Bad { stream: 0, pos: pos_of(0, 0) }]);
    assert_eq!(r.delivered(), vec![(1, 0)]);
}

#[test]
fn monotonic_mode_accepts_jumps() {
    let mut c = cfg();
    c.seq_mode = SeqMode::Monotonic;
    let (mut e, mut p, _) = engine(c, Box::new(ManualStage));
    let mut r = Recorder::default();
    for s in [1, 5, 9, 9, 4, 20] {
        push_data(&mut p[0], 0, s).unwrap();
    }
    poll_all(&mut e, &mut r);
    assert_eq!(seqs(&r, 0), vec![1, 5, 9, 20]);
    assert_eq!(e.stats().duplicates_dropped, 2);
}

#[test]
fn active_stream_pushes_back_when_full() {
    // The smallest ring holds two of the largest flip records (4 KiB), whatever `max_payload`.
    let (_e, mut p, _) = engine(EngineConfig::new(7, 2, 4096, 16), Box::new(ManualStage));
    let mut n = 0;
    while push_data(&mut p[0], 0, n).is_ok() {
        n += 1;
    }
    assert_eq!(push_data(&mut p[0], 0, n), Err(PushError::Full));
}

#[test]
fn bad_configurations_are_errors() {
    let mut c = cfg();
    c.streams.clear();
    assert!(matches!(Engine::new(c).err(), Some(EngineError::StreamCount(0))));
    let mut c = cfg();
    c.streams.push(StreamConfig { id: 1, capacity_bytes: 4096 });
    assert!(matches!(Engine::new(c).err(), Some(EngineError::DuplicateStream(1))));
    let mut c = cfg();
    c.initial_stream = 5;
    assert!(matches!(Engine::new(c).err(), Some(EngineError::UnknownInitialStream(5))));
    let mut c = cfg();
    c.max_origins = 0;
    assert!(matches!(Engine::new(c).err(), Some(EngineError::Tracker(_))));
    let mut c = cfg();
    c.streams[1].capacity_bytes = 0;
    assert!(matches!(Engine::new(c).err(), Some(EngineError::Ring(1, _))));
    assert!(!EngineError::StreamCount(0).to_string().is_empty());
}

#[test]
fn duty_cycle_counts_staged_time() {
    let (mut e, mut p, clock) = engine(cfg(), Box::new(ManualStage));
    let mut r = Recorder::default();
    e.poll(1, &mut r);
    clock.advance(1_000);
    e.poll(1, &mut r); // nothing staged for 1000 ns
    push_flip(&mut p[0], 1, &flip(FlipAction::Announce, 1, 1));
    e.poll(8, &mut r); // stages
    clock.advance(3_000);
    e.poll(1, &mut r); // staged for 3000 ns
    assert_eq!(e.stats().observed_ns, 4_000);
    assert_eq!(e.stats().staged_ns, 3_000);
    assert!((e.stats().duty_cycle() - 0.75).abs() < 1e-9);
}

#[test]
fn flip_record_round_trips_through_the_ring() {
    // A flip's locator reaches the application intact through Subscribe.
    let (mut e, mut p, _) = engine(cfg(), Box::new(ManualStage));
    let mut r = Recorder::default();
    let mut f: Flip<'_> = flip(FlipAction::Announce, 1, 1);
    let loc = vec![0xAB; 1024];
    f.locator = &loc;
    push_flip(&mut p[0], 1, &f);
    poll_all(&mut e, &mut r);
    assert!(r.notices().contains(&N::Subscribe {
        stream: 1,
        locator: loc,
        from: StartAt::Live,
        purpose: Purpose::Stage
    }));
}

#[test]
fn a_switch_before_the_previous_one_delivered_still_reports_both() {
    let (mut e, mut p, _) = engine(EngineConfig::new(7, 3, 1 << 16, MAX_PAYLOAD), Box::new(ManualStage));
    let mut r = Recorder::default();
    push_data(&mut p[0], 0, 0).unwrap();
    push_flip(&mut p[0], 5, &flip(FlipAction::Switch, 1, 1));
    poll_all(&mut e, &mut r);
    // Stream 1 (cold) delivers nothing before a flip on it moves on to stream 2.
    push_flip(&mut p[1], 7, &flip(FlipAction::Switch, 2, 2));
    poll_all(&mut e, &mut r);
    push_data(&mut p[2], 0, 1).unwrap();
    poll_all(&mut e, &mut r);
    let switched: Vec<N> = r.notices().into_iter().filter(|n| matches!(n, N::Switched { .. })).collect();
    assert_eq!(
        switched,
        vec![
            N::Switched { from: 0, to: 1, flip_id: 1, seamless: false },
            N::Switched { from: 1, to: 2, flip_id: 2, seamless: false }
        ]
    );
    assert_eq!(seqs(&r, 0), vec![0, 1]);
    assert_eq!(e.stats().switches_cold, 2);
}

#[test]
fn a_flip_behind_the_frontier_on_the_new_stream_is_stale() {
    let (mut e, mut p, _) = engine(cfg(), Box::new(AlwaysStage));
    let mut r = Recorder::default();
    poll_all(&mut e, &mut r);
    // Stream 1 alone carries a SWITCH to 0 at point 5 (written then), meant for recipients
    // reading stream 1 then. This recipient reads stream 0 until the switch written at point 15,
    // so that flip is history by then: behind the frontier and older than the switch.
    for s in 0..20 {
        if s == 5 {
            push_flip_at(&mut p[1], pos_of(1, 5) - 1, 5_000, &flip(FlipAction::Switch, 50, 0));
        }
        if s == 15 {
            push_flip_at(&mut p[0], pos_of(0, 15) - 1, 15_000, &flip(FlipAction::Switch, 1, 1));
        }
        push_data(&mut p[0], 0, s).unwrap();
        let _ = push_data(&mut p[1], 0, s);
    }
    poll_all(&mut e, &mut r);
    assert_eq!(e.active_stream(), 1, "the stale flip did not switch back");
    assert_eq!(e.stats().flips_stale, 1);
    // Not silently: rejected with its reason, and its id left unconsumed.
    assert!(r.notices().contains(&N::Rejected {
        stream: 1,
        pos: pos_of(1, 5) - 1,
        reason: "flip lies behind the delivery frontier and predates the switch to this stream".into()
    }));
    assert_eq!(seqs(&r, 0), (0..20).collect::<Vec<_>>());
}

#[test]
fn a_flip_at_the_frontier_on_the_new_stream_applies() {
    let (mut e, mut p, _) = engine(EngineConfig::new(7, 3, 1 << 16, MAX_PAYLOAD), Box::new(AlwaysStage));
    let mut r = Recorder::default();
    poll_all(&mut e, &mut r);
    // Stream 1 carries, at point 15, an ANNOUNCE only it has; the switch to it is at 15 too.
    for s in 0..20 {
        if s == 15 {
            push_flip(&mut p[0], pos_of(0, 15) - 1, &flip(FlipAction::Switch, 1, 1));
            push_flip(&mut p[1], pos_of(1, 15) - 1, &flip(FlipAction::Switch, 60, 2));
        }
        for pr in p.iter_mut() {
            let _ = push_data(pr, 0, s);
        }
    }
    poll_all(&mut e, &mut r);
    assert_eq!(e.active_stream(), 2, "the flip at the frontier was applied");
    assert_eq!(e.stats().flips_stale, 0);
    assert_eq!(seqs(&r, 0), (0..20).collect::<Vec<_>>());
}

#[test]
fn extreme_positions_and_seqs_do_not_panic() {
    let mut c = cfg();
    c.gap_policy = GapPolicy::ReRead;
    let (mut e, mut p, _) = engine(c, Box::new(NeverStage));
    let mut r = Recorder::default();
    let h = |seq: u64, pos: u64| harmonizer_core::event::EventHeader {
        pos,
        seq,
        ts_ns: u64::MAX,
        origin: 0,
        kind: 0,
        flags: u16::MAX,
    };
    p[0].push(&h(0, u64::MAX), &payload(0, 0)).unwrap();
    p[0].push(&h(u64::MAX, u64::MAX), &payload(0, u64::MAX)).unwrap(); // a gap at the very top
    p[0].push(&h(5, 0), &payload(0, 5)).unwrap();
    poll_all(&mut e, &mut r);
    assert_eq!(seqs(&r, 0), vec![0]);
    // Position 0 after u64::MAX looks like the start of a re-read, still without 1..=4: the same
    // hole (from seq 1) met again, so a second re-read round, and no more (one per re-read,
    // never a spin). One `Gap` per hole.
    assert_eq!(e.stats().gaps, 1);
    assert_eq!(e.stats().rereads, 2);
    assert!(r.notices().iter().any(|n| matches!(
        n,
        N::Subscribe { stream: 0, from: StartAt::Pos(u64::MAX), purpose: Purpose::ReRead { .. }, .. }
    )));
}

/// Issue 19, defect 4: a ring larger than memory is an error, not an abort of the host. (1 TiB
/// is within the capacity limit, so the allocation is tried and refused.)
#[test]
#[cfg_attr(miri, ignore = "Miri cannot be asked for a terabyte")]
fn a_ring_larger_than_memory_is_an_error_not_an_abort() {
    use harmonizer_core::engine::{Engine, EngineConfig, EngineError};
    use harmonizer_core::ring::RingError;
    match Engine::new(EngineConfig::new(1, 2, 1 << 40, 16)) {
        Err(EngineError::Ring(0, RingError::OutOfMemory { bytes })) => assert_eq!(bytes, 1 << 40),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a terabyte ring was allocated"),
    }
}
