//! The producer end: reserve, fill, commit; evict when staged.

use core::cell::Cell;
use core::marker::PhantomData;
use core::ptr::NonNull;

use super::check::{self, Corruption};
use super::layout::{
    advance, distance, frame_size, Frame, Head, Role, FRAME_AFTER_DROP, FRAME_HEADER_SIZE, POS_MASK,
    RECORD_PREFIX,
};
use super::shared::{RingWords, Shared};
use super::storage::{HeapStorage, Storage};
use super::PushError;
use crate::event::EventHeader;
use crate::sync::{Arc, Ordering};

/// The producer end of a ring. `Send`, so it can move to the thread that feeds it, but not
/// `Sync`: one thread uses it at a time.
///
/// ```compile_fail,E0277
/// fn needs_sync<T: Sync>() {}
/// needs_sync::<harmonizer_core::ring::Producer>();
/// ```
///
/// ```
/// fn needs_send<T: Send>() {}
/// needs_send::<harmonizer_core::ring::Producer>();
/// ```
pub struct Producer<S: Storage = HeapStorage> {
    shared: Arc<Shared<S>>,
    /// `shared.w()`, looked up once: the ring's words in `shared` or in its storage, which stay
    /// where they are for as long as `shared` lives. Read through [`Producer::w`].
    words: NonNull<RingWords>,
    /// Where the next frame starts. Runs ahead of `published` inside a batch.
    tail: u64,
    /// The last value stored to `shared.w().tail`.
    published: u64,
    /// The head position last loaded. Never ahead of the real head, so the free space computed
    /// from it is a lower bound: reloading only when it looks too small saves a cache miss on the
    /// consumer's line per push (the rtrb technique).
    cached_head: u64,
    /// The role last loaded with `cached_head`.
    cached_role: Role,
    /// The epoch seen when `cached_role` was loaded.
    cached_epoch: u64,
    /// The high half of the next record's frame word, its number (mod 2^32, for window
    /// accounting), with [`FRAME_AFTER_DROP`] in the low half when a record was shed and the
    /// next one stored must say so: the frame word is this or'ed with the length.
    frame_hi: u64,
    /// Bytes the fast path of [`place_record`](Self::place_record) may still take from `tail`
    /// without looking at the head word: free space in the active role, up to the buffer's
    /// end, as the slow path last found it. 0 in any other role, and whenever the slow path
    /// runs, so a role change (seen through the epoch) or a refusal leaves nothing behind.
    room: u64,
    /// The storage's bytes (`Storage::as_ptr`, the same pointer for the storage's life) and
    /// `capacity - 1`, kept here so a push does not go through `shared` for them.
    base: *mut u8,
    mask: u64,
    /// `shared.max_payload`.
    max_payload: usize,
    /// Detached reservations made ([`Producer::reserve_detached`]): the newest one alone may
    /// commit.
    detached: u64,
    evicted: u64,
    dropped: u64,
    /// Whether publishes are followed by a full fence rather than a compiler fence (`wake`: a
    /// ring file, or no membarrier in this process). Fixed at creation, so a publish does not
    /// ask.
    fence_mode: super::wake::FenceMode,
    /// Another process (a ring file's consumer) writes the head word: check what this producer
    /// takes from it before use (`ring::check`). Only read when `S::MAY_BE_SHARED`.
    untrusted: bool,
    /// The last fault found in what a ring file's consumer wrote ([`Producer::corruption`]).
    fault: Option<(u64, Corruption)>,
    _not_sync: PhantomData<Cell<()>>,
}

// SAFETY: every other field is `Send` (`shared`: `Shared<S>` is `Send` and `Sync` for every
// `Storage`, which is itself `Send + Sync`). `words` only points at words `shared` keeps alive
// (`Producer::w`), atomics that `shared` already shares between threads; moving the producer
// moves nothing it points at. Still not `Sync` (`_not_sync`).
unsafe impl<S: Storage> Send for Producer<S> {}

/// Where a reserved record goes.
#[derive(Clone, Copy, Debug)]
struct Placement {
    /// Bytes of pad frame before the record (0, or the space left before the buffer's end).
    pad: u64,
    /// The record's frame size.
    frame: u64,
}

/// The producer's state a push moves on, as a copy a batch can keep in registers
/// (`Producer::push_fast`): `Producer::tail`, `room` and `frame_hi`.
#[derive(Clone, Copy)]
struct Hot {
    tail: u64,
    room: u64,
    frame_hi: u64,
}

