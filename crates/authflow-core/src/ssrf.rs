//! Server-side request forgery (SSRF) policy: which URLs and addresses an outbound fetch may reach.
//!
//! authflow fetches documents whose URL someone else chose — an authorization server's metadata and JWKS, a
//! client ID metadata document — so an attacker can point a fetch at `http://169.254.169.254/` (cloud
//! metadata), at `http://127.0.0.1:6379/` or at any host on the private network. This module decides, as pure
//! functions, what is allowed; the HTTP crates enforce it on the URL *and* on every address a host name
//! resolves to, at connection time, so DNS answers cannot smuggle a forbidden address in.
//!
//! ## Parsing hosts like a resolver
//! [`parse_host`] reads a host the way `inet_aton(3)` and the WHATWG URL standard do, so no spelling of an
//! address passes as a name: `2130706433` (one 32-bit number), `0x7f000001` (hex), `0177.0.0.1` (octal
//! parts), `127.1` (short forms: the last part fills the remaining bytes), `127.0.0.1.` and `localhost.`
//! (trailing dot), `[::ffff:127.0.0.1]` and bare IPv6 with zone ids (`fe80::1%25eth0`). A host that *ends in
//! a number* but is not a valid address (`1.2.3.09`, `0x1g`) is refused rather than looked up as a name.
//!
//! ## Classifying addresses
//! [`classify`] names the special-purpose ranges of the IANA IPv4 and IPv6 registries: loopback, RFC 1918
//! private, CGNAT `100.64.0.0/10`, link-local (which holds the `169.254.169.254` metadata endpoint),
//! unique-local `fc00::/7`, multicast, unspecified, broadcast, documentation, benchmarking and reserved.
//! IPv6 addresses that carry an IPv4 address — mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64
//! `64:ff9b::/96`, 6to4 `2002::/16` — are judged by the IPv4 address inside. Only [`AddressClass::Public`]
//! is reachable by default; IPv6 outside global unicast `2000::/3` is reserved.
//!
//! ## Policy
//! [`SsrfPolicy`] is strict by default: `https` only, public addresses only, no user information in URLs,
//! no `localhost` names. A deployment widens it explicitly: [`SsrfPolicy::allow_host`] trusts a host name
//! whatever it resolves to (an internal authorization server), [`SsrfPolicy::allow_network`] trusts a CIDR
//! range, and [`SsrfPolicy::development`] allows loopback and plain `http` for local work.
//!
//! ```
//! use authflow_core::ssrf::{classify, parse_host, AddressClass, Host, SsrfPolicy};
//!
//! assert_eq!(parse_host("0x7f.1")?, Host::Ip("127.0.0.1".parse().unwrap()));
//! assert_eq!(classify("::ffff:169.254.169.254".parse().unwrap()), AddressClass::LinkLocal);
//!
//! let policy = SsrfPolicy::default();
//! assert!(policy.check_url(&"https://as.example.com/jwks".parse().unwrap()).is_ok());
//! assert!(policy.check_url(&"https://2130706433/".parse().unwrap()).is_err());
//! assert!(policy.check_url(&"http://as.example.com/".parse().unwrap()).is_err());
//! let dev = SsrfPolicy::development();
//! assert!(dev.check_url(&"http://127.0.0.1:8000/jwks".parse().unwrap()).is_ok());
//! # Ok::<(), authflow_core::ssrf::SsrfError>(())
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use url::Url;

/// Longest host name accepted (RFC 1035 §2.3.4, without the trailing dot).
pub const MAX_HOST_NAME_LEN: usize = 253;

/// A host as a resolver reads it: an IP address literal in any spelling, or a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// An address literal, whatever its spelling.
    Ip(IpAddr),
    /// A DNS name: lower-cased, without a trailing dot.
    Name(String),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(name) => f.write_str(name),
        }
    }
}

/// What an address is for, after the IANA special-purpose registries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddressClass {
    /// Globally routable unicast: the only class reachable by default.
    Public,
    /// `0.0.0.0`, `::`: on many systems a connection to it reaches the local host.
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918: `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`.
    Private,
    /// RFC 6598 shared address space (carrier-grade NAT): `100.64.0.0/10`.
    SharedAddressSpace,
    /// `169.254.0.0/16` (including the `169.254.169.254` cloud metadata endpoint), `fe80::/10`.
    LinkLocal,
    /// RFC 4193 unique local addresses `fc00::/7`, and the deprecated site-local `fec0::/10`.
    UniqueLocal,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// RFC 2544 / RFC 5180 benchmarking: `198.18.0.0/15`, `2001:2::/48`.
    Benchmarking,
    /// Everything else that is not globally routable unicast: `0.0.0.0/8`, `192.0.0.0/24`,
    /// `192.88.99.0/24`, `240.0.0.0/4`, `100::/64`, `2001::/23`, `64:ff9b:1::/48`, IPv6 outside `2000::/3`,
    /// IPv4-compatible IPv6 addresses.
    Reserved,
}

