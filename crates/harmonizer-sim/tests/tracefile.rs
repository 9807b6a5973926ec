//! Issue 20: recorded traces. A generated trace written as a trace file reads back as the same
//! records, its ground truth comes back from the engine's own switches, and its replay reports
//! what the generated trace's does; malformed files are refused with the line and the reason.

use harmonizer_core::engine::AlwaysStage;
use harmonizer_core::predict::{Predictor, PredictorConfig, Preset};
use harmonizer_sim::eval::{evaluate, resolve_trace_file, trace_file_config};
use harmonizer_sim::replay::ReplayConfig;
use harmonizer_sim::scenario::{generate, ScenarioParams};
use harmonizer_sim::tracefile::{export, read, TraceFileError, MAX_LINE};

fn round_trip(seed: u64) {
    let trace = generate(&ScenarioParams::small(seed)).unwrap();
    let mut file = Vec::new();
    export(&trace, "test", &mut file).unwrap();
    let mut tf = read(&mut &file[..]).unwrap();
    assert!(tf.archive_complete);
    // The same records (flip payloads compared by content: the file stores each copy).
    assert_eq!(tf.trace.streams.len(), trace.streams.len());
    for (a, b) in tf.trace.streams.iter().zip(&trace.streams) {
        assert_eq!(a.len(), b.len(), "seed {seed}: records");
        for (x, y) in a.iter().zip(b) {
            assert!(x.arrival_ns == y.arrival_ns && x.header == y.header, "seed {seed}: {x:?} vs {y:?}");
            let payload = |t: &harmonizer_sim::scenario::Trace, i: u32| t.flips.get(i as usize).cloned();
            assert_eq!(
                payload(&tf.trace, x.flip),
                payload(&trace, y.flip),
                "seed {seed}: flip at {}",
                x.header.pos
            );
        }
    }
    assert_eq!((tf.trace.recipient_id, tf.trace.initial_stream), (trace.recipient_id, trace.initial_stream));
    assert_eq!(tf.trace.logical_events, trace.logical_events);
    let cfg = ReplayConfig { horizon_ns: 5_000_000_000, ..ReplayConfig::default() };
    resolve_trace_file(&mut tf, &cfg).unwrap();
    same_ground_truth(&tf.trace, &trace, &format!("seed {seed}"));
    // The same replay, the same report (the label-scored figures within the dating's slack).
    let p = || {
        Predictor::with_default_model(trace.recipient_id, PredictorConfig::preset(Preset::Aggressive))
            .unwrap()
    };
    let a = evaluate(&trace, "p", p(), &cfg).unwrap();
    let b = evaluate(&tf.trace, "p", p(), &cfg).unwrap();
    assert_eq!(
        (a.seamless, a.seamless_predictable, a.delivered, a.duty_cycle),
        (b.seamless, b.seamless_predictable, b.delivered, b.duty_cycle)
    );
    assert!((a.brier - b.brier).abs() < 1e-3 && (a.pr_auc - b.pr_auc).abs() < 0.02, "{a:?}\n{b:?}");
    assert_eq!(a.per_cause, b.per_cause);
    assert!(!a.per_cause.is_empty());
}

/// The ground truth read back from a file is the generator's: the same switches with the same
/// causes, predictable alike, each dated when its flip reached the recipient (the generator
/// dates a switch at its flip's `ts_ns`; the file's arrival clock is a few ms later), the
/// warning as far ahead.
fn same_ground_truth(
    got: &harmonizer_sim::scenario::Trace,
    want: &harmonizer_sim::scenario::Trace,
    what: &str,
) {
    assert_eq!(got.switches.len(), want.switches.len(), "{what}: switches");
    for (g, w) in got.switches.iter().zip(&want.switches) {
        assert_eq!(
            (g.flip_id, g.from, g.to, g.cause, g.predictable),
            (w.flip_id, w.from, w.to, w.cause, w.predictable),
            "{what}"
        );
        let late = g.at_ns.checked_sub(w.at_ns).unwrap_or_else(|| panic!("{what}: {g:?} before {w:?}"));
        assert!(late < 100_000_000, "{what}: {g:?} {late} ns after {w:?}");
        assert_eq!(g.at_ns - g.signal_ns, w.at_ns - w.signal_ns, "{what}: the warning's lead");
    }
}

