//! The predictor's features: time-decayed statistics of the active stream and of the flips it
//! carries, updated per event without allocating and read once per poll.
//!
//! # Decay over irregular arrivals
//!
//! Every statistic is an exponentially weighted sum in which an event that arrived `Δt` ago
//! weighs `exp(-Δt/τ)`. With arrivals at irregular times the update is
//! `S ← S · exp(-(t - t_prev)/τ) + x`, and a rate is `S_count / τ` (events per unit time), a mean
//! `S_x / S_count`. The engine reads its clock once per poll, so every event of one poll batch
//! has the same arrival time and `Δt = 0` between them: the per-event work is adding to the
//! batch's sums, and the decay runs once per batch, when the next batch begins ([`fold`]). That
//! is the exact update, not an approximation, and it keeps the per-event cost to a compare and a
//! few adds. The decay uses [`exp_neg`], a pure-arithmetic `e^-x` (relative error below 1e-9)
//! that gives the same bits on every platform, so a model trained on one machine replays
//! identically on another.
//!
//! [`fold`]: FeatureState::fold
//!
//! # Time constants
//!
//! `TAU_SHORT` (1 s), `TAU_MID` (10 s) and `TAU_LONG` (120 s) for the stream's own statistics,
//! `TAU_FLIPS` (60 s) for evidence from flips, `TAU_SWITCH` (5 s) for the memory of the last
//! switch. They are part of what each feature means: changing one changes the features, so a
//! model file records the feature names, and a new definition gets new names.
//!
//! # The features (model order, [`FEATURE_NAMES`])
//!
//! Global, the same for every candidate:
//! - `load_burst`: `ln((rate₁ₛ + 1/s) / (rate₁₂₀ₛ + 1/s))`, a surge in event rate.
//! - `load_sustained`: the same with the 10 s rate: a surge that lasts.
//! - `rate_log`: `ln(1 + rate₁ₛ)`, the absolute load. Load-driven switches happen when a stream
//!   carries more than its path can take, a level the relative features cannot see once
//!   a recent surge has raised the 120 s baseline. It makes a model specific to the
//!   deployment's rates: train on your own history.
//! - `error_rate`: share of data events flagged `UPSTREAM_ERROR` (1 s).
//! - `gap_rate`: gaps the tracker found on the active stream, per second (10 s).
//! - `lag_excess_ms`: mean lag (arrival − `ts_ns`) over 1 s minus over 120 s. Lag itself mixes
//!   the upstream clock with ours; the difference of two means does not depend on their offset.
//! - `lag_trend_ms`: mean lag over 1 s minus over 10 s: rising lag.
//! - `overload_s`: time the 1 s rate has spent above 1.8× the 120 s rate, exponentially
//!   weighted over 10 s (so it saturates at 10): a surge that holds, as opposed to a burst, and
//!   one that a momentary dip does not erase. Checked at each read of the features (once per
//!   poll), the condition held constant in between.
//! - `rollout_wait_s`: seconds since the last SWITCH or ANNOUNCE with a cohort selector that
//!   excluded this recipient, times how near the recipient was to that cohort (below); 0 when
//!   that was more than 30 s ago. A rollout is under way and its next stage draws nearer with
//!   every second. Flips for listed ids do not count: they move those recipients alone.
//! - `cohort_near`: how close this recipient is to the last cohort flip that excluded it:
//!   `1 - (own − flip basis points) / 10000`, decayed over 60 s.
//! - `since_switch`: `exp(-(now − last switch) / 5 s)`, 0 before the first.
//! - `post_switch_errors`: `error_rate × since_switch`: a fresh stream going bad (switchback).
//! - `silence_s`: seconds the active stream has been silent (nothing delivered: no data, flip or
//!   heartbeat, since it last did or since the switch to it) beyond 20 mean gaps at the 120 s
//!   rate, capped at 10 s; 0 in normal operation (a Poisson stream is silent for 20 mean gaps
//!   once in e²⁰ gaps). At 400 events/s it starts counting after 50 ms. The feature is the
//!   larger of that and the peak of earlier silences on this stream decayed over 5 s
//!   (`TAU_SILENCE`): a stalled stream comes back with its backlog and then, often, the
//!   operator's flip, and the evidence must outlive the backlog. A stalled stream warns of
//!   nothing else: no event arrives to carry lag or errors. (The engine's `ActiveSilent` notice
//!   reports the same silence once it passes `Liveness::silence_ns` with a candidate ahead.)
//!
//! Per candidate:
//! - `cand_announced`: 1 while an ANNOUNCE for it is in force, fading as `exp(-overdue / 5 s)`
//!   once its expected time has passed with no switch.
//! - `cand_announce_due`: `exp(-|time to the announced switch| / 2 s)`: peaks at the expected
//!   time; 0 with no announce.
//! - `cand_rollout_target`: cohort flips excluding this recipient that name it as target (60 s
//!   count).
//! - `cand_previous`: 1 for the switchback target, times `since_switch`.
//! - `cand_left_unwell_s`: for the stream the recipient left at the last switch, when it left
//!   it in trouble, the seconds since (0 after 60 s, and for any other candidate): the wait
//!   before a failback to it once it has recovered. In trouble means the stream was unhealthy
//!   when it was left (errors at least 2%, gaps at 1/s or more over 10 s, `silence_s` at
//!   least 0.5 s, lag 5 ms above its 120 s mean), or the switch was unplanned: no ANNOUNCE in force for its target, not a
//!   cohort flip, not a SWITCHBACK, not during a load surge (`overload_s` below 1). A
//!   fail-stop gives no warning, but its switch is unplanned. The recipient reads nothing of
//!   the stream it left, so this is the last health it knew of it; set once per switch.
//!
//! A candidate the application armed is staged by the policy whatever its score, so arming is
//! not a feature.

