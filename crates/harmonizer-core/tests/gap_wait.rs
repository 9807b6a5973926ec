//! Issue 19, defect 7: A/B arbitration waits for a lagging candidate (docs/engine.md, "Gaps
//! (strict mode)", "Waiting for a lagging candidate"). Main reported a hole on the active stream
//! lost at once (gap policy `ReportLost`), or asked for a re-read at once (`ReRead`), although a
//! staged stream a few milliseconds behind brought the missing events moments later. Now a hole
//! waits up to `Liveness::gap_wait_ns` of engine clock for a staged stream that has not yet
//! shown the origin past it; what no stream brings is still reported once the wait ends.
//!
//! The trace: events of one origin at 10 per millisecond of engine clock (a manual clock), seq
//! `10 t .. 10 t + 10` written at millisecond `t`. Each stream pushes them into its ring `lag`
//! milliseconds later, but for its own holes (stream-local: some seqs missing on it).

#![cfg(not(loom))]

mod common;

use std::ops::RangeInclusive;

use common::*;
use harmonizer_core::clock::ManualClock;
use harmonizer_core::engine::{AlwaysStage, Engine, EngineConfig, GapPolicy, Purpose, StreamProducer};
use harmonizer_core::ring::PushError;

const MS: u64 = 1_000_000;
/// Events per millisecond.
const RATE: u64 = 10;
/// Milliseconds of events written (seqs `0 .. TICKS * RATE`).
const TICKS: u64 = 60;

/// The active stream's holes: one event, three, one spanning two milliseconds (the lagging
/// stream brings it in two pieces), five.
const HOLES: [RangeInclusive<u64>; 4] = [23..=23, 57..=59, 118..=123, 301..=305];

/// One stream of the trace: its holes, its lag behind the writer in milliseconds, and the
/// milliseconds of events it carries before it stops (`TICKS`: all of them).
struct Feed {
    holes: Vec<RangeInclusive<u64>>,
    lag_ms: u64,
    until: u64,
}

impl Feed {
    fn new(holes: &[RangeInclusive<u64>], lag_ms: u64) -> Self {
        Feed { holes: holes.to_vec(), lag_ms, until: TICKS }
    }
}

/// The trace's three streams: 0 active with `HOLES`; 1 staged, every event, 5 ms behind;
/// 2 staged, in step with 0 and lacking the same events (it shows the origin past each hole at
/// once, so it cannot fill it and is not what a hole waits for).
fn three_streams() -> Vec<Feed> {
    vec![Feed::new(&HOLES, 0), Feed::new(&[], 5), Feed::new(&HOLES, 0)]
}

fn config(streams: usize, gap_policy: GapPolicy) -> EngineConfig {
    let mut c = EngineConfig::new(7, streams as u32, 1 << 16, 64);
    c.gap_policy = gap_policy;
    c
}

struct Run {
    e: Engine,
    p: Vec<StreamProducer>,
    clock: ManualClock,
    r: Recorder,
    /// Engine clock at the poll after which each notice was seen, by index into `r.seen`.
    seen_at: Vec<u64>,
}

impl Run {
    /// An engine staging every candidate (`AlwaysStage`), polled once so the candidates are
    /// staged before anything is pushed.
    fn new(c: EngineConfig) -> Self {
        let (mut e, p, clock) = engine(c, Box::new(AlwaysStage));
        let mut r = Recorder::default();
        e.poll(64, &mut r);
        let seen_at = vec![clock_now(&clock); r.seen.len()];
        Run { e, p, clock, r, seen_at }
    }

    /// `ms` milliseconds: each one advances the clock, pushes what each stream carries by
    /// then, and polls until quiet.
    fn play(&mut self, feeds: &[Feed], ms: std::ops::Range<u64>) {
        for t in ms {
            self.clock.advance(MS);
            for (s, f) in feeds.iter().enumerate() {
                let Some(written) = t.checked_sub(f.lag_ms) else { continue };
                if written >= f.until {
                    continue;
                }
                for seq in written * RATE..(written + 1) * RATE {
                    if f.holes.iter().any(|h| h.contains(&seq)) {
                        continue;
                    }
                    match push_data(&mut self.p[s], 0, seq) {
                        Ok(()) | Err(PushError::Shed) => {}
                        Err(e) => panic!("stream {s}, seq {seq}: {e}"),
                    }
                }
            }
            poll_all(&mut self.e, &mut self.r);
            let now = clock_now(&self.clock);
            self.seen_at.resize(self.r.seen.len(), now);
        }
    }

