//! Microphones and speakers: [`Microphone`] is an [`AudioSource`], [`Speaker`] an
//! [`AudioSink`], both 48 kHz mono 20 ms frames on our side whatever the device does.
//!
//! # Threading
//!
//! cpal calls a real-time callback on its own thread. That callback only converts
//! samples to `f32` and moves them through a lock-free single-producer single-consumer
//! ring ([`rtrb`]): no lock, no allocation, no logging, no blocking. When the ring is
//! full (our side stopped reading) the callback drops the new samples and counts them
//! ([`StreamStats::overflow_samples`]); when it is empty the output callback plays
//! silence and counts it ([`StreamStats::underrun_samples`]).
//!
//! Our side ([`AudioSource::read_frame`], [`AudioSink::write_frame`]) never blocks
//! either: it mixes down or up, resamples with [`rubato`] when the device does not run
//! at 48 kHz, and keeps latency bounded by dropping the oldest audio when more than
//! [`StreamOptions::max_latency`] has piled up (a consumer slower than the device
//! clock) or padding with silence when the device has not delivered enough (counted
//! too). Buffers are allocated when a stream is opened or switched, not per frame.
//!
//! Switching device (by [`Microphone::select`], or the worker's fallback when the
//! device disappears) builds the new cpal stream first, hands its ring to the handle
//! through a channel, then drops the old stream: the handle keeps its identity and the
//! call never notices more than a few milliseconds of silence. A playback stream
//! switched away from plays out what its ring still holds before it is dropped.
//!
//! # PulseAudio playback
//!
//! cpal 0.18.2's PulseAudio playback (its pure-Rust client) stalls with every fixed
//! buffer size: against a null sink it was asked for 0 to 24 % of real time with
//! 10 to 100 ms buffers; only its default 2 s buffer keeps up, far too much latency
//! for a call. Capture through it is fine. So when the sound host is PulseAudio,
//! listing, events and capture use cpal's PulseAudio host, and playback goes through
//! cpal's ALSA host and ALSA's pulse plugin (libpulse, which keeps up with 10 ms
//! periods): to the default sink through the `pulse` PCM, to another sink through an
//! ALSA PCM named like the sink (`pcm.<sink> { type pulse; device <sink> }` in
//! `~/.asoundrc`); without one, opening that sink fails with
//! [`DeviceError::Unsupported`] saying so. Device
//! ids stay PulseAudio's (`pulseaudio:<sink>`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use ringwire_media::audio_io::{AudioIoError, AudioSink, AudioSource, SourceState};
use ringwire_media::codec::FRAME_SAMPLES;

use crate::error::DeviceError;
use crate::info::{DeviceId, Selection};
use crate::worker::{StreamId, WorkerLink};

pub(crate) mod host;
mod resample;

use resample::MonoResampler;

/// Our side's sample rate.
pub(crate) const SAMPLE_RATE: u32 = ringwire_media::codec::SAMPLE_RATE;

/// Which sound system to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AudioBackend {
    /// cpal's default: PulseAudio (or PipeWire's PulseAudio server) when its socket is
    /// reachable, ALSA otherwise.
    #[default]
    Auto,
    /// PulseAudio only (fails when no server is reachable).
    PulseAudio,
    /// ALSA only (through the pulse plugin when a server runs).
    Alsa,
}

/// How a sound stream is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOptions {
    /// The device buffer asked for (default 10 ms). On PulseAudio cpal's default
    /// buffer is 2 s, so this matters.
    pub buffer: Duration,
    /// The most audio kept between the device and our side before the oldest is
    /// dropped (default 100 ms).
    pub max_latency: Duration,
    /// Open the device at this rate and resample here (default `None`: 48 kHz when the
    /// device offers it, else its default rate).
    pub device_rate: Option<u32>,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self {
            buffer: Duration::from_millis(10),
            max_latency: Duration::from_millis(100),
            device_rate: None,
        }
    }
}

