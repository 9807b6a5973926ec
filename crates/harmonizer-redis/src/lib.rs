//! # harmonizer-redis
//!
//! Redis Streams as a harmonizer upstream: one stream key per engine stream, read with
//! `XREAD BLOCK` on a connection per reader (the `redis` crate, synchronous).
//!
//! # Positions
//!
//! An entry id `ms-seq` becomes the position `ms << 22 | seq` ([`id_to_pos`]): ordered as the
//! ids are, and exact both ways. It represents ids with `ms < 2^42` (until the year 2109 for
//! auto-generated ids) and `seq < 2^22` (4,194,304 entries in one millisecond). An id outside
//! that is reported ([`Skipped::Unrepresentable`]) and not delivered. `0-0` is never an entry
//! id, so no entry has position 0.
//!
//! Redis' `XREAD` starts after an id (exclusive): to read from position `p`, the reader asks for
//! entries after the id just below it ([`id_before`]).
//!
//! # Entries
//!
//! Field-value pairs in the [`Layout`] (default [`Layout::compact`]: `s` seq, `o` origin, `t`
//! time ns, `k` kind, `f` flags, `p` payload). Writing: [`RedisPublisher`].
//!
//! # Trimming and resets
//!
//! A start inside a range that `XTRIM` or `XADD … MAXLEN` removed (the oldest entry left is
//! past it, and the key has lost entries: `entries-added` above `length`, Redis 7) is reported
//! as trimmed: reading goes on from
//! the first entry still there, and the engine's bounded recovery reports the rest as lost.
//! An entry whose id is not above the previous one read is reported and skipped. A key whose
//! last id falls below what was read (deleted and made again under the same name, where
//! `XREAD` after the old id would wait forever) is refused, checked at every seek and on every
//! read that times out: the driver reports it as an outage and retries with backoff.

#![warn(missing_docs)]

use std::time::Duration;

use harmonizer_connect::upstream::{
    describe_name, name_of, Reader, Seeked, Skipped, Start, Upstream, UpstreamError,
};
use harmonizer_connect::{Entry, Layout};
use harmonizer_core::event::EventHeader;
use redis::Value;

/// Bits of the id's sequence part in a position.
pub const SEQ_BITS: u32 = 22;
/// Largest `ms` part a position holds.
pub const MAX_MS: u64 = (1 << (64 - SEQ_BITS)) - 1;
/// Largest sequence part a position holds.
pub const MAX_SEQ: u64 = (1 << SEQ_BITS) - 1;

/// The position of entry id `ms-seq`, if it has one.
pub fn id_to_pos(ms: u64, seq: u64) -> Option<u64> {
    (ms <= MAX_MS && seq <= MAX_SEQ).then_some((ms << SEQ_BITS) | seq)
}

/// The entry id of position `pos`.
pub fn pos_to_id(pos: u64) -> (u64, u64) {
    (pos >> SEQ_BITS, pos & MAX_SEQ)
}

/// The id just below position `pos`, for `XREAD`'s exclusive start: every id at or above `pos`
/// (and every id that has no position but sorts at or above it) comes after it.
pub fn id_before(pos: u64) -> String {
    let (ms, seq) = pos_to_id(pos);
    if seq > 0 {
        format!("{ms}-{}", seq - 1)
    } else if ms > 0 {
        format!("{}-{}", ms - 1, u64::MAX)
    } else {
        "0-0".to_string()
    }
}

