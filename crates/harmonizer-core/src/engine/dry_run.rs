//! The dry run (issue 17, docs/verify.md): what a switch to a stream would do now, without
//! making it. It answers with the engine's own rules, the ones `switch` and the delivery loop
//! apply: the same target resolution as a flip, the same verification block, the same start of
//! a cold switch, and the same tracker verdicts over the target's window.

use super::verify::PositionPair;
use super::{Engine, RejectReason, StartAt};
use crate::event::{KIND_FLIP, KIND_HEARTBEAT};
use crate::flip::FlipAction;
use crate::ring::Role;
use crate::tracker::Verdict;

/// Why a dry run says a switch would not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DryRunRefusal {
    /// The flip would be rejected (unknown stream, already active, no previous stream).
    Rejected(RejectReason),
    /// Content verification would block it (`MismatchPolicy::BlockSwitch`).
    Blocked,
}

/// What a switch would do now ([`Engine::evaluate_switch`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DryRun {
    /// The target stream (for a SWITCHBACK, the previous stream; when there is none, the
    /// target asked for).
    pub to: u32,
    /// `None` when the switch would be made.
    pub refusal: Option<DryRunRefusal>,
    /// The target is staged: its window is read at once.
    pub staged: bool,
    /// The switch would be seamless as far as the engine can tell now: the target is staged
    /// and its window leaves no hole after the delivery frontier (a lagging target is waited
    /// for, which is a stall, not a hole).
    pub seamless: bool,
    /// The first hole the target's window leaves, `(origin, first, last)` missing seqs: the
    /// same `Gap` the delivery loop would meet first (before any fill from other staged
    /// streams).
    pub first_gap: Option<(u32, u64, u64)>,
    /// Events missing across every origin's first hole.
    pub missing: u64,
    /// Records of the target's window at or behind the frontier: dropped as duplicates.
    pub duplicates: u64,
    /// Records of the target's window beyond the frontier: delivered at once.
    pub ahead: u64,
    /// For a target not staged: where it would be subscribed from (`Purpose::Switch`); `None`
    /// when staged.
    pub start: Option<StartAt>,
    /// The stall the engine expects: 0 when seamless, else the configured cost of a cold
    /// switch (`EngineConfig::cold_switch_cost_ns`: a fetch).
    pub stall_estimate_ns: u64,
    /// Events verified against the target so far (docs/verify.md).
    pub verified: u64,
    /// Events whose copies differed.
    pub mismatched: u64,
    /// The cut-over pair a switch now would record.
    pub matched: Option<PositionPair>,
}

impl Engine {
    /// Resolves a flip's target as applying it does: the previous stream for a SWITCHBACK, else
    /// `target`; an error for an unknown stream or no previous stream.
    pub(super) fn flip_target(&self, action: FlipAction, target: u32) -> Result<usize, RejectReason> {
        match action {
            FlipAction::Switchback => self.previous.ok_or(RejectReason::NoPreviousStream),
            _ => self.index_of(target).ok_or(RejectReason::UnknownStream(target)),
        }
    }

    /// A dry run of a SWITCH (or, with `FlipAction::Switchback`, a SWITCHBACK) to `target`:
    /// what the switch would do if made now, with nothing changed (the target's window is read,
    /// not trimmed). Compare it with the `Switched` notice (and any `Gap`) of the switch that
    /// follows.
    pub fn evaluate_switch(&mut self, action: FlipAction, target: u32) -> DryRun {
        let mut d = self.blank_dry_run(target);
        let to = match self.flip_target(action, target) {
            Ok(i) if i == self.active => Err(RejectReason::AlreadyActive(self.streams[i].id)),
            x => x,
        };
        match to {
            Ok(i) => self.evaluate_index(i, d, true),
            Err(why) => {
                d.refusal = Some(DryRunRefusal::Rejected(why));
                d
            }
        }
    }

