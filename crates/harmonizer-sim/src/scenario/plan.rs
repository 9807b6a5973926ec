//! The plan: what happens when (incidents, bursts, foreign flips), before any record exists.
//! Everything here depends only on the seed and the incident, burst and flip parameters.

use harmonizer_core::flip::{in_cohort, FlipAction, IdList, Selector};

use super::rng::{Draws, Rng};
use super::{Cause, Episode, EpisodeKind, ScenarioParams, NO_STREAM};

/// A flip to insert at logical time `t`; `key` identifies it until it gets its flip id.
pub(super) struct PlannedFlip {
    pub t: u64,
    pub key: u32,
    pub action: FlipAction,
    pub target: u32,
    pub selector: Selector,
    pub expected_in_ns: u64,
}

/// A ground-truth switch caused by the flip `key`.
pub(super) struct PlannedSwitch {
    pub at: u64,
    pub key: u32,
    pub from: u32,
    pub to: u32,
    pub cause: Cause,
    pub signal: u64,
}

/// A trapezoid in time: 0 before `t0`, rising linearly to 1 at `t1`, 1 until `t2`, falling
/// linearly to 0 at `t3`, 0 after.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    pub t0: u64,
    pub t1: u64,
    pub t2: u64,
    pub t3: u64,
}

impl Shape {
    /// The level at `t`, in `[0, 1]`.
    #[inline]
    pub fn level(&self, t: u64) -> f64 {
        if t < self.t0 || t > self.t3 {
            0.0
        } else if t < self.t1 {
            (t - self.t0) as f64 / (self.t1 - self.t0) as f64
        } else if t <= self.t2 {
            1.0
        } else {
            (self.t3 - t) as f64 / (self.t3 - self.t2) as f64
        }
    }
}

/// A stream impairment at its peak, scaled by its shape.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Impair {
    pub stream: u32,
    pub shape: Shape,
    pub lag_ns: f64,
    pub err: f64,
    pub drop: f64,
}

/// A rate multiplier: `1 + (factor - 1) × shape`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Surge {
    pub shape: Shape,
    pub factor: f64,
}

/// `stream` delivers nothing for events with `ts` in `(after, until]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DeadSpan {
    pub stream: u32,
    pub after: u64,
    pub until: u64,
}

/// Everything planned.
#[derive(Default)]
pub(super) struct Plan {
    pub flips: Vec<PlannedFlip>,
    pub switches: Vec<PlannedSwitch>,
    pub episodes: Vec<Episode>,
    pub impairs: Vec<Impair>,
    pub surges: Vec<Surge>,
    pub deads: Vec<DeadSpan>,
    /// Keys handed out (every `PlannedFlip::key` is below it).
    pub keys: u32,
}

impl Plan {
    fn append(&mut self, mut other: Plan) {
        self.flips.append(&mut other.flips);
        self.switches.append(&mut other.switches);
        self.episodes.append(&mut other.episodes);
        self.impairs.append(&mut other.impairs);
        self.surges.append(&mut other.surges);
        self.deads.append(&mut other.deads);
    }

    fn flip(
        &mut self,
        t: u64,
        action: FlipAction,
        target: u32,
        selector: Selector,
        expected_in_ns: u64,
    ) -> u32 {
        let key = self.keys;
        self.keys += 1;
        self.flips.push(PlannedFlip { t, key, action, target, selector, expected_in_ns });
        key
    }

    fn episode(&mut self, kind: EpisodeKind, start_ns: u64, end_ns: u64, stream: u32) {
        self.episodes.push(Episode { kind, start_ns, end_ns, stream });
    }
}

/// Plans the whole scenario (`p` is valid).
pub(super) fn plan(p: &ScenarioParams) -> Plan {
    let mut plan = Plan::default();
    incidents(p, &mut plan);
    bursts(p, &mut plan);
    foreign_flips(p, &mut plan);
    plan
}

fn ids(list: &[u64]) -> Selector {
    Selector::Ids(IdList::new(list).expect("at most 4 ids"))
}

