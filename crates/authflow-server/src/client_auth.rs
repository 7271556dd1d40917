//! Client authentication at the token, introspection and revocation endpoints (RFC 6749 §2.3, RFC 7523).
//!
//! A request uses exactly one method; a client uses only the method it registered. Every failure is the
//! same `invalid_client`, so a caller learns nothing about which part was wrong.

use std::sync::Arc;

use authflow_core::{ClientAuthMethod, ErrorCode, OAuthError};
use authflow_store::Client;
use axum::http::{header, HeaderMap, HeaderValue};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::clients::ClientError;
use crate::error::ApiError;
use crate::params::Params;
use crate::AppState;

/// The assertion type of RFC 7523 §2.2.
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A client that proved who it is (or, for a public client, named itself).
#[derive(Debug, Clone)]
pub struct AuthenticatedClient {
    /// The client record (shared with the client cache).
    pub client: Arc<Client>,
    /// The method it used.
    pub method: ClientAuthMethod,
}

impl AuthenticatedClient {
    /// The client id.
    pub fn id(&self) -> &str {
        &self.client.client_id
    }
}

/// The credentials a request presents, before any lookup.
enum Presented<'a> {
    Basic { id: String, secret: String },
    Post { id: &'a str, secret: &'a str },
    Assertion { assertion: &'a str, id: Option<&'a str> },
    None { id: &'a str },
}

fn failure(basic: bool) -> ApiError {
    let e = ApiError::from(OAuthError::new(ErrorCode::InvalidClient));
    if basic {
        // RFC 6749 §5.2: a client that tried HTTP authentication gets a challenge naming the scheme it used.
        e.with_challenge(HeaderValue::from_static("Basic realm=\"authflow\", charset=\"UTF-8\""))
    } else {
        e
    }
}

fn parse_basic(value: &HeaderValue) -> Result<Option<(String, String)>, ApiError> {
    let Ok(value) = value.to_str() else { return Err(failure(true)) };
    let Some((scheme, credentials)) = value.split_once(' ') else { return Ok(None) };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = STANDARD.decode(credentials.trim()).map_err(|_| failure(true))?;
    let mut id = String::from_utf8(decoded).map_err(|_| failure(true))?;
    let colon = id.find(':').ok_or_else(|| failure(true))?;
    let mut secret = id.split_off(colon + 1);
    id.truncate(colon);
    // RFC 6749 §2.3.1: both parts are form-urlencoded before being joined.
    for part in [&mut id, &mut secret] {
        if part.contains(['%', '+']) {
            *part = form_decode(part);
        }
    }
    if id.is_empty() {
        return Err(failure(true));
    }
    Ok(Some((id, secret)))
}

/// `application/x-www-form-urlencoded` decoding of one value: `+` is a space, `%XX` a byte, invalid UTF-8
/// replaced.
fn form_decode(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

fn presented<'a>(headers: &HeaderMap, params: &'a Params) -> Result<Presented<'a>, ApiError> {
    let mut authorization = headers.get_all(header::AUTHORIZATION).iter();
    let basic = match (authorization.next(), authorization.next()) {
        (None, _) => None,
        (Some(one), None) => parse_basic(one)?,
        (Some(_), Some(_)) => return Err(OAuthError::invalid_request("the Authorization header is repeated").into()),
    };
    let secret = params.get("client_secret");
    let assertion = params.get("client_assertion");
    let used = usize::from(basic.is_some()) + usize::from(secret.is_some()) + usize::from(assertion.is_some());
    if used > 1 {
        return Err(OAuthError::invalid_request("use exactly one client authentication method").into());
    }
    let body_id = params.get("client_id");
    Ok(match (basic, secret, assertion) {
        (Some((id, secret)), _, _) => {
            if body_id.is_some_and(|b| b != id) {
                return Err(OAuthError::invalid_request("client_id differs from the authenticated client").into());
            }
            Presented::Basic { id, secret }
        }
        (_, Some(secret), _) => Presented::Post { id: params.require("client_id")?, secret },
        (_, _, Some(assertion)) => {
            if params.get("client_assertion_type") != Some(JWT_BEARER_ASSERTION) {
                return Err(
                    OAuthError::invalid_request("client_assertion_type must be the RFC 7523 JWT bearer type").into()
                );
            }
            Presented::Assertion { assertion, id: body_id }
        }
        _ => Presented::None { id: params.require("client_id")? },
    })
}

/// Find a client that may authenticate now with `method`.
async fn usable_client(
    state: &AppState,
    id: &str,
    method: ClientAuthMethod,
    basic: bool,
) -> Result<Arc<Client>, ApiError> {
    let client = match crate::clients::find(state, id).await {
        Ok(Some(client)) => client,
        Ok(None) => return Err(failure(basic)),
        Err(ClientError::Store(e)) => return Err(e.into()),
        Err(e @ ClientError::Document(_)) => {
            tracing::info!(client_id = %id, error = %e, "client metadata document refused");
            return Err(failure(basic));
        }
    };
    let expired = client.expires_at.is_some_and(|e| e <= state.clock.now());
    if client.disabled || expired || client.metadata.token_endpoint_auth_method != method {
        return Err(failure(basic));
    }
    Ok(client)
}

