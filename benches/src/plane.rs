//! The media plane in process for benches: one [`MediaServer`] and N [`CallMedia`]
//! clients in one call, with real str0m (ICE, DTLS-SRTP) and real opus, datagrams
//! handed over in memory on a virtual clock (the shape of
//! `crates/media/tests/media_plane.rs`). A tick is split so that a bench can time the
//! server's share of it alone:
//!
//! 1. [`MediaWorld::speak`] (clients, not the server): each of the first K clients
//!    encodes one 20 ms frame of its own tone, and str0m packetizes and SRTP-protects
//!    it; the datagram joins the server's inbox.
//! 2. [`MediaWorld::server_tick`] (the server's whole share of 20 ms): the server
//!    receives every datagram of the inbox (the speakers' packets plus whatever control
//!    traffic, STUN consent checks and RTCP, the clients sent during the last tick),
//!    the virtual clock moves 20 ms, `handle_timeout` runs str0m's timers and the mixer
//!    tick, and every transmit and event is drained. Transmits land in a reused `Vec`:
//!    the socket's `send_to` (a syscall per datagram, kernel time) is not in it.
//! 3. [`MediaWorld::deliver`] (clients): the transmits reach their clients, the
//!    clients run their timers, and what they send joins the inbox of the next tick.
//!    One client, the monitor (the last one), plays its audio out, so that
//!    [`MediaWorld::assert_healthy`] can check by content that a listener hears every
//!    speaker, and every tick is checked to have written audio to every listener.
//!
//! Everyone who is not a speaker sends nothing (muted, or silent with DTX: a DTX
//! client sends one small packet per 400 ms, which this world leaves out). DTX is off
//! in the speakers' encoders and in the mixer, so steady tones keep flowing.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ringwire_media::analysis::{goertzel_power, mean_square, tone};
use ringwire_media::codec::{FRAME_DURATION, FRAME_SAMPLES, SAMPLE_RATE};
use ringwire_media::{
    CallMedia, CallMediaConfig, CallMediaEvent, MediaServer, MediaServerConfig, OpusConfig,
    ServerEvent, Transmit,
};

/// The server's socket address (virtual: no socket is bound).
pub const SERVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 5000);

/// The speakers' tones (Hz), far apart against a 20 ms Goertzel bin and each other's
/// harmonics; speaker `i` plays `TONES[i % 3]`.
pub const TONES: [f64; 3] = [440.0, 1030.0, 1770.0];

/// Peak amplitude of each speaker's tone: about -12 dBov, clearly speech to the mixer.
/// Three of them sum to at most 24000, below clipping.
const AMPLITUDE: f64 = 8000.0;

/// The one call of the world.
const CALL: u32 = 1;

/// Client `i` sits at `127.0.0.1:(CLIENT_PORT + i)`.
const CLIENT_PORT: u16 = 10_000;

/// The most clients a world can have (ports above [`CLIENT_PORT`]).
pub const MAX_CLIENTS: usize = 50_000;

/// Virtual time the connection of a world may take before it is declared broken.
const CONNECT_LIMIT: Duration = Duration::from_secs(30);

/// `handle_timeout` rounds per tick after which the server counts as stuck (a timer
/// that stays due however often it runs).
const MAX_TIMEOUT_ROUNDS: usize = 8;

/// Samples of the monitor's playout kept for the content check (2 s).
const HEARD_MAX: usize = 100 * FRAME_SAMPLES;

/// A tone counts as heard when its band holds at least this share of the power (dB);
/// three equal tones sit near -4.8 dB each (the threshold of `media_plane.rs`).
const PRESENT_DB: f64 = -12.0;

/// One client of the world.
struct Client {
    addr: SocketAddr,
    media: CallMedia,
    sent_samples: u64,
    connected: bool,
    /// Audio packets received at the last [`MediaWorld::mark`].
    received_at_mark: u64,
}

/// One server, N clients, one call, a virtual clock. See the [module docs](self).
pub struct MediaWorld {
    now: Instant,
    server: MediaServer<u32, u32>,
    clients: Vec<Client>,
    speakers: usize,
    /// Datagrams sent by clients that the server has not received yet.
    inbox: Vec<(SocketAddr, Vec<u8>)>,
    /// Datagrams sent by the server that the clients have not received yet.
    outbox: Vec<Transmit>,
    /// Server events drained during the last tick.
    events: Vec<ServerEvent<u32, u32>>,
    pcm: Vec<i16>,
    /// The monitor's most recent playout.
    heard: Vec<i16>,
    /// Ticks run, and ticks whose audio did not reach every listener.
    ticks: u64,
    short_ticks: u64,
    /// Ticks after which the server still had a timer due now.
    stuck_ticks: u64,
    /// The server's `audio_out` counter at the end of the last tick.
    audio_out: u64,
    /// Ticks at the last [`Self::mark`].
    ticks_at_mark: u64,
}

