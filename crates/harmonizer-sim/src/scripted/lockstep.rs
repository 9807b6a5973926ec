//! One run of a scenario under one arming policy: every recipient's engine, one feed thread per
//! stream pushing into real rings, the consumer polling, and the simulated application.
//!
//! # Threads and time
//!
//! - **Feeds.** One thread per stream acts as the fanout: it owns that stream's
//!   [`StreamProducer`] of every recipient and pushes the stream's records into the rings of the
//!   recipients subscribed to it (live, or fetching from the stream's log).
//! - **Consumer.** The calling thread owns every engine and polls them; its handler (the
//!   application) checks each delivered event and answers the notices (`Subscribe`,
//!   `Unsubscribe`) by sending commands to the feed threads.
//! - **Lockstep in scenario time.** Time is the scenario's, on one [`ManualClock`] shared by
//!   the engines, advanced in ticks (`tick_ms`, default 1 ms). At each tick the feeds push
//!   every record due by then, concurrently; then the consumer sets the clock to the tick and
//!   polls. So an event's arrival time as the engine sees it is its scenario arrival rounded up
//!   to the tick, and a seed always gives the same decisions, whatever the machine's speed or
//!   load. Ticks in which nothing is due (no record, no command starting, no periodic poll,
//!   no sample) are skipped: they would change nothing. The price: a ring's pushes and polls do not overlap in time (different rings' do).
//!   If a push finds an active ring full, the consumer polls while the feed waits, so the
//!   lockstep cannot deadlock (in that case only, timing may vary between runs).

use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use harmonizer_core::clock::ManualClock;
use harmonizer_core::engine::{
    AlwaysStage, ArmingPolicy, Candidate, Engine, EngineConfig, Handler, ManualStage, NeverStage, Notice,
    PoolConfig, PoolStats, Purpose, RejectReason, Spread, StagePlan, StagingPool, Stats, StreamProducer,
};
use harmonizer_core::flip::Flip;
use harmonizer_core::predict::policy::sigmoid;
use harmonizer_core::predict::{Predictor, PredictorConfig};
use harmonizer_core::ring::{PushError, Record};

use super::scenario::Scenario;
use super::world::{Marking, World, NO_FLIP};
use super::PolicyKind;
use crate::replay::{drain, exact_pos};

/// The plotted recipient is sampled this often (scenario ns).
const SAMPLE_EVERY_NS: u64 = 50_000_000;
/// An engine with nothing new is still polled this often (scenario ns), so its clock, duty
/// cycle and policy move on.
const IDLE_POLL_NS: u64 = 10_000_000;
/// After the last arrival, the run goes on at most this long for fetches to finish.
const DRAIN_CAP_NS: u64 = 30_000_000_000;
/// An engine is polled this many records at a time until it has nothing to deliver.
const POLL_BATCH: usize = 1024;

/// One switch as the application saw it (`Notice::Switched`).
#[derive(Clone, Copy, Debug)]
pub struct SwitchRec {
    /// Clock time of the notice (scenario ns).
    pub t_ns: u64,
    /// From stream.
    pub from: u32,
    /// To stream.
    pub to: u32,
    /// The engine said seamless.
    pub seamless: bool,
    /// The engine's stall, clock ns.
    pub stall_ns: u64,
    /// The switch's audit record (docs/verify.md), the recipient's id in it.
    pub record: harmonizer_core::engine::SwitchRecord,
    /// With `engine.dry_run_switches`: whether the dry run just before it said seamless.
    pub predicted_seamless: Option<bool>,
}

/// What one recipient saw.
#[derive(Clone, Debug)]
pub struct RecipientOutcome {
    /// Its id.
    pub id: u64,
    /// Distinct logical events delivered (checked by the handler).
    pub delivered: u64,
    /// Events delivered again.
    pub duplicates: u64,
    /// Events delivered out of order (not the origin's next seq).
    pub out_of_order: u64,
    /// Events with a wrong payload or header.
    pub corrupt: u64,
    /// Logical events never delivered by the end, plus events given up in `Lost` notices.
    pub lost: u64,
    /// Its switches.
    pub switches: Vec<SwitchRec>,
    /// The engine's counters at the end.
    pub stats: Stats,
    /// Flips rejected as malformed.
    pub rejected_malformed: u64,
    /// Flips rejected for other reasons (a switch to the active stream, ...).
    pub rejected_other: u64,
    /// `Gap` notices.
    pub gaps: u64,
    /// Fetches the application made (cold switches and re-reads).
    pub fetches: u64,
    /// Live subscriptions (candidates staged).
    pub live_subscribes: u64,
    /// Records its fetches brought (the re-read volume: what was missing, and what a search
    /// for the frontier re-read again).
    pub fetched_records: u64,
    /// Events `Conflated` notices reported dropped (not counted in `lost`).
    pub conflated: u64,
    /// `Conflated` notices whose range's undelivered events were not exactly the number the
    /// notice reported (must be 0).
    pub conflation_mismatches: u64,
    /// Pairs of the engine's position map (docs/verify.md) checked against the world's own
    /// positions at the end.
    pub map_pairs: u64,
    /// Of those, pairs that name a position the event does not have on a stream (must be 0).
    pub map_wrong: u64,
    /// The engine's position map at the end, oldest run first (empty without verification).
    pub map: Vec<harmonizer_core::engine::MapRun>,
}

