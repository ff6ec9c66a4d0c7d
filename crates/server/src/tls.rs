//! HTTPS and WSS: TLS termination for the HTTP listener when `[tls]` is configured.
//!
//! Without `[tls]` the HTTP listener is plain, which the configuration allows only in
//! development mode (loopback by default, see [`crate::config`]). With it, every
//! connection to `http_addr` is TLS (1.2 or 1.3, ALPN `http/1.1`) with the configured
//! certificate chain and key, and the REST API, health, metrics and WebSocket
//! signaling (`wss://host:port/v1/signaling`) all go through it. A plain-HTTP request
//! to that port fails the handshake; nothing is served in clear next to it.
//!
//! # Why tokio-rustls behind axum's own `serve`
//! [`TlsListener`] implements [`axum::serve::Listener`], so the TLS path runs the very
//! same `axum::serve(..).with_graceful_shutdown(..)` as the plain one: one code path
//! for connection handling, WebSocket upgrades and graceful shutdown. The alternatives
//! were `axum-server` (its own server loop and shutdown handle, a second way to run the
//! router, and one more crate) or hand-driving `hyper-util` connections (reimplementing
//! what `axum::serve` already does). tokio-rustls is the rustls adapter the workspace
//! already builds for tokio-tungstenite, so this adds no crate to the build.
//!
//! rustls uses the one crypto provider of the workspace, aws-lc-rs (as quinn and the
//! QUIC endpoint do), named explicitly rather than taken from a process default.
//!
//! # Handshakes
//! The listener accepts TCP connections itself and runs each TLS handshake in its own
//! task, so a slow or silent client never holds up others. A handshake must finish
//! within `limits.handshake_timeout`; at most [`MAX_HANDSHAKES`] run at once (beyond
//! that, new connections wait in the kernel's accept queue). Failed handshakes (plain
//! HTTP, an untrusted certificate, a timeout) are logged at debug level and dropped.
//! Dropping the listener, which `axum::serve` does when shutdown begins, closes the
//! port and aborts handshakes in flight.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::Error;
use crate::config::TlsConfig;
use crate::keys::Certificate;

/// Most TLS handshakes in progress at once.
pub(crate) const MAX_HANDSHAKES: usize = 1024;

/// The configured certificate chain and key, read from their PEM files.
pub(crate) struct Loaded {
    /// The leaf certificate and key (what QUIC presents, and what clients pin).
    pub(crate) certificate: Certificate,
    /// The rustls configuration for HTTPS/WSS, with the whole chain.
    pub(crate) server_config: Arc<rustls::ServerConfig>,
}

/// Reads `[tls]`: the certificate chain (leaf first) and the private key.
///
/// # Errors
/// [`Error::TlsFile`] when a file cannot be read or holds no certificate or key,
/// [`Error::Tls`] when rustls refuses them (for example, a key that does not match).
pub(crate) fn load(tls: &TlsConfig) -> Result<Loaded, Error> {
    let file_error = |path: &Path, message: String| Error::TlsFile {
        path: path.to_owned(),
        message,
    };
    let chain = CertificateDer::pem_file_iter(&tls.cert)
        .map_err(|e| file_error(&tls.cert, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(&tls.cert, e.to_string()))?;
    let Some(leaf) = chain.first() else {
        return Err(file_error(
            &tls.cert,
            "no certificate in the file".to_owned(),
        ));
    };
    let key =
        PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| file_error(&tls.key, e.to_string()))?;
    let certificate = Certificate {
        cert_der: leaf.to_vec(),
        key_der: key.secret_der().to_vec(),
    };
    let server_config = server_config(chain, key)?;
    Ok(Loaded {
        certificate,
        server_config,
    })
}

/// The HTTPS/WSS server configuration: aws-lc-rs, TLS 1.2 and 1.3, ALPN `http/1.1`
/// (the router speaks HTTP/1.1, which WebSocket upgrades need anyway).
fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, Error> {
    // Name the provider: with two rustls providers in the build, the implicit default panics.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A TCP listener that hands `axum::serve` connections whose TLS handshake is done.
pub(crate) struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
    /// Each yields the stream once its handshake is done, `None` when it failed.
    handshakes: JoinSet<Option<(TlsStream<TcpStream>, SocketAddr)>>,
}

impl TlsListener {
    pub(crate) fn new(
        tcp: TcpListener,
        config: Arc<rustls::ServerConfig>,
        handshake_timeout: Duration,
    ) -> TlsListener {
        TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(config),
            handshake_timeout,
            handshakes: JoinSet::new(),
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    // Cancel safe, as axum needs: `TcpListener::accept` and `JoinSet::join_next` are,
    // and handshakes live in `self`, not in this future.
    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                accepted = self.tcp.accept(), if self.handshakes.len() < MAX_HANDSHAKES => {
                    match accepted {
                        Ok((stream, peer)) => {
                            let acceptor = self.acceptor.clone();
                            let limit = self.handshake_timeout;
                            self.handshakes.spawn(handshake(acceptor, stream, peer, limit));
                        }
                        Err(error) => accept_failed(error).await,
                    }
                }
                Some(joined) = self.handshakes.join_next() => match joined {
                    Ok(Some(done)) => return done,
                    Ok(None) => {}
                    Err(error) => tracing::warn!(%error, "tls handshake task failed"),
                },
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// One TLS handshake, at most `limit` long; a failure is logged and yields `None`.
async fn handshake(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    limit: Duration,
) -> Option<(TlsStream<TcpStream>, SocketAddr)> {
    match timeout(limit, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some((stream, peer)),
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "tls handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "tls handshake timed out");
            None
        }
    }
}

/// What axum's own TCP listener does on an accept error: a connection that went away
/// is nobody's problem; anything else (out of file descriptors, say) is logged and
/// waited out for a second rather than spun on.
async fn accept_failed(error: io::Error) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
