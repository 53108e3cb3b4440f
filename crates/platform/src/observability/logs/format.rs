//! How `tracing`'s lines look: the Flask original's text shape and tracing's JSON lines, both with the current
//! request's trace id when it is traced.

use std::fmt;

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
/// costs its price even with ANSI colours off.
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
