//! A call's audio on the native client: [`SignalingClient::start_audio`] binds a UDP
//! socket, makes a [`CallMedia`] (the SDP offerer), sends its offer through the
//! signaling session and spawns one task that owns the engine (STYLE.md §2).
//!
//! The task captures one frame from the [`AudioSource`] every 20 ms and sends it; it
//! feeds every datagram from the socket to the engine, plays the jitter-buffered
//! frames the engine hands out into the [`AudioSink`], and sleeps until the engine's
//! next timeout or the next capture tick, whichever comes first. Its clock is
//! `tokio::time::Instant`.
//!
//! The driver follows the call for it: the media plane's answer
//! ([`Event::MediaReceived`](ringwire_signaling::Event::MediaReceived)) is handed to
//! the task (the app still sees the event); mute stops sending; hold, ours or the far
//! end's, stops sending and receiving; the call ending stops the task, which
//! [`finish`](AudioSink::finish)es the sink. Stopping audio, or dropping its
//! [`AudioHandle`], leaves the call and its signaling alone; but the media plane takes
//! a participant whose media stays gone for long (str0m's ICE timeout, about 20 s) as
//! lost and removes it from the call, so an app that stops audio for good should
//! mute, hold or hang up instead, and one that switches devices starts audio again.
//!
//! [`SignalingClient::start_audio`]: crate::SignalingClient::start_audio

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ringwire_media::audio_io::{AudioSink, AudioSource, SourceState};
use ringwire_media::client::{
    CallMedia, CallMediaConfig, CallMediaEvent, CallMediaStats, VideoConfig,
};
use ringwire_media::codec::FRAME_DURATION;
use ringwire_media::rtc::MAX_DATAGRAM;
use ringwire_signaling::{Call, CallId, CallState};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::driver::now;
use crate::error::Error;
use crate::video::{CallVideo, VideoInput, VideoOptions, VideoStats};

/// How far capture may fall behind its 20 ms ticks before the lost time is skipped
/// rather than caught up in a burst of frames.
const MAX_CAPTURE_LAG: u32 = 5;

/// What [`SignalingClient::start_audio`](crate::SignalingClient::start_audio) needs:
/// where sound comes from and goes to, and how to encode it.
#[non_exhaustive]
pub struct AudioOptions {
    /// The microphone: one 20 ms frame is read every 20 ms.
    pub source: Box<dyn AudioSource>,
    /// The speaker: every received frame is written when it is due.
    pub sink: Box<dyn AudioSink>,
    /// The local IP to send media from (the ICE host candidate). `None` picks one:
    /// `127.0.0.1` when the signaling server is on loopback, otherwise the address
    /// the OS routes toward the signaling server's host.
    pub local_ip: Option<IpAddr>,
    /// The encoder, jitter buffer and voice-activity settings (its `video` is set
    /// from [`AudioOptions::video`]).
    pub media: CallMediaConfig,
    /// Video: `None` for an audio-only call. Set, the offer has a video send section
    /// (for [`SignalingClient::start_video`](crate::SignalingClient::start_video)) and
    /// receive slots for remote streams.
    pub video: Option<VideoOptions>,
}

/// Where a call's audio is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AudioState {
    /// The offer is sent; waiting for the answer and for ICE and DTLS.
    Connecting,
    /// Audio flows (as far as mute and hold let it).
    Connected,
    /// The task has stopped and finished the sink.
    Ended(AudioEnd),
}

/// Why a call's audio stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AudioEnd {
    /// The app stopped it ([`AudioHandle::stop`], or the handle was dropped).
    Stopped,
    /// The call ended.
    CallEnded,
    /// The signaling client stopped (closed, `goodbye`, or reconnecting gave up).
    ClientClosed,
    /// The media plane refused the offer, or its answer could not be used.
    NegotiationFailed {
        /// The engine's explanation.
        reason: String,
    },
    /// The path to the media server was lost (ICE or DTLS failed).
    MediaLost {
        /// The engine's explanation.
        reason: String,
    },
}

