//! The `[pstn]` configuration: trunks, number dispatch, limits (LiveKit SIP's model:
//! inbound trunks with allowed sources, outbound trunks with owned caller ids,
//! dispatch rules from numbers to users or group calls).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ringwire_signaling::PhoneNumber;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// SIP transport towards a trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SipTransport {
    /// UDP (RFC 3261 §18.1.1).
    #[default]
    Udp,
    /// TCP (RFC 3261 §18): the Request-URI carries `;transport=tcp`.
    Tcp,
    /// TLS over TCP (RFC 3261 §26.2): a `sips:` Request-URI; the trunk's certificate
    /// is checked against [`OutboundTrunk::tls`] (or the system's trust store).
    Tls,
}

impl SipTransport {
    /// Its name in configuration and in a URI's `transport` parameter.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            SipTransport::Udp => "udp",
            SipTransport::Tcp => "tcp",
            SipTransport::Tls => "tls",
        }
    }
}

/// How the gateway checks an outbound TLS trunk's certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkTls {
    /// PEM file with the CA certificate(s) the trunk's certificate must chain to.
    /// Without it, the system's trust store.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// The DNS name the trunk's certificate must carry. The trunk's `address` is an
    /// IP address: without a name, the certificate must name that address.
    #[serde(default)]
    pub server_name: Option<String>,
}

/// `[pstn.tls]`: the gateway's certificate, for a TLS listener (trunks that call in,
/// or send in-dialog requests, over TLS) and as client certificate towards TLS trunks
/// that ask for one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipTls {
    /// Where the TLS listener binds; a fixed port, since it goes into our Contact.
    pub listen: SocketAddr,
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// Why the transport settings of `[pstn]` are not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportConfigError {
    /// `tls` settings on a trunk that does not use TLS.
    #[error(
        "outbound trunk `{trunk}` has `tls` settings but transport = \"{transport}\"; they apply only to transport = \"tls\""
    )]
    TlsSettingsWithoutTls {
        /// The trunk.
        trunk: String,
        /// Its transport.
        transport: &'static str,
    },
    /// `tls.server_name` is not a DNS name.
    #[error("outbound trunk `{trunk}`: tls.server_name `{name}` is not a DNS name")]
    BadServerName {
        /// The trunk.
        trunk: String,
        /// The name.
        name: String,
    },
    /// Two trunks on one address with different transports: dialing picks the
    /// transport by address.
    #[error(
        "outbound trunks `{first}` and `{second}` are both at {address} with different transports"
    )]
    AddressTransportClash {
        /// The address.
        address: SocketAddr,
        /// The first trunk.
        first: String,
        /// The second trunk.
        second: String,
    },
    /// Two TLS trunks on one IP address that trust differently: certificates are
    /// checked per IP address.
    #[error(
        "outbound TLS trunks `{first}` and `{second}` share the IP address {ip} but not their `tls` settings"
    )]
    ConflictingTls {
        /// The address.
        ip: IpAddr,
        /// The first trunk.
        first: String,
        /// The second trunk.
        second: String,
    },
    /// `[pstn.tls] listen` without a port.
    #[error("[pstn.tls] listen {0} needs a fixed port (it is advertised in our Contact)")]
    TlsListenPortZero(SocketAddr),
    /// `[pstn.tls] listen` is the TCP port `sip_listen` takes.
    #[error("[pstn.tls] listen {0} is sip_listen's TCP port")]
    TlsListenClash(SocketAddr),
    /// A certificate, key or CA file that cannot be read or holds nothing usable.
    #[error("{what} `{path}`: {message}")]
    TlsFile {
        /// What the file is for.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A TLS trunk without any certificate to trust.
    #[error("outbound trunk `{trunk}` has no trust anchors: {message}")]
    NoTrustAnchors {
        /// The trunk.
        trunk: String,
        /// Why.
        message: String,
    },
    /// rustls refused the settings (for example, a key that does not match).
    #[error("TLS settings refused: {0}")]
    Rustls(String),
}

/// Digest credentials (RFC 8760). Never logged: `Debug` hides the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// A trunk the server dials out through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundTrunk {
    /// Name for logs.
    pub name: String,
    /// Where the trunk listens (`host:port`, an IP address on this version).
    pub address: SocketAddr,
    /// Transport (`udp`, `tcp` or `tls`).
    #[serde(default)]
    pub transport: SipTransport,
    /// How to check the trunk's certificate (`transport = "tls"` only).
    #[serde(default)]
    pub tls: Option<TrunkTls>,
    /// Digest credentials, answered when the trunk challenges.
    #[serde(default)]
    pub credentials: Option<Credentials>,
    /// E.164 numbers the server owns on this trunk; only these are sent as caller id.
    #[serde(default)]
    pub caller_ids: Vec<String>,
    /// Country calling codes (`"1"`, `"44"`) callers may dial; empty allows none.
    pub allowed_country_codes: Vec<String>,
}

