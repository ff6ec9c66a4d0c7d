//! Signaling transports: a framed message pipe to the server, and what makes one.
//!
//! [`Transport`] carries whole messages (one JSON document each) both ways;
//! [`Connector`] makes a new one for every (re)connection. The SDK ships
//! [`WebSocketTransport`] (`ws://`, `wss://`) and [`QuicTransport`] (one bidirectional
//! stream, `u32` big-endian length before each message, ALPN `ringwire/1`); an SDK
//! maintainer can plug in their own with
//! [`SignalingClient::connect_with`](crate::SignalingClient::connect_with).

mod quic;
mod tls;
mod ws;

use std::future::Future;
use std::net::SocketAddr;

pub use quic::{QuicConnector, QuicTransport};
pub use tls::Trust;
pub use ws::{WebSocketConnector, WebSocketTransport};

use crate::error::TransportError;

/// The ALPN protocol id of Ringwire signaling over QUIC.
pub const ALPN: &[u8] = b"ringwire/1";

/// A connected, message-framed pipe to the signaling server.
pub trait Transport: Send + 'static {
    /// Sends one message.
    ///
    /// # Errors
    /// The transport failed; the driver drops it and reconnects.
    fn send(&mut self, message: Vec<u8>)
    -> impl Future<Output = Result<(), TransportError>> + Send;

    /// The next message; `Ok(None)` when the server closed the connection cleanly.
    ///
    /// Must be cancel-safe: the driver polls it in `tokio::select!`, and a message
    /// must not be lost when another branch wins.
    ///
    /// # Errors
    /// The transport failed or the server broke the framing.
    fn recv(&mut self) -> impl Future<Output = Result<Option<Vec<u8>>, TransportError>> + Send;

    /// Closes the connection cleanly, letting what was sent reach the server first.
    fn close(self) -> impl Future<Output = ()> + Send;
}

/// Makes transports: called for the first connection and for every reconnect.
pub trait Connector: Send + 'static {
    /// The transport this connector makes.
    type Transport: Transport;

    /// Opens a new connection to the server.
    ///
    /// # Errors
    /// The server cannot be reached or the handshake failed.
    fn connect(&mut self) -> impl Future<Output = Result<Self::Transport, TransportError>> + Send;
}

/// Where the signaling server is, and how to trust it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Endpoint {
    /// WebSocket: `ws://host:port/v1/signaling` or `wss://…` (`trust` is for `wss`).
    Ws {
        /// The URL.
        url: String,
        /// Whom to trust for `wss://`.
        trust: Trust,
    },
    /// QUIC: one bidirectional stream of length-prefixed messages.
    Quic {
        /// The server's UDP address.
        addr: SocketAddr,
        /// The name the certificate must be for (`localhost` for the dev certificate).
        server_name: String,
        /// Whom to trust.
        trust: Trust,
    },
}

impl Endpoint {
    /// A WebSocket endpoint; `wss://` servers are checked against the platform's roots.
    pub fn ws(url: impl Into<String>) -> Self {
        Endpoint::Ws {
            url: url.into(),
            trust: Trust::Platform,
        }
    }

    /// A QUIC endpoint.
    pub fn quic(addr: SocketAddr, server_name: impl Into<String>, trust: Trust) -> Self {
        Endpoint::Quic {
            addr,
            server_name: server_name.into(),
            trust,
        }
    }
}

/// The transport of an [`Endpoint`]: WebSocket or QUIC.
#[derive(Debug)]
pub enum AnyTransport {
    /// WebSocket (boxed: its buffers make it much larger than the QUIC variant).
    Ws(Box<WebSocketTransport>),
    /// QUIC.
    Quic(QuicTransport),
}

/// The connector of an [`Endpoint`].
#[derive(Debug)]
pub enum AnyConnector {
    /// WebSocket.
    Ws(WebSocketConnector),
    /// QUIC.
    Quic(QuicConnector),
}

impl AnyConnector {
    /// The connector for `endpoint`.
    ///
    /// # Errors
    /// [`TransportError::Tls`] when the trust settings cannot make a TLS configuration.
    pub fn new(endpoint: &Endpoint) -> Result<Self, TransportError> {
        Ok(match endpoint {
            Endpoint::Ws { url, trust } => {
                AnyConnector::Ws(WebSocketConnector::new(url.clone(), trust)?)
            }
            Endpoint::Quic {
                addr,
                server_name,
                trust,
            } => AnyConnector::Quic(QuicConnector::new(*addr, server_name.clone(), trust)?),
        })
    }
}

impl Transport for AnyTransport {
    async fn send(&mut self, message: Vec<u8>) -> Result<(), TransportError> {
        match self {
            AnyTransport::Ws(t) => t.send(message).await,
            AnyTransport::Quic(t) => t.send(message).await,
        }
    }

    async fn recv(&mut self) -> Result<Option<Vec<u8>>, TransportError> {
        match self {
            AnyTransport::Ws(t) => t.recv().await,
            AnyTransport::Quic(t) => t.recv().await,
        }
    }

    async fn close(self) {
        match self {
            AnyTransport::Ws(t) => (*t).close().await,
            AnyTransport::Quic(t) => t.close().await,
        }
    }
}

impl Connector for AnyConnector {
    type Transport = AnyTransport;

    async fn connect(&mut self) -> Result<AnyTransport, TransportError> {
        Ok(match self {
            AnyConnector::Ws(c) => AnyTransport::Ws(Box::new(c.connect().await?)),
            AnyConnector::Quic(c) => AnyTransport::Quic(c.connect().await?),
        })
    }
}
