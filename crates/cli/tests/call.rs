//! `ringwire call` as a script drives it: the shipped binary against a real
//! `ringwire serve` on 127.0.0.1 (free ports, its own data dir), tokens made by the
//! clients themselves with the server's access key (`--config` + `--user`), synthetic
//! tones in and WAV files out. Two clients call each other: each prints the state
//! transitions and the other in its roster, a `mute` shows on the other side, each
//! hears the other's tone (Goertzel on the WAV it recorded), and `hangup` ends both.
//! A third calls `8:echo123` with a token from `ringwire token` (`--token`) and
//! hears its own tone back. A group call adds a participant who answers, removes
//! one, and ends for everyone.
//!
//! Every process is killed when its handle drops, so a failing test leaves none
//! behind. Timeouts only guard against hangs; no assertion depends on timing.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringwire_media::analysis::tone_snr;
use ringwire_media::audio_io::{AudioSource as _, SourceState, TONE_PRESENT_SNR_DB, WavSource};
use ringwire_media::codec::{FRAME_SAMPLES, SAMPLE_RATE};

/// Longest any one expected line may take before the test fails.
const GUARD: Duration = Duration::from_secs(30);

/// A running `ringwire` process: killed when dropped. Its stdout lines arrive on a
/// channel; everything it printed is kept for failure messages.
struct Proc {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    fn spawn(name: &'static str, home: &Path, args: &[&str]) -> Proc {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ringwire"));
        for (var, _) in std::env::vars_os() {
            if var.to_string_lossy().starts_with("RINGWIRE_") {
                command.env_remove(var);
            }
        }
        let mut child = command
            .args(args)
            .env("HOME", home)
            .env("XDG_DATA_HOME", home.join("xdg-data"))
            .env("RUST_LOG", "warn")
            .current_dir(home)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = channel();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let kept = Arc::clone(&stdout);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                kept.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let kept = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                kept.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let stdin = child.stdin.take();
        Proc {
            name,
            child,
            stdin,
            lines,
            stdout,
            stderr,
        }
    }

    fn dump(&self) -> String {
        format!(
            "--- {} stdout:\n{}\n--- {} stderr:\n{}",
            self.name,
            self.stdout.lock().unwrap().join("\n"),
            self.name,
            self.stderr.lock().unwrap()
        )
    }

    /// The first line from now on that `want` accepts; fails after [`GUARD`].
    fn expect(&mut self, what: &str, mut want: impl FnMut(&str) -> bool) -> String {
        let deadline = Instant::now() + GUARD;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if want(&line) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    panic!("{}: no {what} within {GUARD:?}\n{}", self.name, self.dump())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("{}: exited before {what}\n{}", self.name, self.dump())
                }
            }
        }
    }

    /// Waits for exactly `line`.
    fn expect_line(&mut self, line: &str) {
        self.expect(&format!("`{line}`"), |l| l == line);
    }

    /// Sends one command line.
    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for the process to exit (guarded).
    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + GUARD;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                panic!("{}: did not exit\n{}", self.name, self.dump());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `ringwire serve` on free loopback ports with its own data dir, and the config
/// file the clients share with it (for the access key).
struct Serve {
    proc: Proc,
    config: PathBuf,
    url: String,
}

fn serve(home: &Path) -> Serve {
    let config = home.join("ringwire.toml");
    std::fs::write(
        &config,
        format!(
            "http_addr = \"127.0.0.1:0\"\nquic_addr = \"127.0.0.1:0\"\ndata_dir = {:?}\n",
            home.join("data")
        ),
    )
    .unwrap();
    let mut proc = Proc::spawn(
        "serve",
        home,
        &["--config", config.to_str().unwrap(), "serve"],
    );
    let line = proc.expect("the websocket url", |l| {
        l.trim_start().starts_with("websocket")
    });
    let url = line.split_whitespace().last().unwrap().to_owned();
    Serve { proc, config, url }
}

