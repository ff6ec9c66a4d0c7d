//! `cargo xtask setup`: makes sure the system packages and tools the build needs are
//! there, installing only what is missing, so a second run is quick and changes nothing.
//!
//! On Debian/Ubuntu as root it installs with apt. Anywhere else it prints the exact
//! commands to run and fails. `RINGWIRE_SKIP_SETUP=1` skips it (for machines that
//! provide the packages another way).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::cmd;
use crate::fuzz;

/// Debian packages every build needs: cmake and a C toolchain for the vendored libopus,
/// nasm for openh264's assembly, libclang for bindgen, ALSA and V4L2 for devices.
const SYSTEM_PACKAGES: &[&str] = &[
    "cmake",
    "pkg-config",
    "nasm",
    "libopus-dev",
    "libasound2-dev",
    "libclang-dev",
    "libv4l-dev",
];

/// Debian packages for devices (crates/devices): the headers xcap's Linux back ends
/// build against (X11 through libxcb, Wayland and PipeWire capture, GBM/EGL), and
/// what the device tests run: a private PulseAudio daemon with null sinks (pactl to
/// load and unload sinks, ALSA's pulse plugin for playback), and a private Xvfb
/// display with an EWMH window manager, xprop/xwininfo and an xterm to capture.
const DEVICE_PACKAGES: &[&str] = &[
    "libxcb1-dev",
    "libwayland-dev",
    "libpipewire-0.3-dev",
    "libspa-0.2-dev",
    "libgbm-dev",
    "libegl-dev",
    "pulseaudio",
    "pulseaudio-utils",
    "libasound2-plugins",
    "xvfb",
    "openbox",
    "x11-utils",
    "xterm",
];

/// Debian packages of the peers the end-to-end tests talk to: SIPp (`sip-tester`) as
/// a SIP trunk for the PSTN gateway's tests, baresip as a SIP phone, sox to make G.711
/// test audio (shared/notes/sip-peers.md); Chromium for the browser SDK's tests
/// (driven by playwright-core, which downloads no browser) and node to build the SDK.
const TEST_PEER_PACKAGES: &[&str] = &["sip-tester", "baresip-core", "sox", "chromium", "nodejs"];

/// dav1d-sys needs libdav1d >= 1.3 (found through pkg-config).
const DAV1D_MIN_VERSION: &str = "1.3";

/// The libdav1d from Debian trixie that installs cleanly on Debian 12 (bookworm),
/// which ships only 1.0 (see shared/notes/codecs.md, "dav1d").
const DAV1D_TRIXIE_VERSION: &str = "1.5.1-1";

/// Used only when no Debian mirror can be read from the apt sources.
const DEFAULT_DEBIAN_MIRROR: &str = "http://deb.debian.org/debian";

/// One step of an installation, runnable here or printable for a human.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// Write `contents` to `path`.
    Write { path: PathBuf, contents: String },
    /// Run `argv`, in `cwd` when given.
    Run {
        argv: Vec<String>,
        cwd: Option<PathBuf>,
    },
}

/// The fields of /etc/os-release that setup cares about.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct OsRelease {
    id: String,
    id_like: String,
    version_codename: String,
}

impl OsRelease {
    fn parse(text: &str) -> Self {
        let mut os = Self::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches(['"', '\'']).to_owned();
            match key.trim() {
                "ID" => os.id = value,
                "ID_LIKE" => os.id_like = value,
                "VERSION_CODENAME" => os.version_codename = value,
                _ => {}
            }
        }
        os
    }

    fn is_debian_like(&self) -> bool {
        self.id == "debian"
            || self.id == "ubuntu"
            || self.id_like.split_whitespace().any(|id| id == "debian")
    }
}

impl Step {
    fn run(argv: &[&str]) -> Self {
        Self::Run {
            argv: argv.iter().map(|arg| (*arg).to_owned()).collect(),
            cwd: None,
        }
    }

    fn execute(&self) -> Result<()> {
        match self {
            Self::Write { path, contents } => {
                println!("$ {}", self.shell());
                fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
            }
            Self::Run { argv, cwd } => {
                let (program, args) = argv.split_first().context("empty command")?;
                let mut command = cmd::command(program, args);
                command.env("DEBIAN_FRONTEND", "noninteractive");
                if let Some(cwd) = cwd {
                    command.current_dir(cwd);
                }
                cmd::run(&mut command)
            }
        }
    }

