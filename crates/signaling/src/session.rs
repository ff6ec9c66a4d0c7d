//! The client's side of a signaling connection: [`ClientSession`], a sans-IO state
//! machine for the connection and every call on it.
//!
//! The session owns no socket and reads no clock. The driver feeds it what happens
//! (`handle_connected`, `handle_bytes`, `handle_timeout`), the app's requests become
//! commands (`start_call`, `accept`, `hang_up`, ...), and after **every** input or
//! command the driver drains the outputs until they are empty:
//!
//! ```
//! use std::time::{Duration, Instant};
//! use ringwire_signaling::session::{ClientSession, Event, SessionConfig};
//! use ringwire_signaling::{CallState, ClientMessage, Identifier, JoinOptions, ServerMessage};
//!
//! /// Drain rule: poll every output until empty before the next input.
//! fn drain(session: &mut ClientSession, wire: &mut Vec<Vec<u8>>) {
//!     while let Some(message) = session.poll_transmit() {
//!         wire.push(message.encode()); // a real driver writes a WebSocket frame
//!     }
//!     while let Some(event) = session.poll_event() {
//!         println!("{event:?}"); // a real driver hands events to the app
//!     }
//! }
//!
//! let mut now = Instant::now();
//! let mut wire = Vec::new();
//! let mut session = ClientSession::new(SessionConfig::new("access-token", 42), now);
//!
//! session.handle_connected(now); // the transport is up: the session queues `auth`
//! drain(&mut session, &mut wire);
//! assert!(matches!(ClientMessage::decode(&wire[0])?, ClientMessage::Auth { .. }));
//!
//! let reply = ServerMessage::Authenticated {
//!     user: Identifier::user("alice")?,
//!     resume_token: "r-1".into(),
//!     grace_ms: 30_000,
//!     resumed: false,
//! };
//! session.handle_bytes(&reply.encode(), now)?;
//! drain(&mut session, &mut wire);
//!
//! let call = session.start_call(&[Identifier::user("bob")?], JoinOptions::default(), now)?;
//! drain(&mut session, &mut wire);
//! assert_eq!(session.call(&call).map(|c| c.state()), Some(CallState::Connecting));
//!
//! // Timers: sleep until `poll_timeout`, then call `handle_timeout` (early is fine).
//! if let Some(deadline) = session.poll_timeout() {
//!     now = now.max(deadline);
//!     session.handle_timeout(now);
//!     drain(&mut session, &mut wire);
//! }
//! assert!(matches!(ClientMessage::decode(wire.last().unwrap())?, ClientMessage::Ping { .. }));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Rules
//! - Time is `now`, passed in; the session never reads a clock. Call ids come from a
//!   generator seeded by [`SessionConfig::seed`].
//! - The server is authoritative. The client sets only `Connecting` (start, join,
//!   accept) and `Disconnecting` (reject, hang up) at once, then follows `call_state`.
//!   Every state change, local or not, is reported once as
//!   [`Event::CallStateChanged`]; a repeated state is not.
//! - Participants: `roster` replaces the list, reported as `ParticipantAdded`,
//!   `ParticipantUpdated` and `ParticipantRemoved` (without a reason) diffs;
//!   `participant` upserts (added if new, updated if changed; shown `Disconnected`,
//!   removed); `participant_left` is always reported with its reason, even for an
//!   invitee never seen (an offline target). Entries about ourselves are ignored.
//! - Remote video: whenever a remote participant's streams change, the session also
//!   reports each stream: [`Event::RemoteVideoAdded`] (a kind they did not send),
//!   [`Event::RemoteVideoChanged`] (same kind, new size: a source switch),
//!   [`Event::RemoteVideoRemoved`] (a kind they stopped). A participant who appears
//!   gets `ParticipantAdded` first, then `RemoteVideoAdded` for each stream; one who
//!   leaves or is dropped from a roster gets `RemoteVideoRemoved` for each stream,
//!   then `ParticipantRemoved`; within an update, removals come first, then changes
//!   and additions in the participant's order. So an app can create and tear down
//!   renderers from these events alone. A call that ends reports none: its
//!   `CallStateChanged` to `Disconnected` ends every stream in it.
//! - Messages about calls the session does not know are ignored (logged at debug):
//!   they race with hang-ups. No server message makes the session panic.
//! - Commands need an authenticated connection ([`Error::NotConnected`] otherwise)
//!   and a call in a state that allows them ([`Error::InvalidState`]). A rejected
//!   command changes nothing and sends nothing.
//! - When the server refuses a request (`error` with a call id) that set a state
//!   locally, the session undoes it: back to the previous state, or, for a call it
//!   created itself or when the server does not know the call (`unknown_call`), the
//!   call ends with a reason built from the error.
//! - Ended calls stay queryable ([`ClientSession::call`]) with their end reason until
//!   the app calls [`ClientSession::remove_call`], until a new call reuses the id (a
//!   group call joined again), or until more than [`MAX_ENDED_CALLS`] calls have
//!   ended, when the oldest ended ones are pruned. A disconnected call has no remote
//!   participants left (no `ParticipantRemoved` events are sent for them).
//!
//! # Call states
//!
//! | from | input | to |
//! |---|---|---|
//! | (none) | `start_call`, `join` | `Connecting` |
//! | (none) | server `incoming_call` | `Incoming` |
//! | `Incoming` | `accept` | `Connecting` |
//! | `Incoming` | `reject`, `hang_up` (sent as `reject`) | `Disconnecting` |
//! | any live state but `Disconnecting` | `hang_up` | `Disconnecting` |
//! | any live state but `Disconnecting` | server `call_state` S (not `None`) | S |
//! | `Disconnecting` | server `call_state` `Disconnected` | `Disconnected` |
//! | locally set, unconfirmed | server `error` about the call | the previous state, or `Disconnected` |
//! | any live state | `authenticated{resumed:false}`, or a resume that no longer lists the call | `Disconnected` ([`EndReason::connection_lost`]) |
//! | any live state | server `goodbye{reason}` | `Disconnected` (reason) |
//! | `Disconnected` | anything | `Disconnected` (ignored) |
//!
//! Live states are all but `Disconnected`. Which commands each state allows:
//!
//! | command | allowed in |
//! |---|---|
//! | `accept`, `reject` | `Incoming` |
//! | `hang_up` | every live state but `Disconnecting` |
//! | `hold` | `Connected`, `RemoteHold` |
//! | `resume` | `LocalHold` |
//! | `mute`, `unmute`, `start_video`, `stop_video`, `send_media` | `Connecting`, `Ringing`, `EarlyMedia`, `InLobby`, `Connected`, `LocalHold`, `RemoteHold` |
//! | `add_participant`, `remove_participant` | `Ringing`, `EarlyMedia`, `Connected`, `LocalHold`, `RemoteHold` |
//! | `admit` | `Connected`, `LocalHold`, `RemoteHold` |
//! | `remove_call` | `Disconnected` |
//!
//! # Connection
//!
//! `Disconnected` → `handle_connected` → `Authenticating` (sends `auth`, with the
//! resume token once there is one) → `authenticated` → `Connected` → transport drops
//! (`handle_disconnected`) or the server stops answering ([`Event::ConnectionLost`])
//! → `Reconnecting`, calls kept → `handle_connected` again. `goodbye` →
//! `Disconnected`, calls ended, resume token forgotten.
//!
//! After a resume (`authenticated{resumed:true}`) the server sends `call_state`,
//! `roster` and `mute_state` for every call it still has us in. The session sends a
//! `ping` right away; the server answers it after that refresh, so when its `pong`
//! comes, the calls the server did not mention (ended while we were away) end
//! locally with [`EndReason::connection_lost`] (calls we were leaving with
//! [`EndReason::normal`]). Calls still ringing here (`Incoming`) are left to the
//! server's ring timeout. When the server still has us in a call we were leaving,
//! the `hang_up` (or `reject`) was lost with the old connection and is sent again.
//!
//! # Timers
//!
//! | timer | armed | fires |
//! |---|---|---|
//! | `AuthDeadline` | `auth` sent, `pong_timeout` | no `authenticated` yet: [`Event::ConnectionLost`] |
//! | `Ping` | connected, every `ping_interval` | sends `ping{seq}` |
//! | `PongDeadline` | a `ping` sent, `pong_timeout` | no `pong` yet: [`Event::ConnectionLost`] |

mod call;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use tracing::{debug, trace};

pub use call::{Call, Direction, RemoteParticipant};

use crate::error::Error;
use crate::id::{CallId, GroupId, Identifier, PhoneNumber};
use crate::protocol::{
    CallState, ClientKind, ClientMessage, EndReason, ErrorCode, JoinOptions, MediaPayload,
    ParticipantInfo, ParticipantState, ServerMessage, VideoKind, VideoSize, VideoStream,
};
use crate::rng::Rng;
use call::Action;

/// Most ended calls kept for the app to look at; older ended calls are pruned.
pub const MAX_ENDED_CALLS: usize = 32;

/// Most targets of one `start_call`: the server's default group size, less the caller.
pub const MAX_TARGETS: usize = 349;

/// How a [`ClientSession`] connects and keeps its connection alive.
#[derive(Clone)]
pub struct SessionConfig {
    /// The access token presented in `auth`.
    pub token: String,
    /// What kind of client this is.
    pub client: ClientKind,
    /// Seeds the generator of call ids; drivers take it from the OS random source,
    /// tests pick it.
    pub seed: u64,
    /// How often to ping the server while connected (default 15 s).
    pub ping_interval: Duration,
    /// How long to wait for `pong` (and for `authenticated` after `auth`) before the
    /// connection counts as lost (default 10 s).
    pub pong_timeout: Duration,
}

/// The state of the connection to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// No transport, and no session to take back.
    Disconnected,
    /// The transport is up and `auth` is sent; no answer yet.
    Authenticating,
    /// Authenticated: commands can be sent.
    Connected,
    /// The transport dropped or stopped answering; calls are kept until the driver
    /// reconnects and the session is resumed (or not).
    Reconnecting,
}

/// What happened, for the app.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The server accepted the access token.
    Authenticated {
        /// Who we are.
        user: Identifier,
        /// Whether the earlier session (and its calls) was taken back.
        resumed: bool,
    },
    /// A call rings here.
    IncomingCall {
        /// The call.
        call_id: CallId,
        /// Who calls.
        caller: Identifier,
        /// Whether the caller has video on.
        video: bool,
        /// The group, for an invitation into a group call.
        group_id: Option<GroupId>,
    },
    /// Our state in a call changed.
    CallStateChanged {
        /// The call.
        call_id: CallId,
        /// The new state.
        state: CallState,
        /// Why the call ended, when `state` is `Disconnected` and a reason is known.
        end_reason: Option<EndReason>,
    },
    /// Someone appeared in a call.
    ParticipantAdded {
        /// The call.
        call_id: CallId,
        /// Who, as the server describes them.
        participant: ParticipantInfo,
    },
    /// A participant changed (state, mute, speaking, video).
    ParticipantUpdated {
        /// The call.
        call_id: CallId,
        /// Their new description.
        participant: ParticipantInfo,
    },
    /// Someone left a call.
    ParticipantRemoved {
        /// The call.
        call_id: CallId,
        /// Who.
        id: Identifier,
        /// Why, when the server said (`None` when a roster no longer lists them).
        reason: Option<EndReason>,
    },
    /// Our own mute state in a call changed.
    MuteChanged {
        /// The call.
        call_id: CallId,
        /// Whether we are muted.
        muted: bool,
    },
    /// A participant (a phone) pressed keys in a call (RFC 4733 DTMF from its leg).
    DtmfReceived {
        /// The call.
        call_id: CallId,
        /// Who pressed them.
        from: Identifier,
        /// The digits, in order (`0-9`, `*`, `#`, `A-D`).
        digits: String,
    },
    /// The dominant speakers of a call changed.
    DominantSpeakersChanged {
        /// The call.
        call_id: CallId,
        /// Most dominant first.
        speakers: Vec<Identifier>,
    },
    /// A remote participant started sending a video stream.
    RemoteVideoAdded {
        /// The call.
        call_id: CallId,
        /// Who sends it.
        participant: Identifier,
        /// Its kind, and its size when the sender said.
        stream: VideoStream,
    },
    /// A remote participant's video stream changed size (their source switched); the
    /// stream itself goes on.
    RemoteVideoChanged {
        /// The call.
        call_id: CallId,
        /// Who sends it.
        participant: Identifier,
        /// The stream as it is now.
        stream: VideoStream,
    },
    /// A remote participant's video stream ended: they stopped it, or they left.
    RemoteVideoRemoved {
        /// The call.
        call_id: CallId,
        /// Who sent it.
        participant: Identifier,
        /// Which of their streams ended.
        kind: VideoKind,
    },
    /// What our video receive slots show changed (every slot, in offer order).
    VideoSlotsChanged {
        /// The call.
        call_id: CallId,
        /// The slots.
        slots: Vec<crate::protocol::VideoSlot>,
    },
    /// The media plane sent a negotiation payload.
    MediaReceived {
        /// The call.
        call_id: CallId,
        /// The payload.
        payload: MediaPayload,
    },
    /// The server refused a request.
    RequestFailed {
        /// What went wrong.
        code: ErrorCode,
        /// For people.
        message: String,
        /// The call the request was about.
        call_id: Option<CallId>,
    },
    /// The server stopped answering; the driver should drop the transport, reconnect
    /// and call [`ClientSession::handle_connected`]. Calls are kept meanwhile.
    ConnectionLost,
    /// The server closed the session for good; calls have ended.
    Goodbye {
        /// Why.
        reason: EndReason,
    },
}