/// One sample of the plotted recipient.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Scenario ns.
    pub t_ns: u64,
    /// The active stream.
    pub active: u32,
    /// Bit `s`: stream `s` staged.
    pub staged: u32,
    /// Per stream: the predictor's probability of a switch to it within its horizon (NaN for
    /// the active stream or without a predictor).
    pub prob: Vec<f64>,
    /// The predictor's threshold after its adaptive shift (NaN without a predictor).
    pub threshold: f64,
}

/// The plotted recipient's timeline.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// Its index and id.
    pub index: usize,
    /// Its id.
    pub id: u64,
    /// Samples every 50 ms.
    pub samples: Vec<Sample>,
    /// Its switches.
    pub switches: Vec<SwitchRec>,
    /// Other notices worth marking: (time, text).
    pub notes: Vec<(u64, String)>,
}

/// The whole fleet over time (every recipient together).
#[derive(Clone, Debug, Default)]
pub struct FleetSeries {
    /// Largest sum of the recipients' staged bytes (`Stats::staged_bytes`) at any tick.
    pub peak_staged_bytes: u64,
    /// That sum averaged over scenario time.
    pub mean_staged_bytes: f64,
    /// Scenario ns of every live subscription (a candidate staged), all recipients, sorted.
    pub stage_subscribes_ns: Vec<u64>,
    /// Scenario ns of every fetch (cold switch, re-read, fill), all recipients, sorted.
    pub fetches_ns: Vec<u64>,
    /// The shared pool's counters at the end, if the run had one.
    pub pool: Option<PoolStats>,
}

impl FleetSeries {
    /// The most live subscriptions that began within any `window_ns` (a sliding window over
    /// the subscription times).
    pub fn peak_subscribes_within(&self, window_ns: u64) -> usize {
        let t = &self.stage_subscribes_ns;
        let mut best = 0;
        let mut lo = 0;
        for hi in 0..t.len() {
            while t[hi] - t[lo] >= window_ns {
                lo += 1;
            }
            best = best.max(hi + 1 - lo);
        }
        best
    }
}

/// What one run produced.
pub struct PassOutcome {
    /// The policy.
    pub policy: PolicyKind,
    /// Per recipient.
    pub recipients: Vec<RecipientOutcome>,
    /// Wall time of the run (threads started to joined).
    pub wall: Duration,
    /// Scenario time at the end.
    pub end_ns: u64,
    /// The plotted recipient's timeline, if asked for.
    pub timeline: Option<Timeline>,
    /// Pushes that found an active ring full and were retried.
    pub push_full: u64,
    /// Pushes the ring refused for good (payload too large): must be 0.
    pub push_errors: u64,
    /// The fleet together: staged bytes over time, subscriptions, the shared pool.
    pub fleet: FleetSeries,
}

/// Wraps a policy to tell the application which stream is active (the engine calls
/// `switched` before the switch's notices) and to hand the predictor back for the plot.
struct Tap<P> {
    inner: P,
    active: Arc<AtomicU32>,
}

impl<P: ArmingPolicy + 'static> ArmingPolicy for Tap<P> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    #[inline]
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
        self.active.store(to, Ordering::Relaxed);
        self.inner.switched(from, to, now_ns);
    }
    fn as_any_mut(&mut self) -> Option<&mut dyn Any> {
        Some(self)
    }
    fn plan(&mut self, candidates: &[Candidate], window: usize, now_ns: u64, plan: &mut StagePlan) {
        self.inner.plan(candidates, window, now_ns, plan);
    }
}

/// What the application asks a feed thread to do for one recipient.
#[derive(Clone, Copy, Debug)]
enum Cmd {
    /// Feed live from log index `cursor`, not before `not_before`.
    Live { r: usize, cursor: usize, not_before: u64 },
    /// Stop feeding.
    Stop { r: usize },
    /// Fetch from the log from `cursor` (lost records included) from `not_before` on, until
    /// records arriving after `live_after`; then live.
    Fetch { r: usize, cursor: usize, not_before: u64, live_after: u64 },
}

/// A request from the handler, turned into a [`Cmd`] after the poll.
#[derive(Clone, Copy, Debug)]
enum Req {
    Live {
        stream: u32,
    },
    Stop {
        stream: u32,
    },
    /// From position `from_pos`, or (0) from the first undelivered logical event `k`, searched
    /// for from the last delivered event's time `ts` (`App::search_lookback_ms`).
    Fetch {
        stream: u32,
        from_pos: u64,
        k: u64,
        ts: u64,
    },
}

