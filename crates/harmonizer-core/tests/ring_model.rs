//! Property test: random pushes, pops, batches, wraps, trims, window and role changes, checked
//! step by step against a `VecDeque` model of what the ring must hold.
//!
//! The model reproduces the byte layout (8-byte frames, pad frames at the buffer's end) so it
//! predicts exactly when an active ring is full and how many records a staged ring evicts.

#![cfg(not(loom))]

use std::collections::VecDeque;

use harmonizer_core::event::EventHeader;
use harmonizer_core::ring::{ring, Consumer, Producer, PushError, RingConfig, RingError, Role};
use proptest::prelude::*;

const MAX_PAYLOAD: usize = 60;

#[derive(Clone, Debug)]
enum Op {
    Push(usize),
    Batch(Vec<usize>),
    Pop,
    /// Read up to n in a chunk; put the last one back when the flag is set.
    Chunk(usize, bool),
    Trim(usize),
    Window(usize),
    SetRole(Role),
    /// Pushes while the consumer holds the staged front.
    HeldPush(Vec<usize>),
    Inspect,
}

fn op() -> impl Strategy<Value = Op> {
    let len = 0..=MAX_PAYLOAD + 2; // sometimes too large
    prop_oneof![
        6 => len.clone().prop_map(Op::Push),
        2 => prop::collection::vec(0..=MAX_PAYLOAD, 1..12).prop_map(Op::Batch),
        4 => Just(Op::Pop),
        2 => (1usize..10, any::<bool>()).prop_map(|(n, u)| Op::Chunk(n, u)),
        2 => (1usize..6).prop_map(Op::Trim),
        1 => (0usize..40).prop_map(Op::Window),
        1 => prop_oneof![Just(Role::Idle), Just(Role::Staged), Just(Role::Active)].prop_map(Op::SetRole),
        1 => prop::collection::vec(0..=MAX_PAYLOAD, 1..8).prop_map(Op::HeldPush),
        1 => Just(Op::Inspect),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct MRec {
    seq: u64,
    len: usize,
    /// Frame start (after any pad frame).
    start: u64,
    /// Next frame start.
    end: u64,
    after_drop: bool,
}

struct Model {
    cap: u64,
    head: u64,
    tail: u64,
    q: VecDeque<MRec>,
    role: Role,
    window: usize,
    evicted: u64,
    dropped: u64,
    loss_pending: bool,
    next_seq: u64,
}

fn frame(len: usize) -> u64 {
    ((40 + len as u64) + 7) & !7
}

impl Model {
    /// Where a record would start if it fits.
    fn fits(&self, len: usize) -> Option<u64> {
        let f = frame(len);
        let to_end = self.cap - self.tail % self.cap;
        let (pad, need) = if f <= to_end { (0, f) } else { (to_end, to_end + f) };
        (self.tail - self.head + need <= self.cap).then_some(self.tail + pad)
    }

    fn store(&mut self, start: u64, len: usize) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let end = start + frame(len);
        self.q.push_back(MRec { seq, len, start, end, after_drop: self.loss_pending });
        self.loss_pending = false;
        self.tail = end;
        seq
    }

    /// The outcome a push must have: Ok(seq) or the error.
    fn push(&mut self, len: usize, held: bool) -> Result<u64, PushError> {
        if len > MAX_PAYLOAD {
            return Err(PushError::TooLarge { len, max: MAX_PAYLOAD });
        }
        match self.role {
            Role::Idle => {
                self.loss_pending = true; // the next stored record is flagged
                Err(PushError::NotSubscribed)
            }
            Role::Active => self.fits(len).map(|s| self.store(s, len)).ok_or(PushError::Full),
            Role::Staged => loop {
                if let Some(start) = self.fits(len) {
                    if held || self.q.len() < self.window {
                        return Ok(self.store(start, len));
                    }
                }
                if held {
                    self.dropped += 1;
                    self.loss_pending = true;
                    return Err(PushError::Shed);
                }
                let front = *self.q.front().expect("an empty ring always has room");
                if self.head < front.start {
                    self.head = front.start; // a pad frame goes first
                } else {
                    self.q.pop_front();
                    self.head = front.end;
                    self.evicted += 1;
                }
            },
        }
    }

    fn pop(&mut self) -> Option<MRec> {
        let r = self.q.pop_front()?;
        self.head = r.end;
        Some(r)
    }
}

fn header(seq: u64) -> EventHeader {
    EventHeader { pos: seq * 3 + 1, seq, ts_ns: seq << 20, origin: (seq % 7) as u32, kind: 0, flags: 0 }
}

fn fill(seq: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (seq as usize).wrapping_mul(131).wrapping_add(i) as u8;
    }
}

fn check(seq_expected: &MRec, header_got: &EventHeader, payload: &[u8], after_drop: bool) {
    assert_eq!(*header_got, header(seq_expected.seq));
    let mut want = vec![0u8; seq_expected.len];
    fill(seq_expected.seq, &mut want);
    assert_eq!(payload, &want[..], "payload of seq {}", seq_expected.seq);
    assert_eq!(after_drop, seq_expected.after_drop, "after_drop of seq {}", seq_expected.seq);
}

