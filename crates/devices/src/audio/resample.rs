//! Sample-rate conversion of mono `f32` audio between a device's rate and 48 kHz.
//!
//! rubato's asynchronous sinc resampler: pure Rust, maintained, used by most Rust audio
//! apps, and real-time safe (no allocation in `process_into_buffer` once built). The
//! FFT resampler is left out (its `fft_resampler` feature pulls in realfft): the
//! sinc one handles any ratio with one dependency less. A 32-tap Blackman-Harris sinc
//! keeps everything below about 0.8 of Nyquist (19 kHz at 48 kHz), plenty for speech,
//! at a cost small enough for unoptimized test builds too (measured: a 1 kHz tone
//! comes out more than 30 dB above everything else from 16, 44.1 and 96 kHz).

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, FixedAsync, Resampler, SincInterpolationParameters, SincInterpolationType,
    WindowFunction,
};

/// Converts a stream of mono samples from one rate to another, in 10 ms input chunks.
/// Built with all its buffers, so [`MonoResampler::process`] never allocates.
pub(crate) struct MonoResampler {
    inner: Option<Async<f32>>,
    /// Input waiting for a full chunk; never grows past its initial capacity.
    pending: Vec<f32>,
    chunk: usize,
    output: Vec<f32>,
}

impl std::fmt::Debug for MonoResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonoResampler")
            .field("resampling", &self.inner.is_some())
            .field("chunk", &self.chunk)
            .finish_non_exhaustive()
    }
}

impl MonoResampler {
    /// A converter from `from` Hz to `to` Hz; a pass-through when they are equal.
    ///
    /// # Errors
    ///
    /// When a rate is zero or the ratio is absurd (rubato refuses it).
    pub(crate) fn new(from: u32, to: u32) -> Result<Self, rubato::ResamplerConstructionError> {
        let chunk = (from as usize / 100).max(1);
        if from == to {
            return Ok(Self {
                inner: None,
                pending: Vec::new(),
                chunk,
                output: Vec::new(),
            });
        }
        let mut parameters = SincInterpolationParameters::new(32, WindowFunction::BlackmanHarris2);
        parameters.interpolation = SincInterpolationType::Linear;
        let inner = Async::<f32>::new_sinc(
            f64::from(to) / f64::from(from),
            1.1,
            &parameters,
            chunk,
            1,
            FixedAsync::Input,
        )?;
        let output = vec![0.0; inner.output_frames_max()];
        Ok(Self {
            inner: Some(inner),
            pending: Vec::with_capacity(2 * chunk),
            chunk,
            output,
        })
    }

    /// Feeds `input` and hands every converted sample to `out`, in order. Output lags
    /// input by up to one chunk plus the filter's delay (about 12 ms).
    pub(crate) fn process(&mut self, mut input: &[f32], mut out: impl FnMut(f32)) {
        let Some(inner) = self.inner.as_mut() else {
            input.iter().copied().for_each(out);
            return;
        };
        while !input.is_empty() {
            let room = self.chunk - self.pending.len();
            let (now, later) = input.split_at(room.min(input.len()));
            self.pending.extend_from_slice(now);
            input = later;
            if self.pending.len() < self.chunk {
                break;
            }
            let out_len = self.output.len();
            let adapters = (
                InterleavedSlice::new(&self.pending, 1, self.chunk),
                InterleavedSlice::new_mut(&mut self.output, 1, out_len),
            );
            if let (Ok(in_adapter), Ok(mut out_adapter)) = adapters {
                match inner.process_into_buffer(&in_adapter, &mut out_adapter, None) {
                    Ok((_, written)) => self.output[..written].iter().copied().for_each(&mut out),
                    // Sizes are fixed at construction, so this does not happen; a
                    // lost chunk is a 10 ms click, not a reason to stop audio.
                    Err(error) => tracing::debug!(%error, "resampling failed"),
                }
            }
            self.pending.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use ringwire_media::analysis::{dominant_frequency, tone_snr};

    use super::*;

    fn convert(from: u32, to: u32, freq: f64, seconds: f64) -> Vec<i16> {
        let mut resampler = MonoResampler::new(from, to).unwrap();
        let input: Vec<f32> = (0..(f64::from(from) * seconds) as usize)
            .map(|n| 0.5 * (std::f64::consts::TAU * freq * n as f64 / f64::from(from)).sin() as f32)
            .collect();
        let mut output = Vec::new();
        // Odd piece sizes, as device callbacks deliver them.
        for piece in input.chunks(333) {
            resampler.process(piece, |s| output.push((s * 32767.0) as i16));
        }
        output
    }

    #[test]
    fn converts_rates_keeping_the_tone() {
        for from in [44_100, 16_000, 96_000, 48_000] {
            let out = convert(from, 48_000, 1000.0, 1.0);
            let expected = 48_000 - 1000; // minus up to 20 ms of latency
            assert!(
                out.len() >= expected - 1000 && out.len() <= 48_000,
                "{from}: {}",
                out.len()
            );
            let tail = &out[out.len() - 24_000..];
            assert_eq!(
                dominant_frequency(tail, 48_000, 200.0..=4000.0, 10.0),
                Some(1000.0),
                "{from}"
            );
            assert!(tone_snr(tail, 1000.0, 48_000) > 30.0, "{from}");
        }
        let down = convert(48_000, 44_100, 440.0, 1.0);
        let tail = &down[down.len() - 22_050..];
        assert!(tone_snr(tail, 440.0, 44_100) > 30.0);
    }
}
