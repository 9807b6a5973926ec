//! What the engine tells the application, in order with the events (DESIGN.md §4).

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
    /// Start (or restart) feeding `stream`'s producer, from `from_pos` (0: from where the
    /// application judges right, e.g. live; the tracker's frontier is in `Engine::tracker`).
    Subscribe {
        /// The stream.
        stream: u32,
        /// Opaque, from the flip that named the stream; empty if none.
        locator: &'a [u8],
        /// Position to read from; 0 = application's choice.
        from_pos: u64,
    },
    /// Stop feeding `stream`: its events are no longer wanted.
    Unsubscribe {
        /// The stream.
        stream: u32,
    },
    /// The active stream changed. Comes right before the first event delivered from `to`.
    Switched {
        /// The stream delivered before.
        from: u32,
        /// The stream delivered now.
        to: u32,
        /// The flip that caused it.
        flip_id: u64,
        /// True when `to` was staged and its window reached back to the switch point.
        seamless: bool,
        /// From consuming the cut-over point to this notice, in clock nanoseconds.
        stall_ns: u64,
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
    /// Events `from_seq ..= to_seq` of `origin` are given up for lost (gap policy `ReportLost`).
    Lost {
        /// The origin.
        origin: u32,
        /// First lost seq.
        from_seq: u64,
        /// Last lost seq.
        to_seq: u64,
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
}

/// Receives events and notices from [`Engine::poll`](super::Engine::poll), in order.
pub trait Handler {
    /// A data event (or an event of a kind the engine does not know), delivered exactly once.
    /// `record` borrows ring memory until this returns.
    fn event(&mut self, stream: u32, record: &Record<'_>);
    /// A notice.
    fn notice(&mut self, notice: &Notice<'_>);
}
