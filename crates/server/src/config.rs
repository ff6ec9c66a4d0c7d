//! The server's configuration: embedded defaults, a TOML file, `RINGWIRE_*` variables.
//!
//! [`ServerConfig::load`] layers three sources, each overriding the one before:
//! 1. the defaults below, which need no file and serve on loopback;
//! 2. a TOML file (`ringwire serve --config ringwire.toml`), when one is given;
//! 3. environment variables named `RINGWIRE_<FIELD>`, with `__` between nested names:
//!    `RINGWIRE_HTTP_ADDR=0.0.0.0:8080`, `RINGWIRE_LIMITS__BURST=200`,
//!    `RINGWIRE_TLS__CERT=/etc/ringwire/cert.pem`, `RINGWIRE_MEDIA__PUBLIC_ADDR=203.0.113.5`.
//!
//! Durations are humantime strings (`"30s"`, `"1m 30s"`, `"300ms"`).
//!
//! Layering uses `figment`: it merges serde sources with per-field provenance (an
//! error names the file or variable a bad value came from), and its TOML and
//! environment providers do the `__` nesting that we would otherwise hand-write.
//!
//! | field | default |
//! |---|---|
//! | `http_addr` | `127.0.0.1:8080` (HTTP, WebSocket `/v1/signaling`, REST API, metrics) |
//! | `quic_addr` | `127.0.0.1:8443` (QUIC signaling) |
//! | `data_dir` | `$XDG_DATA_HOME/ringwire`, else `$HOME/.local/share/ringwire`, else `./ringwire-data` |
//! | `resume_grace` | `30s` |
//! | `ring_timeout` | `30s` |
//! | `max_participants` | `350` |
//! | `limits.max_frame` | `262144` (the protocol's `MAX_MESSAGE_SIZE`) |
//! | `limits.messages_per_second` | `50` |
//! | `limits.burst` | `100` |
//! | `limits.max_connections_per_identity` | `10` |
//! | `limits.handshake_timeout` | `10s` |
//! | `tls` | none (plain HTTP/WS, development only); `{ cert = "cert.pem", key = "key.pem" }`: `http_addr` serves HTTPS and WSS with this certificate chain and key, and QUIC presents the certificate |
//! | `dev_mode` | true when `http_addr` is a loopback address |
//! | `media.bind` | `127.0.0.1:0` (the media UDP socket; port 0 picks a free port) |
//! | `media.public_addr` | none: the bound address; an IP (`203.0.113.5`, the bound port is kept) or `IP:port`, advertised as the ICE host candidate |
//! | `media.speakers` | `3` (most speakers mixed at once in a group call) |
//! | `media.opus_bitrate` | `32000` (bits per second of the mixed streams, 6000..=510000) |
//! | `web_dir` | the repository's `web/` folder: the demo page at `/` and the browser SDK at `/sdk/ringwire.js` (see the `web` module) |
//! | `pstn` | none: calls to phone numbers end with 480 "no SIP trunk is configured"; see below |
//!
//! `[pstn]` is [`ringwire_pstn::config::PstnConfig`]: where the SIP endpoint listens,
//! the RTP port range of phone legs, outbound trunks (address, transport `udp`, `tcp`
//! or `tls` with its trust settings, digest credentials, caller ids the server owns,
//! the country codes callers may dial: none by default), an optional `[pstn.tls]`
//! certificate and listener, inbound trunks (numbers, allowed source addresses,
//! optional digest, caps) with `[[pstn.dispatch]]` rules sending their numbers to a
//! user or a group call, the ring, call and media timeouts, and per-caller caps
//! (`max_calls_per_identity` = 4 at once, `calls_per_minute_per_identity` = 10).
//! Dialing out needs a token with the `pstn` scope. The README's "Phone calls through
//! a SIP trunk" shows every setting.
//!
//! ```toml
//! [pstn]
//! sip_listen = "192.0.2.10:5060"
//! rtp_ports = { first = 20000, last = 20999 }
//! ring_timeout = "45s"
//!
//! [[pstn.outbound]]
//! name = "carrier"
//! address = "198.51.100.20:5060"
//! caller_ids = ["+15550001111"]
//! allowed_country_codes = ["1"]
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ringwire_pstn::config::PstnConfig;
use ringwire_signaling::protocol::MAX_MESSAGE_SIZE;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Everything `ringwire serve` can be told. See the [module docs](self) for defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    /// Where HTTP (REST API, WebSocket signaling, health and metrics) listens; port 0
    /// picks a free port.
    pub http_addr: SocketAddr,
    /// Where QUIC signaling listens (UDP); port 0 picks a free port.
    pub quic_addr: SocketAddr,
    /// Where the access key (`access.key`) lives.
    pub data_dir: PathBuf,
    /// How long a session whose connection dropped stays in its calls.
    #[serde(with = "humantime_serde")]
    pub resume_grace: Duration,
    /// How long an invitation rings before it ends with 408.
    #[serde(with = "humantime_serde")]
    pub ring_timeout: Duration,
    /// Most participants in one call.
    pub max_participants: usize,
    /// Per-connection limits.
    pub limits: Limits,
    /// A certificate chain and key. With it, `http_addr` serves HTTPS and WSS only
    /// (TLS 1.2 or 1.3, terminated in-process by rustls) and QUIC presents the
    /// certificate. Without it, HTTP is plain (allowed only in development mode) and
    /// QUIC uses a self-signed development certificate made at start.
    pub tls: Option<TlsConfig>,
    /// Development mode: plain HTTP allowed, dev certificate. `None` means "when
    /// `http_addr` is loopback". Outside dev mode the server refuses to start without
    /// `tls`, because the REST API's bearer secret must not cross a network in clear.
    pub dev_mode: Option<bool>,
    /// The media plane: its UDP socket, the address it advertises, the mixer.
    pub media: MediaConfig,
    /// The PSTN gateway: SIP trunks for phone participants. Without it, calls to
    /// phone numbers fail with 480.
    pub pstn: Option<PstnConfig>,
    /// Where `/` (the demo page, `demo/`) and `/sdk/ringwire.js` (`dist/`) are read from;
    /// `None`: the repository's `web/` folder this binary was built from.
    pub web_dir: Option<PathBuf>,
}

