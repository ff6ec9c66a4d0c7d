// The sans-IO ClientSession: flows fed as server messages (encoded and decoded, as on
// the wire), checked by the messages it sends and the events it reports.

import { test } from "node:test";
import assert from "node:assert/strict";

import {
  type ClientMessage,
  type ServerMessage,
  type ParticipantInfo,
  EndReasons,
  decodeClientMessage,
  encodeClientMessage,
  encodeServerMessage,
} from "../src/protocol.js";
import { ClientSession, SessionError, type SessionEvent } from "../src/session.js";
import { Rng } from "../src/rng.js";

const ALICE = "8:alice";
const BOB = "8:bob";
const CAROL = "8:carol";
const DAVE = "8:dave";

/** A session and what it sent and reported, drained after every step. */
class Harness {
  now = 1_000;
  readonly session: ClientSession;
  sent: ClientMessage[] = [];
  events: SessionEvent[] = [];

  constructor(seed = 42) {
    this.session = new ClientSession({ token: "tok", seed }, this.now);
  }

  drain(): void {
    for (let m = this.session.pollTransmit(); m; m = this.session.pollTransmit()) {
      // Through the codec, as a driver would send it.
      this.sent.push(decodeClientMessage(encodeClientMessage(m)));
    }
    for (let e = this.session.pollEvent(); e; e = this.session.pollEvent()) this.events.push(e);
  }

  /** Takes what was sent and reported since the last take. */
  take(): { sent: ClientMessage[]; events: SessionEvent[] } {
    this.drain();
    const out = { sent: this.sent, events: this.events };
    this.sent = [];
    this.events = [];
    return out;
  }

  server(message: ServerMessage): void {
    this.session.handleBytes(encodeServerMessage(message), this.now);
    this.drain();
  }

  connect(user = ALICE): void {
    this.session.handleConnected(this.now);
    this.server({ type: "authenticated", user, resume_token: "r-1", grace_ms: 30_000, resumed: false });
    this.take();
  }
}

function p(id: string, state: ParticipantInfo["state"], extra: Partial<ParticipantInfo> = {}): ParticipantInfo {
  return { id, state, muted: false, speaking: false, video: [], ...extra };
}

function sessionError(kind: string): (e: unknown) => boolean {
  return (e) => e instanceof SessionError && e.kind === kind;
}

test("SplitMix64 matches the reference generator", () => {
  // First outputs for seed 0 of the reference SplitMix64 (Vigna's splitmix64.c).
  const rng = new Rng(0);
  assert.equal(rng.nextU64(), 0xe220a8397b1dcdafn);
  assert.equal(rng.nextU64(), 0x6e789e6aa1b965f4n);
  assert.equal(new Rng(7).hex128(), new Rng(7).hex128());
  assert.match(new Rng(7).hex128(), /^[0-9a-f]{32}$/);
});

test("authenticates as a web client", () => {
  const h = new Harness();
  assert.equal(h.session.connectionState, "disconnected");
  h.session.handleConnected(h.now);
  let out = h.take();
  assert.deepEqual(out.sent, [{ type: "auth", token: "tok", client: "web" }]);
  assert.equal(h.session.connectionState, "authenticating");
  h.server({ type: "authenticated", user: ALICE, resume_token: "r-1", grace_ms: 30_000, resumed: false });
  out = h.take();
  assert.deepEqual(out.events, [{ type: "authenticated", user: ALICE, resumed: false }]);
  assert.equal(h.session.connectionState, "connected");
  assert.equal(h.session.user, ALICE);
  assert.equal(h.session.resumeGraceMs, 30_000);
});

