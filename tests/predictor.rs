//! The predictor end to end: model files, replays through the real engine, training, and (in
//! release, `--ignored`) the shipped model and issue 4's goals on the test trace.

#![cfg(not(loom))]

use harmonizer::engine::{AlwaysStage, NeverStage};
use harmonizer::predict::features::FEATURE_NAMES;
use harmonizer::predict::policy::{default_model, DEFAULT_MODEL_JSON};
use harmonizer::predict::{Model, ModelError, PhiRule, Predictor, PredictorConfig, Preset};
use harmonizer::sim::eval::{evaluate, train, Report, TrainSettings};
use harmonizer::sim::replay::ReplayConfig;
use harmonizer::sim::scenario::{generate, ScenarioParams};

fn predictor(id: u64) -> Predictor {
    Predictor::with_default_model(id, PredictorConfig::preset(Preset::Aggressive))
}

#[test]
fn bad_model_files_are_rejected_and_the_previous_model_stays() {
    let mut p = predictor(1);
    let before = p.model().clone();
    let good = DEFAULT_MODEL_JSON;
    let cases: Vec<(String, &str)> = vec![
        (good.replace("\"version\": 1", "\"version\": 2"), "version"),
        (good.replace("\"cand_armed\"", "\"cand_armed\", \"extra\""), "feature_count"),
        (good.replacen("\"bias\": ", "\"bias\": 1e999, \"x\": ", 1), "not_finite"),
        (good.replacen("\"clip\": 4.0", "\"clip\": NaN", 1), "json"),
        (good.replacen("\"clip\": 4.0", "\"clip\": -1.0", 1), "non_positive"),
        (good[..good.len() / 2].to_string(), "json"),
        (String::from("[]"), "wrong_type"),
    ];
    for (text, what) in &cases {
        let err: ModelError = p.load_model_json(text).expect_err(what);
        let message = err.to_string();
        assert!(!message.is_empty() && !message.contains('\n'), "{what}: one line: {message}");
        assert_eq!(p.model(), &before, "{what}: the previous model stays");
    }
    // A wrong version says which, and which is supported.
    let e = Model::from_json(&cases[0].0).unwrap_err();
    assert_eq!(e.code(), "version");
    assert!(e.to_string().contains('2') && e.to_string().contains('1'), "{e}");
    // Infinite weights, given as a number too large for f64.
    let inf = good.replacen("\"weights\": [", "\"weights\": [1e999, ", 1).replacen(", 0.0]", "]", 0);
    assert!(Model::from_json(&inf).is_err());
    // And a good one installs.
    let mut other = before.clone();
    other.bias += 1.0;
    p.load_model_json(&other.to_json()).unwrap();
    assert_eq!(p.model(), &other);
}

#[test]
fn the_shipped_model_matches_this_build() {
    let m = default_model();
    m.validate().unwrap();
    assert_eq!(m, Model::from_json(&m.to_json()).unwrap(), "round trip");
    assert!(m.horizon_ns > 0);
    assert!(DEFAULT_MODEL_JSON.contains(FEATURE_NAMES[0]));
}

fn check_delivery(r: &Report) {
    assert_eq!(r.duplicates, 0, "{}: duplicates", r.name);
    assert_eq!(r.out_of_order, 0, "{}: out of order", r.name);
    assert_eq!(r.lost, 0, "{}: lost", r.name);
    assert_eq!(r.happened, r.switches, "{}: every ground-truth switch happened", r.name);
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
        let pred = evaluate(&t, "predictor", predictor(id), 0.2, &cfg);
        let never = evaluate(&t, "never", NeverStage, 0.5, &cfg);
        let always = evaluate(&t, "always", AlwaysStage, 0.5, &cfg);
        let phi = evaluate(&t, "phi", PhiRule::new(5.0, 0.1), 0.5, &cfg);
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

#[test]
fn training_on_a_short_trace_gives_a_valid_model() {
    let t = generate(&ScenarioParams::small(21)).unwrap();
    let trained = train(&t, &TrainSettings::default()).unwrap();
    trained.model.validate().unwrap();
    assert!(trained.positives > 0 && trained.fitted > trained.positives);
    assert_eq!(Model::from_json(&trained.model.to_json()).unwrap(), trained.model);
}

/// The shipped model is exactly what `cargo run --release --example predictor -- train`
/// produces. Slow in debug: run with `--release -- --ignored` (the check script does).
#[test]
#[ignore = "release only: replays the hour-long training trace"]
fn the_shipped_model_is_what_the_tool_trains() {
    let t = generate(&ScenarioParams::train()).unwrap();
    let s = TrainSettings { trained_on: String::from("ScenarioParams::train()"), ..Default::default() };
    let trained = train(&t, &s).unwrap();
    assert_eq!(trained.model.to_json(), DEFAULT_MODEL_JSON, "retrain with the example and commit the file");
}

/// Issue 4's goals on the held-out test trace: the aggressive preset makes at least 95% of the
/// predictable switches seamless at a duty cycle of at most 20%, and beats the phi-style rule's
/// seamless rate (phi thresholds as the eval tool tunes them on the training trace).
#[test]
#[ignore = "release only: replays the test trace once per policy"]
fn goals_on_the_test_trace() {
    let t = generate(&ScenarioParams::test()).unwrap();
    let cfg = ReplayConfig { horizon_ns: default_model().horizon_ns, ..Default::default() };
    let pred = evaluate(&t, "predictor", predictor(t.recipient_id), 0.2, &cfg);
    let phi = evaluate(&t, "phi", PhiRule::new(5.0, 0.1), 0.5, &cfg);
    check_delivery(&pred);
    check_delivery(&phi);
    assert!(pred.seamless_rate_predictable() >= 0.95, "{:.3}", pred.seamless_rate_predictable());
    assert!(pred.duty_cycle <= 0.20, "duty {:.3}", pred.duty_cycle);
    assert!(pred.seamless_rate_predictable() > phi.seamless_rate_predictable());
    assert!(pred.seamless_rate() > phi.seamless_rate());
    assert!(pred.pr_auc > phi.pr_auc && pred.brier < phi.brier);
}
