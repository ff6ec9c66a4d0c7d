//! The SFU's video router: which published streams each subscriber receives, at which
//! simulcast layer, and when publishers must send a key frame.
//!
//! Sans-IO and codec-blind: it sees publishers, subscribers, the dominant speaker list,
//! bandwidth estimates and loss reports, and decides; the media plane forwards packets
//! unchanged by its decisions.
//!
//! Slot policy per subscriber (its own streams never count, unless the router loops
//! them back for the echo test service):
//!
//! 1. a screen share takes priority: while anyone else shares a screen, the subscriber
//!    gets that one screen share (the most recently started) instead of camera tiles;
//! 2. otherwise cameras fill up to the subscriber's slot limit (native clients 6, web
//!    clients 1 by default; a client may ask for fewer, never more than the server
//!    allows): the pinned participant first, then dominant speakers in order, then the
//!    rest in the order they started publishing (oldest first, so tiles do not jump);
//! 3. bandwidth: every chosen stream starts at its lowest simulcast layer; streams that
//!    do not fit the subscriber's budget even so are dropped from the end of the
//!    list (all but the first); what is left over upgrades streams in priority order,
//!    one layer at a time.
//!
//! The budget is not simply the bandwidth estimate. A send-side estimate (TWCC, GCC
//! style) of a path that is not full follows what is acknowledged, about 1.5 times the
//! rate actually sent: a viewer receiving only audio is estimated at tens of kbit/s
//! whatever its link. Taken as the budget, that estimate would never admit the streams
//! that let it grow. So the router believes an estimate only when it says less than the
//! subscriber receives now, for [`RouterConfig::congestion_hold`], without rising by a
//! tenth meanwhile (the estimate lags a selection change and an encoder ramping up, and
//! climbs slowly out of a quiet spell): then the path is congested and the budget
//! becomes the estimate. Until the first congestion there is no budget. A limited
//! subscriber's budget grows with later estimates, and by probing: after
//! [`RouterConfig::probe_backoff`] the router adds the cheapest next step (a stream or a
//! layer) and watches; congestion again doubles the wait (up to 8 times), reaching the
//! full demand lifts the budget.
//!
//! Key frames: a subscriber that starts receiving a stream, or moves to another layer,
//! or reports loss needs a key frame from the publisher. Requests for one publisher
//! layer are throttled to one per [`RouterConfig::keyframe_interval`]; a request inside
//! the window is not dropped but deferred to its end, so a late joiner still gets its
//! key frame and a burst of joiners costs the publisher one.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// The longest probe wait, in multiples of [`RouterConfig::probe_backoff`].
const MAX_BACKOFF_FACTOR: u32 = 8;

/// What a published video stream shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StreamKind {
    /// A camera.
    Camera,
    /// A screen or window share.
    ScreenShare,
}

/// One published stream: who and what.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId<P> {
    /// The publisher.
    pub publisher: P,
    /// Camera or screen share.
    pub kind: StreamKind,
}

/// What kind of client a subscriber is; it sets the default slot limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscriberKind {
    /// A native SDK client.
    Native,
    /// A browser.
    Web,
}

/// Settings of a [`Router`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouterConfig {
    /// Camera slots of native clients (default 6).
    pub native_slots: usize,
    /// Camera slots of web clients (default 1).
    pub web_slots: usize,
    /// At most one key-frame request per publisher layer in this window (default 500 ms).
    pub keyframe_interval: Duration,
    /// How long a bandwidth estimate must stay below what a subscriber receives before
    /// its streams are cut to fit (default 1 s: str0m's figure is already the mean of
    /// its last 3 s).
    pub congestion_hold: Duration,
    /// How long a congested subscriber waits before the router tries to send it more
    /// (default 8 s; doubled each time the attempt meets congestion again). Meanwhile
    /// str0m's own probing lifts the estimate, and so the budget, where the path allows.
    pub probe_backoff: Duration,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            native_slots: 6,
            web_slots: 1,
            keyframe_interval: Duration::from_millis(500),
            congestion_hold: Duration::from_secs(1),
            probe_backoff: Duration::from_secs(8),
        }
    }
}

/// One stream a subscriber receives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Selected<P> {
    /// The stream.
    pub stream: StreamId<P>,
    /// The simulcast layer, 0 the lowest (always 0 without simulcast).
    pub layer: u8,
}

