//! The operations fuzzer of the call controller; see `ringwire_signaling::fuzzing`.
#![no_main]

use ringwire_signaling::fuzzing::{Scenario, run_scenario};

libfuzzer_sys::fuzz_target!(|scenario: Scenario| {
    run_scenario(&scenario);
});
