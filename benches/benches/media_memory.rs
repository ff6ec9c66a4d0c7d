//! Server memory per audio-only participant: the heap a `MediaServer` holds with N
//! connected participants (N = 2, 50, 350, 1000; K = 3 speakers), divided by N.
//!
//! Each size is the in-process world of `ringwire_benches::plane`: connected, then run
//! for 10 s of virtual time (500 ticks) so every str0m `Rtc` has its steady-state
//! buffers (RTCP history, send queues, stats) and the mixer its encoders. The process's
//! live heap is printed at 1 s, 5 s and 10 s of audio to show it has levelled off.
//! Then the server is taken out of the world and dropped: what the heap loses is what
//! the server held (the clients stay alive meanwhile, so none of theirs is counted).
//!
//! Two counts of the same drop:
//! - `rust`: bytes requested through Rust's global allocator (a counting wrapper of
//!   `System`, installed here): exact, but blind to C code's own `malloc` (libopus
//!   encoder and decoder states, aws-lc crypto contexts);
//! - `heap`: glibc's `mallinfo` in-use bytes (Linux with glibc only): everything on the
//!   heap, C included, with malloc's per-block overhead. This is the figure to compare
//!   with the target (< 256 KiB per participant).
//!
//! Also printed: the marginal cost, (heap(350) - heap(50)) / 300, which leaves out
//! what a room costs once (the mixer's encoders, speaker detection).
//!
//! Run: `cargo bench -p ringwire-benches --bench media_memory` (`-- --quick` runs 2 s of
//! audio instead of 10, `-- --secs 60` 60 s; a filter argument selects sizes, e.g.
//! `-- media_memory/350`).

// The counting allocator implements `GlobalAlloc` and glibc's `mallinfo` is called
// through FFI: both need `unsafe`, each use says why it is sound.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use ringwire_benches::plane::MediaWorld;

const SIZES: [usize; 4] = [2, 50, 350, 1000];
const SPEAKERS: usize = 3;
/// The target of issue 4, per participant.
const TARGET: usize = 256 * 1024;

/// Live bytes and blocks requested through the global allocator.
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static LIVE_BLOCKS: AtomicIsize = AtomicIsize::new(0);

/// `System`, counting what is live.
struct Counting;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so
// `System`'s guarantees hold; the counters are only updated after a successful call.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize, 1);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `alloc_zeroed`'s contract.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as isize, 1);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is; `ptr` came from this allocator with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize), -1);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `realloc`'s contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as isize - layout.size() as isize, 0);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn count(bytes: isize, blocks: isize) {
    LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed);
    LIVE_BLOCKS.fetch_add(blocks, Ordering::Relaxed);
}

/// What is live on the heap now.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    rust_bytes: isize,
    rust_blocks: isize,
    /// glibc's in-use bytes, where known.
    heap_bytes: Option<isize>,
}