/// What a [`Router`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouterEvent<P> {
    /// A subscriber's set of streams changed; forward exactly these from now on.
    Selection {
        /// Who receives.
        subscriber: P,
        /// What it receives, in priority order.
        selected: Vec<Selected<P>>,
    },
    /// Ask a publisher for a key frame (PLI) on one layer.
    KeyframeRequest {
        /// The stream.
        stream: StreamId<P>,
        /// The layer.
        layer: u8,
    },
}

/// Counters of a [`Router`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouterStats {
    /// Key-frame requests sent to publishers.
    pub keyframes_sent: u64,
    /// Requests folded into one already sent or pending.
    pub keyframes_coalesced: u64,
    /// Selection changes announced.
    pub selections: u64,
}

#[derive(Debug)]
struct Subscriber<P> {
    slots: usize,
    /// What the client asked for, if anything (capped by the kind's limit).
    requested: Option<usize>,
    pinned: Option<P>,
    /// Bits per second of video it may receive; `None` until its path was congested.
    budget: Option<u64>,
    /// Since when the estimate has been below what it receives without rising, and
    /// the highest estimate in that time.
    below_since: Option<(Instant, u64)>,
    /// When to try a larger budget (only while it has one).
    probe_at: Option<Instant>,
    /// The wait before the next probe.
    backoff: Duration,
    selected: Vec<Selected<P>>,
}

#[derive(Debug, Clone)]
struct Stream {
    /// Bitrate of each simulcast layer, lowest first (one entry without simulcast).
    layers: Vec<u64>,
    /// Order of publishing, for stable tile order and "latest screen share wins".
    started: u64,
}

/// Throttle state of one publisher layer.
#[derive(Debug, Clone, Copy, Default)]
struct Throttle {
    last: Option<Instant>,
    pending: bool,
}

/// The video router of one call. See the [module docs](self).
#[derive(Debug)]
pub struct Router<P> {
    config: RouterConfig,
    subscribers: BTreeMap<P, Subscriber<P>>,
    streams: BTreeMap<StreamId<P>, Stream>,
    /// Subscribers receive their own streams too (the echo test service).
    loopback: bool,
    speakers: Vec<P>,
    throttles: BTreeMap<(StreamId<P>, u8), Throttle>,
    next_start: u64,
    events: VecDeque<RouterEvent<P>>,
    stats: RouterStats,
}

impl<P: Ord + Clone> Router<P> {
    /// A router with nobody in it.
    #[must_use]
    pub fn new(config: RouterConfig) -> Self {
        Self {
            config,
            subscribers: BTreeMap::new(),
            streams: BTreeMap::new(),
            loopback: false,
            speakers: Vec::new(),
            throttles: BTreeMap::new(),
            next_start: 0,
            events: VecDeque::new(),
            stats: RouterStats::default(),
        }
    }

    /// Adds a subscriber of `kind` (its slot limit follows the kind).
    pub fn add_subscriber(&mut self, subscriber: P, kind: SubscriberKind, now: Instant) {
        let slots = match kind {
            SubscriberKind::Native => self.config.native_slots,
            SubscriberKind::Web => self.config.web_slots,
        };
        self.subscribers.insert(
            subscriber.clone(),
            Subscriber {
                slots,
                requested: None,
                pinned: None,
                budget: None,
                below_since: None,
                probe_at: None,
                backoff: self.config.probe_backoff,
                selected: Vec::new(),
            },
        );
        self.reselect(&subscriber, now);
    }

    /// Removes a participant: as a subscriber, and everything it published.
    pub fn remove_participant(&mut self, participant: &P, now: Instant) {
        self.subscribers.remove(participant);
        self.speakers.retain(|p| p != participant);
        let gone: Vec<StreamId<P>> = self
            .streams
            .keys()
            .filter(|s| &s.publisher == participant)
            .cloned()
            .collect();
        for stream in gone {
            self.streams.remove(&stream);
        }
        self.throttles
            .retain(|(s, _), _| &s.publisher != participant);
        for sub in self.subscribers.values_mut() {
            if sub.pinned.as_ref() == Some(participant) {
                sub.pinned = None;
            }
        }
        self.reselect_all(now);
    }

    /// Whether subscribers receive their own streams as well: the echo test service
    /// shows a caller its own camera.
    pub fn set_loopback(&mut self, loopback: bool, now: Instant) {
        if self.loopback != loopback {
            self.loopback = loopback;
            self.reselect_all(now);
        }
    }

