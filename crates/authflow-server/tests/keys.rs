//! Signing keys: sealed at rest with the key encryption key, and rotated with an overlap during which both
//! keys are published — over real HTTP, with the server's manual clock.

mod common;

use std::time::Duration;

use authflow_core::jose::{Algorithm, JwkSet, Verified};
use authflow_server::keys::{KeyEncryptionKey, KeyRing};
use authflow_server::policy::AccessTokenFormat;
use common::browser::{add_user, code_for, exchange, Authz, REDIRECT};
use common::{Backend, ClientSpec, TestServer};

const RESOURCE: &str = "https://mcp.example/mcp";
const KEK: &str = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";

fn kek() -> KeyEncryptionKey {
    KeyEncryptionKey::from_base64(KEK).unwrap()
}

async fn jwt_server(backend: Backend) -> TestServer {
    TestServer::start_with(backend, |b| {
        b.policy(authflow_server::Policy { access_token_format: AccessTokenFormat::Jwt, ..Default::default() })
            .key_encryption(kek())
    })
    .await
}

/// A server signing with `algorithm`, issuing JWT access tokens, knowing the `openid` scope.
async fn signing_server(backend: Backend, algorithm: Algorithm) -> TestServer {
    TestServer::start_with(backend, |b| {
        b.policy(authflow_server::Policy {
            access_token_format: AccessTokenFormat::Jwt,
            signing_algorithm: algorithm,
            ..Default::default()
        })
        .scopes(vec!["notes:read".into()])
        .key_encryption(kek())
    })
    .await
}

/// A JWT access token from the server, and the `kid` that signed it.
async fn token_kid(s: &TestServer, client: &(String, String)) -> String {
    signed_token(s, client).await.1.header.kid.clone().expect("a kid")
}

/// A client-credentials JWT access token, verified against the published JWKS.
async fn signed_token(s: &TestServer, client: &(String, String)) -> (String, Verified) {
    let cc = [("grant_type", "client_credentials"), ("resource", RESOURCE)];
    let reply = s.post_form("/token", &cc, Some((&client.0, &client.1))).await;
    let token = reply.assert_token()["access_token"].as_str().unwrap().to_owned();
    let verified = verify_access_token(s, &token).await.expect("verifies against the JWKS");
    (token, verified)
}

async fn verify_access_token(s: &TestServer, token: &str) -> Result<Verified, authflow_core::jose::JoseError> {
    let jwks = published(s).await;
    let validation = authflow_core::jose::Validation::access_token(s.clock_now(), &s.base, RESOURCE);
    authflow_core::jose::decode(token, &jwks, &validation)
}

/// `id_token_signing_alg_values_supported` in the OpenID Connect discovery document.
async fn advertised(s: &TestServer) -> serde_json::Value {
    let reply = s.http.get(s.url("/.well-known/openid-configuration")).send().await.unwrap();
    let document: serde_json::Value = reply.json().await.unwrap();
    document["id_token_signing_alg_values_supported"].clone()
}

async fn published(s: &TestServer) -> JwkSet {
    s.http.get(s.url("/jwks.json")).send().await.unwrap().json().await.unwrap()
}

fn kids(set: &JwkSet) -> Vec<String> {
    let mut kids: Vec<String> = set.keys().iter().filter_map(|k| k.kid().map(str::to_owned)).collect();
    kids.sort();
    kids
}

on_every_backend!(
    keys_are_sealed_at_rest,
    rotation_publishes_first_and_switches_after_the_overlap,
    an_eddsa_deployment_signs_access_and_id_tokens_with_eddsa,
    switching_to_eddsa_rotates_and_keeps_the_es256_key_published,
);

async fn keys_are_sealed_at_rest(backend: Backend) {
    let s = jwt_server(backend).await;
    let (id, secret) = s.add_client(ClientSpec::service()).await;
    let client = (id, secret.unwrap());
    let kid = token_kid(&s, &client).await;

    let stored = s.store.list_signing_keys().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].kid, kid);
    assert!(stored[0].private_key.starts_with(b"afk1"), "stored sealed");
    assert!(stored[0].private_key.len() > 4 + 12 + 16, "nonce and tag around the key");

    // Without the key, or with another, the stored key is useless.
    let now = s.clock_now();
    let without = KeyRing::new(s.store.clone(), authflow_core::jose::Algorithm::ES256);
    assert!(without.signing_key(now).await.is_err(), "no key encryption key: cannot sign");
    let other = KeyEncryptionKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
    let wrong = KeyRing::new(s.store.clone(), authflow_core::jose::Algorithm::ES256).with_encryption(Some(other));
    assert!(wrong.signing_key(now).await.is_err(), "another key encryption key: cannot sign");
    let right = KeyRing::new(s.store.clone(), authflow_core::jose::Algorithm::ES256).with_encryption(Some(kek()));
    assert_eq!(right.signing_key(now).await.unwrap().kid(), kid, "the configured one opens it");
    s.stop().await;
}

