//! A 1:1 call between two users with synthetic audio: one side calls, the other
//! answers; both print what happens.
//!
//! ```sh
//! ringwire serve &
//! RINGWIRE_TOKEN=$(ringwire token --user bob) \
//!     cargo run -p ringwire-calling --example one_to_one -- --answer &
//! RINGWIRE_TOKEN=$(ringwire token --user alice) \
//!     cargo run -p ringwire-calling --example one_to_one -- bob
//! ```
//!
//! The caller sends a 500 Hz tone, the answerer 700 Hz; each prints the SNR of the
//! other's tone in what it plays. The caller hangs up after 10 s.
//! `RINGWIRE_URL` picks another server (default `ws://127.0.0.1:8080/v1/signaling`).

use std::time::Duration;

use ringwire_calling::{
    AcceptCallOptions, AudioOptions, Call, CallClient, CallClientOptions, CallEvent, Endpoint,
    HangUpOptions, StartCallOptions,
};
use ringwire_media::audio_io::{MemorySink, MemoryTap, ToneSource};
use ringwire_media::client::CallMediaConfig;
use ringwire_media::codec::OpusConfig;
use ringwire_signaling::{CallState, Identifier};

const CALLER_HZ: f64 = 500.0;
const ANSWERER_HZ: f64 = 700.0;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("RINGWIRE_URL")
        .unwrap_or_else(|_| "ws://127.0.0.1:8080/v1/signaling".to_owned());
    let token = std::env::var("RINGWIRE_TOKEN")
        .map_err(|_| "set RINGWIRE_TOKEN (ringwire token --user <name>)")?;
    let target = std::env::args()
        .nth(1)
        .ok_or("usage: one_to_one <user to call> | --answer")?;

    let client = CallClient::new(CallClientOptions::new(Endpoint::ws(url)));
    let agent = client.create_call_agent(token).await?;
    println!("signed in as {:?}", agent.user().await?);

    let (sink, tap) = MemorySink::bounded(Duration::from_secs(2));
    let (call, hears) = if target == "--answer" {
        println!("waiting for a call");
        let incoming = agent
            .next_incoming_call()
            .await
            .ok_or("the agent stopped")?;
        println!("{} calls; answering", incoming.caller());
        let audio = tone_audio(ANSWERER_HZ, sink)?;
        let call = incoming
            .accept(AcceptCallOptions::new().with_audio(audio))
            .await?;
        (call, CALLER_HZ)
    } else {
        let audio = tone_audio(CALLER_HZ, sink)?;
        let call = agent
            .start_call(
                &[Identifier::user(&target)?],
                StartCallOptions::new().with_audio(audio),
            )
            .await?;
        let hang_up = call.clone();
        tokio::spawn(async move {
            if hang_up.wait_for_state(CallState::Connected).await.is_ok() {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let _ = hang_up.hang_up(HangUpOptions::new()).await;
            }
        });
        (call, ANSWERER_HZ)
    };
    follow(&call, &tap, hears).await;
    agent.dispose().await;
    Ok(())
}

/// Audio sending a `freq` Hz tone (DTX off: a steady tone is "silence" to DTX) and
/// playing into `sink`.
fn tone_audio(freq: f64, sink: MemorySink) -> Result<AudioOptions, Box<dyn std::error::Error>> {
    let mut audio = AudioOptions::new(ToneSource::new(freq, 0.25)?, sink);
    audio.media = CallMediaConfig::with_opus(OpusConfig {
        dtx: false,
        ..OpusConfig::default()
    });
    Ok(audio)
}

/// Prints the call's events, the roster when it changes, and once a second how
/// well the other side's tone is heard, until the call ends.
async fn follow(call: &Call, tap: &MemoryTap, hears: f64) {
    let mut events = call.events();
    // Events before `events()` are not replayed; the accessors show where we are.
    println!("state: {:?}", call.state());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(CallEvent::StateChanged { state, end_reason }) => {
                    println!("state: {state:?} {end_reason:?}");
                    if state == CallState::Disconnected {
                        return;
                    }
                }
                Some(CallEvent::ParticipantAdded(_) | CallEvent::ParticipantUpdated(_)) => {
                    for p in call.remote_participants() {
                        println!(
                            "  {} {:?} muted: {} speaking: {}",
                            p.identifier(),
                            p.state(),
                            p.is_muted(),
                            p.is_speaking()
                        );
                    }
                }
                Some(other) => println!("{other:?}"),
                None => return,
            },
            _ = tick.tick() => {
                let snr = tap.tone_snr(hears, Duration::from_millis(400));
                println!("  hearing {hears} Hz at {snr:.1} dB");
            }
        }
    }
}
