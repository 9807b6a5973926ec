//! Build script. Today it only tells cargo when to rerun; the C header generation (cbindgen into
//! include/harmonizer.h) arrives with the C API.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
}
