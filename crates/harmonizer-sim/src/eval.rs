//! Training the predictor from a trace, and evaluating arming policies side by side on one.
//!
//! # Training
//!
//! [`train`] replays the training trace with a predictor that never stages (so every switch is
//! cold and nothing about staging leaks into the features) and takes a snapshot of every
//! candidate's features each `snapshot_every_ns` (100 ms): the same feature code as online,
//! through the same engine hooks. A snapshot is labelled positive when the recipient switches
//! to that candidate within the horizon. The snapshots are split by time: those before
//! `fit_share` of the trace, less one horizon (so no fitted label looks past the split), are
//! fitted by Newton/IRLS with L2; those after the split are held out to report the fit.
//! [`train`] is these two steps, [`feature_snapshots`] then [`fit_snapshots`]; `harmonize
//! trace` writes the first's rows to a history file and `harmonize train` fits them with the
//! second.
//!
//! Training replays never stage, so every training switch is cold and its aftermath (a
//! fetch, a burst of catch-up deliveries) is what the post-switch features learn from; under a
//! staging policy most switches are seamless instead. The features that matter most before a
//! switch do not depend on this, but the post-switch ones (switchback) see a slightly
//! different world in evaluation than in training.
//!
//! # Evaluation
//!
//! [`evaluate`] replays a trace (the test trace: another seed) once per policy, in the same
//! run, and reports:
//! - seamless switches, overall and on the switches the trace marks predictable;
//! - duty cycle (share of time with a candidate staged), mean and peak staged bytes;
//! - on the 100 ms snapshots, per candidate: precision and recall of what the policy actually
//!   staged (its plan at that moment, every adaptive shift, hold and hysteresis included)
//!   against "a switch to it follows within the horizon", PR-AUC (average precision) of its
//!   score and the Brier score of its probability (meaningful only for a calibrated one);
//! - the engine's delivery check: duplicates, out-of-order, missing (all must be 0).

use super::metrics::{brier, pr_auc, reliability, Confusion, ReliabilityBin};
use super::replay::{replay, Outcome, ReplayConfig, Scored, Snapshot};
use super::scenario::{Cause, Trace};
use crate::train::{column_stats, fit_logistic, Samples, TrainConfig, TrainError};
use harmonizer_core::engine::EngineError;
use harmonizer_core::predict::features::{FEATURE_NAMES, N_FEATURES};
use harmonizer_core::predict::model::{Model, ModelMeta};
use harmonizer_core::predict::phi::PhiRule;
use harmonizer_core::predict::policy::{Predictor, PredictorConfig};

/// One policy's results on a trace.
#[derive(Clone, Debug)]
pub struct Report {
    /// Policy name (with its preset, for the predictor).
    pub name: String,
    /// Ground-truth switches in the trace.
    pub switches: usize,
    /// Switches the engine made.
    pub happened: usize,
    /// Seamless among them.
    pub seamless: usize,
    /// Predictable switches in the trace.
    pub predictable: usize,
    /// Seamless among the predictable ones.
    pub seamless_predictable: usize,
    /// Share of time with at least one candidate staged.
    pub duty_cycle: f64,
    /// Mean staged bytes (window × maximal frame) over time.
    pub mean_staged_bytes: f64,
    /// Peak staged bytes.
    pub peak_staged_bytes: u64,
    /// Stall percentiles over the switches made, ns.
    pub stall_p50_ns: u64,
    /// 99th percentile stall, ns.
    pub stall_p99_ns: u64,
    /// Precision of "staged" against "a switch to it follows within the horizon".
    pub precision: f64,
    /// Recall of the same.
    pub recall: f64,
    /// Average precision of the policy's score.
    pub pr_auc: f64,
    /// Brier score of the policy's probability.
    pub brier: f64,
    /// Reliability curve of the policy's probability on the snapshots (ten bins).
    pub reliability: Vec<ReliabilityBin>,
    /// Expected calibration error of the same.
    pub ece: f64,
    /// Delivered data events.
    pub delivered: u64,
    /// Duplicates the application saw (must be 0).
    pub duplicates: u64,
    /// Out-of-order deliveries (must be 0).
    pub out_of_order: u64,
    /// Logical events not delivered by the end.
    pub missing: u64,
    /// Events given up for lost by the engine.
    pub lost: u64,
    /// Records the simulated application had to drop (must be 0).
    pub push_dropped: u64,
    /// Per cause present in the trace (in [`Cause::ALL`] order, unlabelled last): switches,
    /// seamless, predictable, seamless among the predictable.
    pub per_cause: Vec<CauseCount>,
}