async fn rotation_publishes_first_and_switches_after_the_overlap(backend: Backend) {
    let s = jwt_server(backend).await;
    let (id, secret) = s.add_client(ClientSpec::service()).await;
    let client = (id, secret.unwrap());
    let old = token_kid(&s, &client).await;

    // What `authflow key rotate` does, from another process: through the shared store.
    let admin = KeyRing::new(s.store.clone(), authflow_core::jose::Algorithm::ES256).with_encryption(Some(kek()));
    let overlap = Duration::from_secs(600);
    let keep = Duration::from_secs(3600 + 60);
    let new = admin.rotate(s.clock_now(), overlap, keep).await.unwrap();
    assert_ne!(new, old);

    // Within a minute every replica publishes both, and keeps signing with the old one.
    s.advance(Duration::from_secs(61));
    assert_eq!(kids(&published(&s).await), {
        let mut k = vec![old.clone(), new.clone()];
        k.sort();
        k
    });
    assert_eq!(token_kid(&s, &client).await, old, "the new key does not sign before the overlap ends");

    // After the overlap (and one refresh) the new key signs; the old one is still published for its tokens.
    s.advance(Duration::from_secs(600));
    assert_eq!(token_kid(&s, &client).await, new);
    assert!(kids(&published(&s).await).contains(&old), "old tokens still verify");

    // Once every token it signed has expired, the old key is gone.
    s.advance(keep);
    assert_eq!(kids(&published(&s).await), vec![new.clone()]);
    s.stop().await;
}

