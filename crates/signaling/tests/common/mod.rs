//! Helpers shared by the signaling scenarios: building worlds, issuing commands and
//! settling, and reading each client's view of a call.
//!
//! Every scenario file compiles this module on its own and uses a part of it.
#![allow(dead_code)]

use std::time::Duration;

use ringwire_netsim::{Jitter, LinkConfig};
use ringwire_signaling::session::Event;
use ringwire_signaling::{
    CallId, CallState, EndReason, ErrorCode, GroupId, Identifier, JoinOptions, ParticipantState,
    RemoteParticipant,
};
use ringwire_testkit::signaling::{ClientIdx, SignalingWorld, SignalingWorldBuilder};
use ringwire_testkit::{Seed, Sim};

/// A simulation of a signaling world.
pub(crate) type World = Sim<SignalingWorld>;

/// A world on the default links (reliable, 20 ms).
pub(crate) fn sim(seed: Seed) -> World {
    sim_from(SignalingWorld::builder(seed), seed)
}

/// A world from a builder.
pub(crate) fn sim_from(builder: SignalingWorldBuilder, seed: Seed) -> World {
    let world = builder.build();
    Sim::with_clock(world.clock(), seed, world)
}

/// A reliable, ordered link whose jitter (up to 4x the latency) delays messages by
/// different amounts, so messages to different clients arrive in varying orders.
pub(crate) fn jittery_link() -> LinkConfig {
    LinkConfig::reliable(Duration::from_millis(20)).with_jitter(Jitter::Uniform {
        max: Duration::from_millis(80),
    })
}

/// A world whose every client uses [`jittery_link`].
pub(crate) fn jittery(seed: Seed) -> World {
    sim_from(SignalingWorld::builder(seed).link(jittery_link()), seed)
}

/// Adds connected `voip` users and lets them authenticate.
pub(crate) fn add_users(sim: &mut World, names: &[&str]) -> Vec<ClientIdx> {
    let clients = names
        .iter()
        .map(|name| sim.act(|w, now| w.add_user(name, now)))
        .collect();
    sim.settle();
    clients
}

/// The identifiers of some clients.
pub(crate) fn ids(sim: &World, clients: &[ClientIdx]) -> Vec<Identifier> {
    clients.iter().map(|c| sim.world().id(*c)).collect()
}

/// `group` as a group id.
pub(crate) fn group(name: &str) -> GroupId {
    GroupId::new(name).expect("test group names are valid")
}

/// `who` starts a call to `targets` and the world settles.
pub(crate) fn start(sim: &mut World, who: ClientIdx, targets: &[ClientIdx]) -> CallId {
    let targets = ids(sim, targets);
    start_to(sim, who, &targets, JoinOptions::default())
}

/// `who` starts a call to any identifiers and the world settles.
pub(crate) fn start_to(
    sim: &mut World,
    who: ClientIdx,
    targets: &[Identifier],
    options: JoinOptions,
) -> CallId {
    let call = sim
        .act(|w, now| w.session_mut(who).start_call(targets, options, now))
        .expect("start_call is allowed");
    sim.settle();
    call
}

/// `who` joins the group call of `group` and the world settles.
pub(crate) fn join(
    sim: &mut World,
    who: ClientIdx,
    group: &GroupId,
    options: JoinOptions,
    lobby: bool,
) -> CallId {
    let call = sim
        .act(|w, now| w.session_mut(who).join(group, options, lobby, now))
        .expect("join is allowed");
    sim.settle();
    call
}

/// `who` accepts the call ringing there and the world settles.
pub(crate) fn accept(sim: &mut World, who: ClientIdx, call: &CallId) {
    accept_with(sim, who, call, JoinOptions::default());
}

/// `who` accepts with options and the world settles.
pub(crate) fn accept_with(sim: &mut World, who: ClientIdx, call: &CallId, options: JoinOptions) {
    sim.act(|w, now| w.session_mut(who).accept(call, options, now))
        .expect("accept is allowed");
    sim.settle();
}

/// `who` hangs up (for everyone or not) and the world settles.
pub(crate) fn hang_up(sim: &mut World, who: ClientIdx, call: &CallId, for_everyone: bool) {
    sim.act(|w, now| w.session_mut(who).hang_up(call, for_everyone, now))
        .expect("hang_up is allowed");
    sim.settle();
}

/// `who` invites `target` and the world settles.
pub(crate) fn add(sim: &mut World, who: ClientIdx, call: &CallId, target: &Identifier) {
    sim.act(|w, now| w.session_mut(who).add_participant(call, target, now))
        .expect("add_participant is allowed");
    sim.settle();
}

/// The client's state in the call (`None` when it does not know the call).
pub(crate) fn state(sim: &World, who: ClientIdx, call: &CallId) -> Option<CallState> {
    sim.world().call_state(who, call)
}

/// Why the call ended for the client.
pub(crate) fn end_reason(sim: &World, who: ClientIdx, call: &CallId) -> Option<EndReason> {
    sim.world()
        .session(who)
        .call(call)
        .and_then(|c| c.end_reason().cloned())
}