/// One cause's switches in a [`Report`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CauseCount {
    /// The cause.
    pub cause: Cause,
    /// Its switches in the trace.
    pub switches: usize,
    /// Seamless among those the engine made.
    pub seamless: usize,
    /// Predictable among them.
    pub predictable: usize,
    /// Seamless among the predictable.
    pub seamless_predictable: usize,
}

impl Report {
    /// Seamless share of the switches made.
    pub fn seamless_rate(&self) -> f64 {
        ratio(self.seamless, self.happened)
    }
    /// Seamless share of the predictable switches.
    pub fn seamless_rate_predictable(&self) -> f64 {
        ratio(self.seamless_predictable, self.predictable)
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Summarises one replay.
pub fn report(trace: &Trace, name: String, o: &Outcome) -> Report {
    let predictable = trace.switches.iter().filter(|w| w.predictable).count();
    let seamless_predictable =
        o.switches.iter().filter(|s| s.seamless && trace.switches[s.truth].predictable).count();
    let mut stalls = o.stalls_ns.clone();
    stalls.sort_unstable();
    let pct = |q: f64| stalls.get(((stalls.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0);
    let probs: Vec<f64> = o.snapshots.iter().map(|s| s.prob).collect();
    let labels: Vec<bool> = o.snapshots.iter().map(|s| s.label).collect();
    let (reliability, ece) = reliability(&probs, &labels);
    let mut per_cause: Vec<CauseCount> = Cause::ALL
        .into_iter()
        .chain([Cause::Unlabelled])
        .map(|cause| CauseCount { cause, switches: 0, seamless: 0, predictable: 0, seamless_predictable: 0 })
        .collect();
    for w in &trace.switches {
        if let Some(c) = per_cause.iter_mut().find(|c| c.cause == w.cause) {
            c.switches += 1;
            c.predictable += usize::from(w.predictable);
        }
    }
    for sw in o.switches.iter().filter(|s| s.seamless) {
        let w = &trace.switches[sw.truth];
        if let Some(c) = per_cause.iter_mut().find(|c| c.cause == w.cause) {
            c.seamless += 1;
            c.seamless_predictable += usize::from(w.predictable);
        }
    }
    per_cause.retain(|c| c.switches > 0);
    let mut c = Confusion { tp: 0, fp: 0, tn: 0, fn_: 0 };
    for row in &o.snapshots {
        match (row.staged, row.label) {
            (true, true) => c.tp += 1,
            (true, false) => c.fp += 1,
            (false, false) => c.tn += 1,
            (false, true) => c.fn_ += 1,
        }
    }
    Report {
        name,
        switches: trace.switches.len(),
        happened: o.happened(),
        seamless: o.seamless(),
        predictable,
        seamless_predictable,
        duty_cycle: o.stats.duty_cycle(),
        mean_staged_bytes: o.mean_staged_bytes,
        peak_staged_bytes: o.stats.peak_staged_bytes,
        stall_p50_ns: pct(0.5),
        stall_p99_ns: pct(0.99),
        precision: c.precision(),
        recall: c.recall(),
        pr_auc: pr_auc(&probs, &labels),
        brier: brier(&probs, &labels),
        reliability,
        ece,
        delivered: o.delivered,
        duplicates: o.duplicates,
        out_of_order: o.out_of_order,
        missing: o.missing,
        lost: o.stats.lost,
        push_dropped: o.push_dropped,
        per_cause,
    }
}

/// Replays `trace` with `policy` and summarises.
pub fn evaluate<P: Scored + 'static>(
    trace: &Trace,
    name: impl Into<String>,
    policy: P,
    cfg: &ReplayConfig,
) -> Result<Report, EngineError> {
    let o = replay(trace, policy, cfg)?;
    Ok(report(trace, name.into(), &o))
}

/// `cfg` for replaying a trace file: its archive, and with a `stream` archive, 30 s of idle
/// polls after the last record (a hole no fetch can fill is held until the recovery gives up,
/// and the simulated application then gives it up: reported lost).
pub fn trace_file_config(tf: &crate::tracefile::TraceFile, cfg: &ReplayConfig) -> ReplayConfig {
    ReplayConfig {
        archive_complete: tf.archive_complete,
        tail_ns: if tf.archive_complete { 0 } else { 30_000_000_000 },
        ..cfg.clone()
    }
}

/// Reads the switches the engine makes on a trace file's records (a replay that never
/// stages: the flips decide which switches happen, not the staging) into its ground truth.
pub fn resolve_trace_file(
    tf: &mut crate::tracefile::TraceFile,
    cfg: &ReplayConfig,
) -> Result<(), EngineError> {
    let cfg = ReplayConfig { snapshot_every_ns: 0, ..trace_file_config(tf, cfg) };
    let o = replay(&tf.trace, harmonizer_core::engine::NeverStage, &cfg)?;
    tf.resolve(&o.made);
    Ok(())
}

/// The phi rule's thresholds that make the most predictable switches seamless on `trace` at a
/// duty cycle of at most `max_duty` (ties to lower duty); if none stays under, the lowest
/// duty. Run it on the training trace, as the predictor's own choices were made there.
pub fn tune_phi(trace: &Trace, cfg: &ReplayConfig, max_duty: f64) -> Result<(f64, f64), EngineError> {
    let cfg = ReplayConfig { snapshot_every_ns: 0, ..cfg.clone() };
    let mut best = (f64::NEG_INFINITY, f64::INFINITY, (8.0, 0.1));
    for phi in [2.0, 3.0, 5.0, 8.0, 12.0] {
        for err in [0.02, 0.05, 0.1, 0.2, 0.4] {
            let r = evaluate(trace, "phi", PhiRule::new(phi, err), &cfg)?;
            let score = if r.duty_cycle <= max_duty { r.seamless_rate_predictable() } else { -r.duty_cycle };
            if score > best.0 || (score == best.0 && r.duty_cycle < best.1) {
                best = (score, r.duty_cycle, (phi, err));
            }
        }
    }
    Ok(best.2)
}

/// Training settings.
#[derive(Clone, Debug)]
pub struct TrainSettings {
    /// Label horizon, ns.
    pub horizon_ns: u64,
    /// Snapshot cadence, ns.
    pub snapshot_every_ns: u64,
    /// Share of the trace's time used for fitting; the rest is held out.
    pub fit_share: f64,
    /// Clip for standardised features.
    pub clip: f64,
    /// IRLS settings.
    pub irls: TrainConfig,
    /// Description stored in the model's `meta.trained_on`.
    pub trained_on: String,
}

impl Default for TrainSettings {
    fn default() -> Self {
        TrainSettings {
            horizon_ns: 5_000_000_000,
            snapshot_every_ns: 100_000_000,
            fit_share: 0.8,
            clip: 4.0,
            irls: TrainConfig::default(),
            trained_on: String::from("generated trace"),
        }
    }
}

/// A trained model and how it did on the held-out part of the training trace.
#[derive(Clone, Debug)]
pub struct Trained {
    /// The model.
    pub model: Model,
    /// Snapshot rows fitted.
    pub fitted: usize,
    /// Positive rows among them.
    pub positives: usize,
    /// Held-out rows.
    pub held_out: usize,
    /// Average precision on the held-out rows.
    pub held_out_pr_auc: f64,
    /// Brier score on the held-out rows.
    pub held_out_brier: f64,
    /// IRLS iterations.
    pub iterations: usize,
}

/// Why training failed.
#[derive(Clone, Debug, PartialEq)]
pub enum EvalError {
    /// A [`TrainSettings`] value is out of range (named).
    Settings(&'static str),
    /// The trace cannot make an engine.
    Engine(EngineError),
    /// The fit failed.
    Train(TrainError),
}

impl core::fmt::Display for EvalError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EvalError::Settings(what) => write!(f, "training settings: {what}"),
            EvalError::Engine(e) => write!(f, "replay engine: {e}"),
            EvalError::Train(e) => write!(f, "fit: {e}"),
        }
    }
}

impl std::error::Error for EvalError {}

impl TrainSettings {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), EvalError> {
        if self.horizon_ns == 0 {
            return Err(EvalError::Settings("horizon_ns must be > 0"));
        }
        if self.snapshot_every_ns == 0 {
            return Err(EvalError::Settings("snapshot_every_ns must be > 0"));
        }
        if !(self.fit_share > 0.0 && self.fit_share < 1.0) {
            return Err(EvalError::Settings("fit_share must be in (0, 1)"));
        }
        if !(self.clip.is_finite() && self.clip > 0.0) {
            return Err(EvalError::Settings("clip must be finite and > 0"));
        }
        Ok(())
    }
}

