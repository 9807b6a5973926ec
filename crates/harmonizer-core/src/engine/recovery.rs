//! Recovering a gap that no staged candidate could fill (gap policy `ReRead`), in bounded
//! rounds: docs/design.md §2 guarantee 8; docs/engine.md, "Liveness".
//!
//! Before any policy, a hole **waits** for a lagging candidate (`Liveness::gap_wait_ns`,
//! issue 19 defect 7): while a staged stream has not yet shown the origin past the hole, it
//! may still bring the events, so delivery holds at the gap event (left unread, as for an
//! awaited fill) and every poll meets it again and offers it to the candidates anew. The wait
//! ends when the hole is filled (`gaps_filled_by_wait`, no `Gap` reported), when every staged
//! stream shows the origin past the hole without it, or after `gap_wait_ns` from when the hole
//! was met; then the gap policy runs as below.
//!
//! The ladder, for one hole `(origin, from_seq ..= to_seq)` met on the active stream:
//! 1. **Re-read** the active stream from the exact position (`Purpose::ReRead`), up to
//!    `Liveness::reread_rounds` times. A round fails when the re-read comes back with the same
//!    hole, or has not begun (or not come back) within `Liveness::round_timeout_ns`.
//! 2. **Fill from another stream** (`Purpose::Fill`), each other stream in turn, staged for the
//!    purpose with its whole ring and fed from the exact position where the engine knows it.
//!    A round fails when that stream shows the origin past the hole without it, or times out;
//!    the same bound of rounds per stream.
//! 3. **Exhausted**: `Notice::Stuck` and hold (the application may retry or give up), or
//!    `Notice::Lost` with the exact range and go on, per `Liveness::exhausted`.
//!
//! Every staged candidate is offered the hole at each step and at every poll while it lasts,
//! so one that catches up late still fills it. A recovery ends when the origin's frontier
//! passes the hole, whoever brought the events; progress (a partial fill) starts a new one.
//!
//! Where the active stream stands during a recovery: after a re-read is asked, its records
//! are skipped (`skipped_for_reread`) until its positions go back; met again at the gap event
//! while a fill is awaited or the engine is stuck, it is left unread there (`holding_gap`) and
//! the poll stops. A hole resolved while the stream was being skipped asks for one more read
//! of it (`Purpose::Resume`) from before the hole.

use super::{Engine, Exhausted, GapPolicy, Handler, Notice, Purpose, StartAt};
use crate::ring::Role;

/// What the poll does after a gap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum GapOutcome {
    /// Read on (the event after the gap delivers next, or the stream is skipped).
    Continue,
    /// Stop reading: the gap event stays unread until the next poll.
    Hold,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Re-reading the active stream.
    ReRead,
    /// Asking the stream at this index.
    Fill(usize),
    /// Every stream came back without the events.
    Stuck,
}

/// One hole being recovered.
#[derive(Clone, Copy, Debug)]
pub(super) struct Recovery {
    origin: u32,
    from_seq: u64,
    to_seq: u64,
    stage: Stage,
    /// Rounds asked in this stage (of this stream).
    rounds: u32,
    /// Rounds asked in all stages.
    total_rounds: u32,
    round_started_ns: u64,
    /// Stream indices asked to fill, one bit each.
    tried: u32,
    /// The application gave up on the hole (`Engine::give_up_gap`): report it lost.
    give_up: bool,
    /// The smallest seq past the frontier some stream has shown during the recovery: the part
    /// of the hole before it is what no stream asked could bring.
    offered: u64,
    /// Where the active stream is read again from (each re-read round, and the read after the
    /// hole closes): fixed when the hole is met, at or before the first record skipped after it.
    reread_at: StartAt,
}

