//! Issue 20: the predictor records labelled feature snapshots from live operation, and its
//! opt-in online mode learns from them (`predict/learn.rs`, docs/predictor.md "Learning from
//! the deployment").

#![cfg(not(loom))]

mod common;

use common::*;
use harmonizer_core::engine::{Engine, EngineConfig, StreamProducer};
use harmonizer_core::event::{EventHeader, KIND_DATA};
use harmonizer_core::flip::FlipAction;
use harmonizer_core::predict::learn::MAX_RECORDED_ROWS;
use harmonizer_core::predict::policy::default_model;
use harmonizer_core::predict::{
    LabelledRow, LearnConfig, OnlineConfig, Predictor, PredictorConfig, Preset, FEATURE_NAMES, N_FEATURES,
};

const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;
const HORIZON: u64 = 5 * SEC;

fn predictor(learn: LearnConfig) -> Predictor {
    Predictor::with_default_model(7, PredictorConfig::preset(Preset::Conservative))
        .unwrap()
        .with_learning(learn)
        .unwrap()
}

/// Three streams; data every 10 ms on all of them; flips as given (`(time, action, target)`,
/// written into the active stream). Returns the engine and the times at which it switched.
fn run(p: Predictor, until_ns: u64, flips: &[(u64, FlipAction, u32)]) -> (Engine, Vec<(u64, u32)>) {
    let cfg = EngineConfig::new(7, 3, 1 << 20, 256);
    let (mut e, mut prod, clock) = engine(cfg, Box::new(p));
    let mut r = Recorder::default();
    let mut switches = Vec::new();
    let mut seq = 0u64;
    let mut flip_id = 100;
    let mut t = 10 * MS;
    while t <= until_ns {
        clock.set(t);
        seq += 1;
        for pr in prod.iter_mut() {
            push_at(pr, seq, t);
        }
        for &(at, action, target) in flips {
            if at == t {
                flip_id += 1;
                let active = e.active_stream() as usize;
                push_flip_at(
                    &mut prod[active],
                    pos_of(active as u32, seq) + 1,
                    t,
                    &flip(action, flip_id, target),
                );
            }
        }
        let before = e.active_stream();
        while e.poll(256, &mut r) > 0 {}
        if e.active_stream() != before {
            switches.push((t, e.active_stream()));
        }
        t += 10 * MS;
    }
    (e, switches)
}

fn push_at(p: &mut StreamProducer, seq: u64, t: u64) {
    let stream = p.stream();
    let h = EventHeader { pos: pos_of(stream, seq), seq, ts_ns: t, origin: 0, kind: KIND_DATA, flags: 0 };
    // A stream nobody reads fills up: what it cannot take is not needed.
    let _ = p.push(&h, &payload(0, seq));
}

fn drain(e: &mut Engine) -> Vec<LabelledRow> {
    let p = e.policy_mut::<Predictor>().unwrap();
    let mut out = vec![LabelledRow { t_ns: 0, stream: 0, label: false, features: [0.0; N_FEATURES] }; 64];
    let mut rows = Vec::new();
    loop {
        let n = p.drain_history(&mut out);
        if n == 0 {
            return rows;
        }
        rows.extend_from_slice(&out[..n]);
    }
}