impl Serve {
    /// `ringwire call` as `user` with `args`.
    fn call(&self, name: &'static str, home: &Path, user: &str, args: &[&str]) -> Proc {
        let mut all = vec![
            "--config",
            self.config.to_str().unwrap(),
            "call",
            "--server",
            &self.url,
            "--user",
            user,
        ];
        for (flag, default) in [
            ("--camera", "none"),
            ("--screen", "none"),
            ("--stats-every", "500ms"),
        ] {
            if !args.contains(&flag) {
                all.extend_from_slice(&[flag, default]);
            }
        }
        all.extend_from_slice(args);
        Proc::spawn(name, home, &all)
    }
}

/// The samples of a WAV file the client recorded.
fn recorded(path: &Path) -> Vec<i16> {
    let mut source = WavSource::open(path).unwrap();
    let mut samples = Vec::new();
    let mut frame = vec![0i16; FRAME_SAMPLES];
    while source.read_frame(&mut frame).unwrap() == SourceState::Active {
        samples.extend_from_slice(&frame);
    }
    samples
}

/// The best tone-to-rest ratio of `freq` over any 400 ms of `samples`.
fn best_snr(samples: &[i16], freq: f64) -> f64 {
    samples
        .chunks_exact(FRAME_SAMPLES * 20)
        .map(|w| tone_snr(w, freq, SAMPLE_RATE))
        .fold(f64::NEG_INFINITY, f64::max)
}

/// The pictures a `frames <who> <kind> decoded=N tag=T` line reports for `stream`
/// with test-pattern tag `tag`; 0 for any other line.
fn pictures(line: &str, stream: &str, tag: u32) -> u64 {
    let Some(rest) = line
        .strip_prefix("frames ")
        .and_then(|l| l.strip_prefix(stream))
    else {
        return 0;
    };
    let mut decoded = 0;
    let mut tagged = false;
    for word in rest.split_whitespace() {
        if let Some(n) = word.strip_prefix("decoded=") {
            decoded = n.parse().unwrap_or(0);
        }
        tagged |= word == format!("tag={tag}");
    }
    if tagged { decoded } else { 0 }
}

/// The `audio_in` packets a `stats` line reports.
fn audio_in(line: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("audio_in="))
        .and_then(|n| n.parse().ok())
}

