//! The server's call controller: every connection, session, call and roster, sans IO.
//!
//! The controller is the one place where calls are decided. The server feeds it what
//! its connections receive and drains what it wants sent; it never touches a socket or
//! a clock itself:
//!
//! ```
//! use std::time::{Duration, Instant, SystemTime};
//! use ringwire_signaling::controller::{CallController, ConnectionId, ControllerConfig};
//! use ringwire_signaling::token::{Scope, Scopes, TokenKey};
//! use ringwire_signaling::{ClientMessage, UserId};
//!
//! let key = TokenKey::new(&[7; 32]).unwrap();
//! let now = Instant::now();
//! let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
//! let mut controller = CallController::new(ControllerConfig::new(key.clone(), 1, now, wall));
//!
//! let alice = UserId::new("alice").unwrap();
//! let token = key.issue(&alice, Scopes::from(Scope::Voip), wall, Duration::from_secs(3600));
//! let conn = ConnectionId(1);
//! controller.handle_connect(conn, now);
//! controller.handle_message(conn, ClientMessage::Auth { token, resume: None, client: Default::default() }, now);
//!
//! // Drain rule: after every input, poll every output until empty.
//! while let Some(transmit) = controller.poll_transmit() {
//!     println!("to {:?}: {}", transmit.connection, transmit.message.kind());
//! }
//! while let Some(command) = controller.poll_command() {
//!     println!("{command:?}");
//! }
//! let _next_wakeup = controller.poll_timeout();
//! ```
//!
//! # Rules
//! - Time is passed in (`now`); wall-clock time for token expiry is derived from the
//!   anchor in [`ControllerConfig`], so virtual time moves token expiry too.
//! - After every `handle_*` call, drain [`CallController::poll_transmit`] and
//!   [`CallController::poll_command`] before the next one.
//! - Bad requests never change state: they get a [`ServerMessage::Error`] and are
//!   counted in [`ControllerStats`].
//!
//! # A participant's call state
//!
//! | from | event | to |
//! |---|---|---|
//! | (none) | `start_call` | `Ringing` while a target rings, `Connected` once one answers |
//! | (none) | rung by a caller | `Incoming` (client side) |
//! | (none) | rung by a phone ([`CallController::start_gateway_call`]) | `Incoming`; accepting answers the phone's leg |
//! | `Incoming` | `accept` | `Connected` |
//! | (none) | `join` | `Connected`, or `InLobby` in a lobby call |
//! | `InLobby` | admitted | `Connected` |
//! | `Ringing` | a phone target sends early media | `EarlyMedia` |
//! | `Connected` | `hold` / the 1:1 peer holds | `LocalHold` / `RemoteHold` |
//! | `LocalHold`, `RemoteHold` | `resume` / the peer resumes | `Connected` |
//! | any | hang up, removed, rejected, ring timeout, call ended, grace over | `Disconnected` with an [`EndReason`] |

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use crate::id::{CallId, GroupId, Identifier, PhoneNumber, UserId};
use crate::protocol::{
    CallState, ClientKind, ClientMessage, EndReason, ErrorCode, JoinOptions, MediaPayload,
    ParticipantInfo, ParticipantState, ServerMessage, VideoKind, VideoSize, VideoSlot, VideoStream,
};
use crate::rng::Rng;
use crate::token::{Scope, TokenError, TokenKey};

/// Identifies one transport connection; the driver chooses it and never reuses one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionId(pub u64);

/// Settings of a [`CallController`].
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Verifies access tokens.
    pub token_key: TokenKey,
    /// Seeds resume tokens; production drivers take it from the OS random source.
    pub seed: u64,
    /// A monotonic instant and the wall-clock time at that instant, from which the
    /// controller derives wall-clock time for token expiry.
    pub clock_anchor: (Instant, SystemTime),
    /// How long a target rings before the invitation ends with 408.
    pub ring_timeout: Duration,
    /// How long a session whose connection dropped stays in its calls.
    pub resume_grace: Duration,
    /// How long a new connection may take to authenticate before it is closed.
    pub auth_timeout: Duration,
    /// Most participants in one call, the caller included.
    pub max_participants: usize,
    /// Most sessions (devices) one user may have at once, resumable ones included.
    pub max_sessions_per_user: usize,
}

impl ControllerConfig {
    /// Defaults: 30 s ring timeout and grace, 10 s to authenticate, 350 participants,
    /// 10 sessions per user.
    pub fn new(token_key: TokenKey, seed: u64, now: Instant, wall: SystemTime) -> Self {
        ControllerConfig {
            token_key,
            seed,
            clock_anchor: (now, wall),
            ring_timeout: Duration::from_secs(30),
            resume_grace: Duration::from_secs(30),
            auth_timeout: Duration::from_secs(10),
            max_participants: 350,
            max_sessions_per_user: 10,
        }
    }
}

/// A message for one connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Transmit {
    /// Where to send it.
    pub connection: ConnectionId,
    /// What to send.
    pub message: ServerMessage,
}

/// Something for the driver, the media plane or the gateway to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Close this connection after sending what is queued for it.
    Close {
        /// The connection.
        connection: ConnectionId,
        /// Why, for logs and the close frame.
        reason: EndReason,
    },
    /// For the media plane.
    Media(MediaCommand),
    /// For the gateway serving phone numbers and the echo service.
    Gateway(GatewayCommand),
}

/// What the media plane must do for calls.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaCommand {
    /// A participant is in the call now and needs media (a user once connected, a
    /// phone or echo leg once answered).
    Join {
        /// The call.
        call_id: CallId,
        /// Who.
        participant: Identifier,
        /// What kind of client it is (per-kind video limits).
        client: ClientKind,
    },
    /// A participant left: send it nothing more, immediately.
    Leave {
        /// The call.
        call_id: CallId,
        /// Who.
        participant: Identifier,
    },
    /// What a participant may send and receive changed.
    Update {
        /// The call.
        call_id: CallId,
        /// Who.
        participant: Identifier,
        /// Muted participants are not mixed.
        muted: bool,
        /// Participants on hold neither send nor receive.
        on_hold: bool,
        /// The video streams it sends.
        video: Vec<VideoKind>,
    },
    /// A participant's video wishes: at most `max_videos` cameras, `pinned` first.
    VideoPreferences {
        /// The call.
        call_id: CallId,
        /// Who.
        participant: Identifier,
        /// At most this many camera videos (`None`: the per-kind default).
        max_videos: Option<u8>,
        /// Shown first, if anyone.
        pinned: Option<Identifier>,
    },
    /// A negotiation payload from a participant.
    Payload {
        /// The call.
        call_id: CallId,
        /// Who sent it.
        from: Identifier,
        /// The payload.
        payload: MediaPayload,
    },
    /// The call is over: free its room.
    CloseCall {
        /// The call.
        call_id: CallId,
    },
}

/// What the gateway (PSTN, echo service) must do.
#[derive(Debug, Clone, PartialEq)]
pub enum GatewayCommand {
    /// Ring a phone number or the echo service into a call.
    Dial {
        /// The call.
        call_id: CallId,
        /// The phone number or the echo service.
        target: Identifier,
        /// Who is calling.
        caller: Identifier,
        /// The caller id to present to a phone, when the caller chose one.
        caller_id: Option<PhoneNumber>,
    },
    /// Answer an inbound leg (SIP 200 OK): someone took the phone's call, or the
    /// phone joined a group call.
    Answer {
        /// The call.
        call_id: CallId,
        /// The leg.
        target: Identifier,
    },
    /// Play DTMF digits to a phone leg (RFC 4733 events).
    SendDtmf {
        /// The call.
        call_id: CallId,
        /// The phone leg.
        target: Identifier,
        /// The digits, in order (`0-9`, `*`, `#`, `A-D`).
        digits: String,
    },
    /// Drop a leg the gateway serves. An inbound leg not yet answered is refused with
    /// `reason.code` as its SIP final response (603 declined, 408 no answer, ...).
    HangUp {
        /// The call.
        call_id: CallId,
        /// The leg.
        target: Identifier,
        /// Why.
        reason: EndReason,
    },
}

/// Where an inbound phone call goes (the gateway's dispatch rule for the called number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundTarget {
    /// Ring this user's devices, like a 1:1 call from the phone.
    User(UserId),
    /// Put the phone into this group's running call.
    Group(GroupId),
}

/// What the gateway reports about a leg it serves.
#[derive(Debug, Clone, PartialEq)]
pub enum GatewayEvent {
    /// The far end rings.
    Ringing,
    /// The far end plays early media.
    EarlyMedia,
    /// The far end answered.
    Answered,
    /// The leg is over.
    Ended(EndReason),
}

/// Counters for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControllerStats {
    /// Open connections.
    pub connections: usize,
    /// Sessions, attached or waiting to be resumed.
    pub sessions: usize,
    /// Running calls.
    pub calls: usize,
    /// Participants over all calls, ringing ones included.
    pub participants: usize,
    /// Messages handled, by type.
    pub messages: BTreeMap<&'static str, u64>,
    /// Errors sent, by code.
    pub errors: BTreeMap<&'static str, u64>,
    /// Sessions taken back after a dropped connection.
    pub resumes: u64,
}

