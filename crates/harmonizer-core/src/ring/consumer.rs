//! The consumer end: peek/release, chunks, roles and the window.

use core::cell::Cell;
use core::marker::PhantomData;

use super::check::{self, Corruption};
use super::layout::{
    advance, distance, Frame, Head, Role, FRAME_HEADER_SIZE, MIN_FRAME, POS_MASK, RECORD_PREFIX,
};
use super::shared::Shared;
use super::storage::{HeapStorage, Storage};
use super::{Record, RingError};
use crate::event::EventHeader;
use crate::sync::AccessTracker;
use crate::sync::{Arc, Ordering};

/// The consumer end of a ring. `Send` but not `Sync`.
///
/// ```compile_fail,E0277
/// fn needs_sync<T: Sync>() {}
/// needs_sync::<harmonizer_core::ring::Consumer>();
/// ```
///
/// ```
/// fn needs_send<T: Send>() {}
/// needs_send::<harmonizer_core::ring::Consumer>();
/// ```
pub struct Consumer<S: Storage = HeapStorage> {
    pub(super) shared: Arc<Shared<S>>,
    /// Next frame to read. Equal to `released` except after skipping pad frames or peeking.
    /// A walk position (`next_frame`): not masked, so 2^61 at the end of the last lap; mask it
    /// for anything else.
    pub(super) head: u64,
    /// The position last stored to the head word.
    pub(super) released: u64,
    /// The tail last loaded: never ahead of the real tail, and never behind `head` (refreshed
    /// whenever the head is taken from the head word), so reloading only when the ring looks
    /// empty is safe and saves a cache miss on the producer's line per pop.
    pub(super) cached_tail: u64,
    /// What the fast read path needs, in one copyable piece a chunk keeps in registers.
    pub(super) walk: Walk,
    /// The role; only this side changes it.
    pub(super) role: Role,
    /// End of the peeked record (a walk position), or [`NO_POS`] when no peek is
    /// outstanding.
    peeked: u64,
    /// The first thing found wrong with what the other process wrote, and where: sticky, the
    /// ring is not read past it again.
    fault: Option<(u64, Corruption)>,
    _not_sync: PhantomData<Cell<()>>,
}

// SAFETY: every other field is `Send` (`shared`: `Shared<S>` is `Send` and `Sync` for every
// `Storage`). `base` only points at the storage `shared` owns and keeps alive, which the
// `Storage` contract makes usable from any thread; moving the consumer moves nothing it points
// at. Still not `Sync` (`_not_sync`).
unsafe impl<S: Storage> Send for Consumer<S> {}

impl<S: Storage> Consumer<S> {
    pub(super) fn new(shared: Arc<Shared<S>>, role: Role) -> Self {
        let untrusted = shared.storage.external_words().is_some();
        let walk = Walk {
            base: shared.storage.as_ptr(),
            mask: shared.capacity - 1,
            end: 0,
            max_payload: shared.max_payload as u64,
            untrusted,
        };
        Consumer {
            shared,
            head: 0,
            released: 0,
            cached_tail: 0,
            walk,
            role,
            peeked: NO_POS,
            fault: None,
            _not_sync: PhantomData,
        }
    }

    /// True when what the ring holds comes from another process and is checked before use.
    /// A constant `false` for storage that is never shared.
    #[inline(always)]
    pub(super) fn checks(&self) -> bool {
        S::MAY_BE_SHARED && self.walk.untrusted
    }

    /// What the other process wrote wrong, and the ring position where it was found: the first
    /// violation on a ring file's frames or positions (`ring::check`), after which the ring
    /// reads as empty and [`peek`](Self::peek), [`read_chunk`](Self::read_chunk) and
    /// [`staged`](Self::staged) answer [`RingError::Corrupt`]. Always `None` for an in-process
    /// ring.
    pub fn corruption(&self) -> Option<(u64, Corruption)> {
        if self.checks() {
            self.fault
        } else {
            None
        }
    }

    /// Stops checking what the producer writes, as if it were this process's own: for the
    /// benchmark that measures what the checks cost on a ring file. Not API.
    ///
    /// # Safety
    /// Every frame and position the producer publishes from now on is sound (it is this
    /// crate's producer, and nothing else writes the ring's memory); otherwise reads may go
    /// outside the ring.
    #[doc(hidden)]
    pub unsafe fn trust_producer(&mut self) {
        self.walk.untrusted = false;
    }

