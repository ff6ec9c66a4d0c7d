//! `ringwire peer` (hidden): a scripted native client for interop tests. It connects
//! to a server with a token (or a development identity from `POST /dev/token`), then
//! calls a target, answers the first incoming call, or joins a group; sends an
//! amplitude-modulated tone and a test-pattern camera; and prints one JSON object per
//! line on stdout about what it observes:
//!
//! - `{"event":"ready","user":..}` once signed in, `{"event":"call","id":..}` once a
//!   call exists;
//! - `{"event":"state","state":..,"end_reason":..}` on each call state change;
//! - `{"event":"roster","change":..,"participants":[..],"dominant":[..]}` whenever
//!   the roster, a participant, the dominant speakers or a remote video changes;
//! - `{"event":"report",..}` every `--report-every`: the received audio's loudness,
//!   its loudest frequency, each `--measure` frequency's SNR, and per remote video
//!   stream the frames decoded, their size, how often the picture changed and how
//!   many carried a readable test pattern;
//! - `{"event":"exit"}` last.
//!
//! Lines on stdin are commands: `hangup` (leave and exit), `hangup-all` (end the call
//! for everyone), `mute`, `unmute`, `hold`, `resume`, `camera-off`, `camera-on`,
//! `remove <id>`. It exits on `hangup`, on stdin EOF, or when the call ends.

use std::collections::BTreeMap;
use std::hash::{Hash as _, Hasher as _};
use std::io::BufRead as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use ringwire_calling::{
    AcceptCallOptions, AudioOptions, Call, CallAgent, CallClient, CallClientOptions, CallEvent,
    Endpoint, HangUpOptions, JoinCallOptions, LocalVideoStream, RemoteVideo, StartCallOptions,
    VideoOptions,
};
use ringwire_media::analysis::{dominant_frequency, goertzel_power, mean_square, tone_snr};
use ringwire_media::audio_io::{AudioIoError, AudioSource, MemorySink, MemoryTap, SourceState};
use ringwire_media::client::CallMediaConfig;
use ringwire_media::codec::{FRAME_SAMPLES, OpusConfig, SAMPLE_RATE};
use ringwire_media::video::{
    FrameRate, TestPatternSource, VideoFormat, VideoFrame, VideoIoError, VideoSink,
};
use ringwire_signaling::{CallState, GroupId, Identifier, VideoKind};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A 20 ms frame louder than this (a sine of amplitude 100, -50 dBFS) counts as sound.
const AUDIBLE: f64 = 100.0 * 100.0 / 2.0;
/// Full scale power of a sine: the 0 dBFS reference for reported levels.
const FULL_SCALE: f64 = 32767.0 * 32767.0 / 2.0;

/// Options of `ringwire peer`.
#[derive(Debug, Args)]
pub(crate) struct PeerArgs {
    /// Signaling URL, e.g. ws://127.0.0.1:8080/v1/signaling.
    #[arg(long)]
    url: String,
    /// An access token (from `ringwire token`).
    #[arg(long, conflicts_with = "dev_name")]
    token: Option<String>,
    /// Get a token for this display name from the server's `POST /dev/token`
    /// (development mode only); the user id is the lower-cased name.
    #[arg(long, value_name = "NAME")]
    dev_name: Option<String>,
    /// Call this identifier (`8:alice`, `8:echo123`).
    #[arg(long, value_name = "ID", conflicts_with_all = ["answer", "join"])]
    call: Option<String>,
    /// Answer the first incoming call.
    #[arg(long, conflicts_with = "join")]
    answer: bool,
    /// Join the group call with this id.
    #[arg(long, value_name = "GROUP")]
    join: Option<String>,
    /// The tone we send, in whole hertz.
    #[arg(long, default_value_t = 700)]
    tone: u32,
    /// The tag drawn into our test-pattern camera (0 sends no camera).
    #[arg(long, default_value_t = 7)]
    camera_tag: u32,
    /// Frequencies (Hz, comma-separated) whose SNR each report gives.
    #[arg(long, value_delimiter = ',')]
    measure: Vec<f64>,
    /// How often to print a report.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    report_every: Duration,
    /// How much of the received audio each report analyses.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    window: Duration,
    /// Give up if no call starts (or none rings, with --answer) within this time.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    guard: Duration,
}

