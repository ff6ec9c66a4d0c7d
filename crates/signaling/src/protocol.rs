//! The wire protocol: versioned JSON messages between clients and the server.
//!
//! Every message is one JSON object with `"v": 1` and a `"type"` naming the message;
//! the other fields depend on the type. Unknown fields are ignored so that newer
//! peers can add fields without breaking older ones; an unknown `type` is an error
//! the receiver reports and survives. Messages larger than [`MAX_MESSAGE_SIZE`] are
//! refused before they are parsed. `docs/protocol.md` documents every message and
//! `tests/vectors/` holds the JSON test vectors every implementation must pass.
//!
//! The same bytes travel over WebSocket text frames and, length-prefixed, over QUIC
//! streams; framing is the transports' business, not this module's.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::id::{CallId, GroupId, Identifier, PhoneNumber};

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest encoded message accepted, in bytes.
///
/// Big enough for an SDP offer with many candidates and a 350-person roster
/// snapshot, small enough that one connection cannot make the server buffer much.
pub const MAX_MESSAGE_SIZE: usize = 256 * 1024;

/// The most DTMF digits one [`ClientMessage::SendDtmf`] may carry.
pub const MAX_DTMF_DIGITS: usize = 32;

/// Whether `digits` is a valid DTMF string: 1 to [`MAX_DTMF_DIGITS`] of `0-9`, `*`,
/// `#`, `A-D` (RFC 4733 §3.2 events 0-15).
pub fn is_dtmf(digits: &str) -> bool {
    (1..=MAX_DTMF_DIGITS).contains(&digits.len())
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'*' | b'#' | b'A'..=b'D'))
}

/// A message from a client to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum ClientMessage {
    /// The first message of every connection: who the client is.
    Auth {
        /// An access token issued by the server's key (see [`crate::token`]).
        token: String,
        /// A resume token from an earlier [`ServerMessage::Authenticated`], to take
        /// back a session whose connection dropped.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<String>,
        /// What kind of client this is; the media plane applies per-kind limits.
        #[serde(default)]
        client: ClientKind,
    },
    /// Place a call to one or more participants. One target makes a 1:1 call,
    /// two or more an ad-hoc group call.
    StartCall {
        /// The id the caller chose for the new call.
        call_id: CallId,
        /// Who to ring.
        targets: Vec<Identifier>,
        /// How the caller joins.
        #[serde(default)]
        options: JoinOptions,
        /// The number shown to phone targets; it must be one the server owns.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        alternate_caller_id: Option<PhoneNumber>,
    },
    /// Join the group call of a group, starting it when nobody is in it yet.
    Join {
        /// The group.
        group_id: GroupId,
        /// How the joiner joins.
        #[serde(default)]
        options: JoinOptions,
        /// When this join starts the call: later joiners wait in the lobby until
        /// someone admits them.
        #[serde(default)]
        lobby: bool,
    },
    /// Answer an incoming call.
    Accept {
        /// The call.
        call_id: CallId,
        /// How the callee joins.
        #[serde(default)]
        options: JoinOptions,
    },
    /// Decline an incoming call.
    Reject {
        /// The call.
        call_id: CallId,
    },
    /// Leave a call; with `for_everyone`, end it for every participant.
    HangUp {
        /// The call.
        call_id: CallId,
        /// End the call for everyone, not only for the sender.
        #[serde(default)]
        for_everyone: bool,
    },
    /// Put the call on hold locally: the sender neither sends nor receives media.
    Hold {
        /// The call.
        call_id: CallId,
    },
    /// Take the call off hold.
    Resume {
        /// The call.
        call_id: CallId,
    },
    /// Mute the sender's microphone in the call.
    Mute {
        /// The call.
        call_id: CallId,
    },
    /// Unmute the sender's microphone in the call.
    Unmute {
        /// The call.
        call_id: CallId,
    },
    /// Start sending a video stream (camera or screen share), or, for a stream that
    /// is on already, announce its new size (a source switch that changes resolution).
    StartVideo {
        /// The call.
        call_id: CallId,
        /// Camera or screen share.
        kind: VideoKind,
        /// The size the sender encodes at, when it knows; absent: not known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<VideoSize>,
    },
    /// Stop sending a video stream.
    StopVideo {
        /// The call.
        call_id: CallId,
        /// Camera or screen share.
        kind: VideoKind,
    },
    /// Invite someone into the call (promotes a 1:1 call to a group call).
    AddParticipant {
        /// The call.
        call_id: CallId,
        /// Who to ring.
        target: Identifier,
    },
    /// Remove a participant from the call, or refuse someone waiting in its lobby.
    RemoveParticipant {
        /// The call.
        call_id: CallId,
        /// Who to remove.
        target: Identifier,
    },
    /// Let someone waiting in the lobby into the call.
    Admit {
        /// The call.
        call_id: CallId,
        /// Who to admit.
        target: Identifier,
    },
    /// An opaque media negotiation payload (SDP offer or answer) for the media plane.
    Media {
        /// The call.
        call_id: CallId,
        /// The payload.
        payload: MediaPayload,
    },
    /// How many remote videos to receive at most, and whose camera to show first.
    VideoPreferences {
        /// The call.
        call_id: CallId,
        /// At most this many camera videos (the server's per-kind limit caps it);
        /// absent: the server's default.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_videos: Option<u8>,
        /// The participant pinned first; absent: none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pinned: Option<Identifier>,
    },
    /// Keepalive; the server answers with [`ServerMessage::Pong`].
    Ping {
        /// Echoed back in the pong.
        seq: u64,
    },
    /// Send DTMF digits (`0-9`, `*`, `#`, `A-D`; at most [`MAX_DTMF_DIGITS`]) to
    /// the phone participants of a call (RFC 4733 events on their SIP legs).
    SendDtmf {
        /// The call.
        call_id: CallId,
        /// The digits, in order.
        digits: String,
    },
}

