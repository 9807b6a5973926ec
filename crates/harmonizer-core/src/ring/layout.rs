//! Bit-level layout of the ring: positions, the head word, and record frames.
//!
//! Positions are byte offsets counted modulo 2^61 (so they never overflow: all arithmetic on them
//! is wrapping, and the capacity, a power of two ≤ 2^40, divides 2^61). The buffer index of a
//! position is `pos & (capacity - 1)`.
//!
//! Every record is a *frame*: an 8-byte frame header, the 32-byte [`EventHeader`], the payload,
//! then zero to seven bytes of padding so the next frame starts 8-aligned. A frame never wraps:
//! when the space left before the end of the buffer is too small, the producer fills it with a
//! *pad frame* (a frame header with [`FRAME_PAD`]) and writes the record at offset 0.
//!
//! [`EventHeader`]: crate::event::EventHeader

use crate::event::EVENT_HEADER_SIZE;

/// Number of bits of a position.
pub(crate) const POS_BITS: u32 = 61;
/// Mask of a position's bits.
pub(crate) const POS_MASK: u64 = (1 << POS_BITS) - 1;
/// Head word: the consumer holds the staged ring's front (see `StagedView`).
pub(crate) const HEAD_LOCK: u64 = 1 << 61;
const ROLE_SHIFT: u32 = 62;

/// Bytes of the frame header.
pub(crate) const FRAME_HEADER_SIZE: usize = 8;
/// Bytes before the payload: frame header and event header.
pub(crate) const RECORD_PREFIX: usize = FRAME_HEADER_SIZE + EVENT_HEADER_SIZE;
/// The smallest frame (an empty payload).
pub(crate) const MIN_FRAME: u64 = align8(RECORD_PREFIX as u64);

/// Frame flag: a pad frame filling the buffer's end; it holds no record.
pub(crate) const FRAME_PAD: u32 = 1 << 31;
/// Frame flag: one or more records immediately before this one were shed by a staged ring.
pub(crate) const FRAME_AFTER_DROP: u32 = 1 << 30;
const FRAME_LEN_MASK: u32 = (1 << 30) - 1;

/// Rounds up to a multiple of 8.
pub(crate) const fn align8(n: u64) -> u64 {
    (n + 7) & !7
}

/// The frame size of a record with `payload_len` payload bytes.
#[inline]
pub(crate) const fn frame_size(payload_len: usize) -> u64 {
    align8((RECORD_PREFIX + payload_len) as u64)
}

/// `a + n` on positions.
#[inline]
pub(crate) const fn advance(pos: u64, n: u64) -> u64 {
    pos.wrapping_add(n) & POS_MASK
}

/// `a - b` on positions (valid when `a` is at or after `b` by less than 2^61).
#[inline]
pub(crate) const fn distance(a: u64, b: u64) -> u64 {
    a.wrapping_sub(b) & POS_MASK
}

/// What a ring is for, as seen by its producer (docs/design.md §6, the epoch switch).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Role {
    /// Nobody wants this stream: pushes are discarded (`NotSubscribed`).
    Idle = 0,
    /// A candidate: the ring keeps the most recent window of records, evicting the oldest; the
    /// producer is never blocked.
    Staged = 1,
    /// The delivering stream: a full ring pushes back (`Full`).
    Active = 2,
}

impl Role {
    const fn from_bits(bits: u64) -> Role {
        match bits {
            0 => Role::Idle,
            1 => Role::Staged,
            // 3 is never written; decoding it as Active is the conservative reading (no eviction).
            _ => Role::Active,
        }
    }
}

/// The decoded head word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub pos: u64,
    pub locked: bool,
    pub role: Role,
}

impl Head {
    #[inline]
    pub(crate) const fn decode(word: u64) -> Head {
        Head {
            pos: word & POS_MASK,
            locked: word & HEAD_LOCK != 0,
            role: Role::from_bits(word >> ROLE_SHIFT),
        }
    }

    #[inline]
    pub(crate) const fn encode(pos: u64, locked: bool, role: Role) -> u64 {
        (pos & POS_MASK) | if locked { HEAD_LOCK } else { 0 } | ((role as u64) << ROLE_SHIFT)
    }
}

