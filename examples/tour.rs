//! The main job on an embedded default: one recipient's engine consuming two redundant streams
//! fed by real producer threads, through a life of flips.
//!
//! `cargo run --release --example tour` (optional argument: the number of events, default
//! 2,000,000). The fanout (two threads, one per stream) delivers the same events of 4 origins
//! over both streams, with different positions, and inserts the same flips into both at the same
//! points: an ANNOUNCE of stream 1 at 20%, a SWITCH to it at 40%, a malformed flip at 50%, a
//! SWITCHBACK at 70%. Stream 0 also loses a few events upstream at 30% (stream 1, staged, fills
//! them). The engine runs the `AlwaysStage` policy on the monotonic clock. The tour checks that
//! every event was delivered exactly once and in order, and prints the engine's counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use harmonizer_core::engine::{AlwaysStage, Engine, EngineConfig, Handler, Notice, StreamProducer};
use harmonizer_core::event::{EventHeader, KIND_DATA, KIND_FLIP};
use harmonizer_core::flip::{Flip, FlipAction};
use harmonizer_core::ring::{PushError, Record};

const ORIGINS: u64 = 4;
const RECIPIENT: u64 = 42;

fn flip_bytes(action: FlipAction, id: u64, target: u32) -> Vec<u8> {
    let mut f = Flip::new(action, id, target);
    f.locator = b"tour://stream";
    if action == FlipAction::Announce {
        f.expected_in_ns = 1_000_000;
    }
    f.to_vec().expect("a valid flip")
}

/// Progress shared between the feeds and the engine loop.
struct Pace {
    /// Events the engine has delivered.
    frontier: Arc<AtomicU64>,
    /// Events this feed has pushed.
    mine: Arc<AtomicU64>,
    /// Stream 0 never runs ahead of stream 1, so when the engine finds stream 0's upstream gap,
    /// stream 1 already holds the missing events (otherwise the engine would ask the application
    /// for a re-read, which this tour does not perform).
    wait_for: Option<Arc<AtomicU64>>,
}

/// One fanout path: events `0..n` (origin = i % 4, seq = i / 4), flips at fixed points, paced to
/// run at most `lead` events ahead of what the engine has delivered.
fn feed(mut p: StreamProducer, n: u64, pace: Pace, lead: u64) -> u64 {
    let stream = p.stream();
    let flips: [(u64, Vec<u8>); 4] = [
        (n / 5, flip_bytes(FlipAction::Announce, 1, 1)),
        (n * 2 / 5, flip_bytes(FlipAction::Switch, 2, 1)),
        (n / 2, vec![1, 2, 3, 4, 5]), // malformed: truncated
        (n * 7 / 10, flip_bytes(FlipAction::Switchback, 3, 0)),
    ];
    let mut full = 0;
    let mut push = |p: &mut StreamProducer, h: &EventHeader, payload: &[u8]| loop {
        match p.push(h, payload) {
            Ok(()) | Err(PushError::Shed) | Err(PushError::NotSubscribed) => return,
            Err(PushError::Full) => {
                full += 1;
                thread::yield_now();
            }
            Err(e) => panic!("{e}"),
        }
    };
    for i in 0..n {
        while i > pace.frontier.load(Ordering::Relaxed) + lead
            || pace.wait_for.as_ref().is_some_and(|w| w.load(Ordering::Acquire) <= i)
        {
            thread::yield_now();
        }
        let pos = 100 + i * (u64::from(stream) + 2);
        for (at, bytes) in &flips {
            if *at == i {
                let h = EventHeader { pos: pos - 1, seq: 0, ts_ns: 0, origin: 0, kind: KIND_FLIP, flags: 0 };
                push(&mut p, &h, bytes);
            }
        }
        // Stream 0 loses 3 events of origin 1 upstream, just after 30%.
        if stream == 0 && (n * 3 / 10..n * 3 / 10 + 12).contains(&i) && i % ORIGINS == 1 {
            pace.mine.store(i + 1, Ordering::Release);
            continue;
        }
        let (origin, seq) = ((i % ORIGINS) as u32, i / ORIGINS);
        let h = EventHeader { pos, seq, ts_ns: i, origin, kind: KIND_DATA, flags: 0 };
        push(&mut p, &h, &i.to_le_bytes());
        pace.mine.store(i + 1, Ordering::Release);
    }
    full
}

#[derive(Default)]
struct Check {
    next: [u64; ORIGINS as usize],
    delivered: u64,
    from_stream: [u64; 2],
    notices: Vec<String>,
}