/// Where the threads meet.
struct Lockstep {
    /// Feeds push every record due at or before this (scenario ns).
    target: AtomicU64,
    /// Per feed: the last tick it finished.
    done: Vec<AtomicU64>,
    stop: AtomicBool,
    /// A feed is waiting on a full active ring.
    blocked: AtomicBool,
    /// Per recipient: a feed pushed something since its last poll.
    dirty: Vec<AtomicBool>,
    /// Per feed: commands from the application.
    cmds: Vec<Mutex<Vec<Cmd>>>,
    /// Per feed, after its tick: when its next record is due (`u64::MAX`: none), so the
    /// consumer can skip ticks in which nothing happens.
    next_due: Vec<AtomicU64>,
}

/// Sets `stop` when dropped, so feed threads end even if the consumer fails.
struct StopOnDrop<'a>(&'a Lockstep);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Release);
    }
}

fn backoff(spins: &mut u32) {
    if *spins < 50 {
        std::hint::spin_loop();
        *spins += 1;
    } else {
        thread::yield_now();
    }
}

/// One recipient's view of one stream, kept by that stream's feed thread.
#[derive(Clone, Copy, Debug, Default)]
struct Feed {
    subscribed: bool,
    cursor: usize,
    not_before: u64,
    fetching: bool,
    live_after: u64,
    /// Records this fetch has brought so far (each takes the transfer time).
    fetched: u64,
}

impl Feed {
    /// When `rec` can be pushed: its arrival, not before the subscription or fetch starts, and
    /// for a fetch not before the records ahead of it have been transferred.
    fn due(&self, rec: &super::world::Rec, record_ns: u64) -> u64 {
        let t = rec.arrival_ns.max(self.not_before);
        if self.fetching {
            t.max(self.not_before.saturating_add(self.fetched.saturating_mul(record_ns)))
        } else {
            t
        }
    }
}

#[derive(Default)]
struct FeedStats {
    full: u64,
    errors: u64,
    /// Per recipient: records pushed by fetches (re-read volume).
    fetched: Vec<u64>,
}

fn feed_loop(
    s: usize,
    world: &World,
    mut prods: Vec<StreamProducer>,
    sync: &Lockstep,
    initial: bool,
    record_ns: u64,
) -> FeedStats {
    let mut feeds = vec![Feed { subscribed: initial, ..Feed::default() }; prods.len()];
    let mut stats = FeedStats { fetched: vec![0; prods.len()], ..FeedStats::default() };
    let mut done = 0u64;
    let log = &world.streams[s];
    loop {
        let mut spins = 0;
        let t = loop {
            if sync.stop.load(Ordering::Acquire) {
                return stats;
            }
            let t = sync.target.load(Ordering::Acquire);
            if t > done {
                break t;
            }
            backoff(&mut spins);
        };
        {
            let mut q = sync.cmds[s].lock().unwrap_or_else(|e| e.into_inner());
            for c in q.drain(..) {
                match c {
                    Cmd::Live { r, cursor, not_before } => {
                        feeds[r] = Feed {
                            subscribed: true,
                            cursor,
                            not_before,
                            fetching: false,
                            live_after: 0,
                            fetched: 0,
                        };
                    }
                    Cmd::Stop { r } => feeds[r].subscribed = false,
                    Cmd::Fetch { r, cursor, not_before, live_after } => {
                        feeds[r] = Feed {
                            subscribed: true,
                            cursor,
                            not_before,
                            fetching: true,
                            live_after,
                            fetched: 0,
                        };
                    }
                }
            }
        }
        for (r, (f, p)) in feeds.iter_mut().zip(prods.iter_mut()).enumerate() {
            let mut pushed = false;
            while f.subscribed && f.cursor < log.len() {
                let rec = &log[f.cursor];
                if f.due(rec, record_ns) > t {
                    break;
                }
                if f.fetching && rec.arrival_ns > f.live_after {
                    f.fetching = false; // caught up: live again, losses and all
                }
                if f.fetching {
                    f.fetched += 1;
                    stats.fetched[r] += 1;
                }
                if rec.dropped && !f.fetching {
                    f.cursor += 1;
                    continue;
                }
                let h = world.header(s, f.cursor);
                let data;
                let payload: &[u8] = if rec.flip == NO_FLIP {
                    let mut d = world.marking.payload(rec.k, u64::from(world.origins));
                    if rec.corrupt {
                        // A faulty pipeline: the same event, other bytes.
                        d[15] ^= 0x5A;
                    }
                    data = d;
                    &data
                } else {
                    &world.payloads[rec.flip as usize]
                };
                let mut spins = 0;
                loop {
                    match p.push(&h, payload) {
                        // Stored; shed by a staged ring (counted by the ring); or refused by
                        // an idle ring (the application's Unsubscribe is on its way).
                        Ok(()) | Err(PushError::Shed) | Err(PushError::NotSubscribed) => break,
                        Err(PushError::Full) => {
                            stats.full += 1;
                            sync.blocked.store(true, Ordering::Release);
                            if sync.stop.load(Ordering::Acquire) {
                                return stats;
                            }
                            backoff(&mut spins);
                        }
                        Err(PushError::TooLarge { .. } | PushError::Corrupt { .. }) => {
                            stats.errors += 1;
                            break;
                        }
                    }
                }
                f.cursor += 1;
                pushed = true;
            }
            if pushed {
                sync.dirty[r].store(true, Ordering::Relaxed);
            }
        }
        let due = feeds
            .iter()
            .filter(|f| f.subscribed)
            .filter_map(|f| log.get(f.cursor).map(|r| f.due(r, record_ns)))
            .min()
            .unwrap_or(u64::MAX);
        sync.next_due[s].store(due, Ordering::Relaxed);
        done = t;
        sync.done[s].store(t, Ordering::Release);
    }
}