use crate::engine::{Candidate, MAX_STREAMS};
use crate::event::{EventHeader, FLAG_UPSTREAM_ERROR, KIND_FLIP, KIND_HEARTBEAT};
use crate::flip::{splitmix64, Flip, FlipAction, Selector};

/// How many features the model sees per candidate.
pub const N_FEATURES: usize = 18;

/// Index of `load_burst` in the feature vector.
pub const LOAD_BURST: usize = 0;
/// Index of `error_rate` in the feature vector.
pub const ERROR_RATE: usize = 3;

/// How many of the features are global (the rest describe one candidate).
pub const N_GLOBAL: usize = 13;

/// The feature names, in model order. The first [`N_GLOBAL`] describe the active stream and the
/// recipient; the last 5 describe one candidate stream.
pub const FEATURE_NAMES: [&str; N_FEATURES] = [
    "load_burst",
    "load_sustained",
    "rate_log",
    "error_rate",
    "gap_rate",
    "lag_excess_ms",
    "lag_trend_ms",
    "overload_s",
    "rollout_wait_s",
    "cohort_near",
    "since_switch",
    "post_switch_errors",
    "silence_s",
    "cand_announced",
    "cand_announce_due",
    "cand_rollout_target",
    "cand_previous",
    "cand_left_unwell_s",
];

const SEC: f64 = 1e9;
/// Short time constant: 1 s.
pub const TAU_SHORT_NS: f64 = 1.0 * SEC;
/// Middle time constant: 10 s.
pub const TAU_MID_NS: f64 = 10.0 * SEC;
/// Long time constant: 120 s.
pub const TAU_LONG_NS: f64 = 120.0 * SEC;
/// Flip evidence time constant: 60 s.
pub const TAU_FLIPS_NS: f64 = 60.0 * SEC;
/// Memory of the last switch: 5 s.
pub const TAU_SWITCH_NS: f64 = 5.0 * SEC;
/// Announce urgency scale: 2 s.
pub const TAU_ANNOUNCE_NS: f64 = 2.0 * SEC;
/// How fast an overdue announce fades: 5 s.
pub const TAU_OVERDUE_NS: f64 = 5.0 * SEC;
/// Memory of a silence of the active stream after it ends: 5 s.
pub const TAU_SILENCE_NS: f64 = 5.0 * SEC;

/// `e^-x` for `x >= 0` (and 1 for `x <= 0`, 0 past 700), by pure arithmetic: `e^-x = 2^-k ·
/// e^-y` with `y = x − k·ln 2 ∈ [0, ln 2)` and a degree-11 Taylor polynomial for `e^-y`
/// (truncation error below `ln2^12 / 12! < 2e-11`). The same bits on every platform, unlike
/// the C library's `exp`, and a few nanoseconds.
#[inline]
pub fn exp_neg(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return 1.0;
    }
    if x >= 700.0 {
        return 0.0;
    }
    let k = (x * core::f64::consts::LOG2_E) as u64; // floor: x > 0
    let y = x - k as f64 * core::f64::consts::LN_2;
    // e^-y by Horner: Σ (-y)^n / n!, n = 0..=11.
    let t = -y;
    let mut p = 1.0 / 39_916_800.0; // 1/11!
    p = p * t + 1.0 / 3_628_800.0;
    p = p * t + 1.0 / 362_880.0;
    p = p * t + 1.0 / 40_320.0;
    p = p * t + 1.0 / 5_040.0;
    p = p * t + 1.0 / 720.0;
    p = p * t + 1.0 / 120.0;
    p = p * t + 1.0 / 24.0;
    p = p * t + 1.0 / 6.0;
    p = p * t + 0.5;
    p = p * t + 1.0;
    p = p * t + 1.0;
    // 2^-k, k ≤ 1010: a normal f64 built from its exponent bits.
    p * f64::from_bits((1023 - k) << 52)
}

