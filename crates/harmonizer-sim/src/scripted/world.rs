//! The world a scenario describes, rendered before the run: every stream's log (its records
//! with arrival times), the flips, and marks for reports and the plot.
//!
//! # The model (the predictor's training world, [`crate::scenario`], scripted)
//!
//! The same trapezoid impairments, surges and dead spans as the generated scenarios
//! ([`crate::scenario`]), drawn from a SplitMix64 generator per lane. The world differs from
//! the generated one where the demo needs it: several origins and payloads, losses that stay in
//! the log (a fetch finds them), and its own order of draws; so a scripted world is not a
//! generated trace with a script, and the two keep their own render loops.
//!
//! - **Events.** Logical events form a Poisson process of `rate × bursts(t)` per second.
//!   Event `k` (from 0) has origin `k % origins`, seq `k / origins + 1`, `ts_ns` its time, and
//!   a 16-byte payload (`k` and a hash of it, so the handler can check it got its own payload).
//! - **Streams.** Every stream carries every event in time order, arriving at
//!   `ts + lag[s] + extra lag(t) + U(0, jitter)`, made non-decreasing. Its log numbers its
//!   records from `s × 10⁹ + 1` (positions differ between streams).
//! - **Live path and log.** A degraded stream (and a `gap` incident) loses events on its *live*
//!   path: they keep their place and position in the stream's log, so a fetch or re-read from
//!   the log has them. A dead stream (after a fail-stop) has nothing at all for events in its
//!   dead span.
//! - **Flips** are FLIP records inserted into every live stream between two events, with the
//!   same lag rules, never lost or flagged.

use harmonizer_core::event::{EventHeader, FLAG_CONFLATABLE, FLAG_UPSTREAM_ERROR, KIND_DATA, KIND_FLIP};
use harmonizer_core::flip::{splitmix64, Flip, FlipAction, IdList, Selector};

use super::scenario::{Incident, Malform, Outcome, Scenario, MAX_RATE_FACTOR};
use crate::scenario::plan::{DeadSpan, Impair, Shape, Surge};
use crate::scenario::rng::{Draws, SplitMix64};
pub use crate::scenario::NO_FLIP;
/// Positions of stream `s` start after `s × POS_STRIDE`.
pub const POS_STRIDE: u64 = 1_000_000_000;

/// One record of one stream's log.
#[derive(Clone, Copy, Debug)]
pub struct Rec {
    /// When it reaches the recipient on the live path (ns, scenario time).
    pub arrival_ns: u64,
    /// The event's (or flip's) time.
    pub ts_ns: u64,
    /// Data: the logical event index. Flip: the index of the next logical event, so a log is
    /// sorted by `k`, flips before the event that follows them.
    pub k: u64,
    /// Index into [`World::payloads`], or [`NO_FLIP`].
    pub flip: u32,
    /// Event flags (UPSTREAM_ERROR).
    pub flags: u16,
    /// Lost on the live path (a fetch from the log still has it).
    pub dropped: bool,
    /// Carries another payload than the event's own (`Incident::Corrupt`).
    pub corrupt: bool,
}

/// One mark on the timeline.
#[derive(Clone, Debug)]
pub struct Mark {
    /// When (scenario ns).
    pub t_ns: u64,
    /// Short text for the plot and the notes.
    pub label: String,
    /// Whether it is a flip record.
    pub flip: bool,
}

/// The rendered world.
pub struct World {
    /// Per stream, its log in arrival order.
    pub streams: Vec<Vec<Rec>>,
    /// Flip payloads (malformed ones too).
    pub payloads: Vec<Vec<u8>>,
    /// Flips and incidents, by time.
    pub marks: Vec<Mark>,
    /// Logical events generated.
    pub events: u64,
    /// Origins.
    pub origins: u32,
    /// Scenario length.
    pub duration_ns: u64,
    /// Latest arrival of any record.
    pub last_arrival_ns: u64,
    /// Largest payload, bytes.
    pub max_payload: usize,
    /// Which events are marked conflatable, and their keys.
    pub marking: Marking,
}

