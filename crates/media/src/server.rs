//! The server's media plane: one UDP socket, many str0m `Rtc`s, one room per call.
//!
//! Sans-IO like everything in this crate. The caller owns the socket and feeds every
//! datagram to [`MediaServer::handle_receive`]; the server finds the participant it
//! belongs to the way str0m's own examples do (`Rtc::accepts`: the nominated remote
//! address, or STUN credentials while ICE runs), remembering source addresses so the
//! usual packet needs one lookup instead of a scan.
//!
//! Each room feeds a [`Mixer`] and a [`DominantSpeaker`] detector:
//!
//! - with two connected participants the mixer forwards each packet unchanged to the
//!   other side as it arrives (no decoding);
//! - with more, packets wait in a short per-participant queue (ordered by sequence
//!   number, primed with two packets, at most [`QUEUE_MAX`]) so each 20 ms mixer tick
//!   sees one packet per talker despite arrival jitter; the mixer picks the K loudest by
//!   their RFC 6464 level and sends every listener one opus stream;
//! - levels of unmuted participants feed speaker detection, whose changes come out as
//!   [`ServerEvent::DominantSpeakers`].
//!
//! Outgoing RTP time is kept per listener so its stream stays continuous when the room
//! moves between forwarding and mixing: forwarded packets advance it by the sender's own
//! timestamp step, mixed ones by the time elapsed in whole frames.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::bwe::{Bitrate, BweKind};
use str0m::change::SdpOffer;
use str0m::format::{CodecSpec, PayloadParams};
use str0m::media::{
    Direction, KeyframeRequestKind, MediaData, MediaKind, MediaTime, Mid, Pt, Rid, Writer,
};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use crate::codec::{FRAME_DURATION, FRAME_SAMPLES};
use crate::mixer::{MixKind, MixOutput, Mixer, MixerConfig};
use crate::router::{Router, RouterConfig, RouterEvent, StreamId, StreamKind, SubscriberKind};
use crate::rtc::{
    H264_CONSTRAINED_BASELINE, MediaError, Transmit, level_from_ext, opus_pt, opus_time,
    receive_input, server_rtc_config,
};
use crate::speaker::{DominantSpeaker, SpeakerConfig, SpeakerEvent};
use crate::video_codec::h264_picture_size;

/// The most packets a participant's mixing queue holds; older ones are dropped (the
/// sender runs fast or arrived in a burst).
pub const QUEUE_MAX: usize = 4;

/// Missed mixer ticks run late, at most this many in a row (100 ms); further behind,
/// the mixer skips ahead.
const MAX_CATCH_UP: usize = 5;

/// Packets a queue collects before the mixer starts taking one per tick.
const QUEUE_PRIME: usize = 2;

/// How long a published stream's bitrate is measured before the router hears it.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// What a participant's audio takes, bits per second (opus at its default rate plus
/// RTP/SRTP overhead): the floor of its bandwidth estimate's probing.
const AUDIO_BPS: u64 = 64_000;

/// Settings of a [`MediaServer`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MediaServerConfig {
    /// The address put in answers as the ICE host candidate: the socket's bound address,
    /// or the public address in front of it.
    pub candidate: SocketAddr,
    /// The group mixer.
    pub mixer: MixerConfig,
    /// Dominant speaker detection.
    pub speaker: SpeakerConfig,
    /// Video routing (slots per client kind, key-frame throttling).
    pub router: RouterConfig,
    /// Send-side bandwidth estimation (str0m's TWCC estimator) toward participants who
    /// receive video, handed to the router so a subscriber gets only the streams its
    /// path carries (see [`crate::router`] for how an estimate is believed). Off by
    /// default: str0m paces what it sends at its estimate, and on a busy machine its
    /// delay-based detector reads CPU scheduling delay as queueing (the loopback
    /// end-to-end tests on two loaded cores cut a viewer of six cameras to one and then
    /// starved that one). On a real path with a constrained link it moves a viewer to
    /// a lower simulcast layer and back (`simulcast_layers_follow_each_subscribers_path`).
    /// Off, stream bitrates are measured only to order simulcast layers, and every
    /// subscriber gets all its slots at the top layer.
    pub bandwidth_estimation: bool,
}

impl MediaServerConfig {
    /// Defaults for a socket reachable at `candidate`.
    #[must_use]
    pub fn new(candidate: SocketAddr) -> Self {
        Self {
            candidate,
            mixer: MixerConfig::default(),
            speaker: SpeakerConfig::default(),
            router: RouterConfig::default(),
            bandwidth_estimation: false,
        }
    }
}

/// What a [`MediaServer`] reports to signaling.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent<C, P> {
    /// A participant's media is up (ICE, DTLS, SRTP).
    Connected {
        /// The call.
        call: C,
        /// Who.
        participant: P,
    },
    /// A participant's media failed after it was set up; it gets and sends nothing.
    Failed {
        /// The call.
        call: C,
        /// Who.
        participant: P,
        /// Why, for logs.
        reason: String,
    },
    /// The call's dominant speakers changed, most dominant first.
    DominantSpeakers {
        /// The call.
        call: C,
        /// Most dominant first.
        speakers: Vec<P>,
    },
    /// What a participant's receive slots show changed: tell it, so it can put each
    /// slot's pictures on the right remote participant.
    VideoSlots {
        /// The call.
        call: C,
        /// The subscriber.
        participant: P,
        /// Every slot it offered, in offer order.
        slots: Vec<VideoSlot<P>>,
    },
}

/// One opus packet (20 ms) for a local participant: the mix it hears, or in a
/// two-party call the other side's packet unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAudio<C, P> {
    /// The call.
    pub call: C,
    /// The local participant.
    pub participant: P,
    /// The opus packet.
    pub packet: Arc<[u8]>,
    /// Its RTP time (48 kHz), continuous across forwarding and mixing.
    pub rtp_time: u64,
}

/// One of a subscriber's video receive slots (an SDP `recvonly` video section).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoSlot<P> {
    /// The section's `a=mid`.
    pub mid: String,
    /// The stream it carries now, if any.
    pub stream: Option<StreamId<P>>,
}

/// Counters of a [`MediaServer`], summed over all rooms, closed ones included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MediaServerStats {
    /// Calls with a media room now.
    pub rooms: usize,
    /// Participants in media rooms now.
    pub participants: usize,
    /// Participants whose media is connected now.
    pub connected: usize,
    /// Datagrams received that belonged to a participant.
    pub datagrams_in: u64,
    /// Packets handed to local participants.
    pub local_out: u64,
    /// Datagrams nobody claimed (stray or garbage).
    pub datagrams_unknown: u64,
    /// Datagrams a participant's `Rtc` refused (dropped; the participant stays).
    pub datagrams_rejected: u64,
    /// Datagrams sent.
    pub datagrams_out: u64,
    /// Audio packets received.
    pub audio_in: u64,
    /// Audio packets written to listeners (one per listener).
    pub audio_out: u64,
    /// Packets forwarded unchanged (two-party rooms).
    pub forwarded: u64,
    /// Packets the mixers decoded.
    pub decoded: u64,
    /// Frames the mixers encoded.
    pub encoded: u64,
    /// Packets dropped from full mixing queues or out of order.
    pub queue_dropped: u64,
    /// Offers refused.
    pub offers_refused: u64,
    /// Video frames received from publishers.
    pub video_in: u64,
    /// Video frames written to subscribers (one per subscriber).
    pub video_out: u64,
    /// Video frames held back until the subscriber's slot gets a key frame.
    pub video_awaiting_keyframe: u64,
    /// Key-frame requests sent to publishers.
    pub keyframe_requests: u64,
    /// Bandwidth estimates handed to the video router (TWCC, per subscriber).
    pub bandwidth_estimates: u64,
    /// The latest of those, bits per second (0 before the first).
    pub last_bandwidth_estimate: u64,
}

