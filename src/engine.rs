//! `hz_engine`: the consumer side: poll with callbacks, notices, statistics, model loading.

use std::cell::{Cell, UnsafeCell};
use std::ffi::{c_char, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::config::*;
use super::producer::hz_producer;
use super::{bytes, fill_sized, guard, hz_status, size_problem, struct_size_of, LastError};
use super::{
    HZ_EMPTY, HZ_ERR_BUFFER_TOO_SMALL, HZ_ERR_CONFIG, HZ_ERR_INVALID, HZ_ERR_IO, HZ_ERR_MODEL,
    HZ_ERR_NO_MEMORY, HZ_ERR_NULL, HZ_ERR_PANIC, HZ_ERR_STATE, HZ_GOT_NOTICE, HZ_OK,
};
use harmonizer_core::clock::{Clock, MonotonicClock};
use harmonizer_core::engine::{
    AlwaysStage, ArmingPolicy, BadEventReason, Engine, EngineError, Handler, ManualStage, MetricsFormat,
    NeverStage, Notice, Purpose, RejectReason, StartAt, StreamProducer, SwitchCause, SwitchRecord,
};
use harmonizer_core::event::EventHeader;
use harmonizer_core::predict::policy::{Predictor, PredictorConfig, Preset};
use harmonizer_core::predict::{read_model_file, Model, ModelError};
use harmonizer_core::ring::{Corruption, Record, RingError};
use harmonizer_core::tracker::TrackerError;
use std::collections::VecDeque;

/// The engine: one recipient's consumer of every stream. Opaque. Calls on an engine from inside
/// its own `hz_engine_poll` callbacks are refused with `HZ_ERR_STATE`.
// Inside: `busy` is set for the duration of a poll, and every other call checks it before
// touching `inner`, so a callback can never alias the engine the poll is using.
#[allow(non_camel_case_types)]
pub struct hz_engine {
    busy: Cell<bool>,
    err: LastError,
    inner: UnsafeCell<Inner>,
}

pub(crate) struct Inner {
    pub(crate) engine: Engine,
    producers: Vec<Option<StreamProducer>>,
    /// Stream id of each producer slot.
    ids: Vec<u32>,
    /// The pull calls: events and notices delivered by the engine and not handed out yet, in
    /// order.
    queue: VecDeque<Pending>,
    /// Copies of events that did not come from the active ring (gap fills from a staged
    /// window) and of queued notices' locators: cleared only when nothing is queued or lent,
    /// so offsets stay valid.
    arena: Vec<u8>,
    /// Headers of copied events (`Pending::Copied::hidx`), cleared with the arena.
    headers: Vec<EventHeader>,
    /// Queued notices (`Pending::Notice::nidx`), cleared with the arena: out of the queue's
    /// entries, which stay small for the events.
    notice_store: Vec<StoredNotice>,
    /// The pull calls: each copied event's view slot, arena offset, header index and payload
    /// length, for pointing its view at the arena once the poll is over.
    fixups: Vec<(usize, usize, usize, usize)>,
}

// SAFETY: `Held` pointers are addresses in ring storage the engine keeps alive (the rings are
// `Arc`s it owns) and holds unreleased; they travel with the engine, whose single user at a time
// is the only one to read them, so moving the engine to another thread is sound. A queued
// notice's locator pointer is null (its bytes are in the arena).
unsafe impl Send for Pending {}

/// A queued notice: its locator pointer is null (the bytes are in the arena).
#[derive(Clone, Copy)]
struct StoredNotice(hz_notice);

// SAFETY: the one pointer in a stored notice, its locator, is always null (`Fill::notice`
// clears it before storing), so it refers to nothing another thread could race on.
unsafe impl Send for StoredNotice {}

/// An event or notice delivered by a holding poll, to be handed out.
#[derive(Clone, Copy)]
enum Pending {
    /// Still in ring memory, which the engine holds unreleased until its next poll.
    Held { stream: u32, header: *const EventHeader, payload: *const u8, len: usize },
    /// Copied: the header at `headers[hidx]`, the payload at `arena[off..off + len]`.
    Copied { stream: u32, hidx: usize, off: usize, len: usize },
    /// A notice, `notice_store[nidx]`; its locator (`locator_len` bytes) at `arena[off..]`.
    Notice { nidx: usize, off: usize },
}

/// Resets `busy` when a poll ends, also by a panic.
struct Busy<'a>(&'a Cell<bool>);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// Notice kind: start (or restart) feeding `stream`, from where `start` says (`HZ_START_*`:
/// the exact position `start_pos`, the live end, the first event of `start_origin` above seq
/// `start_after_seq`, or the first event beyond the tracker's frontier). `purpose`
/// (`HZ_PURPOSE_*`) says why; for a re-read or a fill, `origin` and `first_seq..=last_seq` are
/// the events wanted, for a resume `origin` is the one whose hole closed. `locator` and
/// `locator_len` come from the flip that named the stream.
pub const HZ_NOTICE_SUBSCRIBE: u32 = 1;
/// Notice kind: stop feeding `stream`.
pub const HZ_NOTICE_UNSUBSCRIBE: u32 = 2;
/// Notice kind: the active stream changed from `stream` to `to_stream`, by flip `flip_id` (0
/// for a failover); `cause` is `HZ_SWITCH_CAUSE_*`. `seamless`: 1 when no fetch or re-read was
/// needed; `stall_ns`: clock ns from consuming the cut-over until delivery of the target is
/// contiguous (this notice); `switch_ns`: the engine's own cost of the switch, a part of it.
/// Comes right before the first event the target delivers from its own stream.
pub const HZ_NOTICE_SWITCHED: u32 = 3;
/// Notice kind: seqs `first_seq..=last_seq` of `origin` are missing on `stream`, and no staged
/// candidate held them.
pub const HZ_NOTICE_GAP: u32 = 4;
/// Notice kind: seqs `first_seq..=last_seq` of `origin` are given up for lost.
pub const HZ_NOTICE_LOST: u32 = 5;
/// Notice kind: the flip at `pos` on `stream` was not applied; `reason` (`HZ_REJECT_*`) says
/// why.
pub const HZ_NOTICE_FLIP_REJECTED: u32 = 6;
/// Notice kind: the event of `origin` with seq `seq`, at `pos` on `stream`, cannot be tracked
/// and was not delivered; `reason` is `HZ_BAD_EVENT_*`.
pub const HZ_NOTICE_BAD_EVENT: u32 = 7;
/// Notice kind: the producer process of the file-backed `stream` is gone (no process holds the
/// ring file's producer lock; a slow one still does): its `generation` on the file and its
/// `pid`; `reason` is `HZ_PRODUCER_CRASHED` or `HZ_PRODUCER_CLOSED`. Once per generation.
pub const HZ_NOTICE_PRODUCER_GONE: u32 = 8;
/// Notice kind: the ring file of `stream` shrank under its mapping to `file_len` bytes, below
/// the `needed_len` its ring needs. The stream went back to its in-process ring, empty.
pub const HZ_NOTICE_RING_FILE_TRUNCATED: u32 = 9;
/// Notice kind: the recovery of the gap `first_seq..=last_seq` of `origin` on `stream` ran out
/// of rounds (`rounds` tried) and streams: delivery holds at the gap until a staged candidate
/// brings the events, or `hz_engine_retry_gap` / `hz_engine_give_up_gap`. Once per gap.
pub const HZ_NOTICE_STUCK: u32 = 10;
/// Notice kind: the active `stream` has delivered nothing for `silent_ns` while the staged
/// `candidate` holds `lead_events` events beyond the frontier, `lead_ns` of upstream time
/// ahead. Once per silence.
pub const HZ_NOTICE_ACTIVE_SILENT: u32 = 11;
/// Notice kind: the ring file of `stream` holds something no producer following the protocol
/// writes, found at ring byte `ring_offset`; `reason` (`HZ_CORRUPT_*`) says what. Everything
/// before it was delivered; nothing after it is read. The file's ring was set idle (its producer
/// gets `HZ_NOT_SUBSCRIBED`) and the stream went back to its in-process ring, empty. Counted in
/// `hz_stats.rings_corrupt`.
pub const HZ_NOTICE_RING_CORRUPT: u32 = 12;
/// Notice kind: the conflation tier (`hz_config_set_conflation`) conflated the hole
/// `first_seq ..= last_seq` of `origin` on `stream`, the active stream, whose staged window had
/// evicted it: every event of it was marked `HZ_FLAG_CONFLATABLE`. Of each key the hole's
/// latest event follows, delivered in seq order (none when the stream carries a later one of
/// the key after the hole); the other `dropped` events of the range are never delivered, and
/// they are exactly the range's seqs not delivered next. Unmarked events are never conflated.
pub const HZ_NOTICE_CONFLATED: u32 = 13;
/// Notice kind: content verification (`hz_config_set_verify`) found that the copy of event
/// (`origin`, `seq`) the staged `stream` carries at `pos` differs from the copy the active
/// `to_stream` delivered from `other_pos`. Counted in `hz_stats.mismatches`.
pub const HZ_NOTICE_MISMATCH: u32 = 14;
/// Notice kind: a switch from `stream` to `to_stream` (flip `flip_id`, `cause`) was refused:
/// the target carried a mismatching event among its last matched ones
/// (`HZ_MISMATCH_BLOCK_SWITCH`). The recipient stays on `stream`; `verified` and `mismatched`
/// are the target's counts. Counted in `hz_stats.switches_blocked`.
pub const HZ_NOTICE_SWITCH_BLOCKED: u32 = 15;
/// Notice kind: the active `stream`, switched to from `to_stream`, showed an anomaly during its
/// probation (`hz_config_set_probation`): `reason` is `HZ_ANOMALY_*` and `anomaly_value` its
/// measure (events, holes, or ns). When `seamless` is 1 (rolling back), a `SWITCHED` with
/// `HZ_SWITCH_CAUSE_ROLLBACK` back to `to_stream` follows. Counted in
/// `hz_stats.probation_failures`.
pub const HZ_NOTICE_PROBATION_FAILED: u32 = 16;
/// Notice kind (`hz_config_set_dry_run_switches`): the dry run of the switch the engine is
/// about to make (or refuse) to `to_stream`, by the same rules, just before it: `seamless`,
/// `reason` (0, `HZ_REJECT_*` or `HZ_DRY_RUN_BLOCKED`), `stall_ns` (the stall estimate), the
/// first hole the target's window leaves (`origin`, `first_seq ..= last_seq`; `last_seq` 0:
/// none), `dropped` (events missing in all), `verified`, `mismatched`. The `SWITCHED` or
/// `SWITCH_BLOCKED` that follows says what the switch did. `hz_engine_evaluate_switch` gives
/// the whole report at any time.
pub const HZ_NOTICE_DRY_RUN: u32 = 17;
/// `HZ_NOTICE_PROBATION_FAILED`: `anomaly_value` events differed from the previous stream's
/// copies.
pub const HZ_ANOMALY_MISMATCHES: u32 = 1;
/// `HZ_NOTICE_PROBATION_FAILED`: `anomaly_value` holes on the new stream.
pub const HZ_ANOMALY_HOLES: u32 = 2;
/// `HZ_NOTICE_PROBATION_FAILED`: silent for `anomaly_value` ns.
pub const HZ_ANOMALY_SILENCE: u32 = 3;
/// `HZ_NOTICE_PROBATION_FAILED`: `anomaly_value` upstream ns behind the previous stream.
pub const HZ_ANOMALY_LAG: u32 = 4;

/// `HZ_NOTICE_RING_CORRUPT`: a pad frame of 0 bytes or not a multiple of 8.
pub const HZ_CORRUPT_BAD_PAD: u32 = 1;
/// `HZ_NOTICE_RING_CORRUPT`: a pad frame that does not end at the buffer's end.
pub const HZ_CORRUPT_PAD_NOT_AT_END: u32 = 2;
/// `HZ_NOTICE_RING_CORRUPT`: a record shorter than the frame and event headers (40 bytes).
pub const HZ_CORRUPT_TOO_SHORT: u32 = 3;
/// `HZ_NOTICE_RING_CORRUPT`: a record payload above the ring's `max_payload`.
pub const HZ_CORRUPT_TOO_LARGE: u32 = 4;
/// `HZ_NOTICE_RING_CORRUPT`: a record running past the buffer's end.
pub const HZ_CORRUPT_WRAPS: u32 = 5;
/// `HZ_NOTICE_RING_CORRUPT`: a frame ending past the producer's published tail.
pub const HZ_CORRUPT_PAST_TAIL: u32 = 6;
/// `HZ_NOTICE_RING_CORRUPT`: a tail misaligned, beyond the capacity, or behind the reader.
pub const HZ_CORRUPT_BAD_TAIL: u32 = 7;
/// `HZ_NOTICE_RING_CORRUPT`: a head position misaligned or past the tail.
pub const HZ_CORRUPT_BAD_HEAD: u32 = 8;
/// `HZ_NOTICE_RING_CORRUPT`: the head word changed under every compare-exchange.
pub const HZ_CORRUPT_HEAD_BUSY: u32 = 9;
/// `HZ_NOTICE_RING_CORRUPT`: the head word's role is not the one the engine set.
pub const HZ_CORRUPT_ROLE_CHANGED: u32 = 10;