/// A hole held while a lagging staged stream may still fill it (`Liveness::gap_wait_ns`), or
/// [`GapWait::NONE`]. Not an `Option`: optimised code may compare a `None`'s fields before its
/// tag, and the engine is built on the stack, so valgrind (ffi-tests) reports the branch as
/// depending on uninitialised bytes; every field here is always written.
#[derive(Clone, Copy, Debug)]
pub(super) struct GapWait {
    /// A hole is held.
    held: bool,
    origin: u32,
    /// The hole's last seq: the gap event left unread is the origin's `to + 1`. A partial fill
    /// moves the hole's start, not this.
    to: u64,
    /// When the hole was met (engine clock): the wait is bounded from here.
    since_ns: u64,
}

impl GapWait {
    pub(super) const NONE: GapWait = GapWait { held: false, origin: 0, to: 0, since_ns: 0 };

    /// A hole is held.
    pub(super) fn held(&self) -> bool {
        self.held
    }

    /// When the wait began (engine clock), if a hole is held.
    pub(super) fn since_ns(&self) -> Option<u64> {
        self.held.then_some(self.since_ns)
    }

    /// Held for the hole of `origin` that ends at `to`.
    fn is(&self, origin: u32, to: u64) -> bool {
        self.held && self.origin == origin && self.to == to
    }
}

/// A `Purpose::Resume` read of the active stream asked and not begun.
#[derive(Clone, Copy, Debug)]
pub(super) struct ResumeWait {
    from: StartAt,
    origin: u32,
    rounds: u32,
    started_ns: u64,
    /// Every round went unanswered and `Notice::Stuck` was sent (`Exhausted::Stuck`).
    stuck: bool,
    /// The application gave up (`Engine::give_up_gap`).
    give_up: bool,
}

impl ResumeWait {
    /// When its round was asked (engine clock).
    pub(super) fn started(&self) -> u64 {
        self.started_ns
    }
}

impl Recovery {
    /// When the current round began (engine clock).
    pub(super) fn round_started(&self) -> u64 {
        self.round_started_ns
    }

    /// The stream staged to fill the hole, if that is the stage.
    pub(super) fn fill_stream(&self) -> Option<usize> {
        match self.stage {
            Stage::Fill(x) => Some(x),
            _ => None,
        }
    }

    /// The active stream's positions went back: the asked re-read has begun, and its round is
    /// timed from here.
    pub(super) fn reread_began(&mut self, now_ns: u64) {
        if self.stage == Stage::ReRead {
            self.round_started_ns = now_ns;
        }
    }
}

