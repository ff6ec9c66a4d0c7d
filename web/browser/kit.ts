// Shared by the browser suites that run pages against a real `ringwire serve`: the
// Chromium flags, the page-side harness (`h.<name>(..)` calls), and a stage that
// starts the server (with extra config), a page server for the SDK, and Chromium, and
// stops them all. Waits are bounded polls for a condition, never assertions about time.

import assert from "node:assert/strict";
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import path from "node:path";

import { chromium, type Browser, type Page } from "playwright-core";

const WEB = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
/** The built `ringwire` binary; the suites skip without it. */
export const RINGWIRE = process.env.RINGWIRE_BIN;
/** Longest any one condition is waited for (a guard against hanging, not a check). */
export const GUARD_MS = 30_000;

export const ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--use-fake-device-for-media-stream",
  "--use-fake-ui-for-media-stream",
  "--allow-loopback-in-peer-connection",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  // The WebAudio checks start an AudioContext without a click.
  "--autoplay-policy=no-user-gesture-required",
];

// Page-side helpers, loaded as a module next to the SDK: plain JavaScript, so the
// test drives pages with short `h.<name>(..)` calls.
export const HARNESS = String.raw`
import * as sdk from "/sdk/ringwire.js";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const h = {
  async connect(url, token, accept) {
    window.agent = await new sdk.CallClient({ url }).createCallAgent(token);
    window.agent.addEventListener("incomingCall", (e) => {
      if (!accept) return;
      window.call = e.detail.incomingCall.accept(accept.video ? { video: new sdk.LocalVideoStream() } : {});
    });
    return String(window.agent.user);
  },
  startCall(targets, video) {
    window.call = window.agent.startCall(targets, video ? { video: new sdk.LocalVideoStream() } : {});
  },
  join(group) {
    window.call = window.agent.join({ groupId: group });
  },
  async stats() {
    const out = { state: window.call?.state, audioInbound: 0, audioPackets: 0, audioLost: 0,
      videoInbound: 0, framesDecoded: 0, videoPackets: 0, videoLost: 0, width: 0, height: 0, videoCodec: "", videoDetail: {} };
    const report = await window.call?.getStats();
    const codecs = new Map();
    report?.forEach((s) => { if (s.type === "codec") codecs.set(s.id, s.mimeType + "/" + s.payloadType + " " + (s.sdpFmtpLine ?? "")); });
    report?.forEach((s) => {
      if (s.type !== "inbound-rtp") return;
      if (s.kind === "audio") {
        out.audioInbound += 1;
        out.audioPackets += s.packetsReceived ?? 0;
        out.audioLost += s.packetsLost ?? 0;
      } else if (s.kind === "video") {
        out.videoInbound += 1;
        out.framesDecoded += s.framesDecoded ?? 0;
        out.videoPackets += s.packetsReceived ?? 0;
        out.videoLost += s.packetsLost ?? 0;
        out.videoDetail = { framesReceived: s.framesReceived, keyFramesDecoded: s.keyFramesDecoded, framesDropped: s.framesDropped,
          pliCount: s.pliCount, firCount: s.firCount, nackCount: s.nackCount, decoder: s.decoderImplementation,
          codec: codecs.get(s.codecId), bytes: s.bytesReceived, jitterBufferEmittedCount: s.jitterBufferEmittedCount };
        if (s.framesDecoded) {
          out.width = s.frameWidth ?? 0;
          out.height = s.frameHeight ?? 0;
          out.videoCodec = (codecs.get(s.codecId) ?? "").split("/").slice(0, 2).join("/");
        }
      }
    });
    return out;
  },
  sdp() {
    const pc = window.call?.media?.pc;
    const pick = (d) => (d?.sdp ?? "").split("\r\n").filter((l) => /^(m=|a=rtpmap|a=mid|a=fmtp|a=send|a=recv)/.test(l)).join("\n");
    return "OFFER\n" + pick(pc?.localDescription) + "\nANSWER\n" + pick(pc?.remoteDescription);
  },
  // Inbound audio streams (by SSRC) whose packet count rises over ms: the streams
  // actually arriving now (stats keep streams that ended).
  async activeAudio(ms) {
    const snap = async () => {
      const out = new Map();
      (await window.call?.getStats())?.forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "audio") out.set(s.ssrc, s.packetsReceived ?? 0);
      });
      return out;
    };
    const before = await snap();
    await sleep(ms);
    const after = await snap();
    // A stream is one that delivers at least 10 packets in the window (opus sends 50
    // a second): the server also sends a few stray packets on SSRC 0 (seen: 3 per
    // call, reported in issue 8), which Chromium lists as a stream of its own.
    const streams = [...after].map(([ssrc, packets]) => ({ ssrc, packets, rising: packets - (before.get(ssrc) ?? 0) }));
    return { active: streams.filter((s) => s.rising >= 10).length, streams };
  },
  roster() {
    const call = window.call;
    return {
      state: call?.state,
      dominant: [...(call?.dominantSpeakers ?? [])].map(String),
      participants: (call?.remoteParticipants ?? []).map((p) => ({
        id: String(p.identifier), state: p.state, muted: p.isMuted,
        video: p.videoStreams.map((v) => ({ kind: v.kind, shown: !!v.mediaStream })),
      })),
    };
  },
  // Polls until check(roster, stats) holds (bounded); returns the last view.
  async until(check, guardMs) {
    const f = new Function("r", "s", "return " + check);
    const end = performance.now() + guardMs;
    for (;;) {
      const r = h.roster();
      const s = await h.stats();
      if (f(r, s)) return { ok: true, r, s };
      if (performance.now() > end) return { ok: false, r, s };
      await sleep(50);
    }
  },
  // Listens to the call's remote audio until a snapshot (about 85 ms) louder than
  // -40 dBFS has its spectral peak within tol of hz (bounded); returns what it heard.
  async hear(hz, tol, guardMs) {
    const stream = window.call?.remoteAudioStream;
    if (!stream) return { ok: false, why: "no remote audio stream" };
    const ctx = new AudioContext();
    await ctx.resume();
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 4096;
    analyser.smoothingTimeConstant = 0;
    ctx.createMediaStreamSource(stream).connect(analyser);
    const time = new Float32Array(analyser.fftSize);
    const freq = new Float32Array(analyser.frequencyBinCount);
    const bin = ctx.sampleRate / analyser.fftSize;
    const peaks = new Map();
    const end = performance.now() + guardMs;
    let result = { ok: false, peaks: {} };
    while (performance.now() < end) {
      await sleep(20);
      analyser.getFloatTimeDomainData(time);
      let sum = 0;
      for (const x of time) sum += x * x;
      if (10 * Math.log10(sum / time.length + 1e-12) < -40) continue;
      analyser.getFloatFrequencyData(freq);
      let best = -1;
      for (let i = Math.floor(100 / bin); i < Math.min(freq.length, 4000 / bin); i++) {
        if (best < 0 || freq[i] > freq[best]) best = i;
      }
      const peak = Math.round(best * bin);
      const key = Math.round(peak / 10) * 10;
      peaks.set(key, (peaks.get(key) ?? 0) + 1);
      if (Math.abs(peak - hz) <= tol) {
        result = { ok: true, peak };
        break;
      }
    }
    await ctx.close();
    return { ...result, peaks: Object.fromEntries(peaks) };
  },
  // Shares a surface; getDisplayMedia is wrapped in a bounded wait.
  async share(surface) {
    const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error("getDisplayMedia did not settle")), 10000));
    await Promise.race([window.call.startScreenSharing({ surface }), timeout]);
  },
};
window.h = h;
// Something that repaints, so a tab capture of this page keeps sending frames.
setInterval(() => { document.getElementById("tick").textContent = String(performance.now() | 0); }, 100);
window.ready = true;
`;

