//! `SafeHttpClient` over real HTTP on loopback: literals in every spelling, names resolving to forbidden
//! addresses, redirects re-checked per hop, size and time limits.
//!
//! Every "forbidden" target here is a loopback address, so a bug would only ever reach this machine.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use authflow_core::ssrf::{AddressClass, SsrfError, SsrfPolicy};
use authflow_http::{FetchError, SafeHttpClient, StaticResolver};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Redirect;
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

/// A loopback server counting its requests: `/ok`, `/big`, `/chunked`, `/slow`, `/to?url=…`, `/loop`,
/// `POST /moved`.
async fn target() -> (u16, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let count = hits.clone();
    let router = Router::new()
        .route("/ok", get(|| async { axum::Json(json!({"ok": true})) }))
        .route("/big", get(|| async { "x".repeat(64 * 1024) }))
        .route("/chunked", get(|| async { axum::body::Body::new(Chunks(64)) }))
        .route("/slow", get(std::future::pending::<&'static str>))
        .route(
            "/to",
            get(|q: axum::extract::Query<std::collections::HashMap<String, String>>| async move {
                Redirect::temporary(&q["url"])
            }),
        )
        .route("/loop", get(|| async { Redirect::temporary("/loop") }))
        .route("/relative", get(|| async { Redirect::permanent("ok") }))
        .route("/moved", post(|| async { Redirect::temporary("/ok") }))
        .layer(axum::middleware::from_fn(move |req: axum::extract::Request, next: axum::middleware::Next| {
            count.fetch_add(1, Ordering::SeqCst);
            next.run(req)
        }));
    let base = serve(router).await;
    (base.rsplit(':').next().unwrap().parse().unwrap(), hits)
}

/// A body of `n` 1 KiB chunks with no length announced (chunked transfer encoding).
struct Chunks(usize);

impl http_body::Body for Chunks {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<axum::body::Bytes>, Self::Error>>> {
        if self.0 == 0 {
            return std::task::Poll::Ready(None);
        }
        self.0 -= 1;
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(axum::body::Bytes::from(vec![b'x'; 1024])))))
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn loopback_only_127_0_0_1() -> SsrfPolicy {
    // Plain http, and of all loopback addresses only 127.0.0.1: the rest of 127/8 stands for "forbidden".
    SsrfPolicy::strict().allow_http(true).allow_network("127.0.0.1/32".parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn literal_addresses_in_every_spelling_are_refused_before_connecting() {
    let (port, hits) = target().await;
    let client = SafeHttpClient::new(SsrfPolicy::strict().allow_http(true)).unwrap();
    for host in [
        "127.0.0.1",
        "2130706433",
        "0x7f000001",
        "0177.0.0.1",
        "127.1",
        "127.0.0.1.",
        "localhost",
        "localhost.",
        "LocalHost",
        "app.localhost",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[0:0:0:0:0:ffff:127.0.0.1]",
        "[::127.0.0.1]",
        "0.0.0.0",
        "0",
    ] {
        let url = format!("http://{host}:{port}/ok").parse().unwrap();
        let err = client.get(&url).await.unwrap_err();
        assert!(matches!(err, FetchError::Blocked(_)), "{host}: {err}");
    }
    // NAT64 and 6to4 forms of loopback: refused the same way (never routed anywhere).
    for host in ["[64:ff9b::7f00:1]", "[2002:7f00:1::]"] {
        let err = client.get(&format!("http://{host}:{port}/ok").parse().unwrap()).await.unwrap_err();
        assert!(
            matches!(err, FetchError::Blocked(SsrfError::ForbiddenAddress { class: AddressClass::Loopback, .. })),
            "{host}: {err}"
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing reached the server");

    // https required unless allowed; user information refused.
    let strict = SafeHttpClient::new(SsrfPolicy::development().allow_http(false)).unwrap();
    let err = strict.get(&format!("http://127.0.0.1:{port}/ok").parse().unwrap()).await.unwrap_err();
    assert!(matches!(err, FetchError::Blocked(SsrfError::InsecureScheme)), "{err}");
    let dev = SafeHttpClient::new(SsrfPolicy::development()).unwrap();
    let err = dev.get(&format!("http://user:pw@127.0.0.1:{port}/ok").parse().unwrap()).await.unwrap_err();
    assert!(matches!(err, FetchError::Blocked(SsrfError::Userinfo)), "{err}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    // Allowed, it connects.
    let ok: serde_json::Value = dev.get_json(&format!("http://127.0.0.1:{port}/ok").parse().unwrap()).await.unwrap();
    assert_eq!(ok, json!({"ok": true}));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_judged_by_the_addresses_they_resolve_to() {
    let (port, hits) = target().await;
    let dns = StaticResolver::new()
        .with("rebind.test", &[ip("127.0.0.2")])
        .with("mixed.test", &[ip("127.0.0.1"), ip("127.0.0.2")])
        .with("good.test", &[ip("127.0.0.1")]);
    let client = SafeHttpClient::builder(loopback_only_127_0_0_1()).dns_resolver(dns).build().unwrap();
    for name in ["rebind.test", "mixed.test"] {
        let err = client.get(&format!("http://{name}:{port}/ok").parse().unwrap()).await.unwrap_err();
        assert!(
            matches!(err, FetchError::Blocked(SsrfError::ForbiddenAddress { class: AddressClass::Loopback, .. })),
            "{name}: {err}"
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    client.get_json::<serde_json::Value>(&format!("http://good.test:{port}/ok").parse().unwrap()).await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // With the operating system's resolver: `localhost` resolves to loopback, refused unless allowed.
    let trusting_names = SsrfPolicy::strict().allow_http(true);
    let err = SafeHttpClient::new(trusting_names.clone())
        .unwrap()
        .get(&format!("http://localhost:{port}/ok").parse().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Blocked(_)), "{err}");
    let dev = SafeHttpClient::new(SsrfPolicy::development()).unwrap();
    dev.get_json::<serde_json::Value>(&format!("http://localhost:{port}/ok").parse().unwrap()).await.unwrap();
    // A name on the allow-list is trusted whatever it resolves to.
    let pinned = SafeHttpClient::builder(SsrfPolicy::strict().allow_http(true).allow_host("internal.test").unwrap())
        .dns_resolver(StaticResolver::new().with("internal.test", &[ip("127.0.0.1")]))
        .build()
        .unwrap();
    pinned.get_json::<serde_json::Value>(&format!("http://internal.test:{port}/ok").parse().unwrap()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_checked_at_every_hop() {
    let (port, hits) = target().await;
    let client = SafeHttpClient::builder(loopback_only_127_0_0_1())
        .dns_resolver(StaticResolver::new().with("rebind.test", &[ip("127.0.0.2")]))
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let to = |target: &str| {
        format!("{base}/to?url={}", form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>())
    };

    // Followed when the next hop is allowed (absolute or relative).
    let fetched = client.get(&to(&format!("{base}/ok")).parse().unwrap()).await.unwrap();
    assert_eq!((fetched.status, fetched.url.path()), (StatusCode::OK, "/ok"));
    let fetched = client.get(&format!("{base}/relative").parse().unwrap()).await.unwrap();
    assert_eq!(fetched.url.path(), "/ok");
    let before = hits.load(Ordering::SeqCst);

    // Refused when it is not: a forbidden literal, a name resolving to a forbidden address, another scheme.
    for next in [
        format!("http://127.0.0.2:{port}/ok"),
        format!("http://2130706434:{port}/ok"),
        format!("http://[::1]:{port}/ok"),
        format!("http://rebind.test:{port}/ok"),
        format!("http://localhost:{port}/ok"),
        "file:///etc/passwd".to_owned(),
        "gopher://127.0.0.1:70/".to_owned(),
    ] {
        let err = client.get(&to(&next).parse().unwrap()).await.unwrap_err();
        assert!(matches!(err, FetchError::Blocked(_)), "{next}: {err}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), before + 7, "only the first hops reached the server");

    // A limit on hops; none followed for POST (a body with credentials never goes elsewhere).
    let err = client.get(&format!("{base}/loop").parse().unwrap()).await.unwrap_err();
    assert!(matches!(err, FetchError::TooManyRedirects), "{err}");
    let no_redirects = SafeHttpClient::builder(loopback_only_127_0_0_1()).max_redirects(0).build().unwrap();
    assert!(matches!(
        no_redirects.get(&format!("{base}/relative").parse().unwrap()).await,
        Err(FetchError::TooManyRedirects)
    ));
    let posted =
        client.post_form(&format!("{base}/moved").parse().unwrap(), &[("token", "t")], HeaderMap::new()).await.unwrap();
    assert_eq!(posted.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(posted.headers[header::LOCATION], "/ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_and_time_limits() {
    let (port, _) = target().await;
    let client = SafeHttpClient::builder(SsrfPolicy::development())
        .max_response_bytes(32 * 1024)
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    for path in ["/big", "/chunked"] {
        let err = client.get(&format!("{base}{path}").parse().unwrap()).await.unwrap_err();
        assert!(matches!(err, FetchError::TooLarge { limit: 32768 }), "{path}: {err}");
    }
    let err = client.get(&format!("{base}/slow").parse().unwrap()).await.unwrap_err();
    assert!(matches!(err, FetchError::Timeout), "{err}");
    let roomy = SafeHttpClient::builder(SsrfPolicy::development()).max_response_bytes(64 * 1024).build().unwrap();
    assert_eq!(roomy.get(&format!("{base}/chunked").parse().unwrap()).await.unwrap().body.len(), 64 * 1024);
    // A status that is not a success is an error for the JSON helper, not a panic or a parse error.
    let err = roomy.get_json::<serde_json::Value>(&format!("{base}/nowhere").parse().unwrap()).await.unwrap_err();
    assert!(matches!(err, FetchError::Status(StatusCode::NOT_FOUND)), "{err}");
}

/// Serve `router` on a free loopback port; returns its base URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    base
}
