//! SIP transports towards trunks, end to end: the real server with one outbound trunk
//! and a native client (ringwire-calling) calling `4:+15551230000`.
//!
//! - `transport = "tcp"`: sipp (`-t t1`) answers over TCP and echoes RTP; the client
//!   hears its own tone back (Goertzel SNR) and hangs up, sipp finishes cleanly.
//! - `transport = "tls"`: Debian's sipp has no TLS, so the test runs a small TLS
//!   terminator (tokio-rustls) in front of a sipp TCP UAS, with a certificate for
//!   `sip.trunk.test` from a CA made here with rcgen; the trunk is configured with
//!   that CA and server name on its IP address. The call connects over TLS and the
//!   tone echoes. The gateway's own TLS listener (`[pstn.tls]`) answers a handshake
//!   with its certificate.
//! - A trunk whose certificate another CA signed, or that names another server: the
//!   dial ends with 503 "the SIP trunk's TLS certificate is not trusted", and the
//!   server goes on serving.
//! - Inbound over TCP: sipp (`-t t1`) calls a number the server owns on the TCP
//!   listener a TCP trunk opens; bob gets the incoming call, declines, and sipp gets
//!   its 603 over the same connection.
//! - The README's transport settings load from a config file; `tls` on a UDP trunk
//!   is refused with the trunk named.
//!
//! Skipped (with a message) when `sipp` is not installed (`apt install sip-tester`),
//! except under CI (`CI` set), where a missing sipp fails them: setup installs it.
//! Timeouts only turn a hang into a failure; nothing asserts on how long anything takes.

#![allow(clippy::unwrap_used)] // Helpers outside #[test] fns unwrap too.

#[path = "common/phone.rs"]
mod phone;

use phone::{free_udp_port, have_sipp, until_state};

