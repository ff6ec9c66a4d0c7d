// The wire protocol, mirroring crates/signaling/src/protocol.rs: versioned JSON
// messages between clients and the server. docs/protocol.md documents every message;
// crates/signaling/tests/vectors/ holds the test vectors this module passes too
// (test/vectors.test.ts).
//
// Decoding follows the Rust decoder step by step, so both sides refuse the same bytes
// with the same error: size, object, `v` present, `v == 1`, `type` present, `type`
// known for the direction, then the fields (serde's rules: unknown fields ignored,
// absent or `null` optional fields unset, fields with a default may be absent, a field
// given twice refused, integers checked against their Rust type's range).

import { JsonNumber, JsonObject, type JsonValue, parseJson } from "./json.js";
import {
  type CallId,
  type GroupId,
  type Identifier,
  type PhoneNumber,
  IdError,
  checkCallId,
  checkGroupId,
  checkIdentifier,
  checkPhoneNumber,
  utf8Length,
} from "./ids.js";

/** The protocol version this SDK speaks. */
export const PROTOCOL_VERSION = 1;

/** Largest encoded message accepted, in bytes (256 KiB). */
export const MAX_MESSAGE_SIZE = 256 * 1024;

// ---- shared types ----

/** What kind of client is connected; the media plane applies per-kind limits. */
export type ClientKind = "native" | "web";
/** Every {@link ClientKind}. */
export const CLIENT_KINDS: readonly ClientKind[] = ["native", "web"];

/** How a participant enters a call. */
export interface JoinOptions {
  /** Join with the microphone muted. */
  muted: boolean;
  /** Join with the camera on. */
  video: boolean;
}

/** A video stream a participant sends. */
export type VideoKind = "camera" | "screen_share";
/** Every {@link VideoKind}. */
export const VIDEO_KINDS: readonly VideoKind[] = ["camera", "screen_share"];

/** Longest side of a {@link VideoSize} accepted, in pixels (8K UHD, either orientation). */
export const MAX_VIDEO_LONG_SIDE = 7680;
/** Shortest side of a {@link VideoSize} accepted, in pixels (8K UHD, either orientation). */
export const MAX_VIDEO_SHORT_SIDE = 4320;

/**
 * The size of a video stream in pixels, as its sender encodes it, so that receivers
 * can lay out renderers before the first frame. Valid: at least 1x1, at most
 * 7680x4320 in either orientation ({@link isValidVideoSize}).
 */
export interface VideoSize {
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
}

/** Whether the protocol accepts `size` (mirrors `VideoSize::is_valid`). */
export function isValidVideoSize(size: VideoSize): boolean {
  const { width, height } = size;
  if (![width, height].every((n) => Number.isInteger(n) && n >= 0 && n <= 0xffffffff)) return false;
  const [long, short] = width >= height ? [width, height] : [height, width];
  return short >= 1 && long <= MAX_VIDEO_LONG_SIDE && short <= MAX_VIDEO_SHORT_SIDE;
}

/** A video stream a participant sends: its kind and, when the sender said, its size. */
export interface VideoStream {
  /** Camera or screen share. */
  kind: VideoKind;
  /** The size the sender encodes at; absent when it did not say. */
  size?: VideoSize;
}

/** One video receive slot (a `recvonly` video section we offered) and what it shows. */
export interface VideoSlot {
  /** The section's `a=mid`. */
  mid: string;
  /** Whose video it shows; absent when idle. */
  participant?: Identifier;
  /** Camera or screen share; absent when idle. */
  kind?: VideoKind;
}

/** Offer or answer. */
export type MediaPayloadKind = "offer" | "answer";
/** Every {@link MediaPayloadKind}. */
export const MEDIA_PAYLOAD_KINDS: readonly MediaPayloadKind[] = ["offer", "answer"];

/** An SDP offer or answer, carried between a client and the media plane untouched. */
export interface MediaPayload {
  /** Offer or answer. */
  kind: MediaPayloadKind;
  /** The SDP text. */
  sdp: string;
}

/** The state of a call as one participant sees it. */
export type CallState =
  | "none"
  | "early_media"
  | "incoming"
  | "connecting"
  | "ringing"
  | "connected"
  | "local_hold"
  | "remote_hold"
  | "in_lobby"
  | "disconnecting"
  | "disconnected";
