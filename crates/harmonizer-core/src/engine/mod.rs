//! The harmonization engine: streams, producers, the poll loop, flips, the tracker, staging,
//! the switch and switchback (docs/design.md §§1–4). Design notes: `docs/engine.md`.
//!
//! One [`StreamProducer`] per stream feeds a ring; one consumer, [`Engine::poll`], reads the
//! active stream's ring and hands events and [`Notice`]s to a [`Handler`], zero-copy and in order.
//! Candidate streams sit in staged rings, trimmed to what the active stream has not delivered
//! yet; a SWITCH flip makes the target's ring active with one epoch change (the ring's role
//! switch, `ring` module `# Orderings`) and delivery goes on from it, the tracker dropping what
//! was already delivered. Nothing on the poll path allocates.

mod audit;
mod conflate;
mod dry_run;
#[cfg(shm)]
mod file;
mod metrics;
mod notice;
mod policy;
mod poll;
mod pool;
mod probation;
mod recovery;
mod stats;
mod storage;
mod verify;
mod wait;

pub use audit::{SwitchRecord, SWITCH_RECORD_VERSION};
pub use conflate::{
    conflation_store_bytes, MAX_CONFLATION_KEYS, MAX_CONFLATION_PAYLOAD, MAX_CONFLATION_STORE_BYTES,
};
pub use dry_run::{DryRun, DryRunRefusal};
pub use metrics::{Metric, MetricKind, MetricsFormat, METRICS, METRICS_JSON_VERSION};
pub use notice::{BadEventReason, Handler, Notice, Purpose, RejectReason, StartAt, SwitchCause};
pub use policy::{
    AlwaysStage, ArmingPolicy, Candidate, ManualStage, NeverStage, StagePlan, StageScore, MAX_STREAMS,
    SWITCHBACK_PROBABILITY,
};
pub use pool::{
    PoolConfig, PoolError, PoolStats, Refusal, Spread, StagingDemand, StagingPool, MAX_BID_TTL_NS,
    MAX_POOL_BYTES, YIELD_MARGIN,
};
pub use probation::{Anomaly, Probation};
pub use stats::Stats;
pub use storage::StreamStorage;
pub use verify::{
    event_digest, verifier_bytes, MapRun, MismatchPolicy, PairCounts, PositionPair, MAP_RUN_BYTES,
    MAX_MAP_RUNS, MAX_VERIFY_RECORDS,
};

use core::fmt;

use crate::clock::{Clock, MonotonicClock};
use crate::event::EventHeader;
use crate::flip::MAX_LOCATOR;
use crate::ring::{
    ring_with_storage, Consumer, Producer, PushError, Reservation, RingConfig, RingError, Role,
    StaleReservation, WriteBatch,
};
use crate::sync::Arc;
use crate::tracker::{SeqMode, Tracker, TrackerError};

/// What to do with a gap no staged candidate can fill (strict mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GapPolicy {
    /// Report `Gap`, ask for the stream to be re-read (`Subscribe` from the position after the
    /// gapped origin's last event delivered from it) and skip its events until the re-read
    /// arrives (its positions go back). Nothing is given up.
    ReRead,
    /// Report `Gap` and `Lost`, and go on.
    ReportLost,
}

/// What a gap's recovery does once re-reads and fills from other streams have all come back
/// without the missing events (gap policy `ReRead`; docs/engine.md, "Liveness").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exhausted {
    /// Report `Stuck` once and hold delivery of the active stream at the gap; a staged candidate
    /// that later brings the events still fills it, and the application may
    /// [`retry_gap`](Engine::retry_gap) or [`give_up_gap`](Engine::give_up_gap). Nothing is
    /// given up without the application's word.
    Stuck,
    /// Report `Lost` with the exact range and go on.
    ReportLost,
}

/// Liveness bounds (docs/design.md §2, guarantee 8): every wait the engine imposes is bounded and
/// reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Liveness {
    /// Rounds of asking the same stream for a gap's events (a re-read of the active stream, or
    /// a fill from another) before moving on. At least 1; default 3.
    pub reread_rounds: u32,
    /// Clock nanoseconds one round may take before it counts as failed (the application never
    /// re-read, or the stream never brought the events). Default 2 s.
    pub round_timeout_ns: u64,
    /// After the re-reads, ask each other stream in turn (`Subscribe` with `Purpose::Fill`) for
    /// the missing range. Default true.
    pub fill_from_others: bool,
    /// When every stream came back without the events. Default [`Exhausted::Stuck`].
    pub exhausted: Exhausted,
    /// Report `ActiveSilent` when the active stream delivers nothing for this long while a
    /// staged candidate holds events beyond the frontier; 0 disables. Default 1 s.
    pub silence_ns: u64,
    /// On `ActiveSilent`, switch to the candidate furthest ahead (`SwitchCause::Silence`).
    /// Opt-in; default false.
    pub failover_on_silence: bool,
    /// A hole on the active stream that no staged window fills at once waits up to this long,
    /// delivery held at it, while a staged stream that has not yet shown the hole's origin past
    /// it (it lags) may bring the missing events; then the gap policy runs. Clock nanoseconds
    /// from when the hole is met; 0 disables. Default 20 ms (docs/engine.md, "Waiting for a
    /// lagging candidate").
    pub gap_wait_ns: u64,
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness {
            reread_rounds: 3,
            round_timeout_ns: 2_000_000_000,
            fill_from_others: true,
            exhausted: Exhausted::Stuck,
            silence_ns: 1_000_000_000,
            failover_on_silence: false,
            gap_wait_ns: 20_000_000,
        }
    }
}

