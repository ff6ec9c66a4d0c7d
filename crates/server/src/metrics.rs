//! Prometheus metrics: the controller's counters, read from the hub at every scrape,
//! and the transports' own counters (what connection tasks refuse before the hub).
//!
//! | series | type | labels |
//! |---|---|---|
//! | `ringwire_connections` | gauge | open signaling connections |
//! | `ringwire_sessions` | gauge | sessions, attached or waiting for a resume |
//! | `ringwire_calls` | gauge | running calls |
//! | `ringwire_participants` | gauge | participants over all calls |
//! | `ringwire_messages_total` | counter | `type`: client messages handled |
//! | `ringwire_errors_total` | counter | `code`: error messages the controller sent |
//! | `ringwire_resumes_total` | counter | sessions resumed |
//! | `ringwire_transport_connections_total` | counter | `transport`: connections accepted |
//! | `ringwire_transport_rate_limited_total` | counter | `transport`: messages refused by the rate limit |
//! | `ringwire_transport_oversized_total` | counter | `transport`: frames over the size limit |
//! | `ringwire_transport_binary_frames_total` | counter | WebSocket binary frames refused |
//! | `ringwire_transport_closed_total` | counter | `transport`, `reason`: connections closed by the server, by why |
//! | `ringwire_media_packets_received_total` | counter | UDP datagrams read from the media socket |
//! | `ringwire_media_packets_sent_total` | counter | UDP datagrams written to the media socket |
//! | `ringwire_media_packets_ignored_total` | counter | datagrams no participant claimed (strangers, garbage) |
//! | `ringwire_media_send_errors_total` | counter | datagrams the socket refused (full buffer, unreachable) |
//! | `ringwire_media_commands_dropped_total` | counter | media commands dropped because the worker's queue was full |
//! | `ringwire_media_participants` | gauge | participants with a media session on the server |
//!
//! `transport` is `websocket` or `quic`. `reason` is one of `hub`, `rate_limited`,
//! `oversized`, `hub_gone`, and on QUIC also `handshake_timeout` (no stream opened in
//! time) and `framing` (the stream ended inside a frame).
//!
//! Connection tasks count through a [`ConnectionMetrics`], which
//! [`TransportMetrics::connection`] hands out, so both transports count the same
//! things the same way.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use ringwire_signaling::controller::ControllerStats;

use crate::limits::Verdict;

type Labels = Vec<(&'static str, String)>;

/// Counters kept by connection tasks; cheap to clone (they share their values).
#[derive(Debug, Clone, Default)]
pub(crate) struct TransportMetrics {
    connections: Family<Labels, Counter>,
    rate_limited: Family<Labels, Counter>,
    oversized: Family<Labels, Counter>,
    binary_frames: Counter,
    closed: Family<Labels, Counter>,
    /// What the media worker counts.
    pub(crate) media: MediaMetrics,
}

/// Counters kept by the media worker (and the hub, for commands it could not queue).
#[derive(Debug, Clone, Default)]
pub(crate) struct MediaMetrics {
    /// Datagrams read from the media socket.
    pub(crate) received: Counter,
    /// Datagrams written to the media socket.
    pub(crate) sent: Counter,
    /// Datagrams no participant claimed.
    pub(crate) ignored: Counter,
    /// Datagrams the socket refused to send.
    pub(crate) send_errors: Counter,
    /// Media commands dropped because the worker's queue was full.
    pub(crate) commands_dropped: Counter,
    /// Participants with a media session on the server.
    pub(crate) participants: Gauge,
}

/// One connection's handle on the [`TransportMetrics`], labelled with its transport.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionMetrics {
    metrics: TransportMetrics,
    transport: Transport,
}

/// Which transport a counter is about.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Transport {
    /// `GET /v1/signaling` (label `websocket`).
    WebSocket,
    /// QUIC signaling (label `quic`).
    Quic,
}

/// Why the server closed a connection.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CloseKind {
    /// The hub ended the session (goodbye, refused auth, auth timeout, revoke).
    Hub,
    /// The client kept flooding.
    RateLimited,
    /// A frame over the limit.
    Oversized,
    /// The hub dropped a connection that could not keep up, or stopped.
    HubGone,
    /// QUIC: no stream opened within the handshake timeout.
    HandshakeTimeout,
    /// QUIC: the stream ended inside a frame.
    Framing,
}

impl Transport {
    fn label(self) -> Labels {
        let name = match self {
            Transport::WebSocket => "websocket",
            Transport::Quic => "quic",
        };
        vec![("transport", name.to_owned())]
    }
}

impl CloseKind {
    fn as_str(self) -> &'static str {
        match self {
            CloseKind::Hub => "hub",
            CloseKind::RateLimited => "rate_limited",
            CloseKind::Oversized => "oversized",
            CloseKind::HubGone => "hub_gone",
            CloseKind::HandshakeTimeout => "handshake_timeout",
            CloseKind::Framing => "framing",
        }
    }
}

impl ConnectionMetrics {
    /// Counts what the rate limiter refused (every verdict but [`Verdict::Pass`]) and
    /// hands the verdict back.
    pub(crate) fn rate_limit(&self, verdict: Verdict) -> Verdict {
        if verdict != Verdict::Pass {
            self.metrics
                .rate_limited
                .get_or_create(&self.transport.label())
                .inc();
        }
        verdict
    }

    /// A frame over the size limit.
    pub(crate) fn oversized(&self) {
        self.metrics
            .oversized
            .get_or_create(&self.transport.label())
            .inc();
    }

    /// A WebSocket binary frame (refused).
    pub(crate) fn binary_frame(&self) {
        self.metrics.binary_frames.inc();
    }

