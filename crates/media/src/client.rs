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

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::{Candidate, Event, IceConnectionState, Output, Rtc};

use crate::codec::{Encoder, FRAME_SAMPLES, MAX_PACKET_SIZE, OpusConfig};
use crate::jitter::{AudioPacket, Frame, JitterBuffer, JitterConfig, JitterStats};
use crate::level::{AudioLevel, VadConfig, VoiceActivity};
use crate::rtc::{
    MediaError, Transmit, level_to_ext, opus_pt, opus_time, receive_input, rtc_config,
};

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
}

/// One call's audio on a native client. See the [module docs](self).
pub struct CallMedia {
    rtc: Rtc,
    mid: Mid,
    pt: Option<Pt>,
    pending: Option<SdpPendingOffer>,
    encoder: Encoder,
    encode_buf: Vec<u8>,
    jitter: JitterBuffer,
    vad: VoiceActivity,
    /// RTP time of the next frame, in samples.
    next_ts: u64,
    sending: bool,
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
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| MediaError::Negotiation("str0m made no offer".into()))?;
        let media = Self {
            rtc,
            mid,
            pt: None,
            pending: Some(pending),
            encoder: Encoder::new(config.opus)?,
            encode_buf: vec![0; MAX_PACKET_SIZE],
            jitter: JitterBuffer::new(config.jitter)?,
            vad: VoiceActivity::new(config.vad),
            next_ts: 0,
            sending: true,
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