/** Every {@link CallState}. */
export const CALL_STATES: readonly CallState[] = [
  "none",
  "early_media",
  "incoming",
  "connecting",
  "ringing",
  "connected",
  "local_hold",
  "remote_hold",
  "in_lobby",
  "disconnecting",
  "disconnected",
];

/** The state of a remote participant. */
export type ParticipantState =
  | "idle"
  | "early_media"
  | "connecting"
  | "ringing"
  | "connected"
  | "hold"
  | "in_lobby"
  | "disconnected";
/** Every {@link ParticipantState}. */
export const PARTICIPANT_STATES: readonly ParticipantState[] = [
  "idle",
  "early_media",
  "connecting",
  "ringing",
  "connected",
  "hold",
  "in_lobby",
  "disconnected",
];

/** Why a call or a participant ended, with SIP-like codes. */
export interface EndReason {
  /** 0 normal, 403, 404, 408, 410, 480, 486, 487, 500, 603. */
  code: number;
  /** Tells apart reasons that share a code. */
  subcode: number;
  /** For people. */
  message: string;
}

/** A remote participant as a roster shows it. */
export interface ParticipantInfo {
  /** Who. */
  id: Identifier;
  /** Their state. */
  state: ParticipantState;
  /** Whether their microphone is muted. */
  muted: boolean;
  /** Whether they are speaking now. */
  speaking: boolean;
  /** The video streams they send, at most one per kind (omitted on the wire when empty). */
  video: VideoStream[];
  /** Why they left, once they have. */
  end_reason?: EndReason;
}

/** What went wrong with a request, in a server `error`. */
export type ErrorCode =
  | "malformed"
  | "unknown_type"
  | "unsupported_version"
  | "too_large"
  | "not_authenticated"
  | "already_authenticated"
  | "invalid_token"
  | "token_expired"
  | "missing_scope"
  | "token_revoked"
  | "too_many_connections"
  | "resume_failed"
  | "unknown_call"
  | "call_exists"
  | "invalid_state"
  | "unknown_participant"
  | "already_in_call"
  | "call_full"
  | "forbidden"
  | "rate_limited"
  | "internal";
/** Every {@link ErrorCode}, in the Rust declaration order. */
export const ERROR_CODES: readonly ErrorCode[] = [
  "malformed",
  "unknown_type",
  "unsupported_version",
  "too_large",
  "not_authenticated",
  "already_authenticated",
  "invalid_token",
  "token_expired",
  "missing_scope",
  "token_revoked",
  "too_many_connections",
  "resume_failed",
  "unknown_call",
  "call_exists",
  "invalid_state",
  "unknown_participant",
  "already_in_call",
  "call_full",
  "forbidden",
  "rate_limited",
  "internal",
];

// ---- messages ----

/** A message from a client to the server. */
export type ClientMessage =
  | { type: "auth"; token: string; resume?: string; client: ClientKind }
  | {
      type: "start_call";
      call_id: CallId;
      targets: Identifier[];
      options: JoinOptions;
      alternate_caller_id?: PhoneNumber;
    }
  | { type: "join"; group_id: GroupId; options: JoinOptions; lobby: boolean }
  | { type: "accept"; call_id: CallId; options: JoinOptions }
  | { type: "reject"; call_id: CallId }
  | { type: "hang_up"; call_id: CallId; for_everyone: boolean }
  | { type: "hold"; call_id: CallId }
  | { type: "resume"; call_id: CallId }
  | { type: "mute"; call_id: CallId }
  | { type: "unmute"; call_id: CallId }
  | { type: "start_video"; call_id: CallId; kind: VideoKind; size?: VideoSize }
  | { type: "stop_video"; call_id: CallId; kind: VideoKind }
  | { type: "add_participant"; call_id: CallId; target: Identifier }
  | { type: "remove_participant"; call_id: CallId; target: Identifier }
  | { type: "admit"; call_id: CallId; target: Identifier }
  | { type: "media"; call_id: CallId; payload: MediaPayload }
  | { type: "video_preferences"; call_id: CallId; max_videos?: number; pinned?: Identifier }
  | { type: "ping"; seq: number }
  | { type: "send_dtmf"; call_id: CallId; digits: string };

