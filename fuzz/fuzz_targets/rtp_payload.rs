//! Our handling of what arrives from the network: opus payloads and levels into the
//! mixer, datagrams and SDP into the media server, SRTP audio from connected
//! participants; see `ringwire_media::fuzzing`.
#![no_main]

use ringwire_media::fuzzing::{PayloadScenario, run_payload_scenario};

libfuzzer_sys::fuzz_target!(|scenario: PayloadScenario| {
    run_payload_scenario(&scenario);
});
