//! The group audio mixer: top-K speakers, mix-minus, one encoded stream per listener.
//!
//! Every 20 ms tick ([`Mixer::handle_timeout`]):
//!
//! 1. the K loudest *active* participants are picked from their RFC 6464 audio levels
//!    alone (nobody else's packet is decoded): a participant is active when a packet
//!    arrived this tick, it is neither muted nor on hold, and its level is at most
//!    [`MixerConfig::max_level`] (`-dBov`; smaller is louder; ties go to the smaller id);
//! 2. only those K packets are decoded (one [`Decoder`] per participant, kept while it
//!    stays in the room so its stream stays continuous);
//! 3. the frames are summed into an `i32` accumulator and clamped to `i16` (hard
//!    saturation: with K frames of at most `i16::MAX` each the `i32` sum never overflows,
//!    and the clamp turns what would wrap around into clipping; no soft limiter, so
//!    whatever is below full scale passes bit-exact);
//! 4. everyone who is not a speaker (muted participants included; on-hold ones excluded)
//!    shares ONE encoded mix: one [`MixOutput`] with every recipient in `to`, so the
//!    caller packetizes it once; each speaker gets its own mix-minus (the sum without its
//!    own frame), one encode per speaker.
//!
//! So a tick costs K decodes and at most K + 1 encodes whatever the room size, plus a
//! pass over the levels.
//!
//! With exactly two participants the mixer is a pass-through: each packet is forwarded
//! to the other side unchanged as it arrives ([`MixKind::Forwarded`]), nothing is decoded
//! or encoded. With fewer than two, nothing is sent.
//!
//! Call semantics: a muted participant's packets are never mixed or forwarded (it still
//! hears the others); a participant on hold neither sends nor receives; a removed
//! participant is gone at once, including from outputs not yet polled.
//!
//! The caller feeds at most one packet per participant per tick (from its jitter
//! buffer); a second one in the same tick replaces the first and is counted in
//! [`MixerStats::replaced`]. Opus encoders of speakers are pooled; when a listener
//! moves between the shared mix and its own mix-minus, its stream comes from another
//! encoder (opus decoders ride over this with at most a short artefact). Encoded packets
//! of 1-2 bytes (DTX: "nothing to transmit", RFC 6716 §2.1.9 / libopus docs) are not
//! output.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use crate::codec::{
    CodecError, Decoder, Encoder, FRAME_DURATION, MAX_PACKET_SAMPLES, MAX_PACKET_SIZE, OpusConfig,
};

/// Settings of a [`Mixer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MixerConfig {
    /// How many speakers are mixed at most (K, default 3).
    pub speakers: usize,
    /// The quietest RFC 6464 level (`-dBov`) that still counts as speech (default 70:
    /// comfort noise and silence, near 127, are never mixed).
    pub max_level: u8,
    /// Encoder settings of the mixed streams (and the decoders' channel count).
    pub opus: OpusConfig,
}

impl Default for MixerConfig {
    fn default() -> Self {
        Self {
            speakers: 3,
            max_level: 70,
            opus: OpusConfig::default(),
        }
    }
}

/// What a [`MixOutput`] carries.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MixKind<P> {
    /// A packet of `from`, forwarded unchanged (two-party pass-through).
    Forwarded {
        /// Who sent it.
        from: P,
    },
    /// The mix every non-speaking listener shares.
    SharedMix,
    /// A speaker's mix without its own voice.
    MixMinus,
}

/// One encoded opus packet for one or more listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MixOutput<P> {
    /// Who gets this packet, in id order (packetize once, send to each).
    pub to: Vec<P>,
    /// The opus packet (20 ms).
    pub packet: Vec<u8>,
    /// What the packet is.
    pub kind: MixKind<P>,
}

/// How the mixer currently runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MixMode {
    /// Fewer than two participants: nothing is sent.
    Idle,
    /// Two participants: packets are forwarded unchanged.
    PassThrough,
    /// Three or more: top-K decode, mix, encode.
    Mixing,
}

