// The SDK in headless Chromium against a real `ringwire serve` on loopback: signaling
// over WebSocket, media through the server's str0m, an echo call (`8:echo123`) whose
// audio comes back. Needs RINGWIRE_BIN (the built `ringwire` binary); without it the
// suite is skipped and says so. Run inside `unshare -n` (npm run test:browser) so all
// traffic stays on lo.
//
// The page is served from a real HTTP server on 127.0.0.1: Chromium's local network
// access checks block a routed (address-less) page from opening ws://127.0.0.1.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import path from "node:path";

import { chromium, type Browser } from "playwright-core";

const WEB = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const RINGWIRE = process.env.RINGWIRE_BIN;
/** Echo calls made to measure join time. */
const JOINS = Number(process.env.RINGWIRE_JOINS ?? 20);

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

let browser: Browser | undefined;
let server: ChildProcess | undefined;
let web: Server | undefined;
let dir: string | undefined;
let signalingUrl = "";
let pageUrl = "";

function ringwire(args: string[]): string {
  return execFileSync(RINGWIRE!, ["--config", path.join(dir!, "ringwire.toml"), ...args]).toString().trim();
}

before(async () => {
  if (!RINGWIRE) return;
  assert.ok(existsSync(RINGWIRE), `RINGWIRE_BIN=${RINGWIRE} does not exist`);
  dir = mkdtempSync(path.join(tmpdir(), "ringwire-web-"));
  writeFileSync(
    path.join(dir, "ringwire.toml"),
    `http_addr = "127.0.0.1:0"\nquic_addr = "127.0.0.1:0"\ndata_dir = "${path.join(dir, "data")}"\n\n[media]\nbind = "127.0.0.1:0"\n`,
  );
  server = spawn(RINGWIRE, ["--config", path.join(dir, "ringwire.toml"), "serve"], { stdio: ["ignore", "pipe", "ignore"] });
  const http = await new Promise<string>((resolve, reject) => {
    let out = "";
    server!.stdout!.on("data", (d) => {
      out += String(d);
      const m = /http\s+http:\/\/(\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    server!.on("exit", (code) => reject(new Error(`ringwire serve exited with ${code}: ${out}`)));
  });
  signalingUrl = `ws://${http}/v1/signaling`;
  const bundle = readFileSync(path.join(WEB, "dist", "ringwire.js"));
  web = createServer((req, res) => {
    if (req.url === "/sdk/ringwire.js") {
      res.writeHead(200, { "content-type": "text/javascript" });
      res.end(bundle);
    } else {
      res.writeHead(200, { "content-type": "text/html" });
      res.end("<!doctype html><title>ringwire e2e</title>");
    }
  });
  await new Promise<void>((resolve) => web!.listen(0, "127.0.0.1", resolve));
  const address = web.address();
  assert.ok(address && typeof address === "object");
  pageUrl = `http://127.0.0.1:${address.port}/`;
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
});

after(async () => {
  await browser?.close();
  web?.close();
  if (server && server.exitCode === null) {
    server.kill("SIGTERM");
    await new Promise((r) => server!.once("exit", r));
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("echo call from Chromium through ringwire serve: audio comes back, join time", { skip: !RINGWIRE && "RINGWIRE_BIN is not set" }, async () => {
  const page = await browser!.newPage();
  await page.goto(pageUrl);
  const result = await page.evaluate(
    async ({ url, token, joins }) => {
      const sdk = await import("/sdk/ringwire.js" as string);
      const agent = await new sdk.CallClient({ url, videoSlots: 1 }).createCallAgent(token);
      const inboundAudio = async (call: { getStats(): Promise<RTCStatsReport | undefined> }) => {
        let packets = 0;
        let lost = 0;
        (await call.getStats())?.forEach((s: { type: string; kind?: string; packetsReceived?: number; packetsLost?: number }) => {
          if (s.type === "inbound-rtp" && s.kind === "audio") {
            packets = s.packetsReceived ?? 0;
            lost = s.packetsLost ?? 0;
          }
        });
        return { packets, lost };
      };
      const times: number[] = [];
      let last = { packets: 0, lost: 0, state: "", codecs: "" };
      for (let i = 0; i < joins; i++) {
        // Join time: the app's startCall to the first echoed audio packet (stats polled every 5 ms).
        const t0 = performance.now();
        const call = agent.startCall(["8:echo123"]);
        let first: number | undefined;
        for (let j = 0; j < 2000 && first === undefined; j++) {
          await new Promise((r) => setTimeout(r, 5));
          if ((await inboundAudio(call)).packets > 0) first = performance.now() - t0;
        }
        if (first === undefined) return { error: `call ${i}: no audio came back`, times };
        times.push(first);
        if (i === joins - 1) {
          // The last call runs on for 1.5 s of echo (fewer packets than 50/s: opus DTX in
          // the fake microphone's silences between beeps).
          await new Promise((r) => setTimeout(r, 1500));
          const sdp: string = call.media?.pc.remoteDescription?.sdp ?? "";
          last = {
            ...(await inboundAudio(call)),
            state: call.media?.pc.connectionState ?? "",
            codecs: [...new Set([...sdp.matchAll(/a=rtpmap:\d+ ([^/\r]+)/g)].map((m) => m[1]))].join(","),
          };
        }
        await call.hangUp();
        for (let j = 0; j < 200 && call.state !== "disconnected"; j++) await new Promise((r) => setTimeout(r, 5));
      }
      agent.dispose();
      return { times, last };
    },
    { url: signalingUrl, token: ringwire(["token", "--user", "webtest"]), joins: JOINS },
  );
  assert.equal(result.error, undefined, result.error);
  const { times, last } = result as { times: number[]; last: { packets: number; lost: number; state: string; codecs: string } };
  assert.equal(times.length, JOINS);
  assert.equal(last.state, "connected");
  assert.ok(last.packets >= 20, `echoed audio packets: ${last.packets}`);
  assert.equal(last.lost, 0);
  assert.equal(last.codecs, "opus,H264,rtx", "the server's answer: opus and H.264 only");
  const sorted = [...times].sort((a, b) => a - b);
  const p50 = sorted[Math.floor((sorted.length - 1) / 2)]!;
  console.log(
    `browser echo join time (startCall to first echoed audio packet), ${JOINS} joins: p50 ${p50.toFixed(0)} ms, min ${sorted[0]!.toFixed(0)} ms, max ${sorted.at(-1)!.toFixed(0)} ms`,
  );
  await page.close();
});

test("1:1 call between two Chromium pages through ringwire serve: audio both ways, camera video, mute and hold seen by the other", { skip: !RINGWIRE && "RINGWIRE_BIN is not set" }, async () => {
  const alice = await browser!.newPage();
  const bob = await browser!.newPage();
  await alice.goto(pageUrl);
  await bob.goto(pageUrl);
  type Stats = { audioIn: number; videoFrames: number; videoCodec: string };
  // Bob: accept whatever rings, keep the call on window for later evaluation.
  await bob.evaluate(
    async ({ url, token }) => {
      const sdk = await import("/sdk/ringwire.js" as string);
      const agent = await new sdk.CallClient({ url }).createCallAgent(token);
      const w = window as unknown as Record<string, unknown>;
      agent.addEventListener("incomingCall", (e: CustomEvent) => {
        w.call = e.detail.incomingCall.accept();
      });
      w.agent = agent;
    },
    { url: signalingUrl, token: ringwire(["token", "--user", "bob"]) },
  );
  await alice.evaluate(
    async ({ url, token }) => {
      const sdk = await import("/sdk/ringwire.js" as string);
      const agent = await new sdk.CallClient({ url }).createCallAgent(token);
      const w = window as unknown as Record<string, unknown>;
      w.agent = agent;
      w.call = agent.startCall(["8:bob"], { video: new sdk.LocalVideoStream() });
    },
    { url: signalingUrl, token: ringwire(["token", "--user", "alice"]) },
  );
  /** Polls (bounded) until `check` holds in the page; returns the page's stats. */
  const waitFor = (page: typeof alice, check: string) =>
    page.evaluate(async (check) => {
      const w = window as unknown as { call?: { state: string; getStats(): Promise<RTCStatsReport | undefined>; remoteParticipants: Array<{ state: string; isMuted: boolean; videoStreams: Array<{ mediaStream?: MediaStream }> }> } };
      const stats = async (): Promise<Stats> => {
        const out: Stats = { audioIn: 0, videoFrames: 0, videoCodec: "" };
        const report = await w.call?.getStats();
        const codecs = new Map<string, string>();
        report?.forEach((s: { type: string; id: string; mimeType?: string }) => {
          if (s.type === "codec") codecs.set(s.id, s.mimeType ?? "");
        });
        report?.forEach((s: { type: string; kind?: string; packetsReceived?: number; framesDecoded?: number; codecId?: string }) => {
          if (s.type !== "inbound-rtp") return;
          if (s.kind === "audio") out.audioIn = s.packetsReceived ?? 0;
          if (s.kind === "video") {
            out.videoFrames += s.framesDecoded ?? 0;
            if (s.framesDecoded) out.videoCodec = codecs.get(s.codecId ?? "") ?? "";
          }
        });
        return out;
      };
      for (let i = 0; i < 300; i++) {
        const s = await stats();
        const call = w.call;
        if (call && new Function("call", "s", `return ${check}`)(call, s)) return { ok: true, ...s };
        await new Promise((r) => setTimeout(r, 50));
      }
      return { ok: false, state: w.call?.state, participants: JSON.stringify(w.call?.remoteParticipants.map((p) => [p.state, p.isMuted])), ...(await stats()) };
    }, check);

  const bobSees = await waitFor(bob, `call.state === "connected" && s.audioIn > 0 && s.videoFrames > 0 && !!call.remoteParticipants[0]?.videoStreams[0]?.mediaStream`);
  assert.ok(bobSees.ok, `bob: ${JSON.stringify(bobSees)}`);
  assert.equal(bobSees.videoCodec, "video/H264", "the server pins H.264");
  const aliceHears = await waitFor(alice, `call.state === "connected" && s.audioIn > 0`);
  assert.ok(aliceHears.ok, `alice: ${JSON.stringify(aliceHears)}`);

  await alice.evaluate(async () => {
    const w = window as unknown as { call: { mute(): Promise<void>; hold(): Promise<void> } };
    await w.call.mute();
    await w.call.hold();
  });
  const bobSeesHold = await waitFor(bob, `call.state === "remote_hold" && call.remoteParticipants[0]?.isMuted && call.remoteParticipants[0]?.state === "hold"`);
  assert.ok(bobSeesHold.ok, `bob: ${JSON.stringify(bobSeesHold)}`);

  await bob.evaluate(() => (window as unknown as { call: { hangUp(): Promise<void> } }).call.hangUp());
  const aliceEnded = await waitFor(alice, `call.state === "disconnected"`);
  assert.ok(aliceEnded.ok, `alice: ${JSON.stringify(aliceEnded)}`);
  await alice.evaluate(() => (window as unknown as { agent: { dispose(): void } }).agent.dispose());
  await bob.evaluate(() => (window as unknown as { agent: { dispose(): void } }).agent.dispose());
  await alice.close();
  await bob.close();
});