/// One stream's ring.
#[derive(Clone, Copy, Debug)]
pub struct StreamConfig {
    /// The stream id flips use.
    pub id: u32,
    /// Ring bytes (rounded up to a power of two).
    pub capacity_bytes: usize,
}

/// How to build an engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// This recipient.
    pub recipient_id: u64,
    /// The streams, at most [`MAX_STREAMS`], ids unique.
    pub streams: Vec<StreamConfig>,
    /// The stream active at start.
    pub initial_stream: u32,
    /// Largest payload of a data event, bytes. Flip records may be larger (up to
    /// `flip::MAX_FLIP_LEN`): the rings are sized for both, so flips do not force a large
    /// `max_payload` on data.
    pub max_payload: usize,
    /// Origins are `0 .. max_origins`.
    pub max_origins: u32,
    /// Strict or monotonic seqs.
    pub seq_mode: SeqMode,
    /// Unfillable gaps.
    pub gap_policy: GapPolicy,
    /// Bounds on re-reads, fills and silence.
    pub liveness: Liveness,
    /// Most bytes of staged windows at once: each window counted as its records times the mean
    /// frame the streams carry (docs/engine.md, "Staging and the policy").
    pub staging_budget_bytes: usize,
    /// A staging budget shared with other engines of this process (docs/staging.md): staged
    /// windows then need a grant from it as well as fitting `staging_budget_bytes`.
    pub staging_pool: Option<Arc<StagingPool>>,
    /// What a cold switch costs this recipient, ns of stall (default 100 ms: a fetch): a staged
    /// window's benefit in a shared pool is the switch's probability times this.
    pub cold_switch_cost_ns: u64,
    /// Spreading staging starts across a fleet (off by default).
    pub spread: Spread,
    /// Default staging window, records (docs/design.md §5: 100).
    pub default_window: usize,
    /// The identity tier (docs/staging.md): each stream's ring keeps the identities (origin,
    /// seq, position) of the last `identity_records - 1` records its staged window evicted,
    /// 40 bytes each, allocated here. A switch whose target's window proved too short then
    /// asks the re-read from the exact position instead of "after (origin, seq)". 0 (the
    /// default): off. At most [`MAX_IDENTITIES`](crate::ring::MAX_IDENTITIES).
    pub identity_records: usize,
    /// The conflation tier (docs/staging.md, "Tiers"): each stream keeps, while staged, a copy of
    /// the latest conflatable event (`event::FLAG_CONFLATABLE`) of up to `conflation_keys` keys,
    /// payloads up to `conflation_payload` bytes, allocated here; a hole its window left is
    /// then conflated (`Notice::Conflated`) when it held only conflatable events. Needs the
    /// identity tier (`identity_records`, which bounds the hole). 0 (the default): off. At most
    /// [`MAX_CONFLATION_KEYS`].
    pub conflation_keys: usize,
    /// Largest payload the conflation tier keeps a copy of, bytes (default 64; at most
    /// [`MAX_CONFLATION_PAYLOAD`]). A key whose latest event is larger is not conflated.
    pub conflation_payload: usize,
    /// After a switch, keep the old stream as a candidate (the policy may stage it) rather than
    /// releasing it with `Unsubscribe`.
    pub keep_previous: bool,
    /// Content verification and the position map (docs/verify.md): the engine remembers the
    /// last `verify_records` events (rounded up to a power of two; 32 bytes each) delivered
    /// while a candidate is staged, and matches each staged copy of them by digest. 0 (the
    /// default): off. At most [`MAX_VERIFY_RECORDS`]. A staged stream that lags the active one
    /// by more than this many events is not verified (counted `Stats::unverified`).
    pub verify_records: usize,
    /// Runs the position map keeps (72 bytes each), the oldest overwritten first (default 1024;
    /// at most [`MAX_MAP_RUNS`]). Used when `verify_records` is set.
    pub map_runs: usize,
    /// What a mismatch does (default [`MismatchPolicy::Report`]).
    pub mismatch_policy: MismatchPolicy,
    /// Under [`MismatchPolicy::BlockSwitch`], a switch to a stream is refused until it has
    /// verified this many events since its last mismatch (default 1024).
    pub mismatch_window: u64,
    /// After a switch, watch the new stream for a while and switch back on an anomaly
    /// (docs/verify.md, "Rollback"; off by default).
    pub probation: Probation,
    /// Before each switch, report its dry run (`Notice::DryRun`), so the prediction can be
    /// compared with what the switch then did. Off by default.
    pub dry_run_switches: bool,
}

