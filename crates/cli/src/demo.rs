//! `ringwire demo`: real calls on loopback through an embedded server, with synthetic
//! media checked by content, and a summary of what happened.
//!
//! 1. The echo test: a native client calls `8:echo123` with a 440 Hz tone; the echo
//!    service answers, plays its prompt, records a few seconds and plays them back.
//!    The demo times dial to first audio and to the tone coming back, and checks that
//!    the service hangs up normally.
//! 2. A group call of three native clients, each with its own tone and a test-pattern
//!    camera tagged with its number: each must hear the other two tones and decode the
//!    other two cameras (right sender tag on every picture); a mute shows in the
//!    others' rosters; a hang-up for everyone ends the call for all.
//!
//! It exits with an error unless every check passed. Everything runs through the
//! calling SDK ([`CallClient`]) against a real [`Server`] on 127.0.0.1: WebSocket
//! signaling, str0m DTLS-SRTP media, libopus and OpenH264.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use ringwire_calling::{
    AudioOptions, Call, CallAgent, CallClient, CallClientOptions, CallEvent, Endpoint,
    HangUpOptions, JoinCallOptions, LocalVideoStream, RemoteVideo, StartCallOptions, VideoOptions,
};
use ringwire_media::analysis::{goertzel_power, mean_square};
use ringwire_media::audio_io::{
    AudioIoError, AudioSink, AudioSource, MemorySink, MemoryTap, SourceState, TONE_PRESENT_SNR_DB,
};
use ringwire_media::client::CallMediaConfig;
use ringwire_media::codec::{FRAME_SAMPLES, OpusConfig, SAMPLE_RATE};
use ringwire_media::video::{
    FrameRate, TestPatternSource, VideoFormat, VideoFrame, VideoIoError, VideoSink,
};
use ringwire_server::{RunningServer, Server, ServerConfig};
use ringwire_signaling::{CallState, GroupId, Identifier, Scope, Scopes, UserId};
use tokio::time::Instant;

/// Longest any one step may take before it counts as failed.
const STEP_GUARD: Duration = Duration::from_secs(25);
/// The echo test's tone.
const ECHO_HZ: f64 = 440.0;
/// Played audio louder than this (a sine of amplitude 100, -50 dBFS) is "audio".
const AUDIBLE: f64 = 100.0 * 100.0 / 2.0;
/// Pictures each camera must show at each viewer (2 s at 15 fps).
const FRAMES_WANTED: u64 = 30;

/// The group call's members: name, tone, camera tag.
const MEMBERS: [(&str, f64, u32); 3] = [("ada", 500.0, 1), ("bob", 700.0, 2), ("carol", 1100.0, 3)];

/// Options of `ringwire demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Instead of the demo, place this many echo test calls one after another and
    /// print dial-to-first-audio percentiles (p50, p95).
    #[arg(long, value_name = "N")]
    echo_calls: Option<usize>,
}

/// Runs the demo on its own runtime.
pub(crate) fn run(args: &DemoArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match args.echo_calls {
        Some(n) => runtime.block_on(measure_echo_calls(n)),
        None => runtime.block_on(demo()),
    }
}

/// One check and how it went.
struct Check {
    name: String,
    passed: bool,
    detail: String,
}

#[derive(Default)]
struct Checks(Vec<Check>);

impl Checks {
    fn record(&mut self, name: impl Into<String>, passed: bool, detail: impl Into<String>) {
        let check = Check {
            name: name.into(),
            passed,
            detail: detail.into(),
        };
        println!(
            "  [{}] {}: {}",
            if check.passed { "ok" } else { "FAILED" },
            check.name,
            check.detail
        );
        self.0.push(check);
    }
}