impl AddressClass {
    /// A short name for messages and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            AddressClass::Public => "public",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::SharedAddressSpace => "shared address space (CGNAT)",
            AddressClass::LinkLocal => "link-local",
            AddressClass::UniqueLocal => "unique local",
            AddressClass::Multicast => "multicast",
            AddressClass::Broadcast => "broadcast",
            AddressClass::Documentation => "documentation",
            AddressClass::Benchmarking => "benchmarking",
            AddressClass::Reserved => "reserved",
        }
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a host, URL or address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SsrfError {
    /// The host is empty, has characters no host name may have, or ends in a number without being a valid
    /// address.
    #[error("invalid host: {0}")]
    InvalidHost(&'static str),
    /// A scheme other than `https` and `http`.
    #[error("the URL scheme {0:?} is not allowed")]
    UnsupportedScheme(String),
    /// Plain `http`, which the policy does not allow.
    #[error("plain http is not allowed; use https")]
    InsecureScheme,
    /// User information (`user:password@`) in the URL.
    #[error("URLs with user information are not allowed")]
    Userinfo,
    /// The URL has no host.
    #[error("the URL has no host")]
    MissingHost,
    /// The address is of a class the policy forbids.
    #[error("the address {address} is {class} and may not be reached")]
    ForbiddenAddress {
        /// The address.
        address: IpAddr,
        /// Its class.
        class: AddressClass,
    },
    /// A name that always means the local host (`localhost`, `*.localhost`, RFC 6761 §6.3).
    #[error("the host {0:?} names the local host and may not be reached")]
    ForbiddenName(String),
    /// The name resolved to no address.
    #[error("the host {0:?} resolved to no address")]
    NoAddresses(String),
}

/// Parse a host as a resolver would (see the module docs). Accepts what may stand between `//` and the port
/// of a URL: a name, an IPv4 address in any `inet_aton` spelling, or an IPv6 address, bracketed or bare,
/// with an optional zone id (`%eth0` or URL-encoded `%25eth0`), which is dropped.
pub fn parse_host(input: &str) -> Result<Host, SsrfError> {
    if input.is_empty() {
        return Err(SsrfError::InvalidHost("empty"));
    }
    if let Some(inner) = input.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or(SsrfError::InvalidHost("unbalanced brackets"))?;
        return parse_ipv6(inner).map(|ip| Host::Ip(canonical_ip(IpAddr::V6(ip))));
    }
    if input.contains(':') {
        return parse_ipv6(input).map(|ip| Host::Ip(canonical_ip(IpAddr::V6(ip))));
    }
    if !input.is_ascii() {
        return Err(SsrfError::InvalidHost("non-ASCII host: convert it to punycode first"));
    }
    let lower = input.to_ascii_lowercase();
    let name = lower.strip_suffix('.').unwrap_or(&lower);
    if name.is_empty() {
        return Err(SsrfError::InvalidHost("empty"));
    }
    if ends_in_number(name) {
        return parse_ipv4_loose(name).map(|ip| Host::Ip(IpAddr::V4(ip)));
    }
    check_name(name)?;
    Ok(Host::Name(name.to_owned()))
}

fn parse_ipv6(s: &str) -> Result<Ipv6Addr, SsrfError> {
    let address = match s.split_once('%') {
        Some((address, zone)) => {
            let zone = zone.strip_prefix("25").unwrap_or(zone);
            if zone.is_empty() || !zone.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b)) {
                return Err(SsrfError::InvalidHost("malformed IPv6 zone id"));
            }
            address
        }
        None => s,
    };
    address.parse().map_err(|_| SsrfError::InvalidHost("malformed IPv6 address"))
}

/// WHATWG URL "ends in a number": the last label is all digits, or `0x` followed by hex digits.
fn ends_in_number(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name);
    if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    last.strip_prefix("0x").is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// One part of an `inet_aton` address: decimal, octal with a leading `0`, or hex with `0x`.
