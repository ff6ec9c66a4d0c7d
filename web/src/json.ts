// A strict JSON reader that keeps what `JSON.parse` throws away: number lexemes (so
// that `1.0`, `-1` and integers beyond 2^53 are judged like serde_json judges them)
// and duplicate keys (serde refuses a field given twice). Same grammar as RFC 8259 and
// serde_json: no BOM, no comments, no trailing commas, at most 127 nested levels.

/** A JSON number as written on the wire. */
export class JsonNumber {
  /** The lexeme, e.g. `-1`, `3.5e2`, `18446744073709551616`. */
  readonly raw: string;
  constructor(raw: string) {
    this.raw = raw;
  }
  /** Whether the lexeme is an integer (no fraction, no exponent). */
  isInteger(): boolean {
    return /^-?\d+$/.test(this.raw);
  }
}

/** A JSON object with its entries in wire order, duplicates kept. */
export class JsonObject {
  readonly entries: Array<[string, JsonValue]>;
  constructor(entries: Array<[string, JsonValue]>) {
    this.entries = entries;
  }
}

/** A parsed JSON value. */
export type JsonValue = null | boolean | string | JsonNumber | JsonValue[] | JsonObject;

/** A syntax error, with the byte offset (in UTF-16 units) where it was found. */
export class JsonSyntaxError extends Error {
  constructor(message: string, at: number) {
    super(`${message} at ${at}`);
    this.name = "JsonSyntaxError";
  }
}

/** serde_json's recursion limit: the 128th nested container is refused. */
const MAX_DEPTH = 127;

/** Parses one JSON text; whitespace may surround it, nothing else may follow. */
export function parseJson(text: string): JsonValue {
  const p = new Parser(text);
  p.ws();
  const v = p.value(0);
  p.ws();
  if (p.i !== text.length) throw new JsonSyntaxError("trailing characters", p.i);
  return v;
}

class Parser {
  i = 0;
  constructor(readonly s: string) {}

  ws(): void {
    const s = this.s;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) this.i++;
      else break;
    }
  }

  value(depth: number): JsonValue {
    const c = this.s[this.i];
    switch (c) {
      case "{":
        return this.object(depth + 1);
      case "[":
        return this.array(depth + 1);
      case '"':
        return this.string();
      case "t":
        return this.literal("true", true);
      case "f":
        return this.literal("false", false);
      case "n":
        return this.literal("null", null);
      default:
        if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) return this.number();
        throw new JsonSyntaxError(c === undefined ? "unexpected end" : "expected a value", this.i);
    }
  }

  literal<T>(word: string, v: T): T {
    if (this.s.startsWith(word, this.i)) {
      this.i += word.length;
      return v;
    }
    throw new JsonSyntaxError("expected a value", this.i);
  }

  number(): JsonNumber {
    const m = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
    m.lastIndex = this.i;
    const r = m.exec(this.s);
    if (!r || r[0] === "-") throw new JsonSyntaxError("invalid number", this.i);
    this.i += r[0].length;
    return new JsonNumber(r[0]);
  }

  string(): string {
    const s = this.s;
    this.i++; // opening quote
    let out = "";
    let start = this.i;
    for (;;) {
      if (this.i >= s.length) throw new JsonSyntaxError("unterminated string", this.i);
      const c = s.charCodeAt(this.i);
      if (c === 0x22) {
        out += s.slice(start, this.i);
        this.i++;
        return out;
      }
      if (c < 0x20) throw new JsonSyntaxError("control character in string", this.i);
      if (c >= 0xd800 && c <= 0xdfff) {
        // A lone surrogate cannot come from valid UTF-8 input.
        const next = s.charCodeAt(this.i + 1);
        if (c > 0xdbff || !(next >= 0xdc00 && next <= 0xdfff)) {
          throw new JsonSyntaxError("lone surrogate", this.i);
        }
        this.i += 2;
        continue;
      }
      if (c !== 0x5c) {
        this.i++;
        continue;
      }
      out += s.slice(start, this.i);
      const e = s[this.i + 1];
      this.i += 2;
      switch (e) {
        case '"':
          out += '"';
          break;
        case "\\":
          out += "\\";
          break;
        case "/":
          out += "/";
          break;
        case "b":
          out += "\b";
          break;
        case "f":
          out += "\f";
          break;
        case "n":
          out += "\n";
          break;
        case "r":
          out += "\r";
          break;
        case "t":
          out += "\t";
          break;
        case "u": {
          const hi = this.hex4();
          if (hi >= 0xd800 && hi <= 0xdbff) {
            if (s[this.i] !== "\\" || s[this.i + 1] !== "u") {
              throw new JsonSyntaxError("lone leading surrogate in hex escape", this.i);
            }
            this.i += 2;
            const lo = this.hex4();
            if (lo < 0xdc00 || lo > 0xdfff) {
              throw new JsonSyntaxError("lone leading surrogate in hex escape", this.i);
            }
            out += String.fromCharCode(hi, lo);
          } else if (hi >= 0xdc00 && hi <= 0xdfff) {
            throw new JsonSyntaxError("lone trailing surrogate in hex escape", this.i);
          } else {
            out += String.fromCharCode(hi);
          }
          break;
        }
        default:
          throw new JsonSyntaxError("invalid escape", this.i - 1);
      }
      start = this.i;
    }
  }

  hex4(): number {
    const h = this.s.slice(this.i, this.i + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) throw new JsonSyntaxError("invalid \\u escape", this.i);
    this.i += 4;
    return parseInt(h, 16);
  }

  array(depth: number): JsonValue[] {
    if (depth > MAX_DEPTH) throw new JsonSyntaxError("recursion limit exceeded", this.i);
    this.i++;
    const out: JsonValue[] = [];
    this.ws();
    if (this.s[this.i] === "]") {
      this.i++;
      return out;
    }
    for (;;) {
      this.ws();
      out.push(this.value(depth));
      this.ws();
      const c = this.s[this.i++];
      if (c === "]") return out;
      if (c !== ",") throw new JsonSyntaxError("expected `,` or `]`", this.i - 1);
    }
  }

  object(depth: number): JsonObject {
    if (depth > MAX_DEPTH) throw new JsonSyntaxError("recursion limit exceeded", this.i);
    this.i++;
    const entries: Array<[string, JsonValue]> = [];
    this.ws();
    if (this.s[this.i] === "}") {
      this.i++;
      return new JsonObject(entries);
    }
    for (;;) {
      this.ws();
      if (this.s[this.i] !== '"') throw new JsonSyntaxError("expected a key", this.i);
      const key = this.string();
      this.ws();
      if (this.s[this.i] !== ":") throw new JsonSyntaxError("expected `:`", this.i);
      this.i++;
      this.ws();
      entries.push([key, this.value(depth)]);
      this.ws();
      const c = this.s[this.i++];
      if (c === "}") return new JsonObject(entries);
      if (c !== ",") throw new JsonSyntaxError("expected `,` or `}`", this.i - 1);
    }
  }
}
