//! The shipped binary, as a user runs it on a clean machine: `ringwire serve` with no
//! arguments (only `XDG_DATA_HOME` and `HOME` point at a temp dir, so the access key
//! lands there; default ports 127.0.0.1:8080 and 127.0.0.1:8443), `ringwire token` for
//! two users, one native client over WebSocket and one over QUIC (trusting the
//! fingerprint `serve` printed) in a 1:1 call, then SIGTERM: exit status 0 and an
//! access key with mode 0600. Also what `ringwire identity create` and
//! `ringwire token --scopes .. --ttl ..` print.
//!
//! The serve test needs ports 8080 (TCP) and 8443 (UDP) on 127.0.0.1 free and fails
//! saying so when they are not. Timeouts here only guard against hangs; no assertion
//! depends on timing.

// SIGTERM and file modes.
#![cfg(unix)]
#![allow(clippy::unwrap_used)] // Helpers outside #[test] fns unwrap too.

use std::io::{BufRead as _, BufReader, Read as _};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use ringwire_calling::{ConnectOptions, Endpoint, EventStream, SignalingClient, Trust};
use ringwire_server::AccessKey;
use ringwire_signaling::{
    CallState, ConnectionState, EndReason, Event, Identifier, JoinOptions, Scope, UserId,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// Longest any single expected thing may take before the test fails.
const GUARD: Duration = Duration::from_secs(20);
/// The defaults `ringwire serve` listens on.
const HTTP_ADDR: &str = "127.0.0.1:8080";
const QUIC_ADDR: &str = "127.0.0.1:8443";

/// `ringwire` with a clean environment for it: `HOME` and `XDG_DATA_HOME` under
/// `home`, no `RINGWIRE_*` overrides, run from `home`.
fn ringwire(home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ringwire"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("RINGWIRE_") {
            command.env_remove(name);
        }
    }
    command
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("xdg-data"))
        .current_dir(home)
        .stdin(Stdio::null());
    command
}

/// Where `ringwire` keeps its data under the environment [`ringwire`] sets.
fn data_dir(home: &Path) -> PathBuf {
    home.join("xdg-data").join("ringwire")
}

/// Runs `ringwire args..` to completion; its stdout, after checking it succeeded.
fn run_ok(home: &Path, args: &[&str]) -> String {
    let Output {
        status,
        stdout,
        stderr,
    } = ringwire(home).args(args).output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8(stdout).unwrap(),
        String::from_utf8_lossy(&stderr),
    );
    assert!(
        status.success(),
        "ringwire {args:?} failed ({status}):\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
}

/// Fails the test, clearly, when a port `ringwire serve` needs is taken.
fn assert_default_ports_free() {
    let advice = "`ringwire serve` with no arguments listens there, so this test needs it \
                  free; stop whatever holds it and run again";
    if let Err(e) = TcpListener::bind(HTTP_ADDR) {
        panic!("tcp {HTTP_ADDR} is taken ({e}): {advice}");
    }
    if let Err(e) = UdpSocket::bind(QUIC_ADDR) {
        panic!("udp {QUIC_ADDR} is taken ({e}): {advice}");
    }
}

