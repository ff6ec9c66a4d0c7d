//! Devices without hardware, for headless machines, bots and tests: they are listed
//! only when [`DeviceManagerConfig::synthetic`](crate::DeviceManagerConfig::synthetic)
//! is set, and opened only by their explicit id, so they never stand in for a real
//! device by surprise.
//!
//! | id | kind | what |
//! |---|---|---|
//! | `synthetic:tone-<hz>` (listed: `tone-440`) | microphone | a sine at half scale |
//! | `synthetic:speech` | microphone | [`SpeechLikeSource`] talk spurts |
//! | `synthetic:silence` | microphone | digital silence |
//! | `file:<path>.wav` | microphone | a WAV file, looping |
//! | `synthetic:null` | speaker | discards audio |
//! | `file:<path>.wav` | speaker | records to a WAV file |
//! | `synthetic:test-pattern` | camera | [`TestPatternSource`] |
//! | `synthetic:test-screen` | screen | [`TestPatternSource`] at 1280x720 |
//! | `file:<path>.y4m` | camera | a Y4M file, looping |

use ringwire_media::audio_io::{
    AudioSink, AudioSource, NullSink, SilenceSource, SpeechLikeConfig, SpeechLikeSource,
    ToneSource, WavSink, WavSource,
};
use ringwire_media::video::{FrameRate, TestPatternSource, VideoFormat, VideoSource, Y4mSource};

use crate::error::DeviceError;
use crate::info::{DeviceFormat, DeviceId, DeviceInfo, DeviceKind, Selection};

/// Whether `selection` names a synthetic or file device.
pub(crate) fn is_synthetic(selection: &Selection) -> bool {
    matches!(selection, Selection::Device(id) if matches!(id.scheme(), "synthetic" | "file"))
}

fn not_found(kind: DeviceKind, id: &DeviceId) -> DeviceError {
    DeviceError::NotFound {
        kind,
        id: id.clone(),
    }
}

/// The synthetic or file source `selection` names, `None` for a real device.
pub(crate) fn open_source(
    selection: &Selection,
) -> Result<Option<Box<dyn AudioSource>>, DeviceError> {
    let Selection::Device(id) = selection else {
        return Ok(None);
    };
    let source: Box<dyn AudioSource> = match (id.scheme(), id.rest()) {
        ("synthetic", "speech") => Box::new(SpeechLikeSource::new(SpeechLikeConfig::default())?),
        ("synthetic", "silence") => Box::new(SilenceSource),
        ("synthetic", rest) => {
            let freq = rest
                .strip_prefix("tone-")
                .and_then(|hz| hz.parse::<f64>().ok())
                .ok_or_else(|| not_found(DeviceKind::Microphone, id))?;
            Box::new(ToneSource::new(freq, 0.5)?)
        }
        ("file", path) => Box::new(WavSource::open(path)?.looping(true)),
        _ => return Ok(None),
    };
    Ok(Some(source))
}

/// The synthetic or file sink `selection` names, `None` for a real device.
pub(crate) fn open_sink(selection: &Selection) -> Result<Option<Box<dyn AudioSink>>, DeviceError> {
    let Selection::Device(id) = selection else {
        return Ok(None);
    };
    let sink: Box<dyn AudioSink> = match (id.scheme(), id.rest()) {
        ("synthetic", "null") => Box::new(NullSink::default()),
        ("synthetic", _) => return Err(not_found(DeviceKind::Speaker, id)),
        ("file", path) => Box::new(WavSink::create(path)?),
        _ => return Ok(None),
    };
    Ok(Some(sink))
}

