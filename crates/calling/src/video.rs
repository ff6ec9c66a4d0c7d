//! A call's video on the native client, run inside the call's media task (see
//! [`crate::media`]): one outgoing stream (a camera or a screen share, one at a time,
//! as the seed's streaming table says) and the remote streams the media plane routes
//! into our receive slots.
//!
//! Sending: the task reads the [`VideoSource`] at its frame rate, encodes with
//! OpenH264 and hands each access unit to the engine. A new source (a camera switch, a
//! screen share) goes on the same send section without renegotiation; its first frame
//! is a key frame, and so is the next one after a subscriber asks (PLI).
//!
//! Receiving: the server says which participant each receive slot shows
//! ([`Event::VideoSlotsChanged`](ringwire_signaling::Event::VideoSlotsChanged)). A slot
//! that starts showing someone gets a fresh decoder and a sink from the app's
//! [`VideoRenderer`]; a slot that goes idle or shows someone else finishes its sink.
//! A slot decodes from a key frame on; after loss or a decode error it drops frames
//! and asks for a key frame again.

use std::fmt;
use std::time::Duration;

use ringwire_media::client::{CallMedia, CallMediaEvent, ReceivedVideo};
use ringwire_media::video::{VideoFrame, VideoRead, VideoSink, VideoSource};
use ringwire_media::video_codec::{H264Config, H264Decoder, H264Encoder};
use ringwire_signaling::{Identifier, VideoKind, VideoSlot};
use tokio::time::Instant;

use crate::driver::now;

/// How often one slot may ask for a key frame: the publisher's encoder needs a few
/// frames to deliver one, and the server throttles too.
const KEYFRAME_RETRY: Duration = Duration::from_millis(300);

/// How far capture may fall behind its frame ticks before the lost time is skipped.
const MAX_CAPTURE_LAG: u32 = 3;

/// The video part of [`AudioOptions`](crate::AudioOptions): which video sections to
/// offer, how to encode, and where remote streams go.
#[non_exhaustive]
pub struct VideoOptions {
    /// Offer a send section, so [`SignalingClient::start_video`] can be used later
    /// (default `true`).
    ///
    /// [`SignalingClient::start_video`]: crate::SignalingClient::start_video
    pub publish: bool,
    /// Receive slots: at most this many remote videos at once (default 6, the native
    /// limit; the server may give fewer).
    pub slots: usize,
    /// Encoder settings for what we send. The frame rate is taken from the source.
    pub encoder: H264Config,
    /// Makes a sink for each remote stream; `None` decodes nothing (frames are still
    /// counted as received).
    pub renderer: Option<Box<dyn VideoRenderer>>,
}

/// Makes the sink a remote video stream is drawn into.
pub trait VideoRenderer: Send {
    /// A sink for `stream`, called when a receive slot starts showing it. The sink is
    /// finished when the slot stops showing it.
    fn open(&mut self, stream: &RemoteVideo) -> Box<dyn VideoSink>;
}

impl<F> VideoRenderer for F
where
    F: FnMut(&RemoteVideo) -> Box<dyn VideoSink> + Send,
{
    fn open(&mut self, stream: &RemoteVideo) -> Box<dyn VideoSink> {
        self(stream)
    }
}

/// A remote video stream as a receive slot shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteVideo {
    /// Whose video.
    pub participant: Identifier,
    /// Camera or screen share.
    pub kind: VideoKind,
    /// The receive slot (an index into the slots offered).
    pub slot: usize,
}

/// Counters of a call's video.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VideoStats {
    /// Pictures read from the source.
    pub frames_captured: u64,
    /// Access units encoded and handed to the engine.
    pub frames_sent: u64,
    /// Of those, key frames.
    pub keyframes_sent: u64,
    /// Access units received on any slot.
    pub frames_received: u64,
    /// Pictures decoded and written to a sink.
    pub frames_decoded: u64,
    /// Access units dropped while a slot waited for a key frame.
    pub frames_dropped: u64,
    /// Access units the decoder refused.
    pub decode_errors: u64,
    /// Key frames we asked for.
    pub keyframes_requested: u64,
}

