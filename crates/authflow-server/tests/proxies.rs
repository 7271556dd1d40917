//! Per-address limits behind a reverse proxy, over real HTTP on loopback: the test client plays the proxy
//! (its peer address is 127.0.0.1) and names the client in `X-Forwarded-For` or `Forwarded`.

mod common;

use std::time::Duration;

use authflow_core::ratelimit::RateLimit;
use authflow_server::policy::{IpNetwork, ProxyHeader};
use authflow_server::Policy;
use common::{Backend, ClientSpec, Reply, TestServer};
use serde_json::json;

/// Two token requests and one registration per address and minute.
fn policy(trusted: &[&str], header: ProxyHeader) -> Policy {
    Policy {
        token_requests_per_ip: RateLimit::new(2, Duration::from_secs(60)).unwrap(),
        registrations_per_ip: RateLimit::new(1, Duration::from_secs(60)).unwrap(),
        trusted_proxies: trusted.iter().map(|n| n.parse::<IpNetwork>().unwrap()).collect(),
        trusted_proxy_header: header,
        ..Default::default()
    }
}

struct Caller<'a> {
    s: &'a TestServer,
    id: String,
    secret: String,
}

impl Caller<'_> {
    async fn start(s: &TestServer) -> Caller<'_> {
        let (id, secret) = s.add_client(ClientSpec::service()).await;
        Caller { s, id, secret: secret.unwrap() }
    }

    /// A client_credentials token request with `headers`; returns the status.
    async fn token(&self, headers: &[(&str, &str)]) -> u16 {
        let mut req = self
            .s
            .http
            .post(self.s.url("/token"))
            .form(&[("grant_type", "client_credentials")])
            .basic_auth(&self.id, Some(&self.secret));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let reply = Reply::from(req.send().await.unwrap()).await;
        match reply.status {
            200 => reply.assert_token(),
            _ => {
                reply.assert_error(429, "rate_limited");
                &reply.body
            }
        };
        reply.status
    }

    /// A dynamic registration with `headers`; returns the status.
    async fn register(&self, headers: &[(&str, &str)]) -> u16 {
        let mut req = self.s.http.post(self.s.url("/register")).json(&json!({"grant_types": ["client_credentials"]}));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.send().await.unwrap().status().as_u16()
    }
}

fn xff(value: &str) -> [(&'static str, &str); 1] {
    [("x-forwarded-for", value)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_behind_a_trusted_proxy_get_their_own_limits() {
    let s = TestServer::start_with(Backend::Memory, |b| {
        b.policy(policy(&["127.0.0.1/32", "::1/128"], ProxyHeader::XForwardedFor))
    })
    .await;
    let c = Caller::start(&s).await;
    let (a, b) = (xff("203.0.113.1"), xff("203.0.113.2"));

    assert_eq!(c.token(&a).await, 200);
    assert_eq!(c.token(&a).await, 200);
    assert_eq!(c.token(&a).await, 429, "203.0.113.1 has used its budget");
    // A spoofed leftmost entry does not buy a new bucket: the proxy appended the real address on the right.
    assert_eq!(c.token(&xff("198.51.100.77, 203.0.113.1")).await, 429);
    assert_eq!(c.token(&[("x-forwarded-for", "198.51.100.77"), ("x-forwarded-for", "203.0.113.1")]).await, 429);
    // Another client behind the same proxy is not locked out…
    assert_eq!(c.token(&b).await, 200);
    // …also when it arrives through a second trusted proxy (skipped) or as an IPv4-mapped address.
    assert_eq!(c.token(&xff("203.0.113.2, 127.0.0.1")).await, 200);
    assert_eq!(c.token(&xff("::ffff:203.0.113.2")).await, 429, "the same client, canonicalised");
    assert_eq!(c.token(&xff("2001:db8::1")).await, 200);
    // The proxy's own requests (no header) and unreadable headers count against the proxy's address.
    assert_eq!(c.token(&[]).await, 200);
    assert_eq!(c.token(&xff("unknown")).await, 200);
    assert_eq!(c.token(&xff("203.0.113.1, not-an-address")).await, 429, "the proxy's bucket, now used up");

    // Registration limits (read by the handler, not by a layer) split the same way.
    assert_eq!(c.register(&a).await, 201);
    assert_eq!(c.register(&a).await, 429);
    assert_eq!(c.register(&b).await, 201);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_from_untrusted_peers_are_ignored() {
    // No trusted proxy (the default), or none that the loopback peer is in: the header is the client's own
    // invention and every request counts against the peer address.
    for trusted in [&[][..], &["10.0.0.0/8", "::ffff:127.0.0.2/128"][..]] {
        let s =
            TestServer::start_with(Backend::Memory, |b| b.policy(policy(trusted, ProxyHeader::XForwardedFor))).await;
        let c = Caller::start(&s).await;
        assert_eq!(c.token(&xff("203.0.113.1")).await, 200);
        assert_eq!(c.token(&xff("203.0.113.2")).await, 200);
        assert_eq!(c.token(&xff("203.0.113.3")).await, 429, "{trusted:?}: one bucket whatever the header says");
        assert_eq!(c.token(&[("forwarded", "for=203.0.113.4")]).await, 429);
        assert_eq!(c.register(&xff("203.0.113.1")).await, 201);
        assert_eq!(c.register(&xff("203.0.113.2")).await, 429);
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc_7239_forwarded_is_read_when_configured() {
    let s = TestServer::start_with(Backend::Memory, |b| b.policy(policy(&["127.0.0.1"], ProxyHeader::Forwarded))).await;
    let c = Caller::start(&s).await;
    let a = [("forwarded", "for=\"[2001:db8::1]:4711\";proto=https")];
    assert_eq!(c.token(&a).await, 200);
    assert_eq!(c.token(&[("forwarded", "for=\"[2001:db8::1]\"")]).await, 200);
    assert_eq!(c.token(&a).await, 429);
    assert_eq!(c.token(&[("forwarded", "for=198.51.100.1, for=\"[2001:db8::1]:4711\"")]).await, 429, "spoofed");
    assert_eq!(c.token(&[("forwarded", "for=198.51.100.2")]).await, 200);
    // X-Forwarded-For is not the configured header: a proxy speaking `Forwarded` passes it through untouched.
    assert_eq!(c.token(&[("forwarded", "for=198.51.100.2"), ("x-forwarded-for", "198.51.100.3")]).await, 200);
    assert_eq!(c.token(&[("forwarded", "for=198.51.100.2"), ("x-forwarded-for", "198.51.100.4")]).await, 429);
    s.stop().await;
}
