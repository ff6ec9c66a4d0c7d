//! Where a native client's audio comes from and goes to: [`AudioSource`]s fill 20 ms
//! mono frames to send, [`AudioSink`]s take the frames a call plays out.
//!
//! Every frame is mono `i16` PCM at [`SAMPLE_RATE`] (48 kHz), one [`FRAME_SAMPLES`]
//! (960-sample, [`FRAME_DURATION`](crate::codec::FRAME_DURATION)) frame per call. The traits are shaped for real-time
//! use (sound-card devices implement them too): the caller owns the frame buffer, so a
//! read or write never allocates, and both traits are `Send` so a device thread can own
//! one. The implementations here are for tests and tools:
//!
//! - sources: [`ToneSource`], [`SilenceSource`], [`SpeechLikeSource`] (synthetic,
//!   endless, deterministic) and [`WavSource`] (a file, decoded into memory up front);
//! - sinks: [`WavSink`] (a 16-bit mono file), [`MemorySink`] (read back through a
//!   [`MemoryTap`] while the call runs) and [`NullSink`].
//!
//! ```
//! use std::time::Duration;
//! use ringwire_media::audio_io::{AudioSink, AudioSource, MemorySink, ToneSource};
//! use ringwire_media::codec::FRAME_SAMPLES;
//!
//! let mut source = ToneSource::new(440.0, 0.5)?;
//! let (mut sink, tap) = MemorySink::bounded(Duration::from_secs(1));
//! let mut frame = [0i16; FRAME_SAMPLES];
//! for _ in 0..10 {
//!     source.read_frame(&mut frame)?;
//!     sink.write_frame(&frame)?;
//! }
//! assert!(tap.has_tone(440.0, Duration::from_millis(200)));
//! assert!(!tap.has_tone(660.0, Duration::from_millis(200)));
//! # Ok::<(), ringwire_media::audio_io::AudioIoError>(())
//! ```

use std::cell::Cell;
use std::collections::VecDeque;
use std::f64::consts::{PI, TAU};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::analysis::tone_snr_windowed;
use crate::codec::{FRAME_SAMPLES, SAMPLE_RATE};

/// The SNR in dB above which [`MemoryTap::has_tone`] says a tone is present: the tone
/// carries ten times the power of everything else (silence measures 0 dB).
pub const TONE_PRESENT_SNR_DB: f64 = 10.0;

/// The longest WAV file [`WavSource`] loads (it decodes the whole file into memory).
pub const MAX_WAV_DURATION: Duration = Duration::from_secs(600);

/// Whether a source still has audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceState {
    /// The frame holds audio from the source (the last one may end in silence).
    Active,
    /// The source had nothing left for this frame: it is silence, and so is every
    /// later frame. Only finite sources (a non-looping file) end.
    Ended,
}

/// Something audio can be captured from, one 20 ms mono frame at a time.
pub trait AudioSource: Send {
    /// Fills all of `frame` (callers pass [`FRAME_SAMPLES`] samples; the sources here
    /// accept any length) with the next mono 48 kHz samples. Called from the capture
    /// loop, so it must neither allocate nor block for long.
    ///
    /// # Errors
    ///
    /// When the source fails (a device error); the synthetic and file sources here
    /// never fail once constructed.
    fn read_frame(&mut self, frame: &mut [i16]) -> Result<SourceState, AudioIoError>;

    /// A short description for logs: `"tone 440 Hz"`, a file's path.
    fn name(&self) -> &str;
}

/// Something audio is played into, one 20 ms mono frame at a time.
pub trait AudioSink: Send {
    /// Takes the next mono 48 kHz samples (callers pass [`FRAME_SAMPLES`]; the sinks
    /// here accept any length). Called from the playback loop, so it must neither
    /// allocate per call nor block for long.
    ///
    /// # Errors
    ///
    /// When the sink fails (disk full, device gone) or was already finished.
    fn write_frame(&mut self, frame: &[i16]) -> Result<(), AudioIoError>;

    /// Flushes and closes the sink (a WAV file gets its final header). Idempotent;
    /// the default does nothing.
    ///
    /// # Errors
    ///
    /// When flushing fails.
    fn finish(&mut self) -> Result<(), AudioIoError> {
        Ok(())
    }

    /// A short description for logs.
    fn name(&self) -> &str;
}

