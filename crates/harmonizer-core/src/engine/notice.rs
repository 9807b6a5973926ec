//! What the engine tells the application, in order with the events (docs/design.md §4).

use super::verify::PositionPair;
use crate::flip::FlipError;
use crate::ring::Record;

/// Why a flip event was not applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectReason {
    /// The record is malformed.
    Malformed(FlipError),
    /// It names a stream this engine does not have.
    UnknownStream(u32),
    /// SWITCH or SWITCHBACK to the stream that is already active.
    AlreadyActive(u32),
    /// SWITCHBACK with no earlier stream to return to.
    NoPreviousStream,
    /// History, not an instruction: met on a stream just switched to, behind the delivery
    /// frontier (the data event after it was already delivered from another stream) and older
    /// (`ts_ns`) than the flip that made this stream active. It reached only this stream while
    /// another was active. Its id is not consumed: a copy met later at the frontier applies.
    Superseded,
}

impl core::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RejectReason::Malformed(e) => write!(f, "{e}"),
            RejectReason::UnknownStream(s) => write!(f, "flip names unknown stream {s}"),
            RejectReason::AlreadyActive(s) => {
                write!(f, "flip switches to stream {s}, which is already active")
            }
            RejectReason::NoPreviousStream => f.write_str("switchback with no previous stream"),
            RejectReason::Superseded => {
                f.write_str("flip lies behind the delivery frontier and predates the switch to this stream")
            }
        }
    }
}

/// Why an event could not be tracked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadEventReason {
    /// `origin >= max_origins`.
    UnknownOrigin,
}