impl<S: Storage> Producer<S> {
    pub(super) fn new(shared: Arc<Shared<S>>) -> Self {
        let shared_is_file = shared.storage.external_words().is_some();
        let head = Head::decode(shared.w().head.load(Ordering::Acquire));
        let epoch = shared.w().control.epoch.load(Ordering::Acquire);
        let words = NonNull::from(shared.w());
        let (base, mask, max_payload) = (shared.storage.as_ptr(), shared.capacity - 1, shared.max_payload);
        Producer {
            shared,
            words,
            tail: 0,
            published: 0,
            cached_head: head.pos,
            cached_role: head.role,
            cached_epoch: epoch,
            frame_hi: 0,
            room: 0,
            base,
            mask,
            max_payload,
            detached: 0,
            evicted: 0,
            dropped: 0,
            fence_mode: super::wake::FenceMode::for_ring(shared_is_file),
            untrusted: shared_is_file,
            fault: None,
            _not_sync: PhantomData,
        }
    }

    /// A producer that takes over a ring whose previous producer is gone (a restarted process
    /// on a file-backed ring): it goes on from the published tail, so whatever the old producer
    /// wrote beyond it (a record cut short by a kill, an unpublished batch) was never visible
    /// and is overwritten. Record numbering goes on from the frames still in the ring, and the
    /// shared counters carry over.
    ///
    /// The consumer may run all along: the walk below reads only frame headers in
    /// `[head, tail)`, which only a producer writes, and none but this one is left.
    pub(crate) fn resume(shared: Arc<Shared<S>>) -> Self {
        let mut p = Producer::new(shared);
        let w = p.shared.w();
        // Acquire: the old producer's frames below its last published tail are complete.
        let tail = w.tail.load(Ordering::Acquire);
        p.tail = tail;
        p.published = tail;
        p.evicted = w.counters.evicted.load(Ordering::Relaxed);
        p.dropped = w.counters.dropped.load(Ordering::Relaxed);
        let mut pos = p.cached_head;
        let (cap, max_payload) = (p.shared.capacity, p.shared.max_payload as u64);
        if p.checks() && check::head(pos, tail, cap).is_err() {
            // A consumer that writes nonsense: number on from 0; its next push reports it.
            return p;
        }
        debug_assert!(distance(tail, pos) <= cap, "head {pos} beyond tail {tail}");
        // Bounded: frames are at least 8 bytes and never cross the tail.
        let mut steps = cap / 8;
        while pos != tail && steps > 0 {
            // SAFETY: `pos` is a frame start in [head, tail): published by the old producer and
            // written by nobody now (the consumer only reads; this producer has not written).
            // Of a ring file, `pos` is 8-aligned and inside the buffer (checked head, checked
            // spans), whatever the other process wrote.
            let frame = unsafe { p.shared.read_frame(pos) };
            if p.checks() && check::frame(pos, frame, tail, cap, max_payload).is_err() {
                break;
            }
            // A pad frame carries the number of the record after it.
            let next = if frame.is_pad() { frame.rec_no } else { frame.rec_no.wrapping_add(1) };
            p.frame_hi = u64::from(next) << 32;
            pos = advance(pos, frame.span().max(8));
            steps -= 1;
        }
        p
    }

    /// A copy of the state a push moves on ([`Hot`]).
    #[inline(always)]
    fn hot(&self) -> Hot {
        Hot { tail: self.tail, room: self.room, frame_hi: self.frame_hi }
    }

    /// Takes back the state a push moved on.
    #[inline(always)]
    fn set_hot(&mut self, hot: Hot) {
        (self.tail, self.room, self.frame_hi) = (hot.tail, hot.room, hot.frame_hi);
    }

    /// Number of the next record (mod 2^32).
    #[inline]
    fn next_rec(&self) -> u32 {
        (self.frame_hi >> 32) as u32
    }

    /// A record was shed: flag the next one stored ([`FRAME_AFTER_DROP`]), so the reader does
    /// not take the records on either side for one unbroken run.
    fn set_loss_pending(&mut self) {
        self.frame_hi |= u64::from(FRAME_AFTER_DROP);
        // The flagged record goes through the slow path (`finish` clears the flag).
        self.room = 0;
    }

    /// True when the head word comes from another process and is checked before use. A
    /// constant `false` for storage that is never shared.
    #[inline(always)]
    fn checks(&self) -> bool {
        S::MAY_BE_SHARED && self.untrusted
    }

