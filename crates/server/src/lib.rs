//! The Ringwire service: identities and tokens, signaling endpoints (WebSocket and
//! QUIC), and later media rooms, the echo service and the PSTN gateway, in one process.
//!
//! ```no_run
//! use std::time::Duration;
//! use ringwire_server::{Server, ServerConfig};
//! use ringwire_signaling::{Scope, Scopes, UserId};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::start(ServerConfig::load(None)?).await?;
//! // `wss://` and `https://` instead when `config.tls` is set.
//! println!("signaling on ws://{}/v1/signaling", server.http_addr());
//! println!("quic on {} (certificate {})", server.quic_addr(), server.cert_fingerprint());
//! let alice = UserId::new("alice")?;
//! let token = server.issue_token(&alice, Scopes::from(Scope::Voip), Duration::from_secs(3600));
//! # let _ = token;
//! server.shut_down().await;
//! # Ok(()) }
//! ```
//!
//! # Shape
//! One task, the hub, owns the sans-IO [`CallController`] (STYLE.md §2). Connection
//! tasks (WebSocket in `ws`, QUIC in `quic`) only move bytes between their socket and
//! the hub, and police what the transport must: frame size, message rate. The HTTP
//! router serves the identity REST API, `/healthz`, `/readyz` and `/metrics`.
//!
//! # Media
//! One more task, the media worker, owns the media UDP socket (`[media] bind`) and the
//! sans-IO media engine ([`ringwire_media::server::MediaServer`]): one str0m `Rtc` per
//! participant, ICE on the configured host candidate, DTLS-SRTP always, group audio
//! mixed and 1:1 audio forwarded. The hub hands it the controller's media commands
//! and SDP offers, and it hands back SDP answers, media failures and dominant
//! speakers. [`RunningServer::media_addr`] says where it listens and
//! [`RunningServer::media_stats`] what it did.
//!
//! # PSTN
//! With `[pstn]` configured, the hub's gateway (the `gateway` module) turns the
//! controller's dials of `4:+E.164` numbers into outbound SIP legs through the
//! configured trunk ([`ringwire_pstn`]): one task per leg owns its RTP socket (in
//! `rtp_ports`) and the SIP dialog, reports ringing, early media, answer and end
//! (SIP final responses map one to one to end reasons), and once answered the phone
//! is a local participant of the call's media room, G.711 transcoded to and from
//! the room's 48 kHz opus. [`RunningServer::sip_addr`] says where SIP listens.
//!
//! # TLS
//! With `[tls]` configured, the HTTP listener terminates TLS itself (rustls through
//! tokio-rustls, in the `tls` module): REST API, metrics and WebSocket signaling are
//! HTTPS and WSS only, and QUIC presents the same certificate. Without it, HTTP
//! is plain, which [`ServerConfig::validate`] allows only in development mode
//! (loopback by default), and QUIC uses a self-signed certificate made at start.
//!
//! # Shutdown
//! [`RunningServer::shut_down`] stops accepting (over TLS too: the port closes and
//! handshakes in flight are dropped), has the hub end every call with
//! "server shutting down" and say goodbye to every connection, waits (at most 5 s) for
//! connection tasks to write that, and returns.
//!
//! Logs go through `tracing`; the binary sets the level from `RUST_LOG`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use ringwire_media::server::MediaServerStats;
use ringwire_signaling::controller::{CallController, ControllerConfig};
use ringwire_signaling::{Scopes, TokenKey, UserId};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub mod config;
mod error;
mod gateway;
mod http;
mod hub;
pub mod identity;
pub mod keys;
mod limits;
mod media;
mod metrics;
mod quic;
mod tls;
mod web;
mod ws;

pub use config::{ConfigError, Limits, MediaConfig, PublicAddr, ServerConfig, TlsConfig};
pub use error::Error;
pub use identity::new_user_id;
pub use keys::{AccessKey, KeyError};

use crate::hub::HubHandle;
use crate::identity::Identities;
use crate::keys::Certificate;
use crate::media::{MediaHandle, MediaSocket};
use crate::metrics::TransportMetrics;

/// How long shutdown waits for connection tasks to write their goodbyes.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Starts the service. See [`Server::start`].
#[derive(Debug)]
pub struct Server;

/// A started service; [`RunningServer::shut_down`] stops it.
#[derive(Debug)]
pub struct RunningServer {
    http_addr: SocketAddr,
    quic_addr: SocketAddr,
    media_addr: SocketAddr,
    media_candidate: SocketAddr,
    sip_addr: Option<SocketAddr>,
    media: MediaHandle,
    /// Phone legs' tasks, so shutdown can wait for their BYEs.
    legs: TaskTracker,
    certificate: Certificate,
    access_key_path: PathBuf,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    http_task: JoinHandle<()>,
    quic_task: JoinHandle<()>,
    hub_task: JoinHandle<()>,
    media_task: JoinHandle<()>,
}

