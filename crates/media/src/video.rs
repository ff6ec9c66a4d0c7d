//! Pictures: the [`VideoFrame`] every camera, screen, file and codec exchanges, and the
//! [`VideoSource`] / [`VideoSink`] traits they implement.
//!
//! A frame is 8-bit planar YUV 4:2:0 ("I420": a full-size Y plane, then U and V at
//! half width and half height, rounded up), BT.601 limited range, tightly packed (each
//! plane's stride is its width). That is what video encoders take and decoders give,
//! so captured pictures are converted once, at the device.
//!
//! Sources are pulled: whoever sends video ticks at the frame rate and calls
//! [`VideoSource::read_frame`], which fills a caller-owned frame (reusing its buffer,
//! so steady capture does not allocate) and never blocks for long; devices that
//! capture on their own thread hand over their newest picture. The implementations
//! here need no hardware:
//!
//! - [`TestPatternSource`]: colour bars, a moving square and the frame number written
//!   as a binary code that [`TestPatternSource::frame_number`] reads back, even from a
//!   decoded (lossy) picture: the test signal of video tests;
//! - [`Y4mSource`] and [`Y4mSink`]: YUV4MPEG2 files, as ffmpeg and every codec test
//!   suite read and write them;
//! - [`MemoryVideoSink`]: keeps the last frames for a test to inspect through a
//!   [`VideoTap`].
//!
//! ```
//! use ringwire_media::video::{FrameRate, TestPatternSource, VideoFormat, VideoFrame, VideoSource};
//!
//! let format = VideoFormat::new(320, 180, FrameRate::new(30, 1)?)?;
//! let mut camera = TestPatternSource::new(format)?;
//! let mut frame = VideoFrame::black(2, 2)?;
//! for _ in 0..3 {
//!     camera.read_frame(&mut frame)?;
//! }
//! assert_eq!((frame.width(), frame.height()), (320, 180));
//! assert_eq!(TestPatternSource::frame_number(&frame), Some(2));
//! # Ok::<(), ringwire_media::video::VideoIoError>(())
//! ```

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// The largest width or height a frame may have: 8K, far above any camera or screen
/// a call sends, and small enough that a hostile Y4M header cannot ask for gigabytes.
pub const MAX_DIMENSION: u32 = 8192;

/// One picture in I420 (planar YUV 4:2:0, BT.601 limited range), tightly packed.
#[derive(Clone, PartialEq, Eq)]
pub struct VideoFrame {
    width: u32,
    height: u32,
    /// Y, then U, then V.
    data: Vec<u8>,
    timestamp: Duration,
}

/// Frames per second as a fraction (`30000/1001` for NTSC rates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameRate {
    numerator: u32,
    denominator: u32,
}

/// What a video source delivers: frame size and rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VideoFormat {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub frame_rate: FrameRate,
}

/// What [`VideoSource::read_frame`] did to the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoRead {
    /// The frame holds a new picture.
    Frame,
    /// Nothing new since the last read (a capture thread has not produced a picture
    /// yet); the frame is unchanged. Sending the previous picture again is fine.
    Pending,
    /// The source has no more pictures (the end of a non-looping file); the frame is
    /// unchanged, and so is every later read.
    Ended,
}

/// Something pictures are captured from: a camera, a screen, a file, a pattern.
pub trait VideoSource: Send {
    /// Puts the next picture into `frame`, resizing it when the source's size differs.
    /// Called at the frame rate from the sending loop, so it must not block for long.
    ///
    /// # Errors
    ///
    /// When the source fails (a device error, a broken file).
    fn read_frame(&mut self, frame: &mut VideoFrame) -> Result<VideoRead, VideoIoError>;

    /// The size and rate this source delivers (a screen's size can change later; each
    /// frame carries its own).
    fn format(&self) -> VideoFormat;

    /// A short description for logs: `"test pattern 640x360"`, a file's path.
    fn name(&self) -> &str;
}

/// Something pictures are shown on or written to: a window, a file, a test's memory.
pub trait VideoSink: Send {
    /// Takes the next picture.
    ///
    /// # Errors
    ///
    /// When the sink fails (disk full) or cannot take this frame (a file sink whose
    /// size was fixed by its first frame).
    fn write_frame(&mut self, frame: &VideoFrame) -> Result<(), VideoIoError>;

    /// Flushes and closes the sink. Idempotent; the default does nothing.
    ///
    /// # Errors
    ///
    /// When flushing fails.
    fn finish(&mut self) -> Result<(), VideoIoError> {
        Ok(())
    }

    /// A short description for logs.
    fn name(&self) -> &str;
}

/// What went wrong making, reading or writing video.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VideoIoError {
    /// A file could not be opened or created (missing, no permission).
    #[error("cannot open {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Reading or writing failed midway (disk full, device error).
    #[error("i/o error on {name}: {source}")]
    Io {
        /// The file or device.
        name: String,
        /// Why.
        source: io::Error,
    },
    /// The bytes are not a valid file of the expected kind (bad header, truncated frame).
    #[error("{name} is not a valid y4m file: {reason}")]
    Malformed {
        /// The file.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A valid file or device picture in a format that is not read (4:4:4, 10-bit).
    #[error("{name}: unsupported video format: {format}")]
    UnsupportedFormat {
        /// The file or device.
        name: String,
        /// The format found and what is accepted.
        format: String,
    },
    /// A sink whose size was fixed by its first frame got a frame of another size.
    #[error("{name} takes {expected_width}x{expected_height} frames, got {width}x{height}")]
    SizeChanged {
        /// The sink.
        name: String,
        /// The size of the first frame.
        expected_width: u32,
        /// The size of the first frame.
        expected_height: u32,
        /// The size of this frame.
        width: u32,
        /// The size of this frame.
        height: u32,
    },
    /// A frame was written after [`VideoSink::finish`] (caller's mistake).
    #[error("{name} is already finished")]
    Finished {
        /// The sink.
        name: String,
    },
    /// A size, rate or buffer is out of range (caller's mistake).
    #[error("invalid video config: {0}")]
    InvalidConfig(&'static str),
}

/// The byte order of a packed 8-bit RGB picture handed to
/// [`VideoFrame::fill_from_packed_rgb`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RgbLayout {
    /// R, G, B, A (xcap, most image crates).
    Rgba,
    /// B, G, R, A (X11 and Windows screen grabs).
    Bgra,
    /// R, G, B (camera "RGB3").
    Rgb,
}