/// A message from the server to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum ServerMessage {
    /// The session is authenticated.
    Authenticated {
        /// Who the token says the client is.
        user: Identifier,
        /// Present to take this session back after the connection drops.
        resume_token: String,
        /// How long, in milliseconds, a dropped session waits to be resumed.
        grace_ms: u64,
        /// Whether this connection resumed an earlier session (its calls go on).
        resumed: bool,
    },
    /// Someone is calling the client.
    IncomingCall {
        /// The call.
        call_id: CallId,
        /// Who is calling.
        caller: Identifier,
        /// Whether the caller has video on.
        video: bool,
        /// The group, when this is an invitation into a group call.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group_id: Option<GroupId>,
    },
    /// The client's own state in a call changed.
    CallState {
        /// The call.
        call_id: CallId,
        /// The new state.
        state: CallState,
        /// Why the call ended, when `state` is `disconnected`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        end_reason: Option<EndReason>,
    },
    /// The whole roster of a call, as the client first sees it (after joining or resuming).
    Roster {
        /// The call.
        call_id: CallId,
        /// Everyone in the call but the client itself.
        participants: Vec<ParticipantInfo>,
    },
    /// A participant joined the call or changed (state, mute, video).
    Participant {
        /// The call.
        call_id: CallId,
        /// The participant's current view.
        participant: ParticipantInfo,
    },
    /// A participant left the call.
    ParticipantLeft {
        /// The call.
        call_id: CallId,
        /// Who left.
        id: Identifier,
        /// Why they left.
        reason: EndReason,
    },
    /// The client's own mute state in the call changed (by itself, or by the server).
    MuteState {
        /// The call.
        call_id: CallId,
        /// Whether the client is muted.
        muted: bool,
    },
    /// The ordered list of dominant speakers, most dominant first.
    DominantSpeakers {
        /// The call.
        call_id: CallId,
        /// The speakers.
        speakers: Vec<Identifier>,
    },
    /// An opaque media negotiation payload from the media plane.
    Media {
        /// The call.
        call_id: CallId,
        /// The payload.
        payload: MediaPayload,
    },
    /// What each of our video receive slots shows now (every slot we offered).
    VideoSlots {
        /// The call.
        call_id: CallId,
        /// The slots, in offer order.
        slots: Vec<VideoSlot>,
    },
    /// A request could not be carried out; the connection stays usable.
    Error {
        /// What went wrong, stable for programs to match on.
        code: ErrorCode,
        /// What went wrong, for people.
        message: String,
        /// The call the failed request was about.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        call_id: Option<CallId>,
    },
    /// Answer to [`ClientMessage::Ping`].
    Pong {
        /// The ping's sequence number.
        seq: u64,
    },
    /// The server is closing this connection and will not take it back.
    Goodbye {
        /// Why.
        reason: EndReason,
    },
    /// A participant of a call (a phone, through its SIP leg) pressed keys.
    Dtmf {
        /// The call.
        call_id: CallId,
        /// Who pressed them.
        from: Identifier,
        /// The digits, in order (`0-9`, `*`, `#`, `A-D`).
        digits: String,
    },
}

