//! The seed's Screen sharing table (DESIGN.md), the rows that apply to native apps,
//! one test per row, through the public SDK only. Sharing the whole screen and one
//! application run on a real X server: each test starts its own Xvfb with a window
//! manager and a red xterm (the devices crate's `testing` kit), then runs the call in
//! a child process pointed at that display; the far end decodes the shared pictures
//! and finds the red window in them. "Share a browser tab" is a web row (see web/).

use std::sync::{Arc, Mutex};

use crate::harness::{Harness, Kind};
use crate::kit::*;
use ringwire_calling::{
    AcceptCallOptions, AudioOptions, Call, CallClient, CallClientOptions, CallEvent, RemoteVideo,
    StartCallOptions, VideoOptions,
};
use ringwire_devices::testing::{self, XServer};
use ringwire_devices::{DeviceId, DeviceKind};
use ringwire_media::audio_io::NullSink;
use ringwire_media::video::{FrameRate, VideoFrame, VideoIoError, VideoSink};
use ringwire_signaling::{VideoKind, VideoSize};

const TITLE: &str = "RingwireShare";

/// What the far end decoded: each picture's size and the colour at the centre of
/// the area where the xterm is (in the shared picture's coordinates).
#[derive(Clone, Default)]
struct Pictures(Arc<Mutex<Vec<Picture>>>);

/// Width, height, and the average colour of the centre and of a corner.
type Picture = (u32, u32, [u8; 3], [u8; 3]);

impl VideoSink for Pictures {
    fn write_frame(&mut self, frame: &VideoFrame) -> Result<(), VideoIoError> {
        let (w, h) = (frame.width(), frame.height());
        // The middle of the picture, and a corner well away from the xterm.
        let centre = frame.average_rgb(w * 3 / 8, h * 3 / 8, w / 4, h / 4);
        let corner = frame.average_rgb(w - w / 8, h - h / 8, w / 8, h / 8);
        if let (Some(centre), Some(corner)) = (centre, corner) {
            self.0.lock().unwrap().push((w, h, centre, corner));
        }
        Ok(())
    }

    fn name(&self) -> &str {
        "shared pictures"
    }
}

impl Pictures {
    /// How many decoded pictures show a red centre (and, with `corner_not_red`, a
    /// corner that is not red).
    fn red(&self, corner_not_red: bool) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, _, centre, corner)| {
                is_red(*centre) && (!corner_not_red || !is_red(*corner))
            })
            .count()
    }

    fn last_size(&self) -> Option<(u32, u32)> {
        self.0.lock().unwrap().last().map(|(w, h, _, _)| (*w, *h))
    }
}

/// Red through capture, H.264 and decoding (4:2:0 blurs and shifts it a little).
fn is_red(rgb: [u8; 3]) -> bool {
    rgb[0] > 170 && rgb[1] < 90 && rgb[2] < 90
}

/// Starts a display with a red xterm titled [`TITLE`] centred in it, and runs
/// `child` of this test binary on it.
fn on_display(xterm_geometry: &str, child: &str) {
    let mut display = XServer::start(640, 480).expect("Xvfb starts");
    display
        .open_xterm(TITLE, "red", xterm_geometry)
        .expect("xterm opens");
    testing::run_child_test(child, &display.env()).expect("child test passes");
}

/// alice calls bob (audio and a video engine on both sides; bob renders into
/// `pictures`), shares `source` from `id` and bob waits until the share shows in his
/// roster. Returns both calls.
async fn share(
    h: &Harness,
    id: &DeviceId,
    pictures: &Pictures,
) -> (Call, Call, crate::kit::User, crate::kit::User) {
    let alice = user(h, "alice", 1).await;
    let bob = user(h, "bob", 2).await;
    let unused = Seen::default();
    let a = alice
        .agent
        .start_call(
            std::slice::from_ref(&bob.id),
            StartCallOptions::new().with_audio(with_video(ALICE_HZ, &unused)),
        )
        .await
        .unwrap();
    let seen = pictures.clone();
    let video = VideoOptions::new()
        .with_slots(2)
        .with_renderer(move |_: &RemoteVideo| Box::new(seen.clone()) as Box<dyn VideoSink>);
    let mut audio = AudioOptions::new(Voice::new(BOB_HZ), NullSink::default()).with_video(video);
    audio.media = no_dtx();
    let b = incoming(&bob)
        .await
        .accept(AcceptCallOptions::new().with_audio(audio))
        .await
        .unwrap();
    within("alice's media", a.wait_media_connected())
        .await
        .unwrap();
    let capture = alice
        .client
        .device_manager()
        .unwrap()
        .open_screen(id, FrameRate::per_second(10).unwrap())
        .unwrap();
    a.start_screen_sharing(capture).await.unwrap();
    until_participant(&b, &alice.id, "sharing", |p| {
        p.video_streams()
            .iter()
            .any(|s| s.kind == VideoKind::ScreenShare)
    })
    .await;
    (a, b, alice, bob)
}

