//! Inbound trunks with digest credentials and call caps, end to end: the real server
//! with an inbound trunk (loopback) owning [`OWNED`], dispatched to user bob, and
//! sipp as the calling phone (UAC).
//!
//! - Digest: sipp's first INVITE gets 401 (`algorithm=MD5`, `qop="auth"`: sipp 3.6
//!   answers only the first challenge and only MD5, so the trunk offers `["MD5"]`),
//!   sipp ACKs it and sends a new INVITE (same Call-ID, CSeq 2) with `[authentication]`.
//!   sipp puts `sip:<-auth_uri>` in the digest `uri` (by default the remote address);
//!   `-auth_uri <number>@<gateway>` makes it the Request-URI, which the gateway
//!   requires. A wrong password gets 403 and rings nobody (bob's first incoming call
//!   is the next, right one); the right one rings bob, who accepts and hears the
//!   phone's tone.
//! - Lockout: with `max_auth_failures = 2`, two wrong passwords (401, 403 each) lock
//!   the address out: the next INVITE, with the right password, gets 403 straight
//!   away, without a challenge, and rings nobody.
//! - Caps: a trunk with `max_calls = 1`: while one call rings, a second gets 503; once
//!   the first is declined, a third rings again (the leg's end freed its slot).
//!
//! Skipped (with a message) when `sipp` is not installed, except under CI (`CI` set).
//! Timeouts only turn a hang into a failure; nothing asserts on how long anything takes.

#![allow(clippy::unwrap_used)] // Helpers outside #[test] fns unwrap too.

#[path = "common/phone.rs"]
mod phone;

use phone::{free_udp_port, have_sipp, until_state};

use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use ringwire_calling::{AudioOptions, ConnectOptions, Endpoint, EventStream, SignalingClient};
use ringwire_media::analysis::tone;
use ringwire_media::audio_io::{MemorySink, ToneSource};
use ringwire_media::client::CallMediaConfig;
use ringwire_media::codec::OpusConfig;
use ringwire_pstn::config::PstnConfig;
use ringwire_pstn::g711::G711;
use ringwire_server::{RunningServer, Server, ServerConfig};
use ringwire_signaling::{
    CallId, CallState, Event, Identifier, JoinOptions, Scope, Scopes, UserId,
};

/// Longest any single expected thing may take before the test fails.
const GUARD: Duration = Duration::from_secs(20);
/// The number the server owns, dispatched to bob.
const OWNED: &str = "+15550001111";
/// The trunk's digest credentials.
const TRUNK_USER: &str = "carrier";
const TRUNK_PASSWORD: &str = "s3cret";
/// The tone the calling phone plays.
const PHONE_TONE_HZ: f64 = 600.0;

