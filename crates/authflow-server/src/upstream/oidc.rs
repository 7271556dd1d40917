//! OpenID Connect at the provider: discovery (OpenID Connect Discovery 1.0 §4), the authorization request,
//! the code exchange, and ID token validation (OpenID Connect Core 1.0 §3.1.3.7).

use std::time::Duration;

use authflow_core::jose::{decode, Algorithm, JoseError, JwkSet, Validation};
use authflow_core::token::constant_time_eq;
use axum::http::{header, HeaderMap, HeaderValue};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;
use url::Url;

use super::routes::UpstreamError;
use super::state::Pending;
use super::{url_tag, Identity, OidcUpstream, UpstreamClientAuth};
use crate::AppState;

/// The largest discovery document or key set read from a provider.
const MAX_DOCUMENT_BYTES: usize = 64 * 1024;
/// The longest ID token lifetime accepted: they are meant for the moment of sign-in.
const MAX_ID_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The algorithms an upstream ID token may be signed with: RS256 (OpenID Connect's default, and all that
/// Google and Entra ID use), PS256, ES256 and EdDSA. Narrowed per provider to those its discovery document
/// lists in `id_token_signing_alg_values_supported`.
pub(crate) const ID_TOKEN_ALGORITHMS: [Algorithm; 4] =
    [Algorithm::RS256, Algorithm::PS256, Algorithm::ES256, Algorithm::EdDSA];

/// What discovery says about the provider.
#[derive(Debug)]
pub(crate) struct Discovered {
    pub authorization_endpoint: Url,
    token_endpoint: Url,
    jwks_uri: Url,
    /// The ID token algorithms accepted from this provider: [`ID_TOKEN_ALGORITHMS`], less those it says it
    /// never uses.
    algorithms: Vec<Algorithm>,
}

/// The ID token algorithms to accept from a provider whose discovery document says `advertised` for
/// `id_token_signing_alg_values_supported` (required by OpenID Connect Discovery §3, but absent from a few
/// providers' documents: then all of [`ID_TOKEN_ALGORITHMS`]). Empty when the provider uses none of them.
fn accepted_algorithms(advertised: Option<&Value>) -> Vec<Algorithm> {
    match advertised.and_then(Value::as_array) {
        Some(list) => {
            ID_TOKEN_ALGORITHMS.into_iter().filter(|a| list.iter().any(|v| v.as_str() == Some(a.as_str()))).collect()
        }
        None => ID_TOKEN_ALGORITHMS.to_vec(),
    }
}

/// The provider's algorithm names for an error message: names only, and a few of them.
fn advertised_names(advertised: Option<&Value>) -> String {
    let names: Vec<&str> = advertised
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|n| n.len() <= 16 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'+'))
        .take(8)
        .collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

fn names(algorithms: &[Algorithm]) -> String {
    algorithms.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ")
}

/// Read and check the provider's metadata (cached as its caching headers allow).
pub(crate) async fn discover(state: &AppState, p: &OidcUpstream) -> Result<Discovered, UpstreamError> {
    let unusable =
        |why: String| UpstreamError::unavailable(format!("{}'s configuration cannot be used: {why}.", p.name()));
    let url = Url::parse(&format!("{}/.well-known/openid-configuration", p.issuer.trim_end_matches('/')))
        .map_err(|e| unusable(e.to_string()))?;
    let doc = state
        .remote
        .get(&url, state.clock.now(), MAX_DOCUMENT_BYTES, false)
        .await
        .map_err(|e| unusable(e.to_string()))?;
    // OpenID Connect Discovery §4.3: the issuer in the document is exactly the one configured.
    if doc.get("issuer").and_then(Value::as_str) != Some(p.issuer.as_str()) {
        return Err(unusable("its discovery document names another issuer".into()));
    }
    let endpoint = |name: &str| {
        doc.get(name)
            .and_then(Value::as_str)
            .and_then(|u| Url::parse(u).ok())
            .filter(|u| matches!(u.scheme(), "https" | "http") && u.fragment().is_none())
            .ok_or_else(|| unusable(format!("{name} is missing or not a URL")))
    };
    let advertised = doc.get("id_token_signing_alg_values_supported");
    let algorithms = accepted_algorithms(advertised);
    if algorithms.is_empty() {
        return Err(unusable(format!(
            "it signs ID tokens with {} only, and authflow accepts {}",
            advertised_names(advertised),
            names(&ID_TOKEN_ALGORITHMS)
        )));
    }
    Ok(Discovered {
        authorization_endpoint: endpoint("authorization_endpoint")?,
        token_endpoint: endpoint("token_endpoint")?,
        jwks_uri: endpoint("jwks_uri")?,
        algorithms,
    })
}