test("1:1 call: ringing, connected, mute, hold, hang up for everyone", () => {
  const h = new Harness();
  h.connect();
  const id = h.session.startCall([BOB], { video: false });
  let out = h.take();
  assert.deepEqual(out.sent, [
    { type: "start_call", call_id: id, targets: [BOB], options: { muted: false, video: false } },
  ]);
  assert.deepEqual(out.events, [{ type: "call_state_changed", call_id: id, state: "connecting" }]);
  assert.match(id, /^[0-9a-f]{32}$/);

  h.server({ type: "participant", call_id: id, participant: p(BOB, "ringing") });
  h.server({ type: "call_state", call_id: id, state: "ringing" });
  h.server({ type: "participant", call_id: id, participant: p(BOB, "connected") });
  h.server({ type: "call_state", call_id: id, state: "connected" });
  out = h.take();
  assert.deepEqual(out.events, [
    { type: "participant_added", call_id: id, participant: p(BOB, "ringing") },
    { type: "call_state_changed", call_id: id, state: "ringing" },
    { type: "participant_updated", call_id: id, participant: p(BOB, "connected") },
    { type: "call_state_changed", call_id: id, state: "connected" },
  ]);
  // A repeated state is not reported again.
  h.server({ type: "call_state", call_id: id, state: "connected" });
  h.server({ type: "participant", call_id: id, participant: p(BOB, "connected") });
  assert.deepEqual(h.take().events, []);

  h.session.mute(id);
  out = h.take();
  assert.deepEqual(out.sent, [{ type: "mute", call_id: id }]);
  assert.equal(h.session.call(id)!.isMuted, false, "muted only when the server confirms");
  h.server({ type: "mute_state", call_id: id, muted: true });
  assert.deepEqual(h.take().events, [{ type: "mute_changed", call_id: id, muted: true }]);
  assert.equal(h.session.call(id)!.isMuted, true);

  h.session.hold(id);
  assert.deepEqual(h.take().sent, [{ type: "hold", call_id: id }]);
  h.server({ type: "call_state", call_id: id, state: "local_hold" });
  assert.equal(h.session.call(id)!.isOnHold, true);
  assert.throws(() => h.session.hold(id), sessionError("invalid_state"));
  h.session.resume(id);
  h.server({ type: "call_state", call_id: id, state: "connected" });
  out = h.take();
  assert.deepEqual(out.sent, [{ type: "resume", call_id: id }]);
  assert.deepEqual(out.events, [
    { type: "call_state_changed", call_id: id, state: "local_hold" },
    { type: "call_state_changed", call_id: id, state: "connected" },
  ]);

  h.session.startVideo(id, "camera");
  assert.throws(() => h.session.startVideo(id, "screen_share"), sessionError("video_busy"));
  h.session.startVideo(id, "camera"); // on already: nothing sent
  h.session.stopVideo(id, "camera");
  h.session.stopVideo(id, "camera"); // off already: nothing sent
  h.session.startVideo(id, "screen_share");
  assert.deepEqual(h.take().sent, [
    { type: "start_video", call_id: id, kind: "camera" },
    { type: "stop_video", call_id: id, kind: "camera" },
    { type: "start_video", call_id: id, kind: "screen_share" },
  ]);
  assert.deepEqual(h.session.call(id)!.video, [{ kind: "screen_share" }]);
  // Sizes: announced with the start, again when the source changes size, refused out of range.
  h.session.stopVideo(id, "screen_share");
  h.session.startVideo(id, "camera", { width: 1280, height: 720 });
  h.session.startVideo(id, "camera", { width: 1280, height: 720 }); // same size: nothing
  h.session.startVideo(id, "camera", { width: 640, height: 480 }); // source switch
  assert.throws(() => h.session.startVideo(id, "camera", { width: 0, height: 480 }), sessionError("invalid_argument"));
  assert.throws(() => h.session.startVideo(id, "camera", { width: 7681, height: 480 }), sessionError("invalid_argument"));
  h.session.startVideo(id, "camera", { width: 4320, height: 7680 }); // portrait 8K is fine
  assert.deepEqual(h.take().sent, [
    { type: "stop_video", call_id: id, kind: "screen_share" },
    { type: "start_video", call_id: id, kind: "camera", size: { width: 1280, height: 720 } },
    { type: "start_video", call_id: id, kind: "camera", size: { width: 640, height: 480 } },
    { type: "start_video", call_id: id, kind: "camera", size: { width: 4320, height: 7680 } },
  ]);
  assert.deepEqual(h.session.call(id)!.video, [{ kind: "camera", size: { width: 4320, height: 7680 } }]);

  h.session.hangUp(id, true);
  out = h.take();
  assert.deepEqual(out.sent, [{ type: "hang_up", call_id: id, for_everyone: true }]);
  assert.deepEqual(out.events, [{ type: "call_state_changed", call_id: id, state: "disconnecting" }]);
  assert.throws(() => h.session.hangUp(id), sessionError("invalid_state"));
  // While leaving, only `disconnected` applies.
  h.server({ type: "call_state", call_id: id, state: "connected" });
  h.server({ type: "call_state", call_id: id, state: "disconnected", end_reason: EndReasons.endedForEveryone() });
  out = h.take();
  assert.deepEqual(out.events, [
    { type: "call_state_changed", call_id: id, state: "disconnected", end_reason: EndReasons.endedForEveryone() },
  ]);
  const call = h.session.call(id)!;
  assert.equal(call.remoteParticipants.length, 0);
  assert.deepEqual(call.video, []);
  // Ended calls stay until removed; messages about them are ignored.
  h.server({ type: "participant", call_id: id, participant: p(BOB, "connected") });
  assert.deepEqual(h.take().events, []);
  h.session.removeCall(id);
  assert.equal(h.session.call(id), undefined);
  assert.throws(() => h.session.removeCall(id), sessionError("unknown_call"));
});