/// A server on 127.0.0.1 (free ports) with its data in a fresh temp dir.
async fn start_server() -> Result<(RunningServer, PathBuf)> {
    let data_dir = std::env::temp_dir().join(format!("ringwire-demo-{}", std::process::id()));
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let config = ServerConfig {
        http_addr: "127.0.0.1:0".parse()?,
        quic_addr: "127.0.0.1:0".parse()?,
        data_dir: data_dir.clone(),
        ..ServerConfig::default()
    };
    let server = Server::start(config).await.context("starting the server")?;
    Ok((server, data_dir))
}

/// `n` echo test calls in a row from one signed-in agent: for each, the time from
/// dialing to the call being placed (`start_call` returned), to the `Connected`
/// state, to media connected (ICE and DTLS done) and to the first audible audio
/// played (the echo service's prompt), then a hang-up; prints each call and the
/// percentiles of each step.
async fn measure_echo_calls(n: usize) -> Result<()> {
    if n == 0 {
        bail!("--echo-calls needs at least one call");
    }
    let (server, data_dir) = start_server().await?;
    println!(
        "demo: ringwire server on http://{}; {n} echo test calls, dial to first audio",
        server.http_addr()
    );
    let result = async {
        let agent = agent(&server, "alice").await?;
        // Per call: placed, connected, media connected, first audio.
        let mut steps: [Vec<Duration>; 4] = Default::default();
        for i in 1..=n {
            let (mut audio, _) = tone_audio(ECHO_HZ)?;
            let heard = Arc::new(Mutex::new(None));
            audio.sink = Box::new(FirstAudible(Arc::clone(&heard)));
            let dialed = Instant::now();
            let call = agent
                .start_call(
                    &[Identifier::EchoService],
                    StartCallOptions::new().with_audio(audio),
                )
                .await?;
            let placed = dialed.elapsed();
            let connected = {
                let call = call.clone();
                tokio::spawn(async move {
                    call.wait_for_state(CallState::Connected).await.map(|()| dialed.elapsed())
                })
            };
            let media = {
                let call = call.clone();
                tokio::spawn(async move { call.wait_media_connected().await.map(|()| dialed.elapsed()) })
            };
            let first_heard = || *heard.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            time_until(dialed, || first_heard().is_some())
                .await
                .with_context(|| format!("call {i}: nothing audible within {STEP_GUARD:?}"))?;
            let first = first_heard()
                .map(|at: Instant| at - dialed)
                .context("first audio time lost")?;
            let connected = tokio::time::timeout(STEP_GUARD, connected)
                .await
                .with_context(|| format!("call {i} never showed Connected"))???;
            let media = tokio::time::timeout(STEP_GUARD, media)
                .await
                .with_context(|| format!("call {i}: media never connected"))???;
            println!(
                "  call {i}: placed {:.1} ms, connected {:.1} ms, media {:.1} ms, first audio {:.1} ms",
                msf(placed),
                msf(connected),
                msf(media),
                msf(first)
            );
            for (step, d) in steps.iter_mut().zip([placed, connected, media, first]) {
                step.push(d);
            }
            call.hang_up(HangUpOptions::new()).await?;
            tokio::time::timeout(STEP_GUARD, call.wait_for_state(CallState::Disconnected))
                .await
                .with_context(|| format!("call {i} did not end"))??;
        }
        agent.dispose().await;
        println!("demo: over {n} echo calls (p50 / p95 / max):");
        for (name, times) in ["placed", "connected", "media connected", "first audio"]
            .iter()
            .zip(&mut steps)
        {
            times.sort();
            println!(
                "  {name:<16} {:.1} / {:.1} / {:.1} ms",
                msf(percentile(times, 0.50)),
                msf(percentile(times, 0.95)),
                msf(percentile(times, 1.0)),
            );
        }
        println!(
            "demo: dial to first audio over {n} echo calls: p50 {:.1} ms, p95 {:.1} ms",
            msf(percentile(&steps[3], 0.50)),
            msf(percentile(&steps[3], 0.95)),
        );
        Ok::<_, anyhow::Error>(())
    }
    .await;
    server.shut_down().await;
    let _ = std::fs::remove_dir_all(&data_dir);
    result
}

