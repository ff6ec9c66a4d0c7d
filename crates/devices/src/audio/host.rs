//! Everything that talks to cpal: listing, choosing a stream format, and the real-time
//! callbacks, which only move samples between the device and a lock-free ring.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{BufferSize, ErrorKind, SampleFormat, StreamConfig, SupportedBufferSize};

use crate::audio::{AudioBackend, Counters, InputRing, OutputRing, StreamOptions};
use crate::error::DeviceError;
use crate::info::{DeviceFormat, DeviceId, DeviceInfo, DeviceKind, Selection};

/// How long cpal may take to set up a stream.
const BUILD_TIMEOUT: Duration = Duration::from_secs(3);

/// How much sound a ring holds: far more than the 10-20 ms that is normally in it, so
/// that only a stalled consumer overflows it.
const RING_SECONDS_DIVISOR: usize = 2;

/// The sound host (PulseAudio, ALSA, ...), owned by the device worker thread.
///
/// With PulseAudio, playback does not use cpal's PulseAudio streams: cpal 0.18.2's
/// pure-Rust PulseAudio client stalls with any fixed buffer (measured against a null
/// sink: 0 to 24 % of real time for 10-100 ms buffers; only its default 2 s buffer
/// keeps up, far too much latency for a call). Playback goes through ALSA's pulse
/// plugin instead (libpulse underneath, which keeps up with 10 ms periods): to the
/// default sink through the `pulse` PCM, to another sink through an ALSA PCM named
/// like the sink (`pcm.<sink> { type pulse; device <sink> }`, which
/// [`PulseServer`](crate::testing::PulseServer) writes for its sinks). Listing, events
/// and capture use cpal's PulseAudio host.
pub(crate) struct AudioHost {
    host: cpal::Host,
    /// ALSA, for playback when `host` is PulseAudio.
    alsa: Option<cpal::Host>,
}

impl AudioHost {
    /// Connects to the backend's sound host.
    pub(crate) fn new(backend: AudioBackend) -> Result<Self, DeviceError> {
        let host = match backend {
            AudioBackend::Auto => cpal::default_host(),
            AudioBackend::PulseAudio => cpal::host_from_id(cpal::HostId::PulseAudio)
                .map_err(|e| unavailable("pulseaudio", e))?,
            AudioBackend::Alsa => {
                cpal::host_from_id(cpal::HostId::Alsa).map_err(|e| unavailable("alsa", e))?
            }
        };
        let alsa = (host.id() == cpal::HostId::PulseAudio)
            .then(|| cpal::host_from_id(cpal::HostId::Alsa).ok())
            .flatten();
        Ok(Self { host, alsa })
    }

    /// The device playback to `selection` goes to, and the id it is known by (see
    /// the type's docs for why PulseAudio playback goes through ALSA).
    pub(crate) fn playback_device(
        &self,
        selection: &Selection,
    ) -> Result<(cpal::Device, DeviceId), DeviceError> {
        let kind = DeviceKind::Speaker;
        let Some(alsa) = &self.alsa else {
            return self.find(kind, selection);
        };
        let (pcm, id) = match selection {
            Selection::Device(id) if id.scheme() == "alsa" => (id.rest().to_owned(), id.clone()),
            Selection::Device(_) => {
                // The sink must exist in PulseAudio first.
                let (_, id) = self.find(kind, selection)?;
                (id.rest().to_owned(), id)
            }
            Selection::Default => {
                let id = self
                    .default_id(kind)
                    .ok_or(DeviceError::NoDevice { kind })?;
                ("pulse".to_owned(), id)
            }
        };
        let alsa_id: cpal::DeviceId =
            format!("alsa:{pcm}")
                .parse()
                .map_err(|_| DeviceError::NotFound {
                    kind,
                    id: id.clone(),
                })?;
        let device = alsa
            .device_by_id(&alsa_id)
            .ok_or_else(|| DeviceError::Unsupported {
                id: id.clone(),
                reason: format!(
                    "playback to a PulseAudio sink other than the default needs an ALSA PCM \
                     named like it (pcm.{pcm} {{ type pulse; device {pcm} }})"
                ),
            })?;
        Ok((device, id))
    }

    /// The host's name: `"pulseaudio"`, `"alsa"`.
    pub(crate) fn name(&self) -> String {
        self.host.id().to_string()
    }

