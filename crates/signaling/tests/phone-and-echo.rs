//! Seed row: calling phone numbers (through the gateway, with the `pstn` scope) and
//! the echo service; dialling out of a group call.

mod common;

use std::time::Duration;

use common::*;
use ringwire_signaling::controller::GatewayCommand;
use ringwire_signaling::token::{Scope, Scopes};
use ringwire_signaling::{
    CallId, CallState, ClientMessage, ErrorCode, Identifier, JoinOptions, ParticipantState,
};
use ringwire_testkit::signaling::{ClientIdx, GatewayScript};
use ringwire_testkit::{Seed, for_each_seed};

const NUMBER: &str = "+15551230000";

fn phone() -> Identifier {
    Identifier::phone(NUMBER).expect("a valid E.164 number")
}

fn add_pstn_user(sim: &mut World, name: &str) -> ClientIdx {
    let scopes = Scopes::from(Scope::Voip).with(Scope::Pstn);
    let who = sim.act(|w, now| w.add_user_with(name, scopes, now));
    sim.settle();
    who
}

fn dials(sim: &World) -> Vec<(CallId, Identifier, Identifier)> {
    sim.world()
        .gateway_log()
        .iter()
        .filter_map(|c| match c {
            GatewayCommand::Dial {
                call_id,
                target,
                caller,
                ..
            } => Some((call_id.clone(), target.clone(), caller.clone())),
            _ => None,
        })
        .collect()
}

