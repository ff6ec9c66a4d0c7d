//! The PSTN gateway: the controller's `Dial`s of `4:+E.164` targets become outbound
//! SIP legs through a configured trunk (`[pstn]`, [`ringwire_pstn::config`]).
//!
//! The hub owns the [`Gateway`] and calls it from its drain, so it never waits: a
//! dial checks the route, binds an RTP socket in the configured port range and
//! spawns the leg's task ([`ringwire_pstn::sip::dial`]), which runs until the leg
//! ends. What the leg reports goes where it belongs:
//! - ringing, early media, answered, ended: to the hub, as the controller's
//!   [`GatewayEvent`]s (SIP final responses map one to one to end reasons:
//!   [`ringwire_pstn::sip::end_reason`]);
//! - the phone's voice (20 ms opus frames, G.711 transcoded by the leg's
//!   [`PhoneMedia`](ringwire_pstn::media::PhoneMedia)): to the media worker, where
//!   the phone is a local participant of the call's room once answered;
//! - what the phone hears: the media worker hands the room's packets for the phone
//!   to the leg's input (see [`crate::media`]).
//!
//! Early media (183 with SDP) plays to the caller: the controller only puts a phone
//! into the media room once it answers, so on the leg's first `EarlyMedia` the
//! gateway has the hub join it early, and takes it out again if the leg ends
//! without an answer (the controller's own `Leave` covers answered legs; both are
//! idempotent in the media plane).
//!
//! The controller's `HangUp` becomes CANCEL before an answer and BYE after. A leg
//! the far end ended is reported once; a report from a leg the gateway already let
//! go (the caller hung up first, or a newer leg for the same number in the same
//! call) is dropped, so a late `Ended` never removes the wrong participant.
//!
//! Inbound calls: the SIP endpoint's gate ([`ringwire_pstn::sip::InboundGate`])
//! drops every request from a source that is neither on an inbound trunk's
//! allowlist nor an outbound trunk's address, without a response, and hands new
//! INVITEs from inbound trunks to the hub. [`Gateway::screen_inbound`] decides on
//! them ([`ringwire_pstn::inbound::InboundScreen`]: digest credentials for trunks
//! that have them (a 401 challenge first, never remembered), number owned and
//! dispatched, caller E.164, a G.711 offer, the trunk's and the calling number's
//! caps (a routed call counts until its leg is let go); refusals remembered by
//! Call-ID), the controller
//! rings the dispatch rule's user or puts the phone into its group call
//! ([`CallController::start_gateway_call`](ringwire_signaling::controller::CallController::start_gateway_call)),
//! and the leg ([`ringwire_pstn::sip::answer`]) rings (180) until the controller
//! answers it (200 with our SDP answer) or refuses it with the end reason's code
//! (603 declined, 408 no answer, 480 nobody online).
//!
//! Without `[pstn]` every phone dial fails at once with 480 "no SIP trunk is
//! configured".

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use ringwire_pstn::config::{Cidr, DialRefusal, DispatchTarget, PortRange, PstnConfig};
use ringwire_pstn::inbound::{InboundRoute, InboundScreen, InboundSlot, Screening};
use ringwire_pstn::limits::{DialLimiter, LimitExceeded};
use ringwire_pstn::media::PhoneMediaConfig;
use ringwire_pstn::rtp::DtmfDigit;
use ringwire_pstn::sip::{
    AnswerRequest, DialRequest, InboundGate, InboundInvite, LegInput, LegOutput, SipEndpoint,
};
use ringwire_signaling::controller::{GatewayEvent, InboundTarget, MediaCommand};
use ringwire_signaling::{CallId, ClientKind, EndReason, GroupId, Identifier, PhoneNumber, UserId};
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use crate::hub::WeakHub;
use crate::media::WeakMedia;

