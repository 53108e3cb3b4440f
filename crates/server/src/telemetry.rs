//! Logging: the Flask original's text lines or JSON lines, the level from `debug` (or `RUST_LOG`), and a panic hook
//! that logs one line instead of printing a backtrace.

use std::fmt;

use tracing::{
    Event, Level, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{
    EnvFilter,
    field::RecordFields,
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
        LogFormat::Text => builder.with_ansi(false).fmt_fields(PlainFields).event_format(OriginalFormat).try_init(),
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
        let stamp = timestamp(time::OffsetDateTime::now_utc());
        // Always ASCII digits and punctuation, so the fallback never happens.
        writer.write_str(std::str::from_utf8(&stamp).unwrap_or_default())?;
        writer.write_str(level_name(*event.metadata().level()))?;
        writer.write_str(": ")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writer.write_char('\n')
    }
}

/// `[2026-11-29 15:30:18,005] ` written digit by digit: `write!` with padding was a sixth of an access line's
/// cost under callgrind, and every request writes one.
fn timestamp(now: time::OffsetDateTime) -> [u8; 26] {
    let mut text = *b"[0000-00-00 00:00:00,000] ";
    let mut put = |at: usize, width: usize, mut value: u32| {
        for index in (at..at + width).rev() {
            text[index] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(1, 4, u32::try_from(now.year()).unwrap_or(0));
    put(6, 2, u32::from(u8::from(now.month())));
    put(9, 2, u32::from(now.day()));
    put(12, 2, u32::from(now.hour()));
    put(15, 2, u32::from(now.minute()));
    put(18, 2, u32::from(now.second()));
    put(21, 3, u32::from(now.millisecond()));
    text
}

/// `message key=value key=value`, without the styling machinery of tracing's default field formatter, which
/// costs its price even with ANSI colours off.
struct PlainFields;

impl<'writer> FormatFields<'writer> for PlainFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = PlainVisitor { writer: &mut writer, result: Ok(()), first: true };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct PlainVisitor<'a, 'writer> {
    writer: &'a mut Writer<'writer>,
    result: fmt::Result,
    first: bool,
}

impl PlainVisitor<'_, '_> {
    fn separate(&mut self) -> fmt::Result {
        if std::mem::take(&mut self.first) { Ok(()) } else { self.writer.write_char(' ') }
    }
}

impl Visit for PlainVisitor<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        self.result = self.separate().and_then(|()| {
            if field.name() == "message" {
                self.writer.write_str(value)
            } else {
                write!(self.writer, "{}={value}", field.name())
            }
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        self.result = self.separate().and_then(|()| {
            if field.name() == "message" {
                write!(self.writer, "{value:?}")
            } else {
                write!(self.writer, "{}={value:?}", field.name())
            }
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_the_originals_shape() {
        let at = time::macros::datetime!(2026-01-02 03:04:05.006 UTC);
        assert_eq!(&timestamp(at), b"[2026-01-02 03:04:05,006] ");
    }

    #[test]
    fn lines_read_message_then_key_value_pairs() {
        use tracing_subscriber::fmt::MakeWriter;

        #[derive(Clone, Default)]
        struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("lock").extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        impl<'a> MakeWriter<'a> for Buffer {
            type Writer = Buffer;
            fn make_writer(&'a self) -> Self::Writer {
                self.clone()
            }
        }

        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(buffer.clone())
            .with_ansi(false)
            .fmt_fields(PlainFields)
            .event_format(OriginalFormat)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!("Running without any authentication/authorisation");
            tracing::info!(target: "access", method = %"GET", path = %"/x", status = 200u16, request_id = %"r-1");
        });
        let text = String::from_utf8(buffer.0.lock().expect("lock").clone()).expect("utf-8");
        let lines: Vec<&str> = text.lines().map(|line| &line[26..]).collect();
        assert_eq!(
            lines,
            [
                "WARN: Running without any authentication/authorisation",
                "INFO: method=GET path=/x status=200 request_id=r-1"
            ]
        );
    }
}
