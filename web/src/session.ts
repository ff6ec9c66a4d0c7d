// The client's side of a signaling connection: ClientSession, a sans-IO state machine
// for the connection and every call on it, mirroring ClientSession in
// crates/signaling/src/session.rs (same rules, same events, same errors; its module
// docs are the reference).
//
// The session owns no socket and reads no clock. The driver feeds it what happens
// (handleConnected, handleMessage/handleBytes, handleTimeout), the app's requests
// become commands (startCall, accept, hangUp, ...), and after every input or command
// the driver drains pollTransmit() and pollEvent() until they return undefined, and
// arms a timer for pollTimeout(). Time is `now` in milliseconds, passed in.

import {
  type CallId,
  type GroupId,
  type Identifier,
  callIdForGroup,
  checkCallId,
  checkGroupId,
  checkIdentifier,
  compareBytes,
  compareIdentifiers,
} from "./ids.js";
import {
  type CallState,
  type ClientKind,
  type ClientMessage,
  DecodeError,
  type EndReason,
  EndReasons,
  type ErrorCode,
  type JoinOptions,
  type MediaPayload,
  type ParticipantInfo,
  type ServerMessage,
  type VideoKind,
  type VideoSize,
  type VideoSlot,
  type VideoStream,
  type Wire,
  decodeServerMessage,
  isValidVideoSize,
} from "./protocol.js";
import { Rng } from "./rng.js";

/** Most ended calls kept for the app to look at; older ended calls are pruned. */
export const MAX_ENDED_CALLS = 32;
/** Most targets of one `start_call`: the server's default group size, less the caller. */
export const MAX_TARGETS = 349;

/** How a {@link ClientSession} connects and keeps its connection alive. */
export interface SessionConfig {
  /** The access token presented in `auth`. */
  token: string;
  /** What kind of client this is (default `web`). */
  client?: ClientKind;
  /** Seeds the generator of call ids (drivers use {@link randomSeed}; tests pick one). */
  seed: bigint | number;
  /** How often to ping the server while connected, ms (default 15 000). */
  pingIntervalMs?: number;
  /** How long to wait for `pong` (and `authenticated`), ms (default 10 000). */
  pongTimeoutMs?: number;
}

/** The state of the connection to the server. */
export type ConnectionState = "disconnected" | "authenticating" | "connected" | "reconnecting";

/** What happened, for the app (mirrors the Rust `Event`). */
export type SessionEvent =
  | { type: "authenticated"; user: Identifier; resumed: boolean }
  | { type: "incoming_call"; call_id: CallId; caller: Identifier; video: boolean; group_id?: GroupId }
  | { type: "call_state_changed"; call_id: CallId; state: CallState; end_reason?: EndReason }
  | { type: "participant_added"; call_id: CallId; participant: ParticipantInfo }
  | { type: "participant_updated"; call_id: CallId; participant: ParticipantInfo }
  | { type: "participant_removed"; call_id: CallId; id: Identifier; reason?: EndReason }
  | { type: "mute_changed"; call_id: CallId; muted: boolean }
  | { type: "dominant_speakers_changed"; call_id: CallId; speakers: Identifier[] }
  /** A participant (a phone) pressed keys: RFC 4733 DTMF from its leg, in order. */
  | { type: "dtmf_received"; call_id: CallId; from: Identifier; digits: string }
  /** A remote participant started sending a video stream. */
  | { type: "remote_video_added"; call_id: CallId; participant: Identifier; stream: VideoStream }
  /** A remote participant's stream changed size (their source switched); it goes on. */
  | { type: "remote_video_changed"; call_id: CallId; participant: Identifier; stream: VideoStream }
  /** A remote participant's stream ended: they stopped it, or they left. */
  | { type: "remote_video_removed"; call_id: CallId; participant: Identifier; kind: VideoKind }
  | { type: "video_slots_changed"; call_id: CallId; slots: VideoSlot[] }
  | { type: "media_received"; call_id: CallId; payload: MediaPayload }
  | { type: "request_failed"; code: ErrorCode; message: string; call_id?: CallId }
  | { type: "connection_lost" }
  | { type: "goodbye"; reason: EndReason };

/** What went wrong in the session; `kind` says who is at fault (see the Rust `Error`). */
export type SessionErrorKind =
  /** Bytes from the server are not a valid message; nothing changed. */
  | "malformed"
  /** A valid server message the protocol does not allow now; it was ignored. */
  | "peer_misbehaved"
  /** The request needs an authenticated connection. */
  | "not_connected"
  /** No call has this id. */
  | "unknown_call"
  /** The call's state does not allow the request. */
  | "invalid_state"
  /** The participant is not in the call. */
  | "unknown_participant"
  /** The other one of camera and screen share is on. */
  | "video_busy"
  /** An argument makes no sense whatever the state. */
  | "invalid_argument";

