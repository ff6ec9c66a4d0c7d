//! [`VideoCapture`]: a camera or screen as a [`VideoSource`]. Devices that take time to
//! grab a picture (a screen grab is 5-10 ms, a camera blocks until its next frame) run
//! on their own thread at the chosen rate and leave their newest frame in a one-slot
//! mailbox; reading swaps buffers with it, so steady capture allocates nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ringwire_media::video::{VideoFormat, VideoFrame, VideoIoError, VideoRead, VideoSource};

use crate::error::DeviceError;

/// After this many grabs in a row fail, the capture stops and reads report the error
/// (a closed window, an unplugged camera).
const MAX_FAILURES_IN_A_ROW: u32 = 10;

/// Counters of a [`VideoCapture`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CaptureStats {
    /// Pictures grabbed.
    pub captured: u64,
    /// Pictures replaced by a newer one before anybody read them (a slow reader).
    pub dropped: u64,
    /// Grabs that failed.
    pub failed: u64,
}

/// A camera, screen or window capture (or a synthetic one) as a [`VideoSource`].
///
/// [`VideoSource::read_frame`] returns [`VideoRead::Frame`] with the newest picture,
/// or [`VideoRead::Pending`] when none arrived since the last read. Dropping it stops
/// the capture thread.
pub struct VideoCapture {
    inner: Inner,
    format: VideoFormat,
    name: String,
}

enum Inner {
    Thread {
        shared: Arc<Shared>,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
    },
    Synthetic(Box<dyn VideoSource>),
}

#[derive(Default)]
struct Shared {
    slot: Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    frame: Option<VideoFrame>,
    fresh: bool,
    /// Set when capture has stopped for good.
    error: Option<String>,
    stats: CaptureStats,
}

impl std::fmt::Debug for VideoCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoCapture")
            .field("name", &self.name)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl VideoCapture {
    pub(crate) fn synthetic(source: Box<dyn VideoSource>) -> Self {
        Self {
            format: source.format(),
            name: source.name().to_owned(),
            inner: Inner::Synthetic(source),
        }
    }

    /// Runs `setup` on a new thread, then the grab it returns every
    /// `format.frame_rate` tick. The device is opened on the capture thread because
    /// some platform handles (cameras) must stay on the thread that opened them.
    pub(crate) fn spawn<S, G>(
        name: String,
        format: VideoFormat,
        setup: S,
    ) -> Result<Self, DeviceError>
    where
        S: FnOnce() -> Result<G, DeviceError> + Send + 'static,
        G: FnMut(&mut VideoFrame) -> Result<(), DeviceError>,
    {
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let interval = format.frame_rate.frame_interval();
        let (opened_tx, opened) = std::sync::mpsc::sync_channel(1);
        let thread = {
            let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("ringwire-capture".to_owned())
                .spawn(move || {
                    let mut grab = match setup() {
                        Ok(grab) => {
                            let _ = opened_tx.send(Ok(()));
                            grab
                        }
                        Err(error) => {
                            let _ = opened_tx.send(Err(error));
                            return;
                        }
                    };
                    run_capture(&shared, &stop, interval, &mut grab);
                })
                .map_err(|_| DeviceError::InvalidConfig("cannot start a capture thread"))?
        };
        match opened.recv() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                let _ = thread.join();
                return Err(error);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(DeviceError::WorkerStopped);
            }
        }
        Ok(Self {
            inner: Inner::Thread {
                shared,
                stop,
                thread: Some(thread),
            },
            format,
            name,
        })
    }

    /// The capture's counters (all zero for synthetic sources).
    #[must_use]
    pub fn stats(&self) -> CaptureStats {
        match &self.inner {
            Inner::Thread { shared, .. } => lock(shared).stats,
            Inner::Synthetic(_) => CaptureStats::default(),
        }
    }

    /// Waits up to `timeout` for a new picture (for tools and tests; a sending loop
    /// reads on its own tick instead).
    ///
    /// # Errors
    ///
    /// As [`VideoSource::read_frame`].
    pub fn wait_frame(
        &mut self,
        frame: &mut VideoFrame,
        timeout: Duration,
    ) -> Result<VideoRead, VideoIoError> {
        let deadline = Instant::now() + timeout;
        loop {
            let read = self.read_frame(frame)?;
            if read != VideoRead::Pending || Instant::now() >= deadline {
                return Ok(read);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl VideoSource for VideoCapture {
    fn read_frame(&mut self, frame: &mut VideoFrame) -> Result<VideoRead, VideoIoError> {
        match &mut self.inner {
            Inner::Synthetic(source) => source.read_frame(frame),
            Inner::Thread { shared, .. } => {
                let mut slot = lock(shared);
                if slot.fresh
                    && let Some(newest) = slot.frame.as_mut()
                {
                    std::mem::swap(newest, frame);
                    slot.fresh = false;
                    return Ok(VideoRead::Frame);
                }
                match &slot.error {
                    Some(error) => Err(VideoIoError::Io {
                        name: self.name.clone(),
                        source: std::io::Error::other(error.clone()),
                    }),
                    None => Ok(VideoRead::Pending),
                }
            }
        }
    }

    fn format(&self) -> VideoFormat {
        self.format
    }

    fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for VideoCapture {
    fn drop(&mut self) {
        if let Inner::Thread { stop, thread, .. } = &mut self.inner {
            stop.store(true, Ordering::Relaxed);
            if let Some(thread) = thread.take() {
                // A grab in progress finishes first (at most one frame time).
                let _ = thread.join();
            }
        }
    }
}

/// The capture loop: grab, publish, sleep until the next tick.
fn run_capture(
    shared: &Shared,
    stop: &AtomicBool,
    interval: Duration,
    grab: &mut impl FnMut(&mut VideoFrame) -> Result<(), DeviceError>,
) {
    let started = Instant::now();
    let mut work = VideoFrame::black(2, 2).ok();
    let mut failures = 0;
    let mut next = started;
    while !stop.load(Ordering::Relaxed) {
        let Some(frame) = work.as_mut() else { break };
        let taken = Instant::now();
        match grab(frame) {
            Ok(()) => {
                failures = 0;
                frame.set_timestamp(taken - started);
                let mut slot = lock(shared);
                slot.stats.captured += 1;
                if slot.fresh {
                    slot.stats.dropped += 1;
                }
                slot.fresh = true;
                std::mem::swap(&mut slot.frame, &mut work);
                if work.is_none() {
                    work = VideoFrame::black(2, 2).ok();
                }
            }
            Err(error) => {
                failures += 1;
                let mut slot = lock(shared);
                slot.stats.failed += 1;
                tracing::debug!(%error, failures, "capture failed");
                if failures >= MAX_FAILURES_IN_A_ROW {
                    slot.error = Some(error.to_string());
                    break;
                }
            }
        }
        next += interval;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            // Grabbing is slower than the rate: skip the lost ticks.
            next = now;
        }
    }
}

/// The slot's guard; a panicking grab leaves at worst a stale frame.
fn lock(shared: &Shared) -> MutexGuard<'_, Slot> {
    shared.slot.lock().unwrap_or_else(PoisonError::into_inner)
}
