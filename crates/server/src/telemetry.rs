//! Logging: the Flask original's text lines or JSON lines, the level from `debug` (or `RUST_LOG`), a panic hook
//! that logs one line instead of printing a backtrace, and the buffered sink every line goes through to stderr.
//!
//! Access lines are the hot path (one per request): the edge formats them itself with [`AccessLog`] and appends
//! them to the sink's buffer, which a background thread flushes every 100 ms. Every other line goes through
//! `tracing` and is written at once, after whatever access lines are pending, so the order on stderr holds.

use std::{
    cell::Cell,
    fmt,
    io::Write as _,
    net::IpAddr,
    sync::{
        Mutex, MutexGuard, Once,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

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

use crate::{
    config::{Config, LogFormat},
    ops::traces,
};

/// Installs the global subscriber, the panic hook and the sink's flusher. Call once, before anything logs.
pub fn init(config: &Config) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // Dependencies are chatty at debug level; keep them at info unless RUST_LOG asks otherwise.
        EnvFilter::new(if config.debug { "debug,hyper=info,hyper_util=info,h2=info,tower=info" } else { "info" })
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(|| SinkWriter);
    let installed = match config.log_format {
        LogFormat::Text => builder.with_ansi(false).fmt_fields(PlainFields).event_format(OriginalFormat).try_init(),
        LogFormat::Json => builder
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(JsonWithTraceId(
                tracing_subscriber::fmt::format().json().flatten_event(true).with_current_span(false),
            ))
            .try_init(),
    };
    // A second init (tests running the server twice in one process) keeps the first subscriber.
    drop(installed);
    install_panic_hook();
    start_flusher();
}

/// Writes out the access lines still buffered. `main` calls it before exiting; the flusher does every 100 ms.
pub fn flush() {
    write_out(&[]);
}

/// Access lines wait here for the flusher: one `write(2)` per request was the largest cost of a cheap request
/// after formatting, and batching makes it a few per second. Other lines pass through at once (see `SinkWriter`).
/// Lines still here are lost if the process is killed (SIGKILL, out of memory); a normal exit flushes them.
static SINK: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Held while a batch is written, so batches reach stderr in the order they were taken. Taken before `SINK`,
/// never the other way round; `SINK` itself is held only to append or to take the buffer, never during a write,
/// so a slow log reader stalls the writer, not every request.
static WRITING: Mutex<()> = Mutex::new(());

/// Flush early past this size, so that a burst cannot grow the buffer without bound between ticks.
const SINK_FLUSH_BYTES: usize = 64 * 1024;

/// How long an access line may wait in the buffer.
const SINK_FLUSH_INTERVAL: Duration = Duration::from_millis(100);

thread_local! {
    /// Set while this thread holds the sink's locks: a line logged then (say, by the panic hook) goes straight to
    /// stderr instead of waiting for a lock this thread already holds.
    static IN_SINK: Cell<bool> = const { Cell::new(false) };
}

/// A failed write may have cut a line; the next batch starts on a fresh line so the following ones stay whole.
static CUT_LINE: AtomicBool = AtomicBool::new(false);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves at worst a partial line; logging must go on.
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Appends an access line; writes the batch out when it has grown past `SINK_FLUSH_BYTES`.
fn append(format_line: impl FnOnce(&mut Vec<u8>)) {
    let full = in_sink(|| {
        let mut buffer = lock(&SINK);
        format_line(&mut buffer);
        buffer.len() >= SINK_FLUSH_BYTES
    });
    if full {
        flush();
    }
}

/// Takes the pending lines, adds `line`, and writes them to stderr outside the buffer's lock.
fn write_out(line: &[u8]) {
    if IN_SINK.with(Cell::get) {
        let _ = std::io::stderr().write_all(line);
        return;
    }
    in_sink(|| {
        let _writing = lock(&WRITING);
        let mut batch = std::mem::take(&mut *lock(&SINK));
        batch.extend_from_slice(line);
        if batch.is_empty() {
            return;
        }
        if CUT_LINE.swap(false, Ordering::Relaxed) {
            batch.insert(0, b'\n');
        }
        // Nowhere to report a failing stderr; the lines are dropped rather than kept forever.
        if std::io::stderr().lock().write_all(&batch).is_err() {
            CUT_LINE.store(true, Ordering::Relaxed);
        }
    });
}

fn in_sink<R>(work: impl FnOnce() -> R) -> R {
    IN_SINK.with(|flag| flag.set(true));
    let result = work();
    IN_SINK.with(|flag| flag.set(false));
    result
}

fn start_flusher() {
    static STARTED: Once = Once::new();
    STARTED.call_once(|| {
        let spawned = std::thread::Builder::new().name("log-flush".into()).spawn(|| {
            loop {
                std::thread::sleep(SINK_FLUSH_INTERVAL);
                flush();
            }
        });
        if let Err(error) = spawned {
            // Without the thread, access lines still go out whenever the buffer fills or another line is logged.
            tracing::warn!("cannot start the log flusher thread: {error}");
        }
    });
}

/// `tracing`'s writer: appends a formatted line behind any pending access lines and writes them all out.
struct SinkWriter;

impl std::io::Write for SinkWriter {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        write_out(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The access log: one line per request in the configured format, formatted by hand into the sink's buffer.
/// It bypasses `tracing` (its dispatch and field formatting were ~10% of a greeting's instructions) but keeps
/// its shape: `[stamp] INFO: method=GET path=/x status=200 latency_us=12 request_id=... client=192.0.2.7` as text
/// (`client=-` when unknown; ` trace_id=...` last when traced), and the same keys, plus `timestamp`, `level` and
/// `target: "access"`, as JSON. `RUST_LOG=access=off` still silences it.
#[derive(Debug, Clone, Copy)]
pub struct AccessLog {
    format: LogFormat,
}

/// One request as the access log records it.
pub struct AccessEntry<'a> {
    /// The request method.
    pub method: &'a str,
    /// The path as the client sent it, without the query (queries may carry secrets).
    pub path: &'a str,
    /// The answered status.
    pub status: u16,
    /// Time from the request's arrival to its response head, in microseconds.
    pub latency_us: u64,
    /// The request id the response carries.
    pub request_id: &'a str,
    /// The client's address (the peer, or the forwarded client behind a trusted proxy); `None` when unknown.
    pub client: Option<IpAddr>,
    /// The request's trace id (32 hex digits) when it is traced, to find its spans from its log line.
    pub trace_id: Option<&'a str>,
}

impl AccessLog {
    /// The access log for `config`, or `None` when it is switched off by `access_log=false` or by the log filter
    /// (`RUST_LOG=access=off`, or a level above `info`). Call after [`init`]: the filter is asked once, here.
    pub fn for_config(config: &Config) -> Option<Self> {
        let enabled = config.access_log && tracing::enabled!(target: "access", Level::INFO);
        enabled.then_some(Self { format: config.log_format })
    }

    /// Appends `entry`'s line to the sink.
    pub fn write(self, entry: &AccessEntry<'_>) {
        let now = time::OffsetDateTime::now_utc();
        append(|buffer| self.format_line(buffer, entry, now));
    }

    fn format_line(self, buffer: &mut Vec<u8>, entry: &AccessEntry<'_>, now: time::OffsetDateTime) {
        let mut status = itoa::Buffer::new();
        let mut latency = itoa::Buffer::new();
        match self.format {
            LogFormat::Text => {
                let parts: [&[u8]; 12] = [
                    &timestamp(now),
                    b"INFO: method=",
                    entry.method.as_bytes(),
                    b" path=",
                    entry.path.as_bytes(),
                    b" status=",
                    status.format(entry.status).as_bytes(),
                    b" latency_us=",
                    latency.format(entry.latency_us).as_bytes(),
                    b" request_id=",
                    entry.request_id.as_bytes(),
                    b" client=",
                ];
                parts.iter().for_each(|part| buffer.extend_from_slice(part));
                write_address(buffer, entry.client, b"-");
                if let Some(trace_id) = entry.trace_id {
                    buffer.extend_from_slice(b" trace_id=");
                    buffer.extend_from_slice(trace_id.as_bytes());
                }
                buffer.push(b'\n');
            }
            LogFormat::Json => {
                buffer.extend_from_slice(b"{\"timestamp\":\"");
                buffer.extend_from_slice(&rfc3339(now));
                buffer.extend_from_slice(b"\",\"level\":\"INFO\",\"method\":");
                json_string(buffer, entry.method);
                buffer.extend_from_slice(b",\"path\":");
                json_string(buffer, entry.path);
                buffer.extend_from_slice(b",\"status\":");
                buffer.extend_from_slice(status.format(entry.status).as_bytes());
                buffer.extend_from_slice(b",\"latency_us\":");
                buffer.extend_from_slice(latency.format(entry.latency_us).as_bytes());
                buffer.extend_from_slice(b",\"request_id\":");
                json_string(buffer, entry.request_id);
                buffer.extend_from_slice(b",\"client\":");
                match entry.client {
                    Some(client) => {
                        buffer.push(b'"');
                        write_address(buffer, Some(client), b"");
                        buffer.push(b'"');
                    }
                    None => buffer.extend_from_slice(b"null"),
                }
                if let Some(trace_id) = entry.trace_id {
                    buffer.extend_from_slice(b",\"trace_id\":");
                    json_string(buffer, trace_id);
                }
                buffer.extend_from_slice(b",\"target\":\"access\"}\n");
            }
        }
    }
}

/// `address` in its usual text form straight into the line (digits, dots, colons and hex: nothing to escape),
/// or `missing` when there is none. No allocation beyond the buffer's own growth. IPv4 is written octet by octet:
/// `Display` through `write!` was 1,000 instructions, 5% of a greeting, under callgrind.
fn write_address(buffer: &mut Vec<u8>, address: Option<IpAddr>, missing: &[u8]) {
    match address {
        Some(IpAddr::V4(address)) => {
            let mut digits = itoa::Buffer::new();
            for (index, octet) in address.octets().into_iter().enumerate() {
                if index > 0 {
                    buffer.push(b'.');
                }
                buffer.extend_from_slice(digits.format(octet).as_bytes());
            }
        }
        // IPv6's shortest form (`::` compression) is left to `Display`; writing into a Vec cannot fail.
        Some(address @ IpAddr::V6(_)) => drop(write!(buffer, "{address}")),
        None => buffer.extend_from_slice(missing),
    }
}

/// `value` as a JSON string; serde_json escapes whatever a path may hold.
fn json_string(buffer: &mut Vec<u8>, value: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *buffer, value);
}

/// `2026-11-29T15:30:18.005123Z`, the shape tracing's JSON lines carry.
fn rfc3339(now: time::OffsetDateTime) -> [u8; 27] {
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    put_date_time(&mut text, 0, now);
    put_digits(&mut text, 20, 6, now.microsecond());
    text
}

/// Writes `now` as `YYYY-MM-DD?HH:MM:SS` at `at`, leaving the separators of `text` as they are. Both log
/// timestamps share this layout and differ only in separators and fraction.
fn put_date_time(text: &mut [u8], at: usize, now: time::OffsetDateTime) {
    put_digits(text, at, 4, u32::try_from(now.year()).unwrap_or(0));
    put_digits(text, at + 5, 2, u32::from(u8::from(now.month())));
    put_digits(text, at + 8, 2, u32::from(now.day()));
    put_digits(text, at + 11, 2, u32::from(now.hour()));
    put_digits(text, at + 14, 2, u32::from(now.minute()));
    put_digits(text, at + 17, 2, u32::from(now.second()));
}

/// Writes `value` as `width` zero-padded decimal digits at `at`.
fn put_digits(text: &mut [u8], at: usize, width: usize, mut value: u32) {
    for index in (at..at + width).rev() {
        text[index] = b'0' + (value % 10) as u8;
        value /= 10;
    }
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
        if let Some(trace_id) = traces::current_trace_id() {
            writer.write_str(" trace_id=")?;
            writer.write_str(trace_id.as_str())?;
        }
        writer.write_char('\n')
    }
}

