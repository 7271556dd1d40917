//! Command-line interface: parsing and dispatch.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;

/// OAuth 2.1 for MCP servers.
///
/// Configuration comes from defaults, then the TOML file given by --config, then AUTHFLOW_* environment
/// variables (and DATABASE_URL / REDIS_URL), then command-line flags; each later source wins.
#[derive(Debug, Parser)]
#[command(name = "authflow", version, about, long_about)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, env = "AUTHFLOW_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the authorization server.
    Serve(ServeArgs),
    /// Apply database schema migrations and exit.
    Migrate(StorageArgs),
    /// Manage local users (who can sign in on the login page).
    User {
        #[command(flatten)]
        storage: StorageArgs,
        #[command(subcommand)]
        command: crate::admin::UserCommand,
    },
    /// Manage OAuth clients.
    Client {
        #[command(flatten)]
        storage: StorageArgs,
        #[command(subcommand)]
        command: crate::admin::ClientCommand,
    },
    /// Manage the signing keys of JWT access tokens and ID tokens.
    Key {
        #[command(flatten)]
        storage: StorageArgs,
        #[command(subcommand)]
        command: crate::admin::KeyCommand,
    },
    /// Run an authorization server and a protected notes MCP server, ready for an MCP client.
    Demo(crate::demo::DemoArgs),
    /// Put OAuth in front of an existing HTTP MCP server (a reverse proxy).
    Gateway(crate::gateway::GatewayArgs),
}

/// Where state is kept.
#[derive(Debug, Clone, Args)]
pub struct StorageArgs {
    /// Database URL: sqlite://authflow.db (default, embedded), postgres://user@host/db, or memory:.
    #[arg(long, global = true, env = "AUTHFLOW_DATABASE", value_name = "URL")]
    pub database: Option<String>,
}

/// Flags of `authflow serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8000].
    #[arg(long, env = "AUTHFLOW_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Public base URL of this server, used as the issuer identifier [default: http://<listen>].
    #[arg(long, env = "AUTHFLOW_ISSUER", value_name = "URL")]
    pub issuer: Option<String>,
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Redis URL for state shared between replicas.
    #[arg(long, env = "AUTHFLOW_REDIS", value_name = "URL")]
    pub redis: Option<String>,
    /// Do not apply database migrations at start (run `authflow migrate` instead).
    #[arg(long)]
    pub no_migrate: bool,
}

/// A failure reported to the user.
pub type CliResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Load the configuration and run the command.
pub async fn run(cli: Cli) -> CliResult {
    let (mut config, warnings) = Config::load(cli.config.as_deref(), std::env::vars())?;
    for w in &warnings {
        tracing::warn!("{w}");
    }
    match cli.command {
        Command::Serve(args) => {
            apply_storage(&mut config, &args.storage);
            if let Some(listen) = args.listen {
                config.listen = listen;
            }
            if let Some(issuer) = args.issuer {
                config.issuer = Some(issuer);
            }
            if let Some(redis) = args.redis {
                config.redis = Some(redis);
            }
            if args.no_migrate {
                config.migrate = false;
            }
            crate::serve::serve(config).await
        }
        Command::Migrate(storage) => {
            let store = open_for_admin(&mut config, &storage).await?;
            println!("migrations applied ({} backend)", store.backend());
            Ok(())
        }
        Command::User { storage, command } => {
            let store = open_for_admin(&mut config, &storage).await?;
            crate::admin::user(store.as_ref(), command).await
        }
        Command::Client { storage, command } => {
            let store = open_for_admin(&mut config, &storage).await?;
            crate::admin::client(store.as_ref(), command).await
        }
        Command::Key { storage, command } => {
            let store = open_for_admin(&mut config, &storage).await?;
            let lifetime = std::time::Duration::from_secs(config.access_token_ttl_secs);
            let algorithm = config.signing_algorithm()?;
            crate::admin::key(store, config.key_encryption()?, lifetime, algorithm, command).await
        }
        Command::Demo(args) => crate::demo::demo(args.apply(config.demo), config.friction).await,
        Command::Gateway(args) => crate::gateway::gateway(args.apply(config.gateway), config.friction).await,
    }
}

/// Open storage (migrating it, so admin commands work on a fresh database).
async fn open_for_admin(
    config: &mut Config,
    storage: &StorageArgs,
) -> Result<std::sync::Arc<dyn authflow_store::Store>, Box<dyn std::error::Error + Send + Sync>> {
    apply_storage(config, storage);
    let options = authflow_store::OpenOptions { migrate: true, max_connections: 2 };
    Ok(authflow_store::open(&config.database, &options).await?)
}

fn apply_storage(config: &mut Config, args: &StorageArgs) {
    if let Some(db) = &args.database {
        config.database = db.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