/// Counters of one stream, summed over every device it has run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamStats {
    /// Real-time callbacks run.
    pub callbacks: u64,
    /// Device samples dropped because the ring was full (our side too slow), plus
    /// 48 kHz samples our side dropped to keep latency bounded.
    pub overflow_samples: u64,
    /// Samples of silence played (output) or padded (input) because no audio was there.
    pub underrun_samples: u64,
    /// Errors the device reported (most are harmless and the stream goes on).
    pub device_errors: u64,
    /// Times the stream moved to another device.
    pub switches: u64,
}

/// Lock-free counters shared between a real-time callback and our side.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) callbacks: AtomicU64,
    pub(crate) overflow: AtomicU64,
    pub(crate) underrun: AtomicU64,
    pub(crate) errors: AtomicU64,
    /// Set by the error callback when the stream is dead (device gone).
    pub(crate) lost: AtomicBool,
}

/// The consumer end of a capture stream's ring, with its format.
#[derive(Debug)]
pub(crate) struct InputRing {
    pub(crate) consumer: rtrb::Consumer<f32>,
    pub(crate) channels: u16,
    pub(crate) rate: u32,
    pub(crate) device: DeviceId,
    pub(crate) counters: Arc<Counters>,
}

/// The producer end of a playback stream's ring, with its format.
#[derive(Debug)]
pub(crate) struct OutputRing {
    pub(crate) producer: rtrb::Producer<f32>,
    pub(crate) channels: u16,
    pub(crate) rate: u32,
    pub(crate) device: DeviceId,
    pub(crate) counters: Arc<Counters>,
}

/// A microphone: 48 kHz mono 20 ms frames from a sound card, or from a synthetic or
/// file source. After a switch (by [`Microphone::select`] or a fallback), the handle
/// takes the new device with its next read. Made by [`DeviceManager::open_microphone`](crate::DeviceManager::open_microphone).
///
/// [`AudioSource::read_frame`] returns at once with what the device has delivered,
/// padded with silence when it has not delivered a whole frame yet (at the start, the
/// device needs a moment); read it every 20 ms.
#[derive(Debug)]
pub struct Microphone {
    input: Input,
    link: WorkerLink,
    options: StreamOptions,
    /// Counters of the devices used before the current one.
    past: StreamStats,
    name: String,
}

enum Input {
    Device(Box<DeviceInput>),
    Synthetic(Box<dyn AudioSource>),
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Device(input) => input.fmt(f),
            Self::Synthetic(source) => f.debug_tuple("Synthetic").field(&source.name()).finish(),
        }
    }
}

/// Our side of a capture stream.
#[derive(Debug)]
struct DeviceInput {
    stream: StreamId,
    ring: InputRing,
    swaps: Receiver<InputRing>,
    resampler: MonoResampler,
    /// 48 kHz mono samples waiting to be read.
    fifo: VecDeque<f32>,
    fifo_capacity: usize,
    /// Scratch: one pull's mono samples at the device rate.
    mono: Vec<f32>,
    max_latency: usize,
    /// Counters of our side.
    trimmed: u64,
    padded: u64,
    switches: u64,
    link: WorkerLink,
}

/// A speaker: takes 48 kHz mono 20 ms frames and plays them on a sound card or a
/// synthetic or file sink. After a fallback, the handle takes the new device with its
/// next write. Made by [`DeviceManager::open_speaker`](crate::DeviceManager::open_speaker).
///
/// [`AudioSink::write_frame`] never blocks: a frame that does not fit in
/// [`StreamOptions::max_latency`] is dropped and counted. Write one every 20 ms (or
/// pace by [`Speaker::buffered`]).
#[derive(Debug)]
pub struct Speaker {
    output: Output,
    link: WorkerLink,
    options: StreamOptions,
    past: StreamStats,
    name: String,
}

enum Output {
    Device(Box<DeviceOutput>),
    Synthetic(Box<dyn AudioSink>),
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Device(output) => output.fmt(f),
            Self::Synthetic(sink) => f.debug_tuple("Synthetic").field(&sink.name()).finish(),
        }
    }
}