/// The client's view of everyone else in the call, ordered by id.
pub(crate) fn roster(
    sim: &World,
    who: ClientIdx,
    call: &CallId,
) -> Vec<(Identifier, ParticipantState)> {
    sim.world()
        .session(who)
        .call(call)
        .map(|c| {
            c.remote_participants()
                .map(|p| (p.id().clone(), p.state()))
                .collect()
        })
        .unwrap_or_default()
}

/// The client's view of one remote participant.
pub(crate) fn remote(
    sim: &World,
    who: ClientIdx,
    call: &CallId,
    other: &Identifier,
) -> Option<RemoteParticipant> {
    sim.world()
        .session(who)
        .call(call)
        .and_then(|c| c.participant(other).cloned())
}

/// Asserts that every member is `Connected` in the call and sees every other member,
/// and only them, `Connected`.
#[track_caller]
pub(crate) fn assert_all_connected(sim: &World, call: &CallId, members: &[ClientIdx]) {
    for &me in members {
        assert_eq!(
            state(sim, me, call),
            Some(CallState::Connected),
            "{}'s state",
            sim.world().client(me).name
        );
        let mut expected: Vec<_> = members
            .iter()
            .filter(|other| sim.world().id(**other) != sim.world().id(me))
            .map(|other| (sim.world().id(*other), ParticipantState::Connected))
            .collect();
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        expected.dedup_by(|a, b| a.0 == b.0);
        assert_eq!(
            roster(sim, me, call),
            expected,
            "{}'s roster",
            sim.world().client(me).name
        );
    }
}

/// The client's events about one call, in order.
pub(crate) fn call_events<'a>(sim: &'a World, who: ClientIdx, call: &CallId) -> Vec<&'a Event> {
    sim.world()
        .events(who)
        .iter()
        .filter(|e| event_call(e) == Some(call))
        .collect()
}

/// The call an event is about.
pub(crate) fn event_call(event: &Event) -> Option<&CallId> {
    match event {
        Event::IncomingCall { call_id, .. }
        | Event::CallStateChanged { call_id, .. }
        | Event::ParticipantAdded { call_id, .. }
        | Event::ParticipantUpdated { call_id, .. }
        | Event::ParticipantRemoved { call_id, .. }
        | Event::MuteChanged { call_id, .. }
        | Event::DominantSpeakersChanged { call_id, .. }
        | Event::DtmfReceived { call_id, .. }
        | Event::RemoteVideoAdded { call_id, .. }
        | Event::RemoteVideoChanged { call_id, .. }
        | Event::RemoteVideoRemoved { call_id, .. }
        | Event::VideoSlotsChanged { call_id, .. }
        | Event::MediaReceived { call_id, .. } => Some(call_id),
        Event::RequestFailed { call_id, .. } => call_id.as_ref(),
        _ => None,
    }
}

/// The call states the client went through, in order.
pub(crate) fn state_history(sim: &World, who: ClientIdx, call: &CallId) -> Vec<CallState> {
    call_events(sim, who, call)
        .into_iter()
        .filter_map(|e| match e {
            Event::CallStateChanged { state, .. } => Some(*state),
            _ => None,
        })
        .collect()
}

/// The reasons of every `ParticipantRemoved` event the client got about `other`.
pub(crate) fn removals(
    sim: &World,
    who: ClientIdx,
    call: &CallId,
    other: &Identifier,
) -> Vec<Option<EndReason>> {
    call_events(sim, who, call)
        .into_iter()
        .filter_map(|e| match e {
            Event::ParticipantRemoved { id, reason, .. } if id == other => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

/// The errors the server sent the client, as `(code, call)`.
pub(crate) fn failures(sim: &World, who: ClientIdx) -> Vec<(ErrorCode, Option<CallId>)> {
    sim.world()
        .events(who)
        .iter()
        .filter_map(|e| match e {
            Event::RequestFailed { code, call_id, .. } => Some((*code, call_id.clone())),
            _ => None,
        })
        .collect()
}

/// Asserts that no client got an error from the server.
#[track_caller]
pub(crate) fn assert_no_failures(sim: &World) {
    for (i, client) in sim.world().clients().iter().enumerate() {
        assert_eq!(
            failures(sim, ClientIdx(i)),
            vec![],
            "{} got errors",
            client.name
        );
    }
}

/// Asserts that the client's call ended with `reason`.
#[track_caller]
pub(crate) fn assert_ended(sim: &World, who: ClientIdx, call: &CallId, reason: &EndReason) {
    let name = &sim.world().client(who).name;
    assert_eq!(
        state(sim, who, call),
        Some(CallState::Disconnected),
        "{name}'s state"
    );
    assert_eq!(
        end_reason(sim, who, call).as_ref(),
        Some(reason),
        "{name}'s end reason"
    );
    assert_eq!(
        roster(sim, who, call),
        vec![],
        "{name}'s roster after the end"
    );
}
