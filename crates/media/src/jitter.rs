//! The adaptive jitter buffer: opus packets in, one 20 ms PCM frame out per pull.
//!
//! Sans-IO: [`JitterBuffer::handle_packet`] takes each packet with its arrival time,
//! [`JitterBuffer::poll_frame`] pulls the next 20 ms at `now` (the caller's playout
//! clock), and [`JitterBuffer::poll_timeout`] says when the next frame is due. The
//! buffer owns an opus [`Decoder`], so concealment uses libopus: FEC from the next
//! packet when it is buffered, PLC otherwise. libwebrtc's NetEq is the model.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use ringwire_media::codec::{Encoder, OpusConfig, FRAME_SAMPLES};
//! use ringwire_media::jitter::{AudioPacket, JitterBuffer, JitterConfig};
//!
//! let mut encoder = Encoder::new(OpusConfig::default())?;
//! let mut jb = JitterBuffer::new(JitterConfig::default())?;
//! let t0 = Instant::now();
//! for i in 0..10u16 {
//!     let payload = encoder.encode_to_vec(&[0; FRAME_SAMPLES])?;
//!     let at = t0 + Duration::from_millis(20 * u64::from(i));
//!     jb.handle_packet(AudioPacket { seq: i, timestamp: 960 * u32::from(i), payload, marker: false }, at);
//! }
//! let due = jb.poll_timeout().expect("playout is scheduled");
//! let frame = jb.poll_frame(due).expect("a frame is due");
//! assert_eq!(frame.pcm.len(), FRAME_SAMPLES);
//! # Ok::<(), ringwire_media::codec::CodecError>(())
//! ```
//!
//! # How it decides
//!
//! - **Positions.** Sequence numbers and RTP timestamps are unwrapped to `i64` against
//!   the highest seen (RFC 3550 Appendix A.1 style), so u16/u32 wraparound is invisible.
//!   Playout follows the timestamp; the sequence number tells a DTX gap (timestamps jump,
//!   sequence numbers do not) from a loss (sequence numbers jump).
//! - **Delay measure.** For each packet, `d = arrival − timestamp` (in ms); the smallest
//!   `d` over the last 2 s is the fastest path, and `r = d − min` is the packet's
//!   relative delay (NetEq's "relative packet arrival delay"). The *current delay* is how
//!   long a fastest-path packet waits before it plays: `playout time(ts) − (min + ts)`.
//!   A packet is late exactly when its `r` exceeds the current delay.
//! - **Target delay.** `r` feeds a histogram of 5 ms buckets with exponential
//!   forgetting (factor 0.995 per packet, ~3 s memory), seeded with the initial delay.
//!   The target is its 95th percentile plus 20 ms, bounded by `min_delay..=max_delay`
//!   (default 20..=500 ms, starting at 60 ms).
//! - **Following the target (and clock drift).** When the current delay is over the
//!   target by 30 ms or more, the buffer drops one 20 ms frame (decodes and discards it),
//!   but only if that frame is quiet (under -50 dBov) or comfort noise, unless it is over
//!   by 80 ms. When the delay is 20 ms or more under the target, it inserts one concealed
//!   (PLC) frame, at a quiet moment or at once when 40 ms or more under. A sender whose
//!   clock runs fast or slow moves the fastest path (`min d`) by a millisecond per second
//!   at 0.1 % drift; the same rule then drops or inserts a frame every ~20 s.
//! - **Underrun.** When nothing is buffered the buffer conceals without advancing the
//!   playout timestamp (the delay grows by 20 ms, NetEq's "expand"), so a late packet
//!   still plays. When the next packet turns out to follow a DTX gap (sequence numbers
//!   contiguous) those frames count as comfort noise, not concealment, and silence
//!   already played shortens the gap.
//! - **Loss.** When the frame at the playout point is missing but a later packet is
//!   buffered, the frame is rebuilt by FEC when the buffered packet is the very next
//!   frame, by PLC otherwise. A packet that arrives after its time is dropped and
//!   counted late.
//! - **Bounds.** At most `max_packets` packets are held (default 100); a packet more
//!   than 10 s away from the playout point restarts the stream on it.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::codec::{
    Channels, CodecError, Decoder, FRAME_DURATION, FRAME_SAMPLES, MAX_PACKET_SAMPLES,
    MAX_PACKET_SIZE, SAMPLE_RATE, packet_samples,
};

