//! Video: codecs per frame and the SFU's forwarding per packet.
//!
//! - `video_h264_encode/{360p,720p}`: [`H264Encoder::encode`] of one frame of the test
//!   pattern (its square moves every frame), in steady state: P frames only (the key
//!   frame and the encoder's warm-up are outside the measurement), at 800 kbps (360p)
//!   and 1.5 Mbps (720p), 30 fps. Drawing the pattern is not timed.
//! - `video_h264_decode/{360p,720p}`: [`H264Decoder::decode`] of one access unit of
//!   the same stream, pre-encoded: a group of 30 frames (1 key frame, 29 P frames)
//!   decoded in a loop, always from its key frame, so the figure is the mean over a
//!   group (a key frame costs a few P frames).
//! - `video_av1_decode/320x240`: [`Av1Decoder::decode`] of one temporal unit of dav1d's
//!   8-bit test vector (`crates/media/tests/data/test-420-8.ivf`: 5 temporal units at
//!   320x240 starting with a key frame, the only AV1 stream in the repository; there is
//!   no AV1 encoder here to make a 360p or 720p one), in a loop from the key frame.
//! - `video_sfu_forward/{ringwire,bare_str0m}/N`: one publisher sends 360p H.264 (800
//!   kbps, 30 fps; the test pattern is mostly still, so its P frames fit one RTP packet
//!   each) to N subscribers (1 is a 1:1 call, 2 a 3-party call), in process with real
//!   str0m and DTLS-SRTP
//!   (`ringwire_benches::video_plane`). Timed: the server receiving one frame's SRTP
//!   packets (unprotect, depacketize), writing the frame to each subscriber's `Rtc`,
//!   and the drain at the same instant (str0m packetizes and protects for each
//!   subscriber), per publisher packet. `ringwire` is our `MediaServer`; `bare_str0m`
//!   the least forwarding code on the same str0m `Rtc`s: the difference is our own
//!   forwarding overhead. The stderr line per bench gives the figures per packet, per
//!   subscriber packet, per frame, in wall and thread CPU time.
//!   `ringwire_101_calls/2` is the 3-party call on a server that holds 100 more calls
//!   (one joined participant each, idle): what other calls add to one call's forwarding.
//! - `video_router_receivers/N`: the router's decision alone, per frame: who receives
//!   a stream among N subscribers ([`Router::receivers`], collected into a `Vec` as the
//!   server's forwarding does).
//!
//! Every forwarding world checks by content outside the timing: each subscriber gets
//! each frame byte for byte as sent, and the first one's frames decode to the
//! publisher's test pattern. Run: `cargo bench -p ringwire-benches --bench video`
//! (`-- --quick` for a short run, `-- --test` to run each once).

// criterion_group! defines an undocumented `pub fn benches`.
#![allow(missing_docs)]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ringwire_benches::cpu::{read_overhead, thread_cpu_time};
use ringwire_benches::video_plane::{BareSfu, Ringwire, Sfu, VideoWorld, encode_stream};
use ringwire_media::router::{Router, RouterConfig, StreamId, StreamKind, SubscriberKind};
use ringwire_media::video::{FrameRate, TestPatternSource, VideoFormat, VideoFrame};
use ringwire_media::video_codec::{Av1Decoder, H264Config, H264Decoder, H264Encoder};

/// The codec sizes: name, width, height, bitrate.
const SIZES: [(&str, u32, u32, u32); 2] =
    [("360p", 640, 360, 800_000), ("720p", 1280, 720, 1_500_000)];

/// Frames of a decoded group: 1 key frame, then P frames.
const GROUP: u64 = 30;

/// Subscribers of the forwarding benches.
const FAN_OUT: [usize; 4] = [1, 2, 10, 50];

/// dav1d's own 8-bit test vector (MIT, from the dav1d crate): 5 temporal units, 320x240.
const AV1_IVF: &[u8] = include_bytes!("../../crates/media/tests/data/test-420-8.ivf");

