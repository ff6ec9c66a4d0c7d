//! Entry points for the cargo-fuzz targets under `fuzz/` (STYLE §5).
//!
//! Each target in `fuzz/fuzz_targets/` is a few lines that call one function here, so
//! the logic is built, linted and unit-tested with the crate. The module exists under
//! `cfg(fuzzing)` (set by cargo-fuzz) and under the `arbitrary` feature, so that
//! `tests/ops.rs` replays the operations fuzzer on stable in CI.
//!
//! | target | function | checks |
//! |---|---|---|
//! | `decode_client_message` | [`decode_client_message`] | decoding never panics; what decodes re-encodes to bytes that decode to the same message |
//! | `decode_server_message` | [`decode_server_message`] | the same for server messages |
//! | `token_verify` | [`token_verify`] | [`TokenKey::verify`] never panics, on raw strings and on tokens our key signed over arbitrary claims; what it accepts is valid at `now` |
//! | `controller_ops` | [`controller_ops`] | a [`Scenario`] of [`Op`]s replayed against a [`CallController`]: see below |
//!
//! Running them (nightly and cargo-fuzz; `cargo xtask fuzz` does the same for every target):
//!
//! ```text
//! cd fuzz
//! cargo +nightly fuzz build
//! cargo +nightly fuzz run controller_ops -- -max_total_time=60
//! cargo +nightly fuzz fmt controller_ops artifacts/controller_ops/crash-…   # the ops, readable
//! ```
//!
//! Corpora (`fuzz/corpus/`) and crash inputs (`fuzz/artifacts/`) are not committed.
//!
//! # The operations fuzzer
//!
//! [`run_scenario`] plays a driver: it opens and closes connections (fresh
//! [`ConnectionId`]s, never reused), authenticates users `u0`..`u7` (the users the
//! `arbitrary` feature's [`Identifier`]s name) with tokens from the controller's own key,
//! resumes with the last resume token it saw for a user, sends arbitrary
//! [`ClientMessage`]s and raw bytes, moves a virtual clock, and answers for the gateway
//! and the media plane. After every operation it drains every output and checks:
//!
//! - every transmit goes to a connection that was open when the operation began, and
//!   encodes to bytes that decode to the same message;
//! - a `Close` names such a connection (the driver then closes it);
//! - [`CallController::check_invariants`] holds;
//! - after `handle_timeout(now)`, no timer is due at or before `now`;
//! - memory stays bounded: the controller has exactly the connections the driver has
//!   open; never more sessions than it announced with `authenticated{resumed:false}`,
//!   nor more of those than operations that could authenticate; no more sessions than
//!   open connections plus connections dropped within the resume grace (detached
//!   sessions must expire); never more calls than operations that could start one;
//!   never more participants per call than distinct identifiers or the call limit.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::time::{Duration, Instant, SystemTime};

use arbitrary::{Arbitrary, Unstructured};

use crate::controller::{
    CallController, Command, ConnectionId, ControllerConfig, GatewayEvent, Transmit,
};
use crate::id::{CallId, GroupId, Identifier, UserId};
use crate::protocol::{
    ClientKind, ClientMessage, DecodeError, EndReason, JoinOptions, MAX_MESSAGE_SIZE, MediaPayload,
    ServerMessage, VideoKind, VideoSize,
};
use crate::rng::Rng;
use crate::token::{Scope, Scopes, TokenKey};

/// Connection slots the operations address (`conn % SLOTS`).
const SLOTS: usize = 4;

/// Users the operations authenticate as, `u0`..`u7`: the same users the `arbitrary`
/// impl of [`Identifier`] names, so that fuzzed messages target live users.
const USERS: u8 = 8;

/// Distinct identifiers the `arbitrary` impls produce: 8 users, 4 phones, the echo service.
const IDENTITIES: usize = 8 + 4 + 1;

/// The secret of the token key every target uses.
const KEY: [u8; 32] = [0x42; 32];

/// Wall-clock time at the virtual clock's start (2027-01-15).
fn wall_anchor() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn key() -> TokenKey {
    TokenKey::new(&KEY).expect("the fuzzing key is long enough")
}

// ---- decode targets ----

/// Decodes `data` as a client message; what decodes must survive a round trip.
///
/// # Panics
/// When a decoded message does not round-trip.
pub fn decode_client_message(data: &[u8]) {
    round_trip(data, ClientMessage::decode, ClientMessage::encode);
}

