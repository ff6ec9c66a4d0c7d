//! One phone leg's media, sans-IO: RTP/AVP towards the trunk and 20 ms opus frames
//! towards the media plane's local participant.
//!
//! - Phone -> call: RTP is accepted only from the signalled IP address; the first
//!   packet latches the leg to its exact source address, which is where we send from
//!   then on (symmetric RTP, RFC 4961). G.711 is decoded, cut into 20 ms frames on the
//!   sender's timestamps and opus-encoded as they are (a narrowband encoder: 8 kHz
//!   audio needs no upsampling, and opus would band-limit it again anyway);
//!   each frame comes out of [`PhoneMedia::poll_audio`] with a sequence number and
//!   48 kHz RTP time derived from the sender's timestamp, so gaps and reordering stay
//!   visible to the media plane's jitter buffer. RFC 4733 events become
//!   [`PhoneMediaEvent::Dtmf`], once per event.
//! - Call -> phone: [`PhoneMedia::handle_call_audio`] takes one opus packet of the
//!   call's mix, decodes it straight to 8 kHz and sends one G.711 RTP packet.
//! - [`PhoneMedia::send_dtmf`] sends a key as RFC 4733 events (100 ms, three end packets).
//! - No RTP for `media_timeout` after the remote is known: [`PhoneMediaEvent::TimedOut`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringwire_media::codec::{Channels, Decoder, Encoder, OpusConfig};
use ringwire_media::level::AudioLevel;

use crate::error::{Error, Malformed};
use crate::g711::G711;
use crate::rtp::{DtmfDigit, RtpHeader, RtpPacket, TelephoneEvent};

/// Samples in 20 ms at 8 kHz.
const FRAME_8K: usize = 160;
/// How long a DTMF key we send lasts, in 8 kHz units (100 ms).
const DTMF_DURATION: u16 = 800;
/// The packet interval of DTMF we send.
const DTMF_INTERVAL: Duration = Duration::from_millis(20);

/// Settings for one leg.
#[derive(Debug, Clone, Copy)]
pub struct PhoneMediaConfig {
    /// Our RTP address (the socket the driver bound in the port range).
    pub local: SocketAddr,
    /// No RTP for this long: [`PhoneMediaEvent::TimedOut`].
    pub media_timeout: Duration,
    /// Our SSRC (from the driver's seeded RNG).
    pub ssrc: u32,
}

/// The opus settings a leg encodes the phone's audio with.
///
/// - No DTX: phone audio never pauses (G.711 has none), and a steady tone must not
///   be taken for background noise and thinned out.
/// - Complexity 1, not the default 5: on G.711 speech (espeak-ng through PCMU, 32
///   kbit/s) the decoded waveform's SNR against the input was 11.7 dB at 1, 11.8 dB
///   at 5 and 7, 12.0 dB at 0, while the encode cost 47, 113 and 138 µs per 20 ms
///   frame. Above complexity 1 SILK's delayed-decision quantizer runs with two
///   states, which libopus computes in plain C on x86 (its AVX2 version only takes
///   three or four: its authors saw it regress with fewer on some AMD Zen CPUs).
///   Encoding every phone leg was most of a gateway's CPU.
fn phone_opus() -> OpusConfig {
    OpusConfig {
        dtx: false,
        complexity: 1,
        ..OpusConfig::default()
    }
}

/// What the far end signalled in its SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteMedia {
    /// Its RTP address (`c=` and `m=` port).
    pub address: SocketAddr,
    /// The G.711 law both sides agreed on.
    pub codec: G711,
    /// Its telephone-event payload type, if it offered one.
    pub dtmf_payload_type: Option<u8>,
}

/// A datagram to send from the leg's socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub destination: SocketAddr,
    /// The RTP packet.
    pub contents: Vec<u8>,
}

