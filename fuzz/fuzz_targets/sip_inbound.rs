//! One datagram to the gateway's SIP port: bytes -> typed headers (digest
//! `Authorization` too) -> SDP -> our decision (drop, refuse, challenge, over a cap,
//! route), from a plain and a digest trunk; see `ringwire_pstn::fuzzing::sip_inbound`.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    ringwire_pstn::fuzzing::sip_inbound(bytes);
});