/// Parses an entry id `ms-seq`.
pub fn parse_id(id: &[u8]) -> Option<(u64, u64)> {
    let s = std::str::from_utf8(id).ok()?;
    let (ms, seq) = s.split_once('-')?;
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(ms) || !digits(seq) {
        return None;
    }
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

fn refused(e: redis::RedisError) -> UpstreamError {
    if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout() {
        UpstreamError::Connection(e.to_string())
    } else {
        UpstreamError::Refused(e.to_string())
    }
}

/// A Redis server and the stream keys that are the engine's streams (`keys[i]` is stream `i`).
#[derive(Clone, Debug)]
pub struct RedisUpstream {
    client: redis::Client,
    keys: Vec<String>,
    layout: Layout,
    connect_timeout: Duration,
}

impl RedisUpstream {
    /// An upstream on the server at `url` (`redis://host:port/db`), stream `i` read from
    /// `keys[i]`, entries in [`Layout::compact`].
    pub fn new(url: &str, keys: Vec<String>) -> Result<RedisUpstream, UpstreamError> {
        let client = redis::Client::open(url).map_err(refused)?;
        Ok(RedisUpstream { client, keys, layout: Layout::compact(), connect_timeout: Duration::from_secs(2) })
    }

    /// Reads entries in `layout` instead.
    pub fn with_layout(mut self, layout: Layout) -> RedisUpstream {
        self.layout = layout;
        self
    }
}

impl Upstream for RedisUpstream {
    type Reader = RedisReader;

    fn describe(&self, stream: u32) -> String {
        describe_name(&self.keys, stream, "key")
    }

    fn open(&self, stream: u32) -> Result<RedisReader, UpstreamError> {
        let key = name_of(&self.keys, stream, "key")?.to_string();
        let conn = self.client.get_connection_with_timeout(self.connect_timeout).map_err(refused)?;
        Ok(RedisReader { conn, key, layout: self.layout.clone(), next: 1, last: None })
    }
}

/// What `XINFO STREAM` says of a key (all positions; `None` where the id has none or the
/// stream is empty).
#[derive(Clone, Copy, Debug, Default)]
struct Info {
    first: Option<u64>,
    last_generated: Option<u64>,
    /// Entries ever removed from the key (`entries-added` minus `length`): by `XTRIM`,
    /// `XADD … MAXLEN` (which do not move `max-deleted-entry-id`) or `XDEL`.
    removed: u64,
}

impl Info {
    /// Whether a search for the first entry above `seq` that found one at `pos` with seq
    /// `found` landed after a trimmed range: `pos` is the oldest entry left, the key has lost
    /// entries (all before it, then), and seqs between were wanted.
    fn trimmed_before(&self, pos: u64, found: u64, seq: u64) -> bool {
        self.first == Some(pos) && self.removed > 0 && found > seq.saturating_add(1)
    }
}

/// A reader of one stream key.
pub struct RedisReader {
    conn: redis::Connection,
    key: String,
    layout: Layout,
    /// The first position the next read may return.
    next: u64,
    /// The last position read (for the monotonic check).
    last: Option<u64>,
}

impl RedisReader {
    fn info(&mut self) -> Result<Info, UpstreamError> {
        let v: Value = match redis::cmd("XINFO").arg("STREAM").arg(&self.key).query(&mut self.conn) {
            Ok(v) => v,
            // No such key: an empty stream, as far as reading goes.
            Err(e) if matches!(e.kind(), redis::ErrorKind::Server(_)) && !e.is_io_error() => {
                return Ok(Info::default())
            }
            Err(e) => return Err(refused(e)),
        };
        let mut info = Info::default();
        let (mut added, mut length) = (None, None);
        for (k, val) in pairs(&v) {
            match k {
                b"first-entry" => info.first = entry_id(val).and_then(|(ms, s)| id_to_pos(ms, s)),
                b"last-generated-id" => {
                    info.last_generated = bytes(val).and_then(parse_id).and_then(|(ms, s)| id_to_pos(ms, s))
                }
                b"entries-added" => added = int(val),
                b"length" => length = int(val),
                _ => {}
            }
        }
        info.removed = match (added, length) {
            (Some(a), Some(l)) => a.saturating_sub(l),
            _ => 0,
        };
        Ok(info)
    }

    /// Up to `count` entries at or after position `from` (`XRANGE`), as (pos, origin, seq).
    fn range(&mut self, from: u64, count: usize) -> Result<Vec<(u64, u32, u64)>, UpstreamError> {
        let (ms, seq) = pos_to_id(from);
        let v: Value = redis::cmd("XRANGE")
            .arg(&self.key)
            .arg(format!("{ms}-{seq}"))
            .arg("+")
            .arg("COUNT")
            .arg(count)
            .query(&mut self.conn)
            .map_err(refused)?;
        let mut out = Vec::new();
        for e in array(&v) {
            let Some((pos, fields)) = entry(e) else { continue };
            let Ok(ev) = self.layout.decode(pos, fields) else { continue };
            out.push((pos, ev.header.origin, ev.header.seq));
        }
        Ok(out)
    }

    /// The position and seq of the first entry of `origin` whose seq is above `seq`, by
    /// bisection over positions (an origin's seqs grow with the position), or `None` when no
    /// entry has one.
    fn find_after(
        &mut self,
        origin: u32,
        seq: u64,
        info: &Info,
    ) -> Result<Option<(u64, u64)>, UpstreamError> {
        let (Some(first), Some(last)) = (info.first, info.last_generated) else { return Ok(None) };
        // The first entry of `origin` at or after `p`, looking ahead a bounded number of pages.
        let probe = |r: &mut Self, p: u64| -> Result<Option<(u64, u64)>, UpstreamError> {
            let mut at = p;
            for _ in 0..16 {
                let page = r.range(at, 128)?;
                if let Some(&(pos, _, s)) = page.iter().find(|e| e.1 == origin) {
                    return Ok(Some((pos, s)));
                }
                match page.last() {
                    Some(&(pos, _, _)) if page.len() == 128 => at = pos + 1,
                    _ => return Ok(None),
                }
            }
            Ok(None)
        };
        // Smallest p in [first, last + 1] whose first `origin` entry has a seq above `seq`.
        let (mut lo, mut hi) = (first, last.saturating_add(1));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match probe(self, mid)? {
                Some((_, s)) if s <= seq => lo = mid + 1,
                _ => hi = mid,
            }
        }
        Ok(probe(self, lo)?.filter(|&(_, s)| s > seq))
    }
}

