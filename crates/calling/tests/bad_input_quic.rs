//! Bad input over a raw QUIC stream: an oversized length prefix, malformed JSON, a
//! message before `auth`, a stream ending inside a frame, and a flood. Each gets its
//! typed error or close code, is counted in `/metrics` under `transport="quic"`, and a
//! well-behaved pair in a call on the same server is undisturbed. Timeouts only guard
//! against hangs.

#![allow(clippy::unwrap_used)] // Scenario helpers outside #[test] fns unwrap too.

#[path = "support/harness.rs"]
mod harness;

use std::sync::Arc;
use std::time::Duration;

use harness::{Client, GUARD, Harness, Kind, connected_pair, metric};
use quinn::{Connection, ConnectionError, Endpoint, RecvStream, SendStream};
use ringwire_signaling::protocol::MAX_MESSAGE_SIZE;
use ringwire_signaling::{
    CallId, CallState, ClientMessage, ErrorCode, Event, Scope, Scopes, ServerMessage, UserId,
};

/// A QUIC client that speaks the framing by hand.
struct Raw {
    _endpoint: Endpoint,
    connection: Connection,
    send: SendStream,
    recv: RecvStream,
}

impl Raw {
    async fn open(h: &Harness) -> Raw {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(h.server.cert_der().into()).unwrap();
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"ringwire/1".to_vec()];
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
        let config = quinn::ClientConfig::new(Arc::new(crypto));
        let endpoint = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let connection = endpoint
            .connect_with(config, h.server.quic_addr(), "localhost")
            .unwrap()
            .await
            .unwrap();
        let (send, recv) = connection.open_bi().await.unwrap();
        Raw {
            _endpoint: endpoint,
            connection,
            send,
            recv,
        }
    }

    async fn write(&mut self, bytes: &[u8]) {
        self.send.write_all(bytes).await.unwrap();
    }

    async fn frame(&mut self, body: &[u8]) {
        let mut bytes = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
        bytes.extend_from_slice(body);
        self.write(&bytes).await;
    }

    async fn message(&mut self, message: ClientMessage) {
        self.frame(&message.encode()).await;
    }

    /// The next server message; `None` when the stream or connection ended.
    async fn read(&mut self) -> Option<ServerMessage> {
        let read = async {
            let mut prefix = [0u8; 4];
            self.recv.read_exact(&mut prefix).await.ok()?;
            let mut body = vec![0u8; u32::from_be_bytes(prefix) as usize];
            self.recv.read_exact(&mut body).await.ok()?;
            Some(ServerMessage::decode(&body).unwrap())
        };
        tokio::time::timeout(GUARD, read)
            .await
            .expect("a message or the end in time")
    }

    /// The next error the server sends, skipping pongs.
    async fn error(&mut self) -> ErrorCode {
        loop {
            match self.read().await {
                Some(ServerMessage::Error { code, .. }) => return code,
                Some(ServerMessage::Pong { .. }) => {}
                other => panic!("expected an error, got {other:?}"),
            }
        }
    }

    /// The application close code the server closed the connection with.
    async fn close_code(&self) -> u64 {
        let error = tokio::time::timeout(GUARD, self.connection.closed())
            .await
            .expect("closed in time");
        match error {
            ConnectionError::ApplicationClosed(close) => close.error_code.into_inner(),
            other => panic!("expected an application close, got {other:?}"),
        }
    }

    async fn auth(&mut self, h: &Harness, name: &str) {
        let token = h.server.issue_token(
            &UserId::new(name).unwrap(),
            Scopes::from(Scope::Voip),
            Duration::from_secs(3600),
        );
        self.message(ClientMessage::Auth {
            token,
            resume: None,
            client: Default::default(),
        })
        .await;
        assert!(matches!(
            self.read().await,
            Some(ServerMessage::Authenticated { .. })
        ));
    }
}

/// A server with alice and bob (native clients over QUIC) in a connected call.
async fn with_a_call() -> (Harness, Client, Client, CallId) {
    let mut h = Harness::start().await;
    let mut alice = h.client(Kind::Quic, "alice").await;
    let mut bob = h.client(Kind::Quic, "bob").await;
    let call = connected_pair(&mut alice, &mut bob).await;
    (h, alice, bob, call)
}

/// alice and bob's call goes on as if nothing happened: a mute round-trips, nobody
/// left, both still connected.
async fn undisturbed(alice: &mut Client, bob: &mut Client, call: &CallId) {
    alice.handle.mute(call).await.unwrap();
    let alice_id = alice.id.clone();
    bob.expect_participant(call, &alice_id, "muted", |p| p.muted)
        .await;
    alice.handle.unmute(call).await.unwrap();
    bob.expect_participant(call, &alice_id, "unmuted", |p| !p.muted)
        .await;
    for client in [alice, bob] {
        assert_eq!(client.state(call).await, CallState::Connected);
        let name = client.name;
        let seen = client.all_seen();
        assert!(
            !seen.iter().any(|e| matches!(
                e,
                Event::ParticipantRemoved { .. } | Event::ConnectionLost | Event::Goodbye { .. }
            )),
            "{name} was disturbed: {seen:#?}"
        );
    }
}