/// `HZ_NOTICE_SUBSCRIBE`: read from the exact position `start_pos`.
pub const HZ_START_POS: u32 = 1;
/// `HZ_NOTICE_SUBSCRIBE`: read from the live end.
pub const HZ_START_LIVE: u32 = 2;
/// `HZ_NOTICE_SUBSCRIBE`: read from the first event of `start_origin` whose seq is above
/// `start_after_seq`.
pub const HZ_START_AFTER_SEQ: u32 = 3;
/// `HZ_NOTICE_SUBSCRIBE`: read from the first event, of any origin, beyond the tracker's frontier
/// (`hz_engine_frontier`); from the start when nothing was delivered.
pub const HZ_START_AFTER_FRONTIER: u32 = 4;

/// `HZ_NOTICE_SUBSCRIBE`: the stream active at start (first poll).
pub const HZ_PURPOSE_INITIAL: u32 = 1;
/// `HZ_NOTICE_SUBSCRIBE`: a candidate is staged.
pub const HZ_PURPOSE_STAGE: u32 = 2;
/// `HZ_NOTICE_SUBSCRIBE`: a cold switch made this stream active.
pub const HZ_PURPOSE_SWITCH: u32 = 3;
/// `HZ_NOTICE_SUBSCRIBE`: re-read the active stream for the gap `origin`,
/// `first_seq..=last_seq`.
pub const HZ_PURPOSE_REREAD: u32 = 4;
/// `HZ_NOTICE_SUBSCRIBE`: read the active stream again after a resolved gap of `origin`.
pub const HZ_PURPOSE_RESUME: u32 = 5;
/// `HZ_NOTICE_SUBSCRIBE`: feed this (non-active) stream so it fills the gap `origin`,
/// `first_seq..=last_seq`; an `UNSUBSCRIBE` follows when it is no longer wanted.
pub const HZ_PURPOSE_FILL: u32 = 6;

/// `HZ_NOTICE_SWITCHED`: a SWITCH or SWITCHBACK flip.
pub const HZ_SWITCH_CAUSE_FLIP: u32 = 1;
/// `HZ_NOTICE_SWITCHED`: the engine failed over on a silence of the active stream.
pub const HZ_SWITCH_CAUSE_SILENCE: u32 = 2;
/// `hz_notice.cause`: the engine rolled back after the stream switched to failed its probation
/// (`HZ_NOTICE_PROBATION_FAILED`).
pub const HZ_SWITCH_CAUSE_ROLLBACK: u32 = 3;

/// `HZ_NOTICE_PRODUCER_GONE`: the producer died without closing the file.
pub const HZ_PRODUCER_CRASHED: u32 = 1;
/// `HZ_NOTICE_PRODUCER_GONE`: the producer closed the file.
pub const HZ_PRODUCER_CLOSED: u32 = 2;

/// Flip rejection: the record is malformed.
pub const HZ_REJECT_MALFORMED: u32 = 1;
/// Flip rejection: it names a stream this engine does not have.
pub const HZ_REJECT_UNKNOWN_STREAM: u32 = 2;
/// Flip rejection: it switches to the stream already active.
pub const HZ_REJECT_ALREADY_ACTIVE: u32 = 3;
/// Flip rejection: a switchback with no earlier stream.
pub const HZ_REJECT_NO_PREVIOUS: u32 = 4;
/// Flip rejection: history, not an instruction: behind the delivery frontier on a stream just
/// switched to and older than that switch. Its id is not consumed.
pub const HZ_REJECT_SUPERSEDED: u32 = 5;
/// Bad event: its origin is not below `max_origins`.
pub const HZ_BAD_EVENT_UNKNOWN_ORIGIN: u32 = 1;

/// A notice, as a tagged struct: `kind` (`HZ_NOTICE_*`) says which fields mean something; the
/// others are 0. Each field means one thing, for every kind that uses it.
///
/// Lent by the library to a callback (valid during the call, `struct_size` the library's own;
/// read a field added after your oldest supported library only where `HZ_HAS_FIELD` says it
/// is there), or written into the caller's struct by the pull calls (set `struct_size` first;
/// valid until the next call on the engine). `locator` points into engine memory with the
/// same lifetime.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[allow(non_camel_case_types)]
pub struct hz_notice {
    /// The size of this struct: see above.
    pub struct_size: usize,
    /// `HZ_NOTICE_*`.
    pub kind: u32,
    /// The stream the notice is about (`SWITCHED`: the stream switched from). Not used by
    /// `LOST`, which is about events, not a stream.
    pub stream: u32,
    /// `SWITCHED`: the stream switched to.
    pub to_stream: u32,
    /// `ACTIVE_SILENT`: the staged candidate furthest ahead.
    pub candidate: u32,
    /// The origin whose events the notice is about: `GAP`, `LOST`, `STUCK`, `BAD_EVENT`, and
    /// `SUBSCRIBE` for `HZ_PURPOSE_REREAD`, `HZ_PURPOSE_RESUME`, `HZ_PURPOSE_FILL`.
    pub origin: u32,
    /// Why: `FLIP_REJECTED`: `HZ_REJECT_*`; `BAD_EVENT`: `HZ_BAD_EVENT_*`; `PRODUCER_GONE`:
    /// `HZ_PRODUCER_*`.
    pub reason: u32,
    /// `SWITCHED`: what made the switch, `HZ_SWITCH_CAUSE_*`.
    pub cause: u32,
    /// `SWITCHED`: 1 when no fetch or re-read was needed, else 0.
    pub seamless: u32,
    /// `SUBSCRIBE`: where to start, `HZ_START_*`.
    pub start: u32,
    /// `SUBSCRIBE`: why, `HZ_PURPOSE_*`.
    pub purpose: u32,
    /// `SUBSCRIBE` with `HZ_START_AFTER_SEQ`: the origin to read after.
    pub start_origin: u32,
    /// `STUCK`: re-read and fill rounds tried.
    pub rounds: u32,
    /// `SUBSCRIBE` with `HZ_START_POS`: the position to read from.
    pub start_pos: u64,
    /// `SUBSCRIBE` with `HZ_START_AFTER_SEQ`: read from the first event of `start_origin`
    /// whose seq is above this.
    pub start_after_seq: u64,
    /// First seq of `origin` concerned, inclusive: missing (`GAP`, `STUCK`), lost (`LOST`), or
    /// wanted (`SUBSCRIBE` for a re-read or a fill).
    pub first_seq: u64,
    /// Last seq of `origin` concerned, inclusive (as `first_seq`).
    pub last_seq: u64,
    /// `BAD_EVENT`: the event's seq.
    pub seq: u64,
    /// `FLIP_REJECTED`, `BAD_EVENT`: the record's position on `stream`.
    pub pos: u64,
    /// `SWITCHED`: the flip that made the switch (0 for a failover).
    pub flip_id: u64,
    /// `SWITCHED`: clock ns from consuming the cut-over until delivery of the target is
    /// contiguous.
    pub stall_ns: u64,
    /// `SWITCHED`: the engine's own cost of the switch, clock ns.
    pub switch_ns: u64,
    /// `ACTIVE_SILENT`: clock ns the active stream has been silent.
    pub silent_ns: u64,
    /// `ACTIVE_SILENT`: events the candidate holds beyond the delivery frontier.
    pub lead_events: u64,
    /// `ACTIVE_SILENT`: upstream ns the candidate's newest event is ahead of the last one
    /// delivered.
    pub lead_ns: u64,
    /// `PRODUCER_GONE`: the producer's generation on the ring file (1 for its first).
    pub generation: u64,
    /// `PRODUCER_GONE`: the producer's process id, as it wrote it.
    pub pid: u64,
    /// `RING_FILE_TRUNCATED`: the file's length seen, bytes.
    pub file_len: u64,
    /// `RING_FILE_TRUNCATED`: the length its ring needs, bytes.
    pub needed_len: u64,
    /// `SUBSCRIBE`: the locator bytes; NULL when `locator_len` is 0.
    pub locator: *const u8,
    /// `SUBSCRIBE`: locator length.
    pub locator_len: usize,
    /// `RING_CORRUPT`: the ring byte position (from the ring's start, mod 2^61) where the fault
    /// was found. Added after the first layout: test with `HZ_HAS_FIELD`.
    pub ring_offset: u64,
    /// `CONFLATED`: events of the range not delivered. Added after the first layout: test with
    /// `HZ_HAS_FIELD`.
    pub dropped: u64,
    /// `SWITCHED`, `SWITCH_BLOCKED`: events whose two copies matched while the target was
    /// staged against the stream left (content verification). Added after the first layout.
    pub verified: u64,
    /// `SWITCHED`, `SWITCH_BLOCKED`: events whose two copies differed. Added after the first
    /// layout.
    pub mismatched: u64,
    /// `SWITCHED`: the cut-over pair, valid when `has_matched` is 1: the last event verified
    /// before the switch (`matched_origin`, `matched_seq`), at `matched_from_pos` on `stream`
    /// and `matched_to_pos` on `to_stream`. Added after the first layout.
    pub has_matched: u32,
    /// `SWITCHED`: the cut-over pair's origin.
    pub matched_origin: u32,
    /// `SWITCHED`: the cut-over pair's seq.
    pub matched_seq: u64,
    /// `SWITCHED`: the cut-over pair's position on `stream`.
    pub matched_from_pos: u64,
    /// `SWITCHED`: the cut-over pair's position on `to_stream`.
    pub matched_to_pos: u64,
    /// `SWITCHED`: position of the last record consumed from `stream` before the switch.
    /// `MISMATCH`: the delivered copy's position on the active stream (`to_stream`). Added
    /// after the first layout.
    pub other_pos: u64,
    /// `SWITCHED`: position on `to_stream` of the first event it delivered in order (0 when the
    /// notice came before filled events only). Added after the first layout.
    pub first_pos: u64,
    /// `PROBATION_FAILED`: the anomaly's measure (see `HZ_ANOMALY_*`). Added after the first
    /// layout.
    pub anomaly_value: u64,
}

/// Size of `hz_notice`'s first layout (fields are only ever appended).
const NOTICE_V1: usize = std::mem::offset_of!(hz_notice, locator_len) + std::mem::size_of::<usize>();

impl hz_notice {
    /// A notice of `kind` with every other field 0.
    pub(crate) fn empty(kind: u32) -> hz_notice {
        hz_notice {
            struct_size: std::mem::size_of::<hz_notice>(),
            kind,
            stream: 0,
            to_stream: 0,
            candidate: 0,
            origin: 0,
            reason: 0,
            cause: 0,
            seamless: 0,
            start: 0,
            purpose: 0,
            start_origin: 0,
            rounds: 0,
            start_pos: 0,
            start_after_seq: 0,
            first_seq: 0,
            last_seq: 0,
            seq: 0,
            pos: 0,
            flip_id: 0,
            stall_ns: 0,
            switch_ns: 0,
            silent_ns: 0,
            lead_events: 0,
            lead_ns: 0,
            generation: 0,
            pid: 0,
            file_len: 0,
            needed_len: 0,
            locator: core::ptr::null(),
            locator_len: 0,
            ring_offset: 0,
            dropped: 0,
            verified: 0,
            mismatched: 0,
            has_matched: 0,
            matched_origin: 0,
            matched_seq: 0,
            matched_from_pos: 0,
            matched_to_pos: 0,
            other_pos: 0,
            first_pos: 0,
            anomaly_value: 0,
        }
    }
}

