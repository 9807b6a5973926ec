//! Flip events: the in-band control records that move recipients between streams
//! (docs/design.md §3). The byte layout is documented in `docs/flip-format.md` and frozen by the golden
//! vectors in this module's tests.
//!
//! Decoding borrows from the payload and allocates nothing; every malformed input gets a precise
//! [`FlipError`], never a panic.

use core::fmt;

use crate::crc32c::crc32c;

/// The one layout version this build reads and writes.
pub const FLIP_VERSION: u8 = 1;
/// Most recipient ids an IDS selector may list.
pub const MAX_IDS: usize = 32;
/// Largest locator, in bytes.
pub const MAX_LOCATOR: usize = 1024;
/// Largest basis-points value of a COHORT selector (100%).
pub const MAX_BASIS_POINTS: u16 = 10_000;
/// Bytes of the fixed part, before the selector body.
pub const FIXED_LEN: usize = 48;
/// Largest encoded flip: fixed part, 32 ids, a full locator, its length and the CRC.
pub const MAX_FLIP_LEN: usize = FIXED_LEN + 1 + MAX_IDS * 8 + 2 + MAX_LOCATOR + 4;

/// What a flip asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FlipAction {
    /// Switch to `target` (after draining to `cutover_pos` / `not_before_ns`).
    Switch = 1,
    /// A switch to `target` is expected in `expected_in_ns`: stage it now.
    Announce = 2,
    /// Withdraw an announce: stop staging `target`.
    Cancel = 3,
    /// Return to the stream that was active before the last switch.
    Switchback = 4,
}

impl FlipAction {
    /// Every action, in wire-value order.
    pub const ALL: [FlipAction; 4] =
        [FlipAction::Switch, FlipAction::Announce, FlipAction::Cancel, FlipAction::Switchback];

    /// Its lowercase name (`"switchback"`), as the CLI and the trace file write it.
    pub fn name(self) -> &'static str {
        match self {
            FlipAction::Switch => "switch",
            FlipAction::Announce => "announce",
            FlipAction::Cancel => "cancel",
            FlipAction::Switchback => "switchback",
        }
    }

    /// The action [`name`](Self::name) names.
    pub fn from_name(s: &str) -> Option<FlipAction> {
        FlipAction::ALL.into_iter().find(|a| a.name() == s)
    }

    /// The action for a wire value.
    pub fn from_u8(v: u8) -> Option<FlipAction> {
        Some(match v {
            1 => FlipAction::Switch,
            2 => FlipAction::Announce,
            3 => FlipAction::Cancel,
            4 => FlipAction::Switchback,
            _ => return None,
        })
    }
}

/// Up to [`MAX_IDS`] recipient ids, stored inline (no allocation).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdList {
    len: u8,
    ids: [u64; MAX_IDS],
}

impl IdList {
    /// A list of `ids`; `None` when there are more than [`MAX_IDS`].
    pub fn new(ids: &[u64]) -> Option<IdList> {
        if ids.len() > MAX_IDS {
            return None;
        }
        let mut list = IdList { len: ids.len() as u8, ids: [0; MAX_IDS] };
        list.ids[..ids.len()].copy_from_slice(ids);
        Some(list)
    }

    /// The ids.
    pub fn as_slice(&self) -> &[u64] {
        &self.ids[..usize::from(self.len)]
    }
}

impl fmt::Debug for IdList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// Which recipients a flip applies to.
// The id list is inline (264 bytes) on purpose: decoding must not allocate, and flips are rare.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Selector {
    /// Every recipient.
    All,
    /// The recipients listed (1 to 32).
    Ids(IdList),
    /// The recipients whose cohort hash falls below `basis_points` (see [`in_cohort`]).
    Cohort {
        /// 0..=10000: the share of recipients, in hundredths of a percent.
        basis_points: u16,
        /// Chosen by the operator per rollout; keep it fixed while raising `basis_points`.
        salt: u64,
    },
}

