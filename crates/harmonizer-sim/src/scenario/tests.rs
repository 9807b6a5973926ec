use super::*;
use harmonizer_core::event::{FLAG_UPSTREAM_ERROR, KIND_DATA, KIND_FLIP};
use harmonizer_core::flip::{FlipAction, Selector};

fn gen(p: &ScenarioParams) -> Trace {
    generate(p).expect("valid params")
}

/// The same world with few events per second: the plan (and so the truth) is unchanged, and a
/// long trace renders fast in a debug build.
fn sparse(mut p: ScenarioParams, rate: f64) -> ScenarioParams {
    p.base_rate = rate;
    p
}

#[test]
fn record_fits_in_48_bytes() {
    assert!(core::mem::size_of::<TraceRecord>() <= 48);
}

#[test]
fn same_seed_same_trace_other_seed_other_trace() {
    let a = gen(&ScenarioParams::small(1));
    let b = gen(&ScenarioParams::small(1));
    assert!(a == b, "same seed gave different traces");
    let c = gen(&ScenarioParams::small(2));
    assert!(a != c, "different seeds gave the same trace");
    assert_ne!(a.streams[0][..100], c.streams[0][..100]);
    let (train, test) = (sparse(ScenarioParams::train(), 2.0), sparse(ScenarioParams::test(), 2.0));
    assert_ne!(gen(&train).switches, gen(&test).switches);
}

#[test]
fn the_plan_does_not_depend_on_the_rate_or_lags() {
    let p = ScenarioParams::small(3);
    let mut q = sparse(p.clone(), 37.0);
    q.stream_lag_ns = vec![5_000_000, 0, 1];
    q.jitter_ns = 0;
    let (a, b) = (gen(&p), gen(&q));
    assert_eq!(a.switches, b.switches);
    assert_eq!(a.episodes, b.episodes);
    assert_eq!(a.flips, b.flips);
    assert!(a.logical_events > 5 * b.logical_events);
}