/// What the driver tells a task about video.
pub(crate) enum VideoInput {
    /// Send from this source from now on; `None` stops sending.
    Source(Option<Box<dyn VideoSource>>),
    /// What each receive slot shows now.
    Slots(Vec<VideoSlot>),
}

/// The outgoing stream.
struct Sender {
    config: H264Config,
    encoder: Option<H264Encoder>,
    source: Option<Box<dyn VideoSource>>,
    frame: VideoFrame,
    /// When the next picture is read; `None` without a source.
    next_capture: Option<Instant>,
    interval: Duration,
    /// The stream's clock origin: RTP time stays continuous across source switches.
    origin: Option<Instant>,
}

/// The remote streams.
struct Receiver {
    renderer: Option<Box<dyn VideoRenderer>>,
    /// The engine's slot mids, in slot order.
    mids: Vec<String>,
    slots: Vec<Option<OpenSlot>>,
    frame: VideoFrame,
}

/// A receive slot that shows someone.
struct OpenSlot {
    stream: RemoteVideo,
    decoder: Option<H264Decoder>,
    sink: Option<Box<dyn VideoSink>>,
    /// Frames are dropped until a key frame arrives.
    needs_keyframe: bool,
    last_request: Option<Instant>,
    sink_failed: bool,
}

/// A call's video: the outgoing stream and the receive slots.
pub(crate) struct CallVideo {
    sender: Sender,
    receiver: Receiver,
    stats: VideoStats,
}

impl VideoOptions {
    /// Native defaults: a send section, 6 receive slots, default encoder, no renderer.
    pub fn new() -> Self {
        VideoOptions {
            publish: true,
            slots: 6,
            encoder: H264Config::default(),
            renderer: None,
        }
    }

    /// These options drawing remote streams with `renderer`.
    #[must_use]
    pub fn with_renderer(mut self, renderer: impl VideoRenderer + 'static) -> Self {
        self.renderer = Some(Box::new(renderer));
        self
    }

    /// These options with `slots` receive slots.
    #[must_use]
    pub fn with_slots(mut self, slots: usize) -> Self {
        self.slots = slots;
        self
    }
}

impl Default for VideoOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for VideoOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VideoOptions")
            .field("publish", &self.publish)
            .field("slots", &self.slots)
            .field("encoder", &self.encoder)
            .field("renderer", &self.renderer.is_some())
            .finish()
    }
}

impl fmt::Debug for VideoInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VideoInput::Source(source) => f
                .debug_tuple("Source")
                .field(&source.as_ref().map(|s| s.name()))
                .finish(),
            VideoInput::Slots(slots) => f.debug_tuple("Slots").field(slots).finish(),
        }
    }
}

impl CallVideo {
    /// Video for a task whose engine offered `media.video_slots()`.
    pub(crate) fn new(options: VideoOptions, media: &CallMedia) -> Self {
        let mids = media.video_slots();
        CallVideo {
            sender: Sender {
                config: options.encoder,
                encoder: None,
                source: None,
                frame: VideoFrame::default(),
                next_capture: None,
                interval: Duration::from_millis(33),
                origin: None,
            },
            receiver: Receiver {
                renderer: options.renderer,
                slots: mids.iter().map(|_| None).collect(),
                mids,
                frame: VideoFrame::default(),
            },
            stats: VideoStats::default(),
        }
    }

    /// The counters.
    pub(crate) fn stats(&self) -> VideoStats {
        self.stats
    }

    /// Whether a source is set (what the engine may send, hold permitting).
    pub(crate) fn has_source(&self) -> bool {
        self.sender.source.is_some()
    }

    /// When the next picture is due.
    pub(crate) fn next_capture(&self) -> Option<Instant> {
        self.sender.next_capture
    }

    /// Applies one input from the driver.
    pub(crate) fn handle_input(&mut self, input: VideoInput, media: &mut CallMedia) {
        match input {
            VideoInput::Source(source) => self.set_source(source),
            VideoInput::Slots(slots) => self.set_slots(&slots, media),
        }
    }

