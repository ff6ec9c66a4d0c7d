//! Seed row: inviting someone into a running group call (`add_participant`): the
//! invitee rings and everyone sees it ringing; accepting connects it, declining (603),
//! not answering (408) and being offline (480) take it out of everyone's roster.

mod common;

use std::time::Duration;

use common::*;
use ringwire_signaling::session::Event;
use ringwire_signaling::{CallId, CallState, EndReason, Identifier, JoinOptions, ParticipantState};
use ringwire_testkit::signaling::ClientIdx;
use ringwire_testkit::{Seed, for_each_seed};

/// Alice and bob in the group call of `group`, plus an idle carol.
fn running(sim: &mut World) -> ([ClientIdx; 3], CallId) {
    let [alice, bob, carol] = add_users(sim, &["alice", "bob", "carol"])[..] else {
        unreachable!()
    };
    let group = group("ops");
    let call = join(sim, alice, &group, JoinOptions::default(), false);
    join(sim, bob, &group, JoinOptions::default(), false);
    assert_all_connected(sim, &call, &[alice, bob]);
    ([alice, bob, carol], call)
}

/// Asserts that alice and bob both see `target` ringing.
#[track_caller]
fn assert_ringing_for_members(
    sim: &World,
    call: &CallId,
    members: &[ClientIdx],
    target: &Identifier,
) {
    for &who in members {
        assert_eq!(state(sim, who, call), Some(CallState::Connected));
        assert_eq!(
            remote(sim, who, call, target).map(|p| p.state()),
            Some(ParticipantState::Ringing),
            "{} sees the invitee ringing",
            sim.world().client(who).name
        );
    }
}

#[test]
fn invitee_rings_for_everyone_and_accepting_connects_it() {
    for_each_seed(|seed| {
        let mut sim = sim(seed);
        let ([alice, bob, carol], call) = running(&mut sim);
        let carol_id = sim.world().id(carol);

        add(&mut sim, bob, &call, &carol_id);
        assert_eq!(state(&sim, carol, &call), Some(CallState::Incoming));
        assert!(sim.world().events(carol).iter().any(|e| matches!(
            e,
            Event::IncomingCall { call_id, caller, group_id, .. }
                if *call_id == call && *caller == sim.world().id(bob) && group_id.is_some()
        )));
        assert_eq!(
            sim.world().session(carol).call(&call).unwrap().group_id(),
            call.group().as_ref()
        );
        assert_ringing_for_members(&sim, &call, &[alice, bob], &carol_id);

        accept(&mut sim, carol, &call);
        assert_all_connected(&sim, &call, &[alice, bob, carol]);
        assert_no_failures(&sim);
        sim.world().controller.check_invariants().unwrap();
    });
}

#[test]
fn declined_invitation_is_removed_with_603() {
    let seed = Seed::new(21);
    let mut sim = sim(seed);
    let ([alice, bob, carol], call) = running(&mut sim);
    let carol_id = sim.world().id(carol);
    add(&mut sim, alice, &call, &carol_id);
    assert_ringing_for_members(&sim, &call, &[alice, bob], &carol_id);

    sim.act(|w, now| w.session_mut(carol).reject(&call, now))
        .unwrap();
    sim.settle();
    assert_ended(&sim, carol, &call, &EndReason::declined());
    assert_all_connected(&sim, &call, &[alice, bob]);
    for who in [alice, bob] {
        assert_eq!(
            removals(&sim, who, &call, &carol_id),
            vec![Some(EndReason::declined())]
        );
    }
    assert_no_failures(&sim);
    sim.world().controller.check_invariants().unwrap();
}

#[test]
fn unanswered_invitation_is_removed_with_408_after_the_ring_timeout() {
    let seed = Seed::new(22);
    let mut sim = sim(seed);
    let ([alice, bob, carol], call) = running(&mut sim);
    let carol_id = sim.world().id(carol);
    add(&mut sim, alice, &call, &carol_id);

    // Still ringing just before the default 30 s ring timeout...
    sim.run_for(Duration::from_secs(28));
    assert_eq!(state(&sim, carol, &call), Some(CallState::Incoming));
    assert_ringing_for_members(&sim, &call, &[alice, bob], &carol_id);

    // ...and gone after it.
    sim.run_for(Duration::from_secs(3));
    assert_ended(&sim, carol, &call, &EndReason::no_answer());
    assert_all_connected(&sim, &call, &[alice, bob]);
    for who in [alice, bob] {
        assert_eq!(
            removals(&sim, who, &call, &carol_id),
            vec![Some(EndReason::no_answer())]
        );
    }
    assert_no_failures(&sim);
    sim.world().controller.check_invariants().unwrap();
}

#[test]
fn offline_invitee_is_reported_unavailable_with_480() {
    let seed = Seed::new(23);
    let mut sim = sim(seed);
    let ([alice, bob, _carol], call) = running(&mut sim);
    let offline = Identifier::user("frank").unwrap();
    add(&mut sim, alice, &call, &offline);

    assert_all_connected(&sim, &call, &[alice, bob]);
    assert_eq!(remote(&sim, alice, &call, &offline), None);
    assert_eq!(
        sim.world().controller.roster(&call).map(|r| r.len()),
        Some(2)
    );
    // Nobody had frank in their roster, yet the app must learn why he is not coming.
    for who in [alice, bob] {
        assert_eq!(
            removals(&sim, who, &call, &offline),
            vec![Some(EndReason::unavailable())],
            "{} learns that frank is unavailable",
            sim.world().client(who).name
        );
    }
    assert_no_failures(&sim);
    sim.world().controller.check_invariants().unwrap();
}

#[test]
fn inviting_someone_already_in_the_call_is_refused() {
    let seed = Seed::new(24);
    let mut sim = sim(seed);
    let ([alice, bob, _carol], call) = running(&mut sim);
    let bob_id = sim.world().id(bob);
    // The session refuses locally; the server refuses the raw request too.
    assert!(
        sim.act(|w, now| w.session_mut(alice).add_participant(&call, &bob_id, now))
            .is_err()
    );
    sim.act(|w, now| {
        w.send_message(
            alice,
            &ringwire_signaling::ClientMessage::AddParticipant {
                call_id: call.clone(),
                target: bob_id.clone(),
            },
            now,
        )
    });
    sim.settle();
    assert_eq!(
        failures(&sim, alice),
        vec![(
            ringwire_signaling::ErrorCode::AlreadyInCall,
            Some(call.clone())
        )]
    );
    assert_all_connected(&sim, &call, &[alice, bob]);
    sim.world().controller.check_invariants().unwrap();
}
