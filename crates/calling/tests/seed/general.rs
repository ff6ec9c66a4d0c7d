//! The seed's General table (DESIGN.md): the audio test
//! service `8:echo123` checks the microphone and speaker. (Its camera check: the
//! service loops audio only so far.)

use crate::harness::Harness;
use crate::kit::*;
use ringwire_calling::StartCallOptions;
use ringwire_signaling::{CallState, Identifier};

/// General: test the microphone and speaker with the audio test service. alice calls
/// `8:echo123`: it answers, records her tone and plays it back, then hangs up with a
/// normal end reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_test_service() {
    let h = Harness::start().await;
    let alice = user(&h, "alice", 1).await;
    let (audio, ear) = voice(ALICE_HZ);
    let call = alice
        .agent
        .start_call(
            &[Identifier::EchoService],
            StartCallOptions::new().with_audio(audio),
        )
        .await
        .unwrap();
    until_state(&call, CallState::Connected).await;
    // The service records about 5 s before it plays back: wait on content.
    until_media(
        || {
            format!(
                "alice's tone did not come back: {:.1} dB",
                ear.tone_snr(ALICE_HZ, WINDOW)
            )
        },
        || ear.has_tone(ALICE_HZ, WINDOW),
    )
    .await;
    // Then the service hangs up with a normal end reason.
    tokio::time::timeout(MEDIA_GUARD, call.wait_for_state(CallState::Disconnected))
        .await
        .expect("the echo service hangs up")
        .unwrap();
    assert_eq!(call.end_reason().map(|r| r.code), Some(0), "a normal end");
    h.server.shut_down().await;
}