/// One 20 ms opus frame of the phone's voice, for `MediaServer::send_local_audio`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallAudio {
    /// Frame number (consecutive frames differ by one; gaps show lost frames).
    pub seq: u64,
    /// RTP time at 48 kHz.
    pub rtp_time: u64,
    /// Audio level, -dBov (0 loud .. 127 silent).
    pub level: u8,
    /// The opus packet.
    pub packet: Vec<u8>,
}

/// What happened on the leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneMediaEvent {
    /// The phone pressed a key (RFC 4733), reported once per event.
    Dtmf(DtmfDigit),
    /// No RTP arrived for the media timeout.
    TimedOut,
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhoneMediaStats {
    /// RTP packets accepted from the phone.
    pub packets_received: u64,
    /// RTP packets sent to the phone (audio and DTMF).
    pub packets_sent: u64,
    /// Datagrams dropped: wrong source, malformed, unknown payload type, late.
    pub packets_dropped: u64,
}

struct DtmfSending {
    digit: DtmfDigit,
    timestamp: u32,
    duration: u16,
    ends_sent: u8,
    next_at: Instant,
}

/// One phone leg's media. See the [module docs](self).
pub struct PhoneMedia {
    config: PhoneMediaConfig,
    remote: Option<RemoteMedia>,
    latched: Option<SocketAddr>,
    last_received: Option<Instant>,
    timed_out: bool,
    // Phone -> call.
    rx_ssrc: Option<u32>,
    /// Extended (64-bit) timestamp of the first sample in `pcm_in`.
    rx_frame_start: u64,
    rx_last_ts32: u32,
    rx_last_ext: u64,
    pcm_in: Vec<i16>,
    encoder: Encoder,
    last_dtmf_ts: Option<u32>,
    // Call -> phone.
    decoder: Decoder,
    /// The decoded call audio, reused for every packet: room for the longest packet
    /// opus allows (120 ms), though the mix sends 20 ms.
    pcm_out: Vec<i16>,
    tx_seq: u16,
    tx_ts: u32,
    tx_marker: bool,
    dtmf_queue: VecDeque<DtmfDigit>,
    dtmf: Option<DtmfSending>,
    // Outputs.
    transmits: VecDeque<Transmit>,
    audio: VecDeque<CallAudio>,
    events: VecDeque<PhoneMediaEvent>,
    stats: PhoneMediaStats,
}

