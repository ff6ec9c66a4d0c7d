//! Audio sources and sinks against real files: WAV round trips, format conversion,
//! looping, errors, and the memory sink's bound and analysis helpers.

#![allow(clippy::unwrap_used)] // Helpers outside #[test] fns unwrap too.

use std::io::Cursor;
use std::path::Path;
use std::time::Duration;

use ringwire_media::analysis::{dominant_frequency, goertzel_power, tone, tone_snr};
use ringwire_media::audio_io::{
    AudioIoError, AudioSink, AudioSource, MemorySink, SilenceSource, SourceState, ToneSource,
    WavSink, WavSource,
};
use ringwire_media::codec::{FRAME_SAMPLES, SAMPLE_RATE};

/// Writes interleaved samples as a WAV file with the given layout.
fn write_wav<S: hound::Sample + Copy>(path: &Path, spec: hound::WavSpec, samples: &[S]) {
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        writer.write_sample(s).unwrap();
    }
    writer.finalize().unwrap();
}

fn spec(channels: u16, sample_rate: u32, bits: u16, format: hound::SampleFormat) -> hound::WavSpec {
    hound::WavSpec {
        channels,
        sample_rate,
        bits_per_sample: bits,
        sample_format: format,
    }
}

/// Reads `frames` frames, returning the samples and each frame's state.
fn read(source: &mut dyn AudioSource, frames: usize) -> (Vec<i16>, Vec<SourceState>) {
    let mut pcm = vec![0i16; frames * FRAME_SAMPLES];
    let states = pcm
        .chunks_exact_mut(FRAME_SAMPLES)
        .map(|frame| source.read_frame(frame).unwrap())
        .collect();
    (pcm, states)
}

fn sine(freq: f64, amplitude: f64, rate: u32, len: usize) -> Vec<i16> {
    let mut pcm = vec![0i16; len];
    tone(freq, amplitude, rate, 0, &mut pcm);
    pcm
}

#[test]
fn wav_round_trip_keeps_every_sample_then_ends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tone.wav");
    let mut tone_source = ToneSource::new(440.0, 0.5).unwrap();
    let (played, _) = read(&mut tone_source, 10);

    let mut sink = WavSink::create(&path).unwrap();
    for frame in played.chunks(FRAME_SAMPLES) {
        sink.write_frame(frame).unwrap();
    }
    sink.finish().unwrap();
    sink.finish().unwrap(); // idempotent
    assert!(matches!(
        sink.write_frame(&played[..10]),
        Err(AudioIoError::Finished { .. })
    ));

    let mut source: Box<dyn AudioSource> = Box::new(WavSource::open(&path).unwrap());
    assert_eq!(source.name(), path.display().to_string());
    let (pcm, states) = read(&mut source, 12);
    assert_eq!(&pcm[..played.len()], &played[..]);
    assert!(pcm[played.len()..].iter().all(|&s| s == 0));
    assert_eq!(states[..10], [SourceState::Active; 10]);
    assert_eq!(states[10..], [SourceState::Ended; 2]);
    assert!(tone_snr(&pcm[..played.len()], 440.0, SAMPLE_RATE) > 40.0);
}

#[test]
fn dropped_wav_sink_is_finalized() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dropped.wav");
    {
        let mut sink = WavSink::create(&path).unwrap();
        sink.write_frame(&sine(1000.0, 8000.0, SAMPLE_RATE, FRAME_SAMPLES * 3))
            .unwrap();
    }
    let reader = hound::WavReader::open(&path).unwrap();
    assert_eq!(reader.spec(), spec(1, 48_000, 16, hound::SampleFormat::Int));
    assert_eq!(reader.duration() as usize, FRAME_SAMPLES * 3);
}

#[test]
fn stereo_is_averaged_to_mono() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stereo.wav");
    // Left 440 Hz, right 660 Hz: the mono mix has each at half amplitude.
    let left = sine(440.0, 16_000.0, SAMPLE_RATE, 9600);
    let right = sine(660.0, 8000.0, SAMPLE_RATE, 9600);
    let interleaved: Vec<i16> = left
        .iter()
        .zip(&right)
        .flat_map(|(&l, &r)| [l, r])
        .collect();
    write_wav(
        &path,
        spec(2, 48_000, 16, hound::SampleFormat::Int),
        &interleaved,
    );

    let mut source = WavSource::open(&path).unwrap();
    assert_eq!(source.duration(), Duration::from_millis(200));
    let (pcm, states) = read(&mut source, 10);
    assert!(states.iter().all(|&s| s == SourceState::Active));
    let p440 = goertzel_power(&pcm, 440.0, SAMPLE_RATE);
    let p660 = goertzel_power(&pcm, 660.0, SAMPLE_RATE);
    assert!(
        (p440 / (8000.0f64.powi(2) / 2.0) - 1.0).abs() < 0.01,
        "{p440}"
    );
    assert!(
        (p660 / (4000.0f64.powi(2) / 2.0) - 1.0).abs() < 0.01,
        "{p660}"
    );
}

