//! The calling SDK end to end beyond the seed's rows (those are in `seed_*.rs`),
//! through its public API only: the real server (from the shared harness, used for
//! starting it and issuing tokens) and one [`CallAgent`](ringwire_calling::CallAgent)
//! per user over WebSocket.
//!
//! Every wait is for a state the SDK reports or for media content; the guards only
//! turn a hang into a failure.

#![allow(clippy::unwrap_used)] // Scenario helpers outside #[test] fns unwrap too.

#[path = "support/harness.rs"]
mod harness;
#[path = "sdk_kit/mod.rs"]
mod kit;

use harness::{Harness, Kind};
use kit::*;
use ringwire_calling::{
    AcceptCallOptions, CallClientOptions, HangUpOptions, LocalVideoStream, StartCallOptions,
};
use ringwire_devices::{DeviceManagerConfig, Selection};
use ringwire_signaling::{CallState, EndReason, VideoKind};

#[tokio::test]
async fn hang_up_for_everyone_ends_the_call_for_everyone() {
    let h = Harness::start().await;
    let (_users, calls) = group_of_three(&h).await;
    calls[0]
        .hang_up(HangUpOptions::for_everyone())
        .await
        .unwrap();
    for call in &calls {
        until_state(call, CallState::Disconnected).await;
    }
    for call in &calls[1..] {
        assert_eq!(call.end_reason(), Some(EndReason::ended_for_everyone()));
    }
    h.server.shut_down().await;
}

#[tokio::test]
async fn dropping_every_handle_of_a_call_hangs_it_up() {
    let h = Harness::start().await;
    let (users, calls) = group_of_three(&h).await;
    let [a, b, c] = calls;
    let carol = &users[2];
    let c2 = c.clone();
    drop(c);
    // One handle is left: the call goes on.
    assert_eq!(carol.agent.calls().len(), 1);
    assert_eq!(c2.state(), CallState::Connected);
    drop(c2);
    assert!(carol.agent.calls().is_empty());

    for call in [&a, &b] {
        until_gone(call, &carol.id).await;
        assert_eq!(call.state(), CallState::Connected);
    }
    h.server.shut_down().await;
}

