//! The server's error type.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::ConfigError;
use crate::keys::KeyError;

/// The server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is not usable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The access key or the development certificate could not be read or made.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A listening socket could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// A configured TLS certificate or key file could not be read or holds no usable PEM.
    #[error("tls file {}: {message}", path.display())]
    TlsFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// rustls refused the certificate or key.
    #[error("tls setup: {0}")]
    Tls(#[from] rustls::Error),
    /// The QUIC endpoint could not be set up.
    #[error("quic endpoint: {0}")]
    Quic(#[source] Box<dyn std::error::Error + Send + Sync>),
}
