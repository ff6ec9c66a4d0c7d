//! Seed row: show why a participant left. Every end reason of the protocol, reached
//! the way it happens in real calls.
#![allow(clippy::unwrap_used)] // Scenario helpers outside #[test] fns unwrap too.

use std::time::Duration;

use ringwire_signaling::session::Event;
use ringwire_signaling::token::{Scope, Scopes};
use ringwire_signaling::{CallId, CallState, EndReason, GroupId, Identifier};
use ringwire_testkit::signaling::{ClientIdx, GatewayScript, SignalingWorld};
use ringwire_testkit::{Seed, Sim};

const RING: Duration = Duration::from_secs(30);

fn world(seed: u64) -> Sim<SignalingWorld> {
    let seed = Seed::new(seed);
    let world = SignalingWorld::builder(seed)
        .ring_timeout(RING)
        .max_participants(3)
        .build();
    Sim::with_clock(world.clock(), seed, world)
}

fn call(sim: &mut Sim<SignalingWorld>, from: ClientIdx, to: Identifier) -> CallId {
    let id = sim
        .act(|w, now| {
            w.session_mut(from)
                .start_call(&[to], Default::default(), now)
        })
        .unwrap();
    sim.settle();
    id
}

fn reason(sim: &Sim<SignalingWorld>, who: ClientIdx, call: &CallId) -> EndReason {
    let view = sim.world().session(who).call(call).unwrap();
    assert_eq!(
        view.state(),
        CallState::Disconnected,
        "{} is still in {call}",
        sim.world().id(who)
    );
    view.end_reason().cloned().unwrap()
}

#[test]
fn no_answer_is_408_for_both_sides() {
    let mut sim = world(1);
    let (a, b) = (
        sim.act(|w, n| w.add_user("a", n)),
        sim.act(|w, n| w.add_user("b", n)),
    );
    sim.settle();
    let b_id = sim.world().id(b);
    let c = call(&mut sim, a, b_id);
    sim.run_for(RING - Duration::from_secs(2));
    assert_eq!(
        sim.world().call_state(b, &c),
        Some(CallState::Incoming),
        "rang too short"
    );
    sim.run_for(Duration::from_secs(3));
    assert_eq!(reason(&sim, a, &c).code, 408);
    assert_eq!(reason(&sim, b, &c).code, 408);
}

#[test]
fn offline_callee_is_480() {
    let mut sim = world(2);
    let a = sim.act(|w, n| w.add_user("a", n));
    sim.settle();
    let c = call(&mut sim, a, Identifier::user("nobody").unwrap());
    assert_eq!(reason(&sim, a, &c), EndReason::unavailable());
}

#[test]
fn declined_is_603_and_cancelled_is_487() {
    let mut sim = world(3);
    let (a, b) = (
        sim.act(|w, n| w.add_user("a", n)),
        sim.act(|w, n| w.add_user("b", n)),
    );
    sim.settle();
    let b_id = sim.world().id(b);
    let c = call(&mut sim, a, b_id);
    sim.act(|w, n| w.session_mut(b).reject(&c, n)).unwrap();
    sim.settle();
    assert_eq!(reason(&sim, a, &c), EndReason::declined());
    assert_eq!(reason(&sim, b, &c).code, 603);

    let b_id = sim.world().id(b);
    let c = call(&mut sim, a, b_id);
    sim.act(|w, n| w.session_mut(a).hang_up(&c, false, n))
        .unwrap();
    sim.settle();
    assert_eq!(reason(&sim, b, &c), EndReason::cancelled());
    assert_eq!(reason(&sim, a, &c), EndReason::normal());
}

#[test]
fn busy_and_unknown_phone_numbers_map_one_to_one() {
    let mut sim = world(4);
    let a = sim.act(|w, n| w.add_user_with("a", Scopes::from(Scope::Voip).with(Scope::Pstn), n));
    sim.settle();
    for (number, code) in [
        ("+15550000486", 486),
        ("+15550000404", 404),
        ("+15550000603", 603),
    ] {
        let phone = Identifier::phone(number).unwrap();
        sim.act(|w, _| {
            w.script_gateway(
                phone.clone(),
                GatewayScript::Fail(Duration::from_millis(200), code),
            )
        });
        let c = call(&mut sim, a, phone);
        assert_eq!(reason(&sim, a, &c).code, code);
    }
}

#[test]
fn full_group_call_and_missing_scope_are_403() {
    let mut sim = world(5);
    let users: Vec<_> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| sim.act(|w, now| w.add_user(n, now)))
        .collect();
    sim.settle();
    let group = GroupId::new("small").unwrap();
    for &u in &users {
        sim.act(|w, n| w.session_mut(u).join(&group, Default::default(), false, n))
            .unwrap();
        sim.settle();
    }
    let id = CallId::for_group(&group);
    assert_eq!(reason(&sim, users[3], &id), EndReason::call_full());

    let c = call(
        &mut sim,
        users[3],
        Identifier::phone("+15551230000").unwrap(),
    );
    let r = reason(&sim, users[3], &c);
    assert_eq!(r.code, 403);
    assert!(r.message.contains("pstn"), "{r:?}");
}

#[test]
fn media_failure_is_410_and_others_stay() {
    let mut sim = world(6);
    let users: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|n| sim.act(|w, now| w.add_user(n, now)))
        .collect();
    sim.settle();
    let group = GroupId::new("g").unwrap();
    for &u in &users {
        sim.act(|w, n| w.session_mut(u).join(&group, Default::default(), false, n))
            .unwrap();
        sim.settle();
    }
    let id = CallId::for_group(&group);
    let c_id = sim.world().id(users[2]);
    sim.act(|w, _| w.controller.handle_media_failure(&id, &c_id));
    sim.settle();
    assert_eq!(reason(&sim, users[2], &id), EndReason::media_failure());
    let a_events = sim.world().events(users[0]);
    assert!(a_events.iter().any(|e| matches!(e, Event::ParticipantRemoved { id: who, reason: Some(r), .. } if *who == c_id && r.code == 410)));
    assert_eq!(
        sim.world().call_state(users[0], &id),
        Some(CallState::Connected)
    );
}

#[test]
fn shutdown_is_500_with_goodbye() {
    let mut sim = world(7);
    let (a, b) = (
        sim.act(|w, n| w.add_user("a", n)),
        sim.act(|w, n| w.add_user("b", n)),
    );
    sim.settle();
    let b_id = sim.world().id(b);
    let c = call(&mut sim, a, b_id);
    sim.act(|w, n| w.session_mut(b).accept(&c, Default::default(), n))
        .unwrap();
    sim.settle();
    sim.act(|w, n| w.controller.shut_down(n));
    sim.settle();
    for who in [a, b] {
        assert_eq!(reason(&sim, who, &c), EndReason::shutting_down());
        assert!(
            sim.world()
                .events(who)
                .iter()
                .any(|e| matches!(e, Event::Goodbye { .. }))
        );
    }
    assert_eq!(sim.world().controller.stats().connections, 0);
}