/// A live recording stamps `ts_ns` in Unix time while `arrival_ns` counts from the recording's
/// start: the ground truth is dated on the arrival clock all the same, so the snapshots, taken
/// on it, are labelled (dated by `ts_ns`, every switch lay 56 years after the trace's end and
/// no snapshot was ever positive).
#[test]
fn a_trace_stamped_in_unix_time_is_labelled_on_its_arrival_clock() {
    const EPOCH_2026: u64 = 1_780_000_000_000_000_000;
    let trace = generate(&ScenarioParams::small(3)).unwrap();
    let mut file = Vec::new();
    export(&trace, "test", &mut file).unwrap();
    let text = String::from_utf8(file).unwrap();
    let mut shifted = String::new();
    for (i, line) in text.lines().enumerate() {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        if i > 0 {
            for key in ["ts_ns", "signal_ns"] {
                if let Some(t) = v[key].as_u64() {
                    v[key] = (t + EPOCH_2026).into();
                }
            }
        }
        shifted.push_str(&v.to_string());
        shifted.push('\n');
    }
    let mut tf = read(&mut shifted.as_bytes()).unwrap();
    let cfg = ReplayConfig { horizon_ns: 5_000_000_000, ..ReplayConfig::default() };
    resolve_trace_file(&mut tf, &cfg).unwrap();
    same_ground_truth(&tf.trace, &trace, "unix time");
    let p = || {
        Predictor::with_default_model(trace.recipient_id, PredictorConfig::preset(Preset::Aggressive))
            .unwrap()
    };
    let a = evaluate(&trace, "p", p(), &cfg).unwrap();
    let b = evaluate(&tf.trace, "p", p(), &cfg).unwrap();
    assert!(b.pr_auc > 0.2 && (a.pr_auc - b.pr_auc).abs() < 0.02, "{} vs {}", a.pr_auc, b.pr_auc);
    assert_eq!((a.seamless_predictable, a.predictable), (b.seamless_predictable, b.predictable));
}

#[test]
fn a_generated_trace_survives_the_file_and_replays_the_same() {
    for seed in [3, 4] {
        round_trip(seed);
    }
}

const HEADER: &str = r#"{"format":"harmonizer-trace","version":1,"streams":2,"recipient":7,"initial_stream":0,"archive":"stream","source":"t"}"#;

fn data(arrival: u64, stream: u32, seq: u64) -> String {
    format!(
        r#"{{"arrival_ns":{arrival},"stream":{stream},"pos":{seq},"origin":0,"seq":{seq},"ts_ns":{arrival},"kind":"data","flags":0,"len":8}}"#
    )
}

fn refused(text: &str) -> TraceFileError {
    read(&mut text.as_bytes()).err().unwrap_or_else(|| panic!("accepted: {text}"))
}

