//! The driver: owns the engine and one reader thread per stream, turns the engine's
//! `Subscribe` / `Unsubscribe` notices into reader commands, and sleeps on the engine's wait
//! call when nothing is delivered.
//!
//! # Threads
//!
//! The driver and the engine live on the application's thread (the poll thread). Each stream
//! has a reader thread that owns the stream's producer and an upstream reader. They meet in the
//! engine's rings (events) and in two channels: commands to a reader (start from here, stop,
//! quit), reports from the readers (connection lost, a trimmed range, an entry skipped...).
//!
//! # What a reader does
//!
//! Idle until told to start. Then: connect (retrying with backoff, reported once per outage),
//! seek, read up to a batch with a bounded wait, push each entry into the ring. The active ring
//! pushes back when full: the reader retries with a backoff bounded at 1 ms, checking for a
//! new command between tries (a new start or a stop supersedes the entries it holds), and
//! reports a push-back that lasts longer than [`DriverOptions::full_report_after`]. After a lost
//! connection it seeks again from the position after the last entry it pushed, so nothing is
//! skipped and nothing is pushed twice by the reader (the engine drops duplicates anyway).

use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use harmonizer_core::engine::{Engine, Handler, Notice, StartAt, StreamProducer};
use harmonizer_core::ring::{PushError, Record};

use crate::entry::Entry;
use crate::upstream::{Reader, Seeked, Skipped, Start, Upstream, UpstreamError};

/// How the driver and its readers behave.
#[derive(Clone, Debug)]
pub struct DriverOptions {
    /// Most entries a reader asks the upstream for at once.
    pub batch: usize,
    /// Longest a reader's read waits for the first entry (it checks for commands in between).
    pub read_timeout: Duration,
    /// First wait before reconnecting; doubled per failure up to `reconnect_max`.
    pub reconnect_min: Duration,
    /// Longest wait between reconnection attempts.
    pub reconnect_max: Duration,
    /// A full active ring reported once it has pushed back this long (and again each time the
    /// wait doubles).
    pub full_report_after: Duration,
    /// Most events one [`Driver::run_once`] delivers.
    pub poll_max: usize,
    /// Called on the reader's thread with every entry read from the upstream, before it is
    /// pushed: the stream, the header and the payload (`harmonize follow --record-trace`
    /// records arrivals with it). It must be quick and must not block.
    pub tap: Option<ArrivalTap>,
}

/// What an [`ArrivalTap`] calls: stream, header, payload.
pub type ArrivalFn = dyn Fn(u32, &harmonizer_core::event::EventHeader, &[u8]) + Send + Sync;

/// A [`DriverOptions::tap`].
#[derive(Clone)]
pub struct ArrivalTap(pub Arc<ArrivalFn>);

impl core::fmt::Debug for ArrivalTap {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ArrivalTap")
    }
}

impl Default for DriverOptions {
    fn default() -> Self {
        DriverOptions {
            batch: 512,
            read_timeout: Duration::from_millis(100),
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_secs(2),
            full_report_after: Duration::from_secs(1),
            poll_max: 1024,
            tap: None,
        }
    }
}

/// What the readers report, in the order each reader saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// A reader was positioned: `start` resolved to `at`.
    Started {
        /// The stream.
        stream: u32,
        /// The start the engine asked for (or the reader's own, after a reconnect).
        start: Start,
        /// Where the reader is now.
        at: Seeked,
    },
    /// A start asked for a range the upstream no longer has (trimmed, expired): reading goes
    /// on from `first`, and the engine's recovery reports what is missing as lost.
    Trimmed {
        /// The stream.
        stream: u32,
        /// The start asked for.
        start: Start,
        /// The first position the upstream still has, where reading goes on.
        first: u64,
    },
    /// An entry was skipped (not delivered).
    Skipped {
        /// The stream.
        stream: u32,
        /// What and why.
        what: Skipped,
    },
    /// The upstream failed; the reader retries with backoff. Once per outage.
    Disconnected {
        /// The stream.
        stream: u32,
        /// The error.
        error: UpstreamError,
    },
    /// The reader is connected again after an outage.
    Reconnected {
        /// The stream.
        stream: u32,
        /// How long the outage lasted.
        after: Duration,
    },
    /// A reader thread ended by a panic (a bug in a connector): its stream is read no more.
    /// Reported once.
    ReaderFailed {
        /// The stream.
        stream: u32,
        /// The panic's message, when it had one.
        why: String,
    },
    /// The active ring has been full this long: the application is not polling fast enough.
    Backpressure {
        /// The stream.
        stream: u32,
        /// How long the reader has waited.
        waited: Duration,
    },
}

