//! The authorization endpoint over real HTTP, driven the way a browser drives it: GET the authorization URL,
//! read the sign-in form, post it back with the CSRF token and cookies, approve the consent page, follow the
//! redirect to the client, exchange the code at `/token`.

mod common;

use std::time::Duration;

use authflow_core::pkce::CodeVerifier;
use authflow_server::{OsEntropy, Policy};
use common::browser::*;
use common::{Backend, ClientSpec, Reply, TestServer};

// ---- flows on every backend ------------------------------------------------------------------------------

on_every_backend!(
    full_code_flow,
    remembered_consent_skips_the_consent_page,
    deny_gives_access_denied,
    code_replay_revokes_the_first_tokens,
    expired_code_fails,
    redirect_uri_mismatch_at_token_fails,
    wrong_code_verifier_fails,
    openid_code_flow_returns_an_id_token_and_userinfo,
    posted_authorization_request_flows_like_get,
);

async fn full_code_flow(backend: Backend) {
    let (server, client_id) = setup(backend).await;
    let authz = Authz::new(&client_id).set("scope", "notes:read notes:write").set("nonce", "n-123");
    let mut browser = Browser::new(&server);

    let login = browser.get(&authz.url()).await;
    assert_page(&login, 200, "to continue to <strong>Test MCP Client</strong>");
    let csp = login.header("content-security-policy").unwrap();
    assert!(csp.contains("form-action 'self' http://127.0.0.1:33418"), "the form may end at the client: {csp}");
    let csrf_cookie = login.header("set-cookie").expect("a CSRF cookie");
    assert!(csrf_cookie.contains("HttpOnly") && csrf_cookie.contains("SameSite=Lax"), "{csrf_cookie}");

    let signed = sign_in(&mut browser, &authz, "alice", PASSWORD).await;
    assert_eq!(signed.status, 303, "{}", signed.text);
    let session_cookie = signed.header("set-cookie").expect("a session cookie");
    assert!(session_cookie.starts_with("authflow-session="), "{session_cookie}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=43200"] {
        assert!(session_cookie.contains(attribute), "{session_cookie} lacks {attribute}");
    }
    assert!(!session_cookie.contains("Secure"), "plain http issuer: no Secure flag");

    let consent = browser.get(signed.header("location").unwrap()).await;
    assert_page(&consent, 200, "<strong>Test MCP Client</strong> wants to access your account");
    for shown in
        ["Signed in as <strong>alice</strong>", "<code>notes:read</code>", "<code>notes:write</code>", RESOURCE]
    {
        assert!(consent.text.contains(shown), "consent page shows {shown:?}");
    }

    let answer = decide(&mut browser, &consent, "approve").await;
    let params = redirected_to(&answer, REDIRECT);
    assert!(params["code"].starts_with("af_ac_"), "{params:?}");
    assert_eq!(params["state"], "st-ü &=?", "state echoed exactly");
    assert_eq!(params["iss"], server.base, "RFC 9207 iss");
    assert_eq!(params.len(), 3, "code, state, iss and nothing else: {params:?}");

    let tokens = exchange(&server, &client_id, &params["code"], REDIRECT, authz.verifier.expose()).await;
    let body = tokens.assert_token().clone();
    assert_eq!(body["scope"], "notes:read notes:write");
    let refresh = body["refresh_token"].as_str().expect("a refresh token");

    let introspector = introspector(&server).await;
    let info = server
        .post_form(
            "/introspect",
            &[("token", body["access_token"].as_str().unwrap())],
            Some((&introspector.0, &introspector.1)),
        )
        .await;
    assert_eq!(info.body["active"], true, "{}", info.text);
    assert_eq!(info.body["sub"], "user-alice");
    assert_eq!(info.body["client_id"], client_id.as_str());
    assert_eq!(info.body["aud"], RESOURCE);

    let refreshed = server
        .post_form(
            "/token",
            &[("grant_type", "refresh_token"), ("client_id", &client_id), ("refresh_token", refresh)],
            None,
        )
        .await;
    refreshed.assert_token();
    assert_ne!(refreshed.body["refresh_token"], refresh, "refresh tokens rotate");
    server.stop().await;
}

