//! Dominant speaker detection: who leads the conversation, without flicker.
//!
//! The algorithm is Volfin & Cohen's ("Dominant Speaker Identification for Multipoint
//! Videoconferencing", 2013) in the form Jitsi runs it on audio levels instead of
//! sub-band spectra (jitsi-utils `DominantSpeakerIdentification`):
//!
//! - every level (RFC 6464, `-dBov`, one per 20 ms packet) is turned into a loudness
//!   `127 - level`, corrected by a per-participant noise floor and quantized into one of
//!   13 "sub-bands" (`N1`, width 10);
//! - over the last second (50 levels) three activities are counted: *immediate* = the
//!   newest quantized level, *medium* = how many of the newest 5 frames are above 7
//!   (`N2` = 5), *long* = how many of the newest ten 5-frame blocks are fully active
//!   (`N3` = 10, threshold 4);
//! - each activity `v` of `n` gets a score `ln C(n,v) + v ln p + (n-v) ln(1-p) - ln λ + λ v`
//!   with `p = 0.5` and `λ = 0.78 / 24 / 47`, floored at `1e-10`;
//! - every decision interval (300 ms) each challenger is compared to the incumbent by
//!   `ln(challenger / incumbent)` per window; it takes over only when all three exceed
//!   `C1 = 3`, `C2 = 2`, `C3 = 0`; several challengers compete on the medium window.
//!
//! Hysteresis: the thresholds above (a cough moves the immediate and medium windows but
//! not the long one), plus a minimum hold time after each change
//! ([`SpeakerConfig::min_hold`]).
//!
//! Deviations from Jitsi, on purpose: the noise floor never rises above loudness 70
//! (`-57 dBov`), so a steady loud source (a tone, a talker from the first packet) is not
//! learnt as background noise; with no incumbent, the most active speaker (by medium
//! score) is chosen instead of an arbitrary one, and nobody is chosen while all are
//! silent; iteration is in participant order (a `BTreeMap`), so results are
//! deterministic.
//!
//! Sans-IO: feed [`DominantSpeaker::handle_level`] per packet, call
//! [`DominantSpeaker::handle_timeout`] when [`DominantSpeaker::poll_timeout`] is due, and
//! drain [`DominantSpeaker::poll_event`] after every input.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// Levels kept per participant: one second of 20 ms frames (`N3 * N2`).
const HISTORY: usize = 50;
/// Frame duration assumed when a participant sends no level (RFC 6464 per packet).
const FRAME: Duration = Duration::from_millis(20);
/// After this long without a level, missing frames count as silence (Jitsi's
/// `LEVEL_IDLE_TIMEOUT`).
const LEVEL_IDLE_TIMEOUT: Duration = Duration::from_millis(40);
/// Largest loudness (RFC 6464 levels are 7 bits).
const MAX_LOUDNESS: u8 = 127;
/// Width of one quantization step ("sub-band"): `ceil(128 / N1)`.
const SUBUNIT: u8 = 10;
/// Number of quantization steps (`N1`).
const N1: u32 = 13;
/// Frames per medium block (`N2`).
const N2: usize = 5;
/// Medium blocks per long window (`N3`).
const N3: usize = 10;
/// A frame is active for the medium window when its quantized level exceeds this.
const MEDIUM_THRESHOLD: u8 = 7;
/// A medium block is active for the long window when its count exceeds this.
const LONG_THRESHOLD: u32 = 4;
/// Relative-activity thresholds for a speaker switch (immediate, medium, long).
const C1: f64 = 3.0;
const C2: f64 = 2.0;
const C3: f64 = 0.0;
/// Scores are floored here: they are divided by and taken the logarithm of.
const MIN_SCORE: f64 = 1e-10;
/// The noise floor estimate rises at most this high (see the module docs).
const MAX_NOISE_FLOOR: u8 = 70;
/// Levels watched before the noise floor may rise (15 s of 20 ms frames).
const NOISE_FLOOR_WINDOW: u32 = 750;

/// Settings of a [`DominantSpeaker`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpeakerConfig {
    /// How often the global decision runs (Jitsi: 300 ms).
    pub decision_interval: Duration,
    /// After a change, the dominant speaker keeps the floor at least this long.
    pub min_hold: Duration,
    /// Length of the published list: the dominant speaker, then the previous ones.
    pub max_listed: usize,
}

impl Default for SpeakerConfig {
    fn default() -> Self {
        Self {
            decision_interval: Duration::from_millis(300),
            min_hold: Duration::from_secs(1),
            max_listed: 5,
        }
    }
}

