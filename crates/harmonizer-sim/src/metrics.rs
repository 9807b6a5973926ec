//! Metrics for comparing switch predictors and arming policies on simulated traces.
//!
//! - [`Confusion`] / [`confusion`]: counts at one threshold (a score `≥ threshold` is a positive
//!   prediction), with precision `TP / (TP + FP)`, recall `TP / (TP + FN)` and
//!   `F1 = 2PR / (P + R)`; each is 0.0 when its denominator is zero.
//! - [`pr_auc`]: area under the precision–recall curve as *average precision*,
//!   `AP = Σ_k (R_k − R_{k−1}) · P_k`, over the distinct score thresholds in descending order.
//!   Tied scores form one threshold step (so the result does not depend on input order), and a
//!   step-wise sum is used rather than trapezoids, which overstate the area between points.
//!   Switches are rare, so this is more informative than ROC AUC: it ignores true negatives.
//! - [`brier`]: the Brier score `(1/n) Σ (p_i − y_i)²`, the calibration-sensitive error of
//!   predicted probabilities (0 is perfect, 0.25 is a constant 1/2).
//!
//! - [`reliability`]: the reliability curve (calibration): in each of ten equal bins of
//!   predicted probability, the mean prediction against the share that came true, and the
//!   expected calibration error `ECE = Σ_b (n_b / n) · |mean_b − share_b|`.
//!
//! Scores and labels are paired element-wise; if the slices differ in length the extra
//! elements of the longer one are ignored. Sorting uses `f64::total_cmp`, with NaN scores treated
//! as the lowest (and never predicted positive by [`confusion`]). Nothing here panics.

/// Binary confusion counts at one threshold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Confusion {
    /// Positive predicted, positive label.
    pub tp: u64,
    /// Positive predicted, negative label.
    pub fp: u64,
    /// Negative predicted, negative label.
    pub tn: u64,
    /// Negative predicted, positive label.
    pub fn_: u64,
}

impl Confusion {
    /// `TP / (TP + FP)`; 0.0 when nothing was predicted positive.
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    /// `TP / (TP + FN)`; 0.0 when there are no positive labels.
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// Harmonic mean of precision and recall, `2PR / (P + R)`; 0.0 when both are 0.
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        }
    }
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// Confusion counts predicting positive iff `score >= threshold` (NaN scores are negative).
pub fn confusion(scores: &[f64], labels: &[bool], threshold: f64) -> Confusion {
    let mut c = Confusion::default();
    for (&s, &y) in scores.iter().zip(labels) {
        match (s >= threshold, y) {
            (true, true) => c.tp += 1,
            (true, false) => c.fp += 1,
            (false, false) => c.tn += 1,
            (false, true) => c.fn_ += 1,
        }
    }
    c
}

/// Average precision: `Σ_k (R_k − R_{k−1}) · P_k` with one step per distinct score, scores
/// descending, ties grouped (NaN lowest). 1.0 for a perfect ranking, the base rate when all scores
/// tie, 0.0 when there are no positive labels.
pub fn pr_auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut pairs: Vec<(f64, bool)> = scores.iter().copied().zip(labels.iter().copied()).collect();
    let positives = pairs.iter().filter(|p| p.1).count();
    if positives == 0 {
        return 0.0;
    }
    // Descending by score, NaN last; -0.0 and 0.0 end up adjacent and are grouped by `==`.
    pairs.sort_by(|a, b| a.0.is_nan().cmp(&b.0.is_nan()).then_with(|| b.0.total_cmp(&a.0)));
    let same = |a: f64, b: f64| a == b || (a.is_nan() && b.is_nan());
    let (mut tp, mut seen, mut ap) = (0usize, 0usize, 0.0);
    let mut i = 0;
    while i < pairs.len() {
        let mut j = i;
        let mut group_tp = 0;
        while j < pairs.len() && same(pairs[j].0, pairs[i].0) {
            group_tp += usize::from(pairs[j].1);
            j += 1;
        }
        tp += group_tp;
        seen += j - i;
        if group_tp > 0 {
            ap += (group_tp as f64 / positives as f64) * (tp as f64 / seen as f64);
        }
        i = j;
    }
    ap
}

