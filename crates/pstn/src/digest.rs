//! Digest authentication of inbound INVITEs (RFC 3261 §22, RFC 7616, RFC 8760), sans IO.
//!
//! A trunk with credentials gets a `401` for an INVITE without them, with one
//! `WWW-Authenticate` challenge per configured algorithm, most preferred first
//! (RFC 8760 §2.4: SHA-256, then MD5), always `qop="auth"`. The retry (a new
//! transaction: same Call-ID, CSeq + 1) carries an `Authorization` that
//! [`DigestVerifier::verify`] checks:
//!
//! - the nonce is ours: `<issued ms>-<serial>-<HMAC-SHA-256>` under a per-process
//!   random key, so nothing is stored per challenge and a nonce cannot be forged;
//! - the digest `uri` equals the Request-URI (RFC 7616 §3.4.6: else 400);
//! - the response matches the stored HA1 (never the password), compared in constant
//!   time; an unknown user is checked against a dummy HA1, so unknown user and wrong
//!   password take the same path and get the same [`Verdict::Forbidden`];
//! - a correct response to a nonce older than [`NONCE_LIFETIME`] gets a new challenge
//!   with `stale=true` (RFC 7616 §3.3: the client retries without asking anyone);
//! - the nonce count `nc` must grow per nonce, so a replayed `Authorization` gets a
//!   new challenge. Counts are kept only for nonces that authenticated something, at
//!   most [`MAX_TRACKED`]; an evicted nonce counts as used up.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ezk_sip_types::header::HeaderParse;
use ezk_sip_types::header::typed::{AuthResponse, Username};
use ezk_sip_types::{Headers, Name};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Credentials;

/// The realm of every challenge we issue (part of HA1).
pub const REALM: &str = "ringwire";
/// How long a nonce we issued is good for.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(300);
/// The most nonces whose last nonce count is remembered.
pub const MAX_TRACKED: usize = 4096;
/// The most `Authorization` headers of one request looked at.
const MAX_AUTHORIZATIONS: usize = 4;

/// A digest hash algorithm (RFC 8760).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DigestAlgorithm {
    /// SHA-256 (RFC 7616), preferred.
    #[serde(rename = "SHA-256")]
    Sha256,
    /// MD5 (RFC 2617), for trunks that know nothing else (sipp 3.6, older gear).
    #[serde(rename = "MD5")]
    Md5,
}

impl DigestAlgorithm {
    /// The name in `algorithm=`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => "SHA-256",
            DigestAlgorithm::Md5 => "MD5",
        }
    }

    /// The algorithm an `algorithm=` names (case-insensitive), if we support it.
    #[must_use]
    pub fn from_name(name: &str) -> Option<DigestAlgorithm> {
        [DigestAlgorithm::Sha256, DigestAlgorithm::Md5]
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// `H(data)` as lower-case hex.
    fn hash(self, data: &str) -> String {
        match self {
            DigestAlgorithm::Sha256 => hex(&Sha256::digest(data.as_bytes())),
            DigestAlgorithm::Md5 => hex(&md5::compute(data.as_bytes()).0),
        }
    }

    /// The length of its hex digests.
    fn hex_len(self) -> usize {
        match self {
            DigestAlgorithm::Sha256 => 64,
            DigestAlgorithm::Md5 => 32,
        }
    }
}

