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
