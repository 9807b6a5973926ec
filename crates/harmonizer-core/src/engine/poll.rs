//! The poll loop, flips and the switch.

use super::recovery::GapOutcome;
use super::{
    Candidate, Engine, Handler, Notice, PendingSwitch, Purpose, Refusal, RejectReason, StagingDemand,
    StartAt, SwitchCause, SwitchInFlight,
};
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
    /// ANNOUNCE: when the switch is expected, ns after `ts_ns`.
    expected_in_ns: u64,
    /// Position of the flip event in the stream it arrived on.
    pos: u64,
    /// Its upstream time (`ts_ns` of its event header).
    ts_ns: u64,
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
            expected_in_ns: 0,
            pos: 0,
            ts_ns: 0,
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
    Gap { origin: u32, from: u64, to: u64 },
    /// A second flip for this recipient came while one was deferred (catching up after a
    /// switch); it is left unread: decide the deferred one first.
    DecideDeferred,
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
        if !self.started {
            self.start(handler);
        }
        if let Some(p) = self.deferred.take() {
            self.switch(p, handler); // asked for by a flip while the last call held records
        }
        self.apply_plan(handler);
        self.trim_staged(handler);
        if self.recovery.is_some() {
            self.recovery_tick(handler);
        } else if self.resume_wait.is_some() {
            self.resume_tick(handler);
        }
        let mut delivered = 0;
        let mut budget = max.saturating_mul(4).saturating_add(64);
        while delivered < max && budget > 0 {
            let (n, examined, step) = self.read_active(max - delivered, budget, handler);
            delivered += n;
            budget = budget.saturating_sub(examined.max(1));
            if examined > 0 {
                self.active_heard_ns = self.now_ns;
                self.silence_reported = false;
            }
            match step {
                Step::Drained => break,
                Step::More => {}
                Step::Flip => {
                    self.apply_flip(handler);
                    if self.deferred.is_some() {
                        break;
                    }
                }
                Step::DecideDeferred => self.decide_deferred(handler),
                // Records held in this call stay on the active ring: switch next call.
                Step::Switch(_) if self.hold_from.is_some() => break,
                Step::Switch(p) => self.switch(p, handler),
                Step::Gap { origin, from, to } => {
                    // (A hole that fails a probation holds: the rollback comes at the end of
                    // this poll, before anything else of the failing stream is read.)
                    if self.on_gap(origin, from, to, handler) == GapOutcome::Hold {
                        break;
                    }
                }
            }
        }
        if self.on_probation.is_some() {
            self.check_probation(handler);
        }
        if self.liveness.silence_ns != 0
            && !self.silence_reported
            && self.recovery.is_none()
            && !self.gap_wait.held()
        {
            self.check_silence(handler);
        }
        delivered
    }

    /// The first poll: the initial stream's `Subscribe`, from the application's checkpoint when
    /// it gave one.
    fn start<H: Handler>(&mut self, h: &mut H) {
        self.started = true;
        self.active_heard_ns = self.now_ns;
        let a = self.active;
        let from = match self.streams[a].start_pos {
            Some(pos) => StartAt::Pos(pos),
            None => self.start_on(a),
        };
        let s = &self.streams[a];
        h.notice(&Notice::Subscribe { stream: s.id, locator: s.locator(), from, purpose: Purpose::Initial });
    }

    /// Where stream `i` must be read from to bring every event not yet delivered: the smallest
    /// position just after each delivered origin's frontier event on it, when every one of them
    /// was seen there; else `AfterSeq` (one origin) or `AfterFrontier`; `Live` when nothing was
    /// delivered. O(max_origins): for cold switches and the first subscription, not per event.
    pub(super) fn start_on(&mut self, i: usize) -> StartAt {
        let unknown_before = self.unknown_starts(i);
        if unknown_before > 0 {
            self.take_logged_starts(i);
            self.stats.identity_starts += (unknown_before - self.unknown_starts(i)) as u64;
        }
        self.start_from_seen(i)
    }

    /// [`start_on`](Self::start_on) from what `seen` holds now, without the identity log: the
    /// dry run's start (`evaluate_switch`) and the last step of `start_on`.
    pub(super) fn start_from_seen(&self, i: usize) -> StartAt {
        let mo = self.max_origins;
        let mut min = u64::MAX;
        let mut origins = 0usize;
        let mut unknown = None;
        for (o, at) in self.seen[i * mo..(i + 1) * mo].iter().enumerate() {
            let Some(last) = self.tracker.last(o as u32) else { continue };
            origins += 1;
            match at.after(last) {
                Some(pos) => min = min.min(pos),
                None => unknown = Some((o as u32, last)),
            }
        }
        match (origins, unknown) {
            (0, _) => StartAt::Live,
            (_, None) => StartAt::Pos(min),
            (1, Some((origin, seq))) => StartAt::AfterSeq { origin, seq },
            _ => StartAt::AfterFrontier,
        }
    }

    /// Where stream `i` must be read from to bring `origin`'s events after `last` (its last
    /// delivered seq): the exact position when that event was seen there.
    pub(super) fn start_for(&mut self, i: usize, origin: u32, last: u64) -> StartAt {
        let k = i * self.max_origins + origin as usize;
        let known = |e: &Engine| e.seen.get(k).and_then(|at| at.after(last));
        let pos = known(self).or_else(|| {
            self.take_logged_starts(i);
            let logged = known(self);
            self.stats.identity_starts += u64::from(logged.is_some());
            logged
        });
        match pos {
            Some(pos) => StartAt::Pos(pos),
            None => StartAt::AfterSeq { origin, seq: last },
        }
    }

    /// Origins delivered whose position after their frontier on stream `i` is not known.
    fn unknown_starts(&self, i: usize) -> usize {
        let mo = self.max_origins;
        self.seen[i * mo..(i + 1) * mo]
            .iter()
            .enumerate()
            .filter(|(o, at)| self.tracker.last(*o as u32).is_some_and(|last| at.after(last).is_none()))
            .count()
    }

    /// The identity tier (docs/staging.md): for each origin whose position after its frontier
    /// on stream `i` is not known, takes it from the identities stream `i`'s window evicted,
    /// if they hold the frontier event or its successor, into `seen`. Only outside the staged
    /// role (the log is read while nothing is evicted); O(log slots + origins), for cold
    /// switches and re-reads, not per event. The callers count `Stats::identity_starts` for the
    /// starts it made exact.
    fn take_logged_starts(&mut self, i: usize) {
        let Engine { streams, seen, tracker, max_origins, .. } = self;
        let c = &streams[i].consumer;
        if c.identity_slots() == 0 {
            return;
        }
        let seen = &mut seen[i * *max_origins..(i + 1) * *max_origins];
        let _ = c.evicted_identities(|id| {
            if id.kind != crate::event::KIND_DATA {
                return;
            }
            let (Some(at), Some(last)) = (seen.get_mut(id.origin as usize), tracker.last(id.origin)) else {
                return;
            };
            if at.after(last).is_none() {
                // Reading from `pos` brings every event of the origin after `last`. (Position 0,
                // the successor as a stream's very first record, cannot be kept: `next_pos` 0
                // means nothing seen. The start then stays what it was.)
                if let Some(pos) = logged_start(id, last).filter(|&p| p != 0) {
                    *at = super::SeenAt { next_pos: pos, seq: last };
                }
            }
        });
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
            observes,
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
            seen,
            max_origins,
            resume_floor,
            recovery,
            resume_wait,
            skipped_max,
            flip_told,
            holding_gap,
            last_delivered_ts,
            switch_flip_ts,
            verify,
            verifying,
            ..
        } = self;
        let seen = &mut seen[*active * *max_origins..(*active + 1) * *max_origins];
        *holding_gap = false;
        let stream = &mut streams[*active];
        let sid = stream.id;
        let mut delivered = 0;
        let mut examined = 0;
        let Ok(mut chunk) = stream.consumer.read_chunk(budget) else {
            debug_assert!(false, "the active stream's ring is active");
            return (0, 0, Step::Drained);
        };
        let step = loop {
            // The steady state, in a loop of its own: no switch pending, no re-read, no flip
            // waiting for the next event, no resume floor, no switch notice owed, nothing to
            // hold. Data events the tracker says to deliver are delivered here with exactly
            // what the general path below does for them; the first event that is anything else
            // is put back and goes through the general path. Nothing the loop calls can change
            // these conditions (the policy and the handler cannot reach the engine). Deliveries
            // remembered for verification go through the general path.
            if pending.is_none()
                && !*rereading
                && !*flip_deferred
                && *resume_floor == 0
                && in_flight.is_none()
                && (!*hold || hold_from.is_some())
                && !*verifying
            {
                while delivered < limit {
                    let Some((_, rec)) = chunk.next_with_pos() else { break };
                    let hdr = *rec.header;
                    if hdr.kind != KIND_DATA || tracker.check(hdr.origin, hdr.seq) != Verdict::Deliver {
                        chunk.unread();
                        break;
                    }
                    examined += 1;
                    stream.last_read_pos = hdr.pos;
                    observe(&mut **policy, *observes, sid, &rec, *now_ns);
                    h.event(sid, &rec);
                    note_delivered(tracker, stats, last_delivered_ts, seen, &hdr, rec.payload.len());
                    delivered += 1;
                }
            }
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
                    if hdr.kind != KIND_FLIP && hdr.kind != KIND_HEARTBEAT {
                        // Remembered, so a re-read that never comes ends in exact reports.
                        if let Some(m) = skipped_max.get_mut(hdr.origin as usize) {
                            if !tracker.is_delivered(hdr.origin, hdr.seq) {
                                *m = (*m).max(hdr.seq.saturating_add(1));
                            }
                        }
                    }
                    continue;
                }
                *rereading = false; // positions went back: the re-read has begun
                *resume_wait = None;
                if let Some(r) = recovery.as_mut() {
                    r.reread_began(*now_ns);
                }
            }
            // Consumed from here on, or put back and read again at the same position.
            stream.last_read_pos = hdr.pos;
            match hdr.kind {
                KIND_FLIP => {
                    observe(&mut **policy, *observes, sid, &rec, *now_ns);
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
                            let for_us = f.selector.selects(*recipient_id);
                            if !for_us {
                                // Evidence only; another copy is just as much not for us.
                                flips.insert(f.flip_id);
                                policy.flip(sid, &f, false, *now_ns);
                                stats.flips_ignored += 1;
                                continue;
                            }
                            if *flip_deferred {
                                // Two flips with no data between: decide the first before this.
                                chunk.unread();
                                examined -= 1;
                                break Step::DecideDeferred;
                            }
                            if flip_told.replace(f.flip_id) != Some(f.flip_id) {
                                // Once, though a flip left unread behind a deferred one is
                                // decoded again.
                                policy.flip(sid, &f, true, *now_ns);
                            }
                            // Its id is consumed when it is applied or rejected (`apply_flip`).
                            flip_scratch.cmd = FlipCmd {
                                action: f.action,
                                flip_id: f.flip_id,
                                target: f.target,
                                cutover_pos: f.cutover_pos,
                                resume_pos: f.resume_pos,
                                not_before_ns: f.not_before_ns,
                                expected_in_ns: f.expected_in_ns,
                                pos: hdr.pos,
                                ts_ns: hdr.ts_ns,
                                stream: sid,
                            };
                            flip_scratch.locator_len = f.locator.len();
                            flip_scratch.locator[..f.locator.len()].copy_from_slice(f.locator);
                            if in_flight.is_some_and(|f| f.staged) {
                                // Catching up after a switch to a staged stream, whose window
                                // may hold history: this flip may lie behind the delivery
                                // frontier. The next data event tells (`decide_deferred`).
                                *flip_deferred = true;
                                continue;
                            }
                            break Step::Flip;
                        }
                    }
                }
                KIND_HEARTBEAT => observe(&mut **policy, *observes, sid, &rec, *now_ns),
                kind => {
                    if *resume_floor != 0 && hdr.pos < *resume_floor {
                        stats.before_resume_pos += 1;
                        if *flip_deferred {
                            // Before the resume point: behind where this stream is wanted.
                            chunk.unread();
                            examined -= 1;
                            break Step::DecideDeferred;
                        }
                        continue;
                    }
                    let verdict = tracker.check(hdr.origin, hdr.seq);
                    if *flip_deferred {
                        let behind = matches!(verdict, Verdict::Duplicate);
                        if behind && flip_scratch.cmd.ts_ns != 0 && flip_scratch.cmd.ts_ns < *switch_flip_ts {
                            // Behind the frontier and older than the switch to this stream:
                            // history, not an instruction. Reported; its id stays unconsumed.
                            *flip_deferred = false;
                            stats.flips_stale += 1;
                            stats.flips_rejected += 1;
                            h.notice(&Notice::FlipRejected {
                                stream: flip_scratch.cmd.stream,
                                pos: flip_scratch.cmd.pos,
                                reason: RejectReason::Superseded,
                            });
                        } else {
                            // At the frontier, or written after the switch (the active copy
                            // governs): apply it before this event.
                            *flip_deferred = false;
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
                            emit_switched(in_flight, stats, &**clock, hdr.pos, h);
                            observe(&mut **policy, *observes, sid, &rec, *now_ns);
                            if *hold && hold_from.is_none() {
                                *hold_from = Some(rec_pos);
                            }
                            h.event(sid, &rec);
                            note_delivered(tracker, stats, last_delivered_ts, seen, &hdr, rec.payload.len());
                            if *verifying {
                                remember(verify, *active, &rec);
                            }
                            *resume_floor = 0;
                            delivered += 1;
                        }
                        Verdict::Duplicate => {
                            stats.duplicates_dropped += 1;
                            if let Some(at) = seen.get_mut(hdr.origin as usize) {
                                at.note(hdr.pos, hdr.seq);
                            }
                        }
                        Verdict::Gap { expected } => {
                            chunk.unread();
                            examined -= 1;
                            *holding_gap = true;
                            break Step::Gap { origin: hdr.origin, from: expected, to: hdr.seq - 1 };
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
        // Once per call rather than per event: nothing in the loop reads it, and the handler
        // cannot reach the engine.
        stats.delivered += delivered as u64;
        match hold_from {
            // Lend the delivered records past the call: free only what came before them.
            Some(from) if *hold => chunk.commit_holding_from(*from),
            _ => chunk.commit(),
        }
        (delivered, examined, step)
    }

    /// A deferred flip must be decided before the next record, which cannot tell whether it lies
    /// behind the frontier (a second flip, or an event before the resume point): it is history
    /// if it predates the switch to this stream, else it applies.
    fn decide_deferred<H: Handler>(&mut self, h: &mut H) {
        if !core::mem::take(&mut self.flip_deferred) {
            return;
        }
        let f = self.flip_scratch.cmd;
        if f.ts_ns != 0 && f.ts_ns < self.switch_flip_ts {
            self.reject_superseded(h);
        } else {
            self.apply_flip(h);
        }
    }

    /// The flip in `flip_scratch` is history (`RejectReason::Superseded`): reported and counted,
    /// its id not consumed.
    fn reject_superseded<H: Handler>(&mut self, h: &mut H) {
        let f = self.flip_scratch.cmd;
        self.stats.flips_stale += 1;
        self.stats.flips_rejected += 1;
        h.notice(&Notice::FlipRejected { stream: f.stream, pos: f.pos, reason: RejectReason::Superseded });
    }

    fn apply_flip<H: Handler>(&mut self, h: &mut H) {
        let f = self.flip_scratch.cmd;
        // Applied or rejected with a notice from here on: a copy met later is a repeat.
        self.flips.insert(f.flip_id);
        let reject = |this: &mut Engine, h: &mut H, reason| {
            this.stats.flips_rejected += 1;
            h.notice(&Notice::FlipRejected { stream: f.stream, pos: f.pos, reason });
        };
        let target = match self.flip_target(f.action, f.target) {
            Ok(i) => i,
            Err(why) => return reject(self, h, why),
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
                    flip_ts: f.ts_ns,
                    cause: SwitchCause::Flip,
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
                    // When the switch is expected, on this engine's clock (a staging start
                    // is spread within a share of it).
                    self.staging.announce_at[target] =
                        if f.expected_in_ns == 0 { 0 } else { self.now_ns.saturating_add(f.expected_in_ns) };
                    // A new announce redraws the start from its own expected time (a later
                    // announce may expect the switch sooner).
                    if self.streams[target].consumer.role() != Role::Staged {
                        self.staging.start_at[target] = 0;
                    }
                    self.apply_plan(h);
                }
            }
            FlipAction::Cancel => {
                self.stats.flips_applied += 1;
                self.streams[target].announced = false;
                self.staging.announce_at[target] = 0;
                if self.pending.is_some_and(|p| p.to == target) {
                    self.pending = None;
                }
                self.apply_plan(h);
            }
        }
    }

    /// docs/design.md §4 steps 2–6: one epoch change makes `p.to` active; the old stream becomes a
    /// candidate or is released; `Switched` follows when delivery of the new stream is
    /// contiguous.
    pub(super) fn switch<H: Handler>(&mut self, p: PendingSwitch, h: &mut H) {
        let started_ns = self.clock.now_ns();
        let from = self.active;
        let to = p.to;
        if self.verify.is_some() && self.streams[to].consumer.role() == Role::Staged {
            // Judge the target's copies of what was delivered since the poll began, before
            // deciding on them.
            self.trim_staged(h);
        }
        if self.staging.dry_run_switches {
            self.announce_dry_run(to, p.cause, h);
        }
        let counts = match self.verify.as_deref() {
            // A rollback goes back to the stream the probation judged sound: never refused.
            Some(v) if p.cause != SwitchCause::Rollback && v.blocks(from, to) => {
                let counts = v.counts(from, to);
                return self.block_switch(p, counts, h);
            }
            Some(v) => v.counts(from, to),
            None => super::PairCounts::default(),
        };
        // Where the stream left was cut: its last record consumed; when a hole's event waits
        // unread, the last event delivered (or dropped) from it before the hole.
        let cut_pos =
            if self.holding_gap { self.last_seen_pos(from) } else { self.streams[from].last_read_pos };
        if core::mem::take(&mut self.flip_deferred) {
            // It belonged to the stream we are leaving, met before its frontier was known.
            self.reject_superseded(h);
        }
        if let Some(f) = self.in_flight.as_mut() {
            // The previous switch delivered nothing before this one: report it now, not
            // seamless (its target gave no event), so every switch gets its notice.
            f.gapped = true;
            emit_switched(&mut self.in_flight, &mut self.stats, &*self.clock, 0, h);
        }
        if let Some(v) = self.verify.as_deref_mut() {
            // Counted into this switch's record. Every count was against the stream left: each
            // staged stream is verified afresh against the new one.
            for i in 0..self.streams.len() {
                v.reset(i);
            }
        }
        self.end_recovery();
        self.resume_wait = None;
        let staged = self.streams[to].consumer.role() == Role::Staged;
        self.streams[to].consumer.set_role(Role::Active);
        self.active = to;
        self.previous = Some(from);
        self.pending = None;
        self.rereading = false;
        self.reread_skip_next = false;
        self.holding_gap = false;
        self.resume_floor = p.resume_pos;
        self.switch_flip_ts = p.flip_ts;
        self.active_heard_ns = self.now_ns;
        self.silence_reported = false;
        self.streams[to].announced = false;
        self.staging.announce_at[to] = 0;
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
            let from = if p.resume_pos != 0 { StartAt::Pos(p.resume_pos) } else { self.start_on(to) };
            let t = &self.streams[to];
            h.notice(&Notice::Subscribe {
                stream: t.id,
                locator: t.locator(),
                from,
                purpose: Purpose::Switch,
            });
        }
        self.apply_plan(h);
        let switch_ns = self.clock.now_ns().saturating_sub(started_ns);
        self.stats.switch_last_ns = switch_ns;
        self.stats.switch_max_ns = self.stats.switch_max_ns.max(switch_ns);
        self.in_flight = Some(SwitchInFlight {
            from_id: self.streams[from].id,
            to_id: self.streams[to].id,
            flip_id: p.flip_id,
            staged,
            started_ns,
            switch_ns,
            cause: p.cause,
            gapped: false,
            verified: counts.verified,
            mismatched: counts.mismatched,
            matched: counts.last,
            cut_pos,
        });
        self.refresh_verifying();
        self.begin_probation(from, to, p.cause);
    }

    /// The largest position of an event of stream `i` delivered, dropped or trimmed at or behind
    /// the frontier (`seen`), 0 if none.
    fn last_seen_pos(&self, i: usize) -> u64 {
        let mo = self.max_origins;
        self.seen[i * mo..(i + 1) * mo].iter().map(|at| at.next_pos.saturating_sub(1)).max().unwrap_or(0)
    }

    /// Refuses the switch `p` (`MismatchPolicy::BlockSwitch`): the recipient stays on the
    /// active stream, told why. A switch waiting for its cut-over is dropped with it.
    #[cold]
    #[inline(never)]
    fn block_switch<H: Handler>(&mut self, p: PendingSwitch, c: super::PairCounts, h: &mut H) {
        self.pending = None;
        self.stats.switches_blocked += 1;
        h.notice(&Notice::SwitchBlocked {
            from: self.streams[self.active].id,
            to: self.streams[p.to].id,
            flip_id: p.flip_id,
            cause: p.cause,
            verified: c.verified,
            mismatched: c.mismatched,
        });
    }

    /// Sets `verifying`: verification is on and some stream other than the active one is
    /// staged.
    fn refresh_verifying(&mut self) {
        let a = self.active;
        self.verifying = self.verify.is_some()
            && self.streams.iter().enumerate().any(|(i, s)| i != a && s.consumer.role() == Role::Staged);
    }

    /// A/B arbitration: deliver, from staged candidates, the events of `origin` that continue
    /// the tracker's frontier, up to `to`. Returns a bit per stream index whose window holds an
    /// event of `origin` past the frontier that could not be delivered (that stream lacks the
    /// next missing event, or has not brought it yet), and the smallest such seq (`u64::MAX`:
    /// none): what some stream can offer of the rest of the hole.
    pub(super) fn fill_from_candidates<H: Handler>(&mut self, origin: u32, to: u64, h: &mut H) -> (u32, u64) {
        let Engine { streams, active, tracker, stats, seen, max_origins, .. } = self;
        // Passes over the candidates until one brings nothing: one stream may hold what another
        // lacks and the other what comes after it.
        loop {
            let before = tracker.last(origin);
            let mut passed = 0u32;
            let mut offered = u64::MAX;
            for (i, s) in streams.iter_mut().enumerate() {
                if i == *active || s.consumer.role() != Role::Staged {
                    continue;
                }
                let sid = s.id;
                let mut seen = seen.get_mut(i * *max_origins + origin as usize);
                let Ok(mut view) = s.consumer.staged() else { continue };
                let mut it = view.iter();
                while let Some(r) = it.next() {
                    let hd = r.header;
                    if hd.origin != origin || hd.kind == KIND_FLIP || hd.kind == KIND_HEARTBEAT {
                        continue;
                    }
                    match tracker.check(origin, hd.seq) {
                        Verdict::Deliver if hd.seq <= to => {
                            h.filled(sid, &r);
                            tracker.advance(origin, hd.seq);
                            stats.delivered += 1;
                            stats.gap_filled += 1;
                            if let Some(at) = seen.as_deref_mut() {
                                at.note(hd.pos, hd.seq);
                            }
                        }
                        Verdict::Duplicate => {
                            if let Some(at) = seen.as_deref_mut() {
                                at.note(hd.pos, hd.seq);
                            }
                        }
                        Verdict::Gap { .. } => {
                            passed |= 1 << i;
                            offered = offered.min(hd.seq);
                        }
                        _ => {}
                    }
                }
            }
            let after = tracker.last(origin);
            if after == before || after.is_some_and(|last| last >= to) {
                return (passed, offered);
            }
        }
    }

    /// Asks the policy which candidates to stage and applies it within the budget, the shared
    /// pool and the spread of starts (docs/staging.md).
    fn apply_plan<H: Handler>(&mut self, h: &mut H) {
        let mut n = 0;
        let mut any_staged = false;
        for (i, s) in self.streams.iter().enumerate() {
            if i != self.active {
                let staged = s.consumer.role() == Role::Staged;
                any_staged |= staged;
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
        let fill = self.recovery.as_ref().and_then(|r| r.fill_stream()).filter(|&x| x != self.active);
        if self.plan.entries().is_empty()
            && fill.is_none()
            && !any_staged
            && self.bid == 0
            && (self.pool.is_none() || self.staging.granted.iter().all(|&g| g == 0))
        {
            // Nothing staged, wanted or held (the steady state of most engines, polled per
            // batch): no role to change, no grant to give back, no bid to withdraw.
            if self.demand != StagingDemand::default() {
                self.demand = StagingDemand::default();
                self.staging.start_at = [0; super::MAX_STREAMS];
            }
            return;
        }
        // Budget, in the plan's order of importance; a window is priced at the mean data frame
        // delivered so far (the largest data frame before any).
        let frame = match self.stats.delivered {
            0 => self.max_frame,
            n => frame_bytes((self.stats.delivered_bytes / n) as usize),
        };
        let now = self.now_ns;
        let mut allowed = [0usize; super::MAX_STREAMS];
        let mut benefit = [f32::INFINITY; super::MAX_STREAMS];
        // What each allowed window is priced at (its grant), bytes.
        let mut cost = [0u64; super::MAX_STREAMS];
        let mut wanted = [false; super::MAX_STREAMS];
        let mut used = 0u64;
        let mut demand = StagingDemand::default();
        let mut refused_bid = 0f32;
        // A stream feeding a gap's fill is staged whatever the plan, with the whole ring (and
        // outside a shared pool: recovery is not refused).
        if let Some(x) = fill {
            allowed[x] = self.streams[x].consumer.max_records();
            cost[x] = allowed[x] as u64 * frame;
            used += cost[x];
        }
        if let Some(pool) = &self.pool {
            // Grants no longer needed go back first, so the requests below see the room: the
            // stream that just became active (a switch plans at once, and its old stream asks
            // for a window in the same plan), a fill's stream (not charged) and streams the
            // plan dropped. Our own bid is withdrawn too: it must not keep out our own requests,
            // and it is posted again below while room is still missing.
            pool.withdraw(core::mem::take(&mut self.bid));
            let mut planned = 0u32;
            for &(stream, _) in self.plan.entries() {
                if let Some(i) = self.index_of(stream) {
                    planned |= 1 << i;
                }
            }
            for (i, g) in self.staging.granted.iter_mut().enumerate() {
                if *g != 0 && (i == self.active || Some(i) == fill || planned & (1 << i) == 0) {
                    pool.give_back(*g);
                    *g = 0;
                }
            }
        }
        for (k, &(stream, window)) in self.plan.entries().iter().enumerate() {
            let Some(i) = self.index_of(stream) else { continue };
            if i == self.active || allowed[i] != 0 || wanted[i] {
                continue;
            }
            wanted[i] = true;
            let score = self.plan.scores()[k];
            let mut window = window.clamp(1, self.streams[i].consumer.max_records());
            let mut bytes = window as u64 * frame;
            let b = score.probability * self.cold_cost_ns as f32;
            demand.wanted_streams += 1;
            demand.wanted_bytes += bytes;
            demand.urgency = demand.urgency.max(b);
            // A start waits for its place in the spread (armed streams are urgent).
            if self.streams[i].consumer.role() != Role::Staged && !self.streams[i].armed {
                if self.staging.start_at[i] == 0 {
                    let eta = match self.staging.announce_at[i] {
                        0 => score.eta_ns,
                        at => at.saturating_sub(now).max(1),
                    };
                    let d = self.spread.delay_ns(self.recipient_id, stream, score.probability, eta);
                    self.staging.start_at[i] = now.saturating_add(d).max(1);
                }
                if now < self.staging.start_at[i] {
                    demand.deferred_streams += 1;
                    demand.next_start_ns = match demand.next_start_ns {
                        0 => self.staging.start_at[i],
                        t => t.min(self.staging.start_at[i]),
                    };
                    continue;
                }
            }
            if used + bytes > self.budget {
                demand.refused_streams += 1;
                continue;
            }
            if let Some(pool) = &self.pool {
                let held = self.staging.granted[i];
                let total: u64 = self.staging.granted.iter().sum();
                if held >= bytes {
                    pool.give_back(held - bytes);
                    self.staging.granted[i] = bytes;
                } else {
                    match pool.try_grant(bytes - held, total, b, now) {
                        Ok(()) => self.staging.granted[i] = bytes,
                        Err(why) => {
                            // Bid only where room is all that is missing: a request that could
                            // never be granted would keep others out for nothing, and one
                            // outbid defers to the higher bid.
                            if why == Refusal::NoRoom {
                                refused_bid = refused_bid.max(b);
                            }
                            if held == 0 {
                                demand.refused_streams += 1;
                                continue;
                            }
                            // Keep the window it holds.
                            window = (held / frame).max(1) as usize;
                            bytes = held;
                        }
                    }
                }
            }
            used += bytes;
            allowed[i] = window;
            benefit[i] = b;
            cost[i] = bytes;
        }
        for (i, w) in wanted.iter().enumerate().take(self.streams.len()) {
            if !w {
                self.staging.start_at[i] = 0;
            }
        }
        if let Some(pool) = &self.pool {
            // Rule 3: the smallest grant yields to a bid worth far more; never the target of a
            // switch waiting for its cut-over, and not while a hole waits on the staged
            // streams or is being recovered (a window emptied then would cost a fetch).
            let pending = self.pending.map(|p| p.to);
            let busy = self.holding_gap || self.gap_wait.held() || self.recovery.is_some();
            let smallest = (0..self.streams.len())
                .filter(|&i| allowed[i] != 0 && self.staging.granted[i] != 0 && Some(i) != pending && !busy)
                .min_by(|&a, &b| benefit[a].total_cmp(&benefit[b]));
            if let Some(i) = smallest {
                if pool.outbid(benefit[i], now) {
                    pool.yield_to_bid(self.staging.granted[i]);
                    self.staging.granted[i] = 0;
                    used -= cost[i];
                    allowed[i] = 0;
                    demand.refused_streams += 1;
                }
            }
            // What was not staged after all (refused by the budget, yielded) goes back; the
            // fill's stream gave its grant back before the requests.
            for (i, g) in self.staging.granted.iter_mut().enumerate() {
                if allowed[i] == 0 {
                    pool.give_back(*g);
                    *g = 0;
                }
            }
            if refused_bid > 0.0 {
                // Our previous word was withdrawn above, so none of ours outlives our interest.
                self.bid = pool.bid(refused_bid, now);
            }
        }
        demand.granted_bytes = used;
        demand.pool_bytes = self.staging.granted.iter().sum();
        demand.staged_streams = allowed.iter().filter(|&&w| w != 0).count() as u32;
        self.demand = demand;
        for (i, s) in self.streams.iter_mut().enumerate() {
            if i == self.active {
                continue;
            }
            match (allowed[i], s.consumer.role()) {
                (0, Role::Staged) => {
                    s.consumer.set_role(Role::Idle);
                    if let Some(v) = self.verify.as_deref_mut() {
                        v.reset(i); // nothing is verified of a stream not staged
                    }
                    h.notice(&Notice::Unsubscribe { stream: s.id });
                }
                (0, _) => {}
                (w, Role::Idle) => {
                    s.consumer.set_role(Role::Staged);
                    s.consumer.set_window(w);
                    if let Some(v) = self.verify.as_deref_mut() {
                        v.reset(i);
                    }
                    h.notice(&Notice::Subscribe {
                        stream: s.id,
                        locator: s.locator(),
                        from: StartAt::Live,
                        purpose: Purpose::Stage,
                    });
                }
                (w, _) => {
                    if s.consumer.window() != w {
                        s.consumer.set_window(w);
                    }
                }
            }
        }
        self.refresh_verifying();
    }

    /// Trims every staged window to what the active stream has not delivered yet, noting the
    /// positions of the delivered records it trims (`seen`), and counts the bytes kept.
    ///
    /// With verification on (docs/verify.md), each delivered data record trimmed is matched
    /// against what the active stream delivered: verified, a `Mismatch`, or unverified.
    fn trim_staged<H: Handler>(&mut self, h: &mut H) {
        let Engine { streams, active, tracker, flips, seen, max_origins, stats, verify, verifying, .. } =
            self;
        let mut held = 0u64;
        let mut any_staged = false;
        let active_id = streams[*active].id;
        for (i, s) in streams.iter_mut().enumerate() {
            if i == *active || s.consumer.role() != Role::Staged {
                continue;
            }
            any_staged = true;
            let sid = s.id;
            let seen = &mut seen[i * *max_origins..(i + 1) * *max_origins];
            let epoch = s.consumer.epoch();
            let mut v = verify.as_deref_mut();
            if let Ok(mut view) = s.consumer.staged() {
                view.trim_while(|r| {
                    let gone = trimmable(r, tracker, flips);
                    if gone && r.header.kind != KIND_FLIP && r.header.kind != KIND_HEARTBEAT {
                        if let Some(at) = seen.get_mut(r.header.origin as usize) {
                            at.note(r.header.pos, r.header.seq);
                        }
                        if let Some(v) = v.as_deref_mut() {
                            verify_copy(v, stats, h, (*active, active_id), (i, sid), r);
                        }
                    }
                    gone
                });
                s.retained_bytes = view.retained_bytes();
                held += s.retained_bytes;
                if let Some(store) = s.conflation.as_deref_mut() {
                    store.look_staged(epoch, &mut view);
                }
            }
        }
        stats.staged_bytes = held;
        stats.peak_staged_bytes = stats.peak_staged_bytes.max(held);
        *verifying = verify.is_some() && any_staged;
        if let Some(v) = verify.as_deref() {
            stats.map_runs = v.runs_begun();
            stats.map_runs_dropped = v.runs_dropped;
        }
    }

    /// The active stream has been silent for `silence_ns`: report it if a staged candidate holds
    /// events beyond the frontier (and, by policy, fail over to the one furthest ahead).
    fn check_silence<H: Handler>(&mut self, h: &mut H) {
        let silent_ns = self.now_ns.saturating_sub(self.active_heard_ns);
        if silent_ns < self.liveness.silence_ns {
            return;
        }
        let mut best: Option<(usize, u64, u64)> = None; // (index, records ahead, newest ts)
        let Engine { streams, active, tracker, .. } = self;
        for (i, s) in streams.iter_mut().enumerate() {
            if i == *active || s.consumer.role() != Role::Staged || s.retained_bytes == 0 {
                continue;
            }
            let Ok(mut view) = s.consumer.staged() else { continue };
            let (mut ahead, mut newest) = (0u64, 0u64);
            let mut it = view.iter();
            while let Some(r) = it.next() {
                let k = r.header.kind;
                if k != KIND_FLIP
                    && k != KIND_HEARTBEAT
                    && !tracker.is_delivered(r.header.origin, r.header.seq)
                {
                    ahead += 1;
                    newest = newest.max(r.header.ts_ns);
                }
            }
            if ahead > 0 && !best.is_some_and(|(_, a, _)| ahead <= a) {
                best = Some((i, ahead, newest));
            }
        }
        let Some((cand, lead_events, newest)) = best else { return };
        self.silence_reported = true;
        self.stats.silences += 1;
        h.notice(&Notice::ActiveSilent {
            stream: self.streams[self.active].id,
            silent_ns,
            candidate: self.streams[cand].id,
            lead_events,
            lead_ns: newest.saturating_sub(self.last_delivered_ts),
        });
        if self.liveness.failover_on_silence {
            // Counted when made: verification may refuse it (`SwitchBlocked`).
            let refused = self.verify.as_deref().is_some_and(|v| v.blocks(self.active, cand));
            self.stats.failovers += u64::from(!refused);
            let p = PendingSwitch {
                to: cand,
                flip_id: 0,
                cutover_pos: 0,
                not_before_ns: 0,
                resume_pos: 0,
                flip_ts: self.switch_flip_ts,
                cause: SwitchCause::Silence,
            };
            if self.hold_from.is_some() {
                self.deferred = Some(p);
            } else {
                self.switch(p, h);
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

/// The identity tier: where a stream must be read from to bring `id.origin`'s events after
/// `last`, if the evicted record `id` tells: just after the frontier event itself, or at its
/// successor's position (within a stream an origin's events are in seq order, so nothing of
/// the origin after `last` lies before either).
fn logged_start(id: &crate::ring::Identity, last: u64) -> Option<u64> {
    if id.seq == last {
        Some(id.pos.saturating_add(1))
    } else if last.checked_add(1) == Some(id.seq) {
        Some(id.pos)
    } else {
        None
    }
}

/// Remembers a delivery of the active stream (index `active`) for verification. Out of line:
/// only while something is staged, and the steady state's loop keeps its registers.
#[cold]
#[inline(never)]
fn remember(verify: &mut Option<Box<super::verify::Verifier>>, active: usize, rec: &Record<'_>) {
    if let Some(v) = verify.as_deref_mut() {
        v.record(active, rec.header, rec.payload);
    }
}

/// Matches staged record `r` (of stream `(index, id)` `staged`) against the active stream's
/// delivered copy, counts the outcome and reports a mismatch.
fn verify_copy<H: Handler>(
    v: &mut super::verify::Verifier,
    stats: &mut super::Stats,
    h: &mut H,
    (active, active_id): (usize, u32),
    (staged, sid): (usize, u32),
    r: &Record<'_>,
) {
    match v.match_copy(active, staged, r.header, r.payload, (active_id, sid)) {
        super::verify::Matched::Verified => stats.verified += 1,
        super::verify::Matched::Unverified => stats.unverified += 1,
        super::verify::Matched::Mismatch { active_pos } => {
            stats.mismatches += 1;
            h.notice(&Notice::Mismatch {
                stream: sid,
                active: active_id,
                origin: r.header.origin,
                seq: r.header.seq,
                active_pos,
                pos: r.header.pos,
            });
        }
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

/// Bytes of the frame a record of `payload` bytes takes (header, frame header, padding to 8).
#[inline]
fn frame_bytes(payload: usize) -> u64 {
    (crate::event::EVENT_HEADER_SIZE + 8 + payload).next_multiple_of(8) as u64
}

/// The policy sees `rec`, read from the active stream, unless it ignores records
/// (`observes`: [`super::ArmingPolicy::observes_records`], asked once).
#[inline(always)]
fn observe(policy: &mut dyn super::ArmingPolicy, observes: bool, stream: u32, rec: &Record<'_>, now_ns: u64) {
    if observes {
        policy.observe(stream, rec, now_ns);
    }
}

/// What delivering the event `hdr` (of `payload_len` bytes) to the handler leaves behind: the
/// tracker's frontier, the statistics, and the origin's position on the active stream (`seen`,
/// that stream's slice). The verdict that allowed the delivery still holds: nothing between the
/// check and this has access to the tracker.
#[inline(always)]
fn note_delivered(
    tracker: &mut crate::tracker::Tracker,
    stats: &mut super::Stats,
    last_delivered_ts: &mut u64,
    seen: &mut [super::SeenAt],
    hdr: &crate::event::EventHeader,
    payload_len: usize,
) {
    tracker.delivered(hdr.origin, hdr.seq);
    stats.delivered_bytes += payload_len as u64;
    *last_delivered_ts = hdr.ts_ns;
    if let Some(at) = seen.get_mut(hdr.origin as usize) {
        // Delivered: the newest of its origin, so no comparison.
        *at = super::SeenAt { next_pos: hdr.pos.saturating_add(1), seq: hdr.seq };
    }
}

/// Emits the `Switched` notice of a switch in flight, before the first event the target
/// delivers from its own ring in order, and counts the switch. Reads the clock only then (once
/// per switch). Called for every delivered event: the test is inline, one load and a branch,
/// and the notice is out of line.
#[inline(always)]
pub(super) fn emit_switched<H: Handler>(
    in_flight: &mut Option<SwitchInFlight>,
    stats: &mut super::Stats,
    clock: &dyn crate::clock::Clock,
    first_pos: u64,
    h: &mut H,
) {
    if in_flight.is_some() {
        emit_switched_now(in_flight, stats, clock, first_pos, h);
    }
}

#[cold]
#[inline(never)]
fn emit_switched_now<H: Handler>(
    in_flight: &mut Option<SwitchInFlight>,
    stats: &mut super::Stats,
    clock: &dyn crate::clock::Clock,
    first_pos: u64,
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
    h.notice(&Notice::Switched {
        from: f.from_id,
        to: f.to_id,
        flip_id: f.flip_id,
        cause: f.cause,
        seamless,
        stall_ns,
        switch_ns: f.switch_ns,
        verified: f.verified,
        mismatched: f.mismatched,
        matched: f.matched,
        cut_pos: f.cut_pos,
        first_pos,
    });
}
