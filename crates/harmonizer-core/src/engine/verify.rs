//! Verified switches and the exact position map (issue 17, docs/verify.md).
//!
//! While a candidate T is staged, the engine meets both copies of an event: the one the active
//! stream S delivered and the one T carries. S's copy is gone once delivered, so the engine keeps
//! a short **delivery memory** of what it delivered while something was staged: per event its
//! origin, seq, position and a digest. When T's copy is trimmed from its window as delivered
//! (T leads S: at the next poll after S delivered it; T lags S: as soon as it arrives), it is
//! **matched** against that memory by (origin, seq):
//!
//! - same digest: one event **verified**, and the pair `(origin, seq) → (pos on S, pos on T)`
//!   goes into the **position map**, compressed into runs of constant strides;
//! - another digest: a **mismatch** (`Notice::Mismatch`), and by policy
//!   ([`MismatchPolicy::BlockSwitch`]) a switch to T is refused until T has verified
//!   `mismatch_window` events since;
//! - no entry (T lags by more than the memory, the entry was overwritten, or S's copy was
//!   delivered before staging began or filled from T itself): **unverified**, counted, never
//!   guessed.
//!
//! Nothing here allocates after construction; the memory and the map are bounded, sized by
//! [`EngineConfig::verify_records`](super::EngineConfig::verify_records) and
//! [`EngineConfig::map_runs`](super::EngineConfig::map_runs). Single-threaded: it lives on the
//! poll thread with the rest of the engine.

use super::MAX_STREAMS;
use crate::event::{EventHeader, FLAG_UPSTREAM_ERROR};

/// Largest delivery memory, entries (32 bytes each: 128 MiB).
pub const MAX_VERIFY_RECORDS: usize = 1 << 22;
/// Largest position map, runs (72 bytes each: 72 MiB).
pub const MAX_MAP_RUNS: usize = 1 << 20;
/// Bytes one run of the position map takes.
pub const MAP_RUN_BYTES: usize = core::mem::size_of::<RunSlot>();

/// What a mismatch between the two copies of an event does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MismatchPolicy {
    /// Report it (`Notice::Mismatch`), count it, and switch as flips say.
    Report,
    /// Report it, and refuse a switch to the stream that carried the other copy
    /// (`Notice::SwitchBlocked`) until it has verified
    /// [`mismatch_window`](super::EngineConfig::mismatch_window) events since its last mismatch.
    BlockSwitch,
}

/// The 64-bit digest both copies of an event must agree on: XXH3-64 of the payload, seeded with
/// the kind and the flags the application sets (not [`FLAG_UPSTREAM_ERROR`], which a transport
/// sets per stream). Origin and seq are compared as they are; the position (stream-local) and
/// `ts_ns` (stamped by the transport in some deployments) are not compared. docs/verify.md
/// says why XXH3 (benches/digest.rs).
#[inline]
pub fn event_digest(header: &EventHeader, payload: &[u8]) -> u64 {
    let seed = u64::from(header.kind) | (u64::from(header.flags & !FLAG_UPSTREAM_ERROR) << 16);
    xxhash_rust::xxh3::xxh3_64_with_seed(payload, seed)
}

/// One pair of the position map, or of a switch record: event `(origin, seq)` sits at
/// `from_pos` on stream `from` and at `to_pos` on stream `to`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PositionPair {
    /// The origin.
    pub origin: u32,
    /// The seq.
    pub seq: u64,
    /// Its position on the stream delivered from (S).
    pub from_pos: u64,
    /// Its position on the other stream (T).
    pub to_pos: u64,
}