/// `signing_algorithm: EdDSA`: the key, the JWKS, JWT access tokens, ID tokens and discovery all say EdDSA.
async fn an_eddsa_deployment_signs_access_and_id_tokens_with_eddsa(backend: Backend) {
    use authflow_core::jose::{decode, token_hash_half, IdTokenClaims, Validation};

    let s = signing_server(backend, Algorithm::EdDSA).await;
    add_user(&s, "alice", false).await;
    let mut app = ClientSpec::public_app();
    app.scope = Some("openid notes:read".into());
    let (client_id, _) = s.add_client(app).await;

    let authz = Authz::new(&client_id).set("scope", "openid notes:read").set("nonce", "n-ed");
    let code = code_for(&s, &authz).await;
    let body = exchange(&s, &client_id, &code, REDIRECT, authz.verifier.expose()).await.assert_token().clone();
    let access = body["access_token"].as_str().unwrap();
    let id_token = body["id_token"].as_str().expect("an ID token");

    let jwks = published(&s).await;
    assert_eq!(jwks.len(), 1, "one key");
    let key = &jwks.keys()[0];
    assert_eq!((key.kty(), key.crv()), ("OKP", Some("Ed25519")), "an Ed25519 key is published");
    let only_eddsa = [Algorithm::EdDSA];
    let at = Validation::access_token(s.clock_now(), &s.base, RESOURCE).algorithms(&only_eddsa);
    let verified = decode(access, &jwks, &at).expect("the access token verifies against /jwks.json");
    assert_eq!(verified.header.alg, Algorithm::EdDSA);
    assert_eq!(verified.header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(verified.header.kid.as_deref(), key.kid());

    let validation = Validation::new(s.clock_now())
        .issuer(s.base.clone())
        .audience(client_id.clone())
        .typ("JWT")
        .algorithms(&only_eddsa);
    let verified = decode(id_token, &jwks, &validation).expect("the ID token verifies against /jwks.json");
    assert_eq!(verified.header.alg, Algorithm::EdDSA);
    let claims: IdTokenClaims = verified.claims_as().unwrap();
    assert_eq!(claims.nonce.as_deref(), Some("n-ed"));
    assert_eq!(claims.at_hash, Some(token_hash_half(Algorithm::EdDSA, access)), "at_hash with SHA-512");

    // Client credentials too, and the discovery document says so.
    let (id, secret) = s.add_client(ClientSpec::service()).await;
    let (_, verified) = signed_token(&s, &(id, secret.unwrap())).await;
    assert_eq!(verified.header.alg, Algorithm::EdDSA);
    assert_eq!(advertised(&s).await, serde_json::json!(["EdDSA"]));
    let stored = s.store.list_signing_keys().await.unwrap();
    assert_eq!(stored.iter().map(|k| k.alg.as_str()).collect::<Vec<_>>(), ["EdDSA"]);
    s.stop().await;
}

/// A deployment that signed with ES256 switches to EdDSA: like a rotation, the EdDSA key is published at
/// once and signs after the overlap; the ES256 key keeps signing until then and stays published until every
/// token it signed has expired.
async fn switching_to_eddsa_rotates_and_keeps_the_es256_key_published(backend: Backend) {
    let s = signing_server(backend, Algorithm::EdDSA).await;
    // What the ES256 deployment left in the shared store.
    let earlier = KeyRing::new(s.store.clone(), Algorithm::ES256).with_encryption(Some(kek()));
    let old = earlier.create(s.clock_now()).await.unwrap();
    let start = s.clock_now();
    let (id, secret) = s.add_client(ClientSpec::service()).await;
    let client = (id, secret.unwrap());

    // The first request notices the ES256 key: an EdDSA key is published now, the ES256 one still signs.
    let (old_token, verified) = signed_token(&s, &client).await;
    assert_eq!(verified.header.alg, Algorithm::ES256, "no token is signed with a key resource servers lack");
    assert_eq!(verified.header.kid.as_deref(), Some(old.as_str()));
    let stored = s.store.list_signing_keys().await.unwrap();
    assert_eq!(stored.len(), 2, "{stored:?}");
    let new = stored.iter().find(|k| k.kid != old).unwrap();
    assert_eq!(new.alg, "EdDSA");
    assert_eq!(new.not_before, start + Duration::from_secs(600), "signs after the overlap");
    let retiring = stored.iter().find(|k| k.kid == old).unwrap();
    assert_eq!(retiring.retire_at, Some(start + Duration::from_secs(600)));
    assert_eq!(retiring.expires_at, Some(start + Duration::from_secs(600 + 3600 + 60)), "token lifetime + skew");
    let new = new.kid.clone();
    let both = {
        let mut k = vec![old.clone(), new.clone()];
        k.sort();
        k
    };
    assert_eq!(kids(&published(&s).await), both);
    assert_eq!(advertised(&s).await, serde_json::json!(["EdDSA", "ES256"]), "both sign ID tokens meanwhile");

    // After the overlap (and one refresh) EdDSA signs; the ES256 key stays published for its tokens.
    s.advance(Duration::from_secs(600 + 61));
    let (_, verified) = signed_token(&s, &client).await;
    assert_eq!((verified.header.alg, verified.header.kid.as_deref()), (Algorithm::EdDSA, Some(new.as_str())));
    assert_eq!(kids(&published(&s).await), both);
    let still = verify_access_token(&s, &old_token).await.expect("a token the ES256 key signed still verifies");
    assert_eq!(still.header.alg, Algorithm::ES256);
    assert_eq!(advertised(&s).await, serde_json::json!(["EdDSA"]));
    assert_eq!(s.store.list_signing_keys().await.unwrap().len(), 2, "one rotation, no more");

    // Once every token it signed has expired, the ES256 key is gone.
    s.advance(Duration::from_secs(3600 + 60));
    assert_eq!(kids(&published(&s).await), vec![new.clone()]);
    assert_eq!(token_kid(&s, &client).await, new);
    s.stop().await;
}

#[tokio::test]
async fn authflow_never_signs_with_rsa() {
    use authflow_server::{AuthServer, BuildError, Policy};
    for algorithm in [Algorithm::RS256, Algorithm::PS256] {
        let store: std::sync::Arc<dyn authflow_store::Store> = std::sync::Arc::new(authflow_store::MemoryStore::new());
        let policy = Policy { signing_algorithm: algorithm, ..Policy::default() };
        let built = AuthServer::builder("http://127.0.0.1:8000".parse().unwrap(), store).policy(policy).build();
        match built {
            Err(e @ BuildError::UnsupportedSigningAlgorithm(_)) => {
                assert_eq!(
                    e.to_string(),
                    format!("signing algorithm: authflow signs with ES256 or EdDSA only, not {algorithm}")
                )
            }
            other => panic!("{algorithm}: {other:?}"),
        }
        assert!(authflow_server::keys::signing_algorithm(algorithm).is_err());
    }
    for algorithm in Algorithm::SIGNING {
        assert_eq!(authflow_server::keys::signing_algorithm(algorithm), Ok(algorithm));
    }
}

#[test]
fn key_encryption_keys_must_be_32_bytes() {
    assert!(KeyEncryptionKey::from_base64(KEK).is_ok());
    assert!(KeyEncryptionKey::from_base64("q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80").is_ok(), "unpadded");
    assert!(KeyEncryptionKey::from_base64("c2hvcnQ=").is_err(), "too short");
    assert!(KeyEncryptionKey::from_base64("not base64 at all!").is_err());
    assert!(!format!("{:?}", kek()).contains("q83"), "Debug never shows the key");
}
