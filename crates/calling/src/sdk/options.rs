//! What the app chooses when it creates a client, starts, joins, accepts or leaves a
//! call.

use std::fmt;

use ringwire_devices::DeviceManagerConfig;
use ringwire_media::video::VideoSource;
use ringwire_signaling::{JoinOptions, PhoneNumber, VideoKind};

use crate::client::ConnectOptions;
use crate::media::AudioOptions;
use crate::transport::Endpoint;

/// Where a [`CallClient`](super::CallClient) connects and how.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CallClientOptions {
    /// The server's signaling endpoint (WebSocket URL or QUIC address).
    pub endpoint: Endpoint,
    /// Keep-alive, reconnect and seed settings of the signaling connection.
    pub connect: ConnectOptions,
    /// How [`CallClient::device_manager`](super::CallClient::device_manager) lists
    /// and opens devices (synthetic devices, sound backend, polling).
    pub devices: DeviceManagerConfig,
}

impl CallClientOptions {
    /// Connects to `endpoint` with the default [`ConnectOptions`].
    pub fn new(endpoint: Endpoint) -> Self {
        CallClientOptions {
            endpoint,
            connect: ConnectOptions::default(),
            devices: DeviceManagerConfig::default(),
        }
    }

    /// These options with `devices` as the device manager's configuration.
    #[must_use]
    pub fn with_device_config(mut self, devices: DeviceManagerConfig) -> Self {
        self.devices = devices;
        self
    }

    /// These options with `connect` as the connection settings.
    #[must_use]
    pub fn with_connect_options(mut self, connect: ConnectOptions) -> Self {
        self.connect = connect;
        self
    }
}

/// A video to send from the start of a call: a camera or a screen share and where
/// its pictures come from.
pub struct LocalVideoStream {
    /// Camera or screen share.
    pub kind: VideoKind,
    /// Where pictures come from.
    pub source: Box<dyn VideoSource>,
}

impl LocalVideoStream {
    /// A camera video from `source`.
    pub fn camera(source: impl VideoSource + 'static) -> Self {
        LocalVideoStream {
            kind: VideoKind::Camera,
            source: Box::new(source),
        }
    }

    /// A screen share from `source`.
    pub fn screen_share(source: impl VideoSource + 'static) -> Self {
        LocalVideoStream {
            kind: VideoKind::ScreenShare,
            source: Box::new(source),
        }
    }
}

impl fmt::Debug for LocalVideoStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalVideoStream")
            .field("kind", &self.kind)
            .field("source", &self.source.name())
            .finish()
    }
}

/// The media a call starts with, shared by start, join and accept.
#[derive(Debug, Default)]
pub(crate) struct MediaChoice {
    pub(crate) muted: bool,
    pub(crate) audio: Option<AudioOptions>,
    pub(crate) video: Option<LocalVideoStream>,
}

impl MediaChoice {
    pub(crate) fn join_options(&self) -> JoinOptions {
        JoinOptions {
            muted: self.muted,
            video: self.video.is_some(),
        }
    }
}

macro_rules! media_options {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident: $ty:ty,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Default)]
        #[non_exhaustive]
        pub struct $name {
            /// Start with the microphone muted.
            pub muted: bool,
            /// The call's audio (and the video engine, through
            /// [`AudioOptions::with_video`]); `None` joins without media.
            pub audio: Option<AudioOptions>,
            /// A video to send from the start; needs `audio` with video options.
            pub video: Option<LocalVideoStream>,
            $($(#[$fdoc])* pub $field: $ty,)*
        }

        impl $name {
            /// No media, unmuted.
            pub fn new() -> Self {
                Self::default()
            }

            /// These options starting muted (or not).
            #[must_use]
            pub fn muted(mut self, muted: bool) -> Self {
                self.muted = muted;
                self
            }

            /// These options with the call's audio (and video engine) from `audio`.
            #[must_use]
            pub fn with_audio(mut self, audio: AudioOptions) -> Self {
                self.audio = Some(audio);
                self
            }

            /// These options sending `video` from the start.
            #[must_use]
            pub fn with_video(mut self, video: LocalVideoStream) -> Self {
                self.video = Some(video);
                self
            }

            pub(crate) fn into_media(self) -> MediaChoice {
                MediaChoice {
                    muted: self.muted,
                    audio: self.audio,
                    video: self.video,
                }
            }
        }
    };
}

media_options!(
    /// How [`CallAgent::start_call`](super::CallAgent::start_call) starts a call.
    StartCallOptions {
        /// The number phone targets see as the caller (one the server's trunk owns);
        /// `None`: the trunk's default.
        alternate_caller_id: Option<PhoneNumber>,
    }
);

impl StartCallOptions {
    /// These options showing `number` to phone targets as the caller.
    #[must_use]
    pub fn with_alternate_caller_id(mut self, number: PhoneNumber) -> Self {
        self.alternate_caller_id = Some(number);
        self
    }
}

media_options!(
    /// How [`CallAgent::join`](super::CallAgent::join) joins a group call.
    JoinCallOptions {
        /// Whether later joiners wait in a lobby until admitted (takes effect when
        /// this join creates the group call).
        lobby: bool,
    }
);

media_options!(
    /// How [`IncomingCall::accept`](super::IncomingCall::accept) answers.
    AcceptCallOptions {}
);

/// How [`Call::hang_up`](super::Call::hang_up) leaves a call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HangUpOptions {
    /// End the call for every participant, not only for us.
    pub for_everyone: bool,
}

impl HangUpOptions {
    /// Leave the call; the others go on.
    pub fn new() -> Self {
        Self::default()
    }

    /// End the call for everyone.
    pub fn for_everyone() -> Self {
        HangUpOptions { for_everyone: true }
    }
}
