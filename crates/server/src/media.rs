//! The media worker: one task owning the media UDP socket and the sans-IO
//! [`MediaServer`], which holds one str0m `Rtc` per participant of every call.
//!
//! Shape (STYLE.md §2, str0m's `chat` example): the task `select!`s over the socket,
//! its command queue and the engine's next timeout, feeds the matching `handle_*`, and
//! after every input drains the engine: transmits go out on the socket, events go to
//! the hub. Every participant shares the one socket; the engine tells their packets
//! apart the way str0m's examples do (each `Rtc` is asked whether it accepts a
//! datagram), and a datagram nobody claims is counted and dropped.
//!
//! The worker learns about calls only from the controller's [`MediaCommand`]s, which
//! the hub forwards without waiting, and answers through [`MediaEvent`]s:
//! - `Payload` with an SDP offer: the engine answers it (DTLS-SRTP always; the
//!   server is always the answerer), and the answer goes back to the participant as a
//!   `media` message. An offer the engine refuses (bad SDP) becomes an `error` for the
//!   connection that sent it; the participant stays in the call and may offer again.
//! - A participant whose media fails leaves the call with 410 (media failure).
//! - The dominant speakers of each call go to its participants.
//! - Phone legs ([`crate::gateway`]) are local participants: once the controller
//!   says a leg answered (`Join` of a `4:` participant), the phone's transcoded voice
//!   goes into the room and what the room has for the phone goes to the leg's input,
//!   never waiting for it (a leg that falls behind loses packets, not the worker).
//!
//! The worker stops when every [`MediaHandle`] is gone (the hub's goes when the hub
//! stops, the server's in [`crate::RunningServer::shut_down`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use ringwire_media::echo::{EchoBot, EchoConfig, EchoOutput};
use ringwire_signaling::EndReason;

use ringwire_media::router::{StreamKind, SubscriberKind};
use ringwire_media::server::{MediaServer, MediaServerConfig, MediaServerStats, ServerEvent};
use ringwire_pstn::media::CallAudio;
use ringwire_pstn::sip::LegInput;
use ringwire_signaling::controller::MediaCommand;
use ringwire_signaling::{CallId, ClientKind, Identifier, MediaPayloadKind, VideoKind, VideoSlot};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::MediaConfig;
use crate::hub::WeakHub;
use crate::metrics::MediaMetrics;

/// How many commands may wait for the worker before the hub drops new ones (the hub
/// never waits for the media plane). Far more than a burst of signaling produces.
const COMMAND_QUEUE: usize = 8192;

/// The receive buffer: larger than any datagram str0m sends or expects (its MTU is
/// 1150 bytes); a longer datagram is truncated and then refused by the engine.
const RECV_BUFFER: usize = 2000;

/// What the worker tells the hub.
#[derive(Debug)]
pub(crate) enum MediaEvent {
    /// The engine answered a participant's offer: send it the answer.
    Answer {
        /// The call.
        call_id: CallId,
        /// Who offered.
        participant: Identifier,
        /// The SDP answer.
        sdp: String,
    },
    /// The engine refused a participant's offer.
    OfferRefused {
        /// The call.
        call_id: CallId,
        /// Who offered.
        participant: Identifier,
        /// Why, for the participant.
        reason: String,
    },
    /// A participant's media failed (ICE or DTLS): it leaves the call.
    Failed {
        /// The call.
        call_id: CallId,
        /// Who.
        participant: Identifier,
    },
    /// The dominant speakers of a call changed, most dominant first.
    DominantSpeakers {
        /// The call.
        call_id: CallId,
        /// Who.
        speakers: Vec<Identifier>,
    },
    /// A leg the media plane serves itself (the echo service) is over.
    LegEnded {
        /// The call.
        call_id: CallId,
        /// The leg.
        target: Identifier,
        /// Why.
        reason: EndReason,
    },
    /// What a participant's video receive slots show changed.
    VideoSlots {
        /// The call.
        call_id: CallId,
        /// The subscriber.
        participant: Identifier,
        /// Every slot, in offer order.
        slots: Vec<VideoSlot>,
    },
}

