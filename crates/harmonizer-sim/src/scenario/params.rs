//! The parameters of a scenario, their defaults and their validation.

use core::fmt;

use harmonizer_core::flip::FlipError;

#[cfg(doc)]
use super::{generate, Cause};
use super::{MAX_EVENTS, MAX_OCCURRENCES, MAX_SPAN_NS, MS, SEC};

/// Relative weights of the incident causes (any non-negative numbers; at least one positive).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CauseMix {
    /// [`Cause::Announced`]; default 3.
    pub announced: f64,
    /// [`Cause::Degradation`] (false alarms included); default 3.
    pub degradation: f64,
    /// [`Cause::FailStop`]; default 1.
    pub fail_stop: f64,
    /// [`Cause::Rollout`]; default 2.
    pub rollout: f64,
    /// [`Cause::Load`]; default 2.
    pub load: f64,
    /// [`Cause::Stall`] (stalls that recover included); default 1.
    pub stall: f64,
}

impl CauseMix {
    /// No cause at all: the start for a mix of a few, e.g. `CauseMix { stall: 1.0,
    /// ..CauseMix::NONE }`. On its own it is valid only with `incident_every_ns == 0`.
    pub const NONE: CauseMix =
        CauseMix { announced: 0.0, degradation: 0.0, fail_stop: 0.0, rollout: 0.0, load: 0.0, stall: 0.0 };
}

impl Default for CauseMix {
    fn default() -> Self {
        CauseMix { announced: 3.0, degradation: 3.0, fail_stop: 1.0, rollout: 2.0, load: 2.0, stall: 1.0 }
    }
}

/// Announced switches. Ranges `(lo, hi)` are uniform and inclusive.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AnnounceParams {
    /// Lead from ANNOUNCE to SWITCH; default 2..8 s.
    pub lead_ns: (u64, u64),
    /// Share of announces that come late; default 0.15.
    pub late_share: f64,
    /// Lead of a late announce; default 0..300 ms.
    pub late_lead_ns: (u64, u64),
    /// Share of announces never followed by a switch; default 0.15.
    pub never_share: f64,
    /// Share of those withdrawn by a CANCEL at the expected time (the rest expire); default 0.5.
    pub never_cancel_share: f64,
}

impl Default for AnnounceParams {
    fn default() -> Self {
        AnnounceParams {
            lead_ns: (2 * SEC, 8 * SEC),
            late_share: 0.15,
            late_lead_ns: (0, 300 * MS),
            never_share: 0.15,
            never_cancel_share: 0.5,
        }
    }
}

/// Degradation of the active stream.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DegradationParams {
    /// Time from healthy to the peak (the SWITCH comes at its end); default 4..12 s.
    pub ramp_ns: (u64, u64),
    /// Peak extra lag; default 20..60 ms.
    pub peak_lag_ns: (u64, u64),
    /// Peak probability that an event is flagged UPSTREAM_ERROR; default 0.1..0.3.
    pub peak_error: (f64, f64),
    /// Peak probability that an event is dropped; default 0.01..0.05.
    pub peak_drop: (f64, f64),
    /// Linear recovery after the peak (after the switch); default 10 s.
    pub recover_ns: u64,
    /// Share of degradations that are false alarms (no switch); default 0.35.
    pub false_alarm_share: f64,
    /// A false alarm's peak as a fraction of the drawn peak; default 0.3..0.6.
    pub false_alarm_level: (f64, f64),
}

impl Default for DegradationParams {
    fn default() -> Self {
        DegradationParams {
            ramp_ns: (4 * SEC, 12 * SEC),
            peak_lag_ns: (20 * MS, 60 * MS),
            peak_error: (0.1, 0.3),
            peak_drop: (0.01, 0.05),
            recover_ns: 10 * SEC,
            false_alarm_share: 0.35,
            false_alarm_level: (0.3, 0.6),
        }
    }
}

