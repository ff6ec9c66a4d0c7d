//! Bad input from the network gets a typed error; the sender's connection, the other
//! participants and their call carry on.
#![allow(clippy::unwrap_used)] // Scenario helpers outside #[test] fns unwrap too.

use std::time::Duration;

use ringwire_signaling::controller::ConnectionId;
use ringwire_signaling::session::Event;
use ringwire_signaling::token::{Scopes, TokenKey};
use ringwire_signaling::{
    CallId, CallState, ClientMessage, EndReason, ErrorCode, ServerMessage, UserId,
};
use ringwire_testkit::signaling::{ClientIdx, SignalingWorld};
use ringwire_testkit::{Seed, Sim};

/// Two users in a connected 1:1 call, and a third, `mallory`, connected.
fn call_in_progress() -> (Sim<SignalingWorld>, ClientIdx, ClientIdx, ClientIdx, CallId) {
    let seed = Seed::new(99);
    let world = SignalingWorld::builder(seed).build();
    let mut sim = Sim::with_clock(world.clock(), seed, world);
    let a = sim.act(|w, n| w.add_user("alice", n));
    let b = sim.act(|w, n| w.add_user("bob", n));
    let m = sim.act(|w, n| w.add_user("mallory", n));
    sim.settle();
    let b_id = sim.world().id(b);
    let call = sim
        .act(|w, n| w.session_mut(a).start_call(&[b_id], Default::default(), n))
        .unwrap();
    sim.settle();
    sim.act(|w, n| w.session_mut(b).accept(&call, Default::default(), n))
        .unwrap();
    sim.settle();
    (sim, a, b, m, call)
}

fn failures(sim: &Sim<SignalingWorld>, who: ClientIdx) -> Vec<ErrorCode> {
    sim.world()
        .events(who)
        .iter()
        .filter_map(|e| match e {
            Event::RequestFailed { code, .. } => Some(*code),
            _ => None,
        })
        .collect()
}

fn undisturbed(sim: &mut Sim<SignalingWorld>, a: ClientIdx, b: ClientIdx, call: &CallId) {
    for who in [a, b] {
        assert_eq!(
            sim.world().call_state(who, call),
            Some(CallState::Connected)
        );
        assert!(failures(sim, who).is_empty(), "a bystander saw an error");
    }
    // The call still works: a mute reaches the other side.
    sim.act(|w, n| w.session_mut(a).mute(call, n)).unwrap();
    sim.settle();
    let a_id = sim.world().id(a);
    assert!(
        sim.world()
            .session(b)
            .call(call)
            .unwrap()
            .participant(&a_id)
            .unwrap()
            .is_muted()
    );
    sim.world().controller.check_invariants().unwrap();
}