/// Samples per millisecond at 48 kHz (RTP clock of opus, RFC 7587 §4.1).
const SAMPLES_PER_MS: f64 = SAMPLE_RATE as f64 / 1000.0;
/// Width of a delay histogram bucket.
const BUCKET_MS: f64 = 5.0;
/// Forgetting factor of the delay histogram per packet.
const FORGET: f64 = 0.995;
/// Quantile of relative delay the target covers.
const QUANTILE: f64 = 0.95;
/// Headroom added to the quantile.
const HEADROOM_MS: f64 = 20.0;
/// Window over which the fastest path is measured.
const MIN_WINDOW_MS: f64 = 2000.0;
/// Most entries kept in the fastest-path window (bounds memory under odd arrivals).
const MIN_WINDOW_ENTRIES: usize = 512;
/// A packet this far from the playout point (in samples) restarts the stream: 10 s.
const RESYNC_SAMPLES: i64 = 10 * 48_000;
/// Below this mean square (-50 dBov) a frame is quiet enough to drop or stretch.
const QUIET_MEAN_SQUARE: f64 = 32768.0 * 32768.0 * 1e-5;
/// Over the target by this much (ms): drop a quiet frame; by `URGENT`: any frame.
const ACCELERATE_MS: f64 = 30.0;
const ACCELERATE_URGENT_MS: f64 = 80.0;
/// Under the target by this much (ms): insert at a quiet moment; by `URGENT`: at once.
const DECELERATE_MS: f64 = 20.0;
const DECELERATE_URGENT_MS: f64 = 40.0;

/// Concealment steps (about 20 ms each) played at full level before the fade.
const CONCEAL_FULL: u32 = 5;
/// Concealment steps over which the level falls to silence.
const CONCEAL_FADE: u32 = 5;

/// Settings of a [`JitterBuffer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// Output channels (mono by default).
    pub channels: Channels,
    /// The target delay before any jitter is measured (default 60 ms).
    pub initial_delay: Duration,
    /// The smallest target delay (default 20 ms).
    pub min_delay: Duration,
    /// The largest target delay (default 500 ms).
    pub max_delay: Duration,
    /// The most packets held at once (default 100, 2 s of 20 ms packets).
    pub max_packets: usize,
}

impl Default for JitterConfig {
    fn default() -> Self {
        Self {
            channels: Channels::Mono,
            initial_delay: Duration::from_millis(60),
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(500),
            max_packets: 100,
        }
    }
}

/// One received audio packet: the RTP fields the buffer needs and the opus payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioPacket {
    /// RTP sequence number.
    pub seq: u16,
    /// RTP timestamp (48 kHz clock for opus, RFC 7587 §4.1).
    pub timestamp: u32,
    /// The opus packet.
    pub payload: Vec<u8>,
    /// RTP marker bit (first packet after silence); informational.
    pub marker: bool,
}

/// How a frame's audio was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// Decoded from its own packet.
    Decoded,
    /// Rebuilt from the in-band FEC of the next packet.
    Fec,
    /// Packet loss concealment: the packet was lost, late, or the buffer stretched.
    Concealed,
    /// Comfort noise or silence in a DTX gap (the sender sent nothing on purpose).
    ComfortNoise,
}

/// 20 ms of decoded PCM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Interleaved samples, `960 × channels`.
    pub pcm: Vec<i16>,
    /// How it was made (the least faithful part wins when a frame mixes sources).
    pub kind: FrameKind,
}

/// Counters and delays of a [`JitterBuffer`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct JitterStats {
    /// How long a packet on the fastest path waits before it plays.
    pub current_delay: Duration,
    /// The delay the buffer steers towards.
    pub target_delay: Duration,
    /// Packets handed in.
    pub packets: u64,
    /// Packets that arrived after their playout time and were dropped.
    pub late: u64,
    /// Packets seen before (dropped).
    pub duplicates: u64,
    /// Packets that arrived after a packet with a higher sequence number.
    pub reordered: u64,
    /// Packets dropped because they were not opus or the buffer was full.
    pub discarded: u64,
    /// Frames pulled.
    pub frames: u64,
    /// Frames decoded from their own packet.
    pub decoded: u64,
    /// Frames rebuilt by FEC.
    pub fec: u64,
    /// Frames concealed by PLC (lost, late, underrun or inserted).
    pub concealed: u64,
    /// Frames of comfort noise in DTX gaps (not loss).
    pub comfort_noise: u64,
    /// Frames inserted to grow the delay.
    pub inserted: u64,
    /// Frames dropped to shrink the delay.
    pub dropped: u64,
    /// Packets that failed to decode (concealed instead).
    pub decode_errors: u64,
    /// Times the stream restarted on a far jump.
    pub resyncs: u64,
}

impl JitterStats {
    /// Share of pulled frames not decoded from their own packet (FEC and PLC; DTX
    /// comfort noise excluded).
    #[must_use]
    pub fn concealed_ratio(&self) -> f64 {
        ratio(self.concealed + self.fec, self.frames)
    }

    /// Share of packets that came too late to play.
    #[must_use]
    pub fn late_ratio(&self) -> f64 {
        ratio(self.late, self.packets)
    }
}

