//! `ringwire demo`, the README's main job, as the shipped binary runs it: an embedded
//! server on 127.0.0.1 (free ports), an echo test and a three-party call with audio
//! and video through the calling SDK. The demo checks media by content itself (tones
//! by Goertzel, cameras by the test pattern's sender tag) and exits non-zero when a
//! check fails; this test holds it to that and to its summary.

#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn the_demo_passes_every_check_and_prints_its_summary() {
    let data = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_ringwire"))
        .arg("demo")
        // Its server's data dir is a temp dir of its own; keep anything else it might
        // write out of the user's home.
        .env("XDG_DATA_HOME", data.path())
        .env("HOME", data.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "ringwire demo failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    for line in [
        "[ok] echo call connects",
        "[ok] our tone played back",
        "[ok] the echo service hangs up normally",
        "[ok] each hears the other two tones and decodes the other two cameras",
        "[ok] bob's mute shows in ada's roster",
        "[ok] hang up for everyone ends the call for all",
        "demo: 7 of 7 checks passed",
    ] {
        assert!(stdout.contains(line), "no `{line}` in:\n{stdout}");
    }
}
