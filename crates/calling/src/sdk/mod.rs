//! The calling SDK: a thin async layer over [`SignalingClient`](crate::SignalingClient)
//! shaped like the ACS Calling SDK.
//!
//! - [`CallClient`] knows where the server is; [`CallClient::create_call_agent`]
//!   signs a user in and returns a [`CallAgent`].
//! - [`CallAgent`] starts calls ([`CallAgent::start_call`]), joins group calls
//!   ([`CallAgent::join`]) and hands out the [`IncomingCall`]s that ring here.
//! - [`Call`] is one call: its state, [`RemoteParticipant`]s, dominant speakers and
//!   media counters, the commands (mute, hold, video, screen sharing, participants,
//!   hang up) and its [`CallEvents`].
//!
//! Every handle is `Clone` and `Send` and holds an `Arc`. One task per agent reads
//! the signaling session's events, takes the session's view of the call they are
//! about (the session stays the source of truth) and then passes the event on: when
//! a [`CallEvent`] arrives, the [`Call`]'s accessors already show it, and when a
//! command returns they show its local effect (the server's answer comes as events).
//! Dropping the
//! last handle of a live call hangs it up; dropping the last handle of an agent hangs
//! up its calls and disconnects.
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use ringwire_calling::{
//!     AcceptCallOptions, AudioOptions, CallClient, CallClientOptions, CallEvent, Endpoint,
//!     HangUpOptions, StartCallOptions,
//! };
//! use ringwire_media::audio_io::{NullSink, ToneSource};
//! use ringwire_signaling::{CallState, Identifier};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = CallClient::new(CallClientOptions::new(Endpoint::ws(
//!     "ws://127.0.0.1:8080/v1/signaling",
//! )));
//! // `ringwire token --user alice` prints a token.
//! let alice = client.create_call_agent("<alice's token>").await?;
//! let bob = client.create_call_agent("<bob's token>").await?;
//!
//! // Bob answers whatever rings.
//! let mut ringing = Box::pin(bob.incoming_calls());
//! tokio::spawn(async move {
//!     while let Some(incoming) = ringing.next().await {
//!         let audio = AudioOptions::new(ToneSource::new(700.0, 0.25)?, NullSink::default());
//!         let call = incoming
//!             .accept(AcceptCallOptions::new().with_audio(audio))
//!             .await?;
//!         call.wait_for_state(CallState::Disconnected).await?;
//!     }
//!     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
//! });
//!
//! let audio = AudioOptions::new(ToneSource::new(440.0, 0.25)?, NullSink::default());
//! let call = alice
//!     .start_call(
//!         &[Identifier::user("bob")?],
//!         StartCallOptions::new().with_audio(audio),
//!     )
//!     .await?;
//! let mut events = call.events();
//! call.wait_for_state(CallState::Connected).await?;
//! for p in call.remote_participants() {
//!     println!("{} {:?} muted: {}", p.identifier(), p.state(), p.is_muted());
//! }
//! call.mute().await?;
//! call.hang_up(HangUpOptions::new()).await?;
//! while let Some(event) = events.recv().await {
//!     if let CallEvent::StateChanged { state: CallState::Disconnected, end_reason } = event {
//!         println!("ended: {end_reason:?}");
//!         break;
//!     }
//! }
//! alice.dispose().await;
//! # Ok(()) }
//! ```

mod agent;
mod call;
mod devices;
mod options;

pub use agent::{CallAgent, CallClient, IncomingCall};
pub use call::{
    Call, CallEvent, CallEvents, MediaStats, ParticipantEvent, ParticipantEvents, RemoteParticipant,
};
pub use options::{
    AcceptCallOptions, CallClientOptions, HangUpOptions, JoinCallOptions, LocalVideoStream,
    StartCallOptions,
};