fn hang_ups(sim: &World) -> Vec<(CallId, Identifier)> {
    sim.world()
        .gateway_log()
        .iter()
        .filter_map(|c| match c {
            GatewayCommand::HangUp {
                call_id, target, ..
            } => Some((call_id.clone(), target.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn calling_a_phone_dials_the_gateway_and_rings() {
    let seed = Seed::new(101);
    let mut sim = sim(seed);
    let alice = add_pstn_user(&mut sim, "alice");
    let alice_id = sim.world().id(alice);
    assert_eq!(phone().to_string(), format!("4:{NUMBER}"));
    let call = start_to(&mut sim, alice, &[phone()], JoinOptions::default());
    assert_eq!(dials(&sim), vec![(call.clone(), phone(), alice_id)]);
    assert_eq!(state(&sim, alice, &call), Some(CallState::Ringing));
    assert_eq!(
        roster(&sim, alice, &call),
        vec![(phone(), ParticipantState::Ringing)]
    );

    // Hanging up while it rings tells the gateway to drop the leg.
    hang_up(&mut sim, alice, &call, false);
    assert_eq!(hang_ups(&sim), vec![(call.clone(), phone())]);
    assert_eq!(sim.world().controller.calls().count(), 0);
    assert_no_failures(&sim);
    sim.world().controller.check_invariants().unwrap();
}

#[test]
fn early_media_then_answer() {
    for_each_seed(|seed| {
        let mut sim = sim(seed);
        let alice = add_pstn_user(&mut sim, "alice");
        sim.world_mut().script_gateway(
            phone(),
            GatewayScript::EarlyMediaThenAnswer(
                Duration::from_millis(200),
                Duration::from_millis(2_000),
            ),
        );
        let call = sim
            .act(|w, now| {
                w.session_mut(alice)
                    .start_call(&[phone()], JoinOptions::default(), now)
            })
            .unwrap();
        sim.run_for(Duration::from_millis(500));
        assert_eq!(state(&sim, alice, &call), Some(CallState::EarlyMedia));
        assert_eq!(
            roster(&sim, alice, &call),
            vec![(phone(), ParticipantState::EarlyMedia)]
        );

        sim.run_for(Duration::from_secs(2));
        assert_eq!(state(&sim, alice, &call), Some(CallState::Connected));
        assert_eq!(
            roster(&sim, alice, &call),
            vec![(phone(), ParticipantState::Connected)]
        );
        assert_eq!(
            state_history(&sim, alice, &call),
            vec![
                CallState::Connecting,
                CallState::Ringing,
                CallState::EarlyMedia,
                CallState::Connected
            ]
        );

        hang_up(&mut sim, alice, &call, false);
        assert_eq!(hang_ups(&sim), vec![(call.clone(), phone())]);
        assert_no_failures(&sim);
        sim.world().controller.check_invariants().unwrap();
    });
}

#[test]
fn busy_phone_ends_the_call_with_486() {
    let seed = Seed::new(102);
    let mut sim = sim(seed);
    let alice = add_pstn_user(&mut sim, "alice");
    sim.world_mut().script_gateway(
        phone(),
        GatewayScript::Fail(Duration::from_millis(300), 486),
    );
    let call = start_to(&mut sim, alice, &[phone()], JoinOptions::default());
    assert_eq!(state(&sim, alice, &call), Some(CallState::Disconnected));
    assert_eq!(end_reason(&sim, alice, &call).map(|r| r.code), Some(486));
    // The gateway ended the leg itself: nothing to hang up.
    assert_eq!(hang_ups(&sim), vec![]);
    assert_eq!(sim.world().controller.calls().count(), 0);
    sim.world().controller.check_invariants().unwrap();
}

#[test]
fn echo_service_answers_and_connects() {
    let seed = Seed::new(103);
    let mut sim = sim(seed);
    // The echo service needs no pstn scope.
    let [alice] = add_users(&mut sim, &["alice"])[..] else {
        unreachable!()
    };
    let echo: Identifier = "8:echo123".parse().unwrap();
    assert_eq!(echo, Identifier::EchoService);
    let call = start_to(
        &mut sim,
        alice,
        std::slice::from_ref(&echo),
        JoinOptions::default(),
    );
    assert_eq!(
        dials(&sim),
        vec![(call.clone(), echo.clone(), sim.world().id(alice))]
    );
    assert_eq!(state(&sim, alice, &call), Some(CallState::Connected));
    assert_eq!(
        roster(&sim, alice, &call),
        vec![(echo.clone(), ParticipantState::Connected)]
    );
    hang_up(&mut sim, alice, &call, false);
    assert_eq!(hang_ups(&sim), vec![(call.clone(), echo)]);
    assert_eq!(sim.world().controller.calls().count(), 0);
    assert_no_failures(&sim);
    sim.world().controller.check_invariants().unwrap();
}

#[test]
fn calling_a_phone_without_the_pstn_scope_is_refused_with_403() {
    let seed = Seed::new(104);
    let mut sim = sim(seed);
    let [bob] = add_users(&mut sim, &["bob"])[..] else {
        unreachable!()
    };
    let call = start_to(&mut sim, bob, &[phone()], JoinOptions::default());
    assert_eq!(state(&sim, bob, &call), Some(CallState::Disconnected));
    assert_eq!(end_reason(&sim, bob, &call).map(|r| r.code), Some(403));
    assert_eq!(dials(&sim), vec![]);
    assert_eq!(sim.world().controller.calls().count(), 0);
    sim.world().controller.check_invariants().unwrap();
}

#[test]
fn dialling_out_of_a_group_call_and_hanging_up() {
    for_each_seed(|seed| {
        let mut sim = jittery(seed);
        let alice = add_pstn_user(&mut sim, "alice");
        let [bob] = add_users(&mut sim, &["bob"])[..] else {
            unreachable!()
        };
        sim.world_mut()
            .script_gateway(phone(), GatewayScript::Answer(Duration::from_millis(300)));
        let group = group("dial-out");
        let call = join(&mut sim, alice, &group, JoinOptions::default(), false);
        join(&mut sim, bob, &group, JoinOptions::default(), false);

        // Bob has no pstn scope: refused, nothing dialled.
        sim.act(|w, now| {
            w.send_message(
                bob,
                &ClientMessage::AddParticipant {
                    call_id: call.clone(),
                    target: phone(),
                },
                now,
            )
        });
        sim.settle();
        assert_eq!(
            failures(&sim, bob),
            vec![(ErrorCode::MissingScope, Some(call.clone()))]
        );
        assert_eq!(dials(&sim), vec![]);

        let alice_id = sim.world().id(alice);
        sim.act(|w, now| w.session_mut(alice).add_participant(&call, &phone(), now))
            .unwrap();
        sim.run_for(Duration::from_millis(150));
        assert_eq!(dials(&sim), vec![(call.clone(), phone(), alice_id)]);
        sim.settle();
        for who in [alice, bob] {
            assert_eq!(state(&sim, who, &call), Some(CallState::Connected));
            assert_eq!(
                remote(&sim, who, &call, &phone()).map(|p| p.state()),
                Some(ParticipantState::Connected)
            );
        }

        // The phone does not keep the call alive: when the last human leaves, the
        // gateway is told to hang up.
        hang_up(&mut sim, bob, &call, false);
        assert_eq!(hang_ups(&sim), vec![]);
        hang_up(&mut sim, alice, &call, false);
        assert_eq!(hang_ups(&sim), vec![(call.clone(), phone())]);
        assert_eq!(sim.world().controller.calls().count(), 0);
        assert_eq!(failures(&sim, alice), vec![]);
        sim.world().controller.check_invariants().unwrap();
    });
}
