//! Training the switch predictor: L2-penalised logistic regression fitted by Newton's method
//! (iteratively reweighted least squares, IRLS).
//!
//! The model is `p(y = 1 | x) = σ(b + β·x)` with `σ(z) = 1 / (1 + e^(−z))`. With per-row sample
//! weights `c_i` (1 when absent) the fit minimises the penalised negative log-likelihood
//!
//! ```text
//! F(β, b) = Σ_i c_i ℓ(z_i, y_i) + (λ/2)·‖β‖²,   z_i = b + β·x_i,   ℓ(z, y) = log(1 + e^z) − y·z
//! ```
//!
//! The bias `b` is not penalised, so the fitted base rate is not shrunk towards 1/2. Each Newton
//! step solves `H s = −g` by a dense Cholesky factorisation, where
//!
//! ```text
//! g = Σ_i c_i (p_i − y_i) x̃_i + λ(β, 0),   H = Σ_i c_i p_i (1 − p_i) x̃_i x̃_iᵀ + λ·diag(1, …, 1, 0)
//! ```
//!
//! and `x̃_i = (x_i, 1)`. If the full step does not decrease `F` it is halved (up to 40 times).
//! The fit has converged when the largest absolute component of the step is below `tol`.
//!
//! Why Newton and not gradient descent: the predictor has few features (d ≤ 32, so the Hessian is
//! at most 33×33), features arrive standardised, and Newton converges in a handful of passes with
//! no learning rate to tune, deterministically and without dependencies.
//!
//! Numerical care: `σ` and `log(1 + e^z)` use the stable branches for either sign of `z`, and
//! `p_i` is clamped to `[1e−10, 1 − 1e−10]` in the Hessian weights so separable data cannot make
//! them vanish (with `λ > 0` the penalised optimum is finite anyway).

use std::fmt;

/// Largest feature dimension [`fit_logistic`] accepts (the spec's d ≤ 32, with headroom).
pub const MAX_DIM: usize = 64;

/// Probabilities are clamped to `[P_CLAMP, 1 − P_CLAMP]` when forming the Hessian weights.
const P_CLAMP: f64 = 1e-10;
/// Step halvings tried before the line search gives up.
const MAX_HALVINGS: u32 = 40;
/// A trial step is accepted if it raises `F` by at most this fraction of `|F|` (summation noise).
const LOSS_SLACK: f64 = 1e-11;

/// Settings for [`fit_logistic`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainConfig {
    /// L2 penalty `λ` on the weights (not on the bias); must be finite and ≥ 0. It is added to
    /// the summed (not mean) log-likelihood, so its effect fades as the sample grows.
    pub l2: f64,
    /// Maximum number of Newton steps; must be ≥ 1.
    pub max_iter: usize,
    /// Converged when the largest absolute step component is below this; must be ≥ 0.
    pub tol: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig { l2: 1.0, max_iter: 50, tol: 1e-8 }
    }
}

/// Training data: `y.len()` rows of `dim` features each.
#[derive(Clone, Copy, Debug)]
pub struct Samples<'a> {
    /// Features per row.
    pub dim: usize,
    /// Row-major `n × dim` feature matrix, already standardised (see [`column_stats`]).
    pub x: &'a [f64],
    /// Labels, one per row: `true` = the positive class.
    pub y: &'a [bool],
    /// Optional per-row sample weights (finite, ≥ 0); `None` weighs every row 1.
    pub w: Option<&'a [f64]>,
}

/// A fitted model and how the fit went.
#[derive(Clone, Debug, PartialEq)]
pub struct Fit {
    /// Feature weights `β`, one per column.
    pub weights: Vec<f64>,
    /// Intercept `b`.
    pub bias: f64,
    /// Newton steps taken.
    pub iterations: usize,
    /// Whether the last step was below `tol` (false: `max_iter` reached or no further decrease).
    pub converged: bool,
    /// Mean penalised negative log-likelihood at the fit: `F(β, b) / Σ c_i`.
    pub loss: f64,
}

impl Fit {
    /// The logit `b + β·x` for one standardised row (extra components on either side are ignored).
    pub fn logit(&self, row: &[f64]) -> f64 {
        self.bias + self.weights.iter().zip(row).map(|(w, x)| w * x).sum::<f64>()
    }