/// Packets waiting for a leg (20 ms each): a leg further behind than this loses audio
/// rather than making the media worker wait.
const LEG_INPUT_QUEUE: usize = 64;
/// Outputs of a leg waiting to be forwarded.
const LEG_OUTPUT_QUEUE: usize = 256;
/// Inbound INVITEs waiting for the hub; more are dropped (their callers retransmit).
const INBOUND_QUEUE: usize = 64;

/// Tells legs of the same call and number apart (a number dialed again in a call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct LegId(u64);

/// What the hub does with phone targets. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct Gateway {
    pstn: Option<Pstn>,
}

#[derive(Debug)]
struct Pstn {
    config: PstnConfig,
    sip: SipEndpoint,
    ports: PortAllocator,
    legs: BTreeMap<(CallId, Identifier), Leg>,
    /// Per-caller caps: calls at once, calls per minute.
    limits: DialLimiter<Identifier>,
    /// Decides on inbound INVITEs; remembers refusals by Call-ID.
    screen: InboundScreen,
    next_leg: u64,
    ssrc_seed: u64,
    hub: WeakHub,
    media: WeakMedia,
    tracker: TaskTracker,
}

#[derive(Debug)]
struct Leg {
    id: LegId,
    input: mpsc::Sender<LegInput>,
    /// Put into the media room for early media, before the controller did.
    early_media: bool,
    /// Who dialed, for the per-caller caps (`None` for inbound legs).
    caller: Option<Identifier>,
    /// An inbound leg's place in its trunk's and caller's caps.
    inbound: Option<InboundSlot>,
}

/// An inbound call the screen let through, with its RTP socket, waiting for the
/// controller's decision.
#[derive(Debug)]
pub(crate) struct PendingInbound {
    invite: InboundInvite,
    route: InboundRoute,
    socket: tokio::net::UdpSocket,
    rtp: SocketAddr,
}

impl PendingInbound {
    /// The calling phone.
    pub(crate) fn caller(&self) -> Identifier {
        Identifier::Phone(self.route.caller.clone())
    }

    /// Where the dispatch rule sends the call, as the controller names it; `None`
    /// when the configured name is not a valid id.
    pub(crate) fn target(&self) -> Option<InboundTarget> {
        match &self.route.target {
            DispatchTarget::User(u) => UserId::new(u).ok().map(InboundTarget::User),
            DispatchTarget::Group(g) => GroupId::new(g).ok().map(InboundTarget::Group),
        }
    }
}

/// What the hub does with a leg's report.
#[derive(Debug, PartialEq)]
pub(crate) struct Verdict {
    /// The report is about the current leg: hand it to the controller.
    pub(crate) current: bool,
    /// A media command to queue as well (early media starting or over).
    pub(crate) media: Option<MediaCommand>,
}

/// Hands out RTP sockets in the configured range, round robin over even ports
/// (RFC 3550 §11: RTP on an even port), skipping ports in use.
#[derive(Debug)]
struct PortAllocator {
    range: PortRange,
    next: u16,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GatewayError {
    /// The SIP socket could not be bound.
    #[error("binding the SIP socket {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What failed.
        #[source]
        source: ringwire_pstn::Error,
    },
}