/// Fail-stop incidents.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FailStopParams {
    /// How long the old stream stays dead after the flip; default 10..30 s.
    pub dead_ns: (u64, u64),
}

impl Default for FailStopParams {
    fn default() -> Self {
        FailStopParams { dead_ns: (10 * SEC, 30 * SEC) }
    }
}

/// Stalls of the active stream: it delivers nothing for a while (a stuck replicator, a network
/// partition, a long pause upstream), then everything it held at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StallParams {
    /// How long a stall that ends in a switch lasts before the operator's SWITCH; default
    /// 1..4 s. The stream comes back with the SWITCH.
    pub detect_ns: (u64, u64),
    /// Share of stalls that end with no switch; default 0.35.
    pub recover_share: f64,
    /// How long a stall that ends with no switch lasts; default 0.5..3 s.
    pub recover_ns: (u64, u64),
}

impl Default for StallParams {
    fn default() -> Self {
        StallParams { detect_ns: (SEC, 4 * SEC), recover_share: 0.35, recover_ns: (500 * MS, 3 * SEC) }
    }
}

/// Cohort rollouts.
#[derive(Clone, Debug, PartialEq)]
pub struct RolloutParams {
    /// Basis points of each stage, strictly increasing, at most 10000 (1 to 16 stages); default
    /// `[1000, 5000, 10000]`. A last stage below 10000 leaves some recipients out entirely.
    pub stages_bp: Vec<u16>,
    /// Time between stages; default 6..15 s.
    pub stage_gap_ns: (u64, u64),
}

impl Default for RolloutParams {
    fn default() -> Self {
        RolloutParams { stages_bp: vec![1000, 5000, 10_000], stage_gap_ns: (6 * SEC, 15 * SEC) }
    }
}

/// Load surges that end in a switch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoadParams {
    /// Peak rate multiplier; default 2.5..4.
    pub factor: (f64, f64),
    /// Linear ramp to the peak; default 2 s.
    pub ramp_ns: u64,
    /// Time at the peak before the switch; default 5..10 s.
    pub sustain_ns: (u64, u64),
    /// Linear decay back to 1 after the switch; default 10 s.
    pub decay_ns: u64,
}

impl Default for LoadParams {
    fn default() -> Self {
        LoadParams {
            factor: (2.5, 4.0),
            ramp_ns: 2 * SEC,
            sustain_ns: (5 * SEC, 10 * SEC),
            decay_ns: 10 * SEC,
        }
    }
}

/// The shape of a switchback (its probability is [`ScenarioParams::switchback_prob`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SwitchbackParams {
    /// The new stream turns bad this long after the switch; default 300 ms. At most `delay_ns.0`.
    pub bad_after_ns: u64,
    /// The SWITCHBACK comes this long after the switch; default 2..5 s.
    pub delay_ns: (u64, u64),
    /// Error probability of the bad stream; default 0.1..0.2.
    pub error: (f64, f64),
    /// Extra lag of the bad stream; default 10 ms.
    pub extra_lag_ns: u64,
    /// Linear recovery of the bad stream after the switchback; default 5 s.
    pub recover_ns: u64,
}

impl Default for SwitchbackParams {
    fn default() -> Self {
        SwitchbackParams {
            bad_after_ns: 300 * MS,
            delay_ns: (2 * SEC, 5 * SEC),
            error: (0.1, 0.2),
            extra_lag_ns: 10 * MS,
            recover_ns: 5 * SEC,
        }
    }
}

/// The shape of a failback (its probability is [`ScenarioParams::failback_prob`]): after an
/// incident that made the recipient leave a stream (a degradation, a fail-stop, a stall), the
/// operators move it back once that stream has recovered.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FailbackParams {
    /// The SWITCH back comes this long after the stream recovered; default 10..30 s.
    pub delay_ns: (u64, u64),
}

