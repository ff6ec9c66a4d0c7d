//! RTP (RFC 3550 §5.1) headers and RFC 4733 telephone events, parsed through a cursor.
//!
//! Both parsers take untrusted bytes and return [`Malformed`] for anything that is not
//! a well-formed packet; neither indexes raw slices.

use crate::error::Malformed;

/// The largest RTP datagram we read (the receive buffer size).
pub const MAX_DATAGRAM: usize = 1500;

/// An RTP packet's header fields we use, and where its payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marker bit (start of a talkspurt or of a telephone event).
    pub marker: bool,
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Timestamp in the payload's clock.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
}

/// A parsed RTP packet borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// The header.
    pub header: RtpHeader,
    /// The payload, padding removed.
    pub payload: &'a [u8],
}

struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).and_then(|b| b.first().copied())
    }

    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
    }

    fn u32(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_be_bytes([
            *b.first()?,
            *b.get(1)?,
            *b.get(2)?,
            *b.get(3)?,
        ]))
    }
}

impl<'a> RtpPacket<'a> {
    /// Parses one RTP datagram (RFC 3550 §5.1: version 2, CSRCs and a header
    /// extension skipped, padding removed).
    ///
    /// # Errors
    /// [`Malformed`] when the bytes are not a version-2 RTP packet.
    pub fn parse(datagram: &'a [u8]) -> Result<Self, Malformed> {
        if datagram.len() > MAX_DATAGRAM {
            return Err(Malformed::TooLarge("rtp packet"));
        }
        let mut c = Cursor { rest: datagram };
        let b0 = c.u8().ok_or(Malformed::Truncated("rtp header"))?;
        if b0 >> 6 != 2 {
            return Err(Malformed::Invalid("rtp version"));
        }
        let padding = b0 & 0x20 != 0;
        let extension = b0 & 0x10 != 0;
        let csrcs = usize::from(b0 & 0x0f);
        let b1 = c.u8().ok_or(Malformed::Truncated("rtp header"))?;
        let marker = b1 & 0x80 != 0;
        let payload_type = b1 & 0x7f;
        // RFC 5761 §4: 64..=95 would be RTCP (200..=207 with the marker bit).
        if (72..=76).contains(&payload_type) {
            return Err(Malformed::Invalid("rtp payload type (rtcp)"));
        }
        let sequence = c.u16().ok_or(Malformed::Truncated("rtp header"))?;
        let timestamp = c.u32().ok_or(Malformed::Truncated("rtp header"))?;
        let ssrc = c.u32().ok_or(Malformed::Truncated("rtp header"))?;
        c.take(csrcs * 4)
            .ok_or(Malformed::Truncated("rtp csrc list"))?;
        if extension {
            let _profile = c.u16().ok_or(Malformed::Truncated("rtp extension"))?;
            let words = usize::from(c.u16().ok_or(Malformed::Truncated("rtp extension"))?);
            c.take(words * 4)
                .ok_or(Malformed::Truncated("rtp extension"))?;
        }
        let mut payload = c.rest;
        if padding {
            // RFC 3550 §5.1: the last octet counts the padding, itself included.
            let count = usize::from(*payload.last().ok_or(Malformed::Truncated("rtp padding"))?);
            if count == 0 || count > payload.len() {
                return Err(Malformed::Invalid("rtp padding"));
            }
            payload = payload
                .get(..payload.len() - count)
                .ok_or(Malformed::Invalid("rtp padding"))?;
        }
        Ok(RtpPacket {
            header: RtpHeader {
                marker,
                payload_type,
                sequence,
                timestamp,
                ssrc,
            },
            payload,
        })
    }
}

impl RtpHeader {
    /// Appends the 12-byte header (no CSRCs, no extension) to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(0x80);
        out.push(u8::from(self.marker) << 7 | (self.payload_type & 0x7f));
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
    }
}

/// A DTMF key: the RFC 4733 §3.2 events 0..=15 (`0-9`, `*`, `#`, `A-D`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DtmfDigit(u8);

impl DtmfDigit {
    /// The key for a character `0-9 * # A-D` (case-insensitive).
    #[must_use]
    pub fn from_char(c: char) -> Option<Self> {
        let code = match c.to_ascii_uppercase() {
            '0'..='9' => c as u8 - b'0',
            '*' => 10,
            '#' => 11,
            'A'..='D' => c.to_ascii_uppercase() as u8 - b'A' + 12,
            _ => return None,
        };
        Some(DtmfDigit(code))
    }

    /// The key for an event code 0..=15.
    #[must_use]
    pub fn from_code(code: u8) -> Option<Self> {
        (code <= 15).then_some(DtmfDigit(code))
    }

    /// The RFC 4733 event code.
    #[must_use]
    pub fn code(self) -> u8 {
        self.0
    }

