//! The media plane in process: one `MediaServer`, native `CallMedia` clients, real
//! str0m (ICE, DTLS-SRTP), real opus, datagrams handed over in memory on a virtual
//! clock. Media is checked by content: each client sends its own tone.

#![allow(clippy::unwrap_used)] // Scenario helpers outside #[test] fns unwrap too.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringwire_media::analysis::{goertzel_power, mean_square, tone};
use std::collections::BTreeMap;

use ringwire_media::client::{CallMedia, CallMediaConfig, CallMediaEvent, VideoConfig};
use ringwire_media::codec::{FRAME_SAMPLES, OpusConfig, SAMPLE_RATE};
use ringwire_media::router::{StreamId, StreamKind};
use ringwire_media::server::{MediaServer, MediaServerConfig, ServerEvent, VideoSlot};
use ringwire_media::video::{FrameRate, TestPatternSource, VideoFormat, VideoFrame, VideoSource};
use ringwire_media::video_codec::{H264Config, H264Decoder, H264Encoder};
use ringwire_netsim::{Link, LinkConfig};

const CALL: &str = "call";
const SERVER: &str = "127.0.0.1:5000";
/// Tones far apart against one 20 ms Goertzel bin (50 Hz) and each other's harmonics.
const TONES: [f64; 3] = [440.0, 1030.0, 1770.0];
/// A tone counts as heard when its band holds at least this share of the power (dB);
/// two equal tones sit near -3 dB each.
const PRESENT_DB: f64 = -12.0;
/// A tone counts as absent below this share (opus leaves some leakage and noise).
const ABSENT_DB: f64 = -25.0;

struct Client {
    name: &'static str,
    addr: SocketAddr,
    media: CallMedia,
    tone: f64,
    amplitude: f64,
    sent_samples: u64,
    heard: Vec<i16>,
    connected: bool,
    video: Option<Video>,
}

/// A client's camera (test pattern → H.264) and its receive side (slot → decoder).
struct Video {
    camera: TestPatternSource,
    encoder: H264Encoder,
    frame: VideoFrame,
    sent: u64,
    slots: Vec<String>,
    /// Slot index → what the server says it shows.
    shown: BTreeMap<usize, StreamId<&'static str>>,
    decoders: BTreeMap<usize, H264Decoder>,
    picture: VideoFrame,
    /// Publisher → frame numbers seen, in order.
    seen: BTreeMap<&'static str, Vec<u32>>,
}

impl Video {
    fn new(media: &CallMedia) -> Self {
        let format = VideoFormat::new(320, 180, FrameRate::per_second(25).unwrap()).unwrap();
        Self {
            camera: TestPatternSource::new(format).unwrap(),
            encoder: H264Encoder::new(H264Config::default()).unwrap(),
            frame: VideoFrame::black(2, 2).unwrap(),
            sent: 0,
            slots: media.video_slots(),
            shown: BTreeMap::new(),
            decoders: BTreeMap::new(),
            picture: VideoFrame::black(2, 2).unwrap(),
            seen: BTreeMap::new(),
        }
    }
}

struct World {
    now: Instant,
    server: MediaServer<&'static str, &'static str>,
    server_addr: SocketAddr,
    clients: Vec<Client>,
    speakers: Vec<Vec<&'static str>>,
    next_frame: Instant,
}

fn opus() -> OpusConfig {
    // A steady pure tone would go quiet under DTX after ~2 s.
    OpusConfig {
        dtx: false,
        ..OpusConfig::default()
    }
}

