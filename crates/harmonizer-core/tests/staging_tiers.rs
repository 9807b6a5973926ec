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
    // No staged stream brings 6..=26 (stream 0 is behind): the gap wait ends, the re-read is
    // asked.
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
