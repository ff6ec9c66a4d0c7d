//! 8 kHz <-> 48 kHz resampling for the phone leg (factor 6 both ways).
//!
//! One windowed-sinc low-pass FIR at 48 kHz (cutoff 3.8 kHz, Blackman window,
//! [`TAPS`] taps) serves both directions: upsampling inserts five zeros after each
//! 8 kHz sample and filters (gain 6, evaluated polyphase so the zeros cost nothing);
//! downsampling filters and keeps every sixth sample. Telephone audio has nothing
//! above 3.4 kHz (G.711's band), so the filter removes the images and the alias
//! band and passes speech flat. Each direction keeps its own history across frames,
//! so consecutive 20 ms frames join without clicks.

/// Filter length (a multiple of the factor, so each polyphase branch has the same length).
pub const TAPS: usize = 72;
/// The rate ratio.
pub const FACTOR: usize = 6;

fn kernel() -> [f32; TAPS] {
    let mut h = [0f32; TAPS];
    let cutoff = 3800.0 / 48000.0; // normalised to the 48 kHz rate
    let mid = (TAPS - 1) as f64 / 2.0;
    let mut sum = 0.0;
    for (n, tap) in h.iter_mut().enumerate() {
        let x = n as f64 - mid;
        let sinc = if x == 0.0 {
            2.0 * cutoff
        } else {
            (2.0 * std::f64::consts::PI * cutoff * x).sin() / (std::f64::consts::PI * x)
        };
        let w = 2.0 * std::f64::consts::PI * n as f64 / (TAPS - 1) as f64;
        let blackman = 0.42 - 0.5 * w.cos() + 0.08 * (2.0 * w).cos();
        let v = sinc * blackman;
        sum += v;
        *tap = v as f32;
    }
    // Unity gain at DC.
    for tap in &mut h {
        *tap /= sum as f32;
    }
    h
}

fn saturate(v: f32) -> i16 {
    v.round().clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16
}

/// 8 kHz -> 48 kHz.
#[derive(Debug, Clone)]
pub struct Upsampler {
    h: [f32; TAPS],
    /// The last `TAPS / FACTOR` input samples, newest last.
    history: Vec<f32>,
}

impl Default for Upsampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Upsampler {
    /// A resampler with silent history.
    #[must_use]
    pub fn new() -> Self {
        Upsampler {
            h: kernel(),
            history: vec![0.0; TAPS / FACTOR],
        }
    }

    /// Appends `input.len() * 6` samples at 48 kHz to `out`.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        let branch = TAPS / FACTOR;
        for &s in input {
            self.history.rotate_left(1);
            if let Some(last) = self.history.last_mut() {
                *last = f32::from(s);
            }
            // Output phase p uses taps p, p+6, p+12, ... against the newest samples.
            for p in 0..FACTOR {
                let mut acc = 0.0f32;
                for k in 0..branch {
                    let tap = self.h.get(p + k * FACTOR).copied().unwrap_or(0.0);
                    let x = self.history.get(branch - 1 - k).copied().unwrap_or(0.0);
                    acc += tap * x;
                }
                out.push(saturate(acc * FACTOR as f32));
            }
        }
    }
}

/// 48 kHz -> 8 kHz.
#[derive(Debug, Clone)]
pub struct Downsampler {
    h: [f32; TAPS],
    /// The last `TAPS` input samples, newest last.
    history: Vec<f32>,
    phase: usize,
}

impl Default for Downsampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Downsampler {
    /// A resampler with silent history.
    #[must_use]
    pub fn new() -> Self {
        Downsampler {
            h: kernel(),
            history: vec![0.0; TAPS],
            phase: 0,
        }
    }

    /// Appends one 8 kHz sample per six input samples to `out` (the phase carries
    /// over between calls).
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        for &s in input {
            self.history.rotate_left(1);
            if let Some(last) = self.history.last_mut() {
                *last = f32::from(s);
            }
            self.phase += 1;
            if self.phase == FACTOR {
                self.phase = 0;
                let acc: f32 = self
                    .h
                    .iter()
                    .zip(self.history.iter().rev())
                    .map(|(h, x)| h * x)
                    .sum();
                out.push(saturate(acc));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use ringwire_media::analysis::{dominant_frequency, tone, tone_snr};

    use super::*;

    #[test]
    fn tones_survive_both_directions() {
        for freq in [300.0, 440.0, 1030.0, 3000.0] {
            let mut input = vec![0i16; 1600];
            tone(freq, 8000.0, 8000, 0, &mut input);
            let mut up = Upsampler::new();
            let mut wide = Vec::new();
            for chunk in input.chunks(160) {
                up.process(chunk, &mut wide);
            }
            assert_eq!(wide.len(), 9600);
            let settled = &wide[960..];
            assert!(tone_snr(settled, freq, 48000) > 25.0, "up {freq}");
            let rms = (ringwire_media::analysis::mean_square(settled)).sqrt();
            assert!(
                (rms - 8000.0 / 2f64.sqrt()).abs() < 600.0,
                "up gain {freq}: {rms}"
            );

            let mut down = Downsampler::new();
            let mut narrow = Vec::new();
            for chunk in wide.chunks(960) {
                down.process(chunk, &mut narrow);
            }
            assert_eq!(narrow.len(), 1600);
            let settled = &narrow[320..];
            assert!(tone_snr(settled, freq, 8000) > 25.0, "down {freq}");
            let found = dominant_frequency(settled, 8000, 100.0..=3900.0, 10.0).unwrap();
            assert!((found - freq).abs() <= 10.0, "{freq} came back as {found}");
        }
    }

    /// A tone above the phone band does not alias into it when going down.
    #[test]
    fn high_tones_are_filtered_before_decimation() {
        let mut input = vec![0i16; 9600];
        tone(7000.0, 8000.0, 48000, 0, &mut input); // would alias to 1000 Hz
        let mut down = Downsampler::new();
        let mut narrow = Vec::new();
        down.process(&input, &mut narrow);
        let rms = ringwire_media::analysis::mean_square(&narrow[100..]).sqrt();
        assert!(rms < 100.0, "7 kHz leaked: rms {rms}");
    }
}
