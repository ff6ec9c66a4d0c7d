//! QUIC transport: one bidirectional stream, each message after its length as a `u32`
//! big-endian.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use quinn::{ClientConfig, Connection, Endpoint, RecvStream, SendStream, VarInt};
use ringwire_signaling::protocol::MAX_MESSAGE_SIZE;

use super::tls::{Trust, client_config};
use super::{ALPN, Connector, Transport};
use crate::error::TransportError;

/// How long [`Transport::close`] waits for the server to close after our stream ends.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Connects QUIC transports to one server.
#[derive(Debug)]
pub struct QuicConnector {
    addr: SocketAddr,
    server_name: String,
    config: ClientConfig,
    /// Made at the first connect (it needs the runtime) and reused for reconnects.
    endpoint: Option<Endpoint>,
}

/// A QUIC connection to the signaling server, and its one stream.
#[derive(Debug)]
pub struct QuicTransport {
    endpoint: Endpoint,
    connection: Connection,
    send: SendStream,
    recv: RecvStream,
    /// Bytes read but not yet returned as whole messages (keeps `recv` cancel-safe).
    buffer: Vec<u8>,
}

impl QuicConnector {
    /// A connector for the server at `addr` whose certificate is for `server_name`.
    ///
    /// # Errors
    /// [`TransportError::Tls`] when the trust settings cannot make a TLS configuration.
    pub fn new(
        addr: SocketAddr,
        server_name: String,
        trust: &Trust,
    ) -> Result<Self, TransportError> {
        let tls = client_config(trust, &[ALPN], true)?;
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|_| rustls::Error::General("no TLS 1.3 initial cipher suite".into()))?;
        let mut config = ClientConfig::new(Arc::new(crypto));
        let mut transport = quinn::TransportConfig::default();
        // The session pings every 15 s; QUIC keep-alives keep NAT bindings warm between.
        transport.keep_alive_interval(Some(Duration::from_secs(10)));
        config.transport_config(Arc::new(transport));
        Ok(QuicConnector {
            addr,
            server_name,
            config,
            endpoint: None,
        })
    }
}

impl Connector for QuicConnector {
    type Transport = QuicTransport;

    async fn connect(&mut self) -> Result<QuicTransport, TransportError> {
        let endpoint = match &self.endpoint {
            Some(endpoint) => endpoint.clone(),
            None => {
                let bind: SocketAddr = if self.addr.is_ipv4() {
                    (Ipv4Addr::UNSPECIFIED, 0).into()
                } else {
                    (Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let endpoint = Endpoint::client(bind)?;
                self.endpoint = Some(endpoint.clone());
                endpoint
            }
        };
        let connection = endpoint
            .connect_with(self.config.clone(), self.addr, &self.server_name)?
            .await?;
        let (send, recv) = connection.open_bi().await?;
        Ok(QuicTransport {
            endpoint,
            connection,
            send,
            recv,
            buffer: Vec::new(),
        })
    }
}

impl QuicTransport {
    /// A whole message from the buffer, if one is there.
    fn take_message(&mut self) -> Result<Option<Vec<u8>>, TransportError> {
        let Some(prefix) = self.buffer.first_chunk::<4>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(*prefix) as usize;
        if len > MAX_MESSAGE_SIZE {
            return Err(TransportError::TooLarge(len));
        }
        let Some(message) = self.buffer.get(4..4 + len) else {
            return Ok(None);
        };
        let message = message.to_vec();
        self.buffer.drain(..4 + len);
        Ok(Some(message))
    }
}

impl Transport for QuicTransport {
    async fn send(&mut self, message: Vec<u8>) -> Result<(), TransportError> {
        let len =
            u32::try_from(message.len()).map_err(|_| TransportError::TooLarge(message.len()))?;
        let mut frame = Vec::with_capacity(4 + message.len());
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&message);
        self.send.write_all(&frame).await?;
        Ok(())
    }

    async fn recv(&mut self) -> Result<Option<Vec<u8>>, TransportError> {
        loop {
            if let Some(message) = self.take_message()? {
                return Ok(Some(message));
            }
            // `read_chunk` only takes data when it returns it: cancel-safe.
            match self.recv.read_chunk(64 * 1024, true).await {
                Ok(Some(chunk)) => self.buffer.extend_from_slice(&chunk.bytes),
                Ok(None) if self.buffer.is_empty() => return Ok(None),
                Ok(None) => return Err(TransportError::Framing("stream ended inside a message")),
                Err(quinn::ReadError::ConnectionLost(
                    quinn::ConnectionError::ApplicationClosed(close),
                )) => {
                    tracing::debug!(code = %close.error_code, reason = %String::from_utf8_lossy(&close.reason), "server closed the connection");
                    return Ok(None);
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    async fn close(mut self) {
        // Finish our stream; the server closes the connection when it reads the end,
        // which tells us everything we sent was read.
        let _ = self.send.finish();
        let _ = tokio::time::timeout(CLOSE_WAIT, self.connection.closed()).await;
        self.connection.close(VarInt::from_u32(0), b"");
        let _ = tokio::time::timeout(CLOSE_WAIT, self.endpoint.wait_idle()).await;
    }
}
