//! Audio end to end: the real server (signaling over WebSocket, its media plane on a
//! loopback UDP socket) and real native clients, each sending a tone of its own
//! frequency through [`SignalingClient::start_audio`] and playing what it receives into
//! a [`MemorySink`]. Media is checked by content, never by "some bytes arrived".
//!
//! # How a tone is judged
//! The test frequencies (500, 700, 1100 and 1300 Hz) are multiples of 50 Hz, so each has
//! a whole number of cycles in a 20 ms frame: over one frame their Goertzel powers are
//! orthogonal, and the jitter buffer's phase jumps between frames do not matter. For
//! the last [`WINDOW`] of played audio, per frame: `P(f)` is the Goertzel power at `f`,
//! `T` the total power, and the residual `R = T − Σ P(test frequencies)` is codec noise
//! and anything else. Powers are summed over the frames, then:
//! - a tone is **present** when `P(f) / R ≥` [`PRESENT_SNR_DB`] (10 dB) and the tone is
//!   louder than [`PRESENT_FLOOR`] (a sine of amplitude 1000, about −30 dBFS);
//! - a tone is **absent** when `P(f)` is at most [`ABSENT_DB`] (−20 dB) of the total
//!   power, or of [`SILENCE_FLOOR`] (a sine of amplitude 100, −50 dBFS) when the window
//!   is quieter than that.
//!
//! Sources are amplitude-modulated sines (±30 % at 3 Hz): a steady pure sine is
//! "stationary noise" to libopus, and the mixer's encoder (DTX on) would stop sending
//! it after a couple of seconds. The clients' own encoders run with DTX off.
//!
//! Tests run on a two-worker runtime: server and clients are separate programs in real
//! life, and on one thread every client's 20 ms tick would wait on the server's mixer.
//!
//! # Waiting
//! Every wait is for an event or for content: the taps are polled every 100 ms until a
//! condition holds, and only fresh audio counts (played after the step that should
//! change it). [`AUDIO_GUARD`] only turns a hang into a failure with the measurements.

#![allow(clippy::unwrap_used)] // Scenario helpers outside #[test] fns unwrap too.

use std::f64::consts::TAU;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

#[path = "support/harness.rs"]
mod harness;

use harness::{Client, Harness, Kind, group_of_three};
use ringwire_calling::{AudioEnd, AudioHandle, AudioOptions, AudioState};
use ringwire_media::analysis::{goertzel_power, mean_square};
use ringwire_media::audio_io::{AudioIoError, AudioSource, MemorySink, MemoryTap, SourceState};
use ringwire_media::client::CallMediaConfig;
use ringwire_media::codec::{FRAME_SAMPLES, OpusConfig, SAMPLE_RATE};
use ringwire_signaling::{CallId, CallState, Event, Identifier};

/// How much recent audio a check looks at.
const WINDOW: Duration = Duration::from_millis(400);
/// A present tone stands this far above the residual noise (dB).
const PRESENT_SNR_DB: f64 = 10.0;
/// A present tone is at least this loud: a sine of amplitude 1000 (power a²/2).
const PRESENT_FLOOR: f64 = 1000.0 * 1000.0 / 2.0;
/// An absent tone carries at most this share of the window's power (dB).
const ABSENT_DB: f64 = -20.0;
/// Below this power a window counts as silence: a sine of amplitude 100.
const SILENCE_FLOOR: f64 = 100.0 * 100.0 / 2.0;
/// Longest a content condition may take before the test fails.
const AUDIO_GUARD: Duration = Duration::from_secs(20);
/// Peak amplitude of a normal voice (a quarter of full scale).
const NORMAL: f32 = 8192.0;

const ALICE_HZ: f64 = 500.0;
const BOB_HZ: f64 = 700.0;
const CAROL_HZ: f64 = 1100.0;
/// Alice's voice in her second call.
const ALICE_SECOND_HZ: f64 = 1300.0;
const ALL_HZ: [f64; 4] = [ALICE_HZ, BOB_HZ, CAROL_HZ, ALICE_SECOND_HZ];

