//! Discovery documents as serde types: OAuth authorization server metadata (RFC 8414), OpenID provider
//! metadata (OpenID Connect Discovery 1.0) and protected resource metadata (RFC 9728), plus the well-known
//! URL rules that locate them.
//!
//! Absent optional values and empty lists are left out when serialising. Fields this module does not name
//! are kept in `extra` when deserialising, so a document fetched from another server survives a round trip.
//! URL-valued fields are strings: identifiers such as `issuer` are compared character for character
//! (RFC 8414 §3.3), and parsing them into [`url::Url`] would normalise them (`https://as.example` gains a
//! trailing `/`). [`AuthorizationServerMetadata::validate`] and [`ProtectedResourceMetadata::validate`]
//! check fetched documents.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::{Host, Url};

/// Well-known suffix of RFC 8414 authorization server metadata.
pub const OAUTH_AUTHORIZATION_SERVER: &str = "oauth-authorization-server";
/// Well-known suffix of OpenID Connect discovery.
pub const OPENID_CONFIGURATION: &str = "openid-configuration";
/// Well-known suffix of RFC 9728 protected resource metadata.
pub const OAUTH_PROTECTED_RESOURCE: &str = "oauth-protected-resource";

/// OAuth 2.0 authorization server metadata (RFC 8414 §2), with the members later specifications added.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AuthorizationServerMetadata {
    /// The issuer identifier: an `https` URL with no query or fragment. Required.
    pub issuer: String,
    /// The authorization endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    /// The token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// The JWK Set document with the server's signing keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// The dynamic client registration endpoint (RFC 7591).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    /// Scope values the server supports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// `response_type` values the server supports. Required by RFC 8414, so always serialised.
    #[serde(default)]
    pub response_types_supported: Vec<String>,
    /// `response_mode` values the server supports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_modes_supported: Vec<String>,
    /// Grant types the server supports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grant_types_supported: Vec<String>,
    /// Client authentication methods at the token endpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// JWS algorithms for `private_key_jwt` / `client_secret_jwt` at the token endpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_endpoint_auth_signing_alg_values_supported: Vec<String>,
    /// Human-readable documentation for developers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_documentation: Option<String>,
    /// Languages supported for the user interface (BCP 47).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ui_locales_supported: Vec<String>,
    /// The policy on how clients may use data the server provides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op_policy_uri: Option<String>,
    /// The terms of service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op_tos_uri: Option<String>,
    /// The revocation endpoint (RFC 7009).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// Client authentication methods at the revocation endpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// JWS algorithms for JWT client authentication at the revocation endpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revocation_endpoint_auth_signing_alg_values_supported: Vec<String>,
    /// The introspection endpoint (RFC 7662).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint: Option<String>,
    /// Client authentication methods at the introspection endpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    /// JWS algorithms for JWT client authentication at the introspection endpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub introspection_endpoint_auth_signing_alg_values_supported: Vec<String>,
    /// PKCE methods (RFC 7636). MCP clients refuse servers that do not list `S256`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub code_challenge_methods_supported: Vec<String>,
    /// The device authorization endpoint (RFC 8628 §4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_authorization_endpoint: Option<String>,
    /// Whether authorization responses carry `iss` (RFC 9207 §3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_response_iss_parameter_supported: Option<bool>,
    /// Whether HTTPS URLs naming client ID metadata documents are accepted as `client_id` (MCP 2025-11-25).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id_metadata_document_supported: Option<bool>,
    /// The OpenID Connect UserInfo endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_endpoint: Option<String>,
    /// Members not named above, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// OpenID Connect Discovery 1.0 §3 provider metadata: the OAuth members plus the OpenID ones.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OpenIdProviderMetadata {
    /// The OAuth members (and any unknown ones, in its `extra`).
    #[serde(flatten)]
    pub oauth: AuthorizationServerMetadata,
    /// Subject identifier types (`public`, `pairwise`). Required, so always serialised.
    #[serde(default)]
    pub subject_types_supported: Vec<String>,
    /// JWS algorithms for ID tokens; must include `RS256`. Required, so always serialised.
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// Authentication context class references supported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acr_values_supported: Vec<String>,
    /// JWS algorithms for signed UserInfo responses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub userinfo_signing_alg_values_supported: Vec<String>,
    /// Claim names the provider may supply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims_supported: Vec<String>,
    /// Claim types (`normal`, `aggregated`, `distributed`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claim_types_supported: Vec<String>,
    /// Whether the `claims` request parameter is supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims_parameter_supported: Option<bool>,
    /// Whether the `request` parameter is supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_parameter_supported: Option<bool>,
    /// Whether the `request_uri` parameter is supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_uri_parameter_supported: Option<bool>,
}

