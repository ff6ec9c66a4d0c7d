// The public browser API, shaped like the ACS Calling SDK that crates/calling mirrors:
// CallClient → CallAgent (one signaling connection) → Call / IncomingCall →
// RemoteParticipant, plus DeviceManager. Events are DOM events on EventTarget
// subclasses; state lives in the sans-IO ClientSession, which this module drives over
// a WebSocket (timers, reconnect with backoff and resume token) and connects to the
// call's RTCPeerConnection (src/media.ts).

import type { CallId, GroupId, Identifier } from "./ids.js";
import {
  type CallState,
  type ClientMessage,
  type EndReason,
  type ErrorCode,
  type ParticipantInfo,
  type ParticipantState,
  type VideoKind,
  type VideoSize,
  type VideoSlot,
  type VideoStream,
  encodeClientMessage,
  isValidVideoSize,
} from "./protocol.js";
import { ClientSession, SessionError, type ConnectionState, type SessionEvent } from "./session.js";
import { randomSeed } from "./rng.js";
import { CallMedia, type DisplaySurface, captureCamera, captureDisplay } from "./media.js";

/** The part of the WebSocket API the SDK uses (the browser's, or a test double). */
export interface WebSocketLike {
  binaryType: string;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: unknown) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** Options of a {@link CallClient}. */
export interface CallClientOptions {
  /** The signaling endpoint, e.g. `wss://calls.example.com/v1/signaling` (default: this page's origin). */
  url?: string;
  /** Makes the WebSocket (default `new WebSocket(url)`); tests pass a double. */
  webSocket?: (url: string) => WebSocketLike;
  /** Media through RTCPeerConnection (default: when the platform has it). */
  media?: boolean;
  /** Video receive slots offered per call (web default 1; 0 for audio-only calls). */
  videoSlots?: number;
  /** ICE servers for the peer connections. */
  iceServers?: RTCIceServer[];
  /** Seeds call ids (default from crypto.getRandomValues). */
  seed?: bigint;
  /** Keepalive interval, ms (default 15 000). */
  pingIntervalMs?: number;
  /** How long to wait for the server to answer, ms (default 10 000). */
  pongTimeoutMs?: number;
  /** First reconnect delay, ms (default 500); doubles up to `reconnectMaxMs`. */
  reconnectInitialMs?: number;
  /** Longest reconnect delay, ms (default 10 000). */
  reconnectMaxMs?: number;
}

/** The error a {@link CallAgent} or call method throws: the session's, or the server's refusal. */
export class CallingError extends Error {
  /** The session's error kind, or the server's error code. */
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = "CallingError";
    this.code = code;
  }
}

/** Server error codes after which the server closes the connection for good. */
const REFUSES_SESSION: ErrorCode[] = [
  "invalid_token",
  "token_expired",
  "missing_scope",
  "token_revoked",
  "too_many_connections",
];

/** Entry point: makes call agents and the device manager. */
export class CallClient {
  private readonly options: CallClientOptions;
  private deviceManager: DeviceManager | undefined;

  constructor(options: CallClientOptions = {}) {
    this.options = options;
  }

  /** Connects with `token` and resolves once the server accepted it. */
  async createCallAgent(token: string): Promise<CallAgent> {
    const agent = new CallAgent(token, this.options, () => this.deviceManager);
    await agent.connected;
    return agent;
  }

  /** The device manager (one per client). */
  getDeviceManager(): DeviceManager {
    this.deviceManager ??= new DeviceManager();
    return this.deviceManager;
  }
}

/** Options for starting, joining or accepting a call. */
export interface CallOptions {
  /** Join with the microphone muted. */
  muted?: boolean;
  /** Join with this camera on. */
  video?: LocalVideoStream;
}

/** A camera (or a screen capture) to send. */
export class LocalVideoStream {
  /** Camera or screen share. */
  readonly kind: VideoKind;
  /** The camera's deviceId (camera streams). */
  deviceId: string | undefined;
  /** The captured track, once capturing. */
  track: MediaStreamTrack | undefined;

  constructor(source?: VideoDeviceInfo | MediaStreamTrack, kind: VideoKind = "camera") {
    this.kind = kind;
    if (source && typeof (source as MediaStreamTrack).stop === "function") this.track = source as MediaStreamTrack;
    else if (source) this.deviceId = (source as VideoDeviceInfo).deviceId;
  }

  /** The stream to show as a local preview. */
  get mediaStream(): MediaStream | undefined {
    return this.track ? new MediaStream([this.track]) : undefined;
  }
}

/**
 * One signaling connection for one identity. Events: `incomingCall`
 * (`detail.incomingCall`), `callsUpdated` (`detail.added`, `detail.removed`),
 * `connectionStateChanged` (`detail.state`), `error` (`detail.error`: a bad server
 * message, reported and survived).
 */