#[test]
fn two_terminal_clients_call_mute_hear_each_other_and_hang_up() {
    let home = tempfile::tempdir().unwrap();
    let server = serve(home.path());
    let bob_wav = home.path().join("bob-heard.wav");
    let alice_wav = home.path().join("alice-heard.wav");

    let bob_speaker = format!("wav:{}", bob_wav.display());
    let mut bob = server.call(
        "bob",
        home.path(),
        "bob",
        &[
            "--answer",
            "--mic",
            "tone:700",
            "--speaker",
            &bob_speaker,
            "--camera",
            "pattern:2",
        ],
    );
    bob.expect_line("connected 8:bob");
    bob.expect_line("waiting for a call");

    let alice_speaker = format!("wav:{}", alice_wav.display());
    let mut alice = server.call(
        "alice",
        home.path(),
        "alice",
        &[
            "bob",
            "--mic",
            "tone:500",
            "--speaker",
            &alice_speaker,
            "--camera",
            "pattern:1",
            "--screen",
            "pattern:3",
        ],
    );
    alice.expect_line("connected 8:alice");
    bob.expect_line("incoming 8:alice video=false");
    alice.expect_line("state Connected");
    bob.expect_line("state Connected");
    alice.expect_line("participant 8:bob Connected muted=false");
    bob.expect_line("participant 8:alice Connected muted=false");
    alice.expect("first audio", |l| l.starts_with("first-audio "));
    bob.expect("first audio", |l| l.starts_with("first-audio "));
    // Two seconds of the other's audio (100 packets of 20 ms) on each side.
    alice.expect("100 audio packets in", |l| audio_in(l) >= Some(100));
    bob.expect("100 audio packets in", |l| audio_in(l) >= Some(100));

    alice.send("mute");
    alice.expect_line("ok mute");
    alice.expect_line("muted true");
    bob.expect_line("participant 8:alice Connected muted=true");
    alice.send("status");
    alice.expect("alice's own status", |l| {
        l.starts_with("status Connected muted=true")
    });
    alice.expect("bob in alice's roster, not muted", |l| {
        l.starts_with("roster 8:bob Connected muted=false ")
    });

    // alice's camera, then her screen: bob is told of each stream and decodes
    // pictures carrying her test patterns' tags.
    alice.send("video on");
    alice.expect_line("ok video on");
    bob.expect_line("video 8:alice camera 640x360");
    bob.expect("10 pictures of alice's camera", |l| {
        pictures(l, "8:alice camera", 1) >= 10
    });
    alice.send("share on");
    alice.expect_line("ok share on");
    bob.expect_line("video 8:alice screen 1280x720");
    bob.expect("10 pictures of alice's screen", |l| {
        pictures(l, "8:alice screen", 3) >= 10
    });
    alice.send("share off");
    alice.expect_line("ok share off");
    bob.expect_line("video-ended 8:alice screen");

    // Hold and resume: alice's state, and alice in bob's roster.
    alice.send("hold");
    alice.expect_line("ok hold");
    alice.expect_line("state LocalHold");
    bob.expect("alice on hold in bob's roster", |l| {
        l.starts_with("participant 8:alice Hold ")
    });
    alice.send("resume");
    alice.expect_line("ok resume");
    alice.expect_line("state Connected");
    bob.expect_line("participant 8:alice Connected muted=true");

    alice.send("no-such-command");
    alice.expect("an error for a bad command", |l| {
        l.starts_with("error no-such-command: unknown command")
    });

    alice.send("hangup");
    alice.expect_line("ok hangup");
    alice.expect_line("state Disconnected");
    bob.expect_line("state Disconnected");
    alice.expect("alice's end", |l| l.starts_with("ended code=0"));
    bob.expect("bob's end", |l| l.starts_with("ended code="));
    let (a, b) = (alice.wait(), bob.wait());
    assert!(a.success(), "alice exited with {a}\n{}", alice.dump());
    assert!(b.success(), "bob exited with {b}\n{}", bob.dump());

    let heard_by_bob = best_snr(&recorded(&bob_wav), 500.0);
    let heard_by_alice = best_snr(&recorded(&alice_wav), 700.0);
    assert!(
        heard_by_bob >= TONE_PRESENT_SNR_DB,
        "bob did not hear alice's 500 Hz (best {heard_by_bob:.1} dB)"
    );
    assert!(
        heard_by_alice >= TONE_PRESENT_SNR_DB,
        "alice did not hear bob's 700 Hz (best {heard_by_alice:.1} dB)"
    );
    // Neither hears itself.
    assert!(best_snr(&recorded(&bob_wav), 700.0) < TONE_PRESENT_SNR_DB);
    assert!(best_snr(&recorded(&alice_wav), 500.0) < TONE_PRESENT_SNR_DB);
    drop(server.proc);
}

#[test]
fn the_echo_test_plays_our_tone_back_and_hangs_up() {
    let home = tempfile::tempdir().unwrap();
    let server = serve(home.path());
    let wav = home.path().join("echo-heard.wav");
    let speaker = format!("wav:{}", wav.display());
    // This time with a token from `ringwire token`, as a user away from the server
    // would get one.
    let mut token = Proc::spawn(
        "token",
        home.path(),
        &[
            "--config",
            server.config.to_str().unwrap(),
            "token",
            "--user",
            "carol",
        ],
    );
    let token = token.expect("a token", |l| !l.trim().is_empty());
    let mut carol = Proc::spawn(
        "carol",
        home.path(),
        &[
            "call",
            "8:echo123",
            "--server",
            &server.url,
            "--token",
            token.trim(),
            "--mic",
            "tone:440",
            "--speaker",
            &speaker,
            "--camera",
            "none",
        ],
    );
    // No commands: the end of stdin leaves the call to the echo service.
    drop(carol.stdin.take());
    carol.expect_line("connected 8:carol");
    carol.expect_line("state Connected");
    carol.expect("first audio", |l| l.starts_with("first-audio "));
    carol.expect("the service's normal hang-up", |l| {
        l.starts_with("ended code=0")
    });
    let status = carol.wait();
    assert!(
        status.success(),
        "carol exited with {status}\n{}",
        carol.dump()
    );
    let snr = best_snr(&recorded(&wav), 440.0);
    assert!(
        snr >= TONE_PRESENT_SNR_DB,
        "our 440 Hz did not come back (best {snr:.1} dB)\n{}",
        carol.dump()
    );
}