#[test]
fn float_samples_and_other_rates_are_converted() {
    let dir = tempfile::tempdir().unwrap();
    // 32-bit float at 48 kHz: ±1.0 is full scale.
    let path = dir.path().join("float.wav");
    let floats: Vec<f32> = sine(500.0, 16_000.0, SAMPLE_RATE, 4800)
        .iter()
        .map(|&s| f32::from(s) / 32767.0)
        .collect();
    write_wav(
        &path,
        spec(1, 48_000, 32, hound::SampleFormat::Float),
        &floats,
    );
    let (pcm, _) = read(&mut WavSource::open(&path).unwrap(), 5);
    let p = goertzel_power(&pcm, 500.0, SAMPLE_RATE);
    assert!((p / (16_000.0f64.powi(2) / 2.0) - 1.0).abs() < 0.01, "{p}");

    // 16 kHz mono: one second plays as one second, the tone at its frequency.
    let path = dir.path().join("16k.wav");
    write_wav(
        &path,
        spec(1, 16_000, 16, hound::SampleFormat::Int),
        &sine(500.0, 10_000.0, 16_000, 16_000),
    );
    let mut source = WavSource::open(&path).unwrap();
    let duration = source.duration();
    assert!(duration.abs_diff(Duration::from_secs(1)) < Duration::from_millis(1));
    let (pcm, states) = read(&mut source, 50);
    assert!(states.iter().all(|&s| s == SourceState::Active));
    assert_eq!(
        dominant_frequency(&pcm, SAMPLE_RATE, 100.0..=2000.0, 10.0),
        Some(500.0)
    );
    assert!(tone_snr(&pcm, 500.0, SAMPLE_RATE) > 20.0);
}

#[test]
fn looping_source_starts_over_and_never_ends() {
    // 1.5 frames of a ramp: frame 2 holds the second half, then the start again.
    let ramp: Vec<i16> = (0..1440).collect();
    let mut bytes = Cursor::new(Vec::new());
    {
        let mut writer =
            hound::WavWriter::new(&mut bytes, spec(1, 48_000, 16, hound::SampleFormat::Int))
                .unwrap();
        for &s in &ramp {
            writer.write_sample(s).unwrap();
        }
        writer.finalize().unwrap();
    }
    let wav = bytes.into_inner();
    let mut source = WavSource::from_reader("ramp", Cursor::new(&wav))
        .unwrap()
        .looping(true);
    let (pcm, states) = read(&mut source, 6);
    assert!(states.iter().all(|&s| s == SourceState::Active));
    let expected: Vec<i16> = ramp.iter().copied().cycle().take(pcm.len()).collect();
    assert_eq!(pcm, expected);

    // The same file without looping: the partial frame is padded, then it ends.
    let mut once = WavSource::from_reader("ramp", Cursor::new(&wav)).unwrap();
    let (pcm, states) = read(&mut once, 3);
    assert_eq!(
        states,
        [SourceState::Active, SourceState::Active, SourceState::Ended]
    );
    assert_eq!(&pcm[..1440], &ramp[..]);
    assert!(pcm[1440..].iter().all(|&s| s == 0));
}

