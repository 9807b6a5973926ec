//! The fuzz targets' checks that need the offline crate (`fuzz/fuzz_targets/trace_file.rs`),
//! here so the corpus replays on the stable toolchain (`tests/fuzz_corpus.rs`).

use crate::eval::{evaluate, resolve_trace_file, trace_file_config};
use crate::replay::ReplayConfig;
use crate::tracefile::read;
use harmonizer_core::engine::AlwaysStage;

/// Trace files: reading never panics; a trace that is accepted replays through the engine
/// without panicking and delivers no event twice.
pub fn trace_file(data: &[u8]) {
    let Ok(mut tf) = read(&mut &data[..]) else { return };
    let base = ReplayConfig { capacity_bytes: 1 << 16, ..ReplayConfig::default() };
    let cfg = trace_file_config(&tf, &base);
    if resolve_trace_file(&mut tf, &cfg).is_err() {
        return;
    }
    if let Ok(r) = evaluate(&tf.trace, "always", AlwaysStage, &cfg) {
        assert_eq!(r.duplicates, 0, "an event delivered twice");
    }
}