    /// The predicted probability `σ(b + β·x)` for one standardised row.
    pub fn probability(&self, row: &[f64]) -> f64 {
        sigmoid(self.logit(row))
    }
}

/// Why [`fit_logistic`] refused or failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrainError {
    /// No rows, or every sample weight is zero.
    Empty,
    /// `x.len() != y.len() × dim`, or the sample weights are not one per row.
    LengthMismatch,
    /// Only one class has positive total weight.
    OneClass,
    /// A feature value is NaN or infinite.
    NotFinite {
        /// Row index.
        row: usize,
        /// Column index.
        col: usize,
    },
    /// A sample weight is negative or not finite (or the weights sum to infinity).
    BadWeight {
        /// Row index.
        row: usize,
    },
    /// `l2` negative or not finite, `tol` negative or NaN, `max_iter` zero, or `dim` above
    /// [`MAX_DIM`].
    BadConfig,
    /// The Hessian is not numerically positive definite (e.g. `l2 = 0` with collinear columns).
    NotPositiveDefinite,
}

impl TrainError {
    /// A short stable name for the reason, for counters and logs.
    pub fn code(&self) -> &'static str {
        match self {
            TrainError::Empty => "empty",
            TrainError::LengthMismatch => "length_mismatch",
            TrainError::OneClass => "one_class",
            TrainError::NotFinite { .. } => "not_finite",
            TrainError::BadWeight { .. } => "bad_weight",
            TrainError::BadConfig => "bad_config",
            TrainError::NotPositiveDefinite => "not_positive_definite",
        }
    }
}

impl fmt::Display for TrainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrainError::Empty => write!(f, "no training rows (or all sample weights are zero)"),
            TrainError::LengthMismatch => {
                write!(f, "training data lengths disagree (x must be rows × dim, w one per row)")
            }
            TrainError::OneClass => write!(f, "training labels contain a single class only"),
            TrainError::NotFinite { row, col } => {
                write!(f, "feature at row {row}, column {col} is not finite")
            }
            TrainError::BadWeight { row } => {
                write!(f, "sample weight at row {row} is negative or not finite (or the sum overflows)")
            }
            TrainError::BadConfig => write!(
                f,
                "bad training config (l2 must be finite and >= 0, tol >= 0, max_iter >= 1, dim <= {MAX_DIM})"
            ),
            TrainError::NotPositiveDefinite => {
                write!(f, "Hessian is not positive definite (collinear features?)")
            }
        }
    }
}

impl std::error::Error for TrainError {}

/// The logistic function `σ(z) = 1 / (1 + e^(−z))`, stable for any `z` (never NaN for non-NaN `z`).
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// `log(1 + e^t)` without overflow or loss of precision for large `|t|`.
fn softplus(t: f64) -> f64 {
    if t > 0.0 {
        t + (-t).exp().ln_1p()
    } else {
        t.exp().ln_1p()
    }
}

/// Negative log-likelihood of `label` under logit `z`: `log(1 + e^z) − y·z`, computed stably
/// (`softplus(−z)` for a positive label, `softplus(z)` for a negative one).
pub fn log_loss(z: f64, label: bool) -> f64 {
    softplus(if label { -z } else { z })
}

