//! Video end to end: the real server (signaling over WebSocket, its media plane on a
//! loopback UDP socket) and real native clients. Each client sends a
//! [`TestPatternSource`] tagged with its own number through
//! [`SignalingClient::start_video`] (OpenH264 encode, str0m over DTLS-SRTP, the
//! server's SFU forwarding the packets unchanged), and decodes what it receives into
//! a sink that reads back each picture's sender tag and frame number. Video is checked
//! by content: whose pattern a stream shows, and that its frame numbers rise without
//! gaps, never by "some bytes arrived".
//!
//! Tests run on a two-worker runtime, like the audio tests: server and clients are
//! separate programs in real life.
//!
//! Every wait is for content: the sinks are polled every 100 ms until a condition
//! holds. [`VIDEO_GUARD`] only turns a hang into a failure with what was seen.

#![allow(clippy::unwrap_used)] // Scenario helpers outside #[test] fns unwrap too.

use std::sync::{Arc, Mutex};
use std::time::Duration;

#[path = "support/harness.rs"]
mod harness;

use harness::{Client, Harness, Kind, group_of_three};
use ringwire_calling::{AudioHandle, AudioOptions, RemoteVideo, VideoOptions, VideoStats};
use ringwire_media::audio_io::{
    AudioSource, NullSink, SilenceSource, SpeechLikeConfig, SpeechLikeSource,
};
use ringwire_media::video::{
    FrameRate, TestPatternSource, VideoFormat, VideoFrame, VideoIoError, VideoSink,
};
use ringwire_signaling::{
    CallId, CallState, GroupId, Identifier, JoinOptions, VideoKind, VideoSize,
};

/// Longest a content condition may take before the test fails.
const VIDEO_GUARD: Duration = Duration::from_secs(25);
/// Pictures a stream must show (2 s at 15 fps) before it counts as flowing.
const FLOWING: usize = 30;
/// Frame rate of the test patterns.
const FPS: u32 = 15;
/// The encoder's periodic key-frame interval in these tests, in frames.
const KEYFRAME_INTERVAL: u32 = 90;

/// Every remote stream a client's renderer opened, and what it decoded.
#[derive(Clone, Default)]
struct Screens(Arc<Mutex<Vec<Screen>>>);

/// One remote stream as a receive slot showed it.
#[derive(Debug, Clone)]
struct Screen {
    stream: RemoteVideo,
    /// (sender tag, frame number) of each decoded picture; `None` for a picture
    /// whose codes could not be read (a corrupt decode).
    codes: Vec<Option<(u32, u32)>>,
    /// The slot stopped showing it.
    finished: bool,
}

/// The sink of one [`Screen`].
struct CodeSink {
    screens: Screens,
    index: usize,
}

impl VideoSink for CodeSink {
    fn write_frame(&mut self, frame: &VideoFrame) -> Result<(), VideoIoError> {
        let code = TestPatternSource::sender(frame).zip(TestPatternSource::frame_number(frame));
        if let Some(screen) = self.screens.0.lock().unwrap().get_mut(self.index) {
            screen.codes.push(code);
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), VideoIoError> {
        if let Some(screen) = self.screens.0.lock().unwrap().get_mut(self.index) {
            screen.finished = true;
        }
        Ok(())
    }

    fn name(&self) -> &str {
        "codes"
    }
}

impl Screens {
    fn renderer(&self) -> impl FnMut(&RemoteVideo) -> Box<dyn VideoSink> + Send + 'static {
        let screens = self.clone();
        move |stream: &RemoteVideo| {
            let mut all = screens.0.lock().unwrap();
            all.push(Screen {
                stream: stream.clone(),
                codes: Vec::new(),
                finished: false,
            });
            Box::new(CodeSink {
                screens: screens.clone(),
                index: all.len() - 1,
            }) as Box<dyn VideoSink>
        }
    }

