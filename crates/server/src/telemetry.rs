//! Logging: the Flask original's text lines or JSON lines, the level from `debug` (or `RUST_LOG`), and a panic hook
//! that logs one line instead of printing a backtrace.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::{
    EnvFilter,
    fmt::{FmtContext, FormatEvent, FormatFields, format::Writer},
    registry::LookupSpan,
};

use crate::config::{Config, LogFormat};

/// Installs the global subscriber and the panic hook. Call once, before anything logs.
pub fn init(config: &Config) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // Dependencies are chatty at debug level; keep them at info unless RUST_LOG asks otherwise.
        EnvFilter::new(if config.debug { "debug,hyper=info,hyper_util=info,h2=info,tower=info" } else { "info" })
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let installed = match config.log_format {
        LogFormat::Text => builder.with_ansi(false).event_format(OriginalFormat).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
    };
    // A second init (tests running the server twice in one process) keeps the first subscriber.
    drop(installed);
    install_panic_hook();
}

/// Panics are bugs: log where, as one line, and let catch-panic answer 500. No backtrace on stderr.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(non-text payload)");
        tracing::error!(target: "panic", "panic at {location}: {payload}");
    }));
}

/// `[2026-11-29 15:30:18,005] INFO: message key=value`, the Flask original's shape; timestamps are UTC.
struct OriginalFormat;

impl<S, N> FormatEvent<S, N> for OriginalFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let now = time::OffsetDateTime::now_utc();
        write!(
            writer,
            "[{:04}-{:02}-{:02} {:02}:{:02}:{:02},{:03}] {}: ",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second(),
            now.millisecond(),
            level_name(*event.metadata().level()),
        )?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARN",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}
