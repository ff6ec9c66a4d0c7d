//! Seed row: the roster: listing participants, removing one (the removed one is
//! disconnected with `removed`, the others see it gone with that reason), and refusing
//! to remove oneself.

mod common;

use common::*;
use ringwire_signaling::{
    CallState, ClientMessage, EndReason, Error, ErrorCode, JoinOptions, ParticipantState,
};
use ringwire_testkit::{Seed, for_each_seed};

#[test]
fn roster_lists_everyone_else_and_agrees_with_the_server() {
    let seed = Seed::new(61);
    let mut sim = sim(seed);
    let users = add_users(&mut sim, &["alice", "bob", "carol", "dave"]);
    let group = group("board");
    let mut call = None;
    for &who in &users {
        call = Some(join(&mut sim, who, &group, JoinOptions::default(), false));
    }
    let call = call.unwrap();
    let all = ids(&sim, &users);
    for (i, &who) in users.iter().enumerate() {
        let listed: Vec<_> = sim
            .world()
            .session(who)
            .call(&call)
            .unwrap()
            .remote_participants()
            .map(|p| p.id().clone())
            .collect();
        let mut expected: Vec<_> = all.iter().filter(|id| **id != all[i]).cloned().collect();
        expected.sort();
        assert_eq!(listed, expected);
    }
    let server: Vec<_> = sim
        .world()
        .controller
        .roster(&call)
        .unwrap()
        .into_iter()
        .map(|p| (p.id, p.state))
        .collect();
    let mut expected: Vec<_> = all
        .iter()
        .map(|id| (id.clone(), ParticipantState::Connected))
        .collect();
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(server, expected);
    sim.world().controller.check_invariants().unwrap();
}

#[test]
fn removed_participant_is_disconnected_and_others_see_it_gone() {
    for_each_seed(|seed| {
        let mut sim = jittery(seed);
        let [alice, bob, carol] = add_users(&mut sim, &["alice", "bob", "carol"])[..] else {
            unreachable!()
        };
        let bob_id = sim.world().id(bob);
        let group = group("panel");
        let call = join(&mut sim, alice, &group, JoinOptions::default(), false);
        join(&mut sim, bob, &group, JoinOptions::default(), false);
        join(&mut sim, carol, &group, JoinOptions::default(), false);

        sim.act(|w, now| w.session_mut(alice).remove_participant(&call, &bob_id, now))
            .unwrap();
        sim.settle();
        assert_ended(&sim, bob, &call, &EndReason::removed());
        assert_all_connected(&sim, &call, &[alice, carol]);
        for who in [alice, carol] {
            assert_eq!(
                removals(&sim, who, &call, &bob_id),
                vec![Some(EndReason::removed())]
            );
        }
        assert_no_failures(&sim);
        sim.world().controller.check_invariants().unwrap();
    });
}

#[test]
fn removing_a_ringing_invitee_cancels_its_ringing() {
    let seed = Seed::new(62);
    let mut sim = sim(seed);
    let [alice, bob, carol] = add_users(&mut sim, &["alice", "bob", "carol"])[..] else {
        unreachable!()
    };
    let carol_id = sim.world().id(carol);
    let group = group("invite-then-remove");
    let call = join(&mut sim, alice, &group, JoinOptions::default(), false);
    join(&mut sim, bob, &group, JoinOptions::default(), false);
    add(&mut sim, alice, &call, &carol_id);
    assert_eq!(state(&sim, carol, &call), Some(CallState::Incoming));

    sim.act(|w, now| w.session_mut(bob).remove_participant(&call, &carol_id, now))
        .unwrap();
    sim.settle();
    assert_ended(&sim, carol, &call, &EndReason::cancelled());
    assert_all_connected(&sim, &call, &[alice, bob]);
    // The contract: the ringing target hears `cancelled`, the others `removed`.
    for who in [alice, bob] {
        assert_eq!(
            removals(&sim, who, &call, &carol_id),
            vec![Some(EndReason::removed())]
        );
    }
    assert_no_failures(&sim);
    sim.world().controller.check_invariants().unwrap();
}

#[test]
fn removing_the_other_side_of_a_one_to_one_call_ends_it() {
    let seed = Seed::new(63);
    let mut sim = sim(seed);
    let [alice, bob] = add_users(&mut sim, &["alice", "bob"])[..] else {
        unreachable!()
    };
    let bob_id = sim.world().id(bob);
    let call = start(&mut sim, alice, &[bob]);
    accept(&mut sim, bob, &call);
    sim.act(|w, now| w.session_mut(alice).remove_participant(&call, &bob_id, now))
        .unwrap();
    sim.settle();
    assert_ended(&sim, bob, &call, &EndReason::removed());
    assert_ended(&sim, alice, &call, &EndReason::normal());
    assert_eq!(sim.world().controller.calls().count(), 0);
    sim.world().controller.check_invariants().unwrap();
}

#[test]
fn removing_yourself_is_refused() {
    let seed = Seed::new(64);
    let mut sim = sim(seed);
    let [alice, bob] = add_users(&mut sim, &["alice", "bob"])[..] else {
        unreachable!()
    };
    let alice_id = sim.world().id(alice);
    let group = group("self-removal");
    let call = join(&mut sim, alice, &group, JoinOptions::default(), false);
    join(&mut sim, bob, &group, JoinOptions::default(), false);

    let local = sim.act(|w, now| {
        w.session_mut(alice)
            .remove_participant(&call, &alice_id, now)
    });
    assert!(matches!(local, Err(Error::InvalidArgument(_))), "{local:?}");
    sim.act(|w, now| {
        w.send_message(
            alice,
            &ClientMessage::RemoveParticipant {
                call_id: call.clone(),
                target: alice_id.clone(),
            },
            now,
        )
    });
    sim.settle();
    assert_eq!(
        failures(&sim, alice),
        vec![(ErrorCode::Forbidden, Some(call.clone()))]
    );
    assert_all_connected(&sim, &call, &[alice, bob]);
    assert_eq!(failures(&sim, bob), vec![]);
    sim.world().controller.check_invariants().unwrap();
}
