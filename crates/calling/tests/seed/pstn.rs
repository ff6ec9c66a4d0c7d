//! The seed's PSTN table, one test per row, through the SDK's `CallAgent`/`Call`: the
//! real server with a `[pstn]` trunk pointing at sipp (the trunk's far end, a UAS on
//! loopback) and native users whose tokens may call phones (`4:+15551230000`).
//!
//! The 1:1 row uses sipp's built-in `uas` scenario with RTP echo: the caller hears its
//! own tone back after opus -> G.711 (PCMU) -> sipp -> G.711 -> opus. The group rows
//! use a scenario that answers and plays the phone's amplitude-modulated tone
//! ([`PHONE_HZ`]) until our BYE: every user hears the phone and the other user, and
//! sees the phone as a connected participant. At the end everyone hangs up and sipp
//! finishes its scenario cleanly (it got its BYE).
//!
//! Skipped (with a message) when `sipp` is not installed (`apt install sip-tester`),
//! except under CI (`CI` set), where a missing sipp fails them: setup installs it.

use std::f64::consts::TAU;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use crate::kit::*;
use ringwire_calling::{AcceptCallOptions, Call, HangUpOptions, JoinCallOptions, StartCallOptions};
use ringwire_media::audio_io::MemoryTap;
use ringwire_pstn::g711::G711;
use ringwire_signaling::{CallState, Identifier, ParticipantState};

/// The number the users dial (the trunk allows country code 1).
const NUMBER: &str = "+15551230000";
/// The phone's voice in the group rows.
const PHONE_HZ: f64 = 600.0;
/// Longest sipp may take to bind its port or to finish its call.
const SIPP_GUARD: Duration = Duration::from_secs(30);

