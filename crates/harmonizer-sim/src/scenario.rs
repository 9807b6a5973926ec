//! Scenario traces with ground truth: what the switch predictor is trained and evaluated on.
//!
//! [`generate`] turns [`ScenarioParams`] into a [`Trace`]: every stream's records (headers with
//! arrival times, flips as encoded payloads), the ground-truth switches of one recipient, and the
//! other episodes that happened (the look-alikes a predictor must not fire on). A seed fixes
//! everything: the same parameters always give the same trace, bit for bit, on every platform.
//!
//! # The world
//!
//! **Events.** One origin (0). Logical events form a Poisson process of rate
//! `base_rate × burst(t) × load(t)` events per second (the gap after each event is drawn with the
//! rate at that event; the rate changes over seconds, the gaps are milliseconds). Event `k`
//! (from 1) has `seq = k` and `ts_ns` = its generation time, counted from 0. Data records carry
//! no payload, only headers.
//!
//! **Streams.** Every stream `s` carries every logical event, in `ts` order, arriving at
//! `ts + stream_lag_ns[s] + extra_lag_s(t) + U(0, jitter_ns)`, made non-decreasing per stream
//! (each arrival is at least the previous one). `pos` counts a stream's records from 1. A
//! *degraded* stream also has extra lag, flags each event [`FLAG_UPSTREAM_ERROR`] with
//! probability `err_s(t)` and drops it (its seq is missing: a gap) with probability `drop_s(t)`;
//! overlapping impairments add. A *dead* stream delivers nothing at all, flips included.
//!
//! **Flips** are records of kind [`KIND_FLIP`] (origin 0, seq 0, flags 0) inserted into every live
//! stream at a logical time `t` between two events (`ts_ns = t`, same lag rules, never dropped or
//! flagged); the payload is [`Trace::flips`]`[record.flip]`. Flip ids are unique and increase
//! with `t` from a seeded random base; `cutover_pos`, `resume_pos` and `not_before_ns` are 0 and
//! there is no locator.
//!
//! **Incidents** happen one at a time. The first starts after a gap, each next one a gap after
//! the previous one is *over*: its last flip sent, every stream it impaired recovered, its dead
//! stream back and its load surge decayed, so every incident starts in a calm world with all
//! streams live. A gap is `max(quiet_ns, Exp(incident_every_ns))`. An incident that would not be
//! over by `duration_ns` is not started (the trace ends calm). Each incident picks its cause by
//! the weights of [`CauseMix`]. The ground-truth active stream starts at
//! [`Trace::initial_stream`] (0) and changes at each [`TruthSwitch`]; a switch's target is a
//! uniformly random stream other than the active one (all are live then).
//!
//! - **Announced** ([`Cause::Announced`]): an ANNOUNCE (selector `Ids([recipient])`,
//!   `expected_in_ns = lead`, lead uniform in [`AnnounceParams::lead_ns`]), then the SWITCH
//!   (same selector and target) `lead` later. A *late* share announces only 0..300 ms ahead; a
//!   *never* share is never followed by a switch: half of those (by default) are withdrawn by a
//!   CANCEL at the expected time, the rest just expire ([`EpisodeKind::AnnounceNever`]).
//! - **Degradation** ([`Cause::Degradation`]): the active stream degrades, its extra lag, error
//!   probability and drop probability rising linearly from 0 to a drawn peak over the ramp; a
//!   SWITCH (selector `All` or `Ids([recipient])`, even odds) comes at the end of the ramp, and
//!   the old stream recovers linearly over `recover_ns`. A *false-alarm* share ramps the same way
//!   to only 30–60% of the peak and recovers with no switch ([`EpisodeKind::FalseAlarm`]): early
//!   in a ramp, a real degradation and a false alarm look the same.
//! - **Fail-stop** ([`Cause::FailStop`]): a SWITCH (`All` or `Ids`) with no warning at all; the
//!   old stream goes dead right after the flip (for events with `ts` in `(t, t + dead]`) for
//!   10–30 s ([`EpisodeKind::Dead`]). It is never followed by a switchback (its target is dead).
//! - **Rollout** ([`Cause::Rollout`]): SWITCH flips with `Cohort { basis_points, salt }` at the
//!   stage values (1000, 5000, 10000 by default), a stage gap apart, the same target and a fresh
//!   random salt. The recipient switches at the first stage whose cohort includes it; earlier
//!   stages are flips for other recipients naming the target, the predictor's evidence. Later
//!   stages still select it (the engine rejects a switch to the active stream). Every stage is an
//!   [`EpisodeKind::RolloutStage`]. Only a switch at the last stage may be followed by a
//!   switchback (a later stage would otherwise select the recipient again).
//! - **Load** ([`Cause::Load`]): the event rate ramps to a factor (2.5–4×) over 2 s, holds for
//!   5–10 s, the SWITCH (`All` or `Ids`) comes at the end of the hold, and the rate decays back
//!   linearly over 10 s.
//! - **Stall** ([`Cause::Stall`]): the active stream stops delivering while the others go on
//!   (a stuck replicator, a partition); the events it holds all arrive when it comes back. After
//!   1–4 s the operator writes a SWITCH (`All` or `Ids`), and the stream comes back with it: its
//!   backlog, then the flip. A *recover* share (35%) stalls for 0.5–3 s and comes back with no
//!   switch ([`EpisodeKind::Stall`]). Nothing but the silence warns of it.
//! - **Switchback** ([`Cause::Switchback`]): after any other switch that allows it, with
//!   probability `switchback_prob`, the new stream turns bad (errors 10–20%, 10 ms extra lag)
//!   from 0.3 s after the switch, a SWITCHBACK (selector `Ids([recipient])`, target the stream
//!   switched from) comes 2–5 s after the switch, and the bad stream recovers over 5 s. After a
//!   degradation the stream switched back to is still recovering.
//! - **Failback** ([`Cause::Failback`]): after a switch away from a degraded, dead or stalled
//!   stream that no switchback undid, with probability `failback_prob` (0.5), the operators move
//!   the recipient back once that stream has recovered: a SWITCH (`All` or `Ids`) to it 10–30 s
//!   after its recovery ended (a degradation's recovery, a fail-stop's dead span; a stall's
//!   stream is back at once). Its warning is the departure: the recipient left that stream in
//!   trouble, which is all it can know (it does not read the stream it left).
//!
//! Independent of incidents (they may overlap them):
//! - **Bursts**: background load bursts, the rate times 2–4 for 0.5–2 s, starting an
//!   `Exp(15 s)` gap after the previous one ended ([`EpisodeKind::Burst`]); no switch.
//! - **Foreign flips**: SWITCH flips for 1–4 other recipients (`Ids`, never this one), a random
//!   target, every `Exp(12 s)` ([`EpisodeKind::ForeignFlip`]).
//!
//! # Ground truth
//!
//! [`Trace::switches`] lists this recipient's switches in time order; each is a real change of
//! active stream (target ≠ active, target live), its flip is in the active stream at that time
//! and selects the recipient, and the active stream is never dead. `signal_ns` is when the first
//! observable warning began: the ANNOUNCE, the start of the degradation ramp, load ramp or stall, the
//! first rollout stage, the switched-to stream turning bad; for a fail-stop or a rollout switch
//! at the first stage there is none (`signal_ns == at_ns`). A switch is `predictable` when its
//! warning came at least [`PREDICTABLE_LEAD_NS`] (1 s) ahead: so late announces, fail-stops and
//! first-stage rollout switches are not.
//!
//! The plan (incidents, flips, episodes, ground truth) depends only on the seed and the incident,
//! burst and flip parameters, not on `base_rate`, the lags or the jitter: changing those changes
//! the records but not what happens when.