/// The app's handle to one call's audio. Dropping it stops the audio (the call goes
/// on).
#[derive(Debug)]
pub struct AudioHandle {
    call_id: CallId,
    local: SocketAddr,
    state: watch::Receiver<AudioState>,
    stats: watch::Receiver<CallMediaStats>,
    video_stats: watch::Receiver<VideoStats>,
    /// Dropped (by [`AudioHandle::stop`] or with the handle) to stop the task.
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// What the driver tells an audio task.
#[derive(Debug)]
pub(crate) enum AudioInput {
    /// The media plane's SDP answer.
    Answer(String),
    /// The media plane refused the offer; why.
    Refused(String),
    /// What the call lets through now.
    Flow(Flow),
    /// The call is over.
    CallEnded,
    /// The video source or the receive slots changed.
    Video(VideoInput),
}

/// What a call lets through: nothing on hold, nothing out while muted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flow {
    sending: bool,
    receiving: bool,
}

/// The driver's end of one audio task.
#[derive(Debug)]
pub(crate) struct AudioLink {
    inputs: mpsc::UnboundedSender<AudioInput>,
    /// The flow last told, to tell only changes.
    flow: Option<Flow>,
    /// Whether the offer still waits for its answer.
    awaiting_answer: bool,
    /// Whether the offer has a video send section.
    publishes_video: bool,
}

/// The task that owns one call's [`CallMedia`].
pub(crate) struct AudioTask {
    call_id: CallId,
    media: CallMedia,
    socket: UdpSocket,
    local: SocketAddr,
    source: Box<dyn AudioSource>,
    sink: Box<dyn AudioSink>,
    frame_len: usize,
    inputs: mpsc::UnboundedReceiver<AudioInput>,
    stop: oneshot::Receiver<()>,
    state: watch::Sender<AudioState>,
    stats: watch::Sender<CallMediaStats>,
    video: Option<CallVideo>,
    video_stats: watch::Sender<VideoStats>,
    /// What the call lets through (hold stops video both ways).
    flow: Flow,
    /// What the source said last, to log a change once rather than every frame.
    source_health: SourceHealth,
    /// Whether the sink failed last time, likewise.
    sink_failed: bool,
}

/// How the last read from the source went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SourceHealth {
    Active,
    Ended,
    Failed,
}

/// The signaling server's host, as the endpoint names it: where media is routed to
/// when the app does not choose a local IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerHost {
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl AudioOptions {
    /// Audio from `source` to `sink`, with the default local IP and engine settings.
    pub fn new(source: impl AudioSource + 'static, sink: impl AudioSink + 'static) -> Self {
        AudioOptions {
            source: Box::new(source),
            sink: Box::new(sink),
            local_ip: None,
            media: CallMediaConfig::default(),
            video: None,
        }
    }

    /// These options with video.
    #[must_use]
    pub fn with_video(mut self, video: VideoOptions) -> Self {
        self.video = Some(video);
        self
    }
}

impl fmt::Debug for AudioOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AudioOptions")
            .field("local_ip", &self.local_ip)
            .field("media", &self.media)
            .field("video", &self.video)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for AudioEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AudioEnd::Stopped => f.write_str("stopped by the app"),
            AudioEnd::CallEnded => f.write_str("the call ended"),
            AudioEnd::ClientClosed => f.write_str("the signaling client stopped"),
            AudioEnd::NegotiationFailed { reason } => write!(f, "negotiation failed: {reason}"),
            AudioEnd::MediaLost { reason } => write!(f, "media path lost: {reason}"),
        }
    }
}

impl AudioHandle {
    /// The call this audio belongs to.
    pub fn call_id(&self) -> &CallId {
        &self.call_id
    }

    /// The local address media is sent from (the ICE host candidate).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Where the audio is now.
    pub fn state(&self) -> AudioState {
        self.state.borrow().clone()
    }

    /// A receiver that sees every change of [`AudioHandle::state`].
    pub fn watch_state(&self) -> watch::Receiver<AudioState> {
        self.state.clone()
    }

    /// The engine's counters, as of the last 20 ms tick (final once ended).
    pub fn stats(&self) -> CallMediaStats {
        *self.stats.borrow()
    }