/// One incident being planned, into its own `plan` (kept only if it is over in time).
struct Incident<'a> {
    p: &'a ScenarioParams,
    rng: &'a mut Rng,
    plan: Plan,
    active: u32,
    /// When every effect of the incident is over.
    busy: u64,
}

impl Incident<'_> {
    fn me(&self) -> Selector {
        ids(&[self.p.recipient_id])
    }

    /// `All` or `Ids([recipient])`, even odds.
    fn broad(&mut self) -> Selector {
        if self.rng.bernoulli(0.5) {
            Selector::All
        } else {
            self.me()
        }
    }

    /// A uniformly random stream other than the active one. Every stream is live: incidents start
    /// only when the previous one is over, and only a fail-stop kills one, after its switch.
    fn target(&mut self) -> u32 {
        let r = self.rng.below(u64::from(self.p.streams) - 1) as u32;
        if r >= self.active {
            r + 1
        } else {
            r
        }
    }

    fn switch(&mut self, at: u64, key: u32, to: u32, cause: Cause, signal: u64) {
        debug_assert_ne!(to, self.active);
        self.plan.switches.push(PlannedSwitch { at, key, from: self.active, to, cause, signal });
        self.active = to;
        self.busy = self.busy.max(at);
    }

    /// Draws whether the switch just made at `at` is followed by a switchback, and plans it.
    fn maybe_switchback(&mut self, at: u64, back_to: u32) {
        if !self.rng.bernoulli(self.p.switchback_prob) {
            return;
        }
        let sb = self.p.switchback;
        let bad_from = at + sb.bad_after_ns;
        let back = at + self.rng.range_u64(sb.delay_ns);
        let err = self.rng.uniform(sb.error);
        let shape = Shape { t0: bad_from, t1: bad_from, t2: back, t3: back + sb.recover_ns };
        let bad = self.active;
        self.plan.impairs.push(Impair { stream: bad, shape, lag_ns: sb.extra_lag_ns as f64, err, drop: 0.0 });
        let me = self.me();
        let key = self.plan.flip(back, FlipAction::Switchback, back_to, me, 0);
        self.switch(back, key, back_to, Cause::Switchback, bad_from);
        self.busy = self.busy.max(shape.t3);
    }

    /// Draws whether the recipient, moved away from `from` at `at` by an incident that is over
    /// at `recovered`, is moved back once it has recovered, and plans it. Not after a
    /// switchback (the recipient is on `from` again).
    fn maybe_failback(&mut self, at: u64, from: u32, recovered: u64) {
        // No draw at all when failbacks are off: the worlds without them stay as they were.
        if self.p.failback_prob == 0.0 || self.active == from || !self.rng.bernoulli(self.p.failback_prob) {
            return;
        }
        let back = recovered.max(self.busy) + self.rng.range_u64(self.p.failback.delay_ns);
        let sel = self.broad();
        let key = self.plan.flip(back, FlipAction::Switch, from, sel, 0);
        // The warning is the departure from a stream in trouble.
        self.switch(back, key, from, Cause::Failback, at);
    }

    fn announced(&mut self, start: u64) {
        let a = self.p.announce;
        let u = self.rng.f64();
        let late = u < a.late_share;
        let never = !late && u < a.late_share + a.never_share;
        let lead = self.rng.range_u64(if late { a.late_lead_ns } else { a.lead_ns });
        let to = self.target();
        let me = self.me();
        self.plan.flip(start, FlipAction::Announce, to, me, lead);
        let at = start + lead;
        self.busy = at;
        if never {
            if self.rng.bernoulli(a.never_cancel_share) {
                self.plan.flip(at, FlipAction::Cancel, to, me, 0);
            }
            self.plan.episode(EpisodeKind::AnnounceNever, start, at, to);
        } else {
            let from = self.active;
            let key = self.plan.flip(at, FlipAction::Switch, to, me, 0);
            self.switch(at, key, to, Cause::Announced, start);
            self.maybe_switchback(at, from);
        }
    }

    fn degradation(&mut self, start: u64) {
        let d = self.p.degradation;
        let ramp = self.rng.range_u64(d.ramp_ns);
        let lag = self.rng.range_u64(d.peak_lag_ns) as f64;
        let err = self.rng.uniform(d.peak_error);
        let drop = self.rng.uniform(d.peak_drop);
        let false_alarm = self.rng.bernoulli(d.false_alarm_share);
        let level = if false_alarm { self.rng.uniform(d.false_alarm_level) } else { 1.0 };
        let end = start + ramp;
        let shape = Shape { t0: start, t1: end, t2: end, t3: end + d.recover_ns };
        let from = self.active;
        self.plan.impairs.push(Impair {
            stream: from,
            shape,
            lag_ns: lag * level,
            err: err * level,
            drop: drop * level,
        });
        self.busy = shape.t3;
        if false_alarm {
            self.plan.episode(EpisodeKind::FalseAlarm, start, shape.t3, from);
        } else {
            let to = self.target();
            let sel = self.broad();
            let key = self.plan.flip(end, FlipAction::Switch, to, sel, 0);
            self.switch(end, key, to, Cause::Degradation, start);
            self.maybe_switchback(end, from);
            self.maybe_failback(end, from, shape.t3);
        }
    }

    fn fail_stop(&mut self, start: u64) {
        let from = self.active;
        let to = self.target();
        let sel = self.broad();
        let key = self.plan.flip(start, FlipAction::Switch, to, sel, 0);
        self.switch(start, key, to, Cause::FailStop, start);
        let until = start + self.rng.range_u64(self.p.fail_stop.dead_ns);
        self.plan.deads.push(DeadSpan { stream: from, after: start, until });
        self.plan.episode(EpisodeKind::Dead, start, until, from);
        self.busy = self.busy.max(until);
        self.maybe_failback(start, from, until);
    }

    /// The active stream stalls from `start`: events with `ts` in `[start, end]` all arrive at
    /// `end` (a lag that falls from `end - start` to 0 over the stall), so it is silent for the
    /// stall while the other streams go on, then delivers its backlog at once.
    fn stall(&mut self, start: u64) {
        let s = self.p.stall;
        let from = self.active;
        let recover = self.rng.bernoulli(s.recover_share);
        let end = start + self.rng.range_u64(if recover { s.recover_ns } else { s.detect_ns });
        let shape = Shape { t0: start, t1: start, t2: start, t3: end };
        self.plan.impairs.push(Impair {
            stream: from,
            shape,
            lag_ns: (end - start) as f64,
            err: 0.0,
            drop: 0.0,
        });
        self.busy = end;
        if recover {
            self.plan.episode(EpisodeKind::Stall, start, end, from);
        } else {
            // The operator's SWITCH, written when the stall was noticed; the stream comes back
            // with it (its backlog first).
            let to = self.target();
            let sel = self.broad();
            let key = self.plan.flip(end, FlipAction::Switch, to, sel, 0);
            self.switch(end, key, to, Cause::Stall, start);
            self.maybe_switchback(end, from);
            self.maybe_failback(end, from, end);
        }
    }

    fn rollout(&mut self, start: u64) {
        let r = &self.p.rollout;
        let salt = self.rng.next_u64();
        let from = self.active;
        let to = self.target();
        let mut t = start;
        let mut switched_at = None;
        for (i, &bp) in r.stages_bp.iter().enumerate() {
            if i > 0 {
                t += self.rng.range_u64(r.stage_gap_ns);
            }
            let key =
                self.plan.flip(t, FlipAction::Switch, to, Selector::Cohort { basis_points: bp, salt }, 0);
            self.plan.episode(EpisodeKind::RolloutStage, t, t, to);
            if switched_at.is_none() && in_cohort(self.p.recipient_id, salt, bp) {
                self.switch(t, key, to, Cause::Rollout, if i == 0 { t } else { start });
                switched_at = Some((i, t));
            }
        }
        self.busy = self.busy.max(t);
        if let Some((i, at)) = switched_at {
            if i + 1 == r.stages_bp.len() {
                self.maybe_switchback(at, from);
            }
        }
    }

    fn load(&mut self, start: u64) {
        let l = self.p.load;
        let factor = self.rng.uniform(l.factor);
        let t1 = start + l.ramp_ns;
        let t2 = t1 + self.rng.range_u64(l.sustain_ns);
        let shape = Shape { t0: start, t1, t2, t3: t2 + l.decay_ns };
        self.plan.surges.push(Surge { shape, factor });
        self.busy = shape.t3;
        let from = self.active;
        let to = self.target();
        let sel = self.broad();
        let key = self.plan.flip(t2, FlipAction::Switch, to, sel, 0);
        self.switch(t2, key, to, Cause::Load, start);
        self.maybe_switchback(t2, from);
    }
}

