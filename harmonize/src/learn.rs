//! `harmonize eval --leave-one-out`, `--plot-online` and `--reliability`: how the predictor
//! does on a family of switches it was not trained on, offline and with the online mode, and
//! how well its probabilities are calibrated.

use std::path::Path;

use plotters::prelude::*;

use harmonizer_core::predict::policy::default_model;
use harmonizer_core::predict::Preset;
use harmonizer_sim::eval::Report;
use harmonizer_sim::lofo::{
    leave_one_out, online_learning, run_model, trace_of, Family, FamilyScore, LofoRow,
};
use harmonizer_sim::scenario::ScenarioParams;

const SEC: f64 = 1e9;
const FONT: &str = "sans-serif";

fn pct(a: usize, b: usize) -> String {
    if b == 0 {
        String::from("–")
    } else {
        format!("{}/{} ({:.0}%)", a, b, 100.0 * a as f64 / b as f64)
    }
}

/// Runs leave-one-family-out for `families`; prints progress to standard error.
pub fn run_lofo(
    families: &[Family],
    train: &ScenarioParams,
    test: &ScenarioParams,
) -> Result<Vec<LofoRow>, String> {
    let mut rows = Vec::new();
    for &f in families {
        let t0 = std::time::Instant::now();
        let r = leave_one_out(f, train, test, Preset::Aggressive, online_learning())
            .map_err(|e| format!("leaving out {}: {e}", f.name()))?;
        eprintln!(
            "left out {}: trained and replayed 4 times in {:.1} s",
            f.name(),
            t0.elapsed().as_secs_f64()
        );
        rows.push(r);
    }
    Ok(rows)
}

/// The leave-one-family-out table.
pub fn lofo_table(rows: &[LofoRow]) -> String {
    let mut s = String::from(
        "Leave one family out: a model trained on ScenarioParams::train() without the family, the aggressive preset.\n\
         Cells: the family's predictable switches made seamless, all of them / after its first occurrence; duty.\n\n",
    );
    s.push_str(&format!(
        "{:<12} | {:>16} {:>16} {:>6} | {:>16} {:>16} {:>6} || {:>16} {:>16} {:>6} | {:>16} {:>16} {:>6}\n",
        "family",
        "test: offline",
        "after first",
        "duty",
        "test: online",
        "after first",
        "duty",
        "alone: offline",
        "after first",
        "duty",
        "alone: online",
        "after first",
        "duty"
    ));
    let cell = |f: &FamilyScore| {
        format!(
            "{:>16} {:>16} {:>5.1}%",
            pct(f.seamless, f.predictable),
            pct(f.seamless_after_first, f.after_first),
            100.0 * f.duty
        )
    };
    for r in rows {
        s.push_str(&format!(
            "{:<12} | {} | {} || {} | {}\n",
            r.family.name(),
            cell(&r.mixed.0),
            cell(&r.mixed.1),
            cell(&r.only.0),
            cell(&r.only.1)
        ));
    }
    s.push_str(
        "\"test\": the held-out test trace (every family); \"alone\": the same seed with only this family.\n\
         Every predictable switch of the test trace, offline / online:\n",
    );
    for r in rows {
        s.push_str(&format!(
            "  without {:<12} {} / {}\n",
            r.family.name(),
            pct(r.mixed.0.all_seamless, r.mixed.0.all_predictable),
            pct(r.mixed.1.all_seamless, r.mixed.1.all_predictable)
        ));
    }
    s
}

/// The leave-one-family-out rows as JSON: `{"families": [{"family", "test": {"offline": {...},
/// "online": {...}}, "alone": {...}}]}`, each score with `predictable`, `seamless`,
/// `after_first`, `seamless_after_first`, `all_predictable`, `all_seamless`, `duty`.
pub fn lofo_json(rows: &[LofoRow]) -> Result<String, String> {
    let score = |f: &FamilyScore| {
        serde_json::json!({
            "predictable": f.predictable,
            "seamless": f.seamless,
            "after_first": f.after_first,
            "seamless_after_first": f.seamless_after_first,
            "all_predictable": f.all_predictable,
            "all_seamless": f.all_seamless,
            "duty": f.duty,
        })
    };
    let families: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "family": r.family.name(),
                "test": {"offline": score(&r.mixed.0), "online": score(&r.mixed.1)},
                "alone": {"offline": score(&r.only.0), "online": score(&r.only.1)},
            })
        })
        .collect();
    let mut s = serde_json::to_string_pretty(&serde_json::json!({ "families": families }))
        .map_err(|e| format!("json: {e}"))?;
    s.push('\n');
    Ok(s)
}