impl Gateway {
    /// Binds the SIP endpoint when `[pstn]` is configured; legs' tasks go on `tracker`.
    /// UDP on `sip_listen`, TCP there too when a trunk uses it, TLS towards TLS trunks
    /// and a TLS listener with `[pstn.tls]` ([`SipEndpoint::start`]); each leg is
    /// dialed over its trunk's transport.
    pub(crate) async fn start(
        config: Option<&PstnConfig>,
        hub: WeakHub,
        media: WeakMedia,
        tracker: TaskTracker,
        seed: u64,
    ) -> Result<Gateway, GatewayError> {
        let Some(config) = config else {
            return Ok(Gateway::disabled());
        };
        let (invites, mut invites_rx) = mpsc::channel(INBOUND_QUEUE);
        let gate = InboundGate {
            allowed: config
                .inbound
                .iter()
                .flat_map(|t| t.allowed_sources.iter())
                .filter_map(|s| Cidr::parse(s).ok())
                .collect(),
            trusted: config.outbound.iter().map(|t| t.address.ip()).collect(),
            invites,
        };
        // UDP, plus TCP and TLS as the trunks and `[pstn.tls]` ask for.
        let sip = SipEndpoint::start(config, Some(gate))
            .await
            .map_err(|source| GatewayError::Bind {
                addr: config.sip_listen,
                source,
            })?;
        tracing::info!(sip = %config.sip_listen, sip_tls = ?config.tls.as_ref().map(|t| t.listen), trunks = config.outbound.len(), inbound = config.inbound.len(), "pstn gateway started");
        let inbound_hub = hub.clone();
        // Not on `tracker`, whose tasks shutdown waits for: this loop ends only when the
        // gate's sender goes, and ezk's transport tasks keep it alive, so every shutdown
        // with `[pstn]` waited out the whole grace period. It holds only a weak hub.
        tokio::spawn(async move {
            while let Some(invite) = invites_rx.recv().await {
                inbound_hub.inbound_invite(invite).await;
            }
        });
        Ok(Gateway {
            pstn: Some(Pstn {
                config: config.clone(),
                sip,
                ports: PortAllocator::new(config.rtp_ports),
                legs: BTreeMap::new(),
                limits: DialLimiter::new(
                    config.max_calls_per_identity,
                    config.calls_per_minute_per_identity,
                ),
                screen: InboundScreen::new(config),
                next_leg: 0,
                ssrc_seed: seed,
                hub,
                media,
                tracker,
            }),
        })
    }

    /// A gateway without trunks: every phone dial fails with 480.
    pub(crate) fn disabled() -> Gateway {
        Gateway { pstn: None }
    }

    /// The SIP port, when the gateway runs.
    pub(crate) fn sip_port(&self) -> Option<u16> {
        self.pstn.as_ref().map(|p| p.sip.port())
    }

    /// Starts an outbound leg to `number` in `call_id`, dialed by `caller`.
    ///
    /// # Errors
    /// The end reason for the caller when the call cannot be placed: no trunk (480),
    /// a destination or caller id the configuration does not allow, or a per-caller
    /// cap reached (403), no free RTP port (503).
    pub(crate) fn dial(
        &mut self,
        call_id: &CallId,
        number: &PhoneNumber,
        caller: &Identifier,
        caller_id: Option<&PhoneNumber>,
        now: std::time::Instant,
    ) -> Result<(), EndReason> {
        let Some(pstn) = self.pstn.as_mut() else {
            return Err(no_trunk());
        };
        pstn.limits.prune(now);
        pstn.limits
            .try_start(caller, now)
            .map_err(|e| limited(&e))?;
        let placed = pstn.dial(call_id, number, caller, caller_id);
        if placed.is_err() {
            pstn.limits.finished(caller);
        }
        placed
    }

    /// The controller dropped a phone leg: CANCEL or BYE it. Not ours (the echo
    /// service, a leg already over): nothing to do. Returns a media command to queue
    /// when the leg was in the room for early media.
    pub(crate) fn hang_up(
        &mut self,
        call_id: &CallId,
        target: &Identifier,
        reason: &EndReason,
    ) -> Option<MediaCommand> {
        let pstn = self.pstn.as_mut()?;
        let leg = pstn.legs.remove(&(call_id.clone(), target.clone()))?;
        pstn.release(&leg);
        tracing::debug!(%call_id, %target, "hanging up phone leg");
        // A full queue means the leg is far behind; dropping the sender ends it too
        // (the leg treats a closed input as a hang-up). Inbound legs not yet answered
        // are refused with the reason's code (603 declined, 408 no answer).
        let input = match leg.caller {
            Some(_) => LegInput::HangUp,
            None => LegInput::Refuse(reason.code),
        };
        let _ = leg.input.try_send(input);
        leg.early_media.then(|| leave(call_id, target))
    }