/// An amplitude-modulated sine whose loudness the test turns up and down while the
/// call runs.
struct Voice {
    freq: f64,
    peak: Arc<AtomicU32>,
    /// Samples produced so far (the phase of carrier and envelope).
    n: u64,
    name: String,
}

/// The test's knob on a [`Voice`].
#[derive(Clone)]
struct Loudness(Arc<AtomicU32>);

/// One client's audio in one call: what it sends and what it plays.
struct Ear {
    handle: AudioHandle,
    tap: MemoryTap,
    loudness: Loudness,
    /// Samples played before the current step: only audio after it is fresh.
    mark: u64,
}

/// What a window of played audio holds.
#[derive(Debug)]
struct Heard {
    /// (frequency, power, dB over the residual, dB of the total).
    tones: Vec<(f64, f64, f64, f64)>,
    total: f64,
}

impl Voice {
    fn new(freq: f64) -> (Voice, Loudness) {
        let peak = Arc::new(AtomicU32::new(NORMAL.to_bits()));
        let voice = Voice {
            freq,
            peak: Arc::clone(&peak),
            n: 0,
            name: format!("am tone {freq} Hz"),
        };
        (voice, Loudness(peak))
    }
}

impl AudioSource for Voice {
    fn read_frame(&mut self, frame: &mut [i16]) -> Result<SourceState, AudioIoError> {
        let peak = f64::from(f32::from_bits(self.peak.load(Ordering::Relaxed)));
        let rate = f64::from(SAMPLE_RATE);
        for s in frame.iter_mut() {
            // Both frequencies are whole hertz: the phase repeats every second.
            let t = (self.n % u64::from(SAMPLE_RATE)) as f64 / rate;
            let envelope = 1.0 + 0.3 * (TAU * 3.0 * t).sin();
            *s = (peak / 1.3 * envelope * (TAU * self.freq * t).sin()).round() as i16;
            self.n += 1;
        }
        Ok(SourceState::Active)
    }

    fn name(&self) -> &str {
        &self.name
    }
}

impl Loudness {
    fn set(&self, peak: f32) {
        self.0.store(peak.to_bits(), Ordering::Relaxed);
    }
}

impl Heard {
    fn of(samples: &[i16]) -> Heard {
        let mut powers = [0.0f64; ALL_HZ.len()];
        let mut total = 0.0;
        let frames = samples.chunks_exact(FRAME_SAMPLES);
        let count = frames.len().max(1) as f64;
        for frame in frames {
            let frame_total = mean_square(frame);
            total += frame_total;
            for (p, f) in powers.iter_mut().zip(ALL_HZ) {
                *p += goertzel_power(frame, f, SAMPLE_RATE).min(frame_total);
            }
        }
        let total = total / count;
        let powers = powers.map(|p| p / count);
        let residual = (total - powers.iter().sum::<f64>()).max(1e-9);
        let tones = ALL_HZ
            .iter()
            .zip(powers)
            .map(|(&f, p)| {
                let snr = 10.0 * (p.max(1e-9) / residual).log10();
                let share = 10.0 * (p.max(1e-9) / total.max(SILENCE_FLOOR)).log10();
                (f, p, snr, share)
            })
            .collect();
        Heard { tones, total }
    }

    fn tone(&self, freq: f64) -> (f64, f64, f64) {
        let &(_, p, snr, share) = self
            .tones
            .iter()
            .find(|t| t.0 == freq)
            .expect("a test frequency");
        (p, snr, share)
    }

    fn has(&self, freq: f64) -> bool {
        let (p, snr, _) = self.tone(freq);
        p >= PRESENT_FLOOR && snr >= PRESENT_SNR_DB
    }

    fn lacks(&self, freq: f64) -> bool {
        self.tone(freq).2 <= ABSENT_DB
    }

    fn describe(&self) -> String {
        let mut out = format!("total {:.0}", self.total);
        for (f, p, snr, share) in &self.tones {
            let _ = write!(
                out,
                "; {f} Hz: power {p:.0}, {snr:.1} dB over residual, {share:.1} dB of total"
            );
        }
        out
    }
}