impl Default for FailbackParams {
    fn default() -> Self {
        FailbackParams { delay_ns: (10 * SEC, 30 * SEC) }
    }
}

/// Background load bursts (no switch).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BurstParams {
    /// Mean gap between the end of one burst and the start of the next (exponential); 0 = no
    /// bursts. Default 15 s.
    pub every_ns: u64,
    /// Rate multiplier during a burst; default 2..4.
    pub factor: (f64, f64),
    /// Length of a burst; default 0.5..2 s.
    pub length_ns: (u64, u64),
}

impl Default for BurstParams {
    fn default() -> Self {
        BurstParams { every_ns: 15 * SEC, factor: (2.0, 4.0), length_ns: (500 * MS, 2 * SEC) }
    }
}

/// Everything that shapes a scenario. Start from [`ScenarioParams::train`],
/// [`ScenarioParams::test`], [`ScenarioParams::small`] or `default()` and change fields.
#[derive(Clone, Debug, PartialEq)]
pub struct ScenarioParams {
    /// Fixes every random draw.
    pub seed: u64,
    /// Length of the trace (logical time); > 0.
    pub duration_ns: u64,
    /// Number of streams, 2..=16; default 3.
    pub streams: u32,
    /// The recipient whose switches are the ground truth.
    pub recipient_id: u64,
    /// Logical events per second before bursts and load; default 400.
    pub base_rate: f64,
    /// Per stream, the base lag from `ts` to arrival; one per stream. Default
    /// `[2 ms, 1 ms, 3 ms]` (stream 1 leads).
    pub stream_lag_ns: Vec<u64>,
    /// Each record arrives up to this much later still (uniform); default 300 µs.
    pub jitter_ns: u64,
    /// Mean gap between incidents (exponential, at least `quiet_ns`); 0 = no incidents. Default
    /// 20 s.
    pub incident_every_ns: u64,
    /// Minimum gap after an incident is over; default 4 s.
    pub quiet_ns: u64,
    /// How often each cause is picked.
    pub mix: CauseMix,
    /// Announced switches.
    pub announce: AnnounceParams,
    /// Degradations and false alarms.
    pub degradation: DegradationParams,
    /// Fail-stops.
    pub fail_stop: FailStopParams,
    /// Cohort rollouts.
    pub rollout: RolloutParams,
    /// Load surges.
    pub load: LoadParams,
    /// Stalls.
    pub stall: StallParams,
    /// Probability that a switch (other than a fail-stop, an early rollout stage or a switchback)
    /// is followed by a switchback; default 0.25.
    pub switchback_prob: f64,
    /// The shape of a switchback.
    pub switchback: SwitchbackParams,
    /// Probability that a switch away from a degraded, dead or stalled stream that was not
    /// followed by a switchback is followed by a failback to it; default 0: the standard worlds
    /// (training, validation, test) have none (docs/predictor.md, "Failback").
    pub failback_prob: f64,
    /// The shape of a failback.
    pub failback: FailbackParams,
    /// Background load bursts.
    pub bursts: BurstParams,
    /// Mean gap between foreign flips (exponential); 0 = none. Default 12 s.
    pub foreign_flip_every_ns: u64,
}

impl Default for ScenarioParams {
    /// The default world: 1800 s, seed 0, recipient 7.
    fn default() -> Self {
        ScenarioParams {
            seed: 0,
            duration_ns: 1800 * SEC,
            streams: 3,
            recipient_id: 7,
            base_rate: 400.0,
            stream_lag_ns: vec![2 * MS, MS, 3 * MS],
            jitter_ns: 300_000,
            incident_every_ns: 20 * SEC,
            quiet_ns: 4 * SEC,
            mix: CauseMix::default(),
            announce: AnnounceParams::default(),
            degradation: DegradationParams::default(),
            fail_stop: FailStopParams::default(),
            rollout: RolloutParams::default(),
            load: LoadParams::default(),
            stall: StallParams::default(),
            switchback_prob: 0.25,
            switchback: SwitchbackParams::default(),
            failback_prob: 0.0,
            failback: FailbackParams::default(),
            bursts: BurstParams::default(),
            foreign_flip_every_ns: 12 * SEC,
        }
    }
}