/// What a [`DominantSpeaker`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpeakerEvent<P> {
    /// The ordered list changed: the dominant speaker first, then the previous dominant
    /// speakers, most recent first.
    Changed(Vec<P>),
}

/// Dominant speaker detection for one call, generic over the participant id.
#[derive(Debug)]
pub struct DominantSpeaker<P> {
    config: SpeakerConfig,
    tables: ScoreTables,
    speakers: BTreeMap<P, Speaker>,
    /// Dominant first, then previous dominant speakers; never holds a removed id.
    list: Vec<P>,
    /// When the head of `list` took the floor by a decision (`None`: no hold applies).
    dominant_since: Option<Instant>,
    next_decision: Option<Instant>,
    events: VecDeque<SpeakerEvent<P>>,
}

impl<P: Ord + Clone> DominantSpeaker<P> {
    /// A detector with no participants.
    pub fn new(config: SpeakerConfig) -> Self {
        Self {
            config,
            tables: ScoreTables::new(),
            speakers: BTreeMap::new(),
            list: Vec::new(),
            dominant_since: None,
            next_decision: None,
            events: VecDeque::new(),
        }
    }

    /// One audio level (RFC 6464: `0` loudest .. `127` silence, in `-dBov`) of
    /// `participant`, normally once per 20 ms packet. An unknown participant is added.
    /// Levels older than the participant's last one are ignored; values above 127 count
    /// as 127.
    pub fn handle_level(&mut self, participant: P, level: u8, now: Instant) {
        let speaker = self
            .speakers
            .entry(participant)
            .or_insert_with(|| Speaker::new(now));
        if now < speaker.last_level_at {
            return;
        }
        speaker.last_level_at = now;
        speaker.accounted_until = now;
        speaker.push(MAX_LOUDNESS - level.min(MAX_LOUDNESS));
        if self.next_decision.is_none() {
            self.next_decision = Some(now + self.config.decision_interval);
        }
    }

    /// Forgets `participant`; it leaves the list at once (with a [`SpeakerEvent::Changed`]
    /// when it was listed). When it was dominant, the next listed speaker becomes the
    /// incumbent, without a hold time.
    pub fn remove_participant(&mut self, participant: &P) {
        self.speakers.remove(participant);
        let before = self.list.len();
        let was_dominant = self.list.first() == Some(participant);
        self.list.retain(|p| p != participant);
        if was_dominant {
            self.dominant_since = None;
        }
        if self.list.len() != before {
            self.events
                .push_back(SpeakerEvent::Changed(self.list.clone()));
        }
        if self.speakers.is_empty() {
            self.next_decision = None;
        }
    }

    /// Runs the periodic decision when it is due; safe to call early.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(due) = self.next_decision else {
            return;
        };
        if now < due {
            return;
        }
        self.decide(now);
        self.next_decision = if self.speakers.is_empty() {
            None
        } else {
            Some(now + self.config.decision_interval)
        };
    }

    /// When [`Self::handle_timeout`] should be called next (`None`: nothing to decide).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_decision
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<SpeakerEvent<P>> {
        self.events.pop_front()
    }

    /// The current dominant speaker.
    pub fn dominant(&self) -> Option<&P> {
        self.list.first()
    }

    /// The ordered list: the dominant speaker first, then previous ones.
    pub fn speakers(&self) -> &[P] {
        &self.list
    }

    /// Number of participants tracked.
    pub fn len(&self) -> usize {
        self.speakers.len()
    }

    /// Whether no participant is tracked.
    pub fn is_empty(&self) -> bool {
        self.speakers.is_empty()
    }

    fn decide(&mut self, now: Instant) {
        for speaker in self.speakers.values_mut() {
            speaker.fill_idle(now);
            speaker.evaluate(&self.tables);
        }
        let incumbent = self.list.first().and_then(|p| self.speakers.get(p));
        let winner = match incumbent {
            None => self
                .speakers
                .iter()
                // max_by keeps the last maximum; reverse so the smallest id wins ties.
                .rev()
                .filter(|(_, s)| s.scores[1] > MIN_SCORE)
                .max_by(|a, b| a.1.scores[1].total_cmp(&b.1.scores[1]))
                .map(|(p, _)| p.clone()),
            Some(dominant) => {
                if let Some(since) = self.dominant_since
                    && now < since + self.config.min_hold
                {
                    return;
                }
                let incumbent_id = self.list.first();
                let mut best: Option<&P> = None;
                let mut best_c2 = C2;
                for (p, s) in &self.speakers {
                    if Some(p) == incumbent_id {
                        continue;
                    }
                    let c1 = (s.scores[0] / dominant.scores[0]).ln();
                    let c2 = (s.scores[1] / dominant.scores[1]).ln();
                    let c3 = (s.scores[2] / dominant.scores[2]).ln();
                    if c1 > C1 && c2 > C2 && c3 > C3 && c2 > best_c2 {
                        best_c2 = c2;
                        best = Some(p);
                    }
                }
                best.cloned()
            }
        };
        if let Some(winner) = winner {
            tracing::debug!(listed = self.list.len(), "dominant speaker changed");
            self.list.retain(|p| *p != winner);
            self.list.insert(0, winner);
            self.list.truncate(self.config.max_listed.max(1));
            self.dominant_since = Some(now);
            self.events
                .push_back(SpeakerEvent::Changed(self.list.clone()));
        }
    }
}