/// A run of the position map: `len` events of `origin` with consecutive seqs from `first_seq`,
/// the `k`-th at `from_pos + k * from_stride` on stream `from` (the stream active when they were
/// matched) and at `to_pos + k * to_stride` on stream `to` (the staged one). Strides are 0 only
/// when `len` is 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapRun {
    /// The stream the events were delivered from (active then).
    pub from: u32,
    /// The staged stream whose copies matched.
    pub to: u32,
    /// The origin.
    pub origin: u32,
    /// Seq of the run's first event.
    pub first_seq: u64,
    /// Its position on `from`.
    pub from_pos: u64,
    /// Its position on `to`.
    pub to_pos: u64,
    /// Positions on `from` per seq.
    pub from_stride: u64,
    /// Positions on `to` per seq.
    pub to_stride: u64,
    /// Events in the run.
    pub len: u64,
}

impl MapRun {
    /// Translates `pos` on stream `a` into the position on stream `b` of the same event, if
    /// `pos` is one of this run's events on `a` (either direction of the run).
    pub fn translate(&self, a: u32, b: u32, pos: u64) -> Option<u64> {
        let (a0, sa, b0, sb) = if self.from == a && self.to == b {
            (self.from_pos, self.from_stride, self.to_pos, self.to_stride)
        } else if self.from == b && self.to == a {
            (self.to_pos, self.to_stride, self.from_pos, self.from_stride)
        } else {
            return None;
        };
        let d = pos.checked_sub(a0)?;
        if d == 0 {
            return Some(b0);
        }
        if sa == 0 || d % sa != 0 {
            return None;
        }
        let k = d / sa;
        (k < self.len).then(|| b0 + k * sb)
    }

    /// The pair of the run's `k`-th event (`k < len`).
    pub fn pair(&self, k: u64) -> PositionPair {
        PositionPair {
            origin: self.origin,
            seq: self.first_seq + k,
            from_pos: self.from_pos + k * self.from_stride,
            to_pos: self.to_pos + k * self.to_stride,
        }
    }
}

/// What the engine verified of one staged stream against the active stream, since it was
/// staged against it (reset when either changes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PairCounts {
    /// Events whose two copies had the same digest.
    pub verified: u64,
    /// Events whose copies differed.
    pub mismatched: u64,
    /// Events verified since the last mismatch.
    pub since_mismatch: u64,
    /// The last event verified: its positions on the active stream and on the staged one.
    pub last: Option<PositionPair>,
}

/// What the delivery memory remembers of one delivered event.
#[derive(Clone, Copy)]
struct Delivered {
    seq: u64,
    pos: u64,
    digest: u64,
    origin: u32,
    /// Index of the stream it was delivered from; `u32::MAX`: empty.
    stream: u32,
}

const EMPTY: Delivered = Delivered { seq: 0, pos: 0, digest: 0, origin: 0, stream: u32::MAX };

#[derive(Clone, Copy, Default)]
struct RunSlot {
    run: MapRun,
    /// Serial number of the run (0: empty; runs count from 1).
    serial: u64,
}

/// A match's outcome, for the caller to report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Matched {
    /// Both copies agree.
    Verified,
    /// The copies differ: the active stream's copy was at this position.
    Mismatch { active_pos: u64 },
    /// Nothing remembered of the active stream's copy.
    Unverified,
}

/// The delivery memory, the matching and the position map (module docs).
pub(super) struct Verifier {
    memory: Box<[Delivered]>,
    mask: usize,
    /// Slot offset between origins (odd, about the golden section of the memory), so origins
    /// that advance together keep apart.
    origin_stride: u64,
    runs: Box<[RunSlot]>,
    /// Serial of the last run begun (0: none).
    last_serial: u64,
    /// Per staged stream index and origin: the serial of its open run (0: none).
    open: Box<[u64]>,
    max_origins: usize,
    pub(super) policy: MismatchPolicy,
    pub(super) window: u64,
    /// Per stream index, as the staged side: counts against `against[i]`.
    pub(super) pairs: [PairCounts; MAX_STREAMS],
    against: [usize; MAX_STREAMS],
    /// Runs overwritten by newer ones.
    pub(super) runs_dropped: u64,
}