/// The server's sans-IO call controller. See the [module docs](self).
#[derive(Debug)]
pub struct CallController {
    config: ControllerConfig,
    rng: Rng,
    connections: BTreeMap<ConnectionId, Connection>,
    sessions: BTreeMap<SessionKey, Session>,
    next_session: u64,
    /// Live sessions per user, to ring every device.
    users: BTreeMap<UserId, BTreeSet<SessionKey>>,
    /// Lookup only; never iterated, so its order cannot leak.
    resume_tokens: HashMap<String, SessionKey>,
    calls: BTreeMap<CallId, Call>,
    /// Tokens issued at or before these times are refused.
    revoked: BTreeMap<UserId, SystemTime>,
    timers: BTreeMap<(Instant, u64), Timer>,
    next_timer: u64,
    transmits: VecDeque<Transmit>,
    commands: VecDeque<Command>,
    stats: ControllerStats,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct SessionKey(u64);

#[derive(Debug)]
struct Connection {
    session: Option<SessionKey>,
}

#[derive(Debug)]
struct Session {
    user: UserId,
    identifier: Identifier,
    connection: Option<ConnectionId>,
    resume_token: String,
    client: ClientKind,
    pstn: bool,
    /// When the connection dropped: the session waits for a resume until grace ends.
    detached_at: Option<Instant>,
    /// Calls this session is a member of (joined, in the lobby, or ringing).
    calls: BTreeSet<CallId>,
}

#[derive(Debug)]
struct Call {
    group: Option<GroupId>,
    /// A 1:1 call ends when either side leaves; adding a third makes it a group call.
    one_to_one: bool,
    lobby: bool,
    /// Whether anyone but the starter has joined; until then, the last failed
    /// invitation ends the call with its reason.
    answered: bool,
    /// The phone that started this call through the gateway, until someone answers
    /// it: its unanswered leg keeps the call alive without a human in it.
    inbound: Option<Identifier>,
    members: BTreeMap<Identifier, Member>,
    /// The media plane's last dominant speakers, for members who join later.
    dominant: Vec<Identifier>,
}

#[derive(Debug)]
struct Member {
    stage: Stage,
    /// The session in the call; `None` for phone and echo legs and for ringing users.
    session: Option<SessionKey>,
    muted: bool,
    on_hold: bool,
    /// The streams it sends, with the size it last announced for each.
    video: Vec<VideoStream>,
    /// What the participant's roster entry last said, to send only changes.
    published: Option<ParticipantInfo>,
    /// The call state this member's client last heard.
    heard: CallState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    /// Being rung, on these sessions of the user (empty for gateway legs).
    Ringing {
        deadline: Instant,
        sessions: BTreeSet<SessionKey>,
        early_media: bool,
    },
    InLobby,
    Joined,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Timer {
    Ring {
        call: CallId,
        target: Identifier,
    },
    Grace {
        session: SessionKey,
    },
    Auth {
        connection: ConnectionId,
        deadline: Instant,
    },
}

impl Member {
    fn new(stage: Stage, session: Option<SessionKey>, options: JoinOptions) -> Self {
        Member {
            stage,
            session,
            muted: options.muted,
            on_hold: false,
            video: joined_video(options),
            published: None,
            heard: CallState::None,
        }
    }

    fn is_joined(&self) -> bool {
        self.stage == Stage::Joined
    }

    fn info(&self, id: &Identifier) -> ParticipantInfo {
        let state = match &self.stage {
            Stage::Ringing {
                early_media: true, ..
            } => ParticipantState::EarlyMedia,
            Stage::Ringing { .. } => ParticipantState::Ringing,
            Stage::InLobby => ParticipantState::InLobby,
            Stage::Joined if self.on_hold => ParticipantState::Hold,
            Stage::Joined => ParticipantState::Connected,
        };
        ParticipantInfo {
            id: id.clone(),
            state,
            muted: self.muted,
            speaking: false,
            video: self.video.clone(),
            end_reason: None,
        }
    }
}

impl Call {
    /// Users who have joined. Ringing users are not there yet, and people waiting in
    /// the lobby cannot keep a call alive: nobody would be left to admit them.
    fn humans_present(&self) -> usize {
        self.members
            .iter()
            .filter(|(id, m)| id.is_user() && m.is_joined())
            .count()
    }

    /// Sessions that see the roster: users who have joined, with their sessions.
    fn audience(&self) -> impl Iterator<Item = (&Identifier, SessionKey)> {
        self.members
            .iter()
            .filter(|(_, m)| m.is_joined())
            .filter_map(|(id, m)| Some((id, m.session?)))
    }
}

/// The streams of someone joining with `options`: the camera, size not yet known.
fn joined_video(options: JoinOptions) -> Vec<VideoStream> {
    if options.video {
        vec![VideoStream {
            kind: VideoKind::Camera,
            size: None,
        }]
    } else {
        Vec::new()
    }
}

/// Queues `message` for `session` when it has a connection; a detached session gets
/// a full snapshot when it resumes, so dropping what it misses is correct.
fn send_to(
    sessions: &BTreeMap<SessionKey, Session>,
    transmits: &mut VecDeque<Transmit>,
    session: SessionKey,
    message: ServerMessage,
) {
    if let Some(connection) = sessions.get(&session).and_then(|s| s.connection) {
        transmits.push_back(Transmit {
            connection,
            message,
        });
    }
}

/// The call state `id`'s client should show, or `None` when it has no client in the call.
fn state_of(call: &Call, id: &Identifier, member: &Member) -> Option<CallState> {
    member.session?;
    Some(match member.stage {
        Stage::Ringing { .. } => return None,
        Stage::InLobby => CallState::InLobby,
        Stage::Joined if member.on_hold => CallState::LocalHold,
        Stage::Joined => {
            let others = || call.members.iter().filter(move |(other, _)| *other != id);
            if !call.answered {
                if others().any(|(_, m)| {
                    matches!(
                        m.stage,
                        Stage::Ringing {
                            early_media: true,
                            ..
                        }
                    )
                }) {
                    CallState::EarlyMedia
                } else if others().any(|(_, m)| matches!(m.stage, Stage::Ringing { .. })) {
                    CallState::Ringing
                } else {
                    CallState::Connecting
                }
            } else if call.one_to_one && others().any(|(_, m)| m.is_joined() && m.on_hold) {
                CallState::RemoteHold
            } else {
                CallState::Connected
            }
        }
    })
}

impl CallController {
    /// Creates a controller with no connections and no calls.
    pub fn new(config: ControllerConfig) -> Self {
        CallController {
            rng: Rng::new(config.seed),
            config,
            connections: BTreeMap::new(),
            sessions: BTreeMap::new(),
            next_session: 0,
            users: BTreeMap::new(),
            resume_tokens: HashMap::new(),
            calls: BTreeMap::new(),
            revoked: BTreeMap::new(),
            timers: BTreeMap::new(),
            next_timer: 0,
            transmits: VecDeque::new(),
            commands: VecDeque::new(),
            stats: ControllerStats::default(),
        }
    }

    /// A transport connection opened; it must authenticate within the auth timeout.
    pub fn handle_connect(&mut self, connection: ConnectionId, now: Instant) {
        if self.connections.contains_key(&connection) {
            tracing::debug!(?connection, "connection id reused; ignoring");
            return;
        }
        self.connections
            .insert(connection, Connection { session: None });
        let deadline = now + self.config.auth_timeout;
        self.schedule(
            deadline,
            Timer::Auth {
                connection,
                deadline,
            },
        );
    }

    /// A transport connection closed. Its session waits for a resume until the grace
    /// period ends, and stays in its calls meanwhile.
    pub fn handle_disconnect(&mut self, connection: ConnectionId, now: Instant) {
        let Some(conn) = self.connections.remove(&connection) else {
            return;
        };
        let Some(key) = conn.session else { return };
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        if session.connection != Some(connection) {
            return; // Already taken over by a newer connection.
        }
        session.connection = None;
        session.detached_at = Some(now);
        if let Some(live) = self.users.get_mut(&session.user) {
            live.remove(&key);
        }
        tracing::debug!(user = %session.user, "session detached; waiting for resume");
        self.schedule(
            now + self.config.resume_grace,
            Timer::Grace { session: key },
        );
    }

    /// Decodes and handles bytes a connection received. Undecodable bytes get an
    /// error message and change nothing.
    pub fn handle_bytes(&mut self, connection: ConnectionId, bytes: &[u8], now: Instant) {
        if !self.connections.contains_key(&connection) {
            tracing::debug!(?connection, "bytes on unknown connection; ignoring");
            return;
        }
        match ClientMessage::decode(bytes) {
            Ok(message) => self.handle_message(connection, message, now),
            Err(e) => {
                tracing::debug!(?connection, error = %e, "undecodable message");
                self.error(connection, e.code(), &e.to_string(), None);
            }
        }
    }

