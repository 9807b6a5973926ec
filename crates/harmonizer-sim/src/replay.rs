//! Replays a [`Trace`] through a real [`Engine`], single-threaded on a [`ManualClock`], with the
//! arming policy under test, and reports what a recipient would have seen.
//!
//! # The simulated application
//!
//! The replay plays the application around the engine, as `examples/tour.rs` does with threads:
//! - **Arrival.** Each stream's records arrive at their `arrival_ns`; the clock is set to it,
//!   the record is pushed to that stream's producer if the application is subscribed to the
//!   stream, and the engine is polled until it has nothing to deliver.
//! - **Idle polls.** When nothing arrives for `idle_poll_ns` (100 ms), the engine is polled
//!   anyway, as an application's `Engine::wait` with that timeout would: a silent active
//!   stream is seen while it is silent, not when it comes back.
//! - **Live subscription** (`Subscribe` with `Purpose::Stage` for a candidate being staged):
//!   the stream's records flow from `now + subscribe_delay_ns` on. `Unsubscribe` stops them.
//!   The initial stream is subscribed from the start (its `Purpose::Initial` changes nothing).
//! - **Fetch** (any other `Subscribe`: a cold switch, a re-read after a gap, a fill from
//!   another stream): the stream's records from the asked position (`StartAt::Pos`; any other
//!   start resumes after the tracker's frontier) are fetched from the upstream archive and arrive no earlier
//!   than `now + fetch_delay_ns`. The archive has every event, including those a degraded
//!   stream dropped, so a re-read closes its gap. To leave room for them, positions are the
//!   trace's times [`POS_SCALE`]; a dropped event gets the position after the record before it.
//!
//! A switch is **seamless** when the engine reports it so (`Notice::Switched`): its target was
//! staged and its window reached back to the switch point. Delivery is checked for exactly-once
//! order by the replay's own handler, independently of the engine's counters.

use std::sync::{Arc, Mutex};

use super::scenario::{Trace, TraceRecord, NO_FLIP};
use harmonizer_core::clock::{Clock, ManualClock};
use harmonizer_core::engine::{
    AlwaysStage, ArmingPolicy, Candidate, Engine, EngineConfig, EngineError, Handler, NeverStage, Notice,
    Purpose, StagePlan, StartAt, Stats, StreamProducer,
};
use harmonizer_core::event::{EventHeader, KIND_DATA};
use harmonizer_core::flip::{Flip, MAX_FLIP_LEN};
use harmonizer_core::predict::features::N_FEATURES;
use harmonizer_core::predict::phi::PhiRule;
use harmonizer_core::predict::policy::{sigmoid, Predictor};
use harmonizer_core::predict::{LabelledRow, LearnStats, Model};
use harmonizer_core::ring::{PushError, Record};

/// Replay positions are the trace's positions times this, so events a stream dropped can be
/// given positions of their own when a fetch delivers them.
pub const POS_SCALE: u64 = 1024;

/// How the simulated application and its upstream behave.
#[derive(Clone, Debug)]
pub struct ReplayConfig {
    /// Ring capacity per stream, bytes.
    pub capacity_bytes: usize,
    /// From a live `Subscribe` to the first record: the upstream's subscription latency.
    pub subscribe_delay_ns: u64,
    /// From a fetching `Subscribe` (cold switch, re-read) to the first fetched record.
    pub fetch_delay_ns: u64,
    /// The engine's staging budget, bytes.
    pub staging_budget_bytes: usize,
    /// Snapshots of the policy's scores every this many ns (0: none).
    pub snapshot_every_ns: u64,
    /// Label horizon for the snapshots: a snapshot is positive when a switch to its candidate
    /// follows within this.
    pub horizon_ns: u64,
    /// The application polls at least this often, records or not (the timeout of its
    /// `Engine::wait`), so a silent active stream is seen as it happens; 0: only on arrivals.
    pub idle_poll_ns: u64,
    /// A fetch (cold switch, re-read, fill) delivers every logical event, also those the
    /// stream itself missed (the generator's archive); false: only the stream's own records
    /// (a recorded trace, `archive: "stream"`).
    pub archive_complete: bool,
    /// After the last record, the application goes on polling (every `idle_poll_ns`) for this
    /// long, so the engine's bounded waits (a re-read, a fill that never comes) run out and are
    /// reported; 0: the replay ends with the last record.
    pub tail_ns: u64,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        ReplayConfig {
            capacity_bytes: 1 << 20,
            subscribe_delay_ns: 20_000_000,
            fetch_delay_ns: 50_000_000,
            staging_budget_bytes: usize::MAX,
            snapshot_every_ns: 100_000_000,
            horizon_ns: 2_000_000_000,
            idle_poll_ns: 100_000_000,
            archive_complete: true,
            tail_ns: 0,
        }
    }
}

