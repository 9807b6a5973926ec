//! The predictor as an arming policy: per-candidate switch probabilities against an adaptive
//! threshold, with hysteresis, a minimum hold and windows sized from the measured lead.
//!
//! # Deciding
//!
//! Once per poll, for each candidate `c`, the model gives a logit `z_c` for "this recipient
//! switches to `c` within the model's horizon". `c` is staged when `z_c` exceeds the threshold's
//! logit `θ`; a staged candidate stays while `z_c > θ − hysteresis` or for the first
//! `min_hold_ns` after it was staged. Comparing logits, not probabilities, keeps `exp` out of the
//! decision. Candidates are planned in decreasing `z`, so under the engine's staging budget the
//! most likely ones win. A candidate the application armed (`Engine::arm`) is always staged.
//!
//! **Cover.** Some warnings say a switch is coming but not where: a load surge ends in a switch
//! to any live stream. Each candidate then holds only part of the probability, and each may stay
//! under `θ` while their sum `P = Σ p_c` (the probability of some switch) is well over it. So
//! when `logit(P)` clears the same bar, every candidate holding at least `cover` of `P` is staged
//! as well. Staging two candidates at once costs bytes but no extra duty cycle (the share of
//! time with *any* candidate staged). `P` needs `σ(z_c)` per candidate, so it is computed only
//! when it can clear the bar (see the bound in `plan`). On the training trace the rule took the
//! aggressive preset from 77 to 87 of 87 predictable switches seamless (docs/predictor.md).
//!
//! # The threshold
//!
//! `θ = logit(p*) + shift`, with `p*` from a preset or a cost ratio (`p* = 1 / (1 + r)`, where
//! `r` is what a cold switch costs relative to staging one candidate for one horizon: stage
//! when `p · r > 1 − p`). The adaptive `shift` moves with the stream:
//! - error rate: `−error_gain · min(error_rate / 5%, 2)`: a failing stream lowers the bar;
//! - load: `+load_gain · max(load_burst, 0)`: staging during a surge costs more bandwidth;
//! - duty target (optional): an integral controller on the measured duty cycle (decayed over
//!   `duty_tau_ns`) raises `θ` while duty runs above the target and lowers it while below.
//!
//! The sum is clamped to `±max_shift`.
//!
//! # Windows (docs/design.md §5)
//!
//! What a staged window must hold is the candidate's events beyond the delivery frontier: its
//! lead. Once staged, the lead is measured every poll (`Candidate::retained_bytes` over the
//! mean frame size) with its mean and deviation. The window is
//! `lead + k·deviation + rate · min(t̂, horizon) · drift`, where `t̂` is the expected time to the
//! switch from a constant per-step hazard matching `p` over the horizon: a switch predicted
//! sooner leaves less time for the lead to drift, so the window tightens. A window that shed
//! records (the ring's eviction count rose) doubles the lead estimate. Before any measurement
//! the engine's default window (100) is used.

use super::features::{exp_neg, FeatureState, ERROR_RATE, LOAD_BURST, N_FEATURES};
use super::learn::{LabelledRow, LearnConfig, LearnConfigError, LearnStats, Learner};
use super::model::{Model, ModelError};
use crate::engine::{ArmingPolicy, Candidate, StagePlan, StageScore, MAX_STREAMS};
use crate::flip::Flip;
use crate::ring::Record;

/// The default model, trained by `harmonize trace` then `harmonize train` on the
/// generator's training trace (`ScenarioParams::train()`, see `docs/predictor.md`); a test
/// retrains it and checks the file is what the tool produces.
pub const DEFAULT_MODEL_JSON: &str = include_str!("../../models/default.json");

/// Named aggressiveness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// Stages only when a switch is likely: threshold 0.75, docs/design.md's default (cost ratio
    /// 1/3). The lowest duty cycle; misses the slower warnings.
    Conservative,
    /// Threshold 0.5: a cold switch costs as much as staging one candidate for one horizon.
    Balanced,
    /// Threshold 0.22: a cold switch costs about 3.5× that. Chosen on the training trace: every
    /// threshold from 0.18 to 0.26 made all 87 predictable switches seamless at a duty cycle of
    /// at most 18.5% (a margin under issue 4's 20%), and 0.22 is the middle of that range
    /// (docs/predictor.md).
    Aggressive,
}