/// A value that decays with `τ` between updates made at known times.
#[derive(Clone, Copy, Debug, Default)]
struct Decayed {
    value: f64,
    at_ns: u64,
}

impl Decayed {
    fn at(&self, now_ns: u64, tau_ns: f64) -> f64 {
        if self.value == 0.0 {
            return 0.0;
        }
        self.value * exp_neg(now_ns.saturating_sub(self.at_ns) as f64 / tau_ns)
    }
    fn add(&mut self, now_ns: u64, tau_ns: f64, x: f64) {
        self.value = self.at(now_ns, tau_ns) + x;
        self.at_ns = now_ns;
    }
    fn max_with(&mut self, now_ns: u64, tau_ns: f64, x: f64) {
        self.value = self.at(now_ns, tau_ns).max(x);
        self.at_ns = now_ns;
    }
}

/// Sums of one poll batch (events sharing an arrival time). Integers, so the per-event path
/// is integer adds; converted to `f64` once per batch in [`FeatureState::fold`].
#[derive(Clone, Copy, Debug, Default)]
struct Batch {
    at_ns: u64,
    events: u64,
    errors: u64,
    /// Sum of (lag − `lag_ref`), ns, wrapping (differences of nearby lags never wrap).
    lag_ns: i64,
    gaps: u64,
    /// Payload bytes, each rounded up to 8 as in the ring.
    payload_bytes: u64,
}

/// Decayed sums over the three stream time constants.
#[derive(Clone, Copy, Debug, Default)]
struct Sums {
    n: [f64; 3],
    lag: [f64; 3],
    /// Events in `lag` (since the last switch: lag is per stream).
    lag_n: [f64; 3],
    errors_short: f64,
    gaps_mid: f64,
}

/// A cohort flip older than this no longer counts as a rollout in progress, seconds.
const ROLLOUT_WAIT_MAX_S: f64 = 30.0;

/// `cand_left_unwell_s` is 0 this long after the switch, seconds.
const LEFT_UNWELL_MAX_S: f64 = 60.0;
/// Health thresholds of the stream being left, for `cand_left_unwell_s`: error share, lag
/// above its 120 s mean (ms).
const UNWELL_ERRORS: f64 = 0.02;
const UNWELL_LAG_MS: f64 = 5.0;
/// Gaps per second (10 s) and `silence_s` at which the stream being left counts as unhealthy.
const UNWELL_GAPS_PER_S: f64 = 1.0;
const UNWELL_SILENCE_S: f64 = 0.5;

/// Mean gaps (at the 120 s rate) of silence that `silence_s` takes as normal.
const SILENCE_GAPS: f64 = 20.0;
/// Largest `silence_s`, seconds.
const SILENCE_MAX_S: f64 = 10.0;

/// Short rate over long rate above which the stream counts as overloaded.
const OVERLOAD: f64 = 1.8;

const TAUS: [f64; 3] = [TAU_SHORT_NS, TAU_MID_NS, TAU_LONG_NS];

/// The feature state of one engine: updated by the policy hooks, read by [`global`] and
/// [`candidate`]. Fixed size, no allocation.
///
/// [`global`]: FeatureState::global
/// [`candidate`]: FeatureState::candidate
#[derive(Clone, Debug)]
pub struct FeatureState {
    recipient_id: u64,
    batch: Batch,
    sums: Sums,
    /// Time `sums` are decayed to.
    sums_ns: u64,
    /// Lag offset: (arrival − ts) of the first data event, so sums stay small.
    lag_ref: i64,
    has_lag_ref: bool,
    /// Mean frame of the active stream's data events (8 + 32 + payload, rounded), bytes.
    frame_bytes: f64,
    /// Since when the short rate has been above `OVERLOAD` times the long rate.
    overload_s: Decayed,
    /// Arrival of the first event: rates are corrected for the sums' warm-up.
    first_arrival_ns: Option<u64>,
    last_switch_ns: Option<u64>,
    /// The last cohort flip that excluded this recipient: when, and how near it came.
    last_cohort: Option<(u64, f64)>,
    cohort_near: Decayed,
    rollout_target: [Decayed; MAX_STREAMS],
    /// Per candidate slot (`Candidate::index`): when the announced switch to it is due.
    announce_due_ns: [Option<u64>; MAX_STREAMS],
    /// Stream id of each slot, learned from the candidates: flips name streams by id.
    ids: [Option<u32>; MAX_STREAMS],
    /// Events per second (1 s), decayed to the last [`global`](Self::global) call.
    rate_now: f64,
    /// Peak `silence_s` of the active stream, decayed over `TAU_SILENCE_NS`.
    silence_peak: Decayed,
    /// The target of the last switching flip for us, when that flip was planned (an ANNOUNCE in
    /// force for its target, a cohort selector, a SWITCHBACK); consumed by the next switch,
    /// which counts as planned only if it goes there (a flip the engine did not apply, or a
    /// failover with no flip, leaves nothing behind for another switch).
    next_switch_planned: Option<u32>,
    /// The stream left at the last switch was left in trouble (`cand_left_unwell_s`).
    left_unwell: bool,
}