/// Decodes `data` as a server message; what decodes must survive a round trip.
///
/// # Panics
/// When a decoded message does not round-trip.
pub fn decode_server_message(data: &[u8]) {
    round_trip(data, ServerMessage::decode, ServerMessage::encode);
}

fn round_trip<M: PartialEq + Debug>(
    data: &[u8],
    decode: fn(&[u8]) -> Result<M, DecodeError>,
    encode: fn(&M) -> Vec<u8>,
) {
    let Ok(message) = decode(data) else { return };
    let bytes = encode(&message);
    // Defaults filled in on the way in (`"muted":false` on every roster entry) can
    // make a message that was just under the limit encode over it; that is the limit
    // working, not a broken round trip.
    if bytes.len() > MAX_MESSAGE_SIZE {
        return;
    }
    let again = decode(&bytes).unwrap_or_else(|e| {
        panic!(
            "{message:?} encodes to {:?}, which does not decode: {e}",
            String::from_utf8_lossy(&bytes)
        )
    });
    assert_eq!(message, again, "round trip changed the message");
    assert_eq!(bytes, encode(&again), "encoding is not canonical");
}

// ---- token target ----

/// Claims as the token format carries them, but of any value, so that tokens signed
/// with the right key reach the claim checks behind the signature.
#[derive(Debug, Arbitrary, serde::Serialize)]
struct AnyClaims {
    #[serde(skip_serializing_if = "Option::is_none")]
    v: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    scp: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
}

/// Verifies an arbitrary string as a token, or a token our key signed over arbitrary
/// claims, at an arbitrary time; verification must never panic, and what it accepts
/// must be valid at that time.
///
/// # Panics
/// When verification panics, or accepts a token outside its validity.
pub fn token_verify(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(signed) = u.arbitrary::<bool>() else {
        return;
    };
    let Ok(secs) = u.arbitrary::<u64>() else {
        return;
    };
    // Near the anchor most of the time, anywhere (even before the epoch) otherwise.
    let now = match secs % 4 {
        0 => SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs >> 2)),
        1 => SystemTime::UNIX_EPOCH.checked_sub(Duration::from_secs(secs >> 2)),
        _ => Some(wall_anchor() + Duration::from_secs(secs % 7200)),
    }
    .unwrap_or_else(wall_anchor);
    let key = key();
    let token = if signed {
        let Ok(claims) = AnyClaims::arbitrary_take_rest(u) else {
            return;
        };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(&KEY),
        )
        .expect("hs256 signing of plain claims cannot fail")
    } else {
        String::from_utf8_lossy(u.take_rest()).into_owned()
    };
    if let Ok(claims) = key.verify(&token, now) {
        assert!(
            claims.issued_at <= now && now < claims.expires_at,
            "accepted a token outside its validity at {now:?}: {claims:?}"
        );
    }
}

// ---- operations fuzzer ----

/// One run of the operations fuzzer: a controller setting and the operations.
#[derive(Debug, Clone, Arbitrary)]
pub struct Scenario {
    /// Calls of at most 3 participants instead of 350, so that `call_full` is reachable
    /// with the few identities there are.
    pub small_calls: bool,
    /// What the driver does, in order.
    pub ops: Vec<Op>,
}

