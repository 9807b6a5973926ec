//! The conflation tier (docs/staging.md, "Tiers"): for a stream staged with a window too short
//! for its lead, events the application marks conflatable (`event::FLAG_CONFLATABLE`, the key
//! in the payload's first 8 bytes) need not be re-read when the window evicted them: of each
//! key, the latest event of the hole is delivered and the rest are reported dropped, with
//! `Notice::Conflated`. Lossy, never silent; exact, or not at all.
//!
//! Two parts, both allocated at construction:
//! - **The store** (here): while a stream is staged, the engine looks at each record its window
//!   receives once (at the poll after it arrives, holding the staged front) and keeps a copy of
//!   the latest conflatable event per `(origin, key)`, payloads up to a bound. Nothing crosses
//!   threads: the engine reads its own ring under the staged protocol and copies into memory
//!   only it touches.
//! - **The identity log** (`ring::identity`, the identity tier): the producer logs every record
//!   it evicts, with its flags and key, so the engine knows exactly what a hole held even for
//!   records it never looked at (a burst between polls).
//!
//! A hole `(origin, from ..= to)` met on the active stream is conflated only when the log holds
//! every seq of it, each marked conflatable, and for each key the store's copy is the key's
//! latest event of the hole (or a later one, which the stream delivers after the hole). Then the
//! survivors are the store's copies that lie in the hole; everything else in it is dropped and
//! counted. Anything short of that (an unmarked event, a seq the log lost, a copy older than the
//! hole's latest, a payload over the bound, more keys than the store holds) leaves the hole to
//! the gap policy (an exact re-read, with the identity tier), counted as a fallback.

use super::{Engine, Handler, Notice};
use crate::event::{conflation_key, EventHeader, KIND_DATA};
use crate::ring::Record;

/// The most keys a store holds (`EngineConfig::conflation_keys`).
pub const MAX_CONFLATION_KEYS: usize = 1 << 20;
/// The largest payload a store keeps a copy of (`EngineConfig::conflation_payload`), bytes.
pub const MAX_CONFLATION_PAYLOAD: usize = 1 << 16;
/// The most bytes one stream's store may take ([`conflation_store_bytes`]): 1 GiB.
pub const MAX_CONFLATION_STORE_BYTES: usize = 1 << 30;

/// Bytes one stream's conflation store takes for `keys` keys and payloads up to `payload_max`
/// (`EngineConfig::conflation_keys`, `conflation_payload`): the table and the copies, not
/// counting the small scratch a hole needs.
pub fn conflation_store_bytes(keys: usize, payload_max: usize) -> usize {
    let slots = keys.saturating_mul(2).checked_next_power_of_two().unwrap_or(usize::MAX);
    slots.saturating_mul(payload_max.saturating_add(core::mem::size_of::<Entry>()))
}

/// No record looked at yet in this staging episode.
const NO_CURSOR: u64 = u64::MAX;
/// An entry whose latest event's payload was over the bound: no copy.
const NO_COPY: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Entry {
    used: bool,
    origin: u32,
    key: u64,
    header: EventHeader,
    /// Payload bytes kept, or [`NO_COPY`].
    len: u32,
}

const EMPTY: Entry = Entry { used: false, origin: 0, key: 0, header: EMPTY_HEADER, len: 0 };
const EMPTY_HEADER: EventHeader = EventHeader { pos: 0, seq: 0, ts_ns: 0, origin: 0, kind: 0, flags: 0 };

/// One stream's store (see the module docs).
pub(super) struct ConflationStore {
    /// Open addressing, linear probing; a power of two, at least twice `keys`.
    entries: Box<[Entry]>,
    /// `payload_max` bytes per entry.
    arena: Box<[u8]>,
    payload_max: usize,
    keys: usize,
    used: usize,
    /// Ring position after the last record looked at, or [`NO_CURSOR`].
    cursor: u64,
    /// The ring's epoch when the store was last filled: a new staging episode starts afresh.
    epoch: u64,
    /// A new key did not fit: no hole is conflated until the next staging episode.
    full: bool,
    /// Scratch for one hole: a bit per seq (`identity_records` bits), and the survivors'
    /// entries.
    bits: Box<[u64]>,
    survivors: Box<[u32]>,
}

