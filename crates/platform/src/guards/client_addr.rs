//! The client's address: the TCP peer, or, when the peer is a trusted proxy, the right-most address in its
//! `X-Forwarded-For` (or, when configured, `Forwarded`, RFC 7239) chain that is not itself a trusted proxy. The
//! rate limiter keys on it and the access log records it.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use axum::{
    extract::{ConnectInfo, Request},
    http::{Extensions, HeaderMap, HeaderName, header},
};
use ipnet::IpNet;

use super::GuardConfigError;
use crate::settings::ForwardedHeader;

/// `X-Forwarded-For`, the de-facto header most proxies append to (http has no constant for it).
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The proxies whose forwarding header is believed, and which header they write; shared by every request.
#[derive(Debug, Clone)]
pub struct TrustedProxies {
    nets: Arc<[IpNet]>,
    header: ForwardedHeader,
}

impl Default for TrustedProxies {
    fn default() -> Self {
        Self { nets: Arc::new([]), header: ForwardedHeader::XForwardedFor }
    }
}

impl TrustedProxies {
    /// Parses `trusted_proxies` entries: addresses (`10.0.0.7`, `::1`) or networks (`10.0.0.0/8`), whose
    /// `header` is read.
    pub fn parse(entries: &[String], header: ForwardedHeader) -> Result<Self, GuardConfigError> {
        entries
            .iter()
            .map(|entry| {
                let entry = entry.trim();
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| GuardConfigError::Proxy(entry.to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|nets| Self { nets: nets.into(), header })
    }

    /// Whether no proxy is trusted, so the peer is always the client.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `address` is one of the trusted proxies.
    pub fn contains(&self, address: IpAddr) -> bool {
        self.nets.iter().any(|net| net.contains(&address))
    }
}

/// The client's address as resolved from forwarding headers, kept as a request extension when it differs from
/// the TCP peer (only then: an extension insert is not free).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// The client of a request: the forwarded address found by [`resolve_layer`], else the TCP peer from
    /// `ConnectInfo<SocketAddr>`; `None` when the server did not record a peer (in-process tests).
    pub fn of(extensions: &Extensions) -> Option<IpAddr> {
        match extensions.get::<ClientAddr>() {
            Some(ClientAddr(address)) => Some(*address),
            None => extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip().to_canonical()),
        }
    }
}

/// A `map_request` step that records the forwarded client address; installed only when proxies are trusted, so
/// without `trusted_proxies` a request pays nothing here.
pub fn resolve_layer(proxies: TrustedProxies) -> impl Fn(Request) -> Request + Clone {
    move |mut request| {
        let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip());
        if let Some(peer) = peer {
            let client = client_address(peer, request.headers(), &proxies);
            if client != peer {
                request.extensions_mut().insert(ClientAddr(client));
            }
        }
        request
    }
}

/// The client behind `peer`: `peer` itself unless it is trusted; then the right-most address of the chain that
/// is not a trusted proxy, in the one header the proxies write (the other one is the client's to forge, and
/// proxies pass it on untouched). An entry that is not an address
/// (`unknown`, an obfuscated name, garbage) ends the walk: what lies left of it was written by nobody we trust,
/// so the last address we could check stands for the client.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, proxies: &TrustedProxies) -> IpAddr {
    let peer = peer.to_canonical();
    if !proxies.contains(peer) {
        return peer;
    }
    let mut client = peer;
    let mut walk = |entries: &mut dyn Iterator<Item = Option<IpAddr>>| {
        for entry in entries {
            let Some(address) = entry else { return };
            client = address.to_canonical();
            if !proxies.contains(client) {
                return;
            }
        }
    };
    match proxies.header {
        ForwardedHeader::Forwarded => {
            let values = headers.get_all(header::FORWARDED).iter().rev();
            walk(&mut values.flat_map(|value| split_rev(value.as_bytes())).map(forwarded_for));
        }
        ForwardedHeader::XForwardedFor => {
            let values = headers.get_all(&X_FORWARDED_FOR).iter().rev();
            walk(&mut values.flat_map(|value| split_rev(value.as_bytes())).map(parse_node));
        }
    }
    client
}

/// A header value's comma-separated elements, right-most first.
fn split_rev(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.rsplit(|&byte| byte == b',')
}

