//! The commands for real streams: `follow` (a recipient on Redis Streams or NATS JetStream, with
//! a live table), `publish` (a test publisher writing the same logical events to several
//! streams, with delays, jitter, outages, holes and flips) and `flip send` (one flip record into
//! real streams). docs/connectors.md is the guide.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use harmonizer_connect::{ArrivalTap, Driver, DriverOptions, Report, Upstream};
use harmonizer_core::engine::{
    AlwaysStage, ArmingPolicy, Engine, EngineConfig, Handler, ManualStage, Notice,
};
use harmonizer_core::event::{EventHeader, KIND_DATA, KIND_FLIP};
use harmonizer_core::flip::{Flip, FlipAction, Selector};
use harmonizer_core::ring::Record;
use harmonizer_nats::{NatsPublisher, NatsUpstream};
use harmonizer_redis::{RedisPublisher, RedisUpstream};
use serde::Serialize;

use crate::predictor::parse_u64;
use harmonizer_core::predict::policy::default_model;
use harmonizer_core::predict::{
    LabelledRow, LearnConfig, Model, OnlineConfig, Predictor, PredictorConfig, Preset, N_FEATURES,
};
use std::path::PathBuf;

/// Which server, where.
#[derive(Args, Clone)]
#[group(required = true, multiple = false)]
pub struct ServerArgs {
    /// A Redis server (`redis://host:port/`): streams are stream keys.
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    /// A NATS server with JetStream (`nats://host:port`): streams are JetStream streams, each
    /// on the subject of its name (`publish` makes them when missing).
    #[arg(long, value_name = "URL")]
    pub nats: Option<String>,
}

/// Something that writes entries into named streams.
trait Publish {
    fn publish(&mut self, stream: &str, header: &EventHeader, payload: &[u8]) -> Result<u64, String>;
}

impl Publish for RedisPublisher {
    fn publish(&mut self, stream: &str, header: &EventHeader, payload: &[u8]) -> Result<u64, String> {
        RedisPublisher::publish(self, stream, header, payload).map_err(|e| format!("{stream}: {e}"))
    }
}

impl Publish for NatsPublisher {
    fn publish(&mut self, stream: &str, header: &EventHeader, payload: &[u8]) -> Result<u64, String> {
        NatsPublisher::publish(self, stream, header, payload).map_err(|e| format!("{stream}: {e}"))
    }
}

impl ServerArgs {
    /// A writer to the server, with `streams` made where the server needs that.
    fn publisher(&self, streams: &[String]) -> Result<Box<dyn Publish + Send>, String> {
        if let Some(url) = &self.redis {
            Ok(Box::new(RedisPublisher::new(url).map_err(|e| format!("{url}: {e}"))?))
        } else {
            let url = self.nats.as_deref().unwrap_or_default();
            let p = NatsPublisher::new(url).map_err(|e| format!("{url}: {e}"))?;
            for s in streams {
                p.ensure_stream(s).map_err(|e| format!("{url}: stream {s}: {e}"))?;
            }
            Ok(Box::new(p))
        }
    }
}

// ---- flip send ----------------------------------------------------------------------------

/// `harmonize flip send`.
#[derive(Args)]
pub struct SendArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// A stream to write the flip into (repeat for several: the same record into each).
    #[arg(long = "stream", value_name = "NAME", required = true)]
    streams: Vec<String>,
    #[command(flatten)]
    pub fields: crate::flip::FlipFields,
}

/// Writes `record` into each stream; one line per stream with the entry's position.
pub fn send_flip(a: &SendArgs, record: Vec<u8>) -> Result<String, String> {
    let mut p = a.server.publisher(&a.streams)?;
    let header = EventHeader { pos: 0, seq: 0, ts_ns: now_ns(), origin: 0, kind: KIND_FLIP, flags: 0 };
    let mut out = String::new();
    for s in &a.streams {
        let pos = p.publish(s, &header, &record)?;
        out.push_str(&format!("{s}: flip written at position {pos}\n"));
    }
    Ok(out)
}

fn now_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

// ---- publish ------------------------------------------------------------------------------

