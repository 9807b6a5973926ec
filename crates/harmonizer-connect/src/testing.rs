//! The proof every connector owes (issue 14), written once: scenarios against a real server,
//! run by each connector's integration tests with its own [`Backend`] (how to start the server,
//! write entries, trim a stream). Behind the `testing` feature: test code, not library API.
//!
//! Each scenario starts its own server (a free loopback port, its own directory), follows it
//! with the [`Driver`], and checks exactly-once delivery with payloads.

#![allow(missing_docs, clippy::missing_panics_doc)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harmonizer_core::engine::{Engine, EngineConfig, Exhausted, Handler, Liveness, Notice};
use harmonizer_core::event::{EventHeader, KIND_DATA, KIND_FLIP};
use harmonizer_core::flip::{Flip, FlipAction};
use harmonizer_core::ring::Record;

use crate::{Driver, DriverOptions, Report, Start, Upstream};

/// One `#[test]` per scenario for a connector's [`Backend`], and the writer process's entry
/// point, so each connector's test file holds only its backend:
/// `harmonizer_connect::scenario_tests!(Redis);`.
#[macro_export]
macro_rules! scenario_tests {
    ($backend:ty) => {
        $crate::scenario_tests!(@each $backend;
            announced_switch_switchback_and_cancel,
            cold_switch_finds_the_position_after_the_frontier,
            server_killed_and_restarted_mid_stream,
            permanent_hole_is_filled_from_the_other_stream,
            trimmed_range_under_a_reread_is_reported_and_lost_exactly,
            writer_killed_with_sigkill_then_restarted,
            cohort_rollout_across_recipients,
            lagging_target_stalls_the_switch_and_loses_nothing,
            flips_at_different_logical_points_in_each_stream);

        /// Not a test: the body of the writer processes the scenarios start, run by them with
        /// `--include-ignored` (ignored in an ordinary run, where it would do nothing).
        #[test]
        #[ignore = "the writer process's entry point, run by testing::Writer::spawn"]
        fn writer_process() {
            $crate::testing::writer_main::<$backend>();
        }
    };
    (@each $backend:ty; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                $crate::testing::$name::<$backend>();
            }
        )*
    };
}

/// How long a scenario step may take before it fails with what it saw.
pub const LIMIT: Duration = Duration::from_secs(30);

/// A connector under test, with a real server of its own.
pub trait Backend: Sized {
    /// The connector.
    type Up: Upstream;
    /// Starts a fresh server and waits until it answers.
    fn start() -> Self;
    /// Its address, for [`Backend::publisher`] and writer processes.
    fn url(&self) -> String;
    /// Makes the streams (JetStream needs them made; Redis makes keys on the first write).
    fn prepare(&self, keys: &[&str]);
    /// The connector reading `keys` (stream `i` is `keys[i]`).
    fn upstream(&self, keys: &[&str]) -> Self::Up;
    /// A writer to the server at `url`.
    fn publisher(url: &str) -> Box<dyn Publish>;
    /// Kills the server (`kill -9`) and starts it again on the same port and data after
    /// `down_for`.
    fn crash_and_restart(&mut self, down_for: Duration);
    /// Removes every entry of `key` before position `pos`, as retention would.
    fn trim_before(&self, key: &str, pos: u64);
}

/// Writes entries.
pub trait Publish {
    /// Appends one event to `key`; its position.
    fn publish(&mut self, key: &str, header: &EventHeader, payload: &[u8]) -> u64;
    /// The seq of the last entry of `key` (0 when empty).
    fn last_seq(&mut self, key: &str) -> u64;
}

/// A server process of a test's own: `command(port, dir)` runs it; dropped, it is killed and
/// its directory removed.
pub struct Process {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    command: fn(u16, &std::path::Path) -> Command,
}

