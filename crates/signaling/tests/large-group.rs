//! Seed row: a group call of up to 350; every roster converges and the 351st is refused.

use ringwire_signaling::{CallId, CallState, EndReason, GroupId, Identifier, ParticipantState};
use ringwire_testkit::Seed;
use ringwire_testkit::Sim;
use ringwire_testkit::netsim::{Jitter, LinkConfig};
use ringwire_testkit::signaling::SignalingWorld;
use std::collections::BTreeSet;
use std::time::Duration;

const LIMIT: usize = 350;

#[test]
fn three_hundred_fifty_join_and_converge_then_the_next_is_refused() {
    let seed = Seed::new(350);
    // Jitter on an ordered link: joins race each other at the server.
    let link = LinkConfig::reliable(Duration::from_millis(20)).with_jitter(Jitter::Uniform {
        max: Duration::from_millis(15),
    });
    let world = SignalingWorld::builder(seed).link(link).build();
    let mut sim = Sim::with_clock(world.clock(), seed, world);
    let group = GroupId::new("all-hands").unwrap();
    let call = CallId::for_group(&group);

    let clients: Vec<_> = (0..=LIMIT)
        .map(|i| sim.act(|w, now| w.add_user(&format!("user{i:03}"), now)))
        .collect();
    sim.settle();
    // Everyone but the last joins at nearly the same time.
    for &c in &clients[..LIMIT] {
        sim.act(|w, now| {
            w.session_mut(c)
                .join(&group, Default::default(), false, now)
        })
        .unwrap();
    }
    sim.settle();

    let everyone: BTreeSet<Identifier> = clients[..LIMIT]
        .iter()
        .map(|c| sim.world().id(*c))
        .collect();
    for &c in &clients[..LIMIT] {
        let view = sim.world().session(c).call(&call).unwrap();
        assert_eq!(view.state(), CallState::Connected, "{seed}");
        let mut seen: BTreeSet<Identifier> = view
            .remote_participants()
            .inspect(|p| assert_eq!(p.state(), ParticipantState::Connected))
            .map(|p| p.id().clone())
            .collect();
        seen.insert(sim.world().id(c));
        assert_eq!(
            seen,
            everyone,
            "{seed}: roster of {} differs",
            sim.world().id(c)
        );
    }

    let last = clients[LIMIT];
    sim.act(|w, now| {
        w.session_mut(last)
            .join(&group, Default::default(), false, now)
    })
    .unwrap();
    sim.settle();
    let view = sim.world().session(last).call(&call).unwrap();
    assert_eq!(view.state(), CallState::Disconnected, "{seed}");
    assert_eq!(view.end_reason(), Some(&EndReason::call_full()), "{seed}");
    // Nobody else noticed the refused joiner.
    let refused = sim.world().id(last);
    assert!(
        sim.world()
            .session(clients[0])
            .call(&call)
            .unwrap()
            .participant(&refused)
            .is_none()
    );
    assert_eq!(sim.world().controller.roster(&call).unwrap().len(), LIMIT);
    sim.world().controller.check_invariants().unwrap();
}
