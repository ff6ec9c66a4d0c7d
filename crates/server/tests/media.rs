//! The media plane end to end: the real server on loopback, raw WebSocket signaling,
//! and real str0m clients ([`CallMedia`]) on their own UDP sockets.
//!
//! Audio is checked by content: each side sends a tone of its own frequency and must
//! hear the other's (Goertzel SNR over 20 ms windows, [`MIN_SNR_DB`]) and not its own.
//! Timeouts only guard against hangs; nothing asserts on how long anything takes.

#![allow(clippy::unwrap_used)] // Helpers outside #[test] fns unwrap too.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use common::{GUARD, Pair, TestServer, Ws, start};
use ringwire_media::analysis::{tone, tone_snr_windowed};
use ringwire_media::client::{CallMedia, CallMediaConfig, CallMediaEvent, CallMediaStats};
use ringwire_media::codec::{FRAME_SAMPLES, OpusConfig};
use ringwire_media::jitter::FrameKind;
use ringwire_media::rtc::MAX_DATAGRAM;
use ringwire_media::server::MediaServerStats;
use serde_json::{Value, json};
use tokio::net::UdpSocket;
use tokio::time::{Instant, MissedTickBehavior, timeout};

const RATE: u32 = 48_000;
const ALICE_HZ: f64 = 440.0;
const BOB_HZ: f64 = 1_250.0;
const AMPLITUDE: f64 = 8_000.0;
/// The far end's tone must stand this far above everything else it hears. Opus at
/// 32 kbit/s keeps a steady sine well above 25 dB; silence, the wrong tone or the
/// sender's own tone come out far below 0 dB.
const MIN_SNR_DB: f64 = 15.0;
/// Frames (20 ms) of decoded audio each side keeps: two seconds.
const FRAMES: usize = 100;
/// Decoded frames skipped first, while the jitter buffer settles.
const WARMUP: usize = 10;

/// Logs to the test's output, filtered by `RUST_LOG` (nothing by default).
fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Garbage of every shape the demultiplexer (RFC 7983) sorts by: empty, too short,
/// STUN-looking with a bad cookie or unknown credentials, DTLS-, RTP- and RTCP-looking
/// records with junk inside, unknown first bytes, and a datagram over the buffer size.
fn garbage() -> Vec<Vec<u8>> {
    let mut stun = vec![0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42];
    stun.extend_from_slice(&[7; 12]); // transaction id
    stun.extend_from_slice(&[0x00, 0x06, 0x00, 0x04, b'n', b'o', b'p', b'e']); // USERNAME
    let junk = |first: u8, len: usize| {
        let mut d: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        d[0] = first;
        d
    };
    vec![
        vec![],
        vec![0],
        vec![0xff; 3],
        junk(0x00, 20),
        stun,
        junk(22, 60),    // DTLS handshake record
        junk(23, 120),   // DTLS application data
        junk(0x80, 200), // RTP
        junk(0x81, 64),  // RTCP-ish
        junk(0xc8, 100),
        junk(70, 1500), // nobody's range
        junk(0x80, 3000),
    ]
}

/// What one side of a call heard.
struct Heard {
    /// Decoded PCM after the warm-up.
    pcm: Vec<i16>,
    /// Frames that were concealed or comfort noise among them.
    concealed: usize,
    stats: CallMediaStats,
}

/// One client's media: its socket and engine, driven the str0m way.
struct Client {
    socket: UdpSocket,
    local: SocketAddr,
    media: CallMedia,
    buf: Vec<u8>,
}

