//! The driver: the one task that owns a [`ClientSession`] (STYLE.md §2).
//!
//! It `select!`s over the transport, the command channel and `sleep_until` the
//! session's next timeout, feeds the matching `handle_*`, and drains the session after
//! every input. When the transport drops (or the session declares it lost) it
//! reconnects with exponential backoff and seeded jitter, and the session resumes with
//! its resume token.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use ringwire_media::video::VideoSource;
use ringwire_signaling::{
    CallId, CallState, ClientSession, ConnectionState, EndReason, ErrorCode, Event, MediaPayload,
    MediaPayloadKind, ServerMessage, VideoKind, VideoSize,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::client::ConnectOptions;
use crate::error::Error;
use crate::media::AudioLink;
use crate::transport::{Connector, Transport};
use crate::video::VideoInput;

/// Inputs handled in a row before the driver yields to other tasks.
const BUDGET: u32 = 64;

/// Work for the session, run inside the driver.
pub(crate) type Job = Box<dyn FnOnce(&mut ClientSession, std::time::Instant) + Send>;

/// What a handle asks of the driver.
pub(crate) enum Command {
    /// Run a command or a query on the session.
    Run(Job),
    /// Test hook: drop the transport and wait before reconnecting.
    DropTransport { hold_off: Duration },
    /// Hang up, close cleanly and stop.
    Close { done: oneshot::Sender<()> },
    /// Send a call's media offer and route the call's media to an audio task.
    StartAudio {
        call_id: CallId,
        offer: String,
        link: AudioLink,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    /// Start, switch or stop a call's outgoing video.
    Video {
        call_id: CallId,
        command: VideoCommand,
        reply: oneshot::Sender<Result<(), Error>>,
    },
}

/// A change of a call's outgoing video: the signaling side and the media task's side
/// are done together, so the roster and the stream never disagree for long.
pub(crate) enum VideoCommand {
    /// Start sending `kind` from `source`.
    Start {
        kind: VideoKind,
        source: Box<dyn VideoSource>,
    },
    /// Send from `source` instead.
    Switch { source: Box<dyn VideoSource> },
    /// Stop sending.
    Stop,
}

/// The session's clock: tokio's, so paused-time tests control it.
pub(crate) fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// How a connected stretch ended.
enum Outcome {
    /// The transport is gone; reconnect after `hold_off` (and backoff).
    Dropped { hold_off: Duration },
    /// Stop the driver.
    Stop,
}

/// What the events drained so far say about the connection.
#[derive(Default)]
struct Drained {
    authenticated: bool,
    lost: bool,
    goodbye: bool,
    refused: Option<(ErrorCode, String)>,
}

pub(crate) struct Driver<C: Connector> {
    connector: C,
    session: ClientSession,
    options: ConnectOptions,
    rng: StdRng,
    commands: mpsc::Receiver<Command>,
    events: mpsc::UnboundedSender<Event>,
    state: watch::Sender<ConnectionState>,
    /// Until the first `authenticated`: tells `connect` how the first attempt went.
    ready: Option<oneshot::Sender<Result<(), Error>>>,
    /// Who to tell when a requested close is done.
    closed: Option<oneshot::Sender<()>>,
    /// The audio tasks of calls, told of the call's answer, mute, hold and end.
    audio: BTreeMap<CallId, AudioLink>,
}

impl<C: Connector> Driver<C> {
    #[allow(clippy::too_many_arguments)] // One private constructor, called once.
    pub(crate) fn new(
        connector: C,
        session: ClientSession,
        options: ConnectOptions,
        seed: u64,
        commands: mpsc::Receiver<Command>,
        events: mpsc::UnboundedSender<Event>,
        state: watch::Sender<ConnectionState>,
        ready: oneshot::Sender<Result<(), Error>>,
    ) -> Self {
        Driver {
            connector,
            session,
            options,
            // A different stream from the session's call ids, from the same seed.
            rng: StdRng::seed_from_u64(seed ^ 0x6a09_e667_f3bc_c908),
            commands,
            events,
            state,
            ready: Some(ready),
            closed: None,
            audio: BTreeMap::new(),
        }
    }

    pub(crate) async fn run(mut self, first: C::Transport) {
        let mut transport = Some(first);
        loop {
            let current = match transport.take() {
                Some(t) => t,
                None => match self.reconnect().await {
                    Some(t) => t,
                    None => break,
                },
            };
            match self.connected(current).await {
                Outcome::Stop => break,
                Outcome::Dropped { hold_off } => {
                    self.session.handle_disconnected(now());
                    self.drain();
                    if let Some(ready) = self.ready.take() {
                        // The first connection never authenticated: `connect` fails,
                        // rather than retrying behind the caller's back.
                        let _ = ready.send(Err(Error::ConnectionLost));
                        break;
                    }
                    if !hold_off.is_zero() && !self.idle(hold_off).await {
                        break;
                    }
                }
            }
        }
        self.state.send_replace(ConnectionState::Disconnected);
        if let Some(done) = self.closed.take() {
            let _ = done.send(());
        }
        tracing::debug!("signaling driver stopped");
    }

    /// Runs one connection until it drops or the driver must stop.
    async fn connected(&mut self, mut transport: C::Transport) -> Outcome {
        self.session.handle_connected(now());
        let mut budget = BUDGET;
        loop {
            if let Err(error) = self.flush(&mut transport).await {
                tracing::debug!(%error, "send failed, reconnecting");
                return Outcome::Dropped {
                    hold_off: Duration::ZERO,
                };
            }
            let drained = self.drain();
            if let Some((code, message)) = drained.refused {
                tracing::debug!(code = code.as_str(), %message, "the server refused the session");
                if let Some(ready) = self.ready.take() {
                    let _ = ready.send(Err(Error::AuthRejected { code, message }));
                } else {
                    // A reconnect refused (expired or revoked token): end what is left.
                    self.give_up(EndReason::connection_lost());
                }
                transport.close().await;
                return Outcome::Stop;
            }
            if drained.goodbye {
                transport.close().await;
                return Outcome::Stop;
            }
            if drained.lost {
                return Outcome::Dropped {
                    hold_off: Duration::ZERO,
                };
            }
            budget -= 1;
            if budget == 0 {
                budget = BUDGET;
                tokio::task::yield_now().await;
            }
            let deadline = self.session.poll_timeout().map(Instant::from_std);
            tokio::select! {
                message = transport.recv() => match message {
                    Ok(Some(bytes)) => {
                        if let Err(error) = self.session.handle_bytes(&bytes, now()) {
                            // One bad message never ends the connection: log and go on.
                            tracing::debug!(%error, "bad message from the server, ignored");
                        }
                    }
                    Ok(None) => {
                        tracing::debug!("server closed the connection");
                        return Outcome::Dropped { hold_off: Duration::ZERO };
                    }
                    Err(error) => {
                        tracing::debug!(%error, "transport failed");
                        return Outcome::Dropped { hold_off: Duration::ZERO };
                    }
                },
                command = self.commands.recv() => match command {
                    Some(Command::Run(job)) => job(&mut self.session, now()),
                    Some(Command::StartAudio { call_id, offer, link, reply }) => {
                        let _ = reply.send(self.start_audio(call_id, offer, link));
                    }
                    Some(Command::Video { call_id, command, reply }) => {
                        let _ = reply.send(self.video(&call_id, command));
                    }
                    Some(Command::DropTransport { hold_off }) => {
                        drop(transport);
                        return Outcome::Dropped { hold_off };
                    }
                    Some(Command::Close { done }) => {
                        self.closed = Some(done);
                        self.leave(transport).await;
                        return Outcome::Stop;
                    }
                    None => {
                        // Every handle is gone: close cleanly, calls are left to the
                        // server's grace period.
                        let _ = self.flush(&mut transport).await;
                        transport.close().await;
                        return Outcome::Stop;
                    }
                },
                () = sleep_until(deadline) => self.session.handle_timeout(now()),
            }
        }
    }

    /// Reconnects with exponential backoff and jitter; `None` when the driver must stop.
    async fn reconnect(&mut self) -> Option<C::Transport> {
        let mut attempt: u32 = 0;
        loop {
            let delay = self.backoff(attempt);
            tracing::debug!(attempt, ?delay, "reconnecting");
            if !self.idle(delay).await {
                return None;
            }
            let connect =
                tokio::time::timeout(self.options.connect_timeout, self.connector.connect());
            match connect.await {
                Ok(Ok(transport)) => return Some(transport),
                Ok(Err(error)) => tracing::debug!(%error, attempt, "reconnect failed"),
                Err(_) => tracing::debug!(attempt, "reconnect timed out"),
            }
            attempt = attempt.saturating_add(1);
            if self
                .options
                .max_reconnect_attempts
                .is_some_and(|max| attempt >= max)
            {
                tracing::debug!(attempt, "giving up reconnecting");
                self.give_up(EndReason::connection_lost());
                return None;
            }
        }
    }

    fn backoff(&mut self, attempt: u32) -> Duration {
        backoff(&self.options, attempt, &mut self.rng)
    }

    /// Waits `delay` without a transport, still answering commands (which fail with
    /// `NotConnected`). `false` when the driver must stop.
    async fn idle(&mut self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(until) => return true,
                command = self.commands.recv() => match command {
                    Some(Command::Run(job)) => {
                        job(&mut self.session, now());
                        self.drain();
                    }
                    Some(Command::StartAudio { call_id, offer, link, reply }) => {
                        let _ = reply.send(self.start_audio(call_id, offer, link));
                        self.drain();
                    }
                    Some(Command::Video { call_id, command, reply }) => {
                        let _ = reply.send(self.video(&call_id, command));
                        self.drain();
                    }
                    Some(Command::DropTransport { .. }) => {}
                    Some(Command::Close { done }) => {
                        self.closed = Some(done);
                        return false;
                    }
                    None => return false,
                },
            }
        }
    }

    /// Hangs up every live call, lets the server see it, and closes.
    async fn leave(&mut self, mut transport: C::Transport) {
        let live: Vec<_> = self
            .session
            .calls()
            .filter(|c| {
                !matches!(
                    c.state(),
                    CallState::Disconnected | CallState::Disconnecting
                )
            })
            .map(|c| c.id().clone())
            .collect();
        for call_id in live {
            if let Err(error) = self.session.hang_up(&call_id, false, now()) {
                tracing::debug!(%error, %call_id, "could not hang up while closing");
            }
        }
        let _ = self.flush(&mut transport).await;
        self.drain();
        transport.close().await;
    }

    /// Ends the session locally, as a `goodbye` would, when reconnecting is over.
    fn give_up(&mut self, reason: EndReason) {
        // The session takes a goodbye only on a connection: pretend one, and send nothing.
        let now = now();
        if self.session.connection_state() != ConnectionState::Authenticating {
            self.session.handle_connected(now);
        }
        while self.session.poll_transmit().is_some() {}
        if let Err(error) = self
            .session
            .handle_message(ServerMessage::Goodbye { reason }, now)
        {
            tracing::debug!(%error, "could not end the session locally");
        }
        self.drain();
    }

    /// Sends a call's media offer and, once the session took it, routes the call's
    /// media to `link`.
    fn start_audio(
        &mut self,
        call_id: CallId,
        offer: String,
        link: AudioLink,
    ) -> Result<(), Error> {
        if self.audio.get(&call_id).is_some_and(AudioLink::is_alive) {
            return Err(Error::AudioRunning(call_id));
        }
        let payload = MediaPayload {
            kind: MediaPayloadKind::Offer,
            sdp: offer,
        };
        self.session.send_media(&call_id, payload, now())?;
        self.audio.insert(call_id, link);
        Ok(())
    }

    /// Changes a call's outgoing video: the session announces it, the media task
    /// sends it.
    fn video(&mut self, call_id: &CallId, command: VideoCommand) -> Result<(), Error> {
        let no_video = |reason| Error::NoVideo {
            call_id: call_id.clone(),
            reason,
        };
        let link = self
            .audio
            .get(call_id)
            .filter(|l| l.is_alive())
            .ok_or_else(|| no_video("the call's media is not running"))?;
        if !link.publishes_video() {
            return Err(no_video(
                "the call's media was started without a video send section",
            ));
        }
        let size = |source: &dyn VideoSource| {
            let format = source.format();
            Some(VideoSize::new(format.width, format.height))
        };
        let on = self
            .session
            .call(call_id)
            .and_then(|c| c.video().first())
            .map(|s| s.kind);
        match command {
            VideoCommand::Start { kind, source } => {
                self.session
                    .start_video(call_id, kind, size(&*source), now())?;
                link.video(VideoInput::Source(Some(source)));
            }
            VideoCommand::Switch { source } => {
                let kind = on.ok_or_else(|| no_video("no video is being sent"))?;
                self.session
                    .start_video(call_id, kind, size(&*source), now())?;
                link.video(VideoInput::Source(Some(source)));
            }
            VideoCommand::Stop => {
                if let Some(kind) = on {
                    self.session.stop_video(call_id, kind, now())?;
                }
                link.video(VideoInput::Source(None));
            }
        }
        Ok(())
    }

    /// Tells every audio task what its call lets through now; forgets those that are
    /// done.
    fn follow_audio(&mut self) {
        let session = &self.session;
        self.audio
            .retain(|call_id, link| link.follow(session.call(call_id)));
    }

    /// Writes every queued message.
    async fn flush(&mut self, transport: &mut C::Transport) -> Result<(), crate::TransportError> {
        while let Some(message) = self.session.poll_transmit() {
            tracing::trace!(kind = message.kind(), "to server");
            transport.send(message.encode()).await?;
        }
        Ok(())
    }

    /// Hands every event to the app and publishes the connection state.
    fn drain(&mut self) -> Drained {
        let mut drained = Drained::default();
        let authenticating = self.session.connection_state() == ConnectionState::Authenticating;
        while let Some(event) = self.session.poll_event() {
            match &event {
                Event::Authenticated { .. } => drained.authenticated = true,
                Event::ConnectionLost => drained.lost = true,
                Event::Goodbye { .. } => drained.goodbye = true,
                Event::RequestFailed {
                    code,
                    message,
                    call_id: None,
                } if authenticating && refuses_session(*code) => {
                    drained.refused = Some((*code, message.clone()));
                }
                Event::RequestFailed {
                    code: ErrorCode::Malformed,
                    message,
                    call_id: Some(call_id),
                } => {
                    if let Some(link) = self.audio.get_mut(call_id) {
                        link.refused(message);
                    }
                }
                Event::VideoSlotsChanged { call_id, slots } => {
                    if let Some(link) = self.audio.get(call_id) {
                        link.video(VideoInput::Slots(slots.clone()));
                    }
                }
                Event::MediaReceived { call_id, payload } => match self.audio.get_mut(call_id) {
                    Some(link) if payload.kind == MediaPayloadKind::Answer => {
                        link.answer(payload.sdp.clone());
                    }
                    Some(_) => {
                        tracing::debug!(%call_id, "media offer from the server, not supported");
                    }
                    None => {}
                },
                _ => {}
            }
            // The app may have dropped its stream; the session goes on regardless.
            let _ = self.events.send(event);
        }
        self.follow_audio();
        let state = self.session.connection_state();
        self.state
            .send_if_modified(|s| std::mem::replace(s, state) != state);
        // Only now: `connect` returns on this, and its caller must see `Connected`.
        if drained.authenticated
            && let Some(ready) = self.ready.take()
        {
            let _ = ready.send(Ok(()));
        }
        drained
    }
}

