//! Arming policies: which candidate streams to stage, and each one's window (docs/design.md §5).
//!
//! The engine asks its policy for a plan at the start of every `poll` and applies it within the
//! staging budget, in the plan's order. The predictor (a later module) is one more policy; the
//! three here are the baselines every report shows beside it.

use crate::flip::Flip;
use crate::ring::Record;

/// The most streams an engine has; plans are fixed arrays of this size (no allocation).
pub const MAX_STREAMS: usize = 16;

/// What the policy knows of one non-active stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Stream id.
    pub stream: u32,
    /// The stream's place in the engine's configuration, `< MAX_STREAMS`: a dense index for
    /// per-stream policy state (ids are arbitrary `u32`s).
    pub index: usize,
    /// Staged now.
    pub staged: bool,
    /// An ANNOUNCE for it was applied and not cancelled.
    pub announced: bool,
    /// The application armed it (`Engine::arm`).
    pub armed: bool,
    /// It was the active stream before the last switch (the switchback target).
    pub previous: bool,
    /// Staged: bytes its window held after the last trim, i.e. its events beyond the delivery
    /// frontier (frames of 8 + 32 + payload bytes, rounded up to 8). 0 when not staged.
    pub retained_bytes: u64,
    /// Records its ring has evicted while staged, in total: a rising count while staged means
    /// the window is smaller than the candidate's lead.
    pub evicted: u64,
    /// Its window now, records (0 when not staged).
    pub window: usize,
}

/// What a policy expects of a candidate it plans: the engine prices its window's benefit from
/// it under a shared staging budget (`StagingPool`) and spreads staging starts by it
/// (docs/staging.md).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StageScore {
    /// Probability that the recipient switches to the candidate within the policy's horizon,
    /// `0.0 ..= 1.0`.
    pub probability: f32,
    /// Expected time to that switch, ns from now; 0 when the policy cannot say.
    pub eta_ns: u64,
}

impl StageScore {
    /// A switch the operators or the application said is coming: probability 1, no time.
    pub const CERTAIN: StageScore = StageScore { probability: 1.0, eta_ns: 0 };
}

/// A plan: streams to stage, most important first, with their windows in records.
#[derive(Clone, Copy, Debug)]
pub struct StagePlan {
    entries: [(u32, usize); MAX_STREAMS],
    scores: [StageScore; MAX_STREAMS],
    len: usize,
}

impl Default for StagePlan {
    fn default() -> Self {
        StagePlan { entries: [(0, 0); MAX_STREAMS], scores: [StageScore::CERTAIN; MAX_STREAMS], len: 0 }
    }
}

impl StagePlan {
    /// Empties the plan.
    pub fn clear(&mut self) {
        self.len = 0;
    }
    /// Asks for `stream` to be staged with a window of `window` records. Extra entries beyond
    /// [`MAX_STREAMS`] are ignored.
    /// The candidate counts as certain ([`StageScore::CERTAIN`]); see
    /// [`stage_scored`](Self::stage_scored).
    pub fn stage(&mut self, stream: u32, window: usize) {
        self.stage_scored(stream, window, StageScore::CERTAIN);
    }
    /// As [`stage`](Self::stage), with the policy's probability and expected time of the switch.
    /// A probability outside `0 ..= 1` (or NaN) is clamped (NaN to 0).
    pub fn stage_scored(&mut self, stream: u32, window: usize, score: StageScore) {
        if self.len < MAX_STREAMS {
            let p = if score.probability.is_nan() { 0.0 } else { score.probability.clamp(0.0, 1.0) };
            self.entries[self.len] = (stream, window);
            self.scores[self.len] = StageScore { probability: p, ..score };
            self.len += 1;
        }
    }
    /// The entries, in order.
    pub fn entries(&self) -> &[(u32, usize)] {
        &self.entries[..self.len]
    }
    /// The scores of the entries, in the same order.
    pub fn scores(&self) -> &[StageScore] {
        &self.scores[..self.len]
    }
    /// The window asked for `stream`, if any.
    pub fn window_of(&self, stream: u32) -> Option<usize> {
        self.entries().iter().find(|(s, _)| *s == stream).map(|(_, w)| *w)
    }
}

