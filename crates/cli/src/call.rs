//! `ringwire call`: a terminal client for one call.
//!
//! `ringwire call <target>..`, `ringwire call --group <id>` or `ringwire call --answer`
//! signs in to a server (a token from `--token`, or one made with the local access
//! key for `--user`), places, joins or answers one call with real devices or
//! synthetic ones, and reports what happens in it, one fact per line:
//!
//! ```text
//! connected 8:alice
//! state Connecting
//! state Connected
//! participant 8:bob Connected muted=false
//! media connected
//! first-audio 312 ms
//! speaker 8:bob
//! video 8:bob camera 320x180
//! stats audio_out=250 audio_in=248 concealed=0 jitter_ms=40 video_out=75 video_in=73 level_dbfs=-18.2
//! frames 8:bob decoded=73 tag=2
//! ended code=0 subcode=0 message=
//! ```
//!
//! It reads commands as lines on stdin: `mute`, `unmute`, `hold`, `resume`,
//! `video on|off`, `share on|off`, `add <id>`, `remove <id>`, `hangup`, `hangup all`,
//! `status`, `help` (one-letter forms on a terminal: `m` toggles mute, `h` hold, `v`
//! video, `s` screen sharing, `q` hangs up). Every command answers `ok <command>` or
//! `error <command>: <why>`. The end of stdin leaves the call running until it ends
//! (a script can `sleep` on the pipe); Ctrl-C hangs up. The exit status is 0 when the
//! call was connected and ended, non-zero when it never connected.

use std::collections::BTreeMap;
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use ringwire_calling::{
    AcceptCallOptions, AudioOptions, Call, CallAgent, CallClient, CallClientOptions, CallEvent,
    Endpoint, HangUpOptions, JoinCallOptions, LocalVideoStream, RemoteVideo, StartCallOptions,
    VideoOptions,
};
use ringwire_devices::{DeviceId, DeviceKind, DeviceManager, DeviceManagerConfig, Selection};
use ringwire_media::analysis::mean_square;
use ringwire_media::audio_io::{
    AudioIoError, AudioSink, AudioSource, NullSink, SilenceSource, WavSink, WavSource,
};
use ringwire_media::client::CallMediaConfig;
use ringwire_media::codec::OpusConfig;
use ringwire_media::video::{
    FrameRate, TestPatternSource, VideoFormat, VideoFrame, VideoIoError, VideoSink, VideoSource,
    Y4mSource,
};
use ringwire_server::{AccessKey, ServerConfig};
use ringwire_signaling::{CallState, GroupId, Identifier, Scopes};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::demo::AmTone;

/// Played audio louder than this (a sine of amplitude 100, -50 dBFS) is "audio".
const AUDIBLE: f64 = 100.0 * 100.0 / 2.0;
/// How long local tokens last.
const TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// Options of `ringwire call`.
#[derive(Debug, Args)]
pub(crate) struct CallArgs {
    /// Who to call: `8:bob` (or `bob`), `4:+15551234567` (or `+15551234567`),
    /// `8:echo123` (the echo test). Several make a group call.
    #[arg(value_name = "TARGET", required_unless_present_any = ["group", "answer"])]
    targets: Vec<String>,
    /// Join the group call with this id instead.
    #[arg(long, value_name = "ID", conflicts_with_all = ["targets", "answer"])]
    group: Option<String>,
    /// Wait for a call to this user and answer it.
    #[arg(long, conflicts_with = "targets")]
    answer: bool,
    /// The server's signaling URL; by default the one the configuration's
    /// `http_addr` makes (`ws://127.0.0.1:8080/v1/signaling`).
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// An access token (`ringwire token --user NAME` on the server's machine).
    #[arg(long, value_name = "TOKEN", conflicts_with = "user")]
    token: Option<String>,
    /// Make a token for this user with the access key of the configuration's data
    /// directory (on the server's machine).
    #[arg(long, value_name = "ID", required_unless_present = "token")]
    user: Option<String>,
    /// Microphone: `default`, a device id from `ringwire devices`, `tone:HZ`,
    /// `wav:PATH` (looping) or `silence`.
    #[arg(long, value_name = "MIC", default_value = "default")]
    mic: String,
    /// Speaker: `default`, a device id, `null` or `wav:PATH` (records what plays).
    #[arg(long, value_name = "SPEAKER", default_value = "default")]
    speaker: String,
    /// Camera for `video on`: `default`, a device id, `pattern[:TAG]` (test
    /// pattern), `y4m:PATH`, or `none` (no video at all).
    #[arg(long, value_name = "CAMERA", default_value = "default")]
    camera: String,
    /// Start with the camera on.
    #[arg(long)]
    video: bool,
    /// Screen for `share on`: `default` (the first screen), a screen or window id,
    /// or `pattern[:TAG]`.
    #[arg(long, value_name = "SCREEN", default_value = "default")]
    screen: String,
    /// Start muted.
    #[arg(long)]
    muted: bool,
    /// How often to print media statistics (0 for never).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    stats_every: Duration,
    /// One fact per line even on a terminal (the default when stdin or stdout is not
    /// one).
    #[arg(long)]
    plain: bool,
}