    /// The devices of `kind` (microphones or speakers), with their formats when asked.
    pub(crate) fn list(
        &self,
        kind: DeviceKind,
        with_formats: bool,
    ) -> Result<Vec<DeviceInfo>, DeviceError> {
        let default = self.default_id(kind);
        let devices = match kind {
            DeviceKind::Microphone => self.host.input_devices().map(|d| d.collect::<Vec<_>>()),
            _ => self.host.output_devices().map(|d| d.collect::<Vec<_>>()),
        }
        .map_err(|e| unavailable(&self.name(), e))?;
        let mut infos: Vec<DeviceInfo> = devices
            .iter()
            .filter_map(|device| {
                let id = DeviceId::new(device.id().ok()?.to_string());
                let name = device
                    .description()
                    .map(|d| d.name().to_owned())
                    .unwrap_or_else(|_| id.rest().to_owned());
                let formats = if with_formats {
                    formats(device, kind)
                } else {
                    Vec::new()
                };
                Some(DeviceInfo {
                    is_default: default.as_ref() == Some(&id),
                    id,
                    kind,
                    name,
                    application: None,
                    synthetic: false,
                    formats,
                })
            })
            .collect();
        infos.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(infos)
    }

    /// One device of `kind` with its formats.
    pub(crate) fn list_one(
        &self,
        kind: DeviceKind,
        id: &DeviceId,
    ) -> Result<DeviceInfo, DeviceError> {
        let (device, id) = self.find(kind, &Selection::Device(id.clone()))?;
        let name = device
            .description()
            .map(|d| d.name().to_owned())
            .unwrap_or_else(|_| id.rest().to_owned());
        Ok(DeviceInfo {
            is_default: self.default_id(kind).as_ref() == Some(&id),
            id,
            kind,
            name,
            application: None,
            synthetic: false,
            formats: formats(&device, kind),
        })
    }

    /// The system default of `kind`.
    pub(crate) fn default_id(&self, kind: DeviceKind) -> Option<DeviceId> {
        let device = match kind {
            DeviceKind::Microphone => self.host.default_input_device(),
            _ => self.host.default_output_device(),
        }?;
        Some(DeviceId::new(device.id().ok()?.to_string()))
    }

    /// The device `selection` names.
    pub(crate) fn find(
        &self,
        kind: DeviceKind,
        selection: &Selection,
    ) -> Result<(cpal::Device, DeviceId), DeviceError> {
        let device = match selection {
            Selection::Default => match kind {
                DeviceKind::Microphone => self.host.default_input_device(),
                _ => self.host.default_output_device(),
            }
            .ok_or(DeviceError::NoDevice { kind })?,
            Selection::Device(id) => {
                let not_found = || DeviceError::NotFound {
                    kind,
                    id: id.clone(),
                };
                let cpal_id: cpal::DeviceId = id.as_str().parse().map_err(|_| not_found())?;
                let device = self.host.device_by_id(&cpal_id).ok_or_else(not_found)?;
                let usable = match kind {
                    DeviceKind::Microphone => device.supports_input(),
                    _ => device.supports_output(),
                };
                if !usable {
                    return Err(not_found());
                }
                device
            }
        };
        let id = device.id().map_err(|e| match selection {
            Selection::Device(id) => stream_error(id, kind, e),
            Selection::Default => DeviceError::NoDevice { kind },
        })?;
        Ok((device, DeviceId::new(id.to_string())))
    }

    /// Starts capturing from `device` into a new ring.
    pub(crate) fn open_input(
        &self,
        device: &cpal::Device,
        id: &DeviceId,
        options: &StreamOptions,
    ) -> Result<(cpal::Stream, InputRing), DeviceError> {
        let (config, format) = stream_config(device, id, DeviceKind::Microphone, options)?;
        let channels = usize::from(config.channels);
        let capacity = ring_capacity(&config);
        let (mut producer, consumer) = rtrb::RingBuffer::<f32>::new(capacity);
        let counters = Arc::new(Counters::default());
        let data_counters = Arc::clone(&counters);
        // The real-time callback: convert to f32 and push whole frames; no locks, no
        // allocation, no logging. What does not fit is counted and dropped.
        let data = move |data: &cpal::Data, _: &cpal::InputCallbackInfo| {
            data_counters.callbacks.fetch_add(1, Relaxed);
            let room = producer.slots() / channels * channels;
            let offered = data.len() / channels * channels;
            let take = room.min(offered);
            let pushed = match data.sample_format() {
                SampleFormat::F32 => data
                    .as_slice::<f32>()
                    .map(|s| push_converted(&mut producer, &s[..take], |v| v)),
                SampleFormat::I16 => data
                    .as_slice::<i16>()
                    .map(|s| push_converted(&mut producer, &s[..take], |v| f32::from(v) / 32768.0)),
                _ => None,
            }
            .unwrap_or(0);
            let lost = (data.len() - pushed) as u64;
            if lost > 0 {
                data_counters.overflow.fetch_add(lost, Relaxed);
            }
        };
        let stream = device
            .build_input_stream_raw(
                config,
                format,
                data,
                error_callback(&counters, id),
                Some(BUILD_TIMEOUT),
            )
            .map_err(|e| stream_error(id, DeviceKind::Microphone, e))?;
        stream
            .play()
            .map_err(|e| stream_error(id, DeviceKind::Microphone, e))?;
        let ring = InputRing {
            consumer,
            channels: config.channels,
            rate: config.sample_rate,
            device: id.clone(),
            counters,
        };
        Ok((stream, ring))
    }

