//! The seed's Core table, one test per row. The device rows (select the speaker,
//! select the microphone) use the synthetic and file devices of the client's device
//! manager.

use crate::harness::{Harness, Kind};
use crate::kit::*;
use ringwire_calling::{
    AcceptCallOptions, CallClientOptions, CallEvent, HangUpOptions, JoinCallOptions,
    StartCallOptions,
};
use ringwire_devices::{DeviceManagerConfig, Selection};
use ringwire_media::analysis::tone_snr;
use ringwire_media::audio_io::{
    AudioSource, NullSink, SilenceSource, SourceState, TONE_PRESENT_SNR_DB, WavSource,
};
use ringwire_media::codec::SAMPLE_RATE;
use ringwire_signaling::session::Direction;
use ringwire_signaling::{
    CallState, EndReason, GroupId, ParticipantState, VideoKind, VideoSize, VideoStream,
};

/// Core: place a 1:1 call. Each side hears the other's tone, then alice hangs up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn place_a_1to1_call() {
    let h = Harness::start().await;
    let alice = user(&h, "alice", 1).await;
    let bob = user(&h, "bob", 2).await;

    let (audio, alice_ear) = voice(ALICE_HZ);
    let a = alice
        .agent
        .start_call(
            std::slice::from_ref(&bob.id),
            StartCallOptions::new().with_audio(audio),
        )
        .await
        .unwrap();
    assert_eq!(a.direction(), Direction::Outgoing);
    let ringing = incoming(&bob).await;
    assert_eq!(ringing.caller(), &alice.id);
    let (audio, bob_ear) = voice(BOB_HZ);
    let b = ringing
        .accept(AcceptCallOptions::new().with_audio(audio))
        .await
        .unwrap();
    assert_eq!(b.direction(), Direction::Incoming);
    assert_eq!(b.caller().as_ref(), Some(&alice.id));

    until_state(&a, CallState::Connected).await;
    until_state(&b, CallState::Connected).await;
    within("alice's media", a.wait_media_connected())
        .await
        .unwrap();
    within("bob's media", b.wait_media_connected())
        .await
        .unwrap();
    until_participant(&a, &bob.id, "connected", |p| {
        p.state() == ParticipantState::Connected
    })
    .await;
    assert_eq!(alice.agent.calls().len(), 1);

    until_hearing("alice", &alice_ear, &[BOB_HZ], &[ALICE_HZ]).await;
    until_hearing("bob", &bob_ear, &[ALICE_HZ], &[BOB_HZ]).await;
    let stats = a.media_stats().expect("alice's media runs");
    assert!(
        stats.audio.packets_sent > 0 && stats.audio.packets_received > 0,
        "{stats:?}"
    );

    a.hang_up(HangUpOptions::new()).await.unwrap();
    until_state(&a, CallState::Disconnected).await;
    until_state(&b, CallState::Disconnected).await;
    assert_eq!(b.end_reason(), Some(EndReason::remote_hung_up()));
    h.server.shut_down().await;
}

/// Core: place a group call with 3+ users. alice calls bob and carol at once; each
/// roster lists the other two, and each hears the other two (one mix) and not
/// themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn place_a_group_call_with_3_or_more_users() {
    let h = Harness::start().await;
    let alice = user(&h, "alice", 1).await;
    let bob = user(&h, "bob", 2).await;
    let carol = user(&h, "carol", 3).await;

    let (audio, alice_ear) = voice(ALICE_HZ);
    let a = alice
        .agent
        .start_call(
            &[bob.id.clone(), carol.id.clone()],
            StartCallOptions::new().with_audio(audio),
        )
        .await
        .unwrap();
    let mut ears = vec![alice_ear];
    let mut calls = vec![a.clone()];
    for (who, freq) in [(&bob, BOB_HZ), (&carol, CAROL_HZ)] {
        let ringing = incoming(who).await;
        assert_eq!(ringing.id(), a.id());
        let (audio, ear) = voice(freq);
        let call = ringing
            .accept(AcceptCallOptions::new().with_audio(audio))
            .await
            .unwrap();
        ears.push(ear);
        calls.push(call);
    }
    let users = [&alice, &bob, &carol];
    let tones = [ALICE_HZ, BOB_HZ, CAROL_HZ];
    for (i, call) in calls.iter().enumerate() {
        until_state(call, CallState::Connected).await;
        for (j, other) in users.iter().enumerate() {
            if i != j {
                until_participant(call, &other.id, "connected", |p| {
                    p.state() == ParticipantState::Connected
                })
                .await;
            }
        }
        assert_eq!(call.remote_participants().len(), 2);
    }
    for (i, ear) in ears.iter().enumerate() {
        let others: Vec<f64> = (0..3).filter(|j| *j != i).map(|j| tones[j]).collect();
        until_hearing_mix(&users[i].id.to_string(), ear, &others, &[tones[i]]).await;
    }
    h.server.shut_down().await;
}

