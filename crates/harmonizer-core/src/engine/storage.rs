//! The storage of an engine stream's ring: the heap, or a ring file shared with a producer in
//! another process (`src/shm`).

use core::ptr::NonNull;

use crate::ring::{HeapStorage, RingError, RingWords, Storage};

/// A stream ring's memory. The pointers are taken once at construction, so a read or write of
/// the ring costs what it costs on a [`HeapStorage`] ring; only the shared words of a heap
/// stream cost one predictable branch more (`Storage::external_words`).
pub struct StreamStorage {
    ptr: NonNull<u8>,
    len: usize,
    words: Option<NonNull<RingWords>>,
    /// What the pointers point into, kept alive (and freed or unmapped on drop).
    _owner: Owner,
}

enum Owner {
    Heap(#[allow(dead_code)] HeapStorage),
    #[cfg(shm)]
    File(#[allow(dead_code)] std::sync::Arc<crate::shm::RingFile>),
}

impl StreamStorage {
    /// `len_bytes` of zeroed heap (as [`HeapStorage::new`]).
    pub(crate) fn heap(len_bytes: usize) -> Result<StreamStorage, RingError> {
        let h = HeapStorage::new(len_bytes)?;
        let ptr = NonNull::new(h.as_ptr()).expect("HeapStorage is never null");
        Ok(StreamStorage { ptr, len: h.len(), words: None, _owner: Owner::Heap(h) })
    }

    /// The record bytes and words of a mapped ring file.
    #[cfg(shm)]
    pub(crate) fn file(f: std::sync::Arc<crate::shm::RingFile>) -> StreamStorage {
        StreamStorage { ptr: f.data(), len: f.capacity(), words: Some(f.words()), _owner: Owner::File(f) }
    }
}

// SAFETY: the value owns what the pointers point into (a `HeapStorage`, itself Send and Sync, or
// an `Arc` of a mapping that lives until the last `Arc` drops); the pointers are only there so
// the ring can reach the memory, and every access goes through the ring's protocol.
unsafe impl Send for StreamStorage {}
// SAFETY: as above: sharing `&StreamStorage` shares the pointers, not access rights.
unsafe impl Sync for StreamStorage {}

// SAFETY: heap: `HeapStorage`'s guarantees, its pointer and length copied. File: `ptr` is the
// mapping's record area, `len` bytes (the file's checked capacity, a power of two), 4096-byte
// aligned, initialised (file pages read as written or zero), valid while the `Arc` keeps the
// mapping; `words` points at the checked `RingWords` in the same mapping. The "nothing else
// touches the bytes" clause holds with the other process counted as the ring's other side: it
// runs the same protocol on the same words. What this cannot promise, a file shrunk under the
// mapping, is `docs/shm.md`'s SIGBUS section.
unsafe impl Storage for StreamStorage {
    const MAY_BE_SHARED: bool = cfg!(shm);
    #[inline(always)]
    fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
    #[inline(always)]
    fn len(&self) -> usize {
        self.len
    }
    #[inline(always)]
    fn external_words(&self) -> Option<NonNull<RingWords>> {
        self.words
    }
}
