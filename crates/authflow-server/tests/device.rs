//! The device authorization grant (RFC 8628) over real HTTP: the device's requests to
//! `/device_authorization` and `/token`, and the person's visit to the verification page, posted as a browser
//! would. Time is the server's manual clock, so `slow_down` and expiry are exact.

mod common;

use std::time::Duration;

use authflow_core::GrantType;
use common::browser::*;
use common::{Backend, ClientSpec, Reply, TestServer};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A server with alice and a public device client (device code + refresh).
async fn setup(backend: Backend) -> (TestServer, String) {
    let server = TestServer::start(backend).await;
    add_user(&server, "alice", false).await;
    let (client_id, _) = server.add_client(device_client()).await;
    (server, client_id)
}

fn device_client() -> ClientSpec {
    let mut spec = ClientSpec::public_app();
    spec.name = "Notes CLI".into();
    spec.redirect_uris = vec![];
    spec.grant_types = vec![GrantType::DeviceCode, GrantType::RefreshToken];
    spec
}

/// What `/device_authorization` answered.
struct Started {
    device_code: String,
    user_code: String,
}

async fn start(server: &TestServer, client_id: &str) -> Started {
    let form = [("client_id", client_id), ("scope", "notes:read"), ("resource", RESOURCE)];
    let reply = server.post_form("/device_authorization", &form, None).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    Started {
        device_code: reply.body["device_code"].as_str().unwrap().to_owned(),
        user_code: reply.body["user_code"].as_str().unwrap().to_owned(),
    }
}

async fn poll(server: &TestServer, client_id: &str, device_code: &str) -> Reply {
    let form = [("grant_type", DEVICE_GRANT), ("client_id", client_id), ("device_code", device_code)];
    server.post_form("/token", &form, None).await
}

