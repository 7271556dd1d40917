//! RFC 7591 §2 client metadata: every field checked by type and value, unknown fields ignored (§2).

use authflow_core::jose::{Jwk, JwkSet};
use authflow_core::validation::redirect_uri::{RedirectUri, RedirectUriPolicy};
use authflow_core::{ClientAuthMethod, ErrorCode, GrantType, OAuthError, Scope};
use authflow_store::ClientMetadata;
use serde_json::{Map, Value};

/// Bounds on hostile registrations.
const MAX_REDIRECT_URIS: usize = 16;
const MAX_STRING: usize = 2048;
const MAX_CONTACTS: usize = 16;

/// What a registration asks for, validated.
#[derive(Debug, Clone)]
pub struct Requested {
    /// The metadata to store.
    pub metadata: ClientMetadata,
}

fn bad(why: impl Into<String>) -> OAuthError {
    OAuthError::with_description(ErrorCode::InvalidClientMetadata, why.into())
}

fn bad_redirect(why: impl Into<String>) -> OAuthError {
    OAuthError::with_description(ErrorCode::InvalidRedirectUri, why.into())
}

fn string<'a>(body: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, OAuthError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= MAX_STRING && !s.chars().any(char::is_control) => Ok(Some(s)),
        Some(Value::String(_)) => Err(bad(format!("{field} is too long or contains control characters"))),
        Some(_) => Err(bad(format!("{field} must be a string"))),
    }
}

