//! Issue 16, the lossy staging tiers (docs/staging.md).
//!
//! **Identity tier.** A staged stream whose window is too short for its lead over the active
//! stream evicts records the recipient has not delivered yet. With the tier on, its ring logs
//! the identity of every record it evicts, so a switch to it asks the re-read from the exact
//! position after the frontier; without it, the start is only "after (origin, seq)", which the
//! application must search for.

#![cfg(not(loom))]

mod common;

use common::*;
use harmonizer_core::engine::{AlwaysStage, EngineConfig, Purpose, StartAt};
use harmonizer_core::flip::FlipAction;

const MS: u64 = 1_000_000;

/// Stream 1 leads stream 0 by 25 events with a window of 4: at the switch its ring holds
/// seqs 27..=30 and has evicted 1..=26, of which 6..=26 are not delivered. Returns the
/// re-read's start, the gap reported, the identity starts counted, and the seqs delivered once
/// the application re-read stream 1 from where it was asked to (the whole log from seq 1 when
/// the start is not a position: the search's worst case).
fn short_window_switch(identity_records: usize) -> (StartAt, Vec<N>, u64, Vec<u64>) {
    short_window_switch_filled(identity_records, 0)
}

/// As [`short_window_switch`], with stream 0 (now staged, behind) bringing seqs 6 ..= 5 + `filled`
/// during the gap wait: they fill the hole's start, and the re-read starts after them.
fn short_window_switch_filled(identity_records: usize, filled: u64) -> (StartAt, Vec<N>, u64, Vec<u64>) {
    let mut c = EngineConfig::new(7, 2, 1 << 16, 64);
    c.default_window = 4;
    c.identity_records = identity_records;
    let (mut e, mut p, clock) = engine(c, Box::new(AlwaysStage));
    let mut r = Recorder::default();
    e.poll(64, &mut r); // stages stream 1
    for seq in 1..=30 {
        push_data(&mut p[1], 0, seq).unwrap();
    }
    for seq in 1..=5 {
        push_data(&mut p[0], 0, seq).unwrap();
    }
    push_flip(&mut p[0], pos_of(0, 5) + 1, &flip(FlipAction::Switch, 9, 1));
    poll_all(&mut e, &mut r);
    clock.advance(MS);
    for seq in 6..6 + filled {
        push_data(&mut p[0], 0, seq).unwrap();
    }
    poll_all(&mut e, &mut r);
    // No staged stream brings the rest of 6..=26 (stream 0 is behind): the gap wait ends, the
    // re-read is asked.
    clock.advance(100 * MS);
    poll_all(&mut e, &mut r);
    let reread = r
        .subscribes()
        .into_iter()
        .find(|(s, _, p)| *s == 1 && matches!(p, Purpose::ReRead { .. }))
        .map(|(_, from, _)| from)
        .expect("a re-read of stream 1");
    let gaps: Vec<N> = r.notices().into_iter().filter(|n| matches!(n, N::Gap { .. })).collect();
    // The application re-reads stream 1: from the position named, else from its start.
    let first = match reread {
        StartAt::Pos(pos) => (1..=35).find(|&s| pos_of(1, s) >= pos).unwrap(),
        _ => 1,
    };
    for seq in first..=35 {
        push_data(&mut p[1], 0, seq).unwrap();
    }
    poll_all(&mut e, &mut r);
    let seqs = r.delivered().into_iter().map(|(_, s)| s).collect();
    (reread, gaps, e.stats().identity_starts, seqs)
}

#[test]
fn the_identity_tier_names_the_exact_position_to_re_read() {
    let (from, gaps, starts, seqs) = short_window_switch(64);
    // Just after seq 5, the last delivered, on stream 1: known although the window evicted it.
    assert_eq!(from, StartAt::Pos(pos_of(1, 5) + 1));
    assert_eq!(gaps, [N::Gap { stream: 1, origin: 0, from: 6, to: 26 }]);
    assert_eq!(starts, 1);
    assert_eq!(seqs, (1..=35).collect::<Vec<_>>(), "exactly once, in order");
}

#[test]
fn without_the_tier_the_start_is_a_seq_to_search_for() {
    let (from, gaps, starts, seqs) = short_window_switch(0);
    assert_eq!(from, StartAt::AfterSeq { origin: 0, seq: 5 });
    assert_eq!(gaps, [N::Gap { stream: 1, origin: 0, from: 6, to: 26 }]);
    assert_eq!(starts, 0);
    // The worst-case search re-reads from the start: duplicates are dropped, nothing is lost.
    assert_eq!(seqs, (1..=35).collect::<Vec<_>>());
}