impl OidcUpstream {
    fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }

    /// The scopes to ask for, `openid` first and always.
    pub(crate) fn scope(&self) -> String {
        let mut scopes = vec!["openid"];
        scopes.extend(self.scopes.iter().map(String::as_str).filter(|s| *s != "openid"));
        scopes.join(" ")
    }
}

/// Exchange the code and validate the ID token; returns the identity it vouches for.
pub(crate) async fn finish(
    state: &AppState,
    p: &OidcUpstream,
    pending: &Pending,
    code: &str,
    redirect_uri: &str,
) -> Result<Identity, UpstreamError> {
    let discovered = discover(state, p).await?;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", pending.verifier.as_str()),
    ];
    let mut headers = HeaderMap::new();
    match p.client_auth {
        UpstreamClientAuth::ClientSecretBasic => {
            // RFC 6749 §2.3.1: both halves form-encoded before they are joined.
            let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let basic = STANDARD.encode(format!("{}:{}", enc(&p.client_id), enc(p.client_secret.expose())));
            let value = HeaderValue::from_str(&format!("Basic {basic}"))
                .map_err(|_| UpstreamError::unavailable("The client credentials cannot be sent.".to_owned()))?;
            headers.insert(header::AUTHORIZATION, value);
        }
        UpstreamClientAuth::ClientSecretPost => {
            form.push(("client_id", &p.client_id));
            form.push(("client_secret", p.client_secret.expose()));
        }
    }
    let answer = state
        .upstream
        .http
        .post_form(&discovered.token_endpoint, &form, headers)
        .await
        .map_err(|e| UpstreamError::unavailable(format!("{} could not be reached: {e}.", p.name())))?;
    let body: Value = answer.json().unwrap_or(Value::Null);
    if !answer.status.is_success() {
        let code = body.get("error").and_then(Value::as_str).unwrap_or("no error code");
        return Err(UpstreamError::bad_gateway(format!(
            "{} refused to complete the sign-in (HTTP {}, {code}).",
            p.name(),
            answer.status.as_u16()
        )));
    }
    let id_token = body
        .get("id_token")
        .and_then(Value::as_str)
        .ok_or_else(|| UpstreamError::bad_gateway(format!("{} sent no ID token.", p.name())))?;
    verify_id_token(state, p, &discovered, id_token, &pending.nonce).await
}

