//! Scripted scenarios: the world a scenario file describes, run through real engines under
//! each arming policy. `harmonize demo` and `harmonize sim` run them (the CLI reads the file,
//! prints the report and draws the plot); the choices (time model, threads, what the numbers
//! mean) are in `docs/demo.md`.
//!
//! Where [`crate::scenario`] generates random incidents with ground truth for training and one
//! recipient's replay, a scripted scenario says what happens when, to several recipients at
//! once:
//!
//! - [`scenario`]: the scenario (schema, defaults, validation);
//! - [`world`]: the scenario rendered into every stream's log;
//! - [`lockstep`]: one run: engines, feed threads, the simulated application.

pub mod lockstep;
pub mod scenario;
pub mod world;

/// An arming policy a scripted run can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyKind {
    /// The predictor with the shipped default model (preset from the scenario).
    Predictor,
    /// Never stage: every switch is cold.
    Never,
    /// Always stage every candidate.
    Always,
    /// Stage what operators and the application say: announced streams and the switchback
    /// target (`ManualStage`).
    Manual,
}

impl PolicyKind {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Predictor => "predictor",
            PolicyKind::Never => "never",
            PolicyKind::Always => "always",
            PolicyKind::Manual => "manual",
        }
    }
}
