//! The seed's feature tables (DESIGN.md, "What the SDK must do"), one module per
//! table and one test per row, named after the row, through the public SDK only: the
//! real server on loopback and one `CallAgent` per user over WebSocket. Media is
//! checked by content: tones by Goertzel in what each side played, video by the test
//! pattern's sender tag (or a window's colour) in what each side decoded.
//!
//! Every test starts its own server (nextest runs each test in its own process, so a
//! server cannot be shared; starting one costs milliseconds); rows that need no media
//! run without it. The tables share one test binary: each would link the whole SDK,
//! server and codecs again.
//!
//! The PSTN table's far end is sipp (a trunk UAS on loopback); its rows skip without
//! sipp unless `CI` is set. The gateway's own cases (refusals, inbound, digest, DTMF)
//! are in `crates/server/tests/pstn.rs`.
//!
//! Not here: the web-only rows (share a browser tab: `web/`), and streaming limits
//! (`video_e2e.rs`).

#![allow(clippy::unwrap_used)] // Scenario helpers outside #[test] fns unwrap too.

#[path = "support/harness.rs"]
mod harness;
#[path = "sdk_kit/mod.rs"]
mod kit;

/// Core: calls, media controls, devices, states.
#[path = "seed/core.rs"]
mod core_table;
/// General: the audio test service.
#[path = "seed/general.rs"]
mod general;
/// PSTN: phone participants through a SIP trunk (sipp as its far end).
#[path = "seed/pstn.rs"]
mod pstn_table;
/// Roster: list and remove participants.
#[path = "seed/roster.rs"]
mod roster;
/// Screen sharing: the whole screen, one application, a remote share.
#[path = "seed/screen_sharing.rs"]
mod screen_sharing;
