//! `private_key_jwt` client authentication (RFC 7523 §2.2 and §3).
//!
//! The assertion is checked by the core (`authflow_core::jose::assertion`): allowed asymmetric algorithms
//! only, `iss` = `sub` = client id, `aud` naming this endpoint or the issuer, a bounded `exp`. Its `jti` is then
//! remembered until the assertion could no longer be accepted anyway (`exp` plus the clock skew), so a
//! replayed assertion fails on every replica that shares the store.

use std::sync::Arc;

use authflow_core::jose::assertion::validate_client_assertion;
use authflow_core::jose::{JwkSet, MAX_TOKEN_LEN};
use authflow_core::{ClientAuthMethod, ErrorCode, OAuthError};
use authflow_store::Client;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::clients::{self, ClientError};
use crate::error::ApiError;
use crate::observe::AUDIT;
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
) -> Result<Arc<Client>, ApiError> {
    let claimed = claimed_subject(assertion).ok_or_else(|| invalid_client("malformed client assertion"))?;
    if client_id.is_some_and(|id| id != claimed) {
        return Err(invalid_client("client_id differs from the assertion's subject"));
    }
    let now = state.clock.now();
    let client = match clients::find(state, &claimed).await {
        Ok(found) => found,
        Err(ClientError::Store(e)) => return Err(e.into()),
        Err(e @ ClientError::Document(_)) => {
            tracing::info!(client_id = %claimed, error = %e, "client metadata document refused");
            None
        }
    }
    .filter(|c| !c.disabled && c.expires_at.is_none_or(|e| e > now))
    .filter(|c| c.metadata.token_endpoint_auth_method == ClientAuthMethod::PrivateKeyJwt)
    .ok_or_else(|| invalid_client("client authentication failed"))?;
    let check = |keys: &JwkSet| {
        validate_client_assertion(
            assertion,
            keys,
            &client.client_id,
            audiences,
            now,
            state.policy.assertion_max_lifetime,
        )
    };
    let refused = |e: &dyn std::fmt::Display| {
        tracing::info!(client_id = %client.client_id, error = %e, "client assertion refused");
        invalid_client("client assertion refused")
    };
    let keys = clients::keys(state, &client, false).await.map_err(|e| refused(&e))?;
    let checked = match check(&keys) {
        Ok(checked) => checked,
        // The client may have rotated its keys behind its jwks_uri: look once more (rate-limited per URL).
        Err(_) if client.metadata.jwks_uri.is_some() => {
            let fresh = clients::keys(state, &client, true).await.map_err(|e| refused(&e))?;
            check(&fresh).map_err(|e| refused(&e))?
        }
        Err(e) => return Err(refused(&e)),
    };
    let key = format!("jti:{}:{}", client.client_id, checked.jti);
    if !state.remember_once(&key, checked.replay_until).await? {
        tracing::warn!(target: AUDIT, client_id = %client.client_id, "client assertion replayed");
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
