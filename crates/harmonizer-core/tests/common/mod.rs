//! Helpers shared by the engine tests: an engine on a manual clock, a recording handler, and
//! event/flip builders.

#![allow(dead_code)]

use harmonizer_core::clock::ManualClock;
use harmonizer_core::engine::{
    ArmingPolicy, Engine, EngineConfig, Handler, Notice, Purpose, StartAt, StreamProducer, SwitchCause,
};
use harmonizer_core::event::{EventHeader, KIND_DATA, KIND_FLIP};
use harmonizer_core::flip::{Flip, FlipAction};
use harmonizer_core::ring::{PushError, Record};

/// An owned copy of a notice, for assertions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum N {
    Subscribe {
        stream: u32,
        locator: Vec<u8>,
        from: StartAt,
        purpose: Purpose,
    },
    Unsubscribe {
        stream: u32,
    },
    Switched {
        from: u32,
        to: u32,
        flip_id: u64,
        seamless: bool,
    },
    /// A switch the engine made on a silence (`SwitchCause::Silence`).
    FailedOver {
        from: u32,
        to: u32,
        seamless: bool,
    },
    Gap {
        stream: u32,
        origin: u32,
        from: u64,
        to: u64,
    },
    Lost {
        origin: u32,
        from: u64,
        to: u64,
    },
    Conflated {
        stream: u32,
        origin: u32,
        from: u64,
        to: u64,
        dropped: u64,
    },
    Rejected {
        stream: u32,
        pos: u64,
        reason: String,
    },
    Bad {
        stream: u32,
        pos: u64,
    },
    ProducerGone {
        stream: u32,
        generation: u64,
        crashed: bool,
    },
    Truncated {
        stream: u32,
        len: u64,
        needed: u64,
    },
    Corrupt {
        stream: u32,
        offset: u64,
        what: harmonizer_core::ring::Corruption,
    },
    Stuck {
        stream: u32,
        origin: u32,
        from: u64,
        to: u64,
    },
    Silent {
        stream: u32,
        candidate: u32,
        lead_events: u64,
    },
    Mismatch {
        stream: u32,
        active: u32,
        origin: u32,
        seq: u64,
        active_pos: u64,
        pos: u64,
    },
    Blocked {
        from: u32,
        to: u32,
        flip_id: u64,
        verified: u64,
        mismatched: u64,
    },
    ProbationFailed {
        stream: u32,
        previous: u32,
        anomaly: harmonizer_core::engine::Anomaly,
        rolling_back: bool,
    },
    DryRun(harmonizer_core::engine::DryRun),
    /// A switch back after a failed probation (`SwitchCause::Rollback`).
    RolledBack {
        from: u32,
        to: u32,
        seamless: bool,
    },
}

/// What the handler saw, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    Event { stream: u32, origin: u32, seq: u64, pos: u64 },
    Notice(N),
}

/// What a `Switched` notice says about verification and positions (docs/verify.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwitchRecordSeen {
    pub from: u32,
    pub to: u32,
    pub verified: u64,
    pub mismatched: u64,
    pub matched: Option<harmonizer_core::engine::PositionPair>,
    pub cut_pos: u64,
    pub first_pos: u64,
}

#[derive(Default)]
pub struct Recorder {
    pub seen: Vec<Seen>,
    /// Indices into `seen` of the events delivered through `Handler::filled` (gap fills from
    /// a staged candidate).
    pub filled: Vec<usize>,
    /// Every `Switched` notice's record.
    pub switch_records: Vec<SwitchRecordSeen>,
}