impl World {
    fn new(names: &[&'static str]) -> Self {
        Self::build(names, false)
    }

    fn with_video(names: &[&'static str]) -> Self {
        Self::build(names, true)
    }

    fn build(names: &[&'static str], video: bool) -> Self {
        let now = Instant::now();
        let server_addr: SocketAddr = SERVER.parse().unwrap();
        let mut config = MediaServerConfig::new(server_addr);
        config.mixer.opus = opus();
        let mut server = MediaServer::new(config);
        let mut clients = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let addr: SocketAddr = format!("127.0.0.1:{}", 6000 + i).parse().unwrap();
            server.join(&CALL, name, now).unwrap();
            let mut config = CallMediaConfig::with_opus(opus());
            if video {
                config.video = Some(VideoConfig::default());
            }
            let (mut media, offer) = CallMedia::new(addr, config, now).unwrap();
            let answer = server.accept_offer(&CALL, name, &offer, now).unwrap();
            media.handle_answer(&answer).unwrap();
            let video = video.then(|| Video::new(&media));
            clients.push(Client {
                name,
                addr,
                media,
                tone: TONES[i % TONES.len()],
                amplitude: 8000.0,
                sent_samples: 0,
                heard: Vec::new(),
                connected: false,
                video,
            });
            if clients.last().is_some_and(|c| c.video.is_some()) {
                server.set_video(&CALL, name, Some(StreamKind::Camera), now);
            }
        }
        let mut world = Self {
            now,
            server,
            server_addr,
            clients,
            speakers: Vec::new(),
            next_frame: now,
        };
        world.deliver();
        world
    }

    /// Moves every queued datagram to its destination until nothing is left.
    fn deliver(&mut self) {
        loop {
            let mut moved = false;
            while let Some(t) = self.server.poll_transmit() {
                moved = true;
                if let Some(c) = self.clients.iter_mut().find(|c| c.addr == t.destination) {
                    c.media
                        .handle_receive(self.now, self.server_addr, c.addr, &t.contents);
                }
            }
            for c in &mut self.clients {
                while let Some(t) = c.media.poll_transmit() {
                    moved = true;
                    assert_eq!(t.destination, self.server_addr);
                    self.server
                        .handle_receive(self.now, c.addr, self.server_addr, &t.contents);
                }
                while let Some(e) = c.media.poll_event() {
                    match e {
                        CallMediaEvent::Connected => c.connected = true,
                        CallMediaEvent::KeyframeRequested { .. } => {
                            if let Some(v) = c.video.as_mut() {
                                v.encoder.request_keyframe();
                            }
                        }
                        other => panic!("{}: {other:?}", c.name),
                    }
                }
            }
            while let Some(e) = self.server.poll_event() {
                match e {
                    ServerEvent::DominantSpeakers { speakers, .. } => self.speakers.push(speakers),
                    ServerEvent::VideoSlots {
                        participant, slots, ..
                    } => {
                        let c = self
                            .clients
                            .iter_mut()
                            .find(|c| c.name == participant)
                            .unwrap();
                        let v = c.video.as_mut().unwrap();
                        v.shown.clear();
                        for VideoSlot { mid, stream } in slots {
                            let index = v.slots.iter().position(|m| *m == mid).unwrap();
                            if let Some(stream) = stream {
                                v.shown.insert(index, stream);
                            }
                        }
                    }
                    ServerEvent::Failed {
                        participant,
                        reason,
                        ..
                    } => {
                        panic!("{participant} failed: {reason}")
                    }
                    _ => {}
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Runs the world for `d` in 1 ms steps: timers, 20 ms capture, playout.
    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now += Duration::from_millis(1);
            let now = self.now;
            if now >= self.next_frame {
                self.next_frame += Duration::from_millis(20);
                for c in &mut self.clients {
                    let mut pcm = vec![0i16; FRAME_SAMPLES];
                    tone(c.tone, c.amplitude, SAMPLE_RATE, c.sent_samples, &mut pcm);
                    c.sent_samples += FRAME_SAMPLES as u64;
                    c.media.send_audio(&pcm, now).unwrap();
                    // Video at 25 fps: every other audio frame.
                    if c.sent_samples % (2 * FRAME_SAMPLES as u64) == 0
                        && let Some(v) = c.video.as_mut()
                    {
                        v.camera.read_frame(&mut v.frame).unwrap();
                        if let Some(encoded) = v.encoder.encode(&v.frame).unwrap() {
                            c.media
                                .send_video(&encoded.data, v.frame.timestamp(), now)
                                .unwrap();
                            v.sent += 1;
                        }
                    }
                }
            }
            self.server.handle_timeout(now);
            for c in &mut self.clients {
                c.media.handle_timeout(now);
                while let Some(frame) = c.media.poll_audio(now) {
                    c.heard.extend_from_slice(&frame.pcm);
                }
                while let Some(rv) = c.media.poll_video() {
                    let Some(v) = c.video.as_mut() else { continue };
                    let decoder = v
                        .decoders
                        .entry(rv.slot)
                        .or_insert_with(|| H264Decoder::new().unwrap());
                    match decoder.decode(&rv.data, &mut v.picture) {
                        Ok(true) => {
                            let who = v.shown.get(&rv.slot).map(|s| s.publisher);
                            let n = TestPatternSource::frame_number(&v.picture);
                            if let (Some(who), Some(n)) = (who, n) {
                                v.seen.entry(who).or_default().push(n);
                            }
                        }
                        Ok(false) => {}
                        Err(_) => c.media.request_keyframe(rv.slot),
                    }
                }
            }
            self.deliver();
        }
    }

    fn client(&mut self, name: &str) -> &mut Client {
        self.clients.iter_mut().find(|c| c.name == name).unwrap()
    }

    fn clear_heard(&mut self) {
        for c in &mut self.clients {
            c.heard.clear();
        }
    }
}

/// The share of `samples`' power at `freq`, in dB, summed over 20 ms windows (robust to
/// the phase jumps a jitter buffer makes when it stretches or drops a frame).
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

fn assert_hears(world: &World, who: &str, present: &[f64], absent: &[f64]) {
    let c = world.clients.iter().find(|c| c.name == who).unwrap();
    assert!(
        c.heard.len() >= FRAME_SAMPLES * 25,
        "{who} heard only {} samples",
        c.heard.len()
    );
    // Leave out the first 200 ms: the jitter buffer and the mixer queue settle.
    let tail = &c.heard[c.heard.len().min(FRAME_SAMPLES * 10)..];
    for &f in present {
        let db = share_db(tail, f);
        assert!(db >= PRESENT_DB, "{who} should hear {f} Hz: {db:.1} dB");
    }
    for &f in absent {
        let db = share_db(tail, f);
        assert!(db <= ABSENT_DB, "{who} should not hear {f} Hz: {db:.1} dB");
    }
}

#[test]
fn three_party_mix_minus_by_content() {
    let mut w = World::new(&["alice", "bob", "carol"]);
    w.run(Duration::from_millis(500));
    assert!(w.clients.iter().all(|c| c.connected), "all connect");
    w.clear_heard();
    w.run(Duration::from_secs(2));
    let [a, b, c] = TONES;
    assert_hears(&w, "alice", &[b, c], &[a]);
    assert_hears(&w, "bob", &[a, c], &[b]);
    assert_hears(&w, "carol", &[a, b], &[c]);
    let stats = w.server.stats();
    assert_eq!(stats.connected, 3);
    assert!(stats.decoded > 0 && stats.encoded > 0, "{stats:?}");
    assert_eq!(stats.forwarded, 0, "three parties are mixed, not forwarded");

    // Mute bob: his tone leaves the others' audio, theirs stays.
    w.server.update(&CALL, &"bob", true, false);
    w.run(Duration::from_millis(300));
    w.clear_heard();
    w.run(Duration::from_secs(1));
    assert_hears(&w, "alice", &[c], &[a, b]);
    assert_hears(&w, "carol", &[a], &[b, c]);
    assert_hears(&w, "bob", &[a, c], &[b]);

    // Hold carol: she hears nothing, nobody hears her.
    w.server.update(&CALL, &"bob", false, false);
    w.server.update(&CALL, &"carol", false, true);
    w.run(Duration::from_millis(300));
    w.clear_heard();
    let carol_rx = w.client("carol").media.stats().packets_received;
    w.run(Duration::from_secs(1));
    assert_hears(&w, "alice", &[b], &[a, c]);
    assert_hears(&w, "bob", &[a], &[b, c]);
    let carol = w.client("carol");
    assert_eq!(
        carol.media.stats().packets_received,
        carol_rx,
        "the server sends nothing to a participant on hold"
    );
    // Once the stream stops carol's jitter buffer plays concealment fading to
    // silence; the last half second is silent.
    let tail = &carol.heard[carol.heard.len() / 2..];
    let rms = mean_square(tail).sqrt();
    assert!(rms < 30.0, "carol on hold hears nothing: rms {rms:.1}");

    // A removed participant gets nothing more, at once.
    w.server.update(&CALL, &"carol", false, false);
    w.server.leave(&CALL, &"alice");
    w.run(Duration::from_millis(100));
    let alice_rx = w.client("alice").media.stats().packets_received;
    w.run(Duration::from_millis(500));
    assert_eq!(w.client("alice").media.stats().packets_received, alice_rx);
}

#[test]
fn loudest_tone_becomes_dominant_speaker() {
    let mut w = World::new(&["alice", "bob", "carol"]);
    for c in &mut w.clients {
        // The quiet ones sit at about -61 dBov, below what counts as speech.
        c.amplitude = if c.name == "carol" { 12000.0 } else { 30.0 };
    }
    w.run(Duration::from_secs(3));
    let last = w.speakers.last().expect("a dominant speaker list");
    assert_eq!(last.first(), Some(&"carol"), "{:?}", w.speakers);
}

#[test]
fn two_parties_are_forwarded_without_transcoding() {
    let mut w = World::new(&["alice", "bob"]);
    w.run(Duration::from_millis(500));
    w.clear_heard();
    w.run(Duration::from_secs(2));
    let [a, b, _] = TONES;
    assert_hears(&w, "alice", &[b], &[a]);
    assert_hears(&w, "bob", &[a], &[b]);
    let stats = w.server.stats();
    assert!(stats.forwarded > 100, "{stats:?}");
    assert_eq!((stats.decoded, stats.encoded), (0, 0), "{stats:?}");
}

#[test]
fn bad_offers_and_stray_datagrams_are_refused() {
    let mut w = World::new(&["alice", "bob"]);
    let now = w.now;
    assert!(
        w.server
            .accept_offer(&CALL, &"alice", "v=0 garbage", now)
            .is_err()
    );
    assert!(
        w.server
            .accept_offer(&CALL, &"mallory", "v=0", now)
            .is_err()
    );
    let stray: SocketAddr = "127.0.0.1:9".parse().unwrap();
    assert!(
        !w.server
            .handle_receive(now, stray, w.server_addr, &[0x16, 0xfe, 0xfd, 0, 1])
    );
    assert!(!w.server.handle_receive(now, stray, w.server_addr, b"hello"));
    assert_eq!(w.server.stats().offers_refused, 2);
    // The call carries on.
    w.run(Duration::from_secs(1));
    w.clear_heard();
    w.run(Duration::from_secs(1));
    let [a, b, _] = TONES;
    assert_hears(&w, "alice", &[b], &[a]);
}

#[test]
fn video_is_forwarded_to_every_other_participant_by_content() {
    let mut w = World::with_video(&["alice", "bob", "carol"]);
    w.run(Duration::from_secs(3));
    for c in &w.clients {
        let v = c.video.as_ref().unwrap();
        assert!(!v.seen.contains_key(c.name), "{} sees itself", c.name);
        let others: Vec<&str> = w
            .clients
            .iter()
            .map(|o| o.name)
            .filter(|n| *n != c.name)
            .collect();
        for other in others {
            let frames = v.seen.get(other).map(Vec::as_slice).unwrap_or(&[]);
            // 3 s at 25 fps is 75 frames; the first arrive once ICE, DTLS and a key
            // frame are through.
            assert!(
                frames.len() >= 50,
                "{} saw {} frames of {other}",
                c.name,
                frames.len()
            );
            assert!(
                frames.windows(2).all(|w| w[0] < w[1]),
                "{} saw {other}'s frames out of order: {frames:?}",
                c.name
            );
        }
    }
    let stats = w.server.stats();
    assert!(stats.video_out >= 2 * stats.video_in - 20, "{stats:?}");
    assert!(stats.keyframe_requests >= 1, "{stats:?}");
}

#[test]
fn a_local_participant_is_mixed_like_anyone_else() {
    use ringwire_media::Channels;
    use ringwire_media::codec::{Decoder, Encoder};
    use ringwire_media::level::AudioLevel;

    let mut w = World::new(&["alice", "bob"]);
    let now = w.now;
    w.server.join_local(&CALL, &"phone", now).unwrap();
    let mut encoder = Encoder::new(opus()).unwrap();
    let mut decoder = Decoder::new(Channels::Mono).unwrap();
    let mut heard = Vec::new();
    let local_tone = 2500.0;
    let mut sent = 0u64;
    for step in 0..150 {
        // 20 ms per step: the local leg sends one frame and the world runs.
        let mut pcm = vec![0i16; FRAME_SAMPLES];
        tone(local_tone, 8000.0, SAMPLE_RATE, sent, &mut pcm);
        let packet = encoder.encode_to_vec(&pcm).unwrap();
        let level = AudioLevel::from_pcm(&pcm).minus_dbov();
        w.server
            .send_local_audio(&CALL, &"phone", step, sent, level, &packet, w.now);
        sent += FRAME_SAMPLES as u64;
        w.run(Duration::from_millis(20));
        while let Some(out) = w.server.poll_local_audio() {
            assert_eq!(out.participant, "phone");
            let mut frame = vec![0i16; FRAME_SAMPLES];
            let n = decoder.decode(&out.packet, &mut frame).unwrap();
            if step >= 50 {
                heard.extend_from_slice(&frame[..n]);
            }
        }
        if step == 49 {
            w.clear_heard();
        }
    }
    let [a, b, _] = TONES;
    assert!(share_db(&heard, a) >= PRESENT_DB, "the phone hears alice");
    assert!(share_db(&heard, b) >= PRESENT_DB, "the phone hears bob");
    assert!(
        share_db(&heard, local_tone) <= ABSENT_DB,
        "the phone does not hear itself"
    );
    assert_hears(&w, "alice", &[b, local_tone], &[a]);
    w.server.leave(&CALL, &"phone");
    w.run(Duration::from_millis(100));
    assert!(
        w.server.poll_local_audio().is_none(),
        "nothing after leaving"
    );
}

/// One viewer of [`simulcast_layers_follow_each_subscribers_path`]: its downlink, and
/// the pictures it decoded as (width, frame number).
struct Viewer {
    name: &'static str,
    addr: SocketAddr,
    media: CallMedia,
    downlink: Link<Vec<u8>>,
    decoders: BTreeMap<usize, H264Decoder>,
    picture: VideoFrame,
    pictures: Vec<(u32, u32)>,
}

#[test]
fn simulcast_layers_follow_each_subscribers_path() {
    // Alice sends two layers (320x180 at 250 kbit/s, 640x360 at 1 Mbit/s); Bob's path
    // carries everything, Carol's downlink only 500 kbit/s. str0m's estimate for Carol
    // falls, the router moves her to the low layer; Bob keeps the high one.
    let t0 = Instant::now();
    let server_addr: SocketAddr = SERVER.parse().unwrap();
    let mut config = MediaServerConfig::new(server_addr);
    config.mixer.opus = opus();
    config.bandwidth_estimation = true;
    let mut server = MediaServer::new(config);

    let alice_addr: SocketAddr = "127.0.0.1:6000".parse().unwrap();
    server.join(&CALL, &"alice", t0).unwrap();
    let mut alice_config = CallMediaConfig::with_opus(opus());
    let mut publish = VideoConfig::default();
    publish.slots = 0;
    publish.layers = 2;
    alice_config.video = Some(publish);
    let (mut alice, offer) = CallMedia::new(alice_addr, alice_config, t0).unwrap();
    alice
        .handle_answer(&server.accept_offer(&CALL, &"alice", &offer, t0).unwrap())
        .unwrap();
    let mut alice_down: Link<Vec<u8>> = Link::new(LinkConfig::perfect(), 1);

    let rate = FrameRate::per_second(25).unwrap();
    let mut cameras = [(320, 250_000), (640, 1_000_000)].map(|(width, bitrate)| {
        let format = VideoFormat::new(width, width * 9 / 16, rate).unwrap();
        let camera = TestPatternSource::new(format).unwrap().with_sender(7);
        let mut config = H264Config::default();
        config.bitrate = bitrate;
        config.frame_rate = 25.0;
        config.keyframe_interval = 100;
        let encoder = H264Encoder::new(config).unwrap();
        (camera, encoder, VideoFrame::black(2, 2).unwrap())
    });

    let mut viewers: Vec<Viewer> = [("bob", None), ("carol", Some(62_500))]
        .into_iter()
        .enumerate()
        .map(|(i, (name, rate))| {
            let addr: SocketAddr = format!("127.0.0.1:{}", 6001 + i).parse().unwrap();
            server.join(&CALL, &name, t0).unwrap();
            let mut config = CallMediaConfig::with_opus(opus());
            let mut video = VideoConfig::default();
            video.publish = false;
            video.slots = 1;
            config.video = Some(video);
            let (mut media, offer) = CallMedia::new(addr, config, t0).unwrap();
            media
                .handle_answer(&server.accept_offer(&CALL, &name, &offer, t0).unwrap())
                .unwrap();
            let link = match rate {
                // 200 ms of queue at the bottleneck, then drops.
                Some(bytes_per_second) => LinkConfig::perfect()
                    .with_latency(Duration::from_millis(10))
                    .with_rate(bytes_per_second, bytes_per_second as usize / 5),
                None => LinkConfig::perfect().with_latency(Duration::from_millis(10)),
            };
            Viewer {
                name,
                addr,
                media,
                downlink: Link::new(link, 2 + i as u64),
                decoders: BTreeMap::new(),
                picture: VideoFrame::black(2, 2).unwrap(),
                pictures: Vec::new(),
            }
        })
        .collect();
    server.set_video(&CALL, &"alice", Some(StreamKind::Camera), t0);

    let mut now = t0;
    let mut next_frame = t0;
    let mut frames_sent = 0u64;
    let silence = vec![0i16; FRAME_SAMPLES];
    // Noise in the bottom third keeps the encoders at their target bitrates (the bare
    // pattern is nearly free to code), away from the code rows at the top.
    let mut noise = 0x9e37_79b9_7f4a_7c15u64;
    while now < t0 + Duration::from_secs(14) {
        now += Duration::from_millis(1);
        if now >= next_frame {
            next_frame += Duration::from_millis(40);
            alice.send_audio(&silence, now).unwrap();
            for (layer, (camera, encoder, frame)) in cameras.iter_mut().enumerate() {
                camera.read_frame(frame).unwrap();
                let width = frame.width() as usize;
                let (y, _, _) = frame.planes_mut();
                let start = y.len() * 2 / 3;
                noise = noise
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                for (i, luma) in y[start..].iter_mut().enumerate() {
                    // A random level per 8x8 block, new every frame.
                    let block = (i / width / 8 * width + i % width) as u64 / 8;
                    let mut h = (noise ^ block).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                    h ^= h >> 29;
                    *luma = 16 + (h % 200) as u8;
                }
                if let Some(encoded) = encoder.encode(frame).unwrap() {
                    alice
                        .send_video_layer(layer, &encoded.data, frame.timestamp(), now)
                        .unwrap();
                }
            }
            frames_sent += 1;
        }
        server.handle_timeout(now);
        alice.handle_timeout(now);
        for v in &mut viewers {
            v.media.handle_timeout(now);
            while v.media.poll_audio(now).is_some() {}
            while let Some(rv) = v.media.poll_video() {
                let decoder = v
                    .decoders
                    .entry(rv.slot)
                    .or_insert_with(|| H264Decoder::new().unwrap());
                match decoder.decode(&rv.data, &mut v.picture) {
                    Ok(true) => {
                        assert_eq!(TestPatternSource::sender(&v.picture), Some(7));
                        if let Some(n) = TestPatternSource::frame_number(&v.picture) {
                            v.pictures.push((v.picture.width(), n));
                        }
                    }
                    Ok(false) => {}
                    // Loss on Carol's path: ask for a key frame, as the SDK does.
                    Err(_) => v.media.request_keyframe(rv.slot),
                }
            }
        }
        // Datagrams: clients to the server at once, the server to each client through
        // its downlink.
        loop {
            let mut moved = false;
            while let Some(t) = alice.poll_transmit() {
                moved = true;
                server.handle_receive(now, alice_addr, server_addr, &t.contents);
            }
            for v in &mut viewers {
                while let Some(t) = v.media.poll_transmit() {
                    moved = true;
                    server.handle_receive(now, v.addr, server_addr, &t.contents);
                }
                while let Some(datagram) = v.downlink.poll_receive(now) {
                    moved = true;
                    v.media.handle_receive(now, server_addr, v.addr, &datagram);
                }
            }
            while let Some(datagram) = alice_down.poll_receive(now) {
                moved = true;
                alice.handle_receive(now, server_addr, alice_addr, &datagram);
            }
            while let Some(t) = server.poll_transmit() {
                moved = true;
                if t.destination == alice_addr {
                    alice_down.send(t.contents, now);
                } else if let Some(v) = viewers.iter_mut().find(|v| v.addr == t.destination) {
                    v.downlink.send(t.contents, now);
                }
            }
            while let Some(e) = alice.poll_event() {
                match e {
                    CallMediaEvent::Connected => {}
                    CallMediaEvent::KeyframeRequested { layer } => {
                        cameras[layer].1.request_keyframe()
                    }
                    other => panic!("alice: {other:?}"),
                }
            }
            for v in &mut viewers {
                while let Some(e) = v.media.poll_event() {
                    assert!(
                        !matches!(e, CallMediaEvent::Disconnected { .. }),
                        "{}: {e:?}",
                        v.name
                    );
                }
            }
            while let Some(e) = server.poll_event() {
                assert!(!matches!(e, ServerEvent::Failed { .. }), "{e:?}");
            }
            if !moved {
                break;
            }
        }
    }

    let widths = |v: &Viewer, w: u32| v.pictures.iter().filter(|p| p.0 == w).count();
    let (bob, carol) = (&viewers[0], &viewers[1]);
    // 14 s at 25 fps is 350 pictures a layer.
    assert!(frames_sent >= 340);
    // Bob: the high layer from when its bitrate is known on, never moved down.
    let first_high = bob
        .pictures
        .iter()
        .position(|p| p.0 == 640)
        .unwrap_or(usize::MAX);
    assert!(
        widths(bob, 640) >= 200 && bob.pictures[first_high..].iter().all(|p| p.0 == 640),
        "bob should stay on the high layer: {:?}",
        &bob.pictures
    );
    assert!(
        bob.pictures.windows(2).all(|w| w[0].1 < w[1].1),
        "bob's pictures go forward across layer switches"
    );
    assert!(
        widths(carol, 320) >= 100,
        "carol should spend most of the call on the low layer: {} low, {} high pictures: {:?}",
        widths(carol, 320),
        widths(carol, 640),
        carol.pictures
    );
    assert!(
        carol.pictures.windows(2).all(|w| w[0].1 < w[1].1),
        "carol's pictures go forward across layer switches: {:?}",
        carol.pictures
    );
    let stats = server.stats();
    assert!(stats.bandwidth_estimates > 0, "{stats:?}");
}