    /// The step as a shell command line.
    fn shell(&self) -> String {
        match self {
            Self::Write { path, contents } => format!(
                "echo {} > {}",
                cmd::shell_quote(contents.trim_end()),
                cmd::shell_quote(&path.to_string_lossy())
            ),
            Self::Run { argv, cwd } => {
                let line: Vec<String> = argv.iter().map(|arg| cmd::shell_quote(arg)).collect();
                match cwd {
                    Some(cwd) => format!(
                        "(cd {} && {})",
                        cmd::shell_quote(&cwd.to_string_lossy()),
                        line.join(" ")
                    ),
                    None => line.join(" "),
                }
            }
        }
    }
}

/// Runs setup.
pub(crate) fn run() -> Result<()> {
    if std::env::var_os("RINGWIRE_SKIP_SETUP").is_some_and(|v| !v.is_empty() && v != "0") {
        println!("setup: skipped (RINGWIRE_SKIP_SETUP is set)");
        return Ok(());
    }
    let os = OsRelease::parse(&fs::read_to_string("/etc/os-release").unwrap_or_default());
    let debian =
        os.is_debian_like() && cmd::succeeds(&mut cmd::command("dpkg-query", ["--version"]));
    if !debian {
        print_manual_instructions();
        bail!(
            "setup: not a Debian/Ubuntu system; install the packages above, then set \
             RINGWIRE_SKIP_SETUP=1"
        );
    }
    let root = cmd::output(&mut cmd::command("id", ["-u"]))?.trim() == "0";

    // Steps that need root; run here as root, printed for a human otherwise.
    let mut privileged: Vec<Step> = Vec::new();

    let wanted = wanted_packages();
    let mut missing = missing_packages(&wanted, dpkg_status);
    // NodeSource's nodejs carries npm; Debian's needs its own package.
    if !cmd::succeeds(&mut cmd::command("npm", ["--version"])) {
        missing.push("npm".to_owned());
    }
    if missing.is_empty() {
        println!("setup: system packages present: {}", wanted.join(" "));
    } else {
        println!("setup: missing system packages: {}", missing.join(" "));
    }

    let dav1d = dav1d_version();
    let mut dav1d_from_trixie = false;
    match &dav1d {
        Some(version) => println!("setup: libdav1d {version} present (>= {DAV1D_MIN_VERSION})"),
        None if os.version_codename == "bookworm" => {
            println!(
                "setup: libdav1d >= {DAV1D_MIN_VERSION} missing; Debian 12 ships 1.0, taking \
                 {DAV1D_TRIXIE_VERSION} from trixie"
            );
            dav1d_from_trixie = true;
        }
        None => {
            println!("setup: libdav1d >= {DAV1D_MIN_VERSION} missing; installing libdav1d-dev");
            if !missing.iter().any(|p| p == "libdav1d-dev") {
                missing.push("libdav1d-dev".to_owned());
            }
        }
    }

    if !missing.is_empty() {
        privileged.extend(apt_install_steps(&missing));
    }
    let scratch = dav1d_from_trixie
        .then(|| std::env::temp_dir().join(format!("ringwire-setup-dav1d-{}", std::process::id())));
    if let Some(scratch) = &scratch {
        let mirror = debian_mirror(&os.version_codename);
        let arch = cmd::output(&mut cmd::command("dpkg", ["--print-architecture"]))?;
        privileged.extend(dav1d_trixie_steps(&mirror, arch.trim(), scratch));
    }

    if !privileged.is_empty() {
        if !root {
            println!("setup: run these commands as root, then run setup again:");
            for step in &privileged {
                println!("  {}", step.shell());
            }
            bail!("setup: system packages are missing and this is not root");
        }
        let result = privileged.iter().try_for_each(Step::execute);
        if let Some(scratch) = &scratch {
            // Only downloaded .debs and apt lists live there; a leftover is harmless.
            let _ = fs::remove_dir_all(scratch);
        }
        result?;
        if !missing.is_empty() {
            println!("setup: installed {}", missing.join(" "));
        }
        match dav1d_version() {
            Some(version) => println!("setup: libdav1d {version} installed"),
            None => bail!(
                "setup: libdav1d >= {DAV1D_MIN_VERSION} is still not found by \
                 `pkg-config --atleast-version={DAV1D_MIN_VERSION} dav1d`"
            ),
        }
    }

    ensure_cargo_fuzz()?;
    ensure_web_packages()
}

