//! Build 5 over a raw WebSocket: every kind of bad input gets a typed error (where the
//! connection stays usable) or a close with a reason code, and a well-behaved 1:1 call
//! on the same server is undisturbed.

#![allow(clippy::unwrap_used)] // Helpers outside #[test] fns unwrap too.

mod common;

use std::time::{Duration, SystemTime};

use common::{TestServer, start};
use ringwire_server::AccessKey;
use ringwire_signaling::{Scope, Scopes, TokenKey, UserId};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

async fn server() -> TestServer {
    start(|_| {}).await.unwrap()
}

#[tokio::test]
async fn auth_then_ping_pong() {
    let s = server().await;
    let mut ws = s.ws().await.unwrap();
    ws.auth(&s.token("alice")).await.unwrap();
    let hello = ws.recv().await.unwrap();
    assert_eq!(hello["type"], "authenticated");
    assert_eq!(hello["user"], "8:alice");
    assert_eq!(hello["resumed"], false);
    assert_eq!(hello["grace_ms"], 30_000);
    ws.ping(7).await.unwrap();
    s.server.shut_down().await;
}

#[tokio::test]
async fn malformed_json_gets_an_error_and_the_connection_goes_on() {
    let s = server().await;
    let mut pair = s.call_pair("alice", "bob").await.unwrap();
    let mut bad = s.authed("mallory").await.unwrap();
    bad.send_text("{not json").await.unwrap();
    assert_eq!(bad.recv_error().await.unwrap()["code"], "malformed");
    bad.ping(1).await.unwrap();
    pair.assert_undisturbed().await.unwrap();
    s.server.shut_down().await;
}

#[tokio::test]
async fn unknown_type_gets_an_error() {
    let s = server().await;
    let mut pair = s.call_pair("alice", "bob").await.unwrap();
    let mut bad = s.authed("mallory").await.unwrap();
    bad.send(json!({"v": 1, "type": "dance", "call_id": "x"}))
        .await
        .unwrap();
    assert_eq!(bad.recv_error().await.unwrap()["code"], "unknown_type");
    bad.ping(1).await.unwrap();
    pair.assert_undisturbed().await.unwrap();
    s.server.shut_down().await;
}

