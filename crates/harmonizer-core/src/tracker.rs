//! The delivery tracker: per origin, the last sequence number delivered (docs/design.md §4 step 3).
//!
//! A fixed array indexed by the dense origin index, allocated once; every call is O(1) and
//! allocation-free. It is the single source of truth for "already delivered": duplicates are
//! dropped by it, gaps are detected by it (strict mode), and a staged candidate's window is
//! trimmed by it.

use core::fmt;

/// How sequence numbers advance within an origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SeqMode {
    /// `seq` is contiguous: +1 per event. A jump is a gap.
    Strict,
    /// `seq` only increases. A jump is normal; gaps cannot be seen from `seq` alone.
    Monotonic,
}

/// What to do with an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Deliver it: it is the next one (strict), or later than the last (monotonic), or the first
    /// seen for its origin.
    Deliver,
    /// Already delivered (or older): drop it.
    Duplicate,
    /// Strict mode: events `expected ..= seq - 1` are missing before this one.
    Gap {
        /// The first missing seq.
        expected: u64,
    },
    /// `origin >= max_origins`: cannot be tracked.
    UnknownOrigin,
}

/// Bad tracker configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrackerError {
    /// `max_origins` is 0 or above [`MAX_ORIGINS`].
    BadMaxOrigins(u32),
    /// The per-origin tables could not be allocated.
    OutOfMemory {
        /// Origins asked for.
        origins: u32,
    },
}

impl fmt::Display for TrackerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrackerError::BadMaxOrigins(n) => write!(f, "max_origins {n} outside 1..={MAX_ORIGINS}"),
            TrackerError::OutOfMemory { origins } => {
                write!(f, "cannot allocate the tracker's tables for {origins} origins")
            }
        }
    }
}

impl std::error::Error for TrackerError {}

/// The most origins a tracker accepts (16 Mi: 128 MiB of state; anything larger is a mistake).
pub const MAX_ORIGINS: u32 = 1 << 24;

/// Per-origin delivery state.
pub struct Tracker {
    mode: SeqMode,
    /// Last seq delivered, per origin; meaningful only where `started` is set.
    last: Box<[u64]>,
    /// Whether anything was delivered for the origin yet. Always as long as `last` (both are
    /// made in `new` and never resized): an index checked against `last` is in bounds here.
    started: Box<[bool]>,
}

impl Tracker {
    /// A tracker for origins `0 .. max_origins`.
    pub fn new(max_origins: u32, mode: SeqMode) -> Result<Tracker, TrackerError> {
        if max_origins == 0 || max_origins > MAX_ORIGINS {
            return Err(TrackerError::BadMaxOrigins(max_origins));
        }
        // Fallibly: up to 2^24 origins is 144 MiB, which a host may not have to give.
        let n = max_origins as usize;
        let oom = |_| TrackerError::OutOfMemory { origins: max_origins };
        let mut last = Vec::new();
        last.try_reserve_exact(n).map_err(oom)?;
        last.resize(n, 0u64);
        let mut started = Vec::new();
        started.try_reserve_exact(n).map_err(oom)?;
        started.resize(n, false);
        Ok(Tracker { mode, last: last.into_boxed_slice(), started: started.into_boxed_slice() })
    }

    /// The sequence mode.
    pub fn mode(&self) -> SeqMode {
        self.mode
    }

    /// Number of origins tracked.
    pub fn max_origins(&self) -> u32 {
        self.last.len() as u32
    }

    /// What to do with event `(origin, seq)`.
    #[inline]
    pub fn check(&self, origin: u32, seq: u64) -> Verdict {
        let Some(last) = self.last(origin) else {
            return if (origin as usize) < self.last.len() {
                Verdict::Deliver
            } else {
                Verdict::UnknownOrigin
            };
        };
        if seq <= last {
            return Verdict::Duplicate;
        }
        match self.mode {
            SeqMode::Strict if seq - last > 1 => Verdict::Gap { expected: last + 1 },
            _ => Verdict::Deliver,
        }
    }

    /// True when `(origin, seq)` was delivered already (or is older than what was). Unknown
    /// origins are never delivered.
    #[inline]
    pub fn is_delivered(&self, origin: u32, seq: u64) -> bool {
        matches!(self.last(origin), Some(last) if seq <= last)
    }

    /// Records that `(origin, seq)` was delivered (or, after a reported loss, skipped to).
    /// Never moves an origin backwards. Unknown origins are ignored.
    #[inline]
    pub fn advance(&mut self, origin: u32, seq: u64) {
        let i = origin as usize;
        if i < self.last.len() && (!self.started[i] || seq > self.last[i]) {
            self.last[i] = seq;
            self.started[i] = true;
        }
    }

    /// Records the delivery of `(origin, seq)` that [`check`](Self::check) judged
    /// [`Verdict::Deliver`], with no other call on the tracker since: what `advance` would test
    /// holds (the origin is known, and unstarted or behind `seq`), so this only stores. For
    /// the engine's delivery loop, where the tracker cannot change between the check and the
    /// delivery (the handler has no access to it).
    #[inline]
    pub(crate) fn delivered(&mut self, origin: u32, seq: u64) {
        debug_assert_eq!(self.check(origin, seq), Verdict::Deliver, "delivered without a Deliver verdict");
        let i = origin as usize;
        self.last[i] = seq;
        // SAFETY: `started` is as long as `last` (field doc), and indexing `last` checked `i`.
        unsafe { *self.started.get_unchecked_mut(i) = true };
    }

