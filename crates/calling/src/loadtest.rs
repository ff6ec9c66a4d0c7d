//! The signaling load generator behind `ringwire loadtest signaling`.
//!
//! Opens `clients` real [`SignalingClient`] connections to a running server (tokens
//! made with its access key), then runs `calls` call flows at once, each on its own
//! clients: half (rounded up) 1:1 calls (start, ring, accept, mute, hang up) and the
//! rest group calls (everyone joins the group's call, sees the full roster, hangs up),
//! the clients left over shared out among the groups. It reports connect latency
//! (transport up to `authenticated`), join latency (`accept` or `join` to our
//! `Connected`), 1:1 setup latency (`start_call` to the caller's `Connected`), and
//! messages per second over the call phase: requests the clients sent plus events the
//! servers' messages raised, per second.
//!
//! Bounded: every wait has a guard, the whole run a deadline; connections are opened
//! a bounded number at a time; every client is closed at the end.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use ringwire_signaling::{
    CallId, CallState, Event, GroupId, Identifier, JoinOptions, ParticipantState, Scope, Scopes,
    TokenKey, UserId,
};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::{ConnectOptions, Endpoint, EventStream, SignalingClient};

/// Most members of one group call.
const MAX_GROUP: usize = 50;

/// What to run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LoadtestConfig {
    /// The server.
    pub endpoint: Endpoint,
    /// The key the server signs tokens with.
    pub token_key: TokenKey,
    /// How many connections to open.
    pub clients: usize,
    /// How many call flows to run at once.
    pub calls: usize,
    /// How many connections may be opening at once.
    pub connect_concurrency: usize,
    /// The longest one expected step may take before it counts as failed.
    pub step_timeout: Duration,
    /// The longest the whole run may take.
    pub deadline: Duration,
    /// Seeds the clients (call ids, jitter).
    pub seed: u64,
}

impl LoadtestConfig {
    /// A run of `clients` connections and `calls` calls with default bounds (64 opening
    /// at once, 30 s a step, 10 minutes in all).
    pub fn new(endpoint: Endpoint, token_key: TokenKey, clients: usize, calls: usize) -> Self {
        LoadtestConfig {
            endpoint,
            token_key,
            clients,
            calls,
            connect_concurrency: 64,
            step_timeout: Duration::from_secs(30),
            deadline: Duration::from_secs(600),
            seed: 1,
        }
    }
}

/// The load test cannot run as asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadtestError {
    /// Too few clients for the calls: each 1:1 call needs 2, each group call 3.
    #[error("{clients} clients are too few for {calls} calls (1:1 calls need 2, group calls 3)")]
    TooFewClients {
        /// Clients asked for.
        clients: usize,
        /// Calls asked for.
        calls: usize,
    },
    /// No connection could be made at all.
    #[error("no client could connect: {0}")]
    NoConnection(crate::Error),
    /// The run went past its deadline.
    #[error("the load test went past its deadline of {0:?}")]
    Deadline(Duration),
}

/// Latency percentiles of one kind of step.
#[derive(Debug, Clone, Default)]
pub struct Percentiles {
    /// How many were measured.
    pub count: usize,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Slowest.
    pub max: Duration,
}

/// What a load test measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Connections asked for.
    pub clients: usize,
    /// Connections that authenticated.
    pub connected: usize,
    /// Transport up to `authenticated`.
    pub connect: Percentiles,
    /// `accept`/`join` to our `Connected`.
    pub join: Percentiles,
    /// `start_call` to the caller's `Connected` (1:1 calls).
    pub setup: Percentiles,
    /// 1:1 calls that completed.
    pub one_to_one_ok: usize,
    /// Group calls that completed.
    pub group_ok: usize,
    /// Members of each group call.
    pub group_size: usize,
    /// Calls that failed a step.
    pub calls_failed: usize,
    /// Requests sent plus events received during the call phase.
    pub messages: u64,
    /// How long the call phase took.
    pub call_phase: Duration,
    /// How long connecting took.
    pub connect_phase: Duration,
}

impl Report {
    /// Messages per second over the call phase.
    pub fn messages_per_second(&self) -> f64 {
        self.messages as f64 / self.call_phase.as_secs_f64().max(f64::EPSILON)
    }
}