/// Runs `ringwire call` on its own runtime.
pub(crate) fn run(config: Option<&Path>, args: &CallArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(call(config, args))
}

/// What the microphone is.
#[derive(Debug, Clone, PartialEq)]
enum Mic {
    Device(Selection),
    Tone(f64),
    Wav(PathBuf),
    Silence,
}

/// What the speaker is.
#[derive(Debug, Clone, PartialEq)]
enum Speaker {
    Device(Selection),
    Null,
    Wav(PathBuf),
}

/// Where video comes from.
#[derive(Debug, Clone, PartialEq)]
enum Camera {
    None,
    Device(Selection),
    Pattern(u32),
    Y4m(PathBuf),
}

fn selection(raw: &str) -> Selection {
    if raw == "default" {
        Selection::Default
    } else {
        Selection::Device(DeviceId::new(raw))
    }
}

fn parse_mic(raw: &str) -> Result<Mic> {
    Ok(match raw.split_once(':') {
        Some(("tone", hz)) => {
            let hz: f64 = hz
                .parse()
                .map_err(|_| anyhow!("--mic tone:HZ needs a frequency, not {hz:?}"))?;
            if !(20.0..=20_000.0).contains(&hz) {
                bail!("--mic tone:{hz}: the frequency must be 20..=20000 Hz");
            }
            Mic::Tone(hz)
        }
        Some(("wav", path)) => Mic::Wav(path.into()),
        _ if raw == "silence" => Mic::Silence,
        _ => Mic::Device(selection(raw)),
    })
}

fn parse_speaker(raw: &str) -> Speaker {
    match raw.split_once(':') {
        Some(("wav", path)) => Speaker::Wav(path.into()),
        _ if raw == "null" => Speaker::Null,
        _ => Speaker::Device(selection(raw)),
    }
}

fn parse_camera(raw: &str) -> Result<Camera> {
    Ok(match raw.split_once(':') {
        Some(("pattern", tag)) => Camera::Pattern(
            tag.parse()
                .map_err(|_| anyhow!("pattern:TAG needs a whole number, not {tag:?}"))?,
        ),
        Some(("y4m", path)) => Camera::Y4m(path.into()),
        _ if raw == "pattern" => Camera::Pattern(0),
        _ if raw == "none" => Camera::None,
        _ => Camera::Device(selection(raw)),
    })
}

/// A call target as typed: `bob` is `8:bob`, `+1555..` is `4:+1555..`.
fn parse_target(raw: &str) -> Result<Identifier> {
    let full = if raw.contains(':') {
        raw.to_owned()
    } else if raw.starts_with('+') {
        format!("4:{raw}")
    } else {
        format!("8:{raw}")
    };
    full.parse::<Identifier>()
        .map_err(|e| anyhow!("bad target {raw:?}: {e}"))
}

/// The devices and synthetic media the call uses.
struct Media {
    mic: Mic,
    speaker: Speaker,
    camera: Camera,
    screen: Camera,
    /// Opened on first use of a real device.
    devices: Option<DeviceManager>,
}

impl Media {
    fn devices(&mut self) -> Result<&DeviceManager> {
        if self.devices.is_none() {
            self.devices = Some(
                DeviceManager::new(DeviceManagerConfig::default())
                    .context("starting the device manager")?,
            );
        }
        self.devices
            .as_ref()
            .ok_or_else(|| anyhow!("device manager missing"))
    }