fn h264_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("video_h264_encode");
    group.sample_size(20);
    for (name, width, height, bitrate) in SIZES {
        group.bench_function(name, |b| {
            let format = VideoFormat::new(width, height, FrameRate::per_second(30).expect("30"))
                .expect("a valid size");
            let pattern = TestPatternSource::new(format).expect("a valid size");
            let mut config = H264Config::default();
            config.bitrate = bitrate;
            // Steady state: no periodic key frame inside the measurement.
            config.keyframe_interval = 1_000_000;
            let mut encoder = H264Encoder::new(config).expect("a valid config");
            let mut frame = VideoFrame::black(2, 2).expect("a valid size");
            let mut index = 0u64;
            // The key frame and the rate control's first second, untimed.
            for _ in 0..30 {
                pattern.draw(index, &mut frame).expect("the pattern's size");
                index += 1;
                let _ = encoder.encode(&frame).expect("an even-sided frame encodes");
            }
            let (mut keyframes, mut skipped) = (0u64, 0u64);
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    pattern.draw(index, &mut frame).expect("the pattern's size");
                    index += 1;
                    let start = Instant::now();
                    let unit = encoder.encode(&frame).expect("an even-sided frame encodes");
                    spent += start.elapsed();
                    match unit {
                        Some(u) => keyframes += u64::from(u.keyframe),
                        None => skipped += 1,
                    }
                }
                spent
            });
            assert_eq!(keyframes, 0, "key frames in steady state");
            if skipped > 0 {
                eprintln!("video_h264_encode/{name}: {skipped} frames skipped by rate control");
            }
        });
    }
    group.finish();
}

fn h264_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("video_h264_decode");
    for (name, width, height, bitrate) in SIZES {
        group.bench_function(name, |b| {
            let stream = encode_stream(width, height, bitrate, GROUP);
            let mut decoder = H264Decoder::new().expect("a decoder");
            let mut picture = VideoFrame::black(2, 2).expect("a valid size");
            let mut next = 0usize;
            let mut pictures = 0u64;
            b.iter(|| {
                let got = decoder
                    .decode(&stream[next], &mut picture)
                    .expect("the stream decodes");
                pictures += u64::from(got);
                next = (next + 1) % stream.len();
            });
            assert!(pictures > 0, "no picture decoded");
            assert_eq!((picture.width(), picture.height()), (width, height));
            assert!(TestPatternSource::frame_number(&picture).is_some());
        });
    }
    group.finish();
}

fn av1_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("video_av1_decode");
    let units = ivf_units(AV1_IVF);
    assert!(
        units.len() >= 2,
        "the test vector has {} units",
        units.len()
    );
    group.bench_function("320x240", |b| {
        let mut decoder = Av1Decoder::new().expect("a decoder");
        let mut picture = VideoFrame::black(2, 2).expect("a valid size");
        let mut next = 0usize;
        let mut pictures = 0u64;
        b.iter(|| {
            let got = decoder
                .decode(units[next], &mut picture)
                .expect("the test vector decodes");
            pictures += u64::from(got);
            next = (next + 1) % units.len();
        });
        assert!(pictures > 0, "no picture decoded");
        assert_eq!((picture.width(), picture.height()), (320, 240));
    });
    group.finish();
}

fn sfu_forward(c: &mut Criterion) {
    let mut group = c.benchmark_group("video_sfu_forward");
    for n in FAN_OUT {
        if n >= 10 {
            group.sample_size(20);
        }
        forward_one(&mut group, "ringwire", n, Ringwire::new);
        forward_one(&mut group, "bare_str0m", n, BareSfu::new);
    }
    // The same call of 1 + 2 on a server that holds 100 other (idle) calls.
    forward_one(&mut group, "ringwire_101_calls", 2, || {
        Ringwire::with_idle_rooms(100)
    });
    group.finish();
}