    /// The video counters, as of the last 20 ms tick (final once ended); all zero for
    /// an audio-only call.
    pub fn video_stats(&self) -> VideoStats {
        *self.video_stats.borrow()
    }

    /// A receiver that sees the video counters change.
    pub fn watch_video_stats(&self) -> watch::Receiver<VideoStats> {
        self.video_stats.clone()
    }

    /// Waits until audio flows with the media plane.
    ///
    /// # Errors
    /// [`Error::AudioEnded`] when the audio stopped first.
    pub async fn wait_connected(&self) -> Result<(), Error> {
        let mut state = self.state.clone();
        let state = state
            .wait_for(|s| !matches!(s, AudioState::Connecting))
            .await
            .map_err(|_| Error::AudioEnded(AudioEnd::Stopped))?;
        match &*state {
            AudioState::Ended(end) => Err(Error::AudioEnded(end.clone())),
            _ => Ok(()),
        }
    }

    /// Waits until the audio has stopped on its own (the call ended, the media path
    /// was lost) and says why.
    pub async fn wait_ended(&self) -> AudioEnd {
        let mut state = self.state.clone();
        match state
            .wait_for(|s| matches!(s, AudioState::Ended(_)))
            .await
            .as_deref()
        {
            Ok(AudioState::Ended(end)) => end.clone(),
            // The task is gone without saying why: it can only have been stopped.
            _ => AudioEnd::Stopped,
        }
    }

    /// Stops the audio and returns once the sink is finished. The call goes on, but
    /// the media plane removes a participant whose media stays gone for about 20 s
    /// (str0m's ICE timeout): start audio again before then, or mute or hold instead.
    pub async fn stop(self) {
        let AudioHandle { stop, task, .. } = self;
        drop(stop);
        if let Err(error) = task.await {
            tracing::debug!(%error, "audio task did not end cleanly");
        }
    }
}

impl Flow {
    /// What `call` lets through; `None` when it is over.
    fn of(call: Option<&Call>) -> Option<Flow> {
        let call = call?;
        Some(match call.state() {
            CallState::Disconnected | CallState::None => return None,
            CallState::LocalHold | CallState::RemoteHold | CallState::Disconnecting => Flow {
                sending: false,
                receiving: false,
            },
            _ => Flow {
                sending: !call.is_muted(),
                receiving: true,
            },
        })
    }
}

impl AudioLink {
    /// Hands the media plane's answer to the task; a second answer (the media plane
    /// answers each offer once) is ignored.
    pub(crate) fn answer(&mut self, sdp: String) {
        if !std::mem::take(&mut self.awaiting_answer) {
            tracing::debug!("a second sdp answer, ignored");
            return;
        }
        // A task that stopped meanwhile needs no answer.
        let _ = self.inputs.send(AudioInput::Answer(sdp));
    }

    /// The server refused a request about the call with `malformed` while the offer
    /// waits for its answer: that is how the media plane refuses an offer (the client
    /// sends no other malformed request), so the audio ends rather than wait forever.
    pub(crate) fn refused(&mut self, message: &str) {
        if std::mem::take(&mut self.awaiting_answer) {
            let _ = self.inputs.send(AudioInput::Refused(message.to_owned()));
        }
    }

    /// Tells the task what `call` lets through now, if that changed. `false` when the
    /// link is done: the call is over (the task is told) or the task has stopped.
    pub(crate) fn follow(&mut self, call: Option<&Call>) -> bool {
        if self.inputs.is_closed() {
            return false;
        }
        let Some(flow) = Flow::of(call) else {
            let _ = self.inputs.send(AudioInput::CallEnded);
            return false;
        };
        if self.flow != Some(flow) {
            self.flow = Some(flow);
            let _ = self.inputs.send(AudioInput::Flow(flow));
        }
        true
    }

    /// Whether the task is still there to talk to.
    pub(crate) fn is_alive(&self) -> bool {
        !self.inputs.is_closed()
    }

    /// Whether the task can send video (its offer has a send section).
    pub(crate) fn publishes_video(&self) -> bool {
        self.publishes_video
    }

    /// Hands the task a video input.
    pub(crate) fn video(&self, input: VideoInput) {
        let _ = self.inputs.send(AudioInput::Video(input));
    }
}

