//! Liveness under upstreams that lag, have holes and restart (docs/design.md §2 guarantee 8, §4
//! "Positions in notices" and "Which copy of a flip governs"; issue 12). One deterministic test
//! per defect found against real Redis Streams and NATS JetStream, reproducing its shape in
//! process: an application that obeys every `Subscribe` exactly, upstream logs that lack what
//! they lack, a manual clock.

#![cfg(not(loom))]

mod common;

use common::*;
use harmonizer_core::clock::ManualClock;
use harmonizer_core::engine::{
    AlwaysStage, ArmingPolicy, Engine, EngineConfig, Exhausted, Liveness, ManualStage, NeverStage, Purpose,
    StartAt, StreamProducer,
};
use harmonizer_core::event::{EventHeader, KIND_DATA, KIND_FLIP};
use harmonizer_core::flip::{Flip, FlipAction, MAX_FLIP_LEN};
use harmonizer_core::ring::PushError;

const MS: u64 = 1_000_000;

/// One upstream log per stream: its records in order, and how many exist so far.
struct Upstream {
    logs: Vec<Vec<(EventHeader, Vec<u8>)>>,
    avail: Vec<usize>,
}

impl Upstream {
    /// Stream `s` carries seqs `0..n` of origin 0 except those in `holes`.
    fn new(streams: usize) -> Self {
        Upstream { logs: vec![Vec::new(); streams], avail: vec![0; streams] }
    }
    fn data(&mut self, s: u32, seqs: impl IntoIterator<Item = u64>, holes: &[std::ops::RangeInclusive<u64>]) {
        for seq in seqs {
            if holes.iter().any(|h| h.contains(&seq)) {
                continue;
            }
            self.logs[s as usize].push((data(s, 0, seq), payload(0, seq)));
        }
    }
    /// A flip on stream `s` just before seq `before` (its position), written at `ts_ns`.
    fn flip(&mut self, s: u32, before: u64, ts_ns: u64, f: &Flip<'_>) {
        let pos = pos_of(s, before) - 1;
        let log = &mut self.logs[s as usize];
        let at = log.partition_point(|(h, _)| h.pos < pos);
        let h = EventHeader { pos, seq: 0, ts_ns, origin: 0, kind: KIND_FLIP, flags: 0 };
        log.insert(at, (h, f.to_vec().unwrap()));
    }
    /// Records of stream `s` up to (not including) the data event of seq `seq` exist.
    fn publish_until(&mut self, s: u32, seq: u64) {
        let log = &self.logs[s as usize];
        self.avail[s as usize] =
            log.partition_point(|(h, _)| h.kind != KIND_DATA || h.seq < seq).max(self.avail[s as usize]);
    }
}

/// The application: obeys `Subscribe`/`Unsubscribe` exactly and feeds the producers.
struct App {
    r: Recorder,
    cursor: Vec<usize>,
    subscribed: Vec<bool>,
    handled: usize,
}

impl App {
    fn new(streams: usize, initial: usize) -> Self {
        let mut subscribed = vec![false; streams];
        subscribed[initial] = true;
        App { r: Recorder::default(), cursor: vec![0; streams], subscribed, handled: 0 }
    }

    fn obey(&mut self, up: &Upstream) {
        let all = self.r.all_notices();
        for n in &all[self.handled..] {
            match *n {
                N::Subscribe { purpose: Purpose::Initial, .. } => {}
                N::Subscribe { stream, from, .. } => {
                    let s = stream as usize;
                    let log = &up.logs[s];
                    self.cursor[s] = match from {
                        StartAt::Pos(p) => log.partition_point(|(h, _)| h.pos < p),
                        StartAt::Live => up.avail[s],
                        StartAt::AfterSeq { origin, seq } => log.partition_point(|(h, _)| {
                            !(h.kind == KIND_DATA && h.origin == origin && h.seq > seq)
                        }),
                        StartAt::AfterFrontier => panic!("single origin: the engine names the origin"),
                    };
                    self.subscribed[s] = true;
                }
                N::Unsubscribe { stream } => self.subscribed[stream as usize] = false,
                _ => {}
            }
        }
        self.handled = all.len();
    }