impl EngineConfig {
    /// Two or more streams of `capacity_bytes` each, ids `0..n`, starting on stream 0, strict
    /// mode, gaps re-read, a budget for every candidate at the default window.
    pub fn new(recipient_id: u64, streams: u32, capacity_bytes: usize, max_payload: usize) -> Self {
        EngineConfig {
            recipient_id,
            streams: (0..streams).map(|id| StreamConfig { id, capacity_bytes }).collect(),
            initial_stream: 0,
            max_payload,
            max_origins: 64,
            seq_mode: SeqMode::Strict,
            gap_policy: GapPolicy::ReRead,
            liveness: Liveness::default(),
            staging_budget_bytes: usize::MAX,
            staging_pool: None,
            cold_switch_cost_ns: 100_000_000,
            spread: Spread::default(),
            default_window: 100,
            identity_records: 0,
            conflation_keys: 0,
            conflation_payload: 64,
            keep_previous: true,
            verify_records: 0,
            map_runs: 1024,
            mismatch_policy: MismatchPolicy::Report,
            mismatch_window: 1024,
            probation: Probation::default(),
            dry_run_switches: false,
        }
    }
}

/// A ring on the heap, with the engine's storage type.
fn heap_ring(cfg: RingConfig) -> Result<(Producer<StreamStorage>, Consumer<StreamStorage>), RingError> {
    ring_with_storage(cfg, StreamStorage::heap(cfg.validate()?)?)
}

/// Options for [`Engine::attach_file`].
#[cfg(shm)]
#[derive(Clone, Copy, Debug)]
pub struct FileOptions {
    /// Create the file, re-attach to it, or either.
    pub mode: crate::shm::AttachMode,
    /// Clock nanoseconds between checks of the file (its length, the producer's lock) at the
    /// start of a poll; 0 checks on every poll. Default 1 ms.
    pub check_interval_ns: u64,
}

#[cfg(shm)]
impl Default for FileOptions {
    fn default() -> Self {
        FileOptions { mode: crate::shm::AttachMode::CreateOrResume, check_interval_ns: 1_000_000 }
    }
}

/// What the engine knows of a file-backed stream's file.
#[cfg(shm)]
struct FileWatch {
    file: std::sync::Arc<crate::shm::RingFile>,
    /// The stream's in-process ring, idle, for when the file is lost.
    fallback: Consumer<StreamStorage>,
    interval_ns: u64,
    last_check_ns: Option<u64>,
    /// The producer generation last reported gone (no second notice for it).
    reported_gone: u64,
}

/// Engine construction errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineError {
    /// No streams, or more than [`MAX_STREAMS`].
    StreamCount(usize),
    /// Two streams share an id.
    DuplicateStream(u32),
    /// `initial_stream` is not one of the streams.
    UnknownInitialStream(u32),
    /// A ring configuration error, for the stream named.
    Ring(u32, RingError),
    /// A tracker configuration error.
    Tracker(TrackerError),
    /// The engine's tables (`streams × max_origins` positions) could not be allocated.
    OutOfMemory(usize),
    /// The conflation tier's bounds: keys or payload over their limit, or no identity tier.
    Conflation(&'static str),
    /// Verification's bounds: `verify_records` or `map_runs` over their limit.
    Verify(&'static str),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::StreamCount(n) => write!(f, "{n} streams configured; need 1..={MAX_STREAMS}"),
            EngineError::DuplicateStream(id) => write!(f, "stream id {id} configured twice"),
            EngineError::UnknownInitialStream(id) => write!(f, "initial stream {id} is not configured"),
            EngineError::Ring(id, e) => write!(f, "stream {id}: {e}"),
            EngineError::Tracker(e) => write!(f, "{e}"),
            EngineError::OutOfMemory(bytes) => {
                write!(f, "could not allocate {bytes} bytes of position tables")
            }
            EngineError::Conflation(why) => write!(f, "conflation tier: {why}"),
            EngineError::Verify(why) => write!(f, "verification: {why}"),
        }
    }
}

impl std::error::Error for EngineError {}

/// The producer of one stream: moves to the thread that receives it; not `Sync`.
///
/// ```
/// fn needs_send<T: Send>() {}
/// needs_send::<harmonizer_core::engine::StreamProducer>();
/// ```
///
/// ```compile_fail,E0277
/// fn needs_sync<T: Sync>() {}
/// needs_sync::<harmonizer_core::engine::StreamProducer>();
/// ```
pub struct StreamProducer {
    stream: u32,
    producer: Producer<StreamStorage>,
    /// For a producer on a ring file: its generation (1 for the file's first producer).
    generation: u64,
    /// Largest payload of a data event (the ring also takes flips up to their largest size).
    max_data_payload: usize,
}

