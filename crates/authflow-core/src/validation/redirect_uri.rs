//! Redirect URIs: validation at registration (RFC 6749 §3.1.2, RFC 7591 §2, RFC 8252 §7, OAuth 2.1 §2.3)
//! and matching at the authorization endpoint.
//!
//! A [`RedirectUri`] is accepted when it is
//! - at most [`MAX_REDIRECT_URI_LEN`] bytes of RFC 3986 characters (no whitespace, controls, non-ASCII,
//!   ``"<>\^`{|}``), with every `%` followed by two hex digits;
//! - absolute, with a lower-case scheme (the `url` crate would silently lower-case `HTTP:`, and matching
//!   compares the raw string, so one spelling is required rather than two that disagree);
//! - without a fragment (not even an empty `#`) and without user information (`user@`);
//! - `https` with any host, written in canonical form (lower-case, no IPv4 shorthand such as `127.1`);
//! - `http` only for the loopback hosts `127.0.0.1`, `[::1]` and `localhost` (RFC 8252 §7.3; `localhost` is
//!   NOT RECOMMENDED there but real MCP clients use `http://localhost:PORT/callback`);
//! - a private-use scheme for native apps (RFC 8252 §7.1: `com.example.app:/cb`, `cursor://…`) when
//!   [`RedirectUriPolicy::allow_private_use_schemes`] says so, and never one of [`DENIED_SCHEMES`].
//!
//! [`matches()`] compares the raw strings exactly, with the one exception OAuth 2.1 §4.1.1 and RFC 8252 §7.3
//! demand: a registered `http` URI on a loopback IP literal accepts any port at request time.
//!
//! ```
//! use authflow_core::validation::redirect_uri::{RedirectUri, RedirectUriPolicy};
//!
//! let policy = RedirectUriPolicy::default();
//! let registered = RedirectUri::parse("http://127.0.0.1/callback", &policy)?;
//! assert!(registered.matches("http://127.0.0.1:53682/callback"));
//! assert!(!registered.matches("http://127.0.0.1:53682/callback/"));
//! assert!(RedirectUri::parse("http://app.example/callback", &policy).is_err());
//! # Ok::<(), authflow_core::validation::redirect_uri::RedirectUriError>(())
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::{ErrorCode, OAuthError};

/// Longest redirect URI accepted.
pub const MAX_REDIRECT_URI_LEN: usize = 2048;

/// Schemes never accepted as private-use redirect schemes: script and data carriers, browser internals,
/// local files, and protocols that cannot receive an authorization response.
pub const DENIED_SCHEMES: &[&str] = &[
    "about",
    "blob",
    "chrome",
    "chrome-extension",
    "data",
    "edge",
    "file",
    "filesystem",
    "ftp",
    "intent",
    "jar",
    "javascript",
    "mailto",
    "moz-extension",
    "resource",
    "sms",
    "tel",
    "urn",
    "vbscript",
    "view-source",
    "ws",
    "wss",
];