fn incidents(p: &ScenarioParams, plan: &mut Plan) {
    if p.incident_every_ns == 0 {
        return;
    }
    let mut rng = Rng::derived(p.seed, 0x1C1D);
    let m = p.mix;
    let weights = [m.announced, m.degradation, m.fail_stop, m.rollout, m.load, m.stall];
    let total: f64 = weights.iter().sum();
    let mut active = 0u32;
    let mut calm = 0u64;
    loop {
        let start = calm + rng.exp_ns(p.incident_every_ns).max(p.quiet_ns);
        if start >= p.duration_ns {
            break;
        }
        let mut u = rng.f64() * total;
        let mut cause = weights.len() - 1;
        for (i, &w) in weights.iter().enumerate() {
            if u < w {
                cause = i;
                break;
            }
            u -= w;
        }
        // The last weight may be 0 when rounding leaves `u` just above the others: use the last
        // positive one.
        while weights[cause] == 0.0 {
            cause -= 1;
        }
        let mut inc = Incident {
            p,
            rng: &mut rng,
            plan: Plan { keys: plan.keys, ..Plan::default() },
            active,
            busy: start,
        };
        match cause {
            0 => inc.announced(start),
            1 => inc.degradation(start),
            2 => inc.fail_stop(start),
            3 => inc.rollout(start),
            4 => inc.load(start),
            _ => inc.stall(start),
        }
        let Incident { plan: part, active: now_active, busy, .. } = inc;
        if busy >= p.duration_ns {
            break;
        }
        plan.keys = part.keys;
        plan.append(part);
        active = now_active;
        calm = busy;
    }
}

