//! Screens and windows on a real X server: each test starts its own Xvfb with a
//! window manager and an xterm of known colour and title, then checks listing and
//! capture in a child process pointed at that display.

#![allow(clippy::unwrap_used)] // Helpers outside #[test] fns unwrap too.

use std::time::Duration;

use ringwire_devices::testing::{self, XServer};
use ringwire_devices::{DeviceKind, DeviceManager, DeviceManagerConfig, VideoCapture};
use ringwire_media::video::{FrameRate, VideoFrame, VideoRead};

const TITLE: &str = "RingwireProbe";

#[test]
fn window_with_known_title_and_content_is_listed_and_captured() {
    let mut display = XServer::start(640, 480).expect("Xvfb starts");
    // 40x10 characters at +60+80: a red rectangle of about 240x130 pixels.
    display
        .open_xterm(TITLE, "red", "40x10+60+80")
        .expect("xterm opens");
    testing::run_child_test(
        "window_with_known_title_and_content_is_listed_and_captured_child",
        &display.env(),
    )
    .expect("child test passes");
}

/// The next frame of `capture`, waiting a bounded number of frame times.
fn next_frame(capture: &mut VideoCapture) -> VideoFrame {
    let mut frame = VideoFrame::black(2, 2).unwrap();
    let read = capture
        .wait_frame(&mut frame, Duration::from_secs(10))
        .expect("capture works");
    assert_eq!(read, VideoRead::Frame, "{:?}", capture.stats());
    frame
}

fn is_red(rgb: [u8; 3]) -> bool {
    rgb[0] > 200 && rgb[1] < 60 && rgb[2] < 60
}

#[test]
#[ignore = "runs inside window_with_known_title_and_content_is_listed_and_captured"]
fn window_with_known_title_and_content_is_listed_and_captured_child() {
    if !testing::is_child() {
        return;
    }
    let devices = DeviceManager::new(DeviceManagerConfig::default()).unwrap();
    let rate = FrameRate::per_second(10).unwrap();

    let windows = devices.list(DeviceKind::Window).unwrap();
    let window = windows
        .iter()
        .find(|w| w.name == TITLE)
        .unwrap_or_else(|| panic!("{TITLE} not in {windows:?}"));
    assert_eq!(window.application.as_deref(), Some("XTerm"));
    let mut capture = devices.open_screen(&window.id, rate).unwrap();
    let frame = next_frame(&mut capture);
    let (w, h) = (frame.width(), frame.height());
    assert!(w > 100 && h > 50, "{w}x{h}");
    let centre = frame.average_rgb(w / 4, h / 4, w / 2, h / 2).unwrap();
    assert!(is_red(centre), "window centre is {centre:?}");
    drop(capture);

    let screens = devices.list(DeviceKind::Screen).unwrap();
    assert_eq!(screens.len(), 1, "{screens:?}");
    assert!(screens[0].is_default);
    let mut capture = devices.open_screen(&screens[0].id, rate).unwrap();
    let frame = next_frame(&mut capture);
    assert_eq!((frame.width(), frame.height()), (640, 480));
    // Inside the xterm (which starts near +60+80), and the empty root window beside it.
    let inside = frame.average_rgb(120, 140, 100, 40).unwrap();
    assert!(is_red(inside), "xterm area is {inside:?}");
    let outside = frame.average_rgb(500, 400, 100, 60).unwrap();
    assert!(!is_red(outside), "root window is {outside:?}");
    // Frames keep coming at the chosen rate.
    let again = next_frame(&mut capture);
    assert!(again.timestamp() > frame.timestamp());
    assert!(capture.stats().captured >= 2);
}
