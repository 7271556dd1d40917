//! The authorization request (OAuth 2.1 §4.1.1, RFC 7636, RFC 8707), validated in full wherever it appears:
//! the query of `GET /authorize`, and the copy the sign-in and consent forms carry back. Nothing about a
//! request is kept on the server between steps, so any replica can serve any step.

use std::sync::Arc;

use authflow_core::pkce::PkceChallenge;
use authflow_core::validation::redirect_uri::RedirectUri;
use authflow_core::{ErrorCode, GrantType, OAuthError, Scope, UnixTime};
use authflow_store::{Client, Consent};

use super::Failure;
use crate::clients::ClientError;
use crate::pages::Problem;
use crate::params::Params;
use crate::{rules, AppState};

/// A request that passed every check.
#[derive(Debug, Clone)]
pub(crate) struct AuthorizationRequest {
    /// The parameters as received, to carry through the forms.
    pub params: Params,
    /// The client, enabled and unexpired.
    pub client: Arc<Client>,
    /// The redirect URI exactly as sent (it matches a registered one).
    pub redirect_uri: String,
    /// The client's `state`, echoed back.
    pub state: Option<String>,
    /// The scope the tokens will carry.
    pub scope: Option<Scope>,
    /// The RFC 8707 audience.
    pub resources: Vec<String>,
    /// The PKCE challenge.
    pub pkce: PkceChallenge,
    /// The OpenID Connect nonce.
    pub nonce: Option<String>,
}

impl AuthorizationRequest {
    /// The request re-encoded as a query string.
    pub fn encoded(&self) -> String {
        self.params.to_query()
    }

    /// The name to show for the client.
    pub fn client_name(&self) -> &str {
        self.client.metadata.client_name.as_deref().filter(|n| !n.trim().is_empty()).unwrap_or(&self.client.client_id)
    }

    /// Whether a remembered consent covers this request: no scope beyond it, and the same audience or a part
    /// of it (a request without `resource`, for an unrestricted token, needs a consent that was given
    /// without one too).
    pub fn is_covered_by(&self, consent: &Consent) -> bool {
        let scope = match (&self.scope, &consent.scope) {
            (None, None) => true,
            (Some(asked), Some(given)) => asked.is_subset_of(given),
            _ => false,
        };
        let resources = if self.resources.is_empty() {
            consent.resources.is_empty()
        } else {
            self.resources.iter().all(|r| consent.resources.contains(r))
        };
        scope && resources
    }

    /// The consent to remember when `user_id` approves this request.
    pub fn consent(&self, user_id: &str, now: UnixTime, state: &AppState) -> Consent {
        Consent {
            user_id: user_id.to_owned(),
            client_id: self.client.client_id.clone(),
            scope: self.scope.clone(),
            resources: self.resources.clone(),
            granted_at: now,
            expires_at: now + state.policy.consent_ttl,
        }
    }
}

/// Validate `params`. Problems with `client_id` or `redirect_uri` are shown to the user and never redirected
/// (RFC 6749 §4.1.2.1: the redirect URI cannot be trusted yet); every later one is sent back to the client.
pub(crate) async fn validate(state: &AppState, params: Params) -> Result<AuthorizationRequest, Failure> {
    let client = client(state, &params).await?;
    let redirect_uri = redirect_uri(state, &client, &params)?.to_owned();
    let client_state = params.get("state").map(str::to_owned);
    let back = |error: OAuthError| Failure::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: client_state.clone(),
        error,
    };

    match params.get("response_type") {
        Some("code") => {}
        Some(_) => return Err(back(OAuthError::new(ErrorCode::UnsupportedResponseType))),
        None => return Err(back(OAuthError::invalid_request("response_type is required"))),
    }
    match params.get("response_mode") {
        None | Some("query") => {}
        Some(_) => return Err(back(OAuthError::invalid_request("only response_mode=query is supported"))),
    }
    let pkce = state
        .policy
        .pkce
        .accept_challenge(params.get("code_challenge"), params.get("code_challenge_method"))
        .map_err(|e| back(e.into()))?;
    if !client.metadata.grant_types.contains(&GrantType::AuthorizationCode) {
        return Err(back(OAuthError::with_description(
            ErrorCode::UnauthorizedClient,
            "this client may not use the authorization code grant",
        )));
    }
    let scope = rules::decide_scope(state, &client, params.get("scope")).map_err(back)?;
    let resources = rules::decide_resources(state, &client, params.get("resource")).map_err(back)?;
    let nonce = params.get("nonce").map(str::to_owned);
    Ok(AuthorizationRequest { client, redirect_uri, state: client_state, scope, resources, pkce, nonce, params })
}

/// The client the request names: it must exist, be enabled and not have expired.
async fn client(state: &AppState, params: &Params) -> Result<Arc<Client>, Failure> {
    let id = params
        .get("client_id")
        .ok_or_else(|| Problem::bad_request("The request does not say which application is asking (no client_id)."))?;
    let unknown = || Problem::bad_request("The application that sent you here is not registered with this server.");
    let client = match crate::clients::find(state, id).await {
        Ok(Some(client)) => client,
        Ok(None) => return Err(unknown().into()),
        Err(ClientError::Store(e)) => return Err(e.into()),
        Err(ClientError::Document(why)) => {
            return Err(Problem::bad_request(format!(
                "The application's metadata document at {id} cannot be used: {why}."
            ))
            .into())
        }
    };
    let expired = client.expires_at.is_some_and(|e| e <= state.clock.now());
    if client.disabled || expired {
        return Err(Problem::bad_request("The application that sent you here has been disabled on this server.").into());
    }
    Ok(client)
}

/// The request's `redirect_uri`: required, and matching one the client registered (exactly, or on another
/// port for a loopback IP literal, RFC 8252 §7.3).
fn redirect_uri<'a>(state: &AppState, client: &Client, params: &'a Params) -> Result<&'a str, Failure> {
    let requested = params
        .get("redirect_uri")
        .ok_or_else(|| Problem::bad_request("The request does not say where to return to (no redirect_uri)."))?;
    let registered = client
        .metadata
        .redirect_uris
        .iter()
        .filter_map(|r| RedirectUri::parse(r, &state.policy.redirect_uris).ok())
        .any(|r| r.matches(requested));
    if !registered {
        return Err(Problem::bad_request(
            "The address to return to (redirect_uri) is not registered for this application.",
        )
        .into());
    }
    Ok(requested)
}