/// One snapshot row: a candidate's score (and, for the predictor, its features) at a time.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot {
    /// Clock time.
    pub t_ns: u64,
    /// The candidate stream.
    pub stream: u32,
    /// The policy's probability (or ranking score) that the recipient switches to it within
    /// the horizon.
    pub prob: f64,
    /// The predictor's feature vector (zeros for other policies).
    pub features: [f64; N_FEATURES],
    /// The policy's plan at that moment staged the candidate: its operating point, with every
    /// adaptive shift, hold and hysteresis applied.
    pub staged: bool,
    /// Label: a switch to `stream` follows within the horizon.
    pub label: bool,
}

/// What happened to one ground-truth switch.
#[derive(Clone, Copy, Debug)]
pub struct SwitchOutcome {
    /// Index into `Trace::switches`.
    pub truth: usize,
    /// The engine switched on this flip.
    pub happened: bool,
    /// Reported seamless.
    pub seamless: bool,
    /// Reported stall.
    pub stall_ns: u64,
}

/// The result of one replay.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The policy's name.
    pub policy: &'static str,
    /// The engine's counters at the end.
    pub stats: Stats,
    /// Per ground-truth switch.
    pub switches: Vec<SwitchOutcome>,
    /// Data events the handler received.
    pub delivered: u64,
    /// Received again (must be 0).
    pub duplicates: u64,
    /// Received out of order (must be 0).
    pub out_of_order: u64,
    /// Logical events never received by the end (0 unless the trace ends mid-fetch).
    pub missing: u64,
    /// Mean staged bytes over time.
    pub mean_staged_bytes: f64,
    /// Score snapshots (empty when not asked for).
    pub snapshots: Vec<Snapshot>,
    /// Stalls of the switches that happened, ns.
    pub stalls_ns: Vec<u64>,
    /// Records the application could not push because the active ring stayed full (must be
    /// 0: the engine drains it).
    pub push_dropped: u64,
    /// The predictor's model at the end (changed by the online mode) and its learner's counters.
    pub learned: Option<(Model, Option<LearnStats>)>,
    /// The labelled rows the predictor recorded live (when recording is on), in time order.
    pub history: Vec<LabelledRow>,
    /// Every switch the engine made, in order.
    pub made: Vec<Made>,
}

impl Outcome {
    /// Switches that happened.
    pub fn happened(&self) -> usize {
        self.switches.iter().filter(|s| s.happened).count()
    }
    /// Seamless switches.
    pub fn seamless(&self) -> usize {
        self.switches.iter().filter(|s| s.seamless).count()
    }
}

/// Receives `(stream, probability, features if any)` for each candidate.
pub type ScoreSink<'a> = dyn FnMut(u32, f64, Option<&[f64; N_FEATURES]>) + 'a;

