//! Seed row: hanging up for everyone disconnects every participant with
//! `ended_for_everyone` and cancels (487) invitations still ringing.

mod common;

use common::*;
use ringwire_signaling::{CallState, EndReason, JoinOptions};
use ringwire_testkit::{Seed, for_each_seed};

#[test]
fn hang_up_for_everyone_ends_the_group_call_and_cancels_ringing() {
    for_each_seed(|seed| {
        let mut sim = sim(seed);
        let [alice, bob, carol, dave] = add_users(&mut sim, &["alice", "bob", "carol", "dave"])[..]
        else {
            unreachable!()
        };
        let dave_id = sim.world().id(dave);
        let group = group("all-done");
        let call = join(&mut sim, alice, &group, JoinOptions::default(), false);
        join(&mut sim, bob, &group, JoinOptions::default(), false);
        join(&mut sim, carol, &group, JoinOptions::default(), false);
        add(&mut sim, alice, &call, &dave_id);
        assert_eq!(state(&sim, dave, &call), Some(CallState::Incoming));

        // Bob, not the starter, may end it for everyone.
        hang_up(&mut sim, bob, &call, true);
        for who in [alice, bob, carol] {
            assert_ended(&sim, who, &call, &EndReason::ended_for_everyone());
        }
        assert_ended(&sim, dave, &call, &EndReason::cancelled());
        assert_eq!(sim.world().controller.calls().count(), 0);
        assert_no_failures(&sim);
        sim.world().controller.check_invariants().unwrap();
    });
}

#[test]
fn hang_up_for_everyone_in_a_ringing_ad_hoc_group_call() {
    let seed = Seed::new(81);
    let mut sim = jittery(seed);
    let [alice, bob, carol] = add_users(&mut sim, &["alice", "bob", "carol"])[..] else {
        unreachable!()
    };
    let call = start(&mut sim, alice, &[bob, carol]);
    accept(&mut sim, bob, &call);
    assert_eq!(state(&sim, carol, &call), Some(CallState::Incoming));
    hang_up(&mut sim, alice, &call, true);
    assert_ended(&sim, alice, &call, &EndReason::ended_for_everyone());
    assert_ended(&sim, bob, &call, &EndReason::ended_for_everyone());
    assert_ended(&sim, carol, &call, &EndReason::cancelled());
    assert_eq!(sim.world().controller.calls().count(), 0);
    assert_no_failures(&sim);
    sim.world().controller.check_invariants().unwrap();
}