fn alloc<T: Copy>(n: usize, v: T) -> Option<Box<[T]>> {
    let mut b = Vec::new();
    b.try_reserve_exact(n).ok()?;
    b.resize(n, v);
    Some(b.into_boxed_slice())
}

impl ConflationStore {
    /// A store for `keys` keys of payloads up to `payload_max` bytes, for holes of up to
    /// `hole_max` seqs (the identity log's reach). `None` if it cannot be allocated.
    pub(super) fn new(keys: usize, payload_max: usize, hole_max: usize) -> Option<Box<ConflationStore>> {
        let slots = keys.checked_mul(2)?.checked_next_power_of_two()?;
        Some(Box::new(ConflationStore {
            entries: alloc(slots, EMPTY)?,
            arena: alloc(slots.checked_mul(payload_max)?, 0u8)?,
            payload_max,
            keys,
            used: 0,
            cursor: NO_CURSOR,
            epoch: 0,
            full: false,
            bits: alloc(hole_max.div_ceil(64).max(1), 0u64)?,
            survivors: alloc(keys.min(hole_max).max(1), 0u32)?,
        }))
    }

    /// The stream's ring was replaced (a ring file attached or detached): what the store holds
    /// is still true of the stream, but its cursor is a position on another ring, and the new
    /// ring's epoch counts on its own. Starts afresh at the next look.
    #[cfg_attr(not(shm), allow(dead_code))]
    pub(super) fn forget(&mut self) {
        self.reset(u64::MAX);
    }

    fn reset(&mut self, epoch: u64) {
        self.entries.fill(EMPTY);
        self.used = 0;
        self.cursor = NO_CURSOR;
        self.epoch = epoch;
        self.full = false;
    }

    fn find(&self, origin: u32, key: u64) -> usize {
        let mask = self.entries.len() - 1;
        let mut i = (crate::flip::splitmix64(key ^ u64::from(origin).rotate_left(32)) as usize) & mask;
        loop {
            let e = &self.entries[i];
            if !e.used || (e.origin == origin && e.key == key) {
                return i;
            }
            i = (i + 1) & mask;
        }
    }

    fn get(&self, origin: u32, key: u64) -> Option<(usize, &Entry)> {
        let i = self.find(origin, key);
        let e = &self.entries[i];
        e.used.then_some((i, e))
    }

    /// Keeps `r` if it is the latest conflatable event of its key looked at.
    fn look(&mut self, r: &Record<'_>) {
        let h = r.header;
        let Some(key) = (h.kind == KIND_DATA).then(|| conflation_key(h.flags, r.payload)).flatten() else {
            return;
        };
        let i = self.find(h.origin, key);
        let e = &mut self.entries[i];
        if e.used {
            if h.seq < e.header.seq {
                return; // an older copy (a re-read of the stream): the newer stays
            }
        } else if self.used == self.keys {
            self.full = true;
            return;
        } else {
            self.used += 1;
            *e = Entry { used: true, origin: h.origin, key, ..EMPTY };
        }
        e.header = *h;
        if r.payload.len() <= self.payload_max {
            e.len = r.payload.len() as u32;
            let at = i * self.payload_max;
            self.arena[at..at + r.payload.len()].copy_from_slice(r.payload);
        } else {
            e.len = NO_COPY;
        }
    }

    fn payload(&self, i: usize) -> &[u8] {
        let at = i * self.payload_max;
        &self.arena[at..at + self.entries[i].len as usize]
    }

    /// The stream is staged, its front held in `view`, its ring at `epoch`: looks at the records
    /// that arrived since the last look (the cursor), keeping the latest conflatable event per
    /// key. A new staging episode (the ring's epoch moved) starts the store afresh.
    pub(super) fn look_staged(
        &mut self,
        epoch: u64,
        view: &mut crate::ring::StagedView<'_, super::StreamStorage>,
    ) {
        if self.epoch != epoch {
            self.reset(epoch);
        }
        // Looking again at a record is harmless (the newest copy stays), so a cursor the front
        // has passed simply restarts at the front.
        let mut it = match self.cursor {
            NO_CURSOR => view.iter(),
            at => view.iter_from(at),
        };
        while let Some(r) = it.next() {
            self.look(&r);
        }
        self.cursor = it.position();
    }
}