/// What every request handler and connection task shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    pub(crate) hub: HubHandle,
    pub(crate) key: AccessKey,
    pub(crate) token_key: TokenKey,
    pub(crate) metrics: TransportMetrics,
    pub(crate) identities: Identities,
    /// Tracks WebSocket connection tasks, so shutdown can wait for their goodbyes.
    pub(crate) tracker: TaskTracker,
    shutting_down: AtomicBool,
}

impl Shared {
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }
}

impl Server {
    /// Reads or makes the access key, makes the development certificate (or reads the
    /// configured one), binds HTTP and QUIC and starts serving.
    ///
    /// # Errors
    /// [`Error::Config`] for an unusable configuration, [`Error::Key`] when the access
    /// key cannot be read or written, [`Error::Bind`] when a port (HTTP, QUIC or media)
    /// is taken,
    /// [`Error::TlsFile`]/[`Error::Tls`] for bad TLS files, [`Error::Quic`].
    pub async fn start(config: ServerConfig) -> Result<RunningServer, Error> {
        config.validate()?;
        let key = AccessKey::load_or_create(&config.data_dir)?;
        let access_key_path = config.access_key_path();
        let token_key = key.token_key();
        let (certificate, https) = match &config.tls {
            Some(tls) => {
                let loaded = tls::load(tls)?;
                (loaded.certificate, Some(loaded.server_config))
            }
            None => (Certificate::self_signed()?, None),
        };

        let now = tokio::time::Instant::now().into_std();
        let mut controller_config = ControllerConfig::new(
            token_key.clone(),
            keys::random_u64()?,
            now,
            SystemTime::now(),
        );
        controller_config.ring_timeout = config.ring_timeout;
        controller_config.resume_grace = config.resume_grace;
        controller_config.auth_timeout = config.limits.handshake_timeout;
        controller_config.max_participants = config.max_participants;
        controller_config.max_sessions_per_user = config.limits.max_connections_per_identity;

        let media_socket =
            MediaSocket::bind(&config.media)
                .await
                .map_err(|source| Error::Bind {
                    addr: config.media.bind,
                    source,
                })?;
        let media_addr = media_socket.local_addr();
        let media_candidate = media_socket.candidate();
        if media_candidate.ip().is_loopback() && !config.http_addr.ip().is_loopback() {
            tracing::warn!(%media_candidate, "media is only reachable on loopback; set [media] bind and public_addr");
        }
        let metrics = TransportMetrics::default();
        let (hub, inbox) = hub::channel();
        let (media, media_task) =
            media_socket.spawn(&config.media, hub.downgrade(), metrics.media.clone());
        let legs = TaskTracker::new();
        let gateway = gateway::Gateway::start(
            config.pstn.as_ref(),
            hub.downgrade(),
            media.downgrade(),
            legs.clone(),
            keys::random_u64()?,
        )
        .await
        .map_err(
            |gateway::GatewayError::Bind { addr, source }| match source {
                ringwire_pstn::Error::Io(source) => Error::Bind { addr, source },
                other => Error::Bind {
                    addr,
                    source: std::io::Error::other(other),
                },
            },
        )?;
        let sip_addr = gateway
            .sip_port()
            .zip(config.pstn.as_ref())
            .map(|(port, pstn)| SocketAddr::new(pstn.sip_listen.ip(), port));
        let hub_task = inbox.spawn(
            CallController::new(controller_config),
            media.clone(),
            gateway,
        );

        let listener = tokio::net::TcpListener::bind(config.http_addr)
            .await
            .map_err(|source| Error::Bind {
                addr: config.http_addr,
                source,
            })?;
        let http_addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: config.http_addr,
            source,
        })?;

        let endpoint = quic::bind(
            config.quic_addr,
            CertificateDer::from(certificate.cert_der.clone()),
            PrivateKeyDer::try_from(certificate.key_der.clone()).map_err(|message| {
                Error::TlsFile {
                    path: PathBuf::from("<certificate key>"),
                    message: message.to_owned(),
                }
            })?,
        )
        .map_err(|e| match e {
            quic::QuicError::Io(source) => Error::Bind {
                addr: config.quic_addr,
                source,
            },
            other => Error::Quic(Box::new(other)),
        })?;
        let quic_addr = endpoint.local_addr().map_err(|source| Error::Bind {
            addr: config.quic_addr,
            source,
        })?;

        let shutdown = CancellationToken::new();
        let limits = &config.limits;
        let quic_limits = quic::QuicLimits {
            max_frame: limits.max_frame,
            messages_per_second: f64::from(limits.messages_per_second),
            burst: limits.burst,
            handshake_timeout: limits.handshake_timeout,
        };

        let shared = Arc::new(Shared {
            config,
            hub,
            key,
            token_key,
            metrics,
            identities: Identities::default(),
            tracker: TaskTracker::new(),
            shutting_down: AtomicBool::new(false),
        });
        // Both transports count into the same metrics.
        let quic_task = tokio::spawn(quic::serve(
            endpoint,
            shared.hub.clone(),
            quic_limits,
            shared.metrics.clone(),
            shutdown.clone().cancelled_owned(),
        ));
        let router = http::router(Arc::clone(&shared)).merge(web::routes(Arc::clone(&shared)));
        let http_task = match https {
            Some(tls_config) => {
                let handshake_timeout = shared.config.limits.handshake_timeout;
                let listener = tls::TlsListener::new(listener, tls_config, handshake_timeout);
                tokio::spawn(serve_http(listener, router, shutdown.clone()))
            }
            None => tokio::spawn(serve_http(listener, router, shutdown.clone())),
        };
        tracing::info!(%http_addr, https = shared.config.tls.is_some(), %quic_addr, %media_addr, %media_candidate, fingerprint = %certificate.fingerprint(), "ringwire server started");
        Ok(RunningServer {
            http_addr,
            quic_addr,
            media_addr,
            media_candidate,
            sip_addr,
            media,
            legs,
            certificate,
            access_key_path,
            shared,
            shutdown,
            http_task,
            quic_task,
            hub_task,
            media_task,
        })
    }
}

