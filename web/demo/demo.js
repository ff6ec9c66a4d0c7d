// Ringwire demo page: every control of the browser SDK on one page, no framework.
// Loaded as a module next to /sdk/ringwire.js, both served by `ringwire serve`.
import { CallClient, LocalVideoStream } from "/sdk/ringwire.js";

const $ = (id) => document.getElementById(id);
const client = new CallClient(); // signaling at ws(s)://<this host>/v1/signaling
const devices = client.getDeviceManager();

/** @type {import("/sdk/ringwire.js").CallAgent | undefined} */
let agent;
/** @type {import("/sdk/ringwire.js").Call | undefined} */
let call;
const incoming = new Set();
const remoteVideos = new Map(); // "<participant>|<kind>" -> <figure>

// For tests and the console: the agent and the current call.
window.ringwireDemo = {
  get agent() { return agent; },
  get call() { return call; },
};

function log(text) {
  const li = document.createElement("li");
  li.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  $("log").prepend(li);
  $("status").textContent = text;
}

function failed(what, e) {
  log(`${what} failed: ${e?.code ? `${e.code}: ` : ""}${e?.message ?? e}`);
}

/** Runs an async click handler, logging its error instead of losing it. */
function action(what, fn) {
  return async (event) => {
    event?.preventDefault?.();
    try {
      await fn();
    } catch (e) {
      failed(what, e);
    }
    render();
  };
}

// ---- sign in ----

const params = new URLSearchParams(location.search);
if (params.get("name")) $("name").value = params.get("name");

$("signin-form").addEventListener("submit", action("sign in", async () => {
  const name = $("name").value.trim();
  const response = await fetch("/dev/token", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name }),
  });
  if (!response.ok) throw new Error(`the development identity endpoint said ${response.status}: ${(await response.text()).trim()}`);
  const { id, token } = await response.json();
  agent?.dispose();
  agent = undefined;
  $("me").textContent = `Connecting as ${id}…`;
  agent = await client.createCallAgent(token);
  $("me").textContent = `Signed in as ${name} (${id}). Others call you at ${id}.`;
  log(`connected as ${id}`);
  agent.addEventListener("incomingCall", (e) => addIncoming(e.detail.incomingCall));
  agent.addEventListener("connectionStateChanged", () => log(`signaling ${agent?.connectionState}`));
  await fillDevices();
}));

// ---- placing calls ----

async function callOptions() {
  if (!$("with-video").checked) return {};
  const camera = (await devices.getCameras()).find((c) => c.deviceId === $("camera").value);
  return { video: new LocalVideoStream(camera) };
}

function adopt(next, what) {
  if (call && call.state !== "disconnected") void call.hangUp().catch(() => undefined);
  call = next;
  log(what);
  call.addEventListener("stateChanged", () => {
    if (next !== call) return;
    log(`call ${call.state}${call.callEndReason ? ` (${call.callEndReason.code}${call.callEndReason.message ? ` ${call.callEndReason.message}` : ""})` : ""}`);
    render();
  });
  for (const type of ["isMutedChanged", "dominantSpeakersChanged", "localVideoStreamsUpdated"]) {
    call.addEventListener(type, () => next === call && render());
  }
  call.addEventListener("remoteParticipantsUpdated", (e) => {
    for (const p of e.detail.added) {
      for (const type of ["stateChanged", "isMutedChanged", "isSpeakingChanged", "videoStreamsUpdated"]) {
        p.addEventListener(type, () => next === call && render());
      }
    }
    render();
  });
  call.addEventListener("requestFailed", (e) => log(`request failed: ${e.detail.code}: ${e.detail.message}`));
  call.addEventListener("mediaFailed", (e) => log(`media failed${e.detail?.error ? `: ${e.detail.error.message ?? e.detail.error}` : " (connection failed)"}`));
  render();
}

$("call-form").addEventListener("submit", action("call", async () => {
  const target = $("callee").value.trim();
  adopt(agent.startCall([target], await callOptions()), `calling ${target}`);
}));

$("invite").addEventListener("click", action("add participant", async () => {
  const target = $("callee").value.trim();
  call.addParticipant(target);
  log(`inviting ${target}`);
}));

$("join-form").addEventListener("submit", action("join", async () => {
  const groupId = $("group").value.trim();
  adopt(agent.join({ groupId }, await callOptions()), `joining group ${groupId}`);
}));