/// What went wrong opening, reading or writing audio.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AudioIoError {
    /// A file could not be opened or created (missing, no permission).
    #[error("cannot open {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Reading or writing failed midway (disk full, device error).
    #[error("i/o error on {name}: {source}")]
    Io {
        /// The file or device.
        name: String,
        /// Why.
        source: io::Error,
    },
    /// The bytes are not a valid WAV file (bad header, truncated data).
    #[error("{name} is not a valid wav file: {reason}")]
    Malformed {
        /// The file.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A valid WAV file in a format [`WavSource`] does not read.
    #[error("{name}: unsupported wav format: {format}")]
    UnsupportedFormat {
        /// The file.
        name: String,
        /// The format found and what is accepted.
        format: String,
    },
    /// A frame was written after [`AudioSink::finish`] (caller's mistake).
    #[error("{name} is already finished")]
    Finished {
        /// The sink.
        name: String,
    },
    /// A source or sink setting is out of range (caller's mistake).
    #[error("invalid audio config: {0}")]
    InvalidConfig(&'static str),
}

impl<S: AudioSource + ?Sized> AudioSource for Box<S> {
    fn read_frame(&mut self, frame: &mut [i16]) -> Result<SourceState, AudioIoError> {
        (**self).read_frame(frame)
    }

    fn name(&self) -> &str {
        (**self).name()
    }
}

impl<S: AudioSink + ?Sized> AudioSink for Box<S> {
    fn write_frame(&mut self, frame: &[i16]) -> Result<(), AudioIoError> {
        (**self).write_frame(frame)
    }

    fn finish(&mut self) -> Result<(), AudioIoError> {
        (**self).finish()
    }

    fn name(&self) -> &str {
        (**self).name()
    }
}

/// An endless sine: the test signal whose frequency a receiver checks with Goertzel.
///
/// The phase is an `f64` accumulator in cycles, carried across frames, so frames join
/// without a jump and the frequency does not drift (rounding error stays below 1e-7
/// cycles after an hour).
#[derive(Debug, Clone)]
pub struct ToneSource {
    freq: f64,
    /// Peak amplitude in `i16` units.
    amplitude: f64,
    /// Cycles per sample.
    step: f64,
    /// Current phase in cycles, in `[0, 1)`.
    phase: f64,
    name: String,
}

impl ToneSource {
    /// A tone of `freq` Hz with peak `amplitude` as a fraction of full scale (0..=1).
    ///
    /// # Errors
    ///
    /// [`AudioIoError::InvalidConfig`] when `freq` is not in `(0, 24000)` Hz or
    /// `amplitude` not in `0..=1`.
    pub fn new(freq: f64, amplitude: f64) -> Result<Self, AudioIoError> {
        let nyquist = f64::from(SAMPLE_RATE) / 2.0;
        check(
            freq > 0.0 && freq < nyquist,
            "tone frequency must be in (0, 24000) Hz",
        )?;
        check(
            (0.0..=1.0).contains(&amplitude),
            "tone amplitude must be in 0..=1",
        )?;
        Ok(Self {
            freq,
            amplitude: amplitude * f64::from(i16::MAX),
            step: freq / f64::from(SAMPLE_RATE),
            phase: 0.0,
            name: format!("tone {freq} Hz"),
        })
    }

    /// A tone of `freq` Hz whose peak is `dbfs` dB relative to full scale (0 or less;
    /// -6 dBFS is about half scale).
    ///
    /// # Errors
    ///
    /// As [`ToneSource::new`], and when `dbfs` is above 0.
    pub fn with_dbfs(freq: f64, dbfs: f64) -> Result<Self, AudioIoError> {
        check(dbfs <= 0.0, "tone level must be 0 dBFS or less")?;
        Self::new(freq, 10f64.powf(dbfs / 20.0))
    }

    /// The tone's frequency in Hz.
    #[must_use]
    pub fn frequency(&self) -> f64 {
        self.freq
    }
}

impl AudioSource for ToneSource {
    fn read_frame(&mut self, frame: &mut [i16]) -> Result<SourceState, AudioIoError> {
        for s in frame.iter_mut() {
            *s = to_i16(self.amplitude * (TAU * self.phase).sin());
            self.phase += self.step;
            if self.phase >= 1.0 {
                self.phase -= 1.0;
            }
        }
        Ok(SourceState::Active)
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// An endless digital silence (all zeros): a muted microphone, DTX tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct SilenceSource;

impl AudioSource for SilenceSource {
    fn read_frame(&mut self, frame: &mut [i16]) -> Result<SourceState, AudioIoError> {
        frame.fill(0);
        Ok(SourceState::Active)
    }

    fn name(&self) -> &str {
        "silence"
    }
}

/// Settings of a [`SpeechLikeSource`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpeechLikeConfig {
    /// The voice's fundamental in Hz, 50..=1000 (default 150).
    pub pitch_hz: f64,
    /// The signal never peaks above this level in dBFS, at most 0 (default -12, which
    /// measures about -27 dBov over a talk spurt: conversational speech).
    pub level_dbfs: f64,
    /// Syllables per second, 1..=10 (default 4).
    pub syllable_rate_hz: f64,
    /// How long each talk spurt lasts (default 2 s); not zero.
    pub talk: Duration,
    /// The digital silence between talk spurts (default 1 s; zero for none).
    pub pause: Duration,
}

impl Default for SpeechLikeConfig {
    fn default() -> Self {
        Self {
            pitch_hz: 150.0,
            level_dbfs: -12.0,
            syllable_rate_hz: 4.0,
            talk: Duration::from_secs(2),
            pause: Duration::from_secs(1),
        }
    }
}

/// A deterministic stand-in for a talker, for VAD, DTX and speaker-detection tests:
/// talk spurts of a harmonic voice (a fundamental and 9 overtones at 1/k amplitude)
/// under a sin² syllable envelope, separated by exact zeros.
///
/// Over a period of `talk + pause`, samples `0..talk` are voice and the rest silence,
/// so a test knows which frames a detector should call voice.
#[derive(Debug, Clone)]
pub struct SpeechLikeSource {
    config: SpeechLikeConfig,
    /// Scale of the harmonic sum so it never exceeds the configured level.
    gain: f64,
    /// Cycles of the fundamental per sample.
    step: f64,
    phase: f64,
    talk_samples: u64,
    period_samples: u64,
    /// Position within the current talk + pause period.
    position: u64,
}

/// Harmonics in a [`SpeechLikeSource`]'s voice, the fundamental included.
const SPEECH_HARMONICS: u32 = 10;

impl SpeechLikeSource {
    /// A source with the given settings, starting at the beginning of a talk spurt.
    ///
    /// # Errors
    ///
    /// [`AudioIoError::InvalidConfig`] when a setting is out of its documented range.
    pub fn new(config: SpeechLikeConfig) -> Result<Self, AudioIoError> {
        let pitch_ok = (50.0..=1000.0).contains(&config.pitch_hz);
        check(pitch_ok, "speech pitch must be in 50..=1000 Hz")?;
        check(
            config.level_dbfs <= 0.0,
            "speech level must be 0 dBFS or less",
        )?;
        let syllables_ok = (1.0..=10.0).contains(&config.syllable_rate_hz);
        check(syllables_ok, "syllable rate must be in 1..=10 Hz")?;
        let talk_samples = duration_to_samples(config.talk) as u64;
        check(talk_samples > 0, "talk spurt must not be zero")?;
        let harmonic_sum: f64 = (1..=SPEECH_HARMONICS).map(|k| 1.0 / f64::from(k)).sum();
        let peak = 10f64.powf(config.level_dbfs / 20.0) * f64::from(i16::MAX);
        Ok(Self {
            config,
            gain: peak / harmonic_sum,
            step: config.pitch_hz / f64::from(SAMPLE_RATE),
            phase: 0.0,
            talk_samples,
            period_samples: talk_samples.saturating_add(duration_to_samples(config.pause) as u64),
            position: 0,
        })
    }

    /// The settings this source runs with.
    #[must_use]
    pub fn config(&self) -> SpeechLikeConfig {
        self.config
    }
}

impl AudioSource for SpeechLikeSource {
    fn read_frame(&mut self, frame: &mut [i16]) -> Result<SourceState, AudioIoError> {
        let syllable_step = self.config.syllable_rate_hz / f64::from(SAMPLE_RATE);
        for s in frame.iter_mut() {
            *s = if self.position < self.talk_samples {
                let envelope = (PI * (self.position as f64 * syllable_step).fract())
                    .sin()
                    .powi(2);
                // sin(kx) by the Chebyshev recurrence: one sin and one cos per sample.
                let x = TAU * self.phase;
                let two_cos = 2.0 * x.cos();
                let (mut previous, mut current, mut sum) = (0.0, x.sin(), 0.0);
                for k in 1..=SPEECH_HARMONICS {
                    sum += current / f64::from(k);
                    (previous, current) = (current, two_cos * current - previous);
                }
                to_i16(self.gain * envelope * sum)
            } else {
                0
            };
            self.phase += self.step;
            if self.phase >= 1.0 {
                self.phase -= 1.0;
            }
            self.position += 1;
            if self.position >= self.period_samples {
                self.position = 0;
            }
        }
        Ok(SourceState::Active)
    }

    fn name(&self) -> &str {
        "speech-like"
    }
}

/// A WAV file as a source, decoded into memory when opened so that reading a frame
/// does no I/O.
///
/// Accepts 16-bit integer or 32-bit float samples, any number of channels (averaged
/// down to mono) and any sample rate: other rates than 48 kHz are converted by simple
/// linear interpolation (no anti-aliasing filter; fine for test files, a proper
/// resampler comes with the sound-card devices). Files longer than
/// [`MAX_WAV_DURATION`] are refused. At the end of the file it plays silence and
/// reports [`SourceState::Ended`], or starts over when [`WavSource::looping`] is set.
#[derive(Debug, Clone)]
pub struct WavSource {
    samples: Vec<i16>,
    position: usize,
    looping: bool,
    name: String,
}

impl WavSource {
    /// Opens and decodes the WAV file at `path`.
    ///
    /// # Errors
    ///
    /// [`AudioIoError::Open`] when the file cannot be opened, [`AudioIoError::Malformed`]
    /// when it is not a valid WAV file, [`AudioIoError::UnsupportedFormat`] for other
    /// sample formats or a too long file, [`AudioIoError::Io`] when reading fails.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, AudioIoError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| AudioIoError::Open {
            path: path.to_owned(),
            source,
        })?;
        Self::from_reader(path.display().to_string(), BufReader::new(file))
    }

    /// Decodes a WAV file from `reader` (in-memory bytes, a pipe); `name` is for
    /// logs and errors.
    ///
    /// # Errors
    ///
    /// As [`WavSource::open`], except [`AudioIoError::Open`].
    pub fn from_reader(name: impl Into<String>, reader: impl Read) -> Result<Self, AudioIoError> {
        let name = name.into();
        let samples = decode_wav(&name, reader)?;
        Ok(Self {
            samples,
            position: 0,
            looping: false,
            name,
        })
    }

    /// Starts over at the end of the file instead of ending (an empty file still
    /// ends).
    #[must_use]
    pub fn looping(mut self, looping: bool) -> Self {
        self.looping = looping;
        self
    }

    /// The file's length after conversion to 48 kHz mono.
    #[must_use]
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.samples.len() as f64 / f64::from(SAMPLE_RATE))
    }
}