impl ScenarioParams {
    /// The training scenario: defaults, seed `0x7261696e` ("rain"), 3600 s.
    pub fn train() -> Self {
        ScenarioParams { seed: 0x7261_696e, duration_ns: 3600 * SEC, ..ScenarioParams::default() }
    }

    /// The development scenario: defaults, seed `0x74657374` ("test"), 1800 s. The predictor's
    /// features and settings were developed looking at this trace, so it is not held out: it
    /// was the first test trace, and became the validation trace when that was noticed.
    pub fn validation() -> Self {
        ScenarioParams { seed: 0x7465_7374, ..ScenarioParams::default() }
    }

    /// The held-out evaluation scenario: defaults, seed `0x66696e61` ("fina"), 1800 s. Nothing
    /// was tuned on it; reports quote it.
    pub fn test() -> Self {
        ScenarioParams { seed: 0x6669_6e61, ..ScenarioParams::default() }
    }

    /// A short scenario for tests: defaults but 120 s, and incidents every 8 s on average (so a
    /// handful happen).
    pub fn small(seed: u64) -> Self {
        ScenarioParams {
            seed,
            duration_ns: 120 * SEC,
            incident_every_ns: 8 * SEC,
            ..ScenarioParams::default()
        }
    }

    /// Checks every field; [`generate`] calls it first.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        use ScenarioError::*;
        if !(2..=16).contains(&self.streams) {
            return Err(Streams(self.streams));
        }
        if self.stream_lag_ns.len() != self.streams as usize {
            return Err(LagCount { streams: self.streams, lags: self.stream_lag_ns.len() });
        }
        if self.duration_ns == 0 {
            return Err(ZeroDuration);
        }
        if self.duration_ns > MAX_SPAN_NS * 365 {
            return Err(BadNumber {
                field: "duration_ns",
                value: self.duration_ns as f64,
                want: "at most 365 days",
            });
        }
        positive("base_rate", self.base_rate)?;
        let events = self.base_rate * self.duration_ns as f64 / SEC as f64;
        if events > MAX_EVENTS {
            return Err(TooLarge { events });
        }
        for &lag in &self.stream_lag_ns {
            span("stream_lag_ns", lag)?;
        }
        span("jitter_ns", self.jitter_ns)?;
        span("incident_every_ns", self.incident_every_ns)?;
        span("quiet_ns", self.quiet_ns)?;
        let m = &self.mix;
        let weights = [
            ("mix.announced", m.announced),
            ("mix.degradation", m.degradation),
            ("mix.fail_stop", m.fail_stop),
            ("mix.rollout", m.rollout),
            ("mix.load", m.load),
            ("mix.stall", m.stall),
        ];
        for (field, w) in weights {
            if !(w.is_finite() && w >= 0.0) {
                return Err(BadNumber { field, value: w, want: "finite and >= 0" });
            }
        }
        if self.incident_every_ns > 0 && weights.iter().all(|&(_, w)| w == 0.0) {
            return Err(EmptyMix);
        }
        let a = &self.announce;
        span_range("announce.lead_ns", a.lead_ns)?;
        span_range("announce.late_lead_ns", a.late_lead_ns)?;
        probability("announce.late_share", a.late_share)?;
        probability("announce.never_share", a.never_share)?;
        probability("announce.late_share + announce.never_share", a.late_share + a.never_share)?;
        probability("announce.never_cancel_share", a.never_cancel_share)?;
        let d = &self.degradation;
        span_range("degradation.ramp_ns", d.ramp_ns)?;
        span_range("degradation.peak_lag_ns", d.peak_lag_ns)?;
        probability_range("degradation.peak_error", d.peak_error)?;
        probability_range("degradation.peak_drop", d.peak_drop)?;
        span("degradation.recover_ns", d.recover_ns)?;
        probability("degradation.false_alarm_share", d.false_alarm_share)?;
        probability_range("degradation.false_alarm_level", d.false_alarm_level)?;
        span_range("fail_stop.dead_ns", self.fail_stop.dead_ns)?;
        let r = &self.rollout;
        if r.stages_bp.is_empty() || r.stages_bp.len() > 16 {
            return Err(BadStages("rollout.stages_bp must have 1 to 16 stages"));
        }
        if r.stages_bp.iter().any(|&bp| bp > harmonizer_core::flip::MAX_BASIS_POINTS) {
            return Err(BadStages("rollout.stages_bp values must be at most 10000"));
        }
        if r.stages_bp.windows(2).any(|w| w[0] >= w[1]) {
            return Err(BadStages("rollout.stages_bp must be strictly increasing"));
        }
        span_range("rollout.stage_gap_ns", r.stage_gap_ns)?;
        let l = &self.load;
        factor_range("load.factor", l.factor)?;
        span("load.ramp_ns", l.ramp_ns)?;
        span_range("load.sustain_ns", l.sustain_ns)?;
        span("load.decay_ns", l.decay_ns)?;
        span_range("stall.detect_ns", self.stall.detect_ns)?;
        probability("stall.recover_share", self.stall.recover_share)?;
        span_range("stall.recover_ns", self.stall.recover_ns)?;
        probability("switchback_prob", self.switchback_prob)?;
        let s = &self.switchback;
        span_range("switchback.delay_ns", s.delay_ns)?;
        span("switchback.bad_after_ns", s.bad_after_ns)?;
        if s.bad_after_ns > s.delay_ns.0 {
            return Err(BadNumber {
                field: "switchback.bad_after_ns",
                value: s.bad_after_ns as f64,
                want: "at most switchback.delay_ns.0 (the stream turns bad before the switchback)",
            });
        }
        probability_range("switchback.error", s.error)?;
        span("switchback.extra_lag_ns", s.extra_lag_ns)?;
        span("switchback.recover_ns", s.recover_ns)?;
        probability("failback_prob", self.failback_prob)?;
        span_range("failback.delay_ns", self.failback.delay_ns)?;
        let b = &self.bursts;
        span("bursts.every_ns", b.every_ns)?;
        factor_range("bursts.factor", b.factor)?;
        span_range("bursts.length_ns", b.length_ns)?;
        span("foreign_flip_every_ns", self.foreign_flip_every_ns)?;
        let mean_incident_gap = self.incident_every_ns.max(self.quiet_ns);
        for (field, every) in [
            ("incident_every_ns", if self.incident_every_ns == 0 { 0 } else { mean_incident_gap }),
            ("bursts.every_ns", b.every_ns.saturating_add(b.length_ns.0)),
            ("foreign_flip_every_ns", self.foreign_flip_every_ns),
        ] {
            let expected = if every == 0 { 0.0 } else { self.duration_ns as f64 / every as f64 };
            if expected > MAX_OCCURRENCES {
                return Err(TooFrequent { field, expected });
            }
        }
        Ok(())
    }
}

