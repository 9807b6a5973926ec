//! loom models of the ring's protocols (see the `# Orderings` section of `harmonizer_core::ring`).
//!
//! Run with: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test --release --test loom_ring`.
//! The ring reports every byte it reads or writes to loom through shadow cells (`sync.rs`), so
//! loom flags an unsynchronised access to record memory as a data race, besides checking the
//! assertions here in every interleaving.

#![cfg(loom)]

use harmonizer_core::event::EventHeader;
use harmonizer_core::ring::{ring, Consumer, Producer, PushError, Record, RingConfig, Role};
use loom::thread;

const MAX_PAYLOAD: usize = 8;

fn header(seq: u64) -> EventHeader {
    EventHeader { pos: seq + 100, seq, ts_ns: 0, origin: 0, kind: 0, flags: 0 }
}

/// Payload lengths chosen so three records wrap a 128-byte ring with a pad frame.
fn len(seq: u64) -> usize {
    [8, 0, 8, 3][seq as usize % 4]
}

fn push(p: &mut Producer, seq: u64) -> Result<(), PushError> {
    let mut slot = p.reserve(len(seq))?;
    *slot.header_mut() = header(seq);
    slot.payload_mut().fill(seq as u8 + 1);
    slot.commit();
    Ok(())
}

/// Pushes until stored, yielding to the consumer on backpressure.
fn push_retrying(p: &mut Producer, seq: u64) {
    loop {
        match push(p, seq) {
            Ok(()) => return,
            Err(PushError::Full) => thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    }
}

fn verify(r: &Record<'_>) -> u64 {
    let seq = r.header.seq;
    assert_eq!(*r.header, header(seq), "torn header");
    assert_eq!(r.payload.len(), len(seq));
    assert!(r.payload.iter().all(|b| *b == seq as u8 + 1), "torn payload");
    seq
}

/// Holds a staged ring's front and checks every record it keeps is whole.
fn verify_staged(c: &mut Consumer) {
    let mut v = c.staged().unwrap();
    let mut it = v.iter();
    while let Some(r) = it.next() {
        verify(&r);
    }
}

fn pop(c: &mut Consumer) -> Option<u64> {
    let seq = verify(&c.peek().unwrap()?);
    c.release().unwrap();
    Some(seq)
}

/// Push/pop across the wrap: three records through a ring that holds two, so the producer wraps
/// (writing a pad frame) while the consumer reads.
#[test]
fn loom_push_pop_across_the_wrap() {
    loom::model(|| {
        let (mut p, mut c) = ring(RingConfig::new(128, MAX_PAYLOAD)).unwrap();
        assert_eq!(p.capacity(), 128);
        let t = thread::spawn(move || {
            for seq in 0..3 {
                push_retrying(&mut p, seq);
            }
        });
        let mut next = 0;
        while next < 3 {
            match pop(&mut c) {
                Some(seq) => {
                    assert_eq!(seq, next);
                    next += 1;
                }
                None => thread::yield_now(),
            }
        }
        t.join().unwrap();
        assert_eq!(pop(&mut c), None);
    });
}

/// A batch published with one store, read with one chunk: the consumer sees none or all.
#[test]
fn loom_batch_publish_is_all_or_nothing() {
    loom::model(|| {
        let (mut p, mut c) = ring(RingConfig::new(256, MAX_PAYLOAD)).unwrap();
        let t = thread::spawn(move || {
            let mut b = p.batch();
            for seq in 0..3 {
                let mut slot = b.reserve(len(seq)).unwrap();
                *slot.header_mut() = header(seq);
                slot.payload_mut().fill(seq as u8 + 1);
                slot.commit();
            }
        });
        let mut got = vec![];
        c.consume(8, |r| got.push(verify(&r))).unwrap();
        assert!(got.is_empty() || got == [0, 1, 2], "{got:?}");
        t.join().unwrap();
    });
}

/// Window eviction against consumer trim: a staged ring with a one-record window; the producer
/// evicts as it pushes while the consumer holds the front to read and trim it.
#[test]
fn loom_window_eviction_against_trim() {
    loom::model(|| {
        let cfg = RingConfig::new(128, MAX_PAYLOAD).with_role(Role::Staged).with_window(1);
        let (mut p, mut c) = ring(cfg).unwrap();
        let t = thread::spawn(move || {
            let mut stored = 0;
            for seq in 0..3 {
                match push(&mut p, seq) {
                    Ok(()) => stored += 1,
                    Err(PushError::Shed) => {}
                    Err(e) => panic!("staged push failed: {e}"),
                }
            }
            stored
        });
        let mut trimmed = vec![];
        for _ in 0..2 {
            let mut v = c.staged().unwrap();
            if let Some(r) = v.front() {
                let seq = verify(&r);
                trimmed.push(seq);
                assert!(v.pop_front());
            }
        }
        let stored = t.join().unwrap();
        assert!(trimmed.windows(2).all(|w| w[0] < w[1]), "{trimmed:?}");
        let remaining = c.staged().unwrap().len() as u64;
        assert_eq!(stored, trimmed.len() as u64 + c.evicted() + remaining);
        assert_eq!(c.dropped(), 3 - stored);
    });
}

/// The staged → active switch racing a push: before the switch the producer evicts down to a
/// one-record window; after it, it gets backpressure. The consumer reads an in-order, untorn
/// suffix ending with the last record, and every record is read or was evicted.
#[test]
fn loom_staged_to_active_switch_racing_a_push() {
    loom::model(|| {
        let cfg = RingConfig::new(128, MAX_PAYLOAD).with_role(Role::Staged).with_window(1);
        let (mut p, mut c) = ring(cfg).unwrap();
        let t = thread::spawn(move || {
            for seq in 0..3 {
                push_retrying(&mut p, seq);
            }
        });
        c.set_role(Role::Active);
        let mut read = vec![];
        while read.last() != Some(&2) {
            match pop(&mut c) {
                Some(seq) => read.push(seq),
                None => thread::yield_now(),
            }
        }
        t.join().unwrap();
        assert!(read.windows(2).all(|w| w[0] < w[1]), "{read:?}");
        assert_eq!(read.len() as u64 + c.evicted(), 3, "read {read:?}, evicted {}", c.evicted());
        assert_eq!(c.dropped(), 0);
    });
}

/// Active → staged → active while the producer pushes: records unread at the first switch stay
/// and are read in order after the second; nothing is read twice.
#[test]
fn loom_active_staged_active_round_trip() {
    loom::model(|| {
        let cfg = RingConfig::new(256, MAX_PAYLOAD).with_window(2);
        let (mut p, mut c) = ring(cfg).unwrap();
        let t = thread::spawn(move || {
            for seq in 0..3 {
                push_retrying(&mut p, seq);
            }
        });
        let mut read = vec![];
        read.extend(pop(&mut c));
        c.set_role(Role::Staged);
        c.set_role(Role::Active);
        while read.last() != Some(&2) {
            match pop(&mut c) {
                Some(seq) => read.push(seq),
                None => thread::yield_now(),
            }
        }
        t.join().unwrap();
        assert!(read.windows(2).all(|w| w[0] < w[1]), "{read:?}");
        assert_eq!(read.len() as u64 + c.evicted(), 3);
    });
}

// The four models below came out of the protocol review: each catches a weakened ordering that
// the models above let through (the Release half of `set_role`'s exchange; the idle path; a
// staged batch evicting its own records; a view reading while the producer evicts).

/// staged -> idle -> active while the producer pushes (evicting, window 1).
#[test]
fn loom_staged_idle_active() {
    loom::model(|| {
        let cfg = RingConfig::new(128, MAX_PAYLOAD).with_role(Role::Staged).with_window(1);
        let (mut p, mut c) = ring(cfg).unwrap();
        let t = thread::spawn(move || {
            for seq in 0..3 {
                match push(&mut p, seq) {
                    Ok(()) | Err(PushError::NotSubscribed) | Err(PushError::Full) => {}
                    Err(e) => panic!("{e}"),
                }
            }
        });
        c.set_role(Role::Idle);
        c.set_role(Role::Active);
        let mut read = vec![];
        read.extend(pop(&mut c));
        t.join().unwrap();
        while let Some(s) = pop(&mut c) {
            read.push(s);
        }
        assert!(read.windows(2).all(|w| w[0] < w[1]), "{read:?}");
    });
}

/// active -> idle -> staged, then a held view reads while the producer evicts.
#[test]
fn loom_active_idle_staged_view() {
    loom::model(|| {
        let cfg = RingConfig::new(128, MAX_PAYLOAD).with_window(1);
        let (mut p, mut c) = ring(cfg).unwrap();
        let t = thread::spawn(move || {
            for seq in 0..3 {
                match push(&mut p, seq) {
                    Ok(()) | Err(PushError::NotSubscribed) | Err(PushError::Shed) | Err(PushError::Full) => {}
                    Err(e) => panic!("{e}"),
                }
            }
        });
        c.set_role(Role::Idle);
        c.set_role(Role::Staged);
        verify_staged(&mut c);
        t.join().unwrap();
    });
}

/// A staged batch larger than the window publishes and evicts its own records while the
/// consumer holds the front and reads.
#[test]
fn loom_staged_batch_evicts_own_records_against_view() {
    loom::model(|| {
        let cfg = RingConfig::new(128, MAX_PAYLOAD).with_role(Role::Staged).with_window(1);
        let (mut p, mut c) = ring(cfg).unwrap();
        let t = thread::spawn(move || {
            let mut b = p.batch();
            for seq in 0..3 {
                match b.push(&header(seq), &vec![seq as u8 + 1; len(seq)]) {
                    Ok(()) | Err(PushError::Shed) => {}
                    Err(e) => panic!("{e}"),
                }
            }
        });
        for _ in 0..2 {
            verify_staged(&mut c);
        }
        t.join().unwrap();
    });
}

/// The consumer reads a record without releasing it, then goes idle and active again: the
/// producer reuses that record's bytes, ordered only by the Release half of `set_role`.
#[test]
fn loom_peek_then_idle_then_reuse() {
    loom::model(|| {
        let (mut p, mut c) = ring(RingConfig::new(128, MAX_PAYLOAD)).unwrap();
        push(&mut p, 0).unwrap(); // [0, 48)
        push(&mut p, 1).unwrap(); // [48, 88)
        let t = thread::spawn(move || loop {
            // 48 bytes: a pad frame [88, 128), then [0, 48), over record 0.
            match push(&mut p, 2) {
                Ok(()) => break,
                Err(PushError::Full) | Err(PushError::NotSubscribed) => thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        });
        verify(&c.peek().unwrap().unwrap());
        c.set_role(Role::Idle);
        c.set_role(Role::Active);
        t.join().unwrap();
    });
}

/// Records lent past the read (`ReadChunk::commit_holding_from`, behind the C API's
/// `hz_engine_next` and `hz_engine_poll_views`) stay whole while the producer pushes on and
/// wraps: their space is not reused until a later commit frees it. loom's shadow cells flag any
/// write to them as a race. (Checked to fail when the hold is removed.)
#[test]
fn loom_a_held_record_is_not_reused_until_released() {
    loom::model(|| {
        let (mut p, mut c) = ring(RingConfig::new(128, MAX_PAYLOAD)).unwrap();
        let t = thread::spawn(move || {
            for seq in 0..6 {
                push_retrying(&mut p, seq);
            }
        });
        let mut next = 0;
        while next < 6 {
            let mut chunk = c.read_chunk(1).unwrap();
            let Some((pos, r)) = chunk.next_with_pos() else {
                thread::yield_now();
                continue;
            };
            assert_eq!(verify(&r), next);
            let (h, payload) = (r.header as *const EventHeader, r.payload.as_ptr());
            let len = r.payload.len();
            chunk.commit_holding_from(pos);
            // The producer runs on; the held record must still read whole.
            thread::yield_now();
            // SAFETY: held until the next commit on this ring, which comes with the next read.
            let (h, payload) = unsafe { (*h, std::slice::from_raw_parts(payload, len)) };
            assert_eq!(h, header(next), "torn held header");
            assert!(payload.iter().all(|b| *b == next as u8 + 1), "torn held payload");
            next += 1;
        }
        t.join().unwrap();
    });
}

// --- The cross-process protocol (src/shm): a side that dies and is replaced. ---
//
// On a ring file the two sides are processes, and either may be killed anywhere and started
// again. What differs from the in-process protocol is only how a side starts: a new producer
// from the published tail, a new consumer from the head word. `Producer::restart` and
// `Consumer::restart` run that same code on a heap ring, so loom checks it against a live
// other side.

/// A producer dies with a record half written (a reservation never committed) and, in a second
/// life, with a batch never published; each successor resumes from the published tail while the
/// consumer reads. The consumer sees exactly the committed, published records, whole, in order:
/// the torn bytes are never readable (a read of them would be a race loom reports) and are
/// overwritten.
#[test]
fn loom_a_restarted_producer_resumes_from_the_published_tail() {
    loom::model(|| {
        let (mut p, mut c) = ring(RingConfig::new(128, MAX_PAYLOAD)).unwrap();
        let t = thread::spawn(move || {
            push_retrying(&mut p, 0);
            // Killed mid-write: header and payload half written, never committed.
            if let Ok(mut slot) = p.reserve(len(1)) {
                *slot.header_mut() = header(99);
                slot.payload_mut().fill(0xEE);
            }
            let mut p = p.restart();
            push_retrying(&mut p, 1);
            // Killed inside a batch: a committed but unpublished record dies with it.
            let mut b = p.batch();
            let _ = b.push(&header(98), &[0xEE; 3]);
            core::mem::forget(b);
            let mut p = p.restart();
            push_retrying(&mut p, 2);
        });
        let mut next = 0;
        while next < 3 {
            match pop(&mut c) {
                Some(seq) => {
                    assert_eq!(seq, next, "lost, repeated or torn record");
                    next += 1;
                }
                None => thread::yield_now(),
            }
        }
        t.join().unwrap();
        assert_eq!(pop(&mut c), None);
    });
}

/// A consumer dies with a record read but not released, while the producer keeps pushing; its
/// successor reads on from the last release: the unreleased record comes again, then the
/// rest, in order, none lost; the producer never overwrites the unreleased record meanwhile.
#[test]
fn loom_a_restarted_consumer_resumes_from_its_last_release() {
    loom::model(|| {
        let (mut p, mut c) = ring(RingConfig::new(128, MAX_PAYLOAD)).unwrap();
        let t = thread::spawn(move || {
            for seq in 0..3 {
                push_retrying(&mut p, seq);
            }
        });
        // Read and release record 0.
        let first = loop {
            match pop(&mut c) {
                Some(seq) => break seq,
                None => thread::yield_now(),
            }
        };
        assert_eq!(first, 0);
        // Read record 1 without releasing it, then die.
        let held = loop {
            // The chunk is never committed: nothing is released.
            let seq = c.read_chunk(1).unwrap().next().map(|r| verify(&r));
            match seq {
                Some(seq) => break seq,
                None => thread::yield_now(),
            }
        };
        assert_eq!(held, 1);
        let mut c = c.restart();
        let mut next = 1;
        while next < 3 {
            match pop(&mut c) {
                Some(seq) => {
                    assert_eq!(seq, next, "a restarted consumer must go on from its last release");
                    next += 1;
                }
                None => thread::yield_now(),
            }
        }
        t.join().unwrap();
    });
}

/// A staged ring's producer dies mid-eviction-loop and its successor evicts on, while the
/// consumer holds the front and trims: the successor's evictions are compare-exchanges on the
/// same head word, so no record the consumer holds is overwritten and whatever it reads is whole.
#[test]
fn loom_a_restarted_staged_producer_evicts_safely_against_a_held_front() {
    loom::model(|| {
        let (mut p, mut c) =
            ring(RingConfig::new(128, MAX_PAYLOAD).with_role(Role::Staged).with_window(1)).unwrap();
        let t = thread::spawn(move || {
            let _ = push(&mut p, 0);
            let mut p = p.restart();
            let _ = push(&mut p, 1);
            let _ = push(&mut p, 2);
        });
        verify_staged(&mut c);
        {
            let mut v = c.staged().unwrap();
            v.pop_front();
        }
        verify_staged(&mut c);
        t.join().unwrap();
        verify_staged(&mut c);
    });
}

/// The doorbell (`ring::wake`, `# Orderings`): a producer publishes while the consumer decides
/// to sleep. In every interleaving the consumer ends up seeing the record; a lost wakeup would
/// leave it sleeping (here: yielding on an unchanged bell) for ever, which loom reports.
#[test]
fn loom_wait_no_lost_wakeup() {
    loom::model(|| {
        let (mut p, mut c) = ring(RingConfig::new(128, MAX_PAYLOAD)).unwrap();
        let t = thread::spawn(move || {
            push(&mut p, 0).unwrap();
            p
        });
        assert!(c.wait(u64::MAX), "woken with the record");
        assert_eq!(c.consume(4, |r| assert_eq!(r.header.seq, 0)).unwrap(), 1);
        drop(t.join().unwrap());
    });
}

/// Two records, the consumer waiting between them: the second publish rings again once the
/// consumer sleeps anew.
#[test]
fn loom_wait_twice() {
    loom::model(|| {
        let (mut p, mut c) = ring(RingConfig::new(128, MAX_PAYLOAD)).unwrap();
        let t = thread::spawn(move || {
            push(&mut p, 0).unwrap();
            push(&mut p, 1).unwrap();
            p
        });
        let mut next = 0u64;
        while next < 2 {
            assert!(c.wait(u64::MAX));
            c.consume(4, |r| {
                assert_eq!(r.header.seq, next);
                next += 1;
            })
            .unwrap();
        }
        drop(t.join().unwrap());
    });
}
