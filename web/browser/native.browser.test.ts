// Browsers and native clients in the same calls, through a real `ringwire serve` on
// loopback: headless Chromium pages run the SDK; the native side is `ringwire peer`
// (the Rust SDK with a synthetic tone and a test-pattern camera, reporting what it
// receives as JSON lines). Checked by content:
//
// - 1:1 both ways (the browser calls the native peer, the native peer calls a
//   browser): the native peer hears Chromium's fake microphone (a 400 Hz beep) and
//   decodes the fake camera (a moving picture); the browser hears the native tone
//   (WebAudio analyser peak near its frequency) and decodes the test pattern
//   (inbound-rtp frames decoded rising at the pattern's size, few packets lost).
// - Echo test from a browser: the beep comes back from `8:echo123`.
// - Group call of three browsers and the native peer: every page shows the roster,
//   one mixed audio stream carrying the native tone (and the native peer hears the
//   beeps), the native peer as dominant
//   speaker, mutes and a hold; removing the native peer ends its call and takes it
//   out of every roster.
// - Screen share from a browser ('monitor': Chromium's synthetic screen, then
//   'browser': a real tab capture) decoded by the native peer and shown to another
//   browser; stopping the share removes the stream everywhere.
//
// Needs RINGWIRE_BIN (the built `ringwire` binary); without it the suite is skipped and
// says so. Run inside `unshare -n` (npm run test:browser) so all traffic stays on lo.
// Waits are bounded polls for a condition, never assertions about time.

import { test, before, after, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

import type { Page } from "playwright-core";

import { GUARD_MS, RINGWIRE, Stage, h, pageUntil } from "./kit.js";

const skip = !RINGWIRE && "RINGWIRE_BIN is not set";

/**
 * Chromium's fake microphone (media/audio/fake_audio_input_stream.cc): a 20 ms
 * square-wave beep at 400 Hz, repeated about twice a second.
 */
const BEEP_HZ = 400;
/** The native peer's tone. */
const NATIVE_HZ = 700;
/** The native peer's test pattern (`ringwire peer` sends 320x180 at 15 fps). */
const PATTERN = { width: 320, height: 180 };

let stage: Stage | undefined;
let signalingUrl = "";
const peers = new Set<Peer>();

function token(user: string): string {
  return stage!.token(user);
}

function newPage(): Promise<Page> {
  return stage!.newPage();
}

type Line = { event: string; [key: string]: unknown };
type Report = Line & {
  audio: { dominant_hz: number | null; tones: Array<{ hz: number; snr_db: number; peak_snr_db: number | null; frames_with_tone: number }> };
  video: Array<{ participant: string; kind: string; active: boolean; frames: number; width: number; height: number; changes: number }>;
};
type Roster = Line & { participants: Array<{ id: string; state: string; muted: boolean; video: Array<{ kind: string }> }> };

/** A running `ringwire peer`: its JSON lines, a bounded wait for one, commands, stop. */
class Peer {
  readonly lines: Line[] = [];
  private readonly proc: ChildProcess;
  private readonly waiters = new Set<() => void>();
  readonly exited: Promise<number | null>;

  constructor(args: string[]) {
    this.proc = spawn(RINGWIRE!, ["peer", "--url", signalingUrl, ...args], { stdio: ["pipe", "pipe", "pipe"] });
    peers.add(this);
    let stderr = "";
    this.proc.stderr!.on("data", (d) => {
      stderr = (stderr + String(d)).slice(-4000);
    });
    createInterface({ input: this.proc.stdout! }).on("line", (raw) => {
      try {
        this.lines.push(JSON.parse(raw) as Line);
      } catch {
        this.lines.push({ event: "unparsed", raw });
      }
      for (const wake of this.waiters) wake();
    });
    this.exited = new Promise((resolve) =>
      this.proc.once("exit", (code) => {
        peers.delete(this);
        if (code !== 0) this.lines.push({ event: "stderr", stderr });
        for (const wake of this.waiters) wake();
        resolve(code);
      }),
    );
  }

  /** The first line from `from` on that satisfies `check`, waiting (bounded) for it. */
  async until<T extends Line = Line>(what: string, check: (line: T) => boolean, from = 0): Promise<T> {
    const end = Date.now() + GUARD_MS;
    let i = from;
    for (;;) {
      for (; i < this.lines.length; i++) if (check(this.lines[i] as T)) return this.lines[i] as T;
      if (this.proc.exitCode !== null || Date.now() > end) {
        const tail = this.lines.slice(-4).map((l) => JSON.stringify(l)).join("\n");
        assert.fail(`native peer: ${what}: not seen; last lines:\n${tail}`);
      }
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.waiters.delete(wake);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(wake, 200);
        this.waiters.add(wake);
      });
    }
  }

  send(command: string): void {
    this.proc.stdin!.write(`${command}\n`);
  }

  /** Hangs up (stdin EOF) and waits for the exit; kills it if it lingers. */
  async stop(): Promise<number | null> {
    if (this.proc.exitCode === null) {
      this.proc.stdin!.end();
      const timer = setTimeout(() => this.proc.kill("SIGKILL"), 10_000);
      await this.exited;
      clearTimeout(timer);
    }
    return this.proc.exitCode;
  }
}

