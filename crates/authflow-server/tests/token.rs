//! The token, introspection and revocation endpoints over real HTTP, on every backend.
//!
//! Authorization codes are seeded straight into storage here so the token endpoint's own rules are tested in
//! isolation; tests/authorize.rs drives the same exchange through the login and consent pages.

mod common;
mod rsa_key;

use std::time::Duration;

use authflow_core::jose::{jws, Algorithm, PrivateKey};
use authflow_core::pkce::{CodeChallenge, CodeChallengeMethod, CodeVerifier};
use authflow_core::{ClientAuthMethod, GrantType, Scope, SecretToken, TokenKind};
use authflow_server::OsEntropy;
use authflow_store::testsuite::Fixture;
use authflow_store::{AuthorizationCode, Grant, StoreError, User};
use common::{Backend, ClientSpec, TestServer};
use serde_json::{json, Value};

const REDIRECT: &str = "http://127.0.0.1:33418/callback";
const RESOURCE: &str = "https://mcp.example.com/mcp";

/// Seed an authorization code as /authorize would issue it; returns (code, verifier).
async fn seed_code(s: &TestServer, client_id: &str, scope: &str, resources: &[&str]) -> (String, String) {
    let now = s.clock_now();
    let user =
        User { id: "user-1".into(), username: "alice".into(), password_hash: None, created_at: now, disabled: false };
    match s.store.insert_user(&user).await {
        Ok(()) | Err(StoreError::Conflict(_)) => {}
        Err(e) => panic!("insert user: {e}"),
    }
    let grant = Grant {
        id: authflow_core::token::grant_id(now, &mut OsEntropy),
        client_id: client_id.into(),
        subject: Some("user-1".into()),
        created_at: now,
        expires_at: now + Duration::from_secs(90 * 86400),
        revoked_at: None,
    };
    s.store.insert_grant(&grant).await.unwrap();
    let verifier = CodeVerifier::generate(&mut OsEntropy);
    let code = SecretToken::generate(TokenKind::AuthorizationCode, now, &mut OsEntropy);
    s.store
        .insert_code(&AuthorizationCode {
            code_hash: code.hash(),
            grant_id: grant.id,
            client_id: client_id.into(),
            subject: "user-1".into(),
            redirect_uri: REDIRECT.into(),
            scope: Some(Scope::parse(scope).unwrap()),
            resources: resources.iter().map(|r| r.to_string()).collect(),
            code_challenge: CodeChallenge::s256(&verifier).as_str().to_owned(),
            code_challenge_method: CodeChallengeMethod::S256,
            nonce: None,
            auth_time: now,
            issued_at: now,
            expires_at: now + Duration::from_secs(60),
        })
        .await
        .unwrap();
    (code.expose().to_owned(), verifier.expose().to_owned())
}

async fn exchange(s: &TestServer, client_id: &str, code: &str, verifier: &str) -> common::Reply {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier),
        ("client_id", client_id),
    ];
    s.post_form("/token", &form, None).await
}

/// Redeem `token` as the public client `client_id`.
async fn refresh(s: &TestServer, client_id: &str, token: &str) -> common::Reply {
    let form = [("grant_type", "refresh_token"), ("refresh_token", token), ("client_id", client_id)];
    s.post_form("/token", &form, None).await
}

/// A confidential client allowed to introspect tokens for `RESOURCE` (a resource server).
async fn resource_server(s: &TestServer) -> (String, String) {
    let (id, secret) = s.add_client(ClientSpec::service().grants(&[]).resources(&[RESOURCE])).await;
    (id, secret.unwrap())
}

async fn introspect(s: &TestServer, caller: &(String, String), token: &str) -> Value {
    let r = s.post_form("/introspect", &[("token", token)], Some((&caller.0, &caller.1))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    r.body
}

async fn code_flow_issues_audience_bound_tokens(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (client, _) = s.add_client(ClientSpec::public_app()).await;
    let rs = resource_server(&s).await;
    let (code, verifier) = seed_code(&s, &client, "notes:read", &[RESOURCE]).await;
    let r = exchange(&s, &client, &code, &verifier).await;
    let body = r.assert_token().clone();
    assert_eq!(body["scope"], "notes:read");
    assert_eq!(body["expires_in"], 3600);
    assert!(body["refresh_token"].as_str().unwrap().starts_with("af_rt_"));

    let info = introspect(&s, &rs, body["access_token"].as_str().unwrap()).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["aud"], RESOURCE);
    assert_eq!(info["client_id"], client.as_str());
    assert_eq!(info["sub"], "user-1");
    assert_eq!(info["scope"], "notes:read");
    assert_eq!(info["iss"], s.base.as_str());
    assert_eq!(info["token_type"], "Bearer");
    assert_eq!(info["exp"].as_u64().unwrap(), info["iat"].as_u64().unwrap() + 3600);

    // A resource server for another resource sees nothing.
    let (other, other_secret) =
        s.add_client(ClientSpec::service().grants(&[]).resources(&["https://other.example/mcp"])).await;
    let info = introspect(&s, &(other, other_secret.unwrap()), body["access_token"].as_str().unwrap()).await;
    assert_eq!(info, json!({ "active": false }));
    s.stop().await;
}

