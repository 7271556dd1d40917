//! Resource indicators (RFC 8707): the `resource` parameter naming the protected resource, here the MCP
//! server, a token is for. It becomes the token's audience.
//!
//! A [`ResourceUri`] is accepted when it is at most [`MAX_RESOURCE_URI_LEN`] bytes of RFC 3986 characters,
//! an absolute `http` or `https` URI with `//host`, no user information and no fragment (RFC 8707 §2). Plain
//! `http` is allowed only on loopback hosts (any `127.0.0.0/8` address, `::1`, `localhost`), where MCP
//! servers run during development, unless [`ResourcePolicy::allow_http_non_loopback`] says otherwise. A query
//! is accepted (RFC 8707 says SHOULD NOT, not MUST NOT) and is part of the identity.
//!
//! ## Canonical form
//! Audiences are compared on [`ResourceUri::canonical`], which is the URL standard's serialisation:
//! - scheme and host lower-cased, IDN hosts in punycode, IPv4 shorthand expanded (`127.1` → `127.0.0.1`);
//! - the default port dropped (`:443` for https, `:80` for http);
//! - `.` and `..` path segments resolved;
//! - the path otherwise kept as given: case, percent-encodings and a trailing slash are significant, so
//!   `https://mcp.example/mcp` and `https://mcp.example/mcp/` are different resources;
//! - except the root: `https://mcp.example` and `https://mcp.example/` are the same resource, written
//!   without the slash (the form the MCP specification's examples use).
//!
//! ```
//! use authflow_core::validation::resource::{same_resource, ResourcePolicy, ResourceUri};
//!
//! let policy = ResourcePolicy::default();
//! let asked = ResourceUri::parse("HTTPS://MCP.example:443/mcp", &policy)?;
//! assert_eq!(asked.canonical(), "https://mcp.example/mcp");
//! assert!(same_resource(&asked, &ResourceUri::parse("https://mcp.example/mcp", &policy)?));
//! assert!(!same_resource(&asked, &ResourceUri::parse("https://mcp.example/mcp/", &policy)?));
//! # Ok::<(), authflow_core::validation::resource::ResourceError>(())
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use url::{Host, Url};

use super::redirect_uri::raw;
use crate::error::{ErrorCode, OAuthError};

/// Longest resource URI accepted.
pub const MAX_RESOURCE_URI_LEN: usize = 2048;

/// Which resource URIs a deployment accepts beyond `https` and loopback `http`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ResourcePolicy {
    /// Accept `http` on non-loopback hosts (e.g. a test network). Default: `false`.
    pub allow_http_non_loopback: bool,
}

/// Why a resource indicator was refused. Every variant is RFC 8707's `invalid_target`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    /// The string is empty.
    #[error("resource is empty")]
    Empty,
    /// Longer than [`MAX_RESOURCE_URI_LEN`].
    #[error("resource is longer than {MAX_RESOURCE_URI_LEN} bytes")]
    TooLong,
    /// Whitespace, a control character, non-ASCII or a character RFC 3986 does not allow.
    #[error("resource contains a character not allowed in a URI")]
    BadCharacter,
    /// A `%` not followed by two hex digits.
    #[error("resource contains a malformed percent-encoding")]
    BadPercentEncoding,
    /// Not an absolute URI.
    #[error("resource must be an absolute URI")]
    NotAbsolute,
    /// A scheme other than `http` or `https`.
    #[error("resource must be an http or https URI")]
    UnsupportedScheme,
    /// No `//host`, an empty host or port, or a URI the parser refuses.
    #[error("resource is not a valid URI with a host")]
    Malformed,
    /// A fragment, even an empty one (RFC 8707 §2).
    #[error("resource must not contain a fragment")]
    Fragment,
    /// User information before the host.
    #[error("resource must not contain user information")]
    Userinfo,
    /// `http` on a host that is not loopback.
    #[error("resource must use https unless it is on a loopback host")]
    HttpNotLoopback,
}

