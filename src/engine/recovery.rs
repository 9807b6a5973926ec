//! Recovering a gap that no staged candidate could fill (gap policy `ReRead`), in bounded
//! rounds: DESIGN.md §2 guarantee 8; docs/engine.md, "Liveness".
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
    /// Where the active stream is read again from (each re-read round, and the read after the
    /// hole closes): fixed when the hole is met, at or before the first record skipped after it.
    reread_at: StartAt,
}

impl Recovery {
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
        let passed = self.fill_from_candidates(origin, to, h);
        if self.tracker.last(origin).is_some_and(|last| last >= to) {
            if self.recovery.is_some_and(|r| r.origin == origin) {
                self.recovery = None;
            }
            return GapOutcome::Continue; // filled: the event after the gap delivers next
        }
        let from = self.tracker.last(origin).map_or(from, |l| l + 1).max(from);
        let stream = self.streams[self.active].id;
        let same = self.recovery.is_some_and(|r| r.origin == origin && r.from_seq == from);
        if !same {
            // A new hole (or progress on the last one).
            self.recovery = None;
            self.policy.gap(stream, to + 1 - from, self.now_ns);
            self.stats.gaps += 1;
            h.notice(&Notice::Gap { stream, origin, from_seq: from, to_seq: to });
            if self.gap_policy == GapPolicy::ReportLost {
                if let Some(f) = self.in_flight.as_mut() {
                    f.gapped = true;
                }
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
                reread_at: self.start_for(self.active, origin, from - 1),
            });
            return self.next_round(h);
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
        let passed = self.fill_from_candidates(r.origin, r.to_seq, h);
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
        match self.liveness.exhausted {
            Exhausted::ReportLost => {
                self.recovery = None;
                self.report_lost(r.origin, from, r.to_seq, h);
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
        }
    }

    fn report_lost<H: Handler>(&mut self, origin: u32, from: u64, to: u64, h: &mut H) {
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
        let s = &mut self.streams[x];
        if s.consumer.role() == crate::ring::Role::Idle {
            s.consumer.set_role(crate::ring::Role::Staged);
        }
        let whole = s.consumer.max_records();
        s.consumer.set_window(whole);
        self.stats.fill_requests += 1;
        let purpose = Purpose::Fill { origin: r.origin, from_seq: r.from_seq, to_seq: r.to_seq };
        h.notice(&Notice::Subscribe { stream: s.id, locator: s.locator(), from, purpose });
    }

    /// Ends any recovery (a switch: the new stream meets the hole afresh if it lacks it). A
    /// stream staged only for its fill is released by the next plan.
    pub(super) fn end_recovery(&mut self) {
        self.recovery = None;
    }

    /// True while a gap's recovery has stopped (`Notice::Stuck`).
    pub fn gap_stuck(&self) -> bool {
        self.recovery.is_some_and(|r| r.stage == Stage::Stuck)
    }

    /// After `Notice::Stuck`: run the recovery ladder again from its first round (the next poll
    /// asks). Returns false when no gap is stuck.
    pub fn retry_gap(&mut self) -> bool {
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
        match self.recovery.as_mut() {
            Some(r) if r.stage == Stage::Stuck => {
                r.give_up = true;
                true
            }
            _ => false,
        }
    }
}