    fn set_source(&mut self, source: Option<Box<dyn VideoSource>>) {
        let sender = &mut self.sender;
        match &source {
            Some(source) => {
                let format = source.format();
                tracing::debug!(source = source.name(), ?format, "video source");
                sender.interval = format
                    .frame_rate
                    .frame_interval()
                    .max(Duration::from_millis(5));
                let at = Instant::now();
                sender.next_capture = Some(at);
                sender.origin.get_or_insert(at);
                // The first picture of a new source is a key frame, so receivers see
                // it at once rather than at the next periodic one.
                if let Some(encoder) = &mut sender.encoder {
                    encoder.request_keyframe();
                }
            }
            None => {
                tracing::debug!("video source removed");
                sender.next_capture = None;
            }
        }
        sender.source = source;
    }

    /// Opens, closes and reassigns slots to match what the server says they show.
    fn set_slots(&mut self, slots: &[VideoSlot], media: &mut CallMedia) {
        let receiver = &mut self.receiver;
        for (index, mid) in receiver.mids.iter().enumerate() {
            let shown = slots
                .iter()
                .find(|s| &s.mid == mid)
                .and_then(|s| Some((s.participant.clone()?, s.kind?)));
            let Some(current) = receiver.slots.get_mut(index) else {
                continue;
            };
            let same = match (&*current, &shown) {
                (Some(open), Some((who, kind))) => {
                    open.stream.participant == *who && open.stream.kind == *kind
                }
                (None, None) => true,
                _ => false,
            };
            if same {
                continue;
            }
            if let Some(mut old) = current.take() {
                old.close();
            }
            if let Some((participant, kind)) = shown {
                let stream = RemoteVideo {
                    participant,
                    kind,
                    slot: index,
                };
                tracing::debug!(?stream, "video slot opened");
                let decoder = match H264Decoder::new() {
                    Ok(decoder) => Some(decoder),
                    Err(error) => {
                        tracing::warn!(%error, "no H.264 decoder; the slot's video is dropped");
                        None
                    }
                };
                let sink = receiver.renderer.as_mut().map(|r| r.open(&stream));
                let mut open = OpenSlot {
                    stream,
                    decoder,
                    sink,
                    needs_keyframe: true,
                    last_request: None,
                    sink_failed: false,
                };
                // The server asks the publisher for a key frame when a slot starts;
                // asking too covers a key frame that raced the slot assignment.
                open.request_keyframe(index, media, &mut self.stats);
                *current = Some(open);
            }
        }
    }

    /// Handles an engine event that concerns video; `true` when it did.
    pub(crate) fn handle_event(&mut self, event: &CallMediaEvent) -> bool {
        // One layer: ours sends no simulcast.
        if let CallMediaEvent::KeyframeRequested { .. } = event {
            if let Some(encoder) = &mut self.sender.encoder {
                encoder.request_keyframe();
            }
            return true;
        }
        false
    }

