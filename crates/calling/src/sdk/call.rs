//! [`Call`]: the app's handle to one call, the [`RemoteParticipant`]s it shows and
//! the [`CallEvent`]s it reports.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use ringwire_media::client::CallMediaStats;
use ringwire_media::video::VideoSource;
use ringwire_signaling::session::Direction;
use ringwire_signaling::{
    CallId, CallState, EndReason, ErrorCode, Identifier, ParticipantInfo, ParticipantState,
    VideoKind, VideoStream,
};
use tokio::sync::{broadcast, watch};

use super::agent::AgentShared;
use super::options::HangUpOptions;
use crate::error::Error;
use crate::media::{AudioHandle, AudioOptions};
use crate::video::VideoStats;

/// How many call events a slow [`CallEvents`] reader may fall behind before it
/// misses the oldest.
const EVENT_CAPACITY: usize = 256;

/// Something that changed in a call; the [`Call`]'s accessors already show it when
/// the event is received.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallEvent {
    /// Our state in the call changed.
    StateChanged {
        /// The new state.
        state: CallState,
        /// Why the call ended, once it has and a reason is known.
        end_reason: Option<EndReason>,
    },
    /// Someone appeared in the call.
    ParticipantAdded(RemoteParticipant),
    /// A participant changed (state, mute, speaking, video).
    ParticipantUpdated(RemoteParticipant),
    /// Someone left the call.
    ParticipantRemoved {
        /// Who.
        identifier: Identifier,
        /// Why, when the server said.
        reason: Option<EndReason>,
    },
    /// Our own microphone was muted or unmuted.
    MuteChanged {
        /// Whether we are muted now.
        muted: bool,
    },
    /// The dominant speakers changed (most dominant first).
    DominantSpeakersChanged(Vec<Identifier>),
    /// A participant started sending a video stream.
    RemoteVideoAdded {
        /// Who sends it.
        participant: Identifier,
        /// Its kind and size.
        stream: VideoStream,
    },
    /// A participant's video stream changed size.
    RemoteVideoChanged {
        /// Who sends it.
        participant: Identifier,
        /// The stream as it is now.
        stream: VideoStream,
    },
    /// A participant's video stream ended.
    RemoteVideoRemoved {
        /// Who sent it.
        participant: Identifier,
        /// Which of their streams ended.
        kind: VideoKind,
    },
    /// A phone participant pressed keys (DTMF, RFC 4733 on their leg).
    DtmfReceived {
        /// Who pressed them.
        from: Identifier,
        /// The digits, in order (`0-9`, `*`, `#`, `A-D`).
        digits: String,
    },
    /// The server refused a request about this call.
    RequestFailed {
        /// What went wrong, stable for programs.
        code: ErrorCode,
        /// For people.
        message: String,
    },
}

/// A remote participant of a call: a live handle, cheap to clone, `Send`. Its
/// accessors show the latest the call knows about them (after they left: their last
/// state, `Disconnected`, and why they left); [`RemoteParticipant::events`] reports
/// each change. Holding it does not keep the call alive.
#[derive(Clone)]
pub struct RemoteParticipant {
    identifier: Identifier,
    slot: Arc<CallSlot>,
}

/// Something that changed about one remote participant, from
/// [`RemoteParticipant::events`]; the handle's accessors already show it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParticipantEvent {
    /// Their state changed (connecting, connected, on hold, in the lobby, gone).
    StateChanged {
        /// The new state.
        state: ParticipantState,
    },
    /// Their microphone was muted or unmuted.
    MutedChanged {
        /// Whether they are muted now.
        muted: bool,
    },
    /// They started or stopped speaking.
    SpeakingChanged {
        /// Whether they speak now.
        speaking: bool,
    },
    /// They started sending a video stream.
    VideoStreamAdded(VideoStream),
    /// One of their video streams changed size.
    VideoStreamChanged(VideoStream),
    /// One of their video streams ended.
    VideoStreamRemoved {
        /// Which of their streams ended.
        kind: VideoKind,
    },
    /// They left the call (hung up, were removed, declined, lost their connection).
    Left {
        /// Why, when the server said.
        reason: Option<EndReason>,
    },
}