    fn feed(&mut self, p: &mut [StreamProducer], up: &Upstream) {
        for (s, pr) in p.iter_mut().enumerate() {
            while self.subscribed[s] && self.cursor[s] < up.avail[s] {
                let (h, pl) = &up.logs[s][self.cursor[s]];
                match pr.push(h, pl) {
                    Ok(()) | Err(PushError::Shed) => self.cursor[s] += 1,
                    Err(PushError::Full) | Err(PushError::NotSubscribed) => break,
                    Err(e) => panic!("push: {e}"),
                }
            }
        }
    }

    /// Feed, poll until quiet, obey; `rounds` times.
    fn run(&mut self, e: &mut Engine, p: &mut [StreamProducer], up: &Upstream, rounds: usize) {
        for _ in 0..rounds {
            self.feed(p, up);
            e.poll(64, &mut self.r);
            self.obey(up);
        }
    }

    fn seqs(&self) -> Vec<u64> {
        self.r.delivered().into_iter().map(|(_, s)| s).collect()
    }
}

fn setup(
    cfg: EngineConfig,
    policy: Box<dyn ArmingPolicy>,
) -> (Engine, Vec<StreamProducer>, ManualClock, App) {
    let n = cfg.streams.len();
    let initial = cfg.initial_stream as usize;
    let (e, p, clock) = engine(cfg, policy);
    (e, p, clock, App::new(n, initial))
}

fn cfg2() -> EngineConfig {
    EngineConfig::new(7, 2, 1 << 16, 64)
}

/// Defect 1. B (active after the switch) has a permanent hole; A has every event but only a
/// 100-event staged window of it, which no longer holds the hole's events when B reaches it (B
/// lags). Main re-read B from the same position forever. Now: at most `reread_rounds` re-reads,
/// then A is asked for exactly the missing range, and everything is delivered once.
#[test]
fn a_reread_that_comes_back_with_the_same_hole_escalates_to_another_stream() {
    let (mut e, mut p, clock, mut app) = setup(cfg2(), Box::new(AlwaysStage));
    let mut up = Upstream::new(2);
    up.data(0, 0..700, &[]);
    up.data(1, 0..700, &[400..=409]); // B's writer restarted from live: a hole
    up.flip(0, 120, 120_000, &flip(FlipAction::Switch, 1, 1));
    up.flip(1, 120, 120_000, &flip(FlipAction::Switch, 1, 1));
    for t in 0..=70u64 {
        // A leads; B lags A by 200 events.
        up.publish_until(0, t * 10);
        up.publish_until(1, (t * 10).saturating_sub(200));
        clock.advance(MS);
        app.run(&mut e, &mut p, &up, 2);
    }
    up.publish_until(0, 700);
    up.publish_until(1, 700);
    for _ in 0..50 {
        clock.advance(100 * MS);
        app.run(&mut e, &mut p, &up, 4);
    }
    assert_eq!(app.seqs(), (0..700).collect::<Vec<_>>(), "exactly once, in order, nothing lost");
    let st = *e.stats();
    assert_eq!(e.active_stream(), 1);
    assert_eq!(st.lost, 0);
    assert_eq!(st.rereads, 3, "three rounds of re-reading B, then no more");
    assert_eq!(st.fill_requests, 1, "then A, once, for exactly the range");
    let fills: Vec<_> =
        app.r.subscribes().into_iter().filter(|(_, _, p)| matches!(p, Purpose::Fill { .. })).collect();
    assert_eq!(fills.len(), 1);
    let (stream, from, purpose) = fills[0];
    assert_eq!((stream, purpose), (0, Purpose::Fill { origin: 0, from_seq: 400, to_seq: 409 }));
    // A delivered up to seq 119 before the switch, then its trimmed window moved on: the engine
    // names a typed start or an exact position, never a bare 0.
    assert!(matches!(from, StartAt::Pos(p) if p > 0) || from == (StartAt::AfterSeq { origin: 0, seq: 399 }));
    assert_eq!(st.gaps, 1, "one hole, one Gap");
}