/// A trunk the server accepts calls from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundTrunk {
    /// Name for logs.
    pub name: String,
    /// E.164 numbers this trunk delivers to us.
    pub numbers: Vec<String>,
    /// Source addresses (`192.0.2.0/24`, `2001:db8::1`) allowed to send; anything
    /// else is dropped without an answer.
    pub allowed_sources: Vec<String>,
    /// When set, INVITEs must also carry these digest credentials: the first INVITE
    /// gets a 401 challenge (expiring nonce, `qop="auth"`), wrong credentials and
    /// unknown users the same 403. Only HA1 is kept once the gateway runs.
    #[serde(default)]
    pub credentials: Option<Credentials>,
    /// The digest algorithms offered, most preferred first, one challenge each
    /// (default SHA-256, then MD5, RFC 8760). Clients that answer only the first
    /// challenge and know only MD5 (sipp 3.6, older gear) need `["MD5"]`.
    #[serde(default = "crate::digest::default_algorithms")]
    pub digest_algorithms: Vec<crate::digest::DigestAlgorithm>,
    /// Most calls from this trunk at once; more get 503 (no Retry-After).
    #[serde(default = "default_inbound_max_calls")]
    pub max_calls: usize,
    /// Most calls this trunk may start in any minute; more get 503 with Retry-After.
    #[serde(default = "default_inbound_calls_per_minute")]
    pub calls_per_minute: usize,
    /// Most calls one calling number may start through this trunk in any minute;
    /// more get 486 with Retry-After.
    #[serde(default = "default_inbound_calls_per_minute_per_caller")]
    pub calls_per_minute_per_caller: usize,
    /// With credentials: wrong digest answers (403) one source address may give, each
    /// within `auth_lockout` of the last, before it is locked out.
    #[serde(default = "default_max_auth_failures")]
    pub max_auth_failures: usize,
    /// How long a locked-out source's INVITEs get 403 without their credentials being
    /// checked, so guessing learns nothing (`"5m"`).
    #[serde(with = "humantime_serde", default = "default_auth_lockout")]
    pub auth_lockout: Duration,
}

fn default_inbound_max_calls() -> usize {
    30
}
fn default_inbound_calls_per_minute() -> usize {
    120
}
fn default_inbound_calls_per_minute_per_caller() -> usize {
    5
}
fn default_max_auth_failures() -> usize {
    5
}
fn default_auth_lockout() -> Duration {
    Duration::from_secs(300)
}

impl InboundTrunk {
    /// A trunk from `allowed_sources` delivering `numbers`, without credentials and
    /// with the default caps.
    #[must_use]
    pub fn new(name: &str, numbers: Vec<String>, allowed_sources: Vec<String>) -> InboundTrunk {
        InboundTrunk {
            name: name.to_owned(),
            numbers,
            allowed_sources,
            credentials: None,
            digest_algorithms: crate::digest::default_algorithms(),
            max_calls: default_inbound_max_calls(),
            calls_per_minute: default_inbound_calls_per_minute(),
            calls_per_minute_per_caller: default_inbound_calls_per_minute_per_caller(),
            max_auth_failures: default_max_auth_failures(),
            auth_lockout: default_auth_lockout(),
        }
    }
}

/// Where an inbound number's calls go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DispatchTarget {
    /// Ring this user (every device), like a 1:1 call.
    User(String),
    /// Join this group call.
    Group(String),
}

/// One dispatch rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DispatchRule {
    /// The called number (E.164).
    pub number: String,
    /// Where its calls go.
    pub target: DispatchTarget,
}

/// An inclusive UDP port range for RTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port.
    pub last: u16,
}

