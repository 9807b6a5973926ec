//! File-backed rings across real processes (issue 7): the engine in this process, producers
//! (and, for the consumer-restart test, engines) in child processes that re-execute this test
//! binary (`child_process_entry`, steered by environment variables).
//!
//! Nothing here is timed: processes hand over through pipes and `waitpid`, and the engine's
//! file checks run on every poll (`check_interval_ns: 0`) under a manual clock.

#![cfg(target_os = "linux")]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use harmonizer_core::clock::ManualClock;
use harmonizer_core::engine::{
    Engine, EngineConfig, FileOptions, Handler, ManualStage, Notice, StreamProducer,
};
use harmonizer_core::event::{EventHeader, KIND_DATA};
use harmonizer_core::ring::{PushError, Record};
use harmonizer_core::shm::{AttachMode, HeaderError, ProducerStatus, ShmError};

const CAPACITY: usize = 1 << 16;
const MAX_PAYLOAD: usize = 1024;

/// The payload of `seq`: a length that varies with the seq, bytes that depend on seq and index.
/// A record torn anywhere (header or payload) fails `check_payload`.
fn payload(seq: u64) -> Vec<u8> {
    let len = 8 + (seq.wrapping_mul(37) % 500) as usize;
    let mut p: Vec<u8> = (0..len).map(|i| (seq as u8).wrapping_mul(31).wrapping_add(i as u8)).collect();
    p[..8].copy_from_slice(&seq.to_le_bytes());
    p
}

fn header(seq: u64) -> EventHeader {
    EventHeader { pos: 1000 + seq, seq, ts_ns: seq, origin: 0, kind: KIND_DATA, flags: 0 }
}

fn check_payload(r: &Record<'_>) {
    assert_eq!(r.header.pos, 1000 + r.header.seq, "torn header");
    assert_eq!(r.payload, payload(r.header.seq).as_slice(), "torn payload of seq {}", r.header.seq);
}

#[derive(Default)]
struct Seen {
    seqs: Vec<u64>,
    gone: Vec<(u64, bool)>,
    truncated: Vec<(u64, u64)>,
    other: Vec<String>,
}

impl Handler for Seen {
    fn event(&mut self, _stream: u32, r: &Record<'_>) {
        check_payload(r);
        self.seqs.push(r.header.seq);
    }
    fn notice(&mut self, n: &Notice<'_>) {
        match *n {
            Notice::ProducerGone { generation, crashed, .. } => self.gone.push((generation, crashed)),
            Notice::RingFileTruncated { len, needed, .. } => self.truncated.push((len, needed)),
            // The initial stream's subscription at the first poll: the producer is the child.
            Notice::Subscribe { purpose: harmonizer_core::engine::Purpose::Initial, .. } => {}
            ref other => self.other.push(format!("{other:?}")),
        }
    }
}

