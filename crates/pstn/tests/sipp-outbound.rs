//! Outbound phone legs against a real SIP peer: sipp as the trunk's far end.
//! Skipped (with a message) when `sipp` is not installed (`apt install sip-tester`),
//! except under CI (`CI` set), where a missing sipp fails them: setup installs it.
// Tests: a failed setup step should fail the test loudly.
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, UdpSocket as StdUdp};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use ringwire_media::analysis::{tone, tone_snr};
use ringwire_media::codec::{Channels, Decoder, Encoder, OpusConfig};
use ringwire_pstn::media::PhoneMediaConfig;
use ringwire_pstn::sip::{DialRequest, LegInput, LegOutput, SipEndpoint, dial};
use ringwire_signaling::controller::GatewayEvent;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// A sipp process killed when dropped.
struct Sipp {
    child: Child,
    /// Holds the scenario files until sipp is gone.
    _dir: tempfile::TempDir,
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    StdUdp::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn have_sipp() -> bool {
    let found = Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    // `cargo xtask setup` installs sipp, so CI must never skip these tests.
    assert!(
        found || std::env::var_os("CI").is_none(),
        "sipp is missing; run `cargo xtask setup`"
    );
    found
}

/// Starts sipp as a UAS on a free port: the built-in `uas` scenario with RTP echo,
/// or a scenario that answers every INVITE with `status`.
fn sipp_uas(status: Option<u16>) -> (Sipp, SocketAddr) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let media = free_port();
    let mut cmd = Command::new("sipp");
    cmd.current_dir(dir.path());
    match status {
        None => {
            cmd.args(["-sn", "uas", "-rtp_echo"]);
        }
        Some(code) => {
            let xml = format!(
                r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="refuse">
  <recv request="INVITE" />
  <send><![CDATA[

      SIP/2.0 {code} Refused
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

  ]]></send>
  <recv request="ACK" />
</scenario>"#
            );
            std::fs::write(dir.path().join("refuse.xml"), xml).unwrap();
            cmd.args(["-sf", "refuse.xml"]);
        }
    }
    cmd.args([
        "-i",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-mi",
        "127.0.0.1",
    ])
    .args([
        "-mp",
        &media.to_string(),
        "-bind_local",
        "-m",
        "1",
        "-nostdin",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let child = cmd.spawn().expect("sipp starts");
    (
        Sipp { child, _dir: dir },
        SocketAddr::from(([127, 0, 0, 1], port)),
    )
}

async fn start_leg(trunk: SocketAddr) -> (mpsc::Sender<LegInput>, mpsc::Receiver<LegOutput>) {
    let sip = SipEndpoint::bind("127.0.0.1:0".parse().unwrap(), None, None)
        .await
        .unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let rtp = socket.local_addr().unwrap();
    let request = DialRequest {
        trunk,
        number: "+15551230000".into(),
        caller_id: Some("+15550001111".into()),
        rtp,
        ring_timeout: Duration::from_secs(10),
        max_duration: Duration::from_secs(60),
        media: PhoneMediaConfig {
            local: rtp,
            media_timeout: Duration::from_secs(10),
            ssrc: 0x1234_5678,
        },
        credentials: None,
    };
    let (in_tx, in_rx) = mpsc::channel(64);
    let (out_tx, out_rx) = mpsc::channel(256);
    tokio::spawn(dial(sip, request, socket, in_rx, out_tx));
    (in_tx, out_rx)
}

async fn next_event(out: &mut mpsc::Receiver<LegOutput>) -> GatewayEvent {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), out.recv()).await {
            Ok(Some(LegOutput::Event(e))) => return e,
            Ok(Some(_)) => {}
            Ok(None) => panic!("leg output closed"),
            Err(_) => panic!("no gateway event within 20 s"),
        }
    }
}

/// The phone leg's audio round-trips through a real SIP peer: a 1030 Hz tone sent
/// as the call's audio comes back (sipp echoes RTP) as the phone's voice.
#[tokio::test(flavor = "multi_thread")]
async fn outbound_call_echoes_a_tone_through_g711() {
    if !have_sipp() {
        eprintln!("sipp not installed; skipping");
        return;
    }
    let (_sipp, trunk) = sipp_uas(None);
    tokio::time::sleep(Duration::from_millis(300)).await; // let sipp bind its port
    let (input, mut out) = start_leg(trunk).await;
    // sipp's uas rings (180) before it answers.
    let mut event = next_event(&mut out).await;
    while event == GatewayEvent::Ringing {
        event = next_event(&mut out).await;
    }
    assert_eq!(event, GatewayEvent::Answered);

    let mut enc = Encoder::new(OpusConfig {
        dtx: false,
        ..OpusConfig::default()
    })
    .unwrap();
    let mut dec = Decoder::new(Channels::Mono).unwrap();
    let mut heard = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for i in 0..150u64 {
        tick.tick().await;
        let mut pcm = vec![0i16; 960];
        tone(1030.0, 8000.0, 48000, i * 960, &mut pcm);
        let packet: Arc<[u8]> = enc.encode_to_vec(&pcm).unwrap().into();
        input.send(LegInput::Audio(packet)).await.unwrap();
        while let Ok(o) = out.try_recv() {
            match o {
                LegOutput::Audio(frame) => {
                    let mut pcm = vec![0i16; 960];
                    let n = dec.decode(&frame.packet, &mut pcm).unwrap();
                    heard.extend_from_slice(&pcm[..n]);
                }
                LegOutput::Event(e) => panic!("unexpected {e:?}"),
                LegOutput::Dtmf(_) => {}
            }
        }
    }
    assert!(
        heard.len() >= 960 * 50,
        "only {} samples came back",
        heard.len()
    );
    let snr = tone_snr(&heard[960 * 10..], 1030.0, 48000);
    assert!(snr > 10.0, "tone not heard back: snr {snr} dB");
    input.send(LegInput::HangUp).await.unwrap();
    let GatewayEvent::Ended(reason) = next_event(&mut out).await else {
        panic!("expected the end")
    };
    assert_eq!(reason.code, 0);
}

/// Final responses map one to one to end reasons.
#[tokio::test(flavor = "multi_thread")]
async fn busy_and_unavailable_map_to_end_reasons() {
    if !have_sipp() {
        eprintln!("sipp not installed; skipping");
        return;
    }
    for (status, code) in [(486, 486), (480, 480), (603, 603), (404, 404)] {
        let (_sipp, trunk) = sipp_uas(Some(status));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (_input, mut out) = start_leg(trunk).await;
        let GatewayEvent::Ended(reason) = next_event(&mut out).await else {
            panic!("{status}: expected the end")
        };
        assert_eq!(reason.code, code, "{status}: {reason:?}");
    }
}
