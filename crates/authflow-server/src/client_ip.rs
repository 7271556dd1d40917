//! The caller's address, for per-address rate limits: the TCP peer, or — when the peer is a trusted reverse
//! proxy ([`Policy::trusted_proxies`](crate::Policy::trusted_proxies)) — the client address the proxies
//! recorded in `X-Forwarded-For` or `Forwarded` (RFC 7239).
//!
//! The forwarded header is read right to left, as nginx's `set_real_ip_from` with `real_ip_recursive on`:
//! each trusted proxy appends the address it received the request from, so the entries right of the client
//! are trusted proxies and everything left of it is whatever the client sent. The first address that is not a
//! trusted proxy is the client; when every entry is trusted, the leftmost. A hop that cannot be read (malformed,
//! `unknown`, an obfuscated identifier), a malformed or oversized header, or a chain longer than [`MAX_HOPS`]
//! leaves the peer address: never an error, and never an address the client chose.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use authflow_core::ssrf::IpNetwork;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{HeaderMap, HeaderName, FORWARDED};
use axum::http::request::Parts;

/// The client address: the peer address when the server was started with
/// `into_make_service_with_connect_info::<SocketAddr>()` (as `authflow serve` is), or the address trusted
/// proxies forwarded (see the [module documentation](self)). `None` when the server does not know the peer.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl ClientIp {
    /// A rate-limit key: `prefix:` and the address, or one shared bucket when it is unknown. One
    /// allocation: it is built on every limited request.
    pub fn key(&self, prefix: &str) -> String {
        use std::fmt::Write as _;
        // The longest IPv6 text form is 45 bytes.
        let mut key = String::with_capacity(prefix.len() + 1 + 45);
        key.push_str(prefix);
        key.push(':');
        match self.0 {
            Some(ip) => {
                let _ = write!(key, "{ip}");
            }
            None => key.push_str("unknown"),
        }
        key
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Resolved once per request: a rate-limit layer and the handler behind it may both ask.
        if let Some(resolved) = parts.extensions.get::<ClientIp>() {
            return Ok(*resolved);
        }
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        let ip = match (peer, parts.extensions.get::<TrustedProxies>()) {
            (Some(peer), Some(trusted)) => Some(trusted.client_of(peer, &parts.headers)),
            (peer, None) => peer.map(|ip| ip.to_canonical()),
            (None, Some(_)) => None,
        };
        parts.extensions.insert(ClientIp(ip));
        Ok(ClientIp(ip))
    }
}

/// The header trusted proxies record the client address in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProxyHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, HAProxy, Traefik, cloud load balancers).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1` (quoted IPv6: `for="[2001:db8::1]:4711"`).
    Forwarded,
}

/// Longest chain of forwarded addresses examined from the right; a longer one leaves the peer address.
pub(crate) const MAX_HOPS: usize = 32;

/// Longest `X-Forwarded-For` entry read (a bracketed IPv6 address with a port is 53 bytes).
const MAX_ENTRY_BYTES: usize = 64;

/// Longest `Forwarded` header (all lines together) parsed; a longer one leaves the peer address.
const MAX_FORWARDED_BYTES: usize = 8 * 1024;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The trusted proxies, put into each request's extensions by the router when the policy names any.
#[derive(Debug, Clone)]
pub(crate) struct TrustedProxies {
    networks: Arc<[IpNetwork]>,
    header: ProxyHeader,
}

impl TrustedProxies {
    pub(crate) fn new(networks: &[IpNetwork], header: ProxyHeader) -> Self {
        TrustedProxies { networks: networks.into(), header }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|n| n.contains(ip))
    }

    /// The client address of a request that came from `peer` with `headers`.
    pub(crate) fn client_of(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        match self.header {
            ProxyHeader::XForwardedFor => self.walk(peer, x_forwarded_for(headers)),
            ProxyHeader::Forwarded => match forwarded(headers) {
                Some(hops) => self.walk(peer, hops.into_iter().rev()),
                None => peer,
            },
        }
    }

    /// Walk the hops right to left (nearest first) from a trusted `peer`: the first untrusted address is the
    /// client; if all are trusted, the leftmost. An unreadable hop or too long a chain: the peer.
    fn walk(&self, peer: IpAddr, hops: impl Iterator<Item = Option<IpAddr>>) -> IpAddr {
        let mut client = peer;
        for (n, hop) in hops.enumerate() {
            let Some(ip) = hop.filter(|_| n < MAX_HOPS) else { return peer };
            let ip = ip.to_canonical();
            if !self.trusts(ip) {
                return ip;
            }
            client = ip;
        }
        client
    }
}

