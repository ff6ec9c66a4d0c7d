//! A whole signaling deployment in virtual time: one [`CallController`], many
//! [`ClientSession`]s, and an emulated reliable link each way per client.
//!
//! Messages cross the links as encoded bytes, so every scenario also exercises the wire
//! format. Phone and echo legs are played by a scripted gateway: the echo service
//! answers at once, and tests decide what each phone number does.
//!
//! ```
//! use ringwire_testkit::signaling::SignalingWorld;
//! use ringwire_testkit::{Seed, Sim};
//!
//! let world = SignalingWorld::builder(Seed::new(1)).build();
//! let mut sim = Sim::with_clock(world.clock(), Seed::new(1), world);
//! let alice = sim.act(|w, now| w.add_user("alice", now));
//! let bob = sim.act(|w, now| w.add_user("bob", now));
//! sim.settle();
//! let bob_id = sim.world().id(bob);
//! let call = sim.act(|w, now| w.session_mut(alice).start_call(&[bob_id], Default::default(), now)).unwrap();
//! sim.settle();
//! sim.act(|w, now| w.session_mut(bob).accept(&call, Default::default(), now)).unwrap();
//! sim.settle();
//! assert_eq!(sim.world().call_state(alice, &call), Some(ringwire_signaling::CallState::Connected));
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use ringwire_netsim::{Link, LinkConfig};
use ringwire_signaling::controller::{
    CallController, Command, ConnectionId, ControllerConfig, GatewayCommand, GatewayEvent,
    MediaCommand,
};
use ringwire_signaling::session::{ClientSession, Event, SessionConfig};
use ringwire_signaling::token::{Scope, Scopes, TokenKey};
use ringwire_signaling::{CallId, CallState, ClientMessage, EndReason, Identifier, UserId};

use crate::clock::Clock;
use crate::seed::Seed;
use crate::sim::Node;

/// Index of a client in a [`SignalingWorld`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientIdx(pub usize);

/// What the scripted gateway does when a phone number (or the echo service) is dialled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayScript {
    /// Answers after the delay.
    Answer(Duration),
    /// Plays early media after the first delay, answers after the second.
    EarlyMediaThenAnswer(Duration, Duration),
    /// Ends the leg with this SIP-like code after the delay (486 busy, 404, 603...).
    Fail(Duration, u16),
    /// Rings until the call gives up on it.
    RingForever,
}

/// Builds a [`SignalingWorld`].
#[derive(Debug)]
pub struct SignalingWorldBuilder {
    seed: Seed,
    link: LinkConfig,
    configure: Vec<fn(&mut ControllerConfig)>,
    max_participants: Option<usize>,
    ring_timeout: Option<Duration>,
    resume_grace: Option<Duration>,
}

impl SignalingWorldBuilder {
    /// The link every client uses each way (default: reliable, 20 ms).
    pub fn link(mut self, link: LinkConfig) -> Self {
        self.link = link;
        self
    }

    /// The controller's participant limit.
    pub fn max_participants(mut self, n: usize) -> Self {
        self.max_participants = Some(n);
        self
    }

    /// The controller's ring timeout.
    pub fn ring_timeout(mut self, d: Duration) -> Self {
        self.ring_timeout = Some(d);
        self
    }

    /// The controller's resume grace period.
    pub fn resume_grace(mut self, d: Duration) -> Self {
        self.resume_grace = Some(d);
        self
    }

    /// Changes any other controller setting.
    pub fn configure(mut self, f: fn(&mut ControllerConfig)) -> Self {
        self.configure.push(f);
        self
    }

    /// The world, with its clock at a fresh base instant.
    pub fn build(self) -> SignalingWorld {
        let clock = Clock::new();
        let key = TokenKey::new(
            &self
                .seed
                .derive("token key")
                .value()
                .to_le_bytes()
                .repeat(4),
        )
        .expect("32 bytes is a valid key");
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut config = ControllerConfig::new(
            key.clone(),
            self.seed.derive("controller").value(),
            clock.now(),
            wall,
        );
        if let Some(n) = self.max_participants {
            config.max_participants = n;
        }
        if let Some(d) = self.ring_timeout {
            config.ring_timeout = d;
        }
        if let Some(d) = self.resume_grace {
            config.resume_grace = d;
        }
        for f in &self.configure {
            f(&mut config);
        }
        SignalingWorld {
            controller: CallController::new(config),
            key,
            clock,
            wall,
            seed: self.seed,
            link: self.link,
            clients: Vec::new(),
            by_connection: BTreeMap::new(),
            next_connection: 0,
            scripts: BTreeMap::new(),
            gateway_queue: VecDeque::new(),
            gateway_log: Vec::new(),
            media_log: Vec::new(),
            closing: Vec::new(),
        }
    }
}