impl AudioSource for WavSource {
    fn read_frame(&mut self, frame: &mut [i16]) -> Result<SourceState, AudioIoError> {
        let mut filled = 0;
        let mut state = SourceState::Ended;
        while filled < frame.len() {
            if self.position >= self.samples.len() {
                if !self.looping || self.samples.is_empty() {
                    frame[filled..].fill(0);
                    break;
                }
                self.position = 0;
            }
            let n = (frame.len() - filled).min(self.samples.len() - self.position);
            frame[filled..filled + n]
                .copy_from_slice(&self.samples[self.position..self.position + n]);
            filled += n;
            self.position += n;
            state = SourceState::Active;
        }
        Ok(state)
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// Records what is played into a 48 kHz mono 16-bit WAV file. [`AudioSink::finish`]
/// writes the final header; dropping an unfinished sink does it too, best effort.
/// Writes go through a buffer, so most frames do no system call.
pub struct WavSink {
    writer: Option<hound::WavWriter<BufWriter<File>>>,
    name: String,
}

impl WavSink {
    /// Creates (or truncates) the file at `path` and writes a provisional header.
    ///
    /// # Errors
    ///
    /// [`AudioIoError::Open`] when the file cannot be created, [`AudioIoError::Io`]
    /// when the header cannot be written.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, AudioIoError> {
        let path = path.as_ref();
        let file = File::create(path).map_err(|source| AudioIoError::Open {
            path: path.to_owned(),
            source,
        })?;
        let name = path.display().to_string();
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer =
            hound::WavWriter::new(BufWriter::new(file), spec).map_err(|e| write_error(&name, e))?;
        Ok(Self {
            writer: Some(writer),
            name,
        })
    }
}

impl std::fmt::Debug for WavSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavSink")
            .field("name", &self.name)
            .field("finished", &self.writer.is_none())
            .finish_non_exhaustive()
    }
}

