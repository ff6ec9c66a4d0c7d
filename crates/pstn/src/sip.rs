//! The SIP side: an ezk endpoint and outbound legs towards a trunk.
//!
//! ezk is behind [`SipEndpoint`] and [`dial`]: the rest of the gateway sees
//! [`LegOutput`]s and plain channels, so the stack can be swapped. INVITE/ACK/BYE
//! and retransmissions are ezk's transaction layer; we only decide.
//!
//! This module is the tokio driver of a leg, not a sans-IO core: ezk's transaction
//! layer is async and owns its transport, so the leg's task owns the RTP socket and
//! reads the clock here, and hands datagrams and `now` to the sans-IO
//! [`PhoneMedia`], where the media decisions live.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytesstr::BytesStr;
use ezk_sdp_types::{SessionDescription, TaggedAddress};
use ezk_sip_auth::{
    ClientAuthenticator, DigestAuthenticator, DigestCredentials, DigestUser, RequestParts,
    ResponseParts,
};
use ezk_sip_core::{Endpoint, IncomingRequest, Layer, MayTake};
use ezk_sip_types::header::typed::{Contact, ContentType};
use ezk_sip_types::uri::NameAddr;
use ezk_sip_types::uri::SipUri;
use ezk_sip_types::{Method, StatusCode};
use ezk_sip_ua::dialog::{Dialog, DialogLayer};
use ezk_sip_ua::invite::acceptor::InviteAcceptor;
use ezk_sip_ua::invite::initiator::{EarlyResponse, InviteInitiator, Response};
use ezk_sip_ua::invite::{InviteLayer, create_ack};
use ringwire_signaling::EndReason;
use ringwire_signaling::controller::GatewayEvent;
use rustls::DigitallySignedStruct;
use rustls::RootCertStore;
use rustls::SignatureScheme;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::config::{
    Cidr, Credentials, OutboundTrunk, PstnConfig, SipTls, SipTransport, TransportConfigError,
};
use crate::error::{Error, Malformed};
use crate::g711::G711;
use crate::inbound::InviteSummary;
use crate::media::{CallAudio, PhoneMedia, PhoneMediaConfig, PhoneMediaEvent, RemoteMedia};
use crate::rtp::{DtmfDigit, MAX_DATAGRAM};

/// The SIP status a final response carried, mapped one to one to an end reason.
#[must_use]
pub fn end_reason(code: u16) -> EndReason {
    match code {
        486 | 600 => EndReason::busy(),
        480 => EndReason::unavailable(),
        404 | 484 | 604 => EndReason::not_found(),
        603 => EndReason::declined(),
        487 => EndReason::cancelled(),
        408 => EndReason::no_answer(),
        403 => EndReason::forbidden("the trunk refused the call"),
        c if (500..600).contains(&c) => EndReason::new(c, 0, "the trunk failed"),
        c => EndReason::new(c, 0, "the phone call failed"),
    }
}

/// Our SIP endpoint: UDP always; TCP, TLS towards trunks and a TLS listener as
/// [`SipEndpoint::start`] reads them from `[pstn]`. Transports are ezk's own
/// (`ezk_sip_core::transport`); rustls runs on the workspace's one crypto provider,
/// aws-lc-rs, named explicitly.
#[derive(Clone)]
pub struct SipEndpoint {
    endpoint: Endpoint,
    advertised: IpAddr,
    port: u16,
    /// How each configured trunk is dialed; an address not in it is dialed over UDP.
    trunks: Arc<[(SocketAddr, SipTransport)]>,
    /// The TLS listener's port, for our Contact towards TLS trunks.
    tls_port: Option<u16>,
    /// Checks TLS trunks' certificates and remembers why one was refused.
    verifier: Option<Arc<TrunkVerifier>>,
}

impl std::fmt::Debug for SipEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipEndpoint")
            .field("advertised", &self.advertised)
            .field("port", &self.port)
            .field("trunks", &self.trunks)
            .field("tls_port", &self.tls_port)
            .finish_non_exhaustive()
    }
}

impl SipEndpoint {
    /// Binds a UDP-only SIP endpoint (every trunk is dialed over UDP).
    ///
    /// # Errors
    /// [`Error::Io`] when the address cannot be bound.
    ///
    /// With a `gate`, requests from sources neither on an inbound trunk's allowlist
    /// nor an outbound trunk's address are dropped without a response, and new
    /// INVITEs from inbound trunks go to `gate.invites` instead of being answered
    /// by the stack.
    pub async fn bind(
        listen: SocketAddr,
        advertised: Option<IpAddr>,
        gate: Option<InboundGate>,
    ) -> Result<Self, Error> {
        let mut builder = builder(gate);
        let tp = builder.bind_udp(listen).await?;
        let bound = tp.bound();
        Ok(SipEndpoint {
            endpoint: builder.build(),
            advertised: advertised.unwrap_or(bound.ip()),
            port: bound.port(),
            trunks: Arc::new([]),
            tls_port: None,
            verifier: None,
        })
    }