/** A message from the server to a client. */
export type ServerMessage =
  | { type: "authenticated"; user: Identifier; resume_token: string; grace_ms: number; resumed: boolean }
  | { type: "incoming_call"; call_id: CallId; caller: Identifier; video: boolean; group_id?: GroupId }
  | { type: "call_state"; call_id: CallId; state: CallState; end_reason?: EndReason }
  | { type: "roster"; call_id: CallId; participants: ParticipantInfo[] }
  | { type: "participant"; call_id: CallId; participant: ParticipantInfo }
  | { type: "participant_left"; call_id: CallId; id: Identifier; reason: EndReason }
  | { type: "mute_state"; call_id: CallId; muted: boolean }
  | { type: "dominant_speakers"; call_id: CallId; speakers: Identifier[] }
  | { type: "media"; call_id: CallId; payload: MediaPayload }
  | { type: "video_slots"; call_id: CallId; slots: VideoSlot[] }
  | { type: "error"; code: ErrorCode; message: string; call_id?: CallId }
  | { type: "pong"; seq: number }
  | { type: "goodbye"; reason: EndReason }
  | { type: "dtmf"; call_id: CallId; from: Identifier; digits: string };

/** A client message's `type`. */
export type ClientMessageType = ClientMessage["type"];
/** A server message's `type`. */
export type ServerMessageType = ServerMessage["type"];

/** Every client message `type`, in declaration order. */
export const CLIENT_MESSAGE_TYPES: readonly ClientMessageType[] = [
  "auth",
  "start_call",
  "join",
  "accept",
  "reject",
  "hang_up",
  "hold",
  "resume",
  "mute",
  "unmute",
  "start_video",
  "stop_video",
  "add_participant",
  "remove_participant",
  "admit",
  "media",
  "video_preferences",
  "ping",
  "send_dtmf",
];

/** Every server message `type`, in declaration order. */
export const SERVER_MESSAGE_TYPES: readonly ServerMessageType[] = [
  "authenticated",
  "incoming_call",
  "call_state",
  "roster",
  "participant",
  "participant_left",
  "mute_state",
  "dominant_speakers",
  "media",
  "video_slots",
  "error",
  "pong",
  "goodbye",
  "dtmf",
];

// ---- errors ----

/** Why a message could not be decoded; the names match the test vectors. */
export type DecodeErrorKind =
  | "too_large"
  | "malformed"
  | "missing_version"
  | "unsupported_version"
  | "missing_type"
  | "unknown_type"
  | "invalid";

/** A message that could not be decoded (or, from `encode`, a message that is not valid). */
export class DecodeError extends Error {
  /** What is wrong. */
  readonly kind: DecodeErrorKind;
  /** The message type, for `invalid` and `unknown_type`. */
  readonly messageType: string | undefined;
  constructor(kind: DecodeErrorKind, message: string, messageType?: string) {
    super(message);
    this.name = "DecodeError";
    this.kind = kind;
    this.messageType = messageType;
  }

  /** The error code to report to the peer that sent the bad message. */
  code(): ErrorCode {
    switch (this.kind) {
      case "too_large":
        return "too_large";
      case "unsupported_version":
        return "unsupported_version";
      case "unknown_type":
        return "unknown_type";
      default:
        return "malformed";
    }
  }
}

/** A field that does not fit its type; becomes `DecodeError("invalid")`. */
class FieldError extends Error {}

// ---- codecs: serde's rules for each Rust type ----

interface Codec<T> {
  read(v: JsonValue, path: string): T;
  write(t: T): unknown;
}

function fail(path: string, what: string): never {
  throw new FieldError(`${path}: ${what}`);
}

function describe(v: JsonValue): string {
  if (v === null) return "null";
  if (v instanceof JsonNumber) return `number ${v.raw}`;
  if (v instanceof JsonObject) return "an object";
  if (Array.isArray(v)) return "an array";
  return `${typeof v} ${JSON.stringify(v)}`;
}

function uint(bits: 8 | 16 | 32 | 64): Codec<number> {
  const max = (1n << BigInt(bits)) - 1n;
  return {
    read(v, path) {
      if (!(v instanceof JsonNumber) || !v.isInteger()) fail(path, `expected u${bits}, got ${describe(v)}`);
      const n = BigInt(v.raw);
      if (n < 0n || n > max) fail(path, `${v.raw} is out of range for u${bits}`);
      return Number(n);
    },
    write: (t) => t,
  };
}

const u8 = uint(8);
const u16 = uint(16);
const u32 = uint(32);
const u64 = uint(64);

