//! A real `redis-server` per test (on a free loopback port, its own directory, stopped on
//! drop), a recipient that records what it is given, and a feed writer.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harmonizer_connect::{Driver, DriverOptions, Report};
use harmonizer_core::engine::{Engine, EngineConfig, Handler, Notice};
use harmonizer_core::event::{EventHeader, KIND_DATA, KIND_FLIP};
use harmonizer_core::flip::{Flip, FlipAction, Selector};
use harmonizer_core::ring::Record;
use harmonizer_redis::{RedisPublisher, RedisUpstream};

/// A `redis-server` process of this test's own.
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind a loopback port").local_addr().unwrap().port()
}

impl Server {
    /// Starts one, with an append-only file synced on every write (so a restart keeps every
    /// entry), and waits until it answers.
    pub fn start() -> Server {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("hz-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut s = Server { child: None, port, dir };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"])
            .args(["--appendfsync", "always", "--dir"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/check.sh installs it): run `apt-get install redis-server`");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut p) = RedisPublisher::new(&self.url()) {
                if p.command(&redis::cmd("PING")).is_ok() {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "redis-server on port {} did not answer in 10 s", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// `kill -9` the server, then start it again on the same port and files.
    pub fn crash_and_restart(&mut self, down_for: Duration) {
        self.kill();
        std::thread::sleep(down_for);
        self.spawn();
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
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

pub fn payload(origin: u32, seq: u64) -> Vec<u8> {
    format!("o{origin}-event-{seq}").into_bytes()
}

/// Writes the same logical events into several keys.
pub struct Feed {
    pub keys: Vec<String>,
    pub p: RedisPublisher,
}

impl Feed {
    pub fn new(server: &Server, keys: &[&str]) -> Feed {
        Feed {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            p: RedisPublisher::new(&server.url()).unwrap(),
        }
    }

    /// Data event `seq` of origin 0 into key `k`.
    pub fn data(&mut self, k: usize, seq: u64) -> u64 {
        let h = EventHeader { pos: 0, seq, ts_ns: seq * 1_000_000, origin: 0, kind: KIND_DATA, flags: 0 };
        self.p.publish(&self.keys[k], &h, &payload(0, seq)).unwrap()
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
        self.p.publish(&self.keys[k], &h, &flip.to_vec().unwrap()).unwrap()
    }

    /// A flip into every key.
    pub fn flip_all(&mut self, flip: &Flip<'_>) {
        for k in 0..self.keys.len() {
            self.flip(k, flip);
        }
    }
}

pub fn flip(action: FlipAction, target: u32, flip_id: u64) -> Flip<'static> {
    Flip {
        action,
        flip_id,
        target,
        cutover_pos: 0,
        resume_pos: 0,
        not_before_ns: 0,
        expected_in_ns: 0,
        selector: Selector::All,
        locator: b"",
    }
}

/// A recipient following `keys` on `server` through the driver (manual staging: announced
/// streams and the switchback target are staged).
pub fn follow(
    server: &Server,
    keys: &[&str],
    recipient: u64,
    config: impl FnOnce(&mut EngineConfig),
) -> Driver {
    let mut cfg = EngineConfig::new(recipient, keys.len() as u32, 1 << 16, 1024);
    config(&mut cfg);
    let (engine, producers) = Engine::new(cfg).unwrap();
    let upstream = RedisUpstream::new(&server.url(), keys.iter().map(|k| k.to_string()).collect()).unwrap();
    let opts = DriverOptions { read_timeout: Duration::from_millis(20), ..DriverOptions::default() };
    Driver::new(engine, producers, Arc::new(upstream), opts).unwrap()
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

/// A writer process: this test binary run again as `writer_process` (tests/redis.rs), writing
/// seqs up to `n` of origin 0 into `key`, one every `gap_us` µs, from the seq after the last one
/// the key holds. So it can be killed with SIGKILL and started again.
pub struct Writer {
    child: Child,
}

impl Writer {
    pub fn spawn(server: &Server, key: &str, n: u64, gap_us: u64) -> Writer {
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

/// The body of a writer process (see [`Writer`]); does nothing in an ordinary test run.
pub fn writer_main() {
    let Ok(spec) = std::env::var("HZ_TEST_WRITER") else { return };
    let parts: Vec<&str> = spec.split(' ').collect();
    let (url, key, n, gap_us): (&str, &str, u64, u64) =
        (parts[0], parts[1], parts[2].parse().unwrap(), parts[3].parse().unwrap());
    let mut p = RedisPublisher::new(url).unwrap();
    // The last seq already written (a restarted writer goes on after it).
    let last = match p
        .command(redis::cmd("XREVRANGE").arg(key).arg("+").arg("-").arg("COUNT").arg(1))
        .unwrap()
    {
        redis::Value::Array(entries) => entries.first().and_then(|e| match e {
            redis::Value::Array(kv) => match kv.get(1) {
                Some(redis::Value::Array(fields)) => fields.chunks(2).find_map(|f| match (&f[0], &f[1]) {
                    (redis::Value::BulkString(k), redis::Value::BulkString(v)) if k == b"s" => {
                        std::str::from_utf8(v).ok()?.parse::<u64>().ok()
                    }
                    _ => None,
                }),
                _ => None,
            },
            _ => None,
        }),
        _ => None,
    }
    .unwrap_or(0);
    for seq in last + 1..=n {
        let h = EventHeader { pos: 0, seq, ts_ns: seq * 1_000_000, origin: 0, kind: KIND_DATA, flags: 0 };
        p.publish(key, &h, &payload(0, seq)).unwrap();
        std::thread::sleep(Duration::from_micros(gap_us));
    }
}