/// Relative tolerance of [`same_model`]: far below anything that changes a decision (weights
/// are printed with 17 significant digits), far above the last-bit differences of another
/// platform's `ln`/`exp` accumulated over one fit.
pub const MODEL_TOLERANCE: f64 = 1e-9;

/// Whether `got` is the model `want` describes: the same horizon, clip and provenance, and every
/// mean, scale, weight and bias equal within [`MODEL_TOLERANCE`] (relative, or absolute below
/// 1). Training is bit-identical on one platform; `ln`, `ln_1p` and `exp` come from the
/// platform's maths library, so another one may move the last bits, and a byte-for-byte check
/// would fail there for no reason. `Err` names the first field that differs.
pub fn same_model(got: &Model, want: &Model) -> Result<(), String> {
    if got.horizon_ns != want.horizon_ns {
        return Err(format!("horizon_ns {} vs {}", got.horizon_ns, want.horizon_ns));
    }
    if got.meta != want.meta {
        return Err(format!("provenance {:?} vs {:?}", got.meta, want.meta));
    }
    let close = |a: f64, b: f64| (a - b).abs() <= MODEL_TOLERANCE * a.abs().max(b.abs()).max(1.0);
    let mut pairs = vec![("clip", 0, got.clip, want.clip), ("bias", 0, got.bias, want.bias)];
    for i in 0..N_FEATURES {
        pairs.push(("mean", i, got.mean[i], want.mean[i]));
        pairs.push(("scale", i, got.scale[i], want.scale[i]));
        pairs.push(("weights", i, got.weights[i], want.weights[i]));
    }
    match pairs.into_iter().find(|&(_, _, a, b)| !close(a, b)) {
        None => Ok(()),
        Some((field, i, a, b)) => Err(format!("{field}[{i}] ({}): {a} vs {b}", FEATURE_NAMES[i])),
    }
}