impl Preset {
    /// The threshold probability.
    pub fn threshold(self) -> f64 {
        match self {
            Preset::Conservative => 0.75,
            Preset::Balanced => 0.5,
            Preset::Aggressive => 0.22,
        }
    }
    /// Parses `conservative`, `balanced` or `aggressive`.
    pub fn from_name(name: &str) -> Option<Preset> {
        match name {
            "conservative" => Some(Preset::Conservative),
            "balanced" => Some(Preset::Balanced),
            "aggressive" => Some(Preset::Aggressive),
            _ => None,
        }
    }
}

/// The adaptive part of the threshold (logit units).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adaptive {
    /// Lowers θ by this much at 5% upstream errors (twice at 10% and more).
    pub error_gain: f64,
    /// Raises θ by this much per unit of `load_burst`.
    pub load_gain: f64,
    /// Duty cycle to hold, if any.
    pub target_duty: Option<f64>,
    /// Integral gain: θ moves by this much per second per unit of duty error.
    pub duty_gain: f64,
    /// Time constant of the measured duty cycle.
    pub duty_tau_ns: u64,
    /// Bound on the total shift, either way.
    pub max_shift: f64,
}

impl Default for Adaptive {
    fn default() -> Self {
        Adaptive {
            error_gain: 0.5,
            load_gain: 0.5,
            target_duty: None,
            duty_gain: 0.05,
            duty_tau_ns: 300_000_000_000,
            max_shift: 3.0,
        }
    }
}

/// Window sizing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowConfig {
    /// Smallest window, records.
    pub min: usize,
    /// Largest window, records (the engine also caps it to the ring).
    pub max: usize,
    /// Deviations of lead to add.
    pub jitter_k: f64,
    /// Share of the events until the predicted switch allowed for drift of the lead.
    pub drift: f64,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig { min: 16, max: 1 << 16, jitter_k: 4.0, drift: 0.02 }
    }
}

/// How the predictor decides.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PredictorConfig {
    /// Stage when the probability of a switch to the candidate within the horizon exceeds
    /// this (before the adaptive shift). In (0, 1).
    pub threshold: f64,
    /// Logit units below θ before a staged candidate is released.
    pub hysteresis: f64,
    /// A staged candidate stays at least this long.
    pub min_hold_ns: u64,
    /// Target cover: when the probability of *some* switch, `Σ p_c`, exceeds the threshold,
    /// also stage every candidate holding at least this share of it. 0 turns it off; in [0, 1].
    pub cover: f64,
    /// The adaptive threshold.
    pub adaptive: Adaptive,
    /// Window sizing.
    pub window: WindowConfig,
}

impl PredictorConfig {
    /// A preset.
    pub fn preset(p: Preset) -> Self {
        PredictorConfig {
            threshold: p.threshold(),
            // Chosen on the training trace: the smallest hold and hysteresis that lost no
            // predictable switch there (docs/predictor.md).
            hysteresis: 0.5,
            min_hold_ns: 1_000_000_000,
            cover: 0.25,
            adaptive: Adaptive::default(),
            window: WindowConfig::default(),
        }
    }
    /// From a cost ratio `r` (a cold switch costs `r` times staging a candidate for one
    /// horizon): threshold `1 / (1 + r)`. `r` must be positive and finite.
    pub fn from_cost_ratio(r: f64) -> Option<Self> {
        (r.is_finite() && r > 0.0).then(|| PredictorConfig { threshold: 1.0 / (1.0 + r), ..Self::default() })
    }
}

