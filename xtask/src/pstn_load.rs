//! `cargo xtask bench pstn_load`: how many concurrent phone calls one core sustains.
//!
//! The real `ringwire` binary (release build) runs pinned to core 0 (`taskset -c 0`)
//! with a `[pstn]` inbound trunk from 127.0.0.1 whose number is dispatched to the
//! group call `loadtest`. A native client (`ringwire peer`, pinned to core 1 like
//! every load generator) starts that call and stays in it, sending a 700 Hz tone.
//! Then, step by step, sipp (as the trunk's UAC) places N inbound calls at `-r` calls
//! per second with at most `-l N` at once and `-m N` in all; each call sends a 600 Hz
//! PCMU tone (`rtp_stream`) and hangs up (BYE) once the step's measurement is over.
//! Every phone leg is transcoded (G.711 <-> opus at 48 kHz) and mixed by the server:
//! each phone hears the call's mix.
//!
//! Per step, once the server reports all N phones in the call (`ringwire_participants`
//! from `/metrics` is N + 1) and a short settling time has passed, a window of a few
//! seconds measures:
//! - the server's CPU time per second of wall time (`utime + stime` from
//!   `/proc/<pid>/stat`): 100 % is the whole core; and what else ran on core 0;
//! - sipp's successful and failed calls and retransmissions (its `-trace_stat` CSV),
//!   and the CPU sipp itself used (a saturated load generator would cap the result);
//! - media at the native client: audio packets per second received (50 expected), the
//!   share of audible 20 ms frames and of frames carrying the phones' 600 Hz tone;
//! - media at a probe phone: one more call whose RTP is this program's own socket (sipp
//!   only signals it). It sends a 600 Hz PCMU tone and checks what the server sends it:
//!   packets per second, sequence gaps, the largest gap between arrivals, and the share
//!   of the native client's 700 Hz tone in the decoded audio.
//!
//! A step is sustained when every call succeeded, the window saw all N phones, and the
//! server used less than 90 % of its core. The run stops at the first step that is
//! not, or before one that would not fit the time budget. The per-call cost is the
//! slope of a least-squares line through the sustained steps' CPU figures.
//!
//! `RINGWIRE_PSTN_LOAD_STEPS=10,25,50` sets the steps; `RINGWIRE_PSTN_LOAD_BIN=<path>`
//! measures that `ringwire` binary instead of building the release one.
//!
//! Results: a table on stdout and `target/pstn-load.json`. Every process started
//! (server, client, sipp) is killed when dropped, also on a panic.
//!
//! `cargo xtask ci` runs [`smoke`]: the debug binary, 2 calls, a 3 s window, and it
//! fails unless both calls succeeded and the server was sampled.

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};
use std::{fs, thread};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

use crate::cmd;

/// The number the inbound trunk owns, dispatched to [`GROUP`].
const NUMBER: &str = "+15550001111";
/// The group call the native client starts and the phones join.
const GROUP: &str = "loadtest";
/// The server's RTP range for phone legs (one even port per leg): below the
/// ephemeral range, and away from the 21000.. range the PSTN tests use.
const RTP_PORTS: (u16, u16) = (24000, 25999);
/// Most participants in one call (the server's default `max_participants`).
const MAX_PARTICIPANTS: usize = 350;
/// A step whose server uses this much of its core or more is not sustained.
const MAX_CPU_PCT: f64 = 90.0;
/// The concurrency steps of a full run.
const FULL_STEPS: &[usize] = &[5, 10, 15, 20, 25, 30, 40, 50, 75, 100, 150, 200, 250, 300];
/// A full run starts no step that would end after this much time.
const BUDGET: Duration = Duration::from_secs(300);
/// The phones' tone and the native client's tone.
const PHONE_HZ: u32 = 600;
const PEER_HZ: u32 = 700;
/// Longest any expected thing (a start, a call state, a teardown) may take.
const GUARD: Duration = Duration::from_secs(30);
/// Where the results go, under the target dir.
const RESULTS: &str = "pstn-load.json";

/// What one run does.
struct Plan {
    steps: Vec<usize>,
    /// Measurement window per step.
    window: Duration,
    /// Time after all phones are in before the window opens.
    settle: Duration,
    budget: Duration,
    binary: PathBuf,
    /// `--smoke`: a check that the bench works, not a measurement.
    smoke: bool,
}

/// What one step measured.
#[derive(Debug, Default, Clone)]
struct Step {
    calls: usize,
    rate: usize,
    /// All N phones were in the call during the whole window.
    full: bool,
    /// Fewest participants seen in the window (N phones + the native client).
    min_participants: u64,
    window_s: f64,
    /// Server CPU time per wall second, in percent of one core.
    cpu_pct: f64,
    /// The busiest second of the window.
    cpu_peak_pct: f64,
    /// Other processes' share of core 0 in the window, in percent.
    core0_others_pct: f64,
    sipp_cpu_pct: f64,
    successful: u64,
    failed: u64,
    retransmissions: u64,
    sipp_exit: Option<i32>,
    /// Native client: audio packets per second, audible and 600 Hz frame shares.
    peer_packets_per_s: Option<f64>,
    peer_audible: Option<f64>,
    peer_phone_tone: Option<f64>,
    /// The probe phone's view of what the server sent it.
    probe: Option<ProbeStats>,
    seconds: f64,
}

impl Step {
    fn sustained(&self) -> bool {
        self.full
            && self.failed == 0
            && self.successful >= self.calls as u64
            && self.cpu_pct < MAX_CPU_PCT
    }

    /// Phone legs in the call: sipp's calls and the probe phone.
    fn legs(&self) -> usize {
        self.calls + 1
    }

    fn cpu_ms_per_call(&self) -> f64 {
        // Percent of a core per call is ms of CPU per second per call, divided by 10.
        self.cpu_pct * 10.0 / self.legs() as f64
    }