    fn source(&mut self) -> Result<Box<dyn AudioSource>> {
        Ok(match self.mic.clone() {
            Mic::Tone(hz) => Box::new(AmTone::new(hz)),
            Mic::Wav(path) => Box::new(
                WavSource::open(&path)
                    .with_context(|| format!("opening --mic wav:{}", path.display()))?
                    .looping(true),
            ),
            Mic::Silence => Box::new(SilenceSource),
            Mic::Device(sel) => Box::new(
                self.devices()?
                    .open_microphone(&sel)
                    .with_context(|| format!("opening the microphone {}", show(&sel)))?,
            ),
        })
    }

    fn sink(&mut self) -> Result<Box<dyn AudioSink>> {
        Ok(match self.speaker.clone() {
            Speaker::Null => Box::new(NullSink::default()),
            Speaker::Wav(path) => Box::new(
                WavSink::create(&path)
                    .with_context(|| format!("creating --speaker wav:{}", path.display()))?,
            ),
            Speaker::Device(sel) => Box::new(
                self.devices()?
                    .open_speaker(&sel)
                    .with_context(|| format!("opening the speaker {}", show(&sel)))?,
            ),
        })
    }

    /// The camera's pictures, `None` with `--camera none`.
    fn camera(&mut self) -> Result<Option<Box<dyn VideoSource>>> {
        let format = VideoFormat::new(640, 360, FrameRate::per_second(15)?)?;
        Ok(Some(match self.camera.clone() {
            Camera::None => return Ok(None),
            Camera::Pattern(tag) => Box::new(TestPatternSource::new(format)?.with_sender(tag)),
            Camera::Y4m(path) => Box::new(
                Y4mSource::open(&path)
                    .with_context(|| format!("opening --camera y4m:{}", path.display()))?
                    .looping(true),
            ),
            Camera::Device(sel) => Box::new(
                self.devices()?
                    .open_camera(&sel, format)
                    .with_context(|| format!("opening the camera {}", show(&sel)))?,
            ),
        }))
    }

    /// The screen to share.
    fn screen(&mut self) -> Result<Box<dyn VideoSource>> {
        let rate = FrameRate::per_second(10)?;
        Ok(match self.screen.clone() {
            Camera::None => bail!("screen sharing is off (--screen none)"),
            Camera::Pattern(tag) => Box::new(
                TestPatternSource::new(VideoFormat::new(1280, 720, rate)?)?.with_sender(tag),
            ),
            Camera::Y4m(path) => Box::new(
                Y4mSource::open(&path)
                    .with_context(|| format!("opening --screen y4m:{}", path.display()))?
                    .looping(true),
            ),
            Camera::Device(sel) => {
                let devices = self.devices()?;
                let id = match sel {
                    Selection::Device(id) => id,
                    Selection::Default => devices
                        .list(DeviceKind::Screen)
                        .context("listing screens")?
                        .into_iter()
                        .find(|d| !d.synthetic)
                        .map(|d| d.id)
                        .ok_or_else(|| anyhow!("no screen to share"))?,
                };
                Box::new(
                    devices
                        .open_screen(&id, rate)
                        .with_context(|| format!("opening the screen {id}"))?,
                )
            }
        })
    }
}

fn show(selection: &Selection) -> String {
    match selection {
        Selection::Default => "default".to_owned(),
        Selection::Device(id) => id.to_string(),
    }
}

/// What one remote video stream showed us.
#[derive(Debug, Default, Clone, Copy)]
struct FramesSeen {
    decoded: u64,
    /// The test pattern's sender tag on the last picture, when it had one.
    tag: Option<u32>,
}

type Seen = Arc<Mutex<BTreeMap<String, FramesSeen>>>;

/// Counts a remote stream's pictures and reads their test-pattern tag.
struct CountingSink {
    seen: Seen,
    key: String,
}

