//! Audio level (RFC 6464) and a simple voice-activity decision.
//!
//! A sender measures each 20 ms frame's level in -dBov ([`AudioLevel::from_pcm`]),
//! decides whether it is voice ([`VoiceActivity`]), and puts both in the one-byte
//! client-to-mixer audio level header extension ([`LevelExtension`]). The mixer reads
//! the byte back to pick speakers without decoding anyone.
//!
//! ```
//! use ringwire_media::level::{AudioLevel, LevelExtension, VoiceActivity, VadConfig};
//!
//! let frame = vec![0i16; 960];
//! let level = AudioLevel::from_pcm(&frame);
//! assert_eq!(level, AudioLevel::SILENCE);
//! let mut vad = VoiceActivity::new(VadConfig::default());
//! let voice = vad.handle_frame(level);
//! let byte = LevelExtension { voice, level }.to_byte();
//! assert_eq!(LevelExtension::from_byte(byte), LevelExtension { voice: false, level });
//! ```

/// An audio level in -dBov (RFC 6464 §3): 0 is the loudest a stream can be (a
/// full-scale square wave), 127 is -127 dBov or quieter (silence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AudioLevel(u8);

impl AudioLevel {
    /// The quietest level, 127 (-127 dBov and below, digital silence).
    pub const SILENCE: AudioLevel = AudioLevel(127);
    /// The loudest level, 0 dBov.
    pub const MAX: AudioLevel = AudioLevel(0);

    /// A level from its -dBov value, `None` above 127.
    #[must_use]
    pub const fn new(minus_dbov: u8) -> Option<Self> {
        if minus_dbov <= 127 {
            Some(Self(minus_dbov))
        } else {
            None
        }
    }

    /// The level in -dBov, 0..=127 (smaller is louder).
    #[must_use]
    pub const fn minus_dbov(self) -> u8 {
        self.0
    }

    /// The level of a frame of PCM (any number of samples; interleaved channels are
    /// averaged together): the RMS over the frame relative to the overload point
    /// (RFC 6464 §3, RFC 6465 Appendix A), in whole dB rounded to nearest. A full-scale
    /// sine measures 3 (-3 dBov); silence and an empty frame measure 127.
    #[must_use]
    pub fn from_pcm(samples: &[i16]) -> Self {
        if samples.is_empty() {
            return Self::SILENCE;
        }
        // Sum of squares in u64: 2^30 per sample, so 2^34 samples before overflow.
        let energy: u64 = samples
            .iter()
            .map(|&s| {
                let v = u64::from(s.unsigned_abs());
                v * v
            })
            .sum();
        Self::from_energy(energy, samples.len())
    }

    /// The level for a sum of squared samples over `count` samples (for callers that
    /// already sum energy, e.g. a mixer).
    #[must_use]
    pub fn from_energy(energy: u64, count: usize) -> Self {
        if energy == 0 || count == 0 {
            return Self::SILENCE;
        }
        // dBov = 10 log10(mean square / overload²), overload = 32768 (i16 full scale).
        let mean_square = energy as f64 / count as f64;
        let dbov = 10.0 * (mean_square / (32768.0 * 32768.0)).log10();
        let level = (-dbov).round().clamp(0.0, 127.0);
        // In 0..=127 after the clamp, so the cast is exact.
        Self(level as u8)
    }
}

/// The value byte of the client-to-mixer audio level header extension (RFC 6464 §4):
/// the V flag (voice activity) in the top bit, then the 7-bit level. Every byte parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LevelExtension {
    /// The sender thinks this packet contains speech.
    pub voice: bool,
    /// The packet's audio level.
    pub level: AudioLevel,
}

impl LevelExtension {
    /// The extension's URI, to negotiate in SDP (`a=extmap`), RFC 6464 §4.
    pub const URI: &'static str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

    /// Encodes into the one value byte: `V` then the level (RFC 6464 §4).
    #[must_use]
    pub const fn to_byte(self) -> u8 {
        ((self.voice as u8) << 7) | self.level.0
    }

    /// Parses the value byte.
    #[must_use]
    pub const fn from_byte(byte: u8) -> Self {
        Self {
            voice: byte & 0x80 != 0,
            level: AudioLevel(byte & 0x7f),
        }
    }
}

/// Settings of [`VoiceActivity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VadConfig {
    /// Frames at this level or louder (smaller -dBov) count as loud. Default 45
    /// (-45 dBov): conversational speech sits around -20 to -35 dBov, a quiet room's
    /// background below -50.
    pub threshold: AudioLevel,
    /// Consecutive loud frames needed to start voice (default 2 = 40 ms), so a click
    /// does not count.
    pub onset_frames: u32,
    /// Quiet frames voice lasts after the last loud one (default 15 = 300 ms), so the
    /// pauses between words do not cut it.
    pub hangover_frames: u32,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self {
            threshold: AudioLevel(45),
            onset_frames: 2,
            hangover_frames: 15,
        }
    }
}