const bool: Codec<boolean> = {
  read(v, path) {
    if (typeof v !== "boolean") fail(path, `expected a boolean, got ${describe(v)}`);
    return v;
  },
  write: (t) => t,
};

const str: Codec<string> = {
  read(v, path) {
    if (typeof v !== "string") fail(path, `expected a string, got ${describe(v)}`);
    return v;
  },
  write: (t) => t,
};

function checked(check: (s: string) => string): Codec<string> {
  return {
    read(v, path) {
      const s = str.read(v, path);
      try {
        return check(s);
      } catch (e) {
        if (e instanceof IdError) fail(path, e.message);
        throw e;
      }
    },
    write: (t) => t,
  };
}

const identifier = checked(checkIdentifier);
const callId = checked(checkCallId);
const groupId = checked(checkGroupId);
const phoneNumber = checked(checkPhoneNumber);

/** A unit-variant enum: a string, or (serde) an object `{"variant": null}`. */
function enumOf<T extends string>(values: readonly T[]): Codec<T> {
  return {
    read(v, path) {
      let name: string;
      if (typeof v === "string") name = v;
      else if (v instanceof JsonObject && v.entries.length === 1 && v.entries[0]![1] === null) name = v.entries[0]![0];
      else fail(path, `expected one of ${values.join(", ")}, got ${describe(v)}`);
      if (!(values as readonly string[]).includes(name)) fail(path, `unknown variant ${JSON.stringify(name)}`);
      return name as T;
    },
    write: (t) => t,
  };
}

function arrayOf<T>(item: Codec<T>): Codec<T[]> {
  return {
    read(v, path) {
      if (!Array.isArray(v)) fail(path, `expected an array, got ${describe(v)}`);
      return v.map((x, i) => item.read(x, `${path}[${i}]`));
    },
    write: (t) => t.map((x) => item.write(x)),
  };
}

/** How a struct field behaves when absent, and when written. */
type Mode =
  /** Must be present (and not null). */
  | "required"
  /** `#[serde(default)]`: may be absent; always written. */
  | "default"
  /** `Option<T>`: absent or null means unset; omitted when unset. */
  | "option"
  /** `#[serde(default, skip_serializing_if = "Vec::is_empty")]`. */
  | "skip_empty";

interface Field {
  key: string;
  codec: Codec<any>;
  mode: Mode;
  def?: () => unknown;
}

function field(key: string, codec: Codec<any>, mode: Mode = "required", def?: () => unknown): Field {
  return def === undefined ? { key, codec, mode } : { key, codec, mode, def };
}

/**
 * A struct. From an object: unknown keys ignored, a known key twice refused. Nested
 * structs may also come as an array of their fields in declaration order (serde
 * accepts that too); the top-level message never does (it must be an object).
 */
function struct<T>(name: string, fields: Field[], allowSeq = true): Codec<T> {
  return {
    read(v, path) {
      const out: Record<string, unknown> = {};
      if (v instanceof JsonObject) {
        const seen = new Set<string>();
        for (const [key, value] of v.entries) {
          const f = fields.find((f) => f.key === key);
          if (!f) continue;
          if (seen.has(key)) fail(path, `duplicate field \`${key}\``);
          seen.add(key);
          if (f.mode === "option" && value === null) continue;
          out[key] = f.codec.read(value, `${path}.${key}`);
        }
        for (const f of fields) {
          if (seen.has(f.key)) continue;
          if (f.mode === "required") fail(path, `missing field \`${f.key}\``);
          if (f.mode === "default" || f.mode === "skip_empty") out[f.key] = f.def!();
        }
      } else if (allowSeq && Array.isArray(v)) {
        if (v.length > fields.length) fail(path, `invalid length ${v.length}, expected struct ${name} with ${fields.length} elements`);
        fields.forEach((f, i) => {
          if (i >= v.length) {
            if (f.mode === "required") fail(path, `invalid length ${v.length}, expected struct ${name}`);
            if (f.mode !== "option") out[f.key] = f.def!();
            return;
          }
          const value = v[i]!;
          if (f.mode === "option" && value === null) return;
          out[f.key] = f.codec.read(value, `${path}[${i}]`);
        });
      } else {
        fail(path, `expected struct ${name}, got ${describe(v)}`);
      }
      // Fields in declaration order, whatever the wire order was.
      const ordered: Record<string, unknown> = {};
      for (const f of fields) if (f.key in out) ordered[f.key] = out[f.key];
      return ordered as T;
    },
    write(t) {
      const src = t as Record<string, unknown>;
      const out: Record<string, unknown> = {};
      for (const f of fields) {
        let value = src[f.key];
        if (f.mode === "option" && (value === undefined || value === null)) continue;
        if (f.mode === "skip_empty" && (value === undefined || (Array.isArray(value) && value.length === 0))) continue;
        if (value === undefined && f.mode === "default") value = f.def!();
        out[f.key] = value === undefined ? undefined : f.codec.write(value);
      }
      return out;
    },
  };
}