impl VideoSink for CountingSink {
    fn write_frame(&mut self, frame: &VideoFrame) -> Result<(), VideoIoError> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = seen.entry(self.key.clone()).or_default();
        entry.decoded += 1;
        entry.tag = TestPatternSource::sender(frame);
        Ok(())
    }

    fn name(&self) -> &str {
        "ringwire call renderer"
    }
}

/// How loud what we play is, and when it first became audible.
#[derive(Debug, Default)]
struct Meter {
    /// Mean square of the last 20 ms played.
    level: f64,
}

/// Passes played audio on to the speaker, measuring it on the way.
struct MeteredSink {
    inner: Box<dyn AudioSink>,
    meter: Arc<Mutex<Meter>>,
    audible: watch::Sender<bool>,
}

impl AudioSink for MeteredSink {
    fn write_frame(&mut self, frame: &[i16]) -> Result<(), AudioIoError> {
        let level = mean_square(frame);
        self.meter
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .level = level;
        if level > AUDIBLE && !*self.audible.borrow() {
            self.audible.send_replace(true);
        }
        self.inner.write_frame(frame)
    }

    fn finish(&mut self) -> Result<(), AudioIoError> {
        self.inner.finish()
    }

    fn name(&self) -> &str {
        self.inner.name()
    }
}

/// The call's audio options, a meter on what plays and the renderer's counters.
fn audio_options(
    media: &mut Media,
    seen: &Seen,
) -> Result<(AudioOptions, Arc<Mutex<Meter>>, watch::Receiver<bool>)> {
    let meter = Arc::new(Mutex::new(Meter::default()));
    let (audible, audible_rx) = watch::channel(false);
    let sink = MeteredSink {
        inner: media.sink()?,
        meter: Arc::clone(&meter),
        audible,
    };
    let mut audio = AudioOptions::new(media.source()?, sink);
    if matches!(media.mic, Mic::Tone(_)) {
        // A steady tone is "silence" to an encoder with DTX on.
        audio.media = CallMediaConfig::with_opus(OpusConfig {
            dtx: false,
            ..OpusConfig::default()
        });
    }
    if media.camera != Camera::None || media.screen != Camera::None {
        let seen = Arc::clone(seen);
        audio = audio.with_video(VideoOptions::new().with_renderer(
            move |stream: &RemoteVideo| -> Box<dyn VideoSink> {
                Box::new(CountingSink {
                    seen: Arc::clone(&seen),
                    key: format!("{} {}", stream.participant, kind_name(stream.kind)),
                })
            },
        ));
    }
    Ok((audio, meter, audible_rx))
}

fn kind_name(kind: ringwire_signaling::VideoKind) -> &'static str {
    match kind {
        ringwire_signaling::VideoKind::Camera => "camera",
        ringwire_signaling::VideoKind::ScreenShare => "screen",
    }
}

/// The token to present: `--token`, or one made here for `--user`.
fn token(config: &ServerConfig, args: &CallArgs) -> Result<String> {
    if let Some(token) = &args.token {
        return Ok(token.clone());
    }
    let user = args
        .user
        .as_deref()
        .ok_or_else(|| anyhow!("give --token, or --user to make one here"))?;
    let user = match parse_target(user)? {
        Identifier::User(user) => user,
        other => bail!("--user {other} is not a user; tokens are for `8:` users"),
    };
    let key = AccessKey::load(&config.data_dir).with_context(|| {
        format!(
            "no --token, and no access key to make one in {} (run this on the server's \
             machine, or pass --token from `ringwire token --user {user}` there)",
            config.data_dir.display()
        )
    })?;
    let scopes: Scopes = "voip,pstn"
        .parse()
        .map_err(|e| anyhow!("scopes voip,pstn: {e}"))?;
    Ok(key
        .token_key()
        .issue(&user, scopes, SystemTime::now(), TOKEN_TTL))
}

/// The signaling URL: `--server`, or the configuration's.
fn server_url(config: &ServerConfig, args: &CallArgs) -> String {
    if let Some(url) = &args.server {
        return url.clone();
    }
    let mut addr = config.http_addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let scheme = if config.tls.is_some() { "wss" } else { "ws" };
    format!("{scheme}://{addr}/v1/signaling")
}

/// Reads stdin lines on a thread of its own (stdin has no async read here).
fn read_stdin() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Prints facts, one per line, flushing each (stdout is line-buffered).
struct Out {
    tty: bool,
}

