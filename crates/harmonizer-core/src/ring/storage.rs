//! Where a ring's bytes live.
//!
//! The ring never touches its memory except through the raw pointer a [`Storage`] hands out, so
//! the same protocol can run on the heap or on a memory-mapped file shared with a producer in
//! another process (`src/shm`, where the storage also holds the ring's atomic words).

use core::ptr::NonNull;
use std::alloc::{alloc_zeroed, dealloc, Layout};

use super::shared::RingWords;
use super::RingError;

/// Memory a ring can live in.
///
/// # Safety
///
/// An implementation promises that, for as long as the value lives:
/// - [`as_ptr`](Storage::as_ptr) always returns the same pointer, aligned to 8 bytes, valid for
///   reads and writes of [`len`](Storage::len) bytes, and the bytes are initialised;
/// - nothing but the ring that owns it reads or writes those bytes;
/// - `len()` is a power of two and never changes;
/// - [`external_words`](Storage::external_words), if it returns a pointer, always returns the
///   same one, to initialised, aligned [`RingWords`] that live as long as the value and that
///   nothing but the ring's two sides (in this process or another) touch.
pub unsafe trait Storage: Send + Sync + 'static {
    /// Start of the bytes.
    fn as_ptr(&self) -> *mut u8;
    /// Size in bytes.
    fn len(&self) -> usize;
    /// True when `len() == 0` (never, for a storage a ring accepted).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Where the ring's atomic words live when the storage holds them: a file-backed ring keeps
    /// them in the mapping so the other process sees them. `None` (the default) keeps them in
    /// the ring's own heap allocation. Internal: only `src/shm` returns `Some`.
    #[doc(hidden)]
    #[inline(always)]
    fn external_words(&self) -> Option<NonNull<RingWords>> {
        None
    }
    /// True when [`external_words`](Storage::external_words) may return `Some`: the storage
    /// may be shared with another process, whose writes the consumer checks before use
    /// (`ring::check`). `false` (the default) removes those checks at compile time. Internal.
    #[doc(hidden)]
    const MAY_BE_SHARED: bool = false;
}

/// Alignment of heap storage: two cache lines (128 bytes covers the adjacent-line prefetcher of
/// x86 and the 128-byte lines of Apple's arm64 cores, the same figures crossbeam-utils'
/// `CachePadded` cites). Aligning the buffer makes where frames fall on cache lines a property
/// of the record sizes, not of what the allocator returned.
pub const HEAP_ALIGN: usize = 128;

/// Zeroed heap memory, allocated once at construction and freed on drop.
pub struct HeapStorage {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl HeapStorage {
    /// Allocates `len_bytes` zeroed bytes aligned to [`HEAP_ALIGN`].
    ///
    /// Errors: [`RingError::BadStorage`] unless `len_bytes` is a power of two from 64 to
    /// [`MAX_CAPACITY`](super::MAX_CAPACITY); [`RingError::OutOfMemory`] when the allocator
    /// refuses (never an abort: a host process asking for a huge ring gets an error back).
    pub fn new(len_bytes: usize) -> Result<Self, RingError> {
        if !len_bytes.is_power_of_two() || !(64..=super::MAX_CAPACITY).contains(&len_bytes) {
            return Err(RingError::BadStorage { len: len_bytes, needed: 64 });
        }
        let layout = Layout::from_size_align(len_bytes, HEAP_ALIGN)
            .map_err(|_| RingError::BadStorage { len: len_bytes, needed: 64 })?;
        // SAFETY: the layout has a non-zero size (checked above).
        let raw = unsafe { alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else { return Err(RingError::OutOfMemory { bytes: len_bytes }) };
        Ok(HeapStorage { ptr, layout })
    }
}

impl Drop for HeapStorage {
    fn drop(&mut self) {
        // SAFETY: `ptr` was returned by `alloc_zeroed(self.layout)` in `new` and is freed once.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

// SAFETY: HeapStorage owns its allocation outright (like a Box<[u8]>); the raw pointer is only
// there so the ring can hand out disjoint regions to its two sides. Moving it between threads
// is as safe as moving the Box.
unsafe impl Send for HeapStorage {}
// SAFETY: sharing `&HeapStorage` only shares the pointer; every access to the bytes goes through
// the ring's protocol, which gives each byte range to one side at a time.
unsafe impl Sync for HeapStorage {}

// SAFETY: the pointer comes from `alloc_zeroed` (128-aligned, zero-initialised, `layout.size()`
// bytes, a power of two checked in `new`), never changes, and is freed only in `drop`.
unsafe impl Storage for HeapStorage {
    fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
    fn len(&self) -> usize {
        self.layout.size()
    }
}