/// Defect 1, the other shape: a `resume_pos` later than the delivery frontier. Main asked for
/// a re-read from `resume_pos` itself, which cannot bring what lies before it (2,472 rounds).
#[test]
fn a_resume_pos_past_the_frontier_is_not_the_reread_position() {
    let (mut e, mut p, clock, mut app) = setup(cfg2(), Box::new(NeverStage));
    let mut up = Upstream::new(2);
    up.data(0, 0..50, &[]);
    up.data(1, 0..200, &[]);
    let mut f = flip(FlipAction::Switch, 1, 1);
    f.resume_pos = pos_of(1, 80); // the operator's guess: past what this recipient delivered
    up.flip(0, 50, 50_000, &f);
    up.publish_until(0, 50);
    up.avail[0] = up.logs[0].len();
    up.publish_until(1, 200);
    for _ in 0..20 {
        clock.advance(MS);
        app.run(&mut e, &mut p, &up, 2);
    }
    assert_eq!(app.seqs(), (0..200).collect::<Vec<_>>());
    let subs = app.r.subscribes();
    assert!(subs.contains(&(1, StartAt::Pos(pos_of(1, 80)), Purpose::Switch)), "{subs:?}");
    // Stream 1 was never seen: the re-read names the origin's frontier, typed.
    assert!(subs.contains(&(
        1,
        StartAt::AfterSeq { origin: 0, seq: 49 },
        Purpose::ReRead { origin: 0, from_seq: 50, to_seq: 79 }
    )));
    assert_eq!(e.stats().rereads, 1);
}

/// Defect 1, nothing has the events: every stream lacks them. With `Exhausted::ReportLost` the
/// exact range is reported `Lost` after the bounded ladder; with the default `Stuck`, one
/// `Stuck` notice and a hold, until the application gives the hole up.
#[test]
fn a_hole_in_every_stream_ends_lost_or_stuck_per_policy_within_the_bound() {
    for exhausted in [Exhausted::ReportLost, Exhausted::Stuck] {
        let mut c = cfg2();
        c.liveness.exhausted = exhausted;
        c.liveness.round_timeout_ns = 50 * MS;
        let (mut e, mut p, clock, mut app) = setup(c, Box::new(NeverStage));
        let mut up = Upstream::new(2);
        up.data(0, 0..100, &[40..=44]);
        up.data(1, 0..100, &[40..=44]);
        up.publish_until(0, 100);
        up.publish_until(1, 100);
        for _ in 0..40 {
            clock.advance(20 * MS);
            app.run(&mut e, &mut p, &up, 2);
        }
        let st = *e.stats();
        assert_eq!(st.rereads, 3, "{exhausted:?}");
        assert_eq!(st.fill_requests, 3, "{exhausted:?}: three rounds of asking stream 1");
        let lost = N::Lost { origin: 0, from: 40, to: 44 };
        match exhausted {
            Exhausted::ReportLost => {
                assert!(app.r.notices().contains(&lost));
                assert_eq!(app.seqs(), (0..40).chain(45..100).collect::<Vec<_>>());
                assert_eq!(st.lost, 5);
            }
            Exhausted::Stuck => {
                let stuck = N::Stuck { stream: 0, origin: 0, from: 40, to: 44 };
                assert_eq!(app.r.notices().iter().filter(|n| **n == stuck).count(), 1, "reported once");
                assert_eq!(app.seqs(), (0..40).collect::<Vec<_>>(), "held at the hole, nothing skipped");
                assert!(e.gap_stuck());
                assert_eq!(st.lost, 0);
                assert!(e.give_up_gap(), "the application's word");
                for _ in 0..10 {
                    clock.advance(20 * MS);
                    app.run(&mut e, &mut p, &up, 2);
                }
                assert!(app.r.notices().contains(&lost));
                assert_eq!(app.seqs(), (0..40).chain(45..100).collect::<Vec<_>>());
                assert!(!e.gap_stuck());
            }
        }
    }
}

