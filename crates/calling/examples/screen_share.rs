//! Screen sharing: calls a user with video, shares a synthetic "screen" (a
//! 1280x720 test pattern) for 10 s, then hangs up and prints the video counters.
//!
//! ```sh
//! ringwire serve &
//! RINGWIRE_TOKEN=$(ringwire token --user bob) \
//!     cargo run -p ringwire-calling --example one_to_one -- --answer &
//! RINGWIRE_TOKEN=$(ringwire token --user alice) \
//!     cargo run -p ringwire-calling --example screen_share -- bob
//! ```
//!
//! `RINGWIRE_URL` picks another server (default `ws://127.0.0.1:8080/v1/signaling`).

use std::time::Duration;

use ringwire_calling::{
    AudioOptions, CallClient, CallClientOptions, Endpoint, HangUpOptions, StartCallOptions,
    VideoOptions,
};
use ringwire_media::audio_io::{NullSink, SilenceSource};
use ringwire_media::video::{FrameRate, TestPatternSource, VideoFormat};
use ringwire_signaling::{CallState, Identifier};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("RINGWIRE_URL")
        .unwrap_or_else(|_| "ws://127.0.0.1:8080/v1/signaling".to_owned());
    let token = std::env::var("RINGWIRE_TOKEN")
        .map_err(|_| "set RINGWIRE_TOKEN (ringwire token --user <name>)")?;
    let target = std::env::args()
        .nth(1)
        .ok_or("usage: screen_share <user to call>")?;

    let client = CallClient::new(CallClientOptions::new(Endpoint::ws(url)));
    let agent = client.create_call_agent(token).await?;
    // Video runs inside the call's media: audio options with video options.
    let media =
        AudioOptions::new(SilenceSource, NullSink::default()).with_video(VideoOptions::new());
    let call = agent
        .start_call(
            &[Identifier::user(&target)?],
            StartCallOptions::new().with_audio(media),
        )
        .await?;
    call.wait_for_state(CallState::Connected).await?;
    call.wait_media_connected().await?;

    let screen = VideoFormat::new(1280, 720, FrameRate::per_second(15)?)?;
    call.start_screen_sharing(TestPatternSource::new(screen)?)
        .await?;
    println!("sharing: {:?}", call.local_video());
    tokio::time::sleep(Duration::from_secs(10)).await;
    call.stop_screen_sharing().await?;
    if let Some(stats) = call.media_stats() {
        println!("video: {:?}", stats.video);
    }
    call.hang_up(HangUpOptions::new()).await?;
    call.wait_for_state(CallState::Disconnected).await?;
    agent.dispose().await;
    Ok(())
}
