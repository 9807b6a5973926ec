//! The predictor's tools until the `harmonize` CLI takes them over: train the default model and
//! evaluate it against the baselines on the held-out test trace.
//!
//! ```text
//! cargo run --release --example predictor -- train [-o models/default.json] [--l2 1.0]
//! cargo run --release --example predictor -- eval [--model FILE] [--validation | --seed N]
//! ```
//!
//! `train` generates the training trace (`ScenarioParams::train()`), fits the model and writes
//! it; `models/default.json`, shipped in the crate, is its output with the defaults. `eval`
//! generates the held-out test trace (another seed; `--validation` takes the development trace
//! instead), tunes the phi rule's thresholds on the training trace (where the predictor's own
//! choices were made), and replays the test trace once per policy, printing one row each.

use std::process::ExitCode;
use std::time::Instant;

use harmonizer::engine::{AlwaysStage, NeverStage};
use harmonizer::predict::policy::{default_model, Predictor, PredictorConfig, Preset};
use harmonizer::predict::{Model, PhiRule};
use harmonizer::sim::eval::{evaluate, train, tune_phi, Report, TrainSettings};
use harmonizer::sim::replay::ReplayConfig;
use harmonizer::sim::scenario::{generate, ScenarioParams, Trace};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("train") => cmd_train(&args[1..]),
        Some("eval") => cmd_eval(&args[1..]),
        _ => {
            Err("usage: predictor train [-o FILE] [--l2 X] | predictor eval [--model FILE] [--validation | --seed N]"
                .into())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn flag<'a>(args: &'a [String], names: &[&str]) -> Option<&'a str> {
    args.iter().position(|a| names.contains(&a.as_str())).and_then(|i| args.get(i + 1)).map(String::as_str)
}

fn trace(p: &ScenarioParams, what: &str) -> Result<Trace, String> {
    let t0 = Instant::now();
    let t = generate(p).map_err(|e| format!("{what} trace: {e}"))?;
    let predictable = t.switches.iter().filter(|w| w.predictable).count();
    eprintln!(
        "{what} trace: seed {:#x}, {} s, {} records, {} switches ({} predictable), generated in {:.2} s",
        p.seed,
        p.duration_ns / 1_000_000_000,
        t.records(),
        t.switches.len(),
        predictable,
        t0.elapsed().as_secs_f64()
    );
    Ok(t)
}

fn cmd_train(args: &[String]) -> Result<(), String> {
    let out = flag(args, &["-o", "--output"]).unwrap_or("models/default.json");
    let mut s = TrainSettings { trained_on: String::from("ScenarioParams::train()"), ..Default::default() };
    if let Some(l2) = flag(args, &["--l2"]) {
        s.irls.l2 = l2.parse().map_err(|_| format!("--l2: not a number: {l2}"))?;
    }
    let t = trace(&ScenarioParams::train(), "training")?;
    let t0 = Instant::now();
    let trained = train(&t, &s).map_err(|e| format!("training failed: {e}"))?;
    eprintln!(
        "fitted {} snapshots ({} positive) in {} IRLS iterations, {:.2} s; held out {}: PR-AUC {:.3}, Brier {:.4}",
        trained.fitted,
        trained.positives,
        trained.iterations,
        t0.elapsed().as_secs_f64(),
        trained.held_out,
        trained.held_out_pr_auc,
        trained.held_out_brier
    );
    std::fs::write(out, trained.model.to_json()).map_err(|e| format!("{out}: {e}"))?;
    eprintln!("wrote {out}");
    Ok(())
}

fn cmd_eval(args: &[String]) -> Result<(), String> {
    let model = match flag(args, &["--model", "-m"]) {
        Some(path) => Model::load(path.as_ref()).map_err(|e| format!("{path}: {e}"))?,
        None => default_model(),
    };
    let train_trace = trace(&ScenarioParams::train(), "training")?;
    let test = if args.iter().any(|a| a == "--validation") {
        trace(&ScenarioParams::validation(), "validation")?
    } else if let Some(seed) = flag(args, &["--seed"]) {
        let seed = parse_seed(seed)?;
        trace(&ScenarioParams { seed, ..ScenarioParams::test() }, "test (other seed)")?
    } else {
        trace(&ScenarioParams::test(), "test")?
    };
    let cfg = ReplayConfig { horizon_ns: model.horizon_ns, ..Default::default() };
    let t0 = Instant::now();
    let (phi_t, err_t) = tune_phi(&train_trace, &cfg, 0.2).map_err(|e| e.to_string())?;
    eprintln!(
        "phi rule tuned on the training trace: phi >= {phi_t}, errors >= {err_t} ({:.1} s)",
        t0.elapsed().as_secs_f64()
    );
    let id = test.recipient_id;
    let mut rows = Vec::new();
    let mut run = |name: String, r: Result<Report, _>| -> Result<(), String> {
        rows.push(r.map_err(|e: harmonizer::engine::EngineError| format!("{name}: {e}"))?);
        Ok(())
    };
    let predictor = |c: PredictorConfig| Predictor::new(id, model.clone(), c).map_err(|e| e.to_string());
    for preset in [Preset::Conservative, Preset::Balanced, Preset::Aggressive] {
        let name = format!("predictor/{preset:?}").to_lowercase();
        run(name.clone(), evaluate(&test, name, predictor(PredictorConfig::preset(preset))?, &cfg))?;
    }
    let mut c = PredictorConfig::preset(Preset::Aggressive);
    c.adaptive.target_duty = Some(0.10);
    run("duty".into(), evaluate(&test, "predictor/duty10%", predictor(c)?, &cfg))?;
    run("never".into(), evaluate(&test, "never", NeverStage, &cfg))?;
    run("always".into(), evaluate(&test, "always", AlwaysStage, &cfg))?;
    run("phi".into(), evaluate(&test, "phi", PhiRule::new(phi_t, err_t), &cfg))?;
    print_table(&rows);
    Ok(())
}

fn parse_seed(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("--seed: not a number: {s}"))
}

fn print_table(rows: &[Report]) {
    println!(
        "{:<22} {:>9} {:>11} {:>15} {:>6} {:>10} {:>9} {:>7} {:>7} {:>7} {:>7} {:>5}",
        "policy",
        "switches",
        "seamless",
        "predictable ok",
        "duty",
        "staged B",
        "precision",
        "recall",
        "PR-AUC",
        "Brier",
        "stall99",
        "dup"
    );
    for r in rows {
        println!(
            "{:<22} {:>9} {:>5}/{:<3}{:>2.0}% {:>5}/{:<3}{:>5.1}% {:>5.1}% {:>10.0} {:>9.3} {:>7.3} {:>7.3} {:>7.4} {:>6.1}ms {:>5}",
            r.name,
            r.switches,
            r.seamless,
            r.happened,
            100.0 * r.seamless_rate(),
            r.seamless_predictable,
            r.predictable,
            100.0 * r.seamless_rate_predictable(),
            100.0 * r.duty_cycle,
            r.mean_staged_bytes,
            r.precision,
            r.recall,
            r.pr_auc,
            r.brier,
            r.stall_p99_ns as f64 / 1e6,
            r.duplicates + r.out_of_order,
        );
    }
}