/// OpenID Connect: `openid` in the scope adds a signed ID token bound to the request's nonce and to the
/// access token; `/userinfo` describes the user to a token meant for this server, and to no other.
async fn openid_code_flow_returns_an_id_token_and_userinfo(backend: Backend) {
    use authflow_core::jose::{decode, token_hash_half, Algorithm, IdTokenClaims, JwkSet, Validation};

    let server = TestServer::start_with(backend, |b| b.scopes(vec!["notes:read".into(), "notes:write".into()])).await;
    add_user(&server, "alice", false).await;
    let mut spec = ClientSpec::public_app();
    spec.scope = Some("openid profile notes:read".into());
    let (client_id, _) = server.add_client(spec).await;

    let authz =
        Authz::new(&client_id).set("scope", "openid profile notes:read").set("nonce", "n-0S6").without("resource");
    let code = code_for(&server, &authz).await;
    let body = exchange(&server, &client_id, &code, REDIRECT, authz.verifier.expose()).await.assert_token().clone();
    let access = body["access_token"].as_str().unwrap().to_owned();
    let id_token = body["id_token"].as_str().expect("an ID token");

    let jwks: JwkSet = server.http.get(server.url("/jwks.json")).send().await.unwrap().json().await.unwrap();
    let validation =
        Validation::new(server.clock_now()).issuer(server.base.clone()).audience(client_id.clone()).typ("JWT");
    let claims: IdTokenClaims = decode(id_token, &jwks, &validation).expect("verifies").claims_as().unwrap();
    assert_eq!(claims.sub, "user-alice");
    assert_eq!(claims.nonce.as_deref(), Some("n-0S6"));
    assert_eq!(claims.auth_time, server.clock_now().as_secs());
    assert_eq!(claims.at_hash, Some(token_hash_half(Algorithm::ES256, &access)));
    assert_eq!(claims.preferred_username.as_deref(), Some("alice"));
    let elsewhere = Validation::new(server.clock_now()).issuer(server.base.clone()).audience("someone-else").typ("JWT");
    assert!(decode(id_token, &jwks, &elsewhere).is_err(), "the audience is the client");

    let get = server.http.get(server.url("/userinfo")).bearer_auth(&access).send().await.unwrap();
    let info = Reply::from(get).await;
    assert_eq!(info.status, 200, "{}", info.text);
    assert_eq!(info.header("cache-control"), Some("no-store"));
    assert_eq!(info.body, serde_json::json!({"sub": "user-alice", "preferred_username": "alice"}));
    let post = Reply::from(server.http.post(server.url("/userinfo")).bearer_auth(&access).send().await.unwrap()).await;
    assert_eq!(post.body, info.body, "POST answers the same");

    let none = Reply::from(server.http.get(server.url("/userinfo")).send().await.unwrap()).await;
    none.assert_error(401, "invalid_token");
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));
    let forged =
        Reply::from(server.http.get(server.url("/userinfo")).bearer_auth("af_at_forged").send().await.unwrap()).await;
    forged.assert_error(401, "invalid_token");

    // A token bound to an MCP server is that server's, not a key to the user's identity here.
    let forget_consent = || server.store.delete_consent("user-alice", &client_id);
    let bound = Authz::new(&client_id).set("scope", "openid notes:read");
    forget_consent().await.unwrap();
    let code = code_for(&server, &bound).await;
    let body = exchange(&server, &client_id, &code, REDIRECT, bound.verifier.expose()).await.assert_token().clone();
    assert!(body["id_token"].is_string(), "the ID token comes all the same");
    let reply = server.http.get(server.url("/userinfo")).bearer_auth(body["access_token"].as_str().unwrap()).send();
    Reply::from(reply.await.unwrap()).await.assert_error(401, "invalid_token");

    // Without `openid`: no ID token, and /userinfo is out of scope. Asking for nothing does not grant openid.
    for authz in
        [Authz::new(&client_id).without("resource"), Authz::new(&client_id).without("resource").without("scope")]
    {
        forget_consent().await.unwrap();
        let code = code_for(&server, &authz).await;
        let body = exchange(&server, &client_id, &code, REDIRECT, authz.verifier.expose()).await.assert_token().clone();
        assert!(body.get("id_token").is_none(), "no openid, no ID token: {body}");
        assert!(!body["scope"].as_str().unwrap_or("").contains("openid"), "{body}");
        let reply = server.http.get(server.url("/userinfo")).bearer_auth(body["access_token"].as_str().unwrap()).send();
        let reply = Reply::from(reply.await.unwrap()).await;
        reply.assert_error(403, "insufficient_scope");
        assert!(reply.header("www-authenticate").unwrap().contains("scope=\"openid\""));
    }
    server.stop().await;
}

async fn remembered_consent_skips_the_consent_page(backend: Backend) {
    let (server, client_id) = setup(backend).await;
    let mut browser = Browser::new(&server);
    let first = Authz::new(&client_id).set("scope", "notes:read notes:write");
    let consent = signed_in(&mut browser, &first).await;
    redirected_to(&decide(&mut browser, &consent, "approve").await, REDIRECT);

    // Same browser, same or less asked: straight back with a code.
    let again = Authz::new(&client_id).set("scope", "notes:read").set("state", "second");
    let answer = browser.get(&again.url()).await;
    let params = redirected_to(&answer, REDIRECT);
    assert_eq!(params["state"], "second");
    exchange(&server, &client_id, &params["code"], REDIRECT, again.verifier.expose()).await.assert_token();

    // Another audience was never approved: ask again.
    let elsewhere = Authz::new(&client_id).set("resource", "https://other.example/mcp");
    assert_page(&browser.get(&elsewhere.url()).await, 200, "wants to access your account");
    // No resource (an unrestricted token) was never approved either.
    assert_page(&browser.get(&Authz::new(&client_id).without("resource").url()).await, 200, "wants to access");

    // Another browser has no session: it signs in first.
    let mut other = Browser::new(&server);
    assert_page(&other.get(&again.url()).await, 200, "Sign in");
    server.stop().await;
}

