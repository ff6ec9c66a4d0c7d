//! See `ringwire_signaling::fuzzing::token_verify`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringwire_signaling::fuzzing::token_verify(data));
