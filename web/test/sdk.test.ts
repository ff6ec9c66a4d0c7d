// The app-facing API over a WebSocket double (no media: node has no RTCPeerConnection).

import { test } from "node:test";
import assert from "node:assert/strict";

import { CallClient, CallingError, type WebSocketLike } from "../src/sdk.js";
import { type ClientMessage, type ServerMessage, decodeClientMessage, encodeServerMessage } from "../src/protocol.js";

/** A WebSocket double: records what the SDK sends, lets the test play the server. */
class FakeSocket implements WebSocketLike {
  binaryType = "blob";
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: unknown) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  sent: ClientMessage[] = [];
  closed = false;
  constructor(readonly url: string) {}
  send(data: string): void {
    this.sent.push(decodeClientMessage(data));
  }
  close(): void {
    this.closed = true;
  }
  /** The server sends `m` as a text frame. */
  deliver(m: ServerMessage): void {
    this.onmessage?.({ data: encodeServerMessage(m) });
  }
  take(): ClientMessage[] {
    const out = this.sent;
    this.sent = [];
    return out;
  }
}

/** A client whose sockets the test drives; `opened` resolves with each new socket. */
function client() {
  const sockets: FakeSocket[] = [];
  let wake: (() => void) | undefined;
  const make = (url: string) => {
    const s = new FakeSocket(url);
    sockets.push(s);
    // Open on the next tick, as a real socket would.
    queueMicrotask(() => {
      s.onopen?.({});
      wake?.();
    });
    return s;
  };
  const nextSocket = async (n: number) => {
    while (sockets.length < n || sockets[n - 1]!.sent.length === 0) {
      await new Promise<void>((r) => (wake = r));
    }
    return sockets[n - 1]!;
  };
  const cc = new CallClient({ url: "ws://127.0.0.1:1/v1/signaling", webSocket: make, media: false, seed: 1n, reconnectInitialMs: 1 });
  return { cc, sockets, nextSocket };
}

async function connected(user = "8:alice") {
  const c = client();
  const agentPromise = c.cc.createCallAgent("tok");
  const ws = await c.nextSocket(1);
  assert.deepEqual(ws.take(), [{ type: "auth", token: "tok", client: "web" }]);
  ws.deliver({ type: "authenticated", user, resume_token: "r-1", grace_ms: 30_000, resumed: false });
  const agent = await agentPromise;
  return { ...c, ws, agent };
}

function events(target: EventTarget, names: string[]): string[] {
  const seen: string[] = [];
  for (const n of names) target.addEventListener(n, () => seen.push(n));
  return seen;
}

test("call agent: 1:1 call events from server messages", async () => {
  const { ws, agent } = await connected();
  assert.equal(agent.user, "8:alice");
  assert.equal(agent.connectionState, "connected");
  const call = agent.startCall(["8:bob"]);
  const [start] = ws.take();
  assert.equal(start?.type, "start_call");
  assert.equal(call.state, "connecting");
  const seen = events(call, ["stateChanged", "remoteParticipantsUpdated", "isMutedChanged", "dominantSpeakersChanged"]);

  ws.deliver({ type: "participant", call_id: call.id, participant: { id: "8:bob", state: "ringing", muted: false, speaking: false, video: [] } });
  ws.deliver({ type: "call_state", call_id: call.id, state: "ringing" });
  const bob = call.remoteParticipants[0]!;
  const bobSeen = events(bob, ["stateChanged", "isMutedChanged", "isSpeakingChanged", "videoStreamsUpdated"]);
  ws.deliver({ type: "participant", call_id: call.id, participant: { id: "8:bob", state: "connected", muted: true, speaking: true, video: [{ kind: "camera", size: { width: 640, height: 480 } }] } });
  ws.deliver({ type: "call_state", call_id: call.id, state: "connected" });
  assert.equal(call.state, "connected");
  assert.equal(bob.state, "connected");
  assert.equal(bob.isMuted, true);
  assert.deepEqual(bob.videoStreams.map((s) => [s.kind, s.size]), [["camera", { width: 640, height: 480 }]]);
  assert.deepEqual(bobSeen, ["stateChanged", "isMutedChanged", "isSpeakingChanged", "videoStreamsUpdated"]);

  await call.mute();
  assert.deepEqual(ws.take(), [{ type: "mute", call_id: call.id }]);
  ws.deliver({ type: "mute_state", call_id: call.id, muted: true });
  assert.equal(call.isMuted, true);
  await call.hold();
  ws.deliver({ type: "call_state", call_id: call.id, state: "local_hold" });
  assert.equal(call.isOnHold, true);
  await assert.rejects(call.hold(), (e: unknown) => e instanceof CallingError && e.code === "invalid_state");
  ws.deliver({ type: "dominant_speakers", call_id: call.id, speakers: ["8:bob"] });
  assert.deepEqual(call.dominantSpeakers, ["8:bob"]);

  const removed: unknown[] = [];
  agent.addEventListener("callsUpdated", (e) => removed.push(...(e as CustomEvent).detail.removed));
  await call.hangUp({ forEveryone: true });
  assert.deepEqual(ws.take(), [{ type: "hold", call_id: call.id }, { type: "hang_up", call_id: call.id, for_everyone: true }]);
  ws.deliver({ type: "call_state", call_id: call.id, state: "disconnected", end_reason: { code: 0, subcode: 5000, message: "call ended for everyone" } });
  assert.equal(call.state, "disconnected");
  assert.equal(call.callEndReason?.subcode, 5000);
  assert.deepEqual(removed, [call]);
  assert.deepEqual(seen, [
    "remoteParticipantsUpdated",
    "stateChanged", // ringing
    "stateChanged", // connected
    "isMutedChanged",
    "stateChanged", // local_hold
    "dominantSpeakersChanged",
    "stateChanged", // disconnecting
    "stateChanged", // disconnected
    "remoteParticipantsUpdated",
  ]);
  agent.dispose();
});

