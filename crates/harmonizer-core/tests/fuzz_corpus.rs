//! Replays the fuzz corpus checked in under `fuzz/corpus/` through the fuzz targets' own checks
//! (`harmonizer_core::fuzzing`), on the stable toolchain, as part of the README's test command:
//! a crash the fuzzer once found, saved in the corpus, stays fixed. `scripts/fuzz.sh` runs the
//! targets themselves (nightly, cargo-fuzz) and grows the corpus.

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let ok = std::panic::catch_unwind(|| check(&data));
        assert!(ok.is_ok(), "{target}: {} panicked", path.display());
        n += 1;
    }
    assert!(n > 0, "{target}: the corpus is empty");
}

#[test]
#[cfg_attr(miri, ignore = "files")]
fn flip_decode_corpus() {
    replay("flip_decode", harmonizer_core::fuzzing::flip_decode);
}

#[test]
#[cfg_attr(miri, ignore = "files")]
fn model_json_corpus() {
    replay("model_json", harmonizer_core::fuzzing::model_json);
}

#[test]
#[cfg_attr(miri, ignore = "files")]
fn engine_ops_corpus() {
    replay("engine_ops", harmonizer_core::fuzzing::engine_ops);
}

#[test]
#[cfg(target_os = "linux")]
#[cfg_attr(miri, ignore = "files")]
fn ring_file_corpus() {
    replay("ring_file", harmonizer_core::fuzzing::ring_file);
}