    /// Starts playing to `device` from a new ring.
    pub(crate) fn open_output(
        &self,
        device: &cpal::Device,
        id: &DeviceId,
        options: &StreamOptions,
    ) -> Result<(cpal::Stream, OutputRing), DeviceError> {
        let (config, format) = stream_config(device, id, DeviceKind::Speaker, options)?;
        let capacity = ring_capacity(&config);
        let (producer, mut consumer) = rtrb::RingBuffer::<f32>::new(capacity);
        let counters = Arc::new(Counters::default());
        let data_counters = Arc::clone(&counters);
        // The real-time callback: pop what the ring has, silence for the rest.
        let data = move |data: &mut cpal::Data, _: &cpal::OutputCallbackInfo| {
            data_counters.callbacks.fetch_add(1, Relaxed);
            let popped = match data.sample_format() {
                SampleFormat::F32 => data.as_slice_mut::<f32>().map(|out| {
                    let (done, rest) = consumer.pop_partial_slice(out);
                    rest.fill(0.0);
                    done.len()
                }),
                SampleFormat::I16 => data.as_slice_mut::<i16>().map(|out| {
                    let n = consumer.slots().min(out.len());
                    let mut filled = 0;
                    if let Ok(chunk) = consumer.read_chunk(n) {
                        for (o, v) in out.iter_mut().zip(chunk) {
                            *o = (v * 32767.0).clamp(-32768.0, 32767.0) as i16;
                            filled += 1;
                        }
                    }
                    out[filled..].fill(0);
                    filled
                }),
                _ => None,
            };
            let missing = (data.len() - popped.unwrap_or(0)) as u64;
            if missing > 0 {
                data_counters.underrun.fetch_add(missing, Relaxed);
            }
        };
        let stream = device
            .build_output_stream_raw(
                config,
                format,
                data,
                error_callback(&counters, id),
                Some(BUILD_TIMEOUT),
            )
            .map_err(|e| stream_error(id, DeviceKind::Speaker, e))?;
        stream
            .play()
            .map_err(|e| stream_error(id, DeviceKind::Speaker, e))?;
        let ring = OutputRing {
            producer,
            channels: config.channels,
            rate: config.sample_rate,
            device: id.clone(),
            counters,
        };
        Ok((stream, ring))
    }
}

/// Pushes `samples` converted by `convert`; returns how many went in.
fn push_converted<T: Copy>(
    producer: &mut rtrb::Producer<f32>,
    samples: &[T],
    convert: impl Fn(T) -> f32,
) -> usize {
    match producer.write_chunk_uninit(samples.len()) {
        Ok(chunk) => chunk.fill_from_iter(samples.iter().map(|&s| convert(s))),
        Err(_) => 0,
    }
}

/// The error callback: counts, and flags the errors after which the stream is dead
/// so the worker rebuilds it. ALSA's pulse plugin reports bursts of harmless I/O
/// errors; those are only counted.
fn error_callback(
    counters: &Arc<Counters>,
    id: &DeviceId,
) -> impl FnMut(cpal::Error) + Send + use<> {
    let counters = Arc::clone(counters);
    let id = id.clone();
    move |error: cpal::Error| {
        counters.errors.fetch_add(1, Relaxed);
        if matches!(
            error.kind(),
            ErrorKind::DeviceNotAvailable | ErrorKind::StreamInvalidated
        ) {
            counters.lost.store(true, Relaxed);
            tracing::debug!(device = %id, %error, "audio stream lost");
        }
    }
}

