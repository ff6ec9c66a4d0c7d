//! WebSocket transport: one JSON text frame per message.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use ringwire_signaling::protocol::MAX_MESSAGE_SIZE;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::tls::{Trust, client_config};
use super::{Connector, Transport};
use crate::error::TransportError;

/// How long [`Transport::close`] waits for the server's answer to our close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Connects WebSocket transports to one URL.
#[derive(Debug)]
pub struct WebSocketConnector {
    url: String,
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// A WebSocket connection to the signaling server.
#[derive(Debug)]
pub struct WebSocketTransport {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl WebSocketConnector {
    /// A connector for `url` (`ws://` or `wss://`); `trust` applies to `wss://`.
    ///
    /// # Errors
    /// [`TransportError::Tls`] when the trust settings cannot make a TLS configuration.
    pub fn new(url: String, trust: &Trust) -> Result<Self, TransportError> {
        let tls = if url.starts_with("wss:") {
            Some(Arc::new(client_config(trust, &[], false)?))
        } else {
            None
        };
        Ok(WebSocketConnector { url, tls })
    }
}

impl Connector for WebSocketConnector {
    type Transport = WebSocketTransport;

    async fn connect(&mut self) -> Result<WebSocketTransport, TransportError> {
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE_SIZE))
            .max_frame_size(Some(MAX_MESSAGE_SIZE));
        let connector = self
            .tls
            .as_ref()
            .map(|tls| tokio_tungstenite::Connector::Rustls(Arc::clone(tls)));
        let (socket, _response) = tokio_tungstenite::connect_async_tls_with_config(
            self.url.as_str(),
            Some(config),
            true,
            connector,
        )
        .await?;
        Ok(WebSocketTransport { socket })
    }
}

impl Transport for WebSocketTransport {
    async fn send(&mut self, message: Vec<u8>) -> Result<(), TransportError> {
        let text = String::from_utf8(message).map_err(|_| TransportError::NotText)?;
        self.socket.send(Message::text(text)).await?;
        Ok(())
    }

    async fn recv(&mut self) -> Result<Option<Vec<u8>>, TransportError> {
        use tokio_tungstenite::tungstenite::Error as WsError;
        // `StreamExt::next` is cancel-safe: a message is only taken when it is returned.
        loop {
            match self.socket.next().await {
                None => return Ok(None),
                Some(Ok(Message::Text(text))) => return Ok(Some(text.as_bytes().to_vec())),
                Some(Ok(Message::Binary(_))) => {
                    return Err(TransportError::Framing("binary websocket message"));
                }
                Some(Ok(Message::Close(frame))) => {
                    tracing::debug!(?frame, "server closed the websocket");
                    return Ok(None);
                }
                // tungstenite answers pings by itself.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => return Ok(None),
                Some(Err(WsError::Capacity(_))) => {
                    return Err(TransportError::TooLarge(MAX_MESSAGE_SIZE + 1));
                }
                Some(Err(error)) => return Err(error.into()),
            }
        }
    }

    async fn close(mut self) {
        if self.socket.close(None).await.is_err() {
            return;
        }
        // Read until the server answers the close, so it sees ours first.
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            while let Some(Ok(_)) = self.socket.next().await {}
        })
        .await;
    }
}
