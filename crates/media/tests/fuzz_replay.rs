//! Replays the `rtp_payload` and `video_payload` fuzz targets of `fuzz/` on stable:
//! seeded byte strings as libFuzzer would start from, and hand-written scenarios that
//! must reach the deep states (a connected server mixing real SRTP audio; decoders fed
//! damaged real H.264 and AV1), so that CI runs the targets' checks without nightly or
//! cargo-fuzz.
#![cfg(feature = "arbitrary")]

use ringwire_media::fuzzing::{
    Edit, MixerOp, Payload, PayloadReport, PayloadScenario, RtpOp, VideoOp, VideoReport,
    VideoScenario, WireOp, rtp_payload, run_payload_scenario, run_video_scenario, seeded_bytes,
    video_payload,
};

/// Seeded inputs; a third of them build a connected world (three DTLS handshakes).
const INPUTS: u64 = 240;

#[test]
fn seeded_inputs_hold_the_invariants() {
    let mut total = PayloadReport::default();
    for i in 0..INPUTS {
        let len = 16 + (i * 7919 % 3000) as usize;
        let report = rtp_payload(&seeded_bytes(0x5eed_0000 + i, len));
        total.ops += report.ops;
        total.datagrams_in += report.datagrams_in;
        total.datagrams_unknown += report.datagrams_unknown;
        total.offers_refused += report.offers_refused;
        total.decoded += report.decoded;
    }
    eprintln!("{total:?}");
    // Random bytes make few, long operations; the scenarios below go deep.
    assert!(total.ops > INPUTS as usize / 2, "{total:?}");
    assert!(total.datagrams_unknown > 0, "{total:?}");
    assert!(total.decoded > 0, "{total:?}");
}

#[test]
fn the_mixer_decodes_real_and_damaged_opus() {
    let mut ops = Vec::new();
    for tick in 0..60u8 {
        for p in 0..3u8 {
            let payload = match (tick + p) % 4 {
                0 => Payload::Raw(vec![tick; usize::from(p) * 40]),
                1 => Payload::Mutated {
                    voiced: true,
                    flips: vec![(u16::from(tick), 0x5a), (0, tick)],
                },
                _ => Payload::Opus { voiced: p != 2 },
            };
            ops.push(MixerOp::Packet {
                participant: p,
                level: 20 + tick % 100,
                payload,
            });
        }
        ops.push(MixerOp::Tick { ms: 20 });
        match tick {
            20 => ops.push(MixerOp::Mute {
                participant: 1,
                muted: true,
            }),
            30 => ops.push(MixerOp::Hold {
                participant: 2,
                on_hold: true,
            }),
            35 => {
                ops.push(MixerOp::Mute {
                    participant: 1,
                    muted: false,
                });
                ops.push(MixerOp::Hold {
                    participant: 2,
                    on_hold: false,
                });
            }
            40 => ops.push(MixerOp::Toggle { participant: 0 }),
            50 => ops.push(MixerOp::Toggle { participant: 0 }),
            _ => {}
        }
    }
    let report = run_payload_scenario(&PayloadScenario::Mixer(ops));
    assert!(report.decoded > 50, "{report:?}");
    assert!(report.encoded > 50, "{report:?}");
    assert!(report.forwarded > 0, "two left after removal: {report:?}");
}