/// A call's media counters.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct MediaStats {
    /// The audio engine's counters (packets, jitter buffer).
    pub audio: CallMediaStats,
    /// The video counters (frames captured, sent, received, decoded).
    pub video: VideoStats,
}

/// The stream of a call's [`CallEvent`]s from when it was made.
#[derive(Debug)]
pub struct CallEvents {
    events: broadcast::Receiver<CallEvent>,
    missed: u64,
}

/// The `ParticipantEvent`s about one remote participant, from
/// [`RemoteParticipant::events`] or [`Call::participant_events`].
#[derive(Debug)]
pub struct ParticipantEvents {
    events: broadcast::Receiver<(Identifier, ParticipantEvent)>,
    who: Identifier,
    missed: u64,
}

/// A handle to one call: cheap to clone, `Send`. Reading accessors show the
/// signaling session's latest view of the call; commands go to the server.
///
/// Dropping the last handle of a live call hangs it up (for us only) and stops its
/// media; the call's [`CallAgent`](super::CallAgent) stays.
#[derive(Debug, Clone)]
pub struct Call {
    inner: Arc<CallInner>,
}

/// What the agent's dispatcher keeps up to date for one call.
#[derive(Debug)]
pub(crate) struct CallSlot {
    pub(crate) snapshot: watch::Sender<Snapshot>,
    pub(crate) events: broadcast::Sender<CallEvent>,
    pub(crate) participant_events: broadcast::Sender<(Identifier, ParticipantEvent)>,
    /// Each remote participant as last reported by an event, kept after they left
    /// (the session's roster drops them).
    pub(crate) reported: Mutex<BTreeMap<Identifier, ParticipantInfo>>,
}

/// The session's view of a call, and whether the agent still runs.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) call: ringwire_signaling::Call,
    /// The agent stopped: nothing about this call will change any more.
    pub(crate) closed: bool,
}

/// Shared by every handle of a call; dropping it hangs the call up.
#[derive(Debug)]
pub(crate) struct CallInner {
    agent: Arc<AgentShared>,
    id: CallId,
    slot: Arc<CallSlot>,
    snapshot: watch::Receiver<Snapshot>,
    audio: Mutex<Option<AudioHandle>>,
}

impl CallSlot {
    pub(crate) fn new(call: ringwire_signaling::Call) -> Arc<CallSlot> {
        let (snapshot, _) = watch::channel(Snapshot {
            call,
            closed: false,
        });
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let (participant_events, _) = broadcast::channel(EVENT_CAPACITY);
        Arc::new(CallSlot {
            snapshot,
            events,
            participant_events,
            reported: Mutex::new(BTreeMap::new()),
        })
    }

    /// A handle to remote participant `identifier` of this call.
    pub(crate) fn participant(self: &Arc<Self>, identifier: Identifier) -> RemoteParticipant {
        RemoteParticipant {
            identifier,
            slot: Arc::clone(self),
        }
    }

    /// Takes in what a participant event said about `info.id`, and reports what
    /// changed on the participant's own stream.
    pub(crate) fn participant_reported(&self, info: &ParticipantInfo) {
        let old = self
            .reported
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(info.id.clone(), info.clone());
        let mut changes = Vec::new();
        if old.as_ref().map(|o| o.state) != Some(info.state) {
            changes.push(ParticipantEvent::StateChanged { state: info.state });
        }
        if old.as_ref().is_some_and(|o| o.muted) != info.muted {
            changes.push(ParticipantEvent::MutedChanged { muted: info.muted });
        }
        if old.as_ref().is_some_and(|o| o.speaking) != info.speaking {
            changes.push(ParticipantEvent::SpeakingChanged {
                speaking: info.speaking,
            });
        }
        let was_gone = old
            .as_ref()
            .is_some_and(|o| o.state == ParticipantState::Disconnected);
        if info.state == ParticipantState::Disconnected && !was_gone {
            changes.push(ParticipantEvent::Left {
                reason: info.end_reason.clone(),
            });
        }
        for change in changes {
            let _ = self.participant_events.send((info.id.clone(), change));
        }
    }

