//! Access tokens: who a client is and what it may do, signed by the server's key.
//!
//! A token is a JWT (RFC 7519) signed with HMAC-SHA256 (`HS256`, RFC 7518 §3.2). Only
//! `HS256` is accepted; `alg: none` and every other algorithm are refused before the
//! signature is looked at. The claims are:
//!
//! | claim | type | meaning |
//! |-------|------|---------|
//! | `v`   | number | token format version, always `1` |
//! | `sub` | string | the user's raw identifier, `8:<user-id>` (the same form as on the wire) |
//! | `scp` | array of strings | scopes: `"voip"`, `"pstn"`; unknown names are ignored |
//! | `iat` | number | issued at, unix seconds |
//! | `exp` | number | expires at, unix seconds |
//! | `nbf` | number, optional | not before, unix seconds (we never issue it, but honour it) |
//!
//! Verification reads no clock: the caller passes the wall-clock `now` as data. There
//! is no leeway: a token is valid from `max(iat, nbf)` (inclusive) to `exp`
//! (exclusive). Issuer and verifier are the same server fleet, whose clocks are synced;
//! tolerance for client clock skew is not needed because clients never check tokens.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use ringwire_signaling::token::{Scope, Scopes, TokenKey};
//! use ringwire_signaling::UserId;
//!
//! let key = TokenKey::new(&[7u8; 32]).expect("32 bytes is long enough");
//! let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
//! let alice = UserId::new("alice").expect("valid user id");
//! let token = key.issue(&alice, Scopes::from(Scope::Voip), now, Duration::from_secs(3600));
//!
//! let claims = key.verify(&token, now + Duration::from_secs(60)).expect("fresh token");
//! assert_eq!(claims.user, alice);
//! assert!(claims.require(Scope::Voip).is_ok());
//! assert!(claims.require(Scope::Pstn).is_err());
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::id::{Identifier, UserId};

/// Shortest HMAC secret accepted, in bytes.
///
/// RFC 7518 §3.2: an `HS256` key must be at least as long as the hash output (256 bits).
pub const MIN_KEY_LEN: usize = 32;

/// Longest token accepted by [`TokenKey::verify`], in bytes.
///
/// Our tokens are a few hundred bytes; the limit keeps a hostile client from making
/// the server base64-decode and hash much.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Latest `iat` or `exp` [`TokenKey::issue`] writes: 2^53 - 1, the largest integer a
/// JavaScript number holds exactly, so that browser code reads the same value.
const MAX_UNIX_SECS: u64 = (1 << 53) - 1;

/// The token format version this crate issues and accepts (the `v` claim).
pub const TOKEN_VERSION: u32 = 1;

/// The secret that signs and verifies access tokens.
///
/// The caller supplies the key bytes (from configuration or its own seeded generator);
/// nothing here draws randomness. `Debug` does not show the secret.
#[derive(Clone)]
pub struct TokenKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// Something a token allows its holder to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Calls between Ringwire users, group calls and the echo service (`"voip"`).
    Voip,
    /// Calls to and from phone numbers (`"pstn"`).
    Pstn,
}

/// A set of [`Scope`]s; displays and parses as a comma-separated list (`"voip,pstn"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Scopes(u8);

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// Who the token was issued to.
    pub user: UserId,
    /// What the holder may do.
    pub scopes: Scopes,
    /// When the token was issued (whole seconds).
    pub issued_at: SystemTime,
    /// When the token stops being valid (whole seconds, exclusive).
    pub expires_at: SystemTime,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a JWT, bad base64 or JSON, or claims missing or of the wrong form.
    #[error("token is malformed")]
    Malformed,
    /// The signature does not match: another key signed it, or it was tampered with.
    #[error("token signature is invalid")]
    BadSignature,
    /// The token expired at `expired_at`.
    #[error("token expired")]
    Expired {
        /// The token's `exp`.
        expired_at: SystemTime,
    },
    /// The token's `iat` or `nbf` is later than now.
    #[error("token is not valid yet")]
    NotYetValid,
    /// The token is valid but lacks a scope the request needs.
    #[error("token lacks the {0} scope")]
    MissingScope(Scope),
    /// The key given to [`TokenKey::new`] is shorter than [`MIN_KEY_LEN`].
    #[error("token key is shorter than {MIN_KEY_LEN} bytes")]
    WeakKey,
    /// The token is signed with an algorithm other than `HS256` (including `none`).
    #[error("token algorithm is not HS256")]
    WrongAlgorithm,
}