/// Precomputed scores for every possible activity count of each window.
#[derive(Debug)]
struct ScoreTables {
    immediate: [f64; N1 as usize + 1],
    medium: [f64; N2 + 1],
    long: [f64; N3 + 1],
}

impl ScoreTables {
    fn new() -> Self {
        Self {
            immediate: std::array::from_fn(|v| score(v as u32, N1, 0.5, 0.78)),
            medium: std::array::from_fn(|v| score(v as u32, N2 as u32, 0.5, 24.0)),
            long: std::array::from_fn(|v| score(v as u32, N3 as u32, 0.5, 47.0)),
        }
    }
}

/// Volfin & Cohen's speech activity score for `v` active of `n` (binomial likelihood
/// against an exponential prior), floored at [`MIN_SCORE`].
fn score(v: u32, n: u32, p: f64, lambda: f64) -> f64 {
    let (v_f, n_f) = (f64::from(v), f64::from(n));
    let s = binomial(n, v).ln() + v_f * p.ln() + (n_f - v_f) * (1.0 - p).ln() - lambda.ln()
        + lambda * v_f;
    s.max(MIN_SCORE)
}

fn binomial(n: u32, r: u32) -> f64 {
    let r = r.min(n.saturating_sub(r));
    (0..r).fold(1.0, |acc, i| acc * f64::from(n - i) / f64::from(i + 1))
}

/// Per-participant state: a ring of the last second's loudness and the noise floor.
#[derive(Debug)]
struct Speaker {
    /// Loudness (`127 - level`), newest at `head`.
    levels: [u8; HISTORY],
    head: usize,
    last_level_at: Instant,
    /// Frames up to here are in `levels` (levels or idle silence).
    accounted_until: Instant,
    /// Noise floor (Jitsi's `minLevel`); 0 = not yet known.
    floor: u8,
    next_floor: u8,
    next_floor_frames: u32,
    /// Immediate, medium and long scores at the last decision.
    scores: [f64; 3],
}

impl Speaker {
    fn new(now: Instant) -> Self {
        Self {
            levels: [0; HISTORY],
            head: 0,
            last_level_at: now,
            accounted_until: now,
            floor: 0,
            next_floor: 0,
            next_floor_frames: 0,
            scores: [MIN_SCORE; 3],
        }
    }

    fn push(&mut self, loudness: u8) {
        self.head = (self.head + 1) % HISTORY;
        self.levels[self.head] = loudness;
        self.update_floor(loudness);
    }

    /// Missing levels count as silence once a participant has been quiet for
    /// [`LEVEL_IDLE_TIMEOUT`] (no packets: DTX, mute, loss).
    fn fill_idle(&mut self, now: Instant) {
        let gap = now.saturating_duration_since(self.accounted_until);
        if gap <= LEVEL_IDLE_TIMEOUT {
            return;
        }
        let frames = (gap.as_millis() / FRAME.as_millis()) as usize;
        if frames >= HISTORY {
            self.levels = [0; HISTORY];
            self.accounted_until = now;
        } else {
            for _ in 0..frames {
                self.head = (self.head + 1) % HISTORY;
                self.levels[self.head] = 0;
            }
            self.accounted_until += FRAME * frames as u32;
        }
    }