impl From<ResourceError> for OAuthError {
    /// `invalid_target` (RFC 8707 §2).
    fn from(e: ResourceError) -> Self {
        OAuthError::with_description(ErrorCode::InvalidTarget, e.to_string())
    }
}

impl From<raw::CharProblem> for ResourceError {
    fn from(p: raw::CharProblem) -> Self {
        match p {
            raw::CharProblem::BadCharacter => ResourceError::BadCharacter,
            raw::CharProblem::BadPercentEncoding => ResourceError::BadPercentEncoding,
        }
    }
}

/// A validated resource indicator. Equality and hashing use the canonical form.
#[derive(Clone)]
pub struct ResourceUri {
    raw: String,
    canonical: String,
    url: Url,
}

fn is_loopback(host: Option<Host<&str>>) -> bool {
    match host {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

impl ResourceUri {
    /// Validate `s` under `policy` (see the module docs).
    pub fn parse(s: &str, policy: &ResourcePolicy) -> Result<ResourceUri, ResourceError> {
        if s.is_empty() {
            return Err(ResourceError::Empty);
        }
        if s.len() > MAX_RESOURCE_URI_LEN {
            return Err(ResourceError::TooLong);
        }
        raw::check_chars(s)?;
        if s.contains('#') {
            return Err(ResourceError::Fragment);
        }
        let parts = raw::split(s).ok_or(ResourceError::NotAbsolute)?;
        let scheme = parts.scheme.to_ascii_lowercase();
        if scheme != "https" && scheme != "http" {
            return Err(ResourceError::UnsupportedScheme);
        }
        // Checked on the raw string: the parser accepts `https:host` and `https:///host` and drops `@`.
        let authority =
            raw::authority(parts.authority.ok_or(ResourceError::Malformed)?).ok_or(ResourceError::Malformed)?;
        if authority.userinfo.is_some() {
            return Err(ResourceError::Userinfo);
        }
        if authority.host.is_empty() || authority.port.is_some_and(|p| !raw::is_port(p)) {
            return Err(ResourceError::Malformed);
        }
        let url = Url::parse(s).map_err(|_| ResourceError::Malformed)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ResourceError::Userinfo);
        }
        if scheme == "http" && !policy.allow_http_non_loopback && !is_loopback(url.host()) {
            return Err(ResourceError::HttpNotLoopback);
        }
        let canonical = if url.path() == "/" && url.query().is_none() {
            url.as_str().trim_end_matches('/').to_owned()
        } else {
            url.as_str().to_owned()
        };
        Ok(ResourceUri { raw: s.to_owned(), canonical, url })
    }

    /// The URI as the client sent it.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The canonical form audiences are compared on (see the module docs).
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// The parsed URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Whether the host is loopback (`127.0.0.0/8`, `::1` or `localhost`).
    pub fn is_loopback(&self) -> bool {
        is_loopback(self.url.host())
    }

    /// Whether `self` and `other` name the same resource (see [`same_resource`]).
    pub fn same_resource(&self, other: &ResourceUri) -> bool {
        same_resource(self, other)
    }
}

/// Whether two resource indicators name the same resource: equality of their canonical forms.
pub fn same_resource(a: &ResourceUri, b: &ResourceUri) -> bool {
    a.canonical == b.canonical
}

impl PartialEq for ResourceUri {
    fn eq(&self, other: &Self) -> bool {
        same_resource(self, other)
    }
}

impl Eq for ResourceUri {}

impl std::hash::Hash for ResourceUri {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.canonical.hash(state)
    }
}

impl FromStr for ResourceUri {
    type Err = ResourceError;
    /// Parse under the default policy.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ResourceUri::parse(s, &ResourcePolicy::default())
    }
}

impl fmt::Display for ResourceUri {
    /// The canonical form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

impl fmt::Debug for ResourceUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResourceUri({})", self.canonical)
    }
}

impl Serialize for ResourceUri {
    /// Serialises the canonical form.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.canonical)
    }
}

