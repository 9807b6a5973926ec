//! A producer in another process (a ring file) beside one in this process (a heap ring), in the
//! same run (issue 7).
//!
//! Groups `shm_64B` and `shm_256B` (record = 32-byte header + 32 or 224 payload bytes),
//! throughput in elements. The consumer is `Engine::poll(64, handler)` in both, and the handler
//! checksums a header field and the last payload byte:
//!
//! - `in_process`: the stream's own heap ring, fed by a producer thread.
//! - `cross_process`: the same stream attached to a ring file (`Engine::attach_file`), fed by a
//!   child process (this bench binary re-executed with `HZ_SHM_BENCH_CHILD` set) that opened it
//!   with `StreamProducer::open_file`.
//!
//! Both producers push in batches of 64 and spin on backpressure; each sample asks the
//! producer (over a channel, or the child's stdin) for `iters` events and times until the
//! engine has delivered them all. The ratio between the two is the cost of the other process
//! (the same protocol on shared pages, plus the liveness check every 1 ms of engine clock).

#[cfg(target_os = "linux")]
mod imp {
    use std::hint::black_box;
    use std::io::{BufRead, BufReader, Write};
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use criterion::{BenchmarkGroup, Criterion, Throughput};
    use harmonizer_core::engine::{Engine, EngineConfig, FileOptions, Handler, Notice, StreamProducer};
    use harmonizer_core::event::{EventHeader, KIND_DATA};
    use harmonizer_core::ring::Record;
    use harmonizer_core::shm::AttachMode;

    const CAPACITY: usize = 1 << 19;
    const MAX_PAYLOAD: usize = 256;

    fn header(seq: u64) -> EventHeader {
        EventHeader { pos: seq + 1, seq, ts_ns: seq, origin: 0, kind: KIND_DATA, flags: 0 }
    }

    /// Pushes `n` events from `*next` in batches of 64, spinning on backpressure.
    fn produce(p: &mut StreamProducer, next: &mut u64, n: u64, payload_len: usize) {
        let payload = [7u8; MAX_PAYLOAD];
        let end = *next + n;
        while *next < end {
            let mut b = p.batch();
            let mut k = 0;
            while k < 64 && *next < end && b.push(&header(*next), &payload[..payload_len]).is_ok() {
                *next += 1;
                k += 1;
            }
            drop(b);
            if k == 0 {
                std::hint::spin_loop();
            }
        }
    }

    #[derive(Default)]
    struct Sum {
        sum: u64,
        n: u64,
    }

    impl Handler for Sum {
        #[inline]
        fn event(&mut self, _stream: u32, r: &Record<'_>) {
            self.sum = self.sum.wrapping_add(r.header.seq ^ u64::from(r.payload[r.payload.len() - 1]));
            self.n += 1;
        }
        fn notice(&mut self, n: &Notice<'_>) {
            // The initial stream's subscription at the first poll is expected; nothing else.
            if !matches!(n, Notice::Subscribe { purpose: harmonizer_core::engine::Purpose::Initial, .. }) {
                panic!("unexpected notice {n:?}");
            }
        }
    }

    /// Where events come from: asked for `n`, it produces them; `wait` returns when it has.
    trait Feed {
        fn ask(&mut self, n: u64);
        fn wait(&mut self);
    }

    struct ThreadFeed {
        go: mpsc::Sender<u64>,
        done: mpsc::Receiver<()>,
    }

    impl Feed for ThreadFeed {
        fn ask(&mut self, n: u64) {
            self.go.send(n).unwrap();
        }
        fn wait(&mut self) {
            self.done.recv().unwrap();
        }
    }

    struct ChildFeed {
        child: Child,
        lines: BufReader<std::process::ChildStdout>,
    }

    impl Feed for ChildFeed {
        fn ask(&mut self, n: u64) {
            let stdin = self.child.stdin.as_mut().unwrap();
            writeln!(stdin, "{n}").unwrap();
            stdin.flush().unwrap();
        }
        fn wait(&mut self) {
            let mut line = String::new();
            loop {
                line.clear();
                assert!(self.lines.read_line(&mut line).unwrap() > 0, "bench child died");
                if line.starts_with("HZ done") {
                    return;
                }
            }
        }
    }