/// Engine statistics (totals since creation), as `hz_engine_stats` fills them. Set
/// `struct_size` to `sizeof(hz_stats)` before the call; counters a later library adds are
/// appended.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
#[allow(non_camel_case_types)]
pub struct hz_stats {
    /// `sizeof(hz_stats)`, set by the caller.
    pub struct_size: usize,
    /// Events delivered.
    pub delivered: u64,
    /// Events dropped as already delivered.
    pub duplicates_dropped: u64,
    /// Events delivered from a staged candidate to fill a gap.
    pub gap_filled: u64,
    /// Gaps reported.
    pub gaps: u64,
    /// Events given up for lost.
    pub lost: u64,
    /// Re-reads asked for.
    pub rereads: u64,
    /// Events skipped while waiting for a re-read.
    pub skipped_for_reread: u64,
    /// Events dropped as before a switch's resume position.
    pub before_resume_pos: u64,
    /// Flips applied.
    pub flips_applied: u64,
    /// Flips for other recipients.
    pub flips_ignored: u64,
    /// Flips seen again.
    pub flips_repeated: u64,
    /// Flips dropped as behind the delivery frontier.
    pub flips_stale: u64,
    /// Flips rejected.
    pub flips_rejected: u64,
    /// Events that could not be tracked.
    pub bad_events: u64,
    /// Events of unknown kinds (delivered as data).
    pub unknown_kinds: u64,
    /// Seamless switches.
    pub switches_seamless: u64,
    /// Other switches.
    pub switches_cold: u64,
    /// Stall of the last switch, ns.
    pub stall_last_ns: u64,
    /// Largest stall, ns.
    pub stall_max_ns: u64,
    /// Sum of stalls, ns.
    pub stall_total_ns: u64,
    /// Bytes the staged windows hold now (frames retained).
    pub staged_bytes: u64,
    /// Largest staged bytes seen.
    pub peak_staged_bytes: u64,
    /// Clock ns with a candidate staged.
    pub staged_ns: u64,
    /// Clock ns observed.
    pub observed_ns: u64,
    /// Calls on this engine that returned an error (bad input counted).
    pub api_errors: u64,
    /// Other streams asked to fill a gap (`HZ_PURPOSE_FILL`).
    pub fill_requests: u64,
    /// Gaps whose recovery stopped (`HZ_NOTICE_STUCK`).
    pub stuck: u64,
    /// Silences of the active stream reported (`HZ_NOTICE_ACTIVE_SILENT`).
    pub silences: u64,
    /// Switches made on a silence (`HZ_SWITCH_CAUSE_SILENCE`).
    pub failovers: u64,
    /// The engine's own cost of the last switch, clock ns.
    pub switch_last_ns: u64,
    /// Largest engine-side switch cost, clock ns.
    pub switch_max_ns: u64,
    /// Holes that a lagging staged stream filled while delivery waited for it
    /// (`hz_config_set_gap_wait`), before any gap policy ran.
    pub gaps_filled_by_wait: u64,
    /// Ring files detached as corrupt (`HZ_NOTICE_RING_CORRUPT`). Added after the first
    /// layout: test with `HZ_HAS_FIELD`.
    pub rings_corrupt: u64,
    /// Origins whose re-read start the identity tier supplied (`hz_config_set_identity_records`):
    /// a `HZ_START_POS` where the start would otherwise have been a seq to search for. Added
    /// after the first layout: test with `HZ_HAS_FIELD`.
    pub identity_starts: u64,
    /// Events the conflation tier did not deliver (`HZ_NOTICE_CONFLATED`). Added after the
    /// first layout: test with `HZ_HAS_FIELD`.
    pub conflated: u64,
    /// Events the conflation tier delivered from its store (each key's latest of a hole).
    pub conflation_survivors: u64,
    /// Holes the conflation tier left to the gap policy (an unmarked or unlogged event, a copy
    /// missing or too large, the store full).
    pub conflation_fallbacks: u64,
    /// Events whose staged copy matched the digest of the copy delivered (content
    /// verification, `hz_config_set_verify`). Added after the first layout: test with
    /// `HZ_HAS_FIELD`.
    pub verified: u64,
    /// Events whose two copies differed (`HZ_NOTICE_MISMATCH`).
    pub mismatches: u64,
    /// Delivered events trimmed from a staged window with nothing remembered of the delivered
    /// copy: neither verified nor mismatched.
    pub unverified: u64,
    /// Switches refused after a mismatch (`HZ_NOTICE_SWITCH_BLOCKED`).
    pub switches_blocked: u64,
    /// Runs the position map began.
    pub map_runs: u64,
    /// Runs of the position map overwritten by newer ones.
    pub map_runs_dropped: u64,
    /// Streams that showed an anomaly during their probation (`HZ_NOTICE_PROBATION_FAILED`).
    pub probation_failures: u64,
    /// Switches back after a failed probation (`HZ_SWITCH_CAUSE_ROLLBACK`).
    pub rollbacks: u64,
}

/// Size of `hz_stats`'s first layout (fields are only ever appended).
const STATS_V1: usize = std::mem::offset_of!(hz_stats, switch_max_ns) + std::mem::size_of::<u64>();

/// Called once per delivered event with the stream, the header and the payload, both borrowed
/// from ring memory and valid during the call only. Runs on the thread that called
/// `hz_engine_poll`, before it returns. It must return normally (no C++ exception, no
/// `longjmp` out of it). It may push to producers; calls on the polling engine itself are
/// refused with `HZ_ERR_STATE` (`hz_engine_last_error` still works).
#[allow(non_camel_case_types)]
pub type hz_event_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        stream: u32,
        header: *const EventHeader,
        payload: *const u8,
        payload_len: usize,
    ),
>;

/// Called once per notice, in order with the events; the notice (and its locator) is valid
/// during the call only. Same rules as `hz_event_fn`: the polling thread, return normally, no
/// calls on the polling engine (answer a `SUBSCRIBE` after `hz_engine_poll` returns, e.g. by
/// noting it in `user_data`).
#[allow(non_camel_case_types)]
pub type hz_notice_fn = Option<unsafe extern "C" fn(user_data: *mut c_void, notice: *const hz_notice)>;

/// Builds an engine from `config` (which stays owned by the caller and may be freed after; an
/// error is recorded in it, so one configuration is used by one thread at a time).
///
/// Ownership: on `HZ_OK`, `*out` is a new engine, freed with `hz_engine_free`. Its producers are
/// taken with `hz_engine_take_producer`. Errors: `HZ_ERR_NULL`; `HZ_ERR_CONFIG` with the reason
/// in `hz_config_last_error(config)` (capacity, payload limit, initial stream...);
/// `HZ_ERR_NO_MEMORY` when a ring or the tracker's tables cannot be allocated (the process goes
/// on; the reason names the size). Any thread;
/// the engine is then used from one thread at a time (it may move between threads).
#[no_mangle]
pub unsafe extern "C" fn hz_engine_new(config: *mut hz_config, out: *mut *mut hz_engine) -> hz_status {
    guard(HZ_ERR_PANIC, || {
        // SAFETY: NULL or a live configuration, used by this thread only during the call.
        let Some(c) = (unsafe { config.as_mut() }) else { return HZ_ERR_NULL };
        if out.is_null() {
            return c.err.set(HZ_ERR_NULL, "out is NULL");
        }
        let recipient = c.cfg.recipient_id;
        if c.learn.is_some() && c.policy != HZ_POLICY_PREDICTOR {
            return c.err.set(
                HZ_ERR_CONFIG,
                "hz_config_set_learning: learning is the predictor's; set HZ_POLICY_PREDICTOR",
            );
        }
        let policy: Box<dyn ArmingPolicy> = match c.policy {
            HZ_POLICY_NEVER => Box::new(NeverStage),
            HZ_POLICY_ALWAYS => Box::new(AlwaysStage),
            HZ_POLICY_PREDICTOR => {
                let preset = match c.preset {
                    HZ_PRESET_BALANCED => Preset::Balanced,
                    HZ_PRESET_AGGRESSIVE => Preset::Aggressive,
                    _ => Preset::Conservative,
                };
                let mut p = match Predictor::with_default_model(recipient, PredictorConfig::preset(preset)) {
                    Ok(p) => p,
                    Err(e) => return c.err.set(HZ_ERR_CONFIG, e.to_string()),
                };
                if let Some(l) = c.learn {
                    // Validated when set; what fails here is the rings' allocation.
                    if let Err(e) = p.enable_learning(l) {
                        return c.err.set(HZ_ERR_NO_MEMORY, e.to_string());
                    }
                }
                Box::new(p)
            }
            _ => Box::new(ManualStage),
        };
        let clock: Box<dyn Clock> = match c.clock {
            Some(app) => Box::new(AppClockState::new(app)),
            None => Box::new(MonotonicClock::new()),
        };
        match Engine::with(c.cfg.clone(), policy, clock) {
            Ok((engine, producers)) => {
                let ids = producers.iter().map(StreamProducer::stream).collect();
                let producers = producers.into_iter().map(Some).collect();
                let e = hz_engine {
                    busy: Cell::new(false),
                    err: LastError::default(),
                    inner: UnsafeCell::new(Inner {
                        engine,
                        producers,
                        ids,
                        queue: VecDeque::new(),
                        arena: Vec::new(),
                        headers: Vec::new(),
                        notice_store: Vec::new(),
                        fixups: Vec::new(),
                    }),
                };
                // SAFETY: `out` is non-null and writable per contract.
                unsafe { *out = Box::into_raw(Box::new(e)) };
                HZ_OK
            }
            Err(
                e @ (EngineError::Ring(_, RingError::OutOfMemory { .. })
                | EngineError::Tracker(TrackerError::OutOfMemory { .. })
                | EngineError::OutOfMemory(_)),
            ) => c.err.set(HZ_ERR_NO_MEMORY, e.to_string()),
            Err(e) => c.err.set(HZ_ERR_CONFIG, e.to_string()),
        }
    })
}

/// Frees an engine. NULL is a no-op, and so is a call from inside one of this engine's poll
/// callbacks (the engine is in use). Producers already taken stay valid (their pushes report
/// `HZ_NOT_SUBSCRIBED` or fill their ring) and are freed separately. Poll thread.
#[no_mangle]
pub unsafe extern "C" fn hz_engine_free(engine: *mut hz_engine) {
    guard((), || {
        // SAFETY: NULL or a live engine, per contract.
        let Some(e) = (unsafe { engine.as_ref() }) else { return };
        if e.busy.get() {
            e.err.set(HZ_ERR_STATE, "hz_engine_free called from inside this engine's poll callback: ignored");
            return;
        }
        // SAFETY: made by `hz_engine_new`, not freed before, and not in use (not busy).
        drop(unsafe { Box::from_raw(engine) });
    })
}

/// Runs `f` on the engine's inside, unless a poll on it is running its callbacks. A panic in
/// `f` is recorded and counted on the handle.
pub(crate) fn with(
    engine: *const hz_engine,
    f: impl FnOnce(&mut Inner, &LastError, &Cell<bool>) -> hz_status,
) -> hz_status {
    guard(HZ_ERR_PANIC, || {
        // SAFETY: NULL or a live engine used by one thread at a time, per contract.
        let Some(e) = (unsafe { engine.as_ref() }) else { return HZ_ERR_NULL };
        if e.busy.get() {
            return e
                .err
                .set(HZ_ERR_STATE, "called from inside a callback of hz_engine_poll on the same engine");
        }
        // SAFETY: not busy, and one thread at a time: no other reference into `inner` exists.
        let inner = unsafe { &mut *e.inner.get() };
        match catch_unwind(AssertUnwindSafe(|| f(inner, &e.err, &e.busy))) {
            Ok(status) => status,
            Err(_) => e.err.set(HZ_ERR_PANIC, "internal error (panic); free this engine"),
        }
    })
}

/// Takes the producer of stream `stream` (an id `0..streams`), to be moved to the thread that
/// receives that stream. Each producer can be taken once.
///
/// Ownership: on `HZ_OK`, `*out` is the caller's, freed with `hz_producer_free`. Errors:
/// `HZ_ERR_NULL`, `HZ_ERR_INVALID` (unknown stream), `HZ_ERR_STATE` (already taken). Poll
/// thread.
#[no_mangle]
pub unsafe extern "C" fn hz_engine_take_producer(
    engine: *mut hz_engine,
    stream: u32,
    out: *mut *mut hz_producer,
) -> hz_status {
    with(engine, |e, err, _| {
        if out.is_null() {
            return err.set(HZ_ERR_NULL, "out is NULL");
        }
        let Some(i) = e.ids.iter().position(|&id| id == stream) else {
            return err.set(HZ_ERR_INVALID, format!("no stream {stream}"));
        };
        let Some(p) = e.producers[i].take() else {
            return err.set(HZ_ERR_STATE, format!("the producer of stream {stream} was already taken"));
        };
        // SAFETY: `out` is non-null and writable per contract.
        unsafe { *out = Box::into_raw(Box::new(hz_producer::new(p))) };
        HZ_OK
    })
}

/// `hz_engine_attach_file` mode: make a new ring file; one that exists is `HZ_ERR_RING_FILE`.
pub const HZ_ATTACH_CREATE: u32 = 1;
/// `hz_engine_attach_file` mode: re-attach to the ring file an earlier engine made (a
/// restarted consumer): reading goes on from its last released position.
pub const HZ_ATTACH_RESUME: u32 = 2;
/// `hz_engine_attach_file` mode: resume the file if it exists, create it otherwise.
pub const HZ_ATTACH_CREATE_OR_RESUME: u32 = 3;

/// Moves stream `stream` onto the ring file at `path` (a NUL-terminated path), for a producer
/// in another process (`hz_producer_open_file`). The file's ring takes the stream's role,
/// capacity and window; the stream's in-process producer, if taken, then gets
/// `HZ_NOT_SUBSCRIBED`. Each poll checks the file when `check_interval_ns` clock
/// nanoseconds have passed since the last check (0: every poll): a producer gone is
/// `HZ_NOTICE_PRODUCER_GONE`, a file truncated under the mapping
/// `HZ_NOTICE_RING_FILE_TRUNCATED` (the stream goes back to its in-process ring).
///
/// Resuming (a restarted engine): records the previous engine read but had not released come
/// again; to drop them, restore the tracker from your checkpoint first with
/// `hz_engine_resume_at` (docs/shm.md, consumer restart). Errors: `HZ_ERR_NULL`; `HZ_ERR_INVALID` (unknown stream or mode);
/// `HZ_ERR_IO`; `HZ_ERR_RING_FILE` (exists with `HZ_ATTACH_CREATE`, not a ring file, another
/// version, corrupt, wrong length, or made for another capacity, `max_payload` or stream);
/// `HZ_ERR_BUSY` (another live engine is attached); `HZ_ERR_STATE` where ring files are not
/// supported (Linux only). The reason is in `hz_engine_last_error`. On error the stream is
/// unchanged. Poll thread.
#[no_mangle]
pub unsafe extern "C" fn hz_engine_attach_file(
    engine: *mut hz_engine,
    stream: u32,
    path: *const c_char,
    mode: u32,
    check_interval_ns: u64,
) -> hz_status {
    with(engine, |e, err, _| {
        #[cfg(shm)]
        {
            use harmonizer_core::shm::AttachMode;
            // SAFETY: NULL or a NUL-terminated path, per contract.
            let Some(path) = (unsafe { super::c_path(path) }) else {
                return err.set(HZ_ERR_NULL, "path is NULL");
            };
            let mode = match mode {
                HZ_ATTACH_CREATE => AttachMode::Create,
                HZ_ATTACH_RESUME => AttachMode::Resume,
                HZ_ATTACH_CREATE_OR_RESUME => AttachMode::CreateOrResume,
                _ => return err.set(HZ_ERR_INVALID, format!("unknown attach mode {mode}")),
            };
            let options = harmonizer_core::engine::FileOptions { mode, check_interval_ns };
            match e.engine.attach_file(stream, path, options) {
                Ok(()) => HZ_OK,
                Err(x) => err.set(super::shm_status(&x), format!("{}: {x}", path.display())),
            }
        }
        #[cfg(not(shm))]
        {
            let _ = (e, stream, path, mode, check_interval_ns);
            err.set(HZ_ERR_STATE, "ring files are supported on Linux only")
        }
    })
}

