// Codec cases beyond the shared vectors: serde_json's rules that JSON.parse would get
// wrong, video sizes, and encode-side validation.

import { test } from "node:test";
import assert from "node:assert/strict";

import {
  DecodeError,
  MAX_MESSAGE_SIZE,
  decodeClientMessage,
  decodeServerMessage,
  encodeClientMessage,
  isValidVideoSize,
} from "../src/protocol.js";

function decodeError(input: string | Uint8Array, server = false): string {
  try {
    if (server) decodeServerMessage(input);
    else decodeClientMessage(input);
  } catch (e) {
    assert.ok(e instanceof DecodeError, String(e));
    return e.kind;
  }
  assert.fail(`decoded ${String(input).slice(0, 80)}`);
}

test("integers are judged by their lexeme, as serde_json does", () => {
  assert.equal(decodeError('{"v":1,"type":"ping","seq":1.0}'), "invalid");
  assert.equal(decodeError('{"v":1,"type":"ping","seq":1e2}'), "invalid");
  assert.equal(decodeError('{"v":1.0,"type":"ping","seq":1}'), "malformed");
  assert.deepEqual(decodeClientMessage('{"v":1,"type":"ping","seq":18446744073709551615}'), {
    type: "ping",
    seq: 18446744073709551615,
  });
  assert.equal(decodeError('{"v":18446744073709551616,"type":"ping","seq":1}'), "malformed");
  assert.equal(decodeError('{"v":18446744073709551615,"type":"ping","seq":1}'), "unsupported_version");
  assert.equal(decodeError('{"v":1,"type":"video_preferences","call_id":"c","max_videos":256}'), "invalid");
  assert.equal(decodeError('{"v":1,"type":"goodbye","reason":{"code":1,"subcode":4294967296}}', true), "invalid");
});

test("a field given twice is refused; `v` or `type` twice is malformed", () => {
  assert.equal(decodeError('{"v":1,"type":"ping","seq":1,"seq":2}'), "invalid");
  assert.equal(decodeError('{"v":1,"v":1,"type":"ping","seq":1}'), "malformed");
  assert.equal(decodeError('{"v":1,"type":"ping","type":"ping","seq":1}'), "malformed");
  // Unknown fields may repeat: they are ignored.
  assert.deepEqual(decodeClientMessage('{"v":1,"type":"ping","seq":1,"x":1,"x":2}'), { type: "ping", seq: 1 });
});

test("v and type: null means absent", () => {
  assert.equal(decodeError('{"v":null,"type":"ping","seq":1}'), "missing_version");
  assert.equal(decodeError('{"v":1,"type":null}'), "missing_type");
});

test("serde's other accepted forms: enums as {variant: null}, nested structs as arrays", () => {
  assert.deepEqual(decodeClientMessage('{"v":1,"type":"stop_video","call_id":"c","kind":{"camera":null}}'), {
    type: "stop_video",
    call_id: "c",
    kind: "camera",
  });
  assert.equal(decodeError('{"v":1,"type":"stop_video","call_id":"c","kind":{"camera":1}}'), "invalid");
  assert.deepEqual(decodeServerMessage('{"v":1,"type":"goodbye","reason":[500]}'), {
    type: "goodbye",
    reason: { code: 500, subcode: 0, message: "" },
  });
  assert.equal(decodeError('{"v":1,"type":"goodbye","reason":[500,0,"m","extra"]}', true), "invalid");
  assert.equal(decodeError('{"v":1,"type":"goodbye","reason":[]}', true), "invalid");
  assert.deepEqual(decodeClientMessage('{"v":1,"type":"accept","call_id":"c","options":[true]}'), {
    type: "accept",
    call_id: "c",
    options: { muted: true, video: false },
  });
});

test("null for a field with a default is refused; for an optional field it means unset", () => {
  assert.equal(decodeError('{"v":1,"type":"accept","call_id":"c","options":null}'), "invalid");
  assert.equal(decodeError('{"v":1,"type":"hang_up","call_id":"c","for_everyone":null}'), "invalid");
  assert.deepEqual(decodeClientMessage('{"v":1,"type":"video_preferences","call_id":"c","pinned":null}'), {
    type: "video_preferences",
    call_id: "c",
  });
});