    fn to_json(&self) -> Value {
        json!({
            "calls": self.calls,
            "phone_legs": self.legs(),
            "rate_cps": self.rate,
            "at_full_concurrency": self.full,
            "min_participants": self.min_participants,
            "window_s": round(self.window_s, 2),
            "server_cpu_pct_of_core": round(self.cpu_pct, 1),
            "server_cpu_peak_pct": round(self.cpu_peak_pct, 1),
            "cpu_ms_per_s_per_call": round(self.cpu_ms_per_call(), 2),
            "core0_others_pct": round(self.core0_others_pct, 1),
            "sipp_cpu_pct": round(self.sipp_cpu_pct, 1),
            "sipp_successful": self.successful,
            "sipp_failed": self.failed,
            "sipp_retransmissions": self.retransmissions,
            "sipp_exit": self.sipp_exit,
            "native_audio_packets_per_s": self.peer_packets_per_s.map(|v| round(v, 1)),
            "native_audible_share": self.peer_audible.map(|v| round(v, 3)),
            "native_phone_tone_share": self.peer_phone_tone.map(|v| round(v, 3)),
            "probe_phone": self.probe.as_ref().map(ProbeStats::to_json),
            "sustained": self.sustained(),
            "step_seconds": round(self.seconds, 1),
        })
    }
}