export class CallAgent extends EventTarget {
  /** @internal */ readonly session: ClientSession;
  /** Resolves when authenticated; rejects when the server refuses the token. @internal */
  readonly connected: Promise<void>;
  private readonly options: CallClientOptions;
  private readonly url: string;
  private readonly calls = new Map<CallId, Call>();
  private readonly incoming = new Map<CallId, IncomingCall>();
  private ws: WebSocketLike | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private attempt = 0;
  private disposed = false;
  private resolveConnected!: () => void;
  private rejectConnected!: (e: Error) => void;
  private everConnected = false;
  private lastState: ConnectionState = "disconnected";

  /** @internal */
  constructor(
    token: string,
    options: CallClientOptions,
    readonly devices: () => DeviceManager | undefined,
  ) {
    super();
    this.options = options;
    this.url = options.url ?? defaultUrl();
    const config: ConstructorParameters<typeof ClientSession>[0] = {
      token,
      client: "web",
      seed: options.seed ?? randomSeed(),
    };
    if (options.pingIntervalMs !== undefined) config.pingIntervalMs = options.pingIntervalMs;
    if (options.pongTimeoutMs !== undefined) config.pongTimeoutMs = options.pongTimeoutMs;
    this.session = new ClientSession(config, Date.now());
    this.connected = new Promise((resolve, reject) => {
      this.resolveConnected = resolve;
      this.rejectConnected = reject;
    });
    this.connected.catch(() => undefined);
    this.open();
  }

  /** Who the server says we are. */
  get user(): Identifier | undefined {
    return this.session.user;
  }

  /** The signaling connection's state. */
  get connectionState(): ConnectionState {
    return this.session.connectionState;
  }

  /** The calls of this agent that have not been removed. */
  get callList(): Call[] {
    return [...this.calls.values()];
  }

  /** Calls `targets` (raw identifiers: `8:bob`, `4:+15551230000`, `8:echo123`). */
  startCall(targets: Identifier[], options: CallOptions = {}): Call {
    const id = this.run(() => this.session.startCall(targets, { muted: options.muted ?? false, video: !!options.video }));
    return this.adopt(id, options);
  }

  /** Joins the group call of `groupId`. */
  join(locator: { groupId: GroupId; lobby?: boolean }, options: CallOptions = {}): Call {
    const id = this.run(() =>
      this.session.join(locator.groupId, { muted: options.muted ?? false, video: !!options.video }, locator.lobby ?? false),
    );
    return this.adopt(id, options);
  }

  /** Hangs up every live call and closes the connection. */
  dispose(): void {
    for (const call of this.calls.values()) {
      if (call.state !== "disconnected" && call.state !== "disconnecting") {
        try {
          this.session.hangUp(call.id);
        } catch {
          // not connected: the server's grace period ends it
        }
      }
    }
    this.pump();
    this.disposed = true;
    clearTimeout(this.timer);
    clearTimeout(this.reconnectTimer);
    this.ws?.close(1000, "disposed");
    this.ws = undefined;
    for (const call of this.calls.values()) call.media?.close();
  }

  // ---- internals used by Call / IncomingCall ----

  /** Runs a session command, turns its error into a CallingError, and sends what it queued. @internal */
  run<T>(command: () => T): T {
    let result: T;
    try {
      result = command();
    } catch (e) {
      if (e instanceof SessionError) throw new CallingError(e.kind, e.message);
      throw e;
    }
    this.pump();
    return result;
  }

  /** @internal */
  adopt(id: CallId, options: CallOptions): Call {
    let call = this.calls.get(id);
    if (!call) {
      call = new Call(this, id);
      this.calls.set(id, call);
      this.dispatchEvent(new CustomEvent("callsUpdated", { detail: { added: [call], removed: [] } }));
    }
    call.start(options);
    call.sync();
    return call;
  }

  /** @internal */
  mediaEnabled(): boolean {
    return (this.options.media ?? true) && typeof RTCPeerConnection !== "undefined";
  }

  /** @internal */
  videoSlots(): number {
    return this.options.videoSlots ?? 1;
  }

  /** @internal */
  iceServers(): RTCIceServer[] | undefined {
    return this.options.iceServers;
  }

  // ---- transport ----