test("text that is not strict JSON is malformed", () => {
  for (const text of [
    '\ufeff{"v":1,"type":"ping","seq":1}', // BOM
    '{"v":1,"type":"ping","seq":1,}', // trailing comma
    "{'v':1}",
    '{"v":1,"type":"ping","seq":01}', // leading zero
    '{"v":1,"type":"auth","token":"\\ud800"}', // lone surrogate escape
    '{"v":1,"type":"auth","token":"a\tb"}', // raw control character
    '{"v":1,"type":"ping","seq":1}\u0000',
    '{"v":1,"x":' + "[".repeat(127) + "]".repeat(127) + "}", // 128 levels: serde_json's limit
  ]) {
    assert.equal(decodeError(text), "malformed", JSON.stringify(text.slice(0, 40)));
  }
  // 127 levels are fine.
  assert.deepEqual(
    decodeClientMessage('{"v":1,"type":"ping","seq":1,"x":' + "[".repeat(126) + "]".repeat(126) + "}"),
    { type: "ping", seq: 1 },
  );
  // Invalid UTF-8 bytes.
  const bytes = new Uint8Array([...new TextEncoder().encode('{"v":1,"type":"auth","token":"'), 0xff, 0x22, 0x7d]);
  assert.equal(decodeError(bytes), "malformed");
});

test("the size limit counts UTF-8 bytes", () => {
  const head = '{"v":1,"type":"auth","token":"';
  const fill = MAX_MESSAGE_SIZE - head.length - 2;
  // é is two bytes: half as many fit.
  assert.equal(decodeError(head + "é".repeat(fill / 2 + 1) + '"}'), "too_large");
  assert.equal(decodeClientMessage(head + "a".repeat(fill) + '"}').type, "auth");
});

test("video sizes: 1x1 to 7680x4320 either way, serde's struct rules", () => {
  assert.ok(isValidVideoSize({ width: 1, height: 1 }));
  assert.ok(isValidVideoSize({ width: 7680, height: 4320 }));
  assert.ok(isValidVideoSize({ width: 4320, height: 7680 }));
  assert.ok(!isValidVideoSize({ width: 0, height: 10 }));
  assert.ok(!isValidVideoSize({ width: 7681, height: 10 }));
  assert.ok(!isValidVideoSize({ width: 4321, height: 4321 }));
  assert.ok(!isValidVideoSize({ width: 1.5, height: 10 }));
  const start = (size: string) => `{"v":1,"type":"start_video","call_id":"c","kind":"camera","size":${size}}`;
  assert.deepEqual(decodeClientMessage(start('{"width":1280,"height":720,"fps":30}')), {
    type: "start_video",
    call_id: "c",
    kind: "camera",
    size: { width: 1280, height: 720 },
  });
  assert.deepEqual(decodeClientMessage(start("[640,480]")).type, "start_video");
  assert.deepEqual(decodeClientMessage(start("null")), { type: "start_video", call_id: "c", kind: "camera" });
  for (const bad of ['{"width":0,"height":720}', '{"width":7681,"height":1}', '{"width":1280}', '{"width":-1,"height":1}']) {
    assert.equal(decodeError(start(bad)), "invalid", bad);
  }
  const participant = (video: string) =>
    `{"v":1,"type":"participant","call_id":"c","participant":{"id":"8:bob","state":"connected","video":${video}}}`;
  assert.deepEqual(decodeServerMessage(participant('[{"kind":"screen_share","size":{"width":1920,"height":1080}}]')), {
    type: "participant",
    call_id: "c",
    participant: {
      id: "8:bob",
      state: "connected",
      muted: false,
      speaking: false,
      video: [{ kind: "screen_share", size: { width: 1920, height: 1080 } }],
    },
  });
  assert.equal(decodeError(participant('[{"kind":"camera","size":{"width":1,"height":0}}]'), true), "invalid");
});

test("encode writes defaults, leaves out unset fields, and refuses what the receiver would", () => {
  assert.deepEqual(JSON.parse(encodeClientMessage({ type: "hang_up", call_id: "c" } as never)), {
    v: 1,
    type: "hang_up",
    call_id: "c",
    for_everyone: false,
  });
  assert.deepEqual(
    JSON.parse(encodeClientMessage({ type: "start_video", call_id: "c", kind: "camera", size: { width: 2, height: 2 } })),
    { v: 1, type: "start_video", call_id: "c", kind: "camera", size: { width: 2, height: 2 } },
  );
  for (const bad of [
    { type: "start_call", call_id: "c", targets: ["bob"], options: { muted: false, video: false } },
    { type: "mute", call_id: "bad id" },
    { type: "ping", seq: -1 },
    { type: "start_video", call_id: "c", kind: "camera", size: { width: 0, height: 2 } },
    { type: "stop_video", call_id: "c", kind: "hologram" },
  ]) {
    assert.throws(
      () => encodeClientMessage(bad as never),
      (e: unknown) => e instanceof DecodeError && e.kind === "invalid",
      JSON.stringify(bad),
    );
  }
});
