//! `cargo xtask ci`: everything CI runs, in order, stopping at the first failure.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::{bench, cmd, fuzz, msrv, setup};

/// A named step of the CI run.
type Step = (&'static str, fn() -> Result<()>);

const STEPS: &[Step] = &[
    ("setup", setup::run),
    ("rust-version", msrv::check),
    ("fmt", || cargo(&["fmt", "--all", "--check"])),
    ("clippy", || {
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ])
    }),
    ("test", test),
    ("doc-test", || cargo(&["test", "--workspace", "--doc"])),
    ("web", web),
    // Each `[[bench]]` once in test mode: builds only the bench targets and what they
    // use (not every crate's libtest harness in the bench profile) and proves they run.
    ("bench-smoke", || bench::run(&bench::BenchArgs::smoke())),
    ("fuzz", fuzz::ci_step),
];

/// Runs every step.
pub(crate) fn run() -> Result<()> {
    let started = Instant::now();
    let mut timings: Vec<(&str, Duration)> = Vec::new();
    for (index, (name, step)) in STEPS.iter().enumerate() {
        println!();
        println!("==> ci [{}/{}] {name}", index + 1, STEPS.len());
        let step_started = Instant::now();
        let result = step();
        let took = step_started.elapsed();
        timings.push((name, took));
        if let Err(err) = result {
            print_timings(&timings);
            bail!("ci failed at step `{name}` after {}: {err:#}", secs(took));
        }
        println!("<== ci {name}: ok in {}", secs(took));
    }
    print_timings(&timings);
    println!(
        "ci: all {} steps passed in {}",
        STEPS.len(),
        secs(started.elapsed())
    );
    Ok(())
}

/// The browser SDK: build, unit and protocol-vector tests under node, then the
/// Chromium tests against the `ringwire` binary the test step built (in their own
/// network namespace, so all traffic stays on loopback; needs root for `unshare`).
fn web() -> Result<()> {
    let web = cmd::root().join("web");
    let npm = |args: &[&str]| {
        let mut command = cmd::command("npm", args);
        command.current_dir(&web);
        command
    };
    cmd::run(&mut npm(&["run", "ci"]))?;
    let binary = cmd::target_dir().join("debug").join("ringwire");
    if !binary.exists() {
        cmd::run(&mut cmd::cargo(["build", "-p", "ringwire"]))?;
    }
    let mut browser = npm(&["run", "test:browser"]);
    browser.env("RINGWIRE_BIN", &binary);
    cmd::run(&mut browser)
}

/// Tests with cargo-nextest when it is installed, else `cargo test`. Doc tests run in
/// their own step because nextest does not run them.
fn test() -> Result<()> {
    if cmd::succeeds(&mut cmd::command("cargo", ["nextest", "--version"])) {
        // A crate without tests is not an error (xtask-only or new crates).
        cargo(&[
            "nextest",
            "run",
            "--workspace",
            "--all-features",
            "--no-tests=warn",
        ])
    } else {
        println!("cargo-nextest not installed, using cargo test");
        cargo(&[
            "test",
            "--workspace",
            "--all-features",
            "--lib",
            "--bins",
            "--tests",
        ])
    }
}

fn cargo(args: &[&str]) -> Result<()> {
    cmd::run(&mut cmd::cargo(args))
}

fn print_timings(timings: &[(&str, Duration)]) {
    println!();
    println!("ci step timings:");
    for (name, took) in timings {
        println!("  {name:<14} {:>9}", secs(*took));
    }
}

fn secs(took: Duration) -> String {
    format!("{:.1}s", took.as_secs_f64())
}