impl fmt::Display for Percentiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (n = {})",
            ms(self.p50),
            ms(self.p99),
            ms(self.max),
            self.count
        )
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "clients:   {}/{} connected in {:.2} s",
            self.connected,
            self.clients,
            self.connect_phase.as_secs_f64()
        )?;
        writeln!(f, "connect:   {}", self.connect)?;
        writeln!(f, "join:      {}", self.join)?;
        writeln!(f, "1:1 setup: {}", self.setup)?;
        writeln!(
            f,
            "calls:     {} 1:1 + {} group (of {}) ok, {} failed, in {:.2} s",
            self.one_to_one_ok,
            self.group_ok,
            self.group_size,
            self.calls_failed,
            self.call_phase.as_secs_f64()
        )?;
        write!(
            f,
            "messages:  {} ({:.0}/s: requests sent + events received)",
            self.messages,
            self.messages_per_second()
        )
    }
}

/// One connected load-test client.
struct Member {
    id: Identifier,
    client: SignalingClient,
    events: EventStream,
}

/// Shared counters of a run.
struct Counters {
    messages: AtomicU64,
    step_timeout: Duration,
}

/// What one call flow measured.
#[derive(Default)]
struct Flow {
    join: Vec<Duration>,
    setup: Vec<Duration>,
    group: bool,
    failed: bool,
}

/// Runs the load test.
///
/// # Errors
/// [`LoadtestError::TooFewClients`], [`LoadtestError::NoConnection`] when not one
/// client connects, [`LoadtestError::Deadline`].
pub async fn run(config: LoadtestConfig) -> Result<Report, LoadtestError> {
    let deadline = config.deadline;
    tokio::time::timeout(deadline, run_inner(config))
        .await
        .map_err(|_| LoadtestError::Deadline(deadline))?
}

async fn run_inner(config: LoadtestConfig) -> Result<Report, LoadtestError> {
    let one_to_one = config.calls.div_ceil(2);
    let groups = config.calls - one_to_one;
    let spare = config.clients.saturating_sub(2 * one_to_one);
    let group_size = spare.checked_div(groups).unwrap_or(0).min(MAX_GROUP);
    if 2 * one_to_one > config.clients || (groups > 0 && group_size < 3) {
        return Err(LoadtestError::TooFewClients {
            clients: config.clients,
            calls: config.calls,
        });
    }
    let mut report = Report {
        clients: config.clients,
        group_size,
        ..Report::default()
    };

    // Connect, a bounded number at a time.
    let run_id = config.seed;
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(config.connect_concurrency.max(1)));
    let mut connecting = JoinSet::new();
    for i in 0..config.clients {
        let gate = Arc::clone(&gate);
        let endpoint = config.endpoint.clone();
        let name = format!("lt{run_id:x}-{i}");
        let user = UserId::new(&name).expect("load-test user names are valid ids");
        let token = config.token_key.issue(
            &user,
            Scopes::from(Scope::Voip),
            SystemTime::now(),
            Duration::from_secs(3600),
        );
        let options = ConnectOptions {
            seed: Some(config.seed.wrapping_mul(1_000_003).wrapping_add(i as u64)),
            connect_timeout: config.step_timeout,
            ..ConnectOptions::default()
        };
        connecting.spawn(async move {
            let _permit = gate
                .acquire_owned()
                .await
                .expect("the gate is never closed");
            let t0 = Instant::now();
            let result = SignalingClient::connect(endpoint, token, options).await;
            (i, Identifier::User(user), t0.elapsed(), result)
        });
    }
    let mut members: Vec<Option<Member>> = (0..config.clients).map(|_| None).collect();
    let mut connect_times = Vec::new();
    let mut first_error = None;
    while let Some(joined) = connecting.join_next().await {
        let Ok((i, id, took, result)) = joined else {
            continue;
        };
        match result {
            Ok((client, events)) => {
                connect_times.push(took);
                members[i] = Some(Member { id, client, events });
            }
            Err(error) => {
                tracing::debug!(%error, client = i, "load-test client failed to connect");
                first_error.get_or_insert(error);
            }
        }
    }
    report.connect_phase = started.elapsed();
    report.connected = connect_times.len();
    report.connect = percentiles(connect_times);
    if report.connected == 0 {
        return Err(LoadtestError::NoConnection(
            first_error.unwrap_or(crate::Error::ConnectionLost),
        ));
    }

    // Calls: each flow owns its members. A flow whose members failed to connect
    // counts as failed.
    let counters = Arc::new(Counters {
        messages: AtomicU64::new(0),
        step_timeout: config.step_timeout,
    });
    let mut slots = members.into_iter();
    let mut flows = JoinSet::new();
    let call_started = Instant::now();
    for _ in 0..one_to_one {
        let pair: Vec<_> = slots.by_ref().take(2).collect();
        let counters = Arc::clone(&counters);
        flows.spawn(async move {
            let Some(pair) = all_connected(pair) else {
                return (
                    Flow {
                        failed: true,
                        ..Flow::default()
                    },
                    Vec::new(),
                );
            };
            let mut pair: [Member; 2] = pair.try_into().ok().expect("two members");
            let flow = one_to_one_flow(&mut pair, &counters).await;
            (flow, pair.into())
        });
    }
    for g in 0..groups {
        let group: Vec<_> = slots.by_ref().take(group_size).collect();
        let counters = Arc::clone(&counters);
        let group_id = GroupId::new(&format!("lt{run_id:x}-g{g}")).expect("valid group id");
        flows.spawn(async move {
            let Some(mut group) = all_connected(group) else {
                return (
                    Flow {
                        failed: true,
                        group: true,
                        ..Flow::default()
                    },
                    Vec::new(),
                );
            };
            let flow = group_flow(&mut group, &group_id, &counters).await;
            (flow, group)
        });
    }
    let mut idle: Vec<Member> = slots.flatten().collect();
    let mut join_times = Vec::new();
    let mut setup_times = Vec::new();
    while let Some(done) = flows.join_next().await {
        let Ok((flow, members)) = done else {
            report.calls_failed += 1;
            continue;
        };
        idle.extend(members);
        join_times.extend(flow.join);
        setup_times.extend(flow.setup);
        match (flow.failed, flow.group) {
            (true, _) => report.calls_failed += 1,
            (false, false) => report.one_to_one_ok += 1,
            (false, true) => report.group_ok += 1,
        }
    }
    report.call_phase = call_started.elapsed();
    report.messages = counters.messages.load(Ordering::Relaxed);
    report.join = percentiles(join_times);
    report.setup = percentiles(setup_times);

    // Close everyone, a bounded number at a time.
    let mut closing = JoinSet::new();
    for member in idle {
        let gate = Arc::clone(&gate);
        closing.spawn(async move {
            let _permit = gate
                .acquire_owned()
                .await
                .expect("the gate is never closed");
            member.client.close().await;
        });
    }
    while closing.join_next().await.is_some() {}
    Ok(report)
}

