//! Reading and trimming a staged ring: the consumer holds the front while it looks.

use super::check::{self, Corruption};
use super::consumer::{Consumer, CAS_ATTEMPTS};
use super::layout::{Frame, Head, Role, POS_MASK};
use super::storage::{HeapStorage, Storage};
use super::{Record, RingError};
use crate::sync::Ordering;

impl<S: Storage> Consumer<S> {
    /// Holds the front of a staged ring so its records can be read and trimmed. While the view
    /// lives the producer cannot evict (it stores new records while space remains and sheds them
    /// after, counted and flagged); the view is meant to be short-lived. Leaking it
    /// (`mem::forget`) is safe but leaves the front held: the producer sheds once the ring is
    /// full, trims made through the leaked view are lost, and the next `staged()` or
    /// `set_role` takes the front back.
    pub fn staged(&mut self) -> Result<StagedView<'_, S>, RingError> {
        if let Some((pos, what)) = self.corruption() {
            return Err(RingError::Corrupt { pos, what });
        }
        if self.role != Role::Staged {
            return Err(RingError::WrongRole { expected: Role::Staged, actual: self.role });
        }
        let sh = &*self.shared;
        let mut word = sh.w().head.load(Ordering::Relaxed);
        let mut attempts = 0;
        let front = loop {
            attempts += 1;
            if attempts > CAS_ATTEMPTS && self.checks() {
                return Err(self.fail_at_head(Corruption::HeadBusy { attempts: CAS_ATTEMPTS }));
            }
            let head = Head::decode(word);
            if head.role != Role::Staged && self.checks() {
                return Err(
                    self.fail_at_head(Corruption::RoleChanged { found: head.role, set: Role::Staged })
                );
            }
            // Locked already only if a view was leaked: taking it again is correct.
            debug_assert!(head.role == Role::Staged);
            // Acquire: pairs with the producer's eviction exchange (we start reading at its
            // result) and, through the tail load below, with its publishes.
            match sh.w().head.compare_exchange_weak(
                word,
                Head::encode(head.pos, true, Role::Staged),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => break head.pos,
                Err(actual) => word = actual,
            }
        };
        let tail = sh.w().tail.load(Ordering::Acquire);
        if self.checks() {
            if let Err(what) = check::head(front, tail, sh.capacity) {
                // The front stays held (the word is the other process's to fix); nothing is read.
                return Err(self.fail_at_head(what));
            }
        }
        self.head = front;
        self.released = front;
        self.cached_tail = tail;
        self.forget_walk();
        Ok(StagedView { consumer: self, front })
    }
}

/// The held front of a staged ring. Dropping it releases the front, trimmed to wherever
/// [`pop_front`](StagedView::pop_front) / [`trim_while`](StagedView::trim_while) left it.
pub struct StagedView<'a, S: Storage = HeapStorage> {
    consumer: &'a mut Consumer<S>,
    /// The first frame still kept.
    front: u64,
}

