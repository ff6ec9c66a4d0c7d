//! What the SDK's end-to-end tests (`sdk.rs`, `seed_*.rs`) share: users signed in
//! through the public SDK, tone voices and test-pattern cameras, and waits on what
//! the SDK reports or on media content. Every wait has a guard that only turns a hang
//! into a failure; nothing asserts on time.

// Each test file uses some of these helpers, not all.
#![allow(dead_code)]

use std::f64::consts::TAU;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringwire_calling::{
    AcceptCallOptions, AudioOptions, Call, CallAgent, CallClient, CallClientOptions,
    ConnectOptions, Endpoint, IncomingCall, JoinCallOptions, ParticipantEvents, RemoteParticipant,
    RemoteVideo, StartCallOptions, VideoOptions,
};
use ringwire_media::analysis::mean_square;
use ringwire_media::audio_io::{
    AudioIoError, AudioSource, MemorySink, MemoryTap, NullSink, SourceState,
};
use ringwire_media::client::CallMediaConfig;
use ringwire_media::codec::{OpusConfig, SAMPLE_RATE};
use ringwire_media::video::{
    FrameRate, TestPatternSource, VideoFormat, VideoFrame, VideoIoError, VideoSink,
};
use ringwire_pstn::config::{OutboundTrunk, PortRange, PstnConfig, SipTransport};
use ringwire_server::{RunningServer, Server, ServerConfig};
use ringwire_signaling::{CallState, GroupId, Identifier, ParticipantState, Scope, Scopes, UserId};

use crate::harness::{GUARD, Harness, Kind};

/// Longest audio or video content may take to show before the test fails.
pub(crate) const MEDIA_GUARD: Duration = Duration::from_secs(20);
/// How much recent audio a tone check looks at.
pub(crate) const WINDOW: Duration = Duration::from_millis(400);
pub(crate) const ALICE_HZ: f64 = 500.0;
pub(crate) const BOB_HZ: f64 = 700.0;
pub(crate) const CAROL_HZ: f64 = 900.0;

/// One signed-in user.
pub(crate) struct User {
    pub(crate) id: Identifier,
    pub(crate) client: CallClient,
    pub(crate) agent: CallAgent,
}

/// An amplitude-modulated sine (±30 % at 3 Hz): a steady pure sine is stationary
/// noise to libopus, which a DTX encoder on the way would stop sending.
pub(crate) struct Voice {
    freq: f64,
    n: u64,
    name: String,
}

impl Voice {
    pub(crate) fn new(freq: f64) -> Voice {
        Voice {
            freq,
            n: 0,
            name: format!("am tone {freq} Hz"),
        }
    }
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

/// The encoder settings the tone tests use: DTX off.
pub(crate) fn no_dtx() -> CallMediaConfig {
    CallMediaConfig::with_opus(OpusConfig {
        dtx: false,
        ..OpusConfig::default()
    })
}

/// Audio sending a `freq` tone (encoder DTX off), and the tap of what plays.
pub(crate) fn voice(freq: f64) -> (AudioOptions, MemoryTap) {
    let (sink, tap) = MemorySink::new();
    let mut options = AudioOptions::new(Voice::new(freq), sink);
    options.media = no_dtx();
    (options, tap)
}

/// A decoded picture's test-pattern sender tag and frame number, when it has them.
type Tags = (Option<u32>, Option<u32>);

/// The sender tags and frame numbers of every picture decoded from any remote
/// stream, in order.
#[derive(Clone, Default)]
pub(crate) struct Seen(Arc<Mutex<Vec<Tags>>>);

impl VideoSink for Seen {
    fn write_frame(&mut self, frame: &VideoFrame) -> Result<(), VideoIoError> {
        let entry = (
            TestPatternSource::sender(frame),
            TestPatternSource::frame_number(frame),
        );
        self.0.lock().unwrap().push(entry);
        Ok(())
    }

    fn name(&self) -> &str {
        "sender tags"
    }
}

impl Seen {
    /// How many pictures from sender `tag` were decoded.
    pub(crate) fn count(&self, tag: u32) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| *t == Some(tag))
            .count()
    }

    /// How many test-pattern pictures (with a frame number) were decoded.
    pub(crate) fn patterns(&self) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, n)| n.is_some())
            .count()
    }

    /// The decoded pictures from now on only.
    pub(crate) fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