/// Guards (`enabled` non-zero, the default) or stops guarding ring-file mappings made from now
/// on against truncation: with the guard, a ring file another process shrinks under this
/// process's mapping cannot kill it with `SIGBUS`; a `SIGBUS` handler installed at the first
/// ring-file mapping maps zero pages over the lost part and passes every other `SIGBUS` on to
/// the handler that was there before (docs/shm.md). An application that owns `SIGBUS` and
/// wants no library handler in front of its own calls this with 0 before any
/// `hz_engine_attach_file` or `hz_producer_open_file`; a truncated file then ends the process,
/// as it would without this library. Mappings made earlier keep their guard. Returns `HZ_OK`,
/// or `HZ_ERR_STATE` where ring files are not supported (Linux only). Any thread.
#[no_mangle]
pub extern "C" fn hz_set_sigbus_guard(enabled: u32) -> hz_status {
    #[cfg(shm)]
    {
        harmonizer_core::shm::set_sigbus_guard(enabled != 0);
        HZ_OK
    }
    #[cfg(not(shm))]
    {
        let _ = enabled;
        HZ_ERR_STATE
    }
}

struct CHandler {
    on_event: unsafe extern "C" fn(*mut c_void, u32, *const EventHeader, *const u8, usize),
    on_notice: hz_notice_fn,
    user: *mut c_void,
}

impl Handler for CHandler {
    fn event(&mut self, stream: u32, r: &Record<'_>) {
        // SAFETY: the caller's callback, with pointers valid for the call.
        unsafe { (self.on_event)(self.user, stream, r.header, r.payload.as_ptr(), r.payload.len()) }
    }
    fn notice(&mut self, n: &Notice<'_>) {
        let Some(f) = self.on_notice else { return };
        let c = to_c(n);
        // SAFETY: the caller's callback, with a notice valid for the call.
        unsafe { f(self.user, &c) }
    }
}

fn c_reject(reason: RejectReason) -> u32 {
    match reason {
        RejectReason::Malformed(_) => HZ_REJECT_MALFORMED,
        RejectReason::UnknownStream(_) => HZ_REJECT_UNKNOWN_STREAM,
        RejectReason::AlreadyActive(_) => HZ_REJECT_ALREADY_ACTIVE,
        RejectReason::NoPreviousStream => HZ_REJECT_NO_PREVIOUS,
        RejectReason::Superseded => HZ_REJECT_SUPERSEDED,
    }
}

/// A switch's record in a `HZ_NOTICE_SWITCHED` notice's fields; [`switched_from`] reads it
/// back.
fn switched_into(r: &SwitchRecord, c: &mut hz_notice) {
    (c.stream, c.to_stream, c.flip_id) = (r.from, r.to, r.flip_id);
    (c.seamless, c.stall_ns, c.switch_ns) = (u32::from(r.seamless), r.stall_ns, r.switch_ns);
    c.cause = c_cause(r.cause);
    (c.verified, c.mismatched, c.other_pos, c.first_pos) = (r.verified, r.mismatched, r.cut_pos, r.first_pos);
    if let Some(m) = r.matched {
        c.has_matched = 1;
        (c.matched_origin, c.matched_seq) = (m.origin, m.seq);
        (c.matched_from_pos, c.matched_to_pos) = (m.from_pos, m.to_pos);
    }
}

/// The switch record a `HZ_NOTICE_SWITCHED` notice holds ([`switched_into`]'s inverse), for
/// `recipient`; `None` for another kind or an unknown cause.
fn switched_from(n: &hz_notice, recipient: u64) -> Option<SwitchRecord> {
    if n.kind != HZ_NOTICE_SWITCHED {
        return None;
    }
    let cause = match n.cause {
        HZ_SWITCH_CAUSE_FLIP => SwitchCause::Flip,
        HZ_SWITCH_CAUSE_SILENCE => SwitchCause::Silence,
        HZ_SWITCH_CAUSE_ROLLBACK => SwitchCause::Rollback,
        _ => return None,
    };
    Some(SwitchRecord {
        recipient,
        from: n.stream,
        to: n.to_stream,
        flip_id: n.flip_id,
        cause,
        seamless: n.seamless != 0,
        stall_ns: n.stall_ns,
        switch_ns: n.switch_ns,
        verified: n.verified,
        mismatched: n.mismatched,
        matched: (n.has_matched != 0).then_some(harmonizer_core::engine::PositionPair {
            origin: n.matched_origin,
            seq: n.matched_seq,
            from_pos: n.matched_from_pos,
            to_pos: n.matched_to_pos,
        }),
        cut_pos: n.other_pos,
        first_pos: n.first_pos,
    })
}

fn dry_run_refusal(r: Option<harmonizer_core::engine::DryRunRefusal>) -> u32 {
    use harmonizer_core::engine::DryRunRefusal;
    match r {
        None => 0,
        Some(DryRunRefusal::Blocked) => HZ_DRY_RUN_BLOCKED,
        Some(DryRunRefusal::Rejected(r)) => c_reject(r),
    }
}

fn c_cause(cause: SwitchCause) -> u32 {
    match cause {
        SwitchCause::Flip => HZ_SWITCH_CAUSE_FLIP,
        SwitchCause::Silence => HZ_SWITCH_CAUSE_SILENCE,
        SwitchCause::Rollback => HZ_SWITCH_CAUSE_ROLLBACK,
    }
}

/// A notice as C sees it; the locator, if any, borrows what `n` borrows.
fn to_c(n: &Notice<'_>) -> hz_notice {
    let mut c;
    match *n {
        Notice::Subscribe { stream, locator, from, purpose } => {
            c = hz_notice::empty(HZ_NOTICE_SUBSCRIBE);
            c.stream = stream;
            match from {
                StartAt::Pos(p) => (c.start, c.start_pos) = (HZ_START_POS, p),
                StartAt::Live => c.start = HZ_START_LIVE,
                StartAt::AfterSeq { origin, seq } => {
                    (c.start, c.start_origin, c.start_after_seq) = (HZ_START_AFTER_SEQ, origin, seq);
                }
                StartAt::AfterFrontier => c.start = HZ_START_AFTER_FRONTIER,
            }
            c.purpose = match purpose {
                Purpose::Initial => HZ_PURPOSE_INITIAL,
                Purpose::Stage => HZ_PURPOSE_STAGE,
                Purpose::Switch => HZ_PURPOSE_SWITCH,
                Purpose::ReRead { origin, from_seq, to_seq } => {
                    (c.origin, c.first_seq, c.last_seq) = (origin, from_seq, to_seq);
                    HZ_PURPOSE_REREAD
                }
                Purpose::Resume { origin } => {
                    c.origin = origin;
                    HZ_PURPOSE_RESUME
                }
                Purpose::Fill { origin, from_seq, to_seq } => {
                    (c.origin, c.first_seq, c.last_seq) = (origin, from_seq, to_seq);
                    HZ_PURPOSE_FILL
                }
            };
            if !locator.is_empty() {
                (c.locator, c.locator_len) = (locator.as_ptr(), locator.len());
            }
        }
        Notice::Unsubscribe { stream } => {
            c = hz_notice::empty(HZ_NOTICE_UNSUBSCRIBE);
            c.stream = stream;
        }
        Notice::Switched { .. } => {
            c = hz_notice::empty(HZ_NOTICE_SWITCHED);
            if let Some(r) = SwitchRecord::from_notice(0, n) {
                switched_into(&r, &mut c);
            }
        }
        Notice::Mismatch { stream, active, origin, seq, active_pos, pos } => {
            c = hz_notice::empty(HZ_NOTICE_MISMATCH);
            (c.stream, c.to_stream, c.origin, c.seq) = (stream, active, origin, seq);
            (c.pos, c.other_pos) = (pos, active_pos);
        }
        Notice::ProbationFailed { stream, previous, anomaly, rolling_back } => {
            use harmonizer_core::engine::Anomaly;
            c = hz_notice::empty(HZ_NOTICE_PROBATION_FAILED);
            (c.stream, c.to_stream, c.seamless) = (stream, previous, u32::from(rolling_back));
            (c.reason, c.anomaly_value) = match anomaly {
                Anomaly::Mismatches(n) => (HZ_ANOMALY_MISMATCHES, n),
                Anomaly::Holes(n) => (HZ_ANOMALY_HOLES, n),
                Anomaly::Silence(ns) => (HZ_ANOMALY_SILENCE, ns),
                Anomaly::Lag(ns) => (HZ_ANOMALY_LAG, ns),
            };
        }
        Notice::DryRun { report: d } => {
            c = hz_notice::empty(HZ_NOTICE_DRY_RUN);
            c.to_stream = d.to;
            c.seamless = u32::from(d.seamless);
            c.reason = dry_run_refusal(d.refusal);
            (c.stall_ns, c.dropped, c.verified, c.mismatched) =
                (d.stall_estimate_ns, d.missing, d.verified, d.mismatched);
            if let Some((o, first, last)) = d.first_gap {
                (c.origin, c.first_seq, c.last_seq) = (o, first, last);
            }
        }
        Notice::SwitchBlocked { from, to, flip_id, cause, verified, mismatched } => {
            c = hz_notice::empty(HZ_NOTICE_SWITCH_BLOCKED);
            (c.stream, c.to_stream, c.flip_id, c.cause) = (from, to, flip_id, c_cause(cause));
            (c.verified, c.mismatched) = (verified, mismatched);
        }
        Notice::Conflated { stream, origin, from_seq, to_seq, dropped } => {
            c = hz_notice::empty(HZ_NOTICE_CONFLATED);
            (c.stream, c.origin, c.first_seq, c.last_seq, c.dropped) =
                (stream, origin, from_seq, to_seq, dropped);
        }
        Notice::Stuck { stream, origin, from_seq, to_seq, rounds } => {
            c = hz_notice::empty(HZ_NOTICE_STUCK);
            (c.stream, c.origin, c.first_seq, c.last_seq, c.rounds) =
                (stream, origin, from_seq, to_seq, rounds);
        }
        Notice::ActiveSilent { stream, silent_ns, candidate, lead_events, lead_ns } => {
            c = hz_notice::empty(HZ_NOTICE_ACTIVE_SILENT);
            (c.stream, c.candidate) = (stream, candidate);
            (c.silent_ns, c.lead_events, c.lead_ns) = (silent_ns, lead_events, lead_ns);
        }
        Notice::Gap { stream, origin, from_seq, to_seq } => {
            c = hz_notice::empty(HZ_NOTICE_GAP);
            (c.stream, c.origin, c.first_seq, c.last_seq) = (stream, origin, from_seq, to_seq);
        }
        Notice::Lost { origin, from_seq, to_seq } => {
            c = hz_notice::empty(HZ_NOTICE_LOST);
            (c.origin, c.first_seq, c.last_seq) = (origin, from_seq, to_seq);
        }
        Notice::FlipRejected { stream, pos, reason } => {
            c = hz_notice::empty(HZ_NOTICE_FLIP_REJECTED);
            (c.stream, c.pos) = (stream, pos);
            c.reason = c_reject(reason);
        }
        Notice::BadEvent { stream, pos, origin, seq, reason } => {
            c = hz_notice::empty(HZ_NOTICE_BAD_EVENT);
            (c.stream, c.pos, c.origin, c.seq) = (stream, pos, origin, seq);
            c.reason = match reason {
                BadEventReason::UnknownOrigin => HZ_BAD_EVENT_UNKNOWN_ORIGIN,
            };
        }
        Notice::ProducerGone { stream, generation, pid, crashed } => {
            c = hz_notice::empty(HZ_NOTICE_PRODUCER_GONE);
            (c.stream, c.generation, c.pid) = (stream, generation, pid);
            c.reason = if crashed { HZ_PRODUCER_CRASHED } else { HZ_PRODUCER_CLOSED };
        }
        Notice::RingFileTruncated { stream, len, needed } => {
            c = hz_notice::empty(HZ_NOTICE_RING_FILE_TRUNCATED);
            (c.stream, c.file_len, c.needed_len) = (stream, len, needed);
        }
        Notice::RingCorrupt { stream, offset, what } => {
            c = hz_notice::empty(HZ_NOTICE_RING_CORRUPT);
            (c.stream, c.ring_offset) = (stream, offset);
            c.reason = match what {
                Corruption::BadPad { .. } => HZ_CORRUPT_BAD_PAD,
                Corruption::PadNotAtEnd { .. } => HZ_CORRUPT_PAD_NOT_AT_END,
                Corruption::TooShort { .. } => HZ_CORRUPT_TOO_SHORT,
                Corruption::TooLarge { .. } => HZ_CORRUPT_TOO_LARGE,
                Corruption::Wraps { .. } => HZ_CORRUPT_WRAPS,
                Corruption::PastTail { .. } => HZ_CORRUPT_PAST_TAIL,
                Corruption::BadTail { .. } => HZ_CORRUPT_BAD_TAIL,
                Corruption::BadHead { .. } => HZ_CORRUPT_BAD_HEAD,
                Corruption::HeadBusy { .. } => HZ_CORRUPT_HEAD_BUSY,
                Corruption::RoleChanged { .. } => HZ_CORRUPT_ROLE_CHANGED,
            };
        }
    }
    c
}