  private open(): void {
    if (this.disposed) return;
    const make = this.options.webSocket ?? ((url: string) => new WebSocket(url) as unknown as WebSocketLike);
    const ws = make(this.url);
    this.ws = ws;
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      if (ws !== this.ws) return;
      this.session.handleConnected(Date.now());
      this.pump();
    };
    ws.onmessage = (ev) => {
      if (ws !== this.ws) return;
      const data = ev.data;
      try {
        this.session.handleBytes(data instanceof ArrayBuffer ? data : String(data), Date.now());
      } catch (e) {
        this.dispatchEvent(new CustomEvent("error", { detail: { error: e } }));
      }
      this.pump();
    };
    ws.onclose = () => {
      if (ws !== this.ws) return;
      this.ws = undefined;
      this.session.handleDisconnected(Date.now());
      this.pump();
      this.scheduleReconnect();
    };
    ws.onerror = () => undefined;
  }

  private scheduleReconnect(): void {
    // After a goodbye the session is over; otherwise keep trying (the resume token keeps the calls).
    if (this.disposed || (this.session.connectionState === "disconnected" && this.everConnected)) return;
    const initial = this.options.reconnectInitialMs ?? 500;
    const max = this.options.reconnectMaxMs ?? 10_000;
    const ceiling = Math.min(max, initial * 2 ** this.attempt);
    this.attempt++;
    // Randomized into the upper half of the delay, as the native client does.
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.open(), delay);
  }

  /** Sends what the session queued, hands its events out, re-arms its timer. */
  private pump(): void {
    for (let m = this.session.pollTransmit(); m; m = this.session.pollTransmit()) this.send(m);
    for (let e = this.session.pollEvent(); e; e = this.session.pollEvent()) this.onEvent(e);
    // Events may have queued messages (media offers).
    for (let m = this.session.pollTransmit(); m; m = this.session.pollTransmit()) this.send(m);
    const state = this.session.connectionState;
    if (state !== this.lastState) {
      this.lastState = state;
      this.dispatchEvent(new CustomEvent("connectionStateChanged", { detail: { state } }));
    }
    clearTimeout(this.timer);
    const deadline = this.session.pollTimeout();
    if (deadline !== undefined && !this.disposed) {
      this.timer = setTimeout(() => {
        this.session.handleTimeout(Date.now());
        this.pump();
      }, Math.max(0, deadline - Date.now()));
    }
  }

  private send(message: ClientMessage): void {
    this.ws?.send(encodeClientMessage(message));
  }

  private onEvent(e: SessionEvent): void {
    switch (e.type) {
      case "authenticated":
        this.attempt = 0;
        this.everConnected = true;
        this.resolveConnected();
        return;
      case "connection_lost":
        // The server stopped answering: drop the transport and reconnect.
        this.ws?.close(4000, "no answer");
        this.ws = undefined;
        this.scheduleReconnect();
        return;
      case "goodbye":
        this.ws?.close(1000, "goodbye");
        this.ws = undefined;
        this.rejectConnected(new CallingError("goodbye", e.reason.message));
        return;
      case "request_failed":
        if (e.call_id === undefined && REFUSES_SESSION.includes(e.code) && !this.everConnected) {
          this.disposed = true;
          clearTimeout(this.timer);
          clearTimeout(this.reconnectTimer);
          this.ws?.close(1000, "refused");
          this.rejectConnected(new CallingError(e.code, e.message));
        }
        if (e.call_id !== undefined) this.calls.get(e.call_id)?.onRequestFailed(e.code, e.message);
        return;
      case "incoming_call": {
        const incoming = new IncomingCall(this, e.call_id, e.caller, e.video, e.group_id);
        this.incoming.set(e.call_id, incoming);
        this.dispatchEvent(new CustomEvent("incomingCall", { detail: { incomingCall: incoming } }));
        return;
      }
      case "call_state_changed": {
        const pending = this.incoming.get(e.call_id);
        if (pending && e.state === "disconnected") {
          this.incoming.delete(e.call_id);
          pending.ended(e.end_reason);
        }
        const call = this.calls.get(e.call_id);
        if (call) {
          call.sync();
          if (e.state === "disconnected") {
            this.calls.delete(e.call_id);
            this.dispatchEvent(new CustomEvent("callsUpdated", { detail: { added: [], removed: [call] } }));
          }
        }
        return;
      }
      default:
        if ("call_id" in e) this.calls.get(e.call_id)?.onSessionEvent(e);
    }
  }
}

/** A track's size as the protocol takes it, when the browser knows it. */
function trackSize(track: MediaStreamTrack | undefined): VideoSize | undefined {
  const settings = track?.getSettings();
  if (!settings?.width || !settings.height) return undefined;
  const size = { width: Math.round(settings.width), height: Math.round(settings.height) };
  return isValidVideoSize(size) ? size : undefined;
}

function defaultUrl(): string {
  const loc = (globalThis as { location?: Location }).location;
  if (!loc) throw new CallingError("invalid_argument", "no signaling url given and no page location to derive one");
  return `${loc.protocol === "https:" ? "wss:" : "ws:"}//${loc.host}/v1/signaling`;
}

