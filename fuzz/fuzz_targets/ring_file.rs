//! Ring files scribbled on before an engine attaches and while it reads them: never a panic, a
//! hang or a read outside the mapping; delivery stays in order.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| harmonizer_core::fuzzing::ring_file(data));
