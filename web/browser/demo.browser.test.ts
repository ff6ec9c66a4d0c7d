// The demo page as `ringwire serve` serves it (`/`, `/demo.js`, `/sdk/ringwire.js`,
// `/dev/token`), driven by clicking in headless Chromium: sign in with a display name,
// echo test, audio comes back (inbound-rtp packets rising, and sound in a WebAudio
// analyser on the call's remote stream), camera on (local preview) and off, window
// share on and off, dominant speaker outlined, mute and unmute, hang up; a screenshot of the
// page in the call goes to build/artifacts/demo-in-call.png. It prints the join time
// as a user sees it: Echo test click to the first echoed audio packet, p50 over
// RINGWIRE_JOINS (default 20) joins. Needs RINGWIRE_BIN (the
// built `ringwire` binary); without it the suite is skipped and says so. Run inside
// `unshare -n` (npm run test:browser) so all traffic stays on lo.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import path from "node:path";

import { chromium, type Browser, type Page } from "playwright-core";

const WEB = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const ARTIFACTS = path.join(WEB, "build", "artifacts");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const RINGWIRE = process.env.RINGWIRE_BIN;
const skip = !RINGWIRE && "RINGWIRE_BIN is not set";

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
  // The WebAudio check starts an AudioContext without a click.
  "--autoplay-policy=no-user-gesture-required",
];

let browser: Browser | undefined;
let server: ChildProcess | undefined;
let dir: string | undefined;
let origin = "";