/// One client of the world.
#[derive(Debug)]
pub struct Client {
    /// The name the test gave it (also its user id).
    pub name: String,
    /// Its identifier, `8:<name>`.
    pub id: Identifier,
    /// Its session core.
    pub session: ClientSession,
    /// Every event the session emitted, in order.
    pub events: Vec<Event>,
    connection: Option<ConnectionId>,
    up: Link<Vec<u8>>,
    down: Link<Vec<u8>>,
}

/// The world; drive it with [`crate::Sim`].
#[derive(Debug)]
pub struct SignalingWorld {
    /// The server's controller.
    pub controller: CallController,
    key: TokenKey,
    clock: Clock,
    wall: SystemTime,
    seed: Seed,
    link: LinkConfig,
    clients: Vec<Client>,
    by_connection: BTreeMap<ConnectionId, ClientIdx>,
    next_connection: u64,
    scripts: BTreeMap<Identifier, GatewayScript>,
    gateway_queue: VecDeque<(Instant, CallId, Identifier, GatewayEvent)>,
    gateway_log: Vec<GatewayCommand>,
    media_log: Vec<MediaCommand>,
    /// Clients whose connection the server closed, waiting for in-flight messages.
    closing: Vec<ClientIdx>,
}

impl SignalingWorld {
    /// Starts building a world.
    pub fn builder(seed: Seed) -> SignalingWorldBuilder {
        SignalingWorldBuilder {
            seed,
            link: LinkConfig::reliable(Duration::from_millis(20)),
            configure: Vec::new(),
            max_participants: None,
            ring_timeout: None,
            resume_grace: None,
        }
    }

    /// The clock the world was built at; hand it to [`crate::Sim::with_clock`].
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Adds a user with the `voip` scope and connects it.
    pub fn add_user(&mut self, name: &str, now: Instant) -> ClientIdx {
        self.add_user_with(name, Scopes::from(Scope::Voip), now)
    }

    /// Adds a user with the given scopes and connects it.
    pub fn add_user_with(&mut self, name: &str, scopes: Scopes, now: Instant) -> ClientIdx {
        let token = self.token(name, scopes, now);
        let idx = ClientIdx(self.clients.len());
        let seed = self.seed.derive(&format!("client {}", idx.0)).value();
        let config = SessionConfig::new(token, seed);
        let up_seed = self.seed.derive(&format!("up {}", idx.0)).value();
        let down_seed = self.seed.derive(&format!("down {}", idx.0)).value();
        self.clients.push(Client {
            name: name.to_owned(),
            id: Identifier::user(name).expect("test user names are valid"),
            session: ClientSession::new(config, now),
            events: Vec::new(),
            connection: None,
            up: Link::new(self.link.clone(), up_seed),
            down: Link::new(self.link.clone(), down_seed),
        });
        self.connect(idx, now);
        idx
    }

    /// A token for `name`, issued now for an hour.
    pub fn token(&self, name: &str, scopes: Scopes, now: Instant) -> String {
        let user = UserId::new(name).expect("test user names are valid");
        self.key
            .issue(&user, scopes, self.wall_at(now), Duration::from_secs(3600))
    }

    /// Wall-clock time at `now`, as the controller sees it.
    pub fn wall_at(&self, now: Instant) -> SystemTime {
        self.wall + now.saturating_duration_since(self.clock.base())
    }

    /// Opens a new connection for the client (first connect or reconnect).
    pub fn connect(&mut self, idx: ClientIdx, now: Instant) {
        self.next_connection += 1;
        let connection = ConnectionId(self.next_connection);
        self.controller.handle_connect(connection, now);
        self.by_connection.insert(connection, idx);
        let client = &mut self.clients[idx.0];
        client.connection = Some(connection);
        client.session.handle_connected(now);
        self.drain(now);
    }