    /// Handles one message from a connection.
    pub fn handle_message(
        &mut self,
        connection: ConnectionId,
        message: ClientMessage,
        now: Instant,
    ) {
        let Some(conn) = self.connections.get(&connection) else {
            tracing::debug!(?connection, "message on unknown connection; ignoring");
            return;
        };
        *self.stats.messages.entry(message.kind()).or_default() += 1;
        let Some(key) = conn.session else {
            match message {
                ClientMessage::Auth {
                    token,
                    resume,
                    client,
                } => {
                    self.authenticate(connection, &token, resume.as_deref(), client, now);
                }
                other => {
                    let text = format!("`{}` before `auth`", other.kind());
                    self.error(connection, ErrorCode::NotAuthenticated, &text, None);
                }
            }
            return;
        };
        use ClientMessage as M;
        let result = match message {
            M::Auth { .. } => Err(Refusal::new(
                ErrorCode::AlreadyAuthenticated,
                "already authenticated",
            )),
            M::Ping { seq } => {
                self.transmits.push_back(Transmit {
                    connection,
                    message: ServerMessage::Pong { seq },
                });
                Ok(())
            }
            M::StartCall {
                call_id,
                targets,
                options,
                alternate_caller_id,
            } => self.start_call(key, call_id, targets, options, alternate_caller_id, now),
            M::Join {
                group_id,
                options,
                lobby,
            } => self.join(key, group_id, options, lobby),
            M::Accept { call_id, options } => self
                .accept(key, &call_id, options)
                .map_err(|r| r.on(call_id)),
            M::Reject { call_id } => self.reject(key, &call_id).map_err(|r| r.on(call_id)),
            M::HangUp {
                call_id,
                for_everyone,
            } => self
                .hang_up(key, &call_id, for_everyone)
                .map_err(|r| r.on(call_id)),
            M::Hold { call_id } => self
                .set_hold(key, &call_id, true)
                .map_err(|r| r.on(call_id)),
            M::Resume { call_id } => self
                .set_hold(key, &call_id, false)
                .map_err(|r| r.on(call_id)),
            M::Mute { call_id } => self
                .set_muted(key, &call_id, true)
                .map_err(|r| r.on(call_id)),
            M::Unmute { call_id } => self
                .set_muted(key, &call_id, false)
                .map_err(|r| r.on(call_id)),
            M::StartVideo {
                call_id,
                kind,
                size,
            } => self.start_video(key, &call_id, kind, size),
            M::StopVideo { call_id, kind } => self
                .stop_video(key, &call_id, kind)
                .map_err(|r| r.on(call_id)),
            M::AddParticipant { call_id, target } => self
                .add_participant(key, &call_id, target, now)
                .map_err(|r| r.on(call_id)),
            M::RemoveParticipant { call_id, target } => self
                .remove_participant(key, &call_id, &target)
                .map_err(|r| r.on(call_id)),
            M::Admit { call_id, target } => self
                .admit(key, &call_id, &target)
                .map_err(|r| r.on(call_id)),
            M::Media { call_id, payload } => self
                .media(key, &call_id, payload)
                .map_err(|r| r.on(call_id)),
            M::SendDtmf { call_id, digits } => self
                .send_dtmf(key, &call_id, digits)
                .map_err(|r| r.on(call_id)),
            M::VideoPreferences {
                call_id,
                max_videos,
                pinned,
            } => self
                .video_preferences(key, &call_id, max_videos, pinned)
                .map_err(|r| r.on(call_id)),
        };
        if let Err(refusal) = result {
            self.error(connection, refusal.code, &refusal.message, refusal.call_id);
        }
    }

    /// Handles what the gateway reports about a phone or echo leg.
    pub fn handle_gateway_event(
        &mut self,
        call_id: &CallId,
        target: &Identifier,
        event: GatewayEvent,
        _now: Instant,
    ) {
        if target.is_user() {
            // Users join through their own sessions; a gateway claiming one is wrong.
            tracing::debug!(%call_id, %target, ?event, "gateway event for a user; ignoring");
            return;
        }
        let Some(member) = self
            .calls
            .get_mut(call_id)
            .and_then(|c| c.members.get_mut(target))
        else {
            tracing::debug!(%call_id, %target, ?event, "gateway event for a leg we do not have");
            return;
        };
        match event {
            GatewayEvent::Ringing => {}
            GatewayEvent::EarlyMedia => {
                if let Stage::Ringing { early_media, .. } = &mut member.stage {
                    *early_media = true;
                }
            }
            GatewayEvent::Answered => {
                if matches!(member.stage, Stage::Ringing { .. }) {
                    member.stage = Stage::Joined;
                    if let Some(call) = self.calls.get_mut(call_id) {
                        call.answered = true;
                    }
                    self.commands.push_back(Command::Media(MediaCommand::Join {
                        call_id: call_id.clone(),
                        participant: target.clone(),
                        client: ClientKind::Native,
                    }));
                }
            }
            GatewayEvent::Ended(reason) => {
                self.remove_member(call_id, target, &reason, &reason, Departure::ByGateway);
                return;
            }
        }
        self.sync(call_id, std::slice::from_ref(target));
    }

    /// A phone called a number the server owns; the gateway's dispatch sends it to
    /// `target`. For [`InboundTarget::User`] a 1:1 call `call_id` (chosen by the
    /// gateway, unique) rings every device of the user with the phone as the caller;
    /// the first to accept answers the leg ([`GatewayCommand::Answer`]), a decline or
    /// the ring timeout refuses it ([`GatewayCommand::HangUp`] with 603 or 408). For
    /// [`InboundTarget::Group`] the phone joins the group's running call at once
    /// (lobby or not) and is answered; `call_id` is ignored.
    ///
    /// Returns the call the phone is in.
    ///
    /// # Errors
    /// The end reason to refuse the leg with (its code is the SIP final response):
    /// 480 when the user has no device online or the group call is not running, 486
    /// when this phone is already in that call, 403/4030 when it is full, 500 when
    /// `call_id` is taken.
    pub fn start_gateway_call(
        &mut self,
        call_id: CallId,
        from: Identifier,
        target: InboundTarget,
        now: Instant,
    ) -> Result<CallId, EndReason> {
        if from.is_user() {
            // Users call through their own sessions; a gateway claiming one is wrong.
            return Err(EndReason::forbidden(
                "only gateway legs start gateway calls",
            ));
        }
        match target {
            InboundTarget::User(user) => {
                if self.calls.contains_key(&call_id) || call_id.group().is_some() {
                    return Err(EndReason::server_error());
                }
                if self.users.get(&user).is_none_or(BTreeSet::is_empty) {
                    return Err(EndReason::unavailable());
                }
                let callee = Identifier::User(user);
                let mut call = Call {
                    group: None,
                    one_to_one: true,
                    lobby: false,
                    answered: false,
                    inbound: Some(from.clone()),
                    dominant: Vec::new(),
                    members: BTreeMap::new(),
                };
                call.members.insert(
                    from.clone(),
                    Member::new(Stage::Joined, None, JoinOptions::default()),
                );
                self.calls.insert(call_id.clone(), call);
                if let Err(reason) = self.invite(&call_id, &from, callee.clone(), None, false, now)
                {
                    self.calls.remove(&call_id);
                    return Err(reason);
                }
                self.sync(&call_id, &[from, callee]);
                Ok(call_id)
            }
            InboundTarget::Group(group) => {
                let call_id = CallId::for_group(&group);
                let Some(call) = self.calls.get_mut(&call_id) else {
                    return Err(EndReason::new(480, 0, "the group call is not running"));
                };
                if call.members.contains_key(&from) {
                    return Err(EndReason::busy());
                }
                if call.members.len() >= self.config.max_participants {
                    return Err(EndReason::call_full());
                }
                // A phone in a call makes it more than 1:1.
                call.one_to_one = false;
                call.members.insert(
                    from.clone(),
                    Member::new(Stage::Joined, None, JoinOptions::default()),
                );
                self.answer_inbound(&call_id, &from);
                self.sync(&call_id, &[from]);
                Ok(call_id)
            }
        }
    }

    /// Answers an inbound leg and puts the phone into the media room.
    fn answer_inbound(&mut self, call_id: &CallId, phone: &Identifier) {
        self.commands
            .push_back(Command::Gateway(GatewayCommand::Answer {
                call_id: call_id.clone(),
                target: phone.clone(),
            }));
        self.commands.push_back(Command::Media(MediaCommand::Join {
            call_id: call_id.clone(),
            participant: phone.clone(),
            client: ClientKind::Native,
        }));
    }

    /// A phone leg pressed keys: everyone else in the call who sees the roster hears
    /// of it ([`ServerMessage::Dtmf`]). Digits outside `0-9*#A-D` are dropped.
    pub fn handle_gateway_dtmf(
        &mut self,
        call_id: &CallId,
        from: &Identifier,
        digits: &str,
        _now: Instant,
    ) {
        if !crate::protocol::is_dtmf(digits) {
            tracing::debug!(%call_id, %from, "invalid DTMF from the gateway; dropped");
            return;
        }
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        if !call.members.get(from).is_some_and(Member::is_joined) {
            tracing::debug!(%call_id, %from, "DTMF from someone not in the call; dropped");
            return;
        }
        for (other, session) in call.audience() {
            if other != from {
                let message = ServerMessage::Dtmf {
                    call_id: call_id.clone(),
                    from: from.clone(),
                    digits: digits.to_owned(),
                };
                send_to(&self.sessions, &mut self.transmits, session, message);
            }
        }
    }

    /// Sends a media negotiation payload from the media plane to a participant.
    pub fn send_media(&mut self, call_id: &CallId, to: &Identifier, payload: MediaPayload) {
        let Some(session) = self.member_session(call_id, to) else {
            tracing::debug!(%call_id, %to, "media payload for someone not in the call");
            return;
        };
        let message = ServerMessage::Media {
            call_id: call_id.clone(),
            payload,
        };
        send_to(&self.sessions, &mut self.transmits, session, message);
    }

    /// The session of a call member, while it has one (phone and echo legs have none).
    fn member_session(&self, call_id: &CallId, id: &Identifier) -> Option<SessionKey> {
        self.calls
            .get(call_id)
            .and_then(|c| c.members.get(id))
            .and_then(|m| m.session)
    }

