//! `ringwire token`.

use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow};
use clap::Args;
use ringwire_server::{AccessKey, ServerConfig};
use ringwire_signaling::{Identifier, Scopes, UserId};

/// Options of `ringwire token` (and of `ringwire identity create --token`).
#[derive(Debug, Args)]
pub(crate) struct TokenArgs {
    /// The user: `alice` or `8:alice`.
    #[arg(long, value_name = "ID")]
    user: String,
    #[command(flatten)]
    grant: Grant,
}

/// What a token allows and for how long.
#[derive(Debug, Clone, Args)]
pub(crate) struct Grant {
    /// Comma-separated scopes: voip, pstn.
    #[arg(long, default_value = "voip", value_parser = parse_scopes)]
    scopes: Scopes,
    /// How long the token is valid, e.g. 24h, 30m, 7d.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    ttl: Duration,
}

/// Prints a token for `--user` made with the access key in the data directory (made
/// there if this machine has none yet; `ringwire serve` reuses it).
pub(crate) fn run(config: Option<&Path>, args: &TokenArgs) -> Result<()> {
    let user = parse_user(&args.user)?;
    println!("{}", issue(config, &user, &args.grant)?);
    Ok(())
}

/// A token for `user` made with the local access key.
pub(crate) fn issue(config: Option<&Path>, user: &UserId, grant: &Grant) -> Result<String> {
    let config = ServerConfig::load(config)?;
    let key = AccessKey::load_or_create(&config.data_dir)
        .with_context(|| format!("reading the access key in {}", config.data_dir.display()))?;
    Ok(key
        .token_key()
        .issue(user, grant.scopes, SystemTime::now(), grant.ttl))
}

fn parse_user(raw: &str) -> Result<UserId> {
    let raw = if raw.contains(':') {
        raw.to_owned()
    } else {
        format!("8:{raw}")
    };
    match raw.parse::<Identifier>() {
        Ok(Identifier::User(user)) => Ok(user),
        Ok(other) => Err(anyhow!("{other} is not a user; tokens are for `8:` users")),
        Err(e) => Err(anyhow!("bad user id {raw:?}: {e}")),
    }
}

fn parse_scopes(raw: &str) -> Result<Scopes, String> {
    raw.parse::<Scopes>().map_err(|e| e.to_string())
}