/// What a reader is told.
enum Command {
    Start(Start),
    Stop,
    Quit,
}

struct ReaderHandle {
    stream: u32,
    tx: Sender<Command>,
    join: Option<JoinHandle<()>>,
}

impl ReaderHandle {
    /// If the thread ended by a panic, its report (once: the handle is joined).
    fn failure(&mut self) -> Option<Report> {
        if !self.join.as_ref().is_some_and(JoinHandle::is_finished) {
            return None;
        }
        let panic = self.join.take()?.join().err()?;
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Some(Report::ReaderFailed { stream: self.stream, why })
    }
}

/// The engine and the readers that feed it: see the module docs.
pub struct Driver {
    engine: Engine,
    readers: Vec<ReaderHandle>,
    reports_rx: Receiver<Report>,
    /// Starts and stops the last poll asked for, in order, sent after it returned.
    asked: Vec<(u32, Asked)>,
    options: DriverOptions,
}

/// A notice's request, as recorded during a poll.
#[derive(Clone, Copy)]
enum Asked {
    Start(StartAt),
    Stop,
}

impl Driver {
    /// Starts a reader thread per producer (the engine's streams) on `upstream`. The readers
    /// are idle until the engine subscribes their stream (its first poll subscribes the
    /// initial stream).
    pub fn new<U: Upstream>(
        engine: Engine,
        producers: Vec<StreamProducer>,
        upstream: Arc<U>,
        options: DriverOptions,
    ) -> std::io::Result<Driver> {
        let (reports_tx, reports_rx) = mpsc::channel();
        let mut readers = Vec::with_capacity(producers.len());
        for producer in producers {
            let stream = producer.stream();
            let (tx, rx) = mpsc::channel();
            let ctx = ReaderCtx {
                stream,
                upstream: Arc::clone(&upstream),
                producer,
                commands: rx,
                reports: reports_tx.clone(),
                options: options.clone(),
            };
            let join =
                std::thread::Builder::new().name(format!("hz-reader-{stream}")).spawn(move || ctx.run())?;
            readers.push(ReaderHandle { stream, tx, join: Some(join) });
        }
        Ok(Driver { engine, readers, reports_rx, asked: Vec::new(), options })
    }

    /// The engine (statistics, the tracker, the active stream).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine, to call what the driver does not (resume a checkpoint before the first
    /// poll, arm a stream, give up a stuck gap).
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// Polls the engine once, delivering up to `max` events to `handler` (notices too), and
    /// sends the readers what the notices asked for. Returns the events delivered.
    pub fn poll<H: Handler>(&mut self, max: usize, handler: &mut H) -> usize {
        let mut tap = Tap { inner: handler, asked: &mut self.asked };
        let n = self.engine.poll(max, &mut tap);
        self.send_asked();
        n
    }

    /// [`poll`](Self::poll)s, and when nothing was delivered sleeps on the engine's wait call
    /// for at most `wait` (woken by the active stream's next publish or an engine deadline).
    /// Returns the events delivered.
    pub fn run_once<H: Handler>(&mut self, handler: &mut H, wait: Duration) -> usize {
        let n = self.poll(self.options.poll_max, handler);
        if n == 0 {
            self.engine.wait(wait);
        }
        n
    }

    /// The reports the readers sent since the last call, in order, then any reader found
    /// ended by a panic.
    pub fn reports(&mut self) -> impl Iterator<Item = Report> + '_ {
        let failed: Vec<Report> = self.readers.iter_mut().filter_map(ReaderHandle::failure).collect();
        self.reports_rx.try_iter().chain(failed)
    }

    fn send_asked(&mut self) {
        for (stream, asked) in self.asked.drain(..) {
            let Some(r) = self.readers.iter().find(|r| r.stream == stream) else { continue };
            let cmd = match asked {
                Asked::Stop => Command::Stop,
                Asked::Start(StartAt::Pos(p)) => Command::Start(Start::Pos(p)),
                Asked::Start(StartAt::Live) => Command::Start(Start::Live),
                Asked::Start(StartAt::AfterSeq { origin, seq }) => {
                    Command::Start(Start::AfterSeq { origin, seq })
                }
                Asked::Start(StartAt::AfterFrontier) => {
                    Command::Start(Start::AfterFrontier(self.engine.tracker().frontier().collect()))
                }
            };
            // A reader that ended (it cannot, but for a panic) drops the command: nothing to do.
            let _ = r.tx.send(cmd);
        }
    }
}