/** Calls `h[name](...args)` in the page. */
export function h<T = unknown>(page: Page, name: string, ...args: unknown[]): Promise<T> {
  return page.evaluate(
    ({ name, args }) => (window as unknown as { h: Record<string, (...a: unknown[]) => unknown> }).h[name]!(...args),
    { name, args },
  ) as Promise<T>;
}

/** What `h.until` returns: the roster `r` and the stats `s` when the check held (or last seen). */
export type View = {
  ok: boolean;
  r: { state: string; dominant: string[]; participants: Array<{ id: string; state: string; muted: boolean; video: Array<{ kind: string; shown: boolean }> }> };
  s: { state: string; audioInbound: number; audioPackets: number; audioLost: number; videoInbound: number; framesDecoded: number; videoPackets: number; videoLost: number; width: number; height: number; videoCodec: string };
};

/** Waits (bounded) until `check` (an expression over `r`, the roster, and `s`, the stats) holds in the page. */
export async function pageUntil(page: Page, who: string, check: string, guardMs = GUARD_MS): Promise<View> {
  const view = await h<View>(page, "until", check, guardMs);
  assert.ok(view.ok, `${who}: ${check}: not seen; last view ${JSON.stringify(view)}`);
  return view;
}

/** A running `ringwire serve` (with `extraConfig` appended to its config), a page server and Chromium. */
export class Stage {
  private constructor(
    readonly dir: string,
    private readonly server: ChildProcess,
    private readonly web: Server,
    private readonly browser: Browser,
    /** `ws://…/v1/signaling` of the server. */
    readonly signalingUrl: string,
    private readonly pageUrl: string,
  ) {}