/** The newest stream the native peer decoded from `who` of `kind`. */
function streamOf(report: Report, who: string, kind: string) {
  return report.video.filter((v) => v.participant === who && v.kind === kind).at(-1);
}

function toneOf(report: Report, hz: number) {
  return report.audio.tones.find((t) => t.hz === hz);
}

before(async () => {
  if (!RINGWIRE) return;
  stage = await Stage.start("native");
  signalingUrl = stage.signalingUrl;
});

after(async () => {
  for (const peer of [...peers]) await peer.stop();
  await stage?.close();
});

/**
 * The checks of a 1:1 call between `page` (user `who`, camera on) and `peer`: each
 * side hears and sees the other.
 */
async function checkOneToOne(t: TestContext, page: Page, who: string, peer: Peer): Promise<void> {
  // The native side: the browser's beep and a moving camera picture.
  const heard = await peer.until<Report>(
    `hears the ${BEEP_HZ} Hz beep and decodes ${who}'s camera`,
    (l) => {
      if (l.event !== "report") return false;
      // The beep is a square wave: its fundamental holds about 81 % of the power
      // (about 6 dB over the odd harmonics), so its frequency is the loudest one.
      const beep = toneOf(l, BEEP_HZ);
      const hz = l.audio.dominant_hz;
      const cam = streamOf(l, who, "camera");
      return hz !== null && Math.abs(hz - BEEP_HZ) <= 10 && (beep?.peak_snr_db ?? -99) >= 3 && !!cam && cam.frames >= 20 && cam.changes >= 10;
    },
  );
  const cam = streamOf(heard, who, "camera")!;
  assert.ok(cam.width > 0 && cam.height > 0, `decoded size ${cam.width}x${cam.height}`);

  // The browser side: the native tone, few audio packets lost.
  const view = await pageUntil(page, who, `s.state === "connected" && s.audioPackets > 0`);
  const tone = await h<{ ok: boolean; peak?: number; peaks: object }>(page, "hear", NATIVE_HZ, 15, GUARD_MS);
  assert.ok(tone.ok, `${who} did not hear ${NATIVE_HZ} Hz; spectral peaks seen: ${JSON.stringify(tone.peaks)}`);
  const later = await pageUntil(page, who, `s.audioPackets > ${view.s.audioPackets}`);
  assert.ok(later.s.audioLost <= Math.max(2, later.s.audioPackets / 50), `audio packets lost ${later.s.audioLost} of ${later.s.audioPackets}`);

  // The browser side: the test pattern decoded as H.264 at its size, frames rising.
  await t.test("the browser decodes the native test pattern", async () => {
    const video = await pageUntil(page, who, `s.framesDecoded >= 20`);
    assert.equal(video.s.videoCodec, "video/H264");
    assert.deepEqual({ width: video.s.width, height: video.s.height }, PATTERN);
    const more = await pageUntil(page, who, `s.framesDecoded > ${video.s.framesDecoded}`);
    assert.ok(more.s.videoLost <= Math.max(2, more.s.videoPackets / 50), `video packets lost ${more.s.videoLost} of ${more.s.videoPackets}`);
  });
}

test("a browser calls the native peer: each hears and sees the other", { skip }, async (t) => {
  const peer = new Peer(["--answer", "--token", token("native1"), "--measure", `${BEEP_HZ}`, "--tone", `${NATIVE_HZ}`]);
  await peer.until("ready", (l) => l.event === "ready");
  const page = await newPage();
  await h(page, "connect", signalingUrl, token("alice1"));
  await h(page, "startCall", ["8:native1"], true);
  const incoming = await peer.until("an incoming call", (l) => l.event === "incoming");
  assert.equal(incoming.caller, "8:alice1");
  assert.equal(incoming.caller_has_video, true);
  await checkOneToOne(t, page, "8:alice1", peer);

  await page.evaluate(() => (window as unknown as { call: { hangUp(): Promise<void> } }).call.hangUp());
  await peer.until("the call ends", (l) => l.event === "state" && l.state === "disconnected");
  assert.equal(await peer.stop(), 0);
  await page.close();
});

