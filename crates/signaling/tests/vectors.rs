//! Runs the language-neutral JSON test vectors in `tests/vectors/` against this crate.
//!
//! The vectors are the contract other implementations (the browser SDK) run too; the
//! format is described in `docs/protocol.md` ("Test vectors"). Besides running each
//! case, this checks that every message type has at least one valid vector.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{Context, Result, bail, ensure};
use ringwire_signaling::{
    CallId, ClientMessage, DecodeError, GroupId, IdError, Identifier, ServerMessage,
};
use serde::Deserialize;
use serde_json::Value;

/// One case of `client_messages.json`, `server_messages.json` or `invalid.json`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageCase {
    name: String,
    /// Set in `invalid.json`; the other files imply it.
    #[serde(default)]
    direction: Option<Direction>,
    json: String,
    /// When set, `json` is followed by spaces up to this many bytes.
    #[serde(default)]
    pad_to: Option<usize>,
    valid: bool,
    #[serde(default)]
    canonical: Option<Value>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
enum Direction {
    Client,
    Server,
}

/// One case of `identifiers.json`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdCase {
    name: String,
    #[serde(rename = "type")]
    id_type: String,
    raw: String,
    valid: bool,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// A decoded message of either direction.
#[derive(Debug, PartialEq)]
enum Decoded {
    Client(ClientMessage),
    Server(ServerMessage),
}

#[test]
fn client_message_vectors() -> Result<()> {
    let seen = run_message_file("client_messages.json", Direction::Client)?;
    let all: BTreeSet<_> = all_client_kinds().into_iter().collect();
    let missing: Vec<_> = all.difference(&seen).collect();
    ensure!(
        missing.is_empty(),
        "client types without a vector: {missing:?}"
    );
    Ok(())
}

#[test]
fn server_message_vectors() -> Result<()> {
    let seen = run_message_file("server_messages.json", Direction::Server)?;
    let all: BTreeSet<_> = all_server_kinds().into_iter().collect();
    let missing: Vec<_> = all.difference(&seen).collect();
    ensure!(
        missing.is_empty(),
        "server types without a vector: {missing:?}"
    );
    Ok(())
}

#[test]
fn invalid_vectors() -> Result<()> {
    let cases: Vec<MessageCase> = load("invalid.json")?;
    let mut errors = BTreeSet::new();
    for case in &cases {
        ensure!(
            !case.valid,
            "{}: invalid.json holds only invalid cases",
            case.name
        );
        let direction = case
            .direction
            .with_context(|| format!("{}: invalid cases need a direction", case.name))?;
        run_message_case(case, direction).with_context(|| case.name.clone())?;
        errors.insert(case.error.clone().unwrap_or_default());
    }
    // Every decode error kind is exercised.
    for kind in [
        "too_large",
        "malformed",
        "missing_version",
        "unsupported_version",
        "missing_type",
        "unknown_type",
        "invalid",
    ] {
        ensure!(errors.contains(kind), "no invalid vector for {kind}");
    }
    Ok(())
}

#[test]
fn identifier_vectors() -> Result<()> {
    let cases: Vec<IdCase> = load("identifiers.json")?;
    ensure!(!cases.is_empty());
    for case in &cases {
        run_id_case(case).with_context(|| format!("{} ({:?})", case.name, case.raw))?;
    }
    Ok(())
}

fn run_message_file(file: &str, direction: Direction) -> Result<BTreeSet<&'static str>> {
    let cases: Vec<MessageCase> = load(file)?;
    let mut seen = BTreeSet::new();
    for case in &cases {
        ensure!(
            case.direction.is_none_or(|d| d == direction),
            "{}: direction does not match the file",
            case.name
        );
        if let Some(kind) = run_message_case(case, direction).with_context(|| case.name.clone())? {
            seen.insert(kind);
        }
    }
    Ok(seen)
}

/// Runs one case; returns the message type of a valid one.
fn run_message_case(case: &MessageCase, direction: Direction) -> Result<Option<&'static str>> {
    let mut text = case.json.clone().into_bytes();
    if let Some(size) = case.pad_to {
        ensure!(size >= text.len(), "pad_to is smaller than json");
        text.resize(size, b' ');
    }
    let decoded = decode(direction, &text);
    if !case.valid {
        let Err(err) = decoded else {
            bail!("decoded a message from an invalid vector: {decoded:?}");
        };
        let expected = case
            .error
            .as_deref()
            .context("invalid case without error")?;
        ensure!(
            error_name(&err) == expected,
            "error {err:?} ({}) is not {expected}",
            error_name(&err)
        );
        let code = serde_json::to_value(err.code())?;
        ensure!(
            Some(code.as_str().unwrap_or_default()) == case.code.as_deref(),
            "wire code {code} is not {:?}",
            case.code
        );
        return Ok(None);
    }
    ensure!(case.error.is_none() && case.code.is_none());
    let msg = decoded.map_err(|e| anyhow::anyhow!("valid vector failed to decode: {e}"))?;
    let canonical = case
        .canonical
        .as_ref()
        .context("valid case without canonical")?;
    let (encoded, kind) = match &msg {
        Decoded::Client(m) => (m.encode(), m.kind()),
        Decoded::Server(m) => (m.encode(), m.kind()),
    };
    let encoded: Value = serde_json::from_slice(&encoded)?;
    ensure!(
        &encoded == canonical,
        "re-encoded\n  {encoded}\nis not the canonical form\n  {canonical}"
    );
    ensure!(canonical["type"] == kind, "kind() {kind} differs from type");
    // The canonical form is itself a valid encoding of the same message.
    let again = decode(direction, &serde_json::to_vec(canonical)?)
        .map_err(|e| anyhow::anyhow!("canonical form failed to decode: {e}"))?;
    ensure!(again == msg, "canonical form decodes to another message");
    Ok(Some(kind))
}