/// OAuth 2.0 protected resource metadata (RFC 9728 §2).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProtectedResourceMetadata {
    /// The resource identifier: an `https` URL with no fragment. Required.
    pub resource: String,
    /// Issuer identifiers of the authorization servers that can issue tokens for this resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_servers: Vec<String>,
    /// The resource's JWK Set document (for signed responses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Scope values used in authorization requests for this resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// How bearer tokens may be sent: `header`, `body`, `query` (RFC 6750).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bearer_methods_supported: Vec<String>,
    /// JWS algorithms the resource signs responses with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_signing_alg_values_supported: Vec<String>,
    /// A human-readable name for the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// Human-readable documentation for developers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_documentation: Option<String>,
    /// The policy on how clients may use the resource's data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_policy_uri: Option<String>,
    /// The terms of service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_tos_uri: Option<String>,
    /// Whether tokens must be bound to mutual-TLS client certificates (RFC 8705).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_certificate_bound_access_tokens: Option<bool>,
    /// Rich authorization request types supported (RFC 9396).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_details_types_supported: Vec<String>,
    /// JWS algorithms accepted for DPoP proofs (RFC 9449).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dpop_signing_alg_values_supported: Vec<String>,
    /// Whether only DPoP-bound tokens are accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_bound_access_tokens_required: Option<bool>,
    /// Members not named above, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Why a fetched metadata document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// The document names another issuer than the one it was fetched for (RFC 8414 §3.3).
    #[error("metadata issuer {found:?} does not equal the expected issuer {expected:?}")]
    IssuerMismatch {
        /// The issuer the document was fetched for.
        expected: String,
        /// The issuer the document names.
        found: String,
    },
    /// The document names another resource than the one it was fetched for (RFC 9728 §3.3).
    #[error("metadata resource {found:?} does not equal the expected resource {expected:?}")]
    ResourceMismatch {
        /// The resource the document was fetched for.
        expected: String,
        /// The resource the document names.
        found: String,
    },
    /// A URL member is not an absolute URL.
    #[error("`{field}` is not a valid absolute URL")]
    InvalidUrl {
        /// The member's name.
        field: &'static str,
    },
    /// A URL member is neither `https` nor `http` on a loopback host.
    #[error("`{field}` must use https (http is allowed only on loopback)")]
    InsecureUrl {
        /// The member's name.
        field: &'static str,
    },
    /// A URL member has a fragment, or an identifier has a query, which the RFCs forbid.
    #[error("`{field}` must not have a {part}")]
    ForbiddenUrlPart {
        /// The member's name.
        field: &'static str,
        /// `"fragment"` or `"query"`.
        part: &'static str,
    },
}

impl AuthorizationServerMetadata {
    /// A document for `issuer` with every other member absent.
    pub fn new(issuer: impl Into<String>) -> Self {
        AuthorizationServerMetadata { issuer: issuer.into(), ..Default::default() }
    }

    /// Check a document fetched for `expected_issuer`: the `issuer` member must equal it exactly (RFC 8414
    /// §3.3, defeating a server that impersonates another), the issuer must be an `https` URL without query
    /// or fragment, and every endpoint must be `https` without fragment. `http` is accepted on loopback hosts
    /// (`localhost`, `127.0.0.0/8`, `::1`) for local development.
    pub fn validate(&self, expected_issuer: &str) -> Result<(), MetadataError> {
        if self.issuer != expected_issuer {
            return Err(MetadataError::IssuerMismatch {
                expected: expected_issuer.to_owned(),
                found: self.issuer.clone(),
            });
        }
        check_url("issuer", &self.issuer, false)?;
        for (field, value) in self.endpoints() {
            check_url(field, value, true)?;
        }
        Ok(())
    }

    /// The endpoint members that are present, by name.
    pub fn endpoints(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("authorization_endpoint", &self.authorization_endpoint),
            ("token_endpoint", &self.token_endpoint),
            ("jwks_uri", &self.jwks_uri),
            ("registration_endpoint", &self.registration_endpoint),
            ("revocation_endpoint", &self.revocation_endpoint),
            ("introspection_endpoint", &self.introspection_endpoint),
            ("device_authorization_endpoint", &self.device_authorization_endpoint),
            ("userinfo_endpoint", &self.userinfo_endpoint),
        ]
        .into_iter()
        .filter_map(|(field, value)| value.as_deref().map(|v| (field, v)))
    }

    /// Whether PKCE with `S256` is advertised (MCP clients must refuse the server otherwise).
    pub fn supports_pkce_s256(&self) -> bool {
        self.code_challenge_methods_supported.iter().any(|m| m == "S256")
    }
}

