//! Engine operation sequences: pushes of data and flips (well formed or not), polls, arming,
//! time, the stuck-gap calls. Never panics; delivery stays exactly once and in order.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| harmonizer_core::fuzzing::engine_ops(data));
