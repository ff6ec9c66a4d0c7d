//! Ringwire's media engine: the parts of a call that carry sound and pictures.
//!
//! Every decision here lives in a sans-IO core that takes time as an argument, so the
//! hot paths (jitter buffer, mixer, speaker detection) are benchmarked and fuzzed
//! without sockets: `handle_*` inputs, `poll_*` outputs, `now` passed in.
//! This crate knows nothing of signaling or of tokio.

pub mod analysis;
pub mod audio_io;
pub mod client;
pub mod codec;
pub mod echo;
#[cfg(any(fuzzing, feature = "arbitrary"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod jitter;
pub mod level;
pub mod mixer;
pub mod router;
pub mod rtc;
pub mod server;
pub mod speaker;
pub mod video;
pub mod video_codec;
pub use client::{CallMedia, CallMediaConfig, CallMediaEvent, CallMediaStats};
pub use codec::{Channels, CodecError, Decoder, Encoder, OpusConfig};
pub use jitter::{AudioPacket, Frame, FrameKind, JitterBuffer, JitterConfig, JitterStats};
pub use level::{AudioLevel, LevelExtension, VadConfig, VoiceActivity};
pub use mixer::{MixKind, MixMode, MixOutput, Mixer, MixerConfig, MixerStats};
pub use rtc::{MediaError, Transmit};
pub use server::{MediaServer, MediaServerConfig, MediaServerStats, ServerEvent};
pub use speaker::{DominantSpeaker, SpeakerConfig, SpeakerEvent};