impl Ear {
    /// Starts `client`'s audio in `call`, sending a tone of `freq`.
    async fn start(client: &Client, call: &CallId, freq: f64) -> Ear {
        let (voice, loudness) = Voice::new(freq);
        let (sink, tap) = MemorySink::new();
        let mut options = AudioOptions::new(voice, sink);
        options.media = CallMediaConfig::with_opus(OpusConfig {
            dtx: false,
            ..OpusConfig::default()
        });
        let handle = client
            .handle
            .start_audio(call, options)
            .await
            .unwrap_or_else(|e| panic!("{}: start audio: {e}", client.name));
        Ear {
            handle,
            tap,
            loudness,
            mark: 0,
        }
    }

    /// Only audio played from now on counts.
    fn fresh(&mut self) {
        self.mark = self.tap.written();
    }

    /// The last [`WINDOW`] of fresh audio, `None` until that much has played.
    fn recent(&self) -> Option<Heard> {
        let window = samples(WINDOW);
        if self.tap.written() < self.mark + window {
            return None;
        }
        Some(self.tap.analyze(WINDOW, Heard::of))
    }

    /// Everything played since [`Ear::fresh`] (possibly nothing).
    fn since_mark(&self) -> Heard {
        let played = self.tap.written().saturating_sub(self.mark);
        let window = Duration::from_secs_f64(played as f64 / f64::from(SAMPLE_RATE));
        self.tap.analyze(window, Heard::of)
    }
}

fn samples(d: Duration) -> u64 {
    (d.as_secs_f64() * f64::from(SAMPLE_RATE)) as u64
}