impl Engine {
    /// A gap before the active stream's next record (`(origin, to + 1)`, left unread): fill it
    /// from staged candidates, else apply the gap policy and the recovery ladder.
    pub(super) fn on_gap<H: Handler>(&mut self, origin: u32, from: u64, to: u64, h: &mut H) -> GapOutcome {
        let waited = self.gap_wait.is(origin, to);
        if self.gap_told != Some((origin, from)) {
            // The policy hears of each gap once, before any fill (`ArmingPolicy::gap`); not
            // again for what is left of a hole being waited on after a partial fill.
            self.gap_told = Some((origin, from));
            if !waited {
                self.policy.gap(self.streams[self.active].id, to + 1 - from, self.now_ns);
            }
        }
        if self.on_probation.is_some() && self.probation_hole(origin, to) {
            // The stream on probation failed it: read no further from it; the rollback comes
            // at the end of this poll (`check_probation`).
            return GapOutcome::Hold;
        }
        let (passed, offered) = self.fill_from_candidates(origin, to, h);
        if let Some(r) = self.recovery.as_mut() {
            r.offered = r.offered.min(offered);
        }
        if self.tracker.last(origin).is_some_and(|last| last >= to) {
            if self.recovery.is_some_and(|r| r.origin == origin) {
                self.recovery = None;
            }
            if waited {
                self.gap_wait = GapWait::NONE;
                self.stats.gaps_filled_by_wait += 1;
            }
            return GapOutcome::Continue; // filled: the event after the gap delivers next
        }
        let from = self.tracker.last(origin).map_or(from, |l| l + 1).max(from);
        if self.recovery.is_none() && self.try_conflate(origin, from, to, h) {
            if waited {
                self.gap_wait = GapWait::NONE;
            }
            return GapOutcome::Continue; // conflated: the event after the gap delivers next
        }
        let stream = self.streams[self.active].id;
        let same = self.recovery.is_some_and(|r| r.origin == origin && r.from_seq == from);
        if !same {
            // A new hole (or progress on the last one).
            self.recovery = None;
            if self.wait_for_lagging(origin, to, passed) {
                return GapOutcome::Hold;
            }
            self.stats.gaps += 1;
            h.notice(&Notice::Gap { stream, origin, from_seq: from, to_seq: to });
            // A hole met while a switch is in flight is the switch's, not the upstream's: the
            // target's window did not reach back (docs/design.md §5: a partial cold switch, never a
            // loss). It is recovered like any other; only an upstream hole is given up at once.
            if self.gap_policy == GapPolicy::ReportLost && self.in_flight.is_none() {
                self.report_lost(origin, from, to, h);
                return GapOutcome::Continue;
            }
            self.recovery = Some(Recovery {
                origin,
                from_seq: from,
                to_seq: to,
                stage: Stage::ReRead,
                rounds: 0,
                total_rounds: 0,
                round_started_ns: self.now_ns,
                tried: 0,
                give_up: false,
                offered,
                reread_at: self.start_for(self.active, origin, from - 1),
            });
            return self.next_round(h);
        }
        if let Some(r) = self.recovery.as_mut() {
            // The same hole, met at an earlier event after it (a re-read brought one that had
            // been dropped or skipped): the hole is that much smaller.
            r.to_seq = r.to_seq.min(to);
        }
        match self.recovery.map(|r| r.stage) {
            // The re-read came back with the same hole.
            Some(Stage::ReRead) => self.next_round(h),
            // The fill stream shows the origin past the hole without it.
            Some(Stage::Fill(x)) if passed & (1 << x) != 0 => self.next_round(h),
            // Awaiting the fill, or stuck: stop at the gap.
            _ => GapOutcome::Hold,
        }
    }

    /// Whether to hold at the gap event a while longer (`Liveness::gap_wait_ns`): some staged
    /// stream has not shown `origin` past the hole (not in `passed`: it lags, and may still
    /// bring the events), and the wait, timed from when the hole was met, has not run out.
    /// Each poll meets the gap event again, so the candidates are offered the hole anew.
    fn wait_for_lagging(&mut self, origin: u32, to: u64, passed: u32) -> bool {
        debug_assert!(self.holding_gap, "the gap event is left unread");
        let since = if self.gap_wait.is(origin, to) { self.gap_wait.since_ns } else { self.now_ns };
        self.gap_wait = GapWait::NONE;
        if self.now_ns.saturating_sub(since) >= self.liveness.gap_wait_ns {
            return false; // also when `gap_wait_ns` is 0
        }
        let active = self.active;
        let lagging = self
            .streams
            .iter()
            .enumerate()
            .any(|(i, s)| i != active && s.consumer.role() == Role::Staged && passed & (1 << i) == 0);
        if lagging {
            self.gap_wait = GapWait { held: true, origin, to, since_ns: since };
        }
        lagging
    }

    /// At the start of a poll with a recovery under way: see whether the hole closed (or a
    /// staged candidate closes it now), honour the application's word, and time the round.
    pub(super) fn recovery_tick<H: Handler>(&mut self, h: &mut H) {
        let Some(r) = self.recovery else { return };
        if r.give_up {
            let from = self.tracker.last(r.origin).map_or(r.from_seq, |l| l + 1).max(r.from_seq);
            self.recovery = None;
            if from <= r.to_seq {
                self.report_lost(r.origin, from, r.to_seq, h);
            }
            self.resolved(&r, h);
            return;
        }
        let (passed, offered) = self.fill_from_candidates(r.origin, r.to_seq, h);
        if let Some(rec) = self.recovery.as_mut() {
            rec.offered = rec.offered.min(offered);
        }
        if self.tracker.last(r.origin).is_some_and(|last| last >= r.to_seq) {
            self.recovery = None;
            self.resolved(&r, h);
            return;
        }
        let expired = self.now_ns.saturating_sub(r.round_started_ns) >= self.liveness.round_timeout_ns;
        let failed = match r.stage {
            Stage::ReRead => expired,
            Stage::Fill(x) => expired || passed & (1 << x) != 0,
            Stage::Stuck => false,
        };
        if failed {
            self.next_round(h);
        }
    }