/// Raw-string helpers shared by the validation modules: they look at what the client sent, before the
/// `url` crate normalises it.
pub(crate) mod raw {
    /// Why the characters of a URI were refused.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum CharProblem {
        /// A byte outside RFC 3986's unreserved, reserved and `%`.
        BadCharacter,
        /// A `%` not followed by two hex digits.
        BadPercentEncoding,
    }

    fn is_uri_char(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&b)
    }

    /// Check that `s` only holds RFC 3986 characters with well-formed percent-encodings.
    pub(crate) fn check_chars(s: &str) -> Result<(), CharProblem> {
        let bytes = s.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            if !is_uri_char(b) {
                return Err(CharProblem::BadCharacter);
            }
            if b == b'%' && !(bytes.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))) {
                return Err(CharProblem::BadPercentEncoding);
            }
        }
        Ok(())
    }

    /// A URI split as written: `scheme ":" ["//" authority] tail`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) struct Parts<'a> {
        pub(crate) scheme: &'a str,
        pub(crate) authority: Option<&'a str>,
        /// Path, query and fragment.
        pub(crate) tail: &'a str,
    }

    /// Split `s`; `None` when it does not start with an RFC 3986 scheme and `:`.
    pub(crate) fn split(s: &str) -> Option<Parts<'_>> {
        let (scheme, rest) = s.split_once(':')?;
        let mut chars = scheme.bytes();
        let first_ok = chars.next().is_some_and(|b| b.is_ascii_alphabetic());
        if !first_ok || !chars.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')) {
            return None;
        }
        match rest.strip_prefix("//") {
            Some(after) => {
                let end = after.find(['/', '?', '#']).unwrap_or(after.len());
                Some(Parts { scheme, authority: Some(&after[..end]), tail: &after[end..] })
            }
            None => Some(Parts { scheme, authority: None, tail: rest }),
        }
    }

    /// An authority split as written: `[userinfo "@"] host [":" port]`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) struct Authority<'a> {
        pub(crate) userinfo: Option<&'a str>,
        /// The host as written, with the brackets of an IPv6 literal.
        pub(crate) host: &'a str,
        /// What follows the `:` after the host, if there is one (may be empty or not numeric).
        pub(crate) port: Option<&'a str>,
    }

    /// Split an authority; `None` when an IPv6 literal is unterminated or followed by junk.
    pub(crate) fn authority(a: &str) -> Option<Authority<'_>> {
        let (userinfo, hostport) = match a.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, a),
        };
        let (host, after) = if hostport.starts_with('[') {
            let close = hostport.find(']')?;
            hostport.split_at(close + 1)
        } else {
            let end = hostport.find(':').unwrap_or(hostport.len());
            hostport.split_at(end)
        };
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        Some(Authority { userinfo, host, port })
    }

    /// A port as written: 1 to 5 digits with a value that fits in 16 bits.
    pub(crate) fn is_port(p: &str) -> bool {
        (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok()
    }
}

/// What the deployment accepts beyond `https` and loopback `http`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RedirectUriPolicy {
    /// Accept private-use URI schemes for native apps (RFC 8252 §7.1). Default: `true`, because MCP
    /// clients such as Cursor use them.
    pub allow_private_use_schemes: bool,
}

impl Default for RedirectUriPolicy {
    fn default() -> Self {
        RedirectUriPolicy { allow_private_use_schemes: true }
    }
}

/// The three accepted shapes of redirect URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RedirectUriKind {
    /// `https://…`
    Https,
    /// `http://127.0.0.1…`, `http://[::1]…` or `http://localhost…` (RFC 8252 §7.3).
    LoopbackHttp,
    /// A private-use scheme such as `com.example.app:/cb` (RFC 8252 §7.1).
    PrivateUse,
}

