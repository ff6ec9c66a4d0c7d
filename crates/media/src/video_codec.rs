//! Video codecs: H.264 encode and decode with OpenH264, AV1 decode with dav1d.
//!
//! Why these: OpenH264 (Cisco's BSD-licensed codec, built from source by the
//! `openh264` crate, so no system library and no patent-encumbered binary to ship) is
//! the H.264 every browser can decode and the one codec both ends of a Ringwire call
//! always share; the SFU forwards packets without transcoding, so publishers encode
//! H.264. dav1d is the reference-quality, fastest AV1 decoder, for peers (browsers)
//! that send AV1; it is a system library (>= 1.3, which `cargo xtask setup` installs).
//!
//! Bitstreams are Annex B (start codes), as OpenH264 emits and str0m's H.264
//! packetizer takes.
//!
//! [`h264_picture_size`] reads the picture size from a forwarded access unit's
//! sequence parameter set, so the SFU can tell simulcast layers apart without decoding;
//! it uses `h264-reader` (the SPS parser the `retina` RTSP client relies on, fuzzed
//! upstream) rather than a hand-written exp-Golomb reader.

use openh264::OpenH264API;
use openh264::decoder::{Decoder as OhDecoder, DecoderConfig};
use openh264::encoder::{
    BitRate, Encoder as OhEncoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod,
    RateControlMode, UsageType,
};
use openh264::formats::YUVSource;

use crate::video::{VideoFrame, VideoIoError};

/// The picture size (width, height) announced by the first sequence parameter set in
/// an H.264 access unit (Annex B), or `None` when it carries none (only key frames do)
/// or it does not parse. Takes bytes from the network: never panics.
#[must_use]
pub fn h264_picture_size(access_unit: &[u8]) -> Option<(u32, u32)> {
    use h264_reader::nal::sps::SeqParameterSet;
    use h264_reader::rbsp::{BitReader, decode_nal};

    const SPS: u8 = 7;
    let sps = annex_b_nals(access_unit).find(|nal| nal.first().is_some_and(|h| h & 0x1f == SPS))?;
    let rbsp = decode_nal(sps).ok()?;
    let sps = SeqParameterSet::from_bits(BitReader::new(&rbsp[..])).ok()?;
    sps.pixel_dimensions().ok()
}

/// The NAL units of an Annex B byte stream (between 3- or 4-byte start codes).
fn annex_b_nals(stream: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = stream;
    std::iter::from_fn(move || {
        // Skip to just past the next start code.
        let start = rest.windows(3).position(|w| w == [0, 0, 1])? + 3;
        rest = &rest[start..];
        let end = rest
            .windows(3)
            .position(|w| w == [0, 0, 1])
            .unwrap_or(rest.len());
        let mut nal = &rest[..end];
        // A 4-byte start code leaves its leading zero at the end of the previous NAL.
        while let [head @ .., 0] = nal {
            nal = head;
        }
        rest = &rest[end..];
        Some(nal)
    })
}

/// Why a codec operation failed. A decoder error concerns one access unit: the caller
/// drops it, asks the sender for a key frame and carries on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VideoCodecError {
    /// The codec library refused to start or to take the settings.
    #[error("{codec} could not be set up: {reason}")]
    Setup {
        /// Which codec.
        codec: &'static str,
        /// The library's complaint.
        reason: String,
    },
    /// The frame cannot be encoded (for example odd width or height).
    #[error("cannot encode a {width}x{height} frame: {reason}")]
    Frame {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// Why.
        reason: &'static str,
    },
    /// The encoder failed.
    #[error("H.264 encode failed: {0}")]
    Encode(String),
    /// The bitstream could not be decoded.
    #[error("{codec} decode failed: {reason}")]
    Decode {
        /// Which codec.
        codec: &'static str,
        /// Why.
        reason: String,
    },
    /// The decoded picture is in a format we do not convert (only 8-bit 4:2:0 is).
    #[error("{codec} picture format not supported: {what}")]
    Unsupported {
        /// Which codec.
        codec: &'static str,
        /// What was found.
        what: String,
    },
    /// The decoded picture does not fit a frame.
    #[error(transparent)]
    FrameBuffer(#[from] VideoIoError),
}