/// Our side of a playback stream.
#[derive(Debug)]
struct DeviceOutput {
    stream: StreamId,
    ring: OutputRing,
    swaps: Receiver<OutputRing>,
    resampler: MonoResampler,
    /// Scratch: one frame as `f32`.
    mono: Vec<f32>,
    /// Scratch: device-format interleaved samples of one frame.
    interleaved: Vec<f32>,
    max_latency_time: Duration,
    max_latency: usize,
    dropped: u64,
    switches: u64,
    link: WorkerLink,
}

impl Microphone {
    pub(crate) fn open(
        link: &WorkerLink,
        selection: &Selection,
        options: StreamOptions,
    ) -> Result<Self, DeviceError> {
        let input = Input::open(link, selection, &options)?;
        let mut microphone = Self {
            input,
            link: link.clone(),
            options,
            past: StreamStats::default(),
            name: String::new(),
        };
        microphone.name = microphone.describe();
        Ok(microphone)
    }

    /// Moves capture to another device while it runs: the next frames come from it.
    ///
    /// # Errors
    ///
    /// When the new device cannot be opened; capture goes on from the old one.
    pub fn select(&mut self, selection: &Selection) -> Result<(), DeviceError> {
        match (&mut self.input, crate::synthetic::is_synthetic(selection)) {
            (Input::Device(input), false) => input.select(selection)?,
            _ => {
                let input = Input::open(&self.link, selection, &self.options)?;
                self.past = add(self.past, self.stats());
                self.past.switches += 1;
                self.input = input;
            }
        }
        self.name = self.describe();
        Ok(())
    }

    /// The device now captured from.
    #[must_use]
    pub fn device(&self) -> DeviceId {
        match &self.input {
            Input::Device(input) => input.current().device.clone(),
            Input::Synthetic(source) => DeviceId::new(format!("synthetic:{}", source.name())),
        }
    }

    /// The counters of this microphone, over every device it used.
    #[must_use]
    pub fn stats(&self) -> StreamStats {
        let now = match &self.input {
            Input::Device(input) => input.stats(),
            Input::Synthetic(_) => StreamStats::default(),
        };
        add(self.past, now)
    }

    /// The sample rate the device runs at (`None` for synthetic sources, which run at
    /// 48 kHz): anything else is resampled here.
    #[must_use]
    pub fn device_rate(&self) -> Option<u32> {
        match &self.input {
            Input::Device(input) => Some(input.ring.rate),
            Input::Synthetic(_) => None,
        }
    }

    /// How much audio is waiting to be read, in 48 kHz samples: a caller that wants to
    /// pace itself by the device clock reads when this reaches a frame.
    pub fn available(&mut self) -> usize {
        match &mut self.input {
            Input::Device(input) => {
                input.pull();
                input.fifo.len()
            }
            Input::Synthetic(_) => FRAME_SAMPLES,
        }
    }

    fn describe(&self) -> String {
        format!("microphone {}", self.device())
    }
}

impl Input {
    fn open(
        link: &WorkerLink,
        selection: &Selection,
        options: &StreamOptions,
    ) -> Result<Self, DeviceError> {
        if let Some(source) = crate::synthetic::open_source(selection)? {
            return Ok(Self::Synthetic(source));
        }
        let (stream, ring, swaps) = link.open_input(selection.clone(), *options)?;
        Ok(Self::Device(Box::new(DeviceInput::new(
            stream,
            ring,
            swaps,
            options,
            link.clone(),
        ))))
    }
}

impl AudioSource for Microphone {
    fn read_frame(&mut self, frame: &mut [i16]) -> Result<SourceState, AudioIoError> {
        match &mut self.input {
            Input::Device(input) => {
                input.read(frame);
                Ok(SourceState::Active)
            }
            Input::Synthetic(source) => source.read_frame(frame),
        }
    }

    fn name(&self) -> &str {
        &self.name
    }
}