impl Client {
    /// A socket on loopback and an engine; returns the SDP offer too.
    async fn new() -> Result<(Client, String)> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let local = socket.local_addr()?;
        // No DTX: opus's voice detection takes a steady low tone for background noise
        // and stops sending most of it, which would test DTX instead of forwarding.
        let config = CallMediaConfig::with_opus(OpusConfig {
            dtx: false,
            ..OpusConfig::default()
        });
        let (media, offer) = CallMedia::new(local, config, Instant::now().into_std())?;
        let client = Client {
            socket,
            local,
            media,
            buf: vec![0; MAX_DATAGRAM],
        };
        Ok((client, offer))
    }

    /// Sends what the engine queued.
    async fn flush(&mut self) -> Result<()> {
        while let Some(t) = self.media.poll_transmit() {
            self.socket.send_to(&t.contents, t.destination).await?;
        }
        Ok(())
    }

    /// Sends a `freq` tone every 20 ms once connected and keeps what it hears, until
    /// both sides (counted in `done`) have heard enough. With `to_server` set, also
    /// sends the server garbage from this client's own address while the call runs.
    async fn talk(
        mut self,
        freq: f64,
        done: Arc<AtomicUsize>,
        sides: usize,
        to_server: Option<SocketAddr>,
    ) -> Result<Heard> {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut frame = vec![0i16; FRAME_SAMPLES];
        let mut sent: u64 = 0;
        let mut decoded = 0usize;
        let mut heard = Heard {
            pcm: Vec::new(),
            concealed: 0,
            stats: CallMediaStats::default(),
        };
        let mut finished = false;
        while done.load(Ordering::Acquire) < sides {
            self.flush().await?;
            while let Some(event) = self.media.poll_event() {
                if let CallMediaEvent::Disconnected { reason } = event {
                    bail!("media disconnected: {reason}");
                }
            }
            let deadline = self.media.poll_timeout().map(Instant::from_std);
            tokio::select! {
                received = self.socket.recv_from(&mut self.buf) => {
                    let (n, source) = received?;
                    let now = Instant::now().into_std();
                    self.media.handle_receive(now, source, self.local, &self.buf[..n]);
                }
                _ = tick.tick() => {
                    if self.media.is_connected() {
                        tone(freq, AMPLITUDE, RATE, sent, &mut frame);
                        sent += FRAME_SAMPLES as u64;
                        self.media.send_audio(&frame, Instant::now().into_std())?;
                        // A few rounds of garbage early in the call, from our own
                        // address: the server must keep our media going.
                        let frames = sent / FRAME_SAMPLES as u64;
                        if let Some(server) = to_server
                            && frames.is_multiple_of(10)
                            && frames <= 50
                        {
                            for datagram in garbage() {
                                self.socket.send_to(&datagram, server).await?;
                            }
                        }
                    }
                }
                () = sleep_until(deadline) => {
                    self.media.handle_timeout(Instant::now().into_std());
                }
            }
            let now = Instant::now().into_std();
            while let Some(f) = self.media.poll_audio(now) {
                if finished {
                    continue;
                }
                if f.kind == FrameKind::Decoded {
                    decoded += 1;
                }
                // Listen from the first decoded frame on, after the warm-up.
                if decoded > WARMUP {
                    if f.kind != FrameKind::Decoded {
                        heard.concealed += 1;
                    }
                    heard.pcm.extend_from_slice(&f.pcm);
                    if heard.pcm.len() >= FRAMES * FRAME_SAMPLES {
                        finished = true;
                        done.fetch_add(1, Ordering::AcqRel);
                    }
                }
            }
        }
        heard.stats = self.media.stats();
        Ok(heard)
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn offer_message(call_id: &str, sdp: &str) -> Value {
    json!({"v": 1, "type": "media", "call_id": call_id, "payload": {"kind": "offer", "sdp": sdp}})
}

/// Offers `sdp` and returns the server's SDP answer.
async fn negotiate(ws: &mut Ws, call_id: &str, offer: &str) -> Result<String> {
    ws.send(offer_message(call_id, offer)).await?;
    let answer = loop {
        let message = ws.recv().await.context("waiting for the sdp answer")?;
        match message["type"].as_str() {
            Some("media") => break message,
            Some("error" | "goodbye") => bail!("expected an answer, got {message}"),
            Some("call_state") if message["state"] == "disconnected" => {
                bail!("expected an answer, got {message}")
            }
            _ => continue,
        }
    };
    if answer["call_id"] != call_id || answer["payload"]["kind"] != "answer" {
        bail!("expected an answer, got {answer}");
    }
    answer["payload"]["sdp"]
        .as_str()
        .map(str::to_owned)
        .context("answer without sdp")
}

/// Media for both sides of `pair`: offer, answer, connect.
async fn connect_media(pair: &mut Pair) -> Result<(Client, Client)> {
    let (mut alice, offer) = Client::new().await?;
    let answer = negotiate(&mut pair.a, &pair.call_id, &offer).await?;
    alice.media.handle_answer(&answer)?;
    let (mut bob, offer) = Client::new().await?;
    let answer = negotiate(&mut pair.b, &pair.call_id, &offer).await?;
    bob.media.handle_answer(&answer)?;
    Ok((alice, bob))
}

/// Both sides talk until each has heard [`FRAMES`] frames; checks each heard the
/// other's tone and not its own.
async fn talk_and_check(
    alice: Client,
    bob: Client,
    garbage_to: Option<SocketAddr>,
) -> Result<(Heard, Heard)> {
    let done = Arc::new(AtomicUsize::new(0));
    let run = async {
        tokio::try_join!(
            alice.talk(ALICE_HZ, done.clone(), 2, garbage_to),
            bob.talk(BOB_HZ, done.clone(), 2, None),
        )
    };
    let (by_alice, by_bob) = timeout(GUARD * 3, run)
        .await
        .context("the call did not carry enough audio in time")??;
    for (who, heard, want, own) in [
        ("alice", &by_alice, BOB_HZ, ALICE_HZ),
        ("bob", &by_bob, ALICE_HZ, BOB_HZ),
    ] {
        let snr = tone_snr_windowed(&heard.pcm, want, RATE, FRAME_SAMPLES);
        let own_snr = tone_snr_windowed(&heard.pcm, own, RATE, FRAME_SAMPLES);
        assert!(
            snr >= MIN_SNR_DB,
            "{who} heard the other's {want} Hz tone at only {snr:.1} dB ({} of {FRAMES} frames concealed; {:?})",
            heard.concealed,
            heard.stats
        );
        assert!(
            own_snr < 0.0,
            "{who} heard its own {own} Hz tone back at {own_snr:.1} dB"
        );
    }
    Ok((by_alice, by_bob))
}

async fn media_stats(s: &TestServer) -> MediaServerStats {
    s.server.media_stats().await.expect("the media worker runs")
}

/// Two users in a 1:1 call each send a tone and hear the other's; the server forwards
/// the packets without decoding or encoding anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_to_one_call_carries_both_tones_forwarded_not_decoded() {
    init_logs();
    let s = start(|_| {}).await.unwrap();
    assert_eq!(s.server.media_candidate(), s.server.media_addr());
    assert!(s.server.media_addr().ip().is_loopback());
    let mut pair = s.call_pair("alice", "bob").await.unwrap();
    let (alice, bob) = connect_media(&mut pair).await.unwrap();

    let (by_alice, by_bob) = talk_and_check(alice, bob, None).await.unwrap();

    let stats = media_stats(&s).await;
    assert_eq!(stats.rooms, 1, "{stats:?}");
    assert_eq!(stats.connected, 2, "{stats:?}");
    // Every packet a client received went through the server's forwarding (nothing
    // was mixed), and the server forwarded no more than the clients sent.
    let received = by_alice.stats.packets_received + by_bob.stats.packets_received;
    let sent = by_alice.stats.packets_sent + by_bob.stats.packets_sent;
    assert!(
        received >= (2 * FRAMES) as u64,
        "{received} packets received"
    );
    assert!(
        (received..=sent).contains(&stats.forwarded),
        "{} packets forwarded, {received} received, {sent} sent: {stats:?}",
        stats.forwarded
    );
    assert_eq!(stats.decoded, 0, "a 1:1 call must not decode: {stats:?}");
    assert_eq!(stats.encoded, 0, "a 1:1 call must not encode: {stats:?}");
    assert_eq!(stats.offers_refused, 0, "{stats:?}");

    // The media counters are on /metrics too.
    let metrics = s.http("GET", "/metrics", None, None).await.unwrap().body;
    for series in [
        "ringwire_media_packets_received_total",
        "ringwire_media_packets_sent_total",
        "ringwire_media_participants 2",
    ] {
        assert!(metrics.contains(series), "{series} missing from\n{metrics}");
    }

    // Hanging up frees the room. The pong after it proves the hub has queued the
    // worker's CloseCall, which then comes before the stats request.
    pair.a
        .send(json!({"v": 1, "type": "hang_up", "call_id": pair.call_id}))
        .await
        .unwrap();
    pair.b.recv_state("disconnected").await.unwrap();
    pair.a.ping(1).await.unwrap();
    let stats = media_stats(&s).await;
    assert_eq!((stats.rooms, stats.participants), (0, 0), "{stats:?}");
    s.server.shut_down().await;
}

