//! End to end: the real server on loopback (ephemeral ports, temp data dir, 1 s ring
//! timeout, 2 s resume grace) and real native `SignalingClient`s, every scenario over
//! WebSocket and over QUIC. Timeouts here only guard against hangs; no assertion
//! depends on timing.

#![allow(clippy::unwrap_used)] // Scenario helpers outside #[test] fns unwrap too.

use std::time::Duration;

#[path = "support/harness.rs"]
mod harness;

use harness::{GUARD, Harness, Kind, connected_pair};
use ringwire_signaling::{
    CallState, ConnectionState, EndReason, Event, Identifier, JoinOptions, ParticipantState,
};

/// Runs a scenario over each transport as its own test.
macro_rules! both_transports {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn websocket() {
                super::$name(super::Kind::Ws).await;
            }
            #[tokio::test]
            async fn quic() {
                super::$name(super::Kind::Quic).await;
            }
        }
    )*};
}

both_transports!(
    one_to_one_accepted,
    one_to_one_rejected,
    one_to_one_timed_out,
    one_to_one_cancelled,
    group_of_ten_with_promotion_hold_mute_remove,
    reconnect_within_grace,
    reconnect_after_grace,
    shutdown_says_goodbye,
);

async fn one_to_one_accepted(kind: Kind) {
    let mut h = Harness::start().await;
    let mut alice = h.client(kind, "alice").await;
    let mut bob = h.client(kind, "bob").await;
    let call = connected_pair(&mut alice, &mut bob).await;
    let snapshot = alice.handle.call(&call).await.unwrap().unwrap();
    assert_eq!(snapshot.state(), CallState::Connected);
    assert_eq!(
        snapshot.participant(&bob.id).map(|p| p.state()),
        Some(ParticipantState::Connected)
    );

    alice.handle.hang_up(&call, false).await.unwrap();
    assert_eq!(
        alice.expect_state(&call, CallState::Disconnected).await,
        Some(EndReason::normal())
    );
    assert_eq!(
        bob.expect_left(&call, &alice.id).await,
        Some(EndReason::normal())
    );
    assert_eq!(
        bob.expect_state(&call, CallState::Disconnected).await,
        Some(EndReason::remote_hung_up())
    );
    h.server.shut_down().await;
}

async fn one_to_one_rejected(kind: Kind) {
    let mut h = Harness::start().await;
    let mut alice = h.client(kind, "alice").await;
    let mut bob = h.client(kind, "bob").await;
    let call = alice
        .handle
        .start_call(std::slice::from_ref(&bob.id), JoinOptions::default())
        .await
        .unwrap();
    assert_eq!(bob.expect_incoming().await, call);
    bob.handle.reject(&call).await.unwrap();
    let reason = alice.expect_state(&call, CallState::Disconnected).await;
    assert_eq!(reason.map(|r| r.code), Some(603));
    let reason = bob.expect_state(&call, CallState::Disconnected).await;
    assert_eq!(reason.map(|r| r.code), Some(603));
    h.server.shut_down().await;
}

async fn one_to_one_timed_out(kind: Kind) {
    let mut h = Harness::start().await;
    let mut alice = h.client(kind, "alice").await;
    let mut bob = h.client(kind, "bob").await;
    let call = alice
        .handle
        .start_call(std::slice::from_ref(&bob.id), JoinOptions::default())
        .await
        .unwrap();
    assert_eq!(bob.expect_incoming().await, call);
    // Nobody answers: the server's 1 s ring timeout ends it.
    let reason = alice.expect_state(&call, CallState::Disconnected).await;
    assert_eq!(reason, Some(EndReason::no_answer()));
    assert_eq!(reason.map(|r| r.code), Some(408));
    let reason = bob.expect_state(&call, CallState::Disconnected).await;
    assert_eq!(reason.map(|r| r.code), Some(408));
    h.server.shut_down().await;
}