impl DeviceInput {
    fn new(
        stream: StreamId,
        ring: InputRing,
        swaps: Receiver<InputRing>,
        options: &StreamOptions,
        link: WorkerLink,
    ) -> Self {
        let fifo_capacity = SAMPLE_RATE as usize / 2;
        let mut input = Self {
            stream,
            resampler: passthrough(),
            mono: Vec::new(),
            ring,
            swaps,
            fifo: VecDeque::with_capacity(fifo_capacity),
            fifo_capacity,
            max_latency: samples_in(options.max_latency).max(2 * FRAME_SAMPLES),
            trimmed: 0,
            padded: 0,
            switches: 0,
            link,
        };
        input.prepare();
        input
    }

    fn current(&self) -> &InputRing {
        &self.ring
    }

    /// Sizes the scratch buffers and the resampler for the current ring's format.
    fn prepare(&mut self) {
        let ring = &self.ring;
        self.resampler = MonoResampler::new(ring.rate, SAMPLE_RATE).unwrap_or_else(|error| {
            tracing::debug!(%error, rate = ring.rate, "no resampler, passing through");
            passthrough()
        });
        let frames = ring.consumer.buffer().capacity() / usize::from(ring.channels.max(1));
        self.mono = Vec::with_capacity(frames);
    }

    /// Takes a ring the worker switched to, then moves what the device delivered into
    /// the 48 kHz fifo.
    fn pull(&mut self) {
        while let Ok(ring) = self.swaps.try_recv() {
            self.trimmed += self.ring.counters.overflow.load(Relaxed);
            self.ring = ring;
            self.switches += 1;
            self.prepare();
        }
        let channels = usize::from(self.ring.channels.max(1));
        let available = self.ring.consumer.slots() / channels * channels;
        let Ok(chunk) = self.ring.consumer.read_chunk(available) else {
            return;
        };
        self.mono.clear();
        let (a, b) = chunk.as_slices();
        // Whole frames only go into the ring, so a frame never straddles the halves
        // unless the wrap falls inside one; iterate over both halves as one.
        let mut sum = 0.0;
        for (i, v) in a.iter().chain(b).enumerate() {
            sum += v;
            if i % channels == channels - 1 {
                if self.mono.len() < self.mono.capacity() {
                    self.mono.push(sum / channels as f32);
                }
                sum = 0.0;
            }
        }
        chunk.commit_all();
        let (fifo, capacity, trimmed) = (&mut self.fifo, self.fifo_capacity, &mut self.trimmed);
        self.resampler.process(&self.mono, |s| {
            if fifo.len() >= capacity {
                fifo.pop_front();
                *trimmed += 1;
            }
            fifo.push_back(s);
        });
    }

    fn read(&mut self, frame: &mut [i16]) {
        self.pull();
        if self.fifo.len() > self.max_latency {
            // A consumer slower than the device: keep the newest two frames.
            let excess = self.fifo.len() - 2 * frame.len().max(1);
            self.fifo.drain(..excess);
            self.trimmed += excess as u64;
        }
        let n = self.fifo.len().min(frame.len());
        for (out, v) in frame.iter_mut().zip(self.fifo.drain(..n)) {
            *out = to_i16(v);
        }
        frame[n..].fill(0);
        self.padded += (frame.len() - n) as u64;
    }

    fn select(&mut self, selection: &Selection) -> Result<(), DeviceError> {
        self.link.select(self.stream, selection.clone())?;
        self.pull();
        Ok(())
    }

    fn stats(&self) -> StreamStats {
        let c = &self.ring.counters;
        StreamStats {
            callbacks: c.callbacks.load(Relaxed),
            overflow_samples: c.overflow.load(Relaxed) + self.trimmed,
            underrun_samples: self.padded,
            device_errors: c.errors.load(Relaxed),
            switches: self.switches,
        }
    }
}

impl Drop for DeviceInput {
    fn drop(&mut self) {
        self.link.close(self.stream);
    }
}

