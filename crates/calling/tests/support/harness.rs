//! What the end-to-end tests share: the real server with short timers, and native
//! clients with an event log.

// Each test file uses some of these helpers, not all.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use ringwire_calling::{ConnectOptions, Endpoint, EventStream, SignalingClient, Trust};
use ringwire_server::{RunningServer, Server, ServerConfig};
use ringwire_signaling::{
    CallId, CallState, ConnectionState, EndReason, Event, Identifier, JoinOptions, Scope, Scopes,
    UserId,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest any single expected thing may take before the test fails.
pub(crate) const GUARD: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Ws,
    Quic,
}

pub(crate) struct Harness {
    pub(crate) server: RunningServer,
    _dir: tempfile::TempDir,
    seed: u64,
}

pub(crate) struct Client {
    pub(crate) name: &'static str,
    pub(crate) id: Identifier,
    pub(crate) handle: SignalingClient,
    pub(crate) events: EventStream,
    /// Events seen while waiting for others, in order, for later checks.
    pub(crate) seen: Vec<Event>,
}

impl Harness {
    pub(crate) async fn start() -> Harness {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        let config = ServerConfig {
            http_addr: "127.0.0.1:0".parse().unwrap(),
            quic_addr: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_path_buf(),
            ring_timeout: Duration::from_secs(1),
            resume_grace: Duration::from_secs(2),
            ..ServerConfig::default()
        };
        let server = Server::start(config).await.unwrap();
        Harness {
            server,
            _dir: dir,
            seed: 1,
        }
    }

    pub(crate) fn endpoint(&self, kind: Kind) -> Endpoint {
        match kind {
            Kind::Ws => Endpoint::ws(format!("ws://{}/v1/signaling", self.server.http_addr())),
            Kind::Quic => Endpoint::quic(
                self.server.quic_addr(),
                "localhost",
                Trust::Certificate(self.server.cert_der()),
            ),
        }
    }

    /// The server's `/metrics` text.
    pub(crate) async fn metrics(&self) -> String {
        let (status, body) = http_get(self.server.http_addr(), "/metrics").await;
        assert_eq!(status, 200, "GET /metrics: {body}");
        body
    }

    pub(crate) async fn client(&mut self, kind: Kind, name: &'static str) -> Client {
        let user = UserId::new(name).unwrap();
        let token =
            self.server
                .issue_token(&user, Scopes::from(Scope::Voip), Duration::from_secs(3600));
        let mut options = ConnectOptions::default();
        self.seed += 1;
        options.seed = Some(self.seed);
        options.backoff_initial = Duration::from_millis(50);
        options.backoff_max = Duration::from_millis(500);
        let (handle, events) = tokio::time::timeout(
            GUARD,
            SignalingClient::connect(self.endpoint(kind), token, options),
        )
        .await
        .expect("connect in time")
        .unwrap_or_else(|e| panic!("{name} connects over {kind:?}: {e}"));
        assert_eq!(handle.connection_state(), ConnectionState::Connected);
        Client {
            name,
            id: Identifier::user(name).unwrap(),
            handle,
            events,
            seen: Vec::new(),
        }
    }
}

impl Client {
    /// Waits for the first event `f` picks, keeping the others in `seen`.
    pub(crate) async fn expect<T>(
        &mut self,
        what: &str,
        mut f: impl FnMut(&Event) -> Option<T>,
    ) -> T {
        let name = self.name;
        let wait = async {
            loop {
                let event = self.events.recv().await?;
                if let Some(found) = f(&event) {
                    return Some(found);
                }
                self.seen.push(event);
            }
        };
        match tokio::time::timeout(GUARD, wait).await {
            Ok(Some(found)) => found,
            Ok(None) => panic!(
                "{name}: events ended waiting for {what}; saw {:#?}",
                self.seen
            ),
            Err(_) => panic!("{name}: no {what} in {GUARD:?}; saw {:#?}", self.seen),
        }
    }

