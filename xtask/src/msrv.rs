//! The rust-version check: the toolchain is new enough for the workspace, and no
//! dependency needs a newer Rust than the workspace promises its users.

use std::fmt;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::cmd;

/// A Rust version `major.minor.patch`; a missing patch is 0, a pre-release suffix
/// (`-nightly`, `-beta.3`) is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Version {
    major: u64,
    minor: u64,
    patch: u64,
}

impl Version {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let core = text.trim().split(['-', '+']).next()?;
        let mut parts = core.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next().map_or(Some(0), |p| p.parse().ok())?;
        let patch = parts.next().map_or(Some(0), |p| p.parse().ok())?;
        if parts.next().is_some() {
            return None;
        }
        Some(Self {
            major,
            minor,
            patch,
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Runs the check (the `rust-version` step of `ci`).
pub(crate) fn check() -> Result<()> {
    let manifest_path = cmd::root().join("Cargo.toml");
    let manifest = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("reading {}", manifest_path.display()))?;
    let declared = workspace_rust_version(&manifest)
        .context("no `rust-version` under [workspace.package] in Cargo.toml")?;
    let workspace = Version::parse(&declared)
        .with_context(|| format!("workspace rust-version `{declared}` is not a version"))?;

    let rustc = cmd::output(&mut cmd::command("rustc", ["--version"]))?;
    let toolchain = rustc
        .split_whitespace()
        .nth(1)
        .and_then(Version::parse)
        .with_context(|| format!("cannot read a version from `{}`", rustc.trim()))?;
    if workspace > toolchain {
        bail!(
            "the workspace needs Rust {workspace} but the toolchain is {toolchain} (`rustup update`)"
        );
    }
    println!("toolchain {toolchain} >= workspace rust-version {workspace}");

    let metadata = cmd::output(&mut cmd::cargo([
        "metadata",
        "--format-version",
        "1",
        "--all-features",
    ]))?;
    let metadata: Value =
        serde_json::from_str(&metadata).context("`cargo metadata` printed invalid JSON")?;
    let offenders = too_new_dependencies(&metadata, workspace);
    if !offenders.is_empty() {
        bail!(
            "dependencies need a newer Rust than the workspace rust-version {workspace}:\n  {}",
            offenders.join("\n  ")
        );
    }
    println!("no dependency declares a rust-version above {workspace}");
    Ok(())
}

/// The `rust-version` under `[workspace.package]` of a root manifest.
fn workspace_rust_version(manifest: &str) -> Option<String> {
    let mut in_section = false;
    for line in manifest.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.starts_with('[') {
            in_section = line == "[workspace.package]";
        } else if in_section
            && let Some((key, value)) = line.split_once('=')
            && key.trim() == "rust-version"
        {
            return Some(value.trim().trim_matches('"').to_owned());
        }
    }
    None
}

/// `name version (rust-version X)` for every non-member package of `cargo metadata`
/// output whose declared rust-version is above `workspace`, sorted.
fn too_new_dependencies(metadata: &Value, workspace: Version) -> Vec<String> {
    let members: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .map(|ids| ids.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut offenders: Vec<String> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|pkg| !pkg["id"].as_str().is_some_and(|id| members.contains(&id)))
        .filter_map(|pkg| {
            let declared = pkg["rust_version"].as_str()?;
            // An unparseable rust-version is cargo's to reject, not ours.
            let needed = Version::parse(declared)?;
            (needed > workspace).then(|| {
                format!(
                    "{} {} (rust-version {declared})",
                    pkg["name"].as_str().unwrap_or("?"),
                    pkg["version"].as_str().unwrap_or("?")
                )
            })
        })
        .collect();
    offenders.sort();
    offenders
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn parses_and_orders_versions() {
        assert_eq!(v("1.88"), v("1.88.0"));
        assert_eq!(v("1.95.0-nightly"), v("1.95.0"));
        assert!(v("1.88") < v("1.95.0"));
        assert!(v("1.88.1") > v("1.88"));
        assert!(v("1.100") > v("1.99.9"));
        assert!(v("2") > v("1.200"));
        assert_eq!(Version::parse("1.x"), None);
        assert_eq!(Version::parse("1.2.3.4"), None);
        assert_eq!(Version::parse(""), None);
        assert_eq!(v("1.88").to_string(), "1.88.0");
    }

    #[test]
    fn reads_the_workspace_rust_version() {
        let manifest = r#"
[package]
rust-version = "1.60"

[workspace.package]
edition = "2024"
rust-version = "1.88" # MSRV

[workspace.dependencies]
rust-version = "9.9"
"#;
        assert_eq!(workspace_rust_version(manifest).as_deref(), Some("1.88"));
        assert_eq!(workspace_rust_version("[workspace]\n"), None);
    }

    #[test]
    fn flags_only_dependencies_above_the_workspace() {
        let metadata = serde_json::json!({
            "workspace_members": ["path+file:///w/crates/a#0.1.0"],
            "packages": [
                {"id": "path+file:///w/crates/a#0.1.0", "name": "a", "version": "0.1.0", "rust_version": "1.99"},
                {"id": "registry+x#old@1.0.0", "name": "old", "version": "1.0.0", "rust_version": "1.70"},
                {"id": "registry+x#same@1.0.0", "name": "same", "version": "1.0.0", "rust_version": "1.88"},
                {"id": "registry+x#none@1.0.0", "name": "none", "version": "1.0.0", "rust_version": null},
                {"id": "registry+x#new@2.0.0", "name": "new", "version": "2.0.0", "rust_version": "1.89"},
            ]
        });
        assert_eq!(
            too_new_dependencies(&metadata, v("1.88")),
            ["new 2.0.0 (rust-version 1.89)"]
        );
        assert!(too_new_dependencies(&metadata, v("1.89")).is_empty());
    }
}