fn bursts(p: &ScenarioParams, plan: &mut Plan) {
    let b = p.bursts;
    if b.every_ns == 0 {
        return;
    }
    let mut rng = Rng::derived(p.seed, 0xB0B5);
    let mut t = 0u64;
    loop {
        t += rng.exp_ns(b.every_ns);
        if t >= p.duration_ns {
            break;
        }
        let end = t + rng.range_u64(b.length_ns);
        let factor = rng.uniform(b.factor);
        plan.surges.push(Surge { shape: Shape { t0: t, t1: t, t2: end, t3: end }, factor });
        plan.episode(EpisodeKind::Burst, t, end, NO_STREAM);
        t = end;
    }
}

fn foreign_flips(p: &ScenarioParams, plan: &mut Plan) {
    if p.foreign_flip_every_ns == 0 {
        return;
    }
    let mut rng = Rng::derived(p.seed, 0xF0F0);
    let mut t = 0u64;
    loop {
        t += rng.exp_ns(p.foreign_flip_every_ns);
        if t >= p.duration_ns {
            break;
        }
        let mut others = [0u64; 4];
        let n = 1 + rng.below(4) as usize;
        for id in &mut others[..n] {
            *id = rng.next_u64();
            if *id == p.recipient_id {
                *id ^= 1;
            }
        }
        let target = rng.below(u64::from(p.streams)) as u32;
        plan.flip(t, FlipAction::Switch, target, ids(&others[..n]), 0);
        plan.episode(EpisodeKind::ForeignFlip, t, t, target);
    }
}
