//! The poll loop, flips and the switch.

use super::{Candidate, Engine, GapPolicy, Handler, Notice, PendingSwitch, RejectReason, SwitchInFlight};
use crate::event::{KIND_DATA, KIND_FLIP, KIND_HEARTBEAT};
use crate::flip::{Flip, FlipAction, MAX_LOCATOR};
use crate::ring::{Record, Role};
use crate::tracker::Verdict;

/// A flip applied to this recipient, copied out of ring memory so its record can be released.
/// The scalars are `Copy`; the locator stays in the engine's buffer (`FlipCopy`).
#[derive(Clone, Copy)]
struct FlipCmd {
    action: FlipAction,
    flip_id: u64,
    target: u32,
    cutover_pos: u64,
    resume_pos: u64,
    not_before_ns: u64,
    /// Position of the flip event in the stream it arrived on.
    pos: u64,
    stream: u32,
}

/// The engine's one flip slot (`Engine::flip_scratch`), so applying a flip allocates nothing and
/// copies its locator once.
pub(super) struct FlipCopy {
    cmd: FlipCmd,
    locator: [u8; MAX_LOCATOR],
    locator_len: usize,
}

impl FlipCopy {
    pub(super) const EMPTY: FlipCopy = FlipCopy {
        cmd: FlipCmd {
            action: FlipAction::Switch,
            flip_id: 0,
            target: 0,
            cutover_pos: 0,
            resume_pos: 0,
            not_before_ns: 0,
            pos: 0,
            stream: 0,
        },
        locator: [0; MAX_LOCATOR],
        locator_len: 0,
    };
}

/// Why reading the active stream stopped.
enum Step {
    /// The ring is empty.
    Drained,
    /// The read limit was reached.
    More,
    /// A flip for this recipient was consumed; it is in `flip_scratch`.
    Flip,
    /// The pending switch's cut-over point was reached (the event after it is left unread).
    Switch(PendingSwitch),
    /// Strict mode: events `from ..= to` of `origin` are missing before the event left unread
    /// (`seq`).
    Gap { origin: u32, from: u64, to: u64, seq: u64 },
}

impl Engine {
    /// Delivers up to `max` events from the active stream to `handler`, with the notices that
    /// go between them, and returns how many events were delivered. Reads the clock once, lets
    /// the arming policy restage candidates, trims staged windows to the delivery frontier,
    /// then reads; flips are applied as they are met. Examines at most `4 * max + 64` records,
    /// so a flood of duplicates cannot keep it from returning. Allocation-free.
    pub fn poll<H: Handler>(&mut self, max: usize, handler: &mut H) -> usize {
        self.now_ns = self.clock.now_ns();
        #[cfg(shm)]
        if self.file_streams > 0 || self.retired_pending {
            self.watch_files(handler);
        }
        self.tick_duty();
        if let Some(p) = self.deferred.take() {
            self.switch(p, handler); // asked for by a flip while the last call held records
        }
        self.apply_plan(handler);
        self.trim_staged();
        let mut delivered = 0;
        let mut budget = max.saturating_mul(4).saturating_add(64);
        while delivered < max && budget > 0 {
            let (n, examined, step) = self.read_active(max - delivered, budget, handler);
            delivered += n;
            budget = budget.saturating_sub(examined.max(1));
            match step {
                Step::Drained => break,
                Step::More => {}
                Step::Flip => {
                    self.apply_flip(handler);
                    if self.deferred.is_some() {
                        break;
                    }
                }
                // Records held in this call stay on the active ring: switch next call.
                Step::Switch(_) if self.hold_from.is_some() => break,
                Step::Switch(p) => self.switch(p, handler),
                Step::Gap { origin, from, to, seq } => self.on_gap(origin, from, to, seq, handler),
            }
        }
        delivered
    }

    /// Like [`poll`](Self::poll), but the records of the events delivered from the active
    /// stream's ring stay unreleased in ring memory after return: a handler may keep pointers to
    /// them until the next call on this engine that polls. Events filled into a gap from a
    /// staged window are not held (that memory is the staged ring's); a switch that a flip asks
    /// for once records are held is made at the start of the next poll, so held records never
    /// end up in a ring that has stopped being active. For the C API's `hz_engine_next` and
    /// `hz_engine_poll_views`.
    pub fn poll_holding<H: Handler>(&mut self, max: usize, handler: &mut H) -> usize {
        self.hold = true;
        self.hold_from = None;
        let n = self.poll(max, handler);
        self.hold = false;
        self.hold_from = None;
        n
    }