async fn deny_gives_access_denied(backend: Backend) {
    let (server, client_id) = setup(backend).await;
    let mut browser = Browser::new(&server);
    let authz = Authz::new(&client_id);
    let consent = signed_in(&mut browser, &authz).await;
    let params = redirected_to(&decide(&mut browser, &consent, "deny").await, REDIRECT);
    assert_eq!(params["error"], "access_denied");
    assert_eq!(params["state"], authz.get("state"));
    assert_eq!(params["iss"], server.base);
    assert!(!params.contains_key("code"));
    // Nothing was remembered: the next request asks again.
    assert_page(&browser.get(&authz.url()).await, 200, "wants to access your account");
    server.stop().await;
}

async fn code_replay_revokes_the_first_tokens(backend: Backend) {
    let (server, client_id) = setup(backend).await;
    let authz = Authz::new(&client_id);
    let code = code_for(&server, &authz).await;
    let first = exchange(&server, &client_id, &code, REDIRECT, authz.verifier.expose()).await;
    let first = first.assert_token().clone();
    let introspector = introspector(&server).await;
    let access = first["access_token"].as_str().unwrap();
    assert!(active(&server, &introspector, access).await, "the first tokens work");

    let replay = exchange(&server, &client_id, &code, REDIRECT, authz.verifier.expose()).await;
    replay.assert_error(400, "invalid_grant");
    assert!(!active(&server, &introspector, access).await, "a replayed code revokes the tokens issued from it");
    let refresh = first["refresh_token"].as_str().unwrap();
    assert!(!active(&server, &introspector, refresh).await, "…the refresh token too");
    let refreshed = server
        .post_form(
            "/token",
            &[("grant_type", "refresh_token"), ("client_id", &client_id), ("refresh_token", refresh)],
            None,
        )
        .await;
    refreshed.assert_error(400, "invalid_grant");
    server.stop().await;
}

async fn expired_code_fails(backend: Backend) {
    let (server, client_id) = setup(backend).await;
    let authz = Authz::new(&client_id);
    let code = code_for(&server, &authz).await;
    server.advance(Duration::from_secs(61));
    exchange(&server, &client_id, &code, REDIRECT, authz.verifier.expose()).await.assert_error(400, "invalid_grant");
    server.stop().await;
}

async fn redirect_uri_mismatch_at_token_fails(backend: Backend) {
    let (server, client_id) = setup(backend).await;
    let authz = Authz::new(&client_id);
    let code = code_for(&server, &authz).await;
    let other = "http://127.0.0.1:40000/callback";
    exchange(&server, &client_id, &code, other, authz.verifier.expose()).await.assert_error(400, "invalid_grant");
    server.stop().await;
}

async fn wrong_code_verifier_fails(backend: Backend) {
    let (server, client_id) = setup(backend).await;
    let authz = Authz::new(&client_id);
    let code = code_for(&server, &authz).await;
    let wrong = CodeVerifier::generate(&mut OsEntropy);
    exchange(&server, &client_id, &code, REDIRECT, wrong.expose()).await.assert_error(400, "invalid_grant");
    server.stop().await;
}

