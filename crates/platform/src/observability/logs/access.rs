//! The access log: one line per request, formatted by hand (the hot path of a cheap request) straight into the
//! log sink's buffer, bypassing `tracing`.

use std::{io::Write as _, net::IpAddr};

use tracing::Level;

use super::{
    sink,
    timestamp::{rfc3339, timestamp},
};
use crate::settings::{LogFormat, ObservabilitySettings};

/// The access log: one line per request in the configured format, formatted by hand into the sink's buffer.
/// It bypasses `tracing` (its dispatch and field formatting were ~10% of a greeting's instructions) but keeps
/// its shape: `[stamp] INFO: method=GET path=/x status=200 latency_us=12 request_id=... client=192.0.2.7` as text
/// (`client=-` when unknown; ` client_request_id=...` when a caller that is not a trusted proxy sent its own id;
/// ` trace_id=...` last when traced), and the same keys, plus `timestamp`, `level` and
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
    /// The `x-request-id` a caller sent that did not become the request id (it is not a trusted proxy).
    pub client_request_id: Option<&'a str>,
    /// The client's address (the peer, or the forwarded client behind a trusted proxy); `None` when unknown.
    pub client: Option<IpAddr>,
    /// The request's trace id (32 hex digits) when it is traced, to find its spans from its log line.
    pub trace_id: Option<&'a str>,
}

impl AccessLog {
    /// The access log for `settings`, or `None` when it is switched off by `access_log=false` or by the log filter
    /// (`RUST_LOG=access=off`, or a level above `info`). Call after [`init`]: the filter is asked once, here.
    pub fn for_settings(settings: &ObservabilitySettings) -> Option<Self> {
        let enabled = settings.access_log && tracing::enabled!(target: "access", Level::INFO);
        enabled.then_some(Self { format: settings.log_format })
    }

    /// Appends `entry`'s line to the sink's buffer.
    pub fn write(self, entry: &AccessEntry<'_>) {
        let now = time::OffsetDateTime::now_utc();
        sink::append(|buffer| self.format_line(buffer, entry, now));
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
                // Nothing here needs escaping: hyper admits no control character in a method or path, and ids are
                // sane tokens (`RequestId`).
                if let Some(id) = entry.client_request_id {
                    buffer.extend_from_slice(b" client_request_id=");
                    buffer.extend_from_slice(id.as_bytes());
                }
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
                if let Some(id) = entry.client_request_id {
                    buffer.extend_from_slice(b",\"client_request_id\":");
                    json_string(buffer, id);
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
/// `Display` through `write!` was about 5% of a greeting under callgrind (`bench/results/profile.md`).
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
        let entry = AccessEntry {
            method: "GET",
            path,
            status: 404,
            latency_us: 1234,
            request_id: "abc-1",
            client_request_id: None,
            client,
            trace_id,
        };
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

    #[test]
    fn a_callers_own_request_id_follows_the_client() {
        let entry = AccessEntry {
            method: "GET",
            path: "/x",
            status: 200,
            latency_us: 1,
            request_id: "ours-1",
            client_request_id: Some("theirs-7"),
            client: None,
            trace_id: Some(TRACE_ID),
        };
        let at = time::macros::datetime!(2026-01-02 03:04:05.006007 UTC);
        let line = |format| {
            let mut buffer = Vec::new();
            AccessLog { format }.format_line(&mut buffer, &entry, at);
            String::from_utf8(buffer).expect("utf-8")
        };
        assert!(
            line(LogFormat::Text)
                .ends_with(&format!(" request_id=ours-1 client=- client_request_id=theirs-7 trace_id={TRACE_ID}\n")),
            "{}",
            line(LogFormat::Text)
        );
        let json: serde_json::Value = serde_json::from_str(&line(LogFormat::Json)).expect("JSON");
        assert_eq!(
            (json["request_id"].as_str(), json["client_request_id"].as_str()),
            (Some("ours-1"), Some("theirs-7"))
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
}
