//! The consumer end: peek/release, chunks, roles and the window.

use core::cell::Cell;
use core::marker::PhantomData;

use super::check::{self, Corruption};
use super::layout::{advance, distance, Frame, Head, Role, MIN_FRAME};
use super::shared::Shared;
use super::storage::{HeapStorage, Storage};
use super::{Record, RingError};
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
    pub(super) head: u64,
    /// The position last stored to the head word.
    pub(super) released: u64,
    /// The tail last loaded: never ahead of the real tail, and never behind `head` (refreshed
    /// whenever the head is taken from the head word), so reloading only when the ring looks
    /// empty is safe and saves a cache miss on the producer's line per pop.
    pub(super) cached_tail: u64,
    /// The role; only this side changes it.
    pub(super) role: Role,
    /// End of the peeked record, if a peek is outstanding.
    peeked: Option<u64>,
    /// Another process writes this ring (a ring file): check what it wrote before use
    /// (`ring::check`). Only read when `S::MAY_BE_SHARED`.
    untrusted: bool,
    /// The first thing found wrong with what the other process wrote, and where: sticky, the
    /// ring is not read past it again.
    fault: Option<(u64, Corruption)>,
    _not_sync: PhantomData<Cell<()>>,
}

impl<S: Storage> Consumer<S> {
    pub(super) fn new(shared: Arc<Shared<S>>, role: Role) -> Self {
        let untrusted = shared.storage.external_words().is_some();
        Consumer {
            shared,
            head: 0,
            released: 0,
            cached_tail: 0,
            role,
            peeked: None,
            untrusted,
            fault: None,
            _not_sync: PhantomData,
        }
    }

    /// True when what the ring holds comes from another process and is checked before use.
    /// A constant `false` for storage that is never shared.
    #[inline(always)]
    pub(super) fn checks(&self) -> bool {
        S::MAY_BE_SHARED && self.untrusted
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
        self.untrusted = false;
    }

