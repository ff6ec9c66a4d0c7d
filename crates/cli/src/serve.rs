//! `ringwire serve`.

use std::path::Path;

use anyhow::{Context, Result};
use ringwire_server::{Server, ServerConfig};
use tracing_subscriber::EnvFilter;

/// Starts the server, prints where it listens, and shuts it down gracefully on SIGINT
/// or SIGTERM.
pub(crate) fn run(config: Option<&Path>) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = ServerConfig::load(config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let server = Server::start(config).await?;
        let http = server.http_addr();
        let scheme = if server.config().tls.is_some() {
            ("https", "wss")
        } else {
            ("http", "ws")
        };
        println!("ringwire is running");
        println!("  http            {}://{http}", scheme.0);
        println!("  websocket       {}://{http}/v1/signaling", scheme.1);
        println!("  quic            {}", server.quic_addr());
        if server.media_candidate() == server.media_addr() {
            println!("  media (udp)     {}", server.media_addr());
        } else {
            println!(
                "  media (udp)     {} (advertised as {})",
                server.media_addr(),
                server.media_candidate()
            );
        }
        println!("  cert sha-256    {}", server.cert_fingerprint());
        println!("  access key      {}", server.access_key_path().display());
        println!("make a token:     ringwire token --user alice");
        shutdown_signal().await?;
        server.shut_down().await;
        println!("ringwire stopped");
        Ok(())
    })
}

/// Waits for SIGINT (Ctrl-C) or, on Unix, SIGTERM.
async fn shutdown_signal() -> Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("listening for SIGINT")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("listening for Ctrl-C")?;
    Ok(())
}