fn run_id_case(case: &IdCase) -> Result<()> {
    let result: Result<String, IdError> = match case.id_type.as_str() {
        "identifier" => case.raw.parse::<Identifier>().map(|id| {
            let kind = match id {
                Identifier::User(_) => "user",
                Identifier::Phone(_) => "phone",
                Identifier::EchoService => "echo",
            };
            format!("{kind} {id}")
        }),
        "call_id" => CallId::new(&case.raw).map(|id| id.to_string()),
        "group_id" => GroupId::new(&case.raw).map(|id| id.to_string()),
        other => bail!("unknown identifier type {other}"),
    };
    match (result, case.valid) {
        (Ok(shown), true) => {
            let expected = match &case.kind {
                Some(kind) => format!("{kind} {}", case.raw),
                None => case.raw.clone(),
            };
            ensure!(shown == expected, "{shown} is not {expected}");
        }
        (Err(err), false) => {
            let expected = case
                .error
                .as_deref()
                .context("invalid case without error")?;
            ensure!(id_error_name(&err) == expected, "{err:?} is not {expected}");
        }
        (Ok(shown), false) => bail!("accepted as {shown}"),
        (Err(err), true) => bail!("refused: {err}"),
    }
    Ok(())
}

fn decode(direction: Direction, bytes: &[u8]) -> Result<Decoded, DecodeError> {
    match direction {
        Direction::Client => ClientMessage::decode(bytes).map(Decoded::Client),
        Direction::Server => ServerMessage::decode(bytes).map(Decoded::Server),
    }
}

/// The vector name of a decode error.
fn error_name(err: &DecodeError) -> &'static str {
    match err {
        DecodeError::TooLarge(_) => "too_large",
        DecodeError::Malformed(_) => "malformed",
        DecodeError::MissingVersion => "missing_version",
        DecodeError::UnsupportedVersion(_) => "unsupported_version",
        DecodeError::MissingType => "missing_type",
        DecodeError::UnknownType(_) => "unknown_type",
        DecodeError::Invalid { .. } => "invalid",
        _ => "new decode error: name it here and in docs/protocol.md",
    }
}

/// The vector name of an identifier error.
fn id_error_name(err: &IdError) -> &'static str {
    match err {
        IdError::Empty => "empty",
        IdError::TooLong => "too_long",
        IdError::UnknownPrefix => "unknown_prefix",
        IdError::BadCharacter(_) => "bad_character",
        IdError::NotE164 => "not_e164",
        _ => "new id error: name it here and in docs/protocol.md",
    }
}

/// Every client message type. The exhaustive match fails to compile when a variant is
/// added, which is the reminder to add it here and to write a vector for it.
fn all_client_kinds() -> Vec<&'static str> {
    let call_id = CallId::new("c").expect("valid call id");
    let who = Identifier::EchoService;
    let samples = vec![
        ClientMessage::Auth {
            token: String::new(),
            resume: None,
            client: Default::default(),
        },
        ClientMessage::StartCall {
            call_id: call_id.clone(),
            targets: vec![],
            options: Default::default(),
            alternate_caller_id: None,
        },
        ClientMessage::Join {
            group_id: GroupId::new("g").expect("valid group id"),
            options: Default::default(),
            lobby: false,
        },
        ClientMessage::Accept {
            call_id: call_id.clone(),
            options: Default::default(),
        },
        ClientMessage::Reject {
            call_id: call_id.clone(),
        },
        ClientMessage::HangUp {
            call_id: call_id.clone(),
            for_everyone: false,
        },
        ClientMessage::Hold {
            call_id: call_id.clone(),
        },
        ClientMessage::Resume {
            call_id: call_id.clone(),
        },
        ClientMessage::Mute {
            call_id: call_id.clone(),
        },
        ClientMessage::Unmute {
            call_id: call_id.clone(),
        },
        ClientMessage::StartVideo {
            call_id: call_id.clone(),
            kind: ringwire_signaling::VideoKind::Camera,
            size: None,
        },
        ClientMessage::StopVideo {
            call_id: call_id.clone(),
            kind: ringwire_signaling::VideoKind::Camera,
        },
        ClientMessage::AddParticipant {
            call_id: call_id.clone(),
            target: who.clone(),
        },
        ClientMessage::RemoveParticipant {
            call_id: call_id.clone(),
            target: who.clone(),
        },
        ClientMessage::Admit {
            call_id: call_id.clone(),
            target: who,
        },
        ClientMessage::Media {
            call_id: call_id.clone(),
            payload: ringwire_signaling::MediaPayload {
                kind: ringwire_signaling::MediaPayloadKind::Offer,
                sdp: String::new(),
            },
        },
        ClientMessage::VideoPreferences {
            call_id: call_id.clone(),
            max_videos: None,
            pinned: None,
        },
        ClientMessage::Ping { seq: 0 },
        ClientMessage::SendDtmf {
            call_id: call_id.clone(),
            digits: "1".into(),
        },
    ];
    for m in &samples {
        match m {
            ClientMessage::Auth { .. }
            | ClientMessage::StartCall { .. }
            | ClientMessage::Join { .. }
            | ClientMessage::Accept { .. }
            | ClientMessage::Reject { .. }
            | ClientMessage::HangUp { .. }
            | ClientMessage::Hold { .. }
            | ClientMessage::Resume { .. }
            | ClientMessage::Mute { .. }
            | ClientMessage::Unmute { .. }
            | ClientMessage::StartVideo { .. }
            | ClientMessage::StopVideo { .. }
            | ClientMessage::AddParticipant { .. }
            | ClientMessage::RemoveParticipant { .. }
            | ClientMessage::Admit { .. }
            | ClientMessage::Media { .. }
            | ClientMessage::VideoPreferences { .. }
            | ClientMessage::Ping { .. }
            | ClientMessage::SendDtmf { .. } => {}
        }
    }
    let kinds: Vec<_> = samples.iter().map(ClientMessage::kind).collect();
    assert_eq!(
        kinds.iter().collect::<BTreeSet<_>>().len(),
        19,
        "one sample per variant"
    );
    kinds
}