/** A call ringing here. Events: `callEnded` (`detail.reason`: cancelled, answered elsewhere, timed out). */
export class IncomingCall extends EventTarget {
  /** @internal */
  constructor(
    private readonly agent: CallAgent,
    /** The call's id. */ readonly id: CallId,
    /** Who calls. */ readonly caller: Identifier,
    /** Whether the caller has video on. */ readonly hasVideo: boolean,
    /** The group, for an invitation into a group call. */ readonly groupId: GroupId | undefined,
  ) {
    super();
  }

  /** ACS-style caller info. */
  get callerInfo(): { identifier: Identifier } {
    return { identifier: this.caller };
  }

  /** Answers; the returned call is `connecting` until the server confirms. */
  accept(options: CallOptions = {}): Call {
    this.agent.run(() => this.agent.session.accept(this.id, { muted: options.muted ?? false, video: !!options.video }));
    return this.agent.adopt(this.id, options);
  }

  /** Declines. */
  reject(): void {
    this.agent.run(() => this.agent.session.reject(this.id));
  }

  /** @internal */
  ended(reason: EndReason | undefined): void {
    this.dispatchEvent(new CustomEvent("callEnded", { detail: { reason } }));
  }
}

/** A stream a remote participant sends, and the MediaStream showing it when a slot carries it. */
export interface RemoteVideoStream {
  /** Camera or screen share. */
  kind: VideoKind;
  /** The size the sender encodes at, when it said (lay out the renderer before the first frame). */
  size: VideoSize | undefined;
  /** The media, while one of our receive slots shows it. */
  mediaStream: MediaStream | undefined;
}

/**
 * Someone else in a call. Events: `stateChanged`, `isMutedChanged`,
 * `isSpeakingChanged`, `videoStreamsUpdated` (`detail.added`, `detail.changed`,
 * `detail.removed`: streams started, resized or stopped; all empty when only what a
 * slot shows changed).
 */
export class RemoteParticipant extends EventTarget {
  private info: ParticipantInfo;
  private streams: RemoteVideoStream[] = [];

  /** @internal */
  constructor(info: ParticipantInfo) {
    super();
    this.info = info;
  }

  /** Who (raw identifier). */
  get identifier(): Identifier {
    return this.info.id;
  }
  /** Their state in the call. */
  get state(): ParticipantState {
    return this.info.state;
  }
  /** Whether their microphone is muted. */
  get isMuted(): boolean {
    return this.info.muted;
  }
  /** Whether they are speaking now. */
  get isSpeaking(): boolean {
    return this.info.speaking;
  }
  /** Their video streams. */
  get videoStreams(): readonly RemoteVideoStream[] {
    return this.streams;
  }
  /** Why they left, when they have. */
  get callEndReason(): EndReason | undefined {
    return this.info.end_reason;
  }

  /** @internal */
  update(info: ParticipantInfo): void {
    const old = this.info;
    this.info = info;
    if (old.state !== info.state) this.dispatchEvent(new Event("stateChanged"));
    if (old.muted !== info.muted) this.dispatchEvent(new Event("isMutedChanged"));
    if (old.speaking !== info.speaking) this.dispatchEvent(new Event("isSpeakingChanged"));
  }

  /** @internal A stream started (`added`), changed size, or stopped (`stream` undefined). */
  videoChanged(kind: VideoKind, stream: VideoStream | undefined): void {
    const existing = this.streams.find((s) => s.kind === kind);
    const detail: Record<"added" | "changed" | "removed", RemoteVideoStream[]> = { added: [], changed: [], removed: [] };
    if (!stream) {
      if (!existing) return;
      this.streams = this.streams.filter((s) => s !== existing);
      detail.removed.push(existing);
    } else if (existing) {
      existing.size = stream.size;
      detail.changed.push(existing);
    } else {
      const added: RemoteVideoStream = { kind, size: stream.size, mediaStream: undefined };
      this.streams = [...this.streams, added];
      detail.added.push(added);
    }
    this.dispatchEvent(new CustomEvent("videoStreamsUpdated", { detail }));
  }

  /** @internal Which of our slots shows which of their streams. */
  showSlots(shown: Map<VideoKind, MediaStream>): void {
    let changed = false;
    for (const s of this.streams) {
      const next = shown.get(s.kind);
      if (s.mediaStream !== next) {
        s.mediaStream = next;
        changed = true;
      }
    }
    if (changed) this.dispatchEvent(new CustomEvent("videoStreamsUpdated", { detail: { added: [], changed: [], removed: [] } }));
  }

  /** @internal */
  left(reason: EndReason | undefined): void {
    if (reason) this.info = { ...this.info, state: "disconnected", end_reason: reason };
    else this.info = { ...this.info, state: "disconnected" };
    this.dispatchEvent(new Event("stateChanged"));
  }
}