/// What kind of client is connected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum ClientKind {
    /// A native (Rust) client.
    #[default]
    Native,
    /// A browser.
    Web,
}

/// How a participant enters a call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct JoinOptions {
    /// Join with the microphone muted.
    #[serde(default)]
    pub muted: bool,
    /// Join with the camera on.
    #[serde(default)]
    pub video: bool,
}

/// A video stream a participant sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum VideoKind {
    /// A camera.
    Camera,
    /// A screen, window or browser tab.
    ScreenShare,
}

/// Longest side of a [`VideoSize`] accepted, in pixels (8K UHD, either orientation).
pub const MAX_VIDEO_LONG_SIDE: u32 = 7680;

/// Shortest side of a [`VideoSize`] accepted, in pixels (8K UHD, either orientation).
pub const MAX_VIDEO_SHORT_SIDE: u32 = 4320;

/// The size of a video stream in pixels, as its sender encodes it, so that receivers
/// can lay out and allocate renderers before the first frame arrives.
///
/// Valid sizes are at least 1x1 and at most 7680x4320 in either orientation
/// ([`MAX_VIDEO_LONG_SIDE`], [`MAX_VIDEO_SHORT_SIDE`]); decoding refuses others, and
/// so do [`ClientSession::start_video`](crate::ClientSession::start_video) and the
/// controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawVideoSize")]
pub struct VideoSize {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl VideoSize {
    /// A size; see [`VideoSize::is_valid`] for the ones the protocol accepts.
    pub const fn new(width: u32, height: u32) -> Self {
        VideoSize { width, height }
    }

    /// Whether the protocol accepts this size: no side is zero, the longer side is at
    /// most [`MAX_VIDEO_LONG_SIDE`] and the shorter at most [`MAX_VIDEO_SHORT_SIDE`].
    pub fn is_valid(self) -> bool {
        let (long, short) = if self.width >= self.height {
            (self.width, self.height)
        } else {
            (self.height, self.width)
        };
        short >= 1 && long <= MAX_VIDEO_LONG_SIDE && short <= MAX_VIDEO_SHORT_SIDE
    }
}

impl std::fmt::Display for VideoSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

/// A [`VideoSize`] as read from the wire, before validation.
#[derive(Deserialize)]
struct RawVideoSize {
    width: u32,
    height: u32,
}

impl TryFrom<RawVideoSize> for VideoSize {
    type Error = String;

    fn try_from(raw: RawVideoSize) -> Result<Self, Self::Error> {
        let size = VideoSize::new(raw.width, raw.height);
        if size.is_valid() {
            Ok(size)
        } else {
            Err(format!(
                "video size {size} is out of range (1x1 to \
                 {MAX_VIDEO_LONG_SIDE}x{MAX_VIDEO_SHORT_SIDE}, either orientation)"
            ))
        }
    }
}

/// Mostly valid sizes, some not (a side of 0 or over the limit), so that fuzzed
/// requests reach both the accepting and the refusing paths.
#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for VideoSize {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(VideoSize::new(
            u.int_in_range(0..=MAX_VIDEO_LONG_SIDE + 1)?,
            u.int_in_range(0..=MAX_VIDEO_SHORT_SIDE + 1)?,
        ))
    }
}

/// A video stream a participant sends: its kind and, when the sender said, its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct VideoStream {
    /// Camera or screen share.
    pub kind: VideoKind,
    /// The size the sender encodes at; absent when it did not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<VideoSize>,
}

impl From<VideoKind> for VideoStream {
    /// A stream of `kind` whose size is not known.
    fn from(kind: VideoKind) -> Self {
        VideoStream { kind, size: None }
    }
}

/// One video receive slot (an SDP `recvonly` video section the client offered) and
/// the stream the server forwards into it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct VideoSlot {
    /// The section's `a=mid`.
    pub mid: String,
    /// Whose video it shows; absent when the slot is idle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant: Option<Identifier>,
    /// Camera or screen share; absent when the slot is idle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<VideoKind>,
}