/// The application around one engine: checks every event, answers notices.
struct App {
    origins: u64,
    active: Arc<AtomicU32>,
    /// Per origin, the next seq expected.
    next: Vec<u64>,
    /// Bit per logical event: delivered.
    seen: Vec<u64>,
    delivered: u64,
    duplicates: u64,
    out_of_order: u64,
    corrupt: u64,
    lost_notices: u64,
    gaps: u64,
    rejected_malformed: u64,
    rejected_other: u64,
    fetches: u64,
    live_subscribes: u64,
    /// `ts_ns` of the latest event delivered (where a search for the frontier starts).
    last_ts: u64,
    /// Which events are marked conflatable (their payloads).
    marking: Marking,
    /// `Conflated` notices: (origin, from, to, dropped).
    conflated: Vec<(u32, u64, u64, u64)>,
    /// Scenario ns of each live subscription and each fetch.
    stage_times: Vec<u64>,
    fetch_times: Vec<u64>,
    requests: Vec<Req>,
    switches: Vec<SwitchRec>,
    now_ns: u64,
    /// A mismatch was noted since the last switch or block (one note, not one per event).
    mismatch_noted: bool,
    /// The dry run of the switch about to be made (`Notice::DryRun`), until its `Switched`.
    predicted: Option<bool>,
    /// Notes for the plot (only for the plotted recipient).
    notes: Option<Vec<(u64, String)>>,
}

impl App {
    fn new(origins: u32, events: u64, initial: u32, notes: bool, marking: Marking) -> App {
        App {
            origins: u64::from(origins),
            active: Arc::new(AtomicU32::new(initial)),
            next: vec![1; origins as usize],
            seen: vec![0; events.div_ceil(64) as usize],
            delivered: 0,
            duplicates: 0,
            out_of_order: 0,
            corrupt: 0,
            lost_notices: 0,
            gaps: 0,
            rejected_malformed: 0,
            rejected_other: 0,
            fetches: 0,
            live_subscribes: 0,
            last_ts: 0,
            marking,
            conflated: Vec::new(),
            stage_times: Vec::new(),
            fetch_times: Vec::new(),
            requests: Vec::new(),
            switches: Vec::new(),
            now_ns: 0,
            mismatch_noted: false,
            predicted: None,
            notes: notes.then(Vec::new),
        }
    }

    /// The first logical event not delivered yet (the tracker's frontier, as the application
    /// knows it).
    fn frontier_k(&self) -> u64 {
        (0..self.origins).map(|o| (self.next[o as usize] - 1) * self.origins + o).min().unwrap_or(0)
    }

    fn note(&mut self, text: String) {
        if let Some(n) = self.notes.as_mut() {
            n.push((self.now_ns, text));
        }
    }
}

impl Handler for App {
    fn event(&mut self, _stream: u32, r: &Record<'_>) {
        let h = r.header;
        let o = u64::from(h.origin);
        if h.seq == 0 || o >= self.origins {
            self.corrupt += 1;
            return;
        }
        let k = (h.seq - 1) * self.origins + o;
        let Some(word) = self.seen.get_mut((k / 64) as usize) else {
            self.corrupt += 1;
            return;
        };
        if r.payload != self.marking.payload(k, self.origins) {
            self.corrupt += 1;
        }
        let bit = 1u64 << (k % 64);
        if *word & bit != 0 {
            self.duplicates += 1;
            return;
        }
        *word |= bit;
        self.delivered += 1;
        self.last_ts = self.last_ts.max(h.ts_ns);
        let next = self.next[o as usize];
        // In order: the origin's next seq, or past seqs a `Conflated` notice covered (looked
        // up only for an event out of order).
        let skip_reported = |c: &(u32, u64, u64, u64)| c.0 == h.origin && c.1 <= next && h.seq - 1 <= c.2;
        if h.seq != next && !(h.seq > next && self.conflated.iter().any(skip_reported)) {
            self.out_of_order += 1;
        }
        self.next[o as usize] = next.max(h.seq + 1);
    }