$("echo").addEventListener("click", action("echo test", async () => {
  adopt(agent.startCall(["8:echo123"], await callOptions()), "echo test: speak, you should hear yourself");
}));

// ---- incoming calls ----

function addIncoming(invite) {
  incoming.add(invite);
  log(`incoming call from ${invite.caller}${invite.groupId ? ` (group ${invite.groupId})` : ""}`);
  invite.addEventListener("callEnded", () => {
    incoming.delete(invite);
    log(`call from ${invite.caller} ended before it was answered`);
    render();
  });
  render();
}

function renderIncoming() {
  const list = $("incoming");
  list.replaceChildren();
  if (incoming.size === 0) {
    list.append(item("None.", "muted"));
    return;
  }
  for (const invite of incoming) {
    const li = item(`${invite.caller}${invite.hasVideo ? " (with video)" : ""}${invite.groupId ? ` into group ${invite.groupId}` : ""} `);
    li.append(
      button("Accept", `Accept the call from ${invite.caller}`, action("accept", async () => {
        incoming.delete(invite);
        adopt(invite.accept(await callOptions()), `accepted the call from ${invite.caller}`);
      })),
      " ",
      button("Decline", `Decline the call from ${invite.caller}`, action("decline", async () => {
        incoming.delete(invite);
        invite.reject();
        log(`declined ${invite.caller}`);
      })),
    );
    list.append(li);
  }
}

// ---- in-call controls ----

const live = () => call && call.state !== "disconnected" && call.state !== "disconnecting";

$("mute").addEventListener("click", action("mute", async () => {
  if (call.isMuted) await call.unmute();
  else await call.mute();
}));

$("hold").addEventListener("click", action("hold", async () => {
  if (call.isOnHold) await call.resume();
  else await call.hold();
}));

$("video").addEventListener("click", action("camera", async () => {
  if (call.isLocalVideoOn) {
    await call.stopVideo();
    return;
  }
  const camera = (await devices.getCameras()).find((c) => c.deviceId === $("camera").value);
  await call.startVideo(new LocalVideoStream(camera));
}));

$("camera").addEventListener("change", action("switch camera", async () => {
  if (live() && call.isLocalVideoOn) {
    await call.switchCamera($("camera").value);
    log("switched camera");
  }
}));

$("share").addEventListener("click", action("share", async () => {
  if (call.isScreenSharingOn) await call.stopScreenSharing();
  else await call.startScreenSharing({ surface: $("surface").value });
}));

$("mic").addEventListener("change", action("microphone", async () => {
  const mic = (await devices.getMicrophones()).find((m) => m.deviceId === $("mic").value);
  if (mic) devices.selectMicrophone(mic);
  if (live()) await call.setMicrophone($("mic").value);
}));

$("speaker").addEventListener("change", action("speaker", async () => {
  const speaker = (await devices.getSpeakers()).find((s) => s.deviceId === $("speaker").value);
  if (speaker) devices.selectSpeaker(speaker);
  if (call) await call.setSpeaker($("speaker").value);
}));

$("hangup").addEventListener("click", action("hang up", async () => {
  await call.hangUp();
}));

// ---- devices ----

async function fillDevices() {
  await devices.askDevicePermission({ audio: true, video: true });
  const fill = (select, list, selected) => {
    const keep = select.value;
    select.replaceChildren(...list.map((d) => new Option(d.name, d.deviceId)));
    select.value = selected ?? keep;
    if (!select.value && list[0]) select.value = list[0].deviceId;
  };
  fill($("camera"), await devices.getCameras());
  fill($("mic"), await devices.getMicrophones(), devices.selectedMicrophone?.deviceId);
  const speakers = devices.isSpeakerSelectionAvailable ? await devices.getSpeakers() : [];
  fill($("speaker"), speakers, devices.selectedSpeaker?.deviceId);
  $("speaker").disabled = speakers.length === 0;
  $("speaker").title = speakers.length === 0 ? "This browser cannot choose the speaker (no setSinkId)" : "";
}
devices.addEventListener("videoDevicesUpdated", () => void fillDevices().catch((e) => failed("devices", e)));
devices.addEventListener("audioDevicesUpdated", () => void fillDevices().catch((e) => failed("devices", e)));