/// Installs the browser SDK's node packages (web/package-lock.json) once; `npm ci`
/// again only when the lock file is newer than what was installed.
fn ensure_web_packages() -> Result<()> {
    let web = cmd::root().join("web");
    let lock = web.join("package-lock.json");
    let installed = web.join("node_modules").join(".package-lock.json");
    let modified = |path: &Path| fs::metadata(path).and_then(|m| m.modified()).ok();
    if !lock.exists() {
        return Ok(());
    }
    if let (Some(lock), Some(installed)) = (modified(&lock), modified(&installed))
        && installed >= lock
    {
        println!("setup: web node packages present");
        return Ok(());
    }
    println!("setup: installing the web SDK's node packages (npm ci)");
    let mut npm = cmd::command("npm", ["ci", "--no-audit", "--no-fund"]);
    npm.current_dir(&web);
    cmd::run(&mut npm)
}

/// Installs cargo-fuzz when a nightly toolchain is there to use it.
fn ensure_cargo_fuzz() -> Result<()> {
    if !fuzz::nightly_installed() {
        println!(
            "setup: no nightly toolchain, so no cargo-fuzz (fuzzing needs \
             `rustup toolchain install nightly`)"
        );
        return Ok(());
    }
    if fuzz::cargo_fuzz_installed() {
        println!("setup: cargo-fuzz present");
        return Ok(());
    }
    println!("setup: installing cargo-fuzz");
    cmd::run(&mut cmd::command(
        "cargo",
        ["install", "cargo-fuzz", "--locked"],
    ))
}

/// Every Debian package setup makes sure of, in order.
fn wanted_packages() -> Vec<&'static str> {
    SYSTEM_PACKAGES
        .iter()
        .chain(DEVICE_PACKAGES)
        .chain(TEST_PEER_PACKAGES)
        .copied()
        .collect()
}

fn print_manual_instructions() {
    let wanted = wanted_packages();
    println!(
        "setup: this system is not Debian/Ubuntu; install the equivalents of these Debian packages:"
    );
    println!("  {}", wanted.join(" "));
    println!("  and libdav1d >= {DAV1D_MIN_VERSION} with its pkg-config file (dav1d.pc)");
    if fuzz::nightly_installed() && !fuzz::cargo_fuzz_installed() {
        println!("  cargo install cargo-fuzz --locked");
    }
}

/// `dpkg-query`'s status line for a package, or `None` when dpkg knows nothing of it.
fn dpkg_status(package: &str) -> Option<String> {
    cmd::output(&mut cmd::command(
        "dpkg-query",
        ["-W", "-f=${Status}", package],
    ))
    .ok()
}

/// Whether a dpkg status line (`install ok installed`, `deinstall ok config-files`, ..)
/// means the package is installed.
fn is_installed(status: &str) -> bool {
    status.split_whitespace().last() == Some("installed")
}

/// The packages of `wanted` that are not installed, in order.
fn missing_packages(wanted: &[&str], status: impl Fn(&str) -> Option<String>) -> Vec<String> {
    wanted
        .iter()
        .filter(|package| !status(package).as_deref().is_some_and(is_installed))
        .map(|package| (*package).to_owned())
        .collect()
}

fn apt_install_steps(packages: &[String]) -> Vec<Step> {
    let mut install = vec!["apt-get", "install", "-y", "--no-install-recommends"];
    install.extend(packages.iter().map(String::as_str));
    vec![Step::run(&["apt-get", "update"]), Step::run(&install)]
}

/// The installed libdav1d version when it is at least the minimum.
fn dav1d_version() -> Option<String> {
    let at_least = format!("--atleast-version={DAV1D_MIN_VERSION}");
    if !cmd::succeeds(&mut cmd::command(
        "pkg-config",
        [at_least.as_str(), "dav1d"],
    )) {
        return None;
    }
    cmd::output(&mut cmd::command("pkg-config", ["--modversion", "dav1d"]))
        .ok()
        .map(|version| version.trim().to_owned())
}