fn parse_part(part: &str) -> Option<u64> {
    if part.is_empty() {
        return None;
    }
    let (digits, radix) = if let Some(hex) = part.strip_prefix("0x") {
        (hex, 16)
    } else if part.len() > 1 && part.starts_with('0') {
        (&part[1..], 8)
    } else {
        (part, 10)
    };
    if digits.is_empty() {
        return Some(0); // `0x` alone is zero, as in inet_aton and the URL standard.
    }
    if digits.len() > 32 {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// `inet_aton(3)`: one to four parts; the last fills the bytes the others leave.
fn parse_ipv4_loose(name: &str) -> Result<Ipv4Addr, SsrfError> {
    let invalid = SsrfError::InvalidHost("the host ends in a number but is not a valid IPv4 address");
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() > 4 {
        return Err(invalid);
    }
    let values = parts.iter().map(|p| parse_part(p)).collect::<Option<Vec<u64>>>().ok_or(invalid.clone())?;
    let (last, leading) = values.split_last().ok_or(invalid.clone())?;
    if leading.iter().any(|&v| v > 255) {
        return Err(invalid);
    }
    let last_bits = 8 * (5 - values.len() as u32);
    if *last >= 1u64 << last_bits {
        return Err(invalid);
    }
    let mut address: u64 = 0;
    for (i, v) in leading.iter().enumerate() {
        address |= v << (24 - 8 * i as u32);
    }
    address |= last;
    Ok(Ipv4Addr::from(u32::try_from(address).map_err(|_| invalid)?))
}

/// A DNS name: labels of letters, digits, `-` and `_`, each 1..=63 bytes, at most [`MAX_HOST_NAME_LEN`].
fn check_name(name: &str) -> Result<(), SsrfError> {
    if name.len() > MAX_HOST_NAME_LEN {
        return Err(SsrfError::InvalidHost("host name too long"));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(SsrfError::InvalidHost("empty or over-long label"));
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(SsrfError::InvalidHost("character not allowed in a host name"));
        }
    }
    Ok(())
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is; every other address unchanged.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The IPv4 address an IPv6 address carries, if it is of a form that reaches it: IPv4-mapped
/// (`::ffff:0:0/96`), IPv4-translated (`::ffff:0:0:0/96`), IPv4-compatible (`::/96`, except `::` and
/// `::1`), NAT64 well-known prefix (`64:ff9b::/96`) or 6to4 (`2002::/16`).
pub fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0xffff, 0, _, _] | [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        [0, 0, 0, 0, 0, 0, hi, lo] if (hi, lo) != (0, 0) && (hi, lo) != (0, 1) => Some(low),
        [0x2002, a, b, ..] => Some(Ipv4Addr::new((a >> 8) as u8, a as u8, (b >> 8) as u8, b as u8)),
        _ => None,
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], prefix: u32) -> bool {
    let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
    u128::from(ip) & mask == u128::from(Ipv6Addr::from(net)) & mask
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    use AddressClass::*;
    const TABLE: &[([u8; 4], u32, AddressClass)] = &[
        ([0, 0, 0, 0], 32, Unspecified),
        ([0, 0, 0, 0], 8, Reserved),
        ([10, 0, 0, 0], 8, Private),
        ([100, 64, 0, 0], 10, SharedAddressSpace),
        ([127, 0, 0, 0], 8, Loopback),
        ([169, 254, 0, 0], 16, LinkLocal),
        ([172, 16, 0, 0], 12, Private),
        ([192, 0, 0, 0], 24, Reserved),
        ([192, 0, 2, 0], 24, Documentation),
        ([192, 88, 99, 0], 24, Reserved),
        ([192, 168, 0, 0], 16, Private),
        ([198, 18, 0, 0], 15, Benchmarking),
        ([198, 51, 100, 0], 24, Documentation),
        ([203, 0, 113, 0], 24, Documentation),
        ([224, 0, 0, 0], 4, Multicast),
        ([255, 255, 255, 255], 32, Broadcast),
        ([240, 0, 0, 0], 4, Reserved),
    ];
    TABLE.iter().find(|(net, prefix, _)| in_v4(ip, *net, *prefix)).map_or(Public, |(_, _, class)| *class)
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    use AddressClass::*;
    if ip.is_unspecified() {
        return Unspecified;
    }
    if ip.is_loopback() {
        return Loopback;
    }
    if let Some(v4) = embedded_ipv4(ip) {
        let inner = classify_v4(v4);
        let compatible = ip.segments()[..6] == [0; 6];
        // Deprecated IPv4-compatible addresses are never routable, whatever they carry.
        return if compatible && inner == Public { Reserved } else { inner };
    }
    const TABLE: &[([u16; 8], u32, AddressClass)] = &[
        ([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, Reserved),
        ([0x100, 0, 0, 0, 0, 0, 0, 0], 64, Reserved),
        ([0x2001, 2, 0, 0, 0, 0, 0, 0], 48, Benchmarking),
        ([0x2001, 0, 0, 0, 0, 0, 0, 0], 23, Reserved),
        ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, Documentation),
        ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, Documentation),
        ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, UniqueLocal),
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, LinkLocal),
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, UniqueLocal),
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, Multicast),
    ];
    if let Some((_, _, class)) = TABLE.iter().find(|(net, prefix, _)| in_v6(ip, *net, *prefix)) {
        return *class;
    }
    if in_v6(ip, [0x2000, 0, 0, 0, 0, 0, 0, 0], 3) {
        Public
    } else {
        Reserved
    }
}

