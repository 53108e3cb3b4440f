//! The command line, in the Flask original's shape (`-h`, `-V`, `-q`, `-d`, `-c` and the manual configuration
//! flags): clap definitions only, no behaviour.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::auth::oauth::Secret;

const FILE_CONFIGURATION: &str = "File Configuration";
const MANUAL_CONFIGURATION: &str = "Manual Configuration";

/// Command line of the `rust-api-axum-client` binary.
#[derive(Debug, Parser)]
#[command(
    name = "rust-api-axum-client",
    version = api_types::VERSION,
    help_template = "{name} - {version}\n\n{usage-heading} {usage}\n\n{all-args}{after-help}",
    after_help = "Values given on the command line override those in the configuration file. Without --config, \
                  ~/etc/rust-api-axum-client.json is read when it exists, else \
                  $XDG_CONFIG_HOME/rust-api-axum-client/config.json.\n\
                  Exit codes: 0 success, 1 API or login failure, 2 usage or configuration error."
)]
pub struct Cli {
    /// Quiet: print only the result (the login prompt still appears when a login is needed)
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Debug: log every request to the provider and the API (never secrets or tokens)
    #[arg(short, long, global = true)]
    pub debug: bool,

    /// How to print results: text for people, json (the API's bodies) for scripts
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text, value_name = "FORMAT")]
    pub output: OutputFormat,

    /// Path to the JSON configuration file
    #[arg(short, long, global = true, value_name = "CONFIG", help_heading = FILE_CONFIGURATION)]
    pub config: Option<PathBuf>,

    /// OAuth client id of this CLI at the OpenID provider [config: client_id]
    #[arg(long, global = true, value_name = "ID", help_heading = MANUAL_CONFIGURATION)]
    pub client_id: Option<String>,

    /// Client secret, only for confidential clients; prefer the configuration file [config: client_secret]
    #[arg(long, global = true, value_name = "SECRET", help_heading = MANUAL_CONFIGURATION, value_parser = secret)]
    pub client_secret: Option<Secret>,

    /// OpenID discovery URL (.well-known/openid-configuration), or the issuer URL [config: discovery_url]
    #[arg(long, global = true, value_name = "URL", help_heading = MANUAL_CONFIGURATION)]
    pub discovery_url: Option<String>,

    /// Base URL of the rust-api-axum server, e.g. http://localhost:8080 [config: api_url]
    #[arg(long, global = true, value_name = "URL", help_heading = MANUAL_CONFIGURATION)]
    pub api_url: Option<String>,

    /// Space-separated scopes to request at login [config: scopes]
    /// [default: openid profile offline_access and the API's read and write scopes]
    #[arg(long, global = true, value_name = "SCOPES", help_heading = MANUAL_CONFIGURATION)]
    pub scope: Option<String>,

    /// PEM bundle of extra CA certificates to trust, for a private CA [config: ca_cert]
    #[arg(long, global = true, value_name = "FILE", help_heading = MANUAL_CONFIGURATION)]
    pub ca_cert: Option<PathBuf>,

    /// What to do; greets when omitted
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// How results are printed on standard output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Lines for people.
    Text,
    /// The API's JSON bodies, for scripts.
    Json,
}

/// The client's commands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Log in with the device flow (a browser on any device) and cache the tokens
    Login,
    /// Forget the cached tokens and revoke them at the provider
    Logout,
    /// Call the authenticated greeting API and print its message (the default)
    Greet,
    /// List, show, create, rename and delete resources
    Resource {
        /// The resource operation
        #[command(subcommand)]
        action: ResourceCommand,
    },
}

/// Operations of `rust-api-axum-client resource`.
#[derive(Debug, Clone, Subcommand)]
pub enum ResourceCommand {
    /// List every resource (all pages)
    List {
        /// Resources fetched per request
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
    /// Show one resource
    Get {
        /// The resource's id
        id: i64,
    },
    /// Create a resource owned by you
    Create {
        /// Its name
        name: String,
    },
    /// Rename one of your resources, unless it changed since it was read
    Rename {
        /// The resource's id
        id: i64,
        /// The new name
        name: String,
        /// What it must still be
        #[command(flatten)]
        precondition: Precondition,
    },
    /// Delete one of your resources, unless it changed since it was read
    Delete {
        /// The resource's id
        id: i64,
        /// What it must still be
        #[command(flatten)]
        precondition: Precondition,
    },
}

/// What a rename or delete expects of the resource: by default it is read first and changed only if nobody
/// changed it in between (`If-Match` with its entity tag).
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct Precondition {
    /// Change it only if its entity tag is still ETAG (as `resource get` showed it), instead of reading it first
    #[arg(long, value_name = "ETAG", conflicts_with = "force", value_parser = entity_tag)]
    pub if_match: Option<String>,

    /// Change it whatever happened to it: no read first, no If-Match
    #[arg(long)]
    pub force: bool,
}

/// An entity tag as `If-Match` sends it; given bare (`3-abc`) or quoted (`'"3-abc"'`).
fn entity_tag(value: &str) -> Result<String, String> {
    crate::writes::if_match(value)
        .ok_or_else(|| "not an entity tag: visible ASCII characters without inner quotes, e.g. \"3-abc\"".to_owned())
}

/// A flag's value kept as a secret from the moment it is parsed, so `{:?}` of the command line never shows it.
fn secret(value: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret::from(value))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_may_follow_the_command() {
        let cli = Cli::try_parse_from(["c", "resource", "get", "7", "--output", "json", "-q"]).expect("parses");
        assert!(cli.quiet);
        assert_eq!(cli.output, OutputFormat::Json);
        assert!(matches!(cli.command, Some(Command::Resource { action: ResourceCommand::Get { id: 7 } })));
    }

    fn precondition(args: &[&str]) -> Result<Precondition, clap::Error> {
        let cli = Cli::try_parse_from(args)?;
        match cli.command {
            Some(Command::Resource {
                action: ResourceCommand::Rename { precondition, .. } | ResourceCommand::Delete { precondition, .. },
            }) => Ok(precondition),
            other => panic!("not a change: {other:?}"),
        }
    }

    #[test]
    fn changes_read_first_unless_given_a_tag_or_forced() {
        let read_first = Precondition { if_match: None, force: false };
        assert_eq!(precondition(&["c", "resource", "rename", "7", "new"]).expect("parses"), read_first);
        assert_eq!(precondition(&["c", "resource", "delete", "7"]).expect("parses"), read_first);
        let forced = precondition(&["c", "resource", "delete", "7", "--force"]).expect("parses");
        assert_eq!(forced, Precondition { if_match: None, force: true });
        let tagged = precondition(&["c", "resource", "rename", "7", "new", "--if-match", "3-abc"]).expect("parses");
        assert_eq!(tagged.if_match.as_deref(), Some("\"3-abc\""), "quoted for the header");
        let error =
            precondition(&["c", "resource", "delete", "7", "--if-match", "\"x\"", "--force"]).expect_err("both");
        assert_eq!(error.kind(), clap::error::ErrorKind::ArgumentConflict);
        let error = precondition(&["c", "resource", "delete", "7", "--if-match", "a b"]).expect_err("not a tag");
        assert_eq!(error.kind(), clap::error::ErrorKind::ValueValidation);
    }
}
