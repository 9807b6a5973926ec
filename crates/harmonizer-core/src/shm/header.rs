//! The ring file's header: what it holds, where, and how it is checked.
//!
//! ```text
//!  offset 0     Fixed  (64 bytes, written once by the creator, CRC-32C protected)
//!  offset 256   Live   (producer/consumer generations and pids: atomics)
//!  offset 1024  RingWords (head word, tail, control, counters: four 128-byte lines)
//!  offset 4096  record bytes: `capacity` bytes, the ring's storage
//! ```
//!
//! All integers are native-endian (the file is shared by processes on one machine, never
//! carried elsewhere); `byte_order` makes a file from a machine of the other order fail the
//! check instead of being misread.

use core::mem::{offset_of, size_of};

use crate::ring::RingWords;
use crate::sync::AtomicU64;

/// The first eight bytes of every ring file.
pub const MAGIC: [u8; 8] = *b"HZRING\0\0";
/// The layout this build reads and writes. Bumped on any change to this file's layout.
pub const LAYOUT_VERSION: u32 = 2;
/// Bytes before the record storage: a page on 4 KiB-page systems and a multiple of the
/// 128-byte line, so the storage is as aligned as a heap ring's (`HEAP_ALIGN`).
pub const HEADER_BYTES: usize = 4096;
pub(crate) const LIVE_OFFSET: usize = 256;
pub(crate) const WORDS_OFFSET: usize = 1024;
/// Written as a native u64; reads back differently on a machine of the other byte order.
const BYTE_ORDER: u64 = 0x0102_0304_0506_0708;

/// The part of the header written once, at creation.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fixed {
    pub magic: [u8; 8],
    pub layout_version: u32,
    /// [`HEADER_BYTES`].
    pub header_bytes: u32,
    pub byte_order: u64,
    /// Record storage bytes, a power of two.
    pub capacity: u64,
    pub max_payload: u64,
    /// The stream id the engine attached the file for.
    pub stream: u32,
    pub words_offset: u32,
    /// `size_of::<RingWords>()` of the creating build.
    pub words_len: u32,
    /// CRC-32C of the byte offsets of every word in `RingWords` (`words_fingerprint`).
    pub words_fingerprint: u32,
    /// CRC-32C of every byte above.
    pub crc: u32,
    pub reserved: u32,
}

const _: () = assert!(size_of::<Fixed>() == 64);
const _: () = assert!(LIVE_OFFSET + size_of::<Live>() <= WORDS_OFFSET);
const _: () = assert!(WORDS_OFFSET + size_of::<RingWords>() <= HEADER_BYTES);
const _: () = assert!(WORDS_OFFSET % 128 == 0 && HEADER_BYTES % 128 == 0);

/// The part of the header that changes, all atomics (zero in a new file).
#[repr(C)]
pub(crate) struct Live {
    /// Incremented by every producer that opens the file, while it holds the producer lock.
    pub producer_generation: AtomicU64,
    /// Process id of the producer of `producer_generation`.
    pub producer_pid: AtomicU64,
    /// The generation of the last producer that closed the file cleanly (0: none).
    pub producer_closed: AtomicU64,
    /// Incremented by every engine that attaches to the file, while it holds the consumer lock.
    pub consumer_generation: AtomicU64,
    /// Process id of the engine of `consumer_generation`.
    pub consumer_pid: AtomicU64,
}

/// What a header can be wrong about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// The file does not start with [`MAGIC`]: not a ring file.
    BadMagic,
    /// Another layout version.
    UnsupportedVersion {
        /// The file's.
        found: u32,
        /// This build's.
        supported: u32,
    },
    /// Written on a machine of the other byte order.
    ForeignByteOrder,
    /// The header's checksum does not match its bytes.
    Checksum {
        /// Stored in the file.
        stored: u32,
        /// Computed over the header.
        computed: u32,
    },
    /// The control words are laid out differently from this build's.
    WordsLayout,
    /// A field is out of range (named).
    Field(&'static str),
}

impl core::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HeaderError::BadMagic => f.write_str("not a harmonizer ring file (bad magic)"),
            HeaderError::UnsupportedVersion { found, supported } => {
                write!(f, "ring file layout version {found}; this build reads version {supported}")
            }
            HeaderError::ForeignByteOrder => {
                f.write_str("ring file written on a machine of the other byte order")
            }
            HeaderError::Checksum { stored, computed } => {
                write!(f, "ring file header corrupt: checksum {stored:#010x}, computed {computed:#010x}")
            }
            HeaderError::WordsLayout => {
                f.write_str("ring file control words laid out by an incompatible build")
            }
            HeaderError::Field(name) => write!(f, "ring file header corrupt: {name} out of range"),
        }
    }
}

/// The byte offsets of every atomic word in `RingWords`, checksummed: two builds that agree on
/// this agree on where each word is.
pub(crate) fn words_fingerprint() -> u32 {
    let offsets: [u64; 8] = [
        offset_of!(RingWords, head) as u64,
        offset_of!(RingWords, tail) as u64,
        offset_of!(RingWords, control) as u64,
        offset_of!(RingWords, counters) as u64,
        RingWords::EPOCH_IN_CONTROL as u64,
        RingWords::WINDOW_IN_CONTROL as u64,
        RingWords::WAKE_IN_CONTROL as u64,
        size_of::<RingWords>() as u64,
    ];
    let mut bytes = [0u8; 64];
    for (i, o) in offsets.iter().enumerate() {
        bytes[i * 8..i * 8 + 8].copy_from_slice(&o.to_le_bytes());
    }
    crate::crc32c::crc32c(&bytes)
}