/// The class of an address (see the module docs).
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// Whether `name` always means the local host: `localhost` and every name under it (RFC 6761 §6.3).
pub fn is_localhost_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// An IP network in CIDR notation: `10.0.0.0/8`, `2001:db8::/32`, or a single address (`192.0.2.7`, `::1`,
/// meaning `/32` and `/128`). An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) is read as the IPv4
/// network it maps (`10.0.0.0/8`), since addresses are compared in canonical form. Used for the SSRF
/// allow-list and for the authorization server's trusted proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNetwork {
    address: IpAddr,
    prefix: u8,
}

/// Why a network was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid network {input:?}: {reason}")]
pub struct IpNetworkError {
    input: String,
    reason: String,
}

impl IpNetwork {
    /// The network of `prefix` leading bits of `address`. The bits after the prefix must be zero
    /// (`10.0.0.1/8` is refused: it is most likely a typo for a single address or for `10.0.0.0/8`).
    pub fn new(address: IpAddr, prefix: u8) -> Result<IpNetwork, IpNetworkError> {
        let invalid = |reason: String| IpNetworkError { input: format!("{address}/{prefix}"), reason };
        let max = if address.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(invalid(format!("the prefix length is at most {max}")));
        }
        let (address, prefix) = match address {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), prefix - 96),
                None => (address, prefix),
            },
            _ => (address, prefix),
        };
        let network = IpNetwork { address, prefix };
        if network.masked() != address {
            return Err(invalid(format!(
                "address bits are set after the /{prefix} prefix (did you mean {}/{prefix}?)",
                network.masked()
            )));
        }
        Ok(network)
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.address
    }

    /// The prefix length in bits.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in the range, compared in canonical form (`::ffff:10.1.2.3` is `10.1.2.3`).
    pub fn contains(&self, ip: IpAddr) -> bool {
        IpNetwork { address: canonical_ip(ip), prefix: self.prefix }.masked() == self.address
    }

    /// The address with the bits after the prefix cleared (an address of the other family is left whole,
    /// so it never equals the network address).
    fn masked(&self) -> IpAddr {
        match self.address {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix.min(32))).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix.min(128))).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        }
    }
}

impl FromStr for IpNetwork {
    type Err = IpNetworkError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| IpNetworkError { input: s.to_owned(), reason: reason.to_owned() };
        let (address, prefix) = match s.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (s, None),
        };
        let address: IpAddr = address.parse().map_err(|_| {
            invalid("expected an IP address or a network in CIDR notation, such as 10.0.0.0/8 or 2001:db8::/32")
        })?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| invalid("the prefix length is not a number"))?
            }
            Some(_) => return Err(invalid("the prefix length after '/' must be a number")),
        };
        IpNetwork::new(address, prefix).map_err(|e| IpNetworkError { input: s.to_owned(), reason: e.reason })
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

/// What outbound fetches may reach (see the module docs). The default is the strict policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SsrfPolicy {
    allow_loopback: bool,
    allow_http: bool,
    allowed_hosts: BTreeSet<String>,
    allowed_networks: Vec<IpNetwork>,
}

impl SsrfPolicy {
    /// The strict policy: `https` only, public addresses only.
    pub fn strict() -> SsrfPolicy {
        SsrfPolicy::default()
    }

    /// For local development and tests: loopback addresses (and `localhost`) and plain `http` allowed;
    /// every other private or special range still refused.
    pub fn development() -> SsrfPolicy {
        SsrfPolicy::default().allow_loopback(true).allow_http(true)
    }

