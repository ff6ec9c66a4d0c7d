//! The PSTN gateway end to end with a real SIP phone: baresip (Debian's `baresip-core`)
//! is the outbound trunk's far end. It auto-answers any INVITE to `+15551230000`,
//! plays an AM tone from a WAV file and records what it receives with `sndfile`
//! (`rec/dump-…-dec.wav`, 8 kHz), which the test reads while the call runs.
//!
//! - A group call of alice and bob dials the phone: all three hear each other (and
//!   not themselves), checked by Goertzel power at each talker's frequency.
//! - Alice calls the phone 1:1 and adds bob: the call is promoted to a group call and
//!   nobody is dropped: baresip's recording goes on and carries both voices after
//!   bob joined, and both clients hear the phone.
//!
//! Skipped (with a message) when `baresip` is not installed (`apt install
//! baresip-core`), except under CI (`CI` set), where `cargo xtask setup` installs it.
//! Timeouts only turn a hang into a failure; nothing asserts on how long anything takes.

#![allow(clippy::unwrap_used)] // Helpers outside #[test] fns unwrap too.

#[path = "common/phone.rs"]
mod phone;

use phone::{free_udp_port, until_state};

use std::f64::consts::TAU;
use std::net::{SocketAddr, UdpSocket as StdUdp};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ringwire_calling::{
    AudioHandle, AudioOptions, ConnectOptions, Endpoint, EventStream, SignalingClient,
};
use ringwire_media::analysis::{goertzel_power, mean_square};
use ringwire_media::audio_io::{AudioIoError, AudioSource, MemorySink, MemoryTap, SourceState};
use ringwire_media::client::CallMediaConfig;
use ringwire_media::codec::OpusConfig;
use ringwire_pstn::config::PstnConfig;
use ringwire_server::{RunningServer, Server, ServerConfig};
use ringwire_signaling::{
    CallId, CallState, Event, Identifier, JoinOptions, ParticipantState, Scope, Scopes, UserId,
};

/// Longest any single expected thing may take before the test fails (two loaded cores).
const GUARD: Duration = Duration::from_secs(30);
/// The number dialled; baresip's account has it as its user, so it takes the call.
const NUMBER: &str = "+15551230000";
/// The talkers' tones: below G.711's band edge, whole cycles in 20 ms, none a
/// harmonic or third-order product of the others.
const ALICE_HZ: f64 = 500.0;
const BOB_HZ: f64 = 700.0;
const PHONE_HZ: f64 = 600.0;
/// baresip quits by itself after this many seconds, should the test die before its
/// `Drop` kills it; its WAV lasts longer (at the file's end it would hang up).
const BARESIP_LIFETIME_S: u32 = 300;

/// A baresip process with its own config folder; killed when dropped.
struct Baresip {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether baresip is installed; under CI its absence fails the test.
fn have_baresip() -> bool {
    let found = Command::new("baresip")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found || std::env::var_os("CI").is_none(),
        "baresip is missing; run `cargo xtask setup`"
    );
    if !found {
        eprintln!("baresip not installed; skipping");
    }
    found
}

/// Debian's baresip module folder (where `g711.so` is).
fn module_path() -> String {
    let out = Command::new("dpkg")
        .args(["-L", "baresip-core"])
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    let g711 = list
        .lines()
        .find(|l| l.ends_with("/g711.so"))
        .unwrap_or("/usr/lib/baresip/modules/g711.so");
    Path::new(g711).parent().unwrap().display().to_string()
}

/// The first of 20 free UDP ports (for baresip's `rtp_ports`), below the ephemeral
/// range and away from the gateway's range; baresip retries a taken port itself.
/// Tests of one process start at different blocks, processes at different ones too.
fn free_port_block() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let mine = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let start = (std::process::id() % 300) as u16 + mine * 7;
    (0..300u16)
        .map(|i| 22_000 + (start + i) % 300 * 20)
        .find(|&first| (first..first + 20).all(|p| StdUdp::bind(("127.0.0.1", p)).is_ok()))
        .unwrap()
}