// ---- rendering ----

function item(text, className) {
  const li = document.createElement("li");
  li.textContent = text;
  if (className) li.className = className;
  return li;
}

function button(text, label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  b.setAttribute("aria-label", label);
  b.addEventListener("click", onClick);
  return b;
}

function badge(text) {
  const span = document.createElement("span");
  span.className = "badge";
  span.textContent = text;
  return span;
}

function toggle(id, on, onText, offText, enabled) {
  const b = $(id);
  b.setAttribute("aria-pressed", String(on));
  b.textContent = on ? onText : offText;
  b.disabled = !enabled;
}

function renderRoster() {
  const list = $("roster");
  list.replaceChildren();
  const people = call?.remoteParticipants.filter((p) => p.state !== "disconnected") ?? [];
  if (people.length === 0) {
    list.append(item("Nobody yet.", "muted"));
    return;
  }
  const dominant = call.dominantSpeakers[0];
  for (const p of people) {
    const li = document.createElement("li");
    li.dataset.id = p.identifier;
    li.classList.toggle("dominant", p.identifier === dominant);
    li.classList.toggle("speaking", p.isSpeaking);
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = p.identifier;
    li.append(who, badge(p.state));
    if (p.isMuted) li.append(badge("muted"));
    if (p.identifier === dominant) li.append(badge("dominant speaker"));
    for (const v of p.videoStreams) li.append(badge(v.kind === "camera" ? "camera" : "sharing screen"));
    if (live() && p.identifier !== "8:echo123") {
      li.append(button("Remove", `Remove ${p.identifier} from the call`, action("remove", async () => {
        await call.removeParticipant(p);
        log(`removing ${p.identifier}`);
      })));
    }
    list.append(li);
  }
}

function renderVideos() {
  const local = call && live() ? call.localVideoStreams[0]?.mediaStream : undefined;
  if ($("local-video").srcObject !== (local ?? null)) $("local-video").srcObject = local ?? null;
  $("local-figure").hidden = !local;
  const shown = new Set();
  const dominant = call?.dominantSpeakers[0];
  for (const p of live() ? call.remoteParticipants : []) {
    for (const v of p.videoStreams) {
      if (!v.mediaStream) continue;
      const key = `${p.identifier}|${v.kind}`;
      shown.add(key);
      let figure = remoteVideos.get(key);
      if (!figure) {
        figure = document.createElement("figure");
        const video = document.createElement("video");
        video.autoplay = true;
        video.playsInline = true;
        video.muted = true; // the call's audio plays through the SDK's audio element
        const caption = document.createElement("figcaption");
        caption.textContent = `${p.identifier} (${v.kind === "camera" ? "camera" : "screen"})`;
        figure.append(video, caption);
        $("remote-videos").append(figure);
        remoteVideos.set(key, figure);
      }
      const video = figure.querySelector("video");
      if (video.srcObject !== v.mediaStream) video.srcObject = v.mediaStream;
      figure.classList.toggle("dominant", p.identifier === dominant);
    }
  }
  for (const [key, figure] of remoteVideos) {
    if (!shown.has(key)) {
      figure.remove();
      remoteVideos.delete(key);
    }
  }
}

function render() {
  const signedIn = !!agent;
  for (const id of ["call", "join", "echo"]) $(id).disabled = !signedIn;
  const on = !!live();
  $("invite").disabled = !on;
  $("call-state").textContent = call ? call.state : "no call";
  $("call-info").textContent = call
    ? `${call.groupId ? `group ${call.groupId}` : call.direction}${call.callEndReason ? `, ended: ${call.callEndReason.code}` : ""}`
    : "";
  const connected = on && call.state !== "connecting" && call.state !== "ringing" && call.state !== "in_lobby";
  toggle("mute", on && call.isMuted, "Unmute", "Mute", on);
  toggle("hold", on && call.isOnHold, "Resume", "Hold", connected);
  toggle("video", on && call.isLocalVideoOn, "Camera off", "Camera on", on && !call.isScreenSharingOn);
  toggle("share", on && call.isScreenSharingOn, "Stop sharing", "Share", on && !call.isLocalVideoOn);
  $("hangup").disabled = !on;
  renderIncoming();
  renderRoster();
  renderVideos();
}

render();