/// The media plane's settings (`[media]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MediaConfig {
    /// Where the one media UDP socket (ICE, DTLS-SRTP, RTP for every call) binds;
    /// port 0 picks a free port.
    pub bind: SocketAddr,
    /// The address clients are told to send media to (the ICE host candidate), when it
    /// is not the bound one: a public address in front of a NAT or a wildcard bind.
    /// An IP alone keeps the bound port.
    pub public_addr: Option<PublicAddr>,
    /// Most speakers mixed at once in a group call (K).
    pub speakers: usize,
    /// Target bitrate of the mixed opus streams, bits per second.
    pub opus_bitrate: u32,
    /// Most camera videos a native client receives at once (it may ask for fewer).
    pub native_videos: usize,
    /// Most camera videos a browser receives at once (it may ask for fewer).
    pub web_videos: usize,
    /// Fit each viewer's videos (count, simulcast layer) to str0m's bandwidth estimate
    /// of its path. Off by default: see `ringwire_media::server::MediaServerConfig`.
    pub bandwidth_estimation: bool,
}

/// The address advertised for media: an IP (the bound port is kept) or an IP and port.
///
/// Written as a string, `"203.0.113.5"` or `"203.0.113.5:40000"` (`"[2001:db8::1]:40000"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicAddr {
    /// This IP, with the port the socket is bound to.
    Ip(IpAddr),
    /// This IP and port (a port forwarded to the bound one).
    Socket(SocketAddr),
}

/// What one connection may do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Largest message (WebSocket message or QUIC frame) accepted, in bytes.
    pub max_frame: usize,
    /// Messages per second a connection may send on average.
    pub messages_per_second: u32,
    /// Messages a connection may send in a burst.
    pub burst: u32,
    /// Most connections (sessions) one identity may have at once.
    pub max_connections_per_identity: usize,
    /// How long a new connection has to authenticate; with `tls`, also how long it
    /// has to finish its TLS handshake.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
}

