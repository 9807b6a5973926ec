//! Recorded multi-stream traces: the file `harmonize eval --trace` replays, `harmonize trace
//! --events` writes from a generated scenario and `harmonize follow --record-trace` writes from
//! live streams.
//!
//! # Format, version 1
//!
//! UTF-8 JSON lines (`\n`; a `\r` before it is ignored). Line 1 is the header, then one line
//! per record as the recipient received it:
//!
//! ```text
//! {"format":"harmonizer-trace","version":1,"streams":3,"recipient":7,"initial_stream":0,"archive":"complete","source":"ScenarioParams::test()"}
//! {"arrival_ns":2001310,"stream":1,"pos":1,"origin":0,"seq":1,"ts_ns":999887,"kind":"data","flags":0,"len":0}
//! {"arrival_ns":9003011,"stream":0,"pos":4,"origin":0,"seq":0,"ts_ns":9000000,"kind":"flip","flags":0,"len":49,"flip":{"action":"switch","id":81,"target":1,"selector":"all"},"cause":"load","signal_ns":1200000}
//! ```
//!
//! **Header.** `streams` (1..=16), `recipient` (the id flips select on), `initial_stream`
//! (the active stream at the start), `archive` (`"complete"`: a fetch from the upstream, as a
//! cold switch or a re-read makes, delivers every logical event, also those the stream itself
//! missed, as the generator's archive does; `"stream"`: a fetch delivers what the stream itself
//! holds, as a recorded Redis or NATS stream does), `source` (free text).
//!
//! **Records.** `arrival_ns`: when the record reached the recipient, in ns from the start of
//! the recording (the same clock for every line; per stream non-decreasing); `stream`: `0..streams`; `pos`: its position in its
//! stream (kept for reference: the replay numbers each stream's records from 1 in file order);
//! `origin`, `seq`, `ts_ns`, `flags`: the event header; `kind`: `"data"`, `"flip"` or
//! `"heartbeat"`; `len`: the payload's length (data payloads are not stored; the replay gives
//! them none). A data record's `seq` increases along its stream (from 1; a missing seq is a
//! hole of that stream). A flip record has `flip`, its fields: `action` (`"switch"`,
//! `"announce"`, `"cancel"`, `"switchback"`), `id`, `target`, and optionally
//! `expected_in_ns`, `cutover_pos`, `resume_pos`, `not_before_ns` (0 when absent), `selector`
//! (`"all"`, default; `"ids"` with `ids: [...]`; `"cohort"` with `basis_points` and `salt`) and
//! `locator` (text). A flip that switches the recipient may carry `cause` (a cause name:
//! `announced`, `degradation`, `fail_stop`, `rollout`, `load`, `switchback`, `stall`) and
//! `signal_ns` (when its first warning began, on the `ts_ns` clock): then it counts towards its
//! cause and is *predictable* when `ts_ns − signal_ns ≥ 1 s`. Without a cause, its switch is
//! reported as `unlabelled`, not predictable.
//!
//! Every key is required except those named optional; unknown keys are refused. Limits: one
//! origin (0: the replay's application tracks one sequence), at most [`MAX_RECORDS`] records,
//! [`MAX_LINE`] bytes a line, and arrivals within 7 days of the recording's start
//! ([`MAX_SPAN_NS`]: `arrival_ns` counts from it). A file that breaks a rule is refused with its line number and the
//! problem; nothing in it is trusted before it is checked.
//!
//! **Ground truth.** The recipient's switches are the ones the engine makes on the trace (a
//! replay that never stages finds them; the flips decide, not the staging), dated on the
//! arrival clock when the engine made them; each takes its cause from its flip's line, and its
//! warning keeps the flip's lead `ts_ns − signal_ns` (so `ts_ns` may be on any clock, Unix
//! time as a live recording has it or the recording's own).

use std::collections::HashMap;
use std::io::{BufRead, Write};

use harmonizer_core::engine::MAX_STREAMS;
use harmonizer_core::event::{EventHeader, KIND_DATA, KIND_FLIP, KIND_HEARTBEAT};
use harmonizer_core::flip::{Flip, FlipAction, IdList, Selector};
use serde::{Deserialize, Serialize};

