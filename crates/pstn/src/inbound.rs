//! Inbound calls: which INVITEs the gateway takes, and where they go. Sans IO.
//!
//! The SIP stack (ezk) has parsed the message; [`InviteSummary::from_parts`] reads
//! what we decide on out of it (typed headers, then the SDP offer), and
//! [`InboundScreen::screen`] decides, in this order:
//!
//! 1. the source address is on no inbound trunk's allowlist: [`Screening::Drop`],
//!    no response at all (not even `100 Trying`);
//! 2. a Call-ID refused within [`REFUSAL_MEMORY`]: the same final response again,
//!    without rebuilding anything (a retry with a new branch);
//! 3. the trunk wants digest credentials: 403 (inbound digest is not implemented,
//!    so such trunks are refused rather than let in unauthenticated);
//! 4. a called number the trunk does not deliver, or one no dispatch rule sends
//!    anywhere: 404; a caller that is not an E.164 number: 403;
//! 5. no SDP offer, or one without PCMU/PCMA: 488;
//! 6. otherwise [`Screening::Route`] with the dispatch target.
//!
//! [`parse_request`] takes the same steps as ezk's UDP transport from raw bytes
//! (after our size and header-count limits), for the RFC 4475 torture tests and the
//! fuzzers: bytes -> typed headers -> SDP -> our decision, never a panic.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ezk_sip_types::header::typed::{CSeq, CallID, FromTo, Via};
use ezk_sip_types::msg::{Line, MessageLine, PullParser, RequestLine};
use ezk_sip_types::parse::Parse;
use ezk_sip_types::uri::SipUriUserPart;
use ezk_sip_types::{Headers, Method, Name};
use ringwire_signaling::PhoneNumber;

use crate::config::{Cidr, DispatchTarget, PstnConfig};
use crate::error::Malformed;
use crate::media::RemoteMedia;

/// The largest SIP message we read (RFC 3261 §18.1.1 allows UDP up to 64 KiB).
pub const MAX_MESSAGE: usize = 64 * 1024;
/// The most header lines a message may have.
pub const MAX_HEADERS: usize = 100;
/// How long a refused Call-ID is answered from memory.
pub const REFUSAL_MEMORY: Duration = Duration::from_secs(32);
/// The most refused Call-IDs remembered at once (the oldest are forgotten first).
const MAX_REMEMBERED: usize = 4096;

/// What an INVITE says that the gateway decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteSummary {
    /// Its Call-ID.
    pub call_id: String,
    /// The Request-URI's user part: the called number.
    pub called: Option<String>,
    /// The From URI's user part: the caller.
    pub caller: Option<String>,
    /// Whether the To header has a tag (a re-INVITE inside a dialog).
    pub in_dialog: bool,
    /// The usable audio of its SDP offer, if any.
    pub offer: Option<RemoteMedia>,
}

/// The gateway's decision on an INVITE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screening {
    /// Say nothing (unknown source).
    Drop,
    /// Answer with this final status.
    Refuse(u16),
    /// Take the call.
    Route(InboundRoute),
}

/// Where an accepted inbound call goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundRoute {
    /// The inbound trunk's name, for logs.
    pub trunk: String,
    /// Who calls.
    pub caller: PhoneNumber,
    /// The number called (one the server owns).
    pub called: PhoneNumber,
    /// The dispatch rule's target.
    pub target: DispatchTarget,
    /// The caller's audio.
    pub offer: RemoteMedia,
}

/// Decides on inbound INVITEs and remembers refusals. See the [module docs](self).
#[derive(Debug)]
pub struct InboundScreen {
    trunks: Vec<Trunk>,
    dispatch: BTreeMap<String, DispatchTarget>,
    refused: BTreeMap<String, (u16, Instant)>,
    order: VecDeque<(Instant, String)>,
}

#[derive(Debug)]
struct Trunk {
    name: String,
    sources: Vec<Cidr>,
    numbers: Vec<String>,
    digest: bool,
}