/// The client's signaling state machine: one connection (across reconnects) and its
/// calls. See the [module docs](self).
#[derive(Debug)]
pub struct ClientSession {
    config: SessionConfig,
    state: ConnectionState,
    user: Option<Identifier>,
    resume_token: Option<Secret>,
    resume_grace: Option<Duration>,
    calls: BTreeMap<CallId, Call>,
    transmits: VecDeque<ClientMessage>,
    events: VecDeque<Event>,
    timers: BTreeMap<Timer, Instant>,
    rng: Rng,
    next_ping_seq: u64,
    /// The oldest `ping` not answered yet.
    awaiting_pong: Option<u64>,
    /// After a resume: the ping whose pong ends the refresh, and the calls the
    /// server has not mentioned yet.
    resync: Option<(u64, BTreeSet<CallId>)>,
    /// How many calls have ended, to order ended calls for pruning.
    ended_count: u64,
}

/// The session's timers; each has at most one deadline in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// `authenticated` must come by then.
    AuthDeadline,
    /// `pong` for the oldest unanswered ping must come by then.
    PongDeadline,
    /// Send the next `ping`.
    Ping,
}

/// A token that must not end up in logs.
#[derive(Clone)]
struct Secret(String);

impl SessionConfig {
    /// A configuration with default keepalive (ping every 15 s, 10 s to answer) for a
    /// native client.
    pub fn new(token: impl Into<String>, seed: u64) -> Self {
        SessionConfig {
            token: token.into(),
            client: ClientKind::Native,
            seed,
            ping_interval: Duration::from_secs(15),
            pong_timeout: Duration::from_secs(10),
        }
    }
}