impl Speaker {
    pub(crate) fn open(
        link: &WorkerLink,
        selection: &Selection,
        options: StreamOptions,
    ) -> Result<Self, DeviceError> {
        let output = Output::open(link, selection, &options)?;
        let mut speaker = Self {
            output,
            link: link.clone(),
            options,
            past: StreamStats::default(),
            name: String::new(),
        };
        speaker.name = speaker.describe();
        Ok(speaker)
    }

    /// Moves playback to another device while it runs.
    ///
    /// # Errors
    ///
    /// When the new device cannot be opened; playback goes on on the old one.
    pub fn select(&mut self, selection: &Selection) -> Result<(), DeviceError> {
        match (&mut self.output, crate::synthetic::is_synthetic(selection)) {
            (Output::Device(output), false) => output.select(selection)?,
            _ => {
                let output = Output::open(&self.link, selection, &self.options)?;
                self.past = add(self.past, self.stats());
                self.past.switches += 1;
                if let Output::Synthetic(sink) = &mut self.output
                    && let Err(error) = sink.finish()
                {
                    tracing::debug!(%error, "synthetic sink not finished");
                }
                self.output = output;
            }
        }
        self.name = self.describe();
        Ok(())
    }

    /// The device now played on.
    #[must_use]
    pub fn device(&self) -> DeviceId {
        match &self.output {
            Output::Device(output) => output.ring.device.clone(),
            Output::Synthetic(sink) => DeviceId::new(format!("synthetic:{}", sink.name())),
        }
    }

    /// The counters of this speaker, over every device it used.
    #[must_use]
    pub fn stats(&self) -> StreamStats {
        let now = match &self.output {
            Output::Device(output) => output.stats(),
            Output::Synthetic(_) => StreamStats::default(),
        };
        add(self.past, now)
    }

    /// The sample rate the device runs at (`None` for synthetic sinks).
    #[must_use]
    pub fn device_rate(&self) -> Option<u32> {
        match &self.output {
            Output::Device(output) => Some(output.ring.rate),
            Output::Synthetic(_) => None,
        }
    }

    /// How much audio waits to be played, as time: a caller pacing itself by the
    /// device clock writes while this is below a few frames.
    pub fn buffered(&mut self) -> Duration {
        match &mut self.output {
            Output::Device(output) => {
                output.take_swaps();
                let ring = &output.ring;
                let queued = ring.producer.buffer().capacity() - ring.producer.slots();
                let frames = queued / usize::from(ring.channels.max(1));
                Duration::from_micros(frames as u64 * 1_000_000 / u64::from(ring.rate.max(1)))
            }
            Output::Synthetic(_) => Duration::ZERO,
        }
    }

    fn describe(&self) -> String {
        format!("speaker {}", self.device())
    }
}

impl Output {
    fn open(
        link: &WorkerLink,
        selection: &Selection,
        options: &StreamOptions,
    ) -> Result<Self, DeviceError> {
        if let Some(sink) = crate::synthetic::open_sink(selection)? {
            return Ok(Self::Synthetic(sink));
        }
        let (stream, ring, swaps) = link.open_output(selection.clone(), *options)?;
        Ok(Self::Device(Box::new(DeviceOutput::new(
            stream,
            ring,
            swaps,
            options,
            link.clone(),
        ))))
    }
}

impl AudioSink for Speaker {
    fn write_frame(&mut self, frame: &[i16]) -> Result<(), AudioIoError> {
        match &mut self.output {
            Output::Device(output) => {
                output.write(frame);
                Ok(())
            }
            Output::Synthetic(sink) => sink.write_frame(frame),
        }
    }

    fn finish(&mut self) -> Result<(), AudioIoError> {
        match &mut self.output {
            Output::Device(_) => Ok(()),
            Output::Synthetic(sink) => sink.finish(),
        }
    }

    fn name(&self) -> &str {
        &self.name
    }
}

