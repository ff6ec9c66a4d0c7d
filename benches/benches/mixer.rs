//! Cost of one 20 ms mixer tick for rooms of 2, 50, 350 and 1000 participants with
//! K = 3 speakers: every participant's packet goes in (3 talkers with real opus speech-
//! band tones, everyone else a silent DTX-sized packet at level 127), then the tick
//! selects by level, decodes 3, encodes 4 (one shared mix + 3 mix-minus) and every
//! output is drained. A room of 2 is the pass-through (forwarding only).
//!
//! Not included: SRTP and RTP packetization per listener (str0m), which the issue's
//! target also counts.
//!
//! Run: `cargo bench -p ringwire-benches --bench mixer`.

// criterion_group! defines an undocumented `pub fn benches`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ringwire_media::codec::{FRAME_DURATION, FRAME_SAMPLES, SAMPLE_RATE};
use ringwire_media::{Encoder, Mixer, MixerConfig, OpusConfig, analysis};

const SIZES: [u32; 4] = [2, 50, 350, 1000];
const TALKERS: u32 = 3;
/// Pre-encoded frames per talker (one second), replayed in a loop.
const FRAMES: usize = 50;

/// One second of 20 ms opus packets of a tone, and the same of silence.
fn packets(freq: f64) -> Vec<Vec<u8>> {
    let mut encoder = Encoder::new(OpusConfig::default()).expect("default config is valid");
    let mut pcm = vec![0i16; FRAME_SAMPLES];
    (0..FRAMES)
        .map(|f| {
            analysis::tone(
                freq,
                8000.0,
                SAMPLE_RATE,
                (f * FRAME_SAMPLES) as u64,
                &mut pcm,
            );
            encoder.encode_to_vec(&pcm).expect("encodes")
        })
        .collect()
}

fn mixer(c: &mut Criterion) {
    let talk: Vec<Vec<Vec<u8>>> = [300.0, 700.0, 1100.0].map(packets).into();
    let silence = {
        let mut encoder = Encoder::new(OpusConfig::default()).expect("valid");
        encoder.encode_to_vec(&[0; FRAME_SAMPLES]).expect("encodes")
    };
    let mut group = c.benchmark_group("mixer_tick");
    for n in SIZES {
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            let mut now = Instant::now();
            let mut mixer = Mixer::new(MixerConfig::default()).expect("valid config");
            for p in 0..n {
                mixer.add_participant(p, now);
            }
            let mut frame = 0usize;
            b.iter(|| {
                for p in 0..n {
                    if p < TALKERS {
                        let packet = &talk[p as usize][frame % FRAMES];
                        mixer.handle_packet(&p, 20 + p as u8, packet, now);
                    } else {
                        mixer.handle_packet(&p, 127, &silence, now);
                    }
                }
                now += FRAME_DURATION;
                frame += 1;
                mixer.handle_timeout(now);
                while let Some(output) = mixer.poll_output() {
                    black_box(output);
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, mixer);
criterion_main!(benches);
