//! Leave one family out: for each cause family, a model trained on a world without it, tested
//! on a trace with it, offline and with the online mode (`harmonizer_core::predict::learn`).
//!
//! A *family* is a cause of switches the generator can leave out ([`Family::without`]): its
//! weight in the [`CauseMix`](crate::scenario::CauseMix) (or, for switchbacks and failbacks,
//! `switchback_prob` or `failback_prob`) set to 0. Fail-stops are not a family here: they give no warning, so no
//! model makes them seamless.
//!
//! For a family `F`, [`leave_one_out`] trains a model on the training scenario without `F`
//! (the same settings as the shipped model: [`TrainSettings::default`]), then replays two test
//! traces with the aggressive preset, each twice: with the model as trained (offline) and with
//! the online mode starting from it. The traces are the test scenario (every family; `F` is a
//! few of its switches) and the same seed with `F` alone ([`Family::only`]: a deployment whose
//! operations are the pattern the model never saw). It reports, for `F`'s predictable switches,
//! how many were seamless: all of them, and those after `F`'s first occurrence (the online
//! mode cannot know a family before it has seen it once).

use crate::eval::{train, EvalError, TrainSettings};
use crate::replay::{replay, Outcome, ReplayConfig};
use crate::scenario::{Cause, ScenarioParams, Trace};
use harmonizer_core::predict::{LearnConfig, Model, OnlineConfig, Predictor, PredictorConfig, Preset};

/// A cause family that can be left out of training.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Announced switches.
    Announced,
    /// Degradations (and their false alarms).
    Degradation,
    /// Cohort rollouts.
    Rollout,
    /// Load surges.
    Load,
    /// Stalls (and those that recover).
    Stall,
    /// Switchbacks after a fresh stream goes bad.
    Switchback,
    /// Failbacks to a stream left in an incident, once it recovered.
    Failback,
}

impl Family {
    /// Every family, in [`Cause`] order.
    pub const ALL: [Family; 7] = [
        Family::Announced,
        Family::Degradation,
        Family::Rollout,
        Family::Load,
        Family::Switchback,
        Family::Stall,
        Family::Failback,
    ];

    /// The cause its switches carry.
    pub fn cause(self) -> Cause {
        match self {
            Family::Announced => Cause::Announced,
            Family::Degradation => Cause::Degradation,
            Family::Rollout => Cause::Rollout,
            Family::Load => Cause::Load,
            Family::Stall => Cause::Stall,
            Family::Switchback => Cause::Switchback,
            Family::Failback => Cause::Failback,
        }
    }

    /// Its name, the cause's (`"load"`).
    pub fn name(self) -> &'static str {
        self.cause().name()
    }

    /// Parses a name.
    pub fn from_name(s: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.name() == s)
    }

    /// `p` with this family alone: every other cause's weight 0 (fail-stops too), no
    /// switchbacks or failbacks. For switchbacks, the causes stay (a switchback follows another
    /// switch) and every switch that may be followed by one is. For failbacks, the incidents
    /// that lead to one stay (degradations, fail-stops, stalls), with no switchbacks, and every
    /// switch that may be followed by one is.
    pub fn only(self, p: &ScenarioParams) -> ScenarioParams {
        let mut q = Family::ALL.iter().filter(|&&g| g != self).fold(p.clone(), |q, g| g.without(&q));
        q.mix.fail_stop = 0.0;
        if self == Family::Switchback {
            q.mix = p.mix;
            q.switchback_prob = 1.0;
        }
        if self == Family::Failback {
            q.mix = crate::scenario::CauseMix {
                degradation: p.mix.degradation,
                fail_stop: p.mix.fail_stop,
                stall: p.mix.stall,
                ..crate::scenario::CauseMix::NONE
            };
            q.failback_prob = 1.0;
        }
        q
    }

    /// `p` without this family.
    pub fn without(self, p: &ScenarioParams) -> ScenarioParams {
        let mut q = p.clone();
        match self {
            Family::Announced => q.mix.announced = 0.0,
            Family::Degradation => q.mix.degradation = 0.0,
            Family::Rollout => q.mix.rollout = 0.0,
            Family::Load => q.mix.load = 0.0,
            Family::Stall => q.mix.stall = 0.0,
            Family::Switchback => q.switchback_prob = 0.0,
            Family::Failback => q.failback_prob = 0.0,
        }
        q
    }
}