impl FeatureState {
    /// Empty state for the engine of `recipient_id` (the cohort features need it).
    pub fn new(recipient_id: u64) -> Self {
        FeatureState {
            recipient_id,
            batch: Batch::default(),
            sums: Sums::default(),
            sums_ns: 0,
            lag_ref: 0,
            has_lag_ref: false,
            frame_bytes: 48.0,
            overload_s: Decayed::default(),
            first_arrival_ns: None,
            last_switch_ns: None,
            last_cohort: None,
            cohort_near: Decayed::default(),
            rollout_target: [Decayed::default(); MAX_STREAMS],
            announce_due_ns: [None; MAX_STREAMS],
            ids: [None; MAX_STREAMS],
            rate_now: 0.0,
            silence_peak: Decayed::default(),
            next_switch_planned: None,
            left_unwell: false,
        }
    }

    /// One event read from the active stream at `now_ns`. The per-event path: a compare and a
    /// few integer adds (the decay runs once per batch of equal arrival times).
    #[inline]
    pub fn on_event(&mut self, header: &EventHeader, payload_len: usize, now_ns: u64) {
        if now_ns != self.batch.at_ns {
            self.fold();
            self.batch.at_ns = now_ns;
        }
        if header.kind == KIND_FLIP || header.kind == KIND_HEARTBEAT {
            return;
        }
        // Upstream and local clocks may differ by anything: wrapping, then relative to the
        // first lag seen, leaves small numbers.
        let lag = now_ns.wrapping_sub(header.ts_ns) as i64;
        if !self.has_lag_ref {
            (self.lag_ref, self.has_lag_ref) = (lag, true);
        }
        let b = &mut self.batch;
        b.events += 1;
        b.errors += u64::from(header.flags & FLAG_UPSTREAM_ERROR);
        b.lag_ns = b.lag_ns.wrapping_add(lag.wrapping_sub(self.lag_ref));
        b.payload_bytes += (payload_len as u64).next_multiple_of(8);
    }

    /// The tracker found `missing` events absent on the active stream.
    pub fn on_gap(&mut self, _missing: u64, now_ns: u64) {
        if now_ns != self.batch.at_ns {
            self.fold();
            self.batch.at_ns = now_ns;
        }
        self.batch.gaps += 1;
    }

    /// A flip met for the first time on the active stream.
    pub fn on_flip(&mut self, flip: &Flip<'_>, for_us: bool, now_ns: u64) {
        let target = self.slot_of(flip.target);
        if for_us {
            self.next_switch_planned = match flip.action {
                FlipAction::Switch => (matches!(flip.selector, Selector::Cohort { .. })
                    || target.is_some_and(|i| self.announce_due_ns[i].is_some()))
                .then_some(flip.target),
                FlipAction::Switchback => Some(flip.target),
                _ => self.next_switch_planned,
            };
            match (flip.action, target) {
                (FlipAction::Announce, Some(i)) => {
                    self.announce_due_ns[i] = Some(now_ns.saturating_add(flip.expected_in_ns));
                }
                (FlipAction::Cancel, Some(i)) => self.announce_due_ns[i] = None,
                _ => {}
            }
            return;
        }
        // Only cohort flips are rollout evidence: a flip for listed ids moves those recipients
        // alone and says nothing of this one.
        let Selector::Cohort { basis_points, salt } = flip.selector else { return };
        if !matches!(flip.action, FlipAction::Switch | FlipAction::Announce) {
            return;
        }
        if let Some(i) = target {
            self.rollout_target[i].add(now_ns, TAU_FLIPS_NS, 1.0);
        }
        let own = splitmix64(self.recipient_id ^ salt) % 10_000;
        let near = 1.0 - own.saturating_sub(u64::from(basis_points)) as f64 / 10_000.0;
        self.cohort_near.max_with(now_ns, TAU_FLIPS_NS, near);
        self.last_cohort = Some((now_ns, near));
    }