fn strings<'a>(body: &'a Map<String, Value>, field: &str, max: usize) -> Result<Option<Vec<&'a str>>, OAuthError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) if items.len() <= max => items
            .iter()
            .map(|v| match v {
                Value::String(s) if s.len() <= MAX_STRING => Ok(s.as_str()),
                _ => Err(bad(format!("{field} must be an array of strings"))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(Value::Array(_)) => Err(bad(format!("{field} has more than {max} entries"))),
        Some(_) => Err(bad(format!("{field} must be an array of strings"))),
    }
}

/// A web page URL shown to users (client_uri, logo_uri, tos_uri, policy_uri): https only, so the consent page
/// never links to `javascript:` or plain-text pages.
fn web_url(body: &Map<String, Value>, field: &str) -> Result<Option<Value>, OAuthError> {
    let Some(s) = string(body, field)? else { return Ok(None) };
    match url::Url::parse(s) {
        Ok(u) if u.scheme() == "https" && u.host().is_some() && u.username().is_empty() => {
            Ok(Some(Value::String(s.into())))
        }
        _ => Err(bad(format!("{field} must be an https URL"))),
    }
}

/// An inline `jwks` (RFC 7591 §2): a JWK set whose every key is valid — an RSA modulus under 2048 bits, a
/// point off its curve or a private key is refused here, where the client learns of it, rather than dropped
/// and found missing at its first assertion — and at least one of which authflow verifies with (RS256, PS256,
/// ES256 or EdDSA). Keys of other types (e.g. `P-384`, or encryption keys) may sit beside them.
fn client_jwks(value: &Value) -> Result<Value, OAuthError> {
    // The shape and the key count first.
    JwkSet::from_value(value.clone()).map_err(|e| bad(format!("jwks: {e}")))?;
    let entries = value.get("keys").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let mut usable = false;
    for (i, entry) in entries.iter().enumerate() {
        let key = Jwk::from_value(entry.clone()).map_err(|e| bad(format!("jwks: key {i}: {e}")))?;
        usable |= key.is_supported() && key.key_use().is_none_or(|u| u == "sig");
    }
    if !usable {
        return Err(bad("jwks holds no usable signing key (RSA of 2048 bits or more, P-256 or Ed25519)"));
    }
    Ok(value.clone())
}

/// Validate a registration (or an RFC 7592 update) body. `known_scopes` empty means any scope.
pub fn validate(
    body: &Value,
    redirect_policy: &RedirectUriPolicy,
    known_scopes: &[String],
) -> Result<Requested, OAuthError> {
    let Value::Object(body) = body else { return Err(bad("the registration must be a JSON object")) };
    if body.contains_key("software_statement") {
        return Err(OAuthError::with_description(
            ErrorCode::UnapprovedSoftwareStatement,
            "software statements are not accepted by this server",
        ));
    }

    let method = match string(body, "token_endpoint_auth_method")? {
        // RFC 7591 §2 defaults to client_secret_basic.
        None => ClientAuthMethod::ClientSecretBasic,
        Some(m) => m.parse().map_err(|_| bad(format!("unsupported token_endpoint_auth_method {m:?}")))?,
    };
    let grant_types: Vec<GrantType> = match strings(body, "grant_types", 8)? {
        None => vec![GrantType::AuthorizationCode],
        Some(list) if list.is_empty() => return Err(bad("grant_types must not be empty")),
        Some(list) => {
            let mut out = Vec::new();
            for g in list {
                let g: GrantType = g.parse().map_err(|_| bad(format!("unsupported grant type {g:?}")))?;
                if !out.contains(&g) {
                    out.push(g);
                }
            }
            out
        }
    };
    // Absent, response_types follows the grant types (RFC 7591 §2.1's default "code" pairs with the default grant).
    let code_grant = grant_types.contains(&GrantType::AuthorizationCode);
    let response_types =
        strings(body, "response_types", 4)?.unwrap_or_else(|| if code_grant { vec!["code"] } else { vec![] });
    if response_types.iter().any(|r| *r != "code") {
        return Err(bad("only the \"code\" response type is supported"));
    }
    // §2.1: the code response type and the authorization_code grant go together.
    if code_grant == response_types.is_empty() {
        return Err(bad("response_types \"code\" and grant type authorization_code must be registered together"));
    }

    let redirect_uris: Vec<String> = match strings(body, "redirect_uris", MAX_REDIRECT_URIS) {
        Ok(list) => list.unwrap_or_default().into_iter().map(str::to_owned).collect(),
        Err(e) => return Err(bad_redirect(e.description().to_owned())),
    };
    for uri in &redirect_uris {
        RedirectUri::parse(uri, redirect_policy).map_err(|e| bad_redirect(format!("{uri:?}: {e}")))?;
    }
    if code_grant && redirect_uris.is_empty() {
        return Err(bad_redirect("redirect_uris is required for the authorization_code grant"));
    }
    if grant_types.contains(&GrantType::ClientCredentials) && method == ClientAuthMethod::None {
        return Err(bad("a public client (token_endpoint_auth_method \"none\") cannot use client_credentials"));
    }

    let scope = match string(body, "scope")? {
        None => None,
        Some(s) => {
            let scope = Scope::parse(s).map_err(|e| bad(format!("scope: {e}")))?;
            if let Some(known) = Scope::from_tokens(known_scopes) {
                if !scope.is_subset_of(&known) {
                    return Err(bad(format!("unknown scope: {}", scope.missing(&known).join(" "))));
                }
            }
            Some(scope)
        }
    };

    let jwks = match body.get("jwks") {
        None | Some(Value::Null) => None,
        Some(v) => Some(client_jwks(v)?),
    };
    let jwks_uri = string(body, "jwks_uri")?.map(str::to_owned);
    if jwks.is_some() && jwks_uri.is_some() {
        return Err(bad("jwks and jwks_uri are mutually exclusive (RFC 7591 §2)"));
    }
    if let Some(uri) = &jwks_uri {
        if !url::Url::parse(uri).is_ok_and(|u| u.scheme() == "https") {
            return Err(bad("jwks_uri must be an https URL"));
        }
    }
    if method == ClientAuthMethod::PrivateKeyJwt && jwks.is_none() && jwks_uri.is_none() {
        return Err(bad("private_key_jwt needs the client's public keys, in jwks or at jwks_uri"));
    }

    let mut extra = Map::new();
    for field in ["client_uri", "logo_uri", "tos_uri", "policy_uri"] {
        if let Some(v) = web_url(body, field)? {
            extra.insert(field.into(), v);
        }
    }
    for field in ["software_id", "software_version"] {
        if let Some(v) = string(body, field)? {
            extra.insert(field.into(), Value::String(v.into()));
        }
    }
    if let Some(contacts) = strings(body, "contacts", MAX_CONTACTS)? {
        extra.insert("contacts".into(), Value::from(contacts));
    }
    let client_name = string(body, "client_name")?.map(|s| s.chars().take(256).collect::<String>());

    Ok(Requested {
        metadata: ClientMetadata {
            client_name,
            redirect_uris,
            grant_types,
            token_endpoint_auth_method: method,
            scope,
            resources: Vec::new(),
            jwks,
            jwks_uri,
            extra,
        },
    })
}

/// The metadata as RFC 7591 §3.2.1 returns it.
pub fn to_json(m: &ClientMetadata) -> Map<String, Value> {
    let mut out = m.extra.clone();
    if let Some(name) = &m.client_name {
        out.insert("client_name".into(), name.clone().into());
    }
    out.insert("redirect_uris".into(), Value::from(m.redirect_uris.clone()));
    out.insert("grant_types".into(), Value::from(m.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>()));
    let code = m.grant_types.contains(&GrantType::AuthorizationCode);
    out.insert("response_types".into(), Value::from(if code { vec!["code"] } else { vec![] }));
    out.insert("token_endpoint_auth_method".into(), m.token_endpoint_auth_method.as_str().into());
    if let Some(scope) = &m.scope {
        out.insert("scope".into(), scope.to_string().into());
    }
    if let Some(jwks) = &m.jwks {
        out.insert("jwks".into(), jwks.clone());
    }
    if let Some(uri) = &m.jwks_uri {
        out.insert("jwks_uri".into(), uri.clone().into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(body: Value) -> Result<Requested, OAuthError> {
        validate(&body, &RedirectUriPolicy::default(), &["notes:read".into(), "notes:write".into()])
    }

    fn code_of(body: Value) -> &'static str {
        check(body).unwrap_err().code().as_str()
    }

    #[test]
    fn a_typical_mcp_client_registers() {
        let r = check(json!({
            "client_name": "Claude Code",
            "redirect_uris": ["http://localhost:54321/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "scope": "notes:read",
            "unknown_field": {"ignored": true},
        }))
        .unwrap();
        assert_eq!(r.metadata.token_endpoint_auth_method, ClientAuthMethod::None);
        assert_eq!(r.metadata.grant_types, vec![GrantType::AuthorizationCode, GrantType::RefreshToken]);
        assert!(!r.metadata.extra.contains_key("unknown_field"));
    }

    #[test]
    fn defaults_follow_rfc_7591() {
        let r = check(json!({"redirect_uris": ["https://app.example/cb"]})).unwrap();
        assert_eq!(r.metadata.grant_types, vec![GrantType::AuthorizationCode]);
        assert_eq!(r.metadata.token_endpoint_auth_method, ClientAuthMethod::ClientSecretBasic);
    }

    #[test]
    fn each_field_is_checked() {
        assert_eq!(code_of(json!([])), "invalid_client_metadata");
        assert_eq!(code_of(json!({"redirect_uris": "https://a.example/cb"})), "invalid_redirect_uri");
        assert_eq!(code_of(json!({"redirect_uris": [1]})), "invalid_redirect_uri");
        assert_eq!(code_of(json!({"redirect_uris": ["http://evil.example/cb"]})), "invalid_redirect_uri");
        assert_eq!(code_of(json!({"redirect_uris": ["https://a.example/cb#x"]})), "invalid_redirect_uri");
        assert_eq!(code_of(json!({"redirect_uris": ["javascript:alert(1)"]})), "invalid_redirect_uri");
        assert_eq!(code_of(json!({"redirect_uris": ["data:text/html,hi"]})), "invalid_redirect_uri");
        assert_eq!(code_of(json!({})), "invalid_redirect_uri", "code grant without redirect URIs");
        let many: Vec<String> = (0..17).map(|i| format!("https://a.example/{i}")).collect();
        assert_eq!(code_of(json!({"redirect_uris": many})), "invalid_redirect_uri");
        let ok = json!(["https://a.example/cb"]);
        assert_eq!(code_of(json!({"redirect_uris": ok, "grant_types": ["implicit"]})), "invalid_client_metadata");
        assert_eq!(code_of(json!({"redirect_uris": ok, "grant_types": ["device_code"]})), "invalid_client_metadata");
        assert_eq!(
            code_of(json!({"grant_types": ["client_credentials"], "response_types": ["code"]})),
            "invalid_client_metadata"
        );
        assert!(check(json!({"grant_types": ["client_credentials"]})).is_ok());
        assert_eq!(code_of(json!({"redirect_uris": ok, "grant_types": []})), "invalid_client_metadata");
        assert_eq!(code_of(json!({"redirect_uris": ok, "response_types": ["token"]})), "invalid_client_metadata");
        assert_eq!(
            code_of(json!({"redirect_uris": ok, "token_endpoint_auth_method": "client_secret_jwt"})),
            "invalid_client_metadata"
        );
        assert_eq!(code_of(json!({"redirect_uris": ok, "token_endpoint_auth_method": 7})), "invalid_client_metadata");
        assert_eq!(code_of(json!({"redirect_uris": ok, "scope": "admin"})), "invalid_client_metadata");
        assert_eq!(code_of(json!({"redirect_uris": ok, "scope": ""})), "invalid_client_metadata");
        assert_eq!(
            code_of(json!({"redirect_uris": ok, "client_uri": "javascript:alert(1)"})),
            "invalid_client_metadata"
        );
        assert_eq!(
            code_of(json!({"redirect_uris": ok, "logo_uri": "http://a.example/logo.png"})),
            "invalid_client_metadata"
        );
        assert_eq!(code_of(json!({"redirect_uris": ok, "client_name": "x\u{0}y"})), "invalid_client_metadata");
        assert_eq!(code_of(json!({"redirect_uris": ok, "contacts": "a@b"})), "invalid_client_metadata");
        assert_eq!(
            code_of(json!({"redirect_uris": ok, "software_statement": "eyJ..."})),
            "unapproved_software_statement"
        );
        assert_eq!(
            code_of(json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"})),
            "invalid_client_metadata"
        );
        assert_eq!(
            code_of(json!({"redirect_uris": ok, "token_endpoint_auth_method": "private_key_jwt"})),
            "invalid_client_metadata",
            "private_key_jwt without keys"
        );
        assert_eq!(
            code_of(json!({"redirect_uris": ok, "jwks": {"keys": []}, "jwks_uri": "https://a.example/jwks"})),
            "invalid_client_metadata"
        );
    }

    #[test]
    fn inline_jwks_are_checked_key_by_key() {
        // The 2048-bit test key of authflow-core's RSA tests, and a 1024-bit one.
        const N_2048: &str = "vGeOxOnrOjNKQ4gW9Az6QGnELb_sLXJtkciZFcS91eU49W_fsU4HQs6V97egH67F2g2hTU0mbCH5pzM-5tGnKmfr\
                              PJ7YAhIPnoHaaqB7yAHcUizm8ZUJaMXSN4QRQqYTpdNgaDKhci8KGb3oqXCBa0bAapWpdbhFWfUbxzW-l3u4-eDY\
                              CZunW6pu6LmxI9i81PqvQ1TLAwLPs_23U3hrawNVmGs_pOm47cBuJGqZwsFW-oO4w9tX7TpHMgiEuqn0xCmgqZRC\
                              VshifGa2KawL45QyeaakxT0Hb4Xp3mfbS3rURag9d4xquY4c4NEvz0U6GqfY7qpoRiA_EPib-ehKbw";
        const N_1024: &str = "qa0q2ogBUkhtWaBe8FfN6n4crc8Bgn9Y0TXY9gWmuCwxVqjM9LV1BR1DeNxtMDX32IMah1TQ3MvUIy3QV4v2iBnE\
                              yJUvemYMru_uxLlv8hdKrcndN-fgTsetMMFrC4cljw-U26R61PGcmZy82cAGeDFsJV2BNmErO-TydG6_GLM";
        let ok = json!(["https://a.example/cb"]);
        let register = |keys: Value| {
            check(json!({"redirect_uris": ok, "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": keys}}))
        };
        let rsa = |n: &str, extra: Value| {
            let mut k = json!({"kty": "RSA", "n": n, "e": "AQAB"});
            k.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            k
        };
        // RSA keys of 2048 bits are accepted, pinned or not, with or without kid.
        let accepted = register(json!([rsa(N_2048, json!({"kid": "r1", "alg": "RS256", "use": "sig"}))])).unwrap();
        assert_eq!(accepted.metadata.jwks.unwrap()["keys"][0]["kid"], "r1");
        assert!(register(json!([rsa(N_2048, json!({}))])).is_ok());
        assert!(register(json!([rsa(N_2048, json!({"alg": "PS256"}))])).is_ok());
        // Beside an unsupported key type too.
        assert!(register(json!([{"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}, rsa(N_2048, json!({}))])).is_ok());
        // A 1024-bit key is refused, even beside a good one, and the client is told which and why.
        let weak = register(json!([rsa(N_2048, json!({})), rsa(N_1024, json!({"kid": "old"}))])).unwrap_err();
        assert_eq!(weak.code(), ErrorCode::InvalidClientMetadata);
        assert_eq!(weak.description(), "jwks: key 1: invalid key: the RSA modulus is shorter than 2048 bits");
        // Malformed RSA keys: no e, an even exponent, base64 with padding, a private key.
        for bad in [
            json!({"kty": "RSA", "n": N_2048}),
            rsa(N_2048, json!({"e": "AQAA"})),
            rsa(&format!("{N_2048}="), json!({})),
            rsa(N_2048, json!({"d": "AQAB"})),
            json!({"kty": "RSA", "n": 7, "e": "AQAB"}),
        ] {
            let e = register(json!([bad])).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidClientMetadata, "{bad}");
            assert!(e.description().starts_with("jwks: key 0: "), "{}", e.description());
        }
        // Nothing to verify with: no keys, only unsupported ones, only encryption keys.
        for keys in [json!([]), json!([{"kty": "oct", "k": "c2VjcmV0"}]), json!([rsa(N_2048, json!({"use": "enc"}))])] {
            assert_eq!(register(keys.clone()).unwrap_err().code(), ErrorCode::InvalidClientMetadata, "{keys}");
        }
        assert_eq!(
            check(json!({"redirect_uris": ok, "jwks": []})).unwrap_err().code(),
            ErrorCode::InvalidClientMetadata
        );
    }

    #[test]
    fn round_trips_to_json() {
        let r = check(json!({"redirect_uris": ["https://a.example/cb"], "client_uri": "https://a.example", "contacts": ["ops@a.example"]})).unwrap();
        let j = to_json(&r.metadata);
        assert_eq!(j["client_uri"], "https://a.example");
        assert_eq!(j["contacts"], json!(["ops@a.example"]));
        assert_eq!(j["response_types"], json!(["code"]));
    }
}