/// A sipp process, killed when dropped if it has not exited.
struct Sipp {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sipp {
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

/// An INVITE from `FROM_NUMBER` with CSeq `cseq`, a PCMU + telephone-event offer and, when
/// `auth`, sipp's answer to the last challenge.
fn invite(cseq: u32, auth: bool) -> String {
    let authorization = if auth { "[authentication]\n      " } else { "" };
    format!(
        r#"<send retrans="500"><![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:FROM_NUMBER@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: {cseq} INVITE
      {authorization}Contact: <sip:FROM_NUMBER@[local_ip]:[local_port]>
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
  <recv response="180" optional="true" />"#
    )
}

/// The ACK of a non-2xx final response to the INVITE sent `back` messages earlier
/// (the same branch, RFC 3261 §17.1.1.3).
fn ack_failure(cseq: u32, back: u32) -> String {
    format!(
        r#"<send><![CDATA[

      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-{back}]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      CSeq: {cseq} ACK
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>"#
    )
}

/// What the calling phone does.
#[derive(Debug, Clone, Copy)]
enum Caller {
    /// Answers the 401, then expects this final refusal and ACKs it.
    AuthThenRefused(u16),
    /// Answers the 401, waits for 200, ACKs, plays [`PHONE_TONE_HZ`] until our BYE.
    AuthThenTalk,
    /// No credentials: expects this final refusal and ACKs it.
    Refused(u16),
}

fn scenario(caller: Caller) -> String {
    // Message indexes: INVITE 0, 100 1, 180 2, final 3, ACK 4 (branch of 4 - 4).
    let challenged = format!(
        r#"{}
  <recv response="401" auth="true" />
  {}
  {}"#,
        invite(1, false),
        ack_failure(1, 4),
        invite(2, true)
    );
    let body = match caller {
        Caller::Refused(code) => format!(
            r#"{}
  <recv response="{code}" />
  {}"#,
            invite(1, false),
            ack_failure(1, 4)
        ),
        Caller::AuthThenRefused(code) => format!(
            r#"{challenged}
  <recv response="{code}" />
  {}"#,
            ack_failure(2, 4)
        ),
        Caller::AuthThenTalk => format!(
            r#"{challenged}
  <recv response="200" rrs="true" />
  <send><![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      CSeq: 2 ACK
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
    };
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="a phone calls in">
  {body}
</scenario>"#
    )
}

/// sipp as the phone `from` calling [`OWNED`] at `gateway` once, answering digest
/// challenges with `password` (for [`TRUNK_USER`]).
fn sipp_uac(caller: Caller, gateway: SocketAddr, from: &str, password: &str) -> Sipp {
    let dir = tempfile::tempdir().unwrap();
    let xml = scenario(caller).replace("FROM_NUMBER", from);
    std::fs::write(dir.path().join("caller.xml"), xml).unwrap();
    let mut pcm = vec![0i16; 8000];
    tone(PHONE_TONE_HZ, 8000.0, 8000, 0, &mut pcm);
    let mut ulaw = Vec::new();
    G711::Pcmu.encode(&pcm, &mut ulaw);
    std::fs::write(dir.path().join("tone.ulaw"), ulaw).unwrap();
    let number = OWNED.trim_start_matches('+');
    let child = Command::new("sipp")
        .current_dir(dir.path())
        .args(["-sf", "caller.xml", &gateway.to_string()])
        .args(["-s", number])
        .args(["-au", TRUNK_USER, "-ap", password])
        // The digest uri sipp computes: the Request-URI the scenario sends.
        .args(["-auth_uri", &format!("{number}@{gateway}")])
        .args(["-i", "127.0.0.1", "-p", &free_udp_port().to_string()])
        .args(["-mi", "127.0.0.1", "-mp", &free_udp_port().to_string()])
        .args(["-m", "1", "-nostdin", "-timeout", "60s", "-timeout_error"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp starts");
    Sipp { child, _dir: dir }
}

/// The server with one inbound trunk (loopback) owning [`OWNED`] for bob; `trunk`
/// adds settings to it (JSON, as `[[pstn.inbound]]` in ringwire.toml would).
async fn server(trunk: serde_json::Value) -> (RunningServer, tempfile::TempDir) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut inbound = serde_json::json!({
        "name": "sipp-in",
        "numbers": [OWNED],
        "allowed_sources": ["127.0.0.1/32"],
    });
    if let (Some(base), serde_json::Value::Object(extra)) = (inbound.as_object_mut(), trunk) {
        base.extend(extra);
    }
    let pstn: PstnConfig = serde_json::from_value(serde_json::json!({
        "sip_listen": "127.0.0.1:0",
        // Below the ephemeral range, so sipp's ports never collide with it.
        "rtp_ports": { "first": 21200, "last": 21399 },
        "inbound": [inbound],
        "dispatch": [{ "number": OWNED, "target": { "user": "bob" } }],
    }))
    .unwrap();
    pstn.validate().unwrap();
    let dir = tempfile::tempdir().unwrap();
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

async fn bob(server: &RunningServer) -> (SignalingClient, EventStream) {
    let user = UserId::new("bob").unwrap();
    let token = server.issue_token(&user, Scopes::from(Scope::Voip), Duration::from_secs(3600));
    let endpoint = Endpoint::ws(format!("ws://{}/v1/signaling", server.http_addr()));
    let mut options = ConnectOptions::default();
    options.seed = Some(7);
    tokio::time::timeout(GUARD, SignalingClient::connect(endpoint, token, options))
        .await
        .expect("connect in time")
        .unwrap()
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
async fn digest_trunk_wrong_password_is_refused_and_the_right_one_is_heard() {
    if !have_sipp() {
        return;
    }
    let (server, _dir) = server(serde_json::json!({
        "credentials": { "username": TRUNK_USER, "password": TRUNK_PASSWORD },
        "digest_algorithms": ["MD5"],
    }))
    .await;
    let gateway = server.sip_addr().unwrap();
    let (bob, mut events) = bob(&server).await;

    // A wrong password: 401, then 403; nobody rings.
    let mut wrong = sipp_uac(
        Caller::AuthThenRefused(403),
        gateway,
        "+15557650000",
        "guess",
    );
    let status = wrong.exit().await;
    assert!(
        status.success(),
        "sipp did not get its 401 then 403: {status}"
    );

    // The right one: bob's first incoming call is this one (the wrong one would
    // have come first), he accepts and hears the phone.
    let phone = "+15557654321";
    let mut right = sipp_uac(Caller::AuthThenTalk, gateway, phone, TRUNK_PASSWORD);
    let (call, caller) = until_incoming(&mut events).await;
    assert_eq!(caller, Identifier::phone(phone).unwrap());
    bob.accept(&call, JoinOptions::default()).await.unwrap();
    until_state(&mut events, &call, CallState::Connected).await;

    let (sink, tap) = MemorySink::bounded(Duration::from_secs(2));
    let mut options = AudioOptions::new(ToneSource::new(1000.0, 0.25).unwrap(), sink);
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
    while tap.written() < 48_000 || !tap.has_tone(PHONE_TONE_HZ, window) {
        assert!(
            started.elapsed() < GUARD,
            "the phone's tone not heard: {:.1} dB over {} samples",
            tap.tone_snr(PHONE_TONE_HZ, window),
            tap.written(),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bob.hang_up(&call, false).await.unwrap();
    until_state(&mut events, &call, CallState::Disconnected).await;
    let status = right.exit().await;
    assert!(status.success(), "sipp failed: {status}");
    bob.close().await;
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_wrong_passwords_lock_the_address_out() {
    if !have_sipp() {
        return;
    }
    let (server, _dir) = server(serde_json::json!({
        "credentials": { "username": TRUNK_USER, "password": TRUNK_PASSWORD },
        "digest_algorithms": ["MD5"],
        "max_auth_failures": 2,
        "auth_lockout": "10m",
    }))
    .await;
    let gateway = server.sip_addr().unwrap();
    let (bob, mut events) = bob(&server).await;

    for guess in ["guess", "another"] {
        let mut wrong = sipp_uac(Caller::AuthThenRefused(403), gateway, "+15557650000", guess);
        let status = wrong.exit().await;
        assert!(
            status.success(),
            "`{guess}` did not get 401 then 403: {status}"
        );
    }
    // Locked out: 403 at once, the right password never asked for.
    let mut right = sipp_uac(
        Caller::Refused(403),
        gateway,
        "+15557650000",
        TRUNK_PASSWORD,
    );
    let status = right.exit().await;
    assert!(
        status.success(),
        "the locked-out address was not refused without a challenge: {status}"
    );
    // Nobody rang: the server's event stream has nothing for bob.
    assert!(
        tokio::time::timeout(Duration::ZERO, until_incoming(&mut events))
            .await
            .is_err(),
        "a locked-out call rang bob"
    );
    bob.close().await;
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_at_its_concurrent_cap_gets_503_until_a_call_ends() {
    if !have_sipp() {
        return;
    }
    let (server, _dir) = server(serde_json::json!({ "max_calls": 1 })).await;
    let gateway = server.sip_addr().unwrap();
    let (bob, mut events) = bob(&server).await;

    // The first call rings bob (and holds the trunk's one slot)...
    let mut first = sipp_uac(Caller::Refused(603), gateway, "+15557650001", "");
    let (call, _) = until_incoming(&mut events).await;
    // ...so a second one at the same time gets 503.
    let mut second = sipp_uac(Caller::Refused(503), gateway, "+15557650002", "");
    let status = second.exit().await;
    assert!(
        status.success(),
        "the second call did not get 503: {status}"
    );

    // Bob declines the first: its leg ends and frees the slot.
    bob.reject(&call).await.unwrap();
    let status = first.exit().await;
    assert!(status.success(), "the first call did not get 603: {status}");
    let mut third = sipp_uac(Caller::Refused(603), gateway, "+15557650003", "");
    let (call, caller) = until_incoming(&mut events).await;
    assert_eq!(caller, Identifier::phone("+15557650003").unwrap());
    bob.reject(&call).await.unwrap();
    let status = third.exit().await;
    assert!(status.success(), "the third call did not ring: {status}");
    bob.close().await;
    server.shut_down().await;
}