const joinOptions = struct<JoinOptions>("JoinOptions", [
  field("muted", bool, "default", () => false),
  field("video", bool, "default", () => false),
]);
const defaultJoinOptions = (): JoinOptions => ({ muted: false, video: false });

const videoKind = enumOf(VIDEO_KINDS);

/** `#[serde(try_from = "RawVideoSize")]`: a {width, height} struct, then the range check. */
const rawVideoSize = struct<VideoSize>("RawVideoSize", [field("width", u32), field("height", u32)]);
const videoSize: Codec<VideoSize> = {
  read(v, path) {
    const size = rawVideoSize.read(v, path);
    if (!isValidVideoSize(size)) {
      fail(
        path,
        `video size ${size.width}x${size.height} is out of range (1x1 to ${MAX_VIDEO_LONG_SIDE}x${MAX_VIDEO_SHORT_SIDE}, either orientation)`,
      );
    }
    return size;
  },
  write: (t) => rawVideoSize.write(t),
};

const videoStream = struct<VideoStream>("VideoStream", [field("kind", videoKind), field("size", videoSize, "option")]);

const videoSlot = struct<VideoSlot>("VideoSlot", [
  field("mid", str),
  field("participant", identifier, "option"),
  field("kind", videoKind, "option"),
]);

const mediaPayload = struct<MediaPayload>("MediaPayload", [
  field("kind", enumOf(MEDIA_PAYLOAD_KINDS)),
  field("sdp", str),
]);

const endReason = struct<EndReason>("EndReason", [
  field("code", u16),
  field("subcode", u32, "default", () => 0),
  field("message", str, "default", () => ""),
]);

const participantInfo = struct<ParticipantInfo>("ParticipantInfo", [
  field("id", identifier),
  field("state", enumOf(PARTICIPANT_STATES)),
  field("muted", bool, "default", () => false),
  field("speaking", bool, "default", () => false),
  field("video", arrayOf(videoStream), "skip_empty", () => []),
  field("end_reason", endReason, "option"),
]);

const callIdField = field("call_id", callId);
const joinOptionsField = field("options", joinOptions, "default", defaultJoinOptions);

const CLIENT_FIELDS: Record<ClientMessageType, Field[]> = {
  auth: [field("token", str), field("resume", str, "option"), field("client", enumOf(CLIENT_KINDS), "default", () => "native")],
  start_call: [
    callIdField,
    field("targets", arrayOf(identifier)),
    joinOptionsField,
    field("alternate_caller_id", phoneNumber, "option"),
  ],
  join: [field("group_id", groupId), joinOptionsField, field("lobby", bool, "default", () => false)],
  accept: [callIdField, joinOptionsField],
  reject: [callIdField],
  hang_up: [callIdField, field("for_everyone", bool, "default", () => false)],
  hold: [callIdField],
  resume: [callIdField],
  mute: [callIdField],
  unmute: [callIdField],
  start_video: [callIdField, field("kind", videoKind), field("size", videoSize, "option")],
  stop_video: [callIdField, field("kind", videoKind)],
  add_participant: [callIdField, field("target", identifier)],
  remove_participant: [callIdField, field("target", identifier)],
  admit: [callIdField, field("target", identifier)],
  media: [callIdField, field("payload", mediaPayload)],
  video_preferences: [callIdField, field("max_videos", u8, "option"), field("pinned", identifier, "option")],
  ping: [field("seq", u64)],
  send_dtmf: [callIdField, field("digits", str)],
};

