//! Seed row: camera and screen share are visible to the others; only one of them may be
//! on at a time, and the server refuses the other with `InvalidState`.

mod common;

use common::*;
use ringwire_signaling::session::Event;
use ringwire_signaling::{ClientMessage, Error, ErrorCode, JoinOptions, VideoKind};
use ringwire_testkit::{Seed, for_each_seed};

#[test]
fn camera_and_screen_share_are_visible_to_others() {
    for_each_seed(|seed| {
        let mut sim = sim(seed);
        let [alice, bob, carol] = add_users(&mut sim, &["alice", "bob", "carol"])[..] else {
            unreachable!()
        };
        let alice_id = sim.world().id(alice);
        let group = group("demo");
        let call = join(&mut sim, alice, &group, JoinOptions::default(), false);
        join(&mut sim, bob, &group, JoinOptions::default(), false);
        join(&mut sim, carol, &group, JoinOptions::default(), false);

        for kind in [VideoKind::Camera, VideoKind::ScreenShare] {
            sim.act(|w, now| w.session_mut(alice).start_video(&call, kind, now))
                .unwrap();
            sim.settle();
            assert_eq!(
                sim.world().session(alice).call(&call).unwrap().video(),
                &[kind]
            );
            for who in [bob, carol] {
                assert_eq!(
                    remote(&sim, who, &call, &alice_id).unwrap().video(),
                    &[kind]
                );
                assert!(call_events(&sim, who, &call).iter().any(|e| matches!(
                    e,
                    Event::ParticipantUpdated { participant, .. }
                        if participant.id == alice_id && participant.video == [kind]
                )));
            }

            sim.act(|w, now| w.session_mut(alice).stop_video(&call, kind, now))
                .unwrap();
            sim.settle();
            assert!(
                sim.world()
                    .session(alice)
                    .call(&call)
                    .unwrap()
                    .video()
                    .is_empty()
            );
            for who in [bob, carol] {
                assert!(
                    remote(&sim, who, &call, &alice_id)
                        .unwrap()
                        .video()
                        .is_empty()
                );
            }
        }
        assert_all_connected(&sim, &call, &[alice, bob, carol]);
        assert_no_failures(&sim);
        sim.world().controller.check_invariants().unwrap();
    });
}

#[test]
fn screen_share_while_the_camera_is_on_is_refused() {
    let seed = Seed::new(51);
    let mut sim = sim(seed);
    let [alice, bob] = add_users(&mut sim, &["alice", "bob"])[..] else {
        unreachable!()
    };
    let alice_id = sim.world().id(alice);
    let call = start(&mut sim, alice, &[bob]);
    accept(&mut sim, bob, &call);
    sim.act(|w, now| {
        w.session_mut(alice)
            .start_video(&call, VideoKind::Camera, now)
    })
    .unwrap();
    sim.settle();

    // The session refuses it locally and sends nothing...
    let local = sim.act(|w, now| {
        w.session_mut(alice)
            .start_video(&call, VideoKind::ScreenShare, now)
    });
    assert!(
        matches!(
            local,
            Err(Error::VideoBusy {
                requested: VideoKind::ScreenShare,
                active: VideoKind::Camera,
                ..
            })
        ),
        "{local:?}"
    );
    sim.settle();
    assert_no_failures(&sim);

    // ...and the server refuses the raw request.
    sim.act(|w, now| {
        w.send_message(
            alice,
            &ClientMessage::StartVideo {
                call_id: call.clone(),
                kind: VideoKind::ScreenShare,
            },
            now,
        )
    });
    sim.settle();
    assert_eq!(
        failures(&sim, alice),
        vec![(ErrorCode::InvalidState, Some(call.clone()))]
    );
    // Nothing changed: the camera stays on, the call goes on.
    assert_eq!(
        sim.world().session(alice).call(&call).unwrap().video(),
        &[VideoKind::Camera]
    );
    assert_eq!(
        remote(&sim, bob, &call, &alice_id).unwrap().video(),
        &[VideoKind::Camera]
    );
    assert_all_connected(&sim, &call, &[alice, bob]);
    assert_eq!(failures(&sim, bob), vec![]);
    sim.world().controller.check_invariants().unwrap();
}

#[test]
fn joining_with_video_shows_the_camera() {
    let seed = Seed::new(52);
    let mut sim = sim(seed);
    let [alice, bob, carol] = add_users(&mut sim, &["alice", "bob", "carol"])[..] else {
        unreachable!()
    };
    let with_video = JoinOptions {
        muted: false,
        video: true,
    };
    let [alice_id, bob_id, carol_id] = [alice, bob, carol].map(|c| sim.world().id(c));
    let group = group("sync");
    let call = join(&mut sim, alice, &group, with_video, false);
    assert_eq!(
        sim.world().session(alice).call(&call).unwrap().video(),
        &[VideoKind::Camera]
    );
    join(&mut sim, bob, &group, JoinOptions::default(), false);
    assert_eq!(
        remote(&sim, bob, &call, &alice_id).unwrap().video(),
        &[VideoKind::Camera]
    );
    assert!(
        remote(&sim, alice, &call, &bob_id)
            .unwrap()
            .video()
            .is_empty()
    );

    add(&mut sim, alice, &call, &carol_id);
    accept_with(&mut sim, carol, &call, with_video);
    for who in [alice, bob] {
        assert_eq!(
            remote(&sim, who, &call, &carol_id).unwrap().video(),
            &[VideoKind::Camera]
        );
    }
    assert_no_failures(&sim);
    sim.world().controller.check_invariants().unwrap();
}