/// Counters of a [`Mixer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MixerStats {
    /// Ticks run.
    pub ticks: u64,
    /// Packets decoded.
    pub decoded: u64,
    /// Frames encoded.
    pub encoded: u64,
    /// Packets forwarded unchanged.
    pub forwarded: u64,
    /// Packets that failed to decode (mixed as silence).
    pub decode_errors: u64,
    /// Frames that failed to encode (not sent).
    pub encode_errors: u64,
    /// Packets dropped: from unknown, muted or on-hold participants.
    pub dropped: u64,
    /// Packets replaced by a later one within the same tick.
    pub replaced: u64,
}

/// The sans-IO group mixer of one call, generic over the participant id.
#[derive(Debug)]
pub struct Mixer<P> {
    config: MixerConfig,
    frame_len: usize,
    participants: BTreeMap<P, Participant>,
    /// Speakers of the last tick, loudest first.
    speakers: Vec<P>,
    shared_encoder: Encoder,
    speaker_encoders: BTreeMap<P, Encoder>,
    spare_encoders: Vec<Encoder>,
    /// Scratch: one decoded frame per speaker, the accumulator, decode and encode buffers.
    frames: Vec<Vec<i16>>,
    acc: Vec<i32>,
    pcm: Vec<i16>,
    decode_buf: Vec<i16>,
    encode_buf: Vec<u8>,
    next_tick: Option<Instant>,
    outputs: VecDeque<MixOutput<P>>,
    stats: MixerStats,
}

#[derive(Debug, Default)]
struct Participant {
    muted: bool,
    on_hold: bool,
    /// This tick's packet (`packet` is reused between ticks).
    has_packet: bool,
    level: u8,
    packet: Vec<u8>,
    decoder: Option<Decoder>,
}

impl<P: Ord + Clone> Mixer<P> {
    /// A mixer with no participants.
    ///
    /// # Errors
    /// [`CodecError`] when the opus settings are invalid or libopus refuses.
    pub fn new(config: MixerConfig) -> Result<Self, CodecError> {
        let frame_len = config.opus.channels.frame_len();
        let k = config.speakers;
        Ok(Self {
            shared_encoder: Encoder::new(config.opus)?,
            config,
            frame_len,
            participants: BTreeMap::new(),
            speakers: Vec::with_capacity(k),
            speaker_encoders: BTreeMap::new(),
            spare_encoders: Vec::new(),
            frames: vec![vec![0; frame_len]; k],
            acc: vec![0; frame_len],
            pcm: vec![0; frame_len],
            decode_buf: vec![0; MAX_PACKET_SAMPLES * config.opus.channels.count()],
            encode_buf: vec![0; MAX_PACKET_SIZE],
            next_tick: None,
            outputs: VecDeque::new(),
            stats: MixerStats::default(),
        })
    }

    /// Adds `participant` (not muted, not on hold); the tick timer starts with the
    /// first one. Adding a present participant changes nothing.
    pub fn add_participant(&mut self, participant: P, now: Instant) {
        self.participants.entry(participant).or_default();
        if self.next_tick.is_none() {
            self.next_tick = Some(now + FRAME_DURATION);
        }
    }

    /// Removes `participant`: it gets nothing more, not even outputs not yet polled.
    pub fn remove_participant(&mut self, participant: &P) {
        self.participants.remove(participant);
        self.speakers.retain(|p| p != participant);
        if let Some(mut encoder) = self.speaker_encoders.remove(participant) {
            self.recycle(&mut encoder);
            self.spare_encoders.push(encoder);
        }
        for output in &mut self.outputs {
            output.to.retain(|p| p != participant);
        }
        self.outputs.retain(|o| !o.to.is_empty());
        if self.participants.is_empty() {
            self.next_tick = None;
        }
    }

    /// Mutes or unmutes `participant`: a muted participant is never mixed or forwarded.
    pub fn set_muted(&mut self, participant: &P, muted: bool) {
        if let Some(p) = self.participants.get_mut(participant) {
            p.muted = muted;
        }
    }

    /// Puts `participant` on hold or resumes it: on hold it neither sends nor receives.
    pub fn set_on_hold(&mut self, participant: &P, on_hold: bool) {
        if let Some(p) = self.participants.get_mut(participant) {
            p.on_hold = on_hold;
        }
    }