    /// Forgets the walk's bound ([`Walk::end`]), so the next read takes the slow path and
    /// computes it again: for every change of position other than the walk itself (a role
    /// change, a held front, a fault), and for a walk that starts over behind where the last
    /// one stopped (a staged view's front).
    #[inline]
    pub(super) fn forget_walk(&mut self) {
        self.walk.end = 0;
    }

    /// Records the first fault at `pos`; reading stops there (the ring looks empty from `pos`).
    #[cold]
    #[inline(never)]
    pub(super) fn corrupt(&mut self, pos: u64, what: Corruption) {
        let pos = pos & POS_MASK;
        if self.fault.is_none() {
            self.fault = Some((pos, what));
        }
        // `pos` is at or before the last sound tail; nothing past it is read again.
        if distance(self.cached_tail, pos) <= self.shared.capacity {
            self.cached_tail = pos;
        }
        self.forget_walk();
    }

    /// Loads the producer's tail into `cached_tail`, checked when the ring is untrusted
    /// (reading at `pos`); false when a fault is (or was already) found, `cached_tail` unchanged.
    #[inline]
    pub(super) fn load_tail(&mut self, pos: u64) -> bool {
        let tail = self.shared.w().tail.load(Ordering::Acquire);
        if self.checks() {
            if self.fault.is_some() {
                return false;
            }
            if let Err(what) = check::tail(tail, pos, self.released, self.shared.capacity) {
                self.corrupt(pos, what);
                return false;
            }
        }
        self.cached_tail = tail;
        true
    }

    /// Records `what` found at the reader's position ([`corrupt`](Self::corrupt)) and returns
    /// the error the read answers with.
    #[cold]
    pub(super) fn fail_at_head(&mut self, what: Corruption) -> RingError {
        let pos = self.head & POS_MASK;
        self.corrupt(pos, what);
        RingError::Corrupt { pos, what }
    }

    fn fault_error(&self) -> Result<(), RingError> {
        match self.corruption() {
            Some((pos, what)) => Err(RingError::Corrupt { pos, what }),
            None => Ok(()),
        }
    }