/// The server's media plane. See the [module docs](self).
pub struct MediaServer<C, P> {
    config: MediaServerConfig,
    rooms: BTreeMap<C, Room<P>>,
    /// Source address -> participant, learned from accepted datagrams.
    routes: HashMap<SocketAddr, (C, P)>,
    outbox: Outbox,
    local_out: VecDeque<LocalAudio<C, P>>,
    /// Peer id -> who, for the deadline heap.
    peers: HashMap<u64, (C, P)>,
    next_peer: u64,
    events: VecDeque<ServerEvent<C, P>>,
    stats: MediaServerStats,
    /// Mixer counters of rooms already closed.
    retired: (u64, u64, u64),
    /// Scratch for what one `Rtc` drain produced.
    drained: Drained,
    /// Scratch for the subscribers of one forwarded video frame.
    receivers: Vec<P>,
    /// The latest time seen, for the router where an input has no `now` (`leave`); no
    /// router holds anyone before the first time is seen.
    now: Option<Instant>,
}

impl<C, P> std::fmt::Debug for MediaServer<C, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaServer")
            .field("rooms", &self.rooms.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

struct Room<P> {
    members: BTreeMap<P, Member<P>>,
    mixer: Mixer<P>,
    speakers: DominantSpeaker<P>,
    router: Router<P>,
    /// Participants get their own video back after this long (the echo service).
    loopback: Option<Duration>,
    /// Looped-back frames waiting for their time: (due, stream, frame).
    delayed: VecDeque<(Instant, StreamId<P>, HeldFrame)>,
}

struct Member<P> {
    peer: Option<Peer<P>>,
    /// A local participant (phone leg, echo service): no `Rtc`, audio in and out
    /// through [`MediaServer::send_local_audio`] / [`MediaServer::poll_local_audio`].
    local: bool,
    kind: SubscriberKind,
    /// The video it publishes, per signaling.
    video: Option<StreamKind>,
    muted: bool,
    on_hold: bool,
    /// Sequence-ordered packets waiting for mixer ticks: (seq, level, opus).
    queue: BTreeMap<u64, (u8, Arc<[u8]>)>,
    primed: bool,
    /// The highest sequence number taken from the queue (older arrivals are late).
    taken: Option<u64>,
    clock: OutClock,
    /// The simulcast layers of the video it publishes (one, with no stream id, without
    /// simulcast), lowest bitrate first: the router's layer numbers index this.
    layers: Vec<Layer>,
}

/// One simulcast layer of a published video, as received.
#[derive(Debug)]
struct Layer {
    rid: Option<Rid>,
    meter: RateMeter,
    /// Its picture size in pixels, from the last key frame's sequence parameter set.
    pixels: Option<u64>,
}

/// Puts a publisher's layers lowest first: by picture size once every layer's is known
/// (a still scene makes a large layer as cheap as a small one), by bitrate until then.
fn order_layers(layers: &mut [Layer]) {
    if layers.iter().all(|l| l.pixels.is_some()) {
        layers.sort_by_key(|l| (l.pixels, l.meter.reported));
    } else {
        layers.sort_by_key(|l| l.meter.reported);
    }
}

/// The layer of `layers` a packet with `rid` belongs to, learning new ones as they
/// come (a browser may start a layer late).
fn layer_of(layers: &mut Vec<Layer>, rid: Option<Rid>) -> usize {
    if let Some(i) = layers.iter().position(|l| l.rid == rid) {
        return i;
    }
    layers.push(Layer {
        rid,
        meter: RateMeter::default(),
        pixels: None,
    });
    layers.len() - 1
}

/// Measures a published stream's bitrate over one-second windows, so the router can
/// weigh streams against a subscriber's bandwidth estimate. A new figure is reported
/// only when it moved by a fifth: the router reselects on every report.
#[derive(Debug, Default)]
struct RateMeter {
    window_start: Option<Instant>,
    bytes: u64,
    reported: u64,
}

impl RateMeter {
    /// Counts `bytes` received at `at`; the bitrate when a window closes with a figure
    /// worth reporting.
    fn add(&mut self, bytes: usize, at: Instant) -> Option<u64> {
        let start = *self.window_start.get_or_insert(at);
        self.bytes += bytes as u64;
        let elapsed = at.saturating_duration_since(start);
        if elapsed < RATE_WINDOW {
            return None;
        }
        let bps = (self.bytes as f64 * 8.0 / elapsed.as_secs_f64()) as u64;
        self.window_start = Some(at);
        self.bytes = 0;
        let moved = bps.abs_diff(self.reported) * 5 > self.reported;
        moved.then(|| {
            self.reported = bps;
            bps
        })
    }
}

struct Peer<P> {
    /// Unique for the server's lifetime (deadline heap entries name peers by it).
    id: u64,
    rtc: Rtc,
    mid: Option<Mid>,
    pt: Option<Pt>,
    /// The video section it publishes on (server side `recvonly`).
    publish: Option<Mid>,
    /// Its video receive slots (server side `sendonly`), in offer order.
    slots: Vec<Slot<P>>,
    connected: bool,
    /// The bitrate its bandwidth estimator was last asked to probe for (0: never).
    desired: u64,
    /// Its bandwidth estimator's last estimate.
    estimate: Option<u64>,
    /// When its estimator was last restarted ([`restart_estimate`]).
    restarted: Option<Instant>,
    /// The video bitrate it received when [`restart_estimate`] last looked.
    receiving: u64,
    /// Where its datagrams come from, once known (for routing and purging).
    remote: Option<SocketAddr>,
    timeout: Option<Instant>,
}

struct Slot<P> {
    mid: Mid,
    stream: Option<StreamId<P>>,
    /// The simulcast layer of the stream it forwards (`None` also without simulcast).
    rid: Option<Rid>,
    /// Nothing is forwarded into a slot until a key frame: before it the decoder
    /// could only show garbage.
    awaiting_keyframe: bool,
    /// Added to the source's RTP time: the slot's outgoing time runs on without a jump
    /// when it changes stream or layer (each has its own random offset).
    ts_offset: u64,
    /// The outgoing RTP time and arrival of the last frame written.
    last: Option<(u64, Instant)>,
    /// The next frame written starts a new source: compute `ts_offset` afresh.
    rebase: bool,
    /// The PT this section sends the source's format on, found for the first frame:
    /// the match scans the section's payload params, too much for every frame of
    /// every subscriber. Keyed by the source's PT and codec in case the publisher
    /// renegotiates; forgotten on a switch.
    pt: Option<(Pt, CodecSpec, Pt)>,
}

impl<P> Slot<P> {
    fn new(mid: Mid) -> Self {
        Self {
            mid,
            stream: None,
            rid: None,
            awaiting_keyframe: true,
            ts_offset: 0,
            last: None,
            rebase: true,
            pt: None,
        }
    }

    /// Forwards another stream or layer from now on: wait for its key frame, and keep
    /// the outgoing clock continuous.
    fn switch(&mut self, stream: Option<StreamId<P>>, rid: Option<Rid>) {
        self.stream = stream;
        self.rid = rid;
        self.awaiting_keyframe = true;
        self.rebase = true;
        self.pt = None;
    }

    /// The outgoing RTP time (90 kHz) of a frame with source time `source` that
    /// arrived at `at`.
    fn out_time(&mut self, source: u64, at: Instant) -> u64 {
        if self.rebase {
            self.rebase = false;
            let target = match self.last {
                Some((ts, then)) => {
                    let elapsed = at.saturating_duration_since(then).as_secs_f64();
                    // At least one tick later, so a receiver never sees time stand still.
                    ts.wrapping_add(
                        (elapsed * f64::from(crate::rtc::VIDEO_CLOCK.get())).max(1.0) as u64,
                    )
                }
                None => source,
            };
            self.ts_offset = target.wrapping_sub(source);
        }
        let out = source.wrapping_add(self.ts_offset);
        self.last = Some((out, at));
        out
    }
}

/// The RTP clock of one listener's outgoing stream.
#[derive(Default)]
struct OutClock {
    /// RTP time of the last packet written, in samples.
    ts: u64,
    last: Option<Instant>,
    /// The forwarded sender's RTP time of the last forwarded packet.
    forwarded_from: Option<u64>,
}

impl OutClock {
    /// The RTP time for a packet written at `now`; `source_ts` for forwarded packets.
    fn next(&mut self, now: Instant, source_ts: Option<u64>) -> u64 {
        let step = match (self.last, source_ts, self.forwarded_from) {
            (None, _, _) => 0,
            (Some(_), Some(src), Some(prev)) if src > prev && src - prev <= 48_000 * 10 => {
                src - prev
            }
            (Some(last), _, _) => {
                let frames = (now.saturating_duration_since(last).as_secs_f64()
                    / FRAME_DURATION.as_secs_f64())
                .round()
                .max(1.0);
                frames as u64 * FRAME_SAMPLES as u64
            }
        };
        self.ts += step;
        self.last = Some(now);
        self.forwarded_from = source_ts;
        self.ts
    }
}

/// One audio packet drained from a participant's `Rtc`.
struct Incoming {
    seq: u64,
    ts: u64,
    level: u8,
    data: Arc<[u8]>,
    now: Instant,
}

impl<P> Member<P> {
    fn new() -> Self {
        Self {
            peer: None,
            local: false,
            kind: SubscriberKind::Native,
            video: None,
            muted: false,
            on_hold: false,
            queue: BTreeMap::new(),
            primed: false,
            taken: None,
            clock: OutClock::default(),
            layers: Vec::new(),
        }
    }

    fn connected(&self) -> bool {
        self.local || self.peer.as_ref().is_some_and(|p| p.connected)
    }
}

impl<C: Ord + Clone + std::fmt::Debug, P: Ord + Clone + std::fmt::Debug> MediaServer<C, P> {
    /// A media plane with no rooms.
    #[must_use]
    pub fn new(config: MediaServerConfig) -> Self {
        Self {
            config,
            rooms: BTreeMap::new(),
            routes: HashMap::new(),
            outbox: Outbox::default(),
            local_out: VecDeque::new(),
            peers: HashMap::new(),
            next_peer: 0,
            events: VecDeque::new(),
            stats: MediaServerStats::default(),
            retired: (0, 0, 0),
            drained: Drained::default(),
            receivers: Vec::new(),
            now: None,
        }
    }

    /// `participant` is in `call` now and will offer media. Joining twice changes
    /// nothing. Returns an error only when the mixer cannot be built (libopus refused
    /// the configured settings).
    ///
    /// # Errors
    /// [`MediaError::Codec`].
    pub fn join(&mut self, call: &C, participant: &P, _now: Instant) -> Result<(), MediaError> {
        let room = match self.rooms.entry(call.clone()) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => e.insert(Room {
                members: BTreeMap::new(),
                mixer: Mixer::new(self.config.mixer)?,
                speakers: DominantSpeaker::new(self.config.speaker.clone()),
                router: Router::new(self.config.router),
                loopback: None,
                delayed: VecDeque::new(),
            }),
        };
        room.members
            .entry(participant.clone())
            .or_insert_with(Member::new);
        Ok(())
    }

    /// Adds a local participant: one whose audio the caller hands in and takes out as
    /// opus packets, with no `Rtc` (phone legs after transcoding, the echo service).
    /// It counts as connected at once and is mixed like anyone else.
    ///
    /// # Errors
    /// As [`MediaServer::join`].
    pub fn join_local(
        &mut self,
        call: &C,
        participant: &P,
        now: Instant,
    ) -> Result<(), MediaError> {
        self.join(call, participant, now)?;
        self.now = Some(now);
        if let Some(room) = self.rooms.get_mut(call)
            && let Some(member) = room.members.get_mut(participant)
            && !member.local
        {
            member.local = true;
            room.mixer.add_participant(participant.clone(), now);
            room.mixer.set_muted(participant, member.muted);
            room.mixer.set_on_hold(participant, member.on_hold);
        }
        Ok(())
    }

    /// One 20 ms opus packet from a local participant, with its sequence number, RTP
    /// time (48 kHz) and RFC 6464 level (`-dBov`). Ignored for anyone not local.
    #[allow(clippy::too_many_arguments)] // The RTP fields a real packet would carry.
    pub fn send_local_audio(
        &mut self,
        call: &C,
        participant: &P,
        seq: u64,
        rtp_time: u64,
        level: u8,
        packet: &[u8],
        now: Instant,
    ) {
        self.now = Some(now);
        let local = self
            .rooms
            .get(call)
            .and_then(|r| r.members.get(participant))
            .is_some_and(|m| m.local);
        if !local {
            return;
        }
        let mut incoming = vec![Incoming {
            seq,
            ts: rtp_time,
            level,
            data: Arc::from(packet),
            now,
        }];
        self.stats.audio_in += 1;
        self.handle_audio(call, participant, &mut incoming);
    }

    /// The next packet for a local participant.
    pub fn poll_local_audio(&mut self) -> Option<LocalAudio<C, P>> {
        self.local_out.pop_front()
    }

    /// `participant` left `call`: it gets nothing more, not even datagrams already
    /// queued for it.
    pub fn leave(&mut self, call: &C, participant: &P) {
        let Some(room) = self.rooms.get_mut(call) else {
            return;
        };
        if let Some(member) = room.members.remove(participant) {
            room.mixer.remove_participant(participant);
            room.speakers.remove_participant(participant);
            if let Some(now) = self.now {
                room.router.remove_participant(participant, now);
            }
            if member.local {
                self.local_out
                    .retain(|a| !(&a.call == call && &a.participant == participant));
            }
            if let Some(peer) = member.peer {
                self.forget_peer(peer);
            }
            self.route_video(call);
        }
    }

    /// Whether `participant` is a native or a web client: the number of video slots
    /// it gets by default follows.
    pub fn set_kind(&mut self, call: &C, participant: &P, kind: SubscriberKind) {
        if let Some(member) = self
            .rooms
            .get_mut(call)
            .and_then(|r| r.members.get_mut(participant))
        {
            member.kind = kind;
        }
    }

    /// The video `participant` publishes (camera or screen share, one at a time), as
    /// signaling announced it; `None` when it stopped.
    pub fn set_video(
        &mut self,
        call: &C,
        participant: &P,
        video: Option<StreamKind>,
        now: Instant,
    ) {
        self.now = Some(now);
        let Some(room) = self.rooms.get_mut(call) else {
            return;
        };
        let Some(member) = room.members.get_mut(participant) else {
            return;
        };
        let old = std::mem::replace(&mut member.video, video);
        if old == video {
            return;
        }
        // Another stream: its layers are learned again.
        member.layers.clear();
        let connected = member.connected();
        if let Some(kind) = old {
            room.router.unpublish(
                &StreamId {
                    publisher: participant.clone(),
                    kind,
                },
                now,
            );
        }
        if let (Some(kind), true) = (video, connected) {
            room.router.publish(
                StreamId {
                    publisher: participant.clone(),
                    kind,
                },
                Vec::new(),
                now,
            );
        }
        self.route_video(call);
    }

    /// Whether the call's participants get their own video back, `delay` later (the
    /// echo test service shows a caller its camera); `None` turns it off.
    pub fn set_video_loopback(&mut self, call: &C, delay: Option<Duration>, now: Instant) {
        self.now = Some(now);
        let Some(room) = self.rooms.get_mut(call) else {
            return;
        };
        room.loopback = delay;
        if delay.is_none() {
            room.delayed.clear();
        }
        room.router.set_loopback(delay.is_some(), now);
        self.route_video(call);
    }

    /// A subscriber asks for at most `slots` camera videos (`None`: its kind's
    /// default); and pins a participant's camera first.
    pub fn set_video_preferences(
        &mut self,
        call: &C,
        participant: &P,
        slots: Option<usize>,
        pinned: Option<P>,
        now: Instant,
    ) {
        self.now = Some(now);
        let Some(room) = self.rooms.get_mut(call) else {
            return;
        };
        room.router.request_slots(participant, slots, now);
        room.router.pin(participant, pinned, now);
        self.route_video(call);
    }

    /// What `participant` may send and receive: muted participants are not mixed (nor
    /// counted as speakers); participants on hold neither send nor receive.
    pub fn update(&mut self, call: &C, participant: &P, muted: bool, on_hold: bool) {
        let Some(room) = self.rooms.get_mut(call) else {
            return;
        };
        let Some(member) = room.members.get_mut(participant) else {
            return;
        };
        member.muted = muted;
        member.on_hold = on_hold;
        if muted || on_hold {
            member.queue.clear();
            member.primed = false;
        }
        room.mixer.set_muted(participant, muted);
        room.mixer.set_on_hold(participant, on_hold);
        if muted || on_hold {
            room.speakers.remove_participant(participant);
        }
    }

    /// The call is over: its room and every participant's media go.
    pub fn close_call(&mut self, call: &C) {
        let Some(room) = self.rooms.remove(call) else {
            return;
        };
        let s = room.mixer.stats();
        self.retired.0 += s.forwarded;
        self.retired.1 += s.decoded;
        self.retired.2 += s.encoded;
        self.local_out.retain(|a| &a.call != call);
        for (_, member) in room.members {
            if let Some(peer) = member.peer {
                self.forget_peer(peer);
            }
        }
    }

    /// Answers `participant`'s SDP offer. A new offer replaces the participant's
    /// previous media session (a client that restarted its media).
    ///
    /// # Errors
    /// [`MediaError::NotJoined`] when the participant is not in the call's room;
    /// [`MediaError::InvalidSdp`], [`MediaError::Negotiation`] or
    /// [`MediaError::NoAudio`] for an offer we cannot use. The participant's previous
    /// media, if any, carries on after an error.
    pub fn accept_offer(
        &mut self,
        call: &C,
        participant: &P,
        offer_sdp: &str,
        now: Instant,
    ) -> Result<String, MediaError> {
        let result = self.try_accept_offer(call, participant, offer_sdp, now);
        if result.is_err() {
            self.stats.offers_refused += 1;
        }
        result
    }

    fn try_accept_offer(
        &mut self,
        call: &C,
        participant: &P,
        offer_sdp: &str,
        now: Instant,
    ) -> Result<String, MediaError> {
        if !self
            .rooms
            .get(call)
            .is_some_and(|r| r.members.contains_key(participant))
        {
            return Err(MediaError::NotJoined);
        }
        let offer = SdpOffer::from_sdp_string(offer_sdp).map_err(|e| MediaError::InvalidSdp {
            kind: "offer",
            reason: e.to_string(),
        })?;
        let mids: Vec<Mid> = offer.media_lines.iter().map(|m| m.mid()).collect();
        // More than the audio section: it may receive video, which bandwidth decides.
        let mut rtc =
            server_rtc_config(self.config.bandwidth_estimation && mids.len() > 1).build(now);
        let candidate = Candidate::host(self.config.candidate, "udp")
            .map_err(|_| MediaError::BadCandidate(self.config.candidate))?;
        rtc.add_local_candidate(candidate)
            .ok_or(MediaError::BadCandidate(self.config.candidate))?;
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| MediaError::Negotiation(e.to_string()))?;
        let id = self.next_peer;
        self.next_peer += 1;
        let mut peer = Peer {
            id,
            rtc,
            mid: None,
            pt: None,
            publish: None,
            slots: Vec::new(),
            connected: false,
            desired: 0,
            estimate: None,
            restarted: None,
            receiving: 0,
            remote: None,
            timeout: None,
        };
        // str0m announces sections with `MediaAdded` only once connected; the offer's
        // own sections tell which is which now (directions are ours, the answerer's).
        for mid in mids {
            let Some(media) = peer.rtc.media(mid) else {
                continue;
            };
            match (media.kind(), media.direction()) {
                (MediaKind::Audio, _) if peer.mid.is_none() => peer.mid = Some(mid),
                (MediaKind::Video, Direction::RecvOnly) if peer.publish.is_none() => {
                    peer.publish = Some(mid);
                }
                (MediaKind::Video, Direction::SendOnly) => peer.slots.push(Slot::new(mid)),
                _ => {}
            }
        }
        let mut scratch = Drained::default();
        drain(&mut peer, &mut self.outbox, &mut scratch);
        let Some(mid) = peer.mid else {
            return Err(MediaError::NoAudio);
        };
        if opus_pt(&mut peer.rtc, mid).is_none() {
            return Err(MediaError::NoAudio);
        }
        let old = {
            let Some(member) = self
                .rooms
                .get_mut(call)
                .and_then(|r| r.members.get_mut(participant))
            else {
                return Err(MediaError::NotJoined);
            };
            member.clock = OutClock::default();
            member.layers.clear();
            member.peer.replace(peer)
        };
        self.peers.insert(id, (call.clone(), participant.clone()));
        if let Some(old) = old {
            if let Some(room) = self.rooms.get_mut(call) {
                room.mixer.remove_participant(participant);
                room.router.remove_participant(participant, now);
            }
            self.forget_peer(old);
            self.route_video(call);
        }
        Ok(answer.to_sdp_string())
    }

    /// One datagram from the socket. Returns whether a participant claimed it.
    pub fn handle_receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        datagram: &[u8],
    ) -> bool {
        let Some(input) = receive_input(now, source, destination, datagram) else {
            self.stats.datagrams_unknown += 1;
            return false;
        };
        let Some((call, participant)) = self.route(&input, source) else {
            self.stats.datagrams_unknown += 1;
            return false;
        };
        let Some(peer) = self
            .rooms
            .get_mut(&call)
            .and_then(|r| r.members.get_mut(&participant))
            .and_then(|m| m.peer.as_mut())
        else {
            self.stats.datagrams_unknown += 1;
            return false;
        };
        self.stats.datagrams_in += 1;
        if peer.remote.is_none() {
            peer.remote = Some(source);
        }
        // One bad datagram is dropped, not fatal: anyone able to spoof a participant's
        // address could otherwise eject it. Real failures show as ICE disconnects or
        // `poll_output` errors.
        if let Err(e) = peer.rtc.handle_input(input) {
            self.stats.datagrams_rejected += 1;
            tracing::debug!(?call, ?participant, %e, "datagram rejected");
        }
        self.drive(&call, &participant, now);
        true
    }

    /// Runs whatever is due: str0m timers, mixer ticks, speaker decisions.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due = Vec::new();
        while let Some(&Reverse((at, id))) = self.outbox.deadlines.peek() {
            if at > now {
                break;
            }
            self.outbox.deadlines.pop();
            let Some((call, participant)) = self.peers.get(&id) else {
                continue; // the peer is gone
            };
            let current = self
                .rooms
                .get(call)
                .and_then(|r| r.members.get(participant))
                .and_then(|m| m.peer.as_ref())
                .filter(|p| p.id == id)
                .and_then(|p| p.timeout);
            if current == Some(at) {
                due.push((call.clone(), participant.clone()));
            }
        }
        for (call, participant) in due {
            let result = self
                .rooms
                .get_mut(&call)
                .and_then(|r| r.members.get_mut(&participant))
                .and_then(|m| m.peer.as_mut())
                .map(|peer| peer.rtc.handle_input(Input::Timeout(now)));
            match result {
                Some(Ok(())) => self.drive(&call, &participant, now),
                Some(Err(e)) => self.fail(&call, &participant, format!("timeout: {e}")),
                None => {}
            }
        }

        self.now = Some(now);
        // Only rooms with something due: this runs after every peer timeout (str0m
        // sends each forwarded frame from one), so visiting every room here made every
        // idle call on the server cost each forwarded frame (0.12 µs per call).
        let calls: Vec<C> = self
            .rooms
            .iter()
            .filter(|(_, r)| {
                [
                    r.mixer.poll_timeout(),
                    r.speakers.poll_timeout(),
                    r.router.poll_timeout(),
                    r.delayed.front().map(|(due, ..)| *due),
                ]
                .into_iter()
                .flatten()
                .any(|t| t <= now)
            })
            .map(|(c, _)| c.clone())
            .collect();
        for call in calls {
            self.tick(&call, now);
            if let Some(room) = self.rooms.get_mut(&call) {
                room.router.handle_timeout(now);
            }
            self.route_video(&call);
            self.send_delayed(&call, now);
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let t = self.outbox.transmits.pop_front()?;
        self.stats.datagrams_out += 1;
        Some(t)
    }

    /// The next event for signaling.
    pub fn poll_event(&mut self) -> Option<ServerEvent<C, P>> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        consider(self.outbox.deadlines.peek().map(|Reverse((at, _))| *at));
        for room in self.rooms.values() {
            consider(room.mixer.poll_timeout());
            consider(room.speakers.poll_timeout());
            consider(room.router.poll_timeout());
            consider(room.delayed.front().map(|(due, ..)| *due));
        }
        next
    }

    /// Counters.
    pub fn stats(&self) -> MediaServerStats {
        let mut s = self.stats;
        s.rooms = self.rooms.len();
        s.participants = self.rooms.values().map(|r| r.members.len()).sum();
        s.connected = self
            .rooms
            .values()
            .map(|r| r.members.values().filter(|m| m.connected()).count())
            .sum();
        s.forwarded = self.retired.0;
        s.decoded = self.retired.1;
        s.encoded = self.retired.2;
        for room in self.rooms.values() {
            let m = room.mixer.stats();
            s.forwarded += m.forwarded;
            s.decoded += m.decoded;
            s.encoded += m.encoded;
        }
        s
    }

    /// Which participant a datagram belongs to: the remembered source first, then a
    /// scan asking each `Rtc` (STUN credentials, candidate pairs).
    fn route(&mut self, input: &Input<'_>, source: SocketAddr) -> Option<(C, P)> {
        if let Some((call, participant)) = self.routes.get(&source)
            && let Some(peer) = self
                .rooms
                .get(call)
                .and_then(|r| r.members.get(participant))
                .and_then(|m| m.peer.as_ref())
            && peer.rtc.accepts(input)
        {
            return Some((call.clone(), participant.clone()));
        }
        let found = self.rooms.iter().find_map(|(call, room)| {
            room.members.iter().find_map(|(participant, member)| {
                let peer = member.peer.as_ref()?;
                (peer.rtc.is_alive() && peer.rtc.accepts(input))
                    .then(|| (call.clone(), participant.clone()))
            })
        })?;
        self.routes.insert(source, found.clone());
        Some(found)
    }

    /// Drains one participant's `Rtc` and acts on what came out.
    fn drive(&mut self, call: &C, participant: &P, now: Instant) {
        let Some(room) = self.rooms.get_mut(call) else {
            return;
        };
        let Some(member) = room.members.get_mut(participant) else {
            return;
        };
        let Some(peer) = member.peer.as_mut() else {
            return;
        };
        self.now = Some(now);
        let mut out = std::mem::take(&mut self.drained);
        drain(peer, &mut self.outbox, &mut out);
        let mut failed = None;
        let mut video_changed = false;
        for event in out.events.drain(..) {
            match event {
                PeerEvent::Connected => {
                    room.mixer.add_participant(participant.clone(), now);
                    room.mixer.set_muted(participant, member.muted);
                    room.mixer.set_on_hold(participant, member.on_hold);
                    room.router
                        .add_subscriber(participant.clone(), member.kind, now);
                    if let Some(kind) = member.video {
                        room.router.publish(
                            StreamId {
                                publisher: participant.clone(),
                                kind,
                            },
                            Vec::new(),
                            now,
                        );
                    }
                    video_changed = true;
                    self.events.push_back(ServerEvent::Connected {
                        call: call.clone(),
                        participant: participant.clone(),
                    });
                }
                PeerEvent::AudioAdded(mid) => {
                    if let Some(peer) = member.peer.as_mut() {
                        peer.mid.get_or_insert(mid);
                    }
                }
                PeerEvent::KeyframeRequest(mid) => {
                    let stream = member
                        .peer
                        .as_ref()
                        .and_then(|p| p.slots.iter().find(|s| s.mid == mid))
                        .and_then(|s| s.stream.clone());
                    if let Some(stream) = stream {
                        room.router.handle_loss(participant, &stream, now);
                        video_changed = true;
                    }
                }
                PeerEvent::Bandwidth(bps) => {
                    let Some(peer) = member.peer.as_mut() else {
                        continue;
                    };
                    peer.estimate = Some(bps);
                    if peer.restarted.is_some_and(|t| now < t + ESTIMATE_WINDOW) {
                        continue;
                    }
                    self.stats.bandwidth_estimates += 1;
                    self.stats.last_bandwidth_estimate = bps;
                    tracing::trace!(?participant, bps, "bandwidth estimate");
                    // Its audio comes out of the same estimate.
                    let video = bps.saturating_sub(AUDIO_BPS);
                    room.router.set_bandwidth(participant, Some(video), now);
                    video_changed = true;
                }
                PeerEvent::Failed(reason) => failed = Some(reason),
            }
        }
        if let Some(reason) = failed {
            out.clear();
            self.drained = out;
            self.fail(call, participant, reason);
            return;
        }
        if video_changed {
            self.route_video(call);
        }
        if !out.audio.is_empty() {
            self.stats.audio_in += out.audio.len() as u64;
            self.handle_audio(call, participant, &mut out.audio);
        }
        for data in out.video.drain(..) {
            self.stats.video_in += 1;
            self.forward_video(call, participant, &data);
        }
        out.clear();
        self.drained = out;
    }

    /// Forwards one video frame of `publisher` to the subscribers the router chose,
    /// unchanged (str0m repacketizes it for each).
    fn forward_video(&mut self, call: &C, publisher: &P, data: &MediaData) {
        let now = data.network_time;
        let Some(mut room) = self.rooms.get_mut(call) else {
            return;
        };
        let Some(member) = room.members.get_mut(publisher).filter(|m| !m.on_hold) else {
            return;
        };
        let Some(kind) = member.video else {
            return;
        };
        let stream = StreamId {
            publisher: publisher.clone(),
            kind,
        };
        let layer = layer_of(&mut member.layers, data.rid);
        let keyframe = data.is_keyframe();
        let simulcast = data.rid.is_some() || member.layers.len() > 1;
        let mut resized = false;
        if simulcast && keyframe {
            let pixels = h264_picture_size(&data.data).map(|(w, h)| u64::from(w) * u64::from(h));
            if pixels.is_some() && pixels != member.layers[layer].pixels {
                member.layers[layer].pixels = pixels;
                resized = true;
            }
        }
        // Bitrates matter against bandwidth estimates and to order simulcast layers;
        // without either, a report would make the router reselect everyone for nothing.
        let measured = (self.config.bandwidth_estimation || simulcast)
            .then(|| member.layers[layer].meter.add(data.data.len(), now))
            .flatten();
        if measured.is_some() || resized {
            // Lowest first: the router's layer numbers are positions in this order.
            order_layers(&mut member.layers);
            let bitrates = member.layers.iter().map(|l| l.meter.reported).collect();
            room.router.publish(stream.clone(), bitrates, now);
            if self.config.bandwidth_estimation {
                self.update_demand(call);
            }
            self.route_video(call);
            // The order may have changed under selections that did not.
            self.sync_layers(call, &stream, now);
            if self.config.bandwidth_estimation {
                self.restart_estimates(call, &stream, now);
            }
            let Some(again) = self.rooms.get_mut(call) else {
                return;
            };
            room = again;
        }
        let mut receivers = std::mem::take(&mut self.receivers);
        receivers.clear();
        receivers.extend(room.router.receivers(&stream).map(|(p, _)| p.clone()));
        for subscriber in receivers.drain(..) {
            let Some(member) = room.members.get_mut(&subscriber).filter(|m| !m.on_hold) else {
                continue;
            };
            // Its own stream, looped back by the echo service: later, from the queue.
            if subscriber == *publisher
                && let Some(delay) = room.loopback
            {
                room.delayed
                    .push_back((now + delay, stream.clone(), HeldFrame::from(data)));
                continue;
            }
            if let Some(peer) = member.peer.as_mut().filter(|p| p.connected) {
                let frame = FrameRef::from(data);
                write_video(peer, &stream, frame, now, &mut self.stats, &mut self.outbox);
            }
        }
        self.receivers = receivers;
    }

    /// Sends looped-back frames whose delay is over to their publishers.
    fn send_delayed(&mut self, call: &C, now: Instant) {
        let Some(room) = self.rooms.get_mut(call) else {
            return;
        };
        while room.delayed.front().is_some_and(|(due, ..)| *due <= now) {
            let Some((_, stream, held)) = room.delayed.pop_front() else {
                break;
            };
            let peer = room
                .members
                .get_mut(&stream.publisher)
                .filter(|m| !m.on_hold)
                .and_then(|m| m.peer.as_mut())
                .filter(|p| p.connected);
            if let Some(peer) = peer {
                let frame = held.as_ref();
                write_video(peer, &stream, frame, now, &mut self.stats, &mut self.outbox);
            }
        }
    }

    /// Points every slot that shows `stream` at the simulcast layer the router chose
    /// for its subscriber, after the publisher's layers were reordered; a slot that
    /// moves asks for a key frame of its new layer.
    fn sync_layers(&mut self, call: &C, stream: &StreamId<P>, now: Instant) {
        let Some(room) = self.rooms.get_mut(call) else {
            return;
        };
        let Some(publisher) = room.members.get(&stream.publisher) else {
            return;
        };
        let mut moved = Vec::new();
        for (subscriber, layer) in room.router.receivers(stream) {
            let rid = publisher.layers.get(usize::from(layer)).and_then(|l| l.rid);
            let slot = room
                .members
                .get(subscriber)
                .and_then(|m| m.peer.as_ref())
                .and_then(|p| p.slots.iter().find(|s| s.stream.as_ref() == Some(stream)));
            if slot.is_some_and(|s| s.rid != rid) {
                moved.push((subscriber.clone(), rid));
            }
        }
        for (subscriber, rid) in moved {
            let receiving = room.router.receiving(&subscriber);
            let Some(peer) = room
                .members
                .get_mut(&subscriber)
                .and_then(|m| m.peer.as_mut())
            else {
                continue;
            };
            if let Some(slot) = peer
                .slots
                .iter_mut()
                .find(|s| s.stream.as_ref() == Some(stream))
            {
                slot.switch(Some(stream.clone()), rid);
            }
            if self.config.bandwidth_estimation {
                restart_estimate(peer, receiving, now);
            }
            room.router.handle_loss(&subscriber, stream, now);
        }
        self.route_video(call);
    }

    /// Restarts the estimates of a stream's subscribers whose video grew with its new
    /// bitrate (see [`restart_estimate`]).
    fn restart_estimates(&mut self, call: &C, stream: &StreamId<P>, now: Instant) {
        let Some(room) = self.rooms.get_mut(call) else {
            return;
        };
        let Room {
            members, router, ..
        } = room;
        for (subscriber, _) in router.receivers(stream) {
            if let Some(peer) = members.get_mut(subscriber).and_then(|m| m.peer.as_mut()) {
                restart_estimate(peer, router.receiving(subscriber), now);
            }
        }
    }

    /// Acts on the router's decisions for one call: slot assignments (announced to the
    /// subscriber) and key-frame requests (sent to the publisher).
    fn route_video(&mut self, call: &C) {
        let Some(room) = self.rooms.get_mut(call) else {
            return;
        };
        while let Some(event) = room.router.poll_event() {
            match event {
                RouterEvent::Selection {
                    subscriber,
                    selected,
                } => {
                    let demand = self
                        .config
                        .bandwidth_estimation
                        .then(|| room.router.demand(&subscriber));
                    let wanted: Vec<(StreamId<P>, Option<Rid>)> = selected
                        .into_iter()
                        .map(|sel| {
                            let rid = room
                                .members
                                .get(&sel.stream.publisher)
                                .and_then(|m| m.layers.get(usize::from(sel.layer)))
                                .and_then(|l| l.rid);
                            (sel.stream, rid)
                        })
                        .collect();
                    let Some(peer) = room
                        .members
                        .get_mut(&subscriber)
                        .and_then(|m| m.peer.as_mut())
                    else {
                        continue;
                    };
                    if let Some(demand) = demand {
                        set_desired(peer, demand);
                        if let Some(now) = self.now {
                            restart_estimate(peer, room.router.receiving(&subscriber), now);
                        }
                    }
                    if assign_slots(&mut peer.slots, wanted) {
                        self.events.push_back(ServerEvent::VideoSlots {
                            call: call.clone(),
                            participant: subscriber,
                            slots: peer
                                .slots
                                .iter()
                                .map(|s| VideoSlot {
                                    mid: s.mid.to_string(),
                                    stream: s.stream.clone(),
                                })
                                .collect(),
                        });
                    }
                }
                RouterEvent::KeyframeRequest { stream, layer } => {
                    let Some(member) = room.members.get_mut(&stream.publisher) else {
                        continue;
                    };
                    let rid = member.layers.get(usize::from(layer)).and_then(|l| l.rid);
                    let Some(peer) = member.peer.as_mut().filter(|p| p.connected) else {
                        continue;
                    };
                    let Some(mid) = peer.publish else {
                        continue;
                    };
                    let requested = peer
                        .rtc
                        .writer(mid)
                        .map(|mut w| w.request_keyframe(rid, KeyframeRequestKind::Pli));
                    if let Some(Err(e)) = requested {
                        // Nothing received on that section yet: the next request works.
                        tracing::trace!(?stream, %e, "key-frame request not sent");
                        continue;
                    }
                    self.stats.keyframe_requests += 1;
                    let mut none = Drained::default();
                    drain(peer, &mut self.outbox, &mut none);
                }
            }
        }
    }

    /// Tells every video subscriber's bandwidth estimator what to probe for, after the
    /// streams' bitrates changed.
    fn update_demand(&mut self, call: &C) {
        let Some(room) = self.rooms.get_mut(call) else {
            return;
        };
        for (participant, member) in &mut room.members {
            if let Some(peer) = member.peer.as_mut().filter(|p| !p.slots.is_empty()) {
                set_desired(peer, room.router.demand(participant));
            }
        }
    }

    fn handle_audio(&mut self, call: &C, participant: &P, incoming: &mut Vec<Incoming>) {
        let Some(room) = self.rooms.get_mut(call) else {
            return;
        };
        let Some(member) = room.members.get_mut(participant) else {
            return;
        };
        if member.muted || member.on_hold {
            return;
        }
        let pass_through = room.mixer.mode() == crate::mixer::MixMode::PassThrough;
        let mut forwarded = Vec::new();
        for packet in incoming.drain(..) {
            room.speakers
                .handle_level(participant.clone(), packet.level, packet.now);
            if pass_through {
                room.mixer
                    .handle_packet(participant, packet.level, &packet.data, packet.now);
                while let Some(out) = room.mixer.poll_output() {
                    forwarded.push((out, packet.ts, packet.now));
                }
                continue;
            }
            if member.taken.is_some_and(|t| packet.seq <= t) {
                self.stats.queue_dropped += 1;
                continue;
            }
            member.queue.insert(packet.seq, (packet.level, packet.data));
            while member.queue.len() > QUEUE_MAX {
                member.queue.pop_first();
                self.stats.queue_dropped += 1;
            }
            if member.queue.len() >= QUEUE_PRIME {
                member.primed = true;
            }
        }
        for (out, ts, arrived) in forwarded {
            self.write(call, out, arrived, Some(ts));
        }
    }

    /// A mixer tick and speaker decisions for one room, when due.
    fn tick(&mut self, call: &C, now: Instant) {
        let Some(room) = self.rooms.get_mut(call) else {
            return;
        };
        room.speakers.handle_timeout(now);
        let mut speakers_changed = false;
        while let Some(SpeakerEvent::Changed(speakers)) = room.speakers.poll_event() {
            // Dominant speakers' cameras go first when there are more than slots.
            room.router.set_dominant_speakers(speakers.clone(), now);
            speakers_changed = true;
            self.events.push_back(ServerEvent::DominantSpeakers {
                call: call.clone(),
                speakers,
            });
        }
        if speakers_changed {
            self.route_video(call);
        }
        // Run every tick that is due, each at its own due time, so a late wake-up
        // (a loaded CPU) still gives one 20 ms frame per 20 ms of stream time instead
        // of stretching the listeners' timestamps; far behind, the mixer skips ahead.
        for n in 0..MAX_CATCH_UP {
            let Some(room) = self.rooms.get_mut(call) else {
                return;
            };
            let Some(due) = room.mixer.poll_timeout().filter(|t| *t <= now) else {
                return;
            };
            let at = if n + 1 == MAX_CATCH_UP { now } else { due };
            if room.mixer.mode() == crate::mixer::MixMode::Mixing {
                for (participant, member) in room.members.iter_mut() {
                    if !member.primed {
                        continue;
                    }
                    match member.queue.pop_first() {
                        Some((seq, (level, data))) => {
                            member.taken = Some(seq);
                            room.mixer.handle_packet(participant, level, &data, at);
                        }
                        None => member.primed = false,
                    }
                }
            }
            room.mixer.handle_timeout(at);
            let mut outputs = Vec::new();
            while let Some(out) = room.mixer.poll_output() {
                outputs.push(out);
            }
            for out in outputs {
                self.write(call, out, at, None);
            }
        }
    }

    /// Writes one mixer output to each of its listeners and drains their `Rtc`s.
    fn write(&mut self, call: &C, out: MixOutput<P>, now: Instant, source_ts: Option<u64>) {
        let Some(room) = self.rooms.get_mut(call) else {
            return;
        };
        let data: Arc<[u8]> = out.packet.into();
        let forwarded = matches!(out.kind, MixKind::Forwarded { .. });
        for listener in &out.to {
            let Some(member) = room.members.get_mut(listener) else {
                continue;
            };
            if member.local {
                let ts = member
                    .clock
                    .next(now, if forwarded { source_ts } else { None });
                self.local_out.push_back(LocalAudio {
                    call: call.clone(),
                    participant: listener.clone(),
                    packet: data.clone(),
                    rtp_time: ts,
                });
                self.stats.audio_out += 1;
                self.stats.local_out += 1;
                continue;
            }
            let Some(peer) = member.peer.as_mut().filter(|p| p.connected) else {
                continue;
            };
            let Some(mid) = peer.mid else {
                continue;
            };
            let Some(pt) = peer.pt.or_else(|| opus_pt(&mut peer.rtc, mid)) else {
                continue;
            };
            peer.pt = Some(pt);
            let ts = member
                .clock
                .next(now, if forwarded { source_ts } else { None });
            let Some(writer) = peer.rtc.writer(mid) else {
                continue;
            };
            if let Err(e) = writer.write(pt, now, opus_time(ts), data.clone()) {
                tracing::debug!(?listener, %e, "write failed");
                continue;
            }
            self.stats.audio_out += 1;
            // Only transmits and timeouts come out of a write; media data cannot.
            let mut none = Drained::default();
            drain(peer, &mut self.outbox, &mut none);
        }
    }

    fn fail(&mut self, call: &C, participant: &P, reason: String) {
        let Some(room) = self.rooms.get_mut(call) else {
            return;
        };
        let Some(member) = room.members.get_mut(participant) else {
            return;
        };
        let Some(peer) = member.peer.take() else {
            return;
        };
        tracing::debug!(?call, ?participant, %reason, "participant media failed");
        room.mixer.remove_participant(participant);
        room.speakers.remove_participant(participant);
        if let Some(now) = self.now {
            room.router.remove_participant(participant, now);
        }
        member.queue.clear();
        member.primed = false;
        self.forget_peer(peer);
        self.route_video(call);
        self.events.push_back(ServerEvent::Failed {
            call: call.clone(),
            participant: participant.clone(),
            reason,
        });
    }

    /// Drops a peer's route and whatever is still queued for it.
    fn forget_peer(&mut self, mut peer: Peer<P>) {
        peer.rtc.disconnect();
        self.peers.remove(&peer.id);
        if let Some(remote) = peer.remote {
            // Every address learnt for it, not only the first (ICE may have moved).
            if let Some(key) = self.routes.remove(&remote) {
                self.routes.retain(|_, k| *k != key);
            }
            self.outbox.transmits.retain(|t| t.destination != remote);
        }
    }
}