/// Every server message type; see [`all_client_kinds`].
fn all_server_kinds() -> Vec<&'static str> {
    let call_id = CallId::new("c").expect("valid call id");
    let reason = ringwire_signaling::EndReason::normal();
    let samples = vec![
        ServerMessage::Authenticated {
            user: Identifier::EchoService,
            resume_token: String::new(),
            grace_ms: 0,
            resumed: false,
        },
        ServerMessage::IncomingCall {
            call_id: call_id.clone(),
            caller: Identifier::EchoService,
            video: false,
            group_id: None,
        },
        ServerMessage::CallState {
            call_id: call_id.clone(),
            state: ringwire_signaling::CallState::None,
            end_reason: None,
        },
        ServerMessage::Roster {
            call_id: call_id.clone(),
            participants: vec![],
        },
        ServerMessage::Participant {
            call_id: call_id.clone(),
            participant: ringwire_signaling::ParticipantInfo {
                id: Identifier::EchoService,
                state: ringwire_signaling::ParticipantState::Idle,
                muted: false,
                speaking: false,
                video: vec![],
                end_reason: None,
            },
        },
        ServerMessage::ParticipantLeft {
            call_id: call_id.clone(),
            id: Identifier::EchoService,
            reason: reason.clone(),
        },
        ServerMessage::MuteState {
            call_id: call_id.clone(),
            muted: false,
        },
        ServerMessage::Dtmf {
            call_id: call_id.clone(),
            from: Identifier::EchoService,
            digits: "1".into(),
        },
        ServerMessage::DominantSpeakers {
            call_id: call_id.clone(),
            speakers: vec![],
        },
        ServerMessage::Media {
            call_id: call_id.clone(),
            payload: ringwire_signaling::MediaPayload {
                kind: ringwire_signaling::MediaPayloadKind::Answer,
                sdp: String::new(),
            },
        },
        ServerMessage::VideoSlots {
            call_id: call_id.clone(),
            slots: Vec::new(),
        },
        ServerMessage::Error {
            code: ringwire_signaling::ErrorCode::Internal,
            message: String::new(),
            call_id: None,
        },
        ServerMessage::Pong { seq: 0 },
        ServerMessage::Goodbye { reason },
    ];
    for m in &samples {
        match m {
            ServerMessage::Authenticated { .. }
            | ServerMessage::IncomingCall { .. }
            | ServerMessage::CallState { .. }
            | ServerMessage::Roster { .. }
            | ServerMessage::Participant { .. }
            | ServerMessage::ParticipantLeft { .. }
            | ServerMessage::MuteState { .. }
            | ServerMessage::DominantSpeakers { .. }
            | ServerMessage::Media { .. }
            | ServerMessage::VideoSlots { .. }
            | ServerMessage::Error { .. }
            | ServerMessage::Pong { .. }
            | ServerMessage::Goodbye { .. }
            | ServerMessage::Dtmf { .. } => {}
        }
    }
    let kinds: Vec<_> = samples.iter().map(ServerMessage::kind).collect();
    assert_eq!(
        kinds.iter().collect::<BTreeSet<_>>().len(),
        14,
        "one sample per variant"
    );
    kinds
}

fn load<T: serde::de::DeserializeOwned>(file: &str) -> Result<T> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "vectors", file]
        .iter()
        .collect();
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    serde_json::from_str(&text).with_context(|| path.display().to_string())
}
