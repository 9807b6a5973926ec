//! A phi-accrual-style baseline (Hayashibara et al., 2004): suspect the active stream when its
//! silence is improbable given recent inter-arrival times, or when its upstream error rate is
//! high, and stage every candidate while suspicious.
//!
//! `φ = −log10 P(an interval at least as long as the current silence)`, with intervals modelled
//! as exponential with an exponentially weighted mean (weight 1/64 per event; events read in
//! one poll share the interval since the poll before), as Cassandra's detector does. The error rate is the share of
//! events flagged `UPSTREAM_ERROR`, with the same weight. Suspicion is
//! `s = max(φ / φ_threshold, error_rate / error_threshold)`; the rule stages while `s ≥ 1` and
//! for `min_hold_ns` after. As a score for ranking metrics it reports `s / (1 + s)` (0.5 at
//! the threshold), which is a ranking, not a calibrated probability: its PR-AUC compares with
//! the predictor's, its Brier score does not.
//!
//! It sees only the active stream's health: it cannot know of announces or rollouts, which is
//! the point of comparing it with the predictor.

use crate::engine::{ArmingPolicy, Candidate, StagePlan};
use crate::event::{FLAG_UPSTREAM_ERROR, KIND_DATA};
use crate::ring::Record;

const ALPHA: f64 = 1.0 / 64.0;

/// The phi-style baseline policy.
#[derive(Clone, Debug)]
pub struct PhiRule {
    /// φ at which it suspects the stream.
    pub phi_threshold: f64,
    /// Upstream error share at which it suspects the stream.
    pub error_threshold: f64,
    /// Stages at least this long once suspicious.
    pub min_hold_ns: u64,
    mean_ns: f64,
    errors: f64,
    /// Arrival time of the current batch (events read in one poll share it).
    batch_ns: u64,
    batch_n: u64,
    /// Arrival time of the batch before.
    last_arrival_ns: Option<u64>,
    samples: u64,
    staged_until_ns: u64,
    suspicion: f64,
}

impl PhiRule {
    /// A rule with these thresholds, holding 2 s.
    pub fn new(phi_threshold: f64, error_threshold: f64) -> Self {
        PhiRule {
            phi_threshold,
            error_threshold,
            min_hold_ns: 2_000_000_000,
            mean_ns: 0.0,
            errors: 0.0,
            batch_ns: 0,
            batch_n: 0,
            last_arrival_ns: None,
            samples: 0,
            staged_until_ns: 0,
            suspicion: 0.0,
        }
    }

    /// φ for a silence of `t_ns` so far: `t / (mean · ln 10)`, the exponential model of
    /// inter-arrival times Cassandra's detector uses (`P(later) = e^(−t/mean)`), which suits
    /// Poisson-like event streams; a normal model fires on every long-tailed quiet spell.
    pub fn phi(&self, t_ns: f64) -> f64 {
        if self.samples < 16 || self.mean_ns <= 0.0 {
            return 0.0;
        }
        t_ns / (self.mean_ns * core::f64::consts::LN_10)
    }

    /// Ends a batch of events that arrived together: its `n` events came in the `dt` since the
    /// batch before, so each counts as an interval of `dt / n` (a batch of one is the classic
    /// per-arrival sample; a fetch delivered at one instant does not read as zero intervals).
    fn close_batch(&mut self) {
        if self.batch_n == 0 {
            return;
        }
        if let Some(last) = self.last_arrival_ns {
            let n = self.batch_n as f64;
            let x = self.batch_ns.saturating_sub(last) as f64 / n;
            let w = 1.0 - (1.0 - ALPHA).powf(n);
            self.mean_ns += w * (x - self.mean_ns);
            self.samples += self.batch_n;
        }
        self.last_arrival_ns = Some(self.batch_ns);
        self.batch_n = 0;
    }

    /// Suspicion at the last plan (`≥ 1` stages).
    pub fn suspicion(&self) -> f64 {
        self.suspicion
    }

    /// The ranking score at the last plan, `s / (1 + s)`.
    pub fn score(&self) -> f64 {
        self.suspicion / (1.0 + self.suspicion)
    }
}

impl ArmingPolicy for PhiRule {
    fn name(&self) -> &'static str {
        "phi"
    }

    fn observe(&mut self, _stream: u32, record: &Record<'_>, now_ns: u64) {
        if record.header.kind != KIND_DATA {
            return;
        }
        if now_ns != self.batch_ns {
            self.close_batch();
            self.batch_ns = now_ns;
        }
        self.batch_n += 1;
        let e = f64::from(record.header.flags & FLAG_UPSTREAM_ERROR);
        self.errors += ALPHA * (e - self.errors);
    }

    fn as_any_mut(&mut self) -> Option<&mut dyn core::any::Any> {
        Some(self)
    }

    fn switched(&mut self, _from: u32, _to: u32, _now_ns: u64) {
        // A new stream: its arrivals have their own rhythm.
        self.samples = 0;
        self.mean_ns = 0.0;
        self.errors = 0.0;
        self.last_arrival_ns = None;
        self.batch_n = 0;
    }

    fn plan(&mut self, candidates: &[Candidate], window: usize, now_ns: u64, plan: &mut StagePlan) {
        plan.clear();
        if now_ns != self.batch_ns {
            self.close_batch();
        }
        let silence = self.last_arrival_ns.map_or(0.0, |t| now_ns.saturating_sub(t) as f64);
        self.suspicion = (self.phi(silence) / self.phi_threshold).max(self.errors / self.error_threshold);
        if self.suspicion >= 1.0 {
            self.staged_until_ns = now_ns.saturating_add(self.min_hold_ns);
        }
        if now_ns < self.staged_until_ns {
            for c in candidates {
                plan.stage(c.stream, window);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phi_grows_with_silence() {
        let mut r = PhiRule::new(8.0, 0.1);
        r.samples = 100;
        r.mean_ns = 10_000_000.0;
        assert!((r.phi(10_000_000.0) - 1.0 / core::f64::consts::LN_10).abs() < 1e-12);
        assert!((r.phi(10.0 * core::f64::consts::LN_10 * 10_000_000.0) - 10.0).abs() < 1e-9);
        assert!(r.phi(30_000_000.0) > r.phi(15_000_000.0));
        r.samples = 3;
        assert_eq!(r.phi(1e12), 0.0, "no judgement before 16 intervals");
    }
}
