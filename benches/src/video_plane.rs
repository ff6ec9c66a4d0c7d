//! The SFU's video forwarding path in process for benches: one publisher and N
//! subscribers, all native [`CallMedia`] clients with real str0m (ICE, DTLS-SRTP),
//! datagrams handed over in memory on a virtual clock, in front of one of two servers
//! ([`Sfu`]):
//!
//! - [`Ringwire`]: our [`MediaServer`] (address routing, the video router's selection,
//!   slots, key-frame gating, stats, str0m drains);
//! - [`BareSfu`]: the least code that forwards the same video with str0m: one `Rtc`
//!   per client built like the server's, a `Vec` index by client port, and per
//!   received frame `writer(mid).match_params(..)` and `write(..)` to every other
//!   client's receive section. What [`Ringwire`] costs beyond it is our own code's
//!   forwarding overhead (str0m's depacketizing, packetizing and SRTP are in both).
//!
//! The publisher sends a pre-encoded H.264 stream of the test pattern (a key frame,
//! then P frames in a loop; a key frame again whenever someone asks for one). One step
//! is one video frame, split so that a bench times the server's share alone:
//!
//! 1. [`VideoWorld::send`] (untimed): the server takes the clients' control datagrams
//!    of the last step (RTCP, STUN), then the publisher packetizes and protects one
//!    frame; its RTP packets, and only they, wait in the server's inbox;
//! 2. [`VideoWorld::forward`] (the timed part): the server receives those packets and
//!    runs what is due at the same instant (str0m sends what was written on its
//!    timeout), every transmit drained into a reused `Vec`, no socket;
//! 3. [`VideoWorld::deliver`] (untimed): the transmits reach the subscribers, which
//!    check every access unit they get against the one sent, byte for byte; the clock
//!    moves one frame (30 fps) and everyone's timers run.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ringwire_media::client::{CallMedia, CallMediaConfig, CallMediaEvent, VideoConfig};
use ringwire_media::router::StreamKind;
use ringwire_media::server::{MediaServer, MediaServerConfig, ServerEvent};
use ringwire_media::video::{FrameRate, TestPatternSource, VideoFormat, VideoFrame};
use ringwire_media::video_codec::{H264Config, H264Decoder, H264Encoder};
use ringwire_media::{OpusConfig, Transmit};
use str0m::change::SdpOffer;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{DatagramRecv, Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

/// The server's socket address (virtual: no socket is bound).
pub const SERVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 5000);

/// Client `i` sits at `127.0.0.1:(CLIENT_PORT + i)`; client 0 publishes.
const CLIENT_PORT: u16 = 20_000;

/// The most subscribers a world can have.
pub const MAX_SUBSCRIBERS: usize = 1000;

/// The one call of the world.
const CALL: u32 = 1;

/// The publisher's test-pattern tag, read back from decoded pictures.
const SENDER_TAG: u32 = 7;

/// Frames of the pre-encoded stream: one key frame, then P frames.
const STREAM_FRAMES: u64 = 30;

/// Frames per second of the stream and of the world's clock.
const FPS: u32 = 30;

/// Virtual time the connection of a world may take before it is declared broken.
const CONNECT_LIMIT: Duration = Duration::from_secs(30);

/// `handle_timeout` rounds per flush after which the server counts as stuck.
const MAX_TIMEOUT_ROUNDS: usize = 8;

/// Access units the first subscriber keeps from the warm-up, decoded in
/// [`VideoWorld::assert_healthy`] to check the content.
const KEPT_UNITS: usize = 10;

/// A media server as the world drives it.
pub trait Sfu {
    /// Takes client `i`'s SDP offer (client 0 publishes), returns the answer.
    fn accept(&mut self, i: usize, offer: &str, now: Instant) -> String;
    /// One datagram from `source`.
    fn receive(&mut self, now: Instant, source: SocketAddr, datagram: &[u8]);
    /// Runs the timers due at `now`.
    fn handle_timeout(&mut self, now: Instant);
    /// The next datagram to send.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// When [`Sfu::handle_timeout`] is due.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Clients whose media is up, as the server sees it.
    fn connected(&self) -> usize;
}

/// Our [`MediaServer`] as an [`Sfu`]; its events are drained after every input.
pub struct Ringwire {
    server: MediaServer<u32, u32>,
    connected: usize,
}