    impl Drop for ChildFeed {
        fn drop(&mut self) {
            drop(self.child.stdin.take()); // EOF: the child exits
            let _ = self.child.wait();
        }
    }

    fn sample(e: &mut Engine, feed: &mut dyn Feed, sum: &mut Sum, iters: u64) -> Duration {
        let target = sum.n + iters;
        let t0 = Instant::now();
        feed.ask(iters);
        while sum.n < target {
            e.poll(64, sum);
        }
        let t = t0.elapsed();
        feed.wait();
        black_box(sum.sum);
        t
    }

    fn engine() -> (Engine, Vec<StreamProducer>) {
        Engine::new(EngineConfig::new(1, 1, CAPACITY, MAX_PAYLOAD)).unwrap()
    }

    fn in_process(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, payload_len: usize) {
        let (mut e, mut producers) = engine();
        let mut p = producers.remove(0);
        let (go, rx) = mpsc::channel::<u64>();
        let (tx, done) = mpsc::channel();
        let t = std::thread::spawn(move || {
            let mut next = 0;
            while let Ok(n) = rx.recv() {
                produce(&mut p, &mut next, n, payload_len);
                let _ = tx.send(());
            }
        });
        let mut feed = ThreadFeed { go, done };
        let mut sum = Sum::default();
        group.bench_function("in_process", |b| {
            b.iter_custom(|iters| sample(&mut e, &mut feed, &mut sum, iters))
        });
        drop(feed);
        t.join().unwrap();
    }

    fn cross_process(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, payload_len: usize) {
        let path =
            std::env::temp_dir().join(format!("hz-bench-shm-{}-{payload_len}.ring", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let (mut e, _producers) = engine();
        let options = FileOptions { mode: AttachMode::Create, ..FileOptions::default() };
        e.attach_file(0, &path, options).unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env("HZ_SHM_BENCH_CHILD", &path)
            .env("HZ_PAYLOAD", payload_len.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap());
        let mut feed = ChildFeed { child, lines };
        let mut sum = Sum::default();
        group.bench_function("cross_process", |b| {
            b.iter_custom(|iters| sample(&mut e, &mut feed, &mut sum, iters))
        });
        drop(feed);
        let _ = std::fs::remove_file(&path);
    }

    /// The child: opens the ring file and produces what its stdin asks for.
    fn child(path: PathBuf) {
        let payload_len: usize = std::env::var("HZ_PAYLOAD").unwrap().parse().unwrap();
        let mut p = StreamProducer::open_file(&path).unwrap();
        let mut next = 0;
        let stdin = std::io::stdin();
        let mut out = std::io::stdout().lock();
        for line in stdin.lock().lines() {
            let n: u64 = line.unwrap().trim().parse().unwrap();
            produce(&mut p, &mut next, n, payload_len);
            writeln!(out, "HZ done").unwrap();
            out.flush().unwrap();
        }
    }

    fn groups(c: &mut Criterion) {
        for (name, payload_len) in [("shm_64B", 32), ("shm_256B", 224)] {
            let mut group = c.benchmark_group(name);
            group.throughput(Throughput::Elements(1));
            group
                .measurement_time(Duration::from_secs(3))
                .warm_up_time(Duration::from_secs(1))
                .sample_size(20);
            in_process(&mut group, payload_len);
            cross_process(&mut group, payload_len);
            group.finish();
        }
    }

    pub fn main() {
        if let Some(path) = std::env::var_os("HZ_SHM_BENCH_CHILD") {
            child(PathBuf::from(path));
            return;
        }
        let mut c = Criterion::default().configure_from_args();
        groups(&mut c);
        c.final_summary();
    }
}

#[cfg(target_os = "linux")]
fn main() {
    imp::main();
}

/// Ring files are Linux only.
#[cfg(not(target_os = "linux"))]
fn main() {}
