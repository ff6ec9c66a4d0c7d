//! [`CallClient`], [`CallAgent`] and [`IncomingCall`]; the dispatcher task that
//! routes the signaling session's events to the calls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use futures_core::Stream;
use ringwire_devices::{DeviceError, DeviceEvent, DeviceKind, Selection};
use ringwire_media::video::VideoFormat;
use ringwire_signaling::{CallId, ConnectionState, Event, GroupId, Identifier};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::call::{Call, CallEvent, CallInner, CallSlot, ParticipantEvent, Snapshot};
use super::devices::Devices;
use super::options::{
    AcceptCallOptions, CallClientOptions, JoinCallOptions, LocalVideoStream, MediaChoice,
    StartCallOptions,
};
use crate::client::{EventStream, SignalingClient};
use crate::error::Error;
use crate::media::AudioOptions;

/// Makes [`CallAgent`]s (one per user identity, access token) and holds the devices
/// their calls use. Cheap to clone, `Send`; clones share the devices.
///
/// # Devices
/// [`CallClient::device_manager`] lists microphones, speakers, cameras and screens
/// (real ones, and synthetic ones when [`CallClientOptions::devices`] asks for them)
/// and reports device changes. The client remembers which microphone, speaker and
/// camera are selected; [`CallClient::device_audio`] opens the selected microphone and
/// speaker for a call, and selecting another one moves those streams while the call
/// runs:
///
/// ```no_run
/// use ringwire_calling::{CallClient, CallClientOptions, Endpoint, StartCallOptions};
/// use ringwire_devices::{DeviceKind, Selection};
/// use ringwire_signaling::Identifier;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = CallClient::new(CallClientOptions::new(Endpoint::ws(
///     "ws://127.0.0.1:8080/v1/signaling",
/// )));
/// for mic in client.device_manager()?.list(DeviceKind::Microphone)? {
///     println!("{} {}", mic.id, mic.name);
/// }
/// client.select_microphone(Selection::Device("pulseaudio:ring_a.monitor".into()))?;
/// let agent = client.create_call_agent("<token>").await?;
/// let call = agent
///     .start_call(
///         &[Identifier::user("bob")?],
///         StartCallOptions::new().with_audio(client.device_audio()?),
///     )
///     .await?;
/// // Mid-call, the user picks another speaker: the call's playback moves there.
/// client.select_speaker(Selection::Device("pulseaudio:ring_b".into()))?;
/// # drop(call);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CallClient {
    options: CallClientOptions,
    /// Started on first use: apps that bring their own sources never start the
    /// device thread.
    devices: Arc<OnceLock<Devices>>,
}

/// One signed-in user's calls: starts and joins calls, reports incoming ones. Cheap
/// to clone, `Send`.
///
/// One task per agent reads the signaling session's events and keeps every
/// [`Call`] up to date. When the last handle (agent, call or the agent's stream of
/// incoming calls) is gone, the agent hangs up its live calls and disconnects;
/// [`CallAgent::dispose`] does that at once.
#[derive(Debug, Clone)]
pub struct CallAgent {
    shared: Arc<AgentShared>,
}

/// A call ringing here: answer it with [`IncomingCall::accept`] or decline it with
/// [`IncomingCall::reject`]. Dropping it lets it ring until the caller gives up.
#[derive(Debug, Clone)]
pub struct IncomingCall {
    agent: Weak<AgentShared>,
    id: CallId,
    caller: Identifier,
    video: bool,
    group_id: Option<GroupId>,
}

/// What the agent's handles share.
#[derive(Debug)]
pub(crate) struct AgentShared {
    pub(crate) client: SignalingClient,
    routes: Arc<Routes>,
    incoming: tokio::sync::Mutex<mpsc::UnboundedReceiver<IncomingCall>>,
    /// Asks the dispatcher to take a fresh snapshot of a call (after a command, or
    /// when it was just registered), and says when that is done.
    refresh: mpsc::UnboundedSender<(CallId, oneshot::Sender<()>)>,
    dispatcher: Mutex<Option<JoinHandle<()>>>,
}

type Routes = Mutex<HashMap<CallId, Route>>;

/// Where the dispatcher puts what it learns about one call.
#[derive(Debug)]
struct Route {
    slot: Arc<CallSlot>,
    call: Weak<CallInner>,
}

