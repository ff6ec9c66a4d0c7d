//! The HTTP router: signaling over WebSocket, the identity REST API, health and metrics.
//!
//! | route | what |
//! |---|---|
//! | `GET /healthz` | 200 `ok` while the process serves HTTP |
//! | `GET /readyz` | 200 `ready` while the hub runs; 503 once shutdown began |
//! | `GET /metrics` | Prometheus text (OpenMetrics); see [`crate::metrics`] |
//! | `GET /v1/signaling` | WebSocket signaling; see [`crate::ws`] |
//! | `POST /v1/identities`, `POST /v1/identities/{id}/token`, `POST /v1/identities/{id}/revoke` | identity REST API; see [`crate::identity`] |

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::{Shared, identity, ws};

/// The whole HTTP surface.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/signaling", get(ws::upgrade))
        .route("/v1/identities", post(identity::create))
        .route("/v1/identities/{id}/token", post(identity::token))
        .route("/v1/identities/{id}/revoke", post(identity::revoke))
        .with_state(shared)
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    if shared.is_shutting_down() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response()
    } else {
        "ready".into_response()
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let Ok(stats) = shared.hub.stats().await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    };
    let body = shared.metrics.render(&stats);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