    /// Drops the client's connection: what is in flight is lost, both ends notice.
    pub fn drop_connection(&mut self, idx: ClientIdx, now: Instant) {
        let client = &mut self.clients[idx.0];
        client.up.drop_in_flight();
        client.down.drop_in_flight();
        if let Some(connection) = client.connection.take() {
            self.by_connection.remove(&connection);
            client.session.handle_disconnected(now);
            self.controller.handle_disconnect(connection, now);
        }
        self.drain(now);
    }

    /// Sends raw bytes from the client's connection to the server, bypassing its session.
    pub fn send_raw(&mut self, idx: ClientIdx, bytes: Vec<u8>, now: Instant) {
        self.clients[idx.0].up.send(bytes, now);
    }

    /// Sends a message from the client's connection, bypassing its session (to test
    /// requests a well-behaved session would refuse to make).
    pub fn send_message(&mut self, idx: ClientIdx, message: &ClientMessage, now: Instant) {
        self.send_raw(idx, message.encode(), now);
    }

    /// Scripts what the gateway does when `target` is dialled.
    pub fn script_gateway(&mut self, target: Identifier, script: GatewayScript) {
        self.scripts.insert(target, script);
    }

    /// Reports a gateway event now, as the PSTN gateway would.
    pub fn gateway_event(
        &mut self,
        call: &CallId,
        target: &Identifier,
        event: GatewayEvent,
        now: Instant,
    ) {
        self.controller
            .handle_gateway_event(call, target, event, now);
        self.drain(now);
    }

    /// The client.
    pub fn client(&self, idx: ClientIdx) -> &Client {
        &self.clients[idx.0]
    }

    /// All clients, in the order they were added.
    pub fn clients(&self) -> &[Client] {
        &self.clients
    }

    /// The client's identifier.
    pub fn id(&self, idx: ClientIdx) -> Identifier {
        self.clients[idx.0].id.clone()
    }

    /// The client's session, for commands. Drain happens on the next step.
    pub fn session_mut(&mut self, idx: ClientIdx) -> &mut ClientSession {
        &mut self.clients[idx.0].session
    }

    /// The client's session.
    pub fn session(&self, idx: ClientIdx) -> &ClientSession {
        &self.clients[idx.0].session
    }

    /// The client's view of a call's state.
    pub fn call_state(&self, idx: ClientIdx, call: &CallId) -> Option<CallState> {
        self.session(idx).call(call).map(|c| c.state())
    }

    /// The client's events so far.
    pub fn events(&self, idx: ClientIdx) -> &[Event] {
        &self.clients[idx.0].events
    }

    /// Takes the client's events so far.
    pub fn take_events(&mut self, idx: ClientIdx) -> Vec<Event> {
        std::mem::take(&mut self.clients[idx.0].events)
    }

    /// Gateway commands the controller issued so far.
    pub fn gateway_log(&self) -> &[GatewayCommand] {
        &self.gateway_log
    }

    /// Media commands the controller issued so far.
    pub fn media_log(&self) -> &[MediaCommand] {
        &self.media_log
    }

    /// Delivers everything due and drains every core until nothing more happens at `now`.
    fn run_due(&mut self, now: Instant) {
        loop {
            let mut progressed = false;
            for i in 0..self.clients.len() {
                while let Some(bytes) = self.clients[i].up.poll_receive(now) {
                    progressed = true;
                    // A message in flight when the connection dropped is lost with it.
                    if let Some(connection) = self.clients[i].connection {
                        self.controller.handle_bytes(connection, &bytes, now);
                        self.drain(now);
                    }
                }
                while let Some(bytes) = self.clients[i].down.poll_receive(now) {
                    progressed = true;
                    let client = &mut self.clients[i];
                    if let Err(e) = client.session.handle_bytes(&bytes, now) {
                        panic!("{} could not handle a server message: {e}", client.name);
                    }
                    self.drain(now);
                }
                if self.clients[i]
                    .session
                    .poll_timeout()
                    .is_some_and(|t| t <= now)
                {
                    progressed = true;
                    self.clients[i].session.handle_timeout(now);
                    self.drain(now);
                }
            }
            if self.controller.poll_timeout().is_some_and(|t| t <= now) {
                progressed = true;
                self.controller.handle_timeout(now);
                self.drain(now);
            }
            let closing = std::mem::take(&mut self.closing);
            for idx in closing {
                if self.clients[idx.0].down.poll_timeout().is_some() {
                    self.closing.push(idx);
                    continue;
                }
                progressed = true;
                self.clients[idx.0].session.handle_disconnected(now);
                self.drain(now);
            }
            while self
                .gateway_queue
                .front()
                .is_some_and(|(at, ..)| *at <= now)
            {
                progressed = true;
                if let Some((_, call, target, event)) = self.gateway_queue.pop_front() {
                    self.controller
                        .handle_gateway_event(&call, &target, event, now);
                    self.drain(now);
                }
            }
            if !progressed {
                break;
            }
        }
    }

