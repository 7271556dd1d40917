//! Signing keys: sealed at rest with the key encryption key, and rotated with an overlap during which both
//! keys are published — over real HTTP, with the server's manual clock.

mod common;

use std::time::Duration;

use authflow_core::jose::{JwkSet, Verified};
use authflow_server::keys::{KeyEncryptionKey, KeyRing};
use authflow_server::policy::AccessTokenFormat;
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

/// A JWT access token from the server, and the `kid` that signed it.
async fn token_kid(s: &TestServer, client: &(String, String)) -> String {
    let cc = [("grant_type", "client_credentials"), ("resource", RESOURCE)];
    let reply = s.post_form("/token", &cc, Some((&client.0, &client.1))).await;
    let token = reply.assert_token()["access_token"].as_str().unwrap().to_owned();
    let jwks = published(s).await;
    let validation = authflow_core::jose::Validation::access_token(s.clock_now(), &s.base, RESOURCE);
    let verified: Verified =
        authflow_core::jose::decode(&token, &jwks, &validation).expect("verifies against the JWKS");
    verified.header.kid.clone().expect("a kid")
}

async fn published(s: &TestServer) -> JwkSet {
    s.http.get(s.url("/jwks.json")).send().await.unwrap().json().await.unwrap()
}

fn kids(set: &JwkSet) -> Vec<String> {
    let mut kids: Vec<String> = set.keys().iter().filter_map(|k| k.kid().map(str::to_owned)).collect();
    kids.sort();
    kids
}

on_every_backend!(keys_are_sealed_at_rest, rotation_publishes_first_and_switches_after_the_overlap);

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

#[test]
fn key_encryption_keys_must_be_32_bytes() {
    assert!(KeyEncryptionKey::from_base64(KEK).is_ok());
    assert!(KeyEncryptionKey::from_base64("q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80").is_ok(), "unpadded");
    assert!(KeyEncryptionKey::from_base64("c2hvcnQ=").is_err(), "too short");
    assert!(KeyEncryptionKey::from_base64("not base64 at all!").is_err());
    assert!(!format!("{:?}", kek()).contains("q83"), "Debug never shows the key");
}