impl AudioSink for WavSink {
    fn write_frame(&mut self, frame: &[i16]) -> Result<(), AudioIoError> {
        let Some(writer) = self.writer.as_mut() else {
            return Err(AudioIoError::Finished {
                name: self.name.clone(),
            });
        };
        for &s in frame {
            writer
                .write_sample(s)
                .map_err(|e| write_error(&self.name, e))?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), AudioIoError> {
        match self.writer.take() {
            Some(writer) => writer.finalize().map_err(|e| write_error(&self.name, e)),
            None => Ok(()),
        }
    }

    fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for WavSink {
    fn drop(&mut self) {
        if let Err(e) = self.finish() {
            tracing::warn!(error = %e, "wav sink not finalized");
        }
    }
}

/// A sink that keeps what is played in memory, for tests to read through its
/// [`MemoryTap`] while the call runs.
///
/// Writer and tap share one mutex, held by each write and each tap call for as long
/// as the copy or analysis takes: fine for tests, not for a device callback. A
/// bounded sink ([`MemorySink::bounded`]) keeps only the most recent audio and stops
/// allocating once full.
#[derive(Debug)]
pub struct MemorySink {
    recording: Arc<Mutex<Recording>>,
}

/// The reading end of a [`MemorySink`]; clones share the same recording.
#[derive(Debug, Clone)]
pub struct MemoryTap {
    recording: Arc<Mutex<Recording>>,
}

#[derive(Debug)]
struct Recording {
    samples: VecDeque<i16>,
    /// The most samples kept; `None` keeps everything.
    capacity: Option<usize>,
    /// Every sample ever written, including the dropped and cleared ones.
    written: u64,
}

impl MemorySink {
    /// A sink that keeps everything written, and its tap.
    #[must_use]
    pub fn new() -> (MemorySink, MemoryTap) {
        Self::with_capacity(None)
    }

    /// A sink that keeps only the last `keep` of audio (older samples are dropped),
    /// and its tap.
    #[must_use]
    pub fn bounded(keep: Duration) -> (MemorySink, MemoryTap) {
        Self::with_capacity(Some(duration_to_samples(keep)))
    }

    fn with_capacity(capacity: Option<usize>) -> (MemorySink, MemoryTap) {
        let recording = Arc::new(Mutex::new(Recording {
            samples: VecDeque::new(),
            capacity,
            written: 0,
        }));
        let tap = MemoryTap {
            recording: Arc::clone(&recording),
        };
        (MemorySink { recording }, tap)
    }
}

impl AudioSink for MemorySink {
    fn write_frame(&mut self, frame: &[i16]) -> Result<(), AudioIoError> {
        let mut recording = lock(&self.recording);
        recording.written += frame.len() as u64;
        let frame = match recording.capacity {
            Some(capacity) => {
                let frame = &frame[frame.len().saturating_sub(capacity)..];
                let excess = (recording.samples.len() + frame.len()).saturating_sub(capacity);
                recording.samples.drain(..excess);
                frame
            }
            None => frame,
        };
        recording.samples.extend(frame);
        Ok(())
    }

    fn name(&self) -> &str {
        "memory"
    }
}

impl MemoryTap {
    /// A copy of every sample kept, oldest first.
    #[must_use]
    pub fn samples(&self) -> Vec<i16> {
        lock(&self.recording).samples.iter().copied().collect()
    }

    /// A copy of the last `window` of audio (less if less is kept).
    #[must_use]
    pub fn last(&self, window: Duration) -> Vec<i16> {
        self.analyze(window, <[i16]>::to_vec)
    }

    /// The number of samples kept.
    #[must_use]
    pub fn len(&self) -> usize {
        lock(&self.recording).samples.len()
    }

    /// Whether nothing is kept.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every sample ever written, including those dropped by the bound or cleared:
    /// how far playback has got.
    #[must_use]
    pub fn written(&self) -> u64 {
        lock(&self.recording).written
    }

    /// Forgets the samples kept (a test that only wants what plays from now on).
    pub fn clear(&self) {
        lock(&self.recording).samples.clear();
    }

    /// Runs `f` over the last `window` of audio (less if less is kept) without copying
    /// it: the analysis hook for checks the helpers below do not cover.
    pub fn analyze<R>(&self, window: Duration, f: impl FnOnce(&[i16]) -> R) -> R {
        let mut recording = lock(&self.recording);
        let samples = recording.samples.make_contiguous();
        let start = samples.len().saturating_sub(duration_to_samples(window));
        f(&samples[start..])
    }

    /// The SNR in dB of a `freq` Hz tone over the last `window` of audio (take 20 ms or
    /// more): 0 dB for silence or too little audio, negative when other sound
    /// dominates.
    ///
    /// Measured with [`crate::analysis::tone_snr_windowed`] over windows of about
    /// 20 ms (robust to the phase jumps a jitter buffer makes), each a whole number of
    /// the tone's periods so that Goertzel leaks little: a clean tone measures over
    /// 30 dB at any frequency, where fixed 20 ms windows would give a 110 Hz tone 17 dB.
    #[must_use]
    pub fn tone_snr(&self, freq: f64, window: Duration) -> f64 {
        let analysis_window = whole_periods_window(freq);
        self.analyze(window, |s| {
            // Whole analysis windows ending at the newest sample.
            let newest = &s[s.len() % analysis_window..];
            tone_snr_windowed(newest, freq, SAMPLE_RATE, analysis_window)
        })
    }

    /// Whether a `freq` Hz tone dominates the last `window` of audio: its
    /// [`MemoryTap::tone_snr`] is at least [`TONE_PRESENT_SNR_DB`].
    #[must_use]
    pub fn has_tone(&self, freq: f64, window: Duration) -> bool {
        self.tone_snr(freq, window) >= TONE_PRESENT_SNR_DB
    }
}

/// A sink that discards everything (a client that does not play audio), counting the
/// samples.
#[derive(Debug, Clone, Copy, Default)]
pub struct NullSink {
    written: u64,
}

impl NullSink {
    /// Every sample written so far.
    #[must_use]
    pub fn written(&self) -> u64 {
        self.written
    }
}

impl AudioSink for NullSink {
    fn write_frame(&mut self, frame: &[i16]) -> Result<(), AudioIoError> {
        self.written += frame.len() as u64;
        Ok(())
    }

    fn name(&self) -> &str {
        "null"
    }
}

/// `Ok` when `ok`, else an [`AudioIoError::InvalidConfig`] saying what is wrong.
fn check(ok: bool, what: &'static str) -> Result<(), AudioIoError> {
    if ok {
        Ok(())
    } else {
        Err(AudioIoError::InvalidConfig(what))
    }
}

/// The mutex guard; a panic while holding it cannot leave the recording half-updated
/// in a way that matters to a test, so poisoning is ignored.
fn lock(recording: &Mutex<Recording>) -> MutexGuard<'_, Recording> {
    recording.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Samples at 48 kHz in `d`, saturating.
fn duration_to_samples(d: Duration) -> usize {
    let samples = d.as_nanos() * u128::from(SAMPLE_RATE) / 1_000_000_000;
    usize::try_from(samples).unwrap_or(usize::MAX)
}

/// The whole number of `freq` Hz periods closest to one frame, in samples (at least
/// one period).
fn whole_periods_window(freq: f64) -> usize {
    if freq.is_nan() || freq <= 0.0 {
        return FRAME_SAMPLES;
    }
    let period = f64::from(SAMPLE_RATE) / freq;
    let periods = (FRAME_SAMPLES as f64 / period).round().max(1.0);
    // Saturating float-to-int cast; a tone near 0 Hz gives a huge window (the whole
    // recording), which is what measuring it needs.
    ((periods * period).round() as usize).max(1)
}

/// Rounds and saturates to the `i16` range (NaN becomes 0).
fn to_i16(v: f64) -> i16 {
    v.round().clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16
}

/// Decodes a whole WAV stream to 48 kHz mono.
fn decode_wav(name: &str, reader: impl Read) -> Result<Vec<i16>, AudioIoError> {
    let at_eof = Cell::new(false);
    let reader = EofTracking {
        inner: reader,
        at_eof: &at_eof,
    };
    let read_error = |e| read_error(name, e, at_eof.get());
    let mut wav = hound::WavReader::new(reader).map_err(read_error)?;
    let spec = wav.spec();
    let unsupported = |format: String| AudioIoError::UnsupportedFormat {
        name: name.to_owned(),
        format,
    };
    if spec.channels == 0 || spec.sample_rate == 0 {
        return Err(unsupported(format!(
            "{} channels at {} Hz",
            spec.channels, spec.sample_rate
        )));
    }
    let seconds = wav.duration() / spec.sample_rate;
    if u64::from(seconds) > MAX_WAV_DURATION.as_secs() {
        return Err(unsupported(format!(
            "{seconds} s long, at most {} s",
            MAX_WAV_DURATION.as_secs()
        )));
    }
    let channels = usize::from(spec.channels);
    let mono = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, 16) => downmix(
            wav.samples::<i16>().map(|s| s.map(f64::from)),
            channels,
            read_error,
        )?,
        (hound::SampleFormat::Float, 32) => downmix(
            wav.samples::<f32>()
                .map(|s| s.map(|v| f64::from(v) * f64::from(i16::MAX))),
            channels,
            read_error,
        )?,
        (format, bits) => {
            let kind = match format {
                hound::SampleFormat::Int => "integer",
                hound::SampleFormat::Float => "float",
            };
            return Err(unsupported(format!(
                "{bits}-bit {kind} samples (16-bit integer and 32-bit float are read)"
            )));
        }
    };
    Ok(resample_linear(&mono, spec.sample_rate))
}

