//! The history file: the labelled feature snapshots the predictor is trained on.
//!
//! `harmonize trace` writes one, `harmonize train` fits a model to it. A history holds what
//! `harmonizer_sim::eval::feature_snapshots` records on a trace (a replay with a predictor that
//! never stages, snapshotting every candidate's features every 100 ms) and what
//! `fit_snapshots` needs to fit them exactly as the library does: the rows, in recorded order,
//! and the trace's duration and label horizon.
//!
//! # Format, version 1
//!
//! UTF-8 text, one record per line (`\n`; a `\r` before it is ignored), in one of two
//! encodings. `harmonize train` tells them apart by the first byte (`#` or `{`).
//!
//! **CSV.** Line 1 is the header, line 2 names the columns, then one row per line:
//!
//! ```text
//! # harmonizer-history v1 duration_ns=3600000000000 horizon_ns=5000000000 snapshot_every_ns=100000000 source=ScenarioParams::train()
//! t_ns,candidate,label,load_burst,load_sustained,...,cand_previous
//! 100000000,0,0,0.0,0.0,5.991464547107982,...,0.0
//! ```
//!
//! The header's fields come in this order, separated by one space; `source` is the rest of the
//! line (free text, stored in the model's `meta.trained_on`). Line 2 is `t_ns,candidate,label`
//! and then the 18 feature names of `harmonizer_core::predict::FEATURE_NAMES`, in model order
//! (a history recorded by a build with other features is refused, saying how it differs).
//!
//! **JSONL.** Line 1 is a JSON object with the same header fields, and the feature names:
//!
//! ```text
//! {"format":"harmonizer-history","version":1,"duration_ns":3600000000000,"horizon_ns":5000000000,"snapshot_every_ns":100000000,"source":"ScenarioParams::train()","features":["load_burst",...]}
//! {"t_ns":100000000,"candidate":0,"label":0,"features":[0.0,0.0,5.991464547107982,...]}
//! ```
//!
//! Every key is required, no other is allowed and none may repeat; key order is free. Integers
//! are JSON numbers that must be whole and at most 2^53 − 1 (about 104 days in ns).
//!
//! **Fields.**
//! - `duration_ns`: the trace's length. Training splits the rows by time at 80% of it, as the
//!   library does: rows before that less one horizon are fitted, later ones are held out.
//! - `horizon_ns`: a row is labelled 1 when the recipient switched to its candidate within this
//!   much time after `t_ns`. It becomes the model's horizon.
//! - `snapshot_every_ns`: how often the snapshots were taken (information only).
//! - `t_ns`: the snapshot's time from the start of the trace; `candidate`: the candidate
//!   stream's id (u32); `label`: `0` or `1`.
//! - the features: 16 numbers, written in Rust's shortest round-trip form (`0.1`, `1e-7`,
//!   `-0.0`), so reading them back gives the identical bits and training from the file gives
//!   the identical model. They must be finite (`NaN`, `inf` or, in JSON, `null` are refused).
//!
//! The rows are fitted in file order; the same rows in another order give a model that may
//! differ in the last bits. A file that breaks any of these rules is refused with its name, the
//! line and the problem; an empty file or one without rows is refused too.

use std::fmt;
use std::fmt::Write as _;
use std::io::{BufRead, Write};

use harmonizer_core::predict::{FEATURE_NAMES, N_FEATURES};
use harmonizer_sim::json;
use harmonizer_sim::replay::Snapshot;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// The value of the JSONL header's `format` key, and the CSV header's first word.
pub const FORMAT: &str = "harmonizer-history";
/// The format version this build reads and writes.
pub const VERSION: u32 = 1;
/// The largest integer a JSONL history may hold: 2^53 − 1, the last one a double holds exactly.
const MAX_JSON_INT: f64 = 9_007_199_254_740_991.0;

/// CSV or JSONL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Encoding {
    /// Comma-separated values, a header line and a column line first.
    Csv,
    /// One JSON object per line, the header object first.
    Jsonl,
}

/// The header: what the rows were recorded from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The trace's length, ns.
    pub duration_ns: u64,
    /// The label horizon, ns.
    pub horizon_ns: u64,
    /// The snapshot cadence, ns.
    pub snapshot_every_ns: u64,
    /// Free text: the trace the rows come from.
    pub source: String,
}