    /// Reads a chunk of the active ring. Returns (delivered, examined, why it stopped).
    fn read_active<H: Handler>(&mut self, limit: usize, budget: usize, h: &mut H) -> (usize, usize, Step) {
        let Engine {
            streams,
            active,
            tracker,
            policy,
            flips,
            stats,
            pending,
            in_flight,
            rereading,
            recipient_id,
            clock,
            now_ns,
            flip_scratch,
            flip_deferred,
            reread_skip_next,
            hold,
            hold_from,
            reread_from,
            ..
        } = self;
        let stream = &mut streams[*active];
        let sid = stream.id;
        let mut delivered = 0;
        let mut examined = 0;
        let Ok(mut chunk) = stream.consumer.read_chunk(budget) else {
            debug_assert!(false, "the active stream's ring is active");
            return (0, 0, Step::Drained);
        };
        let step = loop {
            if delivered == limit {
                break Step::More;
            }
            let Some((rec_pos, rec)) = chunk.next_with_pos() else {
                break if examined == budget { Step::More } else { Step::Drained };
            };
            let hdr = *rec.header;
            if let Some(p) = pending {
                if (p.cutover_pos != 0 && hdr.pos > p.cutover_pos)
                    || (p.not_before_ns != 0 && hdr.ts_ns >= p.not_before_ns)
                {
                    chunk.unread();
                    let p = *p;
                    break Step::Switch(p);
                }
            }
            examined += 1;
            if *rereading {
                if core::mem::take(reread_skip_next) || hdr.pos > stream.last_read_pos {
                    // The stream runs on past the gap: these events come again with the re-read.
                    stream.last_read_pos = hdr.pos;
                    stats.skipped_for_reread += 1;
                    continue;
                }
                *rereading = false; // positions went back: the re-read has begun
            }
            // Consumed from here on, or put back and read again at the same position.
            stream.last_read_pos = hdr.pos;
            match hdr.kind {
                KIND_FLIP => {
                    policy.observe(sid, &rec, *now_ns);
                    match Flip::decode(rec.payload) {
                        Err(e) => {
                            stats.flips_rejected += 1;
                            h.notice(&Notice::FlipRejected {
                                stream: sid,
                                pos: hdr.pos,
                                reason: RejectReason::Malformed(e),
                            });
                        }
                        Ok(f) if flips.contains(f.flip_id) => stats.flips_repeated += 1,
                        Ok(f) => {
                            flips.insert(f.flip_id);
                            let for_us = f.selector.selects(*recipient_id);
                            policy.flip(sid, &f, for_us, *now_ns);
                            if !for_us {
                                stats.flips_ignored += 1;
                                continue;
                            }
                            flip_scratch.cmd = FlipCmd {
                                action: f.action,
                                flip_id: f.flip_id,
                                target: f.target,
                                cutover_pos: f.cutover_pos,
                                resume_pos: f.resume_pos,
                                not_before_ns: f.not_before_ns,
                                pos: hdr.pos,
                                stream: sid,
                            };
                            flip_scratch.locator_len = f.locator.len();
                            flip_scratch.locator[..f.locator.len()].copy_from_slice(f.locator);
                            if in_flight.is_some_and(|f| f.staged) {
                                // Catching up after a switch to a staged stream, whose window
                                // may hold history: this flip may lie before the delivery
                                // frontier (it reached only this stream, while another was
                                // active). Apply it only if the next data event is new; drop it
                                // if that event was already delivered.
                                if *flip_deferred {
                                    stats.flips_stale += 1; // two flips with no data between
                                }
                                *flip_deferred = true;
                                continue;
                            }
                            break Step::Flip;
                        }
                    }
                }
                KIND_HEARTBEAT => policy.observe(sid, &rec, *now_ns),
                kind => {
                    if let Some(f) = in_flight {
                        if f.resume_pos != 0 && hdr.pos < f.resume_pos {
                            stats.before_resume_pos += 1;
                            if core::mem::take(flip_deferred) {
                                stats.flips_stale += 1;
                            }
                            continue;
                        }
                    }
                    let verdict = tracker.check(hdr.origin, hdr.seq);
                    if core::mem::take(flip_deferred) {
                        if matches!(verdict, Verdict::Duplicate) {
                            // The deferred flip lay behind the frontier: stale.
                            stats.flips_stale += 1;
                        } else {
                            // It lies at the frontier: apply it before this event.
                            chunk.unread();
                            examined -= 1;
                            break Step::Flip;
                        }
                    }
                    match verdict {
                        Verdict::Deliver => {
                            if kind != KIND_DATA {
                                stats.unknown_kinds += 1;
                            }
                            emit_switched(in_flight, stats, &**clock, h);
                            policy.observe(sid, &rec, *now_ns);
                            if *hold && hold_from.is_none() {
                                *hold_from = Some(rec_pos);
                            }
                            h.event(sid, &rec);
                            tracker.advance(hdr.origin, hdr.seq);
                            stats.delivered += 1;
                            if let Some(r) = reread_from.get_mut(hdr.origin as usize) {
                                *r = hdr.pos.saturating_add(1);
                            }
                            delivered += 1;
                        }
                        Verdict::Duplicate => stats.duplicates_dropped += 1,
                        Verdict::Gap { expected } => {
                            chunk.unread();
                            examined -= 1;
                            break Step::Gap {
                                origin: hdr.origin,
                                from: expected,
                                to: hdr.seq - 1,
                                seq: hdr.seq,
                            };
                        }
                        Verdict::UnknownOrigin => {
                            stats.bad_events += 1;
                            h.notice(&Notice::BadEvent {
                                stream: sid,
                                pos: hdr.pos,
                                origin: hdr.origin,
                                seq: hdr.seq,
                                reason: super::BadEventReason::UnknownOrigin,
                            });
                        }
                    }
                }
            }
        };
        match hold_from {
            // Lend the delivered records past the call: free only what came before them.
            Some(from) if *hold => chunk.commit_holding_from(*from),
            _ => chunk.commit(),
        }
        (delivered, examined, step)
    }