#[derive(Debug)]
enum Input {
    Command(MediaCommand),
    Stats {
        reply: oneshot::Sender<MediaServerStats>,
    },
    /// A phone leg was dialed: where the audio it should hear goes.
    AttachPhone {
        call_id: CallId,
        participant: Identifier,
        input: mpsc::Sender<LegInput>,
    },
    /// 20 ms of a phone's voice.
    PhoneAudio {
        call_id: CallId,
        participant: Identifier,
        audio: CallAudio,
    },
}

/// A cheap, cloneable handle to the media worker.
#[derive(Debug, Clone)]
pub(crate) struct MediaHandle {
    tx: mpsc::Sender<Input>,
    metrics: MediaMetrics,
}

/// A handle that does not keep the worker alive, for phone legs: the worker stops at
/// shutdown whatever legs still run.
#[derive(Debug, Clone)]
pub(crate) struct WeakMedia {
    tx: mpsc::WeakSender<Input>,
}

/// The media socket, bound but not yet served.
#[derive(Debug)]
pub(crate) struct MediaSocket {
    socket: UdpSocket,
    local_addr: SocketAddr,
    candidate: SocketAddr,
}

/// How much later the echo test service shows a caller its own camera.
const ECHO_VIDEO_DELAY: std::time::Duration = std::time::Duration::from_millis(500);

struct Worker {
    socket: UdpSocket,
    /// The address clients send to, as the engine's `Rtc`s know it (their host
    /// candidate), which may differ from the bound address behind a NAT.
    candidate: SocketAddr,
    server: MediaServer<CallId, Identifier>,
    rx: mpsc::Receiver<Input>,
    hub: WeakHub,
    metrics: MediaMetrics,
    /// A command or event may have changed who is connected (for the gauge).
    participants_changed: bool,
    /// Echo test calls (`8:echo123`), one bot per call.
    echo: BTreeMap<CallId, EchoBot>,
    /// Phone legs' inputs, by call and phone participant.
    phones: BTreeMap<(CallId, Identifier), mpsc::Sender<LegInput>>,
}

impl MediaSocket {
    /// Binds `config.bind` and works out the address to advertise.
    pub(crate) async fn bind(config: &MediaConfig) -> std::io::Result<MediaSocket> {
        let socket = UdpSocket::bind(config.bind).await?;
        let local_addr = socket.local_addr()?;
        Ok(MediaSocket {
            socket,
            local_addr,
            candidate: config.candidate(local_addr),
        })
    }

    /// Where the socket is bound (the real port when 0 was asked for).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address advertised as the ICE host candidate.
    pub(crate) fn candidate(&self) -> SocketAddr {
        self.candidate
    }

    /// Starts the worker on this socket; it reports to `hub`.
    pub(crate) fn spawn(
        self,
        config: &MediaConfig,
        hub: WeakHub,
        metrics: MediaMetrics,
    ) -> (MediaHandle, JoinHandle<()>) {
        let mut engine = MediaServerConfig::new(self.candidate);
        engine.mixer.speakers = config.speakers;
        engine.mixer.opus.bitrate = config.opus_bitrate;
        engine.router.native_slots = config.native_videos;
        engine.router.web_slots = config.web_videos;
        engine.bandwidth_estimation = config.bandwidth_estimation;
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let worker = Worker {
            socket: self.socket,
            candidate: self.candidate,
            server: MediaServer::new(engine),
            rx,
            hub,
            metrics: metrics.clone(),
            participants_changed: false,
            echo: BTreeMap::new(),
            phones: BTreeMap::new(),
        };
        (MediaHandle { tx, metrics }, tokio::spawn(worker.run()))
    }
}

impl MediaHandle {
    /// Queues a command without waiting. A full queue drops the command, counted and
    /// logged: the hub must never wait.
    pub(crate) fn command(&self, command: MediaCommand) {
        match self.tx.try_send(Input::Command(command)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(input)) => {
                self.metrics.commands_dropped.inc();
                tracing::warn!(?input, "media worker queue full; command dropped");
            }
            Err(mpsc::error::TrySendError::Closed(input)) => {
                tracing::debug!(?input, "media worker stopped; command dropped");
            }
        }
    }

    /// A handle for phone legs that does not keep the worker running.
    pub(crate) fn downgrade(&self) -> WeakMedia {
        WeakMedia {
            tx: self.tx.downgrade(),
        }
    }

    /// A handle with no worker behind it (hub unit tests): commands are dropped.
    #[cfg(test)]
    pub(crate) fn detached() -> MediaHandle {
        let (tx, _) = mpsc::channel(1);
        MediaHandle {
            tx,
            metrics: MediaMetrics::default(),
        }
    }

    /// The engine's counters, or `None` when the worker has stopped.
    pub(crate) async fn stats(&self) -> Option<MediaServerStats> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Input::Stats { reply }).await.ok()?;
        rx.await.ok()
    }
}

