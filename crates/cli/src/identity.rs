//! `ringwire identity create`.

use std::path::Path;

use anyhow::Result;
use clap::Subcommand;
use ringwire_signaling::Identifier;

use crate::token::{self, Grant};

/// `ringwire identity ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum IdentityCommand {
    /// Make a new user id (and, with --token, a token for it) locally.
    ///
    /// Any id works with a token from the local access key; a running server's REST
    /// API (`POST /v1/identities`) is the way to create identities it keeps track of.
    Create {
        /// Also print a token for the new identity.
        #[arg(long)]
        token: bool,
        #[command(flatten)]
        grant: Grant,
    },
}

pub(crate) fn run(config: Option<&Path>, command: &IdentityCommand) -> Result<()> {
    match command {
        IdentityCommand::Create { token, grant } => {
            let user = ringwire_server::new_user_id()?;
            println!("{}", Identifier::User(user.clone()));
            if *token {
                println!("{}", token::issue(config, &user, grant)?);
            }
            Ok(())
        }
    }
}