impl Handler for Recorder {
    fn event(&mut self, stream: u32, r: &Record<'_>) {
        // The payload carries the seq and origin (a conflatable event: its key and seq): check
        // it is the event's own.
        let marked = r.header.flags & harmonizer_core::event::FLAG_CONFLATABLE != 0;
        if !(marked && r.payload == conflatable_payload(r.header.seq).as_slice()) {
            assert_eq!(
                r.payload,
                payload(r.header.origin, r.header.seq).as_slice(),
                "payload of a delivered event"
            );
        }
        self.seen.push(Seen::Event { stream, origin: r.header.origin, seq: r.header.seq, pos: r.header.pos });
    }
    fn filled(&mut self, stream: u32, r: &Record<'_>) {
        self.filled.push(self.seen.len());
        self.event(stream, r);
    }
    fn notice(&mut self, n: &Notice<'_>) {
        if let Notice::Switched { from, to, verified, mismatched, matched, cut_pos, first_pos, .. } = *n {
            self.switch_records.push(SwitchRecordSeen {
                from,
                to,
                verified,
                mismatched,
                matched,
                cut_pos,
                first_pos,
            });
        }
        let n = match *n {
            Notice::Subscribe { stream, locator, from, purpose } => {
                N::Subscribe { stream, locator: locator.to_vec(), from, purpose }
            }
            Notice::Unsubscribe { stream } => N::Unsubscribe { stream },
            Notice::Switched { from, to, seamless, cause: SwitchCause::Silence, .. } => {
                N::FailedOver { from, to, seamless }
            }
            Notice::Switched { from, to, seamless, cause: SwitchCause::Rollback, .. } => {
                N::RolledBack { from, to, seamless }
            }
            Notice::Switched { from, to, flip_id, seamless, .. } => {
                N::Switched { from, to, flip_id, seamless }
            }
            Notice::Gap { stream, origin, from_seq, to_seq } => {
                N::Gap { stream, origin, from: from_seq, to: to_seq }
            }
            Notice::Lost { origin, from_seq, to_seq } => N::Lost { origin, from: from_seq, to: to_seq },
            Notice::FlipRejected { stream, pos, reason } => {
                N::Rejected { stream, pos, reason: reason.to_string() }
            }
            Notice::BadEvent { stream, pos, .. } => N::Bad { stream, pos },
            Notice::ProducerGone { stream, generation, crashed, .. } => {
                N::ProducerGone { stream, generation, crashed }
            }
            Notice::RingFileTruncated { stream, len, needed } => N::Truncated { stream, len, needed },
            Notice::RingCorrupt { stream, offset, what } => N::Corrupt { stream, offset, what },
            Notice::Stuck { stream, origin, from_seq, to_seq, .. } => {
                N::Stuck { stream, origin, from: from_seq, to: to_seq }
            }
            Notice::Conflated { stream, origin, from_seq, to_seq, dropped } => {
                N::Conflated { stream, origin, from: from_seq, to: to_seq, dropped }
            }
            Notice::ActiveSilent { stream, candidate, lead_events, .. } => {
                N::Silent { stream, candidate, lead_events }
            }
            Notice::Mismatch { stream, active, origin, seq, active_pos, pos } => {
                N::Mismatch { stream, active, origin, seq, active_pos, pos }
            }
            Notice::SwitchBlocked { from, to, flip_id, verified, mismatched, .. } => {
                N::Blocked { from, to, flip_id, verified, mismatched }
            }
            Notice::ProbationFailed { stream, previous, anomaly, rolling_back } => {
                N::ProbationFailed { stream, previous, anomaly, rolling_back }
            }
            Notice::DryRun { report } => N::DryRun(*report),
        };
        self.seen.push(Seen::Notice(n));
    }
}

