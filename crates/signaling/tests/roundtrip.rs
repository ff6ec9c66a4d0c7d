//! Property tests: identifiers and messages survive a round trip, and no input makes a
//! parser panic.
//!
//! The messages come from hand-written proptest strategies rather than from the crate's
//! `arbitrary` feature: those impls (for the fuzzers) draw identifiers from a handful
//! of names on purpose, so that operations collide, while a round trip wants the whole
//! valid space (any allowed character, every length up to the limit, any E.164 number,
//! any string in tokens and SDP). Strategies also shrink to readable counterexamples.
//!
//! Failures are saved under `tests/proptest-regressions/` and replayed first on every
//! run; commit that file when one appears.

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use ringwire_signaling::protocol::{
    CLIENT_MESSAGE_TYPES, MAX_VIDEO_LONG_SIDE, MAX_VIDEO_SHORT_SIDE, SERVER_MESSAGE_TYPES,
};
use ringwire_signaling::{
    CallId, CallState, ClientKind, ClientMessage, EndReason, ErrorCode, GroupId, Identifier,
    JoinOptions, MediaPayload, MediaPayloadKind, ParticipantInfo, ParticipantState, PhoneNumber,
    ServerMessage, UserId, VideoKind, VideoSize, VideoStream,
};

/// 1 to `max` characters allowed in user, call and group ids.
fn id_string(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[A-Za-z0-9._:@-]{{1,{max}}}"))
        .expect("the id pattern is a valid regex")
}

fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/proptest-regressions/roundtrip.txt"
        )))),
        ..ProptestConfig::default()
    }
}

fn user_id() -> impl Strategy<Value = UserId> {
    prop_oneof![
        // Short ids, the common case, collide with `echo123` now and then.
        id_string(8),
        id_string(128),
    ]
    .prop_filter("echo123 is the echo service", |s| s != "echo123")
    .prop_map(|s| UserId::new(&s).expect("strategy makes valid user ids"))
}

fn phone_number() -> impl Strategy<Value = PhoneNumber> {
    "\\+[1-9][0-9]{1,14}".prop_map(|s| PhoneNumber::new(&s).expect("strategy makes E.164 numbers"))
}

fn identifier() -> impl Strategy<Value = Identifier> {
    prop_oneof![
        4 => user_id().prop_map(Identifier::User),
        2 => phone_number().prop_map(Identifier::Phone),
        1 => Just(Identifier::EchoService),
    ]
}

fn call_id() -> impl Strategy<Value = CallId> {
    prop_oneof![
        id_string(128).prop_map(|s| CallId::new(&s).expect("strategy makes valid call ids")),
        group_id().prop_map(|g| CallId::for_group(&g)),
    ]
}

fn group_id() -> impl Strategy<Value = GroupId> {
    id_string(122).prop_map(|s| GroupId::new(&s).expect("strategy makes valid group ids"))
}

fn join_options() -> impl Strategy<Value = JoinOptions> {
    (any::<bool>(), any::<bool>()).prop_map(|(muted, video)| JoinOptions { muted, video })
}

fn video_kind() -> impl Strategy<Value = VideoKind> {
    prop_oneof![Just(VideoKind::Camera), Just(VideoKind::ScreenShare)]
}

/// Valid sizes only (either orientation, up to 7680x4320): invalid ones do not decode.
fn video_size() -> impl Strategy<Value = VideoSize> {
    (
        1..=MAX_VIDEO_LONG_SIDE,
        1..=MAX_VIDEO_SHORT_SIDE,
        any::<bool>(),
    )
        .prop_map(|(long, short, portrait)| {
            if portrait {
                VideoSize::new(short, long)
            } else {
                VideoSize::new(long, short)
            }
        })
}

fn video_stream() -> impl Strategy<Value = VideoStream> {
    (video_kind(), prop::option::of(video_size()))
        .prop_map(|(kind, size)| VideoStream { kind, size })
}

fn media_payload() -> impl Strategy<Value = MediaPayload> {
    (
        prop_oneof![
            Just(MediaPayloadKind::Offer),
            Just(MediaPayloadKind::Answer)
        ],
        any::<String>(),
    )
        .prop_map(|(kind, sdp)| MediaPayload { kind, sdp })
}

fn end_reason() -> impl Strategy<Value = EndReason> {
    prop_oneof![
        (any::<u16>(), any::<u32>(), any::<String>()).prop_map(|(code, subcode, message)| {
            EndReason {
                code,
                subcode,
                message,
            }
        }),
        Just(EndReason::normal()),
        Just(EndReason::call_full()),
        Just(EndReason::connection_lost()),
    ]
}

