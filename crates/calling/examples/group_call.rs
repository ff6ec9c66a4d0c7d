//! A group call: joins the group given on the command line with a synthetic voice
//! and prints the roster and dominant speakers as they change, until Ctrl-C.
//!
//! ```sh
//! ringwire serve &
//! for who in alice bob carol; do
//!     RINGWIRE_TOKEN=$(ringwire token --user $who) \
//!         cargo run -p ringwire-calling --example group_call -- standup &
//! done
//! ```
//!
//! `RINGWIRE_URL` picks another server (default `ws://127.0.0.1:8080/v1/signaling`).

use ringwire_calling::{
    AudioOptions, Call, CallClient, CallClientOptions, CallEvent, Endpoint, HangUpOptions,
    JoinCallOptions,
};
use ringwire_media::audio_io::{NullSink, SpeechLikeConfig, SpeechLikeSource};
use ringwire_signaling::{CallState, GroupId};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("RINGWIRE_URL")
        .unwrap_or_else(|_| "ws://127.0.0.1:8080/v1/signaling".to_owned());
    let token = std::env::var("RINGWIRE_TOKEN")
        .map_err(|_| "set RINGWIRE_TOKEN (ringwire token --user <name>)")?;
    let group = GroupId::new(
        &std::env::args()
            .nth(1)
            .ok_or("usage: group_call <group id>")?,
    )?;

    let client = CallClient::new(CallClientOptions::new(Endpoint::ws(url)));
    let agent = client.create_call_agent(token).await?;
    let voice = SpeechLikeSource::new(SpeechLikeConfig::default())?;
    let audio = AudioOptions::new(voice, NullSink::default());
    let call = agent
        .join(&group, JoinCallOptions::new().with_audio(audio))
        .await?;
    println!("joined {group}: call {}", call.id());

    tokio::select! {
        () = follow(&call) => {}
        _ = tokio::signal::ctrl_c() => {
            println!("leaving");
            call.hang_up(HangUpOptions::new()).await?;
            call.wait_for_state(CallState::Disconnected).await?;
        }
    }
    agent.dispose().await;
    Ok(())
}

/// Prints the roster whenever it changes, and the dominant speakers.
async fn follow(call: &Call) {
    let mut events = call.events();
    print_roster(call);
    while let Some(event) = events.recv().await {
        match event {
            CallEvent::StateChanged { state, end_reason } => {
                println!("state: {state:?} {end_reason:?}");
                if state == CallState::Disconnected {
                    return;
                }
            }
            CallEvent::ParticipantAdded(_)
            | CallEvent::ParticipantUpdated(_)
            | CallEvent::ParticipantRemoved { .. } => print_roster(call),
            CallEvent::DominantSpeakersChanged(speakers) => {
                println!("dominant speakers: {speakers:?}");
            }
            _ => {}
        }
    }
}

fn print_roster(call: &Call) {
    println!("roster ({:?}):", call.state());
    for p in call.remote_participants() {
        println!(
            "  {} {:?}{}{}",
            p.identifier(),
            p.state(),
            if p.is_muted() { " muted" } else { "" },
            if p.is_dominant_speaker() {
                " (speaking)"
            } else {
                ""
            },
        );
    }
}
