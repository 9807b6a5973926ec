//! The lock-free SPSC event ring.
//!
//! One producer (a network thread) and one consumer (the engine's poll loop) share a ring of
//! variable-length records: the 32-byte [`EventHeader`] plus a payload of up to
//! `max_payload` bytes. Capacity is fixed at construction and nothing is allocated afterwards.
//!
//! - Zero-copy write: [`Producer::reserve`] hands out the record's header and payload in place;
//!   [`WriteSlot::commit`] publishes it. [`Producer::batch`] publishes many with one store.
//! - Zero-copy read: [`Consumer::peek`] borrows the oldest record, [`Consumer::release`] frees it;
//!   [`Consumer::read_chunk`] reads many and frees them with one store.
//! - A ring has a [`Role`]: **active** (a full ring pushes back with [`PushError::Full`]),
//!   **staged** (a candidate stream: the ring keeps the most recent *window* of records and the
//!   producer is never blocked), or **idle** (pushes are discarded). The consumer moves it between
//!   roles with [`Consumer::set_role`]; the producer sees the change on its next push.
//!
//! Design notes with pictures: `docs/ring.md`.
//!
//! # The positions
//!
//! Positions are byte offsets modulo 2^61 (`layout`). The **tail** is written only by the
//! producer. The **head word** packs the consumer's release position with a lock bit and the
//! role, so that a role change and an eviction can never both succeed against the same state:
//! every change of role, and every eviction, is a compare-exchange on this one word.
//!
//! Each side caches the other's position and reloads it only when the ring looks full (producer)
//! or empty (consumer): in the steady state a push or a pop touches no line the other side
//! writes, except for the one store that publishes. The producer additionally reads the
//! `epoch` word (written only on role changes, so it stays in the producer's cache) on every
//! push, which is how it notices a role change without loading the head word.
//!
//! # Orderings
//!
//! **Push/pop (active role).** The producer writes a record's bytes, then stores `tail` with
//! `Release`. The consumer loads `tail` with `Acquire` before reading any byte below it, so it
//! sees the bytes complete. Symmetrically the consumer reads the record, then stores the head
//! word with `Release`; the producer loads it with `Acquire` before reusing the space, so the
//! consumer's reads happen-before the overwrite. A batch is many records and one store: the
//! `Release` covers every write before it. Nothing else orders anything, so the cached copies
//! may be stale; stale only ever means "less free" (producer) or "fewer records" (consumer),
//! never an overlap. A consumer may also release less than it read
//! ([`ReadChunk::commit_holding_from`] keeps records lent past the read): the same `Release`
//! store of an earlier position, so the held records' space simply stays the consumer's until
//! a later store frees it (model: `loom_a_held_record_is_not_reused_until_released`).
//!
//! **Eviction against trim (staged role).** In the staged role the producer also moves the head
//! word, to evict the oldest record, with `compare_exchange(expected, expected + len)`, `AcqRel`.
//! Its `Release` half matters because the consumer takes its read position from this word: a
//! consumer that acquires an evicted position must also see the tail the producer published
//! before evicting, or it could start reading at a head beyond its (stale) tail. The
//! consumer reads a staged ring only while it holds the lock bit, which it takes with a
//! compare-exchange (`Acquire`) and releases with a `Release` store of the new (unlocked) word.
//! The producer's exchange expects an unlocked, staged word, so while the consumer holds the lock
//! no eviction can succeed (the producer sheds the new record instead, or writes it if space
//! remains); when an eviction succeeds its `Acquire` reads the consumer's last `Release` unlock,
//! so everything the consumer read happened before the producer overwrites the evicted space.
//! The consumer never reads an unlocked staged ring, so it never reads bytes an eviction frees.
//!
//! **The role/epoch switch.** The consumer changes role with a compare-exchange (`AcqRel`) on the
//! head word, then increments `epoch` (`Release`). An eviction that loaded the word before the
//! switch fails its exchange (the role bits differ), reloads, and obeys the new role; an
//! eviction that succeeded before the switch is ordered before it in the word's modification
//! order, so after the switch the consumer reads from the post-eviction position. Hence once the
//! ring is active no record can be evicted under the consumer: no record is torn, lost or read
//! twice across the switch, whatever the producer is doing. A push that had already placed its
//! record when the role changed completes normally and is published; the producer sees the new
//! epoch (a `Relaxed` load is enough: the epoch is only a hint to re-read the head word, which is
//! the authority) on its next push.
//!
//! Each protocol has a loom model in `tests/loom_ring.rs`.
//!
//! [`EventHeader`]: crate::event::EventHeader