/// An SDP offer the engine cannot parse gets a typed error on the connection that
/// sent it; the call, the connection and the server go on, and a good offer afterwards
/// is answered. An answer from a client (the server always answers) is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_offer_gets_an_error_and_the_server_keeps_serving() {
    init_logs();
    let s = start(|_| {}).await.unwrap();
    let mut pair = s.call_pair("alice", "bob").await.unwrap();

    for sdp in ["garbage", "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n", ""] {
        pair.a
            .send(offer_message(&pair.call_id, sdp))
            .await
            .unwrap();
        let error = pair.a.recv_type("error").await.unwrap();
        assert_eq!(error["code"], "malformed", "{error}");
        assert_eq!(error["call_id"], pair.call_id.as_str(), "{error}");
        let message = error["message"].as_str().unwrap();
        assert!(message.starts_with("media offer refused: "), "{error}");
    }

    // An answer from a client is dropped without a word: the next thing bob hears
    // about it is the pong after it.
    pair.b
        .send(json!({"v": 1, "type": "media", "call_id": pair.call_id,
            "payload": {"kind": "answer", "sdp": "v=0\r\n"}}))
        .await
        .unwrap();
    pair.b
        .send(json!({"v": 1, "type": "ping", "seq": 99}))
        .await
        .unwrap();
    loop {
        let message = pair.b.recv().await.unwrap();
        assert!(
            message["type"] != "error" && message["type"] != "media",
            "{message}"
        );
        if message["type"] == "pong" {
            break;
        }
    }

    pair.assert_undisturbed().await.unwrap();
    let (mut alice, offer) = Client::new().await.unwrap();
    let answer = negotiate(&mut pair.a, &pair.call_id, &offer).await.unwrap();
    alice.media.handle_answer(&answer).unwrap();
    let stats = media_stats(&s).await;
    assert_eq!(stats.offers_refused, 3, "{stats:?}");
    assert_eq!(stats.participants, 2, "{stats:?}");
    s.server.shut_down().await;
}

