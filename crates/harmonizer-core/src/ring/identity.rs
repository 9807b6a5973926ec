//! The identity tier (issue 16, docs/staging.md): a staged ring that evicts a record to honour
//! its window or make room keeps the record's identity — origin, seq, stream position — in a
//! small side log, allocated with the ring. A switch to a stream whose window proved too short
//! then knows the exact position to re-read from, where without it the application would have
//! to search for "the first event after (origin, seq)".
//!
//! The log is a ring of `K` slots, overwritten oldest first: it holds the identities of the
//! last `K - 1` records evicted and published (one slot is the producer's to write at any
//! time). Only the producer writes it, on the eviction path (never on a push that evicts
//! nothing), so the active ring's fast path does not change.
//!
//! # Orderings
//!
//! **Writing.** Before its eviction compare-exchange on the head word, the producer writes the
//! identity of the record it is about to evict into slot `n % K`, `n` being the count of
//! identities logged so far, as a seqlock: `version := 2n + 1` (`Relaxed`), a `Release` fence,
//! the words (`Relaxed`), `version := 2n + 2` (`Release`). Only if the exchange succeeds does
//! it publish the count, `logged := n + 1` (`Release`). If the exchange fails (the consumer holds
//! the front, or changed the role), the slot holds the identity of a record that was not
//! evicted; the next attempt rewrites it.
//!
//! **Reading.** The consumer reads the log only while evictions cannot happen: holding the
//! staged front (`StagedView`), or outside the staged role. It loads `logged` (`Acquire`,
//! pairing with the producer's publish: the slots of every identity counted are visible) and
//! reads slots `logged - K + 1 .. logged` as seqlock readers: `version` (`Acquire`), the words
//! (`Relaxed`), an `Acquire` fence, `version` again; a slot counts only when both versions are
//! `2i + 2` for the index `i` expected. Each of those slots holds the write of an attempt whose
//! exchange succeeded (an index is rewritten by every attempt until one succeeds, and only then
//! counted), and none is written while evictions are stopped: the producer writes only slot
//! `logged`, which the reader skips. That slot may hold a record whose exchange failed (the
//! consumer held it; it may since have been trimmed) or the one eviction that succeeded before
//! evictions stopped but is not yet counted: the reader cannot tell them apart, so it takes
//! neither. That eviction's identity shows up once the producer publishes it (the next look);
//! until then a start that needs it falls back to what the engine knows without the log,
//! never to a wrong position. The reader's range never includes slot `logged`, so a torn read
//! can only come from a stale `logged` (a write of a later index): the versions then differ
//! and the slot is skipped. (A first version also read slot `logged`, telling an eviction from
//! a failed attempt by the record's ring position against where evictions stopped; a record
//! trimmed after the failed attempt passes that test. Reading only counted slots needs neither
//! the position nor the stopping point.) Model: `tests/loom_identity.rs`.

use crossbeam_utils::CachePadded;

use super::RingError;
use crate::event::{EventHeader, FLAG_CONFLATABLE};
use crate::sync::{fence, AtomicU64, Ordering};

/// The largest identity log a ring accepts, slots (40 MiB).
pub const MAX_IDENTITIES: usize = 1 << 20;

/// Bytes of one identity log slot.
pub const IDENTITY_SLOT_BYTES: usize = core::mem::size_of::<Slot>();

/// What the identity tier keeps of an evicted record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The event's origin.
    pub origin: u32,
    /// The event's kind (`KIND_*`).
    pub kind: u16,
    /// The event's flags (`FLAG_*`).
    pub flags: u16,
    /// Its seq within the origin.
    pub seq: u64,
    /// Its position in its stream (`EventHeader::pos`).
    pub pos: u64,
    /// Its conflation key (`event::conflation_key`), if it is conflatable.
    pub key: Option<u64>,
}

struct Slot {
    version: AtomicU64,
    seq: AtomicU64,
    pos: AtomicU64,
    /// `origin | kind << 32 | flags << 48`.
    origin_kind: AtomicU64,
    /// The conflation key (0 when `flags` says the event has none).
    key: AtomicU64,
}

