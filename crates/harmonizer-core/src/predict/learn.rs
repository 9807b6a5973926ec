//! Learning from the deployment: labelled feature snapshots recorded while the engine runs on
//! real streams, and an opt-in online update of the model from them.
//!
//! # Labels, as training has them
//!
//! Every [`LearnConfig::every_ns`] (100 ms by default, the cadence `harmonize trace` uses) the
//! predictor's plan takes a snapshot of each candidate's feature row, the same vector it scores.
//! A snapshot taken at `t` for candidate `c` is **positive** when the recipient switches to `c`
//! in `(t, t + horizon]` (any switch, also a switch and its switchback inside one horizon) and
//! negative otherwise: `harmonizer_sim::replay::switch_to_within`'s rule, with the switch times
//! the engine sees (the flip's arrival, not its upstream timestamp), and the model's horizon.
//!
//! A snapshot waits in a fixed ring until its label is known. Each switch marks the waiting
//! snapshots of its target positive; a snapshot is *released* once its horizon has passed
//! (`t + horizon < now`), checked at every plan, so rows come out in time order, one horizon
//! after they were taken. A released row is:
//! - kept for the application, when recording is on, in a second fixed ring that
//!   [`Predictor::drain_history`](super::Predictor::drain_history) empties (the CLI's
//!   `follow --record-history FILE` writes it in the history format `harmonize train` reads);
//! - learned from, when the online mode is on (below).
//!
//! Both rings are allocated when learning is enabled and never grow: the poll path neither
//! allocates nor does I/O. When the application does not drain fast enough, new rows are dropped
//! and counted ([`LearnStats::rows_dropped`]). The waiting ring holds every snapshot one
//! horizon takes, for 16 streams: a cadence too fine for the model's horizon (more than
//! [`MAX_PENDING`] would wait) is refused when learning is enabled, and a model with a longer
//! horizon, installed later, grows the ring then (fallibly; a model it cannot follow is refused
//! and the current one stays). A snapshot dropped unlabelled because the ring was full
//! ([`LearnStats::pending_dropped`]) would be a defect, counted where it cannot be prevented.
//!
//! # The online mode
//!
//! Each released row is one step on the weighted logistic loss of the model that runs, in its
//! standardised space (`z` = the row standardised and clipped by the model's own mean, scale
//! and clip, which stay fixed), scaled per weight by the curvature seen so far (a diagonal
//! Newton step, as AdaGrad scales by the gradients seen):
//!
//! ```text
//! p = σ(b + w·z),   c = positive_weight if y else 1
//! qᵢ ← q₀ + (qᵢ − q₀)·(1 − 1/memory_rows) + c·p(1 − p)·zᵢ²        (the bias: zᵢ = 1)
//! wᵢ ← wᵢ − η · (c·(p − y)·zᵢ + λ·(wᵢ − w₀ᵢ)) / qᵢ
//! then every wᵢ and b is clamped to within max_drift of w₀ᵢ, b₀
//! ```
//!
//! `w₀, b₀` is the model the deployment started from (the shipped one, or the last one the
//! application installed with `set_model`/`load_model_json`, which resets the anchor). `q₀`
//! (`prior_precision`) is how many rows' worth of evidence the starting model counts for per
//! weight: a weight whose feature is rarely away from its mean keeps a small curvature and
//! moves quickly when its feature does light up (a warning the model had not seen), while one
//! exercised by every row moves slowly. The curvature forgets over `memory_rows` rows, so the
//! model keeps adapting; `max_drift` bounds how far any weight can go, so a burst of odd
//! traffic cannot carry the model anywhere it could not come back from, and `λ` (`prior_l2`,
//! 0 by default) can pull it back. A plain gradient step with a constant rate was tried first:
//! with a rate small enough not to hurt the model in its own world it did not learn a new
//! family, and one large enough to learn did hurt (docs/predictor.md). One step is a dot
//! product and a few multiply-adds per feature: allocation-free, at most one row per candidate
//! per cadence.
//!
//! The rows' features are what the engine computed live, under the staging the running policy
//! chose; training (`harmonize trace`) records them under a policy that never stages. The
//! features that warn of a switch do not depend on this; docs/predictor.md discusses the rest.

