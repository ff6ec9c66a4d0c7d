//! Seed row: a group call with a lobby: later joiners wait `InLobby`, members see them
//! there, admitting connects them with the roster, removing refuses them.

mod common;

use common::*;
use ringwire_signaling::{
    CallState, ClientMessage, EndReason, ErrorCode, JoinOptions, ParticipantState,
};
use ringwire_testkit::{Seed, for_each_seed};

#[test]
fn lobby_joiners_wait_until_admitted_or_refused() {
    for_each_seed(|seed| {
        let mut sim = sim(seed);
        let [alice, bob, carol, dave] = add_users(&mut sim, &["alice", "bob", "carol", "dave"])[..]
        else {
            unreachable!()
        };
        let [bob_id, carol_id, dave_id] = [bob, carol, dave].map(|c| sim.world().id(c));
        let group = group("interview");
        let call = join(&mut sim, alice, &group, JoinOptions::default(), true);
        assert_eq!(state(&sim, alice, &call), Some(CallState::Connected));

        join(&mut sim, bob, &group, JoinOptions::default(), true);
        join(&mut sim, carol, &group, JoinOptions::default(), false);
        for who in [bob, carol] {
            assert_eq!(state(&sim, who, &call), Some(CallState::InLobby));
            // Waiting in the lobby shows no roster.
            assert_eq!(roster(&sim, who, &call), vec![]);
        }
        assert_eq!(
            roster(&sim, alice, &call),
            vec![
                (bob_id.clone(), ParticipantState::InLobby),
                (carol_id.clone(), ParticipantState::InLobby)
            ]
        );

        // Admitted: connected, with the roster (alice, and carol still waiting).
        sim.act(|w, now| w.session_mut(alice).admit(&call, &bob_id, now))
            .unwrap();
        sim.settle();
        assert_eq!(state(&sim, bob, &call), Some(CallState::Connected));
        assert_eq!(
            roster(&sim, bob, &call),
            vec![
                (sim.world().id(alice), ParticipantState::Connected),
                (carol_id.clone(), ParticipantState::InLobby)
            ]
        );
        assert_eq!(
            remote(&sim, alice, &call, &bob_id).map(|p| p.state()),
            Some(ParticipantState::Connected)
        );
        assert_eq!(
            state_history(&sim, bob, &call),
            vec![
                CallState::Connecting,
                CallState::InLobby,
                CallState::Connected
            ]
        );

        // A late joiner lands in the lobby too; bob, admitted, sees it there.
        join(&mut sim, dave, &group, JoinOptions::default(), false);
        assert_eq!(state(&sim, dave, &call), Some(CallState::InLobby));
        assert_eq!(
            remote(&sim, bob, &call, &dave_id).map(|p| p.state()),
            Some(ParticipantState::InLobby)
        );
        // Any connected participant may admit.
        sim.act(|w, now| w.session_mut(bob).admit(&call, &dave_id, now))
            .unwrap();
        sim.settle();
        assert_eq!(state(&sim, dave, &call), Some(CallState::Connected));

        // Refused from the lobby.
        sim.act(|w, now| {
            w.session_mut(alice)
                .remove_participant(&call, &carol_id, now)
        })
        .unwrap();
        sim.settle();
        assert_ended(&sim, carol, &call, &EndReason::lobby_refused());
        assert_all_connected(&sim, &call, &[alice, bob, dave]);
        for who in [alice, bob, dave] {
            assert_eq!(
                removals(&sim, who, &call, &carol_id),
                vec![Some(EndReason::lobby_refused())]
            );
        }
        assert_no_failures(&sim);
        sim.world().controller.check_invariants().unwrap();
    });
}

#[test]
fn someone_in_the_lobby_cannot_admit() {
    let seed = Seed::new(71);
    let mut sim = sim(seed);
    let [alice, bob, carol] = add_users(&mut sim, &["alice", "bob", "carol"])[..] else {
        unreachable!()
    };
    let carol_id = sim.world().id(carol);
    let group = group("waiting-room");
    let call = join(&mut sim, alice, &group, JoinOptions::default(), true);
    join(&mut sim, bob, &group, JoinOptions::default(), false);
    join(&mut sim, carol, &group, JoinOptions::default(), false);
    // The session refuses locally (not in the call yet); the server refuses the raw one.
    assert!(
        sim.act(|w, now| w.session_mut(bob).admit(&call, &carol_id, now))
            .is_err()
    );
    sim.act(|w, now| {
        w.send_message(
            bob,
            &ClientMessage::Admit {
                call_id: call.clone(),
                target: carol_id.clone(),
            },
            now,
        )
    });
    sim.settle();
    assert_eq!(
        failures(&sim, bob),
        vec![(ErrorCode::InvalidState, Some(call.clone()))]
    );
    assert_eq!(state(&sim, bob, &call), Some(CallState::InLobby));
    assert_eq!(state(&sim, carol, &call), Some(CallState::InLobby));
    sim.world().controller.check_invariants().unwrap();
}

#[test]
fn lobby_over_jittery_links() {
    for_each_seed(|seed| {
        let mut sim = jittery(seed);
        let users = add_users(&mut sim, &["alice", "bob", "carol", "dave"]);
        let group = group("jittery-lobby");
        let call = join(&mut sim, users[0], &group, JoinOptions::default(), true);
        for &who in &users[1..] {
            sim.act(|w, now| {
                w.session_mut(who)
                    .join(&group, JoinOptions::default(), false, now)
            })
            .unwrap();
        }
        sim.settle();
        for &who in &users[1..] {
            assert_eq!(state(&sim, who, &call), Some(CallState::InLobby));
            let id = sim.world().id(who);
            sim.act(|w, now| w.session_mut(users[0]).admit(&call, &id, now))
                .unwrap();
        }
        sim.settle();
        assert_all_connected(&sim, &call, &users);
        assert_no_failures(&sim);
        sim.world().controller.check_invariants().unwrap();
    });
}

#[test]
fn lobby_waiters_are_let_go_when_the_last_member_leaves() {
    let mut sim = sim(Seed::new(31));
    let [alice, bob] = add_users(&mut sim, &["alice", "bob"])[..] else {
        unreachable!()
    };
    let group = group("office-hours");
    let call = join(&mut sim, alice, &group, JoinOptions::default(), true);
    join(&mut sim, bob, &group, JoinOptions::default(), false);
    assert_eq!(state(&sim, bob, &call), Some(CallState::InLobby));
    sim.act(|w, now| w.session_mut(alice).hang_up(&call, false, now))
        .unwrap();
    sim.settle();
    // Nobody is left to admit bob: the call ends rather than leaving him waiting.
    assert_eq!(state(&sim, bob, &call), Some(CallState::Disconnected));
    assert_eq!(sim.world().controller.calls().count(), 0);
    sim.world().controller.check_invariants().unwrap();
}