impl AudioTask {
    /// Binds the socket and makes the engine and its offer: everything that can fail
    /// before the driver is asked to send the offer. Returns the task, the link for
    /// the driver, the handle for the app, and the offer.
    pub(crate) async fn prepare(
        call_id: &CallId,
        options: AudioOptions,
        server: Option<&ServerHost>,
    ) -> Result<(AudioTask, AudioLink, HandleParts, String), Error> {
        let ip = match options.local_ip {
            Some(ip) => ip,
            None => local_ip_toward(server.ok_or(Error::NoMediaAddress)?).await?,
        };
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0))
            .await
            .map_err(Error::AudioSocket)?;
        let local = socket.local_addr().map_err(Error::AudioSocket)?;
        let mut config = options.media;
        config.video = options.video.as_ref().map(|v| {
            let mut video = VideoConfig::default();
            video.publish = v.publish;
            video.slots = v.slots;
            video
        });
        let publishes_video = options.video.as_ref().is_some_and(|v| v.publish);
        let (media, offer) = CallMedia::new(local, config, now())?;
        let video = options.video.map(|v| CallVideo::new(v, &media));
        let (inputs_tx, inputs) = mpsc::unbounded_channel();
        let (stop_tx, stop) = oneshot::channel();
        let (state_tx, state) = watch::channel(AudioState::Connecting);
        let (stats_tx, stats) = watch::channel(media.stats());
        let (video_stats_tx, video_stats) = watch::channel(VideoStats::default());
        let task = AudioTask {
            call_id: call_id.clone(),
            media,
            socket,
            local,
            source: options.source,
            sink: options.sink,
            frame_len: options.media.opus.channels.frame_len(),
            inputs,
            stop,
            state: state_tx,
            stats: stats_tx,
            video,
            video_stats: video_stats_tx,
            flow: Flow {
                sending: true,
                receiving: true,
            },
            source_health: SourceHealth::Active,
            sink_failed: false,
        };
        let link = AudioLink {
            inputs: inputs_tx,
            flow: None,
            awaiting_answer: true,
            publishes_video,
        };
        let parts = HandleParts {
            call_id: call_id.clone(),
            local,
            state,
            stats,
            video_stats,
            stop: stop_tx,
        };
        Ok((task, link, parts, offer))
    }

    /// Runs until the call ends, the app stops it or the media path is lost, then
    /// finishes the sink.
    pub(crate) async fn run(mut self) {
        let end = self.run_loop().await;
        tracing::debug!(call_id = %self.call_id, %end, "audio stopped");
        if let Err(error) = self.sink.finish() {
            tracing::debug!(%error, sink = self.sink.name(), "audio sink did not finish cleanly");
        }
        if let Some(video) = &mut self.video {
            video.finish();
            self.video_stats.send_replace(video.stats());
        }
        self.stats.send_replace(self.media.stats());
        self.state.send_replace(AudioState::Ended(end));
    }

    async fn run_loop(&mut self) -> AudioEnd {
        let mut datagram = vec![0u8; MAX_DATAGRAM];
        let mut pcm = vec![0i16; self.frame_len];
        let mut next_capture = Instant::now();
        loop {
            if let Some(end) = self.drain().await {
                return end;
            }
            let mut deadline = self
                .media
                .poll_timeout()
                .map(Instant::from_std)
                .map_or(next_capture, |t| t.min(next_capture));
            if let Some(video) = self.video.as_ref().and_then(CallVideo::next_capture) {
                deadline = deadline.min(video);
            }
            tokio::select! {
                _ = &mut self.stop => return AudioEnd::Stopped,
                input = self.inputs.recv() => match input {
                    Some(AudioInput::Answer(sdp)) => {
                        if let Err(error) = self.media.handle_answer(&sdp) {
                            return AudioEnd::NegotiationFailed { reason: error.to_string() };
                        }
                    }
                    Some(AudioInput::Flow(flow)) => {
                        tracing::debug!(call_id = %self.call_id, ?flow, "audio flow");
                        self.flow = flow;
                        self.media.set_sending(flow.sending);
                        self.media.set_receiving(flow.receiving);
                        self.follow_video();
                    }
                    Some(AudioInput::Video(input)) => {
                        if let Some(video) = &mut self.video {
                            video.handle_input(input, &mut self.media);
                            self.follow_video();
                        }
                    }
                    Some(AudioInput::Refused(reason)) => {
                        return AudioEnd::NegotiationFailed { reason };
                    }
                    Some(AudioInput::CallEnded) => return AudioEnd::CallEnded,
                    None => return AudioEnd::ClientClosed,
                },
                received = self.socket.recv_from(&mut datagram) => match received {
                    Ok((len, source)) => {
                        let contents = datagram.get(..len).unwrap_or_default();
                        if !self.media.handle_receive(now(), source, self.local, contents) {
                            tracing::debug!(%source, len, "datagram not for this call, ignored");
                        }
                    }
                    // One failed read (an ICMP error reported on the socket) is not
                    // the end: ICE decides when the path is gone.
                    Err(error) => tracing::debug!(%error, "audio socket read failed"),
                },
                () = tokio::time::sleep_until(deadline) => {
                    let at = Instant::now();
                    if let Some(video) = &mut self.video {
                        video.capture(at, &mut self.media);
                    }
                    if at >= next_capture {
                        self.capture(&mut pcm);
                        next_capture += FRAME_DURATION;
                        if at > next_capture + FRAME_DURATION * MAX_CAPTURE_LAG {
                            tracing::debug!(lag = ?(at - next_capture), "capture fell behind, skipping");
                            next_capture = at + FRAME_DURATION;
                        }
                    }
                    self.media.handle_timeout(now());
                }
            }
        }
    }

    /// Reads one frame from the source and sends it. A source that ended sends
    /// silence; one that fails is logged once and sends silence until it recovers.
    fn capture(&mut self, pcm: &mut [i16]) {
        let health = match self.source.read_frame(pcm) {
            Ok(SourceState::Active) => SourceHealth::Active,
            Ok(SourceState::Ended) => SourceHealth::Ended,
            Err(error) => {
                if self.source_health != SourceHealth::Failed {
                    tracing::debug!(%error, source = self.source.name(), "audio source failed");
                }
                pcm.fill(0);
                SourceHealth::Failed
            }
        };
        if health != self.source_health {
            tracing::debug!(source = self.source.name(), ?health, "audio source");
            self.source_health = health;
        }
        if let Err(error) = self.media.send_audio(pcm, now()) {
            tracing::debug!(%error, "frame not sent");
        }
        self.stats.send_replace(self.media.stats());
        if let Some(video) = &self.video {
            self.video_stats.send_replace(video.stats());
        }
    }

    /// Video is sent while a source is set and the call is not on hold.
    fn follow_video(&mut self) {
        let sending = self
            .video
            .as_ref()
            .is_some_and(|v| v.has_source() && self.flow.receiving);
        self.media.set_video_sending(sending);
    }

    /// Drain rule: datagrams out, events handled, due frames played. `Some` when the
    /// media path is gone.
    async fn drain(&mut self) -> Option<AudioEnd> {
        while let Some(transmit) = self.media.poll_transmit() {
            if let Err(error) = self
                .socket
                .send_to(&transmit.contents, transmit.destination)
                .await
            {
                tracing::debug!(%error, destination = %transmit.destination, "send failed");
            }
        }
        let mut end = None;
        while let Some(event) = self.media.poll_event() {
            match event {
                CallMediaEvent::Connected => {
                    tracing::debug!(call_id = %self.call_id, "audio connected");
                    self.state.send_replace(AudioState::Connected);
                }
                CallMediaEvent::Disconnected { reason } => {
                    end = Some(AudioEnd::MediaLost { reason });
                }
                event => {
                    if !self.video.as_mut().is_some_and(|v| v.handle_event(&event)) {
                        tracing::trace!(?event, "media event");
                    }
                }
            }
        }
        while let Some(received) = self.media.poll_video() {
            match &mut self.video {
                Some(video) => video.receive(received, &mut self.media),
                None => tracing::trace!("video without video options, dropped"),
            }
        }
        let at = now();
        while let Some(frame) = self.media.poll_audio(at) {
            match self.sink.write_frame(&frame.pcm) {
                Ok(()) => self.sink_failed = false,
                Err(error) => {
                    if !self.sink_failed {
                        tracing::debug!(%error, sink = self.sink.name(), "audio sink failed");
                    }
                    self.sink_failed = true;
                }
            }
        }
        end
    }
}