/// The person's side: open the verification URI with the code, sign in, and answer `decision`.
async fn verify(server: &TestServer, user_code: &str, decision: &str) -> Reply {
    let mut browser = Browser::new(server);
    let typed = user_code.replace('-', " ").to_lowercase();
    let login = browser.get(&format!("/device?user_code={}", urlencode(&typed))).await;
    assert_page(&login, 200, "Sign in");
    assert!(login.text.contains("action=\"/device/login\""), "{}", login.text);
    let signed = browser
        .post(
            "/device/login",
            &[
                ("csrf_token", &field(&login.text, "csrf_token")),
                ("request", &field(&login.text, "request")),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(signed.status, 303, "{}", signed.text);
    let consent = browser.get(signed.header("location").unwrap()).await;
    assert_page(&consent, 200, &format!("your device shows the code <strong>{user_code}</strong>"));
    assert!(consent.text.contains(RESOURCE), "the consent page names the resource");
    browser
        .post(
            "/device/consent",
            &[
                ("csrf_token", &field(&consent.text, "csrf_token")),
                ("request", &field(&consent.text, "request")),
                ("decision", decision),
            ],
        )
        .await
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

on_every_backend!(the_device_flow_issues_tokens_once, a_denial_reaches_the_device, device_codes_expire);

async fn the_device_flow_issues_tokens_once(backend: Backend) {
    let (server, client_id) = setup(backend).await;
    let form = [("client_id", client_id.as_str()), ("scope", "notes:read"), ("resource", RESOURCE)];
    let reply = server.post_form("/device_authorization", &form, None).await;
    let body = &reply.body;
    assert!(body["device_code"].as_str().unwrap().starts_with("af_dc_"), "{body}");
    let user_code = body["user_code"].as_str().unwrap();
    assert!(user_code.len() == 9 && user_code.as_bytes()[4] == b'-', "XXXX-XXXX: {user_code}");
    assert_eq!(body["verification_uri"], server.url("/device"));
    assert_eq!(body["verification_uri_complete"], server.url(&format!("/device?user_code={user_code}")));
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["interval"], 5);
    let device_code = body["device_code"].as_str().unwrap().to_owned();

    poll(&server, &client_id, &device_code).await.assert_error(400, "authorization_pending");
    let fast = poll(&server, &client_id, &device_code).await;
    fast.assert_error(400, "slow_down");
    assert!(fast.body["error_description"].as_str().unwrap().contains("10 seconds"), "{}", fast.text);
    server.advance(Duration::from_secs(5));
    poll(&server, &client_id, &device_code).await.assert_error(400, "slow_down");
    server.advance(Duration::from_secs(15));
    poll(&server, &client_id, &device_code).await.assert_error(400, "authorization_pending");

    let done = verify(&server, user_code, "approve").await;
    assert_page(&done, 200, "Device connected");

    // Another client cannot redeem this device code.
    let (other, _) = server.add_client(device_client()).await;
    server.advance(Duration::from_secs(15));
    poll(&server, &other, &device_code).await.assert_error(400, "invalid_grant");

    server.advance(Duration::from_secs(15));
    let tokens = poll(&server, &client_id, &device_code).await;
    let body = tokens.assert_token().clone();
    assert_eq!(body["scope"], "notes:read");
    assert!(body["refresh_token"].is_string());
    let introspector = introspector(&server).await;
    let info = server
        .post_form(
            "/introspect",
            &[("token", body["access_token"].as_str().unwrap())],
            Some((&introspector.0, &introspector.1)),
        )
        .await;
    assert_eq!(info.body["sub"], "user-alice");
    assert_eq!(info.body["aud"], RESOURCE);

    server.advance(Duration::from_secs(15));
    poll(&server, &client_id, &device_code).await.assert_error(400, "invalid_grant");
    // The code cannot be approved again either.
    let again = Browser::new(&server).get(&format!("/device?user_code={user_code}")).await;
    assert_page(&again, 400, "That code is not valid");
    server.stop().await;
}

async fn a_denial_reaches_the_device(backend: Backend) {
    let (server, client_id) = setup(backend).await;
    let started = start(&server, &client_id).await;
    let done = verify(&server, &started.user_code, "deny").await;
    assert_page(&done, 200, "Request denied");
    poll(&server, &client_id, &started.device_code).await.assert_error(400, "access_denied");
    server.advance(Duration::from_secs(10));
    poll(&server, &client_id, &started.device_code).await.assert_error(400, "access_denied");
    server.stop().await;
}

async fn device_codes_expire(backend: Backend) {
    let (server, client_id) = setup(backend).await;
    let started = start(&server, &client_id).await;
    server.advance(Duration::from_secs(600));
    poll(&server, &client_id, &started.device_code).await.assert_error(400, "expired_token");
    let late = Browser::new(&server).get(&format!("/device?user_code={}", started.user_code)).await;
    assert_page(&late, 400, "That code is not valid");
    server.stop().await;
}

#[tokio::test]
async fn device_requests_are_checked() {
    let (server, client_id) = setup(Backend::Memory).await;
    // A client not registered for the grant is refused at both endpoints.
    let (web, _) = server.add_client(ClientSpec::public_app()).await;
    let reply = server.post_form("/device_authorization", &[("client_id", &web)], None).await;
    reply.assert_error(400, "unauthorized_client");
    poll(&server, &web, "af_dc_whatever").await.assert_error(400, "unauthorized_client");

    server
        .post_form("/device_authorization", &[("client_id", "nobody")], None)
        .await
        .assert_error(401, "invalid_client");
    let reply = server.post_form("/device_authorization", &[("client_id", &client_id), ("scope", "admin")], None).await;
    reply.assert_error(400, "invalid_scope");
    let form = [("client_id", client_id.as_str()), ("scope", "notes:read"), ("scope", "notes:read")];
    server.post_form("/device_authorization", &form, None).await.assert_error(400, "invalid_request");

    let form = [("grant_type", DEVICE_GRANT), ("client_id", client_id.as_str())];
    server.post_form("/token", &form, None).await.assert_error(400, "invalid_request");
    poll(&server, &client_id, "af_dc_unknown").await.assert_error(400, "invalid_grant");

    let meta = server.http.get(server.url("/.well-known/oauth-authorization-server")).send().await.unwrap();
    let meta: serde_json::Value = meta.json().await.unwrap();
    assert_eq!(meta["device_authorization_endpoint"], server.url("/device_authorization"));
    assert!(meta["grant_types_supported"].as_array().unwrap().contains(&DEVICE_GRANT.into()));
    server.stop().await;
}

#[tokio::test]
async fn the_verification_page_resists_guessing_and_forgery() {
    let (server, client_id) = setup(Backend::Memory).await;
    let started = start(&server, &client_id).await;
    let mut browser = Browser::new(&server);

    assert_page(&browser.get("/device").await, 200, "Enter the code your device shows");
    for junk in ["BCDF", "AAAA-AAAA", "<script>"] {
        let page = browser.get(&format!("/device?user_code={}", urlencode(junk))).await;
        assert_page(&page, 400, "That code is not valid");
        assert!(!page.text.contains("<script>"), "input is escaped");
    }

    // CSRF: a consent post without the token does nothing.
    let forged = browser
        .post("/device/consent", &[("request", &format!("user_code={}", started.user_code)), ("decision", "approve")])
        .await;
    assert_page(&forged, 403, "This form has expired");
    poll(&server, &client_id, &started.device_code).await.assert_error(400, "authorization_pending");

    // 20 codes per address per 10 minutes (3 used above, and the forged post's lookup was never made).
    for _ in 0..17 {
        assert_page(&browser.get("/device?user_code=BCDF-GHJK").await, 400, "That code is not valid");
    }
    let limited = browser.get(&format!("/device?user_code={}", started.user_code)).await;
    assert_page(&limited, 429, "Too many codes tried");
    assert!(limited.header("retry-after").is_some());
    // The sliding window forgets the burst once a whole window has passed since it.
    server.advance(Duration::from_secs(1200));
    let fresh = start(&server, &client_id).await;
    assert_page(&browser.get(&format!("/device?user_code={}", fresh.user_code)).await, 200, "Sign in");
    server.stop().await;
}
