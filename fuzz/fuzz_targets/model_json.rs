//! Model files: reading never panics, and what is accepted validates.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| harmonizer_core::fuzzing::model_json(data));