    /// The last fault found in what a ring file's consumer process wrote (the position and what
    /// was wrong), behind the last [`PushError::Corrupt`]. Always `None` for an in-process ring.
    pub fn corruption(&self) -> Option<(u64, Corruption)> {
        self.fault
    }

    /// A push refused because the consumer process wrote `what` at `pos`: remembered for
    /// [`corruption`](Self::corruption), and the cached view made one the fast path never trusts
    /// (idle, head at the tail), so the next push looks at the head word again.
    #[cold]
    fn refuse_corrupt(&mut self, pos: u64, what: Corruption) -> PushError {
        self.room = 0;
        self.cached_head = self.tail;
        self.cached_role = Role::Idle;
        self.fault = Some((pos, what));
        PushError::Corrupt { pos }
    }

    /// The ring's shared words, as `shared.w()` without choosing again between the storage's
    /// words and the inline ones on every push.
    #[inline(always)]
    fn w(&self) -> &RingWords {
        // SAFETY: `words` is `shared.w()`, a reference to words inside `*shared` (which an
        // `Arc` never moves) or to the storage's external words (the `Storage` contract: the
        // same place, initialised, for as long as the storage lives, and `*shared` owns the
        // storage). `self.shared` keeps both alive for as long as `&self` is borrowed, and the
        // words are only ever reached through shared references (they are atomics).
        unsafe { self.words.as_ref() }
    }

    /// Largest payload this ring takes.
    pub fn max_payload(&self) -> usize {
        self.shared.max_payload
    }