impl Reader for RedisReader {
    fn seek(&mut self, start: &Start) -> Result<Seeked, UpstreamError> {
        let info = self.info()?;
        let live = info.last_generated.map_or(1, |p| p + 1);
        let seeked = match start {
            Start::Pos(p) => {
                let p = (*p).max(1);
                self.check_not_behind(&info, p)?;
                // The oldest entry left is past `p` (every entry before it is gone, including any
                // at `p`), and the key has lost entries: the range from `p` was trimmed. (A key
                // that never lost one simply had nothing there.)
                let trimmed = info.removed > 0 && info.first.is_none_or(|f| f > p);
                let pos = if trimmed { info.first.unwrap_or(live) } else { p };
                Seeked { pos, trimmed }
            }
            Start::Live => Seeked { pos: live, trimmed: false },
            Start::AfterSeq { origin, seq } => match self.find_after(*origin, *seq, &info)? {
                Some((pos, found)) => Seeked { pos, trimmed: info.trimmed_before(pos, found, *seq) },
                None => Seeked { pos: live, trimmed: false },
            },
            Start::AfterFrontier(frontier) => {
                if frontier.is_empty() {
                    Seeked { pos: info.first.unwrap_or(live), trimmed: info.removed > 0 }
                } else {
                    let mut best = Seeked { pos: live, trimmed: false };
                    for &(origin, seq) in frontier {
                        if let Some((p, found)) = self.find_after(origin, seq, &info)? {
                            if p < best.pos {
                                best = Seeked { pos: p, trimmed: info.trimmed_before(p, found, seq) };
                            }
                        }
                    }
                    best
                }
            }
        };
        self.next = seeked.pos;
        self.last = None;
        Ok(seeked)
    }