    /// `identifier` left the call (or was dropped from the roster) because of `reason`.
    pub(crate) fn participant_removed(&self, identifier: &Identifier, reason: Option<&EndReason>) {
        let mut reported = self.reported.lock().unwrap_or_else(PoisonError::into_inner);
        let info = reported
            .entry(identifier.clone())
            .or_insert_with(|| ParticipantInfo {
                id: identifier.clone(),
                state: ParticipantState::Idle,
                muted: false,
                speaking: false,
                video: Vec::new(),
                end_reason: None,
            });
        if info.state == ParticipantState::Disconnected {
            return;
        }
        info.state = ParticipantState::Disconnected;
        info.speaking = false;
        info.video.clear();
        if reason.is_some() {
            info.end_reason = reason.cloned();
        }
        let reason = info.end_reason.clone();
        drop(reported);
        for change in [
            ParticipantEvent::StateChanged {
                state: ParticipantState::Disconnected,
            },
            ParticipantEvent::Left { reason },
        ] {
            let _ = self.participant_events.send((identifier.clone(), change));
        }
    }

    /// Reports a change of one of `identifier`'s video streams.
    pub(crate) fn participant_video(&self, identifier: &Identifier, change: ParticipantEvent) {
        let _ = self.participant_events.send((identifier.clone(), change));
    }
}

impl Call {
    pub(crate) fn new(agent: Arc<AgentShared>, id: CallId, slot: Arc<CallSlot>) -> Call {
        let snapshot = slot.snapshot.subscribe();
        Call {
            inner: Arc::new(CallInner {
                agent,
                id,
                slot,
                snapshot,
                audio: Mutex::new(None),
            }),
        }
    }

    pub(crate) fn inner(&self) -> &Arc<CallInner> {
        &self.inner
    }

    pub(crate) fn from_inner(inner: Arc<CallInner>) -> Call {
        Call { inner }
    }

    fn view<T>(&self, f: impl FnOnce(&ringwire_signaling::Call) -> T) -> T {
        f(&self.inner.snapshot.borrow().call)
    }

    /// The call's id, the same on every participant's side.
    pub fn id(&self) -> &CallId {
        &self.inner.id
    }

    /// Our state in the call.
    pub fn state(&self) -> CallState {
        self.view(|c| c.state())
    }

    /// Whether we placed or joined the call, or it rang here.
    pub fn direction(&self) -> Direction {
        self.view(|c| c.direction())
    }

    /// Who called, for an incoming call.
    pub fn caller(&self) -> Option<Identifier> {
        self.view(|c| c.caller().cloned())
    }

    /// Whether our microphone is muted.
    pub fn is_muted(&self) -> bool {
        self.view(|c| c.is_muted())
    }

    /// Whether we put the call on hold.
    pub fn is_on_hold(&self) -> bool {
        self.state() == CallState::LocalHold
    }

    /// Why the call ended, once it has and a reason is known.
    pub fn end_reason(&self) -> Option<EndReason> {
        self.view(|c| c.end_reason().cloned())
    }

    /// The video streams we send.
    pub fn local_video(&self) -> Vec<VideoStream> {
        self.view(|c| c.video().to_vec())
    }

    /// Everyone else in the call (in the lobby too), ordered by identifier.
    pub fn remote_participants(&self) -> Vec<RemoteParticipant> {
        let ids: Vec<Identifier> = self.view(|c| {
            c.remote_participants()
                .map(|p| p.info().id.clone())
                .collect()
        });
        ids.into_iter()
            .map(|id| self.inner.slot.participant(id))
            .collect()
    }