/// Bytes a verifier of `records` memory entries and `runs` map runs allocates (before rounding
/// `records` up to a power of two), for `max_origins` origins and `streams` streams.
pub fn verifier_bytes(records: usize, runs: usize, streams: usize, max_origins: usize) -> usize {
    records.next_power_of_two().saturating_mul(core::mem::size_of::<Delivered>())
        + runs.saturating_mul(core::mem::size_of::<RunSlot>())
        + streams.saturating_mul(max_origins).saturating_mul(8)
}

impl Verifier {
    /// `records` (rounded up to a power of two) and `runs` both at least 1; `None` when the
    /// allocation fails.
    pub(super) fn new(
        records: usize,
        runs: usize,
        streams: usize,
        max_origins: usize,
        policy: MismatchPolicy,
        window: u64,
    ) -> Option<Box<Verifier>> {
        let n = records.max(1).next_power_of_two();
        let memory = alloc_filled(n, EMPTY)?;
        let runs = alloc_filled(runs.max(1), RunSlot::default())?;
        let open = alloc_filled(streams * max_origins, 0u64)?;
        let origin_stride = ((n as f64 * 0.618_033_988_75) as u64) | 1;
        Some(Box::new(Verifier {
            memory,
            mask: n - 1,
            origin_stride,
            runs,
            last_serial: 0,
            open,
            max_origins,
            policy,
            window,
            pairs: [PairCounts::default(); MAX_STREAMS],
            against: [usize::MAX; MAX_STREAMS],
            runs_dropped: 0,
        }))
    }

    #[inline]
    fn slot(&self, origin: u32, seq: u64) -> usize {
        (seq.wrapping_add(u64::from(origin).wrapping_mul(self.origin_stride)) as usize) & self.mask
    }

    /// Remembers an event delivered from stream index `stream`.
    #[inline]
    pub(super) fn record(&mut self, stream: usize, h: &EventHeader, payload: &[u8]) {
        let k = self.slot(h.origin, h.seq);
        self.memory[k] = Delivered {
            seq: h.seq,
            pos: h.pos,
            digest: event_digest(h, payload),
            origin: h.origin,
            stream: stream as u32,
        };
    }

    /// The counts of staged stream `staged` against `active` (zero if it was staged against
    /// another).
    pub(super) fn counts(&self, active: usize, staged: usize) -> PairCounts {
        if self.against[staged] == active {
            self.pairs[staged]
        } else {
            PairCounts::default()
        }
    }

    /// Forgets what stream `staged` verified (it is staged anew, or became active).
    pub(super) fn reset(&mut self, staged: usize) {
        self.pairs[staged] = PairCounts::default();
        self.against[staged] = usize::MAX;
        let mo = self.max_origins;
        self.open[staged * mo..(staged + 1) * mo].fill(0);
    }

    /// True when policy refuses a switch from `active` to `to` (a mismatch among its last
    /// `window` matched events).
    pub(super) fn blocks(&self, active: usize, to: usize) -> bool {
        let c = self.counts(active, to);
        self.policy == MismatchPolicy::BlockSwitch && c.mismatched > 0 && c.since_mismatch < self.window
    }

    /// Matches T's copy of a delivered event (`h`, `payload`, on staged stream index `staged`)
    /// against what `active` delivered; `ids` are the stream ids by index (for the map).
    pub(super) fn match_copy(
        &mut self,
        active: usize,
        staged: usize,
        h: &EventHeader,
        payload: &[u8],
        ids: (u32, u32),
    ) -> Matched {
        let d = self.memory[self.slot(h.origin, h.seq)];
        if d.stream != active as u32 || d.origin != h.origin || d.seq != h.seq {
            return Matched::Unverified;
        }
        if self.against[staged] != active {
            self.reset(staged);
            self.against[staged] = active;
        }
        let c = &mut self.pairs[staged];
        if d.digest != event_digest(h, payload) {
            c.mismatched += 1;
            c.since_mismatch = 0;
            return Matched::Mismatch { active_pos: d.pos };
        }
        c.verified += 1;
        c.since_mismatch += 1;
        let pair = PositionPair { origin: h.origin, seq: h.seq, from_pos: d.pos, to_pos: h.pos };
        c.last = Some(pair);
        self.map(staged, ids, pair);
        Matched::Verified
    }