#[test]
fn garbage_and_edited_sdp_around_a_real_handshake() {
    let real_sdp = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n".to_owned();
    let mut ops = vec![
        WireOp::Offer {
            joined: false,
            sdp: real_sdp.clone(),
        },
        WireOp::Offer {
            joined: true,
            sdp: real_sdp,
        },
        WireOp::EditedOffer {
            line: 3,
            text: "m=audio 9 UDP/TLS/RTP/SAVPF 0".into(),
            insert: false,
        },
        WireOp::Answer {
            sdp: "v=0\r\n".into(),
        },
        WireOp::EditedAnswer {
            line: 7,
            text: "a=fingerprint:sha-256 00".into(),
            insert: true,
        },
        WireOp::Datagram {
            source: 1,
            bytes: b"hello".to_vec(),
        },
        WireOp::Framed {
            kind: 2,
            bytes: vec![0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff],
        },
        WireOp::Framed {
            kind: 0,
            bytes: vec![1, 0, 0, 0x21, 0x12, 0xa4, 0x42],
        },
    ];
    // The real handshake, with garbage in between, until connected; then audio.
    for i in 0..60u16 {
        ops.push(WireOp::Exchange);
        ops.push(WireOp::Advance { ms: 5 });
        if i % 7 == 3 {
            ops.push(WireOp::Framed {
                kind: 3,
                bytes: vec![0x6f; usize::from(i)],
            });
        }
    }
    for _ in 0..30 {
        ops.push(WireOp::Audio);
        ops.push(WireOp::Exchange);
        ops.push(WireOp::Advance { ms: 20 });
    }
    let report = run_payload_scenario(&PayloadScenario::Wire(ops));
    assert_eq!(report.connected, 1, "{report:?}");
    assert!(report.audio_in > 0, "{report:?}");
    assert!(report.offers_refused >= 3, "{report:?}");
    assert!(report.answers_refused >= 1, "{report:?}");
}

#[test]
fn connected_participants_send_arbitrary_rtp() {
    // Real audio first: three mixed, then two forwarded (the third leaves). The
    // arbitrary sequence numbers after it may desynchronise the senders' SRTP
    // rollover counters, after which their packets fail authentication.
    let mut ops = vec![
        RtpOp::Talk { from: 0, count: 20 },
        RtpOp::Talk { from: 1, count: 20 },
        RtpOp::Leave { who: 2 },
        RtpOp::Talk { from: 0, count: 10 },
        RtpOp::Talk { from: 1, count: 10 },
    ];
    for i in 0..40u32 {
        ops.push(RtpOp::Send {
            from: (i % 3) as u8,
            seq: [100 + i, 7, 65_535, 65_536 + i, 30_000][(i % 5) as usize],
            timestamp: i.wrapping_mul(960).wrapping_sub(5000),
            level: [Some(-10), Some(0), Some(5), Some(i8::MIN), None][(i % 5) as usize],
            voice: i % 2 == 0,
            marker: i % 3 == 0,
            payload: match i % 3 {
                0 => Payload::Raw(vec![0xfc; (i as usize) * 13]),
                1 => Payload::Mutated {
                    voiced: true,
                    flips: vec![(i as u16, 0xff)],
                },
                _ => Payload::Opus { voiced: true },
            },
        });
        ops.push(RtpOp::Advance { ms: 20 });
    }
    ops.push(RtpOp::Datagram {
        from: 2,
        bytes: vec![0x80, 111, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 1, 2, 3],
    });
    ops.push(RtpOp::Update {
        who: 1,
        muted: true,
        on_hold: false,
    });
    ops.push(RtpOp::Talk { from: 1, count: 5 });
    ops.push(RtpOp::Talk { from: 2, count: 5 });
    let report = run_payload_scenario(&PayloadScenario::Connected(ops));
    assert!(report.audio_in > 60, "{report:?}");
    assert!(report.decoded > 0, "the mixer decoded: {report:?}");
    assert!(report.forwarded > 0, "two left, forwarding: {report:?}");
    assert_eq!(report.connected, 2, "{report:?}");
}

/// Seeded inputs of `video_payload`.
const VIDEO_INPUTS: u64 = 200;