/// Settings of an [`H264Encoder`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct H264Config {
    /// Target bitrate, bits per second (default 800 kbps).
    pub bitrate: u32,
    /// Frames per second the rate control plans for (default 30).
    pub frame_rate: f32,
    /// Frames between periodic key frames (default 90: every 3 s at 30 fps); key
    /// frames are also made on request.
    pub keyframe_interval: u32,
    /// Content type: screen content gets OpenH264's screen tools (default camera).
    pub screen: bool,
}

impl Default for H264Config {
    fn default() -> Self {
        Self {
            bitrate: 800_000,
            frame_rate: 30.0,
            keyframe_interval: 90,
            screen: false,
        }
    }
}

/// One encoded picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// Annex B access unit.
    pub data: Vec<u8>,
    /// An IDR: decodable on its own.
    pub keyframe: bool,
}

/// H.264 encoder (OpenH264, constrained baseline).
pub struct H264Encoder {
    encoder: OhEncoder,
    config: H264Config,
    out: Vec<u8>,
}

impl std::fmt::Debug for H264Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Encoder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl H264Encoder {
    /// An encoder with `config`. Bitrate rate control is explicit: OpenH264's default
    /// quality mode overshoots its target several times on camera content.
    ///
    /// # Errors
    /// [`VideoCodecError::Setup`].
    pub fn new(config: H264Config) -> Result<Self, VideoCodecError> {
        let oh = EncoderConfig::new()
            .bitrate(BitRate::from_bps(config.bitrate))
            .max_frame_rate(FrameRate::from_hz(config.frame_rate))
            .rate_control_mode(RateControlMode::Bitrate)
            .usage_type(if config.screen {
                UsageType::ScreenContentRealTime
            } else {
                UsageType::CameraVideoRealTime
            })
            .intra_frame_period(IntraFramePeriod::from_num_frames(config.keyframe_interval))
            // Rate control may skip a frame to hold the bitrate (OpenH264 cannot
            // control it otherwise); `encode` then returns `None`.
            .skip_frames(true);
        let encoder = OhEncoder::with_api_config(OpenH264API::from_source(), oh).map_err(|e| {
            VideoCodecError::Setup {
                codec: "H.264 encoder",
                reason: e.to_string(),
            }
        })?;
        Ok(Self {
            encoder,
            config,
            out: Vec::new(),
        })
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> H264Config {
        self.config
    }

    /// Makes the next frame a key frame (a subscriber joined or lost packets).
    pub fn request_keyframe(&mut self) {
        self.encoder.force_intra_frame();
    }

    /// Encodes one frame. A size change starts a new sequence (the first frame of a
    /// size is a key frame). `None` when the encoder produced nothing for this frame.
    ///
    /// # Errors
    /// [`VideoCodecError::Frame`] for odd sizes, [`VideoCodecError::Encode`].
    pub fn encode(&mut self, frame: &VideoFrame) -> Result<Option<EncodedFrame>, VideoCodecError> {
        if !frame.width().is_multiple_of(2) || !frame.height().is_multiple_of(2) {
            return Err(VideoCodecError::Frame {
                width: frame.width(),
                height: frame.height(),
                reason: "H.264 4:2:0 needs even sides",
            });
        }
        let source = I420 { frame };
        let bitstream = self
            .encoder
            .encode(&source)
            .map_err(|e| VideoCodecError::Encode(e.to_string()))?;
        let keyframe = match bitstream.frame_type() {
            FrameType::IDR | FrameType::I => true,
            FrameType::P | FrameType::IPMixed => false,
            FrameType::Skip | FrameType::Invalid => return Ok(None),
        };
        self.out.clear();
        bitstream.write_vec(&mut self.out);
        if self.out.is_empty() {
            return Ok(None);
        }
        Ok(Some(EncodedFrame {
            data: self.out.clone(),
            keyframe,
        }))
    }
}

/// A [`VideoFrame`] as OpenH264 reads it.
struct I420<'a> {
    frame: &'a VideoFrame,
}