    /// Capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.shared.capacity as usize
    }

    /// Copies one record in and publishes it.
    #[inline]
    pub fn push(&mut self, header: &EventHeader, payload: &[u8]) -> Result<(), PushError> {
        let mut hot = self.hot();
        if self.push_fast(&mut hot, header, payload) {
            self.set_hot(hot);
            self.publish_moved();
            return Ok(());
        }
        self.push_slow(header, payload, true)
    }

    /// The common case of a push, on a copy of the producer's hot state (`Hot`): the ring
    /// active in the epoch this producer knows and the record fits the room the slow path
    /// found. Writes the record and moves `hot` on; false (nothing written) otherwise.
    ///
    /// The copy lets a batch keep the state in registers across its pushes
    /// ([`WriteBatch::push`]); `push` copies it back at once.
    #[inline(always)]
    fn push_fast(&self, hot: &mut Hot, header: &EventHeader, payload: &[u8]) -> bool {
        let len = payload.len();
        if len > self.max_payload {
            return false;
        }
        let frame = frame_size(len);
        if frame > hot.room || !self.epoch_unchanged() {
            return false;
        }
        let at = hot.tail;
        let p = self.frame_ptr(at, frame);
        // SAFETY: `room` is free space from the tail in the active role, inside one lap of the
        // buffer (`room_after`), so the frame [at, at + frame) is free, contiguous and inside
        // the storage, this producer's alone, and the consumer reads nothing past the published
        // tail; its start is 8-aligned.
        unsafe {
            write_body(p, header, payload);
            p.cast::<u64>().write(hot.frame_hi | (RECORD_PREFIX + len) as u64);
        }
        // No loss flag to clear: `room` is 0 while one is pending (`set_loss_pending`), so the
        // flagged record goes through `finish`. `room_after` keeps the tail below 2^61, so it
        // needs no mask either.
        hot.frame_hi = hot.frame_hi.wrapping_add(1 << 32);
        hot.tail = at + frame;
        hot.room -= frame;
        true
    }

    /// The rest of [`push`](Self::push): placement by the slow path (or an error), then the
    /// write; publishes if asked (outside a batch). Out of line, so the fast path stays short.
    #[cold]
    #[inline(never)]
    fn push_slow(&mut self, header: &EventHeader, payload: &[u8], publish: bool) -> Result<(), PushError> {
        let placement = self.place_record(payload.len())?;
        self.write_record(placement, header, payload, publish);
        Ok(())
    }

    /// True while the consumer has not changed the role since this producer last looked.
    #[inline(always)]
    fn epoch_unchanged(&self) -> bool {
        self.w().control.epoch.load(Ordering::Relaxed) == self.cached_epoch
    }

    /// Reserves room for a record of `payload_len` bytes; fill it through the slot and `commit`.
    /// Dropping the slot without committing publishes no record; in the staged role, though, the
    /// reservation may already have evicted old records (counted) and published an open batch's
    /// records to do so.
    ///
    /// Errors: [`PushError::TooLarge`]; active: [`PushError::Full`]; idle:
    /// [`PushError::NotSubscribed`]; staged: [`PushError::Shed`] only while the consumer holds the
    /// front and no byte is free. A staged ring otherwise always succeeds, evicting its oldest
    /// records as needed.
    #[inline]
    pub fn reserve(&mut self, payload_len: usize) -> Result<WriteSlot<'_, S>, PushError> {
        let placement = self.place_record(payload_len)?;
        Ok(self.slot(placement, payload_len, true))
    }

    /// As [`reserve`](Producer::reserve), for a caller that must keep the reservation across
    /// calls and so cannot hold a [`WriteSlot`] (the C API's `hz_producer_reserve`): the
    /// [`Reservation`] borrows nothing. Fill its `payload_len` bytes at
    /// [`reserved_payload`](Producer::reserved_payload), then
    /// [`commit_detached`](Producer::commit_detached) it with the header. Dropping it publishes
    /// nothing (and may, staged, have evicted records, as `reserve`).
    ///
    /// The reservation is the producer's next record: anything else reserved or written before
    /// the commit takes the same room, and the reservation goes stale (its commit is refused).
    /// A caller that lends out the payload pointer must refuse other writes meanwhile, or the
    /// holder of the pointer would write into a record the consumer may be reading.
    #[inline]
    pub fn reserve_detached(&mut self, payload_len: usize) -> Result<Reservation, PushError> {
        let placement = self.place_record(payload_len)?;
        let at = advance(self.tail, placement.pad);
        self.shared.tracker.write(self.shared.offset(at), placement.frame as usize);
        self.detached = self.detached.wrapping_add(1);
        Ok(Reservation {
            ring: self.ring_id(),
            serial: self.detached,
            tail: self.tail,
            at,
            placement,
            payload_len,
        })
    }

    /// This ring's identity for [`Reservation`]s: the address of its shared state.
    fn ring_id(&self) -> usize {
        core::ptr::from_ref::<Shared<S>>(&*self.shared) as usize
    }

    /// Where the payload of `r` goes: `r.payload_len()` writable bytes in ring memory, which
    /// stay allocated for as long as this producer lives. Null for a reservation made by another
    /// producer. Writing through it is the caller's `unsafe`: sound while `r` is this
    /// producer's newest reservation and uncommitted (nothing else is reserved or written
    /// meanwhile, `reserve_detached`), since the consumer reads nothing past the published tail.
    #[inline]
    pub fn reserved_payload(&self, r: &Reservation) -> *mut u8 {
        if r.ring != self.ring_id() {
            return core::ptr::null_mut();
        }
        self.shared.ptr(r.at).wrapping_add(RECORD_PREFIX)
    }

    /// Writes `header` into the record `r` reserved and publishes it. Refused with
    /// [`StaleReservation`] (nothing written) when `r` is not this producer's newest reservation
    /// or anything was reserved or written since it was made.
    #[inline]
    pub fn commit_detached(&mut self, r: Reservation, header: &EventHeader) -> Result<(), StaleReservation> {
        if r.ring != self.ring_id() || r.serial != self.detached || r.tail != self.tail {
            return Err(StaleReservation);
        }
        let p = self.shared.ptr(r.at);
        // SAFETY: `r` is this producer's newest reservation and nothing was reserved or written
        // since (checked above; every write goes through `place_record` at `self.tail`, which
        // has not moved): the frame [at, at + frame) is still the free space `place_record`
        // reserved for it, which the consumer does not read (past the published tail). The
        // header sits 8 bytes in, 8-aligned, and every bit pattern is a valid EventHeader.
        unsafe { p.add(FRAME_HEADER_SIZE).cast::<EventHeader>().write(*header) };
        self.finish(p, r.at, r.placement, r.payload_len, true);
        Ok(())
    }

    /// Starts a batch: records reserved through it are published together, with one store,
    /// when it is dropped or [`published`](WriteBatch::publish).
    pub fn batch(&mut self) -> WriteBatch<'_, S> {
        let hot = self.hot();
        WriteBatch { producer: self, hot, owned: true }
    }

    /// This producer dies and a new one takes over, as a restarted producer process does on
    /// a file-backed ring ([`Producer::resume`]): whatever it wrote past the published tail is
    /// forgotten. (To model a death inside a batch, `mem::forget` the batch: dropping it
    /// publishes.) For the loom models and tests of that protocol on heap rings.
    #[doc(hidden)]
    pub fn restart(self) -> Producer<S> {
        Producer::resume(self.shared)
    }

    /// Records evicted from the front of this ring while staged (producer's count).
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Records shed while staged (producer's count).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The ring's role as this producer last saw it (refreshed on every push).
    pub fn role(&self) -> Role {
        self.cached_role
    }

    /// The role epoch as this producer last saw it.
    pub fn epoch(&self) -> u64 {
        self.cached_epoch
    }

    /// Where the next record, of `payload_len` bytes, goes. The fast path, taken while the ring
    /// stays active in the epoch this producer knows and the room the slow path found lasts,
    /// is two comparisons and a subtraction; the rest is [`place_slow`](Self::place_slow).
    #[inline]
    fn place_record(&mut self, payload_len: usize) -> Result<Placement, PushError> {
        if payload_len > self.max_payload {
            return Err(PushError::TooLarge { len: payload_len, max: self.max_payload });
        }
        let frame = frame_size(payload_len);
        // `room` is 0 unless the ring was active in `cached_epoch`; an epoch that moved means
        // the consumer changed the role since.
        if frame <= self.room && self.epoch_unchanged() {
            self.room -= frame;
            return Ok(Placement { pad: 0, frame });
        }
        self.place_slow(frame)
    }

    /// The fast path's room after placing `p` in the active role with the consumer at `head`:
    /// the free space left, up to the buffer's end, and short of position 2^61, so the fast
    /// path's tail never needs masking (the record that ends there goes through `finish`).
    fn room_after(&self, p: Placement, head: u64) -> u64 {
        let cap = self.shared.capacity;
        let at = advance(self.tail, p.pad);
        let free = cap - distance(self.tail, head) - p.pad;
        let to_end = cap - (at & self.mask);
        // Saturating: `p` itself may end at 2^61.
        free.min(to_end).min(POS_MASK - at).saturating_sub(p.frame)
    }

    /// Where a frame of `frame` bytes goes if the consumer's position is `head`, if it fits.
    #[inline]
    fn fits(&self, frame: u64, head: u64) -> Option<Placement> {
        let cap = self.shared.capacity;
        let to_end = cap - (self.tail & (cap - 1));
        let (pad, need) = if frame <= to_end { (0, frame) } else { (to_end, to_end + frame) };
        let used = distance(self.tail, head);
        debug_assert!(used <= cap, "used {used} > capacity {cap}");
        (used + need <= cap).then_some(Placement { pad, frame })
    }

    /// Records between `pos` (a frame start at or after the head) and `self.tail`.
    fn records_from(&self, pos: u64) -> u64 {
        if pos == self.tail {
            return 0;
        }
        // SAFETY: `pos` is a frame start in [head, tail) that this producer wrote and has not
        // overwritten (it only writes at `tail`, and tail - pos <= capacity). The consumer only
        // reads frames, so nobody writes these bytes now.
        let front = unsafe { self.shared.read_frame(pos) };
        u64::from(self.next_rec().wrapping_sub(front.rec_no))
    }

    #[cold]
    fn place_slow(&mut self, frame: u64) -> Result<Placement, PushError> {
        // Whatever happens below, the fast path takes nothing more until a placement in the
        // active role says how much.
        self.room = 0;
        self.cached_epoch = self.w().control.epoch.load(Ordering::Acquire);
        let mut word = self.w().head.load(Ordering::Acquire);
        let mut attempts = 0u32;
        loop {
            let head = Head::decode(word);
            if self.checks() && head.role != Role::Idle {
                // A ring file's consumer process wrote this word: it must be a position this
                // producer can have published, or the free space computed from it is a lie.
                attempts += 1;
                let bad = if attempts > super::consumer::CAS_ATTEMPTS {
                    Err(Corruption::HeadBusy { attempts: super::consumer::CAS_ATTEMPTS })
                } else {
                    check::head(head.pos, self.tail, self.shared.capacity)
                };
                if let Err(what) = bad {
                    return Err(self.refuse_corrupt(head.pos, what));
                }
            }
            self.cached_head = head.pos;
            self.cached_role = head.role;
            match head.role {
                Role::Idle => {
                    // The record is discarded. A record placed before the switch to idle may
                    // still be published (a straggler), so flag the next stored record: the
                    // reader must not take straggler and successor for one unbroken run.
                    self.set_loss_pending();
                    return Err(PushError::NotSubscribed);
                }
                Role::Active => {
                    if let Some(p) = self.fits(frame, head.pos) {
                        self.room = self.room_after(p, head.pos);
                        return Ok(p);
                    }
                    // Full. If an open batch holds unpublished records, publish them: the
                    // consumer cannot free space it cannot see, so a retry loop inside the
                    // batch would otherwise spin forever.
                    self.publish();
                    return Err(PushError::Full);
                }
                Role::Staged => {}
            }
            let placement = self.fits(frame, head.pos);
            // At least 1 whatever the word holds (a ring file's other process may have written
            // 0): with a window of 0 the loop below would evict past an empty ring.
            let window = self.w().control.window.load(Ordering::Relaxed).max(1);
            if let Some(p) = placement {
                // Within the window, or the consumer holds the front: store it. (Under the lock
                // the window may be exceeded until the next push after the unlock.)
                if head.locked || self.records_from(head.pos) < window {
                    return Ok(p);
                }
            }
            if head.locked {
                self.dropped += 1;
                self.w().counters.dropped.store(self.dropped, Ordering::Relaxed);
                self.set_loss_pending();
                return Err(PushError::Shed);
            }
            if head.pos == self.published && self.tail != self.published {
                // Everything published is gone and the rest of the room is held by this batch's
                // unpublished records: publish them so they can be evicted in turn.
                self.publish();
                continue;
            }
            debug_assert!(head.pos != self.tail, "an empty ring always has room for one record");
            // Evict the front frame (a record, or a pad frame on the way to one).
            // SAFETY: as in `records_from`: a frame in [head, tail) this producer wrote. (Of a
            // ring file: 8-aligned and inside the buffer, checked above.)
            let front = unsafe { self.shared.read_frame(head.pos) };
            if self.checks() {
                let sh = &*self.shared;
                if let Err(what) =
                    check::frame(head.pos, front, self.tail, sh.capacity, sh.max_payload as u64)
                {
                    return Err(self.refuse_corrupt(head.pos, what));
                }
            }
            // The identity tier: log what is about to go before it goes (`identity`, `# Orderings`).
            let log = self.shared.identities.as_deref().filter(|_| !front.is_pad());
            if let Some(log) = log {
                // SAFETY: as above, the frame at `head.pos` is a record this producer wrote and
                // has not overwritten; its event header follows the frame header, inside the
                // buffer (frames never wrap) and 8-aligned. The consumer only reads it.
                let h = unsafe { self.shared.read_header(head.pos) };
                // SAFETY: as above; the key is read only from a payload at least that long.
                let key = unsafe { self.shared.read_key(head.pos, front, &h) };
                log.write(&h, key);
            }
            let next = Head::encode(advance(head.pos, front.span()), false, Role::Staged);
            // AcqRel. Acquire: the consumer's reads before its last unlock/role change happen
            // before we overwrite the evicted space. Release: a consumer that later takes its
            // position from this word (lock, role change) also sees the tail we published before
            // evicting, so its cached tail is never behind its head (loom found this one).
            match self.w().head.compare_exchange(word, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    word = next;
                    if let Some(log) = log {
                        log.publish();
                    }
                    if !front.is_pad() {
                        self.evicted += 1;
                        self.w().counters.evicted.store(self.evicted, Ordering::Relaxed);
                    }
                }
                Err(actual) => word = actual,
            }
        }
    }

    /// `slot`, `header_mut`, `payload_mut` and `commit` in one, for `push`: the frame's address
    /// is found once for the header, the payload and the frame word.
    #[inline]
    fn write_record(&mut self, placement: Placement, header: &EventHeader, payload: &[u8], publish: bool) {
        let at = advance(self.tail, placement.pad);
        let p = self.frame_ptr(at, placement.frame);
        // SAFETY: `place_record` reserved the frame [at, at + frame) in free space for this
        // record alone (the consumer reads nothing past the published tail), contiguous and
        // inside the storage, 8-aligned at its start.
        unsafe { write_body(p, header, payload) };
        self.finish(p, at, placement, payload.len(), publish);
    }

    /// The address of the frame at `at` (of `len` bytes, reserved by this producer), reported
    /// to loom as written.
    #[inline(always)]
    fn frame_ptr(&self, at: u64, len: u64) -> *mut u8 {
        let offset = (at & self.mask) as usize;
        self.shared.tracker.write(offset, len as usize);
        // SAFETY: `offset < capacity`, the storage's length (`base` is its start).
        unsafe { self.base.add(offset) }
    }

    /// Writes the frame word of the record whose frame, at `at` (`frame_ptr` in memory), is
    /// filled, and the pad frame before it if any; counts it; publishes if asked (outside a
    /// batch).
    #[inline]
    fn finish(
        &mut self,
        frame_ptr: *mut u8,
        at: u64,
        placement: Placement,
        payload_len: usize,
        publish: bool,
    ) {
        if placement.pad != 0 {
            // SAFETY: the pad covers free space from the current tail to the buffer's end, which
            // this producer owns until it publishes past it.
            unsafe { self.shared.write_frame(self.tail, Frame::pad(placement.pad, self.next_rec())) };
        }
        let word = self.frame_hi | (RECORD_PREFIX + payload_len) as u64;
        // SAFETY: `frame_ptr` is the start of the reserved free space at `at`, 8-aligned
        // (`Shared::write_frame`'s write, with the pointer at hand).
        unsafe { frame_ptr.cast::<u64>().write(word) };
        // The next number; the loss flag, if it was set, went with this record.
        self.frame_hi = (self.frame_hi & !u64::from(FRAME_AFTER_DROP)).wrapping_add(1 << 32);
        self.tail = advance(at, placement.frame);
        if publish {
            self.publish();
        }
    }

    fn slot(&mut self, placement: Placement, payload_len: usize, publish: bool) -> WriteSlot<'_, S> {
        let at = advance(self.tail, placement.pad);
        let offset = self.shared.offset(at);
        self.shared.tracker.write(offset, placement.frame as usize);
        WriteSlot { producer: self, at, placement, payload_len, publish }
    }

    #[inline]
    fn publish(&mut self) {
        if self.published != self.tail {
            self.publish_moved();
        }
    }

    /// [`publish`](Self::publish) when the tail is known to have moved (a push just wrote).
    #[inline]
    fn publish_moved(&mut self) {
        self.published = self.tail;
        let w = self.w();
        w.tail.store(self.tail, Ordering::Release);
        // A consumer about to sleep on this ring is woken (`wake`: one load on the control
        // line and one branch while it is awake).
        let wake = &w.control.wake;
        if wake.maybe_sleeping(self.fence_mode) {
            wake.ring_if_sleeping(self.fence_mode, self.shared.storage.external_words().is_some());
        }
    }
}

