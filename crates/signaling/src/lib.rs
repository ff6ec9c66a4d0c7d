//! Ringwire's signaling: the wire protocol, access tokens, and the sans-IO state
//! machines on both ends of a signaling connection.
//!
//! Nothing here does IO, reads a clock or spawns: time comes in as `now`, bytes come in
//! as arguments and go out through `poll_*` methods. The same cores run behind
//! WebSocket and QUIC, inside the fuzzers, and in tests that run whole calls in
//! virtual time.

pub mod controller;
pub mod error;
#[cfg(any(fuzzing, feature = "arbitrary"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod id;
pub mod protocol;
mod rng;
pub mod session;
pub mod token;

pub use error::Error;
pub use id::{CallId, GroupId, IdError, Identifier, PhoneNumber, UserId};
pub use protocol::{
    CallState, ClientKind, ClientMessage, DecodeError, EndReason, ErrorCode, JoinOptions,
    MediaPayload, MediaPayloadKind, ParticipantInfo, ParticipantState, ServerMessage, VideoKind,
};
pub use session::{
    Call, ClientSession, ConnectionState, Direction, Event, RemoteParticipant, SessionConfig,
};
pub use token::{Claims, Scope, Scopes, TokenError, TokenKey};