    /// The key as a character.
    #[must_use]
    pub fn to_char(self) -> char {
        match self.0 {
            0..=9 => char::from(b'0' + self.0),
            10 => '*',
            11 => '#',
            c => char::from(b'A' + (c - 12)),
        }
    }
}

/// One RFC 4733 §2.3 telephone-event payload (4 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code (0..=15 are DTMF keys; others are tones we ignore).
    pub event: u8,
    /// The end bit: this is one of the event's final packets.
    pub end: bool,
    /// Volume in -dBm0 (0..=63).
    pub volume: u8,
    /// Duration so far, in timestamp units (8 kHz).
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parses exactly one event block.
    ///
    /// # Errors
    /// [`Malformed`] unless `payload` is exactly 4 bytes.
    pub fn parse(payload: &[u8]) -> Result<Self, Malformed> {
        let mut c = Cursor { rest: payload };
        let event = c.u8().ok_or(Malformed::Truncated("telephone event"))?;
        let flags = c.u8().ok_or(Malformed::Truncated("telephone event"))?;
        let duration = c.u16().ok_or(Malformed::Truncated("telephone event"))?;
        if !c.rest.is_empty() {
            return Err(Malformed::Trailing("telephone event"));
        }
        Ok(TelephoneEvent {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3f,
            duration,
        })
    }

    /// The 4 payload bytes.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            u8::from(self.end) << 7 | (self.volume & 0x3f),
            d[0],
            d[1],
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let h = RtpHeader {
            marker: true,
            payload_type: 8,
            sequence: 0xfffe,
            timestamp: 0x1234_5678,
            ssrc: 0xdead_beef,
        };
        let mut b = Vec::new();
        h.write(&mut b);
        b.extend_from_slice(&[1, 2, 3]);
        let p = RtpPacket::parse(&b).unwrap();
        assert_eq!(p.header, h);
        assert_eq!(p.payload, &[1, 2, 3]);
    }

    #[test]
    fn csrc_extension_and_padding_are_skipped() {
        let mut b = vec![0x80 | 0x20 | 0x10 | 1, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        b.extend_from_slice(&[9, 9, 9, 9]); // one CSRC
        b.extend_from_slice(&[0xbe, 0xde, 0, 1, 7, 7, 7, 7]); // one-word extension
        b.extend_from_slice(&[0xaa, 0xbb, 0, 0, 3]); // payload + 3 bytes of padding
        let p = RtpPacket::parse(&b).unwrap();
        assert_eq!(p.payload, &[0xaa, 0xbb]);
    }

    #[test]
    fn bad_packets_are_refused() {
        assert!(RtpPacket::parse(&[]).is_err());
        assert!(RtpPacket::parse(&[0x80, 0, 0]).is_err());
        assert!(RtpPacket::parse(&[0x40; 12]).is_err()); // version 1
        let mut csrc = vec![0x8f, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        csrc.push(0);
        assert!(RtpPacket::parse(&csrc).is_err()); // 15 CSRCs announced, none there
        let pad = [0xa0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 1, 9];
        assert!(RtpPacket::parse(&pad).is_err()); // padding longer than the payload
        let pad0 = [0xa0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 1, 0];
        assert!(RtpPacket::parse(&pad0).is_err());
        assert!(RtpPacket::parse(&[0x80; 2000]).is_err());
        // Every prefix of a valid packet with an extension is refused or shorter, never a panic.
        let full = [
            0x90, 8, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xbe, 0xde, 0, 1, 7, 7, 7, 7, 5,
        ];
        for n in 0..full.len() {
            let _ = RtpPacket::parse(&full[..n]);
        }
        assert!(RtpPacket::parse(&full[..19]).is_err());
    }

    #[test]
    fn telephone_event_round_trips() {
        let e = TelephoneEvent {
            event: 11,
            end: true,
            volume: 10,
            duration: 800,
        };
        assert_eq!(TelephoneEvent::parse(&e.to_bytes()).unwrap(), e);
        // The "1" from sipp's dtmf_2833_1.pcap: event 1, volume 10, duration 160, no end.
        let first = TelephoneEvent::parse(&[0x01, 0x0a, 0x00, 0xa0]).unwrap();
        assert_eq!(
            (first.event, first.end, first.volume, first.duration),
            (1, false, 10, 160)
        );
        assert!(TelephoneEvent::parse(&[1, 2, 3]).is_err());
        assert!(TelephoneEvent::parse(&[1, 2, 3, 4, 5]).is_err());
    }

    #[test]
    fn dtmf_digits() {
        for c in "0123456789*#ABCD".chars() {
            let d = DtmfDigit::from_char(c).unwrap();
            assert_eq!(d.to_char(), c);
            assert_eq!(DtmfDigit::from_code(d.code()), Some(d));
        }
        assert_eq!(DtmfDigit::from_char('a').map(DtmfDigit::to_char), Some('A'));
        assert_eq!(DtmfDigit::from_char('x'), None);
        assert_eq!(DtmfDigit::from_code(16), None);
    }
}