/// The nearest-rank percentile `p` (0..=1) of `sorted`: the smallest value at or
/// above that share of them.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied().unwrap_or_default()
}

/// Milliseconds with a fraction.
fn msf(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn demo() -> Result<()> {
    let (server, data_dir) = start_server().await?;
    println!(
        "demo: ringwire server on http://{} (media on udp {})",
        server.http_addr(),
        server.media_addr()
    );
    let mut checks = Checks::default();
    println!("\ndemo: 1. echo test (8:echo123)");
    if let Err(error) = echo_test(&server, &mut checks).await {
        checks.record("echo test", false, format!("{error:#}"));
    }
    println!("\ndemo: 2. group call of three with audio and video");
    if let Err(error) = group_call(&server, &mut checks).await {
        checks.record("group call", false, format!("{error:#}"));
    }
    server.shut_down().await;
    let _ = std::fs::remove_dir_all(&data_dir);

    let failed: Vec<&Check> = checks.0.iter().filter(|c| !c.passed).collect();
    println!(
        "\ndemo: {} of {} checks passed",
        checks.0.len() - failed.len(),
        checks.0.len()
    );
    if let Some(first) = failed.first() {
        bail!(
            "{} check(s) failed, first: {}: {}",
            failed.len(),
            first.name,
            first.detail
        );
    }
    Ok(())
}

/// A call agent for `name` on `server`.
async fn agent(server: &RunningServer, name: &str) -> Result<CallAgent> {
    let user = UserId::new(name)?;
    let token = server.issue_token(&user, Scopes::from(Scope::Voip), Duration::from_secs(3600));
    let endpoint = Endpoint::ws(format!("ws://{}/v1/signaling", server.http_addr()));
    let client = CallClient::new(CallClientOptions::new(endpoint));
    client
        .create_call_agent(token)
        .await
        .with_context(|| format!("{name} connecting"))
}

/// A sine at a whole number of hertz whose loudness swings ±30 % three times a
/// second: a steady sine is "stationary noise" to libopus, and the group mixer's
/// encoder (DTX on) would stop sending it.
pub(crate) struct AmTone {
    freq: f64,
    n: u64,
    name: String,
}

impl AmTone {
    /// A `freq` Hz tone (a whole number of hertz keeps its phase exact).
    pub(crate) fn new(freq: f64) -> Self {
        AmTone {
            freq,
            n: 0,
            name: format!("am tone {freq} Hz"),
        }
    }
}

impl AudioSource for AmTone {
    fn read_frame(&mut self, frame: &mut [i16]) -> Result<SourceState, AudioIoError> {
        use std::f64::consts::TAU;
        let rate = f64::from(SAMPLE_RATE);
        for sample in frame.iter_mut() {
            // Whole hertz: the phase repeats every second.
            let t = (self.n % u64::from(SAMPLE_RATE)) as f64 / rate;
            let envelope = 1.0 + 0.3 * (TAU * 3.0 * t).sin();
            *sample = (6000.0 * envelope * (TAU * self.freq * t).sin()).round() as i16;
            self.n += 1;
        }
        Ok(SourceState::Active)
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// How far `freq` stands above what is neither it nor another of `tones`, in dB,
/// over the last 400 ms played: with several tones at once, each must be measured
/// against the noise, not against the others. The tones are multiples of 50 Hz, so
/// over one 20 ms frame their Goertzel powers do not leak into each other.
fn tone_over_noise(tap: &MemoryTap, freq: f64, tones: &[f64]) -> f64 {
    tap.analyze(Duration::from_millis(400), |samples| {
        let (mut wanted, mut known, mut total) = (0.0, 0.0, 0.0);
        for frame in samples.chunks_exact(FRAME_SAMPLES) {
            let frame_total = mean_square(frame);
            total += frame_total;
            for &f in tones {
                let p = goertzel_power(frame, f, SAMPLE_RATE).min(frame_total);
                known += p;
                if f == freq {
                    wanted += p;
                }
            }
        }
        let residual = (total - known).max(1e-9);
        10.0 * (f64::max(wanted, 1e-9) / residual).log10()
    })
}

/// A speaker that notes when the first audible frame is played.
struct FirstAudible(Arc<Mutex<Option<Instant>>>);

impl AudioSink for FirstAudible {
    fn write_frame(&mut self, frame: &[i16]) -> Result<(), AudioIoError> {
        if mean_square(frame) > AUDIBLE {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get_or_insert_with(Instant::now);
        }
        Ok(())
    }

    fn name(&self) -> &str {
        "first audible frame"
    }
}

/// Audio options for a tone (DTX off: a steady tone is "silence" to a DTX encoder).
fn tone_audio(freq: f64) -> Result<(AudioOptions, MemoryTap)> {
    let (sink, tap) = MemorySink::bounded(Duration::from_secs(3));
    let mut audio = AudioOptions::new(AmTone::new(freq), sink);
    audio.media = CallMediaConfig::with_opus(OpusConfig {
        dtx: false,
        ..OpusConfig::default()
    });
    Ok((audio, tap))
}

/// Polls `done` every 20 ms until it holds; how long that took, or `None` after
/// [`STEP_GUARD`].
async fn time_until(started: Instant, mut done: impl FnMut() -> bool) -> Option<Duration> {
    loop {
        if done() {
            return Some(started.elapsed());
        }
        if started.elapsed() > STEP_GUARD {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The states a call went through: the one it had when we got it, then each
/// [`CallEvent::StateChanged`].
struct StateLog(Arc<Mutex<Vec<CallState>>>);

impl StateLog {
    fn follow(call: &Call) -> StateLog {
        let states = Arc::new(Mutex::new(vec![call.state()]));
        let mut events = call.events();
        let log = Arc::clone(&states);
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if let CallEvent::StateChanged { state, .. } = event {
                    let mut states = log
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if states.last() != Some(&state) {
                        states.push(state);
                    }
                    if state == CallState::Disconnected {
                        break;
                    }
                }
            }
        });
        StateLog(states)
    }

    /// `Connected -> Disconnected`, ending with the call's state now (its last event
    /// may still be on its way to the log).
    fn show(&self, call: &Call) -> String {
        let mut states = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let now = call.state();
        if states.last() != Some(&now) {
            states.push(now);
        }
        states
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(" -> ")
    }
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

async fn echo_test(server: &RunningServer, checks: &mut Checks) -> Result<()> {
    let agent = agent(server, "alice").await?;
    let (audio, tap) = tone_audio(ECHO_HZ)?;
    let dialed = Instant::now();
    let call = agent
        .start_call(
            &[Identifier::EchoService],
            StartCallOptions::new().with_audio(audio),
        )
        .await?;
    let states = StateLog::follow(&call);
    let connected = tokio::time::timeout(STEP_GUARD, call.wait_for_state(CallState::Connected))
        .await
        .is_ok_and(|r| r.is_ok())
        .then(|| dialed.elapsed());
    checks.record(
        "echo call connects",
        connected.is_some(),
        connected.map_or("not connected".into(), |d| format!("in {}", ms(d))),
    );
    let first_audio = time_until(dialed, || {
        tap.analyze(Duration::from_millis(60), mean_square) > AUDIBLE
    })
    .await;
    checks.record(
        "first audio (the prompt)",
        first_audio.is_some(),
        first_audio.map_or("nothing audible played".into(), |d| {
            format!("{} after dialing", ms(d))
        }),
    );
    let mut best = f64::NEG_INFINITY;
    let tone_back = time_until(dialed, || {
        let snr = tap.tone_snr(ECHO_HZ, Duration::from_millis(400));
        best = best.max(snr);
        snr >= TONE_PRESENT_SNR_DB
    })
    .await;
    checks.record(
        "our tone played back",
        tone_back.is_some(),
        match tone_back {
            Some(d) => format!(
                "{ECHO_HZ} Hz back {} after dialing, {best:.1} dB SNR",
                ms(d)
            ),
            None => format!("not heard (best {best:.1} dB SNR)"),
        },
    );
    let ended = tokio::time::timeout(STEP_GUARD, call.wait_for_state(CallState::Disconnected))
        .await
        .is_ok_and(|r| r.is_ok());
    let reason = call.end_reason();
    checks.record(
        "the echo service hangs up normally",
        ended && reason.as_ref().is_some_and(|r| r.code == 0),
        format!("end reason {reason:?}"),
    );
    println!("  states: {}", states.show(&call));
    if let Some(stats) = call.media_stats() {
        println!(
            "  audio: {} packets sent, {} received",
            stats.audio.packets_sent, stats.audio.packets_received
        );
    }
    agent.dispose().await;
    Ok(())
}

/// Pictures decoded per sender at one viewer: (right tag, wrong or unreadable).
type Seen = Arc<Mutex<BTreeMap<Identifier, (u64, u64)>>>;

/// Counts a remote camera's pictures at one viewer, checking its tag.
struct CountingSink {
    seen: Seen,
    sender: Identifier,
    tag: Option<u32>,
}

impl VideoSink for CountingSink {
    fn write_frame(&mut self, frame: &VideoFrame) -> Result<(), VideoIoError> {
        let right = self.tag.is_some() && TestPatternSource::sender(frame) == self.tag;
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = seen.entry(self.sender.clone()).or_default();
        if right {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
        Ok(())
    }

    fn name(&self) -> &str {
        "demo counter"
    }
}

/// One member of the group call.
struct Member {
    name: &'static str,
    id: Identifier,
    freq: f64,
    agent: CallAgent,
    call: Call,
    states: StateLog,
    tap: MemoryTap,
    seen: Seen,
}

fn tag_of(id: &Identifier) -> Option<u32> {
    MEMBERS
        .iter()
        .find(|(name, ..)| Identifier::user(name).is_ok_and(|m| &m == id))
        .map(|&(.., tag)| tag)
}

async fn group_call(server: &RunningServer, checks: &mut Checks) -> Result<()> {
    let group = GroupId::new("demo")?;
    let mut members = Vec::new();
    for (name, freq, tag) in MEMBERS {
        let agent = agent(server, name).await?;
        let (audio, tap) = tone_audio(freq)?;
        let seen = Seen::default();
        let renderer_seen = Arc::clone(&seen);
        let video = VideoOptions::new().with_renderer(move |stream: &RemoteVideo| {
            Box::new(CountingSink {
                seen: Arc::clone(&renderer_seen),
                sender: stream.participant.clone(),
                tag: tag_of(&stream.participant),
            }) as Box<dyn VideoSink>
        });
        let format = VideoFormat::new(320, 180, FrameRate::per_second(15)?)?;
        let camera = TestPatternSource::new(format)?.with_sender(tag);
        let joined = Instant::now();
        let call = agent
            .join(
                &group,
                JoinCallOptions::new()
                    .with_audio(audio.with_video(video))
                    .with_video(LocalVideoStream::camera(camera)),
            )
            .await?;
        tokio::time::timeout(STEP_GUARD, call.wait_media_connected())
            .await
            .context("media did not connect in time")??;
        println!(
            "  {name} joined, media connected in {}",
            ms(joined.elapsed())
        );
        members.push(Member {
            name,
            id: Identifier::user(name)?,
            freq,
            agent,
            states: StateLog::follow(&call),
            call,
            tap,
            seen,
        });
    }

    // Everyone hears the other two and sees their cameras.
    let tones: Vec<f64> = MEMBERS.iter().map(|&(_, freq, _)| freq).collect();
    let started = Instant::now();
    let mut why = String::new();
    let everyone = time_until(started, || {
        why.clear();
        for m in &members {
            for o in members.iter().filter(|o| o.id != m.id) {
                let snr = tone_over_noise(&m.tap, o.freq, &tones);
                let (ok, bad) = m
                    .seen
                    .lock()
                    .map(|s| s.get(&o.id).copied().unwrap_or_default())
                    .unwrap_or_default();
                if snr < TONE_PRESENT_SNR_DB || ok < FRAMES_WANTED || bad > 0 {
                    let _ = write!(why, " {}<-{}: {snr:.1} dB, {ok}/{bad};", m.name, o.name);
                }
            }
        }
        why.is_empty()
    })
    .await;
    if everyone.is_none() {
        println!("  still missing when the guard ran out:{why}");
    }
    let mut matrix = String::new();
    for m in &members {
        for o in members.iter().filter(|o| o.id != m.id) {
            let snr = tone_over_noise(&m.tap, o.freq, &tones);
            let (ok, bad) = m
                .seen
                .lock()
                .map(|s| s.get(&o.id).copied().unwrap_or_default())
                .unwrap_or_default();
            let _ = write!(
                matrix,
                "\n      {} hears {} at {snr:.1} dB, saw {ok} of their pictures ({bad} wrong)",
                m.name, o.name
            );
        }
    }
    checks.record(
        "each hears the other two tones and decodes the other two cameras",
        everyone.is_some(),
        format!(
            "{}{matrix}",
            everyone.map_or("not within the guard".into(), |d| format!("in {}", ms(d)))
        ),
    );

    // The roster as ada sees it.
    let ada = &members[0];
    println!("  roster at {}:", ada.name);
    for p in ada.call.remote_participants() {
        let video: Vec<String> = p
            .video_streams()
            .iter()
            .map(|s| {
                format!(
                    "{:?} {}",
                    s.kind,
                    s.size.map_or("?".into(), |z| z.to_string())
                )
            })
            .collect();
        println!(
            "    {} {:?}{} video: {}",
            p.identifier(),
            p.state(),
            if p.is_muted() { " muted" } else { "" },
            video.join(", ")
        );
    }
    println!("  dominant speakers: {:?}", ada.call.dominant_speakers());

    // A mute shows in the others' rosters.
    let bob = &members[1];
    bob.call.mute().await?;
    let muted = tokio::time::timeout(
        STEP_GUARD,
        ada.call
            .wait_until(|c| c.remote_participant(&bob.id).is_some_and(|p| p.is_muted())),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    checks.record(
        "bob's mute shows in ada's roster",
        muted,
        if muted { "muted" } else { "not shown" },
    );

    // ada ends the call for everyone.
    ada.call.hang_up(HangUpOptions::for_everyone()).await?;
    let mut all_ended = true;
    let mut reasons = String::new();
    for m in &members {
        let ended =
            tokio::time::timeout(STEP_GUARD, m.call.wait_for_state(CallState::Disconnected))
                .await
                .is_ok_and(|r| r.is_ok());
        all_ended &= ended;
        let _ = write!(
            reasons,
            " {}: {:?};",
            m.name,
            m.call.end_reason().map(|r| r.code)
        );
    }
    checks.record(
        "hang up for everyone ends the call for all",
        all_ended,
        reasons,
    );
    for m in members {
        println!("  {} states: {}", m.name, m.states.show(&m.call));
        if let Some(stats) = m.call.media_stats() {
            println!(
                "  {}: audio {} packets out / {} in; video {} frames sent, {} decoded",
                m.name,
                stats.audio.packets_sent,
                stats.audio.packets_received,
                stats.video.frames_sent,
                stats.video.frames_decoded
            );
        }
        m.agent.dispose().await;
    }
    Ok(())
}