/// Defect 1, the application never re-reads: each round times out and the ladder still climbs
/// within `reread_rounds × round_timeout_ns` per stream.
#[test]
fn an_ignored_reread_times_out_and_escalates() {
    let mut c = cfg2();
    c.liveness.round_timeout_ns = 100 * MS;
    c.liveness.exhausted = Exhausted::ReportLost;
    let (mut e, mut p, clock, mut r) = {
        let (e, p, clock, app) = setup(c, Box::new(NeverStage));
        (e, p, clock, app.r)
    };
    for s in [0, 1, 2, 5, 6] {
        push_data(&mut p[0], 0, s).unwrap();
    }
    e.poll(64, &mut r);
    assert_eq!(e.stats().rereads, 1);
    // Nobody re-reads; time passes.
    for _ in 0..2 {
        clock.advance(100 * MS);
        e.poll(64, &mut r);
    }
    assert_eq!(e.stats().rereads, 3, "a round that does not come back in time is a failed round");
    clock.advance(100 * MS);
    e.poll(64, &mut r);
    assert_eq!(e.stats().fill_requests, 1, "then the other stream");
    for _ in 0..3 {
        clock.advance(100 * MS);
        e.poll(64, &mut r);
    }
    assert!(r.notices().contains(&N::Lost { origin: 0, from: 3, to: 4 }));

    // The active stream was skipped past the hole meanwhile: it is asked again, from before it.
    assert!(r.subscribes().contains(&(0, StartAt::Pos(pos_of(0, 2) + 1), Purpose::Resume { origin: 0 })));
}

/// Defect 2. The controller writes a SWITCHBACK into A and B at the same wall time; B, active,
/// lags A, so B's copy lies behind the delivery frontier. Main counted it stale, consumed its id,
/// then ignored A's copy as a repeat: the recipient stayed on B for good, silently. Now B's copy
/// (the active stream's) governs: it was written after the switch to B, so it applies.
#[test]
fn a_switchback_written_to_both_streams_applies_from_the_lagging_active_copy() {
    let (mut e, mut p, clock, mut app) = setup(cfg2(), Box::new(AlwaysStage));
    let mut up = Upstream::new(2);
    up.data(0, 0..400, &[]);
    up.data(1, 0..400, &[]);
    // The switch to B at point 100 (written into both at once); the switchback written at point
    // 110 of A, which is point 80 of B: B lags by 30 events, so its copy lies behind the frontier
    // (B is still catching up on what A delivered).
    up.flip(0, 100, 100_000, &flip(FlipAction::Switch, 1, 1));
    up.flip(1, 100, 100_000, &flip(FlipAction::Switch, 1, 1));
    up.flip(0, 110, 110_000, &flip(FlipAction::Switchback, 2, 0));
    up.flip(1, 80, 110_000, &flip(FlipAction::Switchback, 2, 0));
    for t in 0..=40u64 {
        up.publish_until(0, t * 10);
        up.publish_until(1, (t * 10).saturating_sub(30));
        clock.advance(MS);
        app.run(&mut e, &mut p, &up, 2);
    }
    up.publish_until(1, 400);
    app.run(&mut e, &mut p, &up, 8);
    assert_eq!(app.seqs(), (0..400).collect::<Vec<_>>());
    let switched: Vec<N> = app.r.notices().into_iter().filter(|n| matches!(n, N::Switched { .. })).collect();
    assert_eq!(
        switched,
        // The switch to B delivered nothing from B before the switchback came (B was still
        // catching up): reported when the next one is made, not seamless.
        vec![
            N::Switched { from: 0, to: 1, flip_id: 1, seamless: false },
            N::Switched { from: 1, to: 0, flip_id: 2, seamless: true }
        ]
    );
    assert_eq!(e.active_stream(), 0, "the switchback was applied");
    assert_eq!(e.stats().flips_repeated, 1, "A's copy of the switchback, met after returning to A");
    assert_eq!(e.stats().flips_stale, 0);
}

