//! Inbound phone calls: the gateway hands the controller a call from a phone number
//! to a number dispatched to a user (rings every device, the phone as the caller) or
//! to a group call (the phone joins). Driven by the fake clock.

mod common;

use std::time::Duration;

use common::*;
use ringwire_signaling::controller::{GatewayCommand, GatewayEvent, InboundTarget, MediaCommand};
use ringwire_signaling::session::Event;
use ringwire_signaling::{
    CallId, CallState, EndReason, Identifier, JoinOptions, ParticipantState, UserId,
};
use ringwire_testkit::Seed;
use ringwire_testkit::signaling::{ClientIdx, SignalingWorld};

const CALLER: &str = "+15557654321";

fn phone() -> Identifier {
    Identifier::phone(CALLER).expect("a valid E.164 number")
}

fn call_id(name: &str) -> CallId {
    CallId::new(name).expect("a valid call id")
}

/// The gateway commands about the phone leg, without the call id.
fn leg_commands(sim: &World) -> Vec<GatewayCommand> {
    sim.world()
        .gateway_log()
        .iter()
        .filter(|c| match c {
            GatewayCommand::Answer { target, .. }
            | GatewayCommand::HangUp { target, .. }
            | GatewayCommand::SendDtmf { target, .. } => *target == phone(),
            GatewayCommand::Dial { .. } => false,
        })
        .cloned()
        .collect()
}

fn answer(call: &CallId) -> GatewayCommand {
    GatewayCommand::Answer {
        call_id: call.clone(),
        target: phone(),
    }
}

fn refused(call: &CallId, reason: EndReason) -> GatewayCommand {
    GatewayCommand::HangUp {
        call_id: call.clone(),
        target: phone(),
        reason,
    }
}

/// The phone rings `user`; returns the call.
fn phone_calls(sim: &mut World, user: &str, call: &str) -> CallId {
    let user = UserId::new(user).expect("a valid user id");
    let call = sim
        .act(|w, now| {
            w.controller
                .start_gateway_call(call_id(call), phone(), InboundTarget::User(user), now)
        })
        .expect("the user is online");
    sim.settle();
    call
}

fn incoming(sim: &World, who: ClientIdx) -> Vec<(CallId, Identifier)> {
    sim.world()
        .events(who)
        .iter()
        .filter_map(|e| match e {
            Event::IncomingCall {
                call_id, caller, ..
            } => Some((call_id.clone(), caller.clone())),
            _ => None,
        })
        .collect()
}

fn phone_in_media(sim: &World, call: &CallId) -> bool {
    sim.world().media_log().iter().any(|c| {
        matches!(c, MediaCommand::Join { call_id, participant, .. }
            if call_id == call && *participant == phone())
    })
}

#[test]
fn a_phone_rings_every_device_and_the_first_accept_answers_it() {
    let mut sim = sim(Seed::new(901));
    let [alice_phone, alice_laptop] = add_users(&mut sim, &["alice", "alice"])[..] else {
        unreachable!()
    };
    let call = phone_calls(&mut sim, "alice", "pstn-in-1");
    for device in [alice_phone, alice_laptop] {
        assert_eq!(incoming(&sim, device), vec![(call.clone(), phone())]);
    }
    // Nothing is answered while it rings.
    assert_eq!(leg_commands(&sim), vec![]);
    assert!(!phone_in_media(&sim, &call));
    sim.world().controller.check_invariants().unwrap();

    accept(&mut sim, alice_laptop, &call);
    assert_eq!(leg_commands(&sim), vec![answer(&call)]);
    assert!(phone_in_media(&sim, &call));
    assert_eq!(state(&sim, alice_laptop, &call), Some(CallState::Connected));
    assert_eq!(
        roster(&sim, alice_laptop, &call),
        vec![(phone(), ParticipantState::Connected)]
    );
    // The other device stops ringing.
    assert_eq!(
        state(&sim, alice_phone, &call),
        Some(CallState::Disconnected)
    );
    sim.world().controller.check_invariants().unwrap();

    // Hanging up BYEs the phone.
    hang_up(&mut sim, alice_laptop, &call, false);
    assert_eq!(
        leg_commands(&sim),
        vec![answer(&call), refused(&call, EndReason::normal())]
    );
    assert_eq!(sim.world().controller.calls().count(), 0);
    assert_no_failures(&sim);
}