    /// Records the first fault at `pos`; reading stops there (the ring looks empty from `pos`).
    #[cold]
    #[inline(never)]
    pub(super) fn corrupt(&mut self, pos: u64, what: Corruption) {
        if self.fault.is_none() {
            self.fault = Some((pos, what));
        }
        // `pos` is at or before the last sound tail; nothing past it is read again.
        if distance(self.cached_tail, pos) <= self.shared.capacity {
            self.cached_tail = pos;
        }
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
        let pos = self.head;
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
        let head = self.head;
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
        !self.load_tail(self.head) || self.head == self.cached_tail
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

    /// The next record frame at or after `pos` (skipping pad frames), below the tail. Reloads
    /// the tail when the cached one is reached. A ring file's frames are checked
    /// ([`next_frame_checked`](Self::next_frame_checked)); a ring in this process reads them as
    /// its own producer wrote them, in a loop of its own.
    #[inline]
    pub(super) fn next_frame(&mut self, pos: u64) -> Option<(u64, Frame)> {
        if self.checks() {
            self.next_frame_checked(pos)
        } else {
            self.next_frame_trusted(pos)
        }
    }

    #[inline]
    fn next_frame_trusted(&mut self, mut pos: u64) -> Option<(u64, Frame)> {
        loop {
            debug_assert!(
                super::layout::distance(self.cached_tail, pos) <= self.shared.capacity,
                "read position {pos} is past the cached tail {}",
                self.cached_tail
            );
            if pos == self.cached_tail {
                self.cached_tail = self.shared.w().tail.load(Ordering::Acquire);
                if pos == self.cached_tail {
                    return None;
                }
            }
            // SAFETY: `pos` is a frame start below the acquired tail and at or after our head, so
            // the producer published it and cannot overwrite it until we release it.
            let frame = unsafe { self.shared.read_frame(pos) };
            if !frame.is_pad() {
                return Some((pos, frame));
            }
            pos = advance(pos, frame.span());
        }
    }

    /// [`next_frame`](Self::next_frame) on a ring another process writes: the tail and every
    /// frame are checked before use (`ring::check`); the first fault stops reading for good.
    ///
    /// Inlined: out of line, the call per record cost a ring file 47 instructions per record
    /// (`examples/check_cost.rs`), and a batch of frames checked and copied ahead 44, as the
    /// walk is then made twice; inlined it costs 15 to 19. The price is paid by the engine's
    /// in-process rings, whose read loop holds both paths: about 3 instructions per event
    /// (`scripts/push-cost.sh`); a ring on `HeapStorage` has no checked path at all.
    #[inline]
    fn next_frame_checked(&mut self, mut pos: u64) -> Option<(u64, Frame)> {
        loop {
            if pos == self.cached_tail {
                // Reload; still nothing (or a fault) means empty.
                let loaded = self.load_tail(pos);
                if !loaded || pos == self.cached_tail {
                    return None;
                }
            }
            // SAFETY: `pos` is 8-aligned and inside the buffer, at or after our head and below
            // the checked tail: every position and span used to reach it was checked. What the
            // other process may write there meanwhile is checked below before it is used.
            let frame = unsafe { self.shared.read_frame(pos) };
            let sh = &*self.shared;
            let (tail, cap, max) = (self.cached_tail, sh.capacity, sh.max_payload as u64);
            if check::record_is_sound(pos, frame, tail, cap, max) {
                return Some((pos, frame));
            }
            // A pad, or something wrong: the full check says which.
            if let Err(what) = check::frame(pos, frame, tail, cap, max) {
                self.corrupt(pos, what);
                return None;
            }
            // Past the full check, only a pad: a sound record passed `record_is_sound` above (the
            // two agree; their unit test says so). The test stays a return, not an assertion:
            // written so, the engine's in-process read loop, which inlines this path, costs 2
            // instructions per event less (`scripts/push-cost.sh`).
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
        let Some((pos, frame)) = self.next_frame(self.head) else { return Ok(None) };
        self.head = pos;
        self.peeked = Some(advance(pos, frame.record_span()));
        // SAFETY: published, unreleased record; the borrow ends before `release` (`&mut self`).
        let (header, payload) = unsafe { self.shared.record(pos, frame) };
        Ok(Some(Record { header, payload, after_drop: frame.after_drop() }))
    }

    /// Frees the record returned by the last [`peek`](Consumer::peek).
    /// Errors: [`RingError::NothingToRelease`] when there is none.
    #[inline]
    pub fn release(&mut self) -> Result<(), RingError> {
        let end = self.peeked.take().ok_or(RingError::NothingToRelease)?;
        self.head = end;
        self.store_head(end);
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
        self.peeked = None;
        let cursor = self.head;
        Ok(ReadChunk { consumer: self, cursor, remaining: max, read: 0, last: None })
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
        self.peeked = None;
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
    cursor: u64,
    remaining: usize,
    read: usize,
    /// Frame start of the record `next` returned last, until `unread`.
    last: Option<u64>,
}

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
        let (pos, frame) = self.consumer.next_frame(self.cursor)?;
        self.cursor = advance(pos, frame.record_span());
        self.remaining -= 1;
        self.read += 1;
        self.last = Some(pos);
        // SAFETY: published and not released until `commit`, which needs the chunk by value,
        // so no record borrowed from `&mut self` survives it.
        let (header, payload) = unsafe { self.consumer.shared.record(pos, frame) };
        Some((pos, Record { header, payload, after_drop: frame.after_drop() }))
    }

    /// Puts back the record `next` returned last: it is not freed by `commit` and the next
    /// read returns it again. Returns false when there is nothing to put back (one level only).
    pub fn unread(&mut self) -> bool {
        match self.last.take() {
            Some(pos) => {
                self.cursor = pos;
                self.remaining += 1;
                self.read -= 1;
                true
            }
            None => false,
        }
    }

    /// Records read so far.
    pub fn len(&self) -> usize {
        self.read
    }

    /// True when no record was read.
    pub fn is_empty(&self) -> bool {
        self.read == 0
    }

    /// Frees every record read, with one `Release` store.
    #[inline]
    pub fn commit(self) {
        if self.read > 0 {
            self.consumer.head = self.cursor;
            self.consumer.store_head(self.cursor);
        }
    }

    /// Where the record `next` returned last starts in the ring (its frame), if any: the
    /// position to pass to [`commit_holding_from`](Self::commit_holding_from) to keep it.
    pub fn last_pos(&self) -> Option<u64> {
        self.last
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