    /// A subscriber asks for at most `slots` camera videos (`None`: the default). More
    /// than its kind allows is capped.
    pub fn request_slots(&mut self, subscriber: &P, slots: Option<usize>, now: Instant) {
        if let Some(sub) = self.subscribers.get_mut(subscriber) {
            sub.requested = slots;
            self.reselect(subscriber, now);
        }
    }

    /// Pins a participant's camera first in a subscriber's tiles (`None` unpins).
    pub fn pin(&mut self, subscriber: &P, pinned: Option<P>, now: Instant) {
        if let Some(sub) = self.subscribers.get_mut(subscriber) {
            sub.pinned = pinned;
            self.reselect(subscriber, now);
        }
    }

    /// The bandwidth estimate for video towards a subscriber, bits per second (`None`:
    /// unknown, everything fits). See the [module docs](self) for what it decides.
    pub fn set_bandwidth(&mut self, subscriber: &P, bps: Option<u64>, now: Instant) {
        let Some(sub) = self.subscribers.get(subscriber) else {
            return;
        };
        let receiving = self.rate(&sub.selected);
        let (hold, first_backoff) = (self.config.congestion_hold, self.config.probe_backoff);
        let Some(sub) = self.subscribers.get_mut(subscriber) else {
            return;
        };
        match bps {
            None => {
                sub.budget = None;
                sub.below_since = None;
                sub.probe_at = None;
            }
            // Below 90 % of what it receives: the path does not carry it (or the
            // estimate has not caught up yet, which the hold tells apart).
            Some(estimate) if u128::from(estimate) * 10 < u128::from(receiving) * 9 => {
                let (since, peak) = *sub.below_since.get_or_insert((now, estimate));
                // Rising by a tenth: the estimator is climbing out of a quiet spell
                // (it follows what was acknowledged), not meeting congestion.
                if u128::from(estimate) * 10 > u128::from(peak) * 11 {
                    sub.below_since = Some((now, estimate));
                } else if now >= since + hold {
                    // A probe that met congestion again waits twice as long next time.
                    sub.backoff = if sub.budget.is_some() {
                        (sub.backoff * 2).min(first_backoff * MAX_BACKOFF_FACTOR)
                    } else {
                        first_backoff
                    };
                    sub.budget = Some(estimate);
                    sub.below_since = None;
                    sub.probe_at = Some(now + sub.backoff);
                }
            }
            Some(estimate) => {
                sub.below_since = None;
                if let Some(budget) = &mut sub.budget {
                    *budget = (*budget).max(estimate);
                }
            }
        }
        self.reselect(subscriber, now);
    }

    /// The budget a subscriber's streams are fitted to (`None`: not limited).
    #[must_use]
    pub fn budget(&self, subscriber: &P) -> Option<u64> {
        self.subscribers.get(subscriber).and_then(|s| s.budget)
    }

    /// A participant publishes a stream; `layer_bitrates` are its simulcast layers'
    /// bitrates, lowest first (one entry, or empty, without simulcast). Publishing again
    /// updates the layers.
    pub fn publish(&mut self, stream: StreamId<P>, layer_bitrates: Vec<u64>, now: Instant) {
        let layers = if layer_bitrates.is_empty() {
            vec![0]
        } else {
            layer_bitrates
        };
        match self.streams.get_mut(&stream) {
            Some(s) => s.layers = layers,
            None => {
                let started = self.next_start;
                self.next_start += 1;
                self.streams.insert(stream, Stream { layers, started });
            }
        }
        self.reselect_all(now);
    }

    /// A participant stopped a stream.
    pub fn unpublish(&mut self, stream: &StreamId<P>, now: Instant) {
        if self.streams.remove(stream).is_some() {
            self.throttles.retain(|(s, _), _| s != stream);
            self.reselect_all(now);
        }
    }

    /// The call's dominant speakers, most dominant first.
    pub fn set_dominant_speakers(&mut self, speakers: Vec<P>, now: Instant) {
        if self.speakers != speakers {
            self.speakers = speakers;
            self.reselect_all(now);
        }
    }

    /// A subscriber lost packets of a stream it receives: it needs a key frame.
    pub fn handle_loss(&mut self, subscriber: &P, stream: &StreamId<P>, now: Instant) {
        let layer = self
            .subscribers
            .get(subscriber)
            .and_then(|s| s.selected.iter().find(|sel| &sel.stream == stream))
            .map(|sel| sel.layer);
        if let Some(layer) = layer {
            self.request_keyframe(stream.clone(), layer, now);
        }
    }

