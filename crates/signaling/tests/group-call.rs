//! Seed row: group calls, started with several targets or joined by group id; the call
//! goes on while any human is in it and ends when the last one leaves.

mod common;

use common::*;
use ringwire_signaling::session::Event;
use ringwire_signaling::{CallState, EndReason, JoinOptions, ParticipantState};
use ringwire_testkit::for_each_seed;

#[test]
fn start_call_with_two_targets_connects_everyone_and_survives_leavers() {
    for_each_seed(|seed| {
        let mut sim = sim(seed);
        let [alice, bob, carol] = add_users(&mut sim, &["alice", "bob", "carol"])[..] else {
            unreachable!()
        };
        let bob_id = sim.world().id(bob);
        let carol_id = sim.world().id(carol);

        let call = start(&mut sim, alice, &[bob, carol]);
        assert_eq!(state(&sim, alice, &call), Some(CallState::Ringing));
        assert_eq!(
            roster(&sim, alice, &call),
            vec![
                (bob_id.clone(), ParticipantState::Ringing),
                (carol_id.clone(), ParticipantState::Ringing)
            ]
        );
        for callee in [bob, carol] {
            assert_eq!(state(&sim, callee, &call), Some(CallState::Incoming));
            let view = sim.world().session(callee).call(&call).unwrap();
            assert_eq!(view.caller(), Some(&sim.world().id(alice)));
        }

        accept(&mut sim, bob, &call);
        // Alice is connected as soon as one answers; carol still rings.
        assert_eq!(state(&sim, alice, &call), Some(CallState::Connected));
        assert_eq!(state(&sim, bob, &call), Some(CallState::Connected));
        assert_eq!(state(&sim, carol, &call), Some(CallState::Incoming));
        assert_eq!(
            remote(&sim, bob, &call, &carol_id).map(|p| p.state()),
            Some(ParticipantState::Ringing),
            "bob's roster shows carol ringing"
        );

        accept(&mut sim, carol, &call);
        assert_all_connected(&sim, &call, &[alice, bob, carol]);

        // Bob leaves: alice and carol stay, and see him go.
        hang_up(&mut sim, bob, &call, false);
        assert_ended(&sim, bob, &call, &EndReason::normal());
        assert_all_connected(&sim, &call, &[alice, carol]);
        for who in [alice, carol] {
            assert_eq!(
                removals(&sim, who, &call, &bob_id),
                vec![Some(EndReason::normal())]
            );
        }
        sim.world().controller.check_invariants().unwrap();

        // Carol leaves: alice is alone, but still a human in the call.
        hang_up(&mut sim, carol, &call, false);
        assert_ended(&sim, carol, &call, &EndReason::normal());
        assert_eq!(state(&sim, alice, &call), Some(CallState::Connected));
        assert_eq!(roster(&sim, alice, &call), vec![]);
        assert_eq!(sim.world().controller.calls().count(), 1);

        // The last human leaving ends the call.
        hang_up(&mut sim, alice, &call, false);
        assert_ended(&sim, alice, &call, &EndReason::normal());
        assert_eq!(sim.world().controller.calls().count(), 0);
        assert_no_failures(&sim);
        sim.world().controller.check_invariants().unwrap();
    });
}

#[test]
fn group_start_call_with_an_offline_target_rings_the_others() {
    let seed = ringwire_testkit::Seed::new(11);
    let mut sim = sim(seed);
    let [alice, bob] = add_users(&mut sim, &["alice", "bob"])[..] else {
        unreachable!()
    };
    let offline = ringwire_signaling::Identifier::user("dave").unwrap();
    let bob_id = sim.world().id(bob);
    let call = start_to(
        &mut sim,
        alice,
        &[bob_id.clone(), offline.clone()],
        JoinOptions::default(),
    );
    assert_eq!(state(&sim, alice, &call), Some(CallState::Ringing));
    assert_eq!(
        roster(&sim, alice, &call),
        vec![(bob_id, ParticipantState::Ringing)]
    );
    // The offline target never was in alice's roster, but she still learns why it is
    // not in the call (the contract: surfaced as `ParticipantRemoved`).
    assert_eq!(
        removals(&sim, alice, &call, &offline),
        vec![Some(EndReason::unavailable())]
    );
    accept(&mut sim, bob, &call);
    assert_all_connected(&sim, &call, &[alice, bob]);
    sim.world().controller.check_invariants().unwrap();
}

#[test]
fn four_users_join_a_group_call_one_after_another() {
    let seed = ringwire_testkit::Seed::new(5);
    let mut sim = sim(seed);
    let users = add_users(&mut sim, &["alice", "bob", "carol", "dave"]);
    let group = group("standup");
    let mut joined = Vec::new();
    for &who in &users {
        let call = join(&mut sim, who, &group, JoinOptions::default(), false);
        assert_eq!(call, ringwire_signaling::CallId::for_group(&group));
        joined.push(who);
        assert_all_connected(&sim, &call, &joined);
    }
    let call = ringwire_signaling::CallId::for_group(&group);
    // Each later joiner's arrival reached everyone already there as an added participant.
    let dave_id = sim.world().id(users[3]);
    for &who in &users[..3] {
        assert!(
            call_events(&sim, who, &call).iter().any(|e| matches!(
                e,
                Event::ParticipantAdded { participant, .. }
                    if participant.id == dave_id && participant.state == ParticipantState::Connected
            )),
            "{} saw dave join",
            sim.world().client(who).name
        );
    }
    assert_eq!(
        sim.world().controller.roster(&call).map(|r| r.len()),
        Some(4)
    );

    // Leaving one by one: the others stay until the last one ends the call.
    for (i, &who) in users.iter().enumerate() {
        hang_up(&mut sim, who, &call, false);
        assert_ended(&sim, who, &call, &EndReason::normal());
        assert_all_connected(&sim, &call, &users[i + 1..]);
        sim.world().controller.check_invariants().unwrap();
    }
    assert_eq!(sim.world().controller.calls().count(), 0);
    assert_no_failures(&sim);
}

#[test]
fn four_users_joining_at_once_over_jittery_links_agree_on_the_roster() {
    for_each_seed(|seed| {
        let mut sim = jittery(seed);
        let users = add_users(&mut sim, &["alice", "bob", "carol", "dave"]);
        let group = group("all-hands");
        // All four join in the same instant; the links deliver in varying orders.
        for &who in &users {
            sim.act(|w, now| {
                w.session_mut(who)
                    .join(&group, JoinOptions::default(), false, now)
            })
            .unwrap();
        }
        sim.settle();
        let call = ringwire_signaling::CallId::for_group(&group);
        assert_all_connected(&sim, &call, &users);
        for &who in &users {
            // Connecting (local), then Connected from the server, nothing else.
            assert_eq!(
                state_history(&sim, who, &call),
                vec![CallState::Connecting, CallState::Connected]
            );
        }
        assert_no_failures(&sim);
        sim.world().controller.check_invariants().unwrap();
    });
}