/// The synthetic or file video source `selection` names, `None` for a real device.
pub(crate) fn open_video(
    selection: &Selection,
    format: VideoFormat,
) -> Result<Option<Box<dyn VideoSource>>, DeviceError> {
    let Selection::Device(id) = selection else {
        return Ok(None);
    };
    let source: Box<dyn VideoSource> = match (id.scheme(), id.rest()) {
        ("synthetic", "test-pattern") => Box::new(TestPatternSource::new(format)?),
        ("synthetic", "test-screen") => Box::new(TestPatternSource::new(VideoFormat::new(
            1280,
            720,
            format.frame_rate,
        )?)?),
        ("synthetic", _) => return Err(not_found(DeviceKind::Camera, id)),
        ("file", path) => Box::new(Y4mSource::open(path)?.looping(true)),
        _ => return Ok(None),
    };
    Ok(Some(source))
}

/// The synthetic devices of `kind`, as listed when asked for.
pub(crate) fn list(kind: DeviceKind) -> Vec<DeviceInfo> {
    let audio = |channels| DeviceFormat::Audio {
        channels,
        min_rate: 48_000,
        max_rate: 48_000,
        sample_format: "i16".to_owned(),
    };
    let video = |width, height| DeviceFormat::Video {
        width,
        height,
        frame_rate: FrameRate::per_second(30).map_or(30.0, FrameRate::as_f64),
        pixel_format: "I420".to_owned(),
    };
    let entries: &[(&str, &str)] = match kind {
        DeviceKind::Microphone => &[
            ("synthetic:tone-440", "Synthetic 440 Hz tone"),
            ("synthetic:speech", "Synthetic speech-like talker"),
            ("synthetic:silence", "Synthetic silence"),
        ],
        DeviceKind::Speaker => &[("synthetic:null", "Synthetic null speaker")],
        DeviceKind::Camera => &[("synthetic:test-pattern", "Synthetic test pattern")],
        DeviceKind::Screen => &[("synthetic:test-screen", "Synthetic test screen")],
        DeviceKind::Window => &[],
    };
    entries
        .iter()
        .map(|(id, name)| DeviceInfo {
            id: DeviceId::new(*id),
            kind,
            name: (*name).to_owned(),
            application: None,
            is_default: false,
            synthetic: true,
            formats: vec![match kind {
                DeviceKind::Microphone | DeviceKind::Speaker => audio(1),
                DeviceKind::Screen => video(1280, 720),
                _ => video(640, 360),
            }],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use ringwire_media::audio_io::SourceState;
    use ringwire_media::video::{VideoFrame, VideoRead};

    use super::*;

    #[test]
    fn synthetic_ids_open_and_unknown_ones_do_not() {
        let tone = Selection::Device("synthetic:tone-1000".into());
        assert!(is_synthetic(&tone));
        let mut source = open_source(&tone).unwrap().unwrap();
        let mut frame = [0i16; 960];
        assert_eq!(source.read_frame(&mut frame).unwrap(), SourceState::Active);
        assert!(ringwire_media::analysis::tone_snr(&frame, 1000.0, 48_000) > 30.0);
        assert!(open_source(&Selection::Default).unwrap().is_none());
        assert!(
            open_source(&Selection::Device("pulseaudio:x".into()))
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            open_source(&Selection::Device("synthetic:nope".into())),
            Err(DeviceError::NotFound { .. })
        ));
        assert!(matches!(
            open_source(&Selection::Device("file:/nonexistent.wav".into())),
            Err(DeviceError::Audio(_))
        ));
        assert!(
            open_sink(&Selection::Device("synthetic:null".into()))
                .unwrap()
                .is_some()
        );

        let format = VideoFormat::new(320, 180, FrameRate::per_second(30).unwrap()).unwrap();
        let mut camera = open_video(&Selection::Device("synthetic:test-pattern".into()), format)
            .unwrap()
            .unwrap();
        let mut picture = VideoFrame::black(2, 2).unwrap();
        assert_eq!(camera.read_frame(&mut picture).unwrap(), VideoRead::Frame);
        assert_eq!(TestPatternSource::frame_number(&picture), Some(0));
        for kind in [
            DeviceKind::Microphone,
            DeviceKind::Speaker,
            DeviceKind::Camera,
        ] {
            assert!(list(kind).iter().all(|d| d.synthetic && !d.is_default));
        }
    }
}
