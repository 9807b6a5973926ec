//! The demo's verification section (issue 17, docs/verify.md): the embedded scenario
//! `harmonize/scenarios/verify.toml`, where an operator moves every recipient onto a pipeline
//! that carries other data, run without and with content verification.

use std::fmt::Write as _;

use harmonizer_sim::scripted::{lockstep, world, PolicyKind};
use serde::Serialize;

use super::file;

/// The embedded scenario.
pub const VERIFY_TOML: &str = include_str!("../../scenarios/verify.toml");
/// Where it comes from, for messages.
pub const VERIFY_NAME: &str = "harmonize/scenarios/verify.toml (embedded)";

/// One run of the section.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Run {
    /// Content verification on (and `block_mismatched`, as the file says).
    pub verification: bool,
    /// Switches made, all recipients.
    pub switches: u64,
    /// Switches refused after a mismatch.
    pub switches_blocked: u64,
    /// Events verified across overlaps.
    pub verified: u64,
    /// Events whose two copies differed.
    pub mismatches: u64,
    /// Events delivered with a payload that is not the event's own.
    pub corrupt: u64,
    /// Pairs of the engines' position maps checked against the scenario's own positions.
    pub map_pairs: u64,
    /// Of those, wrong ones (must be 0).
    pub map_wrong: u64,
    /// Runs the maps began (72 bytes each).
    pub map_runs: u64,
    /// Lost, duplicated or out-of-order events (must be 0).
    pub lost: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
}

/// The section.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Section {
    pub scenario: String,
    pub recipients: u32,
    pub policy: &'static str,
    pub runs: Vec<Run>,
}

/// Runs the embedded scenario under the manual policy without and with verification.
pub(crate) fn demo_section() -> Result<Section, String> {
    let base = file::parse(VERIFY_NAME, VERIFY_TOML)?;
    let mut runs = Vec::new();
    for verification in [false, true] {
        let mut sc = base.clone();
        if !verification {
            sc.engine.verify_records = 0;
            sc.engine.block_mismatched = false;
        }
        sc.validate().map_err(|e| format!("{VERIFY_NAME}: {e}"))?;
        let w = world::render(&sc);
        let pass = lockstep::run(&sc, &w, PolicyKind::Manual, None, &mut |_| {})?;
        let sum = |f: &dyn Fn(&lockstep::RecipientOutcome) -> u64| pass.recipients.iter().map(f).sum::<u64>();
        runs.push(Run {
            verification,
            switches: sum(&|r| r.switches.len() as u64),
            switches_blocked: sum(&|r| r.stats.switches_blocked),
            verified: sum(&|r| r.stats.verified),
            mismatches: sum(&|r| r.stats.mismatches),
            corrupt: sum(&|r| r.corrupt),
            map_pairs: sum(&|r| r.map_pairs),
            map_wrong: sum(&|r| r.map_wrong),
            map_runs: sum(&|r| r.stats.map_runs),
            lost: sum(&|r| r.lost),
            duplicates: sum(&|r| r.duplicates),
            out_of_order: sum(&|r| r.out_of_order),
        });
    }
    Ok(Section {
        scenario: base.name.clone(),
        recipients: base.recipients.count,
        policy: PolicyKind::Manual.name(),
        runs,
    })
}

/// The section as lines under the demo's table.
pub(crate) fn demo_table(s: &Section) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nverified switches ({} recipients, scenario \"{}\", policy {}; a rollout onto a pipeline that carries other data for 6 s):",
        s.recipients, s.scenario, s.policy
    );
    for r in &s.runs {
        let _ = if r.verification {
            writeln!(
                out,
                "  with verification: {} mismatches reported, {} switches refused, {} made once the stream agreed again; {} corrupt events delivered ({} verified)\n    position map: {} pairs in {} runs ({} bytes), checked against the scenario's own positions: {} wrong",
                r.mismatches,
                r.switches_blocked,
                r.switches,
                r.corrupt,
                r.verified,
                r.map_pairs,
                r.map_runs,
                r.map_runs * harmonizer_core::engine::MAP_RUN_BYTES as u64,
                r.map_wrong
            )
        } else {
            writeln!(
                out,
                "  without verification: {} switches made, {} corrupt events delivered",
                r.switches, r.corrupt
            )
        };
    }
    let bad: u64 = s.runs.iter().map(|r| r.lost + r.duplicates + r.out_of_order).sum();
    let _ = writeln!(out, "  lost, duplicated or out of order events in these runs: {bad}");
    out
}