    /// Screens an inbound INVITE: unknown sources are dropped, refusals answered
    /// (and remembered by Call-ID); a call to route comes back with its RTP socket.
    pub(crate) fn screen_inbound(
        &mut self,
        invite: InboundInvite,
        now: std::time::Instant,
    ) -> Option<PendingInbound> {
        let pstn = self.pstn.as_mut()?;
        let source = invite.source();
        let summary = match invite.summary() {
            Ok(summary) => summary.clone(),
            Err(e) => {
                tracing::debug!(%source, error = %e, "malformed inbound INVITE");
                pstn.refuse(invite, 400);
                return None;
            }
        };
        let route = match pstn.screen.screen(source.ip(), &summary, now) {
            Screening::Drop => {
                tracing::debug!(%source, "inbound INVITE from an unknown source dropped");
                return None;
            }
            Screening::Refuse(code) => {
                tracing::debug!(%source, call_id = %summary.call_id, code, "inbound INVITE refused");
                pstn.refuse(invite, code);
                return None;
            }
            Screening::Challenge(challenge) => {
                tracing::debug!(%source, call_id = %summary.call_id, stale = challenge.stale, "inbound INVITE challenged (401)");
                let sip = pstn.sip.clone();
                pstn.tracker.spawn(async move {
                    ringwire_pstn::sip::challenge(&sip, invite, &challenge).await;
                });
                return None;
            }
            Screening::Limited { code, retry_after } => {
                tracing::info!(%source, call_id = %summary.call_id, code, ?retry_after, "inbound INVITE over a cap");
                let sip = pstn.sip.clone();
                pstn.tracker.spawn(async move {
                    ringwire_pstn::sip::refuse_later(&sip, invite, code, retry_after).await;
                });
                return None;
            }
            Screening::Route(route) => route,
        };
        let bind_ip = pstn.config.sip_listen.ip();
        let Some((socket, rtp)) = pstn.ports.bind(bind_ip).and_then(|s| {
            let addr = s.local_addr().ok()?;
            Some((s, addr))
        }) else {
            tracing::warn!(range = ?pstn.config.rtp_ports, "no free RTP port for an inbound call");
            pstn.screen.finished(&route.slot);
            pstn.screen.refused(&summary.call_id, 503, now);
            pstn.refuse(invite, 503);
            return None;
        };
        tracing::debug!(trunk = %route.trunk, caller = %route.caller, called = %route.called, "inbound call");
        Some(PendingInbound {
            invite,
            route,
            socket,
            rtp,
        })
    }

    /// A fresh id for an inbound call to a user: unique in this server, not guessable
    /// from outside.
    pub(crate) fn inbound_call_id(&mut self) -> Option<CallId> {
        let pstn = self.pstn.as_mut()?;
        pstn.next_leg += 1;
        let mix = pstn.ssrc_seed ^ pstn.next_leg.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        CallId::new(&format!("pstn-{mix:016x}-{}", pstn.next_leg)).ok()
    }

    /// The controller refused the call: answer the INVITE with `reason.code`.
    pub(crate) fn refuse_inbound(
        &mut self,
        pending: PendingInbound,
        reason: &EndReason,
        now: std::time::Instant,
    ) {
        let Some(pstn) = self.pstn.as_mut() else {
            return;
        };
        let code = if (300..=699).contains(&reason.code) {
            reason.code
        } else {
            480
        };
        pstn.screen.finished(&pending.route.slot);
        if let Ok(summary) = pending.invite.summary() {
            pstn.screen.refused(&summary.call_id, code, now);
        }
        pstn.refuse(pending.invite, code);
    }