const SERVER_FIELDS: Record<ServerMessageType, Field[]> = {
  authenticated: [field("user", identifier), field("resume_token", str), field("grace_ms", u64), field("resumed", bool)],
  incoming_call: [callIdField, field("caller", identifier), field("video", bool), field("group_id", groupId, "option")],
  call_state: [callIdField, field("state", enumOf(CALL_STATES)), field("end_reason", endReason, "option")],
  roster: [callIdField, field("participants", arrayOf(participantInfo))],
  participant: [callIdField, field("participant", participantInfo)],
  participant_left: [callIdField, field("id", identifier), field("reason", endReason)],
  mute_state: [callIdField, field("muted", bool)],
  dominant_speakers: [callIdField, field("speakers", arrayOf(identifier))],
  media: [callIdField, field("payload", mediaPayload)],
  video_slots: [callIdField, field("slots", arrayOf(videoSlot))],
  error: [field("code", enumOf(ERROR_CODES)), field("message", str), field("call_id", callId, "option")],
  pong: [field("seq", u64)],
  goodbye: [field("reason", endReason)],
  dtmf: [callIdField, field("from", identifier), field("digits", str)],
};

const CLIENT_CODECS = codecs(CLIENT_FIELDS);
const SERVER_CODECS = codecs(SERVER_FIELDS);

function codecs<K extends string>(table: Record<K, Field[]>): Map<string, Codec<Record<string, unknown>>> {
  const out = new Map<string, Codec<Record<string, unknown>>>();
  for (const [type, fields] of Object.entries(table) as Array<[K, Field[]]>) {
    out.set(type, struct(type, fields, false));
  }
  return out;
}

// ---- decode / encode ----

/** Bytes or text of one message. */
export type Wire = string | Uint8Array | ArrayBuffer;

function toText(input: Wire): { text: string; size: number } {
  if (typeof input === "string") return { text: input, size: utf8Length(input) };
  const bytes = input instanceof Uint8Array ? input : new Uint8Array(input);
  if (bytes.length > MAX_MESSAGE_SIZE) return { text: "", size: bytes.length };
  try {
    // fatal: invalid UTF-8 is malformed; ignoreBOM: keep a BOM, which JSON refuses.
    return { text: new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes), size: bytes.length };
  } catch {
    throw new DecodeError("malformed", "message is not valid UTF-8");
  }
}

function decode(input: Wire, table: Map<string, Codec<Record<string, unknown>>>): Record<string, unknown> {
  const { text, size } = toText(input);
  if (size > MAX_MESSAGE_SIZE) {
    throw new DecodeError("too_large", `message of ${size} bytes is larger than the limit of ${MAX_MESSAGE_SIZE}`);
  }
  let root: JsonValue;
  try {
    root = parseJson(text);
  } catch (e) {
    throw new DecodeError("malformed", `message is not a JSON object: ${(e as Error).message}`);
  }
  if (!(root instanceof JsonObject)) {
    throw new DecodeError("malformed", "message is not a JSON object: expected a JSON object");
  }
  // The header first, as Rust reads `v` and `type` before the body.
  let v: JsonValue | undefined;
  let kind: JsonValue | undefined;
  let seenV = false;
  let seenType = false;
  for (const [key, value] of root.entries) {
    if (key === "v") {
      if (seenV) throw new DecodeError("malformed", "duplicate field `v`");
      seenV = true;
      v = value;
    } else if (key === "type") {
      if (seenType) throw new DecodeError("malformed", "duplicate field `type`");
      seenType = true;
      kind = value;
    }
  }
  let version: bigint | undefined;
  if (v !== undefined && v !== null) {
    if (!(v instanceof JsonNumber) || !v.isInteger() || BigInt(v.raw) < 0n || BigInt(v.raw) >= 1n << 64n) {
      throw new DecodeError("malformed", `\`v\` must be an unsigned integer, got ${describe(v)}`);
    }
    version = BigInt(v.raw);
  }
  if (kind !== undefined && kind !== null && typeof kind !== "string") {
    throw new DecodeError("malformed", `\`type\` must be a string, got ${describe(kind)}`);
  }
  if (version === undefined) throw new DecodeError("missing_version", "message has no protocol version `v`");
  if (version !== BigInt(PROTOCOL_VERSION)) {
    throw new DecodeError(
      "unsupported_version",
      `protocol version ${version} is not supported (this side speaks ${PROTOCOL_VERSION})`,
    );
  }
  if (kind === undefined || kind === null) throw new DecodeError("missing_type", "message has no `type`");
  const codec = table.get(kind);
  if (!codec) throw new DecodeError("unknown_type", `unknown message type ${JSON.stringify(kind)}`, kind);
  try {
    const body = codec.read(root, kind);
    return { type: kind, ...body };
  } catch (e) {
    if (e instanceof FieldError) throw new DecodeError("invalid", `invalid ${kind} message: ${e.message}`, kind);
    throw e;
  }
}