/// The endpoints that authenticate clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/token`.
    Token,
    /// `/introspect`.
    Introspect,
    /// `/revoke`.
    Revoke,
    /// `/device_authorization`.
    DeviceAuthorization,
}

impl Endpoint {
    /// Its path below the issuer.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Token => "token",
            Endpoint::Introspect => "introspect",
            Endpoint::Revoke => "revoke",
            Endpoint::DeviceAuthorization => "device_authorization",
        }
    }
}

/// Authenticate the client of a request to `endpoint`. A client assertion's `aud` may name that endpoint's
/// URL or the issuer (RFC 7523 §3).
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    endpoint: Endpoint,
) -> Result<AuthenticatedClient, ApiError> {
    match presented(headers, params)? {
        Presented::Basic { id, secret } => {
            let client = usable_client(state, &id, ClientAuthMethod::ClientSecretBasic, true).await?;
            check_secret(&client, &secret, true)?;
            Ok(AuthenticatedClient { client, method: ClientAuthMethod::ClientSecretBasic })
        }
        Presented::Post { id, secret } => {
            let client = usable_client(state, id, ClientAuthMethod::ClientSecretPost, false).await?;
            check_secret(&client, secret, false)?;
            Ok(AuthenticatedClient { client, method: ClientAuthMethod::ClientSecretPost })
        }
        Presented::Assertion { assertion, id } => {
            let audiences = [state.endpoint(endpoint.path()), state.issuer_string()];
            let client =
                crate::assertion::verify(state, assertion, id, &audiences.each_ref().map(String::as_str)).await?;
            Ok(AuthenticatedClient { client, method: ClientAuthMethod::PrivateKeyJwt })
        }
        Presented::None { id } => {
            let client = usable_client(state, id, ClientAuthMethod::None, false).await?;
            Ok(AuthenticatedClient { client, method: ClientAuthMethod::None })
        }
    }
}

fn check_secret(client: &Client, secret: &str, basic: bool) -> Result<(), ApiError> {
    // TokenHash equality is constant-time; only hashes are stored.
    match client.secret_hash {
        Some(hash) if hash.matches(secret) => Ok(()),
        _ => Err(failure(basic)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(v: &str) -> HeaderValue {
        HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(v))).unwrap()
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        assert_eq!(
            parse_basic(&basic("my%3Aclient:p%40ss+word")).unwrap(),
            Some(("my:client".to_owned(), "p@ss word".to_owned()))
        );
        assert!(parse_basic(&basic("no-colon")).is_err());
        assert!(parse_basic(&basic(":secret")).is_err());
        assert!(parse_basic(&HeaderValue::from_static("Basic !!!")).is_err());
        assert_eq!(parse_basic(&HeaderValue::from_static("Bearer abc")).unwrap(), None);
        // Only `+` and `%XX` are decoded; what would split a form (`&`, `=`) is kept, as is a bad escape.
        assert_eq!(parse_basic(&basic("a+b:x&y=z%zz%41")).unwrap(), Some(("a b".to_owned(), "x&y=z%zzA".to_owned())));
        assert_eq!(parse_basic(&basic("plain:se:cret")).unwrap(), Some(("plain".to_owned(), "se:cret".to_owned())));
        // Bytes that are not UTF-8 once decoded become U+FFFD, as `form_urlencoded` decodes them.
        assert_eq!(parse_basic(&basic("id:%FFx")).unwrap(), Some(("id".to_owned(), "\u{FFFD}x".to_owned())));
    }

    #[test]
    fn exactly_one_method() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, basic("a:b"));
        let params = Params::parse(b"client_secret=x&client_id=a").unwrap();
        assert!(presented(&headers, &params).is_err());
        let params = Params::parse(b"client_id=other").unwrap();
        assert!(presented(&headers, &params).is_err(), "body client_id must agree with Basic");
        assert!(presented(&headers, &Params::default()).is_ok());
        headers.append(header::AUTHORIZATION, basic("a:b"));
        assert!(presented(&headers, &Params::default()).is_err(), "a repeated Authorization header is refused");
        let params = Params::parse(b"client_secret=x&client_assertion=y&client_id=a").unwrap();
        assert!(presented(&HeaderMap::new(), &params).is_err());
        let params = Params::parse(b"client_assertion=y&client_assertion_type=other").unwrap();
        assert!(presented(&HeaderMap::new(), &params).is_err());
        let params = Params::parse(b"grant_type=x").unwrap();
        assert!(presented(&HeaderMap::new(), &params).is_err(), "a public client must name itself");
    }
}
