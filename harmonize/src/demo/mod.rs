//! `harmonize demo` and `harmonize sim`: the project's main job on a scenario, under each
//! arming policy, with a report (table or JSON) and an optional timeline plot.
//!
//! The simulator is `harmonizer_sim::scripted` (the scenario's schema and validation, its
//! world, the lockstep run through real engines); this is the command line around it:
//!
//! - [`file`](mod@file): the scenario file, TOML, read into the simulator's schema;
//! - [`report`]: the table and the JSON object;
//! - [`plot`]: the SVG timeline of one recipient.
//!
//! The choices (time model, threads, what the numbers mean) are in `docs/demo.md`.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub(crate) mod file;
mod plot;
pub(crate) mod report;
pub(crate) mod verify;

use harmonizer_sim::scripted::scenario::Scenario;
use harmonizer_sim::scripted::{lockstep, world, PolicyKind};

/// An arming policy, by its name on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PolicyArg {
    /// The predictor with the shipped default model (preset from the scenario).
    Predictor,
    /// Never stage: every switch is cold.
    Never,
    /// Always stage every candidate.
    Always,
    /// Stage announced streams and the switchback target only.
    Manual,
}

impl From<PolicyArg> for PolicyKind {
    fn from(p: PolicyArg) -> PolicyKind {
        match p {
            PolicyArg::Predictor => PolicyKind::Predictor,
            PolicyArg::Never => PolicyKind::Never,
            PolicyArg::Always => PolicyKind::Always,
            PolicyArg::Manual => PolicyKind::Manual,
        }
    }
}

/// Flags shared by `demo` and `sim`.
#[derive(Args, Debug)]
pub struct RunFlags {
    /// Print the report as one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Draw one recipient's timeline (probabilities, staging, flips, switches, stream rates) as
    /// an SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// The recipient to plot: its index, 0 for the first.
    #[arg(long, value_name = "N", default_value_t = 0)]
    plot_recipient: usize,
    /// Replace the scenario's seed (arrivals, jitter, losses, error flags, default salts).
    #[arg(long, value_name = "SEED")]
    seed: Option<u64>,
    /// Replace the scenario's number of recipients (1 to 1024).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    recipients: Option<u32>,
    /// The arming policies to run, in order: repeat the flag or give a comma list. Default:
    /// all three.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "POLICY")]
    policy: Vec<PolicyArg>,
    /// Write the audit trail: one JSON line per switch of every recipient under every policy
    /// (the engine's switch record, docs/verify.md, with a "policy" key first).
    #[arg(long, value_name = "FILE.jsonl")]
    audit: Option<PathBuf>,
    /// Write every recipient's position map at the end (content verification on:
    /// `engine.verify_records`): one JSON line per run, with its policy and recipient
    /// (docs/verify.md, "The exact position map").
    #[arg(long, value_name = "FILE.jsonl")]
    map: Option<PathBuf>,
    /// Report a dry run before each switch and count how often it said rightly whether the
    /// switch would be seamless (docs/verify.md, "The dry run").
    #[arg(long)]
    dry_run: bool,
}

const DEMO_HELP: &str = "\
Example:
  harmonize demo                               # the table: one row per arming policy
  harmonize demo --json                        # the same as one JSON object
  harmonize demo --plot demo.svg --plot-recipient 2

The embedded scenario is harmonize/scenarios/demo.toml; docs/demo.md explains the columns.";

const SIM_HELP: &str = "\
Example:
  harmonize sim --scenario harmonize/scenarios/demo.toml          # the same as `harmonize demo`
  harmonize sim --scenario harmonize/scenarios/rollout.toml --seed 7 --policy predictor,never
  harmonize sim --scenario my.toml --recipients 4 --json

Every key of a scenario file is documented in docs/demo.md.";

/// `harmonize demo`.
#[derive(Args, Debug)]
#[command(after_help = DEMO_HELP)]
pub struct DemoArgs {
    #[command(flatten)]
    flags: RunFlags,
    /// Recipients of the fleet section under the table (the embedded fleet scenario: the same
    /// staging memory per engine and shared, starts with and without spreading); 0: no fleet
    /// section. Its canary groups are among the first 128.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(0..=1024))]
    fleet: u32,
}

/// `harmonize sim`.
#[derive(Args, Debug)]
#[command(after_help = SIM_HELP)]
pub struct SimArgs {
    /// The scenario file (TOML).
    #[arg(long, value_name = "FILE")]
    scenario: PathBuf,
    #[command(flatten)]
    flags: RunFlags,
}

/// `harmonize demo`: the embedded default scenario.
pub fn run_demo(a: DemoArgs) -> Result<(), String> {
    let sc = file::parse(file::DEMO_NAME, file::DEMO_TOML)?;
    run(sc, file::DEMO_NAME, &a.flags, a.fleet, true)
}

/// `harmonize sim --scenario FILE`.
pub fn run_sim(a: SimArgs) -> Result<(), String> {
    let file = a.scenario.display().to_string();
    let text = std::fs::read_to_string(&a.scenario).map_err(|e| format!("{file}: cannot read: {e}"))?;
    let sc = file::parse(&file, &text)?;
    run(sc, &file, &a.flags, 0, false)
}