    /// The active stream changed to `to`. Clears the rollout evidence, which was about leaving
    /// the old stream.
    pub fn on_switch(&mut self, to: u32, now_ns: u64) {
        self.fold();
        // The health of the stream being left, as last seen (sums not decayed to `now_ns`:
        // they are as of its last record, the last thing known of it).
        let s = &self.sums;
        let errors = if s.n[0] > 1e-9 { s.errors_short / s.n[0] } else { 0.0 };
        let mean_lag = |i: usize| if s.lag_n[i] > 1e-9 { s.lag[i] / s.lag_n[i] } else { 0.0 };
        let unhealthy = errors >= UNWELL_ERRORS
            || s.gaps_mid * SEC / TAU_MID_NS >= UNWELL_GAPS_PER_S
            || self.silence_peak.value >= UNWELL_SILENCE_S
            || mean_lag(0) - mean_lag(2) > UNWELL_LAG_MS;
        let surge = self.overload_s.at(now_ns, TAU_MID_NS) >= 1.0;
        let planned = self.next_switch_planned.take() == Some(to);
        self.left_unwell = unhealthy || !(planned || surge);
        self.last_switch_ns = Some(now_ns);
        // Rollout evidence was about leaving the old stream: this recipient has moved.
        self.last_cohort = None;
        self.cohort_near = Decayed::default();
        self.rollout_target = [Decayed::default(); MAX_STREAMS];
        if let Some(i) = self.slot_of(to) {
            self.announce_due_ns[i] = None;
        }
        // Lag mixes the upstream clock with ours, and each stream may differ: the new
        // stream's lag is measured against itself.
        self.sums.lag = [0.0; 3];
        self.sums.lag_n = [0.0; 3];
        self.has_lag_ref = false;
        // So is its silence.
        self.silence_peak = Decayed::default();
    }

    /// Records which stream id each candidate slot holds (flips name streams by id).
    pub fn learn(&mut self, candidates: &[Candidate]) {
        for c in candidates {
            if let Some(slot) = self.ids.get_mut(c.index) {
                *slot = Some(c.stream);
            }
        }
    }

    fn slot_of(&self, id: u32) -> Option<usize> {
        self.ids.iter().position(|s| *s == Some(id))
    }

    /// Folds the pending batch into the decayed sums (the batch's events arrived at its time).
    /// Runs at most once per distinct arrival time.
    pub fn fold(&mut self) {
        let b = self.batch;
        if b.at_ns > self.sums_ns {
            let dt = (b.at_ns - self.sums_ns) as f64;
            let s = &mut self.sums;
            for (i, tau) in TAUS.iter().enumerate() {
                let d = exp_neg(dt / tau);
                s.n[i] *= d;
                s.lag[i] *= d;
                s.lag_n[i] *= d;
                if i == 0 {
                    s.errors_short *= d;
                } else if i == 1 {
                    s.gaps_mid *= d;
                }
            }
            self.sums_ns = b.at_ns;
        }
        if b.events > 0 {
            self.first_arrival_ns.get_or_insert(b.at_ns);
            let n = b.events as f64;
            let s = &mut self.sums;
            let lag_ms = b.lag_ns as f64 * 1e-6;
            for i in 0..3 {
                s.n[i] += n;
                s.lag[i] += lag_ms;
                s.lag_n[i] += n;
            }
            s.errors_short += b.errors as f64;
            // Frame: 8-byte frame header, 32-byte event header, payload rounded up to 8.
            let frame = 40.0 + b.payload_bytes as f64 / n;
            self.frame_bytes += (frame - self.frame_bytes) * (n / (n + 64.0));
        }
        self.sums.gaps_mid += b.gaps as f64;
        self.batch = Batch { at_ns: b.at_ns, ..Batch::default() };
    }

    /// Mean frame size of the active stream's data events, bytes (to turn a window's bytes
    /// into records).
    pub fn frame_bytes(&self) -> f64 {
        self.frame_bytes
    }

    /// Events per second over time constant `i` (0 short, 1 mid, 2 long), decayed to `now_ns`.
    /// A sum that started `e` ago holds `1 − e^(−e/τ)` of its steady-state weight; dividing by
    /// that removes the warm-up bias (as Adam's moment estimates do), so a steady stream shows
    /// the same rate on every time constant from the start.
    fn rate(&self, i: usize, decay: &[f64; 3], now_ns: u64) -> f64 {
        let elapsed = self.first_arrival_ns.map_or(0, |t| now_ns.saturating_sub(t)).max(1_000_000);
        let warm = 1.0 - exp_neg(elapsed as f64 / TAUS[i]);
        self.sums.n[i] * decay[i] / TAUS[i] * SEC / warm
    }