/// A voice-activity decision per frame: a level threshold with onset and hangover.
/// Sans-IO: one call per 20 ms frame, in order.
#[derive(Debug, Clone)]
pub struct VoiceActivity {
    config: VadConfig,
    loud_run: u32,
    hangover_left: u32,
    active: bool,
}

impl VoiceActivity {
    /// A detector that starts in silence.
    #[must_use]
    pub fn new(config: VadConfig) -> Self {
        Self {
            config,
            loud_run: 0,
            hangover_left: 0,
            active: false,
        }
    }

    /// Feeds the next frame's level; returns whether that frame is voice.
    pub fn handle_frame(&mut self, level: AudioLevel) -> bool {
        // Smaller -dBov is louder.
        if level <= self.config.threshold {
            self.loud_run = self.loud_run.saturating_add(1);
            if self.active || self.loud_run >= self.config.onset_frames.max(1) {
                self.active = true;
                self.hangover_left = self.config.hangover_frames;
            }
        } else {
            self.loud_run = 0;
            if self.active {
                if self.hangover_left == 0 {
                    self.active = false;
                } else {
                    self.hangover_left -= 1;
                }
            }
        }
        self.active
    }

    /// Whether the last frame was voice.
    #[must_use]
    pub fn is_active(&self) -> bool {
        self.active
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::tone;

    fn sine(amplitude: f64) -> Vec<i16> {
        let mut pcm = vec![0i16; 960];
        tone(1000.0, amplitude, 48_000, 0, &mut pcm);
        pcm
    }

    #[test]
    fn known_signals_have_known_levels() {
        assert_eq!(AudioLevel::from_pcm(&sine(32767.0)).minus_dbov(), 3);
        // -20 dB from full scale: 3 + 20.
        assert_eq!(AudioLevel::from_pcm(&sine(3276.7)).minus_dbov(), 23);
        assert_eq!(AudioLevel::from_pcm(&[0; 960]), AudioLevel::SILENCE);
        assert_eq!(AudioLevel::from_pcm(&[]), AudioLevel::SILENCE);
        // A full-scale square wave is the overload point: 0 dBov.
        let square: Vec<i16> = (0..960)
            .map(|i| if i % 48 < 24 { i16::MAX } else { i16::MIN })
            .collect();
        assert_eq!(AudioLevel::from_pcm(&square), AudioLevel::MAX);
        // One LSB of noise is about -90 dBov; nothing is quieter than 127.
        let lsb: Vec<i16> = (0..960).map(|i| if i % 2 == 0 { 1 } else { -1 }).collect();
        assert_eq!(AudioLevel::from_pcm(&lsb).minus_dbov(), 90);
    }

    #[test]
    fn extension_byte_round_trips() {
        for byte in 0..=255u8 {
            let ext = LevelExtension::from_byte(byte);
            assert_eq!(ext.to_byte(), byte);
            assert_eq!(ext.voice, byte >= 0x80);
        }
        let ext = LevelExtension {
            voice: true,
            level: AudioLevel::new(3).unwrap(),
        };
        assert_eq!(ext.to_byte(), 0x83);
        assert_eq!(AudioLevel::new(128), None);
    }

    #[test]
    fn vad_has_onset_and_hangover() {
        let mut vad = VoiceActivity::new(VadConfig::default());
        let loud = AudioLevel::new(25).unwrap();
        let quiet = AudioLevel::new(70).unwrap();
        // A one-frame click is not voice.
        assert!(!vad.handle_frame(loud));
        assert!(!vad.handle_frame(quiet));
        // Two loud frames start voice.
        assert!(!vad.handle_frame(loud));
        assert!(vad.handle_frame(loud));
        // It lasts 15 quiet frames, then stops.
        for _ in 0..15 {
            assert!(vad.handle_frame(quiet));
        }
        assert!(!vad.handle_frame(quiet));
        assert!(!vad.is_active());
        // A short pause inside speech keeps it on, and loudness re-arms the hangover.
        assert!(!vad.handle_frame(loud));
        assert!(vad.handle_frame(loud));
        for _ in 0..10 {
            assert!(vad.handle_frame(quiet));
        }
        assert!(vad.handle_frame(loud));
        for _ in 0..15 {
            assert!(vad.handle_frame(quiet));
        }
        assert!(!vad.handle_frame(quiet));
    }
}
