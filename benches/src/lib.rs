//! Criterion benches of Ringwire's sans-IO cores; the benches are under `benches/`
//! (`cargo bench -p ringwire-benches`). This library is empty.