    /// Writes the global features at `now_ns` into `out[..N_GLOBAL]`. Folds the pending batch.
    pub fn global(&mut self, now_ns: u64, out: &mut [f64; N_FEATURES]) {
        self.fold();
        let dt = now_ns.saturating_sub(self.sums_ns) as f64;
        let decay = [exp_neg(dt / TAUS[0]), exp_neg(dt / TAUS[1]), exp_neg(dt / TAUS[2])];
        let s = &self.sums;
        let (r_short, r_mid, r_long) =
            (self.rate(0, &decay, now_ns), self.rate(1, &decay, now_ns), self.rate(2, &decay, now_ns));
        self.rate_now = r_short;
        let mean_lag = |i: usize| if s.lag_n[i] > 1e-9 { s.lag[i] / s.lag_n[i] } else { 0.0 };
        let error_rate = if s.n[0] > 1e-9 { (s.errors_short / s.n[0]).min(1.0) } else { 0.0 };
        let since_switch =
            self.last_switch_ns.map_or(0.0, |t| exp_neg(now_ns.saturating_sub(t) as f64 / TAU_SWITCH_NS));
        // ∫ 1[overloaded] e^(−age/τ) dt over the time since the last read, in seconds.
        let over = r_short > OVERLOAD * r_long && r_long > 0.0;
        let since = now_ns.saturating_sub(self.overload_s.at_ns) as f64;
        let gained = if over { TAU_MID_NS / SEC * (1.0 - exp_neg(since / TAU_MID_NS)) } else { 0.0 };
        self.overload_s.add(now_ns, TAU_MID_NS, gained);
        let overload = self.overload_s.value;
        out[0] = ((r_short + 1.0) / (r_long + 1.0)).ln();
        out[1] = ((r_mid + 1.0) / (r_long + 1.0)).ln();
        out[2] = r_short.ln_1p();
        out[3] = error_rate;
        out[4] = s.gaps_mid * decay[1] / TAU_MID_NS * SEC;
        out[5] = mean_lag(0) - mean_lag(2);
        out[6] = mean_lag(0) - mean_lag(1);
        out[7] = overload;
        out[8] = self.last_cohort.map_or(0.0, |(t, near)| {
            let wait = now_ns.saturating_sub(t) as f64 / SEC;
            if wait <= ROLLOUT_WAIT_MAX_S {
                wait * near
            } else {
                0.0
            }
        });
        out[9] = self.cohort_near.at(now_ns, TAU_FLIPS_NS);
        out[10] = since_switch;
        out[11] = error_rate * since_switch;
        // `batch.at_ns` is the arrival time of the last record read from the active stream
        // (every record starts or joins a batch); 0 before the first.
        let heard = self.batch.at_ns.max(self.last_switch_ns.unwrap_or(0));
        let silence = if heard == 0 || r_long <= 0.0 {
            0.0
        } else {
            let silent_s = now_ns.saturating_sub(heard) as f64 / SEC;
            (silent_s - SILENCE_GAPS / r_long).clamp(0.0, SILENCE_MAX_S)
        };
        self.silence_peak.max_with(now_ns, TAU_SILENCE_NS, silence);
        out[12] = self.silence_peak.value;
    }

    /// Writes candidate `c`'s features into `out[N_GLOBAL..]`, after [`global`](Self::global)
    /// filled the rest for the same `now_ns`.
    pub fn candidate(&self, c: &Candidate, now_ns: u64, out: &mut [f64; N_FEATURES]) {
        let i = c.index;
        let due = if c.announced { self.announce_due_ns.get(i).copied().flatten() } else { None };
        // An announce whose time has passed with no switch fades: it was probably abandoned.
        let overdue = due.map_or(0, |d| now_ns.saturating_sub(d)) as f64;
        out[13] = if c.announced { exp_neg(overdue / TAU_OVERDUE_NS) } else { 0.0 };
        out[14] = due.map_or(0.0, |d| exp_neg(d.abs_diff(now_ns) as f64 / TAU_ANNOUNCE_NS));
        out[15] = self.rollout_target.get(i).map_or(0.0, |r| r.at(now_ns, TAU_FLIPS_NS));
        out[16] = if c.previous { out[10] } else { 0.0 };
        out[17] = match self.last_switch_ns {
            Some(t) if c.previous && self.left_unwell => {
                let wait = now_ns.saturating_sub(t) as f64 / SEC;
                if wait <= LEFT_UNWELL_MAX_S {
                    wait
                } else {
                    0.0
                }
            }
            _ => 0.0,
        };
    }

    /// Events per second over the short time constant, as of the last
    /// [`global`](Self::global) call (decayed to its time, warm-up corrected).
    pub fn rate_per_sec(&self) -> f64 {
        self.rate_now
    }