impl Process {
    /// Starts `command` on a free loopback port with a fresh directory, then waits until
    /// `ready(port)` (at most 10 s).
    pub fn start(
        name: &str,
        command: fn(u16, &std::path::Path) -> Command,
        ready: impl Fn(u16) -> bool,
    ) -> Process {
        let port = TcpListener::bind("127.0.0.1:0").expect("a loopback port").local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("hz-{name}-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut p = Process { child: None, port, dir, command };
        p.spawn(name, ready);
        p
    }

    /// Starts the process (again), then waits until it answers.
    pub fn spawn(&mut self, name: &str, ready: impl Fn(u16) -> bool) {
        let child = (self.command)(self.port, &self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{name} must be installed (scripts/check.sh installs it): {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready(self.port) {
            assert!(Instant::now() < deadline, "{name} on port {} did not answer in 10 s", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `redis-server` on `port` (loopback), files in `dir`, no persistence.
pub fn redis_command(port: u16, dir: &std::path::Path) -> Command {
    let mut c = Command::new("redis-server");
    c.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--dir"]).arg(dir);
    c
}

/// As [`redis_command`], with an append-only file synced on every write: a restart keeps every
/// entry.
pub fn redis_command_aof(port: u16, dir: &std::path::Path) -> Command {
    let mut c = redis_command(port, dir);
    c.args(["--appendonly", "yes", "--appendfsync", "always"]);
    c
}

/// `nats-server` with JetStream on `port` (loopback), file storage in `dir`.
pub fn nats_command(port: u16, dir: &std::path::Path) -> Command {
    let mut c = Command::new("nats-server");
    c.args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"]).arg(dir);
    c
}

/// Whether something accepts connections on `port` (loopback).
pub fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a recipient was given.
#[derive(Default)]
pub struct Seen {
    /// (stream, origin, seq, payload) of every event, in order.
    pub events: Vec<(u32, u32, u64, Vec<u8>)>,
    /// Switches: (from, to, flip id, seamless).
    pub switches: Vec<(u32, u32, u64, bool)>,
    /// Each switch's stall, clock ns (cut-over consumed to contiguous delivery of the target).
    pub stalls: Vec<u64>,
    /// Silences of the active stream reported.
    pub silences: usize,
    /// Lost ranges: (origin, first, last).
    pub lost: Vec<(u32, u64, u64)>,
    pub gaps: usize,
    pub notices: Vec<String>,
}

impl Handler for Seen {
    fn event(&mut self, stream: u32, r: &Record<'_>) {
        self.events.push((stream, r.header.origin, r.header.seq, r.payload.to_vec()));
    }
    fn notice(&mut self, n: &Notice<'_>) {
        match *n {
            Notice::Switched { from, to, flip_id, seamless, stall_ns, .. } => {
                self.switches.push((from, to, flip_id, seamless));
                self.stalls.push(stall_ns);
            }
            Notice::ActiveSilent { .. } => self.silences += 1,
            Notice::Lost { origin, from_seq, to_seq } => self.lost.push((origin, from_seq, to_seq)),
            Notice::Gap { .. } => self.gaps += 1,
            _ => {}
        }
        self.notices.push(format!("{n:?}"));
    }
}

impl Seen {
    /// Seqs of `origin`, in delivery order.
    pub fn seqs(&self, origin: u32) -> Vec<u64> {
        self.events.iter().filter(|e| e.1 == origin).map(|e| e.2).collect()
    }

    /// Every seq `1..=n` of origin 0 exactly once, in order, each with its payload.
    pub fn assert_exactly_once(&self, n: u64) {
        let seqs = self.seqs(0);
        let want: Vec<u64> = (1..=n).collect();
        if seqs != want {
            let dup = seqs.windows(2).find(|w| w[1] <= w[0]);
            let missing: Vec<u64> = want.iter().copied().filter(|s| !seqs.contains(s)).take(10).collect();
            panic!(
                "delivered {} events, want 1..={n}: first out of order {dup:?}, missing {missing:?}\nnotices: {:#?}",
                seqs.len(),
                self.notices
            );
        }
        for e in &self.events {
            assert_eq!(e.3, payload(e.1, e.2), "payload of seq {}", e.2);
        }
    }
}

/// A flip for every recipient ([`Flip::new`], target first as the scenarios read).
pub fn flip(action: FlipAction, target: u32, flip_id: u64) -> Flip<'static> {
    Flip::new(action, flip_id, target)
}

/// Runs the driver until `done` holds or `limit` passes (then panics with what was seen).
pub fn run_until(
    d: &mut Driver,
    seen: &mut Seen,
    reports: &mut Vec<Report>,
    limit: Duration,
    done: impl Fn(&Seen, &[Report]) -> bool,
) {
    let deadline = Instant::now() + limit;
    while !done(seen, reports) {
        d.run_once(seen, Duration::from_millis(5));
        reports.extend(d.reports());
        if Instant::now() > deadline {
            panic!(
                "not done after {limit:?}: {} events, switches {:?}, lost {:?}\nreports: {reports:#?}\nnotices: {:#?}",
                seen.events.len(),
                seen.switches,
                seen.lost,
                seen.notices
            );
        }
    }
    reports.extend(d.reports());
}

pub fn payload(origin: u32, seq: u64) -> Vec<u8> {
    format!("o{origin}-event-{seq}").into_bytes()
}

/// Writes the same logical events into several keys.
pub struct Feed {
    pub keys: Vec<String>,
    pub p: Box<dyn Publish>,
}

impl Feed {
    pub fn new<B: Backend>(server: &B, keys: &[&str]) -> Feed {
        server.prepare(keys);
        Feed { keys: keys.iter().map(|k| k.to_string()).collect(), p: B::publisher(&server.url()) }
    }

    /// Data event `seq` of origin 0 into key `k`; its position.
    pub fn data(&mut self, k: usize, seq: u64) -> u64 {
        let h = EventHeader { pos: 0, seq, ts_ns: seq * 1_000_000, origin: 0, kind: KIND_DATA, flags: 0 };
        self.p.publish(&self.keys[k], &h, &payload(0, seq))
    }

    /// Data events `seqs` into every key.
    pub fn data_all(&mut self, seqs: std::ops::RangeInclusive<u64>) {
        for s in seqs {
            for k in 0..self.keys.len() {
                self.data(k, s);
            }
        }
    }

    /// A flip record into key `k`.
    pub fn flip(&mut self, k: usize, flip: &Flip<'_>) -> u64 {
        let h = EventHeader { pos: 0, seq: 0, ts_ns: 0, origin: 0, kind: KIND_FLIP, flags: 0 };
        self.p.publish(&self.keys[k], &h, &flip.to_vec().unwrap())
    }

    /// A flip into every key.
    pub fn flip_all(&mut self, flip: &Flip<'_>) {
        for k in 0..self.keys.len() {
            self.flip(k, flip);
        }
    }
}

/// A recipient following `keys` through the driver (manual staging: announced streams and the
/// switchback target are staged).
pub fn follow<B: Backend>(
    server: &B,
    keys: &[&str],
    recipient: u64,
    config: impl FnOnce(&mut EngineConfig),
) -> Driver {
    server.prepare(keys);
    let mut cfg = EngineConfig::new(recipient, keys.len() as u32, 1 << 16, 1024);
    config(&mut cfg);
    let (engine, producers) = Engine::new(cfg).unwrap();
    let opts = DriverOptions { read_timeout: Duration::from_millis(20), ..DriverOptions::default() };
    Driver::new(engine, producers, Arc::new(server.upstream(keys)), opts).unwrap()
}

/// A writer process: the test binary run again as its `writer_process` test (ignored in an
/// ordinary run), writing seqs up to `n` of origin 0 into `key`, one every `gap_us` µs, from the
/// seq after the last one the key holds. So it can be killed with SIGKILL and started again.
pub struct Writer {
    child: Child,
}

impl Writer {
    pub fn spawn<B: Backend>(server: &B, key: &str, n: u64, gap_us: u64) -> Writer {
        let exe = std::env::current_exe().unwrap();
        let child = Command::new(exe)
            .args(["--exact", "writer_process", "--include-ignored", "--nocapture", "--test-threads=1"])
            .env("HZ_TEST_WRITER", format!("{} {key} {n} {gap_us}", server.url()))
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        Writer { child }
    }

    pub fn kill9(&mut self) {
        self.child.kill().unwrap(); // SIGKILL
        let _ = self.child.wait();
    }

    pub fn wait_ok(&mut self) -> bool {
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of a writer process (see [`Writer`]); does nothing without its environment.
pub fn writer_main<B: Backend>() {
    let Ok(spec) = std::env::var("HZ_TEST_WRITER") else { return };
    let parts: Vec<&str> = spec.split(' ').collect();
    let (url, key, n, gap_us): (&str, &str, u64, u64) =
        (parts[0], parts[1], parts[2].parse().unwrap(), parts[3].parse().unwrap());
    let mut p = B::publisher(url);
    for seq in p.last_seq(key) + 1..=n {
        let h = EventHeader { pos: 0, seq, ts_ns: seq * 1_000_000, origin: 0, kind: KIND_DATA, flags: 0 };
        p.publish(key, &h, &payload(0, seq));
        std::thread::sleep(Duration::from_micros(gap_us));
    }
}

// ---- the scenarios ---------------------------------------------------------------------

/// Announce, then switch: the target was staged, so the switch is seamless; then a switchback
/// to the kept previous stream, seamless too; then an announce that is cancelled. Every event
/// once, in order, with its payload.
pub fn announced_switch_switchback_and_cancel<B: Backend>() {
    let server = B::start();
    let keys = ["a", "b"];
    let mut feed = Feed::new(&server, &keys);
    let mut d = follow(&server, &keys, 7, |_| {});
    d.engine_mut().resume_stream_at(0, 1); // from the start of `a`
    let (mut seen, mut reports) = (Seen::default(), Vec::new());
    feed.data_all(1..=50);
    run_until(&mut d, &mut seen, &mut reports, LIMIT, |s, _| s.seqs(0).len() == 50);
    // The announce stages `b` from its live end: wait until its reader is there before writing
    // more, as a real feed would simply keep going.
    feed.flip_all(&flip(FlipAction::Announce, 1, 1));
    run_until(&mut d, &mut seen, &mut reports, LIMIT, |_, r| {
        r.iter().any(|r| matches!(r, Report::Started { stream: 1, start: Start::Live, .. }))
    });
    feed.data_all(51..=100);
    feed.flip_all(&flip(FlipAction::Switch, 1, 2));
    feed.data_all(101..=150);
    run_until(&mut d, &mut seen, &mut reports, LIMIT, |s, _| s.seqs(0).len() == 150);
    assert_eq!(seen.switches, [(0, 1, 2, true)], "a seamless switch to b");
    assert_eq!(d.engine().active_stream(), 1);
    feed.flip_all(&flip(FlipAction::Switchback, 0, 3));
    feed.data_all(151..=200);
    run_until(&mut d, &mut seen, &mut reports, LIMIT, |s, _| s.seqs(0).len() == 200);
    assert_eq!(seen.switches[1..], [(1, 0, 3, true)], "the switchback target was kept staged");
    feed.flip_all(&flip(FlipAction::Announce, 1, 4));
    feed.data_all(201..=220);
    feed.flip_all(&flip(FlipAction::Cancel, 1, 5));
    feed.data_all(221..=250);
    run_until(&mut d, &mut seen, &mut reports, LIMIT, |s, _| s.seqs(0).len() == 250);
    seen.assert_exactly_once(250);
    assert_eq!(seen.switches.len(), 2, "a cancelled announce switches nothing");
    assert!(seen.lost.is_empty());
}

/// A switch to a stream that was not staged: the engine cannot name a position in it, so the
/// reader finds the first entry after the last seq delivered (a bisection over the key), and
/// delivery goes on without a duplicate or a hole.
pub fn cold_switch_finds_the_position_after_the_frontier<B: Backend>() {
    let server = B::start();
    let keys = ["a", "b"];
    let mut feed = Feed::new(&server, &keys);
    // `b` carries a long history first, so the search has something to search.
    for s in 1..=3000 {
        feed.data(1, s);
    }
    for s in 1..=1000 {
        feed.data(0, s);
    }
    let mut d = follow(&server, &keys, 7, |_| {});
    d.engine_mut().resume_stream_at(0, 1);
    let (mut seen, mut reports) = (Seen::default(), Vec::new());
    run_until(&mut d, &mut seen, &mut reports, LIMIT, |s, _| s.seqs(0).len() == 1000);
    feed.flip(0, &flip(FlipAction::Switch, 1, 9));
    run_until(&mut d, &mut seen, &mut reports, LIMIT, |s, _| s.seqs(0).len() == 3000);
    seen.assert_exactly_once(3000);
    assert_eq!(seen.switches, [(0, 1, 9, false)], "cold");
    let started_b: Vec<_> =
        reports.iter().filter(|r| matches!(r, Report::Started { stream: 1, .. })).collect();
    assert!(
        matches!(
            started_b.first(),
            Some(Report::Started { start: Start::AfterSeq { origin: 0, seq: 1000 }, .. })
                | Some(Report::Started { start: Start::AfterFrontier(_), .. })
        ),
        "b starts after the frontier: {started_b:?}"
    );
}

/// The server is killed (`kill -9`) and restarted mid-stream (its append-only file keeps every
/// entry): the reader reports the outage, reconnects with backoff, and goes on from the entry
/// after the last one it took.
pub fn server_killed_and_restarted_mid_stream<B: Backend>() {
    let mut server = B::start();
    let keys = ["a", "b"];
    let mut feed = Feed::new(&server, &keys);
    let mut d = follow(&server, &keys, 7, |_| {});
    d.engine_mut().resume_stream_at(0, 1);
    let (mut seen, mut reports) = (Seen::default(), Vec::new());
    feed.data_all(1..=500);
    run_until(&mut d, &mut seen, &mut reports, LIMIT, |s, _| s.seqs(0).len() == 500);
    server.crash_and_restart(Duration::from_millis(300));
    // Keep polling through the outage: the reader must report it.
    run_until(&mut d, &mut seen, &mut reports, LIMIT, |_, _| true);
    let mut feed = Feed::new(&server, &keys);
    feed.data_all(501..=1000);
    let mut reconnected = false;
    let deadline = std::time::Instant::now() + LIMIT;
    while !(reconnected && seen.seqs(0).len() == 1000) {
        d.run_once(&mut seen, Duration::from_millis(5));
        for r in d.reports() {
            reconnected |= matches!(r, Report::Reconnected { stream: 0, .. });
            reports.push(r);
        }
        assert!(std::time::Instant::now() < deadline, "reports {reports:#?}, {} events", seen.events.len());
    }
    seen.assert_exactly_once(1000);
    assert!(
        reports.iter().any(|r| matches!(r, Report::Disconnected { stream: 0, .. })),
        "the outage is reported: {reports:#?}"
    );
}

/// The active stream lacks one event for good; the other stream has it. The engine re-reads the
/// active stream a bounded number of rounds, then asks the other stream to fill the hole, and
/// delivery goes on: exactly once, no loop.
pub fn permanent_hole_is_filled_from_the_other_stream<B: Backend>() {
    let server = B::start();
    let keys = ["a", "b"];
    let mut feed = Feed::new(&server, &keys);
    for s in 1..=200 {
        if s != 120 {
            feed.data(0, s);
        }
        feed.data(1, s);
    }
    let mut d = follow(&server, &keys, 7, |c| {
        c.liveness = Liveness { reread_rounds: 2, round_timeout_ns: 300_000_000, ..Liveness::default() };
    });
    d.engine_mut().resume_stream_at(0, 1);
    let (mut seen, mut reports) = (Seen::default(), Vec::new());
    run_until(&mut d, &mut seen, &mut reports, LIMIT, |s, _| s.seqs(0).len() == 200);
    seen.assert_exactly_once(200);
    assert!(seen.gaps >= 1 && seen.lost.is_empty());
    assert_eq!(d.engine().stats().fill_requests, 1, "one fill asked of b");
}

/// A cold switch whose target was trimmed past the frontier, while the old stream has nothing
/// more: the reader reports the trimmed range, the engine's bounded recovery reports exactly
/// the missing seqs as lost, and delivery goes on from the first entry still there.
pub fn trimmed_range_under_a_reread_is_reported_and_lost_exactly<B: Backend>() {
    let server = B::start();
    let keys = ["a", "b"];
    let mut feed = Feed::new(&server, &keys);
    for s in 1..=50 {
        feed.data(0, s);
    }
    let mut first_kept = 0;
    for s in 1..=100 {
        let p = feed.data(1, s);
        if s == 70 {
            first_kept = p;
        }
    }
    server.trim_before("b", first_kept);
    let mut d = follow(&server, &keys, 7, |c| {
        c.liveness = Liveness {
            reread_rounds: 1,
            round_timeout_ns: 200_000_000,
            exhausted: Exhausted::ReportLost,
            ..Liveness::default()
        };
    });
    d.engine_mut().resume_stream_at(0, 1);
    let (mut seen, mut reports) = (Seen::default(), Vec::new());
    run_until(&mut d, &mut seen, &mut reports, LIMIT, |s, _| s.seqs(0).len() == 50);
    feed.flip(0, &flip(FlipAction::Switch, 1, 9));
    run_until(&mut d, &mut seen, &mut reports, LIMIT, |s, _| s.seqs(0).last() == Some(&100));
    let seqs = seen.seqs(0);
    let want: Vec<u64> = (1..=50).chain(70..=100).collect();
    assert_eq!(seqs, want, "exactly once around the hole; notices {:#?}", seen.notices);
    assert_eq!(seen.lost, [(0, 51, 69)], "the trimmed seqs, exactly, as lost");
    assert!(
        reports.iter().any(|r| matches!(r, Report::Trimmed { stream: 1, first, .. } if *first == first_kept)),
        "the trim is reported, with the first entry left: {reports:#?}"
    );
}

/// The writer of the active stream is a process, killed with `kill -9` mid-stream and started
/// again later (it goes on from the last seq its key holds, as a restarted writer does). The
/// active stream falls silent: the engine reports it and fails over to the staged stream (opt-in
/// failover), and every event is delivered once.
pub fn writer_killed_with_sigkill_then_restarted<B: Backend>() {
    let server = B::start();
    let keys = ["a", "b"];
    let n = 4000;
    let mut d = follow(&server, &keys, 7, |c| {
        c.liveness = Liveness { silence_ns: 150_000_000, failover_on_silence: true, ..Liveness::default() };
    });
    d.engine_mut().resume_stream_at(0, 1);
    d.engine_mut().resume_stream_at(1, 1);
    assert!(d.engine_mut().arm(1), "stream b is staged from the start");
    let (mut seen, mut reports) = (Seen::default(), Vec::new());
    let mut writer_a = Writer::spawn(&server, "a", n, 300);
    let mut writer_b = Writer::spawn(&server, "b", n, 300);
    run_until(&mut d, &mut seen, &mut reports, LIMIT, |s, _| s.seqs(0).len() >= 800);
    writer_a.kill9();
    run_until(&mut d, &mut seen, &mut reports, LIMIT, |s, _| s.switches.iter().any(|w| w.2 == 0));
    let mut restarted = Writer::spawn(&server, "a", n, 300);
    run_until(&mut d, &mut seen, &mut reports, LIMIT, |s, _| s.seqs(0).len() == n as usize);
    seen.assert_exactly_once(n);
    assert!(seen.silences >= 1, "the silence of `a` was reported");
    assert_eq!(seen.switches[0].0..seen.switches[0].1, 0..1, "failed over from a to b: {:?}", seen.switches);
    assert!(writer_b.wait_ok() && restarted.wait_ok(), "the writers finished");
}

/// One flip, several recipients: a cohort flip switches the recipients it selects (and only
/// those); a second flip for everyone switches the rest. Each recipient gets every event once.
pub fn cohort_rollout_across_recipients<B: Backend>() {
    use harmonizer_core::flip::{in_cohort, Selector};
    let server = B::start();
    let keys = ["a", "b"];
    let mut feed = Feed::new(&server, &keys);
    let recipients = [11u64, 12, 13, 14, 15, 16];
    // A salt that splits them: some in the 50% cohort, some not.
    let salt = (1..1000u64)
        .find(|&s| {
            let k = recipients.iter().filter(|&&r| in_cohort(r, s, 5000)).count();
            k >= 2 && k <= recipients.len() - 2
        })
        .expect("some salt splits six recipients");
    let mut drivers: Vec<_> = recipients
        .iter()
        .map(|&r| {
            let mut d = follow(&server, &keys, r, |_| {});
            d.engine_mut().resume_stream_at(0, 1);
            (r, d, Seen::default(), Vec::new())
        })
        .collect();
    feed.data_all(1..=100);
    let mut cohort = flip(FlipAction::Switch, 1, 21);
    cohort.selector = Selector::Cohort { basis_points: 5000, salt };
    feed.flip_all(&cohort);
    feed.data_all(101..=200);
    let everyone = flip(FlipAction::Switch, 1, 22);
    feed.flip_all(&everyone);
    feed.data_all(201..=300);
    for (r, d, seen, reports) in &mut drivers {
        run_until(d, seen, reports, LIMIT, |s, _| s.seqs(0).len() == 300);
        seen.assert_exactly_once(300);
        let want = if in_cohort(*r, salt, 5000) { 21 } else { 22 };
        assert_eq!(seen.switches.len(), 1, "recipient {r}: {:?}", seen.switches);
        assert_eq!((seen.switches[0].1, seen.switches[0].2), (1, want), "recipient {r}");
        assert_eq!(d.engine().active_stream(), 1);
    }
}

/// The target of a switch lags by 1.5 s: the switch waits for it (a stall, reported with its
/// length in the `Switched` notice), nothing is lost, nothing repeated.
pub fn lagging_target_stalls_the_switch_and_loses_nothing<B: Backend>() {
    let server = B::start();
    let keys = ["a", "b"];
    let mut d = follow(&server, &keys, 7, |_| {});
    d.engine_mut().resume_stream_at(0, 1);
    let (mut seen, mut reports) = (Seen::default(), Vec::new());
    let url = server.url();
    // `a` now, `b` the same records 1.5 s later; the switch to `b` sits after seq 150 in both.
    let write = move |key: &'static str, delay: Duration| {
        let url = url.clone();
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            let mut feed = Feed { keys: vec![key.into()], p: B::publisher(&url) };
            for s in 1..=300 {
                if s == 151 {
                    feed.flip(0, &flip(FlipAction::Switch, 1, 31));
                }
                feed.data(0, s);
                std::thread::sleep(Duration::from_millis(4));
            }
        })
    };
    let ta = write("a", Duration::ZERO);
    let tb = write("b", Duration::from_millis(1500));
    run_until(&mut d, &mut seen, &mut reports, LIMIT, |s, _| s.seqs(0).len() == 300);
    ta.join().unwrap();
    tb.join().unwrap();
    seen.assert_exactly_once(300);
    assert_eq!(seen.switches.len(), 1);
    assert!(seen.stalls[0] >= 1_000_000_000, "the switch waited for b: stall {} ns", seen.stalls[0]);
    assert!(seen.lost.is_empty());
}

/// The same flip reaches the two streams at different logical points (after seq 100 in `a`,
/// after seq 130 in `b`), and so does the switchback (after 200 in `b`, 180 in `a`). Each is
/// applied once, where the active stream carries it; the copies met later are repeats.
pub fn flips_at_different_logical_points_in_each_stream<B: Backend>() {
    let server = B::start();
    let keys = ["a", "b"];
    let mut feed = Feed::new(&server, &keys);
    let mut d = follow(&server, &keys, 7, |_| {});
    d.engine_mut().resume_stream_at(0, 1);
    d.engine_mut().resume_stream_at(1, 1);
    let (mut seen, mut reports) = (Seen::default(), Vec::new());
    let switch = flip(FlipAction::Switch, 1, 41);
    let back = flip(FlipAction::Switchback, 0, 42);
    for s in 1..=300 {
        if s == 101 {
            feed.flip(0, &switch);
        }
        if s == 131 {
            feed.flip(1, &switch);
        }
        if s == 181 {
            feed.flip(0, &back);
        }
        if s == 201 {
            feed.flip(1, &back);
        }
        feed.data(0, s);
        feed.data(1, s);
    }
    run_until(&mut d, &mut seen, &mut reports, LIMIT, |s, _| s.seqs(0).len() == 300);
    seen.assert_exactly_once(300);
    let ids: Vec<_> = seen.switches.iter().map(|w| (w.0, w.1, w.2)).collect();
    assert_eq!(ids, [(0, 1, 41), (1, 0, 42)]);
    // Where each switch took effect: 41 after seq 100 (met on `a`), 42 after seq 200 (met on
    // `b`, active then).
    let stream_of = |seq: u64| seen.events.iter().find(|e| e.2 == seq).map(|e| e.0);
    assert_eq!(
        (stream_of(100), stream_of(101), stream_of(200), stream_of(201)),
        (Some(0), Some(1), Some(1), Some(0))
    );
    assert!(d.engine().stats().flips_repeated >= 1);
}