    /// One remote participant, if they are in the call's roster.
    pub fn remote_participant(&self, identifier: &Identifier) -> Option<RemoteParticipant> {
        self.view(|c| c.participant(identifier).is_some())
            .then(|| self.inner.slot.participant(identifier.clone()))
    }

    /// Those waiting in the call's lobby to be admitted ([`Call::admit`]).
    pub fn lobby_participants(&self) -> Vec<RemoteParticipant> {
        self.remote_participants()
            .into_iter()
            .filter(|p| p.state() == ParticipantState::InLobby)
            .collect()
    }

    /// Who speaks most, most dominant first.
    pub fn dominant_speakers(&self) -> Vec<Identifier> {
        self.view(|c| c.dominant_speakers().to_vec())
    }

    /// The media counters, while the call's media runs.
    pub fn media_stats(&self) -> Option<MediaStats> {
        let audio = self
            .inner
            .audio
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        audio.as_ref().map(|a| MediaStats {
            audio: a.stats(),
            video: a.video_stats(),
        })
    }

    /// The call's events from now on.
    pub fn events(&self) -> CallEvents {
        CallEvents {
            events: self.inner.slot.events.subscribe(),
            missed: 0,
        }
    }

    /// The events about remote participant `identifier` from now on (whether or not
    /// they are in the call yet).
    pub fn participant_events(&self, identifier: &Identifier) -> ParticipantEvents {
        self.inner.slot.participant(identifier.clone()).events()
    }

    /// Waits until `done` holds for this call (checked now and after every change).
    ///
    /// # Errors
    /// [`Error::Closed`] when the agent stopped before `done` held.
    pub async fn wait_until(&self, mut done: impl FnMut(&Call) -> bool) -> Result<(), Error> {
        let mut changes = self.inner.slot.snapshot.subscribe();
        loop {
            changes.borrow_and_update();
            if done(self) {
                return Ok(());
            }
            if changes.borrow().closed || changes.changed().await.is_err() {
                return Err(Error::Closed);
            }
        }
    }

    /// Waits until the call is in `state`.
    ///
    /// # Errors
    /// As [`Call::wait_until`].
    pub async fn wait_for_state(&self, state: CallState) -> Result<(), Error> {
        self.wait_until(|c| c.state() == state).await
    }

    /// Mutes our microphone: the others see it, and no audio is sent.
    ///
    /// # Errors
    /// [`Error::Session`] when the call is not in progress; [`Error::Closed`].
    pub async fn mute(&self) -> Result<(), Error> {
        let result = self.inner.agent.client.mute(&self.inner.id).await;
        self.synced(result).await
    }

    /// Unmutes our microphone.
    ///
    /// # Errors
    /// As [`Call::mute`].
    pub async fn unmute(&self) -> Result<(), Error> {
        let result = self.inner.agent.client.unmute(&self.inner.id).await;
        self.synced(result).await
    }

    /// Puts the call on hold: no audio either way until [`Call::resume`].
    ///
    /// # Errors
    /// [`Error::Session`] unless the call is connected; [`Error::Closed`].
    pub async fn hold(&self) -> Result<(), Error> {
        let result = self.inner.agent.client.hold(&self.inner.id).await;
        self.synced(result).await
    }

    /// Takes the call off hold.
    ///
    /// # Errors
    /// [`Error::Session`] unless we hold the call; [`Error::Closed`].
    pub async fn resume(&self) -> Result<(), Error> {
        let result = self.inner.agent.client.resume(&self.inner.id).await;
        self.synced(result).await
    }

    /// Starts the call's media when it was made without
    /// [`StartCallOptions::audio`](super::StartCallOptions::audio) (or to switch
    /// devices after the earlier media stopped).
    ///
    /// # Errors
    /// As [`SignalingClient::start_audio`](crate::SignalingClient::start_audio).
    pub async fn start_audio(&self, options: AudioOptions) -> Result<(), Error> {
        let handle = self
            .inner
            .agent
            .client
            .start_audio(&self.inner.id, options)
            .await?;
        *self
            .inner
            .audio
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(handle);
        Ok(())
    }

