//! The WebSocket signaling endpoint, `GET /v1/signaling`: one JSON text frame per message.
//!
//! A connection task only moves bytes (STYLE.md §2): every text frame goes to the hub,
//! every frame the hub queues is written. What the transport itself polices is
//! policed here, before the hub sees it:
//! - messages over `limits.max_frame` are refused by the WebSocket layer, and the
//!   connection is closed with 1009 (message too big);
//! - binary frames get `error{code: malformed}` and are dropped;
//! - a connection over its token bucket gets one `error{code: rate_limited}`, its
//!   messages are dropped, and after `3 × burst` refusals in a row it is closed with
//!   1008 (policy violation), reason `rate limited`.
//!
//! Close codes the server sends:
//!
//! | code | when | reason |
//! |---|---|---|
//! | 4000 + end reason code (4403, 4500, ..) | the hub ended the session (refused token, auth timeout, revoke, shutdown; a `goodbye` comes first where the session existed) | the end reason's message |
//! | 1008 | flood | `rate limited` |
//! | 1009 | message over the size limit | `message too large` |
//! | 1011 | the hub dropped a connection that could not keep up | `too slow` |
//! | 1001 | the server is stopping and never opened this session | `server shutting down` |

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ringwire_signaling::{EndReason, ErrorCode, ServerMessage};
use tokio::time::{Instant, timeout};

use crate::Shared;
use crate::hub::{HubConnection, Outbound};
use crate::limits::{RateLimiter, Verdict};
use crate::metrics::{CloseKind, Transport};

/// How long a closing connection keeps reading so that the client sees our close
/// frame before the socket goes (closing with unread data would reset the connection).
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// The WebSocket close code for an end reason: 4000 plus its SIP-like code.
pub(crate) fn close_code(reason: &EndReason) -> u16 {
    4000 + reason.code.min(999)
}

/// `GET /v1/signaling`.
pub(crate) async fn upgrade(State(shared): State<Arc<Shared>>, ws: WebSocketUpgrade) -> Response {
    if shared.is_shutting_down() {
        return (StatusCode::SERVICE_UNAVAILABLE, "server shutting down").into_response();
    }
    let max = shared.config.limits.max_frame;
    let tracker = shared.tracker.clone();
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| tracker.track_future(connection(socket, shared)))
}

/// How a connection ended.
enum End {
    /// The server closes with this code and reason.
    Close(u16, String, CloseKind),
    /// The client closed or the transport failed: nothing to send.
    Gone,
}

async fn connection(mut socket: WebSocket, shared: Arc<Shared>) {
    let metrics = shared.metrics.connection(Transport::WebSocket);
    let Ok(HubConnection { id, mut outbound }) = shared.hub.open().await else {
        close(socket, 1001, "server shutting down").await;
        return;
    };
    let limits = &shared.config.limits;
    let mut limiter = RateLimiter::new(
        limits.messages_per_second,
        limits.burst,
        Instant::now().into_std(),
    );
    tracing::debug!(?id, "websocket connection open");
    let end = loop {
        tokio::select! {
            out = outbound.recv() => match out {
                Some(Outbound::Frame(frame)) => {
                    let Ok(text) = String::from_utf8(frame.to_vec()) else {
                        tracing::warn!(?id, "hub frame is not utf-8; skipped");
                        continue;
                    };
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        break End::Gone;
                    }
                }
                Some(Outbound::Close(reason)) => {
                    break End::Close(close_code(&reason), reason.message, CloseKind::Hub);
                }
                None => break End::Close(1011, "too slow".to_owned(), CloseKind::HubGone),
            },
            message = socket.recv() => {
                let bytes = match message {
                    Some(Ok(Message::Text(text))) => Vec::from(text.as_str()),
                    Some(Ok(Message::Binary(_))) => {
                        metrics.binary_frame();
                        // The frame counts against the rate limit like any other.
                        if limiter.check(Instant::now().into_std()) == Verdict::Pass {
                            let error = error(ErrorCode::Malformed, "binary frames are not accepted; send JSON text frames");
                            if socket.send(error).await.is_err() {
                                break End::Gone;
                            }
                        }
                        continue;
                    }
                    // axum answers pings itself.
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | None => break End::Gone,
                    Some(Err(e)) => {
                        // tungstenite reports a message over the limit as a capacity
                        // error; axum does not expose its type, so match its text.
                        if e.to_string().contains("Space limit exceeded") {
                            metrics.oversized();
                            break End::Close(1009, "message too large".to_owned(), CloseKind::Oversized);
                        }
                        tracing::debug!(?id, error = %e, "websocket read failed");
                        break End::Gone;
                    }
                };
                match metrics.rate_limit(limiter.check(Instant::now().into_std())) {
                    Verdict::Pass => {
                        if shared.hub.bytes(id, bytes).await.is_err() {
                            break End::Close(1001, "server shutting down".to_owned(), CloseKind::HubGone);
                        }
                    }
                    Verdict::Refuse => {
                        tracing::debug!(?id, "websocket connection over its rate limit");
                        let error = error(ErrorCode::RateLimited, "too many messages; slow down");
                        if socket.send(error).await.is_err() {
                            break End::Gone;
                        }
                    }
                    Verdict::Drop => {}
                    Verdict::Close => {
                        break End::Close(1008, "rate limited".to_owned(), CloseKind::RateLimited);
                    }
                }
            }
        }
    };
    shared.hub.closed(id);
    tracing::debug!(?id, "websocket connection ended");
    if let End::Close(code, reason, kind) = end {
        metrics.closed(kind);
        close(socket, code, &reason).await;
    }
}

/// An error message the connection task sends itself (it never reaches the hub).
fn error(code: ErrorCode, message: &str) -> Message {
    let error = ServerMessage::Error {
        code,
        message: message.to_owned(),
        call_id: None,
    };
    let text = String::from_utf8(error.encode()).expect("encoded messages are json, so utf-8");
    Message::Text(text.into())
}

/// Sends a close frame, then reads until the client answers it (or a short while), so
/// the client reads the frame before the socket closes.
async fn close(mut socket: WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from(truncate(reason, 123)),
    };
    if socket.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    let _ = timeout(CLOSE_LINGER, async {
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// At most `max` bytes of `text`, cut at a character boundary (close reasons are
/// limited to 123 bytes, RFC 6455 §5.5).
fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_and_reasons() {
        assert_eq!(close_code(&EndReason::shutting_down()), 4500);
        assert_eq!(close_code(&EndReason::revoked()), 4403);
        assert_eq!(close_code(&EndReason::normal()), 4000);
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 123), "abc");
    }
}