    /// The controller took the call as `call_id`: the leg rings (180) until the
    /// controller answers it ([`Gateway::answer`]) or hangs it up.
    pub(crate) fn start_inbound(&mut self, pending: PendingInbound, call_id: &CallId) {
        let Some(pstn) = self.pstn.as_mut() else {
            return;
        };
        pstn.next_leg += 1;
        let id = LegId(pstn.next_leg);
        let ssrc = (pstn.ssrc_seed ^ pstn.next_leg.wrapping_mul(0x9E37_79B9_7F4A_7C15)) as u32;
        let target = Identifier::Phone(pending.route.caller.clone());
        let slot = pending.route.slot.clone();
        let request = AnswerRequest {
            offer: pending.route.offer,
            rtp: pending.rtp,
            max_duration: pstn.config.max_call_duration,
            media: PhoneMediaConfig {
                local: pending.rtp,
                media_timeout: pstn.config.media_timeout,
                ssrc,
            },
        };
        let (input, input_rx) = mpsc::channel(LEG_INPUT_QUEUE);
        let (output, output_rx) = mpsc::channel(LEG_OUTPUT_QUEUE);
        pstn.media
            .attach_phone(call_id.clone(), target.clone(), input.clone());
        pstn.tracker.spawn(ringwire_pstn::sip::answer(
            pstn.sip.clone(),
            pending.invite,
            request,
            pending.socket,
            input_rx,
            output,
        ));
        pstn.tracker.spawn(forward(
            output_rx,
            call_id.clone(),
            target.clone(),
            id,
            pstn.hub.clone(),
            pstn.media.clone(),
        ));
        pstn.legs.insert(
            (call_id.clone(), target),
            Leg {
                id,
                input,
                early_media: false,
                caller: None,
                inbound: Some(slot),
            },
        );
    }

    /// Plays `digits` to a phone leg as RFC 4733 events, one after the other.
    pub(crate) fn send_dtmf(&mut self, call_id: &CallId, target: &Identifier, digits: &str) {
        let Some(leg) = self
            .pstn
            .as_mut()
            .and_then(|p| p.legs.get(&(call_id.clone(), target.clone())))
        else {
            tracing::debug!(%call_id, %target, "dtmf for a leg we do not have");
            return;
        };
        for digit in digits.chars().filter_map(DtmfDigit::from_char) {
            if leg.input.try_send(LegInput::Dtmf(digit)).is_err() {
                tracing::debug!(%call_id, %target, "phone leg busy; dtmf dropped");
                return;
            }
        }
    }

    /// The controller answered an inbound leg (someone accepted the phone's call, or
    /// it joined a group call): the leg sends 200 OK.
    pub(crate) fn answer(&mut self, call_id: &CallId, target: &Identifier) {
        let Some(leg) = self
            .pstn
            .as_mut()
            .and_then(|p| p.legs.get(&(call_id.clone(), target.clone())))
        else {
            tracing::debug!(%call_id, %target, "answer for a leg we do not have");
            return;
        };
        let _ = leg.input.try_send(LegInput::Answer);
    }

    /// What to do with a leg's report: only the current leg for its target counts;
    /// an `Ended` lets the leg go.
    pub(crate) fn accept_report(
        &mut self,
        call_id: &CallId,
        target: &Identifier,
        leg: LegId,
        event: &GatewayEvent,
    ) -> Verdict {
        let stale = Verdict {
            current: false,
            media: None,
        };
        let Some(pstn) = self.pstn.as_mut() else {
            return stale;
        };
        let key = (call_id.clone(), target.clone());
        let Some(current) = pstn.legs.get_mut(&key).filter(|l| l.id == leg) else {
            return stale;
        };
        let media = match event {
            GatewayEvent::EarlyMedia if !current.early_media => {
                current.early_media = true;
                Some(MediaCommand::Join {
                    call_id: call_id.clone(),
                    participant: target.clone(),
                    client: ClientKind::Native,
                })
            }
            GatewayEvent::Ended(_) => {
                let ended = pstn.legs.remove(&key);
                if let Some(leg) = &ended {
                    pstn.release(leg);
                }
                ended
                    .filter(|l| l.early_media)
                    .map(|_| leave(call_id, target))
            }
            _ => None,
        };
        Verdict {
            current: true,
            media,
        }
    }
}