    fn read(
        &mut self,
        max: usize,
        timeout: Duration,
        out: &mut Vec<Entry>,
        skipped: &mut Vec<Skipped>,
    ) -> Result<(), UpstreamError> {
        let block_ms = timeout.as_millis().clamp(1, u128::from(u32::MAX)) as u64;
        // The socket waits a little longer than the server blocks.
        self.conn.set_read_timeout(Some(timeout + Duration::from_secs(2))).map_err(refused)?;
        let v: Value = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(max.max(1))
            .arg("BLOCK")
            .arg(block_ms)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(id_before(self.next))
            .query(&mut self.conn)
            .map_err(refused)?;
        // Nil: the block timed out. Otherwise [[key, [entries]]] (RESP2) or {key: [entries]}.
        // Taken apart by value, so each payload moves out of the reply rather than being copied.
        let entries = match v {
            Value::Nil => {
                // Nothing new: make sure the key has not gone backwards under us (deleted and
                // made again), which XREAD after our last id would never show. Idle reads only.
                let info = self.info()?;
                return self.check_not_behind(&info, self.next);
            }
            Value::Array(streams) => match streams.into_iter().next() {
                Some(Value::Array(s)) => match s.into_iter().nth(1) {
                    Some(Value::Array(entries)) => entries,
                    _ => Vec::new(),
                },
                _ => Vec::new(),
            },
            Value::Map(m) => match m.into_iter().next() {
                Some((_, Value::Array(entries))) => entries,
                _ => Vec::new(),
            },
            other => return Err(UpstreamError::Refused(format!("XREAD answered {other:?}"))),
        };
        for e in entries {
            let Value::Array(parts) = e else { continue };
            let mut parts = parts.into_iter();
            let Some(Value::BulkString(raw_id)) = parts.next() else { continue };
            let unrepresentable =
                || Skipped::Unrepresentable { id: String::from_utf8_lossy(&raw_id).into_owned() };
            let Some((ms, seq)) = parse_id(&raw_id) else {
                skipped.push(unrepresentable());
                continue;
            };
            let Some(pos) = id_to_pos(ms, seq) else {
                // Still move past it: the next read starts after this id.
                self.next = self.next.max(pos_after_id(ms, seq));
                skipped.push(unrepresentable());
                continue;
            };
            if let Some(prev) = self.last.filter(|&prev| pos <= prev) {
                skipped.push(Skipped::NotMonotonic { prev, pos });
                continue;
            }
            self.last = Some(pos);
            self.next = pos + 1;
            let mut fields = match parts.next() {
                Some(Value::Array(f)) => f,
                _ => Vec::new(),
            };
            match self.decode(pos, &mut fields) {
                Ok(ev) => out.push(ev),
                Err(why) => skipped.push(Skipped::Malformed { pos, why: why.to_string() }),
            }
        }
        Ok(())
    }
}

impl RedisReader {
    /// Refuses to read from `next` on a key whose last id is below the position before it: the
    /// key went backwards (deleted and made again under the same name), so reading after our
    /// last id would wait forever for ids that now come lower. Reported by the driver as an
    /// outage, retried with backoff, never silent.
    fn check_not_behind(&self, info: &Info, next: u64) -> Result<(), UpstreamError> {
        match info.last_generated {
            Some(last) if next > 1 && last < next - 1 => Err(UpstreamError::Refused(format!(
                "stream {} went backwards: its last id is at position {last}, below the {} already read (deleted and made again?)",
                self.key,
                next - 1
            ))),
            None if next > 1 => Err(UpstreamError::Refused(format!(
                "stream {} is gone after position {} was read (deleted?)",
                self.key,
                next - 1
            ))),
            _ => Ok(()),
        }
    }

