//! `rust-api-axum-client`: logs a person in with the OAuth 2.0 device authorization grant (RFC 8628) and calls
//! the rust-api-axum API with the access token. This file parses the command line, runs the command and is the
//! only place that picks exit codes: 0 success, 1 API or login failure, 2 usage or configuration error.

use std::{io::Write as _, process::ExitCode, time::Duration};

use clap::Parser;

use crate::{
    api::{Api, Expected},
    auth::Session,
    cli::{Cli, Command, Precondition, ResourceCommand},
    config::{Settings, UserDirs},
    error::Error,
    output::{Change, Output},
    ui::Ui,
};

mod api;
mod auth;
mod cli;
mod config;
mod error;
mod net;
mod output;
mod ui;
mod writes;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.debug);
    install_panic_hook();
    let output = Output(cli.output);
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&Error::Runtime(error), output),
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = run(&cli, output) => outcome,
            () = interrupted() => Err(Error::Interrupted),
        }
    });
    // A refresh may be waiting for another run's cache lock on a blocking thread: do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error, output),
    }
}

async fn run(cli: &Cli, output: Output) -> Result<(), Error> {
    let settings = Settings::load(cli, &UserDirs::current())?;
    let ui = Ui::new(cli.quiet, cli.debug);
    for warning in settings.cleartext_warnings() {
        ui.warn(&warning);
    }
    let command = cli.command.clone().unwrap_or(Command::Greet);
    // Check the API URL before anything else, so a missing one does not cost the user a login first.
    if matches!(command, Command::Greet | Command::Resource { .. }) {
        settings.api_url()?;
    }
    let http = net::client(settings.ca_cert.as_deref())?;
    let mut session = Session::new(&http, &settings, ui);
    match command {
        Command::Login => output.login(&session.login().await?),
        Command::Logout => output.logout(&session.logout().await?),
        Command::Greet => output.greeting(&Api::new(&http, settings.api_url()?, session).greet().await?),
        Command::Resource { action } => {
            let mut api = Api::new(&http, settings.api_url()?, session);
            match action {
                ResourceCommand::List { limit } => output.resources(&api.list(limit).await?),
                ResourceCommand::Get { id } => output.resource(&api.get(id).await?, Change::Shown),
                ResourceCommand::Create { name } => output.resource(&api.create(&name).await?, Change::Created),
                ResourceCommand::Rename { id, name, precondition } => {
                    output.resource(&api.rename(id, &name, expected(precondition)).await?, Change::Renamed);
                }
                ResourceCommand::Delete { id, precondition } => {
                    api.delete(id, expected(precondition)).await?;
                    output.deleted(id);
                }
            }
        }
    }
    Ok(())
}

/// What a rename or delete expects of the resource, from its flags.
fn expected(precondition: Precondition) -> Expected {
    match precondition {
        Precondition { force: true, .. } => Expected::Any,
        Precondition { if_match: Some(etag), .. } => Expected::Tag(etag),
        Precondition { if_match: None, force: false } => Expected::Current,
    }
}

/// Reports `error` as one line on standard error (and, for scripts, the API's problem on standard output).
fn fail(error: &Error, output: Output) -> ExitCode {
    if let Error::Api(api_error) = error
        && let Some(body) = api_error.problem_body()
    {
        output.problem(body);
    }
    // Problem details and the provider's errors are the server's and the provider's words: printable, one line.
    let _ = writeln!(std::io::stderr(), "error: {}", output::printable(&error.to_string()));
    ExitCode::from(error.exit_code())
}

/// Resolves on Ctrl-C; never, when signals cannot be watched.
async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// `-d` logs this crate's requests at debug level on standard error; otherwise only `RUST_LOG` turns logs on.
fn init_logging(debug: bool) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(value) if !value.is_empty() => tracing_subscriber::EnvFilter::new(value),
        _ => tracing_subscriber::EnvFilter::new(if debug { "rust_api_axum_client=debug" } else { "off" }),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(false)
        .try_init();
}

/// A panic is a bug; users get one line, not a backtrace.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        let _ = writeln!(std::io::stderr(), "error: internal error{location}; please report it");
    }));
}
