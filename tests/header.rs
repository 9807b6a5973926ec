//! The checked-in C header is what build.rs generates from the code (docs/design.md §7: CI fails
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

/// Every function is declared once and every exported name carries the `hz_`/`HZ_` prefix
/// (the header is the whole C namespace the library claims).
#[test]
fn the_header_declares_each_function_once_with_the_prefix() {
    let h = include_str!("../include/harmonizer.h");
    let mut names: Vec<&str> = h
        .lines()
        .filter(|l| !l.starts_with([' ', '#', '/']) && !l.starts_with("typedef") && l.contains('('))
        .filter_map(|l| l.split('(').next()?.split([' ', '*']).next_back())
        .collect();
    assert!(names.len() > 30, "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("hz_")), "{names:?}");
    let n = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), n, "a function is declared twice");
    for line in h.lines().filter(|l| l.starts_with("#define ")) {
        let name = line.split_whitespace().nth(1).unwrap_or("");
        assert!(name.starts_with("HZ_") || name == "HARMONIZER_H", "{line}");
    }
}