impl Drop for Driver {
    /// Stops the readers: each ends within one read timeout (or one backoff step).
    fn drop(&mut self) {
        for r in &self.readers {
            let _ = r.tx.send(Command::Quit);
        }
        for r in &mut self.readers {
            if let Some(j) = r.join.take() {
                let _ = j.join();
            }
        }
    }
}

/// The application's handler, with the driver listening to the notices.
struct Tap<'a, H> {
    inner: &'a mut H,
    asked: &'a mut Vec<(u32, Asked)>,
}

impl<H: Handler> Handler for Tap<'_, H> {
    #[inline]
    fn event(&mut self, stream: u32, record: &Record<'_>) {
        self.inner.event(stream, record);
    }
    #[inline]
    fn filled(&mut self, stream: u32, record: &Record<'_>) {
        self.inner.filled(stream, record);
    }
    fn notice(&mut self, notice: &Notice<'_>) {
        match *notice {
            Notice::Subscribe { stream, from, .. } => self.asked.push((stream, Asked::Start(from))),
            Notice::Unsubscribe { stream } => self.asked.push((stream, Asked::Stop)),
            _ => {}
        }
        self.inner.notice(notice);
    }
}

/// One reader thread's state.
struct ReaderCtx<U: Upstream> {
    stream: u32,
    upstream: Arc<U>,
    producer: StreamProducer,
    commands: Receiver<Command>,
    reports: Sender<Report>,
    options: DriverOptions,
}

/// Applies a command to a reader's state; true to quit.
fn apply<R>(st: &mut State<R>, cmd: Command) -> bool {
    match cmd {
        Command::Quit => return true,
        Command::Stop => {
            st.want = None;
            st.pending.clear();
        }
        Command::Start(s) => {
            st.want = Some(s);
            st.must_seek = true;
            st.next_pos = None;
            st.pending.clear();
            st.full_since = None;
            st.full_reported = Duration::ZERO;
        }
    }
    false
}

/// Where a reader stands.
struct State<R> {
    /// What the engine asked for last; `None` while stopped.
    want: Option<Start>,
    reader: Option<R>,
    /// The reader must be positioned before it reads.
    must_seek: bool,
    /// The position after the last entry pushed since the last start: where to go on from
    /// after a reconnect.
    next_pos: Option<u64>,
    pending: VecDeque<Entry>,
    /// Since when the upstream has been failing (reported once per outage).
    down_since: Option<Instant>,
    backoff: Duration,
    /// Since when the active ring has pushed back, and the wait last reported.
    full_since: Option<Instant>,
    full_reported: Duration,
}

impl<U: Upstream> ReaderCtx<U> {
    fn report(&self, r: Report) {
        // The driver may be gone while a reader finishes: nothing to tell then.
        let _ = self.reports.send(r);
    }

    fn run(mut self) {
        let mut st = State {
            want: None,
            reader: None,
            must_seek: true,
            next_pos: None,
            pending: VecDeque::new(),
            down_since: None,
            backoff: self.options.reconnect_min,
            full_since: None,
            full_reported: Duration::ZERO,
        };
        let mut buf = Vec::with_capacity(self.options.batch);
        let mut skipped = Vec::new();
        loop {
            // Commands first: while stopped, wait for one; otherwise take what is there.
            let next = if st.want.is_none() {
                match self.commands.recv() {
                    Ok(c) => Some(c),
                    Err(_) => return,
                }
            } else {
                match self.commands.try_recv() {
                    Ok(c) => Some(c),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => return,
                }
            };
            if let Some(cmd) = next {
                if apply(&mut st, cmd) {
                    return;
                }
                continue; // the latest command wins: look for another before acting
            }
            let Some(want) = st.want.clone() else { continue };
            if st.reader.is_none() {
                match self.upstream.open(self.stream) {
                    Ok(r) => {
                        st.reader = Some(r);
                        st.must_seek = true;
                        self.up_again(&mut st);
                    }
                    Err(e) => {
                        if self.down(&mut st, e) {
                            return;
                        }
                        continue;
                    }
                }
            }
            let reader = st.reader.as_mut().expect("connected above");
            if st.must_seek {
                let start = st.next_pos.map_or(want, Start::Pos);
                match reader.seek(&start) {
                    Ok(at) => {
                        st.must_seek = false;
                        if at.trimmed {
                            self.report(Report::Trimmed {
                                stream: self.stream,
                                start: start.clone(),
                                first: at.pos,
                            });
                        }
                        self.report(Report::Started { stream: self.stream, start, at });
                    }
                    Err(e) => {
                        st.reader = None;
                        if self.down(&mut st, e) {
                            return;
                        }
                        continue;
                    }
                }
            }
            if st.pending.is_empty() {
                buf.clear();
                skipped.clear();
                let reader = st.reader.as_mut().expect("connected above");
                match reader.read(self.options.batch, self.options.read_timeout, &mut buf, &mut skipped) {
                    Ok(()) => {
                        self.up_again(&mut st);
                        for what in skipped.drain(..) {
                            self.report(Report::Skipped { stream: self.stream, what });
                        }
                        if let Some(tap) = &self.options.tap {
                            for e in &buf {
                                (tap.0)(self.stream, &e.header, &e.payload);
                            }
                        }
                        st.pending.extend(buf.drain(..));
                    }
                    Err(e) => {
                        st.reader = None;
                        if self.down(&mut st, e) {
                            return;
                        }
                        continue;
                    }
                }
            }
            self.push_pending(&mut st);
        }
    }