/// The `[pstn]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PstnConfig {
    /// Where the gateway's SIP endpoint listens (UDP, and TCP when a trunk uses it).
    pub sip_listen: SocketAddr,
    /// The gateway's certificate: a TLS listener, and the client certificate
    /// towards TLS trunks. Outbound TLS works without it.
    #[serde(default)]
    pub tls: Option<SipTls>,
    /// The address put in SDP `c=` and SIP Contact (defaults to `sip_listen`'s IP).
    #[serde(default)]
    pub advertised_ip: Option<IpAddr>,
    /// RTP ports for phone legs.
    pub rtp_ports: PortRange,
    /// Outbound trunks (the first whose country codes allow a number is used).
    #[serde(default)]
    pub outbound: Vec<OutboundTrunk>,
    /// Inbound trunks.
    #[serde(default)]
    pub inbound: Vec<InboundTrunk>,
    /// Inbound dispatch.
    #[serde(default)]
    pub dispatch: Vec<DispatchRule>,
    /// How long an outbound call may ring before it counts as not answered (408).
    #[serde(with = "humantime_serde", default = "default_ring_timeout")]
    pub ring_timeout: Duration,
    /// The longest a phone leg may last.
    #[serde(with = "humantime_serde", default = "default_max_call_duration")]
    pub max_call_duration: Duration,
    /// A leg that receives no RTP this long is hung up (410 media failure).
    #[serde(with = "humantime_serde", default = "default_media_timeout")]
    pub media_timeout: Duration,
    /// Most phone calls one identity may have at once.
    #[serde(default = "default_max_calls_per_identity")]
    pub max_calls_per_identity: usize,
    /// Most phone calls one identity may start in any minute.
    #[serde(default = "default_calls_per_minute_per_identity")]
    pub calls_per_minute_per_identity: usize,
}

fn default_ring_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_max_call_duration() -> Duration {
    Duration::from_secs(4 * 3600)
}
fn default_media_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_max_calls_per_identity() -> usize {
    4
}
fn default_calls_per_minute_per_identity() -> usize {
    10
}

/// An allowed source: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d`, `a.b.c.d/n`, an IPv6 address or `v6/n`.
    ///
    /// # Errors
    /// [`Error::Config`] when it is neither.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let bad = || Error::Config(format!("`{s}` is not an address or CIDR block"));
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { addr, prefix })
    }

    /// Whether `ip` is inside the block (IPv4-mapped IPv6 counts as IPv4).
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Why a dial-out is refused before any SIP is sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DialRefusal {
    /// No outbound trunk is configured.
    #[error("no SIP trunk is configured")]
    NoTrunk,
    /// No trunk allows the number's country code.
    #[error("calls to this country are not allowed")]
    CountryNotAllowed,
    /// The requested caller id is not a number the server owns on the trunk.
    #[error("the caller id is not a number this server owns")]
    CallerIdNotOwned,
}

impl PstnConfig {
    /// Checks every entry; the message names the first bad one.
    ///
    /// # Errors
    /// [`Error::Config`] for numbers that are not E.164, bad CIDR blocks or country
    /// codes, dispatch rules for numbers no inbound trunk owns, duplicate numbers,
    /// an empty or odd RTP range, zero timeouts or caps.
    pub fn validate(&self) -> Result<(), Error> {
        let e164 = |what: &str, n: &str| {
            PhoneNumber::new(n)
                .map(|_| ())
                .map_err(|_| Error::Config(format!("{what} `{n}` is not an E.164 number")))
        };
        for t in &self.outbound {
            for n in &t.caller_ids {
                e164(&format!("outbound trunk `{}` caller id", t.name), n)?;
            }
            for cc in &t.allowed_country_codes {
                let ok = (1..=3).contains(&cc.len())
                    && cc.bytes().all(|b| b.is_ascii_digit())
                    && !cc.starts_with('0');
                if !ok {
                    return Err(Error::Config(format!(
                        "outbound trunk `{}`: `{cc}` is not a country calling code",
                        t.name
                    )));
                }
            }
        }
        self.validate_transports()
            .map_err(|e| Error::Config(e.to_string()))?;
        let mut owned = std::collections::BTreeSet::new();
        for t in &self.inbound {
            if t.allowed_sources.is_empty() {
                return Err(Error::Config(format!(
                    "inbound trunk `{}` allows no source address",
                    t.name
                )));
            }
            for s in &t.allowed_sources {
                Cidr::parse(s)?;
            }
            for (what, n) in [
                ("max_calls", t.max_calls),
                ("calls_per_minute", t.calls_per_minute),
                ("calls_per_minute_per_caller", t.calls_per_minute_per_caller),
                ("max_auth_failures", t.max_auth_failures),
            ] {
                if n == 0 {
                    return Err(Error::Config(format!(
                        "inbound trunk `{}`: {what} must be more than zero",
                        t.name
                    )));
                }
            }
            if t.auth_lockout.is_zero() {
                return Err(Error::Config(format!(
                    "inbound trunk `{}`: auth_lockout must be more than zero",
                    t.name
                )));
            }
            if t.credentials.is_some() && t.digest_algorithms.is_empty() {
                return Err(Error::Config(format!(
                    "inbound trunk `{}` has credentials but no digest_algorithms",
                    t.name
                )));
            }
            for n in &t.numbers {
                e164(&format!("inbound trunk `{}` number", t.name), n)?;
                if !owned.insert(n.as_str()) {
                    return Err(Error::Config(format!(
                        "number `{n}` is on two inbound trunks"
                    )));
                }
            }
        }
        let mut dispatched = std::collections::BTreeSet::new();
        for r in &self.dispatch {
            if !owned.contains(r.number.as_str()) {
                return Err(Error::Config(format!(
                    "dispatch rule for `{}`: no inbound trunk has that number",
                    r.number
                )));
            }
            if !dispatched.insert(r.number.as_str()) {
                return Err(Error::Config(format!(
                    "number `{}` is dispatched twice",
                    r.number
                )));
            }
        }
        let PortRange { first, last } = self.rtp_ports;
        if first == 0 || last < first || (last - first) < 1 {
            return Err(Error::Config(format!(
                "rtp_ports {first}..={last} must hold at least two ports"
            )));
        }
        for (what, n) in [
            ("max_calls_per_identity", self.max_calls_per_identity),
            (
                "calls_per_minute_per_identity",
                self.calls_per_minute_per_identity,
            ),
        ] {
            if n == 0 {
                return Err(Error::Config(format!("{what} must be more than zero")));
            }
        }
        for (what, d) in [
            ("ring_timeout", self.ring_timeout),
            ("max_call_duration", self.max_call_duration),
            ("media_timeout", self.media_timeout),
        ] {
            if d.is_zero() {
                return Err(Error::Config(format!("{what} must be more than zero")));
            }
        }
        Ok(())
    }