/// The address in one `Forwarded` element's `for=` parameter (`for=192.0.2.60;proto=http`,
/// `for="[2001:db8::1]:4711"`); `None` when it has none or it is not an address.
fn forwarded_for(element: &[u8]) -> Option<IpAddr> {
    element.split(|&byte| byte == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let (name, value) = pair.split_at_checked(4)?;
        if !name.eq_ignore_ascii_case(b"for=") {
            return None;
        }
        let value = match value {
            [b'"', inner @ .., b'"'] => inner,
            value => value,
        };
        parse_node(value)
    })
}

/// One node: `192.0.2.60`, `192.0.2.60:4711`, `2001:db8::1`, `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn parse_node(node: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(node.trim_ascii()).ok()?;
    if let Some(rest) = text.strip_prefix('[') {
        let (address, port) = rest.split_once(']')?;
        if !(port.is_empty() || port.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return address.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6);
    }
    if let Ok(address) = text.parse::<IpAddr>() {
        return Some(address);
    }
    let (address, port) = text.rsplit_once(':')?;
    if !is_port(port) {
        return None;
    }
    address.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// A port as proxies write it: decimal digits (RFC 7239 also allows obfuscated ports; they carry no address).
fn is_port(text: &str) -> bool {
    text.parse::<u16>().is_ok()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn proxies(entries: &[&str], header: ForwardedHeader) -> TrustedProxies {
        let entries = entries.iter().map(|entry| (*entry).to_owned()).collect::<Vec<_>>();
        TrustedProxies::parse(&entries, header).expect("valid")
    }

    fn resolve_from(header: ForwardedHeader, peer: &str, headers: &[(&'static str, &str)], trusted: &[&str]) -> String {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, HeaderValue::from_str(value).expect("value"));
        }
        client_address(peer.parse().expect("peer"), &map, &proxies(trusted, header)).to_string()
    }

    /// Resolution with the default header, `X-Forwarded-For`.
    fn resolve(peer: &str, headers: &[(&'static str, &str)], trusted: &[&str]) -> String {
        resolve_from(ForwardedHeader::XForwardedFor, peer, headers, trusted)
    }

    fn resolve_forwarded(peer: &str, headers: &[(&'static str, &str)], trusted: &[&str]) -> String {
        resolve_from(ForwardedHeader::Forwarded, peer, headers, trusted)
    }

    #[test]
    fn only_the_configured_header_is_read_so_the_other_cannot_be_forged() {
        // nginx appends to X-Forwarded-For and passes a client's own Forwarded on untouched.
        let headers = [("forwarded", "for=1.2.3.4"), ("x-forwarded-for", "203.0.113.9")];
        assert_eq!(resolve("10.0.0.1", &headers, &["10.0.0.1"]), "203.0.113.9");
        let headers = [("forwarded", "for=203.0.113.9"), ("x-forwarded-for", "1.2.3.4")];
        assert_eq!(resolve_forwarded("10.0.0.1", &headers, &["10.0.0.1"]), "203.0.113.9");
        assert_eq!(resolve_forwarded("10.0.0.1", &[("x-forwarded-for", "1.2.3.4")], &["10.0.0.1"]), "10.0.0.1");
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let spoofed = [("x-forwarded-for", "203.0.113.9"), ("forwarded", "for=203.0.113.9")];
        assert_eq!(resolve("198.51.100.1", &spoofed, &[]), "198.51.100.1");
        assert_eq!(resolve("198.51.100.1", &spoofed, &["10.0.0.0/8"]), "198.51.100.1");
    }

    #[test]
    fn a_trusted_peer_forwards_the_right_most_untrusted_address() {
        let headers = [("x-forwarded-for", "203.0.113.9, 198.51.100.20, 10.0.0.2")];
        assert_eq!(resolve("10.0.0.1", &headers, &["10.0.0.0/8"]), "198.51.100.20", "the client forged the first");
        assert_eq!(resolve("10.0.0.1", &headers, &["10.0.0.0/8", "198.51.100.20"]), "203.0.113.9");
        assert_eq!(resolve("10.0.0.1", &[], &["10.0.0.1"]), "10.0.0.1", "no header: the proxy itself");
    }

    #[test]
    fn repeated_header_lines_form_one_chain() {
        let headers = [("x-forwarded-for", "203.0.113.9"), ("x-forwarded-for", "10.0.0.3")];
        assert_eq!(resolve("10.0.0.1", &headers, &["10.0.0.0/8"]), "203.0.113.9");
    }

    #[test]
    fn a_chain_of_trusted_proxies_only_yields_its_left_most_one() {
        assert_eq!(resolve("10.0.0.1", &[("x-forwarded-for", "10.0.0.3, 10.0.0.2")], &["10.0.0.0/8"]), "10.0.0.3");
    }

    #[test]
    fn forwarded_reads_ipv6_with_ports_and_quotes() {
        let headers = [("forwarded", r#"for="[2001:db8::1]:4711";proto=https, for=10.0.0.2;by=10.0.0.1"#)];
        assert_eq!(resolve_forwarded("10.0.0.1", &headers, &["10.0.0.0/8"]), "2001:db8::1");
        assert_eq!(resolve_forwarded("10.0.0.1", &[("forwarded", "For=192.0.2.60:8080")], &["10.0.0.1"]), "192.0.2.60");
        let quoted = [("forwarded", r#"for="[2001:db8::7]""#)];
        assert_eq!(resolve_forwarded("10.0.0.1", &quoted, &["10.0.0.1"]), "2001:db8::7");
        assert_eq!(resolve("::1", &[("x-forwarded-for", "2001:db8::2")], &["::1"]), "2001:db8::2");
        assert_eq!(resolve("10.0.0.1", &[("x-forwarded-for", "[2001:db8::3]:80")], &["10.0.0.1"]), "2001:db8::3");
    }

    #[test]
    fn garbage_ends_the_walk_at_the_last_checked_address() {
        let trusted = ["10.0.0.0/8"];
        assert_eq!(resolve("10.0.0.1", &[("x-forwarded-for", "not-an-address")], &trusted), "10.0.0.1");
        assert_eq!(resolve("10.0.0.1", &[("x-forwarded-for", "203.0.113.9, garbage")], &trusted), "10.0.0.1");
        assert_eq!(resolve("10.0.0.1", &[("x-forwarded-for", "garbage, 203.0.113.9")], &trusted), "203.0.113.9");
        assert_eq!(resolve_forwarded("10.0.0.1", &[("forwarded", "for=unknown")], &trusted), "10.0.0.1");
        assert_eq!(resolve_forwarded("10.0.0.1", &[("forwarded", "for=_hidden, for=10.0.0.4")], &trusted), "10.0.0.4");
        assert_eq!(resolve_forwarded("10.0.0.1", &[("forwarded", "proto=https")], &trusted), "10.0.0.1");
        assert_eq!(resolve("10.0.0.1", &[("x-forwarded-for", "1.2.3.4:99999, 1.2.3.4:x")], &trusted), "10.0.0.1");
        assert_eq!(resolve("10.0.0.1", &[("x-forwarded-for", "[::1")], &trusted), "10.0.0.1");
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_proxies() {
        assert_eq!(resolve("::ffff:10.0.0.1", &[("x-forwarded-for", "203.0.113.9")], &["10.0.0.1"]), "203.0.113.9");
    }

    #[test]
    fn entries_parse_as_addresses_or_networks_and_bad_ones_are_named() {
        let parsed = proxies(&["10.0.0.7", "192.168.0.0/16", "::1", "fd00::/8"], ForwardedHeader::XForwardedFor);
        assert!(parsed.contains("10.0.0.7".parse().expect("ip")));
        assert!(!parsed.contains("10.0.0.8".parse().expect("ip")));
        assert!(parsed.contains("192.168.4.4".parse().expect("ip")));
        assert!(parsed.contains("fd12::1".parse().expect("ip")));
        let error = TrustedProxies::parse(&["10.0.0.0/33".to_owned()], ForwardedHeader::XForwardedFor)
            .expect_err("invalid")
            .to_string();
        assert!(error.contains("trusted_proxies") && error.contains("10.0.0.0/33"), "{error}");
    }

    #[test]
    fn the_client_comes_from_the_extension_else_the_peer_else_nobody() {
        let mut extensions = Extensions::new();
        assert_eq!(ClientAddr::of(&extensions), None);
        extensions.insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 4000))));
        assert_eq!(ClientAddr::of(&extensions), Some(IpAddr::from([127, 0, 0, 1])));
        extensions.insert(ClientAddr(IpAddr::from([203, 0, 113, 9])));
        assert_eq!(ClientAddr::of(&extensions), Some(IpAddr::from([203, 0, 113, 9])));
    }
}