#[tokio::test]
async fn binary_frames_get_an_error() {
    let s = server().await;
    let mut pair = s.call_pair("alice", "bob").await.unwrap();
    let mut bad = s.authed("mallory").await.unwrap();
    bad.send_raw(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(bad.recv_error().await.unwrap()["code"], "malformed");
    bad.ping(1).await.unwrap();
    pair.assert_undisturbed().await.unwrap();
    s.server.shut_down().await;
}

#[tokio::test]
async fn messages_before_auth_are_refused() {
    let s = server().await;
    let mut pair = s.call_pair("alice", "bob").await.unwrap();
    let mut early = s.ws().await.unwrap();
    early
        .send(json!({"v": 1, "type": "ping", "seq": 1}))
        .await
        .unwrap();
    assert_eq!(
        early.recv_error().await.unwrap()["code"],
        "not_authenticated"
    );
    early
        .send(json!({"v": 1, "type": "start_call", "call_id": "c9", "targets": ["8:bob"]}))
        .await
        .unwrap();
    assert_eq!(
        early.recv_error().await.unwrap()["code"],
        "not_authenticated"
    );
    // Still usable: it can authenticate now.
    early.auth(&s.token("carol")).await.unwrap();
    early.recv_type("authenticated").await.unwrap();
    pair.assert_undisturbed().await.unwrap();
    s.server.shut_down().await;
}

/// Sends `token` and expects `error{code}` then a 4403 close.
async fn refused(s: &TestServer, token: &str, code: &str) {
    let mut ws = s.ws().await.unwrap();
    ws.auth(token).await.unwrap();
    let closed = ws.closed().await.unwrap();
    assert_eq!(closed.messages.len(), 1, "{closed:?}");
    assert_eq!(closed.messages[0]["type"], "error");
    assert_eq!(closed.messages[0]["code"], code, "{closed:?}");
    assert_eq!(closed.code, Some(4403), "{closed:?}");
}

#[tokio::test]
async fn bad_expired_and_under_scoped_tokens_are_refused() {
    let s = server().await;
    let mut pair = s.call_pair("alice", "bob").await.unwrap();

    refused(&s, "not-a-token", "invalid_token").await;
    let stranger = TokenKey::new(&[9; 32]).unwrap();
    let mallory = UserId::new("mallory").unwrap();
    let forged = stranger.issue(
        &mallory,
        Scopes::all(),
        SystemTime::now(),
        Duration::from_secs(60),
    );
    refused(&s, &forged, "invalid_token").await;

    let key = AccessKey::load(&s.server.config().data_dir)
        .unwrap()
        .token_key();
    let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
    let expired = key.issue(
        &mallory,
        Scopes::all(),
        two_hours_ago,
        Duration::from_secs(3600),
    );
    refused(&s, &expired, "token_expired").await;

    let pstn_only = s.token_with("mallory", Scopes::from(Scope::Pstn));
    refused(&s, &pstn_only, "missing_scope").await;

    pair.assert_undisturbed().await.unwrap();
    s.server.shut_down().await;
}

#[tokio::test]
async fn revoked_tokens_are_refused_and_live_sessions_end() {
    let s = server().await;
    let mut pair = s.call_pair("alice", "bob").await.unwrap();
    let key = s.access_key();
    let created = s
        .http("POST", "/v1/identities", Some(&key), None)
        .await
        .unwrap();
    assert_eq!(created.status, 201, "{created:?}");
    let id = created.json().unwrap()["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/identities/{id}/token");
    let issued = s
        .http(
            "POST",
            &path,
            Some(&key),
            Some(r#"{"scopes":["voip"],"ttl_secs":600}"#),
        )
        .await
        .unwrap();
    assert_eq!(issued.status, 200, "{issued:?}");
    let token = issued.json().unwrap()["token"].as_str().unwrap().to_owned();

    let mut live = s.ws().await.unwrap();
    live.auth(&token).await.unwrap();
    live.recv_type("authenticated").await.unwrap();

    let revoked = s
        .http(
            "POST",
            &format!("/v1/identities/{id}/revoke"),
            Some(&key),
            None,
        )
        .await
        .unwrap();
    assert_eq!(revoked.status, 200, "{revoked:?}");

    let closed = live.closed().await.unwrap();
    let goodbye = closed
        .messages
        .iter()
        .find(|m| m["type"] == "goodbye")
        .unwrap();
    assert_eq!(goodbye["reason"]["code"], 403);
    assert_eq!(closed.code, Some(4403));
    assert_eq!(closed.reason, "access revoked");

    refused(&s, &token, "token_revoked").await;
    pair.assert_undisturbed().await.unwrap();
    s.server.shut_down().await;
}

#[tokio::test]
async fn oversized_frames_close_the_connection() {
    let s = server().await;
    let mut pair = s.call_pair("alice", "bob").await.unwrap();
    let mut big = s.authed("mallory").await.unwrap();
    let max = s.server.config().limits.max_frame;
    let padding = "x".repeat(max + 1);
    // The server may close before it has read it all; a failed send is fine.
    let _ = big
        .send(json!({"v": 1, "type": "ping", "seq": 1, "pad": padding}))
        .await;
    let closed = big.closed().await.unwrap();
    assert_eq!(closed.code, Some(1009), "{closed:?}");
    assert_eq!(closed.reason, "message too large");
    pair.assert_undisturbed().await.unwrap();
    let metrics = s.http("GET", "/metrics", None, None).await.unwrap();
    assert!(
        metrics
            .body
            .contains("ringwire_transport_oversized_total{transport=\"websocket\"} 1"),
        "{}",
        metrics.body
    );
    s.server.shut_down().await;
}

#[tokio::test]
async fn a_flood_is_rate_limited_then_closed() {
    let s = start(|c| {
        c.limits.messages_per_second = 1;
        c.limits.burst = 20;
    })
    .await
    .unwrap();
    let mut pair = s.call_pair("alice", "bob").await.unwrap();
    let mut flood = s.authed("mallory").await.unwrap();
    flood
        .flood((0..300).map(|seq| json!({"v": 1, "type": "ping", "seq": seq})))
        .await;
    let closed = flood.closed().await.unwrap();
    let errors: Vec<_> = closed
        .messages
        .iter()
        .filter(|m| m["type"] == "error")
        .collect();
    assert!(!errors.is_empty(), "{closed:?}");
    assert!(
        errors.iter().all(|e| e["code"] == "rate_limited"),
        "{errors:?}"
    );
    assert_eq!(closed.code, Some(1008), "{closed:?}");
    assert_eq!(closed.reason, "rate limited");
    // The call's clients are well under their own limits.
    pair.assert_undisturbed().await.unwrap();
    let metrics = s.http("GET", "/metrics", None, None).await.unwrap();
    assert!(
        metrics.body.contains(
            "ringwire_transport_closed_total{transport=\"websocket\",reason=\"rate_limited\"} 1"
        ),
        "{}",
        metrics.body
    );
    s.server.shut_down().await;
}

#[tokio::test]
async fn too_many_connections_per_identity() {
    let s = start(|c| c.limits.max_connections_per_identity = 2)
        .await
        .unwrap();
    let mut pair = s.call_pair("alice", "bob").await.unwrap();
    let _first = s.authed("carol").await.unwrap();
    let _second = s.authed("carol").await.unwrap();
    refused(&s, &s.token("carol"), "too_many_connections").await;
    pair.assert_undisturbed().await.unwrap();
    s.server.shut_down().await;
}

#[tokio::test]
async fn silent_connections_are_closed_after_the_handshake_timeout() {
    let s = start(|c| c.limits.handshake_timeout = Duration::from_millis(500))
        .await
        .unwrap();
    let mut pair = s.call_pair("alice", "bob").await.unwrap();
    let silent = s.ws().await.unwrap();
    let closed = silent.closed().await.unwrap();
    assert!(closed.messages.is_empty(), "{closed:?}");
    assert_eq!(closed.code, Some(4403), "{closed:?}");
    assert_eq!(closed.reason, "no `auth` in time");
    pair.assert_undisturbed().await.unwrap();
    s.server.shut_down().await;
}