/// The entries of every `X-Forwarded-For` line, right to left, read lazily: the left part is the client's to
/// write and is never looked at once the client is found. Empty list elements are skipped (RFC 9110 §5.6.1).
fn x_forwarded_for(headers: &HeaderMap) -> impl Iterator<Item = Option<IpAddr>> + '_ {
    headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .rev()
        .flat_map(|line| line.as_bytes().rsplit(|b| *b == b','))
        .filter(|entry| !entry.iter().all(|b| matches!(b, b' ' | b'\t')))
        .map(|entry| {
            if entry.len() > MAX_ENTRY_BYTES {
                return None;
            }
            std::str::from_utf8(entry).ok().and_then(|s| address(s.trim_matches([' ', '\t'])))
        })
}

/// One `X-Forwarded-For` entry: an address, optionally with a port (`192.0.2.1:4711`, `[2001:db8::1]:4711`)
/// or in brackets (`[2001:db8::1]`), as some proxies write them.
fn address(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| s.strip_prefix('[')?.strip_suffix(']')?.parse::<Ipv6Addr>().ok().map(IpAddr::V6))
}

/// The `for=` node of every element of every `Forwarded` line, in order (`None` for an element without a
/// usable address: `unknown`, an obfuscated identifier, no `for`). `None` overall when the header is malformed
/// or longer than [`MAX_FORWARDED_BYTES`]: elements cannot be told apart from the right without parsing the
/// quoted strings before them.
fn forwarded(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut total = 0;
    let mut hops = Vec::new();
    for line in headers.get_all(FORWARDED) {
        total += line.len();
        if total > MAX_FORWARDED_BYTES {
            return None;
        }
        parse_forwarded_line(line.as_bytes(), &mut hops)?;
    }
    Some(hops)
}