mod params;
pub(crate) mod plan;
mod render;
pub(crate) mod rng;
#[cfg(test)]
mod tests;

use harmonizer_core::event::EventHeader;
#[cfg(doc)]
use harmonizer_core::event::{FLAG_UPSTREAM_ERROR, KIND_FLIP};
use harmonizer_core::flip::Flip;

pub use self::params::{
    AnnounceParams, BurstParams, CauseMix, DegradationParams, FailStopParams, LoadParams, RolloutParams,
    ScenarioError, ScenarioParams, StallParams, SwitchbackParams,
};
use self::rng::{Draws, Rng};

/// [`TraceRecord::flip`] of a data record.
pub const NO_FLIP: u32 = u32::MAX;
/// [`Episode::stream`] of an episode that concerns no single stream (a load burst).
pub const NO_STREAM: u32 = u32::MAX;
/// A switch is predictable when its first warning came at least this long (1 s) before it.
pub const PREDICTABLE_LEAD_NS: u64 = 1_000_000_000;
/// Longest time span any parameter may give (one day), so sums of spans never overflow.
pub const MAX_SPAN_NS: u64 = 86_400 * SEC;
/// Most logical events a scenario may expect (`base_rate × duration`, and again with bursts and
/// load surges counted).
pub const MAX_EVENTS: f64 = 1e9;
/// Most incidents, bursts or foreign flips a scenario may expect (each: the duration over its
/// mean gap).
pub const MAX_OCCURRENCES: f64 = 1e7;