impl std::fmt::Debug for Ringwire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ringwire")
            .field("connected", &self.connected)
            .finish_non_exhaustive()
    }
}

impl Ringwire {
    /// A server with the default settings.
    #[must_use]
    pub fn new() -> Self {
        let mut config = MediaServerConfig::new(SERVER);
        config.mixer.opus = opus();
        Self {
            server: MediaServer::new(config),
            connected: 0,
        }
    }

    /// A server that also holds `rooms` other calls, each with one participant who
    /// joined and never connected: what the forwarding path of one call costs on a
    /// server carrying others.
    #[must_use]
    pub fn with_idle_rooms(rooms: usize) -> Self {
        let mut sfu = Self::new();
        let now = Instant::now();
        for call in 0..rooms {
            let call = u32::try_from(call).expect("rooms fit in u32") + CALL + 1;
            sfu.server
                .join(&call, &0, now)
                .expect("the default mixer settings are valid");
        }
        sfu
    }

    /// The server.
    #[must_use]
    pub fn server(&self) -> &MediaServer<u32, u32> {
        &self.server
    }

    fn events(&mut self) {
        while let Some(e) = self.server.poll_event() {
            match e {
                ServerEvent::Connected { .. } => self.connected += 1,
                ServerEvent::Failed {
                    participant,
                    reason,
                    ..
                } => panic!("participant {participant} failed: {reason}"),
                _ => {}
            }
        }
    }
}

impl Default for Ringwire {
    fn default() -> Self {
        Self::new()
    }
}

impl Sfu for Ringwire {
    fn accept(&mut self, i: usize, offer: &str, now: Instant) -> String {
        let id = participant(i);
        self.server
            .join(&CALL, &id, now)
            .expect("the default mixer settings are valid");
        let answer = self
            .server
            .accept_offer(&CALL, &id, offer, now)
            .expect("the server answers a CallMedia offer");
        if i == 0 {
            self.server
                .set_video(&CALL, &id, Some(StreamKind::Camera), now);
        }
        answer
    }

    fn receive(&mut self, now: Instant, source: SocketAddr, datagram: &[u8]) {
        self.server.handle_receive(now, source, SERVER, datagram);
        self.events();
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.server.handle_timeout(now);
        self.events();
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.server.poll_transmit()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.server.poll_timeout()
    }

    fn connected(&self) -> usize {
        self.connected
    }
}

/// One client's `Rtc` in the [`BareSfu`].
struct BarePeer {
    rtc: Rtc,
    /// The section it publishes on (ours `recvonly`).
    publish: Option<Mid>,
    /// Its first receive slot (ours `sendonly`).
    slot: Option<Mid>,
    timeout: Option<Instant>,
    connected: bool,
}

/// The least forwarding code on str0m: see the [module docs](self).
#[derive(Default)]
pub struct BareSfu {
    peers: Vec<BarePeer>,
    transmits: VecDeque<Transmit>,
    /// Frames received from the publisher in the current drain, reused.
    frames: Vec<str0m::media::MediaData>,
}

impl std::fmt::Debug for BareSfu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BareSfu")
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

impl BareSfu {
    /// A server with nobody in it.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Polls peer `i` until it only has a timeout left; frames it received on its
    /// publish section go to `self.frames`.
    fn drain(&mut self, i: usize) {
        let Some(peer) = self.peers.get_mut(i) else {
            return;
        };
        loop {
            match peer.rtc.poll_output() {
                Ok(Output::Transmit(t)) => self.transmits.push_back(t.into()),
                Ok(Output::Timeout(t)) => {
                    peer.timeout = Some(t);
                    return;
                }
                Ok(Output::Event(Event::Connected)) => peer.connected = true,
                Ok(Output::Event(Event::MediaData(data))) if peer.publish == Some(data.mid) => {
                    self.frames.push(data);
                }
                Ok(Output::Event(_)) => {}
                Err(e) => panic!("bare peer {i}: {e}"),
            }
        }
    }