pub(crate) mod check;
mod consumer;
mod identity;
mod layout;
mod producer;
mod shared;
mod staged;
mod storage;
pub(crate) mod wake;

pub use check::Corruption;
pub use consumer::{Consumer, ReadChunk};
pub use identity::{Identity, IDENTITY_SLOT_BYTES, MAX_IDENTITIES};
pub use layout::Role;
pub use producer::{Producer, Reservation, StaleReservation, WriteBatch, WriteSlot};
#[doc(hidden)]
pub use shared::RingWords;
pub use staged::{StagedIter, StagedView};
pub use storage::{HeapStorage, Storage, HEAP_ALIGN};

use core::fmt;

use crate::event::EventHeader;
use crate::sync::Arc;
use layout::{frame_size, MIN_FRAME};
use shared::Shared;

/// The largest capacity a ring accepts: 1 TiB on 64-bit targets (1 GiB on 32-bit ones).
/// Anything larger is a configuration mistake.
pub const MAX_CAPACITY: usize = if usize::BITS >= 64 { (1u64 << 40) as usize } else { 1 << 30 };
/// The largest `max_payload` a ring accepts: 16 MiB.
pub const MAX_PAYLOAD_LIMIT: usize = 1 << 24;

/// How to build a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingConfig {
    /// Bytes of record storage; rounded up to a power of two. Each record takes
    /// `8 + 32 + payload` bytes rounded up to a multiple of 8.
    pub capacity_bytes: usize,
    /// Largest payload a record may carry.
    pub max_payload: usize,
    /// The role the ring starts in.
    pub role: Role,
    /// The staging window in records (used in the staged role); clamped to `1 ..= max_records`.
    pub window: usize,
    /// Slots of the identity tier's side log (`identity` module): a staged ring keeps the
    /// identities of the last `identities - 1` records it evicted. 0 (the default): none. At
    /// most [`MAX_IDENTITIES`]; ignored for a ring file.
    pub identities: usize,
}

impl RingConfig {
    /// An active ring of `capacity_bytes` for payloads up to `max_payload`, window 100 (the
    /// docs/design.md §5 default).
    pub fn new(capacity_bytes: usize, max_payload: usize) -> Self {
        RingConfig { capacity_bytes, max_payload, role: Role::Active, window: 100, identities: 0 }
    }

    /// A ring that holds at least `records` records of `max_payload` bytes each.
    pub fn for_records(records: usize, max_payload: usize) -> Self {
        let bytes = records.saturating_mul(frame_size(max_payload.min(MAX_PAYLOAD_LIMIT)) as usize);
        Self::new(bytes, max_payload)
    }

    /// The same configuration starting in `role`.
    pub fn with_role(mut self, role: Role) -> Self {
        self.role = role;
        self
    }

    /// The same configuration with a staging window of `records`.
    pub fn with_window(mut self, records: usize) -> Self {
        self.window = records;
        self
    }

    /// The same configuration with an identity log of `slots` slots (0: none).
    pub fn with_identities(mut self, slots: usize) -> Self {
        self.identities = slots;
        self
    }

    /// Checks the configuration and returns the capacity the ring will have.
    pub fn validate(&self) -> Result<usize, RingError> {
        if self.max_payload > MAX_PAYLOAD_LIMIT {
            return Err(RingError::MaxPayloadTooLarge {
                requested: self.max_payload,
                limit: MAX_PAYLOAD_LIMIT,
            });
        }
        if self.capacity_bytes == 0 {
            return Err(RingError::ZeroCapacity);
        }
        if self.capacity_bytes > MAX_CAPACITY {
            return Err(RingError::CapacityTooLarge { requested: self.capacity_bytes, limit: MAX_CAPACITY });
        }
        if self.identities > MAX_IDENTITIES {
            return Err(RingError::TooManyIdentities { requested: self.identities, limit: MAX_IDENTITIES });
        }
        let capacity = self.capacity_bytes.next_power_of_two();
        let min = min_capacity(self.max_payload);
        if capacity < min {
            return Err(RingError::CapacityTooSmall { capacity, min });
        }
        Ok(capacity)
    }
}

