// The built bundle in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core; no browser download). The signaling server is played by the test
// through Playwright's WebSocket routing, so nothing leaves the browser: this checks
// the SDK's browser side (bundle loads, auth as a web client, the media offer's shape
// with fake devices, device listing, screen capture), not a call through Ringwire's
// media plane.
//
// Run with `npm run test:browser` after `npm run build`. CHROMIUM overrides the path.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

import { chromium, type Browser, type Page, type WebSocketRoute } from "playwright-core";

const WEB = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const ORIGIN = "http://localhost:8080";

/** The flags that work headless here (see the browser notes in shared/notes). */
const ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--use-fake-device-for-media-stream",
  "--use-fake-ui-for-media-stream",
  "--allow-loopback-in-peer-connection",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

let browser: Browser;

before(async () => {
  assert.ok(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM} (apt-get install chromium)`);
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
});

after(async () => {
  await browser?.close();
});

/** Client messages the page sent, and a hook to answer them. */
interface FakeServer {
  received: Array<Record<string, unknown>>;
  route: WebSocketRoute | undefined;
  send(message: Record<string, unknown>): void;
}

async function openPage(onMessage: (server: FakeServer, m: Record<string, unknown>) => void): Promise<{ page: Page; server: FakeServer }> {
  const page = await browser.newPage();
  const bundle = readFileSync(path.join(WEB, "dist", "ringwire.js"), "utf8");
  await page.route(`${ORIGIN}/**`, (route) => {
    const url = new URL(route.request().url());
    if (url.pathname === "/sdk/ringwire.js") {
      return route.fulfill({ contentType: "text/javascript", body: bundle });
    }
    return route.fulfill({ contentType: "text/html", body: "<!doctype html><title>sdk test</title>" });
  });
  const server: FakeServer = {
    received: [],
    route: undefined,
    send(message) {
      this.route?.send(JSON.stringify({ v: 1, ...message }));
    },
  };
  await page.routeWebSocket(`ws://localhost:8080/v1/signaling`, (ws) => {
    server.route = ws;
    ws.onMessage((text) => {
      const m = JSON.parse(String(text)) as Record<string, unknown>;
      server.received.push(m);
      onMessage(server, m);
    });
  });
  await page.goto(`${ORIGIN}/`);
  return { page, server };
}

/** Answers `auth` like the server does. */
function authenticate(server: FakeServer, m: Record<string, unknown>): void {
  if (m.type === "auth") {
    server.send({ type: "authenticated", user: "8:alice", resume_token: "r-1", grace_ms: 30000, resumed: false });
  }
}

test("the bundle loads, authenticates as a web client and offers the native shape", async () => {
  const { page, server } = await openPage((server, m) => {
    authenticate(server, m);
    if (m.type === "start_call") server.send({ type: "call_state", call_id: m.call_id, state: "ringing" });
  });
  const result = await page.evaluate(async () => {
    const sdk = await import("/sdk/ringwire.js" as string);
    const client = new sdk.CallClient({ videoSlots: 1 });
    const agent = await client.createCallAgent("tok");
    const call = agent.startCall(["8:bob"]);
    const states: string[] = [];
    call.addEventListener("stateChanged", () => states.push(call.state));
    // Wait until the offer went out (the SDK sends it right after start_call).
    for (let i = 0; i < 200 && !call.media?.pc.localDescription; i++) await new Promise((r) => setTimeout(r, 10));
    // Then for the fake server's "ringing" (bounded: a fixed pause lost the race on a busy machine).
    for (let i = 0; i < 500 && call.state !== "ringing"; i++) await new Promise((r) => setTimeout(r, 10));
    return { user: agent.user, state: call.state, states, id: call.id };
  });
  assert.equal(result.user, "8:alice");
  assert.equal(result.state, "ringing");
  const types = server.received.map((m) => m.type);
  assert.deepEqual(types.slice(0, 3), ["auth", "start_call", "media"]);
  assert.deepEqual(server.received[0], { v: 1, type: "auth", token: "tok", client: "web" });
  const media = server.received[2] as { call_id: string; payload: { kind: string; sdp: string } };
  assert.equal(media.call_id, result.id);
  assert.equal(media.payload.kind, "offer");
  const sections = media.payload.sdp.split(/\r\nm=/).slice(1).map((s) => {
    const kind = s.split(" ")[0];
    const direction = /a=(sendrecv|sendonly|recvonly|inactive)/.exec(s)?.[1];
    return `${kind} ${direction}`;
  });
  assert.deepEqual(sections, ["audio sendrecv", "video sendonly", "video recvonly"]);
  assert.match(media.payload.sdp, /a=rtpmap:\d+ opus\/48000\/2/);
  assert.match(media.payload.sdp, /a=rtpmap:\d+ H264\/90000/);
  await page.close();
});

test("devices are listed, and a screen share is captured and announced", async () => {
  const { page, server } = await openPage((server, m) => {
    authenticate(server, m);
    if (m.type === "start_call") server.send({ type: "call_state", call_id: m.call_id, state: "connected" });
  });
  const result = await page.evaluate(async () => {
    const sdk = await import("/sdk/ringwire.js" as string);
    const client = new sdk.CallClient();
    const devices = client.getDeviceManager();
    await devices.askDevicePermission({ audio: true, video: true });
    const mics = await devices.getMicrophones();
    const cameras = await devices.getCameras();
    const agent = await client.createCallAgent("tok");
    const call = agent.startCall(["8:bob"]);
    for (let i = 0; i < 200 && call.state !== "connected"; i++) await new Promise((r) => setTimeout(r, 10));
    const shared = await Promise.race([
      call.startScreenSharing({ surface: "monitor" }).then(() => "shared"),
      new Promise((r) => setTimeout(() => r("getDisplayMedia timed out"), 5000)),
    ]);
    const track = call.localVideoStreams[0]?.track;
    const settings = track?.getSettings();
    await call.stopScreenSharing();
    return {
      mics: mics.length,
      cameras: cameras.length,
      shared,
      surface: (settings as { displaySurface?: string } | undefined)?.displaySurface,
      ended: track?.readyState,
    };
  });
  assert.ok(result.mics >= 1, "a fake microphone");
  assert.ok(result.cameras >= 1, "a fake camera");
  assert.equal(result.shared, "shared");
  assert.equal(result.surface, "monitor");
  assert.equal(result.ended, "ended");
  const video = server.received.filter((m) => m.type === "start_video" || m.type === "stop_video");
  assert.deepEqual(
    video.map((m) => [m.type, m.kind]),
    [
      ["start_video", "screen_share"],
      ["stop_video", "screen_share"],
    ],
  );
  await page.close();
});

/**
 * Media end to end between two pages: the SDK's offer is answered by a plain
 * RTCPeerConnection in a second page (standing in for the media plane, sending the
 * fake camera and microphone back), so the answer path, remote audio and a video slot
 * mapped by `video_slots` are exercised in the browser.
 */
test("the answer is applied, remote audio arrives and a video slot shows a participant", async () => {
  const answerer = await browser.newPage();
  await answerer.route(`${ORIGIN}/**`, (route) => route.fulfill({ contentType: "text/html", body: "<!doctype html><title>answerer</title>" }));
  await answerer.goto(`${ORIGIN}/answerer`);
  const answer = (sdp: string) =>
    answerer.evaluate(async (offer) => {
      const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
      (window as unknown as { pc: RTCPeerConnection }).pc = pc;
      await pc.setRemoteDescription({ type: "offer", sdp: offer });
      const media = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
      const [audio, publish, slot] = pc.getTransceivers();
      audio!.direction = "sendrecv";
      await audio!.sender.replaceTrack(media.getAudioTracks()[0]!);
      publish!.direction = "recvonly";
      slot!.direction = "sendonly";
      await slot!.sender.replaceTrack(media.getVideoTracks()[0]!);
      await pc.setLocalDescription(await pc.createAnswer());
      await new Promise<void>((resolve) => {
        if (pc.iceGatheringState === "complete") resolve();
        pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && resolve());
      });
      return { sdp: pc.localDescription!.sdp, slotMid: slot!.mid };
    }, sdp);

  let slotMid: string | null = null;
  const { page, server } = await openPage((server, m) => {
    authenticate(server, m);
    if (m.type === "start_call") {
      server.send({ type: "participant", call_id: m.call_id, participant: { id: "8:bob", state: "connected", video: [{ kind: "camera" }] } });
      server.send({ type: "call_state", call_id: m.call_id, state: "connected" });
    }
    if (m.type === "media") {
      const payload = m.payload as { sdp: string };
      void answer(payload.sdp).then((a) => {
        slotMid = a.slotMid;
        server.send({ type: "media", call_id: m.call_id, payload: { kind: "answer", sdp: a.sdp } });
        server.send({ type: "video_slots", call_id: m.call_id, slots: [{ mid: a.slotMid, participant: "8:bob", kind: "camera" }] });
      });
    }
  });
  const result = await page.evaluate(async () => {
    const sdk = await import("/sdk/ringwire.js" as string);
    const agent = await new sdk.CallClient().createCallAgent("tok");
    const call = agent.startCall(["8:bob"]);
    const audio = new Promise<string>((resolve) =>
      call.addEventListener("remoteAudioStream", (e: CustomEvent) => resolve(e.detail.stream.getAudioTracks()[0]?.kind)),
    );
    const deadline = (ms: number, what: string) => new Promise<string>((r) => setTimeout(() => r(`${what} timed out`), ms));
    const audioKind = await Promise.race([audio, deadline(10_000, "remote audio")]);
    // Wait (bounded) for the slot's video to be decoded.
    let framesDecoded = 0;
    for (let i = 0; i < 200 && framesDecoded === 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      const stats: RTCStatsReport = await call.getStats();
      stats.forEach((s: { type: string; kind?: string; framesDecoded?: number }) => {
        if (s.type === "inbound-rtp" && s.kind === "video") framesDecoded = s.framesDecoded ?? 0;
      });
    }
    const bob = call.remoteParticipants[0];
    const stream: MediaStream | undefined = bob?.videoStreams[0]?.mediaStream;
    return {
      audioKind,
      pcState: call.media?.pc.connectionState,
      framesDecoded,
      bobVideo: stream?.getVideoTracks()[0]?.readyState,
    };
  });
  assert.equal(result.audioKind, "audio");
  assert.equal(result.pcState, "connected");
  assert.ok(result.framesDecoded > 0, `video frames decoded: ${result.framesDecoded}`);
  assert.equal(result.bobVideo, "live");
  assert.ok(slotMid !== null);
  // One offer only: a second one would replace the media session whose answer we applied.
  assert.equal(server.received.filter((m) => m.type === "media").length, 1);
  await page.close();
  await answerer.close();
});
