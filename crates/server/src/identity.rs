//! Identities: user ids the server made, kept in memory (DESIGN.md: in-memory state by
//! default), and the identity REST API.
//!
//! Every route here needs `Authorization: Bearer <access key as 64 hex characters>`.
//! The key is a secret that can mint any token: send it only over TLS (`tls` in the
//! configuration), or over loopback in development; the server refuses to start on a
//! non-loopback address without TLS unless `dev_mode` is set explicitly.
//!
//! | request | answer |
//! |---|---|
//! | `POST /v1/identities` | 201 `{ "id": "8:<32 hex>" }` |
//! | `POST /v1/identities/{id}/token` with `{ "scopes": ["voip"], "ttl_secs": 86400 }` (both optional; these are the defaults) | 200 `{ "token": "..", "expires_at": <unix seconds> }` |
//! | `POST /v1/identities/{id}/revoke` | 200 `{ "id": "8:..", "revoked": true }`: tokens issued until now are refused, the identity's sessions end with "access revoked" |
//!
//! `{id}` is the raw identifier (`8:abc..`, or just `abc..`). Errors are JSON
//! `{ "code": "..", "message": ".." }` with these codes: `unauthorized` (401),
//! `not_found` (404), `invalid_request` (400), `unavailable` (503).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use ringwire_signaling::{Identifier, Scope, Scopes, UserId};
use serde::{Deserialize, Serialize};

use crate::Shared;
use crate::keys::{KeyError, random_hex};

/// Longest token lifetime the API issues: one year.
const MAX_TTL: Duration = Duration::from_secs(366 * 24 * 3600);

/// A fresh random user id: 32 lower-case hex characters from the OS random source.
///
/// # Errors
/// [`KeyError::Random`] when the OS random source fails.
pub fn new_user_id() -> Result<UserId, KeyError> {
    let id = random_hex(16)?;
    Ok(UserId::new(&id).expect("32 hex characters are a valid user id"))
}

/// The identities this server made.
#[derive(Debug, Default)]
pub(crate) struct Identities {
    // A plain set behind a lock: REST calls are rare and never hold it across an await.
    known: Mutex<BTreeSet<UserId>>,
}

impl Identities {
    fn insert(&self, user: UserId) {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(user);
    }

    fn contains(&self, user: &UserId) -> bool {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(user)
    }
}

/// An API error: HTTP status, stable code, message.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code,
            message: &self.message,
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// Proof that the request carried the access key.
pub(crate) struct Admin;

impl FromRequestParts<Arc<Shared>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self, ApiError> {
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("missing `Authorization: Bearer <access key>`"))?;
        let secret = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| unauthorized("expected `Authorization: Bearer <access key>`"))?;
        if shared.key.matches_hex(secret.trim()) {
            Ok(Admin)
        } else {
            Err(unauthorized("wrong access key"))
        }
    }
}

#[derive(Serialize)]
struct Created {
    id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    #[serde(default = "default_scopes")]
    scopes: Vec<String>,
    #[serde(default = "default_ttl")]
    ttl_secs: u64,
}

#[derive(Serialize)]
struct TokenResponse {
    token: String,
    expires_at: u64,
}

#[derive(Serialize)]
struct Revoked {
    id: String,
    revoked: bool,
}

fn default_scopes() -> Vec<String> {
    vec![Scope::Voip.as_str().to_owned()]
}

fn default_ttl() -> u64 {
    24 * 3600
}

/// `POST /v1/identities`.
pub(crate) async fn create(
    _: Admin,
    State(shared): State<Arc<Shared>>,
) -> Result<Response, ApiError> {
    let user = new_user_id()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    shared.identities.insert(user.clone());
    tracing::info!(%user, "identity created");
    let id = Identifier::User(user).to_string();
    Ok((StatusCode::CREATED, Json(Created { id })).into_response())
}

/// `POST /v1/identities/{id}/token`.
pub(crate) async fn token(
    _: Admin,
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = known_user(&shared, &id)?;
    let request: TokenRequest = if body.iter().all(u8::is_ascii_whitespace) {
        TokenRequest {
            scopes: default_scopes(),
            ttl_secs: default_ttl(),
        }
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid(format!("bad json: {e}")))?
    };
    let scopes = request
        .scopes
        .iter()
        .map(|s| s.parse::<Scope>())
        .collect::<Result<Scopes, _>>()
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let ttl = Duration::from_secs(request.ttl_secs);
    if ttl.is_zero() || ttl > MAX_TTL {
        return Err(ApiError::invalid(format!(
            "ttl_secs must be between 1 and {}",
            MAX_TTL.as_secs()
        )));
    }
    let now = SystemTime::now();
    let token = shared.token_key.issue(&user, scopes, now, ttl);
    let expires_at = (now + ttl)
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(Json(TokenResponse { token, expires_at }).into_response())
}

/// `POST /v1/identities/{id}/revoke`.
pub(crate) async fn revoke(
    _: Admin,
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let user = known_user(&shared, &id)?;
    shared.hub.revoke(user.clone()).await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        )
    })?;
    tracing::info!(%user, "identity revoked");
    let revoked = Revoked {
        id: Identifier::User(user).to_string(),
        revoked: true,
    };
    Ok(Json(revoked).into_response())
}

/// Parses `8:<id>` or `<id>` and checks the server made it.
fn known_user(shared: &Shared, id: &str) -> Result<UserId, ApiError> {
    let raw = id.strip_prefix("8:").unwrap_or(id);
    let user =
        UserId::new(raw).map_err(|e| ApiError::invalid(format!("bad identity {id:?}: {e}")))?;
    if !shared.identities.contains(&user) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no identity 8:{user}"),
        ));
    }
    Ok(user)
}
