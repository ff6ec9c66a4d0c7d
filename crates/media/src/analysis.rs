//! Signal analysis for tests and checks on decoded audio: tone generation, Goertzel
//! power at one frequency, the dominant frequency and a tone's signal-to-noise ratio.
//!
//! Powers are mean-square values in `i16` units squared: a sine of amplitude `a` has
//! power `a² / 2` both in [`mean_square`] and in [`goertzel_power`] at its frequency.
//!
//! ```
//! use ringwire_media::analysis::{dominant_frequency, tone, tone_snr};
//!
//! let mut pcm = vec![0i16; 48_000];
//! tone(440.0, 8000.0, 48_000, 0, &mut pcm);
//! let f = dominant_frequency(&pcm, 48_000, 100.0..=1000.0, 10.0);
//! assert_eq!(f, Some(440.0));
//! assert!(tone_snr(&pcm, 440.0, 48_000) > 40.0);
//! ```

use std::f64::consts::PI;
use std::ops::RangeInclusive;

/// Writes a sine of `freq` Hz and peak `amplitude` into `out`, starting at sample
/// index `start` of the stream (so consecutive frames join without a phase jump).
/// Values are rounded and saturate at the `i16` range.
pub fn tone(freq: f64, amplitude: f64, rate: u32, start: u64, out: &mut [i16]) {
    let w = 2.0 * PI * freq / f64::from(rate);
    for (i, s) in out.iter_mut().enumerate() {
        // Reduce the index modulo the rate first so long streams keep their precision.
        let n = (start + i as u64) % u64::from(rate);
        let v = amplitude * (w * n as f64).sin();
        *s = v.round().clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16;
    }
}

/// The mean-square value of `samples` (0 for an empty slice).
#[must_use]
pub fn mean_square(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / samples.len() as f64
}

/// The power of `samples` at `freq` Hz (Goertzel's algorithm, evaluated at the exact
/// frequency rather than a DFT bin), scaled so that a sine of amplitude `a` at `freq`
/// gives `a² / 2`. 0 for an empty slice.
#[must_use]
pub fn goertzel_power(samples: &[i16], freq: f64, rate: u32) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let w = 2.0 * PI * freq / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let magnitude_sq = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let n = samples.len() as f64;
    2.0 * magnitude_sq / (n * n)
}

/// The frequency in `range` (scanned in `step` Hz) with the most Goertzel power, or
/// `None` when the range is empty, `step` is not positive or `samples` is silent.
#[must_use]
pub fn dominant_frequency(
    samples: &[i16],
    rate: u32,
    range: RangeInclusive<f64>,
    step: f64,
) -> Option<f64> {
    if step <= 0.0 || range.is_empty() {
        return None;
    }
    let mut best: Option<(f64, f64)> = None;
    let mut i = 0u32;
    loop {
        let f = range.start() + f64::from(i) * step;
        if f > *range.end() {
            break;
        }
        let p = goertzel_power(samples, f, rate);
        if p > 0.0 && best.is_none_or(|(_, bp)| p > bp) {
            best = Some((f, p));
        }
        i += 1;
    }
    best.map(|(f, _)| f)
}

/// The ratio in dB of the power at `freq` to everything else in `samples`: high for a
/// clean tone, around or below 0 when the tone is absent or buried.
#[must_use]
pub fn tone_snr(samples: &[i16], freq: f64, rate: u32) -> f64 {
    let total = mean_square(samples);
    let tone = goertzel_power(samples, freq, rate).min(total);
    let rest = (total - tone).max(1e-9);
    10.0 * (tone.max(1e-9) / rest).log10()
}

/// [`tone_snr`] over consecutive windows of `window` samples (the last partial one
/// ignored), powers summed before the ratio: robust to phase jumps between windows
/// (a jitter buffer dropping or inserting a frame), which cancel in one long Goertzel.
#[must_use]
pub fn tone_snr_windowed(samples: &[i16], freq: f64, rate: u32, window: usize) -> f64 {
    let (mut tone_sum, mut rest_sum) = (0.0f64, 0.0f64);
    for chunk in samples.chunks_exact(window.max(1)) {
        let total = mean_square(chunk);
        let tone = goertzel_power(chunk, freq, rate).min(total);
        tone_sum += tone;
        rest_sum += total - tone;
    }
    10.0 * (tone_sum.max(1e-9) / rest_sum.max(1e-9)).log10()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goertzel_measures_a_sine_power() {
        let mut pcm = vec![0i16; 9600];
        tone(1000.0, 10_000.0, 48_000, 0, &mut pcm);
        let p = goertzel_power(&pcm, 1000.0, 48_000);
        assert!((p / 50_000_000.0 - 1.0).abs() < 0.01, "{p}");
        assert!((mean_square(&pcm) / 50_000_000.0 - 1.0).abs() < 0.01);
        assert!(goertzel_power(&pcm, 1500.0, 48_000) < p / 1000.0);
    }

    #[test]
    fn mixed_tones_are_told_apart() {
        let mut a = vec![0i16; 48_000];
        let mut b = vec![0i16; 48_000];
        tone(440.0, 6000.0, 48_000, 0, &mut a);
        tone(660.0, 3000.0, 48_000, 0, &mut b);
        let mix: Vec<i16> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        assert_eq!(
            dominant_frequency(&mix, 48_000, 100.0..=1000.0, 10.0),
            Some(440.0)
        );
        // 440 Hz has 4x the power of 660 Hz: about 6 dB.
        let snr = tone_snr(&mix, 440.0, 48_000);
        assert!((snr - 6.0).abs() < 0.5, "{snr}");
        assert!(tone_snr(&b, 440.0, 48_000) < -20.0);
        assert_eq!(
            dominant_frequency(&[0; 100], 48_000, 100.0..=1000.0, 10.0),
            None
        );
    }
}
