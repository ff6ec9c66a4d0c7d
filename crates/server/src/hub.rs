//! The hub: the one task that owns the [`CallController`].
//!
//! Connection tasks (WebSocket, QUIC) only move bytes: they open a connection with the
//! hub, hand it every frame they read, and write whatever the hub queues for them. The
//! hub feeds the controller, drains it after every input (the drain rule), and sleeps
//! until the controller's next timeout or the next input, whichever comes first. Nothing
//! else touches the controller, so it needs no lock (STYLE.md §2).
//!
//! Media commands go to the media worker ([`crate::media`]) without waiting; what the
//! worker reports (answers, failures, dominant speakers) comes back as one more input.
//! Gateway commands for phone numbers go to the [`Gateway`] (also without waiting);
//! what its legs report comes back as one more input too.

use std::collections::BTreeMap;
use std::sync::Arc;

use ringwire_signaling::controller::{
    CallController, Command, ConnectionId, ControllerStats, GatewayCommand, GatewayEvent,
};
use ringwire_signaling::{CallId, EndReason, Identifier, MediaPayload, MediaPayloadKind, UserId};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::gateway::{Gateway, LegId};
use crate::media::{MediaEvent, MediaHandle};
use ringwire_pstn::sip::InboundInvite;

/// How many frames may wait for one connection before it counts as too slow and is
/// dropped; the hub never waits for a connection.
pub(crate) const OUTBOUND_QUEUE: usize = 1024;

/// How many inputs the hub handles in a row before it yields to other tasks.
const BATCH: usize = 256;

/// What the hub sends a connection task.
#[derive(Debug, Clone)]
pub(crate) enum Outbound {
    /// One encoded server message.
    Frame(Arc<[u8]>),
    /// Close the connection after writing what came before.
    Close(EndReason),
}

/// A connection's end of the hub: its id and what to write to it.
#[derive(Debug)]
pub(crate) struct HubConnection {
    pub(crate) id: ConnectionId,
    pub(crate) outbound: mpsc::Receiver<Outbound>,
}

#[derive(Debug)]
enum Input {
    Open {
        reply: oneshot::Sender<HubConnection>,
    },
    Bytes {
        connection: ConnectionId,
        bytes: Vec<u8>,
    },
    Closed {
        connection: ConnectionId,
    },
    Stats {
        reply: oneshot::Sender<ControllerStats>,
    },
    Revoke {
        user: UserId,
        reply: oneshot::Sender<()>,
    },
    Shutdown {
        done: oneshot::Sender<()>,
    },
    Media(MediaEvent),
    Leg {
        call_id: CallId,
        target: Identifier,
        leg: LegId,
        event: GatewayEvent,
    },
    Inbound(Box<InboundInvite>),
    LegDtmf {
        call_id: CallId,
        target: Identifier,
        digits: String,
    },
}

/// A cheap, cloneable handle to the hub task.
#[derive(Debug, Clone)]
pub(crate) struct HubHandle {
    tx: mpsc::Sender<Input>,
}

/// The hub's inbox before the hub runs: [`HubInbox::spawn`] starts it.
#[derive(Debug)]
pub(crate) struct HubInbox {
    rx: mpsc::Receiver<Input>,
}

/// A handle that does not keep the hub alive, for the media worker: the hub stops
/// when the server's handles are gone, whatever the worker still holds.
#[derive(Debug, Clone)]
pub(crate) struct WeakHub {
    tx: mpsc::WeakSender<Input>,
}

/// The hub has stopped (the server is shutting down).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the signaling hub has stopped")]
pub(crate) struct HubStopped;

/// Makes the hub's queue; the hub runs once [`HubInbox::spawn`] is called, so that
/// the media worker can be given a [`WeakHub`] first.
pub(crate) fn channel() -> (HubHandle, HubInbox) {
    let (tx, rx) = mpsc::channel(4096);
    (HubHandle { tx }, HubInbox { rx })
}