const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;

/// Why a ground-truth switch happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cause {
    /// Announced ahead (or, when late, barely).
    Announced,
    /// The active stream degraded.
    Degradation,
    /// The active stream failed with no warning.
    FailStop,
    /// A cohort rollout reached this recipient.
    Rollout,
    /// A load surge.
    Load,
    /// The stream switched to went bad; back to the previous one.
    Switchback,
    /// The active stream stalled (silent while the others went on).
    Stall,
    /// Back to a stream left in an incident (degradation, fail-stop, stall) once it recovered.
    Failback,
    /// A switch of a recorded trace whose flip carries no cause (the generator never makes
    /// one; not in [`Cause::ALL`]).
    Unlabelled,
}

impl Cause {
    /// Every cause the generator makes, in declaration order.
    pub const ALL: [Cause; 8] = [
        Cause::Announced,
        Cause::Degradation,
        Cause::FailStop,
        Cause::Rollout,
        Cause::Load,
        Cause::Switchback,
        Cause::Stall,
        Cause::Failback,
    ];

    /// A short stable name (`"fail_stop"`).
    pub fn name(self) -> &'static str {
        match self {
            Cause::Announced => "announced",
            Cause::Degradation => "degradation",
            Cause::FailStop => "fail_stop",
            Cause::Rollout => "rollout",
            Cause::Load => "load",
            Cause::Switchback => "switchback",
            Cause::Stall => "stall",
            Cause::Failback => "failback",
            Cause::Unlabelled => "unlabelled",
        }
    }

    /// Parses a name ([`Cause::name`]), `unlabelled` included.
    pub fn from_name(s: &str) -> Option<Cause> {
        Cause::ALL.into_iter().chain([Cause::Unlabelled]).find(|c| c.name() == s)
    }
}

/// One ground-truth switch of the recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TruthSwitch {
    /// The flip's `ts_ns`.
    pub at_ns: u64,
    /// The flip that causes it (in `from`'s records at `at_ns`).
    pub flip_id: u64,
    /// The active stream before.
    pub from: u32,
    /// The active stream after (≠ `from`, live).
    pub to: u32,
    /// Why.
    pub cause: Cause,
    /// `at_ns - signal_ns >= PREDICTABLE_LEAD_NS`.
    pub predictable: bool,
    /// When the first observable warning began; `== at_ns` when there was none.
    pub signal_ns: u64,
}

/// What kind of non-switch episode happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EpisodeKind {
    /// A degradation of the active stream that recovered without a switch (`start..end`: ramp
    /// start to full recovery).
    FalseAlarm,
    /// An ANNOUNCE never followed by a switch (`start`: the announce, `end`: the expected time,
    /// `stream`: the announced target).
    AnnounceNever,
    /// A background load burst (`stream` is [`NO_STREAM`]).
    Burst,
    /// One stage of a cohort rollout (`start == end`, `stream`: its target), whether or not it
    /// selected this recipient.
    RolloutStage,
    /// A stream delivering nothing: events with `ts` in `(start, end]`.
    Dead,
    /// A SWITCH for other recipients only (`start == end`, `stream`: its target).
    ForeignFlip,
    /// A stall of the active stream that ended with no switch: its events with `ts` in
    /// `[start, end]` arrive at `end`.
    Stall,
}

impl EpisodeKind {
    /// A short stable name (`"false_alarm"`).
    pub fn name(self) -> &'static str {
        match self {
            EpisodeKind::FalseAlarm => "false_alarm",
            EpisodeKind::AnnounceNever => "announce_never",
            EpisodeKind::Burst => "burst",
            EpisodeKind::RolloutStage => "rollout_stage",
            EpisodeKind::Dead => "dead",
            EpisodeKind::ForeignFlip => "foreign_flip",
            EpisodeKind::Stall => "stall",
        }
    }
}