#[test]
fn bad_files_give_typed_errors() {
    let dir = tempfile::tempdir().unwrap();

    let missing = dir.path().join("missing.wav");
    let err = WavSource::open(&missing).unwrap_err();
    assert!(matches!(err, AudioIoError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains("missing.wav"), "{err}");

    let garbage = dir.path().join("garbage.wav");
    std::fs::write(&garbage, b"this is not a wav file at all").unwrap();
    let err = WavSource::open(&garbage).unwrap_err();
    assert!(matches!(err, AudioIoError::Malformed { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("{} is not a valid wav file", garbage.display()))
    );

    let deep = dir.path().join("24bit.wav");
    write_wav(
        &deep,
        spec(1, 48_000, 24, hound::SampleFormat::Int),
        &[0i32, 1, 2],
    );
    let err = WavSource::open(&deep).unwrap_err();
    assert!(
        matches!(err, AudioIoError::UnsupportedFormat { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("24-bit integer"), "{err}");

    // A header that promises more data than the file holds.
    let mut truncated = std::fs::read(&{
        let path = dir.path().join("full.wav");
        write_wav(
            &path,
            spec(1, 48_000, 16, hound::SampleFormat::Int),
            &[1i16; 960],
        );
        path
    })
    .unwrap();
    truncated.truncate(truncated.len() - 100);
    let err = WavSource::from_reader("truncated", Cursor::new(truncated)).unwrap_err();
    assert!(matches!(err, AudioIoError::Malformed { .. }), "{err:?}");

    let err = WavSink::create(dir.path().join("no-such-dir/out.wav")).unwrap_err();
    assert!(matches!(err, AudioIoError::Open { .. }), "{err:?}");

    // An empty file is valid and ends at once, even when looping.
    let empty = dir.path().join("empty.wav");
    write_wav::<i16>(&empty, spec(1, 48_000, 16, hound::SampleFormat::Int), &[]);
    let mut source = WavSource::open(&empty).unwrap().looping(true);
    let (pcm, states) = read(&mut source, 1);
    assert_eq!(states, [SourceState::Ended]);
    assert!(pcm.iter().all(|&s| s == 0));
}

#[test]
fn memory_sink_keeps_only_the_last_window() {
    let (mut sink, tap) = MemorySink::bounded(Duration::from_millis(100));
    let ramp: Vec<i16> = (0..20 * FRAME_SAMPLES as i16 / 2).collect(); // 10 frames
    for frame in ramp.chunks(FRAME_SAMPLES) {
        sink.write_frame(frame).unwrap();
    }
    assert_eq!(tap.len(), 4800);
    assert_eq!(tap.samples(), &ramp[ramp.len() - 4800..]);
    assert_eq!(tap.written(), ramp.len() as u64);
    assert_eq!(
        tap.last(Duration::from_millis(20)),
        &ramp[ramp.len() - 960..]
    );

    // A write larger than the bound keeps its tail.
    sink.write_frame(&ramp).unwrap();
    assert_eq!(tap.samples(), &ramp[ramp.len() - 4800..]);

    tap.clear();
    assert!(tap.is_empty());
    assert_eq!(tap.written(), 2 * ramp.len() as u64);

    let (mut unbounded, tap) = MemorySink::new();
    for frame in ramp.chunks(FRAME_SAMPLES) {
        unbounded.write_frame(frame).unwrap();
    }
    assert_eq!(tap.samples(), ramp);
}

#[test]
fn memory_tap_hears_the_tone_while_it_plays() {
    let (sink, tap) = MemorySink::bounded(Duration::from_secs(2));
    let mut sink: Box<dyn AudioSink> = Box::new(sink);
    let mut tone_source = ToneSource::with_dbfs(440.0, -20.0).unwrap();
    let mut frame = [0i16; FRAME_SAMPLES];
    let window = Duration::from_millis(200);

    for _ in 0..25 {
        tone_source.read_frame(&mut frame).unwrap();
        sink.write_frame(&frame).unwrap();
    }
    assert!(tap.has_tone(440.0, window));
    let snr = tap.tone_snr(440.0, window);
    assert!(snr > 30.0, "{snr}");
    assert!(!tap.has_tone(880.0, window));

    // Hold: silence plays, the tone leaves the window.
    for _ in 0..10 {
        SilenceSource.read_frame(&mut frame).unwrap();
        sink.write_frame(&frame).unwrap();
    }
    assert!(!tap.has_tone(440.0, window));
    assert!(tap.has_tone(440.0, Duration::from_millis(400)));
    let peak = tap.analyze(window, |s| s.iter().map(|v| v.unsigned_abs()).max());
    assert_eq!(peak, Some(0));

    // Low tones, whose 20 ms frames hold a fraction of a period, measure as clean.
    for freq in [110.0, 97.5, 1234.5] {
        tap.clear();
        let mut low = ToneSource::with_dbfs(freq, -20.0).unwrap();
        for _ in 0..25 {
            low.read_frame(&mut frame).unwrap();
            sink.write_frame(&frame).unwrap();
        }
        let snr = tap.tone_snr(freq, window);
        assert!(snr > 30.0, "{freq} Hz: {snr} dB");
    }
}