/// A history read back: its header and rows.
#[derive(Clone, Debug)]
pub struct History {
    /// The header.
    pub header: Header,
    /// The rows, in file order (only `t_ns`, `stream`, `label` and `features` are meaningful).
    pub rows: Vec<Snapshot>,
}

/// Writes `rows` under `header` to `out`.
pub fn write(out: &mut dyn Write, enc: Encoding, header: &Header, rows: &[Snapshot]) -> std::io::Result<()> {
    write_header(out, enc, header)?;
    let mut line = String::with_capacity(512);
    for r in rows {
        write_row(out, enc, &mut line, r.t_ns, r.stream, r.label, &r.features)?;
    }
    Ok(())
}

/// Writes the header (CSV: its two lines; JSONL: the header object).
pub fn write_header(out: &mut dyn Write, enc: Encoding, header: &Header) -> std::io::Result<()> {
    let mut line = String::with_capacity(512);
    match enc {
        Encoding::Csv => {
            let _ = writeln!(
                line,
                "# {FORMAT} v{VERSION} duration_ns={} horizon_ns={} snapshot_every_ns={} source={}",
                header.duration_ns,
                header.horizon_ns,
                header.snapshot_every_ns,
                one_line(&header.source)
            );
            line.push_str("t_ns,candidate,label");
            for name in FEATURE_NAMES {
                line.push(',');
                line.push_str(name);
            }
            line.push('\n');
        }
        Encoding::Jsonl => {
            let _ = write!(
                line,
                "{{\"format\":\"{FORMAT}\",\"version\":{VERSION},\"duration_ns\":{},\"horizon_ns\":{},\
                 \"snapshot_every_ns\":{},\"source\":",
                header.duration_ns, header.horizon_ns, header.snapshot_every_ns
            );
            json::write_string(&mut line, &header.source);
            line.push_str(",\"features\":[");
            for (i, name) in FEATURE_NAMES.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                json::write_string(&mut line, name);
            }
            line.push_str("]}\n");
        }
    }
    out.write_all(line.as_bytes())
}

/// Writes one row (`line` is scratch space, reused between rows).
pub fn write_row(
    out: &mut dyn Write,
    enc: Encoding,
    line: &mut String,
    t_ns: u64,
    candidate: u32,
    label: bool,
    features: &[f64; N_FEATURES],
) -> std::io::Result<()> {
    line.clear();
    match enc {
        Encoding::Csv => {
            let _ = write!(line, "{t_ns},{candidate},{}", u8::from(label));
            for v in features {
                // `{:?}` is the shortest form that parses back to the same bits.
                let _ = write!(line, ",{v:?}");
            }
            line.push('\n');
        }
        Encoding::Jsonl => {
            let _ = write!(
                line,
                "{{\"t_ns\":{t_ns},\"candidate\":{candidate},\"label\":{},\"features\":[",
                u8::from(label)
            );
            for (i, v) in features.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                // Shortest round-trip form; NaN would be `null`, which the reader refuses.
                json::write_number(line, *v);
            }
            line.push_str("]}\n");
        }
    }
    out.write_all(line.as_bytes())
}

/// `s` with line breaks replaced by spaces: the CSV header's `source` is the rest of one line.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// Reads a history from `input`; `name` is what error messages call it. Every error is one
/// line: `NAME:LINE: problem`, or `NAME: problem` for the file as a whole.
pub fn read(name: &str, input: &mut dyn BufRead) -> Result<History, String> {
    let mut lines = Lines { input, name, no: 0, buf: String::new() };
    let first = match lines.next()? {
        Some(l) => l.to_owned(),
        None => return Err(format!("{name}: empty file, expected a {FORMAT} header")),
    };
    let (header, enc) = if first.starts_with('#') {
        let h = csv_header(&first).map_err(|e| lines.at(&e))?;
        let columns = match lines.next()? {
            Some(l) => l.to_owned(),
            None => return Err(lines.at("missing the column line after the header")),
        };
        csv_columns(&columns).map_err(|e| lines.at(&e))?;
        (h, Encoding::Csv)
    } else if first.starts_with('{') {
        (jsonl_header(&first).map_err(|e| lines.at(&e))?, Encoding::Jsonl)
    } else {
        return Err(lines.at(&format!(
            "not a {FORMAT} file: the first line must start with \"# {FORMAT}\" (CSV) or \"{{\" (JSONL)"
        )));
    };
    let mut rows = Vec::new();
    while let Some(line) = lines.next()? {
        let row = match enc {
            Encoding::Csv => csv_row(line),
            Encoding::Jsonl => jsonl_row(line),
        };
        rows.push(row.map_err(|e| lines.at(&e))?);
    }
    if rows.is_empty() {
        return Err(format!("{name}: no rows after the header"));
    }
    Ok(History { header, rows })
}