/// A running `ringwire serve`: killed when dropped, so a failing test never leaves it
/// behind. Its output is drained all along (a closed pipe would fail its last print).
struct ServeProcess {
    child: Child,
    /// stdout lines as they come.
    lines: mpsc::UnboundedReceiver<String>,
    stdout: Option<JoinHandle<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

impl ServeProcess {
    fn spawn(home: &Path) -> ServeProcess {
        let mut child = ringwire(home)
            .arg("serve")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        let out = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut all = Vec::new();
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line.clone());
                all.push(line);
            }
            all
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = err.read(&mut buf) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        ServeProcess {
            child,
            lines,
            stdout: Some(stdout),
            stderr,
        }
    }

    /// What the server logged so far, for failure messages.
    fn logs(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Fails the test, with the server's logs, if it has exited.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "ringwire serve exited early ({status}); its log:\n{}",
                self.logs()
            );
        }
    }

    /// The rest of the stdout line starting with `label` (after spaces).
    async fn printed(&mut self, label: &str) -> String {
        let wait = async {
            while let Some(line) = self.lines.recv().await {
                if let Some(rest) = line.trim_start().strip_prefix(label) {
                    return Some(rest.trim().to_owned());
                }
            }
            None
        };
        match timeout(GUARD, wait).await {
            Ok(Some(value)) => value,
            Ok(None) => panic!("stdout ended without {label:?}; log:\n{}", self.logs()),
            Err(_) => panic!("no {label:?} on stdout in {GUARD:?}; log:\n{}", self.logs()),
        }
    }

    /// Polls `/healthz` until it answers 200.
    async fn wait_healthy(&mut self) {
        let addr: SocketAddr = HTTP_ADDR.parse().unwrap();
        let poll = async {
            loop {
                self.assert_running();
                if let Ok((200, _)) = http_get(addr, "/healthz").await {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        if timeout(GUARD, poll).await.is_err() {
            panic!(
                "/healthz did not answer in {GUARD:?}; log:\n{}",
                self.logs()
            );
        }
    }

    /// Sends SIGTERM and waits for the process to exit; its status and stdout.
    async fn terminate(&mut self) -> (ExitStatus, Vec<String>) {
        let pid = self.child.id().to_string();
        let kill = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(kill.success(), "kill -TERM {pid}: {kill}");
        let wait = async {
            loop {
                if let Some(status) = self.child.try_wait().unwrap() {
                    return status;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        let Ok(status) = timeout(GUARD, wait).await else {
            panic!(
                "ringwire serve still running {GUARD:?} after SIGTERM; log:\n{}",
                self.logs()
            );
        };
        let stdout = self.stdout.take().unwrap().join().unwrap();
        (status, stdout)
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One HTTP/1.1 `GET` with `Connection: close`: status and body.
async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_owned()))
}

async fn connect(name: &str, endpoint: Endpoint, token: String) -> (SignalingClient, EventStream) {
    let (client, events) = timeout(
        GUARD,
        SignalingClient::connect(endpoint, token, ConnectOptions::default()),
    )
    .await
    .unwrap_or_else(|_| panic!("{name} connects in {GUARD:?}"))
    .unwrap_or_else(|e| panic!("{name} connects: {e}"));
    assert_eq!(client.connection_state(), ConnectionState::Connected);
    (client, events)
}

/// Waits for the first event `f` picks.
async fn expect<T>(
    name: &str,
    what: &str,
    events: &mut EventStream,
    mut f: impl FnMut(&Event) -> Option<T>,
) -> T {
    let mut seen = Vec::new();
    let wait = async {
        while let Some(event) = events.recv().await {
            if let Some(found) = f(&event) {
                return Some(found);
            }
            seen.push(event);
        }
        None
    };
    match timeout(GUARD, wait).await {
        Ok(Some(found)) => found,
        Ok(None) => panic!("{name}: events ended waiting for {what}"),
        Err(_) => panic!("{name}: no {what} in {GUARD:?}"),
    }
}

/// Waits until `call` reaches `state`; its end reason.
async fn expect_state(
    name: &str,
    events: &mut EventStream,
    call: &ringwire_signaling::CallId,
    state: CallState,
) -> Option<EndReason> {
    expect(name, &format!("{call} {state:?}"), events, |e| match e {
        Event::CallStateChanged {
            call_id,
            state: s,
            end_reason,
        } if call_id == call && *s == state => Some(end_reason.clone()),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn serve_with_no_arguments_then_call_over_both_transports_then_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    assert_default_ports_free();

    let mut server = ServeProcess::spawn(home);
    let fingerprint = server.printed("cert sha-256").await;
    let key_path = PathBuf::from(server.printed("access key").await);
    assert_eq!(key_path, data_dir(home).join("access.key"));
    server.wait_healthy().await;

    let alice_token = run_ok(home, &["token", "--user", "alice"]);
    let bob_token = run_ok(home, &["token", "--user", "bob"]);
    let (alice_token, bob_token) = (alice_token.trim(), bob_token.trim());
    assert!(!alice_token.is_empty() && !alice_token.contains(char::is_whitespace));
    assert_ne!(alice_token, bob_token);

    let (alice, mut alice_events) = connect(
        "alice",
        Endpoint::ws(format!("ws://{HTTP_ADDR}/v1/signaling")),
        alice_token.to_owned(),
    )
    .await;
    let (bob, mut bob_events) = connect(
        "bob",
        Endpoint::quic(
            QUIC_ADDR.parse().unwrap(),
            "localhost",
            Trust::Fingerprint(fingerprint),
        ),
        bob_token.to_owned(),
    )
    .await;
    assert_eq!(
        alice.user().await.unwrap(),
        Some(Identifier::user("alice").unwrap())
    );
    assert_eq!(
        bob.user().await.unwrap(),
        Some(Identifier::user("bob").unwrap())
    );

    // alice (WebSocket) calls bob (QUIC); bob answers.
    let bob_id = Identifier::user("bob").unwrap();
    let call = alice
        .start_call(&[bob_id], JoinOptions::default())
        .await
        .unwrap();
    let incoming = expect("bob", "incoming call", &mut bob_events, |e| match e {
        Event::IncomingCall {
            call_id, caller, ..
        } => Some((call_id.clone(), caller.clone())),
        _ => None,
    })
    .await;
    assert_eq!(incoming, (call.clone(), Identifier::user("alice").unwrap()));
    bob.accept(&call, JoinOptions::default()).await.unwrap();
    expect_state("bob", &mut bob_events, &call, CallState::Connected).await;
    expect_state("alice", &mut alice_events, &call, CallState::Connected).await;
    for client in [&alice, &bob] {
        let snapshot = client
            .call(&call)
            .await
            .unwrap()
            .expect("the call is known");
        assert_eq!(snapshot.state(), CallState::Connected);
    }

    alice.hang_up(&call, false).await.unwrap();
    assert_eq!(
        expect_state("alice", &mut alice_events, &call, CallState::Disconnected).await,
        Some(EndReason::normal())
    );
    assert_eq!(
        expect_state("bob", &mut bob_events, &call, CallState::Disconnected).await,
        Some(EndReason::remote_hung_up())
    );

    // SIGTERM: connected clients are told, and the process exits 0.
    let (status, stdout) = server.terminate().await;
    let logs = server.logs();
    assert_eq!(status.code(), Some(0), "{status}; log:\n{logs}");
    assert!(
        stdout.iter().any(|l| l == "ringwire stopped"),
        "{stdout:#?}\nlog:\n{logs}"
    );
    for (name, events) in [("alice", &mut alice_events), ("bob", &mut bob_events)] {
        let reason = expect(name, "goodbye", events, |e| match e {
            Event::Goodbye { reason } => Some(reason.clone()),
            _ => None,
        })
        .await;
        assert_eq!(reason, EndReason::shutting_down());
    }

    let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "access key mode {:o}", mode & 0o777);
    // `ringwire token` signed with the key the server used.
    let key = AccessKey::load(&data_dir(home)).unwrap();
    let claims = key
        .token_key()
        .verify(alice_token, SystemTime::now())
        .unwrap();
    assert_eq!(claims.user, UserId::new("alice").unwrap());
}

#[test]
fn identity_create_prints_a_new_user() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let first = run_ok(home, &["identity", "create"]);
    let second = run_ok(home, &["identity", "create"]);
    for printed in [&first, &second] {
        let lines: Vec<&str> = printed.lines().collect();
        assert_eq!(lines.len(), 1, "one line: {printed:?}");
        let id: Identifier = lines[0].parse().unwrap();
        assert!(matches!(id, Identifier::User(_)), "{id} is an `8:` user id");
    }
    assert_ne!(first, second, "each identity is new");

    // With --token: the id, then a token for it made with the local access key.
    let printed = run_ok(
        home,
        &[
            "identity", "create", "--token", "--scopes", "voip", "--ttl", "30m",
        ],
    );
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 2, "id and token: {printed:?}");
    let Ok(Identifier::User(user)) = lines[0].parse::<Identifier>() else {
        panic!("{:?} is not a user id", lines[0]);
    };
    let key = AccessKey::load(&data_dir(home)).unwrap();
    let claims = key.token_key().verify(lines[1], SystemTime::now()).unwrap();
    assert_eq!(claims.user, user);
    assert_eq!(
        claims.expires_at.duration_since(claims.issued_at).unwrap(),
        Duration::from_secs(30 * 60)
    );
}

#[test]
fn token_with_scopes_and_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let printed = run_ok(
        home,
        &[
            "token",
            "--user",
            "carol",
            "--scopes",
            "voip,pstn",
            "--ttl",
            "1h",
        ],
    );
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 1, "just the token: {printed:?}");
    // The command made the access key (none existed), private to its owner.
    let key_path = data_dir(home).join("access.key");
    let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "access key mode {:o}", mode & 0o777);
    let key = AccessKey::load(&data_dir(home)).unwrap();
    let claims = key.token_key().verify(lines[0], SystemTime::now()).unwrap();
    assert_eq!(claims.user, UserId::new("carol").unwrap());
    assert!(claims.scopes.contains(Scope::Voip), "{}", claims.scopes);
    assert!(claims.scopes.contains(Scope::Pstn), "{}", claims.scopes);
    assert_eq!(
        claims.expires_at.duration_since(claims.issued_at).unwrap(),
        Duration::from_secs(3600)
    );
    // `8:carol` is the same user; a phone number is not a user.
    let explicit = run_ok(home, &["token", "--user", "8:carol"]);
    let claims = key
        .token_key()
        .verify(explicit.trim(), SystemTime::now())
        .unwrap();
    assert_eq!(claims.user, UserId::new("carol").unwrap());
    let refused = ringwire(home)
        .args(["token", "--user", "4:+15551234567"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("not a user"), "{stderr}");
}