/**
 * A call this agent is in. Events: `stateChanged`, `isMutedChanged`,
 * `remoteParticipantsUpdated` (`detail.added`, `detail.removed`),
 * `dominantSpeakersChanged`, `localVideoStreamsUpdated`, `remoteAudioStream`
 * (`detail.stream`: the call's mixed audio), `dtmfReceived` (`detail.from`, `detail.digits`:
 * keys a phone participant pressed), `requestFailed` (`detail.code`, `detail.message`).
 */
export class Call extends EventTarget {
  /** @internal */ media: CallMedia | undefined;
  private readonly participants = new Map<Identifier, RemoteParticipant>();
  private lastState: CallState | undefined;
  private lastMuted: boolean | undefined;
  private localVideo: LocalVideoStream[] = [];
  private audioElement: HTMLAudioElement | undefined;
  private remoteAudio: MediaStream | undefined;
  private started = false;
  private offerRefused = false;

  /** @internal */
  constructor(
    private readonly agent: CallAgent,
    /** The call's id, the same for every participant. */ readonly id: CallId,
  ) {
    super();
  }

  private get view() {
    return this.agent.session.call(this.id);
  }

  /** Our state in the call. */
  get state(): CallState {
    return this.view?.state ?? this.lastState ?? "disconnected";
  }
  /** Whether we called or were called. */
  get direction(): "incoming" | "outgoing" {
    return this.view?.direction ?? "outgoing";
  }
  /** Whether our microphone is muted (as the server said). */
  get isMuted(): boolean {
    return this.view?.isMuted ?? false;
  }
  /** Whether we put the call on hold. */
  get isOnHold(): boolean {
    return this.state === "local_hold";
  }
  /** Whether we send camera video. */
  get isLocalVideoOn(): boolean {
    return this.view?.video.some((s) => s.kind === "camera") ?? false;
  }
  /** Whether we share a screen, window or tab. */
  get isScreenSharingOn(): boolean {
    return this.view?.video.some((s) => s.kind === "screen_share") ?? false;
  }
  /** The video we send. */
  get localVideoStreams(): readonly LocalVideoStream[] {
    return this.localVideo;
  }
  /** Everyone else in the call. */
  get remoteParticipants(): RemoteParticipant[] {
    return [...this.participants.values()];
  }
  /** Dominant speakers, most dominant first. */
  get dominantSpeakers(): readonly Identifier[] {
    return this.view?.dominantSpeakers ?? [];
  }
  /** The group, for a group call. */
  get groupId(): GroupId | undefined {
    return this.view?.groupId;
  }
  /** Why the call ended. */
  get callEndReason(): EndReason | undefined {
    return this.view?.endReason;
  }
  /** The call's mixed remote audio, once media flows. */
  get remoteAudioStream(): MediaStream | undefined {
    return this.remoteAudio;
  }

  /** Mutes our microphone. */
  async mute(): Promise<void> {
    this.agent.run(() => this.agent.session.mute(this.id));
    this.media?.setMicrophoneEnabled(false);
  }
  /** Unmutes our microphone. */
  async unmute(): Promise<void> {
    this.agent.run(() => this.agent.session.unmute(this.id));
    this.media?.setMicrophoneEnabled(true);
  }
  /** Puts the call on hold. */
  async hold(): Promise<void> {
    this.agent.run(() => this.agent.session.hold(this.id));
  }
  /** Takes the call off hold. */
  async resume(): Promise<void> {
    this.agent.run(() => this.agent.session.resume(this.id));
  }
  /** Leaves the call, or ends it for everyone. */
  async hangUp(options: { forEveryone?: boolean } = {}): Promise<void> {
    this.agent.run(() => this.agent.session.hangUp(this.id, options.forEveryone ?? false));
  }
  /** Sends DTMF tones (`0-9`, `*`, `#`, `A-D`, up to 32) to the call's phone participants. */
  sendDtmf(digits: string): void {
    this.agent.run(() => this.agent.session.sendDtmf(this.id, digits));
  }
  /** Invites someone (a 1:1 call becomes a group call). */
  addParticipant(target: Identifier): void {
    this.agent.run(() => this.agent.session.addParticipant(this.id, target));
  }
  /** Removes someone, or refuses them from the lobby. */
  async removeParticipant(target: Identifier | RemoteParticipant): Promise<void> {
    const id = typeof target === "string" ? target : target.identifier;
    this.agent.run(() => this.agent.session.removeParticipant(this.id, id));
  }
  /** Lets someone waiting in the lobby in. */
  async admit(target: Identifier | RemoteParticipant): Promise<void> {
    const id = typeof target === "string" ? target : target.identifier;
    this.agent.run(() => this.agent.session.admit(this.id, id));
  }
  /** At most `maxVideos` remote cameras, `pinned` first. */
  setVideoPreferences(preferences: { maxVideos?: number; pinned?: Identifier }): void {
    this.agent.run(() => this.agent.session.setVideoPreferences(this.id, preferences.maxVideos, preferences.pinned));
  }

