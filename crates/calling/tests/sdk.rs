//! The calling SDK end to end, through its public API only: the real server (from
//! the shared harness, used for starting it and issuing tokens) and one
//! [`CallAgent`] per user over WebSocket.
//!
//! Every wait is for a state the SDK reports or for audio content (a tone's SNR in
//! what was played); [`GUARD`] and [`AUDIO_GUARD`] only turn a hang into a failure.

#![allow(clippy::unwrap_used)] // Scenario helpers outside #[test] fns unwrap too.

use std::f64::consts::TAU;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[path = "support/harness.rs"]
mod harness;

use harness::{GUARD, Harness, Kind};
use ringwire_calling::{
    AcceptCallOptions, AudioOptions, Call, CallAgent, CallClient, CallClientOptions, CallEvent,
    ConnectOptions, HangUpOptions, IncomingCall, JoinCallOptions, LocalVideoStream, RemoteVideo,
    StartCallOptions, VideoOptions,
};
use ringwire_media::audio_io::{
    AudioIoError, AudioSource, MemorySink, MemoryTap, NullSink, SourceState,
};
use ringwire_media::client::CallMediaConfig;
use ringwire_media::codec::{OpusConfig, SAMPLE_RATE};
use ringwire_media::video::{
    FrameRate, TestPatternSource, VideoFormat, VideoFrame, VideoIoError, VideoSink,
};
use ringwire_signaling::session::Direction;
use ringwire_signaling::{
    CallState, EndReason, GroupId, Identifier, ParticipantState, Scope, Scopes, UserId, VideoKind,
    VideoSize, VideoStream,
};

/// Longest audio content may take to show before the test fails.
const AUDIO_GUARD: Duration = Duration::from_secs(20);
/// How much recent audio a tone check looks at.
const WINDOW: Duration = Duration::from_millis(400);
const ALICE_HZ: f64 = 500.0;
const BOB_HZ: f64 = 700.0;

/// One signed-in user.
struct User {
    id: Identifier,
    agent: CallAgent,
}

/// An amplitude-modulated sine (±30 % at 3 Hz): a steady pure sine is stationary
/// noise to libopus, which a DTX encoder on the way would stop sending.
struct Voice {
    freq: f64,
    n: u64,
    name: String,
}