#[test]
fn a_log_too_short_for_the_lead_says_so_rather_than_guess() {
    // 4 slots keep the last 3 evictions (24..=26): neither seq 5 nor seq 6 is among them.
    let (from, _, starts, seqs) = short_window_switch(4);
    assert_eq!(from, StartAt::AfterSeq { origin: 0, seq: 5 });
    assert_eq!(starts, 0);
    assert_eq!(seqs, (1..=35).collect::<Vec<_>>());
}

#[test]
fn the_log_reaches_back_to_the_successor_of_the_frontier() {
    // 22 slots keep the last 21 evictions, 6..=26: seq 6's own position is the start.
    let (from, _, starts, seqs) = short_window_switch(22);
    assert_eq!(from, StartAt::Pos(pos_of(1, 6)));
    assert_eq!(starts, 1);
    assert_eq!(seqs, (1..=35).collect::<Vec<_>>());
}

#[test]
fn the_start_follows_the_frontier_when_the_old_stream_fills_part_of_the_hole() {
    // Stream 0, behind, brings 6..=9 during the gap wait: the re-read starts after seq 9, whose
    // record the window evicted too.
    let (from, gaps, starts, seqs) = short_window_switch_filled(64, 4);
    assert_eq!(from, StartAt::Pos(pos_of(1, 9) + 1));
    assert_eq!(gaps, [N::Gap { stream: 1, origin: 0, from: 10, to: 26 }]);
    assert!(starts >= 1);
    assert_eq!(seqs, (1..=35).collect::<Vec<_>>());
    let (from, ..) = short_window_switch_filled(0, 4);
    assert_eq!(from, StartAt::AfterSeq { origin: 0, seq: 9 });
}

// ---------------------------------------------------------------------------------------------
// The conflation tier.

use harmonizer_core::event::{EventHeader, FLAG_CONFLATABLE, KIND_DATA};

/// Seq `seq` of origin 0 on `stream`, marked conflatable (unless `plain`) with key `seq % 8`.
fn marked(p: &mut harmonizer_core::engine::StreamProducer, seq: u64, plain: bool) {
    let stream = p.stream();
    let h = EventHeader {
        pos: pos_of(stream, seq),
        seq,
        ts_ns: seq * 1_000,
        origin: 0,
        kind: KIND_DATA,
        flags: if plain { 0 } else { FLAG_CONFLATABLE },
    };
    let payload = if plain { payload(0, seq) } else { conflatable_payload(seq) };
    p.push(&h, &payload).unwrap();
}

struct Conflation {
    notices: Vec<N>,
    seqs: Vec<u64>,
    rereads: Vec<StartAt>,
    stats: harmonizer_core::engine::Stats,
}

/// Stream 1 leads by 25 events with a window of 4, every event marked with key `seq % 8` but
/// `plain`; `burst`: its 30 records arrive before the engine looks at any. After the switch the
/// application re-reads stream 1 from where it is asked to, if it is asked.
fn conflation_run(plain: &[u64], burst: bool) -> Conflation {
    let mut c = EngineConfig::new(7, 2, 1 << 16, 64);
    c.default_window = 4;
    c.identity_records = 64;
    c.conflation_keys = 16;
    let (mut e, mut p, clock) = engine(c, Box::new(AlwaysStage));
    let mut r = Recorder::default();
    e.poll(64, &mut r); // stages stream 1
    for seq in 1..=30 {
        marked(&mut p[1], seq, plain.contains(&seq));
        if !burst {
            e.poll(64, &mut r); // the engine looks at each record as it arrives
        }
    }
    for seq in 1..=5 {
        marked(&mut p[0], seq, plain.contains(&seq));
    }
    push_flip(&mut p[0], pos_of(0, 5) + 1, &flip(FlipAction::Switch, 9, 1));
    poll_all(&mut e, &mut r);
    clock.advance(100 * MS);
    poll_all(&mut e, &mut r);
    let rereads: Vec<StartAt> = r
        .subscribes()
        .into_iter()
        .filter(|(s, _, p)| *s == 1 && matches!(p, Purpose::ReRead { .. }))
        .map(|(_, from, _)| from)
        .collect();
    if let Some(StartAt::Pos(pos)) = rereads.first() {
        let first = (1..=30).find(|&s| pos_of(1, s) >= *pos).unwrap();
        for seq in first..=30 {
            marked(&mut p[1], seq, plain.contains(&seq));
        }
    }
    for seq in 31..=35 {
        marked(&mut p[1], seq, false);
    }
    poll_all(&mut e, &mut r);
    Conflation {
        notices: r.notices(),
        seqs: r.delivered().into_iter().map(|(_, s)| s).collect(),
        rereads,
        stats: *e.stats(),
    }
}

