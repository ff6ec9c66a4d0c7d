//! Entry points for the cargo-fuzz targets under `fuzz/` (STYLE §5).
//!
//! The module exists under `cfg(fuzzing)` (set by cargo-fuzz) and under the
//! `arbitrary` feature, so its tests replay the operations on stable in CI.
//!
//! | target | function | checks |
//! |---|---|---|
//! | `jitter_ops` | [`run_jitter_ops`] | a [`JitterScenario`] of [`JitterOp`]s (packets with arbitrary sequence numbers, timestamps, payload sizes and arrival times; pulls at arbitrary times) replayed against a [`JitterBuffer`]: no panic; memory bounded (packets held ≤ `max_packets`); every frame is exactly 960 samples; counters add up |
//! | `rtp_payload` | [`run_payload_scenario`] | a [`PayloadScenario`], one of three: arbitrary opus payloads and RFC 6464 levels into a three-participant [`Mixer`] with ticks, mute, hold and removal ([`MixerOp`]); arbitrary datagrams, edited handshake datagrams and arbitrary or edited SDP offers and answers against a [`MediaServer`] with one joined participant whose offer was accepted, and its [`CallMedia`] ([`WireOp`]); SRTP packets with arbitrary payloads, levels, sequence numbers and timestamps from three connected participants ([`RtpOp`]). No panic; memory bounded (operations, sizes and SDP operations capped, outputs drained); counters add up; no audio to anyone removed or on hold; events name members; no server timer stays due after the drain |
//! | `video_payload` | [`run_video_scenario`] | a [`VideoScenario`]: received video access units, as the client's depacketizer hands them over ([`VideoOp`]: arbitrary bytes, single NAL units and OBUs of any type, real H.264 and AV1 units with bytes flipped, cut, inserted, removed or repeated) into one [`H264Decoder`] (and [`h264_picture_size`], the SFU's SPS reader) and one [`Av1Decoder`]. No panic; after every unit, decoded or refused, the [`VideoFrame`] is consistent (sides within [`MAX_DIMENSION`], planes of exactly its size); an unchanged H.264 key frame after anything gives its picture (size and frame number) |
//!
//! ```text
//! cd fuzz
//! cargo +nightly fuzz run jitter_ops -- -max_total_time=60
//! cargo +nightly fuzz run rtp_payload -- -max_total_time=60
//! cargo +nightly fuzz run video_payload -- -max_total_time=60
//! ```
//!
//! `rtp_payload` runs tens of inputs per second, not thousands: its server and
//! connected scenarios build str0m `Rtc`s (a certificate each) and run DTLS
//! handshakes. libFuzzer grows its input length slowly from a few bytes; for long
//! scenarios early, add `-max_len=4096 -len_control=0`.
//!
//! `tests/fuzz_replay.rs` replays `rtp_payload` and `video_payload` on stable over
//! seeded inputs and hand-written scenarios.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::rtp::{ExtensionValues, RtpWrite, SeqNo};
use str0m::{Candidate, Event, Input, Output, Rtc};

use crate::client::{CallMedia, CallMediaConfig};
use crate::codec::{Channels, Encoder, FRAME_DURATION, FRAME_SAMPLES, MAX_PACKET_SIZE, OpusConfig};
use crate::jitter::{AudioPacket, JitterBuffer, JitterConfig};
use crate::mixer::{MixKind, Mixer, MixerConfig};
use crate::rtc::MediaError;
use crate::server::{MediaServer, MediaServerConfig, ServerEvent};
use crate::video::{FrameRate, MAX_DIMENSION, TestPatternSource, VideoFormat, VideoFrame};
use crate::video_codec::{Av1Decoder, H264Config, H264Decoder, H264Encoder, h264_picture_size};

/// One operation on the jitter buffer.
#[derive(Debug, Clone, Arbitrary)]
pub enum JitterOp {
    /// Advance the clock by `ms` (0..=65535 ms).
    Advance {
        /// Milliseconds.
        ms: u16,
    },
    /// A packet arrives now with a real opus payload (`voiced` picks a tone or silence).
    Opus {
        /// RTP sequence number.
        seq: u16,
        /// RTP timestamp.
        timestamp: u32,
        /// Tone or silence.
        voiced: bool,
    },
    /// A packet arrives now with arbitrary bytes as payload.
    Raw {
        /// RTP sequence number.
        seq: u16,
        /// RTP timestamp.
        timestamp: u32,
        /// The payload (repeated `repeat` times, to reach any size).
        bytes: Vec<u8>,
        /// How many times to repeat `bytes`.
        repeat: u8,
    },
    /// Pull every frame due now.
    Pull,
}

/// A jitter buffer configuration and the operations to replay.
#[derive(Debug, Clone, Arbitrary)]
pub struct JitterScenario {
    /// Stereo instead of mono.
    pub stereo: bool,
    /// Packets held at most (1..=256).
    pub max_packets: u8,
    /// The operations.
    pub ops: Vec<JitterOp>,
}

/// Replays `scenario`, checking the invariants after every operation.
///
/// # Panics
/// When an invariant does not hold (that is the finding).
pub fn run_jitter_ops(scenario: &JitterScenario) {
    let channels = if scenario.stereo {
        Channels::Stereo
    } else {
        Channels::Mono
    };
    let max_packets = usize::from(scenario.max_packets).max(1);
    let config = JitterConfig {
        channels,
        max_packets,
        ..JitterConfig::default()
    };
    let mut jb = JitterBuffer::new(config).expect("a decoder can be created");
    let mut enc = Encoder::new(OpusConfig {
        channels,
        ..OpusConfig::default()
    })
    .expect("the default config is valid");
    let silence = vec![0i16; channels.frame_len()];
    let voiced: Vec<i16> = (0..channels.frame_len())
        .map(|i| if (i / 50) % 2 == 0 { 6000 } else { -6000 })
        .collect();
    // The one clock read of a replay: the origin of its virtual time, which the ops
    // then advance. The jitter buffer itself never reads a clock.
    let t0 = Instant::now();
    let mut now = t0;
    let mut handed_in = 0u64;
    for op in scenario.ops.iter().take(2000) {
        match op {
            JitterOp::Advance { ms } => now += Duration::from_millis(u64::from(*ms)),
            JitterOp::Opus {
                seq,
                timestamp,
                voiced: v,
            } => {
                let pcm = if *v { &voiced } else { &silence };
                let payload = enc.encode_to_vec(pcm).expect("one frame encodes");
                handed_in += 1;
                jb.handle_packet(
                    AudioPacket {
                        seq: *seq,
                        timestamp: *timestamp,
                        payload,
                        marker: false,
                    },
                    now,
                );
            }
            JitterOp::Raw {
                seq,
                timestamp,
                bytes,
                repeat,
            } => {
                let payload = bytes.repeat(usize::from(*repeat).max(1));
                handed_in += 1;
                jb.handle_packet(
                    AudioPacket {
                        seq: *seq,
                        timestamp: *timestamp,
                        payload,
                        marker: true,
                    },
                    now,
                );
            }
            JitterOp::Pull => {
                // A stalled clock jumped far ahead gives one frame per due 20 ms; cap it.
                for _ in 0..200 {
                    let Some(frame) = jb.poll_frame(now) else {
                        break;
                    };
                    assert_eq!(frame.pcm.len(), FRAME_SAMPLES * channels.count());
                }
            }
        }
        assert!(
            jb.len() <= max_packets,
            "holds {} > {max_packets}",
            jb.len()
        );
        let st = jb.stats();
        assert_eq!(st.packets, handed_in);
        assert_eq!(
            st.frames,
            st.decoded + st.fec + st.concealed + st.comfort_noise
        );
        assert!(st.target_delay <= config.max_delay && st.target_delay >= config.min_delay);
        if let Some(at) = jb.poll_timeout() {
            assert!(at >= t0);
        }
    }
}

