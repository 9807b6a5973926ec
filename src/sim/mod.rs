//! Simulation: scenario traces with ground-truth switches, replay through a real engine, and
//! the evaluation that compares arming policies on them.
//!
//! - [`scenario`]: the generator: multi-stream traces whose switches have documented causes.
//! - [`replay`]: one trace through a real [`Engine`](crate::engine::Engine) and policy, on a
//!   manual clock, with a simulated application that subscribes, fetches and re-reads.
//! - [`eval`]: training the predictor from a trace and reporting each policy's results.
//! - [`metrics`]: precision, recall, PR-AUC, Brier.

pub mod eval;
pub mod metrics;
pub mod replay;
pub mod scenario;
