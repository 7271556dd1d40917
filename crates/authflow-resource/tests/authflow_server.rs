//! The verifiers against authflow's own authorization server over real HTTP on loopback: opaque tokens by
//! introspection, JWTs locally, audience binding, revocation and key rotation.

mod common;

use std::time::Duration;

use authflow_core::jose::{Algorithm, PrivateKey};
use authflow_core::ClientAuthMethod;
use authflow_resource::{
    IntrospectionVerifier, JwtOrIntrospection, JwtVerifier, ProtectedResource, TokenVerifier, VerifyError,
};
use authflow_server::policy::AccessTokenFormat;
use authflow_server::{OsEntropy, Policy};
use common::{dev_http, get, serve, whoami_app, As};
use serde_json::json;

const RESOURCE: &str = "https://mcp.example.com/mcp";
const OTHER: &str = "https://other.example.com/mcp";

fn introspection(a: &As, rs: &(String, String), method: ClientAuthMethod) -> IntrospectionVerifier {
    let builder = IntrospectionVerifier::builder(a.url("/introspect").parse().unwrap(), RESOURCE)
        .issuer(a.base.as_str())
        .http_client(dev_http())
        .clock(a.clock.clone());
    match method {
        ClientAuthMethod::ClientSecretPost => builder.client_secret_post(&rs.0, &rs.1),
        _ => builder.client_secret_basic(&rs.0, &rs.1),
    }
    .build()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_tokens_by_introspection_through_the_layer() {
    let a = As::start().await;
    let service = a.service_client().await;
    for method in [ClientAuthMethod::ClientSecretBasic, ClientAuthMethod::ClientSecretPost] {
        let rs = a.resource_server(method, RESOURCE).await;
        let verifier = introspection(&a, &rs, method);
        let resource = ProtectedResource::new(RESOURCE).unwrap().authorization_server(a.base.as_str());
        let app = serve(whoami_app(resource.bearer_auth(verifier).require_scopes(["notes:read"]))).await;

        let token = a.token(&service, "notes:read", RESOURCE).await;
        assert!(token.starts_with("af_at_"));
        let r = get(&format!("{app}/whoami"), Some(&token)).await;
        assert_eq!(r.status, 200, "{method:?}: {:?}", r.body);
        assert_eq!(r.body, json!({"sub": service.0, "client_id": service.0, "scope": "notes:read", "aud": [RESOURCE]}));

        // A token for another resource is refused (RFC 8707), with a challenge pointing at our metadata.
        let other = a.token(&service, "notes:read", OTHER).await;
        let r = get(&format!("{app}/whoami"), Some(&other)).await;
        assert_eq!(r.status, 401);
        assert_eq!(
            r.header("www-authenticate"),
            Some(
                "Bearer error=\"invalid_token\", scope=\"notes:read\", \
                 resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\""
            )
        );
        // Enough audience but too little scope: 403 naming the scope.
        let write_only = a.token(&service, "notes:write", RESOURCE).await;
        let r = get(&format!("{app}/whoami"), Some(&write_only)).await;
        assert_eq!(r.status, 403);
        assert!(r
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer error=\"insufficient_scope\", scope=\"notes:read\""));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_at_the_introspection_endpoint_are_unavailable_not_invalid() {
    let a = As::start().await;
    let service = a.service_client().await;
    let (id, _) = a.resource_server(ClientAuthMethod::ClientSecretBasic, RESOURCE).await;
    let verifier = introspection(&a, &(id, "af_cs_wrong".into()), ClientAuthMethod::ClientSecretBasic);
    let token = a.token(&service, "notes:read", RESOURCE).await;
    assert!(matches!(verifier.verify(&token).await, Err(VerifyError::Unavailable(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_takes_effect_when_the_cache_entry_ends() {
    let a = As::start().await;
    let service = a.service_client().await;
    let rs = a.resource_server(ClientAuthMethod::ClientSecretBasic, RESOURCE).await;
    let verifier = IntrospectionVerifier::builder(a.url("/introspect").parse().unwrap(), RESOURCE)
        .client_secret_basic(&rs.0, &rs.1)
        .http_client(dev_http())
        .clock(a.clock.clone())
        .cache_max_ttl(Duration::from_secs(30))
        .negative_cache_ttl(Duration::from_secs(5))
        .build()
        .unwrap();
    let token = a.token(&service, "notes:read", RESOURCE).await;
    let verified = verifier.verify(&token).await.unwrap();
    assert_eq!(verified.subject.as_deref(), Some(service.0.as_str()));
    assert_eq!(verified.issuer.as_deref(), Some(a.base.as_str()));

    a.revoke(&service, &token).await;
    // Still inside the positive cache: accepted without asking.
    a.clock.advance(Duration::from_secs(29));
    verifier.verify(&token).await.expect("cached until max TTL");
    // The entry ends; the authorization server says inactive.
    a.clock.advance(Duration::from_secs(1));
    assert_eq!(verifier.verify(&token).await, Err(VerifyError::invalid("the token is not active")));

    // Eviction forces a fresh answer at once.
    let fresh = a.token(&service, "notes:read", RESOURCE).await;
    verifier.verify(&fresh).await.unwrap();
    a.revoke(&service, &fresh).await;
    verifier.evict(&fresh).await;
    assert!(verifier.verify(&fresh).await.is_err());

    // Expiry: the server's tokens live an hour; the cache never serves one past its exp.
    let short = a.token(&service, "notes:read", RESOURCE).await;
    verifier.verify(&short).await.unwrap();
    a.clock.advance(Duration::from_secs(3600));
    assert!(verifier.verify(&short).await.is_err());
}

fn jwt_server_policy() -> Policy {
    Policy { access_token_format: AccessTokenFormat::Jwt, ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_tokens_verify_locally_with_discovered_keys() {
    let a = As::start_with(|b| b.policy(jwt_server_policy())).await;
    let service = a.service_client().await;
    let verifier =
        JwtVerifier::builder(a.base.as_str(), RESOURCE).http_client(dev_http()).clock(a.clock.clone()).build().unwrap();

    let token = a.token(&service, "notes:read notes:write", RESOURCE).await;
    assert_eq!(token.split('.').count(), 3);
    let verified = verifier.verify(&token).await.unwrap();
    assert_eq!(verified.subject.as_deref(), Some(service.0.as_str()));
    assert_eq!(verified.client_id.as_deref(), Some(service.0.as_str()));
    assert!(verified.has_scope("notes:read") && verified.has_scope("notes:write"));
    assert_eq!(verified.audience, vec![RESOURCE.to_owned()]);
    assert_eq!(verified.issuer.as_deref(), Some(a.base.as_str()));
    assert!(verified.claim("jti").is_some());
    assert_eq!(verifier.jwks_fetches(), 1);

    // Wrong audience.
    let other = a.token(&service, "notes:read", OTHER).await;
    assert!(matches!(verifier.verify(&other).await, Err(VerifyError::Invalid(_))));
    // Another issuer.
    let wrong_issuer = JwtVerifier::builder("http://127.0.0.1:1", RESOURCE)
        .jwks_uri(a.url("/jwks.json").parse().unwrap())
        .http_client(dev_http())
        .clock(a.clock.clone())
        .build()
        .unwrap();
    assert!(matches!(wrong_issuer.verify(&token).await, Err(VerifyError::Invalid(_))));
    // Expired (60 minutes plus the leeway).
    a.clock.advance(Duration::from_secs(3600 + 31));
    assert!(matches!(verifier.verify(&token).await, Err(VerifyError::Invalid(_))));
    // The key set was reused throughout (its refresh interval is 5 minutes: one refresh for the hour).
    assert_eq!(verifier.jwks_fetches(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_rotation_is_picked_up_on_unknown_kid_with_a_rate_limit() {
    let a = As::start_with(|b| b.policy(jwt_server_policy())).await;
    let service = a.service_client().await;
    let verifier = JwtVerifier::builder(a.base.as_str(), RESOURCE)
        .jwks_uri(a.url("/jwks.json").parse().unwrap())
        .http_client(dev_http())
        .clock(a.clock.clone())
        .build()
        .unwrap();
    let first = a.token(&service, "notes:read", RESOURCE).await;
    verifier.verify(&first).await.unwrap();
    assert_eq!(verifier.jwks_fetches(), 1);

    // Rotate: a newer key in storage; the server re-reads its keys after a minute and signs with it.
    a.clock.advance(Duration::from_secs(1));
    let keys = authflow_server::keys::KeyRing::new(a.store.clone(), Algorithm::ES256);
    let new_kid = keys.create(a.now()).await.unwrap();
    a.clock.advance(Duration::from_secs(61));
    let second = a.token(&service, "notes:read", RESOURCE).await;
    assert_eq!(kid_of(&second).as_deref(), Some(new_kid.as_str()), "the server signs with the new key");

    // Unknown kid: one refetch, then it verifies. The old key still verifies too (overlap).
    verifier.verify(&second).await.expect("the new key is fetched");
    assert_eq!(verifier.jwks_fetches(), 2);
    verifier.verify(&first).await.unwrap();

    // Tokens with made-up key ids cannot force fetches: at most one per 30 s.
    let mut entropy = OsEntropy;
    let rogue = PrivateKey::generate(Algorithm::ES256, &mut entropy, Some("made-up".into()));
    let forged = authflow_core::jose::AccessTokenClaims::new(
        a.base.as_str(),
        "mallory",
        authflow_core::jose::Audience::one(RESOURCE),
        "x",
        a.now(),
        Duration::from_secs(60),
        &mut entropy,
    )
    .sign(&rogue)
    .unwrap();
    for _ in 0..20 {
        assert!(matches!(verifier.verify(&forged).await, Err(VerifyError::Invalid(_))));
    }
    assert_eq!(verifier.jwks_fetches(), 2, "no fetch within 30 s of the last");
    a.clock.advance(Duration::from_secs(30));
    for _ in 0..20 {
        assert!(matches!(verifier.verify(&forged).await, Err(VerifyError::Invalid(_))));
    }
    assert_eq!(verifier.jwks_fetches(), 3, "one fetch per interval");

    // Disallowed algorithms and malformed tokens are refused without looking at keys.
    for bad in ["eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln", "a.b.c", "x"] {
        assert!(matches!(verifier.verify(bad).await, Err(VerifyError::Invalid(_))), "{bad}");
    }
    assert_eq!(verifier.jwks_fetches(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_or_introspection_routes_by_shape() {
    let a = As::start_with(|b| b.policy(jwt_server_policy())).await;
    let service = a.service_client().await;
    let rs = a.resource_server(ClientAuthMethod::ClientSecretBasic, RESOURCE).await;
    let jwt =
        JwtVerifier::builder(a.base.as_str(), RESOURCE).http_client(dev_http()).clock(a.clock.clone()).build().unwrap();
    let both = JwtOrIntrospection::new(jwt.clone(), introspection(&a, &rs, ClientAuthMethod::ClientSecretBasic));
    let token = a.token(&service, "notes:read", RESOURCE).await;
    both.verify(&token).await.unwrap();
    assert_eq!(jwt.jwks_fetches(), 1, "the JWT went to local verification");
    assert!(both.verify("af_at_not-a-real-token").await.is_err());
    assert_eq!(jwt.jwks_fetches(), 1);
}

/// The `kid` of a compact JWS header.
fn kid_of(token: &str) -> Option<String> {
    use base64::Engine;
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value["kid"].as_str().map(str::to_owned)
}