/// A [`PredictorConfig`] value out of range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ConfigError {
    /// `threshold` must be in (0, 1).
    Threshold(f64),
    /// `hysteresis` must be finite and ≥ 0.
    Hysteresis(f64),
    /// `cover` must be in [0, 1].
    Cover(f64),
    /// An adaptive gain or the shift bound is negative or not finite (`max_shift`, gains).
    Adaptive(&'static str, f64),
    /// `target_duty` must be in [0, 1].
    TargetDuty(f64),
    /// `duty_tau_ns` must be > 0.
    DutyTau,
    /// `window.min` must be ≥ 1 and ≤ `window.max`.
    Window {
        /// Smallest window.
        min: usize,
        /// Largest window.
        max: usize,
    },
    /// `window.jitter_k` or `window.drift` is negative or not finite.
    WindowFactor(&'static str, f64),
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ConfigError::Threshold(v) => write!(f, "predictor threshold {v} is not in (0, 1)"),
            ConfigError::Hysteresis(v) => write!(f, "predictor hysteresis {v} is not a finite value >= 0"),
            ConfigError::Cover(v) => write!(f, "predictor cover share {v} is not in [0, 1]"),
            ConfigError::Adaptive(what, v) => {
                write!(f, "predictor adaptive {what} {v} is not a finite value >= 0")
            }
            ConfigError::TargetDuty(v) => write!(f, "predictor target duty {v} is not in [0, 1]"),
            ConfigError::DutyTau => f.write_str("predictor duty time constant is 0"),
            ConfigError::Window { min, max } => {
                write!(f, "predictor window bounds {min}..={max} are empty or start at 0")
            }
            ConfigError::WindowFactor(what, v) => {
                write!(f, "predictor window {what} {v} is not a finite value >= 0")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

impl PredictorConfig {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let nonneg = |v: f64| v.is_finite() && v >= 0.0;
        if !(self.threshold > 0.0 && self.threshold < 1.0) {
            return Err(ConfigError::Threshold(self.threshold));
        }
        if !nonneg(self.hysteresis) {
            return Err(ConfigError::Hysteresis(self.hysteresis));
        }
        if !(0.0..=1.0).contains(&self.cover) {
            return Err(ConfigError::Cover(self.cover));
        }
        let a = &self.adaptive;
        for (what, v) in [
            ("error_gain", a.error_gain),
            ("load_gain", a.load_gain),
            ("duty_gain", a.duty_gain),
            ("max_shift", a.max_shift),
        ] {
            if !nonneg(v) {
                return Err(ConfigError::Adaptive(what, v));
            }
        }
        if let Some(t) = a.target_duty {
            if !(0.0..=1.0).contains(&t) {
                return Err(ConfigError::TargetDuty(t));
            }
        }
        if a.duty_tau_ns == 0 {
            return Err(ConfigError::DutyTau);
        }
        let w = &self.window;
        if w.min == 0 || w.min > w.max {
            return Err(ConfigError::Window { min: w.min, max: w.max });
        }
        for (what, v) in [("jitter_k", w.jitter_k), ("drift", w.drift)] {
            if !nonneg(v) {
                return Err(ConfigError::WindowFactor(what, v));
            }
        }
        Ok(())
    }
}

impl Default for PredictorConfig {
    /// [`Preset::Conservative`]: docs/design.md §5's default threshold, 0.75.
    fn default() -> Self {
        Self::preset(Preset::Conservative)
    }
}

/// Why a predictor could not be built.
#[derive(Clone, Debug, PartialEq)]
pub enum PredictorError {
    /// The configuration is out of range.
    Config(ConfigError),
    /// The model is invalid.
    Model(ModelError),
}

impl core::fmt::Display for PredictorError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PredictorError::Config(e) => e.fmt(f),
            PredictorError::Model(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for PredictorError {}

/// Per-candidate decision state.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    staged_since_ns: Option<u64>,
    /// Measured lead, records: mean and mean absolute deviation (decayed).
    lead: f64,
    lead_dev: f64,
    measured: bool,
    last_evicted: u64,
}

/// The predictive arming policy. Allocation-free after construction.
pub struct Predictor {
    model: Model,
    cfg: PredictorConfig,
    features: FeatureState,
    slots: [Slot; MAX_STREAMS],
    /// Shift from the duty controller (logit units).
    duty_shift: f64,
    /// Measured duty cycle, decayed.
    duty: f64,
    last_plan_ns: Option<u64>,
    /// Threshold logit of the last plan.
    theta: f64,
    /// The last plan's feature vectors and logits, per candidate (for probes and reports).
    last: [(u32, f64, [f64; N_FEATURES]); MAX_STREAMS],
    last_len: usize,
    /// Recording labelled snapshots and the online mode, when enabled (`learn.rs`).
    learner: Option<Learner>,
}

impl Predictor {
    /// A predictor for the engine of `recipient_id`; checks the configuration and the model.
    pub fn new(recipient_id: u64, model: Model, cfg: PredictorConfig) -> Result<Self, PredictorError> {
        cfg.validate().map_err(PredictorError::Config)?;
        model.validate().map_err(PredictorError::Model)?;
        Ok(Predictor {
            model,
            cfg,
            features: FeatureState::new(recipient_id),
            slots: [Slot::default(); MAX_STREAMS],
            duty_shift: 0.0,
            duty: 0.0,
            last_plan_ns: None,
            theta: 0.0,
            last: [(0, 0.0, [0.0; N_FEATURES]); MAX_STREAMS],
            last_len: 0,
            learner: None,
        })
    }

    /// A predictor with the shipped default model; checks the configuration.
    pub fn with_default_model(recipient_id: u64, cfg: PredictorConfig) -> Result<Self, PredictorError> {
        Self::new(recipient_id, default_model(), cfg)
    }

    /// Replaces the model if it is valid; on error the current model stays. With learning on,
    /// the ring of snapshots awaiting labels grows to the model's horizon if it must (the one
    /// allocation here, fallible: [`ModelError::Learning`] when it cannot, or when the cadence
    /// is too fine for the horizon); with the online mode on, later steps start from (and are
    /// bounded around) this model.
    pub fn set_model(&mut self, model: Model) -> Result<(), ModelError> {
        model.validate()?;
        if let Some(l) = &mut self.learner {
            l.fit_horizon(&model).map_err(|e| ModelError::Learning(e.0))?;
        }
        self.model = model;
        if let Some(l) = &mut self.learner {
            l.reanchor(&self.model);
        }
        Ok(())
    }

    /// Parses, validates and installs a JSON model; on error the current model stays.
    pub fn load_model_json(&mut self, text: &str) -> Result<(), ModelError> {
        self.set_model(Model::from_json(text)?)
    }

    /// Starts recording labelled snapshots and/or the online mode (`learn.rs`). Allocates the
    /// learner's two fixed rings here, once, fallibly; nothing after. Replaces an earlier
    /// learner (its undrained rows are lost). Setup, not the poll path.
    pub fn enable_learning(&mut self, cfg: LearnConfig) -> Result<(), LearnConfigError> {
        self.learner = Some(Learner::new(cfg, &self.model)?);
        Ok(())
    }

    /// Builder form of [`enable_learning`](Self::enable_learning).
    pub fn with_learning(mut self, cfg: LearnConfig) -> Result<Self, LearnConfigError> {
        self.enable_learning(cfg)?;
        Ok(self)
    }

    /// The learning configuration, if learning is on.
    pub fn learn_config(&self) -> Option<&LearnConfig> {
        self.learner.as_ref().map(Learner::config)
    }

    /// The learner's counters, if learning is on.
    pub fn learn_stats(&self) -> Option<LearnStats> {
        self.learner.as_ref().map(Learner::stats)
    }

    /// Moves up to `out.len()` recorded rows, oldest first, into `out`; returns how many (0
    /// when recording is off). Allocation-free.
    pub fn drain_history(&mut self, out: &mut [LabelledRow]) -> usize {
        self.learner.as_mut().map_or(0, |l| l.drain(out))
    }

    /// Recorded rows waiting to be drained.
    pub fn history_len(&self) -> usize {
        self.learner.as_ref().map_or(0, Learner::recorded_len)
    }

    /// The model in use.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The configuration.
    pub fn config(&self) -> &PredictorConfig {
        &self.cfg
    }

    /// The threshold logit θ of the last plan (after the adaptive shift).
    pub fn threshold_logit(&self) -> f64 {
        self.theta
    }

    /// Per candidate at the last plan: stream, logit, feature vector.
    pub fn last_scores(&self) -> &[(u32, f64, [f64; N_FEATURES])] {
        &self.last[..self.last_len]
    }

    fn shift(&mut self, now_ns: u64, global: &[f64; N_FEATURES], staged_any: bool) -> f64 {
        let a = &self.cfg.adaptive;
        if let Some(last) = self.last_plan_ns {
            let dt = now_ns.saturating_sub(last);
            if dt > 0 {
                let d = exp_neg(dt as f64 / a.duty_tau_ns as f64);
                self.duty = self.duty * d + f64::from(u8::from(staged_any)) * (1.0 - d);
                if let Some(target) = a.target_duty {
                    let step = a.duty_gain * (self.duty - target) * dt as f64 * 1e-9;
                    self.duty_shift = (self.duty_shift + step).clamp(-a.max_shift, a.max_shift);
                }
            }
        }
        self.last_plan_ns = Some(now_ns);
        let errors = -a.error_gain * (global[ERROR_RATE] / 0.05).min(2.0);
        let load = a.load_gain * global[LOAD_BURST].max(0.0);
        (errors + load + self.duty_shift).clamp(-a.max_shift, a.max_shift)
    }

    /// The window for `c` and the expected time to its switch (ns).
    fn window_for(&mut self, c: &Candidate, z: f64, default_window: usize) -> (usize, u64) {
        let w = self.cfg.window;
        // Expected time to the switch: a constant hazard per tenth of the horizon matching p.
        let p = sigmoid(z);
        let horizon = self.model.horizon_ns as f64;
        let step_hazard = 1.0 - (1.0 - p.clamp(1e-6, 1.0 - 1e-9)).powf(0.1);
        let tts_ns = (horizon * 0.1 / step_hazard).min(horizon);
        let slot = &mut self.slots[c.index];
        if !c.staged {
            return (default_window.clamp(w.min, w.max), tts_ns as u64);
        }
        if c.evicted > slot.last_evicted {
            // It shed records while staged: the window is below the lead.
            slot.lead = slot.lead.max(c.window as f64) * 2.0;
            slot.measured = true;
        }
        slot.last_evicted = c.evicted;
        let lead = c.retained_bytes as f64 / self.features.frame_bytes();
        if slot.measured {
            let dev = (lead - slot.lead).abs();
            slot.lead += 0.1 * (lead - slot.lead);
            slot.lead_dev += 0.1 * (dev - slot.lead_dev);
            slot.lead = slot.lead.max(lead);
        } else {
            (slot.lead, slot.lead_dev, slot.measured) = (lead, lead * 0.5, true);
        }
        let rate = self.features.rate_per_sec();
        let need = slot.lead + w.jitter_k * slot.lead_dev + rate * tts_ns * 1e-9 * w.drift;
        ((need.ceil() as usize).clamp(w.min, w.max), tts_ns as u64)
    }
}

/// `1 / (1 + e^-z)`, stable for either sign.
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + exp_neg(z))
    } else {
        let e = exp_neg(-z);
        e / (1.0 + e)
    }
}

