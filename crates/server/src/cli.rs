//! The command line, in the Flask original's shape: clap definitions only, no behaviour.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Command line of the `rust-api-axum` binary.
#[derive(Debug, Parser)]
#[command(
    name = "rust-api-axum",
    version = crate::VERSION,
    help_template = "{name} - {version}\n\n{usage-heading} {usage}\n\n{all-args}{after-help}",
    after_help = "Configuration is layered: built-in defaults < the JSON file named by APP_CONFIG < \
                  APP_CONFIG_<KEY> environment variables < these flags."
)]
pub struct Cli {
    /// Debug: log at debug level
    #[arg(short, long, global = true)]
    pub debug: bool,

    /// Host interface to bind to [default: localhost]
    #[arg(long, global = true, value_name = "HOST")]
    pub host: Option<String>,

    /// Port to bind to [default: 8080]
    #[arg(long, global = true, value_name = "PORT")]
    pub port: Option<u16>,

    /// Path to the instance directory, created if missing [default: var/instance]
    #[arg(long, global = true, value_name = "PATH")]
    pub instance_path: Option<PathBuf>,

    /// Database URI
    #[arg(long, global = true, value_name = "URI")]
    pub db: Option<String>,

    /// Path to the file containing the OIDC registration (client_secrets.json)
    #[arg(long, global = true, value_name = "FILE")]
    pub oidc_secrets: Option<PathBuf>,

    /// PEM bundle of extra CA certificates to trust when calling the OpenID provider
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,

    /// Production mode: never change the database schema; refuse to start while it is behind
    #[arg(long, global = true)]
    pub no_migrate: bool,

    /// What to do; serves the API when omitted
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The binary's commands besides serving.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default)
    Serve,
    /// Print the OpenAPI document as JSON and exit
    Openapi,
    /// Manage the database schema (the original's `flask db ...`)
    Db {
        /// The schema operation
        #[command(subcommand)]
        action: DbCommand,
    },
    /// Print the merged configuration as JSON (without the keys that can hold a secret) and exit
    Config {
        /// Print the configuration reference (every key, its variable, flag, default and meaning) as Markdown
        #[arg(long)]
        reference: bool,
    },
    /// Check what a deployment needs: configuration, instance path, database and schema, OpenID provider, clock
    /// and port; one line per check with what to fix. Exits 0 only when all pass
    Doctor {
        /// One JSON object instead of lines, for machines
        #[arg(long)]
        json: bool,
    },
}

/// Schema operations of `rust-api-axum db`.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum DbCommand {
    /// Apply every pending migration
    Upgrade,
    /// Revert the most recent migrations
    Downgrade {
        /// How many migrations to revert
        #[arg(default_value_t = 1)]
        steps: u32,
    },
    /// Show which migrations are applied and which are pending
    Status,
    /// List every migration this binary knows, oldest first
    History,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_may_follow_the_command() {
        let cli = Cli::try_parse_from(["rust-api-axum", "openapi", "--port", "9"]).expect("parses");
        assert_eq!(cli.port, Some(9));
        assert!(matches!(cli.command, Some(Command::Openapi)));
    }
}
