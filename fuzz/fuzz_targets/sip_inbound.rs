//! One datagram to the gateway's SIP port: bytes -> typed headers -> SDP -> our
//! decision (drop, refuse, route); see `ringwire_pstn::fuzzing::sip_inbound`.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    ringwire_pstn::fuzzing::sip_inbound(bytes);
});
