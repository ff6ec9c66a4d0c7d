//! The Ringwire calling SDK for native Rust apps.
//!
//! Most apps start from [`CallClient`] (the `sdk` layer: [`CallAgent`], [`Call`],
//! [`IncomingCall`], [`RemoteParticipant`], events per call and per participant; see
//! [`CallClient`] for a complete example and `examples/` for a 1:1 call, a group call,
//! a screen share and the echo test). It is a thin layer over the pieces below, which
//! apps can also use directly.
//!
//! The first of them is signaling: a
//! [`SignalingClient`] that connects to a Ringwire server over WebSocket or QUIC,
//! authenticates, keeps the connection alive, reconnects after a drop and resumes the
//! session (its calls go on), and hands the app
//! [`Event`](ringwire_signaling::Event)s.
//!
//! ```no_run
//! use ringwire_calling::{ConnectOptions, Endpoint, SignalingClient, Trust};
//! use ringwire_signaling::{Event, Identifier, JoinOptions};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // `ringwire token --user alice` prints a token; `ringwire serve` prints the
//! // fingerprint of its development certificate.
//! let endpoint = Endpoint::quic(
//!     "127.0.0.1:8443".parse()?,
//!     "localhost",
//!     Trust::Fingerprint("AB:CD:…".into()),
//! );
//! // Or over WebSocket: Endpoint::ws("ws://127.0.0.1:8080/v1/signaling")
//! let (client, mut events) =
//!     SignalingClient::connect(endpoint, "<token>", ConnectOptions::default()).await?;
//!
//! let call = client
//!     .start_call(&[Identifier::user("bob")?], JoinOptions::default())
//!     .await?;
//! while let Some(event) = events.recv().await {
//!     match event {
//!         Event::CallStateChanged { call_id, state, end_reason } if call_id == call => {
//!             println!("{state:?} {end_reason:?}");
//!         }
//!         Event::IncomingCall { call_id, caller, .. } => {
//!             println!("{caller} calls");
//!             client.accept(&call_id, JoinOptions::default()).await?;
//!         }
//!         _ => {}
//!     }
//! }
//! client.close().await;
//! # Ok(()) }
//! ```
//!
//! # Shape
//! - [`transport`]: the [`Transport`]/[`Connector`] traits (a framed message pipe and
//!   what makes one) with WebSocket and QUIC implementations. Plug in your own with
//!   [`SignalingClient::connect_with`].
//! - The driver: one tokio task owns the sans-IO [`ringwire_signaling::ClientSession`]
//!   and `select!`s over the transport, the command channel and the session's next
//!   timeout, draining the session after every input (STYLE.md §2). Its clock is
//!   `tokio::time::Instant`, so `#[tokio::test(start_paused = true)]` controls it.
//! - [`SignalingClient`] is a cloneable handle holding channel ends: commands go to the
//!   driver, the session's validation errors come back as [`Error::Session`].
//!
//! # Audio
//! [`SignalingClient::start_audio`] runs a call's audio: it binds a UDP socket, offers
//! the server's media plane one opus stream (the SDP goes through the session as
//! [`MediaPayload`](ringwire_signaling::MediaPayload)s), and spawns a task that sends
//! what an [`AudioSource`](ringwire_media::audio_io::AudioSource) captures every 20 ms
//! and plays what arrives, jitter-buffered, into an
//! [`AudioSink`](ringwire_media::audio_io::AudioSink). The driver keeps it in step with
//! the call: muted, nothing is sent; on hold (ours or the far end's), nothing is sent
//! or played; when the call ends, the audio stops. The returned [`AudioHandle`] says
//! when audio flows and gives the engine's counters; dropping it stops the audio.
//!
//! ```no_run
//! # use ringwire_calling::{AudioOptions, SignalingClient};
//! # use ringwire_signaling::CallId;
//! use ringwire_media::audio_io::{ToneSource, WavSink};
//!
//! # async fn run(client: SignalingClient, call: CallId) -> Result<(), Box<dyn std::error::Error>> {
//! let options = AudioOptions::new(ToneSource::new(440.0, 0.25)?, WavSink::create("heard.wav")?);
//! let audio = client.start_audio(&call, options).await?;
//! audio.wait_connected().await?;
//! // ... the call goes on; when it ends, the audio stops and the WAV file is finished.
//! println!("{:?}", audio.stats());
//! # Ok(()) }
//! ```
//!
//! # Video
//! With [`AudioOptions::with_video`], the call's media offers a video send section and
//! receive slots (6 by default). [`SignalingClient::start_video`] sends a camera or a
//! screen share from any [`VideoSource`](ringwire_media::video::VideoSource), encoded
//! with OpenH264; [`SignalingClient::switch_video_source`] changes the source without
//! renegotiation (the next frame is a key frame); each remote stream the server routes
//! to us is decoded into a sink the [`VideoRenderer`] makes for it.
//!
//! Stopping audio leaves the call alone; the server, though, takes a media path that
//! stays silent for long (about 20 s) as lost and drops the participant. To pause,
//! mute or hold; to switch devices, start audio again.
//!
//! # Reconnecting
//! When the transport fails, or the server stops answering pings, the session keeps
//! its calls ([`ConnectionState::Reconnecting`](ringwire_signaling::ConnectionState::Reconnecting)) and the driver reconnects after
//! `backoff_initial × 2^attempt` (at most `backoff_max`), randomized into the upper
//! half of that delay with a generator seeded from [`ConnectOptions::seed`]. The new
//! connection presents the resume token: within the server's grace period the calls go
//! on; after it the server starts a fresh session and the calls end with
//! [`EndReason::connection_lost`](ringwire_signaling::EndReason::connection_lost). A
//! `goodbye` from the server, or a token it refuses, stops the client for good.
//!
//! # Closing
//! [`SignalingClient::close`] hangs up every live call and closes the connection
//! cleanly. Dropping the last handle closes the connection cleanly too, leaving calls
//! to the server's grace period.

mod client;
mod driver;
mod error;
#[cfg(feature = "loadtest")]
pub mod loadtest;
mod media;
mod sdk;
pub mod transport;
mod video;

pub use client::{ConnectOptions, EventStream, SignalingClient};
pub use error::{Error, TransportError};
pub use media::{AudioEnd, AudioHandle, AudioOptions, AudioState};
pub use sdk::{
    AcceptCallOptions, Call, CallAgent, CallClient, CallClientOptions, CallEvent, CallEvents,
    HangUpOptions, IncomingCall, JoinCallOptions, LocalVideoStream, MediaStats, ParticipantEvent,
    ParticipantEvents, RemoteParticipant, StartCallOptions,
};
pub use transport::{Connector, Endpoint, Transport, Trust};
pub use video::{RemoteVideo, VideoOptions, VideoRenderer, VideoStats};
