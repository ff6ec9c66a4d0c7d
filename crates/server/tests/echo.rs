//! The echo test service (`8:echo123`) on a real server: a real str0m client calls it,
//! sends a tone, and must hear the opening chime, its own tone back, the closing
//! chime, and then the service hangs up with a normal end reason. Checked by content.

#![allow(clippy::unwrap_used)] // Helpers outside #[test] fns unwrap too.

mod common;

use std::time::Duration;

use anyhow::{Context, Result, bail};
use common::{GUARD, start};
use ringwire_media::analysis::{goertzel_power, mean_square, tone};
use ringwire_media::client::{CallMedia, CallMediaConfig, CallMediaEvent};
use ringwire_media::codec::{FRAME_SAMPLES, OpusConfig, SAMPLE_RATE};
use ringwire_media::jitter::FrameKind;
use ringwire_media::rtc::MAX_DATAGRAM;
use serde_json::{Value, json};
use tokio::net::UdpSocket;
use tokio::time::{Instant, MissedTickBehavior, timeout};

const CALLER_HZ: f64 = 523.0;
/// The opening chime's first note (crates/media/src/echo.rs).
const CHIME_HZ: f64 = 660.0;

/// The share of a window's power at `freq` (0..1), summed over 20 ms windows.
fn share(samples: &[i16], freq: f64) -> f64 {
    let (mut t, mut all) = (0.0, 0.0);
    for w in samples.chunks_exact(FRAME_SAMPLES) {
        t += goertzel_power(w, freq, SAMPLE_RATE);
        all += mean_square(w);
    }
    t / all.max(1e-9)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn echo_service_plays_back_the_callers_audio_and_hangs_up() -> Result<()> {
    let s = start(|_| {}).await?;
    let mut ws = s.authed("alice").await?;
    let call_id = "echo-test";
    ws.send(json!({"v": 1, "type": "start_call", "call_id": call_id, "targets": ["8:echo123"]}))
        .await?;
    ws.recv_state("connected").await?;

    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let local = socket.local_addr()?;
    let config = CallMediaConfig::with_opus(OpusConfig {
        dtx: false,
        ..OpusConfig::default()
    });
    let (mut media, offer) = CallMedia::new(local, config, Instant::now().into_std())?;
    ws.send(json!({"v": 1, "type": "media", "call_id": call_id, "payload": {"kind": "offer", "sdp": offer}}))
        .await?;
    let answer = ws.recv_type("media").await?;
    media.handle_answer(answer["payload"]["sdp"].as_str().context("answer sdp")?)?;

    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut frame = vec![0i16; FRAME_SAMPLES];
    let mut sent = 0u64;
    // Every frame played, decoded or not, in playout order.
    let mut heard: Vec<(FrameKind, Vec<i16>)> = Vec::new();
    let ended: Value = timeout(GUARD * 4, async {
        loop {
            while let Some(t) = media.poll_transmit() {
                socket.send_to(&t.contents, t.destination).await?;
            }
            while let Some(event) = media.poll_event() {
                if let CallMediaEvent::Disconnected { reason } = event {
                    bail!("media disconnected: {reason}");
                }
            }
            let deadline = media.poll_timeout().map(Instant::from_std);
            tokio::select! {
                received = socket.recv_from(&mut buf) => {
                    let (n, source) = received?;
                    media.handle_receive(Instant::now().into_std(), source, local, &buf[..n]);
                }
                _ = tick.tick() => {
                    if media.is_connected() {
                        tone(CALLER_HZ, 8000.0, SAMPLE_RATE, sent, &mut frame);
                        sent += FRAME_SAMPLES as u64;
                        media.send_audio(&frame, Instant::now().into_std())?;
                    }
                }
                message = ws.recv() => {
                    let message = message?;
                    if message["type"] == "call_state" && message["state"] == "disconnected" {
                        return Ok(message);
                    }
                }
                () = async {
                    match deadline {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => media.handle_timeout(Instant::now().into_std()),
            }
            let now = Instant::now().into_std();
            while let Some(f) = media.poll_audio(now) {
                heard.push((f.kind, f.pcm));
            }
        }
    })
    .await
    .context("the echo test did not end in time")??;

    assert_eq!(ended["end_reason"]["code"], 0, "a normal end: {ended}");
    let decoded: Vec<i16> = heard
        .iter()
        .filter(|(kind, _)| *kind == FrameKind::Decoded)
        .flat_map(|(_, pcm)| pcm.iter().copied())
        .collect();
    // Chime (about 0.4 s), then 5 s of our tone, then the closing chime.
    let frames = decoded.len() / FRAME_SAMPLES;
    assert!(frames >= 200, "heard only {frames} decoded frames");
    let opening = &decoded[..10 * FRAME_SAMPLES];
    assert!(share(opening, CHIME_HZ) > 0.3, "the opening chime first");
    let middle = &decoded[40 * FRAME_SAMPLES..(frames - 40) * FRAME_SAMPLES];
    assert!(
        share(middle, CALLER_HZ) > 0.5,
        "our own tone comes back: share {:.2}",
        share(middle, CALLER_HZ)
    );
    let stats = s.server.media_stats().await.context("media worker")?;
    assert_eq!(stats.rooms, 0, "the echo call's room is gone: {stats:?}");
    Ok(())
}