use super::features::N_FEATURES;
use super::model::Model;
use super::policy::sigmoid;

/// Most snapshots that may wait for their labels at once (16 candidates × 4096 snapshots).
pub const MAX_PENDING: usize = 1 << 16;
/// Most labelled rows kept for the application (about 150 MiB at 152 bytes each).
pub const MAX_RECORDED_ROWS: usize = 1 << 20;
/// Shortest snapshot cadence: 1 ms.
pub const MIN_EVERY_NS: u64 = 1_000_000;

/// One labelled feature snapshot: the row `harmonize train` fits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LabelledRow {
    /// Engine clock time of the snapshot, ns.
    pub t_ns: u64,
    /// The candidate stream.
    pub stream: u32,
    /// The recipient switched to `stream` within the model's horizon after `t_ns`.
    pub label: bool,
    /// The feature vector, in [`FEATURE_NAMES`](super::FEATURE_NAMES) order.
    pub features: [f64; N_FEATURES],
}

/// The online update's settings (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OnlineConfig {
    /// Step size `η` per labelled row, in (0, 10]; 1 is the diagonal Newton step.
    pub learning_rate: f64,
    /// Weight `c` of a positive row, > 0 (switches are rare: most rows are negative).
    pub positive_weight: f64,
    /// Pull `λ` back towards the starting model per step, ≥ 0.
    pub prior_l2: f64,
    /// Curvature a weight starts with (`q₀`), > 0: the evidence, in rows, the starting model
    /// is worth per feature. Steps are divided by each weight's curvature.
    pub prior_precision: f64,
    /// Rows of memory for the curvature: it decays towards `q₀` by `1/memory_rows` a row, so
    /// the model keeps adapting. ≥ 1.
    pub memory_rows: f64,
    /// No weight (nor the bias) moves further than this from the starting model, logit units
    /// per standardised unit, > 0.
    pub max_drift: f64,
}

impl Default for OnlineConfig {
    /// The settings docs/predictor.md measured, chosen on the development trace's world
    /// (`ScenarioParams::validation()`): `q₀` = 200 learned every family but stalls from one
    /// occurrence where 1000 did not, and cost its own world less than 50 did.
    fn default() -> Self {
        OnlineConfig {
            learning_rate: 1.0,
            positive_weight: 1.0,
            prior_l2: 0.0,
            prior_precision: 200.0,
            memory_rows: 20_000.0,
            max_drift: 3.0,
        }
    }
}

/// What to learn and record (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LearnConfig {
    /// Snapshot cadence, ns (at least [`MIN_EVERY_NS`]).
    pub every_ns: u64,
    /// Labelled rows kept for the application to drain; 0: none are kept.
    pub record_rows: usize,
    /// Update the model from its own outcomes.
    pub online: Option<OnlineConfig>,
}

impl Default for LearnConfig {
    /// Snapshots every 100 ms, 4096 rows kept, no online update.
    fn default() -> Self {
        LearnConfig { every_ns: 100_000_000, record_rows: 4096, online: None }
    }
}

/// A [`LearnConfig`] out of range: the field and why.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LearnConfigError(pub &'static str);

impl core::fmt::Display for LearnConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "predictor learning: {}", self.0)
    }
}

impl std::error::Error for LearnConfigError {}