/// A policy the replay can ask for per-candidate scores.
pub trait Scored: ArmingPolicy {
    /// After a plan: for each candidate, its probability of being switched to within the
    /// horizon, and the features it was scored on (if any). Calls `f(stream, prob, features)`.
    fn scores(&self, candidates: &[Candidate], f: &mut ScoreSink<'_>);
    /// The model it ends with and what its learner counted, for a policy with a model.
    fn learned(&self) -> Option<(Model, Option<LearnStats>)> {
        None
    }
    /// The labelled rows its learner recorded and nobody drained (the predictor's, when
    /// recording is on).
    fn take_history(&mut self) -> Vec<LabelledRow> {
        Vec::new()
    }
}

impl Scored for Predictor {
    fn scores(&self, _: &[Candidate], f: &mut ScoreSink<'_>) {
        for (stream, z, x) in self.last_scores() {
            f(*stream, sigmoid(*z), Some(x));
        }
    }
    fn learned(&self) -> Option<(Model, Option<LearnStats>)> {
        Some((self.model().clone(), self.learn_stats()))
    }
    fn take_history(&mut self) -> Vec<LabelledRow> {
        let mut out = vec![
            LabelledRow { t_ns: 0, stream: 0, label: false, features: [0.0; N_FEATURES] };
            self.history_len()
        ];
        let n = self.drain_history(&mut out);
        out.truncate(n);
        out
    }
}

impl Scored for PhiRule {
    fn scores(&self, candidates: &[Candidate], f: &mut ScoreSink<'_>) {
        for c in candidates {
            f(c.stream, self.score(), None);
        }
    }
}

impl Scored for NeverStage {
    fn scores(&self, candidates: &[Candidate], f: &mut ScoreSink<'_>) {
        for c in candidates {
            f(c.stream, 0.0, None);
        }
    }
}

impl Scored for AlwaysStage {
    fn scores(&self, candidates: &[Candidate], f: &mut ScoreSink<'_>) {
        for c in candidates {
            f(c.stream, 1.0, None);
        }
    }
}

/// What the simulated application learns, in the order the engine says it.
#[derive(Clone, Copy, Debug)]
enum AppEvent {
    Subscribe {
        stream: u32,
        /// The exact position asked, 0 when the start is after the frontier (or live).
        from_pos: u64,
        purpose: Purpose,
    },
    Unsubscribe {
        stream: u32,
    },
}

type AppLog = Arc<Mutex<Vec<AppEvent>>>;

fn log(l: &AppLog, e: AppEvent) {
    l.lock().unwrap_or_else(|e| e.into_inner()).push(e);
}

/// Wraps a policy to take score snapshots on a time cadence.
struct Probed<P> {
    inner: P,
    every_ns: u64,
    next_ns: u64,
    rows: Arc<Mutex<Vec<Snapshot>>>,
}

impl<P: Scored + 'static> ArmingPolicy for Probed<P> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn as_any_mut(&mut self) -> Option<&mut dyn core::any::Any> {
        Some(self)
    }
    fn observe(&mut self, stream: u32, record: &Record<'_>, now_ns: u64) {
        self.inner.observe(stream, record, now_ns);
    }
    fn flip(&mut self, stream: u32, flip: &Flip<'_>, for_us: bool, now_ns: u64) {
        self.inner.flip(stream, flip, for_us, now_ns);
    }
    fn gap(&mut self, stream: u32, missing: u64, now_ns: u64) {
        self.inner.gap(stream, missing, now_ns);
    }
    fn switched(&mut self, from: u32, to: u32, now_ns: u64) {
        self.inner.switched(from, to, now_ns);
    }
    fn plan(&mut self, candidates: &[Candidate], window: usize, now_ns: u64, plan: &mut StagePlan) {
        self.inner.plan(candidates, window, now_ns, plan);
        if self.every_ns == 0 || now_ns < self.next_ns {
            return;
        }
        self.next_ns = (now_ns / self.every_ns + 1) * self.every_ns;
        let mut rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        self.inner.scores(candidates, &mut |stream, prob, x| {
            rows.push(Snapshot {
                t_ns: now_ns,
                stream,
                prob,
                features: x.copied().unwrap_or([0.0; N_FEATURES]),
                staged: plan.window_of(stream).is_some(),
                label: false,
            });
        });
    }
}