impl YUVSource for I420<'_> {
    fn dimensions(&self) -> (usize, usize) {
        (self.frame.width() as usize, self.frame.height() as usize)
    }

    fn strides(&self) -> (usize, usize, usize) {
        let c = self.frame.chroma_width() as usize;
        (self.frame.width() as usize, c, c)
    }

    fn y(&self) -> &[u8] {
        self.frame.y()
    }

    fn u(&self) -> &[u8] {
        self.frame.u()
    }

    fn v(&self) -> &[u8] {
        self.frame.v()
    }
}

/// H.264 decoder (OpenH264).
pub struct H264Decoder {
    decoder: OhDecoder,
}

impl std::fmt::Debug for H264Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Decoder").finish_non_exhaustive()
    }
}

impl H264Decoder {
    /// A decoder.
    ///
    /// # Errors
    /// [`VideoCodecError::Setup`].
    pub fn new() -> Result<Self, VideoCodecError> {
        let decoder = OhDecoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new())
            .map_err(|e| VideoCodecError::Setup {
                codec: "H.264 decoder",
                reason: e.to_string(),
            })?;
        Ok(Self { decoder })
    }

    /// Decodes one Annex B access unit into `frame` (resized as needed). Returns
    /// whether a picture came out (parameter sets alone give none).
    ///
    /// # Errors
    /// [`VideoCodecError::Decode`] for a corrupt or undecodable unit (for example a P
    /// frame without its key frame): drop it and request a key frame.
    pub fn decode(&mut self, data: &[u8], frame: &mut VideoFrame) -> Result<bool, VideoCodecError> {
        let decoded = self
            .decoder
            .decode(data)
            .map_err(|e| VideoCodecError::Decode {
                codec: "H.264",
                reason: e.to_string(),
            })?;
        let Some(picture) = decoded else {
            return Ok(false);
        };
        let (w, h) = picture.dimensions();
        let (sy, su, sv) = picture.strides();
        copy_planes(
            frame,
            (w, h),
            [(picture.y(), sy), (picture.u(), su), (picture.v(), sv)],
        )?;
        Ok(true)
    }
}

/// AV1 decoder (dav1d), for peers that send AV1.
pub struct Av1Decoder {
    decoder: dav1d::Decoder,
}

impl std::fmt::Debug for Av1Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Av1Decoder").finish_non_exhaustive()
    }
}

impl Av1Decoder {
    /// A decoder tuned for calls: one frame of delay at most, so a picture comes out
    /// for every temporal unit sent in.
    ///
    /// # Errors
    /// [`VideoCodecError::Setup`].
    pub fn new() -> Result<Self, VideoCodecError> {
        let mut settings = dav1d::Settings::new();
        settings.set_max_frame_delay(1);
        settings.set_n_threads(1);
        let decoder =
            dav1d::Decoder::with_settings(&settings).map_err(|e| VideoCodecError::Setup {
                codec: "AV1 decoder",
                reason: e.to_string(),
            })?;
        Ok(Self { decoder })
    }

    /// Decodes one temporal unit (OBUs, as RTP depacketization gives them) into
    /// `frame`. Returns whether a picture came out.
    ///
    /// # Errors
    /// [`VideoCodecError::Decode`] for corrupt data; [`VideoCodecError::Unsupported`]
    /// for pictures that are not 8-bit 4:2:0.
    pub fn decode(&mut self, data: &[u8], frame: &mut VideoFrame) -> Result<bool, VideoCodecError> {
        let decoded = self.decode_unit(data, frame);
        if decoded.is_err() {
            // dav1d can refuse every later unit, clean key frames included, after a
            // damaged key frame (found by the video_payload fuzz driver): start over,
            // so the next key frame decodes.
            self.decoder.flush();
        }
        decoded
    }