/// A record reserved by [`Producer::reserve_detached`]: it borrows nothing, so it can be kept
/// across calls. Committed once ([`Producer::commit_detached`]) or dropped (nothing published).
#[derive(Debug)]
pub struct Reservation {
    /// The ring it was made on (the address of its shared state).
    ring: usize,
    /// Its number among the producer's detached reservations.
    serial: u64,
    /// The producer's tail when it was made.
    tail: u64,
    /// Frame start of the record.
    at: u64,
    placement: Placement,
    payload_len: usize,
}

impl Reservation {
    /// Payload length reserved.
    pub fn payload_len(&self) -> usize {
        self.payload_len
    }
}

/// [`Producer::commit_detached`]: the reservation is not the producer's newest, or something
/// was reserved or written since it was made. Nothing was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaleReservation;

impl core::fmt::Display for StaleReservation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("the reservation is stale: something was reserved or written since it was made")
    }
}

impl std::error::Error for StaleReservation {}

/// A reserved record: fill the header and payload, then [`commit`](WriteSlot::commit).
pub struct WriteSlot<'a, S: Storage = HeapStorage> {
    producer: &'a mut Producer<S>,
    /// Frame start of the record.
    at: u64,
    placement: Placement,
    payload_len: usize,
    /// Publish on commit (false inside a batch).
    publish: bool,
}