/// Checks every structural promise of a trace.
fn check_structure(t: &Trace, p: &ScenarioParams) {
    assert_eq!(t.streams.len(), p.streams as usize);
    assert_eq!(t.recipient_id, p.recipient_id);
    for (s, recs) in t.streams.iter().enumerate() {
        let mut last_seq = 0;
        let mut last_ts = 0;
        for (i, (r, next)) in recs.iter().zip(recs.iter().skip(1).map(Some).chain([None])).enumerate() {
            assert_eq!(r.header.pos, i as u64 + 1, "stream {s} record {i}");
            assert_eq!(r.header.origin, 0);
            assert!(r.header.ts_ns >= last_ts && r.header.ts_ns < t.duration_ns);
            last_ts = r.header.ts_ns;
            assert!(r.arrival_ns >= r.header.ts_ns + p.stream_lag_ns[s]);
            if let Some(n) = next {
                assert!(n.arrival_ns >= r.arrival_ns, "stream {s} arrivals decrease at {i}");
            }
            match r.header.kind {
                KIND_DATA => {
                    assert_eq!(r.flip, NO_FLIP);
                    assert!(r.header.seq > last_seq, "stream {s} seq not increasing at {i}");
                    assert!(r.header.seq <= t.logical_events);
                    last_seq = r.header.seq;
                }
                KIND_FLIP => {
                    assert_eq!((r.header.seq, r.header.flags), (0, 0));
                    let bytes = t.flips.get(r.flip as usize).expect("flip index in range");
                    let f = Flip::decode(bytes).expect("flip decodes");
                    assert_eq!((f.cutover_pos, f.resume_pos, f.not_before_ns), (0, 0, 0));
                    assert!(f.target < p.streams);
                }
                k => panic!("unexpected kind {k}"),
            }
        }
    }
    // Flip ids increase with the flip index.
    let ids: Vec<u64> = t.flips.iter().map(|b| Flip::decode(b).unwrap().flip_id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
}

/// Checks the ground truth against the records.
fn check_truth(t: &Trace, p: &ScenarioParams) {
    let mut active = t.initial_stream;
    let mut last_at = 0;
    for sw in &t.switches {
        assert!(sw.at_ns > last_at && sw.at_ns < t.duration_ns);
        assert_eq!(sw.from, active, "{sw:?}");
        assert_ne!(sw.to, sw.from, "{sw:?}");
        assert!(sw.to < p.streams);
        assert!(sw.signal_ns <= sw.at_ns);
        assert_eq!(sw.predictable, sw.at_ns - sw.signal_ns >= PREDICTABLE_LEAD_NS);
        assert_eq!(t.active_at(sw.at_ns - 1), sw.from);
        assert_eq!(t.active_at(sw.at_ns), sw.to);
        // The flip is in the active stream at that time, and selects the recipient.
        let recs = &t.streams[sw.from as usize];
        let at = recs.partition_point(|r| r.header.ts_ns < sw.at_ns);
        let found = recs[at..].iter().take_while(|r| r.header.ts_ns == sw.at_ns).any(|r| {
            r.header.kind == KIND_FLIP && {
                let f = Flip::decode(&t.flips[r.flip as usize]).unwrap();
                let action =
                    if sw.cause == Cause::Switchback { FlipAction::Switchback } else { FlipAction::Switch };
                f.flip_id == sw.flip_id
                    && f.target == sw.to
                    && f.action == action
                    && f.selector.selects(t.recipient_id)
            }
        });
        assert!(found, "flip of {sw:?} not in stream {}", sw.from);
        active = sw.to;
        last_at = sw.at_ns;
    }
    // No flip selecting the recipient (SWITCH/SWITCHBACK) names a target other than the active
    // stream, except the truth switches: the engine would switch where the truth does not.
    for recs in &t.streams {
        for r in recs.iter().filter(|r| r.header.kind == KIND_FLIP) {
            let f = Flip::decode(&t.flips[r.flip as usize]).unwrap();
            let switching = matches!(f.action, FlipAction::Switch | FlipAction::Switchback);
            if switching && f.selector.selects(t.recipient_id) {
                let ts = r.header.ts_ns;
                let is_truth = t.switches.iter().any(|s| s.flip_id == f.flip_id);
                assert!(is_truth || f.target == t.active_at(ts), "untracked switch {f:?} at {ts}");
            }
        }
    }
    // Dead streams deliver nothing, and the active one is never dead.
    for e in t.episodes.iter().filter(|e| e.kind == EpisodeKind::Dead) {
        let recs = &t.streams[e.stream as usize];
        let after = recs.partition_point(|r| r.header.ts_ns <= e.start_ns);
        assert!(!recs.get(after).is_some_and(|r| r.header.ts_ns <= e.end_ns), "dead stream delivers: {e:?}");
        for (i, sw) in t.switches.iter().enumerate() {
            let end = t.switches.get(i + 1).map_or(t.duration_ns, |n| n.at_ns);
            let overlaps = sw.at_ns <= e.end_ns && e.start_ns < end;
            assert!(!(sw.to == e.stream && overlaps), "active stream {} dead: {e:?}", e.stream);
        }
    }
    // And the active stream keeps delivering: no silence of a second (or of 30 mean gaps, at a
    // low rate) while it is active.
    let silent = SEC.max((30.0 / p.base_rate * SEC as f64) as u64);
    let mut bounds: Vec<(u64, u32)> = vec![(0, t.initial_stream)];
    bounds.extend(t.switches.iter().map(|s| (s.at_ns, s.to)));
    for (i, &(from, s)) in bounds.iter().enumerate() {
        let to = bounds.get(i + 1).map_or(t.duration_ns, |b| b.0);
        let mut last = from;
        let recs = &t.streams[s as usize];
        let (a, b) =
            (recs.partition_point(|r| r.header.ts_ns < from), recs.partition_point(|r| r.header.ts_ns < to));
        for r in &recs[a..b] {
            assert!(
                r.header.ts_ns - last < silent,
                "stream {s} silent before {} while active",
                r.header.ts_ns
            );
            last = r.header.ts_ns;
        }
        assert!(to - last < silent, "stream {s} silent at the end of its active time {from}..{to}");
    }
}

#[test]
fn structure_and_truth_hold() {
    for seed in 1..=4 {
        let p = ScenarioParams::small(seed);
        let t = gen(&p);
        assert!(!t.switches.is_empty(), "seed {seed}: no switches in 120 s");
        check_structure(&t, &p);
        check_truth(&t, &p);
    }
}

#[test]
fn structure_and_truth_hold_with_many_streams_and_incidents() {
    let p = ScenarioParams {
        streams: 5,
        stream_lag_ns: vec![1_000_000, 0, 4_000_000, 2_000_000, 9_000_000],
        duration_ns: 1200 * SEC,
        incident_every_ns: 2 * SEC,
        quiet_ns: 0,
        switchback_prob: 0.6,
        ..sparse(ScenarioParams::small(9), 40.0)
    };
    let t = gen(&p);
    assert!(t.switches.len() > 60, "{}", t.switches.len());
    check_structure(&t, &p);
    check_truth(&t, &p);
}

#[test]
fn streams_show_their_lag_impairments_and_gaps() {
    let p = ScenarioParams::small(5);
    let t = gen(&p);
    let mean_lag = |s: usize| {
        let recs = &t.streams[s];
        recs.iter().map(|r| (r.arrival_ns - r.header.ts_ns) as f64).sum::<f64>() / recs.len() as f64
    };
    assert!(mean_lag(1) < mean_lag(0) && mean_lag(0) < mean_lag(2));
    let data = |s: usize| t.streams[s].iter().filter(|r| r.header.kind == KIND_DATA).count() as u64;
    assert!(data(1) <= t.logical_events);
    let flagged: usize =
        t.streams.iter().flatten().filter(|r| r.header.flags & FLAG_UPSTREAM_ERROR != 0).count();
    let gaps: u64 = (0..3).map(|s| t.logical_events - data(s)).sum();
    if t.switches.iter().any(|s| matches!(s.cause, Cause::Degradation | Cause::Switchback)) {
        assert!(flagged > 0);
    }
    if t.switches.iter().any(|s| s.cause == Cause::Degradation) {
        assert!(gaps > 0);
    }
    // The flips reach every live stream: each stream has as many as the plan minus its dead time.
    let flips_in = |s: usize| t.streams[s].iter().filter(|r| r.header.kind == KIND_FLIP).count();
    assert!((0..3).all(|s| flips_in(s) <= t.flips.len()));
}

#[test]
fn every_cause_appears_in_the_training_trace() {
    let p = ScenarioParams::train();
    let t = gen(&p);
    // Failbacks are off in the standard worlds (`failback_prob` 0): the next test has them.
    for cause in Cause::ALL.into_iter().filter(|&c| c != Cause::Failback) {
        assert!(t.switches.iter().any(|s| s.cause == cause), "no {} switch in train()", cause.name());
    }
    assert!(!t.switches.iter().any(|s| s.cause == Cause::Failback));
    for kind in [
        EpisodeKind::FalseAlarm,
        EpisodeKind::AnnounceNever,
        EpisodeKind::Burst,
        EpisodeKind::Dead,
        EpisodeKind::Stall,
    ] {
        assert!(t.episodes.iter().any(|e| e.kind == kind), "no {} episode in train()", kind.name());
    }
    check_structure(&t, &p);
    check_truth(&t, &p);
}

/// A failback returns to the stream the previous switch left, a degraded, dead or stalled
/// one, 10–30 s after it recovered; a switchback in between rules it out.
#[test]
fn failbacks_return_to_the_stream_left_once_it_recovered() {
    let p = ScenarioParams {
        duration_ns: 1200 * SEC,
        mix: CauseMix { degradation: 1.0, fail_stop: 1.0, stall: 1.0, ..CauseMix::NONE },
        switchback_prob: 0.3,
        failback_prob: 1.0,
        ..sparse(ScenarioParams::small(11), 50.0)
    };
    let t = gen(&p);
    check_structure(&t, &p);
    check_truth(&t, &p);
    let failbacks: Vec<_> =
        t.switches.iter().enumerate().filter(|(_, s)| s.cause == Cause::Failback).collect();
    assert!(failbacks.len() >= 10, "{}", failbacks.len());
    let (lo, hi) = p.failback.delay_ns;
    for &(i, fb) in &failbacks {
        let before = &t.switches[i - 1];
        assert!(matches!(before.cause, Cause::Degradation | Cause::FailStop | Cause::Stall), "{before:?}");
        assert_eq!((fb.from, fb.to), (before.to, before.from), "back to the stream left");
        assert_eq!(fb.signal_ns, before.at_ns, "the warning is the departure");
        let recovered = match before.cause {
            Cause::Degradation => before.at_ns + p.degradation.recover_ns,
            Cause::FailStop => {
                t.episodes
                    .iter()
                    .find(|e| e.kind == EpisodeKind::Dead && e.start_ns == before.at_ns)
                    .unwrap()
                    .end_ns
            }
            _ => before.at_ns,
        };
        assert!(fb.at_ns >= recovered + lo && fb.at_ns <= recovered + hi, "{fb:?} after {before:?}");
    }
    // Every degradation, fail-stop or stall switch not undone by a switchback fails back.
    for (i, s) in t.switches.iter().enumerate() {
        if matches!(s.cause, Cause::Degradation | Cause::FailStop | Cause::Stall) {
            if let Some(next) = t.switches.get(i + 1) {
                assert!(matches!(next.cause, Cause::Switchback | Cause::Failback), "{s:?} then {next:?}");
            }
        }
    }
    // Off, there are none (and nothing is drawn for them: `maybe_failback`).
    let off = gen(&ScenarioParams { failback_prob: 0.0, ..p.clone() });
    assert!(!off.switches.iter().any(|s| s.cause == Cause::Failback));
}

#[test]
fn a_stall_silences_the_active_stream_while_the_others_go_on() {
    let p = ScenarioParams {
        mix: CauseMix { stall: 1.0, ..CauseMix::NONE },
        switchback_prob: 0.0,
        ..ScenarioParams::small(12)
    };
    let t = gen(&p);
    check_structure(&t, &p);
    check_truth(&t, &p);
    let mut spans: Vec<(u32, u64, u64, bool)> =
        t.switches.iter().map(|s| (s.from, s.signal_ns, s.at_ns, true)).collect();
    spans.extend(
        t.episodes
            .iter()
            .filter(|e| e.kind == EpisodeKind::Stall)
            .map(|e| (e.stream, e.start_ns, e.end_ns, false)),
    );
    assert!(
        spans.iter().filter(|s| s.3).count() >= 3 && spans.iter().filter(|s| !s.3).count() >= 1,
        "{spans:?}"
    );
    let slack = p.stream_lag_ns.iter().max().unwrap() + p.jitter_ns;
    for &(s, start, end, switched) in &spans {
        assert!(end - start >= if switched { p.stall.detect_ns.0 } else { p.stall.recover_ns.0 });
        let arrivals = |k: u32| {
            t.streams[k as usize]
                .iter()
                .filter(|r| r.arrival_ns > start + slack && r.arrival_ns < end)
                .count()
        };
        assert_eq!(arrivals(s), 0, "stream {s} delivers during its stall {start}..{end}");
        let others: usize = (0..p.streams).filter(|&k| k != s).map(arrivals).sum();
        assert!(others as f64 > 0.5 * p.base_rate * (end - start - slack) as f64 / SEC as f64, "{others}");
        // Its backlog arrives when it comes back, in order, the SWITCH after it.
        let recs = &t.streams[s as usize];
        let held = recs.iter().filter(|r| r.header.ts_ns > start && r.header.ts_ns <= end);
        assert!(held.clone().count() > 0 && held.clone().all(|r| r.arrival_ns >= end));
        if switched {
            let flip = recs.iter().position(|r| r.header.kind == KIND_FLIP && r.header.ts_ns == end).unwrap();
            assert!(recs[..flip].iter().filter(|r| r.header.ts_ns > start).all(|r| r.header.ts_ns <= end));
        }
    }
}

/// Share of a uniform `(lo, hi)` span at least `min`.
fn share_at_least((lo, hi): (u64, u64), min: u64) -> f64 {
    if lo >= min {
        1.0
    } else if hi < min {
        0.0
    } else {
        (hi - min) as f64 / (hi - lo) as f64
    }
}

/// Expected (switches, predictable switches) per incident, from the parameters.
fn expected_per_incident(p: &ScenarioParams) -> (f64, f64) {
    let (a, d, r, l, sb, st) = (&p.announce, &p.degradation, &p.rollout, &p.load, &p.switchback, &p.stall);
    let one = PREDICTABLE_LEAD_NS;
    // (weight, switches, predictable, followed by a switchback if drawn)
    let announced = 1.0 - a.never_share;
    let real = 1.0 - d.false_alarm_share;
    let bp = |i: usize| f64::from(r.stages_bp[i]) / 10_000.0;
    let last = r.stages_bp.len() - 1;
    let at_last = bp(last) - if last > 0 { bp(last - 1) } else { 0.0 };
    let gap_ok = share_at_least(r.stage_gap_ns, one); // all later stages are >= 1 gap after the first
    let causes = [
        (
            p.mix.announced,
            announced,
            (1.0 - a.late_share - a.never_share) * share_at_least(a.lead_ns, one)
                + a.late_share * share_at_least(a.late_lead_ns, one),
            announced,
        ),
        (p.mix.degradation, real, real * share_at_least(d.ramp_ns, one), real),
        (p.mix.fail_stop, 1.0, 0.0, 0.0),
        (p.mix.rollout, bp(last), (bp(last) - bp(0)) * gap_ok, at_last),
        (p.mix.load, 1.0, share_at_least((l.ramp_ns + l.sustain_ns.0, l.ramp_ns + l.sustain_ns.1), one), 1.0),
        (
            p.mix.stall,
            1.0 - st.recover_share,
            (1.0 - st.recover_share) * share_at_least(st.detect_ns, one),
            1.0 - st.recover_share,
        ),
    ];
    let total: f64 = causes.iter().map(|c| c.0).sum();
    let sb_pred = share_at_least((sb.delay_ns.0 - sb.bad_after_ns, sb.delay_ns.1 - sb.bad_after_ns), one);
    let (mut sw, mut pred) = (0.0, 0.0);
    for (w, s, q, e) in causes {
        let w = w / total;
        sw += w * (s + e * p.switchback_prob);
        pred += w * (q + e * p.switchback_prob * sb_pred);
    }
    (sw, pred)
}

#[test]
fn predictable_share_matches_the_parameters() {
    let (sw, pred) = expected_per_incident(&ScenarioParams::default());
    let expected = pred / sw;
    // With the defaults most switches give warning, but not all.
    assert!((0.55..=0.9).contains(&expected), "{expected}");

    let p = ScenarioParams { duration_ns: 20_000 * SEC, ..sparse(ScenarioParams::small(11), 1.0) };
    let t = gen(&p);
    let n = t.switches.len() as f64;
    assert!(n > 400.0, "{n}");
    let got = t.switches.iter().filter(|s| s.predictable).count() as f64 / n;
    let sigma = (expected * (1.0 - expected) / n).sqrt();
    assert!(
        (got - expected).abs() < 4.0 * sigma + 0.01,
        "predictable share {got:.3}, expected {expected:.3}"
    );
    for s in &t.switches {
        match s.cause {
            Cause::FailStop => assert!(!s.predictable && s.signal_ns == s.at_ns),
            Cause::Degradation | Cause::Load | Cause::Switchback | Cause::Stall | Cause::Failback => {
                assert!(s.predictable)
            }
            Cause::Announced | Cause::Rollout => {}
            Cause::Unlabelled => panic!("the generator labels every switch"),
        }
    }
    // Each cause is picked about as often as its weight says: fail-stops are 1/12 of incidents.
    let count = |c: Cause| t.switches.iter().filter(|s| s.cause == c).count() as f64;
    let no_switch = t.episodes.iter().filter(|e| {
        matches!(e.kind, EpisodeKind::FalseAlarm | EpisodeKind::AnnounceNever | EpisodeKind::Stall)
    });
    let incidents = n - count(Cause::Switchback) + no_switch.count() as f64;
    let (want, got) = (incidents / 12.0, count(Cause::FailStop));
    assert!((got - want).abs() < 4.0 * want.sqrt(), "{got} fail-stops in {incidents} incidents");
}

#[test]
fn switch_lookup_by_time() {
    let t = gen(&ScenarioParams::small(4));
    let first = t.switches[0];
    assert_eq!(t.active_at(0), t.initial_stream);
    assert_eq!(t.active_at(first.at_ns), first.to);
    assert_eq!(t.switch_within(first.at_ns - 10, 10), Some(&first));
    assert_eq!(t.switch_within(first.at_ns - 10, 9), None);
    assert_ne!(t.switch_within(first.at_ns, u64::MAX).map(|s| s.at_ns), Some(first.at_ns));
    assert_eq!(t.switch_within(t.duration_ns, u64::MAX), None);
    assert!(t.records() > t.logical_events as usize * 2);
}

#[test]
fn noise_never_selects_the_recipient() {
    let t = gen(&ScenarioParams::small(6));
    let foreign: Vec<_> = t.episodes.iter().filter(|e| e.kind == EpisodeKind::ForeignFlip).collect();
    assert!(!foreign.is_empty());
    for r in t.streams[1].iter().filter(|r| r.header.kind == KIND_FLIP) {
        let f = Flip::decode(&t.flips[r.flip as usize]).unwrap();
        if let Selector::Ids(ids) = f.selector {
            if !ids.as_slice().contains(&t.recipient_id) {
                assert!(foreign.iter().any(|e| e.start_ns == r.header.ts_ns));
            }
        }
    }
}

#[test]
fn disabled_processes_stay_quiet() {
    let p = ScenarioParams {
        incident_every_ns: 0,
        foreign_flip_every_ns: 0,
        bursts: BurstParams { every_ns: 0, ..BurstParams::default() },
        ..ScenarioParams::small(1)
    };
    let t = gen(&p);
    assert!(t.switches.is_empty() && t.episodes.is_empty() && t.flips.is_empty());
    // Poisson at 400/s for 120 s: 48000 ± 220.
    assert!((t.logical_events as f64 - 48_000.0).abs() < 1500.0, "{}", t.logical_events);
    assert!(t.streams.iter().all(|s| s.len() as u64 == t.logical_events));
}

#[test]
fn validation_rejects_bad_parameters() {
    let ok = ScenarioParams::small(1);
    assert_eq!(ok.validate(), Ok(()));
    let bad = |f: &dyn Fn(&mut ScenarioParams)| {
        let mut p = ok.clone();
        f(&mut p);
        let e = generate(&p).expect_err("invalid params accepted");
        let msg = e.to_string();
        assert!(!msg.contains('\n') && msg.starts_with("scenario "), "{msg}");
        e
    };
    assert_eq!(bad(&|p| p.streams = 0), ScenarioError::Streams(0));
    assert_eq!(bad(&|p| p.streams = 17), ScenarioError::Streams(17));
    assert_eq!(bad(&|p| p.stream_lag_ns.push(0)), ScenarioError::LagCount { streams: 3, lags: 4 });
    assert_eq!(bad(&|p| p.duration_ns = 0), ScenarioError::ZeroDuration);
    assert!(matches!(bad(&|p| p.base_rate = f64::NAN), ScenarioError::BadNumber { field: "base_rate", .. }));
    assert!(matches!(bad(&|p| p.base_rate = -1.0), ScenarioError::BadNumber { field: "base_rate", .. }));
    assert!(matches!(bad(&|p| p.base_rate = 1e12), ScenarioError::TooLarge { .. }));
    assert!(matches!(bad(&|p| p.mix.load = -2.0), ScenarioError::BadNumber { field: "mix.load", .. }));
    assert!(matches!(bad(&|p| p.mix.rollout = f64::NAN), ScenarioError::BadNumber { .. }));
    assert_eq!(bad(&|p| p.mix = CauseMix::NONE), ScenarioError::EmptyMix);
    assert!(matches!(
        bad(&|p| p.failback_prob = -0.5),
        ScenarioError::BadNumber { field: "failback_prob", .. }
    ));
    assert!(matches!(
        bad(&|p| p.switchback_prob = 1.5),
        ScenarioError::BadNumber { field: "switchback_prob", .. }
    ));
    assert!(matches!(
        bad(&|p| p.announce.never_share = 0.9),
        ScenarioError::BadNumber { field: "announce.late_share + announce.never_share", .. }
    ));
    assert!(matches!(
        bad(&|p| p.degradation.ramp_ns = (5, 4)),
        ScenarioError::BadRange { field: "degradation.ramp_ns", .. }
    ));
    assert!(matches!(
        bad(&|p| p.load.factor = (0.0, 2.0)),
        ScenarioError::BadNumber { field: "load.factor", .. }
    ));
    assert!(matches!(bad(&|p| p.bursts.factor = (3.0, f64::INFINITY)), ScenarioError::BadNumber { .. }));
    assert!(matches!(bad(&|p| p.jitter_ns = u64::MAX), ScenarioError::BadNumber { field: "jitter_ns", .. }));
    assert!(matches!(bad(&|p| p.rollout.stages_bp = vec![]), ScenarioError::BadStages(_)));
    assert!(matches!(bad(&|p| p.rollout.stages_bp = vec![5000, 5000]), ScenarioError::BadStages(_)));
    assert!(matches!(bad(&|p| p.rollout.stages_bp = vec![10_001]), ScenarioError::BadStages(_)));
    assert!(matches!(bad(&|p| p.switchback.bad_after_ns = 3 * SEC), ScenarioError::BadNumber { .. }));
    assert!(matches!(
        bad(&|p| p.foreign_flip_every_ns = 1),
        ScenarioError::TooFrequent { field: "foreign_flip_every_ns", .. }
    ));
    assert!(matches!(
        bad(&|p| (p.incident_every_ns, p.quiet_ns) = (1, 0)),
        ScenarioError::TooFrequent { field: "incident_every_ns", .. }
    ));
    assert!(matches!(
        bad(&|p| (p.base_rate, p.bursts.factor, p.bursts.every_ns) = (5e6, (100.0, 100.0), 1)),
        ScenarioError::TooLarge { .. }
    ));
    // Zero weights are fine when incidents are off.
    let mut quiet = ok.clone();
    quiet.incident_every_ns = 0;
    quiet.mix = CauseMix::NONE;
    assert_eq!(quiet.validate(), Ok(()));
}