/// The shipped default model.
pub fn default_model() -> Model {
    // The file is checked at build time by a test (`default_model_loads`); a failure here would
    // be a packaging error, caught before release.
    Model::from_json(DEFAULT_MODEL_JSON).expect("the shipped default model is valid")
}

/// `ln(p / (1 − p))`.
pub fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

impl ArmingPolicy for Predictor {
    fn name(&self) -> &'static str {
        "predictor"
    }

    #[inline]
    fn observe(&mut self, _stream: u32, record: &Record<'_>, now_ns: u64) {
        self.features.on_event(record.header, record.payload.len(), now_ns);
    }

    fn flip(&mut self, _stream: u32, flip: &Flip<'_>, for_us: bool, now_ns: u64) {
        self.features.on_flip(flip, for_us, now_ns);
    }

    fn gap(&mut self, _stream: u32, missing: u64, now_ns: u64) {
        self.features.on_gap(missing, now_ns);
    }

    fn switched(&mut self, _from: u32, to: u32, now_ns: u64) {
        self.features.on_switch(to, now_ns);
        if let Some(l) = &mut self.learner {
            l.switched(to, now_ns, &mut self.model);
        }
        // Both streams change role: what was measured of them as candidates no longer holds.
        // (Slots are found again by the next plan: the old stream appears as a candidate and
        // its slot restarts in the `staged_since_ns.is_none()` branch.)
        self.slots = [Slot::default(); MAX_STREAMS];
    }

    fn as_any_mut(&mut self) -> Option<&mut dyn core::any::Any> {
        Some(self)
    }

    fn plan(&mut self, candidates: &[Candidate], default_window: usize, now_ns: u64, plan: &mut StagePlan) {
        plan.clear();
        self.features.learn(candidates);
        if let Some(l) = &mut self.learner {
            // Rows whose horizon has passed are labelled (and, online, learned from) before
            // this plan scores with the model.
            l.release(now_ns, &mut self.model);
        }
        let mut x = [0.0; N_FEATURES];
        self.features.global(now_ns, &mut x);
        let staged_any = candidates.iter().any(|c| c.staged);
        self.theta = logit(self.cfg.threshold) + self.shift(now_ns, &x, staged_any);
        // Score each candidate.
        let n_c = candidates.len().min(MAX_STREAMS);
        self.last_len = 0;
        let mut z_max = f64::NEG_INFINITY;
        for c in &candidates[..n_c] {
            self.features.candidate(c, now_ns, &mut x);
            let z = self.model.logit(&x);
            self.last[self.last_len] = (c.stream, z, x);
            self.last_len += 1;
            z_max = z_max.max(z);
        }
        if let Some(l) = &mut self.learner {
            if l.due(now_ns) {
                for (stream, _, x) in &self.last[..self.last_len] {
                    l.snapshot(now_ns, *stream, x);
                }
            }
        }
        // The cover rule needs P = Σ p_c, one `exp` per candidate. Skip it when it cannot fire:
        // p_c = σ(z_c) < e^(z_c), so P < n·e^(z_max); and σ(b) ≥ e^(min(b, 0))/2 for the lowest
        // bar b = θ − hysteresis. So P ≤ σ(b) whenever z_max ≤ min(b, 0) − ln(2n), which is
        // most of the time (quiet streams score far below the bar).
        let mut any = 0.0;
        let mut p = [0.0; MAX_STREAMS];
        let lowest_bar = self.theta - self.cfg.hysteresis;
        if self.cfg.cover > 0.0 && z_max > lowest_bar.min(0.0) - (2.0 * n_c as f64).ln() {
            for (pi, l) in p.iter_mut().zip(&self.last[..self.last_len]) {
                *pi = sigmoid(l.1);
                any += *pi;
            }
        }
        let z_any = if any > 0.0 { logit(any.min(1.0 - 1e-9)) } else { f64::NEG_INFINITY };
        // Decide each candidate. Ranking key: armed first, then by logit.
        let mut chosen = [(0usize, false, f64::NEG_INFINITY); MAX_STREAMS];
        let mut n = 0;
        for (ci, c) in candidates.iter().enumerate().take(n_c) {
            let Some(slot) = self.slots.get_mut(c.index) else { continue };
            let z = self.last[ci].1;
            let held = c.staged
                && slot.staged_since_ns.is_some_and(|t| now_ns.saturating_sub(t) < self.cfg.min_hold_ns);
            let bar = if c.staged { self.theta - self.cfg.hysteresis } else { self.theta };
            let covered = z_any > bar && p[ci] >= self.cfg.cover * any;
            let keep = z > bar || covered || held;
            if keep || c.armed {
                if !c.staged || slot.staged_since_ns.is_none() {
                    // Newly staged, or staged by the engine (the previous stream after a
                    // switch): measure its lead afresh, counting evictions from now on.
                    slot.staged_since_ns = Some(now_ns);
                    slot.measured = false;
                    slot.last_evicted = c.evicted;
                }
                chosen[n] = (ci, c.armed, z);
                n += 1;
            } else {
                slot.staged_since_ns = None;
            }
        }
        // Armed first, then most likely: under the budget they win.
        chosen[..n].sort_unstable_by(|a, b| b.1.cmp(&a.1).then(b.2.total_cmp(&a.2)));
        for &(ci, armed, z) in &chosen[..n] {
            let c = candidates[ci];
            let (w, eta_ns) = self.window_for(&c, z, default_window);
            let score = if armed {
                StageScore::CERTAIN
            } else {
                StageScore { probability: sigmoid(z) as f32, eta_ns }
            };
            plan.stage_scored(c.stream, w, score);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::predict::features::N_GLOBAL;

    #[test]
    fn default_model_loads() {
        let m = Model::from_json(DEFAULT_MODEL_JSON).unwrap();
        assert!(m.horizon_ns > 0);
    }

    #[test]
    fn presets_and_cost_ratio() {
        assert_eq!(PredictorConfig::from_cost_ratio(1.0).unwrap().threshold, 0.5);
        assert!((PredictorConfig::from_cost_ratio(1.0 / 3.0).unwrap().threshold - 0.75).abs() < 1e-12);
        assert!(PredictorConfig::from_cost_ratio(0.0).is_none());
        assert!(PredictorConfig::from_cost_ratio(f64::NAN).is_none());
        assert_eq!(Preset::from_name("aggressive"), Some(Preset::Aggressive));
        assert_eq!(Preset::from_name("reckless"), None);
    }

    /// A model whose logit is `bias`, plus `announced` for an announced candidate.
    fn flat_model(p: f64, announced: f64) -> Model {
        let mut m = default_model();
        m.mean = [0.0; N_FEATURES];
        m.scale = [1.0; N_FEATURES];
        m.clip = 10.0;
        m.weights = [0.0; N_FEATURES];
        m.weights[N_GLOBAL] = announced; // cand_announced: 1 while an announce stands
        m.bias = logit(p);
        m
    }

    fn cand(stream: u32, announced: bool) -> Candidate {
        Candidate {
            stream,
            index: stream as usize,
            staged: false,
            announced,
            armed: false,
            previous: false,
            retained_bytes: 0,
            evicted: 0,
            window: 0,
        }
    }

    fn staged(model: Model, cover: f64, cands: &[Candidate]) -> Vec<u32> {
        let cfg = PredictorConfig { threshold: 0.22, cover, ..PredictorConfig::default() };
        let mut p = Predictor::new(7, model, cfg).unwrap();
        let mut plan = StagePlan::default();
        p.plan(cands, 100, 1_000, &mut plan);
        let mut s: Vec<u32> = plan.entries().iter().map(|e| e.0).collect();
        s.sort_unstable();
        s
    }

    #[test]
    fn cover_stages_every_likely_target_when_a_switch_is_likely_but_its_target_is_not() {
        // Two candidates at 0.15 each: neither clears 0.22, their sum (0.30) does.
        let two = [cand(1, false), cand(2, false)];
        assert_eq!(staged(flat_model(0.15, 0.0), 0.0, &two), Vec::<u32>::new());
        assert_eq!(staged(flat_model(0.15, 0.0), 0.25, &two), vec![1, 2]);
        // One candidate at 0.15: the sum is its own probability.
        assert_eq!(staged(flat_model(0.15, 0.0), 0.25, &two[..1]), Vec::<u32>::new());
        // Two sharing 0.21: under the bar together as well.
        assert_eq!(staged(flat_model(0.105, 0.0), 0.25, &two), Vec::<u32>::new());
        // Two announced at 0.15 and one at 0.01: the unlikely one holds 3% of the sum, under
        // the 25% cover share.
        let announced = logit(0.15) - logit(0.01);
        let three = [cand(1, true), cand(2, true), cand(3, false)];
        assert_eq!(staged(flat_model(0.01, announced), 0.25, &three), vec![1, 2]);
        assert_eq!(staged(flat_model(0.01, announced), 0.01, &three), vec![1, 2, 3]);
        // A candidate over the bar on its own is staged whatever the cover.
        let one_likely = logit(0.3) - logit(0.01);
        assert_eq!(staged(flat_model(0.01, one_likely), 0.0, &three), vec![1, 2]);
    }

    #[test]
    fn cover_share_out_of_range_is_refused() {
        for c in [-0.1, 1.5, f64::NAN] {
            let cfg = PredictorConfig { cover: c, ..PredictorConfig::default() };
            assert!(matches!(cfg.validate(), Err(ConfigError::Cover(_))), "{c}");
        }
    }

    #[test]
    fn logistic_pieces() {
        assert!(logit(0.5).abs() < 1e-12);
        assert!((logit(0.75) - 3f64.ln()).abs() < 1e-12);
        for z in [-40.0, -2.0, 0.0, 0.3, 2.0, 40.0] {
            let z: f64 = z;
            let d = (sigmoid(z) - 1.0 / (1.0 + (-z).exp())).abs();
            assert!(d < 1e-10, "{z}: {d}"); // exp_neg: relative error ~1e-11
        }
        for z in [-3.0, -0.5, 0.0, 0.5, 3.0] {
            assert!((logit(sigmoid(z)) - z).abs() < 1e-9, "{z}");
        }
    }
}