    pub(crate) async fn expect_incoming(&mut self) -> CallId {
        self.expect("incoming call", |e| match e {
            Event::IncomingCall { call_id, .. } => Some(call_id.clone()),
            _ => None,
        })
        .await
    }

    /// Waits until the call reaches `state`; returns its end reason.
    pub(crate) async fn expect_state(
        &mut self,
        call: &CallId,
        state: CallState,
    ) -> Option<EndReason> {
        let call = call.clone();
        self.expect(&format!("{call} {state:?}"), move |e| match e {
            Event::CallStateChanged {
                call_id,
                state: s,
                end_reason,
            } if *call_id == call && *s == state => Some(end_reason.clone()),
            _ => None,
        })
        .await
    }

    pub(crate) async fn expect_left(
        &mut self,
        call: &CallId,
        who: &Identifier,
    ) -> Option<EndReason> {
        let (call, who) = (call.clone(), who.clone());
        self.expect(&format!("{who} leaving {call}"), move |e| match e {
            Event::ParticipantRemoved {
                call_id,
                id,
                reason,
            } if *call_id == call && *id == who => Some(reason.clone()),
            _ => None,
        })
        .await
    }

    /// Waits until `who` shows in `call` as `f` wants.
    pub(crate) async fn expect_participant(
        &mut self,
        call: &CallId,
        who: &Identifier,
        what: &str,
        f: impl Fn(&ringwire_signaling::ParticipantInfo) -> bool,
    ) {
        let (call, who) = (call.clone(), who.clone());
        self.expect(&format!("{who} {what} in {call}"), move |e| match e {
            Event::ParticipantAdded {
                call_id,
                participant,
            }
            | Event::ParticipantUpdated {
                call_id,
                participant,
            } if *call_id == call && participant.id == who && f(participant) => Some(()),
            _ => None,
        })
        .await
    }

    pub(crate) async fn state(&self, call: &CallId) -> CallState {
        self.handle
            .call(call)
            .await
            .unwrap()
            .expect("the call is known")
            .state()
    }

    /// Everything that arrived so far, including what `expect` skipped.
    pub(crate) fn all_seen(&mut self) -> Vec<Event> {
        let mut all = std::mem::take(&mut self.seen);
        while let Some(event) = self.events.try_recv() {
            all.push(event);
        }
        all
    }
}

/// alice calls bob and carol at once; both answer. Returns the call.
pub(crate) async fn group_of_three(
    alice: &mut Client,
    bob: &mut Client,
    carol: &mut Client,
) -> CallId {
    let call = alice
        .handle
        .start_call(&[bob.id.clone(), carol.id.clone()], JoinOptions::default())
        .await
        .unwrap();
    for invitee in [&mut *bob, &mut *carol] {
        assert_eq!(invitee.expect_incoming().await, call);
        invitee
            .handle
            .accept(&call, JoinOptions::default())
            .await
            .unwrap();
        invitee.expect_state(&call, CallState::Connected).await;
    }
    call
}

/// alice calls bob and bob answers; returns the call.
pub(crate) async fn connected_pair(alice: &mut Client, bob: &mut Client) -> CallId {
    let call = alice
        .handle
        .start_call(std::slice::from_ref(&bob.id), JoinOptions::default())
        .await
        .unwrap();
    assert_eq!(bob.expect_incoming().await, call);
    alice.expect_state(&call, CallState::Ringing).await;
    bob.handle
        .accept(&call, JoinOptions::default())
        .await
        .unwrap();
    bob.expect_state(&call, CallState::Connected).await;
    alice.expect_state(&call, CallState::Connected).await;
    call
}

/// One HTTP/1.1 `GET` with `Connection: close` (the server tests' minimal client):
/// status and body.
pub(crate) async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        String::from_utf8(raw).unwrap()
    };
    let raw = tokio::time::timeout(GUARD, exchange)
        .await
        .expect("http answer in time");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a header end");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    (status, body.to_owned())
}

/// The value of the series `name{labels}` (exactly as rendered) in a `/metrics` text.
pub(crate) fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}
