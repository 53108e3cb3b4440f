//! Logging, one job a module: `format` (the Flask original's text lines or JSON lines), `timestamp` (both
//! timestamps, digit by digit), `access` (the access line, formatted by hand), `sink` (the buffered writer every
//! line goes through to stderr) and `panic` (one log line per panic). This module installs them: the level
//! from `debug` (or `RUST_LOG`), the format from `log_format`.

mod access;
mod format;
mod panic;
mod sink;
mod timestamp;

pub use access::{AccessEntry, AccessLog};
use tracing_subscriber::EnvFilter;

use crate::settings::{LogFormat, ObservabilitySettings};

/// Installs the global subscriber, the panic hook and the sink's flusher thread. Call once, before anything logs;
/// a second call (tests starting the server twice in one process) keeps the first subscriber.
pub fn init(settings: &ObservabilitySettings) {
    install(settings, false);
}

fn install(settings: &ObservabilitySettings, direct: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // Dependencies are chatty at debug level; keep them at info unless RUST_LOG asks otherwise.
        EnvFilter::new(if settings.debug { "debug,hyper=info,hyper_util=info,h2=info,tower=info" } else { "info" })
    });
    sink::start(direct);
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(|| sink::SinkWriter);
    let installed = match settings.log_format {
        LogFormat::Text => {
            builder.with_ansi(false).fmt_fields(format::PlainFields).event_format(format::OriginalFormat).try_init()
        }
        LogFormat::Json => builder
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(format::JsonWithTraceId(
                tracing_subscriber::fmt::format().json().flatten_event(true).with_current_span(false),
            ))
            .try_init(),
    };
    drop(installed);
    panic::install_panic_hook();
}

/// Writes out the access lines still buffered. `main` calls it before exiting; the sink's flusher does every
/// 100 ms.
pub fn flush() {
    sink::flush();
}

/// The variable that shows the in-process server's logs in tests: with `TEST_LOG=1` the test harness installs the
/// subscriber `main` does (`RUST_LOG` picks the level as usual), so `cargo nextest run --no-capture` shows what
/// the server logged, access lines included.
pub const TEST_LOG: &str = "TEST_LOG";

/// For test harnesses: [`init`] when [`TEST_LOG`] is set to anything but empty or `0`, writing access lines at
/// once instead of batching them (a test process ends without flushing); otherwise nothing, so test output stays quiet and no access line is
/// even formatted. Returns whether logging is on.
pub fn init_for_tests(settings: &ObservabilitySettings) -> bool {
    let on = std::env::var_os(TEST_LOG).is_some_and(|value| !value.is_empty() && value != "0");
    if on {
        install(settings, true);
    }
    on
}