enum PeerEvent {
    Connected,
    AudioAdded(Mid),
    /// A subscriber asked for a key frame on one of its slots.
    KeyframeRequest(Mid),
    /// The send-side bandwidth estimate toward it, bits per second.
    Bandwidth(u64),
    Failed(String),
}

/// What every `Rtc` drain writes to: datagrams out, and the peers' next deadlines.
///
/// Deadlines are a min-heap with lazy deletion: a peer pushes its deadline whenever it
/// changes, and an entry counts only while it equals the peer's current one. So
/// finding the next deadline and the due peers costs O(log n) per change instead of a
/// walk over every participant after every datagram. Stale entries leave as they
/// reach the top; until then they can only make the caller wake a little early.
#[derive(Default)]
struct Outbox {
    transmits: VecDeque<Transmit>,
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
}

/// What one drain of an `Rtc` produced besides datagrams.
#[derive(Default)]
struct Drained {
    events: Vec<PeerEvent>,
    audio: Vec<Incoming>,
    video: Vec<MediaData>,
}

impl Drained {
    fn clear(&mut self) {
        self.events.clear();
        self.audio.clear();
        self.video.clear();
    }
}

/// What the SFU needs of a received video frame to write it out again.
#[derive(Clone, Copy)]
struct FrameRef<'a> {
    rid: Option<Rid>,
    keyframe: bool,
    time: MediaTime,
    params: PayloadParams,
    data: &'a Arc<[u8]>,
}

