//! Opus encoder and decoder wrappers (libopus through the `opus` crate).
//!
//! Ringwire's audio frame: 48 kHz, 20 ms ([`FRAME_SAMPLES`] = 960 samples per channel),
//! interleaved `i16` PCM, mono unless [`OpusConfig::channels`] says stereo. The encoder
//! runs with in-band FEC (LBRR) and DTX on by default.
//!
//! Loss recovery follows shared/notes/codecs.md: when packet `i` is lost and `i + 1`
//! has arrived, [`Decoder::decode_fec`] rebuilds `i` from the LBRR data in `i + 1`, and
//! then `i + 1` is decoded normally with [`Decoder::decode`]; without `i + 1`,
//! [`Decoder::conceal`] runs libopus' packet loss concealment (PLC). Both fill exactly
//! one 20 ms frame.
//!
//! ```
//! use ringwire_media::codec::{Decoder, Encoder, OpusConfig, FRAME_SAMPLES, MAX_PACKET_SIZE};
//!
//! let config = OpusConfig::default();
//! let mut encoder = Encoder::new(config)?;
//! let mut decoder = Decoder::new(config.channels)?;
//! let pcm = vec![0i16; FRAME_SAMPLES];
//! let mut packet = [0u8; MAX_PACKET_SIZE];
//! let len = encoder.encode(&pcm, &mut packet)?;
//! let mut out = vec![0i16; FRAME_SAMPLES];
//! assert_eq!(decoder.decode(&packet[..len], &mut out)?, FRAME_SAMPLES);
//! # Ok::<(), ringwire_media::codec::CodecError>(())
//! ```

use std::time::Duration;

/// The sample rate of every Ringwire audio frame, in Hz.
pub const SAMPLE_RATE: u32 = 48_000;
/// The input rate of a [narrowband](Encoder::narrowband) encoder (G.711's).
pub const NARROWBAND_RATE: u32 = 8_000;

/// The duration of one audio frame.
pub const FRAME_DURATION: Duration = Duration::from_millis(20);

/// Samples per channel in one 20 ms frame at 48 kHz.
pub const FRAME_SAMPLES: usize = 960;

/// The largest opus packet the wrappers produce or accept: an RTP payload that fits a
/// 1500-byte MTU. A single 20 ms opus frame is at most 1275 bytes (RFC 6716 §3.2.1).
pub const MAX_PACKET_SIZE: usize = 1500;

/// The largest number of samples per channel one opus packet can carry (120 ms at
/// 48 kHz, RFC 6716 §3.2.5); a buffer this large decodes any valid packet.
pub const MAX_PACKET_SAMPLES: usize = 5760;

/// Mono or stereo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Channels {
    /// One channel (the default for calls).
    #[default]
    Mono,
    /// Two interleaved channels, left first.
    Stereo,
}

impl Channels {
    /// The number of channels: 1 or 2.
    #[must_use]
    pub const fn count(self) -> usize {
        match self {
            Channels::Mono => 1,
            Channels::Stereo => 2,
        }
    }

    /// Interleaved samples in one 20 ms frame with this many channels.
    #[must_use]
    pub const fn frame_len(self) -> usize {
        FRAME_SAMPLES * self.count()
    }

    fn to_opus(self) -> opus::Channels {
        match self {
            Channels::Mono => opus::Channels::Mono,
            Channels::Stereo => opus::Channels::Stereo,
        }
    }
}

/// Encoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusConfig {
    /// Mono (default) or stereo.
    pub channels: Channels,
    /// Target bitrate in bits per second, 6000..=510000 (default 32000).
    pub bitrate: u32,
    /// In-band forward error correction (LBRR), default on.
    pub fec: bool,
    /// Discontinuous transmission: tiny packets, then none, on silence (default on).
    pub dtx: bool,
    /// Expected packet loss in percent, 0..=100 (default 10); libopus spends more of
    /// the bitrate on FEC the higher it is.
    pub packet_loss_perc: u8,
    /// Encoder complexity 0..=10 (default 5: the mixer encodes one stream per speaker,
    /// so a middle setting keeps a tick cheap).
    pub complexity: u8,
}