    /// Reads, encodes and sends the next picture if one is due at `at`.
    pub(crate) fn capture(&mut self, at: Instant, media: &mut CallMedia) {
        let sender = &mut self.sender;
        let (Some(due), Some(source)) = (sender.next_capture, sender.source.as_mut()) else {
            return;
        };
        if at < due {
            return;
        }
        let mut next = due + sender.interval;
        if at > next + sender.interval * MAX_CAPTURE_LAG {
            tracing::debug!(lag = ?(at - due), "video capture fell behind, skipping");
            next = at + sender.interval;
        }
        sender.next_capture = Some(next);
        match source.read_frame(&mut sender.frame) {
            Ok(VideoRead::Frame) => {}
            // The previous picture again keeps the stream (and its rate) going.
            Ok(VideoRead::Pending) if sender.frame.width() > 0 => {}
            Ok(VideoRead::Pending) => return,
            Ok(VideoRead::Ended) => {
                tracing::debug!(source = source.name(), "video source ended");
                sender.next_capture = None;
                return;
            }
            Err(error) => {
                tracing::debug!(%error, source = source.name(), "video source failed");
                return;
            }
        }
        self.stats.frames_captured += 1;
        let encoder = match &mut sender.encoder {
            Some(encoder) => encoder,
            None => {
                let mut config = sender.config;
                config.frame_rate = source.format().frame_rate.as_f64() as f32;
                match H264Encoder::new(config) {
                    Ok(encoder) => sender.encoder.insert(encoder),
                    Err(error) => {
                        tracing::warn!(%error, "no H.264 encoder; video is not sent");
                        sender.next_capture = None;
                        return;
                    }
                }
            }
        };
        let encoded = match encoder.encode(&sender.frame) {
            Ok(Some(encoded)) => encoded,
            Ok(None) => return,
            Err(error) => {
                tracing::debug!(%error, "frame not encoded");
                return;
            }
        };
        let capture = at - sender.origin.unwrap_or(at);
        match media.send_video(&encoded.data, capture, now()) {
            Ok(()) => {
                self.stats.frames_sent += 1;
                self.stats.keyframes_sent += u64::from(encoded.keyframe);
            }
            Err(error) => tracing::debug!(%error, "video frame not sent"),
        }
    }

    /// Decodes one received access unit into its slot's sink.
    pub(crate) fn receive(&mut self, video: ReceivedVideo, media: &mut CallMedia) {
        self.stats.frames_received += 1;
        let receiver = &mut self.receiver;
        let Some(Some(open)) = receiver.slots.get_mut(video.slot) else {
            // An idle slot (the server's slot message is on its way): nobody to show.
            self.stats.frames_dropped += 1;
            return;
        };
        if !video.contiguous && !video.keyframe {
            open.needs_keyframe = true;
        }
        if open.needs_keyframe && !video.keyframe {
            self.stats.frames_dropped += 1;
            open.request_keyframe(video.slot, media, &mut self.stats);
            return;
        }
        let Some(decoder) = &mut open.decoder else {
            self.stats.frames_dropped += 1;
            return;
        };
        match decoder.decode(&video.data, &mut receiver.frame) {
            Ok(true) => {
                open.needs_keyframe = false;
                self.stats.frames_decoded += 1;
                open.write(&receiver.frame);
            }
            // Parameter sets alone: nothing to show yet.
            Ok(false) => open.needs_keyframe = false,
            Err(error) => {
                tracing::debug!(%error, slot = video.slot, "video not decoded");
                self.stats.decode_errors += 1;
                open.needs_keyframe = true;
                open.request_keyframe(video.slot, media, &mut self.stats);
            }
        }
    }

    /// Finishes every sink (the call's media ends).
    pub(crate) fn finish(&mut self) {
        for slot in &mut self.receiver.slots {
            if let Some(mut open) = slot.take() {
                open.close();
            }
        }
    }
}

impl OpenSlot {
    fn request_keyframe(&mut self, slot: usize, media: &mut CallMedia, stats: &mut VideoStats) {
        let at = Instant::now();
        if self
            .last_request
            .is_some_and(|last| at.duration_since(last) < KEYFRAME_RETRY)
        {
            return;
        }
        self.last_request = Some(at);
        stats.keyframes_requested += 1;
        media.request_keyframe(slot);
    }

    fn write(&mut self, frame: &VideoFrame) {
        let Some(sink) = &mut self.sink else {
            return;
        };
        match sink.write_frame(frame) {
            Ok(()) => self.sink_failed = false,
            Err(error) => {
                if !self.sink_failed {
                    tracing::debug!(%error, sink = sink.name(), "video sink failed");
                }
                self.sink_failed = true;
            }
        }
    }

    fn close(&mut self) {
        tracing::debug!(stream = ?self.stream, "video slot closed");
        if let Some(mut sink) = self.sink.take()
            && let Err(error) = sink.finish()
        {
            tracing::debug!(%error, sink = sink.name(), "video sink did not finish cleanly");
        }
    }
}