impl AudioSource for Voice {
    fn read_frame(&mut self, frame: &mut [i16]) -> Result<SourceState, AudioIoError> {
        let rate = f64::from(SAMPLE_RATE);
        for s in frame.iter_mut() {
            let t = (self.n % u64::from(SAMPLE_RATE)) as f64 / rate;
            let envelope = 1.0 + 0.3 * (TAU * 3.0 * t).sin();
            *s = (8192.0 / 1.3 * envelope * (TAU * self.freq * t).sin()).round() as i16;
            self.n += 1;
        }
        Ok(SourceState::Active)
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// Audio sending a `freq` tone (encoder DTX off), and the tap of what plays.
fn voice(freq: f64) -> (AudioOptions, MemoryTap) {
    let (sink, tap) = MemorySink::new();
    let source = Voice {
        freq,
        n: 0,
        name: format!("am tone {freq} Hz"),
    };
    let mut options = AudioOptions::new(source, sink);
    options.media = CallMediaConfig::with_opus(OpusConfig {
        dtx: false,
        ..OpusConfig::default()
    });
    (options, tap)
}

/// The sender tags of every picture decoded from any remote stream, in order.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<u32>>>);

impl VideoSink for Seen {
    fn write_frame(&mut self, frame: &VideoFrame) -> Result<(), VideoIoError> {
        if let Some(tag) = TestPatternSource::sender(frame) {
            self.0.lock().unwrap().push(tag);
        }
        Ok(())
    }

    fn name(&self) -> &str {
        "sender tags"
    }
}

impl Seen {
    /// How many pictures from sender `tag` were decoded.
    fn count(&self, tag: u32) -> usize {
        self.0.lock().unwrap().iter().filter(|t| **t == tag).count()
    }
}

/// Audio (a tone, nothing played) with video: a send section, and remote pictures'
/// sender tags into `seen`.
fn with_video(freq: f64, seen: &Seen) -> AudioOptions {
    let seen = seen.clone();
    let video = VideoOptions::new()
        .with_slots(2)
        .with_renderer(move |_: &RemoteVideo| Box::new(seen.clone()) as Box<dyn VideoSink>);
    let source = Voice {
        freq,
        n: 0,
        name: format!("am tone {freq} Hz"),
    };
    AudioOptions::new(source, NullSink::default()).with_video(video)
}

/// Polls every 100 ms until `seen` holds 5 pictures from sender `tag`.
async fn until_decoded(who: &str, seen: &Seen, tag: u32) {
    let started = tokio::time::Instant::now();
    while seen.count(tag) < 5 {
        assert!(
            started.elapsed() < AUDIO_GUARD,
            "{who} did not decode 5 pictures of sender {tag} within {AUDIO_GUARD:?}: {}",
            seen.count(tag)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn pattern(width: u32, height: u32, tag: u32) -> TestPatternSource {
    let format = VideoFormat::new(width, height, FrameRate::per_second(15).unwrap()).unwrap();
    TestPatternSource::new(format).unwrap().with_sender(tag)
}

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(GUARD, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {GUARD:?}"))
}

async fn user(h: &Harness, name: &str, seed: u64) -> User {
    let token = h.server.issue_token(
        &UserId::new(name).unwrap(),
        Scopes::from(Scope::Voip),
        Duration::from_secs(3600),
    );
    let mut connect = ConnectOptions::default();
    connect.seed = Some(seed);
    let client =
        CallClient::new(CallClientOptions::new(h.endpoint(Kind::Ws)).with_connect_options(connect));
    let agent = within(name, client.create_call_agent(token)).await.unwrap();
    User {
        id: Identifier::user(name).unwrap(),
        agent,
    }
}

async fn incoming(who: &User) -> IncomingCall {
    within("an incoming call", who.agent.next_incoming_call())
        .await
        .expect("the agent runs")
}

async fn until(what: &str, call: &Call, done: impl FnMut(&Call) -> bool) {
    within(what, call.wait_until(done))
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
}

async fn until_state(call: &Call, state: CallState) {
    until(&format!("{} {state:?}", call.id()), call, |c| {
        c.state() == state
    })
    .await;
}

/// alice calls bob without media and bob answers.
async fn connected_pair(alice: &User, bob: &User) -> (Call, Call) {
    let a = alice
        .agent
        .start_call(std::slice::from_ref(&bob.id), StartCallOptions::new())
        .await
        .unwrap();
    let ringing = incoming(bob).await;
    assert_eq!(ringing.id(), a.id());
    let b = ringing.accept(AcceptCallOptions::new()).await.unwrap();
    until_state(&a, CallState::Connected).await;
    until_state(&b, CallState::Connected).await;
    (a, b)
}

/// Waits until `call`'s roster shows `who` as `f` wants.
async fn until_participant(
    call: &Call,
    who: &Identifier,
    what: &str,
    f: impl Fn(&ringwire_calling::RemoteParticipant) -> bool,
) {
    until(&format!("{who} {what}"), call, |c| {
        c.remote_participant(who).is_some_and(|p| f(&p))
    })
    .await;
}

/// Three users in the group call `standup`, each seeing the other two connected.
async fn group_of_three(h: &Harness) -> ([User; 3], [Call; 3]) {
    let users = [
        user(h, "alice", 1).await,
        user(h, "bob", 2).await,
        user(h, "carol", 3).await,
    ];
    let group = GroupId::new("standup").unwrap();
    let mut calls = Vec::new();
    for u in &users {
        let call = u.agent.join(&group, JoinCallOptions::new()).await.unwrap();
        until_state(&call, CallState::Connected).await;
        calls.push(call);
    }
    let calls: [Call; 3] = calls.try_into().unwrap();
    for (i, call) in calls.iter().enumerate() {
        for (j, other) in users.iter().enumerate() {
            if i != j {
                until_participant(call, &other.id, "connected", |p| {
                    p.state() == ParticipantState::Connected
                })
                .await;
            }
        }
    }
    (users, calls)
}

/// Polls `tap` every 100 ms until it plays `hears` and not `not`.
async fn until_hearing(who: &str, tap: &MemoryTap, hears: f64, not: f64) {
    let started = tokio::time::Instant::now();
    loop {
        let (yes, no) = (tap.tone_snr(hears, WINDOW), tap.tone_snr(not, WINDOW));
        let full = tap.written() >= (WINDOW.as_secs_f64() * f64::from(SAMPLE_RATE)) as u64;
        if full && tap.has_tone(hears, WINDOW) && !tap.has_tone(not, WINDOW) {
            return;
        }
        assert!(
            started.elapsed() < AUDIO_GUARD,
            "{who}: does not hear {hears} Hz alone within {AUDIO_GUARD:?}: \
             {hears} Hz at {yes:.1} dB, {not} Hz at {no:.1} dB, {} samples played",
            tap.written()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_to_one_call_accepted_each_side_hears_the_others_tone() {
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

    until_hearing("alice", &alice_ear, BOB_HZ, ALICE_HZ).await;
    until_hearing("bob", &bob_ear, ALICE_HZ, BOB_HZ).await;
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

#[tokio::test]
async fn rejected_incoming_call_ends_for_the_caller_as_declined() {
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
    ringing.reject().await.unwrap();

    until_state(&a, CallState::Disconnected).await;
    assert_eq!(a.end_reason().map(|r| r.code), Some(603));
    // The event stream says the same, after the accessors show it.
    let ended = within("the end event", async {
        loop {
            if let Some(CallEvent::StateChanged {
                state: CallState::Disconnected,
                end_reason,
            }) = events.recv().await
            {
                return end_reason;
            }
        }
    })
    .await;
    assert_eq!(ended, a.end_reason());
    h.server.shut_down().await;
}

#[tokio::test]
async fn mute_shows_in_the_other_sides_remote_participant() {
    let h = Harness::start().await;
    let alice = user(&h, "alice", 1).await;
    let bob = user(&h, "bob", 2).await;
    let (a, b) = connected_pair(&alice, &bob).await;
    let mut about_bob = a.participant_events(&bob.id);

    b.mute().await.unwrap();
    until("bob muted", &b, Call::is_muted).await;
    until_participant(&a, &bob.id, "muted", |p| p.is_muted()).await;
    // Bob's own event stream on alice's side says so too.
    let update = within("an event about bob", async {
        loop {
            match about_bob.recv().await {
                Some(CallEvent::ParticipantUpdated(p)) if p.is_muted() => return p,
                Some(other) => assert_eq!(other.participant(), Some(&bob.id)),
                None => panic!("alice's events ended"),
            }
        }
    })
    .await;
    assert!(update.is_muted());

    b.unmute().await.unwrap();
    until_participant(&a, &bob.id, "unmuted", |p| !p.is_muted()).await;
    assert!(!b.is_muted());
    h.server.shut_down().await;
}

#[tokio::test]
async fn hold_and_resume_show_on_both_sides() {
    let h = Harness::start().await;
    let alice = user(&h, "alice", 1).await;
    let bob = user(&h, "bob", 2).await;
    let (a, b) = connected_pair(&alice, &bob).await;

    a.hold().await.unwrap();
    until_state(&a, CallState::LocalHold).await;
    assert!(a.is_on_hold());
    until_state(&b, CallState::RemoteHold).await;
    until_participant(&b, &alice.id, "on hold", |p| {
        p.state() == ParticipantState::Hold
    })
    .await;

    a.resume().await.unwrap();
    until_state(&a, CallState::Connected).await;
    until_state(&b, CallState::Connected).await;
    until_participant(&b, &alice.id, "back", |p| {
        p.state() == ParticipantState::Connected
    })
    .await;
    h.server.shut_down().await;
}

#[tokio::test]
async fn three_join_a_group_and_each_roster_lists_the_other_two() {
    let h = Harness::start().await;
    let (users, calls) = group_of_three(&h).await;
    for (u, call) in users.iter().zip(&calls) {
        let mut roster: Vec<Identifier> = call
            .remote_participants()
            .iter()
            .map(|p| p.identifier().clone())
            .collect();
        roster.sort();
        let mut others: Vec<Identifier> = users
            .iter()
            .filter(|o| o.id != u.id)
            .map(|o| o.id.clone())
            .collect();
        others.sort();
        assert_eq!(roster, others, "{}'s roster", u.id);
        assert_eq!(call.id(), calls[0].id());
    }
    h.server.shut_down().await;
}

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
        until(&format!("carol gone from {}", call.id()), call, |c| {
            c.remote_participant(&carol.id)
                .is_none_or(|p| p.state() == ParticipantState::Disconnected)
        })
        .await;
        assert_eq!(call.state(), CallState::Connected);
    }
    h.server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_and_screen_share_show_in_the_other_sides_roster_and_decode() {
    let h = Harness::start().await;
    let alice = user(&h, "alice", 1).await;
    let bob = user(&h, "bob", 2).await;
    let (alice_seen, bob_seen) = (Seen::default(), Seen::default());
    let a = alice
        .agent
        .start_call(
            std::slice::from_ref(&bob.id),
            StartCallOptions::new().with_audio(with_video(ALICE_HZ, &alice_seen)),
        )
        .await
        .unwrap();
    let b = incoming(&bob)
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

    // Camera: bob's roster shows it with its size, and bob decodes alice's pattern.
    a.start_video(pattern(320, 180, 1)).await.unwrap();
    let camera = VideoStream {
        kind: VideoKind::Camera,
        size: Some(VideoSize::new(320, 180)),
    };
    until_participant(&b, &alice.id, "with a 320x180 camera", |p| {
        p.video_streams() == [camera]
    })
    .await;
    assert_eq!(a.local_video(), [camera]);
    until_decoded("bob", &bob_seen, 1).await;

    // Switching the source announces the new size.
    a.switch_source(pattern(480, 270, 1)).await.unwrap();
    until_participant(&b, &alice.id, "with a 480x270 camera", |p| {
        p.video_streams()
            .iter()
            .any(|s| s.size == Some(VideoSize::new(480, 270)))
    })
    .await;

    // Screen share replaces the camera.
    a.stop_video().await.unwrap();
    until_participant(&b, &alice.id, "without video", |p| {
        p.video_streams().is_empty()
    })
    .await;
    a.start_screen_sharing(pattern(640, 360, 2)).await.unwrap();
    until_participant(&b, &alice.id, "sharing the screen", |p| {
        p.video_streams()
            .iter()
            .any(|s| s.kind == VideoKind::ScreenShare)
    })
    .await;
    until_decoded("bob", &bob_seen, 2).await;
    a.stop_screen_sharing().await.unwrap();
    until_participant(&b, &alice.id, "without video again", |p| {
        p.video_streams().is_empty()
    })
    .await;
    assert_eq!(
        alice_seen.count(1) + alice_seen.count(2),
        0,
        "alice sees herself"
    );
    h.server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_service_plays_the_callers_tone_back() {
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
    let started = tokio::time::Instant::now();
    while !ear.has_tone(ALICE_HZ, WINDOW) {
        assert!(
            started.elapsed() < AUDIO_GUARD,
            "alice's tone did not come back within {AUDIO_GUARD:?}: {:.1} dB",
            ear.tone_snr(ALICE_HZ, WINDOW)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Then the service hangs up with a normal end reason.
    tokio::time::timeout(AUDIO_GUARD, call.wait_for_state(CallState::Disconnected))
        .await
        .expect("the echo service hangs up")
        .unwrap();
    assert_eq!(call.end_reason().map(|r| r.code), Some(0), "a normal end");
    h.server.shut_down().await;
}

/// alice calls bob, both with audio; once it flows, every handle is dropped.
async fn media_call_then_drop_everything(h: &Harness) {
    let alice = user(h, "alice", 1).await;
    let bob = user(h, "bob", 2).await;
    let (audio, _) = voice(ALICE_HZ);
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
}

/// Polls every 100 ms until at most `count` tasks are alive.
async fn until_tasks_at_most(count: usize, what: &str) {
    let metrics = tokio::runtime::Handle::current().metrics();
    let started = tokio::time::Instant::now();
    while metrics.num_alive_tasks() > count {
        assert!(
            started.elapsed() < AUDIO_GUARD,
            "{what}: {} tasks alive, expected at most {count}",
            metrics.num_alive_tasks()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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

#[tokio::test]
async fn added_participant_joins_the_roster_and_removed_one_leaves_it() {
    let h = Harness::start().await;
    let alice = user(&h, "alice", 1).await;
    let bob = user(&h, "bob", 2).await;
    let carol = user(&h, "carol", 3).await;
    let (a, b) = connected_pair(&alice, &bob).await;

    a.add_participant(&carol.id).await.unwrap();
    let ringing = incoming(&carol).await;
    assert_eq!(ringing.id(), a.id());
    let c = ringing.accept(AcceptCallOptions::new()).await.unwrap();
    until_state(&c, CallState::Connected).await;
    for call in [&a, &b] {
        until_participant(call, &carol.id, "connected", |p| {
            p.state() == ParticipantState::Connected
        })
        .await;
    }

    a.remove_participant(&carol.id).await.unwrap();
    until_state(&c, CallState::Disconnected).await;
    assert_eq!(c.end_reason(), Some(EndReason::removed()));
    until(&format!("carol gone from {}", b.id()), &b, |call| {
        call.remote_participant(&carol.id)
            .is_none_or(|p| p.state() == ParticipantState::Disconnected)
    })
    .await;
    assert_eq!(b.state(), CallState::Connected);
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
