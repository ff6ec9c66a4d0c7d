//! `ringwire devices` under a private PulseAudio and Xvfb: the sinks, monitors, the
//! screen and a window of known title are listed, in the table and in `--json`.

#![allow(clippy::unwrap_used)] // Helpers outside #[test] fns unwrap too.

use std::process::Command;

use ringwire_devices::testing::{NullSink, PulseServer, XServer};

#[test]
fn devices_lists_pulseaudio_and_xvfb_devices() {
    let pulse = PulseServer::start(&[
        NullSink {
            name: "ring_a",
            rate: 48_000,
        },
        NullSink {
            name: "ring_b",
            rate: 48_000,
        },
    ])
    .unwrap();
    let mut display = XServer::start(640, 480).unwrap();
    display
        .open_xterm("RingwireCliProbe", "blue", "30x5+10+10")
        .unwrap();
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_ringwire"))
            .arg("devices")
            .args(args)
            .envs(pulse.env())
            .envs(display.env())
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };

    let json: serde_json::Value = serde_json::from_str(&run(&["--json"])).unwrap();
    assert_eq!(json["audio_host"], "pulseaudio");
    let devices = json["devices"].as_array().unwrap();
    let find = |id: &str| {
        devices
            .iter()
            .find(|d| d["id"] == id)
            .unwrap_or_else(|| panic!("{id} not in {json:#}"))
    };
    let speaker = find("pulseaudio:ring_a");
    assert_eq!(speaker["kind"], "speaker");
    assert_eq!(speaker["is_default"], true);
    assert!(!speaker["formats"].as_array().unwrap().is_empty());
    assert_eq!(find("pulseaudio:ring_b")["is_default"], false);
    assert_eq!(find("pulseaudio:ring_a.monitor")["kind"], "microphone");
    let screens: Vec<_> = devices.iter().filter(|d| d["kind"] == "screen").collect();
    assert_eq!(screens.len(), 1, "{json:#}");
    assert_eq!(screens[0]["formats"][0]["width"], 640);
    let window = devices
        .iter()
        .find(|d| d["kind"] == "window" && d["name"] == "RingwireCliProbe")
        .unwrap_or_else(|| panic!("window not in {json:#}"));
    assert_eq!(window["application"], "XTerm");
    assert!(devices.iter().all(|d| d["synthetic"] == false));

    let table = run(&["--synthetic"]);
    assert!(table.starts_with("audio host: pulseaudio\n"), "{table}");
    let speaker_row = table
        .lines()
        .find(|l| l.contains("pulseaudio:ring_a "))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        speaker_row.starts_with("speaker") && speaker_row.contains('*'),
        "{table}"
    );
    assert!(table.contains("synthetic:test-pattern"), "{table}");
    assert!(table.contains("RingwireCliProbe (XTerm)"), "{table}");
}