/// Runs the peer on its own runtime until it is told to stop.
pub(crate) fn run(args: &PeerArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(peer(args))
}

/// What the peer does once connected.
enum Mode {
    Call(Identifier),
    Answer,
    Join(GroupId),
}

fn emit(value: &Value) {
    println!("{value}");
}

/// Stdin lines, read on a plain thread (a blocked tokio stdin read would hold up the
/// runtime's shutdown); `None` at EOF.
fn stdin_lines() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line.trim().to_owned()).is_err() {
                break;
            }
        }
    });
    rx
}

async fn peer(args: &PeerArgs) -> Result<()> {
    let mode = match (&args.call, args.answer, &args.join) {
        (Some(target), false, None) => Mode::Call(
            target
                .parse()
                .map_err(|e| anyhow!("bad --call {target:?}: {e}"))?,
        ),
        (None, true, None) => Mode::Answer,
        (None, false, Some(group)) => Mode::Join(
            GroupId::new(group.as_str()).map_err(|e| anyhow!("bad --join {group:?}: {e}"))?,
        ),
        _ => bail!("say one of --call ID, --answer, --join GROUP"),
    };
    let token = match (&args.token, &args.dev_name) {
        (Some(token), _) => token.clone(),
        (None, Some(name)) => dev_token(&args.url, name).await?,
        (None, None) => bail!("say --token or --dev-name"),
    };
    let mut stdin = stdin_lines();
    let client = CallClient::new(CallClientOptions::new(Endpoint::ws(args.url.clone())));
    let agent = client
        .create_call_agent(token)
        .await
        .context("connecting")?;
    let user = agent.user().await.ok().flatten().map(|u| u.to_string());
    emit(&json!({ "event": "ready", "user": user }));

    let (sink, tap) = MemorySink::bounded(args.window.max(Duration::from_millis(100)));
    let mut audio = AudioOptions::new(AmTone::new(args.tone), sink);
    // DTX off: a steady tone is "silence" to a DTX encoder.
    audio.media = CallMediaConfig::with_opus(OpusConfig {
        dtx: false,
        ..OpusConfig::default()
    });
    let seen = Streams::default();
    let renderer_seen = Arc::clone(&seen);
    let audio = audio.with_video(
        VideoOptions::new().with_renderer(move |stream: &RemoteVideo| {
            Box::new(CountingSink::open(&renderer_seen, stream)) as Box<dyn VideoSink>
        }),
    );
    let camera = camera(args.camera_tag)?;

    let call = tokio::select! {
        call = start(&agent, &mode, audio, camera, args.guard) => call,
        () = wait_for_hangup(&mut stdin) => {
            agent.dispose().await;
            emit(&json!({ "event": "exit" }));
            return Ok(());
        }
    };
    let call = match call {
        Ok(call) => call,
        Err(error) => {
            agent.dispose().await;
            return Err(error);
        }
    };
    emit(&json!({ "event": "call", "id": call.id().to_string() }));
    let result = run_call(args, &call, &mut stdin, &tap, &seen).await;
    drop(call);
    agent.dispose().await;
    emit(&json!({ "event": "exit" }));
    result
}

/// Our test-pattern camera, unless `tag` is 0.
fn camera(tag: u32) -> Result<Option<TestPatternSource>> {
    if tag == 0 {
        return Ok(None);
    }
    let format = VideoFormat::new(320, 180, FrameRate::per_second(15)?)?;
    Ok(Some(TestPatternSource::new(format)?.with_sender(tag)))
}