/// The simulated application's view of one stream.
struct Feed {
    /// Next trace record to deliver.
    cursor: usize,
    subscribed: bool,
    /// Records are not delivered before this (subscription or fetch latency).
    not_before_ns: u64,
    /// Fetching: dropped events are delivered too; `fetch_seq` is the next seq owed before
    /// the record at `cursor`.
    fetching: bool,
    fetch_seq: u64,
    /// Fetching ends at the first record arriving after this (the fetch's request time).
    live_after_ns: u64,
}

/// A switch the engine made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Made {
    /// The flip that made it (0 for a failover).
    pub flip_id: u64,
    /// The stream delivered before.
    pub from: u32,
    /// The stream delivered after.
    pub to: u32,
    /// When, on the replay's clock (the trace's arrival clock): the cut-over consumed.
    pub at_ns: u64,
}

struct Collect {
    last_seq: u64,
    delivered: u64,
    duplicates: u64,
    out_of_order: u64,
    app: AppLog,
    switched: Vec<(u64, bool, u64)>,
    made: Vec<Made>,
    /// The replay's clock, to date the switches.
    clock: ManualClock,
    /// A hole the recovery could not fill is held (`Stuck`): the application gives it up.
    stuck: bool,
}

impl Handler for Collect {
    fn event(&mut self, _stream: u32, record: &Record<'_>) {
        let seq = record.header.seq;
        if seq <= self.last_seq {
            self.duplicates += 1;
        } else {
            if seq != self.last_seq + 1 {
                self.out_of_order += 1;
            }
            self.last_seq = seq;
            self.delivered += 1;
        }
    }
    fn notice(&mut self, n: &Notice<'_>) {
        match *n {
            Notice::Subscribe { stream, from, purpose, .. } => {
                log(&self.app, AppEvent::Subscribe { stream, from_pos: exact_pos(from), purpose })
            }
            Notice::Unsubscribe { stream } => log(&self.app, AppEvent::Unsubscribe { stream }),
            Notice::Stuck { .. } => self.stuck = true,
            // Given up, reported: the delivery resumes after the range, in order.
            Notice::Lost { from_seq, to_seq, .. } if from_seq == self.last_seq + 1 => self.last_seq = to_seq,
            Notice::Switched { flip_id, seamless, stall_ns, from, to, .. } => {
                self.switched.push((flip_id, seamless, stall_ns));
                // The notice comes when delivery is contiguous again; the switch itself (the
                // cut-over consumed, when the policy hears of it) was `stall_ns` earlier.
                let at_ns = self.clock.now_ns().saturating_sub(stall_ns);
                self.made.push(Made { flip_id, from, to, at_ns });
            }
            _ => {}
        }
    }
}

