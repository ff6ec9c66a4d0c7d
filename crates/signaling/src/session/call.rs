//! One call as the client sees it, and the rules for moving it between states.

use std::collections::BTreeMap;

use crate::error::Error;
use crate::id::{CallId, GroupId, Identifier};
use crate::protocol::{
    CallState, EndReason, ParticipantInfo, ParticipantState, VideoKind, VideoStream,
};

/// Who started a call, from this client's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Someone called us (`incoming_call`).
    Incoming,
    /// We started or joined it (`start_call`, `join`).
    Outgoing,
}

/// A call this session is in, or was in: a read-only view.
///
/// Mutated only by the session, from server messages and commands.
#[derive(Debug, Clone)]
pub struct Call {
    id: CallId,
    state: CallState,
    direction: Direction,
    caller: Option<Identifier>,
    caller_video: bool,
    group_id: Option<GroupId>,
    muted: bool,
    video: Vec<VideoStream>,
    participants: BTreeMap<Identifier, RemoteParticipant>,
    dominant_speakers: Vec<Identifier>,
    video_slots: Vec<crate::protocol::VideoSlot>,
    end_reason: Option<EndReason>,
    /// The state before a local transition the server has not confirmed yet, so that
    /// an `error` about the call can undo it. `Some(None)`: the call was created locally.
    pending: Option<Option<CallState>>,
    /// Order in which calls ended, for pruning the oldest ended calls first.
    pub(super) ended_seq: u64,
}

/// A remote participant of a call: a read-only view of what the server last said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteParticipant {
    info: ParticipantInfo,
}

/// A request made of a call; each is allowed in some states only (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    Accept,
    Reject,
    HangUp,
    Hold,
    Resume,
    /// Mute, unmute, start and stop video.
    Media,
    /// Add or remove a participant.
    Invite,
    Admit,
    /// Send a media negotiation payload.
    Negotiate,
    /// Forget an ended call.
    Remove,
}

impl Action {
    /// The verb used in [`Error::InvalidState`].
    fn verb(self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::Reject => "reject",
            Action::HangUp => "hang up",
            Action::Hold => "hold",
            Action::Resume => "resume",
            Action::Media => "change media of",
            Action::Invite => "change participants of",
            Action::Admit => "admit into",
            Action::Negotiate => "send media payload for",
            Action::Remove => "remove",
        }
    }

    /// Whether the action is allowed in `state`, and the state it sets at once when
    /// it is (`Some(None)`: allowed, the state stays until the server says otherwise).
    ///
    /// The single place where local requests are allowed or rejected.
    fn transition(self, state: CallState) -> Option<Option<CallState>> {
        use CallState as S;
        let in_call = matches!(state, S::Connected | S::LocalHold | S::RemoteHold);
        let joining = matches!(
            state,
            S::Connecting | S::Ringing | S::EarlyMedia | S::InLobby
        );
        match self {
            Action::Accept => (state == S::Incoming).then_some(Some(S::Connecting)),
            Action::Reject => (state == S::Incoming).then_some(Some(S::Disconnecting)),
            Action::HangUp => {
                (state == S::Incoming || in_call || joining).then_some(Some(S::Disconnecting))
            }
            Action::Hold => matches!(state, S::Connected | S::RemoteHold).then_some(None),
            Action::Resume => (state == S::LocalHold).then_some(None),
            Action::Media | Action::Negotiate => (in_call || joining).then_some(None),
            Action::Invite => {
                (in_call || matches!(state, S::Ringing | S::EarlyMedia)).then_some(None)
            }
            Action::Admit => in_call.then_some(None),
            Action::Remove => (state == S::Disconnected).then_some(None),
        }
    }
}

/// Whether the call is still going on for this client.
pub(super) fn is_live(state: CallState) -> bool {
    state != CallState::Disconnected
}

impl Call {
    /// The call's id, the same for every participant.
    pub fn id(&self) -> &CallId {
        &self.id
    }

    /// This client's state in the call.
    pub fn state(&self) -> CallState {
        self.state
    }

