//! What the server's media plane costs one core: a whole 20 ms tick of one call of 2,
//! 50, 350 and 1000 participants with K = 3 speakers, and the per-packet cost of 1:1
//! forwarding. Real str0m (ICE, DTLS-SRTP) and real opus, in process, on a virtual
//! clock: `ringwire_benches::plane` builds one `MediaServer` and N `CallMedia` clients
//! and connects them once per size, outside the measurement (seconds for 1000).
//!
//! `media_plane_tick/N` times exactly `MediaWorld::server_tick`:
//! - the server receives the 3 speakers' SRTP packets (2 in a room of 2) and the
//!   control datagrams (STUN consent checks, RTCP) all clients sent during the last
//!   20 ms: SRTP/SRTCP unprotect, str0m parsing, RFC 6464 level, mixing queue;
//! - the virtual clock moves 20 ms and `handle_timeout` runs str0m's timers of every
//!   participant (its RTCP, STUN) and the mixer tick: 3 opus decodes, 4 encodes (one
//!   shared mix, 3 mix-minus), dominant speaker detection;
//! - every transmit is drained: one RTP packet per listener (N when mixing), each
//!   packetized and SRTP-protected by that listener's str0m `Rtc`.
//!
//! Not timed: the clients (encoding the speakers' frames, receiving what the server
//! sent, their timers; the monitor client's playout) and the kernel's `send_to` per
//! datagram. Non-speakers send nothing (muted, or DTX silence less its one packet per
//! 400 ms). Every tick is checked outside the timing: the server must write audio to
//! every listener, and after each size a listener must hear all three tones.
//!
//! `media_plane_forward/1to1_packet` times the server receiving one SRTP audio packet
//! in a room of two and forwarding it: `handle_receive` (unprotect, parse, write to the
//! other side's `Rtc`), then `handle_timeout` at the same instant, which is when str0m
//! packetizes, protects and sends what was written, and the drain. Timers that fall
//! due as the clock moves are not in it (they are in `media_plane_tick/2`).
//!
//! Each bench prints to stderr its mean wall time and the mean CPU time of the thread
//! over the same timed sections (robust to a busy machine, where wall time includes
//! waiting for a core), each as a share of one core (time / 20 ms for a tick). Run: `cargo bench -p ringwire-benches --bench media_plane` (add `-- --quick`
//! for a short run).

// criterion_group! defines an undocumented `pub fn benches`.
#![allow(missing_docs)]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};
use ringwire_benches::cpu::{read_overhead, thread_cpu_time};
use ringwire_benches::plane::MediaWorld;
use ringwire_media::codec::FRAME_DURATION;

const SIZES: [usize; 4] = [2, 50, 350, 1000];
/// Speakers mixed (the mixer's K).
const SPEAKERS: usize = 3;