    /// The streams shown now.
    fn open(&self) -> Vec<Screen> {
        let all = self.0.lock().unwrap();
        all.iter().filter(|s| !s.finished).cloned().collect()
    }

    /// Everything ever shown.
    fn all(&self) -> Vec<Screen> {
        self.0.lock().unwrap().clone()
    }

    /// How many pictures every stream ever shown has decoded, per index: a mark to
    /// look only at what comes after a step.
    fn mark(&self) -> Vec<usize> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.codes.len())
            .collect()
    }
}

impl Screen {
    /// The codes decoded after `mark` (as [`Screens::mark`] returned).
    fn codes_since(&self, index: usize, mark: &[usize]) -> &[Option<(u32, u32)>] {
        let from = mark.get(index).copied().unwrap_or(0).min(self.codes.len());
        &self.codes[from..]
    }
}

/// Whether `codes` are a flowing stream of `tag`'s pattern: at least `min` pictures,
/// all readable and from `tag`, frame numbers strictly rising, and at most one in ten
/// missing between the first and the last (the stream runs at the sender's rate).
fn flowing(codes: &[Option<(u32, u32)>], tag: u32, min: usize) -> Result<(), String> {
    if codes.len() < min {
        return Err(format!("{} of {min} pictures", codes.len()));
    }
    let mut numbers = Vec::with_capacity(codes.len());
    for (i, code) in codes.iter().enumerate() {
        match code {
            Some((sender, number)) if *sender == tag => numbers.push(*number),
            Some((sender, _)) => return Err(format!("picture {i} is from {sender}, not {tag}")),
            None => return Err(format!("picture {i} is unreadable")),
        }
    }
    if let Some(w) = numbers.windows(2).find(|w| w[1] <= w[0]) {
        return Err(format!("frame numbers do not rise: {} then {}", w[0], w[1]));
    }
    let (first, last) = (numbers[0], numbers[numbers.len() - 1]);
    let span = (last - first + 1) as usize;
    if span * 9 > numbers.len() * 10 {
        return Err(format!(
            "{} pictures over frames {first}..={last}: too many missing",
            numbers.len()
        ));
    }
    Ok(())
}

/// A client's media in one call: the handle and what it shows.
struct Cam {
    handle: AudioHandle,
    screens: Screens,
}

impl Cam {
    /// Starts `client`'s media in `call` with `slots` receive slots and `voice` as its
    /// microphone.
    async fn start(
        client: &Client,
        call: &CallId,
        slots: usize,
        voice: impl AudioSource + 'static,
    ) -> Cam {
        let screens = Screens::default();
        let mut video = VideoOptions::new()
            .with_slots(slots)
            .with_renderer(screens.renderer());
        video.encoder.bitrate = 400_000;
        video.encoder.keyframe_interval = KEYFRAME_INTERVAL;
        let options = AudioOptions::new(voice, NullSink::default()).with_video(video);
        let handle = client
            .handle
            .start_audio(call, options)
            .await
            .unwrap_or_else(|e| panic!("{}: start media: {e}", client.name));
        tokio::time::timeout(VIDEO_GUARD, handle.wait_connected())
            .await
            .unwrap_or_else(|_| panic!("{}: media not connected", client.name))
            .unwrap_or_else(|e| panic!("{}: media did not connect: {e}", client.name));
        Cam { handle, screens }
    }

    fn stats(&self) -> VideoStats {
        self.handle.video_stats()
    }
}

fn pattern(width: u32, height: u32, tag: u32) -> TestPatternSource {
    let format = VideoFormat::new(width, height, FrameRate::per_second(FPS).unwrap()).unwrap();
    TestPatternSource::new(format).unwrap().with_sender(tag)
}