impl fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionConfig")
            .field("token", &"<redacted>")
            .field("client", &self.client)
            .field("seed", &self.seed)
            .field("ping_interval", &self.ping_interval)
            .field("pong_timeout", &self.pong_timeout)
            .finish()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl ClientSession {
    /// A session that is not connected yet.
    pub fn new(config: SessionConfig, _now: Instant) -> Self {
        let rng = Rng::new(config.seed);
        ClientSession {
            config,
            state: ConnectionState::Disconnected,
            user: None,
            resume_token: None,
            resume_grace: None,
            calls: BTreeMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            timers: BTreeMap::new(),
            rng,
            next_ping_seq: 1,
            awaiting_pong: None,
            resync: None,
            ended_count: 0,
        }
    }

    // ---- transport ----

    /// The transport is up: queues `auth`, with the resume token when there is a
    /// session to take back. Anything still queued for the old transport is dropped.
    pub fn handle_connected(&mut self, now: Instant) {
        self.reset_connection();
        self.state = ConnectionState::Authenticating;
        self.transmits.push_back(ClientMessage::Auth {
            token: self.config.token.clone(),
            resume: self.resume_token.as_ref().map(|t| t.0.clone()),
            client: self.config.client,
        });
        self.timers
            .insert(Timer::AuthDeadline, now + self.config.pong_timeout);
        debug!(
            resume = self.resume_token.is_some(),
            "transport up, auth sent"
        );
    }

    /// The transport dropped: the session waits in `Reconnecting` with its calls for
    /// the driver to reconnect. Does nothing when already disconnected or reconnecting.
    pub fn handle_disconnected(&mut self, _now: Instant) {
        match self.state {
            ConnectionState::Disconnected | ConnectionState::Reconnecting => {
                debug!(state = ?self.state, "transport down again; nothing to do");
            }
            ConnectionState::Authenticating | ConnectionState::Connected => {
                debug!("transport down, reconnecting");
                self.reset_connection();
                self.state = ConnectionState::Reconnecting;
            }
        }
    }

    /// Decodes a message from the server and handles it.
    ///
    /// # Errors
    /// [`Error::Malformed`] when the bytes are not a server message; nothing changes.
    /// Otherwise as [`ClientSession::handle_message`].
    pub fn handle_bytes(&mut self, bytes: &[u8], now: Instant) -> Result<(), Error> {
        let message = ServerMessage::decode(bytes)?;
        self.handle_message(message, now)
    }

    /// Handles a message from the server.
    ///
    /// # Errors
    /// [`Error::PeerMisbehaved`] when the server sends a call message before
    /// `authenticated`, or `authenticated` twice; the message is ignored.
    pub fn handle_message(&mut self, message: ServerMessage, now: Instant) -> Result<(), Error> {
        match self.state {
            ConnectionState::Disconnected | ConnectionState::Reconnecting => {
                debug!(kind = message.kind(), state = ?self.state, "message without a connection, ignored");
                return Ok(());
            }
            ConnectionState::Authenticating => {
                if !matches!(
                    message,
                    ServerMessage::Authenticated { .. }
                        | ServerMessage::Error { .. }
                        | ServerMessage::Goodbye { .. }
                        | ServerMessage::Pong { .. }
                ) {
                    return Err(Error::PeerMisbehaved("call message before authentication"));
                }
            }
            ConnectionState::Connected => {
                if matches!(message, ServerMessage::Authenticated { .. }) {
                    return Err(Error::PeerMisbehaved("authenticated twice"));
                }
            }
        }
        trace!(kind = message.kind(), "message from server");
        match message {
            ServerMessage::Authenticated {
                user,
                resume_token,
                grace_ms,
                resumed,
            } => self.on_authenticated(user, resume_token, grace_ms, resumed, now),
            ServerMessage::IncomingCall {
                call_id,
                caller,
                video,
                group_id,
            } => self.on_incoming_call(call_id, caller, video, group_id),
            ServerMessage::CallState {
                call_id,
                state,
                end_reason,
            } => self.on_call_state(call_id, state, end_reason),
            ServerMessage::Roster {
                call_id,
                participants,
            } => self.on_roster(call_id, participants),
            ServerMessage::Participant {
                call_id,
                participant,
            } => self.on_participant(call_id, participant),
            ServerMessage::ParticipantLeft {
                call_id,
                id,
                reason,
            } => self.on_participant_left(call_id, id, Some(reason)),
            ServerMessage::MuteState { call_id, muted } => self.on_mute_state(call_id, muted),
            ServerMessage::DominantSpeakers { call_id, speakers } => {
                if let Some(call) = self.live_call_for_message(&call_id, "dominant_speakers")
                    && call.set_dominant_speakers(speakers.clone())
                {
                    self.events
                        .push_back(Event::DominantSpeakersChanged { call_id, speakers });
                }
            }
            ServerMessage::Dtmf {
                call_id,
                from,
                digits,
            } => {
                if self.live_call_for_message(&call_id, "dtmf").is_some() {
                    self.events.push_back(Event::DtmfReceived {
                        call_id,
                        from,
                        digits,
                    });
                }
            }
            ServerMessage::VideoSlots { call_id, slots } => {
                if let Some(call) = self.live_call_for_message(&call_id, "video_slots")
                    && call.set_video_slots(slots.clone())
                {
                    self.events
                        .push_back(Event::VideoSlotsChanged { call_id, slots });
                }
            }
            ServerMessage::Media { call_id, payload } => {
                if self.live_call_for_message(&call_id, "media").is_some() {
                    self.events
                        .push_back(Event::MediaReceived { call_id, payload });
                }
            }
            ServerMessage::Error {
                code,
                message,
                call_id,
            } => self.on_error(code, message, call_id),
            ServerMessage::Pong { seq } => self.on_pong(seq),
            ServerMessage::Goodbye { reason } => self.on_goodbye(reason),
        }
        Ok(())
    }

    /// Fires the timers that are due: sends pings, and declares the connection lost
    /// when the server did not answer in time. Safe to call early.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((&timer, &deadline)) = self
            .timers
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .min_by_key(|(timer, deadline)| (**deadline, **timer))
        {
            self.timers.remove(&timer);
            trace!(?timer, ?deadline, "timer fired");
            match timer {
                Timer::AuthDeadline | Timer::PongDeadline => {
                    debug!(?timer, "server did not answer in time, connection lost");
                    self.reset_connection();
                    self.state = ConnectionState::Reconnecting;
                    self.events.push_back(Event::ConnectionLost);
                }
                Timer::Ping => {
                    self.send_ping(now);
                    // At least a millisecond, so that a zero interval cannot spin this loop.
                    let interval = self.config.ping_interval.max(Duration::from_millis(1));
                    self.timers.insert(Timer::Ping, now + interval);
                }
            }
        }
    }

    // ---- commands ----

    /// Calls `targets`: one target makes a 1:1 call, more a group call. The call is
    /// `Connecting` until the server says otherwise.
    ///
    /// # Errors
    /// [`Error::NotConnected`]; [`Error::InvalidArgument`] for no targets, more than
    /// [`MAX_TARGETS`], a target named twice, or ourselves as a target.
    pub fn start_call(
        &mut self,
        targets: &[Identifier],
        options: JoinOptions,
        now: Instant,
    ) -> Result<CallId, Error> {
        self.start_call_as(targets, options, None, now)
    }

    /// As [`Self::start_call`], showing `caller_id` to phone targets instead of the
    /// server's default number: it must be one the server's trunk owns, or the phone
    /// leg is refused (the server never sends a number it does not own).
    ///
    /// # Errors
    /// As [`Self::start_call`].
    pub fn start_call_as(
        &mut self,
        targets: &[Identifier],
        options: JoinOptions,
        caller_id: Option<PhoneNumber>,
        _now: Instant,
    ) -> Result<CallId, Error> {
        self.ensure_connected()?;
        if targets.is_empty() {
            return Err(Error::InvalidArgument("a call needs at least one target"));
        }
        if targets.len() > MAX_TARGETS {
            return Err(Error::InvalidArgument("too many targets"));
        }
        let mut seen = BTreeSet::new();
        for target in targets {
            if Some(target) == self.user.as_ref() {
                return Err(Error::InvalidArgument("cannot call yourself"));
            }
            if !seen.insert(target) {
                return Err(Error::InvalidArgument("the same target twice"));
            }
        }
        let call_id = loop {
            let id = CallId::new(&self.rng.hex128()).expect("32 hex digits are a valid call id");
            // Ended calls may be replaced, but a random id colliding is vanishingly rare
            // anyway: draw again rather than reason about it.
            if !self.calls.contains_key(&id) {
                break id;
            }
        };
        debug!(call_id = %call_id, targets = targets.len(), "starting call");
        let call = Call::outgoing(call_id.clone(), None, options.muted, options.video);
        self.insert_call(call);
        self.transmits.push_back(ClientMessage::StartCall {
            call_id: call_id.clone(),
            targets: targets.to_vec(),
            options,
            alternate_caller_id: caller_id,
        });
        self.push_state_changed(&call_id);
        Ok(call_id)
    }

    /// Joins the group call of `group` (starting it when nobody is in it; with
    /// `lobby`, later joiners wait to be admitted). Its id is [`CallId::for_group`].
    ///
    /// # Errors
    /// [`Error::NotConnected`]; [`Error::InvalidState`] when we are in that call already.
    pub fn join(
        &mut self,
        group: &GroupId,
        options: JoinOptions,
        lobby: bool,
        _now: Instant,
    ) -> Result<CallId, Error> {
        self.ensure_connected()?;
        let call_id = CallId::for_group(group);
        if let Some(existing) = self.calls.get(&call_id)
            && call::is_live(existing.state())
        {
            return Err(Error::InvalidState {
                call: call_id,
                state: existing.state(),
                action: "join",
            });
        }
        debug!(call_id = %call_id, lobby, "joining group call");
        let call = Call::outgoing(
            call_id.clone(),
            Some(group.clone()),
            options.muted,
            options.video,
        );
        self.insert_call(call);
        self.transmits.push_back(ClientMessage::Join {
            group_id: group.clone(),
            options,
            lobby,
        });
        self.push_state_changed(&call_id);
        Ok(call_id)
    }

    /// Answers a call that rings here; it is `Connecting` until the server confirms.
    ///
    /// # Errors
    /// [`Error::NotConnected`], [`Error::UnknownCall`], [`Error::InvalidState`] unless
    /// the call is `Incoming`.
    pub fn accept(
        &mut self,
        call_id: &CallId,
        options: JoinOptions,
        _now: Instant,
    ) -> Result<(), Error> {
        let call = self.connected_call(call_id)?;
        call.request(Action::Accept)?;
        call.set_joined_with(options.muted, options.video);
        self.transmits.push_back(ClientMessage::Accept {
            call_id: call_id.clone(),
            options,
        });
        self.push_state_changed(call_id);
        Ok(())
    }

    /// Declines a call that rings here.
    ///
    /// # Errors
    /// [`Error::NotConnected`], [`Error::UnknownCall`], [`Error::InvalidState`] unless
    /// the call is `Incoming`.
    pub fn reject(&mut self, call_id: &CallId, _now: Instant) -> Result<(), Error> {
        self.connected_call(call_id)?.request(Action::Reject)?;
        self.transmits.push_back(ClientMessage::Reject {
            call_id: call_id.clone(),
        });
        self.push_state_changed(call_id);
        Ok(())
    }

    /// Leaves a call, or with `for_everyone` ends it for every participant. Hanging up
    /// a call that rings here declines it.
    ///
    /// # Errors
    /// [`Error::NotConnected`], [`Error::UnknownCall`], [`Error::InvalidState`] when the
    /// call is already `Disconnecting` or `Disconnected`.
    pub fn hang_up(
        &mut self,
        call_id: &CallId,
        for_everyone: bool,
        _now: Instant,
    ) -> Result<(), Error> {
        let call = self.connected_call(call_id)?;
        let ringing_here = call.state() == CallState::Incoming;
        call.request(Action::HangUp)?;
        self.transmits.push_back(if ringing_here {
            ClientMessage::Reject {
                call_id: call_id.clone(),
            }
        } else {
            ClientMessage::HangUp {
                call_id: call_id.clone(),
                for_everyone,
            }
        });
        self.push_state_changed(call_id);
        Ok(())
    }

    /// Puts the call on hold; the server answers with `LocalHold`.
    ///
    /// # Errors
    /// [`Error::NotConnected`], [`Error::UnknownCall`], [`Error::InvalidState`] unless
    /// the call is `Connected` or `RemoteHold`.
    pub fn hold(&mut self, call_id: &CallId, _now: Instant) -> Result<(), Error> {
        self.simple_command(
            call_id,
            Action::Hold,
            ClientMessage::Hold {
                call_id: call_id.clone(),
            },
        )
    }

    /// Takes the call off hold; the server answers with `Connected`.
    ///
    /// # Errors
    /// [`Error::NotConnected`], [`Error::UnknownCall`], [`Error::InvalidState`] unless
    /// the call is `LocalHold`.
    pub fn resume(&mut self, call_id: &CallId, _now: Instant) -> Result<(), Error> {
        self.simple_command(
            call_id,
            Action::Resume,
            ClientMessage::Resume {
                call_id: call_id.clone(),
            },
        )
    }

    /// Mutes our microphone; [`Call::is_muted`] changes when the server confirms.
    ///
    /// # Errors
    /// [`Error::NotConnected`], [`Error::UnknownCall`], [`Error::InvalidState`] when the
    /// call is not being joined or in progress.
    pub fn mute(&mut self, call_id: &CallId, _now: Instant) -> Result<(), Error> {
        self.simple_command(
            call_id,
            Action::Media,
            ClientMessage::Mute {
                call_id: call_id.clone(),
            },
        )
    }

    /// Sends DTMF `digits` (`0-9`, `*`, `#`, `A-D`, at most
    /// [`MAX_DTMF_DIGITS`](crate::MAX_DTMF_DIGITS)) to the phone participants of a
    /// connected call; the gateway plays them as RFC 4733 events on each phone leg.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for digits outside that set; otherwise as
    /// [`ClientSession::mute`].
    pub fn send_dtmf(
        &mut self,
        call_id: &CallId,
        digits: &str,
        _now: Instant,
    ) -> Result<(), Error> {
        if !crate::protocol::is_dtmf(digits) {
            return Err(Error::InvalidArgument(
                "DTMF digits are 1 to 32 of 0-9, *, #, A-D",
            ));
        }
        self.simple_command(
            call_id,
            Action::Media,
            ClientMessage::SendDtmf {
                call_id: call_id.clone(),
                digits: digits.to_owned(),
            },
        )
    }

    /// Unmutes our microphone; [`Call::is_muted`] changes when the server confirms.
    ///
    /// # Errors
    /// As [`ClientSession::mute`].
    pub fn unmute(&mut self, call_id: &CallId, _now: Instant) -> Result<(), Error> {
        self.simple_command(
            call_id,
            Action::Media,
            ClientMessage::Unmute {
                call_id: call_id.clone(),
            },
        )
    }

    /// Starts sending video of `kind` at `size` (`None`: not known), or announces a
    /// new size for a stream that is on (a source switch that changes resolution: the
    /// stream goes on, the others see [`Event::RemoteVideoChanged`]). [`Call::video`]
    /// changes at once: the server tells only the others. Starting a stream that is on
    /// already at the same size does nothing.
    ///
    /// # Errors
    /// As [`ClientSession::mute`]; [`Error::InvalidArgument`] for a size the protocol
    /// refuses ([`VideoSize::is_valid`]); [`Error::VideoBusy`] when the other kind is
    /// on (one of camera and screen share at a time).
    pub fn start_video(
        &mut self,
        call_id: &CallId,
        kind: VideoKind,
        size: Option<VideoSize>,
        _now: Instant,
    ) -> Result<(), Error> {
        let call = self.connected_call(call_id)?;
        call.request(Action::Media)?;
        if size.is_some_and(|s| !s.is_valid()) {
            return Err(Error::InvalidArgument(
                "video size must be at least 1x1 and at most 7680x4320 in either orientation",
            ));
        }
        if let Some(stream) = call.video_mut().iter_mut().find(|s| s.kind == kind) {
            if stream.size == size {
                return Ok(());
            }
            stream.size = size;
        } else {
            if let Some(active) = call.video().first() {
                return Err(Error::VideoBusy {
                    call: call_id.clone(),
                    requested: kind,
                    active: active.kind,
                });
            }
            call.video_mut().push(VideoStream { kind, size });
        }
        self.transmits.push_back(ClientMessage::StartVideo {
            call_id: call_id.clone(),
            kind,
            size,
        });
        Ok(())
    }

    /// Stops sending video of `kind`. Stopping a stream that is off does nothing.
    ///
    /// # Errors
    /// As [`ClientSession::mute`].
    pub fn stop_video(
        &mut self,
        call_id: &CallId,
        kind: VideoKind,
        _now: Instant,
    ) -> Result<(), Error> {
        let call = self.connected_call(call_id)?;
        call.request(Action::Media)?;
        if !call.video().iter().any(|s| s.kind == kind) {
            return Ok(());
        }
        call.video_mut().retain(|s| s.kind != kind);
        self.transmits.push_back(ClientMessage::StopVideo {
            call_id: call_id.clone(),
            kind,
        });
        Ok(())
    }

    /// Invites `target` into the call (a 1:1 call becomes a group call).
    ///
    /// # Errors
    /// [`Error::NotConnected`], [`Error::UnknownCall`], [`Error::InvalidState`] unless
    /// the call rings out or is in progress, [`Error::InvalidArgument`] for ourselves
    /// or someone already in the call.
    pub fn add_participant(
        &mut self,
        call_id: &CallId,
        target: &Identifier,
        _now: Instant,
    ) -> Result<(), Error> {
        let is_self = self.user.as_ref() == Some(target);
        let call = self.connected_call(call_id)?;
        call.request(Action::Invite)?;
        if is_self {
            return Err(Error::InvalidArgument("cannot add yourself"));
        }
        if call.participant(target).is_some() {
            return Err(Error::InvalidArgument("already a participant of the call"));
        }
        self.transmits.push_back(ClientMessage::AddParticipant {
            call_id: call_id.clone(),
            target: target.clone(),
        });
        Ok(())
    }

    /// Removes `target` from the call (or refuses them from its lobby).
    ///
    /// # Errors
    /// [`Error::NotConnected`], [`Error::UnknownCall`], [`Error::InvalidState`] as for
    /// [`ClientSession::add_participant`], [`Error::InvalidArgument`] for ourselves (hang
    /// up instead), [`Error::UnknownParticipant`] for someone not in the call.
    pub fn remove_participant(
        &mut self,
        call_id: &CallId,
        target: &Identifier,
        _now: Instant,
    ) -> Result<(), Error> {
        let is_self = self.user.as_ref() == Some(target);
        let call = self.connected_call(call_id)?;
        call.request(Action::Invite)?;
        if is_self {
            return Err(Error::InvalidArgument(
                "cannot remove yourself; hang up instead",
            ));
        }
        if call.participant(target).is_none() {
            return Err(Error::UnknownParticipant {
                call: call_id.clone(),
                id: target.clone(),
            });
        }
        self.transmits.push_back(ClientMessage::RemoveParticipant {
            call_id: call_id.clone(),
            target: target.clone(),
        });
        Ok(())
    }

    /// Lets `target`, waiting in the lobby, into the call.
    ///
    /// # Errors
    /// [`Error::NotConnected`], [`Error::UnknownCall`], [`Error::InvalidState`] unless
    /// we are in the call, [`Error::UnknownParticipant`] for someone not in it,
    /// [`Error::InvalidArgument`] for someone not in the lobby.
    pub fn admit(
        &mut self,
        call_id: &CallId,
        target: &Identifier,
        _now: Instant,
    ) -> Result<(), Error> {
        let call = self.connected_call(call_id)?;
        call.request(Action::Admit)?;
        match call.participant(target).map(RemoteParticipant::state) {
            None => {
                return Err(Error::UnknownParticipant {
                    call: call_id.clone(),
                    id: target.clone(),
                });
            }
            Some(ParticipantState::InLobby) => {}
            Some(_) => return Err(Error::InvalidArgument("participant is not in the lobby")),
        }
        self.transmits.push_back(ClientMessage::Admit {
            call_id: call_id.clone(),
            target: target.clone(),
        });
        Ok(())
    }

    /// Sends a media negotiation payload (SDP) to the media plane.
    ///
    /// # Errors
    /// As [`ClientSession::mute`].
    pub fn send_media(
        &mut self,
        call_id: &CallId,
        payload: MediaPayload,
        _now: Instant,
    ) -> Result<(), Error> {
        self.simple_command(
            call_id,
            Action::Negotiate,
            ClientMessage::Media {
                call_id: call_id.clone(),
                payload,
            },
        )
    }

    /// Asks for at most `max_videos` remote camera videos (`None`: the server's
    /// default) with `pinned`'s camera first (`None`: no pin).
    ///
    /// # Errors
    /// As [`ClientSession::send_media`].
    pub fn set_video_preferences(
        &mut self,
        call_id: &CallId,
        max_videos: Option<u8>,
        pinned: Option<Identifier>,
        _now: Instant,
    ) -> Result<(), Error> {
        self.simple_command(
            call_id,
            Action::Negotiate,
            ClientMessage::VideoPreferences {
                call_id: call_id.clone(),
                max_videos,
                pinned,
            },
        )
    }

    /// Forgets an ended call and returns it. Needs no connection.
    ///
    /// # Errors
    /// [`Error::UnknownCall`], [`Error::InvalidState`] unless the call is `Disconnected`.
    pub fn remove_call(&mut self, call_id: &CallId) -> Result<Call, Error> {
        let call = self
            .calls
            .get_mut(call_id)
            .ok_or_else(|| Error::UnknownCall(call_id.clone()))?;
        call.request(Action::Remove)?;
        self.calls
            .remove(call_id)
            .ok_or_else(|| Error::UnknownCall(call_id.clone()))
    }

    // ---- outputs ----

    /// The next message to send to the server.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<ClientMessage> {
        self.transmits.pop_front()
    }

    /// The next event for the app.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`ClientSession::handle_timeout`] should be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.values().min().copied()
    }

    // ---- getters ----

    /// The state of the connection.
    pub fn connection_state(&self) -> ConnectionState {
        self.state
    }

    /// Who the server says we are, once authenticated.
    pub fn user(&self) -> Option<&Identifier> {
        self.user.as_ref()
    }

    /// How long the server keeps a dropped session for us to resume, once known.
    pub fn resume_grace(&self) -> Option<Duration> {
        self.resume_grace
    }

    /// Every call, live and ended, ordered by id.
    pub fn calls(&self) -> impl Iterator<Item = &Call> {
        self.calls.values()
    }

    /// One call.
    pub fn call(&self, id: &CallId) -> Option<&Call> {
        self.calls.get(id)
    }

    // ---- server messages ----

    fn on_authenticated(
        &mut self,
        user: Identifier,
        resume_token: String,
        grace_ms: u64,
        resumed: bool,
        now: Instant,
    ) {
        debug!(%user, resumed, "authenticated");
        self.state = ConnectionState::Connected;
        self.user = Some(user.clone());
        self.resume_token = Some(Secret(resume_token));
        self.resume_grace = Some(Duration::from_millis(grace_ms));
        self.timers.remove(&Timer::AuthDeadline);
        self.timers
            .insert(Timer::Ping, now + self.config.ping_interval);
        self.events
            .push_back(Event::Authenticated { user, resumed });

        let live: Vec<CallId> = self
            .calls
            .values()
            .filter(|c| call::is_live(c.state()))
            .map(|c| c.id().clone())
            .collect();
        if resumed {
            let waiting: BTreeSet<CallId> = live
                .into_iter()
                .filter(|id| {
                    self.calls
                        .get(id)
                        .is_some_and(|c| c.state() != CallState::Incoming)
                })
                .collect();
            if !waiting.is_empty() {
                let seq = self.send_ping(now);
                self.resync = Some((seq, waiting));
            }
        } else {
            // A fresh session: the server no longer has us in any call.
            for id in live {
                debug!(call_id = %id, "resume failed, call ended");
                self.end_call(&id, Some(EndReason::connection_lost()));
            }
        }
    }

    fn on_incoming_call(
        &mut self,
        call_id: CallId,
        caller: Identifier,
        video: bool,
        group_id: Option<GroupId>,
    ) {
        if let Some(existing) = self.calls.get(&call_id)
            && call::is_live(existing.state())
        {
            debug!(call_id = %call_id, "incoming_call for a call we are in, ignored");
            return;
        }
        debug!(call_id = %call_id, %caller, "incoming call");
        let call = Call::incoming(call_id.clone(), caller.clone(), video, group_id.clone());
        self.insert_call(call);
        self.events.push_back(Event::IncomingCall {
            call_id,
            caller,
            video,
            group_id,
        });
    }

    fn on_call_state(&mut self, call_id: CallId, state: CallState, end_reason: Option<EndReason>) {
        let refreshing = self.mark_refreshed(&call_id);
        let Some(call) = self.calls.get_mut(&call_id) else {
            debug!(call_id = %call_id, ?state, "call_state for an unknown call, ignored");
            return;
        };
        if refreshing
            && call.state() == CallState::Disconnecting
            && state != CallState::Disconnected
        {
            // The resumed session still has us in a call we left: the request was lost
            // with the old connection. Ask again.
            debug!(call_id = %call_id, "leave request lost in the reconnect, sent again");
            let message = if call.left_while_ringing() {
                ClientMessage::Reject {
                    call_id: call_id.clone(),
                }
            } else {
                ClientMessage::HangUp {
                    call_id: call_id.clone(),
                    for_everyone: false,
                }
            };
            self.transmits.push_back(message);
            return;
        }
        let from = call.state();
        if call.apply_server_state(state, end_reason) {
            debug!(call_id = %call_id, ?from, to = ?state, "call state");
            self.push_state_changed(&call_id);
        } else if from != state {
            debug!(call_id = %call_id, ?from, ?state, "call_state does not apply, ignored");
        }
    }

    fn on_roster(&mut self, call_id: CallId, participants: Vec<ParticipantInfo>) {
        self.mark_refreshed(&call_id);
        let me = self.user.clone();
        let Some(call) = self.live_call_for_message(&call_id, "roster") else {
            return;
        };
        let next: BTreeMap<Identifier, RemoteParticipant> = participants
            .into_iter()
            .filter(|p| Some(&p.id) != me.as_ref() && p.state != ParticipantState::Disconnected)
            .map(|p| (p.id.clone(), RemoteParticipant::new(p)))
            .collect();
        let previous = std::mem::replace(call.participants_mut(), next);
        let current = call.participants_mut();
        let mut events = Vec::new();
        for (id, old) in previous.iter().filter(|(id, _)| !current.contains_key(*id)) {
            video_changes(&call_id, id, old.video(), &[], &mut events);
            events.push(Event::ParticipantRemoved {
                call_id: call_id.clone(),
                id: id.clone(),
                reason: None,
            });
        }
        for (id, participant) in current.iter() {
            match previous.get(id) {
                None => events.push(Event::ParticipantAdded {
                    call_id: call_id.clone(),
                    participant: participant.info().clone(),
                }),
                Some(old) if old != participant => events.push(Event::ParticipantUpdated {
                    call_id: call_id.clone(),
                    participant: participant.info().clone(),
                }),
                Some(_) => {}
            }
            let old = previous.get(id).map_or(&[][..], |p| p.video());
            video_changes(&call_id, id, old, participant.video(), &mut events);
        }
        self.events.extend(events);
    }

    fn on_participant(&mut self, call_id: CallId, participant: ParticipantInfo) {
        if Some(&participant.id) == self.user.as_ref() {
            debug!(call_id = %call_id, "participant message about ourselves, ignored");
            return;
        }
        if participant.state == ParticipantState::Disconnected {
            let reason = participant.end_reason.clone();
            self.on_participant_left(call_id, participant.id, reason);
            return;
        }
        let Some(call) = self.live_call_for_message(&call_id, "participant") else {
            return;
        };
        let entry = RemoteParticipant::new(participant.clone());
        let id = participant.id.clone();
        let new_video = participant.video.clone();
        let old = call.participants_mut().insert(id.clone(), entry);
        let event = match &old {
            None => Event::ParticipantAdded {
                call_id: call_id.clone(),
                participant,
            },
            Some(old) if old.info() != &participant => Event::ParticipantUpdated {
                call_id: call_id.clone(),
                participant,
            },
            Some(_) => return,
        };
        let mut events = vec![event];
        let old_video = old.as_ref().map_or(&[][..], |p| p.video());
        video_changes(&call_id, &id, old_video, &new_video, &mut events);
        self.events.extend(events);
    }

    fn on_participant_left(&mut self, call_id: CallId, id: Identifier, reason: Option<EndReason>) {
        if Some(&id) == self.user.as_ref() {
            debug!(call_id = %call_id, "participant_left about ourselves, ignored");
            return;
        }
        let Some(call) = self.live_call_for_message(&call_id, "participant_left") else {
            return;
        };
        match call.participants_mut().remove(&id) {
            Some(old) => {
                let mut events = Vec::new();
                video_changes(&call_id, &id, old.video(), &[], &mut events);
                self.events.extend(events);
            }
            None => {
                // Still reported: an invitee we never saw (an offline target of a group
                // call) leaves this way, and the app wants to know why they are not in it.
                debug!(call_id = %call_id, %id, "participant we did not know left");
            }
        }
        self.events.push_back(Event::ParticipantRemoved {
            call_id,
            id,
            reason,
        });
    }

    fn on_mute_state(&mut self, call_id: CallId, muted: bool) {
        self.mark_refreshed(&call_id);
        if let Some(call) = self.live_call_for_message(&call_id, "mute_state")
            && call.set_muted(muted)
        {
            self.events.push_back(Event::MuteChanged { call_id, muted });
        }
    }

    fn on_error(&mut self, code: ErrorCode, message: String, call_id: Option<CallId>) {
        debug!(?code, %message, ?call_id, "request failed");
        self.events.push_back(Event::RequestFailed {
            code,
            message: message.clone(),
            call_id: call_id.clone(),
        });
        let Some(call_id) = call_id else {
            return;
        };
        let Some(call) = self.calls.get_mut(&call_id) else {
            return;
        };
        if !call::is_live(call.state()) {
            return;
        }
        let reason = end_reason_for(code, &message);
        let changed = if code == ErrorCode::UnknownCall {
            // The server does not have us in this call: whatever we think, it is over.
            call.end(Some(reason));
            true
        } else {
            call.revert(reason)
        };
        if changed {
            self.push_state_changed(&call_id);
        }
    }

    fn on_pong(&mut self, seq: u64) {
        match self.awaiting_pong {
            Some(oldest) if seq >= oldest && seq < self.next_ping_seq => {
                self.awaiting_pong = None;
                self.timers.remove(&Timer::PongDeadline);
            }
            _ => debug!(seq, "pong for no ping of ours, ignored"),
        }
        if let Some((barrier, _)) = &self.resync
            && seq >= *barrier
            && seq < self.next_ping_seq
        {
            let (_, stale) = self.resync.take().expect("resync checked above");
            for id in stale {
                let Some(call) = self.calls.get(&id) else {
                    continue;
                };
                // A call we were leaving ended as asked; any other ended while we were away.
                let reason = match call.state() {
                    CallState::Disconnected => continue,
                    CallState::Disconnecting => EndReason::normal(),
                    _ => EndReason::connection_lost(),
                };
                debug!(call_id = %id, "resumed session no longer has the call, ended");
                self.end_call(&id, Some(reason));
            }
        }
    }

    fn on_goodbye(&mut self, reason: EndReason) {
        debug!(?reason, "server said goodbye");
        self.events.push_back(Event::Goodbye {
            reason: reason.clone(),
        });
        let live: Vec<CallId> = self
            .calls
            .values()
            .filter(|c| call::is_live(c.state()))
            .map(|c| c.id().clone())
            .collect();
        for id in live {
            self.end_call(&id, Some(reason.clone()));
        }
        self.reset_connection();
        self.state = ConnectionState::Disconnected;
        self.user = None;
        self.resume_token = None;
        self.resume_grace = None;
    }

    // ---- helpers ----

    /// Forgets everything about the current transport: queued messages, timers, pings.
    fn reset_connection(&mut self) {
        self.transmits.clear();
        self.timers.clear();
        self.awaiting_pong = None;
        self.resync = None;
    }

    fn send_ping(&mut self, now: Instant) -> u64 {
        let seq = self.next_ping_seq;
        self.next_ping_seq += 1;
        self.transmits.push_back(ClientMessage::Ping { seq });
        if self.awaiting_pong.is_none() {
            self.awaiting_pong = Some(seq);
            self.timers
                .insert(Timer::PongDeadline, now + self.config.pong_timeout);
        }
        seq
    }

    fn ensure_connected(&self) -> Result<(), Error> {
        if self.state == ConnectionState::Connected {
            Ok(())
        } else {
            Err(Error::NotConnected)
        }
    }

    /// The call a command is about, checking the connection first.
    fn connected_call(&mut self, call_id: &CallId) -> Result<&mut Call, Error> {
        self.ensure_connected()?;
        self.calls
            .get_mut(call_id)
            .ok_or_else(|| Error::UnknownCall(call_id.clone()))
    }

    /// A command that only sends a message when the call's state allows it.
    fn simple_command(
        &mut self,
        call_id: &CallId,
        action: Action,
        message: ClientMessage,
    ) -> Result<(), Error> {
        self.connected_call(call_id)?.request(action)?;
        self.transmits.push_back(message);
        Ok(())
    }

    /// The live call a server message is about; `None` (logged) for unknown or ended calls.
    fn live_call_for_message(&mut self, call_id: &CallId, kind: &str) -> Option<&mut Call> {
        match self.calls.get_mut(call_id) {
            Some(call) if call::is_live(call.state()) => Some(call),
            Some(_) => {
                debug!(call_id = %call_id, kind, "message for an ended call, ignored");
                None
            }
            None => {
                debug!(call_id = %call_id, kind, "message for an unknown call, ignored");
                None
            }
        }
    }

    /// After a resume, the server mentioned this call: it still has us in it.
    /// Returns whether this is the first mention.
    fn mark_refreshed(&mut self, call_id: &CallId) -> bool {
        match &mut self.resync {
            Some((_, waiting)) => waiting.remove(call_id),
            None => false,
        }
    }

    /// Adds a new call, replacing an ended call with the same id.
    fn insert_call(&mut self, call: Call) {
        self.calls.insert(call.id().clone(), call);
    }

    fn end_call(&mut self, call_id: &CallId, reason: Option<EndReason>) {
        if let Some(call) = self.calls.get_mut(call_id) {
            call.end(reason);
            self.push_state_changed(call_id);
        }
    }

    /// Reports the call's current state; when it has ended, files it for pruning.
    fn push_state_changed(&mut self, call_id: &CallId) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let state = call.state();
        let end_reason = if state == CallState::Disconnected {
            self.ended_count += 1;
            call.ended_seq = self.ended_count;
            call.end_reason().cloned()
        } else {
            None
        };
        self.events.push_back(Event::CallStateChanged {
            call_id: call_id.clone(),
            state,
            end_reason,
        });
        if state == CallState::Disconnected {
            self.prune_ended_calls();
        }
    }

    fn prune_ended_calls(&mut self) {
        loop {
            let ended = self.calls.values().filter(|c| !call::is_live(c.state()));
            if ended.clone().count() <= MAX_ENDED_CALLS {
                return;
            }
            let Some(oldest) = ended.min_by_key(|c| c.ended_seq).map(|c| c.id().clone()) else {
                return;
            };
            debug!(call_id = %oldest, "pruning ended call");
            self.calls.remove(&oldest);
        }
    }
}