impl Engine {
    /// The conflation tier, for a hole `(origin, from ..= to)` before the active stream's next
    /// record that no staged stream filled: conflates it if it can (module docs), reporting
    /// `Notice::Conflated` and delivering the survivors in seq order; false to leave the hole to
    /// the gap policy. Out of line and cold: inlined into the gap path, it cost the steady-state
    /// delivery loop register spills, 4 instructions per event (scripts/push-cost.sh).
    #[cold]
    #[inline(never)]
    pub(super) fn try_conflate<H: Handler>(&mut self, origin: u32, from: u64, to: u64, h: &mut H) -> bool {
        let Engine { streams, active, tracker, stats, last_delivered_ts, in_flight, clock, staging, .. } =
            self;
        let conflation_tried = &mut staging.conflation_tried;
        let s = &mut streams[*active];
        let Some(store) = s.conflation.as_deref_mut() else { return false };
        let hole = (*active, origin, from, to);
        if *conflation_tried == Some(hole) {
            return false; // the same hole, held: nothing it depends on has changed
        }
        let n = to - from + 1;
        if store.full || n > (store.bits.len() * 64) as u64 {
            *conflation_tried = Some(hole);
            stats.conflation_fallbacks += 1;
            return false;
        }
        let words = n.div_ceil(64) as usize;
        store.bits[..words].fill(0);
        let mut ok = true;
        let mut survivors = 0usize;
        let c = &s.consumer;
        let _ = c.evicted_identities(|id| {
            if !ok || id.origin != origin || id.kind != KIND_DATA || id.seq < from || id.seq > to {
                return;
            }
            let off = (id.seq - from) as usize;
            let bit = 1u64 << (off % 64);
            if store.bits[off / 64] & bit != 0 {
                return; // logged twice (the stream was read twice)
            }
            store.bits[off / 64] |= bit;
            let Some(key) = id.key else {
                ok = false; // not conflatable: only a re-read brings it
                return;
            };
            match store.get(origin, key) {
                // The copy is this very event, the key's latest of the hole: a survivor.
                Some((i, e)) if e.header.seq == id.seq => {
                    if e.len == NO_COPY || survivors == store.survivors.len() {
                        ok = false;
                    } else {
                        store.survivors[survivors] = i as u32;
                        survivors += 1;
                    }
                }
                // A later event of the key was looked at: this one is superseded.
                Some((_, e)) if e.header.seq > id.seq => {}
                // The latest was never looked at (evicted in a burst between polls).
                _ => ok = false,
            }
        });
        // Every seq of the hole must have been logged; and a survivor is the key's latest
        // (a later event of the hole with the same key would have superseded it).
        let complete = (0..words).all(|w| {
            let want = if w + 1 == words && n % 64 != 0 { (1u64 << (n % 64)) - 1 } else { u64::MAX };
            store.bits[w] == want
        });
        if !ok || !complete {
            *conflation_tried = Some(hole);
            stats.conflation_fallbacks += 1;
            return false;
        }
        // Seq order (the log is in eviction order, which is the stream's: already sorted, but
        // a stream read twice may log out of order).
        let entries = &store.entries;
        store.survivors[..survivors].sort_unstable_by_key(|&i| entries[i as usize].header.seq);
        let dropped = n - survivors as u64;
        if let Some(f) = in_flight.as_mut() {
            // The switch's target did not reach back: lossy, so not seamless; its stall ends here,
            // delivery being contiguous again once the survivors are out.
            f.gapped = true;
            super::poll::emit_switched(in_flight, stats, &**clock, 0, h);
        }
        h.notice(&Notice::Conflated { stream: s.id, origin, from_seq: from, to_seq: to, dropped });
        for k in 0..survivors {
            let i = store.survivors[k] as usize;
            let e = &store.entries[i];
            let rec = Record { header: &e.header, payload: store.payload(i), after_drop: false };
            h.event(s.id, &rec);
            tracker.advance(origin, e.header.seq);
            stats.delivered += 1;
            stats.delivered_bytes += rec.payload.len() as u64;
            *last_delivered_ts = e.header.ts_ns;
        }
        tracker.advance(origin, to);
        stats.conflated += dropped;
        stats.conflation_survivors += survivors as u64;
        true
    }
}