impl LearnConfig {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), LearnConfigError> {
        if self.every_ns < MIN_EVERY_NS {
            return Err(LearnConfigError("every_ns is below 1 ms (MIN_EVERY_NS)"));
        }
        if self.record_rows > MAX_RECORDED_ROWS {
            return Err(LearnConfigError("record_rows is above 2^20 (MAX_RECORDED_ROWS)"));
        }
        if let Some(o) = self.online {
            let pos = |v: f64| v.is_finite() && v > 0.0;
            if !pos(o.learning_rate) || o.learning_rate > 10.0 {
                return Err(LearnConfigError("online learning_rate is not in (0, 10]"));
            }
            if !pos(o.prior_precision) || o.prior_precision > 1e9 {
                return Err(LearnConfigError("online prior_precision is not in (0, 1e9]"));
            }
            if !(o.memory_rows.is_finite() && o.memory_rows >= 1.0) {
                return Err(LearnConfigError("online memory_rows is not a finite value >= 1"));
            }
            if !pos(o.positive_weight) || o.positive_weight > 1e3 {
                return Err(LearnConfigError("online positive_weight is not in (0, 1000]"));
            }
            if !(o.prior_l2.is_finite() && (0.0..=1.0).contains(&o.prior_l2)) {
                return Err(LearnConfigError("online prior_l2 is not in [0, 1]"));
            }
            if !pos(o.max_drift) || o.max_drift > 100.0 {
                return Err(LearnConfigError("online max_drift is not in (0, 100]"));
            }
        }
        if self.record_rows == 0 && self.online.is_none() {
            return Err(LearnConfigError(
                "neither recording (record_rows > 0) nor online learning is asked for",
            ));
        }
        Ok(())
    }

    /// [`validate`](Self::validate), and whether the snapshots that wait over a model of
    /// `horizon_ns` fit in [`MAX_PENDING`] (what enabling learning on a predictor with such a
    /// model checks; the default model's horizon is 5 s).
    pub fn validate_for_horizon(&self, horizon_ns: u64) -> Result<(), LearnConfigError> {
        self.validate()?;
        self.pending_slots(horizon_ns).map(|_| ())
    }

    /// How many snapshots may wait at once for a model of `horizon_ns`: one per cadence over
    /// the horizon and two more, for each of the engine's streams. Refused above
    /// [`MAX_PENDING`]: a cadence too fine for the horizon would drop snapshots unlabelled.
    fn pending_slots(&self, horizon_ns: u64) -> Result<usize, LearnConfigError> {
        let per = (horizon_ns / self.every_ns).saturating_add(2);
        usize::try_from(per)
            .unwrap_or(usize::MAX)
            .checked_mul(crate::engine::MAX_STREAMS)
            .filter(|&n| n <= MAX_PENDING)
            .ok_or(LearnConfigError(
                "every_ns is too fine for the model's horizon: (horizon_ns / every_ns + 2) snapshots \
                 for each of 16 streams would wait for their labels, more than MAX_PENDING (65536)",
            ))
    }
}

/// Counters of the learner.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LearnStats {
    /// Snapshots taken (one per candidate per cadence).
    pub snapshots: u64,
    /// Rows released with their label.
    pub labelled: u64,
    /// Of them, positive.
    pub positives: u64,
    /// Rows kept for the application.
    pub rows_recorded: u64,
    /// Rows not kept because the application had not drained the ring.
    pub rows_dropped: u64,
    /// Snapshots dropped unlabelled because the waiting ring was full.
    pub pending_dropped: u64,
    /// Online steps taken.
    pub updates: u64,
    /// Rows not learned from: a feature was not finite.
    pub skipped: u64,
    /// Largest distance of any weight (or the bias) from the starting model, now.
    pub max_drift: f64,
    /// Mean log loss of the rows learned from, before each step (decayed over about 1000
    /// rows): falls as the model adapts.
    pub recent_log_loss: f64,
}

/// A fixed-capacity FIFO, allocated once.
#[derive(Debug)]
struct Fifo<T> {
    buf: Vec<T>,
    head: usize,
    len: usize,
}

impl<T: Copy> Fifo<T> {
    #[cfg(test)]
    fn new(cap: usize, fill: T) -> Self {
        Fifo { buf: vec![fill; cap], head: 0, len: 0 }
    }
    fn cap(&self) -> usize {
        self.buf.len()
    }
    fn is_full(&self) -> bool {
        self.len == self.buf.len()
    }
    fn push(&mut self, v: T) {
        debug_assert!(!self.is_full());
        let i = (self.head + self.len) % self.buf.len();
        self.buf[i] = v;
        self.len += 1;
    }
    fn front(&self) -> Option<&T> {
        (self.len > 0).then(|| &self.buf[self.head])
    }
    fn pop(&mut self) -> Option<T> {
        let v = *self.front()?;
        self.head = (self.head + 1) % self.buf.len();
        self.len -= 1;
        Some(v)
    }
    fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        let (head, len, cap) = (self.head, self.len, self.buf.len());
        let (a, b) = self.buf.split_at_mut(head);
        let first = len.min(cap - head);
        b[..first].iter_mut().chain(a[..len - first].iter_mut())
    }
}