impl<'de> Deserialize<'de> for ResourceUri {
    /// Checks the syntax but allows `http` on any host: stored audiences and configuration must keep loading
    /// on a deployment that allows it. Request parameters go through [`ResourceUri::parse`] with the
    /// deployment's policy.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        ResourceUri::parse(&s, &ResourcePolicy { allow_http_non_loopback: true }).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Result<ResourceUri, ResourceError> {
        s.parse()
    }

    fn canon(s: &str) -> String {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e}")).canonical().to_owned()
    }

    #[test]
    fn canonical_forms() {
        for (input, expected) in [
            ("https://mcp.example/mcp", "https://mcp.example/mcp"),
            ("HTTPS://MCP.Example/mcp", "https://mcp.example/mcp"),
            ("https://mcp.example:443/mcp", "https://mcp.example/mcp"),
            ("https://mcp.example:8443/mcp", "https://mcp.example:8443/mcp"),
            ("https://mcp.example/mcp/", "https://mcp.example/mcp/"),
            ("https://mcp.example/MCP", "https://mcp.example/MCP"),
            ("https://mcp.example", "https://mcp.example"),
            ("https://mcp.example/", "https://mcp.example"),
            ("https://mcp.example/?t=1", "https://mcp.example/?t=1"),
            ("https://mcp.example/a/../mcp", "https://mcp.example/mcp"),
            ("https://mcp.example/%7e", "https://mcp.example/%7e"),
            ("http://127.0.0.1:8000/mcp", "http://127.0.0.1:8000/mcp"),
            ("http://127.0.0.1:80/mcp", "http://127.0.0.1/mcp"),
            ("http://localhost:3000", "http://localhost:3000"),
            ("http://LocalHost:3000/", "http://localhost:3000"),
            ("http://[::1]:8000/mcp", "http://[::1]:8000/mcp"),
        ] {
            assert_eq!(canon(input), expected, "{input}");
            assert_eq!(canon(expected), expected, "canonical is a fixed point: {expected}");
        }
        let r = parse("HTTPS://MCP.Example/mcp").unwrap();
        assert_eq!(r.as_str(), "HTTPS://MCP.Example/mcp");
        assert_eq!(r.to_string(), "https://mcp.example/mcp");
    }

    #[test]
    fn same_resource_on_canonical_forms() {
        let a = parse("https://mcp.example/mcp").unwrap();
        assert!(same_resource(&a, &parse("HTTPS://mcp.EXAMPLE:443/mcp").unwrap()));
        assert!(a.same_resource(&a));
        assert!(!same_resource(&a, &parse("https://mcp.example/mcp/").unwrap()));
        assert!(!same_resource(&a, &parse("https://mcp.example:8443/mcp").unwrap()));
        let lax = ResourcePolicy { allow_http_non_loopback: true };
        assert!(!same_resource(&a, &ResourceUri::parse("http://mcp.example/mcp", &lax).unwrap()));
        assert!(!same_resource(&a, &parse("https://mcp.example.evil/mcp").unwrap()));
        assert!(same_resource(&parse("https://x.example").unwrap(), &parse("https://x.example/").unwrap()));
        let set: std::collections::HashSet<ResourceUri> =
            ["https://x.example/", "https://X.example", "https://x.example:443"]
                .iter()
                .map(|s| parse(s).unwrap())
                .collect();
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn refuses_bad_resources() {
        use ResourceError::*;
        for (s, e) in [
            ("", Empty),
            ("/mcp", NotAbsolute),
            ("mcp.example/mcp", NotAbsolute),
            ("urn:example:mcp", UnsupportedScheme),
            ("ftp://mcp.example/", UnsupportedScheme),
            ("wss://mcp.example/", UnsupportedScheme),
            ("https://mcp.example/mcp#", Fragment),
            ("https://mcp.example/mcp#x", Fragment),
            ("https://mcp.example/mcp\n", BadCharacter),
            ("https://mcp.example/m cp", BadCharacter),
            ("https://mcp.example/%g0", BadPercentEncoding),
            ("https://user@mcp.example/", Userinfo),
            ("https://mcp.example@evil.example/", Userinfo),
            ("https://@mcp.example/", Userinfo),
            ("https:mcp.example/mcp", Malformed),
            ("https:///mcp.example/mcp", Malformed),
            ("https://mcp.example:/mcp", Malformed),
            ("https://mcp.example:70000/mcp", Malformed),
            ("http://mcp.example/mcp", HttpNotLoopback),
            ("http://127.0.0.1.evil.example/mcp", HttpNotLoopback),
            ("http://10.0.0.1/mcp", HttpNotLoopback),
        ] {
            assert_eq!(parse(s).map(|r| r.to_string()), Err(e), "{s:?}");
        }
        assert_eq!(parse(&format!("https://a.example/{}", "a".repeat(MAX_RESOURCE_URI_LEN))).unwrap_err(), TooLong);
    }

    #[test]
    fn http_policy() {
        for s in ["http://127.0.0.1/mcp", "http://127.0.0.2:9/mcp", "http://[::1]/mcp", "http://localhost/mcp"] {
            assert!(parse(s).unwrap().is_loopback(), "{s}");
        }
        let lax = ResourcePolicy { allow_http_non_loopback: true };
        let r = ResourceUri::parse("http://mcp.lan:8000/mcp", &lax).unwrap();
        assert!(!r.is_loopback());
        assert!(!parse("https://mcp.example/").unwrap().is_loopback());
        // Stored values load regardless of the request policy.
        let back: ResourceUri = serde_json::from_str("\"http://mcp.lan:8000/mcp\"").unwrap();
        assert_eq!(back, r);
        assert_eq!(serde_json::to_string(&parse("HTTPS://A.example/").unwrap()).unwrap(), "\"https://a.example\"");
        assert!(serde_json::from_str::<ResourceUri>("\"https://a.example/#\"").is_err());
    }

    #[test]
    fn maps_to_invalid_target() {
        let e = OAuthError::from(ResourceError::HttpNotLoopback);
        assert_eq!(e.code(), ErrorCode::InvalidTarget);
        assert_eq!(e.status(), 400);
    }

    fn host() -> impl Strategy<Value = String> {
        // A label with "--" in positions 3-4 is reserved for IDNA ("xn--…") and must be valid punycode, which
        // random letters are not: such hosts are rightly refused, so the generator leaves them out.
        "[a-z][a-z0-9-]{0,10}\\.(example|test|com)".prop_filter("IDNA-reserved label", |h| h.get(2..4) != Some("--"))
    }

    proptest! {
        #[test]
        fn never_panics(s in any::<String>(), t in "(https?|HTTPS?):(//)?[ -~]{0,40}") {
            for input in [&s, &t] {
                if let Ok(r) = parse(input) {
                    // The canonical form is valid and a fixed point.
                    let again = parse(r.canonical()).unwrap();
                    prop_assert_eq!(again.canonical(), r.canonical());
                    prop_assert!(same_resource(&r, &again));
                }
            }
        }

        #[test]
        fn case_and_default_port_do_not_matter(h in host(), path in "(/[a-z0-9]{0,6}){0,3}") {
            let a = parse(&format!("https://{h}{path}")).unwrap();
            let b = parse(&format!("HTTPS://{}:443{path}", h.to_ascii_uppercase())).unwrap();
            prop_assert!(same_resource(&a, &b));
        }

        #[test]
        fn different_hosts_are_different_resources(h1 in host(), h2 in host(), path in "(/[a-z0-9]{0,6}){0,3}") {
            prop_assume!(h1 != h2);
            let a = parse(&format!("https://{h1}{path}")).unwrap();
            let b = parse(&format!("https://{h2}{path}")).unwrap();
            prop_assert!(!same_resource(&a, &b));
        }
    }
}