/// A mono 16-bit WAV of `samples` at `rate`.
fn wav(samples: &[i16], rate: u32) -> Vec<u8> {
    let data = samples.len() as u32 * 2;
    let mut out = Vec::with_capacity(44 + data as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// The sample rate and samples of a mono 16-bit WAV. While baresip still records,
/// the sizes in the header are not final: everything after the `data` header counts.
fn wav_samples(bytes: &[u8]) -> (u32, Vec<i16>) {
    let (mut rate, mut at) = (0, 12);
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        at += 8;
        if id == b"fmt " && at + 8 <= bytes.len() {
            rate = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap());
        }
        if id == b"data" {
            let end = match size {
                0 => bytes.len(),
                n => (at + n).min(bytes.len()),
            };
            let pcm = bytes[at..end].chunks_exact(2);
            return (
                rate,
                pcm.map(|b| i16::from_le_bytes([b[0], b[1]])).collect(),
            );
        }
        at += size + size % 2;
    }
    (rate, Vec::new())
}

impl Baresip {
    /// baresip answering calls to [`NUMBER`] on a free loopback port, playing
    /// [`PHONE_HZ`]; `None` when it is not installed.
    async fn start() -> Option<Baresip> {
        if !have_baresip() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let rate = 8000;
        let voice = (0..u64::from(rate) * u64::from(BARESIP_LIFETIME_S + 30))
            .map(|n| am_sample(PHONE_HZ, rate, n, 8192.0))
            .collect::<Vec<_>>();
        std::fs::write(dir.path().join("voice.wav"), wav(&voice, rate)).unwrap();
        std::fs::create_dir(dir.path().join("rec")).unwrap();
        let port = free_udp_port();
        let rtp = free_port_block();
        let config = format!(
            "module_path\t{modules}\n\
             net_interface\t127.0.0.1\n\
             sip_listen\t127.0.0.1:{port}\n\
             audio_source\taufile,voice.wav\n\
             audio_alert\taufile,voice.wav\n\
             audio_srate\t{rate}\n\
             audio_channels\t1\n\
             rtp_ports\t{rtp}-{last}\n\
             module\tg711.so\n\
             module\taufile.so\n\
             module\tsndfile.so\n\
             module_app\taccount.so\n\
             module_app\tmenu.so\n\
             snd_path\trec\n",
            modules = module_path(),
            last = rtp + 19,
        );
        std::fs::write(dir.path().join("config"), config).unwrap();
        // The INVITE's Request-URI user is the number: an account with that user takes
        // it (any other user gets "UA not found" and no answer).
        std::fs::write(
            dir.path().join("accounts"),
            format!("<sip:{NUMBER}@127.0.0.1>;regint=0;answermode=auto;audio_codecs=PCMU,PCMA\n"),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("baresip.log")).unwrap();
        let child = Command::new("baresip")
            .current_dir(dir.path())
            .arg("-f")
            .arg(dir.path())
            .args(["-t", &BARESIP_LIFETIME_S.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("baresip starts");
        let mut baresip = Baresip {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        baresip
            .until(|b| StdUdp::bind(b.addr).is_err(), "listening")
            .await;
        Some(baresip)
    }

    /// baresip's output so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("baresip.log")).unwrap_or_default()
    }

    /// What baresip received and decoded so far (rate, samples); empty before a call.
    fn received(&self) -> (u32, Vec<i16>) {
        let dec = std::fs::read_dir(self.dir.path().join("rec"))
            .unwrap()
            .filter_map(|e| Some(e.ok()?.path()))
            .filter(|p| p.to_string_lossy().ends_with("-dec.wav"))
            .max();
        match dec.and_then(|p| std::fs::read(p).ok()) {
            Some(bytes) => wav_samples(&bytes),
            None => (8000, Vec::new()),
        }
    }

    /// Waits until `done` holds; fails with baresip's log if it does not in time, or
    /// if baresip exits.
    async fn until(&mut self, mut done: impl FnMut(&Baresip) -> bool, what: &str) {
        let started = tokio::time::Instant::now();
        while !done(self) {
            let exited = self.child.try_wait().unwrap();
            assert!(
                exited.is_none() && started.elapsed() < GUARD,
                "baresip not {what} (exit {exited:?}); its log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until baresip has recorded a second after sample `after`, and its last
    /// second holds `tones` (each at least a fifth of the power) and not its own.
    async fn until_hears(&mut self, after: usize, tones: &[f64]) {
        let started = tokio::time::Instant::now();
        loop {
            let (rate, pcm) = self.received();
            let window = rate as usize;
            let heard = if pcm.len() < after + window {
                format!("{} samples recorded, {after} before", pcm.len())
            } else {
                let last = &pcm[pcm.len() - window..];
                let shares: Vec<f64> = tones.iter().map(|&f| share(last, f, rate)).collect();
                let own = share(last, PHONE_HZ, rate);
                if shares.iter().all(|&s| s > 0.2) && own < 0.05 {
                    eprintln!("baresip hears {tones:?} at {shares:.2?} of the power");
                    return;
                }
                format!("{tones:?} at {shares:.2?} of the power, own tone {own:.2}")
            };
            assert!(
                started.elapsed() < GUARD && self.child.try_wait().unwrap().is_none(),
                "baresip does not hear the call: {heard}; its log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Samples baresip has recorded so far.
    fn recorded(&self) -> usize {
        self.received().1.len()
    }
}

/// Sample `n` of a `freq` Hz sine at `rate`, amplitude-modulated ±30 % at 3 Hz
/// (peak `peak`): both whole hertz, so a second of it loops seamlessly, and the
/// mixer's encoder does not take it for steady background noise.
fn am_sample(freq: f64, rate: u32, n: u64, peak: f64) -> i16 {
    let t = (n % u64::from(rate)) as f64 / f64::from(rate);
    let envelope = 1.0 + 0.3 * (TAU * 3.0 * t).sin();
    (peak / 1.3 * envelope * (TAU * freq * t).sin()).round() as i16
}

/// A client's voice: an AM tone at 48 kHz.
struct AmTone {
    freq: f64,
    n: u64,
    name: String,
}

impl AudioSource for AmTone {
    fn read_frame(&mut self, frame: &mut [i16]) -> Result<SourceState, AudioIoError> {
        for s in frame.iter_mut() {
            *s = am_sample(self.freq, 48_000, self.n, 8192.0);
            self.n += 1;
        }
        Ok(SourceState::Active)
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// The share of the power of `samples` at `freq` (0..1), over 20 ms frames (whole
/// cycles of every test frequency, so their Goertzel powers do not leak).
fn share(samples: &[i16], freq: f64, rate: u32) -> f64 {
    let (mut at, mut all) = (0.0, 0.0);
    for frame in samples.chunks_exact(rate as usize / 50) {
        at += goertzel_power(frame, freq, rate);
        all += mean_square(frame);
    }
    at / all.max(1e-9)
}

/// The server with one outbound UDP trunk to `trunk` for country code 1. Built from
/// the same shape as `ringwire.toml`, so fields with defaults need not be spelled out.
async fn server(trunk: SocketAddr) -> (RunningServer, tempfile::TempDir) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let pstn: PstnConfig = serde_json::from_value(serde_json::json!({
        "sip_listen": "127.0.0.1:0",
        // Below the ephemeral range and apart from pstn.rs's range and baresip's.
        "rtp_ports": { "first": 21200, "last": 21399 },
        "outbound": [{
            "name": "baresip",
            "address": trunk.to_string(),
            "caller_ids": ["+15550001111"],
            "allowed_country_codes": ["1"],
        }],
        "ring_timeout": "30s",
        "media_timeout": "30s",
    }))
    .unwrap();
    let config = ServerConfig {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        quic_addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        pstn: Some(pstn),
        ..ServerConfig::default()
    };
    let server = Server::start(config).await.unwrap();
    assert!(server.sip_addr().is_some(), "the gateway runs");
    (server, dir)
}

/// A native client for user `name` whose token may call phone numbers.
async fn client_named(server: &RunningServer, name: &str) -> (SignalingClient, EventStream) {
    let user = UserId::new(name).unwrap();
    let scopes = Scopes::from(Scope::Voip).with(Scope::Pstn);
    let token = server.issue_token(&user, scopes, Duration::from_secs(3600));
    let endpoint = Endpoint::ws(format!("ws://{}/v1/signaling", server.http_addr()));
    let mut options = ConnectOptions::default();
    options.seed = Some(7);
    tokio::time::timeout(GUARD, SignalingClient::connect(endpoint, token, options))
        .await
        .expect("connect in time")
        .unwrap()
}

/// Waits for bob to be rung for `call`, and accepts.
async fn answer(bob: &SignalingClient, events: &mut EventStream, call: &CallId) {
    let incoming = tokio::time::timeout(GUARD, async {
        loop {
            if let Some(Event::IncomingCall { call_id, .. }) = events.recv().await {
                return call_id;
            }
        }
    })
    .await
    .expect("bob is rung");
    assert_eq!(&incoming, call);
    bob.accept(call, JoinOptions::default()).await.unwrap();
    until_state(events, call, CallState::Connected).await;
}

/// One client's audio: it sends an AM tone and records what it plays.
struct Ear {
    name: &'static str,
    own: f64,
    tap: MemoryTap,
    _audio: AudioHandle,
}

impl Ear {
    async fn start(handle: &SignalingClient, call: &CallId, name: &'static str, freq: f64) -> Ear {
        let (sink, tap) = MemorySink::bounded(Duration::from_secs(2));
        let voice = AmTone {
            freq,
            n: 0,
            name: format!("{name}'s voice"),
        };
        let mut options = AudioOptions::new(voice, sink);
        options.media = CallMediaConfig::with_opus(OpusConfig {
            dtx: false,
            ..OpusConfig::default()
        });
        let audio = handle.start_audio(call, options).await.unwrap();
        tokio::time::timeout(GUARD, audio.wait_connected())
            .await
            .expect("audio connects in time")
            .unwrap();
        Ear {
            name,
            own: freq,
            tap,
            _audio: audio,
        }
    }
}

/// Waits until each ear hears `others` and the phone over the last second (each at
/// least a fifth of the power), and not itself (mix-minus).
async fn until_everyone_hears_the_others(ears: &[(&Ear, &[f64])]) {
    let window = Duration::from_secs(1);
    let played_enough = (window.as_secs_f64() * 48_000.0) as u64;
    let started = tokio::time::Instant::now();
    loop {
        let mut complaints = Vec::new();
        for (ear, others) in ears {
            let (heard, played) = (ear.tap.last(window), ear.tap.written());
            let shares: Vec<f64> = others
                .iter()
                .chain(&[PHONE_HZ])
                .map(|&f| share(&heard, f, 48_000))
                .collect();
            let me = share(&heard, ear.own, 48_000);
            if played < played_enough || shares.iter().any(|&s| s < 0.2) || me > 0.05 {
                complaints.push(format!(
                    "{}: others and phone {shares:.2?}, own {me:.2} of the power ({played} samples played)",
                    ear.name
                ));
            }
        }
        if complaints.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < GUARD,
            "not everyone hears the others: {complaints:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (ear, _) in ears {
        let heard = ear.tap.last(window);
        eprintln!(
            "{} hears the phone at {:.2} of the power",
            ear.name,
            share(&heard, PHONE_HZ, 48_000)
        );
    }
}

/// Waits until baresip logs that its call ended (our BYE arrived).
async fn until_baresip_hung_up(baresip: &mut Baresip) {
    baresip
        .until(|b| b.log().contains("terminated"), "hung up")
        .await;
}

/// Dial-out from a group call: alice calls bob and the phone at once; all three hear
/// the other two and not themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_call_dials_baresip_and_all_three_hear_each_other() {
    let Some(mut baresip) = Baresip::start().await else {
        return;
    };
    let (server, _dir) = server(baresip.addr).await;
    let (alice, mut alice_events) = client_named(&server, "alice").await;
    let (bob, mut bob_events) = client_named(&server, "bob").await;
    let phone = Identifier::phone(NUMBER).unwrap();
    let call = alice
        .start_call(
            &[Identifier::user("bob").unwrap(), phone],
            JoinOptions::default(),
        )
        .await
        .unwrap();
    answer(&bob, &mut bob_events, &call).await;
    until_state(&mut alice_events, &call, CallState::Connected).await;

    let a = Ear::start(&alice, &call, "alice", ALICE_HZ).await;
    let b = Ear::start(&bob, &call, "bob", BOB_HZ).await;
    until_everyone_hears_the_others(&[(&a, &[BOB_HZ]), (&b, &[ALICE_HZ])]).await;
    baresip.until_hears(0, &[ALICE_HZ, BOB_HZ]).await;

    // The last human leaving ends the call: the phone gets its BYE.
    alice.hang_up(&call, false).await.unwrap();
    bob.hang_up(&call, false).await.unwrap();
    until_state(&mut bob_events, &call, CallState::Disconnected).await;
    until_baresip_hung_up(&mut baresip).await;
    alice.close().await;
    bob.close().await;
    server.shut_down().await;
}

/// Promotion: alice in a 1:1 call with the phone adds bob; the call becomes a group
/// call and nobody is dropped: the phone's recording goes on and carries both voices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_to_one_call_to_baresip_promoted_to_a_group_keeps_the_phone() {
    let Some(mut baresip) = Baresip::start().await else {
        return;
    };
    let (server, _dir) = server(baresip.addr).await;
    let (alice, mut alice_events) = client_named(&server, "alice").await;
    let (bob, mut bob_events) = client_named(&server, "bob").await;
    let phone = Identifier::phone(NUMBER).unwrap();
    let call = alice
        .start_call(std::slice::from_ref(&phone), JoinOptions::default())
        .await
        .unwrap();
    until_state(&mut alice_events, &call, CallState::Connected).await;
    let a = Ear::start(&alice, &call, "alice", ALICE_HZ).await;
    // The 1:1 phone call works before the promotion.
    until_everyone_hears_the_others(&[(&a, &[])]).await;
    baresip.until_hears(0, &[ALICE_HZ]).await;

    alice
        .add_participant(&call, &Identifier::user("bob").unwrap())
        .await
        .unwrap();
    answer(&bob, &mut bob_events, &call).await;
    let b = Ear::start(&bob, &call, "bob", BOB_HZ).await;
    let joined = baresip.recorded();
    until_everyone_hears_the_others(&[(&a, &[BOB_HZ]), (&b, &[ALICE_HZ])]).await;
    // The phone leg is the same one: its recording went on past bob's join and now
    // carries both voices; baresip never saw the call end.
    baresip.until_hears(joined, &[ALICE_HZ, BOB_HZ]).await;
    assert!(
        !baresip.log().contains("terminated"),
        "baresip's call ended: {}",
        baresip.log()
    );
    let roster = alice.call(&call).await.unwrap().unwrap();
    assert_eq!(roster.state(), CallState::Connected);
    assert_eq!(
        roster.participant(&phone).map(|p| p.state()),
        Some(ParticipantState::Connected),
        "the phone is still in alice's roster"
    );

    alice.hang_up(&call, false).await.unwrap();
    bob.hang_up(&call, false).await.unwrap();
    until_state(&mut bob_events, &call, CallState::Disconnected).await;
    until_baresip_hung_up(&mut baresip).await;
    alice.close().await;
    bob.close().await;
    server.shut_down().await;
}