/// Records labelled snapshots and, optionally, adapts the model. Owned by the
/// [`Predictor`](super::Predictor).
#[derive(Debug)]
pub(crate) struct Learner {
    cfg: LearnConfig,
    pending: Fifo<LabelledRow>,
    out: Fifo<LabelledRow>,
    next_ns: u64,
    /// The model online steps start from and are bounded around.
    anchor_weights: [f64; N_FEATURES],
    anchor_bias: f64,
    /// Per-weight curvature (and the bias's, last).
    curvature: [f64; N_FEATURES + 1],
    stats: LearnStats,
}

const EMPTY_ROW: LabelledRow = LabelledRow { t_ns: 0, stream: 0, label: false, features: [0.0; N_FEATURES] };

impl Learner {
    /// Allocates both rings (the only allocation the learner makes).
    pub(crate) fn new(cfg: LearnConfig, model: &Model) -> Result<Self, LearnConfigError> {
        cfg.validate()?;
        let mut pending = Vec::new();
        let slots = cfg.pending_slots(model.horizon_ns)?;
        pending
            .try_reserve_exact(slots)
            .map_err(|_| LearnConfigError("cannot allocate the ring of snapshots awaiting labels"))?;
        let mut out = Vec::new();
        out.try_reserve_exact(cfg.record_rows)
            .map_err(|_| LearnConfigError("cannot allocate the ring of recorded rows (record_rows)"))?;
        pending.resize(slots, EMPTY_ROW);
        out.resize(cfg.record_rows, EMPTY_ROW);
        Ok(Learner {
            cfg,
            pending: Fifo { buf: pending, head: 0, len: 0 },
            out: Fifo { buf: out, head: 0, len: 0 },
            next_ns: 0,
            anchor_weights: model.weights,
            anchor_bias: model.bias,
            curvature: [cfg.online.map_or(1.0, |o| o.prior_precision); N_FEATURES + 1],
            stats: LearnStats::default(),
        })
    }

    pub(crate) fn config(&self) -> &LearnConfig {
        &self.cfg
    }

    pub(crate) fn stats(&self) -> LearnStats {
        self.stats
    }

    /// Makes room for the snapshots that wait over `model`'s horizon before it is installed:
    /// the waiting ring grows (fallibly, keeping what waits) when the horizon is longer than
    /// it was sized for. Refused, with nothing changed, when it would pass [`MAX_PENDING`] or
    /// cannot be allocated. Setup (a model being installed), not the poll path.
    pub(crate) fn fit_horizon(&mut self, model: &Model) -> Result<(), LearnConfigError> {
        let slots = self.cfg.pending_slots(model.horizon_ns)?;
        if slots <= self.pending.cap() {
            return Ok(());
        }
        let mut buf = Vec::new();
        buf.try_reserve_exact(slots)
            .map_err(|_| LearnConfigError("cannot allocate the ring of snapshots awaiting labels"))?;
        while let Some(row) = self.pending.pop() {
            buf.push(row);
        }
        let len = buf.len();
        buf.resize(slots, EMPTY_ROW);
        self.pending = Fifo { buf, head: 0, len };
        Ok(())
    }

    /// The application installed another model: online steps now start from it.
    pub(crate) fn reanchor(&mut self, model: &Model) {
        self.anchor_weights = model.weights;
        self.anchor_bias = model.bias;
        self.stats.max_drift = 0.0;
    }

    /// Whether a snapshot is due at `now_ns` (and if so, schedules the next one).
    #[inline]
    pub(crate) fn due(&mut self, now_ns: u64) -> bool {
        if now_ns < self.next_ns {
            return false;
        }
        self.next_ns = (now_ns / self.cfg.every_ns + 1).saturating_mul(self.cfg.every_ns);
        true
    }

    /// A candidate's row at `now_ns`.
    pub(crate) fn snapshot(&mut self, now_ns: u64, stream: u32, features: &[f64; N_FEATURES]) {
        if self.pending.cap() == 0 {
            return;
        }
        if self.pending.is_full() {
            self.pending.pop();
            self.stats.pending_dropped += 1;
        }
        self.pending.push(LabelledRow { t_ns: now_ns, stream, label: false, features: *features });
        self.stats.snapshots += 1;
    }