    /// Whether we called or were called.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Who called us, for an incoming call.
    pub fn caller(&self) -> Option<&Identifier> {
        self.caller.as_ref()
    }

    /// Whether the caller of an incoming call had video on when it rang.
    pub fn caller_has_video(&self) -> bool {
        self.caller_video
    }

    /// The group, for a call joined by group id or an invitation into one.
    pub fn group_id(&self) -> Option<&GroupId> {
        self.group_id.as_ref()
    }

    /// Whether our microphone is muted, as the server last said (initially as joined).
    pub fn is_muted(&self) -> bool {
        self.muted
    }

    /// Whether we put the call on hold (state [`CallState::LocalHold`]).
    pub fn is_on_hold(&self) -> bool {
        self.state == CallState::LocalHold
    }

    /// The video streams we send, with the size we last announced for each.
    pub fn video(&self) -> &[VideoStream] {
        &self.video
    }

    /// Everyone else in the call, ordered by id. Empty once the call is disconnected.
    pub fn remote_participants(&self) -> impl Iterator<Item = &RemoteParticipant> {
        self.participants.values()
    }

    /// One remote participant.
    pub fn participant(&self, id: &Identifier) -> Option<&RemoteParticipant> {
        self.participants.get(id)
    }

    /// The dominant speakers, most dominant first.
    pub fn dominant_speakers(&self) -> &[Identifier] {
        &self.dominant_speakers
    }

    /// What our video receive slots show, in offer order (empty before the media
    /// plane said).
    pub fn video_slots(&self) -> &[crate::protocol::VideoSlot] {
        &self.video_slots
    }

    /// Why the call ended, once it is [`CallState::Disconnected`] (when the server said).
    pub fn end_reason(&self) -> Option<&EndReason> {
        self.end_reason.as_ref()
    }

    /// A call we start or join: `Connecting` until the server says otherwise.
    pub(super) fn outgoing(
        id: CallId,
        group_id: Option<GroupId>,
        muted: bool,
        video: bool,
    ) -> Self {
        let mut call = Call::new(id, CallState::Connecting, Direction::Outgoing);
        call.group_id = group_id;
        call.muted = muted;
        call.video = initial_video(video);
        call.pending = Some(None);
        call
    }

    /// A call that rings here.
    pub(super) fn incoming(
        id: CallId,
        caller: Identifier,
        caller_video: bool,
        group_id: Option<GroupId>,
    ) -> Self {
        let mut call = Call::new(id, CallState::Incoming, Direction::Incoming);
        call.caller = Some(caller);
        call.caller_video = caller_video;
        call.group_id = group_id;
        call
    }

    fn new(id: CallId, state: CallState, direction: Direction) -> Self {
        Call {
            id,
            state,
            direction,
            caller: None,
            caller_video: false,
            group_id: None,
            muted: false,
            video: Vec::new(),
            participants: BTreeMap::new(),
            dominant_speakers: Vec::new(),
            video_slots: Vec::new(),
            end_reason: None,
            pending: None,
            ended_seq: 0,
        }
    }

    /// Checks that `action` is allowed now and applies its local state change.
    ///
    /// Returns the new state when it changed.
    pub(super) fn request(&mut self, action: Action) -> Result<Option<CallState>, Error> {
        let Some(next) = action.transition(self.state) else {
            return Err(Error::InvalidState {
                call: self.id.clone(),
                state: self.state,
                action: action.verb(),
            });
        };
        let Some(next) = next else {
            return Ok(None);
        };
        if next == self.state {
            return Ok(None);
        }
        // Keep the oldest unconfirmed state: that is what the server still has.
        if self.pending.is_none() {
            self.pending = Some(Some(self.state));
        }
        self.state = next;
        Ok(Some(next))
    }