impl Out {
    /// One line; a reader that went away (`| head`) is not an error for the call.
    fn line(&self, text: impl AsRef<str>) {
        let _ = writeln!(std::io::stdout().lock(), "{}", text.as_ref());
    }

    /// A line only people at a terminal want.
    fn hint(&self, text: impl AsRef<str>) {
        if self.tty {
            self.line(format!("# {}", text.as_ref()));
        }
    }
}

const HELP: &str = "commands: mute, unmute, hold, resume, video on|off, share on|off, \
                    add <id>, remove <id>, hangup, hangup all, status, help \
                    (m: toggle mute, h: toggle hold, v: toggle video, s: toggle share, q: hang up)";

async fn call(config_path: Option<&Path>, args: &CallArgs) -> Result<()> {
    let out = Out {
        tty: !args.plain && std::io::stdin().is_terminal() && std::io::stdout().is_terminal(),
    };
    let mut media = Media {
        mic: parse_mic(&args.mic)?,
        speaker: parse_speaker(&args.speaker),
        camera: parse_camera(&args.camera)?,
        screen: parse_camera(&args.screen)?,
        devices: None,
    };
    if args.video && media.camera == Camera::None {
        bail!("--video needs a camera (not --camera none)");
    }
    let targets = args
        .targets
        .iter()
        .map(|t| parse_target(t))
        .collect::<Result<Vec<_>>>()?;
    let group = args
        .group
        .as_deref()
        .map(GroupId::new)
        .transpose()
        .map_err(|e| anyhow!("bad group id: {e}"))?;
    let config = ServerConfig::load(config_path)?;
    let token = token(&config, args)?;
    let url = server_url(&config, args);
    let client = CallClient::new(CallClientOptions::new(Endpoint::ws(url.clone())));
    let agent = client
        .create_call_agent(token)
        .await
        .with_context(|| format!("signing in at {url}"))?;
    let me = agent.user().await.ok().flatten();
    out.line(format!(
        "connected {}",
        me.as_ref().map_or("?".to_owned(), ToString::to_string)
    ));
    out.hint(HELP);
    let result = run_call(&agent, &mut media, args, targets, group, &out).await;
    agent.dispose().await;
    result
}

/// Places, joins or answers the call, then runs it until it ends.
async fn run_call(
    agent: &CallAgent,
    media: &mut Media,
    args: &CallArgs,
    targets: Vec<Identifier>,
    group: Option<GroupId>,
    out: &Out,
) -> Result<()> {
    let seen = Seen::default();
    let mut stdin = read_stdin();
    let (call, dialed, meter, audible) = if args.answer {
        out.line("waiting for a call");
        let incoming = tokio::select! {
            incoming = agent.next_incoming_call() => incoming.ok_or_else(|| anyhow!("disconnected while waiting for a call"))?,
            _ = tokio::signal::ctrl_c() => bail!("interrupted while waiting for a call"),
        };
        out.line(format!(
            "incoming {} video={}",
            incoming.caller(),
            incoming.caller_has_video()
        ));
        let (audio, meter, audible) = audio_options(media, &seen)?;
        let mut options = AcceptCallOptions::new().muted(args.muted).with_audio(audio);
        if args.video {
            options = options.with_video(local_camera(media)?);
        }
        let answered = Instant::now();
        let call = incoming.accept(options).await.context("answering")?;
        (call, answered, meter, audible)
    } else if let Some(group) = group {
        let (audio, meter, audible) = audio_options(media, &seen)?;
        let mut options = JoinCallOptions::new().muted(args.muted).with_audio(audio);
        if args.video {
            options = options.with_video(local_camera(media)?);
        }
        let dialed = Instant::now();
        let call = agent
            .join(&group, options)
            .await
            .with_context(|| format!("joining group {group}"))?;
        (call, dialed, meter, audible)
    } else {
        let (audio, meter, audible) = audio_options(media, &seen)?;
        let mut options = StartCallOptions::new().muted(args.muted).with_audio(audio);
        if args.video {
            options = options.with_video(local_camera(media)?);
        }
        let dialed = Instant::now();
        let call = agent
            .start_call(&targets, options)
            .await
            .context("placing the call")?;
        (call, dialed, meter, audible)
    };
    let mut session = Session {
        call,
        out,
        seen,
        meter,
        printed: BTreeMap::new(),
        state: None,
        was_connected: false,
        speaker: None,
    };
    session.run(media, args, dialed, audible, &mut stdin).await
}