use crate::scenario::{Cause, Trace, TraceRecord, TruthSwitch, NO_FLIP, PREDICTABLE_LEAD_NS};

/// The header's `format`.
pub const FORMAT: &str = "harmonizer-trace";
/// The version this build reads and writes.
pub const VERSION: u32 = 1;
/// Most records a trace may hold (about 2.4 GB of replay memory).
pub const MAX_RECORDS: usize = 50_000_000;
/// Longest line, bytes.
pub const MAX_LINE: usize = 16 * 1024;
/// Latest arrival a trace may hold (7 days from the recording's start, where its clock is 0):
/// the replay's clock starts at 0 and polls at least every 100 ms of it.
pub const MAX_SPAN_NS: u64 = 7 * 86_400 * 1_000_000_000;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderLine {
    format: String,
    version: u32,
    streams: u32,
    recipient: u64,
    initial_stream: u32,
    archive: String,
    source: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordLine {
    arrival_ns: u64,
    stream: u32,
    pos: u64,
    origin: u32,
    seq: u64,
    ts_ns: u64,
    kind: String,
    flags: u16,
    len: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    flip: Option<FlipLine>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cause: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signal_ns: Option<u64>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_all(s: &String) -> bool {
    s == "all"
}

fn all() -> String {
    String::from("all")
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlipLine {
    action: String,
    id: u64,
    target: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    expected_in_ns: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    cutover_pos: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    resume_pos: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    not_before_ns: u64,
    #[serde(default = "all", skip_serializing_if = "is_all")]
    selector: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ids: Vec<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    basis_points: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    salt: Option<u64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    locator: String,
}

/// A trace read from a file: the records, and what its flips say of the switches.
#[derive(Clone, Debug)]
pub struct TraceFile {
    /// The records (`switches` and `episodes` empty until [`TraceFile::resolve`]).
    pub trace: Trace,
    /// `archive: "complete"`.
    pub archive_complete: bool,
    /// The header's source.
    pub source: String,
    /// Per flip id: its `ts_ns` (the earliest of its copies), cause and `signal_ns`.
    pub flips: HashMap<u64, (u64, Option<Cause>, Option<u64>)>,
}

/// Why a trace file was refused: the line (1-based; 0 when it is about the whole file) and the
/// problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceFileError {
    /// The line.
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

impl core::fmt::Display for TraceFileError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.msg)
        } else {
            write!(f, "line {}: {}", self.line, self.msg)
        }
    }
}

impl std::error::Error for TraceFileError {}

fn err(line: usize, msg: impl Into<String>) -> TraceFileError {
    TraceFileError { line, msg: msg.into() }
}

/// Reads one line of at most [`MAX_LINE`] bytes into `buf` (without the `\n` or `\r\n`);
/// `Ok(false)` at the end.
fn read_line(r: &mut dyn BufRead, buf: &mut Vec<u8>, line: usize) -> Result<bool, TraceFileError> {
    buf.clear();
    loop {
        let chunk = r.fill_buf().map_err(|e| err(line, e.to_string()))?;
        if chunk.is_empty() {
            return Ok(!buf.is_empty());
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (chunk.len(), false),
        };
        if buf.len() + take > MAX_LINE {
            return Err(err(line, format!("longer than {MAX_LINE} bytes")));
        }
        buf.extend_from_slice(&chunk[..take]);
        r.consume(take + usize::from(done));
        if done {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(true);
        }
    }
}

