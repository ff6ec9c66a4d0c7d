//! `cargo xtask release`: the optimized `ringwire` binary in `dist/`, with checksums.

use std::fs;

use anyhow::{Context, Result, bail};

use crate::cmd;

const BINARY: &str = "ringwire";

/// Builds the binary, copies it to `dist/` and writes `dist/SHA256SUMS`.
pub(crate) fn run() -> Result<()> {
    let root = cmd::root();
    if !root.join("crates/cli").is_dir() {
        bail!(
            "there is nothing to release yet: the `{BINARY}` binary comes from crates/cli, \
             which does not exist yet"
        );
    }
    cmd::run(&mut cmd::cargo([
        "build",
        "--release",
        "--package",
        BINARY,
        "--bin",
        BINARY,
    ]))?;

    let built = cmd::target_dir().join("release").join(BINARY);
    let dist = root.join("dist");
    fs::create_dir_all(&dist).with_context(|| format!("creating {}", dist.display()))?;
    let shipped = dist.join(BINARY);
    fs::copy(&built, &shipped)
        .with_context(|| format!("copying {} to {}", built.display(), shipped.display()))?;

    // Run in dist/ so the sums name the file as users see it and `sha256sum -c` works there.
    let mut sha = cmd::command("sha256sum", [BINARY]);
    sha.current_dir(&dist);
    let sums = cmd::output(&mut sha)?;
    let sums_path = dist.join("SHA256SUMS");
    fs::write(&sums_path, &sums).with_context(|| format!("writing {}", sums_path.display()))?;
    print!("{sums}");
    println!("release: {} and {}", shipped.display(), sums_path.display());
    Ok(())
}