/// How one policy did on a family's predictable switches.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FamilyScore {
    /// The family's predictable switches in the test trace.
    pub predictable: usize,
    /// Seamless among them.
    pub seamless: usize,
    /// Predictable switches after the family's first switch in the trace.
    pub after_first: usize,
    /// Seamless among those.
    pub seamless_after_first: usize,
    /// Every predictable switch of the trace, and how many were seamless.
    pub all_predictable: usize,
    /// Seamless among every predictable switch.
    pub all_seamless: usize,
    /// Duty cycle over the whole trace.
    pub duty: f64,
    /// The family's predictable switches in time order: (time, seamless).
    pub timeline: Vec<(u64, bool)>,
}

impl FamilyScore {
    /// Scores `o` (a replay of `test`) on `family`.
    pub fn of(test: &Trace, o: &Outcome, family: Family) -> FamilyScore {
        let cause = family.cause();
        let first = test.switches.iter().find(|w| w.cause == cause).map(|w| w.at_ns);
        let mut s = FamilyScore { duty: o.stats.duty_cycle(), ..FamilyScore::default() };
        for sw in &o.switches {
            let w = &test.switches[sw.truth];
            if !w.predictable {
                continue;
            }
            s.all_predictable += 1;
            s.all_seamless += usize::from(sw.seamless);
            if w.cause != cause {
                continue;
            }
            s.predictable += 1;
            s.seamless += usize::from(sw.seamless);
            s.timeline.push((w.at_ns, sw.seamless));
            if first.is_some_and(|f| w.at_ns > f) {
                s.after_first += 1;
                s.seamless_after_first += usize::from(sw.seamless);
            }
        }
        s
    }
}

/// One family's row.
#[derive(Clone, Debug)]
pub struct LofoRow {
    /// The family left out.
    pub family: Family,
    /// The model trained without it.
    pub model: Model,
    /// On the test trace (every family): the model as trained, and online from it.
    pub mixed: (FamilyScore, FamilyScore),
    /// On the family-only trace (the same seed, only this family): offline and online.
    pub only: (FamilyScore, FamilyScore),
}

/// The online settings `harmonize eval` measures ([`OnlineConfig::default`]).
pub fn online_learning() -> LearnConfig {
    LearnConfig { record_rows: 0, online: Some(OnlineConfig::default()), ..LearnConfig::default() }
}

/// Replays `test` with `model` under `preset`, offline or online.
pub fn run_model(
    test: &Trace,
    model: &Model,
    preset: Preset,
    online: Option<LearnConfig>,
) -> Result<Outcome, EvalError> {
    let cfg = ReplayConfig { horizon_ns: model.horizon_ns, snapshot_every_ns: 0, ..ReplayConfig::default() };
    let mut p = Predictor::new(test.recipient_id, model.clone(), PredictorConfig::preset(preset))
        .map_err(|_| EvalError::Settings("the model is invalid"))?;
    if let Some(l) = online {
        p.enable_learning(l).map_err(|_| EvalError::Settings("the online settings are invalid"))?;
    }
    replay(test, p, &cfg).map_err(EvalError::Engine)
}

/// Generates `p`'s trace.
pub fn trace_of(p: &ScenarioParams) -> Result<Trace, EvalError> {
    crate::scenario::generate(p).map_err(|_| EvalError::Settings("the scenario is invalid"))
}

/// Trains without `family` on `train_params` and scores the model offline and online on the
/// trace of `test_params` (every family) and on its family-only form ([`Family::only`]).
pub fn leave_one_out(
    family: Family,
    train_params: &ScenarioParams,
    test_params: &ScenarioParams,
    preset: Preset,
    online: LearnConfig,
) -> Result<LofoRow, EvalError> {
    let trace = trace_of(&family.without(train_params))?;
    let settings = TrainSettings {
        trained_on: format!("ScenarioParams::train() without {}", family.name()),
        ..TrainSettings::default()
    };
    let model = train(&trace, &settings)?.model;
    let both = |test: &Trace| -> Result<(FamilyScore, FamilyScore), EvalError> {
        Ok((
            FamilyScore::of(test, &run_model(test, &model, preset, None)?, family),
            FamilyScore::of(test, &run_model(test, &model, preset, Some(online))?, family),
        ))
    };
    let mixed = both(&trace_of(test_params)?)?;
    let only = both(&trace_of(&family.only(test_params))?)?;
    Ok(LofoRow { family, model, mixed, only })
}
