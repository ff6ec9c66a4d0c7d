//! [`SignalingClient`]: the app's cloneable handle to one signaling session, and
//! [`EventStream`], what the session reports.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use ringwire_signaling::{
    Call, CallId, ClientKind, ClientSession, ConnectionState, Event, GroupId, Identifier,
    JoinOptions, MediaPayload, PhoneNumber, SessionConfig, VideoKind,
};
use tokio::sync::{mpsc, oneshot, watch};

use ringwire_media::video::VideoSource;

use crate::driver::{Command, Driver, VideoCommand};
use crate::error::Error;
use crate::media::{AudioHandle, AudioOptions, AudioTask, ServerHost};
use crate::transport::{AnyConnector, Connector, Endpoint};

/// How a [`SignalingClient`] connects, keeps alive and reconnects.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// Seeds call ids and the reconnect jitter; `None` takes one from the OS.
    pub seed: Option<u64>,
    /// What kind of client this is.
    pub client: ClientKind,
    /// How often to ping the server (default 15 s).
    pub ping_interval: Duration,
    /// How long to wait for a pong, or for `authenticated`, before the connection
    /// counts as lost (default 10 s).
    pub pong_timeout: Duration,
    /// How long one connection attempt may take (default 10 s).
    pub connect_timeout: Duration,
    /// The first reconnect delay (default 200 ms); it doubles with each failed attempt.
    pub backoff_initial: Duration,
    /// The longest reconnect delay (default 10 s).
    pub backoff_max: Duration,
    /// How many reconnect attempts in a row before giving up (default `None`: never
    /// give up; the server ends the calls when its grace period is over).
    pub max_reconnect_attempts: Option<u32>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            seed: None,
            client: ClientKind::Native,
            ping_interval: Duration::from_secs(15),
            pong_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
            max_reconnect_attempts: None,
        }
    }
}

/// A cloneable handle to one signaling session, driven by a background task.
///
/// Every command mirrors [`ClientSession`]'s and returns its validation error, if any,
/// as [`Error::Session`]. Dropping the last handle closes the connection cleanly (calls
/// are left for the server's grace period; [`SignalingClient::close`] hangs them up
/// first).
#[derive(Debug, Clone)]
pub struct SignalingClient {
    commands: mpsc::Sender<Command>,
    state: watch::Receiver<ConnectionState>,
    /// Where the server is, to pick the local IP for media; unknown for a custom
    /// transport.
    server: Option<ServerHost>,
}

/// The session's [`Event`]s, in order. Ends when the client stops.
#[derive(Debug)]
pub struct EventStream {
    events: mpsc::UnboundedReceiver<Event>,
}

impl SignalingClient {
    /// Connects to `endpoint`, authenticates with `token`, and starts the driver task.
    /// Returns once the server accepted the token.
    ///
    /// # Errors
    /// [`Error::Transport`] when the server cannot be reached, [`Error::AuthRejected`]
    /// when it refuses the token, [`Error::Timeout`], [`Error::ConnectionLost`].
    pub async fn connect(
        endpoint: Endpoint,
        token: impl Into<String>,
        options: ConnectOptions,
    ) -> Result<(SignalingClient, EventStream), Error> {
        let connector = AnyConnector::new(&endpoint)?;
        let server = match &endpoint {
            Endpoint::Ws { url, .. } => ServerHost::from_url(url),
            Endpoint::Quic { addr, .. } => Some(ServerHost {
                host: addr.ip().to_string(),
                port: addr.port(),
            }),
        };
        Self::start(connector, token, options, server).await
    }

    /// As [`SignalingClient::connect`], over a transport of the app's own.
    ///
    /// # Errors
    /// As [`SignalingClient::connect`].
    pub async fn connect_with<C: Connector>(
        connector: C,
        token: impl Into<String>,
        options: ConnectOptions,
    ) -> Result<(SignalingClient, EventStream), Error> {
        Self::start(connector, token, options, None).await
    }