/// Brier score: mean of `(p_i − y_i)²` with `y_i ∈ {0, 1}`; 0.0 for empty input.
pub fn brier(probs: &[f64], labels: &[bool]) -> f64 {
    let n = probs.len().min(labels.len());
    if n == 0 {
        return 0.0;
    }
    let sum: f64 = probs.iter().zip(labels).map(|(&p, &y)| (p - f64::from(u8::from(y))).powi(2)).sum();
    sum / n as f64
}

/// One bin of a reliability curve.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ReliabilityBin {
    /// Lower edge of the bin (its upper edge is 0.1 higher; the last bin includes 1).
    pub lo: f64,
    /// Predictions in it.
    pub n: u64,
    /// Their mean.
    pub mean_prob: f64,
    /// The share of them that came true.
    pub observed: f64,
}

/// The reliability curve over ten equal bins of `probs` (NaN ignored), and the expected
/// calibration error (0 when there is nothing to bin).
pub fn reliability(probs: &[f64], labels: &[bool]) -> (Vec<ReliabilityBin>, f64) {
    let mut sums = [(0u64, 0.0f64, 0u64); 10];
    for (&p, &y) in probs.iter().zip(labels) {
        if p.is_nan() {
            continue;
        }
        let b = ((p.clamp(0.0, 1.0) * 10.0) as usize).min(9);
        sums[b].0 += 1;
        sums[b].1 += p;
        sums[b].2 += u64::from(y);
    }
    let total: u64 = sums.iter().map(|s| s.0).sum();
    let mut ece = 0.0;
    let bins = sums
        .iter()
        .enumerate()
        .map(|(i, &(n, sp, pos))| {
            let (mean_prob, observed) =
                if n > 0 { (sp / n as f64, pos as f64 / n as f64) } else { (0.0, 0.0) };
            if total > 0 {
                ece += n as f64 / total as f64 * (mean_prob - observed).abs();
            }
            ReliabilityBin { lo: i as f64 / 10.0, n, mean_prob, observed }
        })
        .collect();
    (bins, ece)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn perfect_ranking_is_one() {
        let scores = [0.9, 0.8, 0.7, 0.2, 0.1];
        let labels = [true, true, true, false, false];
        assert_eq!(pr_auc(&scores, &labels), 1.0);
        // Order of the input does not matter.
        assert_eq!(pr_auc(&[0.1, 0.9, 0.2, 0.8], &[false, true, false, true]), 1.0);
    }

    #[test]
    fn all_tied_is_the_base_rate() {
        assert!(close(pr_auc(&[0.5; 4], &[true, false, false, false]), 0.25));
        assert!(close(pr_auc(&[0.0; 5], &[false, true, true, false, true]), 0.6));
    }

    #[test]
    fn reversed_ranking_by_hand() {
        // Descending: F F T T. Steps at k = 3 (P 1/3, R 1/2) and k = 4 (P 1/2, R 1):
        // AP = 1/2·1/3 + 1/2·1/2 = 5/12.
        assert!(close(pr_auc(&[4.0, 3.0, 2.0, 1.0], &[false, false, true, true]), 5.0 / 12.0));
        // One positive, ranked last of four: AP = 1/4.
        assert!(close(pr_auc(&[4.0, 3.0, 2.0, 1.0], &[false, false, false, true]), 0.25));
    }

    #[test]
    fn ties_are_one_step_regardless_of_order() {
        // Groups: {0.9: T} P 1 R 1/2; {0.8: F, T} P 2/3 R 1. AP = 1/2 + 1/2·2/3 = 5/6.
        let a = pr_auc(&[0.9, 0.8, 0.8, 0.1], &[true, false, true, false]);
        let b = pr_auc(&[0.9, 0.8, 0.8, 0.1], &[true, true, false, false]);
        assert!(close(a, 5.0 / 6.0) && close(b, 5.0 / 6.0), "{a} {b}");
        // Signed zeros are the same score.
        assert!(close(pr_auc(&[0.0, -0.0], &[true, false]), 0.5));
    }

    #[test]
    fn nan_scores_rank_lowest() {
        // 0.5 (F) first, then NaN (T): AP = 1·1/2.
        assert!(close(pr_auc(&[f64::NAN, 0.5], &[true, false]), 0.5));
        assert!(close(pr_auc(&[-f64::NAN, f64::NEG_INFINITY], &[false, true]), 1.0));
        assert!(close(pr_auc(&[f64::NAN, f64::NAN], &[true, false]), 0.5));
    }

    #[test]
    fn no_positives_or_empty_is_zero() {
        assert_eq!(pr_auc(&[0.3, 0.7], &[false, false]), 0.0);
        assert_eq!(pr_auc(&[], &[]), 0.0);
        // Mismatched lengths pair up to the shorter.
        assert_eq!(pr_auc(&[0.9, 0.1, 0.5], &[true]), 1.0);
    }

    #[test]
    fn reliability_bins_and_ece() {
        // 0.05 predicted ten times, one came true: calibrated; 0.95 predicted twice, neither.
        let mut p = vec![0.05; 10];
        let mut y = vec![false; 10];
        y[0] = true;
        p.extend([0.95, 0.95, f64::NAN]);
        y.extend([false, false, true]);
        let (bins, ece) = reliability(&p, &y);
        assert_eq!(bins.len(), 10);
        assert_eq!((bins[0].n, bins[9].n), (10, 2));
        assert!((bins[0].mean_prob - 0.05).abs() < 1e-12 && (bins[0].observed - 0.1).abs() < 1e-12);
        assert_eq!(bins[9].observed, 0.0);
        let want = 10.0 / 12.0 * 0.05 + 2.0 / 12.0 * 0.95;
        assert!((ece - want).abs() < 1e-12, "{ece} vs {want}");
        assert_eq!(reliability(&[], &[]).1, 0.0);
    }

    #[test]
    fn brier_known_values() {
        assert_eq!(brier(&[1.0, 0.0], &[true, false]), 0.0);
        assert_eq!(brier(&[0.0, 1.0], &[true, false]), 1.0);
        assert_eq!(brier(&[0.5; 3], &[true, false, true]), 0.25);
        assert!(close(brier(&[0.8, 0.3], &[true, false]), (0.04 + 0.09) / 2.0));
        assert_eq!(brier(&[], &[]), 0.0);
        assert_eq!(brier(&[0.5], &[]), 0.0);
    }

    #[test]
    fn confusion_counts_at_thresholds() {
        let scores = [0.9, 0.6, 0.5, 0.4, 0.1, f64::NAN];
        let labels = [true, false, true, true, false, true];
        assert_eq!(confusion(&scores, &labels, 0.5), Confusion { tp: 2, fp: 1, tn: 1, fn_: 2 });
        assert_eq!(confusion(&scores, &labels, 0.0), Confusion { tp: 3, fp: 2, tn: 0, fn_: 1 });
        assert_eq!(confusion(&scores, &labels, 1.0), Confusion { tp: 0, fp: 0, tn: 2, fn_: 4 });
        let c = confusion(&scores, &labels, 0.5);
        assert!(close(c.precision(), 2.0 / 3.0) && close(c.recall(), 0.5));
        assert!(close(c.f1(), 2.0 * (2.0 / 3.0) * 0.5 / (2.0 / 3.0 + 0.5)));
        let none = confusion(&scores, &labels, 1.0);
        assert_eq!((none.precision(), none.recall(), none.f1()), (0.0, 0.0, 0.0));
        assert_eq!(Confusion::default().recall(), 0.0);
    }
}