    /// Starts the endpoint `config` describes: UDP on `sip_listen`; TCP on the same
    /// port when an outbound trunk uses TCP; a rustls connector checking each TLS
    /// trunk's certificate against its CA file (or the system's trust store) and
    /// server name; a TLS listener on `[pstn.tls] listen` when a certificate is
    /// configured. Each trunk is then dialed over its own transport. `gate` as in
    /// [`SipEndpoint::bind`].
    ///
    /// # Errors
    /// [`Error::Config`] for unusable transport settings or TLS files
    /// ([`TransportConfigError`]), [`Error::Io`] when a socket cannot be bound.
    pub async fn start(config: &PstnConfig, gate: Option<InboundGate>) -> Result<Self, Error> {
        let config_error = |e: TransportConfigError| Error::Config(e.to_string());
        config.validate_transports().map_err(config_error)?;
        // Read every file before binding anything.
        let own = config.tls.as_ref().map(load_own_certificate).transpose();
        let own = own.map_err(config_error)?;
        let tls_trunks: Vec<&OutboundTrunk> = config
            .outbound
            .iter()
            .filter(|t| t.transport == SipTransport::Tls)
            .collect();
        let verifier = if tls_trunks.is_empty() {
            None
        } else {
            Some(Arc::new(
                TrunkVerifier::new(&tls_trunks).map_err(config_error)?,
            ))
        };
        let mut builder = builder(gate);
        let tp = builder.bind_udp(config.sip_listen).await?;
        let bound = tp.bound();
        if config
            .outbound
            .iter()
            .any(|t| t.transport == SipTransport::Tcp)
        {
            // The UDP port, so one port serves both (RFC 3261 §18).
            builder
                .listen_tcp(SocketAddr::new(config.sip_listen.ip(), bound.port()))
                .await?;
        }
        if let Some(verifier) = &verifier {
            let client = client_config(verifier.clone(), own.clone()).map_err(config_error)?;
            builder.use_rustls_connector(tokio_rustls::TlsConnector::from(client));
        }
        let mut tls_port = None;
        if let (Some(tls), Some((chain, key))) = (&config.tls, own) {
            // ezk 0.9.2 runs the listener's handshakes one at a time in its accept
            // loop, without a timeout: a peer that connects and stays silent holds up
            // the next TLS connection. The port must be reachable from trunks only
            // (README); the gate drops other sources' requests, not their connections.
            let server = server_config(chain, key).map_err(config_error)?;
            builder
                .listen_rustls(tls.listen, tokio_rustls::TlsAcceptor::from(server))
                .await?;
            tls_port = Some(tls.listen.port());
        }
        Ok(SipEndpoint {
            endpoint: builder.build(),
            advertised: config.advertised_ip.unwrap_or(bound.ip()),
            port: bound.port(),
            trunks: config
                .outbound
                .iter()
                .map(|t| (t.address, t.transport))
                .collect(),
            tls_port,
            verifier,
        })
    }

    /// The bound SIP port (UDP, and TCP when a trunk uses it).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The transport `trunk` is dialed over.
    #[must_use]
    pub fn transport_to(&self, trunk: SocketAddr) -> SipTransport {
        self.trunks
            .iter()
            .find(|(a, _)| *a == trunk)
            .map_or(SipTransport::Udp, |(_, t)| *t)
    }

    /// The Request-URI for `number` at `trunk`, our From and our Contact, for the
    /// trunk's transport: `;transport=tcp` over TCP, `sips:` over TLS (with
    /// `;transport=tls` as well: ezk picks a transport for an IP address by that
    /// parameter only). Via is ezk's, naming the transport the request goes over.
    fn outbound_uris(
        &self,
        trunk: SocketAddr,
        number: &str,
        from_user: &str,
    ) -> (String, String, String) {
        let host = SocketAddr::new(self.advertised, self.port);
        let from = format!("sip:{from_user}@{host}");
        match self.transport_to(trunk) {
            SipTransport::Udp => (
                format!("sip:{number}@{trunk}"),
                from,
                format!("sip:ringwire@{host}"),
            ),
            SipTransport::Tcp => (
                format!("sip:{number}@{trunk};transport=tcp"),
                from,
                format!("sip:ringwire@{host};transport=tcp"),
            ),
            SipTransport::Tls => {
                // Without a listener, the trunk sends in-dialog requests over the
                // connection we opened (RFC 5923 reuse); our port is all we can name.
                let contact = SocketAddr::new(self.advertised, self.tls_port.unwrap_or(self.port));
                (
                    format!("sips:{number}@{trunk};transport=tls"),
                    from,
                    format!("sips:ringwire@{contact};transport=tls"),
                )
            }
        }
    }

    /// Why `trunk` could not be reached, when a request to it failed to go out.
    fn unreachable(&self, trunk: SocketAddr) -> EndReason {
        match self.transport_to(trunk) {
            SipTransport::Udp => EndReason::server_error(),
            SipTransport::Tcp => EndReason::new(503, 4803, "the SIP trunk could not be reached"),
            SipTransport::Tls => {
                if self
                    .verifier
                    .as_ref()
                    .is_some_and(|v| v.refused(trunk.ip()))
                {
                    EndReason::new(503, 4804, "the SIP trunk's TLS certificate is not trusted")
                } else {
                    EndReason::new(503, 4803, "the SIP trunk could not be reached")
                }
            }
        }
    }
}

/// The ezk endpoint builder with our layers (the gate first, when there is one).
fn builder(gate: Option<InboundGate>) -> ezk_sip_core::EndpointBuilder {
    let mut builder = Endpoint::builder();
    if let Some(gate) = gate {
        // First, so nothing from an unknown source reaches the other layers.
        builder.add_layer(gate);
    }
    builder.add_layer(DialogLayer::default());
    builder.add_layer(InviteLayer::default());
    builder.user_agent("ringwire");
    builder
}

/// The workspace's one rustls crypto provider (as the server's HTTPS and QUIC).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

type OwnCertificate = (Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>);

/// Reads `[pstn.tls]`'s certificate chain and key.
fn load_own_certificate(tls: &SipTls) -> Result<OwnCertificate, TransportConfigError> {
    let chain = read_certificates("[pstn.tls] cert", &tls.cert)?;
    let key =
        PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| TransportConfigError::TlsFile {
            what: "[pstn.tls] key",
            path: tls.key.clone(),
            message: e.to_string(),
        })?;
    Ok((chain, Arc::new(key)))
}