    async fn start<C: Connector>(
        mut connector: C,
        token: impl Into<String>,
        options: ConnectOptions,
        server: Option<ServerHost>,
    ) -> Result<(SignalingClient, EventStream), Error> {
        let transport = tokio::time::timeout(options.connect_timeout, connector.connect())
            .await
            .map_err(|_| Error::Timeout)??;
        let seed = options.seed.unwrap_or_else(rand::random);
        let mut config = SessionConfig::new(token, seed);
        config.client = options.client;
        config.ping_interval = options.ping_interval;
        config.pong_timeout = options.pong_timeout;
        let session = ClientSession::new(config, crate::driver::now());

        let (commands, command_rx) = mpsc::channel(64);
        let (event_tx, events) = mpsc::unbounded_channel();
        let (state_tx, state) = watch::channel(ConnectionState::Disconnected);
        let (ready_tx, ready) = oneshot::channel();
        let driver = Driver::new(
            connector, session, options, seed, command_rx, event_tx, state_tx, ready_tx,
        );
        tokio::spawn(driver.run(transport));
        match ready.await {
            Ok(Ok(())) => Ok((
                SignalingClient {
                    commands,
                    state,
                    server,
                },
                EventStream { events },
            )),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(Error::ConnectionLost),
        }
    }

    /// The state of the connection now.
    pub fn connection_state(&self) -> ConnectionState {
        *self.state.borrow()
    }

    /// A receiver that sees every change of [`SignalingClient::connection_state`].
    pub fn watch_connection_state(&self) -> watch::Receiver<ConnectionState> {
        self.state.clone()
    }

    /// Who the server says we are.
    ///
    /// # Errors
    /// [`Error::Closed`].
    pub async fn user(&self) -> Result<Option<Identifier>, Error> {
        self.with_session(|s, _| s.user().cloned()).await
    }

    /// One call as the session sees it (live or recently ended).
    ///
    /// # Errors
    /// [`Error::Closed`].
    pub async fn call(&self, call_id: &CallId) -> Result<Option<Call>, Error> {
        let call_id = call_id.clone();
        self.with_session(move |s, _| s.call(&call_id).cloned())
            .await
    }

    /// Every call the session knows, ordered by id.
    ///
    /// # Errors
    /// [`Error::Closed`].
    pub async fn calls(&self) -> Result<Vec<Call>, Error> {
        self.with_session(|s, _| s.calls().cloned().collect()).await
    }

    /// Calls `targets`: one makes a 1:1 call, more a group call.
    ///
    /// # Errors
    /// [`Error::Session`] as [`ClientSession::start_call`]; [`Error::Closed`].
    pub async fn start_call(
        &self,
        targets: &[Identifier],
        options: JoinOptions,
    ) -> Result<CallId, Error> {
        self.start_call_as(targets, options, None).await
    }

    /// As [`Self::start_call`], showing `caller_id` to phone targets (a number the
    /// server's trunk owns) instead of the server's default.
    ///
    /// # Errors
    /// As [`Self::start_call`].
    pub async fn start_call_as(
        &self,
        targets: &[Identifier],
        options: JoinOptions,
        caller_id: Option<PhoneNumber>,
    ) -> Result<CallId, Error> {
        let targets = targets.to_vec();
        Ok(self
            .with_session(move |s, now| s.start_call_as(&targets, options, caller_id, now))
            .await??)
    }

    /// Joins the group call of `group` (with `lobby`, later joiners wait to be admitted).
    ///
    /// # Errors
    /// [`Error::Session`] as [`ClientSession::join`]; [`Error::Closed`].
    pub async fn join(
        &self,
        group: &GroupId,
        options: JoinOptions,
        lobby: bool,
    ) -> Result<CallId, Error> {
        let group = group.clone();
        Ok(self
            .with_session(move |s, now| s.join(&group, options, lobby, now))
            .await??)
    }