    /// A consumer that takes over a ring whose previous consumer is gone (a restarted engine on
    /// a file-backed ring): it reads on from the last released position in the head word, in
    /// the role the word holds. Records read but not released by the old consumer come again.
    /// A front held by the old consumer (the lock bit of a staged ring) is let go, so the
    /// producer can evict again.
    pub(crate) fn resume(shared: Arc<Shared<S>>) -> Self {
        let mut word = shared.w().head.load(Ordering::Acquire);
        // Only another process can make this fail for long; it cannot make it spin forever.
        for _ in 0..CAS_ATTEMPTS {
            let head = Head::decode(word);
            if !head.locked {
                break;
            }
            // AcqRel as in `set_role`: we take our position from this word.
            match shared.w().head.compare_exchange(
                word,
                Head::encode(head.pos, false, head.role),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    word = Head::encode(head.pos, false, head.role);
                    break;
                }
                Err(actual) => word = actual,
            }
        }
        let head = Head::decode(word);
        // `cached_tail` starts at the head: never ahead of the real tail, never behind the head;
        // the first read loads the tail.
        let mut c = Consumer::new(shared, head.role);
        c.head = head.pos;
        c.released = head.pos;
        c.cached_tail = head.pos;
        if c.checks() {
            let tail = c.shared.w().tail.load(Ordering::Acquire);
            if let Err(what) = check::head(head.pos, tail, c.shared.capacity) {
                c.fault = Some((head.pos, what));
                c.head = 0;
                c.released = 0;
                c.cached_tail = 0;
            }
        }
        c
    }

    /// This consumer dies and a new one takes over, as a restarted engine does on a
    /// file-backed ring ([`Consumer::resume`]): it reads on from the last released position,
    /// so records read but not released come again. For the loom models and tests of that
    /// protocol on heap rings; taking `self` means no record of the old one is still lent.
    #[doc(hidden)]
    pub fn restart(self) -> Consumer<S> {
        Consumer::resume(self.shared)
    }

    /// Capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.shared.capacity as usize
    }

    /// Largest payload this ring takes.
    pub fn max_payload(&self) -> usize {
        self.shared.max_payload
    }

    /// The ring's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The current role epoch (incremented on every role change).
    pub fn epoch(&self) -> u64 {
        self.shared.w().control.epoch.load(Ordering::Relaxed)
    }

    /// The most records the ring can hold (all with empty payloads); the window's upper bound.
    pub fn max_records(&self) -> usize {
        // Capped so window arithmetic on 32-bit record numbers never wraps.
        (self.shared.capacity / MIN_FRAME).min(u64::from(u32::MAX)) as usize
    }

    /// The staging window, in records.
    pub fn window(&self) -> usize {
        self.shared.w().control.window.load(Ordering::Relaxed) as usize
    }

    /// Sets the staging window, clamped to `1 ..= max_records()`; returns the value set. The
    /// producer honours it from its next push, evicting down to it; the window never grows the
    /// ring.
    pub fn set_window(&mut self, records: usize) -> usize {
        let w = records.clamp(1, self.max_records());
        // Relaxed: the window is a policy the producer reads on its own; no data is published
        // through it.
        self.shared.w().control.window.store(w as u64, Ordering::Relaxed);
        w
    }

    /// Records evicted by the producer from the front of this ring while staged, in total.
    pub fn evicted(&self) -> u64 {
        self.shared.w().counters.evicted.load(Ordering::Relaxed)
    }

    /// The identity tier, outside the staged role (in it, use
    /// [`StagedView::evicted_identities`](super::StagedView::evicted_identities)): calls `f`
    /// with the identity of each record evicted while the ring was last staged that its identity
    /// log still holds, oldest first. Errors: [`RingError::WrongRole`] in the staged role.
    pub fn evicted_identities(&self, f: impl FnMut(&super::Identity)) -> Result<(), RingError> {
        if self.role == Role::Staged {
            return Err(RingError::WrongRole { expected: Role::Active, actual: Role::Staged });
        }
        if let Some(log) = &self.shared.identities {
            log.read(f);
        }
        Ok(())
    }

    /// Slots of this ring's identity log (0: none).
    pub fn identity_slots(&self) -> usize {
        self.shared.identities.as_ref().map_or(0, |l| l.capacity())
    }

    /// Records shed by the producer while staged, in total.
    pub fn dropped(&self) -> u64 {
        self.shared.w().counters.dropped.load(Ordering::Relaxed)
    }

    /// Sleeps until a record is published on this ring or `timeout_ns` passes (real time), and
    /// returns whether one is waiting. Returns at once if one is. The producer pays one load on
    /// a line it already reads while nobody waits (`ring::wake`, `# Orderings`). A ring file's
    /// producer in another process wakes it too.
    pub fn wait(&mut self, timeout_ns: u64) -> bool {
        let sh = &*self.shared;
        let head = self.head & POS_MASK;
        let cross_process = sh.storage.external_words().is_some();
        if self.corruption().is_some() {
            return true; // the next read reports it
        }
        let ready = sh
            .w()
            .control
            .wake
            .wait(cross_process, timeout_ns, || sh.w().tail.load(Ordering::Acquire) == head);
        if ready {
            self.load_tail(head);
        }
        ready
    }

    /// Sleeps until the producer publishes anything new (the tail moves from where it is now),
    /// or `timeout_ns` passes (real time); returns whether it did. Unlike
    /// [`wait`](Self::wait), records already waiting do not end it: for a staged ring, whose
    /// window always holds records, when what matters is the next one. The producer is woken
    /// the same way (`ring::wake`).
    pub fn wait_for_publish(&mut self, timeout_ns: u64) -> bool {
        let sh = &*self.shared;
        let cross_process = sh.storage.external_words().is_some();
        let before = sh.w().tail.load(Ordering::Acquire);
        sh.w().control.wake.wait(cross_process, timeout_ns, || sh.w().tail.load(Ordering::Acquire) == before)
    }

    /// True when no published record is waiting (active ring; loads the tail).
    pub fn is_empty(&mut self) -> bool {
        let head = self.head & POS_MASK;
        !self.load_tail(head) || head == self.cached_tail
    }

    #[inline]
    fn require(&self, expected: Role) -> Result<(), RingError> {
        if self.checks() {
            self.fault_error()?;
        }
        if self.role == expected {
            Ok(())
        } else {
            Err(RingError::WrongRole { expected, actual: self.role })
        }
    }

    /// The next record frame at or after `pos` (skipping pad frames), below the tail: the
    /// frame and its position, always below 2^61 (`pos` itself unless pad frames were
    /// skipped). `pos` is a frame start this consumer reached by walking ([`Walk::end`]), and
    /// may be unmasked: 2^61 at the end of the last lap.
    ///
    /// The common case is inline and short ([`Walk::frame`]): a frame before `end` that is a
    /// record. Anything else (the end of what is known to be published, a pad, a fault) goes
    /// to [`next_frame_slow`](Self::next_frame_slow).
    #[inline(always)]
    pub(super) fn next_frame(&mut self, pos: u64) -> Option<(u64, Frame)> {
        if let Some(frame) = self.walk.frame::<S>(pos, &self.shared.tracker) {
            return Some((pos, frame));
        }
        self.next_frame_slow(pos)
    }

    /// The header and payload of the record `frame` at `pos`.
    ///
    /// # Safety
    /// A published, unreleased record frame at `pos` (checked, of a ring file), whose bytes
    /// stay unwritten for `'a`.
    #[inline(always)]
    pub(super) unsafe fn record_at<'a>(&self, pos: u64, frame: Frame) -> Record<'a> {
        // SAFETY: the caller's promise.
        unsafe { self.walk.record(pos, frame, &self.shared.tracker) }
    }

    /// [`next_frame`](Self::next_frame) past `end`, over a pad, or at a fault: brings `end` up
    /// to date (reloading the tail when `pos` reached it), skips pad frames and checks a ring
    /// file's frames in full (`ring::check`); the first fault stops reading for good.
    #[inline(never)]
    pub(super) fn next_frame_slow(&mut self, pos: u64) -> Option<(u64, Frame)> {
        let mut pos = pos & POS_MASK;
        let cap = self.shared.capacity;
        loop {
            debug_assert!(
                distance(self.cached_tail, pos) <= cap || self.corruption().is_some(),
                "read position {pos} is past the cached tail {}",
                self.cached_tail
            );
            if pos == self.cached_tail {
                // Reload; still nothing (or a fault) means empty.
                let loaded = self.load_tail(pos);
                if !loaded || pos == self.cached_tail {
                    self.forget_walk();
                    return None;
                }
            }
            let to_end = cap - (pos & self.walk.mask);
            self.walk.end = pos + distance(self.cached_tail, pos).min(to_end);
            // SAFETY: `pos` is 8-aligned and inside the buffer, a frame start at or after our
            // head and below the (checked) tail: every position and span used to reach it was
            // checked. What the other process may write there meanwhile is checked below
            // before it is used.
            let frame = unsafe { self.walk.frame_word(pos, &self.shared.tracker) };
            if self.checks() {
                let sh = &*self.shared;
                if let Err(what) = check::frame(pos, frame, self.cached_tail, cap, sh.max_payload as u64) {
                    self.corrupt(pos, what);
                    return None;
                }
            }
            if !frame.is_pad() {
                return Some((pos, frame));
            }
            pos = advance(pos, frame.span());
        }
    }

    /// Borrows the oldest record (active ring). Call [`release`](Consumer::release) to free it.
    /// A second peek without a release returns the same record.
    #[inline]
    pub fn peek(&mut self) -> Result<Option<Record<'_>>, RingError> {
        self.require(Role::Active)?;
        let pos = self.head;
        match self.walk.frame::<S>(pos, &self.shared.tracker) {
            // Taken here, apart from the slow path's result, so the optimiser can reuse the
            // check's arithmetic for the record (as `ReadChunk::next_with_pos`).
            Some(frame) => Ok(Some(self.lend(pos, frame))),
            None => match self.next_frame_slow(pos) {
                Some((pos, frame)) => Ok(Some(self.lend(pos, frame))),
                None => Ok(None),
            },
        }
    }

    /// Lends the record `frame` at `pos` as the peeked one.
    #[inline(always)]
    fn lend(&mut self, pos: u64, frame: Frame) -> Record<'_> {
        self.head = pos;
        self.peeked = pos + frame.record_span();
        // SAFETY: published, unreleased record; the borrow ends before `release` (`&mut self`).
        unsafe { self.record_at(pos, frame) }
    }

    /// Frees the record returned by the last [`peek`](Consumer::peek).
    /// Errors: [`RingError::NothingToRelease`] when there is none.
    #[inline]
    pub fn release(&mut self) -> Result<(), RingError> {
        let end = self.peeked;
        if end == NO_POS {
            return Err(RingError::NothingToRelease);
        }
        self.peeked = NO_POS;
        // Not masked: the walk goes on from it (`next_frame`).
        self.head = end;
        self.store_head(end & POS_MASK);
        Ok(())
    }

    /// Reads up to `max` records with `f`, then frees them all with one store. Returns how many.
    #[inline]
    pub fn consume(&mut self, max: usize, mut f: impl FnMut(Record<'_>)) -> Result<usize, RingError> {
        let mut chunk = self.read_chunk(max)?;
        while let Some(r) = chunk.next() {
            f(r);
        }
        let n = chunk.len();
        chunk.commit();
        Ok(n)
    }

    /// Starts reading up to `max` records (active ring); [`ReadChunk::commit`] frees the ones
    /// read with one `Release` store. Dropping the chunk uncommitted frees nothing.
    pub fn read_chunk(&mut self, max: usize) -> Result<ReadChunk<'_, S>, RingError> {
        self.require(Role::Active)?;
        self.peeked = NO_POS;
        let cursor = self.head;
        let walk = self.walk;
        Ok(ReadChunk { consumer: self, walk, cursor, remaining: max, max, last: NO_POS })
    }

    #[inline]
    fn store_head(&mut self, pos: u64) {
        let sh = &*self.shared;
        // Our reads of [released, pos) are finished: tell loom, then publish.
        sh.track_read_span(self.released, pos);
        // Release: our reads of the freed records happen-before the producer's reuse.
        sh.w().head.store(Head::encode(pos, false, Role::Active), Ordering::Release);
        self.released = pos;
    }

    /// Moves the ring to `role` and returns the new epoch. The producer obeys the new role from
    /// its next push; see the module's `# Orderings`.
    ///
    /// - to **idle**: every published record is discarded;
    /// - **active → staged**: unread records stay, as the start of the staged window;
    /// - **staged → active**: the staged window becomes the next records to read, in order.
    ///
    /// Setting the current role is a no-op that returns the current epoch.
    pub fn set_role(&mut self, role: Role) -> u64 {
        if role == self.role {
            return self.epoch();
        }
        self.peeked = NO_POS;
        let sh = Arc::clone(&self.shared);
        let mut word = sh.w().head.load(Ordering::Acquire);
        let mut attempts = 0;
        let pos = loop {
            attempts += 1;
            if self.checks() && attempts > CAS_ATTEMPTS {
                // Only another process writing the word without end gets here: take the role
                // by force and stop reading the ring (the other side is not following the
                // protocol).
                let pos = Head::decode(word).pos;
                sh.w().head.store(Head::encode(pos, false, role), Ordering::Release);
                self.corrupt(self.head, Corruption::HeadBusy { attempts: CAS_ATTEMPTS });
                break pos;
            }
            let head = Head::decode(word);
            if head.role != self.role && self.checks() {
                // Overwritten below: the role is ours to set, whatever the other side wrote.
                self.corrupt(self.head, Corruption::RoleChanged { found: head.role, set: self.role });
            }
            // The lock bit may be set if a `StagedView` was leaked (mem::forget): changing role
            // clears it, which is correct, so only the role is asserted.
            debug_assert!(head.role == self.role || self.checks());
            let pos = if role == Role::Idle {
                self.cached_tail = sh.w().tail.load(Ordering::Acquire);
                self.cached_tail
            } else {
                head.pos
            };
            // AcqRel: acquire the producer's last eviction (we read from its result), release our
            // reads before the word the producer acquires next. Only evictions race with this,
            // and they expect the old role bits, so after this succeeds none can.
            match sh.w().head.compare_exchange(
                word,
                Head::encode(pos, false, role),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break pos,
                Err(actual) => word = actual,
            }
        };
        // Evictions may have moved the head past the tail we cached; `next_frame` relies on
        // `head <= cached_tail`, so take a fresh one.
        let tail = sh.w().tail.load(Ordering::Acquire);
        if self.checks() {
            if let Err(what) = check::head(pos, tail, sh.capacity) {
                self.corrupt(self.head, what);
            }
        }
        if self.corruption().is_none() {
            self.head = pos;
            self.released = pos;
            self.cached_tail = tail;
        }
        self.forget_walk();
        self.role = role;
        // Wrapping: a ring file's other process may have written any value here.
        sh.w().control.epoch.fetch_add(1, Ordering::Release).wrapping_add(1)
    }
}

