//! Criterion benches of Ringwire's sans-IO cores; the benches are under `benches/`
//! (`cargo bench -p ringwire-benches`). The library holds what several benches share:
//! the in-process media plane of [`plane`], the video forwarding world of
//! [`video_plane`] and the thread CPU clock of [`cpu`].

pub mod cpu;
pub mod plane;
pub mod video_plane;
