//! Test helpers: a real server on an ephemeral loopback port, raw WebSocket clients
//! (tokio-tungstenite), and a tiny HTTP/1.1 client for the REST API.
//!
//! Timeouts here only guard against hangs; no test asserts on how long anything takes.

#![allow(dead_code)] // Each test binary uses a different part of the helpers.
#![allow(unreachable_pub)] // A test helper module: `pub` is how the tests reach it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use ringwire_server::{RunningServer, Server, ServerConfig};
use ringwire_signaling::{Scope, Scopes, UserId};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single wait may take before the test fails.
pub const GUARD: Duration = Duration::from_secs(10);

/// A running server and its data directory (removed on drop).
pub struct TestServer {
    pub server: RunningServer,
    pub dir: TempDir,
}

/// Starts a server on 127.0.0.1 with ephemeral ports and a fresh data directory.
pub async fn start(configure: impl FnOnce(&mut ServerConfig)) -> Result<TestServer> {
    let dir = tempfile::tempdir()?;
    let mut config = ServerConfig {
        http_addr: "127.0.0.1:0".parse()?,
        quic_addr: "127.0.0.1:0".parse()?,
        data_dir: dir.path().join("data"),
        ..ServerConfig::default()
    };
    configure(&mut config);
    let server = Server::start(config).await?;
    Ok(TestServer { server, dir })
}

impl TestServer {
    pub fn token(&self, user: &str) -> String {
        self.token_with(user, Scopes::from(Scope::Voip))
    }

    pub fn token_with(&self, user: &str, scopes: Scopes) -> String {
        let user = UserId::new(user).expect("test user ids are valid");
        self.server
            .issue_token(&user, scopes, Duration::from_secs(3600))
    }

    pub fn access_key(&self) -> String {
        std::fs::read_to_string(self.server.access_key_path())
            .expect("access key exists once the server runs")
            .trim()
            .to_owned()
    }

    pub async fn ws(&self) -> Result<Ws> {
        Ws::connect(self.server.http_addr()).await
    }

    /// A connection authenticated as `user`.
    pub async fn authed(&self, user: &str) -> Result<Ws> {
        let mut ws = self.ws().await?;
        ws.auth(&self.token(user)).await?;
        let msg = ws.recv_type("authenticated").await?;
        if msg["user"] != format!("8:{user}") {
            bail!("authenticated as {}", msg["user"]);
        }
        Ok(ws)
    }

    /// Two clients in a connected 1:1 call: `alice` called `bob`, who accepted.
    pub async fn call_pair(&self, alice: &str, bob: &str) -> Result<Pair> {
        let mut a = self.authed(alice).await?;
        let mut b = self.authed(bob).await?;
        let call_id = format!("call-{alice}-{bob}");
        a.send(json!({"v": 1, "type": "start_call", "call_id": call_id, "targets": [format!("8:{bob}")]}))
            .await?;
        let incoming = b.recv_type("incoming_call").await?;
        if incoming["call_id"] != call_id.as_str() {
            bail!("unexpected incoming call {incoming}");
        }
        b.send(json!({"v": 1, "type": "accept", "call_id": call_id}))
            .await?;
        b.recv_state("connected").await?;
        a.recv_state("connected").await?;
        Ok(Pair {
            a,
            b,
            call_id,
            muted: false,
            seq: 1000,
        })
    }

    pub async fn http(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&str>,
    ) -> Result<HttpResponse> {
        http(self.server.http_addr(), method, path, bearer, body).await
    }
}

/// A connected 1:1 call between two raw WebSocket clients.
pub struct Pair {
    pub a: Ws,
    pub b: Ws,
    pub call_id: String,
    muted: bool,
    seq: u64,
}

impl Pair {
    /// Both clients still get pongs, and each sees the other's mute change.
    pub async fn assert_undisturbed(&mut self) -> Result<()> {
        for ws in [&mut self.a, &mut self.b] {
            self.seq += 1;
            ws.ping(self.seq)
                .await
                .context("well-behaved client lost its pong")?;
        }
        self.muted = !self.muted;
        let kind = if self.muted { "mute" } else { "unmute" };
        let message = json!({"v": 1, "type": kind, "call_id": self.call_id});
        self.a.send(message.clone()).await?;
        expect_muted(&mut self.b, self.muted).await?;
        self.b.send(message).await?;
        expect_muted(&mut self.a, self.muted).await?;
        Ok(())
    }
}

async fn expect_muted(to: &mut Ws, muted: bool) -> Result<()> {
    let seen = to.recv_type("participant").await?;
    if seen["participant"]["muted"] != muted {
        bail!("expected muted={muted} in {seen}");
    }
    Ok(())
}

/// A raw WebSocket signaling client.
pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a connection ended, from the client's side.
#[derive(Debug)]
pub struct Closed {
    pub code: Option<u16>,
    pub reason: String,
    /// Every text message received before the close.
    pub messages: Vec<Value>,
}

impl Ws {
    pub async fn connect(addr: SocketAddr) -> Result<Ws> {
        let url = format!("ws://{addr}/v1/signaling");
        let (stream, _) = timeout(GUARD, tokio_tungstenite::connect_async(url)).await??;
        Ok(Ws { stream })
    }