test("the native peer calls a browser: each hears and sees the other", { skip }, async (t) => {
  const page = await newPage();
  await h(page, "connect", signalingUrl, token("bob2"), { video: true });
  const peer = new Peer(["--call", "8:bob2", "--token", token("native2"), "--measure", `${BEEP_HZ}`, "--tone", `${NATIVE_HZ}`]);
  await checkOneToOne(t, page, "8:bob2", peer);

  peer.send("hangup");
  await pageUntil(page, "8:bob2", `r.state === "disconnected"`);
  assert.equal(await peer.stop(), 0);
  await page.close();
});

test("echo test from a browser: the fake microphone's beep comes back", { skip }, async () => {
  const page = await newPage();
  await h(page, "connect", signalingUrl, token("echoer"));
  await h(page, "startCall", ["8:echo123"], false);
  await pageUntil(page, "echoer", `s.state === "connected" && s.audioPackets > 0`);
  // The service's chime (660 and 990 Hz) comes first, then the recording played back.
  const beep = await h<{ ok: boolean; peak?: number; peaks: object }>(page, "hear", BEEP_HZ, 15, GUARD_MS);
  assert.ok(beep.ok, `no ${BEEP_HZ} Hz beep in the echo; spectral peaks seen: ${JSON.stringify(beep.peaks)}`);
  await page.evaluate(() => (window as unknown as { call: { hangUp(): Promise<void> } }).call.hangUp());
  await page.close();
});

test("group call: three browsers and the native peer; roster, one mixed stream, dominant speaker, mute, hold, remove", { skip }, async () => {
  const group = "web-native-group";
  const names = ["gina", "hugo", "iris"];
  const pages: Page[] = [];
  for (const name of names) {
    const page = await newPage();
    await h(page, "connect", signalingUrl, token(name));
    await h(page, "join", group);
    pages.push(page);
  }
  // This peer signs in through the server's development identity endpoint.
  const peer = new Peer(["--join", group, "--dev-name", "Nat3", "--tone", `${NATIVE_HZ}`, "--measure", `${BEEP_HZ}`]);
  const everyone = [...names.map((n) => `8:${n}`), "8:nat3"];

  // Every page: the other three connected, one audio stream, the native tone in it.
  for (const [i, page] of pages.entries()) {
    const others = everyone.filter((id) => id !== `8:${names[i]}`);
    const view = await pageUntil(
      page,
      names[i]!,
      `s.audioPackets > 0 && ${JSON.stringify(others)}.every((id) => r.participants.some((p) => p.id === id && p.state === "connected"))`,
    );
    assert.ok(view.s.audioInbound >= 1);
    const audio = await h<{ active: number; streams: object[] }>(page, "activeAudio", 1000);
    assert.equal(audio.active, 1, `${names[i]}: one mixed audio stream arriving: ${JSON.stringify(audio.streams)}`);
    const tone = await h<{ ok: boolean; peaks: object }>(page, "hear", NATIVE_HZ, 15, GUARD_MS);
    assert.ok(tone.ok, `${names[i]} did not hear ${NATIVE_HZ} Hz in the mix; peaks ${JSON.stringify(tone.peaks)}`);
  }
  await peer.until<Roster>("the native roster shows the three browsers connected", (l) =>
    l.event === "roster" && names.every((n) => l.participants.some((p) => p.id === `8:${n}` && p.state === "connected")),
  );

  // The native peer hears the browsers' beeps in its mix.
  await peer.until<Report>("hears the browsers' beep in the mix", (l) => {
    const hz = l.event === "report" ? l.audio.dominant_hz : null;
    return hz !== null && Math.abs(hz - BEEP_HZ) <= 10;
  });

  // The native peer sends a steady tone; the browsers beep 4 % of the time.
  for (const [i, page] of pages.entries()) await pageUntil(page, names[i]!, `r.dominant[0] === "8:nat3"`);

  // Mutes: the native peer's and a browser's, seen everywhere.
  peer.send("mute");
  for (const [i, page] of pages.entries()) {
    await pageUntil(page, names[i]!, `r.participants.some((p) => p.id === "8:nat3" && p.muted)`);
  }
  await pages[1]!.evaluate(() => (window as unknown as { call: { mute(): Promise<void> } }).call.mute());
  await peer.until<Roster>("hugo muted", (l) => l.event === "roster" && l.participants.some((p) => p.id === "8:hugo" && p.muted));
  for (const i of [0, 2]) await pageUntil(pages[i]!, names[i]!, `r.participants.some((p) => p.id === "8:hugo" && p.muted)`);

  // Hold: iris holds; the others see her on hold.
  await pages[2]!.evaluate(() => (window as unknown as { call: { hold(): Promise<void> } }).call.hold());
  for (const i of [0, 1]) await pageUntil(pages[i]!, names[i]!, `r.participants.some((p) => p.id === "8:iris" && p.state === "hold")`);
  await peer.until<Roster>("iris on hold", (l) => l.event === "roster" && l.participants.some((p) => p.id === "8:iris" && p.state === "hold"));

  // Remove: gina removes the native peer; its call ends and it leaves every roster.
  const from = peer.lines.length;
  await pages[0]!.evaluate(() =>
    (window as unknown as { call: { removeParticipant(id: string): Promise<void> } }).call.removeParticipant("8:nat3"),
  );
  const ended = await peer.until("its call ends", (l) => l.event === "state" && l.state === "disconnected", from);
  assert.ok(ended.end_reason, "a removed participant is told why");
  assert.equal(await peer.stop(), 0);
  for (const [i, page] of pages.entries()) {
    await pageUntil(page, names[i]!, `!r.participants.some((p) => p.id === "8:nat3" && p.state !== "disconnected")`);
  }
  for (const page of pages) {
    await page.evaluate(() => (window as unknown as { call: { hangUp(): Promise<void> } }).call.hangUp());
    await page.close();
  }
});