impl InviteSummary {
    /// Reads an INVITE's request line, headers and body.
    ///
    /// # Errors
    /// [`Malformed`] when it is not an INVITE, has too many headers or too large a
    /// body, or a header we need (From, To, Call-ID, CSeq, Via) does not parse.
    pub fn from_parts(
        line: &RequestLine,
        headers: &Headers,
        body: &[u8],
    ) -> Result<InviteSummary, Malformed> {
        if line.method != Method::INVITE {
            return Err(Malformed::Invalid("method (not INVITE)"));
        }
        if headers.iter().count() > MAX_HEADERS {
            return Err(Malformed::TooLarge("header count"));
        }
        if body.len() > MAX_MESSAGE {
            return Err(Malformed::TooLarge("body"));
        }
        // RFC 4475 §3.1.2.3: a Content-Length that does not parse is an error (ezk's
        // transport would guess the body from the datagram instead).
        if headers.get_raw(&Name::CONTENT_LENGTH).next().is_some()
            && headers
                .get_named::<ezk_sip_types::header::typed::ContentLength>()
                .is_err()
        {
            return Err(Malformed::Invalid("Content-Length"));
        }
        // Control characters (a raw NUL, RFC 4475 §3.1.1.4) have no place in headers;
        // folded lines (RFC 3261 §7.3.1) keep their CRLF and tabs.
        if headers.iter().any(|(_, v)| {
            v.chars()
                .any(|c| c.is_control() && !matches!(c, '\t' | '\r' | '\n'))
        }) {
            return Err(Malformed::Invalid("control character in a header"));
        }
        // RFC 4475 §3.1.2.5: ezk reads a display name with an unterminated quote.
        for name in [Name::FROM, Name::TO, Name::CONTACT] {
            if headers.get_raw(&name).any(|v| !quotes_balanced(v)) {
                return Err(Malformed::Invalid("unterminated quoted string"));
            }
        }
        let from: FromTo = headers
            .get(Name::FROM)
            .map_err(|_| Malformed::Invalid("From"))?;
        let to: FromTo = headers
            .get(Name::TO)
            .map_err(|_| Malformed::Invalid("To"))?;
        let call_id: CallID = headers
            .get_named()
            .map_err(|_| Malformed::Invalid("Call-ID"))?;
        let cseq: CSeq = headers
            .get_named()
            .map_err(|_| Malformed::Invalid("CSeq"))?;
        if cseq.method != Method::INVITE {
            return Err(Malformed::Invalid("CSeq method"));
        }
        let via: Vec<Via> = headers.get_named().map_err(|_| Malformed::Invalid("Via"))?;
        if via.is_empty() {
            return Err(Malformed::Invalid("Via"));
        }
        let offer = crate::sip::sdp_of(body)
            .as_ref()
            .and_then(crate::sip::remote_media);
        Ok(InviteSummary {
            call_id: call_id.0.to_string(),
            called: user_of(&line.uri.user_part),
            caller: user_of(&from.uri.uri.user_part),
            in_dialog: to.tag.is_some(),
            offer,
        })
    }
}

/// Whether every `"` opened in `value` is closed (RFC 3261 §25.1: `\\` escapes one
/// character inside a quoted string).
fn quotes_balanced(value: &str) -> bool {
    let mut inside = false;
    let mut escaped = false;
    for c in value.chars() {
        match (inside, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (_, _, '"') => inside = !inside,
            _ => {}
        }
    }
    !inside
}

fn user_of(part: &SipUriUserPart) -> Option<String> {
    match part {
        SipUriUserPart::Empty => None,
        SipUriUserPart::User(u) => Some(u.to_string()),
        SipUriUserPart::UserPw(up) => Some(up.user.to_string()),
    }
}

/// A number as trunks send it (`+15551230000`, `15551230000`, `tel`-style visual
/// separators `-.()` dropped) as E.164, if it is one.
#[must_use]
pub fn e164(user: &str) -> Option<PhoneNumber> {
    let digits: String = user
        .chars()
        .filter(|c| !matches!(c, '-' | '.' | '(' | ')'))
        .collect();
    let with_plus = if digits.starts_with('+') {
        digits
    } else {
        format!("+{digits}")
    };
    PhoneNumber::new(&with_plus).ok()
}