impl RgbLayout {
    /// Bytes per pixel.
    #[must_use]
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            Self::Rgba | Self::Bgra => 4,
            Self::Rgb => 3,
        }
    }

    /// Byte offsets of R, G and B within a pixel.
    fn offsets(self) -> [usize; 3] {
        match self {
            Self::Rgba | Self::Rgb => [0, 1, 2],
            Self::Bgra => [2, 1, 0],
        }
    }
}

impl FrameRate {
    /// `numerator / denominator` frames per second.
    ///
    /// # Errors
    ///
    /// [`VideoIoError::InvalidConfig`] when either part is zero or the rate is above
    /// 1000 frames per second.
    pub fn new(numerator: u32, denominator: u32) -> Result<Self, VideoIoError> {
        check(
            numerator > 0 && denominator > 0,
            "frame rate parts must not be zero",
        )?;
        check(
            u64::from(numerator) <= 1000 * u64::from(denominator),
            "frame rate must be at most 1000 fps",
        )?;
        Ok(Self {
            numerator,
            denominator,
        })
    }

    /// Whole frames per second (`fps` in 1..=1000).
    ///
    /// # Errors
    ///
    /// As [`FrameRate::new`].
    pub fn per_second(fps: u32) -> Result<Self, VideoIoError> {
        Self::new(fps, 1)
    }

    /// The numerator of the fraction.
    #[must_use]
    pub fn numerator(self) -> u32 {
        self.numerator
    }

    /// The denominator of the fraction.
    #[must_use]
    pub fn denominator(self) -> u32 {
        self.denominator
    }

    /// Frames per second as a float (for display).
    #[must_use]
    pub fn as_f64(self) -> f64 {
        f64::from(self.numerator) / f64::from(self.denominator)
    }

    /// The time between frames.
    #[must_use]
    pub fn frame_interval(self) -> Duration {
        self.timestamp_of(1)
    }

