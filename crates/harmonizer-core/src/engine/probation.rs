//! Automatic rollback (issue 17, docs/verify.md, "Rollback"): after a switch, the new stream is
//! on probation for a while. The old stream stays staged (`keep_previous`), so the engine keeps
//! comparing the two; if the new one shows an anomaly (copies that differ from the old stream's,
//! holes, silence, or falling behind the old stream), the engine reports it and, by policy,
//! switches back, with the usual switch machinery: exactly once, from the exact position after
//! the delivery frontier.

use super::{Engine, Handler, Notice, PendingSwitch, SwitchCause};
use crate::event::{KIND_FLIP, KIND_HEARTBEAT};
use crate::ring::Role;

/// The probation after a switch ([`EngineConfig::probation`](super::EngineConfig::probation)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probation {
    /// Clock nanoseconds the new stream is watched after a switch; 0 (the default): off.
    pub duration_ns: u64,
    /// An anomaly when more than this many of the new stream's events differ from the old
    /// stream's copies (needs content verification, `verify_records`). Default 0: any.
    pub max_mismatches: u64,
    /// An anomaly when the new stream shows more than this many holes (each counted once,
    /// whether a staged stream filled it or not). Default 0: any.
    pub max_holes: u64,
    /// An anomaly when the new stream delivers nothing for this long; 0 (the default): not
    /// watched.
    pub silence_ns: u64,
    /// An anomaly when the old stream, staged, holds an event not yet delivered whose
    /// upstream time (`ts_ns`) is this far ahead of the last one delivered: the new stream
    /// lags. 0 (the default): not watched.
    pub max_lag_ns: u64,
    /// On an anomaly, switch back (`true`, the default) or only report it.
    pub roll_back: bool,
}

impl Default for Probation {
    fn default() -> Self {
        Probation {
            duration_ns: 0,
            max_mismatches: 0,
            max_holes: 0,
            silence_ns: 0,
            max_lag_ns: 0,
            roll_back: true,
        }
    }
}

/// What the new stream did wrong during its probation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anomaly {
    /// This many of its events differed from the old stream's copies.
    Mismatches(u64),
    /// It showed this many holes.
    Holes(u64),
    /// It delivered nothing for this many clock nanoseconds.
    Silence(u64),
    /// The old stream held an event this many upstream nanoseconds ahead of the last
    /// delivered.
    Lag(u64),
}

impl core::fmt::Display for Anomaly {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Anomaly::Mismatches(n) => write!(f, "{n} events differed from the previous stream's copies"),
            Anomaly::Holes(n) => write!(f, "{n} holes"),
            Anomaly::Silence(ns) => write!(f, "silent for {ns} ns"),
            Anomaly::Lag(ns) => write!(f, "{ns} ns behind the previous stream"),
        }
    }
}

/// A stream on probation.
#[derive(Clone, Copy, Debug)]
pub(super) struct OnProbation {
    /// The stream switched from: where a rollback goes.
    pub(super) from: usize,
    /// The stream switched to, active.
    pub(super) to: usize,
    /// Clock ns the probation ends.
    pub(super) until_ns: u64,
    /// Holes met on `to` since the switch.
    pub(super) holes: u64,
    /// The last hole counted, `(origin, last missing seq)`: a hole met again after a partial
    /// fill keeps its end, so it is counted once.
    pub(super) last_hole: Option<(u32, u64)>,
}

impl Engine {
    /// Puts the stream just switched to on probation (not after a rollback, whose target is
    /// the stream the probation just judged sound).
    pub(super) fn begin_probation(&mut self, from: usize, to: usize, cause: SwitchCause) {
        self.on_probation =
            (self.probation.duration_ns != 0 && cause != SwitchCause::Rollback).then(|| OnProbation {
                from,
                to,
                until_ns: self.now_ns.saturating_add(self.probation.duration_ns),
                holes: 0,
                last_hole: None,
            });
    }

    /// Counts the hole `(origin, ..= to)` met on the active stream if it is on probation (each
    /// hole once), and says whether it fails the probation with a rollback to come.
    pub(super) fn probation_hole(&mut self, origin: u32, to: u64) -> bool {
        let (now, active, cfg) = (self.now_ns, self.active, self.probation);
        let Some(p) = self.on_probation.as_mut() else { return false };
        if p.to != active || now >= p.until_ns || p.last_hole == Some((origin, to)) {
            return false;
        }
        p.last_hole = Some((origin, to));
        p.holes += 1;
        p.holes > cfg.max_holes && cfg.roll_back
    }

    /// Once per poll while a stream is on probation: ends it when its time is up or another
    /// switch came, else looks for an anomaly and, by policy, rolls back.
    #[cold]
    #[inline(never)]
    pub(super) fn check_probation<H: Handler>(&mut self, h: &mut H) {
        let Some(p) = self.on_probation else { return };
        if p.to != self.active || self.now_ns >= p.until_ns {
            self.on_probation = None;
            return;
        }
        let cfg = self.probation;
        let mismatched = self.verify.as_deref().map_or(0, |v| v.counts(p.to, p.from).mismatched);
        let silent = self.now_ns.saturating_sub(self.active_heard_ns);
        let anomaly = if mismatched > cfg.max_mismatches {
            Some(Anomaly::Mismatches(mismatched))
        } else if p.holes > cfg.max_holes {
            Some(Anomaly::Holes(p.holes))
        } else if cfg.silence_ns != 0 && silent >= cfg.silence_ns {
            Some(Anomaly::Silence(silent))
        } else if cfg.max_lag_ns != 0 {
            self.lead_of(p.from).filter(|&lead| lead > cfg.max_lag_ns).map(Anomaly::Lag)
        } else {
            None
        };
        let Some(anomaly) = anomaly else { return };
        self.on_probation = None;
        self.stats.probation_failures += 1;
        h.notice(&Notice::ProbationFailed {
            stream: self.streams[p.to].id,
            previous: self.streams[p.from].id,
            anomaly,
            rolling_back: cfg.roll_back,
        });
        if !cfg.roll_back {
            return;
        }
        self.stats.rollbacks += 1;
        let back = PendingSwitch {
            to: p.from,
            flip_id: 0,
            cutover_pos: 0,
            not_before_ns: 0,
            resume_pos: 0,
            flip_ts: self.switch_flip_ts,
            cause: SwitchCause::Rollback,
        };
        if self.hold_from.is_some() {
            self.deferred = Some(back); // records lent in this call stay on the active ring
        } else {
            self.switch(back, h);
        }
    }

    /// Upstream ns by which staged stream `i` holds an undelivered event ahead of the last one
    /// delivered; `None` when it is not staged or holds none.
    fn lead_of(&mut self, i: usize) -> Option<u64> {
        let Engine { streams, tracker, last_delivered_ts, .. } = self;
        let s = &mut streams[i];
        if s.consumer.role() != Role::Staged {
            return None;
        }
        let mut view = s.consumer.staged().ok()?;
        let mut newest = None;
        let mut it = view.iter();
        while let Some(r) = it.next() {
            let k = r.header.kind;
            if k != KIND_FLIP && k != KIND_HEARTBEAT && !tracker.is_delivered(r.header.origin, r.header.seq) {
                newest = newest.max(Some(r.header.ts_ns));
            }
        }
        newest.map(|t| t.saturating_sub(*last_delivered_ts))
    }
}