#[test]
fn bad_arguments_fail_with_a_clear_message() {
    let home = tempfile::tempdir().unwrap();
    for (args, says) in [
        (
            &["call", "bob", "--token", "t", "--mic", "tone:abc"][..],
            "--mic tone:HZ needs a frequency",
        ),
        (
            &[
                "call",
                "bob",
                "--user",
                "alice",
                "--server",
                "ws://127.0.0.1:9/x",
            ][..],
            "no --token, and no access key to make one",
        ),
        (
            &["call", "bob", "--token", "t", "--camera", "none", "--video"][..],
            "--video needs a camera",
        ),
    ] {
        let mut proc = Proc::spawn("call", home.path(), args);
        drop(proc.stdin.take());
        let status = proc.wait();
        assert!(!status.success(), "{args:?} succeeded\n{}", proc.dump());
        // stderr is read on a thread: wait until it has the message.
        let deadline = Instant::now() + GUARD;
        while !proc.stderr.lock().unwrap().contains(says) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            proc.stderr.lock().unwrap().contains(says),
            "{args:?}: no {says:?}\n{}",
            proc.dump()
        );
    }
}

#[test]
fn a_group_call_adds_removes_and_ends_for_everyone() {
    let home = tempfile::tempdir().unwrap();
    let server = serve(home.path());
    let quiet = ["--speaker", "null", "--stats-every", "0s"];
    let mut carol = server.call(
        "carol",
        home.path(),
        "carol",
        &[&["--answer", "--mic", "tone:900"][..], &quiet[..]].concat(),
    );
    carol.expect_line("waiting for a call");
    let mut alice = server.call(
        "alice",
        home.path(),
        "alice",
        &[&["--group", "team", "--mic", "tone:500"][..], &quiet[..]].concat(),
    );
    alice.expect_line("state Connected");
    let mut bob = server.call(
        "bob",
        home.path(),
        "bob",
        &[&["--group", "team", "--mic", "tone:700"][..], &quiet[..]].concat(),
    );
    bob.expect_line("state Connected");
    bob.expect_line("participant 8:alice Connected muted=false");
    alice.expect_line("participant 8:bob Connected muted=false");

    // alice invites carol, who answers and shows up in everyone's roster.
    alice.send("add carol");
    alice.expect_line("ok add carol");
    carol.expect("the invitation", |l| l.starts_with("incoming "));
    carol.expect_line("state Connected");
    alice.expect_line("participant 8:carol Connected muted=false");
    bob.expect_line("participant 8:carol Connected muted=false");

    // alice removes bob: his call ends, the others see him leave.
    alice.send("remove bob");
    alice.expect_line("ok remove bob");
    bob.expect_line("state Disconnected");
    alice.expect("bob leaving", |l| l.starts_with("left 8:bob"));
    carol.expect("bob leaving", |l| l.starts_with("left 8:bob"));
    let status = bob.wait();
    assert!(status.success(), "bob exited with {status}\n{}", bob.dump());

    // alice ends the call for everyone.
    alice.send("hangup all");
    alice.expect_line("ok hangup all");
    carol.expect_line("state Disconnected");
    alice.expect_line("state Disconnected");
    for proc in [&mut alice, &mut carol] {
        let status = proc.wait();
        assert!(status.success(), "exited with {status}\n{}", proc.dump());
    }
    drop(server.proc);
}