test("the same seed gives the same call ids", () => {
  const a = new Harness(7);
  const b = new Harness(7);
  a.connect();
  b.connect();
  assert.equal(a.session.startCall([BOB]), b.session.startCall([BOB]));
});

test("incoming calls: accept one, reject one, hang up a ringing one", () => {
  const h = new Harness();
  h.connect(BOB);
  h.server({ type: "incoming_call", call_id: "c1", caller: ALICE, video: true });
  h.server({ type: "incoming_call", call_id: "c2", caller: CAROL, video: false, group_id: "g2" });
  h.server({ type: "incoming_call", call_id: "c3", caller: DAVE, video: false });
  let out = h.take();
  assert.deepEqual(out.events, [
    { type: "incoming_call", call_id: "c1", caller: ALICE, video: true },
    { type: "incoming_call", call_id: "c2", caller: CAROL, video: false, group_id: "g2" },
    { type: "incoming_call", call_id: "c3", caller: DAVE, video: false },
  ]);
  assert.equal(h.session.call("c1")!.callerHasVideo, true);
  assert.equal(h.session.call("c2")!.groupId, "g2");

  h.session.accept("c1", { video: true });
  h.session.reject("c2");
  h.session.hangUp("c3");
  out = h.take();
  assert.deepEqual(out.sent, [
    { type: "accept", call_id: "c1", options: { muted: false, video: true } },
    { type: "reject", call_id: "c2" },
    { type: "reject", call_id: "c3" },
  ]);
  assert.deepEqual(
    out.events.map((e) => e.type === "call_state_changed" && [e.call_id, e.state]),
    [
      ["c1", "connecting"],
      ["c2", "disconnecting"],
      ["c3", "disconnecting"],
    ],
  );
  assert.throws(() => h.session.accept("c1"), sessionError("invalid_state"));
  assert.throws(() => h.session.accept("nope"), sessionError("unknown_call"));
  assert.deepEqual(h.session.call("c1")!.video, [{ kind: "camera" }]);

  h.server({ type: "call_state", call_id: "c1", state: "connected" });
  h.server({ type: "roster", call_id: "c1", participants: [p(ALICE, "connected")] });
  h.server({ type: "call_state", call_id: "c2", state: "disconnected", end_reason: EndReasons.declined() });
  out = h.take();
  assert.deepEqual(out.events, [
    { type: "call_state_changed", call_id: "c1", state: "connected" },
    { type: "participant_added", call_id: "c1", participant: p(ALICE, "connected") },
    { type: "call_state_changed", call_id: "c2", state: "disconnected", end_reason: EndReasons.declined() },
  ]);
  // A second incoming_call for a live call is ignored.
  h.server({ type: "incoming_call", call_id: "c1", caller: ALICE, video: false });
  assert.deepEqual(h.take().events, []);
});

