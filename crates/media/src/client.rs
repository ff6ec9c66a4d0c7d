//! One call's audio on a native client: a str0m `Rtc`, the opus encoder, the jitter
//! buffer. Sans-IO: datagrams and time in, [`Transmit`]s and PCM frames out.
//!
//! The client offers (one `sendrecv` audio section), the server's media plane answers.
//! Sending: each 20 ms frame is measured (RFC 6464 level and a voice-activity decision,
//! sent in the audio-level header extension so the server's mixer can choose speakers
//! without decoding), encoded and written; the RTP timestamp advances by one frame per
//! frame given, sent or not, so DTX gaps and mute show to the receiver as time passing,
//! not as loss. Receiving: packets go through the [`JitterBuffer`], which decodes,
//! conceals and paces frames; [`CallMedia::poll_audio`] hands them out when due.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use std::sync::Arc;
use std::time::Duration;
use str0m::change::{SdpAnswer, SdpPendingOffer};

use str0m::format::Codec;
use str0m::media::{
    Direction, KeyframeRequestKind, MediaKind, MediaTime, Mid, Pt, Rid, Simulcast, SimulcastLayer,
};
use str0m::{Candidate, Event, IceConnectionState, Output, Rtc};

use crate::codec::{Encoder, FRAME_SAMPLES, MAX_PACKET_SIZE, OpusConfig};
use crate::jitter::{AudioPacket, Frame, JitterBuffer, JitterConfig, JitterStats};
use crate::level::{AudioLevel, VadConfig, VoiceActivity};
use crate::rtc::{
    H264_BASELINE, H264_CONSTRAINED_BASELINE, MediaError, Transmit, VIDEO_CLOCK, level_to_ext,
    opus_pt, opus_time, receive_input, rtc_config,
};

/// Received video access units kept for [`CallMedia::poll_video`] at most.
const MAX_QUEUED_VIDEO: usize = 64;

/// Settings of a [`CallMedia`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CallMediaConfig {
    /// The encoder (bitrate, FEC, DTX).
    pub opus: OpusConfig,
    /// The jitter buffer.
    pub jitter: JitterConfig,
    /// The voice-activity decision sent in the audio-level extension.
    pub vad: VadConfig,
    /// Video sections to offer; `None` for an audio-only call.
    pub video: Option<VideoConfig>,
}

/// The video sections a [`CallMedia`] offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct VideoConfig {
    /// Offer a section to send our camera or screen share on (one at a time).
    pub publish: bool,
    /// Receive slots: how many remote videos can arrive at once (native clients 6).
    pub slots: usize,
    /// Simulcast layers to send, lowest first ([`CallMedia::send_video_layer`]); 1 sends
    /// one stream without simulcast. At most [`MAX_SIMULCAST_LAYERS`].
    pub layers: usize,
}

/// The most simulcast layers a client sends (what browsers send too).
pub const MAX_SIMULCAST_LAYERS: usize = 3;

/// The RTP stream ids of simulcast layers, lowest first.
const LAYER_RIDS: [&str; MAX_SIMULCAST_LAYERS] = ["q", "h", "f"];

impl Default for VideoConfig {
    fn default() -> Self {
        Self {
            publish: true,
            slots: 6,
            layers: 1,
        }
    }
}

/// One received video access unit (H.264, Annex B) on a receive slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedVideo {
    /// The slot, an index into [`CallMedia::video_slots`].
    pub slot: usize,
    /// The access unit.
    pub data: Arc<[u8]>,
    /// Whether it is a key frame.
    pub keyframe: bool,
    /// RTP time, 90 kHz.
    pub rtp_time: u64,
    /// Whether packets before it were lost (the decoder may need a key frame).
    pub contiguous: bool,
}

impl CallMediaConfig {
    /// The defaults with these encoder settings.
    #[must_use]
    pub fn with_opus(opus: OpusConfig) -> Self {
        Self {
            opus,
            ..Self::default()
        }
    }
}

