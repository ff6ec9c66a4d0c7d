//! The echo test service (`8:echo123`): the call a user makes to check their
//! microphone and speaker.
//!
//! Sans-IO, driven like the rest of the media plane. The bot is a local participant of
//! the call's media room: it takes the caller's opus packets ([`EchoBot::handle_audio`])
//! and hands out its own ([`EchoBot::poll_output`]), one every 20 ms:
//!
//! 1. a prompt: a generated two-note chime, rising (no speech engine is required);
//! 2. recording: the caller's next [`EchoConfig::record`] of audio (5 s), kept as the
//!    opus packets that arrived, untouched;
//! 3. playback: those packets, in order and at their own pace (gaps the caller left
//!    silent, DTX or loss, stay gaps);
//! 4. a closing chime, falling; then [`EchoOutput::Done`]: the service hangs up with a
//!    normal end reason.
//!
//! Levels for the mixer's audio-level field are measured by decoding each packet once
//! as it is recorded.

use std::collections::VecDeque;
use std::f64::consts::PI;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::codec::{
    Channels, CodecError, Decoder, Encoder, FRAME_DURATION, FRAME_SAMPLES, OpusConfig, SAMPLE_RATE,
};
use crate::level::AudioLevel;

/// Encoded packets with their RFC 6464 levels.
type Packets = VecDeque<(u8, Arc<[u8]>)>;

/// Settings of an [`EchoBot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EchoConfig {
    /// How much of the caller's audio is recorded and played back (default 5 s).
    pub record: Duration,
    /// Longest the bot waits for the caller's first packet before recording starts
    /// anyway (default 2 s), so a silent caller still gets through the test.
    pub wait_for_audio: Duration,
}

impl Default for EchoConfig {
    fn default() -> Self {
        Self {
            record: Duration::from_secs(5),
            wait_for_audio: Duration::from_secs(2),
        }
    }
}

/// What an [`EchoBot`] hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EchoOutput {
    /// One 20 ms opus packet to send into the call.
    Audio {
        /// Sequence number, from 0.
        seq: u64,
        /// RTP time (48 kHz).
        rtp_time: u64,
        /// RFC 6464 level (`-dBov`).
        level: u8,
        /// The packet.
        packet: Arc<[u8]>,
    },
    /// The test is over: hang up.
    Done,
}

/// Where the bot is in the test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EchoPhase {
    /// Waiting for the caller's media to connect ([`EchoBot::start`]): whatever it
    /// played before could not be heard.
    Waiting,
    /// Playing the opening chime.
    Prompt,
    /// Recording the caller.
    Recording,
    /// Playing the recording back.
    Playback,
    /// Playing the closing chime.
    Closing,
    /// Over.
    Done,
}

/// One echo test call. See the [module docs](self).
pub struct EchoBot {
    config: EchoConfig,
    phase: EchoPhase,
    /// Opening and closing chimes, encoded once.
    opening: Packets,
    closing: Packets,
    /// Recorded packets with their level and offset from the recording's start.
    recorded: VecDeque<(Duration, u8, Arc<[u8]>)>,
    decoder: Decoder,
    pcm: Vec<i16>,
    record_started: Option<Instant>,
    waiting_since: Option<Instant>,
    playback_started: Option<Instant>,
    next_tick: Instant,
    seq: u64,
    rtp_time: u64,
    outputs: VecDeque<EchoOutput>,
}

impl std::fmt::Debug for EchoBot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoBot")
            .field("phase", &self.phase)
            .field("recorded", &self.recorded.len())
            .finish_non_exhaustive()
    }
}

impl EchoBot {
    /// A bot waiting for [`EchoBot::start`].
    ///
    /// # Errors
    /// [`CodecError`] when libopus cannot be set up.
    pub fn new(config: EchoConfig, now: Instant) -> Result<Self, CodecError> {
        let opus = OpusConfig {
            dtx: false,
            ..OpusConfig::default()
        };
        let mut encoder = Encoder::new(opus)?;
        let opening = chime(&mut encoder, &[660.0, 990.0])?;
        let closing = chime(&mut encoder, &[990.0, 660.0])?;
        Ok(Self {
            config,
            phase: EchoPhase::Waiting,
            opening,
            closing,
            recorded: VecDeque::new(),
            decoder: Decoder::new(Channels::Mono)?,
            pcm: vec![0; crate::codec::MAX_PACKET_SAMPLES],
            record_started: None,
            waiting_since: None,
            playback_started: None,
            next_tick: now,
            seq: 0,
            rtp_time: 0,
            outputs: VecDeque::new(),
        })
    }

