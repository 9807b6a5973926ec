//! Checks on what a ring's *other process* wrote: frames and positions read from a ring file.
//!
//! A ring in this process is written by this crate's own producer, whose frames are sound by
//! construction, so nothing here runs for it (`Storage::MAY_BE_SHARED` is a constant `false` for
//! [`HeapStorage`](super::HeapStorage), and the engine's in-process rings skip it at runtime). A
//! ring file is another matter: any process that can open the file can write any byte of it at
//! any time. Every frame word and every position the consumer takes from such a ring passes
//! through here before it is used to form a slice or to move a position, so a hostile or broken
//! producer can make the consumer stop reading (a [`Corruption`], sticky), but never read outside
//! the ring, loop forever or move its head past the producer's tail.
//!
//! What is checked, against the consumer's own copies (`capacity` and `max_payload` come from the
//! file's CRC-protected header, checked at open and never re-read):
//!
//! - a record frame: length at least the 40-byte prefix, payload at most `max_payload`, the
//!   frame inside the buffer (records never wrap) and ending at or before the published tail;
//! - a pad frame: a non-zero multiple of 8 that ends exactly at the buffer's end (the only pad
//!   an honest producer writes), and not past the tail;
//! - a tail: 8-aligned, at most `capacity` ahead of the consumer's released position, and not
//!   behind where the consumer is reading;
//! - a head word position (taken when a staged ring's front is held, or on a role change):
//!   8-aligned and not past the tail.

use core::fmt;

use super::layout::{align8, distance, Frame, RECORD_PREFIX};

/// What was wrong with a ring file's frame or position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Corruption {
    /// A pad frame of 0 bytes, or not a multiple of 8 (the reader would not advance, or would
    /// lose alignment).
    BadPad {
        /// The pad's length field.
        len: u64,
    },
    /// A pad frame that does not end at the buffer's end.
    PadNotAtEnd {
        /// The pad's length field.
        len: u64,
        /// Bytes from the frame to the buffer's end.
        to_end: u64,
    },
    /// A record frame shorter than the frame and event headers (40 bytes).
    TooShort {
        /// The record's length field.
        len: u64,
    },
    /// A record whose payload is larger than the ring's `max_payload`.
    TooLarge {
        /// Its payload length.
        payload: u64,
        /// The ring's limit.
        max: u64,
    },
    /// A record frame that runs past the buffer's end (records never wrap).
    Wraps {
        /// The frame's length with padding.
        span: u64,
        /// Bytes from the frame to the buffer's end.
        to_end: u64,
    },
    /// A frame that ends past the producer's published tail.
    PastTail {
        /// The frame's length with padding.
        span: u64,
        /// Published bytes from the frame's start.
        published: u64,
    },
    /// A tail that is misaligned, more than the capacity ahead of the consumer, or behind what
    /// the consumer has already read.
    BadTail {
        /// The tail read.
        tail: u64,
    },
    /// A head word position that is misaligned or past the tail.
    BadHead {
        /// The position read.
        head: u64,
        /// The tail.
        tail: u64,
    },
    /// The head word's role bits are not the role the consumer set: only the consumer
    /// changes the role.
    RoleChanged {
        /// The role the word holds.
        found: super::Role,
        /// The role the consumer set.
        set: super::Role,
    },
    /// The head word kept changing under the consumer's compare-exchange: another process
    /// writes it without following the protocol.
    HeadBusy {
        /// Attempts made.
        attempts: u32,
    },
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Corruption::BadPad { len } => write!(f, "pad frame of {len} bytes (zero or not a multiple of 8)"),
            Corruption::PadNotAtEnd { len, to_end } => {
                write!(f, "pad frame of {len} bytes where {to_end} remain to the buffer's end")
            }
            Corruption::TooShort { len } => {
                write!(
                    f,
                    "record length {len} is shorter than the {RECORD_PREFIX}-byte frame and event headers"
                )
            }
            Corruption::TooLarge { payload, max } => {
                write!(f, "record payload of {payload} bytes exceeds the ring's max_payload {max}")
            }
            Corruption::Wraps { span, to_end } => {
                write!(f, "record frame of {span} bytes runs past the buffer's end ({to_end} bytes left)")
            }
            Corruption::PastTail { span, published } => {
                write!(f, "frame of {span} bytes ends past the published tail ({published} bytes published)")
            }
            Corruption::BadTail { tail } => {
                write!(f, "tail {tail} is misaligned, beyond the ring's capacity, or behind the reader")
            }
            Corruption::BadHead { head, tail } => {
                write!(f, "head position {head} is misaligned or past the tail {tail}")
            }
            Corruption::RoleChanged { found, set } => {
                write!(f, "head word holds role {found:?}; the consumer set {set:?}")
            }
            Corruption::HeadBusy { attempts } => {
                write!(f, "head word changed under {attempts} compare-exchanges in a row")
            }
        }
    }
}