/// The label of each row is "the recipient switched to this candidate within the horizon":
/// computed here from the switches the engine made, and compared with every row the engine
/// recorded. Rows come out one horizon after they were taken, in time order, one per candidate
/// per 100 ms.
#[test]
fn recorded_rows_carry_the_labels_of_the_switches_that_followed() {
    let flips = [
        (8 * SEC, FlipAction::Switch, 1),
        (11 * SEC, FlipAction::Switchback, 0),
        (15 * SEC, FlipAction::Switch, 2),
    ];
    let (mut e, switches) = run(predictor(LearnConfig::default()), 30 * SEC, &flips);
    assert_eq!(switches, vec![(8 * SEC, 1), (11 * SEC, 0), (15 * SEC, 2)]);
    let rows = drain(&mut e);
    let stats = e.policy_mut::<Predictor>().unwrap().learn_stats().unwrap();
    // One snapshot per candidate (two) at the first plan (10 ms), then per 100 ms to 30 s.
    assert_eq!(stats.snapshots, 2 * 301, "{stats:?}");
    assert_eq!(rows.len() as u64, stats.rows_recorded);
    assert_eq!(stats.labelled, stats.rows_recorded);
    assert_eq!((stats.rows_dropped, stats.pending_dropped), (0, 0));
    assert!(rows.windows(2).all(|w| w[0].t_ns <= w[1].t_ns), "time order");
    let last_t = rows.last().unwrap().t_ns;
    assert!(
        last_t + HORIZON < 30 * SEC && last_t + HORIZON + 200 * MS >= 30 * SEC,
        "released up to now − horizon: {last_t}"
    );
    let mut positives = 0;
    for r in &rows {
        assert!(r.t_ns == 10 * MS || r.t_ns % (100 * MS) == 0, "on the cadence: {}", r.t_ns);
        let want = switches.iter().any(|&(at, to)| to == r.stream && at > r.t_ns && at <= r.t_ns + HORIZON);
        assert_eq!(r.label, want, "row at {} for stream {}", r.t_ns, r.stream);
        positives += u64::from(r.label);
        assert!(r.features.iter().all(|f| f.is_finite()));
    }
    assert_eq!(positives, stats.positives);
    // 50 rows before each switch, but stream 0 is a candidate only after the switch at 8 s:
    // the plan runs before the poll reads the flip, so the 8.0 s snapshot still saw 1 and 2,
    // and stream 0's rows start at 8.1 s (29 of them before 11 s).
    assert_eq!(positives, 50 + 29 + 50, "{stats:?}");
    // The features are the predictor's own: the rows it scored.
    assert!(rows
        .iter()
        .any(|r| r.features[FEATURE_NAMES.iter().position(|n| *n == "since_switch").unwrap()] > 0.5));
}

/// A full ring of recorded rows drops new rows and counts them; nothing grows on the poll path.
#[test]
fn a_full_ring_of_recorded_rows_drops_and_counts() {
    let learn = LearnConfig { record_rows: 10, ..LearnConfig::default() };
    let (mut e, _) = run(predictor(learn), 12 * SEC, &[]);
    let s = e.policy_mut::<Predictor>().unwrap().learn_stats().unwrap();
    assert_eq!(s.rows_recorded, 10);
    assert_eq!(s.rows_dropped, s.labelled - 10);
    assert!(s.rows_dropped > 50, "{s:?}");
    assert_eq!(drain(&mut e).len(), 10);
}

/// The waiting ring is sized for the 5 s horizon (52 snapshots per stream). A model with a
/// 100 s horizon installed later grows it, so no snapshot is dropped unlabelled (it used to
/// drop all but the newest 832 and label none); one whose horizon the cadence cannot follow
/// within MAX_PENDING is refused and the current model stays.
#[test]
fn a_model_with_a_longer_horizon_grows_the_waiting_ring() {
    let mut long = default_model();
    long.horizon_ns = 100 * SEC;
    let mut p = predictor(LearnConfig::default());
    p.set_model(long).unwrap();
    let (mut e, _) = run(p, 130 * SEC, &[]);
    let p = e.policy_mut::<Predictor>().unwrap();
    let s = p.learn_stats().unwrap();
    assert_eq!(s.pending_dropped, 0, "{s:?}");
    // Released: the snapshots older than 100 s at 130 s (10 ms, then 0.1 s .. 29.9 s), two
    // candidates each.
    assert_eq!(s.labelled, 2 * 300, "{s:?}");
    assert_eq!(s.snapshots, 2 * 1301, "{s:?}");

    let mut too_long = default_model();
    too_long.horizon_ns = 1000 * SEC;
    let e = p.set_model(too_long).unwrap_err();
    assert!(e.to_string().contains("MAX_PENDING"), "{e}");
    assert_eq!(e.code(), "learning");
    assert_eq!(p.model().horizon_ns, 100 * SEC, "the current model stays");
}