    /// Waits until the call's audio flows.
    ///
    /// # Errors
    /// [`Error::AudioEnded`] when it stopped first; [`Error::Closed`] when the call
    /// has no media.
    pub async fn wait_media_connected(&self) -> Result<(), Error> {
        let state = {
            let audio = self
                .inner
                .audio
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            audio.as_ref().map(AudioHandle::watch_state)
        };
        let Some(mut state) = state else {
            return Err(Error::Closed);
        };
        loop {
            match state.borrow_and_update().clone() {
                crate::AudioState::Connected => return Ok(()),
                crate::AudioState::Ended(end) => return Err(Error::AudioEnded(end)),
                _ => {}
            }
            state.changed().await.map_err(|_| Error::Closed)?;
        }
    }

    /// Starts sending camera video from `source` (the call's media must run with
    /// video options).
    ///
    /// # Errors
    /// As [`SignalingClient::start_video`](crate::SignalingClient::start_video).
    pub async fn start_video(&self, source: impl VideoSource + 'static) -> Result<(), Error> {
        let result = self
            .inner
            .agent
            .client
            .start_video(&self.inner.id, VideoKind::Camera, source)
            .await;
        self.synced(result).await
    }

    /// Stops the camera video; does nothing when no camera is sent.
    ///
    /// # Errors
    /// As [`SignalingClient::stop_video`](crate::SignalingClient::stop_video).
    pub async fn stop_video(&self) -> Result<(), Error> {
        self.stop_kind(VideoKind::Camera).await
    }

    /// Replaces the source of the video being sent (camera or screen share).
    ///
    /// # Errors
    /// As [`SignalingClient::switch_video_source`](crate::SignalingClient::switch_video_source).
    pub async fn switch_source(&self, source: impl VideoSource + 'static) -> Result<(), Error> {
        let result = self
            .inner
            .agent
            .client
            .switch_video_source(&self.inner.id, source)
            .await;
        self.synced(result).await
    }

    /// Starts sharing the screen from `source` (stop the camera first).
    ///
    /// # Errors
    /// As [`Call::start_video`].
    pub async fn start_screen_sharing(
        &self,
        source: impl VideoSource + 'static,
    ) -> Result<(), Error> {
        let result = self
            .inner
            .agent
            .client
            .start_video(&self.inner.id, VideoKind::ScreenShare, source)
            .await;
        self.synced(result).await
    }

    /// Stops sharing the screen; does nothing when it is not shared.
    ///
    /// # Errors
    /// As [`Call::stop_video`].
    pub async fn stop_screen_sharing(&self) -> Result<(), Error> {
        self.stop_kind(VideoKind::ScreenShare).await
    }

    /// Passes `result` on once this call's snapshot shows what the command did.
    async fn synced(&self, result: Result<(), Error>) -> Result<(), Error> {
        if result.is_ok() {
            self.inner.agent.sync(&self.inner.id).await;
        }
        result
    }

    async fn stop_kind(&self, kind: VideoKind) -> Result<(), Error> {
        if self.local_video().iter().any(|s| s.kind == kind) {
            let result = self.inner.agent.client.stop_video(&self.inner.id).await;
            self.synced(result).await
        } else {
            Ok(())
        }
    }

    /// Asks for at most `max_videos` remote cameras with `pinned`'s first.
    ///
    /// # Errors
    /// As [`SignalingClient::set_video_preferences`](crate::SignalingClient::set_video_preferences).
    pub async fn set_video_preferences(
        &self,
        max_videos: Option<u8>,
        pinned: Option<Identifier>,
    ) -> Result<(), Error> {
        let result = self
            .inner
            .agent
            .client
            .set_video_preferences(&self.inner.id, max_videos, pinned)
            .await;
        self.synced(result).await
    }

