//! Client identifiers: opaque ids (RFC 6749 §2.2) and client ID metadata document URLs (MCP 2025-11-25,
//! draft-ietf-oauth-client-id-metadata-document).
//!
//! An opaque id is 1 to [`MAX_CLIENT_ID_LEN`] bytes of visible ASCII (`%x21-7E`): stricter than RFC 6749's
//! `VSCHAR`, which also allows spaces, because an id travels in forms, URLs, logs and HTTP Basic
//! credentials.
//!
//! An id that starts with `http:` or `https:` (in any case) is taken as a claim to be a metadata document
//! URL and must then be one, up to [`MAX_METADATA_URL_LEN`] bytes: `https`, `//host`, a path other than
//! `/`, no `.`/`..` segments, no fragment, no user information, and written exactly as the URL standard
//! serialises it (lower-case scheme and host, no default port), because the document's `client_id` must
//! equal it by simple string comparison. Refusing such an id rather than treating it as opaque keeps a
//! look-alike such as `HTTPS://client.example/app` from being shown to users as if it were a verified URL.
//!
//! ```
//! use authflow_core::validation::client_id::{ClientId, ClientIdKind};
//!
//! assert_eq!(ClientId::parse("af_client_x1")?.kind(), ClientIdKind::Opaque);
//! assert_eq!(ClientId::parse("https://app.example/oauth/client.json")?.kind(), ClientIdKind::MetadataDocument);
//! assert!(ClientId::parse("https://app.example/").is_err());
//! # Ok::<(), authflow_core::validation::client_id::ClientIdError>(())
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use url::Url;

use super::redirect_uri::raw;
use crate::error::{ErrorCode, OAuthError};

/// Longest opaque client id accepted.
pub const MAX_CLIENT_ID_LEN: usize = 255;
/// Longest metadata document URL accepted as a client id.
pub const MAX_METADATA_URL_LEN: usize = 2048;

/// What kind of client id it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientIdKind {
    /// An id the server issued (or an administrator chose): looked up in storage.
    Opaque,
    /// An `https` URL whose JSON document describes the client: fetched (SSRF-safely) and cached.
    MetadataDocument,
}

/// Why a client id was refused.
///
/// The `From` conversion gives `invalid_request` (a malformed parameter, e.g. at the authorization
/// endpoint, where it must be shown to the user, not redirected). Where the id is presented to authenticate
/// (token, introspection and revocation endpoints) use [`ClientIdError::client_auth_error`] for
/// `invalid_client`, as RFC 6749 §5.2 prescribes for any failed client authentication.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientIdError {
    /// The string is empty.
    #[error("client_id is empty")]
    Empty,
    /// Longer than allowed for its kind.
    #[error("client_id is longer than {max} bytes")]
    TooLong {
        /// The limit for the kind of id it claims to be.
        max: usize,
    },
    /// A byte outside `%x21-7E` (or, in a URL, outside RFC 3986).
    #[error("client_id contains a character that is not allowed")]
    BadCharacter,
    /// A URL client id that is not `https`.
    #[error("a client_id URL must use https")]
    NotHttps,
    /// A URL client id with a fragment.
    #[error("a client_id URL must not contain a fragment")]
    Fragment,
    /// A URL client id with user information.
    #[error("a client_id URL must not contain user information")]
    Userinfo,
    /// A URL client id without a path, or with only `/`.
    #[error("a client_id URL must have a path")]
    MissingPath,
    /// A URL client id with a `.` or `..` path segment.
    #[error("a client_id URL must not contain . or .. path segments")]
    DotSegment,
    /// A URL client id not written in its normalised form (case, default port, escapes).
    #[error("a client_id URL must be written in normalised form")]
    NotCanonical,
    /// A URL client id the parser refuses, or without `//host`.
    #[error("client_id is not a valid URL")]
    Malformed,
}

impl ClientIdError {
    /// The error when the id was presented for client authentication: `invalid_client`.
    pub fn client_auth_error(&self) -> OAuthError {
        OAuthError::with_description(ErrorCode::InvalidClient, self.to_string())
    }
}

impl From<ClientIdError> for OAuthError {
    /// `invalid_request`.
    fn from(e: ClientIdError) -> Self {
        OAuthError::with_description(ErrorCode::InvalidRequest, e.to_string())
    }
}

/// A syntactically valid client id. It says nothing about whether such a client exists.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientId(String);

fn is_url_claim(s: &str) -> bool {
    let head = s.as_bytes();
    let starts = |p: &[u8]| head.len() >= p.len() && head[..p.len()].eq_ignore_ascii_case(p);
    starts(b"https:") || starts(b"http:")
}

fn is_dot_segment(seg: &str) -> bool {
    // `%2e` is a dot to the URL standard too.
    let s = seg.to_ascii_lowercase().replace("%2e", ".");
    s == "." || s == ".."
}