async fn code_is_single_use_and_replay_revokes_what_it_issued(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (client, _) = s.add_client(ClientSpec::public_app()).await;
    let rs = resource_server(&s).await;
    let (code, verifier) = seed_code(&s, &client, "notes:read", &[RESOURCE]).await;
    let first = exchange(&s, &client, &code, &verifier).await;
    let first = first.assert_token().clone();
    let replay = exchange(&s, &client, &code, &verifier).await;
    replay.assert_error(400, "invalid_grant");
    // RFC 9700 §4.2.4: everything issued from the replayed code is revoked.
    assert_eq!(introspect(&s, &rs, first["access_token"].as_str().unwrap()).await["active"], false);
    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", first["refresh_token"].as_str().unwrap()),
        ("client_id", &client),
    ];
    s.post_form("/token", &refresh, None).await.assert_error(400, "invalid_grant");
    s.stop().await;
}

async fn code_exchange_checks_every_binding(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (client, _) = s.add_client(ClientSpec::public_app()).await;
    let (other, _) = s.add_client(ClientSpec::public_app()).await;

    // Wrong verifier.
    let (code, _) = seed_code(&s, &client, "notes:read", &[]).await;
    exchange(&s, &client, &code, CodeVerifier::generate(&mut OsEntropy).expose())
        .await
        .assert_error(400, "invalid_grant");
    // Missing verifier.
    let (code, _) = seed_code(&s, &client, "notes:read", &[]).await;
    let form =
        [("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT), ("client_id", &client)];
    s.post_form("/token", &form, None).await.assert_error(400, "invalid_request");
    // Malformed verifier (a trailing newline is not a verifier character).
    let (code, verifier) = seed_code(&s, &client, "notes:read", &[]).await;
    exchange(&s, &client, &code, &format!("{verifier}\n")).await.assert_error(400, "invalid_request");
    // Another client.
    let (code, verifier) = seed_code(&s, &client, "notes:read", &[]).await;
    exchange(&s, &other, &code, &verifier).await.assert_error(400, "invalid_grant");
    // Another redirect URI.
    let (code, verifier) = seed_code(&s, &client, "notes:read", &[]).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", "http://127.0.0.1:33418/callback/"),
        ("code_verifier", &verifier),
        ("client_id", &client),
    ];
    s.post_form("/token", &form, None).await.assert_error(400, "invalid_grant");
    // Expired.
    let (code, verifier) = seed_code(&s, &client, "notes:read", &[]).await;
    s.advance(Duration::from_secs(61));
    exchange(&s, &client, &code, &verifier).await.assert_error(400, "invalid_grant");
    // Unknown code.
    exchange(&s, &client, "af_ac_nope", &verifier).await.assert_error(400, "invalid_grant");
    // A resource the code does not cover.
    let (code, verifier) = seed_code(&s, &client, "notes:read", &[RESOURCE]).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", &verifier),
        ("client_id", &client),
        ("resource", "https://evil.example/mcp"),
    ];
    s.post_form("/token", &form, None).await.assert_error(400, "invalid_target");
    s.stop().await;
}

async fn refresh_rotates_and_reuse_revokes_the_family(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (client, _) = s.add_client(ClientSpec::public_app()).await;
    let rs = resource_server(&s).await;
    let (code, verifier) = seed_code(&s, &client, "notes:read notes:write", &[RESOURCE]).await;
    let t1 = exchange(&s, &client, &code, &verifier).await.assert_token().clone();
    let rt1 = t1["refresh_token"].as_str().unwrap().to_owned();

    // Narrowing is allowed, widening is not.
    let narrow = [
        ("grant_type", "refresh_token"),
        ("refresh_token", rt1.as_str()),
        ("client_id", client.as_str()),
        ("scope", "notes:read"),
    ];
    let t2 = s.post_form("/token", &narrow, None).await.assert_token().clone();
    assert_eq!(t2["scope"], "notes:read");
    let rt2 = t2["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt1, rt2, "every refresh rotates the refresh token");
    let wide = [
        ("grant_type", "refresh_token"),
        ("refresh_token", rt2.as_str()),
        ("client_id", client.as_str()),
        ("scope", "notes:read admin"),
    ];
    s.post_form("/token", &wide, None).await.assert_error(400, "invalid_scope");

    // The rotated token's full scope survives the narrowed refresh.
    let again = [("grant_type", "refresh_token"), ("refresh_token", rt2.as_str()), ("client_id", client.as_str())];
    let t3 = s.post_form("/token", &again, None).await.assert_token().clone();
    assert_eq!(t3["scope"], "notes:read notes:write");
    assert_eq!(introspect(&s, &rs, t3["access_token"].as_str().unwrap()).await["active"], true);

    // Reusing rt1 (already rotated) revokes the whole family, including t3.
    let reuse = [("grant_type", "refresh_token"), ("refresh_token", rt1.as_str()), ("client_id", client.as_str())];
    s.post_form("/token", &reuse, None).await.assert_error(400, "invalid_grant");
    assert_eq!(introspect(&s, &rs, t3["access_token"].as_str().unwrap()).await["active"], false);
    let rt3 = t3["refresh_token"].as_str().unwrap();
    let latest = [("grant_type", "refresh_token"), ("refresh_token", rt3), ("client_id", client.as_str())];
    s.post_form("/token", &latest, None).await.assert_error(400, "invalid_grant");
    s.stop().await;
}

/// A refresh whose access token cannot be stored uses nothing up: the client's retry with the same refresh token
/// succeeds. (Had the rotation been written first, the retry would be taken for reuse and the grant revoked.)
/// SQLite only, because the fault is a trigger the test puts on the database file the server uses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_that_fails_to_store_its_token_can_be_retried() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("authflow.db");
    let store = authflow_store::sqlite::SqliteStore::connect(&format!("sqlite://{}", path.display()), 4).await.unwrap();
    store.migrate().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let s = TestServer::start_with_fixture(Fixture::new(store), listener, |b| b).await;
    let (client, _) = s.add_client(ClientSpec::public_app()).await;
    let rs = resource_server(&s).await;
    let (code, verifier) = seed_code(&s, &client, "notes:read", &[RESOURCE]).await;
    let rt = exchange(&s, &client, &code, &verifier).await.assert_token()["refresh_token"].as_str().unwrap().to_owned();

    let db = rusqlite::Connection::open(&path).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute_batch(
        "CREATE TRIGGER refuse_access_tokens BEFORE INSERT ON access_tokens BEGIN SELECT RAISE(ABORT, 'refused'); END",
    )
    .unwrap();
    let failed = refresh(&s, &client, &rt).await;
    failed.assert_error(500, "server_error");

    db.execute_batch("DROP TRIGGER refuse_access_tokens").unwrap();
    let t = refresh(&s, &client, &rt).await.assert_token().clone();
    assert_eq!(introspect(&s, &rs, t["access_token"].as_str().unwrap()).await["active"], true);
    // The retry rotated the token as a first use would: the next one works, the old one is spent.
    refresh(&s, &client, t["refresh_token"].as_str().unwrap()).await.assert_token();
    refresh(&s, &client, &rt).await.assert_error(400, "invalid_grant");
    s.stop().await;
}