async fn wait_for_hangup(stdin: &mut mpsc::UnboundedReceiver<String>) {
    while let Some(line) = stdin.recv().await {
        if line.starts_with("hangup") {
            return;
        }
    }
}

async fn start(
    agent: &CallAgent,
    mode: &Mode,
    audio: AudioOptions,
    camera: Option<TestPatternSource>,
    guard: Duration,
) -> Result<Call> {
    let video = camera.map(LocalVideoStream::camera);
    match mode {
        Mode::Call(target) => {
            let mut options = StartCallOptions::new().with_audio(audio);
            options.video = video;
            Ok(agent
                .start_call(std::slice::from_ref(target), options)
                .await?)
        }
        Mode::Join(group) => {
            let mut options = JoinCallOptions::new().with_audio(audio);
            options.video = video;
            Ok(agent.join(group, options).await?)
        }
        Mode::Answer => {
            let incoming = tokio::time::timeout(guard, agent.next_incoming_call())
                .await
                .context("no call rang in time")?
                .context("the agent stopped before a call rang")?;
            emit(&json!({
                "event": "incoming",
                "id": incoming.id().to_string(),
                "caller": incoming.caller().to_string(),
                "caller_has_video": incoming.caller_has_video(),
            }));
            let mut options = AcceptCallOptions::new().with_audio(audio);
            options.video = video;
            Ok(incoming.accept(options).await?)
        }
    }
}

async fn run_call(
    args: &PeerArgs,
    call: &Call,
    stdin: &mut mpsc::UnboundedReceiver<String>,
    tap: &MemoryTap,
    seen: &Streams,
) -> Result<()> {
    let mut events = call.events();
    emit(&json!({ "event": "state", "state": call.state(), "end_reason": call.end_reason() }));
    emit(&roster(call, "initial"));
    let started = Instant::now();
    let mut ticker = tokio::time::interval(args.report_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                if observe(call, &event) {
                    break;
                }
            }
            line = stdin.recv() => {
                let Some(line) = line else {
                    call.hang_up(HangUpOptions::new()).await.ok();
                    break;
                };
                if command(call, &line).await {
                    break;
                }
            }
            _ = ticker.tick() => emit(&report(args, call, tap, seen, started)),
        }
    }
    emit(&report(args, call, tap, seen, started));
    Ok(())
}

/// Prints what `event` changed; `true` once the call has ended.
fn observe(call: &Call, event: &CallEvent) -> bool {
    let change = match event {
        CallEvent::StateChanged { state, end_reason } => {
            emit(&json!({ "event": "state", "state": state, "end_reason": end_reason }));
            return *state == CallState::Disconnected;
        }
        CallEvent::RequestFailed { code, message } => {
            emit(&json!({ "event": "request_failed", "code": code, "message": message }));
            return false;
        }
        CallEvent::MuteChanged { muted } => {
            emit(&json!({ "event": "mute", "muted": muted }));
            return false;
        }
        CallEvent::ParticipantAdded(p) => format!("added {}", p.identifier()),
        CallEvent::ParticipantUpdated(p) => format!("updated {}", p.identifier()),
        CallEvent::ParticipantRemoved { identifier, .. } => format!("removed {identifier}"),
        CallEvent::DominantSpeakersChanged(_) => "dominant".to_owned(),
        CallEvent::RemoteVideoAdded { participant, .. } => format!("video added {participant}"),
        CallEvent::RemoteVideoChanged { participant, .. } => {
            format!("video changed {participant}")
        }
        CallEvent::RemoteVideoRemoved { participant, .. } => {
            format!("video removed {participant}")
        }
        _ => "other".to_owned(),
    };
    emit(&roster(call, &change));
    false
}