/// The scenario's `[conflation]`: which logical events are marked conflatable, and their keys.
#[derive(Clone, Copy, Debug, Default)]
pub struct Marking {
    /// Marked when a hash of the event falls below this (0: none).
    threshold: u64,
    keys: u64,
}

impl Marking {
    /// From the scenario's share and keys.
    pub fn new(share: f64, keys: u32) -> Marking {
        let threshold = if share >= 1.0 { u64::MAX } else { (share.max(0.0) * u64::MAX as f64) as u64 };
        Marking { threshold, keys: u64::from(keys.max(1)) }
    }

    /// The conflation key of logical event `k`, if it is marked: a key of its origin's
    /// `keys`, the same on every stream.
    #[inline]
    pub fn key(&self, k: u64, origins: u64) -> Option<u64> {
        let h = splitmix64(k ^ 0xC0F1_A7E5);
        (self.threshold > 0 && (h < self.threshold || self.threshold == u64::MAX))
            .then(|| ((k % origins) << 32) | (splitmix64(h) % self.keys))
    }

    /// The payload of logical event `k`: [`data_payload`], or for a marked one its key and
    /// the second half of [`data_payload`] (so every event's payload is still its own).
    #[inline]
    pub fn payload(&self, k: u64, origins: u64) -> [u8; 16] {
        let mut p = data_payload(k);
        if let Some(key) = self.key(k, origins) {
            p[..8].copy_from_slice(&key.to_le_bytes());
        }
        p
    }
}

impl World {
    /// The header of record `i` of stream `s`.
    #[inline]
    pub fn header(&self, s: usize, i: usize) -> EventHeader {
        let r = &self.streams[s][i];
        let pos = s as u64 * POS_STRIDE + i as u64 + 1;
        let origins = u64::from(self.origins);
        if r.flip == NO_FLIP {
            EventHeader {
                pos,
                seq: r.k / origins + 1,
                ts_ns: r.ts_ns,
                origin: (r.k % origins) as u32,
                kind: KIND_DATA,
                flags: r.flags,
            }
        } else {
            EventHeader { pos, seq: 0, ts_ns: r.ts_ns, origin: 0, kind: KIND_FLIP, flags: 0 }
        }
    }

    /// Index in stream `s`'s log of position `pos` (clamped to the log).
    pub fn index_of_pos(&self, s: usize, pos: u64) -> usize {
        let first = s as u64 * POS_STRIDE + 1;
        (pos.saturating_sub(first) as usize).min(self.streams[s].len())
    }

    /// Index of the first record of stream `s` with `k >= k_min` (a flip just before event
    /// `k_min` included).
    pub fn index_of_k(&self, s: usize, k_min: u64) -> usize {
        self.streams[s].partition_point(|r| r.k < k_min)
    }

    /// First record with arrival at or after `t_ns`.
    pub fn index_of_arrival(&self, s: usize, t_ns: u64) -> usize {
        self.streams[s].partition_point(|r| r.arrival_ns < t_ns)
    }
}

/// The payload of logical event `k`: `k` and a hash of it, little-endian.
#[inline]
pub fn data_payload(k: u64) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[..8].copy_from_slice(&k.to_le_bytes());
    p[8..].copy_from_slice(&splitmix64(k).to_le_bytes());
    p
}

struct PlannedFlip {
    t: u64,
    payload: u32,
}

struct Plan {
    flips: Vec<PlannedFlip>,
    payloads: Vec<Vec<u8>>,
    marks: Vec<Mark>,
    impairs: Vec<Impair>,
    surges: Vec<Surge>,
    deads: Vec<DeadSpan>,
    /// (stream, after, events): the live path loses that many events after that time.
    gaps: Vec<(usize, u64, u32)>,
    /// `(stream, from, events)` corrupted, sorted by time.
    corrupts: Vec<(usize, u64, u32)>,
    next_id: u64,
}