impl StreamProducer {
    /// The largest data payload a push accepts, bytes (flip records may be larger, up to
    /// `flip::MAX_FLIP_LEN`).
    pub fn max_payload(&self) -> usize {
        self.max_data_payload
    }
    /// The stream this producer feeds.
    pub fn stream(&self) -> u32 {
        self.stream
    }
    /// Pushes one event. `Ok` means accepted; [`PushError::Full`] is backpressure (active stream
    /// only); [`PushError::NotSubscribed`] means the stream is idle and the event was discarded;
    /// [`PushError::Shed`] means a staged ring shed it (counted; nothing to do).
    #[inline]
    pub fn push(&mut self, header: &EventHeader, payload: &[u8]) -> Result<(), PushError> {
        if payload.len() > self.max_data_payload && header.kind != crate::event::KIND_FLIP {
            return Err(PushError::TooLarge { len: payload.len(), max: self.max_data_payload });
        }
        self.producer.push(header, payload)
    }
    /// Reserves the next record, `payload_len` bytes, without borrowing the producer
    /// ([`Producer::reserve_detached`](crate::ring::Producer::reserve_detached): fill it at
    /// [`reserved_payload`](Self::reserved_payload), then
    /// [`commit_detached`](Self::commit_detached)). For data events: the limit is
    /// [`max_payload`](Self::max_payload) whatever the kind (a flip above it goes through
    /// [`push`](Self::push)). Errors as `push`.
    #[inline]
    pub fn reserve_detached(&mut self, payload_len: usize) -> Result<Reservation, PushError> {
        if payload_len > self.max_data_payload {
            return Err(PushError::TooLarge { len: payload_len, max: self.max_data_payload });
        }
        self.producer.reserve_detached(payload_len)
    }
    /// Where `r`'s payload goes ([`Producer::reserved_payload`](crate::ring::Producer::reserved_payload)).
    #[inline]
    pub fn reserved_payload(&self, r: &Reservation) -> *mut u8 {
        self.producer.reserved_payload(r)
    }
    /// Publishes `r` with `header`
    /// ([`Producer::commit_detached`](crate::ring::Producer::commit_detached)).
    #[inline]
    pub fn commit_detached(&mut self, r: Reservation, header: &EventHeader) -> Result<(), StaleReservation> {
        self.producer.commit_detached(r, header)
    }
    /// A batch, published with one store when dropped.
    pub fn batch(&mut self) -> WriteBatch<'_, StreamStorage> {
        self.producer.batch()
    }
    /// The ring's role as last seen by this producer.
    pub fn role(&self) -> Role {
        self.producer.role()
    }

    /// Opens the producer side of a ring file that an engine (in this process or, typically,
    /// another) made with [`Engine::attach_file`], for the stream the file was made for.
    ///
    /// The producer goes on from the ring's published tail: anything a previous producer wrote
    /// past it (cut short by a crash) is overwritten, never read. It holds the file's producer
    /// lock until it is dropped or its process dies, which is how the engine tells a dead
    /// producer from a slow one; its generation is one more than the last producer's.
    ///
    /// Errors: the file's [`ShmError`](crate::shm::ShmError)s: I/O, a header this build does not accept, a file
    /// whose length or positions do not match its header, or
    /// [`ProducerBusy`](crate::shm::ShmError::ProducerBusy) while another live process
    /// produces on it.
    #[cfg(shm)]
    pub fn open_file(path: &std::path::Path) -> Result<StreamProducer, crate::shm::ShmError> {
        let mut rf = crate::shm::RingFile::open(path)?;
        let generation = rf.become_producer()?;
        let stream = rf.stream();
        let max_payload = rf.max_payload();
        let storage = StreamStorage::file(std::sync::Arc::new(rf));
        Ok(StreamProducer {
            stream,
            producer: crate::ring::resume_producer(storage, max_payload),
            generation,
            // The file records the ring's limit only (data and flips alike).
            max_data_payload: max_payload,
        })
    }

    /// The producer's generation on its ring file (0 for an in-process ring).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// What the ring file's consumer process wrote wrong, behind the last
    /// [`PushError::Corrupt`]: the position and the fault. `None` for an in-process ring.
    pub fn corruption(&self) -> Option<(u64, crate::ring::Corruption)> {
        self.producer.corruption()
    }
}

/// What the plan keeps per stream (`Engine::staging`).
#[derive(Clone, Copy)]
struct StagingState {
    /// What the engine holds of its shared pool, bytes.
    granted: [u64; MAX_STREAMS],
    /// When a start the plan asks for may begin (spread), 0 when not asked.
    start_at: [u64; MAX_STREAMS],
    /// Clock ns an ANNOUNCE expects the switch to it, 0 if none.
    announce_at: [u64; MAX_STREAMS],
    /// The last hole `(stream index, origin, from, to)` the conflation tier could not conflate: met again at
    /// every poll while it is held, it is not tried (or counted) again. Here, in the box, for
    /// the same reason as the rest: it is rarely touched.
    conflation_tried: Option<(usize, u32, u64, u64)>,
    /// `EngineConfig::dry_run_switches`, here for the same reason.
    dry_run_switches: bool,
}

/// Per-stream engine state.
struct Stream {
    id: u32,
    consumer: Consumer<StreamStorage>,
    /// A file-backed stream: when its file was last checked, and what was reported.
    #[cfg(shm)]
    file: Option<FileWatch>,
    /// A ring replaced in the last call, kept until the next poll (records may be lent from it).
    #[cfg(shm)]
    retired: Option<Consumer<StreamStorage>>,
    announced: bool,
    armed: bool,
    /// Locator from the last flip naming this stream.
    locator: [u8; MAX_LOCATOR],
    locator_len: usize,
    /// Position of the last event consumed from this stream (a re-read shows as a step back).
    last_read_pos: u64,
    /// Staged: bytes its window held after the last trim.
    retained_bytes: u64,
    /// Where the application's checkpoint says this stream resumes (`resume_stream_at`), for
    /// the first `Subscribe` of the initial stream.
    start_pos: Option<u64>,
    /// The conflation tier's store, if configured.
    conflation: Option<Box<conflate::ConflationStore>>,
}