async fn one_to_one_cancelled(kind: Kind) {
    let mut h = Harness::start().await;
    let mut alice = h.client(kind, "alice").await;
    let mut bob = h.client(kind, "bob").await;
    let call = alice
        .handle
        .start_call(std::slice::from_ref(&bob.id), JoinOptions::default())
        .await
        .unwrap();
    assert_eq!(bob.expect_incoming().await, call);
    alice.expect_state(&call, CallState::Ringing).await;
    alice.handle.hang_up(&call, false).await.unwrap();
    let reason = bob.expect_state(&call, CallState::Disconnected).await;
    assert_eq!(reason, Some(EndReason::cancelled()));
    assert_eq!(reason.map(|r| r.code), Some(487));
    let reason = alice.expect_state(&call, CallState::Disconnected).await;
    assert_eq!(reason.map(|r| r.code), Some(0));
    h.server.shut_down().await;
}

async fn group_of_ten_with_promotion_hold_mute_remove(kind: Kind) {
    const NAMES: [&str; 10] = [
        "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
    ];
    let mut h = Harness::start().await;
    let mut clients = Vec::new();
    for name in NAMES {
        clients.push(h.client(kind, name).await);
    }
    let (first, rest) = clients.split_at_mut(2);
    let [alice, bob] = first else { unreachable!() };
    let call = connected_pair(alice, bob).await;

    // Adding a third participant promotes the 1:1 call; then the rest join the same way.
    for invitee in rest.iter_mut() {
        alice
            .handle
            .add_participant(&call, &invitee.id)
            .await
            .unwrap();
        assert_eq!(invitee.expect_incoming().await, call);
        invitee
            .handle
            .accept(&call, JoinOptions::default())
            .await
            .unwrap();
        invitee.expect_state(&call, CallState::Connected).await;
        let id = invitee.id.clone();
        for other in [&mut *alice, &mut *bob] {
            other
                .expect_participant(&call, &id, "connected", |p| {
                    p.state == ParticipantState::Connected
                })
                .await;
        }
    }
    // Everyone sees the nine others connected.
    for client in clients.iter_mut() {
        let id = client.id.clone();
        for other in NAMES.iter().map(|n| Identifier::user(n).unwrap()) {
            if other == id {
                continue;
            }
            let seen = client
                .handle
                .call(&call)
                .await
                .unwrap()
                .and_then(|c| c.participant(&other).map(|p| p.state()));
            // Already shown connected (the event may have been skipped meanwhile)?
            if seen != Some(ParticipantState::Connected) {
                client
                    .expect_participant(&call, &other, "connected", |p| {
                        p.state == ParticipantState::Connected
                    })
                    .await;
            }
        }
        assert_eq!(client.state(&call).await, CallState::Connected);
    }

    let (alice_id, bob_id, carol_id) = (
        clients[0].id.clone(),
        clients[1].id.clone(),
        clients[2].id.clone(),
    );

    // Hold: alice holds, everyone else sees her on hold.
    clients[0].handle.hold(&call).await.unwrap();
    clients[0].expect_state(&call, CallState::LocalHold).await;
    for other in clients.iter_mut().skip(1) {
        other
            .expect_participant(&call, &alice_id, "on hold", |p| {
                p.state == ParticipantState::Hold
            })
            .await;
    }
    clients[0].handle.resume(&call).await.unwrap();
    clients[0].expect_state(&call, CallState::Connected).await;

    // Mute: bob mutes, everyone else sees it.
    clients[1].handle.mute(&call).await.unwrap();
    clients[1]
        .expect("bob's own mute", |e| {
            matches!(e, Event::MuteChanged { muted: true, .. }).then_some(())
        })
        .await;
    for (i, other) in clients.iter_mut().enumerate() {
        if i == 1 {
            continue;
        }
        other
            .expect_participant(&call, &bob_id, "muted", |p| p.muted)
            .await;
    }

    // Remove: alice removes carol.
    clients[0]
        .handle
        .remove_participant(&call, &carol_id)
        .await
        .unwrap();
    let reason = clients[2]
        .expect_state(&call, CallState::Disconnected)
        .await;
    assert_eq!(reason, Some(EndReason::removed()));
    for (i, other) in clients.iter_mut().enumerate() {
        if i == 2 {
            continue;
        }
        assert_eq!(
            other.expect_left(&call, &carol_id).await,
            Some(EndReason::removed())
        );
    }
    // Bob leaves; a group call goes on for the others.
    clients[1].handle.hang_up(&call, false).await.unwrap();
    clients[1]
        .expect_state(&call, CallState::Disconnected)
        .await;
    clients[0].expect_left(&call, &bob_id).await;
    assert_eq!(clients[0].state(&call).await, CallState::Connected);
    h.server.shut_down().await;
}