fn crc_of(f: &Fixed) -> u32 {
    let mut g = *f;
    g.crc = 0;
    g.reserved = 0;
    // SAFETY: `Fixed` is `repr(C)` of integers and byte arrays with no padding (64 bytes, the
    // sum of its fields, asserted above), so all 64 bytes are initialised.
    let bytes = unsafe { core::slice::from_raw_parts((&g as *const Fixed).cast::<u8>(), size_of::<Fixed>()) };
    crate::crc32c::crc32c(&bytes[..offset_of!(Fixed, crc)])
}

impl Fixed {
    pub(crate) fn new(capacity: u64, max_payload: u64, stream: u32) -> Fixed {
        let mut f = Fixed {
            magic: MAGIC,
            layout_version: LAYOUT_VERSION,
            header_bytes: HEADER_BYTES as u32,
            byte_order: BYTE_ORDER,
            capacity,
            max_payload,
            stream,
            words_offset: WORDS_OFFSET as u32,
            words_len: size_of::<RingWords>() as u32,
            words_fingerprint: words_fingerprint(),
            crc: 0,
            reserved: 0,
        };
        f.crc = crc_of(&f);
        f
    }

    /// Checks everything a header can be checked for on its own (the file's length is checked
    /// by the caller against [`file_len`](Fixed::file_len)).
    pub(crate) fn validate(&self) -> Result<(), HeaderError> {
        if self.magic != MAGIC {
            return Err(HeaderError::BadMagic);
        }
        if self.byte_order != BYTE_ORDER {
            return Err(if self.byte_order == BYTE_ORDER.swap_bytes() {
                HeaderError::ForeignByteOrder
            } else {
                HeaderError::Field("byte_order")
            });
        }
        if self.layout_version != LAYOUT_VERSION {
            return Err(HeaderError::UnsupportedVersion {
                found: self.layout_version,
                supported: LAYOUT_VERSION,
            });
        }
        let computed = crc_of(self);
        if computed != self.crc {
            return Err(HeaderError::Checksum { stored: self.crc, computed });
        }
        if self.header_bytes as usize != HEADER_BYTES {
            return Err(HeaderError::Field("header_bytes"));
        }
        if self.words_offset as usize != WORDS_OFFSET
            || self.words_len as usize != size_of::<RingWords>()
            || self.words_fingerprint != words_fingerprint()
        {
            return Err(HeaderError::WordsLayout);
        }
        if self.max_payload > crate::ring::MAX_PAYLOAD_LIMIT as u64 {
            return Err(HeaderError::Field("max_payload"));
        }
        let cap = self.capacity;
        if !cap.is_power_of_two() || cap > crate::ring::MAX_CAPACITY as u64 {
            return Err(HeaderError::Field("capacity"));
        }
        // The ring's own rule: two maximal frames fit.
        crate::ring::RingConfig::new(cap as usize, self.max_payload as usize)
            .validate()
            .map_err(|_| HeaderError::Field("capacity"))?;
        Ok(())
    }

    /// The length a file with this header has.
    pub(crate) fn file_len(&self) -> u64 {
        HEADER_BYTES as u64 + self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_header_validates_and_every_corruption_is_named() {
        let f = Fixed::new(1 << 16, 256, 3);
        assert_eq!(f.validate(), Ok(()));
        assert_eq!(f.file_len(), 4096 + 65536);

        let mut g = f;
        g.magic[0] = b'X';
        assert_eq!(g.validate(), Err(HeaderError::BadMagic));
        let mut g = f;
        g.layout_version = 1;
        assert_eq!(g.validate(), Err(HeaderError::UnsupportedVersion { found: 1, supported: 2 }));
        let mut g = f;
        g.byte_order = BYTE_ORDER.swap_bytes();
        assert_eq!(g.validate(), Err(HeaderError::ForeignByteOrder));
        // A flipped bit anywhere under the checksum.
        let mut g = f;
        g.capacity ^= 1 << 20;
        assert!(matches!(g.validate(), Err(HeaderError::Checksum { .. })));
        let mut g = f;
        g.stream = 4;
        assert!(matches!(g.validate(), Err(HeaderError::Checksum { .. })));
        // Checksummed but inconsistent: a capacity that is not a power of two.
        let mut g = f;
        g.capacity = 65537;
        g.crc = crc_of(&g);
        assert_eq!(g.validate(), Err(HeaderError::Field("capacity")));
        let mut g = f;
        g.words_fingerprint ^= 1;
        g.crc = crc_of(&g);
        assert_eq!(g.validate(), Err(HeaderError::WordsLayout));
        let mut g = f;
        g.max_payload = 1 << 40;
        g.crc = crc_of(&g);
        assert_eq!(g.validate(), Err(HeaderError::Field("max_payload")));
    }
}