impl HubInbox {
    /// Starts the hub task around `controller`; media commands go to `media`, phone
    /// legs to `gateway`.
    pub(crate) fn spawn(
        self,
        controller: CallController,
        media: MediaHandle,
        gateway: Gateway,
    ) -> tokio::task::JoinHandle<()> {
        let hub = Hub {
            controller,
            rx: self.rx,
            connections: BTreeMap::new(),
            next_connection: 0,
            media,
            gateway,
        };
        tokio::spawn(hub.run())
    }
}

impl WeakHub {
    /// Hands the hub what the media worker reports. Never blocks: when the queue is
    /// momentarily full a task delivers it, so an answer is never lost; a stopped hub
    /// needs no news.
    pub(crate) fn media_event(&self, event: MediaEvent) {
        let Some(tx) = self.tx.upgrade() else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(input)) = tx.try_send(Input::Media(event)) {
            tokio::spawn(async move {
                let _ = tx.send(input).await;
            });
        }
    }
}

impl WeakHub {
    /// Hands the hub what a phone leg reports, in order (waits for room in the queue;
    /// only the leg's own task waits). A stopped hub needs no news.
    pub(crate) async fn leg_event(
        &self,
        call_id: CallId,
        target: Identifier,
        leg: LegId,
        event: GatewayEvent,
    ) {
        let Some(tx) = self.tx.upgrade() else {
            return;
        };
        let _ = tx
            .send(Input::Leg {
                call_id,
                target,
                leg,
                event,
            })
            .await;
    }
}

impl WeakHub {
    /// Hands the hub keys a phone pressed (RFC 4733 from its leg), in order.
    pub(crate) async fn leg_dtmf(&self, call_id: CallId, target: Identifier, digits: String) {
        let Some(tx) = self.tx.upgrade() else {
            return;
        };
        let _ = tx
            .send(Input::LegDtmf {
                call_id,
                target,
                digits,
            })
            .await;
    }

    /// Hands the hub a new INVITE from an inbound trunk (waits for room in the queue;
    /// only the gateway's inbound task waits). A stopped hub needs no news.
    pub(crate) async fn inbound_invite(&self, invite: InboundInvite) {
        let Some(tx) = self.tx.upgrade() else {
            return;
        };
        let _ = tx.send(Input::Inbound(Box::new(invite))).await;
    }
}

impl HubHandle {
    /// A handle for the media worker that does not keep the hub running.
    pub(crate) fn downgrade(&self) -> WeakHub {
        WeakHub {
            tx: self.tx.downgrade(),
        }
    }

    /// Registers a new transport connection.
    pub(crate) async fn open(&self) -> Result<HubConnection, HubStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Input::Open { reply })
            .await
            .map_err(|_| HubStopped)?;
        rx.await.map_err(|_| HubStopped)
    }

    /// Hands the hub one frame a connection received.
    pub(crate) async fn bytes(
        &self,
        connection: ConnectionId,
        bytes: Vec<u8>,
    ) -> Result<(), HubStopped> {
        self.tx
            .send(Input::Bytes { connection, bytes })
            .await
            .map_err(|_| HubStopped)
    }

    /// Tells the hub a connection is gone. Never blocks; a stopped hub needs no news.
    pub(crate) fn closed(&self, connection: ConnectionId) {
        let tx = self.tx.clone();
        // try_send first so a connection task never waits at its end; fall back to a
        // task when the queue is momentarily full, so the close is never lost.
        if let Err(mpsc::error::TrySendError::Full(input)) =
            tx.try_send(Input::Closed { connection })
        {
            tokio::spawn(async move {
                let _ = tx.send(input).await;
            });
        }
    }

    /// The controller's counters.
    pub(crate) async fn stats(&self) -> Result<ControllerStats, HubStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Input::Stats { reply })
            .await
            .map_err(|_| HubStopped)?;
        rx.await.map_err(|_| HubStopped)
    }

    /// Refuses `user`'s tokens issued until now and ends the user's sessions (their
    /// calls end with "access revoked", their connections get a goodbye).
    pub(crate) async fn revoke(&self, user: UserId) -> Result<(), HubStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Input::Revoke { user, reply })
            .await
            .map_err(|_| HubStopped)?;
        rx.await.map_err(|_| HubStopped)
    }

    /// Ends every call with "server shutting down", says goodbye to every connection and
    /// stops the hub; returns once that is queued for every connection.
    pub(crate) async fn shut_down(&self) {
        let (done, rx) = oneshot::channel();
        if self.tx.send(Input::Shutdown { done }).await.is_ok() {
            let _ = rx.await;
        }
    }
}