/// A frame header: the record's exact length and flags, and its record number.
///
/// Stored as one native-endian `u64` at the frame's start: low half `len | flags`, high half
/// `rec_no`. For a record, `len` is the unpadded length (prefix + payload); for a pad frame it is
/// the number of bytes the pad covers. `rec_no` counts records written (mod 2^32); a pad frame
/// carries the number of the record that follows it, so `next_rec - rec_no(front)` is always the
/// number of records between the front and the producer's position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    pub len_flags: u32,
    pub rec_no: u32,
}

impl Frame {
    #[cfg(test)]
    pub(crate) const fn record(payload_len: usize, rec_no: u32, after_drop: bool) -> Frame {
        let flags = if after_drop { FRAME_AFTER_DROP } else { 0 };
        Frame { len_flags: (RECORD_PREFIX + payload_len) as u32 | flags, rec_no }
    }
    pub(crate) const fn pad(bytes: u64, rec_no: u32) -> Frame {
        Frame { len_flags: bytes as u32 | FRAME_PAD, rec_no }
    }
    #[inline]
    pub(crate) const fn to_word(self) -> u64 {
        self.len_flags as u64 | ((self.rec_no as u64) << 32)
    }
    #[inline]
    pub(crate) const fn from_word(w: u64) -> Frame {
        Frame { len_flags: w as u32, rec_no: (w >> 32) as u32 }
    }
    #[inline]
    pub(crate) const fn is_pad(self) -> bool {
        self.len_flags & FRAME_PAD != 0
    }
    #[inline]
    pub(crate) const fn after_drop(self) -> bool {
        self.len_flags & FRAME_AFTER_DROP != 0
    }
    /// Unpadded length of a record, or the bytes a pad covers.
    #[inline]
    pub(crate) const fn len(self) -> u64 {
        (self.len_flags & FRAME_LEN_MASK) as u64
    }
    /// [`len`](Self::len) with the pad flag kept (only the after-drop flag cleared): at least
    /// 2^31 for a pad frame.
    #[inline]
    pub(crate) const fn len_with_pad_flag(self) -> u64 {
        (self.len_flags & !FRAME_AFTER_DROP) as u64
    }
    /// Payload bytes of a record (a frame known not to be a pad). Computed from
    /// [`len_with_pad_flag`](Self::len_with_pad_flag), the same for a record: the ring file's
    /// check (`check::record_is_sound`) computes it so, and the optimiser then finds the
    /// check's arithmetic already done.
    #[inline]
    pub(crate) const fn payload_len(self) -> usize {
        debug_assert!(!self.is_pad());
        self.len_with_pad_flag() as usize - RECORD_PREFIX
    }
    /// [`span`](Self::span) of a frame known to be a record (what `Consumer::next_frame`
    /// returns): the optimiser cannot always carry that knowledge across the branch that chose
    /// between the checked and the trusted read, and testing the pad flag again cost 6
    /// instructions per record.
    #[inline]
    pub(crate) const fn record_span(self) -> u64 {
        debug_assert!(!self.is_pad());
        // As `payload_len`: the check's own arithmetic, so it is done once.
        align8(self.len_with_pad_flag())
    }
    /// Bytes from this frame's start to the next frame's.
    #[inline]
    pub(crate) const fn span(self) -> u64 {
        if self.is_pad() {
            self.len()
        } else {
            align8(self.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_word_round_trips() {
        for role in [Role::Idle, Role::Staged, Role::Active] {
            for locked in [false, true] {
                for pos in [0, 1, 8, POS_MASK - 7, POS_MASK] {
                    let h = Head::decode(Head::encode(pos, locked, role));
                    assert_eq!(h, Head { pos, locked, role });
                }
            }
        }
    }

    #[test]
    fn positions_wrap_at_2_pow_61() {
        assert_eq!(advance(POS_MASK, 1), 0);
        assert_eq!(distance(3, POS_MASK - 4), 8);
    }

    #[test]
    fn frames() {
        assert_eq!(MIN_FRAME, 40);
        assert_eq!(frame_size(0), 40);
        assert_eq!(frame_size(1), 48);
        assert_eq!(frame_size(24), 64);
        let f = Frame::record(5, 7, true);
        let g = Frame::from_word(f.to_word());
        assert_eq!(f, g);
        assert!(g.after_drop() && !g.is_pad());
        assert_eq!(g.payload_len(), 5);
        assert_eq!(g.span(), 48);
        let p = Frame::pad(24, 9);
        assert!(p.is_pad());
        assert_eq!(p.span(), 24);
    }
}