/// Replays `trace` with `policy`. Snapshots (if `cfg.snapshot_every_ns > 0`) are labelled from
/// the trace's ground truth. Fails only if the trace cannot make an engine (e.g. more than
/// [`MAX_STREAMS`](harmonizer_core::engine::MAX_STREAMS) streams).
pub fn replay<P: Scored + 'static>(
    trace: &Trace,
    policy: P,
    cfg: &ReplayConfig,
) -> Result<Outcome, EngineError> {
    let rows = Arc::new(Mutex::new(Vec::new()));
    let app: AppLog = Arc::new(Mutex::new(Vec::new()));
    let name = policy.name();
    let probed = Probed { inner: policy, every_ns: cfg.snapshot_every_ns, next_ns: 0, rows: rows.clone() };
    let n_streams = trace.streams.len() as u32;
    let mut ecfg = EngineConfig::new(trace.recipient_id, n_streams, cfg.capacity_bytes, MAX_FLIP_LEN);
    ecfg.initial_stream = trace.initial_stream;
    ecfg.staging_budget_bytes = cfg.staging_budget_bytes;
    let clock = ManualClock::at(0);
    let (mut engine, mut producers) = Engine::with(ecfg, Box::new(probed), Box::new(clock.clone()))?;
    let mut feeds: Vec<Feed> = (0..trace.streams.len())
        .map(|s| Feed {
            cursor: 0,
            subscribed: s as u32 == trace.initial_stream,
            not_before_ns: 0,
            fetching: false,
            fetch_seq: 0,
            live_after_ns: 0,
        })
        .collect();
    let mut h = Collect {
        last_seq: 0,
        delivered: 0,
        duplicates: 0,
        out_of_order: 0,
        app: app.clone(),
        switched: Vec::new(),
        made: Vec::new(),
        clock: clock.clone(),
        stuck: false,
    };
    let mut push_dropped = 0u64;
    let mut pending = Vec::new();
    let mut staged_byte_ns = 0f64;
    let mut last_t = 0u64;
    let mut switched = Vec::new();
    let mut stalls = Vec::new();
    let mut tail_end: Option<u64> = None;
    loop {
        // The earliest next delivery over subscribed streams.
        let mut next: Option<(u64, usize)> = None;
        for (s, f) in feeds.iter().enumerate() {
            if !f.subscribed {
                continue;
            }
            if let Some(t) = next_time(&trace.streams[s], f) {
                if next.map_or(true, |(bt, _)| t < bt) {
                    next = Some((t, s));
                }
            }
        }
        // Runs until every subscribed stream is drained, past `duration_ns` if records arrive
        // later (lag) or a fetch is still delivering; then idles for `tail_ns`.
        let (t, s) = match next {
            Some(n) => n,
            None => {
                let end = *tail_end.get_or_insert(last_t.saturating_add(cfg.tail_ns));
                if cfg.tail_ns == 0 || cfg.idle_poll_ns == 0 || last_t >= end {
                    break;
                }
                (u64::MAX, usize::MAX)
            }
        };
        // Nothing arrived for `idle_poll_ns`: the application's wait timed out; it polls.
        let idle_at = last_t.saturating_add(cfg.idle_poll_ns);
        let (t, s) = if cfg.idle_poll_ns > 0 && idle_at < t { (idle_at, None) } else { (t, Some(s)) };
        if next.is_some() {
            tail_end = None;
        }
        clock.set(t);
        staged_byte_ns += engine.stats().staged_bytes as f64 * t.saturating_sub(last_t) as f64;
        last_t = t;
        if let Some(s) = s {
            if !deliver_one(
                trace,
                s,
                &mut feeds[s],
                &mut producers[s],
                &mut engine,
                &mut h,
                cfg.archive_complete,
            ) {
                push_dropped += 1;
            }
        }
        drain(&mut engine, &mut h, 256);
        if std::mem::take(&mut h.stuck) {
            // Every re-read came back without the hole's events (a recorded stream that never
            // had them): the application gives them up, reported `Lost`.
            engine.give_up_gap();
            drain(&mut engine, &mut h, 256);
        }
        // The application's side of the notices, in the engine's order.
        pending.append(&mut app.lock().unwrap_or_else(|e| e.into_inner()));
        for e in pending.drain(..) {
            match e {
                AppEvent::Unsubscribe { stream } => feeds[stream as usize].subscribed = false,
                AppEvent::Subscribe { purpose: Purpose::Initial, .. } => {}
                AppEvent::Subscribe { stream, from_pos, purpose } if purpose != Purpose::Stage => {
                    // A cold switch, a re-read or a fill: fetch from the archive.
                    let i = stream as usize;
                    let frontier = engine.tracker().last(0).unwrap_or(0);
                    start_fetch(
                        &trace.streams[i],
                        &mut feeds[i],
                        from_pos,
                        frontier,
                        t,
                        t + cfg.fetch_delay_ns,
                    );
                }
                AppEvent::Subscribe { stream, .. } => {
                    // Staging a candidate: live, after the subscription latency.
                    let i = stream as usize;
                    let f = &mut feeds[i];
                    let from = t + cfg.subscribe_delay_ns;
                    f.cursor = trace.streams[i].partition_point(|r| r.arrival_ns < from);
                    f.subscribed = true;
                    f.not_before_ns = from;
                    f.fetching = false;
                }
            }
        }
        switched.append(&mut h.switched);
    }
    // Tally.
    let mut outcomes: Vec<SwitchOutcome> = (0..trace.switches.len())
        .map(|i| SwitchOutcome { truth: i, happened: false, seamless: false, stall_ns: 0 })
        .collect();
    for &(flip_id, seamless, stall_ns) in &switched {
        stalls.push(stall_ns);
        if let Some(i) = trace.switches.iter().position(|w| w.flip_id == flip_id) {
            outcomes[i] = SwitchOutcome { truth: i, happened: true, seamless, stall_ns };
        }
    }
    let stats = *engine.stats();
    let (learned, history) = engine
        .policy_mut::<Probed<P>>()
        .map_or((None, Vec::new()), |p| (p.inner.learned(), p.inner.take_history()));
    drop(engine);
    let mut snapshots = std::mem::take(&mut *rows.lock().unwrap_or_else(|e| e.into_inner()));
    for row in &mut snapshots {
        row.label = switch_to_within(trace, row.t_ns, cfg.horizon_ns, row.stream);
    }
    Ok(Outcome {
        policy: name,
        stats,
        switches: outcomes,
        delivered: h.delivered,
        duplicates: h.duplicates,
        out_of_order: h.out_of_order,
        missing: trace.logical_events.saturating_sub(h.last_seq),
        mean_staged_bytes: if last_t > 0 { staged_byte_ns / last_t as f64 } else { 0.0 },
        snapshots,
        stalls_ns: stalls,
        push_dropped,
        learned,
        history,
        made: h.made,
    })
}