    /// Checks the transport settings: `tls` only on TLS trunks, server names,
    /// one transport per trunk address, one set of `tls` settings per TLS trunk IP
    /// address, and `[pstn.tls] listen` (a fixed port, not sip_listen's). Files are
    /// read when the gateway starts.
    ///
    /// # Errors
    /// The first [`TransportConfigError`] found.
    pub fn validate_transports(&self) -> Result<(), TransportConfigError> {
        for (i, t) in self.outbound.iter().enumerate() {
            if let Some(tls) = &t.tls {
                if t.transport != SipTransport::Tls {
                    return Err(TransportConfigError::TlsSettingsWithoutTls {
                        trunk: t.name.clone(),
                        transport: t.transport.name(),
                    });
                }
                if let Some(name) = &tls.server_name {
                    let dns = matches!(
                        rustls::pki_types::ServerName::try_from(name.as_str()),
                        Ok(rustls::pki_types::ServerName::DnsName(_))
                    );
                    if !dns {
                        return Err(TransportConfigError::BadServerName {
                            trunk: t.name.clone(),
                            name: name.clone(),
                        });
                    }
                }
            }
            for earlier in &self.outbound[..i] {
                if earlier.address == t.address && earlier.transport != t.transport {
                    return Err(TransportConfigError::AddressTransportClash {
                        address: t.address,
                        first: earlier.name.clone(),
                        second: t.name.clone(),
                    });
                }
                let both_tls =
                    earlier.transport == SipTransport::Tls && t.transport == SipTransport::Tls;
                if both_tls && earlier.address.ip() == t.address.ip() && earlier.tls != t.tls {
                    return Err(TransportConfigError::ConflictingTls {
                        ip: t.address.ip(),
                        first: earlier.name.clone(),
                        second: t.name.clone(),
                    });
                }
            }
        }
        if let Some(tls) = &self.tls {
            if tls.listen.port() == 0 {
                return Err(TransportConfigError::TlsListenPortZero(tls.listen));
            }
            let tcp = self
                .outbound
                .iter()
                .any(|t| t.transport == SipTransport::Tcp);
            let same_ip = tls.listen.ip() == self.sip_listen.ip()
                || tls.listen.ip().is_unspecified()
                || self.sip_listen.ip().is_unspecified();
            if tcp && same_ip && tls.listen.port() == self.sip_listen.port() {
                return Err(TransportConfigError::TlsListenClash(tls.listen));
            }
        }
        Ok(())
    }

