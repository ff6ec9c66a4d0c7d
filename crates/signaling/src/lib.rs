//! Ringwire's signaling: the wire protocol, access tokens, and the sans-IO state
//! machines on both ends of a signaling connection.
//!
//! - [`protocol`]: versioned JSON messages ([`ClientMessage`], [`ServerMessage`]) with
//!   typed decode errors; `docs/protocol.md` documents them and `tests/vectors/` pins them.
//! - [`id`]: identifiers in the ACS raw form (`8:<user>`, `4:+<E.164>`, `8:echo123`).
//! - [`token`]: HS256 access tokens with scopes, verified against a `now` you pass in.
//! - [`session`]: [`ClientSession`], a client's calls as the server reports them.
//! - [`controller`]: [`controller::CallController`], the server's calls and rosters.
//!
//! This crate knows nothing of media or of tokio, and is usable alone: an SDK maintainer
//! can put their own transport under [`ClientSession`], or their own server around the
//! controller.
//!
//! ```
//! use std::time::{Duration, Instant, SystemTime};
//! use ringwire_signaling::controller::{CallController, ConnectionId, ControllerConfig};
//! use ringwire_signaling::{ClientSession, ConnectionState, Scope, Scopes, SessionConfig, TokenKey, UserId};
//!
//! let key = TokenKey::new(&[42; 32])?;
//! let (now, wall) = (Instant::now(), SystemTime::now());
//! let mut server = CallController::new(ControllerConfig::new(key.clone(), 7, now, wall));
//! let token = key.issue(&UserId::new("alice")?, Scopes::from(Scope::Voip), wall, Duration::from_secs(60));
//! let mut alice = ClientSession::new(SessionConfig::new(token, 1), now);
//!
//! // The transport is up: wire the two cores together in memory.
//! let conn = ConnectionId(1);
//! server.handle_connect(conn, now);
//! alice.handle_connected(now);
//! // Drain rule: after every input, poll outputs until empty.
//! while let Some(msg) = alice.poll_transmit() {
//!     server.handle_bytes(conn, &msg.encode(), now);
//!     while let Some(t) = server.poll_transmit() {
//!         alice.handle_bytes(&t.message.encode(), now)?;
//!     }
//! }
//! assert_eq!(alice.connection_state(), ConnectionState::Connected);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Rules
//! - Nothing here does IO, reads a clock, sleeps or spawns. Time comes in as `now`
//!   (monotonic) and, for token expiry, as wall-clock data; bytes come in as arguments
//!   and leave through `poll_*` methods.
//! - After every `handle_*` call or command, drain every `poll_*` output before the
//!   next input; call `handle_timeout` when `poll_timeout` says (early is harmless).
//! - Bad bytes from the network are a typed error for the caller to count and report;
//!   they never panic and never change state.

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
    MAX_DTMF_DIGITS, MediaPayload, MediaPayloadKind, ParticipantInfo, ParticipantState,
    ServerMessage, VideoKind, VideoSize, VideoSlot, VideoStream, is_dtmf,
};
pub use session::{
    Call, ClientSession, ConnectionState, Direction, Event, RemoteParticipant, SessionConfig,
};
pub use token::{Claims, Scope, Scopes, TokenError, TokenKey};
