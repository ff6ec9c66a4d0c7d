//! Seed row: one user on two devices: both ring; answering on one ends the call on the
//! other with `answered_elsewhere`.

mod common;

use common::*;
use ringwire_signaling::session::Event;
use ringwire_signaling::{CallState, EndReason, JoinOptions, ParticipantState};
use ringwire_testkit::{Seed, for_each_seed};

#[test]
fn both_devices_ring_and_answering_on_one_ends_the_other() {
    for_each_seed(|seed| {
        let mut sim = jittery(seed);
        let [alice, phone, laptop] = add_users(&mut sim, &["alice", "bob", "bob"])[..] else {
            unreachable!()
        };
        let bob_id = sim.world().id(phone);
        assert_eq!(sim.world().id(laptop), bob_id, "two devices of one user");

        let call = start(&mut sim, alice, &[phone]);
        for device in [phone, laptop] {
            assert_eq!(state(&sim, device, &call), Some(CallState::Incoming));
            assert!(sim.world().events(device).iter().any(|e| matches!(
                e,
                Event::IncomingCall { call_id, .. } if *call_id == call
            )));
        }
        assert_eq!(
            roster(&sim, alice, &call),
            vec![(bob_id.clone(), ParticipantState::Ringing)]
        );

        accept(&mut sim, laptop, &call);
        assert_all_connected(&sim, &call, &[alice, laptop]);
        assert_ended(&sim, phone, &call, &EndReason::answered_elsewhere());
        assert_eq!(
            state_history(&sim, phone, &call),
            vec![CallState::Disconnected]
        );

        hang_up(&mut sim, laptop, &call, false);
        assert_ended(&sim, alice, &call, &EndReason::remote_hung_up());
        // The other device's ended call is not touched again.
        assert_ended(&sim, phone, &call, &EndReason::answered_elsewhere());
        assert_no_failures(&sim);
        sim.world().controller.check_invariants().unwrap();
    });
}

#[test]
fn declining_on_one_device_declines_on_all() {
    let seed = Seed::new(91);
    let mut sim = sim(seed);
    let [alice, phone, laptop] = add_users(&mut sim, &["alice", "bob", "bob"])[..] else {
        unreachable!()
    };
    let call = start(&mut sim, alice, &[phone]);
    sim.act(|w, now| w.session_mut(phone).reject(&call, now))
        .unwrap();
    sim.settle();
    assert_ended(&sim, alice, &call, &EndReason::declined());
    assert_ended(&sim, phone, &call, &EndReason::declined());
    assert_ended(&sim, laptop, &call, &EndReason::declined());
    assert_eq!(sim.world().controller.calls().count(), 0);
    sim.world().controller.check_invariants().unwrap();
}

#[test]
fn caller_cancelling_stops_both_devices() {
    let seed = Seed::new(92);
    let mut sim = sim(seed);
    let [alice, phone, laptop] = add_users(&mut sim, &["alice", "bob", "bob"])[..] else {
        unreachable!()
    };
    let call = start(&mut sim, alice, &[phone]);
    hang_up(&mut sim, alice, &call, false);
    assert_ended(&sim, alice, &call, &EndReason::normal());
    assert_ended(&sim, phone, &call, &EndReason::cancelled());
    assert_ended(&sim, laptop, &call, &EndReason::cancelled());
    sim.world().controller.check_invariants().unwrap();
}

#[test]
fn joining_a_group_call_from_one_device_stops_the_ringing_on_the_other() {
    let seed = Seed::new(93);
    let mut sim = sim(seed);
    let [alice, phone, laptop] = add_users(&mut sim, &["alice", "bob", "bob"])[..] else {
        unreachable!()
    };
    let bob_id = sim.world().id(phone);
    let group = group("two-devices");
    let call = join(&mut sim, alice, &group, JoinOptions::default(), false);
    add(&mut sim, alice, &call, &bob_id);
    assert_eq!(state(&sim, phone, &call), Some(CallState::Incoming));
    assert_eq!(state(&sim, laptop, &call), Some(CallState::Incoming));
    accept(&mut sim, phone, &call);
    assert_all_connected(&sim, &call, &[alice, phone]);
    assert_ended(&sim, laptop, &call, &EndReason::answered_elsewhere());
    sim.world().controller.check_invariants().unwrap();
}
