//! [`DeviceManager`]: the one entry point the client uses to list, open and watch
//! devices.

use std::sync::mpsc::{self, Receiver};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use ringwire_media::video::{FrameRate, VideoFormat};

use crate::audio::{AudioBackend, Microphone, Speaker, StreamOptions};
use crate::error::DeviceError;
use crate::info::{DeviceId, DeviceInfo, DeviceKind, Selection};
use crate::worker::{self, WorkerLink};
use crate::{camera, screen, synthetic};

/// How a [`DeviceManager`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeviceManagerConfig {
    /// Which sound system to use (default: cpal's choice, PulseAudio when running).
    pub audio_backend: AudioBackend,
    /// How often device lists are compared for [`DeviceEvent`]s and lost devices
    /// (default 1 s; the sound host's listing takes a few milliseconds).
    pub poll_interval: Duration,
    /// List the synthetic devices (tone, speech-like and silent microphones, a null
    /// speaker, a test-pattern camera and screen). Off by default: they are never
    /// offered in place of real devices unless asked for. Opening one by its id works
    /// either way.
    pub synthetic: bool,
    /// How sound streams are opened.
    pub stream: StreamOptions,
}

impl Default for DeviceManagerConfig {
    fn default() -> Self {
        Self {
            audio_backend: AudioBackend::Auto,
            poll_interval: Duration::from_secs(1),
            synthetic: false,
            stream: StreamOptions::default(),
        }
    }
}

impl DeviceManagerConfig {
    /// The defaults, with synthetic devices listed or not.
    #[must_use]
    pub fn with_synthetic(mut self, synthetic: bool) -> Self {
        self.synthetic = synthetic;
        self
    }

    /// The defaults, polling every `interval`.
    #[must_use]
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// The defaults, with this sound backend.
    #[must_use]
    pub fn with_audio_backend(mut self, backend: AudioBackend) -> Self {
        self.audio_backend = backend;
        self
    }

    /// The defaults, with these stream options.
    #[must_use]
    pub fn with_stream_options(mut self, options: StreamOptions) -> Self {
        self.stream = options;
        self
    }
}

/// Something that happened to the devices.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DeviceEvent {
    /// A device appeared (plugged in, a sink loaded).
    Added {
        /// The device.
        device: DeviceInfo,
    },
    /// A device disappeared.
    Removed {
        /// What it was.
        kind: DeviceKind,
        /// Its id.
        id: DeviceId,
    },
    /// The system default of a kind changed (`None`: there is no default now).
    DefaultChanged {
        /// Which kind.
        kind: DeviceKind,
        /// The new default.
        id: Option<DeviceId>,
    },
    /// A stream that follows the default moved to the new default.
    Switched {
        /// Which kind of stream.
        kind: DeviceKind,
        /// The device it left.
        from: DeviceId,
        /// The device it plays or captures on now.
        to: DeviceId,
    },
    /// A stream's device disappeared or broke, and the stream moved to the default
    /// (and follows the default from now on).
    FellBack {
        /// Which kind of stream.
        kind: DeviceKind,
        /// The device that is gone.
        from: DeviceId,
        /// The default it moved to.
        to: DeviceId,
    },
    /// A stream's device disappeared and there was nothing to fall back to: the stream
    /// is silent until a device appears (it is retried every poll).
    StreamFailed {
        /// Which kind of stream.
        kind: DeviceKind,
        /// The device that is gone.
        device: DeviceId,
        /// Why the fallback failed.
        error: String,
    },
}

/// Lists, opens and watches microphones, speakers, cameras, screens and windows.
///
/// One background thread owns the sound host and every sound stream (see the crate
/// docs); it is stopped when the manager and every stream it opened are dropped.
/// Events queue up until [`DeviceManager::poll_event`] takes them.
#[derive(Debug)]
pub struct DeviceManager {
    config: DeviceManagerConfig,
    link: WorkerLink,
    events: Mutex<Receiver<DeviceEvent>>,
}

impl DeviceManager {
    /// Starts a manager. A machine without a sound server still gets one (sound
    /// listing then fails with [`DeviceError::Unavailable`]).
    ///
    /// # Errors
    ///
    /// [`DeviceError::InvalidConfig`] for a zero poll interval, or when the worker
    /// thread cannot be started.
    pub fn new(config: DeviceManagerConfig) -> Result<Self, DeviceError> {
        if config.poll_interval.is_zero() {
            return Err(DeviceError::InvalidConfig("poll interval must not be zero"));
        }
        let (events_tx, events) = mpsc::channel();
        let link = worker::spawn(
            config.audio_backend,
            config.poll_interval,
            camera::ENABLED,
            events_tx,
        )
        .map_err(|_| DeviceError::InvalidConfig("cannot start the device thread"))?;
        Ok(Self {
            config,
            link,
            events: Mutex::new(events),
        })
    }

    /// The configuration this manager runs with.
    #[must_use]
    pub fn config(&self) -> &DeviceManagerConfig {
        &self.config
    }