impl Default for OpusConfig {
    fn default() -> Self {
        Self {
            channels: Channels::Mono,
            bitrate: 32_000,
            fec: true,
            dtx: true,
            packet_loss_perc: 10,
            complexity: 5,
        }
    }
}

/// What went wrong in the codec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The PCM given to the encoder is not one 20 ms frame (caller's mistake).
    #[error("wrong frame size: expected {expected} samples, got {got}")]
    WrongFrameSize {
        /// Interleaved samples expected (960 × channels).
        expected: usize,
        /// Interleaved samples given.
        got: usize,
    },
    /// The output buffer for decoded PCM cannot hold the frame (caller's mistake).
    #[error("output buffer too small: need {needed} samples, got {got}")]
    OutputTooSmall {
        /// Interleaved samples needed.
        needed: usize,
        /// Interleaved samples available.
        got: usize,
    },
    /// A packet to decode is larger than [`MAX_PACKET_SIZE`] (peer's fault).
    #[error("packet too large: {len} bytes, at most {max}")]
    PacketTooLarge {
        /// The packet's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An empty packet was given to [`Decoder::decode`]; use [`Decoder::conceal`] for a
    /// missing packet.
    #[error("empty packet")]
    EmptyPacket,
    /// An [`OpusConfig`] value is out of range (caller's mistake).
    #[error("invalid opus config: {0}")]
    InvalidConfig(&'static str),
    /// libopus refused: a corrupt packet, a too small output buffer, an internal error.
    #[error("libopus {function}: {message}")]
    Opus {
        /// The libopus function that failed.
        function: &'static str,
        /// libopus' description of the error (`opus_strerror`).
        message: &'static str,
    },
}

impl From<opus::Error> for CodecError {
    fn from(e: opus::Error) -> Self {
        CodecError::Opus {
            function: e.function(),
            message: e.description(),
        }
    }
}

/// An opus encoder for 20 ms frames at 48 kHz (or 8 kHz: [`Encoder::narrowband`]).
pub struct Encoder {
    inner: opus::Encoder,
    config: OpusConfig,
    /// Interleaved samples in one 20 ms frame at the input rate.
    frame_len: usize,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Encoder {
    /// Creates an encoder (application VoIP) with `config`.
    ///
    /// # Errors
    /// [`CodecError::InvalidConfig`] when a value is out of range, [`CodecError::Opus`]
    /// when libopus refuses.
    pub fn new(config: OpusConfig) -> Result<Self, CodecError> {
        Self::at_rate(config, SAMPLE_RATE)
    }

    /// An encoder fed 8 kHz PCM (`160 × channels` samples per 20 ms frame), for
    /// narrowband sources such as phone legs: resampling them to 48 kHz only for opus
    /// to band-limit them again costs more than encoding them (opus runs SILK
    /// narrowband on such input). Its packets decode at 48 kHz like any other.
    ///
    /// # Errors
    /// As [`Encoder::new`].
    pub fn narrowband(config: OpusConfig) -> Result<Self, CodecError> {
        Self::at_rate(config, NARROWBAND_RATE)
    }

    fn at_rate(config: OpusConfig, rate: u32) -> Result<Self, CodecError> {
        validate(&config)?;
        let mut inner =
            opus::Encoder::new(rate, config.channels.to_opus(), opus::Application::Voip)?;
        inner.set_bitrate(opus::Bitrate::Bits(bitrate_i32(config.bitrate)))?;
        inner.set_inband_fec(config.fec)?;
        inner.set_dtx(config.dtx)?;
        inner.set_packet_loss_perc(i32::from(config.packet_loss_perc))?;
        inner.set_complexity(i32::from(config.complexity))?;
        inner.set_vbr(true)?;
        Ok(Self {
            inner,
            frame_len: frame_len_at(config.channels, rate),
            config,
        })
    }

    /// The settings in force.
    #[must_use]
    pub fn config(&self) -> OpusConfig {
        self.config
    }

    /// Changes the target bitrate (bits per second, 6000..=510000).
    ///
    /// # Errors
    /// [`CodecError::InvalidConfig`] when out of range.
    pub fn set_bitrate(&mut self, bitrate: u32) -> Result<(), CodecError> {
        validate(&OpusConfig {
            bitrate,
            ..self.config
        })?;
        self.inner
            .set_bitrate(opus::Bitrate::Bits(bitrate_i32(bitrate)))?;
        self.config.bitrate = bitrate;
        Ok(())
    }

    /// Changes the expected packet loss (percent, 0..=100), which steers FEC.
    ///
    /// # Errors
    /// [`CodecError::InvalidConfig`] when over 100.
    pub fn set_packet_loss_perc(&mut self, perc: u8) -> Result<(), CodecError> {
        validate(&OpusConfig {
            packet_loss_perc: perc,
            ..self.config
        })?;
        self.inner.set_packet_loss_perc(i32::from(perc))?;
        self.config.packet_loss_perc = perc;
        Ok(())
    }

    /// Encodes one 20 ms frame of interleaved PCM (`960 × channels` samples; `160 ×
    /// channels` for a [narrowband](Encoder::narrowband) encoder) into `out`,
    /// returning the packet's length. With DTX on, silence yields packets of a
    /// few bytes (1-byte packets are "nothing new" and need not be sent).
    ///
    /// # Errors
    /// [`CodecError::WrongFrameSize`] when `pcm` is not one frame; [`CodecError::Opus`]
    /// (buffer too small) when `out` cannot hold the packet. Size `out` with
    /// [`MAX_PACKET_SIZE`].
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        let expected = self.frame_len;
        if pcm.len() != expected {
            return Err(CodecError::WrongFrameSize {
                expected,
                got: pcm.len(),
            });
        }
        let limit = out.len().min(MAX_PACKET_SIZE);
        let out = out.get_mut(..limit).unwrap_or_default();
        Ok(self.inner.encode(pcm, out)?)
    }

    /// Like [`encode`](Self::encode), into a new `Vec` (off the hot path).
    ///
    /// # Errors
    /// As [`encode`](Self::encode).
    pub fn encode_to_vec(&mut self, pcm: &[i16]) -> Result<Vec<u8>, CodecError> {
        let mut out = vec![0; MAX_PACKET_SIZE];
        let len = self.encode(pcm, &mut out)?;
        out.truncate(len);
        Ok(out)
    }

    /// Whether the last encoded frame was in DTX (silence, nothing worth sending).
    ///
    /// # Errors
    /// [`CodecError::Opus`] when libopus refuses the query.
    pub fn in_dtx(&mut self) -> Result<bool, CodecError> {
        Ok(self.inner.get_in_dtx()?)
    }

    /// Resets the encoder's state, as for a new stream.
    ///
    /// # Errors
    /// [`CodecError::Opus`] when libopus refuses.
    pub fn reset(&mut self) -> Result<(), CodecError> {
        Ok(self.inner.reset_state()?)
    }
}

/// Interleaved samples in a 20 ms frame at `rate` (48 or 8 kHz): 960 or 160 per channel.
fn frame_len_at(channels: Channels, rate: u32) -> usize {
    channels.frame_len() / (SAMPLE_RATE / rate) as usize
}

/// An opus decoder producing 48 kHz interleaved PCM (or 8 kHz: [`Decoder::narrowband`]).
pub struct Decoder {
    inner: opus::Decoder,
    channels: Channels,
    /// Interleaved samples in one 20 ms frame at the output rate.
    frame_len: usize,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl Decoder {
    /// Creates a decoder with `channels` output channels.
    ///
    /// # Errors
    /// [`CodecError::Opus`] when libopus refuses.
    pub fn new(channels: Channels) -> Result<Self, CodecError> {
        Self::at_rate(channels, SAMPLE_RATE)
    }

    /// A decoder producing 8 kHz PCM (`160 × channels` samples per 20 ms), for
    /// narrowband sinks such as phone legs: opus decodes straight to that rate, which
    /// costs less than decoding at 48 kHz and downsampling.
    ///
    /// # Errors
    /// As [`Decoder::new`].
    pub fn narrowband(channels: Channels) -> Result<Self, CodecError> {
        Self::at_rate(channels, NARROWBAND_RATE)
    }

    fn at_rate(channels: Channels, rate: u32) -> Result<Self, CodecError> {
        let inner = opus::Decoder::new(rate, channels.to_opus())?;
        Ok(Self {
            inner,
            channels,
            frame_len: frame_len_at(channels, rate),
        })
    }

    /// The output channels.
    #[must_use]
    pub fn channels(&self) -> Channels {
        self.channels
    }

    /// Decodes `packet` into `out`, returning the samples per channel written (960 for
    /// a 20 ms packet). `out` must hold the packet's duration; [`MAX_PACKET_SAMPLES`] ×
    /// channels holds any.
    ///
    /// # Errors
    /// [`CodecError::EmptyPacket`], [`CodecError::PacketTooLarge`], or
    /// [`CodecError::Opus`] for a corrupt packet or a too small `out`.
    pub fn decode(&mut self, packet: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        check_packet(packet)?;
        let limit = out.len().min(MAX_PACKET_SAMPLES * self.channels.count());
        let out = out.get_mut(..limit).unwrap_or_default();
        Ok(self.inner.decode(packet, out, false)?)
    }

    /// Packet loss concealment: fills one 20 ms frame (the first `960 × channels`
    /// samples of `out`, 160 for a narrowband decoder) by extrapolating from what was
    /// decoded before. Returns the samples per channel (960, or 160).
    ///
    /// # Errors
    /// [`CodecError::OutputTooSmall`] when `out` is shorter than a frame.
    pub fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError> {
        let frame = self.frame_slice(out)?;
        Ok(self.inner.decode(&[], frame, false)?)
    }

    /// Rebuilds a lost 20 ms frame from the in-band FEC (LBRR) data of the packet that
    /// follows it, into the first `960 × channels` samples of `out` (160 for a
    /// narrowband decoder). Afterwards decode
    /// `next_packet` normally with [`decode`](Self::decode) for its own frame. When
    /// `next_packet` carries no FEC, libopus falls back to PLC. Returns the samples per
    /// channel.
    ///
    /// # Errors
    /// As [`decode`](Self::decode), and [`CodecError::OutputTooSmall`].
    pub fn decode_fec(&mut self, next_packet: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        check_packet(next_packet)?;
        let frame = self.frame_slice(out)?;
        Ok(self.inner.decode(next_packet, frame, true)?)
    }

    /// Resets the decoder's state, as for a new stream.
    ///
    /// # Errors
    /// [`CodecError::Opus`] when libopus refuses.
    pub fn reset(&mut self) -> Result<(), CodecError> {
        Ok(self.inner.reset_state()?)
    }

    fn frame_slice<'a>(&self, out: &'a mut [i16]) -> Result<&'a mut [i16], CodecError> {
        let needed = self.frame_len;
        let got = out.len();
        out.get_mut(..needed)
            .ok_or(CodecError::OutputTooSmall { needed, got })
    }
}