    /// Sends deferred key-frame requests whose window has passed, and probes for more
    /// bandwidth where it is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        let probes: Vec<P> = self
            .subscribers
            .iter()
            .filter(|(_, s)| s.probe_at.is_some_and(|t| t <= now))
            .map(|(p, _)| p.clone())
            .collect();
        for subscriber in probes {
            self.probe(&subscriber, now);
        }
        let interval = self.config.keyframe_interval;
        let due: Vec<(StreamId<P>, u8)> = self
            .throttles
            .iter()
            .filter(|(_, t)| t.pending && t.last.is_none_or(|l| l + interval <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for (stream, layer) in due {
            if let Some(t) = self.throttles.get_mut(&(stream.clone(), layer)) {
                t.pending = false;
                t.last = Some(now);
            }
            self.stats.keyframes_sent += 1;
            self.events
                .push_back(RouterEvent::KeyframeRequest { stream, layer });
        }
    }

    /// When a deferred key-frame request is due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let interval = self.config.keyframe_interval;
        let keyframes = self
            .throttles
            .values()
            .filter(|t| t.pending)
            .filter_map(|t| t.last.map(|l| l + interval));
        let probes = self.subscribers.values().filter_map(|s| s.probe_at);
        keyframes.chain(probes).min()
    }

    /// The next decision.
    pub fn poll_event(&mut self) -> Option<RouterEvent<P>> {
        self.events.pop_front()
    }

    /// What a subscriber receives now, in priority order.
    #[must_use]
    pub fn selection(&self, subscriber: &P) -> &[Selected<P>] {
        self.subscribers
            .get(subscriber)
            .map_or(&[], |s| s.selected.as_slice())
    }

