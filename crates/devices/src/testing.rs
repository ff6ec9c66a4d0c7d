//! Private sound and display servers for tests of this and other crates: a PulseAudio
//! daemon with null sinks on its own socket, and an Xvfb display with a window
//! manager, each stopped when its guard drops (also when the test panics).
//!
//! Sound and display clients find their servers through environment variables
//! (`PULSE_SERVER`, `DISPLAY`), which a test must not set in its own, threaded process;
//! so a test starts the servers, then runs its device checks in a child process of the
//! same test binary with those variables set ([`run_child_test`]). The child is an
//! `#[ignore]`d test that returns at once unless [`is_child`].
//!
//! Needs `pulseaudio`, `pulseaudio-utils` (pactl), `xvfb`, `openbox`, `x11-utils`
//! (xprop, xwininfo) and `xterm`, which `cargo xtask setup` installs.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Set in the child process [`run_child_test`] starts.
pub const CHILD_ENV: &str = "RINGWIRE_DEVICES_TEST_CHILD";

/// How long a server may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A null sink to create: its name and sample rate.
#[derive(Debug, Clone, Copy)]
pub struct NullSink<'a> {
    /// The sink name (`pulseaudio:<name>` to cpal; its monitor is `<name>.monitor`).
    pub name: &'a str,
    /// Its sample rate in Hz.
    pub rate: u32,
}

/// A PulseAudio daemon of our own: `-n` (no default.pa), only the native protocol on
/// a private socket and the null sinks asked for; the first sink is the default sink
/// and its monitor the default source. Killed on drop.
#[derive(Debug)]
pub struct PulseServer {
    child: Child,
    dir: tempfile::TempDir,
    socket: PathBuf,
}

impl PulseServer {
    /// Starts the daemon and waits until `pactl info` answers.
    ///
    /// # Errors
    ///
    /// When pulseaudio cannot be started or does not answer in 20 s.
    pub fn start(sinks: &[NullSink<'_>]) -> io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("ringwire-pulse")
            .tempdir()?;
        let socket = dir.path().join("native");
        std::fs::create_dir_all(dir.path().join("run"))?;
        std::fs::create_dir_all(dir.path().join("home"))?;
        let mut script = format!(
            "load-module module-native-protocol-unix auth-anonymous=1 socket={}\n",
            socket.display()
        );
        for sink in sinks {
            script.push_str(&format!(
                "load-module module-null-sink sink_name={0} sink_properties=device.description={0} rate={1} channels=2\n",
                sink.name, sink.rate
            ));
        }
        if let Some(first) = sinks.first() {
            script.push_str(&format!(
                "set-default-sink {0}\nset-default-source {0}.monitor\n",
                first.name
            ));
        }
        let config = dir.path().join("ring.pa");
        std::fs::write(&config, script)?;
        let log = std::fs::File::create(dir.path().join("pulse.log"))?;
        // As root, PulseAudio runs in per-user mode with these flags (no --system):
        // -n skips default.pa, no daemonizing, no pid file, never exits when idle.
        let child = Command::new("pulseaudio")
            .args(["-n", "-F"])
            .arg(&config)
            .args([
                "--exit-idle-time=-1",
                "--daemonize=no",
                "--use-pid-file=no",
                "--disallow-exit",
                "--log-target=stderr",
            ])
            .envs(Self::env_for(dir.path(), &socket))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        let server = Self { child, dir, socket };
        for sink in sinks {
            server.add_alsa_pcm(sink.name)?;
        }
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if server.socket.exists() && server.pactl(&["info"]).is_ok() {
                return Ok(server);
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "pulseaudio did not start: {}",
                    server.log()
                )));
            }
            sleep(Duration::from_millis(50));
        }
    }

    fn env_for(dir: &Path, socket: &Path) -> Vec<(&'static str, OsString)> {
        let mut server = OsString::from("unix:");
        server.push(socket);
        vec![
            ("PULSE_SERVER", server),
            ("XDG_RUNTIME_DIR", dir.join("run").into_os_string()),
            ("HOME", dir.join("home").into_os_string()),
        ]
    }

    /// The variables a client needs to reach this server (and only it).
    #[must_use]
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        Self::env_for(self.dir.path(), &self.socket)
    }

    /// Runs `pactl` against this server; its standard output.
    ///
    /// # Errors
    ///
    /// When pactl cannot run or fails.
    pub fn pactl(&self, args: &[&str]) -> io::Result<String> {
        let output = Command::new("pactl")
            .args(args)
            .envs(self.env())
            .stdin(Stdio::null())
            .output()?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "pactl {args:?}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Adds an ALSA PCM named `sink` that plays to that PulseAudio sink (in the
    /// private `$HOME/.asoundrc`), which playback to a non-default sink needs (see
    /// the crate's audio docs). Done for the sinks [`PulseServer::start`] creates; call
    /// it for a sink a test loads later, before the client starts.
    ///
    /// # Errors
    ///
    /// When the file cannot be written.
    pub fn add_alsa_pcm(&self, sink: &str) -> io::Result<()> {
        use std::io::Write;
        let path = self.dir.path().join("home").join(".asoundrc");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(
            file,
            "pcm.{sink} {{ type pulse; device \"{sink}\"; hint {{ show on; description \"{sink}\" }} }}"
        )
    }

    /// Loads another null sink; the module index, for [`PulseServer::unload_module`].
    ///
    /// # Errors
    ///
    /// When pactl fails.
    pub fn load_null_sink(&self, sink: NullSink<'_>) -> io::Result<u32> {
        let out = self.pactl(&[
            "load-module",
            "module-null-sink",
            &format!("sink_name={}", sink.name),
            &format!("sink_properties=device.description={}", sink.name),
            &format!("rate={}", sink.rate),
            "channels=2",
        ])?;
        out.trim()
            .parse()
            .map_err(|_| io::Error::other(format!("pactl load-module said {out:?}")))
    }

    /// Unloads a module (a null sink disappears with its monitor).
    ///
    /// # Errors
    ///
    /// When pactl fails.
    pub fn unload_module(&self, index: u32) -> io::Result<()> {
        self.pactl(&["unload-module", &index.to_string()]).map(drop)
    }

    /// The daemon's log so far.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pulse.log")).unwrap_or_default()
    }
}

