//! A client whose signaling connection drops keeps its calls if it resumes within the
//! grace period, and leaves them with a clear reason if it does not.
#![allow(clippy::unwrap_used)] // Scenario helpers outside #[test] fns unwrap too.

use std::time::Duration;

use ringwire_signaling::session::{ConnectionState, Event};
use ringwire_signaling::{CallId, CallState, EndReason, GroupId, ParticipantState};
use ringwire_testkit::signaling::{ClientIdx, SignalingWorld};
use ringwire_testkit::{Seed, Sim, for_each_seed};

const GRACE: Duration = Duration::from_secs(30);

/// Three users in a group call.
fn group_of_three(seed: Seed) -> (Sim<SignalingWorld>, [ClientIdx; 3], CallId) {
    let world = SignalingWorld::builder(seed).resume_grace(GRACE).build();
    let mut sim = Sim::with_clock(world.clock(), seed, world);
    let users = ["ann", "ben", "cat"].map(|n| sim.act(|w, now| w.add_user(n, now)));
    sim.settle();
    let group = GroupId::new("weekly").unwrap();
    for u in users {
        sim.act(|w, now| {
            w.session_mut(u)
                .join(&group, Default::default(), false, now)
        })
        .unwrap();
        sim.settle();
    }
    (sim, users, CallId::for_group(&group))
}

#[test]
fn resume_within_grace_keeps_the_call() {
    for_each_seed(|seed| {
        let (mut sim, [ann, ben, cat], call) = group_of_three(seed);
        sim.act(|w, now| w.drop_connection(ann, now));
        assert_eq!(
            sim.world().session(ann).connection_state(),
            ConnectionState::Reconnecting
        );
        // While ann is away, ben mutes: ann must learn it from the resync.
        sim.act(|w, now| w.session_mut(ben).mute(&call, now))
            .unwrap();
        sim.run_for(GRACE / 2);
        sim.act(|w, now| w.connect(ann, now));
        sim.settle();

        assert_eq!(
            sim.world().session(ann).connection_state(),
            ConnectionState::Connected,
            "{seed}"
        );
        assert!(
            sim.world()
                .events(ann)
                .iter()
                .any(|e| matches!(e, Event::Authenticated { resumed: true, .. }))
        );
        let view = sim.world().session(ann).call(&call).unwrap();
        assert_eq!(view.state(), CallState::Connected, "{seed}");
        assert!(
            view.participant(&sim.world().id(ben)).unwrap().is_muted(),
            "{seed}: resync lost ben's mute"
        );
        // The others never saw ann leave.
        for other in [ben, cat] {
            let p = sim
                .world()
                .session(other)
                .call(&call)
                .unwrap()
                .participant(&sim.world().id(ann))
                .cloned();
            assert_eq!(
                p.map(|p| p.state()),
                Some(ParticipantState::Connected),
                "{seed}"
            );
        }
        // And the call goes on: ann can act in it.
        sim.act(|w, now| w.session_mut(ann).hold(&call, now))
            .unwrap();
        sim.settle();
        let ann_seen = sim
            .world()
            .session(cat)
            .call(&call)
            .unwrap()
            .participant(&sim.world().id(ann))
            .unwrap()
            .state();
        assert_eq!(ann_seen, ParticipantState::Hold, "{seed}");
        sim.world().controller.check_invariants().unwrap();
    });
}

#[test]
fn grace_expiry_leaves_the_call_with_connection_lost() {
    let seed = Seed::new(11);
    let (mut sim, [ann, ben, cat], call) = group_of_three(seed);
    sim.act(|w, now| w.drop_connection(ann, now));
    sim.run_for(GRACE + Duration::from_secs(1));
    let ann_id = sim.world().id(ann);
    for other in [ben, cat] {
        let view = sim.world().session(other).call(&call).unwrap();
        assert!(view.participant(&ann_id).is_none(), "ann still listed");
        assert_eq!(view.state(), CallState::Connected);
        let left = sim.world().events(other).iter().any(|e| {
            matches!(e, Event::ParticipantRemoved { id, reason, .. } if *id == ann_id && *reason == Some(EndReason::connection_lost()))
        });
        assert!(left, "others were not told why ann left");
    }
    // Ann comes back too late: a fresh session, and her call ends locally with the reason.
    sim.act(|w, now| w.connect(ann, now));
    sim.settle();
    assert!(
        sim.world()
            .events(ann)
            .iter()
            .any(|e| matches!(e, Event::Authenticated { resumed: false, .. }))
    );
    let view = sim.world().session(ann).call(&call).unwrap();
    assert_eq!(view.state(), CallState::Disconnected);
    assert_eq!(view.end_reason(), Some(&EndReason::connection_lost()));
    sim.world().controller.check_invariants().unwrap();
}

#[test]
fn one_to_one_peer_lost_ends_the_call_for_the_other() {
    let seed = Seed::new(12);
    let world = SignalingWorld::builder(seed).resume_grace(GRACE).build();
    let mut sim = Sim::with_clock(world.clock(), seed, world);
    let a = sim.act(|w, now| w.add_user("a", now));
    let b = sim.act(|w, now| w.add_user("b", now));
    sim.settle();
    let b_id = sim.world().id(b);
    let call = sim
        .act(|w, now| {
            w.session_mut(a)
                .start_call(&[b_id], Default::default(), now)
        })
        .unwrap();
    sim.settle();
    sim.act(|w, now| w.session_mut(b).accept(&call, Default::default(), now))
        .unwrap();
    sim.settle();
    sim.act(|w, now| w.drop_connection(b, now));
    sim.run_for(GRACE - Duration::from_secs(1));
    assert_eq!(
        sim.world().call_state(a, &call),
        Some(CallState::Connected),
        "ended before the grace period"
    );
    sim.run_for(Duration::from_secs(2));
    assert_eq!(
        sim.world().call_state(a, &call),
        Some(CallState::Disconnected)
    );
    assert_eq!(sim.world().controller.calls().count(), 0);
}