/// Why a redirect URI was refused or did not match.
///
/// At the authorization endpoint every variant is `invalid_request` (the `From` conversion) and, per
/// RFC 6749 §4.1.2.1, must be shown to the user rather than redirected to. At registration use
/// [`RedirectUriError::registration_error`] for RFC 7591's `invalid_redirect_uri`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectUriError {
    /// The string is empty.
    #[error("redirect_uri is empty")]
    Empty,
    /// Longer than [`MAX_REDIRECT_URI_LEN`].
    #[error("redirect_uri is longer than {MAX_REDIRECT_URI_LEN} bytes")]
    TooLong,
    /// Whitespace, a control character, non-ASCII or a character RFC 3986 does not allow.
    #[error("redirect_uri contains a character not allowed in a URI")]
    BadCharacter,
    /// A `%` not followed by two hex digits.
    #[error("redirect_uri contains a malformed percent-encoding")]
    BadPercentEncoding,
    /// No scheme, or what looks like `host:port` without one.
    #[error("redirect_uri must be an absolute URI with a scheme")]
    NotAbsolute,
    /// The scheme has upper-case letters.
    #[error("redirect_uri scheme must be lower-case")]
    UppercaseScheme,
    /// Not a URI the parser accepts, or an `http(s)` URI without `//host`, or with an empty port.
    #[error("redirect_uri is not a valid URI")]
    Malformed,
    /// A fragment, even an empty one (RFC 6749 §3.1.2).
    #[error("redirect_uri must not contain a fragment")]
    Fragment,
    /// User information before the host.
    #[error("redirect_uri must not contain user information")]
    Userinfo,
    /// A host not written the way the URL standard serialises it (upper case, IPv4 shorthand, escapes).
    #[error("redirect_uri host must be written in canonical form")]
    NonCanonicalHost,
    /// `http` on a host other than `127.0.0.1`, `[::1]` or `localhost`.
    #[error("http redirect_uri is only allowed for 127.0.0.1, [::1] or localhost; use https")]
    HttpNotLoopback,
    /// A scheme from [`DENIED_SCHEMES`]. The scheme is echoed; scheme syntax keeps that safe.
    #[error("redirect_uri scheme '{0}' is not allowed")]
    DeniedScheme(String),
    /// A private-use scheme on a deployment that refuses them.
    #[error("private-use URI scheme redirect_uri is not allowed by this server")]
    PrivateUseSchemeNotAllowed,
    /// No `redirect_uri` although the client has registered several (or none).
    #[error("redirect_uri is required")]
    Missing,
    /// The requested URI matches no registered one.
    #[error("redirect_uri does not match a registered redirect URI")]
    NotRegistered,
}

impl RedirectUriError {
    /// The error for a registration request (RFC 7591 §3.2.2): `invalid_redirect_uri`.
    pub fn registration_error(&self) -> OAuthError {
        OAuthError::with_description(ErrorCode::InvalidRedirectUri, self.to_string())
    }
}

impl From<RedirectUriError> for OAuthError {
    /// `invalid_request`, the authorization endpoint's code for a bad or unknown `redirect_uri`.
    fn from(e: RedirectUriError) -> Self {
        OAuthError::with_description(ErrorCode::InvalidRequest, e.to_string())
    }
}

impl From<raw::CharProblem> for RedirectUriError {
    fn from(p: raw::CharProblem) -> Self {
        match p {
            raw::CharProblem::BadCharacter => RedirectUriError::BadCharacter,
            raw::CharProblem::BadPercentEncoding => RedirectUriError::BadPercentEncoding,
        }
    }
}

/// A validated redirect URI. It keeps the exact string the client registered: that is what is matched
/// and redirected to.
#[derive(Clone)]
pub struct RedirectUri {
    raw: String,
    url: Url,
    kind: RedirectUriKind,
}

const LOOPBACK_HOSTS: [&str; 3] = ["127.0.0.1", "[::1]", "localhost"];
const LOOPBACK_IP_LITERALS: [&str; 2] = ["127.0.0.1", "[::1]"];