    /// Tells a participant what its video receive slots show.
    pub fn send_video_slots(&mut self, call_id: &CallId, to: &Identifier, slots: Vec<VideoSlot>) {
        let Some(session) = self.member_session(call_id, to) else {
            tracing::debug!(%call_id, %to, "video slots for someone not in the call");
            return;
        };
        let message = ServerMessage::VideoSlots {
            call_id: call_id.clone(),
            slots,
        };
        send_to(&self.sessions, &mut self.transmits, session, message);
    }

    /// Tells a participant the media plane refused its request (for example an SDP
    /// offer it could not use); the participant stays in the call.
    pub fn send_media_error(&mut self, call_id: &CallId, to: &Identifier, message: &str) {
        let Some(session) = self.member_session(call_id, to) else {
            return;
        };
        let message = ServerMessage::Error {
            code: ErrorCode::Malformed,
            message: message.to_owned(),
            call_id: Some(call_id.clone()),
        };
        send_to(&self.sessions, &mut self.transmits, session, message);
    }

    /// Publishes the dominant speakers of a call, most dominant first.
    pub fn set_dominant_speakers(&mut self, call_id: &CallId, speakers: Vec<Identifier>) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        call.dominant.clone_from(&speakers);
        for (_, session) in call.audience() {
            let message = ServerMessage::DominantSpeakers {
                call_id: call_id.clone(),
                speakers: speakers.clone(),
            };
            send_to(&self.sessions, &mut self.transmits, session, message);
        }
    }

    /// The media plane lost a participant's media: it leaves the call with 410.
    pub fn handle_media_failure(&mut self, call_id: &CallId, participant: &Identifier) {
        let reason = EndReason::media_failure();
        self.remove_member(call_id, participant, &reason, &reason, Departure::Left);
    }

    /// Refuses `user`'s tokens issued at or before `at`, and ends the sessions the
    /// user has now: their calls end with [`EndReason::revoked`] and their connections
    /// get a goodbye and are closed.
    pub fn revoke(&mut self, user: &UserId, at: SystemTime, _now: Instant) {
        let entry = self.revoked.entry(user.clone()).or_insert(at);
        *entry = (*entry).max(at);
        let keys: Vec<SessionKey> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.user == *user)
            .map(|(k, _)| *k)
            .collect();
        let reason = EndReason::revoked();
        for key in keys {
            self.end_session(key, &reason);
            if let Some(connection) = self.sessions.get(&key).and_then(|s| s.connection) {
                let message = ServerMessage::Goodbye {
                    reason: reason.clone(),
                };
                self.transmits.push_back(Transmit {
                    connection,
                    message,
                });
                self.commands.push_back(Command::Close {
                    connection,
                    reason: reason.clone(),
                });
                self.connections.remove(&connection);
            }
            self.forget_session(key);
        }
    }

    /// Ends every call with [`EndReason::shutting_down`], says goodbye to every
    /// connection and closes it; the controller is empty afterwards.
    pub fn shut_down(&mut self, _now: Instant) {
        let calls: Vec<CallId> = self.calls.keys().cloned().collect();
        for call_id in calls {
            self.end_call(
                &call_id,
                EndReason::shutting_down(),
                EndReason::shutting_down(),
            );
        }
        let reason = EndReason::shutting_down();
        for connection in std::mem::take(&mut self.connections).into_keys() {
            let message = ServerMessage::Goodbye {
                reason: reason.clone(),
            };
            self.transmits.push_back(Transmit {
                connection,
                message,
            });
            self.commands.push_back(Command::Close {
                connection,
                reason: reason.clone(),
            });
        }
        self.sessions.clear();
        self.users.clear();
        self.resume_tokens.clear();
        self.timers.clear();
    }

    /// Handles timers that are due; safe to call early.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let timer = entry.remove();
            tracing::trace!(?timer, "timer fired");
            match timer {
                Timer::Ring { call, target } => self.ring_timeout(&call, &target, now),
                Timer::Grace { session } => self.grace_over(session, now),
                Timer::Auth {
                    connection,
                    deadline,
                } => {
                    let unauthenticated = self
                        .connections
                        .get(&connection)
                        .is_some_and(|c| c.session.is_none());
                    if unauthenticated && deadline <= now {
                        let reason = EndReason::forbidden("no `auth` in time");
                        self.commands
                            .push_back(Command::Close { connection, reason });
                        self.connections.remove(&connection);
                    }
                }
            }
        }
    }

    /// The next message to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next command for the driver, the media plane or the gateway.
    #[must_use]
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// When [`CallController::handle_timeout`] should next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first_key_value().map(|((at, _), _)| *at)
    }

    /// Counters for metrics.
    pub fn stats(&self) -> ControllerStats {
        let mut stats = self.stats.clone();
        stats.connections = self.connections.len();
        stats.sessions = self.sessions.len();
        stats.calls = self.calls.len();
        stats.participants = self.calls.values().map(|c| c.members.len()).sum();
        stats
    }

    /// The participants of a call and their roster entries, for inspection and tests.
    pub fn roster(&self, call_id: &CallId) -> Option<Vec<ParticipantInfo>> {
        let call = self.calls.get(call_id)?;
        Some(call.members.iter().map(|(id, m)| m.info(id)).collect())
    }

    /// The ids of running calls.
    pub fn calls(&self) -> impl Iterator<Item = &CallId> {
        self.calls.keys()
    }

    /// Checks the controller's internal invariants; for tests and fuzzers.
    ///
    /// # Errors
    /// A description of the first broken invariant.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        for (call_id, call) in &self.calls {
            if call.members.len() > self.config.max_participants {
                return Err(format!("{call_id} has {} members", call.members.len()));
            }
            if call.humans_present() == 0 && call.inbound.is_none() {
                return Err(format!("{call_id} runs without a human"));
            }
            for (id, m) in &call.members {
                // One camera or one screen share, of a size the protocol accepts.
                if m.video.len() > 1
                    || m.video
                        .iter()
                        .any(|v| v.size.is_some_and(|s| !s.is_valid()))
                {
                    return Err(format!("{id} in {call_id} sends {:?}", m.video));
                }
                let mut keys: Vec<SessionKey> = m.session.into_iter().collect();
                if let Stage::Ringing { sessions, .. } = &m.stage {
                    keys.extend(sessions.iter().copied());
                }
                if id.is_user() && !matches!(m.stage, Stage::Ringing { .. }) && m.session.is_none()
                {
                    return Err(format!("{id} is in {call_id} without a session"));
                }
                for key in keys {
                    let s = self
                        .sessions
                        .get(&key)
                        .ok_or(format!("{id} in {call_id} has a dead session"))?;
                    if !s.calls.contains(call_id) || Some(&s.identifier) != Some(id) {
                        return Err(format!("session of {id} does not know {call_id}"));
                    }
                }
            }
        }
        for (key, s) in &self.sessions {
            for call_id in &s.calls {
                let m = self
                    .calls
                    .get(call_id)
                    .and_then(|c| c.members.get(&s.identifier))
                    .ok_or(format!("{} thinks it is in {call_id}", s.identifier))?;
                let ringing_here =
                    matches!(&m.stage, Stage::Ringing { sessions, .. } if sessions.contains(key));
                if m.session != Some(*key) && !ringing_here {
                    return Err(format!(
                        "{} in {call_id} from another session",
                        s.identifier
                    ));
                }
            }
            if let Some(c) = s.connection
                && self.connections.get(&c).and_then(|c| c.session) != Some(*key)
            {
                return Err(format!(
                    "session of {} has a stale connection",
                    s.identifier
                ));
            }
        }
        Ok(())
    }
}

/// A request the controller refuses, reported to the sender as an error message.
#[derive(Debug)]
struct Refusal {
    code: ErrorCode,
    message: String,
    call_id: Option<CallId>,
}

impl Refusal {
    fn new(code: ErrorCode, message: &str) -> Self {
        Refusal {
            code,
            message: message.to_owned(),
            call_id: None,
        }
    }

    fn on(mut self, call_id: CallId) -> Self {
        self.call_id = Some(call_id);
        self
    }
}

/// How a member leaves, which decides what the others are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Departure {
    /// Hung up, declined, timed out, lost its connection.
    Left,
    /// Removed by another participant.
    Removed,
    /// The gateway reported the leg over (no hang-up command goes back to it).
    ByGateway,
}

impl CallController {
    fn wall(&self, now: Instant) -> SystemTime {
        let (at, wall) = self.config.clock_anchor;
        match now.checked_duration_since(at) {
            Some(d) => wall + d,
            None => wall - at.duration_since(now),
        }
    }

    fn schedule(&mut self, at: Instant, timer: Timer) {
        self.next_timer += 1;
        self.timers.insert((at, self.next_timer), timer);
    }

    fn error(
        &mut self,
        connection: ConnectionId,
        code: ErrorCode,
        message: &str,
        call_id: Option<CallId>,
    ) {
        *self.stats.errors.entry(code.as_str()).or_default() += 1;
        let message = ServerMessage::Error {
            code,
            message: message.to_owned(),
            call_id,
        };
        self.transmits.push_back(Transmit {
            connection,
            message,
        });
    }

    fn session_of(&self, key: SessionKey) -> Result<&Session, Refusal> {
        // Sessions outlive the messages that name them; a missing one is a bug, but the
        // client only learns that its request failed.
        self.sessions
            .get(&key)
            .ok_or(Refusal::new(ErrorCode::Internal, "session is gone"))
    }