    /// Adds a verified pair to the map: it extends the open run of its origin when it continues
    /// its strides, else begins a run (overwriting the oldest when the map is full).
    fn map(&mut self, staged: usize, (from, to): (u32, u32), p: PositionPair) {
        let Some(open_k) = (p.origin as usize).checked_add(staged * self.max_origins) else { return };
        let Some(&serial) = self.open.get(open_k) else { return };
        let cap = self.runs.len() as u64;
        if serial != 0 {
            let slot = &mut self.runs[((serial - 1) % cap) as usize];
            let r = &mut slot.run;
            if slot.serial == serial
                && r.from == from
                && r.to == to
                && p.seq == r.first_seq.wrapping_add(r.len)
            {
                if r.len == 1 && p.from_pos > r.from_pos && p.to_pos > r.to_pos {
                    r.from_stride = p.from_pos - r.from_pos;
                    r.to_stride = p.to_pos - r.to_pos;
                    r.len = 2;
                    return;
                }
                if r.len > 1
                    && Some(p.from_pos)
                        == r.len.checked_mul(r.from_stride).and_then(|x| x.checked_add(r.from_pos))
                    && Some(p.to_pos) == r.len.checked_mul(r.to_stride).and_then(|x| x.checked_add(r.to_pos))
                {
                    r.len += 1;
                    return;
                }
            }
        }
        self.last_serial += 1;
        let serial = self.last_serial;
        let slot = &mut self.runs[((serial - 1) % cap) as usize];
        if slot.serial != 0 {
            self.runs_dropped += 1;
        }
        *slot = RunSlot {
            run: MapRun {
                from,
                to,
                origin: p.origin,
                first_seq: p.seq,
                from_pos: p.from_pos,
                to_pos: p.to_pos,
                from_stride: 0,
                to_stride: 0,
                len: 1,
            },
            serial,
        };
        self.open[open_k] = serial;
    }

    /// The map's runs, oldest first.
    pub(super) fn runs(&self) -> impl DoubleEndedIterator<Item = &MapRun> + '_ {
        let cap = self.runs.len() as u64;
        let first = self.last_serial.saturating_sub(cap) + 1;
        (first..=self.last_serial).map(move |s| &self.runs[((s - 1) % cap) as usize].run)
    }

    /// Runs begun so far (kept or overwritten).
    pub(super) fn runs_begun(&self) -> u64 {
        self.last_serial
    }

    /// The position on stream `b` of the event at `pos` on stream `a`, from the newest run that
    /// holds it; `None` when no run does.
    pub(super) fn translate(&self, a: u32, b: u32, pos: u64) -> Option<u64> {
        self.runs().rev().find_map(|r| r.translate(a, b, pos))
    }
}

