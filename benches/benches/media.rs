//! Costs of the audio cores: opus encode and decode of one 20 ms frame (48 kHz mono,
//! 32 kbit/s, FEC and DTX on, complexity 5), PLC / FEC recovery of a lost frame, and
//! the jitter buffer's cost per packet (insert one packet and pull one 20 ms frame,
//! decode included; and the same with every 10th packet lost, so FEC runs).
//!
//! Run: `cargo bench -p ringwire-benches --bench media`.

// criterion_group! defines an undocumented `pub fn benches`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use ringwire_media::analysis::tone;
use ringwire_media::codec::{FRAME_SAMPLES, MAX_PACKET_SIZE, SAMPLE_RATE};
use ringwire_media::{
    AudioPacket, Channels, Decoder, Encoder, JitterBuffer, JitterConfig, OpusConfig,
};

/// One second of a 440 Hz tone over a 220 Hz one, as 50 frames: a voiced signal, so the
/// encoder does real work (silence would hit DTX).
fn frames() -> Vec<Vec<i16>> {
    (0..50)
        .map(|i| {
            let start = (i * FRAME_SAMPLES) as u64;
            let mut a = vec![0i16; FRAME_SAMPLES];
            let mut b = vec![0i16; FRAME_SAMPLES];
            tone(440.0, 6000.0, SAMPLE_RATE, start, &mut a);
            tone(220.0, 4000.0, SAMPLE_RATE, start, &mut b);
            a.iter()
                .zip(&b)
                .map(|(x, y)| x.saturating_add(*y))
                .collect()
        })
        .collect()
}

fn packets(frames: &[Vec<i16>]) -> Vec<Vec<u8>> {
    let mut enc = Encoder::new(OpusConfig::default()).expect("default config is valid");
    frames
        .iter()
        .map(|f| enc.encode_to_vec(f).expect("one frame encodes"))
        .collect()
}

fn opus(c: &mut Criterion) {
    let frames = frames();
    let packets = packets(&frames);
    let mut group = c.benchmark_group("opus");

    let mut enc = Encoder::new(OpusConfig::default()).expect("default config is valid");
    let mut out = [0u8; MAX_PACKET_SIZE];
    let mut i = 0;
    group.bench_function("encode_20ms", |b| {
        b.iter(|| {
            i = (i + 1) % frames.len();
            black_box(enc.encode(&frames[i], &mut out).expect("encodes"))
        });
    });

    let mut dec = Decoder::new(Channels::Mono).expect("decoder");
    let mut pcm = vec![0i16; FRAME_SAMPLES];
    let mut j = 0;
    group.bench_function("decode_20ms", |b| {
        b.iter(|| {
            j = (j + 1) % packets.len();
            black_box(dec.decode(&packets[j], &mut pcm).expect("decodes"))
        });
    });

    group.bench_function("conceal_20ms", |b| {
        b.iter(|| black_box(dec.conceal(&mut pcm).expect("conceals")));
    });

    let mut k = 0;
    group.bench_function("decode_fec_20ms", |b| {
        b.iter(|| {
            k = (k + 1) % packets.len();
            black_box(dec.decode_fec(&packets[k], &mut pcm).expect("fec decodes"))
        });
    });
    group.finish();
}

fn jitter(c: &mut Criterion) {
    let packets = packets(&frames());
    let mut group = c.benchmark_group("jitter");
    for (name, lose_every) in [
        ("packet_insert_pull", 0u64),
        ("packet_insert_pull_10pct_loss", 10),
    ] {
        let mut jb = JitterBuffer::new(JitterConfig::default()).expect("decoder");
        let t0 = Instant::now();
        let mut i = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                // One packet every 20 ms on a clean path; one pull every 20 ms.
                let now = t0 + Duration::from_millis(20 * i);
                if lose_every == 0 || i % lose_every != 5 {
                    let payload = packets[(i % packets.len() as u64) as usize].clone();
                    jb.handle_packet(
                        AudioPacket {
                            seq: i as u16,
                            timestamp: (i * 960) as u32,
                            payload,
                            marker: false,
                        },
                        now,
                    );
                }
                let frame = jb.poll_frame(now);
                i += 1;
                black_box(frame)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, opus, jitter);
criterion_main!(benches);