// ---------------------------------------------------------------------------------
// rtp_payload: our handling of what arrives from the network.
// ---------------------------------------------------------------------------------

/// Operations of a scenario at most (inputs longer than this are cut).
const MAX_OPS: usize = 256;

/// Operations of a [`PayloadScenario::Connected`] scenario at most (each may run
/// str0m and the mixer for a while).
const MAX_CONNECTED_OPS: usize = 128;

/// Packets of one [`RtpOp::Talk`] at most.
const MAX_TALK: u8 = 50;

/// SDP operations of a scenario at most (each builds an `Rtc`, with its certificate).
const MAX_SDP_OPS: usize = 8;

/// Bytes of one fuzzed payload or datagram at most.
const MAX_BYTES: usize = 2 * MAX_PACKET_SIZE;

/// Bytes of one fuzzed SDP text at most.
const MAX_SDP: usize = 16 * 1024;

/// `handle_timeout` rounds after which a timer that is still due at `now` is a finding:
/// a driver following the drain rule would spin on it.
const MAX_TIMEOUT_ROUNDS: usize = 8;

/// The one call of the payload scenarios.
const CALL: u32 = 7;

/// The server's address in the payload scenarios.
fn server_addr() -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], 5000))
}

/// Client `i`'s address in the payload scenarios.
fn client_addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 1, i], 6000))
}

/// An address nobody in the scenario uses.
fn stray_addr() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 9], 9))
}

/// One input of the `rtp_payload` target: the part of the path from the network to
/// the mixer that it drives.
#[derive(Debug, Clone, Arbitrary)]
pub enum PayloadScenario {
    /// A three-participant [`Mixer`] fed arbitrary opus payloads and RFC 6464 levels,
    /// with ticks, mute, hold, removal and return (pass-through and mixing).
    Mixer(Vec<MixerOp>),
    /// A [`MediaServer`] with one joined participant whose offer was accepted, and that
    /// participant's [`CallMedia`]: arbitrary datagrams (demultiplexing, routing,
    /// str0m's STUN, DTLS, RTP and RTCP parsing behind our wrapper) interleaved with the
    /// real handshake, arbitrary and edited SDP offers and answers.
    Wire(Vec<WireOp>),
    /// Three participants connected to a [`MediaServer`] (ICE, DTLS-SRTP) whose clients
    /// send SRTP packets with arbitrary payloads, audio levels, sequence numbers and
    /// timestamps: the server's mixing queue, level parsing, forwarding and the mixer's
    /// decoders, through real SRTP.
    Connected(Vec<RtpOp>),
}

/// What a payload carries.
#[derive(Debug, Clone, Arbitrary)]
pub enum Payload {
    /// Arbitrary bytes.
    Raw(Vec<u8>),
    /// A real 20 ms opus packet of a tone (`voiced`) or of silence.
    Opus {
        /// Tone or silence.
        voiced: bool,
    },
    /// A real opus packet with bytes changed: `(index, xor)`, index modulo its length.
    Mutated {
        /// Tone or silence.
        voiced: bool,
        /// Where and how to change it.
        flips: Vec<(u16, u8)>,
    },
}

/// One operation on the three-participant mixer.
#[derive(Debug, Clone, Arbitrary)]
pub enum MixerOp {
    /// A packet of participant `participant % 3` with RFC 6464 `level` (`-dBov`).
    Packet {
        /// Who.
        participant: u8,
        /// Its level, any byte (0..=127 is the RFC's range).
        level: u8,
        /// The payload.
        payload: Payload,
    },
    /// The clock moves `ms` and the tick runs when due.
    Tick {
        /// Milliseconds.
        ms: u8,
    },
    /// Mute or unmute.
    Mute {
        /// Who.
        participant: u8,
        /// Muted.
        muted: bool,
    },
    /// Hold or resume.
    Hold {
        /// Who.
        participant: u8,
        /// On hold.
        on_hold: bool,
    },
    /// Removes a participant, or adds it back.
    Toggle {
        /// Who.
        participant: u8,
    },
}

/// One operation on the server with one joined participant.
#[derive(Debug, Clone, Arbitrary)]
pub enum WireOp {
    /// Arbitrary bytes to the server from `source % 3`: the participant's address, a
    /// stray one, the server's own.
    Datagram {
        /// Which source.
        source: u8,
        /// The datagram.
        bytes: Vec<u8>,
    },
    /// Arbitrary bytes after a first byte of STUN (0x00, 0x01), DTLS (22) or RTP/RTCP
    /// (0x80), from the participant's address: past the demultiplexer into str0m.
    Framed {
        /// Which protocol (`kind % 4`: STUN request, STUN response, DTLS, RTP).
        kind: u8,
        /// The rest of the datagram.
        bytes: Vec<u8>,
    },
    /// The real datagrams queued on both sides are delivered.
    Exchange,
    /// The client's next real datagram with one byte changed, then delivered.
    Corrupt {
        /// Byte index, modulo the datagram's length.
        at: u16,
        /// What to xor it with.
        xor: u8,
    },
    /// The clock moves `ms`; both sides run their timers.
    Advance {
        /// Milliseconds.
        ms: u16,
    },
    /// An SDP offer, for the joined participant or one who never joined.
    Offer {
        /// For the joined participant.
        joined: bool,
        /// The text.
        sdp: String,
    },
    /// The client's real offer with one line replaced (or `text` inserted before it).
    EditedOffer {
        /// Line index, modulo the number of lines.
        line: u8,
        /// The new line.
        text: String,
        /// Insert instead of replacing.
        insert: bool,
    },
    /// An SDP answer to a fresh client's offer.
    Answer {
        /// The text.
        sdp: String,
    },
    /// The server's real answer to a fresh client, edited like [`WireOp::EditedOffer`],
    /// given to that client.
    EditedAnswer {
        /// Line index, modulo the number of lines.
        line: u8,
        /// The new line.
        text: String,
        /// Insert instead of replacing.
        insert: bool,
    },
    /// The client sends a 20 ms frame of a tone (SRTP once connected).
    Audio,
}