    /// The recipient switched to `to` at `now_ns`: rows whose horizon ended before it are
    /// released first, then every waiting row of `to` is positive.
    pub(crate) fn switched(&mut self, to: u32, now_ns: u64, model: &mut Model) {
        self.release(now_ns, model);
        for p in self.pending.iter_mut() {
            if p.stream == to && p.t_ns < now_ns {
                p.label = true;
            }
        }
    }

    /// Releases every row whose horizon has passed at `now_ns` (`t + horizon < now`).
    pub(crate) fn release(&mut self, now_ns: u64, model: &mut Model) {
        while let Some(p) = self.pending.front() {
            if p.t_ns.saturating_add(model.horizon_ns) >= now_ns {
                break;
            }
            let Some(p) = self.pending.pop() else { break };
            self.labelled(&p, model);
        }
    }

    fn labelled(&mut self, row: &LabelledRow, model: &mut Model) {
        self.stats.labelled += 1;
        self.stats.positives += u64::from(row.label);
        if self.out.cap() > 0 {
            if self.out.is_full() {
                self.stats.rows_dropped += 1;
            } else {
                self.out.push(*row);
                self.stats.rows_recorded += 1;
            }
        }
        if let Some(o) = self.cfg.online {
            self.step(&o, row, model);
        }
    }

    /// One SGD step on the weighted logistic loss (module docs).
    fn step(&mut self, o: &OnlineConfig, row: &LabelledRow, model: &mut Model) {
        let mut z = [0.0; N_FEATURES];
        model.standardise(&row.features, &mut z);
        let logit = model.bias + model.weights.iter().zip(&z).map(|(w, z)| w * z).sum::<f64>();
        if !logit.is_finite() {
            // A non-finite feature would poison the weights for good: not learned from.
            self.stats.skipped += 1;
            return;
        }
        let p = sigmoid(logit);
        let y = f64::from(u8::from(row.label));
        // Log loss before the step, for the decayed mean reported in the stats.
        let loss = if row.label { -p.max(1e-15).ln() } else { -(1.0 - p).max(1e-15).ln() };
        self.stats.recent_log_loss += (loss - self.stats.recent_log_loss) * 1e-3;
        let c = if row.label { o.positive_weight } else { 1.0 };
        let g = c * (p - y);
        let h = c * p * (1.0 - p);
        let keep = 1.0 - 1.0 / o.memory_rows;
        let mut drift = 0.0f64;
        let mut update = |w: &mut f64, w0: f64, zi: f64, q: &mut f64| {
            *q = o.prior_precision + (*q - o.prior_precision) * keep + h * zi * zi;
            let stepped = *w - o.learning_rate * (g * zi + o.prior_l2 * (*w - w0)) / *q;
            *w = stepped.clamp(w0 - o.max_drift, w0 + o.max_drift);
            drift = drift.max((*w - w0).abs());
        };
        let (qw, qb) = self.curvature.split_at_mut(N_FEATURES);
        for (((w, &w0), &zi), q) in model.weights.iter_mut().zip(&self.anchor_weights).zip(&z).zip(qw) {
            update(w, w0, zi, q);
        }
        // The bias: its feature is 1.
        update(&mut model.bias, self.anchor_bias, 1.0, &mut qb[0]);
        self.stats.max_drift = drift;
        self.stats.updates += 1;
    }

    /// Moves up to `out.len()` recorded rows, oldest first, into `out`; returns how many.
    pub(crate) fn drain(&mut self, out: &mut [LabelledRow]) -> usize {
        let mut n = 0;
        while n < out.len() {
            let Some(r) = self.out.pop() else { break };
            out[n] = r;
            n += 1;
        }
        n
    }

    /// Rows waiting to be drained.
    pub(crate) fn recorded_len(&self) -> usize {
        self.out.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_wraps_and_iterates_in_order() {
        let mut f = Fifo::new(3, 0u32);
        for v in 1..=3 {
            f.push(v);
        }
        assert_eq!(f.pop(), Some(1));
        f.push(4);
        assert_eq!(f.iter_mut().map(|v| *v).collect::<Vec<_>>(), vec![2, 3, 4]);
        assert_eq!((f.pop(), f.pop(), f.pop(), f.pop()), (Some(2), Some(3), Some(4), None));
    }
}
