//! Seed row: joining a group call that is already running; the late joiner gets the
//! full roster, with everyone's mute and video, and the others see it connected.

mod common;

use common::*;
use ringwire_signaling::session::Event;
use ringwire_signaling::{CallState, JoinOptions, ParticipantState, VideoKind};
use ringwire_testkit::for_each_seed;

#[test]
fn late_joiner_gets_the_full_roster_and_is_seen_connected() {
    for_each_seed(|seed| {
        let mut sim = sim(seed);
        let [alice, bob, carol, dave] = add_users(&mut sim, &["alice", "bob", "carol", "dave"])[..]
        else {
            unreachable!()
        };
        let group = group("design-review");
        let call = join(&mut sim, alice, &group, JoinOptions::default(), false);
        join(&mut sim, bob, &group, JoinOptions::default(), false);
        join(&mut sim, carol, &group, JoinOptions::default(), false);
        // The call has been running a while: bob muted, carol shares her camera.
        sim.act(|w, now| w.session_mut(bob).mute(&call, now))
            .unwrap();
        sim.act(|w, now| {
            w.session_mut(carol)
                .start_video(&call, VideoKind::Camera, None, now)
        })
        .unwrap();
        sim.run_for(std::time::Duration::from_secs(60));
        assert_all_connected(&sim, &call, &[alice, bob, carol]);

        join(&mut sim, dave, &group, JoinOptions::default(), false);
        assert_all_connected(&sim, &call, &[alice, bob, carol, dave]);
        let [bob_id, carol_id, dave_id] = [bob, carol, dave].map(|c| sim.world().id(c));
        let b = remote(&sim, dave, &call, &bob_id).unwrap();
        assert!(b.is_muted());
        assert!(b.video().is_empty());
        let c = remote(&sim, dave, &call, &carol_id).unwrap();
        assert!(!c.is_muted());
        assert_eq!(c.video(), &[VideoKind::Camera.into()]);
        // The roster arrived as participants added, not as a trickle of updates.
        let added = call_events(&sim, dave, &call)
            .into_iter()
            .filter(|e| matches!(e, Event::ParticipantAdded { .. }))
            .count();
        assert_eq!(added, 3);
        assert_eq!(
            state_history(&sim, dave, &call),
            vec![CallState::Connecting, CallState::Connected]
        );

        for who in [alice, bob, carol] {
            let d = remote(&sim, who, &call, &dave_id).unwrap();
            assert_eq!(d.state(), ParticipantState::Connected);
            assert!(!d.is_muted());
        }
        assert_no_failures(&sim);
        sim.world().controller.check_invariants().unwrap();
    });
}

#[test]
fn late_joiner_over_jittery_links_agrees_with_everyone() {
    for_each_seed(|seed| {
        let mut sim = jittery(seed);
        let users = add_users(&mut sim, &["alice", "bob", "carol", "dave", "erin"]);
        let group = group("retro");
        let call = join(&mut sim, users[0], &group, JoinOptions::default(), false);
        join(&mut sim, users[1], &group, JoinOptions::default(), false);
        // Three late joiners at once, while someone already in the call mutes.
        for &who in &users[2..] {
            sim.act(|w, now| {
                w.session_mut(who)
                    .join(&group, JoinOptions::default(), false, now)
            })
            .unwrap();
        }
        sim.act(|w, now| w.session_mut(users[1]).mute(&call, now))
            .unwrap();
        sim.settle();
        assert_all_connected(&sim, &call, &users);
        let bob_id = sim.world().id(users[1]);
        for &who in users.iter().filter(|u| **u != users[1]) {
            assert!(remote(&sim, who, &call, &bob_id).unwrap().is_muted());
        }
        assert!(
            sim.world()
                .session(users[1])
                .call(&call)
                .unwrap()
                .is_muted()
        );
        assert_no_failures(&sim);
        sim.world().controller.check_invariants().unwrap();
    });
}

#[test]
fn someone_who_left_can_join_again() {
    let seed = ringwire_testkit::Seed::new(12);
    let mut sim = sim(seed);
    let [alice, bob, carol] = add_users(&mut sim, &["alice", "bob", "carol"])[..] else {
        unreachable!()
    };
    let bob_id = sim.world().id(bob);
    let group = group("drop-in");
    let call = join(&mut sim, alice, &group, JoinOptions::default(), false);
    join(&mut sim, bob, &group, JoinOptions::default(), false);
    join(&mut sim, carol, &group, JoinOptions::default(), false);
    sim.act(|w, now| w.session_mut(bob).mute(&call, now))
        .unwrap();
    sim.settle();
    hang_up(&mut sim, bob, &call, false);
    assert_all_connected(&sim, &call, &[alice, carol]);

    // The ended call is replaced by the new one; the mute state is that of the new join.
    let again = join(&mut sim, bob, &group, JoinOptions::default(), false);
    assert_eq!(again, call);
    assert_all_connected(&sim, &call, &[alice, bob, carol]);
    assert!(!sim.world().session(bob).call(&call).unwrap().is_muted());
    assert_eq!(
        sim.world().session(bob).call(&call).unwrap().end_reason(),
        None
    );
    for who in [alice, carol] {
        assert!(!remote(&sim, who, &call, &bob_id).unwrap().is_muted());
    }
    assert_no_failures(&sim);
    sim.world().controller.check_invariants().unwrap();
}