/// The adaptive jitter buffer. See the [module docs](self) for how it decides.
#[derive(Debug)]
pub struct JitterBuffer {
    config: JitterConfig,
    decoder: Decoder,
    /// Buffered packets by extended timestamp.
    packets: BTreeMap<i64, Stored>,
    /// Decoded samples not yet pulled (interleaved).
    pcm: VecDeque<i16>,
    scratch: Vec<i16>,
    /// Time and timestamp origins for the millisecond arithmetic.
    base: Option<(Instant, i64)>,
    highest_seq: Option<i64>,
    /// Bit `i` set: extended sequence number `highest_seq - i` was received.
    seq_window: u128,
    highest_ts: i64,
    playout: Option<Playout>,
    /// Monotonic deque of (arrival ms, d ms) for the sliding minimum.
    min_window: VecDeque<(f64, f64)>,
    histogram: Vec<f64>,
    target_ms: f64,
    last_frame_quiet: bool,
    /// Concealment steps since the last decoded packet (for the fade to silence).
    conceal_run: u32,
    stats: JitterStats,
}

#[derive(Debug)]
struct Stored {
    seq: i64,
    samples: i64,
    payload: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Playout {
    /// When the next frame is due, since `base` (integer nanoseconds: no rounding
    /// between `poll_timeout` and `poll_frame`).
    next_pull: Duration,
    /// Extended timestamp where the next decoded samples continue.
    next_ts: i64,
    /// Sequence number of the last packet decoded.
    last_seq: Option<i64>,
    /// Samples concealed while nothing was buffered, since the last decode.
    stalled_samples: i64,
    /// Frames counted as concealed while stalled, since the last decode.
    stalled_frames: u64,
    /// The first frame was pulled; before that, earlier packets move the start back.
    started: bool,
}

/// What went into the frame being built.
#[derive(Debug, Clone, Copy, Default)]
struct Mix {
    fec: bool,
    concealed: bool,
    comfort: bool,
}

impl JitterBuffer {
    /// Creates an empty buffer.
    ///
    /// # Errors
    /// [`CodecError::Opus`] when libopus cannot create the decoder.
    pub fn new(config: JitterConfig) -> Result<Self, CodecError> {
        let buckets = (duration_ms(config.max_delay) / BUCKET_MS).ceil() as usize + 2;
        let mut histogram = vec![0.0; buckets.max(2)];
        // Seeded so that the first target is the initial delay.
        let initial = clamp_ms(
            duration_ms(config.initial_delay) - HEADROOM_MS - BUCKET_MS,
            0.0,
            duration_ms(config.max_delay),
        );
        let bucket = ((initial / BUCKET_MS) as usize).min(histogram.len() - 1);
        if let Some(b) = histogram.get_mut(bucket) {
            *b = 1.0;
        }
        let target_ms = clamp_ms(
            duration_ms(config.initial_delay),
            duration_ms(config.min_delay),
            duration_ms(config.max_delay),
        );
        Ok(Self {
            decoder: Decoder::new(config.channels)?,
            config,
            packets: BTreeMap::new(),
            pcm: VecDeque::with_capacity(MAX_PACKET_SAMPLES * 2),
            scratch: vec![0; MAX_PACKET_SAMPLES * config.channels.count()],
            base: None,
            highest_seq: None,
            seq_window: 0,
            highest_ts: 0,
            playout: None,
            min_window: VecDeque::new(),
            histogram,
            target_ms,
            last_frame_quiet: true,
            conceal_run: 0,
            stats: JitterStats::default(),
        })
    }