/// The common case of [`frame`], in as few instructions as it takes: a record frame at `pos`
/// that is sound, given `end`, a bound the consumer computed itself: at or before the checked
/// tail and at or before the end of the buffer lap `pos` is on (`Walk::end` in `consumer.rs`, not masked).
/// Two comparisons: the payload bound, which with the pad flag left in the length also fails
/// every pad (a pad's is at least 2^31) and every length below the 40-byte prefix (the
/// subtraction wraps); and the frame's end against `end`, which covers both "inside the buffer"
/// and "published". False for anything else, which [`frame`] then looks at in full.
#[inline(always)]
pub(crate) fn record_is_sound(pos: u64, frame: Frame, end: u64, max_payload: u64) -> bool {
    let len = frame.len_with_pad_flag();
    (len.wrapping_sub(RECORD_PREFIX as u64) <= max_payload) & (pos + align8(len) <= end)
}

/// Checks the frame `frame` read at `pos` (8-aligned) of a ring of `capacity` bytes whose
/// published tail is `tail` (sound: at or after `pos`, at most `capacity` ahead of it).
#[cold]
pub(crate) fn frame(
    pos: u64,
    frame: Frame,
    tail: u64,
    capacity: u64,
    max_payload: u64,
) -> Result<(), Corruption> {
    let to_end = capacity - (pos & (capacity - 1));
    let len = frame.len();
    let span = if frame.is_pad() {
        if len == 0 || len % 8 != 0 {
            return Err(Corruption::BadPad { len });
        }
        if len != to_end {
            return Err(Corruption::PadNotAtEnd { len, to_end });
        }
        len
    } else {
        // One comparison for both bounds: below the prefix the subtraction wraps to a huge value.
        if len.wrapping_sub(RECORD_PREFIX as u64) > max_payload {
            return Err(if len < RECORD_PREFIX as u64 {
                Corruption::TooShort { len }
            } else {
                Corruption::TooLarge { payload: len - RECORD_PREFIX as u64, max: max_payload }
            });
        }
        let span = align8(len);
        if span > to_end {
            return Err(Corruption::Wraps { span, to_end });
        }
        span
    };
    let published = distance(tail, pos);
    if span > published {
        return Err(Corruption::PastTail { span, published });
    }
    Ok(())
}

/// Checks a tail loaded while the consumer reads at `pos` and has released up to `released`.
#[inline]
pub(crate) fn tail(tail: u64, pos: u64, released: u64, capacity: u64) -> Result<(), Corruption> {
    let ahead = distance(tail, released);
    if tail % 8 != 0 || ahead > capacity || ahead < distance(pos, released) {
        return Err(Corruption::BadTail { tail });
    }
    Ok(())
}