test("group call: roster diffs, participant updates, leaves, dominant speakers, lobby", () => {
  const h = new Harness();
  h.connect();
  const id = h.session.join("team", { muted: true });
  let out = h.take();
  assert.equal(id, "group:team");
  assert.deepEqual(out.sent, [{ type: "join", group_id: "team", options: { muted: true, video: false }, lobby: false }]);
  assert.equal(h.session.call(id)!.isMuted, true);
  assert.equal(h.session.call(id)!.groupId, "team");
  assert.throws(() => h.session.join("team"), sessionError("invalid_state"));

  h.server({ type: "call_state", call_id: id, state: "connected" });
  h.server({
    type: "roster",
    call_id: id,
    participants: [
      p(ALICE, "connected"), // ourselves: left out
      p(DAVE, "connected", { muted: true }),
      p("4:+15551230000", "early_media"),
      p(BOB, "connected", { video: [{ kind: "camera", size: { width: 640, height: 360 } }] }),
      p(CAROL, "disconnected"),
    ],
  });
  out = h.take();
  assert.deepEqual(
    out.events.map((e) => (e.type === "participant_added" ? e.participant.id : e.type)),
    ["call_state_changed", BOB, "remote_video_added", DAVE, "4:+15551230000"],
    "added in identifier order (users, then phones), each followed by its streams",
  );
  assert.deepEqual(
    h.session.call(id)!.remoteParticipants.map((x) => x.id),
    [BOB, DAVE, "4:+15551230000"],
  );

  // A second roster is diffed against the first.
  h.server({
    type: "roster",
    call_id: id,
    participants: [
      p(BOB, "hold", { video: [{ kind: "camera", size: { width: 1280, height: 720 } }] }),
      p(DAVE, "connected", { muted: true }),
      p(CAROL, "connected", { video: [{ kind: "screen_share" }] }),
    ],
  });
  out = h.take();
  assert.deepEqual(out.events, [
    { type: "participant_removed", call_id: id, id: "4:+15551230000" },
    {
      type: "participant_updated",
      call_id: id,
      participant: p(BOB, "hold", { video: [{ kind: "camera", size: { width: 1280, height: 720 } }] }),
    },
    {
      type: "remote_video_changed",
      call_id: id,
      participant: BOB,
      stream: { kind: "camera", size: { width: 1280, height: 720 } },
    },
    { type: "participant_added", call_id: id, participant: p(CAROL, "connected", { video: [{ kind: "screen_share" }] }) },
    { type: "remote_video_added", call_id: id, participant: CAROL, stream: { kind: "screen_share" } },
  ]);

  h.server({ type: "participant", call_id: id, participant: p(DAVE, "connected", { muted: false, speaking: true }) });
  h.server({ type: "participant_left", call_id: id, id: CAROL, reason: EndReasons.normal() });
  // An invitee never seen still leaves with its reason.
  h.server({ type: "participant_left", call_id: id, id: "8:erin", reason: EndReasons.unavailable() });
  h.server({ type: "participant", call_id: id, participant: p(BOB, "disconnected", { end_reason: EndReasons.removed() }) });
  h.server({ type: "dominant_speakers", call_id: id, speakers: [DAVE] });
  h.server({ type: "dominant_speakers", call_id: id, speakers: [DAVE] });
  out = h.take();
  assert.deepEqual(out.events, [
    { type: "participant_updated", call_id: id, participant: p(DAVE, "connected", { speaking: true }) },
    { type: "remote_video_removed", call_id: id, participant: CAROL, kind: "screen_share" },
    { type: "participant_removed", call_id: id, id: CAROL, reason: EndReasons.normal() },
    { type: "participant_removed", call_id: id, id: "8:erin", reason: EndReasons.unavailable() },
    { type: "remote_video_removed", call_id: id, participant: BOB, kind: "camera" },
    { type: "participant_removed", call_id: id, id: BOB, reason: EndReasons.removed() },
    { type: "dominant_speakers_changed", call_id: id, speakers: [DAVE] },
  ]);
  assert.deepEqual(h.session.call(id)!.dominantSpeakers, [DAVE]);

  // Lobby: admit someone waiting; refuse admitting someone who is not.
  h.server({ type: "participant", call_id: id, participant: p("8:frank", "in_lobby") });
  h.take();
  assert.throws(() => h.session.admit(id, DAVE), sessionError("invalid_argument"));
  assert.throws(() => h.session.admit(id, "8:nobody"), sessionError("unknown_participant"));
  h.session.admit(id, "8:frank");
  assert.throws(() => h.session.removeParticipant(id, ALICE), sessionError("invalid_argument"));
  assert.throws(() => h.session.removeParticipant(id, "8:nobody"), sessionError("unknown_participant"));
  h.session.removeParticipant(id, DAVE);
  assert.throws(() => h.session.addParticipant(id, DAVE), sessionError("invalid_argument"));
  h.session.addParticipant(id, "4:+15550001111");
  h.session.setVideoPreferences(id, 4, DAVE);
  h.session.setVideoPreferences(id);
  assert.deepEqual(h.take().sent, [
    { type: "admit", call_id: id, target: "8:frank" },
    { type: "remove_participant", call_id: id, target: DAVE },
    { type: "add_participant", call_id: id, target: "4:+15550001111" },
    { type: "video_preferences", call_id: id, max_videos: 4, pinned: DAVE },
    { type: "video_preferences", call_id: id },
  ]);

  h.server({
    type: "video_slots",
    call_id: id,
    slots: [{ mid: "1", participant: DAVE, kind: "camera" }, { mid: "2" }],
  });
  assert.deepEqual(h.take().events, [
    { type: "video_slots_changed", call_id: id, slots: [{ mid: "1", participant: DAVE, kind: "camera" }, { mid: "2" }] },
  ]);
});