    /// Takes in one received packet. Late, duplicate and malformed packets are counted
    /// and dropped; nothing here fails.
    pub fn handle_packet(&mut self, packet: AudioPacket, now: Instant) {
        self.stats.packets += 1;
        let (base_time, base_ts) = *self.base.get_or_insert((now, i64::from(packet.timestamp)));
        let now_ms = ms_since(base_time, now);

        // RFC 3550 A.1: unwrap against the highest seen.
        let seq = match self.highest_seq {
            None => i64::from(packet.seq),
            Some(h) => h + i64::from(packet.seq.wrapping_sub(h as u16) as i16),
        };
        let ts = if self.highest_seq.is_none() {
            i64::from(packet.timestamp)
        } else {
            self.highest_ts
                + i64::from(packet.timestamp.wrapping_sub(self.highest_ts as u32) as i32)
        };

        let samples = match packet_samples(&packet.payload) {
            Ok(n) if packet.payload.len() <= MAX_PACKET_SIZE => n as i64,
            _ => {
                self.stats.discarded += 1;
                return;
            }
        };

        // A far jump (sender restart, or nonsense): start over on this packet.
        if let Some(p) = self.playout
            && (ts - p.next_ts).abs() > RESYNC_SAMPLES
        {
            self.resync(now, i64::from(packet.timestamp));
            return self.handle_packet_after_resync(packet, now);
        }

        // Duplicates and reordering by sequence number.
        match self.highest_seq {
            None => {
                self.highest_seq = Some(seq);
                self.seq_window = 1;
                self.highest_ts = ts;
            }
            Some(h) if seq > h => {
                let shift = seq - h;
                self.seq_window = if shift >= 128 {
                    0
                } else {
                    self.seq_window << shift
                };
                self.seq_window |= 1;
                self.highest_seq = Some(seq);
                self.highest_ts = self.highest_ts.max(ts);
            }
            Some(h) => {
                let back = h - seq;
                if back < 128 {
                    let bit = 1u128 << back;
                    if self.seq_window & bit != 0 {
                        self.stats.duplicates += 1;
                        return;
                    }
                    self.seq_window |= bit;
                }
                self.stats.reordered += 1;
            }
        }

        // Delay statistics, for every packet that is not a duplicate, late ones too.
        let d = now_ms - (ts - base_ts) as f64 / SAMPLES_PER_MS;
        self.update_delay(now_ms, d);

        if let Some(p) = self.playout.as_mut() {
            if !p.started {
                p.next_ts = p.next_ts.min(ts);
            } else if ts < p.next_ts {
                self.stats.late += 1;
                return;
            }
        }
        if self.packets.contains_key(&ts) {
            self.stats.duplicates += 1;
            return;
        }
        if self.packets.len() >= self.config.max_packets.max(1) {
            // Keep the earliest audio: evict the furthest packet if this one is earlier.
            match self.packets.last_key_value() {
                Some((&last, _)) if last > ts => {
                    self.packets.remove(&last);
                    self.stats.discarded += 1;
                }
                _ => {
                    self.stats.discarded += 1;
                    return;
                }
            }
        }
        self.packets.insert(
            ts,
            Stored {
                seq,
                samples,
                payload: packet.payload,
            },
        );
        if self.playout.is_none() {
            // Playout starts one initial delay after the first packet.
            self.playout = Some(Playout {
                next_pull: now.saturating_duration_since(base_time)
                    + Duration::from_millis(self.target_ms as u64),
                next_ts: ts,
                last_seq: None,
                stalled_samples: 0,
                stalled_frames: 0,
                started: false,
            });
        }
    }

    fn handle_packet_after_resync(&mut self, packet: AudioPacket, now: Instant) {
        // resync() cleared the counters; don't count the packet twice.
        self.stats.packets -= 1;
        self.handle_packet(packet, now);
    }

    fn resync(&mut self, now: Instant, ts: i64) {
        self.stats.resyncs += 1;
        self.packets.clear();
        self.pcm.clear();
        self.highest_seq = None;
        self.seq_window = 0;
        self.playout = None;
        self.min_window.clear();
        self.base = Some((now, ts));
        // A new stream: forget the old decoder state; failing to reset only costs a
        // click, so it is not an error of this packet.
        let _ = self.decoder.reset();
    }

    /// When the next frame is due, once playout has started.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let (base, _) = self.base?;
        let p = self.playout?;
        base.checked_add(p.next_pull)
    }

    /// Pulls the next 20 ms frame if one is due at `now` (call until `None` after a
    /// stall). Decodes, conceals or recovers by FEC as needed.
    #[must_use]
    pub fn poll_frame(&mut self, now: Instant) -> Option<Frame> {
        let (base, _) = self.base?;
        let p = self.playout?;
        if now.saturating_duration_since(base) < p.next_pull {
            return None;
        }
        if let Some(p) = self.playout.as_mut() {
            p.next_pull = p.next_pull.saturating_add(FRAME_DURATION);
            p.started = true;
        }

        let excess = self.current_delay_ms() - self.target_ms;
        let frame_len = self.config.channels.frame_len();
        let frame = if excess <= -DECELERATE_MS
            && self.pcm.is_empty()
            && (self.last_frame_quiet || excess <= -DECELERATE_URGENT_MS)
        {
            // Grow the delay by one frame: conceal without consuming.
            self.stats.inserted += 1;
            let mut pcm = vec![0; frame_len];
            if self.decoder.conceal(&mut pcm).is_err() {
                pcm.fill(0);
            }
            Frame {
                pcm,
                kind: FrameKind::Concealed,
            }
        } else {
            let mut frame = self.fill_frame();
            if excess >= ACCELERATE_MS
                && (frame.kind == FrameKind::ComfortNoise
                    || is_quiet(&frame.pcm)
                    || excess >= ACCELERATE_URGENT_MS)
            {
                // Shrink the delay by one frame: this one is decoded (for the decoder's
                // state) and not played.
                self.stats.dropped += 1;
                frame = self.fill_frame();
            }
            frame
        };
        self.stats.frames += 1;
        match frame.kind {
            FrameKind::Decoded => self.stats.decoded += 1,
            FrameKind::Fec => self.stats.fec += 1,
            FrameKind::Concealed => self.stats.concealed += 1,
            FrameKind::ComfortNoise => self.stats.comfort_noise += 1,
        }
        self.last_frame_quiet = frame.kind == FrameKind::ComfortNoise || is_quiet(&frame.pcm);
        Some(frame)
    }