impl Plan {
    fn flip(&mut self, t: u64, mut f: Flip<'static>, label: String) {
        f.flip_id = self.next_id;
        self.next_id += 1;
        // Flips built here are valid by construction (validated selectors, no locator).
        let bytes = f.to_vec().unwrap_or_default();
        self.push_payload(t, bytes, label);
    }
    fn push_payload(&mut self, t: u64, bytes: Vec<u8>, label: String) {
        self.flips.push(PlannedFlip { t, payload: self.payloads.len() as u32 });
        self.payloads.push(bytes);
        self.marks.push(Mark { t_ns: t, label, flip: true });
    }
    fn mark(&mut self, t: u64, label: String) {
        self.marks.push(Mark { t_ns: t, label, flip: false });
    }
}

/// A flip for `recipients` (all when `None`).
fn flip_to(recipients: &Option<Vec<u64>>, action: FlipAction, target: u32) -> Flip<'static> {
    Flip { selector: selector(recipients), ..Flip::new(action, 0, target) }
}

fn selector(recipients: &Option<Vec<u64>>) -> Selector {
    match recipients.as_deref().and_then(IdList::new) {
        Some(ids) => Selector::Ids(ids),
        None => Selector::All,
    }
}

fn who(recipients: &Option<Vec<u64>>) -> String {
    match recipients {
        Some(v) => format!(" ({} ids)", v.len()),
        None => String::new(),
    }
}

/// The default cohort salt of incident `i`.
pub fn default_salt(seed: u64, i: usize) -> u64 {
    splitmix64(seed ^ 0x5A17 ^ (i as u64).wrapping_mul(0x9E37_79B9))
}