fn push_one(p: &mut Producer, m: &mut Model, len: usize, held: bool) {
    let want = m.push(len, held);
    let got = p.reserve(len).map(|mut slot| {
        let seq = want.expect("ring stored a record the model refused");
        *slot.header_mut() = header(seq);
        fill(seq, slot.payload_mut());
        slot.commit();
        seq
    });
    assert_eq!(got, want);
}

fn compare_all(c: &mut Consumer, m: &Model) {
    assert_eq!(c.evicted(), m.evicted);
    assert_eq!(c.dropped(), m.dropped);
    match m.role {
        Role::Staged => {
            let mut v = c.staged().unwrap();
            assert_eq!(v.len(), m.q.len());
            let mut it = v.iter();
            for want in &m.q {
                let r = it.next().expect("model has more records");
                check(want, r.header, r.payload, r.after_drop);
            }
            assert!(it.next().is_none());
        }
        Role::Active | Role::Idle => {}
    }
}

fn run(cap: usize, window: usize, ops: Vec<Op>) {
    let cfg = RingConfig::new(cap, MAX_PAYLOAD).with_window(window);
    let (mut p, mut c) = ring(cfg).unwrap();
    let cap = p.capacity() as u64;
    let mut m = Model {
        cap,
        head: 0,
        tail: 0,
        q: VecDeque::new(),
        role: Role::Active,
        window: window.clamp(1, (cap / 40) as usize),
        evicted: 0,
        dropped: 0,
        loss_pending: false,
        next_seq: 0,
    };
    for op in ops {
        match op {
            Op::Push(len) => push_one(&mut p, &mut m, len, false),
            Op::Batch(lens) => {
                // A batch is only visible to the model at its end, which is where we look.
                let mut b = p.batch();
                for len in lens {
                    let want = m.push(len, false);
                    let got = b.reserve(len).map(|mut slot| {
                        let seq = want.expect("ring stored a record the model refused");
                        *slot.header_mut() = header(seq);
                        fill(seq, slot.payload_mut());
                        slot.commit();
                        seq
                    });
                    assert_eq!(got, want);
                }
            }
            Op::Pop => match c.peek() {
                Ok(r) => {
                    let want = m.pop();
                    match (r, want) {
                        (Some(r), Some(w)) => check(&w, r.header, r.payload, r.after_drop),
                        (None, None) => {}
                        (r, w) => panic!("ring {:?} vs model {:?}", r.map(|r| r.header.seq), w),
                    }
                    if want.is_some() {
                        c.release().unwrap();
                    } else {
                        assert_eq!(c.release(), Err(RingError::NothingToRelease));
                    }
                }
                Err(e) => assert_eq!(e, RingError::WrongRole { expected: Role::Active, actual: m.role }),
            },
            Op::Chunk(n, unread) => match c.read_chunk(n) {
                Ok(mut chunk) => {
                    let mut last = None;
                    while let Some(r) = chunk.next() {
                        let head_before = m.head;
                        let w = m.pop().expect("ring has more records than the model");
                        check(&w, r.header, r.payload, r.after_drop);
                        last = Some((w, head_before));
                    }
                    if chunk.len() < n {
                        assert!(m.q.is_empty());
                    }
                    if unread {
                        assert_eq!(chunk.unread(), last.is_some());
                        if let Some((w, head_before)) = last {
                            m.q.push_front(w);
                            // A commit frees up to the record put back, pad frame included;
                            // with nothing left to commit, nothing moves.
                            m.head = if chunk.is_empty() { head_before } else { w.start };
                        }
                    }
                    chunk.commit();
                }
                Err(e) => assert_eq!(e, RingError::WrongRole { expected: Role::Active, actual: m.role }),
            },
            Op::Trim(n) => match c.staged() {
                Ok(mut v) => {
                    for _ in 0..n {
                        assert_eq!(v.pop_front(), m.pop().is_some());
                    }
                }
                Err(e) => assert_eq!(e, RingError::WrongRole { expected: Role::Staged, actual: m.role }),
            },
            Op::Window(w) => {
                let set = c.set_window(w);
                m.window = w.clamp(1, (cap / 40) as usize);
                assert_eq!(set, m.window);
            }
            Op::SetRole(role) => {
                c.set_role(role);
                if role == Role::Idle && m.role != Role::Idle {
                    m.q.clear();
                    m.head = m.tail;
                }
                m.role = role;
            }
            Op::HeldPush(lens) => {
                if m.role == Role::Staged {
                    let _held = c.staged().unwrap();
                    for len in lens {
                        push_one(&mut p, &mut m, len, true);
                    }
                }
            }
            Op::Inspect => compare_all(&mut c, &m),
        }
    }
    compare_all(&mut c, &m);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 4 } else { 256 },
        // Miri runs isolated (no file system): keep failures in memory there.
        failure_persistence: if cfg!(miri) {
            None
        } else {
            ProptestConfig::default().failure_persistence
        },
        ..ProptestConfig::default()
    })]

    #[test]
    fn ring_matches_model(
        cap in prop_oneof![Just(256usize), Just(512), Just(1000), Just(4096)],
        window in 1usize..30,
        ops in prop::collection::vec(op(), 1..if cfg!(miri) { 40 } else { 300 }),
    ) {
        run(cap, window, ops);
    }
}