/** An error from a {@link ClientSession} input or command. */
export class SessionError extends Error {
  /** What went wrong. */
  readonly kind: SessionErrorKind;
  /** The call, when the error is about one. */
  readonly callId: CallId | undefined;
  /** The call's state, for `invalid_state`. */
  readonly state: CallState | undefined;
  /** The decode error, for `malformed`. */
  readonly decodeError: DecodeError | undefined;
  constructor(
    kind: SessionErrorKind,
    message: string,
    extra: { callId?: CallId; state?: CallState; decodeError?: DecodeError } = {},
  ) {
    super(message);
    this.name = "SessionError";
    this.kind = kind;
    this.callId = extra.callId;
    this.state = extra.state;
    this.decodeError = extra.decodeError;
  }
}

/** Who started a call, from this client's point of view. */
export type Direction = "incoming" | "outgoing";

/** A request made of a call; each is allowed in some states only. */
type Action = "accept" | "reject" | "hang_up" | "hold" | "resume" | "media" | "invite" | "admit" | "negotiate" | "remove";

const VERBS: Record<Action, string> = {
  accept: "accept",
  reject: "reject",
  hang_up: "hang up",
  hold: "hold",
  resume: "resume",
  media: "change media of",
  invite: "change participants of",
  admit: "admit into",
  negotiate: "send media payload for",
  remove: "remove",
};

/** Whether `action` is allowed in `state`, and the state it sets at once (`null`: stays). */
function transition(action: Action, state: CallState): CallState | null | undefined {
  const inCall = state === "connected" || state === "local_hold" || state === "remote_hold";
  const joining = state === "connecting" || state === "ringing" || state === "early_media" || state === "in_lobby";
  const allow = (ok: boolean, next: CallState | null) => (ok ? next : undefined);
  switch (action) {
    case "accept":
      return allow(state === "incoming", "connecting");
    case "reject":
      return allow(state === "incoming", "disconnecting");
    case "hang_up":
      return allow(state === "incoming" || inCall || joining, "disconnecting");
    case "hold":
      return allow(state === "connected" || state === "remote_hold", null);
    case "resume":
      return allow(state === "local_hold", null);
    case "media":
    case "negotiate":
      return allow(inCall || joining, null);
    case "invite":
      return allow(inCall || state === "ringing" || state === "early_media", null);
    case "admit":
      return allow(inCall, null);
    case "remove":
      return allow(state === "disconnected", null);
  }
}

/** Whether the call is still going on for this client. */
function isLive(state: CallState): boolean {
  return state !== "disconnected";
}

function initialVideo(video: boolean): VideoStream[] {
  return video ? [{ kind: "camera" }] : [];
}

/** Deep equality of plain JSON-like data. */
function same(a: unknown, b: unknown): boolean {
  return stableJson(a) === stableJson(b);
}