/// The stream format: the device's channels, `options.device_rate` or else 48 kHz when
/// it can (else its default rate), f32 samples when offered (else i16), and a buffer
/// of `options.buffer` when the device allows it.
fn stream_config(
    device: &cpal::Device,
    id: &DeviceId,
    kind: DeviceKind,
    options: &StreamOptions,
) -> Result<(StreamConfig, SampleFormat), DeviceError> {
    let (default, ranges) = match kind {
        DeviceKind::Microphone => (
            device.default_input_config(),
            device
                .supported_input_configs()
                .map(Iterator::collect::<Vec<_>>),
        ),
        _ => (
            device.default_output_config(),
            device
                .supported_output_configs()
                .map(Iterator::collect::<Vec<_>>),
        ),
    };
    let default = default.map_err(|e| stream_error(id, kind, e))?;
    let ranges = ranges.map_err(|e| stream_error(id, kind, e))?;
    let channels = default.channels();
    let offers = |rate: u32, format: SampleFormat| {
        ranges.iter().any(|r| {
            r.channels() == channels
                && r.sample_format() == format
                && (r.min_sample_rate()..=r.max_sample_rate()).contains(&rate)
        })
    };
    let preferred = options.device_rate.unwrap_or(crate::audio::SAMPLE_RATE);
    let offered = [SampleFormat::F32, SampleFormat::I16]
        .iter()
        .any(|&f| offers(preferred, f));
    let rate = match (offered, options.device_rate) {
        (true, _) => preferred,
        (false, None) => default.sample_rate(),
        (false, Some(rate)) => {
            return Err(DeviceError::Unsupported {
                id: id.clone(),
                reason: format!("no stream at {rate} Hz with {channels} channels"),
            });
        }
    };
    let format = [SampleFormat::F32, SampleFormat::I16]
        .into_iter()
        .find(|&f| {
            offers(rate, f) || (rate == default.sample_rate() && default.sample_format() == f)
        })
        .ok_or_else(|| DeviceError::Unsupported {
            id: id.clone(),
            reason: format!(
                "neither f32 nor i16 samples at {rate} Hz with {channels} channels (default {:?})",
                default.sample_format()
            ),
        })?;
    let frames = u32::try_from(u128::from(rate) * options.buffer.as_micros() / 1_000_000)
        .unwrap_or(u32::MAX)
        .max(1);
    let buffer_size = match default.buffer_size() {
        SupportedBufferSize::Range { min, max } if (*min..=*max).contains(&frames) => {
            BufferSize::Fixed(frames)
        }
        _ => BufferSize::Default,
    };
    Ok((
        StreamConfig {
            channels,
            sample_rate: rate,
            buffer_size,
        },
        format,
    ))
}

fn ring_capacity(config: &StreamConfig) -> usize {
    (config.sample_rate as usize * usize::from(config.channels) / RING_SECONDS_DIVISOR).max(1024)
}

/// The formats to show for a device: its default first, then mono and stereo ranges.
fn formats(device: &cpal::Device, kind: DeviceKind) -> Vec<DeviceFormat> {
    let (default, ranges) = match kind {
        DeviceKind::Microphone => (
            device.default_input_config().ok(),
            device
                .supported_input_configs()
                .map(Iterator::collect::<Vec<_>>)
                .unwrap_or_default(),
        ),
        _ => (
            device.default_output_config().ok(),
            device
                .supported_output_configs()
                .map(Iterator::collect::<Vec<_>>)
                .unwrap_or_default(),
        ),
    };
    let mut formats: Vec<DeviceFormat> = default
        .into_iter()
        .map(|d| DeviceFormat::Audio {
            channels: d.channels(),
            min_rate: d.sample_rate(),
            max_rate: d.sample_rate(),
            sample_format: d.sample_format().to_string(),
        })
        .collect();
    for range in ranges.iter().filter(|r| r.channels() <= 2) {
        let format = DeviceFormat::Audio {
            channels: range.channels(),
            min_rate: range.min_sample_rate(),
            max_rate: range.max_sample_rate(),
            sample_format: range.sample_format().to_string(),
        };
        if !formats.contains(&format) {
            formats.push(format);
        }
    }
    formats
}

/// Maps a cpal error about one device to who is at fault.
pub(crate) fn stream_error(id: &DeviceId, kind: DeviceKind, error: cpal::Error) -> DeviceError {
    match error.kind() {
        ErrorKind::DeviceBusy => DeviceError::Busy { id: id.clone() },
        ErrorKind::PermissionDenied => DeviceError::AccessDenied { id: id.clone() },
        ErrorKind::DeviceNotAvailable => DeviceError::NotFound {
            kind,
            id: id.clone(),
        },
        ErrorKind::UnsupportedConfig => DeviceError::Unsupported {
            id: id.clone(),
            reason: error.to_string(),
        },
        ErrorKind::HostUnavailable => unavailable(id.scheme(), error),
        _ => DeviceError::Platform {
            id: id.clone(),
            source: Box::new(error),
        },
    }
}

fn unavailable(host: &str, error: cpal::Error) -> DeviceError {
    DeviceError::Unavailable {
        what: format!("audio host {host}"),
        source: Box::new(error),
    }
}