impl CallClient {
    /// A client that connects as `options` say (nothing happens until
    /// [`CallClient::create_call_agent`]).
    pub fn new(options: CallClientOptions) -> Self {
        CallClient {
            options,
            devices: Arc::new(OnceLock::new()),
        }
    }

    fn devices(&self) -> Result<&Devices, DeviceError> {
        if let Some(devices) = self.devices.get() {
            return Ok(devices);
        }
        let devices = Devices::new(self.options.devices.clone())?;
        // Another clone may have won the race: then its manager is the one kept.
        let _ = self.devices.set(devices);
        self.devices.get().ok_or(DeviceError::InvalidConfig(
            "the device manager did not start",
        ))
    }

    /// The device manager (started on first use, as [`CallClientOptions::devices`]
    /// says): lists devices, reports changes ([`DeviceManager::poll_event`]), opens
    /// screens and windows to share.
    ///
    /// # Errors
    /// As [`DeviceManager::new`].
    ///
    /// [`DeviceManager::poll_event`]: ringwire_devices::DeviceManager::poll_event
    /// [`DeviceManager::new`]: ringwire_devices::DeviceManager::new
    pub fn device_manager(&self) -> Result<&ringwire_devices::DeviceManager, DeviceError> {
        Ok(self.devices()?.manager())
    }

    /// The device changes from now on (a device added or removed, the system default
    /// changed, a call's stream moved to another device), as a stream that checks the
    /// device manager's queue once per its poll interval. Each change goes to one
    /// reader: this stream or [`DeviceManager::poll_event`].
    ///
    /// # Errors
    /// As [`CallClient::device_manager`].
    ///
    /// [`DeviceManager::poll_event`]: ringwire_devices::DeviceManager::poll_event
    pub fn device_events(
        &self,
    ) -> Result<impl Stream<Item = DeviceEvent> + Send + 'static, DeviceError> {
        let interval = self.devices()?.manager().config().poll_interval;
        let devices = Arc::clone(&self.devices);
        Ok(futures_util::stream::unfold(
            devices,
            move |devices| async move {
                loop {
                    // Started above, and a `OnceLock` stays set.
                    let event = devices.get()?.manager().poll_event();
                    if let Some(event) = event {
                        return Some((event, devices));
                    }
                    tokio::time::sleep(interval).await;
                }
            },
        ))
    }

    /// The microphone calls capture from ([`Selection::Default`] until one is
    /// selected).
    ///
    /// # Errors
    /// As [`CallClient::device_manager`].
    pub fn selected_microphone(&self) -> Result<Selection, DeviceError> {
        Ok(self.devices()?.selected(DeviceKind::Microphone))
    }

    /// The speaker calls play on.
    ///
    /// # Errors
    /// As [`CallClient::device_manager`].
    pub fn selected_speaker(&self) -> Result<Selection, DeviceError> {
        Ok(self.devices()?.selected(DeviceKind::Speaker))
    }

    /// The camera [`CallClient::camera_stream`] opens.
    ///
    /// # Errors
    /// As [`CallClient::device_manager`].
    pub fn selected_camera(&self) -> Result<Selection, DeviceError> {
        Ok(self.devices()?.selected(DeviceKind::Camera))
    }

    /// Selects the microphone for calls, and moves the capture of every call running
    /// on [`CallClient::device_audio`] there. Returns once the device is open (it
    /// blocks meanwhile, as opening a device does); the calls send silence during the
    /// switch rather than wait for it.
    ///
    /// # Errors
    /// When a running capture cannot move there (it goes on from its device, and
    /// the selection stays as it was); as [`CallClient::device_manager`].
    pub fn select_microphone(&self, selection: Selection) -> Result<(), DeviceError> {
        self.devices()?.select_microphone(selection)
    }

    /// Selects the speaker for calls, and moves the playback of every call running on
    /// [`CallClient::device_audio`] there.
    ///
    /// # Errors
    /// As [`CallClient::select_microphone`].
    pub fn select_speaker(&self, selection: Selection) -> Result<(), DeviceError> {
        self.devices()?.select_speaker(selection)
    }

    /// Selects the camera [`CallClient::camera_stream`] opens from now on (a running
    /// camera moves with [`Call::switch_source`]).
    ///
    /// # Errors
    /// As [`CallClient::device_manager`].
    pub fn select_camera(&self, selection: Selection) -> Result<(), DeviceError> {
        self.devices()?.select_camera(selection);
        Ok(())
    }

    /// A call's media from the selected microphone and speaker (with the video engine
    /// on, so the call can send video later), for
    /// [`StartCallOptions::with_audio`] and its kin. The streams follow later
    /// selections while the call runs.
    ///
    /// # Errors
    /// As [`DeviceManager::open_microphone`] and
    /// [`DeviceManager::open_speaker`]; as [`CallClient::device_manager`].
    ///
    /// [`DeviceManager::open_microphone`]: ringwire_devices::DeviceManager::open_microphone
    /// [`DeviceManager::open_speaker`]: ringwire_devices::DeviceManager::open_speaker
    pub fn device_audio(&self) -> Result<AudioOptions, DeviceError> {
        self.devices()?.audio_options()
    }

    /// A camera video from the selected camera near `format`, for
    /// [`StartCallOptions::with_video`] (or its source for [`Call::start_video`]).
    ///
    /// # Errors
    /// As [`DeviceManager::open_camera`](ringwire_devices::DeviceManager::open_camera);
    /// as [`CallClient::device_manager`].
    pub fn camera_stream(&self, format: VideoFormat) -> Result<LocalVideoStream, DeviceError> {
        self.devices()?.camera_stream(format)
    }

    /// Connects and signs in with `token`; returns once the server accepted it.
    ///
    /// # Errors
    /// As [`SignalingClient::connect`].
    pub async fn create_call_agent(&self, token: impl Into<String>) -> Result<CallAgent, Error> {
        let (client, events) = SignalingClient::connect(
            self.options.endpoint.clone(),
            token,
            self.options.connect.clone(),
        )
        .await?;
        Ok(CallAgent::start(client, events))
    }
}

