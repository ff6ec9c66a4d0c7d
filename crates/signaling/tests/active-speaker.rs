//! Seed row: active speaker. The media plane's dominant-speaker list reaches every
//! client in the call, in order, and nobody outside it.
#![allow(clippy::unwrap_used)] // Scenario helpers outside #[test] fns unwrap too.

use ringwire_signaling::session::Event;
use ringwire_signaling::{CallId, GroupId};
use ringwire_testkit::signaling::SignalingWorld;
use ringwire_testkit::{Seed, Sim};

#[test]
fn dominant_speakers_reach_everyone_in_order() {
    let seed = Seed::new(21);
    let world = SignalingWorld::builder(seed).build();
    let mut sim = Sim::with_clock(world.clock(), seed, world);
    let users: Vec<_> = ["ann", "ben", "cat", "dan"]
        .iter()
        .map(|n| sim.act(|w, now| w.add_user(n, now)))
        .collect();
    let outsider = sim.act(|w, now| w.add_user("eve", now));
    sim.settle();
    let group = GroupId::new("standup").unwrap();
    for &u in &users {
        sim.act(|w, now| {
            w.session_mut(u)
                .join(&group, Default::default(), false, now)
        })
        .unwrap();
        sim.settle();
    }
    let call = CallId::for_group(&group);
    let order = vec![sim.world().id(users[2]), sim.world().id(users[0])];
    sim.act(|w, _| w.controller.set_dominant_speakers(&call, order.clone()));
    sim.settle();
    for &u in &users {
        assert_eq!(
            sim.world()
                .session(u)
                .call(&call)
                .unwrap()
                .dominant_speakers(),
            order.as_slice()
        );
        let changed = sim.world().events(u).iter().any(
            |e| matches!(e, Event::DominantSpeakersChanged { speakers, .. } if *speakers == order),
        );
        assert!(changed, "no event for {}", sim.world().id(users[0]));
    }
    assert!(
        !sim.world()
            .events(outsider)
            .iter()
            .any(|e| matches!(e, Event::DominantSpeakersChanged { .. }))
    );
}

#[test]
fn a_late_joiner_learns_the_current_dominant_speakers() {
    let seed = Seed::new(22);
    let world = SignalingWorld::builder(seed).build();
    let mut sim = Sim::with_clock(world.clock(), seed, world);
    let ann = sim.act(|w, now| w.add_user("ann", now));
    let ben = sim.act(|w, now| w.add_user("ben", now));
    let late = sim.act(|w, now| w.add_user("cat", now));
    sim.settle();
    let group = GroupId::new("standup").unwrap();
    for u in [ann, ben] {
        sim.act(|w, now| {
            w.session_mut(u)
                .join(&group, Default::default(), false, now)
        })
        .unwrap();
        sim.settle();
    }
    let call = CallId::for_group(&group);
    let order = vec![sim.world().id(ben)];
    sim.act(|w, _| w.controller.set_dominant_speakers(&call, order.clone()));
    sim.settle();
    // Nothing changes after cat joins, yet cat's call knows who is speaking.
    sim.act(|w, now| {
        w.session_mut(late)
            .join(&group, Default::default(), false, now)
    })
    .unwrap();
    sim.settle();
    assert_eq!(
        sim.world()
            .session(late)
            .call(&call)
            .unwrap()
            .dominant_speakers(),
        order.as_slice()
    );
}