    /// Applies `call_state` from the server. Returns whether the state changed.
    ///
    /// The server is authoritative, except that nothing leaves `Disconnected`, a call
    /// we are leaving only takes `Disconnected`, and `None` means nothing to a call
    /// that exists.
    pub(super) fn apply_server_state(
        &mut self,
        state: CallState,
        end_reason: Option<EndReason>,
    ) -> bool {
        self.pending = None;
        let accepted = match self.state {
            CallState::Disconnected => false,
            CallState::Disconnecting => state == CallState::Disconnected,
            _ => state != CallState::None,
        };
        if !accepted || state == self.state {
            return false;
        }
        if state == CallState::Disconnected {
            self.end(end_reason);
        } else {
            self.state = state;
        }
        true
    }

    /// Undoes an unconfirmed local transition after the server refused a request
    /// about this call: back to the state the server still has, or, for a call we
    /// created locally, ended with `reason`. Returns whether the state changed.
    pub(super) fn revert(&mut self, reason: EndReason) -> bool {
        match self.pending.take() {
            None => false,
            Some(Some(previous)) => {
                let changed = previous != self.state;
                self.state = previous;
                changed
            }
            Some(None) => {
                self.end(Some(reason));
                true
            }
        }
    }

    /// Ends the call locally (or as the server said).
    pub(super) fn end(&mut self, reason: Option<EndReason>) {
        self.state = CallState::Disconnected;
        self.end_reason = reason;
        self.pending = None;
        self.video.clear();
        self.participants.clear();
        self.dominant_speakers.clear();
        self.video_slots.clear();
    }

    /// Whether we are leaving a call that was ringing here (a `reject` not yet confirmed).
    pub(super) fn left_while_ringing(&self) -> bool {
        self.pending == Some(Some(CallState::Incoming))
    }

    pub(super) fn set_muted(&mut self, muted: bool) -> bool {
        let changed = self.muted != muted;
        self.muted = muted;
        changed
    }

    pub(super) fn set_joined_with(&mut self, muted: bool, video: bool) {
        self.muted = muted;
        self.video = initial_video(video);
    }

    pub(super) fn video_mut(&mut self) -> &mut Vec<VideoStream> {
        &mut self.video
    }

    pub(super) fn participants_mut(&mut self) -> &mut BTreeMap<Identifier, RemoteParticipant> {
        &mut self.participants
    }

    pub(super) fn set_video_slots(&mut self, slots: Vec<crate::protocol::VideoSlot>) -> bool {
        if self.video_slots == slots {
            return false;
        }
        self.video_slots = slots;
        true
    }

    pub(super) fn set_dominant_speakers(&mut self, speakers: Vec<Identifier>) -> bool {
        if self.dominant_speakers == speakers {
            return false;
        }
        self.dominant_speakers = speakers;
        true
    }
}

impl RemoteParticipant {
    pub(super) fn new(info: ParticipantInfo) -> Self {
        RemoteParticipant { info }
    }

    /// Who.
    pub fn id(&self) -> &Identifier {
        &self.info.id
    }

    /// Their state in the call.
    pub fn state(&self) -> ParticipantState {
        self.info.state
    }

    /// Whether their microphone is muted.
    pub fn is_muted(&self) -> bool {
        self.info.muted
    }

    /// Whether they are speaking now.
    pub fn is_speaking(&self) -> bool {
        self.info.speaking
    }

    /// The video streams they send (at most one per kind), with their sizes when
    /// the sender announced them.
    pub fn video(&self) -> &[VideoStream] {
        &self.info.video
    }

    /// The stream of `kind` they send, if any.
    pub fn video_stream(&self, kind: VideoKind) -> Option<&VideoStream> {
        self.info.video.iter().find(|s| s.kind == kind)
    }

    /// Why they left, when the server said.
    pub fn end_reason(&self) -> Option<&EndReason> {
        self.info.end_reason.as_ref()
    }

    /// Everything the server said about them.
    pub fn info(&self) -> &ParticipantInfo {
        &self.info
    }
}

fn initial_video(video: bool) -> Vec<VideoStream> {
    if video {
        vec![VideoStream {
            kind: VideoKind::Camera,
            size: None,
        }]
    } else {
        Vec::new()
    }
}