    /// An entry from its field-value list: the layout reads every value but the payload, which
    /// is moved out of the list (one payload field at most, as the layout requires).
    fn decode(&self, pos: u64, fields: &mut [Value]) -> Result<Entry, harmonizer_connect::EntryError> {
        let name = self.layout.payload.as_bytes();
        let mut payload_at = None;
        for (i, kv) in fields.chunks_exact(2).enumerate() {
            if bytes(&kv[0]) == Some(name) && payload_at.replace(2 * i + 1).is_some() {
                return Err(harmonizer_connect::EntryError::Repeated(self.layout.payload.clone()));
            }
        }
        let pairs = fields
            .chunks_exact(2)
            .filter(|kv| bytes(&kv[0]) != Some(name))
            .filter_map(|kv| Some((bytes(&kv[0])?, bytes(&kv[1])?)));
        let mut e = self.layout.decode(pos, pairs)?;
        if let Some(i) = payload_at {
            e.payload = match std::mem::replace(&mut fields[i], Value::Nil) {
                Value::BulkString(b) => b,
                Value::SimpleString(s) => s.into_bytes(),
                _ => Vec::new(),
            };
        }
        Ok(e)
    }
}

/// The first position after id `ms-seq`, for an id that has no position: the next
/// millisecond's first (or the largest position when none is left).
fn pos_after_id(ms: u64, _seq: u64) -> u64 {
    id_to_pos(ms.saturating_add(1), 0).unwrap_or(u64::MAX)
}

fn int(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        _ => bytes(v).and_then(|b| std::str::from_utf8(b).ok()?.parse().ok()),
    }
}

fn array(v: &Value) -> &[Value] {
    match v {
        Value::Array(a) => a,
        _ => &[],
    }
}

fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

/// Key-value pairs of a flat array (RESP2) or a map (RESP3).
fn pairs(v: &Value) -> Vec<(&[u8], &Value)> {
    match v {
        Value::Array(a) => a.chunks_exact(2).filter_map(|kv| Some((bytes(&kv[0])?, &kv[1]))).collect(),
        Value::Map(m) => m.iter().filter_map(|(k, v)| Some((bytes(k)?, v))).collect(),
        _ => Vec::new(),
    }
}

/// The id of an `[id, [fields...]]` entry.
fn entry_id(v: &Value) -> Option<(u64, u64)> {
    array(v).first().and_then(bytes).and_then(parse_id)
}

/// An entry's field-value pairs.
type Fields<'a> =
    std::iter::FilterMap<std::slice::ChunksExact<'a, Value>, fn(&'a [Value]) -> Option<(&'a [u8], &'a [u8])>>;

/// An `[id, [field, value, ...]]` entry as its position and field pairs.
fn entry(v: &Value) -> Option<(u64, Fields<'_>)> {
    let a = array(v);
    let (ms, seq) = a.first().and_then(bytes).and_then(parse_id)?;
    let pos = id_to_pos(ms, seq)?;
    let fields = a.get(1).map(array).unwrap_or(&[]);
    fn pair(kv: &[Value]) -> Option<(&[u8], &[u8])> {
        Some((bytes(&kv[0])?, bytes(&kv[1])?))
    }
    Some((pos, fields.chunks_exact(2).filter_map(pair as fn(&[Value]) -> Option<(&[u8], &[u8])>)))
}

/// Writes events into stream keys as entries in a [`Layout`]: for tests, the CLI's publisher,
/// and applications that produce into Redis for harmonizer to read.
pub struct RedisPublisher {
    conn: redis::Connection,
    layout: Layout,
}

impl RedisPublisher {
    /// A publisher on the server at `url`, in [`Layout::compact`].
    pub fn new(url: &str) -> Result<RedisPublisher, UpstreamError> {
        let client = redis::Client::open(url).map_err(refused)?;
        let conn = client.get_connection_with_timeout(Duration::from_secs(2)).map_err(refused)?;
        Ok(RedisPublisher { conn, layout: Layout::compact() })
    }

    /// Writes in `layout` instead.
    pub fn with_layout(mut self, layout: Layout) -> RedisPublisher {
        self.layout = layout;
        self
    }

    /// Appends one event to `key` with an id Redis generates (`*`), returning the entry's
    /// position. `header.pos` is ignored: the id is the position.
    pub fn publish(&mut self, key: &str, header: &EventHeader, payload: &[u8]) -> Result<u64, UpstreamError> {
        self.publish_at(key, None, header, payload)
    }