async fn reconnect_within_grace(kind: Kind) {
    let mut h = Harness::start().await;
    let mut alice = h.client(kind, "alice").await;
    let mut bob = h.client(kind, "bob").await;
    let call = connected_pair(&mut alice, &mut bob).await;

    let mut state = alice.handle.watch_connection_state();
    alice.handle.drop_transport(Duration::ZERO).await.unwrap();
    let resumed = alice
        .expect("authenticated again", |e| match e {
            Event::Authenticated { resumed, .. } => Some(*resumed),
            _ => None,
        })
        .await;
    assert!(resumed, "the session was resumed");
    tokio::time::timeout(GUARD, state.wait_for(|s| *s == ConnectionState::Connected))
        .await
        .expect("connected again in time")
        .unwrap();
    assert_eq!(alice.state(&call).await, CallState::Connected);

    // The call goes on: a round trip through the server proves it.
    alice.handle.mute(&call).await.unwrap();
    let alice_id = alice.id.clone();
    bob.expect_participant(&call, &alice_id, "muted", |p| p.muted)
        .await;
    assert!(
        !bob.all_seen()
            .iter()
            .any(|e| matches!(e, Event::ParticipantRemoved { .. })),
        "bob never saw alice leave"
    );
    assert_eq!(bob.state(&call).await, CallState::Connected);
    h.server.shut_down().await;
}

async fn reconnect_after_grace(kind: Kind) {
    let mut h = Harness::start().await;
    let mut alice = h.client(kind, "alice").await;
    let mut bob = h.client(kind, "bob").await;
    let call = connected_pair(&mut alice, &mut bob).await;

    // Away for longer than the 2 s grace period.
    alice
        .handle
        .drop_transport(Duration::from_secs(3))
        .await
        .unwrap();
    let alice_id = alice.id.clone();
    assert_eq!(
        bob.expect_left(&call, &alice_id).await,
        Some(EndReason::connection_lost())
    );
    bob.expect_state(&call, CallState::Disconnected).await;

    let resumed = alice
        .expect("authenticated again", |e| match e {
            Event::Authenticated { resumed, .. } => Some(*resumed),
            _ => None,
        })
        .await;
    assert!(!resumed, "a fresh session after the grace period");
    assert_eq!(
        alice.expect_state(&call, CallState::Disconnected).await,
        Some(EndReason::connection_lost())
    );
    h.server.shut_down().await;
}

async fn shutdown_says_goodbye(kind: Kind) {
    let mut h = Harness::start().await;
    let mut alice = h.client(kind, "alice").await;
    let mut bob = h.client(kind, "bob").await;
    let call = connected_pair(&mut alice, &mut bob).await;

    let stopping = tokio::spawn(async move { h.server.shut_down().await });
    for client in [&mut alice, &mut bob] {
        let reason = client
            .expect("goodbye", |e| match e {
                Event::Goodbye { reason } => Some(reason.clone()),
                _ => None,
            })
            .await;
        assert_eq!(reason, EndReason::shutting_down());
        // The call ended with the same reason (the server ends calls, then says goodbye).
        let ended = client.all_seen().into_iter().any(|e| {
            e == Event::CallStateChanged {
                call_id: call.clone(),
                state: CallState::Disconnected,
                end_reason: Some(EndReason::shutting_down()),
            }
        });
        assert!(ended, "{}: the call ended with shutting_down", client.name);
        // The client stops for good: its events end and it does not reconnect.
        let name = client.name;
        let ended = tokio::time::timeout(GUARD, async {
            while client.events.recv().await.is_some() {}
        })
        .await;
        assert!(ended.is_ok(), "{name}: events end after goodbye");
        assert_eq!(
            client.handle.connection_state(),
            ConnectionState::Disconnected
        );
    }
    tokio::time::timeout(GUARD, stopping)
        .await
        .expect("server stops in time")
        .unwrap();
}
