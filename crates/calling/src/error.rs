//! The crate's error types.

use ringwire_signaling::{CallId, ErrorCode};

use crate::media::AudioEnd;

/// What went wrong in the SDK.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The transport could not connect, or failed.
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    /// The server refused the access token (or the connection) before authenticating.
    #[error("the server refused the session: {code}: {message}", code = code.as_str())]
    AuthRejected {
        /// What the server said, stable for programs.
        code: ErrorCode,
        /// What the server said, for people.
        message: String,
    },
    /// The first connection dropped, or stayed silent, before it was authenticated.
    #[error("the connection was lost before it was authenticated")]
    ConnectionLost,
    /// Connecting took longer than [`ConnectOptions::connect_timeout`](crate::ConnectOptions).
    #[error("timed out connecting to the server")]
    Timeout,
    /// The session refused a command (wrong state, bad argument, not connected).
    #[error("request refused: {0}")]
    Session(#[from] ringwire_signaling::Error),
    /// The client is closed (by [`SignalingClient::close`](crate::SignalingClient::close),
    /// a `goodbye` from the server, or reconnecting gave up).
    #[error("the signaling client is closed")]
    Closed,
    /// The endpoint description cannot be used (a bad URL or fingerprint).
    #[error("invalid endpoint: {0}")]
    InvalidEndpoint(String),
    /// The call's audio socket could not be bound, or the local address toward the
    /// server could not be found.
    #[error("audio socket: {0}")]
    AudioSocket(#[source] std::io::Error),
    /// No local IP to send media from is known: the client was made with
    /// [`SignalingClient::connect_with`](crate::SignalingClient::connect_with), or the
    /// server's host has no usable address. Set
    /// [`AudioOptions::local_ip`](crate::AudioOptions::local_ip).
    #[error("no local address to send media from; set AudioOptions::local_ip")]
    NoMediaAddress,
    /// The media engine refused to start (a bad local address, codec settings).
    #[error("media: {0}")]
    Media(#[from] ringwire_media::rtc::MediaError),
    /// Audio already runs for this call; stop it first.
    #[error("audio already runs for call {0}")]
    AudioRunning(CallId),
    /// The call's audio has stopped.
    #[error("the call's audio ended: {0}")]
    AudioEnded(AudioEnd),
    /// Video needs the call's media running with a video send section
    /// ([`AudioOptions::video`](crate::AudioOptions::video)), and switching needs video
    /// being sent.
    #[error("no video for call {call_id}: {reason}")]
    NoVideo {
        /// The call.
        call_id: CallId,
        /// What is missing.
        reason: &'static str,
    },
}

/// What went wrong in a signaling transport.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// A socket operation failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The WebSocket failed (handshake, protocol or I/O).
    #[error("websocket: {0}")]
    WebSocket(#[from] Box<tokio_tungstenite::tungstenite::Error>),
    /// The QUIC connection could not be started.
    #[error("quic connect: {0}")]
    QuicConnect(#[from] quinn::ConnectError),
    /// The QUIC connection failed or was closed.
    #[error("quic connection: {0}")]
    QuicConnection(#[from] quinn::ConnectionError),
    /// Writing to the QUIC stream failed.
    #[error("quic write: {0}")]
    QuicWrite(#[from] quinn::WriteError),
    /// Reading from the QUIC stream failed.
    #[error("quic read: {0}")]
    QuicRead(#[from] quinn::ReadError),
    /// The TLS configuration could not be built.
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
    /// The peer sent a frame over the size limit.
    #[error("frame of {0} bytes is over the limit")]
    TooLarge(usize),
    /// The peer broke the framing (a stream ending inside a frame, a non-text message).
    #[error("peer broke the framing: {0}")]
    Framing(&'static str),
    /// A message to send is not UTF-8 (WebSocket text frames must be).
    #[error("message is not utf-8")]
    NotText,
    /// A transport plugged in by the application failed.
    #[error("custom transport: {0}")]
    Custom(Box<dyn std::error::Error + Send + Sync>),
}

impl From<tokio_tungstenite::tungstenite::Error> for TransportError {
    fn from(error: tokio_tungstenite::tungstenite::Error) -> Self {
        TransportError::WebSocket(Box::new(error))
    }
}