fn check_metadata_url(s: &str, allow_loopback_http: bool) -> Result<(), ClientIdError> {
    raw::check_chars(s).map_err(|p| match p {
        raw::CharProblem::BadCharacter => ClientIdError::BadCharacter,
        raw::CharProblem::BadPercentEncoding => ClientIdError::Malformed,
    })?;
    if s.contains('#') {
        return Err(ClientIdError::Fragment);
    }
    let parts = raw::split(s).ok_or(ClientIdError::Malformed)?;
    let plain_http = match parts.scheme {
        "https" => false,
        "http" if allow_loopback_http => true,
        other if other.eq_ignore_ascii_case("https") => return Err(ClientIdError::NotCanonical),
        _ => return Err(ClientIdError::NotHttps),
    };
    let authority = raw::authority(parts.authority.ok_or(ClientIdError::Malformed)?).ok_or(ClientIdError::Malformed)?;
    if authority.userinfo.is_some() {
        return Err(ClientIdError::Userinfo);
    }
    if authority.host.is_empty() {
        return Err(ClientIdError::Malformed);
    }
    if plain_http && !matches!(authority.host, "127.0.0.1" | "[::1]" | "localhost") {
        return Err(ClientIdError::NotHttps);
    }
    let path = parts.tail.split('?').next().unwrap_or("");
    if path.split('/').any(is_dot_segment) {
        return Err(ClientIdError::DotSegment);
    }
    let url = Url::parse(s).map_err(|_| ClientIdError::Malformed)?;
    if url.path() == "/" {
        return Err(ClientIdError::MissingPath);
    }
    if url.as_str() != s {
        return Err(ClientIdError::NotCanonical);
    }
    Ok(())
}

impl ClientId {
    /// Parse a client id strictly (see the module docs).
    pub fn parse(s: &str) -> Result<ClientId, ClientIdError> {
        Self::parse_with(s, false)
    }

    /// Like [`ClientId::parse`], but also accept `http` metadata document URLs on a loopback host
    /// (`127.0.0.1`, `[::1]`, `localhost`). For local test set-ups only: a production server must never
    /// fetch a client's identity over plain HTTP.
    pub fn parse_for_local_testing(s: &str) -> Result<ClientId, ClientIdError> {
        Self::parse_with(s, true)
    }

    fn parse_with(s: &str, allow_loopback_http: bool) -> Result<ClientId, ClientIdError> {
        if s.is_empty() {
            return Err(ClientIdError::Empty);
        }
        // Bound the work first; the tighter opaque limit is applied below.
        if s.len() > MAX_METADATA_URL_LEN {
            let max = if is_url_claim(s) { MAX_METADATA_URL_LEN } else { MAX_CLIENT_ID_LEN };
            return Err(ClientIdError::TooLong { max });
        }
        if !s.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(ClientIdError::BadCharacter);
        }
        if is_url_claim(s) {
            check_metadata_url(s, allow_loopback_http)?;
        } else if s.len() > MAX_CLIENT_ID_LEN {
            return Err(ClientIdError::TooLong { max: MAX_CLIENT_ID_LEN });
        }
        Ok(ClientId(s.to_owned()))
    }

    /// The id as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it is opaque or a metadata document URL.
    pub fn kind(&self) -> ClientIdKind {
        // Parsing guarantees every URL-looking id is a valid metadata document URL.
        if is_url_claim(&self.0) {
            ClientIdKind::MetadataDocument
        } else {
            ClientIdKind::Opaque
        }
    }

    /// Whether it is a client ID metadata document URL.
    pub fn is_metadata_document(&self) -> bool {
        self.kind() == ClientIdKind::MetadataDocument
    }

    /// The URL to fetch the metadata document from, for a metadata document id.
    pub fn metadata_document_url(&self) -> Option<Url> {
        if self.is_metadata_document() {
            Url::parse(&self.0).ok()
        } else {
            None
        }
    }
}

impl FromStr for ClientId {
    type Err = ClientIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ClientId::parse(s)
    }
}

impl TryFrom<String> for ClientId {
    type Error = ClientIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        ClientId::parse(&s)
    }
}

impl From<ClientId> for String {
    fn from(c: ClientId) -> String {
        c.0
    }
}