/// The smallest capacity for `max_payload`: two maximal frames, so a record always fits once the
/// ring is empty, even after a pad frame at the end of the buffer.
fn min_capacity(max_payload: usize) -> usize {
    (2 * frame_size(max_payload) as usize).next_power_of_two().max(64)
}

/// Builds a ring on the heap and returns its two ends.
pub fn ring(config: RingConfig) -> Result<(Producer, Consumer), RingError> {
    let capacity = config.validate()?;
    ring_with_storage(config, HeapStorage::new(capacity)?)
}

/// Builds a ring on caller-provided storage, whose length must be the power of two that
/// `config.validate()` returns or larger (a power of two itself).
pub fn ring_with_storage<S: Storage>(
    config: RingConfig,
    storage: S,
) -> Result<(Producer<S>, Consumer<S>), RingError> {
    let needed = config.validate()?;
    let len = storage.len();
    if !len.is_power_of_two() || len < needed || len > MAX_CAPACITY || storage.as_ptr().align_offset(8) != 0 {
        return Err(RingError::BadStorage { len, needed });
    }
    let window = clamp_window(len, config.window);
    wake::init(); // the barrier mode is fixed before a producer exists
    let mut shared = Shared::new(storage, config.max_payload, config.role, window);
    if shared.storage.external_words().is_none() {
        shared.identities = identity::IdentityLog::new(config.identities)?;
    }
    let shared = Arc::new(shared);
    Ok((Producer::new(Arc::clone(&shared)), Consumer::new(shared, config.role)))
}

/// The window a ring of `len` bytes keeps for a requested `window`: `1 ..= max_records`.
pub(crate) fn clamp_window(len: usize, window: usize) -> u64 {
    // Record numbers are 32 bits (`layout::Frame::rec_no`): the window must stay below 2^32.
    let max_records = (len as u64 / MIN_FRAME).min(u64::from(u32::MAX));
    (window as u64).clamp(1, max_records)
}

/// The producer end of a ring whose storage holds its words (`Storage::external_words`: a
/// ring file), taking over from whatever producer came before (see `Producer::resume`). The
/// storage was checked when the file was opened (length, alignment, sane positions).
#[cfg_attr(not(shm), allow(dead_code))]
pub(crate) fn resume_producer<S: Storage>(storage: S, max_payload: usize) -> Producer<S> {
    debug_assert!(storage.external_words().is_some());
    wake::init();
    // The role and window given here fill the unused inline words only.
    Producer::resume(Arc::new(Shared::new(storage, max_payload, Role::Idle, 1)))
}

/// The consumer end of such a ring, going on from the last released position.
#[cfg_attr(not(shm), allow(dead_code))]
pub(crate) fn resume_consumer<S: Storage>(storage: S, max_payload: usize) -> Consumer<S> {
    debug_assert!(storage.external_words().is_some());
    wake::init();
    Consumer::resume(Arc::new(Shared::new(storage, max_payload, Role::Idle, 1)))
}

/// A record borrowed from the ring: the event header and payload, in place.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    /// The event header.
    pub header: &'a EventHeader,
    /// The payload bytes.
    pub payload: &'a [u8],
    /// True when one or more records immediately before this one were not stored: shed by a
    /// staged ring (its consumer held the front while the ring was full) or discarded by an idle
    /// one. The gap is real: those records are gone.
    pub after_drop: bool,
}