impl<S: Storage> WriteSlot<'_, S> {
    /// The event header, in ring memory (holding stale bytes until written).
    #[inline]
    pub fn header_mut(&mut self) -> &mut EventHeader {
        let p = self.producer.shared.ptr(self.at);
        // SAFETY: the frame [at, at + frame) is free space reserved for this slot alone (the
        // consumer reads nothing past the published tail); the header sits 8 bytes in, 8-aligned,
        // and every bit pattern is a valid EventHeader. The borrow is tied to `&mut self`.
        unsafe { &mut *p.add(FRAME_HEADER_SIZE).cast::<EventHeader>() }
    }

    /// The payload, in ring memory, exactly the reserved length.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let p = self.producer.shared.ptr(self.at);
        // SAFETY: as in `header_mut`; a record frame never wraps, so the payload is contiguous
        // and inside the storage; the bytes are initialised (storage is zeroed at creation).
        unsafe { core::slice::from_raw_parts_mut(p.add(RECORD_PREFIX), self.payload_len) }
    }

    /// Payload length reserved.
    pub fn payload_len(&self) -> usize {
        self.payload_len
    }

    /// Makes the record visible (now, or when its batch publishes).
    #[inline]
    pub fn commit(self) {
        let frame_ptr = self.producer.shared.ptr(self.at);
        self.producer.finish(frame_ptr, self.at, self.placement, self.payload_len, self.publish);
    }
}