impl Stream {
    fn locator(&self) -> &[u8] {
        &self.locator[..self.locator_len]
    }
    fn set_locator(&mut self, loc: &[u8]) {
        let n = loc.len().min(MAX_LOCATOR);
        self.locator[..n].copy_from_slice(&loc[..n]);
        self.locator_len = n;
    }
}

/// A switch waiting for its cut-over point.
#[derive(Clone, Copy, Debug)]
struct PendingSwitch {
    to: usize,
    flip_id: u64,
    cutover_pos: u64,
    not_before_ns: u64,
    resume_pos: u64,
    /// `ts_ns` of the flip event (for a failover, the current switch's).
    flip_ts: u64,
    cause: SwitchCause,
}

/// A switch made, whose `Switched` notice waits for the first event of the new stream.
#[derive(Clone, Copy, Debug)]
struct SwitchInFlight {
    from_id: u32,
    to_id: u32,
    flip_id: u64,
    staged: bool,
    started_ns: u64,
    /// Clock ns the engine spent in `switch` (its own cost).
    switch_ns: u64,
    cause: SwitchCause,
    /// A re-read or fetch was needed before the first delivery (not seamless).
    gapped: bool,
    /// Verification of the target against the stream left, at the switch (docs/verify.md).
    verified: u64,
    mismatched: u64,
    matched: Option<PositionPair>,
    /// Position of the last record consumed from the stream left.
    cut_pos: u64,
}

/// The last event of one origin seen on one stream at or behind the delivery frontier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SeenAt {
    /// Its position plus one (0: none seen).
    pub(super) next_pos: u64,
    /// Its seq.
    pub(super) seq: u64,
}

impl SeenAt {
    const NONE: SeenAt = SeenAt { next_pos: 0, seq: 0 };

    /// Notes event `(seq)` at `pos`, if it is the latest of its origin seen on the stream.
    #[inline]
    fn note(&mut self, pos: u64, seq: u64) {
        if self.next_pos == 0 || seq >= self.seq {
            *self = SeenAt { next_pos: pos.saturating_add(1), seq };
        }
    }

    /// The exact position after the origin's frontier event `last` on this stream, if that event
    /// is the one seen (a stream seen long ago holds an older event: reading from there would
    /// replay everything since, so it does not count).
    #[inline]
    fn after(&self, last: u64) -> Option<u64> {
        (self.next_pos != 0 && self.seq == last).then_some(self.next_pos)
    }
}

/// Remembers the last [`FLIP_MEMORY`] flip ids applied, so a flip arriving on both streams is
/// applied once.
const FLIP_MEMORY: usize = 1024;

struct FlipIds {
    ids: Box<[u64; FLIP_MEMORY]>,
    len: usize,
    next: usize,
}

impl FlipIds {
    fn new() -> Self {
        FlipIds { ids: Box::new([0; FLIP_MEMORY]), len: 0, next: 0 }
    }
    fn contains(&self, id: u64) -> bool {
        self.ids[..self.len].contains(&id)
    }
    fn insert(&mut self, id: u64) {
        self.ids[self.next] = id;
        self.next = (self.next + 1) % FLIP_MEMORY;
        self.len = (self.len + 1).min(FLIP_MEMORY);
    }
}

/// The engine: the consumer side of every stream. Lives on the poll thread.
pub struct Engine {
    recipient_id: u64,
    gap_policy: GapPolicy,
    keep_previous: bool,
    liveness: Liveness,
    default_window: usize,
    budget: u64,
    /// The shared budget, if any (what this engine holds of it: `staging.granted`).
    pool: Option<Arc<StagingPool>>,
    /// This engine's standing bid in `pool` (0: none), to withdraw once granted.
    bid: u64,
    cold_cost_ns: u64,
    spread: Spread,
    /// Per-stream staging state of the plan, boxed: it is touched once per poll, and kept
    /// out of the engine's body the delivery loop works on (inline, its 384 bytes cost the
    /// steady-state loop register spills: 6.5 instructions per event, issue 16).
    staging: Box<StagingState>,
    demand: StagingDemand,
    /// Largest data frame (header, frame header, `max_payload`): the budget's estimate of a
    /// record until data has been delivered.
    max_frame: u64,