#[test]
fn the_conflation_tier_delivers_each_keys_latest_and_reports_the_rest() {
    let c = conflation_run(&[], false);
    // The hole 6..=26: keys 3, 4, 5 and 6 come again in the window (27..=30), so only the
    // latest of keys 7, 0, 1 and 2 survive: 23, 24, 25, 26. The other 17 are reported.
    let conflated: Vec<&N> = c.notices.iter().filter(|n| matches!(n, N::Conflated { .. })).collect();
    assert_eq!(conflated, [&N::Conflated { stream: 1, origin: 0, from: 6, to: 26, dropped: 17 }]);
    let expected: Vec<u64> = (1..=5).chain(23..=35).collect();
    assert_eq!(c.seqs, expected);
    assert!(c.rereads.is_empty(), "no re-read: {:?}", c.rereads);
    assert!(!c.notices.iter().any(|n| matches!(n, N::Gap { .. } | N::Lost { .. })), "{:?}", c.notices);
    assert!(c.notices.contains(&N::Switched { from: 0, to: 1, flip_id: 9, seamless: false }));
    assert_eq!((c.stats.conflated, c.stats.conflation_survivors, c.stats.conflation_fallbacks), (17, 4, 0));
    // What the notice says is exactly what was not delivered.
    let missing = (6..=26).filter(|s| !c.seqs.contains(s)).count() as u64;
    assert_eq!(missing, 17);
}

#[test]
fn an_unmarked_event_in_the_hole_is_re_read_not_conflated() {
    let c = conflation_run(&[15], false);
    assert!(!c.notices.iter().any(|n| matches!(n, N::Conflated { .. })), "{:?}", c.notices);
    assert_eq!(c.rereads, [StartAt::Pos(pos_of(1, 5) + 1)], "the exact re-read, from the identity tier");
    assert_eq!(c.seqs, (1..=35).collect::<Vec<_>>(), "exactly once, nothing dropped");
    assert_eq!((c.stats.conflated, c.stats.conflation_fallbacks), (0, 1));
}

#[test]
fn a_key_whose_latest_was_never_looked_at_is_re_read_not_guessed() {
    // The 30 records arrive in one burst: the engine looked only at what the window kept.
    let c = conflation_run(&[], true);
    assert!(!c.notices.iter().any(|n| matches!(n, N::Conflated { .. })), "{:?}", c.notices);
    assert_eq!(c.seqs, (1..=35).collect::<Vec<_>>());
    assert_eq!((c.stats.conflated, c.stats.conflation_fallbacks), (0, 1));
}

#[test]
fn conflation_needs_the_identity_tier_and_bounded_sizes() {
    let mut c = EngineConfig::new(7, 2, 1 << 16, 64);
    c.conflation_keys = 16;
    let err = |c: &EngineConfig| harmonizer_core::engine::Engine::new(c.clone()).err().map(|e| e.to_string());
    assert!(err(&c).is_some_and(|e| e.contains("identity")), "{:?}", err(&c));
    c.identity_records = 8;
    assert_eq!(err(&c), None);
    c.conflation_keys = harmonizer_core::engine::MAX_CONFLATION_KEYS + 1;
    assert!(err(&c).is_some_and(|e| e.contains("MAX_CONFLATION_KEYS")));
    c.conflation_keys = 4;
    c.conflation_payload = harmonizer_core::engine::MAX_CONFLATION_PAYLOAD + 1;
    assert!(err(&c).is_some_and(|e| e.contains("MAX_CONFLATION_PAYLOAD")));
}

#[test]
fn a_start_at_position_zero_is_not_claimed() {
    // Issue 16 review: the frontier's successor logged at position 0 (the stream's first
    // record). The engine's table cannot hold "read from 0" (its 0 means "nothing seen"), so
    // the start stays a seq to search for, and no identity start is counted for it.
    let mut c = EngineConfig::new(7, 2, 1 << 16, 64);
    c.default_window = 4;
    c.identity_records = 64;
    let (mut e, mut p, clock) = engine(c, Box::new(AlwaysStage));
    let mut r = Recorder::default();
    e.poll(64, &mut r);
    for seq in 6..=30 {
        let h = EventHeader { pos: seq - 6, seq, ts_ns: seq, origin: 0, kind: KIND_DATA, flags: 0 };
        p[1].push(&h, &payload(0, seq)).unwrap();
    }
    for seq in 1..=5 {
        push_data(&mut p[0], 0, seq).unwrap();
    }
    push_flip(&mut p[0], pos_of(0, 5) + 1, &flip(FlipAction::Switch, 9, 1));
    poll_all(&mut e, &mut r);
    clock.advance(100 * MS);
    poll_all(&mut e, &mut r);
    let reread = r.subscribes().into_iter().find(|(s, _, p)| *s == 1 && matches!(p, Purpose::ReRead { .. }));
    assert_eq!(reread.map(|x| x.1), Some(StartAt::AfterSeq { origin: 0, seq: 5 }));
    assert_eq!(e.stats().identity_starts, 0);
}