/// Numbered lines of a reader, with I/O and UTF-8 errors as one-line messages.
struct Lines<'a> {
    input: &'a mut dyn BufRead,
    name: &'a str,
    no: usize,
    buf: String,
}

impl Lines<'_> {
    fn next(&mut self) -> Result<Option<&str>, String> {
        self.buf.clear();
        self.no += 1;
        match self.input.read_line(&mut self.buf) {
            Ok(0) => Ok(None),
            Ok(_) => {
                let l = self.buf.strip_suffix('\n').unwrap_or(&self.buf);
                Ok(Some(l.strip_suffix('\r').unwrap_or(l)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(self.at("not UTF-8 text")),
            Err(e) => Err(format!("{}: {e}", self.name)),
        }
    }

    fn at(&self, problem: &str) -> String {
        format!("{}:{}: {problem}", self.name, self.no)
    }
}

fn csv_header(line: &str) -> Result<Header, String> {
    let prefix = format!("# {FORMAT} v");
    let rest = line
        .strip_prefix(&prefix)
        .ok_or_else(|| format!("not a {FORMAT} header: a CSV history starts with \"{prefix}{VERSION} \""))?;
    let (version, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    if version != VERSION.to_string() {
        return Err(format!("history version {version:?} is not supported (this build reads v{VERSION})"));
    }
    let mut rest = rest;
    let mut ints = [0u64; 3];
    for (slot, key) in ints.iter_mut().zip(["duration_ns", "horizon_ns", "snapshot_every_ns"]) {
        let field = rest.split(' ').next().unwrap_or("");
        let value = field
            .strip_prefix(key)
            .and_then(|v| v.strip_prefix('='))
            .ok_or_else(|| format!("header: expected {key}=N, found {field:?}"))?;
        *slot = value.parse().map_err(|_| format!("header: {key} is not a whole number: {value:?}"))?;
        rest = rest.get(field.len() + 1..).unwrap_or("");
    }
    let source = rest
        .strip_prefix("source=")
        .ok_or_else(|| format!("header: expected source=TEXT, found {rest:?}"))?;
    header(ints[0], ints[1], ints[2], source.to_owned())
}

fn header(
    duration_ns: u64,
    horizon_ns: u64,
    snapshot_every_ns: u64,
    source: String,
) -> Result<Header, String> {
    if duration_ns == 0 || horizon_ns == 0 || snapshot_every_ns == 0 {
        return Err(String::from("header: duration_ns, horizon_ns and snapshot_every_ns must be > 0"));
    }
    Ok(Header { duration_ns, horizon_ns, snapshot_every_ns, source })
}

fn csv_columns(line: &str) -> Result<(), String> {
    let cols: Vec<&str> = line.split(',').collect();
    let want = ["t_ns", "candidate", "label"];
    if cols.len() < want.len() || cols[..want.len()] != want {
        return Err(format!("column line must start with {}", want.join(",")));
    }
    check_names(cols[want.len()..].iter().copied())
}

/// The feature names must be this build's, all of them, in order.
fn check_names<'s>(names: impl ExactSizeIterator<Item = &'s str>) -> Result<(), String> {
    if names.len() != N_FEATURES {
        return Err(format!("{} feature names, this build computes {N_FEATURES}", names.len()));
    }
    for (i, (found, want)) in names.zip(FEATURE_NAMES).enumerate() {
        if found != want {
            return Err(format!("feature {i} is {found:?}, this build computes {want:?} there"));
        }
    }
    Ok(())
}

fn csv_row(line: &str) -> Result<Snapshot, String> {
    let cols: Vec<&str> = line.split(',').collect();
    if cols.len() != 3 + N_FEATURES {
        return Err(format!(
            "{} columns, expected {} (t_ns, candidate, label and {N_FEATURES} features)",
            cols.len(),
            3 + N_FEATURES
        ));
    }
    let t_ns = cols[0].parse().map_err(|_| format!("t_ns is not a whole number: {:?}", cols[0]))?;
    let stream = cols[1].parse().map_err(|_| format!("candidate is not a stream id (u32): {:?}", cols[1]))?;
    let label = match cols[2] {
        "0" => false,
        "1" => true,
        other => return Err(format!("label must be 0 or 1, found {other:?}")),
    };
    let mut features = [0.0; N_FEATURES];
    for (i, (slot, text)) in features.iter_mut().zip(&cols[3..]).enumerate() {
        let v: f64 = text.parse().map_err(|_| format!("{} is not a number: {text:?}", FEATURE_NAMES[i]))?;
        if !v.is_finite() {
            return Err(format!("{} is not a finite number: {text:?}", FEATURE_NAMES[i]));
        }
        *slot = v;
    }
    Ok(Snapshot { t_ns, stream, prob: 0.0, features, staged: false, label })
}

/// A JSON value as a history line is read: numbers as `f64` (serde_json's `float_roundtrip`
/// makes the conversion correctly rounded, so the writer's shortest forms read back to the
/// identical bits), object members in file order, a key repeated within one object refused.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl Value {
    /// The JSON type's name, for error messages.
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    fn as_object(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.as_object()?.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    // Integers become doubles as a double-based reader would read them (correctly rounded);
    // the checks below refuse any above 2^53 − 1.
    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n as f64))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n as f64))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        Ok(Value::Number(n))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members: Vec<(String, Value)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if members.iter().any(|(k, _)| *k == key) {
                return Err(de::Error::custom("duplicate key in object"));
            }
            let value = map.next_value()?;
            members.push((key, value));
        }
        Ok(Value::Object(members))
    }
}