    /// The counters and delays so far.
    #[must_use]
    pub fn stats(&self) -> JitterStats {
        JitterStats {
            current_delay: Duration::from_secs_f64(self.current_delay_ms().max(0.0) / 1000.0),
            target_delay: Duration::from_secs_f64(self.target_ms.max(0.0) / 1000.0),
            ..self.stats
        }
    }

    /// Packets held now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// Whether no packet is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// Builds one frame from the PCM queue, decoding or concealing as needed.
    fn fill_frame(&mut self) -> Frame {
        let frame_len = self.config.channels.frame_len();
        let mut mix = Mix::default();
        // Each step adds at least one sample, and at most MAX_PACKET_SAMPLES × channels.
        while self.pcm.len() < frame_len {
            self.produce(&mut mix);
        }
        let pcm: Vec<i16> = self.pcm.drain(..frame_len).collect();
        let kind = if mix.concealed {
            FrameKind::Concealed
        } else if mix.fec {
            FrameKind::Fec
        } else if mix.comfort {
            FrameKind::ComfortNoise
        } else {
            FrameKind::Decoded
        };
        if kind == FrameKind::Concealed
            && let Some(p) = self.playout.as_mut()
            && p.stalled_samples > 0
        {
            p.stalled_frames += 1;
        }
        Frame { pcm, kind }
    }

    /// Appends decoded or concealed samples to the PCM queue.
    fn produce(&mut self, mix: &mut Mix) {
        let channels = self.config.channels.count();
        let Some(mut p) = self.playout else {
            // Not started: silence (poll_frame does not get here).
            self.pcm
                .extend(std::iter::repeat_n(0, FRAME_SAMPLES * channels));
            return;
        };
        // Drop what fell behind the playout point (overlapping odd-sized packets).
        while let Some((&ts, _)) = self.packets.first_key_value() {
            if ts >= p.next_ts {
                break;
            }
            self.packets.remove(&ts);
            self.stats.late += 1;
        }

        match self.packets.first_key_value().map(|(&ts, s)| (ts, s.seq)) {
            Some((ts, _)) if ts == p.next_ts => {
                let Some(stored) = self.packets.remove(&ts) else {
                    return;
                };
                match self.decoder.decode(&stored.payload, &mut self.scratch) {
                    Ok(n) if n > 0 => {
                        self.conceal_run = 0;
                        let n = n.min(MAX_PACKET_SAMPLES);
                        self.pcm
                            .extend(self.scratch.iter().take(n * channels).copied());
                        p.next_ts += n as i64;
                    }
                    _ => {
                        // A decode error (or nothing decoded): conceal the packet's duration.
                        self.stats.decode_errors += 1;
                        mix.concealed = true;
                        self.conceal_samples(stored.samples.max(1));
                        p.next_ts += stored.samples.max(1);
                    }
                }
                p.last_seq = Some(stored.seq);
                p.stalled_samples = 0;
                p.stalled_frames = 0;
            }
            Some((ts, seq)) => {
                // Audio concealed while stalled already filled the start of the gap.
                let skip = p.stalled_samples.min(ts - p.next_ts);
                p.next_ts += skip;
                p.stalled_samples = 0;
                let gap = ts - p.next_ts;
                let contiguous = p.last_seq.is_some_and(|last| seq == last + 1);
                if contiguous {
                    // DTX: the sender paused on purpose; concealment played while
                    // stalled was comfort noise.
                    let reclassified = p.stalled_frames.min(self.stats.concealed);
                    self.stats.concealed -= reclassified;
                    self.stats.comfort_noise += reclassified;
                    p.stalled_frames = 0;
                    if gap > 0 {
                        let n = gap.min(FRAME_SAMPLES as i64);
                        mix.comfort = true;
                        self.conceal_samples(n);
                        p.next_ts += n;
                    }
                } else {
                    p.stalled_frames = 0;
                    if gap > 0 {
                        let n = gap.min(FRAME_SAMPLES as i64);
                        // FEC only rebuilds the frame right before the buffered packet.
                        let fec_ok = gap <= FRAME_SAMPLES as i64
                            && self.packets.get(&ts).is_some_and(|next| {
                                self.decoder
                                    .decode_fec(&next.payload, &mut self.scratch)
                                    .is_ok()
                            });
                        if fec_ok {
                            self.conceal_run = 0;
                            mix.fec = true;
                            let take = usize::try_from(n).unwrap_or(0) * channels;
                            self.pcm.extend(self.scratch.iter().take(take).copied());
                        } else {
                            mix.concealed = true;
                            self.conceal_samples(n);
                        }
                        p.next_ts += n;
                    }
                }
            }
            None => {
                // Underrun: conceal and wait for the packet (the delay grows).
                mix.concealed = true;
                self.conceal_samples(FRAME_SAMPLES as i64);
                p.stalled_samples += FRAME_SAMPLES as i64;
            }
        }
        self.playout = Some(p);
    }