/// Decides staging. Called on the engine's thread only; must not allocate or block.
pub trait ArmingPolicy: Send {
    /// Short name for reports.
    fn name(&self) -> &'static str;
    /// Every data event the active stream delivers (not duplicates or events skipped for a
    /// re-read), and every flip and heartbeat read from it, with the clock of this poll batch.
    /// Default: ignored.
    fn observe(&mut self, _stream: u32, _record: &Record<'_>, _now_ns: u64) {}
    /// False when [`observe`](Self::observe) ignores every record, as the default does: the
    /// engine then does not call it (a dynamic call per event, about 15 instructions, for
    /// nothing). Asked once, when the engine is built. Default: true, so a policy that
    /// overrides `observe` is always called; the built-in policies that keep the default
    /// `observe` say false.
    fn observes_records(&self) -> bool {
        true
    }
    /// A flip read from the active stream for the first time (not a repeat), decoded;
    /// `for_us` says whether its selector includes this recipient. Called after `observe` of its
    /// record and before the engine applies it. Default: ignored.
    fn flip(&mut self, _stream: u32, _flip: &Flip<'_>, _for_us: bool, _now_ns: u64) {}
    /// The tracker found `missing` events absent on the active stream (before any fill from a
    /// candidate). Default: ignored.
    fn gap(&mut self, _stream: u32, _missing: u64, _now_ns: u64) {}
    /// The active stream changed from `from` to `to`. Default: ignored.
    fn switched(&mut self, _from: u32, _to: u32, _now_ns: u64) {}
    /// The policy as `Any`, so [`Engine::policy_mut`](super::Engine::policy_mut) can hand a
    /// concrete policy back to the application. Default: `None` (not reachable).
    fn as_any_mut(&mut self) -> Option<&mut dyn core::any::Any> {
        None
    }
    /// Fills `plan` for the non-active `candidates`; `default_window` is the engine's.
    fn plan(&mut self, candidates: &[Candidate], default_window: usize, now_ns: u64, plan: &mut StagePlan);
}

/// Never stages: every switch is cold. The cheapest baseline.
#[derive(Clone, Copy, Debug, Default)]
pub struct NeverStage;

impl ArmingPolicy for NeverStage {
    fn name(&self) -> &'static str {
        "never"
    }
    fn observes_records(&self) -> bool {
        false
    }
    fn plan(&mut self, _: &[Candidate], _: usize, _: u64, plan: &mut StagePlan) {
        plan.clear();
    }
}

/// Stages every candidate, always: seamless whenever the window reaches, at full cost.
#[derive(Clone, Copy, Debug, Default)]
pub struct AlwaysStage;

impl ArmingPolicy for AlwaysStage {
    fn name(&self) -> &'static str {
        "always"
    }
    fn observes_records(&self) -> bool {
        false
    }
    fn plan(&mut self, candidates: &[Candidate], window: usize, _: u64, plan: &mut StagePlan) {
        plan.clear();
        for c in candidates {
            plan.stage(c.stream, window);
        }
    }
}

/// [`ManualStage`]'s probability for the switchback target: possible, not expected.
pub const SWITCHBACK_PROBABILITY: f32 = 0.25;

/// Stages what the operators and the application say: announced streams, streams armed with
/// `Engine::arm`, and the previous stream after a switch (the switchback target). Announced and
/// armed streams are certain; the switchback target scores [`SWITCHBACK_PROBABILITY`], so
/// under a shared budget a stream some engine was told about wins over it.
#[derive(Clone, Copy, Debug, Default)]
pub struct ManualStage;

impl ArmingPolicy for ManualStage {
    fn name(&self) -> &'static str {
        "manual"
    }
    fn observes_records(&self) -> bool {
        false
    }
    fn plan(&mut self, candidates: &[Candidate], window: usize, _: u64, plan: &mut StagePlan) {
        plan.clear();
        // Announced first (a switch is expected), then armed, then the switchback target.
        let rank = |c: &Candidate| match (c.announced, c.armed, c.previous) {
            (true, _, _) => Some(0),
            (false, true, _) => Some(1),
            (false, false, true) => Some(2),
            _ => None,
        };
        for r in 0..3 {
            for c in candidates.iter().filter(|c| rank(c) == Some(r)) {
                let probability = if r == 2 { SWITCHBACK_PROBABILITY } else { 1.0 };
                plan.stage_scored(c.stream, window, StageScore { probability, eta_ns: 0 });
            }
        }
    }
}