    /// Appends events to `key` in one round trip (a pipeline of `XADD key *`), returning their
    /// positions in order.
    pub fn publish_batch(
        &mut self,
        key: &str,
        events: &[(EventHeader, Vec<u8>)],
    ) -> Result<Vec<u64>, UpstreamError> {
        let mut pipe = redis::pipe();
        for (header, payload) in events {
            let cmd = pipe.cmd("XADD").arg(key).arg("*");
            for (k, v) in self.layout.encode(header, payload) {
                cmd.arg(k).arg(v);
            }
        }
        let ids: Vec<Vec<u8>> = pipe.query(&mut self.conn).map_err(refused)?;
        ids.iter()
            .map(|id| {
                parse_id(id)
                    .and_then(|(ms, seq)| id_to_pos(ms, seq))
                    .ok_or_else(|| UpstreamError::Refused("XADD returned an id without a position".into()))
            })
            .collect()
    }

    /// As [`publish`](Self::publish) with an explicit id position (`id` as [`pos_to_id`]); Redis
    /// refuses one not above the key's last id.
    pub fn publish_at(
        &mut self,
        key: &str,
        id: Option<u64>,
        header: &EventHeader,
        payload: &[u8],
    ) -> Result<u64, UpstreamError> {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(key);
        match id {
            Some(p) => {
                let (ms, seq) = pos_to_id(p);
                cmd.arg(format!("{ms}-{seq}"));
            }
            None => {
                cmd.arg("*");
            }
        }
        for (k, v) in self.layout.encode(header, payload) {
            cmd.arg(k).arg(v);
        }
        let id: Vec<u8> = cmd.query(&mut self.conn).map_err(refused)?;
        let (ms, seq) = parse_id(&id).ok_or_else(|| UpstreamError::Refused("XADD returned no id".into()))?;
        id_to_pos(ms, seq).ok_or_else(|| UpstreamError::Refused(format!("id {ms}-{seq} has no position")))
    }

    /// The seq (the layout's seq field) of the last entry of `key`, if it has one.
    pub fn last_seq(&mut self, key: &str) -> Result<Option<u64>, UpstreamError> {
        let v: Value = redis::cmd("XREVRANGE")
            .arg(key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query(&mut self.conn)
            .map_err(refused)?;
        let Some(e) = array(&v).first() else { return Ok(None) };
        let Some((pos, fields)) = entry(e) else { return Ok(None) };
        Ok(self.layout.decode(pos, fields).ok().map(|e| e.header.seq))
    }

    /// Runs any command (for tests and tools: `XTRIM`, `DEL`...).
    pub fn command(&mut self, cmd: &redis::Cmd) -> Result<Value, UpstreamError> {
        cmd.query(&mut self.conn).map_err(refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_order_as_ids_do_and_map_back() {
        let ids = [
            (0, 1),
            (0, 2),
            (0, MAX_SEQ),
            (1, 0),
            (1_764_806_400_000, 0),
            (1_764_806_400_000, 7),
            (MAX_MS, MAX_SEQ),
        ];
        let mut prev = 0;
        for (ms, seq) in ids {
            let p = id_to_pos(ms, seq).unwrap();
            assert!(p > prev, "{ms}-{seq}");
            assert_eq!(pos_to_id(p), (ms, seq));
            prev = p;
        }
        assert_eq!(id_to_pos(MAX_MS + 1, 0), None);
        assert_eq!(id_to_pos(0, MAX_SEQ + 1), None);
        assert_eq!(id_before(1), "0-0");
        assert_eq!(id_before(id_to_pos(5, 3).unwrap()), "5-2");
        assert_eq!(id_before(id_to_pos(5, 0).unwrap()), format!("4-{}", u64::MAX));
        assert_eq!(parse_id(b"12-34"), Some((12, 34)));
        for bad in [&b"12"[..], b"-1", b"1-", b"a-1", b"1-1-1", b"1 -1", b"99999999999999999999-1"] {
            assert_eq!(parse_id(bad), None, "{bad:?}");
        }
    }
}