    streams: Box<[Stream]>,
    active: usize,
    previous: Option<usize>,
    tracker: Tracker,
    policy: Box<dyn ArmingPolicy>,
    /// `policy.observes_records()`, asked once: whether delivering an event calls `observe`.
    observes: bool,
    clock: Box<dyn Clock>,
    flips: FlipIds,
    pending: Option<PendingSwitch>,
    in_flight: Option<SwitchInFlight>,
    /// Gap policy `ReRead`: skipping the active stream's events until its positions go back.
    rereading: bool,
    /// The event after the gap is still unread: skip it first, whatever its position.
    reread_skip_next: bool,
    plan: StagePlan,
    candidates: [Candidate; MAX_STREAMS],
    flip_scratch: poll::FlipCopy,
    /// `flip_scratch` holds a flip met while catching up after a switch, not yet applied.
    flip_deferred: bool,
    /// `poll_holding` in progress: active-ring records delivered in this call stay unreleased.
    hold: bool,
    /// Ring position of the first record held in this call (always on the active ring: no
    /// switch happens after it, see `deferred`).
    hold_from: Option<u64>,
    /// A switch a flip asked for while records were held: made at the start of the next poll
    /// (set during a call, it also ends that call).
    deferred: Option<PendingSwitch>,
    stats: Stats,
    /// Content verification and the position map (`EngineConfig::verify_records`), if on.
    verify: Option<Box<verify::Verifier>>,
    /// The probation after a switch (`EngineConfig::probation`).
    probation: Probation,
    /// The stream on probation now, if any.
    on_probation: Option<probation::OnProbation>,
    /// `verify` is on and a stream is staged: deliveries are remembered. Set where roles change
    /// (`trim_staged`, `switch`); a delivery it misses is only unverified.
    verifying: bool,
    /// Per stream and origin (`stream_index * max_origins + origin`): the position just after
    /// the last event of that origin seen on that stream at or behind the delivery frontier
    /// (delivered, dropped as a duplicate, or trimmed from a staged window as delivered); 0:
    /// none seen. Within a stream an origin's events are in seq order, so reading the stream
    /// from there brings every event of the origin not yet delivered: the exact position of
    /// re-reads, fills and cold switches (docs/engine.md, "Positions in notices").
    seen: Box<[SeenAt]>,
    max_origins: usize,
    /// Events before this position on the active stream are not wanted (a switch's
    /// `resume_pos`), until the first delivery after the switch or a re-read asks for them.
    resume_floor: u64,
    /// The id of the last flip for this recipient the policy was told of.
    flip_told: Option<u64>,
    /// The last gap the policy was told of, `(origin, first missing seq)`.
    gap_told: Option<(u32, u64)>,
    /// A hole held while a lagging staged stream may still fill it (`Liveness::gap_wait_ns`).
    gap_wait: recovery::GapWait,
    /// A gap being recovered (gap policy `ReRead`): its re-read and fill rounds.
    recovery: Option<recovery::Recovery>,
    /// A read of the active stream asked after a hole closed while it was being skipped
    /// (`Purpose::Resume`), not begun yet: bounded like a re-read round.
    resume_wait: Option<recovery::ResumeWait>,
    /// Per origin, while the active stream is skipped for a re-read: the largest seq skipped
    /// that was not delivered, plus one (0: none).
    skipped_max: Box<[u64]>,
    /// The active stream's next record is the gap event, left unread while a fill or the
    /// application is awaited (not skipping: no re-read of the active stream is needed).
    holding_gap: bool,
    /// The first poll has not run yet (it sends the initial stream's `Subscribe`).
    started: bool,
    /// Clock of the last poll that read a record from the active stream (or of the switch to
    /// it): silence is measured from here.
    active_heard_ns: u64,
    /// `ActiveSilent` was reported for the current silence.
    silence_reported: bool,
    /// Upstream time of the last event delivered, for a candidate's lead.
    last_delivered_ts: u64,
    /// `ts_ns` of the flip that made the active stream active (0 at start): a flip met behind
    /// the frontier on it and older than this is history (`RejectReason::Superseded`).
    switch_flip_ts: u64,
    /// Streams on a ring file (watched at the start of each poll).
    #[cfg(shm)]
    file_streams: usize,
    /// Some stream holds a `retired` ring, to free at the next poll.
    #[cfg(shm)]
    retired_pending: bool,
    now_ns: u64,
    last_tick_ns: Option<u64>,
}

impl Drop for Engine {
    /// Gives back what the engine holds of a shared pool, and withdraws its bid.
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            pool.give_back(self.staging.granted.iter().sum());
            pool.withdraw(self.bid);
        }
    }
}

impl Engine {
    /// Builds an engine and one producer per stream (in configuration order), with the
    /// [`ManualStage`] policy and the monotonic clock.
    pub fn new(config: EngineConfig) -> Result<(Engine, Vec<StreamProducer>), EngineError> {
        Self::with(config, Box::new(ManualStage), Box::new(MonotonicClock::new()))
    }

