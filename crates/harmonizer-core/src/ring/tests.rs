//! Unit tests of the ring, single-threaded (they also run under Miri).

use super::*;
use crate::event::EventHeader;

fn hdr(seq: u64) -> EventHeader {
    EventHeader { pos: seq * 10, seq, ts_ns: seq * 1000, origin: 3, kind: 0, flags: 0 }
}

fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (seq as usize * 31 + i) as u8).collect()
}

fn pop(c: &mut Consumer) -> Option<(EventHeader, Vec<u8>, bool)> {
    let r = c.peek().unwrap()?;
    let out = (*r.header, r.payload.to_vec(), r.after_drop);
    c.release().unwrap();
    Some(out)
}

fn check_pop(c: &mut Consumer, seq: u64, len: usize) {
    let (h, p, _) = pop(c).unwrap_or_else(|| panic!("expected seq {seq}"));
    assert_eq!(h, hdr(seq));
    assert_eq!(p, payload(seq, len));
}

#[test]
fn config_errors_are_reported() {
    assert_eq!(ring(RingConfig::new(0, 16)).err(), Some(RingError::ZeroCapacity));
    assert!(matches!(
        ring(RingConfig::new(MAX_CAPACITY + 1, 16)).err(),
        Some(RingError::CapacityTooLarge { .. })
    ));
    assert!(matches!(ring(RingConfig::new(64, 1000)).err(), Some(RingError::CapacityTooSmall { .. })));
    assert!(matches!(
        ring(RingConfig::new(1 << 20, MAX_PAYLOAD_LIMIT + 1)).err(),
        Some(RingError::MaxPayloadTooLarge { .. })
    ));
    assert!(matches!(
        ring_with_storage(RingConfig::new(4096, 64), HeapStorage::new(256).unwrap()).err(),
        Some(RingError::BadStorage { .. })
    ));
    assert!(HeapStorage::new(100).is_err());
    assert!(HeapStorage::new(0).is_err());
    assert_eq!(HeapStorage::new(128).unwrap().as_ptr() as usize % storage::HEAP_ALIGN, 0);
    // Rounded up to a power of two.
    let (p, _c) = ring(RingConfig::new(1000, 64)).unwrap();
    assert_eq!(p.capacity(), 1024);
    for e in [RingError::ZeroCapacity, RingError::NothingToRelease] {
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn push_pop_in_order_with_variable_sizes_and_wrap() {
    let (mut p, mut c) = ring(RingConfig::new(512, 100)).unwrap();
    let mut next_pop = 0u64;
    for seq in 0..500u64 {
        let len = (seq as usize * 7) % 101;
        loop {
            match p.push(&hdr(seq), &payload(seq, len)) {
                Ok(()) => break,
                Err(PushError::Full) => {
                    let l = (next_pop as usize * 7) % 101;
                    check_pop(&mut c, next_pop, l);
                    next_pop += 1;
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
    while next_pop < 500 {
        check_pop(&mut c, next_pop, (next_pop as usize * 7) % 101);
        next_pop += 1;
    }
    assert!(pop(&mut c).is_none());
}

#[test]
fn full_active_ring_pushes_back_and_oversize_is_rejected() {
    let (mut p, mut c) = ring(RingConfig::new(256, 24)).unwrap();
    // 64-byte frames: exactly four fit.
    for s in 0..4 {
        p.push(&hdr(s), &payload(s, 24)).unwrap();
    }
    assert_eq!(p.push(&hdr(4), &payload(4, 24)), Err(PushError::Full));
    assert_eq!(p.push(&hdr(4), &[0; 25]), Err(PushError::TooLarge { len: 25, max: 24 }));
    check_pop(&mut c, 0, 24);
    p.push(&hdr(4), &payload(4, 24)).unwrap();
    for s in 1..5 {
        check_pop(&mut c, s, 24);
    }
}

#[test]
fn release_without_peek_is_an_error() {
    let (mut p, mut c) = ring(RingConfig::new(256, 24)).unwrap();
    assert_eq!(c.release(), Err(RingError::NothingToRelease));
    p.push(&hdr(0), &[]).unwrap();
    assert!(c.peek().unwrap().is_some());
    c.release().unwrap();
    assert_eq!(c.release(), Err(RingError::NothingToRelease));
}

#[test]
fn peek_twice_returns_the_same_record() {
    let (mut p, mut c) = ring(RingConfig::new(256, 24)).unwrap();
    p.push(&hdr(0), &[1]).unwrap();
    p.push(&hdr(1), &[2]).unwrap();
    assert_eq!(c.peek().unwrap().unwrap().header.seq, 0);
    assert_eq!(c.peek().unwrap().unwrap().header.seq, 0);
    c.release().unwrap();
    assert_eq!(c.peek().unwrap().unwrap().header.seq, 1);
}

#[test]
fn wrong_role_calls_are_errors() {
    let (_p, mut c) = ring(RingConfig::new(256, 24).with_role(Role::Staged)).unwrap();
    assert!(matches!(c.peek(), Err(RingError::WrongRole { expected: Role::Active, actual: Role::Staged })));
    assert!(c.read_chunk(4).is_err());
    c.set_role(Role::Active);
    assert!(matches!(
        c.staged().err(),
        Some(RingError::WrongRole { expected: Role::Staged, actual: Role::Active })
    ));
}

#[test]
fn idle_ring_discards() {
    let (mut p, mut c) = ring(RingConfig::new(256, 24).with_role(Role::Idle)).unwrap();
    assert_eq!(p.push(&hdr(0), &[]), Err(PushError::NotSubscribed));
    let e = c.set_role(Role::Active);
    assert_eq!(e, 1);
    p.push(&hdr(1), &[]).unwrap();
    assert_eq!(p.epoch(), 1);
    assert_eq!(p.role(), Role::Active);
    check_pop(&mut c, 1, 0);
    // Active -> idle discards what is waiting; the producer sees it on its next push.
    p.push(&hdr(2), &[]).unwrap();
    c.set_role(Role::Idle);
    assert_eq!(p.push(&hdr(3), &[]), Err(PushError::NotSubscribed));
    c.set_role(Role::Active);
    assert!(pop(&mut c).is_none());
}

#[test]
fn staged_ring_keeps_the_most_recent_window() {
    let (mut p, mut c) = ring(RingConfig::new(4096, 24).with_role(Role::Staged).with_window(5)).unwrap();
    for s in 0..20 {
        p.push(&hdr(s), &payload(s, 24)).unwrap(); // never Full
    }
    assert_eq!(c.evicted(), 15);
    {
        let mut v = c.staged().unwrap();
        assert_eq!(v.len(), 5);
        assert_eq!(v.front().unwrap().header.seq, 15);
    }
    // Shrinking the window applies at the next push.
    assert_eq!(c.set_window(2), 2);
    p.push(&hdr(20), &payload(20, 24)).unwrap();
    {
        let mut v = c.staged().unwrap();
        let mut it = v.iter();
        assert_eq!(it.next().unwrap().header.seq, 19);
        assert_eq!(it.next().unwrap().header.seq, 20);
        assert!(it.next().is_none());
    }
    assert_eq!(c.set_window(0), 1);
    assert_eq!(c.set_window(usize::MAX), c.max_records());
}

#[test]
fn staged_ring_evicts_by_bytes_when_records_are_large() {
    // 512 bytes hold at most 4 frames of 128; window 100 is capped by space.
    let (mut p, mut c) = ring(RingConfig::new(512, 88).with_role(Role::Staged)).unwrap();
    for s in 0..50 {
        p.push(&hdr(s), &payload(s, 88)).unwrap();
    }
    let mut v = c.staged().unwrap();
    assert_eq!(v.len(), 4);
    assert_eq!(v.front().unwrap().header.seq, 46);
    let mut it = v.iter();
    for s in 46..50 {
        let r = it.next().unwrap();
        assert_eq!((r.header.seq, r.payload), (s, &payload(s, 88)[..]));
    }
}

#[test]
fn consumer_trims_staged_records() {
    let (mut p, mut c) = ring(RingConfig::new(4096, 24).with_role(Role::Staged).with_window(50)).unwrap();
    for s in 0..10 {
        p.push(&hdr(s), &[]).unwrap();
    }
    {
        let mut v = c.staged().unwrap();
        assert_eq!(v.trim_while(|r| r.header.seq < 4), 4);
        assert!(v.pop_front());
        assert_eq!(v.front().unwrap().header.seq, 5);
    }
    c.set_role(Role::Active);
    for s in 5..10 {
        check_pop(&mut c, s, 0);
    }
    assert!(pop(&mut c).is_none());
    assert_eq!(c.evicted(), 0);
}

#[test]
fn held_front_sheds_when_full_and_flags_the_gap() {
    let (mut p, mut c) = ring(RingConfig::new(256, 24).with_role(Role::Staged).with_window(2)).unwrap();
    for s in 0..2 {
        p.push(&hdr(s), &payload(s, 24)).unwrap();
    }
    {
        let _held = c.staged().unwrap();
        // Window exceeded while held but space remains: stored.
        p.push(&hdr(2), &payload(2, 24)).unwrap();
        p.push(&hdr(3), &payload(3, 24)).unwrap();
        // No space: shed, counted.
        assert_eq!(p.push(&hdr(4), &payload(4, 24)), Err(PushError::Shed));
        assert_eq!(p.dropped(), 1);
    }
    assert_eq!(c.dropped(), 1);
    p.push(&hdr(5), &payload(5, 24)).unwrap();
    c.set_role(Role::Active);
    let got: Vec<_> = std::iter::from_fn(|| pop(&mut c)).map(|(h, _, d)| (h.seq, d)).collect();
    // Window 2 was restored by the push after the hold ended; seq 5 is flagged.
    assert_eq!(got, vec![(3, false), (5, true)]);
}

#[test]
fn active_to_staged_keeps_unread_records() {
    let (mut p, mut c) = ring(RingConfig::new(4096, 24).with_window(3)).unwrap();
    for s in 0..6 {
        p.push(&hdr(s), &[]).unwrap();
    }
    check_pop(&mut c, 0, 0);
    c.set_role(Role::Staged);
    p.push(&hdr(6), &[]).unwrap(); // the producer notices the epoch and evicts down to 3
    let mut v = c.staged().unwrap();
    assert_eq!(v.front().unwrap().header.seq, 4);
    assert_eq!(v.len(), 3);
}

#[test]
fn batches_publish_once() {
    let (mut p, mut c) = ring(RingConfig::new(4096, 24)).unwrap();
    {
        let mut b = p.batch();
        for s in 0..10 {
            b.push(&hdr(s), &payload(s, 8)).unwrap();
        }
        assert!(c.is_empty(), "nothing is visible before the batch publishes");
        b.publish();
    }
    let mut seen = vec![];
    {
        let mut chunk = c.read_chunk(4).unwrap();
        while let Some(r) = chunk.next() {
            seen.push(r.header.seq);
        }
        assert_eq!(chunk.len(), 4);
        // Dropped uncommitted: nothing freed.
    }
    let n = c.consume(100, |r| seen.push(r.header.seq)).unwrap();
    assert_eq!(n, 10);
    assert_eq!(seen, (0..4).chain(0..10).collect::<Vec<_>>());
    assert_eq!(c.consume(100, |_| ()).unwrap(), 0);
}

#[test]
fn uncommitted_slot_writes_nothing() {
    let (mut p, mut c) = ring(RingConfig::new(4096, 24)).unwrap();
    {
        let mut s = p.reserve(8).unwrap();
        s.payload_mut().fill(7);
    }
    let mut s = p.reserve(3).unwrap();
    *s.header_mut() = hdr(9);
    s.payload_mut().copy_from_slice(&[1, 2, 3]);
    assert_eq!(s.payload_len(), 3);
    s.commit();
    let (h, pl, _) = pop(&mut c).unwrap();
    assert_eq!((h.seq, pl), (9, vec![1, 2, 3]));
    assert!(pop(&mut c).is_none());
}

#[test]
fn detached_reservations_commit_once_and_only_the_newest() {
    let (mut p, mut c) = ring(RingConfig::new(256, 24)).unwrap();
    let (mut other, _oc) = ring(RingConfig::new(256, 24)).unwrap();
    // Fill through the raw pointer, commit with the header: the record comes out whole.
    for seq in 0..40u64 {
        let r = p.reserve_detached(20).unwrap();
        assert_eq!(r.payload_len(), 20);
        let at = p.reserved_payload(&r);
        assert!(!at.is_null());
        let bytes = payload(seq, 20);
        // SAFETY: `r` is the producer's newest reservation, uncommitted: 20 writable bytes.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), at, 20) };
        p.commit_detached(r, &hdr(seq)).unwrap();
        check_pop(&mut c, seq, 20); // wraps the 256-byte ring several times
    }
    // A reservation overtaken by a newer one, or by a push, is refused and writes nothing.
    let old = p.reserve_detached(4).unwrap();
    let new = p.reserve_detached(4).unwrap();
    assert_eq!(p.commit_detached(old, &hdr(1)), Err(StaleReservation));
    assert!(pop(&mut c).is_none());
    p.push(&hdr(50), &payload(50, 4)).unwrap();
    assert_eq!(p.commit_detached(new, &hdr(2)), Err(StaleReservation));
    check_pop(&mut c, 50, 4);
    assert!(pop(&mut c).is_none());
    // Another ring's reservation: no pointer, no commit.
    let foreign = other.reserve_detached(4).unwrap();
    assert!(p.reserved_payload(&foreign).is_null());
    assert_eq!(p.commit_detached(foreign, &hdr(3)), Err(StaleReservation));
    // Dropped uncommitted: nothing published; the next record takes the room.
    p.reserve_detached(8).unwrap();
    p.push(&hdr(51), &payload(51, 8)).unwrap();
    check_pop(&mut c, 51, 8);
    assert!(pop(&mut c).is_none());
    // Errors are push's.
    assert!(matches!(p.reserve_detached(25), Err(PushError::TooLarge { len: 25, max: 24 })));
}

#[test]
fn staged_batch_larger_than_the_ring_publishes_to_evict() {
    let (mut p, mut c) = ring(RingConfig::new(256, 24).with_role(Role::Staged).with_window(100)).unwrap();
    {
        let mut b = p.batch();
        for s in 0..10 {
            b.push(&hdr(s), &payload(s, 24)).unwrap();
        }
    }
    c.set_role(Role::Active);
    let got: Vec<_> = std::iter::from_fn(|| pop(&mut c)).map(|(h, _, _)| h.seq).collect();
    assert_eq!(got, vec![6, 7, 8, 9]);
}

#[test]
fn unread_puts_the_last_record_back() {
    let (mut p, mut c) = ring(RingConfig::new(4096, 24)).unwrap();
    for s in 0..3 {
        p.push(&hdr(s), &[]).unwrap();
    }
    let mut chunk = c.read_chunk(10).unwrap();
    assert!(!chunk.unread());
    assert_eq!(chunk.next().unwrap().header.seq, 0);
    assert_eq!(chunk.next().unwrap().header.seq, 1);
    assert!(chunk.unread());
    assert!(!chunk.unread(), "one level only");
    assert_eq!(chunk.len(), 1);
    chunk.commit();
    check_pop(&mut c, 1, 0);
    check_pop(&mut c, 2, 0);
}

/// Review finding R1: a record discarded while idle leaves a hole behind a straggler that was
/// placed before the switch; the record after the hole is flagged.
#[test]
fn idle_hole_behind_a_straggler_is_flagged() {
    for back_to in [Role::Active, Role::Staged] {
        let (mut p, mut c) = ring(RingConfig::new(4096, 8)).unwrap();
        {
            let mut b = p.batch();
            b.push(&hdr(0), &[]).unwrap(); // placed before the switch: a straggler
            c.set_role(Role::Idle);
            assert_eq!(b.push(&hdr(1), &[]), Err(PushError::NotSubscribed));
        } // publishes seq 0
        c.set_role(back_to);
        p.push(&hdr(2), &[]).unwrap();
        c.set_role(Role::Active);
        let mut got = vec![];
        c.consume(10, |r| got.push((r.header.seq, r.after_drop))).unwrap();
        assert_eq!(got, vec![(0, false), (2, true)], "{back_to:?}");
    }
}

/// Review finding R2: a batch that fills an active ring publishes what it holds on `Full`, so
/// the consumer can make room and a retry loop inside the batch ends.
#[test]
fn full_inside_a_batch_publishes_the_batch() {
    let (mut p, mut c) = ring(RingConfig::new(128, 8)).unwrap();
    let mut b = p.batch();
    b.push(&hdr(0), &[0; 8]).unwrap();
    b.push(&hdr(1), &[0; 8]).unwrap();
    assert_eq!(b.push(&hdr(2), &[0; 8]), Err(PushError::Full));
    assert_eq!(c.consume(10, |_| {}).unwrap(), 2, "the batch's records became visible");
    b.push(&hdr(2), &[0; 8]).unwrap();
}

/// Review finding R3: a leaked `StagedView` is safe: the producer sheds once full, and the next
/// `staged()` or `set_role` takes the front back without panicking.
#[test]
fn a_leaked_staged_view_is_recovered() {
    let (mut p, mut c) = ring(RingConfig::new(128, 8).with_role(Role::Staged).with_window(1)).unwrap();
    std::mem::forget(c.staged().unwrap());
    let shed = (0..10).filter(|s| p.push(&hdr(*s), &[0; 8]) == Err(PushError::Shed)).count();
    assert_eq!(shed, 8, "two fit, then the held front sheds the rest");
    drop(c.staged().unwrap()); // takes the front back and releases it
    p.push(&hdr(10), &[0; 8]).unwrap();
    assert_eq!(c.staged().unwrap().len(), 1, "window 1 is honoured again");
    std::mem::forget(c.staged().unwrap());
    c.set_role(Role::Active);
    assert!(c.peek().unwrap().is_some());
}

/// Positions count bytes modulo 2^61 (`layout`), and the read paths walk with unmasked
/// positions that reach 2^61 exactly at the end of the last lap (`Walk::end`). Moves
/// records of many sizes across that point through every read path: peek/release, chunks with
/// unread, and a staged view with trims, then back to active.
/// `len` gives each record's payload length: varied, or fixed so that frames tile the buffer
/// and a record (not a pad) ends exactly at 2^61.
fn across_the_end_of_positions<S: Storage>(tx: Producer<S>, rx: Consumer<S>, len: fn(u64) -> usize) {
    use crate::sync::Ordering::SeqCst;
    let cap = rx.capacity() as u64;
    // A few laps before the wrap, off the buffer's start.
    let start = (1u64 << 61) - 3 * cap + 24;
    rx.shared.w().head.store(layout::Head::encode(start, false, Role::Active), SeqCst);
    rx.shared.w().tail.store(start, SeqCst);
    let (mut tx, mut rx) = (tx.restart(), rx.restart());
    let check = |read: &mut u64, h: &EventHeader, p: &[u8]| {
        assert_eq!(*h, hdr(*read), "record {read}");
        assert_eq!(p, &payload(*read, len(*read))[..]);
        *read += 1;
    };
    let (mut pushed, mut read) = (0u64, 0u64);
    let mut round = 0;
    while pushed < 10 * cap / 40 {
        round += 1;
        for _ in 0..5 {
            tx.push(&hdr(pushed), &payload(pushed, len(pushed))).expect("room");
            pushed += 1;
        }
        match round % 3 {
            0 => {
                while let Some(r) = rx.peek().unwrap() {
                    check(&mut read, r.header, r.payload);
                    rx.release().unwrap();
                }
            }
            1 => {
                let mut chunk = rx.read_chunk(4).unwrap();
                // The first record is read twice: put back once.
                let first = *chunk.next().unwrap().header;
                assert!(chunk.unread());
                while let Some(r) = chunk.next() {
                    check(&mut read, r.header, r.payload);
                }
                assert_eq!(first, hdr(read - 4));
                chunk.commit();
                while rx.consume(64, |r| check(&mut read, r.header, r.payload)).unwrap() > 0 {}
            }
            _ => {
                rx.set_role(Role::Staged);
                {
                    let mut view = rx.staged().unwrap();
                    let n = view.len();
                    assert_eq!(n as u64, pushed - read);
                    let mut it = view.iter();
                    let mut k = 0;
                    while let Some(r) = it.next() {
                        assert_eq!(*r.header, hdr(read + k));
                        k += 1;
                    }
                    // Trim the first record, then one more through trim_while.
                    if n > 0 {
                        let front = *view.front().unwrap().header;
                        assert_eq!(front, hdr(read));
                        assert!(view.pop_front());
                        read += 1;
                        assert_eq!(view.trim_while(|r| r.header.seq < read + 1), 1.min(n - 1));
                        read += 1.min(n as u64 - 1);
                    }
                }
                rx.set_role(Role::Active);
                while let Some(r) = rx.peek().unwrap() {
                    check(&mut read, r.header, r.payload);
                    rx.release().unwrap();
                }
            }
        }
        assert_eq!(read, pushed, "round {round}: everything pushed was read");
    }
    assert!(rx.corruption().is_none());
    let head = layout::Head::decode(rx.shared.w().head.load(SeqCst)).pos;
    assert!(head < start, "the positions wrapped past 2^61 (head {head})");
}

#[test]
fn reads_cross_the_end_of_the_position_space() {
    for len in [|seq| (seq * 7 % 50) as usize, |_| 24] {
        let (tx, rx) = ring(RingConfig::new(4096, 64)).unwrap();
        across_the_end_of_positions(tx, rx, len);
    }
}

#[cfg(all(shm, not(miri)))]
#[test]
fn checked_reads_cross_the_end_of_the_position_space() {
    for len in [|seq| (seq * 7 % 50) as usize, |_| 24] {
        let path = std::env::temp_dir().join(format!("hz-ring-wrap-{}.ring", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let (tx, rx) = crate::shm::file_ring(&path, RingConfig::new(4096, 64)).unwrap();
        let _ = std::fs::remove_file(&path);
        across_the_end_of_positions(tx, rx, len);
    }
}

#[test]
fn a_staged_ring_logs_the_identities_it_evicts() {
    assert!(matches!(
        ring(RingConfig::new(4096, 16).with_identities(MAX_IDENTITIES + 1)).err(),
        Some(RingError::TooManyIdentities { .. })
    ));
    let cfg = RingConfig::new(4096, 16).with_role(Role::Staged).with_window(3).with_identities(5);
    let (mut p, mut c) = ring(cfg).unwrap();
    assert_eq!(c.identity_slots(), 5);
    for seq in 1..=10 {
        p.push(&hdr(seq), &payload(seq, seq as usize % 17)).unwrap();
    }
    let ids = |v: &StagedView<'_>| {
        let mut out = vec![];
        v.evicted_identities(|id| out.push((id.seq, id.pos, id.origin)));
        out
    };
    {
        let mut v = c.staged().unwrap();
        // Window 3 keeps 8..=10; 1..=7 were evicted and 5 slots hold the last 4.
        assert_eq!(ids(&v), [(4, 40, 3), (5, 50, 3), (6, 60, 3), (7, 70, 3)]);
        assert_eq!(v.len(), 3);
        assert!(v.pop_front()); // trimmed, not evicted: not logged
    }
    p.push(&hdr(11), &[]).unwrap(); // within the window again (9..=11): nothing evicted
    p.push(&hdr(12), &[]).unwrap(); // evicts 9
    assert_eq!(
        c.evicted_identities(|_| {}),
        Err(RingError::WrongRole { expected: Role::Active, actual: Role::Staged })
    );
    c.set_role(Role::Active);
    let mut seqs = vec![];
    c.evicted_identities(|id| seqs.push(id.seq)).unwrap();
    assert_eq!(seqs, [5, 6, 7, 9]);
    check_pop(&mut c, 10, 10);
    // An active ring never evicts: the log stays as it was.
    p.push(&hdr(13), &[]).unwrap();
    let mut again = vec![];
    c.evicted_identities(|id| again.push(id.seq)).unwrap();
    assert_eq!(again, seqs);
    // No log: nothing, and no error outside the staged role.
    let (_, c) = ring(RingConfig::new(4096, 16)).unwrap();
    assert_eq!(c.identity_slots(), 0);
    assert_eq!(c.evicted_identities(|_| panic!("no log")), Ok(()));
}