    /// When frame `index` (from 0) starts, exactly: `index * denominator / numerator`
    /// seconds, so long streams do not drift.
    #[must_use]
    pub fn timestamp_of(self, index: u64) -> Duration {
        let nanos = u128::from(index) * u128::from(self.denominator) * 1_000_000_000
            / u128::from(self.numerator);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

impl VideoFormat {
    /// A format of `width` x `height` pixels at `frame_rate`.
    ///
    /// # Errors
    ///
    /// [`VideoIoError::InvalidConfig`] when a side is zero or above [`MAX_DIMENSION`].
    pub fn new(width: u32, height: u32, frame_rate: FrameRate) -> Result<Self, VideoIoError> {
        check_size(width, height)?;
        Ok(Self {
            width,
            height,
            frame_rate,
        })
    }
}

impl VideoFrame {
    /// A black frame of `width` x `height` pixels at timestamp zero.
    ///
    /// # Errors
    ///
    /// [`VideoIoError::InvalidConfig`] when a side is zero or above [`MAX_DIMENSION`].
    pub fn black(width: u32, height: u32) -> Result<Self, VideoIoError> {
        let mut frame = Self {
            width: 0,
            height: 0,
            data: Vec::new(),
            timestamp: Duration::ZERO,
        };
        frame.resize(width, height)?;
        frame.fill(BLACK);
        Ok(frame)
    }

    /// A frame made of copies of three planes (Y `width * height` bytes, U and V
    /// `chroma_width * chroma_height` each).
    ///
    /// # Errors
    ///
    /// [`VideoIoError::InvalidConfig`] for a bad size or planes of the wrong length.
    pub fn from_planes(
        width: u32,
        height: u32,
        y: &[u8],
        u: &[u8],
        v: &[u8],
    ) -> Result<Self, VideoIoError> {
        let mut frame = Self::black(width, height)?;
        let (py, pu, pv) = frame.planes_mut();
        check(
            y.len() == py.len() && u.len() == pu.len() && v.len() == pv.len(),
            "plane lengths do not match the frame size",
        )?;
        py.copy_from_slice(y);
        pu.copy_from_slice(u);
        pv.copy_from_slice(v);
        Ok(frame)
    }

    /// Width in pixels.
    #[must_use]
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    #[must_use]
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Width of the U and V planes: half the width, rounded up.
    #[must_use]
    pub fn chroma_width(&self) -> u32 {
        self.width.div_ceil(2)
    }

    /// Height of the U and V planes: half the height, rounded up.
    #[must_use]
    pub fn chroma_height(&self) -> u32 {
        self.height.div_ceil(2)
    }

    /// When this picture was taken, relative to the start of its stream.
    #[must_use]
    pub fn timestamp(&self) -> Duration {
        self.timestamp
    }

    /// Sets when this picture was taken.
    pub fn set_timestamp(&mut self, timestamp: Duration) {
        self.timestamp = timestamp;
    }

    /// The luma plane, row after row, `width` bytes each.
    #[must_use]
    pub fn y(&self) -> &[u8] {
        &self.data[..self.luma_len()]
    }

    /// The U (Cb) plane, `chroma_width` bytes per row.
    #[must_use]
    pub fn u(&self) -> &[u8] {
        let (start, len) = (self.luma_len(), self.chroma_len());
        &self.data[start..start + len]
    }

    /// The V (Cr) plane, `chroma_width` bytes per row.
    #[must_use]
    pub fn v(&self) -> &[u8] {
        &self.data[self.luma_len() + self.chroma_len()..]
    }

    /// All three planes, Y then U then V: the layout of a Y4M frame and of most
    /// encoders' input.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// The three planes, writable.
    pub fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let (luma, chroma) = (self.luma_len(), self.chroma_len());
        let (y, rest) = self.data.split_at_mut(luma);
        let (u, v) = rest.split_at_mut(chroma);
        (y, u, v)
    }

    /// Changes the size, keeping the allocation when it is large enough; the content
    /// is unspecified afterwards.
    ///
    /// # Errors
    ///
    /// [`VideoIoError::InvalidConfig`] when a side is zero or above [`MAX_DIMENSION`].
    pub fn resize(&mut self, width: u32, height: u32) -> Result<(), VideoIoError> {
        check_size(width, height)?;
        self.width = width;
        self.height = height;
        let len = self.luma_len() + 2 * self.chroma_len();
        self.data.resize(len, 0);
        Ok(())
    }

    /// Paints the whole frame one colour.
    pub fn fill(&mut self, color: Yuv) {
        let (y, u, v) = self.planes_mut();
        y.fill(color.y);
        u.fill(color.u);
        v.fill(color.v);
    }

    /// Replaces the picture with a packed 8-bit RGB one (`stride` bytes per row,
    /// at least `width * bytes_per_pixel`), resizing the frame; alpha is ignored. Each
    /// 2x2 block's chroma is the average of its pixels.
    ///
    /// # Errors
    ///
    /// [`VideoIoError::InvalidConfig`] for a bad size, a too small stride or too few
    /// bytes.
    pub fn fill_from_packed_rgb(
        &mut self,
        width: u32,
        height: u32,
        stride: usize,
        layout: RgbLayout,
        pixels: &[u8],
    ) -> Result<(), VideoIoError> {
        check_size(width, height)?;
        let bpp = layout.bytes_per_pixel();
        let (w, h) = (width as usize, height as usize);
        check(stride >= w * bpp, "stride is smaller than a row")?;
        check(
            pixels.len() >= stride * (h - 1) + w * bpp,
            "too few bytes for the picture",
        )?;
        self.resize(width, height)?;
        let [ro, go, bo] = layout.offsets();
        let cw = self.chroma_width() as usize;
        let (py, pu, pv) = self.planes_mut();
        for row in 0..h {
            let src = &pixels[row * stride..row * stride + w * bpp];
            let dst = &mut py[row * w..(row + 1) * w];
            for (out, px) in dst.iter_mut().zip(src.chunks_exact(bpp)) {
                *out = Yuv::from_rgb(px[ro], px[go], px[bo]).y;
            }
        }
        for crow in 0..h.div_ceil(2) {
            for ccol in 0..cw {
                let (mut r, mut g, mut b, mut n) = (0u32, 0u32, 0u32, 0u32);
                for row in (2 * crow)..(2 * crow + 2).min(h) {
                    for col in (2 * ccol)..(2 * ccol + 2).min(w) {
                        let px = &pixels[row * stride + col * bpp..][..bpp];
                        r += u32::from(px[ro]);
                        g += u32::from(px[go]);
                        b += u32::from(px[bo]);
                        n += 1;
                    }
                }
                let avg = |sum: u32| ((sum + n / 2) / n) as u8;
                let color = Yuv::from_rgb(avg(r), avg(g), avg(b));
                pu[crow * cw + ccol] = color.u;
                pv[crow * cw + ccol] = color.v;
            }
        }
        Ok(())
    }

    /// The colour at pixel (`x`, `y`), `None` outside the frame.
    #[must_use]
    pub fn pixel(&self, x: u32, y: u32) -> Option<Yuv> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let cw = self.chroma_width() as usize;
        let (x, y) = (x as usize, y as usize);
        let chroma = (y / 2) * cw + x / 2;
        Some(Yuv {
            y: self.y()[y * self.width as usize + x],
            u: self.u()[chroma],
            v: self.v()[chroma],
        })
    }

    /// The average colour of a rectangle as RGB (clipped to the frame; `None` when
    /// nothing of it is inside): how tests check that a picture shows what it should.
    #[must_use]
    pub fn average_rgb(&self, x: u32, y: u32, width: u32, height: u32) -> Option<[u8; 3]> {
        let x_end = x.saturating_add(width).min(self.width);
        let y_end = y.saturating_add(height).min(self.height);
        let mut sum = [0u64; 3];
        let mut n = 0u64;
        for row in y..y_end {
            for col in x..x_end {
                let rgb = self.pixel(col, row)?.to_rgb();
                for (s, c) in sum.iter_mut().zip(rgb) {
                    *s += u64::from(c);
                }
                n += 1;
            }
        }
        (n > 0).then(|| sum.map(|s| ((s + n / 2) / n) as u8))
    }

    fn luma_len(&self) -> usize {
        self.width as usize * self.height as usize
    }

    fn chroma_len(&self) -> usize {
        self.chroma_width() as usize * self.chroma_height() as usize
    }
}

/// An empty 0x0 frame: a buffer for a source or decoder to fill (they resize it).
impl Default for VideoFrame {
    fn default() -> Self {
        Self {
            width: 0,
            height: 0,
            data: Vec::new(),
            timestamp: Duration::ZERO,
        }
    }
}

impl std::fmt::Debug for VideoFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoFrame")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}

/// One pixel's colour in BT.601 limited range (Y 16..=235, U and V 16..=240).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Yuv {
    /// Luma.
    pub y: u8,
    /// Blue-difference chroma (Cb).
    pub u: u8,
    /// Red-difference chroma (Cr).
    pub v: u8,
}

/// Black in limited range.
const BLACK: Yuv = Yuv {
    y: 16,
    u: 128,
    v: 128,
};

impl Yuv {
    /// Converts 8-bit full-range RGB (BT.601 integer matrix, as libyuv does).
    #[must_use]
    pub fn from_rgb(r: u8, g: u8, b: u8) -> Self {
        let (r, g, b) = (i32::from(r), i32::from(g), i32::from(b));
        let y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16;
        let u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128;
        let v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128;
        Self {
            y: clamp_u8(y),
            u: clamp_u8(u),
            v: clamp_u8(v),
        }
    }

