//! The identity REST API, health, readiness and metrics, over real HTTP.

#![allow(clippy::unwrap_used)] // Helpers outside #[test] fns unwrap too.

mod common;

use common::start;

#[tokio::test]
async fn identities_are_created_and_get_tokens_that_connect() {
    let s = start(|_| {}).await.unwrap();
    let key = s.access_key();
    let created = s
        .http("POST", "/v1/identities", Some(&key), None)
        .await
        .unwrap();
    assert_eq!(created.status, 201, "{created:?}");
    let id = created.json().unwrap()["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("8:") && id.len() == 34, "{id}");

    // Defaults (voip, 24 h) with no body; explicit scopes and ttl with one.
    let path = format!("/v1/identities/{id}/token");
    let plain = s.http("POST", &path, Some(&key), None).await.unwrap();
    assert_eq!(plain.status, 200, "{plain:?}");
    let issued = s
        .http(
            "POST",
            &path,
            Some(&key),
            Some(r#"{"scopes":["voip","pstn"],"ttl_secs":60}"#),
        )
        .await
        .unwrap();
    assert_eq!(issued.status, 200, "{issued:?}");
    let body = issued.json().unwrap();
    assert!(body["expires_at"].as_u64().unwrap() > 1_700_000_000);
    let token = body["token"].as_str().unwrap();

    let mut ws = s.ws().await.unwrap();
    ws.auth(token).await.unwrap();
    assert_eq!(
        ws.recv_type("authenticated").await.unwrap()["user"],
        id.as_str()
    );
    s.server.shut_down().await;
}

#[tokio::test]
async fn wrong_or_missing_bearer_is_401_json() {
    let s = start(|_| {}).await.unwrap();
    for bearer in [None, Some("00".repeat(32)), Some("not-hex".to_owned())] {
        let response = s
            .http("POST", "/v1/identities", bearer.as_deref(), None)
            .await
            .unwrap();
        assert_eq!(response.status, 401, "{response:?}");
        assert_eq!(response.json().unwrap()["code"], "unauthorized");
        assert!(response.json().unwrap()["message"].is_string());
        assert_eq!(response.header("www-authenticate"), Some("Bearer"));
    }
    let response = s
        .http("POST", "/v1/identities/8:abc/revoke", Some("wrong"), None)
        .await
        .unwrap();
    assert_eq!(response.status, 401);
    s.server.shut_down().await;
}

#[tokio::test]
async fn bad_requests_have_stable_codes() {
    let s = start(|_| {}).await.unwrap();
    let key = s.access_key();
    let unknown = s
        .http("POST", "/v1/identities/8:nobody/token", Some(&key), None)
        .await
        .unwrap();
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json().unwrap()["code"], "not_found");
    let revoke_unknown = s
        .http("POST", "/v1/identities/8:nobody/revoke", Some(&key), None)
        .await
        .unwrap();
    assert_eq!(revoke_unknown.json().unwrap()["code"], "not_found");

    let id = s
        .http("POST", "/v1/identities", Some(&key), None)
        .await
        .unwrap()
        .json()
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/identities/{id}/token");
    for body in [
        "{oops",
        r#"{"scopes":["admin"]}"#,
        r#"{"ttl_secs":0}"#,
        r#"{"ttl_secs":999999999}"#,
        r#"{"scopes":"voip"}"#,
    ] {
        let response = s.http("POST", &path, Some(&key), Some(body)).await.unwrap();
        assert_eq!(response.status, 400, "{body}: {response:?}");
        assert_eq!(
            response.json().unwrap()["code"],
            "invalid_request",
            "{body}"
        );
    }
    let bad_id = s
        .http(
            "POST",
            "/v1/identities/4:+15551230000/token",
            Some(&key),
            None,
        )
        .await
        .unwrap();
    assert_eq!(bad_id.json().unwrap()["code"], "invalid_request");
    s.server.shut_down().await;
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let s = start(|_| {}).await.unwrap();
    let health = s.http("GET", "/healthz", None, None).await.unwrap();
    assert_eq!((health.status, health.body.as_str()), (200, "ok"));
    let ready = s.http("GET", "/readyz", None, None).await.unwrap();
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready"));

    let mut pair = s.call_pair("alice", "bob").await.unwrap();
    pair.assert_undisturbed().await.unwrap();
    let mut bad = s.authed("mallory").await.unwrap();
    bad.send_text("nope").await.unwrap();
    bad.recv_error().await.unwrap();

    let metrics = s.http("GET", "/metrics", None, None).await.unwrap();
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .unwrap()
            .contains("openmetrics-text")
    );
    let body = &metrics.body;
    for line in [
        "ringwire_connections 3",
        "ringwire_sessions 3",
        "ringwire_calls 1",
        "ringwire_participants 2",
        "ringwire_messages_total{type=\"auth\"} 3",
        "ringwire_messages_total{type=\"start_call\"} 1",
        "ringwire_messages_total{type=\"accept\"} 1",
        "ringwire_messages_total{type=\"ping\"} 2",
        "ringwire_errors_total{code=\"malformed\"} 1",
        "ringwire_resumes_total 0",
        "ringwire_transport_connections_total{transport=\"websocket\"} 3",
        "ringwire_transport_binary_frames_total 0",
    ] {
        assert!(body.contains(line), "{line} missing from\n{body}");
    }
    s.server.shut_down().await;
}

#[tokio::test]
async fn readyz_is_503_while_shutting_down() {
    let s = start(|_| {}).await.unwrap();
    let addr = s.server.http_addr();
    // Hold a connection so shutdown waits for its goodbye while we ask.
    let mut ws = s.authed("alice").await.unwrap();
    let shutdown = tokio::spawn(s.server.shut_down());
    ws.recv_type("goodbye").await.unwrap();
    // The listener may already be gone; when it answers, it is not ready.
    if let Ok(ready) = common::http(addr, "GET", "/readyz", None, None).await {
        assert_eq!(ready.status, 503, "{ready:?}");
    }
    drop(ws);
    shutdown.await.unwrap();
}