/// Runs one stdin command; `true` when the peer should stop.
async fn command(call: &Call, line: &str) -> bool {
    let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
    let result = match verb {
        "" => return false,
        "hangup" => {
            call.hang_up(HangUpOptions::new()).await.ok();
            return true;
        }
        "hangup-all" => {
            call.hang_up(HangUpOptions::for_everyone()).await.ok();
            return true;
        }
        "mute" => call.mute().await,
        "unmute" => call.unmute().await,
        "hold" => call.hold().await,
        "resume" => call.resume().await,
        "camera-off" => call.stop_video().await,
        "camera-on" => match camera(7) {
            Ok(Some(source)) => call.start_video(source).await,
            _ => return false,
        },
        "remove" => match rest.trim().parse::<Identifier>() {
            Ok(target) => call.remove_participant(&target).await,
            Err(e) => {
                emit(
                    &json!({ "event": "command_failed", "command": line, "error": e.to_string() }),
                );
                return false;
            }
        },
        _ => {
            emit(
                &json!({ "event": "command_failed", "command": line, "error": "unknown command" }),
            );
            return false;
        }
    };
    match result {
        Ok(()) => emit(&json!({ "event": "command_done", "command": line })),
        Err(e) => {
            emit(&json!({ "event": "command_failed", "command": line, "error": e.to_string() }))
        }
    }
    false
}

fn roster(call: &Call, change: &str) -> Value {
    let participants: Vec<Value> = call
        .remote_participants()
        .iter()
        .map(|p| {
            json!({
                "id": p.identifier().to_string(),
                "state": p.state(),
                "muted": p.is_muted(),
                "speaking": p.is_speaking(),
                "dominant": p.is_dominant_speaker(),
                "video": p.video_streams(),
                "end_reason": p.end_reason(),
            })
        })
        .collect();
    let dominant: Vec<String> = call
        .dominant_speakers()
        .iter()
        .map(ToString::to_string)
        .collect();
    json!({
        "event": "roster",
        "change": change,
        "state": call.state(),
        "muted": call.is_muted(),
        "participants": participants,
        "dominant": dominant,
    })
}

/// The stretch of audio the peak tone SNR is measured over: 10 ms.
const STRETCH: usize = FRAME_SAMPLES / 2;

fn db(ratio: f64) -> f64 {
    (10.0 * ratio.max(1e-12).log10() * 10.0).round() / 10.0
}