impl AsRef<str> for ClientId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn opaque_ids() {
        for s in ["a", "af_client_3f9K", "!~", "urn:example:client", "client@tenant", "x".repeat(255).as_str()] {
            let id = ClientId::parse(s).unwrap();
            assert_eq!(id.kind(), ClientIdKind::Opaque, "{s}");
            assert_eq!(id.as_str(), s);
            assert_eq!(id.metadata_document_url(), None);
        }
        assert_eq!(ClientId::parse(""), Err(ClientIdError::Empty));
        assert_eq!(ClientId::parse(&"x".repeat(256)), Err(ClientIdError::TooLong { max: 255 }));
        assert_eq!(ClientId::parse(&"x".repeat(5000)), Err(ClientIdError::TooLong { max: 255 }));
        for bad in ["a b", " a", "a\n", "a\t", "a\u{7f}", "caf\u{e9}", "a\u{0}"] {
            assert_eq!(ClientId::parse(bad), Err(ClientIdError::BadCharacter), "{bad:?}");
        }
    }

    #[test]
    fn metadata_document_urls() {
        for s in [
            "https://client.example/oauth/client.json",
            "https://client.example/app",
            "https://client.example:8443/app",
            "https://client.example/app?v=2",
            "https://client.example/app/",
        ] {
            let id = ClientId::parse(s).unwrap();
            assert_eq!(id.kind(), ClientIdKind::MetadataDocument, "{s}");
            assert!(id.is_metadata_document());
            assert_eq!(id.metadata_document_url().unwrap().as_str(), s);
        }
        let long = format!("https://client.example/{}", "a".repeat(MAX_METADATA_URL_LEN - 23));
        assert_eq!(long.len(), MAX_METADATA_URL_LEN);
        assert!(ClientId::parse(&long).unwrap().is_metadata_document());
        assert_eq!(ClientId::parse(&format!("{long}a")), Err(ClientIdError::TooLong { max: MAX_METADATA_URL_LEN }));
    }

    #[test]
    fn refuses_bad_metadata_urls() {
        use ClientIdError::*;
        for (s, e) in [
            ("http://client.example/app", NotHttps),
            ("HTTP://client.example/app", NotHttps),
            ("HTTPS://client.example/app", NotCanonical),
            ("https://Client.Example/app", NotCanonical),
            ("https://client.example:443/app", NotCanonical),
            ("https://client.example", MissingPath),
            ("https://client.example/", MissingPath),
            ("https://client.example/?x=1", MissingPath),
            ("https://client.example/app#", Fragment),
            ("https://client.example/app#x", Fragment),
            ("https://user@client.example/app", Userinfo),
            ("https://client.example@evil.example/app", Userinfo),
            ("https://client.example/a/../app", DotSegment),
            ("https://client.example/./app", DotSegment),
            ("https://client.example/%2E%2e/app", DotSegment),
            ("https://client.example/app/..", DotSegment),
            ("https:client.example/app", Malformed),
            ("https:///client.example/app", Malformed),
            ("https://client.example/a%zz", Malformed),
            ("https://client.example/a\"b", BadCharacter),
            ("https://client.example/a{b}", BadCharacter),
        ] {
            assert_eq!(ClientId::parse(s), Err(e), "{s:?}");
        }
    }

    #[test]
    fn error_codes_and_serde() {
        assert_eq!(OAuthError::from(ClientIdError::Empty).code(), ErrorCode::InvalidRequest);
        assert_eq!(ClientIdError::BadCharacter.client_auth_error().code(), ErrorCode::InvalidClient);
        let id: ClientId = serde_json::from_str("\"af_client_1\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"af_client_1\"");
        assert!(serde_json::from_str::<ClientId>("\"a b\"").is_err());
        assert!(serde_json::from_str::<ClientId>("\"http://x.example/a\"").is_err());
    }

    proptest! {
        #[test]
        fn never_panics(s in any::<String>(), u in "(?i:https?):[!-~]{0,60}") {
            for input in [&s, &u] {
                if let Ok(id) = ClientId::parse(input) {
                    prop_assert_eq!(id.as_str(), input.as_str());
                    prop_assert_eq!(id.is_metadata_document(), id.metadata_document_url().is_some());
                }
            }
        }

        #[test]
        fn visible_ascii_is_an_opaque_id(s in "[!-~]{1,255}") {
            prop_assume!(!is_url_claim(&s));
            let id = ClientId::parse(&s).unwrap();
            prop_assert_eq!(id.kind(), ClientIdKind::Opaque);
            prop_assert_eq!(ClientId::parse(id.as_str()), Ok(id));
        }

        #[test]
        fn any_invisible_character_is_refused(a in "[!-~]{0,20}", c in "[^!-~]", b in "[!-~]{0,20}") {
            let s = format!("{a}{c}{b}");
            prop_assert!(ClientId::parse(&s).is_err());
        }

        #[test]
        fn simple_https_urls_are_metadata_documents(h in "[a-z][a-z0-9-]{0,10}\\.example", p in "(/[a-z0-9_-]{1,8}){1,4}") {
            // A label with "--" in positions 3-4 is reserved for IDNA ("xn--…") and must be valid punycode,
            // which random letters are not: such hosts are rightly refused, so leave them out here.
            prop_assume!(h.get(2..4) != Some("--"));
            let s = format!("https://{h}{p}");
            prop_assert_eq!(ClientId::parse(&s).map(|id| id.kind()), Ok(ClientIdKind::MetadataDocument));
        }
    }
}