fn positive(field: &'static str, value: f64) -> Result<(), ScenarioError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(ScenarioError::BadNumber { field, value, want: "finite and > 0" })
    }
}

fn probability(field: &'static str, value: f64) -> Result<(), ScenarioError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(ScenarioError::BadNumber { field, value, want: "a probability in [0, 1]" })
    }
}

fn probability_range(field: &'static str, (lo, hi): (f64, f64)) -> Result<(), ScenarioError> {
    probability(field, lo)?;
    probability(field, hi)?;
    ordered(field, lo, hi)
}

fn factor_range(field: &'static str, (lo, hi): (f64, f64)) -> Result<(), ScenarioError> {
    for value in [lo, hi] {
        if !(value.is_finite() && value > 0.0 && value <= 100.0) {
            return Err(ScenarioError::BadNumber { field, value, want: "a rate factor in (0, 100]" });
        }
    }
    ordered(field, lo, hi)
}

fn span(field: &'static str, value: u64) -> Result<(), ScenarioError> {
    if value <= MAX_SPAN_NS {
        Ok(())
    } else {
        Err(ScenarioError::BadNumber { field, value: value as f64, want: "at most one day (86400 s) in ns" })
    }
}

fn span_range(field: &'static str, (lo, hi): (u64, u64)) -> Result<(), ScenarioError> {
    span(field, lo)?;
    span(field, hi)?;
    ordered(field, lo as f64, hi as f64)
}

