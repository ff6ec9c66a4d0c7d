//! The QUIC signaling endpoint (quinn).
//!
//! One connection carries one session on one bidirectional stream that the client
//! opens. Every message on it, both ways, is a `u32` big-endian length followed by that
//! many bytes of the same JSON the WebSocket endpoint carries. ALPN is [`ALPN`].
//!
//! Like the WebSocket endpoint, a connection task only moves bytes: every frame it reads
//! goes to the hub ([`HubHandle::bytes`]), every [`Outbound::Frame`] the hub queues is
//! written, and [`Outbound::Close`] finishes the stream and closes the connection with
//! [`close_code::GOODBYE`]. What the transport itself must police is policed here,
//! before the hub sees it: a length prefix over [`QuicLimits::max_frame`] closes the
//! connection with [`close_code::TOO_LARGE`] without reading the body, and a connection
//! sending faster than its token bucket allows gets one `error{rate_limited}` and its
//! messages dropped, then a close with [`close_code::RATE_LIMITED`] if it keeps going
//! (the WebSocket endpoint's policy, [`RateLimiter`]).
//!
//! Connections are counted in `/metrics` like WebSocket ones (label
//! `transport="quic"`, through the same [`ConnectionMetrics`]): a connection once its
//! QUIC handshake completes, every message the rate limiter refuses, frames over the
//! limit, and every close the server makes, by reason (`hub`, `hub_gone`,
//! `oversized`, `rate_limited`, `handshake_timeout`, `framing`).
//!
//! Application close codes (the reason phrase says more, for people):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | normal close (the client finished its stream, or the server stopped) |
//! | 4000 + end reason code (4403, 4500, ..) | the hub ended the session (refused token, auth timeout, revoke, shutdown; a `goodbye` comes first where the session existed) |
//! | 4001 | a frame was larger than the limit |
//! | 4002 | too many messages too fast |
//! | 4003 | no stream opened within the handshake timeout |
//! | 4004 | the stream broke the framing (ended inside a frame) |

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::{Connection, Endpoint, RecvStream, SendStream, VarInt};
use ringwire_signaling::protocol::MAX_MESSAGE_SIZE;
use ringwire_signaling::{EndReason, ErrorCode, ServerMessage};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout};

use crate::hub::{HubConnection, HubHandle, Outbound};
use crate::limits::{RateLimiter, Verdict};
use crate::metrics::{CloseKind, ConnectionMetrics, Transport, TransportMetrics};

/// The ALPN protocol id of Ringwire signaling over QUIC.
pub(crate) const ALPN: &[u8] = b"ringwire/1";

/// QUIC application close codes; see the module docs.
pub(crate) mod close_code {
    /// Normal close.
    pub(crate) const NORMAL: u32 = 0;
    /// The hub ended the session: this plus the end reason's code (as on WebSocket).
    pub(crate) const GOODBYE: u32 = 4000;
    /// A frame was larger than the limit.
    pub(crate) const TOO_LARGE: u32 = 4001;
    /// Too many messages too fast.
    pub(crate) const RATE_LIMITED: u32 = 4002;
    /// No stream within the handshake timeout.
    pub(crate) const HANDSHAKE_TIMEOUT: u32 = 4003;
    /// The stream ended inside a frame.
    pub(crate) const FRAMING: u32 = 4004;
}

/// How long a closing connection waits for the client to read what was written and
/// close its side before the server closes the connection anyway.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// What the QUIC endpoint enforces per connection.
#[derive(Debug, Clone)]
pub(crate) struct QuicLimits {
    /// Largest frame body accepted, in bytes.
    pub(crate) max_frame: usize,
    /// Messages per second a connection may send on average.
    pub(crate) messages_per_second: f64,
    /// Messages a connection may send in a burst.
    pub(crate) burst: u32,
    /// How long a client has to complete the QUIC handshake and open its stream.
    pub(crate) handshake_timeout: Duration,
}

