//! See `ringwire_signaling::fuzzing::decode_server_message`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringwire_signaling::fuzzing::decode_server_message(data));
