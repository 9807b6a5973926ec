//! The state both sides of a ring share: four cache-padded atomic lines and the storage.

use crossbeam_utils::CachePadded;

use super::layout::{Frame, Role, FRAME_HEADER_SIZE};
use super::storage::Storage;
use crate::sync::{AccessTracker, AtomicU64, Ordering};

/// Rarely written words the producer reads on every push (so the line stays shared-clean).
#[repr(C)]
pub(crate) struct Control {
    /// Incremented by the consumer after every role change. The producer compares it with its
    /// cached copy on each push and re-reads the head word when it moved.
    pub epoch: AtomicU64,
    /// Staging window in records, in `1 ..= max_records`.
    pub window: AtomicU64,
    /// The consumer's doorbell (`ring::wake`): read by the producer after each publish, on
    /// this line it already reads, so the check costs no extra cache line.
    pub wake: super::wake::Wake,
}

/// Producer-written counters, read by the consumer now and then.
#[repr(C)]
pub(crate) struct Counters {
    /// Records removed from the front of a staged ring to make room or honour the window.
    pub evicted: AtomicU64,
    /// Records a staged ring shed because the consumer held its front and no space was left.
    pub dropped: AtomicU64,
}

/// The atomic words both sides of a ring share, each group on its own cache line.
///
/// `repr(C)` so a file-backed ring can keep them in its mapping at a fixed place (`src/shm`):
/// a producer in another process then reads and writes the very same words. Atomics of 8 bytes
/// are lock-free and address-free on the targets this crate supports, so they work across
/// processes that map the same page. The file header records this struct's size and field
/// offsets, and a file made by a build with another layout is refused.
#[doc(hidden)]
#[repr(C)]
pub struct RingWords {
    /// The head word: the consumer's release position (61 bits), the staged-front lock bit and
    /// the role (see `layout::Head`). Written by the consumer; in the staged role the producer
    /// also advances it, by compare-exchange only, to evict.
    pub(crate) head: CachePadded<AtomicU64>,
    /// The producer's publish position. Written only by the producer.
    pub(crate) tail: CachePadded<AtomicU64>,
    pub(crate) control: CachePadded<Control>,
    pub(crate) counters: CachePadded<Counters>,
}

impl RingWords {
    /// Byte offsets of the words inside their lines (for the ring file's layout fingerprint).
    #[cfg_attr(not(shm), allow(dead_code))]
    pub(crate) const EPOCH_IN_CONTROL: usize = core::mem::offset_of!(Control, epoch);
    #[cfg_attr(not(shm), allow(dead_code))]
    pub(crate) const WINDOW_IN_CONTROL: usize = core::mem::offset_of!(Control, window);
    #[cfg_attr(not(shm), allow(dead_code))]
    pub(crate) const WAKE_IN_CONTROL: usize = core::mem::offset_of!(Control, wake);

    /// The head word's position and the tail, as they are now (for checks, not the protocol).
    #[cfg_attr(not(shm), allow(dead_code))]
    pub(crate) fn positions(&self) -> (u64, u64) {
        let head = super::layout::Head::decode(self.head.load(Ordering::Acquire)).pos;
        (head, self.tail.load(Ordering::Acquire))
    }

    /// Whether the positions can belong to a ring of `capacity` bytes: both 8-aligned, the tail
    /// at most `capacity` ahead of the head. A file that fails this is corrupt.
    #[cfg_attr(not(shm), allow(dead_code))]
    pub(crate) fn positions_are_sane(&self, capacity: u64) -> bool {
        let (head, tail) = self.positions();
        tail % 8 == 0 && super::check::head(head, tail, capacity).is_ok()
    }

    /// Fresh words: empty ring at position 0, in `role`, with `window`.
    pub(crate) fn new(role: Role, window: u64) -> Self {
        RingWords {
            head: CachePadded::new(AtomicU64::new(super::layout::Head::encode(0, false, role))),
            tail: CachePadded::new(AtomicU64::new(0)),
            control: CachePadded::new(Control {
                epoch: AtomicU64::new(0),
                window: AtomicU64::new(window),
                wake: super::wake::Wake::new(),
            }),
            counters: CachePadded::new(Counters { evicted: AtomicU64::new(0), dropped: AtomicU64::new(0) }),
        }
    }
}

pub(crate) struct Shared<S: Storage> {
    /// The shared words, unless the storage holds them (`Storage::external_words`): read them
    /// through [`Shared::w`].
    words: RingWords,
    pub storage: S,
    /// Loom's view of the bytes (nothing outside loom).
    pub tracker: AccessTracker,
    /// Bytes, a power of two.
    pub capacity: u64,
    /// Largest payload accepted.
    pub max_payload: usize,
    /// The identity tier's side log, if configured (`RingConfig::identities`).
    pub identities: Option<Box<super::identity::IdentityLog>>,
}

impl<S: Storage> Shared<S> {
    /// Shared state for a ring on `storage`. Its words start fresh (`role`, `window`) unless the
    /// storage holds its own (`Storage::external_words`): those are taken as they are, so a
    /// file-backed ring resumes where the other process left it.
    pub(crate) fn new(storage: S, max_payload: usize, role: Role, window: u64) -> Self {
        let capacity = storage.len() as u64;
        Shared {
            words: RingWords::new(role, window),
            tracker: AccessTracker::new(capacity as usize),
            storage,
            capacity,
            max_payload,
            identities: None,
        }
    }