    /// Who receives a stream at which layer (for forwarding one incoming packet).
    pub fn receivers<'a>(
        &'a self,
        stream: &'a StreamId<P>,
    ) -> impl Iterator<Item = (&'a P, u8)> + 'a {
        self.subscribers.iter().filter_map(move |(p, s)| {
            s.selected
                .iter()
                .find(|sel| &sel.stream == stream)
                .map(|sel| (p, sel.layer))
        })
    }

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> RouterStats {
        self.stats
    }

    fn reselect_all(&mut self, now: Instant) {
        let subs: Vec<P> = self.subscribers.keys().cloned().collect();
        for sub in subs {
            self.reselect(&sub, now);
        }
    }

    /// Recomputes one subscriber's selection; announces it and asks for key frames for
    /// what is new to it.
    fn reselect(&mut self, subscriber: &P, now: Instant) {
        let Some(sub) = self.subscribers.get(subscriber) else {
            return;
        };
        let selected = self.choose(subscriber, sub);
        let Some(sub) = self.subscribers.get_mut(subscriber) else {
            return;
        };
        if sub.selected == selected {
            return;
        }
        // A new selection has a new rate; the estimate gets the whole hold to follow it.
        sub.below_since = None;
        let before: BTreeSet<Selected<P>> = sub.selected.iter().cloned().collect();
        sub.selected = selected.clone();
        self.stats.selections += 1;
        self.events.push_back(RouterEvent::Selection {
            subscriber: subscriber.clone(),
            selected: selected.clone(),
        });
        for sel in selected {
            if !before.contains(&sel) {
                self.request_keyframe(sel.stream, sel.layer, now);
            }
        }
    }

    /// Grows a limited subscriber's budget by the cheapest step that changes what it
    /// receives; lifts the limit once the budget covers everything it wants.
    fn probe(&mut self, subscriber: &P, now: Instant) {
        let Some(sub) = self.subscribers.get(subscriber) else {
            return;
        };
        let demand = self.demand(subscriber);
        let step = self.next_step(subscriber, sub);
        let Some(sub) = self.subscribers.get_mut(subscriber) else {
            return;
        };
        let Some(budget) = sub.budget else {
            sub.probe_at = None;
            return;
        };
        let grown = budget.saturating_add(step.max(1));
        if grown >= demand {
            sub.budget = None;
            sub.probe_at = None;
        } else {
            sub.budget = Some(grown);
            sub.probe_at = Some(now + sub.backoff);
        }
        self.reselect(subscriber, now);
    }

    /// What the cheapest change to more video costs on top of a subscriber's current
    /// selection: the next candidate's lowest layer, or one layer up for a stream it
    /// has.
    fn next_step(&self, me: &P, sub: &Subscriber<P>) -> u64 {
        let candidates = self.candidates(me, sub);
        let added = candidates
            .iter()
            .find(|(id, _)| !sub.selected.iter().any(|s| &s.stream == *id))
            .map(|(_, s)| s.layers[0]);
        let upgrades = sub.selected.iter().filter_map(|sel| {
            let layers = &self.streams.get(&sel.stream)?.layers;
            let now = layers.get(usize::from(sel.layer))?;
            let next = layers.get(usize::from(sel.layer) + 1)?;
            Some(next.saturating_sub(*now))
        });
        added.into_iter().chain(upgrades).min().unwrap_or(0)
    }

    /// Bits per second of video a subscriber receives now, by its streams' measured
    /// layer bitrates.
    #[must_use]
    pub fn receiving(&self, subscriber: &P) -> u64 {
        self.rate(self.selection(subscriber))
    }

    /// Bits per second of a selection, by its streams' layer bitrates.
    fn rate(&self, selected: &[Selected<P>]) -> u64 {
        selected
            .iter()
            .filter_map(|sel| {
                let layers = &self.streams.get(&sel.stream)?.layers;
                layers.get(usize::from(sel.layer)).copied()
            })
            .sum()
    }

    /// What `subscriber` would receive with unlimited bandwidth, in bits per second:
    /// the top layers of the streams the slot policy picks for it. Its bandwidth
    /// estimator should probe up to this (plus audio), no further.
    pub fn demand(&self, subscriber: &P) -> u64 {
        let Some(sub) = self.subscribers.get(subscriber) else {
            return 0;
        };
        self.candidates(subscriber, sub)
            .iter()
            .map(|(_, s)| s.layers.last().copied().unwrap_or(0))
            .sum()
    }

    /// The streams the slot policy picks for `me`, in priority order, before
    /// bandwidth is considered.
    fn candidates<'a>(&'a self, me: &P, sub: &Subscriber<P>) -> Vec<(&'a StreamId<P>, &'a Stream)> {
        // 1. A screen share wins: the latest one that is not ours.
        let screen = self
            .streams
            .iter()
            .filter(|(id, _)| {
                id.kind == StreamKind::ScreenShare && (self.loopback || &id.publisher != me)
            })
            .max_by_key(|(_, s)| s.started);
        match screen {
            Some(s) => vec![s],
            None => {
                let slots = sub.requested.map_or(sub.slots, |r| r.min(sub.slots));
                let mut cams: Vec<(&StreamId<P>, &Stream)> = self
                    .streams
                    .iter()
                    .filter(|(id, _)| {
                        id.kind == StreamKind::Camera && (self.loopback || &id.publisher != me)
                    })
                    .collect();
                let rank = |id: &StreamId<P>| -> (u8, usize) {
                    if sub.pinned.as_ref() == Some(&id.publisher) {
                        return (0, 0);
                    }
                    match self.speakers.iter().position(|p| p == &id.publisher) {
                        Some(i) => (1, i),
                        None => (2, 0),
                    }
                };
                cams.sort_by(|a, b| {
                    rank(a.0)
                        .cmp(&rank(b.0))
                        .then(a.1.started.cmp(&b.1.started))
                });
                cams.truncate(slots);
                cams
            }
        }
    }

    fn choose(&self, me: &P, sub: &Subscriber<P>) -> Vec<Selected<P>> {
        let candidates = self.candidates(me, sub);
        // 3. Bandwidth: lowest layers first, drop from the end, then upgrade in order.
        let mut layers: Vec<usize> = vec![0; candidates.len()];
        let Some(budget) = sub.budget else {
            return candidates
                .iter()
                .map(|(id, s)| Selected {
                    stream: (*id).clone(),
                    layer: top_layer(s),
                })
                .collect();
        };
        let mut count = candidates.len();
        let base = |n: usize| -> u64 { candidates[..n].iter().map(|(_, s)| s.layers[0]).sum() };
        // The first stream stays at its lowest layer whatever the budget: the estimate
        // can collapse under loss and only recovers with traffic to measure.
        while count > 1 && base(count) > budget {
            count -= 1;
        }
        let mut spent = base(count);
        let mut upgraded = true;
        while upgraded {
            upgraded = false;
            for (i, (_, s)) in candidates[..count].iter().enumerate() {
                let next = layers[i] + 1;
                if next < s.layers.len() {
                    let extra = s.layers[next].saturating_sub(s.layers[layers[i]]);
                    if spent + extra <= budget {
                        spent += extra;
                        layers[i] = next;
                        upgraded = true;
                    }
                }
            }
        }
        candidates[..count]
            .iter()
            .zip(layers)
            .map(|((id, _), layer)| Selected {
                stream: (*id).clone(),
                layer: u8::try_from(layer).unwrap_or(u8::MAX),
            })
            .collect()
    }

    fn request_keyframe(&mut self, stream: StreamId<P>, layer: u8, now: Instant) {
        let interval = self.config.keyframe_interval;
        let t = self.throttles.entry((stream.clone(), layer)).or_default();
        if t.last.is_some_and(|l| now < l + interval) {
            if t.pending {
                self.stats.keyframes_coalesced += 1;
            }
            t.pending = true;
            return;
        }
        t.last = Some(now);
        t.pending = false;
        self.stats.keyframes_sent += 1;
        self.events
            .push_back(RouterEvent::KeyframeRequest { stream, layer });
    }
}

