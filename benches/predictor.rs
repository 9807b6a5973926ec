//! The predictor's cost (issue 4's goal: at most 5 ns per event).
//!
//! Group `predictor`, throughput in events:
//!
//! - `observe_batch64`: `Predictor::observe` on 64 events that share an arrival time (one poll
//!   batch under load), then the next batch 64 µs later: the per-event path plus one decay
//!   fold per batch.
//! - `observe_one_per_poll`: every event at its own time, so every event pays the fold (three
//!   `exp_neg`): the worst case, light load polled event by event.
//! - `plan_2_candidates`: one `plan` (features, two candidates scored, threshold, windows) per
//!   element: the per-poll cost.
//! - `poll64_never` / `poll64_predictor`: single-threaded, 64 events pushed and delivered by
//!   `Engine::poll(64)` with `NeverStage` and with the predictor: the difference is the
//!   predictor's cost per event in place (observe per event, plan per poll).
//! - `replay_small_trace`: a generated 120 s scenario (`ScenarioParams::small(1)`) replayed
//!   through a real engine with the predictor, per trace record: what training and evaluation
//!   runs cost (one poll per arrival, the simulated application around it).

use std::hint::black_box;

use criterion::{criterion_group, Criterion, Throughput};
use harmonizer_core::clock::ManualClock;
use harmonizer_core::engine::{
    ArmingPolicy, Candidate, Engine, EngineConfig, Handler, NeverStage, Notice, StagePlan,
};
use harmonizer_core::event::{EventHeader, FLAG_UPSTREAM_ERROR, KIND_DATA};
use harmonizer_core::predict::{LearnConfig, OnlineConfig, Predictor, PredictorConfig, Preset};
use harmonizer_core::ring::Record;
use harmonizer_sim::replay::{replay, ReplayConfig};
use harmonizer_sim::scenario::{generate, ScenarioParams};

fn header(seq: u64) -> EventHeader {
    let flags = if seq % 97 == 0 { FLAG_UPSTREAM_ERROR } else { 0 };
    EventHeader { pos: seq + 1, seq, ts_ns: seq * 1_000, origin: 0, kind: KIND_DATA, flags }
}

fn candidate(stream: u32, staged: bool) -> Candidate {
    Candidate {
        stream,
        index: stream as usize,
        staged,
        announced: false,
        armed: false,
        previous: stream == 2,
        retained_bytes: 4096,
        evicted: 0,
        window: if staged { 100 } else { 0 },
    }
}

fn predictor() -> Predictor {
    Predictor::with_default_model(7, PredictorConfig::preset(Preset::Aggressive)).expect("valid preset")
}

/// Recording labelled rows (the model stays the shipped one, so the plan scores as without);
/// with `online`, learning from them too (the model then moves with the bench's world, in which
/// no switch ever comes, and scores differently).
fn learning(online: bool) -> Predictor {
    let learn = LearnConfig { online: online.then(OnlineConfig::default), ..LearnConfig::default() };
    predictor().with_learning(learn).expect("valid learning settings")
}

struct Sink(u64);

impl Handler for Sink {
    fn event(&mut self, _stream: u32, r: &Record<'_>) {
        self.0 = self.0.wrapping_add(r.header.seq);
    }
    fn notice(&mut self, _: &Notice<'_>) {}
}

fn poll64(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    policy: Box<dyn ArmingPolicy>,
) {
    let cfg = EngineConfig::new(7, 3, 1 << 20, 64);
    let clock = ManualClock::at(1);
    let (mut e, mut p) = Engine::with(cfg, policy, Box::new(clock.clone())).unwrap();
    let payload = [0u8; 32];
    let mut seq = 1u64;
    let mut sink = Sink(0);
    c.bench_function(name, |b| {
        b.iter(|| {
            for _ in 0..64 {
                let _ = p[0].push(&header(seq), &payload);
                seq += 1;
            }
            clock.advance(64_000);
            black_box(e.poll(64, &mut sink));
        })
    });
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("predictor");
    g.throughput(Throughput::Elements(64));
    let payload = [0u8; 32];
    {
        let mut p = predictor();
        let mut now = 1_000u64;
        let mut seq = 0u64;
        g.bench_function("observe_batch64", |b| {
            b.iter(|| {
                now += 64_000;
                for _ in 0..64 {
                    seq += 1;
                    let h = header(seq);
                    p.observe(0, &Record { header: &h, payload: &payload, after_drop: false }, now);
                }
            })
        });
        black_box(p.last_scores().len());
    }
    {
        let mut p = predictor();
        let mut now = 1_000u64;
        let mut seq = 0u64;
        g.bench_function("observe_one_per_poll", |b| {
            b.iter(|| {
                for _ in 0..64 {
                    seq += 1;
                    now += 1_000;
                    let h = header(seq);
                    p.observe(0, &Record { header: &h, payload: &payload, after_drop: false }, now);
                }
            })
        });
    }
    g.throughput(Throughput::Elements(1));
    {
        let mut p = predictor();
        let mut now = 1_000u64;
        let mut seq = 0u64;
        let cands = [candidate(1, true), candidate(2, false)];
        let mut plan = StagePlan::default();
        g.bench_function("plan_2_candidates", |b| {
            b.iter(|| {
                seq += 1;
                now += 50_000;
                let h = header(seq);
                p.observe(0, &Record { header: &h, payload: &payload, after_drop: false }, now);
                p.plan(&cands, 100, now, &mut plan);
                black_box(plan.entries().len());
            })
        });
    }
    {
        // Issue 20: the same with recording and the online mode on (snapshots every 100 ms of
        // the bench's clock, labelled and learned from 5 s later; the rows are never drained,
        // so once the ring is full they are counted and dropped).
        for (name, online) in [("plan_2_candidates_recording", false), ("plan_2_candidates_online", true)] {
            let mut p = learning(online);
            let mut now = 1_000u64;
            let mut seq = 0u64;
            let cands = [candidate(1, true), candidate(2, false)];
            let mut plan = StagePlan::default();
            g.bench_function(name, |b| {
                b.iter(|| {
                    seq += 1;
                    now += 50_000;
                    let h = header(seq);
                    p.observe(0, &Record { header: &h, payload: &payload, after_drop: false }, now);
                    p.plan(&cands, 100, now, &mut plan);
                    black_box(plan.entries().len());
                })
            });
            black_box(p.learn_stats());
        }
    }
    g.throughput(Throughput::Elements(64));
    poll64(&mut g, "poll64_never", Box::new(NeverStage));
    poll64(&mut g, "poll64_predictor", Box::new(predictor()));
    poll64(&mut g, "poll64_predictor_recording", Box::new(learning(false)));
    poll64(&mut g, "poll64_predictor_online", Box::new(learning(true)));
    let trace = generate(&ScenarioParams::small(1)).expect("a valid scenario");
    let cfg = ReplayConfig { snapshot_every_ns: 0, ..Default::default() };
    g.throughput(Throughput::Elements(trace.records() as u64));
    g.sample_size(10);
    g.bench_function("replay_small_trace", |b| {
        b.iter(|| {
            let p = Predictor::with_default_model(
                trace.recipient_id,
                PredictorConfig::preset(Preset::Aggressive),
            )
            .expect("valid preset");
            black_box(replay(&trace, p, &cfg).expect("a valid engine").delivered)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
