//! `harmonize`: harmonizer's command-line tool.
//!
//! - `demo`: the project's main job, on an embedded default scenario;
//! - `sim`: the same on a scenario file;
//! - `fleet`: many recipients in one process, their staging memory given four ways;
//! - `trace`, `train`, `eval`: the predictor's tools;
//! - `flip encode`, `flip decode`: craft and read flip records; `flip send` writes one into
//!   real streams;
//! - `follow`, `publish`: a recipient on real Redis Streams or NATS JetStream streams, and a
//!   test publisher for them.
//!
//! Every subcommand returns `Err(message)` on failure; `main` prints it on one line, prefixed
//! with `error: `, and exits with status 1. A usage error (bad flag or value) is clap's message
//! folded onto one line, status 2.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod codec;
mod connect;
mod connector_bench;
mod demo;
mod fleet;
mod flip;
mod history;
mod learn;
mod predictor;

#[derive(Parser)]
#[command(name = "harmonize", version, about = "harmonizer's command-line tool", after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the demo scenario: several recipients, three arming policies, one table.
    Demo(demo::DemoArgs),
    /// Run a scenario described in a TOML file.
    Sim(demo::SimArgs),
    /// Many recipients in one process: the fleet's staging memory per engine, shared, and
    /// shared with spread starts, side by side.
    Fleet(fleet::FleetArgs),
    /// Write a generated history to train on.
    Trace(predictor::TraceArgs),
    /// Train a predictor model from a history.
    Train(predictor::TrainArgs),
    /// Evaluate a model and the baselines on the held-out test trace.
    Eval(predictor::EvalArgs),
    /// Encode, decode or send flip records.
    #[command(subcommand, after_help = FLIP_EXAMPLES)]
    Flip(flip::FlipCmd),
    /// Run a recipient on real streams (Redis Streams or NATS JetStream): a live table of
    /// deliveries, switches, stalls and notices.
    #[command(after_help = FOLLOW_EXAMPLES)]
    Follow(connect::FollowArgs),
    /// Write the same logical events into several real streams, with delays, jitter, outages,
    /// holes and flips: a test feed for `follow`.
    #[command(after_help = PUBLISH_EXAMPLES)]
    Publish(connect::PublishArgs),
    /// Measure a connector against a plain client of the same server: events/s, idle CPU, and
    /// the switch stall staged and cold.
    ConnectorBench(connector_bench::BenchArgs),
}

const FOLLOW_EXAMPLES: &str = "\
Example:
  harmonize follow --redis redis://127.0.0.1:6379/ --streams feed-a,feed-b
  harmonize follow --nats nats://127.0.0.1:4222 --streams feed-a,feed-b --from start --events 10000 --json";

const PUBLISH_EXAMPLES: &str = "\
Example:
  harmonize publish --redis redis://127.0.0.1:6379/ --streams feed-a,feed-b --events 10000 --rate 2000 \\
      --delay feed-b=5 --hole feed-a=500..510 --flip 4000=announce:1:1 --flip 5000=switch:1:2";

const EXAMPLES: &str = "\
Example:
  harmonize demo
  harmonize demo --json --plot timeline.svg";

const FLIP_EXAMPLES: &str = "\
Example:
  harmonize flip encode --action switch --id 7 --target 2
  harmonize flip decode 0101000002000000070000000000000000000000000000000000000000000000000000000000000000000000000000000000e77affe9";

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            eprintln!("{}", one_line(&e.render().to_string()));
            return ExitCode::from(2);
        }
    };
    let result = match cli.cmd {
        Cmd::Demo(a) => demo::run_demo(a),
        Cmd::Sim(a) => demo::run_sim(a),
        Cmd::Fleet(a) => fleet::run(a),
        Cmd::Trace(a) => predictor::run_trace(a),
        Cmd::Train(a) => predictor::run_train(a),
        Cmd::Eval(a) => predictor::run_eval(a),
        Cmd::Flip(c) => flip::run(c),
        Cmd::Follow(a) => connect::run_follow(a),
        Cmd::Publish(a) => connect::run_publish(a),
        Cmd::ConnectorBench(a) => connector_bench::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Clap's usage error on one line: its message and any detail lines (possible values, tips),
/// without the usage block and the "try --help" footer.
fn one_line(rendered: &str) -> String {
    let mut parts = Vec::new();
    for line in rendered.lines().map(str::trim) {
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if !line.is_empty() {
            parts.push(line);
        }
    }
    parts.join(" ")
}