impl Selector {
    /// True when the selector includes `recipient_id`.
    pub fn selects(&self, recipient_id: u64) -> bool {
        match self {
            Selector::All => true,
            Selector::Ids(ids) => ids.as_slice().contains(&recipient_id),
            Selector::Cohort { basis_points, salt } => in_cohort(recipient_id, *salt, *basis_points),
        }
    }

    fn wire_kind(&self) -> u8 {
        match self {
            Selector::All => 0,
            Selector::Ids(_) => 1,
            Selector::Cohort { .. } => 2,
        }
    }
}

/// SplitMix64's output for state `x`: add the golden-ratio increment, then the standard
/// finalizer (Steele, Lea and Flood, 2014). `splitmix64(0) == 0xE220A8397B1DCDAF`, the first
/// output of a SplitMix64 generator seeded with 0.
pub const fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The cohort rule: `recipient_id` is in the cohort iff
/// `splitmix64(recipient_id ^ salt) % 10000 < basis_points`. For a fixed salt, raising
/// `basis_points` only adds recipients.
pub const fn in_cohort(recipient_id: u64, salt: u64, basis_points: u16) -> bool {
    splitmix64(recipient_id ^ salt) % 10_000 < basis_points as u64
}

/// A decoded flip, borrowing its locator from the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flip<'a> {
    /// What to do.
    pub action: FlipAction,
    /// Unique id: a flip is applied at most once, whichever stream it arrives on.
    pub flip_id: u64,
    /// The stream to switch to (or announced, or cancelled).
    pub target: u32,
    /// Position in the current stream up to which it is still delivered; 0 = at the flip.
    pub cutover_pos: u64,
    /// Position in the target stream to read from; 0 = let the tracker decide.
    pub resume_pos: u64,
    /// Switch at the first event with `ts_ns >=` this; 0 = no time condition.
    pub not_before_ns: u64,
    /// ANNOUNCE: when the switch is expected, in ns after the flip's `ts_ns`.
    pub expected_in_ns: u64,
    /// Who the flip is for.
    pub selector: Selector,
    /// Opaque: how to obtain the target's events, handed to the application.
    pub locator: &'a [u8],
}

/// Why a flip record was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlipError {
    /// The record ends before a field: `needed` bytes at least, `got` present.
    Truncated {
        /// Bytes needed to read the next field.
        needed: usize,
        /// Bytes in the record.
        got: usize,
    },
    /// The CRC-32C does not match.
    BadCrc {
        /// CRC computed over the record.
        computed: u32,
        /// CRC stored in the record.
        stored: u32,
    },
    /// A layout version this build does not know.
    UnknownVersion(u8),
    /// An action value outside 1..=4.
    UnknownAction(u8),
    /// A selector kind outside 0..=2.
    UnknownSelector(u8),
    /// The reserved byte is not zero.
    ReservedNonZero(u8),
    /// An IDS selector with 0 or more than 32 ids.
    BadIdCount(u8),
    /// A COHORT selector above 10000 basis points.
    BasisPointsOutOfRange(u16),
    /// A locator longer than 1 KiB.
    LocatorTooLong(usize),
    /// Bytes after the CRC.
    TrailingBytes(usize),
    /// Encoding only: the output buffer is too small.
    BufferTooSmall {
        /// Bytes the encoding needs.
        needed: usize,
    },
}

impl FlipError {
    /// A short stable name for the reason, for counters and logs.
    pub fn code(&self) -> &'static str {
        match self {
            FlipError::Truncated { .. } => "truncated",
            FlipError::BadCrc { .. } => "bad_crc",
            FlipError::UnknownVersion(_) => "unknown_version",
            FlipError::UnknownAction(_) => "unknown_action",
            FlipError::UnknownSelector(_) => "unknown_selector",
            FlipError::ReservedNonZero(_) => "reserved_nonzero",
            FlipError::BadIdCount(_) => "bad_id_count",
            FlipError::BasisPointsOutOfRange(_) => "basis_points_out_of_range",
            FlipError::LocatorTooLong(_) => "locator_too_long",
            FlipError::TrailingBytes(_) => "trailing_bytes",
            FlipError::BufferTooSmall { .. } => "buffer_too_small",
        }
    }
}

