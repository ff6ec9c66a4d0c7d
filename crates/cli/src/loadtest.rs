//! `ringwire loadtest signaling`: real connections against a running server on this
//! machine (see `ringwire_calling::loadtest`).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use ringwire_calling::loadtest::{self, LoadtestConfig};
use ringwire_calling::{Endpoint, Trust};
use ringwire_server::{AccessKey, ServerConfig};
use tracing_subscriber::EnvFilter;

/// Most connections one run may open.
const MAX_CLIENTS: usize = 20_000;

/// What to load-test.
#[derive(Debug, Subcommand)]
pub(crate) enum LoadtestCommand {
    /// Signaling: N connections, M concurrent call flows (half 1:1, half group calls).
    Signaling(SignalingArgs),
}

/// Options of `ringwire loadtest signaling`.
#[derive(Debug, Args)]
pub(crate) struct SignalingArgs {
    /// The server's WebSocket address (`/v1/signaling` is added when no path is given).
    #[arg(long, default_value = "ws://127.0.0.1:8080", value_name = "URL")]
    server: String,
    /// Connections to open.
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// Call flows to run at once.
    #[arg(long, default_value_t = 20)]
    calls: usize,
    /// Signaling transport.
    #[arg(long, value_enum, default_value_t = TransportKind::Ws)]
    transport: TransportKind,
    /// The server's QUIC address (default: the configuration's `quic_addr`).
    #[arg(long, value_name = "ADDR")]
    quic_addr: Option<SocketAddr>,
    /// The SHA-256 fingerprint `ringwire serve` printed (`cert sha-256`), for QUIC.
    #[arg(long, value_name = "HEX")]
    fingerprint: Option<String>,
    /// The server's access key file (default: `access.key` in the configured data
    /// directory, as `ringwire token` reads it).
    #[arg(long, value_name = "FILE")]
    token_key_file: Option<PathBuf>,
    /// Connections opening at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// The longest the whole run may take, e.g. 2m.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    deadline: Duration,
    /// Seeds call ids and user names.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Which transport the load-test clients use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TransportKind {
    /// WebSocket.
    Ws,
    /// QUIC.
    Quic,
}

pub(crate) fn run(config: Option<&Path>, command: &LoadtestCommand) -> Result<()> {
    let LoadtestCommand::Signaling(args) = command;
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    if args.clients == 0 || args.clients > MAX_CLIENTS {
        bail!("--clients must be between 1 and {MAX_CLIENTS}");
    }
    let server_config = ServerConfig::load(config)?;
    let key = match &args.token_key_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            AccessKey::from_hex(text.trim())
                .with_context(|| format!("{} does not hold an access key", path.display()))?
        }
        None => AccessKey::load(&server_config.data_dir).with_context(|| {
            format!(
                "reading the access key in {} (is the server running with this configuration?)",
                server_config.data_dir.display()
            )
        })?,
    };
    let endpoint = match args.transport {
        TransportKind::Ws => {
            let url = signaling_url(&args.server);
            loopback_only(host_of(&url).context("--server has no host")?)?;
            Endpoint::ws(url)
        }
        TransportKind::Quic => {
            let addr = args.quic_addr.unwrap_or(server_config.quic_addr);
            loopback_only(&addr.ip().to_string())?;
            let fingerprint = args
                .fingerprint
                .clone()
                .context("--transport quic needs --fingerprint (ringwire serve prints it)")?;
            Endpoint::quic(addr, "localhost", Trust::Fingerprint(fingerprint))
        }
    };
    let mut run = LoadtestConfig::new(endpoint, key.token_key(), args.clients, args.calls);
    run.connect_concurrency = args.concurrency;
    run.deadline = args.deadline;
    run.seed = args.seed;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    println!(
        "loadtest signaling: {} clients, {} calls over {:?}",
        args.clients, args.calls, args.transport
    );
    let report = runtime.block_on(loadtest::run(run))?;
    println!("{report}");
    if report.calls_failed > 0 || report.connected < report.clients {
        bail!(
            "{} calls failed, {} of {} clients connected",
            report.calls_failed,
            report.connected,
            report.clients
        );
    }
    Ok(())
}

/// `ws://host:port` gets the signaling path; a URL with a path is used as it is.
fn signaling_url(server: &str) -> String {
    let after_scheme = server.split_once("://").map_or(server, |(_, rest)| rest);
    if after_scheme.trim_end_matches('/').contains('/') {
        server.to_owned()
    } else {
        format!("{}/v1/signaling", server.trim_end_matches('/'))
    }
}

fn host_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next();
    }
    authority.split(':').next()
}

/// The load generator only ever targets this machine.
fn loopback_only(host: &str) -> Result<()> {
    let loopback = match host.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => (host, 0)
            .to_socket_addrs()
            .map(|mut addrs| addrs.all(|a| a.ip().is_loopback()))
            .unwrap_or(false),
    };
    if !loopback {
        bail!("the load test only targets this machine (loopback); {host} is not");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_hosts() {
        assert_eq!(
            signaling_url("ws://127.0.0.1:8080"),
            "ws://127.0.0.1:8080/v1/signaling"
        );
        assert_eq!(
            signaling_url("ws://127.0.0.1:8080/"),
            "ws://127.0.0.1:8080/v1/signaling"
        );
        assert_eq!(signaling_url("ws://h:1/custom"), "ws://h:1/custom");
        assert_eq!(host_of("ws://127.0.0.1:8080/x"), Some("127.0.0.1"));
        assert_eq!(host_of("ws://[::1]:8080"), Some("::1"));
        assert!(loopback_only("127.0.0.1").is_ok());
        assert!(loopback_only("::1").is_ok());
        assert!(loopback_only("localhost").is_ok());
        assert!(loopback_only("10.0.0.1").is_err());
    }
}
