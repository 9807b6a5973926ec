//! The predictor end to end: model files, replays through the real engine, training, and (in
//! release, `--ignored`) the shipped model and issue 4's goals on the test trace.

#![cfg(not(loom))]

use harmonizer_core::clock::ManualClock;
use harmonizer_core::engine::{
    AlwaysStage, ArmingPolicy, Candidate, Engine, EngineConfig, NeverStage, StagePlan,
};
use harmonizer_core::predict::features::FEATURE_NAMES;
use harmonizer_core::predict::policy::{default_model, DEFAULT_MODEL_JSON};
use harmonizer_core::predict::{Model, ModelError, PhiRule, Predictor, PredictorConfig, Preset};
use harmonizer_sim::eval::{evaluate, same_model, train, tune_phi, Report, TrainSettings};
use harmonizer_sim::json::model_to_json;
use harmonizer_sim::replay::ReplayConfig;
use harmonizer_sim::scenario::{generate, ScenarioParams};

fn predictor(id: u64) -> Predictor {
    Predictor::with_default_model(id, PredictorConfig::preset(Preset::Aggressive)).unwrap()
}

#[test]
fn bad_model_files_are_rejected_and_the_previous_model_stays() {
    let mut p = predictor(1);
    let before = p.model().clone();
    let good = DEFAULT_MODEL_JSON;
    let last = format!("\"{}\"", FEATURE_NAMES[FEATURE_NAMES.len() - 1]);
    let bias = format!("\"bias\": {:?}", before.bias);
    assert!(good.contains(&bias), "the file writes the bias as {bias}");
    let cases: Vec<(String, &str)> = vec![
        (good.replace("\"version\": 1", "\"version\": 2"), "version"),
        (good.replace(&last, &format!("{last}, \"extra\"")), "feature_count"),
        (good.replace(&bias, "\"bias\": 1e999"), "not_finite"),
        (good.replacen("\"clip\": 4.0", "\"clip\": NaN", 1), "json"),
        (good.replacen("\"clip\": 4.0", "\"clip\": -1.0", 1), "non_positive"),
        (good[..good.len() / 2].to_string(), "json"),
        (String::from("[]"), "wrong_type"),
    ];
    for (text, what) in &cases {
        let err: ModelError = p.load_model_json(text).expect_err(what);
        assert_eq!(err.code(), *what, "{err}");
        let message = err.to_string();
        assert!(!message.is_empty() && !message.contains('\n'), "{what}: one line: {message}");
        assert_eq!(p.model(), &before, "{what}: the previous model stays");
    }
    // A wrong version says which, and which is supported.
    let e = Model::from_json(&cases[0].0).unwrap_err();
    assert_eq!(e.code(), "version");
    assert!(e.to_string().contains('2') && e.to_string().contains('1'), "{e}");
    // An infinite weight, given as a number too large for f64.
    let w0 = format!("\"weights\": [{:?}", before.weights[0]);
    assert!(good.contains(&w0), "the file writes the weights as {w0}");
    let inf = good.replace(&w0, "\"weights\": [-1e999");
    assert_eq!(Model::from_json(&inf).unwrap_err().code(), "not_finite");
    // An invalid model built in code is refused too.
    let mut nan = before.clone();
    nan.weights[3] = f64::NAN;
    assert!(p.set_model(nan).is_err());
    assert_eq!(p.model(), &before);
    // And a good one installs.
    let mut other = before.clone();
    other.bias += 1.0;
    p.load_model_json(&model_to_json(&other)).unwrap();
    assert_eq!(p.model(), &other);
}