impl<'a> From<&'a MediaData> for FrameRef<'a> {
    fn from(data: &'a MediaData) -> Self {
        Self {
            rid: data.rid,
            keyframe: data.is_keyframe(),
            time: data.time,
            params: data.params,
            data: &data.data,
        }
    }
}

/// A [`FrameRef`] kept for later (str0m's `MediaData` is not `Clone`).
struct HeldFrame {
    rid: Option<Rid>,
    keyframe: bool,
    time: MediaTime,
    params: PayloadParams,
    data: Arc<[u8]>,
}

impl From<&MediaData> for HeldFrame {
    fn from(data: &MediaData) -> Self {
        Self {
            rid: data.rid,
            keyframe: data.is_keyframe(),
            time: data.time,
            params: data.params,
            data: data.data.clone(),
        }
    }
}

impl HeldFrame {
    fn as_ref(&self) -> FrameRef<'_> {
        FrameRef {
            rid: self.rid,
            keyframe: self.keyframe,
            time: self.time,
            params: self.params,
            data: &self.data,
        }
    }
}

/// Writes one video frame of `stream` into the slot of `peer` that forwards it (and
/// its simulcast layer): not before the slot has seen a key frame, on the slot's
/// continuous RTP clock, with a payload type negotiated on the slot's section.
fn write_video<P: PartialEq + std::fmt::Debug>(
    peer: &mut Peer<P>,
    stream: &StreamId<P>,
    data: FrameRef<'_>,
    now: Instant,
    stats: &mut MediaServerStats,
    outbox: &mut Outbox,
) {
    let Some(slot) = peer
        .slots
        .iter_mut()
        .find(|s| s.stream.as_ref() == Some(stream) && s.rid == data.rid)
    else {
        return;
    };
    if slot.awaiting_keyframe && !data.keyframe {
        stats.video_awaiting_keyframe += 1;
        return;
    }
    slot.awaiting_keyframe = false;
    let mid = slot.mid;
    let time = MediaTime::new(slot.out_time(data.time.numer(), now), data.time.frequency());
    let (source_pt, spec) = (data.params.pt(), data.params.spec());
    let cached = slot
        .pt
        .filter(|(pt, s, _)| *pt == source_pt && *s == spec)
        .map(|(_, _, pt)| pt);
    let Some(writer) = peer.rtc.writer(mid) else {
        return;
    };
    let Some(pt) = cached.or_else(|| {
        let pt = section_pt(&writer, data.params)?;
        slot.pt = Some((source_pt, spec, pt));
        Some(pt)
    }) else {
        return;
    };
    if let Err(e) = writer.write(pt, now, time, Arc::clone(data.data)) {
        tracing::debug!(publisher = ?stream.publisher, %e, "video write failed");
        return;
    }
    stats.video_out += 1;
    let mut none = Drained::default();
    drain(peer, outbox, &mut none);
}

