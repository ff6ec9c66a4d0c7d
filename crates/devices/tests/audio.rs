//! Sound on a real stack: each test starts its own PulseAudio daemon with null sinks
//! and runs its checks in a child process pointed at it (see `ringwire_devices::testing`).
//! Audio is judged by content (Goertzel), never by "some bytes arrived"; loops are
//! paced by the device clocks and bounded by an iteration budget, not timed.

#![allow(clippy::unwrap_used)] // Helpers outside #[test] fns unwrap too.

use std::process::Command;
use std::time::Duration;

use ringwire_devices::testing::{self, NullSink, PulseServer};
use ringwire_devices::{
    AudioBackend, DeviceEvent, DeviceId, DeviceKind, DeviceManager, DeviceManagerConfig,
    Microphone, Selection, Speaker, StreamOptions,
};
use ringwire_media::analysis::goertzel_power;
use ringwire_media::audio_io::{AudioSink, AudioSource, MemorySink, ToneSource};
use ringwire_media::codec::FRAME_SAMPLES;

const A: NullSink<'static> = NullSink {
    name: "ring_a",
    rate: 48_000,
};
const B: NullSink<'static> = NullSink {
    name: "ring_b",
    rate: 48_000,
};

/// Starts PulseAudio with `sinks` (and ALSA PCMs for `later` sinks the child loads)
/// and runs the child test `name` against it.
fn under_pulse(name: &str, sinks: &[NullSink<'_>], later: &[&str]) {
    let server = PulseServer::start(sinks).expect("pulseaudio starts");
    for sink in later {
        server.add_alsa_pcm(sink).expect("asoundrc written");
    }
    if let Err(error) = testing::run_child_test(name, &server.env()) {
        panic!("{error}\n--- pulseaudio log ---\n{}", server.log());
    }
}

fn manager(options: StreamOptions) -> DeviceManager {
    let options = StreamOptions {
        max_latency: Duration::from_millis(200),
        ..options
    };
    let config = DeviceManagerConfig::default()
        .with_audio_backend(AudioBackend::PulseAudio)
        .with_poll_interval(Duration::from_millis(200))
        .with_stream_options(options);
    DeviceManager::new(config).expect("device manager starts")
}

fn id(text: &str) -> DeviceId {
    DeviceId::new(text)
}

/// How far ahead of its device the rig keeps the speaker: enough that a test process
/// starved of CPU for a while (an unoptimized build on a loaded 2-core machine) does
/// not underrun.
const LEAD: Duration = Duration::from_millis(100);

/// A tone counts as present at this SNR (ten times the power of everything else), as
/// `ringwire_media::audio_io::TONE_PRESENT_SNR_DB` has it.
const PRESENT_DB: f64 = 10.0;

/// Moves audio: keeps the speaker fed ([`LEAD`] ahead of its device) from a
/// source, and drains every microphone into its recording. One call is one step of
/// about 2 ms.
struct Rig {
    speaker: Speaker,
    mics: Vec<(Microphone, Vec<i16>)>,
    frame: Vec<i16>,
    written: usize,
}

/// Iteration budget of a rig loop: about 20 s of 2 ms steps, far above what any step
/// needs, only so that a broken stack fails instead of hanging.
const BUDGET: usize = 10_000;

impl Rig {
    fn new(speaker: Speaker, mics: Vec<Microphone>) -> Self {
        Self {
            speaker,
            mics: mics.into_iter().map(|m| (m, Vec::new())).collect(),
            frame: vec![0; FRAME_SAMPLES],
            written: 0,
        }
    }

    fn step(&mut self, source: &mut dyn AudioSource) {
        while self.speaker.buffered() < LEAD {
            source.read_frame(&mut self.frame).expect("source reads");
            self.speaker
                .write_frame(&self.frame)
                .expect("speaker takes frames");
            self.written += 1;
        }
        for (mic, recording) in &mut self.mics {
            while mic.available() >= FRAME_SAMPLES {
                mic.read_frame(&mut self.frame).expect("microphone reads");
                recording.extend_from_slice(&self.frame);
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }

    /// Steps until every microphone has delivered audio (a null sink's monitor starts
    /// after 1-2 s), then forgets what was recorded.
    fn preroll(&mut self) {
        let mut silence = ringwire_media::audio_io::SilenceSource;
        for _ in 0..BUDGET {
            self.step(&mut silence);
            if self.mics.iter().all(|(_, r)| r.len() >= 10 * FRAME_SAMPLES) {
                for (_, recording) in &mut self.mics {
                    recording.clear();
                }
                return;
            }
        }
        panic!("microphones delivered nothing");
    }

    /// Steps with `source` until microphone `mic` has recorded `samples` more.
    fn record(&mut self, source: &mut dyn AudioSource, mic: usize, samples: usize) {
        let target = self.mics[mic].1.len() + samples;
        for _ in 0..BUDGET {
            self.step(source);
            if self.mics[mic].1.len() >= target {
                return;
            }
        }
        panic!("microphone {mic} stopped delivering");
    }
}

/// The SNR of a `freq` Hz tone over the last `seconds` of `recording`, measured in
/// windows of whole periods (robust to the phase jump a device switch or an underrun
/// makes).
fn tone_snr(recording: &[i16], freq: f64, seconds: f64) -> f64 {
    let (mut sink, tap) = MemorySink::new();
    sink.write_frame(recording).expect("memory sink takes it");
    tap.tone_snr(freq, Duration::from_secs_f64(seconds))
}

fn tone(freq: f64) -> ToneSource {
    ToneSource::new(freq, 0.3).expect("valid tone")
}

/// 10 ms windows (from the end of `recording`) in which a 440 Hz tone of amplitude
/// 0.3 is present (its Goertzel power at least a quarter of the full tone's).
fn tone_windows(recording: &[i16], freq: f64) -> Vec<bool> {
    let window = 480;
    let full = (0.3 * 32767.0f64).powi(2) / 2.0 * (window as f64).powi(2) / 4.0;
    let start = recording.len() % window;
    recording[start..]
        .chunks_exact(window)
        .map(|w| goertzel_power(w, freq, 48_000) * (window as f64).powi(2) / 4.0 >= full / 4.0)
        .collect()
}

#[test]
fn lists_pulseaudio_devices() {
    under_pulse("lists_pulseaudio_devices_child", &[A, B], &[]);
}

#[test]
#[ignore = "runs inside lists_pulseaudio_devices"]
fn lists_pulseaudio_devices_child() {
    if !testing::is_child() {
        return;
    }
    let devices = manager(StreamOptions::default());
    assert_eq!(devices.audio_host().as_deref(), Some("pulseaudio"));
    let speakers = devices.list(DeviceKind::Speaker).unwrap();
    let mics = devices.list(DeviceKind::Microphone).unwrap();
    let ids = |list: &[ringwire_devices::DeviceInfo]| -> Vec<String> {
        list.iter().map(|d| d.id.to_string()).collect()
    };
    assert_eq!(ids(&speakers), ["pulseaudio:ring_a", "pulseaudio:ring_b"]);
    assert_eq!(
        ids(&mics),
        ["pulseaudio:ring_a.monitor", "pulseaudio:ring_b.monitor"]
    );
    assert!(speakers[0].is_default && !speakers[1].is_default);
    assert!(mics[0].is_default);
    assert_eq!(speakers[1].name, "ring_b");
    assert!(
        speakers
            .iter()
            .all(|d| !d.synthetic && !d.formats.is_empty())
    );
    // Synthetic devices only when asked for.
    assert!(devices.devices().iter().all(|d| !d.synthetic));
    let with_synthetic = DeviceManager::new(
        DeviceManagerConfig::default()
            .with_audio_backend(AudioBackend::PulseAudio)
            .with_synthetic(true),
    )
    .unwrap();
    let mics = with_synthetic.list(DeviceKind::Microphone).unwrap();
    assert!(
        mics.iter()
            .any(|d| d.id == id("synthetic:tone-440") && d.synthetic)
    );
    assert!(mics.iter().any(|d| d.id == id("pulseaudio:ring_a.monitor")));
    // Typed errors.
    assert!(matches!(
        devices.open_speaker(&Selection::Device(id("pulseaudio:nope"))),
        Err(ringwire_devices::DeviceError::NotFound { .. })
    ));
}

#[test]
fn tone_round_trip_through_null_sink() {
    under_pulse(
        "tone_round_trip_through_null_sink_child",
        &[
            A,
            NullSink {
                name: "ring_c",
                rate: 44_100,
            },
        ],
        &[],
    );
}

#[test]
#[ignore = "runs inside tone_round_trip_through_null_sink"]
fn tone_round_trip_through_null_sink_child() {
    if !testing::is_child() {
        return;
    }
    // At 48 kHz, then with both devices opened at 44.1 kHz, so that both directions
    // go through our resampler (the sound server converts to the sink's rate).
    for (sink, device_rate) in [("ring_a", None), ("ring_c", Some(44_100))] {
        let devices = manager(StreamOptions {
            device_rate,
            ..StreamOptions::default()
        });
        let speaker = devices
            .open_speaker(&Selection::Device(id(&format!("pulseaudio:{sink}"))))
            .unwrap();
        let mic = devices
            .open_microphone(&Selection::Device(id(&format!(
                "pulseaudio:{sink}.monitor"
            ))))
            .unwrap();
        let rate = device_rate.unwrap_or(48_000);
        assert_eq!(
            (speaker.device_rate(), mic.device_rate()),
            (Some(rate), Some(rate))
        );
        let mut rig = Rig::new(speaker, vec![mic]);
        rig.preroll();
        rig.record(&mut tone(440.0), 0, 48_000);
        let recording = &rig.mics[0].1;
        let last = &recording[recording.len() - 24_000..];
        let snr = tone_snr(last, 440.0, 0.5);
        let rms = ringwire_media::analysis::mean_square(last).sqrt();
        assert!(
            snr > PRESENT_DB,
            "{sink}: 440 Hz at {snr:.1} dB, rms {rms:.0}, written {}, speaker {:?}, mic {:?}",
            rig.written,
            rig.speaker.stats(),
            rig.mics[0].0.stats()
        );
        assert!(tone_snr(last, 1000.0, 0.5) < 0.0, "{sink}: 1000 Hz present");
        let stats = rig.mics[0].0.stats();
        assert!(stats.callbacks > 0, "{stats:?}");
    }
}

#[test]
fn switching_speaker_mid_stream_moves_the_sound_without_a_gap() {
    under_pulse(
        "switching_speaker_mid_stream_moves_the_sound_without_a_gap_child",
        &[A, B],
        &[],
    );
}

#[test]
#[ignore = "runs inside switching_speaker_mid_stream_moves_the_sound_without_a_gap"]
fn switching_speaker_mid_stream_moves_the_sound_without_a_gap_child() {
    if !testing::is_child() {
        return;
    }
    let devices = manager(StreamOptions::default());
    let speaker = devices
        .open_speaker(&Selection::Device(id("pulseaudio:ring_a")))
        .unwrap();
    let mic_a = devices
        .open_microphone(&Selection::Device(id("pulseaudio:ring_a.monitor")))
        .unwrap();
    let mic_b = devices
        .open_microphone(&Selection::Device(id("pulseaudio:ring_b.monitor")))
        .unwrap();
    let mut rig = Rig::new(speaker, vec![mic_a, mic_b]);
    rig.preroll();
    let mut source = tone(440.0);
    rig.record(&mut source, 0, 24_000);
    rig.speaker
        .select(&Selection::Device(id("pulseaudio:ring_b")))
        .unwrap();
    assert_eq!(rig.speaker.device(), id("pulseaudio:ring_b"));
    rig.record(&mut source, 1, 24_000);
    // Both recordings end now, so they line up from their ends (to within the two
    // capture streams' buffering, about 10 ms). The handover gap is the silence
    // between the last 10 ms window in which A heard the tone and the first in which
    // B did.
    let a = tone_windows(&rig.mics[0].1, 440.0);
    let b = tone_windows(&rig.mics[1].1, 440.0);
    let n = a.len().min(b.len());
    let (a, b) = (&a[a.len() - n..], &b[b.len() - n..]);
    let timeline =
        |v: &[bool]| -> String { v.iter().map(|&x| if x { '#' } else { '.' }).collect() };
    let shown = format!("\nA {}\nB {}", timeline(a), timeline(b));
    let a_last = a.iter().rposition(|&x| x).expect("A heard the tone");
    let b_first = b.iter().position(|&x| x).expect("B heard the tone");
    let gap = Duration::from_millis(10 * b_first.saturating_sub(a_last + 1) as u64);
    eprintln!("handover gap {gap:?}{shown}");
    assert!(gap < Duration::from_millis(100), "gap of {gap:?}{shown}");
    // The sound moved: A had it for a while and not at the end, B at the end.
    assert!(a.iter().filter(|&&x| x).count() >= 20, "A before{shown}");
    assert!(a[n - 20..].iter().all(|&x| !x), "A after the switch{shown}");
    assert!(
        b[n - 20..].iter().filter(|&&x| x).count() >= 18,
        "B after the switch{shown}"
    );
    assert_eq!(rig.speaker.stats().switches, 1);
    // A microphone moves too: the one on A's monitor now hears B.
    rig.mics[0]
        .0
        .select(&Selection::Device(id("pulseaudio:ring_b.monitor")))
        .unwrap();
    assert_eq!(rig.mics[0].0.device(), id("pulseaudio:ring_b.monitor"));
    rig.record(&mut source, 0, 24_000);
    assert!(tone_snr(&rig.mics[0].1, 440.0, 0.25) > PRESENT_DB);
    assert_eq!(rig.mics[0].0.stats().switches, 1);
}

#[test]
fn unloading_a_sink_falls_back_to_the_default() {
    under_pulse(
        "unloading_a_sink_falls_back_to_the_default_child",
        &[A],
        &["ring_b"],
    );
}

fn pactl(args: &[&str]) -> String {
    let out = Command::new("pactl")
        .args(args)
        .output()
        .expect("pactl runs");
    assert!(out.status.success(), "pactl {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
#[ignore = "runs inside unloading_a_sink_falls_back_to_the_default"]
fn unloading_a_sink_falls_back_to_the_default_child() {
    if !testing::is_child() {
        return;
    }
    let devices = manager(StreamOptions::default());
    // A round trip to the worker: it has taken its first look at the devices.
    assert_eq!(devices.list(DeviceKind::Speaker).unwrap().len(), 1);
    let module = pactl(&[
        "load-module",
        "module-null-sink",
        "sink_name=ring_b",
        "sink_properties=device.description=ring_b",
        "rate=48000",
    ]);
    // The new sink is noticed.
    let mut added = false;
    for _ in 0..100 {
        match devices.wait_event(Duration::from_millis(100)) {
            Some(DeviceEvent::Added { device }) if device.id == id("pulseaudio:ring_b") => {
                assert!(!device.formats.is_empty());
                assert_eq!(device.kind, DeviceKind::Speaker);
                added = true;
                break;
            }
            _ => {}
        }
    }
    assert!(added, "no Added event for ring_b");
    let speaker = devices
        .open_speaker(&Selection::Device(id("pulseaudio:ring_b")))
        .unwrap();
    let mic = devices.open_microphone(&Selection::Default).unwrap();
    assert_eq!(mic.device(), id("pulseaudio:ring_a.monitor"));
    let mut rig = Rig::new(speaker, vec![mic]);
    rig.preroll();
    let mut source = tone(440.0);
    rig.record(&mut source, 0, 24_000);
    assert!(
        tone_windows(&rig.mics[0].1, 440.0).iter().all(|&x| !x),
        "the tone plays on ring_b, not ring_a"
    );
    pactl(&["unload-module", &module]);
    let mut events = Vec::new();
    for _ in 0..BUDGET {
        rig.step(&mut source);
        while let Some(event) = devices.poll_event() {
            events.push(event);
        }
        if events
            .iter()
            .any(|e| matches!(e, DeviceEvent::FellBack { .. }))
        {
            break;
        }
    }
    assert!(
        events.contains(&DeviceEvent::Removed {
            kind: DeviceKind::Speaker,
            id: id("pulseaudio:ring_b"),
        }),
        "{events:?}"
    );
    assert!(
        events.contains(&DeviceEvent::FellBack {
            kind: DeviceKind::Speaker,
            from: id("pulseaudio:ring_b"),
            to: id("pulseaudio:ring_a"),
        }),
        "{events:?}"
    );
    // The handle takes the new device with its next write.
    rig.step(&mut source);
    assert_eq!(rig.speaker.device(), id("pulseaudio:ring_a"));
    // And the sound is now on the default sink.
    rig.record(&mut source, 0, 24_000);
    let recording = &rig.mics[0].1;
    let heard: String = tone_windows(recording, 440.0)
        .iter()
        .map(|&x| if x { '#' } else { '.' })
        .collect();
    assert!(
        tone_snr(recording, 440.0, 0.25) > PRESENT_DB,
        "speaker {:?}\n{heard}",
        rig.speaker.stats()
    );
}
