//! Datagrams to a phone leg's RTP socket: RTP and RFC 4733 parsing, then the leg's
//! media (latching, G.711 -> opus, DTMF); see `ringwire_pstn::fuzzing::phone_rtp`.
#![no_main]

libfuzzer_sys::fuzz_target!(|datagrams: Vec<&[u8]>| {
    ringwire_pstn::fuzzing::phone_rtp(&datagrams);
});