    fn authenticate(
        &mut self,
        connection: ConnectionId,
        token: &str,
        resume: Option<&str>,
        client: ClientKind,
        now: Instant,
    ) {
        let claims = match self.config.token_key.verify(token, self.wall(now)) {
            Ok(claims) => claims,
            Err(e) => {
                let code = match e {
                    TokenError::Expired { .. } => ErrorCode::TokenExpired,
                    _ => ErrorCode::InvalidToken,
                };
                self.refuse_connection(connection, code, &e.to_string());
                return;
            }
        };
        if let Err(e) = claims.require(Scope::Voip) {
            self.refuse_connection(connection, ErrorCode::MissingScope, &e.to_string());
            return;
        }
        if self
            .revoked
            .get(&claims.user)
            .is_some_and(|at| claims.issued_at <= *at)
        {
            self.refuse_connection(connection, ErrorCode::TokenRevoked, "token revoked");
            return;
        }
        let identifier = Identifier::User(claims.user.clone());
        let pstn = claims.require(Scope::Pstn).is_ok();

        // Take back a session whose connection dropped, when the token and user match.
        let resumed = resume
            .and_then(|t| self.resume_tokens.get(t).copied())
            .filter(|key| {
                self.sessions
                    .get(key)
                    .is_some_and(|s| s.user == claims.user)
            });
        if let Some(key) = resumed {
            let Some(session) = self.sessions.get_mut(&key) else {
                return;
            };
            if let Some(old) = session.connection.replace(connection) {
                // A second connection resumed a live session: the newer one wins.
                self.connections.remove(&old);
                let reason = EndReason::resumed_elsewhere();
                self.transmits.push_back(Transmit {
                    connection: old,
                    message: ServerMessage::Goodbye {
                        reason: reason.clone(),
                    },
                });
                self.commands.push_back(Command::Close {
                    connection: old,
                    reason,
                });
            }
            session.detached_at = None;
            session.pstn = pstn;
            let message = ServerMessage::Authenticated {
                user: session.identifier.clone(),
                resume_token: session.resume_token.clone(),
                grace_ms: millis(self.config.resume_grace),
                resumed: true,
            };
            let calls: Vec<CallId> = session.calls.iter().cloned().collect();
            self.users.entry(claims.user).or_default().insert(key);
            if let Some(c) = self.connections.get_mut(&connection) {
                c.session = Some(key);
            }
            self.stats.resumes += 1;
            self.transmits.push_back(Transmit {
                connection,
                message,
            });
            for call_id in calls {
                self.welcome_back(key, &call_id);
            }
            return;
        }

        let sessions = self
            .sessions
            .values()
            .filter(|s| s.user == claims.user)
            .count();
        if sessions >= self.config.max_sessions_per_user {
            let text = format!(
                "at most {} connections per identity",
                self.config.max_sessions_per_user
            );
            self.refuse_connection(connection, ErrorCode::TooManyConnections, &text);
            return;
        }
        self.next_session += 1;
        let key = SessionKey(self.next_session);
        let resume_token = self.rng.hex128();
        self.resume_tokens.insert(resume_token.clone(), key);
        let message = ServerMessage::Authenticated {
            user: identifier.clone(),
            resume_token: resume_token.clone(),
            grace_ms: millis(self.config.resume_grace),
            resumed: false,
        };
        self.sessions.insert(
            key,
            Session {
                user: claims.user.clone(),
                identifier,
                connection: Some(connection),
                resume_token,
                client,
                pstn,
                detached_at: None,
                calls: BTreeSet::new(),
            },
        );
        self.users.entry(claims.user).or_default().insert(key);
        if let Some(c) = self.connections.get_mut(&connection) {
            c.session = Some(key);
        }
        self.transmits.push_back(Transmit {
            connection,
            message,
        });
    }

    /// Sends an error and closes a connection that cannot go on.
    fn refuse_connection(&mut self, connection: ConnectionId, code: ErrorCode, message: &str) {
        self.error(connection, code, message, None);
        self.connections.remove(&connection);
        self.commands.push_back(Command::Close {
            connection,
            reason: EndReason::forbidden(message),
        });
    }