before(async () => {
  if (!RINGWIRE) return;
  assert.ok(existsSync(RINGWIRE), `RINGWIRE_BIN=${RINGWIRE} does not exist`);
  assert.ok(existsSync(path.join(WEB, "dist", "ringwire.js")), "run npm run build first");
  dir = mkdtempSync(path.join(tmpdir(), "ringwire-demo-"));
  writeFileSync(
    path.join(dir, "ringwire.toml"),
    [
      `http_addr = "127.0.0.1:0"`,
      `quic_addr = "127.0.0.1:0"`,
      `data_dir = ${JSON.stringify(path.join(dir, "data"))}`,
      `web_dir = ${JSON.stringify(WEB)}`,
      ``,
      `[media]`,
      `bind = "127.0.0.1:0"`,
      ``,
    ].join("\n"),
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
  origin = `http://${http}`;
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
});

after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) {
    server.kill("SIGTERM");
    await new Promise((r) => server!.once("exit", r));
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("ringwire serve serves the demo page, the SDK bundle and development tokens", { skip }, async () => {
  const page = await fetch(`${origin}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
  assert.match(await page.text(), /<title>Ringwire demo<\/title>/);
  for (const file of ["/demo.js", "/demo.css"]) assert.equal((await fetch(`${origin}${file}`)).status, 200, file);

  const sdk = await fetch(`${origin}/sdk/ringwire.js`);
  assert.equal(sdk.status, 200);
  assert.match(sdk.headers.get("content-type") ?? "", /^text\/javascript/);
  assert.equal(sdk.headers.get("access-control-allow-origin"), "*", "importable from other origins");
  assert.match(await sdk.text(), /CallClient/);
  assert.equal((await fetch(`${origin}/sdk/ringwire.js.map`)).status, 200);
  assert.equal((await fetch(`${origin}/sdk/other.js`)).status, 404);

  const token = (name: string, contentType = "application/json") =>
    fetch(`${origin}/dev/token`, { method: "POST", headers: { "content-type": contentType }, body: JSON.stringify({ name }) });
  const alice = await token("  Ada Lovelace ");
  assert.equal(alice.status, 200);
  const body = (await alice.json()) as { id: string; name: string; token: string; expires_at: number };
  assert.equal(body.id, "8:ada-lovelace");
  assert.equal(body.name, "Ada Lovelace");
  assert.ok(body.token.length > 20);
  assert.ok(body.expires_at > Date.now() / 1000);
  assert.equal((await token("echo123")).status, 400, "the echo service's id is not for people");
  assert.equal((await token("ßß")).status, 400);
  assert.notEqual((await token("bob", "text/plain")).status, 200, "JSON only: no cross-origin form posts");
});

/** Polls `check` in the page (bounded, 50 ms apart) until it returns something truthy. */
async function waitFor<T>(page: Page, what: string, check: () => T | Promise<T>): Promise<T> {
  for (let i = 0; i < 400; i++) {
    const value = await page.evaluate(check);
    if (value) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
  const log = await page.locator("#log").innerText();
  throw new Error(`never saw: ${what}; page log:\n${log}`);
}

test("demo page in Chromium: sign in, echo test by click, audio comes back, camera on/off, mute, hang up, screenshot", { skip }, async () => {
  const page = await browser!.newPage({ viewport: { width: 1000, height: 1100 } });
  await page.goto(`${origin}/`);
  await page.getByLabel("Display name").fill("Demo Tester");
  await page.getByRole("button", { name: "Get token and connect" }).click();
  await page.getByText("Signed in as Demo Tester (8:demo-tester)").waitFor();

  await page.getByRole("button", { name: "Echo test (8:echo123)" }).click();
  await page.locator("#call-state", { hasText: /^connected$/ }).waitFor();

  type Demo = { ringwireDemo: { call?: { isMuted: boolean; remoteAudioStream?: MediaStream; getStats(): Promise<RTCStatsReport | undefined> } } };
  const inboundAudio = () =>
    page.evaluate(async () => {
      let packets = 0;
      const report = await (window as unknown as Demo).ringwireDemo.call?.getStats();
      report?.forEach((s: { type: string; kind?: string; packetsReceived?: number }) => {
        if (s.type === "inbound-rtp" && s.kind === "audio") packets = s.packetsReceived ?? 0;
      });
      return packets;
    });
  // Echoed audio: packets arrive, then keep arriving.
  let first = 0;
  for (let i = 0; i < 400 && first === 0; i++) {
    first = await inboundAudio();
    if (first === 0) await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(first > 0, "no echoed audio packet");
  let later = first;
  for (let i = 0; i < 400 && later <= first; i++) {
    await new Promise((r) => setTimeout(r, 50));
    later = await inboundAudio();
  }
  assert.ok(later > first, `inbound audio packets stopped at ${first}`);

  // The echo is sound, not silence: the fake microphone beeps, the analyser on the
  // call's remote stream hears it (peak sample above 0.05 of full scale).
  const peak = await page.evaluate(async () => {
    const stream = (window as unknown as Demo).ringwireDemo.call?.remoteAudioStream;
    if (!stream) return -1;
    const ctx = new AudioContext();
    await ctx.resume();
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 2048;
    ctx.createMediaStreamSource(stream).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    let max = 0;
    // Bounded: up to 300 looks, 20 ms apart, until a beep is heard.
    for (let i = 0; i < 300 && max < 0.05; i++) {
      await new Promise((r) => setTimeout(r, 20));
      analyser.getFloatTimeDomainData(samples);
      for (const s of samples) max = Math.max(max, Math.abs(s));
    }
    await ctx.close();
    return max;
  });
  assert.ok(peak >= 0.05, `echoed audio peak ${peak}`);

  await page.getByText("8:echo123", { exact: true }).first().waitFor();
  // Camera on: the fake camera shows in the local preview (frames decoded by the page).
  await page.getByRole("button", { name: "Camera on" }).click();
  await page.locator("#video[aria-pressed=true]", { hasText: "Camera off" }).waitFor();
  await waitFor(page, "the local preview playing", () => {
    const v = document.getElementById("local-video") as HTMLVideoElement;
    return !v.closest("figure")!.hidden && v.videoWidth > 0 && v.currentTime > 0;
  });
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, "demo-in-call.png"), fullPage: true });

  await page.getByRole("button", { name: "Camera off" }).click();
  await page.locator("#video[aria-pressed=false]", { hasText: "Camera on" }).waitFor();
  await page.locator("#local-figure[hidden]").waitFor({ state: "attached" });

  // Share a window (headless fake capture: a synthetic pattern), then stop.
  await page.getByLabel("Share").selectOption("window");
  await page.getByRole("button", { name: "Share", exact: true }).click();
  await page.locator("#share[aria-pressed=true]", { hasText: "Stop sharing" }).waitFor();
  await page.locator("#local-figure:not([hidden])").waitFor();
  await page.getByRole("button", { name: "Stop sharing" }).click();
  await page.locator("#share[aria-pressed=false]", { hasText: "Share" }).waitFor();

  // The echo service speaks (our echo): it is the dominant speaker, outlined in the roster.
  await page.locator('#roster li.dominant[data-id="8:echo123"]').getByText("dominant speaker").waitFor();

  const mute = page.locator("#mute");
  await mute.click();
  await page.locator("#mute[aria-pressed=true]", { hasText: "Unmute" }).waitFor();
  assert.equal(await waitFor(page, "the call muted", () => (window as unknown as Demo).ringwireDemo.call?.isMuted === true), true);
  await mute.click();
  await page.locator("#mute[aria-pressed=false]", { hasText: "Mute" }).waitFor();
  assert.equal(await waitFor(page, "the call unmuted", () => (window as unknown as Demo).ringwireDemo.call?.isMuted === false), true);

  await page.getByRole("button", { name: "Hang up" }).click();
  await page.locator("#call-state", { hasText: /^disconnected$/ }).waitFor();
  assert.equal(await page.locator("#hangup").isDisabled(), true);
  await page.close();
});

/** Opens the demo page signed in as `name` (the `?name=` prefill, then a click). */
async function signedIn(name: string): Promise<Page> {
  const page = await browser!.newPage();
  await page.goto(`${origin}/?name=${encodeURIComponent(name)}`);
  await page.getByRole("button", { name: "Get token and connect" }).click();
  await page.getByText(`Signed in as ${name} (8:${name})`).waitFor();
  return page;
}

/** The roster entry for `who` on `page`. */
const rosterEntry = (page: Page, who: string) => page.locator(`#roster li[data-id="${who}"]`);

test("demo page between tabs: alice calls bob, bob accepts, hold seen; group call of three, remove", { skip }, async () => {
  const alice = await signedIn("alice");
  const bob = await signedIn("bob");

  await alice.getByLabel("Call a user").fill("8:bob");
  await alice.getByRole("button", { name: "Call", exact: true }).click();
  await bob.getByRole("button", { name: "Accept the call from 8:alice" }).click();
  await alice.locator("#call-state", { hasText: /^connected$/ }).waitFor();
  await bob.locator("#call-state", { hasText: /^connected$/ }).waitFor();
  await rosterEntry(alice, "8:bob").getByText("connected", { exact: true }).waitFor();
  await rosterEntry(bob, "8:alice").getByText("connected", { exact: true }).waitFor();

  // Hold and mute at alice show in bob's roster.
  await alice.getByRole("button", { name: "Mute" }).click();
  await alice.getByRole("button", { name: "Hold" }).click();
  await alice.locator("#hold[aria-pressed=true]", { hasText: "Resume" }).waitFor();
  await rosterEntry(bob, "8:alice").getByText("hold", { exact: true }).waitFor();
  await rosterEntry(bob, "8:alice").getByText("muted", { exact: true }).waitFor();
  await bob.locator("#call-state", { hasText: /^remote_hold$/ }).waitFor();
  await bob.getByRole("button", { name: "Hang up" }).click();
  await alice.locator("#call-state", { hasText: /^disconnected$/ }).waitFor();

  // Group call by id: three tabs join, everyone sees the other two; alice removes carol.
  const carol = await signedIn("carol");
  for (const page of [alice, bob, carol]) {
    await page.getByLabel("Join a group call by id").fill("demo-standup");
    await page.getByRole("button", { name: "Join", exact: true }).click();
  }
  for (const [page, others] of [
    [alice, ["8:bob", "8:carol"]],
    [bob, ["8:alice", "8:carol"]],
    [carol, ["8:alice", "8:bob"]],
  ] as const) {
    await page.locator("#call-state", { hasText: /^connected$/ }).waitFor();
    for (const who of others) await rosterEntry(page, who).getByText("connected", { exact: true }).waitFor();
  }
  await alice.getByRole("button", { name: "Remove 8:carol from the call" }).click();
  await carol.locator("#call-state", { hasText: /^disconnected$/ }).waitFor();
  await rosterEntry(bob, "8:carol").waitFor({ state: "detached" });
  await rosterEntry(alice, "8:carol").waitFor({ state: "detached" });
  for (const page of [alice, bob]) await page.getByRole("button", { name: "Hang up" }).click();
  for (const page of [alice, bob, carol]) await page.close();
});

test("demo page: click to first audio, echo test joins", { skip }, async () => {
  const joins = Number(process.env.RINGWIRE_JOINS ?? 20);
  const page = await browser!.newPage();
  await page.goto(`${origin}/`);
  await page.getByLabel("Display name").fill("Join Timer");
  await page.getByRole("button", { name: "Get token and connect" }).click();
  await page.getByText("Signed in as Join Timer (8:join-timer)").waitFor();
  type Timed = { ringwireDemo: { call?: object }; clickAt?: number; callBefore?: object };
  // The click's own time stamp, and which call was current before it.
  await page.evaluate(() => {
    document.getElementById("echo")!.addEventListener(
      "click",
      (e) => {
        const w = window as unknown as Timed;
        w.clickAt = e.timeStamp;
        w.callBefore = w.ringwireDemo.call;
      },
      { capture: true },
    );
  });
  const times: number[] = [];
  for (let i = 0; i < joins; i++) {
    await page.getByRole("button", { name: "Echo test (8:echo123)" }).click();
    // Bounded poll (5 ms apart) for the new call's first inbound audio packet.
    const ms = await page.evaluate(async () => {
      const w = window as unknown as Timed & { ringwireDemo: { call?: { getStats(): Promise<RTCStatsReport | undefined> } } };
      for (let j = 0; j < 4000; j++) {
        const call = w.ringwireDemo.call;
        if (call && call !== w.callBefore) {
          let packets = 0;
          (await call.getStats())?.forEach((s: { type: string; kind?: string; packetsReceived?: number }) => {
            if (s.type === "inbound-rtp" && s.kind === "audio") packets += s.packetsReceived ?? 0;
          });
          if (packets > 0) return performance.now() - w.clickAt!;
        }
        await new Promise((r) => setTimeout(r, 5));
      }
      return -1;
    });
    assert.ok(ms >= 0, `join ${i}: no audio came back`);
    times.push(ms);
    await page.getByRole("button", { name: "Hang up" }).click();
    await page.locator("#hangup[disabled]").waitFor({ state: "attached" });
  }
  const sorted = [...times].sort((a, b) => a - b);
  const p50 = sorted[Math.floor((sorted.length - 1) / 2)]!;
  console.log(
    `demo page click to first audio (echo test button to the first echoed audio packet), ${joins} joins: p50 ${p50.toFixed(0)} ms, min ${sorted[0]!.toFixed(0)} ms, max ${sorted.at(-1)!.toFixed(0)} ms`,
  );
  await page.close();
});
