//! The browser side of `ringwire serve`: the demo page, the browser SDK bundle, and the
//! development identity endpoint the demo page gets its token from.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the demo page, `<web_dir>/demo/index.html` |
//! | `GET /demo.js`, `GET /demo.css` | its script and style sheet, from `<web_dir>/demo/` |
//! | `GET /sdk/ringwire.js`, `GET /sdk/ringwire.js.map` | the SDK bundle `npm run build` writes to `<web_dir>/dist/`, with `Access-Control-Allow-Origin: *` so pages of other origins can import it |
//! | `POST /dev/token` with `{ "name": "Alice" }` | development mode only (404 otherwise): 200 `{ "id": "8:alice", "name": "Alice", "token": "..", "expires_at": <unix seconds> }`, a `voip` token valid for a day |
//!
//! # Where the files come from
//! They are read from a folder at each request, not embedded: `web_dir` in the
//! configuration, else the repository's `web/` folder this binary was built from
//! (`CARGO_MANIFEST_DIR/../../web`). Embedding with `include_bytes!` would need the
//! bundle to exist at compile time, so `cargo build` would depend on npm having run (or
//! on a build script that silently embeds nothing); reading at request time keeps
//! `cargo build` free of node, lets a rebuilt bundle show up on reload without
//! restarting the server, and a missing bundle is a 404 that says to run
//! `npm run build`. Only these fixed names are served, so no request path ever reaches
//! the file system.
//!
//! # The development identity endpoint
//! Browsers cannot hold the access key, so the demo page asks `/dev/token` for a token
//! for a display name. The user id is the name made into an identifier (lower case,
//! spaces to `-`, other characters outside `a-z 0-9 - _ . @` dropped): two tabs named
//! "Alice" and "Bob" can call `8:bob` and `8:alice`. Anyone who reaches the port can
//! be anyone, so the route answers only in development mode
//! ([`ServerConfig::is_dev_mode`](crate::ServerConfig::is_dev_mode): loopback
//! by default). It takes only `Content-Type: application/json`, which a page of another
//! origin cannot send without a CORS preflight that this server never grants.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ringwire_signaling::{Identifier, Scope, Scopes, UserId};
use serde::{Deserialize, Serialize};

use crate::Shared;

/// Lifetime of a development token.
const DEV_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// Longest display name accepted.
const MAX_NAME_LEN: usize = 64;

/// The demo page, the SDK bundle and the development token endpoint.
pub(crate) fn routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(|s| file(s, Asset::Page)))
        .route("/demo.js", get(|s| file(s, Asset::Script)))
        .route("/demo.css", get(|s| file(s, Asset::Style)))
        .route("/sdk/ringwire.js", get(|s| file(s, Asset::Sdk)))
        .route("/sdk/ringwire.js.map", get(|s| file(s, Asset::SdkMap)))
        .route("/dev/token", post(dev_token))
        .with_state(shared)
}

/// The folder the demo page and the SDK bundle are read from.
pub(crate) fn web_dir(configured: Option<&Path>) -> PathBuf {
    match configured {
        Some(dir) => dir.to_path_buf(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web"),
    }
}

/// The files served, each under a fixed name.
#[derive(Debug, Clone, Copy)]
enum Asset {
    Page,
    Script,
    Style,
    Sdk,
    SdkMap,
}

impl Asset {
    fn path(self) -> &'static str {
        match self {
            Asset::Page => "demo/index.html",
            Asset::Script => "demo/demo.js",
            Asset::Style => "demo/demo.css",
            Asset::Sdk => "dist/ringwire.js",
            Asset::SdkMap => "dist/ringwire.js.map",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Asset::Page => "text/html; charset=utf-8",
            Asset::Script | Asset::Sdk => "text/javascript; charset=utf-8",
            Asset::Style => "text/css; charset=utf-8",
            Asset::SdkMap => "application/json",
        }
    }
}

async fn file(State(shared): State<Arc<Shared>>, asset: Asset) -> Response {
    let path = web_dir(shared.config.web_dir.as_deref()).join(asset.path());
    let body = match tokio::fs::read(&path).await {
        Ok(body) => body,
        Err(e) => {
            tracing::debug!(path = %path.display(), error = %e, "web file not served");
            let hint = match asset {
                Asset::Sdk | Asset::SdkMap => " (build it: cd web && npm ci && npm run build)",
                _ => " (set web_dir to the repository's web/ folder)",
            };
            return (
                StatusCode::NOT_FOUND,
                format!("{} not found{hint}\n", path.display()),
            )
                .into_response();
        }
    };
    let mut response = (
        [
            (header::CONTENT_TYPE, asset.content_type()),
            // Files change under a running development server (npm run build).
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response();
    if matches!(asset, Asset::Sdk | Asset::SdkMap) {
        response.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    response
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DevTokenRequest {
    name: String,
}

#[derive(Serialize)]
struct DevTokenResponse {
    id: String,
    name: String,
    token: String,
    expires_at: u64,
}

async fn dev_token(
    State(shared): State<Arc<Shared>>,
    request: Result<Json<DevTokenRequest>, JsonRejection>,
) -> Response {
    if !shared.config.is_dev_mode() {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    }
    let Json(request) = match request {
        Ok(request) => request,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let name = request.name.trim();
    let user = match user_for_name(name) {
        Ok(user) => user,
        Err(problem) => return (StatusCode::BAD_REQUEST, format!("{problem}\n")).into_response(),
    };
    let now = SystemTime::now();
    let token = shared
        .token_key
        .issue(&user, Scopes::from(Scope::Voip), now, DEV_TOKEN_TTL);
    let expires_at = (now + DEV_TOKEN_TTL)
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    tracing::info!(%user, "development token issued");
    Json(DevTokenResponse {
        id: Identifier::User(user).to_string(),
        name: name.to_owned(),
        token,
        expires_at,
    })
    .into_response()
}

/// The user id for a display name: lower case, whitespace to `-`, characters a user id
/// cannot hold dropped.
fn user_for_name(name: &str) -> Result<UserId, &'static str> {
    if name.chars().count() > MAX_NAME_LEN {
        return Err("the name is longer than 64 characters");
    }
    let mut id = String::new();
    for c in name.chars() {
        if c.is_whitespace() {
            if !id.ends_with('-') {
                id.push('-');
            }
        } else if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@') {
            id.push(c.to_ascii_lowercase());
        }
    }
    let id = id.trim_matches('-');
    if id.is_empty() {
        return Err("the name needs a letter or digit (a-z, 0-9)");
    }
    UserId::new(id).map_err(|_| "this name is reserved or not a valid user id")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_user_ids() {
        assert_eq!(user_for_name("Alice").unwrap().as_str(), "alice");
        assert_eq!(
            user_for_name("Ada  Lovelace").unwrap().as_str(),
            "ada-lovelace"
        );
        assert_eq!(user_for_name(" Zoë 2 ").unwrap().as_str(), "zo-2");
        assert_eq!(
            user_for_name("bob@example.org").unwrap().as_str(),
            "bob@example.org"
        );
    }

    #[test]
    fn unusable_names_are_refused() {
        assert!(user_for_name("").is_err());
        assert!(user_for_name("ßß").is_err());
        assert!(user_for_name("echo123").is_err(), "the echo service's id");
        assert!(user_for_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn web_dir_defaults_to_the_repository() {
        let dir = web_dir(None);
        assert!(dir.join("package.json").exists(), "{}", dir.display());
        assert_eq!(web_dir(Some(Path::new("/srv/web"))), Path::new("/srv/web"));
    }
}
