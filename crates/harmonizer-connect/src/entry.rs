//! What an upstream entry carries, and where: the [`Layout`] of an event's header values in an
//! upstream's named fields (Redis Streams field-value pairs, NATS message headers).
//!
//! Every value but the payload is a decimal ASCII number, so an operator can read and write
//! entries with the upstream's own tools (`redis-cli XADD feed '*' s 42 p hello`). Only `seq` is
//! required: a missing origin, time, kind or flags is 0 (data), a missing payload empty. Fields
//! the layout does not name are ignored. The position (`pos`) is never a field: the connector
//! derives it from the entry's native id.

use harmonizer_core::event::{EventHeader, KIND_DATA};

/// One upstream entry as the engine takes it: the header (with `pos` from the native id) and
/// the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The event header; `pos` is the connector's mapping of the entry's id.
    pub header: EventHeader,
    /// The payload bytes.
    pub payload: Vec<u8>,
}

/// The names of the fields (or headers) that carry an event's values. Upstreams differ in what
/// is natural (short field names in Redis, `Hz-*` headers in NATS), so each connector has a
/// default and takes any other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The origin (`u32`, default 0).
    pub origin: String,
    /// The logical sequence number within the origin (`u64`, required).
    pub seq: String,
    /// Upstream event time, nanoseconds (`u64`, default 0).
    pub ts_ns: String,
    /// The kind (`u16`: 0 data, 1 flip, 2 heartbeat; default 0).
    pub kind: String,
    /// Flags (`u16`, default 0).
    pub flags: String,
    /// The payload, raw bytes (default empty). Connectors whose messages have a body (NATS)
    /// carry the payload there and ignore this name.
    pub payload: String,
}

impl Layout {
    /// One-letter field names: `o`, `s`, `t`, `k`, `f`, `p` (the Redis connector's default).
    pub fn compact() -> Layout {
        Layout {
            origin: "o".into(),
            seq: "s".into(),
            ts_ns: "t".into(),
            kind: "k".into(),
            flags: "f".into(),
            payload: "p".into(),
        }
    }

    /// Message headers `Hz-Origin`, `Hz-Seq`, `Hz-Ts`, `Hz-Kind`, `Hz-Flags`, the payload in
    /// the body (the NATS connector's default).
    pub fn headers() -> Layout {
        Layout {
            origin: "Hz-Origin".into(),
            seq: "Hz-Seq".into(),
            ts_ns: "Hz-Ts".into(),
            kind: "Hz-Kind".into(),
            flags: "Hz-Flags".into(),
            payload: "Hz-Payload".into(),
        }
    }

    /// Reads an entry at `pos` from its named values. Values must be decimal numbers in
    /// range; a value named twice is refused (which one would be meant?).
    pub fn decode<'a, I>(&self, pos: u64, fields: I) -> Result<Entry, EntryError>
    where
        I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
    {
        let mut origin = None;
        let mut seq = None;
        let mut ts = None;
        let mut kind = None;
        let mut flags = None;
        let mut payload: Option<&[u8]> = None;
        for (name, value) in fields {
            let slot = if name == self.seq.as_bytes() {
                Slot::Num(&mut seq, &self.seq, u64::MAX)
            } else if name == self.origin.as_bytes() {
                Slot::Num(&mut origin, &self.origin, u64::from(u32::MAX))
            } else if name == self.ts_ns.as_bytes() {
                Slot::Num(&mut ts, &self.ts_ns, u64::MAX)
            } else if name == self.kind.as_bytes() {
                Slot::Num(&mut kind, &self.kind, u64::from(u16::MAX))
            } else if name == self.flags.as_bytes() {
                Slot::Num(&mut flags, &self.flags, u64::from(u16::MAX))
            } else if name == self.payload.as_bytes() {
                if payload.replace(value).is_some() {
                    return Err(EntryError::Repeated(self.payload.clone()));
                }
                continue;
            } else {
                continue;
            };
            let Slot::Num(at, field, max) = slot;
            let v = parse_decimal(value).filter(|&v| v <= max).ok_or_else(|| EntryError::BadNumber {
                field: field.clone(),
                value: String::from_utf8_lossy(&value[..value.len().min(40)]).into_owned(),
            })?;
            if at.replace(v).is_some() {
                return Err(EntryError::Repeated(field.clone()));
            }
        }
        let seq = seq.ok_or_else(|| EntryError::Missing(self.seq.clone()))?;
        // The ranges were checked above: the casts cannot truncate.
        let header = EventHeader {
            pos,
            seq,
            ts_ns: ts.unwrap_or(0),
            origin: origin.unwrap_or(0) as u32,
            kind: kind.map_or(KIND_DATA, |k| k as u16),
            flags: flags.unwrap_or(0) as u16,
        };
        Ok(Entry { header, payload: payload.unwrap_or_default().to_vec() })
    }

