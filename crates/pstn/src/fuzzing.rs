//! Entry points for the fuzz targets in `fuzz/` (and their replay tests): what a
//! trunk or a phone can send us, through our own code, with invariants checked.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::config::{
    Credentials, DispatchRule, DispatchTarget, InboundTrunk, PortRange, PstnConfig,
};
use crate::g711::G711;
use crate::inbound::{InboundScreen, InviteSummary, Screening, parse_request};
use crate::media::{PhoneMedia, PhoneMediaConfig, RemoteMedia};
use crate::rtp::{RtpPacket, TelephoneEvent};

/// The number the fuzzed gateway owns and dispatches.
const OWNED: &str = "+15550001111";
/// The number on the trunk that must authenticate (digest).
const OWNED_DIGEST: &str = "+15550002222";

fn config() -> PstnConfig {
    PstnConfig {
        sip_listen: SocketAddr::from(([127, 0, 0, 1], 5060)),
        advertised_ip: None,
        rtp_ports: PortRange {
            first: 20000,
            last: 20099,
        },
        outbound: Vec::new(),
        inbound: vec![
            InboundTrunk::new("fuzz", vec![OWNED.into()], vec!["192.0.2.0/24".into()]),
            InboundTrunk {
                credentials: Some(Credentials {
                    username: "fuzz".into(),
                    password: "fuzz".into(),
                }),
                ..InboundTrunk::new(
                    "fuzz-digest",
                    vec![OWNED_DIGEST.into()],
                    vec!["198.51.100.0/24".into()],
                )
            },
        ],
        dispatch: vec![
            DispatchRule {
                number: OWNED.into(),
                target: DispatchTarget::User("alice".into()),
            },
            DispatchRule {
                number: OWNED_DIGEST.into(),
                target: DispatchTarget::User("alice".into()),
            },
        ],
        ring_timeout: Duration::from_secs(30),
        max_call_duration: Duration::from_secs(3600),
        media_timeout: Duration::from_secs(20),
        max_calls_per_identity: 4,
        calls_per_minute_per_identity: 10,
        tls: None,
    }
}

/// One datagram to the SIP port: bytes -> request line and headers (ezk's parsers,
/// after our limits) -> typed headers (digest `Authorization` too) and SDP -> our
/// decision, from an allowed, a digest and an unknown source, twice (the second time
/// the refusal memory answers, or a new challenge).
///
/// # Panics
/// When a decision breaks an invariant: an unknown source answered, a routed call to
/// a number we do not own or from a caller that is not E.164, a call routed from the
/// digest trunk (a fuzzer cannot sign our nonces), a refusal that is not a final
/// status, a challenge without headers, or a repeated INVITE decided differently.
pub fn sip_inbound(bytes: &[u8]) {
    let Ok((line, headers, body)) = parse_request(bytes) else {
        return;
    };
    let Ok(summary) = InviteSummary::from_parts(&line, &headers, &body) else {
        return;
    };
    let summary = summary.with_raw_request_uri(bytes);
    let mut screen = InboundScreen::with_nonce_key(&config(), [0x5a; 32]);
    let now = Instant::now();
    let stranger: IpAddr = [203, 0, 113, 9].into();
    assert_eq!(screen.screen(stranger, &summary, now), Screening::Drop);
    let plain: IpAddr = [192, 0, 2, 9].into();
    let digest: IpAddr = [198, 51, 100, 9].into();
    for (source, owned) in [(plain, OWNED), (digest, OWNED_DIGEST)] {
        let first = screen.screen(source, &summary, now);
        match &first {
            Screening::Drop => panic!("an allowed source was dropped"),
            Screening::Refuse(code) | Screening::Limited { code, .. } => {
                assert!((300..=699).contains(code), "refused with {code}");
            }
            Screening::Challenge(c) => {
                assert_eq!(source, digest, "a trunk without credentials challenged");
                assert!(!c.www_authenticate.is_empty());
            }
            Screening::Route(route) => {
                assert_ne!(source, digest, "routed without authenticating");
                assert_eq!(route.called.as_str(), owned);
                assert!(route.caller.as_str().starts_with('+'));
                assert!(G711::from_payload_type(route.offer.codec.payload_type()).is_some());
            }
        }
        let second = screen.screen(source, &summary, now);
        match (&first, &second) {
            (Screening::Challenge(_), Screening::Challenge(_)) => {}
            _ => assert_eq!(second, first, "same INVITE, same answer"),
        }
    }
}

/// Datagrams to a phone leg's RTP socket: each parsed as RTP (and as a telephone
/// event), then fed to a [`PhoneMedia`] whose far end is `198.51.100.7:40000`
/// (every other datagram from elsewhere), draining every output after each.
///
/// # Panics
/// When an output breaks an invariant: an empty opus frame, or
/// a packet sent anywhere but to the far end.
pub fn phone_rtp(datagrams: &[&[u8]]) {
    let remote = RemoteMedia {
        address: SocketAddr::from(([198, 51, 100, 7], 40000)),
        codec: G711::Pcma,
        dtmf_payload_type: Some(101),
    };
    let Ok(mut media) = PhoneMedia::new(PhoneMediaConfig {
        local: SocketAddr::from(([127, 0, 0, 1], 20000)),
        media_timeout: Duration::from_secs(20),
        ssrc: 7,
    }) else {
        return;
    };
    let mut now = Instant::now();
    media.set_remote(remote, now);
    let stranger = SocketAddr::from(([198, 51, 100, 8], 40000));
    for (i, datagram) in datagrams.iter().enumerate() {
        if let Ok(p) = RtpPacket::parse(datagram) {
            let _ = TelephoneEvent::parse(p.payload);
        }
        let from = if i % 2 == 0 { remote.address } else { stranger };
        let _ = media.handle_receive(now, from, datagram);
        media.handle_timeout(now);
        while let Some(frame) = media.poll_audio() {
            assert!(!frame.packet.is_empty(), "an empty opus frame");
        }
        while media.poll_event().is_some() {}
        while let Some(t) = media.poll_transmit() {
            assert_eq!(t.destination, remote.address, "sent to someone else");
        }
        now += Duration::from_millis(20);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_do_not_panic() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
                   m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";
        let invite = format!(
            "INVITE sip:{OWNED}@198.51.100.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK1\r\n\
             To: <sip:{OWNED}@198.51.100.1>\r\nFrom: <sip:+15557654321@192.0.2.9>;tag=1\r\n\
             Call-ID: x\r\nCSeq: 1 INVITE\r\nContact: <sip:a@192.0.2.9>\r\n\
             Content-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        );
        sip_inbound(invite.as_bytes());
        sip_inbound(&invite.as_bytes()[..40]);
        sip_inbound(b"");
        sip_inbound(b"INVITE \xff\r\n\r\n");
        let event = [0x80, 101, 0, 1, 0, 0, 0, 1, 0, 0, 0, 7, 5, 0x8a, 0, 160];
        let audio = [
            &[0x80u8, 8, 0, 2, 0, 0, 0, 160, 0, 0, 0, 7][..],
            &[0xd5; 160],
        ]
        .concat();
        phone_rtp(&[&event, &audio, &[], &[0x80], &event[..14]]);
    }
}