    /// The whole trace, then enough quiet milliseconds for every wait to end.
    fn play_all(&mut self, feeds: &[Feed]) {
        let lag = feeds.iter().map(|f| f.lag_ms).max().unwrap_or(0);
        self.play(feeds, 0..TICKS + lag + 50);
    }

    fn seqs(&self) -> Vec<u64> {
        self.r.delivered().into_iter().map(|(_, s)| s).collect()
    }

    fn lost(&self) -> Vec<N> {
        self.r.notices().into_iter().filter(|n| matches!(n, N::Lost { .. })).collect()
    }

    /// Engine clock when the notice `n` was first seen.
    fn when(&self, n: &N) -> Option<u64> {
        let i = self.r.seen.iter().position(|s| *s == Seen::Notice(n.clone()))?;
        Some(self.seen_at[i])
    }

    /// Engine clock when the event of `seq` was delivered.
    fn delivered_at(&self, seq: u64) -> u64 {
        let i =
            self.r.seen.iter().position(|s| matches!(s, Seen::Event { seq: q, .. } if *q == seq)).unwrap();
        self.seen_at[i]
    }
}

fn clock_now(c: &ManualClock) -> u64 {
    use harmonizer_core::clock::Clock;
    c.now_ns()
}

/// Engine clock when the event of `seq` was pushed into a stream with no lag (the clock starts
/// at 1 ns and each millisecond of the trace advances it before the pushes).
fn written_at(seq: u64) -> u64 {
    1 + (seq / RATE + 1) * MS
}

fn every_seq() -> Vec<u64> {
    (0..TICKS * RATE).collect()
}

fn missing(holes: &[RangeInclusive<u64>]) -> u64 {
    holes.iter().map(|h| h.end() - h.start() + 1).sum()
}

/// The defect: the active stream has holes, a staged stream 5 ms behind carries every event.
/// Under `ReportLost`, with the default `gap_wait_ns`, every hole waits for it: everything is
/// delivered once and in order, nothing is reported lost, and each hole counts as filled by
/// waiting. (Main: `Lost` for all four holes, 15 events.)
#[test]
fn a_staged_stream_5ms_behind_fills_the_active_streams_holes_nothing_lost() {
    let mut run = Run::new(config(3, GapPolicy::ReportLost));
    run.play_all(&three_streams());
    assert_eq!(run.seqs(), every_seq(), "exactly once, in order");
    assert_eq!(run.lost(), vec![], "nothing reported lost");
    let st = *run.e.stats();
    assert_eq!(st.lost, 0);
    assert_eq!(st.gaps, 0, "a hole filled by waiting is filled, not reported");
    assert_eq!(st.gaps_filled_by_wait, HOLES.len() as u64);
    assert_eq!(st.gap_filled, missing(&HOLES));
    // Every filled event came from the lagging stream, and the hole waited for it: the event
    // after the hole is delivered 5 ms after it was pushed, no sooner.
    assert!(run.r.filled.iter().all(|&i| matches!(run.r.seen[i], Seen::Event { stream: 1, .. })));
    assert_eq!(run.delivered_at(24), written_at(24) + 5 * MS);
}

/// The default gap policy, `ReRead`, waits too before asking for a re-read: the lagging stream
/// fills every hole and no re-read or fill is asked. (Main: a re-read per hole, at once.)
#[test]
fn the_reread_policy_waits_before_asking_a_reread() {
    let mut run = Run::new(config(3, GapPolicy::ReRead));
    run.play_all(&three_streams());
    let st = *run.e.stats();
    assert_eq!(
        (st.rereads, st.fill_requests, st.gaps, st.lost),
        (0, 0, 0, 0),
        "(rereads, fills, gaps, lost)"
    );
    assert!(
        run.r.subscribes().iter().all(|(_, _, p)| matches!(p, Purpose::Stage)),
        "{:?}",
        run.r.subscribes()
    );
    assert_eq!(run.seqs(), every_seq());
    assert_eq!(st.gaps_filled_by_wait, HOLES.len() as u64);
}