/// alice (on synthetic devices) calls bob (on tones); once the media flows and
/// alice holds her handle on bob and its event stream, every handle is dropped.
async fn media_call_then_drop_everything(h: &Harness) {
    let options = CallClientOptions::new(h.endpoint(Kind::Ws))
        .with_device_config(DeviceManagerConfig::default().with_synthetic(true));
    let alice = user_with(h, "alice", 1, options).await;
    let bob = user(h, "bob", 2).await;
    alice
        .client
        .select_microphone(Selection::Device("synthetic:tone-440".into()))
        .unwrap();
    alice
        .client
        .select_speaker(Selection::Device("synthetic:null".into()))
        .unwrap();
    let audio = alice.client.device_audio().unwrap();
    let a = alice
        .agent
        .start_call(
            std::slice::from_ref(&bob.id),
            StartCallOptions::new().with_audio(audio),
        )
        .await
        .unwrap();
    let (audio, _) = voice(BOB_HZ);
    let b = incoming(&bob)
        .await
        .accept(AcceptCallOptions::new().with_audio(audio))
        .await
        .unwrap();
    within("alice's media", a.wait_media_connected())
        .await
        .unwrap();
    within("bob's media", b.wait_media_connected())
        .await
        .unwrap();
    until_present(&[(&a, &bob.id)]).await;
    let bob_there = a.remote_participant(&bob.id).unwrap();
    let _about_bob = bob_there.events();
    let _alice_events = a.events();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_every_handle_leaves_no_task_behind() {
    let h = Harness::start().await;
    let before = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    // Agents, calls and their tasks (dispatchers, drivers, media; the server's
    // connection tasks) wind down once the hang-ups and closes went out. The first
    // media call also starts one task that lasts as long as the runtime: the count
    // stays `before + 1` after 1 or 4 calls, so it is not per call.
    for _ in 0..3 {
        media_call_then_drop_everything(&h).await;
        until_tasks_at_most(before + 1, "after dropping every handle").await;
    }
    h.server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_on_from_the_start_shows_in_the_callees_roster_and_decodes() {
    let h = Harness::start().await;
    let alice = user(&h, "alice", 1).await;
    let bob = user(&h, "bob", 2).await;
    let (alice_seen, bob_seen) = (Seen::default(), Seen::default());
    let a = alice
        .agent
        .start_call(
            std::slice::from_ref(&bob.id),
            StartCallOptions::new()
                .with_audio(with_video(ALICE_HZ, &alice_seen))
                .with_video(LocalVideoStream::camera(pattern(320, 180, 7))),
        )
        .await
        .unwrap();
    let ringing = incoming(&bob).await;
    assert!(ringing.caller_has_video());
    let b = ringing
        .accept(AcceptCallOptions::new().with_audio(with_video(BOB_HZ, &bob_seen)))
        .await
        .unwrap();
    until_state(&a, CallState::Connected).await;
    until_participant(&b, &alice.id, "with a camera", |p| {
        p.video_streams()
            .iter()
            .any(|s| s.kind == VideoKind::Camera)
    })
    .await;
    until_decoded("bob", &bob_seen, 7).await;
    h.server.shut_down().await;
}

#[tokio::test]
async fn send_dtmf_takes_key_digits_only() {
    let h = Harness::start().await;
    let alice = user(&h, "alice", 1).await;
    let bob = user(&h, "bob", 2).await;
    let a = alice
        .agent
        .start_call(std::slice::from_ref(&bob.id), StartCallOptions::new())
        .await
        .unwrap();
    // Bob's call stays up while he holds its handle.
    let _b = incoming(&bob)
        .await
        .accept(AcceptCallOptions::new())
        .await
        .unwrap();
    until_state(&a, CallState::Connected).await;
    // Keys go to the call's phones (none here, so nobody hears them); anything but
    // 0-9 * # A-D is refused.
    a.send_dtmf("123*#A").await.unwrap();
    assert!(matches!(
        a.send_dtmf("1x").await,
        Err(ringwire_calling::Error::Session(_))
    ));
    assert_eq!(a.state(), CallState::Connected);
    h.server.shut_down().await;
}

/// Device changes reach the app through `CallClient::device_events`: a PulseAudio
/// daemon of the test's own with one sink, and a second sink loaded while the client
/// watches (in a child process pointed at that daemon).
#[test]
fn device_changes_arrive_on_the_clients_device_events() {
    let sink = |name| ringwire_devices::testing::NullSink { name, rate: 48_000 };
    let server = ringwire_devices::testing::PulseServer::start(&[sink("ring_a")])
        .expect("pulseaudio starts");
    if let Err(error) = ringwire_devices::testing::run_child_test(
        "device_changes_arrive_on_the_clients_device_events_child",
        &server.env(),
    ) {
        panic!("{error}\n--- pulseaudio log ---\n{}", server.log());
    }
}

#[tokio::test]
#[ignore = "runs inside device_changes_arrive_on_the_clients_device_events"]
async fn device_changes_arrive_on_the_clients_device_events_child() {
    use futures_util::StreamExt;
    use ringwire_devices::{AudioBackend, DeviceEvent, DeviceKind};

    if !ringwire_devices::testing::is_child() {
        return;
    }
    // No server: devices need no agent.
    let config = DeviceManagerConfig::default()
        .with_audio_backend(AudioBackend::PulseAudio)
        .with_poll_interval(std::time::Duration::from_millis(200));
    let client = ringwire_calling::CallClient::new(
        CallClientOptions::new(ringwire_calling::Endpoint::ws("ws://127.0.0.1:9/unused"))
            .with_device_config(config),
    );
    let speakers = client
        .device_manager()
        .unwrap()
        .list(DeviceKind::Speaker)
        .unwrap();
    assert_eq!(speakers.len(), 1, "{speakers:?}");
    let mut events = Box::pin(client.device_events().unwrap());
    let out = std::process::Command::new("pactl")
        .args([
            "load-module",
            "module-null-sink",
            "sink_name=ring_b",
            "sink_properties=device.description=ring_b",
            "rate=48000",
        ])
        .output()
        .expect("pactl runs");
    assert!(out.status.success(), "pactl: {out:?}");
    within("ring_b added", async {
        loop {
            match events.next().await {
                Some(DeviceEvent::Added { device })
                    if device.id.as_str() == "pulseaudio:ring_b" =>
                {
                    assert_eq!(device.kind, DeviceKind::Speaker);
                    return;
                }
                Some(_) => {}
                None => panic!("device events ended"),
            }
        }
    })
    .await;
}