/// How a call we set up locally ends when the server refuses the request.
/// Reports how a remote participant's video went from `old` to `new` (removals, then
/// changes and additions in `new`'s order; see the module docs). The first stream of a
/// kind counts; a server that lists a kind twice gets its later entries ignored.
fn video_changes(
    call_id: &CallId,
    participant: &Identifier,
    old: &[VideoStream],
    new: &[VideoStream],
    events: &mut Vec<Event>,
) {
    fn find(streams: &[VideoStream], kind: VideoKind) -> Option<&VideoStream> {
        streams.iter().find(|s| s.kind == kind)
    }
    // Each kind once, as its first stream.
    fn distinct(streams: &[VideoStream]) -> impl Iterator<Item = VideoStream> + '_ {
        streams
            .iter()
            .filter(|s| find(streams, s.kind).is_some_and(|first| std::ptr::eq(first, *s)))
            .copied()
    }
    for stream in distinct(old) {
        if find(new, stream.kind).is_none() {
            events.push(Event::RemoteVideoRemoved {
                call_id: call_id.clone(),
                participant: participant.clone(),
                kind: stream.kind,
            });
        }
    }
    for stream in distinct(new) {
        let event = match find(old, stream.kind) {
            None => Event::RemoteVideoAdded {
                call_id: call_id.clone(),
                participant: participant.clone(),
                stream,
            },
            Some(before) if before.size != stream.size => Event::RemoteVideoChanged {
                call_id: call_id.clone(),
                participant: participant.clone(),
                stream,
            },
            Some(_) => continue,
        };
        events.push(event);
    }
}

