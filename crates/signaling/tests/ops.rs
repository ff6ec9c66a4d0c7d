//! Replays the fuzz targets of `fuzz/` on stable over seeded inputs, so that CI
//! exercises the operations fuzzer's checks without nightly or cargo-fuzz.
#![cfg(feature = "arbitrary")]

use ringwire_signaling::fuzzing::{self, Report};

/// Inputs per target; each is a few hundred bytes to a few KiB.
const INPUTS: u64 = 3000;

/// The input for run `i`: its length varies so that short and long scenarios mix.
fn input(target: u64, i: u64) -> Vec<u8> {
    let seed = target << 32 | i;
    let len = 64 + (i * 7919 % 4096) as usize;
    fuzzing::seeded_bytes(seed, len)
}

#[test]
fn controller_ops_hold_their_invariants() {
    let mut total = Report::default();
    for i in 0..INPUTS {
        // Mostly scenarios built op by op; some whole inputs, as libFuzzer would start.
        let report = if i % 8 == 0 {
            fuzzing::controller_ops(&input(1, i))
        } else {
            let ops = 20 + (i * 31 % 180) as usize;
            fuzzing::run_scenario(&fuzzing::seeded_scenario(1 << 32 | i, ops))
        };
        total.ops += report.ops;
        total.transmits += report.transmits;
        total.commands += report.commands;
        total.sessions += report.sessions;
        total.resumes += report.resumes;
        total.max_calls = total.max_calls.max(report.max_calls);
        total.max_participants = total.max_participants.max(report.max_participants);
    }
    eprintln!("{total:?}");
    // The inputs must reach the interesting states, or the test checks nothing.
    assert!(total.ops > 10 * INPUTS as usize, "{total:?}");
    assert!(total.sessions > 100, "{total:?}");
    assert!(total.resumes > 0, "{total:?}");
    assert!(total.max_calls > 0, "{total:?}");
    assert!(total.max_participants > 1, "{total:?}");
}

#[test]
fn decoders_round_trip() {
    for i in 0..INPUTS {
        let bytes = input(2, i);
        fuzzing::decode_client_message(&bytes);
        fuzzing::decode_server_message(&bytes);
    }
}

#[test]
fn token_verification_never_panics() {
    for i in 0..INPUTS {
        fuzzing::token_verify(&input(3, i));
    }
}