/// An SDP offer or answer, carried between a client and the media plane untouched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct MediaPayload {
    /// Offer or answer.
    pub kind: MediaPayloadKind,
    /// The SDP text.
    pub sdp: String,
}

/// What a [`MediaPayload`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum MediaPayloadKind {
    /// An SDP offer.
    Offer,
    /// An SDP answer.
    Answer,
}

/// The state of a call as one participant sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum CallState {
    /// No call yet.
    None,
    /// A phone leg plays early media (ringback, announcements) before answering.
    EarlyMedia,
    /// The call rings at this client.
    Incoming,
    /// The call is being set up.
    Connecting,
    /// The other side is ringing.
    Ringing,
    /// In the call.
    Connected,
    /// This client put the call on hold.
    LocalHold,
    /// The other side of a 1:1 call put it on hold.
    RemoteHold,
    /// Waiting in a group call's lobby to be admitted.
    InLobby,
    /// Leaving the call.
    Disconnecting,
    /// The call is over for this client.
    Disconnected,
}

/// The state of a remote participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum ParticipantState {
    /// Known, nothing happening yet.
    Idle,
    /// A phone participant plays early media.
    EarlyMedia,
    /// Joining.
    Connecting,
    /// Being rung.
    Ringing,
    /// In the call.
    Connected,
    /// Has put the call on hold.
    Hold,
    /// Waiting in the lobby.
    InLobby,
    /// Gone.
    Disconnected,
}

/// A remote participant as a roster shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ParticipantInfo {
    /// Who.
    pub id: Identifier,
    /// The participant's state.
    pub state: ParticipantState,
    /// Whether their microphone is muted.
    #[serde(default)]
    pub muted: bool,
    /// Whether they are speaking now.
    #[serde(default)]
    pub speaking: bool,
    /// The video streams they send, at most one per kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub video: Vec<VideoStream>,
    /// Why they left, once they have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<EndReason>,
}

/// Why a call or a participant ended, with SIP-like codes so phone legs map one to one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct EndReason {
    /// The SIP-like code: 0 normal, 403, 404, 408, 410, 480, 486, 487, 500, 603.
    pub code: u16,
    /// Tells apart reasons that share a code (see the constants on this type).
    #[serde(default)]
    pub subcode: u32,
    /// For people.
    #[serde(default)]
    pub message: String,
}

/// What went wrong with a request, in [`ServerMessage::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum ErrorCode {
    /// The message was not valid JSON or missed a required field.
    Malformed,
    /// The message `type` is unknown.
    UnknownType,
    /// The message's `v` is not one this server speaks.
    UnsupportedVersion,
    /// The message is larger than [`MAX_MESSAGE_SIZE`].
    TooLarge,
    /// A message other than `auth` arrived before authentication.
    NotAuthenticated,
    /// `auth` arrived on an authenticated connection.
    AlreadyAuthenticated,
    /// The token's signature or form is wrong.
    InvalidToken,
    /// The token has expired.
    TokenExpired,
    /// The token lacks a scope the request needs.
    MissingScope,
    /// The token was issued before its identity's tokens were revoked.
    TokenRevoked,
    /// The identity has as many connections as the server allows.
    TooManyConnections,
    /// The resume token is unknown or its grace period is over.
    ResumeFailed,
    /// The call does not exist or the client is not in it.
    UnknownCall,
    /// A call with that id already exists.
    CallExists,
    /// The request does not fit the call's state (accepting a call that does not ring).
    InvalidState,
    /// The participant is not in the call.
    UnknownParticipant,
    /// The participant is already in the call.
    AlreadyInCall,
    /// The call is full.
    CallFull,
    /// The request is not allowed (removing yourself, admitting without being in the call).
    Forbidden,
    /// The connection sent too many messages too fast.
    RateLimited,
    /// The server failed.
    Internal,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Malformed => "malformed",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::NotAuthenticated => "not_authenticated",
            ErrorCode::AlreadyAuthenticated => "already_authenticated",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::MissingScope => "missing_scope",
            ErrorCode::TokenRevoked => "token_revoked",
            ErrorCode::TooManyConnections => "too_many_connections",
            ErrorCode::ResumeFailed => "resume_failed",
            ErrorCode::UnknownCall => "unknown_call",
            ErrorCode::CallExists => "call_exists",
            ErrorCode::InvalidState => "invalid_state",
            ErrorCode::UnknownParticipant => "unknown_participant",
            ErrorCode::AlreadyInCall => "already_in_call",
            ErrorCode::CallFull => "call_full",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Internal => "internal",
        }
    }
}

