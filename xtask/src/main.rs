//! `cargo xtask`: the workspace's own chores (make the boilerplate yours, add an API, an API version or an owned
//! entity) as one command each, in Rust so they need nothing but cargo. This file owns the command line and the
//! exit code: every failure is one `error: ...` line on stderr and exit status 1.

mod entity;
mod generate;
mod names;
mod rename;
mod text;
mod workspace;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

/// Command line of `cargo xtask`.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    about = "The workspace's chores: rename the project, add an API, an API version or an owned entity"
)]
struct Cli {
    /// The checkout to change [default: the workspace this xtask belongs to]
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// The chores.
#[derive(Debug, Subcommand)]
enum Command {
    /// Turn the checkout into NEW_NAME: crates, binaries, library, scopes, realm, OpenAPI title, client paths,
    /// Helm chart, image names, documents and openapi.json. Needs a clean work tree; review and commit the result.
    Rename {
        /// The new name: lowercase letters, digits and single hyphens, starting with a letter (e.g. acme-orders)
        new_name: String,
    },
    /// Add VERSION of an existing API, copied from its latest version (paths and operation ids renumbered), with
    /// its registry line, a test and the regenerated openapi.json.
    NewVersion {
        /// The API: a module under crates/server/src/apis/ (e.g. greeting)
        api: String,
        /// The new version, e.g. v4; it must be newer than the latest one
        version: String,
        /// Leave openapi.json alone (regenerate it later with the server's `openapi` command)
        #[arg(long)]
        no_openapi: bool,
    },
    /// Add a new API with a v1 example (one GET route), its registry line, a test file and the regenerated
    /// openapi.json.
    NewApi {
        /// The API's name, a Rust module name: lowercase letters, digits and single underscores (e.g. orders)
        api: String,
        /// Leave openapi.json alone (regenerate it later with the server's `openapi` command)
        #[arg(long)]
        no_openapi: bool,
    },
    /// Add an entity owned like resources, end to end: its migration, SeaORM entity, domain (validated types,
    /// rules, store trait), SeaORM store, API v1 (list, get, create, replace, delete), bodies in api-types, tests on
    /// every engine and the regenerated openapi.json. Needs a clean work tree; review and commit the result.
    #[command(after_long_help = ENTITY_HELP)]
    NewEntity {
        /// The entity's name, singular: lowercase letters, digits and single underscores (e.g. order, line_item);
        /// its API is /api/<NAME>/v1
        name: String,
        /// A field as NAME:TYPE, TYPE one of string(N), text, integer, boolean, timestamp, decimal, decimal(P,S),
        /// with ? after it when optional (quote it in a shell: --field 'name:string(100)')
        #[arg(long = "field", value_name = "NAME:TYPE", required = true)]
        fields: Vec<String>,
        /// The field unique per owner (a required string(N)) [default: the first required string(N) field]
        #[arg(long, value_name = "FIELD", conflicts_with = "no_unique")]
        unique: Option<String>,
        /// No field is unique per owner
        #[arg(long)]
        no_unique: bool,
        /// The plural (table, domain and store modules), when `s`/`es`/`ies` gets it wrong (e.g. person -> people)
        #[arg(long, value_name = "PLURAL")]
        plural: Option<String>,
        /// Leave openapi.json alone (regenerate it later with the server's `openapi` command)
        #[arg(long)]
        no_openapi: bool,
    },
}

/// The types of `new-entity`, shown by `cargo xtask new-entity --help`.
const ENTITY_HELP: &str = "\
Field types (JSON / column on every engine):
  string(N)     text of 1 to N characters (N <= 1024), NFC, trimmed, no control/format characters / VARCHAR(N)
  text          any text without NUL, verbatim / TEXT (LONGTEXT on MariaDB)
  integer       a 64-bit whole number / BIGINT
  boolean       true or false / BOOLEAN
  timestamp     an RFC 3339 string, to the microsecond, answered in UTC / BIGINT of microseconds since 1970
  decimal(P,S)  an exact decimal as a string (\"12.50\"), P <= 18 digits, S after the point / BIGINT of units
                of 10^-S; `decimal` is decimal(18,2)
  TYPE?         optional: null or absent; a PUT without it clears it

Unique: the first required string(N) field is unique per owner (a 409 names the existing one) unless --unique
names another or --no-unique says none; a unique string holds at most 512 characters.

Example:
  cargo xtask new-entity order --field 'name:string(100)' --field amount:decimal --field 'due:timestamp?'";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = workspace::root(cli.root.as_deref()).and_then(|root| match &cli.command {
        Command::Rename { new_name } => rename::run(&root, new_name),
        Command::NewVersion { api, version, no_openapi } => generate::new_version(&root, api, version, !no_openapi),
        Command::NewApi { api, no_openapi } => generate::new_api(&root, api, !no_openapi),
        Command::NewEntity { name, fields, unique, no_unique, plural, no_openapi } => {
            let unique = match (unique, no_unique) {
                (Some(field), _) => entity::spec::Unique::Field(field.clone()),
                (None, true) => entity::spec::Unique::None,
                (None, false) => entity::spec::Unique::Default,
            };
            let request = entity::Request { name, plural: plural.as_deref(), fields, unique, regenerate: !no_openapi };
            entity::new_entity(&root, &request)
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