test("screen share from a browser ('monitor', then a tab) seen by the native peer and another browser; stopping removes it", { skip }, async () => {
  const group = "web-native-share";
  const sharer = await newPage();
  const viewer = await newPage();
  await h(sharer, "connect", signalingUrl, token("sam"));
  await h(sharer, "join", group);
  await h(viewer, "connect", signalingUrl, token("vera"));
  await h(viewer, "join", group);
  // No camera on the native side: the viewer's one video (the web limit) is the share.
  const peer = new Peer(["--join", group, "--token", token("nat4"), "--camera-tag", "0"]);
  await peer.until<Roster>("sees sam", (l) => l.event === "roster" && l.participants.some((p) => p.id === "8:sam" && p.state === "connected"));
  await pageUntil(sharer, "sam", `r.participants.some((p) => p.id === "8:nat4" && p.state === "connected")`);

  for (const surface of ["monitor", "browser"]) {
    const from = peer.lines.length;
    await h(sharer, "share", surface);
    // The native peer decodes sam's screen share; the synthetic screen moves, a
    // captured tab repaints (its clock ticks).
    const seen = await peer.until<Report>(`decodes sam's ${surface} share`, (l) => {
      const s = l.event === "report" ? streamOf(l, "8:sam", "screen_share") : undefined;
      return !!s && s.active && s.frames >= 10 && s.changes >= 2;
    }, from);
    const share = streamOf(seen, "8:sam", "screen_share")!;
    assert.ok(share.width > 0 && share.height > 0);
    // The other browser shows it and decodes it.
    const view = await pageUntil(
      viewer,
      "vera",
      `r.participants.some((p) => p.id === "8:sam" && p.video.some((v) => v.kind === "screen_share" && v.shown)) && s.framesDecoded >= 10`,
    );
    await pageUntil(viewer, "vera", `s.framesDecoded > ${view.s.framesDecoded}`);

    // Stop: the stream leaves the native roster and slot, and the viewer's roster.
    const stopFrom = peer.lines.length;
    await sharer.evaluate(() => (window as unknown as { call: { stopScreenSharing(): Promise<void> } }).call.stopScreenSharing());
    await peer.until<Roster>(
      "sam's share gone from the roster",
      (l) => l.event === "roster" && l.participants.some((p) => p.id === "8:sam" && p.video.length === 0),
      stopFrom,
    );
    await peer.until<Report>("sam's share no longer shown", (l) => l.event === "report" && streamOf(l, "8:sam", "screen_share")?.active === false, stopFrom);
    await pageUntil(viewer, "vera", `r.participants.some((p) => p.id === "8:sam" && p.video.length === 0)`);
  }

  peer.send("hangup");
  assert.equal(await peer.stop(), 0);
  for (const page of [sharer, viewer]) {
    await page.evaluate(() => (window as unknown as { call: { hangUp(): Promise<void> } }).call.hangUp());
    await page.close();
  }
});