/// `harmonize publish`.
#[derive(Args)]
pub struct PublishArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The streams, comma-separated: each gets the same logical events.
    #[arg(long, value_name = "NAME,...", value_delimiter = ',', required = true)]
    streams: Vec<String>,
    /// How many events (seqs `--first-seq` on).
    #[arg(long, value_name = "N", default_value = "1000", value_parser = parse_u64)]
    events: u64,
    /// The first seq.
    #[arg(long, value_name = "SEQ", default_value = "1", value_parser = parse_u64)]
    first_seq: u64,
    /// Events per second per stream (0: as fast as the server takes them).
    #[arg(long, value_name = "N", default_value = "1000", value_parser = parse_u64)]
    rate: u64,
    /// The events' origin.
    #[arg(long, value_name = "ORIGIN", default_value = "0", value_parser = parse_u64)]
    origin: u64,
    /// Payload bytes per event (`event <seq>`, padded with `.`).
    #[arg(long, value_name = "BYTES", default_value = "16", value_parser = parse_u64)]
    payload_bytes: u64,
    /// A stream that lags: `NAME=MS` writes each of its events MS milliseconds late.
    #[arg(long, value_name = "NAME=MS")]
    delay: Vec<String>,
    /// Random extra delay per event, up to MS milliseconds (each stream its own).
    #[arg(long, value_name = "MS", default_value = "0", value_parser = parse_u64)]
    jitter: u64,
    /// A stream that misses events for good: `NAME=FROM..TO` (seqs, inclusive).
    #[arg(long, value_name = "NAME=FROM..TO")]
    hole: Vec<String>,
    /// A stream whose writer stops: `NAME=FROM..TO` writes nothing from seq FROM until TO's
    /// time, then catches up (the events come late, none lost).
    #[arg(long, value_name = "NAME=FROM..TO")]
    outage: Vec<String>,
    /// A flip written into every stream right before an event: `SEQ=ACTION:TARGET:ID` (ACTION:
    /// switch, announce, cancel, switchback).
    #[arg(long, value_name = "SEQ=ACTION:TARGET:ID")]
    flip: Vec<String>,
    /// Seed of the jitter.
    #[arg(long, value_name = "N", default_value = "1", value_parser = parse_u64)]
    seed: u64,
}

/// One stream's plan: what to write, and when (seconds after the start).
struct Plan {
    stream: String,
    items: Vec<(f64, EventHeader, Vec<u8>)>,
}

fn parse_range(spec: &str, what: &str) -> Result<(String, u64, u64), String> {
    let (name, range) =
        spec.split_once('=').ok_or_else(|| format!("--{what} {spec}: expected NAME=FROM..TO"))?;
    let (a, b) = range.split_once("..").ok_or_else(|| format!("--{what} {spec}: expected FROM..TO"))?;
    let (a, b) = (parse_u64(a)?, parse_u64(b)?);
    if a > b {
        return Err(format!("--{what} {spec}: FROM is above TO"));
    }
    Ok((name.to_string(), a, b))
}

fn parse_flip(spec: &str) -> Result<(u64, Vec<u8>), String> {
    let bad = || format!("--flip {spec}: expected SEQ=ACTION:TARGET:ID, e.g. 500=switch:1:7");
    let (seq, rest) = spec.split_once('=').ok_or_else(bad)?;
    let parts: Vec<&str> = rest.split(':').collect();
    let [action, target, id] = parts[..] else { return Err(bad()) };
    let action =
        FlipAction::from_name(action).ok_or_else(|| format!("--flip {spec}: unknown action {action}"))?;
    let target = u32::try_from(parse_u64(target)?).map_err(|_| bad())?;
    let flip = Flip { selector: Selector::All, ..Flip::new(action, parse_u64(id)?, target) };
    Ok((parse_u64(seq)?, flip.to_vec().map_err(|e| format!("--flip {spec}: {e}"))?))
}

