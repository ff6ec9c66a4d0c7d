// Phone participants from the browser SDK: a real `ringwire serve` whose `[pstn]`
// trunk points at sipp on loopback (the trunk's far end, a UAS). Checked by content:
//
// - 1:1: a page dials `4:+15551230000`, sipp answers and echoes RTP, and the page
//   hears its fake microphone's 400 Hz beep come back (opus -> G.711 PCMU -> sipp ->
//   G.711 -> opus); hanging up sends the phone its BYE (sipp's scenario succeeds).
// - Group call dial-out: two pages in a group call, one adds the phone (sipp answers
//   and talks: an AM tone); both pages show it connected and hear its tone.
// - Promotion: a page's 1:1 phone call gets a second user; nobody is dropped: the
//   phone stays connected in both rosters and both pages hear it.
// - DTMF: the phone presses "1" (RFC 4733, sipp's capture) and the page gets a
//   `dtmfReceived` event; the page's `sendDtmf` is accepted by the server.
//
// Needs RINGWIRE_BIN and sipp (`cargo xtask setup` installs it; under CI a missing
// sipp fails the suite). Run inside `unshare -n` (npm run test:browser).

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createSocket } from "node:dgram";
import { tmpdir } from "node:os";
import path from "node:path";

import type { Page } from "playwright-core";

import { GUARD_MS, RINGWIRE, Stage, h, pageUntil } from "./kit.js";

const haveSipp = spawnSync("sipp", ["-v"]).error === undefined;
if (!haveSipp && process.env.CI) throw new Error("sipp is missing; run `cargo xtask setup`");
const skip = (!RINGWIRE && "RINGWIRE_BIN is not set") || (!haveSipp && "sipp is not installed");

/** Chromium's fake microphone beeps at 400 Hz. */
const BEEP_HZ = 400;
/** What the talking phone says: a 1 kHz tone, amplitude-modulated at 3 Hz so the mixer's encoder keeps it. */
const PHONE_HZ = 1000;
const NUMBER = "+15551230000";
const PHONE = `4:${NUMBER}`;

/** A free UDP port on loopback (sipp's SIP and media ports). */
async function freePort(): Promise<number> {
  const socket = createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

/** G.711 μ-law of one 16-bit sample (ITU-T G.711, the bias-and-segment form). */
function ulaw(sample: number): number {
  const BIAS = 0x84;
  const sign = sample < 0 ? 0x80 : 0;
  const magnitude = Math.min(Math.abs(sample), 32635) + BIAS;
  let exponent = 7;
  for (let mask = 0x4000; (magnitude & mask) === 0 && exponent > 0; mask >>= 1) exponent--;
  const mantissa = (magnitude >> (exponent + 3)) & 0x0f;
  return ~(sign | (exponent << 4) | mantissa) & 0xff;
}

/** A 200 OK whose SDP answers PCMU on sipp's media port. */
const OK_WITH_SDP = `<send retrans="500"><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

  ]]></send>`;

/** Answers, plays voice.ulaw in a loop until our BYE, answers the BYE. */
const TALK = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="answer and talk">
  <recv request="INVITE" />
  ${OK_WITH_SDP}
  <recv request="ACK" />
  <nop><action><exec rtp_stream="voice.ulaw,-1,0" /></action></nop>
  <recv request="BYE" />
  <send><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

  ]]></send>