/// Per-column mean and scale of a row-major matrix with `dim` columns, for standardising
/// features as `(x − mean) / scale`. Scale is the population standard deviation; columns with a
/// standard deviation below 1e−12 (constant columns) get scale 1.0. A trailing partial row is
/// ignored; with no rows the means are 0 and the scales 1.
pub fn column_stats(dim: usize, x: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let n = x.len().checked_div(dim).unwrap_or(0);
    let mut mean = vec![0.0; dim];
    let mut scale = vec![1.0; dim];
    if n == 0 {
        return (mean, scale);
    }
    for i in 0..n {
        for (m, v) in mean.iter_mut().zip(&x[i * dim..(i + 1) * dim]) {
            *m += v;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut var = vec![0.0; dim];
    for i in 0..n {
        for ((s, v), m) in var.iter_mut().zip(&x[i * dim..(i + 1) * dim]).zip(&mean) {
            *s += (v - m) * (v - m);
        }
    }
    for (sc, s) in scale.iter_mut().zip(&var) {
        let sd = (s / n as f64).sqrt();
        *sc = if sd >= 1e-12 { sd } else { 1.0 };
    }
    (mean, scale)
}

/// Fits `p(y | x) = σ(b + β·x)` by Newton/IRLS with an L2 penalty on `β` (see the module docs for
/// the objective). Starts from `β = 0`, `b = logit(weighted base rate)`. Validates everything
/// first and never panics on bad input.
pub fn fit_logistic(s: &Samples<'_>, cfg: &TrainConfig) -> Result<Fit, TrainError> {
    let c = validate(s, cfg)?;
    let (dim, m) = (s.dim, s.dim + 1);
    let total: f64 = c.iter().sum();
    let pos: f64 = c.iter().zip(s.y).filter(|(_, &y)| y).map(|(c, _)| c).sum();
    let mut theta = vec![0.0; m];
    theta[dim] = (pos / (total - pos)).ln();
    let mut f = objective(s, &c, &theta, cfg.l2);
    let (mut grad, mut hess) = (vec![0.0; m], vec![0.0; m * m]);
    let (mut step, mut trial) = (vec![0.0; m], vec![0.0; m]);
    let (mut iterations, mut converged) = (0, false);
    while iterations < cfg.max_iter {
        gradient_hessian(s, &c, &theta, cfg.l2, &mut grad, &mut hess);
        cholesky(&mut hess, m)?;
        grad.iter().zip(step.iter_mut()).for_each(|(g, st)| *st = -g);
        solve_in_place(&hess, m, &mut step);
        iterations += 1;
        let max_step = step.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        if !max_step.is_finite() {
            return Err(TrainError::NotPositiveDefinite);
        }
        let mut t = 1.0;
        let mut accepted = false;
        for _ in 0..=MAX_HALVINGS {
            trial.iter_mut().zip(&theta).zip(&step).for_each(|((tr, th), st)| *tr = th + t * st);
            let ft = objective(s, &c, &trial, cfg.l2);
            if ft <= f + LOSS_SLACK * f.abs() {
                theta.copy_from_slice(&trial);
                f = ft;
                accepted = true;
                break;
            }
            t *= 0.5;
        }
        if max_step < cfg.tol {
            converged = true;
            break;
        }
        if !accepted {
            break; // no decrease along a descent direction: stuck at the precision limit
        }
    }
    Ok(Fit { weights: theta[..dim].to_vec(), bias: theta[dim], iterations, converged, loss: f / total })
}

/// Checks config and data; returns the per-row sample weights.
fn validate(s: &Samples<'_>, cfg: &TrainConfig) -> Result<Vec<f64>, TrainError> {
    let cfg_ok = cfg.l2.is_finite() && cfg.l2 >= 0.0 && cfg.tol >= 0.0 && cfg.max_iter >= 1;
    if !cfg_ok || s.dim > MAX_DIM {
        return Err(TrainError::BadConfig);
    }
    let n = s.y.len();
    if n == 0 {
        return Err(TrainError::Empty);
    }
    if s.dim.checked_mul(n) != Some(s.x.len()) || s.w.is_some_and(|w| w.len() != n) {
        return Err(TrainError::LengthMismatch);
    }
    if let Some(k) = s.x.iter().position(|v| !v.is_finite()) {
        return Err(TrainError::NotFinite { row: k / s.dim, col: k % s.dim });
    }
    let c = s.w.map_or_else(|| vec![1.0; n], <[f64]>::to_vec);
    let (mut pos, mut neg) = (0.0, 0.0);
    for (row, (&ci, &yi)) in c.iter().zip(s.y).enumerate() {
        if !(ci.is_finite() && ci >= 0.0 && (pos + neg + ci).is_finite()) {
            return Err(TrainError::BadWeight { row });
        }
        *(if yi { &mut pos } else { &mut neg }) += ci;
    }
    match (pos > 0.0, neg > 0.0) {
        (false, false) => Err(TrainError::Empty),
        (true, true) => Ok(c),
        _ => Err(TrainError::OneClass),
    }
}

/// Row `i` of the feature matrix (lengths are validated before this is called).
fn row<'a>(s: &Samples<'a>, i: usize) -> &'a [f64] {
    &s.x[i * s.dim..(i + 1) * s.dim]
}