/// A small deterministic generator for the jitter (splitmix64).
fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn plans(a: &PublishArgs) -> Result<Vec<Plan>, String> {
    let origin =
        u32::try_from(a.origin).map_err(|_| format!("--origin {} is larger than a u32", a.origin))?;
    let mut delays = std::collections::HashMap::new();
    for d in &a.delay {
        let (name, ms) = d.split_once('=').ok_or_else(|| format!("--delay {d}: expected NAME=MS"))?;
        delays.insert(name.to_string(), parse_u64(ms)? as f64 / 1000.0);
    }
    let holes: Vec<_> = a.hole.iter().map(|h| parse_range(h, "hole")).collect::<Result<_, _>>()?;
    let outages: Vec<_> = a.outage.iter().map(|o| parse_range(o, "outage")).collect::<Result<_, _>>()?;
    let mut flips: Vec<_> = a.flip.iter().map(|f| parse_flip(f)).collect::<Result<_, _>>()?;
    flips.sort_by_key(|f| f.0);
    for name in delays.keys().chain(holes.iter().map(|h| &h.0)).chain(outages.iter().map(|o| &o.0)) {
        if !a.streams.contains(name) {
            return Err(format!("{name} is not one of --streams"));
        }
    }
    let at = |seq: u64| if a.rate == 0 { 0.0 } else { (seq - a.first_seq) as f64 / a.rate as f64 };
    let last = a.first_seq + a.events.saturating_sub(1);
    let mut out = Vec::new();
    for (i, stream) in a.streams.iter().enumerate() {
        let delay = delays.get(stream).copied().unwrap_or(0.0);
        let mut rng = a.seed ^ (i as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407);
        let mut items = Vec::new();
        for seq in a.first_seq..=last {
            let mut t = at(seq) + delay;
            if a.jitter > 0 {
                t += (splitmix(&mut rng) % (a.jitter * 1000)) as f64 / 1e6;
            }
            if let Some(o) = outages.iter().find(|o| &o.0 == stream && (o.1..=o.2).contains(&seq)) {
                t = t.max(at(o.2) + delay);
            }
            for f in flips.iter().filter(|f| f.0 == seq) {
                let h = EventHeader { pos: 0, seq: 0, ts_ns: 0, origin: 0, kind: KIND_FLIP, flags: 0 };
                items.push((t, h, f.1.clone()));
            }
            if holes.iter().any(|h| &h.0 == stream && (h.1..=h.2).contains(&seq)) {
                continue;
            }
            let mut payload = format!("event {seq}").into_bytes();
            payload.resize(a.payload_bytes as usize, b'.');
            let h = EventHeader { pos: 0, seq, ts_ns: seq * 1_000_000, origin, kind: KIND_DATA, flags: 0 };
            items.push((t, h, payload));
        }
        // Stable: an outage's catch-up keeps the order of seqs.
        items.sort_by(|x, y| x.0.total_cmp(&y.0));
        out.push(Plan { stream: stream.clone(), items });
    }
    Ok(out)
}

/// Writes the plans, one thread per stream, each item at its time.
pub fn run_publish(a: PublishArgs) -> Result<(), String> {
    let plans = plans(&a)?;
    let start = Instant::now();
    let mut threads = Vec::new();
    for plan in plans {
        let mut p = a.server.publisher(std::slice::from_ref(&plan.stream))?;
        threads.push(std::thread::spawn(move || -> Result<(String, usize, u64), String> {
            let mut last_pos = 0;
            for (t, h, payload) in &plan.items {
                let due = start + Duration::from_secs_f64(*t);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                last_pos = p.publish(&plan.stream, h, payload)?;
            }
            Ok((plan.stream, plan.items.len(), last_pos))
        }));
    }
    for t in threads {
        let (stream, n, pos) = t.join().map_err(|_| "a writer thread panicked".to_string())??;
        println!("{stream}: {n} entries written, the last at position {pos}");
    }
    println!("published in {:.2} s", start.elapsed().as_secs_f64());
    Ok(())
}

// ---- follow -------------------------------------------------------------------------------

/// Where the initial stream starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum From {
    /// From the next entry written (the engine's default).
    Live,
    /// From the first entry the stream holds.
    Start,
}

/// Which streams the engine stages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Staging {
    /// Announced streams, armed streams and the switchback target (`ManualStage`).
    Manual,
    /// Every stream, all the time (`AlwaysStage`).
    Always,
    /// The predictor with the shipped model (or `--model`), `--preset`'s threshold.
    Predictor,
}

