//! C API call sequences with careless values (NULLs, wrong lengths and struct sizes, wrong
//! states, unknown enums): no panic inside the library, only defined statuses, lent memory
//! readable, delivery in order.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| harmonizer::fuzzing::c_api(data));