struct Hub {
    controller: CallController,
    rx: mpsc::Receiver<Input>,
    connections: BTreeMap<ConnectionId, mpsc::Sender<Outbound>>,
    next_connection: u64,
    media: MediaHandle,
    gateway: Gateway,
}

impl Hub {
    async fn run(mut self) {
        loop {
            let deadline = self.controller.poll_timeout().map(Instant::from_std);
            let input = tokio::select! {
                input = self.rx.recv() => input,
                () = sleep_until(deadline) => {
                    self.controller.handle_timeout(Instant::now().into_std());
                    self.drain();
                    continue;
                }
            };
            // Handle a batch of queued inputs before sleeping again, then yield so the
            // connection tasks on this runtime get to write what was queued. Only take
            // an input off the queue when it will be handled: one taken and then left
            // at the end of a batch would be lost.
            let Some(first) = input else { return };
            let mut next = Some(first);
            let mut handled = 0;
            while let Some(input) = next.take() {
                if let Some(done) = self.handle(input) {
                    let _ = done.send(());
                    return;
                }
                handled += 1;
                if handled < BATCH {
                    next = self.rx.try_recv().ok();
                }
            }
            tokio::task::yield_now().await;
        }
    }

    /// Handles one input and drains; returns the shutdown acknowledgement when the hub
    /// must stop.
    fn handle(&mut self, input: Input) -> Option<oneshot::Sender<()>> {
        let now = Instant::now().into_std();
        match input {
            Input::Open { reply } => {
                self.next_connection += 1;
                let id = ConnectionId(self.next_connection);
                let (tx, outbound) = mpsc::channel(OUTBOUND_QUEUE);
                if reply.send(HubConnection { id, outbound }).is_ok() {
                    self.connections.insert(id, tx);
                    self.controller.handle_connect(id, now);
                }
            }
            Input::Bytes { connection, bytes } => {
                self.controller.handle_bytes(connection, &bytes, now);
                self.drain();
                return None;
            }
            Input::Closed { connection } => {
                self.connections.remove(&connection);
                self.controller.handle_disconnect(connection, now);
            }
            Input::Stats { reply } => {
                let _ = reply.send(self.controller.stats());
            }
            Input::Revoke { user, reply } => {
                self.controller
                    .revoke(&user, std::time::SystemTime::now(), now);
                self.drain();
                let _ = reply.send(());
                return None;
            }
            Input::Shutdown { done } => {
                self.controller.shut_down(now);
                self.drain();
                return Some(done);
            }
            Input::Media(event) => self.media_event(event, now),
            Input::Inbound(invite) => self.inbound(*invite, now),
            Input::LegDtmf {
                call_id,
                target,
                digits,
            } => self
                .controller
                .handle_gateway_dtmf(&call_id, &target, &digits, now),
            Input::Leg {
                call_id,
                target,
                leg,
                event,
            } => {
                let verdict = self.gateway.accept_report(&call_id, &target, leg, &event);
                if let Some(command) = verdict.media {
                    self.media.command(command);
                }
                if verdict.current {
                    self.controller
                        .handle_gateway_event(&call_id, &target, event, now);
                } else {
                    tracing::debug!(%call_id, %target, ?event, "report of a phone leg already let go");
                }
            }
        }
        self.drain();
        None
    }