impl DeviceOutput {
    fn new(
        stream: StreamId,
        ring: OutputRing,
        swaps: Receiver<OutputRing>,
        options: &StreamOptions,
        link: WorkerLink,
    ) -> Self {
        let mut output = Self {
            stream,
            ring,
            swaps,
            resampler: passthrough(),
            mono: Vec::with_capacity(FRAME_SAMPLES),
            interleaved: Vec::new(),
            max_latency_time: options.max_latency,
            max_latency: 0,
            dropped: 0,
            switches: 0,
            link,
        };
        output.prepare();
        output
    }

    fn prepare(&mut self) {
        let ring = &self.ring;
        self.resampler = MonoResampler::new(SAMPLE_RATE, ring.rate).unwrap_or_else(|error| {
            tracing::debug!(%error, rate = ring.rate, "no resampler, passing through");
            passthrough()
        });
        let channels = usize::from(ring.channels.max(1));
        // A frame at the device rate, plus the resampler's chunk of slack, interleaved.
        let frames = (ring.rate as usize).div_ceil(50) + ring.rate as usize / 50 + 64;
        self.interleaved = Vec::with_capacity(frames * channels);
        let max_frames = u128::from(ring.rate) * self.max_latency_time.as_micros() / 1_000_000;
        self.max_latency = usize::try_from(max_frames).unwrap_or(usize::MAX) * channels;
    }

    fn take_swaps(&mut self) {
        while let Ok(ring) = self.swaps.try_recv() {
            self.ring = ring;
            self.switches += 1;
            self.prepare();
        }
    }

    fn write(&mut self, frame: &[i16]) {
        self.take_swaps();
        let channels = usize::from(self.ring.channels.max(1));
        self.interleaved.clear();
        let interleaved = &mut self.interleaved;
        for piece in frame.chunks(FRAME_SAMPLES) {
            self.mono.clear();
            self.mono
                .extend(piece.iter().map(|&s| f32::from(s) / 32768.0));
            self.resampler.process(&self.mono, |out| {
                if interleaved.len() + channels <= interleaved.capacity() {
                    interleaved.extend(std::iter::repeat_n(out, channels));
                }
            });
        }
        let producer = &mut self.ring.producer;
        let queued = producer.buffer().capacity() - producer.slots();
        if queued + self.interleaved.len() > self.max_latency.max(self.interleaved.len()) {
            // The device plays slower than frames come: drop this one.
            self.dropped += self.interleaved.len() as u64;
            return;
        }
        let (_, rest) = producer.push_partial_slice(&self.interleaved);
        self.dropped += rest.len() as u64;
    }

    fn select(&mut self, selection: &Selection) -> Result<(), DeviceError> {
        self.link.select(self.stream, selection.clone())?;
        self.take_swaps();
        Ok(())
    }

    fn stats(&self) -> StreamStats {
        let c = &self.ring.counters;
        StreamStats {
            callbacks: c.callbacks.load(Relaxed),
            overflow_samples: c.overflow.load(Relaxed) + self.dropped,
            underrun_samples: c.underrun.load(Relaxed),
            device_errors: c.errors.load(Relaxed),
            switches: self.switches,
        }
    }
}

impl Drop for DeviceOutput {
    fn drop(&mut self) {
        self.link.close(self.stream);
    }
}

fn passthrough() -> MonoResampler {
    MonoResampler::new(SAMPLE_RATE, SAMPLE_RATE).expect("equal rates need no resampler")
}

fn add(a: StreamStats, b: StreamStats) -> StreamStats {
    StreamStats {
        callbacks: a.callbacks + b.callbacks,
        overflow_samples: a.overflow_samples + b.overflow_samples,
        underrun_samples: a.underrun_samples + b.underrun_samples,
        device_errors: a.device_errors + b.device_errors,
        switches: a.switches + b.switches,
    }
}

/// 48 kHz samples in `d`.
fn samples_in(d: Duration) -> usize {
    usize::try_from(d.as_micros() * u128::from(SAMPLE_RATE) / 1_000_000).unwrap_or(usize::MAX)
}

fn to_i16(v: f32) -> i16 {
    (v * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}