/// The members of a JSON object line, each key exactly once, no others.
fn members<'v>(v: &'v Value, keys: &[&str], what: &str) -> Result<Vec<&'v Value>, String> {
    let obj = v.as_object().ok_or_else(|| format!("{what} must be a JSON object"))?;
    if let Some((k, _)) = obj.iter().find(|(k, _)| !keys.contains(&k.as_str())) {
        return Err(format!("{what} has an unknown key {k:?}"));
    }
    keys.iter().map(|k| v.get(k).ok_or_else(|| format!("{what} is missing the key {k:?}"))).collect()
}

fn parse_json(line: &str) -> Result<Value, String> {
    serde_json::from_str(line).map_err(|e| {
        let msg = e.to_string();
        let at = format!(" at line {} column {}", e.line(), e.column());
        format!("not valid JSON: {} at column {}", msg.strip_suffix(&at).unwrap_or(&msg), e.column())
    })
}

fn json_int(v: &Value, key: &str, max: f64) -> Result<u64, String> {
    match v.as_f64() {
        Some(n) if n.fract() == 0.0 && (0.0..=max).contains(&n) => Ok(n as u64),
        Some(n) => Err(format!("{key} must be a whole number from 0 to {max}, found {n:?}")),
        None => Err(format!("{key} must be a number, found {}", v.kind())),
    }
}