#[test]
fn a_declined_phone_call_is_refused_with_603() {
    let mut sim = sim(Seed::new(902));
    let [alice] = add_users(&mut sim, &["alice"])[..] else {
        unreachable!()
    };
    let call = phone_calls(&mut sim, "alice", "pstn-in-2");
    sim.act(|w, now| w.session_mut(alice).reject(&call, now))
        .unwrap();
    sim.settle();
    assert_eq!(
        leg_commands(&sim),
        vec![refused(&call, EndReason::declined())]
    );
    assert_eq!(sim.world().controller.calls().count(), 0);
    assert!(!phone_in_media(&sim, &call));
    sim.world().controller.check_invariants().unwrap();
}

#[test]
fn an_unanswered_phone_call_is_refused_with_408_after_the_ring_timeout() {
    let world = SignalingWorld::builder(Seed::new(903)).ring_timeout(Duration::from_secs(20));
    let mut sim = sim_from(world, Seed::new(903));
    let [alice] = add_users(&mut sim, &["alice"])[..] else {
        unreachable!()
    };
    let call = phone_calls(&mut sim, "alice", "pstn-in-3");
    sim.run_for(Duration::from_secs(17));
    assert_eq!(leg_commands(&sim), vec![]);
    sim.run_for(Duration::from_secs(3));
    assert_eq!(
        leg_commands(&sim),
        vec![refused(&call, EndReason::no_answer())]
    );
    assert_eq!(end_reason(&sim, alice, &call).map(|r| r.code), Some(408));
    assert_eq!(sim.world().controller.calls().count(), 0);
    sim.world().controller.check_invariants().unwrap();
}

#[test]
fn a_phone_that_hangs_up_while_ringing_cancels_the_call() {
    let mut sim = sim(Seed::new(904));
    let [alice] = add_users(&mut sim, &["alice"])[..] else {
        unreachable!()
    };
    let call = phone_calls(&mut sim, "alice", "pstn-in-4");
    sim.act(|w, now| {
        w.controller.handle_gateway_event(
            &call,
            &phone(),
            GatewayEvent::Ended(EndReason::cancelled()),
            now,
        );
    });
    sim.settle();
    assert_eq!(state(&sim, alice, &call), Some(CallState::Disconnected));
    assert_eq!(end_reason(&sim, alice, &call).map(|r| r.code), Some(487));
    // The gateway ended the leg itself: nothing goes back to it.
    assert_eq!(leg_commands(&sim), vec![]);
    assert_eq!(sim.world().controller.calls().count(), 0);
    sim.world().controller.check_invariants().unwrap();
}

#[test]
fn the_phone_hanging_up_after_the_answer_ends_the_call() {
    let mut sim = sim(Seed::new(905));
    let [alice] = add_users(&mut sim, &["alice"])[..] else {
        unreachable!()
    };
    let call = phone_calls(&mut sim, "alice", "pstn-in-5");
    accept(&mut sim, alice, &call);
    sim.act(|w, now| {
        w.controller.handle_gateway_event(
            &call,
            &phone(),
            GatewayEvent::Ended(EndReason::normal()),
            now,
        );
    });
    sim.settle();
    assert_eq!(state(&sim, alice, &call), Some(CallState::Disconnected));
    assert_eq!(
        end_reason(&sim, alice, &call),
        Some(EndReason::remote_hung_up())
    );
    assert_eq!(leg_commands(&sim), vec![answer(&call)]);
    sim.world().controller.check_invariants().unwrap();
}

#[test]
fn nobody_online_or_no_group_call_refuses_the_phone_with_480() {
    let mut sim = sim(Seed::new(906));
    let offline = sim.act(|w, now| {
        w.controller.start_gateway_call(
            call_id("pstn-in-6"),
            phone(),
            InboundTarget::User(UserId::new("nobody").unwrap()),
            now,
        )
    });
    assert_eq!(offline.unwrap_err().code, 480);
    let no_group = sim.act(|w, now| {
        w.controller.start_gateway_call(
            call_id("pstn-in-7"),
            phone(),
            InboundTarget::Group(group("standup")),
            now,
        )
    });
    assert_eq!(no_group.unwrap_err().code, 480);
    let a_user_is_no_gateway_leg = sim.act(|w, now| {
        w.controller.start_gateway_call(
            call_id("pstn-in-8"),
            Identifier::User(UserId::new("mallory").unwrap()),
            InboundTarget::Group(group("standup")),
            now,
        )
    });
    assert_eq!(a_user_is_no_gateway_leg.unwrap_err().code, 403);
    assert_eq!(sim.world().controller.calls().count(), 0);
    assert_eq!(leg_commands(&sim), vec![]);
}

