//! `harmonize demo` and `harmonize sim`, run as a user would: the real binary, its output, its
//! errors. The default demo runs once in full; the other runs use small scenarios or flags.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn hz(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_harmonize")).args(args).output().expect("the harmonize binary runs")
}

fn scenario(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(name).display().to_string()
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("harmonize-cli-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs and parses `--json` output; checks success.
fn json(args: &[&str]) -> (Value, String) {
    let o = hz(args);
    assert!(o.status.success(), "{args:?} failed: {}", stderr(&o));
    let text = stdout(&o);
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {text}"));
    (v, text)
}

fn policy<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["policies"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("no policy {name} in {v}"))
}

fn u(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} is not a u64 in {v}"))
}

fn f(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

/// Every policy delivered every event to every recipient exactly once, in order.
fn check_exactly_once(v: &Value) {
    let recipients = u(&v["scenario"], "recipients");
    let events = u(&v["scenario"], "events_per_recipient");
    assert!(events > 0);
    for p in v["policies"].as_array().expect("policies") {
        for key in ["lost", "duplicates", "out_of_order", "corrupt"] {
            assert_eq!(u(p, key), 0, "{key} for {}", p["name"]);
        }
        assert_eq!(u(p, "delivered"), recipients * events, "delivered for {}", p["name"]);
        assert_eq!(u(p, "switches"), u(p, "seamless") + u(p, "cold"));
        let duty = f(p, "duty_cycle");
        assert!((0.0..=1.0).contains(&duty), "duty {duty}");
        assert!(f(p, "events_per_sec") > 0.0);
    }
}

const KEYS: [&str; 13] = [
    "name",
    "delivered",
    "lost",
    "duplicates",
    "out_of_order",
    "switches",
    "seamless",
    "cold",
    "stall_p50_ns",
    "stall_p99_ns",
    "duty_cycle",
    "peak_staged_bytes",
    "events_per_sec",
];

/// Every policy object's keys start with `KEYS`, in that order (checked on the text: the
/// parsed map does not keep order).
fn check_key_order(text: &str) {
    let start = text.find("\"policies\"").expect("policies key");
    let mut rest = &text[start + 10..];
    let mut objects = 0;
    while let Some(open) = rest.find("{\n") {
        let body = &rest[open..];
        // Keys are the quoted strings followed by a colon.
        let keys: Vec<&str> = body
            .split('\n')
            .filter_map(|line| line.trim_start().strip_prefix('"'))
            .filter_map(|l| l.split_once("\":").map(|(k, _)| k))
            .take(KEYS.len())
            .collect();
        assert_eq!(keys, KEYS, "key order of policy object {objects}");
        objects += 1;
        // Skip this object (its per_recipient array holds nested objects).
        let Some(next) = body.find("\n    },\n    {").or_else(|| body.find("\n    }\n  ]")) else { break };
        rest = &body[next + 6..];
    }
    assert!(objects >= 1);
}

/// The demo's fleet section (issue 16): the same staging memory shared makes switches seamless
/// that per-engine budgets cannot; spreading starts cuts the worst 100 ms of subscriptions;
/// nothing is lost anywhere.
fn check_fleet(v: &Value) {
    assert_eq!(u(v, "recipients"), 128);
    let run = |name: &str| {
        v["runs"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["budget"] == name))
            .unwrap_or_else(|| panic!("no fleet run {name} in {v}"))
    };
    let (per, shared, unl, spread) =
        (run("per_engine"), run("shared"), run("unlimited"), run("unlimited_spread"));
    for r in [per, shared, unl, spread] {
        assert_eq!(
            (u(r, "lost"), u(r, "duplicates"), u(r, "out_of_order"), u(r, "corrupt")),
            (0, 0, 0, 0),
            "{r}"
        );
        assert_eq!(u(r, "switches"), u(unl, "switches"));
    }
    assert!(u(shared, "seamless") > u(per, "seamless"), "{v}");
    assert!(u(spread, "peak_subscribes_per_100ms") * 4 <= u(unl, "peak_subscribes_per_100ms"), "{v}");
    assert_eq!(u(spread, "seamless"), u(unl, "seamless"));
    assert!(u(unl, "seamless") * 100 >= u(unl, "switches") * 95, "{v}");
    // The identity tier: the same short windows, the re-read exact and smaller.
    let tier = |name: &str| {
        v["tiers"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["tier"] == name))
            .unwrap_or_else(|| panic!("no tier run {name} in {v}"))
    };
    let (full, ids) = (tier("full"), tier("identity"));
    for r in [full, ids] {
        assert_eq!(
            (u(r, "lost"), u(r, "duplicates"), u(r, "out_of_order"), u(r, "corrupt")),
            (0, 0, 0, 0),
            "{r}"
        );
    }
    assert_eq!(u(full, "identity_starts"), 0);
    assert!(u(ids, "identity_starts") > 0, "{v}");
    assert!(u(ids, "fetched_records") * 2 < u(full, "fetched_records"), "{v}");
    // The conflation tier: every dropped event reported, far fewer fetches.
    let conf = tier("conflation");
    assert_eq!(
        (u(conf, "lost"), u(conf, "duplicates"), u(conf, "out_of_order"), u(conf, "corrupt")),
        (0, 0, 0, 0),
        "{conf}"
    );
    assert_eq!(u(conf, "conflation_mismatches"), 0, "{conf}");
    assert!(u(conf, "conflated") > 0, "{conf}");
    assert!(u(conf, "fetches") * 4 < u(ids, "fetches"), "{v}");
}