impl Handler for Check {
    fn event(&mut self, stream: u32, r: &Record<'_>) {
        let o = r.header.origin as usize;
        assert_eq!(r.header.seq, self.next[o], "origin {o}: exactly once, in order");
        assert_eq!(r.payload, (r.header.seq * ORIGINS + o as u64).to_le_bytes(), "intact payload");
        self.next[o] += 1;
        self.delivered += 1;
        self.from_stream[stream as usize] += 1;
    }
    fn notice(&mut self, n: &Notice<'_>) {
        let text = match *n {
            Notice::Switched { from, to, seamless, stall_ns, .. } => format!(
                "switched {from} -> {to} ({}) after {} delivered, stall {stall_ns} ns",
                if seamless { "seamless" } else { "cold" },
                self.delivered
            ),
            Notice::FlipRejected { stream, reason, .. } => {
                format!("flip rejected on stream {stream}: {reason}")
            }
            Notice::Subscribe { stream, .. } => format!("subscribe stream {stream}"),
            Notice::Unsubscribe { stream } => format!("unsubscribe stream {stream}"),
            Notice::Gap { origin, from_seq, to_seq, .. } => {
                format!("gap origin {origin} {from_seq}..={to_seq}")
            }
            Notice::Lost { origin, from_seq, to_seq } => {
                format!("LOST origin {origin} {from_seq}..={to_seq}")
            }
            Notice::BadEvent { pos, .. } => format!("bad event at pos {pos}"),
            Notice::ProducerGone { stream, generation, crashed, .. } => {
                format!("producer {generation} of stream {stream} gone (crashed: {crashed})")
            }
            Notice::RingFileTruncated { stream, .. } => format!("ring file of stream {stream} truncated"),
            Notice::RingCorrupt { stream, offset, what } => {
                format!("ring file of stream {stream} corrupt at {offset}: {what}")
            }
            Notice::Stuck { origin, from_seq, to_seq, .. } => {
                format!("STUCK origin {origin} {from_seq}..={to_seq}")
            }
            Notice::Conflated { origin, from_seq, to_seq, dropped, .. } => {
                format!("conflated origin {origin} {from_seq}..={to_seq}: {dropped} dropped")
            }
            Notice::ActiveSilent { stream, candidate, .. } => {
                format!("stream {stream} silent, stream {candidate} ahead")
            }
            Notice::Mismatch { stream, origin, seq, .. } => {
                format!("MISMATCH on stream {stream}: origin {origin} seq {seq}")
            }
            Notice::SwitchBlocked { from, to, mismatched, .. } => {
                format!("switch {from} -> {to} blocked: {mismatched} mismatched")
            }
            Notice::DryRun { report } => {
                format!("dry run: switch to {} seamless: {}", report.to, report.seamless)
            }
            Notice::ProbationFailed { stream, anomaly, .. } => {
                format!("stream {stream} failed its probation: {anomaly}")
            }
        };
        self.notices.push(text);
    }
}

fn main() {
    let n: u64 = std::env::args().nth(1).map_or(2_000_000, |a| a.parse().expect("EVENTS is a number"));
    let n = n - n % ORIGINS;
    let mut cfg = EngineConfig::new(RECIPIENT, 2, 1 << 20, 2048);
    cfg.max_origins = ORIGINS as u32;
    cfg.default_window = 4096;
    let (mut engine, producers) =
        Engine::with(cfg, Box::new(AlwaysStage), Box::new(harmonizer_core::clock::MonotonicClock::new()))
            .expect("a valid configuration");
    let mut check = Check::default();
    engine.poll(1, &mut check); // stage stream 1 before the feeds start
    let frontier = Arc::new(AtomicU64::new(0));
    let progress = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
    let feeds: Vec<_> = producers
        .into_iter()
        .map(|p| {
            let s = p.stream() as usize;
            let pace = Pace {
                frontier: frontier.clone(),
                mine: progress[s].clone(),
                wait_for: (s == 0).then(|| progress[1].clone()),
            };
            thread::spawn(move || feed(p, n, pace, 2048))
        })
        .collect();
    let start = Instant::now();
    while check.delivered < n {
        if engine.poll(256, &mut check) == 0 {
            thread::yield_now();
        }
        frontier.store(check.delivered, Ordering::Relaxed);
    }
    let elapsed = start.elapsed();
    let full: u64 = feeds.into_iter().map(|t| t.join().expect("feed thread")).sum();
    let s = engine.stats();

    println!("harmonizer tour: recipient {RECIPIENT}, {n} events of {ORIGINS} origins over 2 streams");
    for line in &check.notices {
        println!("  notice: {line}");
    }
    println!("  delivered       {} exactly once, in order per origin (checked)", check.delivered);
    println!("  from stream     0: {}, 1: {}", check.from_stream[0], check.from_stream[1]);
    println!("  duplicates      {} dropped (the other stream's copies)", s.duplicates_dropped);
    println!("  gap fill        {} events filled from the staged stream; lost {}", s.gap_filled, s.lost);
    println!(
        "  flips           {} applied, {} repeated, {} rejected",
        s.flips_applied, s.flips_repeated, s.flips_rejected
    );
    println!(
        "  switches        {} seamless, {} cold; stall max {} ns",
        s.switches_seamless, s.switches_cold, s.stall_max_ns
    );
    println!("  duty cycle      {:.0}% (always-stage policy)", s.duty_cycle() * 100.0);
    println!("  backpressure    {full} full pushes retried");
    println!(
        "  throughput      {:.1} M events/s through the engine ({:.2} s; 2 feeds + engine on 2 cores)",
        n as f64 / elapsed.as_secs_f64() / 1e6,
        elapsed.as_secs_f64()
    );
    assert_eq!(s.lost, 0);
    assert_eq!(check.delivered, n);
}