fn call_state() -> impl Strategy<Value = CallState> {
    prop::sample::select(vec![
        CallState::None,
        CallState::EarlyMedia,
        CallState::Incoming,
        CallState::Connecting,
        CallState::Ringing,
        CallState::Connected,
        CallState::LocalHold,
        CallState::RemoteHold,
        CallState::InLobby,
        CallState::Disconnecting,
        CallState::Disconnected,
    ])
}

fn participant_state() -> impl Strategy<Value = ParticipantState> {
    prop::sample::select(vec![
        ParticipantState::Idle,
        ParticipantState::EarlyMedia,
        ParticipantState::Connecting,
        ParticipantState::Ringing,
        ParticipantState::Connected,
        ParticipantState::Hold,
        ParticipantState::InLobby,
        ParticipantState::Disconnected,
    ])
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop::sample::select(vec![
        ErrorCode::Malformed,
        ErrorCode::UnknownType,
        ErrorCode::UnsupportedVersion,
        ErrorCode::TooLarge,
        ErrorCode::NotAuthenticated,
        ErrorCode::AlreadyAuthenticated,
        ErrorCode::InvalidToken,
        ErrorCode::TokenExpired,
        ErrorCode::MissingScope,
        ErrorCode::TokenRevoked,
        ErrorCode::TooManyConnections,
        ErrorCode::ResumeFailed,
        ErrorCode::UnknownCall,
        ErrorCode::CallExists,
        ErrorCode::InvalidState,
        ErrorCode::UnknownParticipant,
        ErrorCode::AlreadyInCall,
        ErrorCode::CallFull,
        ErrorCode::Forbidden,
        ErrorCode::RateLimited,
        ErrorCode::Internal,
    ])
}

fn participant_info() -> impl Strategy<Value = ParticipantInfo> {
    (
        identifier(),
        participant_state(),
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(video_stream(), 0..3),
        prop::option::of(end_reason()),
    )
        .prop_map(
            |(id, state, muted, speaking, video, end_reason)| ParticipantInfo {
                id,
                state,
                muted,
                speaking,
                video,
                end_reason,
            },
        )
}

/// Every [`ClientMessage`] variant, with optional fields present and absent.
fn client_message() -> impl Strategy<Value = ClientMessage> {
    prop_oneof![
        (
            any::<String>(),
            prop::option::of(any::<String>()),
            prop_oneof![Just(ClientKind::Native), Just(ClientKind::Web)],
        )
            .prop_map(|(token, resume, client)| ClientMessage::Auth {
                token,
                resume,
                client
            }),
        (
            call_id(),
            prop::collection::vec(identifier(), 0..5),
            join_options(),
            prop::option::of(phone_number()),
        )
            .prop_map(|(call_id, targets, options, alternate_caller_id)| {
                ClientMessage::StartCall {
                    call_id,
                    targets,
                    options,
                    alternate_caller_id,
                }
            }),
        (group_id(), join_options(), any::<bool>()).prop_map(|(group_id, options, lobby)| {
            ClientMessage::Join {
                group_id,
                options,
                lobby,
            }
        }),
        (call_id(), join_options())
            .prop_map(|(call_id, options)| ClientMessage::Accept { call_id, options }),
        call_id().prop_map(|call_id| ClientMessage::Reject { call_id }),
        (call_id(), any::<bool>()).prop_map(|(call_id, for_everyone)| ClientMessage::HangUp {
            call_id,
            for_everyone
        }),
        call_id().prop_map(|call_id| ClientMessage::Hold { call_id }),
        call_id().prop_map(|call_id| ClientMessage::Resume { call_id }),
        call_id().prop_map(|call_id| ClientMessage::Mute { call_id }),
        call_id().prop_map(|call_id| ClientMessage::Unmute { call_id }),
        (call_id(), video_kind(), prop::option::of(video_size())).prop_map(
            |(call_id, kind, size)| ClientMessage::StartVideo {
                call_id,
                kind,
                size
            }
        ),
        (call_id(), video_kind())
            .prop_map(|(call_id, kind)| ClientMessage::StopVideo { call_id, kind }),
        (call_id(), identifier())
            .prop_map(|(call_id, target)| ClientMessage::AddParticipant { call_id, target }),
        (call_id(), identifier())
            .prop_map(|(call_id, target)| ClientMessage::RemoveParticipant { call_id, target }),
        (call_id(), identifier())
            .prop_map(|(call_id, target)| ClientMessage::Admit { call_id, target }),
        (call_id(), media_payload())
            .prop_map(|(call_id, payload)| ClientMessage::Media { call_id, payload }),
        any::<u64>().prop_map(|seq| ClientMessage::Ping { seq }),
    ]
}