/// Garbage datagrams to the media port, from strangers before and during a call and
/// from a participant's own address during it, are ignored: the call's audio is
/// undisturbed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_datagrams_are_ignored() {
    init_logs();
    let s = start(|_| {}).await.unwrap();
    let media_addr = s.server.media_addr();
    let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let sent = garbage().len() as u64;
    for datagram in garbage() {
        stranger.send_to(&datagram, media_addr).await.unwrap();
    }

    let mut pair = s.call_pair("alice", "bob").await.unwrap();
    let (alice, bob) = connect_media(&mut pair).await.unwrap();
    for datagram in garbage() {
        stranger.send_to(&datagram, media_addr).await.unwrap();
    }
    talk_and_check(alice, bob, Some(media_addr)).await.unwrap();
    // The socket is read in order, and the stranger's datagrams were queued before the
    // call's audio that was read since: every one of them has been seen.
    let stats = media_stats(&s).await;
    assert!(stats.datagrams_unknown >= 2 * sent, "{stats:?}");
    assert_eq!(stats.connected, 2, "{stats:?}");
    pair.assert_undisturbed().await.unwrap();
    let metrics = s.http("GET", "/metrics", None, None).await.unwrap().body;
    let ignored = metric(&metrics, "ringwire_media_packets_ignored_total");
    assert!(ignored >= 2 * sent, "{ignored} ignored:\n{metrics}");
    s.server.shut_down().await;
}

/// Shutting down stops the media worker: its port is free again.
#[tokio::test]
async fn shut_down_releases_the_media_port() {
    init_logs();
    let s = start(|_| {}).await.unwrap();
    let addr = s.server.media_addr();
    assert_ne!(addr.port(), 0);
    assert!(s.server.media_stats().await.is_some());
    s.server.shut_down().await;
    UdpSocket::bind(addr)
        .await
        .expect("the media port is free after shutdown");
}

/// The value of an unlabelled series in a metrics text.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from\n{text}"))
}
