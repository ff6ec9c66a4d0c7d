// @ringwire/sdk: the Ringwire browser calling SDK.
//
// - CallClient, CallAgent, Call, IncomingCall, RemoteParticipant, DeviceManager: the
//   app-facing API (src/sdk.ts), over WebSocket signaling and RTCPeerConnection media.
// - ClientSession: the sans-IO signaling state machine underneath (src/session.ts).
// - The wire protocol codec and identifiers (src/protocol.ts, src/ids.ts).
export * from "./sdk.js";
export * from "./protocol.js";
export * from "./ids.js";
export * from "./session.js";
export { CallMedia, captureCamera, captureDisplay, type MediaOptions } from "./media.js";
export { randomSeed } from "./rng.js";