    /// Appends `n` (1..=960) samples per channel of PLC. Like NetEq's expand, a long
    /// concealment fades out: opus PLC repeats the last pitch for as long as it is
    /// asked, which turns a stream that stopped (hold, a dropped sender) into an endless
    /// drone. After [`CONCEAL_FULL`] steps the gain falls linearly to zero over
    /// [`CONCEAL_FADE`] steps, then silence follows.
    fn conceal_samples(&mut self, n: i64) {
        let channels = self.config.channels.count();
        let mut left = usize::try_from(n).unwrap_or(0).max(1);
        while left > 0 {
            let take = left.min(FRAME_SAMPLES);
            self.conceal_run = self.conceal_run.saturating_add(1);
            let faded = self.conceal_run.saturating_sub(CONCEAL_FULL);
            if faded >= CONCEAL_FADE || self.decoder.conceal(&mut self.scratch).is_err() {
                self.scratch.fill(0);
            } else if faded > 0 {
                let gain = 1.0 - f64::from(faded) / f64::from(CONCEAL_FADE);
                for s in &mut self.scratch {
                    *s = (f64::from(*s) * gain) as i16;
                }
            }
            self.pcm
                .extend(self.scratch.iter().take(take * channels).copied());
            left -= take;
        }
    }

    fn update_delay(&mut self, now_ms: f64, d: f64) {
        // Sliding minimum of d over the window (monotonic deque).
        while self.min_window.back().is_some_and(|&(_, v)| v >= d) {
            self.min_window.pop_back();
        }
        self.min_window.push_back((now_ms, d));
        while self
            .min_window
            .front()
            .is_some_and(|&(t, _)| t < now_ms - MIN_WINDOW_MS)
            || self.min_window.len() > MIN_WINDOW_ENTRIES
        {
            self.min_window.pop_front();
        }
        let min = self.min_window.front().map_or(d, |&(_, v)| v);
        let r = (d - min).max(0.0);

        let last = self.histogram.len() - 1;
        let bucket = ((r / BUCKET_MS) as usize).min(last);
        for b in &mut self.histogram {
            *b *= FORGET;
        }
        if let Some(b) = self.histogram.get_mut(bucket) {
            *b += 1.0 - FORGET;
        }
        let total: f64 = self.histogram.iter().sum();
        let mut acc = 0.0;
        let mut q_ms = last as f64 * BUCKET_MS;
        for (i, &b) in self.histogram.iter().enumerate() {
            acc += b;
            if acc >= QUANTILE * total {
                q_ms = (i + 1) as f64 * BUCKET_MS;
                break;
            }
        }
        self.target_ms = clamp_ms(
            q_ms + HEADROOM_MS,
            duration_ms(self.config.min_delay),
            duration_ms(self.config.max_delay),
        );
    }

    /// `playout time(ts) − (min d + ts)` at the playout point, in ms.
    fn current_delay_ms(&self) -> f64 {
        let (Some(p), Some((_, base_ts)), Some(&(_, min))) =
            (self.playout, self.base, self.min_window.front())
        else {
            return 0.0;
        };
        let queued = (self.pcm.len() / self.config.channels.count()) as f64;
        // Audio concealed while stalled counts as played: if the stall is a DTX gap,
        // it was; if a late packet turns up, the delay grows when it plays.
        let ts_ms = (p.next_ts + p.stalled_samples - base_ts) as f64 / SAMPLES_PER_MS;
        duration_ms(p.next_pull) + queued / SAMPLES_PER_MS - ts_ms - min
    }
}