/// Core: promote a 1:1 call to a group call with 3+ users. alice adds carol to her
/// call with bob: same call, and everyone's roster lists the other two.
#[tokio::test]
async fn promote_a_1to1_call_to_a_group_call() {
    let h = Harness::start().await;
    let alice = user(&h, "alice", 1).await;
    let bob = user(&h, "bob", 2).await;
    let carol = user(&h, "carol", 3).await;
    let (a, b) = connected_pair(&alice, &bob).await;
    assert_eq!(a.remote_participants().len(), 1);

    a.add_participant(&carol.id).await.unwrap();
    let ringing = incoming(&carol).await;
    assert_eq!(ringing.id(), a.id());
    assert_eq!(ringing.caller(), &alice.id);
    let c = ringing.accept(AcceptCallOptions::new()).await.unwrap();
    until_state(&c, CallState::Connected).await;
    for call in [&a, &b] {
        until_participant(call, &carol.id, "connected", |p| {
            p.state() == ParticipantState::Connected
        })
        .await;
    }
    for (call, others) in [
        (&a, [&bob.id, &carol.id]),
        (&b, [&alice.id, &carol.id]),
        (&c, [&alice.id, &bob.id]),
    ] {
        for other in others {
            until_participant(call, other, "connected", |p| {
                p.state() == ParticipantState::Connected
            })
            .await;
        }
        assert_eq!(call.remote_participants().len(), 2);
        assert_eq!(call.state(), CallState::Connected);
    }
    h.server.shut_down().await;
}

/// Core: join a group call after it started. alice and bob are in `standup`; carol
/// joins later and sees both, and they see her arrive.
#[tokio::test]
async fn join_a_group_call_after_it_started() {
    let h = Harness::start().await;
    let alice = user(&h, "alice", 1).await;
    let bob = user(&h, "bob", 2).await;
    let carol = user(&h, "carol", 3).await;
    let calls = join_all(&[&alice, &bob], "standup", |_| JoinCallOptions::new()).await;
    let mut alice_events = calls[0].events();

    let c = carol
        .agent
        .join(&GroupId::new("standup").unwrap(), JoinCallOptions::new())
        .await
        .unwrap();
    until_state(&c, CallState::Connected).await;
    assert_eq!(c.id(), calls[0].id());
    for other in [&alice.id, &bob.id] {
        until_participant(&c, other, "connected", |p| {
            p.state() == ParticipantState::Connected
        })
        .await;
    }
    for call in &calls {
        until_participant(call, &carol.id, "connected", |p| {
            p.state() == ParticipantState::Connected
        })
        .await;
    }
    // alice's event stream announced carol.
    within("carol added on alice's stream", async {
        loop {
            if let Some(CallEvent::ParticipantAdded(p)) = alice_events.recv().await
                && p.identifier() == &carol.id
            {
                return;
            }
        }
    })
    .await;
    h.server.shut_down().await;
}

/// Core: invite another VoIP participant into an ongoing group call. alice, in the
/// group call with bob, adds carol; it rings as an invitation into the group.
#[tokio::test]
async fn invite_another_voip_participant() {
    let h = Harness::start().await;
    let alice = user(&h, "alice", 1).await;
    let bob = user(&h, "bob", 2).await;
    let carol = user(&h, "carol", 3).await;
    let calls = join_all(&[&alice, &bob], "standup", |_| JoinCallOptions::new()).await;

    calls[0].add_participant(&carol.id).await.unwrap();
    let ringing = incoming(&carol).await;
    assert_eq!(ringing.id(), calls[0].id());
    assert_eq!(
        ringing.group_id(),
        Some(&GroupId::new("standup").unwrap()),
        "an invitation into the group"
    );
    let c = ringing.accept(AcceptCallOptions::new()).await.unwrap();
    until_state(&c, CallState::Connected).await;
    for call in &calls {
        until_participant(call, &carol.id, "connected", |p| {
            p.state() == ParticipantState::Connected
        })
        .await;
    }
    // Carol's roster arrives after her Connected state: wait for it.
    for other in [&alice.id, &bob.id] {
        until_participant(&c, other, "connected", |p| {
            p.state() == ParticipantState::Connected
        })
        .await;
    }
    assert_eq!(c.remote_participants().len(), 2);
    h.server.shut_down().await;
}