/// `harmonize follow`.
#[derive(Args)]
pub struct FollowArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The streams, comma-separated: stream `i` of the engine (and of flips) is the i-th.
    #[arg(long, value_name = "NAME,...", value_delimiter = ',', required = true)]
    streams: Vec<String>,
    /// This recipient's id (flips with an id list or a cohort select on it).
    #[arg(long, value_name = "ID", default_value = "1", value_parser = parse_u64)]
    recipient: u64,
    /// Where the initial stream (the first) starts.
    #[arg(long, value_enum, default_value = "live")]
    from: From,
    /// Which streams are staged ahead of a switch.
    #[arg(long, value_enum, default_value = "manual")]
    staging: Staging,
    /// Stop after this many events (default: run until --seconds, or forever).
    #[arg(long, value_name = "N", value_parser = parse_u64)]
    events: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "S")]
    seconds: Option<f64>,
    /// Seconds between two lines of the live table.
    #[arg(long, value_name = "S", default_value = "1")]
    interval: f64,
    /// JSON lines instead of the table: one object per interval (`"type":"tick"`), per notice
    /// and report that matters (`"notice"`, `"report"`), and a final `"summary"`.
    #[arg(long)]
    json: bool,
    /// Print every delivered event (stream, seq, payload) on standard output.
    #[arg(long)]
    print_events: bool,
    /// With `--staging predictor`: its preset (conservative, balanced, aggressive).
    #[arg(long, value_name = "NAME", default_value = "aggressive", value_parser = parse_preset)]
    preset: Preset,
    /// With `--staging predictor`: a model file to start from instead of the shipped model.
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,
    /// With `--staging predictor`: record the predictor's labelled feature snapshots (every
    /// 100 ms, labelled one horizon later) into FILE, the history `harmonize train` reads. Rows
    /// whose horizon has not passed when follow stops are not written (their label is unknown).
    #[arg(long, value_name = "FILE")]
    record_history: Option<PathBuf>,
    /// The history's encoding.
    #[arg(long, value_enum, default_value = "csv")]
    history_format: crate::history::Encoding,
    /// With `--staging predictor`: the online mode (the model learns from its own outcomes as it
    /// runs; OnlineConfig::default()).
    #[arg(long)]
    online: bool,
    /// Record every record read from every stream, with its arrival time, as a trace file
    /// (JSON lines, `archive: "stream"`; the format `harmonize eval --trace` replays: `harmonize
    /// eval --help`). Needs `--staging always`, so every stream is read all the time.
    /// Re-read records are written once. Flips carry no cause: add `cause`/`signal_ns` to label
    /// them.
    #[arg(long, value_name = "FILE")]
    record_trace: Option<PathBuf>,
    /// With `--staging predictor`: write the model as it is at the end (adapted, with
    /// `--online`) to FILE, a model file `--model` and `hz_engine_load_model` read.
    #[arg(long, value_name = "FILE")]
    save_model: Option<PathBuf>,
}

/// `--record-trace`: the readers' tap sends each arrival here (bounded: what does not fit is
/// counted, and the summary says the trace is incomplete); the main loop writes the lines.
struct TraceRecorder {
    rx: std::sync::mpsc::Receiver<(u64, u32, EventHeader, usize, Vec<u8>)>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
    out: std::io::BufWriter<std::fs::File>,
    name: String,
    /// Per stream: the last data seq written, and the flips written (a re-read reads them
    /// again; the trace holds each record once).
    last_seq: Vec<u64>,
    flips: std::collections::HashSet<(u32, u64)>,
    written: u64,
}

impl TraceRecorder {
    fn create(
        path: &std::path::Path,
        streams: u32,
        recipient: u64,
        source: &str,
    ) -> Result<(Self, ArrivalTap), String> {
        let name = path.display().to_string();
        let f = std::fs::File::create(path).map_err(|e| format!("{name}: {e}"))?;
        let mut out = std::io::BufWriter::new(f);
        harmonizer_sim::tracefile::write_header(&mut out, streams, recipient, 0, false, source)
            .map_err(|e| format!("{name}: {e}"))?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<(u64, u32, EventHeader, usize, Vec<u8>)>(1 << 16);
        let dropped = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let d = Arc::clone(&dropped);
        let clock = harmonizer_core::clock::MonotonicClock::new();
        let tap = ArrivalTap(Arc::new(move |stream, h: &EventHeader, payload: &[u8]| {
            use harmonizer_core::clock::Clock as _;
            // A flip's payload is recorded (decoded); a data payload only by its length.
            let bytes = if h.kind == KIND_FLIP { payload.to_vec() } else { Vec::new() };
            if tx.try_send((clock.now_ns(), stream, *h, payload.len(), bytes)).is_err() {
                d.fetch_add(1, Ordering::Relaxed);
            }
        }));
        let rec = TraceRecorder {
            rx,
            dropped,
            out,
            name,
            last_seq: vec![0; streams as usize],
            flips: Default::default(),
            written: 0,
        };
        Ok((rec, tap))
    }