    /// Writes the frames peer `from` sent to everyone else's receive slot.
    fn forward(&mut self, from: usize) {
        let mut frames = std::mem::take(&mut self.frames);
        for data in frames.drain(..) {
            for to in 0..self.peers.len() {
                if to == from {
                    continue;
                }
                let Some(peer) = self.peers.get_mut(to) else {
                    continue;
                };
                let Some(mid) = peer.slot.filter(|_| peer.connected) else {
                    continue;
                };
                let Some(writer) = peer.rtc.writer(mid) else {
                    continue;
                };
                let Some(pt) = writer.match_params(data.params) else {
                    continue;
                };
                if writer
                    .write(pt, data.network_time, data.time, data.data.clone())
                    .is_ok()
                {
                    self.drain(to);
                }
            }
        }
        self.frames = frames;
    }
}

impl Sfu for BareSfu {
    fn accept(&mut self, i: usize, offer: &str, now: Instant) -> String {
        assert_eq!(i, self.peers.len(), "clients join in order");
        let offer = SdpOffer::from_sdp_string(offer).expect("a CallMedia offer parses");
        let mids: Vec<Mid> = offer.media_lines.iter().map(|m| m.mid()).collect();
        let mut rtc = rtc_config().build(now);
        rtc.add_local_candidate(Candidate::host(SERVER, "udp").expect("a host candidate"))
            .expect("the candidate is new");
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .expect("str0m answers a CallMedia offer");
        let (mut publish, mut slot) = (None, None);
        for mid in mids {
            match rtc.media(mid).map(|m| (m.kind(), m.direction())) {
                Some((MediaKind::Video, Direction::RecvOnly)) => publish = publish.or(Some(mid)),
                Some((MediaKind::Video, Direction::SendOnly)) => slot = slot.or(Some(mid)),
                _ => {}
            }
        }
        self.peers.push(BarePeer {
            rtc,
            publish,
            slot,
            timeout: None,
            connected: false,
        });
        self.drain(i);
        answer.to_sdp_string()
    }

    fn receive(&mut self, now: Instant, source: SocketAddr, datagram: &[u8]) {
        let Some(i) = client_index(source).filter(|&i| i < self.peers.len()) else {
            return;
        };
        let Ok(contents) = DatagramRecv::try_from(datagram) else {
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: SERVER,
                contents,
            },
        );
        let Some(peer) = self.peers.get_mut(i) else {
            return;
        };
        if peer.rtc.handle_input(input).is_err() {
            return;
        }
        self.drain(i);
        self.forward(i);
    }

    fn handle_timeout(&mut self, now: Instant) {
        for i in 0..self.peers.len() {
            let Some(peer) = self.peers.get_mut(i) else {
                continue;
            };
            if peer.timeout.is_some_and(|t| t > now) {
                continue;
            }
            if let Err(e) = peer.rtc.handle_input(Input::Timeout(now)) {
                panic!("bare peer {i}: {e}");
            }
            self.drain(i);
            self.forward(i);
        }
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.peers.iter().filter_map(|p| p.timeout).min()
    }

    fn connected(&self) -> usize {
        self.peers.iter().filter(|p| p.connected).count()
    }
}

/// One client of the world.
struct Client {
    addr: SocketAddr,
    media: CallMedia,
    connected: bool,
    /// Access units received, and of those, not byte for byte the one sent.
    received: u64,
    mismatched: u64,
    /// Units received with packets missing before them.
    gaps: u64,
}

/// One publisher, N subscribers, one server. See the [module docs](self).
pub struct VideoWorld<S> {
    now: Instant,
    sfu: S,
    clients: Vec<Client>,
    /// The pre-encoded stream; `stream[0]` is the key frame.
    stream: Vec<Vec<u8>>,
    /// The next P frame of the loop (index into `stream`).
    next: usize,
    /// The publisher was asked for a key frame.
    keyframe_due: bool,
    /// Frames sent, and the unit most recently sent.
    sent: u64,
    last_sent: usize,
    /// RTP packets the publisher sent with the last frame.
    packets: usize,
    inbox: Vec<(SocketAddr, Vec<u8>)>,
    outbox: Vec<Transmit>,
    /// Units the first subscriber got during the warm-up, for the content check.
    kept: Vec<Vec<u8>>,
    stuck: u64,
}

impl<S> std::fmt::Debug for VideoWorld<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoWorld")
            .field("clients", &self.clients.len())
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