  /** Starts sending a camera (captured now unless the stream has a track), announcing its size. */
  async startVideo(stream: LocalVideoStream = new LocalVideoStream()): Promise<void> {
    if (this.isScreenSharingOn) throw new CallingError("video_busy", "stop sharing the screen before starting the camera");
    if (this.media) stream.track ??= await captureCamera(stream.deviceId);
    try {
      this.agent.run(() => this.agent.session.startVideo(this.id, "camera", trackSize(stream.track)));
    } catch (e) {
      stream.track?.stop();
      throw e;
    }
    if (this.media && stream.track) await this.media.publishVideo(stream.track);
    this.localVideo = [stream];
    this.dispatchEvent(new Event("localVideoStreamsUpdated"));
  }

  /**
   * Switches to another camera while the camera is on: the new source replaces the
   * old one on the same stream, and a changed size is announced to the others.
   */
  async switchCamera(device: VideoDeviceInfo | string): Promise<void> {
    if (!this.isLocalVideoOn) throw new CallingError("invalid_state", "the camera is off; start it instead");
    const deviceId = typeof device === "string" ? device : device.deviceId;
    const stream = new LocalVideoStream({ deviceId, name: "", deviceType: "videoinput" });
    if (this.media) {
      stream.track = await captureCamera(deviceId);
      await this.media.publishVideo(stream.track);
    }
    this.agent.run(() => this.agent.session.startVideo(this.id, "camera", trackSize(stream.track)));
    this.localVideo = [stream];
    this.dispatchEvent(new Event("localVideoStreamsUpdated"));
  }

  /** Stops sending the camera. */
  async stopVideo(): Promise<void> {
    this.agent.run(() => this.agent.session.stopVideo(this.id, "camera"));
    await this.media?.unpublishVideo();
    this.localVideo = [];
    this.dispatchEvent(new Event("localVideoStreamsUpdated"));
  }

  /** Shares a screen, window or browser tab (getDisplayMedia; the user picks). */
  async startScreenSharing(options: { surface?: DisplaySurface } = {}): Promise<void> {
    if (this.isLocalVideoOn) throw new CallingError("video_busy", "stop the camera before sharing the screen");
    const track = this.media ? await captureDisplay(options.surface) : undefined;
    try {
      this.agent.run(() => this.agent.session.startVideo(this.id, "screen_share", trackSize(track)));
    } catch (e) {
      track?.stop();
      throw e;
    }
    if (track && this.media) {
      await this.media.publishVideo(track);
      // The browser's own "stop sharing" button ends the track.
      track.addEventListener("ended", () => {
        if (this.isScreenSharingOn) void this.stopScreenSharing();
      });
    }
    this.localVideo = [new LocalVideoStream(track, "screen_share")];
    this.dispatchEvent(new Event("localVideoStreamsUpdated"));
  }

  /** Stops sharing. */
  async stopScreenSharing(): Promise<void> {
    this.agent.run(() => this.agent.session.stopVideo(this.id, "screen_share"));
    await this.media?.unpublishVideo();
    this.localVideo = [];
    this.dispatchEvent(new Event("localVideoStreamsUpdated"));
  }

  /** Plays the call's audio on `speaker` (where setSinkId is supported). */
  async setSpeaker(deviceId: string): Promise<void> {
    const el = this.audioElement as (HTMLAudioElement & { setSinkId?: (id: string) => Promise<void> }) | undefined;
    if (el?.setSinkId) await el.setSinkId(deviceId);
  }

  /** Switches the microphone this call sends. */
  async setMicrophone(deviceId: string): Promise<void> {
    await this.media?.setMicrophone(deviceId);
  }

  /** The peer connection's statistics (inbound-rtp, outbound-rtp, ...). */
  async getStats(): Promise<RTCStatsReport | undefined> {
    return this.media?.stats();
  }

  // ---- internals ----