fn all_connected(members: Vec<Option<Member>>) -> Option<Vec<Member>> {
    members.into_iter().collect()
}

/// Start, ring, accept, mute round trip, hang up.
async fn one_to_one_flow(pair: &mut [Member; 2], counters: &Counters) -> Flow {
    let mut flow = Flow::default();
    let result: Result<(), &'static str> = async {
        let [a, b] = pair;
        let t0 = Instant::now();
        let call = a
            .client
            .start_call(std::slice::from_ref(&b.id), JoinOptions::default())
            .await
            .map_err(|_| "start_call refused")?;
        counters.sent(1);
        let incoming = wait(b, counters, |e| match e {
            Event::IncomingCall { call_id, .. } => Some(call_id.clone()),
            _ => None,
        })
        .await?;
        if incoming != call {
            return Err("rung for another call");
        }
        let t1 = Instant::now();
        b.client
            .accept(&call, JoinOptions::default())
            .await
            .map_err(|_| "accept refused")?;
        counters.sent(1);
        wait_state(b, &call, CallState::Connected, counters).await?;
        flow.join.push(t1.elapsed());
        wait_state(a, &call, CallState::Connected, counters).await?;
        flow.setup.push(t0.elapsed());

        a.client.mute(&call).await.map_err(|_| "mute refused")?;
        counters.sent(1);
        let a_id = a.id.clone();
        wait(b, counters, |e| match e {
            Event::ParticipantUpdated { participant, .. }
                if participant.id == a_id && participant.muted =>
            {
                Some(())
            }
            _ => None,
        })
        .await?;

        a.client
            .hang_up(&call, false)
            .await
            .map_err(|_| "hang_up refused")?;
        counters.sent(1);
        wait_state(a, &call, CallState::Disconnected, counters).await?;
        wait_state(b, &call, CallState::Disconnected, counters).await?;
        Ok(())
    }
    .await;
    if let Err(step) = result {
        tracing::warn!(step, "1:1 flow failed");
        flow.failed = true;
    }
    flow
}