    /// The current round failed (or none was asked yet): ask again, or climb the ladder.
    fn next_round<H: Handler>(&mut self, h: &mut H) -> GapOutcome {
        let Some(r) = self.recovery.as_mut() else { return GapOutcome::Continue };
        if r.rounds >= self.liveness.reread_rounds && r.stage != Stage::Stuck {
            return self.escalate(h);
        }
        r.rounds += 1;
        r.total_rounds += 1;
        r.round_started_ns = self.now_ns;
        let r = *r;
        match r.stage {
            Stage::ReRead => {
                let purpose = Purpose::ReRead { origin: r.origin, from_seq: r.from_seq, to_seq: r.to_seq };
                self.ask_read_active(r.reread_at, purpose, h);
                GapOutcome::Continue
            }
            Stage::Fill(x) => {
                self.ask_fill(x, &r, h);
                self.waiting()
            }
            Stage::Stuck => self.waiting(),
        }
    }

    /// Every round of the current stage failed: the next stream, or the end of the ladder.
    fn escalate<H: Handler>(&mut self, h: &mut H) -> GapOutcome {
        let n = self.streams.len();
        let active = self.active;
        let Some(r) = self.recovery.as_mut() else { return GapOutcome::Continue };
        if self.liveness.fill_from_others {
            if let Some(x) = (0..n).find(|&i| i != active && r.tried & (1 << i) == 0) {
                r.tried |= 1 << x;
                r.stage = Stage::Fill(x);
                r.rounds = 0;
                return self.next_round(h);
            }
        }
        let r = *r;
        let from = self.tracker.last(r.origin).map_or(r.from_seq, |l| l + 1).max(r.from_seq);
        let exhausted = match self.gap_policy {
            GapPolicy::ReportLost => Exhausted::ReportLost,
            GapPolicy::ReRead => self.liveness.exhausted,
        };
        match exhausted {
            Exhausted::ReportLost => {
                // Only what no stream offered: events from `offered` on exist somewhere, and
                // the fill right after the loss (or a new recovery) brings them.
                let lost_to = r.to_seq.min(r.offered.saturating_sub(1));
                self.recovery = None;
                if from <= lost_to {
                    self.report_lost(r.origin, from, lost_to, h);
                }
                if lost_to < r.to_seq {
                    // If not all of the rest is here yet, the gap is met again and recovered
                    // afresh, from the exact positions now known.
                    self.fill_from_candidates(r.origin, r.to_seq, h);
                }
                self.resolved(&r, h);
                GapOutcome::Continue
            }
            Exhausted::Stuck => {
                if let Some(rec) = self.recovery.as_mut() {
                    rec.stage = Stage::Stuck;
                }
                self.stats.stuck += 1;
                h.notice(&Notice::Stuck {
                    stream: self.streams[active].id,
                    origin: r.origin,
                    from_seq: from,
                    to_seq: r.to_seq,
                    rounds: r.total_rounds,
                });
                self.waiting()
            }
        }
    }

    /// Waiting for a fill or for the application: hold at the gap event if the active stream
    /// stands there, else keep skipping it.
    fn waiting(&self) -> GapOutcome {
        if self.holding_gap {
            GapOutcome::Hold
        } else {
            GapOutcome::Continue
        }
    }

    /// The hole closed (filled or reported lost). If the active stream was skipped past it,
    /// read it again from before the hole; if it stands at the gap event, read on.
    fn resolved<H: Handler>(&mut self, r: &Recovery, h: &mut H) {
        if self.rereading && !self.holding_gap {
            self.ask_read_active(r.reread_at, Purpose::Resume { origin: r.origin }, h);
            self.resume_wait = Some(ResumeWait {
                from: r.reread_at,
                origin: r.origin,
                rounds: 1,
                started_ns: self.now_ns,
                stuck: false,
                give_up: false,
            });
        }
    }

