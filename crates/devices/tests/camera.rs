//! Cameras: this project's machines have none, so the real path is checked as far as
//! "no camera" goes (an empty list, no error; opening fails with a typed error), and
//! the synthetic camera and a Y4M file cover frames.

#![allow(clippy::unwrap_used)] // Helpers outside #[test] fns unwrap too.

use ringwire_devices::{
    DeviceError, DeviceId, DeviceKind, DeviceManager, DeviceManagerConfig, Selection,
};
use ringwire_media::video::{
    FrameRate, TestPatternSource, VideoFormat, VideoFrame, VideoRead, VideoSink, VideoSource,
    Y4mSink,
};

fn has_video_devices() -> bool {
    std::fs::read_dir("/dev").is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("video"))
    })
}

fn format() -> VideoFormat {
    VideoFormat::new(320, 180, FrameRate::per_second(30).unwrap()).unwrap()
}

#[test]
fn camera_listing_is_empty_without_error_and_opening_fails_typed() {
    let devices = DeviceManager::new(DeviceManagerConfig::default()).unwrap();
    let listed = devices.list(DeviceKind::Camera);
    if cfg!(feature = "camera") {
        let cameras = listed.expect("listing cameras is not an error");
        if !has_video_devices() {
            assert!(cameras.is_empty(), "{cameras:?}");
            assert!(matches!(
                devices.open_camera(&Selection::Default, format()),
                Err(DeviceError::NoDevice {
                    kind: DeviceKind::Camera
                })
            ));
        }
    } else {
        assert!(matches!(listed, Err(DeviceError::Disabled { .. })));
    }
}

#[test]
fn synthetic_and_file_cameras_deliver_frames() {
    let devices = DeviceManager::new(DeviceManagerConfig::default().with_synthetic(true)).unwrap();
    let cameras = devices.list(DeviceKind::Camera).unwrap();
    assert!(
        cameras
            .iter()
            .any(|c| c.id.as_str() == "synthetic:test-pattern" && c.synthetic)
    );
    let mut camera = devices
        .open_camera(
            &Selection::Device(DeviceId::new("synthetic:test-pattern")),
            format(),
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.y4m");
    let mut sink = Y4mSink::create(&path, format().frame_rate).unwrap();
    let mut frame = VideoFrame::black(2, 2).unwrap();
    for expected in 0..5 {
        assert_eq!(camera.read_frame(&mut frame).unwrap(), VideoRead::Frame);
        assert_eq!(TestPatternSource::frame_number(&frame), Some(expected));
        sink.write_frame(&frame).unwrap();
    }
    sink.finish().unwrap();
    // The file plays back as a (looping) camera.
    let id = DeviceId::new(format!("file:{}", path.display()));
    let mut file = devices
        .open_camera(&Selection::Device(id), format())
        .unwrap();
    for expected in [0, 1, 2, 3, 4, 0] {
        assert_eq!(file.read_frame(&mut frame).unwrap(), VideoRead::Frame);
        assert_eq!(TestPatternSource::frame_number(&frame), Some(expected));
    }
    assert!(matches!(
        devices.open_camera(
            &Selection::Device(DeviceId::new("synthetic:nope")),
            format()
        ),
        Err(DeviceError::NotFound { .. })
    ));
}