    /// A new INVITE from an inbound trunk: screened by the gateway, then handed to the
    /// controller, which rings a user or puts the phone into a group call.
    fn inbound(&mut self, invite: InboundInvite, now: std::time::Instant) {
        let Some(pending) = self.gateway.screen_inbound(invite, now) else {
            return;
        };
        let (Some(target), Some(call_id)) = (pending.target(), self.gateway.inbound_call_id())
        else {
            self.gateway
                .refuse_inbound(pending, &EndReason::not_found(), now);
            return;
        };
        let caller = pending.caller();
        match self
            .controller
            .start_gateway_call(call_id, caller, target, now)
        {
            // Registered before the drain, so the controller's Answer finds the leg.
            Ok(call_id) => self.gateway.start_inbound(pending, &call_id),
            Err(reason) => self.gateway.refuse_inbound(pending, &reason, now),
        }
    }

    /// The drain rule: empty every controller output before the next input.
    fn drain(&mut self) {
        let now = Instant::now().into_std();
        // Handling a command can produce new transmits (a failed gateway leg), so loop
        // until both queues stay empty.
        loop {
            let mut any = false;
            while let Some(transmit) = self.controller.poll_transmit() {
                any = true;
                let frame: Arc<[u8]> = transmit.message.encode().into();
                self.send(transmit.connection, Outbound::Frame(frame), now);
            }
            while let Some(command) = self.controller.poll_command() {
                any = true;
                self.command(command, now);
            }
            if !any {
                return;
            }
        }
    }

    fn command(&mut self, command: Command, now: std::time::Instant) {
        match command {
            Command::Close { connection, reason } => {
                self.send(connection, Outbound::Close(reason), now);
                self.connections.remove(&connection);
            }
            Command::Gateway(GatewayCommand::Dial {
                call_id,
                target: Identifier::EchoService,
                ..
            }) => {
                // The media worker runs the echo bot: it joins the room as soon as the
                // controller says the leg answered, and reports when the test is over.
                self.controller.handle_gateway_event(
                    &call_id,
                    &Identifier::EchoService,
                    GatewayEvent::Answered,
                    now,
                );
            }
            Command::Gateway(GatewayCommand::Dial {
                call_id,
                target: Identifier::Phone(number),
                caller,
                caller_id,
            }) => {
                let placed = self
                    .gateway
                    .dial(&call_id, &number, &caller, caller_id.as_ref(), now);
                if let Err(reason) = placed {
                    tracing::debug!(%call_id, %number, ?reason, "phone leg refused");
                    self.controller.handle_gateway_event(
                        &call_id,
                        &Identifier::Phone(number),
                        GatewayEvent::Ended(reason),
                        now,
                    );
                }
            }
            Command::Gateway(GatewayCommand::Dial {
                call_id, target, ..
            }) => {
                // The controller dials users through their sessions, never here.
                tracing::debug!(%call_id, %target, "no gateway for this target");
                let ended = GatewayEvent::Ended(EndReason::not_found());
                self.controller
                    .handle_gateway_event(&call_id, &target, ended, now);
            }
            Command::Gateway(GatewayCommand::SendDtmf {
                call_id,
                target,
                digits,
            }) => self.gateway.send_dtmf(&call_id, &target, &digits),
            Command::Gateway(GatewayCommand::Answer { call_id, target }) => {
                self.gateway.answer(&call_id, &target);
            }
            Command::Gateway(GatewayCommand::HangUp {
                call_id,
                target,
                reason,
            }) => {
                if let Some(command) = self.gateway.hang_up(&call_id, &target, &reason) {
                    self.media.command(command);
                }
            }
            Command::Media(command) => self.media.command(command),
        }
    }

