//! The `rust-api-axum` binary: parse the command line, load the configuration, start logging, run the command.
//! Exit codes: 0 success, 1 the server could not start or failed, 2 bad usage or configuration.

use std::{io::Write, process::ExitCode};

use clap::Parser;
use platform::{
    listen,
    observability::{logs, traces::Traces},
};
use rust_api_axum::{
    auth::OidcSettings,
    cli::{Cli, Command, DbCommand},
    config::{self, Config},
    db, docs,
    startup::{self, Application, StartupError},
};

#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // These two work whatever the configuration says: one describes it, the other diagnoses it.
    match cli.command {
        Some(Command::Config { reference: true }) => return print(&config::reference()),
        Some(Command::Doctor { json }) => return doctor(&cli, json),
        _ => {}
    }
    let config = match Config::load(&cli) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let code = match cli.command.unwrap_or(Command::Serve) {
        Command::Openapi => print_openapi(&config),
        Command::Serve => serve(config),
        Command::Db { action } => manage_schema(config, action),
        Command::Config { .. } => print_configuration(&config),
        Command::Doctor { .. } => unreachable_command(),
    };
    // The last access lines may still sit in the log buffer.
    logs::flush();
    code
}

/// Starts logging and the async runtime that the serving and `db` commands run on.
fn start(config: &Config) -> Result<tokio::runtime::Runtime, ExitCode> {
    logs::init(&config.observability);
    tokio::runtime::Runtime::new().map_err(|error| {
        tracing::error!("cannot start the async runtime: {error}");
        ExitCode::FAILURE
    })
}

fn manage_schema(config: Config, action: DbCommand) -> ExitCode {
    let runtime = match start(&config) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let read_only = matches!(action, DbCommand::Status | DbCommand::History);
        let opened = match db::missing_sqlite_file(&config.database) {
            // Looking must not write: no directory, no database file, for a schema that would be empty anyway.
            Some(path) if read_only => {
                tracing::info!("No database at {} yet: reporting on an empty schema", path.display());
                db::connect_empty().await.map_err(StartupError::from)
            }
            _ => startup::open_database(&config.database).await,
        };
        let db = match opened {
            Ok(db) => db,
            Err(error) => {
                tracing::error!("{error}");
                return ExitCode::from(error.exit_code());
            }
        };
        match db::commands::run(&db, action, &mut std::io::stdout()).await {
            Ok(()) => ExitCode::SUCCESS,
            // A reader that stopped early (`| head`) is not a failure of the command.
            Err(db::commands::CommandError::Output(error)) if error.kind() == std::io::ErrorKind::BrokenPipe => {
                ExitCode::SUCCESS
            }
            Err(error) => {
                tracing::error!("{error}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Writes `text` to standard output; a reader that stopped early (`| head`) is not a failure.
fn print(text: &str) -> ExitCode {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: cannot write to standard output: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The merged configuration as JSON; the keys that can hold a secret are never serialised.
fn print_configuration(config: &Config) -> ExitCode {
    match serde_json::to_string_pretty(config) {
        Ok(json) => print(&format!("{json}\n")),
        Err(error) => {
            eprintln!("error: cannot render the configuration: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the checks and exits 0 only when all pass.
fn doctor(cli: &Cli, json: bool) -> ExitCode {
    let loaded = Config::load_explained(cli);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let checks = runtime.block_on(rust_api_axum::doctor::checks(loaded));
    match rust_api_axum::doctor::report(&checks, json, &mut std::io::stdout().lock()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: cannot write the report: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `doctor` and `config --reference` return before the configuration is loaded.
fn unreachable_command() -> ExitCode {
    eprintln!("error: this command runs before the configuration is loaded");
    ExitCode::from(2)
}

fn print_openapi(config: &Config) -> ExitCode {
    let oidc = match OidcSettings::from_settings(&config.auth) {
        Ok(oidc) => oidc,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    match docs::openapi::openapi(oidc.as_ref()).to_pretty_json() {
        Ok(json) => match writeln!(std::io::stdout().lock(), "{json}") {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: cannot write the OpenAPI document: {error}");
                ExitCode::FAILURE
            }
        },
        Err(error) => {
            eprintln!("error: cannot render the OpenAPI document: {error}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: Config) -> ExitCode {
    let runtime = match start(&config) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let traces = match Traces::start(
        &config.observability,
        &rust_api_axum::SERVICE,
        config.auth.ca_cert.as_deref(),
        runtime.handle().clone(),
    ) {
        Ok(traces) => traces,
        Err(error) => {
            tracing::error!("{error}");
            return ExitCode::from(2);
        }
    };
    let outcome = runtime.block_on(async {
        let shutdown = listen::shutdown_signal().map_err(StartupError::Signals)?;
        Application::build(config).await?.run_until(shutdown).await
    });
    // The spans of the last requests are still queued; they are sent on the runtime, which is still up here.
    if let Some(traces) = traces {
        traces.shutdown();
    }
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::from(error.exit_code())
        }
    }
}