    /// As [`new`](Engine::new), with a policy and a clock.
    pub fn with(
        config: EngineConfig,
        policy: Box<dyn ArmingPolicy>,
        clock: Box<dyn Clock>,
    ) -> Result<(Engine, Vec<StreamProducer>), EngineError> {
        let n = config.streams.len();
        if n == 0 || n > MAX_STREAMS {
            return Err(EngineError::StreamCount(n));
        }
        for (i, s) in config.streams.iter().enumerate() {
            if config.streams[..i].iter().any(|t| t.id == s.id) {
                return Err(EngineError::DuplicateStream(s.id));
            }
        }
        let active = config
            .streams
            .iter()
            .position(|s| s.id == config.initial_stream)
            .ok_or(EngineError::UnknownInitialStream(config.initial_stream))?;
        let tracker = Tracker::new(config.max_origins, config.seq_mode).map_err(EngineError::Tracker)?;
        if config.conflation_keys > 0 {
            if config.conflation_keys > MAX_CONFLATION_KEYS {
                return Err(EngineError::Conflation("conflation_keys above MAX_CONFLATION_KEYS"));
            }
            if config.conflation_payload > MAX_CONFLATION_PAYLOAD {
                return Err(EngineError::Conflation("conflation_payload above MAX_CONFLATION_PAYLOAD"));
            }
            if conflate::conflation_store_bytes(config.conflation_keys, config.conflation_payload)
                > MAX_CONFLATION_STORE_BYTES
            {
                return Err(EngineError::Conflation(
                    "a store above MAX_CONFLATION_STORE_BYTES (1 GiB per stream): fewer keys or a smaller payload bound",
                ));
            }
            if config.identity_records < 2 {
                return Err(EngineError::Conflation(
                    "needs the identity tier (identity_records of 2 or more)",
                ));
            }
        }
        let verify = match config.verify_records {
            0 => None,
            records => {
                if records > MAX_VERIFY_RECORDS {
                    return Err(EngineError::Verify("verify_records above MAX_VERIFY_RECORDS"));
                }
                if config.map_runs == 0 || config.map_runs > MAX_MAP_RUNS {
                    return Err(EngineError::Verify("map_runs must be 1..=MAX_MAP_RUNS"));
                }
                let mo = config.max_origins as usize;
                Some(
                    verify::Verifier::new(
                        records,
                        config.map_runs,
                        n,
                        mo,
                        config.mismatch_policy,
                        config.mismatch_window,
                    )
                    .ok_or(EngineError::OutOfMemory(verify::verifier_bytes(
                        records,
                        config.map_runs,
                        n,
                        mo,
                    )))?,
                )
            }
        };
        let seen_len = n * config.max_origins as usize;
        let mut seen = Vec::new();
        seen.try_reserve_exact(seen_len)
            .map_err(|_| EngineError::OutOfMemory(seen_len * core::mem::size_of::<SeenAt>()))?;
        seen.resize(seen_len, SeenAt::NONE);
        // Rings hold data up to `max_payload` and flips up to their largest encoding.
        let ring_payload = config.max_payload.max(crate::flip::MAX_FLIP_LEN);
        let mut streams = Vec::with_capacity(n);
        let mut producers = Vec::with_capacity(n);
        for (i, s) in config.streams.iter().enumerate() {
            let role = if i == active { Role::Active } else { Role::Idle };
            let cfg = RingConfig::new(s.capacity_bytes, ring_payload)
                .with_role(role)
                .with_window(config.default_window)
                .with_identities(config.identity_records);
            let (p, c) = heap_ring(cfg).map_err(|e| EngineError::Ring(s.id, e))?;
            producers.push(StreamProducer {
                stream: s.id,
                producer: p,
                generation: 0,
                max_data_payload: config.max_payload,
            });
            streams.push(Stream {
                id: s.id,
                consumer: c,
                #[cfg(shm)]
                file: None,
                #[cfg(shm)]
                retired: None,
                announced: false,
                armed: false,
                locator: [0; MAX_LOCATOR],
                locator_len: 0,
                last_read_pos: 0,
                retained_bytes: 0,
                start_pos: None,
                conflation: match config.conflation_keys {
                    0 => None,
                    keys => Some(
                        conflate::ConflationStore::new(
                            keys,
                            config.conflation_payload,
                            config.identity_records,
                        )
                        .ok_or(EngineError::OutOfMemory(
                            conflate::conflation_store_bytes(keys, config.conflation_payload),
                        ))?,
                    ),
                },
            });
        }
        let max_frame = (crate::event::EVENT_HEADER_SIZE + 8 + config.max_payload).next_multiple_of(8) as u64;
        let empty = Candidate {
            stream: 0,
            index: 0,
            staged: false,
            announced: false,
            armed: false,
            previous: false,
            retained_bytes: 0,
            evicted: 0,
            window: 0,
        };
        let engine = Engine {
            recipient_id: config.recipient_id,
            gap_policy: config.gap_policy,
            keep_previous: config.keep_previous,
            liveness: Liveness { reread_rounds: config.liveness.reread_rounds.max(1), ..config.liveness },
            default_window: config.default_window.max(1),
            budget: config.staging_budget_bytes as u64,
            pool: config.staging_pool.clone(),
            bid: 0,
            cold_cost_ns: config.cold_switch_cost_ns,
            spread: config.spread,
            staging: Box::new(StagingState {
                granted: [0; MAX_STREAMS],
                start_at: [0; MAX_STREAMS],
                announce_at: [0; MAX_STREAMS],
                conflation_tried: None,
                dry_run_switches: config.dry_run_switches,
            }),
            demand: StagingDemand::default(),
            max_frame,
            streams: streams.into_boxed_slice(),
            active,
            previous: None,
            tracker,
            observes: policy.observes_records(),
            policy,
            clock,
            flips: FlipIds::new(),
            pending: None,
            in_flight: None,
            rereading: false,
            reread_skip_next: false,
            plan: StagePlan::default(),
            candidates: [empty; MAX_STREAMS],
            flip_scratch: poll::FlipCopy::EMPTY,
            flip_deferred: false,
            stats: Stats::default(),
            verify,
            verifying: false,
            probation: config.probation,
            on_probation: None,
            seen: seen.into_boxed_slice(),
            max_origins: config.max_origins as usize,
            resume_floor: 0,
            gap_told: None,
            flip_told: None,
            gap_wait: recovery::GapWait::NONE,
            recovery: None,
            resume_wait: None,
            skipped_max: vec![0; config.max_origins as usize].into_boxed_slice(),
            holding_gap: false,
            started: false,
            active_heard_ns: 0,
            silence_reported: false,
            last_delivered_ts: 0,
            switch_flip_ts: 0,
            #[cfg(shm)]
            file_streams: 0,
            #[cfg(shm)]
            retired_pending: false,
            now_ns: 0,
            last_tick_ns: None,
            hold: false,
            hold_from: None,
            deferred: None,
        };
        Ok((engine, producers))
    }