/// A string that names no [`Scope`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?}")]
pub struct ParseScopeError(String);

/// The claims as they are encoded in the JWT.
#[derive(Serialize, Deserialize)]
struct WireClaims {
    v: u32,
    sub: String,
    scp: Vec<String>,
    iat: u64,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
}

/// The part of the JOSE header we check ourselves.
#[derive(Deserialize)]
struct WireHeader {
    alg: String,
}

impl TokenKey {
    /// Makes a key from secret bytes.
    ///
    /// # Errors
    /// [`TokenError::WeakKey`] when `secret` is shorter than [`MIN_KEY_LEN`].
    pub fn new(secret: &[u8]) -> Result<Self, TokenError> {
        if secret.len() < MIN_KEY_LEN {
            return Err(TokenError::WeakKey);
        }
        Ok(TokenKey {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        })
    }

    /// Issues a token for `user` with `scopes`, valid from `issued_at` for `ttl`.
    ///
    /// Times are truncated to whole seconds. A time before the unix epoch counts as the
    /// epoch; times past 2^53 - 1 seconds (JavaScript's largest exact integer) saturate.
    pub fn issue(
        &self,
        user: &UserId,
        scopes: Scopes,
        issued_at: SystemTime,
        ttl: Duration,
    ) -> String {
        let iat = unix_secs(issued_at).min(MAX_UNIX_SECS);
        let exp = issued_at
            .checked_add(ttl)
            .map_or(u64::MAX, unix_secs)
            .clamp(iat, MAX_UNIX_SECS);
        let claims = WireClaims {
            v: TOKEN_VERSION,
            sub: Identifier::User(user.clone()).to_string(),
            scp: scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            iat,
            exp,
            nbf: None,
        };
        // HMAC accepts keys of any length and the claims are plain strings and numbers,
        // so signing cannot fail.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("hs256 signing of plain claims cannot fail")
    }

    /// Checks a token's algorithm, signature and validity at `now`, and returns its claims.
    ///
    /// # Errors
    /// [`TokenError::Malformed`], [`TokenError::WrongAlgorithm`],
    /// [`TokenError::BadSignature`], [`TokenError::Expired`] or
    /// [`TokenError::NotYetValid`], checked in that order.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        check_algorithm(token)?;

        let mut validation = Validation::new(Algorithm::HS256);
        // jsonwebtoken's time checks read the system clock; we check against `now` below.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<WireClaims>(token, &self.decoding, &validation).map_err(
            |e| match e.kind() {
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    TokenError::WrongAlgorithm
                }
                _ => TokenError::Malformed,
            },
        )?;
        let wire = data.claims;

        if wire.v != TOKEN_VERSION {
            return Err(TokenError::Malformed);
        }
        let user = match wire.sub.parse::<Identifier>() {
            Ok(Identifier::User(user)) => user,
            _ => return Err(TokenError::Malformed),
        };
        // Unknown scope names grant nothing; ignoring them lets a newer issuer add scopes.
        let scopes = wire
            .scp
            .iter()
            .filter_map(|s| s.parse::<Scope>().ok())
            .collect();
        let issued_at = from_unix_secs(wire.iat)?;
        let expires_at = from_unix_secs(wire.exp)?;
        let not_before = match wire.nbf {
            Some(nbf) => from_unix_secs(nbf)?.max(issued_at),
            None => issued_at,
        };

        // RFC 7519 §4.1.4: the current time must be before `exp`.
        if now >= expires_at {
            return Err(TokenError::Expired {
                expired_at: expires_at,
            });
        }
        // RFC 7519 §4.1.5: the current time must be at or after `nbf`.
        if now < not_before {
            return Err(TokenError::NotYetValid);
        }
        Ok(Claims {
            user,
            scopes,
            issued_at,
            expires_at,
        })
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl Scope {
    /// Every scope, in display order.
    pub const ALL: [Scope; 2] = [Scope::Voip, Scope::Pstn];

    /// The scope's name in tokens and configuration: `"voip"` or `"pstn"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Voip => "voip",
            Scope::Pstn => "pstn",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Scope::Voip => 1,
            Scope::Pstn => 2,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = ParseScopeError;

    fn from_str(s: &str) -> Result<Self, ParseScopeError> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| ParseScopeError(s.to_owned()))
    }
}