/// Screen sharing: share the whole screen from inside the app. alice picks the
/// display from the device manager's screens and shares it; bob's roster shows a
/// 640x480 screen share, and the pictures he decodes show the red xterm in the middle
/// and the empty desktop in the corner.
#[test]
fn share_the_whole_screen() {
    // About 360x260 pixels from +140+110: the middle of the screen is inside it.
    on_display(
        "60x20+140+110",
        "screen_sharing::share_the_whole_screen_child",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs inside share_the_whole_screen"]
async fn share_the_whole_screen_child() {
    if !testing::is_child() {
        return;
    }
    let h = Harness::start().await;
    // Any client lists the devices; no agent is needed for that.
    let client = CallClient::new(CallClientOptions::new(h.endpoint(Kind::Ws)));
    let screens = client
        .device_manager()
        .unwrap()
        .list(DeviceKind::Screen)
        .unwrap();
    let screen = screens
        .iter()
        .find(|s| !s.synthetic)
        .unwrap_or_else(|| panic!("a real screen in {screens:?}"));
    let pictures = Pictures::default();
    let (_a, b, alice, _bob) = share(&h, &screen.id, &pictures).await;
    until_participant(&b, &alice.id, "sharing 640x480", |p| {
        p.video_streams()
            .iter()
            .any(|s| s.kind == VideoKind::ScreenShare && s.size == Some(VideoSize::new(640, 480)))
    })
    .await;
    until_media(
        || {
            format!(
                "bob decoded no red-centred 640x480 pictures: last {:?}",
                pictures.last_size()
            )
        },
        || pictures.red(true) >= 3,
    )
    .await;
    assert_eq!(pictures.last_size(), Some((640, 480)));
    h.server.shut_down().await;
}

/// Screen sharing: share a specific application from the list of running ones.
/// alice finds the xterm by title among the device manager's windows and shares it:
/// bob decodes pictures of that window only, red all over.
#[test]
fn share_a_specific_application() {
    on_display(
        "40x10+60+80",
        "screen_sharing::share_a_specific_application_child",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs inside share_a_specific_application"]
async fn share_a_specific_application_child() {
    if !testing::is_child() {
        return;
    }
    let h = Harness::start().await;
    let client = CallClient::new(CallClientOptions::new(h.endpoint(Kind::Ws)));
    let windows = client
        .device_manager()
        .unwrap()
        .list(DeviceKind::Window)
        .unwrap();
    let window = windows
        .iter()
        .find(|w| w.name == TITLE)
        .unwrap_or_else(|| panic!("{TITLE} in {windows:?}"));
    assert_eq!(window.application.as_deref(), Some("XTerm"));
    let pictures = Pictures::default();
    let (_a, _b, _alice, _bob) = share(&h, &window.id, &pictures).await;
    // The window alone: red in the middle and in the corner too.
    until_media(
        || {
            format!(
                "bob decoded no all-red window pictures: last {:?}",
                pictures.last_size()
            )
        },
        || pictures.red(false) >= 3 && pictures.red(true) == 0,
    )
    .await;
    let (w, h_) = pictures.last_size().unwrap();
    assert!(w < 640 && h_ < 480, "a window, not the screen: {w}x{h_}");
    h.server.shut_down().await;
}

/// Screen sharing: view a remote participant's screen share. alice's camera is on;
/// she stops it and shares her screen instead (1 video out at a time): bob's call
/// reports the share (call event and alice's own events), shows it with its size,
/// and decodes it; when she stops, it is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_a_remote_screen_share() {
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
    until_present(&[(&b, &alice.id)]).await;
    let alice_there = b.remote_participant(&alice.id).unwrap();
    let mut about_alice = alice_there.events();
    let mut bob_events = b.events();

    a.start_video(pattern(320, 180, 1)).await.unwrap();
    until_decoded("bob, alice's camera", &bob_seen, 1).await;
    a.stop_video().await.unwrap();
    a.start_screen_sharing(pattern(640, 360, 2)).await.unwrap();
    let share = ringwire_signaling::VideoStream {
        kind: VideoKind::ScreenShare,
        size: Some(VideoSize::new(640, 360)),
    };
    until_event(&mut about_alice, &format!("VideoStreamAdded({share:?})")).await;
    within("the share on bob's call events", async {
        loop {
            if let Some(CallEvent::RemoteVideoAdded {
                participant,
                stream,
            }) = bob_events.recv().await
                && participant == alice.id
                && stream.kind == VideoKind::ScreenShare
            {
                return;
            }
        }
    })
    .await;
    until_participant(&b, &alice.id, "sharing 640x360", |p| {
        p.video_streams() == [share]
    })
    .await;
    until_decoded("bob, alice's screen", &bob_seen, 2).await;

    a.stop_screen_sharing().await.unwrap();
    until_event(&mut about_alice, "VideoStreamRemoved { kind: ScreenShare }").await;
    assert!(alice_there.video_streams().is_empty());
    h.server.shut_down().await;
}