test("commands refuse bad arguments and states, and send nothing", () => {
  const h = new Harness();
  assert.throws(() => h.session.startCall([BOB]), sessionError("not_connected"));
  h.connect();
  assert.throws(() => h.session.startCall([]), sessionError("invalid_argument"));
  assert.throws(() => h.session.startCall([ALICE]), sessionError("invalid_argument"));
  assert.throws(() => h.session.startCall([BOB, BOB]), sessionError("invalid_argument"));
  assert.throws(() => h.session.startCall(["9:bob"]), sessionError("invalid_argument"));
  assert.throws(() => h.session.startCall(Array.from({ length: 350 }, (_, i) => `8:u${i}`)), sessionError("invalid_argument"));
  assert.throws(() => h.session.join("bad group"), sessionError("invalid_argument"));
  assert.throws(() => h.session.mute("nope"), sessionError("unknown_call"));
  const id = h.session.startCall([BOB]);
  h.take();
  assert.throws(() => h.session.hold(id), sessionError("invalid_state"));
  assert.throws(() => h.session.admit(id, BOB), sessionError("invalid_state"));
  assert.throws(() => h.session.addParticipant(id, CAROL), sessionError("invalid_state"));
  assert.throws(() => h.session.setVideoPreferences(id, 256), sessionError("invalid_argument"));
  assert.throws(() => h.session.removeCall(id), sessionError("invalid_state"));
  assert.deepEqual(h.take(), { sent: [], events: [] });
  // Media may be negotiated while the call is being set up.
  h.session.sendMedia(id, { kind: "offer", sdp: "v=0\r\n" });
  assert.deepEqual(h.take().sent, [{ type: "media", call_id: id, payload: { kind: "offer", sdp: "v=0\r\n" } }]);
  h.server({ type: "media", call_id: id, payload: { kind: "answer", sdp: "v=0\r\n" } });
  assert.deepEqual(h.take().events, [
    { type: "media_received", call_id: id, payload: { kind: "answer", sdp: "v=0\r\n" } },
  ]);
});

test("bad server messages give typed errors and change nothing", () => {
  const h = new Harness();
  h.session.handleConnected(h.now);
  h.take();
  // Before authenticated: a call message is the server misbehaving.
  assert.throws(
    () => h.server({ type: "incoming_call", call_id: "c1", caller: BOB, video: false }),
    sessionError("peer_misbehaved"),
  );
  h.server({ type: "authenticated", user: ALICE, resume_token: "r", grace_ms: 1, resumed: false });
  assert.throws(
    () => h.server({ type: "authenticated", user: ALICE, resume_token: "r", grace_ms: 1, resumed: false }),
    sessionError("peer_misbehaved"),
  );
  const cases: Array<[string, string]> = [
    ["not json", "malformed"],
    ['{"v":2,"type":"pong","seq":1}', "unsupported_version"],
    ['{"v":1,"type":"ping","seq":1}', "unknown_type"],
    ['{"v":1,"type":"call_state","call_id":"c1","state":"on_fire"}', "invalid"],
    ['{"v":1,"type":"participant","call_id":"c1","participant":{"id":"8:","state":"connected"}}', "invalid"],
    ["x".repeat(300_000), "too_large"],
  ];
  for (const [wire, kind] of cases) {
    assert.throws(
      () => h.session.handleBytes(wire, h.now),
      (e: unknown) => e instanceof SessionError && e.kind === "malformed" && e.decodeError?.kind === kind,
      wire.slice(0, 60),
    );
  }
  // Messages about unknown calls are ignored (they race with hang-ups).
  h.server({ type: "call_state", call_id: "unknown", state: "connected" });
  h.server({ type: "roster", call_id: "unknown", participants: [p(BOB, "connected")] });
  h.server({ type: "mute_state", call_id: "unknown", muted: true });
  const out = h.take();
  assert.deepEqual(out.sent, []);
  assert.deepEqual(
    out.events.map((e) => e.type),
    ["authenticated"],
  );
  assert.equal(h.session.allCalls().length, 0);
});