/// True when the recipient switches to `stream` in `(t_ns, t_ns + horizon_ns]` (any switch, not
/// only the first: a switch and its switchback may both fall in one horizon).
pub fn switch_to_within(trace: &Trace, t_ns: u64, horizon_ns: u64, stream: u32) -> bool {
    let first = trace.switches.partition_point(|w| w.at_ns <= t_ns);
    trace.switches[first..]
        .iter()
        .take_while(|w| w.at_ns <= t_ns.saturating_add(horizon_ns))
        .any(|w| w.to == stream)
}

/// When the feed's next record (or owed dropped event) becomes available.
fn next_time(records: &[TraceRecord], f: &Feed) -> Option<u64> {
    let r = records.get(f.cursor)?;
    Some(r.arrival_ns.max(f.not_before_ns))
}

/// Pushes the feed's next item: an event the stream dropped that a fetch owes, or the record
/// at the cursor.
fn deliver_one(
    trace: &Trace,
    s: usize,
    f: &mut Feed,
    p: &mut StreamProducer,
    engine: &mut Engine,
    h: &mut Collect,
    archive_complete: bool,
) -> bool {
    let records = &trace.streams[s];
    let r = records[f.cursor];
    if f.fetching && r.arrival_ns > f.live_after_ns {
        f.fetching = false; // caught up: live again, drops and all
    }
    if f.fetching && archive_complete && r.header.kind == KIND_DATA {
        // Owed seqs between the data record before the cursor and this one take positions
        // between theirs, offset by seq: the same position whichever fetch delivers them.
        let base = last_seq_before(records, f.cursor);
        let owed = f.fetch_seq.max(base + 1);
        if owed < r.header.seq && owed - base < POS_SCALE {
            let prev_pos = if f.cursor > 0 { records[f.cursor - 1].header.pos } else { 0 };
            let mut header = r.header;
            header.seq = owed;
            header.pos = prev_pos * POS_SCALE + (owed - base);
            header.flags = 0;
            f.fetch_seq = owed + 1;
            return push(p, engine, h, &header, &[]);
        }
    }
    let mut header = r.header;
    header.pos *= POS_SCALE;
    if r.header.kind == KIND_DATA {
        f.fetch_seq = r.header.seq + 1;
    }
    f.cursor += 1;
    let payload: &[u8] = if r.flip == NO_FLIP { &[] } else { &trace.flips[r.flip as usize] };
    push(p, engine, h, &header, payload)
}

