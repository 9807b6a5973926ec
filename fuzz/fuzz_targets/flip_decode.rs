//! Flip records from another process or the network: decoding never panics, and what decodes
//! re-encodes canonically.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| harmonizer_core::fuzzing::flip_decode(data));
