//! The crate's error type.
//!
//! Variants say who is at fault: [`Error::Malformed`] and [`Error::PeerMisbehaved`] are
//! the peer's, the others are requests the caller should not have made (given the
//! state it can see through getters), and never come from untrusted data.

use crate::id::{CallId, Identifier};
use crate::protocol::{CallState, DecodeError, VideoKind};

/// What went wrong in a signaling core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bytes from the peer are not a valid message; nothing changed.
    #[error("malformed message: {0}")]
    Malformed(#[from] DecodeError),
    /// The peer sent a valid message that the protocol does not allow at this point
    /// (a call message before authentication, a second `authenticated`); it was ignored.
    #[error("peer misbehaved: {0}")]
    PeerMisbehaved(&'static str),
    /// The request needs an authenticated connection, and there is none right now.
    #[error("not connected to the server")]
    NotConnected,
    /// No call has this id.
    #[error("unknown call {0}")]
    UnknownCall(CallId),
    /// The call's state does not allow the request (accepting a call that is not
    /// ringing, holding a call that is not connected).
    #[error("cannot {action} call {call} in state {state:?}")]
    InvalidState {
        /// The call.
        call: CallId,
        /// The state it is in.
        state: CallState,
        /// What was asked, as a verb (`"accept"`, `"hold"`).
        action: &'static str,
    },
    /// The participant is not in the call.
    #[error("{id} is not a participant of call {call}")]
    UnknownParticipant {
        /// The call.
        call: CallId,
        /// Who was named.
        id: Identifier,
    },
    /// Another video stream is on, and only one of camera and screen share may be.
    #[error("cannot start {requested:?} in call {call}: {active:?} is already on")]
    VideoBusy {
        /// The call.
        call: CallId,
        /// The stream asked for.
        requested: VideoKind,
        /// The stream that is on.
        active: VideoKind,
    },
    /// An argument makes no sense whatever the state: no targets, too many targets,
    /// the same target twice, oneself as a target.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
}
