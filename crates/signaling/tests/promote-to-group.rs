//! Seed row: a 1:1 call becomes a group call when a third participant is added; nobody
//! is dropped, and the call no longer ends when one of the first two leaves.

mod common;

use common::*;
use ringwire_signaling::session::Event;
use ringwire_signaling::{CallState, EndReason, ParticipantState};
use ringwire_testkit::signaling::ClientIdx;
use ringwire_testkit::{Seed, for_each_seed};

/// Alice calls bob, bob answers, alice adds carol, carol answers.
fn promoted(sim: &mut World) -> ([ClientIdx; 3], ringwire_signaling::CallId) {
    let [alice, bob, carol] = add_users(sim, &["alice", "bob", "carol"])[..] else {
        unreachable!()
    };
    let call = start(sim, alice, &[bob]);
    accept(sim, bob, &call);
    assert_all_connected(sim, &call, &[alice, bob]);

    let carol_id = sim.world().id(carol);
    add(sim, alice, &call, &carol_id);
    // Carol rings; the 1:1 pair sees her ringing and is still connected.
    assert_eq!(state(sim, carol, &call), Some(CallState::Incoming));
    let view = sim
        .world()
        .session(carol)
        .call(&call)
        .expect("carol knows the call");
    assert_eq!(view.caller(), Some(&sim.world().id(alice)));
    assert_eq!(view.group_id(), None, "an ad-hoc call has no group id");
    for who in [alice, bob] {
        assert_eq!(state(sim, who, &call), Some(CallState::Connected));
        assert_eq!(
            remote(sim, who, &call, &carol_id).map(|p| p.state()),
            Some(ParticipantState::Ringing)
        );
    }

    accept(sim, carol, &call);
    assert_all_connected(sim, &call, &[alice, bob, carol]);
    for who in [alice, bob] {
        // Nobody was dropped on the way: alice and bob never left Connected.
        assert_eq!(
            state_history(sim, who, &call).last(),
            Some(&CallState::Connected)
        );
        assert!(
            !call_events(sim, who, &call)
                .iter()
                .any(|e| matches!(e, Event::ParticipantRemoved { .. })),
            "{} saw someone removed",
            sim.world().client(who).name
        );
    }
    ([alice, bob, carol], call)
}

#[test]
fn adding_a_third_keeps_everyone_and_caller_leaving_does_not_end_it() {
    for_each_seed(|seed| {
        let mut sim = sim(seed);
        let ([alice, bob, carol], call) = promoted(&mut sim);
        let alice_id = sim.world().id(alice);

        // In the 1:1 call this would have ended bob's call with remote_hung_up.
        hang_up(&mut sim, alice, &call, false);
        assert_ended(&sim, alice, &call, &EndReason::normal());
        assert_all_connected(&sim, &call, &[bob, carol]);
        for who in [bob, carol] {
            assert_eq!(
                removals(&sim, who, &call, &alice_id),
                vec![Some(EndReason::normal())]
            );
        }
        sim.world().controller.check_invariants().unwrap();

        hang_up(&mut sim, bob, &call, false);
        assert_ended(&sim, bob, &call, &EndReason::normal());
        assert_eq!(state(&sim, carol, &call), Some(CallState::Connected));
        hang_up(&mut sim, carol, &call, false);
        assert_ended(&sim, carol, &call, &EndReason::normal());
        assert_eq!(sim.world().controller.calls().count(), 0);
        assert_no_failures(&sim);
        sim.world().controller.check_invariants().unwrap();
    });
}

#[test]
fn callee_leaving_a_promoted_call_does_not_end_it() {
    let seed = Seed::new(3);
    let mut sim = sim(seed);
    let ([alice, bob, carol], call) = promoted(&mut sim);
    hang_up(&mut sim, bob, &call, false);
    assert_ended(&sim, bob, &call, &EndReason::normal());
    assert_all_connected(&sim, &call, &[alice, carol]);
    sim.world().controller.check_invariants().unwrap();
}

#[test]
fn promotion_over_jittery_links_keeps_everyone() {
    for_each_seed(|seed| {
        let mut sim = jittery(seed);
        let ([alice, bob, carol], call) = promoted(&mut sim);
        hang_up(&mut sim, bob, &call, false);
        assert_all_connected(&sim, &call, &[alice, carol]);
        assert_no_failures(&sim);
        sim.world().controller.check_invariants().unwrap();
    });
}

#[test]
fn adding_while_the_callee_still_rings_makes_a_group_call() {
    let seed = Seed::new(4);
    let mut sim = sim(seed);
    let [alice, bob, carol] = add_users(&mut sim, &["alice", "bob", "carol"])[..] else {
        unreachable!()
    };
    let call = start(&mut sim, alice, &[bob]);
    let carol_id = sim.world().id(carol);
    add(&mut sim, alice, &call, &carol_id);
    assert_eq!(state(&sim, carol, &call), Some(CallState::Incoming));
    accept(&mut sim, bob, &call);
    accept(&mut sim, carol, &call);
    assert_all_connected(&sim, &call, &[alice, bob, carol]);
    hang_up(&mut sim, bob, &call, false);
    assert_all_connected(&sim, &call, &[alice, carol]);
    sim.world().controller.check_invariants().unwrap();
}