impl<S: Sfu> VideoWorld<S> {
    /// One publisher of a `width` x `height` H.264 stream (the default 800 kbps, 30 fps)
    /// and `subscribers` receivers
    /// (one slot each) in front of `sfu`, all connected, then a warm-up of 20 frames
    /// that every subscriber must receive.
    ///
    /// # Panics
    /// When the sizes are out of range or the world does not connect and carry video.
    #[must_use]
    pub fn connect(sfu: S, subscribers: usize, width: u32, height: u32) -> Self {
        assert!(
            (1..=MAX_SUBSCRIBERS).contains(&subscribers),
            "1..={MAX_SUBSCRIBERS} subscribers"
        );
        let start = Instant::now();
        let mut world = Self {
            now: start,
            sfu,
            clients: Vec::with_capacity(subscribers + 1),
            stream: encode_stream(width, height, H264Config::default().bitrate, STREAM_FRAMES),
            next: 1,
            keyframe_due: true,
            sent: 0,
            last_sent: 0,
            packets: 0,
            inbox: Vec::new(),
            outbox: Vec::new(),
            kept: Vec::new(),
            stuck: 0,
        };
        for i in 0..=subscribers {
            let addr = client_addr(i);
            let mut video = VideoConfig::default();
            video.publish = i == 0;
            video.slots = usize::from(i != 0);
            let mut config = CallMediaConfig::with_opus(opus());
            config.video = Some(video);
            let (mut media, offer) =
                CallMedia::new(addr, config, start).expect("a loopback candidate is valid");
            let answer = world.sfu.accept(i, &offer, start);
            media
                .handle_answer(&answer)
                .expect("a CallMedia takes the server's answer");
            world.clients.push(Client {
                addr,
                media,
                connected: false,
                received: 0,
                mismatched: 0,
                gaps: 0,
            });
        }
        world.handshake(start);
        for _ in 0..20 {
            world.step();
        }
        for (i, c) in world.clients.iter_mut().enumerate().skip(1) {
            assert!(c.received >= 10, "subscriber {i} got {} frames", c.received);
            c.received = 0;
            c.mismatched = 0;
            c.gaps = 0;
        }
        world.sent = 0;
        world
    }

    /// Runs the handshakes, delivering every datagram at once, in 5 ms steps.
    fn handshake(&mut self, start: Instant) {
        let n = self.clients.len();
        loop {
            loop {
                let mut moved = false;
                while let Some(t) = self.sfu.poll_transmit() {
                    moved = true;
                    if let Some(c) =
                        client_index(t.destination).and_then(|i| self.clients.get_mut(i))
                    {
                        c.media
                            .handle_receive(self.now, SERVER, c.addr, &t.contents);
                    }
                }
                for c in &mut self.clients {
                    while let Some(t) = c.media.poll_transmit() {
                        moved = true;
                        self.sfu.receive(self.now, c.addr, &t.contents);
                    }
                    while let Some(e) = c.media.poll_event() {
                        match e {
                            CallMediaEvent::Connected => c.connected = true,
                            CallMediaEvent::KeyframeRequested { .. } => self.keyframe_due = true,
                            other => panic!("client {} while connecting: {other:?}", c.addr),
                        }
                    }
                }
                if !moved {
                    break;
                }
            }
            if self.sfu.connected() == n && self.clients.iter().all(|c| c.connected) {
                return;
            }
            assert!(
                self.now - start < CONNECT_LIMIT,
                "after {CONNECT_LIMIT:?} only {} of {n} clients are connected",
                self.sfu.connected()
            );
            self.now += Duration::from_millis(5);
            self.sfu.handle_timeout(self.now);
            for c in &mut self.clients {
                c.media.handle_timeout(self.now);
            }
        }
    }

    /// One whole step: [`Self::send`], [`Self::forward`], [`Self::deliver`].
    pub fn step(&mut self) {
        self.send();
        self.forward();
        self.deliver();
    }

    /// Step 1: the server takes the control datagrams of the last step, then the
    /// publisher sends one frame (a key frame when one was asked for); its packets wait
    /// in the inbox. Returns how many.
    ///
    /// # Panics
    /// When the publisher refuses the frame (it cannot: H.264 was negotiated).
    pub fn send(&mut self) -> usize {
        for (source, datagram) in self.inbox.drain(..) {
            self.sfu.receive(self.now, source, &datagram);
        }
        flush(&mut self.sfu, self.now, &mut self.outbox, &mut self.stuck);
        let unit = if std::mem::take(&mut self.keyframe_due) {
            0
        } else {
            let unit = self.next;
            self.next = if self.next + 1 >= self.stream.len() {
                1
            } else {
                self.next + 1
            };
            unit
        };
        let capture = Duration::from_secs(self.sent) / FPS;
        let publisher = self.clients.first_mut().expect("the publisher exists");
        publisher
            .media
            .send_video(&self.stream[unit], capture, self.now)
            .expect("the publisher negotiated H.264");
        publisher.media.handle_timeout(self.now);
        while let Some(t) = publisher.media.poll_transmit() {
            self.inbox.push((publisher.addr, t.contents));
        }
        self.sent += 1;
        self.last_sent = unit;
        self.packets = self.inbox.len();
        self.packets
    }