#[test]
fn learning_settings_out_of_range_are_refused_with_the_field_named() {
    let bad = [
        (LearnConfig { every_ns: 1_000, ..LearnConfig::default() }, "every_ns"),
        // 1 ms is allowed, but not over the default model's 5 s horizon: 5002 × 16 snapshots.
        (LearnConfig { every_ns: MS, ..LearnConfig::default() }, "too fine for the model's horizon"),
        (LearnConfig { record_rows: MAX_RECORDED_ROWS + 1, ..LearnConfig::default() }, "record_rows"),
        (LearnConfig { record_rows: 0, online: None, ..LearnConfig::default() }, "neither"),
        (
            LearnConfig {
                online: Some(OnlineConfig { learning_rate: f64::NAN, ..OnlineConfig::default() }),
                ..LearnConfig::default()
            },
            "learning_rate",
        ),
        (
            LearnConfig {
                online: Some(OnlineConfig { max_drift: 0.0, ..OnlineConfig::default() }),
                ..LearnConfig::default()
            },
            "max_drift",
        ),
        (
            LearnConfig {
                online: Some(OnlineConfig { positive_weight: -1.0, ..OnlineConfig::default() }),
                ..LearnConfig::default()
            },
            "positive_weight",
        ),
        (
            LearnConfig {
                online: Some(OnlineConfig { prior_l2: 2.0, ..OnlineConfig::default() }),
                ..LearnConfig::default()
            },
            "prior_l2",
        ),
        (
            LearnConfig {
                online: Some(OnlineConfig { prior_precision: 0.0, ..OnlineConfig::default() }),
                ..LearnConfig::default()
            },
            "prior_precision",
        ),
        (
            LearnConfig {
                online: Some(OnlineConfig { memory_rows: 0.5, ..OnlineConfig::default() }),
                ..LearnConfig::default()
            },
            "memory_rows",
        ),
    ];
    for (cfg, field) in bad {
        let mut p = Predictor::with_default_model(7, PredictorConfig::default()).unwrap();
        let e = p.enable_learning(cfg).unwrap_err();
        assert!(e.to_string().contains(field), "{e} should name {field}");
        assert!(p.learn_stats().is_none(), "a refused configuration leaves learning off");
    }
}

/// The online mode learns what the starting model does not know: with `cand_announced` and
/// `cand_announce_due` weighed 0, an ANNOUNCE says nothing to the model; after a few announced
/// switches, the steps have raised both weights, the announced candidate scores above the
/// others, and no weight has moved further than `max_drift`.
#[test]
fn the_online_mode_learns_a_warning_the_model_ignored() {
    let names = |n: &str| FEATURE_NAMES.iter().position(|f| *f == n).unwrap();
    let (ann, due) = (names("cand_announced"), names("cand_announce_due"));
    let mut m = default_model();
    m.weights[ann] = 0.0;
    m.weights[due] = 0.0;
    let online = OnlineConfig::default();
    let learn = LearnConfig { record_rows: 0, online: Some(online), ..LearnConfig::default() };
    let mut p = Predictor::new(7, m.clone(), PredictorConfig::preset(Preset::Conservative)).unwrap();
    p.enable_learning(learn).unwrap();
    // Announce 3 s ahead, then switch; to 1 and back to 0, eight times, 20 s apart.
    let mut flips = Vec::new();
    for k in 0..8u64 {
        let at = 10 * SEC + k * 20 * SEC;
        let target = if k % 2 == 0 { 1 } else { 0 };
        flips.push((at, FlipAction::Announce, target));
        flips.push((at + 3 * SEC, FlipAction::Switch, target));
    }
    let (mut e, switches) = run(p, 180 * SEC, &flips);
    assert_eq!(switches.len(), 8);
    let p = e.policy_mut::<Predictor>().unwrap();
    let s = p.learn_stats().unwrap();
    let w = p.model().weights;
    assert!(s.updates > 2000, "{s:?}");
    assert!(w[ann] > 0.5 && w[due] > 0.5, "announce weights {} {}", w[ann], w[due]);
    for i in 0..N_FEATURES {
        assert!((w[i] - m.weights[i]).abs() <= online.max_drift + 1e-12, "{} drifted", FEATURE_NAMES[i]);
    }
    assert!((p.model().bias - m.bias).abs() <= online.max_drift + 1e-12);
    assert!(s.max_drift > 0.0 && s.max_drift <= online.max_drift);
    // Installing a model resets the anchor: drift is measured from it.
    let mut p2 =
        Predictor::new(7, m.clone(), PredictorConfig::default()).unwrap().with_learning(learn).unwrap();
    p2.set_model(p.model().clone()).unwrap();
    assert_eq!(p2.learn_stats().unwrap().max_drift, 0.0);
}