    /// Allow loopback addresses and `localhost` names.
    pub fn allow_loopback(mut self, allow: bool) -> SsrfPolicy {
        self.allow_loopback = allow;
        self
    }

    /// Allow plain `http` URLs (addresses are still checked).
    pub fn allow_http(mut self, allow: bool) -> SsrfPolicy {
        self.allow_http = allow;
        self
    }

    /// Trust a host name whatever it resolves to, e.g. an authorization server on the internal network.
    /// The name is compared case-insensitively, without a trailing dot, and must be a valid host.
    pub fn allow_host(mut self, host: &str) -> Result<SsrfPolicy, SsrfError> {
        let host = match parse_host(host)? {
            Host::Name(name) => name,
            Host::Ip(ip) => {
                let max = if ip.is_ipv4() { 32 } else { 128 };
                self.allowed_networks.push(IpNetwork { address: ip, prefix: max });
                return Ok(self);
            }
        };
        self.allowed_hosts.insert(host);
        Ok(self)
    }

    /// Trust every address in `network`.
    pub fn allow_network(mut self, network: IpNetwork) -> SsrfPolicy {
        self.allowed_networks.push(network);
        self
    }

    /// Whether plain `http` is allowed.
    pub fn allows_http(&self) -> bool {
        self.allow_http
    }

    /// Whether loopback is allowed.
    pub fn allows_loopback(&self) -> bool {
        self.allow_loopback
    }

    /// Whether `name` (already parsed by [`parse_host`]) is on the host allow-list.
    pub fn is_trusted_host(&self, name: &str) -> bool {
        let name = name.strip_suffix('.').unwrap_or(name);
        self.allowed_hosts.contains(&name.to_ascii_lowercase())
    }