/// Records reserved through a batch are published together with one `Release` store, when the
/// batch is dropped or published. Uncommitted slots are not published.
pub struct WriteBatch<'a, S: Storage = HeapStorage> {
    producer: &'a mut Producer<S>,
    /// The producer's hot state, kept here between pushes (so in registers, once inlined) and
    /// written back before anything else looks at the producer ([`sync`](Self::sync)).
    hot: Hot,
    /// `hot` is the producer's state (not a slot's leftover: a slot reserved through the batch
    /// moves the producer's own state when committed).
    owned: bool,
}

impl<S: Storage> WriteBatch<'_, S> {
    /// As [`Producer::reserve`], without publishing on commit.
    #[inline]
    pub fn reserve(&mut self, payload_len: usize) -> Result<WriteSlot<'_, S>, PushError> {
        self.sync();
        // The slot moves the producer's own state when committed: `hot` is taken again from
        // the producer at the next push (`room` 0 sends it to the slow path, which does).
        self.owned = false;
        self.hot.room = 0;
        let placement = self.producer.place_record(payload_len)?;
        Ok(self.producer.slot(placement, payload_len, false))
    }

    /// As [`Producer::push`], without publishing.
    #[inline]
    pub fn push(&mut self, header: &EventHeader, payload: &[u8]) -> Result<(), PushError> {
        if self.producer.push_fast(&mut self.hot, header, payload) {
            return Ok(());
        }
        // By value, not through `&mut self`: the batch's address never escapes, so its state
        // can live in registers.
        let (hot, r) = batch_push_slow(self.producer, self.hot, self.owned, header, payload);
        (self.hot, self.owned) = (hot, true);
        r
    }

    /// Writes the hot state back to the producer, if it is the producer's (`owned`).
    #[inline]
    fn sync(&mut self) {
        if self.owned {
            self.producer.set_hot(self.hot);
        }
    }

    /// Publishes every committed record now (dropping the batch does the same).
    pub fn publish(self) {}
}