impl RedirectUri {
    /// Validate `s` under `policy` (see the module docs for the rules).
    pub fn parse(s: &str, policy: &RedirectUriPolicy) -> Result<RedirectUri, RedirectUriError> {
        if s.is_empty() {
            return Err(RedirectUriError::Empty);
        }
        if s.len() > MAX_REDIRECT_URI_LEN {
            return Err(RedirectUriError::TooLong);
        }
        raw::check_chars(s)?;
        if s.contains('#') {
            return Err(RedirectUriError::Fragment);
        }
        let parts = raw::split(s).ok_or(RedirectUriError::NotAbsolute)?;
        if parts.scheme.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(RedirectUriError::UppercaseScheme);
        }
        let url = Url::parse(s).map_err(|_| RedirectUriError::Malformed)?;
        let kind = match parts.scheme {
            "https" | "http" => {
                let authority = parts.authority.ok_or(RedirectUriError::Malformed)?;
                let a = raw::authority(authority).ok_or(RedirectUriError::Malformed)?;
                if a.userinfo.is_some() {
                    return Err(RedirectUriError::Userinfo);
                }
                if a.host.is_empty() || a.port.is_some_and(|p| !raw::is_port(p)) {
                    return Err(RedirectUriError::Malformed);
                }
                if parts.scheme == "http" {
                    // Decided on the raw host: the parser would turn `127.1`, `0x7f.0.0.1` or `%31…` into
                    // 127.0.0.1, and hostile look-alikes such as `127.0.0.1.evil.example` are simply refused.
                    if !LOOPBACK_HOSTS.contains(&a.host) {
                        return Err(RedirectUriError::HttpNotLoopback);
                    }
                }
                if url.host_str() != Some(a.host) {
                    return Err(RedirectUriError::NonCanonicalHost);
                }
                if parts.scheme == "https" {
                    RedirectUriKind::Https
                } else {
                    RedirectUriKind::LoopbackHttp
                }
            }
            scheme => {
                if DENIED_SCHEMES.contains(&scheme) {
                    return Err(RedirectUriError::DeniedScheme(scheme.to_owned()));
                }
                // `localhost:3000/cb` parses as scheme `localhost`; a native app's URI never starts with
                // a digit after its scheme, a forgotten `http://` often does.
                if parts.tail.starts_with(|c: char| c.is_ascii_digit()) {
                    return Err(RedirectUriError::NotAbsolute);
                }
                if let Some(a) = parts.authority {
                    if a.contains('@') {
                        return Err(RedirectUriError::Userinfo);
                    }
                }
                if !policy.allow_private_use_schemes {
                    return Err(RedirectUriError::PrivateUseSchemeNotAllowed);
                }
                RedirectUriKind::PrivateUse
            }
        };
        // Belt and braces: the parser must agree there is no userinfo.
        if !url.username().is_empty() || url.password().is_some() {
            return Err(RedirectUriError::Userinfo);
        }
        Ok(RedirectUri { raw: s.to_owned(), url, kind })
    }

    /// The URI exactly as registered.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The parsed (normalised) URL, e.g. to append response parameters.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Its shape.
    pub fn kind(&self) -> RedirectUriKind {
        self.kind
    }

    /// Whether it is `http` on `127.0.0.1` or `[::1]`, for which any port matches (not `localhost`).
    pub fn is_loopback_ip_literal(&self) -> bool {
        self.kind == RedirectUriKind::LoopbackHttp && self.url.host_str().is_some_and(|h| h != "localhost")
    }

    /// Whether `requested` matches this registered URI (see [`matches()`]).
    pub fn matches(&self, requested: &str) -> bool {
        matches(self, requested)
    }
}

/// The raw pieces of `http://HOST[:PORT]TAIL` for a loopback IP literal, as written.
fn loopback_parts(s: &str) -> Option<(&str, &str)> {
    let parts = raw::split(s)?;
    if parts.scheme != "http" {
        return None;
    }
    let a = raw::authority(parts.authority?)?;
    let host_ok = a.userinfo.is_none() && LOOPBACK_IP_LITERALS.contains(&a.host);
    let port_ok = a.port.is_none_or(raw::is_port);
    (host_ok && port_ok).then_some((a.host, parts.tail))
}

/// Whether the `redirect_uri` of a request matches a registered one.
///
/// The comparison is on the raw strings, with no normalisation: case, a trailing slash, an explicit
/// default port or a different percent-encoding all make it fail. The exception (RFC 8252 §7.3, OAuth 2.1
/// §4.1.1): when `registered` is `http` on `127.0.0.1` or `[::1]`, the port may differ, or be present in
/// only one of the two, as long as the scheme, host, path and query are identical.
pub fn matches(registered: &RedirectUri, requested: &str) -> bool {
    if registered.raw == requested {
        return true;
    }
    if !registered.is_loopback_ip_literal() {
        return false;
    }
    match (loopback_parts(&registered.raw), loopback_parts(requested)) {
        (Some((reg_host, reg_tail)), Some((req_host, req_tail))) => reg_host == req_host && reg_tail == req_tail,
        _ => false,
    }
}