impl Snapshot {
    fn now() -> Self {
        Self {
            rust_bytes: LIVE_BYTES.load(Ordering::Relaxed),
            rust_blocks: LIVE_BLOCKS.load(Ordering::Relaxed),
            heap_bytes: heap_in_use(),
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn heap_in_use() -> Option<isize> {
    /// `struct mallinfo` of glibc (`int` fields; `mallinfo2` with `size_t` fields
    /// needs glibc 2.33, `mallinfo` is everywhere and the figures stay below 2 GiB).
    #[repr(C)]
    struct Mallinfo {
        arena: i32,
        ordblks: i32,
        smblks: i32,
        hblks: i32,
        hblkhd: i32,
        usmblks: i32,
        fsmblks: i32,
        uordblks: i32,
        fordblks: i32,
        keepcost: i32,
    }
    unsafe extern "C" {
        fn mallinfo() -> Mallinfo;
    }
    // SAFETY: `mallinfo` takes nothing and returns a plain struct by value; it only
    // reads the allocator's statistics (of the main arena: this bench allocates on
    // its one thread, so that is all of them).
    let info = unsafe { mallinfo() };
    // In use: small blocks handed out plus blocks served by mmap.
    Some(info.uordblks as u32 as isize + info.hblkhd as u32 as isize)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn heap_in_use() -> Option<isize> {
    None
}

fn kib(bytes: isize) -> f64 {
    bytes as f64 / 1024.0
}

fn mib(bytes: isize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// What the server of an N-participant world holds, per count.
struct Held {
    rust_bytes: isize,
    rust_blocks: isize,
    heap_bytes: Option<isize>,
}

fn measure(n: usize, audio_ticks: u64) -> Held {
    let id = format!("media_memory/{n}");
    let mut world = MediaWorld::connect(n, SPEAKERS.min(n));
    let marks = [audio_ticks / 10, audio_ticks / 2, audio_ticks];
    for &mark in &marks {
        while world.ticks() < mark {
            world.tick();
        }
        let s = Snapshot::now();
        println!(
            "{id}: after {:>4.1} s of audio, process live: rust {:.2} MiB in {} blocks, heap {}",
            mark as f64 * 0.02,
            mib(s.rust_bytes),
            s.rust_blocks,
            s.heap_bytes
                .map_or_else(|| "n/a".to_owned(), |b| format!("{:.2} MiB", mib(b))),
        );
    }
    world.assert_healthy();
    let stats = world.server().stats();
    assert_eq!(stats.connected, n, "every participant is connected");
    let (server, clients) = world.into_parts();
    let before = Snapshot::now();
    drop(server);
    let after = Snapshot::now();
    drop(clients);
    let held = Held {
        rust_bytes: before.rust_bytes - after.rust_bytes,
        rust_blocks: before.rust_blocks - after.rust_blocks,
        heap_bytes: before.heap_bytes.zip(after.heap_bytes).map(|(b, a)| b - a),
    };
    let per = |bytes: isize| kib(bytes / n as isize);
    println!(
        "{id}: server holds rust {:.1} KiB in {} blocks = {:.1} KiB per participant",
        kib(held.rust_bytes),
        held.rust_blocks,
        per(held.rust_bytes),
    );
    if let Some(heap) = held.heap_bytes {
        println!(
            "{id}: server holds heap {:.1} KiB = {:.1} KiB per participant ({} the {} KiB target)",
            kib(heap),
            per(heap),
            if heap / (n as isize) < TARGET as isize {
                "under"
            } else {
                "OVER"
            },
            TARGET / 1024,
        );
    }
    held
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `--test` (the CI smoke, as criterion takes it): prove it runs, on small rooms.
    let smoke = args.iter().any(|a| a == "--test");
    // Filters: arguments that are neither flags nor the value of --secs.
    let filters: Vec<&String> = args
        .iter()
        .enumerate()
        .filter(|&(i, a)| !a.starts_with('-') && (i == 0 || args[i - 1] != "--secs"))
        .map(|(_, a)| a)
        .collect();
    let selected = |n: usize| {
        let id = format!("media_memory/{n}");
        filters.is_empty() || filters.iter().any(|f| id.contains(f.as_str()))
    };
    if args.iter().any(|a| a == "--list") {
        for n in SIZES.into_iter().filter(|&n| selected(n)) {
            println!("media_memory/{n}: bench");
        }
        return;
    }
    let secs: Option<u64> = args
        .iter()
        .position(|a| a == "--secs")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok());
    let audio_ticks = match secs {
        // Enough ticks for the health check (at least 50 after the mark).
        _ if smoke => 60,
        Some(secs) => secs * 50,
        None if quick => 100,
        None => 500,
    };
    let mut heaps = Vec::new();
    for n in SIZES
        .into_iter()
        .filter(|&n| selected(n) && (!smoke || n <= 50))
    {
        let held = measure(n, audio_ticks);
        heaps.push((n, held.heap_bytes.unwrap_or(held.rust_bytes)));
    }
    let at = |n: usize| heaps.iter().find(|(m, _)| *m == n).map(|&(_, b)| b);
    if let (Some(small), Some(large)) = (at(50), at(350)) {
        println!(
            "media_memory: marginal cost per participant, (heap(350) - heap(50)) / 300 = {:.1} KiB",
            kib((large - small) / 300),
        );
    }
}