fn ordered(field: &'static str, lo: f64, hi: f64) -> Result<(), ScenarioError> {
    if lo <= hi {
        Ok(())
    } else {
        Err(ScenarioError::BadRange { field, lo, hi })
    }
}

/// Why a scenario could not be generated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ScenarioError {
    /// `streams` is outside 2..=16.
    Streams(u32),
    /// `stream_lag_ns` does not have one entry per stream.
    LagCount {
        /// `streams`.
        streams: u32,
        /// `stream_lag_ns.len()`.
        lags: usize,
    },
    /// `duration_ns` is 0.
    ZeroDuration,
    /// `base_rate × duration` exceeds [`MAX_EVENTS`].
    TooLarge {
        /// The expected logical events.
        events: f64,
    },
    /// A process would happen more than [`MAX_OCCURRENCES`] times in the duration.
    TooFrequent {
        /// The parameter giving its mean gap.
        field: &'static str,
        /// How many times it would happen.
        expected: f64,
    },
    /// A number is out of its domain (NaN, negative, infinite, too long, not a probability).
    BadNumber {
        /// The parameter, as a path (`degradation.peak_error`).
        field: &'static str,
        /// Its value.
        value: f64,
        /// What it must be.
        want: &'static str,
    },
    /// A range's low end exceeds its high end.
    BadRange {
        /// The parameter.
        field: &'static str,
        /// Low end.
        lo: f64,
        /// High end.
        hi: f64,
    },
    /// Every cause weight is 0 while incidents are enabled.
    EmptyMix,
    /// The rollout stages are unusable; the message says why.
    BadStages(&'static str),
    /// A flip could not be encoded (a bug: parameters are validated first).
    Flip(FlipError),
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScenarioError::Streams(n) => write!(f, "scenario streams must be 2..=16, got {n}"),
            ScenarioError::LagCount { streams, lags } => {
                write!(
                    f,
                    "scenario stream_lag_ns has {lags} entries for {streams} streams (need one per stream)"
                )
            }
            ScenarioError::ZeroDuration => write!(f, "scenario duration_ns must be > 0"),
            ScenarioError::TooLarge { events } => {
                write!(f, "scenario too large: {events:.3e} logical events expected, at most {MAX_EVENTS:e}")
            }
            ScenarioError::TooFrequent { field, expected } => {
                write!(f, "scenario {field} too small: {expected:.3e} expected in the duration, at most {MAX_OCCURRENCES:e}")
            }
            ScenarioError::BadNumber { field, value, want } => {
                write!(f, "scenario {field} = {value}: must be {want}")
            }
            ScenarioError::BadRange { field, lo, hi } => {
                write!(f, "scenario {field} = ({lo}, {hi}): the low end exceeds the high end")
            }
            ScenarioError::EmptyMix => {
                write!(f, "scenario mix: every cause weight is 0 but incidents are enabled")
            }
            ScenarioError::BadStages(why) => write!(f, "scenario {why}"),
            ScenarioError::Flip(e) => write!(f, "scenario flip encoding failed: {e}"),
        }
    }
}

impl std::error::Error for ScenarioError {}
