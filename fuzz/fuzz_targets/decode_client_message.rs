//! See `ringwire_signaling::fuzzing::decode_client_message`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringwire_signaling::fuzzing::decode_client_message(data));