/// Delivers up to `max` events to `on_event`, with the notices between them to `on_notice`
/// (which may be NULL to ignore notices: then `SUBSCRIBE` requests go unseen), both called
/// synchronously on this thread with `user_data` (not owned, passed through). On `HZ_OK`,
/// `*delivered` (if not NULL) is the number of events delivered. Events and notices the pull
/// calls took from the engine and did not hand out come first. Allocation-free. Errors:
/// `HZ_ERR_NULL` (`engine`, `on_event`), `HZ_ERR_STATE` (called from one of this engine's own
/// callbacks). Poll thread.
#[no_mangle]
pub unsafe extern "C" fn hz_engine_poll(
    engine: *mut hz_engine,
    max: usize,
    on_event: hz_event_fn,
    on_notice: hz_notice_fn,
    user_data: *mut c_void,
    delivered: *mut usize,
) -> hz_status {
    with(engine, |e, err, busy| {
        let Some(on_event) = on_event else { return err.set(HZ_ERR_NULL, "on_event is NULL") };
        busy.set(true);
        let _done = Busy(busy);
        // What the pull calls took from the engine but did not hand out comes first.
        let mut flushed = 0;
        while flushed < max {
            let Some(p) = e.queue.pop_front() else { break };
            if let Pending::Notice { nidx, off } = p {
                if let Some(f) = on_notice {
                    let c = lend(&e.arena, e.notice_store[nidx].0, off);
                    // SAFETY: the caller's callback; the locator is in the arena.
                    unsafe { f(user_data, &c) };
                }
                continue;
            }
            let v = view(&e.arena, &e.headers, &p, std::mem::size_of::<hz_event_view>());
            // SAFETY: the caller's callback; the view's memory is held or in the arena.
            unsafe { on_event(user_data, v.stream, v.header, v.payload, v.payload_len) };
            flushed += 1;
        }
        if !e.queue.is_empty() {
            if !delivered.is_null() {
                // SAFETY: non-null and writable per contract.
                unsafe { *delivered = flushed };
            }
            return HZ_OK;
        }
        e.arena.clear();
        e.headers.clear();
        e.notice_store.clear();
        let mut h = CHandler { on_event, on_notice, user: user_data };
        let n = flushed + e.engine.poll(max - flushed, &mut h);
        if !delivered.is_null() {
            // SAFETY: non-null and writable per contract.
            unsafe { *delivered = n };
        }
        HZ_OK
    })
}

/// One event lent by the pull calls (`hz_engine_next`, `hz_engine_poll_views`): the header and
/// payload stay valid until the next call on the same engine (any `hz_engine_*` call but
/// `hz_engine_last_error`). Set `struct_size` to `sizeof(hz_event_view)` before the call (for
/// `hz_engine_poll_views`, in the first element: it is the array's stride).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[allow(non_camel_case_types)]
pub struct hz_event_view {
    /// `sizeof(hz_event_view)`, set by the caller.
    pub struct_size: usize,
    /// The stream it was delivered from.
    pub stream: u32,
    /// The event's header.
    pub header: *const EventHeader,
    /// The payload (NULL when `payload_len` is 0).
    pub payload: *const u8,
    /// Payload length.
    pub payload_len: usize,
}

/// Size of `hz_event_view`'s first layout (fields are only ever appended).
const VIEW_V1: usize = std::mem::offset_of!(hz_event_view, payload_len) + std::mem::size_of::<usize>();

fn view(arena: &[u8], headers: &[EventHeader], p: &Pending, struct_size: usize) -> hz_event_view {
    match *p {
        Pending::Held { stream, header, payload, len } => hz_event_view {
            struct_size,
            stream,
            header,
            payload: if len == 0 { core::ptr::null() } else { payload },
            payload_len: len,
        },
        Pending::Copied { stream, hidx, off, len } => hz_event_view {
            struct_size,
            stream,
            header: &headers[hidx],
            payload: if len == 0 { core::ptr::null() } else { arena[off..off + len].as_ptr() },
            payload_len: len,
        },
        Pending::Notice { .. } => unreachable!("a notice is not an event"),
    }
}

/// A queued notice, its locator pointed at its copy in the arena.
fn lend(arena: &[u8], mut n: hz_notice, off: usize) -> hz_notice {
    if n.locator_len > 0 {
        n.locator = arena[off..off + n.locator_len].as_ptr();
    }
    n
}

/// The caller's view array: a base address and the stride its first element's `struct_size`
/// gave.
#[derive(Clone, Copy)]
struct Views {
    base: *mut u8,
    stride: usize,
    cap: usize,
}

impl Views {
    /// Writes view `i < cap`.
    ///
    /// # Safety
    /// The caller's array has `cap` elements of `stride >= VIEW_V1` writable bytes.
    #[inline]
    unsafe fn write(&self, i: usize, mut v: hz_event_view) {
        debug_assert!(i < self.cap);
        v.struct_size = self.stride;
        if self.stride == std::mem::size_of::<hz_event_view>() {
            // This header's layout (the usual case): one struct store, no byte copy. Unaligned,
            // as a stride from the caller need not keep pointer alignment.
            // SAFETY: element `i < cap` of the caller's array of `stride`-byte elements
            // (this function's contract), exactly one `hz_event_view` long.
            unsafe { self.base.add(i * self.stride).cast::<hz_event_view>().write_unaligned(v) };
            return;
        }
        // SAFETY: element `i < cap` of the caller's array (this function's contract).
        let ok = unsafe { fill_sized(self.base.add(i * self.stride), self.stride, VIEW_V1, &v) };
        debug_assert!(ok.is_some(), "stride checked against VIEW_V1");
    }

    /// The view written at `i`, for the fix-ups after a poll.
    ///
    /// # Safety
    /// As `write`, and element `i` was written by it.
    unsafe fn fix(&self, i: usize, header: *const EventHeader, payload: *const u8) {
        // SAFETY: element `i` is a written view, at least `VIEW_V1` bytes: the fields touched are
        // inside it. Unaligned accesses: the caller's stride need not keep pointer alignment.
        unsafe {
            let at = self.base.add(i * self.stride);
            at.add(std::mem::offset_of!(hz_event_view, header))
                .cast::<*const EventHeader>()
                .write_unaligned(header);
            at.add(std::mem::offset_of!(hz_event_view, payload)).cast::<*const u8>().write_unaligned(payload);
        }
    }
}

/// Writes what `poll_holding` delivers straight into the caller's view array: active-ring
/// events (`Handler::event`) as pointers into the ring (the engine holds them), gap fills
/// (`Handler::filled`) as copies in the arena (their pointers are set after the poll, when the
/// arena has stopped growing). Once a notice comes (and the caller takes notices), it and
/// everything after it wait in the queue, as do events past `cap` (a gap fill can deliver more
/// than asked).
struct Fill<'a> {
    views: Views,
    k: usize,
    /// How far events go straight into the caller's array: `views.cap` until a notice is
    /// queued, then `k` (everything after a queued notice waits behind it).
    limit: usize,
    /// The caller takes notices (else they are dropped, as with a NULL callback).
    notices: bool,
    fixups: &'a mut Vec<(usize, usize, usize, usize)>,
    headers: &'a mut Vec<EventHeader>,
    notice_store: &'a mut Vec<StoredNotice>,
    queue: &'a mut VecDeque<Pending>,
    arena: &'a mut Vec<u8>,
}

impl Handler for Fill<'_> {
    /// An active-ring event: lent in place (the engine holds the record until the next poll).
    #[inline]
    fn event(&mut self, stream: u32, r: &Record<'_>) {
        if self.k < self.limit {
            let v = hz_event_view {
                struct_size: 0,
                stream,
                header: r.header,
                payload: if r.payload.is_empty() { core::ptr::null() } else { r.payload.as_ptr() },
                payload_len: r.payload.len(),
            };
            // SAFETY: `k < cap` elements of the caller's array, writable per contract.
            unsafe { self.views.write(self.k, v) };
            self.k += 1;
        } else {
            self.queue.push_back(Pending::Held {
                stream,
                header: r.header,
                payload: r.payload.as_ptr(),
                len: r.payload.len(),
            });
        }
    }
    /// A gap fill from a staged window: that memory is not held, so it is copied.
    fn filled(&mut self, stream: u32, r: &Record<'_>) {
        let off = self.arena.len();
        self.arena.extend_from_slice(r.payload);
        self.headers.push(*r.header);
        let hidx = self.headers.len() - 1;
        if self.k < self.limit {
            // A copy: the header and payload pointers are set after the poll.
            self.fixups.push((self.k, off, hidx, r.payload.len()));
            let v = hz_event_view {
                struct_size: 0,
                stream,
                header: core::ptr::null(),
                payload: core::ptr::null(),
                payload_len: r.payload.len(),
            };
            // SAFETY: as above.
            unsafe { self.views.write(self.k, v) };
            self.k += 1;
        } else {
            self.queue.push_back(Pending::Copied { stream, hidx, off, len: r.payload.len() });
        }
    }
    /// A notice: queued with a copy of its locator (notices are rare), and what follows it
    /// waits behind it.
    fn notice(&mut self, n: &Notice<'_>) {
        if !self.notices {
            return;
        }
        let mut c = to_c(n);
        let off = self.arena.len();
        if c.locator_len > 0 {
            // SAFETY: the notice's locator, valid for this call.
            self.arena.extend_from_slice(unsafe { std::slice::from_raw_parts(c.locator, c.locator_len) });
        }
        c.locator = core::ptr::null();
        self.notice_store.push(StoredNotice(c));
        self.queue.push_back(Pending::Notice { nidx: self.notice_store.len() - 1, off });
        self.limit = self.k;
    }
}

/// What a pull handed out: `events` views, then a notice if `notice`.
struct Pulled {
    events: usize,
    notice: bool,
}

/// Hands out up to `views.cap` events, in order, then the notice that follows them if it comes
/// before the array is full and the caller takes notices (`notice_out` not null): first what
/// an earlier call queued, else a holding poll of the engine. Views are written only for
/// events handed out, and the notice only when `notice` is set.
///
/// # Safety
/// `views` as `Views::write`'s contract; `notice_out` null or a caller's `hz_notice` whose
/// `struct_size` (at least `NOTICE_V1`) bytes are writable.
unsafe fn pull(e: &mut Inner, views: Views, notice_out: *mut hz_notice) -> Pulled {
    let takes = !notice_out.is_null();
    let mut k = 0;
    loop {
        match e.queue.front() {
            None => break,
            Some(Pending::Notice { .. }) if !takes => {
                e.queue.pop_front(); // the caller ignores notices
            }
            Some(Pending::Notice { .. }) => {
                // SAFETY: per this function's contract.
                if k < views.cap && unsafe { give_front_notice(e, notice_out) } {
                    return Pulled { events: k, notice: true };
                }
                break;
            }
            Some(_) if k < views.cap => {
                let Some(p) = e.queue.pop_front() else { unreachable!() };
                // SAFETY: `k < cap` elements of the caller's array (contract).
                unsafe { views.write(k, view(&e.arena, &e.headers, &p, views.stride)) };
                k += 1;
            }
            Some(_) => break,
        }
    }
    // Poll only when nothing from the queue was handed out: those views may point into the
    // arena, which the poll may grow (and move).
    if k > 0 || views.cap == 0 || !e.queue.is_empty() {
        return Pulled { events: k, notice: false };
    }
    e.arena.clear();
    e.fixups.clear();
    e.headers.clear();
    e.notice_store.clear();
    let Inner { engine, queue, arena, fixups, headers, notice_store, .. } = e;
    let mut h =
        Fill { views, k: 0, limit: views.cap, notices: takes, fixups, headers, notice_store, queue, arena };
    engine.poll_holding(views.cap, &mut h);
    let k = h.k;
    // The arena has stopped growing: point the copies' views at it.
    for &(slot, off, hidx, payload_len) in &e.fixups {
        let hdr: *const EventHeader = &e.headers[hidx];
        let payload =
            if payload_len > 0 { e.arena[off..off + payload_len].as_ptr() } else { core::ptr::null() };
        // SAFETY: `slot < k <= cap`, written by `Fill`.
        unsafe { views.fix(slot, hdr, payload) };
    }
    // A notice right behind the events handed out goes with them.
    // SAFETY: per this function's contract.
    let notice = takes && k < views.cap && unsafe { give_front_notice(e, notice_out) };
    Pulled { events: k, notice }
}

/// When the queue's front is a notice, takes it and writes it into the caller's struct.
///
/// # Safety
/// As `give_notice`.
unsafe fn give_front_notice(e: &mut Inner, out: *mut hz_notice) -> bool {
    let Some(&Pending::Notice { nidx, off }) = e.queue.front() else { return false };
    e.queue.pop_front();
    // SAFETY: per this function's contract.
    unsafe { give_notice(out, lend(&e.arena, e.notice_store[nidx].0, off)) };
    true
}