/// `θ = (β, b)`: returns `b + β·x_i`.
fn logit_at(s: &Samples<'_>, theta: &[f64], i: usize) -> f64 {
    theta[s.dim] + row(s, i).iter().zip(theta).map(|(x, w)| x * w).sum::<f64>()
}

/// The penalised objective `F(θ) = Σ c_i ℓ(z_i, y_i) + (λ/2)‖β‖²`.
fn objective(s: &Samples<'_>, c: &[f64], theta: &[f64], l2: f64) -> f64 {
    let nll: f64 =
        c.iter().zip(s.y).enumerate().map(|(i, (&ci, &yi))| ci * log_loss(logit_at(s, theta, i), yi)).sum();
    nll + 0.5 * l2 * theta[..s.dim].iter().map(|w| w * w).sum::<f64>()
}

/// Gradient and (full, symmetric) Hessian of `F` at `θ`; the bias is the last coordinate.
fn gradient_hessian(s: &Samples<'_>, c: &[f64], theta: &[f64], l2: f64, g: &mut [f64], h: &mut [f64]) {
    let (d, m) = (s.dim, s.dim + 1);
    g.fill(0.0);
    h.fill(0.0);
    for (i, (&ci, &yi)) in c.iter().zip(s.y).enumerate() {
        let p = sigmoid(logit_at(s, theta, i));
        let r = ci * (p - if yi { 1.0 } else { 0.0 });
        let pc = p.clamp(P_CLAMP, 1.0 - P_CLAMP);
        let hw = ci * pc * (1.0 - pc);
        let x = row(s, i);
        for j in 0..d {
            g[j] += r * x[j];
            let hx = hw * x[j];
            for k in j..d {
                h[j * m + k] += hx * x[k];
            }
            h[j * m + d] += hx;
        }
        g[d] += r;
        h[d * m + d] += hw;
    }
    for j in 0..d {
        g[j] += l2 * theta[j];
        h[j * m + j] += l2;
    }
    for j in 0..m {
        for k in 0..j {
            h[j * m + k] = h[k * m + j];
        }
    }
}

/// In-place Cholesky `A = L Lᵀ` of a symmetric `m × m` matrix; `L` overwrites the lower triangle.
/// Fails if a pivot is not finite or not above `1e−12 ×` the largest diagonal entry.
fn cholesky(a: &mut [f64], m: usize) -> Result<(), TrainError> {
    let max_diag = (0..m).map(|j| a[j * m + j]).fold(0.0f64, f64::max);
    let floor = 1e-12 * max_diag;
    for j in 0..m {
        let d = a[j * m + j] - (0..j).map(|k| a[j * m + k] * a[j * m + k]).sum::<f64>();
        if !(d > floor && d.is_finite()) {
            return Err(TrainError::NotPositiveDefinite);
        }
        let ljj = d.sqrt();
        a[j * m + j] = ljj;
        for i in j + 1..m {
            let v = a[i * m + j] - (0..j).map(|k| a[i * m + k] * a[j * m + k]).sum::<f64>();
            a[i * m + j] = v / ljj;
        }
    }
    Ok(())
}