/// alice and bob in a call with tone audio and video engines; each decodes the
/// other's pictures into the returned [`Seen`].
async fn video_pair(
    alice: &User,
    bob: &User,
) -> (ringwire_calling::Call, ringwire_calling::Call, Seen, Seen) {
    let (alice_seen, bob_seen) = (Seen::default(), Seen::default());
    let a = alice
        .agent
        .start_call(
            std::slice::from_ref(&bob.id),
            StartCallOptions::new().with_audio(with_video(ALICE_HZ, &alice_seen)),
        )
        .await
        .unwrap();
    let b = incoming(bob)
        .await
        .accept(AcceptCallOptions::new().with_audio(with_video(BOB_HZ, &bob_seen)))
        .await
        .unwrap();
    within("alice's media", a.wait_media_connected())
        .await
        .unwrap();
    within("bob's media", b.wait_media_connected())
        .await
        .unwrap();
    (a, b, alice_seen, bob_seen)
}

/// Core: video on/off. alice turns her camera on: bob's roster and bob's handle on
/// alice show it with its size, bob decodes her pattern; off: it is gone again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_on_off() {
    let h = Harness::start().await;
    let alice = user(&h, "alice", 1).await;
    let bob = user(&h, "bob", 2).await;
    let (a, b, alice_seen, bob_seen) = video_pair(&alice, &bob).await;
    let alice_on_bob = b
        .remote_participant(&alice.id)
        .expect("alice in bob's roster");
    let mut about_alice = alice_on_bob.events();

    a.start_video(pattern(320, 180, 1)).await.unwrap();
    let camera = VideoStream {
        kind: VideoKind::Camera,
        size: Some(VideoSize::new(320, 180)),
    };
    assert_eq!(a.local_video(), [camera]);
    until_participant(&b, &alice.id, "with a 320x180 camera", |p| {
        p.video_streams() == [camera]
    })
    .await;
    until_event(&mut about_alice, &format!("VideoStreamAdded({camera:?})")).await;
    until_decoded("bob", &bob_seen, 1).await;

    a.stop_video().await.unwrap();
    assert!(a.local_video().is_empty());
    until_participant(&b, &alice.id, "without video", |p| {
        p.video_streams().is_empty()
    })
    .await;
    until_event(&mut about_alice, "VideoStreamRemoved { kind: Camera }").await;
    assert!(alice_on_bob.video_streams().is_empty());
    assert_eq!(alice_seen.count(1), 0, "alice sees herself");
    h.server.shut_down().await;
}

/// Core: mute/unmute microphone. Muted, alice's tone stops reaching bob and bob's
/// roster shows her muted; unmuted, both come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_unmute_microphone() {
    let h = Harness::start().await;
    let alice = user(&h, "alice", 1).await;
    let bob = user(&h, "bob", 2).await;
    let (a, b, _alice_ear, bob_ear) = media_pair(&alice, &bob).await;
    until_hearing("bob", &bob_ear, &[ALICE_HZ], &[BOB_HZ]).await;

    a.mute().await.unwrap();
    until("alice muted", &a, |c| c.is_muted()).await;
    until_participant(&b, &alice.id, "muted", |p| p.is_muted()).await;
    until_not_hearing("bob, alice muted", &bob_ear, &[ALICE_HZ]).await;

    a.unmute().await.unwrap();
    until("alice unmuted", &a, |c| !c.is_muted()).await;
    until_participant(&b, &alice.id, "unmuted", |p| !p.is_muted()).await;
    until_hearing("bob, alice unmuted", &bob_ear, &[ALICE_HZ], &[BOB_HZ]).await;
    h.server.shut_down().await;
}

