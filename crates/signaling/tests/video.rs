//! Seed row: camera and screen share are visible to the others, with their sizes;
//! only one of them may be on at a time, and the server refuses the other with
//! `InvalidState`.
//!
//! The others learn about streams from `RemoteVideoAdded`, `RemoteVideoChanged` (a new
//! size: the sender switched source) and `RemoteVideoRemoved` (stopped, or the sender
//! left), so an app can create and drop renderers from the events alone. Bad sizes
//! are refused as `malformed` and change nothing.

mod common;

use common::*;
use ringwire_signaling::controller::MediaCommand;
use ringwire_signaling::session::Event;
use ringwire_signaling::{
    CallId, ClientMessage, Error, ErrorCode, Identifier, JoinOptions, VideoKind, VideoSize,
    VideoStream,
};
use ringwire_testkit::signaling::ClientIdx;
use ringwire_testkit::{Seed, for_each_seed};

/// The video events `who` got about `participant`'s streams since it last looked,
/// taking every event (so the next look starts afresh).
fn take_video_events(
    sim: &mut World,
    who: ClientIdx,
    call: &CallId,
    participant: &Identifier,
) -> Vec<Event> {
    sim.act(|w, _| w.take_events(who))
        .into_iter()
        .filter(|e| event_call(e) == Some(call))
        .filter(|e| match e {
            Event::RemoteVideoAdded { participant: p, .. }
            | Event::RemoteVideoChanged { participant: p, .. }
            | Event::RemoteVideoRemoved { participant: p, .. } => p == participant,
            _ => false,
        })
        .collect()
}

fn stream(kind: VideoKind, width: u32, height: u32) -> VideoStream {
    VideoStream {
        kind,
        size: Some(VideoSize::new(width, height)),
    }
}

/// The media plane's `Update`s for `participant`, by the kinds they carry.
fn media_updates(sim: &World, participant: &Identifier) -> Vec<Vec<VideoKind>> {
    sim.world()
        .media_log()
        .iter()
        .filter_map(|c| match c {
            MediaCommand::Update {
                participant: p,
                video,
                ..
            } if p == participant => Some(video.clone()),
            _ => None,
        })
        .collect()
}

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
            sim.act(|w, now| w.session_mut(alice).start_video(&call, kind, None, now))
                .unwrap();
            sim.settle();
            assert_eq!(
                sim.world().session(alice).call(&call).unwrap().video(),
                &[kind.into()]
            );
            for who in [bob, carol] {
                assert_eq!(
                    remote(&sim, who, &call, &alice_id).unwrap().video(),
                    &[kind.into()]
                );
                assert!(call_events(&sim, who, &call).iter().any(|e| matches!(
                    e,
                    Event::ParticipantUpdated { participant, .. }
                        if participant.id == alice_id && participant.video == [kind.into()]
                )));
                assert_eq!(
                    take_video_events(&mut sim, who, &call, &alice_id),
                    vec![Event::RemoteVideoAdded {
                        call_id: call.clone(),
                        participant: alice_id.clone(),
                        stream: kind.into(),
                    }]
                );
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
                assert_eq!(
                    take_video_events(&mut sim, who, &call, &alice_id),
                    vec![Event::RemoteVideoRemoved {
                        call_id: call.clone(),
                        participant: alice_id.clone(),
                        kind,
                    }]
                );
            }
        }
        assert_all_connected(&sim, &call, &[alice, bob, carol]);
        assert_no_failures(&sim);
        sim.world().controller.check_invariants().unwrap();
    });
}