impl Scopes {
    /// No scope.
    pub const fn empty() -> Self {
        Scopes(0)
    }

    /// Every scope.
    pub fn all() -> Self {
        Scope::ALL.into_iter().collect()
    }

    /// Whether `scope` is in the set.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Adds `scope` to the set.
    pub fn insert(&mut self, scope: Scope) {
        self.0 |= scope.bit();
    }

    /// The set with `scope` added.
    #[must_use]
    pub fn with(mut self, scope: Scope) -> Self {
        self.insert(scope);
        self
    }

    /// Whether the set has no scope.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes in the set, in [`Scope::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl From<Scope> for Scopes {
    fn from(scope: Scope) -> Self {
        Scopes::empty().with(scope)
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        iter.into_iter().fold(Scopes::empty(), Scopes::with)
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(scope.as_str())?;
        }
        Ok(())
    }
}

impl FromStr for Scopes {
    type Err = ParseScopeError;

    /// Parses `"voip,pstn"`; spaces around names are ignored and `""` is the empty set.
    fn from_str(s: &str) -> Result<Self, ParseScopeError> {
        if s.trim().is_empty() {
            return Ok(Scopes::empty());
        }
        s.split(',')
            .map(|name| name.trim().parse::<Scope>())
            .collect()
    }
}

impl Claims {
    /// Checks that the token grants `scope`.
    ///
    /// # Errors
    /// [`TokenError::MissingScope`] when it does not.
    pub fn require(&self, scope: Scope) -> Result<(), TokenError> {
        if self.scopes.contains(scope) {
            Ok(())
        } else {
            Err(TokenError::MissingScope(scope))
        }
    }
}

/// Refuses anything but a three-part compact JWS whose header says `HS256`.
///
/// jsonwebtoken cannot even parse a header with `alg: none`, so it would call that
/// malformed; checking here lets us report the algorithm as the problem.
fn check_algorithm(token: &str) -> Result<(), TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| TokenError::Malformed)?;
    let header: WireHeader = serde_json::from_slice(&header).map_err(|_| TokenError::Malformed)?;
    if header.alg != "HS256" {
        return Err(TokenError::WrongAlgorithm);
    }
    Ok(())
}