/// Checks a head word position against the tail.
#[inline]
pub(crate) fn head(head: u64, tail: u64, capacity: u64) -> Result<(), Corruption> {
    if head % 8 != 0 || distance(tail, head) > capacity {
        return Err(Corruption::BadHead { head, tail });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::layout::Frame;

    const CAP: u64 = 1024;

    #[test]
    fn sound_frames_pass_and_each_fault_is_named() {
        let rec = |payload: usize| Frame::record(payload, 0, false);
        assert_eq!(frame(0, rec(24), 64, CAP, 100), Ok(()));
        assert_eq!(frame(1000, Frame::pad(24, 0), 1024 + 40, CAP, 100), Ok(()));
        assert_eq!(frame(0, Frame::pad(0, 0), 64, CAP, 100), Err(Corruption::BadPad { len: 0 }));
        assert_eq!(frame(0, Frame::pad(12, 0), 64, CAP, 100), Err(Corruption::BadPad { len: 12 }));
        assert_eq!(
            frame(0, Frame::pad(16, 0), 64, CAP, 100),
            Err(Corruption::PadNotAtEnd { len: 16, to_end: 1024 })
        );
        assert_eq!(frame(0, Frame::from_word(0), 64, CAP, 100), Err(Corruption::TooShort { len: 0 }));
        assert_eq!(frame(0, rec(101), 4096, CAP, 100), Err(Corruption::TooLarge { payload: 101, max: 100 }));
        let huge = Frame::from_word((1 << 30) - 1);
        assert!(matches!(frame(0, huge, 64, CAP, 1 << 30), Err(Corruption::Wraps { .. })));
        assert_eq!(frame(1000, rec(0), 1040, CAP, 100), Err(Corruption::Wraps { span: 40, to_end: 24 }));
        assert_eq!(frame(0, rec(24), 40, CAP, 100), Err(Corruption::PastTail { span: 64, published: 40 }));
        // The fast test agrees: sound records pass, everything else goes to `frame`. Its `end`
        // is the consumer's: the tail, or the end of the position's lap if that comes first.
        let fast = |pos: u64, f: Frame, tail: u64, max: u64| {
            let lap_end = (pos & !(CAP - 1)) + CAP;
            let sound = record_is_sound(pos, f, tail.min(lap_end), max);
            assert!(!(sound && f.is_pad()), "a pad never passes the fast test");
            if sound {
                assert_eq!(frame(pos, f, tail, CAP, max), Ok(()), "the full check agrees");
            }
            sound
        };
        assert!(fast(0, rec(24), 64, 100));
        assert!(fast(960, rec(24), 1024, 100));
        assert!(fast(2048 + 960, rec(24), 4096, 100));
        assert!(!fast(1000, Frame::pad(24, 0), 1064, 100));
        assert!(!fast(0, Frame::from_word(0), 64, 100));
        assert!(!fast(0, rec(101), 4096, 100));
        assert!(!fast(1000, rec(0), 1040, 100));
        assert!(!fast(0, rec(24), 40, 100));
        assert!(!fast(0, huge, 64, 1 << 30));
        // Unmasked at the end of the last lap of positions: the lap ends at 2^61.
        let last = (1u64 << 61) - CAP;
        assert!(fast(last + 960, rec(24), 1 << 61, 100));
        assert!(!fast(last + 1000, rec(0), 1 << 61, 100));
    }

    #[test]
    fn tails_and_heads() {
        assert_eq!(tail(64, 40, 0, CAP), Ok(()));
        assert_eq!(tail(1024, 0, 0, CAP), Ok(()));
        assert_eq!(tail(1032, 0, 0, CAP), Err(Corruption::BadTail { tail: 1032 }));
        assert_eq!(tail(60, 0, 0, CAP), Err(Corruption::BadTail { tail: 60 }));
        assert_eq!(tail(32, 40, 0, CAP), Err(Corruption::BadTail { tail: 32 }));
        assert_eq!(head(64, 64, CAP), Ok(()));
        assert_eq!(head(72, 64, CAP), Err(Corruption::BadHead { head: 72, tail: 64 }));
        assert_eq!(head(4, 64, CAP), Err(Corruption::BadHead { head: 4, tail: 64 }));
    }
}