    fn apply_flip<H: Handler>(&mut self, h: &mut H) {
        let f = self.flip_scratch.cmd;
        let reject = |this: &mut Engine, h: &mut H, reason| {
            this.stats.flips_rejected += 1;
            h.notice(&Notice::FlipRejected { stream: f.stream, pos: f.pos, reason });
        };
        let target = match f.action {
            FlipAction::Switchback => match self.previous {
                Some(p) => p,
                None => return reject(self, h, RejectReason::NoPreviousStream),
            },
            _ => match self.index_of(f.target) {
                Some(i) => i,
                None => return reject(self, h, RejectReason::UnknownStream(f.target)),
            },
        };
        let n = self.flip_scratch.locator_len;
        if n > 0 {
            self.streams[target].set_locator(&self.flip_scratch.locator[..n]);
        }
        match f.action {
            FlipAction::Switch | FlipAction::Switchback => {
                if target == self.active {
                    return reject(self, h, RejectReason::AlreadyActive(self.streams[target].id));
                }
                self.stats.flips_applied += 1;
                let p = PendingSwitch {
                    to: target,
                    flip_id: f.flip_id,
                    cutover_pos: f.cutover_pos,
                    not_before_ns: f.not_before_ns,
                    resume_pos: f.resume_pos,
                };
                let at_flip = f.cutover_pos == 0 && f.not_before_ns == 0;
                let cut_passed = f.cutover_pos != 0 && f.pos >= f.cutover_pos;
                if (at_flip || cut_passed) && self.hold_from.is_some() {
                    // Records held in this call must stay on the active ring: switch at the
                    // start of the next poll, before anything else is read.
                    self.deferred = Some(p);
                } else if at_flip || cut_passed {
                    self.switch(p, h);
                } else {
                    // A later flip replaces an earlier one still waiting for its cut-over.
                    self.pending = Some(p);
                }
            }
            FlipAction::Announce => {
                self.stats.flips_applied += 1;
                if target != self.active {
                    self.streams[target].announced = true;
                    self.apply_plan(h);
                }
            }
            FlipAction::Cancel => {
                self.stats.flips_applied += 1;
                self.streams[target].announced = false;
                if self.pending.is_some_and(|p| p.to == target) {
                    self.pending = None;
                }
                self.apply_plan(h);
            }
        }
    }