/// Writes a notice into the caller's struct, keeping its `struct_size`.
///
/// # Safety
/// `out` is a caller's `hz_notice` whose `struct_size` (at least `NOTICE_V1`) bytes are
/// writable.
unsafe fn give_notice(out: *mut hz_notice, mut n: hz_notice) {
    // SAFETY: per the contract.
    unsafe {
        let given = struct_size_of(out.cast());
        n.struct_size = given;
        let ok = fill_sized(out.cast(), given, NOTICE_V1, &n);
        debug_assert!(ok.is_some(), "struct_size checked against NOTICE_V1");
    }
}

/// Checks the caller's notice struct for a pull call: NULL (notices dropped) or a
/// `struct_size` of at least the first layout.
fn check_notice_out(err: &LastError, notice: *mut hz_notice) -> Result<(), hz_status> {
    if notice.is_null() {
        return Ok(());
    }
    // SAFETY: non-null, a caller's `hz_notice` per contract.
    let given = unsafe { struct_size_of(notice.cast()) };
    if let Some(why) =
        size_problem("notice", "hz_notice", given, NOTICE_V1, std::mem::align_of::<hz_notice>())
    {
        return Err(err.set(HZ_ERR_INVALID, why));
    }
    Ok(())
}

/// Pulls the next event or notice, in order, without copying the event: on `HZ_OK`, `*event`
/// describes an event whose header and payload stay in the engine's memory; on
/// `HZ_GOT_NOTICE`, `*notice` holds the notice that comes next. Both stay valid until the next
/// call on this engine (any `hz_engine_*` call but `hz_engine_last_error`). `HZ_EMPTY`: nothing
/// to deliver now. One item per call: `*event` is untouched unless `HZ_OK`, `*notice` unless
/// `HZ_GOT_NOTICE`. Set `event->struct_size` and `notice->struct_size` first. `notice` may be
/// NULL to ignore notices (then `SUBSCRIBE` requests go unseen).
///
/// An event filled into a gap from a staged stream's window is handed out from a copy (gap
/// fills are rare; that memory is not the engine's to hold), as is a notice's locator. Mixing
/// with `hz_engine_poll` is fine: it delivers what the pull calls took and did not hand out
/// first. Errors: `HZ_ERR_NULL` (`engine`, `event`), `HZ_ERR_INVALID` (a `struct_size` below
/// the first layout), `HZ_ERR_STATE` (called from one of this engine's callbacks). Poll
/// thread.
#[no_mangle]
pub unsafe extern "C" fn hz_engine_next(
    engine: *mut hz_engine,
    event: *mut hz_event_view,
    notice: *mut hz_notice,
) -> hz_status {
    with(engine, |e, err, busy| {
        if event.is_null() {
            return err.set(HZ_ERR_NULL, "event is NULL");
        }
        // SAFETY: non-null, a caller's view per contract.
        let stride = unsafe { struct_size_of(event.cast()) };
        if let Some(why) =
            size_problem("event", "hz_event_view", stride, VIEW_V1, std::mem::align_of::<hz_event_view>())
        {
            return err.set(HZ_ERR_INVALID, why);
        }
        if let Err(s) = check_notice_out(err, notice) {
            return s;
        }
        busy.set(true);
        let _done = Busy(busy);
        let views = Views { base: event.cast(), stride, cap: 1 };
        // SAFETY: one view of `stride` bytes and the notice, checked above.
        match unsafe { pull(e, views, notice) } {
            Pulled { notice: true, .. } => HZ_GOT_NOTICE,
            Pulled { events: 0, .. } => HZ_EMPTY,
            Pulled { .. } => HZ_OK,
        }
    })
}

/// Polls up to `cap` events into `views` without copying them, and the notice that follows
/// them: `*n` views are filled, in order (`*n` may be 0), and their headers and payloads stay
/// in the engine's memory. Returns `HZ_OK`, or `HZ_GOT_NOTICE` when the item after the `*n`
/// events (then fewer than `cap`) is a notice, written to `*notice`: handle the events, then
/// the notice, then call again. Views and notice stay valid until the next call on this engine
/// (any `hz_engine_*` call but `hz_engine_last_error`). Set `views[0].struct_size` (the array's
/// stride) and `notice->struct_size` first. `notice` may be NULL to ignore notices (then
/// `SUBSCRIBE` requests go unseen).
///
/// As with `hz_engine_next`, an event filled into a gap from a staged window comes from a copy,
/// and what the pull calls took but did not hand out comes first. The batch form of
/// `hz_engine_next`: the loop over the views is the caller's, with no call per event. (A call
/// that hands out events left queued returns just those.) Errors: `HZ_ERR_NULL` (`engine`, `n`,
/// or `views` with `cap > 0`), `HZ_ERR_INVALID` (a `struct_size` below the first layout or not
/// a multiple of the struct's alignment, or `cap` above what an array can hold), `HZ_ERR_STATE`
/// (called from one of this engine's callbacks). Poll thread.
#[no_mangle]
pub unsafe extern "C" fn hz_engine_poll_views(
    engine: *mut hz_engine,
    views: *mut hz_event_view,
    cap: usize,
    n: *mut usize,
    notice: *mut hz_notice,
) -> hz_status {
    with(engine, |e, err, busy| {
        if n.is_null() || (views.is_null() && cap > 0) {
            return err.set(HZ_ERR_NULL, "views or n is NULL");
        }
        let stride = if cap == 0 {
            std::mem::size_of::<hz_event_view>()
        } else {
            // SAFETY: non-null, the caller's first view per contract.
            unsafe { struct_size_of(views.cast()) }
        };
        if let Some(why) =
            size_problem("views", "hz_event_view", stride, VIEW_V1, std::mem::align_of::<hz_event_view>())
        {
            return err.set(HZ_ERR_INVALID, why);
        }
        if cap > isize::MAX as usize / stride {
            return err.set(HZ_ERR_INVALID, format!("cap {cap}: no array is that long"));
        }
        if let Err(s) = check_notice_out(err, notice) {
            return s;
        }
        busy.set(true);
        let _done = Busy(busy);
        let v = Views { base: views.cast(), stride, cap };
        // SAFETY: `cap` views of `stride` bytes and the notice, checked above.
        let got = unsafe { pull(e, v, notice) };
        // SAFETY: non-null and writable per contract.
        unsafe { *n = got.events };
        if got.notice {
            HZ_GOT_NOTICE
        } else {
            HZ_OK
        }
    })
}

/// `hz_engine_metrics`: the OpenMetrics text format (Prometheus): counters as `_total`
/// samples, gauges, `# EOF` last; every sample labelled `recipient="<id>"`.
pub const HZ_METRICS_OPENMETRICS: u32 = 1;
/// `hz_engine_metrics`: one JSON object, `{"version":1,"recipient":..,"active_stream":..,
/// "stats":{"delivered":..,..}}`; readers check `version` (fields are only ever added).
pub const HZ_METRICS_JSON: u32 = 2;

/// Counts what is written, and keeps what fits of it in `buf`.
pub(crate) struct BufWriter<'a> {
    pub(crate) buf: &'a mut [u8],
    pub(crate) len: usize,
}

impl std::fmt::Write for BufWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if let Some(dst) = self.buf.get_mut(self.len..end) {
            dst.copy_from_slice(s.as_bytes());
        }
        self.len = end;
        Ok(())
    }
}

/// Writes the engine's metrics as text in `format` (`HZ_METRICS_OPENMETRICS` or
/// `HZ_METRICS_JSON`; docs/metrics.md) into `buf`, `cap` bytes, NUL-terminated, and the text's
/// length (without the NUL) to `*len`. The text lists every `hz_stats` counter and the active
/// stream. Ask the length with `buf` NULL and `cap` 0 (`HZ_ERR_BUFFER_TOO_SMALL`, `*len` set);
/// allocates nothing. Errors: `HZ_ERR_NULL` (`len`, or `buf` with `cap` above 0),
/// `HZ_ERR_INVALID` (an unknown format), `HZ_ERR_BUFFER_TOO_SMALL` (`cap` below `*len + 1`;
/// nothing written to `buf`), `HZ_ERR_STATE` (from a callback). Poll thread.
#[no_mangle]
pub unsafe extern "C" fn hz_engine_metrics(
    engine: *const hz_engine,
    format: u32,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> hz_status {
    with(engine, |e, err, _| {
        if len.is_null() {
            return err.set(HZ_ERR_NULL, "len is NULL");
        }
        if buf.is_null() && cap > 0 {
            return err.set(HZ_ERR_NULL, format!("buf is NULL with cap {cap}"));
        }
        let format = match format {
            HZ_METRICS_OPENMETRICS => MetricsFormat::OpenMetrics,
            HZ_METRICS_JSON => MetricsFormat::Json,
            other => {
                return err.set(
                    HZ_ERR_INVALID,
                    format!("metrics format {other}: HZ_METRICS_OPENMETRICS (1) or HZ_METRICS_JSON (2)"),
                )
            }
        };
        let mut count = BufWriter { buf: &mut [], len: 0 };
        let _ = e.engine.write_metrics(format, &mut count);
        // SAFETY: non-null and writable per contract.
        unsafe { *len = count.len };
        if cap <= count.len {
            return err.set(
                HZ_ERR_BUFFER_TOO_SMALL,
                format!("the metrics take {} bytes and a NUL; cap is {cap}", count.len),
            );
        }
        // SAFETY: `buf` is non-null (checked: `cap` > `count.len` >= 0) and the caller's `cap`
        // writable bytes per contract; nothing else refers to them during the call.
        let out = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), cap) };
        let mut w = BufWriter { buf: out, len: 0 };
        let _ = e.engine.write_metrics(format, &mut w);
        let n = w.len;
        out[n] = 0;
        HZ_OK
    })
}

/// Writes the audit record of a switch (docs/verify.md, "The audit record") as one line of
/// JSON, newline included, NUL-terminated, into `buf` (`cap` bytes), its length (without the
/// NUL) to `*len`: `notice` is a `HZ_NOTICE_SWITCHED` notice as the notice callback or a pull
/// call gave it, `recipient` the engine's recipient id. The line's fields and version are the
/// Rust `SwitchRecord::write_json`'s. Ask the length with `buf` NULL and `cap` 0
/// (`HZ_ERR_BUFFER_TOO_SMALL`, `*len` set); allocates nothing. Errors: `HZ_ERR_NULL`
/// (`notice`, `len`, or `buf` with `cap` above 0), `HZ_ERR_INVALID` (not a `SWITCHED` notice,
/// an unknown cause, or a `struct_size` without the switch record's fields),
/// `HZ_ERR_BUFFER_TOO_SMALL`. Any thread.
#[no_mangle]
pub unsafe extern "C" fn hz_switch_record_json(
    notice: *const hz_notice,
    recipient: u64,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> hz_status {
    let run = || {
        if notice.is_null() || len.is_null() {
            return HZ_ERR_NULL;
        }
        if buf.is_null() && cap > 0 {
            return HZ_ERR_NULL;
        }
        // SAFETY: non-null, a notice the library wrote (at least its `struct_size` bytes).
        let given = unsafe { struct_size_of(notice.cast()) };
        if given < std::mem::offset_of!(hz_notice, first_pos) + 8 {
            return HZ_ERR_INVALID;
        }
        // Its first `given` bytes (at most our layout), over a blank notice: every field read
        // below lies within them (checked above), and nothing past `struct_size` is read.
        let mut n = hz_notice::empty(0);
        let k = given.min(std::mem::size_of::<hz_notice>());
        // SAFETY: `notice` has `given >= k` readable bytes per contract; `n` is a distinct
        // local of at least `k` bytes; any bit pattern is a valid `hz_notice` for these
        // integer fields (the locator pointer is never dereferenced here).
        unsafe {
            std::ptr::copy_nonoverlapping(notice.cast::<u8>(), (&mut n as *mut hz_notice).cast::<u8>(), k)
        };
        let Some(r) = switched_from(&n, recipient) else { return HZ_ERR_INVALID };
        let mut count = BufWriter { buf: &mut [], len: 0 };
        let _ = r.write_json(&mut count);
        // SAFETY: non-null and writable per contract.
        unsafe { *len = count.len };
        if cap <= count.len {
            return HZ_ERR_BUFFER_TOO_SMALL;
        }
        // SAFETY: `buf` is non-null (`cap` > 0) and the caller's `cap` writable bytes.
        let out = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), cap) };
        let mut w = BufWriter { buf: out, len: 0 };
        let _ = r.write_json(&mut w);
        out[w.len] = 0;
        HZ_OK
    };
    catch_unwind(AssertUnwindSafe(run)).unwrap_or(HZ_ERR_PANIC)
}

