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
//! 3. a re-INVITE for a dialog we do not have: 481;
//! 4. the trunk wants digest credentials ([`crate::digest`]): none, a nonce that is
//!    not ours, stale or replayed: [`Screening::Challenge`] (401, never remembered,
//!    so the authenticated retry, a new transaction with the same Call-ID, is
//!    screened afresh); wrong password or unknown user: 403, the same for both; a
//!    digest `uri` that is not the Request-URI: 400. A source address with the
//!    trunk's `max_auth_failures` wrong answers in a row is locked out for its
//!    `auth_lockout`: 403 without its credentials being looked at, so guesses
//!    learn nothing. Only a source that got our nonce can fail, so a spoofed UDP
//!    source cannot lock a trunk's real address out;
//! 5. a called number the trunk does not deliver, or one no dispatch rule sends
//!    anywhere: 404; a caller that is not an E.164 number: 403;
//! 6. no SDP offer, or one without PCMU/PCMA: 488;
//! 7. the trunk's caps (calls at once, calls per minute) or the calling number's
//!    (calls per minute): [`Screening::Limited`] (503 or 486, see there; not
//!    remembered);
//! 8. otherwise [`Screening::Route`] with the dispatch target; the call counts
//!    against the caps until [`InboundScreen::finished`] is told it ended.
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
use crate::digest::{Challenge, DigestAuthorization, DigestUser, DigestVerifier, Verdict};
use crate::error::Malformed;
use crate::limits::{DialLimiter, LimitExceeded};
use crate::media::RemoteMedia;

/// The largest SIP message we read (RFC 3261 §18.1.1 allows UDP up to 64 KiB).
pub const MAX_MESSAGE: usize = 64 * 1024;
/// The most header lines a message may have.
pub const MAX_HEADERS: usize = 100;
/// How long a refused Call-ID is answered from memory.
pub const REFUSAL_MEMORY: Duration = Duration::from_secs(32);
/// The most refused Call-IDs remembered at once (the oldest are forgotten first).
const MAX_REMEMBERED: usize = 4096;
/// The most source addresses whose digest failures are counted at once.
const MAX_FAILING_SOURCES: usize = 4096;

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
    /// The Request-URI as sent (see [`InviteSummary::with_raw_request_uri`]): a digest
    /// `uri` must equal it.
    pub request_uri: String,
    /// Its digest `Authorization` headers.
    pub authorization: Vec<DigestAuthorization>,
}

/// The gateway's decision on an INVITE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screening {
    /// Say nothing (unknown source).
    Drop,
    /// Answer with this final status.
    Refuse(u16),
    /// Answer 401 with this digest challenge (not remembered by Call-ID).
    Challenge(Challenge),
    /// Over a cap: answer `code`, with `Retry-After` when `retry_after` is set. Not
    /// remembered by Call-ID (checking again costs nothing).
    ///
    /// RFC 3261 §21.5.4: a client that gets 503 with Retry-After sends *nothing* to
    /// this server for that long, so 503 is only for the trunk's own caps, where every
    /// other call would be refused too: its calls-per-minute cap with the time until
    /// a start leaves the window; its calls-at-once cap without Retry-After (a call
    /// may end any moment; without one the client treats it as 500, a failure of this
    /// request only). One calling number over its calls-per-minute cap gets 486 Busy
    /// Here (§21.4.24: this callee cannot take more calls now) with Retry-After, which
    /// holds back that call only, not the trunk's other callers.
    Limited {
        /// 503 or 486.
        code: u16,
        /// When a retry may succeed, in whole seconds.
        retry_after: Option<Duration>,
    },
    /// Take the call.
    Route(InboundRoute),
}

/// An accepted inbound call's place in the caps: hand it to
/// [`InboundScreen::finished`] once, when the call ends (or is refused after all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundSlot {
    trunk: usize,
    caller: String,
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
    /// What it counts against the caps.
    pub slot: InboundSlot,
}

/// Decides on inbound INVITEs and remembers refusals. See the [module docs](self).
#[derive(Debug)]
pub struct InboundScreen {
    trunks: Vec<Trunk>,
    dispatch: BTreeMap<String, DispatchTarget>,
    refused: BTreeMap<String, (u16, Instant)>,
    order: VecDeque<(Instant, String)>,
    verifier: DigestVerifier,
    lockouts: Lockouts,
}