/// The samples per channel `packet` decodes to at 48 kHz, read from its TOC byte(s)
/// (RFC 6716 §3.1) without decoding.
///
/// # Errors
/// [`CodecError::EmptyPacket`], [`CodecError::PacketTooLarge`], or
/// [`CodecError::Opus`] (invalid packet).
pub fn packet_samples(packet: &[u8]) -> Result<usize, CodecError> {
    check_packet(packet)?;
    Ok(opus::packet::get_nb_samples(packet, SAMPLE_RATE)?)
}

fn check_packet(packet: &[u8]) -> Result<(), CodecError> {
    if packet.is_empty() {
        return Err(CodecError::EmptyPacket);
    }
    if packet.len() > MAX_PACKET_SIZE {
        return Err(CodecError::PacketTooLarge {
            len: packet.len(),
            max: MAX_PACKET_SIZE,
        });
    }
    Ok(())
}

fn validate(config: &OpusConfig) -> Result<(), CodecError> {
    if !(6_000..=510_000).contains(&config.bitrate) {
        return Err(CodecError::InvalidConfig("bitrate must be 6000..=510000"));
    }
    if config.packet_loss_perc > 100 {
        return Err(CodecError::InvalidConfig(
            "packet_loss_perc must be 0..=100",
        ));
    }
    if config.complexity > 10 {
        return Err(CodecError::InvalidConfig("complexity must be 0..=10"));
    }
    Ok(())
}

