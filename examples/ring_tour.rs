//! A tour of the ring doing harmonizer's job in miniature: two producer threads deliver the same
//! logical events over two streams; the consumer delivers from stream A while stream B sits in a
//! staged ring; at a "flip" it switches B to active with one epoch change, trims what A already
//! delivered, and goes on from B. Every event is delivered once, in order, and the switch stall
//! is measured.
//!
//! `cargo run --release --example ring_tour` (no arguments; the README's main job until the
//! `harmonize` CLI exists). Optional: `ring_tour EVENTS FLIP_AT`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use harmonizer_core::event::EventHeader;
use harmonizer_core::ring::{ring, Producer, PushError, RingConfig, Role};

const PAYLOAD: usize = 32;

/// Pacing for a simulated feed: how far ahead of the consumer's delivery frontier, and of the
/// other stream, it may run. Stands in for the network, where redundant feeds of one origin run
/// close together and a little ahead of the application.
struct Pace {
    frontier: Arc<AtomicU64>,
    frontier_lead: u64,
    peer: Arc<AtomicU64>,
    peer_lead: u64,
    mine: Arc<AtomicU64>,
}

/// Feeds `events` events, stream-local positions starting at `pos_base`.
fn feed(mut p: Producer, events: u64, pos_base: u64, pace: Pace, stop: Arc<AtomicBool>) -> (u64, u64) {
    let (mut full, mut discarded) = (0u64, 0u64);
    let mut seq = 0;
    while seq < events && !stop.load(Ordering::Relaxed) {
        if seq > pace.frontier.load(Ordering::Relaxed) + pace.frontier_lead
            || seq > pace.peer.load(Ordering::Relaxed) + pace.peer_lead
        {
            thread::yield_now(); // two cores, three busy threads: be polite
            continue;
        }
        let h = EventHeader { pos: pos_base + seq * 3, seq, ts_ns: seq, origin: 0, kind: 0, flags: 0 };
        let mut payload = [0u8; PAYLOAD];
        payload[..8].copy_from_slice(&seq.to_le_bytes());
        match p.push(&h, &payload) {
            Ok(()) | Err(PushError::Shed) => {}
            Err(PushError::Full) => {
                full += 1;
                thread::yield_now();
                continue;
            }
            Err(PushError::NotSubscribed) => discarded += 1,
            Err(e) => panic!("{e}"),
        }
        seq += 1;
        pace.mine.store(seq, Ordering::Relaxed);
    }
    (full, discarded)
}

fn main() {
    let mut args =
        std::env::args().skip(1).map(|a| a.parse::<u64>().expect("EVENTS and FLIP_AT are numbers"));
    let events = args.next().unwrap_or(5_000_000);
    let flip_at = args.next().unwrap_or(events / 2);
    assert!(flip_at < events, "FLIP_AT must be below EVENTS");

    let cfg = RingConfig::for_records(4096, PAYLOAD);
    let (pa, mut ca) = ring(cfg).unwrap();
    let (pb, mut cb) = ring(cfg.with_role(Role::Staged).with_window(2048)).unwrap();

    // Each feed may run up to 1024 events ahead of delivery and 256 ahead of the other feed; B's
    // window of 2048 then reaches back past the delivery frontier, so the switch is seamless.
    let frontier = Arc::new(AtomicU64::new(0));
    let (prog_a, prog_b) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let pace = |mine: &Arc<AtomicU64>, peer: &Arc<AtomicU64>| Pace {
        frontier: frontier.clone(),
        frontier_lead: 1024,
        peer: peer.clone(),
        peer_lead: 256,
        mine: mine.clone(),
    };
    let ta = {
        let (pc, st) = (pace(&prog_a, &prog_b), stop.clone());
        thread::spawn(move || feed(pa, events, 1_000_000, pc, st))
    };
    let tb = {
        let (pc, st) = (pace(&prog_b, &prog_a), stop.clone());
        thread::spawn(move || feed(pb, events, 7, pc, st))
    };

    let start = Instant::now();
    let mut next = 0u64; // next seq to deliver
    let mut checksum = 0u64;
    let mut deliver = |seq: u64, payload: &[u8], next: &mut u64| {
        assert_eq!(seq, *next, "exactly once, in order");
        assert_eq!(payload[..8], seq.to_le_bytes());
        checksum = checksum.wrapping_add(seq);
        *next += 1;
    };

    // Phase 1: deliver from A up to and including the flip.
    let mut trimmed_staged = 0u64;
    while next <= flip_at {
        ca.consume(64, |r| {
            if next <= flip_at {
                deliver(r.header.seq, r.payload, &mut next);
            }
        })
        .unwrap();
        frontier.store(next, Ordering::Relaxed);
        // Keep B's staged window to what A has not delivered yet, as the engine's tracker does.
        trimmed_staged += cb.staged().unwrap().trim_while(|r| r.header.seq < next) as u64;
    }

    // The switch: one epoch change makes B active; trim what A delivered; A goes idle.
    let t0 = Instant::now();
    let b_at_switch = prog_b.load(Ordering::Relaxed);
    cb.set_role(Role::Active);
    ca.set_role(Role::Idle);
    let mut trimmed = 0u64;
    let mut first_b = None;
    let mut stall_ns = 0;
    let mut gap = None;
    while next < events {
        cb.consume(64, |r| {
            let seq = r.header.seq;
            if seq < next {
                trimmed += 1; // already delivered from A
                return;
            }
            if seq > next && gap.is_none() {
                gap = Some((next, seq)); // B's window did not reach back far enough: a cold switch
            }
            if first_b.is_none() {
                stall_ns = t0.elapsed().as_nanos();
                first_b = Some(seq);
            }
            if gap.is_none() {
                deliver(seq, r.payload, &mut next);
            }
        })
        .unwrap();
        frontier.store(next, Ordering::Relaxed);
        if gap.is_some() {
            break;
        }
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (full_a, discarded_a) = ta.join().unwrap();
    let (full_b, _) = tb.join().unwrap();

    println!("harmonizer ring tour: {events} events over two streams, flip after seq {flip_at}");
    println!("  delivered          {next} (seq 0..{}), exactly once and in order", next.saturating_sub(1));
    println!("  from A / from B    {} / {}", flip_at + 1, next - flip_at - 1);
    println!("  B staged window    2048 records; evicted while staged: {}", cb.evicted());
    println!("  B at the switch    had produced up to seq {}", b_at_switch.saturating_sub(1));
    println!("  B first event      seq {}", first_b.unwrap_or(0));
    println!(
        "  trimmed            {trimmed_staged} while staged, {trimmed} at the switch (delivered from A)"
    );
    println!("  switch stall       {stall_ns} ns (role change to first B event delivered)");
    println!("  A after the flip   {discarded_a} pushes discarded as not-subscribed");
    println!("  backpressure       A full {full_a} times, B full {full_b} times");
    println!(
        "  throughput         {:.1} M events/s delivered ({:.2} s, checksum {checksum:#x})",
        next as f64 / elapsed.as_secs_f64() / 1e6,
        elapsed.as_secs_f64()
    );
    if let Some((want, got)) = gap {
        println!("  COLD SWITCH: B's window started at seq {got}, needed {want}: the engine would re-read");
        std::process::exit(2);
    }
}