fn leave(call_id: &CallId, target: &Identifier) -> MediaCommand {
    MediaCommand::Leave {
        call_id: call_id.clone(),
        participant: target.clone(),
    }
}

impl Pstn {
    /// A leg is over: it no longer counts against its caller's (outbound) or its
    /// trunk's and calling number's (inbound) caps.
    fn release(&mut self, leg: &Leg) {
        if let Some(caller) = &leg.caller {
            self.limits.finished(caller);
        }
        if let Some(slot) = &leg.inbound {
            self.screen.finished(slot);
        }
    }

    /// Answers an inbound INVITE with a final `code`, off the hub's task.
    fn refuse(&self, invite: InboundInvite, code: u16) {
        let sip = self.sip.clone();
        self.tracker.spawn(async move {
            ringwire_pstn::sip::refuse(&sip, invite, code).await;
        });
    }

    fn dial(
        &mut self,
        call_id: &CallId,
        number: &PhoneNumber,
        caller: &Identifier,
        caller_id: Option<&PhoneNumber>,
    ) -> Result<(), EndReason> {
        let (trunk, caller_id) = self
            .config
            .route(number, caller_id)
            .map_err(|refusal| refused(&refusal))?;
        let trunk_addr = trunk.address;
        let trunk_name = trunk.name.clone();
        let credentials = trunk.credentials.clone();
        let bind_ip = self.config.sip_listen.ip();
        let Some(socket) = self.ports.bind(bind_ip) else {
            tracing::warn!(%call_id, range = ?self.config.rtp_ports, "no free RTP port for a phone leg");
            return Err(EndReason::new(
                503,
                4802,
                "no media port free for the phone call",
            ));
        };
        let rtp = match socket.local_addr() {
            Ok(addr) => addr,
            Err(error) => {
                tracing::warn!(%error, "RTP socket has no address");
                return Err(EndReason::server_error());
            }
        };
        self.next_leg += 1;
        let id = LegId(self.next_leg);
        // Distinct per leg, unpredictable across servers (RFC 3550 §8.1).
        let ssrc = (self.ssrc_seed ^ self.next_leg.wrapping_mul(0x9E37_79B9_7F4A_7C15)) as u32;
        let request = DialRequest {
            trunk: trunk_addr,
            number: number.as_str().to_owned(),
            caller_id,
            rtp,
            ring_timeout: self.config.ring_timeout,
            max_duration: self.config.max_call_duration,
            media: PhoneMediaConfig {
                local: rtp,
                media_timeout: self.config.media_timeout,
                ssrc,
            },
            credentials,
        };
        let target = Identifier::Phone(number.clone());
        let (input, input_rx) = mpsc::channel(LEG_INPUT_QUEUE);
        let (output, output_rx) = mpsc::channel(LEG_OUTPUT_QUEUE);
        tracing::debug!(%call_id, %target, trunk = %trunk_name, %rtp, "dialing phone leg");
        self.media
            .attach_phone(call_id.clone(), target.clone(), input.clone());
        self.tracker.spawn(ringwire_pstn::sip::dial(
            self.sip.clone(),
            request,
            socket,
            input_rx,
            output,
        ));
        self.tracker.spawn(forward(
            output_rx,
            call_id.clone(),
            target.clone(),
            id,
            self.hub.clone(),
            self.media.clone(),
        ));
        self.legs.insert(
            (call_id.clone(), target),
            Leg {
                id,
                input,
                early_media: false,
                caller: Some(caller.clone()),
                inbound: None,
            },
        );
        Ok(())
    }
}

/// Moves a leg's outputs to the hub (events, in order) and the media worker (audio).
async fn forward(
    mut outputs: mpsc::Receiver<LegOutput>,
    call_id: CallId,
    target: Identifier,
    leg: LegId,
    hub: WeakHub,
    media: WeakMedia,
) {
    while let Some(output) = outputs.recv().await {
        match output {
            LegOutput::Event(event) => {
                tracing::debug!(%call_id, %target, ?event, "phone leg");
                hub.leg_event(call_id.clone(), target.clone(), leg, event)
                    .await;
            }
            LegOutput::Audio(audio) => media.phone_audio(call_id.clone(), target.clone(), audio),
            LegOutput::Dtmf(digit) => {
                tracing::debug!(%call_id, %target, digit = %digit.to_char(), "dtmf from phone");
                hub.leg_dtmf(call_id.clone(), target.clone(), digit.to_char().to_string())
                    .await;
            }
        }
    }
}