impl std::fmt::Debug for MediaWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaWorld")
            .field("clients", &self.clients.len())
            .field("speakers", &self.speakers)
            .field("ticks", &self.ticks)
            .field("short_ticks", &self.short_ticks)
            .field("stuck_ticks", &self.stuck_ticks)
            .finish_non_exhaustive()
    }
}

impl MediaWorld {
    /// A call of `n` participants of which the first `speakers` talk, every one
    /// connected (ICE, DTLS, SRTP), then one second of audio so that the mixer's
    /// queues are primed and every encoder is warm.
    ///
    /// # Panics
    /// When `n` is 0 or above [`MAX_CLIENTS`], `speakers > n`, or not everyone connects
    /// within 30 s of virtual time.
    #[must_use]
    pub fn connect(n: usize, speakers: usize) -> Self {
        assert!((1..=MAX_CLIENTS).contains(&n), "1..={MAX_CLIENTS} clients");
        assert!(speakers <= n, "{speakers} speakers among {n}");
        let opus = OpusConfig {
            dtx: false,
            ..OpusConfig::default()
        };
        let mut config = MediaServerConfig::new(SERVER);
        config.mixer.opus = opus;
        let mut server = MediaServer::new(config);
        let start = Instant::now();
        let mut clients = Vec::with_capacity(n);
        for i in 0..n {
            let addr = client_addr(i);
            let id = participant(i);
            server
                .join(&CALL, &id, start)
                .expect("the default mixer settings are valid");
            let (mut media, offer) = CallMedia::new(addr, CallMediaConfig::with_opus(opus), start)
                .expect("a loopback address is a valid candidate");
            let answer = server
                .accept_offer(&CALL, &id, &offer, start)
                .expect("the server answers a CallMedia offer");
            media
                .handle_answer(&answer)
                .expect("a CallMedia takes the server's answer");
            clients.push(Client {
                addr,
                media,
                sent_samples: 0,
                connected: false,
                received_at_mark: 0,
            });
        }
        let mut world = Self {
            now: start,
            server,
            clients,
            speakers,
            inbox: Vec::new(),
            outbox: Vec::new(),
            events: Vec::new(),
            pcm: vec![0; FRAME_SAMPLES],
            heard: Vec::with_capacity(2 * HEARD_MAX),
            ticks: 0,
            short_ticks: 0,
            stuck_ticks: 0,
            audio_out: 0,
            ticks_at_mark: 0,
        };
        world.handshake(start);
        for _ in 0..50 {
            world.tick();
        }
        world.ticks = 0;
        world.short_ticks = 0;
        world.stuck_ticks = 0;
        world.mark();
        world
    }