/// Core: switch between cameras. alice switches from one camera to another while
/// sending: bob decodes the second camera's pattern and sees its size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_between_cameras() {
    let h = Harness::start().await;
    let alice = user(&h, "alice", 1).await;
    let bob = user(&h, "bob", 2).await;
    let (a, b, _alice_seen, bob_seen) = video_pair(&alice, &bob).await;

    a.start_video(pattern(320, 180, 1)).await.unwrap();
    until_decoded("bob, first camera", &bob_seen, 1).await;
    a.switch_source(pattern(480, 270, 2)).await.unwrap();
    until_participant(&b, &alice.id, "with a 480x270 camera", |p| {
        p.video_streams()
            == [VideoStream {
                kind: VideoKind::Camera,
                size: Some(VideoSize::new(480, 270)),
            }]
    })
    .await;
    until_decoded("bob, second camera", &bob_seen, 2).await;
    h.server.shut_down().await;
}

/// Core: local hold/resume. alice holds: both sides show it and neither hears the
/// other; she resumes: connected again, and the tones come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_hold_resume() {
    let h = Harness::start().await;
    let alice = user(&h, "alice", 1).await;
    let bob = user(&h, "bob", 2).await;
    let (a, b, alice_ear, bob_ear) = media_pair(&alice, &bob).await;
    until_hearing("bob", &bob_ear, &[ALICE_HZ], &[BOB_HZ]).await;

    a.hold().await.unwrap();
    until_state(&a, CallState::LocalHold).await;
    assert!(a.is_on_hold());
    until_state(&b, CallState::RemoteHold).await;
    until_participant(&b, &alice.id, "on hold", |p| {
        p.state() == ParticipantState::Hold
    })
    .await;
    until_not_hearing("bob, call held", &bob_ear, &[ALICE_HZ]).await;
    until_not_hearing("alice, call held", &alice_ear, &[BOB_HZ]).await;

    a.resume().await.unwrap();
    until_state(&a, CallState::Connected).await;
    until_state(&b, CallState::Connected).await;
    until_participant(&b, &alice.id, "back", |p| {
        p.state() == ParticipantState::Connected
    })
    .await;
    until_hearing("bob, resumed", &bob_ear, &[ALICE_HZ], &[BOB_HZ]).await;
    until_hearing("alice, resumed", &alice_ear, &[BOB_HZ], &[ALICE_HZ]).await;
    h.server.shut_down().await;
}

/// Core: active speaker. In a group of three only alice talks: everyone's dominant
/// speaker is alice, and their handle on her says she is the dominant speaker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_speaker() {
    let h = Harness::start().await;
    let alice = user(&h, "alice", 1).await;
    let bob = user(&h, "bob", 2).await;
    let carol = user(&h, "carol", 3).await;
    let calls = join_all(&[&alice, &bob, &carol], "standup", |i| {
        let audio = if i == 0 {
            voice(ALICE_HZ).0
        } else {
            let mut audio = ringwire_calling::AudioOptions::new(SilenceSource, NullSink::default());
            audio.media = no_dtx();
            audio
        };
        JoinCallOptions::new().with_audio(audio)
    })
    .await;
    for call in &calls[1..] {
        until(&format!("alice dominant in {}", call.id()), call, |c| {
            c.dominant_speakers().first() == Some(&alice.id)
        })
        .await;
        let alice_there = call.remote_participant(&alice.id).unwrap();
        assert!(alice_there.is_dominant_speaker());
        for silent in [&bob.id, &carol.id] {
            if let Some(p) = call.remote_participant(silent) {
                assert!(!p.is_dominant_speaker(), "{silent} is not dominant");
            }
        }
    }
    h.server.shut_down().await;
}

/// A user whose client lists the synthetic devices.
async fn user_with_devices(h: &Harness, name: &str, seed: u64) -> User {
    let options = CallClientOptions::new(h.endpoint(Kind::Ws))
        .with_device_config(DeviceManagerConfig::default().with_synthetic(true));
    user_with(h, name, seed, options).await
}

