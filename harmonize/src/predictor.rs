//! `harmonize trace`, `train` and `eval`. Not built yet: issue 6.

use clap::Args;

/// `harmonize trace`.
#[derive(Args)]
pub struct TraceArgs {}

/// `harmonize train`.
#[derive(Args)]
pub struct TrainArgs {}

/// `harmonize eval`.
#[derive(Args)]
pub struct EvalArgs {}

pub fn run_trace(_a: TraceArgs) -> Result<(), String> {
    Err("trace: not built yet".into())
}

pub fn run_train(_a: TrainArgs) -> Result<(), String> {
    Err("train: not built yet".into())
}

pub fn run_eval(_a: EvalArgs) -> Result<(), String> {
    Err("eval: not built yet".into())
}