/// The side log of one ring (see the module docs).
pub(crate) struct IdentityLog {
    slots: Box<[Slot]>,
    /// Identities published (producer-written).
    logged: CachePadded<AtomicU64>,
}

impl IdentityLog {
    /// A log of `slots` slots (at least 2, at most [`MAX_IDENTITIES`]); `None` for 0.
    pub(crate) fn new(slots: usize) -> Result<Option<Box<IdentityLog>>, RingError> {
        if slots == 0 {
            return Ok(None);
        }
        let k = slots.clamp(2, MAX_IDENTITIES);
        let mut v = Vec::new();
        v.try_reserve_exact(k)
            .map_err(|_| RingError::OutOfMemory { bytes: k * core::mem::size_of::<Slot>() })?;
        v.extend((0..k).map(|_| Slot {
            version: AtomicU64::new(0),
            seq: AtomicU64::new(0),
            pos: AtomicU64::new(0),
            origin_kind: AtomicU64::new(0),
            key: AtomicU64::new(0),
        }));
        Ok(Some(Box::new(IdentityLog {
            slots: v.into_boxed_slice(),
            logged: CachePadded::new(AtomicU64::new(0)),
        })))
    }

    /// Slots.
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn slot(&self, i: u64) -> &Slot {
        &self.slots[(i % self.slots.len() as u64) as usize]
    }

    /// Producer, before trying to evict the record with header `h` and conflation key `key`.
    pub(crate) fn write(&self, h: &EventHeader, key: Option<u64>) {
        // Relaxed: only the producer writes `logged`.
        let n = self.logged.load(Ordering::Relaxed);
        let s = self.slot(n);
        s.version.store(2 * n + 1, Ordering::Relaxed);
        // Release fence: a reader that sees any word stored below also sees the odd version.
        fence(Ordering::Release);
        s.seq.store(h.seq, Ordering::Relaxed);
        s.pos.store(h.pos, Ordering::Relaxed);
        // The flag bit says whether there is a key: one the payload did not hold is cleared.
        let flags = if key.is_some() { h.flags } else { h.flags & !FLAG_CONFLATABLE };
        s.origin_kind
            .store(u64::from(h.origin) | u64::from(h.kind) << 32 | u64::from(flags) << 48, Ordering::Relaxed);
        s.key.store(key.unwrap_or(0), Ordering::Relaxed);
        s.version.store(2 * n + 2, Ordering::Release);
    }

    /// Producer, after the eviction the last `write` was for succeeded.
    pub(crate) fn publish(&self) {
        let n = self.logged.load(Ordering::Relaxed);
        // Release: the slot written before is visible to a consumer that acquires the count.
        self.logged.store(n + 1, Ordering::Release);
    }

    /// Consumer, while evictions are stopped (it holds the staged front, or the ring is not
    /// staged): calls `f` with the identity of each record evicted that the log still holds,
    /// oldest first.
    pub(crate) fn read(&self, mut f: impl FnMut(&Identity)) {
        // Acquire: pairs with `publish`; the slots of every identity counted are complete.
        let n = self.logged.load(Ordering::Acquire);
        let k = self.slots.len() as u64;
        for i in n.saturating_sub(k - 1)..n {
            let s = self.slot(i);
            let want = 2 * i + 2;
            if s.version.load(Ordering::Acquire) != want {
                continue;
            }
            let seq = s.seq.load(Ordering::Relaxed);
            let pos = s.pos.load(Ordering::Relaxed);
            let ok = s.origin_kind.load(Ordering::Relaxed);
            let key = s.key.load(Ordering::Relaxed);
            // Acquire fence: if any load above saw a newer write, the version below shows it.
            fence(Ordering::Acquire);
            if s.version.load(Ordering::Relaxed) != want {
                continue;
            }
            let flags = (ok >> 48) as u16;
            let key = (flags & FLAG_CONFLATABLE != 0).then_some(key);
            f(&Identity { origin: ok as u32, kind: (ok >> 32) as u16, flags, seq, pos, key });
        }
    }
}