    /// Answers a call that rings here.
    ///
    /// # Errors
    /// [`Error::Session`] as [`ClientSession::accept`]; [`Error::Closed`].
    pub async fn accept(&self, call_id: &CallId, options: JoinOptions) -> Result<(), Error> {
        self.call_command(call_id, move |s, id, now| s.accept(id, options, now))
            .await
    }

    /// Declines a call that rings here.
    ///
    /// # Errors
    /// [`Error::Session`] as [`ClientSession::reject`]; [`Error::Closed`].
    pub async fn reject(&self, call_id: &CallId) -> Result<(), Error> {
        self.call_command(call_id, |s, id, now| s.reject(id, now))
            .await
    }

    /// Leaves a call; with `for_everyone`, ends it for all.
    ///
    /// # Errors
    /// [`Error::Session`] as [`ClientSession::hang_up`]; [`Error::Closed`].
    pub async fn hang_up(&self, call_id: &CallId, for_everyone: bool) -> Result<(), Error> {
        self.call_command(call_id, move |s, id, now| s.hang_up(id, for_everyone, now))
            .await
    }

    /// Puts a call on hold.
    ///
    /// # Errors
    /// [`Error::Session`] as [`ClientSession::hold`]; [`Error::Closed`].
    pub async fn hold(&self, call_id: &CallId) -> Result<(), Error> {
        self.call_command(call_id, |s, id, now| s.hold(id, now))
            .await
    }

    /// Takes a call off hold.
    ///
    /// # Errors
    /// [`Error::Session`] as [`ClientSession::resume`]; [`Error::Closed`].
    pub async fn resume(&self, call_id: &CallId) -> Result<(), Error> {
        self.call_command(call_id, |s, id, now| s.resume(id, now))
            .await
    }

    /// Mutes our microphone in a call.
    ///
    /// # Errors
    /// [`Error::Session`] as [`ClientSession::mute`]; [`Error::Closed`].
    pub async fn mute(&self, call_id: &CallId) -> Result<(), Error> {
        self.call_command(call_id, |s, id, now| s.mute(id, now))
            .await
    }

    /// Sends DTMF `digits` (`0-9`, `*`, `#`, `A-D`, at most 32) to the phone
    /// participants of a connected call: the gateway plays them as RFC 4733 events
    /// on each phone leg. Keys a phone presses arrive as
    /// [`Event::DtmfReceived`](ringwire_signaling::Event::DtmfReceived).
    ///
    /// # Errors
    /// [`Error::Session`] as [`ClientSession::send_dtmf`] (bad digits, call not
    /// connected); [`Error::Closed`].
    pub async fn send_dtmf(&self, call_id: &CallId, digits: &str) -> Result<(), Error> {
        let digits = digits.to_owned();
        self.call_command(call_id, move |s, id, now| s.send_dtmf(id, &digits, now))
            .await
    }

    /// Unmutes our microphone in a call.
    ///
    /// # Errors
    /// [`Error::Session`] as [`ClientSession::unmute`]; [`Error::Closed`].
    pub async fn unmute(&self, call_id: &CallId) -> Result<(), Error> {
        self.call_command(call_id, |s, id, now| s.unmute(id, now))
            .await
    }

    /// Starts sending video of `kind` (a camera or a screen share) from `source` in
    /// a call whose media runs with [`AudioOptions::video`](crate::AudioOptions::video).
    /// The others see the stream (with the source's size) in the roster, and receive
    /// it as the media plane routes it. One stream at a time: stop a camera before
    /// sharing the screen.
    ///
    /// # Errors
    /// [`Error::NoVideo`] when the call's media does not run or has no video send
    /// section; [`Error::Session`] as [`ClientSession::start_video`] (for example
    /// `VideoBusy` when the other kind is on); [`Error::Closed`].
    pub async fn start_video(
        &self,
        call_id: &CallId,
        kind: VideoKind,
        source: impl VideoSource + 'static,
    ) -> Result<(), Error> {
        self.video_command(
            call_id,
            VideoCommand::Start {
                kind,
                source: Box::new(source),
            },
        )
        .await
    }