/// Checks a request's first line strictly (RFC 3261 §25.1: `Method SP Request-URI SP
/// SIP-Version CRLF`, single spaces, no other whitespace); ezk's parser accepts
/// extra spaces and whitespace inside the URI (RFC 4475 §3.1.2.7, §3.1.2.8).
///
/// # Errors
/// [`Malformed`] when it is not three tokens separated by single spaces.
pub fn check_request_line(raw: &[u8]) -> Result<(), Malformed> {
    let end = raw
        .windows(2)
        .position(|w| w == b"\r\n")
        .ok_or(Malformed::Truncated("request line"))?;
    let line = raw.get(..end).ok_or(Malformed::Truncated("request line"))?;
    let parts: Vec<&[u8]> = line.split(|b| *b == b' ').collect();
    let ok = parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.iter().all(|b| b.is_ascii_graphic() || *b >= 0x80));
    if ok {
        Ok(())
    } else {
        Err(Malformed::Invalid("request line"))
    }
}

/// Parses raw bytes the way ezk's UDP transport does, after our limits: the request
/// line, each header line, the body by Content-Length.
///
/// # Errors
/// [`Malformed`] for anything that is not one complete, well-formed SIP request.
pub fn parse_request(bytes: &[u8]) -> Result<(RequestLine, Headers, Bytes), Malformed> {
    if bytes.len() > MAX_MESSAGE {
        return Err(Malformed::TooLarge("message"));
    }
    check_request_line(bytes)?;
    let buffer = Bytes::copy_from_slice(bytes);
    let mut parser = PullParser::new(&buffer, 0);
    let mut request_line = None;
    let mut headers = Headers::new();
    let mut count = 0usize;
    for item in &mut parser {
        let line = item.map_err(|_| Malformed::Truncated("SIP message head"))?;
        let line = std::str::from_utf8(line).map_err(|_| Malformed::Invalid("UTF-8 in head"))?;
        if request_line.is_none() {
            match MessageLine::parse(&buffer)(line) {
                Ok((_, MessageLine::Request(l))) => request_line = Some(l),
                Ok(_) => return Err(Malformed::Invalid("request line (a response)")),
                Err(_) => return Err(Malformed::Invalid("request line")),
            }
        } else {
            count += 1;
            if count > MAX_HEADERS {
                return Err(Malformed::TooLarge("header count"));
            }
            match Line::parse(&buffer, line) {
                Ok((_, l)) => headers.insert(l.name, l.value),
                Err(_) => return Err(Malformed::Invalid("header line")),
            }
        }
    }
    let line = request_line.ok_or(Malformed::Truncated("SIP message head"))?;
    let head_end = parser.head_end();
    let rest = buffer.get(head_end..).unwrap_or_default();
    let body = match headers.get_named::<ezk_sip_types::header::typed::ContentLength>() {
        Ok(len) if len.0 == 0 => Bytes::new(),
        Ok(len) => {
            let end = head_end
                .checked_add(len.0)
                .ok_or(Malformed::Invalid("Content-Length"))?;
            if end > buffer.len() {
                return Err(Malformed::Truncated("body"));
            }
            buffer.slice(head_end..end)
        }
        Err(_) => Bytes::copy_from_slice(rest),
    };
    Ok((line, headers, body))
}

