//! `Engine::wait` (issue 12, defect 7): sleeps until the active stream's producer publishes or
//! a timeout passes. Timeouts here are generous bounds that only a lost wakeup would reach,
//! not speed goals (those live in `benches/engine.rs`).

#![cfg(not(loom))]

mod common;

use std::time::{Duration, Instant};

use common::*;
use harmonizer_core::engine::{EngineConfig, ManualStage};

fn cfg() -> EngineConfig {
    EngineConfig::new(7, 2, 1 << 16, 64)
}

#[test]
fn a_push_from_another_thread_wakes_a_waiting_engine() {
    let (mut e, mut p, _) = engine(cfg(), Box::new(ManualStage));
    let mut r = Recorder::default();
    e.poll(64, &mut r); // the first poll (the initial Subscribe)
    let mut p0 = p.remove(0);
    for round in 0..50u64 {
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(2));
            push_data(&mut p0, 0, round).unwrap();
            p0
        });
        let start = Instant::now();
        assert!(e.wait(Duration::from_secs(20)), "woken with a record ready");
        assert!(start.elapsed() < Duration::from_secs(10), "woken by the push, not the timeout");
        p0 = t.join().unwrap();
        assert_eq!(e.poll(64, &mut r), 1);
    }
    assert_eq!(r.delivered().len(), 50);
}

#[test]
fn a_wait_with_nothing_coming_times_out() {
    let (mut e, _p, _) = engine(cfg(), Box::new(ManualStage));
    let mut r = Recorder::default();
    e.poll(64, &mut r);
    let start = Instant::now();
    assert!(!e.wait(Duration::from_millis(30)));
    assert!(start.elapsed() >= Duration::from_millis(30));
}

#[test]
fn a_wait_returns_at_once_when_records_are_ready_or_the_first_poll_is_due() {
    let (mut e, mut p, _) = engine(cfg(), Box::new(ManualStage));
    let mut r = Recorder::default();
    assert!(e.wait(Duration::from_secs(20)), "the first poll has work of its own");
    e.poll(64, &mut r);
    push_data(&mut p[0], 0, 0).unwrap();
    let start = Instant::now();
    assert!(e.wait(Duration::from_secs(20)));
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(e.poll(64, &mut r), 1);
    assert!(!e.wait(Duration::ZERO), "nothing left: a zero timeout returns at once, not ready");
}

#[test]
fn many_wakes_race_no_lost_wakeup() {
    // The producer pushes while the consumer goes to sleep, many times over: every round ends
    // with the record seen long before the timeout.
    let (mut e, mut p, _) = engine(cfg(), Box::new(ManualStage));
    let mut r = Recorder::default();
    e.poll(64, &mut r);
    let mut p0 = p.remove(0);
    let (tx, rx) = std::sync::mpsc::channel::<u64>();
    let t = std::thread::spawn(move || {
        while let Ok(seq) = rx.recv() {
            // Spin a little so the push lands at a different moment of the consumer's wait.
            for _ in 0..(seq % 64) * 50 {
                std::hint::spin_loop();
            }
            while push_data(&mut p0, 0, seq).is_err() {
                std::thread::yield_now();
            }
        }
    });
    for seq in 0..2_000u64 {
        tx.send(seq).unwrap();
        let start = Instant::now();
        while e.poll(64, &mut r) == 0 {
            assert!(e.wait(Duration::from_secs(20)) || start.elapsed() < Duration::from_secs(10));
            assert!(start.elapsed() < Duration::from_secs(10), "round {seq}: a lost wakeup");
        }
    }
    drop(tx);
    t.join().unwrap();
    assert_eq!(r.delivered().len(), 2_000);
}

/// Issue 19, defect 7 made a hole wait for a lagging staged stream, delivery held at the gap
/// event. The active stream's next record is then already there, so a wait on it returned at
/// once and a `poll`/`wait` loop (the connector driver's) spun for the whole wait, and without
/// end at a stuck gap. Now the wait sleeps on the staged stream, whose next publish wakes it.
#[test]
fn a_wait_held_at_a_gap_sleeps_until_a_staged_stream_publishes() {
    let mut c = cfg();
    c.gap_policy = harmonizer_core::engine::GapPolicy::ReportLost;
    c.liveness.gap_wait_ns = 600_000_000_000; // engine clock: longer than this test
    let (mut e, mut p, _) = engine(c, Box::new(ManualStage));
    let mut r = Recorder::default();
    e.poll(64, &mut r);
    e.arm(1);
    e.poll(64, &mut r); // stream 1 staged
    push_data(&mut p[1], 0, 0).unwrap(); // lagging: nothing of the origin past the hole yet
    push_data(&mut p[0], 0, 0).unwrap();
    push_data(&mut p[0], 0, 2).unwrap(); // seq 1 missing on the active stream
    e.poll(64, &mut r);
    assert_eq!(r.delivered().len(), 1, "delivery holds at the gap");

    // Nothing comes: the wait sleeps its timeout (it used to return at once).
    let start = Instant::now();
    assert!(!e.wait(Duration::from_millis(30)));
    assert!(start.elapsed() >= Duration::from_millis(30));

    // The lagging stream brings the missing event: that wakes it.
    let mut p1 = p.remove(1);
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(2));
        push_data(&mut p1, 0, 1).unwrap();
        p1
    });
    let start = Instant::now();
    assert!(e.wait(Duration::from_secs(20)), "woken by the staged stream's publish");
    assert!(start.elapsed() < Duration::from_secs(10), "woken by the publish, not the timeout");
    t.join().unwrap();
    e.poll(64, &mut r);
    assert_eq!(r.delivered().len(), 3, "the hole filled, then the held event");
    assert_eq!(e.stats().gaps_filled_by_wait, 1);
}