/// One operation on three connected participants.
#[derive(Debug, Clone, Arbitrary)]
pub enum RtpOp {
    /// Client `from % 3` sends one SRTP packet.
    Send {
        /// Who.
        from: u8,
        /// Extended sequence number: the low 16 bits go on the wire, the rest is the
        /// SRTP rollover counter the sender assumes.
        seq: u32,
        /// RTP timestamp.
        timestamp: u32,
        /// The audio-level extension as str0m carries it (`-dBov`, negative), if any.
        level: Option<i8>,
        /// The voice-activity flag of the extension.
        voice: bool,
        /// The RTP marker bit.
        marker: bool,
        /// The payload.
        payload: Payload,
    },
    /// Client `from % 3` sends `count` packets of real opus, in sequence.
    Talk {
        /// Who.
        from: u8,
        /// Packets (at most 255), one per 20 ms.
        count: u8,
    },
    /// Arbitrary bytes from client `from % 3`'s address.
    Datagram {
        /// Whose address.
        from: u8,
        /// The datagram.
        bytes: Vec<u8>,
    },
    /// The clock moves `ms`; everyone runs timers; datagrams are delivered.
    Advance {
        /// Milliseconds.
        ms: u16,
    },
    /// `MediaServer::update` for participant `who % 3`.
    Update {
        /// Who.
        who: u8,
        /// Muted.
        muted: bool,
        /// On hold.
        on_hold: bool,
    },
    /// Participant `who % 3` leaves the call's media.
    Leave {
        /// Who.
        who: u8,
    },
}

/// What replaying a [`PayloadScenario`] reached, so a replay test can tell that its
/// inputs got somewhere.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PayloadReport {
    /// Operations run.
    pub ops: usize,
    /// Mixer packets decoded (mixer scenarios and the server's mixer).
    pub decoded: u64,
    /// Mixer frames encoded.
    pub encoded: u64,
    /// Packets forwarded unchanged.
    pub forwarded: u64,
    /// Audio packets the server received through SRTP.
    pub audio_in: u64,
    /// Datagrams the server claimed / did not claim.
    pub datagrams_in: u64,
    /// Datagrams nobody claimed.
    pub datagrams_unknown: u64,
    /// Offers accepted / refused.
    pub offers_accepted: u64,
    /// Offers refused.
    pub offers_refused: u64,
    /// Answers a client accepted / refused.
    pub answers_accepted: u64,
    /// Answers refused.
    pub answers_refused: u64,
    /// Participants connected at the end.
    pub connected: usize,
}

/// The `rtp_payload` target on raw bytes (the replay tests' entry).
pub fn rtp_payload(data: &[u8]) -> PayloadReport {
    match PayloadScenario::arbitrary_take_rest(Unstructured::new(data)) {
        Ok(scenario) => run_payload_scenario(&scenario),
        Err(_) => PayloadReport::default(),
    }
}

/// Replays `scenario`, checking the invariants after every operation: no panic;
/// memory bounded (operations and sizes capped, every output drained); the counters
/// add up; nobody removed, on hold or unknown is sent audio; no server timer stays due
/// at `now` after the drain.
///
/// # Panics
/// When an invariant does not hold (that is the finding).
pub fn run_payload_scenario(scenario: &PayloadScenario) -> PayloadReport {
    match scenario {
        PayloadScenario::Mixer(ops) => run_mixer_ops(ops),
        PayloadScenario::Wire(ops) => run_wire_ops(ops),
        PayloadScenario::Connected(ops) => run_connected_ops(ops),
    }
}

/// Pseudo-random bytes for seed `seed` (xorshift64): the replay tests' stand-in for
/// the fuzzer's inputs.
#[must_use]
pub fn seeded_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Real opus packets for [`Payload::Opus`] and [`Payload::Mutated`].
struct OpusSource {
    encoder: Encoder,
    tone: Vec<i16>,
    silence: Vec<i16>,
    samples: u64,
}

impl OpusSource {
    fn new() -> Self {
        Self {
            encoder: Encoder::new(OpusConfig {
                dtx: false,
                ..OpusConfig::default()
            })
            .expect("the default config is valid"),
            tone: vec![0; FRAME_SAMPLES],
            silence: vec![0; FRAME_SAMPLES],
            samples: 0,
        }
    }

    fn packet(&mut self, voiced: bool) -> Vec<u8> {
        let pcm = if voiced {
            crate::analysis::tone(
                440.0,
                8000.0,
                crate::codec::SAMPLE_RATE,
                self.samples,
                &mut self.tone,
            );
            &self.tone
        } else {
            &self.silence
        };
        self.samples += FRAME_SAMPLES as u64;
        self.encoder.encode_to_vec(pcm).expect("one frame encodes")
    }

    fn payload(&mut self, payload: &Payload) -> Vec<u8> {
        match payload {
            Payload::Raw(bytes) => bytes.iter().copied().take(MAX_BYTES).collect(),
            Payload::Opus { voiced } => self.packet(*voiced),
            Payload::Mutated { voiced, flips } => {
                let mut p = self.packet(*voiced);
                let len = p.len();
                for &(at, xor) in flips.iter().take(64) {
                    if let Some(b) = p.get_mut(usize::from(at) % len.max(1)) {
                        *b ^= xor;
                    }
                }
                p
            }
        }
    }
}

