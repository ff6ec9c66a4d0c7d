//! Ringwire's devices: microphones, speakers, cameras, screens and windows, real and
//! synthetic, behind the traits the media engine consumes
//! ([`AudioSource`](ringwire_media::audio_io::AudioSource),
//! [`AudioSink`](ringwire_media::audio_io::AudioSink),
//! [`VideoSource`](ringwire_media::video::VideoSource)).
//!
//! A [`DeviceManager`] lists devices with stable ids, opens them, switches running
//! streams to another device, and reports devices that appear or disappear (by
//! polling) as [`DeviceEvent`]s; a stream whose device disappears falls back to the
//! default and says so ([`DeviceEvent::FellBack`]). Errors are typed: no device, not
//! found, busy, access denied ([`DeviceError`]).
//!
//! ```no_run
//! use ringwire_devices::{DeviceKind, DeviceManager, DeviceManagerConfig, Selection};
//! use ringwire_media::audio_io::{AudioSink, AudioSource};
//!
//! let devices = DeviceManager::new(DeviceManagerConfig::default())?;
//! for mic in devices.list(DeviceKind::Microphone)? {
//!     println!("{} {} default={}", mic.id, mic.name, mic.is_default);
//! }
//! let mut mic = devices.open_microphone(&Selection::Default)?;
//! let mut speaker = devices.open_speaker(&Selection::Default)?;
//! let mut frame = [0i16; 960];
//! // Every 20 ms: a frame from the microphone to the speaker (a local echo).
//! mic.read_frame(&mut frame)?;
//! speaker.write_frame(&frame)?;
//! // The user picks another speaker in the middle of the call: the stream moves.
//! speaker.select(&Selection::Device("pulseaudio:headset".into()))?;
//! while let Some(event) = devices.poll_event() {
//!     println!("{event:?}");
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What is what
//!
//! - Sound: cpal (PulseAudio through cpal's pure-Rust client, or ALSA), lock-free
//!   [`rtrb`] rings between the real-time callbacks and our side, [`rubato`] when a
//!   device does not run at 48 kHz; see [`audio`] for the threading rules. Under
//!   PulseAudio, playback goes through ALSA's pulse plugin because cpal 0.18.2's
//!   PulseAudio playback stalls with call-sized buffers (measured; see [`audio`]):
//!   the default sink always works, another sink needs an ALSA PCM named like it.
//! - Screens and windows: xcap (feature `screen`, on by default); see [`screen`].
//! - Cameras: nokhwa (feature `camera`, off by default); see [`camera`].
//! - Synthetic devices (tone, speech-like, silence, WAV, test pattern, Y4M): see
//!   [`synthetic`]; listed only when [`DeviceManagerConfig::synthetic`] asks for them.
//!
//! # What is tested where
//!
//! On the project's CI (Linux, no sound card, no camera, no display), the tests start
//! their own PulseAudio daemon with null sinks and their own Xvfb display
//! ([`testing`]), and check on those real stacks: listing sinks and sources with
//! defaults; a tone played through a [`Speaker`] into a null sink and captured back
//! from its monitor through a [`Microphone`], recognised by Goertzel, at 48 kHz and
//! with both devices at 44.1 kHz (our resampler both ways); switching the speaker
//! to another sink mid-stream with no gap of 100 ms or more, measured from what the
//! two monitors heard; a sink appearing ([`DeviceEvent::Added`]), then unloaded
//! while playing ([`DeviceEvent::Removed`], [`DeviceEvent::FellBack`], and the tone
//! is heard on the default sink); screens and windows listed with title and
//! application, and captured frames showing the window's colour; camera listing
//! empty without error. Only compiled, never run here: ALSA hardware devices,
//! PipeWire, the macOS and Windows back ends, Wayland capture, and every camera
//! path beyond "no camera" (formats, frames, switching).

pub mod audio;
pub mod camera;
// Without screens and cameras only synthetic captures are left.
#[cfg_attr(not(any(feature = "screen", feature = "camera")), allow(dead_code))]
mod capture;
// Camera pixel formats; only cameras use them, the unit tests always do.
#[cfg_attr(not(feature = "camera"), allow(dead_code))]
mod convert;
mod error;
mod info;
mod manager;
pub mod screen;
pub mod synthetic;
pub mod testing;
mod worker;

pub use audio::{AudioBackend, Microphone, Speaker, StreamOptions, StreamStats};
pub use capture::{CaptureStats, VideoCapture};
pub use error::{DeviceError, PlatformError};
pub use info::{DeviceFormat, DeviceId, DeviceInfo, DeviceKind, Selection};
pub use manager::{DeviceEvent, DeviceManager, DeviceManagerConfig};
