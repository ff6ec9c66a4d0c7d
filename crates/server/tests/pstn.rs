//! The PSTN gateway end to end: the real server with a `[pstn]` trunk pointing at sipp
//! (the trunk's far end, a UAS on loopback), and a native client (ringwire-calling)
//! calling `4:+15551230000`.
//!
//! - sipp answers and echoes RTP: the client hears its own tone back after it went
//!   opus -> G.711 (PCMU) -> sipp -> G.711 -> opus, checked by Goertzel SNR; the
//!   client hangs up, the gateway sends BYE, sipp finishes its scenario cleanly.
//! - sipp answers 486 / 603: the call ends at the client with that end reason.
//! - sipp answers and then hangs up (BYE): the call ends at the client as "the other
//!   participant hung up".
//! - sipp sends early media (183 with SDP, then a 600 Hz tone as PCMU): the caller's
//!   call shows EarlyMedia and the caller hears the tone; hanging up CANCELs.
//! - sipp rings and never answers: the gateway gives up after the ring timeout with
//!   CANCEL, and the client hears 408.
//! - A destination country the trunk does not allow ends with 403 before any SIP; so
//!   does a dial without the `pstn` scope; without `[pstn]` phone calls end with 480.
//! - Group calls: dial-out from a group call, and a 1:1 phone call promoted to a group
//!   call; everyone hears the others (the phone's AM tone through G.711 into the mixer).
//! - A trunk that challenges with digest gets our credentials; per-caller caps.
//! - Inbound: sipp as the phone (UAC) calls a number the server owns, dispatched to
//!   user bob: bob's client gets the incoming call from `4:+15557654321`, accepts and
//!   hears the phone's 600 Hz tone (PCMU -> opus); declining answers 603; numbers
//!   not owned get 404, an offline user 480; an unlisted source gets no answer at
//!   all, and garbage from a listed one breaks nothing.
//!
//! Skipped (with a message) when `sipp` is not installed (`apt install sip-tester`),
//! except under CI (`CI` set), where a missing sipp fails them: setup installs it.
//! Timeouts only turn a hang into a failure; nothing asserts on how long anything takes.

#![allow(clippy::unwrap_used)] // Helpers outside #[test] fns unwrap too.

#[path = "common/phone.rs"]
mod phone;

use phone::{free_udp_port, have_sipp, until_state};

use std::net::{SocketAddr, UdpSocket as StdUdp};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use ringwire_calling::{
    AudioHandle, AudioOptions, ConnectOptions, Endpoint, EventStream, SignalingClient,
};
use std::f64::consts::TAU;

use ringwire_media::analysis::{goertzel_power, mean_square, tone};
use ringwire_media::audio_io::{
    AudioIoError, AudioSource, MemorySink, MemoryTap, SourceState, ToneSource,
};
use ringwire_media::client::CallMediaConfig;
use ringwire_media::codec::OpusConfig;
use ringwire_pstn::config::{Credentials, OutboundTrunk, PortRange, PstnConfig, SipTransport};
use ringwire_pstn::g711::G711;
use ringwire_server::{RunningServer, Server, ServerConfig};
use ringwire_signaling::{
    CallId, CallState, EndReason, Event, Identifier, JoinOptions, PhoneNumber, Scope, Scopes,
    UserId,
};

/// Longest any single expected thing may take before the test fails.
const GUARD: Duration = Duration::from_secs(20);
/// The number the client dials (the trunk allows country code 1).
const NUMBER: &str = "+15551230000";
/// The client's tone: below G.711's 4 kHz band edge, a whole number of cycles in 20 ms.
const TONE_HZ: f64 = 1000.0;

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
    /// Waits until sipp has bound its SIP port (our own bind of it fails).
    async fn until_listening(&self) {
        let started = tokio::time::Instant::now();
        while StdUdp::bind(self.addr).is_ok() {
            assert!(started.elapsed() < GUARD, "sipp never bound {}", self.addr);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for sipp to finish its scenario (`-m 1`: after one call).
    async fn exit(&mut self) -> ExitStatus {
        let started = tokio::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(started.elapsed() < GUARD, "sipp did not finish its call");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Samples at 48 kHz in `d`: a whole window must have played before it is judged.
fn samples(d: Duration) -> u64 {
    (d.as_secs_f64() * 48_000.0) as u64
}

/// What the sipp UAS does with our INVITE.
#[derive(Debug, Clone, Copy)]
enum Far {
    /// The built-in `uas` scenario with RTP echo: rings, answers, waits for our BYE.
    AnswerAndEcho,
    /// Answers with this final status and waits for the ACK.
    Refuse(u16),
    /// Declines (603) an INVITE whose From is this number; any other From fails the
    /// scenario (sipp exits non-zero).
    DeclineFrom(&'static str),
    /// Answers, then hangs up itself after a second (BYE).
    AnswerThenHangUp,
    /// Rings until CANCELled, then answers 487.
    RingForever,
    /// 183 with SDP and a [`RINGBACK_HZ`] tone until CANCELled, then 487.
    EarlyMediaUntilCancelled,
    /// Answers, then plays an amplitude-modulated [`PHONE_VOICE_HZ`] tone until our BYE.
    AnswerAndTalk,
    /// Challenges the INVITE (401, digest MD5 with qop=auth); answers the retry
    /// carrying [`TRUNK_USER`]'s credentials with 200 (then waits for our BYE), any
    /// other with 403.
    Challenge,
}

/// The phone's voice in the group call test.
const PHONE_VOICE_HZ: f64 = 600.0;

/// The digest credentials the challenging trunk accepts.
const TRUNK_USER: (&str, &str) = ("ringwire", "s3cret");

/// The tone sipp plays as early media.
const RINGBACK_HZ: f64 = 600.0;

/// A 200 OK with an SDP answer (PCMU) on sipp's media port.
const OK_WITH_SDP: &str = r#"<send retrans="500"><![CDATA[

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

  ]]></send>"#;

/// A provisional 180 for the last request.
const RINGING: &str = r#"<send><![CDATA[

      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

  ]]></send>"#;

