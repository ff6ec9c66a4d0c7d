//! Ringwire's project tasks, run as `cargo xtask <command>` (see `cargo xtask help`).
//!
//! `ci` runs exactly what CI runs (`.ci/run` calls it and nothing else), so a green
//! `cargo xtask ci` on a developer machine means a green CI.

use std::process::ExitCode;

use anyhow::{Result, bail};

mod bench;
mod ci;
mod cmd;
mod fuzz;
mod msrv;
mod pstn_load;
mod release;
mod setup;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  setup      install the system packages and tools the build needs (idempotent)
  ci         run everything CI runs: setup, rust-version, fmt, clippy, tests, doc tests,
             bench smoke (every bench once), fuzz smoke runs
  bench [--save-baseline NAME] [--baseline NAME] [--threshold PCT] [--smoke] [FILTER]
             run the criterion benches; --baseline compares with a saved baseline and
             fails when a bench is slower than PCT percent (default 10); without a
             baseline option or filter, then the PSTN load bench (FILTER `pstn_load`:
             only that one): concurrent phone calls on one core, target/pstn-load.json
  fuzz [TARGET] [--secs N]
             run one or every fuzz target for N seconds each (default 60; needs nightly)
  release    build the `ringwire` binary into dist/ with dist/SHA256SUMS
  demo       run the demo (after setup)
  help       print this message
";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<()> {
    let (command, rest) = match args.split_first() {
        Some((command, rest)) => (command.as_str(), rest),
        None => ("help", &[][..]),
    };
    match command {
        "setup" => no_args(command, rest).and_then(|()| setup::run()),
        "ci" => no_args(command, rest).and_then(|()| ci::run()),
        "bench" => bench::run(&bench::BenchArgs::parse(rest)?),
        "fuzz" => fuzz::run(&fuzz::FuzzArgs::parse(rest)?),
        "release" => no_args(command, rest).and_then(|()| release::run()),
        "demo" => no_args(command, rest).and_then(|()| demo()),
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => {
            eprint!("{USAGE}");
            bail!("unknown command `{other}`")
        }
    }
}

fn no_args(command: &str, rest: &[String]) -> Result<()> {
    if let Some(arg) = rest.first() {
        bail!("`cargo xtask {command}` takes no arguments, got `{arg}`");
    }
    Ok(())
}

/// The demo needs the calling SDK, the server and the `ringwire` binary, none of which
/// exist yet; say so instead of pretending.
fn demo() -> Result<()> {
    setup::run()?;
    println!();
    // `ringwire demo`: an embedded server on loopback, an echo test and a group call
    // through the calling SDK, checked by content; it fails unless every check passed.
    cmd::run(&mut cmd::cargo(["run", "-p", "ringwire", "--", "demo"]))
}
