//! Cost of transcoding one phone leg, per 20 ms frame, as the gateway drives
//! `PhoneMedia`:
//!
//! - `trunk_to_call`: one PCMU RTP packet in (parse, G.711 decode, narrowband opus
//!   encode of the frame the call hears, with the phone legs' settings);
//! - `call_to_trunk`: one opus packet of the call's mix out (opus decode straight to
//!   8 kHz, G.711 encode, RTP packet).
//!
//! Both together are one phone participant's media cost on the server; 20 ms divided by
//! their sum is how many phone legs one core transcodes.
//!
//! Run: `cargo bench -p ringwire-benches --bench pstn`.

// criterion_group! defines an undocumented `pub fn benches`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use ringwire_media::analysis::tone;
use ringwire_media::codec::{Encoder, OpusConfig};
use ringwire_pstn::g711::G711;
use ringwire_pstn::media::{PhoneMedia, PhoneMediaConfig, RemoteMedia};
use ringwire_pstn::rtp::RtpHeader;

/// Samples in 20 ms at 8 kHz and 48 kHz.
const FRAME_8K: usize = 160;
const FRAME_48K: usize = 960;

fn leg() -> (PhoneMedia, RemoteMedia) {
    let remote = RemoteMedia {
        address: SocketAddr::from(([127, 0, 0, 1], 40_000)),
        codec: G711::Pcmu,
        dtmf_payload_type: Some(101),
    };
    let mut media = PhoneMedia::new(PhoneMediaConfig {
        local: SocketAddr::from(([127, 0, 0, 1], 20_000)),
        media_timeout: Duration::from_secs(20),
        ssrc: 1,
    })
    .expect("a phone leg");
    media.set_remote(remote, Instant::now());
    (media, remote)
}

fn pstn_transcode(c: &mut Criterion) {
    let mut group = c.benchmark_group("pstn_transcode");
    group.bench_function("trunk_to_call_20ms", |b| {
        let (mut media, remote) = leg();
        let mut now = Instant::now();
        let mut pcm = vec![0i16; FRAME_8K];
        let mut packet = Vec::with_capacity(12 + FRAME_8K);
        let mut i = 0u32;
        b.iter(|| {
            tone(
                1000.0,
                8000.0,
                8000,
                u64::from(i) * FRAME_8K as u64,
                &mut pcm,
            );
            packet.clear();
            RtpHeader {
                marker: false,
                payload_type: 0,
                sequence: i as u16,
                timestamp: i.wrapping_mul(FRAME_8K as u32),
                ssrc: 9,
            }
            .write(&mut packet);
            G711::Pcmu.encode(&pcm, &mut packet);
            i = i.wrapping_add(1);
            now += Duration::from_millis(20);
            let taken = media.handle_receive(now, remote.address, &packet);
            assert!(
                matches!(taken, Ok(true)),
                "the packet was refused: {taken:?}"
            );
            let mut frames = 0;
            while let Some(frame) = media.poll_audio() {
                black_box(frame);
                frames += 1;
            }
            assert_eq!(frames, 1, "one packet of 20 ms makes one opus frame");
        });
    });
    group.bench_function("call_to_trunk_20ms", |b| {
        let (mut media, _) = leg();
        let now = Instant::now();
        let mut encoder = Encoder::new(OpusConfig::default()).expect("default opus settings");
        let mut pcm = vec![0i16; FRAME_48K];
        tone(1000.0, 8000.0, 48_000, 0, &mut pcm);
        let opus = encoder.encode_to_vec(&pcm).expect("a 20 ms frame encodes");
        b.iter(|| {
            media.handle_call_audio(&opus, now);
            let mut sent = 0;
            while let Some(transmit) = media.poll_transmit() {
                black_box(transmit);
                sent += 1;
            }
            assert_eq!(sent, 1, "one G.711 packet per 20 ms frame");
        });
    });
    group.finish();
}

criterion_group!(benches, pstn_transcode);
criterion_main!(benches);