#[test]
fn sizes_reach_the_others_and_a_new_size_changes_the_stream() {
    for_each_seed(|seed| {
        let mut sim = jittery(seed);
        let [alice, bob, carol] = add_users(&mut sim, &["alice", "bob", "carol"])[..] else {
            unreachable!()
        };
        let alice_id = sim.world().id(alice);
        let group = group("sizes");
        let call = join(&mut sim, alice, &group, JoinOptions::default(), false);
        join(&mut sim, bob, &group, JoinOptions::default(), false);
        join(&mut sim, carol, &group, JoinOptions::default(), false);
        for who in [bob, carol] {
            take_video_events(&mut sim, who, &call, &alice_id);
        }
        let start = |sim: &mut World, size: VideoSize| {
            sim.act(|w, now| {
                w.session_mut(alice)
                    .start_video(&call, VideoKind::Camera, Some(size), now)
            })
            .unwrap();
            sim.settle();
        };

        // Started with a size: the others see the stream with it.
        let vga = stream(VideoKind::Camera, 640, 360);
        start(&mut sim, VideoSize::new(640, 360));
        for who in [bob, carol] {
            assert_eq!(remote(&sim, who, &call, &alice_id).unwrap().video(), &[vga]);
            assert_eq!(
                take_video_events(&mut sim, who, &call, &alice_id),
                vec![Event::RemoteVideoAdded {
                    call_id: call.clone(),
                    participant: alice_id.clone(),
                    stream: vga,
                }]
            );
        }
        assert_eq!(
            media_updates(&sim, &alice_id).last(),
            Some(&vec![VideoKind::Camera])
        );
        let media_before = media_updates(&sim, &alice_id).len();

        // Started again at a new size (a source switch): the same stream, changed. The
        // media plane, which does not care for sizes, hears nothing.
        let hd = stream(VideoKind::Camera, 1280, 720);
        start(&mut sim, VideoSize::new(1280, 720));
        assert_eq!(
            sim.world().session(alice).call(&call).unwrap().video(),
            &[hd]
        );
        for who in [bob, carol] {
            assert_eq!(remote(&sim, who, &call, &alice_id).unwrap().video(), &[hd]);
            assert_eq!(
                take_video_events(&mut sim, who, &call, &alice_id),
                vec![Event::RemoteVideoChanged {
                    call_id: call.clone(),
                    participant: alice_id.clone(),
                    stream: hd,
                }]
            );
        }
        assert_eq!(media_updates(&sim, &alice_id).len(), media_before);

        // The same size once more is nothing new.
        start(&mut sim, VideoSize::new(1280, 720));
        for who in [bob, carol] {
            assert_eq!(take_video_events(&mut sim, who, &call, &alice_id), vec![]);
        }

        // Someone who joins now sees the stream with its size.
        let [dave] = add_users(&mut sim, &["dave"])[..] else {
            unreachable!()
        };
        join(&mut sim, dave, &group, JoinOptions::default(), false);
        assert_eq!(remote(&sim, dave, &call, &alice_id).unwrap().video(), &[hd]);
        assert_eq!(
            take_video_events(&mut sim, dave, &call, &alice_id),
            vec![Event::RemoteVideoAdded {
                call_id: call.clone(),
                participant: alice_id.clone(),
                stream: hd,
            }]
        );

        // Stopped: removed.
        sim.act(|w, now| {
            w.session_mut(alice)
                .stop_video(&call, VideoKind::Camera, now)
        })
        .unwrap();
        sim.settle();
        for who in [bob, carol, dave] {
            assert!(
                remote(&sim, who, &call, &alice_id)
                    .unwrap()
                    .video()
                    .is_empty()
            );
            assert_eq!(
                take_video_events(&mut sim, who, &call, &alice_id),
                vec![Event::RemoteVideoRemoved {
                    call_id: call.clone(),
                    participant: alice_id.clone(),
                    kind: VideoKind::Camera,
                }]
            );
        }
        assert_all_connected(&sim, &call, &[alice, bob, carol, dave]);
        assert_no_failures(&sim);
        sim.world().controller.check_invariants().unwrap();
    });
}

#[test]
fn streams_end_when_their_sender_leaves_or_is_removed() {
    for_each_seed(|seed| {
        let mut sim = sim(seed);
        let [alice, bob, carol] = add_users(&mut sim, &["alice", "bob", "carol"])[..] else {
            unreachable!()
        };
        let [bob_id, carol_id] = [bob, carol].map(|c| sim.world().id(c));
        let group = group("leavers");
        let call = join(&mut sim, alice, &group, JoinOptions::default(), false);
        join(&mut sim, bob, &group, JoinOptions::default(), false);
        join(&mut sim, carol, &group, JoinOptions::default(), false);
        let screen = stream(VideoKind::ScreenShare, 1920, 1080);
        let camera = stream(VideoKind::Camera, 320, 240);
        sim.act(|w, now| {
            w.session_mut(bob)
                .start_video(&call, VideoKind::ScreenShare, screen.size, now)
        })
        .unwrap();
        sim.act(|w, now| {
            w.session_mut(carol)
                .start_video(&call, VideoKind::Camera, camera.size, now)
        })
        .unwrap();
        sim.settle();
        assert_eq!(
            remote(&sim, alice, &call, &bob_id).unwrap().video(),
            &[screen]
        );
        assert_eq!(
            remote(&sim, alice, &call, &carol_id).unwrap().video(),
            &[camera]
        );
        sim.act(|w, _| w.take_events(alice));

        // Bob hangs up: his screen share ends before he leaves.
        hang_up(&mut sim, bob, &call, false);
        let events = call_events(&sim, alice, &call);
        let bob_ended = events.iter().position(|e| {
            **e == Event::RemoteVideoRemoved {
                call_id: call.clone(),
                participant: bob_id.clone(),
                kind: VideoKind::ScreenShare,
            }
        });
        let bob_left = events
            .iter()
            .position(|e| matches!(e, Event::ParticipantRemoved { id, .. } if *id == bob_id));
        assert!(bob_ended.is_some() && bob_ended < bob_left, "{events:#?}");

        // Alice removes carol: her camera ends too.
        sim.act(|w, _| w.take_events(alice));
        sim.act(|w, now| {
            w.session_mut(alice)
                .remove_participant(&call, &carol_id, now)
        })
        .unwrap();
        sim.settle();
        assert_eq!(
            take_video_events(&mut sim, alice, &call, &carol_id),
            vec![Event::RemoteVideoRemoved {
                call_id: call.clone(),
                participant: carol_id.clone(),
                kind: VideoKind::Camera,
            }]
        );
        assert!(remote(&sim, alice, &call, &carol_id).is_none());
        assert_no_failures(&sim);
        sim.world().controller.check_invariants().unwrap();
    });
}