    /// The trunk to dial `number` through, and the caller id to present, or why not.
    /// International destinations are off unless a trunk lists their country code.
    ///
    /// # Errors
    /// [`DialRefusal`] saying which rule refused it.
    pub fn route(
        &self,
        number: &PhoneNumber,
        caller_id: Option<&PhoneNumber>,
    ) -> Result<(&OutboundTrunk, Option<String>), DialRefusal> {
        if self.outbound.is_empty() {
            return Err(DialRefusal::NoTrunk);
        }
        let digits = number.as_str().trim_start_matches('+');
        let trunk = self
            .outbound
            .iter()
            .find(|t| {
                t.allowed_country_codes
                    .iter()
                    .any(|cc| digits.starts_with(cc.as_str()))
            })
            .ok_or(DialRefusal::CountryNotAllowed)?;
        let caller = match caller_id {
            Some(id) => {
                if !trunk.caller_ids.iter().any(|c| c == id.as_str()) {
                    return Err(DialRefusal::CallerIdNotOwned);
                }
                Some(id.as_str().to_owned())
            }
            None => trunk.caller_ids.first().cloned(),
        };
        Ok((trunk, caller))
    }

    /// The inbound trunk `source` may send for, if any (unknown sources get no answer).
    #[must_use]
    pub fn inbound_trunk_for(&self, source: IpAddr) -> Option<&InboundTrunk> {
        self.inbound.iter().find(|t| {
            t.allowed_sources
                .iter()
                .filter_map(|s| Cidr::parse(s).ok())
                .any(|c| c.contains(source))
        })
    }