async fn verify_id_token(
    state: &AppState,
    p: &OidcUpstream,
    discovered: &Discovered,
    id_token: &str,
    nonce: &str,
) -> Result<Identity, UpstreamError> {
    let now = state.clock.now();
    let validation = Validation::new(now)
        .algorithms(&discovered.algorithms)
        .issuer(p.issuer.clone())
        .audience(p.client_id.clone())
        .require("sub")
        .require("iat")
        .leeway(state.policy.clock_skew)
        .max_lifetime(MAX_ID_TOKEN_LIFETIME);
    let mut verified = None;
    // A key the cached set lacks may be a rotation: fetch the set once more (rate-limited by the cache).
    for refresh in [false, true] {
        let keys = state
            .remote
            .get(&discovered.jwks_uri, now, MAX_DOCUMENT_BYTES, refresh)
            .await
            .map_err(|e| UpstreamError::unavailable(format!("{}'s keys cannot be read: {e}.", p.name())))?;
        let keys = JwkSet::from_value(Value::Object((*keys).clone()))
            .map_err(|e| UpstreamError::unavailable(format!("{}'s keys cannot be used: {e}.", p.name())))?;
        match decode(id_token, &keys, &validation) {
            Err(JoseError::UnknownKey) if !refresh => continue,
            result => {
                verified = Some(result);
                break;
            }
        }
    }
    let invalid = |why: &str| UpstreamError::unverified(format!("The ID token from {} is not valid: {why}.", p.name()));
    let claims = match verified {
        Some(Ok(v)) => v.claims,
        Some(Err(JoseError::WrongIssuer)) => return Err(invalid("it was issued by another issuer")),
        Some(Err(JoseError::WrongAudience)) => return Err(invalid("it was issued for another client")),
        Some(Err(JoseError::UnsupportedAlgorithm)) => {
            return Err(invalid(&format!(
                "it is not signed with an accepted algorithm ({})",
                names(&discovered.algorithms)
            )))
        }
        Some(Err(e)) => return Err(invalid(&e.to_string())),
        None => return Err(invalid("no key of the provider verifies it")),
    };
    // §3.1.3.7 rule 4-5: with several audiences, the authorized party must be this client.
    let several = claims.get("aud").and_then(Value::as_array).is_some_and(|a| a.len() > 1);
    let azp = claims.get("azp").and_then(Value::as_str);
    if (several || azp.is_some()) && azp != Some(p.client_id.as_str()) {
        return Err(invalid("it was issued for another client (azp)"));
    }
    // §3.1.3.7 rule 11: the nonce ties the token to this browser's round trip.
    let echoed = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
    if !constant_time_eq(echoed.as_bytes(), nonce.as_bytes()) {
        return Err(invalid("it does not belong to this sign-in (nonce mismatch)"));
    }
    let sub = claims.get("sub").and_then(Value::as_str).filter(|s| !s.is_empty() && s.len() <= 255);
    let sub = sub.ok_or_else(|| invalid("its subject is empty or too long"))?.to_owned();
    let verified_email = claims.get("email_verified").and_then(Value::as_bool) == Some(true);
    let emails = match claims.get("email").and_then(Value::as_str) {
        Some(email) if verified_email => vec![email.to_owned()],
        _ => Vec::new(),
    };
    Ok(Identity { link: format!("oidc:{}:{sub}", url_tag(&p.issuer)), subject: sub, login: None, emails, orgs: vec![] })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_providers_advertised_algorithms_narrow_the_accepted_ones() {
        use Algorithm::*;
        assert_eq!(accepted_algorithms(None), vec![RS256, PS256, ES256, EdDSA]);
        assert_eq!(accepted_algorithms(Some(&json!("RS256"))), vec![RS256, PS256, ES256, EdDSA], "not a list");
        // Google and Entra ID: RS256 only.
        assert_eq!(accepted_algorithms(Some(&json!(["RS256"]))), vec![RS256]);
        // Keycloak lists many, some of which authflow does not verify.
        let keycloak = json!([
            "PS384", "RS384", "EdDSA", "ES384", "HS256", "HS512", "ES256", "RS256", "HS384", "ES512", "PS256", "PS512",
            "RS512", "none"
        ]);
        assert_eq!(accepted_algorithms(Some(&keycloak)), vec![RS256, PS256, ES256, EdDSA]);
        // Nothing in common: the provider cannot be used, and the message says why.
        let odd = json!(["HS256", "RS512", "none", 7, "<script>"]);
        assert!(accepted_algorithms(Some(&odd)).is_empty());
        assert_eq!(advertised_names(Some(&odd)), "HS256, RS512, none");
        assert_eq!(advertised_names(Some(&json!([]))), "none");
        assert_eq!(names(&ID_TOKEN_ALGORITHMS), "RS256, PS256, ES256, EdDSA");
    }
}