/// Compare-exchange attempts on the head word of a ring file before another process is taken
/// to be fighting the protocol (an honest producer makes one fail only by evicting, a few times
/// in a row at most).
pub(super) const CAS_ATTEMPTS: u32 = 1 << 16;

/// Records read from an active ring, freed together by [`commit`](ReadChunk::commit).
pub struct ReadChunk<'a, S: Storage = HeapStorage> {
    consumer: &'a mut Consumer<S>,
    /// The consumer's `walk`, kept here (so in registers, once inlined); its `end` is taken
    /// again from the consumer after each slow read, the only place it changes.
    walk: Walk,
    /// Where the next frame is looked for: a walk position (`Consumer::next_frame`), not masked.
    cursor: u64,
    remaining: usize,
    /// The `max` the chunk was started with: records read are `max - remaining`.
    max: usize,
    /// Frame start of the record `next` returned last, until `unread`; [`NO_POS`] for none.
    last: u64,
}

/// No position (none has these bits): `Consumer::peeked` with no peek outstanding,
/// `ReadChunk::last` with no record to put back.
const NO_POS: u64 = u64::MAX;

impl<S: Storage> ReadChunk<'_, S> {
    /// The next record, borrowed until the next call.
    #[allow(clippy::should_implement_trait)] // a lending iterator: the record borrows the chunk
    #[inline]
    pub fn next(&mut self) -> Option<Record<'_>> {
        self.next_with_pos().map(|(_, r)| r)
    }

    /// [`next`](Self::next), with where the record starts in the ring (for
    /// [`commit_holding_from`](Self::commit_holding_from)).
    #[inline]
    pub fn next_with_pos(&mut self) -> Option<(u64, Record<'_>)> {
        if self.remaining == 0 {
            return None;
        }
        let pos = self.cursor;
        match self.walk.frame::<S>(pos, &self.consumer.shared.tracker) {
            // Taken here, apart from the slow path's result, so the optimiser can reuse the
            // check's arithmetic (span, payload length) for the record.
            Some(frame) => Some(self.take(pos, frame)),
            None => {
                let found = self.consumer.next_frame_slow(pos);
                self.walk.end = self.consumer.walk.end;
                let (pos, frame) = found?;
                Some(self.take(pos, frame))
            }
        }
    }

    /// Moves past the record `frame` at `pos` and lends it.
    #[inline(always)]
    fn take(&mut self, pos: u64, frame: Frame) -> (u64, Record<'_>) {
        self.cursor = pos + frame.record_span();
        self.remaining -= 1;
        self.last = pos;
        // SAFETY: published and not released until `commit`, which needs the chunk by value,
        // so no record borrowed from `&mut self` survives it.
        (pos, unsafe { self.walk.record(pos, frame, &self.consumer.shared.tracker) })
    }

    /// Puts back the record `next` returned last: it is not freed by `commit` and the next
    /// read returns it again. Returns false when there is nothing to put back (one level only).
    pub fn unread(&mut self) -> bool {
        if self.last == NO_POS {
            return false;
        }
        self.cursor = self.last;
        self.last = NO_POS;
        self.remaining += 1;
        true
    }

    /// Records read so far.
    pub fn len(&self) -> usize {
        self.max - self.remaining
    }

    /// True when no record was read.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Frees every record read, with one `Release` store.
    #[inline]
    pub fn commit(self) {
        if self.remaining != self.max {
            self.consumer.head = self.cursor;
            self.consumer.store_head(self.cursor & POS_MASK);
        }
    }

    /// Where the record `next` returned last starts in the ring (its frame), if any: the
    /// position to pass to [`commit_holding_from`](Self::commit_holding_from) to keep it.
    pub fn last_pos(&self) -> Option<u64> {
        (self.last != NO_POS).then_some(self.last)
    }

    /// Frees the records read before ring position `from` (a [`last_pos`](Self::last_pos) of
    /// this chunk or of an earlier one, not freed since) and keeps the rest: their memory stays
    /// the consumer's, unchanged, until a later commit or role change frees it, while reading
    /// goes on after them. The same single `Release` store as [`commit`](Self::commit), of an
    /// earlier position.
    ///
    /// This is how records are lent past the read call (the C API's `hz_engine_next` and
    /// `hz_engine_poll_views`): the producer cannot reuse space the consumer has not released.
    pub fn commit_holding_from(self, from: u64) {
        self.consumer.head = self.cursor;
        if from != self.consumer.released {
            self.consumer.store_head(from);
        }
    }
}

