//! Where a ring's bytes live.
//!
//! The ring never touches its memory except through the raw pointer a [`Storage`] hands out, so
//! the same protocol can run on the heap (now) or on a memory-mapped file shared with a producer
//! in another process (later: memmap2 behind the same trait).

use core::ptr::NonNull;

/// Memory a ring can live in.
///
/// # Safety
///
/// An implementation promises that, for as long as the value lives:
/// - [`as_ptr`](Storage::as_ptr) always returns the same pointer, aligned to 8 bytes, valid for
///   reads and writes of [`len`](Storage::len) bytes, and the bytes are initialised;
/// - nothing but the ring that owns it reads or writes those bytes;
/// - `len()` is a power of two and never changes.
pub unsafe trait Storage: Send + Sync + 'static {
    /// Start of the bytes.
    fn as_ptr(&self) -> *mut u8;
    /// Size in bytes.
    fn len(&self) -> usize;
    /// True when `len() == 0` (never, for a storage a ring accepted).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Zeroed heap memory, allocated once at construction and freed on drop.
pub struct HeapStorage {
    ptr: NonNull<u64>,
    words: usize,
}

impl HeapStorage {
    /// Allocates `len_bytes` zeroed bytes, 8-byte aligned. `len_bytes` must be a power of two
    /// and a multiple of 8 (the ring's constructor checks this before calling).
    pub fn new(len_bytes: usize) -> Self {
        debug_assert!(len_bytes.is_power_of_two() && len_bytes >= 8);
        let boxed: Box<[u64]> = vec![0u64; len_bytes / 8].into_boxed_slice();
        let words = boxed.len();
        // `Box::into_raw` never returns null.
        let ptr = NonNull::new(Box::into_raw(boxed).cast::<u64>()).expect("Box pointer is non-null");
        HeapStorage { ptr, words }
    }
}

impl Drop for HeapStorage {
    fn drop(&mut self) {
        let slice = core::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.words);
        // SAFETY: `slice` is exactly the pointer and length `Box::into_raw` produced in `new`,
        // and it is reconstructed once, here.
        drop(unsafe { Box::from_raw(slice) });
    }
}

// SAFETY: HeapStorage owns its allocation outright (like a Box<[u64]>); the raw pointer is only
// there so the ring can hand out disjoint regions to its two sides. Moving it between threads
// is as safe as moving the Box.
unsafe impl Send for HeapStorage {}
// SAFETY: sharing `&HeapStorage` only shares the pointer; every access to the bytes goes through
// the ring's protocol, which gives each byte range to one side at a time.
unsafe impl Sync for HeapStorage {}

// SAFETY: the pointer comes from a live `Box<[u64]>` (8-aligned, zero-initialised, `words * 8`
// bytes), never changes, and is freed only in `drop`; `new` is only given powers of two.
unsafe impl Storage for HeapStorage {
    fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr().cast()
    }
    fn len(&self) -> usize {
        self.words * 8
    }
}