    fn decode_unit(
        &mut self,
        data: &[u8],
        frame: &mut VideoFrame,
    ) -> Result<bool, VideoCodecError> {
        let err = |e: dav1d::Error| VideoCodecError::Decode {
            codec: "AV1",
            reason: e.to_string(),
        };
        match self.decoder.send_data(data.to_vec(), None, None, None) {
            Ok(()) => {}
            Err(e) if e.is_again() => {
                // The decoder holds a picture: take it first, then feed the rest.
                let got = self.take_picture(frame)?;
                loop {
                    match self.decoder.send_pending_data() {
                        Ok(()) => break,
                        Err(e) if e.is_again() => {
                            self.take_picture(frame)?;
                        }
                        Err(e) => return Err(err(e)),
                    }
                }
                return Ok(got || self.take_picture(frame)?);
            }
            Err(e) => return Err(err(e)),
        }
        self.take_picture(frame)
    }

    fn take_picture(&mut self, frame: &mut VideoFrame) -> Result<bool, VideoCodecError> {
        use dav1d::PlanarImageComponent as C;
        let picture = match self.decoder.get_picture() {
            Ok(p) => p,
            Err(e) if e.is_again() => return Ok(false),
            Err(e) => {
                return Err(VideoCodecError::Decode {
                    codec: "AV1",
                    reason: e.to_string(),
                });
            }
        };
        if picture.pixel_layout() != dav1d::PixelLayout::I420 || picture.bit_depth() != 8 {
            return Err(VideoCodecError::Unsupported {
                codec: "AV1",
                what: format!(
                    "{:?} at {} bits",
                    picture.pixel_layout(),
                    picture.bit_depth()
                ),
            });
        }
        let (y, u, v) = (
            picture.plane(C::Y),
            picture.plane(C::U),
            picture.plane(C::V),
        );
        let size = (picture.width() as usize, picture.height() as usize);
        copy_planes(
            frame,
            size,
            [
                (&y, picture.stride(C::Y) as usize),
                (&u, picture.stride(C::U) as usize),
                (&v, picture.stride(C::V) as usize),
            ],
        )?;
        Ok(true)
    }
}