/// The Debian mirror this machine's apt sources use.
fn debian_mirror(codename: &str) -> String {
    let mut sources = Vec::new();
    if let Ok(entries) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            if path.extension().is_some_and(|ext| ext == "sources") {
                sources.push((path.clone(), fs::read_to_string(&path).unwrap_or_default()));
            }
        }
    }
    let list = Path::new("/etc/apt/sources.list");
    sources.push((
        list.to_path_buf(),
        fs::read_to_string(list).unwrap_or_default(),
    ));
    sources
        .iter()
        .find_map(|(path, text)| {
            if path.extension().is_some_and(|ext| ext == "sources") {
                mirror_from_deb822(text, codename)
            } else {
                mirror_from_one_line(text, codename)
            }
        })
        .unwrap_or_else(|| {
            println!("setup: no Debian mirror in the apt sources, using {DEFAULT_DEBIAN_MIRROR}");
            DEFAULT_DEBIAN_MIRROR.to_owned()
        })
}

/// The first URI of a deb822 stanza (`.sources` file) of type `deb` whose suites include
/// `codename` itself (not `codename-security`).
fn mirror_from_deb822(text: &str, codename: &str) -> Option<String> {
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (!line.starts_with('#') && key.trim().eq_ignore_ascii_case(name))
                    .then(|| value.trim().to_owned())
            })
        };
        let is_deb = field("Types").is_some_and(|t| t.split_whitespace().any(|t| t == "deb"));
        let enabled = field("Enabled").is_none_or(|e| e != "no");
        let has_suite =
            field("Suites").is_some_and(|s| s.split_whitespace().any(|s| s == codename));
        let uri = field("URIs").and_then(|u| u.split_whitespace().next().map(str::to_owned));
        if is_deb && enabled && has_suite && uri.is_some() {
            return uri;
        }
    }
    None
}

/// The URI of the first `deb URI codename ...` line of a one-line sources.list.
fn mirror_from_one_line(text: &str, codename: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        if words.next()? != "deb" {
            return None;
        }
        let mut uri = words.next()?;
        if uri.starts_with('[') {
            // Options such as `[arch=amd64 signed-by=..]` may contain spaces.
            while !uri.ends_with(']') {
                uri = words.next()?;
            }
            uri = words.next()?;
        }
        (words.next()? == codename).then(|| uri.to_owned())
    })
}

