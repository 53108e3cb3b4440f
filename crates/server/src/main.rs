//! The `rust-api-axum` binary: parse the command line, load the configuration, start logging, run the command.
//! Exit codes: 0 success, 1 the server could not start or failed, 2 bad usage or configuration.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use rust_api_axum::{
    apis,
    cli::{Cli, Command},
    config::Config,
    startup::{self, Application},
    telemetry,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Openapi => print_openapi(),
        Command::Serve => serve(config),
    }
}

fn print_openapi() -> ExitCode {
    match apis::openapi().to_pretty_json() {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: cannot render the OpenAPI document: {error}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: Config) -> ExitCode {
    telemetry::init(&config);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        let shutdown = startup::shutdown_signal().context("cannot listen for signals")?;
        Application::build(config).await?.run_until(shutdown).await?;
        anyhow::Ok(())
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}
