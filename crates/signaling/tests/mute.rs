//! Seed row: mute and unmute fan out: the muter's own view (`is_muted`, `MuteChanged`)
//! and everyone else's view of it; joining muted is visible the same way.

mod common;

use common::*;
use ringwire_signaling::session::Event;
use ringwire_signaling::{CallId, JoinOptions};
use ringwire_testkit::signaling::ClientIdx;
use ringwire_testkit::{Seed, for_each_seed};

fn mute_changes(sim: &World, who: ClientIdx, call: &CallId) -> Vec<bool> {
    call_events(sim, who, call)
        .into_iter()
        .filter_map(|e| match e {
            Event::MuteChanged { muted, .. } => Some(*muted),
            _ => None,
        })
        .collect()
}

#[test]
fn mute_and_unmute_fan_out_to_everyone() {
    for_each_seed(|seed| {
        let mut sim = jittery(seed);
        let [alice, bob, carol] = add_users(&mut sim, &["alice", "bob", "carol"])[..] else {
            unreachable!()
        };
        let alice_id = sim.world().id(alice);
        let group = group("town-hall");
        let call = join(&mut sim, alice, &group, JoinOptions::default(), false);
        join(&mut sim, bob, &group, JoinOptions::default(), false);
        join(&mut sim, carol, &group, JoinOptions::default(), false);
        assert!(!sim.world().session(alice).call(&call).unwrap().is_muted());

        sim.act(|w, now| w.session_mut(alice).mute(&call, now))
            .unwrap();
        sim.settle();
        assert!(sim.world().session(alice).call(&call).unwrap().is_muted());
        assert_eq!(mute_changes(&sim, alice, &call), vec![true]);
        for who in [bob, carol] {
            assert!(remote(&sim, who, &call, &alice_id).unwrap().is_muted());
            // Others' own mute state is untouched.
            assert!(!sim.world().session(who).call(&call).unwrap().is_muted());
            assert!(call_events(&sim, who, &call).iter().any(|e| matches!(
                e,
                Event::ParticipantUpdated { participant, .. }
                    if participant.id == alice_id && participant.muted
            )));
        }

        sim.act(|w, now| w.session_mut(alice).unmute(&call, now))
            .unwrap();
        sim.settle();
        assert!(!sim.world().session(alice).call(&call).unwrap().is_muted());
        assert_eq!(mute_changes(&sim, alice, &call), vec![true, false]);
        for who in [bob, carol] {
            assert!(!remote(&sim, who, &call, &alice_id).unwrap().is_muted());
        }
        assert_all_connected(&sim, &call, &[alice, bob, carol]);
        assert_no_failures(&sim);
        sim.world().controller.check_invariants().unwrap();
    });
}

#[test]
fn mute_in_a_one_to_one_call() {
    let seed = Seed::new(41);
    let mut sim = sim(seed);
    let [alice, bob] = add_users(&mut sim, &["alice", "bob"])[..] else {
        unreachable!()
    };
    let bob_id = sim.world().id(bob);
    let call = start(&mut sim, alice, &[bob]);
    accept(&mut sim, bob, &call);
    sim.act(|w, now| w.session_mut(bob).mute(&call, now))
        .unwrap();
    sim.settle();
    assert!(sim.world().session(bob).call(&call).unwrap().is_muted());
    assert_eq!(mute_changes(&sim, bob, &call), vec![true]);
    assert!(remote(&sim, alice, &call, &bob_id).unwrap().is_muted());
    assert!(!sim.world().session(alice).call(&call).unwrap().is_muted());
    sim.world().controller.check_invariants().unwrap();
}

#[test]
fn joining_or_answering_muted_is_visible_to_everyone() {
    let seed = Seed::new(42);
    let mut sim = sim(seed);
    let [alice, bob, carol, dave] = add_users(&mut sim, &["alice", "bob", "carol", "dave"])[..]
    else {
        unreachable!()
    };
    let muted = JoinOptions {
        muted: true,
        video: false,
    };
    let [bob_id, carol_id, dave_id] = [bob, carol, dave].map(|c| sim.world().id(c));
    let group = group("lecture");
    let call = join(&mut sim, alice, &group, JoinOptions::default(), false);
    join(&mut sim, bob, &group, muted, false);
    assert!(sim.world().session(bob).call(&call).unwrap().is_muted());
    assert!(remote(&sim, alice, &call, &bob_id).unwrap().is_muted());

    // Invited and answering muted.
    add(&mut sim, alice, &call, &carol_id);
    accept_with(&mut sim, carol, &call, muted);
    assert!(sim.world().session(carol).call(&call).unwrap().is_muted());
    for who in [alice, bob] {
        assert!(remote(&sim, who, &call, &carol_id).unwrap().is_muted());
    }
    // A late joiner sees both muted in its roster.
    join(&mut sim, dave, &group, JoinOptions::default(), false);
    assert!(remote(&sim, dave, &call, &bob_id).unwrap().is_muted());
    assert!(remote(&sim, dave, &call, &carol_id).unwrap().is_muted());
    assert!(!remote(&sim, bob, &call, &dave_id).unwrap().is_muted());

    // Starting a call muted: the caller is muted, the callee sees it once connected.
    let alice_id = sim.world().id(alice);
    let call2 = start_to(&mut sim, dave, &[alice_id], muted);
    assert!(sim.world().session(dave).call(&call2).unwrap().is_muted());
    accept(&mut sim, alice, &call2);
    assert!(remote(&sim, alice, &call2, &dave_id).unwrap().is_muted());
    assert_no_failures(&sim);
    sim.world().controller.check_invariants().unwrap();
}