/// Something the driver of a [`CallController`] does.
#[derive(Debug, Clone, Arbitrary)]
pub enum Op {
    /// Opens a fresh connection in slot `conn % 4` (closing the slot's open one first).
    Connect {
        /// The slot.
        conn: u8,
    },
    /// Closes the slot's connection (or tells again about the last one it had).
    Disconnect {
        /// The slot.
        conn: u8,
    },
    /// Sends `auth` with a token the controller's key issued.
    Auth {
        /// The slot.
        conn: u8,
        /// The user, `u{user % 8}`.
        user: u8,
        /// Scopes: bit 0 voip, bit 1 pstn.
        scopes: u8,
        /// Resume with the last resume token any connection of this user was given.
        resume: bool,
        /// Issue a token that expired an hour ago.
        expired: bool,
        /// The client kind.
        client: ClientKind,
    },
    /// Sends a message (usually refused: it names few calls and users at random).
    Message {
        /// The slot.
        conn: u8,
        /// The message.
        msg: ClientMessage,
    },
    /// Sends raw bytes.
    RawBytes {
        /// The slot.
        conn: u8,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Moves the clock and fires the timers that are due.
    AdvanceTime {
        /// How far, in milliseconds (up to 65 s: past every timeout).
        ms: u16,
    },
    /// The gateway reports on a leg of a running call; reports about users must be
    /// ignored by the controller.
    Gateway {
        /// The call, an index into the running calls.
        call: u8,
        /// The leg.
        target: Target,
        /// What happened.
        event: GatewayOp,
    },
    /// The media plane acts on a running call.
    MediaPlane {
        /// The call, an index into the running calls.
        call: u8,
        /// The participant.
        target: Target,
        /// What it does.
        action: MediaOp,
    },
}

/// A participant of a call, for the gateway and media plane operations.
#[derive(Debug, Clone, Arbitrary)]
pub enum Target {
    /// An index into the call's roster.
    Member(u8),
    /// Anyone, likely not in the call.
    Any(Identifier),
}

/// A [`GatewayEvent`].
#[derive(Debug, Clone, Arbitrary)]
pub enum GatewayOp {
    /// The far end rings.
    Ringing,
    /// The far end plays early media.
    EarlyMedia,
    /// The far end answered.
    Answered,
    /// The leg is over.
    Ended(EndReason),
}

/// What the media plane does.
#[derive(Debug, Clone, Arbitrary)]
pub enum MediaOp {
    /// Sends a negotiation payload to the participant.
    Payload(MediaPayload),
    /// Publishes dominant speakers.
    DominantSpeakers(Vec<Identifier>),
    /// Reports the participant's media failed.
    Failure,
}

/// What a run did, so that tests can check they reach the interesting states.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Operations replayed.
    pub ops: usize,
    /// Messages the controller sent.
    pub transmits: u64,
    /// Commands the controller issued.
    pub commands: u64,
    /// Sessions created (`authenticated{resumed:false}`).
    pub sessions: usize,
    /// Sessions resumed (`authenticated{resumed:true}`).
    pub resumes: usize,
    /// Most calls running at once.
    pub max_calls: usize,
    /// Most participants at once, over all calls.
    pub max_participants: usize,
}

/// Decodes a [`Scenario`] from `data` and replays it; the `controller_ops` target.
///
/// # Panics
/// When the controller breaks a rule checked by [`run_scenario`].
pub fn controller_ops(data: &[u8]) -> Report {
    match Scenario::arbitrary_take_rest(Unstructured::new(data)) {
        Ok(scenario) => run_scenario(&scenario),
        Err(_) => Report::default(),
    }
}

/// Replays `scenario` against a fresh [`CallController`], checking after every
/// operation what the [module docs](self) list.
///
/// # Panics
/// When a check fails; the message names the operation.
pub fn run_scenario(scenario: &Scenario) -> Report {
    let mut world = World::new(scenario.small_calls);
    for (index, op) in scenario.ops.iter().enumerate() {
        world.step(op, index);
    }
    world.report
}

