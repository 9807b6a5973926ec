//! Rendering: the logical events and the planned flips become every stream's records, in one
//! pass over logical time.

use harmonizer_core::event::{EventHeader, FLAG_UPSTREAM_ERROR, KIND_DATA, KIND_FLIP};

use super::plan::{DeadSpan, Impair, Plan, Surge};
use super::rng::{Draws, Rng};
use super::{ScenarioParams, TraceRecord, NO_FLIP, SEC};

/// The rate multiplier over time: a cursor over surges sorted by start (they may overlap; their
/// factors multiply).
struct Rate<'a> {
    surges: &'a [Surge],
    cur: usize,
}

impl Rate<'_> {
    fn at(&mut self, t: u64) -> f64 {
        while self.cur < self.surges.len() && self.surges[self.cur].shape.t3 < t {
            self.cur += 1;
        }
        let mut m = 1.0;
        for s in self.surges[self.cur..].iter().take_while(|s| s.shape.t0 <= t) {
            m *= 1.0 + (s.factor - 1.0) * s.shape.level(t);
        }
        m
    }
}

/// One stream's rendering state.
struct Lane<'a> {
    lag: u64,
    last_arrival: u64,
    impairs: &'a [Impair],
    impair_cur: usize,
    deads: &'a [DeadSpan],
    dead_cur: usize,
    out: Vec<TraceRecord>,
}

impl Lane<'_> {
    /// Whether events with `ts == t` are lost on this stream; `t` never decreases between calls.
    #[inline]
    fn dead(&mut self, t: u64) -> bool {
        while self.dead_cur < self.deads.len() && self.deads[self.dead_cur].until < t {
            self.dead_cur += 1;
        }
        self.deads.get(self.dead_cur).is_some_and(|d| d.after < t)
    }

    /// Extra lag (ns), error and drop probability at `t` (impairments add); `t` never decreases.
    #[inline]
    fn impairment(&mut self, t: u64) -> (f64, f64, f64) {
        while self.impair_cur < self.impairs.len() && self.impairs[self.impair_cur].shape.t3 < t {
            self.impair_cur += 1;
        }
        let (mut lag, mut err, mut drop) = (0.0, 0.0, 0.0);
        for i in self.impairs[self.impair_cur..].iter().take_while(|i| i.shape.t0 <= t) {
            let level = i.shape.level(t);
            lag += i.lag_ns * level;
            err += i.err * level;
            drop += i.drop * level;
        }
        (lag, err, drop)
    }

    #[inline]
    fn push(&mut self, arrival: u64, header: EventHeader, flip: u32) {
        let arrival = arrival.max(self.last_arrival);
        self.last_arrival = arrival;
        self.out.push(TraceRecord {
            arrival_ns: arrival,
            header: EventHeader { pos: self.out.len() as u64 + 1, ..header },
            flip,
        });
    }
}

/// Expected logical events, for pre-sizing: the integral of the rate (overlaps ignored).
pub(super) fn expected_events(p: &ScenarioParams, surges: &[Surge]) -> f64 {
    let extra_ns: f64 = surges
        .iter()
        .map(|s| {
            let sh = s.shape;
            let full = (sh.t2 - sh.t1) as f64 + ((sh.t1 - sh.t0) + (sh.t3 - sh.t2)) as f64 / 2.0;
            (s.factor - 1.0) * full
        })
        .sum();
    p.base_rate * (p.duration_ns as f64 + extra_ns) / SEC as f64
}

/// Renders every stream; returns them and the number of logical events.
pub(super) fn render(p: &ScenarioParams, plan: &Plan) -> (Vec<Vec<TraceRecord>>, u64) {
    let n = p.streams as usize;
    let mut surges = plan.surges.clone();
    surges.sort_by_key(|s| s.shape.t0);
    let mut impairs: Vec<Vec<Impair>> = vec![Vec::new(); n];
    for i in &plan.impairs {
        impairs[i.stream as usize].push(*i);
    }
    let mut deads: Vec<Vec<DeadSpan>> = vec![Vec::new(); n];
    for d in &plan.deads {
        deads[d.stream as usize].push(*d);
    }
    for v in &mut impairs {
        v.sort_by_key(|i| i.shape.t0);
    }
    for v in &mut deads {
        v.sort_by_key(|d| d.after);
    }

    let capacity = (expected_events(p, &surges) * 1.03) as usize + plan.flips.len() + 1024;
    let mut lanes: Vec<Lane<'_>> = (0..n)
        .map(|s| Lane {
            lag: p.stream_lag_ns[s],
            last_arrival: 0,
            impairs: &impairs[s],
            impair_cur: 0,
            deads: &deads[s],
            dead_cur: 0,
            out: Vec::with_capacity(capacity),
        })
        .collect();
    let mut rate = Rate { surges: &surges, cur: 0 };
    let mut rng = Rng::derived(p.seed, 0x4E4D);
    let per_ns = p.base_rate / SEC as f64;
    let jitter = p.jitter_ns;
    let flips = &plan.flips;
    let mut next_flip = 0usize;
    let mut ts = 0u64;
    let mut seq = 0u64;

    loop {
        let gap = rng.exp1() / (per_ns * rate.at(ts));
        let next = ts.saturating_add((gap.min(1e18) as u64).max(1));
        // Flips come between events: every flip not after the next event goes first.
        while let Some(f) = flips.get(next_flip).filter(|f| f.t <= next && f.t < p.duration_ns) {
            let header = EventHeader { pos: 0, seq: 0, ts_ns: f.t, origin: 0, kind: KIND_FLIP, flags: 0 };
            for lane in &mut lanes {
                if lane.dead(f.t) {
                    continue;
                }
                let (lag, _, _) = lane.impairment(f.t);
                let j = if jitter > 0 { rng.below(jitter + 1) } else { 0 };
                lane.push(f.t + lane.lag + lag as u64 + j, header, next_flip as u32);
            }
            next_flip += 1;
        }
        if next >= p.duration_ns {
            break;
        }
        ts = next;
        seq += 1;
        let header = EventHeader { pos: 0, seq, ts_ns: ts, origin: 0, kind: KIND_DATA, flags: 0 };
        for lane in &mut lanes {
            if lane.dead(ts) {
                continue;
            }
            let (lag, err, drop) = lane.impairment(ts);
            if drop > 0.0 && rng.bernoulli(drop) {
                continue;
            }
            let j = if jitter > 0 { rng.below(jitter + 1) } else { 0 };
            let flags = if err > 0.0 && rng.bernoulli(err) { FLAG_UPSTREAM_ERROR } else { 0 };
            lane.push(ts + lane.lag + lag as u64 + j, EventHeader { flags, ..header }, NO_FLIP);
        }
    }
    (lanes.into_iter().map(|l| l.out).collect(), seq)
}