test("server errors undo local transitions", () => {
  const h = new Harness();
  h.connect();
  const full = h.session.join("big");
  h.server({ type: "error", code: "call_full", message: "the call is full", call_id: full });
  let out = h.take();
  assert.deepEqual(out.events.slice(1), [
    { type: "request_failed", code: "call_full", message: "the call is full", call_id: full },
    { type: "call_state_changed", call_id: full, state: "disconnected", end_reason: EndReasons.callFull() },
  ]);

  h.server({ type: "incoming_call", call_id: "c9", caller: BOB, video: false });
  h.session.accept("c9");
  h.server({ type: "error", code: "invalid_state", message: "no longer ringing", call_id: "c9" });
  out = h.take();
  assert.equal(h.session.call("c9")!.state, "incoming", "back to the state the server has");

  h.server({ type: "error", code: "unknown_call", message: "not in this call", call_id: "c9" });
  assert.equal(h.session.call("c9")!.state, "disconnected");
  assert.deepEqual(h.session.call("c9")!.endReason, EndReasons.of(404, 0, "not in this call"));
  // An error without a call is only reported.
  h.server({ type: "error", code: "rate_limited", message: "slow down" });
  assert.deepEqual(h.take().events.at(-1), { type: "request_failed", code: "rate_limited", message: "slow down" });
});

test("keepalive: pings on the interval, a missing pong loses the connection", () => {
  const h = new Harness();
  h.connect();
  assert.equal(h.session.pollTimeout(), h.now + 15_000);
  h.now += 15_000;
  h.session.handleTimeout(h.now);
  assert.deepEqual(h.take().sent, [{ type: "ping", seq: 1 }]);
  h.server({ type: "pong", seq: 1 });
  assert.equal(h.session.pollTimeout(), h.now + 15_000, "pong answered: only the next ping is armed");
  h.now += 15_000;
  h.session.handleTimeout(h.now);
  assert.deepEqual(h.take().sent, [{ type: "ping", seq: 2 }]);
  h.now += 10_000;
  h.session.handleTimeout(h.now);
  assert.deepEqual(h.take().events, [{ type: "connection_lost" }]);
  assert.equal(h.session.connectionState, "reconnecting");
  assert.equal(h.session.pollTimeout(), undefined);
});

test("an auth without answer loses the connection", () => {
  const h = new Harness();
  h.session.handleConnected(h.now);
  h.take();
  h.now += 10_000;
  h.session.handleTimeout(h.now);
  assert.deepEqual(h.take().events, [{ type: "connection_lost" }]);
});

test("reconnect with the resume token: calls the server still has go on, the others end", () => {
  const h = new Harness();
  h.connect();
  const kept = h.session.startCall([BOB]);
  const gone = h.session.startCall([CAROL]);
  const leaving = h.session.startCall([DAVE]);
  for (const id of [kept, gone, leaving]) h.server({ type: "call_state", call_id: id, state: "connected" });
  h.session.hangUp(leaving);
  h.server({ type: "incoming_call", call_id: "ring", caller: "8:erin", video: false });
  h.take();

  h.session.handleDisconnected(h.now);
  assert.equal(h.session.connectionState, "reconnecting");
  assert.throws(() => h.session.mute(kept), sessionError("not_connected"));
  // Messages without a connection are ignored.
  h.server({ type: "call_state", call_id: kept, state: "disconnected" });
  h.session.handleConnected(h.now);
  let out = h.take();
  assert.deepEqual(out.sent, [{ type: "auth", token: "tok", resume: "r-1", client: "web" }]);

  h.server({ type: "authenticated", user: ALICE, resume_token: "r-2", grace_ms: 30_000, resumed: true });
  out = h.take();
  assert.deepEqual(out.sent, [{ type: "ping", seq: 1 }], "a ping marks the end of the refresh");
  // The server refreshes what it still has: `kept`, and `leaving` (our hang_up was lost).
  h.server({ type: "call_state", call_id: kept, state: "connected" });
  h.server({ type: "roster", call_id: kept, participants: [p(BOB, "connected")] });
  h.server({ type: "mute_state", call_id: kept, muted: false });
  h.server({ type: "call_state", call_id: leaving, state: "connected" });
  out = h.take();
  assert.deepEqual(out.sent, [{ type: "hang_up", call_id: leaving, for_everyone: false }], "the lost hang_up again");
  h.server({ type: "pong", seq: 1 });
  out = h.take();
  assert.deepEqual(out.events, [
    { type: "call_state_changed", call_id: gone, state: "disconnected", end_reason: EndReasons.connectionLost() },
  ]);
  assert.equal(h.session.call(kept)!.state, "connected");
  assert.equal(h.session.call("ring")!.state, "incoming", "left to the server's ring timeout");

  // The next reconnect presents the newest token; a fresh session ends every call.
  h.session.handleDisconnected(h.now);
  h.session.handleConnected(h.now);
  assert.deepEqual(h.take().sent, [{ type: "auth", token: "tok", resume: "r-2", client: "web" }]);
  h.server({ type: "authenticated", user: ALICE, resume_token: "r-3", grace_ms: 30_000, resumed: false });
  out = h.take();
  const ended = out.events.filter((e) => e.type === "call_state_changed").map((e) => e.type === "call_state_changed" && e.call_id);
  assert.deepEqual(ended.sort(), [kept, leaving, "ring"].sort());
  assert.ok(h.session.allCalls().every((c) => c.state === "disconnected"));
});