/// `len` pseudo-random bytes from `seed`, for replaying the fuzzers on stable.
pub fn seeded_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        bytes.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// A scenario of `ops` operations from `seed`, for replaying the operations fuzzer on
/// stable.
///
/// Random bytes decoded as one [`Scenario`] give few, large operations (a message
/// with long strings eats the input), and uniformly random operations rarely get far:
/// a random clock step passes the 10 s auth timeout and the 30 s resume grace, and
/// half the tokens would be expired or lack the `voip` scope. libFuzzer's mutations
/// find their way past that; a seeded generator does not. So each operation here is
/// decoded from its own 32 bytes, and most clock steps, tokens and message targets are
/// tamed toward what gets calls going.
pub fn seeded_scenario(seed: u64, ops: usize) -> Scenario {
    let mut rng = Rng::new(seed);
    let mut chunk = [0u8; 32];
    let mut scenario = Scenario {
        small_calls: rng.next_u64() & 1 == 1,
        ops: Vec::with_capacity(ops),
    };
    for _ in 0..ops {
        for word in chunk.chunks_mut(8) {
            word.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        let Ok(mut op) = Op::arbitrary(&mut Unstructured::new(&chunk)) else {
            continue;
        };
        let dice = rng.next_u64();
        if dice.is_multiple_of(4) {
            op = Op::Message {
                conn: (dice >> 8) as u8,
                msg: call_message(dice >> 16),
            };
        } else if dice % 8 != 1 {
            match &mut op {
                Op::AdvanceTime { ms } => *ms %= 2000,
                Op::Auth {
                    scopes, expired, ..
                } => {
                    *scopes |= 1;
                    *expired = false;
                }
                _ => {}
            }
        }
        scenario.ops.push(op);
    }
    scenario
}

/// A call request on few calls and users (two groups, two 1:1 call ids), so that
/// seeded scenarios get calls going and act on them.
fn call_message(dice: u64) -> ClientMessage {
    use ClientMessage as M;
    let pick = |shift: u32, n: u64| (dice >> shift) % n;
    let group = GroupId::new(&format!("g{}", pick(0, 2))).expect("valid group id");
    let call_id = if pick(2, 2) == 0 {
        CallId::for_group(&group)
    } else {
        CallId::new(&format!("c{}", pick(3, 2))).expect("valid call id")
    };
    let target = match pick(5, 10) {
        0 => Identifier::EchoService,
        1 => Identifier::phone("+15550000001").expect("valid number"),
        n => Identifier::user(&format!("u{}", n % 8)).expect("valid user id"),
    };
    let options = JoinOptions {
        muted: pick(9, 2) == 0,
        video: pick(10, 2) == 0,
    };
    let video_kind = if pick(17, 2) == 0 {
        VideoKind::Camera
    } else {
        VideoKind::ScreenShare
    };
    // Mostly a few common sizes, sometimes none or one out of range.
    let size = match pick(18, 6) {
        0 => None,
        1 => Some(VideoSize::new(640, 360)),
        2 => Some(VideoSize::new(1280, 720)),
        3 => Some(VideoSize::new(720, 1280)),
        4 => Some(VideoSize::new(1920, 1080)),
        _ => Some(VideoSize::new(0, 720)),
    };
    match pick(11, 14) {
        0 | 1 => M::Join {
            group_id: group,
            options,
            lobby: pick(15, 4) == 0,
        },
        2 => M::StartCall {
            call_id: CallId::new(&format!("c{}", pick(3, 2))).expect("valid call id"),
            targets: vec![target],
            options,
            alternate_caller_id: None,
        },
        3 => M::Accept { call_id, options },
        4 => M::HangUp {
            call_id,
            for_everyone: pick(15, 4) == 0,
        },
        5 => M::Mute { call_id },
        6 => M::Hold { call_id },
        7 => M::Resume { call_id },
        8 => M::AddParticipant { call_id, target },
        9 => M::RemoveParticipant { call_id, target },
        10 => M::Admit { call_id, target },
        11 => M::StartVideo {
            call_id,
            kind: video_kind,
            size,
        },
        12 => M::StopVideo {
            call_id,
            kind: video_kind,
        },
        _ => M::Reject { call_id },
    }
}

/// The driver, gateway and media plane around one controller.
struct World {
    controller: CallController,
    key: TokenKey,
    wall: SystemTime,
    base: Instant,
    now: Instant,
    grace: Duration,
    max_participants: usize,
    /// The connection each slot has or last had, and whether it is open.
    slots: [Option<(ConnectionId, bool)>; SLOTS],
    next_connection: u64,
    open: BTreeSet<ConnectionId>,
    /// When connections closed, for the bound on detached sessions.
    closed_at: Vec<Instant>,
    /// The last resume token each user was given.
    resume_tokens: BTreeMap<UserId, String>,
    /// Operations that could authenticate a connection (`auth` in any form).
    auth_ops: usize,
    /// Operations that could start a call.
    call_ops: usize,
    report: Report,
}

impl World {
    fn new(small_calls: bool) -> Self {
        // The one clock read of a replay: the origin of its virtual time, which the
        // ops then advance. The controller itself never reads a clock.
        let base = Instant::now();
        let wall = wall_anchor();
        let key = key();
        let mut config = ControllerConfig::new(key.clone(), 7, base, wall);
        if small_calls {
            config.max_participants = 3;
        }
        World {
            grace: config.resume_grace,
            max_participants: config.max_participants,
            controller: CallController::new(config),
            key,
            wall,
            base,
            now: base,
            slots: [None; SLOTS],
            next_connection: 0,
            open: BTreeSet::new(),
            closed_at: Vec::new(),
            resume_tokens: BTreeMap::new(),
            auth_ops: 0,
            call_ops: 0,
            report: Report::default(),
        }
    }

    fn wall_now(&self) -> SystemTime {
        self.wall + self.now.duration_since(self.base)
    }

    /// The slot's connection: the open one, else the one it last had (the controller
    /// must ignore it), else a connection id never used.
    fn connection(&self, slot: u8) -> ConnectionId {
        let slot = usize::from(slot) % SLOTS;
        self.slots[slot].map_or(ConnectionId(u64::MAX - slot as u64), |(c, _)| c)
    }

    fn close(&mut self, connection: ConnectionId) {
        if self.open.remove(&connection) {
            self.closed_at.push(self.now);
        }
        for (c, open) in self.slots.iter_mut().flatten() {
            if *c == connection {
                *open = false;
            }
        }
    }

    fn step(&mut self, op: &Op, index: usize) {
        let live = self.open.clone();
        self.report.ops += 1;
        let now = self.now;
        match op {
            Op::Connect { conn } => {
                let slot = usize::from(*conn) % SLOTS;
                if let Some((old, true)) = self.slots[slot] {
                    self.controller.handle_disconnect(old, now);
                    self.close(old);
                }
                self.next_connection += 1;
                let connection = ConnectionId(self.next_connection);
                self.slots[slot] = Some((connection, true));
                self.open.insert(connection);
                self.controller.handle_connect(connection, now);
            }
            Op::Disconnect { conn } => {
                let connection = self.connection(*conn);
                self.controller.handle_disconnect(connection, now);
                self.close(connection);
            }
            Op::Auth {
                conn,
                user,
                scopes,
                resume,
                expired,
                client,
            } => {
                self.auth_ops += 1;
                let user = UserId::new(&format!("u{}", user % USERS)).expect("valid user id");
                let mut granted = Scopes::empty();
                if scopes & 1 != 0 {
                    granted.insert(Scope::Voip);
                }
                if scopes & 2 != 0 {
                    granted.insert(Scope::Pstn);
                }
                let hour = Duration::from_secs(3600);
                let issued = if *expired {
                    self.wall_now() - 2 * hour
                } else {
                    self.wall_now()
                };
                let token = self.key.issue(&user, granted, issued, hour);
                let resume = if *resume {
                    self.resume_tokens.get(&user).cloned()
                } else {
                    None
                };
                let message = ClientMessage::Auth {
                    token,
                    resume,
                    client: *client,
                };
                self.controller
                    .handle_message(self.connection(*conn), message, now);
            }
            Op::Message { conn, msg } => {
                match msg {
                    ClientMessage::Auth { .. } => self.auth_ops += 1,
                    ClientMessage::StartCall { .. } | ClientMessage::Join { .. } => {
                        self.call_ops += 1;
                    }
                    _ => {}
                }
                self.controller
                    .handle_message(self.connection(*conn), msg.clone(), now);
            }
            Op::RawBytes { conn, bytes } => {
                self.auth_ops += 1;
                self.call_ops += 1;
                let connection = self.connection(*conn);
                // Closed connections too: the controller must ignore them.
                self.controller.handle_bytes(connection, bytes, now);
            }
            Op::AdvanceTime { ms } => {
                self.now += Duration::from_millis(u64::from(*ms));
                self.controller.handle_timeout(self.now);
                if let Some(next) = self.controller.poll_timeout() {
                    assert!(
                        next > self.now,
                        "op {index}: a timer is due at {:?} after handle_timeout",
                        next.duration_since(self.base)
                    );
                }
            }
            Op::Gateway {
                call,
                target,
                event,
            } => {
                if let Some((call_id, target)) = self.pick(*call, target) {
                    let event = match event {
                        GatewayOp::Ringing => GatewayEvent::Ringing,
                        GatewayOp::EarlyMedia => GatewayEvent::EarlyMedia,
                        GatewayOp::Answered => GatewayEvent::Answered,
                        GatewayOp::Ended(reason) => GatewayEvent::Ended(reason.clone()),
                    };
                    self.controller
                        .handle_gateway_event(&call_id, &target, event, now);
                }
            }
            Op::MediaPlane {
                call,
                target,
                action,
            } => {
                if let Some((call_id, target)) = self.pick(*call, target) {
                    match action {
                        MediaOp::Payload(payload) => {
                            self.controller
                                .send_media(&call_id, &target, payload.clone());
                        }
                        MediaOp::DominantSpeakers(speakers) => {
                            self.controller
                                .set_dominant_speakers(&call_id, speakers.clone());
                        }
                        MediaOp::Failure => {
                            self.controller.handle_media_failure(&call_id, &target);
                        }
                    }
                }
            }
        }
        self.drain(&live, index);
        if let Err(broken) = self.controller.check_invariants() {
            panic!("op {index} ({op:?}) broke an invariant: {broken}");
        }
        self.check_bounds(index);
    }

    /// A running call and a participant, for the gateway and the media plane.
    fn pick(&self, call: u8, target: &Target) -> Option<(CallId, Identifier)> {
        let calls: Vec<CallId> = self.controller.calls().cloned().collect();
        let call_id = calls.get(usize::from(call) % calls.len().max(1))?.clone();
        let target = match target {
            Target::Member(i) => {
                let roster: Vec<Identifier> = self
                    .controller
                    .roster(&call_id)?
                    .into_iter()
                    .map(|p| p.id)
                    .collect();
                roster.get(usize::from(*i) % roster.len().max(1))?.clone()
            }
            Target::Any(id) => id.clone(),
        };
        Some((call_id, target))
    }

    /// Drains every output as a driver would, checking each.
    fn drain(&mut self, live: &BTreeSet<ConnectionId>, index: usize) {
        loop {
            let mut any = false;
            while let Some(transmit) = self.controller.poll_transmit() {
                any = true;
                self.check_transmit(&transmit, live, index);
            }
            while let Some(command) = self.controller.poll_command() {
                any = true;
                self.report.commands += 1;
                if let Command::Close { connection, .. } = command {
                    assert!(
                        live.contains(&connection) || self.open.contains(&connection),
                        "op {index}: close of {connection:?}, which is not open"
                    );
                    // The driver closes the transport, and says so like for any close.
                    self.controller.handle_disconnect(connection, self.now);
                    self.close(connection);
                }
            }
            if !any {
                break;
            }
        }
    }

    fn check_transmit(&mut self, transmit: &Transmit, live: &BTreeSet<ConnectionId>, index: usize) {
        self.report.transmits += 1;
        assert!(
            live.contains(&transmit.connection) || self.open.contains(&transmit.connection),
            "op {index}: {transmit:?} goes to a connection that is not open"
        );
        let bytes = transmit.message.encode();
        assert!(
            bytes.len() <= MAX_MESSAGE_SIZE,
            "op {index}: {} message of {} bytes",
            transmit.message.kind(),
            bytes.len()
        );
        match ServerMessage::decode(&bytes) {
            Ok(decoded) => assert_eq!(
                decoded, transmit.message,
                "op {index}: a transmit does not round-trip"
            ),
            Err(e) => panic!("op {index}: {transmit:?} does not decode: {e}"),
        }
        if let ServerMessage::Authenticated {
            user,
            resume_token,
            resumed,
            ..
        } = &transmit.message
        {
            if *resumed {
                self.report.resumes += 1;
            } else {
                self.report.sessions += 1;
            }
            let user = user
                .as_user()
                .unwrap_or_else(|| panic!("op {index}: authenticated as {user}, not a user"));
            self.resume_tokens
                .insert(user.clone(), resume_token.clone());
        }
    }

    fn check_bounds(&mut self, index: usize) {
        let stats = self.controller.stats();
        self.report.max_calls = self.report.max_calls.max(stats.calls);
        self.report.max_participants = self.report.max_participants.max(stats.participants);
        let at = |what: &str| format!("op {index}: {what}; {stats:?}");
        assert_eq!(
            stats.connections,
            self.open.len(),
            "{}",
            at("the controller keeps other connections than the driver has open")
        );
        assert!(
            stats.sessions <= self.report.sessions,
            "{}",
            at("more sessions than were announced")
        );
        assert!(
            self.report.sessions <= self.auth_ops,
            "{}",
            at("more sessions announced than auth operations")
        );
        let grace = self.grace;
        let now = self.now;
        self.closed_at.retain(|at| *at + grace > now);
        assert!(
            stats.sessions <= self.open.len() + self.closed_at.len(),
            "{}",
            at("a detached session outlived its grace period")
        );
        assert!(
            stats.calls <= self.call_ops,
            "{}",
            at("more calls than operations that start one")
        );
        assert!(
            stats.participants <= stats.calls * IDENTITIES.min(self.max_participants),
            "{}",
            at("more participants than calls can hold")
        );
    }
}
