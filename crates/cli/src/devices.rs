//! `ringwire devices`: every microphone, speaker, camera, screen and window this
//! machine offers, with ids (what settings store), defaults and formats.

use anyhow::{Context, Result};
use clap::Args;
use ringwire_devices::{DeviceInfo, DeviceKind, DeviceManager, DeviceManagerConfig};
use serde::Serialize;

/// Options of `ringwire devices`.
#[derive(Debug, Args)]
pub(crate) struct DevicesArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also list the synthetic devices (test tones, test pattern).
    #[arg(long)]
    synthetic: bool,
}

/// The JSON document `--json` prints.
#[derive(Debug, Serialize)]
struct Listing {
    /// The sound host in use (`pulseaudio`, `alsa`), if any.
    audio_host: Option<String>,
    devices: Vec<DeviceInfo>,
    /// Kinds that could not be listed, and why.
    errors: Vec<KindError>,
}

#[derive(Debug, Serialize)]
struct KindError {
    kind: DeviceKind,
    error: String,
}

const KINDS: [DeviceKind; 5] = [
    DeviceKind::Microphone,
    DeviceKind::Speaker,
    DeviceKind::Camera,
    DeviceKind::Screen,
    DeviceKind::Window,
];

/// Lists the devices.
pub(crate) fn run(args: &DevicesArgs) -> Result<()> {
    let config = DeviceManagerConfig::default().with_synthetic(args.synthetic);
    let manager = DeviceManager::new(config).context("starting the device manager")?;
    let mut listing = Listing {
        audio_host: manager.audio_host(),
        devices: Vec::new(),
        errors: Vec::new(),
    };
    for kind in KINDS {
        match manager.list(kind) {
            Ok(devices) => listing.devices.extend(devices),
            Err(error) => listing.errors.push(KindError {
                kind,
                error: error.to_string(),
            }),
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&listing)?);
    } else {
        print!("{}", table(&listing));
    }
    Ok(())
}

/// The listing as an aligned table, then the kinds that could not be listed.
fn table(listing: &Listing) -> String {
    let mut rows = vec![[
        "KIND".to_owned(),
        "ID".to_owned(),
        "DEFAULT".to_owned(),
        "NAME".to_owned(),
        "FORMATS".to_owned(),
    ]];
    for device in &listing.devices {
        let name = match &device.application {
            Some(app) => format!("{} ({app})", device.name),
            None => device.name.clone(),
        };
        let formats = match device.formats.split_first() {
            Some((first, [])) => first.to_string(),
            Some((first, rest)) => format!("{first} (+{} more)", rest.len()),
            None => "-".to_owned(),
        };
        let default = if device.is_default { "*" } else { "" };
        let kind = if device.synthetic {
            format!("{} (synthetic)", device.kind)
        } else {
            device.kind.to_string()
        };
        rows.push([
            kind,
            device.id.to_string(),
            default.to_owned(),
            name,
            formats,
        ]);
    }
    let mut widths = [0usize; 5];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    if let Some(host) = &listing.audio_host {
        out.push_str(&format!("audio host: {host}\n"));
    }
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    for error in &listing.errors {
        out.push_str(&format!("({}: {})\n", error.kind, error.error));
    }
    out
}

#[cfg(test)]
mod tests {
    use ringwire_devices::{DeviceFormat, DeviceId};

    use super::*;

    #[test]
    fn table_aligns_columns_and_reports_errors() {
        let listing = Listing {
            audio_host: Some("pulseaudio".to_owned()),
            devices: vec![
                DeviceInfo {
                    id: DeviceId::new("pulseaudio:ring_a"),
                    kind: DeviceKind::Speaker,
                    name: "ring_a".to_owned(),
                    application: None,
                    is_default: true,
                    synthetic: false,
                    formats: vec![
                        DeviceFormat::Audio {
                            channels: 2,
                            min_rate: 48_000,
                            max_rate: 48_000,
                            sample_format: "i16".to_owned(),
                        },
                        DeviceFormat::Audio {
                            channels: 1,
                            min_rate: 1,
                            max_rate: 384_000,
                            sample_format: "f32".to_owned(),
                        },
                    ],
                },
                DeviceInfo {
                    id: DeviceId::new("window:42"),
                    kind: DeviceKind::Window,
                    name: "Probe".to_owned(),
                    application: Some("XTerm".to_owned()),
                    is_default: false,
                    synthetic: false,
                    formats: Vec::new(),
                },
            ],
            errors: vec![KindError {
                kind: DeviceKind::Camera,
                error: "camera support is not compiled in".to_owned(),
            }],
        };
        let text = table(&listing);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "audio host: pulseaudio");
        assert_eq!(
            lines[1],
            "KIND     ID                 DEFAULT  NAME           FORMATS"
        );
        assert_eq!(
            lines[2],
            "speaker  pulseaudio:ring_a  *        ring_a         2ch 48000Hz i16 (+1 more)"
        );
        assert_eq!(
            lines[3],
            "window   window:42                   Probe (XTerm)  -"
        );
        assert_eq!(lines[4], "(camera: camera support is not compiled in)");
    }
}