    /// Pushes what the reader holds, in order, as one batch (published with one store, so the
    /// engine is woken once per read, not once per entry), until the ring pushes back (then one
    /// bounded backoff step, and back to the commands).
    fn push_pending(&mut self, st: &mut State<U::Reader>) {
        let max = self.producer.max_payload();
        let mut full = false;
        {
            let mut batch = self.producer.batch();
            while let Some(e) = st.pending.front() {
                // The data limit, as `StreamProducer::push` applies it (flips may be larger).
                let r = if e.payload.len() > max && e.header.kind != harmonizer_core::event::KIND_FLIP {
                    Err(PushError::TooLarge { len: e.payload.len(), max })
                } else {
                    batch.push(&e.header, &e.payload)
                };
                match r {
                    // Stored; shed by a staged ring (counted there); or discarded by an idle one
                    // (a stop is on its way): taken either way.
                    Ok(()) | Err(PushError::Shed) | Err(PushError::NotSubscribed) => {}
                    // Corrupt: only a ring file's producer meets it, and the driver's rings are
                    // in-process; were it one, the entry is reported, not silently lost.
                    Err(err @ (PushError::TooLarge { .. } | PushError::Corrupt { .. })) => {
                        let what = Skipped::Malformed { pos: e.header.pos, why: err.to_string() };
                        let _ = self.reports.send(Report::Skipped { stream: self.stream, what });
                    }
                    // The batch published what it held before saying so.
                    Err(PushError::Full) => {
                        full = true;
                        break;
                    }
                }
                st.next_pos = Some(e.header.pos.saturating_add(1));
                st.full_since = None;
                st.full_reported = Duration::ZERO;
                st.pending.pop_front();
            }
        } // the batch publishes here
        if full {
            let since = *st.full_since.get_or_insert_with(Instant::now);
            let waited = since.elapsed();
            let due = self.options.full_report_after.max(st.full_reported * 2);
            if waited >= due {
                st.full_reported = waited;
                self.report(Report::Backpressure { stream: self.stream, waited });
            }
            // Bounded backoff: 50 µs doubling to 1 ms with the wait, then back to the commands
            // (a new start supersedes what is held).
            let step = Duration::from_micros(50).saturating_mul(1 << (waited.as_millis().min(5) as u32));
            std::thread::sleep(step.min(Duration::from_millis(1)));
        }
    }

    /// An upstream failure: reported once per outage; then one backoff step, cut short by a
    /// command (applied here). True when that command was to quit.
    fn down(&self, st: &mut State<U::Reader>, error: UpstreamError) -> bool {
        if st.down_since.is_none() {
            st.down_since = Some(Instant::now());
            st.backoff = self.options.reconnect_min;
            self.report(Report::Disconnected { stream: self.stream, error });
        }
        // The pending entries stay: they were read before the failure, and after it the reader
        // goes on from the position after the last one pushed.
        let wait = st.backoff;
        st.backoff = (st.backoff * 2).min(self.options.reconnect_max);
        match self.commands.recv_timeout(wait) {
            Ok(cmd) => apply(st, cmd),
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        }
    }

    fn up_again(&self, st: &mut State<U::Reader>) {
        if let Some(since) = st.down_since.take() {
            self.report(Report::Reconnected { stream: self.stream, after: since.elapsed() });
            st.backoff = self.options.reconnect_min;
        }
    }
}