  /** @internal Starts media once, right after start/join/accept. */
  start(options: CallOptions): void {
    if (this.started) return;
    this.started = true;
    if (!this.agent.mediaEnabled()) return;
    const devices = this.agent.devices();
    const mediaOptions: ConstructorParameters<typeof CallMedia>[0] = { videoSlots: this.agent.videoSlots() };
    const ice = this.agent.iceServers();
    if (ice) mediaOptions.iceServers = ice;
    if (devices?.selectedMicrophone) mediaOptions.microphoneId = devices.selectedMicrophone.deviceId;
    this.media = new CallMedia(mediaOptions, {
      sendOffer: (payload) => {
        try {
          this.agent.run(() => this.agent.session.sendMedia(this.id, payload));
        } catch {
          // The call ended meanwhile.
        }
      },
      remoteAudio: (stream) => this.playRemoteAudio(stream),
      slotTrack: () => this.showSlots(),
      stateChanged: (state) => {
        if (state === "failed") this.dispatchEvent(new CustomEvent("mediaFailed"));
      },
    });
    void this.media
      .start()
      .then(async () => {
        if (options.video) {
          options.video.track ??= await captureCamera(options.video.deviceId);
          await this.media?.publishVideo(options.video.track);
          this.localVideo = [options.video];
          this.dispatchEvent(new Event("localVideoStreamsUpdated"));
        }
        if (options.muted) this.media?.setMicrophoneEnabled(false);
      })
      .catch((error) => this.dispatchEvent(new CustomEvent("mediaFailed", { detail: { error } })));
  }

  private playRemoteAudio(stream: MediaStream): void {
    this.remoteAudio = stream;
    if (typeof Audio !== "undefined") {
      this.audioElement ??= new Audio();
      this.audioElement.autoplay = true;
      this.audioElement.srcObject = stream;
      const speaker = this.agent.devices()?.selectedSpeaker;
      if (speaker) void this.setSpeaker(speaker.deviceId).catch(() => undefined);
      void this.audioElement.play().catch(() => undefined);
    }
    this.dispatchEvent(new CustomEvent("remoteAudioStream", { detail: { stream } }));
  }

  /** @internal Follows the session's view after a state change. */
  sync(): void {
    const state = this.state;
    if (state !== this.lastState) {
      this.lastState = state;
      this.dispatchEvent(new Event("stateChanged"));
      // An offer the server refused (sent from the lobby, before being admitted) goes
      // out again once we are in. Never otherwise: a second offer replaces the first
      // media session on the server, whose answer we would then not have.
      if (state === "connected" && this.offerRefused && this.media && !this.media.isAnswered) {
        this.offerRefused = false;
        this.media.resendOffer();
      }
      if (state === "disconnected") {
        this.media?.close();
        this.audioElement?.pause();
        const removed = [...this.participants.values()];
        for (const p of removed) p.left(undefined);
        this.participants.clear();
        if (removed.length) {
          this.dispatchEvent(new CustomEvent("remoteParticipantsUpdated", { detail: { added: [], removed } }));
        }
      }
    }
    const muted = this.isMuted;
    if (muted !== this.lastMuted) {
      const first = this.lastMuted === undefined;
      this.lastMuted = muted;
      if (!first) this.dispatchEvent(new Event("isMutedChanged"));
    }
  }

  /** @internal */
  onSessionEvent(e: SessionEvent): void {
    switch (e.type) {
      case "participant_added": {
        const p = new RemoteParticipant(e.participant);
        this.participants.set(p.identifier, p);
        this.dispatchEvent(new CustomEvent("remoteParticipantsUpdated", { detail: { added: [p], removed: [] } }));
        return;
      }
      case "participant_updated":
        this.participants.get(e.participant.id)?.update(e.participant);
        return;
      case "participant_removed": {
        const p = this.participants.get(e.id);
        if (!p) return;
        this.participants.delete(e.id);
        p.left(e.reason);
        this.dispatchEvent(new CustomEvent("remoteParticipantsUpdated", { detail: { added: [], removed: [p] } }));
        return;
      }
      case "mute_changed":
        this.media?.setMicrophoneEnabled(!e.muted);
        this.sync();
        return;
      case "dominant_speakers_changed":
        this.dispatchEvent(new Event("dominantSpeakersChanged"));
        return;
      case "dtmf_received":
        this.dispatchEvent(new CustomEvent("dtmfReceived", { detail: { from: e.from, digits: e.digits } }));
        return;
      case "remote_video_added":
      case "remote_video_changed":
        this.participants.get(e.participant)?.videoChanged(e.stream.kind, e.stream);
        this.showSlots();
        return;
      case "remote_video_removed":
        this.participants.get(e.participant)?.videoChanged(e.kind, undefined);
        return;
      case "video_slots_changed":
        this.showSlots(e.slots);
        return;
      case "media_received":
        if (e.payload.kind === "answer" && this.media) {
          void this.media.handleAnswer(e.payload.sdp).catch((error) =>
            this.dispatchEvent(new CustomEvent("mediaFailed", { detail: { error } })),
          );
        }
        return;
      default:
        return;
    }
  }