/// `--plot-online FILE`: on the trace of `test` with `family` alone, the share of its
/// predictable switches made seamless so far, over time: the shipped model and the model
/// trained without the family, each offline and online.
pub fn plot_online(
    path: &Path,
    family: Family,
    train: &ScenarioParams,
    test: &ScenarioParams,
) -> Result<String, String> {
    let trace = trace_of(&family.only(test)).map_err(|e| e.to_string())?;
    let lofo = harmonizer_sim::eval::train(
        &trace_of(&family.without(train)).map_err(|e| e.to_string())?,
        &harmonizer_sim::eval::TrainSettings::default(),
    )
    .map_err(|e| e.to_string())?
    .model;
    let shipped = default_model();
    let mut series = Vec::new();
    let mut summary = String::new();
    for (name, model, online) in [
        ("shipped model, offline", &shipped, None),
        ("shipped model, online", &shipped, Some(online_learning())),
        ("trained without it, offline", &lofo, None),
        ("trained without it, online", &lofo, Some(online_learning())),
    ] {
        let o = run_model(&trace, model, Preset::Aggressive, online).map_err(|e| e.to_string())?;
        let f = FamilyScore::of(&trace, &o, family);
        let mut done = 0usize;
        let mut good = 0usize;
        let pts: Vec<(f64, f64)> = f
            .timeline
            .iter()
            .map(|&(t, ok)| {
                done += 1;
                good += usize::from(ok);
                (t as f64 / SEC, good as f64 / done as f64)
            })
            .collect();
        summary.push_str(&format!(
            "  {:<28} {} seamless, after the first {}, duty {:.1}%\n",
            name,
            pct(f.seamless, f.predictable),
            pct(f.seamless_after_first, f.after_first),
            100.0 * f.duty
        ));
        series.push((name, pts));
    }
    let end = trace.duration_ns as f64 / SEC;
    let title = format!(
        "{} switches alone (seed {:#x}): share of predictable switches seamless so far",
        family.name(),
        test.seed
    );
    draw_lines(path, &title, "time, s", "seamless so far", (0.0, end), &series)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(summary)
}

/// `--reliability FILE`: each predictor row's reliability curve; the labels' horizon in the
/// axis title.
pub fn plot_reliability(path: &Path, rows: &[Report], horizon_ns: u64) -> Result<(), String> {
    let series: Vec<(&str, Vec<(f64, f64)>)> = rows
        .iter()
        .filter(|r| r.name.starts_with("predictor/"))
        .map(|r| {
            (
                r.name.as_str(),
                r.reliability.iter().filter(|b| b.n > 0).map(|b| (b.mean_prob, b.observed)).collect(),
            )
        })
        .collect();
    let mut all = series.clone();
    all.push(("perfect calibration", vec![(0.0, 0.0), (1.0, 1.0)]));
    draw_lines(
        path,
        "Reliability: mean predicted probability against the share that came true (ten bins)",
        &format!("predicted probability of a switch to the candidate within {} s", horizon_ns as f64 / 1e9),
        "share that switched",
        (0.0, 1.0),
        &all,
    )
    .map_err(|e| format!("{}: {e}", path.display()))
}

fn draw_lines(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    x: (f64, f64),
    series: &[(&str, Vec<(f64, f64)>)],
) -> Result<(), Box<dyn std::error::Error>> {
    const COLORS: [RGBColor; 6] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(127, 127, 127),
    ];
    let root = SVGBackend::new(path, (1100, 650)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 18))
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(x.0..x.1, 0.0..1.02)?;
    chart.configure_mesh().x_desc(x_label).y_desc(y_label).label_style((FONT, 13)).draw()?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 13))
        .draw()?;
    root.present()?;
    Ok(())
}