impl CallAgent {
    fn start(client: SignalingClient, events: EventStream) -> CallAgent {
        let routes = Arc::new(Mutex::new(HashMap::new()));
        let (incoming_tx, incoming) = mpsc::unbounded_channel();
        let (refresh, refresh_rx) = mpsc::unbounded_channel();
        let shared = Arc::new_cyclic(|weak| {
            let dispatcher = Dispatcher {
                client: client.clone(),
                routes: Arc::clone(&routes),
                incoming: incoming_tx,
                agent: weak.clone(),
            };
            let task = tokio::spawn(dispatcher.run(events, refresh_rx));
            AgentShared {
                client,
                routes,
                incoming: tokio::sync::Mutex::new(incoming),
                refresh,
                dispatcher: Mutex::new(Some(task)),
            }
        });
        CallAgent { shared }
    }

    /// Calls `targets`: one makes a 1:1 call (a user, a phone number or `8:echo123`,
    /// the echo test), more a group call. Returns once the call is placed and its
    /// media started (when [`StartCallOptions::audio`] is set).
    ///
    /// # Errors
    /// [`Error::Session`] when the targets are refused (none, ourselves, not
    /// connected); media errors as [`SignalingClient::start_audio`] and
    /// [`SignalingClient::start_video`] (the call is hung up then); [`Error::Closed`].
    pub async fn start_call(
        &self,
        targets: &[Identifier],
        options: StartCallOptions,
    ) -> Result<Call, Error> {
        let caller_id = options.alternate_caller_id.clone();
        let media = options.into_media();
        let id = self
            .shared
            .client
            .start_call_as(targets, media.join_options(), caller_id)
            .await?;
        self.shared.open(id, media).await
    }

    /// Joins the group call of `group` (made when nobody is in it yet).
    ///
    /// # Errors
    /// As [`CallAgent::start_call`].
    pub async fn join(&self, group: &GroupId, options: JoinCallOptions) -> Result<Call, Error> {
        let lobby = options.lobby;
        let media = options.into_media();
        let id = self
            .shared
            .client
            .join(group, media.join_options(), lobby)
            .await?;
        self.shared.open(id, media).await
    }

    /// The next call that rings here; `None` once the agent has stopped.
    pub async fn next_incoming_call(&self) -> Option<IncomingCall> {
        self.shared.incoming.lock().await.recv().await
    }