impl OpenIdProviderMetadata {
    /// Check a document fetched for `expected_issuer`, as [`AuthorizationServerMetadata::validate`].
    pub fn validate(&self, expected_issuer: &str) -> Result<(), MetadataError> {
        self.oauth.validate(expected_issuer)
    }
}

impl ProtectedResourceMetadata {
    /// A document for `resource` with every other member absent.
    pub fn new(resource: impl Into<String>) -> Self {
        ProtectedResourceMetadata { resource: resource.into(), ..Default::default() }
    }

    /// Check a document fetched for `expected_resource`: the `resource` member must equal it exactly
    /// (RFC 9728 §3.3), and it, every authorization server and `jwks_uri` must be `https` URLs without
    /// fragment (`http` on loopback allowed). Authorization server issuers must also have no query.
    pub fn validate(&self, expected_resource: &str) -> Result<(), MetadataError> {
        if self.resource != expected_resource {
            return Err(MetadataError::ResourceMismatch {
                expected: expected_resource.to_owned(),
                found: self.resource.clone(),
            });
        }
        check_url("resource", &self.resource, true)?;
        for server in &self.authorization_servers {
            check_url("authorization_servers", server, false)?;
        }
        if let Some(jwks) = &self.jwks_uri {
            check_url("jwks_uri", jwks, true)?;
        }
        Ok(())
    }
}