/// RFC 7239 §4: `Forwarded = 1#forwarded-element`, `forwarded-element = [ forwarded-pair ] *( ";" [
/// forwarded-pair ] )`, `forwarded-pair = token "=" value`, `value = token / quoted-string`.
fn parse_forwarded_line(line: &[u8], hops: &mut Vec<Option<IpAddr>>) -> Option<()> {
    let mut at = 0;
    let skip_ows = |at: &mut usize| {
        while line.get(*at).is_some_and(|b| matches!(b, b' ' | b'\t')) {
            *at += 1;
        }
    };
    loop {
        skip_ows(&mut at);
        match line.get(at) {
            None => return Some(()),
            // An empty list element.
            Some(b',') => {
                at += 1;
                continue;
            }
            Some(_) => {}
        }
        let mut node: Option<Vec<u8>> = None;
        loop {
            skip_ows(&mut at);
            if matches!(line.get(at), Some(b';')) {
                at += 1;
                continue;
            }
            if matches!(line.get(at), None | Some(b',')) {
                break;
            }
            let start = at;
            while line.get(at).is_some_and(|b| is_tchar(*b)) {
                at += 1;
            }
            let name = &line[start..at];
            if name.is_empty() || line.get(at) != Some(&b'=') {
                return None;
            }
            at += 1;
            let value = if line.get(at) == Some(&b'"') {
                at += 1;
                let mut value = Vec::new();
                loop {
                    match *line.get(at)? {
                        b'"' => break,
                        b'\\' => {
                            at += 1;
                            value.push(*line.get(at)?);
                        }
                        b => value.push(b),
                    }
                    at += 1;
                }
                at += 1;
                value
            } else {
                let start = at;
                while line.get(at).is_some_and(|b| is_tchar(*b)) {
                    at += 1;
                }
                if start == at {
                    return None;
                }
                line[start..at].to_vec()
            };
            if name.eq_ignore_ascii_case(b"for") {
                // A parameter occurs at most once per element (RFC 7239 §4).
                if node.replace(value).is_some() {
                    return None;
                }
            }
            skip_ows(&mut at);
            if !matches!(line.get(at), None | Some(b';') | Some(b',')) {
                return None;
            }
        }
        hops.push(node.and_then(|n| String::from_utf8(n).ok()).and_then(|n| forwarded_node(&n)));
        if line.get(at) == Some(&b',') {
            at += 1;
        }
    }
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 7239 §6: `node = nodename [ ":" node-port ]`, `nodename = IPv4address / "[" IPv6address "]" /
/// "unknown" / obfnode`. `unknown` and obfuscated identifiers (`_hidden`) name no address.
fn forwarded_node(node: &str) -> Option<IpAddr> {
    if let Some(bracketed) = node.strip_prefix('[') {
        let (ip, rest) = bracketed.split_once(']')?;
        let port_ok = rest.is_empty() || rest.strip_prefix(':').is_some_and(node_port);
        return if port_ok { ip.parse::<Ipv6Addr>().ok().map(IpAddr::V6) } else { None };
    }
    // A bare IPv6 address is not RFC 7239 syntax, but it is unambiguous.
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    let (ip, port) = node.split_once(':')?;
    if node_port(port) {
        ip.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    } else {
        None
    }
}

/// RFC 7239 §6: `node-port = port / obfport`, `port = 1*5DIGIT`, `obfport = "_" 1*(ALPHA / DIGIT / "." / "_" /
/// "-")`.
fn node_port(port: &str) -> bool {
    let digits = (1..=5).contains(&port.len()) && port.bytes().all(|b| b.is_ascii_digit());
    let obfuscated = port.strip_prefix('_').is_some_and(|o| {
        !o.is_empty() && o.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    });
    digits || obfuscated
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn rate_limit_keys_name_the_prefix_and_the_address() {
        assert_eq!(ClientIp(Some(IpAddr::from([192, 0, 2, 7]))).key("token"), "token:192.0.2.7");
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(ClientIp(Some(v6)).key("introspect"), "introspect:2001:db8::1");
        assert_eq!(ClientIp(None).key("register"), "register:unknown");
    }

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(name: &HeaderName, lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for line in lines {
            h.append(name.clone(), HeaderValue::from_str(line).unwrap());
        }
        h
    }

    fn proxies(nets: &[&str], header: ProxyHeader) -> TrustedProxies {
        TrustedProxies::new(&nets.iter().map(|n| net(n)).collect::<Vec<_>>(), header)
    }

    fn xff(nets: &[&str], peer: &str, lines: &[&str]) -> IpAddr {
        proxies(nets, ProxyHeader::XForwardedFor).client_of(ip(peer), &headers(&X_FORWARDED_FOR, lines))
    }

    fn fwd(nets: &[&str], peer: &str, lines: &[&str]) -> IpAddr {
        proxies(nets, ProxyHeader::Forwarded).client_of(ip(peer), &headers(&FORWARDED, lines))
    }

    #[test]
    fn networks_parse_in_cidr_notation() {
        assert_eq!(net("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(net("192.0.2.7").to_string(), "192.0.2.7/32");
        assert_eq!(net("::1").to_string(), "::1/128");
        assert_eq!(net("2001:db8::/32").to_string(), "2001:db8::/32");
        assert_eq!(net("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!(net("::/0").to_string(), "::/0");
        assert_eq!(net("::ffff:10.0.0.0/104"), net("10.0.0.0/8"), "mapped IPv4 networks are IPv4 networks");
        assert_eq!(net("::ffff:192.0.2.7"), net("192.0.2.7/32"));
        assert_eq!(net("10.0.0.0/08").prefix(), 8);
        for bad in [
            "",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "10.0.0.0/8/8",
            "10.0.0.0/0008",
            "10.0.0/8",
            "10.0.0.256/32",
            "example.com/8",
            " 10.0.0.0/8",
            "10.0.0.0 /8",
            "fe80::1%eth0/128",
        ] {
            assert!(bad.parse::<IpNetwork>().is_err(), "{bad:?} is refused");
        }
        let e = "10.0.0.1/8".parse::<IpNetwork>().unwrap_err().to_string();
        assert!(e.contains("\"10.0.0.1/8\"") && e.contains("did you mean 10.0.0.0/8?"), "{e}");
        let e = "2001:db8::1/32".parse::<IpNetwork>().unwrap_err().to_string();
        assert!(e.contains("did you mean 2001:db8::/32?"), "{e}");
        assert!("bogus".parse::<IpNetwork>().unwrap_err().to_string().contains("CIDR"));
    }

    #[test]
    fn networks_contain_their_addresses_only() {
        let ten = net("10.0.0.0/8");
        assert!(ten.contains(ip("10.0.0.0")) && ten.contains(ip("10.255.255.255")));
        assert!(!ten.contains(ip("11.0.0.0")) && !ten.contains(ip("9.255.255.255")));
        assert!(ten.contains(ip("::ffff:10.1.2.3")), "mapped addresses compare as IPv4");
        assert!(!ten.contains(ip("::a01:203")), "IPv4-compatible IPv6 addresses are IPv6");
        assert!(!ten.contains(ip("a00::")), "another family never matches");
        assert!(net("0.0.0.0/0").contains(ip("203.0.113.9")) && !net("0.0.0.0/0").contains(ip("2001:db8::1")));
        assert!(net("::/0").contains(ip("2001:db8::1")) && !net("::/0").contains(ip("203.0.113.9")));
        let doc = net("2001:db8::/32");
        assert!(doc.contains(ip("2001:db8:ffff::1")) && !doc.contains(ip("2001:db9::1")));
        assert!(net("::1").contains(ip("::1")) && !net("::1").contains(ip("127.0.0.1")));
        assert!(net("192.0.2.7").contains(ip("192.0.2.7")) && !net("192.0.2.7").contains(ip("192.0.2.8")));
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_sends() {
        assert_eq!(xff(&[], "203.0.113.9", &["198.51.100.1"]), ip("203.0.113.9"));
        assert_eq!(xff(&["10.0.0.0/8"], "203.0.113.9", &["198.51.100.1"]), ip("203.0.113.9"));
        assert_eq!(xff(&["10.0.0.0/8"], "::ffff:203.0.113.9", &["198.51.100.1"]), ip("203.0.113.9"));
        assert_eq!(fwd(&["10.0.0.0/8"], "203.0.113.9", &["for=198.51.100.1"]), ip("203.0.113.9"));
    }

    #[test]
    fn x_forwarded_for_is_walked_right_to_left() {
        let trusted = &["10.0.0.0/8", "::1/128"];
        assert_eq!(xff(trusted, "10.0.0.1", &[]), ip("10.0.0.1"), "no header: the proxy itself");
        assert_eq!(xff(trusted, "10.0.0.1", &["198.51.100.1"]), ip("198.51.100.1"));
        assert_eq!(xff(trusted, "::ffff:10.0.0.1", &["198.51.100.1"]), ip("198.51.100.1"), "mapped peer");
        // Spoofed entries left of the address the first proxy appended are ignored.
        assert_eq!(xff(trusted, "10.0.0.1", &["1.2.3.4, 5.6.7.8, 198.51.100.1"]), ip("198.51.100.1"));
        assert_eq!(xff(trusted, "10.0.0.1", &["10.9.9.9, 198.51.100.1"]), ip("198.51.100.1"), "even trusted-looking");
        assert_eq!(xff(trusted, "10.0.0.1", &["garbage, 198.51.100.1"]), ip("198.51.100.1"));
        // Trusted proxies in the chain are skipped.
        assert_eq!(xff(trusted, "::1", &["1.2.3.4, 198.51.100.1, 10.0.0.2, 10.0.0.3"]), ip("198.51.100.1"));
        // Several lines are one list, in order.
        assert_eq!(xff(trusted, "10.0.0.1", &["1.2.3.4, 198.51.100.1", "10.0.0.2"]), ip("198.51.100.1"));
        assert_eq!(xff(trusted, "10.0.0.1", &["1.2.3.4", "198.51.100.1"]), ip("198.51.100.1"));
        // All trusted: the leftmost.
        assert_eq!(xff(trusted, "10.0.0.1", &["10.0.0.5, 10.0.0.4", "::1"]), ip("10.0.0.5"));
        // IPv6 and mapped IPv4, ports and brackets, spaces and empty elements.
        assert_eq!(xff(trusted, "10.0.0.1", &["2001:db8::1"]), ip("2001:db8::1"));
        assert_eq!(xff(trusted, "10.0.0.1", &["[2001:db8::1]:4711"]), ip("2001:db8::1"));
        assert_eq!(xff(trusted, "10.0.0.1", &["[2001:db8::1]"]), ip("2001:db8::1"));
        assert_eq!(xff(trusted, "10.0.0.1", &["::ffff:198.51.100.1"]), ip("198.51.100.1"));
        assert_eq!(xff(trusted, "10.0.0.1", &["::ffff:10.0.0.7, ::ffff:10.0.0.8"]), ip("10.0.0.7"));
        assert_eq!(xff(trusted, "10.0.0.1", &["198.51.100.1:4711"]), ip("198.51.100.1"));
        assert_eq!(xff(trusted, "10.0.0.1", &[" 198.51.100.1 ,\t,  ", ","]), ip("198.51.100.1"));
    }

    #[test]
    fn an_unreadable_chain_leaves_the_peer() {
        let trusted = &["10.0.0.0/8"];
        for lines in [
            &["garbage"][..],
            &["198.51.100.1, unknown"],
            &["198.51.100.1, 10.0.0.2, not an address"],
            &["198.51.100.1 10.0.0.2"],
            &["fe80::1%eth0"],
            &["198.51.100.1:99999"],
            &["198.51.100.1", "_hidden"],
        ] {
            assert_eq!(xff(trusted, "10.0.0.1", lines), ip("10.0.0.1"), "{lines:?}");
        }
        let mut h = HeaderMap::new();
        h.append(X_FORWARDED_FOR, HeaderValue::from_bytes(b"198.51.100.1, \xff\xfe").unwrap());
        assert_eq!(proxies(trusted, ProxyHeader::XForwardedFor).client_of(ip("10.0.0.1"), &h), ip("10.0.0.1"));
        let mut h = HeaderMap::new();
        h.append(X_FORWARDED_FOR, HeaderValue::from_bytes(b"\xff, 198.51.100.1").unwrap());
        assert_eq!(
            proxies(trusted, ProxyHeader::XForwardedFor).client_of(ip("10.0.0.1"), &h),
            ip("198.51.100.1"),
            "what the client wrote left of its address is never read"
        );
    }

    #[test]
    fn long_headers_are_bounded() {
        let trusted = &["10.0.0.0/8"];
        let proxies_only = vec!["10.0.0.2"; MAX_HOPS + 1].join(", ");
        assert_eq!(xff(trusted, "10.0.0.1", &[&proxies_only]), ip("10.0.0.1"), "too many hops: the peer");
        let at_most = vec!["10.0.0.2"; MAX_HOPS - 1].join(", ");
        assert_eq!(xff(trusted, "10.0.0.1", &[&format!("198.51.100.1, {at_most}")]), ip("198.51.100.1"));
        let huge_left = format!("{}, 198.51.100.1", "1".repeat(100_000));
        assert_eq!(xff(trusted, "10.0.0.1", &[&huge_left]), ip("198.51.100.1"));
        assert_eq!(xff(trusted, "10.0.0.1", &[&"1".repeat(100_000)]), ip("10.0.0.1"));
        let padded = format!("for=198.51.100.1;host=\"{}\"", "a".repeat(MAX_FORWARDED_BYTES));
        assert_eq!(fwd(trusted, "10.0.0.1", &[&padded]), ip("10.0.0.1"));
    }

    #[test]
    fn forwarded_is_walked_right_to_left() {
        let trusted = &["10.0.0.0/8", "2001:db8:ffff::/48"];
        assert_eq!(fwd(trusted, "10.0.0.1", &["for=198.51.100.1"]), ip("198.51.100.1"));
        assert_eq!(fwd(trusted, "10.0.0.1", &["For=198.51.100.1;proto=https;by=10.0.0.1"]), ip("198.51.100.1"));
        assert_eq!(fwd(trusted, "10.0.0.1", &["for=\"[2001:db8::1]:4711\""]), ip("2001:db8::1"));
        assert_eq!(fwd(trusted, "10.0.0.1", &["for=\"[2001:db8::1]\""]), ip("2001:db8::1"));
        assert_eq!(fwd(trusted, "10.0.0.1", &["for=\"198.51.100.1:4711\""]), ip("198.51.100.1"));
        assert_eq!(fwd(trusted, "10.0.0.1", &["for=\"198.51.100.1:_p0rt\""]), ip("198.51.100.1"));
        assert_eq!(fwd(trusted, "10.0.0.1", &["for=\"::ffff:198.51.100.1\""]), ip("198.51.100.1"));
        assert_eq!(fwd(trusted, "10.0.0.1", &["for=\"\\[2001:db8::1\\]\""]), ip("2001:db8::1"), "quoted pairs");
        assert_eq!(
            fwd(trusted, "10.0.0.1", &["for=1.2.3.4, for=198.51.100.1;host=\"a,b;c\", for=\"[2001:db8:ffff::9]\""]),
            ip("198.51.100.1"),
            "spoofed left entries and trusted right ones are skipped; commas in quoted strings separate nothing"
        );
        assert_eq!(fwd(trusted, "10.0.0.1", &["for=1.2.3.4", "for=198.51.100.1", "for=10.0.0.3"]), ip("198.51.100.1"));
        assert_eq!(fwd(trusted, "10.0.0.1", &["for=10.0.0.4 , , for=10.0.0.3;proto=http"]), ip("10.0.0.4"));
        assert_eq!(fwd(trusted, "10.0.0.1", &[]), ip("10.0.0.1"));
    }

    #[test]
    fn unusable_forwarded_headers_leave_the_peer() {
        let trusted = &["10.0.0.0/8"];
        for line in [
            "for=unknown",
            "for=_hidden",
            "for=198.51.100.1, for=unknown",
            "for=198.51.100.1, for=\"_hidden:_port\"",
            "for=198.51.100.1, proto=https",
            "for=\"198.51.100.1",
            "for=198.51.100.1;for=198.51.100.2",
            "for 198.51.100.1",
            "for=198.51.100.1 garbage",
            "=198.51.100.1",
            "for=",
            "for=[2001:db8::1]:4711",
            "for=\"[2001:db8::1]:\"",
            "for=\"[2001:db8::1]x\"",
            "for=\"198.51.100.1:123456\"",
            "for=198.51.100.1:",
            "for=\"[198.51.100.1]\"",
        ] {
            assert_eq!(fwd(trusted, "10.0.0.1", &[line]), ip("10.0.0.1"), "{line:?}");
        }
    }

    #[test]
    fn the_configured_header_only_is_read() {
        let trusted = &["10.0.0.0/8"];
        let mut h = headers(&X_FORWARDED_FOR, &["198.51.100.1"]);
        h.append(FORWARDED, HeaderValue::from_static("for=198.51.100.2"));
        let peer = ip("10.0.0.1");
        assert_eq!(proxies(trusted, ProxyHeader::XForwardedFor).client_of(peer, &h), ip("198.51.100.1"));
        assert_eq!(proxies(trusted, ProxyHeader::Forwarded).client_of(peer, &h), ip("198.51.100.2"));
    }
}