/// The parameters of an authorization request, as a form body.
fn form_of(authz: &Authz) -> Vec<(&str, &str)> {
    authz.params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// `POST /authorize` with `content_type` and a raw body, with the browser's cookies.
async fn post_raw(browser: &Browser<'_>, path: &str, content_type: &str, body: String) -> Reply {
    let req = browser
        .server
        .http
        .post(browser.server.url(path))
        .header("cookie", browser.cookie_header())
        .header("content-type", content_type)
        .body(body);
    Reply::from(req.send().await.unwrap()).await
}

/// OpenID Connect Core §3.1.2.1: the authorization request as a form post leads through the same sign-in and
/// consent pages to the same code as a `GET`.
async fn posted_authorization_request_flows_like_get(backend: Backend) {
    let (server, client_id) = setup(backend).await;
    let authz = Authz::new(&client_id).set("scope", "notes:read notes:write").set("nonce", "n-post");
    let mut browser = Browser::new(&server);

    let login = browser.post("/authorize", &form_of(&authz)).await;
    assert_page(&login, 200, "to continue to <strong>Test MCP Client</strong>");
    assert!(login.text.contains("Sign in"), "{}", login.text);
    let csp = login.header("content-security-policy").unwrap();
    assert!(csp.contains("form-action 'self' http://127.0.0.1:33418"), "{csp}");
    assert!(login.header("set-cookie").is_some_and(|c| c.contains("SameSite=Lax")), "a CSRF cookie");
    // The form carries the request exactly as a GET's page does.
    let carried = field(&login.text, "request");
    assert_eq!(carried, authz.url().trim_start_matches("/authorize?"));
    let mut by_get = Browser::new(&server);
    assert_eq!(field(&by_get.get(&authz.url()).await.text, "request"), carried);

    let form = [
        ("csrf_token", field(&login.text, "csrf_token")),
        ("request", carried),
        ("username", "alice".to_owned()),
        ("password", PASSWORD.to_owned()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let signed = browser.post("/authorize/login", &form).await;
    assert_eq!(signed.status, 303, "{}", signed.text);
    let location = signed.header("location").unwrap().to_owned();
    assert!(location.starts_with(&server.url("/authorize?")), "back to the authorization endpoint: {location}");

    let consent = browser.get(&location).await;
    let params = redirected_to(&decide(&mut browser, &consent, "approve").await, REDIRECT);
    assert!(params["code"].starts_with("af_ac_"), "{params:?}");
    assert_eq!(params["state"], authz.get("state"), "state echoed exactly");
    assert_eq!(params["iss"], server.base);
    let tokens = exchange(&server, &client_id, &params["code"], REDIRECT, authz.verifier.expose()).await;
    assert_eq!(tokens.assert_token()["scope"], "notes:read notes:write");

    // Signed in with the consent remembered, a post is answered like a GET: straight back with a code.
    let again = Authz::new(&client_id).set("state", "second");
    let params = redirected_to(&browser.post("/authorize", &form_of(&again)).await, REDIRECT);
    assert_eq!(params["state"], "second");
    exchange(&server, &client_id, &params["code"], REDIRECT, again.verifier.expose()).await.assert_token();
    server.stop().await;
}

// ---- request validation (backend-independent: memory) -----------------------------------------------------

/// A posted authorization request is parsed as strictly as a query: what cannot be trusted is shown, never
/// redirected; what can be is redirected exactly as for a `GET`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posted_authorization_requests_are_checked_like_get() {
    let (server, client_id) = memory().await;
    let browser = Browser::new(&server);
    let good = form_urlencoded::Serializer::new(String::new()).extend_pairs(&Authz::new(&client_id).params).finish();
    let evil = Authz::new(&client_id).set("redirect_uri", "https://evil.example/callback");
    let evil = form_urlencoded::Serializer::new(String::new()).extend_pairs(&evil.params).finish();
    let json = serde_json::to_string(&Authz::new(&client_id).params).unwrap();
    let form = "application/x-www-form-urlencoded";
    let cases: Vec<(&str, &str, &str, String, &str)> = vec![
        ("a repeated parameter", "/authorize", form, format!("{good}&client_id={client_id}"), "repeated"),
        (
            "a repeated redirect_uri",
            "/authorize",
            form,
            format!("{good}&redirect_uri=https%3A%2F%2Fevil.example%2F"),
            "repeated",
        ),
        ("a repeated empty parameter", "/authorize", form, format!("{good}&scope="), "repeated"),
        ("an unregistered redirect_uri", "/authorize", form, evil, "not registered for this application"),
        ("an unknown client", "/authorize", form, good.replace(&client_id, "nobody"), "not registered"),
        ("no parameters", "/authorize", form, String::new(), "no client_id"),
        ("a JSON body", "/authorize", "application/json", json, "application/x-www-form-urlencoded"),
        ("a form sent as JSON", "/authorize", "application/json", good.clone(), "application/x-www-form-urlencoded"),
        ("a form sent as text", "/authorize", "text/plain", good.clone(), "application/x-www-form-urlencoded"),
        (
            "a multipart body",
            "/authorize",
            "multipart/form-data; boundary=x",
            good.clone(),
            "application/x-www-form-urlencoded",
        ),
        ("parameters in the query too", "/authorize?prompt=login", form, good.clone(), "in the body only"),
    ];
    for (what, path, content_type, body, says) in cases {
        let reply = post_raw(&browser, path, content_type, body).await;
        assert_eq!(reply.status, 400, "{what}: {}", reply.text);
        assert!(reply.header("location").is_none(), "{what}: never redirected");
        assert_page(&reply, 400, says);
        assert!(!reply.text.contains("evil.example"), "{what}: the page does not link to the bad URI");
    }
    // No content type at all.
    let reply = server.http.post(server.url("/authorize")).body(good.clone()).send().await.unwrap();
    assert_page(&Reply::from(reply).await, 400, "application/x-www-form-urlencoded");
    // The charset parameter is fine.
    let reply = post_raw(&browser, "/authorize", "application/x-www-form-urlencoded; charset=UTF-8", good).await;
    assert_page(&reply, 200, "Sign in");
    // A body over the limit is refused before it is read, and not redirected either. The server then closes
    // the connection, the rest of the body unread: `Connection: close` keeps the client from pooling it for
    // the next request (which then, now and again, failed as an incomplete message).
    let huge = Authz::new(&client_id).set("state", &"x".repeat(authflow_server::MAX_BODY_BYTES));
    let huge = form_urlencoded::Serializer::new(String::new()).extend_pairs(&huge.params).finish();
    let req = server.http.post(server.url("/authorize")).header("content-type", form).header("connection", "close");
    let reply = Reply::from(req.body(huge).send().await.unwrap()).await;
    assert!(matches!(reply.status, 400 | 413), "{}: {}", reply.status, reply.text);
    assert!(reply.header("location").is_none());

    // Once client and redirect URI check out, later errors go back to the client, as for a GET.
    let mut browser = Browser::new(&server);
    let plain = Authz::new(&client_id).set("code_challenge_method", "plain");
    let params = redirected_to(&browser.post("/authorize", &form_of(&plain)).await, REDIRECT);
    assert_eq!(params["error"], "invalid_request");
    assert_eq!(params["state"], plain.get("state"));
    assert_eq!(params["iss"], server.base);
    let implicit = Authz::new(&client_id).set("response_type", "token");
    let params = redirected_to(&browser.post("/authorize", &form_of(&implicit)).await, REDIRECT);
    assert_eq!(params["error"], "unsupported_response_type");
    server.stop().await;
}

/// A post to `/authorize` starts the flow and nothing more: however it is dressed up (a consent form's
/// fields, a stolen CSRF token, another site), it shows the sign-in or consent page and never approves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posted_authorization_requests_approve_nothing() {
    let (server, client_id) = memory().await;
    let authz = Authz::new(&client_id);
    let mut browser = Browser::new(&server);
    let consent = signed_in(&mut browser, &authz).await;
    assert_page(&consent, 200, "wants to access your account");
    let token = field(&consent.text, "csrf_token");

    // The consent form's fields posted to the authorization endpoint, with the session and CSRF cookies.
    let mut dressed = form_of(&authz);
    dressed.extend([("csrf_token", token.as_str()), ("decision", "approve")]);
    let reply = browser.post("/authorize", &dressed).await;
    assert_page(&reply, 200, "wants to access your account");
    let user = server.store.find_user_by_username("alice").await.unwrap().unwrap();
    let remembered = server.store.find_consent(&user.id, &client_id, server.clock_now()).await.unwrap();
    assert!(remembered.is_none(), "nothing approved");

    // From another site: no cookies come along (SameSite=Lax), so the flow starts at the sign-in page.
    let reply = server
        .http
        .post(server.url("/authorize"))
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "navigate")
        .form(&dressed)
        .send()
        .await
        .unwrap();
    let reply = Reply::from(reply).await;
    assert_page(&reply, 200, "Sign in");
    assert!(reply.header("set-cookie").is_some_and(|c| c.contains("csrf")), "a CSRF cookie of its own");
    assert_ne!(field(&reply.text, "csrf_token"), token, "the form's token is never one the post sent");

    // The consent and sign-in posts keep their CSRF checks: a cross-site approval is refused.
    let form = [("csrf_token", token.as_str()), ("request", &field(&consent.text, "request")), ("decision", "approve")];
    let reply = server
        .http
        .post(server.url("/authorize/consent"))
        .header("cookie", browser.cookie_header())
        .header("sec-fetch-site", "cross-site")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_page(&Reply::from(reply).await, 403, "This form has expired");
    assert!(server.store.find_consent(&user.id, &client_id, server.clock_now()).await.unwrap().is_none());
    // The page the post led to still works, like the GET's.
    redirected_to(&decide(&mut browser, &consent, "approve").await, REDIRECT);
    server.stop().await;
}