/// Something that happened besides the recipient's switches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Episode {
    /// What.
    pub kind: EpisodeKind,
    /// When it began (ns, logical time).
    pub start_ns: u64,
    /// When it ended.
    pub end_ns: u64,
    /// The stream concerned, or [`NO_STREAM`].
    pub stream: u32,
}

/// One record of one stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceRecord {
    /// When it arrives at the recipient (ns, same clock as `ts_ns`).
    pub arrival_ns: u64,
    /// Its header (`pos` from 1 per stream).
    pub header: EventHeader,
    /// Index into [`Trace::flips`] for a flip record, [`NO_FLIP`] for data.
    pub flip: u32,
}

const _: () = assert!(core::mem::size_of::<TraceRecord>() <= 48);

/// A generated scenario: the streams as the recipient receives them, and what really happened.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    /// The recipient the ground truth is for.
    pub recipient_id: u64,
    /// Per stream, its records by arrival (non-decreasing); record `i` has `pos == i + 1`.
    pub streams: Vec<Vec<TraceRecord>>,
    /// Encoded flip payloads, indexed by [`TraceRecord::flip`], in time (and flip id) order.
    pub flips: Vec<Vec<u8>>,
    /// The recipient's switches, in time order.
    pub switches: Vec<TruthSwitch>,
    /// Everything else that happened, by start time.
    pub episodes: Vec<Episode>,
    /// The active stream at time 0.
    pub initial_stream: u32,
    /// Length of the trace (logical time).
    pub duration_ns: u64,
    /// Logical events generated (the highest seq).
    pub logical_events: u64,
}

impl Trace {
    /// Records over all streams.
    pub fn records(&self) -> usize {
        self.streams.iter().map(Vec::len).sum()
    }

    /// The ground-truth active stream at logical time `t_ns` (a switch at `at_ns` counts from
    /// `at_ns` on).
    pub fn active_at(&self, t_ns: u64) -> u32 {
        match self.switches.partition_point(|s| s.at_ns <= t_ns) {
            0 => self.initial_stream,
            i => self.switches[i - 1].to,
        }
    }

    /// The first switch with `t_ns < at_ns <= t_ns + horizon_ns`: the label "a switch comes
    /// within the horizon".
    pub fn switch_within(&self, t_ns: u64, horizon_ns: u64) -> Option<&TruthSwitch> {
        let i = self.switches.partition_point(|s| s.at_ns <= t_ns);
        self.switches.get(i).filter(|s| s.at_ns <= t_ns.saturating_add(horizon_ns))
    }
}

/// Generates the trace `p` describes (validating `p` first). Deterministic in `p`.
pub fn generate(p: &ScenarioParams) -> Result<Trace, ScenarioError> {
    p.validate()?;
    let mut plan = plan::plan(p);
    plan.flips.sort_by_key(|f| (f.t, f.key));

    // Flip ids increase with time from a random base; the truth refers to flips by key.
    let mut ids = Rng::derived(p.seed, 0x1D5);
    let mut id = ids.next_u64() >> 4;
    let mut id_of_key = vec![0u64; plan.keys as usize];
    let mut flips = Vec::with_capacity(plan.flips.len());
    for f in &plan.flips {
        id += 1 + ids.below(3);
        let mut flip = Flip::new(f.action, id, f.target);
        flip.selector = f.selector;
        flip.expected_in_ns = f.expected_in_ns;
        flips.push(flip.to_vec().map_err(ScenarioError::Flip)?);
        id_of_key[f.key as usize] = id;
    }
    let switches = plan
        .switches
        .iter()
        .map(|s| TruthSwitch {
            at_ns: s.at,
            flip_id: id_of_key[s.key as usize],
            from: s.from,
            to: s.to,
            cause: s.cause,
            predictable: s.at - s.signal >= PREDICTABLE_LEAD_NS,
            signal_ns: s.signal,
        })
        .collect();
    let events = render::expected_events(p, &plan.surges);
    if events > MAX_EVENTS {
        return Err(ScenarioError::TooLarge { events });
    }
    let (streams, logical_events) = render::render(p, &plan);
    let mut episodes = core::mem::take(&mut plan.episodes);
    episodes.sort_by_key(|e| (e.start_ns, e.end_ns));
    Ok(Trace {
        recipient_id: p.recipient_id,
        streams,
        flips,
        switches,
        episodes,
        initial_stream: 0,
        duration_ns: p.duration_ns,
        logical_events,
    })
}