fn plan(sc: &Scenario) -> Plan {
    let ns = Scenario::ns;
    let mut p = Plan {
        flips: Vec::new(),
        payloads: Vec::new(),
        marks: Vec::new(),
        impairs: Vec::new(),
        surges: Vec::new(),
        deads: Vec::new(),
        gaps: Vec::new(),
        corrupts: Vec::new(),
        next_id: 1000,
    };
    for (i, inc) in sc.incidents.iter().enumerate() {
        match inc {
            Incident::Rollout { at_s, target, stages_bp, stage_gap_s, salt } => {
                let salt = salt.unwrap_or_else(|| default_salt(sc.seed, i));
                for (j, bp) in stages_bp.iter().enumerate() {
                    let t = ns(at_s + stage_gap_s * j as f64);
                    let mut f = Flip::new(FlipAction::Switch, 0, *target);
                    f.selector = Selector::Cohort { basis_points: *bp, salt };
                    let pct = f64::from(*bp) / 100.0;
                    p.flip(t, f, format!("rollout {pct}% → s{target}"));
                }
            }
            Incident::Announce { at_s, target, lead_s, outcome, recipients } => {
                let t = ns(*at_s);
                let lead = ns(*lead_s);
                let mut f = flip_to(recipients, FlipAction::Announce, *target);
                f.expected_in_ns = lead;
                p.flip(t, f, format!("announce → s{target}{}", who(recipients)));
                match outcome {
                    Outcome::Switch => {
                        let f = flip_to(recipients, FlipAction::Switch, *target);
                        p.flip(t + lead, f, format!("switch → s{target}{}", who(recipients)));
                    }
                    Outcome::Cancel => {
                        let f = flip_to(recipients, FlipAction::Cancel, *target);
                        p.flip(t + lead, f, format!("cancel s{target}{}", who(recipients)));
                    }
                    Outcome::Expire => {}
                }
            }
            Incident::Switch { at_s, target, recipients } => {
                let f = flip_to(recipients, FlipAction::Switch, *target);
                p.flip(ns(*at_s), f, format!("switch → s{target}{}", who(recipients)));
            }
            Incident::Degradation {
                at_s,
                stream,
                ramp_s,
                peak_lag_ms,
                peak_error,
                peak_drop,
                recover_s,
                switch_to,
                recipients,
            } => {
                let t0 = ns(*at_s);
                let t1 = t0 + ns(*ramp_s);
                let shape = Shape { t0, t1, t2: t1, t3: t1 + ns(*recover_s) };
                p.impairs.push(Impair {
                    stream: *stream,
                    shape,
                    lag_ns: peak_lag_ms * 1e6,
                    err: *peak_error,
                    drop: *peak_drop,
                });
                p.mark(t0, format!("s{stream} degrades"));
                if let Some(to) = switch_to {
                    let f = flip_to(recipients, FlipAction::Switch, *to);
                    p.flip(t1, f, format!("switch → s{to}{}", who(recipients)));
                }
            }
            Incident::FailStop { at_s, stream, switch_to, dead_s, recipients } => {
                let t = ns(*at_s);
                let f = flip_to(recipients, FlipAction::Switch, *switch_to);
                p.flip(t, f, format!("switch → s{switch_to}{}", who(recipients)));
                p.deads.push(DeadSpan { stream: *stream, after: t, until: t + ns(*dead_s) });
                p.mark(t, format!("s{stream} dies"));
            }
            Incident::Switchback {
                at_s,
                bad_stream,
                bad_from_s,
                error,
                extra_lag_ms,
                recover_s,
                recipients,
            } => {
                let t = ns(*at_s);
                let bad = ns(*bad_from_s);
                let shape = Shape { t0: bad, t1: bad, t2: t, t3: t + ns(*recover_s) };
                p.impairs.push(Impair {
                    stream: *bad_stream,
                    shape,
                    lag_ns: extra_lag_ms * 1e6,
                    err: *error,
                    drop: 0.0,
                });
                p.mark(bad, format!("s{bad_stream} turns bad"));
                let f = flip_to(recipients, FlipAction::Switchback, 0);
                p.flip(t, f, format!("switchback{}", who(recipients)));
            }
            Incident::Malformed { at_s, form } => {
                let t = ns(*at_s);
                let mut bytes = Flip::new(FlipAction::Switch, 999_999, 0).to_vec().unwrap_or_default();
                let what = match form {
                    Malform::Truncated => {
                        bytes.truncate(bytes.len() / 2);
                        "truncated"
                    }
                    Malform::BadCrc => {
                        if let Some(b) = bytes.get_mut(12) {
                            *b ^= 0x40;
                        }
                        "bad CRC"
                    }
                    Malform::UnknownVersion => {
                        if let Some(b) = bytes.first_mut() {
                            *b = 99;
                        }
                        "unknown version"
                    }
                };
                p.push_payload(t, bytes, format!("malformed flip ({what})"));
            }
            Incident::Gap { at_s, stream, events } => {
                let t = ns(*at_s);
                p.gaps.push((*stream as usize, t, *events));
                p.mark(t, format!("s{stream} loses {events} events"));
            }
            Incident::Corrupt { at_s, stream, events } => {
                let t = ns(*at_s);
                p.corrupts.push((*stream as usize, t, *events));
                p.mark(t, format!("s{stream} corrupts {events} events"));
            }
            Incident::Burst { at_s, factor, length_s } => {
                let t = ns(*at_s);
                let end = t + ns(*length_s);
                p.surges.push(Surge { shape: Shape { t0: t, t1: t, t2: end, t3: end }, factor: *factor });
                p.mark(t, format!("burst ×{factor}"));
            }
        }
    }
    let b = &sc.background;
    if b.bursts_every_s > 0.0 {
        let mut rng = SplitMix64::lane(sc.seed, 0xB0B5);
        let mut t = 0u64;
        loop {
            t += ns(rng.exp1() * b.bursts_every_s);
            if t >= ns(sc.duration_s) {
                break;
            }
            let end = t + ns(rng.uniform((b.burst_length_s[0], b.burst_length_s[1])));
            let factor = rng.uniform((b.burst_factor[0], b.burst_factor[1]));
            p.surges.push(Surge { shape: Shape { t0: t, t1: t, t2: end, t3: end }, factor });
            t = end;
        }
    }
    p.flips.sort_by_key(|f| (f.t, f.payload));
    p.marks.sort_by_key(|m| m.t_ns);
    p.gaps.sort_by_key(|g| g.1);
    p.corrupts.sort_by_key(|g| g.1);
    p
}

