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