/// Defect 3. A cold switchback meets a stream last seen long ago: main said `from_pos 0`, which
/// one reader took for "live" (it skipped 119,982 events after one Gap) and another for "after
/// the frontier". Now the start is typed; followed, nothing is skipped or re-read.
#[test]
fn a_cold_switchback_names_where_to_resume_typed() {
    let mut c = cfg2();
    c.keep_previous = false;
    let (mut e, mut p, clock, mut app) = setup(c, Box::new(NeverStage));
    let mut up = Upstream::new(2);
    up.data(0, 0..300, &[]);
    up.data(1, 0..300, &[]);
    up.flip(0, 100, 100_000, &flip(FlipAction::Switch, 1, 1));
    up.flip(1, 200, 200_000, &flip(FlipAction::Switchback, 2, 0));
    for t in 0..=30u64 {
        up.publish_until(0, t * 10);
        up.publish_until(1, t * 10);
        clock.advance(MS);
        app.run(&mut e, &mut p, &up, 2);
    }
    up.publish_until(0, 300);
    app.run(&mut e, &mut p, &up, 8);
    assert_eq!(app.seqs(), (0..300).collect::<Vec<_>>());
    let subs = app.r.subscribes();
    // Stream 1 was never seen when switched to; stream 0 was, but at seq 99, not at the
    // frontier (199): both typed, naming the origin's last delivered seq.
    assert!(subs.contains(&(1, StartAt::AfterSeq { origin: 0, seq: 99 }, Purpose::Switch)), "{subs:?}");
    assert!(subs.contains(&(0, StartAt::AfterSeq { origin: 0, seq: 199 }, Purpose::Switch)), "{subs:?}");
    assert_eq!(e.stats().gaps, 0);
    assert_eq!(e.stats().skipped_for_reread, 0);
    assert!(subs.iter().all(|(_, from, _)| *from != StartAt::Pos(0)), "never a bare 0");
}

/// Defect 3, exact when the engine knows: a re-read names the position just after the gapped
/// origin's frontier event, seen on the active stream; a second origin that never reached this
/// stream makes a cold switch's start `AfterFrontier`.
#[test]
fn positions_are_exact_where_seen_and_typed_where_not() {
    let (mut e, mut p, _clock, mut app) = setup(cfg2(), Box::new(NeverStage));
    for s in [0u64, 1, 2, 4] {
        push_data(&mut p[0], 0, s).unwrap();
    }
    push_data(&mut p[0], 1, 0).unwrap();
    e.poll(64, &mut app.r);
    assert!(app.r.subscribes().contains(&(
        0,
        StartAt::Pos(pos_of(0, 2) + 1),
        Purpose::ReRead { origin: 0, from_seq: 3, to_seq: 3 }
    )));
    // The application re-reads 3, 4; then a cold switch to stream 1, never seen, two origins.
    push_data(&mut p[0], 0, 3).unwrap();
    push_data(&mut p[0], 0, 4).unwrap();
    push_data(&mut p[0], 1, 0).unwrap();
    push_flip(&mut p[0], pos_of(0, 5), &flip(FlipAction::Switch, 1, 1));
    e.poll(64, &mut app.r);
    assert!(app.r.subscribes().contains(&(1, StartAt::AfterFrontier, Purpose::Switch)));
}