    /// The sound host in use (`"pulseaudio"`, `"alsa"`), `None` when there is none.
    #[must_use]
    pub fn audio_host(&self) -> Option<String> {
        self.link.host_name()
    }

    /// Every device of every kind; a kind that cannot be listed (no sound server, no
    /// display) is left out; [`DeviceManager::list`] says why.
    #[must_use]
    pub fn devices(&self) -> Vec<DeviceInfo> {
        [
            DeviceKind::Microphone,
            DeviceKind::Speaker,
            DeviceKind::Camera,
            DeviceKind::Screen,
            DeviceKind::Window,
        ]
        .into_iter()
        .flat_map(|kind| self.list(kind).unwrap_or_default())
        .collect()
    }

    /// The devices of one kind, real ones first, then synthetic ones when the
    /// configuration lists them.
    ///
    /// # Errors
    ///
    /// [`DeviceError::Unavailable`] when the sound server or display cannot be
    /// reached, [`DeviceError::Disabled`] when the kind is not compiled in (cameras
    /// and screens are cargo features), [`DeviceError::WorkerStopped`].
    pub fn list(&self, kind: DeviceKind) -> Result<Vec<DeviceInfo>, DeviceError> {
        let mut devices = match kind {
            DeviceKind::Microphone | DeviceKind::Speaker => self.link.list(kind),
            DeviceKind::Camera => camera::list(),
            DeviceKind::Screen => screen::screens(),
            DeviceKind::Window => screen::windows(),
        };
        if self.config.synthetic {
            let synthetic = synthetic::list(kind);
            match &mut devices {
                Ok(devices) => devices.extend(synthetic),
                Err(_) if !synthetic.is_empty() => devices = Ok(synthetic),
                Err(_) => {}
            }
        }
        devices
    }

    /// Opens a microphone: the default, a device by id, or a synthetic or file source
    /// (`synthetic:tone-440`, `file:/path/to.wav`).
    ///
    /// # Errors
    ///
    /// [`DeviceError::NoDevice`] when there is no default, [`DeviceError::NotFound`],
    /// [`DeviceError::Busy`], [`DeviceError::AccessDenied`], [`DeviceError::Unsupported`],
    /// [`DeviceError::Audio`] for a file source that cannot be read.
    pub fn open_microphone(&self, selection: &Selection) -> Result<Microphone, DeviceError> {
        Microphone::open(&self.link, selection, self.config.stream)
    }

    /// Opens a speaker: the default, a device by id, or a synthetic or file sink
    /// (`synthetic:null`, `file:/path/to.wav`).
    ///
    /// # Errors
    ///
    /// As [`DeviceManager::open_microphone`].
    pub fn open_speaker(&self, selection: &Selection) -> Result<Speaker, DeviceError> {
        Speaker::open(&self.link, selection, self.config.stream)
    }

    /// Opens a camera delivering frames near `format` (the closest size, then rate,
    /// the camera offers), or the synthetic test pattern (`synthetic:test-pattern`) or
    /// a Y4M file (`file:/path/to.y4m`).
    ///
    /// # Errors
    ///
    /// [`DeviceError::NoDevice`], [`DeviceError::NotFound`], [`DeviceError::Busy`],
    /// [`DeviceError::AccessDenied`], [`DeviceError::Disabled`] without the `camera`
    /// feature, [`DeviceError::Video`] for a file that cannot be read.
    pub fn open_camera(
        &self,
        selection: &Selection,
        format: VideoFormat,
    ) -> Result<crate::VideoCapture, DeviceError> {
        if let Some(source) = synthetic::open_video(selection, format)? {
            return Ok(crate::VideoCapture::synthetic(source));
        }
        camera::open(selection, format)
    }

    /// Starts capturing a screen or a window (ids from [`DeviceManager::list`] with
    /// [`DeviceKind::Screen`] or [`DeviceKind::Window`]) at `frame_rate`, or the
    /// synthetic screen (`synthetic:test-screen`).
    ///
    /// # Errors
    ///
    /// [`DeviceError::NotFound`] for an unknown id, [`DeviceError::Unavailable`]
    /// without a display, [`DeviceError::Disabled`] without the `screen` feature.
    pub fn open_screen(
        &self,
        id: &DeviceId,
        frame_rate: FrameRate,
    ) -> Result<crate::VideoCapture, DeviceError> {
        let selection = Selection::Device(id.clone());
        let format = VideoFormat::new(1280, 720, frame_rate)?;
        if let Some(source) = synthetic::open_video(&selection, format)? {
            return Ok(crate::VideoCapture::synthetic(source));
        }
        screen::open(id, frame_rate)
    }

    /// The next event, if one is queued.
    #[must_use]
    pub fn poll_event(&self) -> Option<DeviceEvent> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .try_recv()
            .ok()
    }

    /// The next event, waiting up to `timeout` for one (for tools and tests; an
    /// async client polls [`DeviceManager::poll_event`] on its own timer).
    #[must_use]
    pub fn wait_event(&self, timeout: Duration) -> Option<DeviceEvent> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv_timeout(timeout)
            .ok()
    }
}
