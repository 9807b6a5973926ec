//! The upstream trait a connector implements: open a reader of one stream, position it (an
//! exact position, the live end, or after a given (origin, seq) that only the upstream can
//! find), and read entries in position order with a bounded wait.

use std::time::Duration;

use crate::entry::Entry;

/// Where a reader starts. The driver turns the engine's `StartAt` into one of these, filling
/// in the tracker's frontier where the engine asks for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    /// The first entry at or after this position.
    Pos(u64),
    /// The next entry the upstream receives (the live end).
    Live,
    /// The first entry of `origin` whose seq is above `seq`.
    AfterSeq {
        /// The origin.
        origin: u32,
        /// Its last seq delivered.
        seq: u64,
    },
    /// The first entry, of any origin, beyond this frontier: `(origin, last seq delivered)` for
    /// every origin the engine has delivered; an origin not listed has delivered nothing, and
    /// an empty list means the start of the stream.
    AfterFrontier(Vec<(u32, u64)>),
}

/// Where a seek put the reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seeked {
    /// The first position the next read can return.
    pub pos: u64,
    /// The start lies in a range the upstream no longer has (trimmed, expired, deleted):
    /// reading starts at `pos`, the first entry still there, after a hole the upstream cannot
    /// fill.
    pub trimmed: bool,
}

/// A problem with one entry, reported and skipped: the entry is not delivered (the engine then
/// sees a gap and its bounded recovery reports it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skipped {
    /// The entry's native id has no position in this connector's mapping.
    Unrepresentable {
        /// The id, as the upstream writes it.
        id: String,
    },
    /// The entry's id is not after the previous one (the upstream went backwards: a stream
    /// recreated under the same name, say).
    NotMonotonic {
        /// The position read before.
        prev: u64,
        /// This entry's position.
        pos: u64,
    },
    /// The entry's fields could not be read ([`Layout::decode`](crate::entry::Layout::decode)).
    Malformed {
        /// Its position.
        pos: u64,
        /// Why.
        why: String,
    },
}

/// An upstream failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpstreamError {
    /// The connection failed or was lost; the driver reconnects (with backoff) and seeks again
    /// from the position after the last entry it took.
    Connection(String),
    /// The upstream refused the request (a wrong type, a missing stream...): reported; the
    /// driver retries with backoff, as an operator may fix it.
    Refused(String),
}

/// The upstream name (a key, a stream) configured for engine stream `stream`: `names[stream]`,
/// or a refusal saying there is no `what` for it. What every connector's [`Upstream::open`]
/// and [`Upstream::describe`] look up.
pub fn name_of<'a>(names: &'a [String], stream: u32, what: &str) -> Result<&'a str, UpstreamError> {
    names
        .get(stream as usize)
        .map(String::as_str)
        .ok_or_else(|| UpstreamError::Refused(format!("no {what} for stream {stream}")))
}

/// [`name_of`] for [`Upstream::describe`]: the name, or `<no WHAT for stream N>`.
pub fn describe_name(names: &[String], stream: u32, what: &str) -> String {
    name_of(names, stream, what).map_or_else(|_| format!("<no {what} for stream {stream}>"), str::to_string)
}

impl core::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            UpstreamError::Connection(m) => write!(f, "connection: {m}"),
            UpstreamError::Refused(m) => write!(f, "refused: {m}"),
        }
    }
}

impl std::error::Error for UpstreamError {}

/// An upstream: a source of readers, one per stream. Shared by the driver's reader threads.
pub trait Upstream: Send + Sync + 'static {
    /// A reader of one stream.
    type Reader: Reader;
    /// A name for stream `stream` in reports (a key, a subject).
    fn describe(&self, stream: u32) -> String;
    /// Connects a reader of stream `stream`. It reads nothing until it is positioned.
    fn open(&self, stream: u32) -> Result<Self::Reader, UpstreamError>;
}

/// A reader of one stream, used by one thread.
pub trait Reader: Send + 'static {
    /// Positions the reader at `start`.
    fn seek(&mut self, start: &Start) -> Result<Seeked, UpstreamError>;
    /// Appends up to `max` entries, in position order, from where the reader is, waiting at
    /// most `timeout` for the first (returning none when nothing came). Entries it cannot take
    /// are appended to `skipped` instead, in order with the others.
    fn read(
        &mut self,
        max: usize,
        timeout: Duration,
        out: &mut Vec<Entry>,
        skipped: &mut Vec<Skipped>,
    ) -> Result<(), UpstreamError>;
}