fn report(
    args: &PeerArgs,
    call: &Call,
    tap: &MemoryTap,
    seen: &Streams,
    started: Instant,
) -> Value {
    let audio = tap.analyze(args.window, |samples| {
        let frames: Vec<&[i16]> = samples.chunks_exact(FRAME_SAMPLES).collect();
        let powers: Vec<f64> = frames.iter().map(|f| mean_square(f)).collect();
        let total = if powers.is_empty() {
            0.0
        } else {
            powers.iter().sum::<f64>() / powers.len() as f64
        };
        let loudest = powers
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .filter(|(_, p)| **p > AUDIBLE)
            .map(|(i, _)| i);
        let dominant = loudest.and_then(|i| {
            frames
                .get(i)
                .and_then(|f| dominant_frequency(f, SAMPLE_RATE, 100.0..=4000.0, 10.0))
        });
        let tones: Vec<Value> = args
            .measure
            .iter()
            .map(|&hz| {
                // Per 20 ms frame: a beep shorter than the window still stands out.
                let (mut with_tone, mut tone_sum, mut rest_sum) = (0u32, 0.0, 0.0);
                for (frame, &power) in frames.iter().zip(&powers) {
                    let tone = goertzel_power(frame, hz, SAMPLE_RATE).min(power);
                    tone_sum += tone;
                    rest_sum += power - tone;
                    // Floor the rest at -60 dB: a clean synthetic tone leaves almost nothing.
                    if power > AUDIBLE && db(tone / (power - tone).max(power * 1e-6)) >= 10.0 {
                        with_tone += 1;
                    }
                }
                // The peak is taken over 10 ms stretches at 5 ms steps, not over the
                // frames: a 20 ms beep (Chromium's fake microphone) split across two
                // frames leaks into other frequencies at both cut edges, so a frame's
                // SNR depends on where the beep falls, and that stays put for a whole
                // call. Some stretch always lies wholly inside such a beep.
                let mut peak = f64::NEG_INFINITY;
                for stretch in samples.windows(STRETCH).step_by(STRETCH / 2) {
                    if mean_square(stretch) > AUDIBLE {
                        peak = peak.max(tone_snr(stretch, hz, SAMPLE_RATE));
                    }
                }
                json!({
                    "hz": hz,
                    "snr_db": db(tone_sum / rest_sum.max(1e-9)),
                    "peak_snr_db": peak.is_finite().then(|| (peak * 10.0).round() / 10.0),
                    "frames_with_tone": with_tone,
                })
            })
            .collect();
        json!({
            "level_dbfs": db(total / FULL_SCALE),
            "peak_dbfs": db(powers.iter().copied().fold(0.0, f64::max) / FULL_SCALE),
            "audible_frames": powers.iter().filter(|p| **p > AUDIBLE).count(),
            "frames": frames.len(),
            "dominant_hz": dominant,
            "tones": tones,
        })
    });
    let video: Vec<Value> = seen
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .values()
        .map(|s| {
            json!({
                "participant": s.participant,
                "kind": s.kind,
                "slot": s.slot,
                "active": s.active,
                "frames": s.frames,
                "width": s.width,
                "height": s.height,
                "changes": s.changes,
                "pattern_frames": s.pattern_frames,
                "pattern_sender": s.pattern_sender,
            })
        })
        .collect();
    let stats = call.media_stats().map(|s| {
        json!({
            "audio_packets_sent": s.audio.packets_sent,
            "audio_packets_received": s.audio.packets_received,
            "video_frames_sent": s.video.frames_sent,
            "video_frames_received": s.video.frames_received,
            "video_frames_decoded": s.video.frames_decoded,
            "video_decode_errors": s.video.decode_errors,
        })
    });
    json!({
        "event": "report",
        "t_ms": started.elapsed().as_millis() as u64,
        "state": call.state(),
        "audio": audio,
        "video": video,
        "stats": stats,
    })
}

/// A sine at a whole number of hertz whose loudness swings ±30 % three times a second:
/// a steady sine is "stationary noise" to libopus, and the group mixer's encoder (DTX
/// on) would stop sending it.
struct AmTone {
    freq: f64,
    n: u64,
    name: String,
}