#[test]
fn a_bad_size_is_refused_and_the_call_goes_on() {
    let seed = Seed::new(53);
    let mut sim = sim(seed);
    let [alice, bob] = add_users(&mut sim, &["alice", "bob"])[..] else {
        unreachable!()
    };
    let alice_id = sim.world().id(alice);
    let call = start(&mut sim, alice, &[bob]);
    accept(&mut sim, bob, &call);

    // The session refuses it locally and sends nothing...
    let local = sim.act(|w, now| {
        w.session_mut(alice).start_video(
            &call,
            VideoKind::Camera,
            Some(VideoSize::new(0, 720)),
            now,
        )
    });
    assert!(matches!(local, Err(Error::InvalidArgument(_))), "{local:?}");
    assert!(
        sim.world()
            .session(alice)
            .call(&call)
            .unwrap()
            .video()
            .is_empty()
    );
    sim.settle();
    assert_no_failures(&sim);

    // ...the server refuses raw bytes with a bad size as malformed...
    let raw = format!(
        r#"{{"v":1,"type":"start_video","call_id":"{call}","kind":"camera","size":{{"width":7681,"height":1080}}}}"#
    );
    sim.act(|w, now| w.send_raw(alice, raw.into_bytes(), now));
    sim.settle();
    // ...and a typed message (an in-process driver) the same way.
    sim.act(|w, now| {
        w.send_message(
            alice,
            &ClientMessage::StartVideo {
                call_id: call.clone(),
                kind: VideoKind::Camera,
                size: Some(VideoSize::new(1280, 0)),
            },
            now,
        )
    });
    sim.settle();
    assert_eq!(
        failures(&sim, alice),
        vec![(ErrorCode::Malformed, None), (ErrorCode::Malformed, None)]
    );
    // Nothing changed, nobody else heard of it, and the call goes on: a good size works.
    assert!(
        remote(&sim, bob, &call, &alice_id)
            .unwrap()
            .video()
            .is_empty()
    );
    assert_eq!(take_video_events(&mut sim, bob, &call, &alice_id), vec![]);
    assert_all_connected(&sim, &call, &[alice, bob]);
    let hd = stream(VideoKind::Camera, 1280, 720);
    sim.act(|w, now| {
        w.session_mut(alice)
            .start_video(&call, VideoKind::Camera, hd.size, now)
    })
    .unwrap();
    sim.settle();
    assert_eq!(remote(&sim, bob, &call, &alice_id).unwrap().video(), &[hd]);
    assert_eq!(
        take_video_events(&mut sim, bob, &call, &alice_id),
        vec![Event::RemoteVideoAdded {
            call_id: call.clone(),
            participant: alice_id.clone(),
            stream: hd,
        }]
    );
    assert_all_connected(&sim, &call, &[alice, bob]);
    assert_eq!(failures(&sim, bob), vec![]);
    sim.world().controller.check_invariants().unwrap();
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
            .start_video(&call, VideoKind::Camera, None, now)
    })
    .unwrap();
    sim.settle();

    // The session refuses it locally and sends nothing...
    let local = sim.act(|w, now| {
        w.session_mut(alice)
            .start_video(&call, VideoKind::ScreenShare, None, now)
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
                size: None,
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
        &[VideoKind::Camera.into()]
    );
    assert_eq!(
        remote(&sim, bob, &call, &alice_id).unwrap().video(),
        &[VideoKind::Camera.into()]
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
    let camera: VideoStream = VideoKind::Camera.into();
    let [alice_id, bob_id, carol_id] = [alice, bob, carol].map(|c| sim.world().id(c));
    let group = group("sync");
    let call = join(&mut sim, alice, &group, with_video, false);
    assert_eq!(
        sim.world().session(alice).call(&call).unwrap().video(),
        &[camera]
    );
    join(&mut sim, bob, &group, JoinOptions::default(), false);
    assert_eq!(
        remote(&sim, bob, &call, &alice_id).unwrap().video(),
        &[camera]
    );
    assert_eq!(
        take_video_events(&mut sim, bob, &call, &alice_id),
        vec![Event::RemoteVideoAdded {
            call_id: call.clone(),
            participant: alice_id.clone(),
            stream: camera,
        }]
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
            &[camera]
        );
    }
    assert_no_failures(&sim);
    sim.world().controller.check_invariants().unwrap();
}