/// Core: select the microphone for calls. alice's call captures from the selected
/// (synthetic) microphone; selecting another mid-call moves the capture: bob hears the
/// new tone and not the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_microphone() {
    let h = Harness::start().await;
    let alice = user_with_devices(&h, "alice", 1).await;
    let bob = user(&h, "bob", 2).await;
    let microphones = alice
        .client
        .device_manager()
        .unwrap()
        .list(ringwire_devices::DeviceKind::Microphone)
        .unwrap();
    let tone = microphones
        .iter()
        .find(|d| d.id.as_str() == "synthetic:tone-440")
        .expect("the synthetic tone microphone is listed");
    alice
        .client
        .select_microphone(Selection::Device(tone.id.clone()))
        .unwrap();
    alice
        .client
        .select_speaker(Selection::Device("synthetic:null".into()))
        .unwrap();
    assert_eq!(
        alice.client.selected_microphone().unwrap(),
        Selection::Device(tone.id.clone())
    );

    let mut audio = alice.client.device_audio().unwrap();
    audio.media = no_dtx();
    let a = alice
        .agent
        .start_call(
            std::slice::from_ref(&bob.id),
            StartCallOptions::new().with_audio(audio),
        )
        .await
        .unwrap();
    let (audio, bob_ear) = voice(BOB_HZ);
    let _b = incoming(&bob)
        .await
        .accept(AcceptCallOptions::new().with_audio(audio))
        .await
        .unwrap();
    within("alice's media", a.wait_media_connected())
        .await
        .unwrap();
    until_hearing("bob", &bob_ear, &[440.0], &[1000.0, BOB_HZ]).await;

    alice
        .client
        .select_microphone(Selection::Device("synthetic:tone-1000".into()))
        .unwrap();
    until_hearing(
        "bob, after the switch",
        &bob_ear,
        &[1000.0],
        &[440.0, BOB_HZ],
    )
    .await;
    h.server.shut_down().await;
}

/// Every sample of the WAV file at `path`, once it is a complete file.
fn wav_samples(path: &std::path::Path) -> Option<Vec<i16>> {
    let mut source = WavSource::open(path).ok()?;
    let mut samples = Vec::new();
    let mut frame = [0i16; 960];
    while let Ok(SourceState::Active) = source.read_frame(&mut frame) {
        samples.extend_from_slice(&frame);
    }
    Some(samples)
}

/// Whether the WAV file at `path` holds `freq` in its best 400 ms window.
fn wav_has_tone(path: &std::path::Path, freq: f64) -> bool {
    let window = (WINDOW.as_secs_f64() * f64::from(SAMPLE_RATE)) as usize;
    wav_samples(path).is_some_and(|samples| {
        samples
            .chunks_exact(window)
            .any(|w| tone_snr(w, freq, SAMPLE_RATE) >= TONE_PRESENT_SNR_DB)
    })
}

/// Core: select the speaker for calls. alice plays the call on the selected (file)
/// speaker; selecting another mid-call moves playback: both files hold bob's tone
/// (the first is finished at the switch, the second when the call ends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_speaker() {
    let h = Harness::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("first.wav"), dir.path().join("second.wav"));
    let alice = user_with_devices(&h, "alice", 1).await;
    let bob = user(&h, "bob", 2).await;
    alice
        .client
        .select_microphone(Selection::Device("synthetic:silence".into()))
        .unwrap();
    let file =
        |p: &std::path::Path| Selection::Device(format!("file:{}", p.display()).as_str().into());
    alice.client.select_speaker(file(&first)).unwrap();

    let mut audio = alice.client.device_audio().unwrap();
    audio.media = no_dtx();
    let a = alice
        .agent
        .start_call(
            std::slice::from_ref(&bob.id),
            StartCallOptions::new().with_audio(audio),
        )
        .await
        .unwrap();
    let (audio, _) = voice(BOB_HZ);
    let _b = incoming(&bob)
        .await
        .accept(AcceptCallOptions::new().with_audio(audio))
        .await
        .unwrap();
    within("alice's media", a.wait_media_connected())
        .await
        .unwrap();
    // Two seconds of bob's audio arrive before the switch, by packet count.
    let received = || a.media_stats().map_or(0, |s| s.audio.packets_received);
    until_media(
        || format!("alice received {} packets", received()),
        || received() >= 100,
    )
    .await;

    alice.client.select_speaker(file(&second)).unwrap();
    assert_eq!(alice.client.selected_speaker().unwrap(), file(&second));
    assert!(wav_has_tone(&first, BOB_HZ), "the first speaker played bob");
    let switched = received();
    until_media(
        || format!("alice received {} packets", received()),
        || received() >= switched + 100,
    )
    .await;
    a.hang_up(HangUpOptions::new()).await.unwrap();
    until_state(&a, CallState::Disconnected).await;
    // The call's audio stops and finishes the file soon after the hang-up.
    until_media(
        || "the second speaker's file with bob's tone".to_owned(),
        || wav_has_tone(&second, BOB_HZ),
    )
    .await;
    h.server.shut_down().await;
}