    fn drain(&mut self) -> Result<(), String> {
        while let Ok((t, stream, h, len, bytes)) = self.rx.try_recv() {
            if h.origin != 0 {
                // Refused here rather than written into a file eval --trace would refuse.
                return Err(format!(
                    "{}: stream {stream} carries origin {}: a trace file (format version 1) holds \
                     one origin, 0, so this feed cannot be recorded",
                    self.name, h.origin
                ));
            }
            if h.kind == KIND_FLIP {
                let Ok(f) = Flip::decode(&bytes) else { continue };
                if !self.flips.insert((stream, f.flip_id)) {
                    continue;
                }
            } else if h.kind == KIND_DATA {
                let s = stream as usize;
                if h.seq <= self.last_seq[s] {
                    continue; // read again by a re-read
                }
                self.last_seq[s] = h.seq;
            }
            harmonizer_sim::tracefile::write_record(&mut self.out, t, stream, &h, &bytes, len, None)
                .map_err(|e| format!("{}: {e}", self.name))?;
            self.written += 1;
        }
        Ok(())
    }
}

fn parse_preset(s: &str) -> Result<Preset, String> {
    Preset::from_name(s).ok_or_else(|| format!("unknown preset {s:?}: conservative, balanced or aggressive"))
}

/// The history `--record-history` writes: rows go to `FILE.part` as they are drained (memory
/// stays bounded however long follow runs); at the end the header, which needs the span,
/// is written to FILE and the rows copied after it.
struct HistoryFile {
    path: PathBuf,
    part: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
    enc: crate::history::Encoding,
    line: String,
    rows: Vec<LabelledRow>,
    first_ns: Option<u64>,
    last_ns: u64,
    written: u64,
}

impl HistoryFile {
    fn create(path: &std::path::Path, enc: crate::history::Encoding) -> Result<Self, String> {
        let mut part = path.as_os_str().to_owned();
        part.push(".part");
        let part = PathBuf::from(part);
        let f = std::fs::File::create(&part).map_err(|e| format!("{}: {e}", part.display()))?;
        Ok(HistoryFile {
            path: path.to_owned(),
            part,
            out: std::io::BufWriter::new(f),
            enc,
            line: String::new(),
            rows: vec![LabelledRow { t_ns: 0, stream: 0, label: false, features: [0.0; N_FEATURES] }; 256],
            first_ns: None,
            last_ns: 0,
            written: 0,
        })
    }

    /// Drains the predictor's rows into the part file; times from the first row.
    fn drain(&mut self, p: &mut Predictor) -> Result<(), String> {
        loop {
            let n = p.drain_history(&mut self.rows);
            for r in &self.rows[..n] {
                let first = *self.first_ns.get_or_insert(r.t_ns);
                self.last_ns = r.t_ns;
                crate::history::write_row(
                    &mut self.out,
                    self.enc,
                    &mut self.line,
                    r.t_ns - first,
                    r.stream,
                    r.label,
                    &r.features,
                )
                .map_err(|e| format!("{}: {e}", self.part.display()))?;
                self.written += 1;
            }
            if n < self.rows.len() {
                return Ok(());
            }
        }
    }

    /// Writes FILE: the header, then the rows. Returns how many rows.
    fn finish(mut self, horizon_ns: u64, every_ns: u64, source: String) -> Result<u64, String> {
        use std::io::Write as _;
        let part_err = |e: std::io::Error| format!("{}: {e}", self.part.display());
        self.out.flush().map_err(part_err)?;
        let span = self.last_ns - self.first_ns.unwrap_or(self.last_ns);
        let header = crate::history::Header {
            duration_ns: span + every_ns,
            horizon_ns,
            snapshot_every_ns: every_ns,
            source,
        };
        let name = self.path.display().to_string();
        let f = std::fs::File::create(&self.path).map_err(|e| format!("{name}: {e}"))?;
        let mut out = std::io::BufWriter::new(f);
        crate::history::write_header(&mut out, self.enc, &header).map_err(|e| format!("{name}: {e}"))?;
        let mut rows =
            std::fs::File::open(&self.part).map_err(|e| format!("{}: {e}", self.part.display()))?;
        std::io::copy(&mut rows, &mut out).map_err(|e| format!("{name}: {e}"))?;
        out.flush().map_err(|e| format!("{name}: {e}"))?;
        let _ = std::fs::remove_file(&self.part);
        Ok(self.written)
    }
}