</scenario>
`;

/** A 200 OK whose SDP answers PCMU and telephone-event (RFC 4733) on PT 101, the PT of sipp's DTMF captures. */
const OK_WITH_DTMF = OK_WITH_SDP.replace("RTP/AVP 0\n", "RTP/AVP 0 101\n").replace(
  "a=rtpmap:0 PCMU/8000\n",
  "a=rtpmap:0 PCMU/8000\n      a=rtpmap:101 telephone-event/8000\n      a=fmtp:101 0-15\n",
);

/** Answers, presses "1" (sipp's capture of an RFC 4733 event), waits for our BYE. */
const PRESS_ONE = TALK.replace(OK_WITH_SDP, OK_WITH_DTMF).replace(
  '<exec rtp_stream="voice.ulaw,-1,0" />',
  '<exec play_pcap_audio="pcap/dtmf_2833_1.pcap" />',
);

/** sipp as the trunk's far end for one call: `echo` (the built-in UAS with RTP echo), `talk` or `press1`. */
class Sipp {
  private readonly proc: ChildProcess;
  private readonly dir: string;
  readonly exited: Promise<number | null>;

  private constructor(proc: ChildProcess, dir: string, readonly port: number) {
    this.proc = proc;
    this.dir = dir;
    this.exited = new Promise((resolve) => proc.once("exit", (code) => resolve(code)));
  }

  static async start(kind: "echo" | "talk" | "press1"): Promise<Sipp> {
    const dir = mkdtempSync(path.join(tmpdir(), "ringwire-sipp-"));
    const scenario = kind === "echo" ? ["-sn", "uas", "-rtp_echo"] : ["-sf", `${kind}.xml`];
    if (kind === "press1") {
      writeFileSync(path.join(dir, "press1.xml"), PRESS_ONE);
      const files = spawnSync("dpkg", ["-L", "sip-tester"]).stdout?.toString() ?? "";
      const capture = files.split("\n").find((f) => f.endsWith("/dtmf_2833_1.pcap"));
      assert.ok(capture, "sip-tester ships dtmf_2833_1.pcap");
      mkdirSync(path.join(dir, "pcap"));
      symlinkSync(capture, path.join(dir, "pcap", "dtmf_2833_1.pcap"));
    }
    if (kind === "talk") {
      writeFileSync(path.join(dir, "talk.xml"), TALK);
      const voice = Buffer.alloc(8000);
      for (let n = 0; n < 8000; n++) {
        const t = n / 8000;
        voice[n] = ulaw(Math.round((8000 / 1.3) * (1 + 0.3 * Math.sin(2 * Math.PI * 3 * t)) * Math.sin(2 * Math.PI * PHONE_HZ * t)));
      }
      writeFileSync(path.join(dir, "voice.ulaw"), voice);
    }
    const [port, media] = [await freePort(), await freePort()];
    const proc = spawn(
      "sipp",
      [...scenario, "-i", "127.0.0.1", "-p", `${port}`, "-mi", "127.0.0.1", "-mp", `${media}`, "-bind_local", "-m", "1", "-nostdin", "-timeout", "90s"],
      { cwd: dir, stdio: "ignore" },
    );
    const sipp = new Sipp(proc, dir, port);
    running.add(sipp);
    // Listening once our own bind of its port fails.
    const end = Date.now() + GUARD_MS;
    for (;;) {
      const socket = createSocket("udp4");
      const taken = await new Promise<boolean>((resolve) => {
        socket.once("error", () => resolve(true));
        socket.bind(port, "127.0.0.1", () => resolve(false));
      });
      await new Promise<void>((resolve) => socket.close(() => resolve()));
      if (taken) return sipp;
      assert.ok(proc.exitCode === null && Date.now() < end, "sipp did not start listening");
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Waits (bounded) for sipp's exit code: 0 when its scenario ran to the end. */
  async exit(): Promise<number | null> {
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), GUARD_MS);
    const code = await this.exited;
    clearTimeout(timer);
    this.stop();
    return code;
  }

  stop(): void {
    if (this.proc.exitCode === null) this.proc.kill("SIGKILL");
    running.delete(this);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const running = new Set<Sipp>();
/** One server per test: each test's trunk is its own sipp. */
const stages = new Set<Stage>();

/** The server with one outbound trunk to sipp on `port`, for country code 1. */
async function stageFor(sipp: Sipp): Promise<Stage> {
  const config = `
[pstn]
sip_listen = "127.0.0.1:0"
rtp_ports = { first = 22000, last = 22199 }
ring_timeout = "20s"