/// The algorithms offered when a trunk's configuration names none: SHA-256, then MD5
/// (RFC 8760 §2.4 order).
#[must_use]
pub fn default_algorithms() -> Vec<DigestAlgorithm> {
    vec![DigestAlgorithm::Sha256, DigestAlgorithm::Md5]
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The digest fields of one `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestAuthorization {
    /// `username`.
    pub username: String,
    /// `realm`.
    pub realm: String,
    /// `nonce`, as we issued it (if it is ours).
    pub nonce: String,
    /// `uri`: must equal the Request-URI.
    pub uri: String,
    /// `response`, hex.
    pub response: String,
    /// `algorithm` (MD5 when absent).
    pub algorithm: String,
    /// `qop`, when the client chose one.
    pub qop: Option<String>,
    /// `cnonce`.
    pub cnonce: Option<String>,
    /// `nc`, the nonce count.
    pub nc: Option<u32>,
}

impl DigestAuthorization {
    /// The digest `Authorization` headers of a request (ezk's parser); the ones that
    /// do not parse, use another scheme or a non-ASCII `username*` are skipped.
    #[must_use]
    pub fn from_headers(headers: &Headers) -> Vec<DigestAuthorization> {
        headers
            .get_raw(&Name::AUTHORIZATION)
            .take(MAX_AUTHORIZATIONS)
            .filter_map(|v| {
                let (_, AuthResponse::Digest(d)) =
                    AuthResponse::parse(v.as_ref(), v.as_str()).ok()?
                else {
                    return None;
                };
                let Username::Username(username) = d.username else {
                    return None;
                };
                let (qop, cnonce, nc) = match d.qop_response {
                    Some(q) => (
                        Some(q.qop.to_string()),
                        Some(q.cnonce.to_string()),
                        Some(q.nc),
                    ),
                    None => (None, None, None),
                };
                Some(DigestAuthorization {
                    username: username.to_string(),
                    realm: d.realm.to_string(),
                    nonce: d.nonce.to_string(),
                    uri: d.uri.to_string(),
                    response: d.response.to_string(),
                    algorithm: d.algorithm.to_string(),
                    qop,
                    cnonce,
                    nc,
                })
            })
            .collect()
    }
}

/// A trunk's credentials as the verifier keeps them: the user name and
/// `HA1 = H(username:realm:password)` per algorithm; the password is not kept.
#[derive(Clone)]
pub struct DigestUser {
    username: String,
    ha1: Vec<(DigestAlgorithm, String)>,
}

impl std::fmt::Debug for DigestUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestUser")
            .field("username", &self.username)
            .field("ha1", &"<hidden>")
            .finish()
    }
}

impl DigestUser {
    /// HA1 of `credentials` in [`REALM`] for each of `algorithms`.
    #[must_use]
    pub fn new(credentials: &Credentials, algorithms: &[DigestAlgorithm]) -> DigestUser {
        let a1 = format!("{}:{REALM}:{}", credentials.username, credentials.password);
        DigestUser {
            username: credentials.username.clone(),
            ha1: algorithms.iter().map(|a| (*a, a.hash(&a1))).collect(),
        }
    }

    /// The algorithms this user has an HA1 for, in preference order.
    #[must_use]
    pub fn algorithms(&self) -> Vec<DigestAlgorithm> {
        self.ha1.iter().map(|(a, _)| *a).collect()
    }
}

/// A `401` to send: the `WWW-Authenticate` header values, most preferred first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// One value per algorithm.
    pub www_authenticate: Vec<String>,
    /// Whether it says `stale=true` (the credentials were right, the nonce too old).
    pub stale: bool,
}

/// What [`DigestVerifier::verify`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The credentials are right.
    Authorized,
    /// Answer `401` with this challenge (none sent, not ours, stale or replayed).
    Challenge(Challenge),
    /// Wrong credentials, unknown user, an algorithm or qop we did not offer: `403`,
    /// the same for all of them.
    Forbidden,
    /// The digest `uri` is not the Request-URI: `400`.
    UriMismatch,
}

/// Issues and checks nonces. See the [module docs](self).
pub struct DigestVerifier {
    key: [u8; 32],
    /// The instant nonce times count from (the first one seen).
    epoch: Option<Instant>,
    next_serial: u64,
    /// Per nonce serial that authenticated something: its issue time and last `nc`.
    used: BTreeMap<u64, (u64, u32)>,
    /// Serials up to this one were evicted from `used` and count as used up.
    evicted_up_to: Option<u64>,
}

impl std::fmt::Debug for DigestVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestVerifier")
            .field("issued", &self.next_serial)
            .field("tracked", &self.used.len())
            .finish_non_exhaustive()
    }
}

impl DigestVerifier {
    /// A verifier signing its nonces with `key` (random per process; see
    /// [`DigestVerifier::random_key`]).
    #[must_use]
    pub fn new(key: [u8; 32]) -> DigestVerifier {
        DigestVerifier {
            key,
            epoch: None,
            next_serial: 0,
            used: BTreeMap::new(),
            evicted_up_to: None,
        }
    }

    /// 32 bytes from the operating system's RNG (or, should it fail, from std's
    /// randomly keyed hasher: never a fixed key).
    #[must_use]
    pub fn random_key() -> [u8; 32] {
        let mut key = [0u8; 32];
        if getrandom::fill(&mut key).is_err() {
            use std::hash::{BuildHasher, Hasher};
            for chunk in key.chunks_mut(8) {
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_u64(0x5249_4e47_5749_5245);
                for (b, v) in chunk.iter_mut().zip(h.finish().to_le_bytes()) {
                    *b = v;
                }
            }
        }
        key
    }

    fn millis(&mut self, now: Instant) -> u64 {
        let epoch = *self.epoch.get_or_insert(now);
        u64::try_from(now.saturating_duration_since(epoch).as_millis()).unwrap_or(u64::MAX)
    }

    fn mac(&self, body: &str) -> String {
        // HMAC takes keys of any length; 32 bytes never fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return String::new();
        };
        mac.update(body.as_bytes());
        hex(&mac.finalize().into_bytes()[..16])
    }

    /// A new challenge for `algorithms` (in that order).
    pub fn challenge(
        &mut self,
        algorithms: &[DigestAlgorithm],
        stale: bool,
        now: Instant,
    ) -> Challenge {
        let issued = self.millis(now);
        let serial = self.next_serial;
        self.next_serial += 1;
        let body = format!("{issued:x}-{serial:x}");
        let nonce = format!("{body}-{}", self.mac(&body));
        let stale_param = if stale { ", stale=true" } else { "" };
        Challenge {
            www_authenticate: algorithms
                .iter()
                .map(|a| {
                    format!(
                        "Digest realm=\"{REALM}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"{stale_param}",
                        a.name()
                    )
                })
                .collect(),
            stale,
        }
    }

    /// The issue time and serial of a nonce we signed.
    fn open(&self, nonce: &str) -> Option<(u64, u64)> {
        let (body, mac) = nonce.rsplit_once('-')?;
        let (issued, serial) = body.split_once('-')?;
        let expected = self.mac(body);
        if !bool::from(expected.as_bytes().ct_eq(mac.as_bytes())) {
            return None;
        }
        Some((
            u64::from_str_radix(issued, 16).ok()?,
            u64::from_str_radix(serial, 16).ok()?,
        ))
    }

    /// Checks `authorizations` of a `method` request to `request_uri` against
    /// `user`, who may use `user.algorithms()`.
    pub fn verify(
        &mut self,
        user: &DigestUser,
        method: &str,
        request_uri: &str,
        authorizations: &[DigestAuthorization],
        now: Instant,
    ) -> Verdict {
        let now_ms = self.millis(now);
        self.forget_expired(now_ms);
        let algorithms = user.algorithms();
        let Some(auth) = authorizations.iter().find(|a| a.realm == REALM) else {
            return Verdict::Challenge(self.challenge(&algorithms, false, now));
        };
        let Some((issued, serial)) = self.open(&auth.nonce) else {
            return Verdict::Challenge(self.challenge(&algorithms, false, now));
        };
        if auth.uri != request_uri {
            return Verdict::UriMismatch;
        }
        let Some(algorithm) =
            DigestAlgorithm::from_name(&auth.algorithm).filter(|a| algorithms.contains(a))
        else {
            return Verdict::Forbidden;
        };
        let (Some("auth"), Some(cnonce), Some(nc)) =
            (auth.qop.as_deref(), auth.cnonce.as_deref(), auth.nc)
        else {
            return Verdict::Forbidden;
        };
        // Same work whether or not the user exists: a dummy HA1 for strangers.
        let dummy = "0".repeat(algorithm.hex_len());
        let known = user.username.as_bytes().ct_eq(auth.username.as_bytes());
        let ha1 = user
            .ha1
            .iter()
            .find(|(a, _)| *a == algorithm)
            .map_or(dummy.as_str(), |(_, h)| h.as_str());
        let expected = response(algorithm, ha1, &auth.nonce, nc, cnonce, method, &auth.uri);
        let given = auth.response.to_ascii_lowercase();
        if !bool::from(known & expected.as_bytes().ct_eq(given.as_bytes())) {
            return Verdict::Forbidden;
        }
        let expired = issued > now_ms
            || now_ms - issued >= u64::try_from(NONCE_LIFETIME.as_millis()).unwrap_or(u64::MAX);
        let used_up = match self.used.get(&serial) {
            Some((_, last)) => nc <= *last,
            None => self.evicted_up_to.is_some_and(|e| serial <= e),
        };
        if expired || used_up {
            return Verdict::Challenge(self.challenge(&algorithms, true, now));
        }
        self.used.insert(serial, (issued, nc));
        while self.used.len() > MAX_TRACKED {
            if let Some((old, _)) = self.used.pop_first() {
                self.evicted_up_to = Some(self.evicted_up_to.map_or(old, |e| e.max(old)));
            }
        }
        Verdict::Authorized
    }

    /// Drops the counts of nonces that expired (they are refused as stale anyway).
    fn forget_expired(&mut self, now_ms: u64) {
        let lifetime = u64::try_from(NONCE_LIFETIME.as_millis()).unwrap_or(u64::MAX);
        self.used
            .retain(|_, (issued, _)| now_ms.saturating_sub(*issued) < lifetime);
    }
}

/// RFC 7616 §3.4.1 with `qop=auth`:
/// `H(HA1:nonce:nc:cnonce:auth:H(method:uri))`.
fn response(
    algorithm: DigestAlgorithm,
    ha1: &str,
    nonce: &str,
    nc: u32,
    cnonce: &str,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = algorithm.hash(&format!("{method}:{uri}"));
    algorithm.hash(&format!("{ha1}:{nonce}:{nc:08x}:{cnonce}:auth:{ha2}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const URI: &str = "sip:15550001111@127.0.0.1:5396";

    fn alice() -> Credentials {
        Credentials {
            username: "alice".into(),
            password: "s3cret".into(),
        }
    }

    /// The client's side, computed with the hash crates directly (not through the
    /// verifier's code).
    fn client_response(
        algorithm: DigestAlgorithm,
        (user, password): (&str, &str),
        nonce: &str,
        nc: u32,
        uri: &str,
    ) -> String {
        let h = |s: String| match algorithm {
            DigestAlgorithm::Md5 => format!("{:x}", md5::compute(s.as_bytes())),
            DigestAlgorithm::Sha256 => Sha256::digest(s.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        };
        let ha1 = h(format!("{user}:{REALM}:{password}"));
        let ha2 = h(format!("INVITE:{uri}"));
        h(format!("{ha1}:{nonce}:{nc:08x}:0a4f113b:auth:{ha2}"))
    }

    fn authorization(
        algorithm: DigestAlgorithm,
        creds: (&str, &str),
        nonce: &str,
        nc: u32,
        uri: &str,
    ) -> DigestAuthorization {
        DigestAuthorization {
            username: creds.0.into(),
            realm: REALM.into(),
            nonce: nonce.into(),
            uri: uri.into(),
            response: client_response(algorithm, creds, nonce, nc, uri),
            algorithm: algorithm.name().into(),
            qop: Some("auth".into()),
            cnonce: Some("0a4f113b".into()),
            nc: Some(nc),
        }
    }

    fn nonce_of(challenge: &Challenge) -> String {
        let v = &challenge.www_authenticate[0];
        let start = v.find("nonce=\"").unwrap() + 7;
        let end = start + v[start..].find('"').unwrap();
        v[start..end].to_owned()
    }

    fn fresh(v: &mut DigestVerifier, user: &DigestUser, now: Instant) -> String {
        let Verdict::Challenge(c) = v.verify(user, "INVITE", URI, &[], now) else {
            panic!("no challenge");
        };
        assert!(!c.stale);
        nonce_of(&c)
    }

    #[test]
    fn hashes_match_values_computed_elsewhere() {
        // sipp 3.6.1 answered `nonce="abc"` for alice:s3cret with exactly this (its
        // `-auth_uri`), cnonce 6b8b4567, nc 1: the MD5 value is sipp's own, the
        // SHA-256 one Python's hashlib over the same strings.
        let md5_ha1 = format!("{:x}", md5::compute("alice:ringwire:s3cret"));
        let got = response(
            DigestAlgorithm::Md5,
            &md5_ha1,
            "abc",
            1,
            "6b8b4567",
            "INVITE",
            URI,
        );
        assert_eq!(got, "b6db5af04e4dd373cd6a020f3df67a30");
        let sha_ha1 = hex(&Sha256::digest(b"alice:ringwire:s3cret"));
        let got = response(
            DigestAlgorithm::Sha256,
            &sha_ha1,
            "abc",
            1,
            "6b8b4567",
            "INVITE",
            URI,
        );
        assert_eq!(
            got,
            "b07ed3d4ce737042e5561e08ac73c3dc716c262842b5887322d0547f1f8e0e63"
        );
    }

    #[test]
    fn the_first_invite_is_challenged_with_both_algorithms_sha256_first() {
        let mut v = DigestVerifier::new([7; 32]);
        let user = DigestUser::new(&alice(), &default_algorithms());
        let Verdict::Challenge(c) = v.verify(&user, "INVITE", URI, &[], Instant::now()) else {
            panic!("no challenge");
        };
        assert_eq!(c.www_authenticate.len(), 2);
        assert!(c.www_authenticate[0].contains("algorithm=SHA-256"));
        assert!(c.www_authenticate[1].contains("algorithm=MD5"));
        for h in &c.www_authenticate {
            assert!(h.starts_with("Digest realm=\"ringwire\", nonce=\""), "{h}");
            assert!(h.contains("qop=\"auth\""));
            assert!(!h.contains("stale"));
        }
        // The header parses as a challenge (what a client's stack reads).
        let value = bytesstr::BytesStr::from(c.www_authenticate[0].clone());
        let parsed =
            ezk_sip_types::header::typed::AuthChallenge::parse(value.as_ref(), value.as_str());
        assert!(parsed.is_ok());
    }

    #[test]
    fn sha256_and_md5_answers_are_accepted() {
        let now = Instant::now();
        let mut v = DigestVerifier::new([1; 32]);
        let user = DigestUser::new(&alice(), &default_algorithms());
        for algorithm in [DigestAlgorithm::Sha256, DigestAlgorithm::Md5] {
            let nonce = fresh(&mut v, &user, now);
            let auth = authorization(algorithm, ("alice", "s3cret"), &nonce, 1, URI);
            assert_eq!(
                v.verify(&user, "INVITE", URI, &[auth], now),
                Verdict::Authorized,
                "{algorithm:?}"
            );
        }
        // An algorithm the trunk was not configured for is refused.
        let md5_only = DigestUser::new(&alice(), &[DigestAlgorithm::Md5]);
        let nonce = fresh(&mut v, &md5_only, now);
        let auth = authorization(DigestAlgorithm::Sha256, ("alice", "s3cret"), &nonce, 1, URI);
        assert_eq!(
            v.verify(&md5_only, "INVITE", URI, &[auth], now),
            Verdict::Forbidden
        );
    }

    #[test]
    fn unknown_user_and_wrong_password_get_the_same_answer() {
        let now = Instant::now();
        let mut v = DigestVerifier::new([2; 32]);
        let user = DigestUser::new(&alice(), &default_algorithms());
        let nonce = fresh(&mut v, &user, now);
        let wrong_password =
            authorization(DigestAlgorithm::Md5, ("alice", "guess"), &nonce, 1, URI);
        let unknown_user =
            authorization(DigestAlgorithm::Md5, ("mallory", "s3cret"), &nonce, 1, URI);
        let a = v.verify(&user, "INVITE", URI, &[wrong_password], now);
        let b = v.verify(&user, "INVITE", URI, &[unknown_user], now);
        assert_eq!(a, Verdict::Forbidden);
        assert_eq!(a, b);
        // Neither used the nonce up: the right password still gets in with it.
        let right = authorization(DigestAlgorithm::Md5, ("alice", "s3cret"), &nonce, 1, URI);
        assert_eq!(
            v.verify(&user, "INVITE", URI, &[right], now),
            Verdict::Authorized
        );
    }

    #[test]
    fn nonces_expire_and_then_are_stale() {
        let t0 = Instant::now();
        let mut v = DigestVerifier::new([3; 32]);
        let user = DigestUser::new(&alice(), &default_algorithms());
        let nonce = fresh(&mut v, &user, t0);
        let auth = authorization(DigestAlgorithm::Sha256, ("alice", "s3cret"), &nonce, 1, URI);
        let late = t0 + NONCE_LIFETIME;
        let Verdict::Challenge(c) =
            v.verify(&user, "INVITE", URI, std::slice::from_ref(&auth), late)
        else {
            panic!("an expired nonce was accepted");
        };
        assert!(c.stale);
        assert!(c.www_authenticate.iter().all(|h| h.contains("stale=true")));
        assert_ne!(nonce_of(&c), nonce);
        // Just before, it was fine.
        let mut v2 = DigestVerifier::new([3; 32]);
        let nonce = fresh(&mut v2, &user, t0);
        let auth = authorization(DigestAlgorithm::Sha256, ("alice", "s3cret"), &nonce, 1, URI);
        assert_eq!(
            v2.verify(
                &user,
                "INVITE",
                URI,
                &[auth],
                t0 + NONCE_LIFETIME - Duration::from_millis(1)
            ),
            Verdict::Authorized
        );
        // An expired nonce with a wrong password is simply forbidden.
        let wrong = authorization(DigestAlgorithm::Md5, ("alice", "nope"), &nonce, 2, URI);
        assert_eq!(
            v2.verify(&user, "INVITE", URI, &[wrong], late),
            Verdict::Forbidden
        );
    }

    #[test]
    fn replays_are_challenged_and_counts_must_grow() {
        let now = Instant::now();
        let mut v = DigestVerifier::new([4; 32]);
        let user = DigestUser::new(&alice(), &default_algorithms());
        let nonce = fresh(&mut v, &user, now);
        let first = authorization(DigestAlgorithm::Md5, ("alice", "s3cret"), &nonce, 1, URI);
        assert_eq!(
            v.verify(&user, "INVITE", URI, std::slice::from_ref(&first), now),
            Verdict::Authorized
        );
        let Verdict::Challenge(c) = v.verify(&user, "INVITE", URI, &[first], now) else {
            panic!("a replay was accepted");
        };
        assert!(c.stale);
        let second = authorization(DigestAlgorithm::Md5, ("alice", "s3cret"), &nonce, 2, URI);
        assert_eq!(
            v.verify(&user, "INVITE", URI, &[second], now),
            Verdict::Authorized
        );
    }

    #[test]
    fn the_digest_uri_must_be_the_request_uri() {
        let now = Instant::now();
        let mut v = DigestVerifier::new([5; 32]);
        let user = DigestUser::new(&alice(), &default_algorithms());
        let nonce = fresh(&mut v, &user, now);
        // What sipp sends without `-auth_uri`: the remote address.
        let other = "sip:127.0.0.1:5396";
        let auth = authorization(DigestAlgorithm::Md5, ("alice", "s3cret"), &nonce, 1, other);
        assert_eq!(
            v.verify(&user, "INVITE", URI, &[auth], now),
            Verdict::UriMismatch
        );
    }

    #[test]
    fn forged_nonces_and_other_realms_get_a_fresh_challenge() {
        let now = Instant::now();
        let mut v = DigestVerifier::new([6; 32]);
        let user = DigestUser::new(&alice(), &default_algorithms());
        let nonce = fresh(&mut v, &user, now);
        // Another process's key signed it.
        let mut other = DigestVerifier::new([9; 32]);
        let foreign = fresh(&mut other, &user, now);
        let mut tampered = nonce.clone();
        let last = if tampered.pop() == Some('0') {
            '1'
        } else {
            '0'
        };
        tampered.push(last);
        for bad in [foreign, tampered, "abc".into(), String::new()] {
            let auth = authorization(DigestAlgorithm::Md5, ("alice", "s3cret"), &bad, 1, URI);
            let Verdict::Challenge(c) = v.verify(&user, "INVITE", URI, &[auth], now) else {
                panic!("nonce {bad:?} accepted");
            };
            assert!(!c.stale);
        }
        let mut auth = authorization(DigestAlgorithm::Md5, ("alice", "s3cret"), &nonce, 1, URI);
        auth.realm = "elsewhere".into();
        assert!(matches!(
            v.verify(&user, "INVITE", URI, &[auth], now),
            Verdict::Challenge(_)
        ));
    }

    #[test]
    fn without_qop_auth_nothing_is_accepted() {
        let now = Instant::now();
        let mut v = DigestVerifier::new([8; 32]);
        let user = DigestUser::new(&alice(), &default_algorithms());
        let nonce = fresh(&mut v, &user, now);
        let mut auth = authorization(DigestAlgorithm::Md5, ("alice", "s3cret"), &nonce, 1, URI);
        auth.qop = None;
        assert_eq!(
            v.verify(&user, "INVITE", URI, &[auth], now),
            Verdict::Forbidden
        );
    }

    #[test]
    fn tracked_counts_are_bounded_and_evicted_nonces_are_used_up() {
        let now = Instant::now();
        let mut v = DigestVerifier::new([10; 32]);
        let user = DigestUser::new(&alice(), &[DigestAlgorithm::Md5]);
        let first = fresh(&mut v, &user, now);
        let auth =
            |n: &str, nc| authorization(DigestAlgorithm::Md5, ("alice", "s3cret"), n, nc, URI);
        assert_eq!(
            v.verify(&user, "INVITE", URI, &[auth(&first, 1)], now),
            Verdict::Authorized
        );
        for _ in 0..MAX_TRACKED {
            let n = fresh(&mut v, &user, now);
            assert_eq!(
                v.verify(&user, "INVITE", URI, &[auth(&n, 1)], now),
                Verdict::Authorized
            );
        }
        assert_eq!(v.used.len(), MAX_TRACKED);
        assert!(matches!(
            v.verify(&user, "INVITE", URI, &[auth(&first, 2)], now),
            Verdict::Challenge(Challenge { stale: true, .. })
        ));
    }

    #[test]
    fn authorization_headers_parse_through_ezk() {
        let mut headers = Headers::new();
        headers.insert(
            Name::AUTHORIZATION,
            "Digest username=\"alice\",realm=\"ringwire\",cnonce=\"6b8b4567\",nc=00000001,\
             qop=auth,uri=\"sip:15550001111@127.0.0.1:5396\",nonce=\"abc\",\
             response=\"b6db5af04e4dd373cd6a020f3df67a30\",algorithm=MD5",
        );
        headers.insert(Name::AUTHORIZATION, "Basic YWxhZGRpbjpvcGVuc2VzYW1l");
        let parsed = DigestAuthorization::from_headers(&headers);
        assert_eq!(parsed.len(), 1);
        let a = &parsed[0];
        assert_eq!(a.username, "alice");
        assert_eq!(a.uri, URI);
        assert_eq!(a.nc, Some(1));
        assert_eq!(a.cnonce.as_deref(), Some("6b8b4567"));
        assert_eq!(a.qop.as_deref(), Some("auth"));
        assert_eq!(a.algorithm, "MD5");
    }

    #[test]
    fn ha1_and_not_the_password_is_kept() {
        let user = DigestUser::new(&alice(), &default_algorithms());
        assert!(!format!("{user:?}").contains("s3cret"));
        assert!(user.ha1.iter().all(|(_, h)| !h.contains("s3cret")));
    }
}