#[test]
fn a_phone_dispatched_to_a_group_joins_its_running_call() {
    let mut sim = sim(Seed::new(907));
    let [alice, bob] = add_users(&mut sim, &["alice", "bob"])[..] else {
        unreachable!()
    };
    let standup = group("standup");
    for who in [alice, bob] {
        sim.act(|w, now| {
            w.session_mut(who)
                .join(&standup, JoinOptions::default(), false, now)
        })
        .unwrap();
        sim.settle();
    }
    let call = sim
        .act(|w, now| {
            w.controller.start_gateway_call(
                call_id("ignored"),
                phone(),
                InboundTarget::Group(standup.clone()),
                now,
            )
        })
        .unwrap();
    sim.settle();
    assert_eq!(call, CallId::for_group(&standup));
    assert_eq!(leg_commands(&sim), vec![answer(&call)]);
    assert!(phone_in_media(&sim, &call));
    for who in [alice, bob] {
        assert!(
            roster(&sim, who, &call).contains(&(phone(), ParticipantState::Connected)),
            "{:?}",
            roster(&sim, who, &call)
        );
    }
    // The same phone twice is busy.
    let again = sim.act(|w, now| {
        w.controller.start_gateway_call(
            call_id("ignored"),
            phone(),
            InboundTarget::Group(standup.clone()),
            now,
        )
    });
    assert_eq!(again.unwrap_err().code, 486);

    // Everyone leaving BYEs the phone.
    hang_up(&mut sim, alice, &call, false);
    hang_up(&mut sim, bob, &call, false);
    assert_eq!(
        leg_commands(&sim),
        vec![answer(&call), refused(&call, EndReason::normal())]
    );
    assert_eq!(sim.world().controller.calls().count(), 0);
    sim.world().controller.check_invariants().unwrap();
}

#[test]
fn dtmf_goes_both_ways_between_a_phone_and_the_call() {
    let mut sim = sim(Seed::new(908));
    let [alice] = add_users(&mut sim, &["alice"])[..] else {
        unreachable!()
    };
    let call = phone_calls(&mut sim, "alice", "pstn-in-9");
    // No DTMF before the call is connected.
    assert!(
        sim.act(|w, now| w.session_mut(alice).send_dtmf(&call, "1", now))
            .is_err()
    );
    accept(&mut sim, alice, &call);

    // The phone presses 4 then #: alice hears of both, in order.
    for digits in ["4", "#"] {
        sim.act(|w, now| {
            w.controller
                .handle_gateway_dtmf(&call, &phone(), digits, now);
        });
    }
    // Junk from the gateway is dropped.
    sim.act(|w, now| {
        w.controller.handle_gateway_dtmf(&call, &phone(), "x", now);
    });
    sim.settle();
    let heard: Vec<(Identifier, String)> = call_events(&sim, alice, &call)
        .into_iter()
        .filter_map(|e| match e {
            Event::DtmfReceived { from, digits, .. } => Some((from.clone(), digits.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        heard,
        vec![(phone(), "4".to_owned()), (phone(), "#".to_owned())]
    );

    // Alice dials digits: the gateway plays them to the phone.
    sim.act(|w, now| w.session_mut(alice).send_dtmf(&call, "12*", now))
        .unwrap();
    sim.settle();
    assert_eq!(
        leg_commands(&sim),
        vec![
            answer(&call),
            GatewayCommand::SendDtmf {
                call_id: call.clone(),
                target: phone(),
                digits: "12*".into(),
            }
        ]
    );
    // Bad digits never leave the client.
    assert!(
        sim.act(|w, now| w.session_mut(alice).send_dtmf(&call, "12x", now))
            .is_err()
    );
    assert_no_failures(&sim);
    sim.world().controller.check_invariants().unwrap();
}