    /// The caller can hear us now: the prompt starts at `now`. Later calls change
    /// nothing.
    pub fn start(&mut self, now: Instant) {
        if self.phase == EchoPhase::Waiting {
            self.phase = EchoPhase::Prompt;
            self.next_tick = now;
        }
    }

    /// Where the test is.
    #[must_use]
    pub fn phase(&self) -> EchoPhase {
        self.phase
    }

    /// One opus packet of the caller's audio. Kept only while recording.
    pub fn handle_audio(&mut self, packet: &[u8], now: Instant) {
        if self.phase != EchoPhase::Recording || packet.is_empty() {
            return;
        }
        let started = *self.record_started.get_or_insert(now);
        let offset = now.saturating_duration_since(started);
        if offset >= self.config.record {
            return;
        }
        // A packet that does not decode is played back as it came (the caller's
        // decoder conceals it); its level counts as silence.
        let level = match self.decoder.decode(packet, &mut self.pcm) {
            Ok(n) => AudioLevel::from_pcm(&self.pcm[..n]).minus_dbov(),
            Err(_) => AudioLevel::SILENCE.minus_dbov(),
        };
        self.recorded.push_back((offset, level, Arc::from(packet)));
    }

    /// Runs the 20 ms tick when due.
    pub fn handle_timeout(&mut self, now: Instant) {
        while !matches!(self.phase, EchoPhase::Done | EchoPhase::Waiting) && now >= self.next_tick {
            let tick = self.next_tick;
            self.next_tick += FRAME_DURATION;
            self.step(tick);
        }
    }

    /// When [`Self::handle_timeout`] is due, until the test is over.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!matches!(self.phase, EchoPhase::Done | EchoPhase::Waiting)).then_some(self.next_tick)
    }

    /// The next output.
    pub fn poll_output(&mut self) -> Option<EchoOutput> {
        self.outputs.pop_front()
    }

    fn step(&mut self, tick: Instant) {
        match self.phase {
            EchoPhase::Prompt => match self.opening.pop_front() {
                Some((level, packet)) => self.emit(level, packet),
                None => {
                    self.phase = EchoPhase::Recording;
                    self.waiting_since = Some(tick);
                    self.advance_silently();
                }
            },
            EchoPhase::Recording => {
                self.advance_silently();
                let waited = self.waiting_since.is_some_and(|w| {
                    tick.saturating_duration_since(w) >= self.config.wait_for_audio
                });
                let start = match self.record_started {
                    Some(s) => s,
                    None if waited => *self.record_started.get_or_insert(tick),
                    None => return,
                };
                if tick.saturating_duration_since(start) >= self.config.record {
                    self.phase = EchoPhase::Playback;
                    self.playback_started = Some(tick);
                }
            }
            EchoPhase::Playback => {
                let elapsed = self
                    .playback_started
                    .map_or(Duration::ZERO, |s| tick.saturating_duration_since(s));
                match self.recorded.front() {
                    Some((offset, _, _)) if *offset <= elapsed => {
                        if let Some((_, level, packet)) = self.recorded.pop_front() {
                            self.emit(level, packet);
                        }
                    }
                    Some(_) => self.advance_silently(),
                    None => {
                        self.phase = EchoPhase::Closing;
                        self.advance_silently();
                    }
                }
            }
            EchoPhase::Closing => match self.closing.pop_front() {
                Some((level, packet)) => self.emit(level, packet),
                None => {
                    self.phase = EchoPhase::Done;
                    self.outputs.push_back(EchoOutput::Done);
                }
            },
            EchoPhase::Waiting | EchoPhase::Done => {}
        }
    }

    fn emit(&mut self, level: u8, packet: Arc<[u8]>) {
        self.outputs.push_back(EchoOutput::Audio {
            seq: self.seq,
            rtp_time: self.rtp_time,
            level,
            packet,
        });
        self.seq += 1;
        self.rtp_time += FRAME_SAMPLES as u64;
    }

    /// Time passes without a packet (the listener sees a gap, as with DTX).
    fn advance_silently(&mut self) {
        self.rtp_time += FRAME_SAMPLES as u64;
    }
}

