//! The state both sides of a ring share: three cache-padded atomic lines and the storage.

use crossbeam_utils::CachePadded;

use super::layout::{Frame, Role, FRAME_HEADER_SIZE};
use super::storage::Storage;
use crate::event::EventHeader;
use crate::sync::{AccessTracker, AtomicU64};

/// Rarely written words the producer reads on every push (so the line stays shared-clean).
pub(crate) struct Control {
    /// Incremented by the consumer after every role change. The producer compares it with its
    /// cached copy on each push and re-reads the head word when it moved.
    pub epoch: AtomicU64,
    /// Staging window in records, in `1 ..= max_records`.
    pub window: AtomicU64,
}

/// Producer-written counters, read by the consumer now and then.
pub(crate) struct Counters {
    /// Records removed from the front of a staged ring to make room or honour the window.
    pub evicted: AtomicU64,
    /// Records a staged ring shed because the consumer held its front and no space was left.
    pub dropped: AtomicU64,
}

pub(crate) struct Shared<S: Storage> {
    /// The head word: the consumer's release position (61 bits), the staged-front lock bit and
    /// the role (see `layout::Head`). Written by the consumer; in the staged role the producer
    /// also advances it, by compare-exchange only, to evict.
    pub head: CachePadded<AtomicU64>,
    /// The producer's publish position. Written only by the producer.
    pub tail: CachePadded<AtomicU64>,
    pub control: CachePadded<Control>,
    pub counters: CachePadded<Counters>,
    pub storage: S,
    /// Loom's view of the bytes (nothing outside loom).
    pub tracker: AccessTracker,
    /// Bytes, a power of two.
    pub capacity: u64,
    /// Largest payload accepted.
    pub max_payload: usize,
}

impl<S: Storage> Shared<S> {
    pub(crate) fn new(storage: S, max_payload: usize, role: Role, window: u64) -> Self {
        let capacity = storage.len() as u64;
        Shared {
            head: CachePadded::new(AtomicU64::new(super::layout::Head::encode(0, false, role))),
            tail: CachePadded::new(AtomicU64::new(0)),
            control: CachePadded::new(Control { epoch: AtomicU64::new(0), window: AtomicU64::new(window) }),
            counters: CachePadded::new(Counters { evicted: AtomicU64::new(0), dropped: AtomicU64::new(0) }),
            tracker: AccessTracker::new(capacity as usize),
            storage,
            capacity,
            max_payload,
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

    /// The event header of the record whose frame starts at `pos`.
    ///
    /// # Safety
    /// As for `read_frame`, for the whole record, for the lifetime `'a` chosen by the caller.
    #[inline]
    #[track_caller]
    pub(crate) unsafe fn record<'a>(&self, pos: u64, frame: Frame) -> (&'a EventHeader, &'a [u8]) {
        let start = self.ptr(pos);
        self.tracker.read(self.offset(pos), frame.len() as usize);
        // SAFETY: a record frame never wraps, so header and payload are contiguous inside the
        // storage; the event header is 8-aligned (frame start + 8) and any bit pattern is a valid
        // EventHeader; the caller guarantees the bytes stay unwritten for 'a.
        unsafe {
            let header = &*start.add(FRAME_HEADER_SIZE).cast::<EventHeader>();
            let payload =
                core::slice::from_raw_parts(start.add(super::layout::RECORD_PREFIX), frame.payload_len());
            (header, payload)
        }
    }
}

#[cfg(loom)]
// SAFETY: under loom the tracker's shadow cells are `!Sync` only because loom's UnsafeCell is;
// they hold `()` and are touched only to report accesses. All other fields are atomics or Sync.
unsafe impl<S: Storage> Sync for Shared<S> {}
#[cfg(loom)]
// SAFETY: as above: the shadow cells carry no data.
unsafe impl<S: Storage> Send for Shared<S> {}
