//! Graceful shutdown: calls end with "server shutting down", every connection gets a
//! goodbye and a close, and the server stops.

#![allow(clippy::unwrap_used)] // Helpers outside #[test] fns unwrap too.

mod common;

use common::start;

#[tokio::test]
async fn connected_clients_are_told_and_calls_end() {
    let s = start(|_| {}).await.unwrap();
    let pair = s.call_pair("alice", "bob").await.unwrap();
    let idle = s.authed("carol").await.unwrap();
    let addr = s.server.http_addr();
    let shutdown = tokio::spawn(s.server.shut_down());

    for ws in [pair.a, pair.b] {
        let closed = ws.closed().await.unwrap();
        let state = closed
            .messages
            .iter()
            .find(|m| m["type"] == "call_state" && m["state"] == "disconnected")
            .unwrap_or_else(|| panic!("no call_state disconnected in {:?}", closed.messages));
        assert_eq!(state["call_id"], pair.call_id.as_str());
        assert_eq!(state["end_reason"]["code"], 500);
        assert_eq!(state["end_reason"]["message"], "server shutting down");
        let goodbye = closed.messages.last().unwrap();
        assert_eq!(goodbye["type"], "goodbye", "{closed:?}");
        assert_eq!(goodbye["reason"]["message"], "server shutting down");
        assert_eq!(closed.code, Some(4500));
        assert_eq!(closed.reason, "server shutting down");
    }
    let closed = idle.closed().await.unwrap();
    assert_eq!(closed.messages.len(), 1, "{closed:?}");
    assert_eq!(closed.messages[0]["type"], "goodbye");
    assert_eq!(closed.code, Some(4500));

    tokio::time::timeout(common::GUARD, shutdown)
        .await
        .unwrap()
        .unwrap();
    // Nothing listens any more.
    assert!(common::Ws::connect(addr).await.is_err());
}