    /// Time of the last switch, if any.
    pub fn last_switch_ns(&self) -> Option<u64> {
        self.last_switch_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::KIND_DATA;

    #[test]
    fn exp_neg_matches_exp() {
        let mut x = 0.0;
        while x < 60.0 {
            let (a, b) = (exp_neg(x), (-x).exp());
            assert!(((a - b) / b).abs() < 1e-9, "x={x}: {a} vs {b}");
            x += 0.013;
        }
        assert_eq!(exp_neg(-1.0), 1.0);
        assert_eq!(exp_neg(0.0), 1.0);
        assert_eq!(exp_neg(f64::NAN), 1.0);
        assert_eq!(exp_neg(800.0), 0.0);
        assert_eq!(exp_neg(f64::INFINITY), 0.0);
        assert!(exp_neg(699.9) > 0.0);
    }

    fn data(ts_ns: u64, flags: u16) -> EventHeader {
        EventHeader { pos: 1, seq: 1, ts_ns, origin: 0, kind: KIND_DATA, flags }
    }

    /// Irregular arrivals: the batched update equals the textbook per-event formula.
    #[test]
    fn decay_is_exact_for_irregular_arrivals() {
        let mut f = FeatureState::new(7);
        let times = [1_000_000u64, 1_000_000, 3_500_000, 900_000_000, 900_000_000, 2_400_000_000];
        let mut reference = 0.0f64;
        let mut last = 0u64;
        for &t in &times {
            f.on_event(&data(t, 0), 0, t);
            reference = reference * (-((t - last) as f64) / TAU_SHORT_NS).exp() + 1.0;
            last = t;
        }
        let mut out = [0.0; N_FEATURES];
        f.global(last, &mut out);
        let got = f.sums.n[0];
        assert!((got - reference).abs() < 1e-9, "{got} vs {reference}");
    }

    /// `silence_s`: 0 while the stream flows, the excess over 20 mean gaps while it is silent,
    /// then a memory of it that fades over 5 s; a switch forgets it.
    #[test]
    fn silence_counts_beyond_twenty_mean_gaps_and_fades() {
        let mut f = FeatureState::new(7);
        let mut out = [0.0; N_FEATURES];
        let s = 1_000_000_000u64;
        f.global(s, &mut out);
        assert_eq!(out[12], 0.0, "nothing heard yet: no silence");
        // 60 s at 100/s.
        let mut t = s;
        for _ in 0..6000 {
            t += 10_000_000;
            f.on_event(&data(t, 0), 0, t);
            if t % 1_000_000_000 == 0 {
                f.global(t + 5_000_000, &mut out);
                assert_eq!(out[12], 0.0, "flowing at {t}");
            }
        }
        // Silent for 2 s: 20 mean gaps at 100/s are 0.2 s.
        f.global(t + 150_000_000, &mut out);
        assert_eq!(out[12], 0.0, "150 ms is within 20 gaps");
        f.global(t + 2 * s, &mut out);
        assert!((out[12] - 1.8).abs() < 0.02, "{}", out[12]);
        let peak = out[12];
        // Back: the memory fades over 5 s.
        t += 2 * s;
        f.on_event(&data(t, 0), 0, t);
        f.global(t, &mut out);
        assert_eq!(out[12], peak);
        for _ in 0..1000 {
            t += 10_000_000;
            f.on_event(&data(t, 0), 0, t);
        }
        f.global(t, &mut out);
        let want = peak * (-10.0f64 / 5.0).exp();
        assert!((out[12] - want).abs() < 1e-6, "{} vs {want}", out[12]);
        // The longest silence counted is 10 s.
        f.global(t + 60 * s, &mut out);
        assert_eq!(out[12], SILENCE_MAX_S);
        // A switch: the new stream's silence counts from the switch, and the old one's is gone.
        f.on_switch(1, t + 60 * s);
        f.global(t + 60 * s + 1, &mut out);
        assert_eq!(out[12], 0.0);
    }

    fn flip(action: FlipAction, target: u32) -> Flip<'static> {
        Flip {
            action,
            flip_id: 1,
            target,
            cutover_pos: 0,
            resume_pos: 0,
            not_before_ns: 0,
            expected_in_ns: 3_000_000_000,
            selector: Selector::All,
            locator: &[],
        }
    }