    /// Converts back to 8-bit full-range RGB.
    #[must_use]
    pub fn to_rgb(self) -> [u8; 3] {
        let c = 298 * (i32::from(self.y) - 16);
        let d = i32::from(self.u) - 128;
        let e = i32::from(self.v) - 128;
        [
            clamp_u8((c + 409 * e + 128) >> 8),
            clamp_u8((c - 100 * d - 208 * e + 128) >> 8),
            clamp_u8((c + 516 * d + 128) >> 8),
        ]
    }
}

impl<S: VideoSource + ?Sized> VideoSource for Box<S> {
    fn read_frame(&mut self, frame: &mut VideoFrame) -> Result<VideoRead, VideoIoError> {
        (**self).read_frame(frame)
    }

    fn format(&self) -> VideoFormat {
        (**self).format()
    }

    fn name(&self) -> &str {
        (**self).name()
    }
}

impl<S: VideoSink + ?Sized> VideoSink for Box<S> {
    fn write_frame(&mut self, frame: &VideoFrame) -> Result<(), VideoIoError> {
        (**self).write_frame(frame)
    }

    fn finish(&mut self) -> Result<(), VideoIoError> {
        (**self).finish()
    }

    fn name(&self) -> &str {
        (**self).name()
    }
}

/// Bits of the frame number in the test pattern's code row.
const CODE_NUMBER_BITS: u32 = 24;
/// Cells in a code row: the number and an 8-bit check.
const CODE_CELLS: u32 = CODE_NUMBER_BITS + 8;
/// Code rows: the frame number, then the sender tag.
const CODE_ROWS: u32 = 2;
/// The eight EBU colour bars, left to right.
const BARS: [[u8; 3]; 8] = [
    [235, 235, 235],
    [235, 235, 16],
    [16, 235, 235],
    [16, 235, 16],
    [235, 16, 235],
    [235, 16, 16],
    [16, 16, 235],
    [16, 16, 16],
];

/// A synthetic camera: eight colour bars, a white square that moves one step per
/// frame, and along the top two rows of 32 black or white cells: the first holds the
/// frame number (24 bits) and a check byte, the second the sender's tag (24 bits, see
/// [`TestPatternSource::with_sender`]) and a check byte.
///
/// Every frame is computed from its index and tag alone, so the pattern is
/// deterministic and a receiver can tell whose frame it got and which, and whether
/// frames were lost or repeated, with [`TestPatternSource::frame_number`] and
/// [`TestPatternSource::sender`] (the cells are large enough to survive lossy
/// coding). Endless; timestamps are `index / frame_rate`.
#[derive(Debug, Clone)]
pub struct TestPatternSource {
    format: VideoFormat,
    index: u64,
    sender: u32,
    name: String,
}

impl TestPatternSource {
    /// The smallest width and height: the 32 code cells need at least two pixels each.
    pub const MIN_SIZE: u32 = 64;

    /// A pattern of `format`'s size and rate, starting at frame 0.
    ///
    /// # Errors
    ///
    /// [`VideoIoError::InvalidConfig`] when a side is below [`Self::MIN_SIZE`].
    pub fn new(format: VideoFormat) -> Result<Self, VideoIoError> {
        check(
            format.width >= Self::MIN_SIZE && format.height >= Self::MIN_SIZE,
            "test pattern needs at least 64x64 pixels",
        )?;
        Ok(Self {
            format,
            index: 0,
            sender: 0,
            name: format!("test pattern {}x{}", format.width, format.height),
        })
    }

    /// Tags every frame with `sender` (its low 24 bits), so a receiver of several
    /// patterns can tell them apart after decoding.
    #[must_use]
    pub fn with_sender(mut self, sender: u32) -> Self {
        self.sender = sender % (1 << CODE_NUMBER_BITS);
        self.name = format!(
            "test pattern {}x{} #{}",
            self.format.width, self.format.height, self.sender
        );
        self
    }

    /// The sender tag this pattern writes.
    #[must_use]
    pub fn sender_tag(&self) -> u32 {
        self.sender
    }

    /// The index of the next frame.
    #[must_use]
    pub fn position(&self) -> u64 {
        self.index
    }

    /// Draws frame `index` into `frame` (resized to the pattern's size).
    ///
    /// # Errors
    ///
    /// Never for a pattern made by [`TestPatternSource::new`]; the `Result` is the
    /// frame's resize.
    pub fn draw(&self, index: u64, frame: &mut VideoFrame) -> Result<(), VideoIoError> {
        let (width, height) = (self.format.width, self.format.height);
        frame.resize(width, height)?;
        frame.set_timestamp(self.format.frame_rate.timestamp_of(index));
        let code_height = code_height(height);
        let codes_end = CODE_ROWS * code_height;
        // Bars below the code rows.
        let bar_width = width.div_ceil(8);
        for row in codes_end..height {
            for col in 0..width {
                let [r, g, b] = BARS[(col / bar_width).min(7) as usize];
                put(frame, col, row, Yuv::from_rgb(r, g, b));
            }
        }
        // The moving square: a side of a quarter of the height, one step per frame.
        let side = (height / 4).max(2);
        let span_x = u64::from(width - side);
        let span_y = u64::from(height - codes_end - side).max(1);
        let x = (index * 4 % span_x.max(1)) as u32;
        let y = codes_end + (index * 2 % span_y) as u32;
        for row in y..(y + side).min(height) {
            for col in x..(x + side).min(width) {
                put(frame, col, row, Yuv::from_rgb(255, 255, 255));
            }
        }
        let number = (index % (1 << CODE_NUMBER_BITS)) as u32;
        draw_code(frame, 0, number);
        draw_code(frame, 1, self.sender);
        Ok(())
    }

    /// Reads the frame number a [`TestPatternSource`] wrote into `frame` (modulo
    /// 2^24), or `None` when the code row is missing, unreadable or fails its check:
    /// the picture is not (or no longer) a test pattern.
    #[must_use]
    pub fn frame_number(frame: &VideoFrame) -> Option<u32> {
        read_code(frame, 0)
    }