/// The demo's verification section (issue 17): a rollout onto a pipeline that carries other
/// data delivers corrupted events without verification and none with it (the switch refused
/// until the stream agrees again); nothing is lost either way.
fn check_verification(v: &Value) {
    let run = |on: bool| {
        v["runs"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["verification"] == on))
            .unwrap_or_else(|| panic!("no verification run {on} in {v}"))
    };
    let (off, on) = (run(false), run(true));
    for r in [off, on] {
        assert_eq!((u(r, "lost"), u(r, "duplicates"), u(r, "out_of_order")), (0, 0, 0), "{r}");
    }
    let n = u(v, "recipients");
    assert!(u(off, "corrupt") > 0 && u(off, "mismatches") == 0 && u(off, "switches") == n, "{v}");
    assert_eq!(u(on, "corrupt"), 0, "{v}");
    assert_eq!(u(on, "switches_blocked"), n, "{v}");
    assert_eq!(u(on, "switches"), n, "the second switch, after the corruption, goes through: {v}");
    assert!(u(on, "mismatches") > 0 && u(on, "verified") > 0, "{v}");
    // The position map, pair by pair against the scenario's positions: all exact.
    assert!(u(on, "map_pairs") > 0 && u(on, "map_wrong") == 0, "{v}");
    assert_eq!(u(off, "map_pairs"), 0);
}

#[test]
fn demo_default_json() {
    // The fleet section with 128 recipients (its canary groups), not the default 256: a debug
    // build runs it in a test.
    let (v, text) = json(&["demo", "--json", "--fleet", "128"]);
    // The policies' key order (the fleet section after them has its own keys).
    check_key_order(text.split("\n  \"fleet\"").next().expect("text"));
    check_fleet(&v["fleet"]);
    check_verification(&v["verification"]);
    assert_eq!(v["scenario"]["name"], "demo");
    let names: Vec<&str> =
        v["policies"].as_array().expect("array").iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["predictor", "never", "always"]);
    check_exactly_once(&v);
    let (pred, never, always) = (policy(&v, "predictor"), policy(&v, "never"), policy(&v, "always"));
    assert!(u(pred, "switches") >= 8, "the demo switches every recipient several times");
    assert!(
        u(pred, "seamless") > u(never, "seamless"),
        "predictor seamless on more switches than never-stage"
    );
    assert!(
        f(pred, "duty_cycle") < f(always, "duty_cycle"),
        "predictor at a lower duty cycle than always-stage"
    );
    assert_eq!(u(never, "seamless"), 0);
    assert_eq!(u(always, "cold"), 0);
    // The malformed flip is rejected by every recipient, under every policy; the upstream gap
    // is filled (always-stage) or re-read (never-stage), never lost.
    for p in [pred, never, always] {
        assert_eq!(u(p, "flips_rejected_malformed"), u(&v["scenario"], "recipients"));
    }
    assert!(u(always, "gap_filled") > 0);
    assert!(u(never, "gaps") > 0 && u(never, "fetches") > 0);
}