/// What a [`CallMedia`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallMediaEvent {
    /// ICE, DTLS and SRTP are up: audio flows from now on.
    Connected,
    /// The path to the media server is gone (ICE disconnected or str0m failed).
    Disconnected {
        /// Why, for logs.
        reason: String,
    },
    /// Someone receiving our video needs a key frame: encode the next frame of this
    /// simulcast layer (0 without simulcast) as one.
    KeyframeRequested {
        /// The layer, lowest 0.
        layer: usize,
    },
}

/// Counters of a [`CallMedia`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct CallMediaStats {
    /// Frames given to [`CallMedia::send_audio`].
    pub frames_in: u64,
    /// RTP packets written (frames that were neither DTX nor suppressed).
    pub packets_sent: u64,
    /// Opus bytes written.
    pub bytes_sent: u64,
    /// Frames not sent because the call was muted, on hold or not yet connected.
    pub frames_suppressed: u64,
    /// Audio packets received.
    pub packets_received: u64,
    /// Opus bytes received.
    pub bytes_received: u64,
    /// Packets dropped on arrival because receiving was off (hold).
    pub packets_dropped: u64,
    /// The jitter buffer's counters and delays.
    pub jitter: JitterStats,
    /// Video frames sent.
    pub video_sent: u64,
    /// Video frames received.
    pub video_received: u64,
}

/// One call's audio on a native client. See the [module docs](self).
pub struct CallMedia {
    rtc: Rtc,
    mid: Mid,
    /// Our video send section, when offered.
    publish: Option<Mid>,
    /// The simulcast layers' stream ids, lowest first (empty without simulcast).
    rids: Vec<Rid>,
    h264_pt: Option<Pt>,
    /// Receive slots, in offer order.
    slots: Vec<Mid>,
    videos: VecDeque<ReceivedVideo>,
    pt: Option<Pt>,
    pending: Option<SdpPendingOffer>,
    encoder: Encoder,
    encode_buf: Vec<u8>,
    jitter: JitterBuffer,
    vad: VoiceActivity,
    /// RTP time of the next frame, in samples.
    next_ts: u64,
    sending: bool,
    video_sending: bool,
    receiving: bool,
    connected: bool,
    alive: bool,
    rtc_timeout: Option<Instant>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<CallMediaEvent>,
    stats: CallMediaStats,
}