impl InboundScreen {
    /// A screen for `config`'s inbound trunks and dispatch rules (validated config:
    /// unparsable source blocks are skipped, never widened).
    #[must_use]
    pub fn new(config: &PstnConfig) -> InboundScreen {
        InboundScreen {
            trunks: config
                .inbound
                .iter()
                .map(|t| Trunk {
                    name: t.name.clone(),
                    sources: t
                        .allowed_sources
                        .iter()
                        .filter_map(|s| Cidr::parse(s).ok())
                        .collect(),
                    numbers: t.numbers.clone(),
                    digest: t.credentials.is_some(),
                })
                .collect(),
            dispatch: config
                .dispatch
                .iter()
                .map(|r| (r.number.clone(), r.target.clone()))
                .collect(),
            refused: BTreeMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Whether any inbound trunk allows `source`.
    #[must_use]
    pub fn source_allowed(&self, source: IpAddr) -> bool {
        self.trunk_for(source).is_some()
    }

    fn trunk_for(&self, source: IpAddr) -> Option<&Trunk> {
        self.trunks
            .iter()
            .find(|t| t.sources.iter().any(|c| c.contains(source)))
    }

    /// Decides on an out-of-dialog INVITE from `source`. A refusal is remembered by
    /// Call-ID (see [`InboundScreen::refused`]).
    pub fn screen(&mut self, source: IpAddr, invite: &InviteSummary, now: Instant) -> Screening {
        self.handle_timeout(now);
        let Some(trunk) = self.trunk_for(source) else {
            return Screening::Drop;
        };
        if let Some((code, _)) = self.refused.get(&invite.call_id) {
            return Screening::Refuse(*code);
        }
        let decision = self.decide(trunk, invite);
        if let Screening::Refuse(code) = decision {
            self.refused(&invite.call_id, code, now);
        }
        decision
    }

    fn decide(&self, trunk: &Trunk, invite: &InviteSummary) -> Screening {
        if invite.in_dialog {
            // A re-INVITE for a dialog we do not have (RFC 3261 §12.2.2).
            return Screening::Refuse(481);
        }
        if trunk.digest {
            return Screening::Refuse(403);
        }
        let Some(called) = invite.called.as_deref().and_then(e164) else {
            return Screening::Refuse(404);
        };
        if !trunk.numbers.iter().any(|n| n == called.as_str()) {
            return Screening::Refuse(404);
        }
        let Some(target) = self.dispatch.get(called.as_str()) else {
            return Screening::Refuse(404);
        };
        let Some(caller) = invite.caller.as_deref().and_then(e164) else {
            return Screening::Refuse(403);
        };
        let Some(offer) = invite.offer else {
            // RFC 3261 §21.4.26: nothing acceptable in the offer.
            return Screening::Refuse(488);
        };
        Screening::Route(InboundRoute {
            trunk: trunk.name.clone(),
            caller,
            called,
            target: target.clone(),
            offer,
        })
    }

    /// Remembers that the INVITE with `call_id` was refused with `code`, so a retry
    /// gets the same answer without rebuilding anything.
    pub fn refused(&mut self, call_id: &str, code: u16, now: Instant) {
        if self.refused.contains_key(call_id) {
            return;
        }
        while self.order.len() >= MAX_REMEMBERED {
            if let Some((_, old)) = self.order.pop_front() {
                self.refused.remove(&old);
            }
        }
        self.refused.insert(call_id.to_owned(), (code, now));
        self.order.push_back((now, call_id.to_owned()));
    }

    /// Forgets refusals older than [`REFUSAL_MEMORY`]; safe to call early.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if now.saturating_duration_since(*at) < REFUSAL_MEMORY {
                break;
            }
            if let Some((_, id)) = self.order.pop_front() {
                self.refused.remove(&id);
            }
        }
    }

    /// When the oldest refusal is forgotten.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.order.front().map(|(at, _)| *at + REFUSAL_MEMORY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DispatchRule, InboundTrunk, PortRange};
    use crate::g711::G711;

    fn config() -> PstnConfig {
        PstnConfig {
            sip_listen: "127.0.0.1:5060".parse().unwrap(),
            advertised_ip: None,
            rtp_ports: PortRange {
                first: 20000,
                last: 20099,
            },
            outbound: Vec::new(),
            inbound: vec![InboundTrunk {
                name: "carrier-in".into(),
                numbers: vec!["+15550001111".into(), "+15550002222".into()],
                allowed_sources: vec!["192.0.2.0/24".into()],
                credentials: None,
            }],
            dispatch: vec![DispatchRule {
                number: "+15550001111".into(),
                target: DispatchTarget::User("alice".into()),
            }],
            ring_timeout: Duration::from_secs(30),
            max_call_duration: Duration::from_secs(3600),
            media_timeout: Duration::from_secs(20),
            max_calls_per_identity: 4,
            calls_per_minute_per_identity: 10,
        }
    }

    const SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
        m=audio 40000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

    fn invite(to_user: &str, from_user: &str, call_id: &str, sdp: &str) -> Vec<u8> {
        format!(
            "INVITE sip:{to_user}@198.51.100.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK776asdhds\r\n\
             Max-Forwards: 70\r\n\
             To: <sip:{to_user}@198.51.100.1>\r\n\
             From: \"Caller\" <sip:{from_user}@192.0.2.9>;tag=1928301774\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 314159 INVITE\r\n\
             Contact: <sip:{from_user}@192.0.2.9>\r\n\
             Content-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        )
        .into_bytes()
    }

    fn summary(bytes: &[u8]) -> Result<InviteSummary, Malformed> {
        let (line, headers, body) = parse_request(bytes)?;
        InviteSummary::from_parts(&line, &headers, &body)
    }

    fn trunk_ip() -> IpAddr {
        "192.0.2.9".parse().unwrap()
    }

    #[test]
    fn a_good_invite_is_routed_to_its_dispatch_target() {
        let mut screen = InboundScreen::new(&config());
        let now = Instant::now();
        let s = summary(&invite("15550001111", "+15557654321", "a@b", SDP)).unwrap();
        assert_eq!(s.called.as_deref(), Some("15550001111"));
        let Screening::Route(route) = screen.screen(trunk_ip(), &s, now) else {
            panic!("not routed");
        };
        assert_eq!(route.caller.as_str(), "+15557654321");
        assert_eq!(route.called.as_str(), "+15550001111");
        assert_eq!(route.target, DispatchTarget::User("alice".into()));
        assert_eq!(route.offer.codec, G711::Pcma);
        assert_eq!(route.offer.dtmf_payload_type, Some(101));
        assert_eq!(route.offer.address, "192.0.2.9:40000".parse().unwrap());
    }

    #[test]
    fn unknown_sources_get_nothing() {
        let mut screen = InboundScreen::new(&config());
        let s = summary(&invite("15550001111", "+15557654321", "a@b", SDP)).unwrap();
        let stranger: IpAddr = "203.0.113.7".parse().unwrap();
        assert!(!screen.source_allowed(stranger));
        assert_eq!(screen.screen(stranger, &s, Instant::now()), Screening::Drop);
    }

    #[test]
    fn refusals_say_why_and_are_remembered_by_call_id() {
        let mut screen = InboundScreen::new(&config());
        let now = Instant::now();
        let cases = [
            // Not a number of the trunk.
            (invite("15559999999", "+15557654321", "c1", SDP), 404),
            // Owned but not dispatched.
            (invite("15550002222", "+15557654321", "c2", SDP), 404),
            // Caller is no E.164 number.
            (invite("15550001111", "anonymous", "c3", SDP), 403),
            // No G.711 in the offer.
            (
                invite(
                    "15550001111",
                    "+15557654321",
                    "c4",
                    &SDP.replace("RTP/AVP 8 101", "RTP/AVP 9"),
                ),
                488,
            ),
            // No offer at all.
            (invite("15550001111", "+15557654321", "c5", ""), 488),
        ];
        for (bytes, code) in &cases {
            let s = summary(bytes).unwrap();
            assert_eq!(
                screen.screen(trunk_ip(), &s, now),
                Screening::Refuse(*code),
                "{}",
                s.call_id
            );
        }
        // A retry of c1 with a good number is still refused (same Call-ID).
        let retry = summary(&invite("15550001111", "+15557654321", "c1", SDP)).unwrap();
        assert_eq!(
            screen.screen(trunk_ip(), &retry, now),
            Screening::Refuse(404)
        );
        // ...until the memory fades.
        let later = now + REFUSAL_MEMORY;
        assert_eq!(screen.poll_timeout(), Some(later));
        assert!(matches!(
            screen.screen(trunk_ip(), &retry, later),
            Screening::Route(_)
        ));
    }

    #[test]
    fn trunks_that_want_digest_are_refused_until_it_is_implemented() {
        let mut c = config();
        c.inbound[0].credentials = Some(crate::config::Credentials {
            username: "u".into(),
            password: "p".into(),
        });
        let mut screen = InboundScreen::new(&c);
        let s = summary(&invite("15550001111", "+15557654321", "d1", SDP)).unwrap();
        assert_eq!(
            screen.screen(trunk_ip(), &s, Instant::now()),
            Screening::Refuse(403)
        );
    }

    #[test]
    fn numbers_as_trunks_send_them() {
        assert_eq!(e164("+15551230000").unwrap().as_str(), "+15551230000");
        assert_eq!(e164("15551230000").unwrap().as_str(), "+15551230000");
        assert_eq!(e164("1-555-123-0000").unwrap().as_str(), "+15551230000");
        assert!(e164("anonymous").is_none());
        assert!(e164("").is_none());
        assert!(e164("+0123").is_none());
    }

    #[test]
    fn the_remembered_refusals_are_bounded() {
        let mut screen = InboundScreen::new(&config());
        let now = Instant::now();
        for i in 0..MAX_REMEMBERED + 10 {
            screen.refused(&format!("id{i}"), 404, now);
        }
        assert_eq!(screen.refused.len(), MAX_REMEMBERED);
        assert!(!screen.refused.contains_key("id0"));
    }

    /// RFC 4475 torture messages, adapted to INVITEs for a number we own: the valid
    /// ones that still name an owned number and carry G.711 are routed; every
    /// invalid one is malformed (dropped before us, 400 from us) or refused, never
    /// routed; none panics.
    #[test]
    fn rfc4475_torture_messages() {
        const OK_SDP: &str = SDP;
        fn msg(head: &str, body: &str) -> Vec<u8> {
            let head = head.replace("\n", "\r\n");
            let head = head.replace("{len}", &body.len().to_string());
            format!("{head}\r\n{body}").into_bytes()
        }
        let base = "INVITE sip:+15550001111@198.51.100.1 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKkdjuw
To: <sip:+15550001111@198.51.100.1>
From: <sip:+15557654321@192.0.2.9>;tag=f1
Call-ID: torture
CSeq: 8 INVITE
Contact: <sip:caller@192.0.2.9>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: {len}
";
        // (name, message, may it be routed?)
        let cases: Vec<(&str, Vec<u8>, bool)> = vec![
            ("base", msg(base, OK_SDP), true),
            // §3.1.1.1 wsinv: line folding, odd case and whitespace in headers.
            (
                "wsinv",
                msg(
                    &base
                        .replace("To: <sip", "TO :\n <sip")
                        .replace("Max-Forwards: 70", "Max-Forwards: 0068")
                        .replace("CSeq: 8 INVITE", "cseq: 8\n   INVITE"),
                    OK_SDP,
                ),
                true,
            ),
            // §3.1.1.6 lwsdisp: no LWS between display name and <.
            (
                "lwsdisp",
                msg(&base.replace("From: <sip", "From: caller<sip"), OK_SDP),
                true,
            ),
            // §3.1.1.12/13: escaped characters and odd parameters in URIs.
            (
                "esc01",
                msg(
                    &base.replace("Contact: <sip:caller@", "Contact: <sip:%61lice@"),
                    OK_SDP,
                ),
                true,
            ),
            // §3.1.2.2 clerr: Content-Length larger than the message.
            (
                "clerr",
                msg(
                    &base.replace("Content-Length: {len}", "Content-Length: 9999"),
                    OK_SDP,
                ),
                false,
            ),
            // §3.1.2.3 scalar02: negative Content-Length.
            (
                "scalar02",
                msg(
                    &base.replace("Content-Length: {len}", "Content-Length: -999"),
                    OK_SDP,
                ),
                false,
            ),
            // §3.1.2.4 scalarlg: numbers far too large.
            (
                "scalarlg",
                msg(
                    &base
                        .replace("CSeq: 8 INVITE", "CSeq: 36893488147419103232 INVITE")
                        .replace("Max-Forwards: 70", "Max-Forwards: 36893488147419103232"),
                    OK_SDP,
                ),
                false,
            ),
            // §3.1.2.5 quotbal: unterminated quoted display name.
            (
                "quotbal",
                msg(
                    &base.replace("From: <sip", "From: \"Bell, Alexander <sip"),
                    OK_SDP,
                ),
                false,
            ),
            // §3.1.2.6 ltgtruri: <> around the Request-URI.
            (
                "ltgtruri",
                msg(
                    &base.replace(
                        "INVITE sip:+15550001111@198.51.100.1 SIP/2.0",
                        "INVITE <sip:+15550001111@198.51.100.1> SIP/2.0",
                    ),
                    OK_SDP,
                ),
                false,
            ),
            // §3.1.2.7 lwsruri: whitespace inside the Request-URI.
            (
                "lwsruri",
                msg(
                    &base.replace(
                        "INVITE sip:+15550001111@198.51.100.1 SIP/2.0",
                        "INVITE sip:+15550001111@198.51.100.1;lr ;x SIP/2.0",
                    ),
                    OK_SDP,
                ),
                false,
            ),
            // §3.1.2.8 lwsstart: several spaces between request-line elements.
            (
                "lwsstart",
                msg(
                    &base.replace(
                        "INVITE sip:+15550001111@198.51.100.1 SIP/2.0",
                        "INVITE  sip:+15550001111@198.51.100.1  SIP/2.0",
                    ),
                    OK_SDP,
                ),
                false,
            ),
            // §3.1.2.15 badvers: SIP/7.0.
            (
                "badvers",
                msg(&base.replace(" SIP/2.0\n", " SIP/7.0\n"), OK_SDP),
                false,
            ),
            // §3.1.2.16 mismatch01: CSeq method differs from the request's.
            (
                "mismatch01",
                msg(&base.replace("CSeq: 8 INVITE", "CSeq: 8 OPTIONS"), OK_SDP),
                false,
            ),
            // §3.3.1 insuf: required headers missing.
            (
                "insuf",
                msg(
                    &base
                        .replace("Call-ID: torture\n", "")
                        .replace("From: <sip:+15557654321@192.0.2.9>;tag=f1\n", ""),
                    OK_SDP,
                ),
                false,
            ),
            // §3.3.2 unkscm: a Request-URI with an unknown scheme.
            (
                "unkscm",
                msg(
                    &base.replace(
                        "INVITE sip:+15550001111@198.51.100.1 SIP/2.0",
                        "INVITE nobodyKnowsThisScheme:totallyopaqueURI SIP/2.0",
                    ),
                    OK_SDP,
                ),
                false,
            ),
            // §3.3.7 / §3.3.15: a body that is not (usable) SDP.
            (
                "sdp garbage",
                msg(base, "v=0\r\nthis is not sdp at all\r\n"),
                false,
            ),
            // A NUL byte in a header (§3.1.1.4 escnull escapes it; raw is invalid).
            (
                "raw nul",
                msg(
                    &base.replace("Call-ID: torture", "Call-ID: tor\0ture"),
                    OK_SDP,
                ),
                false,
            ),
            // Not UTF-8 in the head.
            (
                "latin1 head",
                [&b"INVITE sip:\xe9@198.51.100.1 SIP/2.0\r\n\r\n"[..]].concat(),
                false,
            ),
            // Far too many headers.
            (
                "header flood",
                msg(
                    &base.replace("Max-Forwards: 70\n", &"X-Junk: 1\n".repeat(MAX_HEADERS + 1)),
                    OK_SDP,
                ),
                false,
            ),
        ];
        let now = Instant::now();
        let mut wrong = Vec::new();
        for (name, bytes, routable) in cases {
            let mut screen = InboundScreen::new(&config());
            let decision = parse_request(&bytes)
                .and_then(|(l, h, b)| InviteSummary::from_parts(&l, &h, &b))
                .map(|s| screen.screen(trunk_ip(), &s, now));
            match decision {
                Ok(Screening::Route(_)) if !routable => wrong.push(format!("{name} was routed")),
                Ok(Screening::Refuse(code)) if routable || !(400..=699).contains(&code) => {
                    wrong.push(format!("{name} was refused with {code}"));
                }
                Ok(Screening::Drop) => wrong.push(format!("{name}: allowed source dropped")),
                Err(e) if routable => wrong.push(format!("{name} did not parse: {e}")),
                _ => {}
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }
}
