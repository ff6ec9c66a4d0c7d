//! Devices: lists the microphones, speakers, cameras and screens the client's device
//! manager sees, selects a microphone and a speaker, and runs the echo test on them,
//! switching the speaker halfway through.
//!
//! ```sh
//! ringwire serve &
//! RINGWIRE_TOKEN=$(ringwire token --user alice) \
//!     cargo run -p ringwire-calling --example devices -- synthetic:tone-440 file:/tmp/a.wav file:/tmp/b.wav
//! ```
//!
//! The arguments are the microphone, the speaker and the speaker to switch to (device
//! ids as listed; default: the system defaults, no switch). With the synthetic tone
//! and two WAV files, the first file holds the echo service's prompt and the second
//! one your tone played back. `RINGWIRE_URL` picks another server (default
//! `ws://127.0.0.1:8080/v1/signaling`).

use std::time::Duration;

use ringwire_calling::{CallClient, CallClientOptions, CallEvent, Endpoint, StartCallOptions};
use ringwire_devices::{DeviceKind, DeviceManagerConfig, Selection};
use ringwire_signaling::{CallState, Identifier};

fn selection(arg: Option<String>) -> Selection {
    arg.map_or(Selection::Default, |id| {
        Selection::Device(id.as_str().into())
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("RINGWIRE_URL")
        .unwrap_or_else(|_| "ws://127.0.0.1:8080/v1/signaling".to_owned());
    let token = std::env::var("RINGWIRE_TOKEN")
        .map_err(|_| "set RINGWIRE_TOKEN (ringwire token --user <name>)")?;
    let mut args = std::env::args().skip(1);
    let (microphone, speaker, switch_to) = (args.next(), args.next(), args.next());

    let client = CallClient::new(
        CallClientOptions::new(Endpoint::ws(url))
            .with_device_config(DeviceManagerConfig::default().with_synthetic(true)),
    );
    let devices = client.device_manager()?;
    for kind in [
        DeviceKind::Microphone,
        DeviceKind::Speaker,
        DeviceKind::Camera,
        DeviceKind::Screen,
    ] {
        match devices.list(kind) {
            Ok(list) => {
                for d in list {
                    let default = if d.is_default { " (default)" } else { "" };
                    println!("{kind}: {} {}{default}", d.id, d.name);
                }
            }
            Err(error) => println!("{kind}: {error}"),
        }
    }
    client.select_microphone(selection(microphone))?;
    client.select_speaker(selection(speaker))?;
    println!(
        "using microphone {:?}, speaker {:?}",
        client.selected_microphone()?,
        client.selected_speaker()?
    );

    let agent = client.create_call_agent(token).await?;
    let call = agent
        .start_call(
            &[Identifier::EchoService],
            StartCallOptions::new().with_audio(client.device_audio()?),
        )
        .await?;
    let mut events = call.events();
    println!("calling the echo service: {} {:?}", call.id(), call.state());
    // Halfway through the service's recording, move playback to the other speaker.
    let switch = tokio::time::sleep(Duration::from_secs(4));
    tokio::pin!(switch);
    let mut switch_to = switch_to;
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
            () = &mut switch, if switch_to.is_some() => {
                let to = selection(switch_to.take());
                println!("switching the speaker to {to:?}");
                client.select_speaker(to)?;
            }
        }
    }
    while let Some(event) = devices.poll_event() {
        println!("device event: {event:?}");
    }
    agent.dispose().await;
    Ok(())
}