    /// `cand_left_unwell_s`: after an unplanned switch, the stream left (the `previous`
    /// candidate, and no other) counts the seconds since, up to 60 s, then 0; after an announced
    /// switch from a healthy stream it stays 0, and after one from a stream with errors it
    /// counts again.
    #[test]
    fn the_stream_left_in_trouble_counts_the_wait_for_a_failback() {
        const S: u64 = 1_000_000_000;
        let cand = |stream: u32, previous: bool| Candidate {
            stream,
            index: stream as usize,
            staged: false,
            announced: false,
            armed: false,
            previous,
            retained_bytes: 0,
            evicted: 0,
            window: 0,
        };
        let mut f = FeatureState::new(7);
        f.learn(&[cand(1, false), cand(2, false)]);
        let mut out = [0.0; N_FEATURES];
        let mut t = S;
        let flow = |f: &mut FeatureState, t: &mut u64, secs: u64, flags: u16| {
            for _ in 0..secs * 100 {
                *t += 10_000_000;
                f.on_event(&data(*t - 1_000_000, flags), 0, *t);
            }
        };
        flow(&mut f, &mut t, 30, 0);
        // An unplanned SWITCH (a fail-stop: healthy until it): 0 → 1.
        f.on_flip(&flip(FlipAction::Switch, 1), true, t);
        f.on_switch(1, t);
        let left = t;
        f.learn(&[cand(0, true), cand(2, false)]);
        flow(&mut f, &mut t, 20, 0);
        f.global(t, &mut out);
        f.candidate(&cand(0, true), t, &mut out);
        assert!((out[17] - (t - left) as f64 / 1e9).abs() < 1e-9, "{}", out[17]);
        f.candidate(&cand(2, false), t, &mut out);
        assert_eq!(out[17], 0.0, "only the stream left");
        f.candidate(&cand(0, true), left + 61 * S, &mut out);
        assert_eq!(out[17], 0.0, "0 after 60 s");
        // An announced switch from a healthy stream: 1 → 2.
        f.on_flip(&flip(FlipAction::Announce, 2), true, t);
        flow(&mut f, &mut t, 3, 0);
        f.on_flip(&flip(FlipAction::Switch, 2), true, t);
        f.on_switch(2, t);
        flow(&mut f, &mut t, 10, 0);
        f.global(t, &mut out);
        f.candidate(&cand(1, true), t, &mut out);
        assert_eq!(out[17], 0.0, "planned, healthy");
        // An announced switch away from a stream with errors: 2 → 1.
        f.on_flip(&flip(FlipAction::Announce, 1), true, t);
        flow(&mut f, &mut t, 3, FLAG_UPSTREAM_ERROR);
        f.on_flip(&flip(FlipAction::Switch, 1), true, t);
        f.on_switch(1, t);
        let left = t;
        flow(&mut f, &mut t, 5, 0);
        f.global(t, &mut out);
        f.candidate(&cand(2, true), t, &mut out);
        assert!((out[17] - (t - left) as f64 / 1e9).abs() < 1e-9, "unhealthy when left: {}", out[17]);
        // A cohort SWITCH naming the active stream (the engine does not apply it), then a switch
        // with no flip (a failover) from a healthy stream: unplanned, whatever that flip was.
        flow(&mut f, &mut t, 30, 0);
        let mut cohort = flip(FlipAction::Switch, 1);
        cohort.selector = Selector::Cohort { basis_points: 10_000, salt: 3 };
        f.on_flip(&cohort, true, t);
        flow(&mut f, &mut t, 1, 0);
        f.on_switch(2, t);
        let left = t;
        flow(&mut f, &mut t, 5, 0);
        f.global(t, &mut out);
        f.candidate(&cand(1, true), t, &mut out);
        assert!((out[17] - (t - left) as f64 / 1e9).abs() < 1e-9, "a failover is unplanned: {}", out[17]);
    }

    #[test]
    fn error_rate_and_lag_move() {
        let mut f = FeatureState::new(7);
        let mut out = [0.0; N_FEATURES];
        // 60 s at 100/s, lag 1 ms, no errors.
        for i in 0..6000u64 {
            let t = 1_000_000_000 + i * 10_000_000;
            f.on_event(&data(t - 1_000_000, 0), 0, t);
        }
        f.global(61_000_000_000, &mut out);
        assert!(out[3] < 1e-9 && out[5].abs() < 1e-6 && out[0].abs() < 0.05, "{out:?}");
        assert!((out[2] - 101f64.ln()).abs() < 0.05, "rate_log {out:?}");
        // 2 s of errors and 20 ms extra lag.
        for i in 0..200u64 {
            let t = 61_000_000_000 + i * 10_000_000;
            f.on_event(&data(t - 21_000_000, FLAG_UPSTREAM_ERROR), 0, t);
        }
        f.global(63_000_000_000, &mut out);
        assert!(out[3] > 0.8, "error rate {out:?}");
        assert!(out[5] > 15.0 && out[6] > 5.0, "lag {out:?}");
    }
}
