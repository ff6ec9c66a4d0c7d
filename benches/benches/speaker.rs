//! Costs of dominant speaker detection in a 350-person room: one level update (what
//! every received audio packet costs) and one decision tick (every 300 ms).
//!
//! Run: `cargo bench -p ringwire-benches --bench speaker`.

// criterion_group! defines an undocumented `pub fn benches`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringwire_media::{DominantSpeaker, SpeakerConfig, SpeakerEvent};

const PARTICIPANTS: u32 = 350;
const FRAME: Duration = Duration::from_millis(20);

/// A room where 3 people talk (levels 20-30) and the rest send background noise.
fn level(p: u32, frame: u32) -> u8 {
    if p < 3 {
        20 + ((frame + p) % 10) as u8
    } else {
        80 + (p % 7) as u8
    }
}

/// A room warmed up with one second of levels from everybody.
fn room() -> (DominantSpeaker<u32>, Instant, u32) {
    let mut dsi = DominantSpeaker::new(SpeakerConfig::default());
    let mut now = Instant::now();
    let mut frame = 0;
    for _ in 0..50 {
        for p in 0..PARTICIPANTS {
            dsi.handle_level(p, level(p, frame), now);
        }
        now += FRAME;
        frame += 1;
        dsi.handle_timeout(now);
        while dsi.poll_event().is_some() {}
    }
    (dsi, now, frame)
}

fn speaker(c: &mut Criterion) {
    let mut group = c.benchmark_group("speaker");
    group.throughput(Throughput::Elements(1));
    group.bench_function("level_update_350", |b| {
        let (mut dsi, mut now, mut frame) = room();
        let mut p = 0;
        b.iter(|| {
            dsi.handle_level(black_box(p), black_box(level(p, frame)), now);
            p += 1;
            if p == PARTICIPANTS {
                p = 0;
                frame += 1;
                now += FRAME;
            }
        });
    });
    group.bench_function("decision_tick_350", |b| {
        let (mut dsi, mut now, _) = room();
        b.iter(|| {
            // Every tick is due: the decision runs over all 350 participants.
            now += Duration::from_millis(300);
            dsi.handle_timeout(black_box(now));
            while let Some(SpeakerEvent::Changed(list)) = dsi.poll_event() {
                black_box(list);
            }
        });
    });
    group.finish();
}

criterion_group!(benches, speaker);
criterion_main!(benches);