/// Why a push was not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PushError {
    /// Active ring with no room: backpressure. Retry after the consumer catches up. Inside a
    /// batch, the records the batch already holds are published first, so the consumer can
    /// make room.
    Full,
    /// The payload is larger than the ring's `max_payload`. Nothing was written.
    TooLarge {
        /// The payload length offered.
        len: usize,
        /// The ring's limit.
        max: usize,
    },
    /// Idle ring: nobody consumes this stream now; the event was discarded.
    NotSubscribed,
    /// Staged ring whose consumer held the front while no space was left: the event was shed
    /// (counted, and flagged on the next stored record). The producer need not do anything.
    Shed,
    /// A ring file whose consumer process wrote a head word or frame that no consumer following
    /// the protocol writes: nothing was written. Pushing again checks again. What was wrong:
    /// [`Producer::corruption`]. (Kept out of this value so that every push's `Result` stays as
    /// small as it was: the in-process push pays nothing for ring files.)
    Corrupt {
        /// The ring position found wrong.
        pos: u64,
    },
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::Full => f.write_str("ring full (active stream backpressure)"),
            PushError::TooLarge { len, max } => write!(f, "payload of {len} bytes exceeds max_payload {max}"),
            PushError::NotSubscribed => f.write_str("stream not subscribed (idle ring): event discarded"),
            PushError::Shed => f.write_str("staged ring shed the event (consumer held the front, no space)"),
            PushError::Corrupt { pos } => write!(f, "ring file corrupt at position {pos}"),
        }
    }
}

impl std::error::Error for PushError {}

/// Configuration and state errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RingError {
    /// Capacity 0.
    ZeroCapacity,
    /// Capacity above [`MAX_CAPACITY`].
    CapacityTooLarge {
        /// Requested bytes.
        requested: usize,
        /// The limit.
        limit: usize,
    },
    /// Capacity below two maximal records.
    CapacityTooSmall {
        /// Capacity after rounding to a power of two.
        capacity: usize,
        /// The smallest capacity for this `max_payload`.
        min: usize,
    },
    /// `max_payload` above [`MAX_PAYLOAD_LIMIT`].
    MaxPayloadTooLarge {
        /// Requested bytes.
        requested: usize,
        /// The limit.
        limit: usize,
    },
    /// Storage that is not a power of two, too small, too large or misaligned.
    BadStorage {
        /// Its length.
        len: usize,
        /// What the configuration needs.
        needed: usize,
    },
    /// The call needs the ring in another role.
    WrongRole {
        /// The role the call needs.
        expected: Role,
        /// The ring's role.
        actual: Role,
    },
    /// `release` with no record peeked.
    NothingToRelease,
    /// `identities` above [`MAX_IDENTITIES`].
    TooManyIdentities {
        /// Requested slots.
        requested: usize,
        /// The limit.
        limit: usize,
    },
    /// The ring's memory could not be allocated.
    OutOfMemory {
        /// The bytes asked for.
        bytes: usize,
    },
    /// The other process of a ring file wrote something no producer following the protocol
    /// writes ([`Consumer::corruption`]): the ring is not read past `pos` again.
    Corrupt {
        /// The ring position where it was found.
        pos: u64,
        /// What was wrong.
        what: Corruption,
    },
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RingError::ZeroCapacity => f.write_str("ring capacity must be greater than zero"),
            RingError::CapacityTooLarge { requested, limit } => {
                write!(f, "ring capacity {requested} bytes exceeds the limit of {limit}")
            }
            RingError::CapacityTooSmall { capacity, min } => {
                write!(f, "ring capacity {capacity} bytes is below {min}, two records of max_payload")
            }
            RingError::MaxPayloadTooLarge { requested, limit } => {
                write!(f, "max_payload {requested} exceeds the limit of {limit}")
            }
            RingError::BadStorage { len, needed } => {
                write!(f, "storage of {len} bytes unusable: need a power of two >= {needed}, 8-aligned")
            }
            RingError::WrongRole { expected, actual } => {
                write!(f, "operation needs a {expected:?} ring, but it is {actual:?}")
            }
            RingError::NothingToRelease => f.write_str("release without a peeked record"),
            RingError::TooManyIdentities { requested, limit } => {
                write!(f, "identity log of {requested} slots exceeds the limit of {limit}")
            }
            RingError::OutOfMemory { bytes } => write!(f, "cannot allocate the ring's {bytes} bytes"),
            RingError::Corrupt { pos, what } => write!(f, "ring file corrupt at position {pos}: {what}"),
        }
    }
}

impl std::error::Error for RingError {}

#[cfg(all(test, not(loom)))]
mod tests;