    /// Tells a resumed session where it stands in a call: state, roster, mute.
    fn welcome_back(&mut self, key: SessionKey, call_id: &CallId) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        let Some(session) = self.sessions.get(&key) else {
            return;
        };
        let Some(member) = call.members.get(&session.identifier) else {
            return;
        };
        if let Stage::Ringing { .. } = member.stage {
            let caller = call
                .members
                .iter()
                .find(|(id, m)| m.is_joined() && id.is_user())
                .map(|(id, _)| id.clone())
                .or_else(|| call.inbound.clone());
            if let Some(caller) = caller {
                let message = ServerMessage::IncomingCall {
                    call_id: call_id.clone(),
                    caller,
                    video: false,
                    group_id: call.group.clone(),
                };
                send_to(&self.sessions, &mut self.transmits, key, message);
            }
            return;
        }
        self.welcome(call_id, &session.identifier.clone());
    }

    /// Sends a member who just got into a call its state, the roster, its mute state
    /// and the dominant speakers (they are otherwise sent only when they change).
    fn welcome(&mut self, call_id: &CallId, id: &Identifier) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let state = call.members.get(id).and_then(|m| state_of(call, id, m));
        let participants: Vec<ParticipantInfo> = call
            .members
            .iter()
            .filter(|(other, _)| *other != id)
            .map(|(other, m)| m.info(other))
            .collect();
        let Some(member) = call.members.get_mut(id) else {
            return;
        };
        let Some(session) = member.session else {
            return;
        };
        let muted = member.muted;
        if let Some(state) = state {
            member.heard = state;
        }
        let dominant = call.dominant.clone();
        let mut send = |message| send_to(&self.sessions, &mut self.transmits, session, message);
        if let Some(state) = state {
            send(ServerMessage::CallState {
                call_id: call_id.clone(),
                state,
                end_reason: None,
            });
        }
        send(ServerMessage::Roster {
            call_id: call_id.clone(),
            participants,
        });
        send(ServerMessage::MuteState {
            call_id: call_id.clone(),
            muted,
        });
        if !dominant.is_empty() {
            send(ServerMessage::DominantSpeakers {
                call_id: call_id.clone(),
                speakers: dominant,
            });
        }
    }

    /// Publishes what changed in a call: the roster entries of `dirty` members to
    /// everyone who sees the roster, and each client's call state when it changed.
    fn sync(&mut self, call_id: &CallId, dirty: &[Identifier]) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        for id in dirty {
            let Some(member) = call.members.get_mut(id) else {
                continue;
            };
            let info = member.info(id);
            if member.published.as_ref() == Some(&info) {
                continue;
            }
            member.published = Some(info.clone());
            for (other, session) in call.audience() {
                if other != id {
                    let message = ServerMessage::Participant {
                        call_id: call_id.clone(),
                        participant: info.clone(),
                    };
                    send_to(&self.sessions, &mut self.transmits, session, message);
                }
            }
        }
        let changed: Vec<(Identifier, CallState)> = call
            .members
            .iter()
            .filter_map(|(id, m)| {
                state_of(call, id, m)
                    .filter(|s| *s != m.heard)
                    .map(|s| (id.clone(), s))
            })
            .collect();
        for (id, state) in changed {
            let Some(member) = call.members.get_mut(&id) else {
                continue;
            };
            member.heard = state;
            if let Some(session) = member.session {
                let message = ServerMessage::CallState {
                    call_id: call_id.clone(),
                    state,
                    end_reason: None,
                };
                send_to(&self.sessions, &mut self.transmits, session, message);
            }
        }
    }

    /// The joined member of `call_id` for session `key`.
    fn joined_member(&self, key: SessionKey, call_id: &CallId) -> Result<Identifier, Refusal> {
        let session = self.session_of(key)?;
        let call = self
            .calls
            .get(call_id)
            .ok_or(Refusal::new(ErrorCode::UnknownCall, "no such call"))?;
        match call.members.get(&session.identifier) {
            Some(m) if m.session == Some(key) && m.is_joined() => Ok(session.identifier.clone()),
            Some(m) if m.session == Some(key) => Err(Refusal::new(
                ErrorCode::InvalidState,
                "not admitted to the call yet",
            )),
            _ => Err(Refusal::new(ErrorCode::UnknownCall, "not in this call")),
        }
    }

    fn start_call(
        &mut self,
        key: SessionKey,
        call_id: CallId,
        targets: Vec<Identifier>,
        options: JoinOptions,
        caller_id: Option<PhoneNumber>,
        now: Instant,
    ) -> Result<(), Refusal> {
        let session = self.session_of(key)?;
        let caller = session.identifier.clone();
        let pstn = session.pstn;
        let refuse = |code, text: &str| Err(Refusal::new(code, text).on(call_id.clone()));
        if let Some(call) = self.calls.get(&call_id) {
            if call.members.contains_key(&caller) {
                return refuse(
                    ErrorCode::CallExists,
                    "you are already in a call with this id",
                );
            }
            // Someone else's call: end the caller's half-made call without revealing more.
            let reason = EndReason::new(403, 4031, "call id in use; choose another");
            self.end_for(key, &call_id, reason);
            return Ok(());
        }
        if call_id.group().is_some() {
            return refuse(
                ErrorCode::Forbidden,
                "call ids starting with `group:` are reserved for group calls",
            );
        }
        if targets.is_empty() {
            return refuse(ErrorCode::Malformed, "a call needs at least one target");
        }
        let unique: BTreeSet<&Identifier> = targets.iter().collect();
        if unique.len() != targets.len() || unique.contains(&caller) {
            return refuse(
                ErrorCode::Malformed,
                "targets must be distinct and not the caller",
            );
        }
        if targets.len() + 1 > self.config.max_participants {
            self.end_for(key, &call_id, EndReason::call_full());
            return Ok(());
        }
        if !pstn && targets.iter().any(|t| matches!(t, Identifier::Phone(_))) {
            self.end_for(
                key,
                &call_id,
                EndReason::forbidden("calling phone numbers needs the `pstn` scope"),
            );
            return Ok(());
        }
        let mut call = Call {
            group: None,
            one_to_one: targets.len() == 1,
            lobby: false,
            answered: false,
            inbound: None,
            dominant: Vec::new(),
            members: BTreeMap::new(),
        };
        call.members.insert(
            caller.clone(),
            Member::new(Stage::Joined, Some(key), options),
        );
        self.calls.insert(call_id.clone(), call);
        if let Some(s) = self.sessions.get_mut(&key) {
            s.calls.insert(call_id.clone());
        }
        self.media_join(&call_id, &caller, key);
        self.media_update(&call_id, &caller);
        let mut last_failure = None;
        for target in targets {
            if let Err(reason) = self.invite(
                &call_id,
                &caller,
                target,
                caller_id.clone(),
                options.video,
                now,
            ) {
                last_failure = Some(reason);
            }
        }
        let only_caller = self
            .calls
            .get(&call_id)
            .is_some_and(|c| c.members.len() == 1);
        if only_caller {
            self.end_call(
                &call_id,
                last_failure.unwrap_or_else(EndReason::unavailable),
                EndReason::cancelled(),
            );
            return Ok(());
        }
        let ringing: Vec<Identifier> = self
            .calls
            .get(&call_id)
            .map(|c| {
                c.members
                    .keys()
                    .filter(|id| **id != caller)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        self.sync(&call_id, &ringing);
        // The caller sees its own mute state, as a joiner does.
        if options.muted {
            let message = ServerMessage::MuteState {
                call_id: call_id.clone(),
                muted: true,
            };
            send_to(&self.sessions, &mut self.transmits, key, message);
        }
        Ok(())
    }

    /// Rings `target` into a call. On failure the target is not added and the reason
    /// is returned (and told to those who see the roster).
    fn invite(
        &mut self,
        call_id: &CallId,
        inviter: &Identifier,
        target: Identifier,
        caller_id: Option<PhoneNumber>,
        video: bool,
        now: Instant,
    ) -> Result<(), EndReason> {
        let deadline = now + self.config.ring_timeout;
        let sessions: BTreeSet<SessionKey> = match &target {
            Identifier::User(user) => self.users.get(user).cloned().unwrap_or_default(),
            _ => BTreeSet::new(),
        };
        if target.is_user() && sessions.is_empty() {
            let reason = EndReason::unavailable();
            self.tell_left(call_id, &target, &reason);
            return Err(reason);
        }
        let Some(call) = self.calls.get_mut(call_id) else {
            return Err(EndReason::server_error());
        };
        let group_id = call.group.clone();
        call.members.insert(
            target.clone(),
            Member::new(
                Stage::Ringing {
                    deadline,
                    sessions: sessions.clone(),
                    early_media: false,
                },
                None,
                JoinOptions::default(),
            ),
        );
        self.schedule(
            deadline,
            Timer::Ring {
                call: call_id.clone(),
                target: target.clone(),
            },
        );
        if target.is_user() {
            for s in &sessions {
                if let Some(session) = self.sessions.get_mut(s) {
                    session.calls.insert(call_id.clone());
                }
                let message = ServerMessage::IncomingCall {
                    call_id: call_id.clone(),
                    caller: inviter.clone(),
                    video,
                    group_id: group_id.clone(),
                };
                send_to(&self.sessions, &mut self.transmits, *s, message);
            }
        } else {
            self.commands
                .push_back(Command::Gateway(GatewayCommand::Dial {
                    call_id: call_id.clone(),
                    target,
                    caller: inviter.clone(),
                    caller_id,
                }));
        }
        Ok(())
    }

    /// Tells everyone who sees the roster that `id` left.
    fn tell_left(&mut self, call_id: &CallId, id: &Identifier, reason: &EndReason) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        for (other, session) in call.audience() {
            if other != id {
                let message = ServerMessage::ParticipantLeft {
                    call_id: call_id.clone(),
                    id: id.clone(),
                    reason: reason.clone(),
                };
                send_to(&self.sessions, &mut self.transmits, session, message);
            }
        }
    }

    /// Ends a call for one session that is not (or no longer) a member.
    fn end_for(&mut self, key: SessionKey, call_id: &CallId, reason: EndReason) {
        let message = ServerMessage::CallState {
            call_id: call_id.clone(),
            state: CallState::Disconnected,
            end_reason: Some(reason),
        };
        send_to(&self.sessions, &mut self.transmits, key, message);
    }

    fn join(
        &mut self,
        key: SessionKey,
        group_id: GroupId,
        options: JoinOptions,
        lobby: bool,
    ) -> Result<(), Refusal> {
        let call_id = CallId::for_group(&group_id);
        let session = self.session_of(key)?;
        let me = session.identifier.clone();
        let Some(call) = self.calls.get(&call_id) else {
            let mut call = Call {
                group: Some(group_id),
                one_to_one: false,
                lobby,
                answered: true,
                inbound: None,
                dominant: Vec::new(),
                members: BTreeMap::new(),
            };
            call.members
                .insert(me.clone(), Member::new(Stage::Joined, Some(key), options));
            self.calls.insert(call_id.clone(), call);
            if let Some(s) = self.sessions.get_mut(&key) {
                s.calls.insert(call_id.clone());
            }
            self.media_join(&call_id, &me, key);
            self.media_update(&call_id, &me);
            self.welcome(&call_id, &me);
            return Ok(());
        };
        match call.members.get(&me).map(|m| &m.stage) {
            Some(Stage::Ringing { sessions, .. }) if sessions.contains(&key) => {
                return self
                    .accept(key, &call_id, options)
                    .map_err(|r| r.on(call_id));
            }
            Some(Stage::Ringing { .. }) | None => {}
            Some(_) => {
                return Err(
                    Refusal::new(ErrorCode::AlreadyInCall, "already in this call").on(call_id),
                );
            }
        }
        let ringing_elsewhere = call.members.contains_key(&me);
        if !ringing_elsewhere && call.members.len() >= self.config.max_participants {
            self.end_for(key, &call_id, EndReason::call_full());
            return Ok(());
        }
        let stage = if call.lobby {
            Stage::InLobby
        } else {
            Stage::Joined
        };
        if ringing_elsewhere {
            // Rung on other devices but joining from this one: stop the ringing there.
            self.stop_ringing(&call_id, &me, &EndReason::answered_elsewhere());
        }
        let Some(call) = self.calls.get_mut(&call_id) else {
            return Ok(());
        };
        let member = call
            .members
            .entry(me.clone())
            .or_insert_with(|| Member::new(stage.clone(), Some(key), options));
        member.stage = stage.clone();
        member.session = Some(key);
        if let Some(s) = self.sessions.get_mut(&key) {
            s.calls.insert(call_id.clone());
        }
        if stage == Stage::Joined {
            self.media_join(&call_id, &me, key);
            self.media_update(&call_id, &me);
            self.welcome(&call_id, &me);
        } else {
            self.tell_lobby(&call_id, &me);
        }
        self.sync(&call_id, &[me]);
        Ok(())
    }

    /// A member waiting in the lobby hears only its own state.
    fn tell_lobby(&mut self, call_id: &CallId, id: &Identifier) {
        let Some(member) = self
            .calls
            .get_mut(call_id)
            .and_then(|c| c.members.get_mut(id))
        else {
            return;
        };
        member.heard = CallState::InLobby;
        if let Some(session) = member.session {
            let message = ServerMessage::CallState {
                call_id: call_id.clone(),
                state: CallState::InLobby,
                end_reason: None,
            };
            send_to(&self.sessions, &mut self.transmits, session, message);
        }
    }

    /// Ends the ringing of a user's invitation on every device but the one now in use.
    fn stop_ringing(&mut self, call_id: &CallId, id: &Identifier, reason: &EndReason) {
        let Some(member) = self
            .calls
            .get_mut(call_id)
            .and_then(|c| c.members.get_mut(id))
        else {
            return;
        };
        let Stage::Ringing { sessions, .. } = &mut member.stage else {
            return;
        };
        let sessions = std::mem::take(sessions);
        for s in sessions {
            if let Some(session) = self.sessions.get_mut(&s) {
                session.calls.remove(call_id);
            }
            self.end_for(s, call_id, reason.clone());
        }
    }

    fn accept(
        &mut self,
        key: SessionKey,
        call_id: &CallId,
        options: JoinOptions,
    ) -> Result<(), Refusal> {
        let me = self.session_of(key)?.identifier.clone();
        let call = self
            .calls
            .get(call_id)
            .ok_or(Refusal::new(ErrorCode::UnknownCall, "no such call"))?;
        match call.members.get(&me).map(|m| &m.stage) {
            Some(Stage::Ringing { sessions, .. }) if sessions.contains(&key) => {}
            _ => {
                return Err(Refusal::new(
                    ErrorCode::InvalidState,
                    "the call is not ringing here",
                ));
            }
        }
        if let Some(s) = self.sessions.get_mut(&key) {
            // Keep this session's membership while the others' ringing ends.
            s.calls.remove(call_id);
        }
        if let Some(Stage::Ringing { sessions, .. }) = self
            .calls
            .get_mut(call_id)
            .and_then(|c| c.members.get_mut(&me))
            .map(|m| &mut m.stage)
        {
            sessions.remove(&key);
        }
        self.stop_ringing(call_id, &me, &EndReason::answered_elsewhere());
        let Some(call) = self.calls.get_mut(call_id) else {
            return Ok(());
        };
        call.answered = true;
        if let Some(phone) = call.inbound.take() {
            self.answer_inbound(call_id, &phone);
        }
        let Some(call) = self.calls.get_mut(call_id) else {
            return Ok(());
        };
        if let Some(member) = call.members.get_mut(&me) {
            member.stage = Stage::Joined;
            member.session = Some(key);
            member.muted = options.muted;
            member.video = joined_video(options);
        }
        if let Some(s) = self.sessions.get_mut(&key) {
            s.calls.insert(call_id.clone());
        }
        self.media_join(call_id, &me, key);
        self.media_update(call_id, &me);
        self.welcome(call_id, &me);
        self.sync(call_id, &[me]);
        Ok(())
    }

    fn reject(&mut self, key: SessionKey, call_id: &CallId) -> Result<(), Refusal> {
        let me = self.session_of(key)?.identifier.clone();
        let call = self
            .calls
            .get(call_id)
            .ok_or(Refusal::new(ErrorCode::UnknownCall, "no such call"))?;
        match call.members.get(&me).map(|m| &m.stage) {
            Some(Stage::Ringing { sessions, .. }) if sessions.contains(&key) => {}
            _ => {
                return Err(Refusal::new(
                    ErrorCode::InvalidState,
                    "the call is not ringing here",
                ));
            }
        }
        let reason = EndReason::declined();
        self.remove_member(call_id, &me, &reason, &reason, Departure::Left);
        Ok(())
    }

    fn hang_up(
        &mut self,
        key: SessionKey,
        call_id: &CallId,
        for_everyone: bool,
    ) -> Result<(), Refusal> {
        let me = self.session_of(key)?.identifier.clone();
        let call = self
            .calls
            .get(call_id)
            .ok_or(Refusal::new(ErrorCode::UnknownCall, "no such call"))?;
        let member = call
            .members
            .get(&me)
            .ok_or(Refusal::new(ErrorCode::UnknownCall, "not in this call"))?;
        match &member.stage {
            // Hanging up a call that rings here declines it.
            Stage::Ringing { sessions, .. } if sessions.contains(&key) => {
                return self.reject(key, call_id);
            }
            _ if member.session != Some(key) => {
                return Err(Refusal::new(ErrorCode::UnknownCall, "not in this call"));
            }
            Stage::Joined if for_everyone => {
                self.end_call(
                    call_id,
                    EndReason::ended_for_everyone(),
                    EndReason::cancelled(),
                );
            }
            _ => {
                let reason = EndReason::normal();
                self.remove_member(call_id, &me, &reason, &reason, Departure::Left);
            }
        }
        Ok(())
    }

    /// Applies `change` to the sender's joined member of a call, then tells the media
    /// plane and the roster. `change` returns whether anything changed; a refusal
    /// leaves the member as it was.
    fn change_member(
        &mut self,
        key: SessionKey,
        call_id: &CallId,
        change: impl FnOnce(&mut Member) -> Result<bool, Refusal>,
    ) -> Result<(), Refusal> {
        let me = self.joined_member(key, call_id)?;
        let Some(member) = self
            .calls
            .get_mut(call_id)
            .and_then(|c| c.members.get_mut(&me))
        else {
            return Ok(());
        };
        if change(member)? {
            self.media_update(call_id, &me);
            self.sync(call_id, &[me]);
        }
        Ok(())
    }

    fn set_hold(
        &mut self,
        key: SessionKey,
        call_id: &CallId,
        on_hold: bool,
    ) -> Result<(), Refusal> {
        self.change_member(key, call_id, |m| {
            Ok(std::mem::replace(&mut m.on_hold, on_hold) != on_hold)
        })
    }

    fn set_muted(&mut self, key: SessionKey, call_id: &CallId, muted: bool) -> Result<(), Refusal> {
        self.change_member(key, call_id, |m| {
            Ok(std::mem::replace(&mut m.muted, muted) != muted)
        })?;
        // The sender hears its mute state even when it did not change: it asked.
        let message = ServerMessage::MuteState {
            call_id: call_id.clone(),
            muted,
        };
        send_to(&self.sessions, &mut self.transmits, key, message);
        Ok(())
    }

    /// Starts a stream, or updates the size of one that is on: the others hear
    /// either; the media plane only hears a new stream (it does not care for sizes).
    ///
    /// A bad size is refused as `malformed` without a call id, exactly as when it
    /// fails to decode, so that the sender does not undo anything about the call.
    fn start_video(
        &mut self,
        key: SessionKey,
        call_id: &CallId,
        kind: VideoKind,
        size: Option<VideoSize>,
    ) -> Result<(), Refusal> {
        if let Some(size) = size.filter(|s| !s.is_valid()) {
            let message = format!("video size {size} is out of range");
            return Err(Refusal::new(ErrorCode::Malformed, &message));
        }
        let me = self
            .joined_member(key, call_id)
            .map_err(|r| r.on(call_id.clone()))?;
        let Some(member) = self
            .calls
            .get_mut(call_id)
            .and_then(|c| c.members.get_mut(&me))
        else {
            return Ok(());
        };
        if let Some(stream) = member.video.iter_mut().find(|s| s.kind == kind) {
            // A source switch: same stream, maybe a new size.
            if std::mem::replace(&mut stream.size, size) != size {
                self.sync(call_id, &[me]);
            }
            return Ok(());
        }
        // The streaming rules allow 1 video or 1 screen share beside audio.
        if !member.video.is_empty() {
            return Err(Refusal::new(
                ErrorCode::InvalidState,
                "stop the camera before sharing the screen, or the other way round",
            )
            .on(call_id.clone()));
        }
        member.video.push(VideoStream { kind, size });
        self.media_update(call_id, &me);
        self.sync(call_id, &[me]);
        Ok(())
    }

    fn stop_video(
        &mut self,
        key: SessionKey,
        call_id: &CallId,
        kind: VideoKind,
    ) -> Result<(), Refusal> {
        self.change_member(key, call_id, |m| {
            let before = m.video.len();
            m.video.retain(|s| s.kind != kind);
            Ok(m.video.len() != before)
        })
    }

    fn add_participant(
        &mut self,
        key: SessionKey,
        call_id: &CallId,
        target: Identifier,
        now: Instant,
    ) -> Result<(), Refusal> {
        let me = self.joined_member(key, call_id)?;
        let pstn = self.session_of(key)?.pstn;
        let call = self
            .calls
            .get(call_id)
            .ok_or(Refusal::new(ErrorCode::UnknownCall, "no such call"))?;
        if call.members.contains_key(&target) {
            return Err(Refusal::new(
                ErrorCode::AlreadyInCall,
                "already in the call or being rung",
            ));
        }
        if call.members.len() >= self.config.max_participants {
            return Err(Refusal::new(ErrorCode::CallFull, "the call is full"));
        }
        if matches!(target, Identifier::Phone(_)) && !pstn {
            return Err(Refusal::new(
                ErrorCode::MissingScope,
                "calling phone numbers needs the `pstn` scope",
            ));
        }
        if let Some(call) = self.calls.get_mut(call_id) {
            // A third party makes a 1:1 call a group call; nobody is dropped.
            call.one_to_one = false;
        }
        let video = false;
        if self
            .invite(call_id, &me, target.clone(), None, video, now)
            .is_ok()
        {
            self.sync(call_id, &[target]);
        }
        Ok(())
    }

    fn remove_participant(
        &mut self,
        key: SessionKey,
        call_id: &CallId,
        target: &Identifier,
    ) -> Result<(), Refusal> {
        let me = self.joined_member(key, call_id)?;
        if *target == me {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                "use hang_up to leave a call",
            ));
        }
        let call = self
            .calls
            .get(call_id)
            .ok_or(Refusal::new(ErrorCode::UnknownCall, "no such call"))?;
        let member = call.members.get(target).ok_or(Refusal::new(
            ErrorCode::UnknownParticipant,
            "not in the call",
        ))?;
        let (theirs, others) = match member.stage {
            Stage::Ringing { .. } => (EndReason::cancelled(), EndReason::removed()),
            Stage::InLobby => (EndReason::lobby_refused(), EndReason::lobby_refused()),
            Stage::Joined => (EndReason::removed(), EndReason::removed()),
        };
        self.remove_member(call_id, target, &theirs, &others, Departure::Removed);
        Ok(())
    }

    fn admit(
        &mut self,
        key: SessionKey,
        call_id: &CallId,
        target: &Identifier,
    ) -> Result<(), Refusal> {
        self.joined_member(key, call_id)?;
        let member = self
            .calls
            .get_mut(call_id)
            .and_then(|c| c.members.get_mut(target))
            .ok_or(Refusal::new(
                ErrorCode::UnknownParticipant,
                "not in the call",
            ))?;
        if member.stage != Stage::InLobby {
            return Err(Refusal::new(
                ErrorCode::InvalidState,
                "not waiting in the lobby",
            ));
        }
        member.stage = Stage::Joined;
        let session = member.session;
        if let Some(session) = session {
            self.media_join(call_id, target, session);
            self.media_update(call_id, target);
        }
        self.welcome(call_id, target);
        self.sync(call_id, std::slice::from_ref(target));
        Ok(())
    }

    fn media(
        &mut self,
        key: SessionKey,
        call_id: &CallId,
        payload: MediaPayload,
    ) -> Result<(), Refusal> {
        let me = self.joined_member(key, call_id)?;
        self.commands
            .push_back(Command::Media(MediaCommand::Payload {
                call_id: call_id.clone(),
                from: me,
                payload,
            }));
        Ok(())
    }

    fn send_dtmf(
        &mut self,
        key: SessionKey,
        call_id: &CallId,
        digits: String,
    ) -> Result<(), Refusal> {
        self.joined_member(key, call_id)?;
        if !crate::protocol::is_dtmf(&digits) {
            return Err(Refusal::new(
                ErrorCode::Malformed,
                "DTMF digits are 1 to 32 of 0-9, *, #, A-D",
            ));
        }
        let phones: Vec<Identifier> = self
            .calls
            .get(call_id)
            .map(|c| {
                c.members
                    .iter()
                    .filter(|(id, m)| matches!(id, Identifier::Phone(_)) && m.is_joined())
                    .map(|(id, _)| id.clone())
                    .collect()
            })
            .unwrap_or_default();
        if phones.is_empty() {
            return Err(Refusal::new(
                ErrorCode::InvalidState,
                "no phone participant is connected in this call",
            ));
        }
        for target in phones {
            self.commands
                .push_back(Command::Gateway(GatewayCommand::SendDtmf {
                    call_id: call_id.clone(),
                    target,
                    digits: digits.clone(),
                }));
        }
        Ok(())
    }

    fn video_preferences(
        &mut self,
        key: SessionKey,
        call_id: &CallId,
        max_videos: Option<u8>,
        pinned: Option<Identifier>,
    ) -> Result<(), Refusal> {
        let me = self.joined_member(key, call_id)?;
        self.commands
            .push_back(Command::Media(MediaCommand::VideoPreferences {
                call_id: call_id.clone(),
                participant: me,
                max_videos,
                pinned,
            }));
        Ok(())
    }

    fn media_join(&mut self, call_id: &CallId, id: &Identifier, key: SessionKey) {
        let client = self
            .sessions
            .get(&key)
            .map(|s| s.client)
            .unwrap_or_default();
        self.commands.push_back(Command::Media(MediaCommand::Join {
            call_id: call_id.clone(),
            participant: id.clone(),
            client,
        }));
    }

    fn media_update(&mut self, call_id: &CallId, id: &Identifier) {
        let Some(member) = self.calls.get(call_id).and_then(|c| c.members.get(id)) else {
            return;
        };
        self.commands
            .push_back(Command::Media(MediaCommand::Update {
                call_id: call_id.clone(),
                participant: id.clone(),
                muted: member.muted,
                on_hold: member.on_hold,
                video: member.video.iter().map(|s| s.kind).collect(),
            }));
    }

    fn ring_timeout(&mut self, call_id: &CallId, target: &Identifier, now: Instant) {
        let due = self
            .calls
            .get(call_id)
            .and_then(|c| c.members.get(target))
            .is_some_and(|m| matches!(m.stage, Stage::Ringing { deadline, .. } if deadline <= now));
        if due {
            let reason = EndReason::no_answer();
            self.remove_member(call_id, target, &reason, &reason, Departure::Left);
        }
    }

    fn grace_over(&mut self, key: SessionKey, now: Instant) {
        let due = self
            .sessions
            .get(&key)
            .and_then(|s| s.detached_at)
            .is_some_and(|at| at + self.config.resume_grace <= now);
        if !due {
            return;
        }
        tracing::debug!(?key, "resume grace over; leaving calls");
        self.end_session(key, &EndReason::connection_lost());
        self.forget_session(key);
    }

    /// Takes a session out of every call it is in (or rings in), with `reason`.
    fn end_session(&mut self, key: SessionKey, reason: &EndReason) {
        let Some(session) = self.sessions.get(&key) else {
            return;
        };
        let id = session.identifier.clone();
        let calls: Vec<CallId> = session.calls.iter().cloned().collect();
        for call_id in calls {
            let member_here = self
                .calls
                .get(&call_id)
                .and_then(|c| c.members.get(&id))
                .is_some_and(|m| m.session == Some(key));
            if member_here {
                self.remove_member(&call_id, &id, reason, reason, Departure::Left);
            } else if let Some(Stage::Ringing { sessions, .. }) = self
                .calls
                .get_mut(&call_id)
                .and_then(|c| c.members.get_mut(&id))
                .map(|m| &mut m.stage)
            {
                // Only stop ringing this device; the ring timeout handles the rest.
                sessions.remove(&key);
                if let Some(s) = self.sessions.get_mut(&key) {
                    s.calls.remove(&call_id);
                }
            }
        }
    }

    /// Drops a session that has left its calls.
    fn forget_session(&mut self, key: SessionKey) {
        if let Some(session) = self.sessions.remove(&key) {
            self.resume_tokens.remove(&session.resume_token);
            if let Some(live) = self.users.get_mut(&session.user) {
                live.remove(&key);
                if live.is_empty() {
                    self.users.remove(&session.user);
                }
            }
        }
    }

    /// Takes `id` out of a call: tells it (`theirs`) and the others (`others`), frees
    /// its media, and ends the call when that leaves it without a reason to go on.
    fn remove_member(
        &mut self,
        call_id: &CallId,
        id: &Identifier,
        theirs: &EndReason,
        others: &EndReason,
        departure: Departure,
    ) {
        self.stop_ringing(call_id, id, theirs);
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let Some(member) = call.members.remove(id) else {
            return;
        };
        let was_present = !matches!(member.stage, Stage::Ringing { .. });
        if let Some(key) = member.session {
            if let Some(s) = self.sessions.get_mut(&key) {
                s.calls.remove(call_id);
            }
            self.end_for(key, call_id, theirs.clone());
        }
        if !id.is_user() && departure != Departure::ByGateway {
            self.commands
                .push_back(Command::Gateway(GatewayCommand::HangUp {
                    call_id: call_id.clone(),
                    target: id.clone(),
                    reason: theirs.clone(),
                }));
        }
        if was_present {
            self.commands.push_back(Command::Media(MediaCommand::Leave {
                call_id: call_id.clone(),
                participant: id.clone(),
            }));
        }
        self.tell_left(call_id, id, others);

        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        if let Some(phone) = &call.inbound {
            // A phone's call nobody answered yet: it goes on while someone still rings
            // and the phone is there; otherwise the phone hears why (603, 408, ...).
            let ringing = call
                .members
                .values()
                .any(|m| matches!(m.stage, Stage::Ringing { .. }));
            if !call.members.contains_key(phone) {
                self.end_call(call_id, EndReason::normal(), others.clone());
            } else if !ringing {
                self.end_call(call_id, others.clone(), EndReason::cancelled());
            } else {
                self.sync(call_id, &[]);
            }
        } else if call.humans_present() == 0 {
            self.end_call(call_id, EndReason::normal(), EndReason::cancelled());
        } else if call.one_to_one && call.answered {
            // A 1:1 call ends when either side leaves.
            let reason = match departure {
                Departure::Removed => EndReason::normal(),
                _ => EndReason::remote_hung_up(),
            };
            self.end_call(call_id, reason, EndReason::cancelled());
        } else if !call.answered && call.members.len() == 1 {
            // Nobody answered and nobody is left to ring: the caller hears why, unless
            // the caller itself removed the last one.
            let reason = match departure {
                Departure::Removed => EndReason::normal(),
                _ => others.clone(),
            };
            self.end_call(call_id, reason, EndReason::cancelled());
        } else {
            self.sync(call_id, &[]);
        }
    }

    /// Ends a call for everyone in it: `present` for those in it, `ringing` for
    /// invitations that still ring.
    fn end_call(&mut self, call_id: &CallId, present: EndReason, ringing: EndReason) {
        let Some(call) = self.calls.remove(call_id) else {
            return;
        };
        for (id, member) in call.members {
            let reason = match member.stage {
                Stage::Ringing { sessions, .. } => {
                    for s in sessions {
                        if let Some(session) = self.sessions.get_mut(&s) {
                            session.calls.remove(call_id);
                        }
                        self.end_for(s, call_id, ringing.clone());
                    }
                    ringing.clone()
                }
                _ => present.clone(),
            };
            if let Some(key) = member.session {
                if let Some(s) = self.sessions.get_mut(&key) {
                    s.calls.remove(call_id);
                }
                self.end_for(key, call_id, reason.clone());
            }
            if !id.is_user() {
                self.commands
                    .push_back(Command::Gateway(GatewayCommand::HangUp {
                        call_id: call_id.clone(),
                        target: id,
                        reason,
                    }));
            }
        }
        tracing::debug!(%call_id, "call ended");
        self.commands
            .push_back(Command::Media(MediaCommand::CloseCall {
                call_id: call_id.clone(),
            }));
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
