//! Fuzzing with cargo-fuzz: `cargo xtask fuzz` and the fuzz step of `ci`.
//!
//! `fuzz/` lives outside the workspace and builds with nightly; its targets come from
//! `cargo +nightly fuzz list`.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cmd;

/// How long each target runs by default in `cargo xtask fuzz`.
const DEFAULT_SECS: u64 = 60;

/// How long each target runs in CI.
const CI_SECS: u64 = 5;

/// Arguments of `cargo xtask fuzz [TARGET] [--secs N]`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct FuzzArgs {
    target: Option<String>,
    secs: u64,
}

impl FuzzArgs {
    pub(crate) fn parse(args: &[String]) -> Result<Self> {
        let mut parsed = Self {
            target: None,
            secs: DEFAULT_SECS,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--secs" => {
                    let value = args.next().context("--secs needs a number of seconds")?;
                    parsed.secs = value
                        .parse()
                        .with_context(|| format!("--secs `{value}` is not a number of seconds"))?;
                }
                flag if flag.starts_with('-') => bail!("unknown fuzz option `{flag}`"),
                target if parsed.target.is_none() => parsed.target = Some(target.to_owned()),
                extra => bail!("fuzz takes one target, got a second: `{extra}`"),
            }
        }
        Ok(parsed)
    }
}

/// `cargo xtask fuzz`.
pub(crate) fn run(args: &FuzzArgs) -> Result<()> {
    if !nightly_installed() || !cargo_fuzz_installed() {
        bail!(
            "fuzzing needs a nightly toolchain and cargo-fuzz: \
             `rustup toolchain install nightly`, then `cargo xtask setup`"
        );
    }
    if !fuzz_dir().is_dir() {
        bail!("there is no fuzz/ directory yet, so no fuzz targets");
    }
    let targets = match &args.target {
        Some(target) => vec![target.clone()],
        None => targets()?,
    };
    for target in &targets {
        run_target(target, args.secs)?;
    }
    Ok(())
}

/// The fuzz step of `ci`: build every target and run each for a few seconds, or say
/// why it is skipped.
pub(crate) fn ci_step() -> Result<()> {
    if !fuzz_dir().is_dir() {
        println!("skipped: there is no fuzz/ directory yet");
        return Ok(());
    }
    if !nightly_installed() {
        println!("skipped: no nightly toolchain (`rustup toolchain install nightly`)");
        return Ok(());
    }
    if !cargo_fuzz_installed() {
        println!("skipped: cargo-fuzz is not installed (`cargo xtask setup` installs it)");
        return Ok(());
    }
    let targets = targets()?;
    if targets.is_empty() {
        println!("skipped: fuzz/ has no targets");
        return Ok(());
    }
    cmd::run(&mut fuzz_cargo(&["+nightly", "fuzz", "build"]))?;
    for target in &targets {
        run_target(target, CI_SECS)?;
    }
    Ok(())
}

/// Whether `rustup toolchain list` has a nightly toolchain.
pub(crate) fn nightly_installed() -> bool {
    cmd::output(&mut cmd::command("rustup", ["toolchain", "list"]))
        .is_ok_and(|list| list.lines().any(|line| line.starts_with("nightly")))
}

/// Whether `cargo fuzz` is a cargo command here.
pub(crate) fn cargo_fuzz_installed() -> bool {
    cmd::succeeds(&mut cmd::command("cargo", ["fuzz", "--version"]))
}

fn fuzz_dir() -> PathBuf {
    cmd::root().join("fuzz")
}

/// `cargo <args>` in `fuzz/`, with the shared target dir.
fn fuzz_cargo(args: &[&str]) -> Command {
    let mut command = cmd::cargo(args);
    command.current_dir(fuzz_dir());
    command
}

fn targets() -> Result<Vec<String>> {
    let list = cmd::output(&mut fuzz_cargo(&["+nightly", "fuzz", "list"]))?;
    Ok(list
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect())
}

fn run_target(target: &str, secs: u64) -> Result<()> {
    let max_time = format!("-max_total_time={secs}");
    cmd::run(&mut fuzz_cargo(&[
        "+nightly", "fuzz", "run", target, "--", &max_time,
    ]))
    .with_context(|| {
        format!("fuzz target `{target}` failed (crash inputs are in fuzz/artifacts/{target}/)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<FuzzArgs> {
        FuzzArgs::parse(&list.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn parses_fuzz_arguments() {
        assert_eq!(
            args(&[]).unwrap(),
            FuzzArgs {
                target: None,
                secs: 60
            }
        );
        assert_eq!(
            args(&["--secs", "5", "message"]).unwrap(),
            FuzzArgs {
                target: Some("message".to_owned()),
                secs: 5
            }
        );
        assert!(args(&["--secs"]).is_err());
        assert!(args(&["--secs", "x"]).is_err());
        assert!(args(&["a", "b"]).is_err());
        assert!(args(&["--fast"]).is_err());
    }
}