/// The flip's encoded payload, checked.
fn encode_flip(f: &FlipLine, line: usize) -> Result<Vec<u8>, TraceFileError> {
    let action = FlipAction::from_name(&f.action).ok_or_else(|| {
        err(line, format!("flip action {:?}: switch, announce, cancel or switchback", f.action))
    })?;
    let selector = match f.selector.as_str() {
        "all" => Selector::All,
        "ids" => Selector::Ids(
            IdList::new(&f.ids).ok_or_else(|| err(line, format!("{} ids: at most 32", f.ids.len())))?,
        ),
        "cohort" => match (f.basis_points, f.salt) {
            (Some(basis_points), Some(salt)) if basis_points <= 10_000 => {
                Selector::Cohort { basis_points, salt }
            }
            _ => return Err(err(line, "a cohort selector needs basis_points (0..=10000) and salt")),
        },
        other => return Err(err(line, format!("selector {other:?}: all, ids or cohort"))),
    };
    if f.selector != "ids" && !f.ids.is_empty() {
        return Err(err(line, "ids without the ids selector"));
    }
    if f.selector != "cohort" && (f.basis_points.is_some() || f.salt.is_some()) {
        return Err(err(line, "basis_points or salt without the cohort selector"));
    }
    let mut flip = Flip::new(action, f.id, f.target);
    flip.expected_in_ns = f.expected_in_ns;
    flip.cutover_pos = f.cutover_pos;
    flip.resume_pos = f.resume_pos;
    flip.not_before_ns = f.not_before_ns;
    flip.selector = selector;
    flip.locator = f.locator.as_bytes();
    flip.to_vec().map_err(|e| err(line, format!("flip: {e}")))
}

/// Reads a trace file (see the module docs), checking everything.
pub fn read(r: &mut dyn BufRead) -> Result<TraceFile, TraceFileError> {
    let mut buf = Vec::new();
    if !read_line(r, &mut buf, 1)? {
        return Err(err(0, "empty file: no header"));
    }
    let h: HeaderLine = serde_json::from_slice(&buf).map_err(|e| err(1, format!("header: {e}")))?;
    if h.format != FORMAT {
        return Err(err(1, format!("format {:?} is not {FORMAT:?}", h.format)));
    }
    if h.version != VERSION {
        return Err(err(1, format!("version {} (this build reads {VERSION})", h.version)));
    }
    if h.streams == 0 || h.streams as usize > MAX_STREAMS {
        return Err(err(1, format!("streams {} outside 1..={MAX_STREAMS}", h.streams)));
    }
    if h.initial_stream >= h.streams {
        return Err(err(
            1,
            format!("initial_stream {} is not below streams {}", h.initial_stream, h.streams),
        ));
    }
    let archive_complete = match h.archive.as_str() {
        "complete" => true,
        "stream" => false,
        other => return Err(err(1, format!("archive {other:?}: complete or stream"))),
    };
    let n = h.streams as usize;
    let mut streams: Vec<Vec<TraceRecord>> = vec![Vec::new(); n];
    let mut last_seq = vec![0u64; n];
    let mut last_arrival = vec![0u64; n];
    let mut payloads: Vec<Vec<u8>> = Vec::new();
    let mut flips: HashMap<u64, (u64, Option<Cause>, Option<u64>)> = HashMap::new();
    let (mut records, mut max_seq, mut end) = (0usize, 0u64, 0u64);
    let mut line = 1;
    while read_line(r, &mut buf, line + 1)? {
        line += 1;
        if buf.is_empty() {
            return Err(err(line, "empty line"));
        }
        let rec: RecordLine = serde_json::from_slice(&buf).map_err(|e| err(line, e.to_string()))?;
        records += 1;
        if records > MAX_RECORDS {
            return Err(err(line, format!("more than {MAX_RECORDS} records")));
        }
        let s = rec.stream as usize;
        if s >= n {
            return Err(err(line, format!("stream {} is not below streams {n}", rec.stream)));
        }
        if rec.origin != 0 {
            return Err(err(line, format!("origin {}: this build replays one origin (0)", rec.origin)));
        }
        if rec.arrival_ns < last_arrival[s] {
            return Err(err(
                line,
                format!("arrival_ns {} before the stream's previous {}", rec.arrival_ns, last_arrival[s]),
            ));
        }
        last_arrival[s] = rec.arrival_ns;
        // The replay's clock starts at 0 and polls at least every 100 ms of it: arrivals count
        // from the recording's start.
        if rec.arrival_ns > MAX_SPAN_NS {
            return Err(err(
                line,
                format!(
                    "arrival_ns {} is more than 7 days: arrivals count from the recording's start",
                    rec.arrival_ns
                ),
            ));
        }
        end = end.max(rec.arrival_ns);
        let kind = match rec.kind.as_str() {
            "data" => KIND_DATA,
            "flip" => KIND_FLIP,
            "heartbeat" => KIND_HEARTBEAT,
            other => return Err(err(line, format!("kind {other:?}: data, flip or heartbeat"))),
        };
        if kind != KIND_FLIP && (rec.flip.is_some() || rec.cause.is_some() || rec.signal_ns.is_some()) {
            return Err(err(line, "flip, cause and signal_ns belong to flip records"));
        }
        let mut flip = NO_FLIP;
        if kind == KIND_DATA {
            if rec.seq <= last_seq[s] {
                return Err(err(
                    line,
                    format!("seq {} does not increase along stream {s} (after {})", rec.seq, last_seq[s]),
                ));
            }
            last_seq[s] = rec.seq;
            max_seq = max_seq.max(rec.seq);
        } else if kind == KIND_FLIP {
            let Some(f) = &rec.flip else { return Err(err(line, "a flip record without its flip")) };
            let bytes = encode_flip(f, line)?;
            let cause = match &rec.cause {
                None => None,
                Some(c) => {
                    Some(Cause::from_name(c).ok_or_else(|| err(line, format!("unknown cause {c:?}")))?)
                }
            };
            let e = flips.entry(f.id).or_insert((rec.ts_ns, cause, rec.signal_ns));
            e.0 = e.0.min(rec.ts_ns);
            e.1 = e.1.or(cause);
            e.2 = e.2.or(rec.signal_ns);
            flip = u32::try_from(payloads.len()).map_err(|_| err(line, "too many flips"))?;
            payloads.push(bytes);
        }
        let pos = streams[s].len() as u64 + 1;
        let header = EventHeader { pos, seq: rec.seq, ts_ns: rec.ts_ns, origin: 0, kind, flags: rec.flags };
        streams[s].push(TraceRecord { arrival_ns: rec.arrival_ns, header, flip });
    }
    if records == 0 {
        return Err(err(0, "no records"));
    }
    Ok(TraceFile {
        trace: Trace {
            recipient_id: h.recipient,
            streams,
            flips: payloads,
            switches: Vec::new(),
            episodes: Vec::new(),
            initial_stream: h.initial_stream,
            duration_ns: end,
            logical_events: max_seq,
        },
        archive_complete,
        source: h.source,
        flips,
    })
}