fn run_mixer_ops(ops: &[MixerOp]) -> PayloadReport {
    let config = MixerConfig::default();
    let mut mixer = Mixer::new(config).expect("the default config is valid");
    let mut opus = OpusSource::new();
    // The one clock read of a replay; the operations move virtual time from here.
    let mut now = Instant::now();
    // Present, muted, on hold, per participant.
    let mut present = [true; 3];
    let mut muted = [false; 3];
    let mut on_hold = [false; 3];
    for p in 0..3u8 {
        mixer.add_participant(p, now);
    }
    let mut report = PayloadReport::default();
    for op in ops.iter().take(MAX_OPS) {
        report.ops += 1;
        match op {
            MixerOp::Packet {
                participant,
                level,
                payload,
            } => {
                let p = participant % 3;
                let bytes = opus.payload(payload);
                mixer.handle_packet(&p, *level, &bytes, now);
            }
            MixerOp::Tick { ms } => {
                now += Duration::from_millis(u64::from(*ms));
                mixer.handle_timeout(now);
            }
            MixerOp::Mute {
                participant,
                muted: m,
            } => {
                let p = participant % 3;
                mixer.set_muted(&p, *m);
                muted[usize::from(p)] = *m;
            }
            MixerOp::Hold {
                participant,
                on_hold: h,
            } => {
                let p = participant % 3;
                mixer.set_on_hold(&p, *h);
                on_hold[usize::from(p)] = *h;
            }
            MixerOp::Toggle { participant } => {
                let p = participant % 3;
                let i = usize::from(p);
                if present[i] {
                    mixer.remove_participant(&p);
                } else {
                    mixer.add_participant(p, now);
                    muted[i] = false;
                    on_hold[i] = false;
                }
                present[i] = !present[i];
            }
        }
        // Outputs: only to present listeners not on hold, each at most once per kind
        // of mix, real packets of sane size, forwarded ones from someone else.
        let mut got_mix = [false; 3];
        while let Some(out) = mixer.poll_output() {
            assert!(!out.to.is_empty(), "an output without listeners");
            assert!(
                out.packet.len() > 2 && out.packet.len() <= MAX_PACKET_SIZE,
                "output of {} bytes",
                out.packet.len()
            );
            for &to in &out.to {
                let i = usize::from(to);
                assert!(present[i], "output to removed participant {to}");
                assert!(!on_hold[i], "output to participant {to} on hold");
                if let MixKind::Forwarded { from } = &out.kind {
                    assert_ne!(*from, to, "a packet forwarded back to its sender");
                    assert!(!muted[usize::from(*from)], "a muted sender forwarded");
                } else {
                    assert!(!got_mix[i], "two mixes for {to} in one tick");
                    got_mix[i] = true;
                }
            }
        }
        // The speakers of the tick just run were active then (a mute or hold after
        // it does not change them until the next one).
        if matches!(op, MixerOp::Tick { .. }) {
            let speakers = mixer.speakers();
            assert!(speakers.len() <= config.speakers);
            for s in speakers {
                let i = usize::from(*s);
                assert!(present[i] && !muted[i] && !on_hold[i], "speaker {s}");
            }
        }
    }
    let s = mixer.stats();
    report.decoded = s.decoded;
    report.encoded = s.encoded;
    report.forwarded = s.forwarded;
    report
}

/// Edits `text` line by line: replaces (or inserts before) line `line % lines`.
fn edit_sdp(text: &str, line: u8, new: &str, insert: bool) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    let new = truncate(new, MAX_SDP);
    if lines.is_empty() {
        return new.to_owned();
    }
    let at = usize::from(line) % lines.len();
    if insert {
        lines.insert(at, new);
    } else if let Some(l) = lines.get_mut(at) {
        *l = new;
    }
    let mut out = lines.join("\r\n");
    out.push_str("\r\n");
    out
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Runs the server's due timers as a driver does (until none is due now) and checks
/// that it gets there.
fn server_timeouts(server: &mut MediaServer<u32, u32>, now: Instant) {
    for _ in 0..MAX_TIMEOUT_ROUNDS {
        server.handle_timeout(now);
        if server.poll_timeout().is_none_or(|t| t > now) {
            return;
        }
    }
    panic!("a server timer stays due at now after {MAX_TIMEOUT_ROUNDS} rounds");
}

/// Checks the server's counters against what the driver handed in.
fn check_server(server: &MediaServer<u32, u32>, handed: u64, members: usize) {
    let s = server.stats();
    assert_eq!(
        s.datagrams_in + s.datagrams_unknown,
        handed,
        "every datagram is counted once"
    );
    assert_eq!(s.participants, members, "participants");
    assert!(s.connected <= s.participants, "{s:?}");
}

/// Drains the server's events, checking they name participants of the call.
fn check_events(server: &mut MediaServer<u32, u32>, members: &[u32]) {
    while let Some(event) = server.poll_event() {
        match event {
            ServerEvent::Connected { call, participant }
            | ServerEvent::Failed {
                call, participant, ..
            } => {
                assert_eq!(call, CALL);
                assert!(members.contains(&participant), "event for {participant}");
            }
            ServerEvent::DominantSpeakers { call, speakers } => {
                assert_eq!(call, CALL);
                for s in &speakers {
                    assert!(members.contains(s), "speaker {s} is not a member");
                }
                let mut sorted = speakers.clone();
                sorted.sort_unstable();
                sorted.dedup();
                assert_eq!(sorted.len(), speakers.len(), "duplicate speakers");
            }
            _ => {}
        }
    }
}