/// Whole seconds since the unix epoch; times before it count as 0.
fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The time `secs` after the unix epoch, or `Malformed` when it does not fit a `SystemTime`.
fn from_unix_secs(secs: u64) -> Result<SystemTime, TokenError> {
    UNIX_EPOCH
        .checked_add(Duration::from_secs(secs))
        .ok_or(TokenError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000;
    const HOUR: Duration = Duration::from_secs(3600);

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn key(byte: u8) -> TokenKey {
        TokenKey::new(&[byte; 32]).unwrap()
    }

    fn alice() -> UserId {
        UserId::new("alice").unwrap()
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Signs an arbitrary header and payload with `key` bytes, as a forger with the key would.
    fn sign_raw(secret: &[u8], header: &str, payload: &str) -> String {
        let message = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        let sig = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &EncodingKey::from_secret(secret),
            Algorithm::HS256,
        )
        .unwrap();
        format!("{message}.{sig}")
    }

    #[test]
    fn round_trip() {
        let k = key(1);
        let scopes = Scopes::all();
        let token = k.issue(&alice(), scopes, at(T0), HOUR);
        let claims = k.verify(&token, at(T0)).unwrap();
        assert_eq!(
            claims,
            Claims {
                user: alice(),
                scopes,
                issued_at: at(T0),
                expires_at: at(T0 + 3600),
            }
        );
        assert_eq!(claims.require(Scope::Voip), Ok(()));
        assert_eq!(claims.require(Scope::Pstn), Ok(()));
    }

    #[test]
    fn claims_use_documented_names() {
        let token = key(1).issue(&alice(), Scopes::all(), at(T0), HOUR);
        let payload = token.split('.').nth(1).unwrap();
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "v": 1, "sub": "8:alice", "scp": ["voip", "pstn"], "iat": T0, "exp": T0 + 3600
            })
        );
    }

    #[test]
    fn expired() {
        let k = key(1);
        let token = k.issue(&alice(), Scopes::all(), at(T0), HOUR);
        assert!(k.verify(&token, at(T0 + 3599)).is_ok());
        assert_eq!(
            k.verify(&token, at(T0 + 3600)),
            Err(TokenError::Expired {
                expired_at: at(T0 + 3600)
            })
        );
        assert!(matches!(
            k.verify(&token, at(T0 + 100_000)),
            Err(TokenError::Expired { .. })
        ));
    }

    #[test]
    fn not_yet_valid() {
        let k = key(1);
        let token = k.issue(&alice(), Scopes::all(), at(T0), HOUR);
        assert_eq!(k.verify(&token, at(T0 - 1)), Err(TokenError::NotYetValid));
        let nbf = sign_raw(
            &[1; 32],
            r#"{"alg":"HS256","typ":"JWT"}"#,
            &format!(
                r#"{{"v":1,"sub":"8:alice","scp":[],"iat":{T0},"exp":{},"nbf":{}}}"#,
                T0 + 3600,
                T0 + 10
            ),
        );
        assert_eq!(k.verify(&nbf, at(T0 + 9)), Err(TokenError::NotYetValid));
        assert!(k.verify(&nbf, at(T0 + 10)).is_ok());
    }

    #[test]
    fn bad_signature() {
        let token = key(1).issue(&alice(), Scopes::all(), at(T0), HOUR);
        assert_eq!(key(2).verify(&token, at(T0)), Err(TokenError::BadSignature));
    }

    #[test]
    fn tampered_payload() {
        let k = key(1);
        let token = k.issue(&alice(), Scopes::from(Scope::Voip), at(T0), HOUR);
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = b64(format!(
            r#"{{"v":1,"sub":"8:mallory","scp":["voip","pstn"],"iat":{T0},"exp":{}}}"#,
            T0 + 3600
        )
        .as_bytes());
        parts[1] = &forged;
        assert_eq!(
            k.verify(&parts.join("."), at(T0)),
            Err(TokenError::BadSignature)
        );
        // A flipped signature character is caught too.
        let mut chars: Vec<char> = token.chars().collect();
        let last = chars.len() - 2;
        chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
        let flipped: String = chars.into_iter().collect();
        assert!(k.verify(&flipped, at(T0)).is_err());
    }

    #[test]
    fn missing_scope() {
        let k = key(1);
        let token = k.issue(&alice(), Scopes::from(Scope::Voip), at(T0), HOUR);
        let claims = k.verify(&token, at(T0)).unwrap();
        assert_eq!(claims.require(Scope::Voip), Ok(()));
        assert_eq!(
            claims.require(Scope::Pstn),
            Err(TokenError::MissingScope(Scope::Pstn))
        );
        let none = k.issue(&alice(), Scopes::empty(), at(T0), HOUR);
        let claims = k.verify(&none, at(T0)).unwrap();
        assert_eq!(
            claims.require(Scope::Voip),
            Err(TokenError::MissingScope(Scope::Voip))
        );
    }

    #[test]
    fn unknown_scopes_grant_nothing() {
        let token = sign_raw(
            &[1; 32],
            r#"{"alg":"HS256"}"#,
            &format!(
                r#"{{"v":1,"sub":"8:alice","scp":["voip","admin"],"iat":{T0},"exp":{}}}"#,
                T0 + 60
            ),
        );
        let claims = key(1).verify(&token, at(T0)).unwrap();
        assert_eq!(claims.scopes, Scopes::from(Scope::Voip));
    }

    #[test]
    fn alg_none_and_others_refused() {
        let k = key(1);
        let payload = format!(
            r#"{{"v":1,"sub":"8:alice","scp":["voip","pstn"],"iat":{T0},"exp":{}}}"#,
            T0 + 3600
        );
        for alg in [
            "none", "None", "HS384", "HS512", "RS256", "ES256", "EdDSA", "",
        ] {
            let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
            let unsigned = format!("{}.{}.", b64(header.as_bytes()), b64(payload.as_bytes()));
            assert_eq!(
                k.verify(&unsigned, at(T0)),
                Err(TokenError::WrongAlgorithm),
                "{alg}"
            );
            // Even correctly HMAC-signed under that header name.
            let signed = sign_raw(&[1; 32], &header, &payload);
            assert_eq!(
                k.verify(&signed, at(T0)),
                Err(TokenError::WrongAlgorithm),
                "{alg}"
            );
        }
    }

    #[test]
    fn garbage_is_malformed() {
        let k = key(1);
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        let cases = [
            "",
            ".",
            "..",
            "...",
            "a.b.c",
            "a.b",
            "not a token",
            "eyJhbGciOiJIUzI1NiJ9",
            "eyJhbGciOiJIUzI1NiJ9..",
            "eyJhbGciOiJIUzI1NiJ9.e30.",
            "eyJhbGciOiJIUzI1NiJ9.!!!.abc",
            "\u{0}\u{ffff}.é.ü",
            long.as_str(),
        ];
        for case in cases {
            let err = k.verify(case, at(T0)).unwrap_err();
            assert!(
                matches!(err, TokenError::Malformed | TokenError::BadSignature),
                "{case:?}: {err:?}"
            );
        }
        assert_eq!(k.verify("a.b.c", at(T0)), Err(TokenError::Malformed));
    }

    #[test]
    fn bad_claims_are_malformed_even_when_signed() {
        let k = key(1);
        let exp = T0 + 60;
        let payloads = [
            format!(r#"{{"sub":"8:alice","scp":[],"iat":{T0},"exp":{exp}}}"#),
            format!(r#"{{"v":2,"sub":"8:alice","scp":[],"iat":{T0},"exp":{exp}}}"#),
            format!(r#"{{"v":1,"sub":"alice","scp":[],"iat":{T0},"exp":{exp}}}"#),
            format!(r#"{{"v":1,"sub":"8:echo123","scp":[],"iat":{T0},"exp":{exp}}}"#),
            format!(r#"{{"v":1,"sub":"4:+15551230000","scp":[],"iat":{T0},"exp":{exp}}}"#),
            format!(r#"{{"v":1,"sub":"8:alice","scp":"voip","iat":{T0},"exp":{exp}}}"#),
            format!(r#"{{"v":1,"sub":"8:alice","scp":[],"iat":{T0}}}"#),
            format!(r#"{{"v":1,"sub":"8:alice","scp":[],"iat":-1,"exp":{exp}}}"#),
            format!(r#"{{"v":1,"sub":"8:alice","scp":[],"iat":{T0},"exp":"{exp}"}}"#),
            format!(
                r#"{{"v":1,"sub":"8:alice","scp":[],"iat":{T0},"exp":{}}}"#,
                u64::MAX
            ),
            "[]".to_owned(),
            "null".to_owned(),
        ];
        for payload in payloads {
            let token = sign_raw(&[1; 32], r#"{"alg":"HS256"}"#, &payload);
            assert_eq!(
                k.verify(&token, at(T0)),
                Err(TokenError::Malformed),
                "{payload}"
            );
        }
    }

    #[test]
    fn weak_keys_refused() {
        assert_eq!(TokenKey::new(&[]).unwrap_err(), TokenError::WeakKey);
        assert_eq!(TokenKey::new(&[0; 31]).unwrap_err(), TokenError::WeakKey);
        assert!(TokenKey::new(&[0; 32]).is_ok());
        assert_eq!(format!("{:?}", key(9)), "TokenKey(..)");
    }

    #[test]
    fn extreme_times_do_not_panic() {
        let k = key(1);
        let before_epoch = UNIX_EPOCH - Duration::from_secs(10);
        let token = k.issue(&alice(), Scopes::all(), before_epoch, Duration::MAX);
        let _ = k.verify(&token, before_epoch);
        let _ = k.verify(&token, at(T0));
        let token = k.issue(&alice(), Scopes::all(), at(T0), Duration::ZERO);
        assert!(matches!(
            k.verify(&token, at(T0)),
            Err(TokenError::Expired { .. })
        ));
    }

    #[test]
    fn scopes_parse_and_display() {
        assert_eq!("voip,pstn".parse::<Scopes>().unwrap(), Scopes::all());
        assert_eq!(" pstn , voip ".parse::<Scopes>().unwrap(), Scopes::all());
        assert_eq!("".parse::<Scopes>().unwrap(), Scopes::empty());
        assert_eq!("pstn".parse::<Scopes>().unwrap(), Scopes::from(Scope::Pstn));
        assert!("voip,admin".parse::<Scopes>().is_err());
        assert!("voip,".parse::<Scopes>().is_err());
        assert_eq!(Scopes::all().to_string(), "voip,pstn");
        assert_eq!(Scopes::from(Scope::Pstn).to_string(), "pstn");
        assert_eq!(Scopes::empty().to_string(), "");
        assert!(Scopes::empty().is_empty());
        assert_eq!(serde_json::to_string(&Scope::Pstn).unwrap(), "\"pstn\"");
    }
}
