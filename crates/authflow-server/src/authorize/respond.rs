//! Answers sent back to the client at its redirect URI (RFC 6749 §4.1.2, RFC 9207): a code or an error,
//! always with `state` echoed and `iss`, by `303 See Other` so a form post becomes a `GET`.

use authflow_core::{ErrorCode, OAuthError, SecretToken, TokenKind};
use authflow_store::AuthorizationCode;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::request::AuthorizationRequest;
use super::Failure;
use crate::error::no_store;
use crate::observe::AUDIT;
use crate::session::SignedIn;
use crate::{issue, AppState, OsEntropy};

/// A `303 See Other` to `location`, never cached, never leaking the URL as a referrer.
pub(crate) fn see_other(location: &str) -> Response {
    let Ok(location) = HeaderValue::from_str(location) else {
        // Every location is built from validated URIs and encoded parameters; refuse rather than guess.
        return (StatusCode::INTERNAL_SERVER_ERROR, "invalid redirect location").into_response();
    };
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, location);
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    no_store(headers);
    response
}

/// `uri` with `params` appended to its query (it has no fragment: registered redirect URIs never do).
fn with_params(uri: &str, params: &[(&str, &str)]) -> String {
    let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
    let separator = match uri.find('?') {
        None => "?",
        Some(_) if uri.ends_with('?') || uri.ends_with('&') => "",
        Some(_) => "&",
    };
    format!("{uri}{separator}{encoded}")
}

/// Send `params`, the client's `state` and the issuer (RFC 9207) to the redirect URI.
fn to_client(state: &AppState, redirect_uri: &str, client_state: Option<&str>, params: &[(&str, &str)]) -> Response {
    let issuer = state.issuer_string();
    let mut all = params.to_vec();
    if let Some(s) = client_state {
        all.push(("state", s));
    }
    all.push(("iss", &issuer));
    see_other(&with_params(redirect_uri, &all))
}

/// Send an error to the client (RFC 6749 §4.1.2.1).
pub(crate) fn error_to_client(
    state: &AppState,
    redirect_uri: &str,
    client_state: Option<&str>,
    error: &OAuthError,
) -> Response {
    let params = [("error", error.code().as_str()), ("error_description", error.description())];
    to_client(state, redirect_uri, client_state, &params)
}

/// The user said no.
pub(crate) fn access_denied(state: &AppState, request: &AuthorizationRequest) -> Response {
    let error = OAuthError::with_description(ErrorCode::AccessDenied, "the user denied the request");
    error_to_client(state, &request.redirect_uri, request.state.as_deref(), &error)
}

/// Issue a code for `request`, approved by the signed-in user, and send it to the client. Only the code's
/// hash is stored, with everything the token request must repeat or prove.
pub(crate) async fn issue_code(
    state: &AppState,
    request: &AuthorizationRequest,
    signed_in: &SignedIn,
) -> Result<Response, Failure> {
    let client_id = &request.client.client_id;
    let user_id = &signed_in.user.id;
    let grant = issue::new_grant(state, client_id, Some(user_id), state.policy.grant_ttl).await?;
    let now = state.clock.now();
    let code = SecretToken::generate(TokenKind::AuthorizationCode, now, &mut OsEntropy);
    state
        .store
        .insert_code(&AuthorizationCode {
            code_hash: code.hash(),
            grant_id: grant.id,
            client_id: client_id.clone(),
            subject: user_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            scope: request.scope.clone(),
            resources: request.resources.clone(),
            code_challenge: request.pkce.challenge().as_str().to_owned(),
            code_challenge_method: request.pkce.method(),
            nonce: request.nonce.clone(),
            auth_time: signed_in.session.auth_time,
            issued_at: now,
            expires_at: now + state.policy.code_ttl,
        })
        .await?;
    tracing::info!(target: AUDIT, client_id = %client_id, "authorization code issued");
    Ok(to_client(state, &request.redirect_uri, request.state.as_deref(), &[("code", code.expose())]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_appended_to_any_query() {
        let p = [("code", "a b"), ("state", "x&y=z")];
        assert_eq!(with_params("http://127.0.0.1/cb", &p), "http://127.0.0.1/cb?code=a+b&state=x%26y%3Dz");
        assert_eq!(with_params("https://app.example/cb?tenant=1", &p[..1]), "https://app.example/cb?tenant=1&code=a+b");
        assert_eq!(with_params("https://app.example/cb?", &p[..1]), "https://app.example/cb?code=a+b");
        assert_eq!(with_params("https://app.example/cb?t=1&", &p[..1]), "https://app.example/cb?t=1&code=a+b");
        assert_eq!(with_params("com.example.app:/cb", &p[..1]), "com.example.app:/cb?code=a+b");
    }
}