impl WeakMedia {
    /// A phone leg was dialed in `call_id`; the room's audio for `participant` goes to
    /// `input` once it has joined.
    pub(crate) fn attach_phone(
        &self,
        call_id: CallId,
        participant: Identifier,
        input: mpsc::Sender<LegInput>,
    ) {
        self.try_send(Input::AttachPhone {
            call_id,
            participant,
            input,
        });
    }

    /// 20 ms of a phone's voice for its call. Dropped when the worker is far behind, as
    /// a lossy network would.
    pub(crate) fn phone_audio(&self, call_id: CallId, participant: Identifier, audio: CallAudio) {
        self.try_send(Input::PhoneAudio {
            call_id,
            participant,
            audio,
        });
    }

    fn try_send(&self, input: Input) {
        let Some(tx) = self.tx.upgrade() else {
            return;
        };
        if let Err(error) = tx.try_send(input) {
            tracing::debug!(%error, "media worker busy or stopped; phone input dropped");
        }
    }
}

impl Worker {
    async fn run(mut self) {
        let mut buf = vec![0u8; RECV_BUFFER];
        tracing::info!(candidate = %self.candidate, "media worker started");
        loop {
            let echo = self.echo.values().filter_map(EchoBot::poll_timeout).min();
            let deadline = match (self.server.poll_timeout(), echo) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
            .map(Instant::from_std);
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((n, source)) => self.receive(source, buf.get(..n).unwrap_or_default()),
                    // Linux reports nothing for unconnected UDP sockets, but other
                    // systems turn an ICMP unreachable into a read error; the socket
                    // stays usable.
                    Err(error) => tracing::debug!(%error, "media socket read failed"),
                },
                input = self.rx.recv() => match input {
                    Some(input) => self.input(input),
                    None => break,
                },
                () = sleep_until(deadline) => {
                    let now = Instant::now().into_std();
                    self.server.handle_timeout(now);
                    self.tick_echo(now);
                }
            }
            self.drain();
        }
        tracing::info!("media worker stopped");
    }

    fn receive(&mut self, source: SocketAddr, datagram: &[u8]) {
        self.metrics.received.inc();
        let now = Instant::now().into_std();
        // The destination is the candidate the `Rtc`s advertised (str0m matches it
        // against its local candidates), not the bound address: they differ behind a
        // NAT or with a wildcard bind, and every datagram on this socket was sent to it.
        if !self
            .server
            .handle_receive(now, source, self.candidate, datagram)
        {
            self.metrics.ignored.inc();
            tracing::trace!(%source, len = datagram.len(), "media datagram nobody claimed");
        }
    }

    fn input(&mut self, input: Input) {
        let now = Instant::now().into_std();
        match input {
            Input::Stats { reply } => {
                let _ = reply.send(self.server.stats());
            }
            Input::Command(command) => {
                self.participants_changed = true;
                self.command(command, now);
            }
            Input::AttachPhone {
                call_id,
                participant,
                input,
            } => {
                self.phones.insert((call_id, participant), input);
            }
            Input::PhoneAudio {
                call_id,
                participant,
                audio,
            } => self.server.send_local_audio(
                &call_id,
                &participant,
                audio.seq,
                audio.rtp_time,
                audio.level,
                &audio.packet,
                now,
            ),
        }
    }

    fn command(&mut self, command: MediaCommand, now: std::time::Instant) {
        match command {
            MediaCommand::Join {
                call_id,
                participant,
                client,
            } => {
                if participant == Identifier::EchoService {
                    self.join_echo(call_id, now);
                    return;
                }
                if matches!(participant, Identifier::Phone(_)) {
                    self.join_phone(call_id, participant, now);
                    return;
                }
                let joined = self.server.join(&call_id, &participant, now);
                let kind = match client {
                    ClientKind::Web => SubscriberKind::Web,
                    ClientKind::Native => SubscriberKind::Native,
                };
                self.server.set_kind(&call_id, &participant, kind);
                if let Err(error) = joined {
                    // Only the server's own settings can make this fail (libopus
                    // refusing the mixer's); the participant cannot have media.
                    tracing::error!(%call_id, %participant, %error, "media room could not be set up");
                    self.hub.media_event(MediaEvent::Failed {
                        call_id,
                        participant,
                    });
                }
            }
            MediaCommand::Leave {
                call_id,
                participant,
            } => {
                if participant == Identifier::EchoService {
                    self.echo.remove(&call_id);
                }
                self.phones.remove(&(call_id.clone(), participant.clone()));
                self.server.leave(&call_id, &participant);
            }
            MediaCommand::Update {
                call_id,
                participant,
                muted,
                on_hold,
                video,
            } => {
                self.server.update(&call_id, &participant, muted, on_hold);
                // One video stream at a time: a screen share replaces the camera.
                let stream = if video.contains(&VideoKind::ScreenShare) {
                    Some(StreamKind::ScreenShare)
                } else if video.contains(&VideoKind::Camera) {
                    Some(StreamKind::Camera)
                } else {
                    None
                };
                self.server.set_video(&call_id, &participant, stream, now);
            }
            MediaCommand::VideoPreferences {
                call_id,
                participant,
                max_videos,
                pinned,
            } => self.server.set_video_preferences(
                &call_id,
                &participant,
                max_videos.map(usize::from),
                pinned,
                now,
            ),
            MediaCommand::CloseCall { call_id } => {
                self.echo.remove(&call_id);
                self.phones.retain(|(call, _), _| *call != call_id);
                self.server.close_call(&call_id);
            }
            MediaCommand::Payload {
                call_id,
                from,
                payload,
            } => match payload.kind {
                MediaPayloadKind::Offer => {
                    self.offer(call_id, from, &payload.sdp, now);
                }
                MediaPayloadKind::Answer => {
                    tracing::debug!(%call_id, %from, "sdp answer ignored: the server always answers");
                }
            },
        }
    }

    fn offer(
        &mut self,
        call_id: CallId,
        participant: Identifier,
        sdp: &str,
        now: std::time::Instant,
    ) {
        match self.server.accept_offer(&call_id, &participant, sdp, now) {
            Ok(sdp) => self.hub.media_event(MediaEvent::Answer {
                call_id,
                participant,
                sdp,
            }),
            Err(error) => {
                // The client's fault, not the server's: it hears why and may offer again.
                tracing::debug!(%call_id, %participant, %error, "sdp offer refused");
                self.hub.media_event(MediaEvent::OfferRefused {
                    call_id,
                    participant,
                    reason: error.to_string(),
                });
            }
        }
    }

    /// The drain rule: send every transmit, hand every event to the hub.
    /// The echo service answered a call: a bot joins the room as a local participant,
    /// and the room loops the caller's video back.
    fn join_echo(&mut self, call_id: CallId, now: std::time::Instant) {
        let bot = EchoBot::new(EchoConfig::default(), now);
        let joined = self
            .server
            .join_local(&call_id, &Identifier::EchoService, now);
        match (bot, joined) {
            (Ok(bot), Ok(())) => {
                // The caller's camera comes back too, a little later, like its voice.
                self.server
                    .set_video_loopback(&call_id, Some(ECHO_VIDEO_DELAY), now);
                self.echo.insert(call_id, bot);
            }
            (Err(error), _) => self.echo_failed(call_id, &error.to_string()),
            (_, Err(error)) => self.echo_failed(call_id, &error.to_string()),
        }
    }

    /// A phone leg answered: it joins the room as a local participant, heard and
    /// hearing through its leg.
    fn join_phone(&mut self, call_id: CallId, participant: Identifier, now: std::time::Instant) {
        if let Err(error) = self.server.join_local(&call_id, &participant, now) {
            // Only the server's own codec setup can fail here.
            tracing::error!(%call_id, %participant, %error, "phone leg could not join the room");
            self.hub.media_event(MediaEvent::Failed {
                call_id,
                participant,
            });
        }
    }

    fn echo_failed(&mut self, call_id: CallId, error: &str) {
        // Only the server's own codec setup can fail here; the caller hears why.
        tracing::error!(%call_id, %error, "echo service could not start");
        self.hub.media_event(MediaEvent::LegEnded {
            call_id,
            target: Identifier::EchoService,
            reason: EndReason::server_error(),
        });
    }

    /// The echo bots' 20 ms ticks: their packets go into their calls; a finished
    /// test hangs up.
    fn tick_echo(&mut self, now: std::time::Instant) {
        let mut ended = Vec::new();
        for (call_id, bot) in &mut self.echo {
            bot.handle_timeout(now);
            while let Some(output) = bot.poll_output() {
                match output {
                    EchoOutput::Audio {
                        seq,
                        rtp_time,
                        level,
                        packet,
                    } => self.server.send_local_audio(
                        call_id,
                        &Identifier::EchoService,
                        seq,
                        rtp_time,
                        level,
                        &packet,
                        now,
                    ),
                    EchoOutput::Done => ended.push(call_id.clone()),
                }
            }
        }
        for call_id in ended {
            self.echo.remove(&call_id);
            self.hub.media_event(MediaEvent::LegEnded {
                call_id,
                target: Identifier::EchoService,
                reason: EndReason::normal(),
            });
        }
    }

    fn drain(&mut self) {
        let now = Instant::now().into_std();
        while let Some(audio) = self.server.poll_local_audio() {
            match audio.participant {
                Identifier::EchoService => {
                    if let Some(bot) = self.echo.get_mut(&audio.call) {
                        bot.handle_audio(&audio.packet, now);
                    }
                }
                Identifier::Phone(_) => {
                    let key = (audio.call, audio.participant);
                    let gone = self.phones.get(&key).is_some_and(|leg| {
                        matches!(
                            leg.try_send(LegInput::Audio(audio.packet)),
                            Err(mpsc::error::TrySendError::Closed(_))
                        )
                    });
                    if gone {
                        self.phones.remove(&key);
                    }
                }
                Identifier::User(_) => {}
            }
        }
        while let Some(transmit) = self.server.poll_transmit() {
            // Never wait for the socket: a full send buffer drops the datagram, as a
            // congested network would, rather than stalling every call.
            match self
                .socket
                .try_send_to(&transmit.contents, transmit.destination)
            {
                Ok(_) => {
                    self.metrics.sent.inc();
                }
                Err(error) => {
                    self.metrics.send_errors.inc();
                    tracing::debug!(destination = %transmit.destination, %error, "media send failed");
                }
            }
        }
        while let Some(event) = self.server.poll_event() {
            self.participants_changed = true;
            match event {
                ServerEvent::Connected { call, participant } => {
                    tracing::debug!(call_id = %call, %participant, "media connected");
                    // The echo test's caller can hear it now.
                    if let Some(bot) = self.echo.get_mut(&call) {
                        bot.start(now);
                    }
                }
                ServerEvent::Failed {
                    call,
                    participant,
                    reason,
                } => {
                    tracing::info!(call_id = %call, %participant, %reason, "media failed");
                    self.hub.media_event(MediaEvent::Failed {
                        call_id: call,
                        participant,
                    });
                }
                ServerEvent::DominantSpeakers { call, speakers } => {
                    self.hub.media_event(MediaEvent::DominantSpeakers {
                        call_id: call,
                        speakers,
                    });
                }
                ServerEvent::VideoSlots {
                    call,
                    participant,
                    slots,
                } => {
                    let slots = slots
                        .into_iter()
                        .map(|slot| {
                            let (participant, kind) = match slot.stream {
                                Some(s) => (
                                    Some(s.publisher),
                                    Some(match s.kind {
                                        StreamKind::Camera => VideoKind::Camera,
                                        StreamKind::ScreenShare => VideoKind::ScreenShare,
                                    }),
                                ),
                                None => (None, None),
                            };
                            VideoSlot {
                                mid: slot.mid,
                                participant,
                                kind,
                            }
                        })
                        .collect();
                    self.hub.media_event(MediaEvent::VideoSlots {
                        call_id: call,
                        participant,
                        slots,
                    });
                }
                other => tracing::debug!(?other, "media event not handled"),
            }
        }
        // Counting means walking every room, so only when something changed, never
        // per packet.
        if std::mem::take(&mut self.participants_changed) {
            let connected = self.server.stats().connected;
            self.metrics
                .participants
                .set(i64::try_from(connected).unwrap_or(i64::MAX));
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
