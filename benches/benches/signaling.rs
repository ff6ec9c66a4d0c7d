//! Costs of the signaling cores: what one message costs the call controller, what a
//! join costs as the room grows, message encoding, and a client handling an update.
//!
//! Every controller and session bench drains all outputs inside the measured section:
//! fan-out is the real cost. Tokens are real HS256 tokens from a [`TokenKey`]. The
//! whole file runs in well under a minute (`cargo bench -p ringwire-benches`).

// criterion_group! defines an undocumented `pub fn benches`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ringwire_signaling::controller::{CallController, ConnectionId, ControllerConfig};
use ringwire_signaling::{
    CallId, CallState, ClientMessage, ClientSession, GroupId, Identifier, JoinOptions,
    ParticipantInfo, ParticipantState, Scope, Scopes, ServerMessage, SessionConfig, TokenKey,
    UserId, VideoKind,
};

/// Room sizes: a 1:1-sized room, a meeting, and the default participant limit.
const SIZES: [usize; 3] = [2, 50, 350];

fn key() -> TokenKey {
    TokenKey::new(&[7; 32]).expect("32 bytes is a strong enough key")
}

fn wall() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn user(i: usize) -> UserId {
    UserId::new(&format!("user-{i:04}")).expect("valid user id")
}

fn token(key: &TokenKey, i: usize) -> String {
    let scopes = Scopes::from(Scope::Voip).with(Scope::Pstn);
    key.issue(&user(i), scopes, wall(), Duration::from_secs(3600))
}

fn group() -> GroupId {
    GroupId::new("all-hands").expect("valid group id")
}

/// Polls every output of the controller; returns how many there were.
fn drain(controller: &mut CallController) -> usize {
    let mut n = 0;
    while let Some(t) = controller.poll_transmit() {
        black_box(t);
        n += 1;
    }
    while let Some(c) = controller.poll_command() {
        black_box(c);
        n += 1;
    }
    n
}

/// A controller whose group call has `n` participants, each on its own connection
/// (`ConnectionId(i)` for user `i`), plus `spare` authenticated users not in the call.
fn room(n: usize, spare: usize) -> (CallController, Instant) {
    let key = key();
    let now = Instant::now();
    let mut controller = CallController::new(ControllerConfig::new(key.clone(), 1, now, wall()));
    for i in 0..n + spare {
        let conn = ConnectionId(i as u64);
        controller.handle_connect(conn, now);
        let auth = ClientMessage::Auth {
            token: token(&key, i),
            resume: None,
            client: Default::default(),
        };
        controller.handle_message(conn, auth, now);
        drain(&mut controller);
    }
    for i in 0..n {
        let join = ClientMessage::Join {
            group_id: group(),
            options: JoinOptions::default(),
            lobby: false,
        };
        controller.handle_message(ConnectionId(i as u64), join, now);
        drain(&mut controller);
    }
    let roster = controller.roster(&CallId::for_group(&group()));
    assert_eq!(roster.map(|r| r.len()), Some(n), "everyone joined");
    (controller, now)
}

/// One message (mute, then unmute, alternating) from a participant of a room of N,
/// with its fan-out to the other N-1.
fn controller_message(c: &mut Criterion) {
    let mut g = c.benchmark_group("controller/mute_toggle");
    g.throughput(Throughput::Elements(1));
    let call_id = CallId::for_group(&group());
    for n in SIZES {
        let (mut controller, now) = room(n, 0);
        let mut muted = false;
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                muted = !muted;
                let call_id = call_id.clone();
                let msg = if muted {
                    ClientMessage::Mute { call_id }
                } else {
                    ClientMessage::Unmute { call_id }
                };
                controller.handle_message(ConnectionId(0), msg, now);
                drain(&mut controller)
            });
        });
    }
    g.finish();
}