/// `cargo xtask bench pstn_load`: builds the release binary and runs every step.
pub(crate) fn full() -> Result<()> {
    // `RINGWIRE_PSTN_LOAD_BIN`: measure this binary instead of building one (a build
    // of another commit, say).
    let binary = match std::env::var_os("RINGWIRE_PSTN_LOAD_BIN") {
        Some(path) => PathBuf::from(path),
        None => {
            cmd::run(&mut cmd::cargo(["build", "--release", "-p", "ringwire"]))?;
            cmd::target_dir().join("release").join("ringwire")
        }
    };
    let steps = match std::env::var("RINGWIRE_PSTN_LOAD_STEPS") {
        Ok(list) => list
            .split(',')
            .map(|s| s.trim().parse::<usize>())
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| {
                format!("RINGWIRE_PSTN_LOAD_STEPS `{list}` is not a list of numbers")
            })?,
        Err(_) => FULL_STEPS.to_vec(),
    };
    let plan = Plan {
        steps,
        window: Duration::from_secs(8),
        settle: Duration::from_secs(2),
        budget: BUDGET,
        binary,
        smoke: false,
    };
    let results = run(&plan)?;
    let path = cmd::target_dir().join(RESULTS);
    fs::write(&path, serde_json::to_string_pretty(&results)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    println!("pstn_load: results in {}", path.display());
    ensure!(
        results["steps"][0]["sipp_successful"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "the first step had no successful call: the bench setup is broken"
    );
    Ok(())
}

/// The CI smoke run: the debug binary, 2 calls for a short window; fails unless both
/// calls succeeded and the server was sampled.
pub(crate) fn smoke() -> Result<()> {
    let binary = match std::env::var_os("RINGWIRE_PSTN_LOAD_BIN") {
        Some(path) => PathBuf::from(path),
        None => cmd::target_dir().join("debug").join("ringwire"),
    };
    if !binary.exists() {
        cmd::run(&mut cmd::cargo(["build", "-p", "ringwire"]))?;
    }
    let plan = Plan {
        steps: vec![2],
        window: Duration::from_secs(3),
        settle: Duration::from_secs(1),
        budget: Duration::from_secs(120),
        binary,
        smoke: true,
    };
    let results = run(&plan)?;
    let step = &results["steps"][0];
    let ok = step["sipp_successful"] == 2
        && step["sipp_failed"] == 0
        && step["at_full_concurrency"] == true
        && step["window_s"].as_f64().is_some_and(|s| s > 0.0);
    ensure!(
        ok,
        "pstn_load smoke: not every call succeeded or the server was not sampled: {step}"
    );
    println!("pstn_load smoke: ok");
    Ok(())
}

fn run(plan: &Plan) -> Result<Value> {
    ensure!(
        plan.binary.exists(),
        "{} is missing; build it first",
        plan.binary.display()
    );
    for tool in ["sipp", "taskset"] {
        if !cmd::succeeds(&mut cmd::command("which", [tool])) {
            bail!("`{tool}` is missing; run `cargo xtask setup`");
        }
    }
    let legs = usize::from((RTP_PORTS.1 - RTP_PORTS.0) / 2 + 1);
    let most = plan.steps.iter().copied().max().unwrap_or(0);
    // One more leg for the probe phone.
    ensure!(
        most < legs,
        "rtp_ports {}..={} hold {legs} legs, fewer than the largest step {most} + 1",
        RTP_PORTS.0,
        RTP_PORTS.1
    );
    ensure!(
        most + 2 <= MAX_PARTICIPANTS,
        "a step of {most} phones exceeds max_participants {MAX_PARTICIPANTS}"
    );
    let started = Instant::now();
    let started_utc = utc_now();
    let load_before = loadavg();
    let scratch = cmd::target_dir().join("pstn-load-scratch");
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    fs::write(scratch.join("tone.ulaw"), ulaw_tone(PHONE_HZ, 2000.0))?;

    let server = Server::start(&plan.binary, &scratch)?;
    println!(
        "pstn_load: server pid {} on core 0, http {}, sip {}, rtp {}..={} ({legs} legs)",
        server.pid, server.http, server.sip, RTP_PORTS.0, RTP_PORTS.1
    );
    let peer = Peer::start(&plan.binary, &server, &scratch)?;
    server.until_participants(|n| n == 1, GUARD)?;
    let probe = Probe::start()?;

    // The server with only the native client in the call.
    let idle = measure_idle(&server, plan.window)?;
    println!("pstn_load: idle (native client alone) {idle:.1} % of a core");

    let mut steps: Vec<Step> = Vec::new();
    for (index, &calls) in plan.steps.iter().enumerate() {
        let rate = rate_for(calls);
        let expected = expected_step_time(plan, calls, rate);
        if started.elapsed() + expected > plan.budget {
            println!(
                "pstn_load: stopping before {calls} calls: it would end after the {:?} budget",
                plan.budget
            );
            break;
        }
        let step = run_step(plan, &server, &peer, &probe, &scratch, index, calls, rate)?;
        println!("{}", row(&step));
        let sustained = step.sustained();
        steps.push(step);
        if !sustained {
            break;
        }
    }
    drop(probe);
    peer.hang_up();
    drop(server);

    print!("{}", table(&steps, idle));
    let sustained: Vec<&Step> = steps.iter().filter(|s| s.sustained()).collect();
    let fit = fit_line(&sustained);
    // In phone legs: sipp's calls and the probe phone.
    let largest = sustained.iter().map(|s| s.legs()).max();
    if let Some((slope, intercept)) = fit {
        println!(
            "pstn_load: {slope:.2} % of a core per phone call ({:.1} ms CPU per second per \
             call), {intercept:.1} % fixed; about {:.0} calls at {MAX_CPU_PCT} % of the core",
            slope * 10.0,
            (MAX_CPU_PCT - intercept) / slope
        );
    }
    match largest {
        Some(n) => println!(
            "pstn_load: largest step sustained on one core: {n} phone calls (sipp's and the probe)"
        ),
        None => println!("pstn_load: no step was sustained"),
    }
    Ok(json!({
        "bench": "pstn_load",
        "command": if plan.smoke { "cargo xtask ci (bench-smoke)" } else { "cargo xtask bench pstn_load" },
        "started_utc": started_utc,
        "binary": plan.binary.display().to_string(),
        "smoke": plan.smoke,
        "machine": {
            "cpus": thread::available_parallelism().map(|n| n.get()).ok(),
            "cpu_model": cpu_model(),
            "loadavg_before": load_before,
            "loadavg_after": loadavg(),
        },
        "setup": {
            "server_core": 0,
            "load_generator_core": 1,
            "rtp_ports": [RTP_PORTS.0, RTP_PORTS.1],
            "rtp_legs_capacity": legs,
            "phone_codec": "PCMU 20 ms",
            "phone_tone_hz": PHONE_HZ,
            "native_tone_hz": PEER_HZ,
            "window_s": plan.window.as_secs_f64(),
            "max_cpu_pct": MAX_CPU_PCT,
        },
        "idle_cpu_pct": round(idle, 1),
        "steps": steps.iter().map(Step::to_json).collect::<Vec<_>>(),
        "per_call_cpu_pct_of_core": fit.map(|(slope, _)| round(slope, 3)),
        "per_call_cpu_ms_per_s": fit.map(|(slope, _)| round(slope * 10.0, 2)),
        "fixed_cpu_pct": fit.map(|(_, intercept)| round(intercept, 1)),
        "calls_per_core_at_max_cpu": fit.map(|(slope, intercept)| ((MAX_CPU_PCT - intercept) / slope).floor()),
        "largest_sustained_phone_calls": largest,
        "total_seconds": round(started.elapsed().as_secs_f64(), 1),
    }))
}

/// Calls per second for a step: its calls start within about four seconds.
fn rate_for(calls: usize) -> usize {
    calls.div_ceil(4).clamp(5, 50)
}

/// How long a step of `calls` at `rate` should take, with room for setup and teardown.
fn expected_step_time(plan: &Plan, calls: usize, rate: usize) -> Duration {
    Duration::from_secs_f64(calls as f64 / rate as f64)
        + plan.settle
        + plan.window
        + Duration::from_secs(12)
}

/// The server's CPU with only the native client in the call, in percent of a core.
fn measure_idle(server: &Server, window: Duration) -> Result<f64> {
    let (t0, c0) = (Instant::now(), cpu_ticks(server.pid)?);
    thread::sleep(window);
    let (t1, c1) = (Instant::now(), cpu_ticks(server.pid)?);
    Ok(pct(c1 - c0, t1 - t0))
}

#[allow(clippy::too_many_arguments)]
fn run_step(
    plan: &Plan,
    server: &Server,
    peer: &Peer,
    probe: &Probe,
    scratch: &Path,
    index: usize,
    calls: usize,
    rate: usize,
) -> Result<Step> {
    let began = Instant::now();
    let ramp = Duration::from_secs_f64(calls as f64 / rate as f64);
    // Each call holds until the window is surely over; a server too slow to let all
    // calls in before the first ones hang up shows as a window without all phones.
    let hold = ramp + plan.settle + plan.window + Duration::from_secs(6);
    let dir = scratch.join(format!("step-{calls}"));
    fs::create_dir_all(&dir)?;
    fs::copy(scratch.join("tone.ulaw"), dir.join("tone.ulaw"))?;
    // A caller number per call, unique over the run: the step's prefix, then sipp's call number.
    let prefix = format!("+1555{index:02}0");
    fs::write(dir.join("load.xml"), scenario(&prefix, hold, false))?;
    fs::write(
        dir.join("probe.xml"),
        scenario(&format!("+1556{index:02}0"), hold, true),
    )?;
    let stats = dir.join("stats.csv");
    let mut sipp = Proc::spawn(
        "sipp",
        pinned(1, "sipp")
            .current_dir(&dir)
            .args(["-sf", "load.xml", &server.sip.to_string()])
            .args(["-s", NUMBER.trim_start_matches('+')])
            .args(["-i", "127.0.0.1", "-p", &free_port()?.to_string()])
            .args(["-mi", "127.0.0.1", "-mp", &free_port()?.to_string()])
            .args(["-r", &rate.to_string(), "-l", &calls.to_string()])
            .args(["-m", &calls.to_string()])
            .args(["-nostdin", "-recv_timeout", "20000", "-timeout_error"])
            .args(["-timeout", &format!("{}s", (hold + GUARD * 2).as_secs())])
            .args(["-trace_stat", "-fd", "1", "-stf"])
            .arg(&stats)
            .args(["-trace_err", "-error_file"])
            .arg(dir.join("errors.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )?;
    // The probe phone calls after the load's first calls, so it hears a busy mix.
    let mut probe_sipp = Proc::spawn(
        "sipp (probe)",
        pinned(1, "sipp")
            .current_dir(&dir)
            .args(["-sf", "probe.xml", &server.sip.to_string()])
            .args(["-s", NUMBER.trim_start_matches('+')])
            .args(["-i", "127.0.0.1", "-p", &free_port()?.to_string()])
            .args(["-mi", "127.0.0.1", "-mp", &free_port()?.to_string()])
            .args(["-set", "rtp", &probe.port.to_string()])
            .args([
                "-m",
                "1",
                "-nostdin",
                "-recv_timeout",
                "20000",
                "-timeout_error",
            ])
            .args(["-timeout", &format!("{}s", (hold + GUARD * 2).as_secs())])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )?;

    let mut step = Step {
        calls,
        rate,
        ..Step::default()
    };
    // All phones (and the probe) in, or give up on this step's window.
    let all_in = server.until_participants(|n| n >= calls as u64 + 2, ramp + GUARD);
    if all_in.is_ok() {
        thread::sleep(plan.settle);
        let sipp_pid = sipp.child.id();
        let (t0, c0, k0, s0) = (
            Instant::now(),
            cpu_ticks(server.pid)?,
            core0()?,
            cpu_ticks(sipp_pid).unwrap_or(0),
        );
        probe.reset();
        let mut min_participants = u64::MAX;
        let mut peak: f64 = 0.0;
        let (mut last_t, mut last_c) = (t0, c0);
        while last_t.duration_since(t0) < plan.window {
            thread::sleep(Duration::from_secs(1));
            if let Ok(n) = server.participants() {
                min_participants = min_participants.min(n);
            }
            let (t, c) = (Instant::now(), cpu_ticks(server.pid)?);
            peak = peak.max(pct(c - last_c, t - last_t));
            (last_t, last_c) = (t, c);
        }
        let (t1, c1, k1, s1) = (
            Instant::now(),
            last_c,
            core0()?,
            cpu_ticks(sipp_pid).unwrap_or(0),
        );
        let wall = t1 - t0;
        step.window_s = wall.as_secs_f64();
        step.cpu_pct = pct(c1 - c0, wall);
        step.cpu_peak_pct = peak;
        step.sipp_cpu_pct = pct(s1.saturating_sub(s0), wall);
        // Core 0's busy time minus the server's own (the server runs only there).
        let core0_busy = k1.0.saturating_sub(k0.0) as f64;
        let core0_total = k1.1.saturating_sub(k0.1).max(1) as f64;
        step.core0_others_pct = ((core0_busy - (c1 - c0) as f64) / core0_total * 100.0).max(0.0);
        step.min_participants = min_participants;
        step.full = min_participants >= calls as u64 + 2;
        step.peer_packets_per_s = peer.packet_rate_since(t0);
        (step.peer_audible, step.peer_phone_tone) = peer.shares_since(t0);
        step.probe = Some(probe.stats(wall));
    } else {
        println!("pstn_load: {calls} calls: not all phones got into the call");
    }
    match sipp.wait(hold + GUARD * 2) {
        Ok(status) => step.sipp_exit = status,
        Err(e) => println!("pstn_load: {calls} calls: {e:#}"),
    }
    if let Err(e) = probe_sipp.wait(GUARD) {
        println!("pstn_load: {calls} calls: {e:#}");
    }
    let (successful, failed, retransmissions) = sipp_counts(&stats).unwrap_or_else(|e| {
        println!("pstn_load: {calls} calls: no sipp statistics: {e:#}");
        (0, calls as u64, 0)
    });
    (step.successful, step.failed, step.retransmissions) = (successful, failed, retransmissions);
    // Every phone gone again before the next step.
    if let Err(e) = server.until_participants(|n| n == 1, GUARD) {
        println!("pstn_load: {calls} calls: phones still in the call after the step: {e:#}");
    }
    step.seconds = began.elapsed().as_secs_f64();
    Ok(step)
}

/// The caller's scenario: INVITE with a PCMU offer from `prefix` + call number,
/// ACK, `hold` of a 600 Hz tone, BYE. The probe signals only: its SDP offers the
/// bench's own RTP port (`-set rtp`) and sipp sends no media.
fn scenario(prefix: &str, hold: Duration, probe: bool) -> String {
    let (globals, port, media, stop) = if probe {
        (r#"<Global variables="rtp" />"#, "[$rtp]", "", "")
    } else {
        (
            "",
            "[media_port]",
            r#"<nop><action><exec rtp_stream="tone.ulaw,-1,0" /></action></nop>"#,
            r#"<nop><action><exec rtp_stream="pause" /></action></nop>"#,
        )
    };
    let hold_ms = hold.as_millis();
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="pstn load caller">
  {globals}
  <send retrans="500"><![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{prefix}[call_number]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:{prefix}[call_number]@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio {port} RTP/AVP 0
      a=rtpmap:0 PCMU/8000

  ]]></send>
  <recv response="100" optional="true" />
  <recv response="180" optional="true" />
  <recv response="200" rrs="true" />
  <send><![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  {media}
  <pause milliseconds="{hold_ms}" />
  {stop}
  <send retrans="500"><![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="200" />
</scenario>
"#
    )
}

/// Successful calls, failed calls and retransmissions from sipp's `-trace_stat` CSV
/// (its last row, cumulative columns).
fn sipp_counts(path: &Path) -> Result<(u64, u64, u64)> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .context("empty statistics")?
        .split(';')
        .collect();
    let last: Vec<&str> = lines
        .next_back()
        .context("no statistics row")?
        .split(';')
        .collect();
    let column = |name: &str| -> Result<u64> {
        let i = header
            .iter()
            .position(|h| *h == name)
            .with_context(|| format!("no column {name}"))?;
        let value = last
            .get(i)
            .with_context(|| format!("no value for {name}"))?;
        value
            .trim()
            .parse()
            .with_context(|| format!("{name} `{value}` is not a number"))
    };
    Ok((
        column("SuccessfulCall(C)")?,
        column("FailedCall(C)")?,
        column("Retransmissions(C)")?,
    ))
}

/// A child process killed (and reaped) when dropped.
struct Proc {
    name: &'static str,
    child: Child,
}

impl Proc {
    fn spawn(name: &'static str, command: &mut Command) -> Result<Proc> {
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}: {}", cmd::display(command)))?;
        Ok(Proc { name, child })
    }

    /// Waits for the process to exit, at most `limit`; its exit code (`None` when a
    /// signal ended it). Kills it after `limit`.
    fn wait(&mut self, limit: Duration) -> Result<Option<i32>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.code());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("{} did not finish within {limit:?}", self.name);
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `program` pinned to `core` (taskset execs it: the child's pid is the program's).
fn pinned(core: u32, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new("taskset");
    command.arg("-c").arg(core.to_string()).arg(program);
    command
}

/// The server: `ringwire serve` pinned to core 0.
struct Server {
    proc: Proc,
    pid: u32,
    http: SocketAddr,
    sip: SocketAddr,
}

impl Server {
    fn start(binary: &Path, scratch: &Path) -> Result<Server> {
        let sip = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let data = scratch.join("data");
        let config = scratch.join("ringwire.toml");
        fs::write(
            &config,
            format!(
                r#"http_addr = "127.0.0.1:0"
quic_addr = "127.0.0.1:0"
data_dir = "{data}"

[pstn]
sip_listen = "{sip}"
rtp_ports = {{ first = {first}, last = {last} }}
media_timeout = "20s"
max_call_duration = "30m"

[[pstn.inbound]]
name = "sipp-load"
numbers = ["{NUMBER}"]
allowed_sources = ["127.0.0.1/32"]
# The trunk's own caps (30 at once, 120 a minute by default) would be what the
# bench measures; it is after the gateway's cost per call.
max_calls = 100000
calls_per_minute = 1000000

[[pstn.dispatch]]
number = "{NUMBER}"
target = {{ group = "{GROUP}" }}
"#,
                data = data.display(),
                first = RTP_PORTS.0,
                last = RTP_PORTS.1,
            ),
        )?;
        let log = fs::File::create(scratch.join("server.log"))?;
        let mut proc = Proc::spawn(
            "ringwire serve",
            pinned(0, binary)
                .arg("--config")
                .arg(&config)
                .arg("serve")
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(log),
        )?;
        let pid = proc.child.id();
        let stdout = proc.child.stdout.take().context("server stdout")?;
        let lines = line_channel(stdout);
        let deadline = Instant::now() + GUARD;
        let http = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines.recv_timeout(left).map_err(|_| {
                anyhow::anyhow!(
                    "the server printed no http address; see {}",
                    scratch.join("server.log").display()
                )
            })?;
            if let Some(url) = line.trim().strip_prefix("http") {
                let addr = url.trim().trim_start_matches("http://");
                break addr
                    .parse::<SocketAddr>()
                    .with_context(|| format!("server http address `{addr}`"))?;
            }
        };
        // Keep draining stdout so the server never blocks on it.
        thread::spawn(move || for _ in lines {});
        Ok(Server {
            proc,
            pid,
            http,
            sip,
        })
    }

    /// `ringwire_participants` (participants over all calls) from `/metrics`.
    fn participants(&self) -> Result<u64> {
        let text = http_get(self.http, "/metrics")?;
        text.lines()
            .find_map(|l| l.strip_prefix("ringwire_participants "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
            .context("no ringwire_participants in /metrics")
    }

    /// Polls until the participant count satisfies `want`.
    fn until_participants(&self, want: impl Fn(u64) -> bool, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        let mut last = None;
        loop {
            if let Ok(n) = self.participants() {
                if want(n) {
                    return Ok(());
                }
                last = Some(n);
            }
            ensure!(
                Instant::now() < deadline,
                "participants stayed at {last:?} for {limit:?}"
            );
            thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM first: the server hangs up its legs and exits; Proc kills it if not.
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.proc.child.try_wait(), Ok(Some(_))) {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The native client: `ringwire peer` in the group call, pinned to core 1.
struct Peer {
    proc: Proc,
    stdin: Mutex<Option<ChildStdin>>,
    /// Its JSON lines, with when they arrived.
    lines: Arc<Mutex<Vec<(Instant, Value)>>>,
}

impl Peer {
    fn start(binary: &Path, server: &Server, scratch: &Path) -> Result<Peer> {
        let log = fs::File::create(scratch.join("peer.log"))?;
        let mut proc = Proc::spawn(
            "ringwire peer",
            pinned(1, binary)
                .arg("peer")
                .args(["--url", &format!("ws://{}/v1/signaling", server.http)])
                .args(["--dev-name", "bench", "--join", GROUP, "--camera-tag", "0"])
                .args(["--tone", &PEER_HZ.to_string()])
                .args(["--measure", &format!("{PHONE_HZ},{PEER_HZ}")])
                .args(["--report-every", "1s", "--window", "1s"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(log),
        )?;
        let stdin = proc.child.stdin.take();
        let stdout = proc.child.stdout.take().context("peer stdout")?;
        let lines: Arc<Mutex<Vec<(Instant, Value)>>> = Arc::default();
        let sink = Arc::clone(&lines);
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    sink.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push((Instant::now(), value));
                }
            }
        });
        let peer = Peer {
            proc,
            stdin: Mutex::new(stdin),
            lines,
        };
        let deadline = Instant::now() + GUARD;
        while !peer.any(|v| v["event"] == "state" && v["state"] == "connected") {
            ensure!(
                Instant::now() < deadline,
                "the native client did not connect to the group call; see {}",
                scratch.join("peer.log").display()
            );
            thread::sleep(Duration::from_millis(100));
        }
        Ok(peer)
    }

    fn any(&self, test: impl Fn(&Value) -> bool) -> bool {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|(_, v)| test(v))
    }

    /// Audio packets received per second, between its first and last report since
    /// `since`.
    fn packet_rate_since(&self, since: Instant) -> Option<f64> {
        let lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        let counts: Vec<(Instant, u64)> = lines
            .iter()
            .filter(|(t, _)| *t >= since)
            .filter_map(|(t, v)| Some((*t, v["stats"]["audio_packets_received"].as_u64()?)))
            .collect();
        let (first, last) = (counts.first()?, counts.last()?);
        let secs = (last.0 - first.0).as_secs_f64();
        (secs > 0.5).then(|| last.1.saturating_sub(first.1) as f64 / secs)
    }

    /// Over the reports since `since`: the share of audible frames and of frames
    /// carrying the phones' tone.
    fn shares_since(&self, since: Instant) -> (Option<f64>, Option<f64>) {
        let lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut frames, mut audible, mut tone) = (0u64, 0u64, 0u64);
        for (_, v) in lines
            .iter()
            .filter(|(t, v)| *t >= since && v["event"] == "report")
        {
            let audio = &v["audio"];
            frames += audio["frames"].as_u64().unwrap_or(0);
            audible += audio["audible_frames"].as_u64().unwrap_or(0);
            tone += audio["tones"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["hz"].as_f64() == Some(f64::from(PHONE_HZ)))
                .and_then(|t| t["frames_with_tone"].as_u64())
                .unwrap_or(0);
        }
        if frames == 0 {
            return (None, None);
        }
        let share = |n: u64| Some(n as f64 / frames as f64);
        (share(audible), share(tone))
    }

    /// Leaves the call and waits briefly for the client to exit.
    fn hang_up(mut self) {
        if let Some(mut stdin) = self
            .stdin
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = stdin.write_all(b"hangup\n");
        }
        let _ = self.proc.wait(Duration::from_secs(5));
    }
}

/// The probe phone's media: a UDP socket the server sends its leg's RTP to (the SDP
/// sipp sends names it), answering with a 600 Hz PCMU tone to wherever the server's
/// packets come from.
struct Probe {
    port: u16,
    state: Arc<Mutex<ProbeState>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct ProbeState {
    /// Where the server's leg sends from (set by its first packet).
    server: Option<SocketAddr>,
    packets: u64,
    lost: u64,
    last_seq: Option<u16>,
    last_arrival: Option<Instant>,
    max_gap: Duration,
    /// Decoded audio (8 kHz) since the last reset.
    audio: Vec<i16>,
}

/// What the probe phone measured in a window.
#[derive(Debug, Clone, Default)]
struct ProbeStats {
    packets_per_s: f64,
    lost: u64,
    max_gap_ms: f64,
    /// Share of the received audio's power at the native client's tone.
    peer_tone_share: f64,
    /// Share of 20 ms frames louder than -50 dBFS.
    audible_share: f64,
}

impl ProbeStats {
    fn to_json(&self) -> Value {
        json!({
            "packets_per_s": round(self.packets_per_s, 1),
            "lost": self.lost,
            "max_gap_ms": round(self.max_gap_ms, 1),
            "native_tone_share": round(self.peer_tone_share, 3),
            "audible_share": round(self.audible_share, 3),
        })
    }
}

impl Probe {
    fn start() -> Result<Probe> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let port = socket.local_addr()?.port();
        let state: Arc<Mutex<ProbeState>> = Arc::default();
        let stop: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let receiver = {
            let (socket, state, stop) =
                (socket.try_clone()?, Arc::clone(&state), Arc::clone(&stop));
            thread::spawn(move || {
                let mut buf = [0u8; 1500];
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let Ok((n, from)) = socket.recv_from(&mut buf) else {
                        continue;
                    };
                    let Some(packet) = buf.get(..n).filter(|p| p.len() >= 12) else {
                        continue;
                    };
                    let now = Instant::now();
                    let seq = u16::from_be_bytes([packet[2], packet[3]]);
                    let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
                    s.server = Some(from);
                    s.packets += 1;
                    if let Some(last) = s.last_seq {
                        let step = seq.wrapping_sub(last);
                        if (2..1000).contains(&step) {
                            s.lost += u64::from(step - 1);
                        }
                    }
                    s.last_seq = Some(seq);
                    if let Some(last) = s.last_arrival {
                        s.max_gap = s.max_gap.max(now - last);
                    }
                    s.last_arrival = Some(now);
                    if packet[1] & 0x7f == 0 {
                        let header = 12 + 4 * usize::from(packet[0] & 0x0f);
                        if let Some(payload) = packet.get(header..) {
                            s.audio.extend(payload.iter().map(|&b| ulaw_decode(b)));
                        }
                    }
                }
            })
        };
        let sender = {
            let (state, stop) = (Arc::clone(&state), Arc::clone(&stop));
            let tone = ulaw_tone(PHONE_HZ, 2000.0);
            thread::spawn(move || {
                let (mut seq, mut ts, mut offset) = (0u16, 0u32, 0usize);
                let started = Instant::now();
                let mut n = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    n += 1;
                    let due = started + Duration::from_millis(20) * n;
                    thread::sleep(due.saturating_duration_since(Instant::now()));
                    let Some(to) = state.lock().unwrap_or_else(PoisonError::into_inner).server
                    else {
                        continue;
                    };
                    let mut packet = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78];
                    packet[2..4].copy_from_slice(&seq.to_be_bytes());
                    packet[4..8].copy_from_slice(&ts.to_be_bytes());
                    packet.extend((0..160).map(|i| tone[(offset + i) % tone.len()]));
                    let _ = socket.send_to(&packet, to);
                    (seq, ts, offset) = (seq.wrapping_add(1), ts.wrapping_add(160), offset + 160);
                }
            })
        };
        Ok(Probe {
            port,
            state,
            stop,
            threads: vec![receiver, sender],
        })
    }

    /// Starts a new window (a new call: sequence numbers start over).
    fn reset(&self) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let server = s.server;
        *s = ProbeState {
            server,
            ..ProbeState::default()
        };
    }

    fn stats(&self, window: Duration) -> ProbeStats {
        let s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let frames: Vec<&[i16]> = s.audio.chunks_exact(160).collect();
        let power: f64 = frames.iter().map(|f| mean_square(f)).sum();
        let at: f64 = frames
            .iter()
            .map(|f| goertzel(f, f64::from(PEER_HZ), 8000.0).min(mean_square(f)))
            .sum();
        // A sine of amplitude 100 (-50 dBFS).
        let audible = frames.iter().filter(|f| mean_square(f) > 5000.0).count();
        ProbeStats {
            packets_per_s: s.packets as f64 / window.as_secs_f64(),
            lost: s.lost,
            max_gap_ms: s.max_gap.as_secs_f64() * 1000.0,
            peer_tone_share: if power > 0.0 { at / power } else { 0.0 },
            audible_share: if frames.is_empty() {
                0.0
            } else {
                audible as f64 / frames.len() as f64
            },
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn mean_square(frame: &[i16]) -> f64 {
    frame.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / frame.len().max(1) as f64
}

/// The power of `freq` in `frame`, on the scale of [`mean_square`] (a full sine of
/// amplitude A gives A²/2 in both).
fn goertzel(frame: &[i16], freq: f64, rate: f64) -> f64 {
    let w = std::f64::consts::TAU * freq / rate;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in frame {
        let s0 = f64::from(x) + coeff * s1 - s2;
        (s2, s1) = (s1, s0);
    }
    let n = frame.len().max(1) as f64;
    (s1 * s1 + s2 * s2 - coeff * s1 * s2) * 2.0 / (n * n)
}

/// One second of a `freq` Hz sine at 8 kHz, amplitude-modulated ±30 % at 3 Hz (peak
/// `peak`), μ-law encoded; whole hertz, so it loops seamlessly. A steady sine would be
/// background noise to the mixer's opus encoder, whose DTX would thin it out.
fn ulaw_tone(freq: u32, peak: f64) -> Vec<u8> {
    use std::f64::consts::TAU;
    (0..8000)
        .map(|n| {
            let t = f64::from(n) / 8000.0;
            let envelope = 1.0 + 0.3 * (TAU * 3.0 * t).sin();
            ulaw_encode((peak / 1.3 * envelope * (TAU * f64::from(freq) * t).sin()) as i16)
        })
        .collect()
}

/// G.711 μ-law (ITU-T G.711, the classic biased-segment encoder).
fn ulaw_encode(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let value = i32::from(sample);
    let sign: u8 = if value < 0 { 0x80 } else { 0 };
    let magnitude = value.abs().min(CLIP) + BIAS;
    // The segment: the highest set bit above bit 7.
    let exponent = (31 - magnitude.leading_zeros() as i32 - 7).clamp(0, 7);
    let mantissa = (magnitude >> (exponent + 3)) & 0x0f;
    !(sign | ((exponent as u8) << 4) | mantissa as u8)
}

fn ulaw_decode(byte: u8) -> i16 {
    let byte = !byte;
    let exponent = (byte >> 4) & 0x07;
    let mantissa = i32::from(byte & 0x0f);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    let value = if byte & 0x80 != 0 {
        -magnitude
    } else {
        magnitude
    };
    value as i16
}

/// A server GET over plain HTTP/1.1; the body.
fn http_get(addr: SocketAddr, path: &str) -> Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("no end of HTTP headers")?;
    ensure!(
        head.starts_with("HTTP/1.1 200"),
        "GET {path}: {}",
        head.lines().next().unwrap_or("")
    );
    Ok(body.to_owned())
}

/// A reader's lines on a channel, read on their own thread.
fn line_channel(reader: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn free_port() -> Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Clock ticks per second of `/proc` CPU times (`getconf CLK_TCK`, nearly always 100).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        cmd::output(&mut cmd::command("getconf", ["CLK_TCK"]))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// A process's user + system CPU time, in clock ticks (all its threads).
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces), from field 3 (state):
    // utime is field 14, stime field 15.
    let rest = stat.rsplit_once(')').context("no ) in stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .context("short stat")?
            .parse()
            .context("stat field not a number")
    };
    Ok(field(11)? + field(12)?)
}