/// Core: show participant state. alice's handle on bob follows him: ringing or
/// connecting, connected, on hold, disconnected; and a lobby shows `InLobby`.
#[tokio::test]
async fn participant_state() {
    let h = Harness::start().await;
    let alice = user(&h, "alice", 1).await;
    let bob = user(&h, "bob", 2).await;
    let a = alice
        .agent
        .start_call(std::slice::from_ref(&bob.id), StartCallOptions::new())
        .await
        .unwrap();
    let mut about_bob = a.participant_events(&bob.id);
    let ringing = incoming(&bob).await;
    until_participant(&a, &bob.id, "being called", |p| {
        matches!(
            p.state(),
            ParticipantState::Connecting | ParticipantState::Ringing
        )
    })
    .await;
    let bob_there = a.remote_participant(&bob.id).unwrap();
    let b = ringing.accept(AcceptCallOptions::new()).await.unwrap();
    until_event(&mut about_bob, "StateChanged { state: Connected }").await;
    assert_eq!(bob_there.state(), ParticipantState::Connected);

    b.hold().await.unwrap();
    until_event(&mut about_bob, "StateChanged { state: Hold }").await;
    assert_eq!(bob_there.state(), ParticipantState::Hold);
    until_state(&b, CallState::LocalHold).await;
    b.resume().await.unwrap();
    until_event(&mut about_bob, "StateChanged { state: Connected }").await;

    b.hang_up(HangUpOptions::new()).await.unwrap();
    until_event(&mut about_bob, "StateChanged { state: Disconnected }").await;
    assert_eq!(bob_there.state(), ParticipantState::Disconnected);

    // A lobby: bob waits in it, alice sees him there until she admits him.
    let group = GroupId::new("interview").unwrap();
    let a = alice
        .agent
        .join(&group, {
            let mut o = JoinCallOptions::new();
            o.lobby = true;
            o
        })
        .await
        .unwrap();
    until_state(&a, CallState::Connected).await;
    let b = bob
        .agent
        .join(&group, JoinCallOptions::new())
        .await
        .unwrap();
    until_state(&b, CallState::InLobby).await;
    until_participant(&a, &bob.id, "in the lobby", |p| {
        p.state() == ParticipantState::InLobby
    })
    .await;
    assert_eq!(
        a.lobby_participants()
            .iter()
            .map(|p| p.identifier().clone())
            .collect::<Vec<_>>(),
        std::slice::from_ref(&bob.id)
    );
    a.admit(&bob.id).await.unwrap();
    until_state(&b, CallState::Connected).await;
    until_participant(&a, &bob.id, "admitted", |p| {
        p.state() == ParticipantState::Connected
    })
    .await;
    assert!(a.lobby_participants().is_empty());
    h.server.shut_down().await;
}

/// The call states `events` reported, up to and including `last`.
async fn states_until(
    events: &mut ringwire_calling::CallEvents,
    last: CallState,
) -> Vec<CallState> {
    within(&format!("call state {last:?}"), async {
        let mut states = Vec::new();
        loop {
            if let Some(CallEvent::StateChanged { state, .. }) = events.recv().await {
                states.push(state);
                if state == last {
                    return states;
                }
            }
        }
    })
    .await
}