test("goodbye ends every call and forgets the session", () => {
  const h = new Harness();
  h.connect();
  const id = h.session.startCall([BOB]);
  h.take();
  h.server({ type: "goodbye", reason: EndReasons.shuttingDown() });
  const out = h.take();
  assert.deepEqual(out.events, [
    { type: "goodbye", reason: EndReasons.shuttingDown() },
    { type: "call_state_changed", call_id: id, state: "disconnected", end_reason: EndReasons.shuttingDown() },
  ]);
  assert.equal(h.session.connectionState, "disconnected");
  assert.equal(h.session.user, undefined);
  h.session.handleConnected(h.now);
  assert.deepEqual(h.take().sent, [{ type: "auth", token: "tok", client: "web" }], "no resume token any more");
});

test("ended calls are pruned beyond the limit, oldest first", () => {
  const h = new Harness();
  h.connect();
  const ids: string[] = [];
  for (let i = 0; i < 40; i++) {
    const id = h.session.startCall([BOB]);
    h.server({ type: "call_state", call_id: id, state: "disconnected", end_reason: EndReasons.busy() });
    ids.push(id);
  }
  assert.equal(h.session.allCalls().length, 32);
  assert.equal(h.session.call(ids[0]!), undefined);
  assert.ok(h.session.call(ids[39]!));
});

test("DTMF: digits go to the server, a phone's keys come back as events", () => {
  const h = new Harness();
  h.connect();
  const PHONE = "4:+15551230000";
  const id = h.session.startCall([PHONE], { video: false });
  h.take();
  h.server({ type: "participant", call_id: id, participant: p(PHONE, "connected") });
  h.server({ type: "call_state", call_id: id, state: "connected" });
  h.take();

  h.session.sendDtmf(id, "12*#AD");
  assert.deepEqual(h.take().sent, [{ type: "send_dtmf", call_id: id, digits: "12*#AD" }]);
  for (const bad of ["", "x", "1 2", "E", "1".repeat(33)]) {
    assert.throws(() => h.session.sendDtmf(id, bad), sessionError("invalid_argument"), JSON.stringify(bad));
  }
  assert.throws(() => h.session.sendDtmf("0".repeat(32), "1"), sessionError("unknown_call"));
  assert.deepEqual(h.take().sent, [], "refused digits send nothing");

  h.server({ type: "dtmf", call_id: id, from: PHONE, digits: "1" });
  assert.deepEqual(h.take().events, [{ type: "dtmf_received", call_id: id, from: PHONE, digits: "1" }]);

  // Keys for a call that ended are dropped.
  h.session.hangUp(id, false);
  h.server({ type: "call_state", call_id: id, state: "disconnected", end_reason: EndReasons.normal() });
  h.take();
  h.server({ type: "dtmf", call_id: id, from: PHONE, digits: "2" });
  assert.deepEqual(h.take().events, []);
  assert.throws(() => h.session.sendDtmf(id, "1"), sessionError("invalid_state"));
});
