//! What the server and client media engines share around str0m: datagrams, errors and
//! the one `Rtc` configuration both ends use.
//!
//! str0m is itself sans-IO (`handle_input` / `poll_output` with `now` passed in), so the
//! engines built on it ([`crate::server::MediaServer`], [`crate::client::CallMedia`])
//! stay sans-IO too: they take datagrams and time, and hand back [`Transmit`]s for the
//! caller's socket. DTLS-SRTP is always on; str0m has no way to turn it off.

use std::net::SocketAddr;
use std::time::Instant;

use str0m::bwe::Bitrate;
use str0m::format::Codec;
use str0m::media::{Frequency, MediaTime, Mid, Pt};
use str0m::net::{DatagramRecv, Protocol, Receive};
use str0m::{Input, Rtc, RtcConfig};

/// The RTP clock of opus (RFC 7587 §4.1: always 48 kHz).
pub(crate) const OPUS_CLOCK: Frequency = Frequency::FORTY_EIGHT_KHZ;

/// Receive buffers must hold one datagram of this size (str0m's largest MTU target is
/// below it).
pub const MAX_DATAGRAM: usize = 2000;

/// One UDP datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The local address it must leave from (the socket the engine was told about).
    pub source: SocketAddr,
    /// Where to send it.
    pub destination: SocketAddr,
    /// The datagram.
    pub contents: Vec<u8>,
}

impl From<str0m::net::Transmit> for Transmit {
    fn from(t: str0m::net::Transmit) -> Self {
        Self {
            source: t.source,
            destination: t.destination,
            contents: t.contents.into(),
        }
    }
}

/// Why a media operation failed. Nothing here is fatal for the engine: the call or
/// participant it names is affected, everyone else carries on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The SDP text could not be parsed.
    #[error("invalid SDP {kind}: {reason}")]
    InvalidSdp {
        /// `offer` or `answer`.
        kind: &'static str,
        /// The parser's complaint.
        reason: String,
    },
    /// str0m refused the negotiation or the operation.
    #[error("media negotiation failed: {0}")]
    Negotiation(String),
    /// The offer has no audio section we can use (opus).
    #[error("the offer has no opus audio section")]
    NoAudio,
    /// An answer arrived but no offer is outstanding.
    #[error("an SDP answer arrived but no offer is outstanding")]
    UnexpectedAnswer,
    /// The participant is not in the call's media room (never joined, or left).
    #[error("not a participant of this call's media")]
    NotJoined,
    /// The local address cannot be an ICE candidate (for example unspecified 0.0.0.0).
    #[error("{0} cannot be used as an ICE host candidate")]
    BadCandidate(SocketAddr),
    /// A frame of the wrong size was given to the encoder.
    #[error("an audio frame must have {expected} samples, got {got}")]
    FrameSize {
        /// Samples expected (20 ms).
        expected: usize,
        /// Samples given.
        got: usize,
    },
    /// The opus codec failed.
    #[error(transparent)]
    Codec(#[from] crate::codec::CodecError),
}

/// The `Rtc` configuration both ends use: opus and H.264 only (the SFU forwards video
/// unchanged, so everyone must send what every native client decodes, and str0m's
/// answer picks codecs in the order they are enabled; browsers then send H.264
/// too), str0m's default header extensions (RFC 6464 audio level among them), and no
/// reordering hold-back for audio: the jitter buffer (client) and the mixer's queue
/// (server) reorder, so str0m must hand packets over as they arrive instead of holding
/// up to 15 back.
pub(crate) fn rtc_config() -> RtcConfig {
    Rtc::builder()
        .clear_codecs()
        .enable_opus(true, false)
        .enable_h264(true)
        .set_reordering_size_audio(0)
}

/// The media server's first guess of what it can send to a participant who receives
/// video, before TWCC feedback refines it: enough for six small camera streams on a
/// LAN, so a call starts with every slot filled and only a measured shortage drops
/// streams.
pub(crate) const INITIAL_BWE: Bitrate = Bitrate::kbps(2_500);

/// The configuration of the media server's side of a participant: as [`rtc_config`],
/// with send-side bandwidth estimation when the participant receives video (the video
/// router decides from it how many streams they get).
pub(crate) fn server_rtc_config(receives_video: bool) -> RtcConfig {
    let config = rtc_config();
    if receives_video {
        config.enable_bwe(Some(INITIAL_BWE))
    } else {
        config
    }
}

/// H.264 Constrained Baseline, level 3.1 (`profile-level-id=42e01f`): what OpenH264
/// encodes and every browser offers, so what video goes out as.
pub(crate) const H264_CONSTRAINED_BASELINE: u32 = 0x0042_e01f;

/// H.264 Baseline, level 3.1: the next best thing for a peer without Constrained
/// Baseline.
pub(crate) const H264_BASELINE: u32 = 0x0042_001f;

/// The RTP clock of video (RFC 6184 §5.1: 90 kHz).
pub(crate) const VIDEO_CLOCK: Frequency = Frequency::NINETY_KHZ;

/// The `Input` for one received datagram, or `None` when it is not STUN, DTLS, RTP or
/// RTCP (str0m's demultiplexing rule, RFC 7983).
pub(crate) fn receive_input(
    now: Instant,
    source: SocketAddr,
    destination: SocketAddr,
    datagram: &[u8],
) -> Option<Input<'_>> {
    let contents = DatagramRecv::try_from(datagram).ok()?;
    Some(Input::Receive(
        now,
        Receive {
            proto: Protocol::Udp,
            source,
            destination,
            contents,
        },
    ))
}

/// The negotiated opus payload type of `mid`, if any.
pub(crate) fn opus_pt(rtc: &mut Rtc, mid: Mid) -> Option<Pt> {
    let writer = rtc.writer(mid)?;
    writer
        .payload_params()
        .find(|p| p.spec().codec == Codec::Opus)
        .map(|p| p.pt())
}

/// An RTP time on the opus clock.
pub(crate) fn opus_time(samples: u64) -> MediaTime {
    MediaTime::new(samples, OPUS_CLOCK)
}

/// An `i8` RFC 6464 level as str0m carries it (`-level`), back to the `0..=127` -dBov
/// scale; missing or out-of-range values count as silence.
pub(crate) fn level_from_ext(level: Option<i8>) -> u8 {
    match level {
        Some(l) if l <= 0 => l.unsigned_abs().min(127),
        _ => 127,
    }
}

/// The str0m `i8` form of a `0..=127` -dBov level.
pub(crate) fn level_to_ext(minus_dbov: u8) -> i8 {
    -i8::try_from(minus_dbov.min(127)).unwrap_or(127)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_round_trip_through_the_str0m_form() {
        for l in 0..=127u8 {
            assert_eq!(level_from_ext(Some(level_to_ext(l))), l);
        }
        assert_eq!(level_from_ext(None), 127);
        assert_eq!(level_from_ext(Some(5)), 127);
        assert_eq!(level_from_ext(Some(i8::MIN)), 127);
    }

    #[test]
    fn garbage_is_not_an_input() {
        let now = Instant::now();
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(receive_input(now, a, a, &[]).is_none());
        assert!(receive_input(now, a, a, &[0xff; 3]).is_none());
    }
}