/// Every [`ServerMessage`] variant, with optional fields present and absent.
fn server_message() -> impl Strategy<Value = ServerMessage> {
    prop_oneof![
        (identifier(), any::<String>(), any::<u64>(), any::<bool>()).prop_map(
            |(user, resume_token, grace_ms, resumed)| ServerMessage::Authenticated {
                user,
                resume_token,
                grace_ms,
                resumed,
            }
        ),
        (
            call_id(),
            identifier(),
            any::<bool>(),
            prop::option::of(group_id())
        )
            .prop_map(
                |(call_id, caller, video, group_id)| ServerMessage::IncomingCall {
                    call_id,
                    caller,
                    video,
                    group_id,
                }
            ),
        (call_id(), call_state(), prop::option::of(end_reason())).prop_map(
            |(call_id, state, end_reason)| ServerMessage::CallState {
                call_id,
                state,
                end_reason,
            }
        ),
        (call_id(), prop::collection::vec(participant_info(), 0..4)).prop_map(
            |(call_id, participants)| ServerMessage::Roster {
                call_id,
                participants
            }
        ),
        (call_id(), participant_info()).prop_map(|(call_id, participant)| {
            ServerMessage::Participant {
                call_id,
                participant,
            }
        }),
        (call_id(), identifier(), end_reason()).prop_map(|(call_id, id, reason)| {
            ServerMessage::ParticipantLeft {
                call_id,
                id,
                reason,
            }
        }),
        (call_id(), any::<bool>())
            .prop_map(|(call_id, muted)| ServerMessage::MuteState { call_id, muted }),
        (call_id(), prop::collection::vec(identifier(), 0..4))
            .prop_map(|(call_id, speakers)| ServerMessage::DominantSpeakers { call_id, speakers }),
        (call_id(), media_payload())
            .prop_map(|(call_id, payload)| ServerMessage::Media { call_id, payload }),
        (error_code(), any::<String>(), prop::option::of(call_id())).prop_map(
            |(code, message, call_id)| ServerMessage::Error {
                code,
                message,
                call_id,
            }
        ),
        any::<u64>().prop_map(|seq| ServerMessage::Pong { seq }),
        end_reason().prop_map(|reason| ServerMessage::Goodbye { reason }),
    ]
}

/// Field names and values that occur in real messages, to build near-valid objects.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{Value, json};
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        any::<String>().prop_map(Value::from),
        prop::sample::select(vec![
            "8:bob",
            "4:+15551230000",
            "8:echo123",
            "c1",
            "group:g",
            "camera",
            "screen_share",
            "offer",
            "connected",
            "",
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(field_name(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "v",
            "type",
            "call_id",
            "token",
            "targets",
            "target",
            "options",
            "muted",
            "video",
            "kind",
            "size",
            "width",
            "height",
            "payload",
            "sdp",
            "seq",
            "group_id",
            "lobby",
            "state",
            "end_reason",
            "code",
            "participants",
            "participant",
            "id",
            "reason",
            "user",
            "speakers",
            "message",
        ])
        .prop_map(str::to_owned),
        any::<String>(),
    ]
}

fn message_type() -> impl Strategy<Value = String> {
    let all: Vec<&str> = CLIENT_MESSAGE_TYPES
        .iter()
        .chain(SERVER_MESSAGE_TYPES)
        .copied()
        .collect();
    prop::sample::select(all).prop_map(str::to_owned)
}

/// Objects with `"v": 1` and a known type, but random other fields: they get past the
/// header checks into the per-message parsing, which random bytes rarely reach.
fn near_valid_message() -> impl Strategy<Value = Vec<u8>> {
    (
        message_type(),
        prop::collection::btree_map(field_name(), json_value(), 0..6),
    )
        .prop_map(|(kind, fields)| {
            let mut obj: serde_json::Map<String, serde_json::Value> = fields.into_iter().collect();
            obj.insert("v".into(), 1.into());
            obj.insert("type".into(), kind.into());
            serde_json::to_vec(&obj).expect("json values serialize")
        })
}

