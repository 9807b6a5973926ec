//! Two-thread stress tests: a real producer thread and a real consumer thread.
//!
//! Sizes shrink under Miri (which checks these same tests for data races and UB).

#![cfg(not(loom))]

use std::thread;

use harmonizer_core::event::EventHeader;
use harmonizer_core::ring::{ring, PushError, Record, RingConfig, Role};

const MAX_PAYLOAD: usize = 56;

fn records() -> u64 {
    if cfg!(miri) {
        300
    } else {
        10_000_000
    }
}

fn payload_len(seq: u64) -> usize {
    (seq.wrapping_mul(0x9E37_79B9) % (MAX_PAYLOAD as u64 + 1)) as usize
}

fn byte(seq: u64, i: usize) -> u8 {
    (seq as u8).wrapping_mul(29).wrapping_add(i as u8)
}

/// FNV-1a over a record's header fields and payload.
fn fold(mut h: u64, header: &EventHeader, payload: &[u8]) -> u64 {
    for b in header.seq.to_le_bytes().iter().chain(&header.pos.to_le_bytes()).chain(payload) {
        h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
    }
    h
}

fn header(seq: u64) -> EventHeader {
    EventHeader { pos: seq + 1000, seq, ts_ns: seq, origin: 0, kind: 0, flags: 0 }
}

fn produce(p: &mut harmonizer_core::ring::Producer, seq: u64) -> Result<(), PushError> {
    let len = payload_len(seq);
    let mut slot = p.reserve(len)?;
    *slot.header_mut() = header(seq);
    for (i, b) in slot.payload_mut().iter_mut().enumerate() {
        *b = byte(seq, i);
    }
    slot.commit();
    Ok(())
}

fn verify(r: &Record<'_>, seq: u64) {
    assert_eq!(r.header.seq, seq, "out of order");
    assert_eq!(r.header.pos, seq + 1000);
    assert_eq!(r.payload.len(), payload_len(seq));
    for (i, b) in r.payload.iter().enumerate() {
        assert_eq!(*b, byte(seq, i), "torn payload at seq {seq} byte {i}");
    }
}