impl std::fmt::Debug for CallMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallMedia")
            .field("mid", &self.mid)
            .field("connected", &self.connected)
            .field("sending", &self.sending)
            .field("receiving", &self.receiving)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl CallMedia {
    /// A call's audio whose UDP socket is bound to `local` (a concrete address: it is
    /// the ICE host candidate). Returns the SDP offer to send to the media plane.
    ///
    /// # Errors
    /// [`MediaError::BadCandidate`] for an unspecified or otherwise unusable `local`;
    /// [`MediaError::Codec`] when libopus refuses the settings.
    pub fn new(
        local: SocketAddr,
        config: CallMediaConfig,
        now: Instant,
    ) -> Result<(Self, String), MediaError> {
        if local.ip().is_unspecified() || local.port() == 0 {
            return Err(MediaError::BadCandidate(local));
        }
        let mut rtc = rtc_config().build(now);
        let candidate =
            Candidate::host(local, "udp").map_err(|_| MediaError::BadCandidate(local))?;
        rtc.add_local_candidate(candidate)
            .ok_or(MediaError::BadCandidate(local))?;
        let mut api = rtc.sdp_api();
        let mid = api.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let video = config.video.unwrap_or(VideoConfig {
            publish: false,
            slots: 0,
            layers: 1,
        });
        let layers = video.layers.clamp(1, MAX_SIMULCAST_LAYERS);
        let rids: Vec<Rid> = if video.publish && layers > 1 {
            LAYER_RIDS[..layers].iter().map(|r| Rid::from(*r)).collect()
        } else {
            Vec::new()
        };
        let simulcast = (!rids.is_empty()).then(|| Simulcast {
            send: LAYER_RIDS[..layers]
                .iter()
                .map(|r| SimulcastLayer::new(r))
                .collect(),
            recv: Vec::new(),
        });
        let publish = video
            .publish
            .then(|| api.add_media(MediaKind::Video, Direction::SendOnly, None, None, simulcast));
        let slots: Vec<Mid> = (0..video.slots)
            .map(|_| api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None))
            .collect();
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| MediaError::Negotiation("str0m made no offer".into()))?;
        let media = Self {
            rtc,
            mid,
            publish,
            rids,
            h264_pt: None,
            slots,
            videos: VecDeque::new(),
            pt: None,
            pending: Some(pending),
            encoder: Encoder::new(config.opus)?,
            encode_buf: vec![0; MAX_PACKET_SIZE],
            jitter: JitterBuffer::new(config.jitter)?,
            vad: VoiceActivity::new(config.vad),
            next_ts: 0,
            sending: true,
            video_sending: true,
            receiving: true,
            connected: false,
            alive: true,
            rtc_timeout: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: CallMediaStats::default(),
        };
        Ok((media, offer.to_sdp_string()))
    }

    /// Applies the media plane's SDP answer.
    ///
    /// # Errors
    /// [`MediaError::UnexpectedAnswer`] when no offer is outstanding (a second answer);
    /// [`MediaError::InvalidSdp`] or [`MediaError::Negotiation`] for an answer str0m
    /// cannot use. The offer stays outstanding after a parse error.
    pub fn handle_answer(&mut self, answer_sdp: &str) -> Result<(), MediaError> {
        let answer =
            SdpAnswer::from_sdp_string(answer_sdp).map_err(|e| MediaError::InvalidSdp {
                kind: "answer",
                reason: e.to_string(),
            })?;
        let pending = self.pending.take().ok_or(MediaError::UnexpectedAnswer)?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| MediaError::Negotiation(e.to_string()))?;
        self.drive();
        Ok(())
    }

    /// One received datagram. Returns whether it was this call's (STUN, DTLS, RTP or
    /// RTCP of our peer); anything else is ignored.
    pub fn handle_receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        datagram: &[u8],
    ) -> bool {
        let Some(input) = receive_input(now, source, destination, datagram) else {
            return false;
        };
        if !self.alive || !self.rtc.accepts(&input) {
            return false;
        }
        if let Err(e) = self.rtc.handle_input(input) {
            self.fail(format!("bad input: {e}"));
            return true;
        }
        self.drive();
        true
    }

    /// Lets str0m run its timers (ICE, DTLS retransmits, RTCP).
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.alive {
            return;
        }
        if self.rtc_timeout.is_some_and(|t| t <= now) || self.rtc_timeout.is_none() {
            if let Err(e) = self.rtc.handle_input(str0m::Input::Timeout(now)) {
                self.fail(format!("timeout handling: {e}"));
                return;
            }
            self.drive();
        }
    }

    /// Sends one 20 ms mono frame (960 samples at 48 kHz). Suppressed (not an error)
    /// while not connected, muted or on hold; DTX frames (1-2 bytes of "nothing to
    /// send") are not transmitted.
    ///
    /// # Errors
    /// [`MediaError::FrameSize`] for a frame of the wrong length; [`MediaError::Codec`]
    /// when the encoder fails.
    pub fn send_audio(&mut self, pcm: &[i16], now: Instant) -> Result<(), MediaError> {
        let expected = FRAME_SAMPLES * self.encoder.config().channels.count();
        if pcm.len() != expected {
            return Err(MediaError::FrameSize {
                expected,
                got: pcm.len(),
            });
        }
        self.stats.frames_in += 1;
        let ts = self.next_ts;
        self.next_ts += FRAME_SAMPLES as u64;
        if !(self.connected && self.sending && self.alive) {
            self.stats.frames_suppressed += 1;
            return Ok(());
        }
        let level = AudioLevel::from_pcm(pcm);
        let voice = self.vad.handle_frame(level);
        let len = self.encoder.encode(pcm, &mut self.encode_buf)?;
        if len <= 2 {
            // DTX: the decoder's comfort noise covers the gap.
            return Ok(());
        }
        let Some(pt) = self.pt.or_else(|| opus_pt(&mut self.rtc, self.mid)) else {
            self.stats.frames_suppressed += 1;
            return Ok(());
        };
        self.pt = Some(pt);
        let Some(writer) = self.rtc.writer(self.mid) else {
            self.stats.frames_suppressed += 1;
            return Ok(());
        };
        let data = self.encode_buf[..len].to_vec();
        writer
            .audio_level(level_to_ext(level.minus_dbov()), voice)
            .write(pt, now, opus_time(ts), data)
            .map_err(|e| MediaError::Negotiation(e.to_string()))?;
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += len as u64;
        self.drive();
        Ok(())
    }

    /// Sends one encoded video access unit (H.264 Annex B) captured `capture` after
    /// the stream started. Dropped (not an error) while not connected or not sending.
    /// With simulcast this is the lowest layer.
    ///
    /// # Errors
    /// [`MediaError::Negotiation`] when no video send section was negotiated.
    pub fn send_video(
        &mut self,
        data: &[u8],
        capture: Duration,
        now: Instant,
    ) -> Result<(), MediaError> {
        self.send_video_layer(0, data, capture, now)
    }

    /// As [`Self::send_video`], on one simulcast layer (0 the lowest). Each layer is its
    /// own encoding of the same pictures, at its own size and bitrate; the server
    /// forwards one of them to each subscriber.
    ///
    /// # Errors
    /// [`MediaError::Negotiation`] when no video send section was negotiated or the
    /// layer was not offered.
    pub fn send_video_layer(
        &mut self,
        layer: usize,
        data: &[u8],
        capture: Duration,
        now: Instant,
    ) -> Result<(), MediaError> {
        let rid = match (self.rids.is_empty(), self.rids.get(layer)) {
            (true, _) if layer == 0 => None,
            (false, Some(rid)) => Some(*rid),
            _ => {
                return Err(MediaError::Negotiation(format!(
                    "simulcast layer {layer} was not offered"
                )));
            }
        };
        let Some(mid) = self.publish else {
            return Err(MediaError::Negotiation(
                "no video section to send on".into(),
            ));
        };
        if !(self.connected && self.video_sending && self.alive) {
            return Ok(());
        }
        let pt = match self.h264_pt {
            Some(pt) => pt,
            None => {
                let Some(writer) = self.rtc.writer(mid) else {
                    return Ok(());
                };
                // packetization-mode 1 (FU-A): access units larger than one packet.
                // Constrained Baseline first: OpenH264 encodes it, and every browser
                // offers it (Chromium does not offer str0m's High profile entry, and a
                // PT the far end lacks is decoded as whatever codec it has there).
                let pt = writer
                    .payload_params()
                    .filter(|p| p.spec().codec == Codec::H264)
                    .min_by_key(|p| {
                        let format = p.spec().format;
                        let baseline = match format.profile_level_id {
                            Some(H264_CONSTRAINED_BASELINE) => 0,
                            Some(H264_BASELINE) => 1,
                            _ => 2,
                        };
                        (format.packetization_mode != Some(1), baseline)
                    })
                    .map(|p| p.pt());
                let Some(pt) = pt else {
                    return Err(MediaError::Negotiation("H.264 was not negotiated".into()));
                };
                self.h264_pt = Some(pt);
                pt
            }
        };
        let Some(writer) = self.rtc.writer(mid) else {
            return Ok(());
        };
        let writer = match rid {
            Some(rid) => writer.rid(rid),
            None => writer,
        };
        let ticks = (capture.as_secs_f64() * f64::from(VIDEO_CLOCK.get())) as u64;
        writer
            .write(pt, now, MediaTime::new(ticks, VIDEO_CLOCK), data.to_vec())
            .map_err(|e| MediaError::Negotiation(e.to_string()))?;
        self.stats.video_sent += 1;
        self.drive();
        Ok(())
    }

    /// Whether video is sent: off while the camera is off or the call is on hold.
    pub fn set_video_sending(&mut self, sending: bool) {
        self.video_sending = sending;
    }

    /// The receive slots' `a=mid` values, in slot order (the server names slots by mid
    /// when it says which participant each one shows).
    pub fn video_slots(&self) -> Vec<String> {
        self.slots.iter().map(|m| m.to_string()).collect()
    }

    /// The next received video access unit.
    pub fn poll_video(&mut self) -> Option<ReceivedVideo> {
        self.videos.pop_front()
    }

    /// Asks the sender of a slot's video for a key frame (our decoder lost it).
    pub fn request_keyframe(&mut self, slot: usize) {
        let Some(&mid) = self.slots.get(slot) else {
            return;
        };
        if let Some(mut writer) = self.rtc.writer(mid) {
            // Fails only while nothing was received on the slot yet: nothing to fix.
            let _ = writer.request_keyframe(None, KeyframeRequestKind::Pli);
        }
        self.drive();
    }

    /// Whether frames are sent: off while muted or on hold.
    pub fn set_sending(&mut self, sending: bool) {
        self.sending = sending;
    }

    /// Whether received audio plays: off while on hold (arriving packets are dropped
    /// and the jitter buffer plays silence or concealment until it runs dry).
    pub fn set_receiving(&mut self, receiving: bool) {
        self.receiving = receiving;
    }

    /// The next 20 ms of received audio, if one is due at `now`. Call until `None`.
    pub fn poll_audio(&mut self, now: Instant) -> Option<Frame> {
        self.jitter.poll_frame(now)
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<CallMediaEvent> {
        self.events.pop_front()
    }

    /// When to call [`Self::handle_timeout`] or [`Self::poll_audio`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let rtc = self.rtc_timeout.filter(|_| self.alive);
        match (rtc, self.jitter.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether ICE, DTLS and SRTP are up.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Counters.
    pub fn stats(&self) -> CallMediaStats {
        CallMediaStats {
            jitter: self.jitter.stats(),
            ..self.stats
        }
    }

    /// Drains str0m after an input: datagrams out, events handled, next timeout kept.
    fn drive(&mut self) {
        while self.alive {
            match self.rtc.poll_output() {
                Ok(Output::Transmit(t)) => self.transmits.push_back(t.into()),
                Ok(Output::Timeout(t)) => {
                    self.rtc_timeout = Some(t);
                    break;
                }
                Ok(Output::Event(event)) => self.handle_event(event),
                Err(e) => self.fail(format!("str0m: {e}")),
            }
        }
    }

    fn handle_event(&mut self, event: Event) {
        match event {
            Event::Connected => {
                self.connected = true;
                self.events.push_back(CallMediaEvent::Connected);
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.fail("ICE disconnected".into());
            }
            Event::KeyframeRequest(req) if Some(req.mid) == self.publish => {
                let layer = req
                    .rid
                    .and_then(|rid| self.rids.iter().position(|r| *r == rid))
                    .unwrap_or(0);
                self.events
                    .push_back(CallMediaEvent::KeyframeRequested { layer });
            }
            Event::MediaData(data) if data.mid != self.mid => {
                let Some(slot) = self.slots.iter().position(|m| *m == data.mid) else {
                    return;
                };
                if !self.receiving {
                    return;
                }
                self.stats.video_received += 1;
                self.videos.push_back(ReceivedVideo {
                    slot,
                    keyframe: data.is_keyframe(),
                    rtp_time: data.time.numer(),
                    contiguous: data.contiguous,
                    data: data.data,
                });
                // A consumer that stopped polling must not grow this without bound.
                while self.videos.len() > MAX_QUEUED_VIDEO {
                    self.videos.pop_front();
                }
            }
            Event::MediaData(data) if data.mid == self.mid => {
                if !self.receiving {
                    self.stats.packets_dropped += 1;
                    return;
                }
                self.stats.packets_received += 1;
                self.stats.bytes_received += data.data.len() as u64;
                let packet = AudioPacket {
                    // The RTP fields on the wire: str0m extends both to 64 bits.
                    seq: **data.seq_range.start() as u16,
                    timestamp: data.time.numer() as u32,
                    payload: data.data.to_vec(),
                    marker: false,
                };
                self.jitter.handle_packet(packet, data.network_time);
            }
            _ => {}
        }
    }

    fn fail(&mut self, reason: String) {
        if !self.alive {
            return;
        }
        tracing::debug!(%reason, "call media disconnected");
        self.alive = false;
        self.connected = false;
        self.rtc.disconnect();
        self.events
            .push_back(CallMediaEvent::Disconnected { reason });
    }
}