fn scenario(far: Far) -> Option<String> {
    let body = match far {
        Far::AnswerAndEcho => return None,
        Far::DeclineFrom(number) => format!(
            r#"<recv request="INVITE">
    <action>
      <ereg regexp="sip:\{number}@" search_in="hdr" header="From:" check_it="true" assign_to="from" />
    </action>
  </recv>
  <send><![CDATA[

      SIP/2.0 603 Decline
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      X-Seen-From: [$from]
      Content-Length: 0

  ]]></send>
  <recv request="ACK" />"#
        ),
        Far::Refuse(code) => format!(
            r#"<recv request="INVITE" />
  <send><![CDATA[

      SIP/2.0 {code} Refused
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

  ]]></send>
  <recv request="ACK" />"#
        ),
        // RFC 3261 §12.2.1.1: the BYE goes to the caller's Contact (rrs), From and To
        // swapped relative to the dialog's requests from the caller.
        Far::AnswerThenHangUp => format!(
            r#"<recv request="INVITE" rrs="true">
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="caller" />
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="callee" />
    </action>
  </recv>
  {OK_WITH_SDP}
  <recv request="ACK" />
  <pause milliseconds="1000" />
  <send retrans="500"><![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: [$callee];tag=[pid]SIPpTag01[call_number]
      To: [$caller]
      Call-ID: [call_id]
      CSeq: 1 BYE
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="200" />"#
        ),
        Far::RingForever => format!(
            r#"<recv request="INVITE">{REMEMBER_INVITE}</recv>
  {RINGING}
  {CANCELLED}"#
        ),
        Far::AnswerAndTalk => format!(
            r#"<recv request="INVITE" />
  {OK_WITH_SDP}
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

  ]]></send>"#
        ),
        Far::Challenge => format!(
            r#"<recv request="INVITE" />
  <send><![CDATA[

      SIP/2.0 401 Unauthorized
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      WWW-Authenticate: Digest realm="trunk.test", nonce="n[pid]x[call_number]", algorithm=MD5, qop="auth"
      Content-Length: 0

  ]]></send>
  <recv request="ACK" />
  <recv request="INVITE">
    <action><verifyauth assign_to="authvalid" username="{user}" password="{password}" /></action>
  </recv>
  <nop hide="true" test="authvalid" next="goodauth" />
  <send><![CDATA[

      SIP/2.0 403 Forbidden
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

  ]]></send>
  <recv request="ACK" next="done" />
  <label id="goodauth" />
  {OK_WITH_SDP}
  <recv request="ACK" />
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
  <label id="done" />"#,
            user = TRUNK_USER.0,
            password = TRUNK_USER.1,
        ),
        Far::EarlyMediaUntilCancelled => format!(
            r#"<recv request="INVITE">{REMEMBER_INVITE}</recv>
  <send><![CDATA[

      SIP/2.0 183 Session Progress
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
  <nop><action><exec rtp_stream="ringback.ulaw,-1,0" /></action></nop>
  {CANCELLED}"#
        ),
    };
    Some(format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="ringwire far end">
  {body}
</scenario>"#
    ))
}

/// Keeps what the 487 needs of the INVITE.
const REMEMBER_INVITE: &str = r#"
    <action>
      <ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" assign_to="cseq" />
      <ereg regexp=".*" search_in="hdr" header="Via:" assign_to="via" />
    </action>
  "#;

/// Waits for our CANCEL, answers it and the INVITE (487), and takes the ACK. The 487
/// answers the INVITE's transaction, so it carries the INVITE's Via (RFC 3261 §9.2),
/// not the CANCEL's.
const CANCELLED: &str = r#"<recv request="CANCEL" />
  <send><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

  ]]></send>
  <send><![CDATA[

      SIP/2.0 487 Request Terminated
      Via: [$via]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      CSeq: [$cseq] INVITE
      Content-Length: 0

  ]]></send>
  <recv request="ACK" />"#;