/// Seq of the last data record before `cursor` (0 if none). Data records are dense, so the
/// walk back is short.
fn last_seq_before(records: &[TraceRecord], cursor: usize) -> u64 {
    records[..cursor].iter().rev().find(|r| r.header.kind == KIND_DATA).map_or(0, |r| r.header.seq)
}

/// Index of the first data record with `seq > frontier` (data seqs increase along a stream;
/// flips in between carry no seq, so the search steps over them).
fn first_after(records: &[TraceRecord], frontier: u64) -> usize {
    let data_at_or_after = |i: usize| (i..records.len()).find(|&j| records[j].header.kind == KIND_DATA);
    let (mut lo, mut hi) = (0, records.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match data_at_or_after(mid) {
            Some(j) if records[j].header.seq <= frontier => lo = j + 1,
            _ => hi = mid,
        }
    }
    lo
}

/// Pushes one record; false if the active ring stayed full through many polls (counted by the
/// caller, never silently dropped).
fn push(
    p: &mut StreamProducer,
    engine: &mut Engine,
    h: &mut Collect,
    header: &EventHeader,
    payload: &[u8],
) -> bool {
    for _ in 0..1024 {
        match p.push(header, payload) {
            // Only the active ring blocks: let the engine drain it. A poll may consume without
            // delivering (duplicates, a re-read's skips), so retry whatever it returns.
            Err(PushError::Full) => {
                engine.poll(1024, h);
            }
            _ => return true, // stored, shed by a staged ring, or refused by an idle one
        }
    }
    false
}

/// The exact position a `Subscribe` names (`StartAt::Pos`), or 0 for any other start (live,
/// after a seq, after the frontier): the simulated application then resumes from what it has
/// delivered. The replay and the scripted lockstep ([`crate::scripted`]) both answer so.
pub(crate) fn exact_pos(from: StartAt) -> u64 {
    match from {
        StartAt::Pos(p) => p,
        StartAt::Live | StartAt::AfterSeq { .. } | StartAt::AfterFrontier => 0,
    }
}

/// Polls `engine` until two polls in a row deliver nothing, `batch` records at a time.
pub(crate) fn drain<H: Handler>(engine: &mut Engine, h: &mut H, batch: usize) {
    let mut idle = 0;
    while idle < 2 {
        idle = if engine.poll(batch, h) == 0 { idle + 1 } else { 0 };
    }
}

/// Points the feed at `from_pos` (replay positions), or after the tracker's `frontier` when 0,
/// fetching (dropped events included) from `not_before_ns` until it reaches records that
/// arrive after `now_ns`.
fn start_fetch(
    records: &[TraceRecord],
    f: &mut Feed,
    from_pos: u64,
    frontier: u64,
    now_ns: u64,
    not_before_ns: u64,
) {
    f.cursor = if from_pos != 0 {
        let trace_pos = from_pos.div_ceil(POS_SCALE); // trace pos p is replay pos p * SCALE
        records.partition_point(|r| r.header.pos < trace_pos)
    } else {
        // After the frontier, with the flips just before it (they may be the switch's own).
        let mut i = first_after(records, frontier);
        while i > 0 && records[i - 1].header.kind != KIND_DATA {
            i -= 1;
        }
        i
    };
    f.subscribed = true;
    f.not_before_ns = not_before_ns;
    f.fetching = true;
    f.live_after_ns = now_ns;
    f.fetch_seq = frontier + 1;
}
