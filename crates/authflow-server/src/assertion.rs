//! `private_key_jwt` client authentication (RFC 7523 §2.2 and §3).
//!
//! The assertion is checked by the core (`authflow_core::jose::assertion`): allowed asymmetric algorithms
//! only, `iss` = `sub` = client id, `aud` naming this endpoint or the issuer, a bounded `exp`. Its `jti` is then
//! remembered until the assertion could no longer be accepted anyway (`exp` plus the clock skew), so a
//! replayed assertion fails on every replica that shares the store.

use authflow_core::jose::assertion::validate_client_assertion;
use authflow_core::jose::{JwkSet, MAX_TOKEN_LEN};
use authflow_core::{ClientAuthMethod, ErrorCode, OAuthError};
use authflow_store::Client;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::error::ApiError;
use crate::AppState;

fn invalid_client(why: &'static str) -> ApiError {
    OAuthError::with_description(ErrorCode::InvalidClient, why).into()
}

/// The unverified `sub` of an assertion: only used to find whose keys to verify it with.
fn claimed_subject(assertion: &str) -> Option<String> {
    if assertion.len() > MAX_TOKEN_LEN {
        return None;
    }
    let payload = assertion.split('.').nth(1)?;
    let json: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    json.get("sub")?.as_str().map(str::to_owned)
}

pub(crate) async fn verify(
    state: &AppState,
    assertion: &str,
    client_id: Option<&str>,
    audiences: &[&str],
) -> Result<Client, ApiError> {
    let claimed = claimed_subject(assertion).ok_or_else(|| invalid_client("malformed client assertion"))?;
    if client_id.is_some_and(|id| id != claimed) {
        return Err(invalid_client("client_id differs from the assertion's subject"));
    }
    let now = state.clock.now();
    let client = state
        .store
        .find_client(&claimed)
        .await?
        .filter(|c| !c.disabled && c.expires_at.is_none_or(|e| e > now))
        .filter(|c| c.metadata.token_endpoint_auth_method == ClientAuthMethod::PrivateKeyJwt)
        .ok_or_else(|| invalid_client("client authentication failed"))?;
    let keys = match &client.metadata.jwks {
        Some(jwks) => {
            JwkSet::from_value(jwks.clone()).map_err(|_| invalid_client("the client's registered JWKS is invalid"))?
        }
        None => {
            return Err(invalid_client("the client has no inline jwks (jwks_uri is not fetched by this server yet)"))
        }
    };
    let checked = validate_client_assertion(
        assertion,
        &keys,
        &client.client_id,
        audiences,
        now,
        state.policy.assertion_max_lifetime,
    )
    .map_err(|e| {
        tracing::info!(client_id = %client.client_id, error = %e, "client assertion refused");
        invalid_client("client assertion refused")
    })?;
    let key = format!("jti:{}:{}", client.client_id, checked.jti);
    if !state.store.remember_once(&key, checked.replay_until, now).await? {
        tracing::warn!(client_id = %client.client_id, "client assertion replayed");
        return Err(invalid_client("client assertion already used"));
    }
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_is_peeked_without_trusting_it() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"abc","iss":"abc"}"#);
        assert_eq!(claimed_subject(&format!("e30.{payload}.sig")), Some("abc".into()));
        assert_eq!(claimed_subject("garbage"), None);
        assert_eq!(claimed_subject("a.!!.c"), None);
        assert_eq!(claimed_subject(&format!("a.{}.c", "A".repeat(MAX_TOKEN_LEN))), None);
    }
}