impl Default for QuicLimits {
    fn default() -> Self {
        QuicLimits {
            max_frame: MAX_MESSAGE_SIZE,
            messages_per_second: 50.0,
            burst: 100,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// The QUIC endpoint could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum QuicError {
    /// The certificate or key was refused.
    #[error("quic tls setup: {0}")]
    Tls(#[from] rustls::Error),
    /// The TLS configuration lacks the cipher suite QUIC's initial packets need.
    #[error("quic tls setup: {0}")]
    NoInitialCipherSuite(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
    /// The UDP socket could not be bound.
    #[error("quic bind: {0}")]
    Io(#[from] std::io::Error),
}

/// Builds the server side of QUIC from a certificate chain's leaf and its key (TLS 1.3
/// only, ALPN [`ALPN`], one bidirectional stream per connection).
///
/// # Errors
/// [`QuicError::Tls`] when rustls refuses the certificate or key.
pub(crate) fn server_config(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Result<quinn::ServerConfig, QuicError> {
    // Name the provider: with two rustls providers in the build, the implicit default panics.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(VarInt::from_u32(1))
        .max_concurrent_uni_streams(VarInt::from_u32(0));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// Binds the QUIC endpoint on `addr` (port 0 picks one: read it back with
/// `endpoint.local_addr()`).
///
/// # Errors
/// [`QuicError`] when the TLS setup fails or the socket cannot be bound.
pub(crate) fn bind(
    addr: SocketAddr,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Result<Endpoint, QuicError> {
    Ok(Endpoint::server(server_config(cert, key)?, addr)?)
}

/// Accepts QUIC connections, counting them in `metrics`, until `shutdown` completes;
/// then stops accepting, lets every connection task finish (the hub's shutdown has
/// told them goodbye, or the hub is gone) and closes the endpoint. Spawn it; it
/// returns when all that is done.
///
/// Call [`HubHandle::shut_down`] before (or together with) completing `shutdown`, so
/// clients get their `goodbye` before the endpoint closes.
pub(crate) async fn serve(
    endpoint: Endpoint,
    hub: HubHandle,
    limits: QuicLimits,
    metrics: TransportMetrics,
    shutdown: impl Future<Output = ()> + Send,
) {
    let limits = Arc::new(limits);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                tasks.spawn(connection(
                    incoming,
                    hub.clone(),
                    Arc::clone(&limits),
                    metrics.clone(),
                ));
            }
            // Reap finished tasks so the set does not grow with every connection ever made.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    // Refuse new connections; the ones we have end when the hub closes them.
    endpoint.set_server_config(None);
    let drain = async { while tasks.join_next().await.is_some() {} };
    if timeout(Duration::from_secs(5), drain).await.is_err() {
        tracing::debug!("quic connections still open after 5 s; closing them");
        tasks.abort_all();
    }
    endpoint.close(
        VarInt::from_u32(close_code::NORMAL),
        b"server shutting down",
    );
    let _ = timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
}

/// How a connection ended, and so how to close it.
#[derive(Debug)]
enum End {
    /// The hub said goodbye.
    Goodbye(EndReason),
    /// The hub stopped (server shutdown without a goodbye for us).
    HubGone,
    /// The client finished its stream.
    PeerFinished,
    /// The transport failed or the client closed the connection.
    Lost,
    /// A length prefix over the limit.
    TooLarge(usize),
    /// The stream ended inside a frame.
    Truncated,
    /// The client kept flooding after it was told.
    Flood,
}

impl End {
    /// Why the server closed the connection, for the metrics; `None` when the client
    /// ended it.
    fn close_kind(&self) -> Option<CloseKind> {
        match self {
            End::Goodbye(_) => Some(CloseKind::Hub),
            End::HubGone => Some(CloseKind::HubGone),
            End::PeerFinished | End::Lost => None,
            End::TooLarge(_) => Some(CloseKind::Oversized),
            End::Truncated => Some(CloseKind::Framing),
            End::Flood => Some(CloseKind::RateLimited),
        }
    }
}

async fn connection(
    incoming: quinn::Incoming,
    hub: HubHandle,
    limits: Arc<QuicLimits>,
    metrics: TransportMetrics,
) {
    let remote = incoming.remote_address();
    let connection = match timeout(limits.handshake_timeout, incoming).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => {
            tracing::debug!(%remote, %error, "quic handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, "quic handshake timed out");
            return;
        }
    };
    // Counted like a WebSocket connection: once the transport's own handshake is done.
    let metrics = metrics.connection(Transport::Quic);
    let (send, recv) = match timeout(limits.handshake_timeout, connection.accept_bi()).await {
        Ok(Ok(streams)) => streams,
        Ok(Err(error)) => {
            tracing::debug!(%remote, %error, "quic connection ended before its stream");
            return;
        }
        Err(_) => {
            metrics.closed(CloseKind::HandshakeTimeout);
            close(
                &connection,
                close_code::HANDSHAKE_TIMEOUT,
                "no stream opened in time",
            );
            return;
        }
    };
    let Ok(HubConnection { id, outbound }) = hub.open().await else {
        close(&connection, close_code::NORMAL, "server shutting down");
        return;
    };
    tracing::debug!(%remote, ?id, "quic session stream open");
    // Frames the connection task itself answers with (rate limiting), next to the hub's.
    let (local_tx, local_rx) = mpsc::channel(4);
    let end = tokio::select! {
        end = read_loop(recv, &hub, id, &limits, &metrics, local_tx) => end,
        end = write_loop(send, outbound, local_rx, &connection) => end,
    };
    hub.closed(id);
    tracing::debug!(%remote, ?id, ?end, "quic session ended");
    // Counted before the close, so whoever sees the close sees the counters too.
    if let End::TooLarge(_) = end {
        metrics.oversized();
    }
    if let Some(kind) = end.close_kind() {
        metrics.closed(kind);
    }
    match end {
        End::Goodbye(reason) => {
            let code = close_code::GOODBYE + u32::from(reason.code.min(999));
            close(&connection, code, &reason.message);
        }
        End::HubGone => close(&connection, close_code::NORMAL, "server shutting down"),
        End::PeerFinished | End::Lost => close(&connection, close_code::NORMAL, ""),
        End::TooLarge(len) => close(
            &connection,
            close_code::TOO_LARGE,
            &format!(
                "frame of {len} bytes is over the limit of {}",
                limits.max_frame
            ),
        ),
        End::Truncated => close(
            &connection,
            close_code::FRAMING,
            "stream ended inside a frame",
        ),
        End::Flood => close(&connection, close_code::RATE_LIMITED, "too many messages"),
    }
}

fn close(connection: &Connection, code: u32, reason: &str) {
    connection.close(VarInt::from_u32(code), reason.as_bytes());
}

/// Reads frames and hands them to the hub until the stream ends or breaks a rule.
async fn read_loop(
    mut recv: RecvStream,
    hub: &HubHandle,
    id: ringwire_signaling::controller::ConnectionId,
    limits: &QuicLimits,
    metrics: &ConnectionMetrics,
    local: mpsc::Sender<Arc<[u8]>>,
) -> End {
    // The limiter takes whole messages a second; a fractional configuration rounds up.
    let rate = limits
        .messages_per_second
        .max(0.0)
        .ceil()
        .min(f64::from(u32::MAX)) as u32;
    let mut limiter = RateLimiter::new(rate, limits.burst, Instant::now().into_std());
    loop {
        let mut prefix = [0u8; 4];
        match recv.read_exact(&mut prefix).await {
            Ok(()) => {}
            // A clean end between frames is the client saying goodbye.
            Err(quinn::ReadExactError::FinishedEarly(0)) => return End::PeerFinished,
            Err(quinn::ReadExactError::FinishedEarly(_)) => return End::Truncated,
            Err(quinn::ReadExactError::ReadError(_)) => return End::Lost,
        }
        let len = u32::from_be_bytes(prefix) as usize;
        if len > limits.max_frame {
            return End::TooLarge(len);
        }
        let mut body = vec![0u8; len];
        match recv.read_exact(&mut body).await {
            Ok(()) => {}
            Err(quinn::ReadExactError::FinishedEarly(_)) => return End::Truncated,
            Err(quinn::ReadExactError::ReadError(_)) => return End::Lost,
        }
        match metrics.rate_limit(limiter.check(Instant::now().into_std())) {
            Verdict::Pass => {}
            Verdict::Refuse => {
                tracing::debug!(?id, "quic message over the rate limit, refused");
                let error = ServerMessage::Error {
                    code: ErrorCode::RateLimited,
                    message: "too many messages; slow down".into(),
                    call_id: None,
                };
                // A full queue means the writer is stuck anyway; the close follows.
                let _ = local.try_send(error.encode().into());
                continue;
            }
            Verdict::Drop => continue,
            Verdict::Close => return End::Flood,
        }
        if hub.bytes(id, body).await.is_err() {
            return End::HubGone;
        }
    }
}

/// Writes what the hub (and the read loop) queue until the hub closes the connection.
async fn write_loop(
    mut send: SendStream,
    mut outbound: mpsc::Receiver<Outbound>,
    mut local: mpsc::Receiver<Arc<[u8]>>,
    connection: &Connection,
) -> End {
    loop {
        let frame = tokio::select! {
            biased;
            out = outbound.recv() => match out {
                Some(Outbound::Frame(frame)) => frame,
                Some(Outbound::Close(reason)) => {
                    // Finish the stream and give the client a moment to read the
                    // goodbye and close its side; a connection close drops unsent data.
                    let _ = send.finish();
                    let _ = timeout(CLOSE_LINGER, connection.closed()).await;
                    return End::Goodbye(reason);
                }
                None => {
                    let _ = send.finish();
                    let _ = timeout(CLOSE_LINGER, connection.closed()).await;
                    return End::HubGone;
                }
            },
            Some(frame) = local.recv() => frame,
        };
        if write_frame(&mut send, &frame).await.is_err() {
            return End::Lost;
        }
    }
}

async fn write_frame(send: &mut SendStream, frame: &[u8]) -> Result<(), quinn::WriteError> {
    let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
    let mut buf = Vec::with_capacity(4 + frame.len());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(frame);
    send.write_all(&buf).await
}