    /// The shared words. For heap storage `external_words` is the trait's default `None`, so
    /// after inlining this is a field access and the in-process ring pays nothing for the
    /// choice.
    #[inline(always)]
    pub(crate) fn w(&self) -> &RingWords {
        match self.storage.external_words() {
            // SAFETY: the `Storage` contract: a pointer it returns is to initialised, aligned
            // words that live as long as the storage, which `self` owns.
            Some(p) => unsafe { p.as_ref() },
            None => &self.words,
        }
    }

    /// Buffer offset of a position.
    #[inline]
    pub(crate) fn offset(&self, pos: u64) -> usize {
        (pos & (self.capacity - 1)) as usize
    }

    /// Pointer to the byte at `pos`.
    #[inline]
    pub(crate) fn ptr(&self, pos: u64) -> *mut u8 {
        // SAFETY: `offset` is below `capacity == storage.len()`, so the result stays inside the
        // storage's allocation.
        unsafe { self.storage.as_ptr().add(self.offset(pos)) }
    }

    /// Reads the frame header at `pos`.
    ///
    /// # Safety
    /// `pos` is a frame start the caller may read: published and not yet released or evicted
    /// (consumer), or written by this producer and not yet overwritten (producer).
    #[inline]
    #[track_caller]
    pub(crate) unsafe fn read_frame(&self, pos: u64) -> Frame {
        self.tracker.read(self.offset(pos), FRAME_HEADER_SIZE);
        // SAFETY: the storage is 8-aligned and frames start at multiples of 8; the caller
        // guarantees nobody writes these 8 bytes now.
        Frame::from_word(unsafe { self.ptr(pos).cast::<u64>().read() })
    }

    /// Reads the event header of the record whose frame starts at `pos`.
    ///
    /// # Safety
    /// As [`read_frame`](Self::read_frame), and the frame is a record (not a pad frame).
    #[inline]
    #[track_caller]
    pub(crate) unsafe fn read_header(&self, pos: u64) -> crate::event::EventHeader {
        let at = super::layout::advance(pos, FRAME_HEADER_SIZE as u64);
        self.tracker.read(self.offset(at), crate::event::EVENT_HEADER_SIZE);
        // SAFETY: a record frame holds its header right after the frame header, inside the
        // buffer (frames never wrap) and 8-aligned; the caller guarantees nobody writes it now.
        unsafe { self.ptr(at).cast::<crate::event::EventHeader>().read() }
    }

    /// The conflation key of the record whose frame (`frame`, header `h`) starts at `pos`
    /// (`event::conflation_key`), if it is conflatable.
    ///
    /// # Safety
    /// As [`read_header`](Self::read_header).
    #[inline]
    pub(crate) unsafe fn read_key(
        &self,
        pos: u64,
        frame: Frame,
        h: &crate::event::EventHeader,
    ) -> Option<u64> {
        use crate::event::{CONFLATION_KEY_LEN, FLAG_CONFLATABLE};
        if h.flags & FLAG_CONFLATABLE == 0 || frame.payload_len() < CONFLATION_KEY_LEN {
            return None;
        }
        let at = super::layout::advance(pos, super::layout::RECORD_PREFIX as u64);
        self.tracker.read(self.offset(at), CONFLATION_KEY_LEN);
        // SAFETY: the payload follows the event header inside the frame, 8-aligned, and is at
        // least `CONFLATION_KEY_LEN` bytes; the caller guarantees nobody writes it now.
        Some(u64::from_le(unsafe { self.ptr(at).cast::<u64>().read() }))
    }

    /// Writes the frame header at `pos`.
    ///
    /// # Safety
    /// Only the producer calls this, on space that is free (not between head and tail).
    #[inline]
    #[track_caller]
    pub(crate) unsafe fn write_frame(&self, pos: u64, frame: Frame) {
        self.tracker.write(self.offset(pos), FRAME_HEADER_SIZE);
        // SAFETY: aligned as in `read_frame`; the caller owns the free space.
        unsafe { self.ptr(pos).cast::<u64>().write(frame.to_word()) }
    }

    /// Reports to loom a read of every byte in `[from, to)` (nothing outside loom).
    #[inline(always)]
    pub(crate) fn track_read_span(&self, from: u64, to: u64) {
        #[cfg(loom)]
        {
            let mut pos = from;
            while pos != to {
                let off = self.offset(pos);
                let n = (super::layout::distance(to, pos) as usize).min(self.capacity as usize - off);
                self.tracker.read(off, n);
                pos = super::layout::advance(pos, n as u64);
            }
        }
        #[cfg(not(loom))]
        let _ = (from, to);
    }
}

#[cfg(loom)]
// SAFETY: under loom the tracker's shadow cells are `!Sync` only because loom's UnsafeCell is;
// they hold `()` and are touched only to report accesses. All other fields are atomics or Sync.
unsafe impl<S: Storage> Sync for Shared<S> {}
#[cfg(loom)]
// SAFETY: as above: the shadow cells carry no data.
unsafe impl<S: Storage> Send for Shared<S> {}
