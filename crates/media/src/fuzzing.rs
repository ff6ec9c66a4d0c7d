//! Entry points for the cargo-fuzz targets under `fuzz/` (STYLE §5).
//!
//! The module exists under `cfg(fuzzing)` (set by cargo-fuzz) and under the
//! `arbitrary` feature, so its tests replay the operations on stable in CI.
//!
//! | target | function | checks |
//! |---|---|---|
//! | `jitter_ops` | [`run_jitter_ops`] | a [`JitterScenario`] of [`JitterOp`]s (packets with arbitrary sequence numbers, timestamps, payload sizes and arrival times; pulls at arbitrary times) replayed against a [`JitterBuffer`]: no panic; memory bounded (packets held ≤ `max_packets`); every frame is exactly 960 samples; counters add up |
//!
//! ```text
//! cd fuzz
//! cargo +nightly fuzz run jitter_ops -- -max_total_time=60
//! ```

use std::time::{Duration, Instant};

use arbitrary::Arbitrary;

use crate::codec::{Channels, Encoder, FRAME_SAMPLES, OpusConfig};
use crate::jitter::{AudioPacket, JitterBuffer, JitterConfig};

/// One operation on the jitter buffer.
#[derive(Debug, Clone, Arbitrary)]
pub enum JitterOp {
    /// Advance the clock by `ms` (0..=65535 ms).
    Advance {
        /// Milliseconds.
        ms: u16,
    },
    /// A packet arrives now with a real opus payload (`voiced` picks a tone or silence).
    Opus {
        /// RTP sequence number.
        seq: u16,
        /// RTP timestamp.
        timestamp: u32,
        /// Tone or silence.
        voiced: bool,
    },
    /// A packet arrives now with arbitrary bytes as payload.
    Raw {
        /// RTP sequence number.
        seq: u16,
        /// RTP timestamp.
        timestamp: u32,
        /// The payload (repeated `repeat` times, to reach any size).
        bytes: Vec<u8>,
        /// How many times to repeat `bytes`.
        repeat: u8,
    },
    /// Pull every frame due now.
    Pull,
}

/// A jitter buffer configuration and the operations to replay.
#[derive(Debug, Clone, Arbitrary)]
pub struct JitterScenario {
    /// Stereo instead of mono.
    pub stereo: bool,
    /// Packets held at most (1..=256).
    pub max_packets: u8,
    /// The operations.
    pub ops: Vec<JitterOp>,
}

/// Replays `scenario`, checking the invariants after every operation.
///
/// # Panics
/// When an invariant does not hold (that is the finding).
pub fn run_jitter_ops(scenario: &JitterScenario) {
    let channels = if scenario.stereo {
        Channels::Stereo
    } else {
        Channels::Mono
    };
    let max_packets = usize::from(scenario.max_packets).max(1);
    let config = JitterConfig {
        channels,
        max_packets,
        ..JitterConfig::default()
    };
    let mut jb = JitterBuffer::new(config).expect("a decoder can be created");
    let mut enc = Encoder::new(OpusConfig {
        channels,
        ..OpusConfig::default()
    })
    .expect("the default config is valid");
    let silence = vec![0i16; channels.frame_len()];
    let voiced: Vec<i16> = (0..channels.frame_len())
        .map(|i| if (i / 50) % 2 == 0 { 6000 } else { -6000 })
        .collect();
    // The one clock read of a replay: the origin of its virtual time, which the ops
    // then advance. The jitter buffer itself never reads a clock.
    let t0 = Instant::now();
    let mut now = t0;
    let mut handed_in = 0u64;
    for op in scenario.ops.iter().take(2000) {
        match op {
            JitterOp::Advance { ms } => now += Duration::from_millis(u64::from(*ms)),
            JitterOp::Opus {
                seq,
                timestamp,
                voiced: v,
            } => {
                let pcm = if *v { &voiced } else { &silence };
                let payload = enc.encode_to_vec(pcm).expect("one frame encodes");
                handed_in += 1;
                jb.handle_packet(
                    AudioPacket {
                        seq: *seq,
                        timestamp: *timestamp,
                        payload,
                        marker: false,
                    },
                    now,
                );
            }
            JitterOp::Raw {
                seq,
                timestamp,
                bytes,
                repeat,
            } => {
                let payload = bytes.repeat(usize::from(*repeat).max(1));
                handed_in += 1;
                jb.handle_packet(
                    AudioPacket {
                        seq: *seq,
                        timestamp: *timestamp,
                        payload,
                        marker: true,
                    },
                    now,
                );
            }
            JitterOp::Pull => {
                // A stalled clock jumped far ahead gives one frame per due 20 ms; cap it.
                for _ in 0..200 {
                    let Some(frame) = jb.poll_frame(now) else {
                        break;
                    };
                    assert_eq!(frame.pcm.len(), FRAME_SAMPLES * channels.count());
                }
            }
        }
        assert!(
            jb.len() <= max_packets,
            "holds {} > {max_packets}",
            jb.len()
        );
        let st = jb.stats();
        assert_eq!(st.packets, handed_in);
        assert_eq!(
            st.frames,
            st.decoded + st.fec + st.concealed + st.comfort_noise
        );
        assert!(st.target_delay <= config.max_delay && st.target_delay >= config.min_delay);
        if let Some(at) = jb.poll_timeout() {
            assert!(at >= t0);
        }
    }
}

#[cfg(test)]
mod tests {
    use arbitrary::Unstructured;

    use super::*;

    #[test]
    fn replays_pseudo_random_scenarios() {
        // A fixed byte stream per seed stands in for the fuzzer's input.
        for seed in 0..40u64 {
            let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let bytes: Vec<u8> = (0..4096)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 24) as u8
                })
                .collect();
            let mut u = Unstructured::new(&bytes);
            let scenario = JitterScenario::arbitrary(&mut u).unwrap();
            run_jitter_ops(&scenario);
        }
    }

    #[test]
    fn a_plain_stream_replays() {
        let mut ops = Vec::new();
        for i in 0..200u16 {
            ops.push(JitterOp::Opus {
                seq: i.wrapping_add(65_500),
                timestamp: u32::from(i).wrapping_mul(960).wrapping_sub(9600),
                voiced: i % 50 < 30,
            });
            ops.push(JitterOp::Advance { ms: 20 });
            ops.push(JitterOp::Pull);
        }
        run_jitter_ops(&JitterScenario {
            stereo: false,
            max_packets: 100,
            ops,
        });
    }
}