/// The certificates in a PEM file; none is an error.
fn read_certificates(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TransportConfigError> {
    let file_error = |message: String| TransportConfigError::TlsFile {
        what,
        path: path.to_owned(),
        message,
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(e.to_string()))?;
    if certificates.is_empty() {
        return Err(file_error("no certificate in the file".to_owned()));
    }
    Ok(certificates)
}

/// Towards TLS trunks: TLS 1.2 and 1.3, certificates checked by `verifier`, our own
/// certificate for trunks that ask for one.
fn client_config(
    verifier: Arc<TrunkVerifier>,
    own: Option<OwnCertificate>,
) -> Result<Arc<rustls::ClientConfig>, TransportConfigError> {
    let rustls_error = |e: rustls::Error| TransportConfigError::Rustls(e.to_string());
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(rustls_error)?
        .dangerous()
        // Not a way around verification: TrunkVerifier hands every certificate to
        // rustls' WebPkiServerVerifier with the trunk's own roots and name.
        .with_custom_certificate_verifier(verifier);
    let config = match own {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key.clone_key())
            .map_err(rustls_error)?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The TLS listener's: TLS 1.2 and 1.3, our certificate, no client certificates
/// (inbound trunks are admitted by source address, as over UDP).
fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
) -> Result<Arc<rustls::ServerConfig>, TransportConfigError> {
    let rustls_error = |e: rustls::Error| TransportConfigError::Rustls(e.to_string());
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(rustls_error)?
        .with_no_client_auth()
        .with_single_cert(chain, key.clone_key())
        .map_err(rustls_error)?;
    Ok(Arc::new(config))
}

/// One TLS trunk's trust: the roots and the name its certificate must carry.
#[derive(Debug)]
struct TrustedTrunk {
    ip: IpAddr,
    name: ServerName<'static>,
    verifier: Arc<WebPkiServerVerifier>,
}

/// Checks TLS trunks' certificates. ezk has one rustls connector per endpoint and
/// names the server by the Request-URI's host, our trunk's IP address; this finds the
/// trunk by that address and has rustls' WebPKI verifier check the certificate
/// against the trunk's own roots and configured name. Refusals are remembered per
/// address, so a failed dial can say why.
#[derive(Debug)]
struct TrunkVerifier {
    trunks: Vec<TrustedTrunk>,
    provider: Arc<CryptoProvider>,
    refused: std::sync::Mutex<Vec<IpAddr>>,
}

impl TrunkVerifier {
    fn new(trunks: &[&OutboundTrunk]) -> Result<Self, TransportConfigError> {
        let provider = provider();
        let mut system: Option<Arc<RootCertStore>> = None;
        let mut trusted = Vec::new();
        for t in trunks {
            let settings = t.tls.clone().unwrap_or_default();
            let no_anchors = |message: String| TransportConfigError::NoTrustAnchors {
                trunk: t.name.clone(),
                message,
            };
            let roots = match &settings.ca {
                Some(path) => {
                    let mut roots = RootCertStore::empty();
                    for certificate in read_certificates("tls.ca", path)? {
                        roots
                            .add(certificate)
                            .map_err(|e| no_anchors(format!("`{}`: {e}", path.display())))?;
                    }
                    Arc::new(roots)
                }
                None => match &system {
                    Some(roots) => roots.clone(),
                    None => {
                        let found = rustls_native_certs::load_native_certs();
                        let mut roots = RootCertStore::empty();
                        roots.add_parsable_certificates(found.certs);
                        if roots.is_empty() {
                            return Err(no_anchors(
                                "no tls.ca configured and the system trust store is empty"
                                    .to_owned(),
                            ));
                        }
                        let roots = Arc::new(roots);
                        system = Some(roots.clone());
                        roots
                    }
                },
            };
            let name = match &settings.server_name {
                Some(n) => ServerName::try_from(n.clone()).map_err(|_| {
                    TransportConfigError::BadServerName {
                        trunk: t.name.clone(),
                        name: n.clone(),
                    }
                })?,
                None => ServerName::IpAddress(t.address.ip().into()),
            };
            let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| no_anchors(e.to_string()))?;
            trusted.push(TrustedTrunk {
                ip: t.address.ip(),
                name,
                verifier,
            });
        }
        Ok(TrunkVerifier {
            trunks: trusted,
            provider,
            refused: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Whether the last certificate from `ip` was refused.
    fn refused(&self, ip: IpAddr) -> bool {
        let refused = self
            .refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        refused.contains(&ip)
    }

    fn remember(&self, ip: IpAddr, ok: bool) {
        let mut refused = self
            .refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        refused.retain(|r| *r != ip);
        if !ok {
            refused.push(ip);
        }
    }
}

impl ServerCertVerifier for TrunkVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let trunk = match server_name {
            ServerName::IpAddress(ip) => {
                let ip = IpAddr::from(*ip);
                self.trunks.iter().find(|t| t.ip == ip)
            }
            _ => None,
        };
        let Some(trunk) = trunk else {
            return Err(rustls::Error::General(format!(
                "{server_name:?} is not a configured TLS trunk"
            )));
        };
        let verified = trunk.verifier.verify_server_cert(
            end_entity,
            intermediates,
            &trunk.name,
            ocsp_response,
            now,
        );
        if let Err(error) = &verified {
            tracing::warn!(trunk = %trunk.ip, %error, "SIP trunk's TLS certificate refused");
        }
        self.remember(trunk.ip, verified.is_ok());
        verified
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What a leg reports.
#[derive(Debug, Clone, PartialEq)]
pub enum LegOutput {
    /// For `CallController::handle_gateway_event`.
    Event(GatewayEvent),
    /// One 20 ms opus frame of the phone's voice for the media plane.
    Audio(CallAudio),
    /// The phone pressed a key.
    Dtmf(DtmfDigit),
}

/// What the call side tells a running leg.
#[derive(Debug, Clone)]
pub enum LegInput {
    /// One 20 ms opus packet the phone should hear.
    Audio(Arc<[u8]>),
    /// Send a key.
    Dtmf(DtmfDigit),
    /// Answer an inbound call (200 OK with our SDP answer); outbound legs ignore it.
    Answer,
    /// Hang up (CANCEL before an answer, BYE after).
    HangUp,
    /// Hang up an inbound call: refuse it with this SIP status before the answer
    /// (603, 408, 480, ...), BYE after.
    Refuse(u16),
}

/// Everything one outbound leg needs.
#[derive(Debug, Clone)]
pub struct DialRequest {
    /// The trunk's SIP address.
    pub trunk: SocketAddr,
    /// The number to call (E.164 with `+`).
    pub number: String,
    /// The caller id to present (an owned number), if any.
    pub caller_id: Option<String>,
    /// The leg's RTP socket address (bound by the caller in the port range).
    pub rtp: SocketAddr,
    /// Give up ringing after this (408).
    pub ring_timeout: Duration,
    /// Hang up after this long connected.
    pub max_duration: Duration,
    /// Media settings.
    pub media: PhoneMediaConfig,
    /// Digest credentials for a trunk that challenges the INVITE (401/407).
    pub credentials: Option<Credentials>,
}

fn sdp_offer(ip: IpAddr, port: u16, session: u32) -> String {
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    format!(
        "v=0\r\no=ringwire {session} 1 IN {family} {ip}\r\ns=ringwire\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
    )
}

/// The far end's audio from an SDP answer: the first audio section with PCMU or PCMA.
#[must_use]
pub fn remote_media(sdp: &SessionDescription) -> Option<RemoteMedia> {
    let m = sdp.media_descriptions.iter().find(|m| {
        m.media.port != 0
            && m.media
                .fmts
                .iter()
                .any(|f| G711::from_payload_type(*f).is_some())
    })?;
    let connection = m.connection.as_ref().or(sdp.connection.as_ref())?;
    let ip: IpAddr = match &connection.address {
        TaggedAddress::IP4(v4) => (*v4).into(),
        TaggedAddress::IP6(v6) => (*v6).into(),
        _ => return None,
    };
    let codec = m
        .media
        .fmts
        .iter()
        .find_map(|f| G711::from_payload_type(*f))?;
    let dtmf_payload_type = m
        .rtpmap
        .iter()
        .find(|r| r.encoding.eq_ignore_ascii_case("telephone-event") && r.clock_rate == 8000)
        .map(|r| r.payload);
    Some(RemoteMedia {
        address: SocketAddr::new(ip, m.media.port),
        codec,
        dtmf_payload_type,
    })
}

pub(crate) fn sdp_of(body: &[u8]) -> Option<SessionDescription> {
    if body.is_empty() {
        return None;
    }
    let text = BytesStr::from_utf8_bytes(bytes::Bytes::copy_from_slice(body)).ok()?;
    SessionDescription::parse(&text).ok()
}

/// Dials `request.number` through the trunk and runs the leg until it ends: the
/// last output is always `LegOutput::Event(GatewayEvent::Ended(..))`.
pub async fn dial(
    sip: SipEndpoint,
    request: DialRequest,
    socket: UdpSocket,
    mut input: mpsc::Receiver<LegInput>,
    output: mpsc::Sender<LegOutput>,
) {
    let reason = match run_outbound(&sip, &request, &socket, &mut input, &output).await {
        Ok(reason) => reason,
        Err(e) => {
            tracing::debug!(error = %e, "outbound leg failed");
            EndReason::server_error()
        }
    };
    let _ = output
        .send(LegOutput::Event(GatewayEvent::Ended(reason)))
        .await;
}

async fn run_outbound(
    sip: &SipEndpoint,
    request: &DialRequest,
    socket: &UdpSocket,
    input: &mut mpsc::Receiver<LegInput>,
    output: &mpsc::Sender<LegOutput>,
) -> Result<EndReason, Error> {
    let bad_uri = |_| Error::Config("cannot build a SIP URI for the trunk".into());
    let from_user = request.caller_id.as_deref().unwrap_or("anonymous");
    let (target, from, contact) = sip.outbound_uris(request.trunk, &request.number, from_user);
    let target: SipUri = target.parse().map_err(bad_uri)?;
    let from: SipUri = from.parse().map_err(bad_uri)?;
    let contact: SipUri = contact.parse().map_err(bad_uri)?;
    let mut initiator = InviteInitiator::new(
        sip.endpoint.clone(),
        NameAddr::uri(from),
        Contact::new(NameAddr::uri(contact)),
        target,
    );
    initiator.support_100rel = false;
    initiator.support_timer = false;
    let offer = sdp_offer(sip.advertised, request.rtp.port(), request.media.ssrc);
    let mut auth = request.credentials.as_ref().map(|c| {
        let mut credentials = DigestCredentials::new();
        credentials.set_default(DigestUser::new(
            c.username.clone(),
            c.password.clone().into_bytes(),
        ));
        DigestAuthenticator::new(credentials)
    });
    // Over TCP and TLS the first INVITE opens the connection (or finds ezk's open one).
    if let Err(e) = send_invite(&mut initiator, auth.as_mut(), &offer).await {
        tracing::debug!(error = %e, trunk = %request.trunk, "INVITE not sent");
        return Ok(sip.unreachable(request.trunk));
    }

    let mut media = PhoneMedia::new(request.media)?;
    let ring_deadline = tokio::time::Instant::now() + request.ring_timeout;
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    // Ringing: wait for the final response; early media plays meanwhile.
    let mut early = Vec::new();
    let (session, final_response) = loop {
        tokio::select! {
            response = initiator.receive() => match response.map_err(sip_error)? {
                Response::Provisional(r) => {
                    if r.line.code.into_u16() == 180 {
                        let _ = output.send(LegOutput::Event(GatewayEvent::Ringing)).await;
                    }
                }
                Response::Early(e, r, _) => {
                    let code = r.line.code.into_u16();
                    if let Some(remote) = sdp_of(&r.body).as_ref().and_then(remote_media) {
                        media.set_remote(remote, std::time::Instant::now());
                        let _ = output.send(LegOutput::Event(GatewayEvent::EarlyMedia)).await;
                    } else if code == 180 {
                        let _ = output.send(LegOutput::Event(GatewayEvent::Ringing)).await;
                    }
                    early.push(e);
                }
                Response::Failure(r) => {
                    let code = r.line.code.into_u16();
                    // RFC 3261 §22.2: answer a 401/407 challenge once with credentials
                    // (the authenticator refuses a second challenge of the same nonce).
                    if let (401 | 407, Some(a)) = (code, auth.as_mut())
                        && answer_challenge(&initiator, a, &r)
                    {
                        send_invite(&mut initiator, Some(a), &offer).await?;
                        continue;
                    }
                    return Ok(end_reason(code));
                }
                Response::Session(s, r) => break (s, r),
                Response::EarlyEvent => {}
                Response::Finished => return Ok(EndReason::no_answer()),
            },
            Some(resp) = next_early(&mut early) => {
                if let EarlyResponse::Success(s, r) = resp { break (s, r) }
            }
            recv = socket.recv_from(&mut buf) => {
                let (n, from) = recv?;
                forward_media(&mut media, &buf[..n.min(buf.len())], from, output).await;
            }
            msg = input.recv() => match msg {
                Some(LegInput::Audio(p)) => {
                    media.handle_call_audio(&p, std::time::Instant::now());
                    flush(&mut media, socket).await;
                }
                Some(LegInput::Dtmf(_) | LegInput::Answer) => {}
                Some(LegInput::HangUp | LegInput::Refuse(_)) | None => {
                    cancel(initiator).await?;
                    return Ok(EndReason::cancelled());
                }
            },
            () = tokio::time::sleep_until(ring_deadline) => {
                cancel(initiator).await?;
                return Ok(EndReason::no_answer());
            }
        }
    };
    // RFC 3261 §13.2.2.4: ACK the 2xx.
    let mut ack = create_ack(&session.dialog, final_response.base_headers.cseq.cseq)
        .await
        .map_err(sip_error)?;
    session.endpoint.send_outgoing_request(&mut ack).await?;
    initiator.set_acknowledge(&session, ack);
    if let Some(remote) = sdp_of(&final_response.body).as_ref().and_then(remote_media) {
        media.set_remote(remote, std::time::Instant::now());
    }
    let _ = output.send(LegOutput::Event(GatewayEvent::Answered)).await;

    run_connected(session, media, socket, input, output, request.max_duration).await
}

/// The answered part of a leg, either way: media both ways until someone hangs up,
/// the media times out or the maximum duration is reached.
async fn run_connected(
    mut session: ezk_sip_ua::invite::session::InviteSession,
    mut media: PhoneMedia,
    socket: &UdpSocket,
    input: &mut mpsc::Receiver<LegInput>,
    output: &mpsc::Sender<LegOutput>,
    max_duration: Duration,
) -> Result<EndReason, Error> {
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let hard_stop = tokio::time::Instant::now() + max_duration;
    loop {
        let media_due = media
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or(hard_stop)
            .min(hard_stop);
        tokio::select! {
            event = session.run() => match event.map_err(sip_error)? {
                ezk_sip_ua::invite::session::InviteSessionEvent::Bye(bye) => {
                    let _ = session.handle_bye(bye).await;
                    return Ok(EndReason::normal());
                }
                ezk_sip_ua::invite::session::InviteSessionEvent::Terminated => {
                    return Ok(EndReason::normal());
                }
                _ => {}
            },
            recv = socket.recv_from(&mut buf) => {
                let (n, from) = recv?;
                forward_media(&mut media, &buf[..n.min(buf.len())], from, output).await;
            }
            msg = input.recv() => match msg {
                Some(LegInput::Audio(p)) => {
                    media.handle_call_audio(&p, std::time::Instant::now());
                    flush(&mut media, socket).await;
                }
                Some(LegInput::Dtmf(d)) => {
                    media.send_dtmf(d, std::time::Instant::now());
                    flush(&mut media, socket).await;
                }
                Some(LegInput::Answer) => {}
                Some(LegInput::HangUp | LegInput::Refuse(_)) | None => {
                    let _ = session.terminate().await;
                    return Ok(EndReason::normal());
                }
            },
            () = tokio::time::sleep_until(media_due) => {
                media.handle_timeout(tokio::time::Instant::now().into_std());
                flush(&mut media, socket).await;
                while let Some(e) = media.poll_event() {
                    if e == PhoneMediaEvent::TimedOut {
                        let _ = session.terminate().await;
                        return Ok(EndReason::media_failure());
                    }
                }
                if tokio::time::Instant::now() >= hard_stop {
                    let _ = session.terminate().await;
                    return Ok(EndReason::new(0, 4900, "maximum call duration reached"));
                }
            }
        }
    }
}

/// Who may talk to the gateway's SIP endpoint, and where new inbound INVITEs go.
/// An ezk layer placed first: see [`SipEndpoint::bind`].
#[derive(Debug)]
pub struct InboundGate {
    /// Inbound trunks' source blocks: their new INVITEs are taken.
    pub allowed: Vec<Cidr>,
    /// Outbound trunks' addresses: their requests (BYE, re-INVITE) reach dialogs.
    pub trusted: Vec<IpAddr>,
    /// Where taken INVITEs go; when full, an INVITE is dropped (the caller
    /// retransmits it).
    pub invites: mpsc::Sender<InboundInvite>,
}

/// A new INVITE from an inbound trunk's address, taken out of the SIP stack.
pub struct InboundInvite {
    request: IncomingRequest,
    summary: Result<InviteSummary, Malformed>,
}

impl std::fmt::Debug for InboundInvite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundInvite")
            .field("source", &self.request.tp_info.source)
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

impl InboundInvite {
    /// Where it came from.
    #[must_use]
    pub fn source(&self) -> SocketAddr {
        self.request.tp_info.source
    }

    /// What it says, or why it could not be read.
    ///
    /// # Errors
    /// The [`Malformed`] reason (answer 400).
    pub fn summary(&self) -> Result<&InviteSummary, &Malformed> {
        self.summary.as_ref()
    }
}

impl InboundGate {
    /// What to do with a request before any other layer sees it: `true` to drop it.
    fn screen(&self, request: &mut Option<IncomingRequest>) {
        let Some(r) = request.as_ref() else { return };
        let source = r.tp_info.source.ip();
        let inbound = self.allowed.iter().any(|c| c.contains(source));
        if !inbound && !self.trusted.contains(&source) {
            // Unknown source: no response at all (not even 100 Trying).
            tracing::debug!(%source, method = %r.line.method, "SIP request from an unknown source dropped");
            *request = None;
            return;
        }
        let new_invite = r.line.method == Method::INVITE && r.base_headers.to.tag.is_none();
        if !(inbound && new_invite) {
            return;
        }
        let Some(request) = request.take() else {
            return;
        };
        let summary = crate::inbound::check_request_line(&request.tp_info.buffer).and_then(|()| {
            InviteSummary::from_parts(&request.line, &request.headers, &request.body)
                .map(|s| s.with_raw_request_uri(&request.tp_info.buffer))
        });
        if let Err(e) = self.invites.try_send(InboundInvite { request, summary }) {
            tracing::debug!(error = %e, "inbound INVITE dropped: the gateway is busy");
        }
    }
}

// `Layer` is an async_trait; its one method is written out by hand (a boxed future)
// so this crate needs no proc macro for it. Screening is synchronous.
impl Layer for InboundGate {
    fn name(&self) -> &'static str {
        "ringwire-inbound-gate"
    }

    fn receive<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        _endpoint: &'life1 Endpoint,
        mut request: MayTake<'life2, IncomingRequest>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        self.screen(request.inner());
        Box::pin(std::future::ready(()))
    }
}

/// Refuses an inbound INVITE with `code` (a final response, 300..=699).
pub async fn refuse(sip: &SipEndpoint, invite: InboundInvite, code: u16) {
    reject(sip, invite, code, &[]).await;
}

/// Refuses an inbound INVITE over a cap with `code` (503 or 486), saying when to
/// retry when `retry_after` is set (whole seconds; see
/// [`Screening::Limited`](crate::inbound::Screening::Limited)).
pub async fn refuse_later(
    sip: &SipEndpoint,
    invite: InboundInvite,
    code: u16,
    retry_after: Option<Duration>,
) {
    let header = retry_after.map(|d| {
        (
            ezk_sip_types::Name::RETRY_AFTER,
            d.as_secs().max(1).to_string(),
        )
    });
    reject(sip, invite, code, header.as_slice()).await;
}

/// Answers an inbound INVITE with 401 and the digest `challenge` (one
/// `WWW-Authenticate` per algorithm, in order). The client ACKs it and sends a new
/// INVITE with credentials.
pub async fn challenge(
    sip: &SipEndpoint,
    invite: InboundInvite,
    challenge: &crate::digest::Challenge,
) {
    let headers: Vec<(ezk_sip_types::Name, String)> = challenge
        .www_authenticate
        .iter()
        .map(|v| (ezk_sip_types::Name::WWW_AUTHENTICATE, v.clone()))
        .collect();
    reject(sip, invite, 401, &headers).await;
}

/// Answers `invite` with the final `code` (300..=699, else 480) and `headers`, in
/// a server INVITE transaction (ezk absorbs the ACK and retransmits the response).
async fn reject(
    sip: &SipEndpoint,
    mut invite: InboundInvite,
    code: u16,
    headers: &[(ezk_sip_types::Name, String)],
) {
    let code = if (300..=699).contains(&code) {
        code
    } else {
        480
    };
    let mut response = sip
        .endpoint
        .create_response(&invite.request, StatusCode::from(code), None);
    for (name, value) in headers {
        response.msg.headers.insert(name.clone(), value.as_str());
    }
    let tsx = sip.endpoint.create_server_inv_tsx(&mut invite.request);
    if let Err(e) = tsx.respond_failure(response).await {
        tracing::debug!(error = %e, code, "refusing an inbound INVITE failed");
    }
}

/// Everything one inbound leg needs besides the INVITE.
#[derive(Debug, Clone)]
pub struct AnswerRequest {
    /// The caller's audio, from its offer.
    pub offer: RemoteMedia,
    /// The leg's RTP socket address.
    pub rtp: SocketAddr,
    /// Hang up after this long connected.
    pub max_duration: Duration,
    /// Media settings.
    pub media: PhoneMediaConfig,
}

fn sdp_answer(ip: IpAddr, port: u16, session: u32, offer: &RemoteMedia) -> String {
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let pt = offer.codec.payload_type();
    let name = offer.codec.name();
    let (dtmf_fmt, dtmf_lines) = match offer.dtmf_payload_type {
        Some(d) => (
            format!(" {d}"),
            format!("a=rtpmap:{d} telephone-event/8000\r\na=fmtp:{d} 0-15\r\n"),
        ),
        None => (String::new(), String::new()),
    };
    format!(
        "v=0\r\no=ringwire {session} 1 IN {family} {ip}\r\ns=ringwire\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {pt}{dtmf_fmt}\r\na=rtpmap:{pt} {name}/8000\r\n{dtmf_lines}\
         a=ptime:20\r\na=sendrecv\r\n"
    )
}

/// Runs an inbound leg until it ends: 180 Ringing, then 200 OK with our SDP answer
/// on [`LegInput::Answer`] (or the refusal [`LegInput::Refuse`] says), media until
/// someone hangs up. The last output is always `LegOutput::Event(GatewayEvent::Ended(..))`.
pub async fn answer(
    sip: SipEndpoint,
    invite: InboundInvite,
    request: AnswerRequest,
    socket: UdpSocket,
    mut input: mpsc::Receiver<LegInput>,
    output: mpsc::Sender<LegOutput>,
) {
    let reason = match run_inbound(&sip, invite, &request, &socket, &mut input, &output).await {
        Ok(reason) => reason,
        Err(e) => {
            tracing::debug!(error = %e, "inbound leg failed");
            EndReason::server_error()
        }
    };
    let _ = output
        .send(LegOutput::Event(GatewayEvent::Ended(reason)))
        .await;
}

async fn run_inbound(
    sip: &SipEndpoint,
    invite: InboundInvite,
    request: &AnswerRequest,
    socket: &UdpSocket,
    input: &mut mpsc::Receiver<LegInput>,
    output: &mpsc::Sender<LegOutput>,
) -> Result<EndReason, Error> {
    let host = SocketAddr::new(sip.advertised, sip.port);
    let contact: SipUri = format!("sip:ringwire@{host}")
        .parse()
        .map_err(|_| Error::Config("cannot build our SIP contact".into()))?;
    let dialog = match Dialog::new_server(
        sip.endpoint.clone(),
        &invite.request,
        Contact::new(NameAddr::uri(contact)),
    ) {
        Ok(dialog) => dialog,
        Err(e) => {
            tracing::debug!(error = %e, "inbound INVITE without a usable dialog");
            refuse(sip, invite, 400).await;
            return Ok(EndReason::new(400, 0, "malformed INVITE"));
        }
    };
    let mut acceptor = InviteAcceptor::new(dialog, invite.request);
    let ringing = acceptor
        .create_response(StatusCode::RINGING, None)
        .await
        .map_err(acceptor_error)?;
    acceptor
        .respond_provisional(ringing)
        .await
        .map_err(acceptor_error)?;
    let _ = output.send(LegOutput::Event(GatewayEvent::Ringing)).await;
    let mut media = PhoneMedia::new(request.media)?;
    // Ringing: wait for the controller's answer or refusal, or the caller's CANCEL.
    loop {
        tokio::select! {
            () = acceptor.cancelled() => {
                // ezk answered the CANCEL (200) and the INVITE (487).
                return Ok(EndReason::cancelled());
            }
            msg = input.recv() => match msg {
                Some(LegInput::Answer) => break,
                Some(LegInput::Audio(_) | LegInput::Dtmf(_)) => {}
                Some(LegInput::Refuse(code)) => {
                    let code = if (300..=699).contains(&code) { code } else { 480 };
                    let response = acceptor
                        .create_response(StatusCode::from(code), None)
                        .await
                        .map_err(acceptor_error)?;
                    acceptor.respond_failure(response).await.map_err(acceptor_error)?;
                    return Ok(end_reason(code));
                }
                Some(LegInput::HangUp) | None => {
                    let response = acceptor
                        .create_response(StatusCode::from(480), None)
                        .await
                        .map_err(acceptor_error)?;
                    acceptor.respond_failure(response).await.map_err(acceptor_error)?;
                    return Ok(EndReason::unavailable());
                }
            },
        }
    }
    let mut ok = acceptor
        .create_response(StatusCode::OK, None)
        .await
        .map_err(acceptor_error)?;
    ok.msg
        .headers
        .insert_named(&ContentType(BytesStr::from_static("application/sdp")));
    ok.msg.body = sdp_answer(
        sip.advertised,
        request.rtp.port(),
        request.media.ssrc,
        &request.offer,
    )
    .into();
    media.set_remote(request.offer, std::time::Instant::now());
    // RFC 3261 §13.3.1.4: the 200 is retransmitted until the ACK arrives.
    let (session, _ack) = acceptor.respond_success(ok).await.map_err(acceptor_error)?;
    let _ = output.send(LegOutput::Event(GatewayEvent::Answered)).await;
    run_connected(session, media, socket, input, output, request.max_duration).await
}

fn acceptor_error(e: ezk_sip_ua::invite::acceptor::Error) -> Error {
    Error::Sip(e.to_string())
}

/// Sends a new INVITE with our SDP offer, with the authorization `auth` has for it.
async fn send_invite(
    initiator: &mut InviteInitiator,
    auth: Option<&mut DigestAuthenticator>,
    offer: &str,
) -> Result<(), Error> {
    let mut invite = initiator.create_invite();
    invite
        .headers
        .insert_named(&ContentType(BytesStr::from_static("application/sdp")));
    invite.body = offer.to_owned().into();
    if let Some(auth) = auth {
        auth.authorize_request(&mut invite.headers);
    }
    initiator.send_invite(invite).await.map_err(sip_error)
}

/// Whether the challenge in `response` to our last INVITE can be answered.
fn answer_challenge(
    initiator: &InviteInitiator,
    auth: &mut DigestAuthenticator,
    response: &ezk_sip_core::transaction::TsxResponse,
) -> bool {
    let Some(invite) = initiator.transaction().map(|t| t.request()) else {
        return false;
    };
    let answered = auth.handle_rejection(
        RequestParts {
            line: &invite.msg.line,
            headers: &invite.msg.headers,
            body: &invite.msg.body,
        },
        ResponseParts {
            line: &response.line,
            headers: &response.headers,
            body: &response.body,
        },
    );
    if let Err(e) = &answered {
        tracing::debug!(error = %e, "trunk challenge not answered");
    }
    answered.is_ok()
}

/// How long a CANCELled INVITE may wait for its final response: RFC 3261 §9.1 lets
/// the client give up on the transaction after 64*T1 without one.
const CANCEL_WAIT: Duration = Duration::from_secs(32);

/// CANCELs a ringing INVITE and waits (at most [`CANCEL_WAIT`]) for its final
/// response, so a far end that never answers the CANCEL cannot keep the leg alive.
async fn cancel(initiator: InviteInitiator) -> Result<(), Error> {
    match tokio::time::timeout(CANCEL_WAIT, initiator.cancel()).await {
        Ok(result) => result.map_err(sip_error),
        Err(_) => {
            tracing::debug!("no final response to the CANCELled INVITE; giving up on it");
            Ok(())
        }
    }
}

async fn next_early(early: &mut [ezk_sip_ua::invite::initiator::Early]) -> Option<EarlyResponse> {
    if early.is_empty() {
        return std::future::pending().await;
    }
    std::future::poll_fn(|cx| {
        for e in early.iter_mut() {
            if let std::task::Poll::Ready(r) = e.poll_receive(cx) {
                return std::task::Poll::Ready(r.ok());
            }
        }
        std::task::Poll::Pending
    })
    .await
}

async fn forward_media(
    media: &mut PhoneMedia,
    datagram: &[u8],
    from: SocketAddr,
    output: &mpsc::Sender<LegOutput>,
) {
    let now = tokio::time::Instant::now().into_std();
    if let Err(e) = media.handle_receive(now, from, datagram) {
        tracing::debug!(%from, error = %e, "bad RTP dropped");
    }
    while let Some(frame) = media.poll_audio() {
        let _ = output.send(LegOutput::Audio(frame)).await;
    }
    while let Some(event) = media.poll_event() {
        if let PhoneMediaEvent::Dtmf(d) = event {
            let _ = output.send(LegOutput::Dtmf(d)).await;
        }
    }
}

async fn flush(media: &mut PhoneMedia, socket: &UdpSocket) {
    while let Some(t) = media.poll_transmit() {
        if let Err(e) = socket.send_to(&t.contents, t.destination).await {
            tracing::debug!(error = %e, "RTP send failed");
        }
    }
}

fn sip_error(e: ezk_sip_core::Error) -> Error {
    Error::Sip(e.to_string())
}

#[cfg(test)]
mod transport_tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{PortRange, TrunkTls};

    fn config(transport: SipTransport, tls: Option<TrunkTls>) -> PstnConfig {
        PstnConfig {
            sip_listen: "127.0.0.1:0".parse().unwrap(),
            tls: None,
            advertised_ip: None,
            rtp_ports: PortRange {
                first: 20000,
                last: 20099,
            },
            outbound: vec![OutboundTrunk {
                name: "carrier".into(),
                address: "127.0.0.1:5061".parse().unwrap(),
                transport,
                tls,
                credentials: None,
                caller_ids: Vec::new(),
                allowed_country_codes: vec!["1".into()],
            }],
            inbound: Vec::new(),
            dispatch: Vec::new(),
            ring_timeout: Duration::from_secs(30),
            max_call_duration: Duration::from_secs(3600),
            media_timeout: Duration::from_secs(20),
            max_calls_per_identity: 4,
            calls_per_minute_per_identity: 10,
        }
    }

    #[tokio::test]
    async fn uris_name_the_trunks_transport() {
        let trunk: SocketAddr = "127.0.0.1:5061".parse().unwrap();
        let udp = SipEndpoint::bind("127.0.0.1:0".parse().unwrap(), None, None)
            .await
            .unwrap();
        let port = udp.port();
        assert_eq!(
            udp.outbound_uris(trunk, "+15551230000", "+15550001111"),
            (
                "sip:+15551230000@127.0.0.1:5061".to_owned(),
                format!("sip:+15550001111@127.0.0.1:{port}"),
                format!("sip:ringwire@127.0.0.1:{port}"),
            )
        );

        let tcp = SipEndpoint::start(&config(SipTransport::Tcp, None), None)
            .await
            .unwrap();
        let port = tcp.port();
        // TCP listens on the UDP port.
        assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_err());
        let (target, _, contact) = tcp.outbound_uris(trunk, "+15551230000", "anonymous");
        assert_eq!(target, "sip:+15551230000@127.0.0.1:5061;transport=tcp");
        assert_eq!(
            contact,
            format!("sip:ringwire@127.0.0.1:{port};transport=tcp")
        );
        // An address that is no configured trunk is dialed over UDP.
        let other: SocketAddr = "127.0.0.1:5999".parse().unwrap();
        assert_eq!(tcp.transport_to(other), SipTransport::Udp);
        for uri in [target, contact] {
            uri.parse::<SipUri>().unwrap();
        }
    }

    #[tokio::test]
    async fn tls_files_that_cannot_be_used_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing-ca.pem");
        let tls = TrunkTls {
            ca: Some(missing.clone()),
            server_name: Some("sip.carrier.example".into()),
        };
        let error = SipEndpoint::start(&config(SipTransport::Tls, Some(tls)), None)
            .await
            .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("tls.ca"), "{message}");
        assert!(message.contains("missing-ca.pem"), "{message}");

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let tls = TrunkTls {
            ca: Some(empty),
            server_name: None,
        };
        let error = SipEndpoint::start(&config(SipTransport::Tls, Some(tls)), None)
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("no certificate in the file"),
            "{error}"
        );

        let mut listener = config(SipTransport::Udp, None);
        listener.tls = Some(SipTls {
            listen: "127.0.0.1:5061".parse().unwrap(),
            cert: dir.path().join("gateway.pem"),
            key: dir.path().join("gateway.key"),
        });
        let error = SipEndpoint::start(&listener, None).await.unwrap_err();
        assert!(error.to_string().contains("[pstn.tls] cert"), "{error}");
    }
}
