//! Ringwire's PSTN gateway: phone participants through SIP trunks.
//!
//! - [`config`]: the `[pstn]` section (outbound and inbound trunks, dispatch, limits)
//!   and the decisions made from it (routing, caller id, source allowlist).
//! - [`limits`]: per-identity dial-out caps (calls at once, calls per minute).
//! - [`g711`], [`rtp`]: the phone side's codecs and packets (opus runs at 8 kHz on
//!   phone legs, so nothing is resampled).
//! - [`media`]: one phone leg's media, sans-IO: RTP towards the trunk (symmetric,
//!   latched), G.711 <-> opus for the media plane's local participant, RFC 4733 DTMF.
//! - [`inbound`]: which inbound INVITEs are taken and where they go (sans IO);
//!   [`digest`] authenticates them for trunks with credentials.
//! - [`sip`]: the SIP user agent (ezk crates) that dials and answers.
//!
//! Sans-IO parts take `now` and follow the drain rule: after every `handle_*`, drain
//! `poll_transmit`, `poll_audio` and `poll_event`, then sleep until `poll_timeout`.

pub mod config;
pub mod digest;
pub mod error;
#[cfg(any(fuzzing, test))]
#[doc(hidden)]
pub mod fuzzing;
pub mod g711;
pub mod inbound;
pub mod limits;
pub mod media;
pub mod rtp;
pub mod sip;

pub use error::{Error, Malformed};