/// A notice. Borrowed data (a locator) lives in ring memory or the engine and is valid for the
/// duration of the callback only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice<'a> {
    /// Start (or restart) feeding `stream`'s producer, from `from` (docs/engine.md, "Positions
    /// in notices"). `purpose` says why, and for a re-read or a fill which events are wanted.
    Subscribe {
        /// The stream.
        stream: u32,
        /// Opaque, from the flip that named the stream; empty if none.
        locator: &'a [u8],
        /// Where to start: an exact position whenever the engine knows one.
        from: StartAt,
        /// Why the engine asks.
        purpose: Purpose,
    },
    /// Stop feeding `stream`: its events are no longer wanted.
    Unsubscribe {
        /// The stream.
        stream: u32,
    },
    /// The active stream changed. Comes right before the first event the new stream delivers
    /// from its own ring in order (events a candidate filled into a gap may come before it).
    Switched {
        /// The stream delivered before.
        from: u32,
        /// The stream delivered now.
        to: u32,
        /// The flip that caused it (0 for a failover, see `cause`).
        flip_id: u64,
        /// What made the switch.
        cause: SwitchCause,
        /// True when no fetch or re-read was needed: the target was staged and every gap met
        /// before this notice was filled from a staged candidate.
        seamless: bool,
        /// Clock nanoseconds from consuming the cut-over point until delivery of the target is
        /// contiguous again (this notice): a wait for a lagging target and any re-read count.
        stall_ns: u64,
        /// Clock nanoseconds the engine itself spent making the switch (epoch change, roles,
        /// plan): the engine-side cost, a part of `stall_ns`.
        switch_ns: u64,
        /// Events of the overlap whose two copies (`from`'s delivered, `to`'s staged) had the
        /// same digest, while `to` was staged against `from` (docs/verify.md; 0 when
        /// verification is off or the target was not staged).
        verified: u64,
        /// Events of the overlap whose copies differed.
        mismatched: u64,
        /// The cut-over pair: the last event verified before the switch, with its position on
        /// `from` (`from_pos`) and on `to` (`to_pos`).
        matched: Option<PositionPair>,
        /// Position of the last record consumed from `from` before the switch (0: none).
        cut_pos: u64,
        /// Position on `to` of the first event it delivered in order: the event this notice
        /// comes right before (0 when the notice comes before filled events only).
        first_pos: u64,
    },
    /// Content verification (docs/verify.md): the copy of event `(origin, seq)` that staged
    /// `stream` carries at `pos` differs from the copy the active stream delivered from
    /// `active_pos`. Counted in `Stats::mismatches`; under `MismatchPolicy::BlockSwitch` a switch
    /// to `stream` is refused for a while (`SwitchBlocked`).
    Mismatch {
        /// The staged stream.
        stream: u32,
        /// The active stream, which delivered its copy.
        active: u32,
        /// The origin.
        origin: u32,
        /// The seq.
        seq: u64,
        /// The delivered copy's position on `active`.
        active_pos: u64,
        /// The other copy's position on `stream`.
        pos: u64,
    },
    /// The stream switched to showed an anomaly during its probation (`EngineConfig::probation`,
    /// docs/verify.md). When `rolling_back`, a `Switched` with `SwitchCause::Rollback` back to
    /// `previous` follows at once (its notice when delivery from it is contiguous). Counted in
    /// `Stats::probation_failures` (and `Stats::rollbacks`).
    ProbationFailed {
        /// The stream on probation, active.
        stream: u32,
        /// The stream it replaced.
        previous: u32,
        /// What it did wrong.
        anomaly: super::Anomaly,
        /// The engine switches back to `previous` now.
        rolling_back: bool,
    },
    /// With `EngineConfig::dry_run_switches`: the dry run of the switch the engine is about to
    /// make (or refuse), computed just before it by the same rules (docs/verify.md, "The dry
    /// run"). The `Switched` (or `SwitchBlocked`) that follows says what it did.
    DryRun {
        /// The prediction.
        report: &'a super::DryRun,
    },
    /// A switch was refused (`MismatchPolicy::BlockSwitch`): the target carried an event that
    /// differs from the copy delivered, among its last `mismatch_window` events matched. The
    /// recipient stays on `from`. Counted in `Stats::switches_blocked`.
    SwitchBlocked {
        /// The active stream, kept.
        from: u32,
        /// The refused target.
        to: u32,
        /// The flip that asked for it (0 for a failover).
        flip_id: u64,
        /// What asked for it.
        cause: SwitchCause,
        /// Events verified against the target.
        verified: u64,
        /// Events that differed.
        mismatched: u64,
    },
    /// Events `from_seq ..= to_seq` of `origin` are missing on `stream` and no staged candidate
    /// held them.
    Gap {
        /// The stream the gap was seen on.
        stream: u32,
        /// The origin.
        origin: u32,
        /// First missing seq.
        from_seq: u64,
        /// Last missing seq.
        to_seq: u64,
    },
    /// Events `from_seq ..= to_seq` of `origin` are given up for lost: gap policy `ReportLost`,
    /// or a recovery that found no stream holding them ([`Exhausted::ReportLost`]).
    ///
    /// [`Exhausted::ReportLost`]: super::Exhausted::ReportLost
    Lost {
        /// The origin.
        origin: u32,
        /// First lost seq.
        from_seq: u64,
        /// Last lost seq.
        to_seq: u64,
    },
    /// A gap's recovery ran out of rounds and streams ([`Exhausted::Stuck`]): delivery of the
    /// active stream stops before `to_seq + 1` until a staged candidate brings the events or the
    /// application decides (`Engine::retry_gap`, `Engine::give_up_gap`). Reported once per gap.
    ///
    /// [`Exhausted::Stuck`]: super::Exhausted::Stuck
    Stuck {
        /// The active stream.
        stream: u32,
        /// The origin.
        origin: u32,
        /// First missing seq.
        from_seq: u64,
        /// Last missing seq.
        to_seq: u64,
        /// Re-read and fill rounds tried.
        rounds: u32,
    },
    /// The conflation tier (docs/staging.md, "Tiers"): the hole `from_seq ..= to_seq` of
    /// `origin` on `stream` (the active stream; its staged window had evicted them) held only
    /// conflatable events. Of each conflation key, the hole's latest event follows this notice
    /// (or, if the stream carries a later one after the hole, none does); the other `dropped`
    /// events of the range are not delivered. Exactly those seqs of the range not delivered
    /// next are the dropped ones. Unmarked events are never conflated.
    Conflated {
        /// The active stream.
        stream: u32,
        /// The origin.
        origin: u32,
        /// First seq of the range.
        from_seq: u64,
        /// Last seq of the range.
        to_seq: u64,
        /// Events of the range not delivered.
        dropped: u64,
    },
    /// The active stream has delivered nothing for `silent_ns` while a staged candidate holds
    /// events beyond the delivery frontier. Reported once per silence; delivery from the active
    /// stream re-arms it.
    ActiveSilent {
        /// The active stream.
        stream: u32,
        /// Clock nanoseconds since the active stream last delivered or was switched to.
        silent_ns: u64,
        /// The candidate furthest ahead.
        candidate: u32,
        /// Records the candidate holds beyond the frontier.
        lead_events: u64,
        /// Upstream time (`ts_ns`) of its newest record minus that of the last event delivered.
        lead_ns: u64,
    },
    /// A flip event was not applied.
    FlipRejected {
        /// The stream it arrived on.
        stream: u32,
        /// Its position there.
        pos: u64,
        /// Why.
        reason: RejectReason,
    },
    /// An event the engine cannot track was not delivered.
    BadEvent {
        /// The stream it arrived on.
        stream: u32,
        /// Its position.
        pos: u64,
        /// Its origin.
        origin: u32,
        /// Its seq.
        seq: u64,
        /// Why.
        reason: BadEventReason,
    },
    /// The producer of a file-backed stream is gone: no process holds the ring file's producer
    /// lock any more. Reported once per producer generation. A slow or stopped producer still
    /// holds the lock and is never reported. Records it published stay and are delivered; a
    /// new producer that opens the file goes on from them.
    ProducerGone {
        /// The stream.
        stream: u32,
        /// The producer's generation on the file (1 for its first producer).
        generation: u64,
        /// Its process id, as it wrote it.
        pid: u64,
        /// True when it died without closing the file (a crash, `SIGKILL`); false when it
        /// closed it (dropped its producer).
        crashed: bool,
    },
    /// The ring file of a file-backed stream shrank under its mapping (another process
    /// truncated it). The engine stopped reading it and the stream went back to its in-process
    /// ring, empty, in the same role; attach a new file to go on. Records still in the file are
    /// not delivered from it.
    RingFileTruncated {
        /// The stream.
        stream: u32,
        /// The file's length seen.
        len: u64,
        /// The length the ring needs.
        needed: u64,
    },
    /// The ring file of a file-backed stream holds something no producer following the
    /// protocol writes (another process scribbled on it, `ring::Corruption`). Everything before
    /// `offset` was read; nothing at or after it is read from the file. The engine set the
    /// file's ring idle (its producer is told `NotSubscribed`) and the stream went back to its
    /// in-process ring, empty, in the same role; attach a new file to go on. Counted in
    /// `Stats::rings_corrupt`.
    RingCorrupt {
        /// The stream.
        stream: u32,
        /// The ring position (bytes from the ring's start, mod 2^61) where it was found.
        offset: u64,
        /// What was wrong.
        what: crate::ring::Corruption,
    },
}