/// A model that never stages (bias −30, no weights): used to record features for training.
pub fn silent_model(horizon_ns: u64) -> Model {
    Model {
        horizon_ns,
        mean: [0.0; N_FEATURES],
        scale: [1.0; N_FEATURES],
        clip: 4.0,
        weights: [0.0; N_FEATURES],
        bias: -30.0,
        meta: ModelMeta { trained_on: String::from("none: records features only"), snapshots: 0, l2: 0.0 },
    }
}

/// Snapshots of the features on `trace`, labelled, recorded with a predictor that never stages.
pub fn feature_snapshots(trace: &Trace, s: &TrainSettings) -> Result<Vec<Snapshot>, EvalError> {
    s.validate()?;
    let cfg = ReplayConfig {
        snapshot_every_ns: s.snapshot_every_ns,
        horizon_ns: s.horizon_ns,
        ..Default::default()
    };
    let p = Predictor::new(trace.recipient_id, silent_model(s.horizon_ns), PredictorConfig::default())
        .map_err(|_| EvalError::Settings("horizon_ns makes an invalid model"))?;
    Ok(replay(trace, p, &cfg).map_err(EvalError::Engine)?.snapshots)
}

/// Trains a model on `trace`: [`feature_snapshots`], then [`fit_snapshots`] on them.
pub fn train(trace: &Trace, s: &TrainSettings) -> Result<Trained, EvalError> {
    let rows = feature_snapshots(trace, s)?;
    fit_snapshots(&rows, trace.duration_ns, s)
}