/// A disabled or removed user's refresh tokens stop working even before their grants are revoked; revoking
/// their grants (what `authflow user disable` does) kills the access tokens too.
async fn a_disabled_users_tokens_stop_working(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (client, _) = s.add_client(ClientSpec::public_app()).await;
    let rs = resource_server(&s).await;
    let (code, verifier) = seed_code(&s, &client, "notes:read", &[RESOURCE]).await;
    let t1 = exchange(&s, &client, &code, &verifier).await.assert_token().clone();

    let mut alice = s.store.find_user("user-1").await.unwrap().unwrap();
    alice.disabled = true;
    s.store.update_user(&alice).await.unwrap();
    let refused = refresh(&s, &client, t1["refresh_token"].as_str().unwrap()).await;
    refused.assert_error(400, "invalid_grant");
    assert!(refused.body.get("access_token").is_none());

    // The refusal consumed nothing: once re-enabled, the same refresh token still works.
    alice.disabled = false;
    s.store.update_user(&alice).await.unwrap();
    let t2 = refresh(&s, &client, t1["refresh_token"].as_str().unwrap()).await.assert_token().clone();
    let access = t2["access_token"].as_str().unwrap();
    assert_eq!(introspect(&s, &rs, access).await["active"], true);

    assert_eq!(s.store.revoke_grants_of_subject("user-1", s.clock_now()).await.unwrap(), 1);
    assert_eq!(introspect(&s, &rs, access).await["active"], false, "revoking the user's grants kills access tokens");
    refresh(&s, &client, t2["refresh_token"].as_str().unwrap()).await.assert_error(400, "invalid_grant");

    // A removed user is nobody: a fresh grant for them cannot be refreshed either.
    let (code, verifier) = seed_code(&s, &client, "notes:read", &[RESOURCE]).await;
    let t3 = exchange(&s, &client, &code, &verifier).await.assert_token().clone();
    assert!(s.store.delete_user("user-1").await.unwrap());
    refresh(&s, &client, t3["refresh_token"].as_str().unwrap()).await.assert_error(400, "invalid_grant");
    s.stop().await;
}

/// Introspection answers for the token's client as it is now: disabled (or removed) means inactive, and
/// enabling it again makes its unexpired tokens active again (disabling is not revocation).
async fn a_disabled_clients_tokens_are_inactive(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (id, secret) = s.add_client(ClientSpec::service()).await;
    let cc = [("grant_type", "client_credentials"), ("scope", "notes:read"), ("resource", RESOURCE)];
    let token = s.post_form("/token", &cc, Some((&id, secret.as_deref().unwrap()))).await.assert_token().clone();
    let token = token["access_token"].as_str().unwrap();
    let rs = resource_server(&s).await;
    assert_eq!(introspect(&s, &rs, token).await["active"], true);

    let mut client = s.store.find_client(&id).await.unwrap().unwrap();
    client.disabled = true;
    s.store.update_client(&client).await.unwrap();
    // Changes made outside this process reach it within the client cache's lifetime.
    s.advance(Duration::from_secs(3));
    assert_eq!(introspect(&s, &rs, token).await, json!({ "active": false }));

    client.disabled = false;
    s.store.update_client(&client).await.unwrap();
    s.advance(Duration::from_secs(3));
    assert_eq!(introspect(&s, &rs, token).await["active"], true);
    s.stop().await;
}