test("call agent: incoming call accepted, another rejected, one cancelled", async () => {
  const { ws, agent } = await connected("8:bob");
  const incoming: Array<import("../src/sdk.js").IncomingCall> = [];
  agent.addEventListener("incomingCall", (e) => incoming.push((e as CustomEvent).detail.incomingCall));
  ws.deliver({ type: "incoming_call", call_id: "c1", caller: "8:alice", video: false });
  ws.deliver({ type: "incoming_call", call_id: "c2", caller: "8:carol", video: true, group_id: "g" });
  ws.deliver({ type: "incoming_call", call_id: "c3", caller: "8:dave", video: false });
  assert.deepEqual(incoming.map((i) => [i.id, i.callerInfo.identifier, i.hasVideo, i.groupId]), [
    ["c1", "8:alice", false, undefined],
    ["c2", "8:carol", true, "g"],
    ["c3", "8:dave", false, undefined],
  ]);
  let cancelled: unknown;
  incoming[2]!.addEventListener("callEnded", (e) => (cancelled = (e as CustomEvent).detail.reason));
  const call = incoming[0]!.accept({ muted: true });
  incoming[1]!.reject();
  ws.deliver({ type: "call_state", call_id: "c3", state: "disconnected", end_reason: { code: 487, subcode: 0, message: "call cancelled" } });
  assert.deepEqual(ws.take(), [
    { type: "accept", call_id: "c1", options: { muted: true, video: false } },
    { type: "reject", call_id: "c2" },
  ]);
  assert.equal(call.state, "connecting");
  assert.equal(call.direction, "incoming");
  assert.deepEqual(cancelled, { code: 487, subcode: 0, message: "call cancelled" });
  ws.deliver({ type: "call_state", call_id: "c1", state: "connected" });
  ws.deliver({ type: "roster", call_id: "c1", participants: [{ id: "8:alice", state: "connected", muted: false, speaking: false, video: [] }] });
  assert.deepEqual(call.remoteParticipants.map((p) => p.identifier), ["8:alice"]);
  agent.dispose();
});

test("call agent: a refused token rejects createCallAgent", async () => {
  const c = client();
  const agentPromise = c.cc.createCallAgent("bad");
  const ws = await c.nextSocket(1);
  ws.deliver({ type: "error", code: "invalid_token", message: "bad signature" });
  await assert.rejects(agentPromise, (e: unknown) => e instanceof CallingError && e.code === "invalid_token");
});

test("call agent: bad server messages are reported and survived", async () => {
  const { ws, agent } = await connected();
  const errors: unknown[] = [];
  agent.addEventListener("error", (e) => errors.push((e as CustomEvent).detail.error));
  ws.onmessage?.({ data: '{"v":1,"type":"call_state","call_id":"c1","state":"on_fire"}' });
  ws.onmessage?.({ data: "[]" });
  assert.equal(errors.length, 2);
  assert.equal(agent.connectionState, "connected");
  agent.dispose();
});

test("call agent: reconnects after the socket closes and resumes the session", async () => {
  const { ws, agent, nextSocket } = await connected();
  const call = agent.join({ groupId: "team" });
  ws.deliver({ type: "call_state", call_id: call.id, state: "connected" });
  ws.take();
  const states: string[] = [];
  agent.addEventListener("connectionStateChanged", (e) => states.push((e as CustomEvent).detail.state));
  ws.onclose?.({});
  assert.equal(agent.connectionState, "reconnecting");
  const ws2 = await nextSocket(2);
  assert.deepEqual(ws2.take(), [{ type: "auth", token: "tok", resume: "r-1", client: "web" }]);
  ws2.deliver({ type: "authenticated", user: "8:alice", resume_token: "r-2", grace_ms: 30_000, resumed: true });
  ws2.deliver({ type: "call_state", call_id: call.id, state: "connected" });
  const [ping] = ws2.take();
  assert.equal(ping?.type, "ping");
  ws2.deliver({ type: "pong", seq: ping!.type === "ping" ? ping!.seq : 0 });
  assert.equal(call.state, "connected", "the call went on");
  assert.deepEqual(states, ["reconnecting", "authenticating", "connected"]);
  agent.dispose();
  assert.ok(ws2.closed);
});