/// Fills `*out` with the engine's statistics: set `out->struct_size` to `sizeof(hz_stats)`
/// first. Errors: `HZ_ERR_NULL`, `HZ_ERR_INVALID` (`struct_size` below the first layout). Poll
/// thread.
#[no_mangle]
pub unsafe extern "C" fn hz_engine_stats(engine: *const hz_engine, out: *mut hz_stats) -> hz_status {
    with(engine, |e, err, _| {
        if out.is_null() {
            return err.set(HZ_ERR_NULL, "out is NULL");
        }
        // SAFETY: non-null, the caller's struct per contract.
        let given = unsafe { struct_size_of(out.cast()) };
        let s = e.engine.stats();
        let c = hz_stats {
            struct_size: given,
            delivered: s.delivered,
            duplicates_dropped: s.duplicates_dropped,
            gap_filled: s.gap_filled,
            gaps: s.gaps,
            lost: s.lost,
            rereads: s.rereads,
            skipped_for_reread: s.skipped_for_reread,
            before_resume_pos: s.before_resume_pos,
            flips_applied: s.flips_applied,
            flips_ignored: s.flips_ignored,
            flips_repeated: s.flips_repeated,
            flips_stale: s.flips_stale,
            flips_rejected: s.flips_rejected,
            bad_events: s.bad_events,
            unknown_kinds: s.unknown_kinds,
            switches_seamless: s.switches_seamless,
            switches_cold: s.switches_cold,
            stall_last_ns: s.stall_last_ns,
            stall_max_ns: s.stall_max_ns,
            stall_total_ns: s.stall_total_ns,
            staged_bytes: s.staged_bytes,
            peak_staged_bytes: s.peak_staged_bytes,
            staged_ns: s.staged_ns,
            observed_ns: s.observed_ns,
            api_errors: err.count(),
            fill_requests: s.fill_requests,
            stuck: s.stuck,
            silences: s.silences,
            failovers: s.failovers,
            switch_last_ns: s.switch_last_ns,
            switch_max_ns: s.switch_max_ns,
            gaps_filled_by_wait: s.gaps_filled_by_wait,
            rings_corrupt: s.rings_corrupt,
            identity_starts: s.identity_starts,
            conflated: s.conflated,
            conflation_survivors: s.conflation_survivors,
            conflation_fallbacks: s.conflation_fallbacks,
            verified: s.verified,
            mismatches: s.mismatches,
            unverified: s.unverified,
            switches_blocked: s.switches_blocked,
            map_runs: s.map_runs,
            map_runs_dropped: s.map_runs_dropped,
            probation_failures: s.probation_failures,
            rollbacks: s.rollbacks,
        };
        // SAFETY: non-null with `struct_size` writable bytes per contract.
        if let Some(why) = size_problem("out", "hz_stats", given, STATS_V1, std::mem::align_of::<hz_stats>())
        {
            return err.set(HZ_ERR_INVALID, why);
        }
        // SAFETY: checked above.
        let ok = unsafe { fill_sized(out.cast(), given, STATS_V1, &c) };
        debug_assert!(ok.is_some());
        HZ_OK
    })
}

/// One run of the position map (`hz_engine_position_map`): `len` events of `origin` with
/// consecutive seqs from `first_seq`; the `k`-th sits at `from_pos + k * from_stride` on stream
/// `from` (active when they were matched) and at `to_pos + k * to_stride` on stream `to`
/// (staged then). A fixed layout.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
#[allow(non_camel_case_types)]
pub struct hz_map_run {
    /// The stream the events were delivered from.
    pub from: u32,
    /// The staged stream whose copies matched.
    pub to: u32,
    /// The origin.
    pub origin: u32,
    /// Padding, 0.
    pub reserved: u32,
    /// Seq of the first event.
    pub first_seq: u64,
    /// Its position on `from`.
    pub from_pos: u64,
    /// Its position on `to`.
    pub to_pos: u64,
    /// Positions on `from` per seq (0 when `len` is 1).
    pub from_stride: u64,
    /// Positions on `to` per seq (0 when `len` is 1).
    pub to_stride: u64,
    /// Events in the run.
    pub len: u64,
}

/// The position on stream `to` of the event at `pos` on stream `from`, from the position map
/// (content verification, `hz_config_set_verify`; docs/verify.md): exact for an event both
/// streams carried and the engine verified while one was staged against the other, in either
/// direction, never interpolated. On `HZ_OK`, `*found` is 1 and `*out_pos` the position, or
/// `*found` is 0 (no run holds `pos`, or verification is off) and `*out_pos` is left alone.
/// Errors: `HZ_ERR_NULL`, `HZ_ERR_STATE` (from a callback). Poll thread.
#[no_mangle]
pub unsafe extern "C" fn hz_engine_translate(
    engine: *const hz_engine,
    from: u32,
    to: u32,
    pos: u64,
    out_pos: *mut u64,
    found: *mut u32,
) -> hz_status {
    with(engine, |e, err, _| {
        if out_pos.is_null() || found.is_null() {
            return err.set(HZ_ERR_NULL, if out_pos.is_null() { "out_pos is NULL" } else { "found is NULL" });
        }
        let t = e.engine.translate(from, to, pos);
        // SAFETY: both non-null and writable per contract.
        unsafe {
            *found = u32::from(t.is_some());
            if let Some(p) = t {
                *out_pos = p;
            }
        }
        HZ_OK
    })
}

/// Copies the position map's newest runs, oldest first, into `out` (room for `cap`), and sets
/// `*count` to the number written. With `out` NULL or `cap` 0, `*count` is the number of runs
/// the map holds (nothing written). Errors: `HZ_ERR_NULL` (`count`), `HZ_ERR_STATE` (from a
/// callback). Poll thread.
#[no_mangle]
pub unsafe extern "C" fn hz_engine_position_map(
    engine: *const hz_engine,
    out: *mut hz_map_run,
    cap: usize,
    count: *mut usize,
) -> hz_status {
    with(engine, |e, err, _| {
        if count.is_null() {
            return err.set(HZ_ERR_NULL, "count is NULL");
        }
        let kept = e.engine.position_map().count();
        let n = if out.is_null() { 0 } else { cap.min(kept) };
        for (k, r) in e.engine.position_map().skip(kept - n).enumerate() {
            let c = hz_map_run {
                from: r.from,
                to: r.to,
                origin: r.origin,
                reserved: 0,
                first_seq: r.first_seq,
                from_pos: r.from_pos,
                to_pos: r.to_pos,
                from_stride: r.from_stride,
                to_stride: r.to_stride,
                len: r.len,
            };
            // SAFETY: `out` has room for `cap >= n > k` runs per contract.
            unsafe { out.add(k).write(c) };
        }
        // SAFETY: non-null and writable per contract.
        unsafe { *count = if out.is_null() || cap == 0 { kept } else { n } };
        HZ_OK
    })
}

/// `hz_dry_run.refusal`: content verification would block the switch (a mismatch among the
/// target's last matched events, `HZ_MISMATCH_BLOCK_SWITCH`). Other refusals are
/// `HZ_REJECT_*` values, as the flip would be rejected.
pub const HZ_DRY_RUN_BLOCKED: u32 = 100;

/// What a switch would do now (`hz_engine_evaluate_switch`; docs/verify.md, "Dry run"). Set
/// `struct_size` to `sizeof(hz_dry_run)` before the call; fields a later library adds are
/// appended.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
#[allow(non_camel_case_types)]
pub struct hz_dry_run {
    /// `sizeof(hz_dry_run)`, set by the caller.
    pub struct_size: usize,
    /// The target (for a SWITCHBACK, the previous stream).
    pub to_stream: u32,
    /// 0 when the switch would be made; else `HZ_REJECT_*` or `HZ_DRY_RUN_BLOCKED`.
    pub refusal: u32,
    /// 1 when the target is staged.
    pub staged: u32,
    /// 1 when the switch would be seamless as far as the engine can tell now: staged, and its
    /// window leaves no hole after the delivery frontier.
    pub seamless: u32,
    /// 1 when the target's window leaves a hole: `gap_origin`, `gap_first_seq ..= gap_last_seq`
    /// (the first the delivery would meet).
    pub has_gap: u32,
    /// The hole's origin.
    pub gap_origin: u32,
    /// First missing seq.
    pub gap_first_seq: u64,
    /// Last missing seq.
    pub gap_last_seq: u64,
    /// Events missing across every origin's first hole.
    pub missing: u64,
    /// Records of the window at or behind the frontier (dropped as duplicates).
    pub duplicates: u64,
    /// Records of the window beyond the frontier (delivered at once).
    pub ahead: u64,
    /// Not staged: the start a cold switch would subscribe from, as `hz_notice.start`
    /// (`HZ_START_*`, 0 when staged), with `start_pos` / `start_origin` / `start_after_seq`.
    pub start: u32,
    /// `HZ_START_AFTER_SEQ`: the origin.
    pub start_origin: u32,
    /// `HZ_START_POS`: the position.
    pub start_pos: u64,
    /// `HZ_START_AFTER_SEQ`: the seq.
    pub start_after_seq: u64,
    /// 0 when seamless, else the configured cost of a cold switch, ns.
    pub stall_estimate_ns: u64,
    /// Events verified against the target so far.
    pub verified: u64,
    /// Events whose copies differed.
    pub mismatched: u64,
    /// 1 when the cut-over pair below is set.
    pub has_matched: u32,
    /// The cut-over pair's origin.
    pub matched_origin: u32,
    /// The cut-over pair's seq.
    pub matched_seq: u64,
    /// Its position on the active stream.
    pub matched_from_pos: u64,
    /// Its position on the target.
    pub matched_to_pos: u64,
}

/// Size of `hz_dry_run`'s first layout.
const DRY_RUN_V1: usize = std::mem::size_of::<hz_dry_run>();

/// A dry run of a switch (`action` `HZ_FLIP_SWITCH` to `target`, or `HZ_FLIP_SWITCHBACK`,
/// whose target is the previous stream): what it would do if made now, by the engine's own
/// rules, with nothing changed. Errors: `HZ_ERR_NULL`, `HZ_ERR_INVALID` (another action, or
/// `struct_size` below the first layout), `HZ_ERR_STATE` (from a callback). Poll thread.
#[no_mangle]
pub unsafe extern "C" fn hz_engine_evaluate_switch(
    engine: *mut hz_engine,
    action: u32,
    target: u32,
    out: *mut hz_dry_run,
) -> hz_status {
    use harmonizer_core::flip::FlipAction;
    with(engine, |e, err, _| {
        if out.is_null() {
            return err.set(HZ_ERR_NULL, "out is NULL");
        }
        let action = match action {
            super::HZ_FLIP_SWITCH => FlipAction::Switch,
            super::HZ_FLIP_SWITCHBACK => FlipAction::Switchback,
            _ => {
                return err.set(
                    HZ_ERR_INVALID,
                    format!("action {action}: a dry run is of HZ_FLIP_SWITCH or HZ_FLIP_SWITCHBACK"),
                )
            }
        };
        // SAFETY: non-null, the caller's struct per contract.
        let given = unsafe { struct_size_of(out.cast()) };
        if let Some(why) =
            size_problem("out", "hz_dry_run", given, DRY_RUN_V1, std::mem::align_of::<hz_dry_run>())
        {
            return err.set(HZ_ERR_INVALID, why);
        }
        let d = e.engine.evaluate_switch(action, target);
        let mut c = hz_dry_run {
            struct_size: given,
            to_stream: d.to,
            refusal: dry_run_refusal(d.refusal),
            staged: u32::from(d.staged),
            seamless: u32::from(d.seamless),
            missing: d.missing,
            duplicates: d.duplicates,
            ahead: d.ahead,
            stall_estimate_ns: d.stall_estimate_ns,
            verified: d.verified,
            mismatched: d.mismatched,
            ..hz_dry_run::default()
        };
        if let Some((o, first, last)) = d.first_gap {
            (c.has_gap, c.gap_origin, c.gap_first_seq, c.gap_last_seq) = (1, o, first, last);
        }
        if let Some(m) = d.matched {
            (c.has_matched, c.matched_origin, c.matched_seq) = (1, m.origin, m.seq);
            (c.matched_from_pos, c.matched_to_pos) = (m.from_pos, m.to_pos);
        }
        match d.start {
            None => {}
            Some(StartAt::Pos(p)) => (c.start, c.start_pos) = (HZ_START_POS, p),
            Some(StartAt::Live) => c.start = HZ_START_LIVE,
            Some(StartAt::AfterSeq { origin, seq }) => {
                (c.start, c.start_origin, c.start_after_seq) = (HZ_START_AFTER_SEQ, origin, seq);
            }
            Some(StartAt::AfterFrontier) => c.start = HZ_START_AFTER_FRONTIER,
        }
        // SAFETY: checked above: `given` writable bytes, at least the first layout.
        let ok = unsafe { fill_sized(out.cast(), given, DRY_RUN_V1, &c) };
        debug_assert!(ok.is_some());
        HZ_OK
    })
}

/// An engine's staging demand, as of its last plan (every poll plans), as
/// `hz_engine_staging_demand` fills it: what it wants staged and what it holds, for a controller
/// or a load balancer that wants to see which recipients are about to switch and how much they
/// want (docs/staging.md, "Staging demand"). Set `struct_size` to `sizeof(hz_staging_demand)`
/// before the call; fields a later library adds are appended.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
#[allow(non_camel_case_types)]
pub struct hz_staging_demand {
    /// `sizeof(hz_staging_demand)`, set by the caller.
    pub struct_size: usize,
    /// Bytes the policy's plan asks for (windows times the mean data frame delivered, the
    /// largest frame before any), deferred starts included.
    pub wanted_bytes: u64,
    /// Bytes of the windows staged now, as priced against the engine's own budget (a gap's
    /// fill stream included).
    pub granted_bytes: u64,
    /// Bytes this engine holds of the shared pool (0 without one).
    pub pool_bytes: u64,
    /// Candidates the plan asks for.
    pub wanted_streams: u32,
    /// Candidates staged now.
    pub staged_streams: u32,
    /// Candidates waiting for their spread start (`hz_config_set_spread`).
    pub deferred_streams: u32,
    /// Candidates refused by the engine's budget or the pool at the last plan (or whose grant
    /// was given back to a higher bid).
    pub refused_streams: u32,
    /// The largest benefit asked for: the switch's probability times the cold switch's cost
    /// (`hz_config_set_cold_switch_cost`): ns of cold stall the staging would save, in
    /// expectation.
    pub urgency: f64,
    /// Clock ns of the earliest deferred start, 0 if none.
    pub next_start_ns: u64,
}