    /// Invites `target` into the call (a 1:1 call becomes a group call).
    ///
    /// # Errors
    /// [`Error::Session`] when the call is not in progress; [`Error::Closed`].
    pub async fn add_participant(&self, target: &Identifier) -> Result<(), Error> {
        let result = self
            .inner
            .agent
            .client
            .add_participant(&self.inner.id, target)
            .await;
        self.synced(result).await
    }

    /// Sends DTMF `digits` (`0-9`, `*`, `#`, `A-D`, at most 32) to the call's phone
    /// participants (an IVR menu, a conference PIN); keys a phone presses arrive as
    /// [`CallEvent::DtmfReceived`].
    ///
    /// # Errors
    /// [`Error::Session`] for digits outside that set or a call not connected;
    /// [`Error::Closed`].
    pub async fn send_dtmf(&self, digits: &str) -> Result<(), Error> {
        self.inner
            .agent
            .client
            .send_dtmf(&self.inner.id, digits)
            .await
    }

    /// Lets `target` in from the lobby (see [`Call::lobby_participants`]).
    ///
    /// # Errors
    /// [`Error::Session`] when the call is not in progress or `target` is not
    /// waiting in its lobby; [`Error::Closed`].
    pub async fn admit(&self, target: &Identifier) -> Result<(), Error> {
        let result = self.inner.agent.client.admit(&self.inner.id, target).await;
        self.synced(result).await
    }

    /// Removes `target` from the call.
    ///
    /// # Errors
    /// As [`Call::add_participant`].
    pub async fn remove_participant(&self, target: &Identifier) -> Result<(), Error> {
        let result = self
            .inner
            .agent
            .client
            .remove_participant(&self.inner.id, target)
            .await;
        self.synced(result).await
    }

    /// Leaves the call, or with [`HangUpOptions::for_everyone`] ends it for all.
    /// Returns once the request is sent; [`CallEvent::StateChanged`] tells when the
    /// call is over.
    ///
    /// # Errors
    /// [`Error::Session`] when the call is already over; [`Error::Closed`].
    pub async fn hang_up(&self, options: HangUpOptions) -> Result<(), Error> {
        let result = self
            .inner
            .agent
            .client
            .hang_up(&self.inner.id, options.for_everyone)
            .await;
        self.synced(result).await
    }
}

impl Drop for CallInner {
    fn drop(&mut self) {
        self.agent.forget(&self.id);
        let live = !matches!(
            self.snapshot.borrow().call.state(),
            CallState::Disconnecting | CallState::Disconnected
        );
        if !live {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let agent = Arc::clone(&self.agent);
        let id = self.id.clone();
        runtime.spawn(async move {
            if let Err(error) = agent.client.hang_up(&id, false).await {
                tracing::debug!(%id, %error, "hanging up a dropped call");
            }
        });
    }
}

impl RemoteParticipant {
    /// `f` of what the call knows about them: the roster, or the last report after
    /// they left it.
    fn with_info<T>(&self, f: impl FnOnce(Option<&ParticipantInfo>) -> T) -> T {
        let snapshot = self.slot.snapshot.borrow();
        if let Some(p) = snapshot.call.participant(&self.identifier) {
            return f(Some(p.info()));
        }
        drop(snapshot);
        let reported = self
            .slot
            .reported
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f(reported.get(&self.identifier))
    }

    /// Who they are.
    pub fn identifier(&self) -> &Identifier {
        &self.identifier
    }

    /// A name to show. The server does not carry display names yet, so this is
    /// always `None`; show [`RemoteParticipant::identifier`] instead.
    pub fn display_name(&self) -> Option<&str> {
        None
    }

    /// Their state in the call (`Disconnected` once they left it).
    pub fn state(&self) -> ParticipantState {
        self.with_info(|p| p.map_or(ParticipantState::Disconnected, |p| p.state))
    }