/// Video options decoding every remote picture into `seen`.
pub(crate) fn video_into(seen: &Seen) -> VideoOptions {
    let seen = seen.clone();
    VideoOptions::new()
        .with_slots(2)
        .with_renderer(move |_: &RemoteVideo| Box::new(seen.clone()) as Box<dyn VideoSink>)
}

/// Audio (a tone, nothing played) with video: a send section, and remote pictures'
/// sender tags into `seen`.
pub(crate) fn with_video(freq: f64, seen: &Seen) -> AudioOptions {
    let mut options = AudioOptions::new(Voice::new(freq), NullSink::default());
    options.media = no_dtx();
    options.with_video(video_into(seen))
}

/// Polls every 100 ms until `f` holds, failing after [`MEDIA_GUARD`] with `what`.
pub(crate) async fn until_media(what: impl Fn() -> String, mut f: impl FnMut() -> bool) {
    let started = tokio::time::Instant::now();
    while !f() {
        assert!(
            started.elapsed() < MEDIA_GUARD,
            "{} within {MEDIA_GUARD:?}",
            what()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls until `seen` holds 5 pictures from sender `tag`.
pub(crate) async fn until_decoded(who: &str, seen: &Seen, tag: u32) {
    until_media(
        || {
            format!(
                "{who} did not decode 5 pictures of sender {tag}: {}",
                seen.count(tag)
            )
        },
        || seen.count(tag) >= 5,
    )
    .await;
}

/// A `width`x`height` test pattern at 15 fps tagged with `tag`.
pub(crate) fn pattern(width: u32, height: u32, tag: u32) -> TestPatternSource {
    let format = VideoFormat::new(width, height, FrameRate::per_second(15).unwrap()).unwrap();
    TestPatternSource::new(format).unwrap().with_sender(tag)
}

pub(crate) async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(GUARD, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {GUARD:?}"))
}

/// `name` signed in over WebSocket with a client made from `options`.
pub(crate) async fn user_with(
    h: &Harness,
    name: &str,
    seed: u64,
    options: CallClientOptions,
) -> User {
    let token = h.server.issue_token(
        &UserId::new(name).unwrap(),
        Scopes::from(Scope::Voip),
        Duration::from_secs(3600),
    );
    let mut connect = ConnectOptions::default();
    connect.seed = Some(seed);
    let client = CallClient::new(options.with_connect_options(connect));
    let agent = within(name, client.create_call_agent(token)).await.unwrap();
    User {
        id: Identifier::user(name).unwrap(),
        client,
        agent,
    }
}

/// The real server with a `[pstn]` section: one UDP outbound trunk to `trunk` (the
/// phones' far end) for country code 1, caller id `+15550001111`.
pub(crate) struct PstnServer {
    pub(crate) server: RunningServer,
    _dir: tempfile::TempDir,
}

impl PstnServer {
    pub(crate) async fn start(trunk: SocketAddr) -> PstnServer {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        let pstn = PstnConfig {
            sip_listen: "127.0.0.1:0".parse().unwrap(),
            tls: None,
            advertised_ip: None,
            // Below the ephemeral range (sipp's ports), apart from the server's tests.
            rtp_ports: PortRange {
                first: 21600,
                last: 21799,
            },
            outbound: vec![OutboundTrunk {
                name: "sipp".into(),
                address: trunk,
                transport: SipTransport::Udp,
                tls: None,
                credentials: None,
                caller_ids: vec!["+15550001111".into()],
                allowed_country_codes: vec!["1".into()],
            }],
            inbound: Vec::new(),
            dispatch: Vec::new(),
            ring_timeout: Duration::from_secs(20),
            max_call_duration: Duration::from_secs(300),
            media_timeout: Duration::from_secs(20),
            max_calls_per_identity: 4,
            calls_per_minute_per_identity: 10,
        };
        let config = ServerConfig {
            http_addr: "127.0.0.1:0".parse().unwrap(),
            quic_addr: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_path_buf(),
            pstn: Some(pstn),
            ..ServerConfig::default()
        };
        let server = Server::start(config).await.unwrap();
        assert!(server.sip_addr().is_some(), "the gateway runs");
        PstnServer { server, _dir: dir }
    }
}

/// `name` signed in over WebSocket to `s` with a token that may call phones (scopes
/// voip and pstn).
pub(crate) async fn phone_user(s: &PstnServer, name: &str, seed: u64) -> User {
    let token = s.server.issue_token(
        &UserId::new(name).unwrap(),
        Scopes::from(Scope::Voip).with(Scope::Pstn),
        Duration::from_secs(3600),
    );
    let mut connect = ConnectOptions::default();
    connect.seed = Some(seed);
    let endpoint = Endpoint::ws(format!("ws://{}/v1/signaling", s.server.http_addr()));
    let client = CallClient::new(CallClientOptions::new(endpoint).with_connect_options(connect));
    let agent = within(name, client.create_call_agent(token)).await.unwrap();
    User {
        id: Identifier::user(name).unwrap(),
        client,
        agent,
    }
}

/// `name` signed in over WebSocket.
pub(crate) async fn user(h: &Harness, name: &str, seed: u64) -> User {
    user_with(h, name, seed, CallClientOptions::new(h.endpoint(Kind::Ws))).await
}

pub(crate) async fn incoming(who: &User) -> IncomingCall {
    within("an incoming call", who.agent.next_incoming_call())
        .await
        .expect("the agent runs")
}

pub(crate) async fn until(what: &str, call: &Call, done: impl FnMut(&Call) -> bool) {
    within(what, call.wait_until(done))
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
}

pub(crate) async fn until_state(call: &Call, state: CallState) {
    until(&format!("{} {state:?}", call.id()), call, |c| {
        c.state() == state
    })
    .await;
}

/// alice calls bob without media and bob answers.
pub(crate) async fn connected_pair(alice: &User, bob: &User) -> (Call, Call) {
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
    until_present(&[(&a, &bob.id), (&b, &alice.id)]).await;
    (a, b)
}

/// Waits until each call's roster lists the participant: a roster arrives after the
/// call state, so a test that takes a participant's handle must wait for it.
pub(crate) async fn until_present(pairs: &[(&Call, &Identifier)]) {
    for (call, who) in pairs {
        until_participant(call, who, "in the roster", |_| true).await;
    }
}

/// alice calls bob, both with tone audio (alice [`ALICE_HZ`], bob [`BOB_HZ`]), and
/// bob answers; returns once both media paths flow, with each side's ear.
pub(crate) async fn media_pair(alice: &User, bob: &User) -> (Call, Call, MemoryTap, MemoryTap) {
    let (audio, alice_ear) = voice(ALICE_HZ);
    let a = alice
        .agent
        .start_call(
            std::slice::from_ref(&bob.id),
            StartCallOptions::new().with_audio(audio),
        )
        .await
        .unwrap();
    let (audio, bob_ear) = voice(BOB_HZ);
    let b = incoming(bob)
        .await
        .accept(AcceptCallOptions::new().with_audio(audio))
        .await
        .unwrap();
    until_state(&a, CallState::Connected).await;
    within("alice's media", a.wait_media_connected())
        .await
        .unwrap();
    within("bob's media", b.wait_media_connected())
        .await
        .unwrap();
    (a, b, alice_ear, bob_ear)
}

/// Waits until `call`'s roster shows `who` as `f` wants.
pub(crate) async fn until_participant(
    call: &Call,
    who: &Identifier,
    what: &str,
    f: impl Fn(&RemoteParticipant) -> bool,
) {
    until(&format!("{who} {what}"), call, |c| {
        c.remote_participant(who).is_some_and(|p| f(&p))
    })
    .await;
}

/// Waits until `who` is gone from `call`'s roster (or shown disconnected).
pub(crate) async fn until_gone(call: &Call, who: &Identifier) {
    until(&format!("{who} gone from {}", call.id()), call, |c| {
        c.remote_participant(who)
            .is_none_or(|p| p.state() == ParticipantState::Disconnected)
    })
    .await;
}

/// Waits on `events` for an event whose debug form is `expected` (the event type is
/// not exported yet, so tests compare its debug form); returns the events skipped.
pub(crate) async fn until_event(events: &mut ParticipantEvents, expected: &str) -> Vec<String> {
    let who = events.participant().clone();
    let mut skipped = Vec::new();
    let found = tokio::time::timeout(GUARD, async {
        loop {
            let event = events.recv().await.expect("the call's events go on");
            let text = format!("{event:?}");
            if text == expected {
                return;
            }
            skipped.push(text);
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "{expected} about {who}: not within {GUARD:?}; saw {skipped:#?}"
    );
    skipped
}

/// Joins the users to group call `group`, each waiting until connected and seeing
/// the ones before connected.
pub(crate) async fn join_all(
    users: &[&User],
    group: &str,
    make: impl Fn(usize) -> JoinCallOptions,
) -> Vec<Call> {
    let group = GroupId::new(group).unwrap();
    let mut calls: Vec<Call> = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let call = u.agent.join(&group, make(i)).await.unwrap();
        until_state(&call, CallState::Connected).await;
        calls.push(call);
    }
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
    calls
}

/// alice, bob and carol in group call `standup` without media, each seeing the other
/// two connected.
pub(crate) async fn group_of_three(h: &Harness) -> ([User; 3], [Call; 3]) {
    let users = [
        user(h, "alice", 1).await,
        user(h, "bob", 2).await,
        user(h, "carol", 3).await,
    ];
    let calls = join_all(&[&users[0], &users[1], &users[2]], "standup", |_| {
        JoinCallOptions::new()
    })
    .await;
    let calls: [Call; 3] = calls.try_into().unwrap_or_else(|_| unreachable!());
    for (i, call) in calls.iter().enumerate() {
        for (j, other) in users.iter().enumerate() {
            if i != j {
                until_present(&[(call, &other.id)]).await;
            }
        }
    }
    (users, calls)
}

/// Polls `tap` every 100 ms until it plays every tone of `hears` and none of `not`.
pub(crate) async fn until_hearing(who: &str, tap: &MemoryTap, hears: &[f64], not: &[f64]) {
    let full = (WINDOW.as_secs_f64() * f64::from(SAMPLE_RATE)) as u64;
    until_media(
        || {
            let levels: Vec<String> = hears
                .iter()
                .chain(not)
                .map(|f| format!("{f} Hz at {:.1} dB", tap.tone_snr(*f, WINDOW)))
                .collect();
            format!(
                "{who}: does not hear {hears:?} without {not:?}: {}, {} samples played",
                levels.join(", "),
                tap.written()
            )
        },
        || {
            tap.written() >= full
                && hears.iter().all(|f| tap.has_tone(*f, WINDOW))
                && !not.iter().any(|f| tap.has_tone(*f, WINDOW))
        },
    )
    .await;
}

/// Polls `tap` every 100 ms until it plays a mix holding each tone of `hears` (each
/// at least a quarter of the power of the rest, at a level well above silence) and
/// none of `not` (each under 1/30 of the rest): what one listener of a group call
/// hears.
pub(crate) async fn until_hearing_mix(who: &str, tap: &MemoryTap, hears: &[f64], not: &[f64]) {
    let full = (WINDOW.as_secs_f64() * f64::from(SAMPLE_RATE)) as u64;
    let loud = || tap.analyze(WINDOW, mean_square) > 1.0e5;
    until_media(
        || {
            let levels: Vec<String> = hears
                .iter()
                .chain(not)
                .map(|f| format!("{f} Hz at {:.1} dB", tap.tone_snr(*f, WINDOW)))
                .collect();
            format!(
                "{who}: does not hear the mix of {hears:?} without {not:?}: {}, mean square {:.0}",
                levels.join(", "),
                tap.analyze(WINDOW, mean_square)
            )
        },
        || {
            tap.written() >= full
                && loud()
                && hears.iter().all(|f| tap.tone_snr(*f, WINDOW) >= -6.0)
                && not.iter().all(|f| tap.tone_snr(*f, WINDOW) <= -15.0)
        },
    )
    .await;
}

/// Polls `tap` every 100 ms until a full window of played audio holds none of
/// `freqs`.
pub(crate) async fn until_not_hearing(who: &str, tap: &MemoryTap, freqs: &[f64]) {
    let start = tap.written();
    let full = (WINDOW.as_secs_f64() * f64::from(SAMPLE_RATE)) as u64;
    until_media(
        || {
            let heard: Vec<String> = freqs
                .iter()
                .map(|f| format!("{f} Hz at {:.1} dB", tap.tone_snr(*f, WINDOW)))
                .collect();
            format!("{who}: still hears {}", heard.join(", "))
        },
        || tap.written() >= start + full && !freqs.iter().any(|f| tap.has_tone(*f, WINDOW)),
    )
    .await;
}

/// Polls every 100 ms until at most `count` tasks are alive.
pub(crate) async fn until_tasks_at_most(count: usize, what: &str) {
    let metrics = tokio::runtime::Handle::current().metrics();
    until_media(
        || {
            format!(
                "{what}: {} tasks alive, expected at most {count}",
                metrics.num_alive_tasks()
            )
        },
        || metrics.num_alive_tasks() <= count,
    )
    .await;
}
