// One call's media in the browser: an RTCPeerConnection whose offer has the native
// client's shape (crates/media/src/client.rs): one sendrecv opus audio section, and
// with video one sendonly publish section plus N recvonly receive slots. The server's
// str0m answers and picks the codecs. Offer and answer travel as `media` messages.

import type { MediaPayload, VideoSize } from "./protocol.js";

/** How a call's peer connection is set up. */
export interface MediaOptions {
  /** Offer a publish section and this many receive slots (web default 1); 0: audio only. */
  videoSlots: number;
  /** ICE servers; none are needed on loopback or a reachable server. */
  iceServers?: RTCIceServer[];
  /** The microphone to capture (a deviceId), default the system's. */
  microphoneId?: string;
}

/** What the call's media tells its owner. */
export interface MediaListener {
  /** Send this offer to the media plane. */
  sendOffer(payload: MediaPayload): void;
  /** The remote (mixed) audio arrived. */
  remoteAudio(stream: MediaStream): void;
  /** A receive slot's track arrived (by mid). */
  slotTrack(mid: string, stream: MediaStream): void;
  /** The peer connection's state changed. */
  stateChanged(state: RTCPeerConnectionState): void;
}

/** One call's RTCPeerConnection and local tracks. */
export class CallMedia {
  readonly pc: RTCPeerConnection;
  private readonly audio: RTCRtpTransceiver;
  private readonly publish: RTCRtpTransceiver | undefined;
  private readonly slots: RTCRtpTransceiver[] = [];
  private microphone: MediaStreamTrack | undefined;
  private videoTrack: MediaStreamTrack | undefined;
  private answered = false;
  private closed = false;

  constructor(
    private readonly options: MediaOptions,
    private readonly listener: MediaListener,
  ) {
    const config: RTCConfiguration = { bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" };
    if (options.iceServers) config.iceServers = options.iceServers;
    this.pc = new RTCPeerConnection(config);
    this.audio = this.pc.addTransceiver("audio", { direction: "sendrecv" });
    if (options.videoSlots > 0) {
      this.publish = this.pc.addTransceiver("video", { direction: "sendonly" });
      for (let i = 0; i < options.videoSlots; i++) {
        this.slots.push(this.pc.addTransceiver("video", { direction: "recvonly" }));
      }
    }
    this.pc.ontrack = (ev) => {
      const stream = ev.streams[0] ?? new MediaStream([ev.track]);
      if (ev.transceiver === this.audio) this.listener.remoteAudio(stream);
      else if (ev.transceiver.mid !== null) this.listener.slotTrack(ev.transceiver.mid, stream);
    };
    this.pc.onconnectionstatechange = () => this.listener.stateChanged(this.pc.connectionState);
  }

  /** Captures the microphone and makes the offer; the offer goes out without waiting for ICE gathering (str0m learns our address from the checks). */
  async start(): Promise<void> {
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    if (this.closed) return;
    this.listener.sendOffer({ kind: "offer", sdp: this.pc.localDescription?.sdp ?? offer.sdp ?? "" });
    await this.setMicrophone(this.options.microphoneId);
  }

  /** Applies the media plane's answer. */
  async handleAnswer(sdp: string): Promise<void> {
    if (this.answered || this.closed) return;
    this.answered = true;
    await this.pc.setRemoteDescription({ type: "answer", sdp });
  }

  /** Whether the media plane has answered. */
  get isAnswered(): boolean {
    return this.answered;
  }

  /** Sends the offer again (after the server refused the first one, e.g. from the lobby). */
  resendOffer(): void {
    if (this.answered || this.closed || !this.pc.localDescription) return;
    this.listener.sendOffer({ kind: "offer", sdp: this.pc.localDescription.sdp });
  }

  /** Captures `deviceId` (default microphone) and sends it in place of the current one. */
  async setMicrophone(deviceId: string | undefined): Promise<void> {
    const constraints: MediaStreamConstraints = {
      audio: deviceId ? { deviceId: { exact: deviceId } } : true,
    };
    const stream = await navigator.mediaDevices.getUserMedia(constraints);
    const track = stream.getAudioTracks()[0];
    if (!track) return;
    if (this.closed) {
      track.stop();
      return;
    }
    const enabled = this.microphone?.enabled ?? true;
    track.enabled = enabled;
    await this.audio.sender.replaceTrack(track);
    this.microphone?.stop();
    this.microphone = track;
  }

  /** Stops (or restarts) sending microphone audio locally, on top of the server's mute. */
  setMicrophoneEnabled(enabled: boolean): void {
    if (this.microphone) this.microphone.enabled = enabled;
  }

  /** Whether video can be sent (a publish section was offered). */
  get canPublishVideo(): boolean {
    return this.publish !== undefined;
  }

  /** Sends `track` on the publish section (replacing what was sent); returns its size when known. */
  async publishVideo(track: MediaStreamTrack): Promise<VideoSize | undefined> {
    if (!this.publish) throw new Error("this call offered no video section");
    await this.publish.sender.replaceTrack(track);
    if (this.videoTrack && this.videoTrack !== track) this.videoTrack.stop();
    this.videoTrack = track;
    const { width, height } = track.getSettings();
    return width && height ? { width, height } : undefined;
  }

  /** Stops sending video. */
  async unpublishVideo(): Promise<void> {
    if (this.publish) await this.publish.sender.replaceTrack(null);
    this.videoTrack?.stop();
    this.videoTrack = undefined;
  }

  /** The receive slots' mids, in offer order (known once the offer is made). */
  get slotMids(): string[] {
    return this.slots.map((t) => t.mid ?? "");
  }

  /** The stream a receive slot shows now. */
  slotStream(mid: string): MediaStream | undefined {
    const t = this.slots.find((s) => s.mid === mid);
    return t ? new MediaStream([t.receiver.track]) : undefined;
  }

  /** Inbound and outbound RTP statistics, for diagnostics and tests. */
  async stats(): Promise<RTCStatsReport> {
    return this.pc.getStats();
  }

  /** Closes the peer connection and stops every local track. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.microphone?.stop();
    this.videoTrack?.stop();
    this.pc.close();
  }
}

/** Which surface getDisplayMedia should offer first. */
export type DisplaySurface = "monitor" | "window" | "browser";

/** Captures a screen, a window or a browser tab (the user picks). */
export async function captureDisplay(surface?: DisplaySurface): Promise<MediaStreamTrack> {
  const video: MediaTrackConstraints & { displaySurface?: DisplaySurface } = {};
  if (surface) video.displaySurface = surface;
  const stream = await navigator.mediaDevices.getDisplayMedia({ video, audio: false });
  const track = stream.getVideoTracks()[0];
  if (!track) throw new Error("getDisplayMedia gave no video track");
  return track;
}

/** Captures a camera (default the system's). */
export async function captureCamera(deviceId?: string): Promise<MediaStreamTrack> {
  const stream = await navigator.mediaDevices.getUserMedia({
    video: deviceId ? { deviceId: { exact: deviceId } } : true,
  });
  const track = stream.getVideoTracks()[0];
  if (!track) throw new Error("getUserMedia gave no video track");
  return track;
}