    /// The named values of `header` (without `pos`) and `payload`, in layout order; the origin,
    /// time, kind and flags only when not 0, the payload only when not empty.
    pub fn encode(&self, header: &EventHeader, payload: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::with_capacity(6);
        if header.origin != 0 {
            out.push((self.origin.clone(), header.origin.to_string().into_bytes()));
        }
        out.push((self.seq.clone(), header.seq.to_string().into_bytes()));
        if header.ts_ns != 0 {
            out.push((self.ts_ns.clone(), header.ts_ns.to_string().into_bytes()));
        }
        if header.kind != KIND_DATA {
            out.push((self.kind.clone(), header.kind.to_string().into_bytes()));
        }
        if header.flags != 0 {
            out.push((self.flags.clone(), header.flags.to_string().into_bytes()));
        }
        if !payload.is_empty() {
            out.push((self.payload.clone(), payload.to_vec()));
        }
        out
    }
}

/// Where a parsed number goes, under which name, and its largest value.
enum Slot<'s> {
    Num(&'s mut Option<u64>, &'s String, u64),
}

/// A decimal `u64`: ASCII digits only, no sign or spaces, at most 20 of them, no overflow.
fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 20 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// An entry the layout cannot read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryError {
    /// The required `seq` value is missing.
    Missing(String),
    /// A value is not a decimal number in its range.
    BadNumber {
        /// The field's name.
        field: String,
        /// The value (its first 40 bytes, lossily as text).
        value: String,
    },
    /// A field is named twice.
    Repeated(String),
}

impl core::fmt::Display for EntryError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EntryError::Missing(name) => write!(f, "the entry has no `{name}` (its seq)"),
            EntryError::BadNumber { field, value } => {
                write!(f, "`{field}` is {value:?}, not a decimal number in range")
            }
            EntryError::Repeated(name) => write!(f, "`{name}` appears twice"),
        }
    }
}

impl std::error::Error for EntryError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs<'a>(v: &'a [(&'a str, &'a [u8])]) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        v.iter().map(|(k, v)| (k.as_bytes(), *v))
    }

    #[test]
    fn round_trip_and_defaults() {
        let l = Layout::compact();
        let h = EventHeader { pos: 9, seq: 42, ts_ns: 7, origin: 3, kind: 1, flags: 1 };
        let fields = l.encode(&h, b"abc");
        let back = l.decode(9, fields.iter().map(|(k, v)| (k.as_bytes(), v.as_slice()))).unwrap();
        assert_eq!(back, Entry { header: h, payload: b"abc".to_vec() });
        // Only the seq: everything else defaults.
        let e = l.decode(5, pairs(&[("s", b"1"), ("other", b"x")])).unwrap();
        assert_eq!(e.header, EventHeader { pos: 5, seq: 1, ts_ns: 0, origin: 0, kind: KIND_DATA, flags: 0 });
        assert!(e.payload.is_empty());
    }

    #[test]
    fn refusals_name_the_field() {
        let l = Layout::compact();
        assert_eq!(l.decode(1, pairs(&[("p", b"x")])), Err(EntryError::Missing("s".into())));
        for bad in [&b""[..], b"-1", b"+1", b" 1", b"1x", b"18446744073709551616", b"000000000000000000001"] {
            assert!(
                matches!(l.decode(1, pairs(&[("s", bad)])), Err(EntryError::BadNumber { .. })),
                "{bad:?}"
            );
        }
        assert!(matches!(
            l.decode(1, pairs(&[("s", b"1"), ("o", b"4294967296")])),
            Err(EntryError::BadNumber { .. })
        ));
        assert!(matches!(
            l.decode(1, pairs(&[("s", b"1"), ("k", b"65536")])),
            Err(EntryError::BadNumber { .. })
        ));
        assert_eq!(l.decode(1, pairs(&[("s", b"1"), ("s", b"2")])), Err(EntryError::Repeated("s".into())));
        assert_eq!(
            l.decode(1, pairs(&[("s", b"1"), ("p", b"a"), ("p", b"b")])),
            Err(EntryError::Repeated("p".into()))
        );
        assert_eq!(l.decode(1, pairs(&[("s", b"18446744073709551615")])).unwrap().header.seq, u64::MAX);
    }
}