  /** @internal */
  onRequestFailed(code: ErrorCode, message: string): void {
    if (code === "invalid_state" && this.media && !this.media.isAnswered) this.offerRefused = true;
    this.dispatchEvent(new CustomEvent("requestFailed", { detail: { code, message } }));
  }

  private showSlots(slots: readonly VideoSlot[] = this.view?.videoSlots ?? []): void {
    const byParticipant = new Map<Identifier, Map<VideoKind, MediaStream>>();
    for (const slot of slots) {
      if (!slot.participant || !slot.kind || !this.media) continue;
      const stream = this.media.slotStream(slot.mid);
      if (!stream) continue;
      let m = byParticipant.get(slot.participant);
      if (!m) byParticipant.set(slot.participant, (m = new Map()));
      m.set(slot.kind, stream);
    }
    for (const [id, p] of this.participants) p.showSlots(byParticipant.get(id) ?? new Map());
  }
}

/** A camera. */
export interface VideoDeviceInfo {
  /** The browser's device id. */
  deviceId: string;
  /** What the user sees. */
  name: string;
  /** Always `videoinput`. */
  deviceType: "videoinput";
}

/** A microphone or a speaker. */
export interface AudioDeviceInfo {
  /** The browser's device id. */
  deviceId: string;
  /** What the user sees. */
  name: string;
  /** `audioinput` or `audiooutput`. */
  deviceType: "audioinput" | "audiooutput";
  /** Whether it is the system default. */
  isSystemDefault: boolean;
}

/**
 * Cameras, microphones and speakers through navigator.mediaDevices. Events:
 * `videoDevicesUpdated`, `audioDevicesUpdated` (on `devicechange`),
 * `selectedMicrophoneChanged`, `selectedSpeakerChanged`.
 */
export class DeviceManager extends EventTarget {
  /** The microphone new calls capture. */
  selectedMicrophone: AudioDeviceInfo | undefined;
  /** The speaker calls play on (where supported). */
  selectedSpeaker: AudioDeviceInfo | undefined;
  private readonly devices: MediaDevices;

  constructor(devices: MediaDevices = navigator.mediaDevices) {
    super();
    this.devices = devices;
    devices.addEventListener("devicechange", () => {
      this.dispatchEvent(new Event("videoDevicesUpdated"));
      this.dispatchEvent(new Event("audioDevicesUpdated"));
    });
  }

  /** Whether speakers can be chosen (HTMLMediaElement.setSinkId; not in every browser). */
  get isSpeakerSelectionAvailable(): boolean {
    return typeof HTMLMediaElement !== "undefined" && "setSinkId" in HTMLMediaElement.prototype;
  }

  /** Asks for camera and/or microphone permission (labels appear only after it). */
  async askDevicePermission(kinds: { audio: boolean; video: boolean }): Promise<{ audio: boolean; video: boolean }> {
    try {
      const stream = await this.devices.getUserMedia(kinds);
      for (const t of stream.getTracks()) t.stop();
      return { audio: kinds.audio, video: kinds.video };
    } catch {
      return { audio: false, video: false };
    }
  }

  /** The cameras. */
  async getCameras(): Promise<VideoDeviceInfo[]> {
    return (await this.devices.enumerateDevices())
      .filter((d) => d.kind === "videoinput")
      .map((d, i) => ({ deviceId: d.deviceId, name: d.label || `Camera ${i + 1}`, deviceType: "videoinput" }));
  }

  /** The microphones. */
  async getMicrophones(): Promise<AudioDeviceInfo[]> {
    return this.audio("audioinput");
  }

  /** The speakers (empty where the browser does not list outputs). */
  async getSpeakers(): Promise<AudioDeviceInfo[]> {
    return this.audio("audiooutput");
  }

  /** Picks the microphone for new calls (and switch live calls with Call.setMicrophone). */
  selectMicrophone(device: AudioDeviceInfo): void {
    this.selectedMicrophone = device;
    this.dispatchEvent(new Event("selectedMicrophoneChanged"));
  }

  /** Picks the speaker for calls (where setSinkId is supported). */
  selectSpeaker(device: AudioDeviceInfo): void {
    this.selectedSpeaker = device;
    this.dispatchEvent(new Event("selectedSpeakerChanged"));
  }

  private async audio(kind: "audioinput" | "audiooutput"): Promise<AudioDeviceInfo[]> {
    return (await this.devices.enumerateDevices())
      .filter((d) => d.kind === kind)
      .map((d, i) => ({
        deviceId: d.deviceId,
        name: d.label || `${kind === "audioinput" ? "Microphone" : "Speaker"} ${i + 1}`,
        deviceType: kind,
        isSystemDefault: d.deviceId === "default",
      }));
  }
}

export type { DisplaySurface };
