//! `harmonize flip encode` and `harmonize flip decode`. Not built yet: issue 6.

use clap::Subcommand;

/// `harmonize flip ...`.
#[derive(Subcommand)]
pub enum FlipCmd {
    /// Encode a flip record.
    Encode,
    /// Decode a flip record.
    Decode,
}

pub fn run(_c: FlipCmd) -> Result<(), String> {
    Err("flip: not built yet".into())
}