/** JSON with object keys sorted and undefined members left out. */
function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(",")}]`;
  if (v !== null && typeof v === "object") {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${stableJson(o[k])}`).join(",")}}`;
  }
  return JSON.stringify(v);
}

/** A call this session is in or was in: a read-only view, mutated by the session only. */
export class SessionCall {
  /** The call's id, the same for every participant. */
  readonly id: CallId;
  /** Whether we called or were called. */
  readonly direction: Direction;
  /** Who called us, for an incoming call. */
  readonly caller: Identifier | undefined;
  /** Whether the caller of an incoming call had video on when it rang. */
  readonly callerHasVideo: boolean;
  /** The group, for a call joined by group id or an invitation into one. */
  readonly groupId: GroupId | undefined;
  /** @internal */ _state: CallState;
  /** @internal */ _muted = false;
  /** @internal */ _video: VideoStream[] = [];
  /** @internal */ _participants = new Map<Identifier, ParticipantInfo>();
  /** @internal */ _dominantSpeakers: Identifier[] = [];
  /** @internal */ _videoSlots: VideoSlot[] = [];
  /** @internal */ _endReason: EndReason | undefined;
  /** The state before an unconfirmed local transition; `null`: created locally. @internal */
  _pending: CallState | null | undefined;
  /** @internal */ _endedSeq = 0;

  /** @internal */
  constructor(
    id: CallId,
    state: CallState,
    direction: Direction,
    extra: { caller?: Identifier; callerVideo?: boolean; groupId?: GroupId } = {},
  ) {
    this.id = id;
    this._state = state;
    this.direction = direction;
    this.caller = extra.caller;
    this.callerHasVideo = extra.callerVideo ?? false;
    this.groupId = extra.groupId;
  }

  /** This client's state in the call. */
  get state(): CallState {
    return this._state;
  }
  /** Whether our microphone is muted, as the server last said (initially as joined). */
  get isMuted(): boolean {
    return this._muted;
  }
  /** Whether we put the call on hold. */
  get isOnHold(): boolean {
    return this._state === "local_hold";
  }
  /** The video streams we send, with the size we last announced for each. */
  get video(): readonly VideoStream[] {
    return this._video;
  }
  /** Everyone else in the call, ordered by id. Empty once the call is disconnected. */
  get remoteParticipants(): ParticipantInfo[] {
    return [...this._participants.keys()].sort(compareIdentifiers).map((id) => this._participants.get(id)!);
  }
  /** One remote participant. */
  participant(id: Identifier): ParticipantInfo | undefined {
    return this._participants.get(id);
  }
  /** The dominant speakers, most dominant first. */
  get dominantSpeakers(): readonly Identifier[] {
    return this._dominantSpeakers;
  }
  /** What our video receive slots show, in offer order. */
  get videoSlots(): readonly VideoSlot[] {
    return this._videoSlots;
  }
  /** Why the call ended, once disconnected (when known). */
  get endReason(): EndReason | undefined {
    return this._endReason;
  }

  /** @internal Checks that `action` is allowed now and applies its local state change. */
  _request(action: Action): void {
    const next = transition(action, this._state);
    if (next === undefined) {
      throw new SessionError("invalid_state", `cannot ${VERBS[action]} call ${this.id} in state ${this._state}`, {
        callId: this.id,
        state: this._state,
      });
    }
    if (next === null || next === this._state) return;
    // Keep the oldest unconfirmed state: that is what the server still has.
    if (this._pending === undefined) this._pending = this._state;
    this._state = next;
  }

  /** @internal Applies `call_state` from the server; returns whether the state changed. */
  _applyServerState(state: CallState, endReason: EndReason | undefined): boolean {
    this._pending = undefined;
    let accepted: boolean;
    if (this._state === "disconnected") accepted = false;
    else if (this._state === "disconnecting") accepted = state === "disconnected";
    else accepted = state !== "none";
    if (!accepted || state === this._state) return false;
    if (state === "disconnected") this._end(endReason);
    else this._state = state;
    return true;
  }

  /** @internal Undoes an unconfirmed local transition after the server refused a request. */
  _revert(reason: EndReason): boolean {
    const pending = this._pending;
    this._pending = undefined;
    if (pending === undefined) return false;
    if (pending === null) {
      this._end(reason);
      return true;
    }
    const changed = pending !== this._state;
    this._state = pending;
    return changed;
  }

  /** @internal */
  _end(reason: EndReason | undefined): void {
    this._state = "disconnected";
    this._endReason = reason;
    this._pending = undefined;
    this._video = [];
    this._participants.clear();
    this._dominantSpeakers = [];
    this._videoSlots = [];
  }

  /** @internal Whether we are leaving a call that was ringing here. */
  _leftWhileRinging(): boolean {
    return this._pending === "incoming";
  }
}

type Timer = "auth_deadline" | "pong_deadline" | "ping";
const TIMER_ORDER: Record<Timer, number> = { auth_deadline: 0, pong_deadline: 1, ping: 2 };

/** The client's signaling state machine: one connection (across reconnects) and its calls. */
export class ClientSession {
  private readonly token: string;
  private readonly client: ClientKind;
  private readonly pingIntervalMs: number;
  private readonly pongTimeoutMs: number;
  private state: ConnectionState = "disconnected";
  private _user: Identifier | undefined;
  private resumeToken: string | undefined;
  private _resumeGraceMs: number | undefined;
  private readonly calls = new Map<CallId, SessionCall>();
  private readonly transmits: ClientMessage[] = [];
  private readonly events: SessionEvent[] = [];
  private readonly timers = new Map<Timer, number>();
  private readonly rng: Rng;
  private nextPingSeq = 1;
  private awaitingPong: number | undefined;
  private resync: { seq: number; waiting: Set<CallId> } | undefined;
  private endedCount = 0;

  /** A session that is not connected yet. */
  constructor(config: SessionConfig, _now: number) {
    this.token = config.token;
    this.client = config.client ?? "web";
    this.pingIntervalMs = config.pingIntervalMs ?? 15_000;
    this.pongTimeoutMs = config.pongTimeoutMs ?? 10_000;
    this.rng = new Rng(config.seed);
  }

  // ---- transport ----

  /** The transport is up: queues `auth` (with the resume token when there is a session to take back). */
  handleConnected(now: number): void {
    this.resetConnection();
    this.state = "authenticating";
    const auth: ClientMessage = { type: "auth", token: this.token, client: this.client };
    if (this.resumeToken !== undefined) auth.resume = this.resumeToken;
    this.transmits.push(auth);
    this.timers.set("auth_deadline", now + this.pongTimeoutMs);
  }

  /** The transport dropped: the session waits in `reconnecting` with its calls. */
  handleDisconnected(_now: number): void {
    if (this.state === "authenticating" || this.state === "connected") {
      this.resetConnection();
      this.state = "reconnecting";
    }
  }

  /**
   * Decodes a message from the server and handles it.
   * @throws SessionError `malformed` (nothing changes), or as {@link handleMessage}.
   */
  handleBytes(bytes: Wire, now: number): void {
    let message: ServerMessage;
    try {
      message = decodeServerMessage(bytes);
    } catch (e) {
      if (e instanceof DecodeError) {
        throw new SessionError("malformed", `malformed message: ${e.message}`, { decodeError: e });
      }
      throw e;
    }
    this.handleMessage(message, now);
  }

  /**
   * Handles a message from the server.
   * @throws SessionError `peer_misbehaved` for a call message before `authenticated`,
   * or `authenticated` twice; the message is ignored.
   */
  handleMessage(message: ServerMessage, now: number): void {
    switch (this.state) {
      case "disconnected":
      case "reconnecting":
        return;
      case "authenticating":
        if (!["authenticated", "error", "goodbye", "pong"].includes(message.type)) {
          throw new SessionError("peer_misbehaved", "peer misbehaved: call message before authentication");
        }
        break;
      case "connected":
        if (message.type === "authenticated") {
          throw new SessionError("peer_misbehaved", "peer misbehaved: authenticated twice");
        }
        break;
    }
    switch (message.type) {
      case "authenticated":
        return this.onAuthenticated(message.user, message.resume_token, message.grace_ms, message.resumed, now);
      case "incoming_call":
        return this.onIncomingCall(message.call_id, message.caller, message.video, message.group_id);
      case "call_state":
        return this.onCallState(message.call_id, message.state, message.end_reason);
      case "roster":
        return this.onRoster(message.call_id, message.participants);
      case "participant":
        return this.onParticipant(message.call_id, message.participant);
      case "participant_left":
        return this.onParticipantLeft(message.call_id, message.id, message.reason);
      case "mute_state":
        return this.onMuteState(message.call_id, message.muted);
      case "dominant_speakers": {
        const call = this.liveCall(message.call_id);
        if (call && !same(call._dominantSpeakers, message.speakers)) {
          call._dominantSpeakers = [...message.speakers];
          this.events.push({ type: "dominant_speakers_changed", call_id: message.call_id, speakers: [...message.speakers] });
        }
        return;
      }
      case "dtmf":
        if (this.liveCall(message.call_id)) {
          this.events.push({ type: "dtmf_received", call_id: message.call_id, from: message.from, digits: message.digits });
        }
        return;
      case "video_slots": {
        const call = this.liveCall(message.call_id);
        if (call && !same(call._videoSlots, message.slots)) {
          call._videoSlots = message.slots.map((s) => ({ ...s }));
          this.events.push({ type: "video_slots_changed", call_id: message.call_id, slots: message.slots });
        }
        return;
      }
      case "media":
        if (this.liveCall(message.call_id)) {
          this.events.push({ type: "media_received", call_id: message.call_id, payload: message.payload });
        }
        return;
      case "error":
        return this.onError(message.code, message.message, message.call_id);
      case "pong":
        return this.onPong(message.seq);
      case "goodbye":
        return this.onGoodbye(message.reason);
    }
  }

  /** Fires the timers that are due: sends pings, declares the connection lost. Safe to call early. */
  handleTimeout(now: number): void {
    for (;;) {
      let due: [Timer, number] | undefined;
      for (const [timer, deadline] of this.timers) {
        if (deadline > now) continue;
        if (!due || deadline < due[1] || (deadline === due[1] && TIMER_ORDER[timer] < TIMER_ORDER[due[0]])) {
          due = [timer, deadline];
        }
      }
      if (!due) return;
      const [timer] = due;
      this.timers.delete(timer);
      if (timer === "ping") {
        this.sendPing(now);
        this.timers.set("ping", now + Math.max(this.pingIntervalMs, 1));
      } else {
        this.resetConnection();
        this.state = "reconnecting";
        this.events.push({ type: "connection_lost" });
      }
    }
  }

  // ---- commands ----

  /**
   * Calls `targets`: one target makes a 1:1 call, more a group call. The call is
   * `connecting` until the server says otherwise. Returns the new call's id.
   * @throws SessionError `not_connected`, `invalid_argument` (no targets, too many, a
   * target twice, ourselves, a bad identifier).
   */
  startCall(targets: Identifier[], options: Partial<JoinOptions> = {}, _now?: number): CallId {
    this.ensureConnected();
    if (targets.length === 0) throw new SessionError("invalid_argument", "invalid argument: a call needs at least one target");
    if (targets.length > MAX_TARGETS) throw new SessionError("invalid_argument", "invalid argument: too many targets");
    const seen = new Set<Identifier>();
    for (const target of targets) {
      checkArgument(() => checkIdentifier(target));
      if (target === this._user) throw new SessionError("invalid_argument", "invalid argument: cannot call yourself");
      if (seen.has(target)) throw new SessionError("invalid_argument", "invalid argument: the same target twice");
      seen.add(target);
    }
    let callId: CallId;
    do {
      callId = this.rng.hex128();
    } while (this.calls.has(callId));
    const opts = joinOptions(options);
    const call = new SessionCall(callId, "connecting", "outgoing");
    call._muted = opts.muted;
    call._video = initialVideo(opts.video);
    call._pending = null;
    this.calls.set(callId, call);
    this.transmits.push({ type: "start_call", call_id: callId, targets: [...targets], options: opts });
    this.pushStateChanged(callId);
    return callId;
  }

  /**
   * Joins the group call of `group` (starting it when nobody is in it; with `lobby`,
   * later joiners wait to be admitted). Its id is `group:<group>`.
   * @throws SessionError `not_connected`, `invalid_argument` (bad group id),
   * `invalid_state` when we are in that call already.
   */
  join(group: GroupId, options: Partial<JoinOptions> = {}, lobby = false, _now?: number): CallId {
    this.ensureConnected();
    checkArgument(() => checkGroupId(group));
    const callId = callIdForGroup(group);
    const existing = this.calls.get(callId);
    if (existing && isLive(existing.state)) {
      throw new SessionError("invalid_state", `cannot join call ${callId} in state ${existing.state}`, {
        callId,
        state: existing.state,
      });
    }
    const opts = joinOptions(options);
    const call = new SessionCall(callId, "connecting", "outgoing", { groupId: group });
    call._muted = opts.muted;
    call._video = initialVideo(opts.video);
    call._pending = null;
    this.calls.set(callId, call);
    this.transmits.push({ type: "join", group_id: group, options: opts, lobby });
    this.pushStateChanged(callId);
    return callId;
  }

  /** Answers a call that rings here; it is `connecting` until the server confirms. */
  accept(callId: CallId, options: Partial<JoinOptions> = {}, _now?: number): void {
    const call = this.connectedCall(callId);
    call._request("accept");
    const opts = joinOptions(options);
    call._muted = opts.muted;
    call._video = initialVideo(opts.video);
    this.transmits.push({ type: "accept", call_id: callId, options: opts });
    this.pushStateChanged(callId);
  }

  /** Declines a call that rings here. */
  reject(callId: CallId, _now?: number): void {
    this.connectedCall(callId)._request("reject");
    this.transmits.push({ type: "reject", call_id: callId });
    this.pushStateChanged(callId);
  }

  /** Leaves a call, or with `forEveryone` ends it for every participant. Hanging up a call that rings here declines it. */
  hangUp(callId: CallId, forEveryone = false, _now?: number): void {
    const call = this.connectedCall(callId);
    const ringingHere = call.state === "incoming";
    call._request("hang_up");
    this.transmits.push(
      ringingHere ? { type: "reject", call_id: callId } : { type: "hang_up", call_id: callId, for_everyone: forEveryone },
    );
    this.pushStateChanged(callId);
  }

  /** Puts the call on hold; the server answers with `local_hold`. */
  hold(callId: CallId, _now?: number): void {
    this.simpleCommand(callId, "hold", { type: "hold", call_id: callId });
  }

  /** Takes the call off hold; the server answers with `connected`. */
  resume(callId: CallId, _now?: number): void {
    this.simpleCommand(callId, "resume", { type: "resume", call_id: callId });
  }

  /** Mutes our microphone; `isMuted` changes when the server confirms. */
  mute(callId: CallId, _now?: number): void {
    this.simpleCommand(callId, "media", { type: "mute", call_id: callId });
  }

  /** Unmutes our microphone; `isMuted` changes when the server confirms. */
  unmute(callId: CallId, _now?: number): void {
    this.simpleCommand(callId, "media", { type: "unmute", call_id: callId });
  }

  /**
   * Starts sending video of `kind` at `size` (undefined: not known), or announces a
   * new size for a stream that is on (a source switch that changes resolution).
   * `video` changes at once. Starting a stream that is on at the same size does nothing.
   * @throws SessionError as {@link mute}; `invalid_argument` for a size the protocol
   * refuses; `video_busy` when the other kind is on.
   */
  startVideo(callId: CallId, kind: VideoKind, size?: VideoSize, _now?: number): void {
    const call = this.connectedCall(callId);
    call._request("media");
    if (size !== undefined && !isValidVideoSize(size)) {
      throw new SessionError(
        "invalid_argument",
        "invalid argument: video size must be at least 1x1 and at most 7680x4320 in either orientation",
      );
    }
    const on = call._video.find((s) => s.kind === kind);
    if (on) {
      if (same(on.size, size)) return;
      if (size === undefined) delete on.size;
      else on.size = { width: size.width, height: size.height };
    } else {
      const active = call._video[0];
      if (active !== undefined) {
        throw new SessionError("video_busy", `cannot start ${kind} in call ${callId}: ${active.kind} is already on`, {
          callId,
        });
      }
      call._video.push(size === undefined ? { kind } : { kind, size: { width: size.width, height: size.height } });
    }
    const message: ClientMessage = { type: "start_video", call_id: callId, kind };
    if (size !== undefined) message.size = { width: size.width, height: size.height };
    this.transmits.push(message);
  }

  /** Stops sending video of `kind`. Stopping a stream that is off does nothing. */
  stopVideo(callId: CallId, kind: VideoKind, _now?: number): void {
    const call = this.connectedCall(callId);
    call._request("media");
    if (!call._video.some((s) => s.kind === kind)) return;
    call._video = call._video.filter((s) => s.kind !== kind);
    this.transmits.push({ type: "stop_video", call_id: callId, kind });
  }

  /**
   * Sends DTMF `digits` (1 to 32 of `0-9`, `*`, `#`, `A-D`) to the call's phone
   * participants; the gateway plays them as RFC 4733 events on each phone leg.
   */
  sendDtmf(callId: CallId, digits: string, _now?: number): void {
    if (!/^[0-9*#A-D]{1,32}$/.test(digits)) {
      throw new SessionError("invalid_argument", "invalid argument: DTMF digits are 1 to 32 of 0-9, *, #, A-D");
    }
    this.simpleCommand(callId, "media", { type: "send_dtmf", call_id: callId, digits });
  }

  /** Invites `target` into the call (a 1:1 call becomes a group call). */
  addParticipant(callId: CallId, target: Identifier, _now?: number): void {
    const call = this.connectedCall(callId);
    call._request("invite");
    checkArgument(() => checkIdentifier(target));
    if (target === this._user) throw new SessionError("invalid_argument", "invalid argument: cannot add yourself");
    if (call._participants.has(target)) {
      throw new SessionError("invalid_argument", "invalid argument: already a participant of the call");
    }
    this.transmits.push({ type: "add_participant", call_id: callId, target });
  }

  /** Removes `target` from the call (or refuses them from its lobby). */
  removeParticipant(callId: CallId, target: Identifier, _now?: number): void {
    const call = this.connectedCall(callId);
    call._request("invite");
    if (target === this._user) {
      throw new SessionError("invalid_argument", "invalid argument: cannot remove yourself; hang up instead");
    }
    if (!call._participants.has(target)) {
      throw new SessionError("unknown_participant", `${target} is not a participant of call ${callId}`, { callId });
    }
    this.transmits.push({ type: "remove_participant", call_id: callId, target });
  }

  /** Lets `target`, waiting in the lobby, into the call. */
  admit(callId: CallId, target: Identifier, _now?: number): void {
    const call = this.connectedCall(callId);
    call._request("admit");
    const p = call._participants.get(target);
    if (!p) throw new SessionError("unknown_participant", `${target} is not a participant of call ${callId}`, { callId });
    if (p.state !== "in_lobby") throw new SessionError("invalid_argument", "invalid argument: participant is not in the lobby");
    this.transmits.push({ type: "admit", call_id: callId, target });
  }

  /** Sends a media negotiation payload (SDP) to the media plane. */
  sendMedia(callId: CallId, payload: MediaPayload, _now?: number): void {
    this.simpleCommand(callId, "negotiate", { type: "media", call_id: callId, payload });
  }

  /** Asks for at most `maxVideos` remote camera videos (undefined: server default) with `pinned` first. */
  setVideoPreferences(callId: CallId, maxVideos?: number, pinned?: Identifier, _now?: number): void {
    if (maxVideos !== undefined && !(Number.isInteger(maxVideos) && maxVideos >= 0 && maxVideos <= 255)) {
      throw new SessionError("invalid_argument", "invalid argument: max_videos must be 0 to 255");
    }
    if (pinned !== undefined) checkArgument(() => checkIdentifier(pinned));
    const message: ClientMessage = { type: "video_preferences", call_id: callId };
    if (maxVideos !== undefined) message.max_videos = maxVideos;
    if (pinned !== undefined) message.pinned = pinned;
    this.simpleCommand(callId, "negotiate", message);
  }

  /** Forgets an ended call and returns it. Needs no connection. */
  removeCall(callId: CallId): SessionCall {
    const call = this.calls.get(callId);
    if (!call) throw new SessionError("unknown_call", `unknown call ${callId}`, { callId });
    call._request("remove");
    this.calls.delete(callId);
    return call;
  }

  // ---- outputs ----

  /** The next message to send to the server. */
  pollTransmit(): ClientMessage | undefined {
    return this.transmits.shift();
  }

  /** The next event for the app. */
  pollEvent(): SessionEvent | undefined {
    return this.events.shift();
  }

  /** When {@link handleTimeout} should be called next (ms), if ever. */
  pollTimeout(): number | undefined {
    let min: number | undefined;
    for (const d of this.timers.values()) if (min === undefined || d < min) min = d;
    return min;
  }

  // ---- getters ----

  /** The state of the connection. */
  get connectionState(): ConnectionState {
    return this.state;
  }
  /** Who the server says we are, once authenticated. */
  get user(): Identifier | undefined {
    return this._user;
  }
  /** How long the server keeps a dropped session for us to resume, ms, once known. */
  get resumeGraceMs(): number | undefined {
    return this._resumeGraceMs;
  }
  /** Every call, live and ended, ordered by id. */
  allCalls(): SessionCall[] {
    return [...this.calls.keys()].sort(compareBytes).map((id) => this.calls.get(id)!);
  }
  /** One call. */
  call(id: CallId): SessionCall | undefined {
    return this.calls.get(id);
  }

  // ---- server messages ----

  private onAuthenticated(user: Identifier, resumeToken: string, graceMs: number, resumed: boolean, now: number): void {
    this.state = "connected";
    this._user = user;
    this.resumeToken = resumeToken;
    this._resumeGraceMs = graceMs;
    this.timers.delete("auth_deadline");
    this.timers.set("ping", now + this.pingIntervalMs);
    this.events.push({ type: "authenticated", user, resumed });
    const live = this.allCalls().filter((c) => isLive(c.state));
    if (resumed) {
      const waiting = new Set(live.filter((c) => c.state !== "incoming").map((c) => c.id));
      if (waiting.size > 0) {
        const seq = this.sendPing(now);
        this.resync = { seq, waiting };
      }
    } else {
      // A fresh session: the server no longer has us in any call.
      for (const c of live) this.endCall(c.id, EndReasons.connectionLost());
    }
  }

  private onIncomingCall(callId: CallId, caller: Identifier, video: boolean, groupId: GroupId | undefined): void {
    const existing = this.calls.get(callId);
    if (existing && isLive(existing.state)) return;
    const extra: { caller: Identifier; callerVideo: boolean; groupId?: GroupId } = { caller, callerVideo: video };
    if (groupId !== undefined) extra.groupId = groupId;
    this.calls.set(callId, new SessionCall(callId, "incoming", "incoming", extra));
    const event: SessionEvent = { type: "incoming_call", call_id: callId, caller, video };
    if (groupId !== undefined) event.group_id = groupId;
    this.events.push(event);
  }

  private onCallState(callId: CallId, state: CallState, endReason: EndReason | undefined): void {
    const refreshing = this.markRefreshed(callId);
    const call = this.calls.get(callId);
    if (!call) return;
    if (refreshing && call.state === "disconnecting" && state !== "disconnected") {
      // The resumed session still has us in a call we left: the request was lost with
      // the old connection. Ask again.
      this.transmits.push(
        call._leftWhileRinging()
          ? { type: "reject", call_id: callId }
          : { type: "hang_up", call_id: callId, for_everyone: false },
      );
      return;
    }
    if (call._applyServerState(state, endReason)) this.pushStateChanged(callId);
  }

  private onRoster(callId: CallId, participants: ParticipantInfo[]): void {
    this.markRefreshed(callId);
    const me = this._user;
    const call = this.liveCall(callId);
    if (!call) return;
    const next = new Map<Identifier, ParticipantInfo>();
    for (const p of participants) {
      if (p.id !== me && p.state !== "disconnected") next.set(p.id, p);
    }
    const previous = call._participants;
    call._participants = next;
    for (const id of [...previous.keys()].sort(compareIdentifiers)) {
      if (next.has(id)) continue;
      this.events.push(...videoChanges(callId, id, previous.get(id)!.video, []));
      this.events.push({ type: "participant_removed", call_id: callId, id });
    }
    for (const id of [...next.keys()].sort(compareIdentifiers)) {
      const participant = next.get(id)!;
      const old = previous.get(id);
      if (!old) this.events.push({ type: "participant_added", call_id: callId, participant });
      else if (!same(old, participant)) this.events.push({ type: "participant_updated", call_id: callId, participant });
      this.events.push(...videoChanges(callId, id, old?.video ?? [], participant.video));
    }
  }

  private onParticipant(callId: CallId, participant: ParticipantInfo): void {
    if (participant.id === this._user) return;
    if (participant.state === "disconnected") {
      this.onParticipantLeft(callId, participant.id, participant.end_reason);
      return;
    }
    const call = this.liveCall(callId);
    if (!call) return;
    const old = call._participants.get(participant.id);
    call._participants.set(participant.id, participant);
    if (!old) this.events.push({ type: "participant_added", call_id: callId, participant });
    else if (!same(old, participant)) this.events.push({ type: "participant_updated", call_id: callId, participant });
    else return;
    this.events.push(...videoChanges(callId, participant.id, old?.video ?? [], participant.video));
  }

  private onParticipantLeft(callId: CallId, id: Identifier, reason: EndReason | undefined): void {
    if (id === this._user) return;
    const call = this.liveCall(callId);
    if (!call) return;
    // Reported even for an invitee we never saw (an offline target of a group call).
    const old = call._participants.get(id);
    call._participants.delete(id);
    if (old) this.events.push(...videoChanges(callId, id, old.video, []));
    const event: SessionEvent = { type: "participant_removed", call_id: callId, id };
    if (reason !== undefined) event.reason = reason;
    this.events.push(event);
  }

  private onMuteState(callId: CallId, muted: boolean): void {
    this.markRefreshed(callId);
    const call = this.liveCall(callId);
    if (call && call._muted !== muted) {
      call._muted = muted;
      this.events.push({ type: "mute_changed", call_id: callId, muted });
    }
  }

  private onError(code: ErrorCode, message: string, callId: CallId | undefined): void {
    const event: SessionEvent = { type: "request_failed", code, message };
    if (callId !== undefined) event.call_id = callId;
    this.events.push(event);
    if (callId === undefined) return;
    const call = this.calls.get(callId);
    if (!call || !isLive(call.state)) return;
    const reason = endReasonFor(code, message);
    let changed: boolean;
    if (code === "unknown_call") {
      // The server does not have us in this call: whatever we think, it is over.
      call._end(reason);
      changed = true;
    } else {
      changed = call._revert(reason);
    }
    if (changed) this.pushStateChanged(callId);
  }

  private onPong(seq: number): void {
    if (this.awaitingPong !== undefined && seq >= this.awaitingPong && seq < this.nextPingSeq) {
      this.awaitingPong = undefined;
      this.timers.delete("pong_deadline");
    }
    const resync = this.resync;
    if (resync && seq >= resync.seq && seq < this.nextPingSeq) {
      this.resync = undefined;
      for (const id of [...resync.waiting].sort(compareBytes)) {
        const call = this.calls.get(id);
        if (!call) continue;
        // A call we were leaving ended as asked; any other ended while we were away.
        if (call.state === "disconnected") continue;
        const reason = call.state === "disconnecting" ? EndReasons.normal() : EndReasons.connectionLost();
        this.endCall(id, reason);
      }
    }
  }

  private onGoodbye(reason: EndReason): void {
    this.events.push({ type: "goodbye", reason });
    for (const c of this.allCalls()) if (isLive(c.state)) this.endCall(c.id, reason);
    this.resetConnection();
    this.state = "disconnected";
    this._user = undefined;
    this.resumeToken = undefined;
    this._resumeGraceMs = undefined;
  }

  // ---- helpers ----

  private resetConnection(): void {
    this.transmits.length = 0;
    this.timers.clear();
    this.awaitingPong = undefined;
    this.resync = undefined;
  }

  private sendPing(now: number): number {
    const seq = this.nextPingSeq++;
    this.transmits.push({ type: "ping", seq });
    if (this.awaitingPong === undefined) {
      this.awaitingPong = seq;
      this.timers.set("pong_deadline", now + this.pongTimeoutMs);
    }
    return seq;
  }

  private ensureConnected(): void {
    if (this.state !== "connected") throw new SessionError("not_connected", "not connected to the server");
  }

  private connectedCall(callId: CallId): SessionCall {
    this.ensureConnected();
    const call = this.calls.get(callId);
    if (!call) throw new SessionError("unknown_call", `unknown call ${callId}`, { callId });
    return call;
  }

  private simpleCommand(callId: CallId, action: Action, message: ClientMessage): void {
    this.connectedCall(callId)._request(action);
    this.transmits.push(message);
  }

  private liveCall(callId: CallId): SessionCall | undefined {
    const call = this.calls.get(callId);
    return call && isLive(call.state) ? call : undefined;
  }

  private markRefreshed(callId: CallId): boolean {
    return this.resync ? this.resync.waiting.delete(callId) : false;
  }

  private endCall(callId: CallId, reason: EndReason | undefined): void {
    if (this.calls.has(callId)) {
      this.calls.get(callId)!._end(reason);
      this.pushStateChanged(callId);
    }
  }

  private pushStateChanged(callId: CallId): void {
    const call = this.calls.get(callId);
    if (!call) return;
    const state = call.state;
    const event: SessionEvent = { type: "call_state_changed", call_id: callId, state };
    if (state === "disconnected") {
      call._endedSeq = ++this.endedCount;
      if (call.endReason !== undefined) event.end_reason = call.endReason;
    }
    this.events.push(event);
    if (state === "disconnected") this.pruneEndedCalls();
  }

  private pruneEndedCalls(): void {
    for (;;) {
      const ended = [...this.calls.values()].filter((c) => !isLive(c.state));
      if (ended.length <= MAX_ENDED_CALLS) return;
      const oldest = ended.reduce((a, b) => (b._endedSeq < a._endedSeq ? b : a));
      this.calls.delete(oldest.id);
    }
  }
}