use std::net::{SocketAddr, TcpListener as StdTcp};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use ringwire_calling::{AudioOptions, ConnectOptions, Endpoint, EventStream, SignalingClient};
use ringwire_media::audio_io::{MemorySink, ToneSource};
use ringwire_media::client::CallMediaConfig;
use ringwire_media::codec::OpusConfig;
use ringwire_pstn::config::{OutboundTrunk, PortRange, PstnConfig, SipTls, SipTransport, TrunkTls};
use ringwire_server::{RunningServer, Server, ServerConfig};
use ringwire_signaling::{
    CallId, CallState, Event, Identifier, JoinOptions, Scope, Scopes, UserId,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Longest any single expected thing may take before the test fails.
const GUARD: Duration = Duration::from_secs(20);
/// The number the client dials (the trunk allows country code 1).
const NUMBER: &str = "+15551230000";
/// The client's tone: below G.711's 4 kHz band edge, a whole number of cycles in 20 ms.
const TONE_HZ: f64 = 1000.0;
/// The name on the trunk's certificate (its address is 127.0.0.1).
const TRUNK_NAME: &str = "sip.trunk.test";
/// The name on the gateway's own certificate.
const GATEWAY_NAME: &str = "gateway.test";

/// A sipp process, killed when dropped if it has not exited.
struct Sipp {
    child: Child,
    addr: SocketAddr,
    /// Holds sipp's working folder until sipp is gone.
    _dir: tempfile::TempDir,
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sipp {
    /// sipp's built-in `uas` scenario with RTP echo over TCP (`-t t1`): rings,
    /// answers, waits for our BYE; one call.
    async fn tcp_echo() -> Sipp {
        let dir = tempfile::tempdir().unwrap();
        let port = free_tcp_port();
        let media = free_udp_port();
        let child = Command::new("sipp")
            .current_dir(dir.path())
            .args(["-sn", "uas", "-rtp_echo", "-t", "t1"])
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-mi", "127.0.0.1", "-mp", &media.to_string()])
            .args(["-bind_local", "-m", "1", "-nostdin", "-timeout", "60s"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp starts");
        let sipp = Sipp {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _dir: dir,
        };
        // Listening once our own bind of its TCP port fails.
        let started = tokio::time::Instant::now();
        while StdTcp::bind(sipp.addr).is_ok() {
            assert!(
                started.elapsed() < GUARD,
                "sipp never listened on {}",
                sipp.addr
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        sipp
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

fn free_tcp_port() -> u16 {
    StdTcp::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A CA made for the test, and certificates it signs, as PEM files in `dir`.
struct TestCa {
    params: CertificateParams,
    key: KeyPair,
    pem: PathBuf,
}

/// A certificate chain and key, as PEM files.
struct Leaf {
    cert: PathBuf,
    key: PathBuf,
}

impl TestCa {
    fn new(dir: &Path, name: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        let pem = dir.join(format!("{name}.pem"));
        std::fs::write(&pem, cert.pem()).unwrap();
        TestCa { params, key, pem }
    }

    /// A certificate for `dns_name`, signed by this CA.
    fn issue(&self, dir: &Path, dns_name: &str) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![dns_name.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, dns_name);
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        let leaf = Leaf {
            cert: dir.join(format!("{dns_name}.pem")),
            key: dir.join(format!("{dns_name}.key")),
        };
        std::fs::write(&leaf.cert, cert.pem()).unwrap();
        std::fs::write(&leaf.key, key.serialize_pem()).unwrap();
        leaf
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A TLS terminator for the trunk: accepts TLS connections with `leaf` and relays
/// each one's bytes to `backend` over TCP. Stopped when dropped.
struct Terminator {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Terminator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Terminator {
    async fn start(leaf: &Leaf, backend: SocketAddr) -> Terminator {
        let chain = CertificateDer::pem_file_iter(&leaf.cert)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(&leaf.key).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut relays = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                relays.spawn(async move {
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let Ok(mut tcp) = TcpStream::connect(backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut tcp).await;
                });
            }
        });
        Terminator { addr, task }
    }
}

/// The server with one outbound trunk to `trunk` for country code 1.
async fn server(
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
        // Below the ephemeral range, away from pstn.rs's 21000..21199.
        rtp_ports: PortRange {
            first: 21400,
            last: 21599,
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

/// A native client whose token may call phone numbers.
async fn client(server: &RunningServer) -> (SignalingClient, EventStream) {
    let user = UserId::new("alice").unwrap();
    let scopes = Scopes::from(Scope::Voip).with(Scope::Pstn);
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

/// Calls the number, hears the tone come back through sipp's echo, hangs up, and
/// checks sipp finished its scenario (INVITE, 180, 200, ACK, BYE, 200).
async fn call_and_hear_the_echo(server: &RunningServer, sipp: &mut Sipp) {
    let (handle, mut events) = client(server).await;
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

    let window = Duration::from_secs(1);
    let window_samples = (window.as_secs_f64() * 48_000.0) as u64;
    let started = tokio::time::Instant::now();
    while tap.written() < window_samples || !tap.has_tone(TONE_HZ, window) {
        assert!(
            started.elapsed() < GUARD,
            "tone not heard back: {:.1} dB over {} samples; {:?}",
            tap.tone_snr(TONE_HZ, window),
            tap.written(),
            audio.stats()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "tone back through the trunk: {:.1} dB SNR",
        tap.tone_snr(TONE_HZ, window)
    );

    handle.hang_up(&call, false).await.unwrap();
    let reason = until_state(&mut events, &call, CallState::Disconnected).await;
    assert_eq!(reason.map(|r| r.code), Some(0));
    let status = sipp.exit().await;
    assert!(status.success(), "sipp failed: {status}");
    handle.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_trunk_carries_the_call_and_the_tone_echoes() {
    if !have_sipp() {
        return;
    }
    let mut sipp = Sipp::tcp_echo().await;
    let (server, _dir) = server(sipp.addr, |pstn| {
        pstn.outbound[0].transport = SipTransport::Tcp;
    })
    .await;
    call_and_hear_the_echo(&server, &mut sipp).await;
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_trunk_checked_against_its_ca_carries_the_call() {
    if !have_sipp() {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    let ca = TestCa::new(certs.path(), "trunk-ca");
    let trunk_leaf = ca.issue(certs.path(), TRUNK_NAME);
    let gateway_leaf = ca.issue(certs.path(), GATEWAY_NAME);
    let mut sipp = Sipp::tcp_echo().await;
    let terminator = Terminator::start(&trunk_leaf, sipp.addr).await;
    let tls_listen = SocketAddr::from(([127, 0, 0, 1], free_tcp_port()));
    let (server, _dir) = server(terminator.addr, |pstn| {
        pstn.outbound[0].transport = SipTransport::Tls;
        pstn.outbound[0].tls = Some(TrunkTls {
            ca: Some(ca.pem.clone()),
            server_name: Some(TRUNK_NAME.into()),
        });
        pstn.tls = Some(SipTls {
            listen: tls_listen,
            cert: gateway_leaf.cert.clone(),
            key: gateway_leaf.key.clone(),
        });
    })
    .await;

    // The gateway's own listener presents its certificate.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&ca.pem).unwrap())
        .unwrap();
    let client_config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
    let tcp = TcpStream::connect(tls_listen).await.unwrap();
    let name = ServerName::try_from(GATEWAY_NAME).unwrap();
    tokio::time::timeout(GUARD, connector.connect(name, tcp))
        .await
        .expect("TLS handshake with the gateway in time")
        .expect("the gateway's certificate is trusted");

    call_and_hear_the_echo(&server, &mut sipp).await;
    server.shut_down().await;
    drop(terminator);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_trunk_with_a_certificate_from_another_ca_fails_the_call() {
    let certs = tempfile::tempdir().unwrap();
    let trusted = TestCa::new(certs.path(), "trusted-ca");
    let rogue = TestCa::new(certs.path(), "rogue-ca");
    let leaf = rogue.issue(certs.path(), TRUNK_NAME);
    // Twice: a refused trunk does not wedge the gateway.
    refused_dials(&leaf, &trusted, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_trunk_whose_certificate_names_another_server_fails_the_call() {
    let certs = tempfile::tempdir().unwrap();
    let trusted = TestCa::new(certs.path(), "trusted-ca");
    let leaf = trusted.issue(certs.path(), "other.trunk.test");
    refused_dials(&leaf, &trusted, 1).await;
}

/// A trunk presenting `leaf`, configured to trust `ca` and [`TRUNK_NAME`]: `dials`
/// dials in a row each end with 503/4804, and the server goes on serving.
async fn refused_dials(leaf: &Leaf, ca: &TestCa, dials: usize) {
    // No SIP peer behind it: the handshake must fail before any SIP is sent.
    let backend = SocketAddr::from(([127, 0, 0, 1], free_tcp_port()));
    let terminator = Terminator::start(leaf, backend).await;
    let (server, _dir) = server(terminator.addr, |pstn| {
        pstn.outbound[0].transport = SipTransport::Tls;
        pstn.outbound[0].tls = Some(TrunkTls {
            ca: Some(ca.pem.clone()),
            server_name: Some(TRUNK_NAME.into()),
        });
    })
    .await;
    let (handle, mut events) = client(&server).await;
    for _ in 0..dials {
        let call = dial(&handle).await;
        let reason = until_state(&mut events, &call, CallState::Disconnected)
            .await
            .expect("an end reason");
        assert_eq!((reason.code, reason.subcode), (503, 4804), "{reason:?}");
        assert!(reason.message.contains("certificate"), "{reason:?}");
    }
    assert!(
        server.media_stats().await.is_some(),
        "the server still serves"
    );
    handle.close().await;
    server.shut_down().await;
    drop(terminator);
}

/// The README's trunk transport example loads; a `tls` table on a UDP trunk is refused
/// with the trunk named.
#[test]
fn transport_settings_load_from_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ringwire.toml");
    let config = |udp_extra: &str| {
        format!(
            r#"http_addr = "127.0.0.1:8080"
[pstn]
sip_listen = "127.0.0.1:5060"
rtp_ports = {{ first = 20000, last = 20999 }}

[[pstn.outbound]]
name = "carrier"
address = "198.51.100.20:5060"
allowed_country_codes = ["1"]
{udp_extra}

[[pstn.outbound]]
name = "carrier-tcp"
address = "198.51.100.21:5060"
transport = "tcp"
allowed_country_codes = ["33"]

[[pstn.outbound]]
name = "carrier-tls"
address = "198.51.100.30:5061"
transport = "tls"
tls = {{ ca = "/etc/ringwire/carrier-ca.pem", server_name = "sip.carrier.example" }}
allowed_country_codes = ["44"]

[pstn.tls]
listen = "127.0.0.1:5061"
cert = "/etc/ringwire/sip-chain.pem"
key = "/etc/ringwire/sip-key.pem"
"#
        )
    };
    std::fs::write(&path, config("")).unwrap();
    let loaded = ServerConfig::load(Some(&path)).unwrap();
    let pstn = loaded.pstn.unwrap();
    let transports: Vec<_> = pstn.outbound.iter().map(|t| t.transport).collect();
    assert_eq!(
        transports,
        [SipTransport::Udp, SipTransport::Tcp, SipTransport::Tls]
    );
    let tls = pstn.outbound[2].tls.as_ref().unwrap();
    assert_eq!(tls.server_name.as_deref(), Some("sip.carrier.example"));
    assert_eq!(
        tls.ca.as_deref(),
        Some(Path::new("/etc/ringwire/carrier-ca.pem"))
    );
    assert_eq!(pstn.tls.unwrap().listen.port(), 5061);

    std::fs::write(&path, config(r#"tls = { ca = "/etc/ringwire/ca.pem" }"#)).unwrap();
    let error = ServerConfig::load(Some(&path)).unwrap_err().to_string();
    assert!(
        error.contains("`carrier`") && error.contains("tls"),
        "{error}"
    );
}

/// A phone calling in over TCP (sipp `-t t1` as the inbound trunk's UAC) from
/// [`PHONE`]: an INVITE with a PCMU offer, then the final `code` is ACKed.
const TCP_CALLER: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="a phone calls in over TCP">
  <send><![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port];transport=tcp SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:+15557654321@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:+15557654321@[local_ip]:[local_port];transport=tcp>
      Max-Forwards: 70
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
  <recv response="100" optional="true" />
  <recv response="180" optional="true" />
  <recv response="603" />
  <send><![CDATA[

      ACK sip:[service]@[remote_ip]:[remote_port];transport=tcp SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
</scenario>"#;

/// The number the server owns on its inbound trunk, dispatched to user `bob`.
const OWNED: &str = "+15550001111";
/// The calling phone.
const PHONE: &str = "+15557654321";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_calls_in_over_tcp_and_gets_the_decline() {
    if !have_sipp() {
        return;
    }
    // A TCP outbound trunk makes the gateway listen on TCP; nobody listens there.
    let nowhere = SocketAddr::from(([127, 0, 0, 1], free_tcp_port()));
    let (server, _dir) = server(nowhere, |pstn| {
        pstn.outbound[0].transport = SipTransport::Tcp;
        pstn.inbound = vec![ringwire_pstn::config::InboundTrunk::new(
            "sipp-in",
            vec![OWNED.into()],
            vec!["127.0.0.1/32".into()],
        )];
        pstn.dispatch = vec![ringwire_pstn::config::DispatchRule {
            number: OWNED.into(),
            target: ringwire_pstn::config::DispatchTarget::User("bob".into()),
        }];
    })
    .await;
    let user = UserId::new("bob").unwrap();
    let token = server.issue_token(&user, Scopes::from(Scope::Voip), Duration::from_secs(3600));
    let endpoint = Endpoint::ws(format!("ws://{}/v1/signaling", server.http_addr()));
    let (bob, mut events) = tokio::time::timeout(
        GUARD,
        SignalingClient::connect(endpoint, token, ConnectOptions::default()),
    )
    .await
    .expect("connect in time")
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("caller.xml"), TCP_CALLER).unwrap();
    let gateway = server.sip_addr().unwrap();
    let child = Command::new("sipp")
        .current_dir(dir.path())
        .args(["-sf", "caller.xml", &gateway.to_string(), "-t", "t1"])
        .args(["-s", OWNED.trim_start_matches('+')])
        .args(["-i", "127.0.0.1", "-p", &free_tcp_port().to_string()])
        .args(["-mi", "127.0.0.1", "-mp", &free_udp_port().to_string()])
        .args(["-m", "1", "-nostdin", "-timeout", "60s", "-timeout_error"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp starts");
    let mut sipp = Sipp {
        child,
        addr: gateway,
        _dir: dir,
    };

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
    let (call, caller) = tokio::time::timeout(GUARD, wait)
        .await
        .expect("an incoming call over TCP in time");
    assert_eq!(caller, Identifier::phone(PHONE).unwrap());
    bob.reject(&call).await.unwrap();
    let status = sipp.exit().await;
    assert!(
        status.success(),
        "sipp did not get its 603 over TCP: {status}"
    );
    bob.close().await;
    server.shut_down().await;
}