fn run_wire_ops(ops: &[WireOp]) -> PayloadReport {
    let mut now = Instant::now();
    let server_addr = server_addr();
    let client = client_addr(1);
    let mut server = MediaServer::new(MediaServerConfig::new(server_addr));
    server
        .join(&CALL, &1, now)
        .expect("the default mixer settings are valid");
    let config = CallMediaConfig::default();
    let (mut media, offer) =
        CallMedia::new(client, config, now).expect("a concrete address is a valid candidate");
    let answer = server
        .accept_offer(&CALL, &1, &offer, now)
        .expect("the server answers a CallMedia offer");
    media
        .handle_answer(&answer)
        .expect("a CallMedia takes the server's answer");
    assert!(
        matches!(
            media.handle_answer(&answer),
            Err(MediaError::UnexpectedAnswer)
        ),
        "a second answer is refused"
    );
    let mut report = PayloadReport {
        offers_accepted: 1,
        answers_accepted: 1,
        ..PayloadReport::default()
    };
    let mut handed = 0u64;
    let mut refused = 0u64;
    let mut sdp_ops = 0;
    let mut to_server: Vec<Vec<u8>> = Vec::new();
    let mut samples = 0u64;
    let mut pcm = vec![0i16; FRAME_SAMPLES];
    let stray = stray_addr();
    for op in ops.iter().take(MAX_OPS) {
        report.ops += 1;
        match op {
            WireOp::Datagram { source, bytes } => {
                let source = [client, stray, server_addr][usize::from(source % 3)];
                let bytes = &bytes[..bytes.len().min(MAX_BYTES)];
                handed += 1;
                server.handle_receive(now, source, server_addr, bytes);
            }
            WireOp::Framed { kind, bytes } => {
                let first = [0x00, 0x01, 22, 0x80][usize::from(kind % 4)];
                let mut datagram = vec![first];
                datagram.extend(bytes.iter().copied().take(MAX_BYTES));
                handed += 1;
                server.handle_receive(now, client, server_addr, &datagram);
            }
            WireOp::Exchange | WireOp::Corrupt { .. } => {
                while let Some(t) = media.poll_transmit() {
                    to_server.push(t.contents);
                }
                if let (WireOp::Corrupt { at, xor }, Some(first)) = (op, to_server.first_mut()) {
                    let len = first.len();
                    if let Some(b) = first.get_mut(usize::from(*at) % len.max(1)) {
                        *b ^= xor;
                    }
                }
                for datagram in to_server.drain(..) {
                    handed += 1;
                    server.handle_receive(now, client, server_addr, &datagram);
                }
            }
            WireOp::Advance { ms } => {
                now += Duration::from_millis(u64::from(*ms));
                server_timeouts(&mut server, now);
                media.handle_timeout(now);
                while media.poll_audio(now).is_some() {}
            }
            WireOp::Offer { joined, sdp } => {
                sdp_ops += 1;
                if sdp_ops > MAX_SDP_OPS {
                    continue;
                }
                let who = if *joined { 1 } else { 2 };
                match server.accept_offer(&CALL, &who, truncate(sdp, MAX_SDP), now) {
                    Ok(_) => {
                        assert!(*joined, "an offer of someone who never joined");
                        report.offers_accepted += 1;
                    }
                    Err(e) => {
                        if !joined {
                            assert!(matches!(e, MediaError::NotJoined), "{e}");
                        }
                        refused += 1;
                    }
                }
            }
            WireOp::EditedOffer { line, text, insert } => {
                sdp_ops += 1;
                if sdp_ops > MAX_SDP_OPS {
                    continue;
                }
                let sdp = edit_sdp(&offer, *line, text, *insert);
                match server.accept_offer(&CALL, &1, &sdp, now) {
                    Ok(_) => report.offers_accepted += 1,
                    Err(_) => refused += 1,
                }
            }
            WireOp::Answer { sdp } => {
                sdp_ops += 1;
                if sdp_ops > MAX_SDP_OPS {
                    continue;
                }
                let (mut fresh, _) = CallMedia::new(client_addr(2), config, now)
                    .expect("a concrete address is a valid candidate");
                match fresh.handle_answer(truncate(sdp, MAX_SDP)) {
                    Ok(()) => report.answers_accepted += 1,
                    Err(_) => report.answers_refused += 1,
                }
            }
            WireOp::EditedAnswer { line, text, insert } => {
                sdp_ops += 1;
                if sdp_ops > MAX_SDP_OPS {
                    continue;
                }
                let (mut fresh, fresh_offer) = CallMedia::new(client_addr(2), config, now)
                    .expect("a concrete address is a valid candidate");
                // A second participant, so the real session of the first carries on.
                server
                    .join(&CALL, &2, now)
                    .expect("the room exists already");
                let real = server.accept_offer(&CALL, &2, &fresh_offer, now);
                server.leave(&CALL, &2);
                let Ok(real) = real else {
                    panic!("the server refused a CallMedia offer");
                };
                report.offers_accepted += 1;
                match fresh.handle_answer(&edit_sdp(&real, *line, text, *insert)) {
                    Ok(()) => report.answers_accepted += 1,
                    Err(_) => report.answers_refused += 1,
                }
            }
            WireOp::Audio => {
                crate::analysis::tone(440.0, 8000.0, crate::codec::SAMPLE_RATE, samples, &mut pcm);
                samples += FRAME_SAMPLES as u64;
                media
                    .send_audio(&pcm, now)
                    .expect("a 20 ms mono frame is accepted");
            }
        }
        // The server's datagrams reach the client; the client's wait for Exchange.
        while let Some(t) = server.poll_transmit() {
            assert!(
                t.contents.len() <= crate::rtc::MAX_DATAGRAM,
                "datagram too big"
            );
            if t.destination == client {
                media.handle_receive(now, server_addr, client, &t.contents);
            }
        }
        while media.poll_event().is_some() {}
        check_events(&mut server, &[1, 2]);
        check_server(&server, handed, 1);
        assert_eq!(server.stats().offers_refused, refused, "refusals counted");
    }
    let s = server.stats();
    report.offers_refused = s.offers_refused;
    report.audio_in = s.audio_in;
    report.datagrams_in = s.datagrams_in;
    report.datagrams_unknown = s.datagrams_unknown;
    report.connected = s.connected;
    report
}

/// A participant's client in [`PayloadScenario::Connected`]: a str0m `Rtc` in RTP
/// mode, so that it writes packets with the sequence numbers the fuzzer chose.
struct RawClient {
    addr: SocketAddr,
    rtc: Rtc,
    mid: Mid,
    pt: Option<Pt>,
    connected: bool,
    alive: bool,
    /// Next sequence number of [`RtpOp::Talk`].
    seq: u64,
    ts: u32,
}

impl RawClient {
    fn new(i: u8, server: &mut MediaServer<u32, u32>, now: Instant) -> Result<Self, MediaError> {
        let addr = client_addr(i);
        let id = u32::from(i);
        server.join(&CALL, &id, now)?;
        let mut rtc = crate::rtc::rtc_config().set_rtp_mode(true).build(now);
        let candidate = Candidate::host(addr, "udp").map_err(|_| MediaError::BadCandidate(addr))?;
        rtc.add_local_candidate(candidate)
            .ok_or(MediaError::BadCandidate(addr))?;
        let mut api = rtc.sdp_api();
        let mid = api.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| MediaError::Negotiation("no offer".into()))?;
        let answer = server.accept_offer(&CALL, &id, &offer.to_sdp_string(), now)?;
        let answer = SdpAnswer::from_sdp_string(&answer).map_err(|e| MediaError::InvalidSdp {
            kind: "answer",
            reason: e.to_string(),
        })?;
        rtc.sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| MediaError::Negotiation(e.to_string()))?;
        let pt = rtc
            .codec_config()
            .params()
            .iter()
            .find(|p| p.spec().codec == Codec::Opus)
            .map(str0m::format::PayloadParams::pt);
        Ok(Self {
            addr,
            rtc,
            mid,
            pt,
            connected: false,
            alive: true,
            seq: 1,
            ts: 0,
        })
    }

    /// Drains the `Rtc` after an input; its datagrams go to `out`.
    fn drain(&mut self, out: &mut Vec<(SocketAddr, Vec<u8>)>) {
        while self.alive {
            match self.rtc.poll_output() {
                Ok(Output::Transmit(t)) => out.push((self.addr, t.contents.into())),
                Ok(Output::Timeout(_)) => return,
                Ok(Output::Event(Event::Connected)) => self.connected = true,
                Ok(Output::Event(_)) => {}
                Err(_) => self.alive = false,
            }
        }
    }

    fn timeout(&mut self, now: Instant, out: &mut Vec<(SocketAddr, Vec<u8>)>) {
        if self.alive && self.rtc.handle_input(Input::Timeout(now)).is_err() {
            self.alive = false;
        }
        self.drain(out);
    }

    /// Writes one RTP packet; str0m sends it on the timeout that follows.
    fn send(
        &mut self,
        write: impl FnOnce(Pt) -> RtpWrite,
        now: Instant,
        out: &mut Vec<(SocketAddr, Vec<u8>)>,
    ) {
        let (Some(pt), true, true) = (self.pt, self.connected, self.alive) else {
            return;
        };
        let mut direct = self.rtc.direct_api();
        let Some(stream) = direct.stream_tx_by_mid(self.mid, None) else {
            return;
        };
        stream.write_rtp(write(pt));
        self.timeout(now, out);
    }
}