    /// DESIGN.md §4 steps 2–6: one epoch change makes `p.to` active; the old stream becomes a
    /// candidate or is released; `Switched` follows with the first event of the new stream.
    fn switch<H: Handler>(&mut self, p: PendingSwitch, h: &mut H) {
        let from = self.active;
        let to = p.to;
        if core::mem::take(&mut self.flip_deferred) {
            self.stats.flips_stale += 1; // it belonged to the stream we are leaving
        }
        if let Some(f) = self.in_flight.as_mut() {
            // The previous switch delivered nothing before this one: report it now, not
            // seamless (its target gave no event), so every switch gets its notice.
            f.gapped = true;
            emit_switched(&mut self.in_flight, &mut self.stats, &*self.clock, h);
        }
        let started_ns = self.clock.now_ns();
        let staged = self.streams[to].consumer.role() == Role::Staged;
        self.streams[to].consumer.set_role(Role::Active);
        self.active = to;
        self.previous = Some(from);
        self.pending = None;
        self.rereading = false;
        self.reread_skip_next = false;
        self.fill_tried = None;
        self.reread_from.fill(0);
        self.active_from = p.resume_pos;
        self.streams[to].announced = false;
        self.policy.switched(self.streams[from].id, self.streams[to].id, self.now_ns);
        let old = &mut self.streams[from];
        if self.keep_previous {
            old.consumer.set_role(Role::Staged);
            old.consumer.set_window(self.default_window);
        } else {
            old.consumer.set_role(Role::Idle);
            h.notice(&Notice::Unsubscribe { stream: old.id });
        }
        if !staged {
            let t = &self.streams[to];
            h.notice(&Notice::Subscribe { stream: t.id, locator: t.locator(), from_pos: p.resume_pos });
        }
        self.in_flight = Some(SwitchInFlight {
            from_id: self.streams[from].id,
            to_id: self.streams[to].id,
            flip_id: p.flip_id,
            staged,
            started_ns,
            resume_pos: p.resume_pos,
            gapped: false,
        });
        self.apply_plan(h);
    }

    /// A gap before `(origin, seq)`: fill it from staged candidates, else apply the gap policy.
    fn on_gap<H: Handler>(&mut self, origin: u32, from: u64, to: u64, seq: u64, h: &mut H) {
        if self.fill_tried != Some((origin, seq)) {
            self.fill_tried = Some((origin, seq));
            let stream = self.streams[self.active].id;
            self.policy.gap(stream, to + 1 - from, self.now_ns);
            self.fill_from_candidates(origin, to, h);
            if self.tracker.last(origin).is_some_and(|last| last >= to) {
                return; // filled: the event after the gap now delivers in order
            }
        }
        self.fill_tried = None;
        if let Some(f) = self.in_flight.as_mut() {
            f.gapped = true;
        }
        let from = self.tracker.last(origin).map_or(from, |l| l + 1).max(from);
        let stream = self.streams[self.active].id;
        self.stats.gaps += 1;
        h.notice(&Notice::Gap { stream, origin, from_seq: from, to_seq: to });
        match self.gap_policy {
            GapPolicy::ReportLost => {
                self.stats.lost += to - from + 1;
                h.notice(&Notice::Lost { origin, from_seq: from, to_seq: to });
                self.tracker.advance(origin, to);
            }
            GapPolicy::ReRead => {
                // From just after this origin's last event on the active stream: within one
                // stream an origin's events are in order, so the missing ones lie between it and
                // the event after the gap. Events of other origins in between come again and the
                // tracker drops them. (The stream's last delivered position is not enough: another
                // origin's events after the missing one may have been delivered.) If the origin
                // delivered nothing on this stream, from where the subscription started.
                let s = &self.streams[self.active];
                let from_pos = match self.reread_from.get(origin as usize) {
                    Some(&r) if r != 0 => r,
                    _ => self.active_from,
                };
                self.stats.rereads += 1;
                h.notice(&Notice::Subscribe { stream, locator: s.locator(), from_pos });
                self.rereading = true;
                // The event after the gap is still unread. Skip it too (it comes again with the
                // re-read): only positions going back below it mark the re-read's start. Without
                // this, an event at the same position (a re-read that still lacks the gap) would
                // end the re-read at once and the same gap would be reported again and again.
                self.reread_skip_next = true;
            }
        }
    }

    /// A/B arbitration: deliver, from staged candidates, the events of `origin` that continue
    /// the tracker's frontier, up to `to`.
    fn fill_from_candidates<H: Handler>(&mut self, origin: u32, to: u64, h: &mut H) {
        let Engine { streams, active, tracker, stats, in_flight, clock, .. } = self;
        for (i, s) in streams.iter_mut().enumerate() {
            if i == *active || s.consumer.role() != Role::Staged {
                continue;
            }
            let sid = s.id;
            let Ok(mut view) = s.consumer.staged() else { continue };
            let mut it = view.iter();
            while let Some(r) = it.next() {
                let hd = r.header;
                if hd.origin != origin || hd.kind == KIND_FLIP || hd.kind == KIND_HEARTBEAT || hd.seq > to {
                    continue;
                }
                if tracker.check(origin, hd.seq) == Verdict::Deliver {
                    emit_switched(in_flight, stats, &**clock, h);
                    h.event(sid, &r);
                    tracker.advance(origin, hd.seq);
                    stats.delivered += 1;
                    stats.gap_filled += 1;
                }
            }
        }
    }