#[test]
fn ten_million_records_in_order_with_intact_payloads() {
    let n = records();
    let (mut p, mut c) = ring(RingConfig::new(if cfg!(miri) { 512 } else { 1 << 16 }, MAX_PAYLOAD)).unwrap();
    let producer = thread::spawn(move || {
        let mut sum = 0xcbf2_9ce4_8422_2325u64;
        let mut batch_turn = false;
        let mut seq = 0;
        while seq < n {
            // Alternate single pushes and batches of up to 64.
            batch_turn = !batch_turn;
            if batch_turn {
                let mut b = p.batch();
                for _ in 0..64 {
                    if seq == n {
                        break;
                    }
                    let len = payload_len(seq);
                    let Ok(mut slot) = b.reserve(len) else { break };
                    *slot.header_mut() = header(seq);
                    for (i, x) in slot.payload_mut().iter_mut().enumerate() {
                        *x = byte(seq, i);
                    }
                    sum = fold(sum, &header(seq), slot.payload_mut());
                    slot.commit();
                    seq += 1;
                }
            } else {
                match produce(&mut p, seq) {
                    Ok(()) => {
                        let pl: Vec<u8> = (0..payload_len(seq)).map(|i| byte(seq, i)).collect();
                        sum = fold(sum, &header(seq), &pl);
                        seq += 1;
                    }
                    Err(PushError::Full) => thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            }
        }
        sum
    });
    let mut sum = 0xcbf2_9ce4_8422_2325u64;
    let mut next = 0u64;
    let mut turn = 0u32;
    while next < n {
        turn = turn.wrapping_add(1);
        let got = if turn % 2 == 0 {
            c.consume(64, |r| {
                verify(&r, next);
                sum = fold(sum, r.header, r.payload);
                next += 1;
            })
            .unwrap()
        } else {
            match c.peek().unwrap() {
                Some(r) => {
                    verify(&r, next);
                    sum = fold(sum, r.header, r.payload);
                    next += 1;
                    c.release().unwrap();
                    1
                }
                None => 0,
            }
        };
        if got == 0 {
            thread::yield_now();
        }
    }
    assert_eq!(producer.join().unwrap(), sum, "checksums differ");
    assert!(c.peek().unwrap().is_none());
}

/// The consumer flips the ring between staged (trimming, inspecting) and active (reading) while
/// the producer pushes without pause. Nothing read is out of order or torn, and every record the
/// producer stored is accounted for: read, trimmed, evicted, or still there at the end.
#[test]
fn role_switches_under_a_running_producer_lose_nothing_unaccounted() {
    let n: u64 = if cfg!(miri) { 200 } else { 2_000_000 };
    let cfg = RingConfig::new(if cfg!(miri) { 512 } else { 8192 }, MAX_PAYLOAD)
        .with_role(Role::Staged)
        .with_window(16);
    let (mut p, mut c) = ring(cfg).unwrap();
    let producer = thread::spawn(move || {
        let (mut stored, mut shed) = (0u64, 0u64);
        let mut seq = 0;
        while seq < n {
            match produce(&mut p, seq) {
                Ok(()) => {
                    stored += 1;
                    seq += 1;
                }
                Err(PushError::Shed) => {
                    shed += 1;
                    seq += 1;
                }
                Err(PushError::Full) => thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        (stored, shed)
    });
    let mut last: Option<u64> = None;
    let mut seen = 0u64;
    let mut round = 0u64;
    let check = |r: &Record<'_>, last: &mut Option<u64>| {
        if let Some(l) = *last {
            assert!(r.header.seq > l, "seq {} after {l}", r.header.seq);
        }
        verify(r, r.header.seq);
        *last = Some(r.header.seq);
    };
    while !producer.is_finished() {
        round += 1;
        c.set_role(Role::Staged);
        for _ in 0..3 {
            let mut v = c.staged().unwrap();
            let mut it = v.iter();
            let mut prev = None;
            while let Some(r) = it.next() {
                if let Some(pv) = prev {
                    assert!(r.header.seq > pv);
                }
                verify(&r, r.header.seq);
                prev = Some(r.header.seq);
            }
            // Trim up to two records, as the engine does when the active stream delivered them.
            seen += v.trim_while(|r| {
                let trim = r.header.seq % 3 != 0;
                if trim {
                    check(r, &mut last);
                }
                trim
            }) as u64;
        }
        c.set_role(Role::Active);
        for _ in 0..(round % 50) {
            let k = c.consume(8, |r| check(&r, &mut last)).unwrap();
            seen += k as u64;
            if k == 0 {
                break;
            }
        }
    }
    let (stored, shed) = producer.join().unwrap();
    c.set_role(Role::Active);
    loop {
        let k = c.consume(64, |r| check(&r, &mut last)).unwrap();
        seen += k as u64;
        if k == 0 {
            break;
        }
    }
    assert_eq!(c.dropped(), shed);
    assert_eq!(
        stored,
        seen + c.evicted(),
        "stored {stored} != read/trimmed {seen} + evicted {}",
        c.evicted()
    );
}

/// The identity tier's log (issue 16) under a real producer thread: while the consumer holds
/// the front, reads the log and trims some records, every identity is whole (its position, key
/// and flags belong to its seq), in eviction order, older than every record kept, and never a
/// record the consumer trimmed. Once the producer is done and the ring is active, the log names
/// exactly the last `slots - 1` records evicted: not trimmed, not shed, not kept.
#[test]
fn the_identity_log_names_exactly_the_records_evicted() {
    use harmonizer_core::event::FLAG_CONFLATABLE;
    let n: u64 = if cfg!(miri) { 300 } else { 1_000_000 };
    let slots = 64usize;
    let key_of = |seq: u64| seq.wrapping_mul(0x9E37_79B9) % 7;
    let marked = |seq: u64| seq % 2 == 0;
    let cfg = RingConfig::new(if cfg!(miri) { 1024 } else { 8192 }, 64)
        .with_role(Role::Staged)
        .with_window(16)
        .with_identities(slots);
    let (mut p, mut c) = ring(cfg).unwrap();
    let producer = thread::spawn(move || {
        let mut shed = Vec::new();
        for seq in 0..n {
            let h = EventHeader { flags: if marked(seq) { FLAG_CONFLATABLE } else { 0 }, ..header(seq) };
            let mut payload = key_of(seq).to_le_bytes().to_vec();
            payload.extend_from_slice(&seq.to_le_bytes());
            match p.push(&h, &payload) {
                Ok(()) => {}
                Err(PushError::Shed) => shed.push(seq),
                Err(e) => panic!("{e}"),
            }
        }
        shed
    });
    let mut trimmed = vec![false; n as usize];
    let check = |id: &harmonizer_core::ring::Identity| {
        assert_eq!(id.pos, id.seq + 1000, "torn identity {id:?}");
        assert_eq!(id.key, marked(id.seq).then(|| key_of(id.seq)), "{id:?}");
    };
    while !producer.is_finished() {
        let mut v = c.staged().unwrap();
        let mut ids = Vec::new();
        v.evicted_identities(|id| {
            check(id);
            ids.push(id.seq);
        });
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert!(ids.iter().all(|&s| !trimmed[s as usize]), "a trimmed record logged as evicted");
        let first_kept = v.front().map(|r| r.header.seq);
        if let (Some(&last), Some(first)) = (ids.last(), first_kept) {
            assert!(last < first, "logged {last}, kept from {first}");
        }
        // Trim the front record now and then, as the engine does with delivered ones.
        v.trim_while(|r| {
            let t = r.header.seq % 5 == 0;
            if t {
                trimmed[r.header.seq as usize] = true;
            }
            t
        });
    }
    let shed = producer.join().unwrap();
    c.set_role(Role::Active);
    let mut kept = vec![false; n as usize];
    while let Some(r) = c.peek().unwrap() {
        kept[r.header.seq as usize] = true;
        c.release().unwrap();
    }
    let mut gone = vec![false; n as usize];
    for s in shed {
        gone[s as usize] = true;
    }
    let evicted: Vec<u64> =
        (0..n).filter(|&s| !trimmed[s as usize] && !gone[s as usize] && !kept[s as usize]).collect();
    assert_eq!(evicted.len() as u64, c.evicted(), "the ring's own count");
    let mut ids = Vec::new();
    c.evicted_identities(|id| {
        check(id);
        ids.push(id.seq);
    })
    .unwrap();
    assert_eq!(ids, evicted[evicted.len().saturating_sub(slots - 1)..], "the log is exact");
}
