//! Whom a client trusts: the platform's roots, one certificate, or a fingerprint.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest as _, Sha256};

use crate::error::TransportError;

/// Whom to trust as the server.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Trust {
    /// The platform's root certificates (production servers with a CA-issued certificate).
    Platform,
    /// Exactly this certificate (DER), e.g. the development certificate a test server
    /// made; the server name must be one it lists.
    Certificate(Vec<u8>),
    /// Any certificate whose SHA-256 is this (hex, `AB:CD:..` or plain, any case), as
    /// `ringwire serve` prints for its development certificate. The name is not checked:
    /// the fingerprint pins the exact certificate.
    Fingerprint(String),
}

impl fmt::Debug for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trust::Platform => f.write_str("Platform"),
            Trust::Certificate(der) => write!(f, "Certificate({} bytes)", der.len()),
            Trust::Fingerprint(fp) => write!(f, "Fingerprint({fp})"),
        }
    }
}

/// The one crypto provider the SDK uses, named rather than left to rustls's
/// process-wide default (which panics when two providers are compiled in).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A TLS client configuration trusting `trust`, for the given ALPN protocols and TLS
/// versions.
pub(crate) fn client_config(
    trust: &Trust,
    alpn: &[&[u8]],
    tls13_only: bool,
) -> Result<rustls::ClientConfig, TransportError> {
    let provider = provider();
    let versions: &[&rustls::SupportedProtocolVersion] = if tls13_only {
        &[&rustls::version::TLS13]
    } else {
        rustls::DEFAULT_VERSIONS
    };
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)?;
    let mut config = match trust {
        Trust::Platform => {
            let mut roots = RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for error in &found.errors {
                tracing::debug!(%error, "skipping a platform root certificate");
            }
            let (added, ignored) = roots.add_parsable_certificates(found.certs);
            tracing::debug!(added, ignored, "platform root certificates");
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Certificate(der) => {
            let mut roots = RootCertStore::empty();
            roots.add(CertificateDer::from(der.clone()))?;
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Fingerprint(fingerprint) => {
            let sha256 = parse_fingerprint(fingerprint).ok_or(rustls::Error::General(
                "a fingerprint is 32 bytes of hex".into(),
            ))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(FingerprintVerifier {
                    sha256,
                    provider,
                }))
                .with_no_client_auth()
        }
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// `AB:CD:..`, `abcd..`, with or without a `sha-256 ` / `sha256:` prefix.
pub(crate) fn parse_fingerprint(text: &str) -> Option<[u8; 32]> {
    let lower = text.trim().to_ascii_lowercase();
    let rest = ["sha-256:", "sha256:", "sha-256 ", "sha256 "]
        .iter()
        .find_map(|prefix| lower.strip_prefix(prefix))
        .unwrap_or(&lower);
    let hex: Vec<u8> = rest.bytes().filter(|b| !matches!(b, b':' | b' ')).collect();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let text = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

/// Accepts exactly the certificate with a given SHA-256, and checks the handshake
/// signatures against it as usual.
#[derive(Debug)]
struct FingerprintVerifier {
    sha256: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for FingerprintVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if Sha256::digest(end_entity.as_ref())[..] == self.sha256[..] {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_in_every_usual_form() {
        let colons = (0..32)
            .map(|i| format!("{i:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        let expected: [u8; 32] = std::array::from_fn(|i| i as u8);
        assert_eq!(parse_fingerprint(&colons), Some(expected));
        assert_eq!(
            parse_fingerprint(&colons.to_lowercase().replace(':', "")),
            Some(expected)
        );
        assert_eq!(
            parse_fingerprint(&format!("sha-256 {colons}")),
            Some(expected)
        );
        assert_eq!(parse_fingerprint("AB:CD"), None);
        assert_eq!(parse_fingerprint(&"zz".repeat(32)), None);
    }
}