impl Drop for PulseServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An Xvfb display of our own on a free display number, with openbox (an EWMH
/// window manager, which window listing needs) and any X clients started through it.
/// Everything is killed on drop.
#[derive(Debug)]
pub struct XServer {
    display: u32,
    xvfb: Child,
    clients: Vec<Child>,
}

impl XServer {
    /// Starts Xvfb (`-noreset`, no TCP) with one `width`x`height` 24-bit screen and
    /// openbox, and waits until the window manager runs.
    ///
    /// # Errors
    ///
    /// When Xvfb or openbox cannot be started or do not come up in 20 s.
    pub fn start(width: u32, height: u32) -> io::Result<Self> {
        let first = 100 + std::process::id() % 400;
        for display in (first..first + 40).chain(100..140) {
            if Path::new(&format!("/tmp/.X{display}-lock")).exists()
                || Path::new(&format!("/tmp/.X11-unix/X{display}")).exists()
            {
                continue;
            }
            let xvfb = Command::new("Xvfb")
                .arg(format!(":{display}"))
                .args(["-screen", "0", &format!("{width}x{height}x24")])
                .args(["-nolisten", "tcp", "-noreset"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            let mut server = Self {
                display,
                xvfb,
                clients: Vec::new(),
            };
            if server.wait_for(|s| s.x_command("xprop", &["-root"]).is_ok())? {
                let wm = server.command("openbox").arg("--sm-disable").spawn()?;
                server.clients.push(wm);
                let wm_up = server.wait_for(|s| {
                    s.x_command("xprop", &["-root", "_NET_SUPPORTING_WM_CHECK"])
                        .is_ok_and(|out| out.contains("window id"))
                })?;
                if wm_up {
                    return Ok(server);
                }
                return Err(io::Error::other("openbox did not start"));
            }
            // Another server took the number first: try the next one.
        }
        Err(io::Error::other("no free X display number"))
    }

    /// Waits until `ready` holds; `false` when Xvfb exited or time ran out.
    fn wait_for(&mut self, ready: impl Fn(&Self) -> bool) -> io::Result<bool> {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if ready(self) {
                return Ok(true);
            }
            if self.xvfb.try_wait()?.is_some() {
                return Ok(false);
            }
            sleep(Duration::from_millis(50));
        }
        Ok(false)
    }

    /// `:N`.
    #[must_use]
    pub fn display(&self) -> String {
        format!(":{}", self.display)
    }

    /// The variables a client needs to use this display.
    #[must_use]
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        vec![
            ("DISPLAY", self.display().into()),
            // Keep clients off any Wayland session the test itself may run in.
            ("WAYLAND_DISPLAY", OsString::new()),
            ("XDG_SESSION_TYPE", "x11".into()),
        ]
    }

    /// A command that runs on this display.
    #[must_use]
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .envs(self.env())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    }

    fn x_command(&self, program: &str, args: &[&str]) -> io::Result<String> {
        let output = Command::new(program)
            .args(args)
            .envs(self.env())
            .stdin(Stdio::null())
            .output()?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "{program} {args:?}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Opens an xterm titled `title` with background `color` (an X colour name) at
    /// `geometry` (`COLSxROWS+X+Y`), sets its `_NET_WM_NAME` (xterm sets only a
    /// `STRING` `WM_NAME`, which window lists do not read), and returns its X window
    /// id once it is mapped.
    ///
    /// # Errors
    ///
    /// When xterm cannot be started or its window does not appear in 20 s.
    pub fn open_xterm(&mut self, title: &str, color: &str, geometry: &str) -> io::Result<u32> {
        let child = self
            .command("xterm")
            .args([
                "-T",
                title,
                "-bg",
                color,
                "-fg",
                color,
                "-geometry",
                geometry,
            ])
            .args(["-e", "sleep", "600"])
            .spawn()?;
        self.clients.push(child);
        let deadline = Instant::now() + START_TIMEOUT;
        let id = loop {
            let found = self
                .x_command("xwininfo", &["-name", title, "-int"])
                .ok()
                .and_then(|out| parse_window_id(&out));
            if let Some(id) = found {
                break id;
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!("window {title:?} did not appear")));
            }
            sleep(Duration::from_millis(50));
        };
        self.x_command(
            "xprop",
            &[
                "-id",
                &id.to_string(),
                "-f",
                "_NET_WM_NAME",
                "8u",
                "-set",
                "_NET_WM_NAME",
                title,
            ],
        )?;
        // Window lists read the window manager's client list: wait until it has the
        // window (mapping and managing are asynchronous).
        let hex = format!("0x{id:x}");
        loop {
            let managed = self
                .x_command("xprop", &["-root", "_NET_CLIENT_LIST"])
                .is_ok_and(|out| out.split([' ', ',', '\n']).any(|w| w == hex));
            if managed {
                return Ok(id);
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "window {title:?} was not managed by the window manager"
                )));
            }
            sleep(Duration::from_millis(20));
        }
    }
}

/// The id in `xwininfo -int` output: `xwininfo: Window id: 2097164 "title"`.
fn parse_window_id(out: &str) -> Option<u32> {
    let rest = out.split("Window id:").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

impl Drop for XServer {
    fn drop(&mut self) {
        for child in self.clients.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = self.xvfb.kill();
        let _ = self.xvfb.wait();
    }
}

/// Whether this process is a child started by [`run_child_test`].
#[must_use]
pub fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Runs test `name` of the current test binary in a child process with `env` added,
/// passing its output through.
///
/// # Errors
///
/// When the child cannot be run or its test fails.
pub fn run_child_test(name: &str, env: &[(&'static str, OsString)]) -> io::Result<()> {
    let exe = std::env::current_exe()?;
    let status = Command::new(exe)
        .args([
            name,
            "--exact",
            "--nocapture",
            "--include-ignored",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "child test {name} failed: {status}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_xwininfo_ids() {
        let out =
            "\nxwininfo: Window id: 2097164 \"RingwireProbe\"\n\n  Absolute upper-left X:  101\n";
        assert_eq!(parse_window_id(out), Some(2_097_164));
        assert_eq!(parse_window_id("xwininfo: error"), None);
    }
}