/// Defect 4. A switch whose target's window does not reach back: part of the hole is filled
/// from the old stream, the rest needs a re-read. Main emitted `Switched` at the first filled
/// event (0.001 ms stall) and did not count the re-read. Now `Switched` waits until the target
/// delivers in order: the stall includes the re-read, and the switch is not seamless.
#[test]
fn the_stall_includes_the_reread_a_switch_needed() {
    let mut c = cfg2();
    c.default_window = 10;
    let (mut e, mut p, clock, mut app) = setup(c, Box::new(AlwaysStage));
    let mut up = Upstream::new(2);
    up.data(0, 0..100, &[]);
    up.data(1, 0..100, &[]);
    up.flip(0, 50, 50_000, &flip(FlipAction::Switch, 1, 1));
    app.run(&mut e, &mut p, &up, 1); // B staged, subscribed live
                                     // A reaches past the switch (into its staged window after it); B is far ahead: its 10-event
                                     // window starts after what A can fill.
    up.publish_until(0, 60);
    up.publish_until(1, 100);
    app.run(&mut e, &mut p, &up, 1);
    assert_eq!(app.seqs(), (0..60).collect::<Vec<_>>(), "up to the switch from A, then A's window");
    // A, staged, has not shown the origin past the hole: it may yet bring the rest, so the hole
    // waits for it first (`gap_wait_ns`, issue 19 defect 7). A has stopped: then the re-read.
    assert_eq!(e.stats().rereads, 0);
    clock.advance(Liveness::default().gap_wait_ns);
    app.run(&mut e, &mut p, &up, 1);
    assert!(app.r.subscribes().contains(&(
        1,
        StartAt::AfterSeq { origin: 0, seq: 59 },
        Purpose::ReRead { origin: 0, from_seq: 60, to_seq: 89 }
    )));
    // The re-read takes 40 ms to come back.
    clock.advance(40 * MS);
    app.run(&mut e, &mut p, &up, 6);
    assert_eq!(app.seqs(), (0..100).collect::<Vec<_>>());
    let (stall, seamless) = app
        .r
        .seen
        .iter()
        .find_map(|s| match s {
            Seen::Notice(N::Switched { seamless, .. }) => Some((e.stats().stall_last_ns, *seamless)),
            _ => None,
        })
        .unwrap();
    assert!(!seamless, "a re-read was needed");
    assert!(stall >= 40 * MS, "the stall counts the re-read: {stall}");
    assert!(e.stats().gap_filled > 0 && e.stats().rereads >= 1);
    // Every event filled from A came before the notice; after it, only B.
    let i = app.r.seen.iter().position(|s| matches!(s, Seen::Notice(N::Switched { .. }))).unwrap();
    assert!(app.r.seen[i + 1..].iter().all(|s| !matches!(s, Seen::Event { stream: 0, .. })));
}

/// Defect 4, the other case: a staged target that lags. No fetch and no re-read: seamless, and
/// the stall is the wait for the target to reach the frontier.
#[test]
fn a_lagging_staged_target_is_seamless_and_its_wait_is_the_stall() {
    let (mut e, mut p, clock, mut app) = setup(cfg2(), Box::new(AlwaysStage));
    let mut up = Upstream::new(2);
    up.data(0, 0..100, &[]);
    up.data(1, 0..100, &[]);
    up.flip(0, 50, 50_000, &flip(FlipAction::Switch, 1, 1));
    up.publish_until(0, 60);
    up.publish_until(1, 30); // B lags
    app.run(&mut e, &mut p, &up, 2);
    clock.advance(3_000 * MS);
    up.publish_until(1, 100);
    app.run(&mut e, &mut p, &up, 4);
    assert_eq!(app.seqs(), (0..100).collect::<Vec<_>>());
    assert!(app.r.notices().contains(&N::Switched { from: 0, to: 1, flip_id: 1, seamless: true }));
    assert_eq!(e.stats().stall_last_ns, 3_000 * MS);
    assert_eq!(e.stats().rereads, 0);
}

