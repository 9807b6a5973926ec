//! What the training and held-out traces hold: records, flips, switches by cause, the
//! predictable share, and how long generating each took.
//!
//! `cargo run --release -p harmonizer-sim --example scenario_summary`

use harmonizer_sim::scenario::{generate, Cause, ScenarioParams};

fn main() {
    for (name, p) in [("train", ScenarioParams::train()), ("test", ScenarioParams::test())] {
        let start = std::time::Instant::now();
        let t = match generate(&p) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{name}: {e}");
                std::process::exit(1);
            }
        };
        let took = start.elapsed();
        let by_cause: Vec<String> = Cause::ALL
            .iter()
            .map(|&c| format!("{}={}", c.name(), t.switches.iter().filter(|s| s.cause == c).count()))
            .collect();
        let predictable = t.switches.iter().filter(|s| s.predictable).count();
        println!(
            "{name}: {:?}, {} records, {} logical events, {} flips, {} switches ({}), predictable {}/{} = {:.1}%, {} episodes",
            took,
            t.records(),
            t.logical_events,
            t.flips.len(),
            t.switches.len(),
            by_cause.join(" "),
            predictable,
            t.switches.len(),
            100.0 * predictable as f64 / t.switches.len().max(1) as f64,
            t.episodes.len()
        );
    }
}
