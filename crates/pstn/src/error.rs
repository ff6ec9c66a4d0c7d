//! The crate's errors.

/// Why bytes from the network were refused. Every parser in this crate returns it;
/// none panics on any input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    /// The bytes end before the structure does.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// A field has a value the format does not allow.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// Bytes are left after the structure.
    #[error("trailing bytes after {0}")]
    Trailing(&'static str),
    /// The message is larger than we accept.
    #[error("{0} too large")]
    TooLarge(&'static str),
}

/// What went wrong in the gateway.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bytes from a peer that do not parse.
    #[error("malformed input: {0}")]
    Malformed(#[from] Malformed),
    /// The configuration is not usable (the message says which entry and why).
    #[error("invalid pstn configuration: {0}")]
    Config(String),
    /// The opus codec failed.
    #[error("codec: {0}")]
    Codec(#[from] ringwire_media::codec::CodecError),
    /// No RTP port is free in the configured range.
    #[error("no free RTP port in the configured range")]
    NoRtpPort,
    /// The SIP stack failed (transport error, transaction timeout).
    #[error("sip: {0}")]
    Sip(String),
    /// A socket operation failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}
