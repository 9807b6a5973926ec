//! Build script: generates the C header from `src/ffi/` with cbindgen (pinned in Cargo.toml,
//! configured by `cbindgen.toml`).
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
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=src/event.rs");
    println!("cargo:rerun-if-changed=include/harmonizer.h");
    println!("cargo:rerun-if-env-changed=HZ_WRITE_HEADER");
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
        .with_src(crate_dir.join("src/event.rs"))
        .with_src(crate_dir.join("src/ffi/mod.rs"));
    let bindings = match builder.generate() {
        Ok(b) => b,
        Err(e) => {
            println!("cargo:warning=cbindgen could not generate the header: {e}");
            std::process::exit(1);
        }
    };
    bindings.write_to_file(out_dir.join("harmonizer.h"));
    let checked_in = crate_dir.join("include").join("harmonizer.h");
    let asked = std::env::var_os("HZ_WRITE_HEADER").is_some_and(|v| v == "1");
    if (asked || !checked_in.exists()) && bindings.write_to_file(&checked_in) {
        println!("cargo:warning=include/harmonizer.h regenerated");
    }
}