/// `demo`: the demo's sections under the table (the fleet's when `fleet` is above 0, and
/// verification's).
fn run(mut sc: Scenario, file: &str, f: &RunFlags, fleet: u32, demo: bool) -> Result<(), String> {
    if let Some(seed) = f.seed {
        sc.seed = seed;
    }
    if let Some(n) = f.recipients {
        sc.recipients.count = n;
    }
    if f.dry_run {
        sc.engine.dry_run_switches = true;
    }
    sc.validate().map_err(|e| format!("{file}: {e}"))?;
    if f.plot.is_some() && f.plot_recipient >= sc.recipients.count as usize {
        return Err(format!(
            "--plot-recipient {}: the scenario has {} recipients (0 to {})",
            f.plot_recipient,
            sc.recipients.count,
            sc.recipients.count - 1
        ));
    }
    if let Some(path) = &f.plot {
        // Fail before the run, not after it, if the picture cannot be written.
        std::fs::File::create(path).map_err(|e| format!("--plot {}: cannot write: {e}", path.display()))?;
    }
    if let Some(path) = &f.audit {
        std::fs::File::create(path).map_err(|e| format!("--audit {}: cannot write: {e}", path.display()))?;
    }
    if let Some(path) = &f.map {
        std::fs::File::create(path).map_err(|e| format!("--map {}: cannot write: {e}", path.display()))?;
    }
    let mut policies: Vec<PolicyKind> = Vec::new();
    for p in if f.policy.is_empty() {
        &[PolicyArg::Predictor, PolicyArg::Never, PolicyArg::Always][..]
    } else {
        &f.policy
    } {
        let p = PolicyKind::from(*p);
        if !policies.contains(&p) {
            policies.push(p);
        }
    }
    let world = world::render(&sc);
    // The plotted run: the predictor's if it runs (it has probabilities), else the first.
    let plotted = policies.iter().position(|p| *p == PolicyKind::Predictor).unwrap_or(0);
    let bar = progress_bar(policies.len() as u64 * (world.duration_ns / 1_000_000));
    let mut passes = Vec::with_capacity(policies.len());
    for (i, &kind) in policies.iter().enumerate() {
        bar.set_message(kind.name());
        let base = i as u64 * (world.duration_ns / 1_000_000);
        let dur_ms = world.duration_ns / 1_000_000;
        let plot_r = (f.plot.is_some() && i == plotted).then_some(f.plot_recipient);
        let pass = lockstep::run(&sc, &world, kind, plot_r, &mut |t_ns| {
            bar.set_position(base + (t_ns / 1_000_000).min(dur_ms))
        })?;
        passes.push(pass);
    }
    bar.finish_and_clear();
    let rep = report::Report::new(&sc, file, &world, &passes);
    let fleet = if fleet > 0 { Some(crate::fleet::demo_section(fleet)?) } else { None };
    let verification = if demo { Some(verify::demo_section()?) } else { None };
    if f.json {
        if fleet.is_none() && verification.is_none() {
            println!("{}", rep.to_json()?);
        } else {
            /// The report's keys in their order, then the demo's sections.
            #[derive(serde::Serialize)]
            struct WithSections<'a> {
                #[serde(flatten)]
                report: &'a report::Report,
                #[serde(skip_serializing_if = "Option::is_none")]
                fleet: Option<&'a crate::fleet::Report>,
                #[serde(skip_serializing_if = "Option::is_none")]
                verification: Option<&'a verify::Section>,
            }
            let v = WithSections { report: &rep, fleet: fleet.as_ref(), verification: verification.as_ref() };
            println!("{}", serde_json::to_string_pretty(&v).map_err(|e| format!("json: {e}"))?);
        }
    } else {
        print!("{}", rep.to_table());
        if let Some(fl) = &fleet {
            print!("{}", crate::fleet::demo_table(fl));
        }
        if let Some(v) = &verification {
            print!("{}", verify::demo_table(v));
        }
    }
    if let Some(path) = &f.audit {
        let mut out = String::new();
        for pass in &passes {
            for r in &pass.recipients {
                for s in &r.switches {
                    let mut line = String::new();
                    s.record.write_json(&mut line).map_err(|e| format!("--audit: {e}"))?;
                    // `{"policy":"..",` then the record's own keys.
                    out.push_str(&format!("{{\"policy\":\"{}\",{}", pass.policy.name(), &line[1..]));
                }
            }
        }
        std::fs::write(path, out).map_err(|e| format!("--audit {}: cannot write: {e}", path.display()))?;
    }
    if let Some(path) = &f.map {
        let mut out = String::new();
        for pass in &passes {
            for r in &pass.recipients {
                for m in &r.map {
                    out.push_str(&format!(
                        "{{\"policy\":\"{}\",\"recipient\":{},\"from\":{},\"to\":{},\"origin\":{},\"first_seq\":{},\"from_pos\":{},\"to_pos\":{},\"from_stride\":{},\"to_stride\":{},\"len\":{}}}\n",
                        pass.policy.name(),
                        r.id,
                        m.from,
                        m.to,
                        m.origin,
                        m.first_seq,
                        m.from_pos,
                        m.to_pos,
                        m.from_stride,
                        m.to_stride,
                        m.len
                    ));
                }
            }
        }
        std::fs::write(path, out).map_err(|e| format!("--map {}: cannot write: {e}", path.display()))?;
    }
    if let Some(path) = &f.plot {
        let pass = &passes[plotted];
        if let Some(tl) = &pass.timeline {
            plot::draw(path, &sc, &world, pass.policy, tl)
                .map_err(|e| format!("--plot {}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// A progress bar on stderr when stderr is a terminal; hidden otherwise.
pub(crate) fn progress_bar(len: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>9} [{bar:40}] {percent:>3}% scenario time, {elapsed} wall")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
