//! The devices behind [`CallClient::device_manager`](super::CallClient::device_manager):
//! which microphone, speaker and camera calls use, and the streams opened for calls.

use std::sync::{Arc, Mutex, PoisonError, TryLockError, Weak};

use ringwire_devices::{
    DeviceError, DeviceKind, DeviceManagerConfig, Microphone, Selection, Speaker,
};
use ringwire_media::audio_io::{AudioIoError, AudioSink, AudioSource, SourceState};
use ringwire_media::video::VideoFormat;

use super::options::LocalVideoStream;
use crate::media::AudioOptions;
use crate::video::VideoOptions;

/// The device side of a [`CallClient`](super::CallClient): the devices layer's
/// manager, the selected devices, and the streams opened for calls (moved when the
/// selection changes).
#[derive(Debug)]
pub(crate) struct Devices {
    manager: ringwire_devices::DeviceManager,
    state: Mutex<State>,
}

/// The selection and the streams opened for calls.
#[derive(Debug)]
struct State {
    microphone: Selection,
    speaker: Selection,
    camera: Selection,
    microphones: Vec<Weak<Mutex<Microphone>>>,
    speakers: Vec<Weak<Mutex<Speaker>>>,
}

/// A microphone opened for a call, shared with the [`Devices`] that move it.
struct CallMicrophone {
    device: Arc<Mutex<Microphone>>,
    name: String,
}

/// A speaker opened for a call, shared with the [`Devices`] that move it.
struct CallSpeaker {
    device: Arc<Mutex<Speaker>>,
    name: String,
}

impl Devices {
    /// Starts a manager (its device thread) as `config` says, with the system
    /// defaults selected.
    pub(crate) fn new(config: DeviceManagerConfig) -> Result<Devices, DeviceError> {
        let manager = ringwire_devices::DeviceManager::new(config)?;
        Ok(Devices {
            manager,
            state: Mutex::new(State {
                microphone: Selection::Default,
                speaker: Selection::Default,
                camera: Selection::Default,
                microphones: Vec::new(),
                speakers: Vec::new(),
            }),
        })
    }

    pub(crate) fn manager(&self) -> &ringwire_devices::DeviceManager {
        &self.manager
    }

    pub(crate) fn selected(&self, kind: DeviceKind) -> Selection {
        let state = self.state();
        match kind {
            DeviceKind::Microphone => state.microphone.clone(),
            DeviceKind::Speaker => state.speaker.clone(),
            _ => state.camera.clone(),
        }
    }

    /// Selects the microphone and moves every running capture there; stops at the
    /// first that cannot move (the selection then stays as it was).
    pub(crate) fn select_microphone(&self, selection: Selection) -> Result<(), DeviceError> {
        let mut state = self.state();
        state.microphones.retain(|m| m.strong_count() > 0);
        for microphone in state.microphones.iter().filter_map(Weak::upgrade) {
            microphone
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .select(&selection)?;
        }
        state.microphone = selection;
        Ok(())
    }

    /// As [`Devices::select_microphone`], for speakers.
    pub(crate) fn select_speaker(&self, selection: Selection) -> Result<(), DeviceError> {
        let mut state = self.state();
        state.speakers.retain(|s| s.strong_count() > 0);
        for speaker in state.speakers.iter().filter_map(Weak::upgrade) {
            speaker
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .select(&selection)?;
        }
        state.speaker = selection;
        Ok(())
    }

    pub(crate) fn select_camera(&self, selection: Selection) {
        self.state().camera = selection;
    }

    /// A call's audio from the selected microphone and speaker, with the video engine
    /// on; both streams follow later selections.
    pub(crate) fn audio_options(&self) -> Result<AudioOptions, DeviceError> {
        let mut state = self.state();
        let microphone = self.manager.open_microphone(&state.microphone)?;
        let speaker = self.manager.open_speaker(&state.speaker)?;
        let source = CallMicrophone {
            name: format!("call {}", microphone.device()),
            device: Arc::new(Mutex::new(microphone)),
        };
        let sink = CallSpeaker {
            name: format!("call {}", speaker.device()),
            device: Arc::new(Mutex::new(speaker)),
        };
        state.microphones.retain(|m| m.strong_count() > 0);
        state.speakers.retain(|s| s.strong_count() > 0);
        state.microphones.push(Arc::downgrade(&source.device));
        state.speakers.push(Arc::downgrade(&sink.device));
        Ok(AudioOptions::new(source, sink).with_video(VideoOptions::new()))
    }

    /// A camera video from the selected camera, near `format`.
    pub(crate) fn camera_stream(
        &self,
        format: VideoFormat,
    ) -> Result<LocalVideoStream, DeviceError> {
        let camera = self.selected(DeviceKind::Camera);
        let capture = self.manager.open_camera(&camera, format)?;
        Ok(LocalVideoStream::camera(capture))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl AudioSource for CallMicrophone {
    fn read_frame(&mut self, frame: &mut [i16]) -> Result<SourceState, AudioIoError> {
        // The media task must not wait for a device switch (opening a device can
        // take a while): while one runs, this frame is silence.
        match self.device.try_lock() {
            Ok(mut microphone) => microphone.read_frame(frame),
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner().read_frame(frame),
            Err(TryLockError::WouldBlock) => {
                frame.fill(0);
                Ok(SourceState::Active)
            }
        }
    }

    fn name(&self) -> &str {
        &self.name
    }
}

impl AudioSink for CallSpeaker {
    fn write_frame(&mut self, frame: &[i16]) -> Result<(), AudioIoError> {
        // As for the microphone: a frame that comes during a switch is dropped.
        match self.device.try_lock() {
            Ok(mut speaker) => speaker.write_frame(frame),
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner().write_frame(frame),
            Err(TryLockError::WouldBlock) => Ok(()),
        }
    }

    fn finish(&mut self) -> Result<(), AudioIoError> {
        self.device
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .finish()
    }

    fn name(&self) -> &str {
        &self.name
    }
}