/// Solves `L Lᵀ x = b` in place given the factor from [`cholesky`].
fn solve_in_place(l: &[f64], m: usize, b: &mut [f64]) {
    for i in 0..m {
        let v = b[i] - (0..i).map(|k| l[i * m + k] * b[k]).sum::<f64>();
        b[i] = v / l[i * m + i];
    }
    for i in (0..m).rev() {
        let v = b[i] - (i + 1..m).map(|k| l[k * m + i] * b[k]).sum::<f64>();
        b[i] = v / l[i * m + i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::rng::{Draws, SplitMix64};

    /// SplitMix64 (the scenarios' generator): a tiny seeded generator for synthetic data.
    struct Rng(SplitMix64);

    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0.next_u64()
        }

        /// Uniform in (0, 1).
        fn uniform(&mut self) -> f64 {
            ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }

        /// Standard normal (Box–Muller).
        fn normal(&mut self) -> f64 {
            let (u, v) = (self.uniform(), self.uniform());
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        }
    }

    fn synthetic(seed: u64, n: usize, beta: &[f64], bias: f64) -> (Vec<f64>, Vec<bool>) {
        let mut rng = Rng(SplitMix64::new(seed));
        let (mut x, mut y) = (Vec::with_capacity(n * beta.len()), Vec::with_capacity(n));
        for _ in 0..n {
            let start = x.len();
            x.extend((0..beta.len()).map(|_| rng.normal()));
            let z = bias + x[start..].iter().zip(beta).map(|(a, b)| a * b).sum::<f64>();
            y.push(rng.uniform() < sigmoid(z));
        }
        (x, y)
    }

    fn fit(dim: usize, x: &[f64], y: &[bool], w: Option<&[f64]>, l2: f64) -> Result<Fit, TrainError> {
        fit_logistic(&Samples { dim, x, y, w }, &TrainConfig { l2, ..TrainConfig::default() })
    }

    #[test]
    fn recovers_known_weights() {
        let beta = [1.5, -2.0, 0.5, 0.0];
        let (x, y) = synthetic(7, 20_000, &beta, -0.7);
        let f = fit(4, &x, &y, None, 1.0).unwrap();
        assert!(f.converged, "{f:?}");
        assert!(f.iterations <= 12, "{f:?}");
        for (got, want) in f.weights.iter().zip(beta) {
            assert!((got - want).abs() < 0.1, "{f:?}");
        }
        assert!((f.bias + 0.7).abs() < 0.1, "{f:?}");
        assert!(f.loss.is_finite() && f.loss > 0.0);
        // The gradient is zero at the optimum: compare with a finite-difference of the objective.
        let c = vec![1.0; y.len()];
        let s = Samples { dim: 4, x: &x, y: &y, w: None };
        let mut theta: Vec<f64> = f.weights.clone();
        theta.push(f.bias);
        let (mut g, mut h) = (vec![0.0; 5], vec![0.0; 25]);
        gradient_hessian(&s, &c, &theta, 1.0, &mut g, &mut h);
        assert!(g.iter().all(|v| v.abs() < 1e-6), "{g:?}");
    }

    #[test]
    fn unit_weights_equal_no_weights() {
        let (x, y) = synthetic(3, 500, &[0.8, -0.3], 0.2);
        let ones = vec![1.0; y.len()];
        assert_eq!(fit(2, &x, &y, None, 1.0).unwrap(), fit(2, &x, &y, Some(&ones), 1.0).unwrap());
    }

    #[test]
    fn separable_data_stays_finite_with_l2() {
        let x: Vec<f64> = (0..200).map(|i| (i as f64 - 99.5) / 50.0).collect();
        let y: Vec<bool> = x.iter().map(|&v| v > 0.0).collect();
        for l2 in [1.0, 1e-3] {
            let f = fit(1, &x, &y, None, l2).unwrap();
            assert!(f.converged, "{f:?}");
            assert!(f.weights[0].is_finite() && f.weights[0] > 1.0 && f.bias.is_finite(), "{f:?}");
            assert!(f.bias.abs() < 1e-6 && f.loss.is_finite(), "{f:?}");
        }
        // Without a penalty the weights grow without bound, but nothing panics or turns NaN.
        let f = fit(1, &x, &y, None, 0.0).unwrap();
        assert!(!f.converged && f.weights[0] > 100.0, "{f:?}");
        assert!(f.weights[0].is_finite() && f.bias.is_finite() && f.loss.is_finite(), "{f:?}");
    }

    #[test]
    fn class_weights_shift_the_bias() {
        let (x, y) = synthetic(11, 2_000, &[1.0], 0.0);
        let plain = fit(1, &x, &y, None, 1.0).unwrap();
        let up: Vec<f64> = y.iter().map(|&l| if l { 4.0 } else { 1.0 }).collect();
        let down: Vec<f64> = y.iter().map(|&l| if l { 0.25 } else { 1.0 }).collect();
        let up = fit(1, &x, &y, Some(&up), 1.0).unwrap();
        let down = fit(1, &x, &y, Some(&down), 1.0).unwrap();
        // Weighting positives by k moves the intercept by about ln k.
        assert!((up.bias - plain.bias - 4f64.ln()).abs() < 0.15, "{plain:?} {up:?}");
        assert!((down.bias - plain.bias + 4f64.ln()).abs() < 0.15, "{plain:?} {down:?}");
        // Zero-weight rows are as good as absent.
        let mut w = vec![1.0; y.len()];
        w[..1000].fill(0.0);
        let dropped = fit(1, &x, &y, Some(&w), 1.0).unwrap();
        let tail = fit(1, &x[1000..], &y[1000..], None, 1.0).unwrap();
        assert!(
            (dropped.bias - tail.bias).abs() < 1e-9 && (dropped.weights[0] - tail.weights[0]).abs() < 1e-9
        );
    }

    #[test]
    fn two_point_example_by_hand() {
        // x = ±1 with labels 1/0 and λ = 1: by symmetry b = 0, and ∂F/∂β = 2σ(β) − 2 + β = 0,
        // i.e. β = 2σ(−β) ≈ 0.67484.
        let f = fit(1, &[1.0, -1.0], &[true, false], None, 1.0).unwrap();
        let b = f.weights[0];
        assert!(f.converged && f.bias.abs() < 1e-12, "{f:?}");
        assert!((b - 2.0 * sigmoid(-b)).abs() < 1e-12, "{f:?}");
        assert!((b - 0.67484).abs() < 1e-4, "{f:?}");
        // Mean penalised loss: (2·log(1 + e^(−β)) + β²/2) / 2.
        let want = (2.0 * (1.0 + (-b).exp()).ln() + 0.5 * b * b) / 2.0;
        assert!((f.loss - want).abs() < 1e-12, "{} vs {want}", f.loss);
    }

    #[test]
    fn symmetric_data_gives_zero_bias() {
        let x = [-2.0, -1.0, -0.5, 0.5, 1.0, 2.0, -1.0, 1.0];
        let y = [false, false, true, false, true, true, true, false];
        let f = fit(1, &x, &y, None, 1.0).unwrap();
        assert!(f.bias.abs() < 1e-12 && f.weights[0] > 0.0, "{f:?}");
    }

    #[test]
    fn intercept_only_model_fits_the_base_rate() {
        let y = [true, false, false, false];
        let f = fit(0, &[], &y, None, 1.0).unwrap();
        assert!(f.weights.is_empty() && (sigmoid(f.bias) - 0.25).abs() < 1e-12, "{f:?}");
        assert!(f.converged && f.iterations == 1, "{f:?}");
    }

    #[test]
    fn max_iter_bounds_the_steps() {
        let (x, y) = synthetic(5, 300, &[2.0, -1.0], 0.5);
        let cfg = TrainConfig { max_iter: 1, ..TrainConfig::default() };
        let f = fit_logistic(&Samples { dim: 2, x: &x, y: &y, w: None }, &cfg).unwrap();
        assert_eq!((f.iterations, f.converged), (1, false));
    }

    #[test]
    fn errors() {
        let x = [0.0, 1.0, 2.0];
        let y = [true, false, true];
        let good = TrainConfig::default();
        let s = |x, y, w| Samples { dim: 1, x, y, w };
        let run = |s: Samples<'_>, cfg: TrainConfig| fit_logistic(&s, &cfg).unwrap_err();
        assert_eq!(run(s(&[], &[], None), good), TrainError::Empty);
        assert_eq!(run(s(&x, &y, Some(&[0.0; 3])), good), TrainError::Empty);
        assert_eq!(run(s(&x[..2], &y, None), good), TrainError::LengthMismatch);
        assert_eq!(run(s(&x, &y, Some(&[1.0; 2])), good), TrainError::LengthMismatch);
        let huge = Samples { dim: usize::MAX, x: &x, y: &y, w: None };
        assert_eq!(run(huge, good), TrainError::BadConfig);
        let wide = Samples { dim: 2, x: &x, y: &y, w: None };
        assert_eq!(run(wide, good), TrainError::LengthMismatch);
        assert_eq!(run(s(&x, &[true; 3], None), good), TrainError::OneClass);
        assert_eq!(run(s(&x, &y, Some(&[1.0, 0.0, 1.0])), good), TrainError::OneClass);
        let nan = [0.0, f64::NAN, 1.0];
        assert_eq!(run(s(&nan, &y, None), good), TrainError::NotFinite { row: 1, col: 0 });
        let inf = [0.0, 1.0, 2.0, f64::INFINITY];
        let s2 = Samples { dim: 2, x: &inf, y: &y[..2], w: None };
        assert_eq!(run(s2, good), TrainError::NotFinite { row: 1, col: 1 });
        assert_eq!(run(s(&x, &y, Some(&[1.0, -1.0, 1.0])), good), TrainError::BadWeight { row: 1 });
        assert_eq!(run(s(&x, &y, Some(&[1.0, 1.0, f64::NAN])), good), TrainError::BadWeight { row: 2 });
        let big = [f64::MAX, f64::MAX, 1.0];
        assert_eq!(run(s(&x, &y, Some(&big)), good), TrainError::BadWeight { row: 1 });
        for bad in [
            TrainConfig { l2: -1.0, ..good },
            TrainConfig { l2: f64::NAN, ..good },
            TrainConfig { l2: f64::INFINITY, ..good },
            TrainConfig { max_iter: 0, ..good },
            TrainConfig { tol: f64::NAN, ..good },
            TrainConfig { tol: -1.0, ..good },
        ] {
            assert_eq!(run(s(&x, &y, None), bad), TrainError::BadConfig, "{bad:?}");
        }
        // Two identical columns and no penalty: the Hessian is singular.
        let dup: Vec<f64> = [0.3, -1.0, 2.0].iter().flat_map(|&v| [v, v]).collect();
        let s3 = Samples { dim: 2, x: &dup, y: &y, w: None };
        assert_eq!(run(s3, TrainConfig { l2: 0.0, ..good }), TrainError::NotPositiveDefinite);
        // ...which the penalty repairs.
        assert!(fit_logistic(&s3, &good).is_ok());
        let all = [
            TrainError::Empty,
            TrainError::LengthMismatch,
            TrainError::OneClass,
            TrainError::NotFinite { row: 0, col: 0 },
            TrainError::BadWeight { row: 0 },
            TrainError::BadConfig,
            TrainError::NotPositiveDefinite,
        ];
        let codes: std::collections::HashSet<_> = all.iter().map(TrainError::code).collect();
        assert_eq!(codes.len(), all.len());
        assert!(all.iter().all(|e| !e.to_string().is_empty()));
    }

    #[test]
    fn column_stats_mean_and_population_std() {
        // Columns: [1, 2, 3, 4] (mean 2.5, std √1.25), constant 7, [0, 0, 0, 2] (mean 0.5, std √0.75).
        let x = [1.0, 7.0, 0.0, 2.0, 7.0, 0.0, 3.0, 7.0, 0.0, 4.0, 7.0, 2.0];
        let (mean, scale) = column_stats(3, &x);
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(p, q)| (p - q).abs() < 1e-12);
        assert!(close(&mean, &[2.5, 7.0, 0.5]), "{mean:?}");
        assert!(close(&scale, &[1.25f64.sqrt(), 1.0, 0.75f64.sqrt()]), "{scale:?}");
        assert_eq!(column_stats(2, &[]), (vec![0.0; 2], vec![1.0; 2]));
        assert_eq!(column_stats(0, &[1.0]), (vec![], vec![]));
    }

    #[test]
    fn sigmoid_and_log_loss_are_stable() {
        assert_eq!(sigmoid(0.0), 0.5);
        assert_eq!(sigmoid(800.0), 1.0);
        assert_eq!(sigmoid(-800.0), 0.0);
        assert!((sigmoid(2.0) + sigmoid(-2.0) - 1.0).abs() < 1e-15);
        assert_eq!(log_loss(1000.0, false), 1000.0);
        assert_eq!(log_loss(-1000.0, true), 1000.0);
        assert!(log_loss(1000.0, true) >= 0.0 && log_loss(1000.0, true) < 1e-300);
        assert!((log_loss(0.0, true) - 2f64.ln()).abs() < 1e-15);
        assert!((log_loss(40.0, true) - (-40f64).exp()).abs() < 1e-30);
    }
}