    /// This recipient's id.
    pub fn recipient_id(&self) -> u64 {
        self.recipient_id
    }
    /// The active stream's id.
    pub fn active_stream(&self) -> u32 {
        self.streams[self.active].id
    }
    /// Streams staged now.
    pub fn staged_streams(&self) -> impl Iterator<Item = u32> + '_ {
        self.streams.iter().filter(|s| s.consumer.role() == Role::Staged).map(|s| s.id)
    }
    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
    /// The delivery tracker (per-origin frontier).
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }
    /// Mutable tracker, e.g. to `resume_at` an application checkpoint before the first poll.
    pub fn tracker_mut(&mut self) -> &mut Tracker {
        &mut self.tracker
    }
    /// The policy's name.
    pub fn policy_name(&self) -> &'static str {
        self.policy.name()
    }
    /// The policy, if it is a `P` that exposes itself ([`ArmingPolicy::as_any_mut`]): e.g. to
    /// load a new model into a running predictor.
    pub fn policy_mut<P: ArmingPolicy + 'static>(&mut self) -> Option<&mut P> {
        self.policy.as_any_mut()?.downcast_mut::<P>()
    }
    /// What this engine wants staged and holds, as of its last plan (docs/staging.md).
    pub fn staging_demand(&self) -> StagingDemand {
        self.demand
    }
    /// The shared staging pool, if the engine has one.
    pub fn staging_pool(&self) -> Option<&Arc<StagingPool>> {
        self.pool.as_ref()
    }
    /// True while a switch waits for its cut-over point.
    pub fn switch_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// The position on stream `to` of the event at position `pos` on stream `from`, from the
    /// position map (docs/verify.md): exact for an event both streams carried and the engine
    /// verified while one of them was staged against the other, in either direction; `None`
    /// for any other position (never interpolated), or when verification is off.
    pub fn translate(&self, from: u32, to: u32, pos: u64) -> Option<u64> {
        self.verify.as_ref()?.translate(from, to, pos)
    }

    /// The position map's runs, oldest first (empty when verification is off).
    pub fn position_map(&self) -> impl Iterator<Item = &MapRun> + '_ {
        self.verify.iter().flat_map(|v| v.runs())
    }

    /// What the engine verified of staged stream `stream` against the active stream since it
    /// was staged (zero when it is not staged, verification is off, or nothing matched yet).
    pub fn verification(&self, stream: u32) -> PairCounts {
        match (self.index_of(stream), &self.verify) {
            (Some(i), Some(v)) if i != self.active && self.streams[i].consumer.role() == Role::Staged => {
                v.counts(self.active, i)
            }
            _ => PairCounts::default(),
        }
    }

    /// Asks for `stream` to be staged (the [`ManualStage`] policy honours it). Returns false for
    /// an unknown stream.
    pub fn arm(&mut self, stream: u32) -> bool {
        self.index_of(stream).map(|i| self.streams[i].armed = true).is_some()
    }
    /// Declares where `stream` resumes, from the application's checkpoint: the first
    /// `Subscribe` of the initial stream then names this exact position. Call before the first
    /// poll. Returns false for an unknown stream.
    pub fn resume_stream_at(&mut self, stream: u32, next_pos: u64) -> bool {
        self.index_of(stream).map(|i| self.streams[i].start_pos = Some(next_pos)).is_some()
    }

    /// Withdraws [`arm`](Engine::arm).
    pub fn disarm(&mut self, stream: u32) -> bool {
        self.index_of(stream).map(|i| self.streams[i].armed = false).is_some()
    }

    /// The ring configuration of the stream at `index`, in its current role.
    #[cfg(shm)]
    fn ring_config(&self, index: usize) -> RingConfig {
        let s = &self.streams[index];
        RingConfig::new(s.consumer.capacity(), s.consumer.max_payload())
            .with_role(s.consumer.role())
            .with_window(s.consumer.window())
    }

    fn index_of(&self, stream: u32) -> Option<usize> {
        self.streams.iter().position(|s| s.id == stream)
    }
}