    /// At the start of a poll while a `Resume` read is awaited: ask again when a round times
    /// out. When `reread_rounds` went unanswered, what was skipped is known exactly (per origin,
    /// `skipped_max`): it is reported `Lost` (gap policy `ReportLost` or
    /// `Exhausted::ReportLost`) and reading goes on, or `Stuck` once and the skipping goes on
    /// until the application retries or gives up. The wait is bounded and never silent.
    pub(super) fn resume_tick<H: Handler>(&mut self, h: &mut H) {
        let Some(w) = self.resume_wait else { return };
        if !self.rereading {
            self.resume_wait = None;
            return;
        }
        if w.give_up {
            self.give_up_skipped(h);
            return;
        }
        if w.stuck || self.now_ns.saturating_sub(w.started_ns) < self.liveness.round_timeout_ns {
            return;
        }
        if w.rounds < self.liveness.reread_rounds {
            self.ask_read_active(w.from, Purpose::Resume { origin: w.origin }, h);
            self.resume_wait = Some(ResumeWait { rounds: w.rounds + 1, started_ns: self.now_ns, ..w });
            return;
        }
        let lose =
            self.gap_policy == GapPolicy::ReportLost || self.liveness.exhausted == Exhausted::ReportLost;
        if lose {
            self.give_up_skipped(h);
        } else {
            self.resume_wait = Some(ResumeWait { stuck: true, ..w });
            self.stats.stuck += 1;
            let last = self.tracker.last(w.origin).unwrap_or(0);
            let skipped = self.skipped_max.get(w.origin as usize).copied().unwrap_or(0);
            h.notice(&Notice::Stuck {
                stream: self.streams[self.active].id,
                origin: w.origin,
                from_seq: last.saturating_add(1),
                to_seq: skipped.saturating_sub(1).max(last.saturating_add(1)),
                rounds: w.rounds,
            });
        }
    }

    /// Stops skipping the active stream and reports what was skipped, origin by origin, as a
    /// `Gap` and `Lost` with exact ranges.
    fn give_up_skipped<H: Handler>(&mut self, h: &mut H) {
        self.resume_wait = None;
        self.rereading = false;
        self.reread_skip_next = false;
        let stream = self.streams[self.active].id;
        for o in 0..self.skipped_max.len() {
            let end = core::mem::take(&mut self.skipped_max[o]);
            let from = self.tracker.last(o as u32).map_or(0, |l| l + 1);
            if end > from {
                self.stats.gaps += 1;
                h.notice(&Notice::Gap { stream, origin: o as u32, from_seq: from, to_seq: end - 1 });
                self.report_lost(o as u32, from, end - 1, h);
            }
        }
    }

    fn report_lost<H: Handler>(&mut self, origin: u32, from: u64, to: u64, h: &mut H) {
        // A switch waiting for its target to deliver in order: the wait ends with the loss
        // (delivery is contiguous again after it), so its notice comes now, not seamless.
        if let Some(f) = self.in_flight.as_mut() {
            f.gapped = true;
            super::poll::emit_switched(&mut self.in_flight, &mut self.stats, &*self.clock, 0, h);
        }
        self.stats.lost += to - from + 1;
        h.notice(&Notice::Lost { origin, from_seq: from, to_seq: to });
        self.tracker.advance(origin, to);
    }