/// An absolute `https` URL (or `http` on loopback) without fragment, and without query unless allowed.
fn check_url(field: &'static str, value: &str, query_allowed: bool) -> Result<(), MetadataError> {
    let url = Url::parse(value).map_err(|_| MetadataError::InvalidUrl { field })?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        _ => return Err(MetadataError::InsecureUrl { field }),
    }
    if url.fragment().is_some() {
        return Err(MetadataError::ForbiddenUrlPart { field, part: "fragment" });
    }
    if !query_allowed && url.query().is_some() {
        return Err(MetadataError::ForbiddenUrlPart { field, part: "query" });
    }
    Ok(())
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        // The url crate lower-cases domains. RFC 6761 §6.3 reserves `localhost` for loopback.
        Some(Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

/// The issuer's (or resource's) path with one terminating slash removed; empty for the root.
fn trimmed_path(url: &Url) -> &str {
    let path = url.path();
    path.strip_suffix('/').unwrap_or(path)
}

/// The well-known URL of `issuer_or_resource` by path *insertion* (RFC 8414 §3.1, RFC 9728 §3.1):
/// `/.well-known/<suffix>` goes between the host and the path, after removing a terminating slash. The query
/// is kept and the fragment dropped.
///
/// `https://as.example/tenant1` + `oauth-authorization-server` →
/// `https://as.example/.well-known/oauth-authorization-server/tenant1`; `https://as.example` and
/// `https://as.example/` → `https://as.example/.well-known/oauth-authorization-server`.
pub fn well_known_url(issuer_or_resource: &Url, suffix: &str) -> Url {
    let mut url = issuer_or_resource.clone();
    let path = format!("/.well-known/{}{}", suffix.trim_matches('/'), trimmed_path(issuer_or_resource));
    url.set_path(&path);
    url.set_fragment(None);
    url
}

/// The well-known URL of `issuer` by path *appending*, as OpenID Connect Discovery 1.0 §4 defines it:
/// `https://as.example/tenant1` → `https://as.example/tenant1/.well-known/openid-configuration`.
pub fn well_known_url_appended(issuer: &Url, suffix: &str) -> Url {
    let mut url = issuer.clone();
    let path = format!("{}/.well-known/{}", trimmed_path(issuer), suffix.trim_matches('/'));
    url.set_path(&path);
    url.set_fragment(None);
    url
}

/// Where a client looks for an authorization server's metadata, in the order the MCP authorization
/// specification prescribes: with a path, RFC 8414 insertion, OpenID insertion, then OpenID appending;
/// without one, RFC 8414 then OpenID.
pub fn authorization_server_metadata_urls(issuer: &Url) -> Vec<Url> {
    let mut urls =
        vec![well_known_url(issuer, OAUTH_AUTHORIZATION_SERVER), well_known_url(issuer, OPENID_CONFIGURATION)];
    if !trimmed_path(issuer).is_empty() {
        urls.push(well_known_url_appended(issuer, OPENID_CONFIGURATION));
    }
    urls
}

/// The inverse of [`well_known_url`] for a server: the issuer (or resource) path that a request path under
/// `/.well-known/<suffix>` names, e.g. `/tenant1` for `/.well-known/oauth-authorization-server/tenant1` and
/// `""` for `/.well-known/oauth-authorization-server`. `None` when the path is not under that suffix, or
/// ends in a lone `/` (which [`well_known_url`] never produces).
///
/// The result is compared with the issuer's path minus any terminating slash: a server with a single
/// issuer can instead compare the request path with `well_known_url(issuer, suffix).path()`.
pub fn issuer_path_from_well_known<'a>(request_path: &'a str, suffix: &str) -> Option<&'a str> {
    let rest = request_path.strip_prefix("/.well-known/")?.strip_prefix(suffix.trim_matches('/'))?;
    (rest.is_empty() || (rest.starts_with('/') && rest != "/")).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn sample_as() -> AuthorizationServerMetadata {
        AuthorizationServerMetadata {
            authorization_endpoint: Some("https://as.example/authorize".into()),
            token_endpoint: Some("https://as.example/token".into()),
            registration_endpoint: Some("https://as.example/register".into()),
            response_types_supported: vec!["code".into()],
            grant_types_supported: vec!["authorization_code".into(), "refresh_token".into()],
            code_challenge_methods_supported: vec!["S256".into()],
            authorization_response_iss_parameter_supported: Some(true),
            ..AuthorizationServerMetadata::new("https://as.example")
        }
    }

    #[test]
    fn as_metadata_skips_absent_members() {
        let json = serde_json::to_value(sample_as()).unwrap();
        assert_eq!(
            json,
            json!({
                "issuer": "https://as.example",
                "authorization_endpoint": "https://as.example/authorize",
                "token_endpoint": "https://as.example/token",
                "registration_endpoint": "https://as.example/register",
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
                "authorization_response_iss_parameter_supported": true,
            })
        );
        // Required members are present even when empty.
        let bare = serde_json::to_value(AuthorizationServerMetadata::new("https://as.example")).unwrap();
        assert_eq!(bare, json!({ "issuer": "https://as.example", "response_types_supported": [] }));
    }

    #[test]
    fn as_metadata_round_trips_and_keeps_unknown_members() {
        let doc = json!({
            "issuer": "https://as.example",
            "token_endpoint": "https://as.example/token",
            "response_types_supported": ["code"],
            "client_id_metadata_document_supported": true,
            "dpop_signing_alg_values_supported": ["ES256"],
            "x_vendor": { "nested": [1, 2] },
        });
        let m: AuthorizationServerMetadata = serde_json::from_value(doc.clone()).unwrap();
        assert_eq!(m.client_id_metadata_document_supported, Some(true));
        assert_eq!(m.extra.len(), 2);
        assert_eq!(m.extra["x_vendor"]["nested"][1], 2);
        assert_eq!(serde_json::to_value(&m).unwrap(), doc);
        let again: AuthorizationServerMetadata = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(again, m);
        assert!(serde_json::from_value::<AuthorizationServerMetadata>(json!({ "token_endpoint": "x" })).is_err());
        assert!(serde_json::from_value::<AuthorizationServerMetadata>(json!({ "issuer": 3 })).is_err());
    }

    #[test]
    fn openid_metadata_flattens_the_oauth_members() {
        let oidc = OpenIdProviderMetadata {
            oauth: AuthorizationServerMetadata {
                jwks_uri: Some("https://as.example/jwks".into()),
                userinfo_endpoint: Some("https://as.example/userinfo".into()),
                ..sample_as()
            },
            subject_types_supported: vec!["public".into()],
            id_token_signing_alg_values_supported: vec!["RS256".into(), "ES256".into()],
            claims_supported: vec!["sub".into()],
            ..Default::default()
        };
        let json = serde_json::to_value(&oidc).unwrap();
        assert_eq!(json["issuer"], "https://as.example");
        assert_eq!(json["userinfo_endpoint"], "https://as.example/userinfo");
        assert_eq!(json["subject_types_supported"], json!(["public"]));
        assert!(json.get("oauth").is_none() && json.get("acr_values_supported").is_none());
        let mut with_unknown = json.clone();
        with_unknown["frontchannel_logout_supported"] = json!(true);
        let back: OpenIdProviderMetadata = serde_json::from_value(with_unknown.clone()).unwrap();
        // OpenID members are not mistaken for unknown OAuth ones.
        assert_eq!(back.oauth.extra.keys().collect::<Vec<_>>(), vec!["frontchannel_logout_supported"]);
        assert_eq!(back.subject_types_supported, oidc.subject_types_supported);
        assert_eq!(serde_json::to_value(&back).unwrap(), with_unknown);
        back.validate("https://as.example").unwrap();
    }

    #[test]
    fn protected_resource_metadata() {
        let prm = ProtectedResourceMetadata {
            authorization_servers: vec!["https://as.example".into()],
            scopes_supported: vec!["notes:read".into()],
            bearer_methods_supported: vec!["header".into()],
            resource_name: Some("Notes".into()),
            ..ProtectedResourceMetadata::new("https://mcp.example/mcp")
        };
        let json = serde_json::to_value(&prm).unwrap();
        assert_eq!(
            json,
            json!({
                "resource": "https://mcp.example/mcp",
                "authorization_servers": ["https://as.example"],
                "scopes_supported": ["notes:read"],
                "bearer_methods_supported": ["header"],
                "resource_name": "Notes",
            })
        );
        assert_eq!(serde_json::from_value::<ProtectedResourceMetadata>(json).unwrap(), prm);
        assert!(serde_json::from_value::<ProtectedResourceMetadata>(json!({ "scopes_supported": [] })).is_err());
        prm.validate("https://mcp.example/mcp").unwrap();
        assert!(matches!(prm.validate("https://mcp.example/mcp/"), Err(MetadataError::ResourceMismatch { .. })));
        let bad = ProtectedResourceMetadata { authorization_servers: vec!["http://as.example".into()], ..prm };
        assert_eq!(
            bad.validate("https://mcp.example/mcp"),
            Err(MetadataError::InsecureUrl { field: "authorization_servers" })
        );
    }

    #[test]
    fn validation_requires_the_exact_issuer_and_secure_endpoints() {
        let m = sample_as();
        m.validate("https://as.example").unwrap();
        assert!(m.supports_pkce_s256());
        assert_eq!(
            m.validate("https://as.example/"),
            Err(MetadataError::IssuerMismatch {
                expected: "https://as.example/".into(),
                found: "https://as.example".into()
            })
        );
        assert!(matches!(m.validate("https://evil.example"), Err(MetadataError::IssuerMismatch { .. })));

        let insecure =
            AuthorizationServerMetadata { token_endpoint: Some("http://as.example/token".into()), ..m.clone() };
        assert_eq!(
            insecure.validate("https://as.example"),
            Err(MetadataError::InsecureUrl { field: "token_endpoint" })
        );
        let relative = AuthorizationServerMetadata { jwks_uri: Some("/jwks".into()), ..m.clone() };
        assert_eq!(relative.validate("https://as.example"), Err(MetadataError::InvalidUrl { field: "jwks_uri" }));
        let fragment =
            AuthorizationServerMetadata { authorization_endpoint: Some("https://as.example/a#x".into()), ..m };
        assert_eq!(
            fragment.validate("https://as.example"),
            Err(MetadataError::ForbiddenUrlPart { field: "authorization_endpoint", part: "fragment" })
        );
        let query = AuthorizationServerMetadata::new("https://as.example?tenant=1");
        assert_eq!(
            query.validate("https://as.example?tenant=1"),
            Err(MetadataError::ForbiddenUrlPart { field: "issuer", part: "query" })
        );
        assert!(!query.supports_pkce_s256());

        for local in ["http://localhost:8000", "http://127.0.0.1:8000", "http://127.8.9.10", "http://[::1]:8000"] {
            let m = AuthorizationServerMetadata {
                token_endpoint: Some(format!("{local}/token")),
                ..AuthorizationServerMetadata::new(local)
            };
            m.validate(local).unwrap();
        }
        for remote in ["http://as.example", "http://localhost.evil.example", "http://10.0.0.1", "ftp://as.example"] {
            assert_eq!(
                AuthorizationServerMetadata::new(remote).validate(remote),
                Err(MetadataError::InsecureUrl { field: "issuer" })
            );
        }
    }

    #[test]
    fn path_insertion_follows_the_rfcs() {
        // RFC 8414 §3.1 example.
        assert_eq!(
            well_known_url(&url("https://example.com/issuer1"), OAUTH_AUTHORIZATION_SERVER).as_str(),
            "https://example.com/.well-known/oauth-authorization-server/issuer1"
        );
        // RFC 9728 §3.1 example.
        assert_eq!(
            well_known_url(&url("https://resource.example.com/resource1"), OAUTH_PROTECTED_RESOURCE).as_str(),
            "https://resource.example.com/.well-known/oauth-protected-resource/resource1"
        );
        for root in ["https://as.example", "https://as.example/"] {
            assert_eq!(
                well_known_url(&url(root), OAUTH_AUTHORIZATION_SERVER).as_str(),
                "https://as.example/.well-known/oauth-authorization-server"
            );
        }
        assert_eq!(
            well_known_url(&url("https://as.example/tenant1/"), "/oauth-authorization-server").as_str(),
            "https://as.example/.well-known/oauth-authorization-server/tenant1"
        );
        assert_eq!(
            well_known_url(&url("https://mcp.example:8443/a/mcp?x=1#frag"), OAUTH_PROTECTED_RESOURCE).as_str(),
            "https://mcp.example:8443/.well-known/oauth-protected-resource/a/mcp?x=1"
        );
        assert_eq!(
            well_known_url_appended(&url("https://as.example/tenant1/"), OPENID_CONFIGURATION).as_str(),
            "https://as.example/tenant1/.well-known/openid-configuration"
        );
    }

    #[test]
    fn discovery_order() {
        let with_path: Vec<String> = authorization_server_metadata_urls(&url("https://auth.example/tenant1"))
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(
            with_path,
            [
                "https://auth.example/.well-known/oauth-authorization-server/tenant1",
                "https://auth.example/.well-known/openid-configuration/tenant1",
                "https://auth.example/tenant1/.well-known/openid-configuration",
            ]
        );
        let root = authorization_server_metadata_urls(&url("https://auth.example"));
        assert_eq!(
            root.iter().map(Url::as_str).collect::<Vec<_>>(),
            [
                "https://auth.example/.well-known/oauth-authorization-server",
                "https://auth.example/.well-known/openid-configuration",
            ]
        );
    }

    #[test]
    fn inverse_names_the_issuer_path() {
        let s = OAUTH_AUTHORIZATION_SERVER;
        assert_eq!(issuer_path_from_well_known("/.well-known/oauth-authorization-server", s), Some(""));
        assert_eq!(issuer_path_from_well_known("/.well-known/oauth-authorization-server/tenant1", s), Some("/tenant1"));
        assert_eq!(issuer_path_from_well_known("/.well-known/oauth-authorization-server/a/b", s), Some("/a/b"));
        assert_eq!(issuer_path_from_well_known("/.well-known/oauth-authorization-server/", s), None);
        assert_eq!(issuer_path_from_well_known("/.well-known/oauth-authorization-serverx", s), None);
        assert_eq!(issuer_path_from_well_known("/.well-known/openid-configuration", s), None);
        assert_eq!(issuer_path_from_well_known("/tenant1/.well-known/oauth-authorization-server", s), None);
    }

    proptest! {
        #[test]
        fn insertion_and_its_inverse_agree(
            segments in proptest::collection::vec("[a-zA-Z0-9._~%-]{1,8}", 0..4),
            slash in any::<bool>(),
        ) {
            let mut s = format!("https://as.example/{}", segments.join("/"));
            if slash && !segments.is_empty() {
                s.push('/');
            }
            let Ok(issuer) = Url::parse(&s) else { return Ok(()) };
            let wk = well_known_url(&issuer, OAUTH_AUTHORIZATION_SERVER);
            prop_assert_eq!(wk.host_str(), Some("as.example"));
            prop_assert!(wk.path().starts_with("/.well-known/oauth-authorization-server"));
            let named = issuer_path_from_well_known(wk.path(), OAUTH_AUTHORIZATION_SERVER);
            prop_assert_eq!(named, Some(trimmed_path(&issuer)));
        }

        #[test]
        fn parsing_arbitrary_documents_never_panics(issuer in "\\PC{0,40}", extra in "\\PC{0,20}") {
            let mut doc = json!({ "issuer": issuer, "token_endpoint": extra });
            doc[extra.as_str()] = json!(1);
            if let Ok(m) = serde_json::from_value::<AuthorizationServerMetadata>(doc) {
                let _ = m.validate(&issuer);
                let _ = serde_json::to_string(&m).unwrap();
            }
            let _ = issuer_path_from_well_known(&issuer, &extra);
        }
    }
}