#[test]
fn sim_demo_file_equals_the_embedded_demo() {
    let args = ["--recipients", "2", "--policy", "predictor,never", "--json"];
    let (a, _) = json(&[&["demo", "--fleet", "0"][..], &args].concat());
    let (b, _) = json(&[&["sim", "--scenario", &scenario("demo.toml")][..], &args].concat());
    let strip = |mut v: Value| {
        for p in v["policies"].as_array_mut().expect("array") {
            let o = p.as_object_mut().expect("object");
            o.remove("events_per_sec");
            o.remove("wall_s");
        }
        v["scenario"].as_object_mut().expect("object").remove("file");
        // The demo's own sections under the report (verification's; the fleet's is off here).
        v.as_object_mut().expect("object").remove("verification");
        v
    };
    assert_eq!(strip(a), strip(b));
}

#[test]
fn sim_quick_table_and_determinism() {
    let file = scenario("quick.toml");
    let o = hz(&["sim", "--scenario", &file]);
    assert!(o.status.success(), "{}", stderr(&o));
    let t = stdout(&o);
    for col in [
        "policy",
        "delivered",
        "lost",
        "dup",
        "ooo",
        "switches",
        "seamless",
        "cold",
        "stall p50",
        "stall p99",
    ] {
        assert!(t.contains(col), "column {col} in {t}");
    }
    for col in ["duty", "peak staged", "events/s", "predictor", "never", "always", "scenario-clock"] {
        assert!(t.contains(col), "{col} in {t}");
    }
    let (v, _) = json(&["sim", "--scenario", &file, "--json"]);
    check_exactly_once(&v);
    // One seed, one outcome: the lockstep makes every decision reproducible.
    let (w, _) = json(&["sim", "--scenario", &file, "--json", "--policy", "predictor"]);
    for k in [
        "delivered",
        "switches",
        "seamless",
        "cold",
        "stall_p50_ns",
        "stall_p99_ns",
        "duty_cycle",
        "peak_staged_bytes",
    ] {
        assert_eq!(policy(&v, "predictor")[k], policy(&w, "predictor")[k], "{k}");
    }
    // The audit trail: one JSON line per switch, as many as the report counts, each naming its
    // policy and recipient.
    let audit = temp("quick-audit.jsonl");
    let (a, _) = json(&[
        "sim",
        "--scenario",
        &file,
        "--json",
        "--policy",
        "predictor",
        "--audit",
        audit.to_str().unwrap(),
    ]);
    let lines: Vec<Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len() as u64, u(policy(&a, "predictor"), "switches"));
    for l in &lines {
        assert_eq!((l["policy"].as_str(), l["version"].as_u64()), (Some("predictor"), Some(1)), "{l}");
        assert!(l["recipient"].as_u64().is_some() && l["from"] != l["to"] && l["cause"] == "flip", "{l}");
    }
    let seamless = lines.iter().filter(|l| l["seamless"] == true).count() as u64;
    assert_eq!(seamless, u(policy(&a, "predictor"), "seamless"));
    // A dry run before each switch, and whether it said rightly if the switch would be
    // seamless: every one here.
    let (d, _) = json(&["sim", "--scenario", &file, "--json", "--policy", "predictor", "--dry-run"]);
    let pd = policy(&d, "predictor");
    assert_eq!(u(pd, "dry_runs"), u(pd, "switches"));
    assert_eq!(u(pd, "dry_runs_agreed"), u(pd, "dry_runs"));
    assert_eq!(u(pd, "switches"), u(policy(&a, "predictor"), "switches"), "a dry run changes nothing");
    // Another seed, other arrivals.
    let (x, _) = json(&["sim", "--scenario", &file, "--json", "--policy", "never", "--seed", "99"]);
    assert_eq!(x["scenario"]["seed"], 99);
    check_exactly_once(&x);
}

