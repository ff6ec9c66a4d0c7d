//! HTTPS and WSS with a configured `[tls]` certificate: WebSocket signaling over
//! `wss://`, `GET /healthz` over HTTPS, no plain HTTP on the TLS port, graceful
//! shutdown, and typed errors for unusable certificate files.

#![allow(clippy::unwrap_used)] // Helpers outside #[test] fns unwrap too.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Result, anyhow};
use common::{GUARD, TestServer, Ws, start};
use ringwire_server::{Error, TlsConfig};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

/// A self-signed certificate for `localhost` and `127.0.0.1`, written as PEM files.
struct TestCert {
    der: Vec<u8>,
    tls: TlsConfig,
}

fn write_cert(dir: &Path) -> TestCert {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let certified = rcgen::generate_simple_self_signed(names).unwrap();
    let tls = TlsConfig {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&tls.cert, certified.cert.pem()).unwrap();
    std::fs::write(&tls.key, certified.signing_key.serialize_pem()).unwrap();
    TestCert {
        der: certified.cert.der().to_vec(),
        tls,
    }
}

/// A server on 127.0.0.1 serving HTTPS/WSS with a fresh self-signed certificate.
async fn tls_server() -> (TestServer, TestCert, tempfile::TempDir) {
    let certs = tempfile::tempdir().unwrap();
    let cert = write_cert(certs.path());
    let tls = cert.tls.clone();
    let server = start(move |config| config.tls = Some(tls)).await.unwrap();
    (server, cert, certs)
}

/// A rustls client configuration (aws-lc-rs, like the server) trusting only `der`.
fn client_config(der: &[u8], alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(der.to_vec())).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// `GET path` over HTTPS with `Connection: close`: the negotiated ALPN protocol and the
/// raw response.
async fn https_get(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    path: &str,
) -> Result<(Option<Vec<u8>>, String)> {
    let tcp = timeout(GUARD, TcpStream::connect(addr)).await??;
    let name = ServerName::from(addr.ip());
    let mut stream = timeout(GUARD, TlsConnector::from(tls).connect(name, tcp)).await??;
    let alpn = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    timeout(GUARD, stream.read_to_end(&mut raw)).await??;
    Ok((alpn, String::from_utf8(raw)?))
}

#[tokio::test]
async fn wss_signaling_and_https_healthz() {
    let (s, cert, _certs) = tls_server().await;
    let addr = s.server.http_addr();
    assert_eq!(
        s.server.cert_der(),
        cert.der,
        "QUIC and HTTPS present [tls]"
    );

    let mut ws = Ws::connect_tls(addr, client_config(&cert.der, &[]))
        .await
        .unwrap();
    ws.auth(&s.token("alice")).await.unwrap();
    let hello = ws.recv_type("authenticated").await.unwrap();
    assert_eq!(hello["user"], "8:alice");
    ws.ping(1).await.unwrap();

    let tls = client_config(&cert.der, &[b"h2", b"http/1.1"]);
    let (alpn, response) = https_get(addr, tls, "/healthz").await.unwrap();
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    assert!(response.ends_with("\r\n\r\nok"), "{response}");

    // The WebSocket still works after other connections came and went.
    ws.ping(2).await.unwrap();
    s.server.shut_down().await;
}

#[tokio::test]
async fn plain_http_and_untrusted_clients_are_refused() {
    let (s, cert, _certs) = tls_server().await;
    let addr = s.server.http_addr();

    let plain = common::http(addr, "GET", "/healthz", None, None).await;
    assert!(
        plain.is_err(),
        "plain http answered on the tls port: {plain:?}"
    );
    assert!(Ws::connect(addr).await.is_err(), "ws:// on the tls port");

    // A client that trusts another certificate does not get through.
    let other = write_cert(s.dir.path());
    assert_ne!(other.der, cert.der);
    let untrusted = Ws::connect_tls(addr, client_config(&other.der, &[])).await;
    assert!(
        untrusted.is_err(),
        "a client trusting another cert connected"
    );

    // None of that, nor a client that connects and never starts its handshake,
    // holds up a good one.
    let _silent = TcpStream::connect(addr).await.unwrap();
    let mut ws = Ws::connect_tls(addr, client_config(&cert.der, &[]))
        .await
        .unwrap();
    ws.auth(&s.token("bob")).await.unwrap();
    ws.recv_type("authenticated").await.unwrap();
    ws.ping(1).await.unwrap();
    s.server.shut_down().await;
}

#[tokio::test]
async fn shutdown_says_goodbye_over_wss_and_closes_the_port() {
    let (s, cert, _certs) = tls_server().await;
    let addr = s.server.http_addr();
    let tls = client_config(&cert.der, &[]);
    let mut ws = Ws::connect_tls(addr, Arc::clone(&tls)).await.unwrap();
    ws.auth(&s.token("carol")).await.unwrap();
    ws.recv_type("authenticated").await.unwrap();
    // A connection still in its TLS handshake must not hold shutdown up.
    let _silent = TcpStream::connect(addr).await.unwrap();

    let shutdown = tokio::spawn(s.server.shut_down());
    let closed = ws.closed().await.unwrap();
    assert_eq!(
        closed.messages.last().unwrap()["type"],
        "goodbye",
        "{closed:?}"
    );
    assert_eq!(closed.code, Some(4500));
    assert_eq!(closed.reason, "server shutting down");
    timeout(GUARD, shutdown).await.unwrap().unwrap();
    assert!(Ws::connect_tls(addr, tls).await.is_err(), "still listening");
}

#[tokio::test]
async fn unusable_tls_files_are_typed_errors() {
    let certs = tempfile::tempdir().unwrap();
    let good = write_cert(certs.path());
    let start_with = |tls: TlsConfig| async move {
        start(move |config| config.tls = Some(tls))
            .await
            .err()
            .ok_or_else(|| anyhow!("the server started"))
    };

    let missing = TlsConfig {
        cert: certs.path().join("missing.pem"),
        key: good.tls.key.clone(),
    };
    let err = start_with(missing).await.unwrap();
    assert!(
        matches!(
            err.downcast_ref::<Error>(),
            Some(Error::TlsFile { path, .. }) if path.ends_with("missing.pem")
        ),
        "{err:?}"
    );

    let empty = certs.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let no_cert = TlsConfig {
        cert: empty,
        key: good.tls.key.clone(),
    };
    let err = start_with(no_cert).await.unwrap();
    assert!(
        matches!(err.downcast_ref::<Error>(), Some(Error::TlsFile { .. })),
        "{err:?}"
    );

    // A key that does not belong to the certificate.
    let other_dir = tempfile::tempdir().unwrap();
    let other = write_cert(other_dir.path());
    let mismatched = TlsConfig {
        cert: good.tls.cert.clone(),
        key: other.tls.key,
    };
    let err = start_with(mismatched).await.unwrap();
    assert!(
        matches!(err.downcast_ref::<Error>(), Some(Error::Tls(_))),
        "{err:?}"
    );
}
