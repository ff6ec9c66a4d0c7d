//! Cameras through nokhwa (feature `camera`; V4L2 on Linux, AVFoundation on macOS,
//! Media Foundation on Windows).
//!
//! nokhwa is built without its `decoding` feature, which would compile libjpeg-turbo
//! (mozjpeg-sys) from source: the camera is asked for an uncompressed format (YUYV,
//! NV12, grey, RGB) near the requested size and rate, converted here to I420. A
//! camera that offers only MJPEG is refused with [`DeviceError::Unsupported`].
//!
//! Verified on this project's CI only as far as a machine without cameras goes:
//! listing returns an empty list, opening the default returns [`DeviceError::NoDevice`].
//! Capturing real frames, formats and switching are not tested on real hardware.

use ringwire_media::video::VideoFormat;

use crate::capture::VideoCapture;
use crate::error::DeviceError;
use crate::info::{DeviceInfo, DeviceKind, Selection};

/// Whether cameras are compiled in (the device worker then watches the camera list).
pub(crate) const ENABLED: bool = cfg!(feature = "camera");

#[cfg(feature = "camera")]
mod imp {
    use nokhwa::utils::{
        ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
        Resolution,
    };
    use ringwire_media::video::{RgbLayout, VideoFrame};

    use super::*;
    use crate::convert;
    use crate::info::DeviceId;

    /// The uncompressed formats asked for, preferred first.
    static FORMATS: [FrameFormat; 4] = [
        FrameFormat::NV12,
        FrameFormat::YUYV,
        FrameFormat::RAWRGB,
        FrameFormat::GRAY,
    ];

    fn id_of(index: &CameraIndex) -> DeviceId {
        DeviceId::new(format!("camera:{index}"))
    }

    pub(crate) fn list() -> Result<Vec<DeviceInfo>, DeviceError> {
        let cameras = nokhwa::query(ApiBackend::Auto).map_err(|e| DeviceError::Unavailable {
            what: "camera backend".to_owned(),
            source: Box::new(e),
        })?;
        Ok(cameras
            .iter()
            .enumerate()
            .map(|(n, info)| DeviceInfo {
                id: id_of(info.index()),
                kind: DeviceKind::Camera,
                name: info.human_name(),
                application: None,
                is_default: n == 0,
                synthetic: false,
                formats: Vec::new(),
            })
            .collect())
    }

    fn error(id: &DeviceId, error: nokhwa::NokhwaError) -> DeviceError {
        let text = error.to_string();
        // nokhwa reports errno text only; map the ones a user can act on.
        if text.contains("No such file") || text.contains("No such device") {
            DeviceError::NotFound {
                kind: DeviceKind::Camera,
                id: id.clone(),
            }
        } else if text.contains("busy") {
            DeviceError::Busy { id: id.clone() }
        } else if text.contains("Permission denied") {
            DeviceError::AccessDenied { id: id.clone() }
        } else {
            DeviceError::Platform {
                id: id.clone(),
                source: Box::new(error),
            }
        }
    }

    pub(crate) fn open(
        selection: &Selection,
        format: VideoFormat,
    ) -> Result<VideoCapture, DeviceError> {
        let index = match selection {
            Selection::Default => CameraIndex::Index(0),
            Selection::Device(id) => match id.rest().parse::<u32>() {
                Ok(n) if id.scheme() == "camera" => CameraIndex::Index(n),
                _ if id.scheme() == "camera" => CameraIndex::String(id.rest().to_owned()),
                _ => {
                    return Err(DeviceError::NotFound {
                        kind: DeviceKind::Camera,
                        id: id.clone(),
                    });
                }
            },
        };
        let id = id_of(&index);
        let fps = format.frame_rate.as_f64().round().max(1.0) as u32;
        let wanted = CameraFormat::new(
            Resolution::new(format.width, format.height),
            FrameFormat::YUYV,
            fps,
        );
        let name = format!("camera {id}");
        let no_camera_at_all = *selection == Selection::Default;
        let capture = VideoCapture::spawn(name, format, move || {
            let requested =
                RequestedFormat::with_formats(RequestedFormatType::Closest(wanted), &FORMATS);
            let mut camera = nokhwa::Camera::new(index, requested).map_err(|e| error(&id, e))?;
            camera.open_stream().map_err(|e| error(&id, e))?;
            Ok(move |frame: &mut VideoFrame| {
                let buffer = camera.frame().map_err(|e| error(&id, e))?;
                let (w, h) = (buffer.resolution().width(), buffer.resolution().height());
                let bytes = buffer.buffer();
                match buffer.source_frame_format() {
                    FrameFormat::YUYV => convert::yuyv_to_i420(frame, w, h, bytes)?,
                    FrameFormat::NV12 => convert::nv12_to_i420(frame, w, h, bytes)?,
                    FrameFormat::GRAY => convert::gray_to_i420(frame, w, h, bytes)?,
                    FrameFormat::RAWRGB => {
                        frame.fill_from_packed_rgb(w, h, w as usize * 3, RgbLayout::Rgb, bytes)?;
                    }
                    other => {
                        return Err(DeviceError::Unsupported {
                            id: id.clone(),
                            reason: format!("{other} frames are not decoded"),
                        });
                    }
                }
                Ok(())
            })
        });
        match capture {
            Err(DeviceError::NotFound { .. }) if no_camera_at_all => Err(DeviceError::NoDevice {
                kind: DeviceKind::Camera,
            }),
            other => other,
        }
    }
}

#[cfg(not(feature = "camera"))]
mod imp {
    use super::*;

    fn disabled() -> DeviceError {
        DeviceError::Disabled {
            kind: DeviceKind::Camera,
            feature: "camera",
        }
    }

    pub(crate) fn list() -> Result<Vec<DeviceInfo>, DeviceError> {
        Err(disabled())
    }

    pub(crate) fn open(_: &Selection, _: VideoFormat) -> Result<VideoCapture, DeviceError> {
        Err(disabled())
    }
}

pub(crate) use imp::{list, open};