/// Defect 5. The active stream goes silent while the staged candidate advances: main said
/// nothing. Now `ActiveSilent` once, with the candidate's lead; opt-in, a failover to it that
/// delivers exactly once.
#[test]
fn a_silent_active_stream_is_reported_and_may_fail_over() {
    for failover in [false, true] {
        let mut c = cfg2();
        c.liveness.silence_ns = 1_000 * MS;
        c.liveness.failover_on_silence = failover;
        let (mut e, mut p, clock, mut app) = setup(c, Box::new(AlwaysStage));
        let mut up = Upstream::new(2);
        up.data(0, 0..100, &[]);
        up.data(1, 0..100, &[]);
        up.publish_until(0, 40); // A stops at 40
        up.publish_until(1, 40);
        app.run(&mut e, &mut p, &up, 2);
        up.publish_until(1, 100); // B goes on
        for _ in 0..15 {
            clock.advance(100 * MS);
            app.run(&mut e, &mut p, &up, 1);
        }
        let silent: Vec<N> = app.r.notices().into_iter().filter(|n| matches!(n, N::Silent { .. })).collect();
        assert_eq!(
            silent,
            vec![N::Silent { stream: 0, candidate: 1, lead_events: 60 }],
            "failover {failover}"
        );
        assert_eq!(e.stats().silences, 1);
        if failover {
            assert!(app.r.notices().contains(&N::FailedOver { from: 0, to: 1, seamless: true }));
            assert_eq!(app.seqs(), (0..100).collect::<Vec<_>>());
            assert_eq!(e.stats().failovers, 1);
        } else {
            assert_eq!(app.seqs(), (0..40).collect::<Vec<_>>());
            assert_eq!(e.active_stream(), 0);
        }
    }
}

/// Defect 6. Flips forced `max_payload` ≥ 1,335 on data, and staged bytes were counted as
/// window × largest frame (208.8 MB reported for a 32 MiB ring). Now data keeps its own limit,
/// flips still pass, and `staged_bytes` is what the windows hold.
#[test]
fn flips_do_not_force_a_large_max_payload_and_staged_bytes_are_real() {
    let (mut e, mut p, _clock, mut app) = setup(EngineConfig::new(7, 2, 1 << 16, 64), Box::new(AlwaysStage));
    assert_eq!(p[0].max_payload(), 64);
    let big = vec![0u8; 65];
    let h = data(0, 0, 0);
    assert!(matches!(p[0].push(&h, &big), Err(PushError::TooLarge { len: 65, max: 64 })));
    // The largest flip record passes.
    let ids: Vec<u64> = (0..32).collect();
    let loc = vec![7u8; 1024];
    let mut f = flip(FlipAction::Announce, 9, 1);
    f.selector = harmonizer_core::flip::Selector::Ids(harmonizer_core::flip::IdList::new(&ids).unwrap());
    f.locator = &loc;
    assert_eq!(f.to_vec().unwrap().len(), MAX_FLIP_LEN);
    e.poll(1, &mut app.r);
    push_flip(&mut p[1], 1, &f);
    for s in 0..20 {
        push_data(&mut p[1], 0, s).unwrap();
    }
    e.poll(1, &mut app.r);
    // One flip frame (8 + 32 + 1335, rounded to 8) and 20 data frames of 56 bytes.
    assert_eq!(e.stats().staged_bytes, 1376 + 20 * 56);
}

/// Defect 8. The initial stream gets a `Subscribe` too: exact from the application's stream
/// checkpoint, typed from a tracker checkpoint, live with none.
#[test]
fn the_initial_stream_is_subscribed_with_its_exact_start() {
    let first = |e: &mut Engine| {
        let mut r = Recorder::default();
        e.poll(1, &mut r);
        r.all_notices().into_iter().next()
    };
    let (mut e, _p, _) = engine(cfg2(), Box::new(ManualStage));
    assert_eq!(
        first(&mut e),
        Some(N::Subscribe { stream: 0, locator: vec![], from: StartAt::Live, purpose: Purpose::Initial })
    );
    let (mut e, _p, _) = engine(cfg2(), Box::new(ManualStage));
    e.tracker_mut().resume_at(0, 500);
    assert_eq!(
        first(&mut e),
        Some(N::Subscribe {
            stream: 0,
            locator: vec![],
            from: StartAt::AfterSeq { origin: 0, seq: 499 },
            purpose: Purpose::Initial
        })
    );
    let (mut e, _p, _) = engine(cfg2(), Box::new(ManualStage));
    e.tracker_mut().resume_at(0, 500);
    assert!(e.resume_stream_at(0, 123_456));
    assert!(!e.resume_stream_at(9, 1));
    assert_eq!(
        first(&mut e),
        Some(N::Subscribe {
            stream: 0,
            locator: vec![],
            from: StartAt::Pos(123_456),
            purpose: Purpose::Initial
        })
    );
}