    /// Reads the sender tag a [`TestPatternSource`] wrote into `frame` (see
    /// [`TestPatternSource::with_sender`]), or `None` like
    /// [`TestPatternSource::frame_number`].
    #[must_use]
    pub fn sender(frame: &VideoFrame) -> Option<u32> {
        read_code(frame, 1)
    }
}

impl VideoSource for TestPatternSource {
    fn read_frame(&mut self, frame: &mut VideoFrame) -> Result<VideoRead, VideoIoError> {
        self.draw(self.index, frame)?;
        self.index += 1;
        Ok(VideoRead::Frame)
    }

    fn format(&self) -> VideoFormat {
        self.format
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// A YUV4MPEG2 file as a source, read frame by frame (files are too large to load).
///
/// Reads 8-bit 4:2:0 (`C420`, `C420jpeg`, `C420paldv`, `C420mpeg2`, or no `C`
/// parameter); interlacing and aspect parameters are ignored. At the end of the file it
/// reports [`VideoRead::Ended`], or starts over when [`Y4mSource::looping`] is set.
#[derive(Debug)]
pub struct Y4mSource {
    reader: BufReader<File>,
    /// Where the first frame starts, for looping.
    data_start: u64,
    format: VideoFormat,
    looping: bool,
    ended: bool,
    index: u64,
    /// Scratch for the `FRAME` line.
    line: Vec<u8>,
    name: String,
}

impl Y4mSource {
    /// Opens the Y4M file at `path` and reads its header.
    ///
    /// # Errors
    ///
    /// [`VideoIoError::Open`] when the file cannot be opened, [`VideoIoError::Malformed`]
    /// for a bad header, [`VideoIoError::UnsupportedFormat`] for other chroma formats,
    /// [`VideoIoError::Io`] when reading fails.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, VideoIoError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| VideoIoError::Open {
            path: path.to_owned(),
            source,
        })?;
        let name = path.display().to_string();
        let mut reader = BufReader::new(file);
        let mut header = Vec::new();
        read_line(&mut reader, &mut header, &name)?;
        let format = parse_y4m_header(&header, &name)?;
        let data_start = header.len() as u64 + 1;
        Ok(Self {
            reader,
            data_start,
            format,
            looping: false,
            ended: false,
            index: 0,
            line: Vec::new(),
            name,
        })
    }

    /// Starts over at the end of the file instead of ending (an endless camera).
    #[must_use]
    pub fn looping(mut self, looping: bool) -> Self {
        self.looping = looping;
        self
    }

    fn rewind(&mut self) -> Result<(), VideoIoError> {
        use std::io::Seek;
        self.reader
            .seek(io::SeekFrom::Start(self.data_start))
            .map_err(|source| VideoIoError::Io {
                name: self.name.clone(),
                source,
            })?;
        Ok(())
    }
}

impl VideoSource for Y4mSource {
    fn read_frame(&mut self, frame: &mut VideoFrame) -> Result<VideoRead, VideoIoError> {
        if self.ended {
            return Ok(VideoRead::Ended);
        }
        let mut read = read_line(&mut self.reader, &mut self.line, &self.name)?;
        if !read && self.looping && self.index > 0 {
            self.rewind()?;
            read = read_line(&mut self.reader, &mut self.line, &self.name)?;
        }
        if !read {
            self.ended = true;
            return Ok(VideoRead::Ended);
        }
        if !self.line.starts_with(b"FRAME") {
            return Err(malformed(&self.name, "a frame does not start with FRAME"));
        }
        frame.resize(self.format.width, self.format.height)?;
        let name = &self.name;
        self.reader
            .read_exact(&mut frame.data)
            .map_err(|source| match source.kind() {
                io::ErrorKind::UnexpectedEof => malformed(name, "the last frame is truncated"),
                _ => VideoIoError::Io {
                    name: name.clone(),
                    source,
                },
            })?;
        frame.set_timestamp(self.format.frame_rate.timestamp_of(self.index));
        self.index += 1;
        Ok(VideoRead::Frame)
    }

