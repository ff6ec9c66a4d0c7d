//! Received video into our decoders: arbitrary and edited H.264 and AV1 access units,
//! in arbitrary sequences, into `H264Decoder` and `Av1Decoder`; see
//! `ringwire_media::fuzzing`.
#![no_main]

use ringwire_media::fuzzing::{VideoScenario, run_video_scenario};

libfuzzer_sys::fuzz_target!(|scenario: VideoScenario| {
    run_video_scenario(&scenario);
});