/// A chime of `notes` (200 ms each, soft attack and decay), encoded into 20 ms packets.
fn chime(encoder: &mut Encoder, notes: &[f64]) -> Result<Packets, CodecError> {
    const NOTE: usize = 10; // frames of 20 ms
    let mut packets = VecDeque::new();
    let mut pcm = vec![0i16; FRAME_SAMPLES];
    let total = (NOTE * FRAME_SAMPLES) as f64;
    for &freq in notes {
        for frame in 0..NOTE {
            for (i, s) in pcm.iter_mut().enumerate() {
                let n = (frame * FRAME_SAMPLES + i) as f64;
                let envelope = (n / 480.0).min(1.0) * (1.0 - n / total).max(0.0);
                let v = 0.3 * envelope * (2.0 * PI * freq * n / f64::from(SAMPLE_RATE)).sin();
                *s = (v * f64::from(i16::MAX)) as i16;
            }
            let level = AudioLevel::from_pcm(&pcm).minus_dbov();
            packets.push_back((level, Arc::from(encoder.encode_to_vec(&pcm)?)));
        }
    }
    Ok(packets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{goertzel_power, mean_square, tone};

    /// Runs a bot for `d`, feeding it a caller tone while it records; returns what
    /// it played, decoded, and whether it finished.
    fn run(caller: Option<f64>, d: Duration) -> (Vec<i16>, Vec<EchoPhase>, bool) {
        let t0 = Instant::now();
        let mut bot = EchoBot::new(EchoConfig::default(), t0).unwrap();
        bot.start(t0);
        let mut enc = Encoder::new(OpusConfig {
            dtx: false,
            ..OpusConfig::default()
        })
        .unwrap();
        let mut dec = Decoder::new(Channels::Mono).unwrap();
        let (mut played, mut phases, mut done) = (Vec::new(), Vec::new(), false);
        let mut sent = 0u64;
        let mut now = t0;
        while now < t0 + d {
            if let Some(f) = caller {
                let mut pcm = vec![0i16; FRAME_SAMPLES];
                tone(f, 6000.0, SAMPLE_RATE, sent, &mut pcm);
                sent += FRAME_SAMPLES as u64;
                bot.handle_audio(&enc.encode_to_vec(&pcm).unwrap(), now);
            }
            bot.handle_timeout(now);
            if phases.last() != Some(&bot.phase()) {
                phases.push(bot.phase());
            }
            while let Some(out) = bot.poll_output() {
                match out {
                    EchoOutput::Audio { packet, .. } => {
                        let mut pcm = vec![0i16; FRAME_SAMPLES];
                        let n = dec.decode(&packet, &mut pcm).unwrap();
                        played.extend_from_slice(&pcm[..n]);
                    }
                    EchoOutput::Done => done = true,
                }
            }
            now += FRAME_DURATION;
        }
        (played, phases, done)
    }

    fn share(samples: &[i16], f: f64) -> f64 {
        let (mut t, mut all) = (0.0, 0.0);
        for w in samples.chunks_exact(FRAME_SAMPLES) {
            t += goertzel_power(w, f, SAMPLE_RATE);
            all += mean_square(w);
        }
        t / all.max(1e-9)
    }

    #[test]
    fn plays_back_what_the_caller_said_between_two_chimes() {
        let (played, phases, done) = run(Some(523.0), Duration::from_secs(12));
        assert!(done);
        assert_eq!(
            phases,
            vec![
                EchoPhase::Prompt,
                EchoPhase::Recording,
                EchoPhase::Playback,
                EchoPhase::Closing,
                EchoPhase::Done
            ]
        );
        // 20 chime frames, 250 recorded frames (5 s), 20 chime frames.
        assert_eq!(played.len(), (20 + 250 + 20) * FRAME_SAMPLES);
        let middle = &played[25 * FRAME_SAMPLES..265 * FRAME_SAMPLES];
        assert!(share(middle, 523.0) > 0.5, "the caller's tone comes back");
        let opening = &played[..10 * FRAME_SAMPLES];
        assert!(
            share(opening, 660.0) > 0.3,
            "the opening chime's first note"
        );
    }

    #[test]
    fn a_silent_caller_still_gets_to_the_end() {
        let (played, _, done) = run(None, Duration::from_secs(12));
        assert!(done, "recording starts after the wait even without audio");
        assert_eq!(played.len(), 40 * FRAME_SAMPLES, "only the chimes");
    }

    #[test]
    fn garbage_from_the_caller_is_played_back_not_fatal() {
        let t0 = Instant::now();
        let mut bot = EchoBot::new(EchoConfig::default(), t0).unwrap();
        bot.start(t0);
        let mut now = t0;
        for _ in 0..600 {
            bot.handle_audio(&[0xff, 0xfe, 0x01], now);
            bot.handle_timeout(now);
            while bot.poll_output().is_some() {}
            now += FRAME_DURATION;
        }
        assert_eq!(bot.phase(), EchoPhase::Done);
    }
}