fn is_quiet(pcm: &[i16]) -> bool {
    crate::analysis::mean_square(pcm) < QUIET_MEAN_SQUARE
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn duration_ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn ms_since(base: Instant, now: Instant) -> f64 {
    duration_ms(now.saturating_duration_since(base))
}

fn clamp_ms(v: f64, lo: f64, hi: f64) -> f64 {
    v.max(lo).min(hi.max(lo))
}

#[cfg(test)]
mod tests {
    use ringwire_netsim::{Jitter, Link, LinkConfig};

    use super::*;
    use crate::analysis::{dominant_frequency, tone, tone_snr_windowed};
    use crate::codec::{Encoder, OpusConfig};

    const TONE_HZ: f64 = 440.0;

    /// One scenario: a 440 Hz tone (optionally with a silent stretch sent with DTX)
    /// over a netsim link into a jitter buffer pulled on the receiver's clock.
    struct Scenario {
        link: LinkConfig,
        seed: u64,
        seconds: usize,
        /// Sender clock rate relative to the receiver (1.001 = 0.1 % fast).
        drift: f64,
        first_seq: u16,
        first_ts: u32,
        /// Frames in this range are silence (DTX: 1- and 2-byte packets are not sent).
        silent: std::ops::Range<usize>,
    }

    impl Scenario {
        fn new(link: LinkConfig, seed: u64) -> Self {
            Self {
                link,
                seed,
                seconds: 20,
                drift: 1.0,
                first_seq: 1000,
                first_ts: 12345,
                silent: 0..0,
            }
        }
    }

    struct Outcome {
        stats: JitterStats,
        /// Mono output after the first second.
        pcm: Vec<i16>,
        /// Largest current delay seen after the first 2 s.
        max_delay: Duration,
        /// Largest target seen.
        max_target: Duration,
    }

    fn run(s: &Scenario) -> Outcome {
        let frames = s.seconds * 50;
        // libopus' DTX treats a steady pure tone as background noise after ~2 s and
        // stops sending it, so DTX is on only where the scenario has silence.
        let mut enc = Encoder::new(OpusConfig {
            packet_loss_perc: 15,
            dtx: !s.silent.is_empty(),
            ..OpusConfig::default()
        })
        .unwrap();
        let mut jb = JitterBuffer::new(JitterConfig::default()).unwrap();
        let mut link: Link<AudioPacket> =
            Link::with_size_fn(s.link.clone(), s.seed, |p| p.payload.len() + 40);
        let t0 = Instant::now();
        let send_at = |i: usize| t0 + Duration::from_secs_f64(i as f64 * 0.020 / s.drift);
        // Stop pulling at the last send, before the buffer runs dry at the stream's end.
        let end = send_at(frames - 1);

        let mut next_frame = 0usize;
        let mut seq = s.first_seq;
        let mut out = Vec::new();
        let (mut max_delay, mut max_target) = (Duration::ZERO, Duration::ZERO);
        let mut pcm = vec![0i16; FRAME_SAMPLES];
        loop {
            let mut now = end;
            if next_frame < frames {
                now = now.min(send_at(next_frame));
            }
            if let Some(t) = link.poll_timeout() {
                now = now.min(t);
            }
            if let Some(t) = jb.poll_timeout() {
                now = now.min(t);
            }
            if now >= end {
                break;
            }
            while next_frame < frames && send_at(next_frame) <= now {
                if s.silent.contains(&next_frame) {
                    pcm.fill(0);
                } else {
                    tone(
                        TONE_HZ,
                        8000.0,
                        SAMPLE_RATE,
                        (next_frame * FRAME_SAMPLES) as u64,
                        &mut pcm,
                    );
                }
                let payload = enc.encode_to_vec(&pcm).unwrap();
                let ts = s.first_ts.wrapping_add((next_frame * FRAME_SAMPLES) as u32);
                if payload.len() > 2 {
                    let packet = AudioPacket {
                        seq,
                        timestamp: ts,
                        payload,
                        marker: false,
                    };
                    link.send(packet, now);
                    seq = seq.wrapping_add(1);
                }
                next_frame += 1;
            }
            while let Some(p) = link.poll_receive(now) {
                jb.handle_packet(p, now);
            }
            while let Some(frame) = jb.poll_frame(now) {
                out.extend(frame.pcm);
            }
            if now >= t0 + Duration::from_secs(2) {
                let st = jb.stats();
                max_delay = max_delay.max(st.current_delay);
                max_target = max_target.max(st.target_delay);
            }
        }
        Outcome {
            stats: jb.stats(),
            pcm: out.split_off(out.len().min(48_000)),
            max_delay,
            max_target,
        }
    }

    fn assert_tone(o: &Outcome, min_snr: f64, what: &str) {
        let f = dominant_frequency(&o.pcm, SAMPLE_RATE, 200.0..=1000.0, 10.0);
        assert_eq!(f, Some(TONE_HZ), "{what}: dominant frequency");
        let snr = tone_snr_windowed(&o.pcm, TONE_HZ, SAMPLE_RATE, 4800);
        assert!(
            snr > min_snr,
            "{what}: tone snr {snr:.1} dB, stats {:?}",
            o.stats
        );
    }

    #[test]
    fn clean_link_plays_everything_at_a_small_delay() {
        let o = run(&Scenario::new(
            LinkConfig::perfect().with_latency(Duration::from_millis(30)),
            1,
        ));
        let st = o.stats;
        assert_eq!(st.late + st.duplicates + st.discarded, 0, "{st:?}");
        assert!(st.concealed_ratio() < 0.01, "{st:?}");
        assert!(
            o.max_delay <= Duration::from_millis(100),
            "{st:?} max {:?}",
            o.max_delay
        );
        assert_tone(&o, 10.0, "clean");
    }

    #[test]
    fn loss_is_concealed_within_bounds() {
        // (loss, jitter max, concealed ratio bound, delay bound)
        let cases = [
            (0.0, 0, 0.01, 100),
            (0.05, 20, 0.08, 150),
            (0.15, 80, 0.22, 250),
            (0.0, 80, 0.05, 250),
        ];
        for (loss, jitter, max_concealed, max_delay) in cases {
            for seed in [1, 2, 3] {
                let link = LinkConfig::lossy(loss).with_jitter(Jitter::Uniform {
                    max: Duration::from_millis(jitter),
                });
                let o = run(&Scenario::new(link, seed));
                let st = o.stats;
                let what = format!("loss {loss} jitter {jitter} ms seed {seed}");
                assert!(st.concealed_ratio() <= max_concealed, "{what}: {st:?}");
                assert!(
                    o.max_delay <= Duration::from_millis(max_delay),
                    "{what}: max delay {:?}, {st:?}",
                    o.max_delay
                );
                assert!(
                    o.max_target <= Duration::from_millis(max_delay),
                    "{what}: {st:?}"
                );
                if loss > 0.0 {
                    assert!(st.fec > 0, "{what}: fec never used, {st:?}");
                }
                assert_tone(&o, if loss > 0.1 { 3.0 } else { 6.0 }, &what);
            }
        }
    }

    #[test]
    fn reordering_and_duplicates_are_absorbed() {
        for seed in [1, 2, 3] {
            let link = LinkConfig::lossy(0.0)
                .with_reorder(0.1, Duration::from_millis(30))
                .with_duplicate(0.05);
            let o = run(&Scenario::new(link, seed));
            let st = o.stats;
            assert!(st.reordered > 0 && st.duplicates > 0, "seed {seed}: {st:?}");
            assert!(st.concealed_ratio() < 0.05, "seed {seed}: {st:?}");
            assert_tone(&o, 6.0, "reorder");
        }
    }

    #[test]
    fn clock_drift_is_followed_by_dropping_and_inserting_frames() {
        for (drift, fast) in [(1.001, true), (0.999, false)] {
            let mut s = Scenario::new(LinkConfig::lossy(0.0), 7);
            s.seconds = 60;
            s.drift = drift;
            let o = run(&s);
            let st = o.stats;
            if fast {
                assert!(st.dropped >= 1, "fast sender: {st:?}");
            } else {
                assert!(st.inserted + st.concealed >= 1, "slow sender: {st:?}");
            }
            assert!(
                o.max_delay <= Duration::from_millis(150),
                "drift {drift}: max {:?} {st:?}",
                o.max_delay
            );
            assert!(st.concealed_ratio() < 0.03, "drift {drift}: {st:?}");
            assert_tone(&o, 6.0, "drift");
        }
    }

    #[test]
    fn sequence_and_timestamp_wrap_around() {
        let mut s = Scenario::new(LinkConfig::lossy(0.05), 4);
        s.first_seq = 65_500;
        s.first_ts = u32::MAX - 960 * 20;
        s.seconds = 5;
        let o = run(&s);
        let st = o.stats;
        assert_eq!(st.resyncs, 0, "{st:?}");
        assert!(st.concealed_ratio() < 0.12, "{st:?}");
        assert!(st.decoded > 200, "{st:?}");
        assert_tone(&o, 6.0, "wrap");
    }

    #[test]
    fn dtx_gaps_are_comfort_noise_not_loss() {
        let mut s = Scenario::new(LinkConfig::lossy(0.0), 5);
        s.seconds = 8;
        s.silent = 100..250;
        let o = run(&s);
        let st = o.stats;
        assert!(st.comfort_noise > 50, "{st:?}");
        assert!(st.concealed_ratio() < 0.03, "{st:?}");
        assert_eq!(st.late, 0, "{st:?}");
        assert!(
            o.max_delay <= Duration::from_millis(150),
            "max {:?} {st:?}",
            o.max_delay
        );
    }

    #[test]
    fn odd_input_never_panics_and_memory_stays_bounded() {
        let mut jb = JitterBuffer::new(JitterConfig::default()).unwrap();
        let t0 = Instant::now();
        let mut enc = Encoder::new(OpusConfig::default()).unwrap();
        let good = enc.encode_to_vec(&[0; FRAME_SAMPLES]).unwrap();
        for i in 0..2000u32 {
            let payload = match i % 4 {
                0 => good.clone(),
                1 => vec![0xff; (i % 50) as usize],
                2 => vec![0x03],
                _ => vec![0; 3000],
            };
            let seq = (i.wrapping_mul(7919) % 65_536) as u16;
            let ts = i.wrapping_mul(2_654_435_761);
            let at = t0 + Duration::from_millis(u64::from(i % 97));
            jb.handle_packet(
                AudioPacket {
                    seq,
                    timestamp: ts,
                    payload,
                    marker: i % 3 == 0,
                },
                at,
            );
            assert!(jb.len() <= 100);
            let _ = jb.poll_frame(at + Duration::from_millis(u64::from(i)));
        }
        assert!(jb.stats().discarded > 0);
    }
}