    /// Where calls to `number` go, if it is dispatched.
    #[must_use]
    pub fn dispatch_for(&self, number: &str) -> Option<&DispatchTarget> {
        self.dispatch
            .iter()
            .find(|r| r.number == number)
            .map(|r| &r.target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PstnConfig {
        PstnConfig {
            sip_listen: "127.0.0.1:5060".parse().unwrap(),
            tls: None,
            advertised_ip: None,
            rtp_ports: PortRange {
                first: 20000,
                last: 20099,
            },
            outbound: vec![OutboundTrunk {
                name: "carrier".into(),
                address: "127.0.0.1:5070".parse().unwrap(),
                transport: SipTransport::Udp,
                tls: None,
                credentials: Some(Credentials {
                    username: "u".into(),
                    password: "secret-pw".into(),
                }),
                caller_ids: vec!["+15550001111".into()],
                allowed_country_codes: vec!["1".into()],
            }],
            inbound: vec![InboundTrunk::new(
                "carrier-in",
                vec!["+15550001111".into()],
                vec!["127.0.0.0/8".into()],
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
        }
    }

    #[test]
    fn sample_is_valid_and_hides_the_password() {
        let c = sample();
        c.validate().unwrap();
        assert!(!format!("{c:?}").contains("secret-pw"));
    }

    #[test]
    fn bad_entries_are_named() {
        let mut c = sample();
        c.outbound[0].caller_ids = vec!["5550001111".into()];
        assert!(c.validate().unwrap_err().to_string().contains("5550001111"));

        let mut c = sample();
        c.outbound[0].allowed_country_codes = vec!["01".into()];
        assert!(c.validate().is_err());

        let mut c = sample();
        c.inbound[0].allowed_sources = vec!["10.0.0.0/33".into()];
        assert!(c.validate().is_err());

        let mut c = sample();
        c.inbound[0].allowed_sources.clear();
        assert!(c.validate().is_err());

        let mut c = sample();
        c.dispatch[0].number = "+15559999999".into();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("no inbound trunk")
        );

        let mut c = sample();
        c.dispatch.push(c.dispatch[0].clone());
        assert!(c.validate().is_err());

        let mut c = sample();
        c.rtp_ports = PortRange {
            first: 30000,
            last: 30000,
        };
        assert!(c.validate().is_err());

        let mut c = sample();
        c.ring_timeout = Duration::ZERO;
        assert!(c.validate().is_err());

        let mut c = sample();
        c.max_calls_per_identity = 0;
        assert!(c.validate().is_err());
    }

    #[test]
    fn routing_follows_country_codes_and_owned_caller_ids() {
        let c = sample();
        let us = PhoneNumber::new("+15551230000").unwrap();
        let uk = PhoneNumber::new("+442071234567").unwrap();
        let (trunk, caller) = c.route(&us, None).unwrap();
        assert_eq!(trunk.name, "carrier");
        assert_eq!(caller.as_deref(), Some("+15550001111"));
        assert_eq!(
            c.route(&uk, None).unwrap_err(),
            DialRefusal::CountryNotAllowed
        );
        let stranger = PhoneNumber::new("+15557778888").unwrap();
        assert_eq!(
            c.route(&us, Some(&stranger)).unwrap_err(),
            DialRefusal::CallerIdNotOwned
        );
        let mut none = sample();
        none.outbound.clear();
        assert_eq!(none.route(&us, None).unwrap_err(), DialRefusal::NoTrunk);
    }

    fn tls_trunk(name: &str, address: &str) -> OutboundTrunk {
        OutboundTrunk {
            name: name.into(),
            address: address.parse().unwrap(),
            transport: SipTransport::Tls,
            tls: Some(TrunkTls {
                ca: Some("/etc/ringwire/carrier-ca.pem".into()),
                server_name: Some("sip.carrier.example".into()),
            }),
            credentials: None,
            caller_ids: Vec::new(),
            allowed_country_codes: vec!["44".into()],
        }
    }

    #[test]
    fn transport_settings_are_checked() {
        let mut c = sample();
        c.outbound.push(tls_trunk("secure", "192.0.2.10:5061"));
        c.outbound.push(OutboundTrunk {
            transport: SipTransport::Tcp,
            ..tls_trunk("tcp", "192.0.2.11:5060")
        });
        c.outbound[2].tls = None;
        c.tls = Some(SipTls {
            listen: "127.0.0.1:5061".parse().unwrap(),
            cert: "/etc/ringwire/sip.pem".into(),
            key: "/etc/ringwire/sip.key".into(),
        });
        c.validate().unwrap();
        // No CA file: the system's trust store; no name: the IP address.
        c.outbound[1].tls = None;
        c.validate().unwrap();

        let mut bad = c.clone();
        bad.outbound[2].tls = Some(TrunkTls::default());
        assert_eq!(
            bad.validate_transports().unwrap_err(),
            TransportConfigError::TlsSettingsWithoutTls {
                trunk: "tcp".into(),
                transport: "tcp",
            }
        );
        assert!(bad.validate().unwrap_err().to_string().contains("`tcp`"));

        let mut bad = c.clone();
        bad.outbound[1].tls = Some(TrunkTls {
            ca: None,
            server_name: Some("192.0.2.10".into()),
        });
        assert!(matches!(
            bad.validate_transports(),
            Err(TransportConfigError::BadServerName { .. })
        ));

        let mut bad = c.clone();
        bad.outbound.push(OutboundTrunk {
            transport: SipTransport::Udp,
            tls: None,
            ..tls_trunk("same-address", "192.0.2.11:5060")
        });
        assert!(matches!(
            bad.validate_transports(),
            Err(TransportConfigError::AddressTransportClash { .. })
        ));

        let mut bad = c.clone();
        bad.outbound.push(tls_trunk("same-ip", "192.0.2.10:5071"));
        assert_eq!(
            bad.validate_transports().unwrap_err(),
            TransportConfigError::ConflictingTls {
                ip: "192.0.2.10".parse().unwrap(),
                first: "secure".into(),
                second: "same-ip".into(),
            }
        );
        // The same settings on the same IP address are fine.
        bad.outbound[3].tls = None;
        bad.validate_transports().unwrap();

        let mut bad = c.clone();
        if let Some(tls) = bad.tls.as_mut() {
            tls.listen = "127.0.0.1:0".parse().unwrap();
        }
        assert!(matches!(
            bad.validate_transports(),
            Err(TransportConfigError::TlsListenPortZero(_))
        ));

        let mut bad = c;
        if let Some(tls) = bad.tls.as_mut() {
            tls.listen = "0.0.0.0:5060".parse().unwrap();
        }
        assert!(matches!(
            bad.validate_transports(),
            Err(TransportConfigError::TlsListenClash(_))
        ));
    }

    #[test]
    fn sources_and_dispatch() {
        let c = sample();
        assert!(c.inbound_trunk_for("127.0.0.1".parse().unwrap()).is_some());
        assert!(
            c.inbound_trunk_for("::ffff:127.0.0.9".parse().unwrap())
                .is_some()
        );
        assert!(c.inbound_trunk_for("192.0.2.1".parse().unwrap()).is_none());
        assert_eq!(
            c.dispatch_for("+15550001111"),
            Some(&DispatchTarget::User("alice".into()))
        );
        assert_eq!(c.dispatch_for("+15550002222"), None);
        let any = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(any.contains("203.0.113.5".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
    }
}