fn temp_path(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("hz-shm-{}-{name}.ring", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

fn new_engine() -> (Engine, Vec<StreamProducer>) {
    let cfg = EngineConfig::new(7, 1, CAPACITY, MAX_PAYLOAD);
    Engine::with(cfg, Box::new(ManualStage), Box::new(ManualClock::at(1))).unwrap()
}

fn options(mode: AttachMode) -> FileOptions {
    FileOptions { mode, check_interval_ns: 0 }
}

/// Polls until `done(seen)`. Not a speed check: the bound (2 minutes of wall time, where a
/// healthy run needs milliseconds) only turns a hang into a failure that says what it waited
/// for, instead of a CI run that stops at its time limit.
fn poll_until(e: &mut Engine, seen: &mut Seen, what: &str, done: impl Fn(&Seen) -> bool) {
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !done(seen) {
        e.poll(64, seen);
        assert!(std::time::Instant::now() < give_up, "still waiting for {what} after 2 minutes");
    }
}

/// Polls until `seen` has `n` producer-gone notices. After `waitpid` the kernel may still hold a
/// dead process's file (and so its lock) for a moment; the notice comes at the first check
/// after it lets go.
fn await_gone(e: &mut Engine, seen: &mut Seen, n: usize) {
    poll_until(e, seen, "a producer-gone notice", |s| s.gone.len() >= n);
}

/// Polls until `n` polls in a row deliver nothing.
fn drain(e: &mut Engine, seen: &mut Seen) {
    let mut idle = 0;
    while idle < 4 {
        idle = if e.poll(64, seen) == 0 { idle + 1 } else { 0 };
    }
}

// ---------------------------------------------------------------------------------------------
// Child processes.

/// Starts this test binary again as a child process doing `role` (see `child_process_entry`).
fn spawn(role: &str, path: &Path, args: &[(&str, u64)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["child_process_entry", "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env("HZ_CHILD", role)
        .env("HZ_PATH", path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    for (k, v) in args {
        cmd.env(k, v.to_string());
    }
    cmd.spawn().unwrap()
}

/// Reads the child's stdout until a line `HZ <word> ...`; returns the rest of that line. Reads
/// a byte at a time, so nothing after that line is taken from the pipe.
fn expect_line(child: &mut Child, word: &str) -> String {
    let out = child.stdout.as_mut().unwrap();
    loop {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            assert_eq!(out.read(&mut byte).unwrap(), 1, "child ended before printing `HZ {word}`");
            if byte[0] == b'\n' {
                break;
            }
            line.push(byte[0]);
        }
        let line = String::from_utf8_lossy(&line);
        if let Some(rest) = line.trim().strip_prefix("HZ ") {
            if let Some(rest) = rest.strip_prefix(word) {
                return rest.trim().to_owned();
            }
        }
    }
}

fn kill(child: &mut Child, sig: i32) {
    // SAFETY: sending a signal to our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

fn env(name: &str) -> u64 {
    std::env::var(name).unwrap().parse().unwrap()
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "HZ {line}").unwrap();
    out.flush().unwrap();
}

/// Not a test of its own: the body of every child process. Does nothing unless `HZ_CHILD` is set.
#[test]
fn child_process_entry() {
    let Ok(role) = std::env::var("HZ_CHILD") else { return };
    let path = PathBuf::from(std::env::var("HZ_PATH").unwrap());
    match role.as_str() {
        // Pushes seqs FROM..TO (waiting out backpressure), says "pushed", then either exits
        // (dropping the producer: a clean close) or, with MIDWRITE=1, reserves one more record,
        // fills half of it, says "midwrite" and waits to be killed.
        "producer" => {
            let mut p = StreamProducer::open_file(&path).unwrap();
            say(&format!("generation {}", p.generation()));
            for seq in env("FROM")..env("TO") {
                loop {
                    match p.push(&header(seq), &payload(seq)) {
                        Ok(()) => break,
                        Err(PushError::Full) => std::thread::yield_now(),
                        Err(e) => panic!("push: {e}"),
                    }
                }
            }
            say("pushed");
            if std::env::var("MIDWRITE").is_ok() {
                let seq = env("TO");
                let mut batch = p.batch();
                let mut slot = batch.reserve(400).unwrap();
                *slot.header_mut() = header(seq);
                slot.payload_mut()[..200].fill(0xEE);
                say("midwrite");
                loop {
                    std::thread::park();
                }
            }
        }
        // An engine that resumes the file, restores its tracker from the checkpoint file (the
        // application's), polls, appends each delivered seq to the checkpoint, and with
        // DIE_AFTER=k kills itself inside the handler after the k-th event of this run:
        // the records of that poll were delivered but never released.
        "consumer" => {
            let (mut e, _p) = new_engine();
            e.attach_file(0, &path, options(AttachMode::Resume)).unwrap();
            let ckpt = PathBuf::from(format!("{}.ckpt", path.display()));
            let last = std::fs::read_to_string(&ckpt)
                .unwrap_or_default()
                .lines()
                .last()
                .map(|l| l.parse::<u64>().unwrap());
            if let Some(last) = last {
                e.tracker_mut().resume_at(0, last + 1);
            }
            struct App {
                ckpt: std::fs::File,
                die_after: Option<u64>,
                n: u64,
                seqs: Vec<u64>,
            }
            impl Handler for App {
                fn event(&mut self, _s: u32, r: &Record<'_>) {
                    check_payload(r);
                    writeln!(self.ckpt, "{}", r.header.seq).unwrap();
                    self.seqs.push(r.header.seq);
                    self.n += 1;
                    if Some(self.n) == self.die_after {
                        // SAFETY: killing ourselves.
                        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
                    }
                }
                fn notice(&mut self, _n: &Notice<'_>) {}
            }
            let mut app = App {
                ckpt: std::fs::OpenOptions::new().create(true).append(true).open(&ckpt).unwrap(),
                die_after: std::env::var("DIE_AFTER").ok().map(|v| v.parse().unwrap()),
                n: 0,
                seqs: Vec::new(),
            };
            let mut idle = 0;
            while idle < 4 {
                idle = if e.poll(1000, &mut app) == 0 { idle + 1 } else { 0 };
            }
            let first = app.seqs.first().copied().unwrap_or(u64::MAX);
            let last = app.seqs.last().copied().unwrap_or(u64::MAX);
            let contiguous = app.seqs.windows(2).all(|w| w[1] == w[0] + 1);
            say(&format!(
                "consumed {} {first} {last} {contiguous} {}",
                app.seqs.len(),
                e.stats().duplicates_dropped
            ));
        }
        other => panic!("unknown child role {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[test]
fn a_producer_in_another_process_feeds_the_engine() {
    let path = temp_path("two-process");
    let (mut e, _p) = new_engine();
    e.attach_file(0, &path, options(AttachMode::Create)).unwrap();
    assert_eq!(e.producer_status(0), Some(Ok(ProducerStatus::Never)));

    // 3000 records of ~250 bytes through a 64 KiB ring: it wraps many times and the producer
    // meets backpressure, so both sides run the protocol concurrently.
    let mut child = spawn("producer", &path, &[("FROM", 0), ("TO", 3000)]);
    assert_eq!(expect_line(&mut child, "generation"), "1");
    let mut seen = Seen::default();
    poll_until(&mut e, &mut seen, "events", |s| s.seqs.len() >= 3000);
    assert!(child.wait().unwrap().success());
    drain(&mut e, &mut seen);
    await_gone(&mut e, &mut seen, 1);
    assert_eq!(seen.seqs, (0..3000).collect::<Vec<_>>());
    // It dropped its producer on exit: a clean close, reported once.
    assert_eq!(seen.gone, vec![(1, false)]);
    assert!(matches!(e.producer_status(0), Some(Ok(ProducerStatus::Closed { generation: 1, .. }))));
    assert!(seen.other.is_empty(), "{:?}", seen.other);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_producer_killed_mid_write_leaves_nothing_torn_and_a_restarted_one_resumes() {
    let path = temp_path("sigkill");
    let (mut e, _p) = new_engine();
    e.attach_file(0, &path, options(AttachMode::Create)).unwrap();
    let mut seen = Seen::default();

    // Generation 1 publishes 0..100, then half-writes record 100 inside an open batch.
    let mut child = spawn("producer", &path, &[("FROM", 0), ("TO", 100), ("MIDWRITE", 1)]);
    expect_line(&mut child, "pushed");
    expect_line(&mut child, "midwrite");
    // Stopped mid-write, it is slow, not dead: it still holds its lock.
    kill(&mut child, libc::SIGSTOP);
    for _ in 0..5 {
        e.poll(64, &mut seen);
    }
    assert!(seen.gone.is_empty(), "a stopped producer was reported gone");
    assert!(matches!(e.producer_status(0), Some(Ok(ProducerStatus::Alive { generation: 1, .. }))));
    kill(&mut child, libc::SIGKILL);
    assert!(!child.wait().unwrap().success());
    drain(&mut e, &mut seen);
    await_gone(&mut e, &mut seen, 1);
    // Every published record, each checked whole; the half-written one never surfaces.
    assert_eq!(seen.seqs, (0..100).collect::<Vec<_>>());
    assert_eq!(seen.gone, vec![(1, true)], "the kill is reported once, as a crash");

    // Generation 2 resumes from the published tail, overwriting the torn bytes. Its upstream
    // re-sends from 95: the tracker drops 95..100.
    let mut child = spawn("producer", &path, &[("FROM", 95), ("TO", 400)]);
    assert_eq!(expect_line(&mut child, "generation"), "2");
    poll_until(&mut e, &mut seen, "events", |s| s.seqs.len() >= 400);
    assert!(child.wait().unwrap().success());
    drain(&mut e, &mut seen);
    await_gone(&mut e, &mut seen, 2);
    assert_eq!(seen.seqs, (0..400).collect::<Vec<_>>());
    assert_eq!(e.stats().duplicates_dropped, 5);
    assert_eq!(seen.gone, vec![(1, true), (2, false)]);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn producers_killed_at_random_points_never_tear_a_record() {
    let path = temp_path("sigkill-random");
    let (mut e, _p) = new_engine();
    e.attach_file(0, &path, options(AttachMode::Create)).unwrap();
    let mut seen = Seen::default();
    // Each round's producer pushes far more than the ring holds and is killed as soon as the
    // engine has seen some of its records: wherever it is then (most likely inside a write,
    // spinning on backpressure or copying a payload). Every delivered record is checked
    // whole by `Seen::event`; the next round re-sends from the last delivered seq + 1.
    for round in 0..6u64 {
        let from = seen.seqs.last().map_or(0, |s| s + 1);
        let mut child = spawn("producer", &path, &[("FROM", from), ("TO", from + 1_000_000)]);
        assert_eq!(expect_line(&mut child, "generation"), (round + 1).to_string());
        let target = seen.seqs.len() + 500 + 97 * round as usize;
        poll_until(&mut e, &mut seen, "events", |s| s.seqs.len() >= target);
        kill(&mut child, libc::SIGKILL);
        let _ = child.wait();
        drain(&mut e, &mut seen);
        await_gone(&mut e, &mut seen, round as usize + 1);
    }
    let n = seen.seqs.len() as u64;
    assert_eq!(seen.seqs, (0..n).collect::<Vec<_>>());
    assert_eq!(seen.gone, (1..=6).map(|g| (g, true)).collect::<Vec<_>>());
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_restarted_consumer_resumes_from_its_last_release_and_drops_what_it_had_delivered() {
    let path = temp_path("consumer-restart");
    let ckpt = PathBuf::from(format!("{}.ckpt", path.display()));
    let _ = std::fs::remove_file(&ckpt);
    // Made by an engine in this process, which then goes away (itself a consumer restart).
    {
        let (mut e, _p) = new_engine();
        e.attach_file(0, &path, options(AttachMode::Create)).unwrap();
    }
    let mut p = StreamProducer::open_file(&path).unwrap();
    for seq in 0..200 {
        p.push(&header(seq), &payload(seq)).unwrap();
    }
    // Consumer 1 delivers 150 events in one poll and is killed inside the handler: none of
    // them were released, all were checkpointed by the application.
    let mut c1 = spawn("consumer", &path, &[("DIE_AFTER", 150)]);
    let status = c1.wait().unwrap();
    assert!(!status.success(), "consumer 1 was to die");
    assert_eq!(std::fs::read_to_string(&ckpt).unwrap().lines().count(), 150);

    // Consumer 2 resumes from the head word in the file: records 0..150 come again and its
    // tracker, restored from the checkpoint, drops them; 150..200 are delivered once.
    let mut c2 = spawn("consumer", &path, &[]);
    let report = expect_line(&mut c2, "consumed");
    assert!(c2.wait().unwrap().success());
    assert_eq!(report, "50 150 199 true 150", "count first last contiguous duplicates");

    // The producer never noticed: it goes on into the same ring.
    for seq in 200..250 {
        p.push(&header(seq), &payload(seq)).unwrap();
    }
    let mut c3 = spawn("consumer", &path, &[]);
    assert_eq!(expect_line(&mut c3, "consumed"), "50 200 249 true 0");
    assert!(c3.wait().unwrap().success());
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&ckpt);
}

#[test]
fn truncating_the_file_under_a_live_engine_is_a_notice_not_a_crash() {
    let path = temp_path("truncate");
    let (mut e, mut producers) = new_engine();
    e.attach_file(0, &path, options(AttachMode::Create)).unwrap();
    let mut child = spawn("producer", &path, &[("FROM", 0), ("TO", 100)]);
    expect_line(&mut child, "pushed");
    assert!(child.wait().unwrap().success());
    let mut seen = Seen::default();
    e.poll(10, &mut seen);
    assert_eq!(seen.seqs.len(), 10);

    // Another process shrinks the file under the engine's mapping.
    let st = Command::new("truncate").args(["-s", "100"]).arg(&path).status().unwrap();
    assert!(st.success());
    drain(&mut e, &mut seen);
    assert_eq!(seen.truncated, vec![(100, (4096 + CAPACITY) as u64)]);
    // The 90 records left in the file are not read from it; the process lives on, and the
    // stream is back on its in-process ring, where its in-process producer can feed it.
    assert_eq!(seen.seqs.len(), 10);
    producers[0].push(&header(10), &payload(10)).unwrap();
    drain(&mut e, &mut seen);
    assert_eq!(seen.seqs, (0..11).collect::<Vec<_>>());
    // A new file can be attached.
    std::fs::remove_file(&path).unwrap();
    e.attach_file(0, &path, options(AttachMode::Create)).unwrap();
    let _ = std::fs::remove_file(&path);
}

#[test]
fn mismatched_corrupt_and_busy_files_are_refused_with_a_reason() {
    let path = temp_path("refuse");
    let (mut e, _p) = new_engine();
    e.attach_file(0, &path, options(AttachMode::Create)).unwrap();
    assert_eq!(e.attach_file(9, &path, options(AttachMode::Resume)), Err(ShmError::UnknownStream(9)));

    // One engine per file, one producer per file.
    let (mut e2, _p2) = new_engine();
    assert!(matches!(
        e2.attach_file(0, &path, options(AttachMode::Resume)),
        Err(ShmError::ConsumerBusy { .. })
    ));
    assert_eq!(e2.attach_file(0, &path, options(AttachMode::Create)), Err(ShmError::Exists));
    let p = StreamProducer::open_file(&path).unwrap();
    assert!(matches!(StreamProducer::open_file(&path), Err(ShmError::ProducerBusy { generation: 1, .. })));
    drop(p);
    drop(e);

    // Another configuration.
    let cfg = EngineConfig::new(7, 1, CAPACITY * 2, MAX_PAYLOAD);
    let (mut e3, _p3) = Engine::new(cfg).unwrap();
    assert_eq!(
        e3.attach_file(0, &path, options(AttachMode::Resume)),
        Err(ShmError::Mismatch { field: "capacity", file: CAPACITY as u64, expected: 2 * CAPACITY as u64 })
    );

    // Corruption, byte by byte (the engine that made the file is gone).
    let bytes = std::fs::read(&path).unwrap();
    let write = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = bytes.clone();
        f(&mut b);
        std::fs::write(&path, &b).unwrap();
    };
    write(&|b| b[0] = b'X');
    assert_eq!(StreamProducer::open_file(&path).err(), Some(ShmError::Header(HeaderError::BadMagic)));
    write(&|b| b[8] = 9); // layout version
    assert!(matches!(
        StreamProducer::open_file(&path).err(),
        Some(ShmError::Header(HeaderError::UnsupportedVersion { found: 9, supported: 2 }))
    ));
    write(&|b| b[24] ^= 0x40); // a capacity bit, under the checksum
    assert!(matches!(
        StreamProducer::open_file(&path).err(),
        Some(ShmError::Header(HeaderError::Checksum { .. }))
    ));
    write(&|b| b.truncate(4096 + 100));
    assert_eq!(
        StreamProducer::open_file(&path).err(),
        Some(ShmError::Truncated { len: 4196, needed: (4096 + CAPACITY) as u64 })
    );
    write(&|b| b.truncate(10));
    assert!(matches!(StreamProducer::open_file(&path).err(), Some(ShmError::Truncated { len: 10, .. })));
    write(&|b| b.extend_from_slice(&[0; 8]));
    assert!(matches!(StreamProducer::open_file(&path).err(), Some(ShmError::SizeMismatch { .. })));
    // Positions: the tail word (second line of the words at 1024) pushed past head + capacity.
    write(&|b| b[1024 + 128..1024 + 136].copy_from_slice(&((CAPACITY as u64) * 4).to_ne_bytes()));
    assert!(matches!(StreamProducer::open_file(&path).err(), Some(ShmError::Positions { .. })));
    // Every error explains itself.
    let msg = StreamProducer::open_file(&path).err().unwrap().to_string();
    assert!(msg.contains("corrupt"), "{msg}");
    assert!(matches!(
        StreamProducer::open_file(Path::new("/nonexistent/hz.ring")),
        Err(ShmError::Io { op: "open", errno: libc::ENOENT })
    ));
    let _ = std::fs::remove_file(&path);
}

/// `Engine::wait` on a ring file: the producer in another process wakes the engine (a shared
/// futex on the mapped doorbell). The engine only waits and polls; every record arrives. The
/// two-minute bound turns a lost wakeup into a failure instead of a hang; a healthy run needs
/// milliseconds.
#[test]
fn a_producer_in_another_process_wakes_a_waiting_engine() {
    let path = temp_path("wait");
    let (mut e, _p) = new_engine();
    e.attach_file(0, &path, options(AttachMode::Create)).unwrap();
    let mut seen = Seen::default();
    e.poll(64, &mut seen); // the first poll
    let mut child = spawn("producer", &path, &[("FROM", 0), ("TO", 3000)]);
    assert_eq!(expect_line(&mut child, "generation"), "1");
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut woken = 0u64;
    while seen.seqs.len() < 3000 {
        if e.wait(std::time::Duration::from_secs(5)) {
            woken += 1;
        }
        e.poll(64, &mut seen);
        assert!(std::time::Instant::now() < give_up, "still waiting after 2 minutes: {}", seen.seqs.len());
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(seen.seqs, (0..3000).collect::<Vec<_>>());
    assert!(woken > 0);
    let _ = std::fs::remove_file(&path);
}