    /// Replaces the source of the video being sent, without renegotiation: the next
    /// frame is a key frame, and a new size is announced to the others.
    ///
    /// # Errors
    /// [`Error::NoVideo`] as [`SignalingClient::start_video`], or when no video is
    /// being sent; [`Error::Session`]; [`Error::Closed`].
    pub async fn switch_video_source(
        &self,
        call_id: &CallId,
        source: impl VideoSource + 'static,
    ) -> Result<(), Error> {
        self.video_command(
            call_id,
            VideoCommand::Switch {
                source: Box::new(source),
            },
        )
        .await
    }

    /// Stops sending video (camera or screen share, whichever is on). Stopping when
    /// nothing is sent does nothing.
    ///
    /// # Errors
    /// [`Error::NoVideo`] as [`SignalingClient::start_video`]; [`Error::Session`];
    /// [`Error::Closed`].
    pub async fn stop_video(&self, call_id: &CallId) -> Result<(), Error> {
        self.video_command(call_id, VideoCommand::Stop).await
    }

    /// Asks for at most `max_videos` remote camera videos (`None`: the server's limit)
    /// with `pinned`'s camera first (`None`: dominant speakers first).
    ///
    /// # Errors
    /// [`Error::Session`] as [`ClientSession::set_video_preferences`]; [`Error::Closed`].
    pub async fn set_video_preferences(
        &self,
        call_id: &CallId,
        max_videos: Option<u8>,
        pinned: Option<Identifier>,
    ) -> Result<(), Error> {
        self.call_command(call_id, move |s, id, now| {
            s.set_video_preferences(id, max_videos, pinned, now)
        })
        .await
    }

    async fn video_command(&self, call_id: &CallId, command: VideoCommand) -> Result<(), Error> {
        let (reply, result) = oneshot::channel();
        self.commands
            .send(Command::Video {
                call_id: call_id.clone(),
                command,
                reply,
            })
            .await
            .map_err(|_| Error::Closed)?;
        result.await.map_err(|_| Error::Closed)?
    }

    /// Invites `target` into a call (a 1:1 call becomes a group call).
    ///
    /// # Errors
    /// [`Error::Session`] as [`ClientSession::add_participant`]; [`Error::Closed`].
    pub async fn add_participant(
        &self,
        call_id: &CallId,
        target: &Identifier,
    ) -> Result<(), Error> {
        let target = target.clone();
        self.call_command(call_id, move |s, id, now| {
            s.add_participant(id, &target, now)
        })
        .await
    }

    /// Removes `target` from a call (or refuses them from its lobby).
    ///
    /// # Errors
    /// [`Error::Session`] as [`ClientSession::remove_participant`]; [`Error::Closed`].
    pub async fn remove_participant(
        &self,
        call_id: &CallId,
        target: &Identifier,
    ) -> Result<(), Error> {
        let target = target.clone();
        self.call_command(call_id, move |s, id, now| {
            s.remove_participant(id, &target, now)
        })
        .await
    }

    /// Lets `target`, waiting in the lobby, into a call.
    ///
    /// # Errors
    /// [`Error::Session`] as [`ClientSession::admit`]; [`Error::Closed`].
    pub async fn admit(&self, call_id: &CallId, target: &Identifier) -> Result<(), Error> {
        let target = target.clone();
        self.call_command(call_id, move |s, id, now| s.admit(id, &target, now))
            .await
    }

    /// Sends a media negotiation payload (SDP) to the media plane.
    ///
    /// # Errors
    /// [`Error::Session`] as [`ClientSession::send_media`]; [`Error::Closed`].
    pub async fn send_media(&self, call_id: &CallId, payload: MediaPayload) -> Result<(), Error> {
        self.call_command(call_id, move |s, id, now| s.send_media(id, payload, now))
            .await
    }