    /// The last seq delivered for `origin`, if any.
    #[inline]
    pub fn last(&self, origin: u32) -> Option<u64> {
        let i = origin as usize;
        // SAFETY: `started` is as long as `last` (field doc), and `i < last.len()` is tested
        // first.
        (i < self.last.len() && unsafe { *self.started.get_unchecked(i) }).then(|| self.last[i])
    }

    /// The frontier: `(origin, last seq delivered)` for every origin delivered from, in origin
    /// order. Walks every origin slot (`max_origins`), so it is for the rare moments that need
    /// the whole frontier (a start after it), not for the delivery path.
    pub fn frontier(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.started
            .iter()
            .zip(self.last.iter())
            .enumerate()
            .filter(|(_, (s, _))| **s)
            .map(|(i, (_, l))| (i as u32, *l))
    }

    /// Declares that delivery of `origin` resumes at `next_seq` (for example after a restart, from
    /// the application's own checkpoint): everything below it counts as delivered.
    pub fn resume_at(&mut self, origin: u32, next_seq: u64) {
        let i = origin as usize;
        if i < self.last.len() {
            match next_seq.checked_sub(1) {
                Some(last) => {
                    self.last[i] = last;
                    self.started[i] = true;
                }
                None => self.started[i] = false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_mode_delivers_in_order_and_finds_gaps() {
        let mut t = Tracker::new(4, SeqMode::Strict).unwrap();
        assert_eq!(t.check(0, 10), Verdict::Deliver, "the first event of an origin sets its start");
        t.advance(0, 10);
        assert_eq!(t.check(0, 10), Verdict::Duplicate);
        assert_eq!(t.check(0, 9), Verdict::Duplicate);
        assert_eq!(t.check(0, 11), Verdict::Deliver);
        assert_eq!(t.check(0, 13), Verdict::Gap { expected: 11 });
        assert_eq!(t.check(1, 0), Verdict::Deliver);
        assert_eq!(t.check(4, 0), Verdict::UnknownOrigin);
        assert!(
            t.is_delivered(0, 10) && !t.is_delivered(0, 11) && !t.is_delivered(1, 0) && !t.is_delivered(9, 0)
        );
        assert_eq!(t.last(0), Some(10));
        assert_eq!(t.last(1), None);
        t.advance(0, 5); // never backwards
        assert_eq!(t.last(0), Some(10));
        t.advance(0, 0);
        assert_eq!(t.last(0), Some(10));
        assert_eq!(t.frontier().collect::<Vec<_>>(), [(0, 10)]);
        t.advance(3, 7);
        t.resume_at(1, 1);
        assert_eq!(t.frontier().collect::<Vec<_>>(), [(0, 10), (1, 0), (3, 7)]);
        t.resume_at(0, 0);
        assert_eq!(t.frontier().collect::<Vec<_>>(), [(1, 0), (3, 7)]);
    }

    #[test]
    fn seq_zero_is_an_ordinary_seq() {
        let mut t = Tracker::new(1, SeqMode::Strict).unwrap();
        t.advance(0, 0);
        assert_eq!(t.last(0), Some(0));
        assert_eq!(t.check(0, 0), Verdict::Duplicate);
        assert_eq!(t.check(0, 1), Verdict::Deliver);
    }

    #[test]
    fn the_largest_seq_is_tracked() {
        let mut t = Tracker::new(1, SeqMode::Monotonic).unwrap();
        t.advance(0, u64::MAX - 1);
        assert_eq!(t.check(0, u64::MAX), Verdict::Deliver);
        t.advance(0, u64::MAX);
        assert_eq!(t.last(0), Some(u64::MAX));
        assert_eq!(t.check(0, u64::MAX), Verdict::Duplicate);
        t.resume_at(0, 0);
        assert_eq!(t.last(0), None);
    }

    #[test]
    fn monotonic_mode_accepts_jumps() {
        let mut t = Tracker::new(1, SeqMode::Monotonic).unwrap();
        t.advance(0, 100);
        assert_eq!(t.check(0, 250), Verdict::Deliver);
        assert_eq!(t.check(0, 100), Verdict::Duplicate);
    }

    #[test]
    fn delivered_after_a_deliver_verdict_is_advance() {
        for mode in [SeqMode::Strict, SeqMode::Monotonic] {
            let (mut a, mut d) = (Tracker::new(3, mode).unwrap(), Tracker::new(3, mode).unwrap());
            for (origin, seq) in [(0, 5), (0, 6), (1, 0), (2, u64::MAX - 1), (2, u64::MAX), (0, 7)] {
                assert_eq!(a.check(origin, seq), Verdict::Deliver);
                assert_eq!(d.check(origin, seq), Verdict::Deliver);
                a.advance(origin, seq);
                d.delivered(origin, seq);
                for o in 0..4 {
                    assert_eq!(a.last(o), d.last(o), "origin {o} after ({origin}, {seq}), {mode:?}");
                }
            }
        }
    }

    #[test]
    fn resume_and_errors() {
        let mut t = Tracker::new(2, SeqMode::Strict).unwrap();
        t.resume_at(1, 50);
        assert_eq!(t.check(1, 49), Verdict::Duplicate);
        assert_eq!(t.check(1, 50), Verdict::Deliver);
        assert_eq!(Tracker::new(0, SeqMode::Strict).err(), Some(TrackerError::BadMaxOrigins(0)));
        assert!(Tracker::new(MAX_ORIGINS + 1, SeqMode::Strict).is_err());
        assert!(!TrackerError::BadMaxOrigins(0).to_string().is_empty());
    }
}