#[test]
fn seeded_video_inputs_hold_the_invariants() {
    let mut total = VideoReport::default();
    for i in 0..VIDEO_INPUTS {
        let len = 8 + (i * 7919 % 2000) as usize;
        let report = video_payload(&seeded_bytes(0x71de_0000 + i, len));
        total.ops += report.ops;
        total.h264_errors += report.h264_errors;
        total.av1_errors += report.av1_errors;
        total.h264_recovered += report.h264_recovered;
    }
    eprintln!("{total:?}");
    assert!(total.ops > VIDEO_INPUTS as usize / 2, "{total:?}");
    assert!(total.h264_errors + total.av1_errors > 0, "{total:?}");
}

#[test]
fn damaged_real_video_then_a_key_frame() {
    let damage = |i: u16| match i % 6 {
        0 => vec![Edit::Flip {
            at: i * 37,
            xor: 0xff,
        }],
        1 => vec![Edit::Truncate { at: 20 + i * 11 }],
        2 => vec![Edit::Remove { at: 8 + i, len: 40 }],
        3 => vec![Edit::Insert {
            at: i,
            bytes: vec![0, 0, 1, 0x67, 0x42, 0xff, 0xff],
        }],
        4 => vec![Edit::Repeat],
        _ => Vec::new(),
    };
    let mut ops = Vec::new();
    for i in 0..20u16 {
        ops.push(VideoOp::H264Real {
            index: i as u8,
            edits: damage(i),
        });
        ops.push(VideoOp::Av1Real {
            index: i as u8,
            edits: damage(i + 1),
        });
        if i % 6 == 5 {
            ops.push(VideoOp::H264Recover);
            ops.push(VideoOp::Av1Recover);
        }
    }
    ops.extend([
        // Parameter sets and slices of nonsense, an SPS asking for a huge picture.
        VideoOp::H264Nal {
            header: 0x67,
            body: vec![0x42, 0xc0, 0x1e, 0xff, 0xff, 0xff, 0xff, 0x80],
        },
        VideoOp::H264Nal {
            header: 0x65,
            body: vec![0x88; 300],
        },
        VideoOp::H264Raw(vec![0; 64]),
        VideoOp::H264Recover,
        // A sequence header OBU of nonsense, a frame OBU, an empty unit.
        VideoOp::Av1Obu {
            header: 0x08,
            body: vec![0xff; 16],
        },
        VideoOp::Av1Obu {
            header: 0x30,
            body: vec![0x10; 200],
        },
        VideoOp::Av1Raw(Vec::new()),
        VideoOp::NewDecoders,
        VideoOp::Av1Recover,
        VideoOp::H264Recover,
    ]);
    assert!(ops.len() <= 64, "the driver runs 64 operations at most");
    let report = run_video_scenario(&VideoScenario { ops });
    eprintln!("{report:?}");
    assert_eq!(report.h264_recovered, 5, "{report:?}");
    assert!(report.h264_pictures >= 5, "{report:?}");
    // A fresh AV1 decoder shows the key frame (the old one may be stuck: see
    // `an_av1_decoder_recovers_after_a_damaged_key_frame`).
    assert!(report.av1_recovered >= 1, "{report:?}");
    assert!(report.h264_errors + report.av1_errors > 0, "{report:?}");
}

/// dav1d refuses everything after a damaged key frame followed by a temporal unit that
/// shows an existing frame (`Invalid argument`, for ever): a client's AV1 video stays
/// black whatever key frames come. Found with `video_payload`; `dav1d::Decoder::flush`
/// after a decode error in `Av1Decoder::decode` recovers it.
#[test]
fn an_av1_decoder_recovers_after_a_damaged_key_frame() {
    let ops = vec![
        // The key frame cut short, then the vector's last unit (5 bytes).
        VideoOp::Av1Real {
            index: 0,
            edits: vec![Edit::Truncate { at: 31 }],
        },
        VideoOp::Av1Real {
            index: 4,
            edits: Vec::new(),
        },
        VideoOp::Av1Recover,
    ];
    let report = run_video_scenario(&VideoScenario { ops });
    assert_eq!(report.av1_recovered, 1, "{report:?}");
}