/// The URI to redirect to, given a client's registered URIs and the request's `redirect_uri` (`None` when
/// absent): the requested one when it matches a registered one; the single registered one when the
/// request omits it (OAuth 2.1 §4.1.1 makes it optional only then).
pub fn resolve<'a>(registered: &'a [RedirectUri], requested: Option<&'a str>) -> Result<&'a str, RedirectUriError> {
    match (requested, registered) {
        (Some(r), _) if registered.iter().any(|reg| matches(reg, r)) => Ok(r),
        (Some(_), _) => Err(RedirectUriError::NotRegistered),
        (None, [only]) => Ok(only.as_str()),
        (None, _) => Err(RedirectUriError::Missing),
    }
}

impl PartialEq for RedirectUri {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Eq for RedirectUri {}

impl std::hash::Hash for RedirectUri {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.raw.hash(state)
    }
}

impl FromStr for RedirectUri {
    type Err = RedirectUriError;
    /// Parse under the default policy.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RedirectUri::parse(s, &RedirectUriPolicy::default())
    }
}

impl TryFrom<String> for RedirectUri {
    type Error = RedirectUriError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<RedirectUri> for String {
    fn from(r: RedirectUri) -> String {
        r.raw
    }
}

impl Serialize for RedirectUri {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.raw)
    }
}