/// A boxed slice of `n` copies of `v`, or `None` when it cannot be allocated.
fn alloc_filled<T: Copy>(n: usize, v: T) -> Option<Box<[T]>> {
    let mut x = Vec::new();
    x.try_reserve_exact(n).ok()?;
    x.resize(n, v);
    Some(x.into_boxed_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(origin: u32, seq: u64, pos: u64) -> EventHeader {
        EventHeader { pos, seq, ts_ns: 0, origin, kind: 0, flags: 0 }
    }

    #[test]
    fn the_digest_ignores_position_time_and_the_transport_flag_only() {
        let a = hdr(0, 1, 10);
        let b = EventHeader { pos: 99, ts_ns: 5, flags: FLAG_UPSTREAM_ERROR, ..a };
        assert_eq!(event_digest(&a, b"x"), event_digest(&b, b"x"));
        assert_ne!(event_digest(&a, b"x"), event_digest(&a, b"y"));
        assert_ne!(event_digest(&a, b"x"), event_digest(&EventHeader { kind: 3, ..a }, b"x"));
        let c = EventHeader { flags: crate::event::FLAG_CONFLATABLE, ..a };
        assert_ne!(event_digest(&a, b"x"), event_digest(&c, b"x"));
    }

    #[test]
    fn matching_verifies_maps_and_reports_mismatches() {
        let mut v = Verifier::new(64, 4, 2, 2, MismatchPolicy::BlockSwitch, 3).unwrap();
        for seq in 1..=10u64 {
            v.record(0, &hdr(0, seq, 100 + 2 * seq), b"p");
        }
        for seq in 1..=10u64 {
            let got = v.match_copy(0, 1, &hdr(0, seq, 7 + 3 * seq), b"p", (5, 6));
            assert_eq!(got, Matched::Verified);
        }
        let runs: Vec<_> = v.runs().copied().collect();
        assert_eq!(runs.len(), 1);
        assert_eq!(
            runs[0],
            MapRun {
                from: 5,
                to: 6,
                origin: 0,
                first_seq: 1,
                from_pos: 102,
                to_pos: 10,
                from_stride: 2,
                to_stride: 3,
                len: 10
            }
        );
        for seq in 1..=10u64 {
            assert_eq!(v.translate(5, 6, 100 + 2 * seq), Some(7 + 3 * seq));
            assert_eq!(v.translate(6, 5, 7 + 3 * seq), Some(100 + 2 * seq));
        }
        assert_eq!(v.translate(5, 6, 103), None, "between two events");
        assert_eq!(v.translate(5, 6, 122), None, "past the run");
        assert!(!v.blocks(0, 1));
        // A different payload: a mismatch, and the switch is blocked for 3 verified events.
        v.record(0, &hdr(0, 11, 122), b"p");
        assert_eq!(v.match_copy(0, 1, &hdr(0, 11, 40), b"q", (5, 6)), Matched::Mismatch { active_pos: 122 });
        assert!(v.blocks(0, 1));
        for seq in 12..=14u64 {
            v.record(0, &hdr(0, seq, 100 + 2 * seq), b"p");
            assert!(v.blocks(0, 1));
            assert_eq!(v.match_copy(0, 1, &hdr(0, seq, 7 + 3 * seq), b"p", (5, 6)), Matched::Verified);
        }
        assert!(!v.blocks(0, 1));
        let c = v.counts(0, 1);
        assert_eq!((c.verified, c.mismatched, c.since_mismatch), (13, 1, 3));
        // Not remembered (another seq, or delivered from the staged stream itself).
        assert_eq!(v.match_copy(0, 1, &hdr(0, 99, 1), b"p", (5, 6)), Matched::Unverified);
        v.record(1, &hdr(1, 1, 1), b"p");
        assert_eq!(v.match_copy(0, 1, &hdr(1, 1, 1), b"p", (5, 6)), Matched::Unverified);
    }

    #[test]
    fn a_full_map_drops_its_oldest_runs() {
        let mut v = Verifier::new(64, 2, 2, 1, MismatchPolicy::Report, 1).unwrap();
        // Irregular positions: runs (1, 2), (4, 7) and (11); the first is overwritten.
        let pos = [1u64, 2, 4, 7, 11];
        for (k, &p) in pos.iter().enumerate() {
            let seq = k as u64 + 1;
            v.record(0, &hdr(0, seq, p), b"");
            assert_eq!(v.match_copy(0, 1, &hdr(0, seq, p), b"", (0, 1)), Matched::Verified);
        }
        assert_eq!(v.runs_begun(), 3);
        assert_eq!(v.runs_dropped, 1);
        assert_eq!(v.translate(0, 1, 7), Some(7));
        assert_eq!(v.translate(0, 1, 11), Some(11));
        assert_eq!(v.translate(0, 1, 1), None, "dropped");
    }
}