impl fmt::Display for FlipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlipError::Truncated { needed, got } => {
                write!(f, "flip truncated: needs at least {needed} bytes, has {got}")
            }
            FlipError::BadCrc { computed, stored } => {
                write!(f, "flip CRC-32C mismatch: computed {computed:#010x}, stored {stored:#010x}")
            }
            FlipError::UnknownVersion(v) => {
                write!(f, "unknown flip version {v} (this build reads {FLIP_VERSION})")
            }
            FlipError::UnknownAction(a) => write!(f, "unknown flip action {a} (1..=4)"),
            FlipError::UnknownSelector(s) => write!(f, "unknown flip selector {s} (0..=2)"),
            FlipError::ReservedNonZero(b) => write!(f, "flip reserved byte is {b}, must be 0"),
            FlipError::BadIdCount(n) => write!(f, "flip IDS selector lists {n} ids (1..={MAX_IDS})"),
            FlipError::BasisPointsOutOfRange(bp) => {
                write!(f, "flip cohort basis points {bp} above {MAX_BASIS_POINTS}")
            }
            FlipError::LocatorTooLong(n) => write!(f, "flip locator of {n} bytes exceeds {MAX_LOCATOR}"),
            FlipError::TrailingBytes(n) => write!(f, "{n} trailing bytes after the flip's CRC"),
            FlipError::BufferTooSmall { needed } => write!(f, "flip needs a {needed}-byte buffer"),
        }
    }
}

impl std::error::Error for FlipError {}

/// A little-endian reader that reports truncation precisely.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FlipError> {
        let end = self.at + n;
        let got = self
            .bytes
            .get(self.at..end)
            .ok_or(FlipError::Truncated { needed: end, got: self.bytes.len() })?;
        self.at = end;
        Ok(got)
    }
    fn u8(&mut self) -> Result<u8, FlipError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, FlipError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    fn u32(&mut self) -> Result<u32, FlipError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, FlipError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
}

impl Flip<'static> {
    /// A flip for every recipient with no cut-over condition, no resume point and no locator:
    /// set the other fields on the value as needed.
    pub const fn new(action: FlipAction, flip_id: u64, target: u32) -> Flip<'static> {
        Flip {
            action,
            flip_id,
            target,
            cutover_pos: 0,
            resume_pos: 0,
            not_before_ns: 0,
            expected_in_ns: 0,
            selector: Selector::All,
            locator: b"",
        }
    }
}