/// What the consumer's fast read path needs: where the bytes are, and how far it may read
/// without looking at anything but the frames.
#[derive(Clone, Copy)]
pub(super) struct Walk {
    /// The storage's bytes (`Storage::as_ptr`, the same pointer for the storage's life).
    base: *mut u8,
    /// `capacity - 1`.
    mask: u64,
    /// Every frame start `pos < end` met by walking from the last frame
    /// [`Consumer::next_frame`] returned is published and on the same lap of the buffer: `end`
    /// is `min(cached_tail, lap end)`, not masked, so it may be 2^61. 0 when unknown: every
    /// change of position other than the walk itself (a role change, a held front, a fault)
    /// sets it to 0.
    pub(super) end: u64,
    /// `shared.max_payload`, for the checks.
    max_payload: u64,
    /// Another process writes this ring (a ring file): check what it wrote before use
    /// (`ring::check`). Only read when `S::MAY_BE_SHARED` ([`Consumer::checks`]).
    untrusted: bool,
}

impl Walk {
    /// The record frame at `pos` when the fast path can take it: `pos` before `end` and the
    /// frame a record. A ring in this process tests the pad flag; a ring file's frame is
    /// checked as well (`check::record_is_sound`: payload bound and pad flag in one comparison,
    /// the frame ending at or before `end`), about two instructions more. `None` for anything
    /// else (the end of what is known to be published, a pad, a fault), which
    /// `Consumer::next_frame_slow` sorts out.
    #[inline(always)]
    fn frame<S: Storage>(&self, pos: u64, tracker: &AccessTracker) -> Option<Frame> {
        if pos >= self.end {
            return None;
        }
        // SAFETY: `pos < end`: a frame start at or after the consumer's head, published
        // (below the acquired tail) and on the buffer lap `end` was computed for; the producer
        // cannot overwrite it until the consumer releases it. A ring file's word may be
        // anything: it is checked below before use.
        let frame = unsafe { self.frame_word(pos, tracker) };
        let sound = if S::MAY_BE_SHARED && self.untrusted {
            check::record_is_sound(pos, frame, self.end, self.max_payload)
        } else {
            !frame.is_pad()
        };
        sound.then_some(frame)
    }

