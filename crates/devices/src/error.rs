//! The one error type of this crate.

use ringwire_media::audio_io::AudioIoError;
use ringwire_media::video::VideoIoError;

use crate::info::{DeviceId, DeviceKind};

/// An error from the platform's device layer (cpal, xcap, nokhwa), kept as the source.
pub type PlatformError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong listing, opening or running a device.
///
/// The variants a user can act on come first: [`DeviceError::NoDevice`],
/// [`DeviceError::NotFound`], [`DeviceError::Busy`], [`DeviceError::AccessDenied`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// There is no device of this kind at all (no microphone plugged in, no camera),
    /// or no system default to pick.
    #[error("no {kind} available")]
    NoDevice {
        /// What was asked for.
        kind: DeviceKind,
    },
    /// No device has this id (it was unplugged, or the id is from another machine).
    #[error("no {kind} with id {id}")]
    NotFound {
        /// What was asked for.
        kind: DeviceKind,
        /// The id asked for.
        id: DeviceId,
    },
    /// Another program holds the device exclusively.
    #[error("{id} is busy (used by another program)")]
    Busy {
        /// The device.
        id: DeviceId,
    },
    /// The system refused access (privacy settings, missing group membership).
    #[error("access to {id} was denied")]
    AccessDenied {
        /// The device.
        id: DeviceId,
    },
    /// The device exists but offers no format this crate can use.
    #[error("{id} has no usable format: {reason}")]
    Unsupported {
        /// The device.
        id: DeviceId,
        /// What it offers or lacks.
        reason: String,
    },
    /// The audio server or display is not running or not reachable.
    #[error("{what} is not available: {source}")]
    Unavailable {
        /// `"audio host pulseaudio"`, `"display"`, `"camera backend"`.
        what: String,
        /// Why.
        source: PlatformError,
    },
    /// Support for this kind of device was not compiled in (a cargo feature is off).
    #[error("{kind} support is not compiled in (enable the `{feature}` feature)")]
    Disabled {
        /// The kind of device.
        kind: DeviceKind,
        /// The cargo feature that brings it.
        feature: &'static str,
    },
    /// The device manager's worker thread is gone (it panicked); nothing can be opened.
    #[error("the device worker has stopped")]
    WorkerStopped,
    /// Any other failure the platform reported for a device.
    #[error("{id}: {source}")]
    Platform {
        /// The device.
        id: DeviceId,
        /// The platform's error.
        source: PlatformError,
    },
    /// A synthetic or file audio device failed (a missing WAV file).
    #[error(transparent)]
    Audio(#[from] AudioIoError),
    /// A synthetic or file video device failed (a missing Y4M file).
    #[error(transparent)]
    Video(#[from] VideoIoError),
    /// A setting is out of range (caller's mistake).
    #[error("invalid device config: {0}")]
    InvalidConfig(&'static str),
}