/// One forwarding bench: `n` subscribers in front of the server `make` builds.
fn forward_one<S: Sfu>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    n: usize,
    make: fn() -> S,
) {
    // Built on the first call, so a filtered-out bench costs nothing.
    let mut world: Option<VideoWorld<S>> = None;
    let (mut wall, mut cpu, mut frames, mut packets) = (Duration::ZERO, Duration::ZERO, 0u64, 0u64);
    group.bench_function(BenchmarkId::new(name, n), |b| {
        let world = world.get_or_insert_with(|| {
            let setup = Instant::now();
            let w = VideoWorld::connect(make(), n, 640, 360);
            eprintln!(
                "video_sfu_forward/{name}/{n}: 1 + {n} clients connected in {:.1} s",
                setup.elapsed().as_secs_f64()
            );
            w
        });
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let count = world.send().max(1);
                let cpu_start = thread_cpu_time();
                let start = Instant::now();
                world.forward();
                let took = start.elapsed();
                cpu += cpu_used(cpu_start);
                wall += took;
                frames += 1;
                packets += count as u64;
                // Per publisher packet.
                spent += took / u32::try_from(count).unwrap_or(u32::MAX);
                world.deliver();
            }
            spent
        });
    });
    let Some(mut world) = world else {
        return;
    };
    // Untimed frames after the measurement, so a short run is checked over enough.
    for _ in 0..20 {
        world.step();
    }
    world.assert_healthy();
    let per_packet = wall.as_secs_f64() / packets.max(1) as f64;
    let cpu_per_packet = cpu.as_secs_f64() / packets.max(1) as f64;
    let n_f = n as f64;
    eprintln!(
        "video_sfu_forward/{name}/{n}: mean {:.2} µs wall, {:.2} µs thread CPU per publisher packet; \
         {:.2} µs wall, {:.2} µs CPU per subscriber packet; {:.1} µs wall per frame; \
         {:.1} packets per frame over {frames} frames",
        per_packet * 1e6,
        cpu_per_packet * 1e6,
        per_packet * 1e6 / n_f,
        cpu_per_packet * 1e6 / n_f,
        wall.as_secs_f64() * 1e6 / frames.max(1) as f64,
        packets as f64 / frames.max(1) as f64,
    );
}

fn router_receivers(c: &mut Criterion) {
    let mut group = c.benchmark_group("video_router_receivers");
    for n in [1usize, 10, 50] {
        let now = Instant::now();
        let mut router: Router<u32> = Router::new(RouterConfig::default());
        let stream = StreamId {
            publisher: 0,
            kind: StreamKind::Camera,
        };
        for p in 0..=n as u32 {
            router.add_subscriber(p, SubscriberKind::Native, now);
        }
        // Five more publishers, so each subscriber's selection holds six streams.
        for p in 0..6 {
            router.publish(
                StreamId {
                    publisher: p,
                    kind: StreamKind::Camera,
                },
                Vec::new(),
                now,
            );
        }
        while router.poll_event().is_some() {}
        assert_eq!(
            router.receivers(&stream).count(),
            n,
            "every subscriber receives"
        );
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                let receivers: Vec<u32> = router
                    .receivers(std::hint::black_box(&stream))
                    .map(|(p, _)| *p)
                    .collect();
                receivers
            });
        });
    }
    group.finish();
}

/// Thread CPU time used since `start`, less what reading the clock costs (zero where
/// the clock is missing).
fn cpu_used(start: Option<Duration>) -> Duration {
    static OVERHEAD: OnceLock<Duration> = OnceLock::new();
    let end = thread_cpu_time();
    let overhead = *OVERHEAD.get_or_init(read_overhead);
    match (start, end) {
        (Some(a), Some(b)) => b.saturating_sub(a).saturating_sub(overhead),
        _ => Duration::ZERO,
    }
}

/// The frames of an IVF file: a 32-byte file header, then per frame a 12-byte header
/// whose first 4 bytes are the little-endian size. Stops at the first short frame.
fn ivf_units(file: &[u8]) -> Vec<&[u8]> {
    let mut units = Vec::new();
    let Some((_, mut rest)) = file.split_at_checked(32) else {
        return units;
    };
    while let Some((header, body)) = rest.split_at_checked(12) {
        let Some(&size) = header.first_chunk::<4>() else {
            break;
        };
        let Ok(len) = usize::try_from(u32::from_le_bytes(size)) else {
            break;
        };
        let Some((unit, next)) = body.split_at_checked(len) else {
            break;
        };
        units.push(unit);
        rest = next;
    }
    units
}

criterion_group!(
    benches,
    h264_encode,
    h264_decode,
    av1_decode,
    sfu_forward,
    router_receivers
);
criterion_main!(benches);