    fn notice(&mut self, n: &Notice<'_>) {
        match *n {
            Notice::Subscribe { stream, from, purpose, .. } => match purpose {
                // The feeds start with the initial stream subscribed.
                Purpose::Initial => {}
                Purpose::Stage => {
                    self.live_subscribes += 1;
                    self.stage_times.push(self.now_ns);
                    self.requests.push(Req::Live { stream });
                }
                // A cold switch, a re-read or a fill: fetch from the stream's log, from the exact
                // position named, else from the application's own frontier.
                Purpose::Switch | Purpose::ReRead { .. } | Purpose::Resume { .. } | Purpose::Fill { .. } => {
                    self.fetches += 1;
                    self.fetch_times.push(self.now_ns);
                    let k = self.frontier_k();
                    let (from_pos, ts) = (exact_pos(from), self.last_ts);
                    self.requests.push(Req::Fetch { stream, from_pos, k, ts });
                    self.note(format!("fetch s{stream}"));
                }
            },
            Notice::Unsubscribe { stream } => self.requests.push(Req::Stop { stream }),
            Notice::Switched { from, to, seamless, stall_ns, .. } => {
                // The recipient's id goes in when the outcome is gathered.
                let record = harmonizer_core::engine::SwitchRecord::from_notice(0, n)
                    .expect("a Switched notice has a record");
                let predicted_seamless = self.predicted.take();
                self.switches.push(SwitchRec {
                    t_ns: self.now_ns,
                    from,
                    to,
                    seamless,
                    stall_ns,
                    record,
                    predicted_seamless,
                });
                self.mismatch_noted = false;
            }
            Notice::Gap { stream, from_seq, to_seq, .. } => {
                self.gaps += 1;
                self.note(format!("gap on s{stream}: {} missing", to_seq - from_seq + 1));
            }
            Notice::Lost { from_seq, to_seq, .. } => self.lost_notices += to_seq - from_seq + 1,
            Notice::FlipRejected { stream, reason, .. } => match reason {
                RejectReason::Malformed(e) => {
                    self.rejected_malformed += 1;
                    self.note(format!("rejected on s{stream}: {e}"));
                }
                _ => self.rejected_other += 1,
            },
            Notice::BadEvent { .. } => self.corrupt += 1,
            // The demo's rings live on the heap: no ring files, so no producer to lose and no
            // file to truncate.
            Notice::ProducerGone { .. } | Notice::RingFileTruncated { .. } | Notice::RingCorrupt { .. } => {}
            Notice::Conflated { stream, origin, from_seq, to_seq, dropped } => {
                self.conflated.push((origin, from_seq, to_seq, dropped));
                self.note(format!(
                    "conflated on s{stream}: origin {origin} seqs {from_seq}..={to_seq}, {dropped} dropped"
                ));
            }
            Notice::Stuck { stream, origin, from_seq, to_seq, .. } => {
                self.note(format!("stuck on s{stream}: origin {origin} seqs {from_seq}..={to_seq}"));
            }
            Notice::ActiveSilent { stream, candidate, silent_ns, .. } => {
                self.note(format!("s{stream} silent {} ms, s{candidate} ahead", silent_ns / 1_000_000));
            }
            Notice::Mismatch { stream, origin, seq, .. } => {
                if !std::mem::replace(&mut self.mismatch_noted, true) {
                    self.note(format!(
                        "s{stream} differs from the delivered copy (origin {origin} seq {seq}, ...)"
                    ));
                }
            }
            Notice::DryRun { report } => self.predicted = Some(report.seamless),
            Notice::SwitchBlocked { from, to, mismatched, .. } => {
                self.predicted = None;
                self.mismatch_noted = false;
                self.note(format!("switch s{from}->s{to} blocked: {mismatched} mismatched"));
            }
            Notice::ProbationFailed { stream, previous, anomaly, rolling_back } => {
                let back = if rolling_back { format!(", back to s{previous}") } else { String::new() };
                self.note(format!("s{stream} failed its probation: {anomaly}{back}"));
            }
        }
    }
}

/// Per stream, the position of each logical event `k` on it (0: the stream does not carry it).
fn ground_truth(world: &World) -> Vec<Vec<u64>> {
    world
        .streams
        .iter()
        .enumerate()
        .map(|(s, log)| {
            let mut pos = vec![0u64; world.events as usize];
            for (i, r) in log.iter().enumerate() {
                if r.flip == NO_FLIP {
                    if let Some(p) = pos.get_mut(r.k as usize) {
                        *p = world.header(s, i).pos;
                    }
                }
            }
            pos
        })
        .collect()
}