/// A refresh token works only for its own client and only until it expires; neither failure changes it.
async fn refresh_tokens_are_bound_to_their_client_and_lifetime(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (client, _) = s.add_client(ClientSpec::public_app()).await;
    let (other, _) = s.add_client(ClientSpec::public_app()).await;
    let (code, verifier) = seed_code(&s, &client, "notes:read", &[RESOURCE]).await;
    let t = exchange(&s, &client, &code, &verifier).await.assert_token().clone();
    let rt = t["refresh_token"].as_str().unwrap();
    refresh(&s, &other, rt).await.assert_error(400, "invalid_grant");
    // The other client's attempt was not a use: the rightful client can still refresh.
    let t2 = refresh(&s, &client, rt).await.assert_token().clone();
    let rt2 = t2["refresh_token"].as_str().unwrap().to_owned();

    s.advance(Duration::from_secs(31 * 86400));
    let refused = refresh(&s, &client, &rt2).await;
    refused.assert_error(400, "invalid_grant");
    assert!(refused.body.get("access_token").is_none());
    s.stop().await;
}

async fn concurrent_refreshes_issue_once(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (client, _) = s.add_client(ClientSpec::public_app()).await;
    let (code, verifier) = seed_code(&s, &client, "notes:read", &[]).await;
    let rt = exchange(&s, &client, &code, &verifier).await.assert_token()["refresh_token"].as_str().unwrap().to_owned();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (http, url, rt, client) = (s.http.clone(), s.url("/token"), rt.clone(), client.clone());
        tasks.push(tokio::spawn(async move {
            let form =
                [("grant_type", "refresh_token"), ("refresh_token", rt.as_str()), ("client_id", client.as_str())];
            http.post(url).form(&form).send().await.unwrap().status().as_u16()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() == 200 {
            ok += 1;
        }
    }
    assert!(ok <= 1, "{ok} concurrent refreshes succeeded");
    s.stop().await;
}

async fn client_credentials_and_client_authentication(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (id, secret) = s.add_client(ClientSpec::service()).await;
    let secret = secret.unwrap();
    let cc = [("grant_type", "client_credentials"), ("scope", "notes:read"), ("resource", RESOURCE)];
    let t = s.post_form("/token", &cc, Some((&id, &secret))).await;
    let body = t.assert_token();
    assert!(body.get("refresh_token").is_none(), "no refresh token for client credentials");
    assert_eq!(body["scope"], "notes:read");
    let rs = resource_server(&s).await;
    let info = introspect(&s, &rs, body["access_token"].as_str().unwrap()).await;
    assert_eq!(
        (info["active"].clone(), info["sub"].clone(), info["aud"].clone()),
        (json!(true), json!(id), json!(RESOURCE))
    );

    // Wrong secret: 401 with a Basic challenge.
    let r = s.post_form("/token", &cc, Some((&id, "af_cs_wrong"))).await;
    r.assert_error(401, "invalid_client");
    assert!(r.header("www-authenticate").unwrap().starts_with("Basic"));
    // Unknown client.
    s.post_form("/token", &cc, Some(("nobody", "x"))).await.assert_error(401, "invalid_client");
    // A registered client_secret_basic client may not switch to client_secret_post.
    let post = [("grant_type", "client_credentials"), ("client_id", id.as_str()), ("client_secret", secret.as_str())];
    s.post_form("/token", &post, None).await.assert_error(401, "invalid_client");
    // Two methods at once.
    s.post_form("/token", &post, Some((&id, &secret))).await.assert_error(400, "invalid_request");
    // A scope the client does not have; a malformed scope; an empty scope is omitted (RFC 6749 §3.1).
    let wide = [("grant_type", "client_credentials"), ("scope", "admin")];
    s.post_form("/token", &wide, Some((&id, &secret))).await.assert_error(400, "invalid_scope");
    let bad = [("grant_type", "client_credentials"), ("scope", "a  b")];
    s.post_form("/token", &bad, Some((&id, &secret))).await.assert_error(400, "invalid_scope");
    // A resource that is not an absolute URI, or has a fragment.
    let bad = [("grant_type", "client_credentials"), ("resource", "https://mcp.example.com/mcp#x")];
    s.post_form("/token", &bad, Some((&id, &secret))).await.assert_error(400, "invalid_target");
    // A public client may not use client credentials; a grant the client is not registered for.
    let (public, _) = s.add_client(ClientSpec::public_app().grants(&[GrantType::ClientCredentials])).await;
    let pc = [("grant_type", "client_credentials"), ("client_id", public.as_str())];
    s.post_form("/token", &pc, None).await.assert_error(400, "unauthorized_client");
    let code = [("grant_type", "authorization_code"), ("code", "x"), ("redirect_uri", REDIRECT)];
    s.post_form("/token", &code, Some((&id, &secret))).await.assert_error(400, "unauthorized_client");
    s.stop().await;
}

async fn malformed_requests_get_rfc_errors(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (id, secret) = s.add_client(ClientSpec::service()).await;
    let secret = secret.unwrap();
    s.post_form("/token", &[("grant_type", "password")], Some((&id, &secret)))
        .await
        .assert_error(400, "unsupported_grant_type");
    s.post_form("/token", &[("scope", "x")], Some((&id, &secret))).await.assert_error(400, "invalid_request");
    // Duplicated parameter (RFC 6749 §3.2).
    let r = s
        .http
        .post(s.url("/token"))
        .basic_auth(&id, Some(&secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    common::Reply::from(r).await.assert_error(400, "invalid_request");
    // JSON instead of a form.
    let r = s
        .http
        .post(s.url("/token"))
        .basic_auth(&id, Some(&secret))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    common::Reply::from(r).await.assert_error(400, "invalid_request");
    // Oversized body: refused, not read whole. The server answers 413 from the Content-Length and closes
    // the connection, so the client may still be writing when it does: a fresh connection, and a write
    // error is the same refusal seen from the other side.
    let big = format!("grant_type=client_credentials&pad={}", "a".repeat(200_000));
    let r = reqwest::Client::new()
        .post(s.url("/token"))
        .basic_auth(&id, Some(&secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await;
    match r {
        Ok(r) => {
            let status = r.status().as_u16();
            assert!(status == 413 || status == 400, "oversized body answered {status}");
        }
        Err(e) => assert!(e.is_request() || e.is_body(), "oversized body: {e}"),
    }
    // Garbage Basic credentials.
    let r = s
        .http
        .post(s.url("/token"))
        .header("authorization", "Basic %%%")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    common::Reply::from(r).await.assert_error(401, "invalid_client");
    s.stop().await;
}

async fn revocation_is_scoped_to_the_owner(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (a, a_secret) = s.add_client(ClientSpec::service()).await;
    let (b, b_secret) = s.add_client(ClientSpec::service()).await;
    let (a_secret, b_secret) = (a_secret.unwrap(), b_secret.unwrap());
    let rs = resource_server(&s).await;
    let cc = [("grant_type", "client_credentials"), ("resource", RESOURCE)];
    let token = s.post_form("/token", &cc, Some((&a, &a_secret))).await.assert_token()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Another client's revocation is answered 200 but changes nothing.
    let r = s.post_form("/revoke", &[("token", &token)], Some((&b, &b_secret))).await;
    assert_eq!(r.status, 200);
    assert_eq!(introspect(&s, &rs, &token).await["active"], true);
    // Unknown tokens: 200.
    assert_eq!(s.post_form("/revoke", &[("token", "af_at_unknown")], Some((&a, &a_secret))).await.status, 200);
    // Unauthenticated: 401.
    s.post_form("/revoke", &[("token", &token)], Some((&a, "wrong"))).await.assert_error(401, "invalid_client");
    // The owner revokes it.
    let r =
        s.post_form("/revoke", &[("token", &token), ("token_type_hint", "access_token")], Some((&a, &a_secret))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(introspect(&s, &rs, &token).await["active"], false);

    // Revoking a refresh token revokes its access tokens too.
    let (client, _) = s.add_client(ClientSpec::public_app()).await;
    let (code, verifier) = seed_code(&s, &client, "notes:read", &[RESOURCE]).await;
    let t = exchange(&s, &client, &code, &verifier).await.assert_token().clone();
    let r =
        s.post_form("/revoke", &[("token", t["refresh_token"].as_str().unwrap()), ("client_id", &client)], None).await;
    assert_eq!(r.status, 200);
    assert_eq!(introspect(&s, &rs, t["access_token"].as_str().unwrap()).await["active"], false);
    s.stop().await;
}

async fn introspection_requires_a_confidential_caller(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (a, a_secret) = s.add_client(ClientSpec::service()).await;
    let a_secret = a_secret.unwrap();
    let token =
        s.post_form("/token", &[("grant_type", "client_credentials")], Some((&a, &a_secret))).await.assert_token()
            ["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
    // The owner sees its own token.
    assert_eq!(introspect(&s, &(a.clone(), a_secret.clone()), &token).await["active"], true);
    // A public client cannot introspect.
    let (public, _) = s.add_client(ClientSpec::public_app()).await;
    s.post_form("/introspect", &[("token", &token), ("client_id", &public)], None)
        .await
        .assert_error(401, "invalid_client");
    // No credentials at all.
    s.post_form("/introspect", &[("token", &token)], None).await.assert_error(400, "invalid_request");
    // Missing token parameter.
    s.post_form("/introspect", &[], Some((&a, &a_secret))).await.assert_error(400, "invalid_request");
    // Expiry: inactive after the access-token lifetime.
    s.advance(Duration::from_secs(3601));
    assert_eq!(introspect(&s, &(a, a_secret), &token).await, json!({"active": false}));
    s.stop().await;
}

fn assertion(s: &TestServer, key: &PrivateKey, client_id: &str, overrides: Value) -> String {
    jws::sign(None, &assertion_claims(s, client_id, overrides), key).unwrap()
}

/// An assertion's claims for `client_id` at this server's token endpoint, valid now for two minutes, with
/// `overrides` applied (a null removes the claim).
fn assertion_claims(s: &TestServer, client_id: &str, overrides: Value) -> Value {
    let now = s.clock_now().as_secs();
    let mut claims = json!({
        "iss": client_id, "sub": client_id, "aud": s.url("/token"),
        "exp": now + 120, "iat": now, "jti": authflow_server::random_id(),
    });
    for (k, v) in overrides.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

async fn private_key_jwt(backend: Backend) {
    let s = TestServer::start(backend).await;
    let key = PrivateKey::generate(Algorithm::ES256, &mut OsEntropy, None);
    let jwks = json!({ "keys": [key.public_jwk()] });
    let (id, _) = s.add_client(ClientSpec::service().method(ClientAuthMethod::PrivateKeyJwt).jwks(jwks)).await;
    let with = |a: String| {
        vec![
            ("grant_type".to_owned(), "client_credentials".to_owned()),
            ("client_assertion_type".to_owned(), "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned()),
            ("client_assertion".to_owned(), a),
        ]
    };
    let server = &s;
    let post = |form: Vec<(String, String)>| async move {
        common::Reply::from(server.http.post(server.url("/token")).form(&form).send().await.unwrap()).await
    };

    // Valid, with the token endpoint or the issuer as audience.
    post(with(assertion(&s, &key, &id, json!({})))).await.assert_token();
    post(with(assertion(&s, &key, &id, json!({"aud": s.base})))).await.assert_token();
    // Replayed jti.
    let once = assertion(&s, &key, &id, json!({}));
    post(with(once.clone())).await.assert_token();
    post(with(once)).await.assert_error(401, "invalid_client");
    // alg none: header {"alg":"none"} and an empty signature.
    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let now = s.clock_now().as_secs();
    let claims = json!({"iss": id, "sub": id, "aud": s.url("/token"), "exp": now + 60, "jti": "n1"});
    post(with(format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&claims)))).await.assert_error(401, "invalid_client");
    // HS256 "signed" with the public key as the HMAC secret (algorithm confusion).
    {
        use sha2::Digest;
        let input = format!("{}.{}", b64(&json!({"alg": "HS256", "typ": "JWT"})), b64(&claims));
        let secret = serde_json::to_vec(&key.public_jwk()).unwrap();
        // HMAC-SHA256 by hand (RFC 2104) to avoid a dependency for one test.
        let mut k = [0u8; 64];
        k[..32].copy_from_slice(&sha2::Sha256::digest(&secret));
        let inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).chain(input.bytes()).collect();
        let outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).chain(sha2::Sha256::digest(&inner)).collect();
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&outer));
        post(with(format!("{input}.{sig}"))).await.assert_error(401, "invalid_client");
    }
    // Expired, wrong audience, missing exp, lifetime too long, signed by another key.
    post(with(assertion(&s, &key, &id, json!({"exp": now - 120})))).await.assert_error(401, "invalid_client");
    post(with(assertion(&s, &key, &id, json!({"aud": "https://elsewhere.example/token"}))))
        .await
        .assert_error(401, "invalid_client");
    post(with(assertion(&s, &key, &id, json!({"exp": null})))).await.assert_error(401, "invalid_client");
    post(with(assertion(&s, &key, &id, json!({"exp": now + 86400})))).await.assert_error(401, "invalid_client");
    let stranger = PrivateKey::generate(Algorithm::ES256, &mut OsEntropy, None);
    post(with(assertion(&s, &stranger, &id, json!({})))).await.assert_error(401, "invalid_client");
    // iss and sub must both be the client.
    post(with(assertion(&s, &key, &id, json!({"iss": "someone-else"})))).await.assert_error(401, "invalid_client");
    // EdDSA works too.
    let ed = PrivateKey::generate(Algorithm::EdDSA, &mut OsEntropy, None);
    let (ed_id, _) = s
        .add_client(
            ClientSpec::service().method(ClientAuthMethod::PrivateKeyJwt).jwks(json!({"keys": [ed.public_jwk()]})),
        )
        .await;
    post(with(assertion(&s, &ed, &ed_id, json!({})))).await.assert_token();

    // At the introspection and revocation endpoints, an assertion names that endpoint (or the issuer): one
    // made for the token endpoint is refused there.
    let token = post(with(assertion(&s, &key, &id, json!({})))).await.assert_token()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let at = |path: &'static str, a: String| {
        let form = [
            ("token", token.clone()),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned()),
            ("client_assertion", a),
        ];
        async move { common::Reply::from(server.http.post(server.url(path)).form(&form).send().await.unwrap()).await }
    };
    let introspected = at("/introspect", assertion(&s, &key, &id, json!({"aud": s.url("/introspect")}))).await;
    assert_eq!((introspected.status, &introspected.body["active"]), (200, &json!(true)), "{}", introspected.text);
    let issuer = at("/introspect", assertion(&s, &key, &id, json!({"aud": s.base}))).await;
    assert_eq!(issuer.body["active"], json!(true), "{}", issuer.text);
    at("/introspect", assertion(&s, &key, &id, json!({}))).await.assert_error(401, "invalid_client");
    at("/revoke", assertion(&s, &key, &id, json!({}))).await.assert_error(401, "invalid_client");
    let revoked = at("/revoke", assertion(&s, &key, &id, json!({"aud": s.url("/revoke")}))).await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    let after = at("/introspect", assertion(&s, &key, &id, json!({"aud": s.url("/introspect")}))).await;
    assert_eq!(after.body, json!({"active": false}), "revoked with an assertion for /revoke");
    s.stop().await;
}

/// RS256 and PS256 assertions, as most client libraries sign them, with a client's 2048-bit RSA key.
async fn private_key_jwt_with_rsa(backend: Backend) {
    use base64::Engine;
    let s = TestServer::start(backend).await;
    let spec = |jwk: Value| ClientSpec::service().method(ClientAuthMethod::PrivateKeyJwt).jwks(json!({"keys": [jwk]}));
    let (id, _) = s.add_client(spec(rsa_key::public_jwk(json!({"use": "sig"})))).await;
    let server = &s;
    let post = |assertion: String| async move {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", &assertion),
        ];
        common::Reply::from(server.http.post(server.url("/token")).form(&form).send().await.unwrap()).await
    };
    let rsa = |alg: &str, client: &str, overrides: Value| {
        rsa_key::sign(alg, json!({}), &assertion_claims(&s, client, overrides))
    };

    post(rsa("RS256", &id, json!({}))).await.assert_token();
    post(rsa("PS256", &id, json!({"aud": s.base}))).await.assert_token();
    post(rsa("RS256", &id, json!({"typ": "JWT"}))).await.assert_token();
    // Replay, expiry, another audience: the same rules as for ES256.
    let once = rsa("RS256", &id, json!({}));
    post(once.clone()).await.assert_token();
    post(once.clone()).await.assert_error(401, "invalid_client");
    let now = s.clock_now().as_secs();
    post(rsa("RS256", &id, json!({"exp": now - 120}))).await.assert_error(401, "invalid_client");
    post(rsa("RS256", &id, json!({"aud": "https://elsewhere.example/token"})))
        .await
        .assert_error(401, "invalid_client");
    // A flipped bit in the signature.
    let fresh = rsa("RS256", &id, json!({}));
    let (input, sig) = fresh.rsplit_once('.').unwrap();
    let mut sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sig).unwrap();
    sig[17] ^= 4;
    let flipped = format!("{input}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&sig));
    post(flipped).await.assert_error(401, "invalid_client");
    // HS256 "signed" with the client's published RSA key as the HMAC secret (algorithm confusion).
    {
        use sha2::Digest;
        let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let claims = assertion_claims(&s, &id, json!({}));
        let input = format!("{}.{}", b64(br#"{"alg":"HS256","kid":"rsa-2048"}"#), b64(claims.to_string().as_bytes()));
        let secret = serde_json::to_vec(&rsa_key::public_jwk(json!({"use": "sig"}))).unwrap();
        let mut k = [0u8; 64];
        k[..32].copy_from_slice(&sha2::Sha256::digest(&secret));
        let inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).chain(input.bytes()).collect();
        let outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).chain(sha2::Sha256::digest(&inner)).collect();
        post(format!("{input}.{}", b64(&sha2::Sha256::digest(&outer)))).await.assert_error(401, "invalid_client");
    }
    // The client pinned its key to PS256: an RS256 assertion is refused, a PS256 one accepted.
    let (pinned, _) = s.add_client(spec(rsa_key::public_jwk(json!({"alg": "PS256"})))).await;
    post(rsa("RS256", &pinned, json!({}))).await.assert_error(401, "invalid_client");
    post(rsa("PS256", &pinned, json!({}))).await.assert_token();
    // An ES256 assertion whose kid names the client's RSA key is refused, and an RS256 one naming an EC key.
    let ec = PrivateKey::generate(Algorithm::ES256, &mut OsEntropy, Some(rsa_key::KID.into()));
    post(assertion(&s, &ec, &id, json!({}))).await.assert_error(401, "invalid_client");
    let (ec_id, _) = s.add_client(spec(serde_json::to_value(ec.public_jwk()).unwrap())).await;
    post(rsa("RS256", &ec_id, json!({}))).await.assert_error(401, "invalid_client");
    post(assertion(&s, &ec, &ec_id, json!({}))).await.assert_token();
    s.stop().await;
}

async fn discovery_lists_what_is_served(backend: Backend) {
    let s = TestServer::start(backend).await;
    let meta: Value =
        s.http.get(s.url("/.well-known/oauth-authorization-server")).send().await.unwrap().json().await.unwrap();
    assert_eq!(meta["issuer"], s.base.as_str());
    for endpoint in ["token_endpoint", "introspection_endpoint", "revocation_endpoint"] {
        let url = meta[endpoint].as_str().unwrap();
        // Each advertised endpoint exists: an empty POST is answered by the endpoint itself, not a 404.
        let r = s.http.post(url).send().await.unwrap();
        assert_ne!(r.status().as_u16(), 404, "{endpoint} {url} is advertised but not served");
    }
    assert_eq!(meta["code_challenge_methods_supported"], json!(["S256"]));
    let methods = meta["token_endpoint_auth_methods_supported"].as_array().unwrap();
    assert!(methods.contains(&json!("private_key_jwt")) && methods.contains(&json!("none")));
    // Exactly what client assertions may be signed with; the ID token list stays what authflow signs with.
    let verified = json!(["ES256", "EdDSA", "RS256", "PS256"]);
    assert_eq!(meta["token_endpoint_auth_signing_alg_values_supported"], verified);
    assert_eq!(meta["introspection_endpoint_auth_signing_alg_values_supported"], verified);
    assert_eq!(meta["revocation_endpoint_auth_signing_alg_values_supported"], verified);
    let openid: Value =
        s.http.get(s.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    assert_eq!(openid["token_endpoint_auth_signing_alg_values_supported"], verified);
    assert_eq!(openid["id_token_signing_alg_values_supported"], json!(["ES256"]));
    s.stop().await;
}

async fn jwt_access_tokens_verify_against_the_published_jwks(backend: Backend) {
    use authflow_core::jose::{jwt, AccessTokenClaims, JwkSet};
    let s = TestServer::start_with(backend, |b| {
        b.policy(authflow_server::Policy {
            access_token_format: authflow_server::policy::AccessTokenFormat::Jwt,
            ..Default::default()
        })
    })
    .await;
    let (id, secret) = s.add_client(ClientSpec::service()).await;
    let secret = secret.unwrap();
    let cc = [("grant_type", "client_credentials"), ("scope", "notes:read"), ("resource", RESOURCE)];
    let token = s.post_form("/token", &cc, Some((&id, &secret))).await.assert_token()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(token.split('.').count(), 3, "a compact JWS");

    let meta: Value =
        s.http.get(s.url("/.well-known/oauth-authorization-server")).send().await.unwrap().json().await.unwrap();
    let jwks: JwkSet = s.http.get(meta["jwks_uri"].as_str().unwrap()).send().await.unwrap().json().await.unwrap();
    assert_eq!(jwks.len(), 1);
    let validation = jwt::Validation::access_token(s.clock_now(), &s.base, RESOURCE);
    let verified = jwt::decode(&token, &jwks, &validation).expect("an RFC 9068 token the resource can verify locally");
    let claims = AccessTokenClaims::from_verified(&verified).unwrap();
    assert_eq!(
        (claims.client_id.as_str(), claims.sub.as_str(), claims.scope.as_deref()),
        (id.as_str(), id.as_str(), Some("notes:read"))
    );
    // Another audience does not verify.
    assert!(jwt::decode(
        &token,
        &jwks,
        &jwt::Validation::access_token(s.clock_now(), &s.base, "https://other.example/mcp")
    )
    .is_err());

    // The JWT is also known to introspection and revocation.
    let rs = resource_server(&s).await;
    assert_eq!(introspect(&s, &rs, &token).await["active"], true);
    assert_eq!(s.post_form("/revoke", &[("token", &token)], Some((&id, &secret))).await.status, 200);
    assert_eq!(introspect(&s, &rs, &token).await["active"], false);

    // The same key signs the next token (one key per deployment, shared through storage).
    let again = s.post_form("/token", &cc, Some((&id, &secret))).await.assert_token()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    jwt::decode(&again, &jwks, &validation).unwrap();
    s.stop().await;
}

async fn token_and_introspection_are_rate_limited_per_address(backend: Backend) {
    use authflow_core::ratelimit::RateLimit;
    let s = TestServer::start_with(backend, |b| {
        b.policy(authflow_server::Policy {
            token_requests_per_ip: RateLimit::new(3, Duration::from_secs(60)).unwrap(),
            introspection_requests_per_ip: RateLimit::new(2, Duration::from_secs(60)).unwrap(),
            ..Default::default()
        })
    })
    .await;
    let (id, secret) = s.add_client(ClientSpec::service()).await;
    let secret = secret.unwrap();
    let cc = [("grant_type", "client_credentials")];
    for _ in 0..3 {
        s.post_form("/token", &cc, Some((&id, &secret))).await.assert_token();
    }
    let limited = s.post_form("/token", &cc, Some((&id, &secret))).await;
    limited.assert_error(429, "rate_limited");
    assert!(limited.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    let caller = (id.clone(), secret.clone());
    introspect(&s, &caller, "af_at_x").await;
    introspect(&s, &caller, "af_at_x").await;
    s.post_form("/introspect", &[("token", "af_at_x")], Some((&id, &secret))).await.assert_error(429, "rate_limited");
    s.advance(Duration::from_secs(120));
    s.post_form("/token", &cc, Some((&id, &secret))).await.assert_token();
    s.stop().await;
}

async fn cors_allows_loopback_and_configured_origins_only(backend: Backend) {
    let s = TestServer::start_with(backend, |b| {
        b.policy(authflow_server::Policy {
            cors_origins: vec!["https://inspector.example".into()],
            ..Default::default()
        })
    })
    .await;
    for (origin, allowed) in [
        ("http://localhost:6274", true),
        ("https://inspector.example", true),
        ("https://evil.example", false),
        ("http://localhost.evil.example", false),
    ] {
        for path in ["/token", "/register", "/revoke"] {
            let r = s
                .http
                .request(reqwest::Method::OPTIONS, s.url(path))
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "content-type")
                .send()
                .await
                .unwrap();
            let granted = r.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(granted.as_deref() == Some(origin), allowed, "{origin} on {path}: {granted:?}");
            assert!(r.headers().get("access-control-allow-credentials").is_none());
        }
    }
    s.stop().await;
}

on_every_backend!(
    token_and_introspection_are_rate_limited_per_address,
    cors_allows_loopback_and_configured_origins_only,
    jwt_access_tokens_verify_against_the_published_jwks,
    code_flow_issues_audience_bound_tokens,
    code_is_single_use_and_replay_revokes_what_it_issued,
    code_exchange_checks_every_binding,
    refresh_rotates_and_reuse_revokes_the_family,
    concurrent_refreshes_issue_once,
    a_disabled_users_tokens_stop_working,
    a_disabled_clients_tokens_are_inactive,
    refresh_tokens_are_bound_to_their_client_and_lifetime,
    client_credentials_and_client_authentication,
    malformed_requests_get_rfc_errors,
    revocation_is_scoped_to_the_owner,
    introspection_requires_a_confidential_caller,
    private_key_jwt,
    private_key_jwt_with_rsa,
    discovery_lists_what_is_served,
);
