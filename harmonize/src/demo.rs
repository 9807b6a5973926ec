//! `harmonize demo` and `harmonize sim`. Not built yet: issue 6.

use clap::Args;

/// `harmonize demo`.
#[derive(Args)]
pub struct DemoArgs {}

/// `harmonize sim`.
#[derive(Args)]
pub struct SimArgs {}

pub fn run_demo(_a: DemoArgs) -> Result<(), String> {
    Err("demo: not built yet".into())
}

pub fn run_sim(_a: SimArgs) -> Result<(), String> {
    Err("sim: not built yet".into())
}