    /// The frame word at `pos`.
    ///
    /// # Safety
    /// `pos` is a frame start the consumer may read (published, not released; 8-aligned).
    #[inline(always)]
    unsafe fn frame_word(&self, pos: u64, tracker: &AccessTracker) -> Frame {
        let offset = (pos & self.mask) as usize;
        tracker.read(offset, FRAME_HEADER_SIZE);
        // SAFETY: `offset < capacity`, 8-aligned, inside the storage (`base`); the caller
        // guarantees nobody writes these bytes now.
        Frame::from_word(unsafe { self.base.add(offset).cast::<u64>().read() })
    }

    /// The header and payload of the record `frame` at `pos`.
    ///
    /// # Safety
    /// A published, unreleased record frame at `pos` (checked, of a ring file), whose bytes
    /// stay unwritten for `'a`.
    #[inline(always)]
    unsafe fn record<'a>(&self, pos: u64, frame: Frame, tracker: &AccessTracker) -> Record<'a> {
        let offset = (pos & self.mask) as usize;
        tracker.read(offset, frame.len() as usize);
        // SAFETY: a record frame never wraps (checked for a ring file), so header and payload
        // are contiguous inside the storage; the event header is 8-aligned (frame start + 8)
        // and any bit pattern is a valid EventHeader; the caller guarantees the bytes stay
        // unwritten for 'a.
        unsafe {
            let start = self.base.add(offset);
            let header = &*start.add(FRAME_HEADER_SIZE).cast::<EventHeader>();
            let payload = core::slice::from_raw_parts(start.add(RECORD_PREFIX), frame.payload_len());
            Record { header, payload, after_drop: frame.after_drop() }
        }
    }
}
