//! Helpers the PSTN gateway's end-to-end suites share (`pstn`, `pstn_transport`,
//! `pstn_inbound_auth`, `baresip`): whether sipp is installed, free loopback ports, and
//! waiting for a call state. Included with `#[path = "common/phone.rs"] mod phone;`.

#![allow(dead_code)] // Each test binary uses a different part of the helpers.
#![allow(unreachable_pub)] // A test helper module: `pub` is how the tests reach it.

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::Duration;

use ringwire_calling::EventStream;
use ringwire_signaling::{CallId, CallState, EndReason, Event};

/// Longest a call state is waited for: a guard against hangs, not a check.
pub const STATE_GUARD: Duration = Duration::from_secs(30);

/// Whether sipp is installed. `cargo xtask setup` installs it, so under CI (`CI` set)
/// a missing sipp fails the test instead of skipping it.
pub fn have_sipp() -> bool {
    let found = Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found || std::env::var_os("CI").is_none(),
        "sipp is missing; run `cargo xtask setup`"
    );
    if !found {
        eprintln!("sipp not installed; skipping");
    }
    found
}

/// A UDP port on loopback that was free a moment ago.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Waits until `call` reaches `state`; returns its end reason. A timeout panics with
/// every event seen meanwhile.
pub async fn until_state(
    events: &mut EventStream,
    call: &CallId,
    state: CallState,
) -> Option<EndReason> {
    let mut seen = Vec::new();
    let wait = async {
        loop {
            let event = events.recv().await.expect("events go on");
            if let Event::CallStateChanged {
                call_id,
                state: s,
                end_reason,
            } = &event
                && call_id == call
                && *s == state
            {
                return end_reason.clone();
            }
            seen.push(event);
        }
    };
    match tokio::time::timeout(STATE_GUARD, wait).await {
        Ok(reason) => reason,
        Err(_) => panic!("no {state:?} for {call} in {STATE_GUARD:?}; saw {seen:#?}"),
    }
}