/// Fits a model to labelled snapshots of a trace `duration_ns` long, as [`train`] does with
/// the ones [`feature_snapshots`] records: the second half of training, for snapshots read back
/// from a file (`harmonize train`). Only `t_ns`, `label` and `features` are read. The rows are
/// split by time (see the module docs) and fitted in the order given: the same rows in the same
/// order give a bit-identical model.
pub fn fit_snapshots(rows: &[Snapshot], duration_ns: u64, s: &TrainSettings) -> Result<Trained, EvalError> {
    s.validate()?;
    let split_t = (duration_ns as f64 * s.fit_share) as u64;
    // Fitted rows end one horizon before the split: their labels look no further than it.
    let fit_end = split_t.saturating_sub(s.horizon_ns);
    let fit: Vec<&Snapshot> = rows.iter().filter(|r| r.t_ns < fit_end).collect();
    let held: Vec<&Snapshot> = rows.iter().filter(|r| r.t_ns >= split_t).collect();
    let x: Vec<f64> = fit.iter().flat_map(|r| r.features).collect();
    let y: Vec<bool> = fit.iter().map(|r| r.label).collect();
    let (mean, scale) = column_stats(N_FEATURES, &x);
    let standardised = |f: &[f64; N_FEATURES]| -> [f64; N_FEATURES] {
        let mut z = [0.0; N_FEATURES];
        for i in 0..N_FEATURES {
            z[i] = ((f[i] - mean[i]) / scale[i]).clamp(-s.clip, s.clip);
        }
        z
    };
    let z: Vec<f64> = fit.iter().flat_map(|r| standardised(&r.features)).collect();
    let f = fit_logistic(&Samples { dim: N_FEATURES, x: &z, y: &y, w: None }, &s.irls)
        .map_err(EvalError::Train)?;
    let mut model = Model {
        horizon_ns: s.horizon_ns,
        mean: [0.0; N_FEATURES],
        scale: [1.0; N_FEATURES],
        clip: s.clip,
        weights: [0.0; N_FEATURES],
        bias: f.bias,
        meta: ModelMeta { trained_on: s.trained_on.clone(), snapshots: fit.len() as u64, l2: s.irls.l2 },
    };
    model.mean.copy_from_slice(&mean);
    model.scale.copy_from_slice(&scale);
    model.weights.copy_from_slice(&f.weights);
    let probs: Vec<f64> =
        held.iter().map(|r| harmonizer_core::predict::policy::sigmoid(model.logit(&r.features))).collect();
    let labels: Vec<bool> = held.iter().map(|r| r.label).collect();
    debug_assert_eq!(FEATURE_NAMES.len(), model.weights.len());
    Ok(Trained {
        fitted: fit.len(),
        positives: y.iter().filter(|&&l| l).count(),
        held_out: held.len(),
        held_out_pr_auc: pr_auc(&probs, &labels),
        held_out_brier: brier(&probs, &labels),
        iterations: f.iterations,
        model,
    })
}