impl AmTone {
    fn new(freq: u32) -> Self {
        AmTone {
            freq: f64::from(freq),
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

/// What one remote video stream showed us so far.
#[derive(Debug, Default)]
struct StreamSeen {
    participant: String,
    kind: Option<VideoKind>,
    slot: usize,
    /// Whether a slot still shows it.
    active: bool,
    frames: u64,
    width: u32,
    height: u32,
    /// Pictures that differ from the one before.
    changes: u64,
    last_hash: Option<u64>,
    /// Pictures carrying a readable test pattern, and the last tag read.
    pattern_frames: u64,
    pattern_sender: Option<u32>,
}

/// Every remote stream by `participant/kind/slot`.
type Streams = Arc<Mutex<BTreeMap<String, StreamSeen>>>;

/// Counts a remote stream's decoded pictures.
struct CountingSink {
    streams: Streams,
    key: String,
}

impl CountingSink {
    /// A sink for `stream`, registered (and shown as active) in `streams`.
    fn open(streams: &Streams, stream: &RemoteVideo) -> Self {
        Self::for_stream(streams, &stream.participant, stream.kind, stream.slot)
    }

    fn for_stream(
        streams: &Streams,
        participant: &Identifier,
        kind: VideoKind,
        slot: usize,
    ) -> Self {
        let key = format!("{participant}/{kind:?}/{slot}");
        let mut all = streams.lock().unwrap_or_else(PoisonError::into_inner);
        let seen = all.entry(key.clone()).or_default();
        seen.participant = participant.to_string();
        seen.kind = Some(kind);
        seen.slot = slot;
        seen.active = true;
        CountingSink {
            streams: Arc::clone(streams),
            key,
        }
    }
}

impl VideoSink for CountingSink {
    fn write_frame(&mut self, frame: &VideoFrame) -> Result<(), VideoIoError> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        frame
            .y()
            .iter()
            .step_by(7)
            .for_each(|b| b.hash(&mut hasher));
        let hash = hasher.finish();
        let mut all = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        let seen = all.entry(self.key.clone()).or_default();
        seen.frames += 1;
        seen.width = frame.width();
        seen.height = frame.height();
        if seen.last_hash.is_some_and(|last| last != hash) {
            seen.changes += 1;
        }
        seen.last_hash = Some(hash);
        if TestPatternSource::frame_number(frame).is_some() {
            seen.pattern_frames += 1;
            seen.pattern_sender = TestPatternSource::sender(frame);
        }
        Ok(())
    }

    fn name(&self) -> &str {
        "peer counter"
    }
}

impl Drop for CountingSink {
    fn drop(&mut self) {
        let mut all = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(seen) = all.get_mut(&self.key) {
            seen.active = false;
        }
    }
}

/// A token from the server's development endpoint (`POST /dev/token`), reached at the
/// host and port of the signaling `url` (plain `ws://` only).
async fn dev_token(url: &str, name: &str) -> Result<String> {
    let rest = url
        .strip_prefix("ws://")
        .context("--dev-name needs a ws:// signaling URL")?;
    let host = rest.split('/').next().unwrap_or(rest);
    let body = json!({ "name": name }).to_string();
    let request = format!(
        "POST /dev/token HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .with_context(|| format!("connecting to {host}"))?;
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream
        .take(1 << 16)
        .read_to_end(&mut response)
        .await
        .context("reading /dev/token")?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("malformed HTTP response from /dev/token")?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("/dev/token: {}", head.lines().next().unwrap_or_default());
    }
    let value: Value = serde_json::from_str(body).context("/dev/token's JSON")?;
    value
        .get("token")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .context("/dev/token's answer has no token")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn am_tone_is_loudest_at_its_frequency() {
        let mut tone = AmTone::new(700);
        let mut frame = vec![0i16; FRAME_SAMPLES];
        for _ in 0..3 {
            tone.read_frame(&mut frame).unwrap();
        }
        let hz = dominant_frequency(&frame, SAMPLE_RATE, 100.0..=4000.0, 10.0);
        assert_eq!(hz, Some(700.0));
    }

    #[test]
    fn counting_sink_counts_pictures_changes_and_patterns_until_dropped() {
        let streams = Streams::default();
        let who: Identifier = "8:ada".parse().unwrap();
        let mut sink = CountingSink::for_stream(&streams, &who, VideoKind::ScreenShare, 2);
        let format = VideoFormat::new(320, 180, FrameRate::per_second(15).unwrap()).unwrap();
        let pattern = TestPatternSource::new(format).unwrap().with_sender(9);
        let mut frame = VideoFrame::black(320, 180).unwrap();
        for index in 0..3 {
            pattern.draw(index, &mut frame).unwrap();
            sink.write_frame(&frame).unwrap();
        }
        // The same picture again is not a change.
        sink.write_frame(&frame).unwrap();
        {
            let all = streams.lock().unwrap();
            let seen = all.values().next().unwrap();
            assert_eq!(seen.participant, "8:ada");
            assert_eq!(seen.slot, 2);
            assert!(seen.active);
            assert_eq!((seen.frames, seen.changes), (4, 2));
            assert_eq!((seen.width, seen.height), (320, 180));
            assert_eq!((seen.pattern_frames, seen.pattern_sender), (4, Some(9)));
        }
        drop(sink);
        assert!(!streams.lock().unwrap().values().next().unwrap().active);
    }
}