/// Copies strided planes into `frame`, resizing it to `width × height`.
fn copy_planes(
    frame: &mut VideoFrame,
    (width, height): (usize, usize),
    planes: [(&[u8], usize); 3],
) -> Result<(), VideoCodecError> {
    let (w, h) = (
        u32::try_from(width).unwrap_or(u32::MAX),
        u32::try_from(height).unwrap_or(u32::MAX),
    );
    frame.resize(w, h)?;
    let (cw, ch) = (
        frame.chroma_width() as usize,
        frame.chroma_height() as usize,
    );
    let (dy, du, dv) = frame.planes_mut();
    for ((dst, (src, stride)), (pw, ph)) in
        [dy, du, dv]
            .into_iter()
            .zip(planes)
            .zip([(width, height), (cw, ch), (cw, ch)])
    {
        if stride < pw || (ph > 0 && src.len() < stride * (ph - 1) + pw) {
            return Err(VideoCodecError::Decode {
                codec: "video",
                reason: "decoder returned a plane shorter than its size".into(),
            });
        }
        for row in 0..ph {
            dst[row * pw..(row + 1) * pw].copy_from_slice(&src[row * stride..row * stride + pw]);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::{FrameRate, TestPatternSource, VideoFormat, VideoSource};

    fn pattern(w: u32, h: u32) -> TestPatternSource {
        TestPatternSource::new(VideoFormat::new(w, h, FrameRate::per_second(30).unwrap()).unwrap())
            .unwrap()
    }

    #[test]
    fn h264_round_trip_keeps_the_frame_numbers() {
        let mut src = pattern(320, 180).with_sender(42);
        let mut enc = H264Encoder::new(H264Config::default()).unwrap();
        let mut dec = H264Decoder::new().unwrap();
        let mut frame = VideoFrame::black(2, 2).unwrap();
        let mut out = VideoFrame::black(2, 2).unwrap();
        let mut numbers = Vec::new();
        for i in 0..30 {
            src.read_frame(&mut frame).unwrap();
            let encoded = enc.encode(&frame).unwrap().expect("a frame");
            assert_eq!(encoded.keyframe, i == 0, "frame {i}");
            if dec.decode(&encoded.data, &mut out).unwrap() {
                numbers.push(TestPatternSource::frame_number(&out));
                assert_eq!(TestPatternSource::sender(&out), Some(42));
            }
        }
        assert_eq!((out.width(), out.height()), (320, 180));
        let expected: Vec<Option<u32>> = (0..30).map(Some).collect();
        assert_eq!(numbers, expected);
    }

    #[test]
    fn keyframes_on_request_and_size_changes() {
        let mut enc = H264Encoder::new(H264Config::default()).unwrap();
        let mut frame = VideoFrame::black(320, 180).unwrap();
        assert!(enc.encode(&frame).unwrap().unwrap().keyframe);
        assert!(!enc.encode(&frame).unwrap().unwrap().keyframe);
        enc.request_keyframe();
        assert!(enc.encode(&frame).unwrap().unwrap().keyframe);
        frame.resize(640, 360).unwrap();
        assert!(enc.encode(&frame).unwrap().unwrap().keyframe);
        frame.resize(321, 180).unwrap();
        assert!(matches!(
            enc.encode(&frame),
            Err(VideoCodecError::Frame { .. })
        ));
    }

    #[test]
    fn picture_size_comes_from_key_frames_only() {
        let mut enc = H264Encoder::new(H264Config::default()).unwrap();
        for (w, h) in [(640, 360), (320, 180), (322, 182)] {
            let mut frame = VideoFrame::black(w, h).unwrap();
            let key = enc.encode(&frame).unwrap().unwrap();
            assert!(key.keyframe);
            assert_eq!(h264_picture_size(&key.data), Some((w, h)));
            frame.fill(crate::video::Yuv::from_rgb(255, 255, 255));
            let delta = enc.encode(&frame).unwrap().unwrap();
            assert_eq!(h264_picture_size(&delta.data), None);
        }
        for garbage in [
            &b""[..],
            b"\0\0\x01",
            b"\0\0\x01\x67",
            b"\0\0\x01\x67\xff\xff\0\0\0",
        ] {
            assert_eq!(h264_picture_size(garbage), None);
        }
    }

    #[test]
    fn h264_garbage_is_an_error_or_nothing() {
        let mut dec = H264Decoder::new().unwrap();
        let mut out = VideoFrame::black(2, 2).unwrap();
        for junk in [&[][..], &[0, 0, 0, 1, 0x65, 1, 2, 3][..], &[0xff; 64][..]] {
            // Either refused or no picture; never a panic.
            let _ = dec.decode(junk, &mut out);
        }
        // And it still decodes a real stream afterwards.
        let mut enc = H264Encoder::new(H264Config::default()).unwrap();
        let mut src = pattern(160, 96);
        let mut frame = VideoFrame::black(2, 2).unwrap();
        src.read_frame(&mut frame).unwrap();
        let encoded = enc.encode(&frame).unwrap().unwrap();
        assert!(dec.decode(&encoded.data, &mut out).unwrap());
        assert_eq!(TestPatternSource::frame_number(&out), Some(0));
    }

    /// dav1d's own 8-bit test vector (MIT, from the dav1d crate): 2 frames, 160x90.
    const AV1_IVF: &[u8] = include_bytes!("../tests/data/test-420-8.ivf");

    fn ivf_packets(file: &[u8]) -> Vec<&[u8]> {
        let mut packets = Vec::new();
        let mut at = 32; // IVF file header
        while at + 12 <= file.len() {
            let len =
                u32::from_le_bytes([file[at], file[at + 1], file[at + 2], file[at + 3]]) as usize;
            at += 12;
            if at + len > file.len() {
                break;
            }
            packets.push(&file[at..at + len]);
            at += len;
        }
        packets
    }

    #[test]
    fn av1_decodes_the_reference_vector() {
        let mut dec = Av1Decoder::new().unwrap();
        let mut out = VideoFrame::black(2, 2).unwrap();
        let mut pictures = 0;
        for packet in ivf_packets(AV1_IVF) {
            if dec.decode(packet, &mut out).unwrap() {
                pictures += 1;
                assert!(out.width() > 0 && out.height() > 0);
            }
        }
        assert!(pictures >= 1, "no picture decoded");
        let mut junk = Av1Decoder::new().unwrap();
        assert!(
            junk.decode(&[0xff; 32], &mut out).is_err()
                || !junk.decode(&[], &mut out).unwrap_or(false)
        );
    }
}