/// A certificate chain and private key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsConfig {
    /// The certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file given does not exist.
    #[error("configuration file {} not found", path.display())]
    NotFound {
        /// The file.
        path: PathBuf,
    },
    /// A value in the file or the environment is not valid (the message names its source).
    #[error("invalid configuration: {0}")]
    Invalid(#[source] Box<figment::Error>),
    /// Outside dev mode, serving without TLS would send the access key in clear.
    #[error("http_addr {addr} is not loopback: configure `tls` or set `dev_mode = true`")]
    TlsRequired {
        /// The configured address.
        addr: SocketAddr,
    },
    /// A limit is zero where that would make the server unusable.
    #[error("limits.{0} must be greater than zero")]
    ZeroLimit(&'static str),
    /// The `[pstn]` section is not usable (the message names the entry).
    #[error(transparent)]
    Pstn(ringwire_pstn::Error),
    /// A `[media]` setting the media plane cannot run with.
    #[error("media.{field} {problem}")]
    Media {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            quic_addr: SocketAddr::from(([127, 0, 0, 1], 8443)),
            data_dir: default_data_dir(),
            resume_grace: Duration::from_secs(30),
            ring_timeout: Duration::from_secs(30),
            max_participants: 350,
            limits: Limits::default(),
            tls: None,
            dev_mode: None,
            media: MediaConfig::default(),
            pstn: None,
            web_dir: None,
        }
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_addr: None,
            speakers: 3,
            opus_bitrate: 32_000,
            native_videos: 6,
            web_videos: 1,
            bandwidth_estimation: false,
        }
    }
}

impl MediaConfig {
    /// The address advertised as the ICE host candidate, given the address the socket
    /// is bound to (whose port is the real one when 0 was asked for).
    pub fn candidate(&self, bound: SocketAddr) -> SocketAddr {
        match self.public_addr {
            None => bound,
            Some(PublicAddr::Ip(ip)) => SocketAddr::new(ip, bound.port()),
            Some(PublicAddr::Socket(addr)) => addr,
        }
    }

    /// Checks settings the media plane cannot run with.
    ///
    /// # Errors
    /// [`ConfigError::Media`] naming the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let problem = |field, problem| Err(ConfigError::Media { field, problem });
        match self.public_addr {
            // A client cannot send to 0.0.0.0 or [::]: a wildcard bind needs an address
            // to advertise.
            None if self.bind.ip().is_unspecified() => {
                return problem(
                    "public_addr",
                    "must be set when media.bind is a wildcard address",
                );
            }
            Some(PublicAddr::Ip(ip)) if ip.is_unspecified() => {
                return problem("public_addr", "must not be a wildcard address");
            }
            Some(PublicAddr::Socket(addr)) if addr.ip().is_unspecified() || addr.port() == 0 => {
                return problem("public_addr", "must be a concrete address and port");
            }
            _ => {}
        }
        if self.speakers == 0 {
            return problem("speakers", "must be greater than zero");
        }
        if !(6_000..=510_000).contains(&self.opus_bitrate) {
            return problem("opus_bitrate", "must be within 6000..=510000");
        }
        Ok(())
    }
}

impl fmt::Display for PublicAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublicAddr::Ip(ip) => ip.fmt(f),
            PublicAddr::Socket(addr) => addr.fmt(f),
        }
    }
}

impl FromStr for PublicAddr {
    type Err = std::net::AddrParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.parse::<SocketAddr>() {
            Ok(addr) => Ok(PublicAddr::Socket(addr)),
            Err(_) => s.parse().map(PublicAddr::Ip),
        }
    }
}

impl Serialize for PublicAddr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PublicAddr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(|_| {
            serde::de::Error::custom(format!(
                "{text:?} is neither an IP address nor an IP address and port"
            ))
        })
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame: MAX_MESSAGE_SIZE,
            messages_per_second: 50,
            burst: 100,
            max_connections_per_identity: 10,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

impl ServerConfig {
    /// Defaults, then the TOML file at `path` (when given), then `RINGWIRE_*` variables.
    ///
    /// # Errors
    /// [`ConfigError::NotFound`] when `path` does not exist, [`ConfigError::Invalid`]
    /// for a value of the wrong form, [`ConfigError::TlsRequired`],
    /// [`ConfigError::ZeroLimit`] and [`ConfigError::Media`] for settings the server
    /// cannot run with.
    pub fn load(path: Option<&Path>) -> Result<ServerConfig, ConfigError> {
        Self::load_from(path, Env::prefixed("RINGWIRE_").split("__"))
    }