/// Checks every pair of `engine`'s position map against `truth`: (pairs, wrong ones).
fn check_map(engine: &Engine, truth: &[Vec<u64>], origins: u64) -> (u64, u64) {
    let (mut pairs, mut wrong) = (0, 0);
    for run in engine.position_map() {
        for j in 0..run.len {
            let p = run.pair(j);
            let k = (p.seq - 1) * origins + u64::from(p.origin);
            let at = |s: u32| truth.get(s as usize).and_then(|t| t.get(k as usize)).copied();
            pairs += 1;
            wrong += u64::from(at(run.from) != Some(p.from_pos) || at(run.to) != Some(p.to_pos));
        }
    }
    (pairs, wrong)
}

/// Builds the policy for recipient `id`.
fn policy(
    kind: PolicyKind,
    sc: &Scenario,
    id: u64,
    active: Arc<AtomicU32>,
) -> Result<Box<dyn ArmingPolicy>, String> {
    Ok(match kind {
        PolicyKind::Predictor => {
            let mut cfg = PredictorConfig::preset(sc.predictor.preset.preset());
            cfg.adaptive.target_duty = sc.predictor.target_duty;
            let p = Predictor::with_default_model(id, cfg).map_err(|e| format!("predictor: {e}"))?;
            Box::new(Tap { inner: p, active })
        }
        PolicyKind::Never => Box::new(Tap { inner: NeverStage, active }),
        PolicyKind::Always => Box::new(Tap { inner: AlwaysStage, active }),
        PolicyKind::Manual => Box::new(Tap { inner: ManualStage, active }),
    })
}