#[test]
fn sim_rollout() {
    let (v, _) = json(&["sim", "--scenario", &scenario("rollout.toml"), "--json"]);
    check_exactly_once(&v);
    assert_eq!(u(&v["scenario"], "streams"), 2);
    assert!(u(policy(&v, "predictor"), "flips_ignored") > 0, "rollout stages that excluded recipients");
}

#[test]
fn sim_lookalikes() {
    let (v, _) = json(&["sim", "--scenario", &scenario("lookalikes.toml"), "--json", "--recipients", "3"]);
    check_exactly_once(&v);
    assert_eq!(u(&v["scenario"], "recipients"), 3);
}

/// The verification scenario on its own: the refused switch is in the plot, and under the
/// manual policy nothing corrupted is delivered.
#[test]
fn sim_verify_plot_marks_the_refused_switch() {
    let path = temp("verify.svg");
    let p = path.display().to_string();
    let file = scenario("verify.toml");
    let map = temp("verify-map.jsonl");
    let m = map.display().to_string();
    let (v, _) = json(&[
        "sim",
        "--scenario",
        &file,
        "--json",
        "--policy",
        "manual",
        "--recipients",
        "2",
        "--plot",
        &p,
        "--map",
        &m,
    ]);
    check_exactly_once(&v);
    assert_eq!(u(policy(&v, "manual"), "corrupt"), 0);
    // The position map, one JSON line per run: in this scenario a record's position on stream
    // s is s * 10^9 + its index + 1, and both streams carry the same records in the same order
    // (every event and every flip, no stream dead), so each verified pair sits at the same
    // index on both.
    let runs: Vec<Value> = std::fs::read_to_string(&map)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert!(!runs.is_empty());
    for r in &runs {
        assert_eq!(r["policy"], "manual", "{r}");
        let (from, to) = (u(r, "from"), u(r, "to"));
        assert!(from != to && u(r, "len") >= 1, "{r}");
        assert_eq!(u(r, "from_pos") - from * 1_000_000_000, u(r, "to_pos") - to * 1_000_000_000, "{r}");
        assert_eq!(u(r, "from_stride"), u(r, "to_stride"), "{r}");
    }
    let svg = std::fs::read_to_string(&path).expect("the SVG was written");
    assert!(svg.contains("switch refused: data differs"), "no refused switch in the plot");
}