    /// With `EngineConfig::dry_run_switches`: the dry run of the switch about to be made to
    /// stream index `to`, as a notice (a rollback is never refused, so it is not judged for a
    /// block).
    #[cold]
    #[inline(never)]
    pub(super) fn announce_dry_run<H: super::Handler>(
        &mut self,
        to: usize,
        cause: super::SwitchCause,
        h: &mut H,
    ) {
        let blank = self.blank_dry_run(self.streams[to].id);
        let d = self.evaluate_index(to, blank, cause != super::SwitchCause::Rollback);
        h.notice(&super::Notice::DryRun { report: &d });
    }

    /// A dry run that has found nothing yet.
    pub(super) fn blank_dry_run(&self, to: u32) -> DryRun {
        DryRun {
            to,
            refusal: None,
            staged: false,
            seamless: false,
            first_gap: None,
            missing: 0,
            duplicates: 0,
            ahead: 0,
            start: None,
            stall_estimate_ns: self.cold_cost_ns,
            verified: 0,
            mismatched: 0,
            matched: None,
        }
    }

    /// The dry run of a switch to stream index `to` (not the active one), filling `d`; the
    /// verification block judged when `judge_block`.
    pub(super) fn evaluate_index(&mut self, to: usize, mut d: DryRun, judge_block: bool) -> DryRun {
        d.to = self.streams[to].id;
        if let Some(v) = self.verify.as_deref() {
            let c = v.counts(self.active, to);
            (d.verified, d.mismatched, d.matched) = (c.verified, c.mismatched, c.last);
            if judge_block && v.blocks(self.active, to) {
                d.refusal = Some(DryRunRefusal::Blocked);
            }
        }
        d.staged = self.streams[to].consumer.role() == Role::Staged;
        if !d.staged {
            d.start = Some(self.start_from_seen(to));
            return d;
        }
        // The delivery loop's verdicts over the window: the tracker's, with each origin's
        // frontier moved as delivering the window would move it (followed for the first 64
        // origins; others are judged against the tracker alone).
        let Engine { streams, tracker, .. } = self;
        let strict = tracker.mode() == crate::tracker::SeqMode::Strict;
        // Per origin, the last seq the window delivered (None: as the tracker says).
        let mut last: [Option<u64>; 64] = [None; 64];
        let mut holed = [false; 64];
        if let Ok(mut view) = streams[to].consumer.staged() {
            let mut it = view.iter();
            while let Some(r) = it.next() {
                let h = r.header;
                if h.kind == KIND_FLIP || h.kind == KIND_HEARTBEAT {
                    continue;
                }
                let o = h.origin as usize;
                let verdict = match last.get(o).copied().flatten() {
                    Some(l) if h.seq <= l => Verdict::Duplicate,
                    // `h.seq > l`, so `l + 1` does not overflow.
                    Some(l) if h.seq == l + 1 || !strict => Verdict::Deliver,
                    Some(l) => Verdict::Gap { expected: l + 1 },
                    None => tracker.check(h.origin, h.seq),
                };
                match verdict {
                    Verdict::Duplicate => d.duplicates += 1,
                    Verdict::Deliver | Verdict::Gap { .. } => {
                        d.ahead += 1;
                        if let Verdict::Gap { expected } = verdict {
                            if !holed.get(o).copied().unwrap_or(false) {
                                if let Some(x) = holed.get_mut(o) {
                                    *x = true;
                                }
                                d.missing += h.seq - expected;
                                if d.first_gap.is_none() {
                                    d.first_gap = Some((h.origin, expected, h.seq - 1));
                                }
                            }
                        }
                        if let Some(l) = last.get_mut(o) {
                            *l = Some(h.seq);
                        }
                    }
                    Verdict::UnknownOrigin => {}
                }
            }
        }
        d.seamless = d.first_gap.is_none() && d.refusal.is_none();
        if d.seamless {
            d.stall_estimate_ns = 0;
        }
        d
    }
}