fn local_camera(media: &mut Media) -> Result<LocalVideoStream> {
    let source = media
        .camera()?
        .ok_or_else(|| anyhow!("no camera (--camera none)"))?;
    Ok(LocalVideoStream::camera(source))
}

/// A running call and what has been printed about it.
struct Session<'a> {
    call: Call,
    out: &'a Out,
    seen: Seen,
    meter: Arc<Mutex<Meter>>,
    /// Per participant, the (state, muted) line last printed.
    printed: BTreeMap<Identifier, String>,
    state: Option<CallState>,
    was_connected: bool,
    speaker: Option<Identifier>,
}

impl Session<'_> {
    async fn run(
        &mut self,
        media: &mut Media,
        args: &CallArgs,
        dialed: Instant,
        mut audible: watch::Receiver<bool>,
        stdin: &mut mpsc::UnboundedReceiver<String>,
    ) -> Result<()> {
        let mut events = self.call.events();
        let call = self.call.clone();
        self.show_state();
        for p in self.call.remote_participants() {
            self.show_participant(&p);
        }
        let mut stats = tokio::time::interval(if args.stats_every.is_zero() {
            Duration::from_secs(3600 * 24 * 365)
        } else {
            args.stats_every
        });
        stats.tick().await;
        let mut stdin_open = true;
        let mut heard = false;
        let mut media_up = false;
        let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
        while self.state != Some(CallState::Disconnected) {
            tokio::select! {
                event = events.recv() => match event {
                    Some(event) => self.show_event(&event),
                    None => break,
                },
                line = stdin.recv(), if stdin_open => match line {
                    Some(line) => self.command(media, line.trim()).await,
                    None => stdin_open = false,
                },
                result = call.wait_media_connected(), if !media_up => {
                    media_up = true;
                    match result {
                        Ok(()) => self.out.line("media connected"),
                        Err(e) => self.out.line(format!("media failed: {e}")),
                    }
                },
                changed = audible.changed(), if !heard => {
                    heard = true;
                    if changed.is_ok() {
                        self.out.line(format!("first-audio {} ms", dialed.elapsed().as_millis()));
                    }
                },
                _ = stats.tick(), if !args.stats_every.is_zero() => self.show_stats(),
                _ = &mut ctrl_c => {
                    self.out.line("interrupted: hanging up");
                    if let Err(e) = self.call.hang_up(HangUpOptions::new()).await {
                        self.out.line(format!("error hangup: {e}"));
                        break;
                    }
                }
            }
            // Events can be missed by a slow reader; the snapshot is always right.
            self.show_state();
        }
        self.show_stats();
        let reason = self.call.end_reason();
        self.out.line(match &reason {
            Some(r) => format!(
                "ended code={} subcode={} message={}",
                r.code, r.subcode, r.message
            ),
            None => "ended".to_owned(),
        });
        if !self.was_connected {
            bail!(
                "the call ended before it connected: {}",
                reason.map_or("no reason given".to_owned(), |r| format!(
                    "{} {}",
                    r.code, r.message
                ))
            );
        }
        Ok(())
    }

    fn show_state(&mut self) {
        let state = self.call.state();
        if self.state != Some(state) {
            self.state = Some(state);
            self.was_connected |= state == CallState::Connected;
            self.out.line(format!("state {state:?}"));
        }
    }

    fn show_participant(&mut self, p: &ringwire_calling::RemoteParticipant) {
        let line = format!(
            "participant {} {:?} muted={}",
            p.identifier(),
            p.state(),
            p.is_muted()
        );
        if self.printed.get(p.identifier()) != Some(&line) {
            self.printed.insert(p.identifier().clone(), line.clone());
            self.out.line(line);
        }
    }

    fn show_event(&mut self, event: &CallEvent) {
        match event {
            CallEvent::StateChanged { .. } => self.show_state(),
            CallEvent::ParticipantAdded(p) | CallEvent::ParticipantUpdated(p) => {
                self.show_participant(p);
            }
            CallEvent::ParticipantRemoved { identifier, reason } => {
                self.printed.remove(identifier);
                self.out.line(format!(
                    "left {identifier} code={}",
                    reason
                        .as_ref()
                        .map_or("?".to_owned(), |r| r.code.to_string())
                ));
            }
            CallEvent::MuteChanged { muted } => self.out.line(format!("muted {muted}")),
            CallEvent::DominantSpeakersChanged(speakers) => {
                let first = speakers.first().cloned();
                if first != self.speaker {
                    self.out.line(format!(
                        "speaker {}",
                        first
                            .as_ref()
                            .map_or("none".to_owned(), ToString::to_string)
                    ));
                    self.speaker = first;
                }
            }
            CallEvent::RemoteVideoAdded {
                participant,
                stream,
            }
            | CallEvent::RemoteVideoChanged {
                participant,
                stream,
            } => self.out.line(format!(
                "video {participant} {} {}",
                kind_name(stream.kind),
                stream.size.map_or("?".to_owned(), |s| s.to_string())
            )),
            CallEvent::RemoteVideoRemoved { participant, kind } => self
                .out
                .line(format!("video-ended {participant} {}", kind_name(*kind))),
            CallEvent::RequestFailed { code, message } => {
                self.out.line(format!("refused {code:?}: {message}"));
            }
            _ => {}
        }
    }

    fn show_stats(&self) {
        let level = self
            .meter
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .level;
        let dbfs = 10.0 * (level.max(1e-3) / (32768.0 * 32768.0)).log10();
        if let Some(stats) = self.call.media_stats() {
            let a = stats.audio;
            self.out.line(format!(
                "stats audio_out={} audio_in={} concealed={} jitter_ms={} video_out={} video_in={} video_decoded={} level_dbfs={dbfs:.1}",
                a.packets_sent,
                a.packets_received,
                a.jitter.concealed,
                a.jitter.current_delay.as_millis(),
                stats.video.frames_sent,
                stats.video.frames_received,
                stats.video.frames_decoded,
            ));
        }
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        for (who, frames) in seen.iter() {
            self.out.line(format!(
                "frames {who} decoded={} tag={}",
                frames.decoded,
                frames.tag.map_or("-".to_owned(), |t| t.to_string())
            ));
        }
    }

    fn show_status(&self) {
        let call = &self.call;
        self.out.line(format!(
            "status {:?} muted={} hold={} video={}",
            call.state(),
            call.is_muted(),
            call.is_on_hold(),
            call.local_video()
                .iter()
                .map(|v| kind_name(v.kind))
                .collect::<Vec<_>>()
                .join(",")
        ));
        for p in call.remote_participants() {
            let video: Vec<String> = p
                .video_streams()
                .iter()
                .map(|s| {
                    format!(
                        "{}:{}",
                        kind_name(s.kind),
                        s.size.map_or("?".to_owned(), |z| z.to_string())
                    )
                })
                .collect();
            self.out.line(format!(
                "roster {} {:?} muted={} speaking={} video={}",
                p.identifier(),
                p.state(),
                p.is_muted(),
                p.is_speaking(),
                if video.is_empty() {
                    "-".to_owned()
                } else {
                    video.join(",")
                }
            ));
        }
        self.out.line(format!(
            "speakers {}",
            call.dominant_speakers()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ));
        self.show_stats();
    }

    /// Runs one command line; prints `ok ..` or `error ..`.
    async fn command(&mut self, media: &mut Media, line: &str) {
        if line.is_empty() {
            return;
        }
        match self.execute(media, line).await {
            Ok(Done::Quiet) => {}
            Ok(Done::Ok) => self.out.line(format!("ok {line}")),
            Err(e) => self.out.line(format!("error {line}: {e:#}")),
        }
    }

    async fn execute(&mut self, media: &mut Media, line: &str) -> Result<Done> {
        let call = &self.call;
        let (verb, rest) = line
            .split_once(char::is_whitespace)
            .map_or((line, ""), |(v, r)| (v, r.trim()));
        let sharing = || {
            call.local_video()
                .iter()
                .any(|v| v.kind == ringwire_signaling::VideoKind::ScreenShare)
        };
        let camera_on = || {
            call.local_video()
                .iter()
                .any(|v| v.kind == ringwire_signaling::VideoKind::Camera)
        };
        match (verb, rest) {
            ("mute", "") => call.mute().await?,
            ("unmute", "") => call.unmute().await?,
            ("m", "") if call.is_muted() => call.unmute().await?,
            ("m", "") => call.mute().await?,
            ("hold", "") => call.hold().await?,
            ("resume", "") => call.resume().await?,
            ("h", "") if call.is_on_hold() => call.resume().await?,
            ("h", "") => call.hold().await?,
            ("video", "on") => self.video_on(media).await?,
            ("video", "off") => call.stop_video().await?,
            ("v", "") if camera_on() => call.stop_video().await?,
            ("v", "") => self.video_on(media).await?,
            ("share", "on") => self.share_on(media).await?,
            ("share", "off") => call.stop_screen_sharing().await?,
            ("s", "") if sharing() => call.stop_screen_sharing().await?,
            ("s", "") => self.share_on(media).await?,
            ("add" | "a", who) if !who.is_empty() => {
                call.add_participant(&parse_target(who)?).await?;
            }
            ("remove" | "r", who) if !who.is_empty() => {
                call.remove_participant(&parse_target(who)?).await?;
            }
            ("hangup" | "q", "") => call.hang_up(HangUpOptions::new()).await?,
            ("hangup", "all") => call.hang_up(HangUpOptions::for_everyone()).await?,
            ("status", "") => {
                self.show_status();
                return Ok(Done::Quiet);
            }
            ("help" | "?", "") => {
                self.out.line(HELP);
                return Ok(Done::Quiet);
            }
            _ => bail!("unknown command (try `help`)"),
        }
        Ok(Done::Ok)
    }

    async fn video_on(&self, media: &mut Media) -> Result<()> {
        let source = media
            .camera()?
            .ok_or_else(|| anyhow!("no camera (--camera none)"))?;
        self.call.stop_screen_sharing().await?;
        self.call.start_video(source).await?;
        Ok(())
    }

    async fn share_on(&self, media: &mut Media) -> Result<()> {
        if media.camera == Camera::None && media.screen == Camera::None {
            bail!("video is off for this call (--camera none --screen none)");
        }
        let source = media.screen()?;
        self.call.stop_video().await?;
        self.call.start_screen_sharing(source).await?;
        Ok(())
    }
}