impl<'a> Flip<'a> {
    /// Decodes a flip record. Structure first (to find the CRC), then the CRC, then the values,
    /// so a corrupted record reports `BadCrc` rather than whatever its bytes happen to say.
    pub fn decode(bytes: &'a [u8]) -> Result<Flip<'a>, FlipError> {
        let mut r = Reader { bytes, at: 0 };
        let version = r.u8()?;
        if version != FLIP_VERSION {
            return Err(FlipError::UnknownVersion(version));
        }
        let action = r.u8()?;
        let selector_kind = r.u8()?;
        let reserved = r.u8()?;
        let target = r.u32()?;
        let flip_id = r.u64()?;
        let cutover_pos = r.u64()?;
        let resume_pos = r.u64()?;
        let not_before_ns = r.u64()?;
        let expected_in_ns = r.u64()?;
        let selector = match selector_kind {
            0 => Selector::All,
            1 => {
                let n = r.u8()?;
                if n == 0 || usize::from(n) > MAX_IDS {
                    return Err(FlipError::BadIdCount(n));
                }
                let mut ids = [0u64; MAX_IDS];
                for id in ids.iter_mut().take(usize::from(n)) {
                    *id = r.u64()?;
                }
                Selector::Ids(IdList { len: n, ids })
            }
            2 => {
                let basis_points = r.u16()?;
                let salt = r.u64()?;
                Selector::Cohort { basis_points, salt }
            }
            other => return Err(FlipError::UnknownSelector(other)),
        };
        let locator_len = usize::from(r.u16()?);
        if locator_len > MAX_LOCATOR {
            return Err(FlipError::LocatorTooLong(locator_len));
        }
        let locator = r.take(locator_len)?;
        let body_end = r.at;
        let stored = r.u32()?;
        if r.at < bytes.len() {
            return Err(FlipError::TrailingBytes(bytes.len() - r.at));
        }
        let computed = crc32c(&bytes[..body_end]);
        if computed != stored {
            return Err(FlipError::BadCrc { computed, stored });
        }
        let action = FlipAction::from_u8(action).ok_or(FlipError::UnknownAction(action))?;
        if reserved != 0 {
            return Err(FlipError::ReservedNonZero(reserved));
        }
        if let Selector::Cohort { basis_points, .. } = selector {
            if basis_points > MAX_BASIS_POINTS {
                return Err(FlipError::BasisPointsOutOfRange(basis_points));
            }
        }
        Ok(Flip {
            action,
            flip_id,
            target,
            cutover_pos,
            resume_pos,
            not_before_ns,
            expected_in_ns,
            selector,
            locator,
        })
    }

    /// Bytes [`encode`](Flip::encode) writes.
    pub fn encoded_len(&self) -> usize {
        let body = match self.selector {
            Selector::All => 0,
            Selector::Ids(ids) => 1 + 8 * ids.as_slice().len(),
            Selector::Cohort { .. } => 10,
        };
        FIXED_LEN + body + 2 + self.locator.len() + 4
    }

    /// Encodes into `out`, returning the bytes written. Refuses what `decode` would reject
    /// (an empty id list, basis points above 10000, a locator over 1 KiB).
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, FlipError> {
        match self.selector {
            Selector::Ids(ids) if ids.as_slice().is_empty() => return Err(FlipError::BadIdCount(0)),
            Selector::Cohort { basis_points, .. } if basis_points > MAX_BASIS_POINTS => {
                return Err(FlipError::BasisPointsOutOfRange(basis_points))
            }
            _ => {}
        }
        if self.locator.len() > MAX_LOCATOR {
            return Err(FlipError::LocatorTooLong(self.locator.len()));
        }
        let needed = self.encoded_len();
        let out = out.get_mut(..needed).ok_or(FlipError::BufferTooSmall { needed })?;
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            out[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        put(&[FLIP_VERSION, self.action as u8, self.selector.wire_kind(), 0]);
        put(&self.target.to_le_bytes());
        for v in [self.flip_id, self.cutover_pos, self.resume_pos, self.not_before_ns, self.expected_in_ns] {
            put(&v.to_le_bytes());
        }
        match self.selector {
            Selector::All => {}
            Selector::Ids(ids) => {
                put(&[ids.len]);
                for id in ids.as_slice() {
                    put(&id.to_le_bytes());
                }
            }
            Selector::Cohort { basis_points, salt } => {
                put(&basis_points.to_le_bytes());
                put(&salt.to_le_bytes());
            }
        }
        put(&(self.locator.len() as u16).to_le_bytes());
        put(self.locator);
        let crc = crc32c(&out[..needed - 4]);
        out[needed - 4..].copy_from_slice(&crc.to_le_bytes());
        Ok(needed)
    }

    /// Encodes into a new vector (for tools and tests; the hot path uses [`encode`](Flip::encode)).
    pub fn to_vec(&self) -> Result<Vec<u8>, FlipError> {
        let mut v = vec![0u8; self.encoded_len()];
        self.encode(&mut v)?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests;