/// Bounded: a hole no stream fills is still reported, once the wait ends. It ends as soon as
/// every staged stream shows the origin past the hole without it (here: the lagging stream
/// catches up 5 ms later), and in any case after `gap_wait_ns` (here: the lagging stream has
/// stopped, so it never shows anything; the wait ends at exactly `gap_wait_ns`). Never an
/// endless stall.
#[test]
fn a_hole_no_stream_fills_is_reported_lost_once_the_wait_ends() {
    let everywhere = 203..=204; // in no stream
    let with = |h: &[RangeInclusive<u64>]| h.iter().cloned().chain([everywhere.clone()]).collect::<Vec<_>>();

    // The lagging stream catches up and lacks it too: reported when it shows so, 5 ms on.
    let mut c = config(2, GapPolicy::ReportLost);
    c.liveness.gap_wait_ns = 20 * MS;
    let mut run = Run::new(c);
    let feeds = [Feed::new(&with(&HOLES), 0), Feed::new(&with(&[]), 5)];
    run.play_all(&feeds);
    let lost = N::Lost { origin: 0, from: 203, to: 204 };
    assert_eq!(run.lost(), vec![lost.clone()]);
    assert_eq!(run.seqs(), every_seq().into_iter().filter(|s| !everywhere.contains(s)).collect::<Vec<_>>());
    assert_eq!(run.when(&lost), Some(written_at(205) + 5 * MS), "as soon as the lagging stream passed it");
    let st = *run.e.stats();
    assert_eq!((st.lost, st.gaps, st.gaps_filled_by_wait), (2, 1, HOLES.len() as u64));

    // The lagging stream stops before the hole: the wait ends at `gap_wait_ns`, and each later
    // hole waits as long again (bounded, reported), while the stream stays staged and silent.
    let mut c = config(2, GapPolicy::ReportLost);
    c.liveness.gap_wait_ns = 7 * MS;
    let mut run = Run::new(c);
    let mut stopped = Feed::new(&[], 5);
    stopped.until = 11; // seqs up to 109: it fills 23 and 57..=59, not 118..=123 nor 301..=305
    run.play_all(&[Feed::new(&HOLES, 0), stopped]);
    let lost = vec![N::Lost { origin: 0, from: 118, to: 123 }, N::Lost { origin: 0, from: 301, to: 305 }];
    assert_eq!(run.lost(), lost);
    assert_eq!(run.when(&lost[0]), Some(written_at(124) + 7 * MS), "after gap_wait_ns, exactly");
    assert_eq!(run.when(&lost[1]), Some(written_at(306) + 7 * MS));
    let st = *run.e.stats();
    assert_eq!((st.lost, st.gaps, st.gaps_filled_by_wait), (11, 2, 2));
    let holes = [23..=23, 57..=59];
    assert_eq!(st.gap_filled, missing(&holes));
}

/// `gap_wait_ns = 0` is main's behaviour: each hole is reported lost where it is met.
#[test]
fn no_gap_wait_reports_at_once_as_before() {
    let mut c = config(3, GapPolicy::ReportLost);
    c.liveness.gap_wait_ns = 0;
    let mut run = Run::new(c);
    run.play_all(&three_streams());
    let want: Vec<N> = HOLES.iter().map(|h| N::Lost { origin: 0, from: *h.start(), to: *h.end() }).collect();
    assert_eq!(run.lost(), want);
    assert_eq!(run.when(&want[0]), Some(written_at(24)), "in the poll that met it");
    let st = *run.e.stats();
    assert_eq!((st.lost, st.gaps, st.gaps_filled_by_wait, st.gap_filled), (missing(&HOLES), 4, 0, 0));
    assert_eq!(
        run.seqs(),
        every_seq().into_iter().filter(|s| !HOLES.iter().any(|h| h.contains(s))).collect::<Vec<_>>()
    );
}