fn top_layer(s: &Stream) -> u8 {
    u8::try_from(s.layers.len().saturating_sub(1)).unwrap_or(u8::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cam(p: u32) -> StreamId<u32> {
        StreamId {
            publisher: p,
            kind: StreamKind::Camera,
        }
    }

    fn screen(p: u32) -> StreamId<u32> {
        StreamId {
            publisher: p,
            kind: StreamKind::ScreenShare,
        }
    }

    fn publishers(sel: &[Selected<u32>]) -> Vec<(u32, StreamKind, u8)> {
        sel.iter()
            .map(|s| (s.stream.publisher, s.stream.kind, s.layer))
            .collect()
    }

    fn drain(r: &mut Router<u32>) -> Vec<RouterEvent<u32>> {
        std::iter::from_fn(|| r.poll_event()).collect()
    }

    #[test]
    fn native_gets_six_cameras_with_dominant_speakers_first() {
        let now = Instant::now();
        let mut r = Router::new(RouterConfig::default());
        r.add_subscriber(0, SubscriberKind::Native, now);
        for p in 1..=8 {
            r.publish(cam(p), vec![], now);
        }
        let got: Vec<u32> = r.selection(&0).iter().map(|s| s.stream.publisher).collect();
        assert_eq!(got, vec![1, 2, 3, 4, 5, 6], "oldest first without speakers");
        r.set_dominant_speakers(vec![8, 7], now);
        let got: Vec<u32> = r.selection(&0).iter().map(|s| s.stream.publisher).collect();
        assert_eq!(got, vec![8, 7, 1, 2, 3, 4]);
    }

    #[test]
    fn web_gets_one_and_never_its_own() {
        let now = Instant::now();
        let mut r = Router::new(RouterConfig::default());
        r.add_subscriber(1, SubscriberKind::Web, now);
        r.publish(cam(1), vec![], now);
        assert!(r.selection(&1).is_empty());
        r.publish(cam(2), vec![], now);
        r.publish(cam(3), vec![], now);
        r.set_dominant_speakers(vec![3], now);
        assert_eq!(
            publishers(r.selection(&1)),
            vec![(3, StreamKind::Camera, 0)]
        );
    }

    #[test]
    fn screen_share_replaces_camera_tiles_and_the_sharer_keeps_cameras() {
        let now = Instant::now();
        let mut r = Router::new(RouterConfig::default());
        for p in 1..=3 {
            r.add_subscriber(p, SubscriberKind::Native, now);
            r.publish(cam(p), vec![], now);
        }
        r.publish(screen(2), vec![], now);
        assert_eq!(
            publishers(r.selection(&1)),
            vec![(2, StreamKind::ScreenShare, 0)]
        );
        let sharer: Vec<u32> = r.selection(&2).iter().map(|s| s.stream.publisher).collect();
        assert_eq!(sharer, vec![1, 3], "the sharer sees the others' cameras");
        r.unpublish(&screen(2), now);
        assert_eq!(r.selection(&1).len(), 2);
    }

    #[test]
    fn pin_and_requested_slots() {
        let now = Instant::now();
        let mut r = Router::new(RouterConfig::default());
        r.add_subscriber(0, SubscriberKind::Native, now);
        for p in 1..=8 {
            r.publish(cam(p), vec![], now);
        }
        r.request_slots(&0, Some(2), now);
        r.pin(&0, Some(8), now);
        let got: Vec<u32> = r.selection(&0).iter().map(|s| s.stream.publisher).collect();
        assert_eq!(got, vec![8, 1]);
        r.request_slots(&0, Some(100), now);
        assert_eq!(r.selection(&0).len(), 6, "capped at the native limit");
        r.remove_participant(&8, now);
        assert_eq!(r.selection(&0)[0].stream.publisher, 1);
    }

    /// Three cameras with simulcast layers 150k / 500k / 1.5M.
    fn three_layered_cameras(now: Instant) -> Router<u32> {
        let config = RouterConfig {
            congestion_hold: Duration::from_secs(2),
            probe_backoff: Duration::from_secs(2),
            ..RouterConfig::default()
        };
        let mut r = Router::new(config);
        r.add_subscriber(0, SubscriberKind::Native, now);
        for p in 1..=3 {
            r.publish(cam(p), vec![150_000, 500_000, 1_500_000], now);
        }
        r
    }

    #[test]
    fn a_sustained_low_estimate_picks_layers_and_drops_from_the_end() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut r = three_layered_cameras(t0);
        let top = vec![
            (1, StreamKind::Camera, 2),
            (2, StreamKind::Camera, 2),
            (3, StreamKind::Camera, 2),
        ];
        assert_eq!(publishers(r.selection(&0)), top);
        // Below what it receives, but not for long enough: the estimate may lag.
        r.set_bandwidth(&0, Some(1_000_000), t0);
        r.set_bandwidth(&0, Some(1_000_000), t0 + s(1));
        assert_eq!(publishers(r.selection(&0)), top);
        assert_eq!(r.budget(&0), None);
        r.set_bandwidth(&0, Some(1_000_000), t0 + s(2));
        // 3 × 150k = 450k; upgrades in order: 1 → 500k (800k), 2 would need +350k: no.
        assert_eq!(r.budget(&0), Some(1_000_000));
        assert_eq!(
            publishers(r.selection(&0)),
            vec![
                (1, StreamKind::Camera, 1),
                (2, StreamKind::Camera, 0),
                (3, StreamKind::Camera, 0)
            ]
        );
        // An estimate that carries what it receives changes nothing downwards.
        r.set_bandwidth(&0, Some(900_000), t0 + s(3));
        assert_eq!(r.budget(&0), Some(1_000_000));
        // What it would take, whatever the estimate: every candidate's top layer.
        assert_eq!(r.demand(&0), 3 * 1_500_000);
        assert_eq!(r.demand(&42), 0);
    }

    #[test]
    fn an_estimate_that_follows_what_is_sent_never_cuts() {
        // What str0m's estimator reports for a path that is not full: about 1.5 times
        // the acknowledged rate, and its 40 kbps floor while only audio flows.
        let t0 = Instant::now();
        let mut r = Router::new(RouterConfig::default());
        r.add_subscriber(0, SubscriberKind::Native, t0);
        for i in 0..10 {
            r.set_bandwidth(&0, Some(40_000), t0 + Duration::from_secs(i));
        }
        for p in 1..=6 {
            r.publish(cam(p), vec![300_000], t0 + Duration::from_secs(10));
        }
        assert_eq!(r.selection(&0).len(), 6, "no congestion seen, no budget");
        // The estimate jumps up only as acknowledgements of the new streams arrive.
        for (i, estimate) in [60_000, 900_000, 2_700_000].into_iter().enumerate() {
            let at = t0 + Duration::from_secs(10) + Duration::from_millis(900 * i as u64);
            r.set_bandwidth(&0, Some(estimate), at);
        }
        assert_eq!(r.selection(&0).len(), 6);
        assert_eq!(r.budget(&0), None);
    }

    #[test]
    fn probes_grow_the_budget_and_back_off_after_congestion() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut r = three_layered_cameras(t0);
        r.set_bandwidth(&0, Some(320_000), t0);
        r.set_bandwidth(&0, Some(320_000), t0 + s(2));
        assert_eq!(
            publishers(r.selection(&0)),
            vec![(1, StreamKind::Camera, 0), (2, StreamKind::Camera, 0)]
        );
        // The first probe after 2 s (as configured): the cheapest step is the third
        // camera's lowest layer (150k), cheaper than an upgrade (350k).
        assert_eq!(r.poll_timeout(), Some(t0 + s(4)));
        r.handle_timeout(t0 + s(4));
        assert_eq!(r.budget(&0), Some(470_000));
        assert_eq!(r.selection(&0).len(), 3);
        // It met congestion again: cut, and the next probe waits twice as long.
        r.set_bandwidth(&0, Some(300_000), t0 + s(5));
        r.set_bandwidth(&0, Some(300_000), t0 + s(7));
        assert_eq!(r.selection(&0).len(), 2);
        assert_eq!(r.poll_timeout(), Some(t0 + s(11)));
        // The path got better; probes climb until the budget covers the demand.
        let mut at = t0 + s(11);
        for _ in 0..20 {
            r.handle_timeout(at);
            r.set_bandwidth(&0, Some(5_000_000), at);
            match r.poll_timeout() {
                Some(next) => at = next,
                None => break,
            }
        }
        assert_eq!(r.budget(&0), None, "no limit once everything fits");
        assert_eq!(
            publishers(r.selection(&0)),
            vec![
                (1, StreamKind::Camera, 2),
                (2, StreamKind::Camera, 2),
                (3, StreamKind::Camera, 2)
            ]
        );
    }

    #[test]
    fn keyframes_on_new_streams_are_throttled_and_deferred_not_dropped() {
        let t0 = Instant::now();
        let mut r = Router::new(RouterConfig::default());
        r.publish(cam(9), vec![], t0);
        r.add_subscriber(1, SubscriberKind::Native, t0);
        let events = drain(&mut r);
        assert!(events.contains(&RouterEvent::KeyframeRequest {
            stream: cam(9),
            layer: 0
        }));
        // Two more joiners inside the window: one deferred request, not two.
        r.add_subscriber(2, SubscriberKind::Native, t0 + Duration::from_millis(100));
        r.add_subscriber(3, SubscriberKind::Native, t0 + Duration::from_millis(200));
        r.handle_loss(&1, &cam(9), t0 + Duration::from_millis(300));
        let keyframes = |e: &[RouterEvent<u32>]| {
            e.iter()
                .filter(|e| matches!(e, RouterEvent::KeyframeRequest { .. }))
                .count()
        };
        assert_eq!(keyframes(&drain(&mut r)), 0);
        assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_millis(500)));
        r.handle_timeout(t0 + Duration::from_millis(499));
        assert_eq!(keyframes(&drain(&mut r)), 0);
        r.handle_timeout(t0 + Duration::from_millis(500));
        assert_eq!(keyframes(&drain(&mut r)), 1);
        assert_eq!(r.poll_timeout(), None);
        assert_eq!(r.stats().keyframes_sent, 2);
        assert_eq!(r.stats().keyframes_coalesced, 2);
        // Outside the window a loss report goes out at once.
        r.handle_loss(&2, &cam(9), t0 + Duration::from_millis(1100));
        assert_eq!(keyframes(&drain(&mut r)), 1);
    }

    #[test]
    fn loopback_shows_subscribers_their_own_streams() {
        let now = Instant::now();
        let mut r = Router::new(RouterConfig::default());
        r.add_subscriber(1, SubscriberKind::Native, now);
        r.publish(cam(1), vec![], now);
        assert!(r.selection(&1).is_empty());
        r.set_loopback(true, now);
        assert_eq!(
            publishers(r.selection(&1)),
            vec![(1, StreamKind::Camera, 0)]
        );
        assert!(drain(&mut r).contains(&RouterEvent::KeyframeRequest {
            stream: cam(1),
            layer: 0
        }));
    }

    #[test]
    fn receivers_follow_selection() {
        let now = Instant::now();
        let mut r = Router::new(RouterConfig::default());
        r.add_subscriber(1, SubscriberKind::Native, now);
        r.add_subscriber(2, SubscriberKind::Web, now);
        r.publish(cam(3), vec![], now);
        r.publish(cam(4), vec![], now);
        let to3: Vec<u32> = r.receivers(&cam(3)).map(|(p, _)| *p).collect();
        let to4: Vec<u32> = r.receivers(&cam(4)).map(|(p, _)| *p).collect();
        assert_eq!(to3, vec![1, 2]);
        assert_eq!(
            to4,
            vec![1],
            "the web client's one slot went to the older camera"
        );
    }
}