    /// Step 2, the timed part: the server receives the frame's packets and runs what
    /// is due now; every transmit is drained.
    pub fn forward(&mut self) {
        for (source, datagram) in &self.inbox {
            self.sfu.receive(self.now, *source, datagram);
            while let Some(t) = self.sfu.poll_transmit() {
                self.outbox.push(t);
            }
        }
        flush(&mut self.sfu, self.now, &mut self.outbox, &mut self.stuck);
    }

    /// Step 3: the transmits reach the clients, which check what they got; the clock
    /// moves one frame; everyone's timers run.
    ///
    /// # Panics
    /// When a client's media failed.
    pub fn deliver(&mut self) {
        self.inbox.clear();
        for t in self.outbox.drain(..) {
            if let Some(c) = client_index(t.destination).and_then(|i| self.clients.get_mut(i)) {
                c.media
                    .handle_receive(self.now, SERVER, c.addr, &t.contents);
            }
        }
        let sent = &self.stream[self.last_sent];
        for (i, c) in self.clients.iter_mut().enumerate() {
            while let Some(v) = c.media.poll_video() {
                c.received += 1;
                c.mismatched += u64::from(*v.data != **sent);
                c.gaps += u64::from(!v.contiguous);
                if i == 1 && self.kept.len() < KEPT_UNITS {
                    self.kept.push(v.data.to_vec());
                }
            }
        }
        self.now += Duration::from_secs(1) / FPS;
        flush(&mut self.sfu, self.now, &mut self.outbox, &mut self.stuck);
        for t in self.outbox.drain(..) {
            if let Some(c) = client_index(t.destination).and_then(|i| self.clients.get_mut(i)) {
                c.media
                    .handle_receive(self.now, SERVER, c.addr, &t.contents);
            }
        }
        for c in &mut self.clients {
            c.media.handle_timeout(self.now);
            while let Some(t) = c.media.poll_transmit() {
                self.inbox.push((c.addr, t.contents));
            }
            while let Some(e) = c.media.poll_event() {
                match e {
                    CallMediaEvent::Connected => c.connected = true,
                    CallMediaEvent::KeyframeRequested { .. } => self.keyframe_due = true,
                    other => panic!("client {}: {other:?}", c.addr),
                }
            }
        }
    }

    /// RTP packets the publisher sent with the last frame.
    #[must_use]
    pub fn packets(&self) -> usize {
        self.packets
    }

    /// Subscribers.
    #[must_use]
    pub fn subscribers(&self) -> usize {
        self.clients.len() - 1
    }

    /// The server.
    #[must_use]
    pub fn sfu(&self) -> &S {
        &self.sfu
    }

    /// Checks that video flowed: every subscriber received every frame sent since the
    /// warm-up (at most 2 % missing), each byte for byte the one sent, without gaps; no
    /// flush left a timer due; and the first subscriber's warm-up units decode to the
    /// publisher's test pattern (its tag) with increasing frame numbers.
    ///
    /// # Panics
    /// When one of those does not hold.
    pub fn assert_healthy(&self) {
        assert!(self.sent >= 10, "send at least 10 frames ({})", self.sent);
        assert_eq!(self.stuck, 0, "flushes that left a server timer due");
        for (i, c) in self.clients.iter().enumerate().skip(1) {
            assert!(c.connected, "subscriber {i} stays connected");
            assert!(
                c.received * 50 >= self.sent * 49,
                "subscriber {i} received {} of {} frames",
                c.received,
                self.sent
            );
            assert_eq!(c.mismatched, 0, "subscriber {i}: units not as sent");
            assert_eq!(c.gaps, 0, "subscriber {i}: units after a gap");
        }
        let mut decoder = H264Decoder::new().expect("a decoder");
        let mut picture = VideoFrame::black(2, 2).expect("a valid size");
        let mut numbers = Vec::new();
        for unit in &self.kept {
            if decoder
                .decode(unit, &mut picture)
                .expect("the stream decodes")
            {
                assert_eq!(TestPatternSource::sender(&picture), Some(SENDER_TAG));
                numbers.extend(TestPatternSource::frame_number(&picture));
            }
        }
        assert!(numbers.len() >= 5, "decoded frame numbers {numbers:?}");
        // Increasing; the key frame (frame 0) may come again when a subscriber's
        // start asked for one after it was sent.
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1] || w[1] == 0),
            "frame numbers {numbers:?}"
        );
    }
}