/// tracing's JSON lines, plus `"trace_id"` while a traced request is handled on this thread. Only then is the line
/// formatted into a string first, to add the key before its closing brace; untraced lines pass straight through.
struct JsonWithTraceId<F>(F);

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

/// `[2026-11-29 15:30:18,005] ` written digit by digit: `write!` with padding was a sixth of an access line's
/// cost under callgrind, and every request writes one.
fn timestamp(now: time::OffsetDateTime) -> [u8; 26] {
    let mut text = *b"[0000-00-00 00:00:00,000] ";
    put_date_time(&mut text, 1, now);
    put_digits(&mut text, 21, 3, u32::from(now.millisecond()));
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

    fn access_line(format: LogFormat, path: &str) -> String {
        access_line_from(format, path, Some(IpAddr::from([203, 0, 113, 7])))
    }

    fn access_line_from(format: LogFormat, path: &str, client: Option<IpAddr>) -> String {
        line_of(format, path, client, None)
    }

    fn traced_access_line(format: LogFormat, path: &str, trace_id: Option<&str>) -> String {
        line_of(format, path, Some(IpAddr::from([203, 0, 113, 7])), trace_id)
    }

    fn line_of(format: LogFormat, path: &str, client: Option<IpAddr>, trace_id: Option<&str>) -> String {
        let entry =
            AccessEntry { method: "GET", path, status: 404, latency_us: 1234, request_id: "abc-1", client, trace_id };
        let mut buffer = Vec::new();
        let at = time::macros::datetime!(2026-01-02 03:04:05.006007 UTC);
        AccessLog { format }.format_line(&mut buffer, &entry, at);
        String::from_utf8(buffer).expect("utf-8")
    }

    #[test]
    fn access_lines_have_the_text_shape_of_every_other_line() {
        assert_eq!(
            access_line(LogFormat::Text, "/api/x"),
            "[2026-01-02 03:04:05,006] INFO: method=GET path=/api/x status=404 latency_us=1234 request_id=abc-1 \
             client=203.0.113.7\n"
        );
    }

    #[test]
    fn addresses_are_written_in_their_usual_form() {
        let written = |address: &str| {
            let mut buffer = Vec::new();
            write_address(&mut buffer, Some(address.parse().expect("ip")), b"-");
            String::from_utf8(buffer).expect("utf-8")
        };
        for address in
            ["0.0.0.0", "10.0.0.1", "192.168.100.255", "255.255.255.255", "::1", "2001:db8::7:1", "::ffff:1.2.3.4"]
        {
            assert_eq!(written(address), address);
        }
    }

    #[test]
    fn text_access_lines_name_ipv6_and_unknown_clients() {
        let ipv6 = access_line_from(LogFormat::Text, "/", Some("2001:db8::1".parse().expect("ip")));
        assert!(ipv6.ends_with(" request_id=abc-1 client=2001:db8::1\n"), "{ipv6}");
        let unknown = access_line_from(LogFormat::Text, "/", None);
        assert!(unknown.ends_with(" request_id=abc-1 client=-\n"), "{unknown}");
    }

    #[test]
    fn json_access_lines_name_ipv6_and_unknown_clients() {
        let client = |address: Option<IpAddr>| {
            let line = access_line_from(LogFormat::Json, "/", address);
            serde_json::from_str::<serde_json::Value>(&line).expect("JSON")["client"].clone()
        };
        assert_eq!(client(Some("2001:db8::1".parse().expect("ip"))), "2001:db8::1");
        assert_eq!(client(None), serde_json::Value::Null);
    }

    #[test]
    fn json_access_lines_are_one_object_with_escaped_values() {
        let line = access_line(LogFormat::Json, r#"/a"b\c"#);
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1, "{line}");
        let value: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(
            value,
            serde_json::json!({"timestamp": "2026-01-02T03:04:05.006007Z", "level": "INFO", "method": "GET",
                "path": r#"/a"b\c"#, "status": 404, "latency_us": 1234, "request_id": "abc-1", "client": "203.0.113.7",
                "target": "access"})
        );
    }

    const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";

    #[test]
    fn traced_text_access_lines_end_with_the_trace_id() {
        assert_eq!(
            traced_access_line(LogFormat::Text, "/api/x", Some(TRACE_ID)),
            "[2026-01-02 03:04:05,006] INFO: method=GET path=/api/x status=404 latency_us=1234 request_id=abc-1 \
             client=203.0.113.7 trace_id=0af7651916cd43dd8448eb211c80319c\n"
        );
    }

    #[test]
    fn traced_json_access_lines_carry_the_trace_id_key() {
        let line = traced_access_line(LogFormat::Json, "/api/x", Some(TRACE_ID));
        let value: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(
            value,
            serde_json::json!({"timestamp": "2026-01-02T03:04:05.006007Z", "level": "INFO", "method": "GET",
                "path": "/api/x", "status": 404, "latency_us": 1234, "request_id": "abc-1", "client": "203.0.113.7",
                "trace_id": TRACE_ID, "target": "access"})
        );
        assert!(!access_line(LogFormat::Json, "/api/x").contains("trace_id"), "untraced lines have no key");
    }

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
