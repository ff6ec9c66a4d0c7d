//! The seed's Roster table (DESIGN.md), one test per row.

use crate::harness::Harness;
use crate::kit::*;
use ringwire_calling::{AcceptCallOptions, CallEvent};
use ringwire_signaling::{CallState, EndReason, Identifier, ParticipantState};

/// Roster: list participants. Three in a group call: each roster lists the other
/// two, connected and unmuted, ordered by identifier, all in the same call.
#[tokio::test]
async fn list_participants() {
    let h = Harness::start().await;
    let (users, calls) = group_of_three(&h).await;
    for (u, call) in users.iter().zip(&calls) {
        let roster = call.remote_participants();
        let ids: Vec<Identifier> = roster.iter().map(|p| p.identifier().clone()).collect();
        let mut others: Vec<Identifier> = users
            .iter()
            .filter(|o| o.id != u.id)
            .map(|o| o.id.clone())
            .collect();
        others.sort();
        assert_eq!(ids, others, "{}'s roster", u.id);
        for p in &roster {
            assert_eq!(p.state(), ParticipantState::Connected);
            assert!(!p.is_muted());
            assert_eq!(p.display_name(), None);
        }
        assert_eq!(call.id(), calls[0].id());
    }
    h.server.shut_down().await;
}

/// Roster: remove a participant. alice adds carol to her call with bob, then removes
/// her: carol's call ends as removed, carol leaves every roster with that reason, and
/// the call goes on for alice and bob.
#[tokio::test]
async fn remove_a_participant() {
    let h = Harness::start().await;
    let alice = user(&h, "alice", 1).await;
    let bob = user(&h, "bob", 2).await;
    let carol = user(&h, "carol", 3).await;
    let (a, b) = connected_pair(&alice, &bob).await;
    a.add_participant(&carol.id).await.unwrap();
    let c = incoming(&carol)
        .await
        .accept(AcceptCallOptions::new())
        .await
        .unwrap();
    until_state(&c, CallState::Connected).await;
    for call in [&a, &b] {
        until_participant(call, &carol.id, "connected", |p| {
            p.state() == ParticipantState::Connected
        })
        .await;
    }
    let carol_on_bob = b.remote_participant(&carol.id).unwrap();
    let mut bob_events = b.events();

    a.remove_participant(&carol.id).await.unwrap();
    until_state(&c, CallState::Disconnected).await;
    assert_eq!(c.end_reason(), Some(EndReason::removed()));
    for call in [&a, &b] {
        until_gone(call, &carol.id).await;
        assert_eq!(call.state(), CallState::Connected);
        assert_eq!(call.remote_participants().len(), 1);
    }
    assert_eq!(carol_on_bob.state(), ParticipantState::Disconnected);
    assert_eq!(carol_on_bob.end_reason(), Some(EndReason::removed()));
    let reason = within("carol's removal on bob's events", async {
        loop {
            if let Some(CallEvent::ParticipantRemoved { identifier, reason }) =
                bob_events.recv().await
                && identifier == carol.id
            {
                return reason;
            }
        }
    })
    .await;
    assert_eq!(reason, Some(EndReason::removed()));
    h.server.shut_down().await;
}