/// Delivers datagrams until both sides are quiet (bounded).
fn exchange(
    server: &mut MediaServer<u32, u32>,
    clients: &mut [RawClient],
    pending: &mut Vec<(SocketAddr, Vec<u8>)>,
    now: Instant,
    handed: &mut u64,
) {
    let server_addr = server_addr();
    for _ in 0..16 {
        let mut moved = false;
        for (source, datagram) in pending.drain(..) {
            moved = true;
            *handed += 1;
            server.handle_receive(now, source, server_addr, &datagram);
        }
        while let Some(t) = server.poll_transmit() {
            moved = true;
            assert!(
                t.contents.len() <= crate::rtc::MAX_DATAGRAM,
                "datagram too big"
            );
            if let Some(c) = clients.iter_mut().find(|c| c.addr == t.destination) {
                if let Some(input) =
                    crate::rtc::receive_input(now, server_addr, c.addr, &t.contents)
                    && c.alive
                    && c.rtc.handle_input(input).is_err()
                {
                    c.alive = false;
                }
                c.drain(pending);
            }
        }
        if !moved {
            return;
        }
    }
}

/// Three clients connected to a fresh server, and the clock after the handshakes.
fn connected_world() -> (MediaServer<u32, u32>, Vec<RawClient>, Instant, u64) {
    let mut now = Instant::now();
    let mut config = MediaServerConfig::new(server_addr());
    config.mixer.opus.dtx = false;
    let mut server = MediaServer::new(config);
    let mut clients: Vec<RawClient> = (1..=3u8)
        .map(|i| RawClient::new(i, &mut server, now).expect("a str0m offer is answered"))
        .collect();
    let mut pending = Vec::new();
    let mut handed = 0;
    for _ in 0..2000 {
        for c in &mut clients {
            c.timeout(now, &mut pending);
        }
        server_timeouts(&mut server, now);
        exchange(&mut server, &mut clients, &mut pending, now, &mut handed);
        check_events(&mut server, &[1, 2, 3]);
        if clients.iter().all(|c| c.connected) && server.stats().connected == 3 {
            return (server, clients, now, handed);
        }
        now += Duration::from_millis(5);
    }
    panic!("three str0m clients did not connect within 10 s of virtual time");
}

fn run_connected_ops(ops: &[RtpOp]) -> PayloadReport {
    let (mut server, mut clients, mut now, mut handed) = connected_world();
    let mut opus = OpusSource::new();
    let mut members: Vec<u32> = vec![1, 2, 3];
    let mut pending = Vec::new();
    let mut report = PayloadReport::default();
    for op in ops.iter().take(MAX_CONNECTED_OPS) {
        report.ops += 1;
        match op {
            RtpOp::Send {
                from,
                seq,
                timestamp,
                level,
                voice,
                marker,
                payload,
            } => {
                let bytes = opus.payload(payload);
                let c = &mut clients[usize::from(from % 3)];
                let ext = ExtensionValues {
                    audio_level: *level,
                    voice_activity: Some(*voice),
                    ..ExtensionValues::default()
                };
                c.send(
                    |pt| {
                        RtpWrite::new(pt, SeqNo::from(u64::from(*seq)), *timestamp, now, bytes)
                            .ext_vals(ext)
                            .marker(*marker)
                    },
                    now,
                    &mut pending,
                );
            }
            RtpOp::Talk { from, count } => {
                let i = usize::from(from % 3);
                for _ in 0..(*count).min(MAX_TALK) {
                    let bytes = opus.packet(true);
                    let c = &mut clients[i];
                    let (seq, ts) = (c.seq, c.ts);
                    c.seq += 1;
                    c.ts = c.ts.wrapping_add(FRAME_SAMPLES as u32);
                    let ext = ExtensionValues {
                        audio_level: Some(-20),
                        voice_activity: Some(true),
                        ..ExtensionValues::default()
                    };
                    c.send(
                        |pt| RtpWrite::new(pt, SeqNo::from(seq), ts, now, bytes).ext_vals(ext),
                        now,
                        &mut pending,
                    );
                    exchange(&mut server, &mut clients, &mut pending, now, &mut handed);
                    now += FRAME_DURATION;
                    server_timeouts(&mut server, now);
                    for c in &mut clients {
                        c.timeout(now, &mut pending);
                    }
                }
            }
            RtpOp::Datagram { from, bytes } => {
                let source = client_addr(from % 3 + 1);
                pending.push((source, bytes.iter().copied().take(MAX_BYTES).collect()));
            }
            RtpOp::Advance { ms } => {
                now += Duration::from_millis(u64::from(*ms));
                server_timeouts(&mut server, now);
                for c in &mut clients {
                    c.timeout(now, &mut pending);
                }
            }
            RtpOp::Update {
                who,
                muted,
                on_hold,
            } => {
                server.update(&CALL, &u32::from(who % 3 + 1), *muted, *on_hold);
            }
            RtpOp::Leave { who } => {
                let id = u32::from(who % 3 + 1);
                server.leave(&CALL, &id);
                members.retain(|&m| m != id);
            }
        }
        exchange(&mut server, &mut clients, &mut pending, now, &mut handed);
        check_events(&mut server, &[1, 2, 3]);
        check_server(&server, handed, members.len());
    }
    let s = server.stats();
    report.decoded = s.decoded;
    report.encoded = s.encoded;
    report.forwarded = s.forwarded;
    report.audio_in = s.audio_in;
    report.datagrams_in = s.datagrams_in;
    report.datagrams_unknown = s.datagrams_unknown;
    report.connected = s.connected;
    report
}

// ---------------------------------------------------------------------------------
// video_payload: received video access units into our decoders.
// ---------------------------------------------------------------------------------

/// Operations of a [`VideoScenario`] at most (inputs longer than this are cut).
const MAX_VIDEO_OPS: usize = 64;

/// Bytes of one fuzzed access unit at most: a large key frame, far above what one
/// call's frame carries at 720p.
const MAX_VIDEO_BYTES: usize = 256 * 1024;

/// Edits of one real access unit at most.
const MAX_EDITS: usize = 32;

/// dav1d's own 8-bit test vector (MIT, from the dav1d crate): 5 temporal units at
/// 320x240, a key frame first; the real AV1 units the scenarios start from and edit.
const AV1_IVF: &[u8] = include_bytes!("../tests/data/test-420-8.ivf");

/// The sizes of the real H.264 stream: a size change in the middle, as when a
/// sender switches from camera to screen share.
const H264_SIZES: [(u32, u32); 2] = [(96, 64), (64, 96)];

/// Access units per size of the real H.264 stream (a key frame, then P frames).
const H264_FRAMES_PER_SIZE: u64 = 4;

/// One input of the `video_payload` target: a sequence of received video access
/// units, as the client's depacketizer hands them to a decoder, and what the decoders
/// must still do afterwards.
#[derive(Debug, Clone, Arbitrary)]
pub struct VideoScenario {
    /// The units, in order, into one H.264 and one AV1 decoder.
    pub ops: Vec<VideoOp>,
}