    fn load_from(path: Option<&Path>, env: Env) -> Result<ServerConfig, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(ServerConfig::default()));
        if let Some(path) = path {
            // figment skips a missing file silently; a file the user named must exist.
            if !path.is_file() {
                return Err(ConfigError::NotFound {
                    path: path.to_owned(),
                });
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let config: ServerConfig = figment
            .merge(env)
            .extract()
            .map_err(|e| ConfigError::Invalid(Box::new(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks settings the server cannot run with.
    ///
    /// # Errors
    /// [`ConfigError::TlsRequired`], [`ConfigError::ZeroLimit`], [`ConfigError::Media`]
    /// or [`ConfigError::Pstn`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.is_dev_mode() && self.tls.is_none() {
            return Err(ConfigError::TlsRequired {
                addr: self.http_addr,
            });
        }
        let limits = &self.limits;
        for (name, value) in [
            ("max_frame", limits.max_frame),
            ("messages_per_second", limits.messages_per_second as usize),
            ("burst", limits.burst as usize),
            (
                "max_connections_per_identity",
                limits.max_connections_per_identity,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::ZeroLimit(name));
            }
        }
        self.media.validate()?;
        if let Some(pstn) = &self.pstn {
            pstn.validate().map_err(ConfigError::Pstn)?;
        }
        Ok(())
    }

    /// Whether development mode is on: as configured, else when `http_addr` is loopback.
    pub fn is_dev_mode(&self) -> bool {
        self.dev_mode.unwrap_or(self.http_addr.ip().is_loopback())
    }

    /// Where the access key is kept: `<data_dir>/access.key`.
    pub fn access_key_path(&self) -> PathBuf {
        self.data_dir.join(crate::keys::ACCESS_KEY_FILE)
    }
}

/// `$XDG_DATA_HOME/ringwire`, else `$HOME/.local/share/ringwire`, else `./ringwire-data`:
/// a per-user place, so that `ringwire token` finds the key `ringwire serve` wrote
/// whatever directory either runs in.
fn default_data_dir() -> PathBuf {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(xdg) = non_empty("XDG_DATA_HOME") {
        return PathBuf::from(xdg).join("ringwire");
    }
    if let Some(home) = non_empty("HOME") {
        return PathBuf::from(home).join(".local/share/ringwire");
    }
    PathBuf::from("ringwire-data")
}

#[cfg(test)]
// figment's Jail closures return its large error type; that is its API, not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use figment::Jail;

    use super::*;

    fn load(path: Option<&Path>) -> Result<ServerConfig, ConfigError> {
        ServerConfig::load_from(path, Env::prefixed("RINGWIRE_").split("__"))
    }

    #[test]
    fn defaults_need_no_file() {
        Jail::expect_with(|_| {
            let config = load(None).unwrap();
            assert_eq!(config.http_addr.to_string(), "127.0.0.1:8080");
            assert_eq!(config.quic_addr.to_string(), "127.0.0.1:8443");
            assert_eq!(config.resume_grace, Duration::from_secs(30));
            assert_eq!(config.limits.max_frame, MAX_MESSAGE_SIZE);
            assert!(config.is_dev_mode());
            assert_eq!(config.media, MediaConfig::default());
            assert_eq!(config.media.bind.to_string(), "127.0.0.1:0");
            assert_eq!(config.media.speakers, 3);
            Ok(())
        });
    }

    #[test]
    fn media_section_from_file_and_env() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "ringwire.toml",
                r#"
                [media]
                bind = "0.0.0.0:40000"
                public_addr = "203.0.113.5"
                speakers = 4
                web_videos = 2
                bandwidth_estimation = true
                "#,
            )?;
            jail.set_env("RINGWIRE_MEDIA__OPUS_BITRATE", "24000");
            let config = load(Some(Path::new("ringwire.toml"))).unwrap();
            let media = &config.media;
            assert_eq!(media.bind.to_string(), "0.0.0.0:40000");
            assert_eq!(
                media.public_addr,
                Some(PublicAddr::Ip([203, 0, 113, 5].into()))
            );
            assert_eq!(media.speakers, 4);
            assert_eq!(media.opus_bitrate, 24_000);
            assert_eq!((media.native_videos, media.web_videos), (6, 2));
            assert!(media.bandwidth_estimation);
            // An IP alone keeps the bound port.
            let bound = SocketAddr::from(([0, 0, 0, 0], 40000));
            assert_eq!(media.candidate(bound).to_string(), "203.0.113.5:40000");

            jail.set_env("RINGWIRE_MEDIA__BIND", "127.0.0.1:41000");
            jail.set_env("RINGWIRE_MEDIA__PUBLIC_ADDR", "[2001:db8::1]:5000");
            let config = load(Some(Path::new("ringwire.toml"))).unwrap();
            assert_eq!(config.media.bind.to_string(), "127.0.0.1:41000");
            let candidate = config.media.candidate(config.media.bind);
            assert_eq!(candidate.to_string(), "[2001:db8::1]:5000");
            Ok(())
        });
    }

    #[test]
    fn media_settings_are_checked() {
        Jail::expect_with(|jail| {
            jail.set_env("RINGWIRE_MEDIA__BIND", "0.0.0.0:0");
            assert!(matches!(
                load(None),
                Err(ConfigError::Media {
                    field: "public_addr",
                    ..
                })
            ));
            jail.set_env("RINGWIRE_MEDIA__PUBLIC_ADDR", "not-an-address");
            let err = load(None).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid(_)), "{err}");
            assert!(err.to_string().contains("not-an-address"), "{err}");
            jail.set_env("RINGWIRE_MEDIA__PUBLIC_ADDR", "198.51.100.7");
            assert!(load(None).is_ok());
            jail.set_env("RINGWIRE_MEDIA__SPEAKERS", "0");
            assert!(matches!(
                load(None),
                Err(ConfigError::Media {
                    field: "speakers",
                    ..
                })
            ));
            jail.set_env("RINGWIRE_MEDIA__SPEAKERS", "2");
            jail.set_env("RINGWIRE_MEDIA__OPUS_BITRATE", "1000");
            assert!(matches!(
                load(None),
                Err(ConfigError::Media {
                    field: "opus_bitrate",
                    ..
                })
            ));
            Ok(())
        });
    }

    #[test]
    fn file_then_env_override() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "ringwire.toml",
                r#"
                http_addr = "127.0.0.1:9000"
                resume_grace = "1m 5s"
                [limits]
                burst = 7
                handshake_timeout = "300ms"
                "#,
            )?;
            jail.set_env("RINGWIRE_HTTP_ADDR", "127.0.0.1:9100");
            jail.set_env("RINGWIRE_LIMITS__MESSAGES_PER_SECOND", "9");
            let config = load(Some(Path::new("ringwire.toml"))).unwrap();
            assert_eq!(config.http_addr.to_string(), "127.0.0.1:9100");
            assert_eq!(config.resume_grace, Duration::from_secs(65));
            assert_eq!(config.limits.burst, 7);
            assert_eq!(config.limits.messages_per_second, 9);
            assert_eq!(config.limits.handshake_timeout, Duration::from_millis(300));
            // Untouched fields keep their defaults.
            assert_eq!(config.limits.max_connections_per_identity, 10);
            Ok(())
        });
    }

    #[test]
    fn pstn_section_from_file() {
        Jail::expect_with(|jail| {
            assert_eq!(load(None).unwrap().pstn, None);
            jail.create_file(
                "ringwire.toml",
                r#"
                [pstn]
                sip_listen = "127.0.0.1:5060"
                rtp_ports = { first = 20000, last = 20999 }
                ring_timeout = "45s"

                [[pstn.outbound]]
                name = "carrier"
                address = "127.0.0.1:5070"
                caller_ids = ["+15550001111"]
                allowed_country_codes = ["1"]
                "#,
            )?;
            let config = load(Some(Path::new("ringwire.toml"))).unwrap();
            let pstn = config.pstn.unwrap();
            assert_eq!(pstn.sip_listen.to_string(), "127.0.0.1:5060");
            assert_eq!(pstn.ring_timeout, Duration::from_secs(45));
            assert_eq!(pstn.outbound[0].allowed_country_codes, vec!["1"]);
            // Checked like the rest: a caller id that is not E.164 is named.
            jail.create_file(
                "bad.toml",
                r#"
                [pstn]
                sip_listen = "127.0.0.1:5060"
                rtp_ports = { first = 20000, last = 20999 }
                [[pstn.outbound]]
                name = "carrier"
                address = "127.0.0.1:5070"
                caller_ids = ["5550001111"]
                allowed_country_codes = ["1"]
                "#,
            )?;
            let err = load(Some(Path::new("bad.toml"))).unwrap_err();
            assert!(matches!(err, ConfigError::Pstn(_)), "{err}");
            assert!(err.to_string().contains("5550001111"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn errors_are_typed() {
        Jail::expect_with(|jail| {
            assert!(matches!(
                load(Some(Path::new("missing.toml"))),
                Err(ConfigError::NotFound { .. })
            ));
            jail.create_file("bad.toml", "resume_grace = \"soon\"")?;
            let err = load(Some(Path::new("bad.toml"))).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid(_)), "{err}");
            jail.create_file("open.toml", "http_addr = \"0.0.0.0:8080\"")?;
            assert!(matches!(
                load(Some(Path::new("open.toml"))),
                Err(ConfigError::TlsRequired { .. })
            ));
            jail.set_env("RINGWIRE_LIMITS__BURST", "0");
            assert!(matches!(load(None), Err(ConfigError::ZeroLimit("burst"))));
            Ok(())
        });
    }
}
