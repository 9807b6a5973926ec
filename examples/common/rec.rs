//! The record the ring examples move (`ring_cost`, `ring_pairs`), the same for every ring: a
//! 32-byte header and a 32-byte payload, stamped by the producer and folded by the consumer as
//! `benches/ring.rs` does.

use harmonizer_core::event::{EventHeader, EVENT_HEADER_SIZE};

/// Payload bytes.
pub const P: usize = 32;
/// Every payload byte but the stamped `seq`.
pub const FILL: u8 = 0xA5;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Rec {
    pub header: EventHeader,
    pub payload: [u8; P],
}

const _: () = assert!(core::mem::size_of::<Rec>() == EVENT_HEADER_SIZE + P);

impl Rec {
    pub fn new() -> Self {
        Rec { header: EventHeader::default(), payload: [FILL; P] }
    }

    /// Writes `seq` into the header (and `pos = seq + 1`: an engine checks that an origin's
    /// events come in order) and into the first 8 payload bytes.
    #[inline(always)]
    pub fn stamp(&mut self, seq: u64) {
        self.header.seq = seq;
        self.header.pos = seq + 1;
        self.payload[..8].copy_from_slice(&seq.to_ne_bytes());
    }
}

/// The consumer's checksum step.
#[inline(always)]
pub fn fold(sum: u64, seq: u64, last: u8) -> u64 {
    sum.wrapping_add(seq).wrapping_add(u64::from(last))
}