/// Core: show call state. alice's call goes connecting, ringing, connected, on hold,
/// connected, disconnected; bob's shows the remote hold; a lobby joiner waits
/// `InLobby`.
#[tokio::test]
async fn call_state() {
    let h = Harness::start().await;
    let alice = user(&h, "alice", 1).await;
    let bob = user(&h, "bob", 2).await;
    let a = alice
        .agent
        .start_call(std::slice::from_ref(&bob.id), StartCallOptions::new())
        .await
        .unwrap();
    let mut events = a.events();
    let ringing = incoming(&bob).await;
    until_state(&a, CallState::Ringing).await;
    let b = ringing.accept(AcceptCallOptions::new()).await.unwrap();
    let seen = states_until(&mut events, CallState::Connected).await;
    assert_eq!(seen.last(), Some(&CallState::Connected));
    until_state(&b, CallState::Connected).await;

    a.hold().await.unwrap();
    until_state(&a, CallState::LocalHold).await;
    until_state(&b, CallState::RemoteHold).await;
    a.resume().await.unwrap();
    assert_eq!(
        states_until(&mut events, CallState::Connected).await,
        [CallState::LocalHold, CallState::Connected]
    );
    until_state(&b, CallState::Connected).await;

    b.hang_up(HangUpOptions::new()).await.unwrap();
    let end = states_until(&mut events, CallState::Disconnected).await;
    assert_eq!(end.last(), Some(&CallState::Disconnected));
    assert_eq!(a.end_reason(), Some(EndReason::remote_hung_up()));

    // Declined: the caller's call ends as declined (603).
    let a = alice
        .agent
        .start_call(std::slice::from_ref(&bob.id), StartCallOptions::new())
        .await
        .unwrap();
    incoming(&bob).await.reject().await.unwrap();
    until_state(&a, CallState::Disconnected).await;
    assert_eq!(a.end_reason().map(|r| r.code), Some(603));

    // A lobby: the joiner waits InLobby.
    let group = GroupId::new("interview").unwrap();
    let mut options = JoinCallOptions::new();
    options.lobby = true;
    let host = alice.agent.join(&group, options).await.unwrap();
    until_state(&host, CallState::Connected).await;
    let waiting = bob
        .agent
        .join(&group, JoinCallOptions::new())
        .await
        .unwrap();
    until_state(&waiting, CallState::InLobby).await;
    h.server.shut_down().await;
}

/// Core: show whether a participant is muted. bob mutes: alice's handle on him says
/// so and his own event stream reports it; he unmutes: both say so again.
#[tokio::test]
async fn participant_is_muted() {
    let h = Harness::start().await;
    let alice = user(&h, "alice", 1).await;
    let bob = user(&h, "bob", 2).await;
    let (a, b) = connected_pair(&alice, &bob).await;
    let bob_there = a.remote_participant(&bob.id).unwrap();
    let mut about_bob = bob_there.events();
    assert!(!bob_there.is_muted());

    b.mute().await.unwrap();
    until("bob muted", &b, |c| c.is_muted()).await;
    until_event(&mut about_bob, "MutedChanged { muted: true }").await;
    assert!(bob_there.is_muted());

    b.unmute().await.unwrap();
    until_event(&mut about_bob, "MutedChanged { muted: false }").await;
    assert!(!bob_there.is_muted());
    h.server.shut_down().await;
}

/// Core: show why a participant left. In a group of three, carol hangs up and bob is
/// removed: alice's handles on them say why (a normal end, removed), and their event streams report it.
#[tokio::test]
async fn why_a_participant_left() {
    let h = Harness::start().await;
    let (users, calls) = group_of_three(&h).await;
    let [_, bob, carol] = &users;
    let bob_there = calls[0].remote_participant(&bob.id).unwrap();
    let carol_there = calls[0].remote_participant(&carol.id).unwrap();
    let (mut about_bob, mut about_carol) = (bob_there.events(), carol_there.events());

    calls[2].hang_up(HangUpOptions::new()).await.unwrap();
    until_event(
        &mut about_carol,
        &format!("Left {{ reason: {:?} }}", Some(EndReason::normal())),
    )
    .await;
    assert_eq!(carol_there.state(), ParticipantState::Disconnected);
    assert_eq!(carol_there.end_reason(), Some(EndReason::normal()));

    calls[0].remove_participant(&bob.id).await.unwrap();
    until_state(&calls[1], CallState::Disconnected).await;
    assert_eq!(calls[1].end_reason(), Some(EndReason::removed()));
    until_event(
        &mut about_bob,
        &format!("Left {{ reason: {:?} }}", Some(EndReason::removed())),
    )
    .await;
    assert_eq!(bob_there.end_reason(), Some(EndReason::removed()));
    assert_eq!(calls[0].state(), CallState::Connected);
    h.server.shut_down().await;
}
