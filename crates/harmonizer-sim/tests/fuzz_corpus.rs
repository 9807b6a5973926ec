//! Replays the `trace_file` fuzz target's corpus (`fuzz/corpus/trace_file/`) through its check
//! (`harmonizer_sim::fuzzing::trace_file`) on the stable toolchain, as part of the README's test
//! command.

use std::path::Path;

#[test]
fn trace_file_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/trace_file");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let ok = std::panic::catch_unwind(|| harmonizer_sim::fuzzing::trace_file(&data));
        assert!(ok.is_ok(), "{} panicked", path.display());
        n += 1;
    }
    assert!(n >= 3, "the corpus holds the seeds");
    // The seeds are valid traces (the fuzzer starts from inputs the reader accepts).
    for seed in ["two-streams", "flip-and-hole", "cohort-announce"] {
        let data = std::fs::read(dir.join(seed)).unwrap();
        harmonizer_sim::tracefile::read(&mut &data[..]).unwrap_or_else(|e| panic!("{seed}: {e}"));
    }
}