    /// Forgets an ended call and returns it.
    ///
    /// # Errors
    /// [`Error::Session`] as [`ClientSession::remove_call`]; [`Error::Closed`].
    pub async fn remove_call(&self, call_id: &CallId) -> Result<Call, Error> {
        let call_id = call_id.clone();
        Ok(self
            .with_session(move |s, _| s.remove_call(&call_id))
            .await??)
    }

    /// Starts the audio of a call: binds a UDP socket, sends the media plane an SDP
    /// offer through the session, and spawns a task that captures from
    /// [`AudioOptions::source`], encodes and sends, and receives, jitter-buffers,
    /// decodes and plays into [`AudioOptions::sink`]. The audio follows the call:
    /// muted, it sends nothing; on hold (either side), it neither sends nor plays;
    /// when the call ends, it stops and finishes the sink. The app still sees every
    /// event, [`Event::MediaReceived`] included.
    ///
    /// Call it once the call is being joined or in progress (after
    /// [`SignalingClient::start_call`], [`SignalingClient::accept`] or
    /// [`SignalingClient::join`]).
    ///
    /// # Errors
    /// [`Error::NoMediaAddress`] or [`Error::AudioSocket`] when no socket can be bound;
    /// [`Error::Media`] when the engine refuses the address or settings;
    /// [`Error::AudioRunning`] when this call already has audio; [`Error::Session`] as
    /// [`ClientSession::send_media`]; [`Error::Closed`].
    pub async fn start_audio(
        &self,
        call_id: &CallId,
        options: AudioOptions,
    ) -> Result<AudioHandle, Error> {
        let (task, link, parts, offer) =
            AudioTask::prepare(call_id, options, self.server.as_ref()).await?;
        let (reply, result) = oneshot::channel();
        self.commands
            .send(Command::StartAudio {
                call_id: call_id.clone(),
                offer,
                link,
                reply,
            })
            .await
            .map_err(|_| Error::Closed)?;
        result.await.map_err(|_| Error::Closed)??;
        Ok(parts.into_handle(tokio::spawn(task.run())))
    }

    /// Hangs up every live call, closes the connection cleanly and stops the driver;
    /// every handle is closed after this. Returns when that is done.
    pub async fn close(&self) {
        let (done, finished) = oneshot::channel();
        if self.commands.send(Command::Close { done }).await.is_ok() {
            let _ = finished.await;
        }
    }

    /// For tests: drops the transport as if the network failed, and waits at least
    /// `hold_off` before reconnecting (with the usual backoff after that).
    ///
    /// # Errors
    /// [`Error::Closed`].
    #[doc(hidden)]
    pub async fn drop_transport(&self, hold_off: Duration) -> Result<(), Error> {
        self.commands
            .send(Command::DropTransport { hold_off })
            .await
            .map_err(|_| Error::Closed)
    }

    /// Runs `f` on the session inside the driver task (which drains after it).
    async fn with_session<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut ClientSession, std::time::Instant) -> T + Send + 'static,
    ) -> Result<T, Error> {
        let (reply, result) = oneshot::channel();
        let job = Box::new(move |session: &mut ClientSession, now| {
            // The caller may have given up waiting; nothing to do then.
            let _ = reply.send(f(session, now));
        });
        self.commands
            .send(Command::Run(job))
            .await
            .map_err(|_| Error::Closed)?;
        result.await.map_err(|_| Error::Closed)
    }

    async fn call_command(
        &self,
        call_id: &CallId,
        f: impl FnOnce(
            &mut ClientSession,
            &CallId,
            std::time::Instant,
        ) -> Result<(), ringwire_signaling::Error>
        + Send
        + 'static,
    ) -> Result<(), Error> {
        let call_id = call_id.clone();
        Ok(self
            .with_session(move |s, now| f(s, &call_id, now))
            .await??)
    }
}

impl EventStream {
    /// The next event; `None` once the client has stopped and every event was read.
    pub async fn recv(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// The next event if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.events.try_recv().ok()
    }
}

impl futures_core::Stream for EventStream {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.events.poll_recv(cx)
    }
}