/// The recipe of shared/notes/codecs.md: libdav1d7 and libdav1d-dev from trixie, fetched
/// with a private source list and private apt lists, so the machine's apt configuration
/// stays as it is.
fn dav1d_trixie_steps(mirror: &str, arch: &str, scratch: &Path) -> Vec<Step> {
    let list = scratch.join("trixie.list");
    let lists = scratch.join("lists");
    let cache = scratch.join("cache");
    let apt = |args: &[&str]| -> Vec<String> {
        let mut argv = vec!["apt-get".to_owned()];
        for option in [
            format!("Dir::Etc::SourceList={}", list.display()),
            "Dir::Etc::SourceParts=/dev/null".to_owned(),
            format!("Dir::State::Lists={}", lists.display()),
            // Keeps apt's package cache of the trixie lists out of /var/cache/apt.
            format!("Dir::Cache={}", cache.display()),
        ] {
            argv.push("-o".to_owned());
            argv.push(option);
        }
        argv.extend(args.iter().map(|arg| (*arg).to_owned()));
        argv
    };
    let lib = format!("libdav1d7={DAV1D_TRIXIE_VERSION}");
    let dev = format!("libdav1d-dev={DAV1D_TRIXIE_VERSION}");
    let deb = |name: &str| {
        scratch
            .join(format!("{name}_{DAV1D_TRIXIE_VERSION}_{arch}.deb"))
            .to_string_lossy()
            .into_owned()
    };
    vec![
        Step::Run {
            argv: ["mkdir", "-p"]
                .into_iter()
                .map(str::to_owned)
                .chain(
                    [lists.join("partial"), cache.join("archives/partial")]
                        .map(|p| p.to_string_lossy().into_owned()),
                )
                .collect(),
            cwd: None,
        },
        Step::Write {
            path: list.clone(),
            contents: format!("deb {mirror} trixie main\n"),
        },
        Step::Run {
            argv: apt(&["update"]),
            cwd: None,
        },
        Step::Run {
            argv: apt(&["download", &lib, &dev]),
            cwd: Some(scratch.to_path_buf()),
        },
        Step::Run {
            argv: vec![
                "dpkg".to_owned(),
                "-i".to_owned(),
                deb("libdav1d7"),
                deb("libdav1d-dev"),
            ],
            cwd: None,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wants_each_package_once() {
        let wanted = wanted_packages();
        let mut unique = wanted.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), wanted.len(), "{wanted:?}");
        assert!(wanted.contains(&"pulseaudio") && wanted.contains(&"xvfb"));
    }

    #[test]
    fn reads_dpkg_status() {
        assert!(is_installed("install ok installed"));
        assert!(is_installed("hold ok installed"));
        assert!(!is_installed("deinstall ok config-files"));
        assert!(!is_installed("unknown ok not-installed"));
        assert!(!is_installed(""));
    }

    #[test]
    fn lists_only_missing_packages_in_order() {
        let status = |package: &str| match package {
            "cmake" => Some("install ok installed".to_owned()),
            "nasm" => Some("deinstall ok config-files".to_owned()),
            _ => None,
        };
        assert_eq!(
            missing_packages(&["cmake", "nasm", "libopus-dev"], status),
            ["nasm", "libopus-dev"]
        );
        assert!(missing_packages(&["cmake"], status).is_empty());
        assert!(missing_packages(&[], status).is_empty());
    }

    #[test]
    fn installing_runs_update_once_before_install() {
        let steps = apt_install_steps(&["nasm".to_owned(), "cmake".to_owned()]);
        let shown: Vec<String> = steps.iter().map(Step::shell).collect();
        assert_eq!(
            shown,
            [
                "apt-get update",
                "apt-get install -y --no-install-recommends nasm cmake"
            ]
        );
    }

    #[test]
    fn parses_os_release() {
        let os = OsRelease::parse(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_CODENAME=bookworm\n",
        );
        assert!(os.is_debian_like());
        assert_eq!(os.version_codename, "bookworm");
        assert!(OsRelease::parse("ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n").is_debian_like());
        assert!(!OsRelease::parse("ID=fedora\n").is_debian_like());
    }

    #[test]
    fn finds_the_mirror_in_deb822_sources() {
        let sources = "\
Types: deb
# http://snapshot.debian.org/archive/debian-security/20250520T000000Z
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main

Types: deb
URIs: http://mirror.example/debian http://other.example/debian
Suites: bookworm bookworm-updates
Components: main
";
        assert_eq!(
            mirror_from_deb822(sources, "bookworm").as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(mirror_from_deb822(sources, "trixie"), None);
        assert_eq!(
            mirror_from_deb822(
                "Types: deb\nEnabled: no\nURIs: http://x\nSuites: bookworm\n",
                "bookworm"
            ),
            None
        );
    }

    #[test]
    fn finds_the_mirror_in_one_line_sources() {
        let list = "\
# deb http://commented.example/debian bookworm main
deb-src http://src.example/debian bookworm main
deb http://security.debian.org/debian-security bookworm-security main
deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://mirror.example/debian bookworm main
";
        assert_eq!(
            mirror_from_one_line(list, "bookworm").as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(mirror_from_one_line("", "bookworm"), None);
    }

    #[test]
    fn dav1d_recipe_keeps_apt_configuration_private() {
        let scratch = Path::new("/tmp/s");
        let steps = dav1d_trixie_steps("http://mirror.example/debian", "amd64", scratch);
        let shown: Vec<String> = steps.iter().map(Step::shell).collect();
        let o = "-o Dir::Etc::SourceList=/tmp/s/trixie.list -o Dir::Etc::SourceParts=/dev/null \
                 -o Dir::State::Lists=/tmp/s/lists -o Dir::Cache=/tmp/s/cache";
        assert_eq!(
            shown,
            [
                "mkdir -p /tmp/s/lists/partial /tmp/s/cache/archives/partial".to_owned(),
                "echo 'deb http://mirror.example/debian trixie main' > /tmp/s/trixie.list"
                    .to_owned(),
                format!("apt-get {o} update"),
                format!(
                    "(cd /tmp/s && apt-get {o} download libdav1d7=1.5.1-1 libdav1d-dev=1.5.1-1)"
                ),
                "dpkg -i /tmp/s/libdav1d7_1.5.1-1_amd64.deb /tmp/s/libdav1d-dev_1.5.1-1_amd64.deb"
                    .to_owned(),
            ]
        );
    }
}
