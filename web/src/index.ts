export * from "./protocol.js";
export * from "./ids.js";