/// What `follow` counts.
#[derive(Default, Serialize)]
struct Totals {
    delivered: u64,
    /// Events whose seq was not the one after the last of its origin (a gap the engine
    /// reported, or an exactly-once violation when `duplicates` or `out_of_order` is not 0).
    duplicates: u64,
    out_of_order: u64,
    switches_seamless: u64,
    switches_cold: u64,
    failovers: u64,
    stall_last_ms: f64,
    stall_max_ms: f64,
    gaps: u64,
    lost_events: u64,
    stuck: u64,
    silences: u64,
    flips_rejected: u64,
    bad_events: u64,
    reports: u64,
}

struct Follower {
    t: Totals,
    last: std::collections::HashMap<u32, u64>,
    json: bool,
    print_events: bool,
    /// Lines to print after the poll (notices), so the handler stays cheap.
    lines: Vec<String>,
}

impl Handler for Follower {
    fn event(&mut self, stream: u32, r: &Record<'_>) {
        let h = r.header;
        self.t.delivered += 1;
        match self.last.insert(h.origin, h.seq) {
            Some(prev) if h.seq <= prev => {
                if h.seq == prev {
                    self.t.duplicates += 1;
                } else {
                    self.t.out_of_order += 1;
                }
            }
            _ => {}
        }
        if self.print_events {
            println!("{stream}\t{}\t{}\t{}", h.origin, h.seq, String::from_utf8_lossy(r.payload));
        }
    }
    fn notice(&mut self, n: &Notice<'_>) {
        let line = match *n {
            Notice::Switched { from, to, flip_id, cause, seamless, stall_ns, .. } => {
                if seamless {
                    self.t.switches_seamless += 1;
                } else {
                    self.t.switches_cold += 1;
                }
                if flip_id == 0 {
                    self.t.failovers += 1;
                }
                let ms = stall_ns as f64 / 1e6;
                self.t.stall_last_ms = ms;
                self.t.stall_max_ms = self.t.stall_max_ms.max(ms);
                if self.json {
                    serde_json::json!({"type": "notice", "kind": "switched", "from": from, "to": to, "flip_id": flip_id,
                        "cause": format!("{cause:?}").to_lowercase(), "seamless": seamless, "stall_ms": ms})
                    .to_string()
                } else {
                    format!(
                        "switched {from} -> {to} (flip {flip_id}, {}), stall {ms:.3} ms",
                        if seamless { "seamless" } else { "cold" }
                    )
                }
            }
            Notice::Gap { stream, origin, from_seq, to_seq } => {
                self.t.gaps += 1;
                self.fmt(
                    "gap",
                    format!("stream {stream}: origin {origin} seqs {from_seq}..={to_seq} missing"),
                )
            }
            Notice::Lost { origin, from_seq, to_seq } => {
                self.t.lost_events += to_seq - from_seq + 1;
                self.fmt("lost", format!("origin {origin} seqs {from_seq}..={to_seq} given up for lost"))
            }
            Notice::Conflated { stream, origin, from_seq, to_seq, dropped } => self.fmt(
                "conflated",
                format!(
                    "stream {stream}: origin {origin} seqs {from_seq}..={to_seq}, {dropped} not delivered"
                ),
            ),
            Notice::Stuck { stream, origin, from_seq, to_seq, rounds } => {
                self.t.stuck += 1;
                self.fmt(
                    "stuck",
                    format!("stream {stream}: origin {origin} seqs {from_seq}..={to_seq}, {rounds} rounds"),
                )
            }
            Notice::ActiveSilent { stream, silent_ns, candidate, .. } => {
                self.t.silences += 1;
                self.fmt(
                    "silent",
                    format!(
                        "stream {stream} silent {} ms; stream {candidate} is ahead",
                        silent_ns / 1_000_000
                    ),
                )
            }
            Notice::FlipRejected { stream, pos, reason } => {
                self.t.flips_rejected += 1;
                self.fmt("flip_rejected", format!("stream {stream} pos {pos}: {reason}"))
            }
            Notice::BadEvent { stream, pos, .. } => {
                self.t.bad_events += 1;
                self.fmt("bad_event", format!("stream {stream} pos {pos}"))
            }
            _ => return,
        };
        self.lines.push(line);
    }
}

impl Follower {
    fn fmt(&self, kind: &str, text: String) -> String {
        if self.json {
            serde_json::json!({"type": "notice", "kind": kind, "text": text}).to_string()
        } else {
            format!("{kind}: {text}")
        }
    }
}