/// Wrong digest answers per (trunk, source address), and lockouts.
#[derive(Debug, Default)]
struct Lockouts {
    sources: BTreeMap<(usize, IpAddr), Failures>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    /// Wrong answers in a row.
    count: usize,
    /// Whether `count` reached the trunk's limit: locked out until `forget_at`.
    locked: bool,
    /// When the entry is of no more use: the end of the lockout, or the last failure
    /// plus the lockout time (failures further apart do not add up).
    forget_at: Instant,
}

impl Lockouts {
    fn locked(&self, key: (usize, IpAddr), now: Instant) -> bool {
        self.sources
            .get(&key)
            .is_some_and(|f| f.locked && now < f.forget_at)
    }

    /// Counts a wrong answer; true when it starts a lockout.
    fn failed(
        &mut self,
        key: (usize, IpAddr),
        limit: usize,
        lockout: Duration,
        now: Instant,
    ) -> bool {
        if !self.sources.contains_key(&key) && self.sources.len() >= MAX_FAILING_SOURCES {
            // The entry closest to being forgotten goes; a lockout ends later than a
            // count of strays, so lockouts are the last to go.
            if let Some(oldest) = self
                .sources
                .iter()
                .min_by_key(|(_, f)| f.forget_at)
                .map(|(k, _)| *k)
            {
                self.sources.remove(&oldest);
            }
        }
        let fresh = Failures {
            count: 0,
            locked: false,
            forget_at: now,
        };
        let entry = self.sources.entry(key).or_insert(fresh);
        if entry.forget_at <= now {
            // Quiet for a lockout's time (or a lockout over): start counting afresh.
            *entry = fresh;
        }
        entry.count += 1;
        entry.forget_at = now + lockout;
        if entry.count >= limit && !entry.locked {
            entry.locked = true;
            return true;
        }
        false
    }

    fn succeeded(&mut self, key: (usize, IpAddr)) {
        self.sources.remove(&key);
    }

    fn prune(&mut self, now: Instant) {
        self.sources.retain(|_, f| now < f.forget_at);
    }
}

#[derive(Debug)]
struct Trunk {
    name: String,
    sources: Vec<Cidr>,
    numbers: Vec<String>,
    /// Its credentials as HA1, when it must authenticate.
    digest: Option<DigestUser>,
    /// Wrong digest answers in a row from one source before a lockout, and its length.
    max_auth_failures: usize,
    auth_lockout: Duration,
    /// The trunk's calls (one key): at once and per minute.
    calls: DialLimiter<()>,
    /// Per calling number: calls per minute.
    callers: DialLimiter<String>,
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
        let request_uri = {
            use ezk_sip_types::print::AppendCtx;
            line.uri.default_print_ctx().to_string()
        };
        Ok(InviteSummary {
            call_id: call_id.0.to_string(),
            called: user_of(&line.uri.user_part),
            caller: user_of(&from.uri.uri.user_part),
            in_dialog: to.tag.is_some(),
            offer,
            request_uri,
            authorization: DigestAuthorization::from_headers(headers),
        })
    }

    /// Takes the Request-URI exactly as the message's first line has it (ezk prints
    /// it back normalised); `raw` is the message from its start. Kept as it was when
    /// the first line is not `Method SP URI SP Version`.
    #[must_use]
    pub fn with_raw_request_uri(mut self, raw: &[u8]) -> InviteSummary {
        let line = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .and_then(|end| raw.get(..end));
        let uri = line
            .and_then(|l| l.split(|b| *b == b' ').nth(1))
            .and_then(|u| std::str::from_utf8(u).ok());
        if let Some(uri) = uri {
            uri.clone_into(&mut self.request_uri);
        }
        self
    }
}

