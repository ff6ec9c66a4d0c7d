//! Seed row: place a 1:1 call (accepted, then hung up by either side).

use ringwire_signaling::session::Event;
use ringwire_signaling::{CallState, EndReason, ParticipantState};
use ringwire_testkit::signaling::SignalingWorld;
use ringwire_testkit::{Seed, Sim, for_each_seed};

#[test]
fn one_to_one_call_connects_and_ends_when_either_hangs_up() {
    for_each_seed(|seed| {
        let world = SignalingWorld::builder(seed).build();
        let mut sim = Sim::with_clock(world.clock(), seed, world);
        let alice = sim.act(|w, now| w.add_user("alice", now));
        let bob = sim.act(|w, now| w.add_user("bob", now));
        sim.settle();

        let bob_id = sim.world().id(bob);
        let call = sim
            .act(|w, now| {
                w.session_mut(alice).start_call(
                    std::slice::from_ref(&bob_id),
                    Default::default(),
                    now,
                )
            })
            .unwrap();
        sim.settle();
        assert_eq!(
            sim.world().call_state(alice, &call),
            Some(CallState::Ringing),
            "{seed}"
        );
        assert_eq!(
            sim.world().call_state(bob, &call),
            Some(CallState::Incoming),
            "{seed}"
        );
        assert!(
            sim.world()
                .events(bob)
                .iter()
                .any(|e| matches!(e, Event::IncomingCall { call_id, .. } if *call_id == call))
        );

        sim.act(|w, now| w.session_mut(bob).accept(&call, Default::default(), now))
            .unwrap();
        sim.settle();
        for who in [alice, bob] {
            let view = sim.world().session(who).call(&call).unwrap();
            assert_eq!(view.state(), CallState::Connected, "{seed}");
            let others: Vec<_> = view
                .remote_participants()
                .map(|p| (p.id().clone(), p.state()))
                .collect();
            assert_eq!(others.len(), 1, "{seed}: {others:?}");
            assert_eq!(others[0].1, ParticipantState::Connected, "{seed}");
        }

        sim.act(|w, now| w.session_mut(bob).hang_up(&call, false, now))
            .unwrap();
        sim.settle();
        let a = sim.world().session(alice).call(&call).unwrap();
        assert_eq!(a.state(), CallState::Disconnected, "{seed}");
        assert_eq!(a.end_reason(), Some(&EndReason::remote_hung_up()), "{seed}");
        let b = sim.world().session(bob).call(&call).unwrap();
        assert_eq!(b.end_reason(), Some(&EndReason::normal()), "{seed}");
        assert_eq!(sim.world().controller.calls().count(), 0, "{seed}");
        sim.world().controller.check_invariants().unwrap();
    });
}

#[test]
fn caller_hanging_up_connected_call_ends_it_for_callee() {
    let seed = Seed::new(7);
    let world = SignalingWorld::builder(seed).build();
    let mut sim = Sim::with_clock(world.clock(), seed, world);
    let alice = sim.act(|w, now| w.add_user("alice", now));
    let bob = sim.act(|w, now| w.add_user("bob", now));
    sim.settle();
    let bob_id = sim.world().id(bob);
    let call = sim
        .act(|w, now| {
            w.session_mut(alice)
                .start_call(&[bob_id], Default::default(), now)
        })
        .unwrap();
    sim.settle();
    sim.act(|w, now| w.session_mut(bob).accept(&call, Default::default(), now))
        .unwrap();
    sim.settle();
    sim.act(|w, now| w.session_mut(alice).hang_up(&call, false, now))
        .unwrap();
    sim.settle();
    assert_eq!(
        sim.world().session(bob).call(&call).unwrap().end_reason(),
        Some(&EndReason::remote_hung_up())
    );
    assert_eq!(
        sim.world().session(alice).call(&call).unwrap().end_reason(),
        Some(&EndReason::normal())
    );
}