[[pstn.outbound]]
name = "sipp"
address = "127.0.0.1:${sipp.port}"
caller_ids = ["+15550001111"]
allowed_country_codes = ["1"]
`;
  const stage = await Stage.start("pstn", config);
  stages.add(stage);
  return stage;
}

/** A page signed in as `user` with the `pstn` scope. */
async function signedIn(stage: Stage, user: string): Promise<Page> {
  const page = await stage.newPage();
  await h(page, "connect", stage.signalingUrl, stage.token(user, "voip,pstn"));
  return page;
}

async function hears(page: Page, who: string, hz: number): Promise<void> {
  await pageUntil(page, who, "s.audioPackets > 0");
  const heard = await h<{ ok: boolean; peaks: object }>(page, "hear", hz, 15, GUARD_MS);
  assert.ok(heard.ok, `${who} did not hear ${hz} Hz; spectral peaks seen: ${JSON.stringify(heard.peaks)}`);
}

const phoneConnected = `r.participants.some((p) => p.id === ${JSON.stringify(PHONE)} && p.state === "connected")`;

function call(page: Page, method: "hangUp" | "addParticipant", ...args: string[]): Promise<void> {
  return page.evaluate(
    ({ method, args }) => (window as unknown as { call: Record<string, (...a: string[]) => Promise<void>> }).call[method]!(...args),
    { method, args },
  );
}

after(async () => {
  for (const sipp of [...running]) sipp.stop();
  for (const stage of stages) await stage.close();
});

test("a browser calls a phone and hears itself through the trunk's echo", { skip }, async () => {
  const sipp = await Sipp.start("echo");
  const stage = await stageFor(sipp);
  const page = await signedIn(stage, "paula");
  await h(page, "startCall", [PHONE], false);
  await pageUntil(page, "paula", `s.state === "connected" && s.audioPackets > 0 && ${phoneConnected}`);
  await hears(page, "paula", BEEP_HZ);
  await call(page, "hangUp");
  assert.equal(await sipp.exit(), 0, "sipp's call did not end cleanly (BYE answered)");
  await page.close();
});

test("a browser group call dials out to a phone and both pages hear it", { skip }, async () => {
  const sipp = await Sipp.start("talk");
  const stage = await stageFor(sipp);
  const group = "pstn-browser-group";
  const [a, b] = [await signedIn(stage, "gwen"), await signedIn(stage, "hank")];
  await h(a, "join", group);
  await h(b, "join", group);
  await pageUntil(a, "gwen", `s.state === "connected" && r.participants.some((p) => p.id === "8:hank" && p.state === "connected")`);
  await call(a, "addParticipant", PHONE);
  for (const [page, who] of [[a, "gwen"], [b, "hank"]] as const) {
    await pageUntil(page, who, phoneConnected);
    await hears(page, who, PHONE_HZ);
  }
  // The last human leaving ends the call: the phone gets its BYE.
  await call(a, "hangUp");
  await call(b, "hangUp");
  assert.equal(await sipp.exit(), 0, "sipp's call did not end cleanly (BYE answered)");
  await a.close();
  await b.close();
});

test("a browser's 1:1 phone call promoted to a group keeps the phone", { skip }, async () => {
  const sipp = await Sipp.start("talk");
  const stage = await stageFor(sipp);
  const a = await signedIn(stage, "ivan");
  const b = await stage.newPage();
  // Judy answers the call she is added to.
  await h(b, "connect", stage.signalingUrl, stage.token("judy", "voip,pstn"), { video: false });
  await h(a, "startCall", [PHONE], false);
  await pageUntil(a, "ivan", `s.state === "connected" && ${phoneConnected}`);
  await hears(a, "ivan", PHONE_HZ);

  await call(a, "addParticipant", "8:judy");
  await pageUntil(b, "judy", `s.state === "connected" && ${phoneConnected} && r.participants.some((p) => p.id === "8:ivan" && p.state === "connected")`);
  await pageUntil(a, "ivan", `${phoneConnected} && r.participants.some((p) => p.id === "8:judy" && p.state === "connected")`);
  await hears(b, "judy", PHONE_HZ);
  await hears(a, "ivan", PHONE_HZ);

  await call(a, "hangUp");
  await call(b, "hangUp");
  assert.equal(await sipp.exit(), 0, "sipp's call did not end cleanly (BYE answered)");
  await a.close();
  await b.close();
});

test("a phone's keypress reaches the browser as dtmfReceived; the browser's DTMF is accepted", { skip }, async () => {
  const sipp = await Sipp.start("press1");
  const stage = await stageFor(sipp);
  const page = await signedIn(stage, "kara");
  // Listening from the start: the phone presses its key as soon as it answers.
  await page.evaluate((phone) => {
    const w = window as unknown as {
      keys: string;
      failures: string[];
      call: EventTarget;
      agent: { startCall(targets: string[]): EventTarget };
    };
    w.keys = "";
    w.failures = [];
    w.call = w.agent.startCall([phone]);
    w.call.addEventListener("dtmfReceived", (e) => (w.keys += (e as CustomEvent<{ digits: string }>).detail.digits));
    w.call.addEventListener("requestFailed", (e) => w.failures.push(JSON.stringify((e as CustomEvent).detail)));
  }, PHONE);
  await pageUntil(page, "kara", `s.state === "connected" && ${phoneConnected}`);
  const keys = await page
    .waitForFunction(() => (window as unknown as { keys: string }).keys.includes("1"), undefined, { timeout: GUARD_MS })
    .then(() => page.evaluate(() => (window as unknown as { keys: string }).keys));
  assert.equal(keys, "1", "the phone pressed 1 once");

  await page.evaluate(() => (window as unknown as { call: { sendDtmf(d: string): void } }).call.sendDtmf("42#"));
  // The server answers in order: once it confirmed a mute sent after the digits, a
  // refusal of the digits would have arrived as requestFailed.
  await page.evaluate(() => (window as unknown as { call: { mute(): Promise<void> } }).call.mute());
  await page.waitForFunction(() => (window as unknown as { call: { isMuted: boolean } }).call.isMuted, undefined, { timeout: GUARD_MS });
  const failures = await page.evaluate(() => (window as unknown as { failures: string[] }).failures);
  assert.deepEqual(failures, [], "the server refused the browser's DTMF");
  const refused = await page.evaluate(() => {
    try {
      (window as unknown as { call: { sendDtmf(d: string): void } }).call.sendDtmf("not digits");
      return "";
    } catch (e) {
      return String(e);
    }
  });
  assert.match(refused, /DTMF digits/);
  await call(page, "hangUp");
  assert.equal(await sipp.exit(), 0, "sipp's call did not end cleanly (BYE answered)");
  await page.close();
});