impl RunningServer {
    /// Where HTTP and WebSocket signaling listen (the real port when 0 was asked for).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Where QUIC signaling listens (the real port when 0 was asked for).
    pub fn quic_addr(&self) -> SocketAddr {
        self.quic_addr
    }

    /// Where the media UDP socket is bound (the real port when 0 was asked for).
    pub fn media_addr(&self) -> SocketAddr {
        self.media_addr
    }

    /// The address clients are told to send media to (the ICE host candidate):
    /// `[media] public_addr` when set, else [`RunningServer::media_addr`].
    pub fn media_candidate(&self) -> SocketAddr {
        self.media_candidate
    }

    /// Where the PSTN gateway's SIP endpoint listens (the real port when 0 was asked
    /// for), when `[pstn]` is configured.
    pub fn sip_addr(&self) -> Option<SocketAddr> {
        self.sip_addr
    }

    /// The media engine's counters (participants, packets forwarded, mixed, decoded),
    /// or `None` once the media worker has stopped, which it does only at shutdown or
    /// if it panicked.
    pub async fn media_stats(&self) -> Option<MediaServerStats> {
        self.media.stats().await
    }

    /// The TLS certificate QUIC (and HTTPS, when configured) presents, DER.
    pub fn cert_der(&self) -> Vec<u8> {
        self.certificate.cert_der.clone()
    }

    /// SHA-256 of [`RunningServer::cert_der`], upper-case hex pairs joined by colons.
    pub fn cert_fingerprint(&self) -> String {
        self.certificate.fingerprint()
    }

    /// Where the access key is kept.
    pub fn access_key_path(&self) -> &std::path::Path {
        &self.access_key_path
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &ServerConfig {
        &self.shared.config
    }

    /// A token for `user`, signed with the server's access key, valid from now for `ttl`.
    pub fn issue_token(&self, user: &UserId, scopes: Scopes, ttl: Duration) -> String {
        self.shared
            .token_key
            .issue(user, scopes, SystemTime::now(), ttl)
    }

    /// Stops accepting, ends every call with "server shutting down", says goodbye to
    /// every connection, waits at most 5 s for connection tasks to write that, stops
    /// the media worker, and stops.
    pub async fn shut_down(self) {
        tracing::info!("shutting down");
        self.shared.shutting_down.store(true, Ordering::Release);
        self.shutdown.cancel();
        self.shared.hub.shut_down().await;
        self.shared.tracker.close();
        if timeout(SHUTDOWN_GRACE, self.shared.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "websocket connections still open after {SHUTDOWN_GRACE:?}; dropping them"
            );
        }
        // Calls are over: phone legs are sending their CANCEL or BYE.
        self.legs.close();
        if timeout(SHUTDOWN_GRACE, self.legs.wait()).await.is_err() {
            tracing::warn!("phone legs still hanging up after {SHUTDOWN_GRACE:?}; leaving them");
        }
        // The worker stops once every handle is gone: the hub's goes with the hub, which
        // stopped above; this is the last one.
        drop(self.media);
        for (name, task) in [
            ("quic", self.quic_task),
            ("http", self.http_task),
            ("hub", self.hub_task),
            ("media", self.media_task),
        ] {
            let abort = task.abort_handle();
            if timeout(SHUTDOWN_GRACE + Duration::from_secs(2), task)
                .await
                .is_err()
            {
                tracing::warn!(task = name, "task did not stop in time; aborting it");
                abort.abort();
            }
        }
        tracing::info!("stopped");
    }
}

/// Serves `router` on `listener` (plain TCP, or [`tls::TlsListener`]) until `shutdown`,
/// then lets connections finish (axum's graceful shutdown).
async fn serve_http<L>(listener: L, router: axum::Router, shutdown: CancellationToken)
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let serve = axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned());
    if let Err(error) = serve.await {
        tracing::error!(%error, "http server failed");
    }
}