    /// One 20 ms opus `packet` of `participant` with its RFC 6464 `level` (`-dBov`).
    /// In pass-through mode it is forwarded at once; otherwise it waits for the tick.
    pub fn handle_packet(&mut self, participant: &P, level: u8, packet: &[u8], _now: Instant) {
        let pass_through = self.mode() == MixMode::PassThrough;
        let Some(sender) = self.participants.get_mut(participant) else {
            self.stats.dropped += 1;
            return;
        };
        if sender.muted || sender.on_hold || packet.is_empty() {
            self.stats.dropped += 1;
            return;
        }
        if pass_through {
            let other = self
                .participants
                .iter()
                .find(|(p, s)| *p != participant && !s.on_hold)
                .map(|(p, _)| p.clone());
            if let Some(other) = other {
                self.stats.forwarded += 1;
                self.outputs.push_back(MixOutput {
                    to: vec![other],
                    packet: packet.to_vec(),
                    kind: MixKind::Forwarded {
                        from: participant.clone(),
                    },
                });
            }
            return;
        }
        if sender.has_packet {
            self.stats.replaced += 1;
        }
        sender.has_packet = true;
        sender.level = level;
        sender.packet.clear();
        sender.packet.extend_from_slice(packet);
    }

    /// Runs the 20 ms mixing tick when it is due; safe to call early.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(due) = self.next_tick else {
            return;
        };
        if now < due {
            return;
        }
        let mut next = due + FRAME_DURATION;
        if next <= now {
            // Far behind (the driver stalled): skip the missed ticks instead of bursting.
            next = now + FRAME_DURATION;
        }
        self.next_tick = Some(next);
        self.stats.ticks += 1;
        if self.mode() == MixMode::Mixing {
            self.tick();
        }
        for p in self.participants.values_mut() {
            p.has_packet = false;
        }
    }

    /// When [`Self::handle_timeout`] should be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_tick
    }

    /// The next packet to send, if any.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<MixOutput<P>> {
        self.outputs.pop_front()
    }

    /// Pass-through with two participants, mixing with more.
    pub fn mode(&self) -> MixMode {
        match self.participants.len() {
            0 | 1 => MixMode::Idle,
            2 => MixMode::PassThrough,
            _ => MixMode::Mixing,
        }
    }

    /// The speakers mixed at the last tick, loudest first.
    pub fn speakers(&self) -> &[P] {
        &self.speakers
    }

    /// Counters.
    pub fn stats(&self) -> MixerStats {
        self.stats
    }

    fn tick(&mut self) {
        self.select_speakers();
        self.release_encoders();

        // Decode the speakers only.
        self.acc.fill(0);
        let frame_len = self.frame_len;
        for (slot, id) in self.speakers.iter().enumerate() {
            let frame = &mut self.frames[slot];
            frame.fill(0);
            let Some(p) = self.participants.get_mut(id) else {
                continue;
            };
            let decoder = match &mut p.decoder {
                Some(d) => d,
                None => match Decoder::new(self.config.opus.channels) {
                    Ok(d) => p.decoder.insert(d),
                    Err(e) => {
                        tracing::debug!(%e, "mixer: decoder creation failed");
                        self.stats.decode_errors += 1;
                        continue;
                    }
                },
            };
            match decoder.decode(&p.packet, &mut self.decode_buf) {
                Ok(samples) => {
                    self.stats.decoded += 1;
                    let n = (samples * self.config.opus.channels.count()).min(frame_len);
                    frame[..n].copy_from_slice(&self.decode_buf[..n]);
                }
                Err(e) => {
                    tracing::debug!(%e, "mixer: undecodable packet mixed as silence");
                    self.stats.decode_errors += 1;
                }
            }
            for (a, &s) in self.acc.iter_mut().zip(frame.iter()) {
                *a += i32::from(s);
            }
        }

        // The shared mix for everyone else.
        let listeners: Vec<P> = self
            .participants
            .iter()
            .filter(|(id, p)| !p.on_hold && !self.speakers.contains(id))
            .map(|(id, _)| id.clone())
            .collect();
        if !listeners.is_empty() {
            saturate(&self.acc, None, &mut self.pcm);
            match self.shared_encoder.encode(&self.pcm, &mut self.encode_buf) {
                Ok(len) => {
                    self.stats.encoded += 1;
                    if len > 2 {
                        self.outputs.push_back(MixOutput {
                            to: listeners,
                            packet: self.encode_buf[..len].to_vec(),
                            kind: MixKind::SharedMix,
                        });
                    }
                }
                Err(e) => {
                    tracing::debug!(%e, "mixer: shared mix encode failed");
                    self.stats.encode_errors += 1;
                }
            }
        }

        // Mix-minus per speaker.
        for slot in 0..self.speakers.len() {
            let id = self.speakers[slot].clone();
            saturate(&self.acc, Some(&self.frames[slot]), &mut self.pcm);
            let encoder = match self.speaker_encoders.remove(&id) {
                Some(e) => Ok(e),
                None => match self.spare_encoders.pop() {
                    Some(e) => Ok(e),
                    None => Encoder::new(self.config.opus),
                },
            };
            let mut encoder = match encoder {
                Ok(e) => e,
                Err(e) => {
                    tracing::debug!(%e, "mixer: encoder creation failed");
                    self.stats.encode_errors += 1;
                    continue;
                }
            };
            match encoder.encode(&self.pcm, &mut self.encode_buf) {
                Ok(len) => {
                    self.stats.encoded += 1;
                    if len > 2 {
                        self.outputs.push_back(MixOutput {
                            to: vec![id.clone()],
                            packet: self.encode_buf[..len].to_vec(),
                            kind: MixKind::MixMinus,
                        });
                    }
                }
                Err(e) => {
                    tracing::debug!(%e, "mixer: mix-minus encode failed");
                    self.stats.encode_errors += 1;
                }
            }
            self.speaker_encoders.insert(id, encoder);
        }
    }

    /// The K loudest active participants, loudest first (ties: smaller id first), in
    /// one pass over the levels.
    fn select_speakers(&mut self) {
        self.speakers.clear();
        let k = self.config.speakers;
        if k == 0 {
            return;
        }
        // (level, id) kept sorted; at most K entries.
        let mut top: Vec<(u8, &P)> = Vec::with_capacity(k + 1);
        for (id, p) in &self.participants {
            if !p.has_packet || p.muted || p.on_hold || p.level > self.config.max_level {
                continue;
            }
            if top.len() == k && top.last().is_some_and(|&(l, _)| p.level >= l) {
                continue;
            }
            // Ids come in ascending order, so among equal levels the earlier one stays
            // first: insert after every entry that is at least as loud.
            let at = top.partition_point(|&(l, _)| l <= p.level);
            top.insert(at, (p.level, id));
            top.truncate(k);
        }
        self.speakers
            .extend(top.into_iter().map(|(_, id)| id.clone()));
    }

    /// Returns the encoders of participants that stopped speaking to the pool.
    fn release_encoders(&mut self) {
        let gone: Vec<P> = self
            .speaker_encoders
            .keys()
            .filter(|id| !self.speakers.contains(id))
            .cloned()
            .collect();
        for id in gone {
            if let Some(mut encoder) = self.speaker_encoders.remove(&id) {
                self.recycle(&mut encoder);
                self.spare_encoders.push(encoder);
            }
        }
    }

    fn recycle(&mut self, encoder: &mut Encoder) {
        if let Err(e) = encoder.reset() {
            tracing::debug!(%e, "mixer: encoder reset failed");
            self.stats.encode_errors += 1;
        }
    }
}