    /// Check an address a connection would go to.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), SsrfError> {
        let ip = canonical_ip(ip);
        if self.allowed_networks.iter().any(|n| n.contains(ip)) {
            return Ok(());
        }
        match classify(ip) {
            AddressClass::Public => Ok(()),
            AddressClass::Loopback if self.allow_loopback => Ok(()),
            class => Err(SsrfError::ForbiddenAddress { address: ip, class }),
        }
    }

    /// Check a host as written, before any lookup: an address literal is checked as an address; a name is
    /// refused if it always means the local host (unless loopback or the name is allowed).
    pub fn check_host(&self, host: &Host) -> Result<(), SsrfError> {
        match host {
            Host::Ip(ip) => self.check_ip(*ip),
            Host::Name(name) if self.is_trusted_host(name) => Ok(()),
            Host::Name(name) if is_localhost_name(name) && !self.allow_loopback => {
                Err(SsrfError::ForbiddenName(name.clone()))
            }
            Host::Name(_) => Ok(()),
        }
    }

    /// Check a URL before fetching it: scheme, user information and host (see [`SsrfPolicy::check_host`]).
    /// Returns the host as a resolver reads it. The addresses a name resolves to must then be checked with
    /// [`SsrfPolicy::check_resolved`] at connection time.
    pub fn check_url(&self, url: &Url) -> Result<Host, SsrfError> {
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => return Err(SsrfError::InsecureScheme),
            other => return Err(SsrfError::UnsupportedScheme(other.to_owned())),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(SsrfError::Userinfo);
        }
        let host = match url.host() {
            None => return Err(SsrfError::MissingHost),
            Some(url::Host::Ipv4(ip)) => Host::Ip(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Host::Ip(canonical_ip(IpAddr::V6(ip))),
            Some(url::Host::Domain(d)) => parse_host(d)?,
        };
        self.check_host(&host)?;
        Ok(host)
    }

    /// Check what `name` resolved to: every address must be allowed (one forbidden address refuses the
    /// connection, so a DNS answer mixing a public and a private address cannot be used), unless the name
    /// itself is on the allow-list. An empty answer is refused.
    pub fn check_resolved(&self, name: &str, addresses: &[IpAddr]) -> Result<(), SsrfError> {
        if self.is_trusted_host(name) {
            return Ok(());
        }
        if addresses.is_empty() {
            return Err(SsrfError::NoAddresses(name.to_owned()));
        }
        addresses.iter().try_for_each(|ip| self.check_ip(*ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn host_ip(s: &str) -> IpAddr {
        match parse_host(s) {
            Ok(Host::Ip(ip)) => ip,
            other => panic!("{s:?} should parse as an address, got {other:?}"),
        }
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn loopback_in_every_spelling() {
        for spelling in [
            "127.0.0.1",
            "2130706433",
            "0x7f000001",
            "0X7F000001",
            "0177.0.0.1",
            "0177.0000.0.01",
            "0x7f.0.0.1",
            "0x7f.1",
            "127.1",
            "127.0.1",
            "0x7f.0x0.0x0.0x1",
            "017700000001",
            "127.0.0.1.",
            "[::ffff:127.0.0.1]",
            "::ffff:127.0.0.1",
            "[::ffff:7f00:1]",
            "[0:0:0:0:0:ffff:127.0.0.1]",
        ] {
            assert_eq!(canonical_ip(host_ip(spelling)), ip("127.0.0.1"), "{spelling}");
        }
        assert_eq!(host_ip("127.255.255.254"), ip("127.255.255.254"));
        assert_eq!(host_ip("0"), ip("0.0.0.0"));
        assert_eq!(host_ip("0x"), ip("0.0.0.0"));
        assert_eq!(host_ip("10.1"), ip("10.0.0.1"));
        assert_eq!(host_ip("192.168.257"), ip("192.168.1.1"));
        assert_eq!(host_ip("169.254.43518"), ip("169.254.169.254"));
        assert_eq!(host_ip("0xa9fea9fe"), ip("169.254.169.254"));
        assert_eq!(host_ip("[::1]"), ip("::1"));
    }

    #[test]
    fn names_and_bad_hosts() {
        assert_eq!(parse_host("Example.COM").unwrap(), Host::Name("example.com".into()));
        assert_eq!(parse_host("localhost.").unwrap(), Host::Name("localhost".into()));
        assert_eq!(parse_host("a-b_c.example").unwrap(), Host::Name("a-b_c.example".into()));
        // Numeric-looking labels that are not the last one do not make an address.
        assert_eq!(parse_host("127.0.0.1.nip.io").unwrap(), Host::Name("127.0.0.1.nip.io".into()));
        assert_eq!(parse_host("0x7f.example").unwrap(), Host::Name("0x7f.example".into()));
        assert_eq!(parse_host("0x1g").unwrap(), Host::Name("0x1g".into()), "not hex, so a name (as inet_aton)");
        for bad in [
            "",
            ".",
            "1.2.3.4.5",
            "256.0.0.1",
            "1.2.3.256",
            "127.0.0.09",
            "08",
            "4294967296",
            "1.16777216",
            "1.2.65536",
            "a..b",
            "a b",
            "exa%mple",
            "[::1",
            "::1]",
            "[127.0.0.1]",
            "[::1%]",
            "[::1%25]",
            "::zz",
            "ex\u{e4}mple.com",
            "host:80",
        ] {
            assert!(parse_host(bad).is_err(), "{bad:?} should be refused, got {:?}", parse_host(bad));
        }
        assert!(parse_host(&"a.".repeat(130)).is_err(), "too long");
        assert!(parse_host(&format!("{}.example", "a".repeat(64))).is_err(), "label too long");
    }

    #[test]
    fn zone_ids_are_dropped() {
        assert_eq!(host_ip("[fe80::1%25eth0]"), ip("fe80::1"));
        assert_eq!(host_ip("[fe80::1%eth0]"), ip("fe80::1"));
        assert_eq!(host_ip("fe80::1%eth0"), ip("fe80::1"));
        assert_eq!(classify(host_ip("[fe80::1%25eth0]")), AddressClass::LinkLocal);
        assert!(parse_host("[fe80::1%25e/th0]").is_err());
    }

    #[test]
    fn ipv4_classes() {
        use AddressClass::*;
        for (addr, class) in [
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Reserved),
            ("10.0.0.1", Private),
            ("10.255.255.255", Private),
            ("100.64.0.1", SharedAddressSpace),
            ("100.127.255.255", SharedAddressSpace),
            ("100.128.0.0", Public),
            ("127.0.0.1", Loopback),
            ("127.1.2.3", Loopback),
            ("169.254.169.254", LinkLocal),
            ("169.254.0.1", LinkLocal),
            ("172.15.255.255", Public),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("172.32.0.0", Public),
            ("192.0.0.170", Reserved),
            ("192.0.2.1", Documentation),
            ("192.88.99.1", Reserved),
            ("192.168.1.1", Private),
            ("198.18.0.1", Benchmarking),
            ("198.19.255.255", Benchmarking),
            ("198.20.0.0", Public),
            ("198.51.100.7", Documentation),
            ("203.0.113.9", Documentation),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("240.0.0.1", Reserved),
            ("255.255.255.254", Reserved),
            ("255.255.255.255", Broadcast),
            ("8.8.8.8", Public),
            ("1.1.1.1", Public),
            ("93.184.216.34", Public),
        ] {
            assert_eq!(classify(ip(addr)), class, "{addr}");
        }
    }

    #[test]
    fn ipv6_classes() {
        use AddressClass::*;
        for (addr, class) in [
            ("::", Unspecified),
            ("::1", Loopback),
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:10.0.0.1", Private),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::ffff:8.8.8.8", Public),
            ("::ffff:0:127.0.0.1", Loopback),
            ("::127.0.0.1", Loopback),
            ("::10.1.2.3", Private),
            ("::8.8.8.8", Reserved),
            ("64:ff9b::127.0.0.1", Loopback),
            ("64:ff9b::a9fe:a9fe", LinkLocal),
            ("64:ff9b::192.168.0.1", Private),
            ("64:ff9b::8.8.8.8", Public),
            ("64:ff9b:1::1", Reserved),
            ("2002:7f00:1::", Loopback),
            ("2002:a9fe:a9fe::1", LinkLocal),
            ("2002:0a00:0001::1", Private),
            ("2002:0808:0808::1", Public),
            ("100::1", Reserved),
            ("2001::1", Reserved),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", Reserved),
            ("2001:2::1", Benchmarking),
            ("2001:db8::1", Documentation),
            ("3fff::1", Documentation),
            ("fc00::1", UniqueLocal),
            ("fd12:3456::1", UniqueLocal),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("fec0::1", UniqueLocal),
            ("ff02::1", Multicast),
            ("4000::1", Reserved),
            ("::2", Reserved),
            ("2606:4700:4700::1111", Public),
            ("2a00:1450:4001::200e", Public),
        ] {
            assert_eq!(classify(ip(addr)), class, "{addr}");
        }
        assert_eq!(embedded_ipv4("::1".parse().unwrap()), None);
        assert_eq!(embedded_ipv4("2001:db8::1".parse().unwrap()), None);
    }

    #[test]
    fn strict_policy_refuses_every_bypass() {
        let p = SsrfPolicy::strict();
        for target in [
            "https://127.0.0.1/",
            "https://2130706433/",
            "https://0x7f000001/",
            "https://0177.0.0.1/",
            "https://127.1/",
            "https://localhost/",
            "https://localhost./",
            "https://LOCALHOST/",
            "https://api.localhost/",
            "https://[::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:7f00:1]/",
            "https://[64:ff9b::7f00:1]/",
            "https://[2002:7f00:1::]/",
            "https://[::127.0.0.1]/",
            "https://0.0.0.0/",
            "https://0/",
            "https://[::]/",
            "https://10.0.0.1/",
            "https://172.16.5.4/",
            "https://192.168.0.1/",
            "https://100.64.0.1/",
            "https://169.254.169.254/latest/meta-data/",
            "https://0xa9fea9fe/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://224.0.0.1/",
            "https://255.255.255.255/",
            "https://192.0.2.1/",
            "https://198.18.0.1/",
            "https://240.0.0.1/",
            "http://as.example.com/",
            "ftp://as.example.com/",
            "file:///etc/passwd",
            "https://user:pass@as.example.com/",
            "https://user@as.example.com/",
        ] {
            assert!(p.check_url(&url(target)).is_err(), "{target} should be refused");
        }
        assert_eq!(p.check_url(&url("https://as.example.com/x")).unwrap(), Host::Name("as.example.com".into()));
        assert_eq!(p.check_url(&url("https://8.8.8.8/")).unwrap(), Host::Ip(ip("8.8.8.8")));
        assert_eq!(p.check_url(&url("https://[2606:4700::1]/")).unwrap(), Host::Ip(ip("2606:4700::1")));
        assert_eq!(p.check_url(&url("http://as.example.com/")), Err(SsrfError::InsecureScheme));
        assert_eq!(p.check_url(&url("https://u:p@as.example.com/")), Err(SsrfError::Userinfo));
        assert_eq!(
            p.check_url(&url("https://169.254.169.254/")),
            Err(SsrfError::ForbiddenAddress { address: ip("169.254.169.254"), class: AddressClass::LinkLocal })
        );
    }

    #[test]
    fn resolved_addresses_are_all_checked() {
        let p = SsrfPolicy::strict();
        p.check_resolved("as.example.com", &[ip("93.184.216.34"), ip("2606:4700::1")]).unwrap();
        assert!(p.check_resolved("rebind.example", &[ip("93.184.216.34"), ip("127.0.0.1")]).is_err());
        assert!(p.check_resolved("rebind.example", &[ip("::ffff:10.0.0.1")]).is_err());
        assert_eq!(p.check_resolved("empty.example", &[]), Err(SsrfError::NoAddresses("empty.example".into())));
        assert!(p.check_resolved("localhost", &[ip("127.0.0.1")]).is_err());
        assert!(SsrfPolicy::development().check_resolved("localhost", &[ip("127.0.0.1"), ip("::1")]).is_ok());
        assert!(SsrfPolicy::development().check_resolved("x", &[ip("10.0.0.1")]).is_err(), "only loopback");
    }

    #[test]
    fn allow_lists() {
        let p = SsrfPolicy::strict()
            .allow_host("Auth.Internal.")
            .unwrap()
            .allow_network("10.20.0.0/16".parse().unwrap())
            .allow_host("192.168.1.5")
            .unwrap();
        p.check_resolved("auth.internal", &[ip("10.9.9.9")]).unwrap();
        p.check_url(&url("https://auth.internal/")).unwrap();
        p.check_ip(ip("10.20.3.4")).unwrap();
        p.check_ip(ip("::ffff:10.20.3.4")).unwrap();
        p.check_ip(ip("192.168.1.5")).unwrap();
        assert!(p.check_ip(ip("192.168.1.6")).is_err());
        assert!(p.check_ip(ip("10.21.0.1")).is_err());
        assert!(p.check_resolved("other.internal", &[ip("10.9.9.9")]).is_err());
        assert!(p.check_ip(ip("127.0.0.1")).is_err());
        assert!(SsrfPolicy::strict().allow_host("a b").is_err());

        let dev = SsrfPolicy::development();
        assert!(dev.allows_http() && dev.allows_loopback());
        for ok in ["http://127.0.0.1:8000/", "http://localhost:3000/", "http://[::1]/", "http://127.1/"] {
            dev.check_url(&url(ok)).unwrap();
        }
        for still_bad in ["http://169.254.169.254/", "http://10.0.0.1/", "http://[fd00::1]/", "http://0.0.0.0/"] {
            assert!(dev.check_url(&url(still_bad)).is_err(), "{still_bad}");
        }
    }

    #[test]
    fn networks() {
        let n: IpNetwork = "10.0.0.0/8".parse().unwrap();
        assert!(n.contains(ip("10.1.2.3")) && !n.contains(ip("11.0.0.0")) && !n.contains(ip("fd00::1")));
        assert_eq!(n.to_string(), "10.0.0.0/8");
        let all: IpNetwork = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("1.2.3.4")) && !all.contains(ip("::1")));
        let v6: IpNetwork = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert_eq!("::1".parse::<IpNetwork>().unwrap(), IpNetwork::new(ip("::1"), 128).unwrap());
        for bad in ["10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/+8", "x/8", "10.0.0.0/8/8"] {
            assert!(bad.parse::<IpNetwork>().is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn every_ipv4_spelling_round_trips(a in any::<u32>(), style in 0..4u8) {
            let v4 = Ipv4Addr::from(a);
            let o = v4.octets();
            let s = match style {
                0 => a.to_string(),
                1 => format!("{a:#x}"),
                2 => format!("0{:o}.0{:o}.0{:o}.0{:o}", o[0], o[1], o[2], o[3]),
                _ => format!("{}.{}.{}.", o[0], o[1], (u32::from(o[2]) << 8) | u32::from(o[3])),
            };
            prop_assert_eq!(parse_host(&s).unwrap(), Host::Ip(IpAddr::V4(v4)));
        }

        #[test]
        fn parse_host_never_panics(s in "\\PC{0,40}") {
            let _ = parse_host(&s);
        }

        #[test]
        fn mapped_addresses_classify_like_their_ipv4(a in any::<u32>()) {
            let v4 = Ipv4Addr::from(a);
            prop_assert_eq!(classify(IpAddr::V6(v4.to_ipv6_mapped())), classify(IpAddr::V4(v4)));
            let nat64 = Ipv6Addr::from((0x64_ff9b_u128 << 96) | u128::from(a));
            prop_assert_eq!(classify(IpAddr::V6(nat64)), classify(IpAddr::V4(v4)));
        }
    }
}