/// Core 0's busy and total time, in clock ticks, from `/proc/stat`.
fn core0() -> Result<(u64, u64)> {
    let stat = fs::read_to_string("/proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu0 "))
        .context("no cpu0 in /proc/stat")?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = values.iter().sum();
    // idle and iowait
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    Ok((total - idle, total))
}

/// CPU ticks over a wall time, in percent of one core.
fn pct(ticks: u64, wall: Duration) -> f64 {
    ticks as f64 / clock_ticks() / wall.as_secs_f64().max(1e-3) * 100.0
}

/// Least squares `cpu_pct = slope * calls + intercept` over the steps; `None` with
/// fewer than two distinct step sizes.
fn fit_line(steps: &[&Step]) -> Option<(f64, f64)> {
    if steps.len() < 2 {
        return steps.first().map(|s| (s.cpu_pct / s.legs() as f64, 0.0));
    }
    let n = steps.len() as f64;
    let mx = steps.iter().map(|s| s.legs() as f64).sum::<f64>() / n;
    let my = steps.iter().map(|s| s.cpu_pct).sum::<f64>() / n;
    let sxx: f64 = steps.iter().map(|s| (s.legs() as f64 - mx).powi(2)).sum();
    let sxy: f64 = steps
        .iter()
        .map(|s| (s.legs() as f64 - mx) * (s.cpu_pct - my))
        .sum();
    if sxx == 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    Some((slope, my - slope * mx))
}