    /// Jitsi's minimum-level tracking: falls at once, rises slowly (geometric mean with
    /// the minimum of the last 15 s), never above [`MAX_NOISE_FLOOR`].
    fn update_floor(&mut self, loudness: u8) {
        if loudness == 0 {
            return;
        }
        if self.floor == 0 || loudness < self.floor {
            self.floor = loudness.min(MAX_NOISE_FLOOR);
            self.next_floor = 0;
            self.next_floor_frames = 0;
            return;
        }
        if self.next_floor == 0 || loudness < self.next_floor {
            self.next_floor = loudness;
        }
        self.next_floor_frames += 1;
        if self.next_floor_frames >= NOISE_FLOOR_WINDOW {
            let mean = (f64::from(self.floor) * f64::from(self.next_floor)).sqrt();
            self.floor = (mean as u8).min(MAX_NOISE_FLOOR);
            self.next_floor = 0;
            self.next_floor_frames = 0;
        }
    }

    fn evaluate(&mut self, tables: &ScoreTables) {
        let cutoff = self.floor.saturating_add(SUBUNIT);
        let quantize = |loudness: u8| {
            if loudness < cutoff {
                0
            } else {
                loudness / SUBUNIT
            }
        };
        let mut immediate = 0u8;
        let mut medium = 0u32;
        let mut long = 0u32;
        for block in 0..N3 {
            let mut active = 0u32;
            for frame in 0..N2 {
                let age = block * N2 + frame;
                let q = quantize(self.levels[(self.head + HISTORY - age) % HISTORY]);
                if age == 0 {
                    immediate = q;
                }
                if q > MEDIUM_THRESHOLD {
                    active += 1;
                }
            }
            if block == 0 {
                medium = active;
            }
            if active > LONG_THRESHOLD {
                long += 1;
            }
        }
        self.scores = [
            tables.immediate[usize::from(immediate).min(N1 as usize)],
            tables.medium[medium as usize],
            tables.long[long as usize],
        ];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6464 level of a talker (-20 dBov) and of background noise (-80 dBov).
    const TALK: u8 = 20;
    const NOISE: u8 = 80;

    struct Room {
        dsi: DominantSpeaker<u32>,
        now: Instant,
        changes: Vec<Vec<u32>>,
    }

    impl Room {
        fn new() -> Self {
            Self {
                dsi: DominantSpeaker::new(SpeakerConfig::default()),
                now: Instant::now(),
                changes: Vec::new(),
            }
        }

        /// Runs 20 ms frames; `level(participant, frame)` gives each level (None: no
        /// packet).
        fn run(&mut self, frames: u32, n: u32, level: impl Fn(u32, u32) -> Option<u8>) {
            for f in 0..frames {
                for p in 0..n {
                    if let Some(l) = level(p, f) {
                        self.dsi.handle_level(p, l, self.now);
                    }
                }
                self.now += FRAME;
                if self.dsi.poll_timeout().is_some_and(|t| t <= self.now) {
                    self.dsi.handle_timeout(self.now);
                }
                self.drain();
            }
        }

        fn drain(&mut self) {
            while let Some(SpeakerEvent::Changed(list)) = self.dsi.poll_event() {
                self.changes.push(list);
            }
        }

        /// Frames until `p` becomes dominant, running `level` meanwhile.
        fn frames_until_dominant(
            &mut self,
            p: u32,
            max: u32,
            n: u32,
            level: impl Fn(u32, u32) -> Option<u8>,
        ) -> Option<u32> {
            for f in 0..max {
                if self.dsi.dominant() == Some(&p) {
                    return Some(f);
                }
                self.run(1, n, |q, _| level(q, f));
            }
            None
        }
    }

    #[test]
    fn one_loud_speaker_becomes_dominant() {
        let mut room = Room::new();
        room.run(50, 3, |_, _| Some(NOISE));
        assert_eq!(room.dsi.dominant(), None, "nobody talks yet");
        room.run(100, 3, |p, _| Some(if p == 1 { TALK } else { NOISE }));
        assert_eq!(room.dsi.dominant(), Some(&1));
        assert_eq!(room.changes, vec![vec![1]]);
    }

    #[test]
    fn steady_talker_from_the_first_packet_is_not_noise() {
        let mut room = Room::new();
        room.run(100, 2, |p, _| Some(if p == 0 { TALK } else { 127 }));
        assert_eq!(room.dsi.dominant(), Some(&0));
    }

    #[test]
    fn a_cough_does_not_flip_the_dominant_speaker() {
        let mut room = Room::new();
        room.run(150, 2, |p, _| Some(if p == 0 { TALK } else { NOISE }));
        assert_eq!(room.dsi.dominant(), Some(&0));
        // Participant 1 coughs loudly for 200 ms at several phases of the decision tick,
        // while 0 keeps talking.
        for _ in 0..5 {
            room.run(10, 2, |_, _| Some(TALK.min(5)));
            room.run(37, 2, |p, _| Some(if p == 0 { TALK } else { NOISE }));
        }
        // And once while 0 pauses for breath (300 ms).
        room.run(15, 2, |p, _| Some(if p == 0 { NOISE } else { 0 }));
        room.run(100, 2, |p, _| Some(if p == 0 { TALK } else { NOISE }));
        assert_eq!(room.changes, vec![vec![0]], "no flicker");
    }

    #[test]
    fn a_sustained_new_talker_takes_over_in_bounded_time() {
        let mut room = Room::new();
        room.run(150, 3, |p, _| Some(if p == 0 { TALK } else { NOISE }));
        assert_eq!(room.dsi.dominant(), Some(&0));
        // 0 falls silent, 2 starts talking.
        let frames = room
            .frames_until_dominant(2, 200, 3, |p, _| Some(if p == 2 { TALK } else { NOISE }))
            .expect("2 takes over");
        // Bound: the long window (1 s) plus one decision interval (300 ms).
        assert!(frames * 20 <= 1_300, "took {} ms", frames * 20);
        assert_eq!(room.dsi.speakers(), &[2, 0]);
    }

    #[test]
    fn a_louder_talker_overlapping_takes_over_when_the_other_tails_off() {
        let mut room = Room::new();
        room.run(150, 2, |p, _| Some(if p == 0 { TALK } else { NOISE }));
        // 0 talks only every other 100 ms, 1 talks throughout.
        let frames = room
            .frames_until_dominant(1, 250, 2, |p, f| {
                Some(if p == 1 || (f / 5) % 2 == 0 {
                    TALK
                } else {
                    NOISE
                })
            })
            .expect("1 takes over");
        assert!(frames * 20 <= 1_600, "took {} ms", frames * 20);
    }

    #[test]
    fn silence_keeps_the_last_speaker() {
        let mut room = Room::new();
        room.run(150, 3, |p, _| Some(if p == 1 { TALK } else { NOISE }));
        room.run(500, 3, |_, _| Some(NOISE));
        // No packets at all (DTX) for a while too.
        room.run(200, 3, |_, _| None);
        assert_eq!(room.dsi.dominant(), Some(&1));
        assert_eq!(room.changes, vec![vec![1]]);
    }

    #[test]
    fn removing_a_participant_drops_it_from_the_list() {
        let mut room = Room::new();
        room.run(150, 3, |p, _| Some(if p == 0 { TALK } else { NOISE }));
        room.run(150, 3, |p, _| Some(if p == 1 { TALK } else { NOISE }));
        assert_eq!(room.dsi.speakers(), &[1, 0]);
        room.dsi.remove_participant(&1);
        room.drain();
        assert_eq!(room.changes.last(), Some(&vec![0]));
        assert_eq!(room.dsi.dominant(), Some(&0));
        // It does not come back, and 2 can take over from 0 without waiting for a hold.
        let frames = room
            .frames_until_dominant(2, 200, 3, |p, _| Some(if p == 2 { TALK } else { NOISE }))
            .expect("2 takes over");
        assert!(frames * 20 <= 1_300);
        assert_eq!(room.dsi.speakers(), &[2, 0]);
        room.dsi.remove_participant(&7);
        assert_eq!(room.dsi.poll_event(), None, "unknown id: no event");
    }

    #[test]
    fn timers_disarm_when_the_room_empties() {
        let mut room = Room::new();
        room.run(10, 1, |_, _| Some(TALK));
        assert!(room.dsi.poll_timeout().is_some());
        room.dsi.remove_participant(&0);
        assert_eq!(room.dsi.poll_timeout(), None);
        assert!(room.dsi.is_empty());
        // Early calls are harmless.
        room.dsi.handle_timeout(room.now);
    }

    #[test]
    fn scores_match_jitsi() {
        // Full long-window activity: ln(1) + 10 ln 0.5 - ln 47 + 470.
        let expected = 10.0 * 0.5f64.ln() - 47f64.ln() + 470.0;
        assert!((score(10, 10, 0.5, 47.0) - expected).abs() < 1e-9);
        assert_eq!(score(0, 5, 0.5, 24.0), MIN_SCORE);
        assert!((binomial(10, 2) - 45.0).abs() < 1e-9);
    }
}