/// `d` rounded up to whole seconds, at least one (Retry-After counts seconds).
fn whole_seconds(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(Duration::from_secs(1))
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
    /// unparsable source blocks are skipped, never widened), signing digest nonces
    /// with a random key.
    #[must_use]
    pub fn new(config: &PstnConfig) -> InboundScreen {
        InboundScreen::with_nonce_key(config, DigestVerifier::random_key())
    }

    /// [`InboundScreen::new`] with the nonce key given (tests, fuzzing).
    #[must_use]
    pub fn with_nonce_key(config: &PstnConfig, key: [u8; 32]) -> InboundScreen {
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
                    digest: t
                        .credentials
                        .as_ref()
                        .map(|c| DigestUser::new(c, &t.digest_algorithms)),
                    max_auth_failures: t.max_auth_failures,
                    auth_lockout: t.auth_lockout,
                    calls: DialLimiter::new(t.max_calls, t.calls_per_minute),
                    callers: DialLimiter::new(usize::MAX, t.calls_per_minute_per_caller),
                })
                .collect(),
            dispatch: config
                .dispatch
                .iter()
                .map(|r| (r.number.clone(), r.target.clone()))
                .collect(),
            refused: BTreeMap::new(),
            order: VecDeque::new(),
            verifier: DigestVerifier::new(key),
            lockouts: Lockouts::default(),
        }
    }

    /// Whether any inbound trunk allows `source`.
    #[must_use]
    pub fn source_allowed(&self, source: IpAddr) -> bool {
        self.trunk_for(source).is_some()
    }

    fn trunk_for(&self, source: IpAddr) -> Option<usize> {
        self.trunks
            .iter()
            .position(|t| t.sources.iter().any(|c| c.contains(source)))
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
        let decision = self.decide(trunk, source, invite, now);
        if let Screening::Refuse(code) = decision {
            self.refused(&invite.call_id, code, now);
        }
        decision
    }

    fn decide(
        &mut self,
        index: usize,
        source: IpAddr,
        invite: &InviteSummary,
        now: Instant,
    ) -> Screening {
        if invite.in_dialog {
            // A re-INVITE for a dialog we do not have (RFC 3261 §12.2.2).
            return Screening::Refuse(481);
        }
        let Some(trunk) = self.trunks.get_mut(index) else {
            return Screening::Drop;
        };
        if let Some(user) = &trunk.digest {
            let key = (index, source);
            if self.lockouts.locked(key, now) {
                return Screening::Refuse(403);
            }
            let verdict = self.verifier.verify(
                user,
                "INVITE",
                &invite.request_uri,
                &invite.authorization,
                now,
            );
            match verdict {
                Verdict::Authorized => self.lockouts.succeeded(key),
                Verdict::Challenge(challenge) => return Screening::Challenge(challenge),
                Verdict::Forbidden => {
                    let (limit, lockout) = (trunk.max_auth_failures, trunk.auth_lockout);
                    if self.lockouts.failed(key, limit, lockout, now) {
                        tracing::warn!(
                            trunk = %trunk.name,
                            %source,
                            failures = limit,
                            ?lockout,
                            "wrong digest credentials: source locked out"
                        );
                    }
                    return Screening::Refuse(403);
                }
                Verdict::UriMismatch => return Screening::Refuse(400),
            }
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
        // The caps; why 503 or 486 and when Retry-After: see `Screening::Limited`.
        let who = caller.as_str().to_owned();
        if let Err(e) = trunk.calls.check(&(), now) {
            let retry_after = (e == LimitExceeded::Rate)
                .then(|| whole_seconds(trunk.calls.rate_retry_after(&(), now)));
            return Screening::Limited {
                code: 503,
                retry_after,
            };
        }
        if trunk.callers.check(&who, now).is_err() {
            return Screening::Limited {
                code: 486,
                retry_after: Some(whole_seconds(trunk.callers.rate_retry_after(&who, now))),
            };
        }
        // Both checked just now, so both count it.
        let _ = trunk.calls.try_start(&(), now);
        let _ = trunk.callers.try_start(&who, now);
        Screening::Route(InboundRoute {
            trunk: trunk.name.clone(),
            caller,
            called,
            target: target.clone(),
            offer,
            slot: InboundSlot {
                trunk: index,
                caller: who,
            },
        })
    }

    /// A routed call ended (or was refused after all): it no longer counts against
    /// its trunk's calls-at-once cap. Call once per [`Screening::Route`].
    pub fn finished(&mut self, slot: &InboundSlot) {
        if let Some(trunk) = self.trunks.get_mut(slot.trunk) {
            trunk.calls.finished(&());
            trunk.callers.finished(&slot.caller);
        }
    }

    /// Calls from the trunk named `trunk` running now.
    #[must_use]
    pub fn active_calls(&self, trunk: &str) -> usize {
        self.trunks
            .iter()
            .filter(|t| t.name == trunk)
            .map(|t| t.calls.active(&()))
            .sum()
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

    /// Forgets refusals older than [`REFUSAL_MEMORY`] and callers with nothing
    /// recent; safe to call early.
    pub fn handle_timeout(&mut self, now: Instant) {
        for trunk in &mut self.trunks {
            trunk.callers.prune(now);
        }
        self.lockouts.prune(now);
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
    use crate::digest::DigestAlgorithm;
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
            inbound: vec![InboundTrunk::new(
                "carrier-in",
                vec!["+15550001111".into(), "+15550002222".into()],
                vec!["192.0.2.0/24".into()],
            )],
            dispatch: vec![DispatchRule {
                number: "+15550001111".into(),
                target: DispatchTarget::User("alice".into()),
            }],
            ring_timeout: Duration::from_secs(30),
            max_call_duration: Duration::from_secs(3600),
            media_timeout: Duration::from_secs(20),
            max_calls_per_identity: 4,
            calls_per_minute_per_identity: 10,
            tls: None,
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

    /// A screen whose trunk wants `alice:s3cret`, offering `algorithms`.
    /// [`config`] whose trunk wants digest credentials alice / s3cret.
    fn digest_config(algorithms: &[DigestAlgorithm]) -> PstnConfig {
        let mut c = config();
        c.inbound[0].credentials = Some(crate::config::Credentials {
            username: "alice".into(),
            password: "s3cret".into(),
        });
        c.inbound[0].digest_algorithms = algorithms.to_vec();
        c
    }

    fn digest_screen(algorithms: &[DigestAlgorithm]) -> InboundScreen {
        InboundScreen::with_nonce_key(&digest_config(algorithms), [42; 32])
    }

    /// `bytes` with an `Authorization` header answering `challenge`'s first
    /// algorithm for `user:password` (hashes computed here, not by the verifier), for
    /// digest uri `uri`, nonce count `nc`.
    fn answered(
        bytes: &[u8],
        challenge: &Challenge,
        (user, password): (&str, &str),
        uri: &str,
        nc: u32,
    ) -> Vec<u8> {
        use sha2::Digest;
        let first = &challenge.www_authenticate[0];
        let param = |name: &str| {
            let start = first.find(&format!("{name}=")).unwrap() + name.len() + 1;
            let rest = first[start..].trim_start_matches('"');
            rest[..rest.find(['"', ',']).unwrap_or(rest.len())].to_owned()
        };
        let (nonce, algorithm) = (param("nonce"), param("algorithm"));
        let h = |s: String| -> String {
            if algorithm == "MD5" {
                format!("{:x}", md5::compute(s.as_bytes()))
            } else {
                sha2::Sha256::digest(s.as_bytes())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect()
            }
        };
        let ha1 = h(format!("{user}:ringwire:{password}"));
        let ha2 = h(format!("INVITE:{uri}"));
        let response = h(format!("{ha1}:{nonce}:{nc:08x}:c0ffee:auth:{ha2}"));
        let header = format!(
            "Authorization: Digest username=\"{user}\", realm=\"ringwire\", nonce=\"{nonce}\", \
             uri=\"{uri}\", response=\"{response}\", algorithm={algorithm}, qop=auth, \
             cnonce=\"c0ffee\", nc={nc:08x}\r\n"
        );
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        text.replacen(
            "CSeq: 314159 INVITE\r\n",
            &format!("CSeq: 314160 INVITE\r\n{header}"),
            1,
        )
        .into_bytes()
    }

    const RURI: &str = "sip:15550001111@198.51.100.1";

    fn challenge_of(decision: Screening) -> Challenge {
        match decision {
            Screening::Challenge(c) => c,
            other => panic!("no challenge: {other:?}"),
        }
    }

    fn raw_summary(bytes: &[u8]) -> InviteSummary {
        summary(bytes).unwrap().with_raw_request_uri(bytes)
    }

    #[test]
    fn a_digest_trunk_is_challenged_then_routed_with_the_right_credentials() {
        for algorithms in [
            vec![DigestAlgorithm::Sha256, DigestAlgorithm::Md5],
            vec![DigestAlgorithm::Md5],
        ] {
            let mut screen = digest_screen(&algorithms);
            let now = Instant::now();
            let first = invite("15550001111", "+15557654321", "d1", SDP);
            let challenge = challenge_of(screen.screen(trunk_ip(), &raw_summary(&first), now));
            assert_eq!(challenge.www_authenticate.len(), algorithms.len());
            assert!(challenge.www_authenticate[0].contains(algorithms[0].name()));
            // The 401 is not remembered: the same INVITE is challenged again...
            assert!(matches!(
                screen.screen(trunk_ip(), &raw_summary(&first), now),
                Screening::Challenge(_)
            ));
            // ...and the authenticated retry (same Call-ID, CSeq + 1) goes through.
            let retry = answered(&first, &challenge, ("alice", "s3cret"), RURI, 1);
            let s = raw_summary(&retry);
            assert_eq!(s.request_uri, RURI);
            let Screening::Route(route) = screen.screen(trunk_ip(), &s, now) else {
                panic!("not routed with {algorithms:?}");
            };
            assert_eq!(route.called.as_str(), "+15550001111");
            // Replayed (a new branch with the same Authorization): a stale challenge.
            let again = challenge_of(screen.screen(trunk_ip(), &s, now));
            assert!(again.stale);
        }
    }

    #[test]
    fn wrong_password_and_unknown_user_get_the_same_403() {
        let mut screen = digest_screen(&[DigestAlgorithm::Sha256, DigestAlgorithm::Md5]);
        let now = Instant::now();
        let mut decisions = Vec::new();
        for (call_id, creds) in [("w1", ("alice", "guess")), ("w2", ("mallory", "s3cret"))] {
            let first = invite("15550001111", "+15557654321", call_id, SDP);
            let challenge = challenge_of(screen.screen(trunk_ip(), &raw_summary(&first), now));
            let retry = answered(&first, &challenge, creds, RURI, 1);
            decisions.push(screen.screen(trunk_ip(), &raw_summary(&retry), now));
        }
        assert_eq!(decisions[0], Screening::Refuse(403));
        assert_eq!(decisions[0], decisions[1]);
        // The 403 is remembered by Call-ID: the right password no longer helps there.
        let first = invite("15550001111", "+15557654321", "w1", SDP);
        assert_eq!(
            screen.screen(trunk_ip(), &raw_summary(&first), now),
            Screening::Refuse(403)
        );
    }

    /// One INVITE from `source` with Call-ID `call_id`, answered with `password` when
    /// challenged: the final decision.
    fn attempt(
        screen: &mut InboundScreen,
        source: IpAddr,
        call_id: &str,
        password: &str,
        now: Instant,
    ) -> Screening {
        let first = invite("15550001111", "+15557654321", call_id, SDP);
        let decision = screen.screen(source, &raw_summary(&first), now);
        let Screening::Challenge(challenge) = decision else {
            return decision;
        };
        let retry = answered(&first, &challenge, ("alice", password), RURI, 1);
        screen.screen(source, &raw_summary(&retry), now)
    }

    fn lockout_screen(limit: usize, lockout: Duration) -> InboundScreen {
        let mut c = digest_config(&[DigestAlgorithm::Md5]);
        c.inbound[0].max_auth_failures = limit;
        c.inbound[0].auth_lockout = lockout;
        InboundScreen::with_nonce_key(&c, [7; 32])
    }

    #[test]
    fn repeated_wrong_answers_lock_the_source_out_for_a_while() {
        let lockout = Duration::from_secs(60);
        let mut screen = lockout_screen(3, lockout);
        let t0 = Instant::now();
        let guesser = trunk_ip();
        let neighbour: IpAddr = "192.0.2.10".parse().unwrap();
        for (i, guess) in ["a", "b", "c"].into_iter().enumerate() {
            let at = t0 + Duration::from_secs(i as u64);
            let decision = attempt(&mut screen, guesser, &format!("g{i}"), guess, at);
            assert_eq!(decision, Screening::Refuse(403));
        }
        // Locked out: the right password gets the same 403, without even a challenge,
        // so a guess cannot tell.
        let locked = t0 + Duration::from_secs(3);
        let first = invite("15550001111", "+15557654321", "g3", SDP);
        assert_eq!(
            screen.screen(guesser, &raw_summary(&first), locked),
            Screening::Refuse(403)
        );
        assert_eq!(
            attempt(&mut screen, guesser, "g4", "s3cret", locked),
            Screening::Refuse(403)
        );
        // Another address of the same trunk is not held back.
        assert!(matches!(
            attempt(&mut screen, neighbour, "n0", "s3cret", locked),
            Screening::Route(_)
        ));
        // The lockout runs from the third failure; after it, the right password works.
        let free = t0 + Duration::from_secs(2) + lockout;
        assert!(matches!(
            attempt(&mut screen, guesser, "g5", "s3cret", free),
            Screening::Route(_)
        ));
    }

    #[test]
    fn a_success_or_a_quiet_spell_starts_the_count_afresh() {
        let lockout = Duration::from_secs(60);
        let mut screen = lockout_screen(3, lockout);
        let t0 = Instant::now();
        let source = trunk_ip();
        let mut at = t0;
        let mut call = 0;
        let mut next = |screen: &mut InboundScreen, password: &str, at: Instant| {
            call += 1;
            attempt(screen, source, &format!("c{call}"), password, at)
        };
        // Two wrong, one right, two wrong: never three in a row.
        for password in ["x", "y", "s3cret", "x", "y"] {
            at += Duration::from_secs(1);
            next(&mut screen, password, at);
        }
        // A lockout's time after the last failure, the count is gone too.
        at += lockout;
        assert_eq!(next(&mut screen, "z", at), Screening::Refuse(403));
        assert!(matches!(
            next(&mut screen, "s3cret", at),
            Screening::Route(_)
        ));
        // Three in a row do lock out.
        for password in ["x", "y", "z"] {
            at += Duration::from_secs(1);
            assert_eq!(next(&mut screen, password, at), Screening::Refuse(403));
        }
        assert_eq!(next(&mut screen, "s3cret", at), Screening::Refuse(403));
    }

    #[test]
    fn failing_sources_are_bounded_and_lockouts_outlive_strays() {
        let mut lockouts = Lockouts::default();
        let now = Instant::now();
        let locked: IpAddr = "192.0.2.1".parse().unwrap();
        let lockout = Duration::from_secs(300);
        for _ in 0..2 {
            lockouts.failed((0, locked), 2, lockout, now);
        }
        assert!(lockouts.locked((0, locked), now));
        // Many strays, each failing once a little later than the last.
        for i in 0..(MAX_FAILING_SOURCES as u32 + 100) {
            let stray = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let at = now + Duration::from_millis(u64::from(i));
            assert!(!lockouts.failed((0, stray), 2, Duration::from_secs(1), at));
        }
        assert!(lockouts.sources.len() <= MAX_FAILING_SOURCES);
        assert!(lockouts.locked((0, locked), now + Duration::from_secs(5)));
        assert!(!lockouts.locked((0, locked), now + lockout));
        lockouts.prune(now + lockout);
        assert!(lockouts.sources.is_empty());
    }

    #[test]
    fn a_digest_uri_other_than_the_request_uri_is_400() {
        let mut screen = digest_screen(&[DigestAlgorithm::Md5]);
        let now = Instant::now();
        let first = invite("15550001111", "+15557654321", "u1", SDP);
        let challenge = challenge_of(screen.screen(trunk_ip(), &raw_summary(&first), now));
        let retry = answered(
            &first,
            &challenge,
            ("alice", "s3cret"),
            "sip:198.51.100.1",
            1,
        );
        assert_eq!(
            screen.screen(trunk_ip(), &raw_summary(&retry), now),
            Screening::Refuse(400)
        );
    }

    #[test]
    fn an_expired_nonce_gets_a_stale_challenge() {
        let mut screen = digest_screen(&[DigestAlgorithm::Sha256]);
        let t0 = Instant::now();
        let first = invite("15550001111", "+15557654321", "e1", SDP);
        let challenge = challenge_of(screen.screen(trunk_ip(), &raw_summary(&first), t0));
        let retry = answered(&first, &challenge, ("alice", "s3cret"), RURI, 1);
        let late = t0 + crate::digest::NONCE_LIFETIME + Duration::from_secs(1);
        let stale = challenge_of(screen.screen(trunk_ip(), &raw_summary(&retry), late));
        assert!(stale.stale);
        let retry = answered(&first, &stale, ("alice", "s3cret"), RURI, 1);
        assert!(matches!(
            screen.screen(trunk_ip(), &raw_summary(&retry), late),
            Screening::Route(_)
        ));
    }

    #[test]
    fn the_trunks_calls_at_once_cap_answers_503_until_a_call_ends() {
        let mut c = config();
        c.inbound[0].max_calls = 1;
        let mut screen = InboundScreen::with_nonce_key(&c, [1; 32]);
        let now = Instant::now();
        let a = summary(&invite("15550001111", "+15557654321", "k1", SDP)).unwrap();
        let b = summary(&invite("15550001111", "+15557654322", "k2", SDP)).unwrap();
        let Screening::Route(route) = screen.screen(trunk_ip(), &a, now) else {
            panic!("first call refused");
        };
        assert_eq!(screen.active_calls("carrier-in"), 1);
        assert_eq!(
            screen.screen(trunk_ip(), &b, now),
            Screening::Limited {
                code: 503,
                retry_after: None
            }
        );
        screen.finished(&route.slot);
        assert_eq!(screen.active_calls("carrier-in"), 0);
        assert!(matches!(
            screen.screen(trunk_ip(), &b, now),
            Screening::Route(_)
        ));
    }

    #[test]
    fn per_minute_caps_answer_with_retry_after() {
        let mut c = config();
        c.inbound[0].calls_per_minute_per_caller = 2;
        c.inbound[0].calls_per_minute = 3;
        let mut screen = InboundScreen::with_nonce_key(&c, [1; 32]);
        let t0 = Instant::now();
        let call = |from: &str, id: &str| summary(&invite("15550001111", from, id, SDP)).unwrap();
        for (i, id) in ["r1", "r2"].iter().enumerate() {
            let t = t0 + Duration::from_secs(i as u64);
            let Screening::Route(route) = screen.screen(trunk_ip(), &call("+15557654321", id), t)
            else {
                panic!("{id} refused");
            };
            screen.finished(&route.slot);
        }
        // The same number a third time within the minute: 486, until r1 leaves it.
        let t = t0 + Duration::from_millis(20_500);
        assert_eq!(
            screen.screen(trunk_ip(), &call("+15557654321", "r3"), t),
            Screening::Limited {
                code: 486,
                retry_after: Some(Duration::from_secs(40))
            }
        );
        // Another number still gets in, once: then the trunk's minute is full.
        assert!(matches!(
            screen.screen(trunk_ip(), &call("+15557654322", "r4"), t),
            Screening::Route(_)
        ));
        assert_eq!(
            screen.screen(trunk_ip(), &call("+15557654323", "r5"), t),
            Screening::Limited {
                code: 503,
                retry_after: Some(Duration::from_secs(40))
            }
        );
        // Nothing of that was remembered by Call-ID.
        assert!(matches!(
            screen.screen(
                trunk_ip(),
                &call("+15557654321", "r3"),
                t0 + Duration::from_secs(61)
            ),
            Screening::Route(_)
        ));
    }

    #[test]
    fn the_raw_request_uri_is_kept_as_sent() {
        let bytes = invite("15550001111", "+15557654321", "x", SDP).to_vec();
        let bytes = String::from_utf8(bytes)
            .unwrap()
            .replacen(
                "@198.51.100.1 SIP/2.0",
                "@198.51.100.1;user=phone SIP/2.0",
                1,
            )
            .into_bytes();
        assert_eq!(
            raw_summary(&bytes).request_uri,
            "sip:15550001111@198.51.100.1;user=phone"
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