/// A reader that notes when its input has ended.
struct EofTracking<'a, R> {
    inner: R,
    at_eof: &'a Cell<bool>,
}

impl<R: Read> Read for EofTracking<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.at_eof.set(true);
        }
        Ok(n)
    }
}

/// Averages each group of `channels` interleaved samples into one.
fn downmix(
    samples: impl Iterator<Item = Result<f64, hound::Error>>,
    channels: usize,
    read_error: impl Fn(hound::Error) -> AudioIoError,
) -> Result<Vec<f64>, AudioIoError> {
    let mut mono = Vec::new();
    let (mut sum, mut count) = (0.0, 0);
    for s in samples {
        sum += s.map_err(&read_error)?;
        count += 1;
        if count == channels {
            mono.push(sum / channels as f64);
            (sum, count) = (0.0, 0);
        }
    }
    Ok(mono)
}

/// Converts `input` at `from_rate` Hz to 48 kHz `i16` by linear interpolation between
/// neighbouring samples; positions are exact fractions, so long files do not drift.
fn resample_linear(input: &[f64], from_rate: u32) -> Vec<i16> {
    if from_rate == SAMPLE_RATE {
        return input.iter().map(|&v| to_i16(v)).collect();
    }
    let Some(last) = input.len().checked_sub(1) else {
        return Vec::new();
    };
    let (from, to) = (u64::from(from_rate), u64::from(SAMPLE_RATE));
    // Output sample j sits at input position j * from / to, at most `last`.
    let out_len = (last as u64 * to / from) as usize + 1;
    (0..out_len as u64)
        .map(|j| {
            let position = j * from;
            let index = (position / to) as usize;
            let frac = (position % to) as f64 / to as f64;
            let a = input[index];
            let b = input.get(index + 1).copied().unwrap_or(a);
            to_i16(a + (b - a) * frac)
        })
        .collect()
}