/// Everyone joins, everyone sees everyone connected, everyone hangs up.
async fn group_flow(group: &mut [Member], group_id: &GroupId, counters: &Counters) -> Flow {
    let mut flow = Flow {
        group: true,
        ..Flow::default()
    };
    let size = group.len();
    let result: Result<(), &'static str> = async {
        let mut joins = Vec::new();
        // Everyone joins at once; each measures its own join.
        let waits = group.iter_mut().map(|member| async move {
            let t0 = Instant::now();
            let call = member
                .client
                .join(group_id, JoinOptions::default(), false)
                .await
                .map_err(|_| "join refused")?;
            counters.sent(1);
            if let Err(step) = wait_state(member, &call, CallState::Connected, counters).await {
                tracing::warn!(member = %member.id, step, "group member not connected");
                return Err(step);
            }
            let took = t0.elapsed();
            // Then the roster fills up: everyone else connected.
            let mut connected = std::collections::BTreeSet::new();
            if let Some(view) = member.client.call(&call).await.ok().flatten() {
                for p in view.remote_participants() {
                    if p.state() == ParticipantState::Connected {
                        connected.insert(p.id().clone());
                    }
                }
            }
            while connected.len() < size - 1 {
                let id = wait(member, counters, |e| match e {
                    Event::ParticipantAdded { participant, .. }
                    | Event::ParticipantUpdated { participant, .. }
                        if participant.state == ParticipantState::Connected =>
                    {
                        Some(participant.id.clone())
                    }
                    _ => None,
                })
                .await
                .inspect_err(|step| {
                    tracing::warn!(member = %member.id, step, seen = connected.len(), "roster incomplete");
                })?;
                connected.insert(id);
            }
            Ok::<_, &'static str>((call, took))
        });
        let mut call = None;
        for result in futures_util::future::join_all(waits).await {
            let (id, took) = result?;
            joins.push(took);
            call = Some(id);
        }
        flow.join = joins;
        let call: CallId = call.ok_or("empty group")?;
        for member in group.iter_mut() {
            member
                .client
                .hang_up(&call, false)
                .await
                .map_err(|_| "hang_up refused")?;
            counters.sent(1);
            wait_state(member, &call, CallState::Disconnected, counters).await?;
        }
        Ok(())
    }
    .await;
    if let Err(step) = result {
        tracing::warn!(step, %group_id, "group flow failed");
        flow.failed = true;
    }
    flow
}

impl Counters {
    fn sent(&self, n: u64) {
        self.messages.fetch_add(n, Ordering::Relaxed);
    }
}

/// The first event `f` picks, counting every event; a guard bounds the wait.
async fn wait<T>(
    member: &mut Member,
    counters: &Counters,
    mut f: impl FnMut(&Event) -> Option<T>,
) -> Result<T, &'static str> {
    let (id, events) = (&member.id, &mut member.events);
    let found = async {
        while let Some(event) = events.recv().await {
            counters.messages.fetch_add(1, Ordering::Relaxed);
            if let Event::RequestFailed { code, message, .. } = &event {
                tracing::warn!(member = %id, code = code.as_str(), %message, "the server refused a request");
            }
            if let Some(found) = f(&event) {
                return Ok(found);
            }
        }
        Err("client stopped")
    };
    tokio::time::timeout(counters.step_timeout, found)
        .await
        .map_err(|_| "step timed out")?
}

async fn wait_state(
    member: &mut Member,
    call: &CallId,
    state: CallState,
    counters: &Counters,
) -> Result<(), &'static str> {
    let reached = wait(member, counters, |e| match e {
        Event::CallStateChanged {
            call_id, state: s, ..
        } if call_id == call && (*s == state || *s == CallState::Disconnected) => Some(*s),
        _ => None,
    })
    .await?;
    if reached == state {
        Ok(())
    } else {
        Err("call ended early")
    }
}

fn percentiles(mut samples: Vec<Duration>) -> Percentiles {
    samples.sort_unstable();
    let at = |q: usize| {
        samples
            .get((samples.len().saturating_sub(1)) * q / 100)
            .copied()
            .unwrap_or_default()
    };
    Percentiles {
        count: samples.len(),
        p50: at(50),
        p99: at(99),
        max: samples.last().copied().unwrap_or_default(),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_nearest_rank_below() {
        let samples = (1..=100).map(Duration::from_millis).collect();
        let p = percentiles(samples);
        assert_eq!(p.count, 100);
        assert_eq!(p.p50, Duration::from_millis(50));
        assert_eq!(p.p99, Duration::from_millis(99));
        assert_eq!(p.max, Duration::from_millis(100));
        assert_eq!(percentiles(Vec::new()).count, 0);
    }
}