/// Size of `hz_staging_demand`'s first layout (fields are only ever appended).
const DEMAND_V1: usize = std::mem::offset_of!(hz_staging_demand, next_start_ns) + std::mem::size_of::<u64>();

/// Fills `*out` with the engine's staging demand as of its last poll: set `out->struct_size` to
/// `sizeof(hz_staging_demand)` first. Before the first poll every field is 0. Errors:
/// `HZ_ERR_NULL` (`engine`; `out`, with the reason in `hz_engine_last_error`), `HZ_ERR_INVALID`
/// (`struct_size` below the first layout, above 4096 or not a multiple of the struct's
/// alignment; nothing written), `HZ_ERR_STATE` (from a callback). Poll thread.
#[no_mangle]
pub unsafe extern "C" fn hz_engine_staging_demand(
    engine: *const hz_engine,
    out: *mut hz_staging_demand,
) -> hz_status {
    with(engine, |e, err, _| {
        if out.is_null() {
            return err.set(HZ_ERR_NULL, "out is NULL");
        }
        // SAFETY: non-null, the caller's struct per contract.
        let given = unsafe { struct_size_of(out.cast()) };
        if let Some(why) = size_problem(
            "out",
            "hz_staging_demand",
            given,
            DEMAND_V1,
            std::mem::align_of::<hz_staging_demand>(),
        ) {
            return err.set(HZ_ERR_INVALID, why);
        }
        let d = e.engine.staging_demand();
        let c = hz_staging_demand {
            struct_size: given,
            wanted_bytes: d.wanted_bytes,
            granted_bytes: d.granted_bytes,
            pool_bytes: d.pool_bytes,
            wanted_streams: d.wanted_streams,
            staged_streams: d.staged_streams,
            deferred_streams: d.deferred_streams,
            refused_streams: d.refused_streams,
            urgency: f64::from(d.urgency),
            next_start_ns: d.next_start_ns,
        };
        // SAFETY: `out` is writable for `given` bytes (the caller's `struct_size`), checked
        // above to be within the size-tag rule.
        let ok = unsafe { fill_sized(out.cast(), given, DEMAND_V1, &c) };
        debug_assert!(ok.is_some());
        HZ_OK
    })
}

/// Sleeps until the active stream's producer publishes, `timeout_ns` passes (real time), or an
/// engine deadline comes due (a gap's recovery round, a silence), whichever is first. On
/// `HZ_OK`, `*out_ready` (if not NULL) is 1 when events wait (or the next poll has work of its
/// own, or `hz_engine_next` has events queued) and 0 otherwise. A waiting engine uses no CPU;
/// producers pay nothing for it while the engine is awake (no system call on their path).
/// Only the active stream wakes it; for a ring file, its producer in another process does too.
/// While delivery is held at a gap (a wait for a lagging candidate, an awaited fill, a stuck
/// gap) it sleeps on the first staged candidate instead, whose next publish wakes it (at most
/// 1 s when no deadline is set), so a poll/wait loop does not spin.
/// Errors: `HZ_ERR_NULL`; `HZ_ERR_STATE` from a callback. Poll thread: then poll.
#[no_mangle]
pub unsafe extern "C" fn hz_engine_wait(
    engine: *mut hz_engine,
    timeout_ns: u64,
    out_ready: *mut u32,
) -> hz_status {
    with(engine, |e, _, _| {
        let ready = !e.queue.is_empty() || e.engine.wait(core::time::Duration::from_nanos(timeout_ns));
        if !out_ready.is_null() {
            // SAFETY: non-null and writable per contract.
            unsafe { *out_ready = u32::from(ready) };
        }
        HZ_OK
    })
}

/// Writes the active stream's id to `*out`. Errors: `HZ_ERR_NULL`. Poll thread.
#[no_mangle]
pub unsafe extern "C" fn hz_engine_active_stream(engine: *const hz_engine, out: *mut u32) -> hz_status {
    with(engine, |e, err, _| {
        if out.is_null() {
            return err.set(HZ_ERR_NULL, "out is NULL");
        }
        // SAFETY: non-null and writable per contract.
        unsafe { *out = e.engine.active_stream() };
        HZ_OK
    })
}

/// Writes the last seq delivered for `origin` to `*out` (the tracker's frontier): what a
/// `HZ_NOTICE_SUBSCRIBE` with `HZ_START_AFTER_FRONTIER` reads after, origin by origin.
/// Errors: `HZ_ERR_NULL`, `HZ_ERR_INVALID` (origin not below `max_origins`), `HZ_ERR_STATE`
/// (nothing delivered from `origin` yet). Poll thread.
#[no_mangle]
pub unsafe extern "C" fn hz_engine_frontier(
    engine: *const hz_engine,
    origin: u32,
    out: *mut u64,
) -> hz_status {
    with(engine, |e, err, _| {
        if out.is_null() {
            return err.set(HZ_ERR_NULL, "out is NULL");
        }
        if origin >= e.engine.tracker().max_origins() {
            return err.set(HZ_ERR_INVALID, format!("origin {origin} is not below max_origins"));
        }
        match e.engine.tracker().last(origin) {
            Some(seq) => {
                // SAFETY: non-null and writable per contract.
                unsafe { *out = seq };
                HZ_OK
            }
            None => err.set(HZ_ERR_STATE, format!("nothing delivered from origin {origin} yet")),
        }
    })
}

/// Declares that delivery of `origin` resumes at `next_seq`: every seq below it counts as
/// delivered and is dropped as a duplicate if it comes (0: nothing delivered yet). For a
/// restarted application, from its own checkpoint, before the first poll: with a resumed ring
/// file (`HZ_ATTACH_RESUME`) the records the previous engine read but had not released come
/// again and are dropped here. Errors: `HZ_ERR_NULL`, `HZ_ERR_INVALID` (origin not below
/// `max_origins`). Poll thread.
#[no_mangle]
pub unsafe extern "C" fn hz_engine_resume_at(
    engine: *mut hz_engine,
    origin: u32,
    next_seq: u64,
) -> hz_status {
    with(engine, |e, err, _| {
        if origin >= e.engine.tracker().max_origins() {
            return err.set(HZ_ERR_INVALID, format!("origin {origin} is not below max_origins"));
        }
        e.engine.tracker_mut().resume_at(origin, next_seq);
        HZ_OK
    })
}

/// Declares where `stream` resumes, from the application's checkpoint: the first
/// `HZ_NOTICE_SUBSCRIBE` of the initial stream then names `next_pos` exactly (`HZ_START_POS`).
/// Call before the first poll. Errors: `HZ_ERR_NULL`, `HZ_ERR_INVALID` (unknown stream). Poll
/// thread.
#[no_mangle]
pub unsafe extern "C" fn hz_engine_resume_stream_at(
    engine: *mut hz_engine,
    stream: u32,
    next_pos: u64,
) -> hz_status {
    with(engine, |e, err, _| {
        if e.engine.resume_stream_at(stream, next_pos) {
            HZ_OK
        } else {
            err.set(HZ_ERR_INVALID, format!("no stream {stream}"))
        }
    })
}

/// After `HZ_NOTICE_STUCK`: runs the gap's recovery again from its first round (the next poll
/// asks). Errors: `HZ_ERR_NULL`, `HZ_ERR_STATE` (no gap is stuck). Poll thread, not from a
/// callback.
#[no_mangle]
pub unsafe extern "C" fn hz_engine_retry_gap(engine: *mut hz_engine) -> hz_status {
    with(
        engine,
        |e, err, _| {
            if e.engine.retry_gap() {
                HZ_OK
            } else {
                err.set(HZ_ERR_STATE, "no gap is stuck")
            }
        },
    )
}

/// After `HZ_NOTICE_STUCK`: gives the gap up; the next poll reports it `HZ_NOTICE_LOST` with
/// its exact range and delivery goes on. Errors: `HZ_ERR_NULL`, `HZ_ERR_STATE` (no gap is
/// stuck). Poll thread, not from a callback.
#[no_mangle]
pub unsafe extern "C" fn hz_engine_give_up_gap(engine: *mut hz_engine) -> hz_status {
    with(
        engine,
        |e, err, _| {
            if e.engine.give_up_gap() {
                HZ_OK
            } else {
                err.set(HZ_ERR_STATE, "no gap is stuck")
            }
        },
    )
}

/// Asks for `stream` to be staged (`hz_engine_disarm` withdraws it): every policy honours it.
/// Errors: `HZ_ERR_NULL`, `HZ_ERR_INVALID` (unknown stream). Poll thread.
#[no_mangle]
pub unsafe extern "C" fn hz_engine_arm(engine: *mut hz_engine, stream: u32) -> hz_status {
    with(engine, |e, err, _| {
        if e.engine.arm(stream) {
            HZ_OK
        } else {
            err.set(HZ_ERR_INVALID, format!("no stream {stream}"))
        }
    })
}

/// Withdraws `hz_engine_arm`. Errors: `HZ_ERR_NULL`, `HZ_ERR_INVALID` (unknown stream). Poll
/// thread.
#[no_mangle]
pub unsafe extern "C" fn hz_engine_disarm(engine: *mut hz_engine, stream: u32) -> hz_status {
    with(engine, |e, err, _| {
        if e.engine.disarm(stream) {
            HZ_OK
        } else {
            err.set(HZ_ERR_INVALID, format!("no stream {stream}"))
        }
    })
}

fn install(e: &mut Inner, err: &LastError, bytes: &[u8]) -> hz_status {
    let Some(p) = e.engine.policy_mut::<Predictor>() else {
        return err.set(HZ_ERR_STATE, "the engine's policy is not the predictor (HZ_POLICY_PREDICTOR)");
    };
    match Model::from_json_bytes(bytes).and_then(|m| p.set_model(m)) {
        Ok(()) => HZ_OK,
        Err(e) => err.set(HZ_ERR_MODEL, e.to_string()),
    }
}

/// Loads a predictor model (the JSON model file, `len` bytes at `json`, not retained) into the
/// engine's predictor. On any error the previous model stays. Errors: `HZ_ERR_NULL`,
/// `HZ_ERR_STATE` (the policy is not the predictor), `HZ_ERR_MODEL` (the reason in the last
/// error; a model longer than 1 MiB, `HZ_MAX_MODEL_BYTES`, is refused before it is read).
/// Poll thread.
#[no_mangle]
pub unsafe extern "C" fn hz_engine_load_model(
    engine: *mut hz_engine,
    json: *const u8,
    len: usize,
) -> hz_status {
    with(engine, |e, err, _| {
        if len > HZ_MAX_MODEL_BYTES {
            return err.set(
                HZ_ERR_MODEL,
                ModelError::TooLarge { len: len as u64, limit: HZ_MAX_MODEL_BYTES }.to_string(),
            );
        }
        // SAFETY: `json` points to `len` readable bytes per contract (NULL only with 0).
        let b = match unsafe { bytes(json, len) } {
            Ok(b) => b,
            Err(bad) => {
                let (status, why) = bad.status("json", len);
                return err.set(status, why);
            }
        };
        install(e, err, b)
    })
}

/// Largest model `hz_engine_load_model` and `hz_engine_load_model_file` take, bytes.
pub const HZ_MAX_MODEL_BYTES: usize = 1_048_576;
const _: () = assert!(HZ_MAX_MODEL_BYTES == harmonizer_core::predict::MAX_MODEL_BYTES);

/// Loads a predictor model from the file at `path` (NUL-terminated, not retained): a regular
/// file (not a directory, a device or a pipe) of at most `HZ_MAX_MODEL_BYTES`, never read
/// further. As `hz_engine_load_model`, plus `HZ_ERR_IO` when the file cannot be opened or is not
/// a regular file. Poll thread.
#[no_mangle]
pub unsafe extern "C" fn hz_engine_load_model_file(engine: *mut hz_engine, path: *const c_char) -> hz_status {
    with(engine, |e, err, _| {
        if path.is_null() {
            return err.set(HZ_ERR_NULL, "path is NULL");
        }
        // SAFETY: a NUL-terminated string per contract.
        let raw = unsafe { CStr::from_ptr(path) };
        #[cfg(unix)]
        let p = std::path::PathBuf::from(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(
            raw.to_bytes(),
        ));
        #[cfg(not(unix))]
        let p = std::path::PathBuf::from(raw.to_string_lossy().into_owned());
        match read_model_file(&p) {
            Ok(b) => install(e, err, &b),
            Err(m @ ModelError::Io(_)) => err.set(HZ_ERR_IO, m.to_string()),
            Err(m) => err.set(HZ_ERR_MODEL, m.to_string()),
        }
    })
}

/// The engine's last error message (`""` if none). Valid until the next call on this engine; do
/// not free. NULL gives `""`. Poll thread (also from inside its callbacks).
#[no_mangle]
pub unsafe extern "C" fn hz_engine_last_error(engine: *const hz_engine) -> *const c_char {
    guard(c"".as_ptr(), || {
        // SAFETY: NULL or a live engine.
        unsafe { engine.as_ref() }.map_or(c"".as_ptr(), |e| e.err.as_ptr())
    })
}

const _: () = assert!(HZ_ERR_CONFIG != HZ_ERR_INVALID);

// Handles move between threads (docs/design.md §6): pinned here.
const _: fn() = || {
    fn send<T: Send>() {}
    send::<hz_engine>();
    send::<super::producer::hz_producer>();
    send::<super::config::hz_config>();
    send::<super::pool::hz_pool>();
};