/// Polls `check` every 100 ms until it holds; fails with its last complaint after
/// [`AUDIO_GUARD`].
async fn until(what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let started = tokio::time::Instant::now();
    loop {
        match check() {
            Ok(()) => return,
            Err(why) if started.elapsed() > AUDIO_GUARD => {
                panic!("{what}: not so within {AUDIO_GUARD:?}: {why}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Whether `ear` (named `who`) hears every tone of `hears` and none of `not`, over
/// fresh audio.
fn hearing(who: &str, ear: &Ear, hears: &[f64], not: &[f64]) -> Result<(), String> {
    let heard = ear
        .recent()
        .ok_or_else(|| format!("{who}: not enough fresh audio yet"))?;
    let missing: Vec<_> = hears.iter().filter(|f| !heard.has(**f)).collect();
    let extra: Vec<_> = not.iter().filter(|f| !heard.lacks(**f)).collect();
    if missing.is_empty() && extra.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{who} misses {missing:?} Hz, still hears {extra:?} Hz: {}",
            heard.describe()
        ))
    }
}

/// `clients[i]` plays `heard[i].0` and not `heard[i].1`, all at once over fresh audio.
async fn until_hearing(what: &str, ears: &[(&str, &Ear, &[f64], &[f64])]) {
    until(what, || {
        let complaints: Vec<String> = ears
            .iter()
            .filter_map(|(who, ear, yes, no)| hearing(who, ear, yes, no).err())
            .collect();
        if complaints.is_empty() {
            return Ok(());
        }
        let mut why = complaints.join("\n");
        for (who, ear, ..) in ears {
            let s = ear.handle.stats();
            let j = s.jitter;
            let _ = write!(
                why,
                "\n{who}: sent {} of {} frames, received {} packets; jitter: {} frames, \
                 {} decoded, {} fec, {} concealed, {} late, {} inserted, {} dropped, \
                 delay {:?} (target {:?})",
                s.packets_sent,
                s.frames_in,
                s.packets_received,
                j.frames,
                j.decoded,
                j.fec,
                j.concealed,
                j.late,
                j.inserted,
                j.dropped,
                j.current_delay,
                j.target_delay,
            );
        }
        Err(why)
    })
    .await;
}

fn fresh(ears: &mut [&mut Ear]) {
    for ear in ears {
        ear.fresh();
    }
}

async fn connected(who: &str, ear: &Ear) {
    tokio::time::timeout(AUDIO_GUARD, ear.handle.wait_connected())
        .await
        .unwrap_or_else(|_| panic!("{who}: audio not connected in {AUDIO_GUARD:?}"))
        .unwrap_or_else(|e| panic!("{who}: audio did not connect: {e}"));
}

/// A group call of three with audio, everyone hearing the other two.
struct Group {
    h: Harness,
    alice: Client,
    bob: Client,
    carol: Client,
    call: CallId,
    a: Ear,
    b: Ear,
    c: Ear,
}

impl Group {
    async fn start() -> Group {
        let mut h = Harness::start().await;
        let mut alice = h.client(Kind::Ws, "alice").await;
        let mut bob = h.client(Kind::Ws, "bob").await;
        let mut carol = h.client(Kind::Ws, "carol").await;
        let call = group_of_three(&mut alice, &mut bob, &mut carol).await;
        let a = Ear::start(&alice, &call, ALICE_HZ).await;
        let b = Ear::start(&bob, &call, BOB_HZ).await;
        let c = Ear::start(&carol, &call, CAROL_HZ).await;
        for (who, ear) in [("alice", &a), ("bob", &b), ("carol", &c)] {
            connected(who, ear).await;
        }
        let group = Group {
            h,
            alice,
            bob,
            carol,
            call,
            a,
            b,
            c,
        };
        group.until_everyone_hears_the_others().await;
        group
    }

    /// Each hears the other two tones and not its own.
    async fn until_everyone_hears_the_others(&self) {
        until_hearing(
            "each hears the other two and not itself",
            &[
                ("alice", &self.a, &[BOB_HZ, CAROL_HZ], &[ALICE_HZ]),
                ("bob", &self.b, &[ALICE_HZ, CAROL_HZ], &[BOB_HZ]),
                ("carol", &self.c, &[ALICE_HZ, BOB_HZ], &[CAROL_HZ]),
            ],
        )
        .await;
    }

    fn fresh(&mut self) {
        fresh(&mut [&mut self.a, &mut self.b, &mut self.c]);
    }

    async fn end(self) {
        self.h.server.shut_down().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_of_three_hears_the_other_two_tones_and_not_its_own() {
    let group = Group::start().await;
    // Group::start waited for it; the mixer decoded and encoded to get there.
    let stats = group.h.server.media_stats().await.unwrap();
    assert!(stats.decoded > 0 && stats.encoded > 0, "{stats:?}");
    group.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn muting_one_removes_its_tone_at_the_others() {
    let mut g = Group::start().await;
    g.carol.handle.mute(&g.call).await.unwrap();
    g.carol
        .expect("carol's own mute", |e| {
            matches!(e, Event::MuteChanged { muted: true, .. }).then_some(())
        })
        .await;
    g.fresh();
    until_hearing(
        "carol muted: the others no longer hear her, and still hear each other",
        &[
            ("alice", &g.a, &[BOB_HZ], &[CAROL_HZ, ALICE_HZ]),
            ("bob", &g.b, &[ALICE_HZ], &[CAROL_HZ, BOB_HZ]),
            ("carol", &g.c, &[ALICE_HZ, BOB_HZ], &[CAROL_HZ]),
        ],
    )
    .await;
    assert!(g.c.handle.stats().frames_suppressed > 0);

    g.carol.handle.unmute(&g.call).await.unwrap();
    g.fresh();
    g.until_everyone_hears_the_others().await;
    g.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_stops_audio_both_ways_and_resume_restores_it() {
    let mut g = Group::start().await;
    g.alice.handle.hold(&g.call).await.unwrap();
    g.alice.expect_state(&g.call, CallState::LocalHold).await;
    g.fresh();
    until_hearing(
        "alice on hold: the others no longer hear her",
        &[
            ("bob", &g.b, &[CAROL_HZ], &[ALICE_HZ, BOB_HZ]),
            ("carol", &g.c, &[BOB_HZ], &[ALICE_HZ, CAROL_HZ]),
        ],
    )
    .await;
    // From here on alice must play nothing of the others: take bob's playback as the
    // clock and let a second of it pass.
    g.a.fresh();
    g.b.fresh();
    let b = &g.b;
    until("bob plays another second", || {
        if b.tap.written() >= b.mark + samples(Duration::from_secs(1)) {
            Ok(())
        } else {
            Err(format!("{} samples so far", b.tap.written() - b.mark))
        }
    })
    .await;
    let heard = g.a.since_mark();
    for f in [BOB_HZ, CAROL_HZ] {
        assert!(
            heard.lacks(f),
            "alice on hold still hears {f} Hz: {}",
            heard.describe()
        );
    }

    g.alice.handle.resume(&g.call).await.unwrap();
    g.alice.expect_state(&g.call, CallState::Connected).await;
    g.fresh();
    g.until_everyone_hears_the_others().await;
    g.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loudest_tone_makes_its_owner_dominant_speaker() {
    let mut g = Group::start().await;
    // The detector (Jitsi's) counts a frame as speech when it is more than about
    // 70 loudness steps above the noise floor: -60 dBFS is below that, -6 dBFS far
    // above. Whoever is loud must take the floor from whoever was dominant.
    let quiet = NORMAL / 256.0;
    for (loud, ids) in [
        (&g.b.loudness, g.bob.id.clone()),
        (&g.c.loudness, g.carol.id.clone()),
    ] {
        for ear in [&g.a, &g.b, &g.c] {
            ear.loudness.set(quiet);
        }
        loud.set(NORMAL * 2.0);
        let call = g.call.clone();
        for client in [&mut g.alice, &mut g.bob, &mut g.carol] {
            let (call, loudest) = (call.clone(), ids.clone());
            client
                .expect(&format!("{loudest} dominant"), move |e| match e {
                    Event::DominantSpeakersChanged { call_id, speakers }
                        if *call_id == call && speakers.first() == Some(&loudest) =>
                    {
                        Some(())
                    }
                    _ => None,
                })
                .await;
        }
        let snapshot = g.alice.handle.call(&g.call).await.unwrap().unwrap();
        assert_eq!(snapshot.dominant_speakers().first(), Some(&ids));
    }
    g.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_to_one_forwards_audio_without_transcoding() {
    let mut h = Harness::start().await;
    let mut alice = h.client(Kind::Ws, "alice").await;
    let mut bob = h.client(Kind::Ws, "bob").await;
    let call = harness::connected_pair(&mut alice, &mut bob).await;
    let a = Ear::start(&alice, &call, ALICE_HZ).await;
    let b = Ear::start(&bob, &call, BOB_HZ).await;
    connected("alice", &a).await;
    connected("bob", &b).await;
    until_hearing(
        "each hears the other and not itself",
        &[
            ("alice", &a, &[BOB_HZ], &[ALICE_HZ]),
            ("bob", &b, &[ALICE_HZ], &[BOB_HZ]),
        ],
    )
    .await;
    let stats = h.server.media_stats().await.unwrap();
    assert!(stats.forwarded > 0, "packets forwarded: {stats:?}");
    assert_eq!(
        (stats.decoded, stats.encoded),
        (0, 0),
        "nothing transcoded: {stats:?}"
    );
    let sent = a.handle.stats();
    assert!(
        sent.packets_sent > 0 && sent.packets_received > 0,
        "{sent:?}"
    );

    // Hanging up ends both sides' audio.
    alice.handle.hang_up(&call, false).await.unwrap();
    for (who, ear) in [("alice", &a), ("bob", &b)] {
        let end = tokio::time::timeout(AUDIO_GUARD, ear.handle.wait_ended())
            .await
            .unwrap_or_else(|_| panic!("{who}: audio still runs after the call ended"));
        assert_eq!(end, AudioEnd::CallEnded, "{who}");
    }
    h.server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_calls_at_once_keep_their_audio_apart() {
    let mut h = Harness::start().await;
    let mut alice = h.client(Kind::Ws, "alice").await;
    let mut bob = h.client(Kind::Ws, "bob").await;
    let mut carol = h.client(Kind::Ws, "carol").await;
    let first = harness::connected_pair(&mut alice, &mut bob).await;
    let second = harness::connected_pair(&mut alice, &mut carol).await;
    let a1 = Ear::start(&alice, &first, ALICE_HZ).await;
    let a2 = Ear::start(&alice, &second, ALICE_SECOND_HZ).await;
    let b = Ear::start(&bob, &first, BOB_HZ).await;
    let c = Ear::start(&carol, &second, CAROL_HZ).await;
    for (who, ear) in [
        ("alice 1", &a1),
        ("alice 2", &a2),
        ("bob", &b),
        ("carol", &c),
    ] {
        connected(who, ear).await;
    }
    until_hearing(
        "each call carries only its own two voices",
        &[
            (
                "alice in 1",
                &a1,
                &[BOB_HZ],
                &[CAROL_HZ, ALICE_HZ, ALICE_SECOND_HZ],
            ),
            (
                "alice in 2",
                &a2,
                &[CAROL_HZ],
                &[BOB_HZ, ALICE_HZ, ALICE_SECOND_HZ],
            ),
            ("bob", &b, &[ALICE_HZ], &[ALICE_SECOND_HZ, CAROL_HZ, BOB_HZ]),
            (
                "carol",
                &c,
                &[ALICE_SECOND_HZ],
                &[ALICE_HZ, BOB_HZ, CAROL_HZ],
            ),
        ],
    )
    .await;
    // Audio for a call that already has it is refused, typed.
    let (voice, _) = Voice::new(ALICE_HZ);
    let (sink, _) = MemorySink::new();
    let again = alice
        .handle
        .start_audio(&first, AudioOptions::new(voice, sink))
        .await;
    assert!(
        matches!(again, Err(ringwire_calling::Error::AudioRunning(ref id)) if *id == first),
        "{again:?}"
    );
    h.server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_audio_mid_call_leaves_signaling_intact() {
    let mut h = Harness::start().await;
    let mut alice = h.client(Kind::Ws, "alice").await;
    let mut bob = h.client(Kind::Ws, "bob").await;
    let call = harness::connected_pair(&mut alice, &mut bob).await;
    let a = Ear::start(&alice, &call, ALICE_HZ).await;
    let mut b = Ear::start(&bob, &call, BOB_HZ).await;
    connected("alice", &a).await;
    connected("bob", &b).await;
    until_hearing(
        "each hears the other",
        &[
            ("alice", &a, &[BOB_HZ], &[ALICE_HZ]),
            ("bob", &b, &[ALICE_HZ], &[BOB_HZ]),
        ],
    )
    .await;

    let watch = a.handle.watch_state();
    a.handle.stop().await;
    assert_eq!(*watch.borrow(), AudioState::Ended(AudioEnd::Stopped));

    // Signaling goes on: the call is up on both sides and a round trip works.
    assert_eq!(alice.state(&call).await, CallState::Connected);
    assert_eq!(bob.state(&call).await, CallState::Connected);
    alice.handle.mute(&call).await.unwrap();
    let alice_id: Identifier = alice.id.clone();
    bob.expect_participant(&call, &alice_id, "muted", |p| p.muted)
        .await;
    alice.handle.unmute(&call).await.unwrap();
    bob.expect_participant(&call, &alice_id, "unmuted", |p| !p.muted)
        .await;
    assert_eq!(b.handle.state(), AudioState::Connected);

    // Audio starts again in the same call (a new offer), with another tone: bob hears
    // the new one and not the old.
    let a = Ear::start(&alice, &call, ALICE_SECOND_HZ).await;
    connected("alice again", &a).await;
    b.fresh();
    until_hearing(
        "alice's new audio replaces the old",
        &[
            ("alice", &a, &[BOB_HZ], &[ALICE_HZ, ALICE_SECOND_HZ]),
            ("bob", &b, &[ALICE_SECOND_HZ], &[ALICE_HZ, BOB_HZ]),
        ],
    )
    .await;
    h.server.shut_down().await;
}