/// Runs a recipient on real streams until `--events`, `--seconds`, or SIGINT/SIGTERM.
pub fn run_follow(a: FollowArgs) -> Result<(), String> {
    let n = u32::try_from(a.streams.len()).map_err(|_| "too many --streams".to_string())?;
    let (engine, producers) = {
        let cfg = EngineConfig::new(a.recipient, n, 1 << 22, 1 << 16);
        let predictor_only =
            a.record_history.is_some() || a.online || a.save_model.is_some() || a.model.is_some();
        if predictor_only && a.staging != Staging::Predictor {
            return Err(String::from(
                "--model, --record-history, --online and --save-model are the predictor's: add --staging predictor",
            ));
        }
        let policy: Box<dyn ArmingPolicy> = match a.staging {
            Staging::Manual => Box::new(ManualStage),
            Staging::Always => Box::new(AlwaysStage),
            Staging::Predictor => {
                let model = match &a.model {
                    Some(path) => Model::load(path).map_err(|e| format!("{}: {e}", path.display()))?,
                    None => default_model(),
                };
                let mut p = Predictor::new(a.recipient, model, PredictorConfig::preset(a.preset))
                    .map_err(|e| format!("predictor: {e}"))?;
                if a.record_history.is_some() || a.online {
                    let learn = LearnConfig {
                        record_rows: if a.record_history.is_some() { 1 << 16 } else { 0 },
                        online: a.online.then(OnlineConfig::default),
                        ..LearnConfig::default()
                    };
                    p.enable_learning(learn).map_err(|e| e.to_string())?;
                }
                Box::new(p)
            }
        };
        Engine::with(cfg, policy, Box::new(harmonizer_core::clock::MonotonicClock::new()))
            .map_err(|e| format!("engine: {e}"))?
    };
    if a.record_trace.is_some() && a.staging != Staging::Always {
        return Err(String::from("--record-trace needs --staging always (every stream read all the time)"));
    }
    let mut opts = DriverOptions::default();
    let mut trace = match &a.record_trace {
        Some(path) => {
            let source =
                format!("harmonize follow --streams {} (recipient {})", a.streams.join(","), a.recipient);
            let (rec, tap) = TraceRecorder::create(path, n, a.recipient, &source)?;
            opts.tap = Some(tap);
            Some(rec)
        }
        None => None,
    };
    let mut driver = if let Some(url) = &a.server.redis {
        let up = RedisUpstream::new(url, a.streams.clone()).map_err(|e| format!("{url}: {e}"))?;
        start(engine, producers, up, opts)?
    } else {
        let url = a.server.nats.as_deref().unwrap_or_default();
        let up = NatsUpstream::new(url, a.streams.clone()).map_err(|e| format!("{url}: {e}"))?;
        start(engine, producers, up, opts)?
    };
    if a.from == From::Start {
        driver.engine_mut().resume_stream_at(0, 1);
    }
    let mut history = match &a.record_history {
        Some(path) => Some(HistoryFile::create(path, a.history_format)?),
        None => None,
    };
    let stop = stop_on_signals();
    let mut f = Follower {
        t: Totals::default(),
        last: Default::default(),
        json: a.json,
        print_events: a.print_events,
        lines: Vec::new(),
    };
    let began = Instant::now();
    let cpu0 = cpu_seconds();
    let mut next_tick = Duration::from_secs_f64(a.interval.max(0.05));
    let mut last_delivered = 0u64;
    if !a.json {
        eprintln!(
            "following {} on {}",
            a.streams.join(", "),
            a.server.redis.as_deref().or(a.server.nats.as_deref()).unwrap_or("")
        );
    }
    loop {
        driver.run_once(&mut f, Duration::from_millis(50));
        if let (Some(h), Some(p)) = (history.as_mut(), driver.engine_mut().policy_mut::<Predictor>()) {
            h.drain(p)?;
        }
        if let Some(t) = trace.as_mut() {
            t.drain()?;
        }
        for line in f.lines.drain(..) {
            if a.json {
                println!("{line}")
            } else {
                eprintln!("{line}")
            }
        }
        for r in driver.reports() {
            if matches!(r, Report::Started { .. }) && !a.json {
                continue;
            }
            f.t.reports += 1;
            if a.json {
                println!("{}", serde_json::json!({"type": "report", "text": format!("{r:?}")}));
            } else {
                eprintln!("report: {r:?}");
            }
        }
        let now = began.elapsed();
        let done = stop.load(Ordering::Relaxed)
            || a.events.is_some_and(|n| f.t.delivered >= n)
            || a.seconds.is_some_and(|s| now.as_secs_f64() >= s);
        if now >= next_tick || done {
            let rate = (f.t.delivered - last_delivered) as f64 / a.interval.max(0.05);
            last_delivered = f.t.delivered;
            next_tick = now + Duration::from_secs_f64(a.interval.max(0.05));
            let active = driver.engine().active_stream();
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({"type": "tick", "t_s": now.as_secs_f64(), "active": active,
                    "rate_per_s": rate, "totals": &f.t})
                );
            } else {
                eprintln!(
                    "{:7.1}s  delivered {:>10}  {:>9.0}/s  active {}  switches {} seamless {} cold  stall last {:.3} ms  gaps {}  lost {}",
                    now.as_secs_f64(), f.t.delivered, rate, a.streams[active as usize], f.t.switches_seamless,
                    f.t.switches_cold, f.t.stall_last_ms, f.t.gaps, f.t.lost_events
                );
            }
        }
        if done {
            break;
        }
    }
    if let Some(mut t) = trace.take() {
        t.drain()?;
        use std::io::Write as _;
        t.out.flush().map_err(|e| format!("{}: {e}", t.name))?;
        let dropped = t.dropped.load(Ordering::Relaxed);
        eprintln!("{}: {} records", t.name, t.written);
        if dropped > 0 {
            return Err(format!(
                "{}: {dropped} arrivals did not fit the recorder's queue: the trace is incomplete",
                t.name
            ));
        }
    }
    if let Some(p) = driver.engine_mut().policy_mut::<Predictor>() {
        if let Some(mut h) = history.take() {
            h.drain(p)?;
            let every = p.learn_config().map_or(100_000_000, |l| l.every_ns);
            let source =
                format!("harmonize follow --streams {} (recipient {})", a.streams.join(","), a.recipient);
            let path = h.path.display().to_string();
            let n = h.finish(p.model().horizon_ns, every, source)?;
            eprintln!("{path}: {n} labelled rows");
        }
        if let Some(path) = &a.save_model {
            std::fs::write(path, p.model().to_json()).map_err(|e| format!("{}: {e}", path.display()))?;
            if let Some(s) = p.learn_stats() {
                eprintln!(
                    "{}: the model after {} online steps (largest weight change {:.3})",
                    path.display(),
                    s.updates,
                    s.max_drift
                );
            }
        }
    }
    let wall = began.elapsed().as_secs_f64();
    let cpu = cpu_seconds().zip(cpu0).map(|(b, a)| b - a);
    let violated = f.t.duplicates + f.t.out_of_order;
    if a.json {
        println!(
            "{}",
            serde_json::json!({"type": "summary", "wall_s": wall, "cpu_s": cpu, "active": driver.engine().active_stream(),
            "exactly_once": violated == 0, "totals": &f.t})
        );
    } else {
        println!(
            "delivered {} in {wall:.2} s; switches {} seamless, {} cold ({} failovers); stall max {:.3} ms; gaps {}; lost {}; duplicates {}; out of order {}; cpu {}",
            f.t.delivered, f.t.switches_seamless, f.t.switches_cold, f.t.failovers, f.t.stall_max_ms, f.t.gaps,
            f.t.lost_events, f.t.duplicates, f.t.out_of_order,
            cpu.map_or("unknown".to_string(), |c| format!("{c:.2} s"))
        );
    }
    if violated > 0 {
        return Err(format!(
            "exactly-once violated: {} duplicates, {} out of order",
            f.t.duplicates, f.t.out_of_order
        ));
    }
    Ok(())
}

fn start<U: Upstream>(
    engine: Engine,
    producers: Vec<harmonizer_core::engine::StreamProducer>,
    up: U,
    opts: DriverOptions,
) -> Result<Driver, String> {
    Driver::new(engine, producers, Arc::new(up), opts).map_err(|e| format!("cannot start the readers: {e}"))
}

/// This process's CPU time (user + system), seconds, from /proc (Linux).
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command (which may hold spaces) in parentheses: utime is 14th, stime 15th.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ is 100 on Linux
}

/// A flag set by SIGINT or SIGTERM, so `follow` ends with its summary.
fn stop_on_signals() -> &'static AtomicBool {
    static STOP: AtomicBool = AtomicBool::new(false);
    extern "C" fn on_signal(_: libc::c_int) {
        STOP.store(true, Ordering::Relaxed);
    }
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe, and is a valid
    // `extern "C" fn(c_int)` for as long as the process lives.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t);
    }
    &STOP
}