    /// The calls that ring here, as a stream (it keeps the agent alive). Each is
    /// delivered once, to whichever reader (this stream or
    /// [`CallAgent::next_incoming_call`]) asks first.
    pub fn incoming_calls(&self) -> impl Stream<Item = IncomingCall> + Send + 'static {
        futures_util::stream::unfold(self.clone(), |agent| async move {
            let call = agent.next_incoming_call().await?;
            Some((call, agent))
        })
    }

    /// The calls that some handle still holds, ordered by id.
    pub fn calls(&self) -> Vec<Call> {
        let routes = self
            .shared
            .routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut calls: Vec<Call> = routes
            .values()
            .filter_map(|r| r.call.upgrade().map(Call::from_inner))
            .collect();
        calls.sort_by(|a, b| a.id().cmp(b.id()));
        calls
    }

    /// The signaling connection's state now.
    pub fn connection_state(&self) -> ConnectionState {
        self.shared.client.connection_state()
    }

    /// A receiver that sees every change of [`CallAgent::connection_state`].
    pub fn watch_connection_state(&self) -> watch::Receiver<ConnectionState> {
        self.shared.client.watch_connection_state()
    }

    /// Who the server says we are.
    ///
    /// # Errors
    /// [`Error::Closed`].
    pub async fn user(&self) -> Result<Option<Identifier>, Error> {
        self.shared.client.user().await
    }

    /// Hangs up every live call, disconnects, and waits for the agent's task to
    /// stop. Every handle of this agent and its calls is closed afterwards.
    pub async fn dispose(&self) {
        self.shared.client.close().await;
        let task = self
            .shared
            .dispatcher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl AgentShared {
    /// Makes the [`Call`] for a call the session just created or accepted, and
    /// starts its media.
    async fn open(self: &Arc<Self>, id: CallId, media: MediaChoice) -> Result<Call, Error> {
        let call =
            self.client.call(&id).await?.ok_or_else(|| {
                Error::Session(ringwire_signaling::Error::UnknownCall(id.clone()))
            })?;
        let slot = CallSlot::new(call);
        let call = Call::new(Arc::clone(self), id.clone(), Arc::clone(&slot));
        self.routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                id.clone(),
                Route {
                    slot,
                    call: Arc::downgrade(call.inner()),
                },
            );
        // Events that came before the route was in place were not applied.
        self.sync(&id).await;
        let MediaChoice { audio, video, .. } = media;
        if let Some(audio) = audio {
            call.start_audio(audio).await?;
        }
        if let Some(video) = video {
            if call.media_stats().is_none() {
                return Err(Error::NoVideo {
                    call_id: id,
                    reason: "video from the start needs the options' audio (with video)",
                });
            }
            self.client
                .start_video(&id, video.kind, video.source)
                .await?;
        }
        Ok(call)
    }

    /// Brings call `id`'s snapshot up to date with the session (the dispatcher is the
    /// only writer, so snapshots never go back in time).
    pub(crate) async fn sync(&self, id: &CallId) {
        let (done, synced) = oneshot::channel();
        if self.refresh.send((id.clone(), done)).is_ok() {
            let _ = synced.await;
        }
    }

    /// A call's last handle is gone: stop routing to it.
    pub(crate) fn forget(&self, id: &CallId) {
        self.routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }
}

impl Drop for AgentShared {
    fn drop(&mut self) {
        // Every handle is gone: hang up what is live and disconnect.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let client = self.client.clone();
            runtime.spawn(async move { client.close().await });
        }
    }
}

impl IncomingCall {
    /// The call's id.
    pub fn id(&self) -> &CallId {
        &self.id
    }

    /// Who calls.
    pub fn caller(&self) -> &Identifier {
        &self.caller
    }

    /// Whether the caller has video on.
    pub fn caller_has_video(&self) -> bool {
        self.video
    }

    /// The group, for an invitation into a group call.
    pub fn group_id(&self) -> Option<&GroupId> {
        self.group_id.as_ref()
    }

    /// Answers the call and starts its media as `options` say.
    ///
    /// # Errors
    /// [`Error::Session`] when it no longer rings (the caller gave up, or it was
    /// answered already); media errors as [`CallAgent::start_call`];
    /// [`Error::Closed`] when the agent is gone.
    pub async fn accept(&self, options: AcceptCallOptions) -> Result<Call, Error> {
        let agent = self.agent.upgrade().ok_or(Error::Closed)?;
        let media = options.into_media();
        agent.client.accept(&self.id, media.join_options()).await?;
        agent.open(self.id.clone(), media).await
    }

    /// Declines the call; the caller sees it end as declined.
    ///
    /// # Errors
    /// As [`IncomingCall::accept`].
    pub async fn reject(&self) -> Result<(), Error> {
        let agent = self.agent.upgrade().ok_or(Error::Closed)?;
        agent.client.reject(&self.id).await
    }
}

