//! `harmonize publish`, `follow` and `flip send` against real servers, as an operator runs
//! them: a feed with a lagging stream, a hole and a flip, followed from the start; a live
//! follower moved by `flip send`; the same on NATS JetStream. Each test starts its own server
//! on a free loopback port (harmonizer_connect::testing::Process).

use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use harmonizer_connect::testing::{self, Process};

fn harmonize(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_harmonize")).args(args).output().expect("run harmonize")
}

fn ok(args: &[&str]) -> String {
    let o = harmonize(args);
    assert!(
        o.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn redis() -> Process {
    Process::start("redis-server", testing::redis_command, testing::listening)
}

fn nats() -> Process {
    Process::start("nats-server", testing::nats_command, testing::listening)
}

/// The `follow --json` summary line.
fn summary(out: &str) -> serde_json::Value {
    let line = out
        .lines()
        .rev()
        .find(|l| l.contains(r#""type":"summary""#))
        .unwrap_or_else(|| panic!("no summary in {out}"));
    serde_json::from_str(line).unwrap()
}

/// Publishes a feed into two streams (the second 5 ms late, the first with a hole of 11 events,
/// a switch after seq 3000) and follows it from the start: every event once, one cold switch,
/// nothing lost.
fn feed_then_follow(server: &str, url: &str) {
    let out = ok(&[
        "publish",
        server,
        url,
        "--streams",
        "fa,fb",
        "--events",
        "5000",
        "--rate",
        "0",
        "--delay",
        "fb=5",
        "--hole",
        "fa=500..510",
        "--flip",
        "3000=switch:1:7",
    ]);
    assert!(out.contains("fa: 4990 entries written") && out.contains("fb: 5001 entries written"), "{out}");
    let out = ok(&[
        "follow",
        server,
        url,
        "--streams",
        "fa,fb",
        "--from",
        "start",
        "--events",
        "5000",
        "--seconds",
        "30",
        "--json",
    ]);
    let s = summary(&out);
    let t = &s["totals"];
    assert_eq!(s["exactly_once"], true, "{out}");
    assert_eq!(t["delivered"], 5000, "{out}");
    assert_eq!((t["lost_events"].as_u64(), t["gaps"].as_u64()), (Some(0), Some(1)), "{out}");
    assert_eq!(t["switches_cold"].as_u64().unwrap() + t["switches_seamless"].as_u64().unwrap(), 1, "{out}");
    assert_eq!(s["active"], 1, "{out}");
    assert!(out.contains(r#""kind":"switched""#) && out.contains(r#""flip_id":7"#), "{out}");
}

#[test]
fn publish_then_follow_on_redis() {
    let r = redis();
    feed_then_follow("--redis", &format!("redis://127.0.0.1:{}/", r.port));
}

#[test]
fn publish_then_follow_on_nats() {
    let n = nats();
    feed_then_follow("--nats", &format!("nats://127.0.0.1:{}", n.port));
}

/// A follower runs live while a publisher writes; `flip send` moves it to the other stream.
#[test]
fn flip_send_moves_a_live_follower() {
    let r = redis();
    let url = format!("redis://127.0.0.1:{}/", r.port);
    let follower: Child = Command::new(env!("CARGO_BIN_EXE_harmonize"))
        .args([
            "follow",
            "--redis",
            &url,
            "--streams",
            "fa,fb",
            "--events",
            "3000",
            "--seconds",
            "30",
            "--json",
            "--staging",
            "always",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500)); // the follower subscribes live
    let publisher = Command::new(env!("CARGO_BIN_EXE_harmonize"))
        .args(["publish", "--redis", &url, "--streams", "fa,fb", "--events", "3000", "--rate", "3000"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let out = ok(&[
        "flip", "send", "--redis", &url, "--stream", "fa", "--stream", "fb", "--action", "switch", "--id",
        "9", "--target", "1",
    ]);
    assert!(out.contains("fa: flip written at position") && out.contains("fb: flip written"), "{out}");
    assert!(publisher.wait_with_output().unwrap().status.success());
    let o = follower.wait_with_output().unwrap();
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    let s = summary(&out);
    assert_eq!(s["exactly_once"], true, "{out}");
    assert_eq!(s["totals"]["delivered"], 3000, "{out}");
    assert_eq!(s["active"], 1, "moved by the flip: {out}");
    assert_eq!(s["totals"]["switches_seamless"], 1, "stream fb was staged: {out}");
}

/// Issue 20: a predictor following real streams records the labelled history `harmonize
/// train` reads, learns online, and saves the model it ends with. A feed of 20 s at 2000 events/s
/// into two Redis streams, a switch to the second at 8 s and a switchback at 12 s.
#[test]
fn follow_records_a_history_that_trains_and_saves_its_model() {
    let r = redis();
    let url = format!("redis://127.0.0.1:{}/", r.port);
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli_connect_history");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (history, saved, trained) = (dir.join("h.csv"), dir.join("adapted.json"), dir.join("trained.json"));
    let s = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let follower: Child = Command::new(env!("CARGO_BIN_EXE_harmonize"))
        .args([
            "follow",
            "--redis",
            &url,
            "--streams",
            "ha,hb",
            "--from",
            "start",
            "--events",
            "40000",
            "--seconds",
            "60",
            "--json",
            "--staging",
            "predictor",
            "--record-history",
            &s(&history),
            "--online",
            "--save-model",
            &s(&saved),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    ok(&[
        "publish",
        "--redis",
        &url,
        "--streams",
        "ha,hb",
        "--events",
        "40000",
        "--rate",
        "2000",
        "--flip",
        "16000=switch:1:7",
        "--flip",
        "24000=switchback:0:8",
    ]);
    let o = follower.wait_with_output().unwrap();
    let out = String::from_utf8(o.stdout).unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{out}{err}");
    let sum = summary(&out);
    assert_eq!(sum["exactly_once"], true, "{out}");
    assert_eq!(sum["totals"]["delivered"], 40000, "{out}");
    assert!(err.contains("labelled rows") && err.contains("online steps"), "{err}");
    // The history: the documented header, one row per 100 ms per candidate, labelled by the
    // switches that followed (the switch at 8 s: stream 1's rows in the 5 s before it).
    let text = std::fs::read_to_string(&history).unwrap();
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("# harmonizer-history v1 duration_ns="), "{text}");
    assert!(lines.next().unwrap().starts_with("t_ns,candidate,label,load_burst"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(rows.len() >= 100, "{} rows", rows.len());
    assert!(rows.iter().all(|r| r.len() == 3 + harmonizer_core::predict::N_FEATURES));
    let positives: Vec<_> = rows.iter().filter(|r| r[2] == "1").collect();
    assert!(positives.len() >= 20 && positives.iter().any(|r| r[1] == "1"), "{} positives", positives.len());
    assert!(rows.iter().any(|r| r[2] == "0"));
    assert!(!dir.join("h.csv.part").exists(), "the part file is gone");
    // It trains; the saved model is a model file.
    ok(&["train", "--history", &s(&history), "-o", &s(&trained)]);
    for m in [&trained, &saved] {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(m).unwrap()).unwrap();
        assert_eq!(v["format"], "harmonizer-predictor", "{}", m.display());
    }
    ok(&["eval", "--model", &s(&saved), "--duration", "10", "--phi", "5,0.1"]);
    // The predictor's flags need the predictor.
    let o = harmonize(&["follow", "--redis", &url, "--streams", "ha", "--online", "--seconds", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--staging predictor"));
}

/// Issue 20: `follow --record-trace` writes every record of every stream with its arrival time
/// (a hole of one stream, a flip, re-read records written once), and `eval --trace` replays it.
#[test]
fn follow_records_a_trace_that_eval_replays() {
    let r = redis();
    let url = format!("redis://127.0.0.1:{}/", r.port);
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli_connect_trace");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let trace = dir.join("t.jsonl");
    let t = trace.to_str().unwrap();
    ok(&[
        "publish",
        "--redis",
        &url,
        "--streams",
        "ta,tb",
        "--events",
        "4000",
        "--rate",
        "0",
        "--hole",
        "ta=500..510",
        "--flip",
        "2000=switch:1:7",
    ]);
    let out = ok(&[
        "follow",
        "--redis",
        &url,
        "--streams",
        "ta,tb",
        "--from",
        "start",
        "--staging",
        "always",
        "--events",
        "4000",
        "--seconds",
        "30",
        "--json",
        "--record-trace",
        t,
    ]);
    assert_eq!(summary(&out)["exactly_once"], true, "{out}");
    let text = std::fs::read_to_string(&trace).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["format"], "harmonizer-trace");
    assert_eq!(lines[0]["archive"], "stream");
    let count = |stream: u64, kind: &str| {
        lines[1..].iter().filter(|l| l["stream"] == stream && l["kind"] == kind).count()
    };
    // What the recipient read: ta from its start (less its 11-event hole) at least through the
    // flip at 2000; tb, staged live when follow began, at least from 2000 to the end.
    let (a, b) = (count(0, "data"), count(1, "data"));
    assert!((2000 - 11..=4000 - 11).contains(&a) && (2000..=4000).contains(&b), "{a} {b}");
    for stream in [0u64, 1] {
        let seqs: Vec<u64> = lines[1..]
            .iter()
            .filter(|l| l["stream"] == stream && l["kind"] == "data")
            .map(|l| l["seq"].as_u64().unwrap())
            .collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "stream {stream}: each record once, in order");
        assert!(stream == 1 || !seqs.iter().any(|s| (500..=510).contains(s)), "ta's hole");
    }
    assert_eq!((count(0, "flip"), count(1, "flip")), (1, 1));
    let flip = lines.iter().find(|l| l["kind"] == "flip").unwrap();
    assert_eq!((flip["flip"]["action"].as_str(), flip["flip"]["id"].as_u64()), (Some("switch"), Some(7)));
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["eval", "--trace", t, "--phi", "5,0.1", "--json"])).unwrap();
    for p in v["policies"].as_array().unwrap() {
        assert_eq!(p["switches"], 1, "{p}");
        assert_eq!(p["duplicates"].as_u64(), Some(0), "{p}");
        assert_eq!(p["per_cause"][0]["cause"], "unlabelled", "{p}");
    }
    let always = v["policies"].as_array().unwrap().iter().find(|p| p["name"] == "always").unwrap();
    let got = always["delivered"].as_u64().unwrap()
        + always["lost"].as_u64().unwrap()
        + always["missing"].as_u64().unwrap();
    assert_eq!(got, 4000, "every event delivered, or reported lost: {always}");
    // The trace needs every stream read all the time.
    let o = harmonize(&["follow", "--redis", &url, "--streams", "ta", "--record-trace", t, "--seconds", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--staging always"));
    // The format holds one origin: a feed of another is refused, not written into a file
    // that eval --trace would refuse.
    ok(&["publish", "--redis", &url, "--streams", "tc", "--events", "10", "--rate", "0", "--origin", "3"]);
    let o = harmonize(&[
        "follow",
        "--redis",
        &url,
        "--streams",
        "tc",
        "--from",
        "start",
        "--staging",
        "always",
        "--record-trace",
        t,
        "--seconds",
        "5",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("stream 0 carries origin 3") && err.contains("one origin"), "{err}");
}

/// Bad specifications are refused with one line naming the flag.
#[test]
fn publish_refuses_bad_specs() {
    for (args, want) in [
        (&["--hole", "fx=1..2"][..], "fx is not one of --streams"),
        (&["--hole", "fa=5..2"][..], "FROM is above TO"),
        (&["--flip", "10=jump:1:1"][..], "unknown action jump"),
        (&["--flip", "10=switch:1"][..], "expected SEQ=ACTION:TARGET:ID"),
        (&["--delay", "fa"][..], "expected NAME=MS"),
    ] {
        let mut all = vec!["publish", "--redis", "redis://127.0.0.1:1/", "--streams", "fa,fb"];
        all.extend_from_slice(args);
        let o = harmonize(&all);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.starts_with("error: ") && err.contains(want), "{args:?}: {err}");
    }
}