/// Runs the server's timers due at `now` until none is, draining transmits.
fn flush<S: Sfu>(sfu: &mut S, now: Instant, outbox: &mut Vec<Transmit>, stuck: &mut u64) {
    for _ in 0..MAX_TIMEOUT_ROUNDS {
        sfu.handle_timeout(now);
        while let Some(t) = sfu.poll_transmit() {
            outbox.push(t);
        }
        if sfu.poll_timeout().is_none_or(|t| t > now) {
            return;
        }
    }
    *stuck += 1;
}

/// A stream of `frames` frames of the test pattern (the square moving every frame) at
/// `width` x `height` and `bitrate` (bits per second, 30 fps): one key frame, then P
/// frames only (no periodic key frame), as the publisher of a world sends it.
///
/// # Panics
/// When the size is below the test pattern's minimum or odd.
#[must_use]
pub fn encode_stream(width: u32, height: u32, bitrate: u32, frames: u64) -> Vec<Vec<u8>> {
    let format = VideoFormat::new(
        width,
        height,
        FrameRate::per_second(FPS).expect("a valid rate"),
    )
    .expect("a valid size");
    let pattern = TestPatternSource::new(format)
        .expect("at least 64x64")
        .with_sender(SENDER_TAG);
    let mut config = H264Config::default();
    config.keyframe_interval = 10_000;
    config.bitrate = bitrate;
    let mut encoder = H264Encoder::new(config).expect("a valid config");
    let mut frame = VideoFrame::black(2, 2).expect("a valid size");
    let mut stream = Vec::new();
    for index in 0..frames {
        pattern.draw(index, &mut frame).expect("the pattern's size");
        if let Some(unit) = encoder.encode(&frame).expect("an even-sided frame") {
            assert_eq!(unit.keyframe, stream.is_empty(), "frame {index}");
            stream.push(unit.data);
        }
    }
    stream
}

/// The `Rtc` configuration of the media server (`ringwire_media::rtc`, crate-private):
/// opus and H.264, no audio reordering hold-back.
fn rtc_config() -> RtcConfig {
    Rtc::builder()
        .clear_codecs()
        .enable_opus(true, false)
        .enable_h264(true)
        .set_reordering_size_audio(0)
}

fn opus() -> OpusConfig {
    OpusConfig {
        dtx: false,
        ..OpusConfig::default()
    }
}

/// Client `i`'s address.
fn client_addr(i: usize) -> SocketAddr {
    let port = u16::try_from(i)
        .ok()
        .and_then(|i| CLIENT_PORT.checked_add(i))
        .expect("MAX_SUBSCRIBERS keeps ports in range");
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

/// The client at `addr`, if it is one.
fn client_index(addr: SocketAddr) -> Option<usize> {
    addr.port()
        .checked_sub(CLIENT_PORT)
        .map(usize::from)
        .filter(|_| addr.ip() == IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// Client `i`'s participant id.
fn participant(i: usize) -> u32 {
    u32::try_from(i).expect("MAX_SUBSCRIBERS fits in u32")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ringwire_forwards_to_three() {
        let mut world = VideoWorld::connect(Ringwire::new(), 3, 160, 96);
        for _ in 0..30 {
            world.step();
        }
        world.assert_healthy();
        let s = world.sfu().server().stats();
        assert!(s.video_out >= 3 * 30, "{s:?}");
    }

    #[test]
    fn bare_str0m_forwards_to_three() {
        let mut world = VideoWorld::connect(BareSfu::new(), 3, 160, 96);
        for _ in 0..30 {
            world.step();
        }
        world.assert_healthy();
    }
}