/// The same through a running engine: the application reaches its predictor with
/// `Engine::policy_mut`, a bad file is refused, the engine goes on with the previous model.
#[test]
fn a_running_engine_keeps_its_model_when_a_bad_one_is_loaded() {
    let cfg = EngineConfig::new(1, 2, 1 << 16, 2048);
    let clock = ManualClock::at(1);
    let (mut e, _p) = Engine::with(cfg, Box::new(predictor(1)), Box::new(clock)).unwrap();
    let before = e.policy_mut::<Predictor>().unwrap().model().clone();
    let bad = DEFAULT_MODEL_JSON.replace("\"version\": 1", "\"version\": 7");
    let err = e.policy_mut::<Predictor>().unwrap().load_model_json(&bad).unwrap_err();
    assert_eq!(err.code(), "version");
    assert_eq!(e.policy_mut::<Predictor>().unwrap().model(), &before);
    assert!(e.policy_mut::<PhiRule>().is_none(), "a different policy type is not handed out");
    struct Nothing;
    impl harmonizer_core::engine::Handler for Nothing {
        fn event(&mut self, _: u32, _: &harmonizer_core::ring::Record<'_>) {}
        fn notice(&mut self, _: &harmonizer_core::engine::Notice<'_>) {}
    }
    e.poll(16, &mut Nothing);
}

#[test]
fn configurations_out_of_range_are_refused() {
    let ok = PredictorConfig::default();
    assert!(ok.validate().is_ok());
    let mut bad = Vec::new();
    for t in [0.0, 1.0, f64::NAN, -0.5] {
        bad.push(PredictorConfig { threshold: t, ..ok });
    }
    let mut c = ok;
    c.window.min = 10;
    c.window.max = 5;
    bad.push(c);
    let mut c = ok;
    c.adaptive.max_shift = f64::NAN;
    bad.push(c);
    let mut c = ok;
    c.adaptive.target_duty = Some(1.5);
    bad.push(c);
    let mut c = ok;
    c.hysteresis = -1.0;
    bad.push(c);
    for c in bad {
        let e = Predictor::with_default_model(1, c).err().expect("refused");
        assert!(!e.to_string().is_empty());
    }
    let s = TrainSettings { clip: f64::NAN, ..Default::default() };
    assert!(s.validate().is_err());
    let s = TrainSettings { fit_share: 1.0, ..Default::default() };
    assert!(s.validate().is_err());
}

/// Stream ids are arbitrary `u32`s: an armed candidate with id 100 is staged.
#[test]
fn stream_ids_beyond_sixteen_are_planned() {
    let mut p = predictor(1);
    let c = Candidate {
        stream: 100,
        index: 1,
        staged: false,
        announced: false,
        armed: true,
        previous: false,
        retained_bytes: 0,
        evicted: 0,
        window: 0,
    };
    let mut plan = StagePlan::default();
    p.plan(&[c], 100, 1_000, &mut plan);
    assert_eq!(plan.window_of(100), Some(100));
}

#[test]
fn the_shipped_model_matches_this_build() {
    let m = default_model();
    m.validate().unwrap();
    assert_eq!(m, Model::from_json(&model_to_json(&m)).unwrap(), "round trip");
    assert!(m.horizon_ns > 0);
    assert!(DEFAULT_MODEL_JSON.contains(FEATURE_NAMES[0]));
}

fn check_delivery(r: &Report) {
    assert_eq!(r.duplicates, 0, "{}: duplicates", r.name);
    assert_eq!(r.out_of_order, 0, "{}: out of order", r.name);
    assert_eq!(r.lost, 0, "{}: lost", r.name);
    assert_eq!(r.happened, r.switches, "{}: every ground-truth switch happened", r.name);
    assert_eq!(r.push_dropped, 0, "{}: the application never had to drop a record", r.name);
}

/// Every policy, on short generated traces through the real engine: exactly once, in order,
/// every switch made; the predictor is seamless more often than never-stage, at a lower duty
/// cycle than always-stage.
#[test]
fn every_policy_delivers_exactly_once_on_generated_traces() {
    let cfg = ReplayConfig { horizon_ns: default_model().horizon_ns, ..Default::default() };
    let (mut seamless_pred, mut seamless_never, mut switches) = (0, 0, 0);
    for seed in [11, 12] {
        let t = generate(&ScenarioParams::small(seed)).unwrap();
        let id = t.recipient_id;
        let pred = evaluate(&t, "predictor", predictor(id), &cfg).unwrap();
        let never = evaluate(&t, "never", NeverStage, &cfg).unwrap();
        let always = evaluate(&t, "always", AlwaysStage, &cfg).unwrap();
        let phi = evaluate(&t, "phi", PhiRule::new(5.0, 0.1), &cfg).unwrap();
        for r in [&pred, &never, &always, &phi] {
            check_delivery(r);
            assert_eq!(r.missing, 0, "{}: missing at the end", r.name);
        }
        assert_eq!(never.seamless, 0);
        assert_eq!(always.seamless, always.happened, "always-stage is seamless on every switch");
        assert!(pred.duty_cycle < always.duty_cycle, "{} vs {}", pred.duty_cycle, always.duty_cycle);
        seamless_pred += pred.seamless;
        seamless_never += never.seamless;
        switches += pred.switches;
    }
    assert!(switches >= 4, "the traces have switches: {switches}");
    assert!(seamless_pred > seamless_never, "{seamless_pred} vs {seamless_never}");
}

/// Issue 12, defect 5: a stalled active stream (silent while the others go on) is a feature,
/// `silence_s`, and the shipped model uses it. On traces whose only incidents are stalls, the
/// shipped model makes more stall switches seamless than the same model with that feature's
/// weight set to 0, and most of them; delivery stays exactly once either way. Measured: 35 of
/// 53 against 0 of 53 (incidents every 20 s, as in the world it was trained on; with one every
/// 8 s, 12 of 27 against 0).
#[test]
fn a_stalled_active_stream_is_evidence_of_a_switch() {
    use harmonizer_core::predict::features::N_GLOBAL;
    use harmonizer_sim::scenario::CauseMix;
    let silence = FEATURE_NAMES.iter().position(|n| *n == "silence_s").unwrap();
    assert!(silence < N_GLOBAL);
    let cfg = ReplayConfig { horizon_ns: default_model().horizon_ns, ..Default::default() };
    let mut blind = default_model();
    assert!(blind.weights[silence] > 0.0, "the shipped model weighs silence");
    blind.weights[silence] = 0.0;
    let (mut with, mut without, mut stalls) = (0, 0, 0);
    for seed in [31, 32, 33] {
        let p = ScenarioParams {
            mix: CauseMix { stall: 1.0, ..CauseMix::NONE },
            switchback_prob: 0.0,
            duration_ns: 600_000_000_000,
            incident_every_ns: 20_000_000_000,
            ..ScenarioParams::small(seed)
        };
        let t = generate(&p).unwrap();
        let id = t.recipient_id;
        let a = evaluate(&t, "predictor", predictor(id), &cfg).unwrap();
        let cfg_a = PredictorConfig::preset(Preset::Aggressive);
        let b = evaluate(&t, "blind", Predictor::new(id, blind.clone(), cfg_a).unwrap(), &cfg).unwrap();
        for r in [&a, &b] {
            check_delivery(r);
            assert_eq!(r.missing, 0, "{}: missing at the end", r.name);
        }
        stalls += a.switches;
        with += a.seamless;
        without += b.seamless;
    }
    assert!(stalls >= 6, "{stalls} stall switches");
    assert!(with > without, "seamless stall switches: {with} with silence_s, {without} without, of {stalls}");
    assert!(2 * with > stalls, "{with} of {stalls} stall switches seamless");
}

#[test]
fn training_on_a_short_trace_gives_a_valid_model() {
    let t = generate(&ScenarioParams::small(21)).unwrap();
    let trained = train(&t, &TrainSettings::default()).unwrap();
    trained.model.validate().unwrap();
    assert!(trained.positives > 0 && trained.fitted > trained.positives);
    assert_eq!(Model::from_json(&model_to_json(&trained.model)).unwrap(), trained.model);
}

/// The shipped model is what training produces (`harmonize trace` then `harmonize train`;
/// `harmonize/tests/cli_predictor.rs` checks the file path too): byte for byte on the platform
/// it was trained on, and within `same_model`'s tolerance where another maths library moves the
/// last bits. Slow in debug: run with `--release -- --ignored` (the check script does).
#[test]
#[ignore = "release only: replays the hour-long training trace"]
fn the_shipped_model_is_what_the_tool_trains() {
    let t = generate(&ScenarioParams::train()).unwrap();
    let s = TrainSettings { trained_on: String::from("ScenarioParams::train()"), ..Default::default() };
    let trained = train(&t, &s).unwrap();
    if model_to_json(&trained.model) != DEFAULT_MODEL_JSON {
        let shipped = Model::from_json(DEFAULT_MODEL_JSON).unwrap();
        same_model(&trained.model, &shipped).expect("retrain with the tool and commit the file");
        eprintln!("the trained model differs from the file in the last bits only (another libm?)");
    }
}

#[test]
fn same_model_tolerates_the_last_bits_only() {
    let m = default_model();
    assert_eq!(same_model(&m, &m), Ok(()));
    let mut near = m.clone();
    near.weights[3] *= 1.0 + 1e-12;
    near.mean[0] += 1e-13;
    assert_eq!(same_model(&near, &m), Ok(()));
    let mut far = m.clone();
    far.weights[3] *= 1.0 + 1e-6;
    let e = same_model(&far, &m).unwrap_err();
    assert!(e.starts_with("weights[3] (error_rate)"), "{e}");
    let mut other = m.clone();
    other.horizon_ns += 1;
    assert!(same_model(&other, &m).is_err());
}

/// Where the predictor stands on the held-out test trace, against the phi-style rule (its
/// thresholds tuned on the training trace, as the eval tool does). Issue 4 asks for at least 95%
/// of predictable switches seamless at a duty cycle of at most 20%, ahead of the phi rule on both:
/// measured, the aggressive preset makes 47 of 48 (97.9%) at 17.7%, and the balanced preset
/// beats the rule on seamless switches and duty at once (docs/predictor.md). This test holds
/// the goal, and pins what was measured so that a change that makes it worse fails.
#[test]
#[ignore = "release only: replays the training trace 25 times and the test trace three times"]
fn held_out_results_against_the_phi_rule() {
    let train_trace = generate(&ScenarioParams::train()).unwrap();
    let t = generate(&ScenarioParams::test()).unwrap();
    let cfg = ReplayConfig { horizon_ns: default_model().horizon_ns, ..Default::default() };
    let (phi_t, err_t) = tune_phi(&train_trace, &cfg, 0.2).unwrap();
    let pred = evaluate(&t, "predictor", predictor(t.recipient_id), &cfg).unwrap();
    let phi = evaluate(&t, "phi", PhiRule::new(phi_t, err_t), &cfg).unwrap();
    check_delivery(&pred);
    check_delivery(&phi);
    let (p, q) = (pred.seamless_rate_predictable(), phi.seamless_rate_predictable());
    assert!(p >= 0.95, "predictable seamless {p:.3}: the goal is 95%");
    assert!(p >= 47.0 / 48.0 - 1e-9, "predictable seamless {p:.3} (measured 47/48)");
    assert!(pred.duty_cycle <= 0.20, "duty {:.3}", pred.duty_cycle);
    let balanced =
        Predictor::with_default_model(t.recipient_id, PredictorConfig::preset(Preset::Balanced)).unwrap();
    let balanced = evaluate(&t, "balanced", balanced, &cfg).unwrap();
    check_delivery(&balanced);
    assert!(
        balanced.seamless_rate_predictable() > q && balanced.duty_cycle < phi.duty_cycle,
        "balanced {:.3} at duty {:.3} vs phi {q:.3} at {:.3}",
        balanced.seamless_rate_predictable(),
        balanced.duty_cycle,
        phi.duty_cycle
    );
    assert!(p > 2.0 * q, "predictor {p:.3} vs phi {q:.3}");
    assert!(pred.seamless > 2 * phi.seamless, "{} vs {}", pred.seamless, phi.seamless);
    assert!(pred.pr_auc > 2.0 * phi.pr_auc, "PR-AUC {:.3} vs {:.3}", pred.pr_auc, phi.pr_auc);
}
