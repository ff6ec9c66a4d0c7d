//! The load generator against the real server: a small run over each transport
//! completes every call. Figures are printed, never asserted.

#![cfg(feature = "loadtest")]
#![allow(clippy::unwrap_used)] // Scenario helpers outside #[test] fns unwrap too.

#[path = "support/harness.rs"]
mod harness;

use harness::{Harness, Kind};
use ringwire_calling::loadtest::{self, LoadtestConfig};
use ringwire_server::AccessKey;

async fn small_run(kind: Kind) {
    let h = Harness::start().await;
    let dir = h.server.access_key_path().parent().unwrap().to_path_buf();
    let key = AccessKey::load(&dir).unwrap().token_key();
    // 4 calls: 2 of 1:1 (4 clients) and 2 groups sharing the other 20 (10 each).
    let config = LoadtestConfig::new(h.endpoint(kind), key, 24, 4);
    let report = loadtest::run(config).await.unwrap();
    println!("{kind:?}:\n{report}");
    assert_eq!(report.connected, 24);
    assert_eq!(report.one_to_one_ok, 2);
    assert_eq!(report.group_ok, 2);
    assert_eq!(report.group_size, 10);
    assert_eq!(report.calls_failed, 0);
    assert_eq!(report.join.count, 2 + 20);
    h.server.shut_down().await;
}

#[tokio::test]
async fn websocket() {
    small_run(Kind::Ws).await;
}

#[tokio::test]
async fn quic() {
    small_run(Kind::Quic).await;
}