function encode(message: { type: string }, table: Map<string, Codec<Record<string, unknown>>>): string {
  const codec = table.get(message.type);
  if (!codec) throw new DecodeError("unknown_type", `unknown message type ${JSON.stringify(message.type)}`, message.type);
  const body = codec.write(message as unknown as Record<string, unknown>) as Record<string, unknown>;
  const text = JSON.stringify({ v: PROTOCOL_VERSION, type: message.type, ...body });
  // Check what we are about to send with the receiver's rules (the size limit aside):
  // an SDK user's bad identifier fails here, not on the server.
  try {
    codec.read(parseJson(text), message.type);
  } catch (e) {
    if (e instanceof FieldError) {
      throw new DecodeError("invalid", `invalid ${message.type} message: ${e.message}`, message.type);
    }
    throw e;
  }
  return text;
}

/** Decodes one client message (what the server reads). */
export function decodeClientMessage(input: Wire): ClientMessage {
  return decode(input, CLIENT_CODECS) as ClientMessage;
}

/** Decodes one server message (what a client reads). */
export function decodeServerMessage(input: Wire): ServerMessage {
  return decode(input, SERVER_CODECS) as ServerMessage;
}

/**
 * Encodes a client message as JSON text with the protocol version, defaults written
 * and unset optional fields left out.
 *
 * @throws DecodeError (`invalid`) when the message breaks the protocol's rules (a bad
 * identifier, a number out of range).
 */
export function encodeClientMessage(message: ClientMessage): string {
  return encode(message, CLIENT_CODECS);
}

/** Encodes a server message; see {@link encodeClientMessage}. */
export function encodeServerMessage(message: ServerMessage): string {
  return encode(message, SERVER_CODECS);
}

// ---- end reasons ----

function reason(code: number, subcode: number, message: string): EndReason {
  return { code, subcode, message };
}

/** The end reasons the server sends, as constructors (mirrors `EndReason::*` in Rust). */
export const EndReasons = {
  /** The participant hung up. */
  normal: () => reason(0, 0, "call ended"),
  /** Someone ended the call for everyone. */
  endedForEveryone: () => reason(0, 5000, "call ended for everyone"),
  /** Another participant removed this one. */
  removed: () => reason(0, 5300, "removed from the call by another participant"),
  /** Another device of the same user answered. */
  answeredElsewhere: () => reason(0, 5100, "answered on another device"),
  /** The other side of a 1:1 call hung up. */
  remoteHungUp: () => reason(0, 5001, "the other participant hung up"),
  /** The session was resumed on a newer connection. */
  resumedElsewhere: () => reason(0, 5200, "session resumed on another connection"),
  /** Nobody answered before the ring timeout. */
  noAnswer: () => reason(408, 0, "no answer"),
  /** The connection dropped and was not resumed within the grace period. */
  connectionLost: () => reason(408, 4100, "connection lost and not resumed in time"),
  /** The callee has no connected client. */
  unavailable: () => reason(480, 0, "the callee is not available"),
  /** The callee is busy. */
  busy: () => reason(486, 0, "busy"),
  /** The caller cancelled before the callee answered. */
  cancelled: () => reason(487, 0, "call cancelled"),
  /** The callee declined. */
  declined: () => reason(603, 0, "call declined"),
  /** The request is not allowed. */
  forbidden: (message: string) => reason(403, 0, message),
  /** The group call is full. */
  callFull: () => reason(403, 4030, "the call is full"),
  /** The target is not known. */
  notFound: () => reason(404, 0, "no such participant"),
  /** Media could not be set up or failed. */
  mediaFailure: () => reason(410, 0, "media failure"),
  /** The server failed. */
  serverError: () => reason(500, 0, "server error"),
  /** The server is shutting down. */
  shuttingDown: () => reason(500, 5030, "server shutting down"),
  /** The identity's tokens were revoked. */
  revoked: () => reason(403, 4032, "access revoked"),
  /** Someone waiting in the lobby was refused. */
  lobbyRefused: () => reason(403, 5310, "not admitted from the lobby"),
  /** Any reason. */
  of: reason,
} as const;