/// The PT a subscriber's section sends frames of the publisher's `params` on.
///
/// Only a PT negotiated on this section: str0m may match the publisher's format to an
/// entry it renumbered for a browser that never offered it (which then decodes the PT
/// as another codec). Otherwise the same codec and packetization, Constrained Baseline
/// preferred.
fn section_pt(writer: &Writer<'_>, params: PayloadParams) -> Option<Pt> {
    let spec = params.spec();
    writer
        .match_params(params)
        .filter(|pt| writer.payload_params().any(|p| p.pt() == *pt))
        .or_else(|| {
            writer
                .payload_params()
                .filter(|p| {
                    p.spec().codec == spec.codec
                        && p.spec().format.packetization_mode == spec.format.packetization_mode
                })
                .max_by_key(|p| p.spec().format.profile_level_id == Some(H264_CONSTRAINED_BASELINE))
                .map(|p| p.pt())
        })
}

/// Puts `streams` (in priority order, each with the simulcast layer to forward) into
/// `slots`: a stream keeps the slot it has, new ones take free slots in order, streams
/// beyond the slot count are left out. Returns whether which slot shows which stream
/// changed (a layer change alone is the server's business, not the client's).
fn assign_slots<P: PartialEq + Clone>(
    slots: &mut [Slot<P>],
    streams: Vec<(StreamId<P>, Option<Rid>)>,
) -> bool {
    let wanted = &streams[..streams.len().min(slots.len())];
    let mut changed = false;
    for slot in slots.iter_mut() {
        let Some(current) = &slot.stream else {
            continue;
        };
        match wanted.iter().find(|(s, _)| s == current) {
            None => {
                slot.switch(None, None);
                changed = true;
            }
            Some((_, rid)) if *rid != slot.rid => slot.switch(slot.stream.clone(), *rid),
            Some(_) => {}
        }
    }
    for (stream, rid) in wanted {
        if slots.iter().any(|s| s.stream.as_ref() == Some(stream)) {
            continue;
        }
        if let Some(free) = slots.iter_mut().find(|s| s.stream.is_none()) {
            free.switch(Some(stream.clone()), *rid);
            changed = true;
        }
    }
    changed
}