function joinOptions(options: Partial<JoinOptions>): JoinOptions {
  return { muted: options.muted ?? false, video: options.video ?? false };
}

function checkArgument(check: () => unknown): void {
  try {
    check();
  } catch (e) {
    throw new SessionError("invalid_argument", `invalid argument: ${(e as Error).message}`);
  }
}

/**
 * How a remote participant's video went from `old` to `new`: removals, then changes
 * and additions in `new`'s order. The first stream of a kind counts; later entries of
 * the same kind are ignored.
 */
function videoChanges(callId: CallId, participant: Identifier, old: VideoStream[], next: VideoStream[]): SessionEvent[] {
  const find = (streams: VideoStream[], kind: VideoKind) => streams.find((s) => s.kind === kind);
  const distinct = (streams: VideoStream[]) => streams.filter((s) => find(streams, s.kind) === s);
  const events: SessionEvent[] = [];
  for (const stream of distinct(old)) {
    if (!find(next, stream.kind)) {
      events.push({ type: "remote_video_removed", call_id: callId, participant, kind: stream.kind });
    }
  }
  for (const stream of distinct(next)) {
    const before = find(old, stream.kind);
    if (!before) events.push({ type: "remote_video_added", call_id: callId, participant, stream });
    else if (!same(before.size, stream.size)) events.push({ type: "remote_video_changed", call_id: callId, participant, stream });
  }
  return events;
}

/** How a call we set up locally ends when the server refuses the request. */
function endReasonFor(code: ErrorCode, message: string): EndReason {
  switch (code) {
    case "call_full":
      return EndReasons.callFull();
    case "forbidden":
    case "missing_scope":
      return EndReasons.forbidden(message);
    case "unknown_call":
    case "unknown_participant":
      return EndReasons.of(404, 0, message);
    default:
      return EndReasons.of(500, 0, message);
  }
}

/** Validates a call id from the app (SDK entry points use it). */
export function validCallId(id: string): CallId {
  checkArgument(() => checkCallId(id));
  return id;
}