fn bitrate_i32(bitrate: u32) -> i32 {
    // validate() bounds the bitrate to 510000, far below i32::MAX.
    i32::try_from(bitrate).unwrap_or(510_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{dominant_frequency, tone, tone_snr};

    fn tone_frames(freq: f64, amplitude: f64, frames: usize, channels: Channels) -> Vec<Vec<i16>> {
        (0..frames)
            .map(|i| {
                let mut mono = vec![0i16; FRAME_SAMPLES];
                tone(
                    freq,
                    amplitude,
                    SAMPLE_RATE,
                    (i * FRAME_SAMPLES) as u64,
                    &mut mono,
                );
                mono.iter()
                    .flat_map(|&s| std::iter::repeat_n(s, channels.count()))
                    .collect()
            })
            .collect()
    }

    /// A speech-like signal: a harmonic series whose pitch glides and whose loudness
    /// moves, so PLC (which extrapolates the last pitch period) cannot guess it.
    fn speechlike(frames: usize) -> Vec<Vec<i16>> {
        let mut phase = 0.0f64;
        let mut frames_out = Vec::new();
        for f in 0..frames {
            let mut frame = vec![0i16; FRAME_SAMPLES];
            for (i, s) in frame.iter_mut().enumerate() {
                let t = (f * FRAME_SAMPLES + i) as f64 / f64::from(SAMPLE_RATE);
                let pitch = 140.0 + 60.0 * (2.0 * std::f64::consts::PI * 3.1 * t).sin();
                phase += 2.0 * std::f64::consts::PI * pitch / f64::from(SAMPLE_RATE);
                let env = 0.55 + 0.45 * (2.0 * std::f64::consts::PI * 4.3 * t).sin();
                let v: f64 = (1..=8)
                    .map(|h| (phase * f64::from(h)).sin() / f64::from(h))
                    .sum();
                *s = (v * env * 7000.0) as i16;
            }
            frames_out.push(frame);
        }
        frames_out
    }

    fn snr_db(reference: &[i16], test: &[i16]) -> f64 {
        let (mut sig, mut err) = (0.0f64, 0.0f64);
        for (&r, &t) in reference.iter().zip(test) {
            sig += f64::from(r).powi(2);
            err += (f64::from(r) - f64::from(t)).powi(2);
        }
        10.0 * (sig / err.max(1.0)).log10()
    }

    #[test]
    fn tone_round_trips_as_the_same_tone() {
        for channels in [Channels::Mono, Channels::Stereo] {
            let config = OpusConfig {
                channels,
                ..OpusConfig::default()
            };
            let mut enc = Encoder::new(config).unwrap();
            let mut dec = Decoder::new(channels).unwrap();
            let mut decoded = Vec::new();
            let mut packet = [0u8; MAX_PACKET_SIZE];
            let mut out = vec![0i16; channels.frame_len()];
            for frame in tone_frames(440.0, 8000.0, 50, channels) {
                let len = enc.encode(&frame, &mut packet).unwrap();
                assert_eq!(dec.decode(&packet[..len], &mut out).unwrap(), FRAME_SAMPLES);
                decoded.extend(out.iter().step_by(channels.count()));
            }
            // Skip the first 100 ms (codec start-up). SILK at 32 kbit/s keeps a pure tone
            // about 14 dB above the coding noise (measured 13.7 dB mono).
            let tail = &decoded[4800..];
            let f = dominant_frequency(tail, SAMPLE_RATE, 100.0..=2000.0, 10.0).unwrap();
            assert!((f - 440.0).abs() <= 10.0, "{channels:?}: dominant {f} Hz");
            let snr = tone_snr(tail, 440.0, SAMPLE_RATE);
            assert!(snr > 10.0, "{channels:?}: tone snr {snr:.1} dB");
        }
    }

    #[test]
    fn narrowband_input_decodes_at_48k_as_the_same_tone() {
        let mut enc = Encoder::narrowband(OpusConfig::default()).unwrap();
        let mut dec = Decoder::new(Channels::Mono).unwrap();
        let narrow = FRAME_SAMPLES / 6;
        let mut decoded = Vec::new();
        let mut out = vec![0i16; FRAME_SAMPLES];
        for i in 0..50 {
            let mut frame = vec![0i16; narrow];
            tone(
                1000.0,
                8000.0,
                NARROWBAND_RATE,
                (i * narrow) as u64,
                &mut frame,
            );
            let packet = enc.encode_to_vec(&frame).unwrap();
            // Still a 20 ms packet on the 48 kHz clock.
            assert_eq!(packet_samples(&packet).unwrap(), FRAME_SAMPLES);
            assert_eq!(dec.decode(&packet, &mut out).unwrap(), FRAME_SAMPLES);
            decoded.extend_from_slice(&out);
        }
        let tail = &decoded[4800..];
        let f = dominant_frequency(tail, SAMPLE_RATE, 100.0..=3400.0, 10.0).unwrap();
        assert!((f - 1000.0).abs() <= 10.0, "dominant {f} Hz");
        let snr = tone_snr(tail, 1000.0, SAMPLE_RATE);
        assert!(snr > 10.0, "tone snr {snr:.1} dB");
        // And back to 8 kHz: a narrowband decoder gives 160 samples, the same tone.
        let mut narrow_dec = Decoder::narrowband(Channels::Mono).unwrap();
        let mut enc48 = Encoder::new(OpusConfig::default()).unwrap();
        let mut narrow_out = vec![0i16; narrow];
        let mut heard = Vec::new();
        for i in 0..50 {
            let mut frame = vec![0i16; FRAME_SAMPLES];
            tone(
                1000.0,
                8000.0,
                SAMPLE_RATE,
                (i * FRAME_SAMPLES) as u64,
                &mut frame,
            );
            let packet = enc48.encode_to_vec(&frame).unwrap();
            assert_eq!(narrow_dec.decode(&packet, &mut narrow_out).unwrap(), narrow);
            heard.extend_from_slice(&narrow_out);
        }
        assert_eq!(narrow_dec.conceal(&mut narrow_out).unwrap(), narrow);
        let snr = tone_snr(&heard[800..], 1000.0, NARROWBAND_RATE);
        assert!(snr > 10.0, "narrowband decode: tone snr {snr:.1} dB");
        // A 48 kHz frame is not an 8 kHz one.
        assert_eq!(
            enc.encode_to_vec(&vec![0i16; FRAME_SAMPLES]),
            Err(CodecError::WrongFrameSize {
                expected: narrow,
                got: FRAME_SAMPLES
            })
        );
    }

    #[test]
    fn dtx_makes_tiny_packets_on_silence() {
        let mut enc = Encoder::new(OpusConfig::default()).unwrap();
        let silence = vec![0i16; FRAME_SAMPLES];
        let sizes: Vec<usize> = (0..50)
            .map(|_| enc.encode_to_vec(&silence).unwrap().len())
            .collect();
        // After a 200 ms hangover: 1-byte "nothing new" packets, with a comfort-noise
        // update every 400 ms (measured: 21 bytes for digital silence).
        assert!(sizes[10..].iter().all(|&n| n <= 24), "sizes {sizes:?}");
        assert!(
            sizes[10..].iter().filter(|&&n| n <= 2).count() >= 36,
            "sizes {sizes:?}"
        );
        assert!(enc.in_dtx().unwrap());

        // And voice is big packets again.
        let loud = &tone_frames(440.0, 8000.0, 5, Channels::Mono)[4];
        assert!(enc.encode_to_vec(loud).unwrap().len() > 20);
    }

    #[test]
    fn fec_recovers_a_lost_frame_better_than_plc() {
        let frames = speechlike(100);
        let config = OpusConfig {
            packet_loss_perc: 20,
            ..OpusConfig::default()
        };
        let mut enc = Encoder::new(config).unwrap();
        let packets: Vec<Vec<u8>> = frames
            .iter()
            .map(|f| enc.encode_to_vec(f).unwrap())
            .collect();

        // The reference: a clean decode.
        let mut clean_dec = Decoder::new(Channels::Mono).unwrap();
        let clean: Vec<Vec<i16>> = packets
            .iter()
            .map(|p| {
                let mut out = vec![0i16; FRAME_SAMPLES];
                clean_dec.decode(p, &mut out).unwrap();
                out
            })
            .collect();

        let lost: Vec<usize> = (15..95).step_by(10).collect();
        let recover = |use_fec: bool| -> f64 {
            let mut dec = Decoder::new(Channels::Mono).unwrap();
            let mut out = vec![0i16; FRAME_SAMPLES];
            let mut total = 0.0;
            for (i, p) in packets.iter().enumerate() {
                if lost.contains(&i) {
                    if use_fec {
                        dec.decode_fec(&packets[i + 1], &mut out).unwrap();
                    } else {
                        dec.conceal(&mut out).unwrap();
                    }
                    total += snr_db(&clean[i], &out);
                } else {
                    dec.decode(p, &mut out).unwrap();
                }
            }
            total / lost.len() as f64
        };
        let plc = recover(false);
        let fec = recover(true);
        assert!(fec > plc + 3.0, "fec {fec:.1} dB, plc {plc:.1} dB");
        assert!(fec > 5.0, "fec {fec:.1} dB");
    }

    #[test]
    fn errors_are_typed() {
        let mut enc = Encoder::new(OpusConfig::default()).unwrap();
        let mut out = [0u8; MAX_PACKET_SIZE];
        assert_eq!(
            enc.encode(&[0; 480], &mut out),
            Err(CodecError::WrongFrameSize {
                expected: 960,
                got: 480
            })
        );
        let err = enc.encode(&[0; 960], &mut [0u8; 0]).unwrap_err();
        assert!(matches!(err, CodecError::Opus { .. }), "{err}");

        let mut dec = Decoder::new(Channels::Mono).unwrap();
        let mut pcm = vec![0i16; FRAME_SAMPLES];
        assert_eq!(dec.decode(&[], &mut pcm), Err(CodecError::EmptyPacket));
        assert_eq!(
            dec.decode(&[0; 2000], &mut pcm),
            Err(CodecError::PacketTooLarge {
                len: 2000,
                max: MAX_PACKET_SIZE
            })
        );
        assert_eq!(
            dec.conceal(&mut pcm[..100]),
            Err(CodecError::OutputTooSmall {
                needed: 960,
                got: 100
            })
        );
        // A code-3 TOC byte with no frame count is corrupt (RFC 6716 §3.2.5).
        let err = dec.decode(&[0x03], &mut pcm).unwrap_err();
        assert!(matches!(err, CodecError::Opus { .. }), "{err}");
        assert!(err.to_string().starts_with("libopus "), "{err}");

        let bad = OpusConfig {
            bitrate: 1,
            ..OpusConfig::default()
        };
        assert!(matches!(
            Encoder::new(bad),
            Err(CodecError::InvalidConfig(_))
        ));
    }

    #[test]
    fn packet_samples_reads_the_toc() {
        let mut enc = Encoder::new(OpusConfig::default()).unwrap();
        let p = enc.encode_to_vec(&[0; FRAME_SAMPLES]).unwrap();
        assert_eq!(packet_samples(&p), Ok(FRAME_SAMPLES));
        assert_eq!(packet_samples(&[]), Err(CodecError::EmptyPacket));
    }
}
