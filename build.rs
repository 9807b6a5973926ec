//! Build script of the C library: generates the C header from `src/` (the C API) and the event
//! header it shares with Rust (`crates/harmonizer-core/src/event.rs`) with cbindgen (pinned in
//! Cargo.toml, configured by `cbindgen.toml`). Only this package builds cbindgen: a Rust user of
//! harmonizer-core never does.
//!
//! The header is written to `$OUT_DIR/harmonizer.h` on every build. The checked-in copy,
//! `include/harmonizer.h`, is rewritten only when `HZ_WRITE_HEADER=1` is set (or it does not
//! exist), so that a test (`tests/header.rs`) can catch a committed header that no longer
//! matches the code. Building docs (`DOCS_RS`) skips generation: the source tree may be
//! read-only and the header is not needed.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=crates/harmonizer-core/src/event.rs");
    println!("cargo:rerun-if-changed=include/harmonizer.h");
    println!("cargo:rerun-if-env-changed=HZ_WRITE_HEADER");
    println!("cargo:rerun-if-env-changed=DOCS_RS");
    // `cfg(shm)`: file-backed rings (src/shm), on Linux (open-file-description locks) and
    // outside loom (the mapping holds real atomics, not loom's).
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    if linux && std::env::var_os("CARGO_CFG_LOOM").is_none() {
        println!("cargo:rustc-cfg=shm");
    }
    if std::env::var_os("DOCS_RS").is_some() {
        return;
    }
    let crate_dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let config = match cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")) {
        Ok(c) => c,
        Err(e) => {
            println!("cargo:warning=cbindgen.toml: {e}");
            std::process::exit(1);
        }
    };
    // Only the C API's module (cbindgen follows its `mod` items) and the event header it shares
    // with Rust: the rest of the crate's public constants are not part of the C API.
    let builder = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("crates/harmonizer-core/src/event.rs"))
        .with_src(crate_dir.join("src/lib.rs"));
    let bindings = match builder.generate() {
        Ok(b) => b,
        Err(e) => {
            println!("cargo:warning=cbindgen could not generate the header: {e}");
            std::process::exit(1);
        }
    };
    let mut text = Vec::new();
    bindings.write(&mut text);
    if let Err(e) = std::fs::write(out_dir.join("harmonizer.h"), &text) {
        println!("cargo:warning=could not write the header to OUT_DIR: {e}");
        std::process::exit(1);
    }
    // The source tree may be read-only (a vendored or packaged crate): then only OUT_DIR gets it.
    let checked_in = crate_dir.join("include").join("harmonizer.h");
    let asked = std::env::var_os("HZ_WRITE_HEADER").is_some_and(|v| v == "1");
    let stale = std::fs::read(&checked_in).map_or(true, |old| old != text);
    if (asked || !checked_in.exists()) && stale {
        match std::fs::write(&checked_in, &text) {
            Ok(()) => println!("cargo:warning=include/harmonizer.h regenerated"),
            Err(e) => {
                println!("cargo:warning=include/harmonizer.h not written ({e}): the header is in OUT_DIR")
            }
        }
    }
}