    /// Whether their microphone is muted.
    pub fn is_muted(&self) -> bool {
        self.with_info(|p| p.is_some_and(|p| p.muted))
    }

    /// Whether they are speaking now, as the server reports it (the server does not
    /// report it yet, so this stays `false`; [`RemoteParticipant::is_dominant_speaker`]
    /// says who leads).
    pub fn is_speaking(&self) -> bool {
        self.with_info(|p| {
            p.is_some_and(|p| p.speaking && p.state != ParticipantState::Disconnected)
        })
    }

    /// Whether they are the most dominant speaker of the call now.
    pub fn is_dominant_speaker(&self) -> bool {
        self.slot.snapshot.borrow().call.dominant_speakers().first() == Some(&self.identifier)
    }

    /// The video streams they send, with kind and size.
    pub fn video_streams(&self) -> Vec<VideoStream> {
        self.with_info(|p| p.map(|p| p.video.clone()).unwrap_or_default())
    }

    /// Why they left, once they have and the server said.
    pub fn end_reason(&self) -> Option<EndReason> {
        self.with_info(|p| p.and_then(|p| p.end_reason.clone()))
    }

    /// The changes about them from now on.
    pub fn events(&self) -> ParticipantEvents {
        ParticipantEvents {
            events: self.slot.participant_events.subscribe(),
            who: self.identifier.clone(),
            missed: 0,
        }
    }
}

impl fmt::Debug for RemoteParticipant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteParticipant")
            .field("identifier", &self.identifier)
            .field("state", &self.state())
            .field("muted", &self.is_muted())
            .finish_non_exhaustive()
    }
}

/// Two handles are equal when they name the same participant of the same call.
impl PartialEq for RemoteParticipant {
    fn eq(&self, other: &Self) -> bool {
        self.identifier == other.identifier && Arc::ptr_eq(&self.slot, &other.slot)
    }
}

impl Eq for RemoteParticipant {}

impl CallEvent {
    /// The remote participant the event is about, if it is about one.
    pub fn participant(&self) -> Option<&Identifier> {
        match self {
            CallEvent::ParticipantAdded(p) | CallEvent::ParticipantUpdated(p) => {
                Some(p.identifier())
            }
            CallEvent::ParticipantRemoved { identifier, .. } => Some(identifier),
            CallEvent::DtmfReceived { from, .. } => Some(from),
            CallEvent::RemoteVideoAdded { participant, .. }
            | CallEvent::RemoteVideoChanged { participant, .. }
            | CallEvent::RemoteVideoRemoved { participant, .. } => Some(participant),
            _ => None,
        }
    }
}

impl ParticipantEvents {
    /// Who the events are about.
    pub fn participant(&self) -> &Identifier {
        &self.who
    }

    /// The next event about the participant; `None` once every handle of the call
    /// (and of its participants) is gone. A reader that fell more than 256 events of
    /// the call's participants behind skips the oldest ([`ParticipantEvents::missed`]
    /// counts them).
    pub async fn recv(&mut self) -> Option<ParticipantEvent> {
        loop {
            match self.events.recv().await {
                Ok((who, event)) if who == self.who => return Some(event),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => self.missed += n,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// How many events (about anyone in the call) this reader skipped because it
    /// fell behind.
    pub fn missed(&self) -> u64 {
        self.missed
    }
}

impl CallEvents {
    /// The next event; `None` once every handle of the call (and of its remote
    /// participants) is gone. A reader that fell
    /// more than 256 events behind skips the oldest ([`CallEvents::missed`] counts
    /// them); the [`Call`]'s accessors always show the latest state.
    pub async fn recv(&mut self) -> Option<CallEvent> {
        loop {
            match self.events.recv().await {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(n)) => self.missed += n,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// How many events this reader skipped because it fell behind.
    pub fn missed(&self) -> u64 {
        self.missed
    }
}