#[tokio::test]
async fn oversized_length_prefix_closes_with_4001() {
    let (h, mut alice, mut bob, call) = with_a_call().await;
    let mut raw = Raw::open(&h).await;
    raw.auth(&h, "mallory").await;
    let too_big = u32::try_from(MAX_MESSAGE_SIZE + 1).unwrap();
    raw.write(&too_big.to_be_bytes()).await;
    raw.write(b"{\"v\":1").await;
    assert_eq!(raw.close_code().await, 4001);
    undisturbed(&mut alice, &mut bob, &call).await;
    // The server counts before it closes, so the close means the counters are in.
    let text = h.metrics().await;
    let series = |s: &str| metric(&text, s);
    assert_eq!(
        series("ringwire_transport_oversized_total{transport=\"quic\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        series("ringwire_transport_closed_total{transport=\"quic\",reason=\"oversized\"}"),
        Some(1.0),
        "{text}"
    );
    // alice, bob and the raw connection.
    assert!(
        series("ringwire_transport_connections_total{transport=\"quic\"}")
            .is_some_and(|n| n >= 3.0),
        "{text}"
    );
    assert_eq!(
        series("ringwire_transport_oversized_total{transport=\"websocket\"}"),
        None,
        "nothing counted against websocket: {text}"
    );
    h.server.shut_down().await;
}

#[tokio::test]
async fn malformed_json_is_a_typed_error_and_the_connection_goes_on() {
    let (h, mut alice, mut bob, call) = with_a_call().await;
    let mut raw = Raw::open(&h).await;
    raw.frame(b"{this is not json").await;
    assert_eq!(raw.error().await, ErrorCode::Malformed);
    raw.frame(br#"{"v":1,"type":"teleport"}"#).await;
    assert_eq!(raw.error().await, ErrorCode::UnknownType);
    // Still usable: auth works, and so does a ping.
    raw.auth(&h, "mallory").await;
    raw.frame(b"[1,2,3]").await;
    assert_eq!(raw.error().await, ErrorCode::Malformed);
    raw.message(ClientMessage::Ping { seq: 7 }).await;
    assert!(matches!(
        raw.read().await,
        Some(ServerMessage::Pong { seq: 7 })
    ));
    undisturbed(&mut alice, &mut bob, &call).await;
    h.server.shut_down().await;
}

#[tokio::test]
async fn a_message_before_auth_is_refused() {
    let (h, mut alice, mut bob, call) = with_a_call().await;
    let mut raw = Raw::open(&h).await;
    raw.message(ClientMessage::StartCall {
        call_id: CallId::new("sneaky").unwrap(),
        targets: vec![bob.id.clone()],
        options: Default::default(),
        alternate_caller_id: None,
    })
    .await;
    assert_eq!(raw.error().await, ErrorCode::NotAuthenticated);
    // Bob was not rung by it.
    assert!(
        !bob.all_seen()
            .iter()
            .any(|e| matches!(e, Event::IncomingCall { .. }))
    );
    undisturbed(&mut alice, &mut bob, &call).await;
    h.server.shut_down().await;
}

#[tokio::test]
async fn a_stream_ending_inside_a_frame_closes_with_4004() {
    let (h, mut alice, mut bob, call) = with_a_call().await;
    let mut raw = Raw::open(&h).await;
    raw.auth(&h, "mallory").await;
    raw.write(&100u32.to_be_bytes()).await;
    raw.write(b"{\"v\":1,").await;
    raw.send.finish().unwrap();
    assert_eq!(raw.close_code().await, 4004);
    undisturbed(&mut alice, &mut bob, &call).await;
    let text = h.metrics().await;
    assert_eq!(
        metric(
            &text,
            "ringwire_transport_closed_total{transport=\"quic\",reason=\"framing\"}"
        ),
        Some(1.0),
        "{text}"
    );
    h.server.shut_down().await;
}

#[tokio::test]
async fn a_flood_is_refused_then_closed_with_4002() {
    let (h, mut alice, mut bob, call) = with_a_call().await;
    let mut raw = Raw::open(&h).await;
    raw.auth(&h, "mallory").await;
    // Defaults: 50 messages a second, bursts of 100, closed after 300 refusals in a row.
    let mut flood = Vec::new();
    for seq in 0..1000 {
        let body = ClientMessage::Ping { seq }.encode();
        flood.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
        flood.extend_from_slice(&body);
    }
    // The write may fail once the server has closed: that is the point.
    let _ = raw.send.write_all(&flood).await;
    let mut rate_limited = 0;
    while let Some(message) = raw.read().await {
        match message {
            ServerMessage::Error {
                code: ErrorCode::RateLimited,
                ..
            } => rate_limited += 1,
            ServerMessage::Pong { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    // One error per run of refusals (a token refilled mid-flood starts a new run).
    assert!(rate_limited >= 1, "told it was rate limited");
    assert_eq!(raw.close_code().await, 4002);
    undisturbed(&mut alice, &mut bob, &call).await;
    let text = h.metrics().await;
    let series = |s: &str| metric(&text, s);
    assert_eq!(
        series("ringwire_transport_closed_total{transport=\"quic\",reason=\"rate_limited\"}"),
        Some(1.0),
        "{text}"
    );
    // The close comes after 3 × burst refusals in a row, each counted.
    assert!(
        series("ringwire_transport_rate_limited_total{transport=\"quic\"}")
            .is_some_and(|n| n >= 300.0),
        "{text}"
    );
    assert!(
        series("ringwire_transport_connections_total{transport=\"quic\"}")
            .is_some_and(|n| n >= 3.0),
        "{text}"
    );
    h.server.shut_down().await;
}