fn end_reason_for(code: ErrorCode, message: &str) -> EndReason {
    match code {
        ErrorCode::CallFull => EndReason::call_full(),
        ErrorCode::Forbidden | ErrorCode::MissingScope => EndReason::forbidden(message),
        ErrorCode::UnknownCall | ErrorCode::UnknownParticipant => EndReason::new(404, 0, message),
        _ => EndReason::new(500, 0, message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::MediaPayloadKind;

    fn user(id: &str) -> Identifier {
        Identifier::user(id).unwrap()
    }

    fn info(id: &str, state: ParticipantState) -> ParticipantInfo {
        ParticipantInfo {
            id: user(id),
            state,
            muted: false,
            speaking: false,
            video: Vec::new(),
            end_reason: None,
        }
    }

    fn call_state(call_id: &CallId, state: CallState) -> ServerMessage {
        ServerMessage::CallState {
            call_id: call_id.clone(),
            state,
            end_reason: None,
        }
    }

    fn ended(call_id: &CallId, reason: EndReason) -> ServerMessage {
        ServerMessage::CallState {
            call_id: call_id.clone(),
            state: CallState::Disconnected,
            end_reason: Some(reason),
        }
    }

    fn changed(call_id: &CallId, state: CallState, end_reason: Option<EndReason>) -> Event {
        Event::CallStateChanged {
            call_id: call_id.clone(),
            state,
            end_reason,
        }
    }

    /// A session for `8:alice`, its virtual clock, and what it sent and reported.
    struct Harness {
        session: ClientSession,
        now: Instant,
        sent: Vec<ClientMessage>,
        events: Vec<Event>,
    }

    impl Harness {
        fn new() -> Self {
            let now = Instant::now();
            Harness {
                session: ClientSession::new(SessionConfig::new("s3cret", 7), now),
                now,
                sent: Vec::new(),
                events: Vec::new(),
            }
        }

        /// Connected and authenticated as alice, outputs drained and cleared.
        fn connected() -> Self {
            let mut h = Harness::new();
            h.session.handle_connected(h.now);
            h.server(authenticated(false));
            h.take();
            h
        }

        fn drain(&mut self) {
            while let Some(m) = self.session.poll_transmit() {
                self.sent.push(m);
            }
            while let Some(e) = self.session.poll_event() {
                self.events.push(e);
            }
        }

        fn server(&mut self, message: ServerMessage) {
            self.session.handle_message(message, self.now).unwrap();
            self.drain();
        }

        fn advance_to(&mut self, at: Instant) {
            self.now = at;
            self.session.handle_timeout(at);
            self.drain();
        }

        fn take(&mut self) -> (Vec<ClientMessage>, Vec<Event>) {
            (
                std::mem::take(&mut self.sent),
                std::mem::take(&mut self.events),
            )
        }

        fn sent(&mut self) -> Vec<ClientMessage> {
            std::mem::take(&mut self.sent)
        }

        fn events(&mut self) -> Vec<Event> {
            std::mem::take(&mut self.events)
        }

        fn state(&self, call_id: &CallId) -> CallState {
            self.session.call(call_id).unwrap().state()
        }

        /// A 1:1 call to bob, connected.
        fn connected_call(&mut self) -> CallId {
            let id = self
                .session
                .start_call(&[user("bob")], JoinOptions::default(), self.now)
                .unwrap();
            self.drain();
            self.server(ServerMessage::Participant {
                call_id: id.clone(),
                participant: info("bob", ParticipantState::Connected),
            });
            self.server(call_state(&id, CallState::Connected));
            self.take();
            id
        }

        /// An incoming call from carol.
        fn incoming_call(&mut self, id: &str) -> CallId {
            let call_id = CallId::new(id).unwrap();
            self.server(ServerMessage::IncomingCall {
                call_id: call_id.clone(),
                caller: user("carol"),
                video: true,
                group_id: None,
            });
            self.take();
            call_id
        }

        /// The group call `g`, joined and connected with bob in it.
        fn group_call(&mut self, lobby: bool) -> CallId {
            let group = GroupId::new("g").unwrap();
            let id = self
                .session
                .join(&group, JoinOptions::default(), lobby, self.now)
                .unwrap();
            self.drain();
            self.server(call_state(&id, CallState::Connected));
            self.server(ServerMessage::Roster {
                call_id: id.clone(),
                participants: vec![info("bob", ParticipantState::Connected)],
            });
            self.take();
            id
        }
    }

    fn authenticated(resumed: bool) -> ServerMessage {
        ServerMessage::Authenticated {
            user: user("alice"),
            resume_token: "r1".into(),
            grace_ms: 30_000,
            resumed,
        }
    }

    #[test]
    fn connects_and_authenticates() {
        let mut h = Harness::new();
        assert_eq!(h.session.connection_state(), ConnectionState::Disconnected);
        h.session.handle_connected(h.now);
        h.drain();
        assert_eq!(
            h.sent(),
            vec![ClientMessage::Auth {
                token: "s3cret".into(),
                resume: None,
                client: ClientKind::Native,
            }]
        );
        assert_eq!(
            h.session.connection_state(),
            ConnectionState::Authenticating
        );
        h.server(authenticated(false));
        assert_eq!(h.session.connection_state(), ConnectionState::Connected);
        assert_eq!(h.session.user(), Some(&user("alice")));
        assert_eq!(h.session.resume_grace(), Some(Duration::from_secs(30)));
        assert_eq!(
            h.events(),
            vec![Event::Authenticated {
                user: user("alice"),
                resumed: false
            }]
        );
        // The token stays out of logs.
        assert!(!format!("{:?}", h.session).contains("s3cret"));
    }

    #[test]
    fn outgoing_one_to_one_accepted_then_hung_up() {
        let mut h = Harness::connected();
        let id = h
            .session
            .start_call(&[user("bob")], JoinOptions::default(), h.now)
            .unwrap();
        h.drain();
        assert_eq!(id.as_str().len(), 32);
        assert_eq!(
            h.sent(),
            vec![ClientMessage::StartCall {
                call_id: id.clone(),
                targets: vec![user("bob")],
                options: JoinOptions::default(),
                alternate_caller_id: None,
            }]
        );
        assert_eq!(h.events(), vec![changed(&id, CallState::Connecting, None)]);
        let call = h.session.call(&id).unwrap();
        assert_eq!(call.direction(), Direction::Outgoing);
        assert_eq!(call.caller(), None);

        h.server(ServerMessage::Participant {
            call_id: id.clone(),
            participant: info("bob", ParticipantState::Ringing),
        });
        h.server(call_state(&id, CallState::Ringing));
        assert_eq!(
            h.events(),
            vec![
                Event::ParticipantAdded {
                    call_id: id.clone(),
                    participant: info("bob", ParticipantState::Ringing),
                },
                changed(&id, CallState::Ringing, None),
            ]
        );

        h.server(ServerMessage::Participant {
            call_id: id.clone(),
            participant: info("bob", ParticipantState::Connected),
        });
        h.server(call_state(&id, CallState::Connected));
        // A repeated state is not an event.
        h.server(call_state(&id, CallState::Connected));
        assert_eq!(
            h.events(),
            vec![
                Event::ParticipantUpdated {
                    call_id: id.clone(),
                    participant: info("bob", ParticipantState::Connected),
                },
                changed(&id, CallState::Connected, None),
            ]
        );
        let bob = h.session.call(&id).unwrap().participant(&user("bob"));
        assert_eq!(bob.map(|p| p.state()), Some(ParticipantState::Connected));

        h.session.hang_up(&id, false, h.now).unwrap();
        h.drain();
        assert_eq!(
            h.sent(),
            vec![ClientMessage::HangUp {
                call_id: id.clone(),
                for_everyone: false
            }]
        );
        assert_eq!(h.state(&id), CallState::Disconnecting);
        // A late message from before the hang-up does not bring the call back.
        h.server(call_state(&id, CallState::Connected));
        assert_eq!(h.state(&id), CallState::Disconnecting);
        h.server(ended(&id, EndReason::normal()));
        assert_eq!(
            h.events(),
            vec![
                changed(&id, CallState::Disconnecting, None),
                changed(&id, CallState::Disconnected, Some(EndReason::normal())),
            ]
        );

        // Ended calls stay queryable, without participants, until removed.
        let call = h.session.call(&id).unwrap();
        assert_eq!(call.end_reason(), Some(&EndReason::normal()));
        assert_eq!(call.remote_participants().count(), 0);
        h.server(call_state(&id, CallState::Connected));
        assert_eq!(h.state(&id), CallState::Disconnected);
        assert!(h.events().is_empty());
        assert_eq!(h.session.remove_call(&id).unwrap().id(), &id);
        assert!(h.session.call(&id).is_none());
        assert!(matches!(
            h.session.remove_call(&id),
            Err(Error::UnknownCall(_))
        ));
    }

    #[test]
    fn incoming_call_accepted() {
        let mut h = Harness::connected();
        let id = CallId::new("c1").unwrap();
        h.server(ServerMessage::IncomingCall {
            call_id: id.clone(),
            caller: user("carol"),
            video: true,
            group_id: None,
        });
        assert_eq!(
            h.events(),
            vec![Event::IncomingCall {
                call_id: id.clone(),
                caller: user("carol"),
                video: true,
                group_id: None,
            }]
        );
        let call = h.session.call(&id).unwrap();
        assert_eq!(call.state(), CallState::Incoming);
        assert_eq!(call.direction(), Direction::Incoming);
        assert_eq!(call.caller(), Some(&user("carol")));
        assert!(call.caller_has_video());

        // A repeated invitation is ignored.
        h.server(ServerMessage::IncomingCall {
            call_id: id.clone(),
            caller: user("carol"),
            video: true,
            group_id: None,
        });
        assert!(h.events().is_empty());

        let options = JoinOptions {
            muted: true,
            video: true,
        };
        h.session.accept(&id, options, h.now).unwrap();
        h.drain();
        assert_eq!(
            h.sent(),
            vec![ClientMessage::Accept {
                call_id: id.clone(),
                options
            }]
        );
        assert_eq!(h.state(&id), CallState::Connecting);
        assert!(h.session.call(&id).unwrap().is_muted());
        assert_eq!(
            h.session.call(&id).unwrap().video(),
            &[VideoKind::Camera.into()]
        );
        h.server(call_state(&id, CallState::Connected));
        h.server(ServerMessage::Roster {
            call_id: id.clone(),
            participants: vec![info("carol", ParticipantState::Connected)],
        });
        assert_eq!(
            h.events(),
            vec![
                changed(&id, CallState::Connecting, None),
                changed(&id, CallState::Connected, None),
                Event::ParticipantAdded {
                    call_id: id.clone(),
                    participant: info("carol", ParticipantState::Connected),
                },
            ]
        );
    }

    #[test]
    fn incoming_call_rejected_or_hung_up() {
        let mut h = Harness::connected();
        let id = h.incoming_call("c1");
        h.session.reject(&id, h.now).unwrap();
        h.drain();
        assert_eq!(
            h.sent(),
            vec![ClientMessage::Reject {
                call_id: id.clone()
            }]
        );
        assert_eq!(h.state(&id), CallState::Disconnecting);
        h.server(ended(&id, EndReason::declined()));
        assert_eq!(
            h.session.call(&id).unwrap().end_reason(),
            Some(&EndReason::declined())
        );

        // Hanging up a ringing call declines it.
        let id = h.incoming_call("c2");
        h.session.hang_up(&id, true, h.now).unwrap();
        h.drain();
        assert_eq!(
            h.sent(),
            vec![ClientMessage::Reject {
                call_id: id.clone()
            }]
        );
        // An invitation may reuse the id of an ended call.
        h.server(ended(&id, EndReason::declined()));
        h.take();
        let id = h.incoming_call("c2");
        assert_eq!(h.state(&id), CallState::Incoming);
    }

    #[test]
    fn every_end_reason_reaches_the_app() {
        let reasons = [
            EndReason::unavailable(),
            EndReason::declined(),
            EndReason::no_answer(),
            EndReason::normal(),
            EndReason::remote_hung_up(),
            EndReason::removed(),
            EndReason::ended_for_everyone(),
            EndReason::media_failure(),
            EndReason::server_error(),
        ];
        let mut h = Harness::connected();
        for reason in reasons {
            let id = h.connected_call();
            h.server(ended(&id, reason.clone()));
            assert_eq!(
                h.events(),
                vec![changed(&id, CallState::Disconnected, Some(reason.clone()))]
            );
            assert_eq!(h.session.call(&id).unwrap().end_reason(), Some(&reason));
        }

        // Incoming: the caller cancels, another device answers, nobody answers.
        for (i, reason) in [
            EndReason::cancelled(),
            EndReason::answered_elsewhere(),
            EndReason::no_answer(),
        ]
        .into_iter()
        .enumerate()
        {
            let id = h.incoming_call(&format!("in{i}"));
            h.server(ended(&id, reason.clone()));
            assert_eq!(
                h.events(),
                vec![changed(&id, CallState::Disconnected, Some(reason))]
            );
        }

        // The other side of a 1:1 call hangs up: participant_left, then call_state.
        let id = h.connected_call();
        h.server(ServerMessage::ParticipantLeft {
            call_id: id.clone(),
            id: user("bob"),
            reason: EndReason::normal(),
        });
        h.server(ended(&id, EndReason::remote_hung_up()));
        assert_eq!(
            h.events(),
            vec![
                Event::ParticipantRemoved {
                    call_id: id.clone(),
                    id: user("bob"),
                    reason: Some(EndReason::normal()),
                },
                changed(
                    &id,
                    CallState::Disconnected,
                    Some(EndReason::remote_hung_up())
                ),
            ]
        );

        // A full group call, and a refused lobby.
        let group = GroupId::new("full").unwrap();
        let id = h
            .session
            .join(&group, JoinOptions::default(), false, h.now)
            .unwrap();
        h.server(ended(&id, EndReason::call_full()));
        assert_eq!(
            h.session.call(&id).unwrap().end_reason(),
            Some(&EndReason::call_full())
        );
        let id = h
            .session
            .join(&group, JoinOptions::default(), true, h.now)
            .unwrap();
        h.server(call_state(&id, CallState::InLobby));
        h.server(ended(&id, EndReason::lobby_refused()));
        assert_eq!(
            h.session.call(&id).unwrap().end_reason(),
            Some(&EndReason::lobby_refused())
        );
    }

    #[test]
    fn roster_replaces_participants_with_diffs() {
        let mut h = Harness::connected();
        let group = GroupId::new("g").unwrap();
        let id = h
            .session
            .join(&group, JoinOptions::default(), false, h.now)
            .unwrap();
        assert_eq!(id, CallId::for_group(&group));
        assert_eq!(h.session.call(&id).unwrap().group_id(), Some(&group));
        h.server(call_state(&id, CallState::Connected));
        h.server(ServerMessage::Roster {
            call_id: id.clone(),
            participants: vec![
                info("carol", ParticipantState::Connected),
                info("bob", ParticipantState::Connected),
                // Ourselves and the departed are not remote participants.
                info("alice", ParticipantState::Connected),
                info("zed", ParticipantState::Disconnected),
            ],
        });
        h.take();
        let ids: Vec<_> = h
            .session
            .call(&id)
            .unwrap()
            .remote_participants()
            .map(|p| p.id().to_string())
            .collect();
        assert_eq!(ids, ["8:bob", "8:carol"]);

        let mut bob = info("bob", ParticipantState::Connected);
        bob.muted = true;
        h.server(ServerMessage::Roster {
            call_id: id.clone(),
            participants: vec![bob.clone(), info("dave", ParticipantState::Connected)],
        });
        assert_eq!(
            h.events(),
            vec![
                Event::ParticipantRemoved {
                    call_id: id.clone(),
                    id: user("carol"),
                    reason: None,
                },
                Event::ParticipantUpdated {
                    call_id: id.clone(),
                    participant: bob.clone(),
                },
                Event::ParticipantAdded {
                    call_id: id.clone(),
                    participant: info("dave", ParticipantState::Connected),
                },
            ]
        );
        assert!(
            h.session
                .call(&id)
                .unwrap()
                .participant(&user("bob"))
                .unwrap()
                .is_muted()
        );

        // The same roster again: nothing.
        h.server(ServerMessage::Roster {
            call_id: id.clone(),
            participants: vec![info("dave", ParticipantState::Connected), bob.clone()],
        });
        assert!(h.events().is_empty());

        // participant upserts; the same view twice is one event.
        h.server(ServerMessage::Participant {
            call_id: id.clone(),
            participant: info("erin", ParticipantState::Ringing),
        });
        h.server(ServerMessage::Participant {
            call_id: id.clone(),
            participant: info("erin", ParticipantState::Ringing),
        });
        assert_eq!(h.events().len(), 1);

        // participant_left with a reason.
        h.server(ServerMessage::ParticipantLeft {
            call_id: id.clone(),
            id: user("erin"),
            reason: EndReason::no_answer(),
        });
        // About ourselves: ignored (our own end comes as call_state).
        h.server(ServerMessage::ParticipantLeft {
            call_id: id.clone(),
            id: user("alice"),
            reason: EndReason::normal(),
        });
        // A participant shown as disconnected has left.
        let mut gone = info("dave", ParticipantState::Disconnected);
        gone.end_reason = Some(EndReason::normal());
        h.server(ServerMessage::Participant {
            call_id: id.clone(),
            participant: gone,
        });
        assert_eq!(
            h.events(),
            vec![
                Event::ParticipantRemoved {
                    call_id: id.clone(),
                    id: user("erin"),
                    reason: Some(EndReason::no_answer()),
                },
                Event::ParticipantRemoved {
                    call_id: id.clone(),
                    id: user("dave"),
                    reason: Some(EndReason::normal()),
                },
            ]
        );

        h.server(ServerMessage::DominantSpeakers {
            call_id: id.clone(),
            speakers: vec![user("bob")],
        });
        h.server(ServerMessage::DominantSpeakers {
            call_id: id.clone(),
            speakers: vec![user("bob")],
        });
        assert_eq!(
            h.events(),
            vec![Event::DominantSpeakersChanged {
                call_id: id.clone(),
                speakers: vec![user("bob")],
            }]
        );
        assert_eq!(
            h.session.call(&id).unwrap().dominant_speakers(),
            &[user("bob")]
        );
    }

    #[test]
    fn invitees_never_seen_are_still_reported_when_they_leave() {
        let mut h = Harness::connected();
        let id = h
            .session
            .start_call(&[user("bob"), user("dave")], JoinOptions::default(), h.now)
            .unwrap();
        h.drain();
        h.take();
        h.server(ServerMessage::ParticipantLeft {
            call_id: id.clone(),
            id: user("dave"),
            reason: EndReason::unavailable(),
        });
        assert_eq!(
            h.events(),
            vec![Event::ParticipantRemoved {
                call_id: id.clone(),
                id: user("dave"),
                reason: Some(EndReason::unavailable()),
            }]
        );
        assert_eq!(
            h.session.call(&id).unwrap().remote_participants().count(),
            0
        );
    }

    #[test]
    fn local_and_remote_hold() {
        let mut h = Harness::connected();
        let id = h.connected_call();
        h.session.hold(&id, h.now).unwrap();
        h.drain();
        assert_eq!(
            h.sent(),
            vec![ClientMessage::Hold {
                call_id: id.clone()
            }]
        );
        // The server decides.
        assert!(!h.session.call(&id).unwrap().is_on_hold());
        h.server(call_state(&id, CallState::LocalHold));
        assert!(h.session.call(&id).unwrap().is_on_hold());
        assert!(matches!(
            h.session.hold(&id, h.now),
            Err(Error::InvalidState {
                state: CallState::LocalHold,
                action: "hold",
                ..
            })
        ));
        h.session.resume(&id, h.now).unwrap();
        h.server(call_state(&id, CallState::Connected));
        assert!(!h.session.call(&id).unwrap().is_on_hold());
        h.take();

        // Bob holds.
        h.server(ServerMessage::Participant {
            call_id: id.clone(),
            participant: info("bob", ParticipantState::Hold),
        });
        h.server(call_state(&id, CallState::RemoteHold));
        assert_eq!(h.state(&id), CallState::RemoteHold);
        assert!(!h.session.call(&id).unwrap().is_on_hold());
        assert!(matches!(
            h.session.resume(&id, h.now),
            Err(Error::InvalidState { .. })
        ));
        h.session.hold(&id, h.now).unwrap();
        h.server(call_state(&id, CallState::Connected));
        assert_eq!(h.events().len(), 3);
    }

    #[test]
    fn mute_follows_the_server() {
        let mut h = Harness::connected();
        let id = h.connected_call();
        assert!(!h.session.call(&id).unwrap().is_muted());
        h.session.mute(&id, h.now).unwrap();
        h.drain();
        assert_eq!(
            h.sent(),
            vec![ClientMessage::Mute {
                call_id: id.clone()
            }]
        );
        assert!(!h.session.call(&id).unwrap().is_muted());
        h.server(ServerMessage::MuteState {
            call_id: id.clone(),
            muted: true,
        });
        h.server(ServerMessage::MuteState {
            call_id: id.clone(),
            muted: true,
        });
        assert_eq!(
            h.events(),
            vec![Event::MuteChanged {
                call_id: id.clone(),
                muted: true
            }]
        );
        assert!(h.session.call(&id).unwrap().is_muted());
        h.session.unmute(&id, h.now).unwrap();
        h.drain();
        assert_eq!(
            h.sent(),
            vec![ClientMessage::Unmute {
                call_id: id.clone()
            }]
        );

        // Joining muted starts muted.
        let muted = JoinOptions {
            muted: true,
            video: false,
        };
        let id = h.session.start_call(&[user("bob")], muted, h.now).unwrap();
        assert!(h.session.call(&id).unwrap().is_muted());
    }

    #[test]
    fn one_video_stream_at_a_time() {
        let mut h = Harness::connected();
        let id = h.connected_call();
        h.session
            .start_video(&id, VideoKind::Camera, None, h.now)
            .unwrap();
        h.session
            .start_video(&id, VideoKind::Camera, None, h.now)
            .unwrap();
        h.drain();
        assert_eq!(
            h.sent(),
            vec![ClientMessage::StartVideo {
                call_id: id.clone(),
                kind: VideoKind::Camera,
                size: None,
            }]
        );
        assert_eq!(
            h.session.call(&id).unwrap().video(),
            &[VideoKind::Camera.into()]
        );
        assert!(matches!(
            h.session
                .start_video(&id, VideoKind::ScreenShare, None, h.now),
            Err(Error::VideoBusy {
                requested: VideoKind::ScreenShare,
                active: VideoKind::Camera,
                ..
            })
        ));
        h.session.stop_video(&id, VideoKind::Camera, h.now).unwrap();
        h.session.stop_video(&id, VideoKind::Camera, h.now).unwrap();
        h.session
            .start_video(&id, VideoKind::ScreenShare, None, h.now)
            .unwrap();
        h.drain();
        assert_eq!(
            h.sent(),
            vec![
                ClientMessage::StopVideo {
                    call_id: id.clone(),
                    kind: VideoKind::Camera
                },
                ClientMessage::StartVideo {
                    call_id: id.clone(),
                    kind: VideoKind::ScreenShare,
                    size: None,
                },
            ]
        );

        // Remote video is what the server says.
        let mut bob = info("bob", ParticipantState::Connected);
        bob.video = vec![VideoKind::Camera.into()];
        h.server(ServerMessage::Participant {
            call_id: id.clone(),
            participant: bob,
        });
        let call = h.session.call(&id).unwrap();
        assert_eq!(
            call.participant(&user("bob")).unwrap().video(),
            &[VideoKind::Camera.into()]
        );

        // Joining with video turns the camera on; ending the call turns it off.
        let video = JoinOptions {
            muted: false,
            video: true,
        };
        let id = h.session.start_call(&[user("bob")], video, h.now).unwrap();
        assert_eq!(
            h.session.call(&id).unwrap().video(),
            &[VideoKind::Camera.into()]
        );
        h.server(ended(&id, EndReason::unavailable()));
        assert!(h.session.call(&id).unwrap().video().is_empty());
    }

    #[test]
    fn starting_video_again_announces_a_new_size() {
        let mut h = Harness::connected();
        let id = h.connected_call();
        let vga = VideoSize::new(640, 480);
        let hd = VideoSize::new(1280, 720);
        let start = |size| ClientMessage::StartVideo {
            call_id: id.clone(),
            kind: VideoKind::Camera,
            size,
        };
        h.session
            .start_video(&id, VideoKind::Camera, Some(vga), h.now)
            .unwrap();
        // The same size again is nothing new; another size (or none) is.
        h.session
            .start_video(&id, VideoKind::Camera, Some(vga), h.now)
            .unwrap();
        h.session
            .start_video(&id, VideoKind::Camera, Some(hd), h.now)
            .unwrap();
        h.drain();
        assert_eq!(h.sent(), vec![start(Some(vga)), start(Some(hd))]);
        let camera_hd = VideoStream {
            kind: VideoKind::Camera,
            size: Some(hd),
        };
        assert_eq!(h.session.call(&id).unwrap().video(), &[camera_hd]);

        // Sizes the protocol refuses are refused here, and change nothing.
        for bad in [
            VideoSize::new(0, 720),
            VideoSize::new(1280, 0),
            VideoSize::new(7681, 1),
            VideoSize::new(4321, 4321),
        ] {
            assert!(
                matches!(
                    h.session
                        .start_video(&id, VideoKind::Camera, Some(bad), h.now),
                    Err(Error::InvalidArgument(_))
                ),
                "{bad}"
            );
        }
        // Both orientations of the largest size are fine.
        assert!(VideoSize::new(7680, 4320).is_valid());
        assert!(VideoSize::new(4320, 7680).is_valid());
        h.drain();
        assert_eq!(h.sent(), vec![]);
        assert_eq!(h.session.call(&id).unwrap().video(), &[camera_hd]);
    }

    #[test]
    fn remote_video_events_follow_the_participant() {
        let mut h = Harness::connected();
        let id = h.connected_call();
        h.take();
        let bob_id = user("bob");
        let stream = |kind, size: Option<(u32, u32)>| VideoStream {
            kind,
            size: size.map(|(w, h)| VideoSize::new(w, h)),
        };
        let with = |video: Vec<VideoStream>| {
            let mut bob = info("bob", ParticipantState::Connected);
            bob.video = video;
            bob
        };
        let added = |stream| Event::RemoteVideoAdded {
            call_id: id.clone(),
            participant: bob_id.clone(),
            stream,
        };
        let changed = |stream| Event::RemoteVideoChanged {
            call_id: id.clone(),
            participant: bob_id.clone(),
            stream,
        };
        let removed = |kind| Event::RemoteVideoRemoved {
            call_id: id.clone(),
            participant: bob_id.clone(),
            kind,
        };
        let updated = |participant| Event::ParticipantUpdated {
            call_id: id.clone(),
            participant,
        };
        let participant = |info| ServerMessage::Participant {
            call_id: id.clone(),
            participant: info,
        };

        let vga = stream(VideoKind::Camera, Some((640, 480)));
        h.server(participant(with(vec![vga])));
        assert_eq!(h.events(), vec![updated(with(vec![vga])), added(vga)]);

        // A new size: the same stream, changed.
        let hd = stream(VideoKind::Camera, Some((1280, 720)));
        h.server(participant(with(vec![hd])));
        assert_eq!(h.events(), vec![updated(with(vec![hd])), changed(hd)]);

        // Other changes say nothing about video.
        let mut muted = with(vec![hd]);
        muted.muted = true;
        h.server(participant(muted.clone()));
        assert_eq!(h.events(), vec![updated(muted)]);

        // Camera to screen share: the camera goes, then the screen comes. A kind
        // listed twice counts once.
        let screen = stream(VideoKind::ScreenShare, None);
        let twice = with(vec![screen, stream(VideoKind::ScreenShare, Some((1, 1)))]);
        h.server(participant(twice.clone()));
        assert_eq!(
            h.events(),
            vec![updated(twice), removed(VideoKind::Camera), added(screen)]
        );

        // Leaving ends every stream first.
        h.server(ServerMessage::ParticipantLeft {
            call_id: id.clone(),
            id: bob_id.clone(),
            reason: EndReason::normal(),
        });
        assert_eq!(
            h.events(),
            vec![
                removed(VideoKind::ScreenShare),
                Event::ParticipantRemoved {
                    call_id: id.clone(),
                    id: bob_id.clone(),
                    reason: Some(EndReason::normal()),
                }
            ]
        );

        // Appearing in a roster adds the streams; leaving it removes them.
        let roster = |participants| ServerMessage::Roster {
            call_id: id.clone(),
            participants,
        };
        h.server(roster(vec![with(vec![vga])]));
        assert_eq!(
            h.events(),
            vec![
                Event::ParticipantAdded {
                    call_id: id.clone(),
                    participant: with(vec![vga]),
                },
                added(vga)
            ]
        );
        h.server(roster(vec![]));
        assert_eq!(
            h.events(),
            vec![
                removed(VideoKind::Camera),
                Event::ParticipantRemoved {
                    call_id: id.clone(),
                    id: bob_id.clone(),
                    reason: None,
                }
            ]
        );
    }

    #[test]
    fn lobby_wait_and_admit() {
        let mut h = Harness::connected();
        let group = GroupId::new("lobby").unwrap();
        let id = h
            .session
            .join(&group, JoinOptions::default(), true, h.now)
            .unwrap();
        h.drain();
        assert_eq!(
            h.sent(),
            vec![ClientMessage::Join {
                group_id: group.clone(),
                options: JoinOptions::default(),
                lobby: true
            }]
        );
        h.server(call_state(&id, CallState::InLobby));
        assert_eq!(h.state(&id), CallState::InLobby);
        assert!(matches!(
            h.session.admit(&id, &user("bob"), h.now),
            Err(Error::InvalidState {
                state: CallState::InLobby,
                ..
            })
        ));
        h.server(call_state(&id, CallState::Connected));
        h.server(ServerMessage::Roster {
            call_id: id.clone(),
            participants: vec![info("bob", ParticipantState::Connected)],
        });
        h.take();

        // Now someone waits for us to admit them.
        h.server(ServerMessage::Participant {
            call_id: id.clone(),
            participant: info("dave", ParticipantState::InLobby),
        });
        assert!(matches!(
            h.session.admit(&id, &user("bob"), h.now),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            h.session.admit(&id, &user("nobody"), h.now),
            Err(Error::UnknownParticipant { .. })
        ));
        h.session.admit(&id, &user("dave"), h.now).unwrap();
        h.drain();
        assert_eq!(
            h.sent(),
            vec![ClientMessage::Admit {
                call_id: id.clone(),
                target: user("dave")
            }]
        );
        h.server(ServerMessage::Participant {
            call_id: id.clone(),
            participant: info("dave", ParticipantState::InLobby),
        });
        h.session
            .remove_participant(&id, &user("dave"), h.now)
            .unwrap();
        h.drain();
        assert_eq!(
            h.sent(),
            vec![ClientMessage::RemoveParticipant {
                call_id: id.clone(),
                target: user("dave")
            }]
        );
    }

    #[test]
    fn add_participant_promotes_and_checks_targets() {
        let mut h = Harness::connected();
        let id = h.connected_call();
        h.session
            .add_participant(&id, &user("carol"), h.now)
            .unwrap();
        h.drain();
        assert_eq!(
            h.sent(),
            vec![ClientMessage::AddParticipant {
                call_id: id.clone(),
                target: user("carol")
            }]
        );
        assert!(matches!(
            h.session.add_participant(&id, &user("bob"), h.now),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            h.session.add_participant(&id, &user("alice"), h.now),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            h.session.remove_participant(&id, &user("alice"), h.now),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            h.session.remove_participant(&id, &user("carol"), h.now),
            Err(Error::UnknownParticipant { .. })
        ));
        assert!(h.sent().is_empty());
    }

    #[test]
    fn resume_keeps_calls_and_drops_the_ones_the_server_forgot() {
        let mut h = Harness::connected();
        let kept = h.connected_call();
        let forgotten = h.connected_call();
        let ringing = h.incoming_call("ring");

        h.session.handle_disconnected(h.now);
        h.drain();
        assert_eq!(h.session.connection_state(), ConnectionState::Reconnecting);
        assert_eq!(h.session.poll_timeout(), None);
        assert!(matches!(
            h.session.mute(&kept, h.now),
            Err(Error::NotConnected)
        ));
        // Nothing happens to the calls meanwhile.
        assert_eq!(h.state(&kept), CallState::Connected);
        assert!(h.events().is_empty());

        h.session.handle_connected(h.now);
        h.drain();
        assert_eq!(
            h.sent(),
            vec![ClientMessage::Auth {
                token: "s3cret".into(),
                resume: Some("r1".into()),
                client: ClientKind::Native,
            }]
        );
        h.server(authenticated(true));
        // A ping right after the resume marks the end of the server's refresh.
        let sent = h.sent();
        let [ClientMessage::Ping { seq }] = sent.as_slice() else {
            panic!("expected one ping, got {sent:?}");
        };
        h.server(call_state(&kept, CallState::Connected));
        h.server(ServerMessage::Roster {
            call_id: kept.clone(),
            participants: vec![info("bob", ParticipantState::Connected)],
        });
        h.server(ServerMessage::MuteState {
            call_id: kept.clone(),
            muted: false,
        });
        assert_eq!(
            h.events(),
            vec![Event::Authenticated {
                user: user("alice"),
                resumed: true
            }]
        );
        h.server(ServerMessage::Pong { seq: *seq });
        assert_eq!(
            h.events(),
            vec![changed(
                &forgotten,
                CallState::Disconnected,
                Some(EndReason::connection_lost())
            )]
        );
        assert_eq!(h.state(&kept), CallState::Connected);
        assert_eq!(h.state(&ringing), CallState::Incoming);
        h.session.mute(&kept, h.now).unwrap();
    }

    #[test]
    fn leave_requests_lost_in_a_reconnect_are_sent_again() {
        let mut h = Harness::connected();
        let still_in = h.connected_call();
        let already_out = h.connected_call();
        h.session.hang_up(&still_in, false, h.now).unwrap();
        h.session.hang_up(&already_out, false, h.now).unwrap();
        h.session.handle_disconnected(h.now);
        h.session.handle_connected(h.now);
        h.drain();
        h.take();
        h.server(authenticated(true));
        let sent = h.sent();
        let [ClientMessage::Ping { seq }] = sent.as_slice() else {
            panic!("expected one ping, got {sent:?}");
        };
        h.server(call_state(&still_in, CallState::Connected));
        assert_eq!(
            h.sent(),
            vec![ClientMessage::HangUp {
                call_id: still_in.clone(),
                for_everyone: false
            }]
        );
        assert_eq!(h.state(&still_in), CallState::Disconnecting);
        h.server(ServerMessage::Pong { seq: *seq });
        assert_eq!(h.state(&still_in), CallState::Disconnecting);
        assert_eq!(
            h.session.call(&already_out).unwrap().end_reason(),
            Some(&EndReason::normal())
        );
        h.server(ended(&still_in, EndReason::normal()));
        assert_eq!(h.state(&still_in), CallState::Disconnected);
    }

    #[test]
    fn failed_resume_ends_calls() {
        let mut h = Harness::connected();
        let a = h.connected_call();
        let b = h.incoming_call("ring");
        h.session.handle_disconnected(h.now);
        h.session.handle_connected(h.now);
        h.drain();
        h.take();
        h.server(authenticated(false));
        let lost = Some(EndReason::connection_lost());
        let mut expected = vec![
            Event::Authenticated {
                user: user("alice"),
                resumed: false,
            },
            changed(&a, CallState::Disconnected, lost.clone()),
            changed(&b, CallState::Disconnected, lost.clone()),
        ];
        // Calls end in id order.
        if b < a {
            expected.swap(1, 2);
        }
        assert_eq!(h.events(), expected);
        assert!(h.sent().is_empty());
    }

    #[test]
    fn keepalive_pings_and_detects_a_dead_server() {
        let mut h = Harness::connected();
        let id = h.connected_call();
        let start = h.now;
        let ping_at = start + Duration::from_secs(15);
        assert_eq!(h.session.poll_timeout(), Some(ping_at));

        // Early is fine: nothing happens.
        h.advance_to(start + Duration::from_secs(1));
        assert!(h.sent().is_empty());

        h.advance_to(ping_at);
        assert_eq!(h.sent(), vec![ClientMessage::Ping { seq: 1 }]);
        assert_eq!(
            h.session.poll_timeout(),
            Some(ping_at + Duration::from_secs(10))
        );
        // A pong for a ping never sent is ignored.
        h.server(ServerMessage::Pong { seq: 99 });
        assert_eq!(
            h.session.poll_timeout(),
            Some(ping_at + Duration::from_secs(10))
        );
        h.server(ServerMessage::Pong { seq: 1 });
        assert_eq!(
            h.session.poll_timeout(),
            Some(ping_at + Duration::from_secs(15))
        );

        let second = ping_at + Duration::from_secs(15);
        h.advance_to(second);
        assert_eq!(h.sent(), vec![ClientMessage::Ping { seq: 2 }]);
        h.advance_to(second + Duration::from_secs(10));
        assert_eq!(h.events(), vec![Event::ConnectionLost]);
        assert_eq!(h.session.connection_state(), ConnectionState::Reconnecting);
        assert_eq!(h.session.poll_timeout(), None);
        assert_eq!(h.state(&id), CallState::Connected);
        // The driver may still report the transport down: nothing more happens.
        h.session.handle_disconnected(h.now);
        h.drain();
        assert!(h.events().is_empty());
    }

    #[test]
    fn unanswered_auth_is_a_lost_connection() {
        let mut h = Harness::new();
        h.session.handle_connected(h.now);
        h.drain();
        let deadline = h.session.poll_timeout().unwrap();
        assert_eq!(deadline, h.now + Duration::from_secs(10));
        h.advance_to(deadline);
        assert_eq!(h.events(), vec![Event::ConnectionLost]);
        assert_eq!(h.session.connection_state(), ConnectionState::Reconnecting);
    }

    #[test]
    fn bad_bytes_change_nothing() {
        let mut h = Harness::connected();
        let id = h.connected_call();
        let before = format!("{:?}", h.session);
        for bytes in [
            &b"garbage"[..],
            b"{}",
            br#"{"v":2,"type":"pong","seq":1}"#,
            br#"{"v":1,"type":"teleport"}"#,
            br#"{"v":1,"type":"call_state","call_id":"bad id","state":"connected"}"#,
        ] {
            assert!(matches!(
                h.session.handle_bytes(bytes, h.now),
                Err(Error::Malformed(_))
            ));
        }
        h.drain();
        assert_eq!(h.take(), (Vec::new(), Vec::new()));
        assert_eq!(format!("{:?}", h.session), before);

        // Good bytes go through.
        let bytes = ended(&id, EndReason::normal()).encode();
        h.session.handle_bytes(&bytes, h.now).unwrap();
        assert_eq!(h.state(&id), CallState::Disconnected);
    }

    #[test]
    fn messages_for_unknown_calls_are_ignored() {
        let mut h = Harness::connected();
        let ghost = CallId::new("ghost").unwrap();
        for message in [
            call_state(&ghost, CallState::Connected),
            ServerMessage::Roster {
                call_id: ghost.clone(),
                participants: vec![info("bob", ParticipantState::Connected)],
            },
            ServerMessage::Participant {
                call_id: ghost.clone(),
                participant: info("bob", ParticipantState::Connected),
            },
            ServerMessage::ParticipantLeft {
                call_id: ghost.clone(),
                id: user("bob"),
                reason: EndReason::normal(),
            },
            ServerMessage::MuteState {
                call_id: ghost.clone(),
                muted: true,
            },
            ServerMessage::DominantSpeakers {
                call_id: ghost.clone(),
                speakers: vec![],
            },
            ServerMessage::Media {
                call_id: ghost.clone(),
                payload: MediaPayload {
                    kind: MediaPayloadKind::Answer,
                    sdp: "v=0".into(),
                },
            },
            ServerMessage::Pong { seq: 0 },
        ] {
            h.server(message);
        }
        assert_eq!(h.take(), (Vec::new(), Vec::new()));
        assert_eq!(h.session.calls().count(), 0);
    }

    #[test]
    fn media_payloads_both_ways() {
        let mut h = Harness::connected();
        let id = h.connected_call();
        let offer = MediaPayload {
            kind: MediaPayloadKind::Offer,
            sdp: "v=0".into(),
        };
        h.session.send_media(&id, offer.clone(), h.now).unwrap();
        h.server(ServerMessage::Media {
            call_id: id.clone(),
            payload: offer.clone(),
        });
        assert_eq!(
            h.take(),
            (
                vec![ClientMessage::Media {
                    call_id: id.clone(),
                    payload: offer.clone()
                }],
                vec![Event::MediaReceived {
                    call_id: id,
                    payload: offer
                }]
            )
        );
    }

    #[test]
    fn commands_in_wrong_states_are_typed_errors() {
        let mut h = Harness::new();
        let bob = user("bob");
        let none = JoinOptions::default();
        assert!(matches!(
            h.session
                .start_call(std::slice::from_ref(&bob), none, h.now),
            Err(Error::NotConnected)
        ));
        h.session.handle_connected(h.now);
        assert!(matches!(
            h.session
                .start_call(std::slice::from_ref(&bob), none, h.now),
            Err(Error::NotConnected)
        ));
        h.server(authenticated(false));
        h.take();

        for (targets, what) in [
            (vec![], "no targets"),
            (vec![bob.clone(), bob.clone()], "duplicate"),
            (vec![user("alice")], "self"),
            (
                (0..=MAX_TARGETS).map(|i| user(&format!("u{i}"))).collect(),
                "too many",
            ),
        ] {
            assert!(
                matches!(
                    h.session.start_call(&targets, none, h.now),
                    Err(Error::InvalidArgument(_))
                ),
                "{what}"
            );
        }

        let ghost = CallId::new("ghost").unwrap();
        assert!(matches!(
            h.session.hang_up(&ghost, false, h.now),
            Err(Error::UnknownCall(c)) if c == ghost
        ));

        let out = h
            .session
            .start_call(std::slice::from_ref(&bob), none, h.now)
            .unwrap();
        h.take();
        assert!(matches!(
            h.session.accept(&out, none, h.now),
            Err(Error::InvalidState {
                state: CallState::Connecting,
                action: "accept",
                ..
            })
        ));
        assert!(matches!(
            h.session.reject(&out, h.now),
            Err(Error::InvalidState { .. })
        ));
        assert!(matches!(
            h.session.remove_call(&out),
            Err(Error::InvalidState { .. })
        ));
        assert!(matches!(
            h.session.hold(&out, h.now),
            Err(Error::InvalidState { .. })
        ));

        let incoming = h.incoming_call("in");
        for result in [
            h.session.mute(&incoming, h.now),
            h.session.hold(&incoming, h.now),
            h.session
                .start_video(&incoming, VideoKind::Camera, None, h.now),
            h.session.add_participant(&incoming, &user("dave"), h.now),
        ] {
            assert!(matches!(result, Err(Error::InvalidState { .. })));
        }

        let group = h.group_call(false);
        assert!(matches!(
            h.session.join(&group.group().unwrap(), none, false, h.now),
            Err(Error::InvalidState { action: "join", .. })
        ));

        h.session.hang_up(&out, false, h.now).unwrap();
        assert!(matches!(
            h.session.hang_up(&out, false, h.now),
            Err(Error::InvalidState {
                state: CallState::Disconnecting,
                ..
            })
        ));
        h.drain();
        h.server(ended(&out, EndReason::normal()));
        assert!(matches!(
            h.session.mute(&out, h.now),
            Err(Error::InvalidState {
                state: CallState::Disconnected,
                ..
            })
        ));
        // Rejected commands sent nothing.
        assert_eq!(
            h.sent(),
            vec![ClientMessage::HangUp {
                call_id: out,
                for_everyone: false
            }]
        );
    }

    #[test]
    fn refused_requests_are_undone() {
        let mut h = Harness::connected();
        // An accept the server refuses: back to ringing.
        let id = h.incoming_call("in");
        h.session
            .accept(&id, JoinOptions::default(), h.now)
            .unwrap();
        h.server(ServerMessage::Error {
            code: ErrorCode::InvalidState,
            message: "not ringing".into(),
            call_id: Some(id.clone()),
        });
        assert_eq!(h.state(&id), CallState::Incoming);
        let (_, events) = h.take();
        assert_eq!(
            events,
            vec![
                changed(&id, CallState::Connecting, None),
                Event::RequestFailed {
                    code: ErrorCode::InvalidState,
                    message: "not ringing".into(),
                    call_id: Some(id.clone()),
                },
                changed(&id, CallState::Incoming, None),
            ]
        );

        // A call the server refuses to start: ended, with a reason from the error.
        let out = h
            .session
            .start_call(&[user("bob")], JoinOptions::default(), h.now)
            .unwrap();
        h.server(ServerMessage::Error {
            code: ErrorCode::MissingScope,
            message: "no voip scope".into(),
            call_id: Some(out.clone()),
        });
        assert_eq!(h.state(&out), CallState::Disconnected);
        assert_eq!(
            h.session.call(&out).unwrap().end_reason(),
            Some(&EndReason::forbidden("no voip scope"))
        );

        // A confirmed call the server does not know: over.
        let known = h.connected_call();
        h.server(ServerMessage::Error {
            code: ErrorCode::UnknownCall,
            message: "no such call".into(),
            call_id: Some(known.clone()),
        });
        assert_eq!(h.state(&known), CallState::Disconnected);

        // Other errors about confirmed calls change nothing.
        let other = h.connected_call();
        h.server(ServerMessage::Error {
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
            call_id: Some(other.clone()),
        });
        assert_eq!(h.state(&other), CallState::Connected);
    }

    #[test]
    fn goodbye_ends_everything() {
        let mut h = Harness::connected();
        let id = h.connected_call();
        h.server(ServerMessage::Goodbye {
            reason: EndReason::shutting_down(),
        });
        assert_eq!(
            h.events(),
            vec![
                Event::Goodbye {
                    reason: EndReason::shutting_down()
                },
                changed(
                    &id,
                    CallState::Disconnected,
                    Some(EndReason::shutting_down())
                ),
            ]
        );
        assert_eq!(h.session.connection_state(), ConnectionState::Disconnected);
        assert_eq!(h.session.poll_timeout(), None);
        // A new connection starts a new session.
        h.session.handle_connected(h.now);
        h.drain();
        assert!(matches!(
            h.sent().as_slice(),
            [ClientMessage::Auth { resume: None, .. }]
        ));
    }

    #[test]
    fn protocol_violations_are_reported_and_ignored() {
        let mut h = Harness::new();
        h.session.handle_connected(h.now);
        h.drain();
        let id = CallId::new("c").unwrap();
        assert!(matches!(
            h.session
                .handle_message(call_state(&id, CallState::Connected), h.now),
            Err(Error::PeerMisbehaved(_))
        ));
        h.server(authenticated(false));
        assert!(matches!(
            h.session.handle_message(authenticated(false), h.now),
            Err(Error::PeerMisbehaved(_))
        ));
        // Without a transport, messages are dropped.
        h.session.handle_disconnected(h.now);
        h.server(ServerMessage::IncomingCall {
            call_id: id,
            caller: user("carol"),
            video: false,
            group_id: None,
        });
        assert_eq!(h.session.calls().count(), 0);
    }

    #[test]
    fn call_ids_come_from_the_seed() {
        let ids = |seed| {
            let mut h = Harness::connected();
            h.session = ClientSession::new(SessionConfig::new("s3cret", seed), h.now);
            h.session.handle_connected(h.now);
            h.server(authenticated(false));
            (0..3)
                .map(|_| {
                    h.session
                        .start_call(&[user("bob")], JoinOptions::default(), h.now)
                        .unwrap()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(1), ids(1));
        assert_ne!(ids(1), ids(2));
        let first = ids(1).remove(0);
        assert!(first.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn oldest_ended_calls_are_pruned() {
        let mut h = Harness::connected();
        let mut ended_ids = Vec::new();
        for _ in 0..=MAX_ENDED_CALLS {
            let id = h
                .session
                .start_call(&[user("bob")], JoinOptions::default(), h.now)
                .unwrap();
            h.server(ended(&id, EndReason::unavailable()));
            ended_ids.push(id);
        }
        let live = h.connected_call();
        assert_eq!(h.session.calls().count(), MAX_ENDED_CALLS + 1);
        assert!(h.session.call(&ended_ids[0]).is_none());
        assert!(h.session.call(&ended_ids[1]).is_some());
        assert!(h.session.call(&live).is_some());
    }
}