/// Why a message could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The message is larger than [`MAX_MESSAGE_SIZE`].
    #[error("message of {0} bytes is larger than the limit of {MAX_MESSAGE_SIZE}")]
    TooLarge(usize),
    /// Not a JSON object.
    #[error("message is not a JSON object: {0}")]
    Malformed(serde_json::Error),
    /// No `v` field.
    #[error("message has no protocol version `v`")]
    MissingVersion,
    /// A `v` this crate does not speak.
    #[error("protocol version {0} is not supported (this side speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion(u64),
    /// No `type` field.
    #[error("message has no `type`")]
    MissingType,
    /// A `type` this crate does not know.
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    /// A known `type` whose fields are wrong or missing.
    #[error("invalid {kind} message: {source}")]
    Invalid {
        /// The message type.
        kind: String,
        /// What serde found wrong.
        source: serde_json::Error,
    },
}

impl DecodeError {
    /// The error code to report to the peer that sent the bad message.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::TooLarge(_) => ErrorCode::TooLarge,
            DecodeError::UnsupportedVersion(_) => ErrorCode::UnsupportedVersion,
            DecodeError::UnknownType(_) => ErrorCode::UnknownType,
            DecodeError::Malformed(_)
            | DecodeError::MissingVersion
            | DecodeError::MissingType
            | DecodeError::Invalid { .. } => ErrorCode::Malformed,
        }
    }
}

/// Names of message types, for telling an unknown type from a bad known one.
trait MessageTypes {
    const TYPES: &'static [&'static str];
}

/// Every client message `type`, in declaration order.
pub const CLIENT_MESSAGE_TYPES: &[&str] = &[
    "auth",
    "start_call",
    "join",
    "accept",
    "reject",
    "hang_up",
    "hold",
    "resume",
    "mute",
    "unmute",
    "start_video",
    "stop_video",
    "add_participant",
    "remove_participant",
    "admit",
    "media",
    "video_preferences",
    "ping",
    "send_dtmf",
];

/// Every server message `type`, in declaration order.
pub const SERVER_MESSAGE_TYPES: &[&str] = &[
    "authenticated",
    "incoming_call",
    "call_state",
    "roster",
    "participant",
    "participant_left",
    "mute_state",
    "dominant_speakers",
    "media",
    "video_slots",
    "error",
    "pong",
    "goodbye",
    "dtmf",
];

impl MessageTypes for ClientMessage {
    const TYPES: &'static [&'static str] = CLIENT_MESSAGE_TYPES;
}

impl MessageTypes for ServerMessage {
    const TYPES: &'static [&'static str] = SERVER_MESSAGE_TYPES;
}

impl ClientMessage {
    /// Decodes one message.
    ///
    /// # Errors
    /// A [`DecodeError`] saying what is wrong; [`DecodeError::code`] gives the code to
    /// send back.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode(bytes)
    }

    /// Encodes the message as JSON with the protocol version.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// The message's `type`, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        let i = match self {
            ClientMessage::Auth { .. } => 0,
            ClientMessage::StartCall { .. } => 1,
            ClientMessage::Join { .. } => 2,
            ClientMessage::Accept { .. } => 3,
            ClientMessage::Reject { .. } => 4,
            ClientMessage::HangUp { .. } => 5,
            ClientMessage::Hold { .. } => 6,
            ClientMessage::Resume { .. } => 7,
            ClientMessage::Mute { .. } => 8,
            ClientMessage::Unmute { .. } => 9,
            ClientMessage::StartVideo { .. } => 10,
            ClientMessage::StopVideo { .. } => 11,
            ClientMessage::AddParticipant { .. } => 12,
            ClientMessage::RemoveParticipant { .. } => 13,
            ClientMessage::Admit { .. } => 14,
            ClientMessage::Media { .. } => 15,
            ClientMessage::VideoPreferences { .. } => 16,
            ClientMessage::Ping { .. } => 17,
            ClientMessage::SendDtmf { .. } => 18,
        };
        Self::TYPES[i]
    }
}