/// `acc` (minus `own`, when given) clamped to `i16`: clipping, never wrap-around.
fn saturate(acc: &[i32], own: Option<&[i16]>, out: &mut [i16]) {
    match own {
        Some(own) => {
            for ((o, &a), &s) in out.iter_mut().zip(acc).zip(own) {
                *o = (a - i32::from(s)).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
            }
        }
        None => {
            for (o, &a) in out.iter_mut().zip(acc) {
                *o = a.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{goertzel_power, mean_square, tone};
    use crate::codec::{FRAME_SAMPLES, SAMPLE_RATE};

    /// Frames ignored at the start of each received stream (encoder/decoder warm-up).
    const WARM_UP: usize = 10;
    /// A tone is present when it carries at least this share of the received power
    /// (-10 dB), absent below 1 % (-20 dB) (stated thresholds of the content checks).
    const PRESENT: f64 = 0.1;
    const ABSENT: f64 = 0.01;

    /// A talker: frequency and peak amplitude of its tone (`None`: sends nothing).
    type Talker = Option<(f64, f64)>;

    struct Room {
        mixer: Mixer<u32>,
        talkers: Vec<Talker>,
        encoders: Vec<Encoder>,
        decoders: Vec<Decoder>,
        /// Per listener: decoded PCM, one frame per tick (silence when nothing came).
        heard: Vec<Vec<i16>>,
        /// Per listener: packets received at the last tick.
        got: Vec<usize>,
        outputs: Vec<MixOutput<u32>>,
        now: Instant,
        sample: u64,
    }

    impl Room {
        fn new(config: MixerConfig, talkers: Vec<Talker>) -> Self {
            let now = Instant::now();
            let mut mixer = Mixer::new(config).expect("valid config");
            let n = talkers.len();
            for p in 0..n as u32 {
                mixer.add_participant(p, now);
            }
            Self {
                mixer,
                encoders: (0..n)
                    .map(|_| Encoder::new(OpusConfig::default()).expect("encoder"))
                    .collect(),
                decoders: (0..n)
                    .map(|_| Decoder::new(config.opus.channels).expect("decoder"))
                    .collect(),
                heard: vec![Vec::new(); n],
                got: vec![0; n],
                talkers,
                outputs: Vec::new(),
                now,
                sample: 0,
            }
        }

        fn run(&mut self, frames: usize) {
            let mut pcm = vec![0i16; FRAME_SAMPLES];
            for _ in 0..frames {
                for (p, talker) in self.talkers.iter().enumerate() {
                    let Some((freq, amplitude)) = *talker else {
                        continue;
                    };
                    tone(freq, amplitude, SAMPLE_RATE, self.sample, &mut pcm);
                    let packet = self.encoders[p].encode_to_vec(&pcm).expect("encodes");
                    let level = rfc6464_level(&pcm);
                    self.mixer
                        .handle_packet(&(p as u32), level, &packet, self.now);
                }
                self.sample += FRAME_SAMPLES as u64;
                self.now += FRAME_DURATION;
                self.mixer.handle_timeout(self.now);
                self.got.fill(0);
                let mut frame = vec![0i16; FRAME_SAMPLES];
                let mut fresh = vec![false; self.heard.len()];
                while let Some(output) = self.mixer.poll_output() {
                    for &to in &output.to {
                        let to = to as usize;
                        self.got[to] += 1;
                        let n = self.decoders[to]
                            .decode(&output.packet, &mut frame)
                            .expect("mixer output decodes");
                        assert_eq!(n, FRAME_SAMPLES);
                        assert!(!fresh[to], "one stream per listener per tick");
                        fresh[to] = true;
                        self.heard[to].extend_from_slice(&frame);
                    }
                    self.outputs.push(output);
                }
                for (to, fresh) in fresh.iter().enumerate() {
                    if !fresh {
                        self.heard[to].extend_from_slice(&[0; FRAME_SAMPLES]);
                    }
                }
            }
        }

        /// The share of `listener`'s received power (after warm-up) at `freq`.
        fn share(&self, listener: usize, freq: f64) -> f64 {
            let pcm = &self.heard[listener][WARM_UP * FRAME_SAMPLES..];
            let total = mean_square(pcm);
            if total == 0.0 {
                return 0.0;
            }
            goertzel_power(pcm, freq, SAMPLE_RATE) / total
        }

        fn assert_hears(&self, listener: usize, present: &[f64], absent: &[f64]) {
            for &f in present {
                let s = self.share(listener, f);
                assert!(s >= PRESENT, "listener {listener}: {f} Hz share {s:.4}");
            }
            for &f in absent {
                let s = self.share(listener, f);
                assert!(
                    s <= ABSENT,
                    "listener {listener}: {f} Hz share {s:.4} (should be absent)"
                );
            }
        }
    }

    /// RFC 6464 level (-dBov, 0..=127) of a frame.
    fn rfc6464_level(pcm: &[i16]) -> u8 {
        let rms = mean_square(pcm).sqrt();
        if rms < 1.0 {
            return 127;
        }
        (-20.0 * (rms / 32767.0).log10()).round().clamp(0.0, 127.0) as u8
    }

    const TONES: [f64; 3] = [300.0, 700.0, 1100.0];

    fn three_talkers_and_a_listener() -> Vec<Talker> {
        vec![
            Some((TONES[0], 8000.0)),
            Some((TONES[1], 8000.0)),
            Some((TONES[2], 8000.0)),
            None,
        ]
    }

    #[test]
    fn speakers_hear_the_others_and_not_themselves() {
        let mut room = Room::new(MixerConfig::default(), three_talkers_and_a_listener());
        room.run(50);
        assert_eq!(room.mixer.mode(), MixMode::Mixing);
        assert_eq!(room.mixer.speakers(), &[0, 1, 2]);
        room.assert_hears(0, &[TONES[1], TONES[2]], &[TONES[0]]);
        room.assert_hears(1, &[TONES[0], TONES[2]], &[TONES[1]]);
        room.assert_hears(2, &[TONES[0], TONES[1]], &[TONES[2]]);
        room.assert_hears(3, &TONES, &[]);
        let stats = room.mixer.stats();
        assert_eq!(stats.decoded, 3 * 50);
        assert_eq!(
            stats.encoded,
            4 * 50,
            "one shared mix + one mix-minus per speaker"
        );
        assert_eq!(stats.decode_errors + stats.encode_errors, 0);
    }

    #[test]
    fn listeners_share_one_encoded_mix() {
        let mut talkers = three_talkers_and_a_listener();
        talkers.extend([None, None, None]);
        let mut room = Room::new(MixerConfig::default(), talkers);
        room.run(5);
        let shared: Vec<_> = room
            .outputs
            .iter()
            .filter(|o| o.kind == MixKind::SharedMix)
            .collect();
        assert_eq!(shared.len(), 5, "one shared packet per tick");
        assert!(shared.iter().all(|o| o.to == vec![3, 4, 5, 6]));
        assert_eq!(room.mixer.stats().encoded, 4 * 5);
    }

    #[test]
    fn top_k_picks_the_loudest_by_level_without_decoding_the_rest() {
        let talkers = vec![
            Some((300.0, 2000.0)), // quietest: left out
            Some((700.0, 8000.0)),
            Some((1100.0, 6000.0)),
            Some((1500.0, 7000.0)),
            None,
        ];
        let mut room = Room::new(MixerConfig::default(), talkers);
        room.run(50);
        assert_eq!(room.mixer.speakers(), &[1, 3, 2], "loudest first");
        assert_eq!(
            room.mixer.stats().decoded,
            3 * 50,
            "the fourth is never decoded"
        );
        room.assert_hears(4, &[700.0, 1100.0, 1500.0], &[300.0]);
        room.assert_hears(0, &[700.0, 1100.0, 1500.0], &[300.0]);
    }

    #[test]
    fn a_muted_participant_is_not_mixed() {
        let mut room = Room::new(MixerConfig::default(), three_talkers_and_a_listener());
        room.mixer.set_muted(&2, true);
        room.run(50);
        assert_eq!(room.mixer.speakers(), &[0, 1]);
        room.assert_hears(3, &[TONES[0], TONES[1]], &[TONES[2]]);
        room.assert_hears(0, &[TONES[1]], &[TONES[0], TONES[2]]);
        // The muted participant still hears the others.
        room.assert_hears(2, &[TONES[0], TONES[1]], &[TONES[2]]);
    }

    #[test]
    fn a_participant_on_hold_neither_sends_nor_receives() {
        let mut room = Room::new(MixerConfig::default(), three_talkers_and_a_listener());
        room.mixer.set_on_hold(&2, true);
        room.run(50);
        assert!(room.heard[2].iter().all(|&s| s == 0), "nothing reaches 2");
        assert!(room.outputs.iter().all(|o| !o.to.contains(&2)));
        room.assert_hears(3, &[TONES[0], TONES[1]], &[TONES[2]]);
    }

    #[test]
    fn a_removed_participant_gets_nothing_from_the_next_tick() {
        let mut room = Room::new(MixerConfig::default(), three_talkers_and_a_listener());
        room.run(20);
        room.mixer.remove_participant(&1);
        room.outputs.clear();
        room.run(20);
        assert!(room.outputs.iter().all(|o| !o.to.contains(&1)));
        assert_eq!(room.got[1], 0);
        assert_eq!(room.mixer.speakers(), &[0, 2]);
        // Its late packets are dropped, not mixed.
        let dropped = room.mixer.stats().dropped;
        room.mixer
            .handle_packet(&1, 10, &[0xf8, 0xff, 0xfe], room.now);
        assert_eq!(room.mixer.stats().dropped, dropped + 1);
    }

    #[test]
    fn one_to_one_forwards_packets_unchanged() {
        let mut room = Room::new(
            MixerConfig::default(),
            vec![Some((300.0, 8000.0)), Some((700.0, 8000.0))],
        );
        assert_eq!(room.mixer.mode(), MixMode::PassThrough);
        // Feed by hand to compare bytes.
        let mut pcm = vec![0i16; FRAME_SAMPLES];
        tone(300.0, 8000.0, SAMPLE_RATE, 0, &mut pcm);
        let packet = room.encoders[0].encode_to_vec(&pcm).expect("encodes");
        room.mixer.handle_packet(&0, 20, &packet, room.now);
        let out = room.mixer.poll_output().expect("forwarded at once");
        assert_eq!(out.to, vec![1]);
        assert_eq!(out.packet, packet);
        assert_eq!(out.kind, MixKind::Forwarded { from: 0 });
        assert_eq!(room.mixer.poll_output(), None);
        room.run(50);
        room.assert_hears(1, &[300.0], &[700.0]);
        room.assert_hears(0, &[700.0], &[300.0]);
        let stats = room.mixer.stats();
        assert_eq!((stats.decoded, stats.encoded), (0, 0), "no transcoding");
        // Muted: nothing is forwarded; on hold: nothing reaches it.
        room.mixer.set_muted(&0, true);
        room.mixer.set_on_hold(&1, true);
        room.outputs.clear();
        room.run(5);
        assert!(room.outputs.is_empty());
    }

    #[test]
    fn saturation_clips_instead_of_wrapping() {
        let full = [i16::MAX, i16::MIN, 20_000, -20_000];
        let acc: Vec<i32> = full.iter().map(|&s| 2 * i32::from(s)).collect();
        let mut out = [0i16; 4];
        saturate(&acc, None, &mut out);
        assert_eq!(out, [i16::MAX, i16::MIN, i16::MAX, i16::MIN]);
        // Mix-minus of an in-phase pair gives the other one back exactly.
        saturate(&acc, Some(&full), &mut out);
        assert_eq!(out, full);
    }

    #[test]
    fn two_full_scale_in_phase_talkers_clip_not_wrap() {
        let talkers = vec![Some((500.0, 32767.0)), Some((500.0, 32767.0)), None];
        let mut room = Room::new(MixerConfig::default(), talkers);
        room.run(30);
        // A wrapped sum would flip sign at every peak and smear the power over the
        // spectrum; a clipped one stays a (squarish) 500 Hz wave in phase with the input.
        let heard = &room.heard[2][WARM_UP * FRAME_SAMPLES..];
        let share = room.share(2, 500.0);
        assert!(share > 0.7, "500 Hz share {share:.3}");
        let rms = mean_square(heard).sqrt();
        assert!(
            rms > 20_000.0,
            "loud, as clipped full scale is: rms {rms:.0}"
        );
    }
}