/// A sipp process, killed when dropped if it has not exited.
struct Sipp {
    child: Child,
    addr: SocketAddr,
    /// Holds the scenario files until sipp is gone.
    _dir: tempfile::TempDir,
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sipp {
    /// sipp as the trunk's UAS for one call: RTP echo (`talk` false) or the phone's
    /// voice until our BYE (`talk` true).
    async fn start(talk: bool) -> Sipp {
        let dir = tempfile::tempdir().unwrap();
        let (port, media) = (free_port(), free_port());
        let mut cmd = Command::new("sipp");
        cmd.current_dir(dir.path());
        if talk {
            std::fs::write(dir.path().join("talk.xml"), TALK).unwrap();
            // One second of the phone's voice at 8 kHz: whole hertz, so it loops
            // seamlessly; AM, so the mixer's DTX does not thin it out as noise.
            let pcm: Vec<i16> = (0..8000u32)
                .map(|n| {
                    let t = f64::from(n) / 8000.0;
                    let envelope = 1.0 + 0.3 * (TAU * 3.0 * t).sin();
                    (8000.0 / 1.3 * envelope * (TAU * PHONE_HZ * t).sin()).round() as i16
                })
                .collect();
            let mut ulaw = Vec::new();
            G711::Pcmu.encode(&pcm, &mut ulaw);
            std::fs::write(dir.path().join("voice.ulaw"), ulaw).unwrap();
            cmd.args(["-sf", "talk.xml"]);
        } else {
            cmd.args(["-sn", "uas", "-rtp_echo"]);
        }
        cmd.args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-mi", "127.0.0.1", "-mp", &media.to_string()])
            .args(["-bind_local", "-m", "1", "-nostdin", "-timeout", "90s"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let sipp = Sipp {
            child: cmd.spawn().expect("sipp starts"),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _dir: dir,
        };
        // Bound once our own bind of its port fails.
        let started = tokio::time::Instant::now();
        while UdpSocket::bind(sipp.addr).is_ok() {
            assert!(started.elapsed() < SIPP_GUARD, "sipp never bound {port}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        sipp
    }

    /// Waits for sipp to finish its scenario (`-m 1`: after one call) and checks it
    /// ended cleanly.
    async fn until_done(&mut self) {
        let started = tokio::time::Instant::now();
        let status: ExitStatus = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                started.elapsed() < SIPP_GUARD,
                "sipp did not finish its call"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(status.success(), "sipp failed: {status}");
    }
}

/// Answers with PCMU, plays `voice.ulaw` from the ACK on, answers our BYE.
const TALK: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="a phone that talks">
  <recv request="INVITE" />
  <send retrans="500"><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

  ]]></send>
  <recv request="ACK" />
  <nop><action><exec rtp_stream="voice.ulaw,-1,0" /></action></nop>
  <recv request="BYE" />
  <send><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

  ]]></send>
</scenario>"#;

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
    if !found {
        eprintln!("sipp not installed; skipping");
    }
    found
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn phone() -> Identifier {
    let phone = Identifier::phone(NUMBER).unwrap();
    assert_eq!(phone.to_string(), format!("4:{NUMBER}"));
    phone
}

/// Waits until `call` is connected and lists the phone as a connected participant.
async fn until_phone_connected(call: &Call) {
    until_state(call, CallState::Connected).await;
    until_participant(call, &phone(), "connected", |p| {
        p.state() == ParticipantState::Connected
    })
    .await;
}

/// alice and bob in a call with the phone: each sees the other and the phone
/// connected, and hears the mix of the other and the phone, not themselves.
async fn until_all_hear_each_other(
    alice: (&User, &Call, &MemoryTap),
    bob: (&User, &Call, &MemoryTap),
) {
    for ((me, call, _), other) in [(alice, bob.0), (bob, alice.0)] {
        until_phone_connected(call).await;
        until_participant(call, &other.id, "connected", |p| {
            p.state() == ParticipantState::Connected
        })
        .await;
        assert_eq!(call.remote_participants().len(), 2, "{}", me.id);
    }
    until_hearing_mix("alice", alice.2, &[BOB_HZ, PHONE_HZ], &[ALICE_HZ]).await;
    until_hearing_mix("bob", bob.2, &[ALICE_HZ, PHONE_HZ], &[BOB_HZ]).await;
    for (who, ear) in [("alice", alice.2), ("bob", bob.2)] {
        eprintln!(
            "{who} hears the phone at {:.1} dB",
            ear.tone_snr(PHONE_HZ, WINDOW)
        );
    }
}

/// Both hang up; the last human leaving ends the call, so the phone gets its BYE.
async fn everyone_hangs_up(calls: &[&Call], sipp: &mut Sipp) {
    for call in calls {
        call.hang_up(HangUpOptions::new()).await.unwrap();
    }
    for call in calls {
        until_state(call, CallState::Disconnected).await;
    }
    sipp.until_done().await;
}

/// PSTN: 1:1 call with a phone participant. alice calls the number; sipp answers and
/// echoes: alice sees the phone connected and hears her own tone back through G.711,
/// then hangs up and the phone gets its BYE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1to1_call_with_a_phone_participant() {
    if !have_sipp() {
        return;
    }
    let mut sipp = Sipp::start(false).await;
    let s = PstnServer::start(sipp.addr).await;
    let alice = phone_user(&s, "alice", 1).await;

    let (audio, ear) = voice(ALICE_HZ);
    let a = alice
        .agent
        .start_call(&[phone()], StartCallOptions::new().with_audio(audio))
        .await
        .unwrap();
    until_phone_connected(&a).await;
    assert_eq!(a.remote_participants().len(), 1);
    within("alice's media", a.wait_media_connected())
        .await
        .unwrap();
    until_hearing("alice", &ear, &[ALICE_HZ], &[]).await;
    eprintln!(
        "alice's tone back through G.711: {:.1} dB",
        ear.tone_snr(ALICE_HZ, WINDOW)
    );

    everyone_hangs_up(&[&a], &mut sipp).await;
    s.server.shut_down().await;
}