impl TraceFile {
    /// Fills the trace's ground truth from the switches the engine made on it (failovers
    /// excluded), each with its flip's cause and warning.
    ///
    /// A switch is dated when the engine made it, on the arrival clock the snapshots are taken
    /// on (the recipient cannot know of a switch before its flip arrives), not at the flip's
    /// `ts_ns`: a live recording stamps `ts_ns` on the upstream's clock (Unix time), which has
    /// nothing to do with the arrival clock. The warning keeps its lead: `signal_ns` is the
    /// switch's time less `ts_ns − signal_ns` of the flip (both on the upstream's clock), and
    /// the switch is predictable when that lead is at least 1 s.
    pub fn resolve(&mut self, made: &[crate::replay::Made]) {
        let mut switches: Vec<TruthSwitch> = made
            .iter()
            .filter(|m| m.flip_id != 0)
            .map(|m| {
                let (ts_ns, cause, signal) =
                    self.flips.get(&m.flip_id).copied().unwrap_or((m.at_ns, None, None));
                let lead_ns = ts_ns - signal.unwrap_or(ts_ns).min(ts_ns);
                TruthSwitch {
                    at_ns: m.at_ns,
                    flip_id: m.flip_id,
                    from: m.from,
                    to: m.to,
                    cause: cause.unwrap_or(Cause::Unlabelled),
                    predictable: cause.is_some() && lead_ns >= PREDICTABLE_LEAD_NS,
                    signal_ns: m.at_ns.saturating_sub(lead_ns),
                }
            })
            .collect();
        switches.sort_by_key(|w| w.at_ns);
        self.trace.switches = switches;
    }
}