  /** Starts everything; `name` labels the temp folder and the page title. */
  static async start(name: string, extraConfig = ""): Promise<Stage> {
    assert.ok(RINGWIRE && existsSync(RINGWIRE), `RINGWIRE_BIN=${RINGWIRE} does not exist`);
    assert.ok(existsSync(path.join(WEB, "dist", "ringwire.js")), "run npm run build first");
    const dir = mkdtempSync(path.join(tmpdir(), `ringwire-${name}-`));
    writeFileSync(
      path.join(dir, "ringwire.toml"),
      `http_addr = "127.0.0.1:0"\nquic_addr = "127.0.0.1:0"\ndata_dir = ${JSON.stringify(path.join(dir, "data"))}\n\n[media]\nbind = "127.0.0.1:0"\n${extraConfig}`,
    );
    // RINGWIRE_SERVER_LOG=<file> keeps the server's log (with RUST_LOG, e.g. str0m=debug).
    const log = process.env.RINGWIRE_SERVER_LOG ? openSync(process.env.RINGWIRE_SERVER_LOG, "w") : "ignore";
    const server = spawn(RINGWIRE, ["--config", path.join(dir, "ringwire.toml"), "serve"], { stdio: ["ignore", "pipe", log] });
    const http = await new Promise<string>((resolve, reject) => {
      let out = "";
      server.stdout!.on("data", (d) => {
        out += String(d);
        const m = /http\s+http:\/\/(\S+)/.exec(out);
        if (m) resolve(m[1]!);
      });
      server.on("exit", (code) => reject(new Error(`ringwire serve exited with ${code}: ${out}`)));
    });
    const bundle = readFileSync(path.join(WEB, "dist", "ringwire.js"));
    const web = createServer((req, res) => {
      if (req.url === "/sdk/ringwire.js") {
        res.writeHead(200, { "content-type": "text/javascript" });
        res.end(bundle);
      } else if (req.url === "/harness.js") {
        res.writeHead(200, { "content-type": "text/javascript" });
        res.end(HARNESS);
      } else {
        res.writeHead(200, { "content-type": "text/html" });
        res.end(`<!doctype html><title>ringwire ${name}</title><p id="tick">0</p><script type="module" src="/harness.js"></script>`);
      }
    });
    await new Promise<void>((resolve) => web.listen(0, "127.0.0.1", resolve));
    const address = web.address();
    assert.ok(address && typeof address === "object");
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
    return new Stage(dir, server, web, browser, `ws://${http}/v1/signaling`, `http://127.0.0.1:${address.port}/`);
  }

  /** A token for `user` from the server's own keys (`scopes`: comma-separated, e.g. "voip,pstn"). */
  token(user: string, scopes = "voip"): string {
    return execFileSync(RINGWIRE!, ["--config", path.join(this.dir, "ringwire.toml"), "token", "--user", user, "--scopes", scopes])
      .toString()
      .trim();
  }

  /** A fresh page with the harness loaded. */
  async newPage(): Promise<Page> {
    const page = await this.browser.newPage();
    await page.goto(this.pageUrl);
    await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
    return page;
  }

  /** Stops Chromium, the page server and the server, and removes the folder. */
  async close(): Promise<void> {
    await this.browser.close();
    this.web.close();
    if (this.server.exitCode === null) {
      this.server.kill("SIGTERM");
      await new Promise((r) => this.server.once("exit", r));
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