/// PSTN: group call with phone participants. alice calls bob and the phone at once;
/// bob accepts: both see the phone connected and hear it and each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_call_with_phone_participants() {
    if !have_sipp() {
        return;
    }
    let mut sipp = Sipp::start(true).await;
    let s = PstnServer::start(sipp.addr).await;
    let alice = phone_user(&s, "alice", 1).await;
    let bob = phone_user(&s, "bob", 2).await;

    let (audio, alice_ear) = voice(ALICE_HZ);
    let a = alice
        .agent
        .start_call(
            &[bob.id.clone(), phone()],
            StartCallOptions::new().with_audio(audio),
        )
        .await
        .unwrap();
    let ringing = incoming(&bob).await;
    assert_eq!(ringing.id(), a.id());
    let (audio, bob_ear) = voice(BOB_HZ);
    let b = ringing
        .accept(AcceptCallOptions::new().with_audio(audio))
        .await
        .unwrap();
    until_all_hear_each_other((&alice, &a, &alice_ear), (&bob, &b, &bob_ear)).await;

    everyone_hangs_up(&[&a, &b], &mut sipp).await;
    s.server.shut_down().await;
}

/// PSTN: promote a 1:1 phone call to a group call. alice calls the phone, hears it,
/// then adds bob: nobody is dropped; the phone stays connected for both, and both
/// hear it and each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_a_1to1_phone_call_to_a_group_call() {
    if !have_sipp() {
        return;
    }
    let mut sipp = Sipp::start(true).await;
    let s = PstnServer::start(sipp.addr).await;
    let alice = phone_user(&s, "alice", 1).await;
    let bob = phone_user(&s, "bob", 2).await;

    let (audio, alice_ear) = voice(ALICE_HZ);
    let a = alice
        .agent
        .start_call(&[phone()], StartCallOptions::new().with_audio(audio))
        .await
        .unwrap();
    until_phone_connected(&a).await;
    until_hearing("alice", &alice_ear, &[PHONE_HZ], &[ALICE_HZ]).await;

    a.add_participant(&bob.id).await.unwrap();
    let ringing = incoming(&bob).await;
    assert_eq!(ringing.id(), a.id());
    assert_eq!(ringing.caller(), &alice.id);
    let (audio, bob_ear) = voice(BOB_HZ);
    let b = ringing
        .accept(AcceptCallOptions::new().with_audio(audio))
        .await
        .unwrap();
    until_all_hear_each_other((&alice, &a, &alice_ear), (&bob, &b, &bob_ear)).await;
    assert_eq!(a.state(), CallState::Connected);

    everyone_hangs_up(&[&a, &b], &mut sipp).await;
    s.server.shut_down().await;
}

/// PSTN: dial out to a phone number from a group call. alice and bob are in group
/// call `standup`; alice adds the number: both see the phone connected and hear it
/// and each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_out_to_a_phone_number_from_a_group_call() {
    if !have_sipp() {
        return;
    }
    let mut sipp = Sipp::start(true).await;
    let s = PstnServer::start(sipp.addr).await;
    let alice = phone_user(&s, "alice", 1).await;
    let bob = phone_user(&s, "bob", 2).await;

    let (alice_audio, alice_ear) = voice(ALICE_HZ);
    let (bob_audio, bob_ear) = voice(BOB_HZ);
    let audio = [Mutex::new(Some(alice_audio)), Mutex::new(Some(bob_audio))];
    let calls = join_all(&[&alice, &bob], "standup", |i| {
        JoinCallOptions::new().with_audio(audio[i].lock().unwrap().take().unwrap())
    })
    .await;
    let (a, b) = (&calls[0], &calls[1]);

    a.add_participant(&phone()).await.unwrap();
    until_all_hear_each_other((&alice, a, &alice_ear), (&bob, b, &bob_ear)).await;

    everyone_hangs_up(&[a, b], &mut sipp).await;
    s.server.shut_down().await;
}
