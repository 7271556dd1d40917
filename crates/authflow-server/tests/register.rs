//! Dynamic client registration (RFC 7591) and client configuration (RFC 7592) over real HTTP, on every backend.

mod common;

use std::time::Duration;

use authflow_core::ratelimit::RateLimit;
use authflow_core::TokenHash;
use common::{Backend, Reply, TestServer};
use serde_json::{json, Value};

async fn register(s: &TestServer, body: Value) -> Reply {
    Reply::from(s.http.post(s.url("/register")).json(&body).send().await.unwrap()).await
}

fn with_token(req: reqwest::RequestBuilder, token: &str) -> reqwest::RequestBuilder {
    req.header("authorization", format!("Bearer {token}"))
}

async fn registration_issues_credentials_that_work(backend: Backend) {
    let s = TestServer::start(backend).await;
    // A public MCP client, as Claude Code or MCP Inspector registers.
    let r = register(
        &s,
        json!({
            "client_name": "Claude Code (notes)",
            "redirect_uris": ["http://localhost:54212/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let client_id = r.body["client_id"].as_str().unwrap();
    assert!(r.body.get("client_secret").is_none(), "public clients get no secret");
    assert!(r.body["registration_access_token"].as_str().unwrap().starts_with("af_rat_"));
    assert_eq!(r.body["registration_client_uri"], format!("{}/register/{client_id}", s.base));
    assert_eq!(r.body["redirect_uris"], json!(["http://localhost:54212/callback"]));
    let stored = s.store.find_client(client_id).await.unwrap().unwrap();
    assert_eq!(stored.origin, authflow_store::ClientOrigin::Dynamic);
    assert!(stored.registration_token_hash.unwrap().matches(r.body["registration_access_token"].as_str().unwrap()));

    // A confidential service gets a secret that authenticates at the token endpoint.
    let r = register(&s, json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post", "client_name": "svc"})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let (id, secret) = (r.body["client_id"].as_str().unwrap(), r.body["client_secret"].as_str().unwrap());
    assert_eq!(r.body["client_secret_expires_at"], 0);
    let t = s
        .post_form(
            "/token",
            &[("grant_type", "client_credentials"), ("client_id", id), ("client_secret", secret)],
            None,
        )
        .await;
    t.assert_token();
    s.stop().await;
}

async fn invalid_registrations_store_nothing(backend: Backend) {
    let s = TestServer::start(backend).await;
    for (body, code) in [
        (json!({"redirect_uris": ["http://evil.example/cb"]}), "invalid_redirect_uri"),
        (json!({"redirect_uris": ["https://a.example/cb#frag"]}), "invalid_redirect_uri"),
        (json!({"redirect_uris": ["javascript:alert(1)//"]}), "invalid_redirect_uri"),
        (json!({"grant_types": ["authorization_code"]}), "invalid_redirect_uri"),
        (json!({"redirect_uris": ["https://a.example/cb"], "grant_types": ["password"]}), "invalid_client_metadata"),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "tls_client_auth"}),
            "invalid_client_metadata",
        ),
        (json!({"redirect_uris": "https://a.example/cb"}), "invalid_redirect_uri"),
        (json!("a string"), "invalid_client_metadata"),
    ] {
        let r = register(&s, body.clone()).await;
        r.assert_error(400, code);
    }
    // Not JSON at all; the wrong content type.
    let r = s
        .http
        .post(s.url("/register"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    Reply::from(r).await.assert_error(400, "invalid_client_metadata");
    let r = s.http.post(s.url("/register")).form(&[("redirect_uris", "https://a.example/cb")]).send().await.unwrap();
    Reply::from(r).await.assert_error(400, "invalid_request");
    // Too big.
    let big = json!({"redirect_uris": ["https://a.example/cb"], "client_name": "x".repeat(100_000)});
    assert_eq!(s.http.post(s.url("/register")).json(&big).send().await.unwrap().status().as_u16(), 413);
    assert!(s.store.list_clients().await.unwrap().is_empty(), "nothing was registered");
    s.stop().await;
}

async fn configuration_endpoint_is_isolated_per_client(backend: Backend) {
    let s = TestServer::start(backend).await;
    let body = json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "client_secret_basic", "client_name": "A"});
    let a = register(&s, body.clone()).await.body;
    let b = register(&s, json!({"redirect_uris": ["https://b.example/cb"], "client_name": "B"})).await.body;
    let (a_uri, a_token) =
        (a["registration_client_uri"].as_str().unwrap(), a["registration_access_token"].as_str().unwrap());
    let b_uri = b["registration_client_uri"].as_str().unwrap();

    // Read with its own token.
    let r = Reply::from(with_token(s.http.get(a_uri), a_token).send().await.unwrap()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["client_name"], "A");
    assert!(r.body.get("client_secret").is_none(), "the secret is shown only when issued");
    // A's token does not open B's configuration, nor does no token or a garbage one; an unknown client is 401.
    for (uri, token) in [(b_uri, Some(a_token)), (a_uri, None), (a_uri, Some("af_rat_nope"))] {
        let mut req = s.http.get(uri);
        if let Some(t) = token {
            req = with_token(req, t);
        }
        let r = Reply::from(req.send().await.unwrap()).await;
        r.assert_error(401, "invalid_token");
        assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    }
    let r = Reply::from(with_token(s.http.get(format!("{}/register/unknown", s.base)), a_token).send().await.unwrap())
        .await;
    r.assert_error(401, "invalid_token");
    // B's configuration cannot be changed or deleted with A's token.
    let r = with_token(s.http.delete(b_uri), a_token).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(s.store.find_client(b["client_id"].as_str().unwrap()).await.unwrap().is_some());

    // Update: rotates the registration token, and the secret when asked.
    let old_secret = a["client_secret"].as_str().unwrap();
    let mut update = body.clone();
    update["client_id"] = a["client_id"].clone();
    update["client_name"] = json!("A renamed");
    update["rotate_secret"] = json!(true);
    let r = Reply::from(with_token(s.http.put(a_uri), a_token).json(&update).send().await.unwrap()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["client_name"], "A renamed");
    let new_secret = r.body["client_secret"].as_str().unwrap();
    assert_ne!(new_secret, old_secret);
    let new_token = r.body["registration_access_token"].as_str().unwrap().to_owned();
    let stored = s.store.find_client(a["client_id"].as_str().unwrap()).await.unwrap().unwrap();
    assert!(stored.secret_hash.unwrap().matches(new_secret) && !stored.secret_hash.unwrap().matches(old_secret));
    assert_eq!(
        Reply::from(with_token(s.http.get(a_uri), a_token).send().await.unwrap()).await.status,
        401,
        "the old registration token is gone"
    );
    // A mismatched client_id in the body is refused.
    let mut wrong = update.clone();
    wrong["client_id"] = b["client_id"].clone();
    let r = Reply::from(with_token(s.http.put(a_uri), &new_token).json(&wrong).send().await.unwrap()).await;
    r.assert_error(400, "invalid_request");

    // Delete: 204, then the client is gone.
    let r = with_token(s.http.delete(a_uri), &new_token).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert!(s.store.find_client(a["client_id"].as_str().unwrap()).await.unwrap().is_none());
    assert_eq!(with_token(s.http.get(a_uri), &new_token).send().await.unwrap().status(), 401);
    s.stop().await;
}

async fn registration_is_rate_limited_and_can_be_closed(backend: Backend) {
    let s = TestServer::start_with(backend, |b| {
        b.policy(authflow_server::Policy {
            registrations_per_ip: RateLimit::new(2, Duration::from_secs(60)).unwrap(),
            dynamic_client_ttl: Some(Duration::from_secs(3600)),
            ..Default::default()
        })
    })
    .await;
    let body = json!({"grant_types": ["client_credentials"]});
    let first = register(&s, body.clone()).await;
    assert_eq!(first.status, 201);
    let (id, secret) = (first.body["client_id"].as_str().unwrap(), first.body["client_secret"].as_str().unwrap());
    let cc = [("grant_type", "client_credentials")];
    s.post_form("/token", &cc, Some((id, secret))).await.assert_token();
    let expires =
        s.store.find_client(first.body["client_id"].as_str().unwrap()).await.unwrap().unwrap().expires_at.unwrap();
    assert_eq!(expires, s.clock_now() + Duration::from_secs(3600));
    assert_eq!(register(&s, body.clone()).await.status, 201);
    let limited = register(&s, body.clone()).await;
    limited.assert_error(429, "rate_limited");
    assert!(limited.header("retry-after").unwrap().parse::<u64>().unwrap() > 0);
    s.advance(Duration::from_secs(120));
    assert_eq!(register(&s, body.clone()).await.status, 201, "the window slides on");
    // Expired dynamic clients cannot authenticate.
    s.advance(Duration::from_secs(3600));
    s.post_form("/token", &cc, Some((id, secret))).await.assert_error(401, "invalid_client");
    s.stop().await;

    let s = TestServer::start_with(backend, |b| {
        b.policy(authflow_server::Policy {
            registration_token: Some(TokenHash::of("initial-access-token")),
            ..Default::default()
        })
    })
    .await;
    let r = register(&s, body.clone()).await;
    r.assert_error(401, "invalid_token");
    let r = Reply::from(
        with_token(s.http.post(s.url("/register")), "initial-access-token").json(&body).send().await.unwrap(),
    )
    .await;
    assert_eq!(r.status, 201);
    s.stop().await;
}

/// Clients are cached for `client_cache_ttl` (2 s by default): changes through RFC 7592 apply at once,
/// changes made behind this process's back (another replica, `authflow client`) once the entry ends.
async fn client_changes_reach_the_client_cache(backend: Backend) {
    let s = TestServer::start(backend).await;
    let r = register(
        &s,
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_basic"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["client_id"].as_str().unwrap().to_owned();
    let old_secret = r.body["client_secret"].as_str().unwrap().to_owned();
    let (uri, token) = (
        r.body["registration_client_uri"].as_str().unwrap().to_owned(),
        r.body["registration_access_token"].as_str().unwrap().to_owned(),
    );
    let mint = |secret: String| {
        let id = id.clone();
        let s = &s;
        async move { s.post_form("/token", &[("grant_type", "client_credentials")], Some((&id, &secret))).await.status }
    };
    assert_eq!(mint(old_secret.clone()).await, 200, "authenticated, and now cached");

    // Rotated through RFC 7592: the old secret stops working at once.
    let mut update = r.body.clone();
    update["rotate_secret"] = json!(true);
    let rotated = Reply::from(with_token(s.http.put(&uri), &token).json(&update).send().await.unwrap()).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let new_secret = rotated.body["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(mint(old_secret).await, 401, "the cached client was forgotten");
    assert_eq!(mint(new_secret.clone()).await, 200);

    // Disabled behind the server's back: seen once the cache entry ends.
    let stored = s.store.find_client(&id).await.unwrap().unwrap();
    s.store.update_client(&authflow_store::Client { disabled: true, ..stored }).await.unwrap();
    assert_eq!(mint(new_secret.clone()).await, 200, "still the cached client for up to client_cache_ttl");
    s.advance(authflow_server::Policy::default().client_cache_ttl);
    assert_eq!(mint(new_secret.clone()).await, 401, "then the disabled one");

    // Deleted through RFC 7592: gone at once.
    let stored = s.store.find_client(&id).await.unwrap().unwrap();
    s.store.update_client(&authflow_store::Client { disabled: false, ..stored }).await.unwrap();
    s.advance(authflow_server::Policy::default().client_cache_ttl);
    assert_eq!(mint(new_secret.clone()).await, 200, "enabled again, cached again");
    let new_token = rotated.body["registration_access_token"].as_str().unwrap();
    assert_eq!(with_token(s.http.delete(&uri), new_token).send().await.unwrap().status(), 204);
    assert_eq!(mint(new_secret).await, 401, "deleted: not served from the cache");
    s.stop().await;
}

/// A client an administrator disabled cannot read, change or delete its own registration (RFC 7592).
async fn a_disabled_client_cannot_manage_itself(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = register(&s, json!({"redirect_uris": ["https://a.example/cb"], "client_name": "A"})).await.body;
    let (uri, token) =
        (a["registration_client_uri"].as_str().unwrap(), a["registration_access_token"].as_str().unwrap());
    let mut client = s.store.find_client(a["client_id"].as_str().unwrap()).await.unwrap().unwrap();
    client.disabled = true;
    s.store.update_client(&client).await.unwrap();
    Reply::from(with_token(s.http.get(uri), token).send().await.unwrap()).await.assert_error(401, "invalid_token");
    let put = json!({"client_id": a["client_id"], "redirect_uris": ["https://evil.example/cb"]});
    let r = Reply::from(with_token(s.http.put(uri), token).json(&put).send().await.unwrap()).await;
    r.assert_error(401, "invalid_token");
    assert_eq!(Reply::from(with_token(s.http.delete(uri), token).send().await.unwrap()).await.status, 401);
    let kept = s.store.find_client(a["client_id"].as_str().unwrap()).await.unwrap().expect("not deleted");
    assert_eq!(kept.metadata.redirect_uris, vec!["https://a.example/cb".to_owned()], "not changed");
    s.stop().await;
}

on_every_backend!(
    a_disabled_client_cannot_manage_itself,
    client_changes_reach_the_client_cache,
    registration_issues_credentials_that_work,
    invalid_registrations_store_nothing,
    configuration_endpoint_is_isolated_per_client,
    registration_is_rate_limited_and_can_be_closed,
);