/// Writes the header line.
pub fn write_header(
    out: &mut dyn Write,
    streams: u32,
    recipient: u64,
    initial_stream: u32,
    archive_complete: bool,
    source: &str,
) -> std::io::Result<()> {
    let h = HeaderLine {
        format: FORMAT.to_owned(),
        version: VERSION,
        streams,
        recipient,
        initial_stream,
        archive: String::from(if archive_complete { "complete" } else { "stream" }),
        source: source.to_owned(),
    };
    serde_json::to_writer(&mut *out, &h)?;
    out.write_all(b"\n")
}

/// Writes one record's line: `header` as received on `stream` at `arrival_ns`; `payload` a
/// flip's payload (decoded into its fields; ignored for other kinds), `len` the payload's
/// length; `label` the cause and warning of the switch a flip makes.
#[allow(clippy::too_many_arguments)]
pub fn write_record(
    out: &mut dyn Write,
    arrival_ns: u64,
    stream: u32,
    header: &EventHeader,
    payload: &[u8],
    len: usize,
    label: Option<(Cause, u64)>,
) -> std::io::Result<()> {
    let kind = match header.kind {
        KIND_FLIP => "flip",
        KIND_HEARTBEAT => "heartbeat",
        _ => "data",
    };
    let flip = if header.kind == KIND_FLIP {
        match Flip::decode(payload) {
            Ok(f) => Some(FlipLine {
                action: f.action.name().to_owned(),
                id: f.flip_id,
                target: f.target,
                expected_in_ns: f.expected_in_ns,
                cutover_pos: f.cutover_pos,
                resume_pos: f.resume_pos,
                not_before_ns: f.not_before_ns,
                selector: String::from(match f.selector {
                    Selector::All => "all",
                    Selector::Ids(_) => "ids",
                    Selector::Cohort { .. } => "cohort",
                }),
                ids: match f.selector {
                    Selector::Ids(ids) => ids.as_slice().to_vec(),
                    _ => Vec::new(),
                },
                basis_points: match f.selector {
                    Selector::Cohort { basis_points, .. } => Some(basis_points),
                    _ => None,
                },
                salt: match f.selector {
                    Selector::Cohort { salt, .. } => Some(salt),
                    _ => None,
                },
                locator: String::from_utf8_lossy(f.locator).into_owned(),
            }),
            // A flip that does not decode is no flip the engine acts on: recorded as data.
            Err(_) => None,
        }
    } else {
        None
    };
    let kind = if header.kind == KIND_FLIP && flip.is_none() { "data" } else { kind };
    let is_flip = flip.is_some();
    let line = RecordLine {
        arrival_ns,
        stream,
        pos: header.pos,
        origin: header.origin,
        seq: header.seq,
        ts_ns: header.ts_ns,
        kind: kind.to_owned(),
        flags: header.flags,
        len: u32::try_from(len).unwrap_or(u32::MAX),
        flip,
        cause: label.filter(|_| is_flip).map(|l| l.0.name().to_owned()),
        signal_ns: label.filter(|_| is_flip).map(|l| l.1),
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}

/// Writes a generated trace as a trace file (`archive: "complete"`, the generator's): every
/// stream's records merged by arrival, the flips of its switches labelled.
pub fn export(trace: &Trace, source: &str, out: &mut dyn Write) -> std::io::Result<()> {
    write_header(out, trace.streams.len() as u32, trace.recipient_id, trace.initial_stream, true, source)?;
    let labels: HashMap<u64, (Cause, u64)> =
        trace.switches.iter().map(|w| (w.flip_id, (w.cause, w.signal_ns))).collect();
    let mut cursors = vec![0usize; trace.streams.len()];
    loop {
        let next = (0..trace.streams.len())
            .filter_map(|s| trace.streams[s].get(cursors[s]).map(|r| (r.arrival_ns, s)))
            .min();
        let Some((_, s)) = next else { return Ok(()) };
        let r = &trace.streams[s][cursors[s]];
        cursors[s] += 1;
        let payload: &[u8] = if r.flip == NO_FLIP { &[] } else { &trace.flips[r.flip as usize] };
        let label = if r.flip == NO_FLIP {
            None
        } else {
            Flip::decode(payload).ok().and_then(|f| labels.get(&f.flip_id).copied())
        };
        write_record(out, r.arrival_ns, s as u32, &r.header, payload, payload.len(), label)?;
    }
}