/// One received access unit, or a check.
#[derive(Debug, Clone, Arbitrary)]
pub enum VideoOp {
    /// Arbitrary bytes to the H.264 decoder.
    H264Raw(Vec<u8>),
    /// One Annex B NAL unit of any type: a start code, `header`, then `body`.
    H264Nal {
        /// The NAL header byte (`forbidden_zero_bit`, `nal_ref_idc`, `nal_unit_type`).
        header: u8,
        /// The rest of the unit.
        body: Vec<u8>,
    },
    /// A unit of the real H.264 stream (index modulo its length), edited.
    H264Real {
        /// Which unit.
        index: u8,
        /// What is changed in it.
        edits: Vec<Edit>,
    },
    /// The real stream's first key frame, unchanged: the decoder must give its
    /// picture, whatever came before (a client that drops a bad unit and asks for a
    /// key frame must see video again).
    H264Recover,
    /// Arbitrary bytes to the AV1 decoder.
    Av1Raw(Vec<u8>),
    /// One AV1 OBU with a size field: `header` (its `obu_has_size_field` bit set), a
    /// LEB128 size, then `body`.
    Av1Obu {
        /// The OBU header byte.
        header: u8,
        /// The payload.
        body: Vec<u8>,
    },
    /// A temporal unit of the AV1 test vector (index modulo its length), edited.
    Av1Real {
        /// Which unit.
        index: u8,
        /// What is changed in it.
        edits: Vec<Edit>,
    },
    /// The AV1 test vector's first temporal unit, unchanged.
    Av1Recover,
    /// Both decoders are replaced by fresh ones (a new slot or a new stream).
    NewDecoders,
}

/// A change to a real access unit; positions are taken modulo its length.
#[derive(Debug, Clone, Arbitrary)]
pub enum Edit {
    /// One byte xor-ed.
    Flip {
        /// Where.
        at: u16,
        /// With what.
        xor: u8,
    },
    /// The unit cut at a position (a lost last packet).
    Truncate {
        /// Where.
        at: u16,
    },
    /// Bytes inserted at a position.
    Insert {
        /// Where.
        at: u16,
        /// What.
        bytes: Vec<u8>,
    },
    /// A range removed (a lost packet in the middle).
    Remove {
        /// Where it starts.
        at: u16,
        /// How many bytes.
        len: u16,
    },
    /// The unit followed by a copy of itself (a duplicated packet run).
    Repeat,
}

/// What replaying a [`VideoScenario`] reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VideoReport {
    /// Operations run.
    pub ops: usize,
    /// H.264 units that gave a picture.
    pub h264_pictures: u64,
    /// H.264 units refused.
    pub h264_errors: u64,
    /// AV1 units that gave a picture.
    pub av1_pictures: u64,
    /// AV1 units refused.
    pub av1_errors: u64,
    /// H.264 recoveries checked (a picture of the key frame came out).
    pub h264_recovered: u64,
    /// AV1 recoveries that gave a picture.
    pub av1_recovered: u64,
}

/// The `video_payload` target on raw bytes (the replay tests' entry).
pub fn video_payload(data: &[u8]) -> VideoReport {
    match VideoScenario::arbitrary_take_rest(Unstructured::new(data)) {
        Ok(scenario) => run_video_scenario(&scenario),
        Err(_) => VideoReport::default(),
    }
}

/// Replays `scenario` against an [`H264Decoder`] and an [`Av1Decoder`]: no panic;
/// after every unit, decoded or refused, the output frame is consistent (within
/// [`MAX_DIMENSION`], plane sizes matching width and height); an unchanged key frame
/// after anything gives its picture back (H.264: its size and frame number).
///
/// # Panics
/// When an invariant does not hold (that is the finding).
pub fn run_video_scenario(scenario: &VideoScenario) -> VideoReport {
    let h264 = real_h264();
    let av1 = ivf_units(AV1_IVF);
    let mut h264_dec = H264Decoder::new().expect("an OpenH264 decoder can be created");
    let mut av1_dec = Av1Decoder::new().expect("a dav1d decoder can be created");
    let mut frame = VideoFrame::black(2, 2).expect("2x2 is a valid size");
    let mut report = VideoReport::default();
    for op in scenario.ops.iter().take(MAX_VIDEO_OPS) {
        report.ops += 1;
        match op {
            VideoOp::H264Raw(bytes) => {
                let unit = capped(bytes);
                decode_h264(&mut h264_dec, unit, &mut frame, &mut report);
            }
            VideoOp::H264Nal { header, body } => {
                let mut unit = vec![0, 0, 0, 1, *header];
                unit.extend_from_slice(capped(body));
                decode_h264(&mut h264_dec, &unit, &mut frame, &mut report);
            }
            VideoOp::H264Real { index, edits } => {
                let unit = pick(h264, *index).map(|u| edit(u, edits));
                decode_h264(
                    &mut h264_dec,
                    &unit.unwrap_or_default(),
                    &mut frame,
                    &mut report,
                );
            }
            VideoOp::H264Recover => {
                let key = h264.first().expect("the real stream has units");
                let got = h264_dec.decode(key, &mut frame);
                check_frame(&frame);
                assert!(
                    matches!(got, Ok(true)),
                    "an unchanged key frame gave no picture: {got:?}"
                );
                let (w, h) = H264_SIZES[0];
                assert_eq!((frame.width(), frame.height()), (w, h));
                assert_eq!(h264_picture_size(key), Some((w, h)));
                assert_eq!(TestPatternSource::frame_number(&frame), Some(0));
                report.h264_recovered += 1;
            }
            VideoOp::Av1Raw(bytes) => {
                let unit = capped(bytes);
                decode_av1(&mut av1_dec, unit, &mut frame, &mut report);
            }
            VideoOp::Av1Obu { header, body } => {
                let body = capped(body);
                let mut unit = vec![*header | 0b10];
                leb128(body.len(), &mut unit);
                unit.extend_from_slice(body);
                decode_av1(&mut av1_dec, &unit, &mut frame, &mut report);
            }
            VideoOp::Av1Real { index, edits } => {
                let unit = pick(&av1, *index).map(|u| edit(u, edits));
                decode_av1(
                    &mut av1_dec,
                    &unit.unwrap_or_default(),
                    &mut frame,
                    &mut report,
                );
            }
            VideoOp::Av1Recover => {
                let key = av1.first().copied().unwrap_or_default();
                // dav1d may still hold a picture of what came before, or report the
                // damage it finds now; the frame stays consistent either way.
                if decode_av1(&mut av1_dec, key, &mut frame, &mut report) {
                    report.av1_recovered += 1;
                }
            }
            VideoOp::NewDecoders => {
                h264_dec = H264Decoder::new().expect("an OpenH264 decoder can be created");
                av1_dec = Av1Decoder::new().expect("a dav1d decoder can be created");
            }
        }
    }
    report
}

