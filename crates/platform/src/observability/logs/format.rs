//! How `tracing`'s lines look: the Flask original's text shape, with control characters escaped so no logged
//! value can start a line of its own, and tracing's JSON lines; both with the current request's trace id when it
//! is traced.

use std::fmt::{self, Write as _};

use tracing::{
    Event, Level, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{
    field::RecordFields,
    fmt::{FmtContext, FormatEvent, FormatFields, format::Writer},
    registry::LookupSpan,
};

use super::timestamp::timestamp;
use crate::observability::traces;

/// `[2026-11-29 15:30:18,005] INFO: message key=value`, the Flask original's shape; timestamps are UTC.
pub(super) struct OriginalFormat;

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
        if let Some(trace_id) = traces::current_trace_id() {
            writer.write_str(" trace_id=")?;
            writer.write_str(trace_id.as_str())?;
        }
        writer.write_char('\n')
    }
}

/// tracing's JSON lines, plus `"trace_id"` while a traced request is handled on this thread. Only then is the line
/// formatted into a string first, to add the key before its closing brace; untraced lines pass straight through.
pub(super) struct JsonWithTraceId<F>(pub(super) F);

impl<S, N, F> FormatEvent<S, N> for JsonWithTraceId<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let Some(trace_id) = traces::current_trace_id() else { return self.0.format_event(ctx, writer, event) };
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        match line.trim_end().strip_suffix('}') {
            Some(open) => writeln!(writer, "{open},\"trace_id\":\"{}\"}}", trace_id.as_str()),
            None => writer.write_str(&line),
        }
    }
}

/// `message key=value key=value`, without the styling machinery of tracing's default field formatter, which
/// costs its price even with ANSI colours off. Messages and values are written through [`Escaped`]: they carry
/// what providers, databases and callers said, and one line is one event only if none of them can break it.
pub(super) struct PlainFields;

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
            if field.name() != "message" {
                write!(self.writer, "{}=", field.name())?;
            }
            Escaped(&mut *self.writer).write_str(value)
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        self.result = self.separate().and_then(|()| {
            if field.name() != "message" {
                write!(self.writer, "{}=", field.name())?;
            }
            write!(Escaped(&mut *self.writer), "{value:?}")
        });
    }
}

/// Writes through to the line with every control character escaped the way Rust's `Debug` writes it (`\n`,
/// `\r`, `\t`, `\u{1b}`), and the Unicode line and paragraph separators too, which some viewers break lines at.
/// Text without any (nearly all) is one scan and one write.
struct Escaped<'a, 'writer>(&'a mut Writer<'writer>);

impl fmt::Write for Escaped<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut rest = text;
        while let Some((at, character)) = rest.char_indices().find(|&(_, c)| needs_escape(c)) {
            self.0.write_str(&rest[..at])?;
            match character {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                other => write!(self.0, "\\u{{{:x}}}", u32::from(other))?,
            }
            rest = &rest[at + character.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

fn needs_escape(character: char) -> bool {
    character.is_control() || matches!(character, '\u{2028}' | '\u{2029}')
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
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

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

    /// What `log` writes in the text format, each line without its timestamp.
    fn text_lines(log: impl FnOnce()) -> Vec<String> {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(buffer.clone())
            .with_ansi(false)
            .fmt_fields(PlainFields)
            .event_format(OriginalFormat)
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let text = String::from_utf8(buffer.0.lock().expect("lock").clone()).expect("utf-8");
        text.lines().map(|line| line[26..].to_owned()).collect()
    }

    #[test]
    fn lines_read_message_then_key_value_pairs() {
        let lines = text_lines(|| {
            tracing::warn!("Running without any authentication/authorisation");
            tracing::info!(target: "access", method = %"GET", path = %"/x", status = 200u16, request_id = %"r-1");
        });
        assert_eq!(
            lines,
            [
                "WARN: Running without any authentication/authorisation",
                "INFO: method=GET path=/x status=200 request_id=r-1"
            ]
        );
    }

    #[test]
    fn control_characters_are_escaped_so_no_value_forges_a_line() {
        let forged = "x\n[2026-01-01 00:00:00,000] INFO: forged\r\u{1b}[31m\u{7f}\ttab";
        let lines = text_lines(|| {
            tracing::error!("cannot connect: {forged}");
            tracing::info!(reason = %forged, debug = ?forged, plain = forged, "said");
        });
        let escaped = "x\\n[2026-01-01 00:00:00,000] INFO: forged\\r\\u{1b}[31m\\u{7f}\\ttab";
        assert_eq!(
            lines,
            [
                format!("ERROR: cannot connect: {escaped}"),
                format!("INFO: said reason={escaped} debug={forged:?} plain={escaped}"),
            ]
        );
    }
}