/// Restarts a subscriber's bandwidth estimate at what it will receive, when that grew
/// by half (a stream or layer started, or its bitrate became known) beyond the
/// estimate. str0m paces what it sends at the estimate, and an estimate that followed a
/// quiet spell (audio only) down would hold new video back for seconds; video that
/// starts is the probe, and real congestion shows in the estimates that follow, which
/// the router acts on. Slower growth is left to the estimator.
fn restart_estimate<P>(peer: &mut Peer<P>, video: u64, now: Instant) {
    let grew = video > peer.receiving + peer.receiving / 2;
    peer.receiving = video;
    let wanted = video + AUDIO_BPS;
    if grew && peer.estimate.is_some_and(|e| e < wanted) {
        let restart = wanted + wanted / 4;
        peer.estimate = Some(restart);
        peer.restarted = Some(now);
        peer.rtc.bwe().reset(Bitrate::bps(restart));
    }
}

/// str0m reports the mean of the estimates of the last 3 s; for that long after a
/// restart the figure still mixes in what came before it.
const ESTIMATE_WINDOW: Duration = Duration::from_secs(3);

/// Asks a subscriber's bandwidth estimator to probe up to `video` bits per second of
/// video plus its audio, when that changed by more than a tenth (each change restarts
/// probing).
fn set_desired<P>(peer: &mut Peer<P>, video: u64) {
    let desired = video + AUDIO_BPS;
    if desired.abs_diff(peer.desired) * 10 <= peer.desired {
        return;
    }
    peer.desired = desired;
    peer.rtc
        .bwe()
        .set_bitrate(Bitrate::bps(AUDIO_BPS), Bitrate::bps(desired));
}