fn tick(c: &mut Criterion) {
    let mut group = c.benchmark_group("media_plane_tick");
    for n in SIZES {
        if n >= 350 {
            group.sample_size(10).sampling_mode(SamplingMode::Flat);
        } else {
            group.sample_size(30).sampling_mode(SamplingMode::Auto);
        }
        // Built on the first call, so a filtered-out size costs nothing.
        let mut world: Option<MediaWorld> = None;
        let (mut timed, mut cpu, mut ticks) = (Duration::ZERO, Duration::ZERO, 0u64);
        let mut before = None;
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            let world = world.get_or_insert_with(|| connect(n, SPEAKERS.min(n)));
            before.get_or_insert_with(|| world.server().stats());
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    world.speak();
                    let cpu_start = thread_cpu_time();
                    let start = Instant::now();
                    world.server_tick();
                    spent += start.elapsed();
                    cpu += cpu_used(cpu_start);
                    world.deliver();
                }
                timed += spent;
                ticks += iters;
                spent
            });
        });
        let (Some(mut world), Some(before)) = (world, before) else {
            continue;
        };
        let after = world.server().stats();
        // Untimed ticks after the measurement, so a short run is checked over enough.
        for _ in 0..50 {
            world.tick();
        }
        world.assert_healthy();
        let per = |count: u64| count as f64 / ticks.max(1) as f64;
        let per_tick = timed.as_secs_f64() / ticks.max(1) as f64;
        let cpu_per_tick = cpu.as_secs_f64() / ticks.max(1) as f64;
        let frame = FRAME_DURATION.as_secs_f64();
        eprintln!(
            "media_plane_tick/{n}: mean {:.1} µs wall ({:.2} % of one core), {:.1} µs thread CPU ({:.2} %) \
             per 20 ms tick over {ticks} ticks; per tick {:.1} datagrams in, {:.1} out, {:.1} audio packets written",
            per_tick * 1e6,
            100.0 * per_tick / frame,
            cpu_per_tick * 1e6,
            100.0 * cpu_per_tick / frame,
            per(after.datagrams_in - before.datagrams_in),
            per(after.datagrams_out - before.datagrams_out),
            per(after.audio_out - before.audio_out),
        );
    }
    group.finish();
}

fn forward(c: &mut Criterion) {
    let mut group = c.benchmark_group("media_plane_forward");
    // One talker: each tick carries exactly one media packet to time.
    let mut world: Option<MediaWorld> = None;
    let (mut timed, mut cpu, mut packets) = (Duration::ZERO, Duration::ZERO, 0u64);
    group.bench_function("1to1_packet", |b| {
        let world = world.get_or_insert_with(|| connect(2, 1));
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                // The control datagrams of the last tick, untimed.
                world.receive_pending();
                world.speak();
                let count = u32::try_from(world.inbox_len().max(1)).unwrap_or(1);
                let cpu_start = thread_cpu_time();
                let start = Instant::now();
                world.receive();
                world.flush();
                let took = start.elapsed();
                // Per packet, should str0m have queued something with it.
                spent += took / count;
                cpu += cpu_used(cpu_start) / count;
                world.advance();
                world.deliver();
            }
            timed += spent;
            packets += iters;
            spent
        });
    });
    group.finish();
    let Some(mut world) = world else {
        return;
    };
    for _ in 0..50 {
        world.tick();
    }
    world.assert_healthy();
    let per_packet = timed.as_secs_f64() / packets.max(1) as f64;
    let cpu_per_packet = cpu.as_secs_f64() / packets.max(1) as f64;
    eprintln!(
        "media_plane_forward/1to1_packet: mean {:.2} µs wall, {:.2} µs thread CPU per forwarded packet \
         over {packets} packets (wall: {:.3} % of one core per 50 packet/s stream)",
        per_packet * 1e6,
        cpu_per_packet * 1e6,
        100.0 * per_packet * 50.0,
    );
}

/// Thread CPU time used since `start`, less what reading the clock costs (zero where
/// the clock is missing).
fn cpu_used(start: Option<Duration>) -> Duration {
    static OVERHEAD: OnceLock<Duration> = OnceLock::new();
    let end = thread_cpu_time();
    let overhead = *OVERHEAD.get_or_init(|| {
        let o = read_overhead();
        eprintln!(
            "thread CPU clock: {:.2} µs per read pair, subtracted",
            o.as_secs_f64() * 1e6
        );
        o
    });
    match (start, end) {
        (Some(a), Some(b)) => b.saturating_sub(a).saturating_sub(overhead),
        _ => Duration::ZERO,
    }
}

/// A connected world, saying how long the handshakes took.
fn connect(n: usize, speakers: usize) -> MediaWorld {
    let setup = Instant::now();
    let world = MediaWorld::connect(n, speakers);
    eprintln!(
        "{n} participants connected in {:.1} s",
        setup.elapsed().as_secs_f64()
    );
    world
}

criterion_group!(benches, tick, forward);
criterion_main!(benches);
