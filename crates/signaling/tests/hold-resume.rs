//! Seed row: hold and resume. The holder is `LocalHold`; the others see it as a `Hold`
//! participant; in a 1:1 call the other side is `RemoteHold`. Resume restores
//! `Connected`. In a group call only the holder's participant state changes for others.

mod common;

use common::*;
use ringwire_signaling::session::Event;
use ringwire_signaling::{CallState, JoinOptions, ParticipantState};
use ringwire_testkit::{Seed, for_each_seed};

#[test]
fn one_to_one_hold_is_remote_hold_for_the_peer_and_resume_restores() {
    for_each_seed(|seed| {
        let mut sim = sim(seed);
        let [alice, bob] = add_users(&mut sim, &["alice", "bob"])[..] else {
            unreachable!()
        };
        let [alice_id, bob_id] = [alice, bob].map(|c| sim.world().id(c));
        let call = start(&mut sim, alice, &[bob]);
        accept(&mut sim, bob, &call);
        assert_all_connected(&sim, &call, &[alice, bob]);

        sim.act(|w, now| w.session_mut(alice).hold(&call, now))
            .unwrap();
        sim.settle();
        let a = sim.world().session(alice).call(&call).unwrap();
        assert_eq!(a.state(), CallState::LocalHold);
        assert!(a.is_on_hold());
        assert_eq!(
            remote(&sim, alice, &call, &bob_id).map(|p| p.state()),
            Some(ParticipantState::Connected)
        );
        assert_eq!(state(&sim, bob, &call), Some(CallState::RemoteHold));
        assert_eq!(
            remote(&sim, bob, &call, &alice_id).map(|p| p.state()),
            Some(ParticipantState::Hold)
        );
        assert!(call_events(&sim, bob, &call).iter().any(|e| matches!(
            e,
            Event::ParticipantUpdated { participant, .. }
                if participant.id == alice_id && participant.state == ParticipantState::Hold
        )));

        sim.act(|w, now| w.session_mut(alice).resume(&call, now))
            .unwrap();
        sim.settle();
        assert_all_connected(&sim, &call, &[alice, bob]);
        assert_eq!(
            state_history(&sim, bob, &call),
            vec![
                CallState::Connecting,
                CallState::Connected,
                CallState::RemoteHold,
                CallState::Connected
            ]
        );
        assert_no_failures(&sim);
        sim.world().controller.check_invariants().unwrap();
    });
}

#[test]
fn both_sides_holding_resume_one_by_one() {
    let seed = Seed::new(31);
    let mut sim = sim(seed);
    let [alice, bob] = add_users(&mut sim, &["alice", "bob"])[..] else {
        unreachable!()
    };
    let call = start(&mut sim, alice, &[bob]);
    accept(&mut sim, bob, &call);
    sim.act(|w, now| w.session_mut(alice).hold(&call, now))
        .unwrap();
    sim.settle();
    // Bob, on remote hold, may hold too.
    sim.act(|w, now| w.session_mut(bob).hold(&call, now))
        .unwrap();
    sim.settle();
    assert_eq!(state(&sim, alice, &call), Some(CallState::LocalHold));
    assert_eq!(state(&sim, bob, &call), Some(CallState::LocalHold));

    // Alice resumes while bob still holds: she is on remote hold now.
    sim.act(|w, now| w.session_mut(alice).resume(&call, now))
        .unwrap();
    sim.settle();
    assert_eq!(state(&sim, alice, &call), Some(CallState::RemoteHold));
    assert_eq!(state(&sim, bob, &call), Some(CallState::LocalHold));

    sim.act(|w, now| w.session_mut(bob).resume(&call, now))
        .unwrap();
    sim.settle();
    assert_all_connected(&sim, &call, &[alice, bob]);
    assert_no_failures(&sim);
    sim.world().controller.check_invariants().unwrap();
}

#[test]
fn group_hold_changes_only_the_participant_state_for_others() {
    for_each_seed(|seed| {
        let mut sim = jittery(seed);
        let [alice, bob, carol] = add_users(&mut sim, &["alice", "bob", "carol"])[..] else {
            unreachable!()
        };
        let alice_id = sim.world().id(alice);
        let group = group("huddle");
        let call = join(&mut sim, alice, &group, JoinOptions::default(), false);
        join(&mut sim, bob, &group, JoinOptions::default(), false);
        join(&mut sim, carol, &group, JoinOptions::default(), false);

        sim.act(|w, now| w.session_mut(alice).hold(&call, now))
            .unwrap();
        sim.settle();
        assert_eq!(state(&sim, alice, &call), Some(CallState::LocalHold));
        for who in [bob, carol] {
            // No RemoteHold in a group call: the others go on talking.
            assert_eq!(state(&sim, who, &call), Some(CallState::Connected));
            assert_eq!(
                remote(&sim, who, &call, &alice_id).map(|p| p.state()),
                Some(ParticipantState::Hold)
            );
            assert!(!state_history(&sim, who, &call).contains(&CallState::RemoteHold));
        }

        sim.act(|w, now| w.session_mut(alice).resume(&call, now))
            .unwrap();
        sim.settle();
        assert_all_connected(&sim, &call, &[alice, bob, carol]);
        assert_no_failures(&sim);
        sim.world().controller.check_invariants().unwrap();
    });
}

#[test]
fn promoting_a_held_one_to_one_call_lifts_the_remote_hold() {
    let seed = Seed::new(32);
    let mut sim = sim(seed);
    let [alice, bob, carol] = add_users(&mut sim, &["alice", "bob", "carol"])[..] else {
        unreachable!()
    };
    let [alice_id, carol_id] = [alice, carol].map(|c| sim.world().id(c));
    let call = start(&mut sim, alice, &[bob]);
    accept(&mut sim, bob, &call);
    sim.act(|w, now| w.session_mut(alice).hold(&call, now))
        .unwrap();
    sim.settle();
    assert_eq!(state(&sim, bob, &call), Some(CallState::RemoteHold));

    // Bob adds carol: a group call has no remote hold, only a participant on hold.
    add(&mut sim, bob, &call, &carol_id);
    assert_eq!(state(&sim, bob, &call), Some(CallState::Connected));
    assert_eq!(state(&sim, alice, &call), Some(CallState::LocalHold));
    accept(&mut sim, carol, &call);
    assert_eq!(state(&sim, carol, &call), Some(CallState::Connected));
    for who in [bob, carol] {
        assert_eq!(
            remote(&sim, who, &call, &alice_id).map(|p| p.state()),
            Some(ParticipantState::Hold)
        );
    }
    sim.act(|w, now| w.session_mut(alice).resume(&call, now))
        .unwrap();
    sim.settle();
    assert_all_connected(&sim, &call, &[alice, bob, carol]);
    assert_no_failures(&sim);
    sim.world().controller.check_invariants().unwrap();
}