impl<S: Storage> StagedView<'_, S> {
    /// The first record kept. Every walk of the view starts over at the front, which may lie
    /// on an earlier lap of the buffer than where the last walk stopped: the consumer's walk
    /// bound is forgotten first ([`Consumer::forget_walk`]), as it holds only for positions
    /// walked to.
    fn first(&mut self) -> Option<(u64, Frame)> {
        self.consumer.forget_walk();
        self.consumer.next_frame(self.front)
    }

    /// The oldest record kept.
    pub fn front(&mut self) -> Option<Record<'_>> {
        let (pos, frame) = self.first()?;
        // SAFETY: the front is held, so the producer cannot evict it, and it lies below the
        // acquired tail; the borrow ends before any trim (`&mut self`).
        Some(unsafe { self.consumer.record_at(pos, frame) })
    }

    /// Trims the oldest record; false when there was none.
    pub fn pop_front(&mut self) -> bool {
        match self.first() {
            Some((pos, frame)) => {
                self.front = pos + frame.record_span();
                true
            }
            None => false,
        }
    }

    /// Trims records from the front while `keep_going` says so; returns how many.
    pub fn trim_while(&mut self, mut keep_going: impl FnMut(&Record<'_>) -> bool) -> usize {
        let mut n = 0;
        // Starts over at the front once, then walks on from it: the engine trims every staged
        // window on every poll, so each record trimmed takes the fast path.
        let mut next = self.first();
        while let Some((pos, frame)) = next {
            // SAFETY: as in `front`.
            if !keep_going(&unsafe { self.consumer.record_at(pos, frame) }) {
                break;
            }
            self.front = pos + frame.record_span();
            n += 1;
            next = self.consumer.next_frame(self.front);
        }
        n
    }

    /// Every record kept, oldest first, up to the tail seen when the view was taken (or last
    /// refreshed by reaching it).
    pub fn iter(&mut self) -> StagedIter<'_, S> {
        let pos = self.front;
        self.consumer.forget_walk();
        StagedIter { consumer: self.consumer, pos }
    }

    /// As [`iter`](Self::iter), but from `pos` if the view still holds it: a position a walk
    /// of this ring returned ([`StagedIter::position`]), in this view or an earlier one. From
    /// the front when the front has passed it (the records up to it were trimmed or evicted
    /// since) or it lies beyond the tail seen.
    pub fn iter_from(&mut self, pos: u64) -> StagedIter<'_, S> {
        let pos = pos & POS_MASK;
        let front = self.front & POS_MASK;
        let behind_tail = super::layout::distance(self.consumer.cached_tail, front);
        let pos = if super::layout::distance(pos, front) > behind_tail { front } else { pos };
        self.consumer.forget_walk();
        StagedIter { consumer: self.consumer, pos }
    }

    /// Records kept from the front to the producer's published tail.
    pub fn len(&mut self) -> usize {
        let mut n = 0;
        let mut pos = self.front;
        self.consumer.forget_walk();
        while let Some((p, frame)) = self.consumer.next_frame(pos) {
            n += 1;
            pos = p + frame.record_span();
        }
        n
    }

    /// True when no record is kept.
    pub fn is_empty(&mut self) -> bool {
        self.first().is_none()
    }

    /// Bytes from the front to the tail last seen (frames, pads included): what the window
    /// holds, without walking it. The tail is the one loaded when the view was taken or when a
    /// read last reached it.
    pub fn retained_bytes(&self) -> u64 {
        super::layout::distance(self.consumer.cached_tail, self.front)
    }

    /// Total records evicted by the producer (see [`Consumer::evicted`]).
    pub fn evicted(&self) -> u64 {
        self.consumer.evicted()
    }

    /// The identity tier: calls `f` with the identity of each record the producer evicted that
    /// the ring's identity log still holds (the last `identities - 1`), oldest first. Nothing
    /// without a log (`RingConfig::identities`).
    pub fn evicted_identities(&self, f: impl FnMut(&super::Identity)) {
        if let Some(log) = &self.consumer.shared.identities {
            log.read(f);
        }
    }
}

impl<S: Storage> Drop for StagedView<'_, S> {
    fn drop(&mut self) {
        let c = &mut *self.consumer;
        let sh = &*c.shared;
        // The front is a walk position (`Consumer::next_frame`): 2^61 at the end of the last lap.
        let front = self.front & POS_MASK;
        sh.track_read_span(c.released, front);
        // Release: our reads happen-before any eviction that acquires this (unlocked) word.
        // A plain store is enough: while the lock bit is set only this side writes the word.
        sh.w().head.store(Head::encode(front, false, Role::Staged), Ordering::Release);
        c.head = front;
        c.released = front;
        c.forget_walk();
    }
}

/// Iterator over a staged view's records.
pub struct StagedIter<'a, S: Storage = HeapStorage> {
    consumer: &'a mut Consumer<S>,
    pos: u64,
}

impl<'a, S: Storage> StagedIter<'a, S> {
    /// The ring position after the last record returned (where the next walk may resume,
    /// [`StagedView::iter_from`]).
    pub fn position(&self) -> u64 {
        self.pos & POS_MASK
    }

    /// The next record (a lending iterator: the record borrows the iterator).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Record<'_>> {
        let (pos, frame) = self.consumer.next_frame(self.pos)?;
        self.pos = pos + frame.record_span();
        // SAFETY: held front, below the acquired tail; the view (and so the hold) outlives this
        // iterator, which borrows it mutably.
        Some(unsafe { self.consumer.record_at(pos, frame) })
    }
}