/// Polls one `Rtc` until it only has a timeout left.
fn drain<P>(peer: &mut Peer<P>, outbox: &mut Outbox, out: &mut Drained) {
    let Drained {
        events,
        audio: incoming,
        video,
    } = out;
    loop {
        match peer.rtc.poll_output() {
            Ok(Output::Transmit(t)) => outbox.transmits.push_back(t.into()),
            Ok(Output::Timeout(t)) => {
                if peer.timeout != Some(t) {
                    peer.timeout = Some(t);
                    outbox.deadlines.push(Reverse((t, peer.id)));
                }
                return;
            }
            Ok(Output::Event(event)) => match event {
                Event::Connected => {
                    peer.connected = true;
                    events.push(PeerEvent::Connected);
                }
                Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                    events.push(PeerEvent::Failed("ICE disconnected".into()));
                    return;
                }
                Event::MediaAdded(added) if added.kind == MediaKind::Audio => {
                    events.push(PeerEvent::AudioAdded(added.mid));
                }
                Event::MediaData(data) if peer.publish == Some(data.mid) => video.push(data),
                Event::KeyframeRequest(req) => events.push(PeerEvent::KeyframeRequest(req.mid)),
                Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                    events.push(PeerEvent::Bandwidth(estimate.as_u64()));
                }
                Event::MediaData(data) if Some(data.mid) == peer.mid => {
                    incoming.push(Incoming {
                        seq: **data.seq_range.start(),
                        ts: data.time.numer(),
                        level: level_from_ext(data.ext_vals.audio_level),
                        data: data.data,
                        now: data.network_time,
                    });
                }
                _ => {}
            },
            Err(e) => {
                events.push(PeerEvent::Failed(format!("str0m: {e}")));
                return;
            }
        }
    }
}