/// The N-th participant joins a group call of N-1: its roster, the others'
/// `participant` messages and the media command.
///
/// Only the join is timed. Building a 349-person room for every iteration (criterion's
/// `iter_batched`) would run the setup thousands of times; instead the joiner hangs
/// up, untimed, after each join, which leaves the room as it was.
fn controller_join(c: &mut Criterion) {
    let mut g = c.benchmark_group("controller/join");
    g.throughput(Throughput::Elements(1));
    let call_id = CallId::for_group(&group());
    for n in SIZES {
        let (mut controller, now) = room(n - 1, 1);
        let joiner = ConnectionId((n - 1) as u64);
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let join = ClientMessage::Join {
                        group_id: group(),
                        options: JoinOptions::default(),
                        lobby: false,
                    };
                    let start = Instant::now();
                    controller.handle_message(joiner, join, now);
                    black_box(drain(&mut controller));
                    timed += start.elapsed();
                    let leave = ClientMessage::HangUp {
                        call_id: call_id.clone(),
                        for_everyone: false,
                    };
                    controller.handle_message(joiner, leave, now);
                    drain(&mut controller);
                }
                timed
            });
        });
    }
    g.finish();
}

fn participant(i: usize) -> ParticipantInfo {
    ParticipantInfo {
        id: Identifier::User(user(i)),
        state: ParticipantState::Connected,
        muted: i.is_multiple_of(3),
        speaking: false,
        video: if i.is_multiple_of(4) {
            vec![VideoKind::Camera.into()]
        } else {
            Vec::new()
        },
        end_reason: None,
    }
}

/// Encoding and decoding a typical message (a participant update, the most common
/// fan-out) and a 350-participant roster.
fn codec(c: &mut Criterion) {
    let call_id = CallId::for_group(&group());
    let messages = [
        (
            "participant",
            ServerMessage::Participant {
                call_id: call_id.clone(),
                participant: participant(7),
            },
        ),
        (
            "roster_350",
            ServerMessage::Roster {
                call_id: call_id.clone(),
                participants: (0..350).map(participant).collect(),
            },
        ),
    ];
    let mut g = c.benchmark_group("codec");
    for (name, message) in &messages {
        let bytes = message.encode();
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(BenchmarkId::new("encode", name), |b| {
            b.iter(|| black_box(message).encode());
        });
        g.bench_function(BenchmarkId::new("decode", name), |b| {
            b.iter(|| ServerMessage::decode(black_box(&bytes)).expect("decodes"));
        });
    }
    g.finish();
}

/// A client in a group call of N handles one `participant` update (a mute toggle of
/// someone in the roster) and the app drains the event.
fn session_update(c: &mut Criterion) {
    let mut g = c.benchmark_group("session/participant_update");
    g.throughput(Throughput::Elements(1));
    let key = key();
    let call_id = CallId::for_group(&group());
    for n in SIZES {
        let now = Instant::now();
        let mut session = ClientSession::new(SessionConfig::new(token(&key, 0), 1), now);
        session.handle_connected(now);
        let setup = [
            ServerMessage::Authenticated {
                user: Identifier::User(user(0)),
                resume_token: "0123456789abcdef0123456789abcdef".to_owned(),
                grace_ms: 30_000,
                resumed: false,
            },
            ServerMessage::CallState {
                call_id: call_id.clone(),
                state: CallState::Connected,
                end_reason: None,
            },
            ServerMessage::Roster {
                call_id: call_id.clone(),
                participants: (1..n).map(participant).collect(),
            },
        ];
        session.handle_message(setup[0].clone(), now).expect("auth");
        session
            .join(&group(), JoinOptions::default(), false, now)
            .expect("join");
        for message in &setup[1..] {
            session.handle_message(message.clone(), now).expect("setup");
        }
        while session.poll_transmit().is_some() {}
        while session.poll_event().is_some() {}
        let roster_len = session
            .call(&call_id)
            .map(|c| c.remote_participants().count());
        assert_eq!(roster_len, Some(n - 1), "the roster is in");

        let mut update = participant(n / 2);
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                update.muted = !update.muted;
                let message = ServerMessage::Participant {
                    call_id: call_id.clone(),
                    participant: update.clone(),
                };
                session.handle_message(message, now).expect("update");
                let mut events = 0;
                while let Some(event) = session.poll_event() {
                    black_box(event);
                    events += 1;
                }
                events
            });
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = controller_message, controller_join, codec, session_update
}
criterion_main!(benches);
