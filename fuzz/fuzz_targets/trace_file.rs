//! Trace files (`harmonize eval --trace`): reading never panics, and an accepted trace replays
//! through the real engine delivering no event twice.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| harmonizer_sim::fuzzing::trace_file(data));