impl ServerMessage {
    /// Decodes one message.
    ///
    /// # Errors
    /// A [`DecodeError`] saying what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode(bytes)
    }

    /// Encodes the message as JSON with the protocol version.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// The message's `type`, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        let i = match self {
            ServerMessage::Authenticated { .. } => 0,
            ServerMessage::IncomingCall { .. } => 1,
            ServerMessage::CallState { .. } => 2,
            ServerMessage::Roster { .. } => 3,
            ServerMessage::Participant { .. } => 4,
            ServerMessage::ParticipantLeft { .. } => 5,
            ServerMessage::MuteState { .. } => 6,
            ServerMessage::DominantSpeakers { .. } => 7,
            ServerMessage::Media { .. } => 8,
            ServerMessage::VideoSlots { .. } => 9,
            ServerMessage::Error { .. } => 10,
            ServerMessage::Pong { .. } => 11,
            ServerMessage::Goodbye { .. } => 12,
            ServerMessage::Dtmf { .. } => 13,
        };
        Self::TYPES[i]
    }
}

impl EndReason {
    /// Builds a reason.
    pub fn new(code: u16, subcode: u32, message: &str) -> Self {
        EndReason {
            code,
            subcode,
            message: message.to_owned(),
        }
    }

    /// The participant hung up.
    pub fn normal() -> Self {
        Self::new(0, 0, "call ended")
    }
    /// Someone ended the call for everyone.
    pub fn ended_for_everyone() -> Self {
        Self::new(0, 5000, "call ended for everyone")
    }
    /// Another participant removed this one.
    pub fn removed() -> Self {
        Self::new(0, 5300, "removed from the call by another participant")
    }
    /// Another device of the same user answered.
    pub fn answered_elsewhere() -> Self {
        Self::new(0, 5100, "answered on another device")
    }
    /// The other side of a 1:1 call hung up.
    pub fn remote_hung_up() -> Self {
        Self::new(0, 5001, "the other participant hung up")
    }
    /// The session was resumed on a newer connection, which replaces this one.
    pub fn resumed_elsewhere() -> Self {
        Self::new(0, 5200, "session resumed on another connection")
    }
    /// Nobody answered before the ring timeout.
    pub fn no_answer() -> Self {
        Self::new(408, 0, "no answer")
    }
    /// The client's connection dropped and was not resumed within the grace period.
    pub fn connection_lost() -> Self {
        Self::new(408, 4100, "connection lost and not resumed in time")
    }
    /// The callee has no connected client.
    pub fn unavailable() -> Self {
        Self::new(480, 0, "the callee is not available")
    }
    /// The callee is busy.
    pub fn busy() -> Self {
        Self::new(486, 0, "busy")
    }
    /// The caller cancelled before the callee answered.
    pub fn cancelled() -> Self {
        Self::new(487, 0, "call cancelled")
    }
    /// The callee declined.
    pub fn declined() -> Self {
        Self::new(603, 0, "call declined")
    }
    /// The request is not allowed (missing scope, call full).
    pub fn forbidden(message: &str) -> Self {
        Self::new(403, 0, message)
    }
    /// The group call has reached its participant limit.
    pub fn call_full() -> Self {
        Self::new(403, 4030, "the call is full")
    }
    /// The target is not known.
    pub fn not_found() -> Self {
        Self::new(404, 0, "no such participant")
    }
    /// Media could not be set up or failed.
    pub fn media_failure() -> Self {
        Self::new(410, 0, "media failure")
    }
    /// The server failed.
    pub fn server_error() -> Self {
        Self::new(500, 0, "server error")
    }
    /// The server is shutting down.
    pub fn shutting_down() -> Self {
        Self::new(500, 5030, "server shutting down")
    }
    /// The identity's tokens were revoked.
    pub fn revoked() -> Self {
        Self::new(403, 4032, "access revoked")
    }
    /// Someone waiting in the lobby was refused.
    pub fn lobby_refused() -> Self {
        Self::new(403, 5310, "not admitted from the lobby")
    }
}

/// The envelope every message travels in.
#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    v: u32,
    #[serde(flatten)]
    msg: T,
}

/// The fields checked before the body: version and type.
#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    v: Option<u64>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