impl PortAllocator {
    fn new(range: PortRange) -> PortAllocator {
        PortAllocator {
            range,
            next: range.first,
        }
    }

    /// An RTP socket on the next free even port of the range, or `None` when every
    /// one is taken.
    fn bind(&mut self, ip: IpAddr) -> Option<tokio::net::UdpSocket> {
        let PortRange { first, last } = self.range;
        let first_even = first + first % 2;
        let count = (last.saturating_sub(first_even)) / 2 + 1;
        for _ in 0..count {
            let mut port = self.next + self.next % 2;
            if port < first_even || port > last {
                port = first_even;
            }
            self.next = port.saturating_add(2);
            let Ok(socket) = std::net::UdpSocket::bind(SocketAddr::new(ip, port)) else {
                continue;
            };
            if socket.set_nonblocking(true).is_err() {
                continue;
            }
            match tokio::net::UdpSocket::from_std(socket) {
                Ok(socket) => return Some(socket),
                Err(error) => tracing::debug!(%error, port, "RTP socket not usable"),
            }
        }
        None
    }
}

/// The end reason for a dial a per-caller cap refuses.
fn limited(exceeded: &LimitExceeded) -> EndReason {
    let subcode = match exceeded {
        LimitExceeded::Concurrent => 4035,
        _ => 4036,
    };
    EndReason::new(403, subcode, &exceeded.to_string())
}

fn no_trunk() -> EndReason {
    EndReason::new(480, 4800, "no SIP trunk is configured")
}

/// The end reason the caller sees for a dial the configuration refuses.
fn refused(refusal: &DialRefusal) -> EndReason {
    match refusal {
        DialRefusal::NoTrunk => no_trunk(),
        DialRefusal::CountryNotAllowed => EndReason::new(403, 4033, &refusal.to_string()),
        DialRefusal::CallerIdNotOwned => EndReason::new(403, 4034, &refusal.to_string()),
        other => EndReason::forbidden(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ports_stay_in_range_and_skip_taken_ones() {
        // Find a free even pair of ports to work with.
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let base = probe.local_addr().unwrap().port() & !1;
        drop(probe);
        let range = PortRange {
            first: base,
            last: base + 3,
        };
        let mut ports = PortAllocator::new(range);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let Some(a) = ports.bind(ip) else {
            // Someone else took the ports between probe and bind; nothing to check.
            return;
        };
        let a_port = a.local_addr().unwrap().port();
        assert_eq!(a_port % 2, 0);
        assert!((range.first..=range.last).contains(&a_port));
        if let Some(b) = ports.bind(ip) {
            let b_port = b.local_addr().unwrap().port();
            assert_ne!(a_port, b_port);
            assert!((range.first..=range.last).contains(&b_port));
            // Both even ports are taken now.
            assert!(ports.bind(ip).is_none());
        }
        drop(a);
        assert!(ports.bind(ip).is_some(), "a freed port is used again");
    }

    #[test]
    fn refusals_have_their_own_reasons() {
        assert_eq!(refused(&DialRefusal::NoTrunk).code, 480);
        let country = refused(&DialRefusal::CountryNotAllowed);
        assert_eq!((country.code, country.subcode), (403, 4033));
        assert!(country.message.contains("country"));
        assert_eq!(refused(&DialRefusal::CallerIdNotOwned).subcode, 4034);
        assert_eq!(limited(&LimitExceeded::Concurrent).subcode, 4035);
        assert_eq!(limited(&LimitExceeded::Rate).subcode, 4036);
    }
}
