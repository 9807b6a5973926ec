//! Replays the `c_api` fuzz target's corpus (`fuzz/corpus/c_api/`) through its check
//! (`harmonizer::fuzzing::c_api`) on the stable toolchain, as part of the README's test command.

#![cfg(not(loom))]

#[test]
#[cfg_attr(miri, ignore = "files")]
fn c_api_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/c_api");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let ok = std::panic::catch_unwind(|| harmonizer::fuzzing::c_api(&data));
        assert!(ok.is_ok(), "{} panicked", path.display());
        n += 1;
    }
    assert!(n > 0, "the corpus is empty");
}
