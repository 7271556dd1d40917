//! Strict request parameters: the one way every endpoint reads its input.
//!
//! RFC 6749 §3.1 and §3.2: parameters sent without a value are treated as omitted, and request and response
//! parameters MUST NOT be included more than once. Bodies must be `application/x-www-form-urlencoded`.

use authflow_core::OAuthError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

use crate::error::ApiError;

/// Parameters of one request, each present at most once, sorted by name: a request has a handful, and a
/// sorted list finds them without hashing or a table to allocate.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parse `application/x-www-form-urlencoded` data, refusing repeated names (the error names the first
    /// repeated one in name order).
    pub fn parse(input: &[u8]) -> Result<Params, OAuthError> {
        let mut pairs: Vec<(String, String)> =
            form_urlencoded::parse(input).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if let Some(pair) = pairs.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(OAuthError::invalid_request(format!("parameter {:?} is repeated", truncate(&pair[0].0))));
        }
        // §3.1: "Parameters sent without a value MUST be treated as if they were omitted".
        pairs.retain(|(_, v)| !v.is_empty());
        Ok(Params(pairs))
    }

    /// A parameter's value, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        let i = self.0.binary_search_by(|(k, _)| k.as_str().cmp(name)).ok()?;
        Some(&self.0[i].1)
    }

    /// A required parameter, or `invalid_request` naming it.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name).ok_or_else(|| OAuthError::invalid_request(format!("missing parameter: {name}")))
    }

    /// Whether a parameter is present.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Re-encode (in name order), e.g. to carry an authorization request through the login form.
    pub fn to_query(&self) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.0 {
            s.append_pair(k, v);
        }
        s.finish()
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Whether the request declares a form body (`application/x-www-form-urlencoded`, parameters allowed).
fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
}

/// Extracts [`Params`] from a form body; anything else is `invalid_request`.
#[derive(Debug)]
pub struct Form(pub Params);

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_form(req.headers()) {
            return Err(OAuthError::invalid_request("the body must be application/x-www-form-urlencoded").into());
        }
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|_| OAuthError::invalid_request("the request body is too large or unreadable"))?;
        Ok(Form(Params::parse(&body)?))
    }
}

/// Extracts [`Params`] from the query string.
#[derive(Debug)]
pub struct Query(pub Params);

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Query(Params::parse(parts.uri.query().unwrap_or("").as_bytes())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused() {
        let e = Params::parse(b"a=1&b=2&a=3").unwrap_err();
        assert!(e.description().contains("\"a\""));
        // Even when one of the two is empty.
        assert!(Params::parse(b"a=&a=1").is_err());
    }

    #[test]
    fn empty_values_count_as_omitted_and_decoding_is_applied() {
        let p = Params::parse(b"scope=&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb&x=a+b").unwrap();
        assert_eq!(p.get("scope"), None);
        assert_eq!(p.get("redirect_uri"), Some("http://127.0.0.1/cb"));
        assert_eq!(p.get("x"), Some("a b"));
        assert!(p.require("scope").unwrap_err().description().contains("scope"));
    }

    #[test]
    fn every_name_is_found_among_many() {
        let body: String = (0..2000).rev().map(|i| format!("p{i}=v{i}&")).collect();
        let p = Params::parse(body.as_bytes()).unwrap();
        for i in 0..2000 {
            assert_eq!(p.get(&format!("p{i}")), Some(format!("v{i}").as_str()));
        }
        assert!(!p.has("p2000") && !p.has("p") && !p.has(""));
        let e = Params::parse(format!("{body}p1234=again").as_bytes()).unwrap_err();
        assert!(e.description().contains("\"p1234\""));
    }

    #[test]
    fn round_trips_through_a_query() {
        let p = Params::parse(b"b=2&a=%26").unwrap();
        assert_eq!(p.to_query(), "a=%26&b=2");
    }

    #[test]
    fn content_type_with_charset_is_a_form() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, "application/x-www-form-urlencoded; charset=UTF-8".parse().unwrap());
        assert!(is_form(&h));
        h.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        assert!(!is_form(&h));
        assert!(!is_form(&HeaderMap::new()));
    }
}