    /// Runs the handshakes, delivering every datagram at once, in 5 ms steps.
    fn handshake(&mut self, start: Instant) {
        let n = self.clients.len();
        let mut server_connected = 0;
        loop {
            loop {
                let mut moved = false;
                while let Some(t) = self.server.poll_transmit() {
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
                        self.server
                            .handle_receive(self.now, c.addr, SERVER, &t.contents);
                    }
                    while let Some(e) = c.media.poll_event() {
                        match e {
                            CallMediaEvent::Connected => c.connected = true,
                            other => panic!("client {} while connecting: {other:?}", c.addr),
                        }
                    }
                }
                while let Some(e) = self.server.poll_event() {
                    match e {
                        ServerEvent::Connected { .. } => server_connected += 1,
                        ServerEvent::Failed {
                            participant,
                            reason,
                            ..
                        } => panic!("participant {participant} failed to connect: {reason}"),
                        _ => {}
                    }
                }
                if !moved {
                    break;
                }
            }
            if server_connected == n && self.clients.iter().all(|c| c.connected) {
                return;
            }
            assert!(
                self.now - start < CONNECT_LIMIT,
                "after {CONNECT_LIMIT:?} only {server_connected} of {n} participants are connected"
            );
            self.now += Duration::from_millis(5);
            self.server.handle_timeout(self.now);
            for c in &mut self.clients {
                c.media.handle_timeout(self.now);
            }
        }
    }

    /// One whole tick: [`Self::speak`], [`Self::server_tick`], [`Self::deliver`].
    pub fn tick(&mut self) {
        self.speak();
        self.server_tick();
        self.deliver();
    }

    /// Step 1: each speaker sends one 20 ms frame of its tone, stamped now.
    ///
    /// # Panics
    /// When a client refuses the frame (it cannot: the frame has the right size).
    pub fn speak(&mut self) {
        for (i, c) in self.clients.iter_mut().take(self.speakers).enumerate() {
            tone(
                TONES[i % TONES.len()],
                AMPLITUDE,
                SAMPLE_RATE,
                c.sent_samples,
                &mut self.pcm,
            );
            c.sent_samples += FRAME_SAMPLES as u64;
            c.media
                .send_audio(&self.pcm, self.now)
                .expect("a 20 ms mono frame is accepted");
            // str0m sends what was written on its next timeout, which is now.
            c.media.handle_timeout(self.now);
            while let Some(t) = c.media.poll_transmit() {
                self.inbox.push((c.addr, t.contents));
            }
        }
    }

    /// Step 2, the server's share: [`Self::receive`], then [`Self::advance`].
    pub fn server_tick(&mut self) {
        self.receive();
        self.advance();
    }

    /// The server receives the inbox, draining its outputs after each datagram; the
    /// inbox itself is cleared by [`Self::deliver`], so freeing it is not timed here.
    pub fn receive(&mut self) {
        for (source, datagram) in &self.inbox {
            self.server
                .handle_receive(self.now, *source, SERVER, datagram);
            while let Some(t) = self.server.poll_transmit() {
                self.outbox.push(t);
            }
            while let Some(e) = self.server.poll_event() {
                self.events.push(e);
            }
        }
    }

    /// [`Self::receive`], then the inbox is emptied (for a bench that times only the
    /// datagrams that come after).
    pub fn receive_pending(&mut self) {
        self.receive();
        self.inbox.clear();
    }

    /// The clock moves 20 ms; the server's timers and mixer tick run, as a driver
    /// runs them: `handle_timeout` and a drain of its outputs until nothing is due now
    /// (str0m sends the packets the mixer wrote on the timeout that follows).
    pub fn advance(&mut self) {
        self.now += FRAME_DURATION;
        self.flush();
    }

    /// Runs the server's timers that are due now, until none is (the driving rule).
    /// After a datagram that was forwarded, this is what sends it on: str0m sends what
    /// was written on its next timeout.
    pub fn flush(&mut self) {
        for _ in 0..MAX_TIMEOUT_ROUNDS {
            self.server.handle_timeout(self.now);
            while let Some(t) = self.server.poll_transmit() {
                self.outbox.push(t);
            }
            while let Some(e) = self.server.poll_event() {
                self.events.push(e);
            }
            if self.server.poll_timeout().is_none_or(|t| t > self.now) {
                return;
            }
        }
        self.stuck_ticks += 1;
    }

    /// Step 3: the server's datagrams reach the clients, the clients run their timers
    /// and send, the monitor plays out, and the tick is checked.
    ///
    /// # Panics
    /// When a participant's media failed (the world is broken; the figures would lie).
    pub fn deliver(&mut self) {
        self.inbox.clear();
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
                    other => panic!("client {}: {other:?}", c.addr),
                }
            }
        }
        if let Some(monitor) = self.clients.last_mut() {
            while let Some(frame) = monitor.media.poll_audio(self.now) {
                self.heard.extend_from_slice(&frame.pcm);
            }
            if self.heard.len() > 2 * HEARD_MAX {
                self.heard.drain(..self.heard.len() - HEARD_MAX);
            }
        }
        for e in self.events.drain(..) {
            if let ServerEvent::Failed {
                participant,
                reason,
                ..
            } = e
            {
                panic!("participant {participant} failed: {reason}");
            }
        }
        let audio_out = self.server.stats().audio_out;
        if audio_out - self.audio_out != self.expected_audio_out() {
            self.short_ticks += 1;
        }
        self.audio_out = audio_out;
        self.ticks += 1;
    }

    /// Audio packets the server writes per tick when all is well: one per participant
    /// when mixing (the shared mix and each speaker's mix-minus); in a room of two,
    /// each speaker's packet forwarded to the other.
    #[must_use]
    pub fn expected_audio_out(&self) -> u64 {
        match self.clients.len() {
            0 | 1 => 0,
            2 => self.speakers as u64,
            n => n as u64,
        }
    }

    /// Datagrams waiting for the server (for a bench that times only some of them).
    #[must_use]
    pub fn inbox_len(&self) -> usize {
        self.inbox.len()
    }

    /// Remembers what every client has received so far, for [`Self::assert_healthy`].
    pub fn mark(&mut self) {
        self.ticks_at_mark = self.ticks;
        for c in &mut self.clients {
            c.received_at_mark = c.media.stats().packets_received;
        }
    }

    /// Checks that the world still carries audio since the last [`Self::mark`]: all
    /// connected, no tick left a server timer due, at most 1 % of ticks short of a packet for some listener, every
    /// client that should hear someone received a packet per tick (90 % of them at
    /// least), and the monitor hears every other speaker's tone.
    ///
    /// # Panics
    /// When one of those does not hold.
    pub fn assert_healthy(&self) {
        let n = self.clients.len();
        let ticks = self.ticks - self.ticks_at_mark;
        assert!(ticks >= 50, "run at least 50 ticks after mark() ({ticks})");
        assert!(
            self.clients.iter().all(|c| c.connected),
            "every client stays connected"
        );
        assert_eq!(
            self.stuck_ticks, 0,
            "ticks after which a server timer stayed due"
        );
        assert!(
            self.short_ticks * 100 <= self.ticks,
            "{} of {} ticks did not write audio to every listener",
            self.short_ticks,
            self.ticks
        );
        for (i, c) in self.clients.iter().enumerate() {
            let hears_someone = if n == 2 {
                1 - i < self.speakers
            } else {
                n > 2 && self.speakers > 0
            };
            if !hears_someone {
                continue;
            }
            let got = c.media.stats().packets_received - c.received_at_mark;
            assert!(
                got * 10 >= ticks * 9,
                "client {i} received {got} packets in {ticks} ticks"
            );
        }
        let monitor = n - 1;
        let tail = &self.heard[self.heard.len().saturating_sub(50 * FRAME_SAMPLES)..];
        assert!(
            tail.len() >= 25 * FRAME_SAMPLES,
            "the monitor played only {} samples",
            tail.len()
        );
        for (s, &freq) in TONES.iter().cycle().take(self.speakers).enumerate() {
            if s == monitor {
                continue;
            }
            let db = share_db(tail, freq);
            assert!(
                db >= PRESENT_DB,
                "the monitor should hear speaker {s} at {freq} Hz: {db:.1} dB"
            );
        }
    }

    /// Ticks run since the world was built (warm-up excluded).
    #[must_use]
    pub fn ticks(&self) -> u64 {
        self.ticks
    }

    /// The server.
    #[must_use]
    pub fn server(&self) -> &MediaServer<u32, u32> {
        &self.server
    }

    /// The server and the clients, apart (to measure what the server alone holds).
    #[must_use]
    pub fn into_parts(self) -> (MediaServer<u32, u32>, Vec<CallMedia>) {
        let clients = self.clients.into_iter().map(|c| c.media).collect();
        (self.server, clients)
    }
}