/// Where a subscription starts. Never a bare 0 that two readers could read two ways: an exact
/// position whenever the engine can know it, otherwise a typed instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt {
    /// Read from this exact position: the first event wanted is the first at or after it.
    Pos(u64),
    /// From the live end: the next event the upstream produces (staging a candidate; the first
    /// subscription of a recipient with no checkpoint).
    Live,
    /// From the first event of `origin` whose seq is above `seq` (the engine has not seen that
    /// origin on this stream, so it cannot name the position).
    AfterSeq {
        /// The origin.
        origin: u32,
        /// Its last seq delivered.
        seq: u64,
    },
    /// From the first event, of any origin, that lies beyond the tracker's frontier
    /// (`Engine::tracker`; from the start of the stream when nothing was delivered yet). Used
    /// when several origins matter and the engine has not seen all of them on this stream.
    AfterFrontier,
}

/// Why a `Subscribe` was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// The stream active at start (first poll).
    Initial,
    /// A candidate is being staged (pre-buffered).
    Stage,
    /// A switch made this stream active and it was not staged (a cold switch).
    Switch,
    /// The active stream has a gap: read it again from `from`, to bring `from_seq ..= to_seq`
    /// of `origin`.
    ReRead {
        /// The origin.
        origin: u32,
        /// First missing seq.
        from_seq: u64,
        /// Last missing seq.
        to_seq: u64,
    },
    /// The active stream was skipped past a hole that is now closed (filled from another
    /// stream, or reported lost): read it again from `from`, before the hole, to bring the
    /// events after it.
    Resume {
        /// The origin whose hole it was.
        origin: u32,
    },
    /// Another stream may hold events the active stream lacks: feed it (it is staged for the
    /// purpose) from `from` until `to_seq` of `origin` has passed; an `Unsubscribe` follows
    /// when it is no longer wanted.
    Fill {
        /// The origin.
        origin: u32,
        /// First missing seq.
        from_seq: u64,
        /// Last missing seq.
        to_seq: u64,
    },
}

/// What made a switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwitchCause {
    /// A SWITCH or SWITCHBACK flip for this recipient.
    Flip,
    /// The engine failed over: the active stream was silent past `Liveness::silence_ns` while
    /// this candidate advanced, and `Liveness::failover_on_silence` is set.
    Silence,
    /// The engine rolled back: the stream switched to showed an anomaly during its probation
    /// (`Notice::ProbationFailed`), and this is the stream it left.
    Rollback,
}

/// Receives events and notices from [`Engine::poll`](super::Engine::poll), in order.
pub trait Handler {
    /// A data event (or an event of a kind the engine does not know), delivered exactly once.
    /// `record` borrows ring memory until this returns.
    fn event(&mut self, stream: u32, record: &Record<'_>);
    /// An event delivered from a staged candidate's window to fill a gap in the active stream
    /// (A/B arbitration), exactly once and in order like any other. `record` borrows the
    /// candidate's ring until this returns and is never lent past the call (`poll_holding`).
    /// Such events may come before the `Switched` notice of a switch in flight. Default: handled
    /// as [`event`](Handler::event).
    fn filled(&mut self, stream: u32, record: &Record<'_>) {
        self.event(stream, record);
    }
    /// A notice.
    fn notice(&mut self, notice: &Notice<'_>);
}
