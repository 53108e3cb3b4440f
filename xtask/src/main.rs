//! `cargo xtask`: the workspace's own chores (make the boilerplate yours, add an API or an API version) as one
//! command each, in Rust so they need nothing but cargo. This file owns the command line and the exit code: every
//! failure is one `error: ...` line on stderr and exit status 1.

mod generate;
mod names;
mod rename;
mod text;
mod workspace;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

/// Command line of `cargo xtask`.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "The workspace's chores: rename the project, add an API or an API version")]
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = workspace::root(cli.root.as_deref()).and_then(|root| match &cli.command {
        Command::Rename { new_name } => rename::run(&root, new_name),
        Command::NewVersion { api, version, no_openapi } => generate::new_version(&root, api, version, !no_openapi),
        Command::NewApi { api, no_openapi } => generate::new_api(&root, api, !no_openapi),
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
