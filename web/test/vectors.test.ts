// Runs the protocol test vectors of crates/signaling/tests/vectors/ through the
// TypeScript codec with the expectations of crates/signaling/tests/vectors.rs.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

import {
  CLIENT_MESSAGE_TYPES,
  DecodeError,
  SERVER_MESSAGE_TYPES,
  decodeClientMessage,
  decodeServerMessage,
  encodeClientMessage,
  encodeServerMessage,
  type ClientMessage,
  type ServerMessage,
} from "../src/protocol.js";
import { IdError, checkCallId, checkGroupId, identifierKind } from "../src/ids.js";

/** web/ (this file runs from web/build/test/). */
const WEB = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const VECTORS = path.resolve(WEB, "..", "crates", "signaling", "tests", "vectors");

type Direction = "client" | "server";

interface MessageCase {
  name: string;
  direction?: Direction;
  json: string;
  pad_to?: number;
  valid: boolean;
  canonical?: unknown;
  error?: string;
  code?: string;
}

interface IdCase {
  name: string;
  type: string;
  raw: string;
  valid: boolean;
  kind?: string;
  error?: string;
}

const MESSAGE_CASE_FIELDS = new Set(["name", "direction", "json", "pad_to", "valid", "canonical", "error", "code"]);
const ID_CASE_FIELDS = new Set(["name", "type", "raw", "valid", "kind", "error"]);

function load<T>(file: string, fields: Set<string>): T[] {
  const cases = JSON.parse(readFileSync(path.join(VECTORS, file), "utf8")) as T[];
  assert.ok(Array.isArray(cases) && cases.length > 0, `${file} holds cases`);
  // Like serde's deny_unknown_fields in vectors.rs: a new case field must be handled here.
  for (const c of cases) {
    for (const key of Object.keys(c as object)) assert.ok(fields.has(key), `${file}: unknown case field ${key}`);
  }
  return cases;
}

function decode(direction: Direction, input: string | Uint8Array): ClientMessage | ServerMessage {
  return direction === "client" ? decodeClientMessage(input) : decodeServerMessage(input);
}

function encode(direction: Direction, message: ClientMessage | ServerMessage): string {
  return direction === "client"
    ? encodeClientMessage(message as ClientMessage)
    : encodeServerMessage(message as ServerMessage);
}

/** Runs one case; returns the type of a valid one. */
function runMessageCase(c: MessageCase, direction: Direction): string | undefined {
  let text = c.json;
  if (c.pad_to !== undefined) {
    const size = Buffer.byteLength(text, "utf8");
    assert.ok(c.pad_to >= size, "pad_to is smaller than json");
    text += " ".repeat(c.pad_to - size);
  }
  // Both input forms a WebSocket hands over: text frames and bytes.
  for (const input of [text, new TextEncoder().encode(text)]) {
    let decoded: ClientMessage | ServerMessage | undefined;
    let error: unknown;
    try {
      decoded = decode(direction, input);
    } catch (e) {
      error = e;
    }
    if (!c.valid) {
      assert.equal(decoded, undefined, `decoded a message from an invalid vector: ${JSON.stringify(decoded)}`);
      assert.ok(error instanceof DecodeError, `not a DecodeError: ${String(error)}`);
      assert.equal(error.kind, c.error, `error ${error.message} (${error.kind}) is not ${c.error}`);
      assert.equal(error.code(), c.code, `wire code ${error.code()} is not ${c.code}`);
      continue;
    }
    assert.equal(c.error, undefined);
    assert.equal(c.code, undefined);
    if (error !== undefined) assert.fail(`valid vector failed to decode: ${String(error)}`);
    const msg = decoded!;
    assert.ok(c.canonical !== undefined, "valid case without canonical");
    const encoded = JSON.parse(encode(direction, msg));
    assert.deepStrictEqual(encoded, c.canonical, "re-encoded is not the canonical form");
    assert.equal((c.canonical as { type: string }).type, msg.type);
    // The canonical form is itself a valid encoding of the same message.
    const again = decode(direction, JSON.stringify(c.canonical));
    assert.deepStrictEqual(again, msg, "canonical form decodes to another message");
  }
  return c.valid ? (c.canonical as { type: string }).type : undefined;
}

function runMessageFile(file: string, direction: Direction): Set<string> {
  const seen = new Set<string>();
  for (const c of load<MessageCase>(file, MESSAGE_CASE_FIELDS)) {
    assert.ok(c.direction === undefined || c.direction === direction, `${c.name}: direction does not match the file`);
    try {
      const kind = runMessageCase(c, direction);
      if (kind !== undefined) seen.add(kind);
    } catch (e) {
      throw new Error(`${file}: ${c.name}: ${(e as Error).message}`);
    }
  }
  return seen;
}

test("client message vectors", () => {
  const seen = runMessageFile("client_messages.json", "client");
  const missing = CLIENT_MESSAGE_TYPES.filter((t) => !seen.has(t));
  assert.deepEqual(missing, [], "client types without a vector");
});

test("server message vectors", () => {
  const seen = runMessageFile("server_messages.json", "server");
  const missing = SERVER_MESSAGE_TYPES.filter((t) => !seen.has(t));
  assert.deepEqual(missing, [], "server types without a vector");
});

test("invalid vectors", () => {
  const errors = new Set<string>();
  for (const c of load<MessageCase>("invalid.json", MESSAGE_CASE_FIELDS)) {
    assert.equal(c.valid, false, `${c.name}: invalid.json holds only invalid cases`);
    assert.ok(c.direction, `${c.name}: invalid cases need a direction`);
    try {
      runMessageCase(c, c.direction);
    } catch (e) {
      throw new Error(`invalid.json: ${c.name}: ${(e as Error).message}`);
    }
    errors.add(c.error ?? "");
  }
  for (const kind of ["too_large", "malformed", "missing_version", "unsupported_version", "missing_type", "unknown_type", "invalid"]) {
    assert.ok(errors.has(kind), `no invalid vector for ${kind}`);
  }
});

test("identifier vectors", () => {
  for (const c of load<IdCase>("identifiers.json", ID_CASE_FIELDS)) {
    const where = `${c.name} (${JSON.stringify(c.raw)})`;
    let shown: string | undefined;
    let error: unknown;
    try {
      switch (c.type) {
        case "identifier":
          shown = `${identifierKind(c.raw)} ${c.raw}`;
          break;
        case "call_id":
          shown = checkCallId(c.raw);
          break;
        case "group_id":
          shown = checkGroupId(c.raw);
          break;
        default:
          assert.fail(`unknown identifier type ${c.type}`);
      }
    } catch (e) {
      error = e;
    }
    if (c.valid) {
      assert.equal(error, undefined, `${where}: refused: ${String(error)}`);
      const expected = c.kind !== undefined ? `${c.kind} ${c.raw}` : c.raw;
      assert.equal(shown, expected, where);
    } else {
      assert.equal(shown, undefined, `${where}: accepted as ${shown}`);
      assert.ok(error instanceof IdError, `${where}: ${String(error)}`);
      assert.equal(error.code, c.error, `${where}: ${error.message}`);
    }
  }
});