impl Recorder {
    /// (origin, seq) of every delivered event, in order.
    pub fn delivered(&self) -> Vec<(u32, u64)> {
        self.seen
            .iter()
            .filter_map(|s| match s {
                Seen::Event { origin, seq, .. } => Some((*origin, *seq)),
                _ => None,
            })
            .collect()
    }
    /// Streams the events came from, in order.
    pub fn streams(&self) -> Vec<u32> {
        self.seen
            .iter()
            .filter_map(|s| match s {
                Seen::Event { stream, .. } => Some(*stream),
                _ => None,
            })
            .collect()
    }
    /// The `Subscribe` notices: (stream, start, purpose).
    pub fn subscribes(&self) -> Vec<(u32, StartAt, Purpose)> {
        self.notices()
            .into_iter()
            .filter_map(|n| match n {
                N::Subscribe { stream, from, purpose, .. } => Some((stream, from, purpose)),
                _ => None,
            })
            .collect()
    }
    /// Every notice but the initial stream's `Subscribe` of the first poll (tested on its own,
    /// with `all_notices`).
    pub fn notices(&self) -> Vec<N> {
        self.all_notices()
            .into_iter()
            .filter(|n| !matches!(n, N::Subscribe { purpose: Purpose::Initial, .. }))
            .collect()
    }
    pub fn all_notices(&self) -> Vec<N> {
        self.seen
            .iter()
            .filter_map(|s| match s {
                Seen::Notice(n) => Some(n.clone()),
                _ => None,
            })
            .collect()
    }
}

/// The payload of a conflatable test event: its conflation key, `seq % 8`, then its seq.
pub fn conflatable_payload(seq: u64) -> Vec<u8> {
    let mut p = (seq % 8).to_le_bytes().to_vec();
    p.extend_from_slice(&seq.to_le_bytes());
    p
}

pub fn payload(origin: u32, seq: u64) -> Vec<u8> {
    let mut p = seq.to_le_bytes().to_vec();
    p.extend_from_slice(&origin.to_le_bytes());
    p
}

/// Position of `seq` in `stream`: streams number positions differently.
pub fn pos_of(stream: u32, seq: u64) -> u64 {
    1_000 * (u64::from(stream) + 1) + seq * (u64::from(stream) + 2)
}

pub fn data(stream: u32, origin: u32, seq: u64) -> EventHeader {
    EventHeader { pos: pos_of(stream, seq), seq, ts_ns: seq * 1_000, origin, kind: KIND_DATA, flags: 0 }
}

pub fn push_data(p: &mut StreamProducer, origin: u32, seq: u64) -> Result<(), PushError> {
    let stream = p.stream();
    p.push(&data(stream, origin, seq), &payload(origin, seq))
}

pub fn flip(action: FlipAction, flip_id: u64, target: u32) -> Flip<'static> {
    let mut f = Flip::new(action, flip_id, target);
    f.locator = b"loc";
    f
}

/// Pushes a flip event at position `pos` (its seq/origin are not tracked).
pub fn push_flip(p: &mut StreamProducer, pos: u64, f: &Flip<'_>) {
    let bytes = f.to_vec().unwrap();
    push_raw_flip(p, pos, &bytes);
}

/// Pushes a flip event at position `pos` written upstream at `ts_ns`.
pub fn push_flip_at(p: &mut StreamProducer, pos: u64, ts_ns: u64, f: &Flip<'_>) {
    let h = EventHeader { pos, seq: 0, ts_ns, origin: 0, kind: KIND_FLIP, flags: 0 };
    p.push(&h, &f.to_vec().unwrap()).unwrap();
}

pub fn push_raw_flip(p: &mut StreamProducer, pos: u64, bytes: &[u8]) {
    let h = EventHeader { pos, seq: 0, ts_ns: 0, origin: 0, kind: KIND_FLIP, flags: 0 };
    p.push(&h, bytes).unwrap();
}

/// An engine of `streams` streams on a manual clock, with `policy`.
pub fn engine(
    cfg: EngineConfig,
    policy: Box<dyn ArmingPolicy>,
) -> (Engine, Vec<StreamProducer>, ManualClock) {
    let clock = ManualClock::at(1);
    let (e, p) = Engine::with(cfg, policy, Box::new(clock.clone())).unwrap();
    (e, p, clock)
}

/// Polls until several polls in a row deliver nothing (a poll may consume duplicates, flips or
/// skipped events without delivering any).
pub fn poll_all(e: &mut Engine, r: &mut Recorder) -> usize {
    let mut total = 0;
    let mut idle = 0;
    while idle < 8 {
        let n = e.poll(64, r);
        total += n;
        idle = if n == 0 { idle + 1 } else { 0 };
    }
    total
}
