//! What a device is: its id, kind, name and formats, as listed and as printed by
//! `ringwire devices`.

use std::fmt;

use serde::Serialize;

/// A device's id, stable across runs on one machine: what a user's settings store.
///
/// The text says where the device comes from: `pulseaudio:<sink or source name>` or
/// `alsa:<pcm>` (cpal's ids), `camera:<index>`, `screen:<id>`, `window:<id>`, and
/// `synthetic:<name>` or `file:<path>` for the devices that need no hardware.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct DeviceId(String);

impl DeviceId {
    /// An id from its text (no checks: an unknown id fails when it is opened).
    #[must_use]
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id's text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the first `:` (`pulseaudio`, `screen`, `synthetic`).
    #[must_use]
    pub fn scheme(&self) -> &str {
        self.0.split_once(':').map_or("", |(scheme, _)| scheme)
    }

    /// The part after the first `:`.
    #[must_use]
    pub fn rest(&self) -> &str {
        self.0.split_once(':').map_or(&self.0, |(_, rest)| rest)
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for DeviceId {
    fn from(id: &str) -> Self {
        Self::new(id)
    }
}

/// What a device does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// Captures sound.
    Microphone,
    /// Plays sound.
    Speaker,
    /// Captures pictures of the user.
    Camera,
    /// A whole display, for screen sharing.
    Screen,
    /// One application window, for screen sharing.
    Window,
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Microphone => "microphone",
            Self::Speaker => "speaker",
            Self::Camera => "camera",
            Self::Screen => "screen",
            Self::Window => "window",
        })
    }
}

/// One format a device offers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DeviceFormat {
    /// Sound: channels, a range of sample rates and the sample type.
    Audio {
        /// Interleaved channels.
        channels: u16,
        /// Lowest sample rate in Hz.
        min_rate: u32,
        /// Highest sample rate in Hz.
        max_rate: u32,
        /// `"f32"`, `"i16"`, ...
        sample_format: String,
    },
    /// Pictures: a size and a rate.
    Video {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Frames per second (0 when the device does not say).
        frame_rate: f64,
        /// The pixel format (`"YUYV"`, `"NV12"`, `"RGBA"`).
        pixel_format: String,
    },
}

impl fmt::Display for DeviceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Audio {
                channels,
                min_rate,
                max_rate,
                sample_format,
            } if min_rate == max_rate => write!(f, "{channels}ch {min_rate}Hz {sample_format}"),
            Self::Audio {
                channels,
                min_rate,
                max_rate,
                sample_format,
            } => write!(f, "{channels}ch {min_rate}-{max_rate}Hz {sample_format}"),
            Self::Video {
                width,
                height,
                frame_rate,
                pixel_format,
            } => write!(f, "{width}x{height}@{frame_rate} {pixel_format}"),
        }
    }
}

/// A device as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceInfo {
    /// The id to select it by.
    pub id: DeviceId,
    /// What it does.
    pub kind: DeviceKind,
    /// A human name: the sound server's description, a window's title.
    pub name: String,
    /// The application that owns a window (`None` for other kinds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    /// Whether it is the system default of its kind (the primary screen for screens).
    pub is_default: bool,
    /// Whether it is a synthetic or file device rather than hardware.
    pub synthetic: bool,
    /// The formats it offers, preferred first (the device's default format first for
    /// sound devices).
    pub formats: Vec<DeviceFormat>,
}

/// Which device to use.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Selection {
    /// The system default, following it when it changes.
    Default,
    /// This device; when it disappears the stream falls back to the default and a
    /// [`DeviceEvent::FellBack`](crate::DeviceEvent::FellBack) says so.
    Device(DeviceId),
}

impl From<DeviceId> for Selection {
    fn from(id: DeviceId) -> Self {
        Self::Device(id)
    }
}