async fn memory() -> (TestServer, String) {
    setup(Backend::Memory).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_client_or_redirect_uri_is_shown_never_redirected() {
    let (server, client_id) = memory().await;
    let mut disabled = ClientSpec::public_app();
    disabled.id = Some("disabled-app".into());
    server.add_client(disabled).await;
    let mut c = server.store.find_client("disabled-app").await.unwrap().unwrap();
    c.disabled = true;
    server.store.update_client(&c).await.unwrap();

    let good = Authz::new(&client_id);
    let cases: Vec<(&str, String, &str)> = vec![
        ("no client_id", good.url().replace(&format!("client_id={client_id}&"), ""), "no client_id"),
        ("unknown client", Authz::new("nobody").url(), "not registered"),
        ("malformed client id", Authz::new("bad id").url(), "not registered"),
        ("disabled client", Authz::new("disabled-app").url(), "disabled"),
        ("no redirect_uri", Authz::new(&client_id).without("redirect_uri").url(), "no redirect_uri"),
        (
            "unregistered redirect_uri",
            Authz::new(&client_id).set("redirect_uri", "https://evil.example/callback").url(),
            "not registered for this application",
        ),
        (
            "a different path on the loopback host",
            Authz::new(&client_id).set("redirect_uri", "http://127.0.0.1:33418/callback/evil").url(),
            "not registered for this application",
        ),
        ("a repeated parameter", format!("{}&client_id={client_id}", good.url()), "repeated"),
        ("a repeated redirect_uri", format!("{}&redirect_uri=https%3A%2F%2Fevil.example%2F", good.url()), "repeated"),
    ];
    let mut browser = Browser::new(&server);
    for (what, url, says) in cases {
        let reply = browser.get(&url).await;
        assert_eq!(reply.status, 400, "{what}: {}", reply.text);
        assert!(reply.header("location").is_none(), "{what}: never redirected");
        assert_page(&reply, 400, says);
        assert!(!reply.text.contains("evil.example"), "{what}: the page does not link to the bad URI");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_errors_are_redirected_with_state_and_iss() {
    let server = TestServer::start_with(Backend::Memory, |b| {
        b.policy(Policy { resources: vec![RESOURCE.into(), "https://other.example/mcp".into()], ..Policy::default() })
    })
    .await;
    add_user(&server, "alice", false).await;
    let (client_id, _) = server.add_client(ClientSpec::public_app()).await;
    let mut no_code_grant = ClientSpec::public_app().grants(&[authflow_core::GrantType::RefreshToken]);
    no_code_grant.id = Some("refresh-only".into());
    server.add_client(no_code_grant).await;
    let mut narrow = ClientSpec::public_app().resources(&[RESOURCE]);
    narrow.id = Some("narrow".into());
    server.add_client(narrow).await;

    let base = || Authz::new(&client_id);
    let cases: Vec<(&str, Authz, &str)> = vec![
        ("no response_type", base().without("response_type"), "invalid_request"),
        ("implicit", base().set("response_type", "token"), "unsupported_response_type"),
        ("hybrid", base().set("response_type", "code id_token"), "unsupported_response_type"),
        ("form_post", base().set("response_mode", "form_post"), "invalid_request"),
        ("no challenge", base().without("code_challenge"), "invalid_request"),
        ("plain PKCE", base().set("code_challenge_method", "plain"), "invalid_request"),
        ("no method means plain", base().without("code_challenge_method"), "invalid_request"),
        ("lower-case method", base().set("code_challenge_method", "s256"), "invalid_request"),
        ("short challenge", base().set("code_challenge", "abc"), "invalid_request"),
        ("no code grant", Authz::new("refresh-only"), "unauthorized_client"),
        ("scope beyond the client's", base().set("scope", "notes:read admin"), "invalid_scope"),
        ("malformed scope", base().set("scope", "a\"b"), "invalid_scope"),
        ("resource the server does not serve", base().set("resource", "https://else.example/mcp"), "invalid_target"),
        ("resource with a fragment", base().set("resource", "https://mcp.example/mcp#x"), "invalid_target"),
        (
            "resource the client may not use",
            Authz::new("narrow").set("resource", "https://other.example/mcp"),
            "invalid_target",
        ),
    ];
    let mut browser = Browser::new(&server);
    for (what, authz, code) in cases {
        let reply = browser.get(&authz.url()).await;
        let params = redirected_to(&reply, REDIRECT);
        assert_eq!(params["error"], code, "{what}: {params:?}");
        assert!(params.contains_key("error_description"), "{what}");
        assert_eq!(params["state"], authz.get("state"), "{what}: state echoed");
        assert_eq!(params["iss"], server.base, "{what}: iss");
        assert!(!params.contains_key("code"), "{what}");
    }
    // Without a state there is none to echo.
    let params = redirected_to(&browser.get(&base().without("state").without("response_type").url()).await, REDIRECT);
    assert!(!params.contains_key("state"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_redirect_uris_match_any_port_and_keep_their_query() {
    let server = TestServer::start(Backend::Memory).await;
    add_user(&server, "alice", false).await;
    let mut spec = ClientSpec::public_app();
    spec.redirect_uris = vec!["http://127.0.0.1/callback?tenant=a%20b".into()];
    let (client_id, _) = server.add_client(spec).await;
    let sent = "http://127.0.0.1:50123/callback?tenant=a%20b";
    let authz = Authz::new(&client_id).set("redirect_uri", sent);
    let mut browser = Browser::new(&server);
    let consent = signed_in(&mut browser, &authz).await;
    let answer = decide(&mut browser, &consent, "approve").await;
    let location = answer.header("location").unwrap();
    assert!(location.starts_with(&format!("{sent}&code=af_ac_")), "appended to the existing query: {location}");
    let code = redirected_to(&answer, sent)["code"].clone();
    // The token request must repeat the URI exactly as sent, port included.
    exchange(&server, &client_id, &code, sent, authz.verifier.expose()).await.assert_token();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_show_the_form_again() {
    let (server, client_id) = memory().await;
    add_user(&server, "mallory", true).await;
    let authz = Authz::new(&client_id);
    let cases = [
        ("wrong password", "alice", "not the password", 401, "Incorrect username or password."),
        ("unknown user", "nobody", PASSWORD, 401, "Incorrect username or password."),
        ("no password", "alice", "", 400, "Enter your username and password."),
        ("disabled user", "mallory", PASSWORD, 403, "This account is disabled."),
    ];
    for (what, user, password, status, says) in cases {
        let mut browser = Browser::new(&server);
        let reply = sign_in(&mut browser, &authz, user, password).await;
        assert_page(&reply, status, says);
        assert!(!browser.cookies.keys().any(|k| k.contains("session")), "{what}: no session");
        assert!(!reply.text.contains(PASSWORD), "{what}: the password is never echoed");
        if user != "nobody" {
            assert!(reply.text.contains(&format!("value=\"{user}\"")), "{what}: the username is kept");
        }
        // Still signed out.
        assert_page(&browser.get(&authz.url()).await, 200, "Sign in");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_without_the_csrf_token_are_refused() {
    let (server, client_id) = memory().await;
    let authz = Authz::new(&client_id);
    let mut browser = Browser::new(&server);
    let page = browser.get(&authz.url()).await;
    let token = field(&page.text, "csrf_token");
    let request = field(&page.text, "request");
    let other = "A".repeat(43);

    let attempts: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("no token", vec![("request", &request), ("username", "alice"), ("password", PASSWORD)]),
        (
            "another token",
            vec![("csrf_token", &other), ("request", &request), ("username", "alice"), ("password", PASSWORD)],
        ),
    ];
    for (what, form) in attempts {
        let reply = browser.post("/authorize/login", &form).await;
        assert_page(&reply, 403, "This form has expired");
        assert!(reply.header("set-cookie").is_none(), "{what}: no session");
        assert!(reply.text.contains("Start again"), "{what}: a way back");
    }
    // The right token without the cookie (a cross-site form cannot send it).
    let mut stranger = Browser::new(&server);
    let form = [("csrf_token", token.as_str()), ("request", &request), ("username", "alice"), ("password", PASSWORD)];
    assert_page(&stranger.post("/authorize/login", &form).await, 403, "This form has expired");
    // The browser says the post comes from another site.
    let reply = server
        .http
        .post(server.url("/authorize/login"))
        .header("cookie", browser.cookie_header())
        .header("sec-fetch-site", "cross-site")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_page(&Reply::from(reply).await, 403, "This form has expired");

    // Signed in, the consent post needs the token too.
    let consent = signed_in(&mut browser, &authz).await;
    let request = field(&consent.text, "request");
    let reply = browser.post("/authorize/consent", &[("request", &request), ("decision", "approve")]).await;
    assert_page(&reply, 403, "This form has expired");
    let reply = browser
        .post("/authorize/consent", &[("csrf_token", &other), ("request", &request), ("decision", "approve")])
        .await;
    assert_page(&reply, 403, "This form has expired");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_attempts_are_rate_limited() {
    let (server, client_id) = memory().await;
    let authz = Authz::new(&client_id);
    let mut browser = Browser::new(&server);
    for attempt in 1..=10 {
        let reply = sign_in(&mut browser, &authz, "alice", "wrong").await;
        assert_eq!(reply.status, 401, "attempt {attempt} is checked");
    }
    let limited = sign_in(&mut browser, &authz, "alice", PASSWORD).await;
    assert_page(&limited, 429, "Too many sign-in attempts. Try again in ");
    let retry: u64 = limited.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=600).contains(&retry), "within two windows: {retry}");
    assert!(!browser.cookies.keys().any(|k| k.contains("session")), "even the right password is refused meanwhile");

    // Another username from the same address still works…
    add_user(&server, "bob", false).await;
    assert_eq!(sign_in(&mut Browser::new(&server), &authz, "bob", PASSWORD).await.status, 303);
    // …and alice can sign in once the window has passed.
    server.advance(Duration::from_secs(600));
    assert_eq!(sign_in(&mut browser, &authz, "alice", PASSWORD).await.status, 303);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_attempts_are_rate_limited_per_address() {
    let (server, client_id) = memory().await;
    let authz = Authz::new(&client_id);
    for i in 0..30 {
        let reply = sign_in(&mut Browser::new(&server), &authz, &format!("user{i}"), "guess").await;
        assert_eq!(reply.status, 401, "attempt {i}");
    }
    let limited = sign_in(&mut Browser::new(&server), &authz, "alice", PASSWORD).await;
    assert_page(&limited, 429, "Too many sign-in attempts.");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_escape_what_clients_and_users_control() {
    let server = TestServer::start(Backend::Memory).await;
    add_user(&server, "<b>alice</b>", false).await;
    let mut spec = ClientSpec::public_app();
    spec.name = "<script>alert('x')</script> & \"Co\"".into();
    let (client_id, _) = server.add_client(spec).await;
    let authz = Authz::new(&client_id).set("state", "\"><script>alert(1)</script>");
    let mut browser = Browser::new(&server);
    let page = browser.get(&authz.url()).await;
    assert_page(&page, 200, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;Co&quot;");
    assert!(!page.text.contains("<script"), "nothing a client sends becomes markup:\n{}", page.text);
    let carried = field(&page.text, "request");
    let state = form_urlencoded::parse(carried.as_bytes()).find(|(k, _)| k == "state").unwrap().1;
    assert_eq!(state, authz.get("state"), "the request is carried intact");

    let reply = browser
        .post(
            "/authorize/login",
            &[
                ("csrf_token", &field(&page.text, "csrf_token")),
                ("request", &field(&page.text, "request")),
                ("username", "<b>alice</b>"),
                ("password", PASSWORD),
            ],
        )
        .await;
    let consent = browser.get(reply.header("location").unwrap()).await;
    assert_page(&consent, 200, "Signed in as <strong>&lt;b&gt;alice&lt;/b&gt;</strong>");
    assert!(!consent.text.contains("<script") && !consent.text.contains("<b>"), "{}", consent.text);

    // A failed attempt echoes the username escaped.
    let mut other = Browser::new(&server);
    let reply = sign_in(&mut other, &authz, "\"><img src=x>", "wrong").await;
    assert_page(&reply, 401, "value=\"&quot;&gt;&lt;img src=x&gt;\"");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posted_requests_are_validated_again() {
    let (server, client_id) = memory().await;
    let authz = Authz::new(&client_id);
    let mut browser = Browser::new(&server);
    let page = browser.get(&authz.url()).await;
    let token = field(&page.text, "csrf_token");

    // The hidden request swapped for one with an unregistered redirect URI: shown, never followed.
    let tampered = Authz::new(&client_id).set("redirect_uri", "https://evil.example/cb").url();
    let tampered = tampered.trim_start_matches("/authorize?");
    let form = [("csrf_token", token.as_str()), ("request", tampered), ("username", "alice"), ("password", PASSWORD)];
    let reply = browser.post("/authorize/login", &form).await;
    assert_page(&reply, 400, "not registered for this application");
    assert!(!browser.cookies.keys().any(|k| k.contains("session")), "no sign-in on a bad request");

    // …and swapped for plain PKCE: redirected with the error, no sign-in.
    let plain = Authz::new(&client_id).set("code_challenge_method", "plain").url();
    let form = [
        ("csrf_token", token.as_str()),
        ("request", plain.trim_start_matches("/authorize?")),
        ("username", "alice"),
        ("password", PASSWORD),
    ];
    let params = redirected_to(&browser.post("/authorize/login", &form).await, REDIRECT);
    assert_eq!(params["error"], "invalid_request");

    // A repeated field in the form itself.
    let reply = server
        .http
        .post(server.url("/authorize/login"))
        .header("cookie", browser.cookie_header())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf_token={token}&csrf_token={token}&username=alice"))
        .send()
        .await
        .unwrap();
    assert_page(&Reply::from(reply).await, 400, "repeated");
    // No request at all.
    let reply = browser.post("/authorize/login", &[("csrf_token", &token), ("username", "alice")]).await;
    assert_page(&reply, 400, "does not carry the authorization request");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_expire_and_consent_needs_one() {
    let (server, client_id) = memory().await;
    let authz = Authz::new(&client_id);
    let mut browser = Browser::new(&server);
    let consent = signed_in(&mut browser, &authz).await;
    assert_page(&consent, 200, "wants to access your account");

    server.advance(Duration::from_secs(12 * 3600));
    // The consent page was open while the session ended: approving leads back to sign-in, issues nothing.
    let reply = decide(&mut browser, &consent, "approve").await;
    assert_eq!(reply.status, 303);
    let location = reply.header("location").unwrap().to_owned();
    assert!(location.starts_with(&server.url("/authorize?")), "back to the start, not to the client: {location}");
    assert_page(&browser.get(&location).await, 200, "Sign in");
    let user = server.store.find_user_by_username("alice").await.unwrap().unwrap();
    assert!(server.store.find_consent(&user.id, &client_id, server.clock_now()).await.unwrap().is_none());

    // A decision that is neither approve nor deny.
    let consent = signed_in(&mut browser, &authz).await;
    let form = [
        ("csrf_token", field(&consent.text, "csrf_token")),
        ("request", field(&consent.text, "request")),
        ("decision", "maybe".to_owned()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_page(&browser.post("/authorize/consent", &form).await, 400, "Choose Approve or Deny.");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_a_user_ends_their_sessions() {
    let (server, client_id) = memory().await;
    let authz = Authz::new(&client_id);
    let mut browser = Browser::new(&server);
    signed_in(&mut browser, &authz).await;
    let mut alice = server.store.find_user_by_username("alice").await.unwrap().unwrap();
    alice.disabled = true;
    server.store.update_user(&alice).await.unwrap();
    assert_page(&browser.get(&authz.url()).await, 200, "Sign in");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_advertises_the_authorization_endpoint() {
    let server = TestServer::start(Backend::Memory).await;
    let reply = server.http.get(server.url("/.well-known/oauth-authorization-server")).send().await.unwrap();
    let m: serde_json::Value = reply.json().await.unwrap();
    assert_eq!(m["authorization_endpoint"], server.url("/authorize"));
    assert_eq!(m["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(m["response_modes_supported"], serde_json::json!(["query"]));
    assert_eq!(m["authorization_response_iss_parameter_supported"], true);
    assert_eq!(m["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert!(m["grant_types_supported"].as_array().unwrap().contains(&"authorization_code".into()));
    server.stop().await;
}

#[tokio::test]
async fn openid_discovery_describes_what_is_served() {
    let server = TestServer::start_with(Backend::Memory, |b| b.scopes(vec!["notes:read".into()])).await;
    let reply = server.http.get(server.url("/.well-known/openid-configuration")).send().await.unwrap();
    assert_eq!(reply.status(), 200);
    let m: serde_json::Value = reply.json().await.unwrap();
    assert_eq!(m["issuer"], server.base);
    assert_eq!(m["userinfo_endpoint"], server.url("/userinfo"));
    assert_eq!(m["jwks_uri"], server.url("/jwks.json"));
    assert_eq!(m["subject_types_supported"], serde_json::json!(["public"]));
    assert_eq!(m["id_token_signing_alg_values_supported"], serde_json::json!(["ES256"]));
    assert_eq!(m["scopes_supported"], serde_json::json!(["notes:read", "openid", "profile"]));
    assert_eq!(m["response_types_supported"], serde_json::json!(["code"]));
    let oauth: serde_json::Value = server
        .http
        .get(server.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for key in ["token_endpoint", "authorization_endpoint", "grant_types_supported", "code_challenge_methods_supported"]
    {
        assert_eq!(m[key], oauth[key], "{key} is the same in both documents");
    }
    server.stop().await;
}