/// Writes a record's event header and payload into its frame at `p`.
///
/// # Safety
/// `p` is the 8-aligned start of a frame of `frame_size(payload.len())` bytes of ring storage
/// that this producer alone may write now (reserved, unpublished). The header then sits 8 bytes
/// in, 8-aligned, and every bit pattern is a valid EventHeader; the payload's bytes from
/// `RECORD_PREFIX` lie inside the frame and are initialised (storage is zeroed at creation).
#[inline(always)]
unsafe fn write_body(p: *mut u8, header: &EventHeader, payload: &[u8]) {
    // SAFETY: the caller's promise; the `&mut` slice lives for the copy only.
    unsafe {
        p.add(FRAME_HEADER_SIZE).cast::<EventHeader>().write(*header);
        core::slice::from_raw_parts_mut(p.add(RECORD_PREFIX), payload.len()).copy_from_slice(payload);
    }
}

/// [`WriteBatch::push`] past its fast path: the batch's state written back (if `owned`), the
/// producer's slow push, and the state taken again.
#[cold]
#[inline(never)]
fn batch_push_slow<S: Storage>(
    p: &mut Producer<S>,
    hot: Hot,
    owned: bool,
    header: &EventHeader,
    payload: &[u8],
) -> (Hot, Result<(), PushError>) {
    if owned {
        p.set_hot(hot);
    }
    let r = p.push_slow(header, payload, false);
    (p.hot(), r)
}

impl<S: Storage> Drop for WriteBatch<'_, S> {
    fn drop(&mut self) {
        self.sync();
        self.producer.publish();
    }
}