impl std::fmt::Debug for PhoneMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhoneMedia")
            .field("local", &self.config.local)
            .field("remote", &self.remote)
            .field("latched", &self.latched)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl PhoneMedia {
    /// A leg that knows no remote yet (before the SDP answer).
    ///
    /// # Errors
    /// [`Error::Codec`] when opus cannot be set up.
    pub fn new(config: PhoneMediaConfig) -> Result<Self, Error> {
        Ok(PhoneMedia {
            encoder: Encoder::narrowband(phone_opus())?,
            decoder: Decoder::narrowband(Channels::Mono)?,
            pcm_out: vec![0; FRAME_8K * 6],
            config,
            remote: None,
            latched: None,
            last_received: None,
            timed_out: false,
            rx_ssrc: None,
            rx_frame_start: 0,
            rx_last_ts32: 0,
            rx_last_ext: 0,
            pcm_in: Vec::with_capacity(FRAME_8K * 2),
            last_dtmf_ts: None,
            // Random initial sequence and timestamp (RFC 3550 §5.1), from the seeded ssrc.
            tx_seq: (config.ssrc >> 16) as u16,
            tx_ts: config.ssrc.rotate_left(7),
            tx_marker: true,
            dtmf_queue: VecDeque::new(),
            dtmf: None,
            transmits: VecDeque::new(),
            audio: VecDeque::new(),
            events: VecDeque::new(),
            stats: PhoneMediaStats::default(),
        })
    }

    /// The far end's media from its SDP; the media timeout runs from here.
    pub fn set_remote(&mut self, remote: RemoteMedia, now: Instant) {
        if self.remote.is_some_and(|r| r.address != remote.address) {
            self.latched = None;
        }
        self.remote = Some(remote);
        self.last_received.get_or_insert(now);
    }

    /// Our RTP address.
    #[must_use]
    pub fn local(&self) -> SocketAddr {
        self.config.local
    }

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> PhoneMediaStats {
        self.stats
    }

    /// A datagram arrived on the leg's socket. Returns whether it was accepted.
    ///
    /// # Errors
    /// [`Malformed`] when a datagram from the signalled address is not RTP; the
    /// caller counts it and goes on.
    pub fn handle_receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        datagram: &[u8],
    ) -> Result<bool, Malformed> {
        let Some(remote) = self.remote else {
            self.stats.packets_dropped += 1;
            return Ok(false);
        };
        // RTP only from the signalled address; the port may differ behind NAT.
        if source.ip() != remote.address.ip()
            || self.latched.is_some_and(|latched| latched != source)
        {
            self.stats.packets_dropped += 1;
            return Ok(false);
        }
        let packet = match RtpPacket::parse(datagram) {
            Ok(p) => p,
            Err(e) => {
                self.stats.packets_dropped += 1;
                return Err(e);
            }
        };
        self.latched = Some(source);
        self.last_received = Some(now);
        let h = packet.header;
        if Some(h.payload_type) == remote.dtmf_payload_type {
            self.stats.packets_received += 1;
            let event = TelephoneEvent::parse(packet.payload)?;
            // RFC 4733 §2.5.1.3: one event keeps its timestamp over all its packets.
            if self.last_dtmf_ts != Some(h.timestamp) {
                self.last_dtmf_ts = Some(h.timestamp);
                if let Some(digit) = DtmfDigit::from_code(event.event) {
                    self.events.push_back(PhoneMediaEvent::Dtmf(digit));
                }
            }
            return Ok(true);
        }
        let Some(codec) = G711::from_payload_type(h.payload_type) else {
            self.stats.packets_dropped += 1;
            return Ok(false);
        };
        let len = packet.payload.len() as u64;
        let ts = match self.rx_ssrc {
            // A new source restarts the timeline (offset so extension never underflows).
            Some(ssrc) if ssrc == h.ssrc => {
                // Extend the 32-bit timestamp around the last one seen (RFC 3550 A.1).
                let delta = i64::from(h.timestamp.wrapping_sub(self.rx_last_ts32) as i32);
                let Some(ext) = self.rx_last_ext.checked_add_signed(delta) else {
                    self.stats.packets_dropped += 1;
                    return Ok(false);
                };
                let expected = self.rx_frame_start + self.pcm_in.len() as u64;
                if ext + len <= expected {
                    // Late or duplicate: its frame is gone already.
                    self.stats.packets_dropped += 1;
                    return Ok(false);
                }
                if ext != expected {
                    // A gap or an overlap: drop the partial frame, restart here.
                    self.pcm_in.clear();
                    self.rx_frame_start = ext;
                }
                ext
            }
            _ => {
                self.rx_ssrc = Some(h.ssrc);
                self.pcm_in.clear();
                let ext = u64::from(h.timestamp) + (1 << 32);
                self.rx_frame_start = ext;
                ext
            }
        };
        self.rx_last_ts32 = h.timestamp;
        self.rx_last_ext = ts;
        self.stats.packets_received += 1;
        codec.decode(packet.payload, &mut self.pcm_in);
        self.emit_frames()?;
        Ok(true)
    }

    fn emit_frames(&mut self) -> Result<(), Malformed> {
        while self.pcm_in.len() >= FRAME_8K {
            let frame = self.pcm_in.get(..FRAME_8K).unwrap_or_default();
            let level = AudioLevel::from_pcm(frame).minus_dbov();
            let encoded = self.encoder.encode_to_vec(frame);
            self.pcm_in.drain(..FRAME_8K);
            let start = self.rx_frame_start;
            self.rx_frame_start += FRAME_8K as u64;
            let Ok(packet) = encoded else {
                // 160 mono samples always encode; a failure is a codec bug, not the peer's.
                tracing::debug!("opus encode failed; frame dropped");
                continue;
            };
            self.audio.push_back(CallAudio {
                seq: start / FRAME_8K as u64,
                rtp_time: start * 6,
                level,
                packet,
            });
        }
        Ok(())
    }

    /// One 20 ms opus packet of what the phone should hear (the call's mix or the
    /// other side of a 1:1 call): sent as one G.711 packet. Dropped before the remote
    /// is known. A packet that does not decode is concealed.
    pub fn handle_call_audio(&mut self, opus: &[u8], _now: Instant) {
        let Some(remote) = self.remote else {
            return;
        };
        let header = RtpHeader {
            marker: std::mem::take(&mut self.tx_marker),
            payload_type: remote.codec.payload_type(),
            sequence: self.next_seq(),
            timestamp: self.tx_ts,
            ssrc: self.config.ssrc,
        };
        let decoded = match self.decoder.decode(opus, &mut self.pcm_out) {
            Ok(n) => n,
            Err(_) => self.decoder.conceal(&mut self.pcm_out).unwrap_or(0),
        };
        let narrow = self.pcm_out.get(..decoded).unwrap_or_default();
        let mut payload = Vec::with_capacity(12 + narrow.len());
        header.write(&mut payload);
        remote.codec.encode(narrow, &mut payload);
        self.tx_ts = self.tx_ts.wrapping_add(narrow.len() as u32);
        self.send(remote, payload);
    }

    /// Queues a key to send as RFC 4733 events; ignored when the far end offered
    /// no telephone-event payload type.
    pub fn send_dtmf(&mut self, digit: DtmfDigit, now: Instant) {
        if self.remote.and_then(|r| r.dtmf_payload_type).is_none() {
            tracing::debug!("the phone takes no RFC 4733 events; key dropped");
            return;
        }
        self.dtmf_queue.push_back(digit);
        self.start_dtmf(now);
        self.handle_timeout(now);
    }

    fn start_dtmf(&mut self, now: Instant) {
        if self.dtmf.is_none()
            && let Some(digit) = self.dtmf_queue.pop_front()
        {
            self.dtmf = Some(DtmfSending {
                digit,
                timestamp: self.tx_ts,
                duration: 0,
                ends_sent: 0,
                next_at: now,
            });
        }
    }

    /// Sends due DTMF packets and checks the media timeout. Safe to call early.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let (Some(last), false) = (self.last_received, self.timed_out)
            && now.saturating_duration_since(last) >= self.config.media_timeout
        {
            self.timed_out = true;
            self.events.push_back(PhoneMediaEvent::TimedOut);
        }
        let Some(remote) = self.remote else { return };
        let Some(pt) = remote.dtmf_payload_type else {
            return;
        };
        while let Some(d) = self.dtmf.as_mut()
            && d.next_at <= now
        {
            let first = d.duration == 0;
            d.duration = (d.duration + FRAME_8K as u16).min(DTMF_DURATION);
            let end = d.duration >= DTMF_DURATION;
            if end {
                d.ends_sent += 1;
            }
            let event = TelephoneEvent {
                event: d.digit.code(),
                end,
                volume: 10,
                duration: d.duration,
            };
            let header = RtpHeader {
                marker: first,
                payload_type: pt,
                sequence: 0,
                timestamp: d.timestamp,
                ssrc: self.config.ssrc,
            };
            d.next_at += DTMF_INTERVAL;
            // RFC 4733 §2.5.1.4: the end packet goes out three times.
            let done = d.ends_sent >= 3;
            let mut bytes = Vec::with_capacity(16);
            let header = RtpHeader {
                sequence: self.next_seq(),
                ..header
            };
            header.write(&mut bytes);
            bytes.extend_from_slice(&event.to_bytes());
            self.send(remote, bytes);
            if done {
                // The event used DTMF_DURATION of the timeline.
                self.tx_ts = self.tx_ts.wrapping_add(u32::from(DTMF_DURATION));
                self.dtmf = None;
                self.start_dtmf(now);
            }
        }
    }

    fn next_seq(&mut self) -> u16 {
        let s = self.tx_seq;
        self.tx_seq = self.tx_seq.wrapping_add(1);
        s
    }

    fn send(&mut self, remote: RemoteMedia, contents: Vec<u8>) {
        self.stats.packets_sent += 1;
        self.transmits.push_back(Transmit {
            destination: self.latched.unwrap_or(remote.address),
            contents,
        });
    }

    /// The next datagram to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next opus frame for the media plane.
    #[must_use]
    pub fn poll_audio(&mut self) -> Option<CallAudio> {
        self.audio.pop_front()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<PhoneMediaEvent> {
        self.events.pop_front()
    }

    /// When to call [`PhoneMedia::handle_timeout`].
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let media = (!self.timed_out)
            .then(|| self.last_received.map(|l| l + self.config.media_timeout))
            .flatten();
        let dtmf = self.dtmf.as_ref().map(|d| d.next_at);
        match (media, dtmf) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use ringwire_media::analysis::{tone, tone_snr};

    use super::*;

    /// Samples in 20 ms at 48 kHz (the call side's rate).
    const FRAME_48K: usize = 960;

    fn leg(local: &str, ssrc: u32) -> PhoneMedia {
        PhoneMedia::new(PhoneMediaConfig {
            local: local.parse().unwrap(),
            media_timeout: Duration::from_secs(5),
            ssrc,
        })
        .unwrap()
    }

    fn remote(addr: &str, codec: G711) -> RemoteMedia {
        RemoteMedia {
            address: addr.parse().unwrap(),
            codec,
            dtmf_payload_type: Some(101),
        }
    }

    /// Two legs facing each other: a tone from the first's "call" side arrives at the
    /// second's "call" side, through opus -> G.711 -> RTP -> G.711 -> opus.
    #[test]
    fn tone_crosses_two_legs() {
        for codec in [G711::Pcmu, G711::Pcma] {
            let now = Instant::now();
            let mut a = leg("127.0.0.1:20000", 1);
            let mut b = leg("127.0.0.1:20002", 2);
            a.set_remote(remote("127.0.0.1:20002", codec), now);
            b.set_remote(remote("127.0.0.1:20000", codec), now);
            let mut enc = Encoder::new(OpusConfig {
                dtx: false,
                ..OpusConfig::default()
            })
            .unwrap();
            let mut dec = Decoder::new(Channels::Mono).unwrap();
            let mut heard = Vec::new();
            let mut last_seq = None;
            for i in 0..100u64 {
                let mut pcm = vec![0i16; FRAME_48K];
                tone(1030.0, 8000.0, 48000, i * FRAME_48K as u64, &mut pcm);
                let at = now + Duration::from_millis(20 * i);
                a.handle_call_audio(&enc.encode_to_vec(&pcm).unwrap(), at);
                while let Some(t) = a.poll_transmit() {
                    assert_eq!(t.destination, b.local());
                    assert!(b.handle_receive(at, a.local(), &t.contents).unwrap());
                }
                while let Some(frame) = b.poll_audio() {
                    if let Some(prev) = last_seq {
                        assert_eq!(frame.seq, prev + 1);
                    }
                    last_seq = Some(frame.seq);
                    let mut out = vec![0i16; FRAME_48K];
                    let n = dec.decode(&frame.packet, &mut out).unwrap();
                    heard.extend_from_slice(&out[..n]);
                }
            }
            assert_eq!(heard.len(), 100 * FRAME_48K);
            let snr = tone_snr(&heard[FRAME_48K * 10..], 1030.0, 48000);
            assert!(snr > 15.0, "{codec:?}: snr {snr}");
        }
    }

    #[test]
    fn rtp_from_elsewhere_is_dropped_and_latching_holds() {
        let now = Instant::now();
        let mut b = leg("127.0.0.1:20002", 2);
        let mut pkt = Vec::new();
        RtpHeader {
            marker: false,
            payload_type: 0,
            sequence: 1,
            timestamp: 160,
            ssrc: 9,
        }
        .write(&mut pkt);
        pkt.extend_from_slice(&[0xff; 160]);
        // No remote yet.
        assert!(
            !b.handle_receive(now, "127.0.0.1:20000".parse().unwrap(), &pkt)
                .unwrap()
        );
        b.set_remote(remote("127.0.0.1:20000", G711::Pcmu), now);
        // Another host.
        assert!(
            !b.handle_receive(now, "10.1.1.1:20000".parse().unwrap(), &pkt)
                .unwrap()
        );
        // Same host, other port (NAT): latches.
        assert!(
            b.handle_receive(now, "127.0.0.1:31000".parse().unwrap(), &pkt)
                .unwrap()
        );
        // Once latched, the original port is refused.
        assert!(
            !b.handle_receive(now, "127.0.0.1:20000".parse().unwrap(), &pkt)
                .unwrap()
        );
        assert!(
            b.handle_receive(now, "127.0.0.1:20000".parse().unwrap(), &[1, 2])
                .is_ok_and(|ok| !ok)
        );
        b.handle_call_audio(&[0xfc, 0xff, 0xfe], now); // opus silence-ish; may conceal
        let t = b.poll_transmit().unwrap();
        assert_eq!(t.destination, "127.0.0.1:31000".parse().unwrap());
        assert!(
            b.handle_receive(now, "127.0.0.1:31000".parse().unwrap(), &[0x80, 0])
                .is_err()
        );
    }

    #[test]
    fn dtmf_goes_both_ways_once_per_key() {
        let now = Instant::now();
        let mut a = leg("127.0.0.1:20000", 1);
        let mut b = leg("127.0.0.1:20002", 2);
        a.set_remote(remote("127.0.0.1:20002", G711::Pcmu), now);
        b.set_remote(remote("127.0.0.1:20000", G711::Pcmu), now);
        for c in ['5', '#'] {
            a.send_dtmf(DtmfDigit::from_char(c).unwrap(), now);
        }
        let mut t = now;
        let mut packets = 0;
        let mut keys = Vec::new();
        while let Some(due) = a
            .poll_timeout()
            .filter(|d| *d < now + Duration::from_secs(1))
        {
            t = t.max(due);
            a.handle_timeout(t);
            while let Some(tx) = a.poll_transmit() {
                packets += 1;
                let p = RtpPacket::parse(&tx.contents).unwrap();
                assert_eq!(p.header.payload_type, 101);
                b.handle_receive(t, a.local(), &tx.contents).unwrap();
            }
            while let Some(e) = b.poll_event() {
                if let PhoneMediaEvent::Dtmf(d) = e {
                    keys.push(d.to_char());
                }
            }
        }
        assert_eq!(keys, vec!['5', '#']);
        // 5 packets to 100 ms, the last of them an end packet, plus 2 repeats: 7 per key.
        assert_eq!(packets, 14);
    }

    #[test]
    fn silence_times_out_once() {
        let now = Instant::now();
        let mut b = leg("127.0.0.1:20002", 2);
        assert_eq!(b.poll_timeout(), None);
        b.set_remote(remote("127.0.0.1:20000", G711::Pcmu), now);
        let due = b.poll_timeout().unwrap();
        assert_eq!(due, now + Duration::from_secs(5));
        b.handle_timeout(due - Duration::from_millis(1));
        assert_eq!(b.poll_event(), None);
        b.handle_timeout(due);
        assert_eq!(b.poll_event(), Some(PhoneMediaEvent::TimedOut));
        b.handle_timeout(due + Duration::from_secs(9));
        assert_eq!(b.poll_event(), None);
        assert_eq!(b.poll_timeout(), None);
    }
}
