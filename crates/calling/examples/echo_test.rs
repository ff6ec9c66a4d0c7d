//! The echo test: calls `8:echo123`, the server's echo service, with a 440 Hz tone,
//! and reports whether the tone came back.
//!
//! ```sh
//! ringwire serve &
//! RINGWIRE_TOKEN=$(ringwire token --user alice) \
//!     cargo run -p ringwire-calling --example echo_test
//! ```
//!
//! `RINGWIRE_URL` picks another server (default `ws://127.0.0.1:8080/v1/signaling`).

use std::time::Duration;

use ringwire_calling::{
    AudioOptions, CallClient, CallClientOptions, CallEvent, Endpoint, StartCallOptions,
};
use ringwire_media::audio_io::{MemorySink, ToneSource};
use ringwire_media::client::CallMediaConfig;
use ringwire_media::codec::OpusConfig;
use ringwire_signaling::{CallState, Identifier};

const TONE_HZ: f64 = 440.0;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("RINGWIRE_URL")
        .unwrap_or_else(|_| "ws://127.0.0.1:8080/v1/signaling".to_owned());
    let token = std::env::var("RINGWIRE_TOKEN")
        .map_err(|_| "set RINGWIRE_TOKEN (ringwire token --user <name>)")?;

    let client = CallClient::new(CallClientOptions::new(Endpoint::ws(url)));
    let agent = client.create_call_agent(token).await?;

    let (sink, tap) = MemorySink::bounded(Duration::from_secs(2));
    let mut audio = AudioOptions::new(ToneSource::new(TONE_HZ, 0.25)?, sink);
    // A steady tone is "silence" to a DTX encoder; keep sending it.
    audio.media = CallMediaConfig::with_opus(OpusConfig {
        dtx: false,
        ..OpusConfig::default()
    });
    let call = agent
        .start_call(
            &[Identifier::EchoService],
            StartCallOptions::new().with_audio(audio),
        )
        .await?;
    println!("calling the echo service: {}", call.id());
    let mut events = call.events();
    // Events before `events()` are not replayed; the accessors show where we are.
    println!("state: {:?}", call.state());

    // Follow the call, and measure the tone in what plays every half second.
    let mut best_snr = f64::NEG_INFINITY;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(CallEvent::StateChanged { state, end_reason }) => {
                    println!("state: {state:?} {end_reason:?}");
                    if state == CallState::Disconnected {
                        break;
                    }
                }
                Some(other) => println!("{other:?}"),
                None => break,
            },
            _ = tick.tick() => {
                best_snr = best_snr.max(tap.tone_snr(TONE_HZ, Duration::from_millis(400)));
            }
        }
    }

    if let Some(stats) = call.media_stats() {
        println!(
            "audio: {} packets sent, {} received",
            stats.audio.packets_sent, stats.audio.packets_received
        );
    }
    println!("our {TONE_HZ} Hz tone came back at {best_snr:.1} dB SNR at best");
    agent.dispose().await;
    if best_snr < ringwire_media::audio_io::TONE_PRESENT_SNR_DB {
        return Err("the echo service did not play our tone back".into());
    }
    Ok(())
}
