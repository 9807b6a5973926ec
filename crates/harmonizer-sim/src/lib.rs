//! harmonizer's offline work, kept out of the library that C and Rust users link: scenario
//! traces with ground-truth switches, replay through a real engine, training the predictor,
//! and the evaluation that compares arming policies. The `harmonize` CLI and the tests use it.
//!
//! - [`scenario`]: the generator: multi-stream traces whose switches have documented causes.
//! - [`replay`]: one trace through a real [`Engine`](harmonizer_core::engine::Engine) and policy, on a
//!   manual clock, with a simulated application that subscribes, fetches and re-reads.
//! - [`eval`]: training the predictor from a trace and reporting each policy's results.
//! - [`tracefile`]: recorded multi-stream traces (JSON lines): read, checked, written.
//! - [`train`]: the logistic fit (Newton/IRLS with an L2 penalty) that training uses.
//! - [`metrics`]: precision, recall, PR-AUC, Brier.
//! - [`json`]: the model writer (the library reads models; training writes them) and the JSON
//!   writing helpers.
//! - [`scripted`]: scenarios written by hand (what happens when, to several recipients), run
//!   in lockstep through real engines under each arming policy: `harmonize demo` and `sim`.

pub mod eval;
#[doc(hidden)]
pub mod fuzzing;
pub mod json;
pub mod lofo;
pub mod metrics;
pub mod replay;
pub mod scenario;
pub mod scripted;
pub mod tracefile;
pub mod train;