/// Renders the scenario (validated) into every stream's log.
pub fn render(sc: &Scenario) -> World {
    let p = plan(sc);
    let n = sc.streams as usize;
    let lags: Vec<u64> = sc.lags_ms().iter().map(|ms| (ms * 1e6).round() as u64).collect();
    let jitter = (sc.jitter_ms * 1e6).round() as u64;
    let duration = Scenario::ns(sc.duration_s);
    let per_ns = sc.rate / 1e9;
    let mut rng = SplitMix64::lane(sc.seed, 0x4E4D);
    let marking = Marking::new(sc.conflation.share, sc.conflation.keys);
    let mut streams: Vec<Vec<Rec>> = (0..n)
        .map(|_| Vec::with_capacity((sc.rate * sc.duration_s * 1.2) as usize + p.flips.len() + 16))
        .collect();
    let mut last_arrival = vec![0u64; n];
    // Per stream: events still to lose from the current gap incident, and the next incident.
    let mut gap_left = vec![0u32; n];
    let mut next_gap = 0usize;
    let mut corrupt_left = vec![0u32; n];
    let mut next_corrupt = 0usize;
    let mut next_flip = 0usize;
    let mut ts = 0u64;
    let mut k = 0u64;
    let dead =
        |s: usize, t: u64| p.deads.iter().any(|d| d.stream as usize == s && d.after < t && t <= d.until);
    let impairment = |s: usize, t: u64| {
        let (mut lag, mut err, mut drop) = (0.0, 0.0, 0.0);
        for i in p.impairs.iter().filter(|i| i.stream as usize == s) {
            let l = i.shape.level(t);
            lag += i.lag_ns * l;
            err += i.err * l;
            drop += i.drop * l;
        }
        (lag, err, drop)
    };
    let rate_at = |t: u64| {
        p.surges.iter().fold(1.0, |m, s| m * (1.0 + (s.factor - 1.0) * s.shape.level(t))).min(MAX_RATE_FACTOR)
    };
    let arrive = |s: usize, t: u64, extra: f64, rng: &mut SplitMix64, last: &mut [u64]| {
        let j = if jitter > 0 { rng.next_u64() % (jitter + 1) } else { 0 };
        let a = (t + lags[s] + extra as u64 + j).max(last[s]);
        last[s] = a;
        a
    };
    loop {
        let gap = rng.exp1() / (per_ns * rate_at(ts));
        let next = ts.saturating_add((gap.min(1e18) as u64).max(1));
        while let Some(f) = p.flips.get(next_flip).filter(|f| f.t <= next && f.t < duration) {
            for (s, log) in streams.iter_mut().enumerate() {
                if dead(s, f.t) {
                    continue;
                }
                let (lag, _, _) = impairment(s, f.t);
                let a = arrive(s, f.t, lag, &mut rng, &mut last_arrival);
                log.push(Rec {
                    arrival_ns: a,
                    ts_ns: f.t,
                    k,
                    flip: f.payload,
                    flags: 0,
                    dropped: false,
                    corrupt: false,
                });
            }
            next_flip += 1;
        }
        if next >= duration {
            break;
        }
        ts = next;
        while let Some(&(s, _, events)) = p.gaps.get(next_gap).filter(|g| g.1 < ts) {
            gap_left[s] += events;
            next_gap += 1;
        }
        while let Some(&(s, _, events)) = p.corrupts.get(next_corrupt).filter(|g| g.1 < ts) {
            corrupt_left[s] += events;
            next_corrupt += 1;
        }
        for (s, log) in streams.iter_mut().enumerate() {
            if dead(s, ts) {
                continue;
            }
            let (lag, err, drop) = impairment(s, ts);
            let mut dropped = drop > 0.0 && rng.bernoulli(drop);
            if gap_left[s] > 0 {
                gap_left[s] -= 1;
                dropped = true;
            }
            let mut flags = if err > 0.0 && rng.bernoulli(err) { FLAG_UPSTREAM_ERROR } else { 0 };
            if marking.key(k, u64::from(sc.origins)).is_some() {
                flags |= FLAG_CONFLATABLE;
            }
            let corrupt = corrupt_left[s] > 0;
            corrupt_left[s] = corrupt_left[s].saturating_sub(1);
            let a = arrive(s, ts, lag, &mut rng, &mut last_arrival);
            log.push(Rec { arrival_ns: a, ts_ns: ts, k, flip: NO_FLIP, flags, dropped, corrupt });
        }
        k += 1;
    }
    let max_payload = p.payloads.iter().map(Vec::len).max().unwrap_or(0).max(16);
    World {
        streams,
        payloads: p.payloads,
        marks: p.marks,
        events: k,
        origins: sc.origins,
        duration_ns: duration,
        last_arrival_ns: last_arrival.iter().copied().max().unwrap_or(0),
        max_payload,
        marking,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CLI's embedded demo scenario (`harmonize demo`), read as the CLI reads it.
    fn demo() -> Scenario {
        let sc: Scenario = toml::from_str(include_str!("../../../../harmonize/scenarios/demo.toml")).unwrap();
        sc.validate().unwrap();
        sc
    }

    #[test]
    fn the_demo_world_is_well_formed() {
        let sc = demo();
        let w = render(&sc);
        assert!(w.events > 40_000);
        assert_eq!(w.streams.len(), 3);
        for (s, log) in w.streams.iter().enumerate() {
            for (i, pair) in log.windows(2).enumerate() {
                assert!(pair[0].arrival_ns <= pair[1].arrival_ns, "stream {s} arrivals at {i}");
                assert!(pair[0].k <= pair[1].k, "stream {s} order at {i}");
            }
            for (i, r) in log.iter().enumerate() {
                let h = w.header(s, i);
                assert_eq!(w.index_of_pos(s, h.pos), i);
                if r.flip == NO_FLIP {
                    // The first record with this `k`: the event, or a flip just before it.
                    let j = w.index_of_k(s, r.k);
                    assert!(j <= i && log[j..i].iter().all(|x| x.flip != NO_FLIP), "stream {s} at {i}");
                    assert_eq!((h.seq - 1) * u64::from(w.origins) + u64::from(h.origin), r.k);
                }
            }
        }
        // Stream 0 is dead for 15 s after the fail-stop; the others carry every event.
        let data = |s: usize| w.streams[s].iter().filter(|r| r.flip == NO_FLIP).count() as u64;
        assert_eq!(data(1), w.events);
        assert_eq!(data(2), w.events);
        assert!(data(0) < w.events - 5000);
        // The gap incident: 25 consecutive events lost on stream 0's live path after 102 s.
        let lost: Vec<&Rec> =
            w.streams[0].iter().filter(|r| r.dropped && r.ts_ns > 102_000_000_000).collect();
        assert_eq!(lost.len(), 25);
        assert!(lost.windows(2).all(|p| p[1].k == p[0].k + 1));
        // Flips decode, except the malformed one.
        let bad = w.payloads.iter().filter(|p| Flip::decode(p).is_err()).count();
        assert_eq!(bad, 1);
        assert_eq!(data_payload(7)[..8], 7u64.to_le_bytes());
    }

    #[test]
    fn rendering_is_deterministic() {
        let sc = demo();
        let (a, b) = (render(&sc), render(&sc));
        assert_eq!(a.events, b.events);
        assert_eq!(a.streams[2].last().map(|r| r.arrival_ns), b.streams[2].last().map(|r| r.arrival_ns));
    }
}