#[test]
fn garbage_gets_typed_errors_and_changes_nothing() {
    let (mut sim, a, b, m, call) = call_in_progress();
    let cases: [(&[u8], ErrorCode); 6] = [
        (b"not json", ErrorCode::Malformed),
        (b"[1,2,3]", ErrorCode::Malformed),
        (br#"{"v":1,"type":"teleport"}"#, ErrorCode::UnknownType),
        (
            br#"{"v":9,"type":"ping","seq":1}"#,
            ErrorCode::UnsupportedVersion,
        ),
        (
            br#"{"v":1,"type":"mute","call_id":"bad id!"}"#,
            ErrorCode::Malformed,
        ),
        (br#"{"v":1,"type":"hang_up"}"#, ErrorCode::Malformed),
    ];
    for (bytes, _) in &cases {
        sim.act(|w, n| w.send_raw(m, bytes.to_vec(), n));
    }
    let huge = format!(
        r#"{{"v":1,"type":"ping","seq":1,"pad":"{}"}}"#,
        "x".repeat(300 * 1024)
    );
    sim.act(|w, n| w.send_raw(m, huge.into_bytes(), n));
    sim.settle();
    let mut expected: Vec<ErrorCode> = cases.iter().map(|(_, c)| *c).collect();
    expected.push(ErrorCode::TooLarge);
    assert_eq!(failures(&sim, m), expected);
    // Mallory's connection is still usable.
    sim.act(|w, n| w.send_message(m, &ClientMessage::Ping { seq: 5 }, n));
    sim.settle();
    assert_eq!(
        sim.world().controller.stats().errors.values().sum::<u64>(),
        7
    );
    undisturbed(&mut sim, a, b, &call);
}

#[test]
fn requests_about_other_peoples_calls_are_refused() {
    let (mut sim, a, b, m, call) = call_in_progress();
    let a_id = sim.world().id(a);
    let attempts = [
        ClientMessage::HangUp {
            call_id: call.clone(),
            for_everyone: true,
        },
        ClientMessage::Accept {
            call_id: call.clone(),
            options: Default::default(),
        },
        ClientMessage::RemoveParticipant {
            call_id: call.clone(),
            target: a_id.clone(),
        },
        ClientMessage::AddParticipant {
            call_id: call.clone(),
            target: a_id,
        },
        ClientMessage::Mute {
            call_id: call.clone(),
        },
        // Starting a call with someone else's id must not touch their call.
        ClientMessage::StartCall {
            call_id: call.clone(),
            targets: vec![sim.world().id(a)],
            options: Default::default(),
            alternate_caller_id: None,
        },
    ];
    for msg in &attempts {
        sim.act(|w, n| w.send_message(m, msg, n));
    }
    sim.settle();
    assert_eq!(failures(&sim, m).len(), 5, "{:?}", failures(&sim, m));
    undisturbed(&mut sim, a, b, &call);
}

#[test]
fn messages_before_auth_and_bad_tokens() {
    let seed = Seed::new(5);
    let world = SignalingWorld::builder(seed).build();
    let mut sim = Sim::with_clock(world.clock(), seed, world);
    // A key other than the server's.
    let key = TokenKey::new(&[1; 32]).unwrap();
    let now = sim.now();
    let wall = sim.world().wall_at(now);
    let conn = ringwire_signaling::controller::ConnectionId(10_000);
    let ctl = &mut sim.world_mut().controller;
    ctl.handle_connect(conn, now);
    ctl.handle_message(
        conn,
        ClientMessage::Mute {
            call_id: CallId::new("x").unwrap(),
        },
        now,
    );
    let wrong_key = key.issue(
        &UserId::new("eve").unwrap(),
        Scopes::all(),
        wall,
        Duration::from_secs(60),
    );
    ctl.handle_message(
        conn,
        ClientMessage::Auth {
            token: wrong_key,
            resume: None,
            client: Default::default(),
        },
        now,
    );
    let mut codes = Vec::new();
    let mut closed = false;
    while let Some(t) = ctl.poll_transmit() {
        if let ringwire_signaling::ServerMessage::Error { code, .. } = t.message {
            codes.push(code);
        }
    }
    while let Some(c) = ctl.poll_command() {
        closed |= matches!(c, ringwire_signaling::controller::Command::Close { connection, .. } if connection == conn);
    }
    assert_eq!(
        codes,
        [ErrorCode::NotAuthenticated, ErrorCode::InvalidToken]
    );
    assert!(closed, "a connection with a bad token must be closed");
}

#[test]
fn tokens_expire_in_virtual_time_and_scopes_are_enforced() {
    let seed = Seed::new(6);
    let world = SignalingWorld::builder(seed).build();
    let mut sim = Sim::with_clock(world.clock(), seed, world);
    let now = sim.now();
    let token = sim.world().token("late", Scopes::all(), now);
    // The world's tokens live an hour; two hours later they are refused as expired.
    sim.run_for(Duration::from_secs(2 * 3600));
    let now = sim.now();
    let no_voip = sim.world().token("noscope", Scopes::empty(), now);
    let ctl = &mut sim.world_mut().controller;
    let (c1, c2) = (
        ringwire_signaling::controller::ConnectionId(1_000),
        ringwire_signaling::controller::ConnectionId(1_001),
    );
    ctl.handle_connect(c1, now);
    ctl.handle_connect(c2, now);
    ctl.handle_message(
        c1,
        ClientMessage::Auth {
            token,
            resume: None,
            client: Default::default(),
        },
        now,
    );
    ctl.handle_message(
        c2,
        ClientMessage::Auth {
            token: no_voip,
            resume: None,
            client: Default::default(),
        },
        now,
    );
    let mut codes = Vec::new();
    while let Some(t) = ctl.poll_transmit() {
        if let ringwire_signaling::ServerMessage::Error { code, .. } = t.message {
            codes.push((t.connection, code));
        }
    }
    while ctl.poll_command().is_some() {}
    assert_eq!(
        codes,
        [(c1, ErrorCode::TokenExpired), (c2, ErrorCode::MissingScope)]
    );
}

#[test]
fn unauthenticated_connections_are_closed_after_the_auth_timeout() {
    let seed = Seed::new(8);
    let world = SignalingWorld::builder(seed).build();
    let mut sim = Sim::with_clock(world.clock(), seed, world);
    let now = sim.now();
    let conn = ringwire_signaling::controller::ConnectionId(77);
    sim.world_mut().controller.handle_connect(conn, now);
    let deadline = sim.world_mut().controller.poll_timeout().unwrap();
    assert_eq!(deadline - now, Duration::from_secs(10));
    sim.world_mut().controller.handle_timeout(deadline);
    let closed = std::iter::from_fn(|| sim.world_mut().controller.poll_command())
        .any(|c| matches!(c, ringwire_signaling::controller::Command::Close { connection, .. } if connection == conn));
    assert!(closed);
    assert_eq!(sim.world().controller.stats().connections, 0);
}

#[test]
fn revoking_an_identity_ends_its_sessions_and_refuses_old_tokens() {
    let (mut sim, a, b, _m, call) = call_in_progress();
    let alice = UserId::new("alice").unwrap();
    let old_token = sim.world().token("alice", Scopes::all(), sim.now());
    sim.run_for(Duration::from_secs(5));
    let at = sim.world().wall_at(sim.now());
    sim.act(|w, n| w.controller.revoke(&alice, at, n));
    sim.settle();
    assert!(
        sim.world()
            .events(a)
            .iter()
            .any(|e| matches!(e, Event::Goodbye { reason } if *reason == EndReason::revoked()))
    );
    let a_id = sim.world().id(a);
    let left = sim.world().events(b).iter().any(|e| {
        matches!(e, Event::ParticipantRemoved { id, reason: Some(r), .. } if *id == a_id && *r == EndReason::revoked())
    });
    assert!(left, "bob was not told why alice left");
    assert_eq!(
        sim.world().call_state(b, &call),
        Some(CallState::Disconnected),
        "a 1:1 call ends with its peer"
    );

    // Tokens from before the revocation are refused; a new one works.
    sim.run_for(Duration::from_secs(5));
    let now = sim.now();
    let new_token = sim.world().token("alice", Scopes::all(), now);
    let ctl = &mut sim.world_mut().controller;
    let (c1, c2) = (ConnectionId(500), ConnectionId(501));
    for (c, token) in [(c1, old_token), (c2, new_token)] {
        ctl.handle_connect(c, now);
        ctl.handle_message(
            c,
            ClientMessage::Auth {
                token,
                resume: None,
                client: Default::default(),
            },
            now,
        );
    }
    let mut answers = Vec::new();
    while let Some(t) = ctl.poll_transmit() {
        answers.push((t.connection, t.message.kind(), t.message));
    }
    while ctl.poll_command().is_some() {}
    assert!(
        matches!(&answers[0], (c, _, ServerMessage::Error { code: ErrorCode::TokenRevoked, .. }) if *c == c1),
        "{answers:?}"
    );
    assert_eq!((answers[1].0, answers[1].1), (c2, "authenticated"));
    ctl.check_invariants().unwrap();
}

#[test]
fn connections_per_identity_are_capped() {
    let seed = Seed::new(9);
    let world = SignalingWorld::builder(seed)
        .configure(|c| c.max_sessions_per_user = 2)
        .build();
    let mut sim = Sim::with_clock(world.clock(), seed, world);
    let devices: Vec<_> = (0..3)
        .map(|_| sim.act(|w, n| w.add_user("alice", n)))
        .collect();
    sim.settle();
    assert!(failures(&sim, devices[0]).is_empty());
    assert!(failures(&sim, devices[1]).is_empty());
    assert_eq!(failures(&sim, devices[2]), [ErrorCode::TooManyConnections]);
    assert_eq!(sim.world().controller.stats().sessions, 2);
}