impl<'de> Deserialize<'de> for RedirectUri {
    /// Deserialises under the default policy: a deployment that refuses private-use schemes checks that
    /// when the URI is registered.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl fmt::Debug for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedirectUri({})", self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Result<RedirectUri, RedirectUriError> {
        RedirectUri::parse(s, &RedirectUriPolicy::default())
    }

    fn reg(s: &str) -> RedirectUri {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn accepts_the_usual_shapes() {
        for (s, kind) in [
            ("https://app.example/callback", RedirectUriKind::Https),
            ("https://app.example", RedirectUriKind::Https),
            ("https://app.example:8443/cb?tenant=a&x=%20y", RedirectUriKind::Https),
            ("https://xn--bcher-kva.example/cb", RedirectUriKind::Https),
            ("http://127.0.0.1/callback", RedirectUriKind::LoopbackHttp),
            ("http://127.0.0.1:33418/callback", RedirectUriKind::LoopbackHttp),
            ("http://[::1]:8080/cb", RedirectUriKind::LoopbackHttp),
            ("http://localhost:6274/oauth/callback", RedirectUriKind::LoopbackHttp),
            ("com.example.app:/oauth2redirect", RedirectUriKind::PrivateUse),
            ("cursor://anysphere.cursor-retrieval/oauth/user-notes/callback", RedirectUriKind::PrivateUse),
        ] {
            let r = reg(s);
            assert_eq!(r.kind(), kind, "{s}");
            assert_eq!(r.as_str(), s);
            assert!(r.matches(s));
        }
    }

    #[test]
    fn refuses_bad_syntax() {
        use RedirectUriError::*;
        for (s, e) in [
            ("", Empty),
            ("/callback", NotAbsolute),
            ("callback", NotAbsolute),
            ("localhost:3000/callback", NotAbsolute),
            ("app.example:8080", NotAbsolute),
            ("https://a.example/cb#", Fragment),
            ("https://a.example/cb#frag", Fragment),
            ("https://a.example/cb\n", BadCharacter),
            ("https://a.example/c b", BadCharacter),
            (" https://a.example/cb", BadCharacter),
            ("https://a.example/cb\t", BadCharacter),
            ("https://a.example/\u{0}", BadCharacter),
            ("https://a.example/caf\u{e9}", BadCharacter),
            ("https://a.example\\@evil.example/", BadCharacter),
            ("https://a.example/<script>", BadCharacter),
            ("https://a.example/%zz", BadPercentEncoding),
            ("https://a.example/%4", BadPercentEncoding),
            ("HTTP://127.0.0.1/cb", UppercaseScheme),
            ("Https://a.example/cb", UppercaseScheme),
            ("https:a.example/cb", Malformed),
            ("https:///a.example/cb", Malformed),
            ("https://a.example:/cb", Malformed),
            ("https://a.example:99999/cb", Malformed),
            ("https://good.example@evil.example/", Userinfo),
            ("https://@evil.example/", Userinfo),
            ("https://u:p@a.example/", Userinfo),
            ("https://A.Example/cb", NonCanonicalHost),
            ("https://%61.example/cb", NonCanonicalHost),
            ("https://127.1/cb", NonCanonicalHost),
        ] {
            assert_eq!(parse(s).map(|r| r.to_string()), Err(e), "{s:?}");
        }
        assert_eq!(parse(&format!("https://a.example/{}", "a".repeat(MAX_REDIRECT_URI_LEN))), Err(TooLong));
        let longest = format!("https://a.example/{}", "a".repeat(MAX_REDIRECT_URI_LEN - 18));
        assert_eq!(longest.len(), MAX_REDIRECT_URI_LEN);
        assert!(parse(&longest).is_ok());
    }

    #[test]
    fn http_only_on_loopback() {
        for s in [
            "http://app.example/cb",
            "http://127.0.0.1.evil.example/cb",
            "http://localhost.evil.example/cb",
            "http://127.0.0.2/cb",
            "http://127.1/cb",
            "http://0x7f.0.0.1/cb",
            "http://%31%32%37.0.0.1/cb",
            "http://LOCALHOST/cb",
            "http://localhost./cb",
            "http://[0:0:0:0:0:0:0:1]/cb",
            "http://[::ffff:127.0.0.1]/cb",
            "http://0.0.0.0/cb",
        ] {
            assert_eq!(parse(s).map(|r| r.to_string()), Err(RedirectUriError::HttpNotLoopback), "{s}");
        }
        assert_eq!(parse("http://evil.example@127.0.0.1/").unwrap_err(), RedirectUriError::Userinfo);
        assert_eq!(parse("http://127.0.0.1@evil.example/").unwrap_err(), RedirectUriError::Userinfo);
    }

    #[test]
    fn denied_and_private_use_schemes() {
        for s in [
            "javascript:alert(1)",
            "javascript://a.example/%0aalert(1)",
            "data:text/html,<x>",
            "data:text/html;base64,PHg+",
            "vbscript:msgbox",
            "file:///etc/passwd",
            "blob:https://a.example/x",
            "about:blank",
            "ftp://a.example/cb",
            "ws://127.0.0.1/cb",
            "wss://a.example/cb",
            "mailto:a@a.example",
            "tel:+1",
            "chrome://settings",
            "urn:ietf:wg:oauth:2.0:oob",
        ] {
            assert!(
                matches!(parse(s), Err(RedirectUriError::DeniedScheme(_) | RedirectUriError::BadCharacter)),
                "{s}: {:?}",
                parse(s)
            );
        }
        assert_eq!(
            parse("javascript:alert(1)").unwrap_err().to_string(),
            "redirect_uri scheme 'javascript' is not allowed"
        );
        assert_eq!(parse("JaVaScRiPt:alert(1)").unwrap_err(), RedirectUriError::UppercaseScheme);
        assert_eq!(parse("myapp://user@cb/").unwrap_err(), RedirectUriError::Userinfo);
        let strict = RedirectUriPolicy { allow_private_use_schemes: false };
        assert_eq!(
            RedirectUri::parse("com.example.app:/cb", &strict),
            Err(RedirectUriError::PrivateUseSchemeNotAllowed)
        );
        assert!(RedirectUri::parse("https://a.example/cb", &strict).is_ok());
        assert!(RedirectUri::parse("http://127.0.0.1/cb", &strict).is_ok());
    }

    #[test]
    fn matching_is_exact() {
        let r = reg("https://app.example/cb");
        assert!(r.matches("https://app.example/cb"));
        for other in [
            "https://app.example/cb/",
            "https://app.example/CB",
            "https://APP.example/cb",
            "HTTPS://app.example/cb",
            "https://app.example:443/cb",
            "https://app.example/%63b",
            "https://app.example/cb?",
            "https://app.example/cb#",
            "https://app.example/cb?x=1",
            "https://app.example/cb/../cb",
            "https://app.example.evil.example/cb",
            "https://app.example@evil.example/cb",
            "https://app.example:8443/cb",
            "https://app.example/cb\n",
            "",
        ] {
            assert!(!r.matches(other), "{other:?}");
        }
        // No implicit slash either way.
        assert!(!reg("https://app.example").matches("https://app.example/"));
        assert!(!reg("https://app.example/").matches("https://app.example"));
    }

    #[test]
    fn loopback_ip_literal_accepts_any_port() {
        let r = reg("http://127.0.0.1/callback");
        assert!(r.is_loopback_ip_literal());
        assert!(r.matches("http://127.0.0.1:51004/callback"));
        assert!(r.matches("http://127.0.0.1:80/callback"));
        let with_port = reg("http://127.0.0.1:3000/callback?x=1");
        assert!(with_port.matches("http://127.0.0.1/callback?x=1"));
        assert!(with_port.matches("http://127.0.0.1:65535/callback?x=1"));
        for other in [
            "http://127.0.0.1:65536/callback?x=1",
            "http://127.0.0.1:/callback?x=1",
            "http://127.0.0.1:+80/callback?x=1",
            "http://127.0.0.1:3000/callback?x=2",
            "http://127.0.0.1:3000/callback/?x=1",
            "http://127.0.0.1:3000/Callback?x=1",
            "http://127.0.0.1:3000/callback?x=1#",
            "http://localhost:3000/callback?x=1",
            "http://[::1]:3000/callback?x=1",
            "https://127.0.0.1:3000/callback?x=1",
            "http://a@127.0.0.1:3000/callback?x=1",
            "http://127.0.0.1.evil.example:3000/callback?x=1",
        ] {
            assert!(!with_port.matches(other), "{other:?}");
        }
        let v6 = reg("http://[::1]:8080/cb");
        assert!(v6.matches("http://[::1]:9/cb"));
        assert!(v6.matches("http://[::1]/cb"));
        assert!(!v6.matches("http://[::1]]:9/cb"));
        // `localhost` is a name, not an IP literal: exact matching only.
        let lh = reg("http://localhost:6274/oauth/callback");
        assert!(!lh.is_loopback_ip_literal());
        assert!(!lh.matches("http://localhost:6275/oauth/callback"));
        assert!(lh.matches("http://localhost:6274/oauth/callback"));
    }

    #[test]
    fn resolve_picks_the_uri_to_redirect_to() {
        let one = [reg("http://127.0.0.1/cb")];
        assert_eq!(resolve(&one, None), Ok("http://127.0.0.1/cb"));
        assert_eq!(resolve(&one, Some("http://127.0.0.1:5555/cb")), Ok("http://127.0.0.1:5555/cb"));
        assert_eq!(resolve(&one, Some("http://127.0.0.1:5555/other")), Err(RedirectUriError::NotRegistered));
        let two = [reg("https://a.example/cb"), reg("https://b.example/cb")];
        assert_eq!(resolve(&two, None), Err(RedirectUriError::Missing));
        assert_eq!(resolve(&two, Some("https://b.example/cb")), Ok("https://b.example/cb"));
        assert_eq!(resolve(&[], None), Err(RedirectUriError::Missing));
    }

    #[test]
    fn errors_map_to_oauth_codes() {
        let e = RedirectUriError::HttpNotLoopback;
        assert_eq!(OAuthError::from(e.clone()).code(), ErrorCode::InvalidRequest);
        assert_eq!(e.registration_error().code(), ErrorCode::InvalidRedirectUri);
        assert_eq!(OAuthError::from(RedirectUriError::NotRegistered).code(), ErrorCode::InvalidRequest);
    }

    #[test]
    fn serde_keeps_the_raw_string() {
        let r = reg("https://app.example");
        assert_eq!(serde_json::to_string(&r).unwrap(), "\"https://app.example\"");
        assert_eq!(r.url().as_str(), "https://app.example/");
        let back: RedirectUri = serde_json::from_str("\"https://app.example\"").unwrap();
        assert_eq!(back, r);
        assert!(serde_json::from_str::<RedirectUri>("\"http://evil.example/\"").is_err());
    }

    #[test]
    fn raw_helpers() {
        let p = raw::split("https://u@h:1/p?q").unwrap();
        assert_eq!((p.scheme, p.authority, p.tail), ("https", Some("u@h:1"), "/p?q"));
        let a = raw::authority("u@[::1]:8").unwrap();
        assert_eq!((a.userinfo, a.host, a.port), (Some("u"), "[::1]", Some("8")));
        assert_eq!(raw::authority("[::1"), None);
        assert_eq!(raw::authority("[::1]x"), None);
        assert!(raw::split("1x:y").is_none());
        assert!(raw::split(":y").is_none());
        assert!(raw::is_port("65535") && !raw::is_port("65536") && !raw::is_port("") && !raw::is_port("+1"));
    }

    fn host() -> impl Strategy<Value = String> {
        // A label with "--" in positions 3-4 is reserved for IDNA ("xn--…") and must be valid punycode, which
        // random letters are not: such hosts are rightly refused, so the generator leaves them out.
        "[a-z][a-z0-9-]{0,10}\\.(example|test|com)".prop_filter("IDNA-reserved label", |h| h.get(2..4) != Some("--"))
    }

    fn tail() -> impl Strategy<Value = String> {
        "(/[A-Za-z0-9._~-]{0,8}){0,3}(\\?[a-z]{1,5}=(%[0-9A-F]{2}|[A-Za-z0-9]){0,6})?"
    }

    proptest! {
        #[test]
        fn never_panics(s in any::<String>(), t in "[a-z.+-]{1,8}:(//)?[ -~]{0,40}") {
            for input in [&s, &t] {
                if let Ok(r) = parse(input) {
                    prop_assert!(r.matches(input));
                    let with_fragment = format!("{input}#");
                    prop_assert!(!r.matches(&with_fragment));
                }
                let _ = loopback_parts(input);
            }
        }

        #[test]
        fn valid_uri_matches_itself(h in host(), t in tail(), port in proptest::option::of(1u16..)) {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            for s in [format!("https://{h}{port}{t}"), format!("http://127.0.0.1{port}{t}"), format!("com.{h}:{t}")] {
                let r = parse(&s);
                prop_assert!(r.is_ok(), "{} {:?}", s, r);
                prop_assert!(r.unwrap().matches(&s));
            }
        }

        #[test]
        fn different_hosts_never_match(h1 in host(), h2 in host(), t in tail(), p1 in 1u16.., p2 in 1u16..) {
            prop_assume!(h1 != h2);
            let a = reg(&format!("https://{h1}:{p1}{t}"));
            for other in [format!("https://{h2}:{p1}{t}"), format!("https://{h2}:{p2}{t}")] {
                prop_assert!(!a.matches(&other), "{} matched {}", a, other);
            }
            let lo = reg(&format!("http://127.0.0.1:{p1}{t}"));
            let any_port = format!("http://127.0.0.1:{p2}{t}");
            prop_assert!(lo.matches(&any_port));
            for other in [
                format!("http://{h2}:{p2}{t}"),
                format!("http://[::1]:{p2}{t}"),
                format!("http://127.0.0.1.{h2}:{p2}{t}"),
            ] {
                prop_assert!(!lo.matches(&other), "{} matched {}", lo, other);
            }
        }
    }
}