    /// The server closed this connection because of `kind`.
    pub(crate) fn closed(&self, kind: CloseKind) {
        let mut labels = self.transport.label();
        labels.push(("reason", kind.as_str().to_owned()));
        self.metrics.closed.get_or_create(&labels).inc();
    }
}

impl TransportMetrics {
    /// Counts a connection accepted on `transport`; the handle counts what happens to it.
    pub(crate) fn connection(&self, transport: Transport) -> ConnectionMetrics {
        self.connections.get_or_create(&transport.label()).inc();
        ConnectionMetrics {
            metrics: self.clone(),
            transport,
        }
    }

    /// The text exposition (OpenMetrics) of these counters and `stats`.
    pub(crate) fn render(&self, stats: &ControllerStats) -> String {
        let mut registry = Registry::with_prefix("ringwire");
        let gauge = |value: usize| {
            let gauge = Gauge::<i64>::default();
            gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
            gauge
        };
        registry.register(
            "connections",
            "Open signaling connections",
            gauge(stats.connections),
        );
        registry.register(
            "sessions",
            "Sessions, attached or waiting for a resume",
            gauge(stats.sessions),
        );
        registry.register("calls", "Running calls", gauge(stats.calls));
        registry.register(
            "participants",
            "Participants over all calls, ringing ones included",
            gauge(stats.participants),
        );
        let by = |name: &'static str, values: &std::collections::BTreeMap<&'static str, u64>| {
            let family = Family::<Labels, Counter>::default();
            for (key, value) in values {
                family
                    .get_or_create(&vec![(name, (*key).to_owned())])
                    .inc_by(*value);
            }
            family
        };
        registry.register(
            "messages",
            "Client messages handled, by type",
            by("type", &stats.messages),
        );
        registry.register(
            "errors",
            "Error messages sent, by code",
            by("code", &stats.errors),
        );
        let resumes = Counter::<u64>::default();
        resumes.inc_by(stats.resumes);
        registry.register(
            "resumes",
            "Sessions resumed after a dropped connection",
            resumes,
        );

        registry.register(
            "transport_connections",
            "Transport connections accepted",
            self.connections.clone(),
        );
        registry.register(
            "transport_rate_limited",
            "Messages refused by the per-connection rate limit",
            self.rate_limited.clone(),
        );
        registry.register(
            "transport_oversized",
            "Frames over the size limit",
            self.oversized.clone(),
        );
        registry.register(
            "transport_binary_frames",
            "WebSocket binary frames refused",
            self.binary_frames.clone(),
        );
        registry.register(
            "transport_closed",
            "Connections the server closed, by reason",
            self.closed.clone(),
        );

        let media = &self.media;
        registry.register(
            "media_packets_received",
            "UDP datagrams read from the media socket",
            media.received.clone(),
        );
        registry.register(
            "media_packets_sent",
            "UDP datagrams written to the media socket",
            media.sent.clone(),
        );
        registry.register(
            "media_packets_ignored",
            "Media datagrams no participant claimed",
            media.ignored.clone(),
        );
        registry.register(
            "media_send_errors",
            "Media datagrams the socket refused to send",
            media.send_errors.clone(),
        );
        registry.register(
            "media_commands_dropped",
            "Media commands dropped because the media worker's queue was full",
            media.commands_dropped.clone(),
        );
        registry.register(
            "media_participants",
            "Participants with a media session on the server",
            media.participants.clone(),
        );

        let mut out = String::new();
        encode(&mut out, &registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_series() {
        let metrics = TransportMetrics::default();
        let ws = metrics.connection(Transport::WebSocket);
        assert_eq!(ws.rate_limit(Verdict::Refuse), Verdict::Refuse);
        assert_eq!(ws.rate_limit(Verdict::Pass), Verdict::Pass);
        ws.closed(CloseKind::RateLimited);
        let quic = metrics.connection(Transport::Quic);
        metrics.connection(Transport::Quic);
        quic.rate_limit(Verdict::Refuse);
        quic.rate_limit(Verdict::Drop);
        quic.rate_limit(Verdict::Close);
        quic.closed(CloseKind::RateLimited);
        quic.oversized();
        quic.closed(CloseKind::Framing);
        metrics.media.received.inc_by(5);
        metrics.media.ignored.inc();
        metrics.media.participants.set(2);
        let mut stats = ControllerStats {
            calls: 2,
            resumes: 1,
            ..ControllerStats::default()
        };
        stats.messages.insert("ping", 3);
        stats.errors.insert("malformed", 1);
        let text = metrics.render(&stats);
        for line in [
            "ringwire_calls 2",
            "ringwire_resumes_total 1",
            "ringwire_messages_total{type=\"ping\"} 3",
            "ringwire_errors_total{code=\"malformed\"} 1",
            "ringwire_transport_connections_total{transport=\"websocket\"} 1",
            "ringwire_transport_rate_limited_total{transport=\"websocket\"} 1",
            "ringwire_transport_closed_total{transport=\"websocket\",reason=\"rate_limited\"} 1",
            "ringwire_transport_connections_total{transport=\"quic\"} 2",
            "ringwire_transport_rate_limited_total{transport=\"quic\"} 3",
            "ringwire_transport_oversized_total{transport=\"quic\"} 1",
            "ringwire_transport_closed_total{transport=\"quic\",reason=\"rate_limited\"} 1",
            "ringwire_transport_closed_total{transport=\"quic\",reason=\"framing\"} 1",
            "ringwire_media_packets_received_total 5",
            "ringwire_media_packets_ignored_total 1",
            "ringwire_media_packets_sent_total 0",
            "ringwire_media_participants 2",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
