//! [`CallClient`], [`CallAgent`] and [`IncomingCall`]; the dispatcher task that
//! routes the signaling session's events to the calls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use futures_core::Stream;
use ringwire_signaling::{CallId, ConnectionState, Event, GroupId, Identifier};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::call::{Call, CallEvent, CallInner, CallSlot, RemoteParticipant, Snapshot};
use super::options::{
    AcceptCallOptions, CallClientOptions, JoinCallOptions, MediaChoice, StartCallOptions,
};
use crate::client::{EventStream, SignalingClient};
use crate::error::Error;

/// Makes [`CallAgent`]s: one per user identity (access token).
#[derive(Debug, Clone)]
pub struct CallClient {
    options: CallClientOptions,
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
        CallClient { options }
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
        let media = options.into_media();
        let id = self
            .shared
            .client
            .start_call(targets, media.join_options())
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
        let (id, event) = match event {
            Event::IncomingCall {
                call_id,
                caller,
                video,
                group_id,
            } => {
                let _ = self.incoming.send(IncomingCall {
                    agent: self.agent.clone(),
                    id: call_id,
                    caller,
                    video,
                    group_id,
                });
                return;
            }
            Event::CallStateChanged {
                call_id,
                state,
                end_reason,
            } => (call_id, CallEvent::StateChanged { state, end_reason }),
            Event::ParticipantAdded {
                call_id,
                participant,
            } => (
                call_id,
                CallEvent::ParticipantAdded(RemoteParticipant::from_info(participant)),
            ),
            Event::ParticipantUpdated {
                call_id,
                participant,
            } => (
                call_id,
                CallEvent::ParticipantUpdated(RemoteParticipant::from_info(participant)),
            ),
            Event::ParticipantRemoved {
                call_id,
                id,
                reason,
            } => (
                call_id,
                CallEvent::ParticipantRemoved {
                    identifier: id,
                    reason,
                },
            ),
            Event::MuteChanged { call_id, muted } => (call_id, CallEvent::MuteChanged { muted }),
            Event::DominantSpeakersChanged { call_id, speakers } => {
                (call_id, CallEvent::DominantSpeakersChanged(speakers))
            }
            Event::RemoteVideoAdded {
                call_id,
                participant,
                stream,
            } => (
                call_id,
                CallEvent::RemoteVideoAdded {
                    participant,
                    stream,
                },
            ),
            Event::RemoteVideoChanged {
                call_id,
                participant,
                stream,
            } => (
                call_id,
                CallEvent::RemoteVideoChanged {
                    participant,
                    stream,
                },
            ),
            Event::RemoteVideoRemoved {
                call_id,
                participant,
                kind,
            } => (call_id, CallEvent::RemoteVideoRemoved { participant, kind }),
            Event::RequestFailed {
                code,
                message,
                call_id: Some(call_id),
            } => (call_id, CallEvent::RequestFailed { code, message }),
            // Connection events show in the connection state; media negotiation and
            // receive slots are the media task's business.
            _ => return,
        };
        if let Some(slot) = self.refresh(&id).await {
            let _ = slot.events.send(event);
        }
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