/// The task that reads the session's events and routes them.
struct Dispatcher {
    client: SignalingClient,
    routes: Arc<Routes>,
    incoming: mpsc::UnboundedSender<IncomingCall>,
    agent: Weak<AgentShared>,
}

impl Dispatcher {
    async fn run(
        self,
        mut events: EventStream,
        mut refresh: mpsc::UnboundedReceiver<(CallId, oneshot::Sender<()>)>,
    ) {
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(event) => self.handle(event).await,
                    None => break,
                },
                Some((id, done)) = refresh.recv() => {
                    self.refresh(&id).await;
                    let _ = done.send(());
                }
            }
        }
        // The client stopped: nothing will change any more.
        let routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        for route in routes.values() {
            route.slot.snapshot.send_modify(|s| s.closed = true);
        }
    }

    async fn handle(&self, event: Event) {
        let call_id = match &event {
            Event::IncomingCall {
                call_id,
                caller,
                video,
                group_id,
            } => {
                let _ = self.incoming.send(IncomingCall {
                    agent: self.agent.clone(),
                    id: call_id.clone(),
                    caller: caller.clone(),
                    video: *video,
                    group_id: group_id.clone(),
                });
                return;
            }
            Event::CallStateChanged { call_id, .. }
            | Event::ParticipantAdded { call_id, .. }
            | Event::ParticipantUpdated { call_id, .. }
            | Event::ParticipantRemoved { call_id, .. }
            | Event::MuteChanged { call_id, .. }
            | Event::DominantSpeakersChanged { call_id, .. }
            | Event::RemoteVideoAdded { call_id, .. }
            | Event::RemoteVideoChanged { call_id, .. }
            | Event::RemoteVideoRemoved { call_id, .. }
            | Event::DtmfReceived { call_id, .. }
            | Event::RequestFailed {
                call_id: Some(call_id),
                ..
            } => call_id.clone(),
            // Connection events show in the connection state; media negotiation and
            // receive slots are the media task's business.
            _ => return,
        };
        let Some(slot) = self.refresh(&call_id).await else {
            return;
        };
        let event = match event {
            Event::CallStateChanged {
                state, end_reason, ..
            } => CallEvent::StateChanged { state, end_reason },
            Event::ParticipantAdded { participant, .. } => {
                slot.participant_reported(&participant);
                CallEvent::ParticipantAdded(slot.participant(participant.id))
            }
            Event::ParticipantUpdated { participant, .. } => {
                slot.participant_reported(&participant);
                CallEvent::ParticipantUpdated(slot.participant(participant.id))
            }
            Event::ParticipantRemoved { id, reason, .. } => {
                slot.participant_removed(&id, reason.as_ref());
                CallEvent::ParticipantRemoved {
                    identifier: id,
                    reason,
                }
            }
            Event::MuteChanged { muted, .. } => CallEvent::MuteChanged { muted },
            Event::DominantSpeakersChanged { speakers, .. } => {
                CallEvent::DominantSpeakersChanged(speakers)
            }
            Event::RemoteVideoAdded {
                participant,
                stream,
                ..
            } => {
                slot.participant_video(&participant, ParticipantEvent::VideoStreamAdded(stream));
                CallEvent::RemoteVideoAdded {
                    participant,
                    stream,
                }
            }
            Event::RemoteVideoChanged {
                participant,
                stream,
                ..
            } => {
                slot.participant_video(&participant, ParticipantEvent::VideoStreamChanged(stream));
                CallEvent::RemoteVideoChanged {
                    participant,
                    stream,
                }
            }
            Event::RemoteVideoRemoved {
                participant, kind, ..
            } => {
                slot.participant_video(&participant, ParticipantEvent::VideoStreamRemoved { kind });
                CallEvent::RemoteVideoRemoved { participant, kind }
            }
            Event::DtmfReceived { from, digits, .. } => CallEvent::DtmfReceived { from, digits },
            Event::RequestFailed { code, message, .. } => {
                CallEvent::RequestFailed { code, message }
            }
            _ => return,
        };
        let _ = slot.events.send(event);
    }

    /// Takes the session's view of call `id` into its slot, if the call has one.
    async fn refresh(&self, id: &CallId) -> Option<Arc<CallSlot>> {
        let slot = {
            let routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(&routes.get(id)?.slot)
        };
        if let Ok(Some(call)) = self.client.call(id).await {
            slot.snapshot.send_replace(Snapshot {
                call,
                closed: false,
            });
        }
        Some(slot)
    }
}
