//! G.711 µ-law (PCMU) and A-law (PCMA), ITU-T G.711 §2 and §3.
//!
//! The classic segment algorithms (as in Sun's public-domain `g711.c`), on 16-bit
//! linear PCM; decoding is exact, encoding rounds towards zero within a segment.

/// A G.711 companding law; also the RTP payload (static types 0 and 8, RFC 3551 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum G711 {
    /// µ-law, RTP payload type 0 (`PCMU/8000`).
    Pcmu,
    /// A-law, RTP payload type 8 (`PCMA/8000`).
    Pcma,
}

impl G711 {
    /// The static RTP payload type (RFC 3551 §6, table 4).
    #[must_use]
    pub const fn payload_type(self) -> u8 {
        match self {
            G711::Pcmu => 0,
            G711::Pcma => 8,
        }
    }

    /// The law for a static payload type, if it is one of the two.
    #[must_use]
    pub const fn from_payload_type(pt: u8) -> Option<Self> {
        match pt {
            0 => Some(G711::Pcmu),
            8 => Some(G711::Pcma),
            _ => None,
        }
    }

    /// The SDP encoding name (`a=rtpmap:<pt> <name>/8000`).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            G711::Pcmu => "PCMU",
            G711::Pcma => "PCMA",
        }
    }

    /// Encodes `pcm` (8 kHz) into `out`, one byte per sample.
    pub fn encode(self, pcm: &[i16], out: &mut Vec<u8>) {
        out.extend(pcm.iter().map(|&s| match self {
            G711::Pcmu => ulaw_encode(s),
            G711::Pcma => alaw_encode(s),
        }));
    }

    /// Decodes `bytes` into `out` (8 kHz), one sample per byte.
    pub fn decode(self, bytes: &[u8], out: &mut Vec<i16>) {
        out.extend(bytes.iter().map(|&b| match self {
            G711::Pcmu => ulaw_decode(b),
            G711::Pcma => alaw_decode(b),
        }));
    }
}

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 32635;

/// One sample to µ-law.
#[must_use]
pub fn ulaw_encode(sample: i16) -> u8 {
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(ULAW_CLIP) + ULAW_BIAS;
    // s is in 0x84..=0x7fff: its top bit is bit 7..=14, the segment 0..=7.
    let exponent = (31 - s.leading_zeros()) as i32 - 7;
    let mantissa = (s >> (exponent + 3)) & 0x0f;
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// One µ-law byte to a sample.
#[must_use]
pub fn ulaw_decode(byte: u8) -> i16 {
    let u = !byte;
    let exponent = i32::from((u >> 4) & 0x07);
    let mantissa = i32::from(u & 0x0f);
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    // At most 32124: always fits.
    let s = if u & 0x80 != 0 { -magnitude } else { magnitude };
    s as i16
}

/// One sample to A-law (on the 13-bit scale of G.711 §3, even bits inverted).
#[must_use]
pub fn alaw_encode(sample: i16) -> u8 {
    let mut pcm = i32::from(sample) >> 3;
    let mask: i32 = if pcm >= 0 {
        0xd5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    // Segment ends of the 13-bit magnitude.
    const SEG_END: [i32; 8] = [0x1f, 0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff];
    let Some(seg) = SEG_END.iter().position(|&end| pcm <= end) else {
        return (0x7f ^ mask) as u8;
    };
    let seg = seg as i32;
    let shift = if seg < 2 { 1 } else { seg };
    let aval = (seg << 4) | ((pcm >> shift) & 0x0f);
    (aval ^ mask) as u8
}

/// One A-law byte to a sample.
#[must_use]
pub fn alaw_decode(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let mut t = i32::from(a & 0x0f) << 4;
    let seg = i32::from((a & 0x70) >> 4);
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    // At most 32256: always fits.
    let s = if a & 0x80 != 0 { t } else { -t };
    s as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes() {
        assert_eq!(ulaw_encode(0), 0xff);
        assert_eq!(ulaw_decode(0xff), 0);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(alaw_encode(0), 0xd5);
        assert_eq!(alaw_decode(0xd5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xaa), 32256);
        assert_eq!(alaw_decode(0x2a), -32256);
        assert_eq!(alaw_encode(i16::MAX), 0xaa);
        assert_eq!(alaw_encode(i16::MIN), 0x2a);
    }

    /// Every code decodes to a value that encodes back to the same code (µ-law's
    /// negative zero, 0x7f, is the one alias: it comes back as positive zero).
    #[test]
    fn every_code_round_trips() {
        for code in 0..=255u8 {
            assert_eq!(alaw_encode(alaw_decode(code)), code, "A-law {code:#04x}");
            let expected = if code == 0x7f { 0xff } else { code };
            assert_eq!(
                ulaw_encode(ulaw_decode(code)),
                expected,
                "µ-law {code:#04x}"
            );
        }
    }

    /// Quantisation error stays within half a step of the segment (relative error
    /// of a few percent), and decoding is monotonic in the input.
    #[test]
    fn error_is_bounded_and_monotonic() {
        for law in [G711::Pcmu, G711::Pcma] {
            let mut last = i16::MIN;
            for s in (i16::MIN..=i16::MAX).step_by(7) {
                let mut b = Vec::new();
                law.encode(&[s], &mut b);
                let mut d = Vec::new();
                law.decode(&b, &mut d);
                let err = (i32::from(d[0]) - i32::from(s)).abs();
                let allowed =
                    (i32::from(s).abs() / 16).max(16) + 1024 * i32::from(s.unsigned_abs() > 32000);
                assert!(err <= allowed, "{law:?} {s} -> {} (err {err})", d[0]);
                assert!(d[0] >= last, "{law:?} not monotonic at {s}");
                last = d[0];
            }
        }
    }

    #[test]
    fn payload_types() {
        assert_eq!(G711::from_payload_type(0), Some(G711::Pcmu));
        assert_eq!(G711::from_payload_type(8), Some(G711::Pcma));
        assert_eq!(G711::from_payload_type(101), None);
        assert_eq!(G711::Pcma.payload_type(), 8);
    }
}