/// Decodes one H.264 unit and checks the frame; returns whether a picture came out.
fn decode_h264(
    dec: &mut H264Decoder,
    unit: &[u8],
    frame: &mut VideoFrame,
    report: &mut VideoReport,
) -> bool {
    // The SFU reads simulcast layers' sizes from what publishers send, undecoded.
    if let Some((w, h)) = h264_picture_size(unit) {
        assert!(w > 0 && h > 0, "a parsed picture size of {w}x{h}");
    }
    let got = dec.decode(unit, frame);
    check_frame(frame);
    match got {
        Ok(true) => report.h264_pictures += 1,
        Ok(false) => {}
        Err(_) => report.h264_errors += 1,
    }
    matches!(got, Ok(true))
}

/// Decodes one AV1 unit and checks the frame; returns whether a picture came out.
fn decode_av1(
    dec: &mut Av1Decoder,
    unit: &[u8],
    frame: &mut VideoFrame,
    report: &mut VideoReport,
) -> bool {
    let got = dec.decode(unit, frame);
    check_frame(frame);
    match got {
        Ok(true) => report.av1_pictures += 1,
        Ok(false) => {}
        Err(_) => report.av1_errors += 1,
    }
    matches!(got, Ok(true))
}

/// A frame is consistent: a valid size, and planes of exactly that size.
fn check_frame(frame: &VideoFrame) {
    let (w, h) = (frame.width(), frame.height());
    assert!(
        (1..=MAX_DIMENSION).contains(&w) && (1..=MAX_DIMENSION).contains(&h),
        "frame of {w}x{h}"
    );
    let (cw, ch) = (w.div_ceil(2) as usize, h.div_ceil(2) as usize);
    assert_eq!(
        (
            frame.chroma_width() as usize,
            frame.chroma_height() as usize
        ),
        (cw, ch)
    );
    let luma = w as usize * h as usize;
    assert_eq!(frame.y().len(), luma, "Y plane of a {w}x{h} frame");
    assert_eq!(frame.u().len(), cw * ch, "U plane of a {w}x{h} frame");
    assert_eq!(frame.v().len(), cw * ch, "V plane of a {w}x{h} frame");
    assert_eq!(frame.as_bytes().len(), luma + 2 * cw * ch);
}

/// `bytes` cut to [`MAX_VIDEO_BYTES`].
fn capped(bytes: &[u8]) -> &[u8] {
    bytes.get(..MAX_VIDEO_BYTES).unwrap_or(bytes)
}

/// Unit `index` (modulo the count) of `units`.
fn pick<T: AsRef<[u8]>>(units: &[T], index: u8) -> Option<&[u8]> {
    let count = units.len();
    units
        .get(usize::from(index) % count.max(1))
        .map(AsRef::as_ref)
}

/// `unit` with `edits` applied, in order, positions modulo the current length.
fn edit(unit: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut out = unit.to_vec();
    for e in edits.iter().take(MAX_EDITS) {
        let at = |pos: u16, len: usize| usize::from(pos) % len.max(1);
        match e {
            Edit::Flip { at: pos, xor } => {
                let i = at(*pos, out.len());
                if let Some(b) = out.get_mut(i) {
                    *b ^= xor;
                }
            }
            Edit::Truncate { at: pos } => {
                let i = at(*pos, out.len());
                out.truncate(i);
            }
            Edit::Insert { at: pos, bytes } => {
                let i = at(*pos, out.len()).min(out.len());
                let bytes = bytes.get(..MAX_VIDEO_BYTES / 4).unwrap_or(bytes);
                out.splice(i..i, bytes.iter().copied());
            }
            Edit::Remove { at: pos, len } => {
                let i = at(*pos, out.len()).min(out.len());
                let end = i.saturating_add(usize::from(*len)).min(out.len());
                out.drain(i..end);
            }
            Edit::Repeat => {
                if out.len() <= MAX_VIDEO_BYTES / 2 {
                    out.extend_from_within(..);
                }
            }
        }
    }
    out.truncate(MAX_VIDEO_BYTES);
    out
}

/// `value` as LEB128 (AV1 §4.10.5), appended to `out`.
fn leb128(mut value: usize, out: &mut Vec<u8>) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// The frames of an IVF file (a 32-byte file header, then per frame a 12-byte header
/// whose first 4 bytes are the little-endian size); stops at the first short frame.
fn ivf_units(file: &[u8]) -> Vec<&[u8]> {
    let mut units = Vec::new();
    let Some((_, mut rest)) = file.split_at_checked(32) else {
        return units;
    };
    while let Some((header, body)) = rest.split_at_checked(12) {
        let Some(&size) = header.first_chunk::<4>() else {
            break;
        };
        let Ok(len) = usize::try_from(u32::from_le_bytes(size)) else {
            break;
        };
        let Some((unit, next)) = body.split_at_checked(len) else {
            break;
        };
        units.push(unit);
        rest = next;
    }
    units
}

/// The real H.264 stream: the test pattern encoded at each of [`H264_SIZES`], a key
/// frame and P frames per size; encoded once per process.
fn real_h264() -> &'static [Vec<u8>] {
    static STREAM: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    STREAM.get_or_init(|| {
        let mut encoder =
            H264Encoder::new(H264Config::default()).expect("the default config is valid");
        let mut frame = VideoFrame::black(2, 2).expect("2x2 is a valid size");
        let mut units = Vec::new();
        for (w, h) in H264_SIZES {
            let format = VideoFormat::new(w, h, FrameRate::per_second(30).expect("30 fps"))
                .expect("a valid format");
            let pattern = TestPatternSource::new(format).expect("at least 64x64");
            for index in 0..H264_FRAMES_PER_SIZE {
                pattern.draw(index, &mut frame).expect("the pattern's size");
                if let Some(unit) = encoder.encode(&frame).expect("an even-sided frame encodes") {
                    units.push(unit.data);
                }
            }
        }
        units
    })
}

#[cfg(test)]
mod tests {
    use arbitrary::Unstructured;

    use super::*;

    #[test]
    fn replays_pseudo_random_scenarios() {
        // A fixed byte stream per seed stands in for the fuzzer's input.
        for seed in 0..40u64 {
            let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let bytes: Vec<u8> = (0..4096)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 24) as u8
                })
                .collect();
            let mut u = Unstructured::new(&bytes);
            let scenario = JitterScenario::arbitrary(&mut u).unwrap();
            run_jitter_ops(&scenario);
        }
    }

    #[test]
    fn a_plain_stream_replays() {
        let mut ops = Vec::new();
        for i in 0..200u16 {
            ops.push(JitterOp::Opus {
                seq: i.wrapping_add(65_500),
                timestamp: u32::from(i).wrapping_mul(960).wrapping_sub(9600),
                voiced: i % 50 < 30,
            });
            ops.push(JitterOp::Advance { ms: 20 });
            ops.push(JitterOp::Pull);
        }
        run_jitter_ops(&JitterScenario {
            stereo: false,
            max_packets: 100,
            ops,
        });
    }
}
