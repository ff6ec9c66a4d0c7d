//! Screens and windows, captured through xcap (feature `screen`).
//!
//! Why xcap: it is the maintained cross-platform capture crate (X11 and Wayland on
//! Linux, ScreenCaptureKit/CoreGraphics on macOS, DXGI/WGC on Windows) and lists
//! windows with their titles and application names, which screen sharing needs. On
//! X11 it issues `GetImage` per grab (5-10 ms for 1280x720), fine at the 5-15 fps
//! screen sharing runs at. The price is its Linux build dependencies (libwayland,
//! libpipewire, libgbm, libegl headers) even on X11-only machines.
//!
//! On X11 a window is listed only under an EWMH window manager (xcap reads
//! `_NET_CLIENT_LIST_STACKING`), and its title comes from `_NET_WM_NAME`: classic
//! X clients that set only a `STRING` `WM_NAME` are listed with an empty title (their
//! application name, from `WM_CLASS`, is still there).

use ringwire_media::video::FrameRate;

use crate::capture::VideoCapture;
use crate::error::DeviceError;
use crate::info::{DeviceId, DeviceInfo, DeviceKind};

#[cfg(feature = "screen")]
mod imp {
    use ringwire_media::video::{RgbLayout, VideoFormat};

    use super::*;
    use crate::info::DeviceFormat;

    fn display_error(error: xcap::XCapError) -> DeviceError {
        DeviceError::Unavailable {
            what: "display".to_owned(),
            source: Box::new(error),
        }
    }

    fn platform(id: &DeviceId, error: xcap::XCapError) -> DeviceError {
        DeviceError::Platform {
            id: id.clone(),
            source: Box::new(error),
        }
    }

    pub(crate) fn screens() -> Result<Vec<DeviceInfo>, DeviceError> {
        let monitors = xcap::Monitor::all().map_err(display_error)?;
        let mut infos = Vec::new();
        for (index, monitor) in monitors.iter().enumerate() {
            let Ok(id) = monitor.id() else { continue };
            let (width, height) = (monitor.width().unwrap_or(0), monitor.height().unwrap_or(0));
            let primary = monitor.is_primary().unwrap_or(false);
            infos.push(DeviceInfo {
                id: DeviceId::new(format!("screen:{id}")),
                kind: DeviceKind::Screen,
                name: monitor
                    .friendly_name()
                    .or_else(|_| monitor.name())
                    .unwrap_or_else(|_| format!("screen {index}")),
                application: None,
                // X11 without RandR's primary output marks none: take the first.
                is_default: primary
                    || (index == 0 && !monitors.iter().any(|m| m.is_primary().unwrap_or(false))),
                synthetic: false,
                formats: vec![DeviceFormat::Video {
                    width,
                    height,
                    frame_rate: f64::from(monitor.frequency().unwrap_or(0.0)),
                    pixel_format: "RGBA".to_owned(),
                }],
            });
        }
        Ok(infos)
    }

    pub(crate) fn windows() -> Result<Vec<DeviceInfo>, DeviceError> {
        let windows = xcap::Window::all().map_err(display_error)?;
        let mut infos = Vec::new();
        for window in &windows {
            let Ok(id) = window.id() else { continue };
            if window.is_minimized().unwrap_or(false) {
                continue;
            }
            infos.push(DeviceInfo {
                id: DeviceId::new(format!("window:{id}")),
                kind: DeviceKind::Window,
                name: window.title().unwrap_or_default(),
                application: window.app_name().ok(),
                is_default: false,
                synthetic: false,
                formats: vec![DeviceFormat::Video {
                    width: window.width().unwrap_or(0),
                    height: window.height().unwrap_or(0),
                    frame_rate: 0.0,
                    pixel_format: "RGBA".to_owned(),
                }],
            });
        }
        Ok(infos)
    }

    pub(crate) fn open(id: &DeviceId, frame_rate: FrameRate) -> Result<VideoCapture, DeviceError> {
        let not_found = || DeviceError::NotFound {
            kind: if id.scheme() == "window" {
                DeviceKind::Window
            } else {
                DeviceKind::Screen
            },
            id: id.clone(),
        };
        let number: u32 = id.rest().parse().map_err(|_| not_found())?;
        match id.scheme() {
            "screen" => {
                let monitor = xcap::Monitor::all()
                    .map_err(display_error)?
                    .into_iter()
                    .find(|m| m.id().ok() == Some(number))
                    .ok_or_else(not_found)?;
                let format = VideoFormat::new(
                    monitor.width().map_err(|e| platform(id, e))?,
                    monitor.height().map_err(|e| platform(id, e))?,
                    frame_rate,
                )?;
                let grab_id = id.clone();
                VideoCapture::spawn(format!("screen {id}"), format, move || {
                    Ok(move |frame: &mut _| {
                        let image = monitor.capture_image().map_err(|e| platform(&grab_id, e))?;
                        fill(frame, &image)
                    })
                })
            }
            "window" => {
                let window = xcap::Window::all()
                    .map_err(display_error)?
                    .into_iter()
                    .find(|w| w.id().ok() == Some(number))
                    .ok_or_else(not_found)?;
                let format = VideoFormat::new(
                    window.width().map_err(|e| platform(id, e))?.max(1),
                    window.height().map_err(|e| platform(id, e))?.max(1),
                    frame_rate,
                )?;
                let grab_id = id.clone();
                VideoCapture::spawn(format!("window {id}"), format, move || {
                    Ok(move |frame: &mut _| {
                        let image = window.capture_image().map_err(|e| platform(&grab_id, e))?;
                        fill(frame, &image)
                    })
                })
            }
            _ => Err(not_found()),
        }
    }

    fn fill(
        frame: &mut ringwire_media::video::VideoFrame,
        image: &xcap::image::RgbaImage,
    ) -> Result<(), DeviceError> {
        let (width, height) = (image.width(), image.height());
        frame.fill_from_packed_rgb(
            width,
            height,
            width as usize * 4,
            RgbLayout::Rgba,
            image.as_raw(),
        )?;
        Ok(())
    }
}

#[cfg(not(feature = "screen"))]
mod imp {
    use super::*;

    fn disabled(kind: DeviceKind) -> DeviceError {
        DeviceError::Disabled {
            kind,
            feature: "screen",
        }
    }

    pub(crate) fn screens() -> Result<Vec<DeviceInfo>, DeviceError> {
        Err(disabled(DeviceKind::Screen))
    }

    pub(crate) fn windows() -> Result<Vec<DeviceInfo>, DeviceError> {
        Err(disabled(DeviceKind::Window))
    }

    pub(crate) fn open(id: &DeviceId, _: FrameRate) -> Result<VideoCapture, DeviceError> {
        Err(disabled(if id.scheme() == "window" {
            DeviceKind::Window
        } else {
            DeviceKind::Screen
        }))
    }
}

pub(crate) use imp::{open, screens, windows};