/// The app-side ends made by [`AudioTask::prepare`], joined with the task's
/// `JoinHandle` once it is spawned.
pub(crate) struct HandleParts {
    call_id: CallId,
    local: SocketAddr,
    state: watch::Receiver<AudioState>,
    stats: watch::Receiver<CallMediaStats>,
    video_stats: watch::Receiver<VideoStats>,
    stop: oneshot::Sender<()>,
}

impl HandleParts {
    pub(crate) fn into_handle(self, task: JoinHandle<()>) -> AudioHandle {
        AudioHandle {
            call_id: self.call_id,
            local: self.local,
            state: self.state,
            stats: self.stats,
            video_stats: self.video_stats,
            stop: self.stop,
            task,
        }
    }
}

impl ServerHost {
    /// The host and port of a `ws://` or `wss://` URL.
    pub(crate) fn from_url(url: &str) -> Option<ServerHost> {
        let uri: tokio_tungstenite::tungstenite::http::Uri = url.parse().ok()?;
        let default_port = match uri.scheme_str() {
            Some("wss") | Some("https") => 443,
            _ => 80,
        };
        let host = uri.host()?;
        // An IPv6 literal keeps its brackets in a URI.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Some(ServerHost {
            host: host.to_owned(),
            port: uri.port_u16().unwrap_or(default_port),
        })
    }
}

