//! The operations fuzzer of the jitter buffer; see `ringwire_media::fuzzing`.
#![no_main]

use ringwire_media::fuzzing::{JitterScenario, run_jitter_ops};

libfuzzer_sys::fuzz_target!(|scenario: JitterScenario| {
    run_jitter_ops(&scenario);
});