fn row(s: &Step) -> String {
    let opt = |v: Option<f64>, digits: usize| match v {
        Some(v) => format!("{v:.digits$}"),
        None => "-".to_owned(),
    };
    let probe = match &s.probe {
        Some(p) => format!(
            "{:>5.1} {:>4} {:>5.0} {:>5.2}",
            p.packets_per_s, p.lost, p.max_gap_ms, p.peer_tone_share
        ),
        None => format!("{:>5} {:>4} {:>5} {:>5}", "-", "-", "-", "-"),
    };
    format!(
        "{:>5} {:>4} {:>5} {:>6.1} {:>6.1} {:>6.2} {:>6.1} {:>6.1} {:>5} {:>4} {:>5} {:>5} {:>5} {:>5} | {probe} | {}",
        s.calls,
        s.rate,
        s.min_participants.min(99_999),
        s.cpu_pct,
        s.cpu_peak_pct,
        s.cpu_ms_per_call(),
        s.core0_others_pct,
        s.sipp_cpu_pct,
        s.successful,
        s.failed,
        s.retransmissions,
        opt(s.peer_packets_per_s, 1),
        opt(s.peer_audible, 2),
        opt(s.peer_phone_tone, 2),
        if s.sustained() { "yes" } else { "NO" },
    )
}