/// Errors before `authenticated` after which the server closes the connection.
fn refuses_session(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::InvalidToken
            | ErrorCode::TokenExpired
            | ErrorCode::TokenRevoked
            | ErrorCode::MissingScope
            | ErrorCode::TooManyConnections
    )
}

/// `initial × 2^attempt`, at most `max`, then a random point in its upper half
/// ("equal jitter"), so clients dropped together do not come back together.
fn backoff(options: &ConnectOptions, attempt: u32, rng: &mut StdRng) -> Duration {
    let base = options
        .backoff_initial
        .saturating_mul(1u32 << attempt.min(20))
        .min(options.backoff_max);
    let half = base / 2;
    half + half.mul_f64(rng.random::<f64>())
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_seeded_jitter() {
        let options = ConnectOptions::default(); // 200 ms doubling, at most 10 s
        let delays = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..10)
                .map(|attempt| backoff(&options, attempt, &mut rng))
                .collect::<Vec<_>>()
        };
        let first = delays(7);
        assert_eq!(first, delays(7), "same seed, same delays");
        assert_ne!(first, delays(8), "another seed, other delays");
        for (attempt, delay) in first.iter().enumerate() {
            let base = (Duration::from_millis(200) * (1 << attempt)).min(Duration::from_secs(10));
            assert!(
                *delay >= base / 2 && *delay <= base,
                "attempt {attempt}: {delay:?}"
            );
        }
    }
}