    /// The drain rule: empties every core's outputs into links and logs.
    fn drain(&mut self, now: Instant) {
        while let Some(t) = self.controller.poll_transmit() {
            if let Some(idx) = self.by_connection.get(&t.connection) {
                self.clients[idx.0].down.send(t.message.encode(), now);
            }
        }
        while let Some(command) = self.controller.poll_command() {
            match command {
                Command::Close { connection, .. } => {
                    if let Some(idx) = self.by_connection.remove(&connection) {
                        let client = &mut self.clients[idx.0];
                        if client.connection == Some(connection) {
                            client.connection = None;
                            // The session notices once what was sent before the close
                            // (the error saying why) has arrived.
                            self.closing.push(idx);
                        }
                    }
                }
                Command::Media(m) => self.media_log.push(m),
                Command::Gateway(g) => {
                    if let GatewayCommand::Dial {
                        call_id, target, ..
                    } = &g
                    {
                        self.schedule_gateway(call_id, target, now);
                    }
                    self.gateway_log.push(g);
                }
            }
        }
        for client in &mut self.clients {
            while let Some(message) = client.session.poll_transmit() {
                client.up.send(message.encode(), now);
            }
            while let Some(event) = client.session.poll_event() {
                client.events.push(event);
            }
        }
    }

    fn schedule_gateway(&mut self, call: &CallId, target: &Identifier, now: Instant) {
        let script = match (self.scripts.get(target), target) {
            (Some(s), _) => s.clone(),
            (None, Identifier::EchoService) => GatewayScript::Answer(Duration::from_millis(10)),
            (None, _) => GatewayScript::RingForever,
        };
        let mut push = |after: Duration, event| {
            self.gateway_queue
                .push_back((now + after, call.clone(), target.clone(), event));
        };
        match script {
            GatewayScript::Answer(d) => push(d, GatewayEvent::Answered),
            GatewayScript::EarlyMediaThenAnswer(a, b) => {
                push(a, GatewayEvent::EarlyMedia);
                push(b, GatewayEvent::Answered);
            }
            GatewayScript::Fail(d, code) => {
                let reason = EndReason::new(code, 0, "gateway leg failed");
                push(d, GatewayEvent::Ended(reason));
            }
            GatewayScript::RingForever => push(Duration::ZERO, GatewayEvent::Ringing),
        }
        self.gateway_queue
            .make_contiguous()
            .sort_by_key(|(at, ..)| *at);
    }

    /// Messages the server sent to a client that it decoded as errors, for assertions.
    pub fn errors(&self, idx: ClientIdx) -> Vec<&Event> {
        self.events(idx)
            .iter()
            .filter(|e| matches!(e, Event::RequestFailed { .. }))
            .collect()
    }
}

/// How long [`Sim::settle`] lets a world run: far longer than any exchange on the
/// default links, far shorter than any timer a scenario waits for (ring, grace).
pub const SETTLE: Duration = Duration::from_secs(1);

impl crate::Sim<SignalingWorld> {
    /// Lets every message in flight arrive and be answered ([`SETTLE`] of virtual time).
    ///
    /// Keepalive timers never let a signaling world go idle, so scenarios settle for a
    /// fixed virtual time instead of running until idle.
    pub fn settle(&mut self) {
        self.run_for(SETTLE);
    }
}

impl Node for SignalingWorld {
    fn poll_timeout(&mut self) -> Option<Instant> {
        let clients = self.clients.iter().flat_map(|c| {
            [
                c.session.poll_timeout(),
                c.up.poll_timeout(),
                c.down.poll_timeout(),
            ]
        });
        [
            self.controller.poll_timeout(),
            self.gateway_queue.front().map(|(at, ..)| *at),
        ]
        .into_iter()
        .chain(clients)
        .flatten()
        .min()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.drain(now);
        self.run_due(now);
    }
}