/// How a command went when it did not fail.
enum Done {
    /// Print `ok <command>`.
    Ok,
    /// It printed its own answer.
    Quiet,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_take_short_forms() {
        assert_eq!(parse_target("bob").unwrap().to_string(), "8:bob");
        assert_eq!(parse_target("8:echo123").unwrap(), Identifier::EchoService);
        assert_eq!(
            parse_target("+15551234567").unwrap().to_string(),
            "4:+15551234567"
        );
        assert!(parse_target("8:").is_err());
    }

    #[test]
    fn media_choices_parse() {
        assert_eq!(parse_mic("tone:440").unwrap(), Mic::Tone(440.0));
        assert!(parse_mic("tone:abc").is_err());
        assert!(parse_mic("tone:5").is_err());
        assert_eq!(parse_mic("wav:/a.wav").unwrap(), Mic::Wav("/a.wav".into()));
        assert_eq!(
            parse_mic("default").unwrap(),
            Mic::Device(Selection::Default)
        );
        assert_eq!(
            parse_mic("pulseaudio:ring_a.monitor").unwrap(),
            Mic::Device(Selection::Device(DeviceId::new(
                "pulseaudio:ring_a.monitor"
            )))
        );
        assert_eq!(parse_speaker("null"), Speaker::Null);
        assert_eq!(parse_speaker("wav:x.wav"), Speaker::Wav("x.wav".into()));
        assert_eq!(parse_camera("pattern").unwrap(), Camera::Pattern(0));
        assert_eq!(parse_camera("pattern:7").unwrap(), Camera::Pattern(7));
        assert_eq!(parse_camera("none").unwrap(), Camera::None);
        assert!(parse_camera("pattern:x").is_err());
    }
}
