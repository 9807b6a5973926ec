//! The checked-in C header is what build.rs generates from the code (DESIGN.md §7: CI fails
//! when it drifts). After changing the C API, regenerate it with `HZ_WRITE_HEADER=1 cargo build`
//! and commit `include/harmonizer.h`.

#![cfg(not(loom))]

#[test]
fn the_committed_header_matches_the_code() {
    let generated = include_str!(concat!(env!("OUT_DIR"), "/harmonizer.h"));
    let committed = include_str!("../include/harmonizer.h");
    assert!(
        generated == committed,
        "include/harmonizer.h differs from the header the code generates: run `HZ_WRITE_HEADER=1 cargo build` and commit it"
    );
}