/// A valid encoding with one byte changed, or cut short.
fn mangled_message() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![
            client_message().prop_map(|m| m.encode()),
            server_message().prop_map(|m| m.encode()),
        ],
        any::<prop::sample::Index>(),
        any::<u8>(),
        any::<bool>(),
    )
        .prop_map(|(mut bytes, at, byte, truncate)| {
            let i = at.index(bytes.len());
            if truncate {
                bytes.truncate(i);
            } else if let Some(b) = bytes.get_mut(i) {
                *b = byte;
            }
            bytes
        })
}

fn decode_both(bytes: &[u8]) {
    // Neither may panic; errors must still map to a wire code.
    if let Err(e) = ClientMessage::decode(bytes) {
        let _ = e.code();
        let _ = e.to_string();
    }
    if let Err(e) = ServerMessage::decode(bytes) {
        let _ = e.code();
        let _ = e.to_string();
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn identifiers_round_trip(id in identifier()) {
        let raw = id.to_string();
        prop_assert_eq!(raw.parse::<Identifier>(), Ok(id.clone()));
        let json = serde_json::to_string(&id).expect("identifiers serialize");
        prop_assert_eq!(serde_json::from_str::<Identifier>(&json).ok(), Some(id));
    }

    #[test]
    fn call_and_group_ids_round_trip(call in call_id(), group in group_id()) {
        prop_assert_eq!(call.as_str().parse::<CallId>(), Ok(call.clone()));
        prop_assert_eq!(group.as_str().parse::<GroupId>(), Ok(group.clone()));
        prop_assert_eq!(CallId::for_group(&group).group(), Some(group));
    }

    #[test]
    fn identifier_parse_never_panics(raw in any::<String>()) {
        let _ = raw.parse::<Identifier>();
        let _ = CallId::new(&raw);
        let _ = GroupId::new(&raw);
    }

    #[test]
    fn identifier_parse_never_panics_near_valid(raw in "[48x]?:?[+]?[0-9a-z@. -]{0,20}") {
        if let Ok(id) = raw.parse::<Identifier>() {
            prop_assert_eq!(id.to_string(), raw);
        }
    }

    #[test]
    fn client_messages_round_trip(msg in client_message()) {
        let bytes = msg.encode();
        let decoded = ClientMessage::decode(&bytes);
        prop_assert!(decoded.is_ok(), "{:?}", decoded);
        prop_assert_eq!(decoded.ok(), Some(msg.clone()));
        let value: serde_json::Value = serde_json::from_slice(&bytes).expect("encode makes json");
        prop_assert_eq!(&value["type"], msg.kind());
        prop_assert_eq!(&value["v"], 1);
    }

    #[test]
    fn server_messages_round_trip(msg in server_message()) {
        let bytes = msg.encode();
        let decoded = ServerMessage::decode(&bytes);
        prop_assert!(decoded.is_ok(), "{:?}", decoded);
        prop_assert_eq!(decoded.ok(), Some(msg.clone()));
        let value: serde_json::Value = serde_json::from_slice(&bytes).expect("encode makes json");
        prop_assert_eq!(&value["type"], msg.kind());
        prop_assert_eq!(&value["v"], 1);
    }

    #[test]
    fn video_sizes_decode_exactly_when_valid(
        width in prop_oneof![0..=8000u32, any::<u32>()],
        height in prop_oneof![0..=8000u32, any::<u32>()],
    ) {
        let size = VideoSize::new(width, height);
        let json = format!(
            r#"{{"v":1,"type":"start_video","call_id":"c1","kind":"camera","size":{{"width":{width},"height":{height}}}}}"#
        );
        let decoded = ClientMessage::decode(json.as_bytes());
        let long = width.max(height);
        let short = width.min(height);
        let valid = short >= 1 && long <= MAX_VIDEO_LONG_SIDE && short <= MAX_VIDEO_SHORT_SIDE;
        prop_assert_eq!(size.is_valid(), valid);
        if valid {
            prop_assert!(
                matches!(&decoded, Ok(ClientMessage::StartVideo { size: Some(s), .. }) if *s == size),
                "{:?}", decoded
            );
        } else {
            prop_assert!(
                matches!(&decoded, Err(e) if e.code() == ErrorCode::Malformed),
                "{:?}", decoded
            );
        }
    }

    #[test]
    fn decode_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_both(&bytes);
    }

    #[test]
    fn decode_never_panics_on_near_valid_messages(bytes in near_valid_message()) {
        decode_both(&bytes);
    }

    #[test]
    fn decode_never_panics_on_mangled_messages(bytes in mangled_message()) {
        decode_both(&bytes);
    }
}