    fn format(&self) -> VideoFormat {
        self.format
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// A YUV4MPEG2 file as a sink (`C420jpeg`); the first frame fixes the size, the rate
/// is given up front.
#[derive(Debug)]
pub struct Y4mSink {
    writer: Option<BufWriter<File>>,
    frame_rate: FrameRate,
    size: Option<(u32, u32)>,
    name: String,
}

impl Y4mSink {
    /// Creates (or truncates) the file at `path`.
    ///
    /// # Errors
    ///
    /// [`VideoIoError::Open`] when the file cannot be created.
    pub fn create(path: impl AsRef<Path>, frame_rate: FrameRate) -> Result<Self, VideoIoError> {
        let path = path.as_ref();
        let file = File::create(path).map_err(|source| VideoIoError::Open {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            writer: Some(BufWriter::new(file)),
            frame_rate,
            size: None,
            name: path.display().to_string(),
        })
    }
}

impl VideoSink for Y4mSink {
    fn write_frame(&mut self, frame: &VideoFrame) -> Result<(), VideoIoError> {
        let name = &self.name;
        let Some(writer) = self.writer.as_mut() else {
            return Err(VideoIoError::Finished { name: name.clone() });
        };
        let io_error = |source| VideoIoError::Io {
            name: name.clone(),
            source,
        };
        match self.size {
            None => {
                writeln!(
                    writer,
                    "YUV4MPEG2 W{} H{} F{}:{} Ip A1:1 C420jpeg",
                    frame.width(),
                    frame.height(),
                    self.frame_rate.numerator(),
                    self.frame_rate.denominator()
                )
                .map_err(io_error)?;
                self.size = Some((frame.width(), frame.height()));
            }
            Some((w, h)) if (w, h) != (frame.width(), frame.height()) => {
                return Err(VideoIoError::SizeChanged {
                    name: name.clone(),
                    expected_width: w,
                    expected_height: h,
                    width: frame.width(),
                    height: frame.height(),
                });
            }
            Some(_) => {}
        }
        writer.write_all(b"FRAME\n").map_err(io_error)?;
        writer.write_all(frame.as_bytes()).map_err(io_error)
    }

    fn finish(&mut self) -> Result<(), VideoIoError> {
        if let Some(mut writer) = self.writer.take() {
            writer.flush().map_err(|source| VideoIoError::Io {
                name: self.name.clone(),
                source,
            })?;
        }
        Ok(())
    }

    fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Y4mSink {
    fn drop(&mut self) {
        if let Err(error) = self.finish() {
            tracing::debug!(%error, "y4m sink not flushed");
        }
    }
}

/// A sink that keeps the last frames in memory, read through its [`VideoTap`].
#[derive(Debug)]
pub struct MemoryVideoSink {
    shared: Arc<Mutex<Kept>>,
}

/// The reading end of a [`MemoryVideoSink`], usable from another thread.
#[derive(Debug, Clone)]
pub struct VideoTap {
    shared: Arc<Mutex<Kept>>,
}

#[derive(Debug, Default)]
struct Kept {
    frames: std::collections::VecDeque<VideoFrame>,
    capacity: usize,
    written: u64,
}

impl MemoryVideoSink {
    /// A sink keeping the last `capacity` frames (at least one).
    #[must_use]
    pub fn new(capacity: usize) -> (Self, VideoTap) {
        let shared = Arc::new(Mutex::new(Kept {
            capacity: capacity.max(1),
            ..Kept::default()
        }));
        (
            Self {
                shared: Arc::clone(&shared),
            },
            VideoTap { shared },
        )
    }
}

impl VideoSink for MemoryVideoSink {
    fn write_frame(&mut self, frame: &VideoFrame) -> Result<(), VideoIoError> {
        let mut kept = lock(&self.shared);
        // Reuse the oldest frame's buffer once full.
        let mut slot = if kept.frames.len() >= kept.capacity {
            kept.frames.pop_front()
        } else {
            None
        };
        match slot.as_mut() {
            Some(old) => old.clone_from(frame),
            None => slot = Some(frame.clone()),
        }
        kept.frames.extend(slot);
        kept.written += 1;
        Ok(())
    }

    fn name(&self) -> &str {
        "memory"
    }
}

impl VideoTap {
    /// Copies of the frames kept, oldest first.
    #[must_use]
    pub fn frames(&self) -> Vec<VideoFrame> {
        lock(&self.shared).frames.iter().cloned().collect()
    }

    /// A copy of the newest frame.
    #[must_use]
    pub fn last(&self) -> Option<VideoFrame> {
        lock(&self.shared).frames.back().cloned()
    }

    /// Every frame ever written.
    #[must_use]
    pub fn written(&self) -> u64 {
        lock(&self.shared).written
    }
}

/// The mutex guard; a panic while holding it leaves at worst a frame list a test
/// reads, so poisoning is ignored.
fn lock(kept: &Mutex<Kept>) -> MutexGuard<'_, Kept> {
    kept.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Height of the test pattern's code row: an eighth of the picture.
/// Writes `number` (24 bits) and its check byte into code row `row`.
fn draw_code(frame: &mut VideoFrame, row: u32, number: u32) {
    let (width, height) = (frame.width(), frame.height());
    let code_height = code_height(height);
    let code = (number << 8) | u32::from(check_byte(number));
    for cell in 0..CODE_CELLS {
        let bit = (code >> (CODE_CELLS - 1 - cell)) & 1 == 1;
        let color = if bit {
            Yuv::from_rgb(255, 255, 255)
        } else {
            BLACK
        };
        let (x0, x1) = cell_span(width, cell);
        for y in row * code_height..(row + 1) * code_height {
            for x in x0..x1 {
                put(frame, x, y, color);
            }
        }
    }
}

/// Reads the number in code row `row`, `None` when unreadable or its check fails.
fn read_code(frame: &VideoFrame, row: u32) -> Option<u32> {
    if frame.width() < TestPatternSource::MIN_SIZE || frame.height() < TestPatternSource::MIN_SIZE {
        return None;
    }
    let code_height = code_height(frame.height());
    let mut code = 0u32;
    for cell in 0..CODE_CELLS {
        let (x0, x1) = cell_span(frame.width(), cell);
        // The middle of the cell, away from edges that coding blurs.
        let (x, y) = ((x0 + x1) / 2, row * code_height + code_height / 2);
        let luma = frame.pixel(x, y)?.y;
        let bit = match luma {
            0..=80 => 0,
            170..=255 => 1,
            _ => return None,
        };
        code = (code << 1) | bit;
    }
    let number = code >> 8;
    (check_byte(number) == (code & 0xff) as u8).then_some(number)
}

fn code_height(height: u32) -> u32 {
    (height / 8).max(2)
}

/// Columns `[start, end)` of code cell `cell`.
fn cell_span(width: u32, cell: u32) -> (u32, u32) {
    (width * cell / CODE_CELLS, width * (cell + 1) / CODE_CELLS)
}

/// The check byte of a frame number: its three bytes summed, inverted, so an all-black
/// (or all-white) row never passes.
fn check_byte(number: u32) -> u8 {
    let [_, a, b, c] = number.to_be_bytes();
    !(a.wrapping_add(b).wrapping_add(c).wrapping_add(0x5a))
}

/// Writes one pixel's luma, and its chroma when it is the top-left of its 2x2 block
/// (so a block takes the colour of its top-left pixel).
fn put(frame: &mut VideoFrame, x: u32, y: u32, color: Yuv) {
    let width = frame.width() as usize;
    let cw = frame.chroma_width() as usize;
    let (x, y) = (x as usize, y as usize);
    let (py, pu, pv) = frame.planes_mut();
    py[y * width + x] = color.y;
    if x % 2 == 0 && y % 2 == 0 {
        pu[(y / 2) * cw + x / 2] = color.u;
        pv[(y / 2) * cw + x / 2] = color.v;
    }
}

/// Reads one `\n`-terminated line into `line` (without the newline); `false` at the
/// end of the input. Lines are at most 1024 bytes (Y4M headers are short).
fn read_line(
    reader: &mut BufReader<File>,
    line: &mut Vec<u8>,
    name: &str,
) -> Result<bool, VideoIoError> {
    line.clear();
    let n = reader
        .by_ref()
        .take(1025)
        .read_until(b'\n', line)
        .map_err(|source| VideoIoError::Io {
            name: name.to_owned(),
            source,
        })?;
    if n == 0 {
        return Ok(false);
    }
    if line.pop() != Some(b'\n') {
        return Err(malformed(name, "a header line is unterminated or too long"));
    }
    Ok(true)
}

/// Parses `YUV4MPEG2 W.. H.. F..:.. [I..] [A..] [C..] [X..]`.
fn parse_y4m_header(header: &[u8], name: &str) -> Result<VideoFormat, VideoIoError> {
    let header =
        std::str::from_utf8(header).map_err(|_| malformed(name, "the header is not text"))?;
    let mut words = header.split(' ');
    if words.next() != Some("YUV4MPEG2") {
        return Err(malformed(name, "no YUV4MPEG2 signature"));
    }
    let (mut width, mut height, mut rate) = (None, None, None);
    for word in words.filter(|w| !w.is_empty()) {
        let (tag, value) = word.split_at(1);
        match tag {
            "W" => width = value.parse::<u32>().ok(),
            "H" => height = value.parse::<u32>().ok(),
            "F" => {
                rate = value
                    .split_once(':')
                    .and_then(|(n, d)| FrameRate::new(n.parse().ok()?, d.parse().ok()?).ok());
            }
            "C" if !matches!(value, "420" | "420jpeg" | "420paldv" | "420mpeg2") => {
                return Err(VideoIoError::UnsupportedFormat {
                    name: name.to_owned(),
                    format: format!("colour space C{value} (8-bit 4:2:0 is read)"),
                });
            }
            _ => {}
        }
    }
    let (Some(width), Some(height)) = (width, height) else {
        return Err(malformed(name, "missing or bad W/H"));
    };
    let rate = rate.ok_or_else(|| malformed(name, "missing or bad F"))?;
    VideoFormat::new(width, height, rate).map_err(|_| malformed(name, "size out of range"))
}

fn malformed(name: &str, reason: &str) -> VideoIoError {
    VideoIoError::Malformed {
        name: name.to_owned(),
        reason: reason.to_owned(),
    }
}

/// `Ok` when `ok`, else an [`VideoIoError::InvalidConfig`] saying what is wrong.
fn check(ok: bool, what: &'static str) -> Result<(), VideoIoError> {
    if ok {
        Ok(())
    } else {
        Err(VideoIoError::InvalidConfig(what))
    }
}

fn check_size(width: u32, height: u32) -> Result<(), VideoIoError> {
    check(
        (1..=MAX_DIMENSION).contains(&width) && (1..=MAX_DIMENSION).contains(&height),
        "frame sides must be in 1..=8192 pixels",
    )
}

fn clamp_u8(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(width: u32, height: u32) -> TestPatternSource {
        let rate = FrameRate::per_second(30).unwrap();
        TestPatternSource::new(VideoFormat::new(width, height, rate).unwrap()).unwrap()
    }

    #[test]
    fn rgb_round_trips_through_yuv() {
        for rgb in [
            [0, 0, 0],
            [255, 255, 255],
            [255, 0, 0],
            [0, 255, 0],
            [0, 0, 255],
            [90, 160, 30],
        ] {
            let back = Yuv::from_rgb(rgb[0], rgb[1], rgb[2]).to_rgb();
            for (a, b) in rgb.iter().zip(back) {
                assert!(a.abs_diff(b) <= 3, "{rgb:?} -> {back:?}");
            }
        }
        assert_eq!(Yuv::from_rgb(0, 0, 0), BLACK);
    }

    #[test]
    fn packed_rgb_converts_with_stride_and_odd_sizes() {
        // 5x3 BGRA, red on the left two columns, blue elsewhere, 4 bytes of padding.
        let (w, h, stride) = (5u32, 3u32, 24usize);
        let mut pixels = vec![0u8; stride * h as usize];
        for row in 0..h as usize {
            for col in 0..w as usize {
                let px = &mut pixels[row * stride + col * 4..][..4];
                px.copy_from_slice(if col < 2 {
                    &[0, 0, 255, 255]
                } else {
                    &[255, 0, 0, 255]
                });
            }
        }
        let mut frame = VideoFrame::black(2, 2).unwrap();
        frame
            .fill_from_packed_rgb(w, h, stride, RgbLayout::Bgra, &pixels)
            .unwrap();
        assert_eq!((frame.chroma_width(), frame.chroma_height()), (3, 2));
        assert_eq!(frame.as_bytes().len(), 15 + 2 * 6);
        let red = frame.average_rgb(0, 0, 2, 3).unwrap();
        assert!(red[0] > 240 && red[1] < 15 && red[2] < 15, "{red:?}");
        let blue = frame.average_rgb(4, 0, 1, 3).unwrap();
        assert!(blue[2] > 240 && blue[0] < 15, "{blue:?}");
        assert!(
            frame
                .fill_from_packed_rgb(w, h, 8, RgbLayout::Bgra, &pixels)
                .is_err()
        );
        assert!(
            frame
                .fill_from_packed_rgb(w, h, stride, RgbLayout::Bgra, &pixels[..40])
                .is_err()
        );
        assert!(frame.average_rgb(10, 10, 1, 1).is_none());
    }

    #[test]
    fn sizes_are_checked() {
        assert!(VideoFrame::black(0, 10).is_err());
        assert!(VideoFrame::black(10, MAX_DIMENSION + 1).is_err());
        assert!(FrameRate::new(0, 1).is_err());
        assert!(FrameRate::new(30, 0).is_err());
        assert!(FrameRate::new(1001, 1).is_err());
        let ntsc = FrameRate::new(30_000, 1001).unwrap();
        assert_eq!(ntsc.timestamp_of(30_000), Duration::from_secs(1001));
        let frame = VideoFrame::from_planes(2, 2, &[1, 2, 3, 4], &[5], &[6]).unwrap();
        assert_eq!(frame.pixel(1, 1), Some(Yuv { y: 4, u: 5, v: 6 }));
        assert!(VideoFrame::from_planes(2, 2, &[1, 2, 3], &[5], &[6]).is_err());
    }

    #[test]
    fn test_pattern_carries_its_frame_number() {
        let mut source = pattern(320, 180);
        let mut frame = VideoFrame::black(2, 2).unwrap();
        for expected in 0..40 {
            assert_eq!(source.read_frame(&mut frame).unwrap(), VideoRead::Frame);
            assert_eq!(TestPatternSource::frame_number(&frame), Some(expected));
            assert_eq!(TestPatternSource::sender(&frame), Some(0));
        }
        assert_eq!(frame.timestamp(), Duration::from_millis(1300));
        let mut tagged = pattern(320, 180).with_sender(0x12_3456);
        tagged.read_frame(&mut frame).unwrap();
        assert_eq!(TestPatternSource::sender(&frame), Some(0x12_3456));
        assert_eq!(TestPatternSource::frame_number(&frame), Some(0));
        // Large numbers, the smallest size, and coarse noise on luma still decode.
        let small = pattern(64, 64).with_sender(7);
        small.draw(0xab_cdef, &mut frame).unwrap();
        let (y, _, _) = frame.planes_mut();
        for (i, s) in y.iter_mut().enumerate() {
            *s = s.saturating_add((i % 7) as u8 * 3).saturating_sub(9);
        }
        assert_eq!(TestPatternSource::frame_number(&frame), Some(0xab_cdef));
        assert_eq!(TestPatternSource::sender(&frame), Some(7));
        // Black, white and bars are not patterns.
        let black = VideoFrame::black(320, 180).unwrap();
        assert_eq!(TestPatternSource::frame_number(&black), None);
        let mut white = black.clone();
        white.fill(Yuv::from_rgb(255, 255, 255));
        assert_eq!(TestPatternSource::frame_number(&white), None);
        assert!(
            TestPatternSource::new(VideoFormat::new(32, 64, source.format().frame_rate).unwrap())
                .is_err()
        );
    }

    #[test]
    fn y4m_round_trips_and_loops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clip.y4m");
        let mut source = pattern(96, 66);
        let rate = source.format().frame_rate;
        let mut sink = Y4mSink::create(&path, rate).unwrap();
        let mut frame = VideoFrame::black(2, 2).unwrap();
        let mut written = Vec::new();
        for _ in 0..3 {
            source.read_frame(&mut frame).unwrap();
            sink.write_frame(&frame).unwrap();
            written.push(frame.clone());
        }
        let other = VideoFrame::black(64, 64).unwrap();
        assert!(matches!(
            sink.write_frame(&other),
            Err(VideoIoError::SizeChanged { .. })
        ));
        sink.finish().unwrap();
        assert!(matches!(
            sink.write_frame(&frame),
            Err(VideoIoError::Finished { .. })
        ));

        let mut file = Y4mSource::open(&path).unwrap();
        assert_eq!(file.format(), source.format());
        let mut read = VideoFrame::black(2, 2).unwrap();
        for expected in &written {
            assert_eq!(file.read_frame(&mut read).unwrap(), VideoRead::Frame);
            assert_eq!(&read, expected);
        }
        assert_eq!(file.read_frame(&mut read).unwrap(), VideoRead::Ended);
        assert_eq!(file.read_frame(&mut read).unwrap(), VideoRead::Ended);

        let mut looping = Y4mSource::open(&path).unwrap().looping(true);
        for expected in [0, 1, 2, 0, 1] {
            assert_eq!(looping.read_frame(&mut read).unwrap(), VideoRead::Frame);
            assert_eq!(TestPatternSource::frame_number(&read), Some(expected));
        }
    }

    #[test]
    fn bad_y4m_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&[u8], &str); 7] = [
            (b"RIFF1234\n", "signature"),
            (b"RIFF1234", "unterminated"),
            (b"YUV4MPEG2 W10 F30:1\n", "W/H"),
            (b"YUV4MPEG2 W10 H10\n", "F"),
            (b"YUV4MPEG2 W10 H10 F30:1 C444\n", "C444"),
            (b"YUV4MPEG2 W99999 H10 F30:1\n", "range"),
            (b"YUV4MPEG2 W4 H4 F30:1\nFRAME\n1234", "truncated"),
        ];
        for (i, (bytes, what)) in cases.iter().enumerate() {
            let path = dir.path().join(format!("{i}.y4m"));
            std::fs::write(&path, bytes).unwrap();
            let result = Y4mSource::open(&path).and_then(|mut s| {
                let mut frame = VideoFrame::black(2, 2).unwrap();
                s.read_frame(&mut frame)
            });
            let error = result.unwrap_err().to_string();
            assert!(error.contains(what), "{what}: {error}");
        }
        assert!(matches!(
            Y4mSource::open(dir.path().join("missing.y4m")),
            Err(VideoIoError::Open { .. })
        ));
    }

    #[test]
    fn memory_sink_keeps_the_last_frames() {
        let (mut sink, tap) = MemoryVideoSink::new(2);
        let mut source = pattern(64, 64);
        let mut frame = VideoFrame::black(2, 2).unwrap();
        for _ in 0..5 {
            source.read_frame(&mut frame).unwrap();
            sink.write_frame(&frame).unwrap();
        }
        let numbers: Vec<_> = tap
            .frames()
            .iter()
            .map(TestPatternSource::frame_number)
            .collect();
        assert_eq!(numbers, [Some(3), Some(4)]);
        assert_eq!(tap.written(), 5);
        assert_eq!(
            tap.last()
                .as_ref()
                .and_then(TestPatternSource::frame_number),
            Some(4)
        );
    }
}