/// Client `i`'s address.
fn client_addr(i: usize) -> SocketAddr {
    let port = u16::try_from(i)
        .ok()
        .and_then(|i| CLIENT_PORT.checked_add(i))
        .expect("MAX_CLIENTS keeps ports in range");
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
    u32::try_from(i).expect("MAX_CLIENTS fits in u32")
}

/// The share of `samples`' power at `freq`, in dB, summed over 20 ms windows (robust
/// to the phase jumps of a jitter buffer that stretches or drops a frame).
fn share_db(samples: &[i16], freq: f64) -> f64 {
    let (mut tone_p, mut total) = (0.0, 0.0);
    for w in samples.chunks_exact(FRAME_SAMPLES) {
        tone_p += goertzel_power(w, freq, SAMPLE_RATE);
        total += mean_square(w);
    }
    if total <= 0.0 {
        return f64::NEG_INFINITY;
    }
    10.0 * (tone_p.max(1e-12) / total).log10()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_room_carries_audio() {
        let mut world = MediaWorld::connect(4, 3);
        for _ in 0..100 {
            world.tick();
        }
        world.assert_healthy();
        assert_eq!(world.short_ticks, 0);
    }

    #[test]
    fn a_pair_forwards() {
        let mut world = MediaWorld::connect(2, 1);
        for _ in 0..100 {
            world.tick();
        }
        world.assert_healthy();
        assert_eq!(world.server().stats().decoded, 0);
    }
}