    /// What the media worker reported.
    fn media_event(&mut self, event: MediaEvent, now: std::time::Instant) {
        match event {
            MediaEvent::Answer {
                call_id,
                participant,
                sdp,
            } => {
                let payload = MediaPayload {
                    kind: MediaPayloadKind::Answer,
                    sdp,
                };
                self.controller.send_media(&call_id, &participant, payload);
            }
            MediaEvent::OfferRefused {
                call_id,
                participant,
                reason,
            } => {
                tracing::debug!(%call_id, %participant, %reason, "telling the client its offer was refused");
                self.controller.send_media_error(
                    &call_id,
                    &participant,
                    &format!("media offer refused: {reason}"),
                );
            }
            MediaEvent::Failed {
                call_id,
                participant,
            } => self.controller.handle_media_failure(&call_id, &participant),
            MediaEvent::LegEnded {
                call_id,
                target,
                reason,
            } => self.controller.handle_gateway_event(
                &call_id,
                &target,
                GatewayEvent::Ended(reason),
                now,
            ),
            MediaEvent::DominantSpeakers { call_id, speakers } => {
                self.controller.set_dominant_speakers(&call_id, speakers);
            }
            MediaEvent::VideoSlots {
                call_id,
                participant,
                slots,
            } => {
                self.controller
                    .send_video_slots(&call_id, &participant, slots);
            }
        }
    }

    /// Queues a frame for a connection without waiting; a connection that cannot keep
    /// up is dropped rather than allowed to stall every other call.
    fn send(&mut self, connection: ConnectionId, outbound: Outbound, now: std::time::Instant) {
        let Some(tx) = self.connections.get(&connection) else {
            return;
        };
        if let Err(e) = tx.try_send(outbound) {
            tracing::debug!(
                ?connection,
                full = matches!(e, mpsc::error::TrySendError::Full(_)),
                "dropping slow or gone connection"
            );
            self.connections.remove(&connection);
            self.controller.handle_disconnect(connection, now);
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use ringwire_signaling::controller::ControllerConfig;
    use ringwire_signaling::{ClientMessage, ErrorCode, ServerMessage, TokenKey};

    use super::*;

    /// Far more inputs than one batch, queued before the hub runs: every one is
    /// handled (an input taken off the queue at the end of a batch once was lost).
    #[tokio::test]
    async fn handles_every_input_across_batches() {
        let key = TokenKey::new(&[3; 32]).unwrap();
        let config = ControllerConfig::new(key, 1, Instant::now().into_std(), SystemTime::now());
        // Queue everything before the hub runs, so that it works through full batches.
        let (tx, rx) = mpsc::channel(4096);
        let hub = Hub {
            controller: CallController::new(config),
            rx,
            connections: BTreeMap::new(),
            next_connection: 0,
            media: MediaHandle::detached(),
            gateway: Gateway::disabled(),
        };
        let (reply, opened) = oneshot::channel();
        tx.try_send(Input::Open { reply }).unwrap();
        let first = ConnectionId(1); // The hub numbers connections from 1.
        let count = BATCH * 3 + 7;
        let ping = ClientMessage::Ping { seq: 0 }.encode();
        for _ in 0..count {
            tx.try_send(Input::Bytes {
                connection: first,
                bytes: ping.clone(),
            })
            .unwrap();
        }
        let task = tokio::spawn(hub.run());
        let mut conn = opened.await.unwrap();
        assert_eq!(conn.id, first);
        for i in 0..count {
            let frame = tokio::time::timeout(Duration::from_secs(10), conn.outbound.recv())
                .await
                .unwrap_or_else(|_| panic!("answer {i} of {count} never came"))
                .unwrap();
            let Outbound::Frame(bytes) = frame else {
                panic!("closed after {i}")
            };
            // Before `auth` every message is refused, one error each.
            let message = ServerMessage::decode(&bytes).unwrap();
            assert!(matches!(
                message,
                ServerMessage::Error {
                    code: ErrorCode::NotAuthenticated,
                    ..
                }
            ));
        }
        HubHandle { tx }.shut_down().await;
        task.await.unwrap();
    }
}
