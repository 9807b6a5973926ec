//! A fixed workload for counting the predictor's instructions (`scripts/predictor-cost.sh` runs
//! it under callgrind): the `poll64` loop of `benches/predictor.rs`, single-threaded on a manual
//! clock: 64 events pushed into the active stream of a 3-stream engine, then one
//! `Engine::poll(64)` (64 `observe` calls and one `plan` over two candidates), `N / 64` times,
//! with `NeverStage` or with the predictor (aggressive preset, the shipped model). The
//! difference between the two counts, per event, is what the predictor adds in place. The
//! count is the same on every run, whatever the machine is doing.
//!
//! `cargo run --release --example predictor_cost -- [never|predictor] [N]`

use std::hint::black_box;

use harmonizer_core::clock::ManualClock;
use harmonizer_core::engine::{ArmingPolicy, Engine, EngineConfig, Handler, NeverStage, Notice};
use harmonizer_core::event::{EventHeader, FLAG_UPSTREAM_ERROR, KIND_DATA};
use harmonizer_core::predict::{Predictor, PredictorConfig, Preset};
use harmonizer_core::ring::Record;

struct Sink(u64);

impl Handler for Sink {
    fn event(&mut self, _stream: u32, r: &Record<'_>) {
        self.0 = self.0.wrapping_add(r.header.seq);
    }
    fn notice(&mut self, _: &Notice<'_>) {}
}

fn main() {
    let mut args = std::env::args().skip(1);
    let policy: Box<dyn ArmingPolicy> = match args.next().as_deref() {
        Some("never") => Box::new(NeverStage),
        _ => Box::new(
            Predictor::with_default_model(7, PredictorConfig::preset(Preset::Aggressive))
                .expect("valid preset"),
        ),
    };
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let clock = ManualClock::at(1);
    let (mut e, mut p) =
        Engine::with(EngineConfig::new(7, 3, 1 << 20, 64), policy, Box::new(clock.clone())).unwrap();
    let payload = [0u8; 32];
    let mut sink = Sink(0);
    let mut seq = 1u64;
    for _ in 0..n / 64 {
        for _ in 0..64 {
            let flags = if seq % 97 == 0 { FLAG_UPSTREAM_ERROR } else { 0 };
            let h = EventHeader { pos: seq + 1, seq, ts_ns: seq * 1_000, origin: 0, kind: KIND_DATA, flags };
            let _ = p[0].push(&h, &payload);
            seq += 1;
        }
        clock.advance(64_000);
        black_box(e.poll(64, &mut sink));
    }
    black_box(sink.0);
}