    /// Asks the policy which candidates to stage and applies it within the budget.
    fn apply_plan<H: Handler>(&mut self, h: &mut H) {
        let mut n = 0;
        for (i, s) in self.streams.iter().enumerate() {
            if i != self.active {
                let staged = s.consumer.role() == Role::Staged;
                self.candidates[n] = Candidate {
                    stream: s.id,
                    index: i,
                    staged,
                    announced: s.announced,
                    armed: s.armed,
                    previous: self.previous == Some(i),
                    retained_bytes: if staged { s.retained_bytes } else { 0 },
                    evicted: s.consumer.evicted(),
                    window: if staged { s.consumer.window() } else { 0 },
                };
                n += 1;
            }
        }
        self.policy.plan(&self.candidates[..n], self.default_window, self.now_ns, &mut self.plan);
        // Budget, in the plan's order of importance.
        let mut allowed = [0usize; super::MAX_STREAMS];
        let mut used = 0u64;
        for &(stream, window) in self.plan.entries() {
            let Some(i) = self.index_of(stream) else { continue };
            if i == self.active || allowed[i] != 0 {
                continue;
            }
            let window = window.clamp(1, self.streams[i].consumer.max_records());
            let bytes = window as u64 * self.max_frame;
            if used + bytes <= self.budget {
                used += bytes;
                allowed[i] = window;
            }
        }
        for (i, s) in self.streams.iter_mut().enumerate() {
            if i == self.active {
                continue;
            }
            match (allowed[i], s.consumer.role()) {
                (0, Role::Staged) => {
                    s.consumer.set_role(Role::Idle);
                    h.notice(&Notice::Unsubscribe { stream: s.id });
                }
                (0, _) => {}
                (w, Role::Idle) => {
                    s.consumer.set_role(Role::Staged);
                    s.consumer.set_window(w);
                    h.notice(&Notice::Subscribe { stream: s.id, locator: s.locator(), from_pos: 0 });
                }
                (w, _) => {
                    if s.consumer.window() != w {
                        s.consumer.set_window(w);
                    }
                }
            }
        }
        self.stats.staged_bytes = used;
        self.stats.peak_staged_bytes = self.stats.peak_staged_bytes.max(used);
    }

    /// Trims every staged window to what the active stream has not delivered yet.
    fn trim_staged(&mut self) {
        let Engine { streams, active, tracker, flips, .. } = self;
        for (i, s) in streams.iter_mut().enumerate() {
            if i == *active || s.consumer.role() != Role::Staged {
                continue;
            }
            if let Ok(mut view) = s.consumer.staged() {
                view.trim_while(|r| trimmable(r, tracker, flips));
                s.retained_bytes = view.retained_bytes();
            }
        }
    }

    fn tick_duty(&mut self) {
        if let Some(last) = self.last_tick_ns {
            let dt = self.now_ns.saturating_sub(last);
            self.stats.observed_ns += dt;
            if self.streams.iter().any(|s| s.consumer.role() == Role::Staged) {
                self.stats.staged_ns += dt;
            }
        }
        self.last_tick_ns = Some(self.now_ns);
    }
}

/// A staged record no longer needed: delivered data, an already-seen flip, or a heartbeat.
fn trimmable(r: &Record<'_>, tracker: &crate::tracker::Tracker, flips: &super::FlipIds) -> bool {
    match r.header.kind {
        KIND_HEARTBEAT => true,
        KIND_FLIP => Flip::decode(r.payload).map_or(true, |f| flips.contains(f.flip_id)),
        _ => tracker.is_delivered(r.header.origin, r.header.seq),
    }
}

/// Emits the `Switched` notice of a switch in flight, before the first event it delivers, and
/// counts the switch. Reads the clock only then (once per switch).
#[inline]
fn emit_switched<H: Handler>(
    in_flight: &mut Option<SwitchInFlight>,
    stats: &mut super::Stats,
    clock: &dyn crate::clock::Clock,
    h: &mut H,
) {
    let Some(f) = in_flight.take() else { return };
    let stall_ns = clock.now_ns().saturating_sub(f.started_ns);
    let seamless = f.staged && !f.gapped;
    if seamless {
        stats.switches_seamless += 1;
    } else {
        stats.switches_cold += 1;
    }
    stats.stall_last_ns = stall_ns;
    stats.stall_max_ns = stats.stall_max_ns.max(stall_ns);
    stats.stall_total_ns += stall_ns;
    h.notice(&Notice::Switched { from: f.from_id, to: f.to_id, flip_id: f.flip_id, seamless, stall_ns });
}