#[test]
fn plot_writes_a_labelled_svg() {
    let path = temp("quick.svg");
    let p = path.display().to_string();
    let o = hz(&[
        "sim",
        "--scenario",
        &scenario("quick.toml"),
        "--policy",
        "predictor",
        "--plot",
        &p,
        "--plot-recipient",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let svg = std::fs::read_to_string(&path).expect("the SVG was written");
    assert!(svg.starts_with("<svg") && svg.len() > 10_000, "{} bytes", svg.len());
    for label in [
        "recipient 2002",
        "predictor",
        "P(switch to stream within 5 s)",
        "P(switch to stream 1)",
        "threshold (adaptive)",
        "staged",
        "scenario time (s)",
        "events/s on the live path",
        "rollout 10%",
        "rollout 50%",
        "rollout 100%",
        "announce",
        "cancel",
        "switchback",
        "switch →",
        "malformed flip",
        "loses 10 events",
        "dies",
        "seamless",
        "cold",
    ] {
        assert!(svg.contains(label), "label {label:?} in the SVG");
    }
    let _ = std::fs::remove_file(&path);
}

/// A failing run: non-zero exit, nothing on stdout, stderr starting with `error: ` and
/// containing every `needle`.
fn fails(args: &[&str], needles: &[&str]) {
    let o = hz(args);
    assert!(!o.status.success(), "{args:?} succeeded");
    let e = stderr(&o);
    assert!(e.starts_with("error: "), "{args:?}: {e}");
    for n in needles {
        assert!(e.contains(n), "{args:?}: {n:?} not in {e}");
    }
    assert!(stdout(&o).is_empty(), "{args:?} printed {}", stdout(&o));
}

/// Our own errors are exactly one line.
fn fails_one_line(args: &[&str], needles: &[&str]) {
    fails(args, needles);
    let e = stderr(&hz(args));
    assert_eq!(e.trim_end().lines().count(), 1, "{args:?}: {e}");
}

fn write(name: &str, text: &str) -> String {
    let p = temp(name);
    std::fs::write(&p, text).expect("write");
    p.display().to_string()
}

#[test]
fn scenario_errors_name_the_file_and_the_key() {
    let missing = temp("does-not-exist.toml").display().to_string();
    fails_one_line(&["sim", "--scenario", &missing], &["does-not-exist.toml", "cannot read"]);

    let f = write("bad-syntax.toml", "name = \"x\"\nduration_s = [\n");
    fails_one_line(&["sim", "--scenario", &f], &["bad-syntax.toml", "line 2"]);

    let f = write("unknown-top.toml", "name = \"x\"\nduration_s = 10\ndurration_s = 3\n");
    fails_one_line(&["sim", "--scenario", &f], &["unknown-top.toml", "durration_s", "unknown field"]);

    let f = write("unknown-table.toml", "name = \"x\"\nduration_s = 10\n[app]\nfetch_dela_ms = 1\n");
    fails_one_line(&["sim", "--scenario", &f], &["app.fetch_dela_ms", "unknown field"]);

    let f = write(
        "unknown-incident.toml",
        "name = \"x\"\nduration_s = 10\n[[incident]]\nkind = \"gap\"\nat_s = 1\nstream = 0\nevents = 5\nlength = 2\n",
    );
    fails_one_line(&["sim", "--scenario", &f], &["incident[0].length", "unknown field"]);

    let f =
        write("bad-kind.toml", "name = \"x\"\nduration_s = 10\n[[incident]]\nkind = \"meteor\"\nat_s = 1\n");
    fails_one_line(&["sim", "--scenario", &f], &["incident[0].kind", "meteor"]);

    let f = write("bad-type.toml", "name = \"x\"\nduration_s = \"ten\"\n");
    fails_one_line(&["sim", "--scenario", &f], &["bad-type.toml", "duration_s", "invalid type"]);

    let f = write("bad-value.toml", "name = \"x\"\nduration_s = 10\n[app]\nfetch_delay_ms = -3\n");
    fails_one_line(&["sim", "--scenario", &f], &["bad-value.toml", "app.fetch_delay_ms = -3", "must be"]);

    let f = write(
        "bad-stream.toml",
        "name = \"x\"\nduration_s = 10\n[[incident]]\nkind = \"switch\"\nat_s = 1\ntarget = 7\n",
    );
    fails_one_line(&["sim", "--scenario", &f], &["incident[0].target = 7"]);

    let f = write(
        "bad-stages.toml",
        "name = \"x\"\nduration_s = 10\n[[incident]]\nkind = \"rollout\"\nat_s = 1\ntarget = 1\nstages_bp = [5000, 1000]\n",
    );
    fails_one_line(&["sim", "--scenario", &f], &["incident[0].stages_bp[1]"]);

    let f = write("no-name.toml", "duration_s = 10\n");
    fails_one_line(&["sim", "--scenario", &f], &["no-name.toml", "name"]);
}

#[test]
fn flag_errors() {
    fails_one_line(&["demo", "--policy", "bogus"], &["bogus", "--policy"]);
    fails_one_line(&["demo", "--recipients", "0"], &["--recipients"]);
    fails_one_line(&["demo", "--frobnicate"], &["--frobnicate"]);
    fails_one_line(&["sim"], &["--scenario"]);
    fails_one_line(&["demo", "--plot", "x.svg", "--plot-recipient", "99"], &["--plot-recipient 99"]);
}

#[test]
fn help_shows_an_example() {
    for cmd in ["demo", "sim"] {
        let o = hz(&[cmd, "--help"]);
        assert!(o.status.success());
        let h = stdout(&o);
        assert!(h.contains("Example:"), "{cmd} --help: {h}");
        assert!(h.contains(&format!("harmonize {cmd}")), "{cmd} --help: {h}");
        for flag in ["--json", "--plot", "--plot-recipient", "--seed", "--recipients", "--policy"] {
            assert!(h.contains(flag), "{cmd} --help lacks {flag}");
        }
    }
}