fn jsonl_header(line: &str) -> Result<Header, String> {
    let v = parse_json(line)?;
    // Format and version first, so a file from a newer build says so.
    match v.get("format").and_then(Value::as_str) {
        Some(FORMAT) => {}
        _ => return Err(format!("not a {FORMAT} header: \"format\" must be {FORMAT:?}")),
    }
    match v.get("version").and_then(Value::as_f64) {
        Some(n) if n == f64::from(VERSION) => {}
        Some(n) => {
            return Err(format!("history version {n:?} is not supported (this build reads {VERSION})"))
        }
        None => return Err(String::from("header: \"version\" must be a number")),
    }
    let keys = ["format", "version", "duration_ns", "horizon_ns", "snapshot_every_ns", "source", "features"];
    let m = members(&v, &keys, "the header")?;
    let source = m[5].as_str().ok_or("header: source must be a string")?.to_owned();
    let names = m[6].as_array().ok_or("header: features must be an array of names")?;
    let names: Option<Vec<&str>> = names.iter().map(Value::as_str).collect();
    check_names(names.ok_or("header: features must be an array of names")?.into_iter())?;
    header(
        json_int(m[2], "duration_ns", MAX_JSON_INT)?,
        json_int(m[3], "horizon_ns", MAX_JSON_INT)?,
        json_int(m[4], "snapshot_every_ns", MAX_JSON_INT)?,
        source,
    )
}

fn jsonl_row(line: &str) -> Result<Snapshot, String> {
    let v = parse_json(line)?;
    let m = members(&v, &["t_ns", "candidate", "label", "features"], "a row")?;
    let t_ns = json_int(m[0], "t_ns", MAX_JSON_INT)?;
    let stream = json_int(m[1], "candidate", f64::from(u32::MAX))? as u32;
    let label = match m[2].as_f64() {
        Some(0.0) => false,
        Some(1.0) => true,
        _ => return Err(format!("label must be 0 or 1, found {}", show(m[2]))),
    };
    let values = m[3].as_array().ok_or("features must be an array of numbers")?;
    if values.len() != N_FEATURES {
        return Err(format!("{} features, expected {N_FEATURES}", values.len()));
    }
    let mut features = [0.0; N_FEATURES];
    for (i, (slot, value)) in features.iter_mut().zip(values).enumerate() {
        *slot = match value.as_f64() {
            Some(n) if n.is_finite() => n,
            Some(_) => return Err(format!("{} is not a finite number", FEATURE_NAMES[i])),
            None => return Err(format!("{} is not a number: {}", FEATURE_NAMES[i], show(value))),
        };
    }
    Ok(Snapshot { t_ns, stream, prob: 0.0, features, staged: false, label })
}

/// A JSON value for an error message: numbers in shortest form, other kinds by name.
fn show(v: &Value) -> String {
    match v {
        Value::Number(n) => format!("{n:?}"),
        Value::String(s) => format!("{s:?}"),
        other => other.kind().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Snapshot> {
        // Awkward values: shortest forms with exponents, subnormals, -0.0, extremes.
        let specials = [0.1, -0.0, 1e-7, 5e-324, f64::MAX, f64::MIN_POSITIVE, 1.0 / 3.0, -2.5e300];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..200u64)
            .map(|i| {
                let mut features = [0.0; N_FEATURES];
                for (j, f) in features.iter_mut().enumerate() {
                    x = harmonizer_core::flip::splitmix64(x);
                    // Random finite bit patterns, and the specials now and then.
                    let v = f64::from_bits(x);
                    *f = if j % 5 == 0 {
                        specials[(i as usize + j) % specials.len()]
                    } else if v.is_finite() {
                        v
                    } else {
                        1.5
                    };
                }
                Snapshot {
                    t_ns: i * 100_000_000,
                    stream: (i % 3) as u32,
                    prob: 0.0,
                    features,
                    staged: false,
                    label: i % 7 == 0,
                }
            })
            .collect()
    }

    #[test]
    fn both_encodings_round_trip_every_bit() {
        let h = Header {
            duration_ns: 20_000_000_000,
            horizon_ns: 5,
            snapshot_every_ns: 7,
            source: "a \"b\" c".into(),
        };
        for enc in [Encoding::Csv, Encoding::Jsonl] {
            let rows = rows();
            let mut out = Vec::new();
            write(&mut out, enc, &h, &rows).unwrap();
            let back = read("mem", &mut out.as_slice()).unwrap();
            assert_eq!(back.header, h);
            assert_eq!(back.rows.len(), rows.len());
            for (a, b) in rows.iter().zip(&back.rows) {
                assert_eq!((a.t_ns, a.stream, a.label), (b.t_ns, b.stream, b.label));
                let bits = |r: &Snapshot| r.features.map(f64::to_bits);
                assert_eq!(bits(a), bits(b), "{enc:?}");
            }
        }
    }
}