/// Polls `check` every 100 ms until it holds; fails with its last complaint after
/// [`VIDEO_GUARD`].
async fn until(what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let started = tokio::time::Instant::now();
    loop {
        match check() {
            Ok(()) => return,
            Err(why) if started.elapsed() > VIDEO_GUARD => {
                panic!("{what}: not so within {VIDEO_GUARD:?}: {why}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Whether `cam` (named `who`) shows exactly `expected` streams — (participant, kind,
/// tag) — each flowing since `mark`.
fn shows(
    who: &str,
    cam: &Cam,
    expected: &[(&Identifier, VideoKind, u32)],
    mark: &[usize],
) -> Result<(), String> {
    let all = cam.screens.all();
    let open: Vec<(usize, &Screen)> = all
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.finished)
        .collect();
    let describe = || {
        open.iter()
            .map(|(_, s)| {
                format!(
                    "{}/{:?} ({} pictures)",
                    s.stream.participant,
                    s.stream.kind,
                    s.codes.len()
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if open.len() != expected.len() {
        return Err(format!(
            "{who} shows {} streams, wants {}: {}; stats {:?}",
            open.len(),
            expected.len(),
            describe(),
            cam.stats()
        ));
    }
    for (participant, kind, tag) in expected {
        let Some((index, screen)) = open
            .iter()
            .find(|(_, s)| s.stream.participant == **participant && s.stream.kind == *kind)
        else {
            return Err(format!(
                "{who} does not show {participant}/{kind:?}: {}",
                describe()
            ));
        };
        flowing(screen.codes_since(*index, mark), *tag, FLOWING).map_err(|e| {
            format!(
                "{who}, {participant}/{kind:?}: {e}; stats {:?}",
                cam.stats()
            )
        })?;
    }
    Ok(())
}

/// Three clients in a group call, each sending its camera (tags 1, 2, 3).
struct Room {
    h: Harness,
    alice: Client,
    bob: Client,
    carol: Client,
    call: CallId,
    a: Cam,
    b: Cam,
    c: Cam,
}

const ALICE: u32 = 1;
const BOB: u32 = 2;
const CAROL: u32 = 3;

impl Room {
    async fn start() -> Room {
        let mut h = Harness::start().await;
        let mut alice = h.client(Kind::Ws, "alice").await;
        let mut bob = h.client(Kind::Ws, "bob").await;
        let mut carol = h.client(Kind::Ws, "carol").await;
        let call = group_of_three(&mut alice, &mut bob, &mut carol).await;
        let a = Cam::start(&alice, &call, 6, SilenceSource).await;
        let b = Cam::start(&bob, &call, 6, SilenceSource).await;
        let c = Cam::start(&carol, &call, 6, SilenceSource).await;
        for (client, tag) in [(&alice, ALICE), (&bob, BOB), (&carol, CAROL)] {
            client
                .handle
                .start_video(&call, VideoKind::Camera, pattern(320, 180, tag))
                .await
                .unwrap_or_else(|e| panic!("{}: start video: {e}", client.name));
        }
        let room = Room {
            h,
            alice,
            bob,
            carol,
            call,
            a,
            b,
            c,
        };
        room.until_everyone_sees_the_others(&[]).await;
        room
    }

    /// Each shows the other two cameras, flowing since `mark` (one per client).
    async fn until_everyone_sees_the_others(&self, mark: &[Vec<usize>]) {
        let none = Vec::new();
        let mark = |i: usize| mark.get(i).unwrap_or(&none);
        let (alice, bob, carol) = (&self.alice.id, &self.bob.id, &self.carol.id);
        until("each sees the other two cameras", || {
            shows(
                "alice",
                &self.a,
                &[
                    (bob, VideoKind::Camera, BOB),
                    (carol, VideoKind::Camera, CAROL),
                ],
                mark(0),
            )?;
            shows(
                "bob",
                &self.b,
                &[
                    (alice, VideoKind::Camera, ALICE),
                    (carol, VideoKind::Camera, CAROL),
                ],
                mark(1),
            )?;
            shows(
                "carol",
                &self.c,
                &[
                    (alice, VideoKind::Camera, ALICE),
                    (bob, VideoKind::Camera, BOB),
                ],
                mark(2),
            )
        })
        .await;
    }

    fn marks(&self) -> Vec<Vec<usize>> {
        vec![
            self.a.screens.mark(),
            self.b.screens.mark(),
            self.c.screens.mark(),
        ]
    }

    async fn end(self) {
        self.h.server.shut_down().await;
    }
}

/// What `client`'s roster says `who` sends.
async fn roster_video(
    client: &Client,
    call: &CallId,
    who: &Identifier,
) -> Vec<(VideoKind, Option<VideoSize>)> {
    let call = client
        .handle
        .call(call)
        .await
        .unwrap()
        .expect("the call is known");
    call.remote_participants()
        .find(|p| p.id() == who)
        .map(|p| p.video().iter().map(|s| (s.kind, s.size)).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_clients_each_decode_the_other_two_test_patterns() {
    let room = Room::start().await;
    // Room::start waited for each to decode the other two patterns without gaps.
    for cam in [&room.a, &room.b, &room.c] {
        let stats = cam.stats();
        assert!(
            stats.keyframes_sent >= 1 && stats.frames_sent > stats.keyframes_sent,
            "{stats:?}"
        );
        assert_eq!(stats.decode_errors, 0, "{stats:?}");
    }
    // Everyone's roster shows the others' cameras with their size.
    let size = Some(VideoSize::new(320, 180));
    assert_eq!(
        roster_video(&room.bob, &room.call, &room.alice.id).await,
        vec![(VideoKind::Camera, size)]
    );
    assert_eq!(
        roster_video(&room.alice, &room.call, &room.carol.id).await,
        vec![(VideoKind::Camera, size)]
    );
    let media = room.h.server.media_stats().await.unwrap();
    assert!(media.video_in > 0 && media.video_out > 0, "{media:?}");
    room.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_the_source_shows_the_new_pattern_within_a_keyframe_interval() {
    let mut room = Room::start().await;
    let before = room.marks();
    // alice switches to another camera: another tag, another size.
    const SWITCHED: u32 = 11;
    room.alice
        .handle
        .switch_video_source(&room.call, pattern(640, 360, SWITCHED))
        .await
        .unwrap();
    let alice = room.alice.id.clone();
    until("bob and carol see alice's new camera", || {
        for (who, cam, mark) in [("bob", &room.b, &before[1]), ("carol", &room.c, &before[2])] {
            let all = cam.screens.all();
            let (index, screen) = all
                .iter()
                .enumerate()
                .find(|(_, s)| !s.finished && s.stream.participant == alice)
                .ok_or_else(|| format!("{who} does not show alice"))?;
            let codes = screen.codes_since(index, mark);
            // The same stream goes on: old pictures, then only new ones.
            let first_new = codes
                .iter()
                .position(|c| matches!(c, Some((SWITCHED, _))))
                .ok_or_else(|| format!("{who}: no picture of the new camera yet"))?;
            let old = &codes[..first_new];
            if old.iter().any(|c| !matches!(c, Some((ALICE, _)))) {
                return Err(format!(
                    "{who}: a corrupt picture before the switch: {old:?}"
                ));
            }
            if first_new > KEYFRAME_INTERVAL as usize {
                return Err(format!("{who}: {first_new} old pictures after the switch"));
            }
            flowing(&codes[first_new..], SWITCHED, FLOWING).map_err(|e| format!("{who}: {e}"))?;
        }
        Ok(())
    })
    .await;
    // The roster follows the new size; bob was told by an event.
    assert_eq!(
        roster_video(&room.bob, &room.call, &alice).await,
        vec![(VideoKind::Camera, Some(VideoSize::new(640, 360)))]
    );
    room.bob
        .expect("alice's camera changing size", |e| match e {
            ringwire_signaling::Event::RemoteVideoChanged {
                participant,
                stream,
                ..
            } if *participant == alice => {
                (stream.size == Some(VideoSize::new(640, 360))).then_some(())
            }
            _ => None,
        })
        .await;
    room.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_video_removes_the_stream_from_the_others() {
    let mut room = Room::start().await;
    room.alice.handle.stop_video(&room.call).await.unwrap();
    let alice = room.alice.id.clone();
    for client in [&mut room.bob, &mut room.carol] {
        client
            .expect("alice's camera removed", |e| match e {
                ringwire_signaling::Event::RemoteVideoRemoved {
                    participant, kind, ..
                } if *participant == alice && *kind == VideoKind::Camera => Some(()),
                _ => None,
            })
            .await;
        assert_eq!(roster_video(client, &room.call, &alice).await, vec![]);
    }
    // Their slot for alice closes; carol's and bob's cameras go on.
    let mark = room.marks();
    let (bob, carol) = (room.bob.id.clone(), room.carol.id.clone());
    until("alice's camera gone, the others flowing", || {
        shows(
            "bob",
            &room.b,
            &[(&carol, VideoKind::Camera, CAROL)],
            &mark[1],
        )?;
        shows(
            "carol",
            &room.c,
            &[(&bob, VideoKind::Camera, BOB)],
            &mark[2],
        )?;
        shows(
            "alice",
            &room.a,
            &[
                (&bob, VideoKind::Camera, BOB),
                (&carol, VideoKind::Camera, CAROL),
            ],
            &mark[0],
        )
    })
    .await;
    // Sending stopped at the source: alice's counters stand still.
    let sent = room.a.stats().frames_sent;
    let captured = room.a.stats().frames_captured;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        (room.a.stats().frames_sent, room.a.stats().frames_captured),
        (sent, captured)
    );
    room.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screen_share_replaces_the_camera_tiles_and_leaving_it_brings_them_back() {
    let room = Room::start().await;
    // alice stops her camera and shares her screen (one stream at a time).
    const SCREEN: u32 = 21;
    room.alice.handle.stop_video(&room.call).await.unwrap();
    room.alice
        .handle
        .start_video(
            &room.call,
            VideoKind::ScreenShare,
            pattern(640, 360, SCREEN),
        )
        .await
        .unwrap();
    let mark = room.marks();
    let alice = room.alice.id.clone();
    let (bob, carol) = (room.bob.id.clone(), room.carol.id.clone());
    // A native client's limit: one screen share, or up to six cameras.
    until("bob and carol see only alice's screen", || {
        shows(
            "bob",
            &room.b,
            &[(&alice, VideoKind::ScreenShare, SCREEN)],
            &mark[1],
        )?;
        shows(
            "carol",
            &room.c,
            &[(&alice, VideoKind::ScreenShare, SCREEN)],
            &mark[2],
        )?;
        // alice herself still sees the others' cameras.
        shows(
            "alice",
            &room.a,
            &[
                (&bob, VideoKind::Camera, BOB),
                (&carol, VideoKind::Camera, CAROL),
            ],
            &mark[0],
        )
    })
    .await;
    assert_eq!(
        roster_video(&room.bob, &room.call, &alice).await,
        vec![(VideoKind::ScreenShare, Some(VideoSize::new(640, 360)))]
    );
    // Sharing stops: the cameras come back.
    room.alice.handle.stop_video(&room.call).await.unwrap();
    let mark = room.marks();
    until("the cameras are back", || {
        shows(
            "bob",
            &room.b,
            &[(&carol, VideoKind::Camera, CAROL)],
            &mark[1],
        )?;
        shows(
            "carol",
            &room.c,
            &[(&bob, VideoKind::Camera, BOB)],
            &mark[2],
        )
    })
    .await;
    room.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_publishers_a_native_subscriber_receives_six_with_the_dominant_speaker() {
    let mut h = Harness::start().await;
    let group = GroupId::new("eight-cameras").unwrap();
    let names = ["p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8"];
    let mut publishers = Vec::new();
    let mut call = None;
    for (i, name) in names.into_iter().enumerate() {
        let client = h.client(Kind::Ws, name).await;
        let joined = client
            .handle
            .join(&group, JoinOptions::default(), false)
            .await
            .unwrap();
        call = Some(joined.clone());
        // The last publisher is the only one who speaks.
        let cam = if i == names.len() - 1 {
            // A talker without pauses, so the detector keeps them dominant.
            let voice = SpeechLikeConfig {
                pause: Duration::ZERO,
                ..SpeechLikeConfig::default()
            };
            Cam::start(&client, &joined, 0, SpeechLikeSource::new(voice).unwrap()).await
        } else {
            Cam::start(&client, &joined, 0, SilenceSource).await
        };
        let tag = u32::try_from(i + 1).unwrap();
        client
            .handle
            .start_video(&joined, VideoKind::Camera, pattern(320, 180, tag))
            .await
            .unwrap();
        publishers.push((client, cam, tag));
    }
    let call = call.unwrap();
    let mut viewer = h.client(Kind::Ws, "viewer").await;
    let joined = viewer
        .handle
        .join(&group, JoinOptions::default(), false)
        .await
        .unwrap();
    assert_eq!(joined, call);
    viewer.expect_state(&call, CallState::Connected).await;
    let v = Cam::start(&viewer, &call, 6, SilenceSource).await;
    let speaker = publishers[names.len() - 1].0.id.clone();
    until(
        "the viewer shows six cameras, the dominant speaker's among them",
        || {
            let open = v.screens.open();
            if open.len() != 6 {
                return Err(format!(
                    "{} streams open; stats {:?}",
                    open.len(),
                    v.stats()
                ));
            }
            if !open.iter().any(|s| s.stream.participant == speaker) {
                return Err(format!(
                    "the speaker is not shown: {:?}",
                    open.iter()
                        .map(|s| s.stream.participant.to_string())
                        .collect::<Vec<_>>()
                ));
            }
            let all = v.screens.all();
            for (index, screen) in all.iter().enumerate().filter(|(_, s)| !s.finished) {
                let tag = publishers
                    .iter()
                    .find(|(c, ..)| c.id == screen.stream.participant)
                    .map(|(.., tag)| *tag)
                    .ok_or("a stream from someone who is not a publisher")?;
                flowing(screen.codes_since(index, &[]), tag, FLOWING)
                    .map_err(|e| format!("{}: {e}", screen.stream.participant))?;
            }
            Ok(())
        },
    )
    .await;
    let dominant = viewer
        .handle
        .call(&call)
        .await
        .unwrap()
        .unwrap()
        .dominant_speakers()
        .to_vec();
    assert_eq!(dominant.first(), Some(&speaker), "{dominant:?}");
    h.server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_echo_service_shows_the_caller_its_own_camera() {
    const TAG: u32 = 41;
    let mut h = Harness::start().await;
    let mut alice = h.client(Kind::Ws, "alice").await;
    let call = alice
        .handle
        .start_call(&[Identifier::EchoService], JoinOptions::default())
        .await
        .unwrap();
    alice.expect_state(&call, CallState::Connected).await;
    let cam = Cam::start(&alice, &call, 1, SilenceSource).await;
    alice
        .handle
        .start_video(&call, VideoKind::Camera, pattern(320, 180, TAG))
        .await
        .unwrap();
    // Its own pattern comes back in its one slot, under its own name, flowing.
    let me = alice.id.clone();
    until("alice sees her camera looped back", || {
        shows("alice", &cam, &[(&me, VideoKind::Camera, TAG)], &[])
    })
    .await;
    let stats = cam.stats();
    assert_eq!(stats.decode_errors, 0, "{stats:?}");
    alice.handle.hang_up(&call, false).await.unwrap();
    h.server.shut_down().await;
}