#[test]
fn malformed_trace_files_are_refused_with_line_and_reason() {
    let ok = format!("{HEADER}\n{}\n{}\n", data(10, 0, 1), data(12, 1, 1));
    let tf = read(&mut ok.as_bytes()).unwrap();
    assert!(!tf.archive_complete);
    assert_eq!(tf.trace.records(), 2);
    // A flip with a cause and a warning, and an unlabelled one.
    let flip = r#"{"arrival_ns":20,"stream":0,"pos":2,"origin":0,"seq":0,"ts_ns":20,"kind":"flip","flags":0,"len":49,"flip":{"action":"switch","id":9,"target":1,"selector":"cohort","basis_points":500,"salt":3},"cause":"rollout","signal_ns":5}"#;
    let tf = read(&mut format!("{ok}{flip}\n").as_bytes()).unwrap();
    assert_eq!(tf.flips.get(&9).map(|f| f.2), Some(Some(5)));

    let cases: Vec<(String, usize, &str)> = vec![
        (String::new(), 0, "empty file"),
        (format!("{HEADER}\n"), 0, "no records"),
        (HEADER.replace("harmonizer-trace", "other"), 1, "format"),
        (HEADER.replace("\"version\":1", "\"version\":2"), 1, "version 2"),
        (HEADER.replace("\"streams\":2", "\"streams\":17"), 1, "streams 17"),
        (HEADER.replace("\"initial_stream\":0", "\"initial_stream\":2"), 1, "initial_stream"),
        (HEADER.replace("stream\",\"source", "all\",\"source"), 1, "archive"),
        (HEADER.replace("\"source\":\"t\"", "\"source\":\"t\",\"extra\":1"), 1, "extra"),
        (format!("{HEADER}\n{}\n", data(1, 2, 1)), 2, "stream 2"),
        (format!("{HEADER}\n{}\n{}\n", data(5, 0, 1), data(4, 0, 2)), 3, "arrival_ns"),
        (format!("{HEADER}\n{}\n{}\n", data(5, 0, 2), data(6, 0, 2)), 3, "does not increase"),
        (format!("{HEADER}\n{}\n", data(5, 0, 1).replace("\"origin\":0", "\"origin\":1")), 2, "one origin"),
        (format!("{HEADER}\n{}\n", data(5, 0, 1).replace("\"data\"", "\"blob\"")), 2, "kind"),
        (format!("{HEADER}\n{}\n", data(5, 0, 1).replace("\"len\":8", "\"len\":-1")), 2, "invalid value"),
        (
            format!("{HEADER}\n{}\n", data(5, 0, 1).replace("\"len\":8", "\"len\":8,\"cause\":\"load\"")),
            2,
            "flip records",
        ),
        (format!("{HEADER}\n{}\n", flip.replace(",\"flip\":{", ",\"flap\":{")), 2, "unknown field"),
        (format!("{HEADER}\n{}\n", flip.replace("rollout", "gremlins")), 2, "unknown cause"),
        (format!("{HEADER}\n{}\n", flip.replace("\"switch\"", "\"jump\"")), 2, "flip action"),
        (
            format!("{HEADER}\n{}\n", flip.replace("\"basis_points\":500", "\"basis_points\":20000")),
            2,
            "cohort",
        ),
        (
            format!(
                "{HEADER}\n{}\n",
                flip.replace(
                    "\"selector\":\"cohort\",\"basis_points\":500,\"salt\":3",
                    "\"selector\":\"ids\""
                )
            ),
            2,
            "flip",
        ),
        (format!("{HEADER}\n\n"), 2, "empty line"),
        // An epoch clock: the replay would poll from 0 for decades.
        (format!("{HEADER}\n{}\n", data(1_700_000_000_000_000_000, 0, 1)), 2, "more than 7 days"),
        (format!("{HEADER}\n{}\n", "x".repeat(MAX_LINE + 1)), 2, "longer than"),
        (format!("{HEADER}\nnot json\n"), 2, "expected"),
    ];
    for (text, line, why) in cases {
        let e = refused(&text);
        assert_eq!(e.line, line, "{why}: {e}");
        assert!(e.to_string().contains(why), "{e} should say {why:?}");
    }
}

/// With `archive: "stream"`, a fetch delivers only what the stream holds: a hole of the active
/// stream that no fetch can fill is reported lost, not invented.
#[test]
fn a_stream_archive_does_not_invent_events() {
    let mut text = String::from(HEADER);
    text.push('\n');
    for seq in 1..=2000u64 {
        if !(100..110).contains(&seq) {
            text.push_str(&data(seq * 1_000_000, 0, seq));
            text.push('\n');
        }
    }
    let mut tf = read(&mut text.as_bytes()).unwrap();
    let cfg = trace_file_config(&tf, &ReplayConfig::default());
    assert!(!cfg.archive_complete && cfg.tail_ns > 0);
    resolve_trace_file(&mut tf, &cfg).unwrap();
    let r = evaluate(&tf.trace, "always", AlwaysStage, &cfg).unwrap();
    assert_eq!((r.delivered, r.lost), (1990, 10), "missing {} push_dropped {}", r.missing, r.push_dropped);
    assert_eq!(r.duplicates + r.out_of_order, 0);
}