    /// A `wss://` connection trusting what `tls` trusts.
    pub async fn connect_tls(addr: SocketAddr, tls: Arc<rustls::ClientConfig>) -> Result<Ws> {
        let url = format!("wss://{addr}/v1/signaling");
        let connector = tokio_tungstenite::Connector::Rustls(tls);
        let connect =
            tokio_tungstenite::connect_async_tls_with_config(url, None, false, Some(connector));
        let (stream, _) = timeout(GUARD, connect).await??;
        Ok(Ws { stream })
    }

    pub async fn send(&mut self, message: Value) -> Result<()> {
        self.send_text(&message.to_string()).await
    }

    pub async fn send_text(&mut self, text: &str) -> Result<()> {
        timeout(GUARD, self.stream.send(Message::text(text))).await??;
        Ok(())
    }

    pub async fn send_raw(&mut self, message: Message) -> Result<()> {
        timeout(GUARD, self.stream.send(message)).await??;
        Ok(())
    }

    /// Queues many messages and flushes once; errors (the server closed) are ignored.
    pub async fn flood(&mut self, messages: impl IntoIterator<Item = Value>) {
        for message in messages {
            if self
                .stream
                .feed(Message::text(message.to_string()))
                .await
                .is_err()
            {
                return;
            }
        }
        let _ = self.stream.flush().await;
    }

    pub async fn auth(&mut self, token: &str) -> Result<()> {
        self.send(json!({"v": 1, "type": "auth", "token": token}))
            .await
    }

    pub async fn auth_resume(&mut self, token: &str, resume: &str) -> Result<()> {
        self.send(json!({"v": 1, "type": "auth", "token": token, "resume": resume}))
            .await
    }

    /// The next text message as JSON.
    pub async fn recv(&mut self) -> Result<Value> {
        loop {
            let message = timeout(GUARD, self.stream.next())
                .await
                .context("no message in time")?
                .ok_or_else(|| anyhow!("connection ended"))??;
            match message {
                Message::Text(text) => return Ok(serde_json::from_str(&text)?),
                Message::Close(frame) => bail!("connection closed: {frame:?}"),
                _ => continue,
            }
        }
    }

    /// Skips messages until one of type `kind`.
    pub async fn recv_type(&mut self, kind: &str) -> Result<Value> {
        loop {
            let message = self.recv().await?;
            if message["type"] == kind {
                return Ok(message);
            }
        }
    }

    /// Skips messages until `call_state` with `state`.
    pub async fn recv_state(&mut self, state: &str) -> Result<Value> {
        loop {
            let message = self.recv_type("call_state").await?;
            if message["state"] == state {
                return Ok(message);
            }
        }
    }

    /// The next error message; fails on any other message.
    pub async fn recv_error(&mut self) -> Result<Value> {
        let message = self.recv().await?;
        if message["type"] != "error" {
            bail!("expected an error, got {message}");
        }
        Ok(message)
    }

    pub async fn ping(&mut self, seq: u64) -> Result<()> {
        self.send(json!({"v": 1, "type": "ping", "seq": seq}))
            .await?;
        let pong = self.recv_type("pong").await?;
        if pong["seq"] != seq {
            bail!("pong for {} instead of {seq}", pong["seq"]);
        }
        Ok(())
    }

    /// Reads until the server closes; returns the close code, reason and what came before.
    pub async fn closed(mut self) -> Result<Closed> {
        let mut messages = Vec::new();
        loop {
            let next = timeout(GUARD, self.stream.next())
                .await
                .context("no close in time")?;
            match next {
                Some(Ok(Message::Text(text))) => messages.push(serde_json::from_str(&text)?),
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = match frame {
                        Some(f) => (Some(u16::from(f.code)), f.reason.to_string()),
                        None => (None, String::new()),
                    };
                    // Answer the close handshake (tungstenite queued the reply).
                    let _ = timeout(GUARD, self.stream.next()).await;
                    return Ok(Closed {
                        code,
                        reason,
                        messages,
                    });
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    bail!("connection failed instead of closing: {e} (after {messages:?})")
                }
                None => bail!("connection ended without a close frame (after {messages:?})"),
            }
        }
    }
}

/// A close code as a number.
pub fn code(c: CloseCode) -> u16 {
    u16::from(c)
}

/// An HTTP response: status, headers (lower-case names), body.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.body).with_context(|| format!("body is not json: {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request with `Connection: close`.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&str>,
) -> Result<HttpResponse> {
    let mut stream = timeout(GUARD, TcpStream::connect(addr)).await??;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(bearer) = bearer {
        request.push_str(&format!("Authorization: Bearer {bearer}\r\n"));
    }
    let body = body.unwrap_or("");
    request.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    timeout(GUARD, stream.read_to_end(&mut raw)).await??;
    let raw = String::from_utf8(raw)?;
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("no header end in {raw}"))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .ok_or_else(|| anyhow!("no status line"))?
        .parse()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(HttpResponse {
        status,
        headers,
        body: body.to_owned(),
    })
}