/// sipp as a UAS for one call, doing `far`.
async fn sipp_uas(far: Far) -> Sipp {
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let media = free_udp_port();
    let mut cmd = Command::new("sipp");
    cmd.current_dir(dir.path());
    match scenario(far) {
        None => {
            cmd.args(["-sn", "uas", "-rtp_echo"]);
        }
        Some(xml) => {
            std::fs::write(dir.path().join("far.xml"), xml).unwrap();
            // One second of the early-media tone, 8 kHz μ-law, for `rtp_stream`.
            let mut pcm = vec![0i16; 8000];
            tone(RINGBACK_HZ, 8000.0, 8000, 0, &mut pcm);
            let mut ulaw = Vec::new();
            G711::Pcmu.encode(&pcm, &mut ulaw);
            std::fs::write(dir.path().join("ringback.ulaw"), ulaw).unwrap();
            // One second of the phone's voice: 3 Hz AM, so the loop is seamless and
            // the mixer's encoder does not take it for steady background noise.
            let voice: Vec<i16> = (0..8000)
                .map(|n| am_sample(PHONE_VOICE_HZ, 8000, n, 8000.0))
                .collect();
            let mut ulaw = Vec::new();
            G711::Pcmu.encode(&voice, &mut ulaw);
            std::fs::write(dir.path().join("voice.ulaw"), ulaw).unwrap();
            cmd.args(["-sf", "far.xml"]);
        }
    }
    cmd.args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-mi", "127.0.0.1", "-mp", &media.to_string()])
        .args(["-bind_local", "-m", "1", "-nostdin", "-timeout", "60s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let sipp = Sipp {
        child: cmd.spawn().expect("sipp starts"),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        _dir: dir,
    };
    sipp.until_listening().await;
    sipp
}

/// The server with one outbound trunk to `trunk` for country code 1.
async fn server(trunk: SocketAddr) -> (RunningServer, tempfile::TempDir) {
    server_with(trunk, |_| {}).await
}

/// [`server`] with `configure` applied to its `[pstn]` section.
async fn server_with(
    trunk: SocketAddr,
    configure: impl FnOnce(&mut PstnConfig),
) -> (RunningServer, tempfile::TempDir) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let mut pstn = PstnConfig {
        sip_listen: "127.0.0.1:0".parse().unwrap(),
        tls: None,
        advertised_ip: None,
        // Below the ephemeral range, so sipp's ports never collide with it.
        rtp_ports: PortRange {
            first: 21000,
            last: 21199,
        },
        outbound: vec![OutboundTrunk {
            name: "sipp".into(),
            address: trunk,
            transport: SipTransport::Udp,
            tls: None,
            credentials: None,
            caller_ids: vec!["+15550001111".into()],
            allowed_country_codes: vec!["1".into()],
        }],
        inbound: Vec::new(),
        dispatch: Vec::new(),
        ring_timeout: Duration::from_secs(20),
        max_call_duration: Duration::from_secs(300),
        media_timeout: Duration::from_secs(20),
        max_calls_per_identity: 4,
        calls_per_minute_per_identity: 10,
    };
    configure(&mut pstn);
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

/// Sample `n` of a `freq` Hz sine at `rate`, amplitude-modulated ±30 % at 3 Hz
/// (peak `peak`): both whole hertz, so a second of it loops seamlessly.
fn am_sample(freq: f64, rate: u32, n: u64, peak: f64) -> i16 {
    let t = (n % u64::from(rate)) as f64 / f64::from(rate);
    let envelope = 1.0 + 0.3 * (TAU * 3.0 * t).sin();
    (peak / 1.3 * envelope * (TAU * freq * t).sin()).round() as i16
}

/// A talker for the group test: an AM tone at 48 kHz (a steady sine would be
/// thinned out by the mixer's DTX after a while).
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
fn share(samples: &[i16], freq: f64) -> f64 {
    let (mut at, mut all) = (0.0, 0.0);
    for frame in samples.chunks_exact(960) {
        at += goertzel_power(frame, freq, 48_000);
        all += mean_square(frame);
    }
    at / all.max(1e-9)
}

/// A native client whose token may call phone numbers.
async fn client(server: &RunningServer) -> (SignalingClient, EventStream) {
    client_named(server, "alice").await
}

/// [`client`] for user `name`.
async fn client_named(server: &RunningServer, name: &str) -> (SignalingClient, EventStream) {
    client_with(server, name, Scopes::from(Scope::Voip).with(Scope::Pstn)).await
}

/// A native client for `name` whose token has `scopes`.
async fn client_with(
    server: &RunningServer,
    name: &str,
    scopes: Scopes,
) -> (SignalingClient, EventStream) {
    let user = UserId::new(name).unwrap();
    let token = server.issue_token(&user, scopes, Duration::from_secs(3600));
    let endpoint = Endpoint::ws(format!("ws://{}/v1/signaling", server.http_addr()));
    let mut options = ConnectOptions::default();
    options.seed = Some(7);
    tokio::time::timeout(GUARD, SignalingClient::connect(endpoint, token, options))
        .await
        .expect("connect in time")
        .unwrap()
}

async fn dial(handle: &SignalingClient) -> CallId {
    handle
        .start_call(
            &[Identifier::phone(NUMBER).unwrap()],
            JoinOptions::default(),
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_call_through_sipp_echoes_the_callers_tone() {
    if !have_sipp() {
        return;
    }
    let mut sipp = sipp_uas(Far::AnswerAndEcho).await;
    let (server, _dir) = server(sipp.addr).await;
    let (handle, mut events) = client(&server).await;

    let call = dial(&handle).await;
    until_state(&mut events, &call, CallState::Connected).await;

    let (sink, tap) = MemorySink::bounded(Duration::from_secs(2));
    let mut options = AudioOptions::new(ToneSource::new(TONE_HZ, 0.25).unwrap(), sink);
    options.media = CallMediaConfig::with_opus(OpusConfig {
        dtx: false,
        ..OpusConfig::default()
    });
    let audio = handle.start_audio(&call, options).await.unwrap();
    tokio::time::timeout(GUARD, audio.wait_connected())
        .await
        .expect("audio connects in time")
        .unwrap();

    // Our tone comes back through the phone leg: wait until the last played second
    // is dominated by it.
    let window = Duration::from_secs(1);
    let started = tokio::time::Instant::now();
    while tap.written() < samples(window) || !tap.has_tone(TONE_HZ, window) {
        assert!(
            started.elapsed() < GUARD,
            "tone not heard back: {:.1} dB over {} samples; {:?}",
            tap.tone_snr(TONE_HZ, window),
            tap.written(),
            audio.stats()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let snr = tap.tone_snr(TONE_HZ, window);
    eprintln!("tone back through G.711: {snr:.1} dB SNR");
    let stats = server.media_stats().await.unwrap();
    assert!(stats.local_out > 0 && stats.audio_in > 0, "{stats:?}");

    handle.hang_up(&call, false).await.unwrap();
    let reason = until_state(&mut events, &call, CallState::Disconnected).await;
    assert_eq!(reason.map(|r| r.code), Some(0));
    // The gateway sent BYE; sipp's scenario (INVITE, 180, 200, ACK, BYE, 200) is done.
    let status = sipp.exit().await;
    assert!(status.success(), "sipp failed: {status}");
    let stats = server.media_stats().await.unwrap();
    assert_eq!(stats.rooms, 0, "the call's room is gone: {stats:?}");
    handle.close().await;
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_and_declined_phones_end_the_call_with_their_reason() {
    if !have_sipp() {
        return;
    }
    for (status, code) in [(486, 486), (603, 603)] {
        let mut sipp = sipp_uas(Far::Refuse(status)).await;
        let (server, _dir) = server(sipp.addr).await;
        let (handle, mut events) = client(&server).await;
        let call = dial(&handle).await;
        let reason = until_state(&mut events, &call, CallState::Disconnected)
            .await
            .unwrap_or_else(|| panic!("{status}: no end reason"));
        assert_eq!(reason.code, code, "{status}: {reason:?}");
        let exit = sipp.exit().await;
        assert!(exit.success(), "{status}: sipp failed: {exit}");
        handle.close().await;
        server.shut_down().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alternate_caller_id_the_trunk_owns_is_sent_as_the_caller() {
    if !have_sipp() {
        return;
    }
    const ALTERNATE: &str = "+15550002222";
    let mut sipp = sipp_uas(Far::DeclineFrom(ALTERNATE)).await;
    let (server, _dir) = server_with(sipp.addr, |pstn| {
        pstn.outbound[0].caller_ids.push(ALTERNATE.into());
    })
    .await;
    let (handle, mut events) = client(&server).await;
    let call = handle
        .start_call_as(
            &[Identifier::phone(NUMBER).unwrap()],
            JoinOptions::default(),
            Some(PhoneNumber::new(ALTERNATE).unwrap()),
        )
        .await
        .unwrap();
    // sipp declines only an INVITE from the alternate number; any other fails it.
    let reason = until_state(&mut events, &call, CallState::Disconnected)
        .await
        .unwrap();
    assert_eq!(reason.code, 603, "{reason:?}");
    let exit = sipp.exit().await;
    assert!(exit.success(), "sipp saw another caller id: {exit}");
    handle.close().await;
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phone_hanging_up_ends_the_call() {
    if !have_sipp() {
        return;
    }
    let mut sipp = sipp_uas(Far::AnswerThenHangUp).await;
    let (server, _dir) = server(sipp.addr).await;
    let (handle, mut events) = client(&server).await;
    let call = dial(&handle).await;
    until_state(&mut events, &call, CallState::Connected).await;
    let reason = until_state(&mut events, &call, CallState::Disconnected)
        .await
        .unwrap();
    assert_eq!(reason, EndReason::remote_hung_up());
    // Our 200 to its BYE ended sipp's scenario.
    let exit = sipp.exit().await;
    assert!(exit.success(), "sipp failed: {exit}");
    handle.close().await;
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_media_plays_to_the_caller_before_the_answer() {
    if !have_sipp() {
        return;
    }
    let mut sipp = sipp_uas(Far::EarlyMediaUntilCancelled).await;
    let (server, _dir) = server(sipp.addr).await;
    let (handle, mut events) = client(&server).await;
    let call = dial(&handle).await;
    until_state(&mut events, &call, CallState::EarlyMedia).await;

    let (sink, tap) = MemorySink::bounded(Duration::from_secs(2));
    let mut options = AudioOptions::new(ToneSource::new(TONE_HZ, 0.25).unwrap(), sink);
    options.media = CallMediaConfig::with_opus(OpusConfig {
        dtx: false,
        ..OpusConfig::default()
    });
    let audio = handle.start_audio(&call, options).await.unwrap();
    tokio::time::timeout(GUARD, audio.wait_connected())
        .await
        .expect("audio connects in time")
        .unwrap();
    let window = Duration::from_secs(1);
    let started = tokio::time::Instant::now();
    while tap.written() < samples(window) || !tap.has_tone(RINGBACK_HZ, window) {
        assert!(
            started.elapsed() < GUARD,
            "early media not heard: {:.1} dB over {} samples; {:?}",
            tap.tone_snr(RINGBACK_HZ, window),
            tap.written(),
            audio.stats()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "early media through G.711: {:.1} dB SNR",
        tap.tone_snr(RINGBACK_HZ, window)
    );
    assert_eq!(
        handle.call(&call).await.unwrap().unwrap().state(),
        CallState::EarlyMedia,
        "still not answered"
    );

    handle.hang_up(&call, false).await.unwrap();
    until_state(&mut events, &call, CallState::Disconnected).await;
    // sipp saw our CANCEL, answered 487 and got its ACK.
    let exit = sipp.exit().await;
    assert!(exit.success(), "sipp failed: {exit}");
    let stats = server.media_stats().await.unwrap();
    assert_eq!(stats.rooms, 0, "the call's room is gone: {stats:?}");
    handle.close().await;
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_that_never_answers_is_cancelled_with_408() {
    if !have_sipp() {
        return;
    }
    let mut sipp = sipp_uas(Far::RingForever).await;
    let (server, _dir) = server_with(sipp.addr, |pstn| {
        pstn.ring_timeout = Duration::from_secs(1);
    })
    .await;
    let (handle, mut events) = client(&server).await;
    let call = dial(&handle).await;
    let reason = until_state(&mut events, &call, CallState::Disconnected)
        .await
        .unwrap();
    assert_eq!(reason.code, 408, "{reason:?}");
    // sipp saw our CANCEL, answered 487 and got its ACK.
    let exit = sipp.exit().await;
    assert!(exit.success(), "sipp failed: {exit}");
    handle.close().await;
    server.shut_down().await;
}

/// Dial-out from a group call: alice calls bob and the phone at once; everyone hears
/// the others (the phone through G.711 into the mixer) and not themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_call_dials_out_and_everyone_hears_the_phone() {
    if !have_sipp() {
        return;
    }
    const ALICE_HZ: f64 = 500.0;
    const BOB_HZ: f64 = 700.0;
    let mut sipp = sipp_uas(Far::AnswerAndTalk).await;
    let (server, _dir) = server(sipp.addr).await;
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
    let incoming = tokio::time::timeout(GUARD, async {
        loop {
            if let Some(Event::IncomingCall { call_id, .. }) = bob_events.recv().await {
                return call_id;
            }
        }
    })
    .await
    .expect("bob is rung");
    assert_eq!(incoming, call);
    bob.accept(&call, JoinOptions::default()).await.unwrap();
    until_state(&mut bob_events, &call, CallState::Connected).await;
    until_state(&mut alice_events, &call, CallState::Connected).await;

    let a = Ear::start(&alice, &call, "alice", ALICE_HZ).await;
    let b = Ear::start(&bob, &call, "bob", BOB_HZ).await;
    until_everyone_hears_the_others(&[(&a, BOB_HZ), (&b, ALICE_HZ)]).await;

    // The phone is the only local participant: the room handed it its mix.
    let stats = server.media_stats().await.unwrap();
    assert!(stats.local_out > 0, "{stats:?}");

    // The last human leaving ends the call: the phone gets its BYE.
    alice.hang_up(&call, false).await.unwrap();
    bob.hang_up(&call, false).await.unwrap();
    until_state(&mut bob_events, &call, CallState::Disconnected).await;
    let exit = sipp.exit().await;
    assert!(exit.success(), "sipp failed: {exit}");
    alice.close().await;
    bob.close().await;
    server.shut_down().await;
}

/// Promotion: alice in a 1:1 call with a phone adds bob; the call becomes a group
/// call and nobody is dropped: everyone hears the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_to_one_phone_call_promoted_to_a_group_keeps_the_phone() {
    if !have_sipp() {
        return;
    }
    const ALICE_HZ: f64 = 500.0;
    const BOB_HZ: f64 = 700.0;
    let mut sipp = sipp_uas(Far::AnswerAndTalk).await;
    let (server, _dir) = server(sipp.addr).await;
    let (alice, mut alice_events) = client_named(&server, "alice").await;
    let (bob, mut bob_events) = client_named(&server, "bob").await;
    let call = dial(&alice).await;
    until_state(&mut alice_events, &call, CallState::Connected).await;
    let a = Ear::start(&alice, &call, "alice", ALICE_HZ).await;

    let bob_id = Identifier::user("bob").unwrap();
    alice.add_participant(&call, &bob_id).await.unwrap();
    let incoming = tokio::time::timeout(GUARD, async {
        loop {
            if let Some(Event::IncomingCall { call_id, .. }) = bob_events.recv().await {
                return call_id;
            }
        }
    })
    .await
    .expect("bob is rung");
    assert_eq!(incoming, call);
    bob.accept(&call, JoinOptions::default()).await.unwrap();
    until_state(&mut bob_events, &call, CallState::Connected).await;
    let b = Ear::start(&bob, &call, "bob", BOB_HZ).await;
    until_everyone_hears_the_others(&[(&a, BOB_HZ), (&b, ALICE_HZ)]).await;
    assert_eq!(
        alice.call(&call).await.unwrap().unwrap().state(),
        CallState::Connected
    );

    alice.hang_up(&call, false).await.unwrap();
    bob.hang_up(&call, false).await.unwrap();
    until_state(&mut bob_events, &call, CallState::Disconnected).await;
    let exit = sipp.exit().await;
    assert!(exit.success(), "sipp failed: {exit}");
    alice.close().await;
    bob.close().await;
    server.shut_down().await;
}

/// One client's audio in a group test: it sends an AM tone and records what it plays.
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

/// Waits until each ear hears its `other` and the phone over the last second, and
/// not itself (mix-minus).
async fn until_everyone_hears_the_others(ears: &[(&Ear, f64)]) {
    let window = Duration::from_secs(1);
    let started = tokio::time::Instant::now();
    loop {
        let mut complaints = Vec::new();
        for (ear, other) in ears {
            let (heard, played) = (ear.tap.last(window), ear.tap.written());
            let (o, p, me) = (
                share(&heard, *other),
                share(&heard, PHONE_VOICE_HZ),
                share(&heard, ear.own),
            );
            if played < samples(window) || o < 0.2 || p < 0.2 || me > 0.05 {
                complaints.push(format!(
                    "{}: other {o:.2}, phone {p:.2}, own {me:.2} of the power ({played} samples played)",
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
            share(&heard, PHONE_VOICE_HZ)
        );
    }
}

/// A trunk that challenges the INVITE gets our digest credentials (MD5, qop=auth,
/// checked by sipp's `verifyauth`) and connects; wrong ones end the call with 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenging_trunk_gets_our_digest_credentials() {
    if !have_sipp() {
        return;
    }
    for (password, connects) in [(TRUNK_USER.1, true), ("wrong", false)] {
        let mut sipp = sipp_uas(Far::Challenge).await;
        let (server, _dir) = server_with(sipp.addr, |pstn| {
            pstn.outbound[0].credentials = Some(Credentials {
                username: TRUNK_USER.0.into(),
                password: password.into(),
            });
        })
        .await;
        let (handle, mut events) = client(&server).await;
        let call = dial(&handle).await;
        if connects {
            until_state(&mut events, &call, CallState::Connected).await;
            handle.hang_up(&call, false).await.unwrap();
            until_state(&mut events, &call, CallState::Disconnected).await;
        } else {
            let reason = until_state(&mut events, &call, CallState::Disconnected)
                .await
                .unwrap();
            assert_eq!(reason.code, 403, "{reason:?}");
        }
        let exit = sipp.exit().await;
        assert!(exit.success(), "password {password}: sipp failed: {exit}");
        handle.close().await;
        server.shut_down().await;
    }
}

/// One identity may have only so many phone calls at once: the next is refused
/// before any SIP is sent, the running one is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_over_its_concurrent_cap_is_refused() {
    if !have_sipp() {
        return;
    }
    let mut sipp = sipp_uas(Far::RingForever).await;
    let (server, _dir) = server_with(sipp.addr, |pstn| {
        pstn.max_calls_per_identity = 1;
    })
    .await;
    let (handle, mut events) = client(&server).await;
    let first = dial(&handle).await;
    until_state(&mut events, &first, CallState::Ringing).await;
    let second = handle
        .start_call(
            &[Identifier::phone("+15557654321").unwrap()],
            JoinOptions::default(),
        )
        .await
        .unwrap();
    let reason = until_state(&mut events, &second, CallState::Disconnected)
        .await
        .unwrap();
    assert_eq!((reason.code, reason.subcode), (403, 4035), "{reason:?}");
    assert_eq!(
        handle.call(&first).await.unwrap().unwrap().state(),
        CallState::Ringing
    );
    handle.hang_up(&first, false).await.unwrap();
    until_state(&mut events, &first, CallState::Disconnected).await;
    let exit = sipp.exit().await;
    assert!(exit.success(), "sipp failed: {exit}");
    handle.close().await;
    server.shut_down().await;
}

/// Without `[pstn]` the server runs no gateway and phone calls end with 480.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_trunk_phone_calls_are_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        quic_addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        ..ServerConfig::default()
    };
    let server = Server::start(config).await.unwrap();
    assert_eq!(server.sip_addr(), None);
    let (handle, mut events) = client(&server).await;
    let call = dial(&handle).await;
    let reason = until_state(&mut events, &call, CallState::Disconnected)
        .await
        .unwrap();
    assert_eq!((reason.code, reason.subcode), (480, 4800), "{reason:?}");
    handle.close().await;
    server.shut_down().await;
}

/// Dialing out needs the `pstn` scope: without it the call ends with 403 before the
/// gateway hears of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_out_needs_the_pstn_scope() {
    let nowhere = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
    let (server, _dir) = server(nowhere).await;
    let (handle, mut events) = client_with(&server, "alice", Scopes::from(Scope::Voip)).await;
    let call = dial(&handle).await;
    let reason = until_state(&mut events, &call, CallState::Disconnected)
        .await
        .unwrap();
    assert_eq!(reason.code, 403, "{reason:?}");
    assert!(reason.message.contains("pstn"), "{reason:?}");
    handle.close().await;
    server.shut_down().await;
}

/// A country the trunk does not list is refused by the gateway itself: no SIP is
/// sent, the caller hears why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_country_the_trunk_does_not_allow_is_refused() {
    // Nothing listens there: the dial must never get that far.
    let nowhere = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
    let (server, _dir) = server(nowhere).await;
    let (handle, mut events) = client(&server).await;
    let call = handle
        .start_call(
            &[Identifier::phone("+442071234567").unwrap()],
            JoinOptions::default(),
        )
        .await
        .unwrap();
    let reason = until_state(&mut events, &call, CallState::Disconnected)
        .await
        .unwrap();
    assert_eq!((reason.code, reason.subcode), (403, 4033), "{reason:?}");
    handle.close().await;
    server.shut_down().await;
}

// ---- Inbound calls: sipp as the phone (UAC) calling a number the server owns ----

/// The number the server owns on its inbound trunk, dispatched to user `bob`.
const OWNED: &str = "+15550001111";
/// The calling phone.
const PHONE: &str = "+15557654321";
/// The tone the calling phone plays.
const PHONE_TONE_HZ: f64 = 600.0;

/// An INVITE from [`PHONE`] to `[service]` with a PCMU + telephone-event offer.
const INBOUND_INVITE: &str = r#"<send retrans="500"><![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:+15557654321@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:+15557654321@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15

  ]]></send>
  <recv response="100" optional="true" />
  <recv response="180" optional="true" />"#;

/// The ACK for a non-2xx final response (same branch, RFC 3261 §17.1.1.3).
const ACK_FAILURE: &str = r#"<send><![CDATA[

      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>"#;

/// What the calling phone does.
#[derive(Debug, Clone, Copy)]
enum Caller {
    /// Waits for 200, ACKs, plays [`PHONE_TONE_HZ`] until our BYE.
    TalkUntilBye,
    /// Expects this final refusal and ACKs it.
    ExpectRefusal(u16),
    /// Like `TalkUntilBye` for SIP, but offers the test's own RTP socket (port
    /// `-set rtp`) and sends no media itself: the test is the phone's media.
    SignalOnly,
}

fn caller_scenario(caller: Caller) -> String {
    let body = match caller {
        Caller::SignalOnly => caller_scenario(Caller::TalkUntilBye)
            .replace("m=audio [media_port]", "m=audio [$rtp]")
            .replace(
                r#"<nop><action><exec rtp_stream="tone.ulaw,-1,0" /></action></nop>"#,
                "",
            )
            .split_once("<scenario name=\"a phone calls in\">")
            .and_then(|(_, rest)| rest.rsplit_once("</scenario>"))
            .map(|(body, _)| format!("<Global variables=\"rtp\" />\n{body}"))
            .unwrap(),
        Caller::TalkUntilBye => format!(
            r#"{INBOUND_INVITE}
  <recv response="200" rrs="true" />
  <send><![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <nop><action><exec rtp_stream="tone.ulaw,-1,0" /></action></nop>
  <recv request="BYE" />
  <send><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

  ]]></send>"#
        ),
        Caller::ExpectRefusal(code) => format!(
            r#"{INBOUND_INVITE}
  <recv response="{code}" />
  {ACK_FAILURE}"#
        ),
    };
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="a phone calls in">
  {body}
</scenario>"#
    )
}

/// sipp as the calling phone: calls `number` at `gateway` once.
fn sipp_uac(caller: Caller, gateway: SocketAddr, number: &str) -> Sipp {
    sipp_uac_with(caller, gateway, number, &[])
}

/// [`sipp_uac`] with extra sipp arguments.
fn sipp_uac_with(caller: Caller, gateway: SocketAddr, number: &str, extra: &[&str]) -> Sipp {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("caller.xml"), caller_scenario(caller)).unwrap();
    let mut pcm = vec![0i16; 8000];
    tone(PHONE_TONE_HZ, 8000.0, 8000, 0, &mut pcm);
    let mut ulaw = Vec::new();
    G711::Pcmu.encode(&pcm, &mut ulaw);
    std::fs::write(dir.path().join("tone.ulaw"), ulaw).unwrap();
    let port = free_udp_port();
    let media = free_udp_port();
    let child = Command::new("sipp")
        .current_dir(dir.path())
        .args(["-sf", "caller.xml", &gateway.to_string()])
        .args(["-s", number.trim_start_matches('+')])
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-mi", "127.0.0.1", "-mp", &media.to_string()])
        .args(["-m", "1", "-nostdin", "-timeout", "60s", "-timeout_error"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp starts");
    Sipp {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        _dir: dir,
    }
}

/// A server whose inbound trunk (loopback only) owns [`OWNED`], dispatched to `target`.
async fn inbound_server(
    target: ringwire_pstn::config::DispatchTarget,
) -> (RunningServer, tempfile::TempDir) {
    // No outbound trunk is used; it points at a port nobody listens on.
    let nowhere = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
    server_with(nowhere, |pstn| {
        pstn.inbound = vec![ringwire_pstn::config::InboundTrunk::new(
            "sipp-in",
            vec![OWNED.into()],
            vec!["127.0.0.1/32".into()],
        )];
        pstn.dispatch = vec![ringwire_pstn::config::DispatchRule {
            number: OWNED.into(),
            target,
        }];
    })
    .await
}

/// Waits for an incoming call; returns its id and caller.
async fn until_incoming(events: &mut EventStream) -> (CallId, Identifier) {
    let wait = async {
        loop {
            if let Event::IncomingCall {
                call_id, caller, ..
            } = events.recv().await.expect("events go on")
            {
                return (call_id, caller);
            }
        }
    };
    tokio::time::timeout(GUARD, wait)
        .await
        .expect("an incoming call in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_calls_a_user_who_accepts_and_hears_it() {
    if !have_sipp() {
        return;
    }
    let (server, _dir) =
        inbound_server(ringwire_pstn::config::DispatchTarget::User("bob".into())).await;
    let (bob, mut events) = client_named(&server, "bob").await;
    let mut sipp = sipp_uac(Caller::TalkUntilBye, server.sip_addr().unwrap(), OWNED);

    let (call, caller) = until_incoming(&mut events).await;
    assert_eq!(caller, Identifier::phone(PHONE).unwrap());
    assert_eq!(caller.to_string(), format!("4:{PHONE}"));
    bob.accept(&call, JoinOptions::default()).await.unwrap();
    until_state(&mut events, &call, CallState::Connected).await;

    let (sink, tap) = MemorySink::bounded(Duration::from_secs(2));
    let mut options = AudioOptions::new(ToneSource::new(TONE_HZ, 0.25).unwrap(), sink);
    options.media = CallMediaConfig::with_opus(OpusConfig {
        dtx: false,
        ..OpusConfig::default()
    });
    let audio = bob.start_audio(&call, options).await.unwrap();
    tokio::time::timeout(GUARD, audio.wait_connected())
        .await
        .expect("audio connects in time")
        .unwrap();
    let window = Duration::from_secs(1);
    let started = tokio::time::Instant::now();
    while tap.written() < samples(window) || !tap.has_tone(PHONE_TONE_HZ, window) {
        assert!(
            started.elapsed() < GUARD,
            "the phone's tone not heard: {:.1} dB over {} samples; {:?}",
            tap.tone_snr(PHONE_TONE_HZ, window),
            tap.written(),
            audio.stats()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "inbound phone through G.711: {:.1} dB SNR",
        tap.tone_snr(PHONE_TONE_HZ, window)
    );

    // Bob hangs up: the gateway BYEs the phone, sipp's scenario ends cleanly.
    bob.hang_up(&call, false).await.unwrap();
    let reason = until_state(&mut events, &call, CallState::Disconnected).await;
    assert_eq!(reason.map(|r| r.code), Some(0));
    let status = sipp.exit().await;
    assert!(status.success(), "sipp failed: {status}");
    bob.close().await;
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_phone_call_gets_603() {
    if !have_sipp() {
        return;
    }
    let (server, _dir) =
        inbound_server(ringwire_pstn::config::DispatchTarget::User("bob".into())).await;
    let (bob, mut events) = client_named(&server, "bob").await;
    let mut sipp = sipp_uac(
        Caller::ExpectRefusal(603),
        server.sip_addr().unwrap(),
        OWNED,
    );
    let (call, _) = until_incoming(&mut events).await;
    bob.reject(&call).await.unwrap();
    let status = sipp.exit().await;
    assert!(status.success(), "sipp did not get its 603: {status}");
    bob.close().await;
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_numbers_not_owned_or_users_offline_are_refused() {
    if !have_sipp() {
        return;
    }
    let (server, _dir) =
        inbound_server(ringwire_pstn::config::DispatchTarget::User("bob".into())).await;
    // Not a number of the trunk: 404.
    let mut sipp = sipp_uac(
        Caller::ExpectRefusal(404),
        server.sip_addr().unwrap(),
        "+15559999999",
    );
    let status = sipp.exit().await;
    assert!(status.success(), "no 404: {status}");
    // Bob is not online: 480.
    let mut sipp = sipp_uac(
        Caller::ExpectRefusal(480),
        server.sip_addr().unwrap(),
        OWNED,
    );
    let status = sipp.exit().await;
    assert!(status.success(), "no 480: {status}");
    server.shut_down().await;
}

/// A minimal INVITE to [`OWNED`] from `from` (an address string), with an SDP offer.
fn raw_invite(from: SocketAddr, gateway: SocketAddr, call_id: &str) -> Vec<u8> {
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n",
        ip = from.ip()
    );
    format!(
        "INVITE sip:{OWNED}@{gateway} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from};branch=z9hG4bK-{call_id}\r\n\
         Max-Forwards: 70\r\n\
         To: <sip:{OWNED}@{gateway}>\r\n\
         From: <sip:{PHONE}@{from}>;tag=t-{call_id}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:{PHONE}@{from}>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_sources_get_no_answer_and_garbage_breaks_nothing() {
    if !have_sipp() {
        return;
    }
    let (server, _dir) =
        inbound_server(ringwire_pstn::config::DispatchTarget::User("bob".into())).await;
    let gateway = server.sip_addr().unwrap();
    // 127.0.0.2 is loopback too, but not on the trunk's allowlist (127.0.0.1/32).
    let stranger = StdUdp::bind("127.0.0.2:0").unwrap();
    stranger.set_nonblocking(true).unwrap();
    let invite = raw_invite(stranger.local_addr().unwrap(), gateway, "stranger-1");
    stranger.send_to(&invite, gateway).unwrap();
    // From the allowed source: garbage, a truncated INVITE, an INVITE whose From has
    // escaped quotes (which ezk's parser rejects), and one without a From tag.
    let friend = StdUdp::bind("127.0.0.1:0").unwrap();
    let me = friend.local_addr().unwrap();
    let good = raw_invite(me, gateway, "friend-1");
    let escaped = String::from_utf8(good.clone()).unwrap().replace(
        &format!("From: <sip:{PHONE}"),
        &format!("From: \"J \\\"Jim\\\" R\" <sip:{PHONE}"),
    );
    let untagged = String::from_utf8(raw_invite(me, gateway, "friend-2"))
        .unwrap()
        .replace(";tag=t-friend-2", "");
    for bytes in [
        &b"\x00\x01garbage\r\n\r\n"[..],
        &good[..good.len() / 2],
        escaped.as_bytes(),
        untagged.as_bytes(),
    ] {
        friend.send_to(bytes, gateway).unwrap();
    }
    // A well-formed call from the allowed source still gets its answer (bob is
    // offline: 480), after everything above was sent.
    let mut sipp = sipp_uac(Caller::ExpectRefusal(480), gateway, OWNED);
    let status = sipp.exit().await;
    assert!(status.success(), "the gateway stopped answering: {status}");
    // The stranger heard nothing: not even 100 Trying.
    let mut buf = [0u8; 2048];
    assert!(
        stranger.recv_from(&mut buf).is_err(),
        "an unknown source got: {}",
        String::from_utf8_lossy(&buf)
    );
    server.shut_down().await;
}

/// Receives RTP on the test's phone socket until `want` holds for a packet; returns
/// the packet's source (the gateway's RTP address).
async fn until_rtp(
    socket: &tokio::net::UdpSocket,
    mut want: impl FnMut(&ringwire_pstn::rtp::RtpPacket<'_>) -> bool,
) -> SocketAddr {
    let mut buf = vec![0u8; 2048];
    let wait = async {
        loop {
            let (n, from) = socket.recv_from(&mut buf).await.unwrap();
            if let Ok(packet) = ringwire_pstn::rtp::RtpPacket::parse(&buf[..n])
                && want(&packet)
            {
                return from;
            }
        }
    };
    tokio::time::timeout(GUARD, wait)
        .await
        .expect("the RTP we wait for in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtmf_goes_both_ways_between_a_phone_and_a_native_user() {
    use ringwire_pstn::rtp::{RtpHeader, TelephoneEvent};
    if !have_sipp() {
        return;
    }
    let (server, _dir) =
        inbound_server(ringwire_pstn::config::DispatchTarget::User("bob".into())).await;
    let (bob, mut events) = client_named(&server, "bob").await;
    // The phone's media is this socket: sipp only does the SIP.
    let phone_rtp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let rtp_port = phone_rtp.local_addr().unwrap().port().to_string();
    let mut sipp = sipp_uac_with(
        Caller::SignalOnly,
        server.sip_addr().unwrap(),
        OWNED,
        &["-set", "rtp", &rtp_port],
    );
    let (call, _) = until_incoming(&mut events).await;
    bob.accept(&call, JoinOptions::default()).await.unwrap();
    until_state(&mut events, &call, CallState::Connected).await;
    let (sink, _tap) = MemorySink::bounded(Duration::from_secs(1));
    let options = AudioOptions::new(ToneSource::new(TONE_HZ, 0.25).unwrap(), sink);
    let audio = bob.start_audio(&call, options).await.unwrap();
    tokio::time::timeout(GUARD, audio.wait_connected())
        .await
        .expect("audio connects in time")
        .unwrap();

    // Bob's voice reaches the phone as PCMU: that tells us the gateway's RTP address.
    let gateway_rtp = until_rtp(&phone_rtp, |p| p.header.payload_type == 0).await;

    // The phone presses 7 (RFC 4733: one event, three end packets).
    let mut seq = 1000u16;
    for (i, end) in [false, false, false, true, true, true]
        .into_iter()
        .enumerate()
    {
        let event = TelephoneEvent {
            event: 7,
            end,
            volume: 10,
            duration: 160 * (i as u16 + 1),
        };
        let mut bytes = Vec::new();
        RtpHeader {
            marker: i == 0,
            payload_type: 101,
            sequence: seq,
            timestamp: 4242,
            ssrc: 0x1234_5678,
        }
        .write(&mut bytes);
        bytes.extend_from_slice(&event.to_bytes());
        seq = seq.wrapping_add(1);
        phone_rtp.send_to(&bytes, gateway_rtp).await.unwrap();
    }
    let heard = tokio::time::timeout(GUARD, async {
        loop {
            if let Event::DtmfReceived {
                call_id,
                from,
                digits,
            } = events.recv().await.expect("events go on")
                && call_id == call
            {
                return (from, digits);
            }
        }
    })
    .await
    .expect("bob hears the key in time");
    assert_eq!(heard, (Identifier::phone(PHONE).unwrap(), "7".to_owned()));

    // Bob dials 5#: the phone gets RFC 4733 events for both keys, in order.
    bob.send_dtmf(&call, "5#").await.unwrap();
    let mut keys = Vec::new();
    until_rtp(&phone_rtp, |p| {
        if p.header.payload_type == 101
            && let Ok(e) = TelephoneEvent::parse(p.payload)
            && e.end
            && keys.last() != Some(&e.event)
        {
            keys.push(e.event);
        }
        keys.len() == 2
    })
    .await;
    assert_eq!(keys, vec![5, 11], "RFC 4733 events 5 and # (11)");
    // Bad digits are refused before they leave bob.
    assert!(bob.send_dtmf(&call, "5x").await.is_err());

    bob.hang_up(&call, false).await.unwrap();
    let status = sipp.exit().await;
    assert!(status.success(), "sipp failed: {status}");
    bob.close().await;
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_dispatched_to_a_group_joins_its_call_and_is_heard() {
    if !have_sipp() {
        return;
    }
    let (server, _dir) = inbound_server(ringwire_pstn::config::DispatchTarget::Group(
        "standup".into(),
    ))
    .await;
    let (alice, mut events) = client_named(&server, "alice").await;
    let group = ringwire_signaling::GroupId::new("standup").unwrap();
    let call = alice
        .join(&group, JoinOptions::default(), false)
        .await
        .unwrap();
    until_state(&mut events, &call, CallState::Connected).await;
    let (sink, tap) = MemorySink::bounded(Duration::from_secs(2));
    let mut options = AudioOptions::new(ToneSource::new(TONE_HZ, 0.25).unwrap(), sink);
    options.media = CallMediaConfig::with_opus(OpusConfig {
        dtx: false,
        ..OpusConfig::default()
    });
    let audio = alice.start_audio(&call, options).await.unwrap();
    tokio::time::timeout(GUARD, audio.wait_connected())
        .await
        .expect("audio connects in time")
        .unwrap();

    // The phone calls the group's number and is put straight into the call.
    let mut sipp = sipp_uac(Caller::TalkUntilBye, server.sip_addr().unwrap(), OWNED);
    let window = Duration::from_secs(1);
    let started = tokio::time::Instant::now();
    while tap.written() < samples(window) || !tap.has_tone(PHONE_TONE_HZ, window) {
        assert!(
            started.elapsed() < GUARD,
            "the phone's tone not heard in the group: {:.1} dB; {:?}",
            tap.tone_snr(PHONE_TONE_HZ, window),
            audio.stats()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let roster = alice.call(&call).await.unwrap().unwrap();
    assert!(
        roster
            .participant(&Identifier::phone(PHONE).unwrap())
            .is_some(),
        "the phone is in alice's roster"
    );
    // The last human leaving ends the call: the phone gets its BYE.
    alice.hang_up(&call, false).await.unwrap();
    let status = sipp.exit().await;
    assert!(status.success(), "sipp failed: {status}");
    alice.close().await;
    server.shut_down().await;
}