/// Runs `world` (rendered from `sc`) under `kind`. `plot` asks for one recipient's timeline;
/// `progress` is told the scenario time reached.
pub fn run(
    sc: &Scenario,
    world: &World,
    kind: PolicyKind,
    plot: Option<usize>,
    progress: &mut dyn FnMut(u64),
) -> Result<PassOutcome, String> {
    let ids = sc.recipient_ids();
    let n = ids.len();
    let streams = sc.streams as usize;
    let clock = ManualClock::at(0);
    let mut engines = Vec::with_capacity(n);
    let mut apps = Vec::with_capacity(n);
    let mut by_stream: Vec<Vec<StreamProducer>> = (0..streams).map(|_| Vec::with_capacity(n)).collect();
    let pool = match sc.engine.shared_pool_kib {
        0 => None,
        kib => Some(Arc::new(
            StagingPool::new(PoolConfig::new(u64::from(kib) * 1024))
                .map_err(|e| format!("engine.shared_pool_kib: {e}"))?,
        )),
    };
    for (i, &id) in ids.iter().enumerate() {
        let mut cfg = EngineConfig::new(
            id,
            sc.streams,
            sc.engine.ring_kib as usize * 1024,
            (sc.engine.max_payload as usize).max(world.max_payload),
        );
        cfg.initial_stream = sc.initial_stream;
        cfg.max_origins = sc.origins;
        cfg.default_window = sc.engine.default_window as usize;
        if sc.engine.staging_budget_kib > 0 {
            cfg.staging_budget_bytes = sc.engine.staging_budget_kib as usize * 1024;
        }
        if sc.engine.staging_budget_bytes > 0 {
            cfg.staging_budget_bytes = usize::try_from(sc.engine.staging_budget_bytes).unwrap_or(usize::MAX);
        }
        cfg.staging_pool = pool.clone();
        cfg.cold_switch_cost_ns = Scenario::ns(sc.engine.cold_switch_cost_ms / 1000.0);
        cfg.identity_records = sc.engine.identity_records as usize;
        cfg.conflation_keys = sc.engine.conflation_keys as usize;
        cfg.conflation_payload = sc.engine.conflation_payload as usize;
        cfg.verify_records = sc.engine.verify_records as usize;
        cfg.dry_run_switches = sc.engine.dry_run_switches;
        if sc.engine.block_mismatched {
            cfg.mismatch_policy = harmonizer_core::engine::MismatchPolicy::BlockSwitch;
        }
        cfg.probation = harmonizer_core::engine::Probation {
            duration_ns: Scenario::ns(sc.engine.probation_ms / 1000.0),
            ..harmonizer_core::engine::Probation::default()
        };
        cfg.spread = Spread {
            max_ns: Scenario::ns(sc.engine.spread_max_ms / 1000.0),
            fraction: sc.engine.spread_fraction as f32,
        };
        let app = App::new(sc.origins, world.events, sc.initial_stream, plot == Some(i), world.marking);
        let pol = policy(kind, sc, id, app.active.clone())?;
        let (engine, producers) =
            Engine::with(cfg, pol, Box::new(clock.clone())).map_err(|e| format!("recipient {id}: {e}"))?;
        for (s, p) in producers.into_iter().enumerate() {
            by_stream[s].push(p);
        }
        engines.push(engine);
        apps.push(app);
    }
    let sync = Lockstep {
        target: AtomicU64::new(0),
        done: (0..streams).map(|_| AtomicU64::new(0)).collect(),
        stop: AtomicBool::new(false),
        blocked: AtomicBool::new(false),
        dirty: (0..n).map(|_| AtomicBool::new(false)).collect(),
        cmds: (0..streams).map(|_| Mutex::new(Vec::new())).collect(),
        next_due: (0..streams).map(|_| AtomicU64::new(0)).collect(),
    };
    let tick = Scenario::ns(sc.tick_ms / 1000.0).max(1);
    let sub_delay = Scenario::ns(sc.app.subscribe_delay_ms / 1000.0);
    let fetch_delay = Scenario::ns(sc.app.fetch_delay_ms / 1000.0);
    let record_ns = (sc.app.fetch_record_us * 1000.0).round() as u64;
    let lookback = Scenario::ns(sc.app.search_lookback_ms / 1000.0);
    let end_min = world.duration_ns.max(world.last_arrival_ns);
    let cap = end_min + DRAIN_CAP_NS;
    let mut timeline = plot.map(|i| Timeline { index: i, id: ids[i], ..Timeline::default() });
    let started = Instant::now();
    let (end_ns, feed_stats, peak_staged, mean_staged) = thread::scope(|scope| {
        let sync = &sync;
        let handles: Vec<_> = by_stream
            .into_iter()
            .enumerate()
            .map(|(s, prods)| {
                let initial = s as u32 == sc.initial_stream;
                scope.spawn(move || feed_loop(s, world, prods, sync, initial, record_ns))
            })
            .collect();
        let stop = StopOnDrop(sync);
        let mut t: u64;
        let mut last_poll = vec![0u64; n];
        let mut next_sample = 0u64;
        let mut next_progress = 0u64;
        let mut next_t = tick;
        let (mut staged_before, mut staged_since, mut staged_byte_ns, mut peak_staged) =
            (0u64, 0u64, 0f64, 0u64);
        loop {
            t = next_t;
            clock.set(t);
            sync.target.store(t, Ordering::Release);
            let mut spins = 0;
            while sync.done.iter().any(|d| d.load(Ordering::Acquire) < t) {
                if sync.blocked.swap(false, Ordering::AcqRel) {
                    // A feed waits on a full active ring: make room (the clock is at `t`, and
                    // everything in the rings arrived by then).
                    for (e, a) in engines.iter_mut().zip(apps.iter_mut()) {
                        a.now_ns = t;
                        drain(e, a, POLL_BATCH);
                    }
                } else {
                    backoff(&mut spins);
                }
            }
            // The next tick with something to do: a record due, a command's start, an idle
            // poll, a sample. Ticks with nothing to do would change nothing.
            let mut wake = sync.next_due.iter().map(|d| d.load(Ordering::Relaxed)).min().unwrap_or(u64::MAX);
            for r in 0..n {
                let dirty = sync.dirty[r].swap(false, Ordering::Relaxed);
                if !dirty && t - last_poll[r] < IDLE_POLL_NS {
                    continue;
                }
                last_poll[r] = t;
                let app = &mut apps[r];
                app.now_ns = t;
                drain(&mut engines[r], app, POLL_BATCH);
                for req in app.requests.drain(..) {
                    let (s, cmd) = match req {
                        Req::Live { stream } => {
                            let s = stream as usize;
                            let from = t + sub_delay;
                            (s, Cmd::Live { r, cursor: world.index_of_arrival(s, from), not_before: from })
                        }
                        Req::Stop { stream } => (stream as usize, Cmd::Stop { r }),
                        Req::Fetch { stream, from_pos, k, ts } => {
                            let s = stream as usize;
                            // From exactly the position asked (for a re-read, just after the
                            // gapped origin's last delivered event), or, with none, from the
                            // application's own frontier: found for free, or searched for
                            // from `search_lookback_ms` before the last event delivered.
                            let cursor = if from_pos != 0 {
                                world.index_of_pos(s, from_pos)
                            } else if lookback > 0 {
                                let from_ts = ts.saturating_sub(lookback);
                                world
                                    .index_of_k(s, k)
                                    .min(world.streams[s].partition_point(|r| r.ts_ns < from_ts))
                            } else {
                                world.index_of_k(s, k)
                            };
                            (s, Cmd::Fetch { r, cursor, not_before: t + fetch_delay, live_after: t })
                        }
                    };
                    if let Cmd::Live { not_before, .. } | Cmd::Fetch { not_before, .. } = cmd {
                        wake = wake.min(not_before);
                    }
                    if let Some(q) = sync.cmds.get(s) {
                        q.lock().unwrap_or_else(|e| e.into_inner()).push(cmd);
                    }
                }
            }
            let staged: u64 = engines.iter().map(|e| e.stats().staged_bytes).sum();
            staged_byte_ns += staged_before as f64 * (t - staged_since) as f64;
            (staged_before, staged_since) = (staged, t);
            peak_staged = peak_staged.max(staged);
            if let Some(tl) = timeline.as_mut() {
                if t >= next_sample {
                    next_sample = t + SAMPLE_EVERY_NS;
                    tl.samples.push(sample(&mut engines[tl.index], streams, t));
                }
            }
            if t >= next_progress {
                next_progress = t + 100_000_000;
                progress(t);
            }
            let complete = apps.iter().all(|a| a.delivered == world.events);
            if (complete && t >= end_min) || t >= cap {
                break;
            }
            wake = wake.min(last_poll.iter().min().map_or(u64::MAX, |p| p + IDLE_POLL_NS));
            if timeline.is_some() {
                wake = wake.min(next_sample);
            }
            next_t = (t + tick).max(wake.div_ceil(tick).saturating_mul(tick)).min(cap);
        }
        drop(stop);
        let mut fs = FeedStats { fetched: vec![0; n], ..FeedStats::default() };
        for h in handles {
            match h.join() {
                Ok(s) => {
                    fs.full += s.full;
                    fs.errors += s.errors;
                    for (t, f) in fs.fetched.iter_mut().zip(&s.fetched) {
                        *t += f;
                    }
                }
                Err(_) => fs.errors += 1,
            }
        }
        let mean_staged = if t > 0 { staged_byte_ns / t as f64 } else { 0.0 };
        (t, fs, peak_staged, mean_staged)
    });
    let wall = started.elapsed();
    // The ground truth of the position map: each stream's position of each logical event.
    let truth = ground_truth(world);
    let mut recipients = Vec::with_capacity(n);
    for (((engine, app), &id), &fetched_records) in
        engines.iter().zip(apps.iter_mut()).zip(&ids).zip(&feed_stats.fetched)
    {
        let missing = world.events - app.delivered.min(world.events);
        // Each notice's range: exactly `dropped` of its events never delivered.
        let origins = u64::from(world.origins);
        let undelivered = |o: u32, seq: u64| {
            let k = (seq - 1) * origins + u64::from(o);
            app.seen.get((k / 64) as usize).is_some_and(|w| w & (1 << (k % 64)) == 0)
        };
        let (map_pairs, map_wrong) = check_map(engine, &truth, origins);
        let mut conflated = 0;
        let mut conflation_mismatches = 0;
        for &(o, from, to, dropped) in &app.conflated {
            let gone = (from..=to).filter(|&seq| undelivered(o, seq)).count() as u64;
            conflation_mismatches += u64::from(gone != dropped);
            conflated += dropped;
        }
        recipients.push(RecipientOutcome {
            id,
            delivered: app.delivered,
            duplicates: app.duplicates,
            out_of_order: app.out_of_order,
            corrupt: app.corrupt,
            lost: (missing + app.lost_notices).saturating_sub(conflated),
            switches: std::mem::take(&mut app.switches)
                .into_iter()
                .map(|s| SwitchRec {
                    record: harmonizer_core::engine::SwitchRecord { recipient: id, ..s.record },
                    ..s
                })
                .collect(),
            stats: *engine.stats(),
            rejected_malformed: app.rejected_malformed,
            rejected_other: app.rejected_other,
            gaps: app.gaps,
            fetches: app.fetches,
            live_subscribes: app.live_subscribes,
            fetched_records,
            conflated,
            conflation_mismatches,
            map_pairs,
            map_wrong,
            map: engine.position_map().copied().collect(),
        });
    }
    let mut fleet = FleetSeries {
        peak_staged_bytes: peak_staged,
        mean_staged_bytes: mean_staged,
        pool: pool.as_ref().map(|p| p.stats()),
        ..FleetSeries::default()
    };
    for app in &mut apps {
        fleet.stage_subscribes_ns.append(&mut app.stage_times);
        fleet.fetches_ns.append(&mut app.fetch_times);
    }
    fleet.stage_subscribes_ns.sort_unstable();
    fleet.fetches_ns.sort_unstable();
    if let Some(tl) = timeline.as_mut() {
        tl.switches = recipients[tl.index].switches.clone();
        tl.notes = apps[tl.index].notes.take().unwrap_or_default();
    }
    Ok(PassOutcome {
        policy: kind,
        recipients,
        wall,
        end_ns,
        timeline,
        push_full: feed_stats.full,
        push_errors: feed_stats.errors,
        fleet,
    })
}

fn sample(engine: &mut Engine, streams: usize, t: u64) -> Sample {
    let active = engine.active_stream();
    let staged = engine.staged_streams().fold(0u32, |m, s| m | 1u32.checked_shl(s).unwrap_or(0));
    let mut prob = vec![f64::NAN; streams];
    let mut threshold = f64::NAN;
    if let Some(tap) = engine.policy_mut::<Tap<Predictor>>() {
        if !tap.inner.last_scores().is_empty() {
            threshold = sigmoid(tap.inner.threshold_logit()); // after the first plan only
        }
        for &(s, z, _) in tap.inner.last_scores() {
            if let Some(p) = prob.get_mut(s as usize) {
                *p = sigmoid(z);
            }
        }
    }
    Sample { t_ns: t, active, staged, prob, threshold }
}
