export * from "./protocol.js";
export * from "./ids.js";
export * from "./session.js";
export { randomSeed } from "./rng.js";
