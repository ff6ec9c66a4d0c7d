// SplitMix64, as in crates/signaling/src/rng.rs, so that a seed gives the same call
// ids in the browser SDK as in the Rust session.

const MASK = (1n << 64n) - 1n;

/** A small seeded generator for call ids (not a CSPRNG). */
export class Rng {
  private state: bigint;

  /** A generator from a 64-bit seed. */
  constructor(seed: bigint | number) {
    this.state = BigInt.asUintN(64, BigInt(seed));
  }

  /** The next 64 random bits. */
  nextU64(): bigint {
    this.state = (this.state + 0x9e3779b97f4a7c15n) & MASK;
    let z = this.state;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK;
    return z ^ (z >> 31n);
  }

  /** 128 random bits as 32 lower-case hex digits. */
  hex128(): string {
    return this.nextU64().toString(16).padStart(16, "0") + this.nextU64().toString(16).padStart(16, "0");
  }
}

/** A 64-bit seed from the platform's random source (crypto.getRandomValues). */
export function randomSeed(): bigint {
  const words = new Uint32Array(2);
  globalThis.crypto.getRandomValues(words);
  return (BigInt(words[0]!) << 32n) | BigInt(words[1]!);
}