    /// Asks for the active stream again from `from`, and skips its records until its positions
    /// go back.
    fn ask_read_active<H: Handler>(&mut self, from: StartAt, purpose: Purpose, h: &mut H) {
        if let Some(f) = self.in_flight.as_mut() {
            f.gapped = true; // a re-read is needed: not seamless, and the stall goes on
        }
        self.resume_floor = 0; // the re-read asks for these events: do not drop them
        self.stats.rereads += 1;
        let s = &self.streams[self.active];
        h.notice(&Notice::Subscribe { stream: s.id, locator: s.locator(), from, purpose });
        if !self.rereading {
            self.skipped_max.fill(0); // a new skip: O(max_origins), once per re-read asked
        }
        self.rereading = true;
        if core::mem::take(&mut self.holding_gap) {
            // The gap event is the next record. Skip it too (it comes again with the re-read):
            // only positions going back below it mark the re-read's start. Without this, an
            // event at the same position (a re-read that still lacks the hole) would end the
            // re-read at once.
            self.reread_skip_next = true;
        }
    }

    /// Asks stream `x` for the hole and stages it, with its whole ring, for the fill.
    fn ask_fill<H: Handler>(&mut self, x: usize, r: &Recovery, h: &mut H) {
        let last = self.tracker.last(r.origin).unwrap_or(0);
        let from = self.start_for(x, r.origin, last);
        if let Some(f) = self.in_flight.as_mut() {
            f.gapped = true;
        }
        if self.streams[x].consumer.role() == Role::Idle {
            self.streams[x].consumer.set_role(Role::Staged);
            if let Some(v) = self.verify.as_deref_mut() {
                v.reset(x); // staged anew: verified afresh
            }
        }
        let s = &mut self.streams[x];
        let whole = s.consumer.max_records();
        s.consumer.set_window(whole);
        // What the window holds now lies past the hole (it did not fill it): it comes again
        // with the feed asked for, which starts before it. Dropping it leaves in the window only
        // what was fed since, so a record past the hole is evidence that the stream lacks it
        // (but for a record the producer pushed before the application acted on this notice:
        // then the round fails early and is asked again, within the bound).
        if let Ok(mut view) = s.consumer.staged() {
            view.trim_while(|_| true);
        }
        self.stats.fill_requests += 1;
        let purpose = Purpose::Fill { origin: r.origin, from_seq: r.from_seq, to_seq: r.to_seq };
        h.notice(&Notice::Subscribe { stream: s.id, locator: s.locator(), from, purpose });
    }

    /// Ends any recovery or wait for a hole (a switch: the new stream meets the hole afresh if
    /// it lacks it). A stream staged only for its fill is released by the next plan.
    pub(super) fn end_recovery(&mut self) {
        self.recovery = None;
        self.gap_wait = GapWait::NONE;
    }

    /// True while a gap's recovery has stopped (`Notice::Stuck`).
    pub fn gap_stuck(&self) -> bool {
        self.recovery.is_some_and(|r| r.stage == Stage::Stuck) || self.resume_wait.is_some_and(|w| w.stuck)
    }

    /// After `Notice::Stuck`: run the recovery ladder again from its first round (the next poll
    /// asks). Returns false when no gap is stuck.
    pub fn retry_gap(&mut self) -> bool {
        if let Some(w) = self.resume_wait.as_mut().filter(|w| w.stuck) {
            // Asked again at the next poll, with a full set of rounds.
            *w = ResumeWait { stuck: false, rounds: 0, started_ns: 0, ..*w };
            return true;
        }
        match self.recovery.as_mut() {
            Some(r) if r.stage == Stage::Stuck => {
                *r = Recovery {
                    stage: Stage::ReRead,
                    rounds: 0,
                    tried: 0,
                    round_started_ns: 0, // expired: the next poll asks at once
                    ..*r
                };
                true
            }
            _ => false,
        }
    }

    /// After `Notice::Stuck`: give the hole up; the next poll reports it `Lost` with its exact
    /// range and delivery goes on. Returns false when no gap is stuck.
    pub fn give_up_gap(&mut self) -> bool {
        if let Some(w) = self.resume_wait.as_mut().filter(|w| w.stuck) {
            w.give_up = true;
            return true;
        }
        match self.recovery.as_mut() {
            Some(r) if r.stage == Stage::Stuck => {
                r.give_up = true;
                true
            }
            _ => false,
        }
    }
}