fn decode<T: DeserializeOwned + MessageTypes>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() > MAX_MESSAGE_SIZE {
        return Err(DecodeError::TooLarge(bytes.len()));
    }
    // serde would read a struct from a JSON array too; the protocol only has objects.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        let not_object =
            serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(bytes)
                .err()
                .unwrap_or_else(|| serde::de::Error::custom("expected a JSON object"));
        return Err(DecodeError::Malformed(not_object));
    }
    // Read version and type first so that errors say what went wrong, rather than
    // serde's "unknown variant" for a message from a newer peer.
    let header: Header = serde_json::from_slice(bytes).map_err(DecodeError::Malformed)?;
    match header.v {
        None => return Err(DecodeError::MissingVersion),
        Some(v) if v != u64::from(PROTOCOL_VERSION) => {
            return Err(DecodeError::UnsupportedVersion(v));
        }
        Some(_) => {}
    }
    let kind = header.kind.ok_or(DecodeError::MissingType)?;
    if !T::TYPES.contains(&kind.as_str()) {
        return Err(DecodeError::UnknownType(kind));
    }
    // The body is read without the envelope: `v` is just an unknown field to it, and
    // skipping serde's flatten saves buffering the whole message a second time.
    serde_json::from_slice(bytes).map_err(|source| DecodeError::Invalid { kind, source })
}

fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    let envelope = Envelope {
        v: PROTOCOL_VERSION,
        msg,
    };
    // Serializing these types cannot fail: every map key is a string and no
    // Serialize impl of ours returns an error.
    serde_json::to_vec(&envelope).expect("protocol messages always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_carries_version() {
        let msg = ClientMessage::HangUp {
            call_id: CallId::new("c1").unwrap(),
            for_everyone: true,
        };
        let bytes = msg.encode();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.contains("\"v\":1"), "{text}");
        assert!(text.contains("\"type\":\"hang_up\""), "{text}");
        assert_eq!(ClientMessage::decode(&bytes).unwrap(), msg);
        assert_eq!(msg.kind(), "hang_up");
    }

    #[test]
    fn tolerates_unknown_fields() {
        let msg =
            ClientMessage::decode(br#"{"v":1,"type":"ping","seq":7,"future":{"x":1}}"#).unwrap();
        assert_eq!(msg, ClientMessage::Ping { seq: 7 });
    }

    #[test]
    fn typed_errors() {
        assert!(matches!(
            ClientMessage::decode(b"{"),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            ClientMessage::decode(b"[1]"),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            ClientMessage::decode(br#"{"type":"ping"}"#),
            Err(DecodeError::MissingVersion)
        ));
        assert!(matches!(
            ClientMessage::decode(br#"{"v":2,"type":"ping"}"#),
            Err(DecodeError::UnsupportedVersion(2))
        ));
        assert!(matches!(
            ClientMessage::decode(br#"{"v":1}"#),
            Err(DecodeError::MissingType)
        ));
        assert!(matches!(
            ClientMessage::decode(br#"{"v":1,"type":"teleport"}"#),
            Err(DecodeError::UnknownType(t)) if t == "teleport"
        ));
        assert!(matches!(
            ClientMessage::decode(br#"{"v":1,"type":"ping"}"#),
            Err(DecodeError::Invalid { kind, .. }) if kind == "ping"
        ));
        assert!(matches!(
            ClientMessage::decode(br#"{"v":1,"type":"mute","call_id":"bad id"}"#),
            Err(DecodeError::Invalid { .. })
        ));
        let big = vec![b' '; MAX_MESSAGE_SIZE + 1];
        assert!(matches!(
            ClientMessage::decode(&big),
            Err(DecodeError::TooLarge(_))
        ));
    }

    #[test]
    fn error_code_names_match_serde() {
        let codes = [
            ErrorCode::Malformed,
            ErrorCode::UnknownType,
            ErrorCode::NotAuthenticated,
            ErrorCode::CallFull,
            ErrorCode::RateLimited,
            ErrorCode::Internal,
        ];
        for c in codes {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
    }

    #[test]
    fn kinds_match_serde_tags() {
        let msgs = [
            ServerMessage::Pong { seq: 1 },
            ServerMessage::Goodbye {
                reason: EndReason::shutting_down(),
            },
        ];
        for m in msgs {
            let v: serde_json::Value = serde_json::from_slice(&m.encode()).unwrap();
            assert_eq!(v["type"], m.kind());
        }
    }
}
