// Identifiers, mirroring crates/signaling/src/id.rs: `8:<user-id>`, `4:+<E.164>`,
// `8:echo123`; call ids and group ids. Lengths are in UTF-8 bytes, as in Rust.

/** The raw id of the echo test service. */
export const ECHO_SERVICE_RAW_ID = "8:echo123";
/** Longest user id or call id, in bytes. */
export const MAX_ID_LEN = 128;
/** What a group call's id starts with. */
export const GROUP_CALL_PREFIX = "group:";
/** Longest group id, in bytes (room for the `group:` prefix in the call id). */
export const MAX_GROUP_ID_LEN = MAX_ID_LEN - GROUP_CALL_PREFIX.length;

/** A participant in raw form: `8:alice`, `4:+15551230000`, `8:echo123`. */
export type Identifier = string;
/** A call id: 1–128 bytes of `A-Z a-z 0-9 - _ . : @`. */
export type CallId = string;
/** A group id: 1–122 bytes of the same characters. */
export type GroupId = string;
/** An E.164 phone number with its `+`. */
export type PhoneNumber = string;

/** What kind of participant an identifier names. */
export type IdentifierKind = "user" | "phone" | "echo";

/** Why a string is not a valid identifier; `code` matches the test vectors' names. */
export type IdErrorCode = "empty" | "too_long" | "unknown_prefix" | "bad_character" | "not_e164";

/** A string that is not a valid identifier. */
export class IdError extends Error {
  /** Which rule failed. */
  readonly code: IdErrorCode;
  constructor(code: IdErrorCode, message: string) {
    super(message);
    this.name = "IdError";
    this.code = code;
  }
}

/** The UTF-8 length of a string, in bytes. */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

function checkToken(id: string, max: number): void {
  if (id.length === 0) throw new IdError("empty", "identifier is empty");
  if (utf8Length(id) > max) throw new IdError("too_long", "identifier is too long");
  for (const ch of id) {
    if (!/^[A-Za-z0-9\-_.:@]$/.test(ch)) {
      throw new IdError("bad_character", `identifier contains the character ${JSON.stringify(ch)}, which is not allowed`);
    }
  }
}

/** Validates an E.164 number such as `+15551230000`. */
export function checkPhoneNumber(number: string): PhoneNumber {
  const notE164 = () => new IdError("not_e164", "phone number must be E.164: `+` and 2 to 15 digits, the first not 0");
  if (!number.startsWith("+")) throw notE164();
  const digits = number.slice(1);
  const len = utf8Length(digits);
  if (len < 2 || len > 15 || !/^[0-9]+$/.test(digits) || digits.startsWith("0")) throw notE164();
  return number;
}

/** Parses a raw identifier; returns its kind, or throws an {@link IdError}. */
export function identifierKind(raw: string): IdentifierKind {
  if (raw.length === 0) throw new IdError("empty", "identifier is empty");
  if (raw === ECHO_SERVICE_RAW_ID) return "echo";
  if (raw.startsWith("8:")) {
    checkToken(raw.slice(2), MAX_ID_LEN);
    return "user";
  }
  if (raw.startsWith("4:")) {
    checkPhoneNumber(raw.slice(2));
    return "phone";
  }
  throw new IdError("unknown_prefix", "identifier must start with `8:` (user) or `4:` (phone number)");
}

/** Validates a raw identifier and returns it. */
export function checkIdentifier(raw: string): Identifier {
  identifierKind(raw);
  return raw;
}

/** Validates a call id and returns it. */
export function checkCallId(id: string): CallId {
  checkToken(id, MAX_ID_LEN);
  return id;
}

/** Validates a group id and returns it. */
export function checkGroupId(id: string): GroupId {
  checkToken(id, MAX_GROUP_ID_LEN);
  return id;
}

/** A user identifier from the part after `8:`. */
export function userIdentifier(userId: string): Identifier {
  checkToken(userId, MAX_ID_LEN);
  if (userId === "echo123") throw new IdError("unknown_prefix", "`echo123` is reserved for the echo service");
  return `8:${userId}`;
}

/** A phone identifier from an E.164 number. */
export function phoneIdentifier(number: string): Identifier {
  return `4:${checkPhoneNumber(number)}`;
}

/** The id of the call that group `group` holds. */
export function callIdForGroup(group: GroupId): CallId {
  return GROUP_CALL_PREFIX + group;
}

/** The group a call id belongs to, when it is a group call's id. */
export function groupOfCallId(call: CallId): GroupId | undefined {
  return call.startsWith(GROUP_CALL_PREFIX) ? call.slice(GROUP_CALL_PREFIX.length) : undefined;
}

const KIND_RANK: Record<IdentifierKind, number> = { user: 0, phone: 1, echo: 2 };

/** Orders identifiers as Rust's `Identifier` does: users, then phones, then echo; by id within. */
export function compareIdentifiers(a: Identifier, b: Identifier): number {
  const ka = KIND_RANK[safeKind(a)];
  const kb = KIND_RANK[safeKind(b)];
  if (ka !== kb) return ka - kb;
  return compareBytes(a, b);
}

function safeKind(raw: string): IdentifierKind {
  try {
    return identifierKind(raw);
  } catch {
    return "user";
  }
}

/** Orders ASCII strings as Rust orders `String`s (byte order). */
export function compareBytes(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