/// Maps a hound error while reading to who is at fault. hound reports a short read
/// as a plain I/O error, so `at_eof` (the input had ended) tells a truncated file
/// from a failing disk.
fn read_error(name: &str, e: hound::Error, at_eof: bool) -> AudioIoError {
    let name = name.to_owned();
    match e {
        hound::Error::IoError(_) if at_eof => AudioIoError::Malformed {
            name,
            reason: "truncated: the data ends before its header says".to_owned(),
        },
        hound::Error::IoError(source) => AudioIoError::Io { name, source },
        hound::Error::FormatError(reason) => AudioIoError::Malformed {
            name,
            reason: reason.to_owned(),
        },
        hound::Error::Unsupported => AudioIoError::UnsupportedFormat {
            name,
            format: "a wave format hound does not read".to_owned(),
        },
        other => AudioIoError::Malformed {
            name,
            reason: other.to_string(),
        },
    }
}

/// Maps a hound error while writing: always an I/O failure of the sink.
fn write_error(name: &str, e: hound::Error) -> AudioIoError {
    let source = match e {
        hound::Error::IoError(e) => e,
        other => io::Error::other(other),
    };
    AudioIoError::Io {
        name: name.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{dominant_frequency, goertzel_power, tone, tone_snr};
    use crate::level::{AudioLevel, VadConfig, VoiceActivity};

    fn read_frames(source: &mut impl AudioSource, frames: usize) -> Vec<i16> {
        let mut out = vec![0i16; frames * FRAME_SAMPLES];
        for frame in out.chunks_exact_mut(FRAME_SAMPLES) {
            assert_eq!(source.read_frame(frame).unwrap(), SourceState::Active);
        }
        out
    }

    #[test]
    fn tone_has_its_frequency_and_level() {
        let mut source = ToneSource::with_dbfs(440.0, -6.0).unwrap();
        let pcm = read_frames(&mut source, 50);
        assert_eq!(
            dominant_frequency(&pcm, SAMPLE_RATE, 100.0..=2000.0, 10.0),
            Some(440.0)
        );
        assert!(tone_snr(&pcm, 440.0, SAMPLE_RATE) > 40.0);
        // -6 dBFS peak: power (a² / 2) with a = 0.501 × 32767.
        let expected = (0.501 * 32767.0f64).powi(2) / 2.0;
        let power = goertzel_power(&pcm, 440.0, SAMPLE_RATE);
        assert!((power / expected - 1.0).abs() < 0.01, "{power}");
    }

    #[test]
    fn tone_is_phase_continuous_without_drift() {
        // One minute in 20 ms frames matches one long sine sample for sample.
        let mut source = ToneSource::new(1000.0, 0.5).unwrap();
        let pcm = read_frames(&mut source, 3000);
        let mut reference = vec![0i16; pcm.len()];
        tone(1000.0, 0.5 * 32767.0, SAMPLE_RATE, 0, &mut reference);
        let worst = pcm.iter().zip(&reference).map(|(a, b)| (a - b).abs()).max();
        assert!(worst <= Some(1), "{worst:?}");
    }

    #[test]
    fn bad_settings_are_refused() {
        for (freq, amplitude) in [(0.0, 0.5), (24_000.0, 0.5), (f64::NAN, 0.5), (440.0, 1.5)] {
            assert!(matches!(
                ToneSource::new(freq, amplitude),
                Err(AudioIoError::InvalidConfig(_))
            ));
        }
        assert!(ToneSource::with_dbfs(440.0, 3.0).is_err());
        let config = SpeechLikeConfig {
            talk: Duration::ZERO,
            ..SpeechLikeConfig::default()
        };
        assert!(SpeechLikeSource::new(config).is_err());
    }

    #[test]
    fn speech_like_talks_then_pauses() {
        // Default: 2 s talk (100 frames), then 1 s of zeros (50 frames).
        let mut source = SpeechLikeSource::new(SpeechLikeConfig::default()).unwrap();
        let mut vad = VoiceActivity::new(VadConfig::default());
        let pcm = read_frames(&mut source, 150);
        let voice: Vec<bool> = pcm
            .chunks_exact(FRAME_SAMPLES)
            .map(|f| vad.handle_frame(AudioLevel::from_pcm(f)))
            .collect();
        // Voice from the onset (two loud frames, the first syllable rising) to the end
        // of the spurt plus the 300 ms hangover, then silence.
        assert!(voice[5..100].iter().all(|&v| v), "{voice:?}");
        assert!(voice[120..].iter().all(|&v| !v), "{voice:?}");
        assert!(pcm[100 * FRAME_SAMPLES..].iter().all(|&s| s == 0));
        // A harmonic voice: the fundamental is the strongest component.
        let talk = &pcm[..100 * FRAME_SAMPLES];
        assert_eq!(
            dominant_frequency(talk, SAMPLE_RATE, 80.0..=1000.0, 5.0),
            Some(150.0)
        );
        let level = AudioLevel::from_pcm(talk).minus_dbov();
        assert!((20..=35).contains(&level), "{level}");
        // Deterministic, and the pattern repeats every talk + pause.
        let mut again = SpeechLikeSource::new(SpeechLikeConfig::default()).unwrap();
        assert_eq!(read_frames(&mut again, 150), pcm);
        let next = read_frames(&mut source, 150);
        let energy = |s: &[i16]| AudioLevel::from_pcm(s).minus_dbov();
        assert_eq!(energy(&next[..100 * FRAME_SAMPLES]), level);
    }

    #[test]
    fn silence_and_null() {
        let mut frame = [7i16; FRAME_SAMPLES];
        assert_eq!(
            SilenceSource.read_frame(&mut frame).unwrap(),
            SourceState::Active
        );
        assert!(frame.iter().all(|&s| s == 0));
        let mut sink = NullSink::default();
        sink.write_frame(&frame).unwrap();
        sink.finish().unwrap();
        assert_eq!(sink.written(), FRAME_SAMPLES as u64);
    }

    #[test]
    fn resampling_keeps_endpoints_and_interpolates() {
        let up = resample_linear(&[0.0, 100.0, 200.0], 24_000);
        assert_eq!(up, vec![0, 50, 100, 150, 200]);
        let down = resample_linear(&[0.0, 1.0, 2.0, 3.0, 4.0], 96_000);
        assert_eq!(down, vec![0, 2, 4]);
        assert!(resample_linear(&[], 24_000).is_empty());
    }
}