/// The local IP to send media from when the app gave none: loopback for a server on
/// loopback, otherwise what the OS routes toward the server (a UDP `connect` sends
/// nothing; it only picks the route).
async fn local_ip_toward(server: &ServerHost) -> Result<IpAddr, Error> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((server.host.as_str(), server.port))
        .await
        .map_err(Error::AudioSocket)?
        .collect();
    // The media plane is more likely IPv4 (its default bind is): prefer that family.
    let target = addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or(Error::NoMediaAddress)?;
    if let Some(ip) = loopback_for(target.ip()) {
        return Ok(ip);
    }
    let unspecified = match target {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let probe = UdpSocket::bind(SocketAddr::new(unspecified, 0))
        .await
        .map_err(Error::AudioSocket)?;
    probe.connect(target).await.map_err(Error::AudioSocket)?;
    let ip = probe.local_addr().map_err(Error::AudioSocket)?.ip();
    if ip.is_unspecified() {
        return Err(Error::NoMediaAddress);
    }
    Ok(ip)
}

/// The loopback address to use toward a server at `ip`, if it is on loopback.
fn loopback_for(ip: IpAddr) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(v4) if v4.is_loopback() => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        IpAddr::V6(v6) if v6.is_loopback() => Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .filter(Ipv4Addr::is_loopback)
            .map(|_| IpAddr::V4(Ipv4Addr::LOCALHOST)),
        IpAddr::V4(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_host_from_urls() {
        let host = |url| ServerHost::from_url(url).map(|h| (h.host, h.port));
        assert_eq!(
            host("ws://127.0.0.1:8080/v1/signaling"),
            Some(("127.0.0.1".into(), 8080))
        );
        assert_eq!(
            host("wss://example.com/v1/signaling"),
            Some(("example.com".into(), 443))
        );
        assert_eq!(host("ws://[::1]:9/x"), Some(("::1".into(), 9)));
        assert_eq!(host("ws://example.com/x"), Some(("example.com".into(), 80)));
        assert_eq!(host("not a url"), None);
    }

    #[tokio::test]
    async fn loopback_server_means_loopback_media() {
        for (host, want) in [
            ("127.0.0.1", IpAddr::V4(Ipv4Addr::LOCALHOST)),
            ("127.0.0.5", IpAddr::V4(Ipv4Addr::LOCALHOST)),
            ("localhost", IpAddr::V4(Ipv4Addr::LOCALHOST)),
        ] {
            let server = ServerHost {
                host: host.into(),
                port: 8080,
            };
            assert_eq!(local_ip_toward(&server).await.unwrap(), want, "{host}");
        }
        assert_eq!(
            loopback_for(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            Some(IpAddr::V6(Ipv6Addr::LOCALHOST))
        );
        assert_eq!(loopback_for("192.0.2.1".parse().unwrap()), None);
    }

    #[tokio::test]
    async fn routed_server_gets_a_concrete_local_ip() {
        // A documentation address: `connect` only asks the routing table, sends
        // nothing. Without any route (an isolated sandbox) the error is typed.
        let server = ServerHost {
            host: "192.0.2.1".into(),
            port: 9,
        };
        match local_ip_toward(&server).await {
            Ok(ip) => assert!(!ip.is_unspecified() && !ip.is_loopback(), "{ip}"),
            Err(error) => assert!(
                matches!(error, Error::AudioSocket(_) | Error::NoMediaAddress),
                "{error}"
            ),
        }
    }

    #[test]
    fn the_link_follows_mute_hold_and_the_end_of_the_call() {
        use ringwire_signaling::{
            ClientSession, EndReason, Identifier, JoinOptions, ServerMessage, SessionConfig,
        };

        let now = std::time::Instant::now();
        let mut session = ClientSession::new(SessionConfig::new("token", 1), now);
        session.handle_connected(now);
        let authenticated = ServerMessage::Authenticated {
            user: Identifier::user("alice").unwrap(),
            resume_token: "r".into(),
            grace_ms: 1000,
            resumed: false,
        };
        session.handle_message(authenticated, now).unwrap();
        let bob = Identifier::user("bob").unwrap();
        let call_id = session
            .start_call(&[bob], JoinOptions::default(), now)
            .unwrap();
        let (inputs, mut told) = mpsc::unbounded_channel();
        let mut link = AudioLink {
            inputs,
            flow: None,
            awaiting_answer: true,
            publishes_video: false,
        };
        let mut step = |session: &mut ClientSession, message: Option<ServerMessage>| {
            if let Some(message) = message {
                session.handle_message(message, now).unwrap();
            }
            let alive = link.follow(session.call(&call_id));
            let mut seen = Vec::new();
            while let Ok(input) = told.try_recv() {
                seen.push(match input {
                    AudioInput::Flow(f) => Some((f.sending, f.receiving)),
                    AudioInput::CallEnded => None,
                    AudioInput::Answer(_) | AudioInput::Refused(_) | AudioInput::Video(_) => {
                        unreachable!("nobody answered")
                    }
                });
            }
            (alive, seen)
        };
        let state = |state| {
            Some(ServerMessage::CallState {
                call_id: call_id.clone(),
                state,
                end_reason: (state == CallState::Disconnected).then(EndReason::normal),
            })
        };
        let mute = |muted| {
            Some(ServerMessage::MuteState {
                call_id: call_id.clone(),
                muted,
            })
        };
        // Connecting: both ways; nothing new is told twice.
        assert_eq!(step(&mut session, None), (true, vec![Some((true, true))]));
        assert_eq!(
            step(&mut session, state(CallState::Connected)),
            (true, vec![])
        );
        assert_eq!(
            step(&mut session, mute(true)),
            (true, vec![Some((false, true))])
        );
        assert_eq!(
            step(&mut session, state(CallState::LocalHold)),
            (true, vec![Some((false, false))])
        );
        assert_eq!(
            step(&mut session, state(CallState::Connected)),
            (true, vec![Some((false, true))])
        );
        assert_eq!(
            step(&mut session, mute(false)),
            (true, vec![Some((true, true))])
        );
        assert_eq!(
            step(&mut session, state(CallState::RemoteHold)),
            (true, vec![Some((false, false))])
        );
        assert_eq!(
            step(&mut session, state(CallState::Disconnected)),
            (false, vec![None])
        );
    }

    /// A sink that says when it was finished.
    struct Finished(std::sync::Arc<std::sync::atomic::AtomicBool>);

    impl AudioSink for Finished {
        fn write_frame(&mut self, _: &[i16]) -> Result<(), ringwire_media::audio_io::AudioIoError> {
            Ok(())
        }

        fn finish(&mut self) -> Result<(), ringwire_media::audio_io::AudioIoError> {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }

        fn name(&self) -> &str {
            "finished"
        }
    }

    /// A task on loopback with nobody on the other end, its link and handle.
    async fn lone_task() -> (
        AudioLink,
        AudioHandle,
        std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) {
        let finished = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut options = AudioOptions::new(
            ringwire_media::audio_io::SilenceSource,
            Finished(std::sync::Arc::clone(&finished)),
        );
        options.local_ip = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let call_id = CallId::new("c1").unwrap();
        let (task, link, parts, offer) = AudioTask::prepare(&call_id, options, None).await.unwrap();
        assert!(offer.contains("m=audio"), "{offer}");
        let handle = parts.into_handle(tokio::spawn(task.run()));
        assert_eq!(handle.state(), AudioState::Connecting);
        assert!(handle.local_addr().ip().is_loopback());
        (link, handle, finished)
    }

    #[tokio::test]
    async fn every_way_the_task_ends_finishes_the_sink() {
        let ended = |end| AudioState::Ended(end);

        // The media plane refuses the offer.
        let (mut link, handle, finished) = lone_task().await;
        link.refused("media offer refused: no opus");
        assert_eq!(
            handle.wait_ended().await,
            AudioEnd::NegotiationFailed {
                reason: "media offer refused: no opus".into()
            }
        );
        assert!(finished.load(std::sync::atomic::Ordering::SeqCst));
        assert!(matches!(
            handle.wait_connected().await,
            Err(Error::AudioEnded(AudioEnd::NegotiationFailed { .. }))
        ));
        // Once answered, a refusal is about something else.
        let (mut link, handle, _) = lone_task().await;
        link.answer("not sdp".into());
        assert!(matches!(
            handle.wait_ended().await,
            AudioEnd::NegotiationFailed { .. }
        ));
        link.refused("about a mute");

        // The call ends.
        let (mut link, handle, finished) = lone_task().await;
        assert!(!link.follow(None));
        assert_eq!(handle.wait_ended().await, AudioEnd::CallEnded);
        assert!(finished.load(std::sync::atomic::Ordering::SeqCst));

        // The driver goes away.
        let (link, handle, finished) = lone_task().await;
        drop(link);
        assert_eq!(handle.wait_ended().await, AudioEnd::ClientClosed);
        assert!(finished.load(std::sync::atomic::Ordering::SeqCst));

        // The app stops it; dropping the handle does the same.
        let (link, handle, finished) = lone_task().await;
        let state = handle.watch_state();
        handle.stop().await;
        assert_eq!(*state.borrow(), ended(AudioEnd::Stopped));
        assert!(finished.load(std::sync::atomic::Ordering::SeqCst));
        assert!(!link.is_alive());
        let (link, handle, finished) = lone_task().await;
        let mut state = handle.watch_state();
        drop(handle);
        state
            .wait_for(|s| *s == ended(AudioEnd::Stopped))
            .await
            .unwrap();
        assert!(finished.load(std::sync::atomic::Ordering::SeqCst));
        assert!(!link.is_alive());
    }

    #[tokio::test]
    async fn capture_runs_every_20_ms_even_before_connecting() {
        let (_link, handle, _) = lone_task().await;
        let mut stats = handle.stats.clone();
        // Frames are read and counted (suppressed: nothing is connected).
        stats
            .wait_for(|s| s.frames_in >= 3 && s.frames_suppressed == s.frames_in)
            .await
            .unwrap();
        assert_eq!(handle.stats().packets_sent, 0);
    }

    #[test]
    fn a_stopped_task_ends_the_link() {
        let (inputs, told) = mpsc::unbounded_channel();
        let mut link = AudioLink {
            inputs,
            flow: None,
            awaiting_answer: true,
            publishes_video: false,
        };
        assert!(link.is_alive());
        drop(told);
        assert!(!link.is_alive());
        assert!(!link.follow(None));
    }
}
