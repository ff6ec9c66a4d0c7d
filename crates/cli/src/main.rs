//! `ringwire`: the one binary. `ringwire serve` runs the service; `ringwire token` and
//! `ringwire identity create` make credentials with the local access key; `ringwire
//! devices` lists the microphones, speakers, cameras, screens and windows a client here
//! can use.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod call;
mod demo;
mod devices;
mod identity;
mod loadtest;
mod peer;
mod serve;
mod token;

/// Ringwire: a self-hostable calling service.
#[derive(Debug, Parser)]
#[command(name = "ringwire", version, about)]
struct Cli {
    /// A TOML configuration file (defaults, then this file, then RINGWIRE_* variables).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service until SIGINT or SIGTERM.
    Serve,
    /// Place, join or answer one call from the terminal (real or synthetic devices);
    /// prints the call's state, roster, speakers and stats, reads commands on stdin.
    Call(call::CallArgs),
    /// Print an access token made with the local access key.
    Token(token::TokenArgs),
    /// Manage identities.
    #[command(subcommand)]
    Identity(identity::IdentityCommand),
    /// List microphones, speakers, cameras, screens and windows (ids, defaults, formats).
    Devices(devices::DevicesArgs),
    /// Load-test a running server on this machine.
    #[command(subcommand)]
    Loadtest(loadtest::LoadtestCommand),
    /// Real calls on loopback through an embedded server (an echo test and a group
    /// call with synthetic audio and video), checked by content; fails unless every
    /// check passed.
    Demo(demo::DemoArgs),
    /// A scripted native peer for interop tests: calls, answers or joins with a tone
    /// and a test-pattern camera, prints what it observes as JSON lines.
    #[command(hide = true)]
    Peer(peer::PeerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve => serve::run(cli.config.as_deref()),
        Command::Call(args) => call::run(cli.config.as_deref(), &args),
        Command::Token(args) => token::run(cli.config.as_deref(), &args),
        Command::Identity(command) => identity::run(cli.config.as_deref(), &command),
        Command::Loadtest(command) => loadtest::run(cli.config.as_deref(), &command),
        Command::Devices(args) => devices::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Peer(args) => peer::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