fn table(steps: &[Step], idle: f64) -> String {
    let mut out = String::new();
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "pstn_load: server on one core (idle with the native client alone: {idle:.1} %)"
    );
    let _ = writeln!(
        out,
        "{:>5} {:>4} {:>5} {:>6} {:>6} {:>6} {:>6} {:>6} {:>5} {:>4} {:>5} {:>5} {:>5} {:>5} | {:>5} {:>4} {:>5} {:>5} | sustained",
        "calls",
        "cps",
        "parts",
        "cpu%",
        "peak%",
        "ms/c/s",
        "oth0%",
        "sipp%",
        "ok",
        "fail",
        "retr",
        "nat/s",
        "aud",
        "600Hz",
        "prb/s",
        "lost",
        "gapms",
        "700Hz"
    );
    for step in steps {
        let _ = writeln!(out, "{}", row(step));
    }
    out
}

fn round(v: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (v * scale).round() / scale
}

fn loadavg() -> Option<String> {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

fn cpu_model() -> Option<String> {
    fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
    })
}

fn utc_now() -> Option<String> {
    cmd::output(&mut cmd::command("date", ["-u", "+%Y-%m-%dT%H:%M:%SZ"]))
        .ok()
        .map(|s| s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_round_trips_within_its_quantization() {
        for sample in [0i16, 1, -1, 100, -100, 1000, -5000, 12345, 32767, -32768] {
            let back = ulaw_decode(ulaw_encode(sample));
            let err = (i32::from(back) - i32::from(sample)).abs();
            // Segment steps grow with the level: 1/16 of the magnitude plus the bias.
            assert!(
                err <= i32::from(sample).abs() / 16 + 140,
                "{sample} -> {back}"
            );
        }
        // Known codes: silence is 0xff, full negative scale 0x00.
        assert_eq!(ulaw_encode(0), 0xff);
        assert_eq!(ulaw_encode(-32768), 0x00);
    }

    #[test]
    fn goertzel_finds_the_tone_in_the_ulaw_tone() {
        let pcm: Vec<i16> = ulaw_tone(PHONE_HZ, 2000.0)
            .into_iter()
            .map(ulaw_decode)
            .collect();
        let frame = &pcm[..160];
        let share = goertzel(frame, f64::from(PHONE_HZ), 8000.0) / mean_square(frame);
        assert!(share > 0.9, "{share}");
        assert!(goertzel(frame, f64::from(PEER_HZ), 8000.0) / mean_square(frame) < 0.05);
    }

    #[test]
    fn reads_sipp_statistics() {
        let dir = std::env::temp_dir().join(format!("xtask-pstn-load-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stats.csv");
        fs::write(
            &path,
            "StartTime;SuccessfulCall(P);SuccessfulCall(C);FailedCall(C);Retransmissions(C);\n\
             a;0;0;0;0;\n\
             b;3;10;1;4;\n",
        )
        .unwrap();
        assert_eq!(sipp_counts(&path).unwrap(), (10, 1, 4));
        fs::write(&path, "StartTime;\n").unwrap();
        assert!(sipp_counts(&path).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fits_cpu_per_call() {
        let step = |calls, cpu_pct| Step {
            calls,
            cpu_pct,
            ..Step::default()
        };
        let steps = [step(10, 12.0), step(20, 22.0), step(40, 42.0)];
        let (slope, intercept) = fit_line(&steps.iter().collect::<Vec<_>>()).unwrap();
        // Per phone leg: sipp's calls and the probe phone.
        assert!((slope - 1.0).abs() < 1e-9 && (intercept - 1.0).abs() < 1e-9);
        assert_eq!(steps[0].cpu_ms_per_call(), 120.0 / 11.0);
    }

    #[test]
    fn scenarios_name_their_callers_and_media() {
        let load = scenario("+1555000", Duration::from_secs(12), false);
        assert!(load.contains("sip:+1555000[call_number]@"));
        assert!(load.contains("m=audio [media_port] RTP/AVP 0"));
        assert!(load.contains(r#"<pause milliseconds="12000" />"#));
        assert!(load.contains("rtp_stream=\"tone.ulaw,-1,0\""));
        let probe = scenario("+1556000", Duration::from_secs(1), true);
        assert!(probe.contains("m=audio [$rtp] RTP/AVP 0"));
        assert!(!probe.contains("rtp_stream"));
    }
}
